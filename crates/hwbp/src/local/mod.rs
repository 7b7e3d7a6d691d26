//! Watching a local variable while its frame lives (`FUNC::LOCAL`, `FUNC::cfg.len`,
//! `FUNC::arr[3]`), with gdb's scope semantics, in stop mode.
//!
//! The plan (`crate::plan::local`) finds the local in DWARF ([`hwbp_symbols::local`]): the
//! function's end of prologue (where gdb's `break FUNC` stops), the CFA rule there from
//! `.eh_frame`, and the local's `DW_OP_fbreg` offset; an expression rooted at the local is
//! evaluated relative to it (member and constant-index offsets; one that reads a pointer is
//! refused).
//!
//! The run (`run`, with `--stop`) arms a hardware execute breakpoint on that address in every thread
//! (the debug registers, not `int3`: the stop-mode tracer already owns DR0-DR7 per thread and
//! an execute breakpoint needs no code patching or single-step over a restored instruction;
//! the kernel sets `RF` on the resume, arch/x86/kernel/hw_breakpoint.c). A thread that stops
//! there with no live frame gets a frame of its own: CFA and the local's address from its
//! registers, the data pieces, and a second execute breakpoint on the return address
//! (`[CFA-8]`), all in that thread's registers only ([`StopTracer::set_thread_registers`]).
//! The entry breakpoint stays armed in that thread (one register), so a later entry is seen:
//! deeper (its CFA below the live one) it is a recursive call, not watched (gdb watches the
//! outermost frame only); at or above the live CFA the live frame was left without returning
//! (`longjmp`, an exception) and ends before the new one starts. The frame ends when the
//! return breakpoint fires with `rsp == CFA` (an inner frame returning to the same address
//! has `rsp` below it), or at any stop of the thread that finds `rsp` above the CFA or the
//! return address slot overwritten (left by `longjmp`), or when the thread exits. Each end is
//! a [`ScopeEvent`]; the next entry arms a new instance unless
//! [`WatchOptions::frames`](crate::WatchOptions::frames) frames have been watched.
//!
//! Without `--stop` (`local::perf`) the same run arms each frame's data pieces as
//! per-thread perf breakpoint events with the in-kernel BPF hit handler instead: only the
//! entry and the return stop the thread; the writes are the handler's records.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use hwbp_core::Access;
use hwbp_linux::memory;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::ptrace::{DebugRegisterSet, StopEvent, StopTracer};
use hwbp_symbols::cache::SymbolCache;

use crate::capture::Trap;
use crate::error::{Error, ErrorKind, Result};
use crate::hit::{FrameRef, HitValue};
use crate::options::{StopHandle, WatchOptions};
use crate::plan::{value_pieces, PlannedWatch, WatchPlan};
use crate::sink::{HitSink, Notice};
use crate::summary::{EndedBy, Summary, SummaryKind, WatchTotals};
use crate::threads::ThreadNames;
use crate::typed::LastValue;

mod perf;

/// Frames walked for callchains.
const MAX_FRAMES: usize = 64;

pub(crate) use crate::plan::local::LocalWatch;

pub use crate::scope::{ScopeEnd, ScopeEvent};

/// One debug-register piece of a live frame's local.
struct FramePiece {
    addr: u64,
    len: u64,
    slot_mask: u8,
    member: Option<Arc<str>>,
    last_value: Option<u64>,
}

/// A thread's live watched frame.
struct LiveFrame {
    frame: FrameRef,
    return_addr: u64,
    return_mask: u8,
    entry_mask: u8,
    pieces: Vec<FramePiece>,
    last: LastValue,
    hits: u64,
    reported: u64,
    /// Perf mode: the frame's data events and handler.
    perf: Option<perf::PerfFrame>,
}

fn read_u64(pid: i32, addr: u64) -> Option<u64> {
    memory::read_value(pid, addr, 8).ok()
}

fn target_error(what: &str) -> impl Fn(hwbp_linux::ptrace::TracerError) -> Error + '_ {
    move |e| Error::wrap(ErrorKind::Target, format!("{what}: {e}"), e)
}

/// Runs a plan whose watch is a local's, in the options' mode; see the module docs.
pub(crate) fn run(
    plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    run_frames(
        plan,
        opts,
        stop,
        sink,
        opts.mode == crate::options::Mode::Perf,
    )
}

fn run_frames(
    mut plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
    perf_mode: bool,
) -> Result<Summary> {
    // What stop mode refuses, it refuses for a local too (crate::dispatch sends it here).
    crate::stop::check(&plan)?;
    let [watch] = plan.watches.as_slice() else {
        return Err(Error::bad_input(
            "a local's watch runs alone for now: give it a run of its own, without other \
             watches",
        ));
    };
    let watch = watch.clone();
    let local = Arc::clone(watch.local.as_ref().expect("a local's watch"));
    let entry_request = WatchRequest::new(local.arm_addr, 1, Access::Execute);
    let (idle_registers, _) = DebugRegisterSet::allocate(&[entry_request])
        .map_err(|e| Error::bad_input(e.to_string()))?;
    // Perf mode needs the handler: refused before anything is armed.
    let perf_frames = perf_mode
        .then(|| perf::PerfFrames::new(&watch, opts))
        .transpose()?;
    let Some((pid, tids, launched)) = crate::stop::take_threads(&mut plan) else {
        return Err(Error::bad_input(
            "a local lives in one process's threads: give -p PID or -- CMD, not -a/-C",
        ));
    };
    let is_launched = launched.is_some();
    let launched_pid = is_launched.then_some(pid);
    let mut tracer = crate::stop::start_tracer(launched, pid, &tids, idle_registers)?;
    let armed_at = Instant::now();
    let armed_ns = crate::clock::monotonic_ns();
    let armed = sink
        .notice(&Notice::Armed {
            description: format!(
                "{} in each frame of {} (entry {:#x}) in {} in {}",
                local.shown,
                local.local.function,
                local.arm_addr,
                if is_launched {
                    format!("the command (pid {pid})")
                } else {
                    format!("process {pid}")
                },
                if perf_mode {
                    "perf mode (the entry and the return stop the thread, the writes do not)"
                } else {
                    "stop mode"
                }
            ),
        })
        .and_then(|()| match perf_mode {
            true => sink.notice(&Notice::Engine(
                "values: in-kernel BPF handler (exact)".to_string(),
            )),
            false => Ok(()),
        });
    let deadline = opts.duration;
    let waker = crate::stop::WakeOnStop::spawn(&tracer, stop, deadline, armed_at);
    let mut cache = SymbolCache::new(
        plan.symbols.clone().map(|s| (pid, s)),
        None,
        crate::capture::code_reader(),
    );
    let mut run = FrameRun {
        plan: &plan,
        watch: &watch,
        local: &local,
        opts,
        pid,
        armed_at,
        frames: HashMap::new(),
        started: 0,
        hits: 0,
        reported: 0,
        names: ThreadNames::from_proc(),
        stray_traps: 0,
        unwinder: hwbp_symbols::unwind::StackUnwinder::new(plan.symbols.clone().map(|s| (pid, s))),
        perf: perf_frames,
        armed_ns,
        reset: std::collections::HashSet::new(),
    };
    let result: Result<EndedBy> = armed.and_then(|()| loop {
        if stop.is_stopped() {
            return Ok(EndedBy::Interrupted);
        }
        if deadline.is_some_and(|d| armed_at.elapsed() >= d) {
            return Ok(EndedBy::Duration);
        }
        if opts.max_hits.is_some_and(|m| run.reported >= m) {
            return Ok(EndedBy::MaxHits);
        }
        if opts.frames.is_some_and(|n| run.started >= n) && run.frames.is_empty() {
            return Ok(EndedBy::Frames(run.started));
        }
        if let Some(perf) = &run.perf {
            // Wake every 10 ms while frames are live: their records are delivered then.
            waker.unflushed.store(
                !run.frames.is_empty() || perf.has_pending(),
                Ordering::Relaxed,
            );
        }
        let event = tracer
            .next_event()
            .map_err(target_error("stop-mode tracing failed"))?;
        match event {
            StopEvent::Hit { tid, slots, ip } => {
                let regs = tracer
                    .registers(tid)
                    .map_err(|e| target_error("stop-mode tracing failed")(e.into()))?;
                let (frame_pointer, stack_pointer, registers) =
                    (regs.frame_pointer, regs.stack_pointer, regs.registers);
                let at = ThreadStop {
                    tid,
                    slots,
                    ip,
                    frame_pointer,
                    stack_pointer,
                    registers,
                };
                let flow = run.on_hit(&mut tracer, &mut cache, sink, &at);
                tracer
                    .resume(tid)
                    .map_err(|e| target_error("cannot resume a thread")(e.into()))?;
                if flow? {
                    return Ok(EndedBy::Sink);
                }
                sink.idle()?;
            }
            StopEvent::ThreadExited { tid } => {
                if run.frames.contains_key(&tid) {
                    if run.close_perf_events(&mut cache, sink, tid)? {
                        return Ok(EndedBy::Sink);
                    }
                    if let Some(frame) = run.frames.remove(&tid) {
                        let time_ns = run.time_ns();
                        run.end(sink, tid, frame, ScopeEnd::ThreadExited, time_ns)?;
                    }
                }
                run.reset.remove(&tid);
            }
            StopEvent::Interrupted if run.perf.is_some() => {
                if run.deliver_records(&mut cache, sink, None)? {
                    return Ok(EndedBy::Sink);
                }
                sink.idle()?;
            }
            StopEvent::Exited(exit) => {
                return Ok(EndedBy::traced_exit(exit, is_launched));
            }
            StopEvent::Exec => return Ok(EndedBy::Exec { frames: true }),
            StopEvent::StrayTrap { .. } => run.stray_traps += 1,
            StopEvent::ThreadStarted { .. } | StopEvent::Interrupted => {}
        }
    });
    waker.stop_waking();
    // Perf mode: every data event closed, and what the handlers recorded until then delivered.
    let result = run.finish_perf(&mut cache, sink).and(result);
    let detached = tracer.detach();
    waker.finish();
    // Detached (or gone): a launched command is ended unless kept running, on errors too.
    let command = launched_pid
        .map(|pid| crate::launched::settle(pid, None, opts.keep_running, sink))
        .transpose();
    let ended_by = result?;
    detached.map_err(target_error(
        "cannot restore the target's debug registers and detach",
    ))?;
    let live = run.frames.len();
    let address = format!(
        "{} in {} frames of {}{}",
        local.shown,
        run.started,
        local.local.function,
        if live > 0 {
            format!(", {live} live at the end")
        } else {
            String::new()
        }
    );
    let mut totals = WatchTotals::exact(&watch, address, watch.len, run.hits, run.reported);
    totals.lost = run.perf.as_ref().map_or(0, perf::PerfFrames::lost);
    Ok(Summary {
        kind: SummaryKind::Summary,
        watchpoints: vec![totals],
        lost_records: 0,
        queue_dropped: 0,
        queue_peak_bytes: 0,
        throttled: 0,
        stray_traps: run.stray_traps,
        handler: None,
        duration_s: armed_at.elapsed().as_secs_f64(),
        ended_by,
        processes: Vec::new(),
        pending: Vec::new(),
        command: command?,
    })
}

/// One access of a frame's local, for `--changes-only` and `--if`.
struct FrameAccess<'b> {
    /// The watch has a type: the whole value's bytes decide.
    typed: bool,
    old_bytes: Option<&'b [u8]>,
    new_bytes: Option<&'b [u8]>,
    /// The piece's own values.
    old: Option<u64>,
    new: Option<u64>,
    piece_len: u64,
}

impl<'b> FrameAccess<'b> {
    /// The access with the whole value's bytes before and after, and the piece's values.
    fn of(
        typed: bool,
        old_bytes: &'b Option<Vec<u8>>,
        new_bytes: &'b Option<Vec<u8>>,
        (old, new): (Option<u64>, Option<u64>),
        piece_len: u64,
    ) -> Self {
        FrameAccess {
            typed,
            old_bytes: old_bytes.as_deref(),
            new_bytes: new_bytes.as_deref(),
            old,
            new,
            piece_len,
        }
    }

    /// True when the access is reported: it changed the value (with `--changes-only`), and
    /// the new value satisfies `--if`, compared in the watched value's type; the same in
    /// both modes.
    fn passes(&self, opts: &WatchOptions, watch: &PlannedWatch) -> bool {
        let unchanged = if self.typed {
            self.old_bytes == self.new_bytes
        } else {
            self.old.is_some() && self.old == self.new
        };
        if opts.changes_only && unchanged {
            return false;
        }
        let Some(c) = opts.condition else {
            return true;
        };
        match self.new_bytes {
            Some(bytes) if watch.value_type.is_some() && watch.len <= 8 => {
                c.for_watch(watch, watch.len).holds(bytes)
            }
            _ => self
                .new
                .is_some_and(|n| c.for_watch(watch, self.piece_len).holds(&n.to_le_bytes())),
        }
    }
}

/// A thread stopped at a hit ([`StopEvent::Hit`]'s fields).
struct ThreadStop {
    tid: i32,
    slots: u8,
    ip: u64,
    frame_pointer: u64,
    stack_pointer: u64,
    registers: [u64; 16],
}

/// The state of one run over a local's frames.
struct FrameRun<'a> {
    plan: &'a WatchPlan,
    watch: &'a PlannedWatch,
    local: &'a LocalWatch,
    opts: &'a WatchOptions,
    pid: i32,
    armed_at: Instant,
    /// Live frames by thread.
    frames: HashMap<i32, LiveFrame>,
    /// Frames armed so far (the last instance number).
    started: u64,
    hits: u64,
    reported: u64,
    names: ThreadNames,
    stray_traps: u64,
    /// `-g`: the unwind tables of the process's images, as stop mode's.
    unwinder: hwbp_symbols::unwind::StackUnwinder,
    /// Perf mode: the handlers and the records not yet delivered.
    perf: Option<perf::PerfFrames>,
    /// `CLOCK_MONOTONIC` at arming (the handler's record times are on that clock).
    armed_ns: u64,
    /// Perf mode: threads whose frame ended while they ran (its return slot written), whose
    /// registers go back to the entry alone at their next stop.
    reset: std::collections::HashSet<i32>,
}

impl FrameRun<'_> {
    fn time_ns(&self) -> u64 {
        self.armed_at.elapsed().as_nanos() as u64
    }

    /// Ends thread `tid`'s frame: the scope event.
    fn end(
        &mut self,
        sink: &mut dyn HitSink,
        tid: i32,
        frame: LiveFrame,
        ended: ScopeEnd,
        time_ns: u64,
    ) -> Result<()> {
        let event = ScopeEvent {
            watch: self.watch.id,
            variable: Arc::clone(&self.local.shown),
            function: self.local.local.function.clone(),
            frame: frame.frame,
            pid: self.pid,
            tid,
            time_ns,
            ended,
            hits: frame.hits,
            reported: frame.reported,
        };
        sink.scope(&event)?;
        Ok(())
    }

    /// Ends thread `tid`'s live frame, stopped now: its registers back to the entry
    /// breakpoint alone, and the scope event.
    fn close(
        &mut self,
        tracer: &mut StopTracer,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        tid: i32,
        ended: ScopeEnd,
    ) -> Result<bool> {
        if !self.frames.contains_key(&tid) {
            return Ok(false);
        }
        // Perf mode: the data events closed and the frame's records delivered first.
        if self.close_perf_events(cache, sink, tid)? {
            return Ok(true);
        }
        let Some(frame) = self.frames.remove(&tid) else {
            return Ok(false);
        };
        self.entry_only(tracer, tid)?;
        let time_ns = self.time_ns();
        self.end(sink, tid, frame, ended, time_ns)?;
        Ok(false)
    }

    /// Puts stopped thread `tid`'s registers back to the entry breakpoint alone; with every
    /// frame --frames allows watched, the entry is disarmed too, so the thread does not trap
    /// again while the run detaches.
    fn entry_only(&self, tracer: &mut StopTracer, tid: i32) -> Result<()> {
        let done = self.opts.frames.is_some_and(|n| self.started >= n);
        let none = DebugRegisterSet {
            addresses: [0; 4],
            dr7: 0,
        };
        tracer
            .set_thread_registers(tid, done.then_some(none))
            .map_err(target_error("cannot disarm the frame's watch"))
    }

    /// Arms a frame for thread `tid`, stopped at the arming address with `registers`: in stop
    /// mode its registers get the entry, the value's pieces and the return; in perf mode the
    /// entry and the return, and the pieces are per-thread perf events with the handler.
    fn arm(&mut self, tracer: &mut StopTracer, tid: i32, registers: &[u64; 16]) -> Result<()> {
        let Some((cfa, local_addr)) = self.local.local.locate(registers) else {
            return Ok(());
        };
        let Some(return_addr) = read_u64(self.pid, cfa.wrapping_sub(8)) else {
            return Ok(());
        };
        let addr = local_addr.wrapping_add(self.local.offset);
        let layout = self.watch.layout.as_deref();
        let pieces = value_pieces(addr, self.watch.len, layout, self.watch.access)?;
        let mut requests = vec![WatchRequest::new(self.local.arm_addr, 1, Access::Execute)];
        if self.perf.is_none() {
            requests.extend(
                pieces
                    .iter()
                    .map(|&(a, len)| WatchRequest::new(a, len, self.watch.access)),
            );
        }
        requests.push(WatchRequest::new(return_addr, 1, Access::Execute));
        let (set, allocated) = DebugRegisterSet::allocate(&requests).map_err(|e| {
            Error::new(
                ErrorKind::BadInput,
                format!(
                    "watch '{}': the frame at CFA {cfa:#x} needs {} debug registers (entry, \
                     value, return): {e}",
                    self.watch.label,
                    requests.len()
                ),
            )
        })?;
        let perf_frame = match self.perf {
            Some(_) => Some(self.open_perf_frame(tid, &pieces, cfa)?),
            None => None,
        };
        tracer
            .set_thread_registers(tid, Some(set))
            .map_err(target_error("cannot arm the frame's watch"))?;
        self.reset.remove(&tid);
        self.started += 1;
        let several = pieces.len() > 1;
        let frame_pieces = pieces
            .iter()
            .enumerate()
            .map(|(i, &(a, len))| FramePiece {
                addr: a,
                len,
                // Perf mode: the data pieces are no register of the thread's.
                slot_mask: match perf_frame {
                    Some(_) => 0,
                    None => allocated[1 + i].slot_mask(),
                },
                member: several.then(|| self.watch.member_at(a - addr, len).into()),
                last_value: memory::read_value(self.pid, a, len as usize).ok(),
            })
            .collect();
        let mut whole = vec![0u8; self.watch.len as usize];
        let last = memory::read_memory(self.pid, addr, &mut whole)
            .ok()
            .map(|_| whole);
        self.frames.insert(
            tid,
            LiveFrame {
                frame: FrameRef {
                    instance: self.started,
                    cfa,
                    address: addr,
                },
                return_addr,
                return_mask: allocated.last().expect("return request").slot_mask(),
                entry_mask: allocated[0].slot_mask(),
                pieces: frame_pieces,
                last: LastValue(last),
                hits: 0,
                reported: 0,
                perf: perf_frame,
            },
        );
        Ok(())
    }

    /// One stop of a thread; true when the sink asked to end the run.
    fn on_hit(
        &mut self,
        tracer: &mut StopTracer,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        at: &ThreadStop,
    ) -> Result<bool> {
        let (tid, slots, ip, stack_pointer) = (at.tid, at.slots, at.ip, at.stack_pointer);
        // Perf mode: what the handlers recorded before this stop comes first (the stopped
        // thread's records are all in the rings by now).
        if self.deliver_records(cache, sink, Some(crate::clock::monotonic_ns()))? {
            return Ok(true);
        }
        // A frame the thread left without returning: it is above it, or a new frame holds
        // its return-address slot.
        if let Some(frame) = self.frames.get(&tid) {
            let cfa = frame.frame.cfa;
            if (stack_pointer > cfa || read_u64(self.pid, cfa - 8) != Some(frame.return_addr))
                && self.close(tracer, cache, sink, tid, ScopeEnd::Abandoned)?
            {
                return Ok(true);
            }
        }
        let at_entry = ip == self.local.arm_addr;
        if let Some(frame) = self.frames.get(&tid) {
            if at_entry && slots & frame.entry_mask != 0 {
                let deeper = self
                    .local
                    .local
                    .locate(&at.registers)
                    .is_some_and(|(cfa, _)| cfa < frame.frame.cfa);
                if deeper {
                    // A recursive call: gdb watches the outermost frame only.
                    return Ok(false);
                }
                // At or above the live frame: it was left without returning.
                if self.close(tracer, cache, sink, tid, ScopeEnd::Abandoned)? {
                    return Ok(true);
                }
            } else if slots & frame.return_mask != 0 && ip == frame.return_addr {
                if stack_pointer == frame.frame.cfa {
                    return self.close(tracer, cache, sink, tid, ScopeEnd::Returned);
                }
                return Ok(false);
            } else if frame.perf.is_some() {
                // Perf mode stops at the entry and the return only.
                return Ok(false);
            } else {
                return self.report(tracer, cache, sink, at);
            }
        }
        if self.reset.remove(&tid) {
            // Its frame ended while it ran: the return breakpoint goes.
            self.entry_only(tracer, tid)?;
        }
        if at_entry && self.opts.frames.is_none_or(|n| self.started < n) {
            self.arm(tracer, tid, &at.registers)?;
        }
        Ok(false)
    }

    /// The accesses of a data hit in the stopped thread's live frame.
    fn report(
        &mut self,
        tracer: &mut StopTracer,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        at: &ThreadStop,
    ) -> Result<bool> {
        let (tid, slots, ip) = (at.tid, at.slots, at.ip);
        let pid = self.pid;
        let single_thread = tracer.thread_count() == 1;
        let store = if single_thread {
            None
        } else {
            crate::capture::decode_at(cache, pid, ip)
        };
        let watch = self.watch;
        let (frames, unwind_stopped) = if self.opts.callchain {
            let start = hwbp_symbols::unwind::StartRegs {
                ip,
                sp: at.stack_pointer,
                bp: at.frame_pointer,
            };
            crate::callchain::stopped_return_addresses(
                tracer,
                &mut self.unwinder,
                self.opts.call_graph,
                pid,
                start,
                MAX_FRAMES,
            )
        } else {
            (Vec::new(), None)
        };
        let time_ns = self.time_ns();
        let comm = self.names.name(pid, tid);
        let Some(frame) = self.frames.get_mut(&tid) else {
            return Ok(false);
        };
        let mut whole = vec![0u8; watch.len as usize];
        let new_bytes = memory::read_memory(pid, frame.frame.address, &mut whole)
            .ok()
            .map(|_| whole);
        let old_bytes = frame.last.0.clone();
        let typed = watch.value_type.as_ref().map(|ty| {
            frame
                .last
                .update(ty, new_bytes.clone(), self.plan.symbols.as_deref())
        });
        for piece in frame.pieces.iter_mut().filter(|p| p.slot_mask & slots != 0) {
            frame.hits += 1;
            self.hits += 1;
            let (new, source) = crate::capture::stopped_value(
                store.as_ref().map(|store| (store, &at.registers)),
                (piece.addr, piece.len),
                single_thread,
                |addr, len| memory::read_value(pid, addr, len as usize).ok(),
            );
            let old = piece.last_value;
            if new.is_some() {
                piece.last_value = new;
            }
            let access = FrameAccess::of(
                typed.is_some(),
                &old_bytes,
                &new_bytes,
                (old, new),
                piece.len,
            );
            if !access.passes(self.opts, watch) {
                continue;
            }
            if self.opts.max_hits.is_some_and(|m| self.reported >= m) {
                break;
            }
            let code = crate::capture::code_at(cache, self.opts, pid, ip, false, false);
            let callchain = if self.opts.callchain {
                let at = (ip, &*code);
                let stopped = unwind_stopped.as_deref();
                crate::capture::stopped_callchain(cache, pid, at, &frames, stopped)
            } else {
                Vec::new()
            };
            let trap = Trap::stopped(time_ns, pid, tid, ip);
            let value = Some(HitValue { old, new, source });
            let member = piece.member.clone();
            let mut hit = crate::capture::hit(
                watch,
                trap,
                Arc::clone(&comm),
                code,
                member,
                value,
                callchain,
            );
            hit.typed = typed.clone();
            hit.frame = Some(frame.frame);
            frame.reported += 1;
            self.reported += 1;
            if sink.hit(&hit, watch)?.is_break() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
