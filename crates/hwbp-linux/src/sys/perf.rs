//! `perf_event_open(2)` and the `PERF_EVENT_IOC_*` ioctls, returning [`OwnedFd`]s and typed errors.
//!
//! The system call goes through the small [`PerfSys`] trait so tests can pin error paths the
//! kernel cannot be made to produce on demand (see `tests/perf_errors.rs`); [`RealPerfSys`] is
//! the only production implementation. Errno values are translated here, where their meaning
//! for *this* call is known: see `kernel/events/core.c` (`perf_event_open`, `perf_copy_attr`),
//! `kernel/events/hw_breakpoint.c` (`reserve_bp_slot` → `ENOSPC`) and
//! `arch/x86/kernel/hw_breakpoint.c` (`hw_breakpoint_arch_parse` → `EINVAL`).

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use perf_event_open_sys::bindings::perf_event_attr;
use perf_event_open_sys::ioctls;

use crate::error::{permission_hint, read_proc_int, Error};
use crate::security::RefusedRequest;

/// `PERF_FLAG_FD_CLOEXEC`: every fd we open is close-on-exec, so a launched target never
/// inherits our events.
pub const PERF_FLAG_FD_CLOEXEC: u64 = perf_event_open_sys::bindings::PERF_FLAG_FD_CLOEXEC as u64;

/// Where a perf event counts: the `pid` and `cpu` arguments of `perf_event_open(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventTarget {
    /// `pid`: a thread id, `0` for the calling thread, `-1` for every task (CPU-wide).
    pub pid: i32,
    /// `cpu`: a CPU number, or `-1` for whichever CPU the thread runs on.
    pub cpu: i32,
}

impl EventTarget {
    /// True for CPU-wide events (`pid == -1`), which need more privilege.
    pub fn is_cpu_wide(self) -> bool {
        self.pid == -1
    }
}

impl fmt::Display for EventTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, self.cpu) {
            (-1, cpu) => write!(f, "every task on CPU {cpu}"),
            (0, -1) => f.write_str("the calling thread"),
            (0, cpu) => write!(f, "the calling thread on CPU {cpu}"),
            (tid, -1) => write!(f, "thread {tid}"),
            (tid, cpu) => write!(f, "thread {tid} on CPU {cpu}"),
        }
    }
}

/// The `perf_event_open` system call, behind a seam so tests can fake the kernel's answers.
///
/// Keep implementations honest: a fake should delegate to [`RealPerfSys`] for every call it
/// does not deliberately fail, so the rest of the code still talks to the real kernel.
pub trait PerfSys: Send + Sync {
    /// `perf_event_open(attr, pid, cpu, group_fd, flags)`: the new fd, or the raw errno.
    fn perf_event_open(
        &self,
        attr: &mut perf_event_attr,
        target: EventTarget,
        group_fd: Option<BorrowedFd<'_>>,
        flags: u64,
    ) -> Result<OwnedFd, Errno>;
}

/// The real system call.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealPerfSys;

impl PerfSys for RealPerfSys {
    fn perf_event_open(
        &self,
        attr: &mut perf_event_attr,
        target: EventTarget,
        group_fd: Option<BorrowedFd<'_>>,
        flags: u64,
    ) -> Result<OwnedFd, Errno> {
        let group = group_fd.map_or(-1, |fd| fd.as_raw_fd());
        // SAFETY: `attr` is a valid, initialised `perf_event_attr` that lives across the call;
        // the kernel may write the size it expects back into `attr.size` (E2BIG), which is fine
        // through the `&mut`. Breakpoint events only observe memory; they cannot make the
        // program unsound.
        let fd = unsafe {
            perf_event_open_sys::perf_event_open(attr, target.pid, target.cpu, group, flags as _)
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the kernel just returned this fd to us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Opens one breakpoint event, mapping a failure to [`Error::Open`] with a hint built from the
/// system state. `watch` describes the watch in the user's terms (e.g. "write watch on
/// 0x1000 (8 bytes)"); `watches_on_target` is how many watches this caller wants on that
/// thread/CPU, so an `ENOSPC` hint can say whether the request alone is too big.
pub fn open_breakpoint(
    sys: &dyn PerfSys,
    attr: &mut perf_event_attr,
    target: EventTarget,
    watch: &str,
    watches_on_target: usize,
) -> Result<OwnedFd, Error> {
    sys.perf_event_open(attr, target, None, PERF_FLAG_FD_CLOEXEC)
        .map_err(|errno| {
            let kernel_address = attr.exclude_kernel() == 0 && attr.exclude_user() != 0;
            Error::Open {
                what: format!("{watch} in {target}"),
                errno,
                hint: open_hint(errno, target, kernel_address, watches_on_target),
            }
        })
}

/// What to do about an errno from `perf_event_open(PERF_TYPE_BREAKPOINT)`.
fn open_hint(errno: Errno, target: EventTarget, kernel: bool, watches_on_target: usize) -> String {
    match errno {
        Errno::EACCES | Errno::EPERM => permission_hint(if kernel {
            RefusedRequest::KernelAddressWatch
        } else if target.is_cpu_wide() {
            RefusedRequest::CpuWideWatch
        } else {
            RefusedRequest::ThreadWatch
        }),
        Errno::ENOSPC => {
            let who = if target.is_cpu_wide() {
                format!("CPU {}", target.cpu)
            } else {
                format!("thread {}", target.pid)
            };
            format!(
                "{who} has no free debug register. x86 has 4 per thread and CPU, shared with gdb, \
                 perf and other hardware-breakpoint users; this request wanted {watches_on_target} \
                 there. Watch fewer addresses, stop the other user, or pass --flexible to share \
                 the registers in turns"
            )
        }
        Errno::EINVAL => "check the watch: x86 needs a length of 1, 2, 4 or 8 bytes, an address \
                          aligned to that length, execute watches of sizeof(long) bytes, and no \
                          read-only watches (use rw); kernel addresses need --kernel"
            .to_string(),
        Errno::ENOENT | Errno::ENODEV | Errno::EOPNOTSUPP => {
            let pmu = std::path::Path::new("/sys/bus/event_source/devices/breakpoint");
            if pmu.exists() {
                "the breakpoint PMU exists but refused this kind of breakpoint (range watches \
                 need a CPU with breakpoint address masks)"
                    .to_string()
            } else {
                "/sys/bus/event_source/devices/breakpoint is missing: the kernel was built \
                 without CONFIG_HAVE_HW_BREAKPOINT or runs where debug registers are hidden"
                    .to_string()
            }
        }
        Errno::ESRCH => format!(
            "{} exited before the watch was set; start it again or pick a live thread",
            target
        ),
        Errno::E2BIG => "the kernel is older than the perf_event_attr we sent: sigtrap and \
                         remove_on_exec need Linux 5.13, MODIFY_ATTRIBUTES 4.17"
            .to_string(),
        Errno::EMFILE | Errno::ENFILE => {
            "raise the file-descriptor limit (ulimit -n): hwbp opens one event per watch, \
             thread and CPU"
                .to_string()
        }
        Errno::EOVERFLOW => {
            let max = read_proc_int("/proc/sys/kernel/perf_event_max_stack");
            format!(
                "the callchain depth exceeds /proc/sys/kernel/perf_event_max_stack ({})",
                max.map_or_else(|| "unknown".to_string(), |m| m.to_string())
            )
        }
        _ => "see perf_event_open(2)".to_string(),
    }
}

fn ioctl_result(op: &'static str, what: &str, ret: i32) -> Result<i32, Error> {
    if ret < 0 {
        Err(Error::Ioctl {
            op,
            what: what.to_string(),
            errno: Errno::last(),
        })
    } else {
        Ok(ret)
    }
}

/// `PERF_EVENT_IOC_ENABLE`: start counting (and, for breakpoints, install the debug register).
pub fn enable(fd: BorrowedFd<'_>, what: &str) -> Result<(), Error> {
    // SAFETY: plain ioctl on a perf fd we borrow; the argument is an integer flag.
    let ret = unsafe { ioctls::ENABLE(fd.as_raw_fd(), 0) };
    ioctl_result("PERF_EVENT_IOC_ENABLE", what, ret).map(drop)
}

/// `PERF_EVENT_IOC_DISABLE`: stop counting; the debug-register slot stays reserved.
pub fn disable(fd: BorrowedFd<'_>, what: &str) -> Result<(), Error> {
    // SAFETY: plain ioctl on a perf fd we borrow; the argument is an integer flag.
    let ret = unsafe { ioctls::DISABLE(fd.as_raw_fd(), 0) };
    ioctl_result("PERF_EVENT_IOC_DISABLE", what, ret).map(drop)
}

/// `PERF_EVENT_IOC_RESET`: zero the event count.
pub fn reset(fd: BorrowedFd<'_>, what: &str) -> Result<(), Error> {
    // SAFETY: plain ioctl on a perf fd we borrow; the argument is an integer flag.
    let ret = unsafe { ioctls::RESET(fd.as_raw_fd(), 0) };
    ioctl_result("PERF_EVENT_IOC_RESET", what, ret).map(drop)
}

/// `PERF_EVENT_IOC_ID`: the event's id, as found in `PERF_SAMPLE_IDENTIFIER`. Inherited child
/// events report their parent's id (`primary_event_id` in `kernel/events/core.c`).
pub fn id(fd: BorrowedFd<'_>, what: &str) -> Result<u64, Error> {
    let mut id = 0u64;
    // SAFETY: the kernel writes one u64 through the pointer, which points at our local.
    let ret = unsafe { ioctls::ID(fd.as_raw_fd(), &mut id) };
    ioctl_result("PERF_EVENT_IOC_ID", what, ret).map(|_| id)
}

/// `PERF_EVENT_IOC_SET_OUTPUT`: send `fd`'s records to `output`'s ring buffer. The kernel
/// requires both events on the same CPU (`perf_event_set_output`).
pub fn set_output(fd: BorrowedFd<'_>, output: BorrowedFd<'_>, what: &str) -> Result<(), Error> {
    // SAFETY: plain ioctl on perf fds we borrow; the argument is another fd number.
    let ret = unsafe { ioctls::SET_OUTPUT(fd.as_raw_fd(), output.as_raw_fd()) };
    ioctl_result("PERF_EVENT_IOC_SET_OUTPUT", what, ret).map(drop)
}

/// `PERF_EVENT_IOC_MODIFY_ATTRIBUTES` (Linux 4.17): move a breakpoint in place, on the event
/// and every inherited child. Only `bp_addr`, `bp_len`, `bp_type` and `disabled` may differ
/// from the attr the event was opened with (`modify_user_hw_breakpoint_check`); the event is
/// left disabled if `attr.disabled` is set.
pub fn modify_attributes(
    fd: BorrowedFd<'_>,
    attr: &mut perf_event_attr,
    what: &str,
) -> Result<(), Error> {
    // SAFETY: the kernel reads a perf_event_attr through the pointer (and may write back its
    // size); it points at a valid, initialised attr borrowed mutably for the call.
    let ret = unsafe { ioctls::MODIFY_ATTRIBUTES(fd.as_raw_fd(), attr) };
    ioctl_result("PERF_EVENT_IOC_MODIFY_ATTRIBUTES", what, ret).map(drop)
}

/// What `read(2)` returns for `read_format = PERF_FORMAT_TOTAL_TIME_ENABLED |
/// PERF_FORMAT_TOTAL_TIME_RUNNING [| PERF_FORMAT_LOST]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountReading {
    /// Event count (for a breakpoint: hits), including exited and live inherited children.
    pub value: u64,
    /// Nanoseconds the event was enabled.
    pub time_enabled: u64,
    /// Nanoseconds the event was actually on a debug register.
    pub time_running: u64,
    /// Samples dropped because the ring was full (`PERF_FORMAT_LOST`), if requested.
    pub lost: Option<u64>,
}

/// Reads the count of an event opened with [`crate::perf::attr::read_format`]: 24 bytes
/// back means no `PERF_FORMAT_LOST`, 32 bytes means it is present.
pub fn read_count(fd: BorrowedFd<'_>, what: &str) -> Result<CountReading, Error> {
    let mut words = [0u64; 4];
    loop {
        // SAFETY: we pass a writable buffer of exactly size_of_val(&words) bytes.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                words.as_mut_ptr().cast(),
                std::mem::size_of_val(&words),
            )
        };
        if n == 24 || n == 32 {
            return Ok(CountReading {
                value: words[0],
                time_enabled: words[1],
                time_running: words[2],
                lost: (n == 32).then_some(words[3]),
            });
        }
        let errno = if n < 0 { Errno::last() } else { Errno::EIO };
        if errno != Errno::EINTR {
            return Err(Error::Sys {
                op: "read(perf event count)",
                what: what.to_string(),
                errno,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_like_the_user_would_say_them() {
        assert_eq!(
            EventTarget { pid: 42, cpu: 1 }.to_string(),
            "thread 42 on CPU 1"
        );
        assert_eq!(EventTarget { pid: 42, cpu: -1 }.to_string(), "thread 42");
        assert_eq!(
            EventTarget { pid: -1, cpu: 0 }.to_string(),
            "every task on CPU 0"
        );
        assert_eq!(
            EventTarget { pid: 0, cpu: -1 }.to_string(),
            "the calling thread"
        );
    }

    #[test]
    fn enospc_hint_names_the_thread_and_the_way_out() {
        let hint = open_hint(Errno::ENOSPC, EventTarget { pid: 77, cpu: 0 }, false, 5);
        assert!(
            hint.starts_with("thread 77 has no free debug register"),
            "{hint}"
        );
        assert!(
            hint.contains("wanted 5") && hint.contains("--flexible"),
            "{hint}"
        );
        let hint = open_hint(Errno::ENOSPC, EventTarget { pid: -1, cpu: 1 }, true, 1);
        assert!(
            hint.starts_with("CPU 1 has no free debug register"),
            "{hint}"
        );
    }

    #[test]
    fn permission_hint_shows_the_current_paranoid_level_and_what_is_held() {
        let level = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap();
        let hint = open_hint(Errno::EACCES, EventTarget { pid: -1, cpu: 0 }, false, 1);
        assert!(
            hint.contains(&format!("kernel.perf_event_paranoid is {}", level.trim())),
            "{hint}"
        );
        assert!(hint.starts_with("hwbp runs as "), "{hint}");
        let state = crate::security::SecurityState::read();
        assert_eq!(
            hint.contains("CPU-wide watches are unavailable"),
            state.permits(RefusedRequest::CpuWideWatch),
            "{hint}"
        );
    }
}
