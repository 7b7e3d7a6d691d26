//! What this process may do, asked of the kernel before any watch is armed: kernel-mode
//! sampling (`perf_event_paranoid`), capabilities, ptrace access to another user's process, and
//! how many debug registers a thread or CPU has free (by trial).
//!
//! Kernel behaviour followed:
//! - `perf_event_open` on a task needs `ptrace_may_access(PTRACE_MODE_READ_REALCREDS)`
//!   (`kernel/events/core.c`), which without `CAP_SYS_PTRACE` requires the same user
//!   (`__ptrace_may_access` in `kernel/ptrace.c`);
//! - kernel-mode samples need `perf_event_paranoid <= 1` or `CAP_PERFMON`
//!   (`perf_allow_kernel` in `include/linux/perf_event.h`);
//! - a breakpoint takes a slot when it is created (`reserve_bp_slot` in
//!   `kernel/events/hw_breakpoint.c`), so opening disabled events until `ENOSPC` counts the free
//!   slots exactly; the trial events are closed before this returns.

use std::os::fd::OwnedFd;

use hwbp_core::Access;

use crate::error::{Error, ErrorKind};
use crate::perf::attr::breakpoint_attr;
use crate::perf::{SampleOptions, WatchRequest};
use crate::sys::perf::{open_breakpoint, EventTarget, RealPerfSys};

/// `CAP_SYS_PTRACE` (`include/uapi/linux/capability.h`).
pub const CAP_SYS_PTRACE: u32 = 19;
/// `CAP_PERFMON`.
pub const CAP_PERFMON: u32 = 38;
/// `CAP_BPF`.
pub const CAP_BPF: u32 = 39;

/// Debug registers per thread and per CPU on x86.
pub const X86_DEBUG_REGISTERS: u32 = 4;

/// True when this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `/proc/sys/kernel/perf_event_paranoid`, if readable.
pub fn perf_event_paranoid() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
}

/// True when this process's effective capability set holds capability `bit`.
pub fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// True when this process may see kernel-mode accesses: root, `CAP_PERFMON`, or
/// `perf_event_paranoid <= 1`.
pub fn may_watch_kernel_mode() -> bool {
    is_root() || has_capability(CAP_PERFMON) || perf_event_paranoid().is_some_and(|l| l <= 1)
}

/// Why this process may not watch another user's process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "process {pid} belongs to uid {owner}, not to you (uid {me}): watching another user's \
     process needs CAP_SYS_PTRACE; run hwbp as that user, or as root"
)]
pub struct PtraceAccessDenied {
    /// The process.
    pub pid: i32,
    /// Its owner.
    pub owner: u32,
    /// This process's effective uid.
    pub me: u32,
}

/// Refuses, before any event is opened, a process of another user when this process lacks
/// `CAP_SYS_PTRACE`. Whatever the answer here, the kernel still decides at open time (Yama,
/// `dumpable`); a process that cannot be looked up passes (the open then says why).
pub fn require_ptrace_access(pid: i32) -> Result<(), PtraceAccessDenied> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid()) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if owner == me || has_capability(CAP_SYS_PTRACE) {
        return Ok(());
    }
    Err(PtraceAccessDenied { pid, owner, me })
}

/// How many debug registers the kernel would give a new breakpoint on `target` right now,
/// found by opening disabled trial events on page 0 until `ENOSPC` (they count nothing and are
/// closed before this returns).
pub fn kernel_free_slots(target: EventTarget) -> Result<u32, Error> {
    let mut held: Vec<OwnedFd> = Vec::new();
    for i in 0..u64::from(X86_DEBUG_REGISTERS) {
        let watch = WatchRequest {
            pinned: true,
            exclude_kernel: true,
            ..WatchRequest::new(0x100 + 8 * i, 8, Access::Write)
        };
        let mut attr = breakpoint_attr(&watch, &SampleOptions::default(), false);
        attr.set_disabled(1);
        match open_breakpoint(&RealPerfSys, &mut attr, target, "trial slot", 1) {
            Ok(fd) => held.push(fd),
            Err(e) if e.kind() == ErrorKind::NoFreeSlot => break,
            Err(e) => return Err(e),
        }
    }
    Ok(held.len() as u32)
}

/// Why the kernel refuses kernel-address breakpoints to this process, found by opening one the
/// way `hwbp ksym` arms it: a disabled, pinned, CPU-wide read/write event on kernel address
/// `address` on CPU 0, counting kernel-mode accesses only (closed before this returns). `None`
/// when the kernel allows it; otherwise the error, whose hint names the cause
/// ([`crate::security`]).
pub fn kernel_address_watch_refusal(address: u64) -> Option<Error> {
    let watch = WatchRequest {
        pinned: true,
        exclude_user: true,
        ..WatchRequest::new(address, 4, Access::ReadWrite)
    };
    let mut attr = breakpoint_attr(&watch, &SampleOptions::default(), false);
    attr.set_disabled(1);
    let target = EventTarget { pid: -1, cpu: 0 };
    match open_breakpoint(&RealPerfSys, &mut attr, target, "trial kernel watch", 1) {
        Ok(_closed_on_drop) => None,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Some(e),
        // Anything else (no free register, a bad address) is not a refusal of the capability.
        Err(_) => None,
    }
}

/// The fewest debug registers free on any of `targets` (each a thread or a CPU), by trial;
/// `None` when the kernel would not say for one of them (e.g. no permission: the real open then
/// reports why).
pub fn fewest_free_slots(targets: &[EventTarget]) -> Option<u32> {
    let mut free: Option<u32> = None;
    for &target in targets {
        let here = kernel_free_slots(target).ok()?;
        free = Some(free.map_or(here, |f| f.min(here)));
    }
    free
}

/// A process holding perf events, as `/proc/PID/fd` shows them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PerfEventHolder {
    /// Process id.
    pub pid: i32,
    /// Its command name.
    pub comm: String,
    /// How many perf event fds it has open (any perf event, not only breakpoints).
    pub events: usize,
}

/// Every other process holding perf event fds (`anon_inode:[perf_event]` links), by pid.
pub fn perf_event_holders() -> Vec<PerfEventHolder> {
    let mut holders = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let events = fds
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| link.to_string_lossy() == "anon_inode:[perf_event]")
            })
            .count();
        if events > 0 && pid != std::process::id() as i32 {
            let comm = crate::target::process_comm(pid).unwrap_or_else(|_| "?".into());
            holders.push(PerfEventHolder { pid, comm, events });
        }
    }
    holders.sort();
    holders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_always_accessible() {
        assert_eq!(require_ptrace_access(std::process::id() as i32), Ok(()));
    }

    #[test]
    fn a_missing_process_is_left_to_the_kernel() {
        // pid_max is at most 2^22: this pid cannot exist.
        assert_eq!(require_ptrace_access(1 << 23), Ok(()));
    }
}
