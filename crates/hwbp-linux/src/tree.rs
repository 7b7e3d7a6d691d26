//! [`ProcessTree`]: a launched command and every process it creates, followed through `fork`,
//! `vfork`, `clone` and `exec` with ptrace, stopping a process only where a watch may have to
//! be armed: at the entry point of each new image (after `exec`) and at the dynamic linker's
//! notification point (`r_debug.r_brk`, glibc's `_dl_debug_state`) when it has added or
//! removed libraries. Writes never stop a process; only these events, signals and the
//! creation of tasks pass through the tracer.
//!
//! Kernel behaviour it follows (ptrace(2); `kernel/ptrace.c`, `kernel/fork.c`, `fs/exec.c`):
//! - `PTRACE_O_TRACEFORK`/`TRACEVFORK`/`TRACECLONE` stop the parent with
//!   `PTRACE_EVENT_FORK`/`VFORK`/`CLONE` and attach the new task, which starts with a
//!   `SIGSTOP` stop (possibly reported before its parent's event); it inherits the options.
//! - `PTRACE_O_TRACEEXEC` stops the task with `PTRACE_EVENT_EXEC` once the new image is
//!   loaded, with the thread-group leader's id (a non-leader that execs takes it over; the
//!   other threads are gone). Only the dynamic loader has run then, so the new image's entry
//!   point (`AT_ENTRY` of `/proc/PID/auxv`) gets an `int3` and the process is reported at it,
//!   as [`crate::launch`] does for the first image.
//! - An `int3` (`0xcc`) traps with `SIGTRAP`, `si_code == SI_KERNEL` and `rip` one past it
//!   (`do_int3_user`, `arch/x86/kernel/traps.c`). To go on past a breakpoint that stays, the
//!   original byte is put back, `rip` rewound, one instruction single-stepped
//!   (`PTRACE_SINGLESTEP`, `si_code == TRAP_TRACE`) and the `int3` written again. A forked
//!   child has a copy of its parent's memory, so of its breakpoints.
//! - [`ProcessTree::attach`] takes a running process with `PTRACE_SEIZE` and
//!   `PTRACE_INTERRUPT`; its new threads then start with a `PTRACE_EVENT_STOP` instead of
//!   `SIGSTOP`, and a group-stop is reported as one too.
//! - The tracer is one thread (ptrace ties a tracee to it); [`ProcessTree::detach`] stops every
//!   running task with `SIGSTOP` (`tgkill`), removes every breakpoint and detaches each task
//!   without a signal, so the tree runs on untouched.
//!
//! A `SIGSTOP` group-stop from outside (job control) is not kept: the task is continued (the
//! non-`PTRACE_SEIZE` tracer cannot tell it from a signal it must deliver without listening).
//! x86_64 only.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::launch::{entry_point, exit_of, LaunchError, ProcessExit, INT3, SI_KERNEL};
use crate::ptrace::PtraceError;

/// `TRAP_TRACE` (`include/uapi/asm-generic/siginfo.h`): a single-step trap.
const TRAP_TRACE: i32 = 2;
/// How long [`ProcessTree::next_event`] sleeps between two looks when nothing happened.
const IDLE_SLEEP: Duration = Duration::from_micros(500);

/// Something the caller of [`ProcessTree::next_event`] acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEvent {
    /// Process `pid` is stopped at the entry point of a new image (the launched program, or
    /// one it exec'd): its libraries are mapped, none of its own code has run. It stays
    /// stopped until [`ProcessTree::resume`].
    ImageReady {
        /// The process.
        pid: i32,
    },
    /// Thread `tid` of process `pid` is stopped at the dynamic linker's notification point
    /// (a breakpoint set with [`ProcessTree::set_loader_breakpoint`]): libraries were added or
    /// removed; with glibc, before the constructors of an added library run. It stays stopped
    /// until [`ProcessTree::resume`].
    LoaderNotified {
        /// The process.
        pid: i32,
        /// The thread that stopped.
        tid: i32,
    },
    /// Process `pid` was created by `parent` (`fork`, `vfork`, `clone` without
    /// `CLONE_THREAD`) and runs a copy of its image.
    Forked {
        /// The new process.
        pid: i32,
        /// Its parent.
        parent: i32,
    },
    /// Process `pid` replaced its image (`exec`); an [`TreeEvent::ImageReady`] follows at the
    /// new image's entry point.
    Exec {
        /// The process.
        pid: i32,
    },
    /// Process `pid` ended.
    Exited {
        /// The process.
        pid: i32,
        /// How.
        exit: ProcessExit,
    },
}

/// What the tracer holds of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    /// Just created: its first stop (the `SIGSTOP` of the automatic attach) is still to come.
    Starting,
    /// Running (or in a stop the kernel has not reported yet).
    Running,
    /// In a ptrace stop held for the caller (entry point or loader breakpoint).
    Held,
    /// Single-stepping over the loader breakpoint at this address.
    Stepping(u64),
}

/// A breakpoint written into a process's memory: its address and the word it replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Breakpoint {
    addr: u64,
    original: libc::c_long,
}

/// What the tracer holds of one process.
#[derive(Debug, Clone, Default)]
struct ProcessState {
    /// The `int3` on the entry point of an image just exec'd, until it is reached.
    entry: Option<Breakpoint>,
    /// The `int3` on the dynamic linker's notification point.
    loader: Option<Breakpoint>,
}

/// A launched command and the processes it creates; see the module docs.
#[derive(Debug)]
pub struct ProcessTree {
    root: i32,
    tracer_tid: i32,
    /// Every traced task: its process and state.
    tasks: HashMap<i32, (i32, TaskState)>,
    processes: HashMap<i32, ProcessState>,
    /// New tasks whose first `SIGSTOP` was already seen (before their creator's event).
    started: HashSet<i32>,
    events: VecDeque<TreeEvent>,
    root_exit: Option<ProcessExit>,
    /// The root was launched by this thread (else attached with [`ProcessTree::attach`]).
    launched: bool,
}

fn request(operation: &'static str, tid: i32) -> impl FnOnce(Errno) -> LaunchError {
    move |errno| {
        LaunchError::Ptrace(PtraceError::Request {
            operation,
            tid,
            errno,
        })
    }
}

/// The thread group of `tid` (`Tgid:` of `/proc/TID/status`), if it still exists.
fn tgid_of(tid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl ProcessTree {
    /// Takes over `pid`, a process launched by this thread ([`crate::launch`]) and still
    /// stopped at its entry point ([`crate::launch::LaunchedProcess::into_traced`]): from now
    /// on its children and execs are followed. The first event is its
    /// [`TreeEvent::ImageReady`].
    pub fn from_launched(pid: i32) -> Result<ProcessTree, LaunchError> {
        ptrace::setoptions(
            Pid::from_raw(pid),
            Options::PTRACE_O_EXITKILL
                | Options::PTRACE_O_TRACEFORK
                | Options::PTRACE_O_TRACEVFORK
                | Options::PTRACE_O_TRACECLONE
                | Options::PTRACE_O_TRACEEXEC,
        )
        .map_err(request("set options on", pid))?;
        let mut tasks = HashMap::new();
        tasks.insert(pid, (pid, TaskState::Held));
        let mut processes = HashMap::new();
        processes.insert(pid, ProcessState::default());
        Ok(ProcessTree {
            root: pid,
            tracer_tid: nix::unistd::gettid().as_raw(),
            tasks,
            processes,
            started: HashSet::new(),
            events: VecDeque::from([TreeEvent::ImageReady { pid }]),
            root_exit: None,
            launched: true,
        })
    }

    /// Attaches to the running process `pid` (its threads `tids`) with `PTRACE_SEIZE` and
    /// stops them (`PTRACE_INTERRUPT`): threads it creates later and the programs it execs
    /// are followed, the processes it creates only with `children`, and nothing kills it if
    /// hwbp dies (no `PTRACE_O_EXITKILL`). The first event is a [`TreeEvent::ImageReady`] with every thread
    /// stopped; [`ProcessTree::resume_process`] lets them all go.
    pub fn attach(pid: i32, tids: &[i32], children: bool) -> Result<ProcessTree, LaunchError> {
        let mut tree = ProcessTree {
            root: pid,
            tracer_tid: nix::unistd::gettid().as_raw(),
            tasks: HashMap::new(),
            processes: HashMap::from([(pid, ProcessState::default())]),
            started: HashSet::new(),
            events: VecDeque::new(),
            root_exit: None,
            launched: false,
        };
        let mut options = Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_TRACEEXEC;
        if children {
            options |= Options::PTRACE_O_TRACEFORK | Options::PTRACE_O_TRACEVFORK;
        }
        for &tid in tids {
            match ptrace::seize(Pid::from_raw(tid), options) {
                Ok(()) => {}
                // Gone meanwhile.
                Err(Errno::ESRCH) => continue,
                Err(errno) => {
                    // Let go of the threads taken so far (dropping the tree detaches them).
                    drop(tree);
                    return Err(request("attach to", tid)(errno));
                }
            }
            ptrace::interrupt(Pid::from_raw(tid)).map_err(request("interrupt", tid))?;
            tree.tasks.insert(tid, (pid, TaskState::Starting));
        }
        // Each thread's interrupt stop (PTRACE_EVENT_STOP).
        while tree
            .tasks
            .values()
            .any(|(_, state)| *state == TaskState::Starting)
        {
            let status = match waitpid(None, Some(wait_flags())) {
                Ok(status) => status,
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(LaunchError::Wait { pid, errno }),
            };
            match status {
                WaitStatus::PtraceEvent(tid, _, _) | WaitStatus::Stopped(tid, _)
                    if tree
                        .tasks
                        .get(&tid.as_raw())
                        .is_some_and(|(_, s)| *s == TaskState::Starting) =>
                {
                    tree.tasks.insert(tid.as_raw(), (pid, TaskState::Held));
                }
                other => tree.on_status(other)?,
            }
        }
        tree.events.push_back(TreeEvent::ImageReady { pid });
        Ok(tree)
    }

    /// Hands process `pid` over to another tracer: its breakpoints are taken out and each of
    /// its threads, all held, is detached, the first with `SIGSTOP`, so the process is left in
    /// a group-stop (not traced, not running) for a tracer that seizes it
    /// (`PTRACE_SEIZE` works on a stopped process) and then sends it `SIGCONT`. Its later
    /// children and execs are no longer followed here.
    pub fn release(&mut self, pid: i32) -> Result<(), LaunchError> {
        let tids = self.threads_of(pid);
        if let Some(&running) = tids.iter().find(|t| {
            self.tasks
                .get(t)
                .is_some_and(|(_, s)| *s != TaskState::Held)
        }) {
            return Err(LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                tid: running,
                status: "still running: only a process whose threads are all stopped is \
                         handed over"
                    .to_owned(),
            }));
        }
        if let (Some(process), Some(&tid)) = (self.processes.remove(&pid), tids.first()) {
            for bp in [process.entry, process.loader].into_iter().flatten() {
                write_word(tid, bp.addr, bp.original)?;
            }
        }
        for (i, &tid) in tids.iter().enumerate() {
            let t = Pid::from_raw(tid);
            let _ = ptrace::setoptions(t, Options::empty());
            let signal = (i == 0).then_some(Signal::SIGSTOP);
            ptrace::detach(t, signal).map_err(request("detach from", tid))?;
            self.tasks.remove(&tid);
        }
        Ok(())
    }

    /// Lets every thread of process `pid` held by the tracer run on.
    pub fn resume_process(&mut self, pid: i32) -> Result<(), LaunchError> {
        for tid in self.threads_of(pid) {
            self.resume(tid)?;
        }
        Ok(())
    }

    /// The launched (or attached) process.
    pub fn root(&self) -> i32 {
        self.root
    }

    /// True when the root was launched here, false when attached.
    pub fn root_is_launched(&self) -> bool {
        self.launched
    }

    /// How the launched process ended, once it has.
    pub fn root_exit(&self) -> Option<ProcessExit> {
        self.root_exit
    }

    /// True once every process of the tree has ended.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.events.is_empty()
    }

    /// The threads of process `pid` the tracer knows.
    pub fn threads_of(&self, pid: i32) -> Vec<i32> {
        let mut tids: Vec<i32> = self
            .tasks
            .iter()
            .filter(|(_, (p, _))| *p == pid)
            .map(|(t, _)| *t)
            .collect();
        tids.sort_unstable();
        tids
    }

    /// Puts an `int3` on the dynamic linker's notification point of process `pid` (held
    /// stopped): every later add or remove of libraries reports a
    /// [`TreeEvent::LoaderNotified`]. Its forked children keep it.
    pub fn set_loader_breakpoint(&mut self, pid: i32, addr: u64) -> Result<(), LaunchError> {
        let tid = self.held_thread(pid)?;
        if self.processes.get(&pid).and_then(|p| p.loader).is_some() {
            return Ok(());
        }
        let breakpoint = insert_int3(tid, addr)?;
        self.processes.entry(pid).or_default().loader = Some(breakpoint);
        Ok(())
    }

    /// A thread of `pid` held stopped (breakpoints can only be written through one).
    fn held_thread(&self, pid: i32) -> Result<i32, LaunchError> {
        self.tasks
            .iter()
            .find(|(_, (p, s))| *p == pid && *s == TaskState::Held)
            .map(|(t, _)| *t)
            .ok_or_else(|| {
                LaunchError::Ptrace(PtraceError::UnexpectedStatus {
                    tid: pid,
                    status: "not stopped by the tracer".to_owned(),
                })
            })
    }

    /// Lets a process held at [`TreeEvent::ImageReady`], or a thread held at
    /// [`TreeEvent::LoaderNotified`], run on (past the loader breakpoint, which stays).
    pub fn resume(&mut self, tid: i32) -> Result<(), LaunchError> {
        let Some(&(pid, TaskState::Held)) = self.tasks.get(&tid) else {
            return Ok(());
        };
        let loader = self.processes.get(&pid).and_then(|p| p.loader);
        let at_loader = match loader {
            Some(bp) => ptrace::getregs(Pid::from_raw(tid))
                .map(|regs| regs.rip == bp.addr)
                .unwrap_or(false),
            None => false,
        };
        if let (true, Some(bp)) = (at_loader, loader) {
            write_word(tid, bp.addr, bp.original)?;
            ptrace::step(Pid::from_raw(tid), None).map_err(request("single-step", tid))?;
            self.tasks.insert(tid, (pid, TaskState::Stepping(bp.addr)));
        } else {
            ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
            self.tasks.insert(tid, (pid, TaskState::Running));
        }
        Ok(())
    }

    /// The next event, waiting at most `timeout`; stops that need no caller (signals, new
    /// threads, single-steps) are handled on the way.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<TreeEvent>, LaunchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if self.tasks.is_empty() {
                return Ok(None);
            }
            match waitpid(None, Some(wait_flags() | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(IDLE_SLEEP);
                }
                Ok(status) => self.on_status(status)?,
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    self.tasks.clear();
                }
                Err(errno) => {
                    return Err(LaunchError::Wait {
                        pid: self.root,
                        errno,
                    })
                }
            }
        }
    }

    fn on_status(&mut self, status: WaitStatus) -> Result<(), LaunchError> {
        match status {
            WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, _, _) => {
                let tid = tid.as_raw();
                let exit = exit_of(status).expect("an exit status");
                if let Some((pid, _)) = self.tasks.remove(&tid) {
                    if tid == pid {
                        self.tasks.retain(|_, (p, _)| *p != pid);
                        self.processes.remove(&pid);
                        if pid == self.root {
                            self.root_exit = Some(exit);
                        }
                        self.events.push_back(TreeEvent::Exited { pid, exit });
                    }
                }
            }
            WaitStatus::PtraceEvent(tid, _, event) => self.on_event(tid.as_raw(), event)?,
            WaitStatus::Stopped(tid, signal) => self.on_stop(tid.as_raw(), signal)?,
            _ => {}
        }
        Ok(())
    }

    fn on_event(&mut self, tid: i32, event: i32) -> Result<(), LaunchError> {
        if event == libc::PTRACE_EVENT_STOP {
            // A seized task's first stop, or a group-stop (see the module docs).
            match self.tasks.get(&tid).copied() {
                None => {
                    self.started.insert(tid);
                    return Ok(());
                }
                Some((pid, TaskState::Starting)) => {
                    self.tasks.insert(tid, (pid, TaskState::Running));
                }
                Some(_) => {}
            }
            return self.cont(tid, None);
        }
        let fork = event == Event::PTRACE_EVENT_FORK as i32
            || event == Event::PTRACE_EVENT_VFORK as i32
            || event == Event::PTRACE_EVENT_CLONE as i32;
        if fork {
            let child = ptrace::getevent(Pid::from_raw(tid)).map_err(request("inspect", tid))?;
            self.adopt(child as i32, tid);
        } else if event == Event::PTRACE_EVENT_EXEC as i32 {
            let pid = self.tasks.get(&tid).map_or(tid, |(p, _)| *p);
            // The other threads are gone; the leader's id goes on with the new image.
            self.tasks.retain(|_, (p, _)| *p != pid);
            self.tasks.insert(pid, (pid, TaskState::Running));
            let entry = entry_point(pid)?;
            let breakpoint = insert_int3(pid, entry)?;
            self.processes.insert(
                pid,
                ProcessState {
                    entry: Some(breakpoint),
                    loader: None,
                },
            );
            self.events.push_back(TreeEvent::Exec { pid });
            return self.cont(pid, None);
        }
        self.cont(tid, None)
    }

    /// A task created by `creator`: a thread of its process, or a new process with a copy of
    /// its breakpoints. Its first `SIGSTOP` may come before or after.
    fn adopt(&mut self, child: i32, creator: i32) {
        if self.tasks.contains_key(&child) {
            return;
        }
        let (pid, creator_pid) = self.child_process(child, creator);
        if pid != creator_pid {
            self.events.push_back(TreeEvent::Forked {
                pid,
                parent: creator_pid,
            });
        }
        if self.started.remove(&child) {
            self.tasks.insert(child, (pid, TaskState::Running));
            let _ = ptrace::cont(Pid::from_raw(child), None);
        } else {
            self.tasks.insert(child, (pid, TaskState::Starting));
        }
    }

    /// The process of `child`, a task `creator` made, and the creator's; a new process gets
    /// a copy of its parent's breakpoints (its memory is a copy).
    fn child_process(&mut self, child: i32, creator: i32) -> (i32, i32) {
        let creator_pid = self.tasks.get(&creator).map_or(creator, |(p, _)| *p);
        let pid = tgid_of(child).unwrap_or(child);
        if pid != creator_pid {
            let copied = self
                .processes
                .get(&creator_pid)
                .cloned()
                .unwrap_or_default();
            self.processes.insert(pid, copied);
        }
        (pid, creator_pid)
    }

    fn on_stop(&mut self, tid: i32, signal: Signal) -> Result<(), LaunchError> {
        let Some(&(pid, state)) = self.tasks.get(&tid) else {
            // A new task's first stop, before its creator's event.
            if signal == Signal::SIGSTOP {
                self.started.insert(tid);
            }
            return Ok(());
        };
        if state == TaskState::Starting && signal == Signal::SIGSTOP {
            // The automatic attach's stop, not a signal for the program.
            self.tasks.insert(tid, (pid, TaskState::Running));
            return self.cont(tid, None);
        }
        if signal != Signal::SIGTRAP {
            if signal == Signal::SIGSTOP && ptrace::getsiginfo(Pid::from_raw(tid)).is_err() {
                // A group-stop (see the module docs).
                return self.cont(tid, None);
            }
            return self.cont(tid, Some(signal));
        }
        let pid_t = Pid::from_raw(tid);
        let code = ptrace::getsiginfo(pid_t).map_or(0, |info| info.si_code);
        if let TaskState::Stepping(addr) = state {
            if code == TRAP_TRACE {
                // Past the notification point: the breakpoint goes back.
                if self.processes.get(&pid).and_then(|p| p.loader).is_some() {
                    write_word(tid, addr, with_int3(read_word(tid, addr)?))?;
                }
                self.tasks.insert(tid, (pid, TaskState::Running));
                return self.cont(tid, None);
            }
        }
        if code == SI_KERNEL {
            let mut regs = ptrace::getregs(pid_t).map_err(request("read registers of", tid))?;
            let at = regs.rip.wrapping_sub(1);
            let process = self.processes.get(&pid).cloned().unwrap_or_default();
            if let Some(bp) = process.entry.filter(|bp| bp.addr == at) {
                write_word(tid, bp.addr, bp.original)?;
                regs.rip = at;
                ptrace::setregs(pid_t, regs).map_err(request("rewind", tid))?;
                self.processes.entry(pid).or_default().entry = None;
                self.tasks.insert(tid, (pid, TaskState::Held));
                self.events.push_back(TreeEvent::ImageReady { pid });
                return Ok(());
            }
            if process.loader.is_some_and(|bp| bp.addr == at) {
                regs.rip = at;
                ptrace::setregs(pid_t, regs).map_err(request("rewind", tid))?;
                self.tasks.insert(tid, (pid, TaskState::Held));
                self.events
                    .push_back(TreeEvent::LoaderNotified { pid, tid });
                return Ok(());
            }
        }
        // A trap the program raised itself (or a watchpoint's): delivered as without us.
        self.cont(tid, Some(signal))
    }

    fn cont(&mut self, tid: i32, signal: Option<Signal>) -> Result<(), LaunchError> {
        match ptrace::cont(Pid::from_raw(tid), signal) {
            // Killed meanwhile: its exit status follows.
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(request("continue", tid)(errno)),
        }
    }

    /// Lets the whole tree run on without the tracer: stops every running task, removes
    /// every breakpoint, detaches every task without a signal. Processes created meanwhile
    /// are detached too. Call it from the thread that launched the command.
    pub fn detach(&mut self) -> Result<(), LaunchError> {
        if nix::unistd::gettid().as_raw() != self.tracer_tid {
            return Err(LaunchError::WrongThread { pid: self.root });
        }
        // Signals that arrived while stopping, delivered at the detach.
        let mut pending: HashMap<i32, Signal> = HashMap::new();
        let mut stopped: HashSet<i32> = HashSet::new();
        for (&tid, &(pid, state)) in &self.tasks {
            if state == TaskState::Held {
                stopped.insert(tid);
            } else if state != TaskState::Starting {
                // (A starting task stops by itself: its attach's SIGSTOP.)
                // SAFETY: tgkill(2) takes plain integers and touches no memory of ours.
                unsafe {
                    libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGSTOP);
                }
            }
        }
        for tid in self.started.drain() {
            stopped.insert(tid);
            self.tasks
                .entry(tid)
                .or_insert((tgid_of(tid).unwrap_or(tid), TaskState::Held));
        }
        while self.tasks.keys().any(|t| !stopped.contains(t)) {
            let status = match waitpid(None, Some(wait_flags())) {
                Ok(status) => status,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            match status {
                WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, _, _) => {
                    self.tasks.remove(&tid.as_raw());
                }
                WaitStatus::Stopped(tid, Signal::SIGSTOP) => {
                    let tid = tid.as_raw();
                    // A task created meanwhile: its first stop.
                    self.tasks
                        .entry(tid)
                        .or_insert_with(|| (tgid_of(tid).unwrap_or(tid), TaskState::Held));
                    stopped.insert(tid);
                }
                WaitStatus::Stopped(tid, signal) => {
                    let tid = tid.as_raw();
                    let state = self.tasks.get(&tid).map(|(_, s)| *s);
                    if signal == Signal::SIGTRAP {
                        if let Some(TaskState::Stepping(_)) = state {
                            // The step finished: our SIGSTOP is still to come.
                            let pid = self.tasks[&tid].0;
                            self.tasks.insert(tid, (pid, TaskState::Running));
                            let _ = ptrace::cont(Pid::from_raw(tid), None);
                            continue;
                        }
                        if self.rewind_breakpoint(tid) {
                            let _ = ptrace::cont(Pid::from_raw(tid), None);
                            continue;
                        }
                    }
                    pending.insert(tid, signal);
                    let _ = ptrace::cont(Pid::from_raw(tid), None);
                }
                WaitStatus::PtraceEvent(tid, _, event) => {
                    let tid = tid.as_raw();
                    if event == libc::PTRACE_EVENT_STOP {
                        // A seized task's interrupt or first stop: stopped, as needed.
                        self.tasks
                            .entry(tid)
                            .or_insert_with(|| (tgid_of(tid).unwrap_or(tid), TaskState::Held));
                        stopped.insert(tid);
                        continue;
                    }
                    if event == Event::PTRACE_EVENT_EXEC as i32 {
                        // A new image: neither breakpoint is in it.
                        if let Some((pid, _)) = self.tasks.get(&tid).copied() {
                            self.processes.remove(&pid);
                        }
                    } else if let Ok(child) = ptrace::getevent(Pid::from_raw(tid)) {
                        let child = child as i32;
                        let (pid, _) = self.child_process(child, tid);
                        self.tasks
                            .entry(child)
                            .or_insert((pid, TaskState::Starting));
                    }
                    let _ = ptrace::cont(Pid::from_raw(tid), None);
                }
                _ => {}
            }
        }
        // Every task is stopped: take the breakpoints out, then let go.
        for (&pid, process) in &self.processes {
            let Some(&tid) = self
                .tasks
                .iter()
                .find(|(_, (p, _))| *p == pid)
                .map(|(t, _)| t)
            else {
                continue;
            };
            for bp in [process.entry, process.loader].into_iter().flatten() {
                let _ = write_word(tid, bp.addr, bp.original);
            }
        }
        for &tid in self.tasks.keys() {
            let t = Pid::from_raw(tid);
            let _ = ptrace::setoptions(t, Options::empty());
            let _ = ptrace::detach(t, pending.get(&tid).copied());
        }
        self.tasks.clear();
        self.processes.clear();
        Ok(())
    }

    /// A thread that trapped on one of its process's breakpoints (already being removed):
    /// `rip` goes back to the breakpoint's address. False when the trap is not ours.
    fn rewind_breakpoint(&mut self, tid: i32) -> bool {
        let Some(&(pid, _)) = self.tasks.get(&tid) else {
            return false;
        };
        let Some(process) = self.processes.get(&pid).cloned() else {
            return false;
        };
        let pid_t = Pid::from_raw(tid);
        let Ok(mut regs) = ptrace::getregs(pid_t) else {
            return false;
        };
        let at = regs.rip.wrapping_sub(1);
        let ours = [process.entry, process.loader]
            .into_iter()
            .flatten()
            .any(|bp| bp.addr == at);
        if ours {
            regs.rip = at;
            let _ = ptrace::setregs(pid_t, regs);
        }
        ours
    }
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            let _ = self.detach();
        }
    }
}

/// Every task this thread traces or made, whatever its kind (`__WALL`), and only this
/// thread's (`__WNOTHREAD`): by default `wait` also takes the events of tracees that other
/// threads of hwbp trace (the stop watcher's), which would never reach their tracer
/// (`do_wait` in `kernel/exit.c` walks every thread of the group).
fn wait_flags() -> WaitPidFlag {
    WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD
}

fn read_word(tid: i32, addr: u64) -> Result<libc::c_long, LaunchError> {
    ptrace::read(Pid::from_raw(tid), addr as ptrace::AddressType)
        .map_err(request("read the memory of", tid))
}

fn write_word(tid: i32, addr: u64, word: libc::c_long) -> Result<(), LaunchError> {
    ptrace::write(Pid::from_raw(tid), addr as ptrace::AddressType, word)
        .map_err(request("write the memory of", tid))
}

fn with_int3(word: libc::c_long) -> libc::c_long {
    (word & !0xff) | libc::c_long::from(INT3)
}

/// Writes an `int3` over the byte at `addr` of `tid`'s process; returns what it replaced.
fn insert_int3(tid: i32, addr: u64) -> Result<Breakpoint, LaunchError> {
    let original = read_word(tid, addr)?;
    write_word(tid, addr, with_int3(original))?;
    Ok(Breakpoint { addr, original })
}
