//! Integration tests for hwbp-symbols against real programs and the running kernel.
//!
//! The C fixtures in `c/` are compiled with gcc (and the Rust one with rustc) into
//! `CARGO_TARGET_TMPDIR`; each prints its pid and addresses, then blocks on stdin.

/// Building and running the fixture programs.
mod fixtures;
/// `KernelSymbols` on the real `/proc/kallsyms`.
mod kernel;
/// `ProcessSymbols` on PIE, non-PIE, shared-library and Rust fixtures.
mod process;
