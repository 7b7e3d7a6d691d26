//! The stop-mode watcher: every thread of the target is armed with the same DR0-3/DR7 through
//! ptrace ([`hwbp_linux::ptrace::StopTracer`]; registers allocated by
//! [`DebugRegisterSet::allocate`] from the same pieces perf mode uses: identical pieces share a
//! register). At each hit the accessing thread is stopped, so the new value read then is exactly
//! what the access left, and the old value is the one kept from the previous stop (or from
//! arming). With several threads another one may store to the same place before the stop is
//! handled, so the value then comes from decoding the trapping store
//! ([`hwbp_symbols::store`]) when it is a plain `mov`, and is marked read-after otherwise.
//! A watch of several pieces (a struct, an array) reports the member whose piece fired, with
//! that member's own old and new value.
//!
//! `changes_only` drops hits that did not change the value (gdb's `watch`), `condition` tests
//! the new value. However the run ends, every thread gets its previous debug registers back and
//! runs on ([`StopTracer::detach`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_linux::memory;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::ptrace::{DebugRegisterSet, StopEvent, StopTracer};
use hwbp_symbols::cache::SymbolCache;

use crate::capture::{
    code_at, pinned_totals, stopped_callchain, stopped_value, DecodedStores, Trap,
};
use crate::error::{Error, ErrorKind, Result};
use crate::hit::{HitValue, ValueSource, WatchId};
use crate::options::{StopHandle, WatchOptions};
use crate::plan::{plural, PlannedTarget, PlannedWatch, WatchPlan};
use crate::sink::{HitSink, Notice};
use crate::summary::{EndedBy, Summary, SummaryKind};
use crate::threads::ThreadNames;
use crate::values::WatchValues;

/// Frames walked for callchains.
const MAX_FRAMES: usize = 64;

/// One debug-register piece of a watch, with its value cache.
struct StopPiece {
    watch: WatchId,
    /// Its index in the watch's pieces.
    index: usize,
    /// Its request (moved with a value chain).
    request: WatchRequest,
    addr: u64,
    len: u64,
    slot_mask: u8,
    member: Option<Arc<str>>,
    /// The value as last seen (at arming or the previous hit); `None` for execute pieces.
    last_value: Option<u64>,
}

/// Refuses what stop mode cannot do, before anything is armed.
pub(crate) fn check(plan: &WatchPlan) -> Result<()> {
    if matches!(plan.target, PlannedTarget::Cpus { .. }) {
        return Err(Error::bad_input(
            "--stop stops threads of one process: give -p PID, -t TID or -- CMD, not -a/-C",
        ));
    }
    for w in &plan.watches {
        if w.kernel_address {
            return Err(Error::bad_input(format!(
                "watch '{}': {:#x} is a kernel address; ptrace debug registers watch user \
                 space only: drop --stop to use perf-event mode",
                w.label, w.addr
            )));
        }
        if w.access == Access::Read {
            return Err(Error::bad_input(format!(
                "watch '{}': x86 debug registers cannot watch reads alone: use :rw",
                w.label
            )));
        }
    }
    Ok(())
}

/// Allocates every piece; a refusal names the first watch that does not fit.
fn allocate(plan: &WatchPlan) -> Result<(DebugRegisterSet, Vec<StopPiece>)> {
    let mut requests = Vec::new();
    let mut pieces = Vec::new();
    for w in &plan.watches {
        for (index, request) in w.pieces.iter().enumerate() {
            requests.push(*request);
            pieces.push(StopPiece {
                watch: w.id,
                index,
                request: *request,
                addr: request.addr,
                len: if w.access == Access::Execute {
                    1
                } else {
                    request.len
                },
                slot_mask: 0,
                member: w.piece_member(index).map(Into::into),
                last_value: None,
            });
        }
        if let Err(e) = DebugRegisterSet::allocate(&requests) {
            // The value chains so far say where the registers went.
            let chains: Vec<String> = plan.watches[..=w.id.0]
                .iter()
                .filter_map(PlannedWatch::chain_note)
                .collect();
            let chains = if chains.is_empty() {
                String::new()
            } else {
                format!(" ({})", chains.join("; "))
            };
            return Err(Error::bad_input(format!(
                "watch '{}': {e}{chains}",
                w.label
            )));
        }
    }
    let (registers, allocated) =
        DebugRegisterSet::allocate(&requests).map_err(|e| Error::bad_input(e.to_string()))?;
    for (piece, allocated) in pieces.iter_mut().zip(&allocated) {
        piece.slot_mask = allocated.slot_mask();
    }
    Ok((registers, pieces))
}

/// When `pieces[index]` watches a pointer of a value chain: evaluates the expression again
/// (the writer is stopped) and moves the chain's pieces; true when any moved.
fn move_chain(plan: &WatchPlan, pieces: &mut [StopPiece], index: usize, pid: i32) -> bool {
    let piece = &pieces[index];
    let Some(chain) = &plan.watches[piece.watch.0].chain else {
        return false;
    };
    if !chain.is_pointer_piece(piece.index) {
        return false;
    }
    let first = index - piece.index;
    let Some(moves) = chain.reevaluate(pid).and_then(|point| chain.move_to(point)) else {
        return false;
    };
    for (i, request) in &moves {
        let moved = &mut pieces[first + i];
        moved.request = *request;
        moved.addr = request.addr;
        moved.last_value = memory::read_value(pid, request.addr, request.len as usize).ok();
    }
    !moves.is_empty()
}

/// The plan's process, its threads and the launched command, taken out of the plan (`None`
/// for CPU targets).
pub(crate) fn take_threads(
    plan: &mut WatchPlan,
) -> Option<(i32, Vec<i32>, Option<hwbp_linux::launch::LaunchedProcess>)> {
    let cpus = PlannedTarget::Cpus {
        cpus: Vec::new(),
        all: false,
    };
    match std::mem::replace(&mut plan.target, cpus) {
        PlannedTarget::Threads {
            pid,
            tids,
            launched,
        } => Some((pid, tids, launched.map(|l| l.0))),
        other => {
            plan.target = other;
            None
        }
    }
}

/// Traces the target: takes over the launched command, or seizes `tids` of `pid`, and arms
/// `registers` in every thread.
pub(crate) fn start_tracer(
    launched: Option<hwbp_linux::launch::LaunchedProcess>,
    pid: i32,
    tids: &[i32],
    registers: DebugRegisterSet,
) -> Result<StopTracer> {
    match launched {
        Some(launched) => {
            let pid = launched.into_traced().map_err(|e| {
                Error::wrap(
                    ErrorKind::Target,
                    format!("cannot keep tracing the launched command: {e}"),
                    e,
                )
            })?;
            StopTracer::adopt_launched(pid, registers)
        }
        None => StopTracer::attach(pid, tids, registers),
    }
    .map_err(|e| {
        Error::wrap(
            ErrorKind::Target,
            format!("cannot arm the stop-mode watch in process {pid}: {e}"),
            e,
        )
    })
}

/// A thread that wakes the tracer out of `waitpid` every 10 ms while the stop handle is set,
/// the duration is over, or hits are buffered in the sink ([`WakeOnStop::unflushed`]).
pub(crate) struct WakeOnStop {
    done: Arc<AtomicBool>,
    /// Set by the tracer's thread while the sink holds hits not yet written out.
    pub(crate) unflushed: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl WakeOnStop {
    pub(crate) fn spawn(
        tracer: &StopTracer,
        stop: &StopHandle,
        deadline: Option<Duration>,
        armed_at: Instant,
    ) -> WakeOnStop {
        let done = Arc::new(AtomicBool::new(false));
        let unflushed = Arc::new(AtomicBool::new(false));
        let waker = tracer.waker();
        let thread = {
            let done = Arc::clone(&done);
            let unflushed = Arc::clone(&unflushed);
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                    if stop.is_stopped()
                        || deadline.is_some_and(|d| armed_at.elapsed() >= d)
                        || unflushed.load(Ordering::Relaxed)
                    {
                        waker.wake();
                    }
                }
            })
        };
        WakeOnStop {
            done,
            unflushed,
            thread,
        }
    }

    /// Wakes the tracer no more (before the detach, which waits for its threads).
    pub(crate) fn stop_waking(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// Ends the thread.
    pub(crate) fn finish(self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Runs `plan` in stop mode; see the module docs.
pub(crate) fn run(
    mut plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    check(&plan)?;
    let (registers, mut pieces) = allocate(&plan)?;
    let followed = match &plan.target {
        PlannedTarget::Threads {
            launched: Some(launched),
            ..
        } => launched
            .0
            .followed()
            .last()
            .map(|p| format!(", followed through exec to {}", p.display())),
        _ => None,
    };
    let Some((pid, tids, launched)) = take_threads(&mut plan) else {
        unreachable!("CPU targets were refused by check()");
    };
    let launched_pid = launched.as_ref().map(|l| l.pid());
    let is_launched = launched_pid.is_some();
    // How the launched command ended, when the run saw it (the tracer reaped it).
    let mut command_exit = None;
    let mut typed_values = WatchValues::new(&plan, Some(pid));
    for piece in &mut pieces {
        if plan.watches[piece.watch.0].access != Access::Execute && opts.read_values {
            piece.last_value = memory::read_value(pid, piece.addr, piece.len as usize).ok();
        }
    }
    let mut tracer = match start_tracer(launched, pid, &tids, registers) {
        Ok(tracer) => tracer,
        Err(e) => {
            // The tracer let the command go (or it died with the tracer's drop): end it.
            if let Some(pid) = launched_pid {
                let _ = crate::launched::settle(pid, None, opts.keep_running, sink);
            }
            return Err(e);
        }
    };
    let armed_at = Instant::now();
    let armed = sink.notice(&Notice::Armed {
        description: format!(
            "{} on {} in stop mode ({})",
            plural(plan.watches.len(), "watchpoint"),
            if is_launched {
                format!("the command (pid {pid}){}", followed.unwrap_or_default())
            } else {
                format!("process {pid}")
            },
            plural(tracer.threads().len(), "thread"),
        ),
    });

    // The stop handle and the duration wake the tracer out of waitpid, and so do hits still
    // buffered in the sink (see `unflushed` below).
    let deadline = opts.duration;
    let waker = WakeOnStop::spawn(&tracer, stop, deadline, armed_at);
    let unflushed = Arc::clone(&waker.unflushed);

    let mut cache = SymbolCache::new(
        plan.symbols.clone().map(|s| (pid, s)),
        None,
        crate::capture::code_reader(),
    );
    let mut unwinder =
        hwbp_symbols::unwind::StackUnwinder::new(plan.symbols.clone().map(|s| (pid, s)));
    let mut names = ThreadNames::from_proc();
    let mut stores = DecodedStores::default();
    let mut hits = vec![0u64; pieces.len()];
    let mut reported = vec![0u64; pieces.len()];
    let mut total_reported = 0u64;
    let mut stray_traps = 0u64;
    let result: Result<EndedBy> = armed.and_then(|()| loop {
        if stop.is_stopped() {
            return Ok(EndedBy::Interrupted);
        }
        if deadline.is_some_and(|d| armed_at.elapsed() >= d) {
            return Ok(EndedBy::Duration);
        }
        if opts.max_hits.is_some_and(|m| total_reported >= m) {
            return Ok(EndedBy::MaxHits);
        }
        let event = tracer.next_event().map_err(|e| {
            Error::wrap(
                ErrorKind::Target,
                format!("stop-mode tracing failed: {e}"),
                e,
            )
        })?;
        match event {
            StopEvent::Hit { tid, slots, ip } => {
                let time_ns = armed_at.elapsed().as_nanos() as u64;
                // With one thread nothing can write between the trap and the read.
                let single_thread = tracer.thread_count() == 1;
                let store = if single_thread {
                    None
                } else {
                    stores.at(&mut cache, pid, ip)
                };
                // The registers cost a request: only for a store's source or a callchain.
                let stopped = if store.is_some() || opts.callchain {
                    Some(tracer.registers(tid).map_err(|e| {
                        Error::wrap(
                            ErrorKind::Target,
                            format!("stop-mode tracing failed: {e}"),
                            e,
                        )
                    })?)
                } else {
                    None
                };
                // Values first, while the thread is stopped.
                let mut fired = Vec::new();
                for (index, piece) in pieces.iter_mut().enumerate() {
                    if piece.slot_mask & slots == 0 {
                        continue;
                    }
                    let execute = plan.watches[piece.watch.0].access == Access::Execute;
                    let value = if execute || !opts.read_values {
                        None
                    } else {
                        let (new, source) = stopped_value(
                            store
                                .as_ref()
                                .zip(stopped.as_ref().map(|regs| &regs.registers)),
                            (piece.addr, piece.len),
                            single_thread,
                            |addr, len| tracer.read_value(tid, addr, len),
                        );
                        let old = piece.last_value;
                        if new.is_some() {
                            piece.last_value = new;
                        }
                        Some(HitValue { old, new, source })
                    };
                    hits[index] += 1;
                    fired.push((index, value));
                }
                // A value chain's pointer was written: move its value, in every thread.
                let moved = fired
                    .iter()
                    .any(|(index, _)| move_chain(&plan, &mut pieces, *index, pid));
                if moved {
                    let requests: Vec<WatchRequest> = pieces.iter().map(|p| p.request).collect();
                    let (registers, allocated) = DebugRegisterSet::allocate(&requests)
                        .map_err(|e| Error::new(ErrorKind::Target, e.to_string()))?;
                    for (piece, allocated) in pieces.iter_mut().zip(&allocated) {
                        piece.slot_mask = allocated.slot_mask();
                    }
                    tracer.set_registers(registers).map_err(|e| {
                        Error::wrap(
                            ErrorKind::Target,
                            format!("cannot move a value chain's watch: {e}"),
                            e,
                        )
                    })?;
                }
                // Typed values, while the thread is stopped.
                let observed: Vec<_> = fired
                    .iter()
                    .map(|(index, value)| {
                        let piece = &pieces[*index];
                        // A one-piece watch's whole value is the one just read (or decoded).
                        let known = (plan.watches[piece.watch.0].pieces.len() == 1)
                            .then(|| value.and_then(|v| v.new))
                            .flatten();
                        typed_values.observe(&plan, piece.watch, piece.index, known)
                    })
                    .collect();
                let (frames, unwind_stopped) = match stopped {
                    Some(regs) if opts.callchain => {
                        let start = hwbp_symbols::unwind::StartRegs {
                            ip,
                            sp: regs.stack_pointer,
                            bp: regs.frame_pointer,
                        };
                        crate::callchain::stopped_return_addresses(
                            &tracer,
                            &mut unwinder,
                            opts.call_graph,
                            pid,
                            start,
                            MAX_FRAMES,
                        )
                    }
                    _ => (Vec::new(), None),
                };
                tracer.resume(tid).map_err(|e| {
                    Error::wrap(
                        ErrorKind::Target,
                        format!("cannot resume thread {tid}: {e}"),
                        e,
                    )
                })?;
                for ((index, value), observed) in fired.into_iter().zip(observed) {
                    if opts.max_hits.is_some_and(|m| total_reported >= m) {
                        break;
                    }
                    let piece = &pieces[index];
                    let watch = &plan.watches[piece.watch.0];
                    if let Some(v) = value {
                        let unchanged = match (&observed, &watch.chain) {
                            // A chain's value is the expression's, wherever it is now.
                            (Some(o), Some(_)) => !o.changed,
                            _ => v.old.is_some() && v.old == v.new,
                        };
                        if opts.changes_only && unchanged {
                            continue;
                        }
                        if let Some(c) = opts.condition {
                            // The same resolved test as the kernel filter's (one model).
                            let holds = match &observed {
                                Some(o) if watch.value_type.is_some() && watch.len <= 8 => {
                                    o.new_bytes.as_deref().is_some_and(|bytes| {
                                        c.for_watch(watch, watch.len).holds(bytes)
                                    })
                                }
                                _ => v.new.is_some_and(|n| {
                                    c.for_watch(watch, pieces[index].len)
                                        .holds(&n.to_le_bytes())
                                }),
                            };
                            if !holds {
                                continue;
                            }
                        }
                    }
                    let execute = watch.access == Access::Execute;
                    let code = code_at(&mut cache, opts, pid, ip, false, execute);
                    let callchain = if opts.callchain {
                        let at = (ip, &*code);
                        stopped_callchain(&mut cache, pid, at, &frames, unwind_stopped.as_deref())
                    } else {
                        Vec::new()
                    };
                    let trap = Trap::stopped(time_ns, pid, tid, ip);
                    let comm = names.name(pid, tid);
                    let member = piece.member.clone();
                    let mut hit =
                        crate::capture::hit(watch, trap, comm, code, member, value, callchain);
                    if let Some(observed) = observed {
                        observed.apply(&mut hit, ValueSource::Stopped);
                    }
                    reported[index] += 1;
                    total_reported += 1;
                    // Buffered by the sink (a write per hit would be a quarter of a hit's
                    // syscalls); the waker interrupts the wait within 10 ms to let it out.
                    unflushed.store(true, Ordering::Relaxed);
                    if sink.hit(&hit, &plan.watches[hit.watch.0])?.is_break() {
                        return Ok(EndedBy::Sink);
                    }
                }
            }
            StopEvent::Exited(exit) => {
                command_exit = Some(exit);
                return Ok(EndedBy::traced_exit(exit, is_launched));
            }
            StopEvent::Exec => return Ok(EndedBy::Exec { frames: false }),
            // A debug exception that matched no watchpoint (these VMs raise them under busy
            // watchpoints): swallowed by the tracer, counted as an access not attributed.
            StopEvent::StrayTrap { .. } => stray_traps += 1,
            // Woken by the waker: a quiet moment to let buffered hits out.
            StopEvent::Interrupted => {
                if unflushed.swap(false, Ordering::Relaxed) {
                    sink.idle()?;
                }
            }
            StopEvent::ThreadStarted { .. } | StopEvent::ThreadExited { .. } => {}
        }
    });
    // Hits still buffered go out however the loop ended.
    let flushed = sink.idle();
    let result = result.and_then(|ended_by| flushed.map(|()| ended_by));
    waker.stop_waking();
    // Put every thread's registers back and let it run, whatever ended the loop.
    let detached = tracer.detach();
    waker.finish();
    let duration = armed_at.elapsed();
    // Detached (or gone): a launched command is ended unless kept running, on errors too.
    let command = launched_pid
        .map(|pid| crate::launched::settle(pid, command_exit, opts.keep_running, sink))
        .transpose();
    let ended_by = result?;
    detached.map_err(|e| {
        Error::wrap(
            ErrorKind::Target,
            format!("cannot restore the target's debug registers and detach: {e}"),
            e,
        )
    })?;

    let owners: Vec<WatchId> = pieces.iter().map(|p| p.watch).collect();
    let watchpoints = pinned_totals(&plan.watches, &owners, &hits, &reported);
    Ok(Summary {
        kind: SummaryKind::Summary,
        watchpoints,
        lost_records: 0,
        queue_dropped: 0,
        queue_peak_bytes: 0,
        throttled: 0,
        stray_traps,
        handler: None,
        duration_s: duration.as_secs_f64(),
        ended_by,
        processes: Vec::new(),
        pending: Vec::new(),
        command: command?,
    })
}
