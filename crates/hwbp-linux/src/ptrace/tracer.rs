//! Stop mode: watchpoints that stop the accessing thread at the hit, programmed into every thread
//! of a tracee through the ptrace virtual debug registers (`arch/x86/kernel/ptrace.c`).
//!
//! [`StopTracer`] owns the tracing of one process from the thread that created it (ptrace ties
//! a tracee to its tracer thread):
//! - it attaches with `PTRACE_SEIZE` + `PTRACE_INTERRUPT` (or takes over a process
//!   [`crate::launch`] started, still stopped at its entry point), with `PTRACE_O_TRACECLONE`,
//!   `TRACEEXEC` and `TRACEEXIT`;
//! - it saves each thread's DR0-3/DR7 in a [`DebugRegisterGuard`], writes the addresses, then
//!   DR7 (the kernel validates DR7 per slot and rolls back the whole write on error, §4.4);
//! - new threads are armed at their first stop, before they run: the kernel does not copy
//!   ptrace breakpoints to a clone (`copy_thread` clears `ptrace_bps`), and exec drops them
//!   (`flush_ptrace_hw_breakpoint`);
//! - at a `SIGTRAP` whose DR6 (architectural polarity) shows B0-B3 the thread is reported as a
//!   [`StopEvent::Hit`] and stays stopped until [`StopTracer::resume`]; DR6 is cleared then, and
//!   the `SIGTRAP` is never delivered. Other signals are passed on, except a `SIGINT` from hwbp's
//!   own terminal (the target shares hwbp's process group), which is hwbp's, as in gdb;
//! - [`StopTracer::detach`] stops every thread, restores its debug registers and detaches
//!   without a signal, so the target runs on as before.
//!
//! Data watchpoints are traps: the value read at the stop is the value the access left.

use std::collections::HashMap;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use hwbp_core::arch::x86::{Dr6, X86Type};
use hwbp_core::debugreg_alloc::{AllocatedWatch, DebugRegisterAllocator};
use hwbp_core::Access;

use super::{peek_debugreg, poke_debugreg, DebugRegisterGuard, PtraceError};
use crate::launch::ProcessExit;
use crate::perf::WatchRequest;

/// The debug registers every traced thread gets: DR0-3 and the DR7 enabling them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugRegisterSet {
    /// DR0-DR3; only slots enabled in `dr7` are written.
    pub addresses: [u64; 4],
    /// DR7 (e.g. from `DebugRegisterAllocator::dr7`).
    pub dr7: u64,
}

impl DebugRegisterSet {
    /// Stop mode behind the perf-event API: allocates the same [`WatchRequest`]s that
    /// `WatchSession::open` takes (identical ones share a register, unaligned or long ones are
    /// split) and returns the registers to arm plus, per request, the slots holding it
    /// ([`AllocatedWatch::slot_mask`] tells which request a [`StopEvent::Hit`] is for).
    /// Execute requests watch one instruction whatever their `len`.
    pub fn allocate(requests: &[WatchRequest]) -> Result<(Self, Vec<AllocatedWatch>), TracerError> {
        let mut allocator = DebugRegisterAllocator::new();
        let mut watches = Vec::with_capacity(requests.len());
        for request in requests {
            let (ty, len) = match request.access {
                Access::Write => (X86Type::Write, request.len),
                Access::ReadWrite => (X86Type::ReadWrite, request.len),
                Access::Execute => (X86Type::Execute, 1),
                Access::Read => {
                    return Err(TracerError::Unsupported {
                        addr: request.addr,
                        reason: "x86 debug registers cannot watch reads alone: use read/write",
                    })
                }
            };
            let watch = allocator
                .allocate(request.addr, len, ty)
                .map_err(|e| TracerError::Allocation(e.to_string()))?;
            watches.push(watch);
        }
        Ok((
            Self {
                addresses: allocator.addresses(),
                dr7: allocator.dr7(),
            },
            watches,
        ))
    }

    /// Slots enabled in DR7 (L or G bit), as a 4-bit mask.
    pub fn enabled_mask(&self) -> u8 {
        (0..4).fold(0u8, |mask, slot| {
            if self.dr7 >> (2 * slot) & 0b11 != 0 {
                mask | 1 << slot
            } else {
                mask
            }
        })
    }
}

/// What happened in the tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopEvent {
    /// A watched access: thread `tid` is stopped right after it, until [`StopTracer::resume`].
    Hit {
        /// The thread that made the access.
        tid: i32,
        /// The slots whose conditions matched (DR6 B0-B3), bit `i` = DR`i`.
        slots: u8,
        /// The instruction pointer: after the access for a data watchpoint (a trap), at the
        /// instruction for an execute breakpoint (a fault).
        ip: u64,
        /// The frame pointer (`rbp`), for a frame-pointer backtrace.
        frame_pointer: u64,
        /// The stack pointer (`rsp`).
        stack_pointer: u64,
        /// The general-purpose registers at the stop in encoding order: `rax`, `rcx`, `rdx`,
        /// `rbx`, `rsp`, `rbp`, `rsi`, `rdi`, `r8`-`r15` (for decoding what a store wrote).
        registers: [u64; 16],
    },
    /// A thread the watch was armed on was created (already armed and running).
    ThreadStarted {
        /// The new thread.
        tid: i32,
    },
    /// A thread ended.
    ThreadExited {
        /// The thread.
        tid: i32,
    },
    /// The process called exec: its debug registers and addresses are gone. Only the
    /// (stopped) main thread remains; call [`StopTracer::detach`].
    Exec,
    /// The whole process ended.
    Exited(ProcessExit),
    /// The wait was interrupted by [`StopWaker::wake`] or a signal to hwbp.
    Interrupted,
}

/// An error of stop mode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TracerError {
    /// A ptrace request failed.
    #[error(transparent)]
    Ptrace(#[from] PtraceError),
    /// Arming a thread failed; its registers were put back.
    #[error("cannot arm the watch in thread {tid}: {source}")]
    Arm {
        /// The thread.
        tid: i32,
        /// What the kernel refused.
        #[source]
        source: PtraceError,
    },
    /// The requests do not fit in the debug registers; the text says what would.
    #[error("{0}")]
    Allocation(String),
    /// A request stop mode cannot watch.
    #[error("cannot watch {addr:#x} in stop mode: {reason}")]
    Unsupported {
        /// The request's address.
        addr: u64,
        /// Why, and what would work.
        reason: &'static str,
    },
    /// The process has no thread to trace.
    #[error("process {pid} has no threads left to trace")]
    NoThreads {
        /// Process id.
        pid: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    Running,
    Stopped,
}

#[derive(Debug)]
struct TracedThread {
    guard: Option<DebugRegisterGuard>,
    state: ThreadState,
    /// A stop (interrupt or SIGSTOP) was requested for the detach.
    stop_requested: bool,
}

/// The tracer of one process in stop mode. See the module docs.
#[derive(Debug)]
pub struct StopTracer {
    pid: i32,
    seized: bool,
    registers: DebugRegisterSet,
    threads: HashMap<i32, TracedThread>,
    same_process_group: bool,
    finished: bool,
}

/// Wakes a [`StopTracer`] blocked in [`StopTracer::next_event`] from another thread (for
/// Ctrl-C or a time limit). Waking delivers `SIGURG` with a handler that does nothing and
/// no `SA_RESTART`, so `waitpid` returns `EINTR`.
#[derive(Debug, Clone, Copy)]
pub struct StopWaker {
    process: i32,
    thread: i32,
}

extern "C" fn ignore_signal(_: libc::c_int) {}

impl StopWaker {
    /// Wakes the tracer thread once (call repeatedly until it notices; a wake that arrives
    /// before it blocks is lost).
    pub fn wake(&self) {
        let _ = tgkill(self.process, self.thread, Signal::SIGURG);
    }
}

fn options() -> Options {
    Options::PTRACE_O_TRACECLONE | Options::PTRACE_O_TRACEEXEC | Options::PTRACE_O_TRACEEXIT
}

fn request(operation: &'static str, tid: i32) -> impl FnOnce(Errno) -> PtraceError {
    move |errno| PtraceError::Request {
        operation,
        tid,
        errno,
    }
}

/// Waits for any tracee or child of *this thread* (`__WNOTHREAD`: another thread's children,
/// e.g. another tracer's, are left alone).
fn wait_any() -> Result<Option<WaitStatus>, PtraceError> {
    match waitpid(
        Pid::from_raw(-1),
        Some(WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD),
    ) {
        Ok(status) => Ok(Some(status)),
        Err(Errno::EINTR) => Ok(None),
        Err(errno) => Err(PtraceError::Request {
            operation: "wait for",
            tid: -1,
            errno,
        }),
    }
}

impl StopTracer {
    /// Seizes every thread of `pid` (the `tids` given, then any the process created
    /// meanwhile), arms `registers` in each and lets them run.
    pub fn attach(
        pid: i32,
        tids: &[i32],
        registers: DebugRegisterSet,
    ) -> Result<Self, TracerError> {
        let mut tracer = Self::new(pid, true, registers);
        let mut pending: Vec<i32> = tids.to_vec();
        loop {
            for tid in pending.drain(..) {
                if tracer.threads.contains_key(&tid) {
                    continue;
                }
                match ptrace::seize(Pid::from_raw(tid), options()) {
                    Ok(()) => {}
                    // Gone, or already ours (an auto-attached clone: its first stop arms it).
                    Err(Errno::ESRCH) => continue,
                    Err(Errno::EPERM) if !tracer.threads.is_empty() => continue,
                    Err(errno) => return Err(request("seize", tid)(errno).into()),
                }
                tracer.threads.insert(
                    tid,
                    TracedThread {
                        guard: None,
                        state: ThreadState::Running,
                        stop_requested: false,
                    },
                );
                ptrace::interrupt(Pid::from_raw(tid)).map_err(request("interrupt", tid))?;
                tracer.wait_initial_stop(tid)?;
                tracer.arm(tid)?;
            }
            // Threads created before their creator was seized are not auto-attached.
            let now = crate::target::threads_of(pid).unwrap_or_default();
            pending = now
                .into_iter()
                .filter(|t| !tracer.threads.contains_key(t))
                .collect();
            if pending.is_empty() {
                break;
            }
        }
        if tracer.threads.is_empty() {
            return Err(TracerError::NoThreads { pid });
        }
        tracer.resume_all()?;
        Ok(tracer)
    }

    /// Takes over a process this thread traces and that is stopped (e.g. from
    /// `LaunchedProcess::into_traced`), arms `registers` and lets it run. Its later threads are
    /// attached automatically (`PTRACE_O_TRACECLONE`).
    pub fn adopt_launched(pid: i32, registers: DebugRegisterSet) -> Result<Self, TracerError> {
        let mut tracer = Self::new(pid, false, registers);
        ptrace::setoptions(Pid::from_raw(pid), options() | Options::PTRACE_O_EXITKILL)
            .map_err(request("set options on", pid))?;
        tracer.threads.insert(
            pid,
            TracedThread {
                guard: None,
                state: ThreadState::Stopped,
                stop_requested: false,
            },
        );
        tracer.arm(pid)?;
        tracer.resume_all()?;
        Ok(tracer)
    }

    fn new(pid: i32, seized: bool, registers: DebugRegisterSet) -> Self {
        let same_process_group = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
            .is_ok_and(|group| group == nix::unistd::getpgrp());
        Self {
            pid,
            seized,
            registers,
            threads: HashMap::new(),
            same_process_group,
            finished: false,
        }
    }

    /// A handle that interrupts [`StopTracer::next_event`] from another thread. Installs a
    /// do-nothing `SIGURG` handler without `SA_RESTART` (once per process).
    pub fn waker(&self) -> StopWaker {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            let action = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::Handler(ignore_signal),
                nix::sys::signal::SaFlags::empty(),
                nix::sys::signal::SigSet::empty(),
            );
            // SAFETY: the handler is an empty `extern "C"` function, async-signal-safe; SIGURG
            // is ignored by default, so replacing its disposition changes nothing else.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGURG, &action) };
        });
        StopWaker {
            process: std::process::id() as i32,
            thread: nix::unistd::gettid().as_raw(),
        }
    }

    /// The traced process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How many threads are traced now.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// The threads currently traced.
    pub fn threads(&self) -> Vec<i32> {
        let mut tids: Vec<i32> = self.threads.keys().copied().collect();
        tids.sort_unstable();
        tids
    }

    /// Waits for this thread's stop after `PTRACE_INTERRUPT`, passing on signals that come
    /// first.
    fn wait_initial_stop(&mut self, tid: i32) -> Result<(), PtraceError> {
        loop {
            match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::PtraceEvent(_, _, event))
                    if event == Event::PTRACE_EVENT_STOP as i32 =>
                {
                    self.set_state(tid, ThreadState::Stopped);
                    return Ok(());
                }
                Ok(WaitStatus::Stopped(_, signal)) => {
                    ptrace::cont(Pid::from_raw(tid), signal).map_err(request("continue", tid))?;
                }
                Ok(WaitStatus::PtraceEvent(..)) => {
                    ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
                }
                Ok(other) => {
                    self.threads.remove(&tid);
                    return Err(PtraceError::UnexpectedStatus {
                        tid,
                        status: format!("{other:?} while attaching"),
                    });
                }
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(request("wait for", tid)(errno)),
            }
        }
    }

    fn set_state(&mut self, tid: i32, state: ThreadState) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.state = state;
        }
    }

    /// Saves the stopped thread's registers, then writes the addresses and DR7.
    fn arm(&mut self, tid: i32) -> Result<(), TracerError> {
        let guard = DebugRegisterGuard::capture(tid)?;
        let arm_error = |source| TracerError::Arm { tid, source };
        let set = self.registers;
        let enabled = set.enabled_mask();
        let result = (|| {
            // Disable first so no intermediate address/DR7 pair is invalid.
            if guard.saved_dr7() != 0 {
                poke_debugreg(tid, 7, 0)?;
            }
            for slot in 0..4u8 {
                if enabled & (1 << slot) != 0 {
                    poke_debugreg(tid, slot, set.addresses[usize::from(slot)])?;
                }
            }
            poke_debugreg(tid, 7, set.dr7)
        })();
        if let Err(source) = result {
            // `guard` restores the previous registers when dropped here.
            drop(guard);
            return Err(arm_error(source));
        }
        if let Some(thread) = self.threads.get_mut(&tid) {
            thread.guard = Some(guard);
        }
        Ok(())
    }

    fn resume_all(&mut self) -> Result<(), PtraceError> {
        for (tid, thread) in &mut self.threads {
            if thread.state == ThreadState::Stopped {
                ptrace::cont(Pid::from_raw(*tid), None).map_err(request("continue", *tid))?;
                thread.state = ThreadState::Running;
            }
        }
        Ok(())
    }

    /// Lets thread `tid`, stopped at a [`StopEvent::Hit`], run on (no signal).
    pub fn resume(&mut self, tid: i32) -> Result<(), PtraceError> {
        ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
        self.set_state(tid, ThreadState::Running);
        Ok(())
    }

    /// Reads `buf.len()` bytes of the tracee's memory at `addr` (`process_vm_readv`).
    pub fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        crate::memory::read_memory(self.pid, addr, buf).ok()
    }

    /// Return addresses from a frame-pointer walk starting at `frame_pointer`, outermost last,
    /// at most `max_frames`.
    pub fn frame_pointer_backtrace(&self, frame_pointer: u64, max_frames: usize) -> Vec<u64> {
        let mut frames = Vec::new();
        let mut fp = frame_pointer;
        while frames.len() < max_frames && fp != 0 && fp.is_multiple_of(8) {
            let mut pair = [0u8; 16];
            if self.read_memory(fp, &mut pair) != Some(16) {
                break;
            }
            let next = u64::from_ne_bytes(pair[..8].try_into().expect("8 bytes"));
            let ret = u64::from_ne_bytes(pair[8..].try_into().expect("8 bytes"));
            if ret == 0 {
                break;
            }
            frames.push(ret);
            // Frames grow towards higher addresses as we go out.
            if next <= fp {
                break;
            }
            fp = next;
        }
        frames
    }

    /// Waits for the next event. Thread creation, signal forwarding and exit stops are handled
    /// here; a hit leaves its thread stopped.
    pub fn next_event(&mut self) -> Result<StopEvent, TracerError> {
        if self.finished {
            return Err(TracerError::NoThreads { pid: self.pid });
        }
        loop {
            let Some(status) = wait_any()? else {
                return Ok(StopEvent::Interrupted);
            };
            if let Some(event) = self.handle(status)? {
                return Ok(event);
            }
        }
    }

    /// One wait status; `Some` when the caller should hear about it.
    fn handle(&mut self, status: WaitStatus) -> Result<Option<StopEvent>, TracerError> {
        match status {
            WaitStatus::Exited(pid, code) => {
                Ok(self.thread_gone(pid.as_raw(), ProcessExit::Exited(code)))
            }
            WaitStatus::Signaled(pid, signal, core_dumped) => Ok(self.thread_gone(
                pid.as_raw(),
                ProcessExit::Signaled {
                    signal: signal as i32,
                    core_dumped,
                },
            )),
            WaitStatus::Stopped(pid, signal) => {
                let tid = pid.as_raw();
                if !self.threads.contains_key(&tid) {
                    return self.new_thread(tid).map(Some);
                }
                self.set_state(tid, ThreadState::Stopped);
                if signal == Signal::SIGTRAP {
                    let dr6 = peek_debugreg(tid, 6)?;
                    let slots =
                        Dr6::from_architectural(dr6).hit_mask() & self.registers.enabled_mask();
                    if slots != 0 {
                        poke_debugreg(tid, 6, 0)?;
                        let regs =
                            ptrace::getregs(pid).map_err(request("read registers of", tid))?;
                        return Ok(Some(StopEvent::Hit {
                            tid,
                            slots,
                            ip: regs.rip,
                            frame_pointer: regs.rbp,
                            stack_pointer: regs.rsp,
                            registers: [
                                regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp,
                                regs.rsi, regs.rdi, regs.r8, regs.r9, regs.r10, regs.r11, regs.r12,
                                regs.r13, regs.r14, regs.r15,
                            ],
                        }));
                    }
                }
                let pass = match signal {
                    Signal::SIGINT if self.same_process_group => None,
                    Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
                        if ptrace::getsiginfo(pid) == Err(Errno::EINVAL) =>
                    {
                        // A group-stop report, not a signal to deliver.
                        None
                    }
                    other => Some(other),
                };
                self.resume_with(tid, pass)?;
                Ok((signal == Signal::SIGINT && pass.is_none()).then_some(StopEvent::Interrupted))
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                let tid = pid.as_raw();
                if !self.threads.contains_key(&tid) {
                    return self.new_thread(tid).map(Some);
                }
                self.set_state(tid, ThreadState::Stopped);
                if event == Event::PTRACE_EVENT_EXEC as i32 {
                    // Every other thread is gone; the new image has no breakpoints.
                    self.threads.retain(|t, _| *t == self.pid);
                    if let Some(main) = self.threads.get_mut(&self.pid) {
                        main.state = ThreadState::Stopped;
                        main.guard = None;
                    }
                    return Ok(Some(StopEvent::Exec));
                }
                if event == Event::PTRACE_EVENT_EXIT as i32 {
                    // The kernel frees the thread's breakpoints as it exits.
                    if let Some(t) = self.threads.get_mut(&tid) {
                        if let Some(guard) = t.guard.take() {
                            let _ = guard.restore();
                        }
                    }
                }
                self.resume_with(tid, None)?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn resume_with(&mut self, tid: i32, signal: Option<Signal>) -> Result<(), PtraceError> {
        match ptrace::cont(Pid::from_raw(tid), signal) {
            Ok(()) | Err(Errno::ESRCH) => {
                self.set_state(tid, ThreadState::Running);
                Ok(())
            }
            Err(errno) => Err(request("continue", tid)(errno)),
        }
    }

    /// The first stop of a thread auto-attached at clone: arm it, then let it run.
    fn new_thread(&mut self, tid: i32) -> Result<StopEvent, TracerError> {
        self.threads.insert(
            tid,
            TracedThread {
                guard: None,
                state: ThreadState::Stopped,
                stop_requested: false,
            },
        );
        self.arm(tid)?;
        self.resume_with(tid, None)?;
        Ok(StopEvent::ThreadStarted { tid })
    }

    fn thread_gone(&mut self, tid: i32, exit: ProcessExit) -> Option<StopEvent> {
        if let Some(mut t) = self.threads.remove(&tid) {
            if let Some(guard) = t.guard.take() {
                // The registers died with the thread.
                std::mem::forget(guard);
            }
        }
        if tid == self.pid {
            self.finished = true;
            for (_, mut t) in self.threads.drain() {
                if let Some(guard) = t.guard.take() {
                    std::mem::forget(guard);
                }
            }
            Some(StopEvent::Exited(exit))
        } else {
            Some(StopEvent::ThreadExited { tid })
        }
    }

    /// Stops every thread, puts back the debug registers each held before hwbp armed it, and
    /// detaches without a signal. Returns how many threads were detached.
    pub fn detach(mut self) -> Result<usize, TracerError> {
        let result = self.detach_inner();
        self.finished = true;
        result
    }

    fn detach_inner(&mut self) -> Result<usize, TracerError> {
        if self.finished {
            return Ok(0);
        }
        self.stop_all()?;
        let mut first_error = None;
        let mut detached = 0;
        for (tid, thread) in self.threads.drain() {
            if let Some(guard) = thread.guard {
                if let Err(e) = guard.restore() {
                    first_error.get_or_insert(TracerError::Ptrace(e));
                }
            }
            match ptrace::detach(Pid::from_raw(tid), None::<Signal>) {
                Ok(()) => detached += 1,
                Err(Errno::ESRCH) => {}
                Err(errno) => {
                    first_error.get_or_insert(request("detach from", tid)(errno).into());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(detached),
        }
    }

    /// Brings every thread into a ptrace stop: `PTRACE_INTERRUPT` for seized threads, a
    /// `SIGSTOP` (consumed, never delivered) for a launched process.
    fn stop_all(&mut self) -> Result<(), TracerError> {
        loop {
            for (tid, thread) in &mut self.threads {
                if thread.state == ThreadState::Running && !thread.stop_requested {
                    let sent = if self.seized {
                        ptrace::interrupt(Pid::from_raw(*tid))
                    } else {
                        tgkill(self.pid, *tid, Signal::SIGSTOP)
                    };
                    if sent.is_ok() {
                        thread.stop_requested = true;
                    }
                }
            }
            if self
                .threads
                .values()
                .all(|t| t.state == ThreadState::Stopped)
            {
                return Ok(());
            }
            let Some(status) = wait_any()? else { continue };
            let tid = status.pid().map_or(-1, Pid::as_raw);
            let requested = self.threads.get(&tid).is_some_and(|t| t.stop_requested);
            match status {
                WaitStatus::PtraceEvent(_, _, event)
                    if event == Event::PTRACE_EVENT_STOP as i32
                        && (requested || !self.threads.contains_key(&tid)) =>
                {
                    self.mark_stopped_for_detach(tid);
                }
                WaitStatus::Stopped(_, Signal::SIGSTOP)
                    if requested || !self.threads.contains_key(&tid) =>
                {
                    self.mark_stopped_for_detach(tid);
                }
                WaitStatus::Stopped(pid, Signal::SIGTRAP) if self.threads.contains_key(&tid) => {
                    // A hit while stopping is dropped (DR6 cleared); any other SIGTRAP is
                    // the program's own and is delivered.
                    let hit = peek_debugreg(tid, 6)
                        .is_ok_and(|dr6| Dr6::from_architectural(dr6).hit_mask() != 0);
                    if hit {
                        let _ = poke_debugreg(tid, 6, 0);
                    }
                    let _ = ptrace::cont(pid, (!hit).then_some(Signal::SIGTRAP));
                }
                WaitStatus::Stopped(pid, signal) => {
                    let _ = ptrace::cont(pid, signal);
                }
                WaitStatus::PtraceEvent(_, _, event)
                    if event == Event::PTRACE_EVENT_EXEC as i32 =>
                {
                    self.threads.retain(|t, _| *t == self.pid);
                    if let Some(main) = self.threads.get_mut(&self.pid) {
                        main.guard = None;
                    }
                    self.mark_stopped_for_detach(self.pid);
                }
                WaitStatus::PtraceEvent(pid, _, _) => {
                    let _ = ptrace::cont(pid, None);
                }
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    if tid == self.pid {
                        self.finished = true;
                        self.threads.clear();
                        return Ok(());
                    }
                    self.threads.remove(&tid);
                }
                _ => {}
            }
        }
    }

    fn mark_stopped_for_detach(&mut self, tid: i32) {
        let thread = self.threads.entry(tid).or_insert(TracedThread {
            // A clone that appeared while stopping: never armed.
            guard: None,
            state: ThreadState::Stopped,
            stop_requested: true,
        });
        thread.state = ThreadState::Stopped;
        thread.stop_requested = true;
    }
}

fn tgkill(pid: i32, tid: i32, signal: Signal) -> nix::Result<()> {
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal as libc::c_int) };
    Errno::result(rc).map(drop)
}

impl Drop for StopTracer {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.detach_inner();
            self.finished = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(addr: u64, len: u64, access: Access) -> WatchRequest {
        WatchRequest {
            addr,
            len,
            access,
            pinned: true,
            exclude_kernel: true,
            exclude_user: false,
        }
    }

    #[test]
    fn perf_requests_become_shared_and_split_registers() {
        let (set, watches) = DebugRegisterSet::allocate(&[
            request(0x1000, 8, Access::Write),
            request(0x1000, 8, Access::Write),
            request(0x2003, 3, Access::ReadWrite),
            request(0x401000, 8, Access::Execute),
        ])
        .unwrap();
        assert_eq!(set.addresses, [0x1000, 0x2003, 0x2004, 0x401000]);
        // R/W+LEN fields: DR0 W/8 = 0x9, DR1 RW/1 = 0x3, DR2 RW/2 = 0x7, DR3 X = 0; L0-L3, LE.
        assert_eq!(set.dr7, 0x0739_0155);
        assert_eq!(set.enabled_mask(), 0b1111);
        let masks: Vec<u8> = watches.iter().map(AllocatedWatch::slot_mask).collect();
        assert_eq!(masks, [0b0001, 0b0001, 0b0110, 0b1000]);
        assert!(matches!(
            DebugRegisterSet::allocate(&[request(0x1000, 4, Access::Read)]),
            Err(TracerError::Unsupported { addr: 0x1000, .. })
        ));
        let err = DebugRegisterSet::allocate(&[
            request(0x1000, 32, Access::Write),
            request(0x3000, 4, Access::Write),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "4 bytes at 0x3000 need 1 more debug register but only 0 of 4 are free: \
             remove another watch first"
        );
    }
}
