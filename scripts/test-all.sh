#!/usr/bin/env bash
# Runs every hwbp test. Tests named `exclusive_*` use CPU-wide breakpoints, CPU hotplug or ptrace:
# they share every CPU's debug registers, so they run in a second, serial pass after all others.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --no-fail-fast -E 'not test(/exclusive_/)'
cargo nextest run --workspace --no-fail-fast -E 'test(/exclusive_/)' --test-threads 1 --no-tests=warn
cargo test --workspace --doc
