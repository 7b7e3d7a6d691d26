//! Typed errors of the Linux layer, with the errno mapped where each call is made.
//!
//! Every variant names the operation, what it was done to (target + watch), the raw errno, and
//! a hint read from the system state at the time of the error (for example the current
//! `/proc/sys/kernel/perf_event_paranoid`). The meaning of an errno depends on the call:
//! `ENOSPC` from `perf_event_open(PERF_TYPE_BREAKPOINT)` means "no free debug register"
//! (`kernel/events/hw_breakpoint.c`, `reserve_bp_slot`), not "disk full".

use nix::errno::Errno;

/// Everything that can go wrong in the Linux layer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `perf_event_open` refused a breakpoint event.
    #[error("cannot watch {what}: {}; {hint}", reason_for_open(*.errno))]
    Open {
        /// The watch and the thread/CPU it was opened for, in the user's terms.
        what: String,
        /// The raw errno the kernel returned.
        errno: Errno,
        /// What to do about it, built from the system state when the error happened.
        hint: String,
    },
    /// A perf event ioctl (`PERF_EVENT_IOC_*`) failed.
    #[error("{op} failed on {what}: {} ({errno})", reason_for_ioctl(op, *.errno))]
    Ioctl {
        /// The ioctl, e.g. `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`.
        op: &'static str,
        /// The event it was issued on.
        what: String,
        /// The raw errno.
        errno: Errno,
    },
    /// Mapping a perf ring buffer failed.
    #[error("cannot map a {bytes}-byte perf ring buffer for {what}: {errno}; {hint}")]
    Mmap {
        /// The event whose ring it is.
        what: String,
        /// Requested size in bytes (metadata page included).
        bytes: usize,
        /// The raw errno.
        errno: Errno,
        /// What to do about it.
        hint: String,
    },
    /// Another system call (`read`, `poll`, `sigaction`, ...) failed.
    #[error("{op} failed on {what}: {errno}")]
    Sys {
        /// The call, e.g. `read(perf event)`.
        op: &'static str,
        /// What it was done to.
        what: String,
        /// The raw errno.
        errno: Errno,
    },
    /// The caller asked for something this layer refuses before asking the kernel.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// All self-watch slots are in use.
    #[error("all {0} self-watch slots are in use: drop a SelfWatch before creating another")]
    SelfWatchSlotsFull(usize),
}

/// A coarse classification of [`Error`], in the style of `std::io::ErrorKind`, so callers can
/// choose exit codes without matching on errno values.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not allowed: `perf_event_paranoid`, missing `CAP_PERFMON`/`CAP_SYS_ADMIN`.
    PermissionDenied,
    /// No free debug register (`ENOSPC`) for that thread or CPU.
    NoFreeSlot,
    /// The kernel refused the address, length or type (`EINVAL`), or the request is malformed.
    InvalidRequest,
    /// The breakpoint PMU or the requested feature does not exist here.
    Unsupported,
    /// The target thread or process does not exist (any more).
    TargetGone,
    /// The kernel is older than the feature we asked for (`E2BIG`).
    KernelTooOld,
    /// A resource limit (memory, locked memory, file descriptors).
    ResourceLimit,
    /// Anything else.
    Other,
}

impl Error {
    /// The raw errno behind this error, if it came from a system call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { errno, .. }
            | Error::Ioctl { errno, .. }
            | Error::Mmap { errno, .. }
            | Error::Sys { errno, .. } => Some(*errno),
            Error::InvalidRequest(_) | Error::SelfWatchSlotsFull(_) => None,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest(_) => ErrorKind::InvalidRequest,
            Error::SelfWatchSlotsFull(_) => ErrorKind::ResourceLimit,
            Error::Ioctl { op, errno, .. } if *op == "PERF_EVENT_IOC_MODIFY_ATTRIBUTES" => {
                match errno {
                    Errno::ENOTTY | Errno::EOPNOTSUPP => ErrorKind::Unsupported,
                    other => kind_of_errno(*other),
                }
            }
            other => other.errno().map_or(ErrorKind::Other, kind_of_errno),
        }
    }
}

fn kind_of_errno(errno: Errno) -> ErrorKind {
    match errno {
        Errno::EACCES | Errno::EPERM => ErrorKind::PermissionDenied,
        Errno::ENOSPC => ErrorKind::NoFreeSlot,
        Errno::EINVAL | Errno::EOVERFLOW => ErrorKind::InvalidRequest,
        Errno::ENOENT | Errno::ENODEV | Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::ENOTTY => {
            ErrorKind::Unsupported
        }
        Errno::ESRCH => ErrorKind::TargetGone,
        Errno::E2BIG => ErrorKind::KernelTooOld,
        Errno::ENOMEM | Errno::EMFILE | Errno::ENFILE => ErrorKind::ResourceLimit,
        _ => ErrorKind::Other,
    }
}

/// What an errno from `perf_event_open(PERF_TYPE_BREAKPOINT)` means.
fn reason_for_open(errno: Errno) -> String {
    let meaning = match errno {
        Errno::EACCES | Errno::EPERM => "permission denied",
        Errno::ENOSPC => "no free hardware debug register",
        Errno::EINVAL => "the kernel refused the breakpoint (address, length, alignment or type)",
        Errno::ENOENT | Errno::ENODEV | Errno::EOPNOTSUPP => {
            "this kernel or CPU has no usable breakpoint PMU for this request"
        }
        Errno::ESRCH => "the target thread no longer exists",
        Errno::E2BIG => "the kernel does not know some requested perf_event_attr fields",
        Errno::EMFILE | Errno::ENFILE => "out of file descriptors",
        Errno::ENOMEM => "the kernel ran out of memory",
        _ => "perf_event_open failed",
    };
    format!("{meaning} ({errno})")
}

fn reason_for_ioctl(op: &str, errno: Errno) -> &'static str {
    match (op, errno) {
        ("PERF_EVENT_IOC_MODIFY_ATTRIBUTES", Errno::ENOTTY) => {
            "this kernel cannot move a breakpoint in place (needs Linux 4.17)"
        }
        ("PERF_EVENT_IOC_MODIFY_ATTRIBUTES", Errno::EINVAL) => {
            "the kernel refused the new address, length or type"
        }
        ("PERF_EVENT_IOC_MODIFY_ATTRIBUTES", Errno::ENOSPC) => {
            "no free debug register for the new breakpoint type"
        }
        ("PERF_EVENT_IOC_SET_OUTPUT", Errno::EINVAL) => {
            "the kernel refused to share the ring buffer (events on different CPUs?)"
        }
        (_, Errno::ESRCH) => "the target is gone",
        _ => "the kernel refused the request",
    }
}

/// Reads a `/proc/sys` integer; `None` if unreadable.
pub(crate) fn read_proc_int(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The hint for an `EACCES`/`EPERM` from `perf_event_open`: what this process holds and, when
/// that should have sufficed, the security policy that refused it ([`crate::security`]).
pub(crate) fn permission_hint(request: crate::security::RefusedRequest) -> String {
    crate::security::SecurityState::read().explain(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_errno_meaning_for_perf_event_open() {
        let open = |errno| Error::Open {
            what: "w".into(),
            errno,
            hint: String::new(),
        };
        assert_eq!(open(Errno::ENOSPC).kind(), ErrorKind::NoFreeSlot);
        assert_eq!(open(Errno::EACCES).kind(), ErrorKind::PermissionDenied);
        assert_eq!(open(Errno::EPERM).kind(), ErrorKind::PermissionDenied);
        assert_eq!(open(Errno::EINVAL).kind(), ErrorKind::InvalidRequest);
        assert_eq!(open(Errno::ENOENT).kind(), ErrorKind::Unsupported);
        assert_eq!(open(Errno::ESRCH).kind(), ErrorKind::TargetGone);
        assert_eq!(open(Errno::E2BIG).kind(), ErrorKind::KernelTooOld);
        let modify = Error::Ioctl {
            op: "PERF_EVENT_IOC_MODIFY_ATTRIBUTES",
            what: "w".into(),
            errno: Errno::ENOTTY,
        };
        assert_eq!(modify.kind(), ErrorKind::Unsupported);
        assert!(modify.to_string().contains("4.17"), "{modify}");
    }

    #[test]
    fn open_message_names_target_meaning_and_hint() {
        let e = Error::Open {
            what: "write watch on 0x1000 (8 bytes) in thread 42 on CPU 1".into(),
            errno: Errno::ENOSPC,
            hint: "use fewer watches".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot watch write watch on 0x1000 (8 bytes) in thread 42 on CPU 1: \
             no free hardware debug register (ENOSPC: No space left on device); use fewer watches"
        );
    }
}
