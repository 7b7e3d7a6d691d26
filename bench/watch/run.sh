#!/usr/bin/env bash
# Side-by-side cost of watching one variable that is written HITS times (default 1,000,000):
# the loop alone, perf stat, perf record, hwbp stat, hwbp watch --json and bpftrace, each
# launching the same small non-PIE C program (fixed address, found with nm).
#
# Usage: bench/watch/run.sh [--hits N] [--repeats R] [--hwbp PATH] [--baseline PATH]
#   --hits N          writes the loop makes (default 1000000)
#   --repeats R       rounds; each round runs every tool once, so slow drifts in machine load
#                     hit all tools alike; the table shows median wall and CPU times (default 1)
#   --hwbp PATH       hwbp binary to measure (default: `cargo build --release`, target/release/hwbp)
#   --baseline PATH   another hwbp binary (e.g. an older build) measured in the same rounds
# Prints Markdown tables on stdout; progress goes to stderr. Needs root (or
# perf_event_paranoid <= 1) for perf/bpftrace, gcc, nm and python3.
#
# Every tool shares the CPU debug registers with anything else using them, so the run holds
# the shared side of /tmp/hwbp-exclusive.lock (tests that take CPU-wide breakpoints hold the
# exclusive side), when flock is available.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HITS=1000000
REPEATS=1
HWBP=""
BASELINE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hits) HITS=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --hwbp) HWBP=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        *) echo "run.sh: unknown argument '$1' (try --hits N, --repeats R, --hwbp PATH)" >&2; exit 2 ;;
    esac
done
if [ -z "$HWBP" ]; then
    echo "building hwbp (release)..." >&2
    (cd "$ROOT" && cargo build --release -p hwbp-cli >&2)
    HWBP=$ROOT/target/release/hwbp
fi
for tool in gcc nm perf python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not installed" >&2; exit 2; }
done

if command -v flock >/dev/null && [ -z "${HWBP_BENCH_LOCKED:-}" ]; then
    export HWBP_BENCH_LOCKED=1
    exec flock -s /tmp/hwbp-exclusive.lock "$0" --hits "$HITS" --repeats "$REPEATS" \
        --hwbp "$HWBP" ${BASELINE:+--baseline "$BASELINE"}
fi

WORK=$(mktemp -d /tmp/hwbp-bench-watch.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/prog.c" <<EOF
/* Writes one global long HITS times; volatile so every store happens. */
volatile long counter;
int main(void)
{
    for (long i = 0; i < ${HITS}L; i++)
        counter = i;
    return 0;
}
EOF
gcc -O2 -g -no-pie -fno-pie -o "$WORK/prog" "$WORK/prog.c"
ADDR=0x$(nm "$WORK/prog" | awk '$3 == "counter" { print $1 }' | sed 's/^0*//')
SPEC="mem:$ADDR/8:w"

MEASURE=$ROOT/bench/watch/measure.py

# Each tool: name, command, and how to read its counts (counted reported lost) afterwards.
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

ROUND=0
run_tool() {
    local name=$1 cmd=$2 parse=$3
    local prefix wall cpu rc counts
    prefix="$WORK/run.$(echo "$name" | tr -c 'a-zA-Z0-9' _).$ROUND"
    echo "[$name] round $ROUND/$REPEATS: $cmd" >&2
    python3 "$MEASURE" "$prefix" "$cmd"
    read -r wall cpu rc _ <"$prefix.time"
    if [ "$rc" != 0 ]; then
        echo "[$name] exited with status $rc; stderr:" >&2
        sed 's/^/    /' "$prefix.err" >&2
    fi
    counts=$("$parse" "$prefix")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$cpu" "$rc" "$counts" >>"$RESULTS"
    echo "[$name] wall ${wall}s cpu ${cpu}s counts: $counts" >&2
}

# Parsers print "counted<TAB>reported<TAB>lost" ("-" where a tool does not say).
parse_none() { printf -- '-\t-\t-'; }
parse_perf_stat() {
    awk -F, '/mem:/ { printf "%s\t-\t-", $1; found=1 } END { if (!found) printf "?\t-\t-" }' "$1.err"
}
parse_perf_record() {
    local stats samples lost
    stats=$(perf report -i "$WORK/perf.data" --stats 2>/dev/null || true)
    samples=$(awk '/SAMPLE events:/ { print $3; exit }' <<<"$stats")
    lost=$(awk '/LOST events:/ { print $3; exit }' <<<"$stats")
    # perf counts LOST records; the samples they dropped are in `perf report --stats` as
    # "LOST_SAMPLES events" on newer perf. Either way 0 when absent.
    local lost_samples
    lost_samples=$(awk '/LOST_SAMPLES events:/ { print $3; exit }' <<<"$stats")
    printf '%s\t%s\t%s' "${samples:-?}" "${samples:-?}" "${lost:-0}${lost_samples:+ (lost-samples records: $lost_samples)}"
    rm -f "$WORK/perf.data"
}
parse_hwbp_stat() {
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
w = r["watchpoints"][0]
end = "" if r["ended_by"] == "the command exited with status 0" else " (ended: %s)" % r["ended_by"]
print("%s\t%s\t%s%s" % (w["hits"], w["sampled"], w["lost"], end), end="")
' "$1.out"
}
parse_hwbp_watch() {
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
w = r["watchpoints"][0]
end = "" if r["ended_by"] == "the command exited with status 0" else " (ended: %s)" % r["ended_by"]
print("%s\t%s\t%s (lost records %s)%s" % (w["hits"], w["reported"], w["lost"], r["lost_records"], end), end="")
' "$1.out"
}
parse_bpftrace() {
    local count lost
    count=$(awk '/^@: / { print $2 }' "$1.out")
    lost=$(grep -oE 'Lost [0-9]+ events' "$1.out" "$1.err" | awk '{ s += $2 } END { print s + 0 }')
    printf '%s\t-\t%s' "${count:-?}" "$lost"
}

# bpftrace printing each hit's value: counted = lines printed, reported = lines whose value is
# the one the loop wrote (0, 1, 2, ... in order), lost = its "Lost N events".
parse_bpftrace_values() {
    python3 -c '
import re, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if re.fullmatch(r"-?[0-9]+", l)]
# The kernel'"'"'s writes at exec come first: count the loop'"'"'s 0, 1, 2, ... in order.
exact = 0
for l in lines:
    if int(l) == exact:
        exact += 1
err = open(sys.argv[2]).read() + open(sys.argv[1]).read()
lost = sum(int(n) for n in re.findall(r"Lost ([0-9]+) events", err))
print("%d\t%d exact\t%d" % (len(lines), exact, lost), end="")
' "$1.out" "$1.err"
}
# A file of hwbp JSON lines (watch -o, or a recording): reported = hits whose value_after is
# the one the loop wrote and marked exact.
parse_hwbp_file() {
    python3 -c '
import json, sys
hits = exact = 0
summary = None
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v.get("type") == "hit":
        if v.get("value_after") == hits and v.get("exact"):
            exact += 1
        hits += 1
    elif v.get("type") == "summary":
        summary = v
w = summary["watchpoints"][0]
print("%s\t%d exact\t%s" % (w["hits"], exact, w["lost"]), end="")
' "$WORK/hits.json"
    rm -f "$WORK/hits.json"
}

PROG=$WORK/prog
run_hwbp_rows() {
    local bin=$1 suffix=$2
    run_tool "hwbp stat$suffix" "$bin stat $SPEC --json -- $PROG" parse_hwbp_stat
    run_tool "hwbp watch --json > /dev/null$suffix" "$bin watch $SPEC --json -- $PROG > /dev/null" parse_none
    run_tool "hwbp watch --json, piped to tail -n1$suffix" \
        "$bin watch $SPEC --json -- $PROG | tail -n 1" parse_hwbp_watch
    run_tool "hwbp watch --json -o FILE$suffix" \
        "$bin watch $SPEC --json -o $WORK/hits.json -- $PROG" parse_hwbp_file
    run_tool "hwbp record -o FILE$suffix" \
        "$bin record $SPEC -o $WORK/hits.json -- $PROG" parse_hwbp_file
}
command -v bpftrace >/dev/null ||
    echo "bpftrace is NOT installed: its row is skipped (apt-get install -y bpftrace)" >&2
for ROUND in $(seq 1 "$REPEATS"); do
    run_tool "loop alone" "$PROG" parse_none
    run_tool "perf stat" "perf stat -x, -e $SPEC -- $PROG" parse_perf_stat
    run_tool "perf record -c 1" "perf record -q -e $SPEC -c 1 -o $WORK/perf.data -- $PROG" parse_perf_record
    run_hwbp_rows "$HWBP" ""
    [ -z "$BASELINE" ] || run_hwbp_rows "$BASELINE" " (baseline)"
    if command -v bpftrace >/dev/null; then
        run_tool "bpftrace watchpoint count()" \
            "bpftrace -e 'watchpoint:$ADDR:8:w { @ = count(); }' -c $PROG" parse_bpftrace
        run_tool "bpftrace watchpoint printf value" \
            "bpftrace -e 'watchpoint:$ADDR:8:w { printf(\"%d\\n\", *(int64*)uptr($ADDR)); }' -c $PROG" \
            parse_bpftrace_values
    elif [ "$ROUND" = 1 ]; then
        printf 'bpftrace watchpoint count()\tNA\tNA\tNA\tnot installed\t-\t-\n' >>"$RESULTS"
    fi
done

python3 "$ROOT/bench/watch/table.py" "$RESULTS" "$HITS" "$SPEC" "$REPEATS"

# hwbp's own CPU time, without the target's: attach (-p) to a program that waits for a byte on
# stdin before its loop, so hwbp is not the target's parent and wait4() gives hwbp alone.
cat >"$WORK/prog_wait.c" <<EOF
#include <unistd.h>
volatile long counter;
int main(void)
{
    char go;
    if (read(0, &go, 1) != 1)
        return 1;
    for (long i = 0; i < ${HITS}L; i++)
        counter = i;
    return 0;
}
EOF
gcc -O2 -g -no-pie -fno-pie -o "$WORK/prog_wait" "$WORK/prog_wait.c"
WADDR=0x$(nm "$WORK/prog_wait" | awk '$3 == "counter" { print $1 }' | sed 's/^0*//')
cat >"$WORK/own_cpu.py" <<'EOF'
import os, subprocess, sys
prog, spec, label, hwbp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
target = subprocess.Popen([prog], stdin=subprocess.PIPE)
watcher = subprocess.Popen([hwbp, "watch", spec, "--json", "-p", str(target.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
for line in watcher.stderr:
    if line.startswith("hwbp: watching"):
        break
target.stdin.write(b"g")
target.stdin.close()
_, status, usage = os.wait4(watcher.pid, 0)
target.wait()
total = usage.ru_utime + usage.ru_stime
print(f"| {label} | {usage.ru_utime:.3f} | {usage.ru_stime:.3f} | {total:.3f} |")
EOF
echo
echo "hwbp's own CPU for the same $HITS writes (\`hwbp watch --json -p PID > /dev/null\`, target excluded):"
echo
echo "| binary | user s | sys s | total s |"
echo "| --- | ---: | ---: | ---: |"
echo "[own CPU] hwbp watch -p, $HWBP" >&2
python3 "$WORK/own_cpu.py" "$WORK/prog_wait" "mem:$WADDR/8:w" "hwbp" "$HWBP"
if [ -n "$BASELINE" ]; then
    echo "[own CPU] hwbp watch -p, $BASELINE" >&2
    python3 "$WORK/own_cpu.py" "$WORK/prog_wait" "mem:$WADDR/8:w" "hwbp (baseline)" "$BASELINE"
fi
