#!/usr/bin/env bash
# Runs trapcount (a loop that stores to one global N times and counts the SIGTRAPs it gets
# instead of dying) under a perf write watchpoint on that global, R times per mode, and
# prints one line per run. Modes:
#   stat-free    perf stat -e mem:ADDR/8:w,cpu-migrations,context-switches -- ./trapcount N
#   stat-pinned  same, with taskset -c 0 (perf and the target stay on CPU 0)
#   record-free  perf record -c 1 -e mem:ADDR/8:w -- ./trapcount N
#   stat-hog     stat-free while two busy loops (one pinned to each CPU) compete for the CPUs
#   stat-otherbp stat-free while a second, identical perf stat + trapcount runs alongside
#                (two breakpoint users at once; the second one's traps are reported too)
#   pair-pinned  stat-otherbp with both perf stat + trapcount pinned, one to CPU 0, one to CPU 1
#   stat-hotplug stat-free while CPU 1 is taken offline and online again every ~1.5 s
#                (takes the EXCLUSIVE side of the lock, as CPU hotplug affects every user)
# Usage: bench/sigtrap/run.sh [--hits N] [--repeats R] [--modes "stat-free stat-pinned ..."]
# Each line also says how many CPU hotplug lines dmesg gained during the run and how many other
# processes held perf_event fds at its start and end (other breakpoint users on this VM).
# Holds the shared side of /tmp/hwbp-exclusive.lock (as every debug-register user here does).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
HITS=1000000
REPEATS=10
MODES="stat-free stat-pinned"
while [ $# -gt 0 ]; do
    case "$1" in
        --hits) HITS=$2; shift 2 ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --modes) MODES=$2; shift 2 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "${SIGTRAP_BENCH_LOCKED:-}" ]; then
    export SIGTRAP_BENCH_LOCKED=1
    LOCKMODE=-s
    case "$MODES" in *hotplug*) LOCKMODE=-x ;; esac
    exec flock "$LOCKMODE" /tmp/hwbp-exclusive.lock "$0" --hits "$HITS" --repeats "$REPEATS" --modes "$MODES"
fi
WORK=$(mktemp -d /tmp/hwbp-sigtrap.XXXXXX)
HELPERS=()
stop_helpers() {
    local pid
    for pid in "${HELPERS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${HELPERS[@]}"; do wait "$pid" 2>/dev/null || true; done
    HELPERS=()
    if [ "${HOTPLUGGING:-0}" = 1 ]; then echo 1 >/sys/devices/system/cpu/cpu1/online 2>/dev/null || true; HOTPLUGGING=0; fi
}
trap 'stop_helpers; rm -rf "$WORK"' EXIT
gcc -O2 -Wall -no-pie -fno-pie -o "$WORK/trapcount" "$HERE/trapcount.c"
ADDR=0x$(nm "$WORK/trapcount" | awk '$3 == "counter" {print $1}')
EVENT="mem:$ADDR/8:w"

perf_holders() {
    # processes (other than this script's) with an open perf_event fd
    local n=0 p
    for p in /proc/[0-9]*; do
        ls -l "$p/fd" 2>/dev/null | grep -q 'anon_inode:\[perf_event\]' && n=$((n + 1))
    done
    echo "$n"
}
hotplug_lines() { dmesg | grep -c 'smpboot: CPU 1 is now offline' || true; }

echo "# $(date -u +%FT%TZ) hits=$HITS repeats=$REPEATS event=$EVENT kernel=$(uname -r)"
for r in $(seq 1 "$REPEATS"); do
    for mode in $MODES; do
        out=$WORK/out.txt
        err=$WORK/err.txt
        hp0=$(hotplug_lines); ph0=$(perf_holders); t0=$(date +%s.%N)
        case "$mode" in
            stat-hog)
                for c in 0 1; do taskset -c $c sh -c 'while :; do :; done' & HELPERS+=($!); done ;;
            stat-otherbp|pair-pinned)
                pin=""; [ "$mode" = pair-pinned ] && pin="taskset -c 1"
                $pin perf stat -x, -e "$EVENT" -- "$WORK/trapcount" "$HITS" >"$WORK/other.out" 2>"$WORK/other.err" &
                HELPERS+=($!) ;;
            stat-hotplug)
                HOTPLUGGING=1
                sh -c 'while :; do echo 0 > /sys/devices/system/cpu/cpu1/online; sleep 0.5;
                       echo 1 > /sys/devices/system/cpu/cpu1/online; sleep 1; done' 2>/dev/null &
                HELPERS+=($!) ;;
        esac
        set +e
        case "$mode" in
            stat-free|stat-hog|stat-otherbp|stat-hotplug) perf stat -x, -e "$EVENT,cpu-migrations,context-switches" -- \
                "$WORK/trapcount" "$HITS" >"$out" 2>"$err" ;;
            stat-pinned|pair-pinned) taskset -c 0 perf stat -x, -e "$EVENT,cpu-migrations,context-switches" -- \
                "$WORK/trapcount" "$HITS" >"$out" 2>"$err" ;;
            record-free) perf record -q -o "$WORK/perf.data" -c 1 -e "$EVENT" -- \
                "$WORK/trapcount" "$HITS" >"$out" 2>"$err" ;;
            *) echo "unknown mode $mode" >&2; exit 2 ;;
        esac
        rc=$?
        if [ "$mode" = record-free ]; then
            # samples written = hits perf saw (compare with writes + 8 loader stores)
            echo "    record: samples=$(perf report -i "$WORK/perf.data" --stats 2>/dev/null | awk '/SAMPLE events:/ {print $3; exit}')" >"$WORK/other.report"
        fi
        if [ "$mode" = stat-otherbp ] || [ "$mode" = pair-pinned ]; then
            wait "${HELPERS[0]}"; orc=$?; HELPERS=()
            {
                echo "    other: rc=$orc perf_hits=$(awk -F, '/mem:/ {print $1}' "$WORK/other.err") traps=$(grep -c '^trap ' "$WORK/other.out") | $(grep '^summary' "$WORK/other.out")"
                grep '^trap ' "$WORK/other.out" | sed 's/^/    other /' || true
            } >>"$WORK/other.report"
        fi
        stop_helpers
        set -e
        t1=$(date +%s.%N); hp1=$(hotplug_lines); ph1=$(perf_holders)
        hits=$(awk -F, '/mem:/ {print $1}' "$err"); mig=$(awk -F, '/cpu-migrations/ {print $1}' "$err")
        cs=$(awk -F, '/context-switches/ {print $1}' "$err")
        summary=$(grep '^summary' "$out" || echo "summary missing")
        traps=$(grep -c '^trap ' "$out" || true)
        printf 'run=%s mode=%s rc=%s wall=%.2f perf_hits=%s migrations=%s ctxsw=%s traps=%s hotplug_offlines=%s perf_fd_procs=%s/%s load=%s | %s\n' \
            "$r" "$mode" "$rc" "$(echo "$t1 - $t0" | bc)" "${hits:--}" "${mig:--}" "${cs:--}" "$traps" \
            "$((hp1 - hp0))" "$ph0" "$ph1" "$(cut -d' ' -f1 /proc/loadavg)" "$summary"
        grep '^trap ' "$out" | sed 's/^/    /' || true
        if [ -f "$WORK/other.report" ]; then cat "$WORK/other.report"; rm -f "$WORK/other.report"; fi
        [ "$rc" -ne 0 ] && sed 's/^/    stderr: /' "$err" | tail -3
    done
done
