#!/usr/bin/env bash
# A local's watch without --stop: what the entry and end stops cost per call of FUNC, and what
# each write costs, against gdb on the same local and a global's perf-mode watch.
#
# A small C program (-O0) calls f(i) CALLS times; f's `volatile long acc` is written once per
# call. Per call: (wall(CALLS) - wall(1)) / (CALLS - 1), median over the rounds, for
#   1. the program alone,
#   2. `hwbp watch f::acc --json -- prog CALLS > /dev/null` (perf mode: the entry and the
#      return stop the thread; the frame's data watch is a perf event with the BPF handler),
#   3. the same with --stop (every write stops the thread too),
#   4. gdb: `break f`, and at each stop there `watch acc` (a Python loop continuing at every
#      stop; gdb deletes the watchpoint when the frame returns, through its scope breakpoint).
# Per write: one call of f writing acc WRITES times, (wall(WRITES) - wall(1)) / (WRITES - 1),
# for hwbp on the local (perf mode, then --stop), hwbp on a global written WRITES times (perf
# mode, `watch bench_global`), and gdb's `watch acc` in that one frame (WRITES / 10 writes:
# gdb stops at each).
#
# Usage: bench/locals/run.sh [--calls N] [--writes N] [--repeats R] [--hwbp PATH]
# Prints a Markdown table on stdout. Needs gcc, gdb (with Python), python3; run as root (the
# BPF handler). Holds /tmp/hwbp-exclusive.lock (debug registers) when flock is available.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=2000
WRITES=20000
REPEATS=3
HWBP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) CALLS=$2; shift 2 ;;
        --writes) WRITES=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --hwbp) HWBP=$2; shift 2 ;;
        *) echo "run.sh: unknown argument '$1' (try --calls N, --writes N, --repeats R, --hwbp PATH)" >&2; exit 2 ;;
    esac
done
for tool in gcc gdb python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not installed" >&2; exit 2; }
done
if [ -z "$HWBP" ]; then
    echo "building hwbp (release)..." >&2
    (cd "$ROOT" && cargo build --release -p hwbp-cli >&2)
    HWBP=$ROOT/target/release/hwbp
fi
if [ -z "${HWBP_LOCALS_BENCH_LOCKED:-}" ] && command -v flock >/dev/null; then
    export HWBP_LOCALS_BENCH_LOCKED=1
    exec flock /tmp/hwbp-exclusive.lock "$0" --calls "$CALLS" --writes "$WRITES" \
        --repeats "$REPEATS" --hwbp "$HWBP"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/prog.c" <<'C'
#include <stdlib.h>
volatile long bench_global;
__attribute__((noinline)) long f(long i, long w)
{
	volatile long acc = i;
	for (long k = 1; k < w; k++)
		acc = i + k;
	return acc;
}
int main(int argc, char **argv)
{
	long calls = argc > 1 ? atol(argv[1]) : 1;
	long w = argc > 2 ? atol(argv[2]) : 1;
	long s = 0;
	if (argc > 3) {
		for (long k = 1; k <= w; k++)
			bench_global = k;
		return 0;
	}
	for (long i = 0; i < calls; i++)
		s += f(i, w);
	return (int)(s & 1);
}
C
gcc -O0 -g -o "$WORK/prog" "$WORK/prog.c"
cat > "$WORK/gdb.py" <<'P'
import gdb
stops = []
gdb.events.stop.connect(stops.append)
gdb.execute("set pagination off")
entry = gdb.Breakpoint("f")
gdb.execute("run", to_string=True)
while gdb.selected_inferior().pid != 0:
    ev = stops[-1] if stops else None
    if isinstance(ev, gdb.BreakpointEvent) and entry in ev.breakpoints:
        gdb.execute("watch acc", to_string=True)
    stops.clear()
    gdb.execute("continue", to_string=True)
P

python3 - "$WORK" "$HWBP" "$CALLS" "$WRITES" "$REPEATS" <<'PY'
import statistics, subprocess, sys, time
work, hwbp, calls, writes, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
prog = f"{work}/prog"
def wall(argv):
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
def hw(spec, *extra):
    return lambda args: [hwbp, "watch", spec, "--json", *extra, "--", prog, *args]
gdb = lambda args: ["gdb", "-nx", "-batch", "-x", f"{work}/gdb.py", "--args", prog, *args]
alone = lambda args: [prog, *args]
rows = [
    ("per call", "program alone", alone, calls, lambda n: [str(n), "1"]),
    ("per call", "hwbp watch f::acc (perf mode)", hw("f::acc"), calls, lambda n: [str(n), "1"]),
    ("per call", "hwbp watch f::acc --stop", hw("f::acc", "--stop"), calls, lambda n: [str(n), "1"]),
    ("per call", "gdb break f + watch acc", gdb, calls, lambda n: [str(n), "1"]),
    ("per write", "hwbp watch f::acc (perf mode)", hw("f::acc"), writes, lambda n: ["1", str(n)]),
    ("per write", "hwbp watch f::acc --stop", hw("f::acc", "--stop"), writes, lambda n: ["1", str(n)]),
    ("per write", "hwbp watch bench_global (perf mode)", hw("bench_global"), writes, lambda n: ["1", str(n), "g"]),
    ("per write", "gdb watch acc", gdb, writes, lambda n: ["1", str(n)]),
]
# gdb stops at every write: fewer of them keep a round short.
results = {}
for r in range(repeats):
    for what, name, tool, n, args in rows:
        n = n if "gdb" not in name or what == "per call" else max(2, n // 10)
        big, small = wall(tool(args(n))), wall(tool(args(1)))
        results.setdefault((what, name), []).append((big - small) / (n - 1) * 1e6)
        print(f"round {r + 1}: {what} {name}: {results[(what, name)][-1]:.2f} us", file=sys.stderr)
print(f"| measure | tool | µs (median of {repeats}) |")
print("|---|---|---:|")
for (what, name), v in results.items():
    print(f"| {what} | {name} | {statistics.median(v):.2f} |")
PY
