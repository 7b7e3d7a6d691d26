#!/usr/bin/env bash
# Load: one watched variable written N times in one run (default 1,000,000 and 10,000,000),
# under `hwbp stat --json` and `hwbp watch --json`. For each run it reports the hits the kernel
# counted, how many were sampled and lost, wall and CPU time, hwbp's peak RSS (/usr/bin/time
# -v "Maximum resident set size": the largest of hwbp and the tiny program it launched, which
# is hwbp), and for watch the JSON lines per second written into a pipe.
#
# Usage: bench/load/run.sh [--hits "N1 N2 ..."] [--hwbp PATH]
# Prints a Markdown table on stdout; progress on stderr. Not run by CI (10M hits take a
# minute or more); CI's fault tests cover the same paths with small counts.
#
# Holds the shared side of /tmp/hwbp-exclusive.lock, like the tests that use per-thread
# breakpoints, so CPU-wide tests do not take the debug registers meanwhile.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HITS="1000000 10000000"
HWBP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hits) HITS=$2; shift 2 ;;
        --hwbp) HWBP=$2; shift 2 ;;
        *) echo "run.sh: unknown argument '$1' (try --hits \"N ...\", --hwbp PATH)" >&2; exit 2 ;;
    esac
done
if [ -z "$HWBP" ]; then
    echo "building hwbp (release)..." >&2
    (cd "$ROOT" && cargo build --release -p hwbp-cli >&2)
    HWBP=$ROOT/target/release/hwbp
fi
for tool in gcc python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is not installed" >&2; exit 2; }
done
if command -v flock >/dev/null && [ -z "${HWBP_BENCH_LOCKED:-}" ]; then
    export HWBP_BENCH_LOCKED=1
    exec flock -s /tmp/hwbp-exclusive.lock "$0" --hits "$HITS" --hwbp "$HWBP"
fi

WORK=$(mktemp -d /tmp/hwbp-bench-load.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/prog.c" <<'C'
/* Writes the global `target` argv[1] times, each a single volatile 8-byte store. */
#include <stdlib.h>
long target;
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 0;
    for (long i = 0; i < n; i++)
        *(volatile long *)&target = i;
    return 0;
}
C
gcc -O1 -g -o "$WORK/prog" "$WORK/prog.c"

# field NAME FILE: a value from /usr/bin/time -v output.
field() { grep -F "$1" "$2" | head -1 | sed 's/.*: //'; }

echo "| mode | hits asked | hits counted | sampled | lost | throttled | ended by | wall s | CPU s | peak RSS MiB | JSON lines/s |"
echo "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
for n in $HITS; do
    for mode in stat watch; do
        echo "$mode, $n hits..." >&2
        if [ "$mode" = stat ]; then
            /usr/bin/time -v -o "$WORK/time" "$HWBP" stat target --json -- "$WORK/prog" "$n" \
                >"$WORK/last" 2>"$WORK/err"
            lines=""
        else
            # 10M JSON lines are several GB: count them and keep only the summary.
            /usr/bin/time -v -o "$WORK/time" "$HWBP" watch target --json -- "$WORK/prog" "$n" \
                2>"$WORK/err" | tee >(wc -l >"$WORK/lines") | tail -n 1 >"$WORK/last"
            sleep 0.5
            lines=$(cat "$WORK/lines")
        fi
        python3 - "$mode" "$n" "$WORK/last" "$WORK/time" "${lines:-0}" <<'PY'
import json, re, sys
mode, asked, last, timefile, lines = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
report = json.loads(open(last).read().strip().splitlines()[-1])
w = report["watchpoints"][0]
t = open(timefile).read()
def get(label):
    return re.search(re.escape(label) + r".*?: (.*)", t).group(1).strip()
wall = get("Elapsed (wall clock) time")
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(get("User time (seconds)")) + float(get("System time (seconds)"))
rss = int(get("Maximum resident set size (kbytes)")) / 1024
sampled = w.get("sampled", w.get("reported"))
rate = f"{(lines - 1) / secs:,.0f}" if mode == "watch" else "-"
print(f"| {mode} | {asked:,} | {w['hits']:,} | {sampled:,} | {w['lost']:,} | {report.get('throttled', '-')} | {report['ended_by']} | {secs:.1f} | {cpu:.1f} | {rss:.1f} | {rate} |")
PY
    done
done
