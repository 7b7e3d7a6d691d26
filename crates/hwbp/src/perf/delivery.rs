//! The caller's side of a perf run ([`Delivery`]): takes what the drain thread queued, names
//! threads, symbolizes, turns samples and handler records into [`Hit`]s and the count map into
//! [`HitCount`]s, and hands them to the sink.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use hwbp_core::Access;
use hwbp_linux::bpf::handler::CountKey;
use hwbp_linux::bpf::{HandlerPiece, HandlerRecord, TrapString};
use hwbp_linux::session;
use hwbp_symbols::cache::{CodeInfo, SymbolCache};

use super::queued::{Queued, CONSUMER_BREAK, CONSUMER_FAILED, CONSUMER_MAX_HITS, CONSUMER_RUNNING};
use super::targets::process_of;
use super::POLL_INTERVAL;
use crate::capture::{code_at, push_frame, unwind_marker, DecodedStores, Trap};
use crate::error::{Error, Result};
use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::options::WatchOptions;
use crate::plan::{PlannedTarget, WatchPlan};
use crate::queue::{HitQueue, Taken};
use crate::sink::{HitCount, HitSink, Progress};
use crate::threads::ThreadNames;

/// The caller's side of a run: names, symbols, values, counts.
pub(super) struct Delivery<'a> {
    pub(super) cache: &'a mut SymbolCache,
    pub(super) names: &'a mut ThreadNames,
    pub(super) last_value: &'a mut [Option<u64>],
    pub(super) piece_owner: &'a [(WatchId, usize)],
    pub(super) piece_members: &'a [Option<Arc<str>>],
    pub(super) reported: Vec<u64>,
    pub(super) total_reported: u64,
    pub(super) armed_ns: u64,
    /// Per piece: the handler knows its value at arming (else the first `old` is unknown).
    pub(super) seeded: Vec<bool>,
    /// Decoded trapping stores per (pid, ip), for the fallback's register values.
    pub(super) stores: DecodedStores,
    /// Process of a thread seen in the count map (CPU-wide watches).
    pub(super) pid_of: HashMap<i32, i32>,
    /// Per piece: the count map's total (count mode), added to `reported` at the end.
    pub(super) counted: Vec<u64>,
    pub(super) typed_values: &'a mut crate::values::WatchValues,
}

/// Takes what the drain thread queues and hands it to the sink until the queue closes; returns
/// the hits reported per piece.
pub(super) fn deliver(
    queue: &HitQueue<Queued>,
    consumer: &AtomicU8,
    sink: &mut dyn HitSink,
    opts: &WatchOptions,
    plan: &WatchPlan,
    d: &mut Delivery<'_>,
) -> Result<Vec<u64>> {
    let mut taken = Vec::new();
    let mut failure: Option<Error> = None;
    loop {
        let state = queue.take_all(&mut taken, POLL_INTERVAL);
        let idle = taken.is_empty();
        for item in taken.drain(..) {
            if failure.is_some() {
                continue;
            }
            let result = match item {
                Queued::Comm { tid, comm } => {
                    d.names.renamed(tid, &comm);
                    Ok(())
                }
                Queued::Fork { tid, ppid, ptid } => {
                    d.names.forked(tid, ppid, ptid);
                    Ok(())
                }
                Queued::Notice(notice) => sink.notice(&notice),
                Queued::Turn { piece, armed, seed } => {
                    let (watch, index) = d.piece_owner[piece];
                    d.typed_values.set_armed(watch, index, armed, seed);
                    Ok(())
                }
                Queued::Progress { elapsed, counts } => sink.progress(&Progress {
                    elapsed,
                    counts: &counts,
                    watches: &plan.watches,
                }),
                Queued::Counts(counts) => {
                    let counts = d.counts(plan, opts, counts);
                    sink.counts(&counts)
                }
                Queued::Hit { .. } | Queued::Record { .. } => {
                    if consumer.load(Ordering::SeqCst) != CONSUMER_RUNNING {
                        continue;
                    }
                    let (hit, piece) = match item {
                        Queued::Hit {
                            hit,
                            piece,
                            value,
                            unwind_stopped,
                        } => (d.hit(plan, opts, hit, piece, value, unwind_stopped), piece),
                        Queued::Record {
                            record,
                            piece,
                            unwind_stopped,
                        } => (d.record(plan, opts, record, piece, unwind_stopped), piece),
                        _ => unreachable!("matched above"),
                    };
                    d.reported[piece] += 1;
                    d.total_reported += 1;
                    match sink.hit(&hit, &plan.watches[hit.watch.0]) {
                        Ok(std::ops::ControlFlow::Break(())) => {
                            consumer.store(CONSUMER_BREAK, Ordering::SeqCst);
                            Ok(())
                        }
                        Ok(std::ops::ControlFlow::Continue(())) => {
                            if opts.max_hits.is_some_and(|m| d.total_reported >= m) {
                                consumer.store(CONSUMER_MAX_HITS, Ordering::SeqCst);
                            }
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                consumer.store(CONSUMER_FAILED, Ordering::SeqCst);
                failure = Some(e);
            }
        }
        if idle && failure.is_none() {
            if let Err(e) = sink.idle() {
                consumer.store(CONSUMER_FAILED, Ordering::SeqCst);
                failure = Some(e);
            }
        }
        if state == Taken::Closed {
            break;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(d
            .reported
            .iter()
            .zip(&d.counted)
            .map(|(reported, counted)| reported + counted)
            .collect()),
    }
}

impl Delivery<'_> {
    pub(super) fn hit(
        &mut self,
        plan: &WatchPlan,
        opts: &WatchOptions,
        hit: session::Hit,
        piece: usize,
        value: Option<u64>,
        unwind_stopped: Option<String>,
    ) -> Hit {
        let (id, _) = self.piece_owner[piece];
        let watch = &plan.watches[id.0];
        let execute = watch.access == Access::Execute;
        let code = code_at(self.cache, opts, hit.pid, hit.ip, hit.kernel_mode, execute);
        // The fallback: a plain `mov` store's value from the user registers at the trap.
        let decoded = match hit.registers {
            Some(registers)
                if opts.read_values
                    && !hit.kernel_mode
                    && watch.pieces.len() == 1
                    && watch.access != Access::Execute =>
            {
                self.stores
                    .at(self.cache, hit.pid, hit.ip)
                    .and_then(|store| store.value_at(&registers, watch.addr, watch.len))
            }
            _ => None,
        };
        let value = match decoded {
            Some(new) => Some((new, ValueSource::DecodedStore)),
            None => value.map(|new| (new, ValueSource::ReadAfter)),
        };
        let value = value.map(|(new, source)| {
            let old = self.last_value[id.0].replace(new);
            HitValue {
                old,
                new: Some(new),
                source,
            }
        });
        let mut callchain = Vec::new();
        if opts.callchain {
            let execute = watch.access == Access::Execute;
            for (i, addr) in hit.callchain.iter().enumerate() {
                let kernel = i < hit.callchain_kernel_frames;
                // An execute breakpoint's ip is the instruction itself, not one after it.
                let after = !(execute && i == 0 && *addr == hit.ip);
                if !push_frame(self.cache, hit.pid, *addr, kernel, after, &mut callchain) {
                    break;
                }
            }
            callchain.extend(unwind_stopped.map(|why| unwind_marker(&why)));
        }
        let trap = Trap {
            time_ns: hit.time_ns.saturating_sub(self.armed_ns),
            cpu: Some(hit.cpu),
            pid: hit.pid,
            tid: hit.tid,
            kernel: hit.kernel_mode,
            ip: hit.ip,
        };
        // Hook 3 of 3: the value in its type.
        self.typed_hit(plan, piece, trap, code, (value, None), callchain)
    }

    /// The hit of placement piece `piece` at `trap`, with its value in its type: the end of
    /// both paths (samples and handler records). The value comes with the string the handler
    /// read at the trap for a `char *` or Rust string watch (`None`: none was read).
    fn typed_hit(
        &mut self,
        plan: &WatchPlan,
        piece: usize,
        trap: Trap,
        code: Arc<CodeInfo>,
        (value, trap_string): (
            Option<HitValue>,
            Option<std::result::Result<TrapString, i32>>,
        ),
        callchain: Vec<Arc<str>>,
    ) -> Hit {
        let (id, index) = self.piece_owner[piece];
        let comm = self.names.name(trap.pid, trap.tid);
        let member = self.piece_members[piece].clone();
        let watch = &plan.watches[id.0];
        let mut out = crate::capture::hit(watch, trap, comm, code, member, value, callchain);
        self.typed_values
            .annotate_with_string(plan, &mut out, index, trap_string);
        out
    }
}

impl Delivery<'_> {
    /// A hit as the in-kernel handler recorded it: exact old and new values of the piece.
    pub(super) fn record(
        &mut self,
        plan: &WatchPlan,
        opts: &WatchOptions,
        record: HandlerRecord,
        piece: usize,
        unwind_stopped: Option<String>,
    ) -> Hit {
        let code = code_at(
            self.cache,
            opts,
            record.pid,
            record.ip,
            record.kernel_mode,
            false,
        );
        let value = (opts.read_values && !record.value_unreadable).then(|| {
            let seeded = std::mem::replace(&mut self.seeded[piece], true);
            HitValue {
                old: seeded.then_some(record.old),
                new: Some(record.new),
                source: ValueSource::Handler,
            }
        });
        let callchain = if opts.callchain {
            // Kernel frames first, as perf's callchain has them.
            let kernel = record.kernel_stack.iter().map(|addr| (addr, true));
            let user = record.stack.iter().map(|addr| (addr, false));
            let mut frames = Vec::new();
            for (addr, kernel) in kernel.chain(user) {
                if !push_frame(self.cache, record.pid, *addr, kernel, true, &mut frames) {
                    break;
                }
            }
            frames.extend(unwind_stopped.map(|why| unwind_marker(&why)));
            frames
        } else {
            Vec::new()
        };
        let trap = Trap {
            time_ns: record.time_ns.saturating_sub(self.armed_ns),
            cpu: Some(record.cpu),
            pid: record.pid,
            tid: record.tid,
            kernel: record.kernel_mode,
            ip: record.ip,
        };
        // The value in its type (the handler's exact new value, typed; a `char *`'s string
        // as the handler read it at the trap).
        let string = record.string;
        self.typed_hit(plan, piece, trap, code, (value, string), callchain)
    }

    /// The count map, symbolized; the pieces' reported counts become its sums.
    pub(super) fn counts(
        &mut self,
        plan: &WatchPlan,
        opts: &WatchOptions,
        counts: Vec<(CountKey, usize, u64)>,
    ) -> Vec<HitCount> {
        let target_pid = match &plan.target {
            PlannedTarget::Threads { pid, .. } => Some(*pid),
            PlannedTarget::Cpus { .. } => None,
        };
        self.counted.iter_mut().for_each(|c| *c = 0);
        counts
            .into_iter()
            .map(|(key, piece, count)| {
                self.counted[piece] += count;
                let (id, _) = self.piece_owner[piece];
                let pid = target_pid.unwrap_or_else(|| {
                    *self
                        .pid_of
                        .entry(key.tid)
                        .or_insert_with(|| process_of(key.tid))
                });
                let kernel = HandlerPiece::new(key.ip, 1).is_kernel();
                let code = code_at(self.cache, opts, pid, key.ip, kernel, false);
                HitCount {
                    watch: id,
                    member: self.piece_members[piece].clone(),
                    pid,
                    tid: key.tid,
                    comm: self.names.name(pid, key.tid),
                    kernel,
                    ip: key.ip,
                    code,
                    count,
                }
            })
            .collect()
    }
}
