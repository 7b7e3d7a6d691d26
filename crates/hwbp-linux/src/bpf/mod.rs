//! The in-kernel hit handler: a BPF program hwbp assembles at run time and attaches to its
//! breakpoint events, so every hit's value is read in the writing thread right after the store,
//! filtered, and either emitted to a BPF ring buffer or counted in a map (issue 12).
//!
//! Owns: instruction encoding and assembly ([`insn`]), the `bpf(2)` calls ([`sys`]), the BPF
//! ring buffer consumer ([`ringbuf`]) and the handler program and its maps ([`handler`]).
//!
//! Kernel behaviour it follows (see `docs/kernel-reference.md` §11):
//! - A `BPF_PROG_TYPE_PERF_EVENT` program attached with `PERF_EVENT_IOC_SET_BPF` runs from the
//!   event's overflow path (`__perf_event_overflow` → `bpf_overflow_handler` in
//!   `kernel/events/core.c`), for a breakpoint inside the debug exception in the accessing
//!   thread (`hw_breakpoint_handler` → `perf_bp_event`). x86 data breakpoints trap after the
//!   access, so memory already holds the new value. Its return value 0 drops the perf sample
//!   (no ring record, no wakeup); the event's count is incremented before, so it stays exact.
//! - `bpf_overflow_handler` skips the program (and drops the sample) when another BPF program
//!   is already running on that CPU (`bpf_prog_active`): such hits are counted by the perf
//!   event but seen by no program. [`handler::HandlerStats::runs`] counts the program's runs,
//!   so `perf count - runs` is the number of hits the kernel skipped
//!   ([`handler::HandlerStats::skipped`]).
//! - The context is `struct bpf_perf_event_data { struct pt_regs regs; __u64 sample_period;
//!   __u64 addr; }` (`include/uapi/linux/bpf_perf_event.h`); `addr` is the breakpoint's
//!   `bp_addr` (`perf_bp_event` in `kernel/events/hw_breakpoint.c` sets `data.addr`), which
//!   `MODIFY_ATTRIBUTES` changes on rotation, so the handler keys on `ctx->addr`.
//! - Helpers available to perf-event programs: `pe_prog_func_proto` in
//!   `kernel/trace/bpf_trace.c`; the GPL-only ones accept the license "Dual MIT/GPL".
//!
//! ## Why hand-assembled over raw `bpf(2)`
//! The program depends on the watch set (addresses, widths, filter constants) and is small
//! (tens of instructions). `aya` and `libbpf-rs` load compiled BPF objects, which would need
//! clang or bpf-linker (or nightly) at build time; `libbpf-sys` adds a C build. The bpf(2)
//! surface we use is nine commands over `union bpf_attr` prefixes, through `libc`, which is
//! already a dependency, so no new crate is added.

pub mod handler;
pub mod insn;
pub mod ringbuf;
pub mod sys;

pub use handler::{
    HandlerMode, HandlerPiece, HandlerRecord, HandlerSpec, HandlerStats, HitHandler, PieceString,
    TrapString, ValueFilter,
};

use nix::errno::Errno;

/// Everything that can go wrong loading or running the hit handler.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Not allowed to use `bpf(2)` (or attach).
    #[error("{op}: not permitted; {hint}")]
    Permission {
        /// The command.
        op: &'static str,
        /// `EPERM` or `EACCES`.
        errno: Errno,
        /// What would work.
        hint: String,
    },
    /// The verifier refused the program; `line` is its error, in one line.
    #[error("the kernel's verifier refused the hit handler: {line} ({errno})")]
    Refused {
        /// The errno of `BPF_PROG_LOAD`.
        errno: Errno,
        /// The verifier's error line.
        line: String,
        /// The end of the verifier log, for debugging.
        log: String,
    },
    /// `PERF_EVENT_IOC_SET_BPF` failed.
    #[error("cannot attach the hit handler to a breakpoint event: {hint} ({errno})")]
    Attach {
        /// The errno.
        errno: Errno,
        /// What it means here.
        hint: String,
    },
    /// Another `bpf(2)` or system call failed.
    #[error("{op} failed: {hint} ({errno})")]
    Sys {
        /// The command or call.
        op: &'static str,
        /// The errno.
        errno: Errno,
        /// What it means here.
        hint: String,
    },
    /// The spec cannot be turned into a program (refused before asking the kernel).
    #[error("invalid hit handler: {0}")]
    Invalid(String),
}

impl BpfError {
    /// Maps an errno of `op` to an error in the user's terms.
    pub fn from_errno(op: &'static str, errno: Errno) -> BpfError {
        let hint = match errno {
            Errno::EPERM | Errno::EACCES => {
                return BpfError::Permission {
                    op,
                    errno,
                    hint: sys::permission_hint(),
                }
            }
            Errno::ENOSYS => "this kernel has no bpf(2) (CONFIG_BPF_SYSCALL is off)".to_string(),
            Errno::ENOMEM => "the kernel could not allocate the map or program (memory cgroup \
                              limit, or a too-large ring buffer)"
                .to_string(),
            Errno::EINVAL => "the kernel does not support this map or program type, or a size \
                              is wrong (ring buffers need a power-of-two number of pages)"
                .to_string(),
            Errno::E2BIG => "the map is full".to_string(),
            Errno::EMFILE | Errno::ENFILE => "raise the file-descriptor limit (ulimit -n)".into(),
            _ => "see bpf(2)".to_string(),
        };
        BpfError::Sys { op, errno, hint }
    }

    /// The errno behind this error, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            BpfError::Permission { errno, .. }
            | BpfError::Refused { errno, .. }
            | BpfError::Attach { errno, .. }
            | BpfError::Sys { errno, .. } => Some(*errno),
            BpfError::Invalid(_) => None,
        }
    }
}

/// A cheap probe: can this process load a `BPF_PROG_TYPE_PERF_EVENT` program (`r0 = 0;
/// exit`)? The error says why not, in one line.
pub fn available() -> Result<(), BpfError> {
    let mut asm = insn::Asm::new();
    asm.mov(insn::Reg::R0, 0).exit();
    let raw = asm
        .finish()
        .encode(&|_| None)
        .map_err(|e| BpfError::Invalid(e.to_string()))?;
    sys::Prog::load_perf_event(&insn::to_bytes(&raw), "hwbp_probe").map(drop)
}
