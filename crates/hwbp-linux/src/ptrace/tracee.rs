//! Attaching to a running thread with `PTRACE_SEIZE` + `PTRACE_INTERRUPT`
//! (`kernel/ptrace.c`), and detaching again on drop.

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::PtraceError;

/// A thread seized and stopped by the calling thread; detached on drop.
///
/// ptrace ties a tracee to the tracer *thread*: every request, including the
/// detach in `Drop`, must come from the thread that called
/// [`SeizedThread::seize_stopped`].
#[derive(Debug)]
pub struct SeizedThread {
    tid: i32,
    attached: bool,
}

impl SeizedThread {
    /// Seizes thread `tid` (`PTRACE_SEIZE`, no signal sent), interrupts it
    /// (`PTRACE_INTERRUPT`) and waits until it is in a ptrace stop.
    pub fn seize_stopped(tid: i32) -> Result<Self, PtraceError> {
        let pid = Pid::from_raw(tid);
        ptrace::seize(pid, ptrace::Options::empty()).map_err(|errno| PtraceError::Request {
            operation: "seize",
            tid,
            errno,
        })?;
        // From here on, Drop detaches.
        let mut seized = Self {
            tid,
            attached: true,
        };
        ptrace::interrupt(pid).map_err(|errno| PtraceError::Request {
            operation: "interrupt",
            tid,
            errno,
        })?;
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::PtraceEvent(_, _, _)) | Ok(WaitStatus::Stopped(_, _)) => Ok(seized),
            Ok(other) => {
                seized.attached =
                    !matches!(other, WaitStatus::Exited(..) | WaitStatus::Signaled(..));
                Err(PtraceError::UnexpectedStatus {
                    tid,
                    status: format!("{other:?}"),
                })
            }
            Err(errno) => Err(PtraceError::Request {
                operation: "wait for",
                tid,
                errno,
            }),
        }
    }

    /// The stopped thread's id.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Detaches now (`PTRACE_DETACH`, no signal), letting the thread run.
    pub fn detach(mut self) -> Result<(), PtraceError> {
        self.attached = false;
        ptrace::detach(Pid::from_raw(self.tid), None::<Signal>).map_err(|errno| {
            PtraceError::Request {
                operation: "detach from",
                tid: self.tid,
                errno,
            }
        })
    }
}

impl Drop for SeizedThread {
    fn drop(&mut self) {
        if self.attached {
            // ESRCH means the thread is gone; there is nothing left to release.
            let _ = ptrace::detach(Pid::from_raw(self.tid), None::<Signal>);
        }
    }
}
