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
//!   [`StopEvent::Hit`] and stays stopped until [`StopTracer::resume`]; the `SIGTRAP` is never
//!   delivered. A hit costs the wait, two reads (siginfo, which also carries the `ip`, and
//!   DR6) and the resume; DR6 needs no clearing between hits (see `classify_stop`). Other
//!   signals are passed on, except a `SIGINT` from hwbp's own terminal (the target shares
//!   hwbp's process group), which is hwbp's, as in gdb;
//! - [`StopTracer::detach`] stops every thread, restores its debug registers, consumes any
//!   watchpoint `SIGTRAP` still queued for it (below) and detaches without a signal, so the
//!   target runs on as before.
//!
//! Data watchpoints are traps: the value read at the stop is the value the access left.
//!
//! # Which `SIGTRAP`s are hwbp's
//!
//! A watched access raises #DB; `exc_debug_user` (`arch/x86/kernel/traps.c`) adds the
//! virtual DR6 bits that `ptrace_triggered` (`arch/x86/kernel/hw_breakpoint.c` /
//! `ptrace.c`) set for each ptrace breakpoint that fired, and sends `SIGTRAP` with
//! `force_sig_fault`, `si_code = get_si_code(dr6)`: `TRAP_TRACE` if DR6.BS (single step),
//! else `TRAP_HWBKPT` if B0-B3, else `TRAP_BRKPT`. A #DB whose DR6 gives no reason at all is
//! taken for an `icebp` (`int1`) and also gets `TRAP_BRKPT`; these VMs raise such empty-DR6
//! #DBs under busy watchpoints (`bench/sigtrap/RESULTS.md`). [`classify_sigtrap`] decides:
//! `TRAP_HWBKPT` with an armed slot in DR6 is a hit; `TRAP_HWBKPT` without one, or
//! `TRAP_BRKPT`, is a *stray* trap (swallowed while hwbp's watchpoints are armed, counted in
//! [`StopTracer::stray_traps`] and reported as [`StopEvent::StrayTrap`]: an access that
//! cannot be attributed, i.e. lost); anything else (`int3` → `SI_KERNEL`, `kill`/`tgkill` →
//! `SI_USER`/`SI_TKILL`, a single step `TRAP_TRACE`, perf's `TRAP_PERF`) is the program's and
//! is delivered. A program's own `int1` while hwbp is attached is therefore swallowed too.
//!
//! # Detaching while threads write
//!
//! `PTRACE_INTERRUPT` (`kernel/ptrace.c`) sets `JOBCTL_TRAP_STOP`. `get_signal`
//! (`kernel/signal.c`) handles pending job-control traps *before* it dequeues a signal, so a
//! thread that hit a watchpoint just before the interrupt reports `PTRACE_EVENT_STOP` with
//! its watchpoint `SIGTRAP` still queued. Detaching with signal 0 does not discard a queued
//! signal (it only replaces the one being reported at a signal-delivery-stop), so the
//! `SIGTRAP` would reach an untraced thread after the detach and its default action kills
//! the process. So the detach first restores the registers, then for each thread reads its
//! private queue (`PTRACE_PEEKSIGINFO`); if a `SIGTRAP` of ours is queued it continues the
//! thread with no signal: `get_signal` dequeues synchronous signals first
//! (`dequeue_synchronous_signal`) and reports the signal-delivery-stop before returning to
//! user mode, so no instruction runs, and `PTRACE_DETACH` from that stop with signal 0
//! suppresses it. A `SIGTRAP` that is the program's own stays queued and is delivered after
//! the detach. A watchpoint `SIGTRAP` reported while stopping ends that thread's stop as is
//! (detaching from it with 0 drops it); any other signal-delivery-stop is passed on and the
//! thread interrupted again, since `ptrace_stop` clears a pending `JOBCTL_TRAP_STOP` at every
//! trap ("any trap clears pending STOP trap").

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
        /// instruction for an execute breakpoint (a fault). It comes with the `SIGTRAP`
        /// (`si_addr`, which `exc_debug_user` sets to the trapping `ip`); the other registers
        /// cost a request of their own: [`StopTracer::registers`].
        ip: u64,
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
    /// Thread `tid` took a debug exception that matched none of the armed watchpoints (see
    /// [`TrapOrigin::Stray`]): most likely a watched access the CPU reported with an empty
    /// DR6, so a hit that cannot be attributed (count it as lost). Its `SIGTRAP` was
    /// swallowed and the thread already runs on. [`StopTracer::stray_traps`] counts these.
    StrayTrap {
        /// The thread.
        tid: i32,
    },
}

/// The registers of a thread stopped at a [`StopEvent::Hit`] (`PTRACE_GETREGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoppedRegisters {
    /// The instruction pointer (`rip`).
    pub ip: u64,
    /// The frame pointer (`rbp`), for a frame-pointer backtrace.
    pub frame_pointer: u64,
    /// The stack pointer (`rsp`).
    pub stack_pointer: u64,
    /// The general-purpose registers in encoding order: `rax`, `rcx`, `rdx`, `rbx`, `rsp`,
    /// `rbp`, `rsi`, `rdi`, `r8`-`r15` (for decoding what a store wrote).
    pub registers: [u64; 16],
}

/// Where a `SIGTRAP` reported to the tracer came from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapOrigin {
    /// A watchpoint hit: `TRAP_HWBKPT` and DR6 shows these armed slots (bit `i` = DR`i`).
    Watchpoint {
        /// The armed slots whose conditions matched.
        slots: u8,
    },
    /// A debug exception hwbp cannot attribute while its watchpoints are armed: `TRAP_BRKPT`
    /// (a #DB with an empty DR6, which the kernel takes for `icebp`) or `TRAP_HWBKPT` without
    /// an armed slot in DR6. Swallowed, never delivered.
    Stray,
    /// The program's own trap (`int3`, `kill`, `tgkill`, `sigqueue`, single step, perf
    /// `sigtrap`): delivered.
    Program,
}

/// Classifies a `SIGTRAP` by its `si_code` and the virtual DR6 hit bits (B0-B3, e.g.
/// `Dr6::hit_mask`), given the slots hwbp armed (`armed`, e.g.
/// [`DebugRegisterSet::enabled_mask`]).
pub fn classify_sigtrap(si_code: i32, dr6_hits: u8, armed: u8) -> TrapOrigin {
    if !is_debug_exception_trap(si_code) {
        TrapOrigin::Program
    } else if si_code == libc::TRAP_HWBKPT && dr6_hits & armed != 0 {
        TrapOrigin::Watchpoint {
            slots: dr6_hits & armed,
        }
    } else {
        TrapOrigin::Stray
    }
}

/// Whether a `SIGTRAP` with this `si_code` is one hwbp consumes while its watchpoints are
/// armed: sent by `exc_debug_user` for a debug-register match (`TRAP_HWBKPT`) or for a #DB
/// with no reason in DR6 (`TRAP_BRKPT`). `int3` (`SI_KERNEL`), `kill`/`tgkill` (`SI_USER`,
/// `SI_TKILL`), `sigqueue` (`SI_QUEUE`), single steps (`TRAP_TRACE`) and perf's `TRAP_PERF`
/// are the program's.
pub fn is_debug_exception_trap(si_code: i32) -> bool {
    matches!(si_code, libc::TRAP_HWBKPT | libc::TRAP_BRKPT)
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
    stray_traps: u64,
    /// Wait statuses taken while moving the registers ([`StopTracer::set_registers`]), for
    /// [`StopTracer::next_event`].
    pending: Vec<WaitStatus>,
    /// `SIGSTOP`s hwbp sent a launched process to move the registers, still to come.
    sigstops_to_swallow: usize,
    /// Threads given registers of their own ([`StopTracer::set_thread_registers`]).
    thread_registers: HashMap<i32, DebugRegisterSet>,
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

/// How long [`wait_any`] polls for a tracee's next stop before it blocks.
const POLL_BEFORE_BLOCKING: std::time::Duration = std::time::Duration::from_micros(200);

/// Waits for any tracee or child of *this thread* (`__WNOTHREAD`: another thread's children,
/// e.g. another tracer's, are left alone).
fn wait_any() -> Result<Option<WaitStatus>, PtraceError> {
    // A tracee that traps again soon after its resume (a loop writing the watched variable)
    // is seen without this thread's CPU going idle: on these VMs an idle vCPU halts, and
    // waking it costs more than the hit (bench/stop: 0.42-0.46x gdb per hit blocking at once,
    // 0.19-0.22x polling first). A quiet tracee costs at most this long per stop.
    let poll_until = std::time::Instant::now() + POLL_BEFORE_BLOCKING;
    loop {
        match waitpid(
            Pid::from_raw(-1),
            Some(WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD | WaitPidFlag::WNOHANG),
        ) {
            Ok(WaitStatus::StillAlive) if std::time::Instant::now() < poll_until => {
                std::hint::spin_loop();
            }
            Ok(WaitStatus::StillAlive) => break,
            Ok(status) => return Ok(Some(status)),
            // EINTR (a wake) or anything else: the blocking wait below says what it is.
            Err(_) => break,
        }
    }
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
            stray_traps: 0,
            pending: Vec::new(),
            sigstops_to_swallow: 0,
            thread_registers: HashMap::new(),
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

    /// How many stray debug exceptions (see [`TrapOrigin::Stray`]) were swallowed so far,
    /// each reported once as [`StopEvent::StrayTrap`] (or, while stopping for the detach,
    /// dropped with the thread's other late hits).
    pub fn stray_traps(&self) -> u64 {
        self.stray_traps
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
                    // That stop consumed the pending interrupt (`ptrace_stop`).
                    ptrace::interrupt(Pid::from_raw(tid)).map_err(request("interrupt", tid))?;
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
        let result = write_registers(tid, &self.registers, guard.saved_dr7() != 0);
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

    /// Replaces the debug registers of every traced thread with `registers` (to move a
    /// watch, e.g. when a pointer of a watched expression changed), keeping each thread's
    /// saved registers for the detach. Threads stopped now are written as they are; running
    /// ones are stopped for it (`PTRACE_INTERRUPT`, or a consumed `SIGSTOP` for a launched
    /// process) and let run again. A stop that comes first (a hit, a signal) is kept and
    /// returned by the next [`StopTracer::next_event`] calls. Threads created later get the
    /// new registers.
    pub fn set_registers(&mut self, registers: DebugRegisterSet) -> Result<(), TracerError> {
        self.registers = registers;
        self.thread_registers.clear();
        let tids: Vec<i32> = self.threads.keys().copied().collect();
        for tid in tids {
            let running = self
                .threads
                .get(&tid)
                .is_some_and(|t| t.state == ThreadState::Running);
            if !running {
                write_registers(tid, &registers, true)
                    .map_err(|source| TracerError::Arm { tid, source })?;
                continue;
            }
            let sent = if self.seized {
                ptrace::interrupt(Pid::from_raw(tid))
            } else {
                tgkill(self.pid, tid, Signal::SIGSTOP)
            };
            if sent.is_err() {
                continue; // gone
            }
            loop {
                match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::PtraceEvent(_, _, event))
                        if self.seized && event == Event::PTRACE_EVENT_STOP as i32 =>
                    {
                        write_registers(tid, &registers, true)
                            .map_err(|source| TracerError::Arm { tid, source })?;
                        ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
                        break;
                    }
                    Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) if !self.seized => {
                        write_registers(tid, &registers, true)
                            .map_err(|source| TracerError::Arm { tid, source })?;
                        ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
                        break;
                    }
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                        self.pending.push(status);
                        break;
                    }
                    Ok(status) => {
                        // Stopped for something else first: write now, report it later. The
                        // requested stop is still pending and is taken when it comes.
                        write_registers(tid, &registers, true)
                            .map_err(|source| TracerError::Arm { tid, source })?;
                        self.set_state(tid, ThreadState::Stopped);
                        self.pending.push(status);
                        if !self.seized {
                            self.sigstops_to_swallow += 1;
                        }
                        break;
                    }
                    Err(Errno::EINTR) => {}
                    Err(errno) => return Err(request("wait for", tid)(errno).into()),
                }
            }
        }
        Ok(())
    }

    /// Gives thread `tid`, stopped at a [`StopEvent::Hit`], debug registers of its own (a
    /// watch that follows one thread's stack frame); `None` puts back the ones every thread
    /// has. Its saved registers stay kept for the detach; [`set_registers`](Self::set_registers)
    /// later overrides every thread's.
    pub fn set_thread_registers(
        &mut self,
        tid: i32,
        registers: Option<DebugRegisterSet>,
    ) -> Result<(), TracerError> {
        let set = registers.unwrap_or(self.registers);
        write_registers(tid, &set, true).map_err(|source| TracerError::Arm { tid, source })?;
        match registers {
            Some(set) => self.thread_registers.insert(tid, set),
            None => self.thread_registers.remove(&tid),
        };
        Ok(())
    }

    /// Lets thread `tid`, stopped at a [`StopEvent::Hit`], run on (no signal).
    pub fn resume(&mut self, tid: i32) -> Result<(), PtraceError> {
        ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
        self.set_state(tid, ThreadState::Running);
        Ok(())
    }

    /// The little-endian value of `len` bytes (1, 2, 4 or 8) at `addr`, read while thread
    /// `tid` is stopped at a hit. A value inside one aligned 8-byte word (every
    /// debug-register piece is: DR7 lengths need natural alignment) is one `PTRACE_PEEKDATA`
    /// of that word (`ptrace_access_vm`: this tracer's own tracee, no LSM access check as
    /// `process_vm_readv` has, which costs a third more here); any other value goes through
    /// [`crate::memory::read_value`].
    pub fn read_value(&self, tid: i32, addr: u64, len: u64) -> Option<u64> {
        let offset = addr % 8;
        if matches!(len, 1 | 2 | 4 | 8) && offset + len <= 8 {
            let word_addr = addr - offset;
            if let Ok(word) = ptrace::read(Pid::from_raw(tid), word_addr as ptrace::AddressType) {
                // The word's bits, as the C `long` PEEKDATA returns them.
                let word = (word as u64).to_le_bytes();
                let mut bytes = [0u8; 8];
                let start = offset as usize;
                bytes[..len as usize].copy_from_slice(&word[start..start + len as usize]);
                return Some(u64::from_le_bytes(bytes));
            }
        }
        crate::memory::read_value(self.pid, addr, usize::try_from(len).ok()?).ok()
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
            let status = if self.pending.is_empty() {
                let Some(status) = wait_any()? else {
                    return Ok(StopEvent::Interrupted);
                };
                status
            } else {
                self.pending.remove(0)
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
                    let (origin, trap_ip) = self.classify_stop(tid)?;
                    if origin == TrapOrigin::Stray {
                        self.stray_traps += 1;
                        self.resume_with(tid, None)?;
                        return Ok(Some(StopEvent::StrayTrap { tid }));
                    }
                    if let TrapOrigin::Watchpoint { slots } = origin {
                        let ip = match trap_ip {
                            0 => self.registers(tid)?.ip,
                            ip => ip,
                        };
                        return Ok(Some(StopEvent::Hit { tid, slots, ip }));
                    }
                }
                let pass = match signal {
                    Signal::SIGSTOP if self.sigstops_to_swallow > 0 => {
                        // hwbp's own, sent to move the registers; they are written already.
                        self.sigstops_to_swallow -= 1;
                        None
                    }
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

    /// Classifies the `SIGTRAP` thread `tid` is stopped for (signal-delivery-stop), with the
    /// address it came with (`si_addr`: the `ip` of a debug exception, 0 when none).
    ///
    /// Two requests, siginfo and DR6. DR6 is left as it is: `exc_debug_user`
    /// (`arch/x86/kernel/traps.c`) starts every user-mode debug exception with a fresh virtual
    /// DR6 (`virtual_dr6 = dr6 & DR_STEP`, then `ptrace_triggered` sets the slots that
    /// fired), and only those exceptions send `TRAP_HWBKPT`/`TRAP_BRKPT`, so the DR6 read at
    /// such a stop is always that exception's; a stale DR6 at any other stop is never looked
    /// at (the program's own `si_code`s decide first). [`StopTracer::detach`] clears it.
    fn classify_stop(&self, tid: i32) -> Result<(TrapOrigin, u64), PtraceError> {
        let info =
            ptrace::getsiginfo(Pid::from_raw(tid)).map_err(request("read siginfo of", tid))?;
        if !is_debug_exception_trap(info.si_code) {
            return Ok((TrapOrigin::Program, 0));
        }
        let dr6 = peek_debugreg(tid, 6)?;
        let origin = classify_sigtrap(
            info.si_code,
            Dr6::from_architectural(dr6).hit_mask(),
            self.thread_registers
                .get(&tid)
                .unwrap_or(&self.registers)
                .enabled_mask(),
        );
        // SAFETY: for SIGTRAP (a fault-class signal) the kernel fills the `si_addr` member
        // of the union (`force_sig_fault`); reading it copies a pointer-sized integer.
        let addr = unsafe { info.si_addr() } as u64;
        Ok((origin, addr))
    }

    /// The registers of thread `tid`, which is stopped at a [`StopEvent::Hit`] (one
    /// `PTRACE_GETREGS`; only callchains and decoding a store need them).
    pub fn registers(&self, tid: i32) -> Result<StoppedRegisters, PtraceError> {
        let regs =
            ptrace::getregs(Pid::from_raw(tid)).map_err(request("read registers of", tid))?;
        Ok(StoppedRegisters {
            ip: regs.rip,
            frame_pointer: regs.rbp,
            stack_pointer: regs.rsp,
            registers: [
                regs.rax, regs.rcx, regs.rdx, regs.rbx, regs.rsp, regs.rbp, regs.rsi, regs.rdi,
                regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
            ],
        })
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
        self.thread_registers.remove(&tid);
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
        let mut threads: Vec<(i32, TracedThread)> = self.threads.drain().collect();
        // Registers first, so nothing of hwbp's is armed when a queued trap is consumed; DR6
        // cleared (hits leave their slots in it, see `classify_stop`).
        for (tid, thread) in &mut threads {
            if let Some(guard) = thread.guard.take() {
                if let Err(e) = guard.restore().and_then(|()| poke_debugreg(*tid, 6, 0)) {
                    first_error.get_or_insert(TracerError::Ptrace(e));
                }
            }
        }
        for (tid, _) in threads {
            let signal = match self.consume_queued_trap(tid) {
                Ok(Some(signal)) => signal,
                Ok(None) => continue, // the thread is gone
                Err(e) => {
                    first_error.get_or_insert(TracerError::Ptrace(e));
                    None
                }
            };
            match ptrace::detach(Pid::from_raw(tid), signal) {
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
                // A launched process is stopped with SIGSTOP (its own SIGSTOP, if any, is
                // indistinguishable and also consumed); a seized one's SIGSTOP is passed on.
                WaitStatus::Stopped(_, Signal::SIGSTOP)
                    if !self.seized && (requested || !self.threads.contains_key(&tid)) =>
                {
                    self.mark_stopped_for_detach(tid);
                }
                WaitStatus::Stopped(pid, signal) => {
                    let ours = signal == Signal::SIGTRAP
                        && self.threads.contains_key(&tid)
                        && self
                            .classify_stop(tid)
                            .is_ok_and(|(origin, _)| origin != TrapOrigin::Program);
                    if ours {
                        // A hit (or stray trap) while stopping: the thread stays in this
                        // stop and the detach (signal 0) drops its SIGTRAP. Not reported.
                        self.mark_stopped_for_detach(tid);
                        continue;
                    }
                    // The program's signal, delivered, except the terminal's Ctrl-C, which is
                    // hwbp's as in `handle`. The stop consumed a pending interrupt.
                    let pass =
                        (signal != Signal::SIGINT || !self.same_process_group).then_some(signal);
                    let _ = ptrace::cont(pid, pass);
                    if self.seized {
                        if let Some(t) = self.threads.get_mut(&tid) {
                            t.stop_requested = false;
                        }
                    }
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

    /// For a thread stopped for the detach, with its registers restored: if a `SIGTRAP` of
    /// hwbp's is queued for it (see the module docs), lets it dequeue that signal into a
    /// signal-delivery-stop, from which a detach with signal 0 suppresses it. The same for the
    /// `SIGSTOP` hwbp sent a launched process to stop it ([`StopTracer::stop_all`]) when the
    /// thread stopped for something else first (a hit): left queued, it would stop the
    /// process right after the detach, and a stopped process does not act on `SIGTERM`
    /// (`wants_signal` in `kernel/signal.c`). Returns the signal to detach with (`None`, or a
    /// signal the thread stopped for instead), or `Ok(None)` when the thread ended meanwhile.
    fn consume_queued_trap(&mut self, tid: i32) -> Result<Option<Option<Signal>>, PtraceError> {
        // Bounded: each round consumes one stop; a group stop may come in between.
        for _ in 0..8 {
            let trap = match queued_sigtrap(tid)? {
                // The program's own trap: it stays queued and is delivered after the detach.
                Some(si_code) if !is_debug_exception_trap(si_code) => return Ok(Some(None)),
                trap => trap.is_some(),
            };
            let own_sigstop = !self.seized && sigstop_queued_by_us(tid)?;
            if !trap && !own_sigstop {
                return Ok(Some(None));
            }
            ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
            loop {
                match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {
                        let info = ptrace::getsiginfo(Pid::from_raw(tid))
                            .map_err(request("read siginfo of", tid))?;
                        if !is_debug_exception_trap(info.si_code) {
                            return Ok(Some(Some(Signal::SIGTRAP)));
                        }
                        let _ = poke_debugreg(tid, 6, 0);
                        break;
                    }
                    // hwbp's SIGSTOP, taken into this stop: detaching with 0 drops it.
                    Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) if own_sigstop => break,
                    // Another signal came first: it goes to the thread with the detach.
                    Ok(WaitStatus::Stopped(_, signal)) => return Ok(Some(Some(signal))),
                    // A job-control stop in between: look at the queue again.
                    Ok(WaitStatus::PtraceEvent(_, _, event))
                        if event == Event::PTRACE_EVENT_STOP as i32 =>
                    {
                        break
                    }
                    Ok(WaitStatus::PtraceEvent(..)) => {
                        // Exiting (e.g. SIGKILL): let it go.
                        ptrace::cont(Pid::from_raw(tid), None).map_err(request("continue", tid))?;
                    }
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return Ok(None),
                    Ok(_) => {}
                    Err(Errno::EINTR) => {}
                    Err(Errno::ECHILD | Errno::ESRCH) => return Ok(None),
                    Err(errno) => return Err(request("wait for", tid)(errno)),
                }
            }
        }
        Ok(Some(None))
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

/// Writes `set` into stopped thread `tid`: DR7 off first when something may be enabled (so no
/// intermediate address/DR7 pair is invalid), the enabled slots' addresses, then DR7.
fn write_registers(
    tid: i32,
    set: &DebugRegisterSet,
    disable_first: bool,
) -> Result<(), PtraceError> {
    if disable_first {
        poke_debugreg(tid, 7, 0)?;
    }
    let enabled = set.enabled_mask();
    for slot in 0..4u8 {
        if enabled & (1 << slot) != 0 {
            poke_debugreg(tid, slot, set.addresses[usize::from(slot)])?;
        }
    }
    poke_debugreg(tid, 7, set.dr7)
}

/// The `si_code` of the `SIGTRAP` in thread `tid`'s private signal queue, if one is queued
/// (`PTRACE_PEEKSIGINFO`, which reads the queue without dequeuing; at most one `SIGTRAP` is
/// queued per queue, as for every non-realtime signal). `tid` must be ptrace-stopped.
fn queued_sigtrap(tid: i32) -> Result<Option<i32>, PtraceError> {
    Ok(queued_signal(tid, libc::SIGTRAP)?.map(|info| info.si_code))
}

/// True when the `SIGSTOP` queued for stopped thread `tid`, if any, is one this process sent
/// it with `tgkill` ([`StopTracer::stop_all`]; a program's own `SIGSTOP` carries its pid).
fn sigstop_queued_by_us(tid: i32) -> Result<bool, PtraceError> {
    Ok(queued_signal(tid, libc::SIGSTOP)?.is_some_and(|info| {
        // SAFETY: an `SI_TKILL` siginfo is a kill-type one, whose `si_pid` field is set
        // (`do_send_specific` in `kernel/signal.c`); the accessor reads that union member.
        info.si_code == libc::SI_TKILL && unsafe { info.si_pid() } == std::process::id() as i32
    }))
}

/// The siginfo of signal `signo` in thread `tid`'s private signal queue, if one is queued
/// (`PTRACE_PEEKSIGINFO`). `tid` must be ptrace-stopped.
fn queued_signal(tid: i32, signo: i32) -> Result<Option<libc::siginfo_t>, PtraceError> {
    const BATCH: usize = 16;
    let mut offset = 0u64;
    loop {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut infos: [libc::siginfo_t; BATCH] = unsafe { std::mem::zeroed() };
        let args = libc::ptrace_peeksiginfo_args {
            off: offset,
            flags: 0, // the thread's own queue, not the process's shared one
            nr: BATCH as i32,
        };
        // SAFETY: PTRACE_PEEKSIGINFO reads `args` and writes at most `nr` siginfo_t into
        // `infos`, which holds BATCH of them; both outlive the call.
        let n = unsafe {
            libc::ptrace(
                libc::PTRACE_PEEKSIGINFO,
                tid,
                std::ptr::from_ref(&args),
                infos.as_mut_ptr(),
            )
        };
        let n = Errno::result(n).map_err(request("read the signal queue of", tid))?;
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        if let Some(info) = infos[..n].iter().find(|i| i.si_signo == signo) {
            return Ok(Some(*info));
        }
        if n < BATCH {
            return Ok(None);
        }
        offset += BATCH as u64;
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
    fn sigtraps_are_classified_by_si_code_and_dr6() {
        // A watchpoint: TRAP_HWBKPT and DR6 shows armed slots (only those are reported).
        assert_eq!(
            classify_sigtrap(libc::TRAP_HWBKPT, 0b0101, 0b0011),
            TrapOrigin::Watchpoint { slots: 0b0001 }
        );
        // A #DB with no armed slot in DR6, or an empty DR6 (TRAP_BRKPT): stray, swallowed.
        assert_eq!(
            classify_sigtrap(libc::TRAP_HWBKPT, 0b0100, 0b0011),
            TrapOrigin::Stray
        );
        assert_eq!(
            classify_sigtrap(libc::TRAP_HWBKPT, 0, 0b1111),
            TrapOrigin::Stray
        );
        assert_eq!(
            classify_sigtrap(libc::TRAP_BRKPT, 0, 0b0001),
            TrapOrigin::Stray
        );
        assert_eq!(
            classify_sigtrap(libc::TRAP_BRKPT, 0b0001, 0b0001),
            TrapOrigin::Stray
        );
        // The program's own: int3 (SI_KERNEL), kill, tgkill, sigqueue, single step, perf.
        const TRAP_PERF: i32 = 6;
        for code in [
            libc::SI_KERNEL,
            libc::SI_USER,
            libc::SI_TKILL,
            libc::SI_QUEUE,
            libc::TRAP_TRACE,
            TRAP_PERF,
        ] {
            assert_eq!(
                classify_sigtrap(code, 0b0001, 0b0001),
                TrapOrigin::Program,
                "{code}"
            );
            assert!(!is_debug_exception_trap(code), "{code}");
        }
        assert!(is_debug_exception_trap(libc::TRAP_HWBKPT));
        assert!(is_debug_exception_trap(libc::TRAP_BRKPT));
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
