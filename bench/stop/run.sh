#!/usr/bin/env bash
# Stop-mode cost per hit, hwbp against gdb, in one run.
#
# A small C program writes a global HITS times (each write changes the value). It is run
#   1. alone (the loop's own cost),
#   2. under `hwbp watch --stop --json bench_var -- prog HITS > /dev/null` (hwbp launches it,
#      stops it at every write, reads the exact old and new value, symbolizes the writer,
#      prints a JSON line, resumes it),
#   3. under gdb with a hardware watchpoint on bench_var whose Python stop handler returns
#      False (gdb stops the thread at every write, evaluates the watchpoint, calls the handler,
#      resumes it),
# each with HITS writes and with 1 write, and the per-hit cost is
# (wall(HITS) - wall(1)) / (HITS - 1), median over the rounds: start-up (symbol loading, gdb's
# own start) and the loop's own time cancel out.
#
# Usage: bench/stop/run.sh [--hits N] [--repeats R] [--hwbp PATH]
#   --hits N      writes (default 20000)
#   --repeats R   rounds, each running every tool once (default 3)
#   --hwbp PATH   hwbp binary (default: cargo build --release, target/release/hwbp)
# Prints a Markdown table and the ratio on stdout; progress on stderr. Needs gcc, gdb (with
# Python) and python3. Holds the shared side of /tmp/hwbp-exclusive.lock (ptrace debug
# registers) when flock is available.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HITS=20000
REPEATS=3
HWBP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hits) HITS=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --hwbp) HWBP=$2; shift 2 ;;
        *) echo "run.sh: unknown argument '$1' (try --hits N, --repeats R, --hwbp PATH)" >&2; exit 2 ;;
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
if [ -z "${HWBP_STOP_BENCH_LOCKED:-}" ] && command -v flock >/dev/null; then
    export HWBP_STOP_BENCH_LOCKED=1
    exec flock -s /tmp/hwbp-exclusive.lock "$0" --hits "$HITS" --repeats "$REPEATS" --hwbp "$HWBP"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/writes.c" <<'C'
#include <stdlib.h>
volatile long bench_var;
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	for (long i = 1; i <= n; i++)
		bench_var = i;
	return 0;
}
C
gcc -g -O1 -fno-omit-frame-pointer -o "$WORK/writes" "$WORK/writes.c"
cat > "$WORK/gdb_stop.py" <<'PY'
import gdb

class CountingWatch(gdb.Breakpoint):
    """A hardware write watchpoint that never stops: gdb's cheapest per-hit handler."""

    def __init__(self):
        super().__init__("bench_var", gdb.BP_WATCHPOINT, gdb.WP_WRITE)
        self.hits = 0

    def stop(self):
        self.hits += 1
        return False

gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("start", to_string=True)
watch = CountingWatch()
gdb.execute("continue", to_string=True)
print("gdb-hits", watch.hits)
PY

# Wall seconds of a command (its stdout to /dev/null), via python for sub-ms precision.
wall() {
    python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(f"{time.perf_counter() - start:.6f}")
PY
}

declare -a BASE HW HW1 GDB GDB1
for round in $(seq 1 "$REPEATS"); do
    echo "round $round/$REPEATS: loop alone, hwbp --stop, gdb ($HITS writes and 1 write each)" >&2
    BASE+=("$(wall "$WORK/writes" "$HITS")")
    HW+=("$(wall "$HWBP" watch --stop --json bench_var -- "$WORK/writes" "$HITS")")
    HW1+=("$(wall "$HWBP" watch --stop --json bench_var -- "$WORK/writes" 1)")
    GDB+=("$(wall gdb -nx -batch -x "$WORK/gdb_stop.py" --args "$WORK/writes" "$HITS")")
    GDB1+=("$(wall gdb -nx -batch -x "$WORK/gdb_stop.py" --args "$WORK/writes" 1)")
done

# Check that both really saw every write (one run each, outside the timing).
hw_hits=$("$HWBP" watch --stop --json bench_var -- "$WORK/writes" "$HITS" 2>/dev/null | grep -c '"type":"hit"')
gdb_hits=$(gdb -nx -batch -x "$WORK/gdb_stop.py" --args "$WORK/writes" "$HITS" 2>/dev/null | sed -n 's/^gdb-hits //p')

python3 - "$HITS" "$hw_hits" "$gdb_hits" "${BASE[*]}" "${HW[*]}" "${HW1[*]}" "${GDB[*]}" "${GDB1[*]}" <<'PY'
import statistics, sys
hits = int(sys.argv[1])
hw_hits, gdb_hits = sys.argv[2], sys.argv[3]
base, hw, hw1, gdb, gdb1 = ([float(x) for x in a.split()] for a in sys.argv[4:9])
b = statistics.median(base)
hw_us = statistics.median(n - one for n, one in zip(hw, hw1)) / (hits - 1) * 1e6
gdb_us = statistics.median(n - one for n, one in zip(gdb, gdb1)) / (hits - 1) * 1e6
print(f"## Stop mode, {hits} writes, median of {len(hw)} rounds\n")
print("| tool | hits seen | wall, HITS writes (s) | cost per hit (µs) |")
print("|---|---:|---:|---:|")
print(f"| loop alone | - | {b:.3f} | - |")
print(f"| hwbp watch --stop --json | {hw_hits} | {statistics.median(hw):.3f} | {hw_us:.2f} |")
print(f"| gdb hw watchpoint, Python stop() -> False | {gdb_hits} | {statistics.median(gdb):.3f} | {gdb_us:.2f} |")
print(f"\nhwbp / gdb per hit: {hw_us / gdb_us:.3f} (target: at most 0.2)")
PY
