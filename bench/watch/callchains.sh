#!/usr/bin/env bash
# Side-by-side cost of callchains unwound with the unwind tables (issue 19): a non-PIE C loop
# built -O1 -g -fomit-frame-pointer calls snprintf CALLS times into a global buffer whose first
# 8 bytes are watched (each call writes them several times, inside libc); measured in one run:
#   perf stat                                   (the cost of the traps alone)
#   perf record -c 1 --call-graph dwarf         (+ the perf script that names its frames)
#   hwbp watch -g --json -o FILE                (dwarf unwinding and names, in one process)
#   hwbp watch --call-graph fp --json -o FILE   (frame pointers, for reference)
# and hwbp's peak RSS at CALLS and at 2 x CALLS calls (memory stays flat if they match).
#
# Usage: bench/watch/callchains.sh [--calls N] [--hwbp PATH]
# Prints a Markdown table on stdout; progress on stderr. Needs root, gcc, nm, perf, python3.
# Takes the exclusive side of /tmp/hwbp-exclusive.lock (debug registers are machine-wide).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CALLS=12000
HWBP=""
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) CALLS=$2; shift 2 ;;
        --hwbp) HWBP=$2; shift 2 ;;
        *) echo "callchains.sh: unknown argument '$1' (try --calls N, --hwbp PATH)" >&2; exit 2 ;;
    esac
done
if [ -z "$HWBP" ]; then
    echo "building hwbp (release)..." >&2
    (cd "$ROOT" && cargo build --release -p hwbp-cli >&2)
    HWBP=$ROOT/target/release/hwbp
fi
for tool in gcc nm perf python3; do
    command -v "$tool" >/dev/null || { echo "callchains.sh: '$tool' is not installed" >&2; exit 2; }
done
if command -v flock >/dev/null && [ -z "${HWBP_BENCH_LOCKED:-}" ]; then
    export HWBP_BENCH_LOCKED=1
    exec flock /tmp/hwbp-exclusive.lock "$0" --calls "$CALLS" --hwbp "$HWBP"
fi

WORK=$(mktemp -d /tmp/hwbp-bench-callchains.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp "$ROOT/crates/hwbp-fixtures/c/unwind.c" "$WORK/prog.c"
gcc -O1 -g -fomit-frame-pointer -no-pie -fno-pie -o "$WORK/prog" "$WORK/prog.c"
ADDR=0x$(nm "$WORK/prog" | awk '$3 == "buf" { print $1 }' | sed 's/^0*//')
SPEC="mem:$ADDR/8:w"
PROG="$WORK/prog"

# hits.py FILE: hits, lost, and the hits whose chain has fill, work and main.
cat >"$WORK/hits.py" <<'EOF'
import json, sys
hits = named = 0
summary = None
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v.get("type") == "hit":
        hits += 1
        names = " ".join(v.get("callchain", []))
        if " fill+" in names and " work+" in names and " main+" in names:
            named += 1
    elif v.get("type") == "summary":
        summary = v
w = summary["watchpoints"][0]
print(f"{w['hits']} {named} {w['lost']}")
EOF

ROWS="$WORK/rows.tsv"
: >"$ROWS"
run() {
    local name=$1 cmd=$2 prefix
    prefix="$WORK/$(printf '%s' "$name" | tr -c 'a-zA-Z0-9' _)"
    echo "[$name] $cmd" >&2
    python3 "$ROOT/bench/watch/measure.py" "$prefix" "$cmd"
    read -r wall cpu rc rss <"$prefix.time"
    [ "$rc" = 0 ] || { echo "[$name] exited $rc:" >&2; sed 's/^/    /' "$prefix.err" >&2; }
    echo "[$name] wall ${wall}s cpu ${cpu}s rss ${rss}KiB" >&2
    printf '%s\t%s\t%s\t%s\n' "$name" "$wall" "$cpu" "$rss" >>"$ROWS"
}

run "perf stat" "perf stat -x, -e $SPEC -- $PROG $CALLS"
COUNTED=$(awk -F, '/mem:/ { print $1 }' "$WORK/perf_stat.err")
run "perf record -c 1 --call-graph dwarf" \
    "perf record -q -e $SPEC -c 1 --call-graph dwarf -o $WORK/perf.data -- $PROG $CALLS"
PERF_BYTES=$(stat -c %s "$WORK/perf.data")
run "perf script (names)" "perf script -i $WORK/perf.data -F ip,sym,symoff,dso > $WORK/perf.txt"
PERF_NAMED=$(awk 'BEGIN { RS = "" } / fill\+/ && / work\+/ && / main\+/ { n++ } END { print n + 0 }' "$WORK/perf.txt")
rm -f "$WORK/perf.data" "$WORK/perf.txt"
run "hwbp watch -g --json -o FILE" "$HWBP watch $SPEC -g --json -o $WORK/g.json -- $PROG $CALLS"
read -r G_HITS G_NAMED G_LOST < <(python3 "$WORK/hits.py" "$WORK/g.json")
rm -f "$WORK/g.json"
run "hwbp watch -g, 2x the calls" \
    "$HWBP watch $SPEC -g --json -o $WORK/g2.json -- $PROG $((CALLS * 2))"
read -r G2_HITS _ _ < <(python3 "$WORK/hits.py" "$WORK/g2.json")
rm -f "$WORK/g2.json"
run "hwbp watch --call-graph fp --json -o FILE" \
    "$HWBP watch $SPEC --call-graph fp --json -o $WORK/fp.json -- $PROG $CALLS"
read -r FP_HITS FP_NAMED FP_LOST < <(python3 "$WORK/hits.py" "$WORK/fp.json")
rm -f "$WORK/fp.json"

python3 - "$ROWS" "$CALLS" "$COUNTED" "$PERF_BYTES" "$PERF_NAMED" "$G_HITS" "$G_NAMED" \
    "$G_LOST" "$G2_HITS" "$FP_HITS" "$FP_NAMED" "$FP_LOST" <<'EOF'
import sys
rows_file, calls, counted, perf_bytes, perf_named, g_hits, g_named, g_lost, g2_hits, fp_hits, \
    fp_named, fp_lost = sys.argv[1:]
rows = {}
for line in open(rows_file):
    name, wall, cpu, rss = line.rstrip("\n").split("\t")
    rows[name] = (float(wall), float(cpu), int(rss))
base = rows["perf stat"][0]
record = rows["perf record -c 1 --call-graph dwarf"]
script = rows["perf script (names)"]
print(f"{calls} snprintf calls into a watched buffer (`{counted}` hits counted by perf stat), one run.\n")
print("| tool | wall s | CPU s | peak RSS MiB | hits | chains with fill, work, main | vs perf stat |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
def row(name, wall, cpu, rss, hits, named):
    print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss / 1024:.0f} | {hits} | {named} | {wall / base:.2f}x |")
row("perf stat", *rows["perf stat"], counted, "-")
row("perf record -c 1 --call-graph dwarf", *record, "-", "-")
print(f"| + perf script (names) | {script[0]:.2f} | {script[1]:.2f} | {script[2] / 1024:.0f} | - | {perf_named} | {(record[0] + script[0]) / base:.2f}x (both; {int(perf_bytes) / 2**20:.0f} MiB file) |")
row("hwbp watch -g --json -o FILE", *rows["hwbp watch -g --json -o FILE"], f"{g_hits} (lost {g_lost})", g_named)
row("hwbp watch --call-graph fp --json -o FILE", *rows["hwbp watch --call-graph fp --json -o FILE"], f"{fp_hits} (lost {fp_lost})", fp_named)
two = rows["hwbp watch -g, 2x the calls"]
print(f"\nhwbp -g peak RSS: {rows['hwbp watch -g --json -o FILE'][2] / 1024:.0f} MiB at {g_hits} hits, {two[2] / 1024:.0f} MiB at {g2_hits} hits.")
EOF
