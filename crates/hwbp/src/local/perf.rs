//! A local's frames in perf mode (no `--stop`): the writes never stop the thread.
//!
//! The stop-mode tracer ([`StopTracer`](hwbp_linux::ptrace::StopTracer)) keeps the entry
//! breakpoint in every thread and, while a frame is live, the return breakpoint in that
//! thread: those two stop it briefly. At the entry the frame's data pieces are opened as
//! breakpoint events of that thread alone (`perf_event_open(pid = tid, cpu = -1)`, asking for
//! no sample fields) with the in-kernel BPF hit handler attached (`PERF_EVENT_IOC_SET_BPF`,
//! [`hwbp_linux::bpf`]), its previous values seeded from memory, then enabled; at the end
//! they are closed, so the registers are free again. The handler's program knows its pieces by
//! address, so one is loaded per distinct frame address and kept for the next frame at the
//! same place ([`HANDLERS_KEPT`]): a function called from the same depth again costs no load.
//!
//! Each frame's writes are the handler's records in the ring, in program order, written in the
//! writing thread at the trap (`bpf_overflow_handler`, `kernel/events/core.c`): when a thread
//! stops at its frame's return, every record of that frame is in a ring already. So a stop
//! first takes every ring and delivers, by time, the records up to the stop; then the scope
//! event follows its frame's last hit. Records are given to the frame that is live in the
//! record's thread with that handler when the ring is read, and delivered only while that
//! frame instance lives.
//!
//! A frame left by `longjmp` ends at the thread's next stop, as in stop mode, and also without
//! a stop: when the registers allow (one value piece), the return-address slot `[CFA-8]` is a
//! write watch of the frame too (the guard). Only a new frame at that depth writes it (a call
//! pushing its return address): its record ends the frame at its time, and the frame's later
//! records (another function's writes to the dead slot) are not the local's.
//!
//! `--changes-only` and `--if` are applied to the records in user space, as stop mode applies
//! them, so each frame's `hits` counts every write of its frame (the handler filters nothing).

use std::os::fd::{AsFd, OwnedFd};

use hwbp_core::Access;
use hwbp_linux::bpf::{self, HandlerMode, HandlerPiece, HandlerRecord, HandlerSpec, HitHandler};
use hwbp_linux::perf::attr::breakpoint_attr;
use hwbp_linux::perf::{SampleOptions, WatchRequest};
use hwbp_linux::sys::perf::{enable, open_breakpoint, EventTarget, RealPerfSys};
use hwbp_symbols::cache::SymbolCache;
use hwbp_symbols::unwind::StartRegs;

use super::{FrameAccess, FrameRun, ScopeEnd};
use crate::capture::Trap;
use crate::error::{Error, ErrorKind, Result};
use crate::hit::{HitValue, ValueSource};
use crate::options::WatchOptions;
use crate::plan::local::DEBUG_REGISTERS;
use crate::plan::PlannedWatch;
use crate::sink::HitSink;

/// Handlers kept loaded for frames at addresses seen before.
const HANDLERS_KEPT: usize = 8;

/// A live frame's perf side.
pub(super) struct PerfFrame {
    /// Its handler in [`PerfFrames::handlers`].
    handler: usize,
    /// One breakpoint event per value piece, then the guard's.
    events: Vec<OwnedFd>,
    /// The guard's piece in the handler (the value's pieces come first, in order).
    guard: Option<u32>,
}

/// A loaded handler and the pieces it knows.
struct KeptHandler {
    pieces: Vec<HandlerPiece>,
    handler: HitHandler,
    last_used: u64,
}

/// A record read from a ring, given to the frame instance live in its thread then.
struct Pending {
    instance: u64,
    record: HandlerRecord,
}

/// The perf side of a run over a local's frames.
pub(super) struct PerfFrames {
    handlers: Vec<Option<KeptHandler>>,
    pending: Vec<Pending>,
    ring_bytes: u32,
    user_stack_bytes: u32,
    callchain: bool,
    uses: u64,
    /// Records lost to full rings of handlers dropped so far.
    lost: u64,
}

fn kernel_error(what: &'static str) -> impl Fn(hwbp_linux::Error) -> Error {
    move |e| Error::wrap(ErrorKind::Kernel, what, e)
}

impl PerfFrames {
    /// The perf side, or the one-line refusal when the in-kernel handler cannot be used.
    pub(super) fn new(watch: &PlannedWatch, opts: &WatchOptions) -> Result<PerfFrames> {
        let refuse = |why: String| {
            Error::bad_input(format!(
                "watch '{}': a local without --stop takes its values from the in-kernel BPF \
                 handler, {why}: run as root (or with CAP_BPF and CAP_PERFMON), or add --stop",
                watch.label
            ))
        };
        if !opts.use_bpf {
            return Err(refuse("which is turned off".to_string()));
        }
        bpf::available().map_err(|e| refuse(format!("which cannot be loaded ({e})")))?;
        if let Some(condition) = opts.condition {
            condition.check_fits(watch.len.min(8), 0, &watch.label)?;
        }
        let user_stack_bytes = if opts.callchain {
            opts.call_graph.stack_bytes()
        } else {
            0
        };
        // --ring-pages of ring per handler; with stacks, room for 1,024 records.
        let per_record = if opts.callchain {
            user_stack_bytes as usize + 1024
        } else {
            64
        };
        let ring_bytes = (opts.ring_pages * 4096)
            .max(per_record * 1024)
            .next_power_of_two()
            .clamp(4096, 1 << 28);
        Ok(PerfFrames {
            handlers: Vec::new(),
            pending: Vec::new(),
            ring_bytes: u32::try_from(ring_bytes).unwrap_or(1 << 28),
            user_stack_bytes,
            callchain: opts.callchain,
            uses: 0,
            lost: 0,
        })
    }

    /// Records read but not delivered yet.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Records lost so far.
    pub(super) fn lost(&self) -> u64 {
        self.lost
            + self
                .handlers
                .iter()
                .flatten()
                .map(|k| k.handler.stats().map_or(0, |s| s.ring_full))
                .sum::<u64>()
    }

    /// The handler for `pieces`: a kept one, else a new one (dropping the least recently used
    /// one no live frame holds, past [`HANDLERS_KEPT`]).
    fn handler_for(&mut self, pieces: &[HandlerPiece], in_use: &[usize]) -> Result<usize> {
        self.uses += 1;
        if let Some(i) = self
            .handlers
            .iter()
            .position(|k| k.as_ref().is_some_and(|k| k.pieces == pieces))
        {
            if let Some(kept) = self.handlers[i].as_mut() {
                kept.last_used = self.uses;
            }
            return Ok(i);
        }
        let mut spec = HandlerSpec::new(
            pieces.to_vec(),
            HandlerMode::Emit {
                stack: self.callchain,
            },
        );
        spec.ring_bytes = self.ring_bytes;
        spec.wakeup_bytes = spec.wakeup_bytes.min(spec.ring_bytes / 2);
        spec.user_stack_bytes = self.user_stack_bytes;
        let handler = HitHandler::load(&spec).map_err(|e| {
            Error::wrap(
                ErrorKind::Kernel,
                "cannot load the BPF hit handler for a frame",
                e,
            )
        })?;
        let kept = KeptHandler {
            pieces: pieces.to_vec(),
            handler,
            last_used: self.uses,
        };
        let free = self.handlers.iter().position(Option::is_none);
        let slot = match free {
            Some(i) => i,
            None if self.handlers.len() < HANDLERS_KEPT => {
                self.handlers.push(None);
                self.handlers.len() - 1
            }
            None => {
                let oldest = (0..self.handlers.len())
                    .filter(|i| !in_use.contains(i))
                    .min_by_key(|&i| self.handlers[i].as_ref().map_or(0, |k| k.last_used));
                match oldest {
                    Some(i) => {
                        // Its frames ended and were delivered: its ring holds nothing of theirs.
                        if let Some(old) = self.handlers[i].take() {
                            self.lost += old.handler.stats().map_or(0, |s| s.ring_full);
                        }
                        i
                    }
                    None => {
                        self.handlers.push(None);
                        self.handlers.len() - 1
                    }
                }
            }
        };
        self.handlers[slot] = Some(kept);
        Ok(slot)
    }
}

impl FrameRun<'_> {
    /// Perf mode: opens thread `tid`'s data events for a frame at `cfa` whose value is
    /// `pieces`, with the handler attached and seeded, enabled.
    pub(super) fn open_perf_frame(
        &mut self,
        tid: i32,
        pieces: &[(u64, u64)],
        cfa: u64,
    ) -> Result<PerfFrame> {
        let watch = self.watch;
        let pid = self.pid;
        let mut handler_pieces: Vec<HandlerPiece> = pieces
            .iter()
            .map(|&(a, len)| HandlerPiece::new(a, len as u8))
            .collect();
        // Entry and return are the thread's debug registers; a free one guards the return slot.
        let guard_addr = cfa.wrapping_sub(8);
        let guard =
            (pieces.len() + 3 <= DEBUG_REGISTERS && guard_addr.is_multiple_of(8)).then(|| {
                handler_pieces.push(HandlerPiece::new(guard_addr, 8));
                (handler_pieces.len() - 1) as u32
            });
        let in_use: Vec<usize> = self
            .frames
            .values()
            .filter_map(|f| f.perf.as_ref().map(|p| p.handler))
            .collect();
        let perf = self.perf.as_mut().expect("perf mode");
        let index = perf.handler_for(&handler_pieces, &in_use)?;
        let handler = &perf.handlers[index].as_ref().expect("just kept").handler;
        for (h, piece) in handler_pieces.iter().enumerate() {
            if let Ok(value) = hwbp_linux::memory::read_value(pid, piece.addr, piece.len as usize) {
                handler.seed(h, value).map_err(|e| {
                    Error::wrap(ErrorKind::Kernel, "cannot seed the BPF hit handler", e)
                })?;
            }
        }
        let sample = SampleOptions {
            in_kernel_handler: true,
            ..SampleOptions::default()
        };
        let mut events = Vec::with_capacity(handler_pieces.len());
        for (h, piece) in handler_pieces.iter().enumerate() {
            let access = if Some(h as u32) == guard {
                Access::Write
            } else {
                watch.access
            };
            let request = WatchRequest::new(piece.addr, u64::from(piece.len), access);
            let what = format!(
                "{} watch on {:#x} ({} bytes) of '{}'",
                access.letters(),
                piece.addr,
                piece.len,
                watch.label
            );
            let mut attr = breakpoint_attr(&request, &sample, false);
            let target = EventTarget { pid: tid, cpu: -1 };
            let fd = open_breakpoint(&RealPerfSys, &mut attr, target, &what, pieces.len() + 2)
                .map_err(kernel_error("cannot open a frame's data watch"))?;
            handler.attach(fd.as_fd()).map_err(|e| {
                Error::wrap(
                    ErrorKind::Kernel,
                    "cannot attach the BPF hit handler to a frame's data watch",
                    e,
                )
            })?;
            events.push(fd);
        }
        for fd in &events {
            enable(fd.as_fd(), "a frame's data watch")
                .map_err(kernel_error("cannot enable a frame's data watch"))?;
        }
        Ok(PerfFrame {
            handler: index,
            events,
            guard,
        })
    }

    /// Reads every handler's ring into the pending records, each given to the frame live in
    /// its thread with that handler.
    fn read_rings(&mut self) {
        let Some(perf) = self.perf.as_mut() else {
            return;
        };
        let frames = &self.frames;
        for (index, kept) in perf.handlers.iter_mut().enumerate() {
            let Some(kept) = kept else { continue };
            kept.handler.poll_records(&mut |record| {
                // A record of no live frame was written after its frame's return slot was
                // (between that record and the closing of the events): not the local's.
                if let Some(frame) = frames
                    .get(&record.tid)
                    .filter(|f| f.perf.as_ref().is_some_and(|p| p.handler == index))
                {
                    perf.pending.push(Pending {
                        instance: frame.frame.instance,
                        record,
                    });
                }
            });
        }
    }

    /// Perf mode: reads the rings and delivers, by time, the records up to `until_ns`
    /// (`CLOCK_MONOTONIC`; `None`: all); true when the sink asked to end the run.
    pub(super) fn deliver_records(
        &mut self,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        until_ns: Option<u64>,
    ) -> Result<bool> {
        if self.perf.is_none() {
            return Ok(false);
        }
        self.read_rings();
        let perf = self.perf.as_mut().expect("perf mode");
        // Stable: one thread's records keep ring (program) order at equal times.
        perf.pending.sort_by_key(|p| p.record.time_ns);
        let due = match until_ns {
            Some(until) => perf.pending.partition_point(|p| p.record.time_ns <= until),
            None => perf.pending.len(),
        };
        let taken: Vec<Pending> = perf.pending.drain(..due).collect();
        for pending in taken {
            if self.deliver_record(cache, sink, pending)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One record of a frame: the end of the frame (its guard), or a write of its local.
    fn deliver_record(
        &mut self,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        pending: Pending,
    ) -> Result<bool> {
        let Pending {
            instance,
            mut record,
        } = pending;
        let tid = record.tid;
        let Some(frame) = self
            .frames
            .get_mut(&tid)
            .filter(|f| f.frame.instance == instance)
        else {
            // The frame ended before this write (its return slot was written first).
            return Ok(false);
        };
        let perf = frame.perf.as_ref().expect("a perf-mode frame");
        if Some(record.piece) == perf.guard {
            // A new frame at its depth wrote its return address: it was left without returning.
            let mut frame = self.frames.remove(&tid).expect("found above");
            frame.perf = None;
            self.reset.insert(tid);
            let time_ns = record.time_ns.saturating_sub(self.armed_ns);
            self.end(sink, tid, frame, ScopeEnd::Abandoned, time_ns)?;
            return Ok(false);
        }
        let Some(piece) = frame.pieces.get_mut(record.piece as usize) else {
            return Ok(false);
        };
        frame.hits += 1;
        self.hits += 1;
        let watch = self.watch;
        let (old, new) = if record.value_unreadable {
            (piece.last_value, None)
        } else {
            (Some(record.old), Some(record.new))
        };
        piece.last_value = new.or(piece.last_value);
        // The whole value: the bytes before, with this piece's new bytes.
        let old_bytes = frame.last.0.clone();
        let new_bytes = match (&old_bytes, new) {
            (Some(bytes), Some(value)) => {
                let mut bytes = bytes.clone();
                let at = (piece.addr - frame.frame.address) as usize;
                let len = piece.len as usize;
                if let Some(dst) = bytes.get_mut(at..at + len) {
                    dst.copy_from_slice(&value.to_le_bytes()[..len]);
                }
                Some(bytes)
            }
            _ => None,
        };
        let typed = watch.value_type.as_ref().map(|ty| {
            frame
                .last
                .update(ty, new_bytes.clone(), self.plan.symbols.as_deref())
        });
        let access = FrameAccess::of(
            typed.is_some(),
            &old_bytes,
            &new_bytes,
            (old, new),
            piece.len,
        );
        if !access.passes(self.opts, watch)
            || self.opts.max_hits.is_some_and(|m| self.reported >= m)
        {
            return Ok(false);
        }
        frame.reported += 1;
        self.reported += 1;
        let member = piece.member.clone();
        let frame_ref = frame.frame;
        let pid = record.pid;
        let code =
            crate::capture::code_at(cache, self.opts, pid, record.ip, record.kernel_mode, false);
        let mut callchain = Vec::new();
        if self.opts.callchain {
            let mut unwind_stopped = None;
            if let Some(stack) = record.user_stack.take() {
                let regs = StartRegs {
                    ip: stack.ip,
                    sp: stack.sp,
                    bp: stack.bp,
                };
                let unwound = self.unwinder.unwind_captured(pid, regs, &stack.bytes);
                record.stack = unwound.frames;
                unwind_stopped = unwound.stopped;
            }
            let kernel = record.kernel_stack.iter().map(|addr| (*addr, true));
            let user = record.stack.iter().map(|addr| (*addr, false));
            for (addr, kernel) in kernel.chain(user) {
                if !crate::capture::push_frame(cache, pid, addr, kernel, true, &mut callchain) {
                    break;
                }
            }
            callchain.extend(unwind_stopped.as_deref().map(crate::capture::unwind_marker));
        }
        let trap = Trap {
            time_ns: record.time_ns.saturating_sub(self.armed_ns),
            cpu: Some(record.cpu),
            pid,
            tid,
            kernel: record.kernel_mode,
            ip: record.ip,
        };
        let value = HitValue {
            old,
            new,
            source: ValueSource::Handler,
        };
        let comm = self.names.name(pid, tid);
        let mut hit = crate::capture::hit(watch, trap, comm, code, member, Some(value), callchain);
        hit.typed = typed;
        hit.frame = Some(frame_ref);
        Ok(sink.hit(&hit, watch)?.is_break())
    }

    /// Perf mode: closes thread `tid`'s data events (stopped, or exited) and delivers what the
    /// handlers recorded until now, so its frame's hits come before its scope event; true when
    /// the sink asked to end the run.
    pub(super) fn close_perf_events(
        &mut self,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
        tid: i32,
    ) -> Result<bool> {
        let Some(frame) = self.frames.get_mut(&tid) else {
            return Ok(false);
        };
        let Some(perf) = frame.perf.as_mut() else {
            return Ok(false);
        };
        // Closed: the registers are free, and the handler is kept for the next frame there.
        perf.events.clear();
        self.deliver_records(cache, sink, Some(crate::clock::monotonic_ns()))
    }

    /// Perf mode, at the end of the run: every data event closed, every record delivered.
    pub(super) fn finish_perf(
        &mut self,
        cache: &mut SymbolCache,
        sink: &mut dyn HitSink,
    ) -> Result<()> {
        if self.perf.is_none() {
            return Ok(());
        }
        for frame in self.frames.values_mut() {
            if let Some(perf) = frame.perf.as_mut() {
                perf.events.clear();
            }
        }
        self.deliver_records(cache, sink, None).map(drop)
    }
}
