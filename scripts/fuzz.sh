#!/bin/sh
# Runs each cargo-fuzz target in fuzz/ for SECONDS (default 60) and prints its corpus size.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Targets:
# watch_spec, scenario, kernel_symbols, ring_records. The committed seeds are in
# fuzz/seeds/TARGET/; what the fuzzer adds goes to fuzz/corpus/TARGET/, crashes to
# fuzz/artifacts/TARGET/.
# CI without nightly runs the same checks on stable: cargo test -p hwbp-cli --test fuzz_smoke.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-watch_spec scenario kernel_symbols ring_records}
status=0
for target in $targets; do
    echo "== $target: ${seconds}s"
    # -rss_limit_mb: a parser that allocates without bound is a bug too.
    mkdir -p "fuzz/corpus/$target"
    # New inputs go to fuzz/corpus/TARGET (not committed); the committed seeds are read too.
    if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 \
        -max_len=4096 2>"fuzz/$target.log"; then
        echo "$target FAILED: see fuzz/$target.log and fuzz/artifacts/$target/"
        status=1
    fi
    grep -E '^Done [0-9]+ runs|#[0-9]+.*DONE' "fuzz/$target.log" | tail -1 || true
    echo "$target corpus: $(ls "fuzz/corpus/$target" | wc -l) inputs (+ $(ls "fuzz/seeds/$target" | wc -l) seeds)"
done
exit $status
