//! ptrace access to a stopped thread's virtual debug registers.
//!
//! Follows `arch/x86/kernel/ptrace.c` (`ptrace_get_debugreg`,
//! `ptrace_set_debugreg`, `ptrace_write_dr7`): `PTRACE_PEEKUSER` and
//! `PTRACE_POKEUSER` at `offsetof(struct user, u_debugreg[n])`. The kernel backs
//! each DR0-3 with a per-task perf breakpoint, so these writes go through the
//! same slot accounting (`kernel/events/hw_breakpoint.c`) as perf events.
//!
//! What the kernel does with each register (see `docs/kernel-reference.md` §4):
//! - DR0-3 read back the address of the slot's breakpoint, or 0 if none.
//!   Writing one the first time registers a *disabled* placeholder breakpoint
//!   that already holds a slot; a kernel address gives `EINVAL`.
//! - DR4 and DR5 read as 0 and reject writes with `EIO`.
//! - DR6 reads the virtual DR6 (architectural polarity).
//! - DR7 reads back the raw value last written successfully. A write is
//!   validated per slot (`EINVAL` for an address misaligned for the length,
//!   I/O breakpoints, execute with a length; `ENOSPC` when slots run out) and
//!   is rolled back as a whole on error.
//!
//! Slots reserved through ptrace are released only when the thread execs or
//! exits (`flush_ptrace_hw_breakpoint`), not when DR7 is cleared or the tracer
//! detaches.
//!
//! Every function needs the thread to be ptrace-stopped by the calling thread.
//!
//! [`StopTracer`] (stop mode) builds on these: it traces every thread of a process, arms the
//! same [`DebugRegisterSet`] in each (new threads before they run), reports each hit with the
//! thread stopped, and restores every thread's registers when it detaches.

#[cfg(target_arch = "x86_64")]
mod debugreg;
mod tracee;
#[cfg(target_arch = "x86_64")]
mod tracer;

#[cfg(target_arch = "x86_64")]
pub use debugreg::{
    debugreg_offset, peek_debugreg, poke_debugreg, DebugRegisterGuard, DR7_LOCAL_ENABLE_0,
};
pub use tracee::SeizedThread;
#[cfg(target_arch = "x86_64")]
pub use tracer::{
    classify_sigtrap, is_debug_exception_trap, DebugRegisterSet, StopEvent, StopTracer, StopWaker,
    StoppedRegisters, TracerError, TrapOrigin,
};

use nix::errno::Errno;

/// An error from a ptrace operation on one thread.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PtraceError {
    /// A debug register number outside 0..=7.
    #[error("there is no debug register DR{0} (x86 has DR0-DR7)")]
    NoSuchRegister(u8),
    /// Reading a debug register failed.
    #[error("cannot read DR{register} of thread {tid}: {errno}{}", hint(*errno))]
    Peek {
        /// Thread id.
        tid: i32,
        /// Register number.
        register: u8,
        /// The kernel's error.
        errno: Errno,
    },
    /// Writing a debug register failed.
    #[error("cannot write {value:#x} to DR{register} of thread {tid}: {errno}{}", hint(*errno))]
    Poke {
        /// Thread id.
        tid: i32,
        /// Register number.
        register: u8,
        /// The value that was refused.
        value: u64,
        /// The kernel's error.
        errno: Errno,
    },
    /// Another ptrace request (seize, interrupt, wait, detach) failed.
    #[error("cannot {operation} thread {tid}: {errno}{}", hint(*errno))]
    Request {
        /// What was attempted, e.g. "seize".
        operation: &'static str,
        /// Thread id.
        tid: i32,
        /// The kernel's error.
        errno: Errno,
    },
    /// The thread did something other than stop when it was expected to stop.
    #[error("thread {tid} did not stop as expected: {status}")]
    UnexpectedStatus {
        /// Thread id.
        tid: i32,
        /// The wait status, described.
        status: String,
    },
}

impl PtraceError {
    /// The raw errno, for errors that carry one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Peek { errno, .. } | Self::Poke { errno, .. } | Self::Request { errno, .. } => {
                Some(*errno)
            }
            Self::NoSuchRegister(_) | Self::UnexpectedStatus { .. } => None,
        }
    }
}

/// What an errno means for a debug-register access, in the user's terms.
fn hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ESRCH => " (the thread is gone, or is not ptrace-stopped by this thread)",
        Errno::EPERM => " (not allowed: check /proc/sys/kernel/yama/ptrace_scope, or run as root)",
        Errno::EINVAL => {
            " (the kernel rejected the breakpoint: address misaligned for its length, \
             a kernel address, or an unsupported type/length combination)"
        }
        Errno::ENOSPC => " (all 4 debug-register slots of this thread are in use)",
        Errno::EIO => " (no such debug register: DR4 and DR5 do not exist)",
        _ => "",
    }
}
