#!/usr/bin/env bash
# Installs what hwbp's tests need and is missing, and nothing else: the Debian packages the
# tests run or read, and cargo-nextest. Packages already installed cost one dpkg-query.
#   gcc, g++, libc6-dev: the C and C++ fixtures;  gdb, linux-perf: the peers tests compare
#   against;  libc6-dbg: libc's separate debug file (build-id path);  procps: sysctl, pgrep;
#   chromium: loads `hwbp report --html` pages headless;  man-db: renders `hwbp man`;
#   python3: a program we did not write, loading a library through ctypes.
set -euo pipefail
packages=(gcc g++ libc6-dev libc6-dbg gdb linux-perf procps chromium man-db python3)
missing=()
if command -v dpkg-query >/dev/null; then
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
else
    echo "install-test-deps: no dpkg-query: this is not a Debian system; install the equivalents of: ${packages[*]}" >&2
fi
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "install-test-deps: missing Debian packages: ${missing[*]}; run as root (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "install-test-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "install-test-deps: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi
