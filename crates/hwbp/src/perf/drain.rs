//! The perf engine's drain thread ([`Drain`]): owns the watch session, empties the rings as
//! the kernel wakes it, reads values once per batch, rotates flexible pieces, follows CPU
//! hotplug, and queues what it took for the caller's thread (see `crate::perf`'s docs).

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use hwbp_linux::bpf::handler::CountKey;
use hwbp_linux::bpf::HandlerMode;
use hwbp_linux::hotplug::{HotplugNote, SessionHotplug};
use hwbp_linux::memory;
use hwbp_linux::session::{self, Record, WatchSession};
use hwbp_symbols::unwind::{StackUnwinder, StartRegs};

use super::chains::PerfChains;
use super::engine::ActiveHandler;
use super::queued::{
    DrainEnd, Queued, Sampled, CONSUMER_BREAK, CONSUMER_FAILED, CONSUMER_MAX_HITS,
};
use super::{HANDLER_BATCH_PAUSE, POLL_INTERVAL};
use crate::clock::monotonic_ns;
use crate::error::{Error, ErrorKind, Result};
use crate::options::{StopHandle, WatchOptions};
use crate::queue::HitQueue;
use crate::rotation::PiecePlacement;
use crate::sink::Notice;
use crate::summary::{EndedBy, HandlerTotals};

/// The drain thread's state; see the module docs.
pub(super) struct Drain<'a> {
    pub(super) session: WatchSession,
    pub(super) handler: Option<ActiveHandler>,
    pub(super) placement: PiecePlacement,
    pub(super) hotplug: Option<SessionHotplug>,
    pub(super) queue: &'a HitQueue<Queued>,
    pub(super) opts: &'a WatchOptions,
    pub(super) stop: &'a StopHandle,
    pub(super) consumer: &'a AtomicU8,
    pub(super) target_pid: Option<i32>,
    /// Per watch: read its value after hits.
    pub(super) value_watches: &'a [bool],
    /// Per watch: address and length.
    pub(super) watch_ranges: &'a [(u64, u64)],
    pub(super) n_watches: usize,
    pub(super) armed_at: Instant,
    pub(super) dropped: u64,
    pub(super) next_interval: Option<Duration>,
    /// Value chains to move when one of their pointers is written.
    pub(super) chains: &'a PerfChains,
    /// Per placement piece, its last move by a value chain in the handler's program: the
    /// pointer's record time and the time the program took the new address. A record of the
    /// piece between them was a write through the object the chain left (the program still
    /// had the old address), which is not reported, as the chain's docs say.
    pub(super) chain_moves: Vec<Option<(u64, u64)>>,
    /// Unwinds the user stacks hits carry, before they are queued (the bytes are not kept).
    pub(super) unwinder: StackUnwinder,
}

impl Drain<'_> {
    pub(super) fn run(mut self) -> Result<DrainEnd> {
        let mut batch: Vec<Sampled> = Vec::new();
        // The target exec'd: the watched address belonged to its old image, so the watch ends.
        let mut target_exec = false;
        let mut pace_handler = false;
        let ended_by = loop {
            let wait = self
                .placement
                .time_to_rotation(monotonic_ns())
                .min(POLL_INTERVAL);
            let target_pid = self.target_pid;
            // With the handler, its ring is the one that fills; the perf rings only carry
            // names and unclaimed hits. Its records are taken before the perf rings are read,
            // so a rename that came before a hit is in this batch too.
            let perf_wait = match self.handler.as_mut() {
                Some(active) => {
                    // A BPF ring polls readable while it holds any record, so under a steady
                    // stream `wait` returns at once with a handful: after a batch that left the
                    // ring mostly free, sleep a moment instead and take the next one whole.
                    if pace_handler {
                        std::thread::sleep(wait.min(HANDLER_BATCH_PAUSE));
                    } else {
                        active.handler.wait(wait).map_err(|e| {
                            Error::wrap(ErrorKind::Kernel, "waiting for the BPF hit handler", e)
                        })?;
                    }
                    let taken = active
                        .handler
                        .poll_records(&mut |r| batch.push(Sampled::Record(r)));
                    pace_handler = taken > 0 && taken < active.handler.spec().ring_records() / 4;
                    Duration::ZERO
                }
                None => wait,
            };
            let outcome = self.session.poll(perf_wait, &mut |record| {
                if let Record::Comm {
                    pid, exec: true, ..
                } = &record
                {
                    target_exec |= Some(*pid) == target_pid;
                }
                Sampled::keep(record, &mut batch)
            })?;
            self.follow_hotplug(&mut batch);
            self.push(&mut batch);
            self.progress()?;
            match self.consumer.load(Ordering::SeqCst) {
                CONSUMER_MAX_HITS => break EndedBy::MaxHits,
                CONSUMER_BREAK => break EndedBy::Sink,
                CONSUMER_FAILED => break EndedBy::OutputFailed,
                _ => {}
            }
            if self.stop.is_stopped() {
                break EndedBy::Interrupted;
            }
            if self
                .opts
                .duration
                .is_some_and(|d| self.armed_at.elapsed() >= d)
            {
                break EndedBy::Duration;
            }
            if target_exec {
                break EndedBy::Exec { frames: false };
            }
            if outcome.all_exited {
                break EndedBy::TargetExited;
            }
            let session = &mut self.session;
            let handler = self.handler.as_ref();
            let mut started = Vec::new();
            let turn_ns = monotonic_ns();
            let rotated = self.placement.rotate(turn_ns, |register, piece| {
                // The value the piece holds as its turn starts: the `old` of its first hit
                // in this turn (a write in the moment before the move is not seen anyway).
                if let (Some(active), Some(pid)) = (handler, target_pid) {
                    active.seed_from_memory(pid, piece.addr);
                }
                session.modify(register, piece).map(|()| {
                    // For the shadows (crate::shadow): the value once armed, so a write in
                    // that moment is in it or has its record after this time.
                    if let (Some(_), Some(pid)) = (handler, target_pid) {
                        let time_ns = monotonic_ns();
                        let value = memory::read_value(pid, piece.addr, piece.len as usize).ok();
                        started.push((time_ns, value));
                    }
                })
            });
            // Sorted with the records by time: a piece is unknown from just before its move
            // off a register, and known again from its read once armed.
            let moves = self.placement.take_moves();
            for (i, (ended, piece)) in moves.into_iter().enumerate() {
                batch.push(Sampled::Turn {
                    piece: ended,
                    armed: false,
                    seed: None,
                    time_ns: turn_ns,
                });
                if let Some(&(time_ns, seed)) = started.get(i) {
                    batch.push(Sampled::Turn {
                        piece,
                        armed: true,
                        seed,
                        time_ns,
                    });
                }
            }
            if let Err(error) = rotated {
                self.notice(Notice::Warning(format!(
                    "cannot move a flexible watch ({error}); rotation stops here, estimates \
                     cover the time until now"
                )));
            }
        };
        let stopped_ns = monotonic_ns();
        self.session.disable()?;
        self.placement.stop(stopped_ns);
        // What the kernel wrote before the disable is still in the rings.
        if let Some(active) = self.handler.as_mut() {
            active
                .handler
                .poll_records(&mut |r| batch.push(Sampled::Record(r)));
        }
        self.session
            .drain(&mut |record| Sampled::keep(record, &mut batch));
        self.push(&mut batch);
        let duration = self.armed_at.elapsed();
        let mut perf_count = 0;
        for c in self.session.counts()? {
            self.placement.register_count(c.watch, c.count);
            perf_count += c.count;
        }
        self.push_counts()?;
        let handler_totals = match &self.handler {
            Some(active) => {
                let stats = active.handler.stats().map_err(|e| {
                    Error::wrap(
                        ErrorKind::Kernel,
                        "reading the BPF hit handler's counters",
                        e,
                    )
                })?;
                Some(HandlerTotals {
                    runs: stats.runs,
                    filtered: stats.filtered,
                    skipped: stats.skipped(perf_count),
                    ring_full: stats.ring_full,
                    count_map_full: stats.count_map_full,
                    unknown_address: stats.unknown_addr,
                })
            }
            None => None,
        };
        let lost_records = self.session.lost();
        let throttled = self.session.throttled();
        let Drain {
            session,
            handler,
            placement,
            dropped,
            ..
        } = self;
        // Close the events now: the registers are free before the caller's thread finishes;
        // with the events and the handler's fds closed, the kernel frees its program and maps.
        drop(session);
        drop(handler);
        Ok(DrainEnd {
            placement,
            ended_by,
            lost_records,
            throttled,
            dropped,
            duration,
            handler: handler_totals,
        })
    }

    pub(super) fn notice(&mut self, notice: Notice) {
        let item = Queued::Notice(notice);
        let cost = item.cost();
        let _ = self.queue.push_all([(item, cost)]);
    }

    /// Sorts one batch by time, charges every hit to its piece, reads the values (once per
    /// batch per process and watch) and queues it all.
    pub(super) fn push(&mut self, batch: &mut Vec<Sampled>) {
        if batch.is_empty() {
            return;
        }
        // Stable: records with equal times keep ring order (a rename before its thread's hits).
        batch.sort_by_key(Sampled::time_ns);
        let mut values: Vec<(i32, usize, Option<u64>)> = Vec::new();
        let mut items = Vec::with_capacity(batch.len());
        for sampled in batch.drain(..) {
            // A value chain's pieces moved by a handler record: their values at the new
            // addresses, read once armed (the shadows' new seeds).
            let mut moved_seeds = Vec::new();
            let item = match sampled {
                Sampled::Hit(mut hit) => {
                    let piece = self.placement.charge_hit(hit.watch, hit.addr);
                    // Hook 2 of 3: a chain's pointer was written: move its value's pieces.
                    let (session, placement) = (&mut self.session, &self.placement);
                    if let Err(error) = self.chains.on_hit(piece, hit.pid, |p, request| {
                        let register = placement.register_of(p).unwrap_or(p);
                        session.modify(register, request)
                    }) {
                        let text = format!("cannot move a value chain's watch ({error})");
                        self.notice(Notice::Warning(text));
                    }
                    let watch = self.placement.owner(piece).0 .0;
                    let value = if self.value_watches[watch] {
                        match values.iter().find(|(p, w, _)| *p == hit.pid && *w == watch) {
                            Some((_, _, v)) => *v,
                            None => {
                                let (addr, len) = self.watch_ranges[watch];
                                let v = memory::read_value(hit.pid, addr, len as usize).ok();
                                values.push((hit.pid, watch, v));
                                v
                            }
                        }
                    } else {
                        None
                    };
                    let unwind_stopped = self.unwind_sample(&mut hit);
                    Queued::Hit {
                        hit,
                        piece,
                        value,
                        unwind_stopped,
                    }
                }
                Sampled::Record(mut record) => {
                    let to_piece = &self
                        .handler
                        .as_ref()
                        .expect("records come from it")
                        .to_piece;
                    let Some(&piece) = to_piece.get(record.piece as usize) else {
                        continue;
                    };
                    let left_behind = self.chain_moves.get(piece).copied().flatten();
                    if left_behind
                        .is_some_and(|(from, to)| (from + 1..to).contains(&record.time_ns))
                    {
                        // Counted by the kernel, not reported (the summary's `lost`).
                        continue;
                    }
                    self.placement.charge_piece(piece);
                    // Hook 2 of 3 for the handler's records: a chain's pointer was written:
                    // move its pieces in the handler's program and on their registers.
                    let active = self.handler.as_ref().expect("records come from it");
                    let (session, placement) = (&mut self.session, &self.placement);
                    let chain_moves = &mut self.chain_moves;
                    let (pid, pointer_ns) = (record.pid, record.time_ns);
                    if let Err(error) = self.chains.on_hit(piece, pid, |p, request| {
                        // As rotation moves a piece (`crate::shadow`): the handler seeded
                        // before the breakpoint moves, the shadow's seed read once it is
                        // armed, so a write in that moment is in the seed or has its record
                        // after it.
                        active
                            .move_piece(pid, p, request)
                            .map_err(|e| e.to_string())?;
                        if chain_moves.len() <= p {
                            chain_moves.resize(p + 1, None);
                        }
                        chain_moves[p] = Some((pointer_ns, monotonic_ns()));
                        let register = placement.register_of(p).unwrap_or(p);
                        session
                            .modify(register, request)
                            .map_err(|e| e.to_string())?;
                        let len = usize::try_from(request.len).unwrap_or(usize::MAX);
                        let seed = memory::read_value(pid, request.addr, len).ok();
                        moved_seeds.push((p, seed));
                        Ok::<(), String>(())
                    }) {
                        let text = format!("cannot move a value chain's watch ({error})");
                        self.notice(Notice::Warning(text));
                    }
                    let unwind_stopped = record.user_stack.take().and_then(|stack| {
                        let regs = StartRegs {
                            ip: stack.ip,
                            sp: stack.sp,
                            bp: stack.bp,
                        };
                        let unwound = self
                            .unwinder
                            .unwind_captured(record.pid, regs, &stack.bytes);
                        record.stack = unwound.frames;
                        unwound.stopped
                    });
                    Queued::Record {
                        record,
                        piece,
                        unwind_stopped,
                    }
                }
                Sampled::Comm { tid, comm, .. } => Queued::Comm { tid, comm },
                Sampled::Fork {
                    tid, ppid, ptid, ..
                } => Queued::Fork { tid, ppid, ptid },
                Sampled::Turn {
                    piece, armed, seed, ..
                } => Queued::Turn { piece, armed, seed },
            };
            // The moved pieces' turns before the pointer's record, whose whole new value is
            // the new object's from the shadow (`WatchValues::annotate_with_string`).
            for (piece, seed) in moved_seeds {
                let turn = Queued::Turn {
                    piece,
                    armed: true,
                    seed,
                };
                items.push((turn, 0));
            }
            let cost = item.cost();
            items.push((item, cost));
        }
        for refused in self.queue.push_all(items) {
            // A hit, from a perf sample or from the handler: counted as lost.
            if matches!(refused, Queued::Hit { .. } | Queued::Record { .. }) {
                self.dropped += 1;
            }
        }
    }

    /// A user-mode sample with the user stack (`PERF_SAMPLE_STACK_USER`): its user frames
    /// unwound with the unwind tables replace the frame-pointer ones, and the stack bytes are
    /// dropped before the hit is queued. Returns why unwinding stopped early, if it did.
    pub(super) fn unwind_sample(&mut self, hit: &mut session::Hit) -> Option<String> {
        let stack = std::mem::take(&mut hit.stack_user);
        let registers = hit.registers.as_deref()?;
        if stack.is_empty() || hit.kernel_mode {
            return None;
        }
        // Encoding order: rsp is register 4, rbp register 5.
        let regs = StartRegs {
            ip: hit.ip,
            sp: registers[4],
            bp: registers[5],
        };
        let unwound = self.unwinder.unwind_captured(hit.pid, regs, &stack);
        hit.callchain.truncate(hit.callchain_kernel_frames);
        hit.callchain.extend(unwound.frames);
        unwound.stopped
    }

    /// Queues interval counts when an interval has passed.
    pub(super) fn progress(&mut self) -> Result<()> {
        let (Some(interval), Some(due)) = (self.opts.interval, self.next_interval) else {
            return Ok(());
        };
        let elapsed = self.armed_at.elapsed();
        if elapsed < due {
            return Ok(());
        }
        self.next_interval = Some(due + interval);
        self.push_counts()?;
        let kernel: Option<Vec<u64>> = if self.placement.is_static() {
            let mut per_register = vec![0; self.session.watches().len()];
            for c in self.session.counts()? {
                per_register[c.watch] += c.count;
            }
            Some(per_register)
        } else {
            None
        };
        let counts = self
            .placement
            .progress_counts(self.n_watches, kernel.as_deref());
        let item = Queued::Progress { elapsed, counts };
        let cost = item.cost();
        let _ = self.queue.push_all([(item, cost)]);
        Ok(())
    }

    /// Count mode: reads the handler's count map, charges it to the pieces (hits seen) and
    /// queues it for the caller's thread.
    pub(super) fn push_counts(&mut self) -> Result<()> {
        let Some(active) = &self.handler else {
            return Ok(());
        };
        if active.handler.spec().mode != HandlerMode::Count {
            return Ok(());
        }
        let counts = active.handler.counts().map_err(|e| {
            Error::wrap(ErrorKind::Kernel, "reading the BPF hit handler's counts", e)
        })?;
        let mut seen = vec![0u64; self.placement.pieces().len()];
        let counts: Vec<(CountKey, usize, u64)> = counts
            .into_iter()
            .filter_map(|(key, n)| {
                let piece = *active.to_piece.get(key.piece as usize)?;
                seen[piece] += n;
                Some((key, piece, n))
            })
            .collect();
        for (piece, n) in seen.into_iter().enumerate() {
            if active.to_piece.contains(&piece) {
                self.placement.set_seen(piece, n);
            }
        }
        let item = Queued::Counts(counts);
        let cost = item.cost();
        let _ = self.queue.push_all([(item, cost)]);
        Ok(())
    }

    /// Keeps a CPU-wide watch on the selected online CPUs, saying what changed. Never ends the
    /// watch: if the online list cannot be read, hotplug is no longer followed.
    pub(super) fn follow_hotplug(&mut self, batch: &mut Vec<Sampled>) {
        let Some(follower) = self.hotplug.as_mut() else {
            return;
        };
        let notes = match follower.follow(&mut self.session, &mut |record| {
            Sampled::keep(record, batch)
        }) {
            Ok(notes) => notes,
            Err(error) => {
                self.hotplug = None;
                self.notice(Notice::Warning(format!(
                    "no longer following CPU hotplug: {error}"
                )));
                return;
            }
        };
        for note in notes {
            let text = match note {
                HotplugNote::WentOffline { cpu, .. } => {
                    format!("CPU {cpu} went offline; its hits so far are kept")
                }
                HotplugNote::Armed { cpu } => format!("CPU {cpu} came online; watching it too"),
                HotplugNote::Refused { cpu, error } => {
                    format!("CPU {cpu} came online but refused the watch: {error}")
                }
            };
            self.notice(Notice::Warning(text));
        }
    }
}
