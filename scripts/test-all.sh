#!/usr/bin/env bash
# Runs every hwbp test. Tests named `exclusive_*` use CPU-wide breakpoints, CPU hotplug or ptrace:
# they share every CPU's debug registers, so they run in a second, serial pass after all others.
# Ends with one line totalling every pass: `tests: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --doc 2>&1 | tee -a "$log" || status=1
# The facade's tests run the who_wrote example as a user would; nextest builds only its metadata.
cargo build -p hwbp --examples 2>&1 | tee -a "$log" || status=1
cargo nextest run --workspace --no-fail-fast -E 'not test(/exclusive_/)' 2>&1 | tee -a "$log" || status=1
cargo nextest run --workspace --no-fail-fast -E 'test(/exclusive_/)' --test-threads 1 \
    --no-tests=warn 2>&1 | tee -a "$log" || status=1
python3 - "$log" "$status" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
passed = failed = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed += int(m.group(1)); failed += int(m.group(2))
for m in re.finditer(r"Summary \[.*?\] \d+ tests? run: (\d+) passed(?:.*?(\d+) failed)?", text):
    passed += int(m.group(1)); failed += int(m.group(2) or 0)
if sys.argv[2] != "0" and failed == 0:
    failed = 1  # a pass failed without a parsable summary (e.g. a build error)
print(f"tests: {passed} passed, {failed} failed")
PY
exit $status
