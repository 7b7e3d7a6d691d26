//! Thin, safe wrappers over the system calls this crate makes. Every `unsafe` block of the perf
//! layer lives under `sys/` or `ring/mmap.rs`.

pub mod perf;
