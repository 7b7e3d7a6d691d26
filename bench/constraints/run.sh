#!/bin/sh
# Times `hwbp constraints --cpus 64` (release build) on a generated 10,000-line scenario with
# 1,000 tasks, and checks that it printed one line per command.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
scenario=${TMPDIR:-/tmp}/hwbp-constraints-bench.txt
out=${TMPDIR:-/tmp}/hwbp-constraints-bench.out

cargo build --release --quiet -p hwbp-cli --manifest-path "$root/Cargo.toml"
python3 "$here/gen_scenario.py" --lines 10000 --cpus 64 --tasks 1000 >"$scenario"

hwbp="$root/target/release/hwbp"
for policy in mainline seed; do
    start=$(date +%s%N)
    "$hwbp" constraints --cpus 64 --policy "$policy" "$scenario" >"$out"
    end=$(date +%s%N)
    printf '%s: %d commands -> %d lines, %d ENOSPC, %d EINVAL, %s ms\n' "$policy" \
        "$(grep -c . "$scenario")" "$(wc -l <"$out")" \
        "$(grep -c ' ENOSPC: ' "$out" || true)" "$(grep -c ' EINVAL: ' "$out" || true)" \
        "$(( (end - start) / 1000000 ))"
done
