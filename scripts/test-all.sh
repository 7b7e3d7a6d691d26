#!/usr/bin/env bash
# Runs every hwbp test, after installing what the tests need and is missing
# (scripts/install-test-deps.sh: Debian packages, cargo-nextest; nothing when all are there).
# Tests named `exclusive_*` use CPU-wide breakpoints, CPU hotplug, ptrace or BPF: they share
# every CPU's debug registers, so they run in a second, serial pass after all others.
# A test whose capability the kernel refuses even to root (kernel-address breakpoints under a
# security policy, a second CPU) records a skip with its reason (hwbp_fixtures::skip).
# Ends with one line totalling every pass, each test counted once:
# `tests: N passed, M failed, K skipped`, with each skip and its reason listed above it.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
# Lockdown's mode is read from securityfs: mounted (as root), refusals and skips can name it.
if [[ $(id -u) == 0 ]] && ! mountpoint -q /sys/kernel/security; then
    mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
export HWBP_TEST_SKIPS="$logs/skips"
: >"$HWBP_TEST_SKIPS"
status=0
cargo test --workspace --doc 2>&1 | tee "$logs/doc" || status=1
# The facade's tests run the who_wrote example as a user would; nextest builds only its metadata.
cargo build -p hwbp --examples 2>&1 | tee "$logs/build" || status=1
cargo nextest run --workspace --no-fail-fast -E 'not test(/exclusive_/)' 2>&1 \
    | tee "$logs/nextest-parallel" || status=1
cargo nextest run --workspace --no-fail-fast -E 'test(/exclusive_/)' --test-threads 1 \
    --no-tests=warn 2>&1 | tee "$logs/nextest-serial" || status=1
python3 - "$logs" "$status" <<'PY'
import pathlib, re, sys
logs, status = pathlib.Path(sys.argv[1]), sys.argv[2]
passed = failed = 0
# Doctests: libtest's own result lines. Nextest passes: only nextest's summary line (it also
# prints the captured `test result:` line of each failing test, which must not count twice).
doc = (logs / "doc").read_text(errors="replace")
for m in re.finditer(r"^test result: \w+\. (\d+) passed; (\d+) failed", doc, re.M):
    passed += int(m.group(1)); failed += int(m.group(2))
for name in ("nextest-parallel", "nextest-serial"):
    text = (logs / name).read_text(errors="replace")
    for line in re.findall(r"^\s*Summary \[.*$", text, re.M):
        counts = dict((k, int(n)) for n, k in re.findall(r"(\d+) (passed|failed|timed out)", line))
        passed += counts.get("passed", 0)
        failed += counts.get("failed", 0) + counts.get("timed out", 0)
skips = {}
for line in (logs / "skips").read_text(errors="replace").splitlines():
    test, _, reason = line.partition("\t")
    skips.setdefault(test, reason)
for test, reason in sorted(skips.items()):
    print(f"skipped: {test}: {reason}")
passed -= len(skips)  # a skipped test ended as a pass in its runner's eyes
if status != "0" and failed == 0:
    failed = 1  # a pass failed without a parsable summary (e.g. a build error)
line = f"tests: {passed} passed, {failed} failed"
print(line + (f", {len(skips)} skipped" if skips else ""))
PY
exit $status
