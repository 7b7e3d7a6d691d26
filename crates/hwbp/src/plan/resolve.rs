//! Target resolution: a [`Target`] as asked for becomes a [`PlannedTarget`], its threads
//! listed, ptrace access checked, CPUs checked online, or a command launched and held stopped
//! at its entry point (`hwbp_linux::launch`); a target that does not exist is refused with what
//! to check.

use hwbp_linux::{launch, probe, target};

use crate::error::{Error, ErrorKind, Result};

use super::{PlannedTarget, Target};

/// A target that does not exist, with what to do about it.
fn target_error(e: target::TargetError) -> Error {
    match e {
        target::TargetError::NoSuchProcess(_) | target::TargetError::NoSuchThread { .. } => {
            Error::bad_input(format!("{e}: check the id with ps -eLf or pgrep"))
        }
        other => Error::bad_input(other.to_string()),
    }
}

fn ptrace_access(pid: i32) -> Result<()> {
    probe::require_ptrace_access(pid).map_err(|e| Error::new(ErrorKind::Permission, e.to_string()))
}

pub(super) fn resolve_target(target: Target) -> Result<PlannedTarget> {
    match target {
        Target::Process(pid) => {
            let tids = target::threads_of(pid).map_err(target_error)?;
            ptrace_access(pid)?;
            Ok(PlannedTarget::Threads {
                pid,
                tids,
                launched: None,
            })
        }
        Target::Thread(tid) => {
            let pid = target::process_of_thread(tid).map_err(target_error)?;
            ptrace_access(pid)?;
            Ok(PlannedTarget::Threads {
                pid,
                tids: vec![tid],
                launched: None,
            })
        }
        Target::AllCpus => Ok(PlannedTarget::Cpus {
            cpus: target::online_cpus().map_err(|e| Error::wrap(ErrorKind::Kernel, "", e))?,
            all: true,
        }),
        Target::Cpus(cpus) => {
            target::require_online(&cpus).map_err(|e| Error::bad_input(e.to_string()))?;
            Ok(PlannedTarget::Cpus { cpus, all: false })
        }
        Target::Launch(argv) => {
            let launched = launch::launch(&argv).map_err(|e| match e {
                launch::LaunchError::Spawn { .. } => Error::bad_input(format!(
                    "{e}: check the program's path and that it is executable (hwbp runs it \
                     directly, without a shell)"
                )),
                other => Error::bad_input(other.to_string()),
            })?;
            let pid = launched.pid();
            Ok(PlannedTarget::Threads {
                pid,
                tids: vec![pid],
                launched: Some(super::LaunchedCommand(launched)),
            })
        }
    }
}
