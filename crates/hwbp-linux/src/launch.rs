//! Starting a program stopped at its entry point, so watches can be armed
//! before it runs a single instruction of its own.
//!
//! The child asks to be traced (`PTRACE_TRACEME`) and execs; the kernel stops
//! it with `SIGTRAP` once the new image is loaded (`fs/exec.c`, ptrace(2)
//! "execve under ptrace"). At that point only the dynamic loader has been
//! mapped, so the parent reads `AT_ENTRY` from `/proc/PID/auxv`, puts a
//! breakpoint there and continues. The loader maps every shared library and
//! runs their relocations, then jumps to the entry point, where the
//! breakpoint stops the child again. The parent removes the breakpoint and
//! hands back a [`LaunchedProcess`] that is still stopped: `/proc/PID/maps`
//! now lists the libraries, `main` has not run, and perf events opened on the
//! pid see everything the program does after [`LaunchedProcess::resume`].
//!
//! Two ways to stop at the entry point ([`EntryStop`]):
//! - [`EntryStop::DebugRegister`]: an execute breakpoint through the ptrace
//!   debug registers (DR0 = entry, DR7 = `L0`; `arch/x86/kernel/ptrace.c`),
//!   cleared again at the stop. The kernel keeps the slot of a ptrace
//!   breakpoint reserved until the thread execs or exits
//!   (`flush_ptrace_hw_breakpoint`), even with DR7 cleared and the tracer
//!   detached, so the main thread is left with 3 of its 4 slots for perf
//!   watches (measured: the 4th `perf_event_open` fails with `ENOSPC`).
//! - [`EntryStop::SoftwareBreakpoint`] (the default): an `int3` byte poked over
//!   the first instruction (`PTRACE_POKEDATA`), the original bytes and `rip`
//!   put back at the stop. It uses no debug-register slot.
//!
//! # Known limitations
//! - ptrace ties a tracee to the tracer *thread*: call [`launch`] and
//!   [`LaunchedProcess::resume`] from the same thread.
//! - A `#!` script stops at its interpreter's entry point; to go on to a program the script
//!   (or any wrapper) execs, call [`LaunchedProcess::follow_exec`] (`PTRACE_O_TRACEEXEC`, then
//!   the same entry-point stop in the new image).
//! - x86_64 only.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::ptrace::PtraceError;
#[cfg(target_arch = "x86_64")]
use crate::ptrace::{poke_debugreg, DebugRegisterGuard, DR7_LOCAL_ENABLE_0};

/// `AT_ENTRY` from `include/uapi/linux/auxvec.h`: the program's entry point.
const AT_ENTRY: u64 = 9;
/// `AT_NULL`: the end of the auxiliary vector.
const AT_NULL: u64 = 0;
/// `TRAP_HWBKPT` from `include/uapi/asm-generic/siginfo.h`: si_code of a
/// SIGTRAP caused by a hardware breakpoint.
const TRAP_HWBKPT: i32 = 4;
/// `SI_KERNEL` (`include/uapi/asm-generic/siginfo.h`): si_code of the SIGTRAP
/// that `int3` raises on x86 (`do_int3_user` in `arch/x86/kernel/traps.c`).
pub(crate) const SI_KERNEL: i32 = 0x80;
/// The x86 `int3` instruction.
pub(crate) const INT3: u8 = 0xcc;

/// How [`launch_command_with`] stops the program at its entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryStop {
    /// `int3` over the first instruction, removed at the stop; uses no
    /// debug-register slot.
    #[default]
    SoftwareBreakpoint,
    /// An execute breakpoint in DR0, cleared at the stop; the kernel keeps its
    /// slot reserved for the main thread until exec or exit (module docs).
    DebugRegister,
}

/// How a launched program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessExit {
    /// It called `exit` with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl std::fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Exited(code) => write!(f, "exited with status {code}"),
            Self::Signaled {
                signal,
                core_dumped,
                ..
            } => {
                let name = Signal::try_from(signal).map_or("unknown signal", |s| s.as_str());
                write!(f, "killed by signal {signal} ({name})")?;
                if core_dumped {
                    write!(f, ", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// An error while launching or waiting for a program.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// `exec` failed (or fork did): not found, not executable, ...
    #[error("cannot run '{program}': {reason}")]
    Spawn {
        /// The program as given.
        program: String,
        /// The system's description of the error, e.g. "No such file or directory".
        reason: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The program ended before reaching its entry point.
    #[error("'{program}' ended before reaching its entry point: {exit}")]
    EndedEarly {
        /// The program as given.
        program: String,
        /// How it ended.
        exit: ProcessExit,
    },
    /// Followed through `exec` ([`LaunchedProcess::follow_exec`]), the program ran to its own
    /// end without running another program.
    #[error("'{program}' ran to its end ({exit}) without running another program")]
    EndedWithoutExec {
        /// The program that ended.
        program: String,
        /// How it ended.
        exit: ProcessExit,
    },
    /// `/proc/PID/auxv` could not be read or has no `AT_ENTRY`.
    #[error("cannot find the entry point of process {pid}: {reason}")]
    NoEntryPoint {
        /// Process id.
        pid: i32,
        /// What went wrong.
        reason: String,
    },
    /// A ptrace request failed.
    #[error(transparent)]
    Ptrace(#[from] PtraceError),
    /// `resume` was called from a thread other than the one that launched.
    #[error("process {pid} must be resumed from the thread that launched it (ptrace ties a tracee to its tracer thread)")]
    WrongThread {
        /// Process id.
        pid: i32,
    },
    /// `wait` was called before `resume`.
    #[error("process {pid} is still stopped at its entry point: resume it before waiting")]
    NotResumed {
        /// Process id.
        pid: i32,
    },
    /// Waiting for the process failed.
    #[error("cannot wait for process {pid}: {errno}")]
    Wait {
        /// Process id.
        pid: i32,
        /// The kernel's error.
        errno: Errno,
    },
    /// Launching under ptrace is implemented for x86_64 only.
    #[error(
        "launching a program stopped at its entry point is not supported on this architecture"
    )]
    Unsupported,
}

fn request_error(operation: &'static str, pid: i32) -> impl FnOnce(Errno) -> LaunchError {
    move |errno| {
        LaunchError::Ptrace(PtraceError::Request {
            operation,
            tid: pid,
            errno,
        })
    }
}

/// A program started by [`launch`]: stopped at its entry point until resumed.
///
/// Dropping it ends and reaps the process unless it was waited for or released with
/// [`LaunchedProcess::into_pid`]: SIGKILL while stopped at its entry point, else
/// [`crate::ending::end_command`] (SIGTERM, then SIGKILL after a grace).
#[derive(Debug)]
pub struct LaunchedProcess {
    pid: i32,
    entry: u64,
    /// The programs exec'd since the launch and followed ([`LaunchedProcess::follow_exec`]).
    followed: Vec<std::path::PathBuf>,
    tracer_tid: i32,
    child: Child,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StoppedAtEntry,
    Running,
    Reaped,
    Released,
}

/// Runs `argv[0]` (searched in `PATH`) with arguments `argv[1..]`, inheriting
/// stdio, and returns it stopped at its entry point. See [`launch_command`].
pub fn launch<S: Into<OsString> + Clone>(argv: &[S]) -> Result<LaunchedProcess, LaunchError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(LaunchError::Spawn {
            program: String::new(),
            reason: "no command given".to_owned(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        });
    };
    let mut command = Command::new(program.clone().into());
    command.args(args.iter().cloned().map(Into::into));
    launch_command(command)
}

/// Spawns `command` (its program, arguments, environment and stdio as
/// configured) under ptrace and returns it stopped at its entry point, with
/// all shared libraries loaded and the debug registers as they were at exec.
///
/// `std::process::Command` does the fork and passes an exec failure back
/// through a close-on-exec pipe, so "not found" is reported here as
/// [`LaunchError::Spawn`] and no child is left behind.
pub fn launch_command(command: Command) -> Result<LaunchedProcess, LaunchError> {
    launch_command_with(command, EntryStop::default())
}

/// [`launch_command`] with an explicit way of stopping at the entry point.
pub fn launch_command_with(
    mut command: Command,
    entry_stop: EntryStop,
) -> Result<LaunchedProcess, LaunchError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(LaunchError::Unsupported);
    }
    let program = command.get_program().to_string_lossy().into_owned();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // the ptrace(2) system call, which is async-signal-safe; it touches no
    // memory shared with the parent and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            ptrace::traceme().map_err(|errno| io::Error::from_raw_os_error(errno as i32))
        });
    }
    let child = command.spawn().map_err(|source| LaunchError::Spawn {
        reason: source.raw_os_error().map_or_else(
            || source.to_string(),
            |code| Errno::from_raw(code).desc().to_owned(),
        ),
        program: program.clone(),
        source,
    })?;
    let pid = child.id() as i32;
    let mut launched = LaunchedProcess {
        pid,
        entry: 0,
        followed: Vec::new(),
        tracer_tid: nix::unistd::gettid().as_raw(),
        child,
        // Drop kills and reaps from here on, whatever fails below.
        state: State::StoppedAtEntry,
    };
    launched.wait_for_trap(&program, "exec")?;
    ptrace::setoptions(Pid::from_raw(pid), ptrace::Options::PTRACE_O_EXITKILL)
        .map_err(request_error("set options on", pid))?;
    launched.entry = entry_point(pid)?;
    match entry_stop {
        EntryStop::SoftwareBreakpoint => launched.run_to_entry_int3(&program)?,
        EntryStop::DebugRegister => launched.run_to_entry_debugreg(&program)?,
    }
    Ok(launched)
}

/// Reads `AT_ENTRY` from `/proc/PID/auxv` (native-endian `u64` pairs).
pub(crate) fn entry_point(pid: i32) -> Result<u64, LaunchError> {
    let path = format!("/proc/{pid}/auxv");
    let bytes = fs::read(&path).map_err(|e| LaunchError::NoEntryPoint {
        pid,
        reason: format!("cannot read {path}: {e}"),
    })?;
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("chunks of 8")))
        .collect();
    for pair in words.chunks_exact(2) {
        match pair[0] {
            AT_ENTRY => return Ok(pair[1]),
            AT_NULL => break,
            _ => {}
        }
    }
    Err(LaunchError::NoEntryPoint {
        pid,
        reason: format!("{path} has no AT_ENTRY"),
    })
}

impl LaunchedProcess {
    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The entry point (`AT_ENTRY`) where the process is or was stopped.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// The programs followed through `exec` since the launch, in order (the last one is the
    /// image the process is stopped in).
    pub fn followed(&self) -> &[std::path::PathBuf] {
        &self.followed
    }

    /// From the entry-point stop, lets the program run until it execs another program (a
    /// `#!` script's `exec`, `env VAR=1 prog`, a version manager's shim) and stops it at the
    /// new image's entry point, as after the launch: its libraries loaded, none of its
    /// instructions run. Returns the new image's path. Fails with
    /// [`LaunchError::EndedWithoutExec`] if the program ends without exec'ing. Signals that arrive
    /// meanwhile are delivered; children it forks are not followed.
    #[cfg(target_arch = "x86_64")]
    pub fn follow_exec(&mut self) -> Result<std::path::PathBuf, LaunchError> {
        if self.state != State::StoppedAtEntry {
            return Err(LaunchError::NotResumed { pid: self.pid });
        }
        let pid = Pid::from_raw(self.pid);
        let program = fs::read_link(format!("/proc/{}/exe", self.pid))
            .map_or_else(|_| self.pid.to_string(), |p| p.display().to_string());
        ptrace::setoptions(
            pid,
            ptrace::Options::PTRACE_O_EXITKILL | ptrace::Options::PTRACE_O_TRACEEXEC,
        )
        .map_err(request_error("set options on", self.pid))?;
        ptrace::cont(pid, None).map_err(request_error("continue", self.pid))?;
        loop {
            let status = self.wait_status()?;
            if let Some(exit) = exit_of(status) {
                self.state = State::Reaped;
                return Err(LaunchError::EndedWithoutExec { program, exit });
            }
            match status {
                WaitStatus::PtraceEvent(_, _, event)
                    if event == ptrace::Event::PTRACE_EVENT_EXEC as i32 =>
                {
                    break;
                }
                WaitStatus::Stopped(_, signal) => {
                    ptrace::cont(pid, signal).map_err(request_error("continue", self.pid))?;
                }
                _ => ptrace::cont(pid, None).map_err(request_error("continue", self.pid))?,
            }
        }
        ptrace::setoptions(pid, ptrace::Options::PTRACE_O_EXITKILL)
            .map_err(request_error("set options on", self.pid))?;
        let image = fs::read_link(format!("/proc/{}/exe", self.pid)).map_err(|e| {
            LaunchError::NoEntryPoint {
                pid: self.pid,
                reason: format!("cannot read /proc/{}/exe after exec: {e}", self.pid),
            }
        })?;
        self.entry = entry_point(self.pid)?;
        self.run_to_entry_int3(&image.display().to_string())?;
        self.followed.push(image.clone());
        Ok(image)
    }

    /// Whether the process is still stopped at its entry point.
    pub fn is_stopped(&self) -> bool {
        self.state == State::StoppedAtEntry
    }

    /// The write end of the program's stdin, if the command was set up with
    /// `Stdio::piped()` (taken once).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The read end of the program's stdout, if piped (taken once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The read end of the program's stderr, if piped (taken once).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Lets the program run: `PTRACE_DETACH` without a signal. Must be called
    /// from the thread that launched it.
    pub fn resume(&mut self) -> Result<(), LaunchError> {
        if self.state != State::StoppedAtEntry {
            return Ok(());
        }
        if nix::unistd::gettid().as_raw() != self.tracer_tid {
            return Err(LaunchError::WrongThread { pid: self.pid });
        }
        ptrace::detach(Pid::from_raw(self.pid), None::<Signal>)
            .map_err(request_error("detach from", self.pid))?;
        self.state = State::Running;
        Ok(())
    }

    /// Waits for the resumed program to end and reports how.
    pub fn wait(&mut self) -> Result<ProcessExit, LaunchError> {
        match self.state {
            State::StoppedAtEntry => return Err(LaunchError::NotResumed { pid: self.pid }),
            State::Running => {}
            State::Reaped | State::Released => {
                return Err(LaunchError::Wait {
                    pid: self.pid,
                    errno: Errno::ECHILD,
                })
            }
        }
        loop {
            match waitpid(Pid::from_raw(self.pid), None) {
                Ok(status) => {
                    if let Some(exit) = exit_of(status) {
                        self.state = State::Reaped;
                        return Ok(exit);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(LaunchError::Wait {
                        pid: self.pid,
                        errno,
                    })
                }
            }
        }
    }

    /// Hands the process over still stopped at its entry point and still traced by the
    /// calling thread, for a caller that keeps tracing it (stop mode): nothing is detached,
    /// and this value no longer kills or waits for it. The caller must reap it (`waitpid`)
    /// and detach or kill it. Must be called from the thread that launched it.
    pub fn into_traced(mut self) -> Result<i32, LaunchError> {
        if self.state != State::StoppedAtEntry {
            return Err(LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                tid: self.pid,
                status: "no longer stopped at its entry point (already resumed)".to_owned(),
            }));
        }
        if nix::unistd::gettid().as_raw() != self.tracer_tid {
            return Err(LaunchError::WrongThread { pid: self.pid });
        }
        self.state = State::Released;
        Ok(self.pid)
    }

    /// Gives up ownership without killing: the caller becomes responsible for
    /// the process (resume it first, or it stays stopped until this thread exits,
    /// when `PTRACE_O_EXITKILL` kills it).
    pub fn into_pid(mut self) -> i32 {
        self.state = State::Released;
        self.pid
    }

    /// The next wait status of the process (`EINTR` retried).
    fn wait_status(&self) -> Result<WaitStatus, LaunchError> {
        loop {
            match waitpid(Pid::from_raw(self.pid), None) {
                Ok(status) => return Ok(status),
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(LaunchError::Wait {
                        pid: self.pid,
                        errno,
                    })
                }
            }
        }
    }

    /// Waits for a `SIGTRAP` stop; forwards other signals to the program.
    /// Returns the siginfo `si_code` of the trap.
    fn wait_for_trap(&mut self, program: &str, what: &'static str) -> Result<i32, LaunchError> {
        let pid = Pid::from_raw(self.pid);
        loop {
            let status = self.wait_status()?;
            if let Some(exit) = exit_of(status) {
                self.state = State::Reaped;
                return Err(LaunchError::EndedEarly {
                    program: program.to_owned(),
                    exit,
                });
            }
            match status {
                WaitStatus::Stopped(_, Signal::SIGTRAP) => {
                    let info =
                        ptrace::getsiginfo(pid).map_err(request_error("inspect", self.pid))?;
                    return Ok(info.si_code);
                }
                WaitStatus::Stopped(_, other) => {
                    // A signal arrived before the `what` stop: let the program
                    // handle it as it would without us.
                    ptrace::cont(pid, other).map_err(request_error("continue", self.pid))?;
                }
                other => {
                    return Err(LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                        tid: self.pid,
                        status: format!("{other:?} while waiting for the {what} stop"),
                    }))
                }
            }
        }
    }

    /// Puts `int3` on the entry point, continues until it traps, then puts the
    /// original bytes back and rewinds `rip` to the entry point.
    #[cfg(target_arch = "x86_64")]
    fn run_to_entry_int3(&mut self, program: &str) -> Result<(), LaunchError> {
        let pid = Pid::from_raw(self.pid);
        let address = self.entry as ptrace::AddressType;
        let original = ptrace::read(pid, address)
            .map_err(request_error("read the entry point of", self.pid))?;
        let patched = (original & !0xff) | libc::c_long::from(INT3);
        ptrace::write(pid, address, patched)
            .map_err(request_error("write the entry point of", self.pid))?;
        ptrace::cont(pid, None).map_err(request_error("continue", self.pid))?;
        let code = self.wait_for_trap(program, "entry point")?;
        let mut regs =
            ptrace::getregs(pid).map_err(request_error("read registers of", self.pid))?;
        if code != SI_KERNEL || regs.rip != self.entry + 1 {
            return Err(LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                tid: self.pid,
                status: format!(
                    "SIGTRAP (si_code {code}) at {:#x} instead of the int3 at the entry point {:#x}",
                    regs.rip, self.entry
                ),
            }));
        }
        ptrace::write(pid, address, original)
            .map_err(request_error("restore the entry point of", self.pid))?;
        regs.rip = self.entry;
        ptrace::setregs(pid, regs).map_err(request_error("rewind", self.pid))?;
        Ok(())
    }

    /// Puts an execute breakpoint on the entry point, continues until it hits
    /// and restores the debug registers.
    #[cfg(target_arch = "x86_64")]
    fn run_to_entry_debugreg(&mut self, program: &str) -> Result<(), LaunchError> {
        let pid = self.pid;
        let guard = DebugRegisterGuard::capture(pid)?;
        poke_debugreg(pid, 0, self.entry)?;
        // L0 with R/W0 = 00 (execute) and LEN0 = 00 (1 byte).
        poke_debugreg(pid, 7, DR7_LOCAL_ENABLE_0)?;
        ptrace::cont(Pid::from_raw(pid), None).map_err(request_error("continue", pid))?;
        let code = self.wait_for_trap(program, "entry point")?;
        if code != TRAP_HWBKPT {
            return Err(LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                tid: pid,
                status: format!(
                    "SIGTRAP with si_code {code} instead of the entry-point breakpoint"
                ),
            }));
        }
        guard.restore()?;
        Ok(())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn run_to_entry_int3(&mut self, _program: &str) -> Result<(), LaunchError> {
        Err(LaunchError::Unsupported)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn run_to_entry_debugreg(&mut self, _program: &str) -> Result<(), LaunchError> {
        Err(LaunchError::Unsupported)
    }
}

pub(crate) fn exit_of(status: WaitStatus) -> Option<ProcessExit> {
    match status {
        WaitStatus::Exited(_, code) => Some(ProcessExit::Exited(code)),
        WaitStatus::Signaled(_, signal, core_dumped) => Some(ProcessExit::Signaled {
            signal: signal as i32,
            core_dumped,
        }),
        _ => None,
    }
}

impl Drop for LaunchedProcess {
    fn drop(&mut self) {
        match self.state {
            State::StoppedAtEntry => {
                // SIGKILL ends a ptrace-stopped process too; errors mean it is gone.
                let _ = signal::kill(Pid::from_raw(self.pid), Signal::SIGKILL);
                while let Err(Errno::EINTR) = waitpid(Pid::from_raw(self.pid), None) {}
            }
            // It ran: SIGTERM first, as at the end of any watch (crate::ending).
            State::Running => {
                let _ = crate::ending::end_command(self.pid, crate::ending::END_GRACE);
            }
            State::Reaped | State::Released => {}
        }
    }
}
