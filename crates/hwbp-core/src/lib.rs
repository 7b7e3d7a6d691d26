//! # hwbp-core
//!
//! The pure heart of hwbp: everything about hardware breakpoints that can be decided without
//! talking to a kernel.
//!
//! ## Design constraints
//! - `no_std` + `alloc`: usable from Rust kernels, hypervisors and emulators.
//! - No syscalls, no I/O, no `unsafe` (`#![forbid(unsafe_code)]`), deterministic.
//! - Every rule that mirrors the Linux kernel cites the kernel file it follows.
//!
//! ## Module map
//! - [`access`]: what a breakpoint watches for (`HW_BREAKPOINT_R/W/X`, `include/uapi/linux/hw_breakpoint.h`).
//! - [`arch::x86`]: DR7/DR6 codecs and the kernel's breakpoint validation
//!   (`arch/x86/kernel/hw_breakpoint.c`).
//! - [`arch::arm64`]: DBGBCR/DBGWCR codecs (`arch/arm64/kernel/hw_breakpoint.c`).
//! - [`compare`]: `--if`, a watched integer against a literal with C's promotions and
//!   conversions: one model for the in-kernel filter, stop mode and typed values.
//! - [`constraint`]: the slot-constraint engine (`kernel/events/hw_breakpoint.c`), in the
//!   mainline and the 2009 seed policies, plus the scenario language of `hwbp constraints`.
//! - [`debugreg_alloc`]: sharing, splitting and allocating DR0-DR3 for ptrace stop mode.
//! - [`region`]: splitting an arbitrary byte range into aligned debug-register pieces.
//! - [`sched`]: the rotation scheduler: pinned pieces keep a debug register, flexible ones take
//!   turns on the rest, with perf-style time_enabled/time_running scaling.
//! - [`spec`]: the watch-spec parser (native, perf `mem:` and bpftrace `watchpoint:` forms).
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod access;
pub mod arch;
pub mod compare;
pub mod constraint;
pub mod debugreg_alloc;
pub mod region;
pub mod sched;
pub mod spec;

pub use access::{Access, BpType};
