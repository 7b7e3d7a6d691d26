//! Ending a command hwbp launched: the one place that does it, for every way a watch ends before
//! the command does (a hit limit, a duration, Ctrl-C/SIGTERM to hwbp, an error).
//!
//! [`end_command`] sends `SIGTERM` (and `SIGCONT`, for one that is stopped) to the command and to
//! every process it started that is still its descendant (found through
//! `/proc/PID/task/TID/children`, `fs/proc/array.c`), waits up to
//! a grace period ([`END_GRACE`]) for them to go, then sends `SIGKILL` to what remains, and reaps
//! the command (`waitpid`; its descendants are reaped by their own parents, or by init once
//! reparented, `kernel/exit.c` `forget_original_parent`). A launched command shares hwbp's
//! process group (it is spawned without `setsid`/`setpgid`, so it gets the terminal's Ctrl-C as
//! hwbp does), so there is no group of its own to signal: the tree walk stands in for it.
//!
//! The command must be a child of this process that is no longer ptrace-stopped by it (a
//! stopped tracee acts on `SIGTERM` only once continued): resumed ([`crate::launch`]) or
//! detached (stop mode). A command that already exited is only reaped.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::launch::ProcessExit;

/// How long a command has between `SIGTERM` and `SIGKILL`: time to flush its output and remove
/// its temporary files (a shell, a test runner), short enough that `hwbp ... | head` returns at
/// once to the eye. perf and timeout(1) send the same two signals.
pub const END_GRACE: Duration = Duration::from_millis(500);

/// How often the grace period looks whether everything is gone.
const POLL: Duration = Duration::from_millis(5);

/// How a command came to its end in [`end_command`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// How it ended (reaped).
    pub exit: ProcessExit,
    /// The last signal hwbp sent it (`SIGTERM`, or `SIGKILL` when the grace ran out); `None`
    /// when it had exited by itself before hwbp sent anything.
    pub signal: Option<Signal>,
}

/// An error while ending a command.
#[derive(Debug, thiserror::Error)]
#[error("cannot end the command (pid {pid}): {operation} failed: {errno}")]
pub struct EndError {
    /// The command.
    pub pid: i32,
    /// What failed (`send SIGTERM to`, `wait for`).
    pub operation: &'static str,
    /// The kernel's error.
    pub errno: Errno,
}

/// Ends `pid`, a command this process launched, and what it started; see the module docs.
pub fn end_command(pid: i32, grace: Duration) -> Result<Ended, EndError> {
    let fail = |operation| {
        move |errno| EndError {
            pid,
            operation,
            errno,
        }
    };
    if let Some(exit) = reap(pid, true).map_err(fail("wait for"))? {
        return Ok(Ended { exit, signal: None });
    }
    let mut tree = descendants(pid);
    let mut last = Signal::SIGTERM;
    send(pid, &tree, last).map_err(fail("send SIGTERM to"))?;
    // A stopped process acts on SIGTERM only once continued (`wants_signal` in
    // `kernel/signal.c`); timeout(1) sends SIGCONT after its signal for the same reason.
    send(pid, &tree, Signal::SIGCONT).map_err(fail("send SIGCONT to"))?;
    let deadline = Instant::now() + grace;
    let mut exit = None;
    loop {
        if exit.is_none() {
            exit = reap(pid, true).map_err(fail("wait for"))?;
        }
        tree.retain(|&p| is_alive(p));
        if exit.is_some() && tree.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            last = Signal::SIGKILL;
            if exit.is_none() {
                // Its children of this moment too: some may have been started since.
                tree.extend(descendants(pid));
            }
            send(pid, &tree, last).map_err(fail("send SIGKILL to"))?;
            break;
        }
        std::thread::sleep(POLL);
    }
    let exit = match exit {
        Some(exit) => exit,
        None => reap(pid, false)
            .map_err(fail("wait for"))?
            .expect("a blocking wait returns an exit"),
    };
    Ok(Ended {
        exit,
        signal: Some(last),
    })
}

/// Sends `signal` to `pid` (unless already reaped: its pid may be reused) and to `tree`.
fn send(pid: i32, tree: &BTreeSet<i32>, signal: Signal) -> Result<(), Errno> {
    match signal::kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(errno) => return Err(errno),
    }
    for &p in tree {
        // One that went meanwhile, or that changed its credentials: nothing more to do.
        let _ = signal::kill(Pid::from_raw(p), signal);
    }
    Ok(())
}

/// Waits for `pid` (without blocking when `nohang`); `None` while it runs.
fn reap(pid: i32, nohang: bool) -> Result<Option<ProcessExit>, Errno> {
    let flags = nohang.then_some(WaitPidFlag::WNOHANG);
    loop {
        match waitpid(Pid::from_raw(pid), flags) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(ProcessExit::Exited(code))),
            Ok(WaitStatus::Signaled(_, signal, core_dumped)) => {
                return Ok(Some(ProcessExit::Signaled {
                    signal: signal as i32,
                    core_dumped,
                }))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            // A stop or continue report (the command stopped itself): wait on.
            Ok(_) if nohang => return Ok(None),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// True while process `pid` exists and is not a zombie (`/proc/PID/stat`).
pub fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesized command name, which may hold anything.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// Every live descendant of `pid` now: the children of each of its threads, recursively
/// (`/proc/PID/task/TID/children`).
pub fn descendants(pid: i32) -> BTreeSet<i32> {
    let mut found = BTreeSet::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if found.insert(child) {
                    todo.push(child);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A command that took the SIGTERM.
    const ENDED_BY_SIGTERM: Ended = Ended {
        exit: ProcessExit::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false,
        },
        signal: Some(Signal::SIGTERM),
    };

    /// Starts `command` and gives up its `Child`: `end_command` is what reaps it.
    #[allow(clippy::zombie_processes)]
    fn spawn_unreaped(command: &mut Command) -> i32 {
        command.spawn().unwrap().id() as i32
    }

    #[test]
    fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
        // The shell ignores TERM; its sleep child inherits that.
        let pid = spawn_unreaped(
            Command::new("sh").args(["-c", "trap '' TERM; sleep 100 & wait; sleep 100"]),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(pid).is_empty() {
            assert!(Instant::now() < deadline, "sh never started its sleep");
            std::thread::sleep(POLL);
        }
        let sleeper = *descendants(pid).first().unwrap();
        let started = Instant::now();
        let ended = end_command(pid, Duration::from_millis(200)).unwrap();
        let took = started.elapsed();
        assert_eq!(
            ended,
            Ended {
                exit: ProcessExit::Signaled {
                    signal: libc::SIGKILL,
                    core_dumped: false
                },
                signal: Some(Signal::SIGKILL),
            }
        );
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(signal::kill(Pid::from_raw(pid), None), Err(Errno::ESRCH));
        // The sleep, reparented to init (or a subreaper) and killed too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_alive(sleeper) {
            assert!(
                Instant::now() < deadline,
                "the command's child {sleeper} lives on"
            );
            std::thread::sleep(POLL);
        }
    }

    #[test]
    fn a_command_that_takes_sigterm_ends_without_sigkill() {
        let pid = spawn_unreaped(Command::new("sleep").arg("100"));
        assert_eq!(end_command(pid, END_GRACE).unwrap(), ENDED_BY_SIGTERM);
    }

    #[test]
    fn a_stopped_command_is_continued_and_ends_with_sigterm() {
        let pid = spawn_unreaped(Command::new("sleep").arg("100"));
        signal::kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .contains(") T ")
        {
            assert!(Instant::now() < deadline, "sleep never stopped");
            std::thread::sleep(POLL);
        }
        assert_eq!(end_command(pid, END_GRACE).unwrap(), ENDED_BY_SIGTERM);
    }

    #[test]
    fn a_command_that_already_exited_is_only_reaped() {
        let pid = spawn_unreaped(&mut Command::new("true"));
        // Until it is a zombie.
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_alive(pid) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(POLL);
        }
        let ended = end_command(pid, END_GRACE).unwrap();
        assert_eq!(
            ended,
            Ended {
                exit: ProcessExit::Exited(0),
                signal: None
            }
        );
    }
}
