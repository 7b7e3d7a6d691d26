//! The perf-event watcher: opens the watch session (all-or-nothing), arms it, lets a launched
//! command go, and runs two threads until the end:
//!
//! - the **drain thread** owns the [`WatchSession`]: it empties every CPU's ring as soon as the
//!   kernel wakes it (or every 10 ms), reads the watched values once per drained batch, rotates
//!   flexible pieces, follows CPU hotplug, and pushes hits, thread-name records and interval
//!   counts into a bounded [`HitQueue`]. It never waits for the output, so a slow consumer costs
//!   memory (up to the bound), not hits; past the bound, hits are counted as lost;
//! - the **caller's thread** takes what is queued, names threads (`PERF_RECORD_COMM`/`FORK`, in
//!   time order), symbolizes the accessing instruction (cached per pid and ip), and hands each
//!   [`Hit`] to the sink.
//!
//! It stops on the stop handle, the duration, the hit limit, the sink's `Break`, a target exec
//! or exit. The [`Summary`] counts every hit the kernel counted and says how many were lost.
//!
//! Values come from one of two engines, chosen at start and announced ([`Notice::Engine`]):
//!
//! - the **in-kernel hit handler** ([`hwbp_linux::bpf`]) when this process may load BPF (root,
//!   or CAP_BPF + CAP_PERFMON): a program attached to every breakpoint event reads the piece
//!   that fired (`ctx->addr`, so rotation keeps working) in the accessing thread right after
//!   the store, keeps old -> new per piece (seeded with the value at arming), filters
//!   (`changes_only`, `condition`) and either emits one record per hit to its ring buffer
//!   ([`ValueSource::Handler`], exact) or, with [`WatchOptions::aggregate`], counts per (piece,
//!   thread, instruction) in a map read at each interval and at the end
//!   ([`HitSink::counts`]). It drops the perf sample, and the events it is attached to ask
//!   for no sample fields (the kernel prepares them for the program at every hit) and write
//!   no side-band records: one dummy event per ring carries the `COMM`/`FORK` records
//!   ([`hwbp_linux::perf::SampleOptions::in_kernel_handler`]). The perf rings then carry those
//!   and the samples of execute breakpoints, delivered as below; a CPU that comes online gets
//!   the program on its new events before they are enabled. Its ring holds as many bytes as
//!   the perf rings it replaces (`ring_pages` per CPU). With `callchain` (`-g`) each record
//!   carries the kernel frames of a kernel-mode access and the user frames
//!   (`bpf_get_stack`), as perf's callchain has them;
//! - otherwise **perf samples** with the user registers (`PERF_SAMPLE_REGS_USER`): the value of
//!   a plain `mov` store is recovered from them ([`ValueSource::DecodedStore`], exact), else
//!   the value is read after the hit, once per drained batch ([`ValueSource::ReadAfter`]).
//!
//! A typed watch of several pieces gets its whole value from its shadow ([`crate::shadow`]),
//! advanced by the handler's piece values; the drain thread sends each rotation move as two
//! timed turn events (a piece off its register, a piece on it with its value read once
//! armed), sorted with the records. A value chain's move (a handler record of one of its
//! pointers) moves each moved piece in the handler's program ([`HitHandler::move_piece`],
//! seeded with the value there) and then on its register, and queues a turn for it with its
//! value read once armed: the shadow then holds the new object. A record of a moved piece
//! timed between the pointer's record and the program's move was a write through the object
//! the chain left, and is dropped (counted by the kernel, so in the summary's `lost`).
//!
//! [`HitHandler::move_piece`]: hwbp_linux::bpf::HitHandler::move_piece

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use hwbp_core::Access;
use hwbp_linux::bpf::handler::CountKey;
use hwbp_linux::bpf::{HandlerMode, HandlerPiece, HandlerRecord};
use hwbp_linux::hotplug::{CpuSelection, HotplugNote, SessionHotplug};
use hwbp_linux::launch::ProcessExit;
use hwbp_linux::session::{self, EventScope, Record, SessionOptions, WatchSession};
use hwbp_linux::sys::perf::EventTarget;
use hwbp_linux::{memory, probe, target};
use hwbp_symbols::cache::{CodeInfo, SymbolCache};
use hwbp_symbols::store::DecodedStore;
use hwbp_symbols::unwind::{StackUnwinder, StartRegs};

use crate::engine::{choose_engine, ActiveHandler, Engine};
use crate::error::{Error, ErrorKind, Result};
use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::plan::{plural, PlannedTarget, WatchPlan};
use crate::queue::{HitQueue, Taken};
use crate::rotation::PiecePlacement;
use crate::sink::{HitCount, HitSink, Notice, Progress};
use crate::summary::{HandlerTotals, Summary};
use crate::threads::ThreadNames;
use crate::watcher::{monotonic_ns, StopHandle, WatchOptions};

/// How often the drain thread wakes when no ring has reached its wake-up watermark: bounds the
/// delay between a hit and its value read.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The pause after a drain of the BPF ring that took some records but less than a quarter of
/// what it holds: at 200,000 hits a second that is 1,000 records a batch instead of a dozen
/// (a ring polls readable while it holds any record), three system calls a batch, with
/// three quarters of the ring (at least 12,000 records, 60 ms at that rate) still free.
/// Records wait no longer than without it: the handler wakes the reader only at 16 KiB, so a
/// slow stream waits for the poll timeout anyway.
const HANDLER_BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Why a watched program may die of SIGTRAP without anyone sending one: some virtual machines
/// deliver a watchpoint hit as a debug exception with an empty DR6, which the kernel cannot match
/// to a watchpoint, so it counts nothing and sends SIGTRAP (seen with perf and bpftrace too).
pub(crate) const STRAY_TRAP_HINT: &str = " (if nothing in the program raised it, likely a debug \
     exception the kernel could not match to a watchpoint: some virtual machines raise these \
     under busy watchpoints, and that hit was not counted)";

/// The frame that ends a chain whose unwinding stopped before the outermost frame.
pub(crate) fn unwind_marker(why: &str) -> Arc<str> {
    format!("[unwinding stopped: {why}]").into()
}

/// Appends the frames of one callchain address; a frame-pointer walk's `0` (a return address
/// read from a frame that was no frame record) ends the chain with a marker instead, and
/// returns false.
fn push_frame(
    cache: &mut SymbolCache,
    pid: i32,
    addr: u64,
    kernel: bool,
    after: bool,
    out: &mut Vec<Arc<str>>,
) -> bool {
    if addr == 0 {
        out.push(unwind_marker(
            "no frame record (code without frame pointers)",
        ));
        return false;
    }
    cache.push_frames(pid, addr, kernel, after, out);
    true
}

/// What the drain thread queues for the caller's thread, in time order.
enum Queued {
    /// A hit of piece `piece`, with the value read after it (if values are read); its user
    /// stack bytes, if it carried them, already unwound into its callchain, and why that
    /// unwinding stopped early.
    Hit {
        hit: session::Hit,
        piece: usize,
        value: Option<u64>,
        unwind_stopped: Option<String>,
    },
    /// A hit of piece `piece` as the in-kernel handler recorded it; its user stack bytes, if it
    /// carried them, already unwound into `record.stack`, and why that unwinding stopped early.
    Record {
        record: HandlerRecord,
        piece: usize,
        unwind_stopped: Option<String>,
    },
    /// Every count of the handler's count map since arming, per piece.
    Counts(Vec<(CountKey, usize, u64)>),
    /// `tid` set its name.
    Comm { tid: i32, comm: String },
    /// `tid` was created by `ptid` of `ppid`.
    Fork { tid: i32, ppid: i32, ptid: i32 },
    /// Interval counts per watch.
    Progress { elapsed: Duration, counts: Vec<u64> },
    /// A notice from the drain side.
    Notice(Notice),
    /// Rotation took piece `piece` off its register (`armed` false) or put it on one, with
    /// the value `seed` read once armed (for the shadows of wide watches, [`crate::shadow`]).
    Turn {
        piece: usize,
        armed: bool,
        seed: Option<u64>,
    },
}

impl Queued {
    /// What the item costs in the queue, in bytes.
    fn cost(&self) -> usize {
        if matches!(self, Queued::Turn { .. }) {
            // Never refused: a lost turn would leave a shadow's bytes wrongly known.
            return 0;
        }
        std::mem::size_of::<Queued>()
            + match self {
                Queued::Hit {
                    hit,
                    unwind_stopped,
                    ..
                } => hit.callchain.len() * 8 + unwind_stopped.as_ref().map_or(0, String::len),
                Queued::Record {
                    record,
                    unwind_stopped,
                    ..
                } => {
                    (record.stack.len() + record.kernel_stack.len()) * 8
                        + unwind_stopped.as_ref().map_or(0, String::len)
                }
                Queued::Counts(counts) => {
                    counts.len() * std::mem::size_of::<(CountKey, usize, u64)>()
                }
                Queued::Comm { comm, .. } => comm.len(),
                Queued::Progress { counts, .. } => counts.len() * 8,
                Queued::Fork { .. } | Queued::Notice(_) | Queued::Turn { .. } => 0,
            }
    }
}

/// A record as the drain thread sorts it (rings are per CPU, so a poll interleaves CPUs).
enum Sampled {
    Hit(session::Hit),
    Record(HandlerRecord),
    Comm {
        tid: i32,
        comm: String,
        time_ns: u64,
    },
    Fork {
        tid: i32,
        ppid: i32,
        ptid: i32,
        time_ns: u64,
    },
    /// A rotation move's end or start of a piece's turn ([`Queued::Turn`]).
    Turn {
        piece: usize,
        armed: bool,
        seed: Option<u64>,
        time_ns: u64,
    },
}

impl Sampled {
    /// Sort key: a name with no time applies before the hits it came with.
    fn time_ns(&self) -> u64 {
        match self {
            Sampled::Hit(hit) => hit.time_ns,
            Sampled::Record(record) => record.time_ns,
            Sampled::Comm { time_ns, .. }
            | Sampled::Fork { time_ns, .. }
            | Sampled::Turn { time_ns, .. } => *time_ns,
        }
    }

    fn keep(record: Record, batch: &mut Vec<Sampled>) {
        match record {
            Record::Hit(hit) => batch.push(Sampled::Hit(hit)),
            Record::Comm {
                tid, comm, time_ns, ..
            } => batch.push(Sampled::Comm {
                tid,
                comm,
                time_ns: time_ns.unwrap_or(0),
            }),
            Record::Fork {
                tid,
                ppid,
                ptid,
                time_ns,
                ..
            } => batch.push(Sampled::Fork {
                tid,
                ppid,
                ptid,
                time_ns,
            }),
            Record::Lost { .. } | Record::Throttle | Record::Unthrottle => {}
        }
    }
}

/// Why the caller's side asked the drain thread to end.
const CONSUMER_RUNNING: u8 = 0;
const CONSUMER_MAX_HITS: u8 = 1;
const CONSUMER_BREAK: u8 = 2;
const CONSUMER_FAILED: u8 = 3;

/// What the drain thread hands back at the end.
struct DrainEnd {
    placement: PiecePlacement,
    ended_by: String,
    lost_records: u64,
    throttled: u64,
    dropped: u64,
    duration: Duration,
    handler: Option<HandlerTotals>,
}

/// Closes the queue however the drain thread ends, so the caller's thread never waits forever.
struct CloseOnDrop<'a, T>(&'a HitQueue<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The session's scopes for the target.
fn scopes(target: &PlannedTarget) -> Vec<EventScope> {
    match target {
        PlannedTarget::Threads { tids, .. } => {
            tids.iter().map(|t| EventScope::Thread(*t)).collect()
        }
        PlannedTarget::Cpus { cpus, .. } => cpus.iter().map(|c| EventScope::Cpu(*c)).collect(),
    }
}

/// The trial-open targets for counting free registers.
fn event_targets(target: &PlannedTarget) -> Vec<EventTarget> {
    match target {
        PlannedTarget::Threads { tids, .. } => tids
            .iter()
            .map(|&tid| EventTarget { pid: tid, cpu: -1 })
            .collect(),
        PlannedTarget::Cpus { cpus, .. } => cpus
            .iter()
            .map(|&cpu| EventTarget {
                pid: -1,
                cpu: cpu as i32,
            })
            .collect(),
    }
}

/// The first round's turn for a launched command, which may end within a few quanta: 250 us
/// until every flexible piece has had a turn. Measured on a 64-byte struct (15 pieces, 12
/// taking turns) in a command that writes for 5 ms: 6-10 of 12 pieces armed instead of 1 with
/// 10 ms turns; a move costs 0.4-55 us (bench/rotation), so at most ~20% of the first 3 ms.
const LAUNCHED_FIRST_ROUND_NS: u64 = 250_000;

/// Places the plan's pieces on the registers free now (trial-open, only when it matters).
pub(crate) fn placement(plan: &WatchPlan) -> Result<PiecePlacement> {
    let pieces: usize = plan.watches.iter().map(|w| w.pieces.len()).sum();
    let free = if plan.options.flexible || pieces > 1 {
        probe::fewest_free_slots(&event_targets(&plan.target)).map(|f| f as usize)
    } else {
        None
    };
    let first_round = plan.target.is_launched().then_some(LAUNCHED_FIRST_ROUND_NS);
    PiecePlacement::with_first_round(&plan.watches, free, &plan.options, first_round)
}

/// Reads `len` bytes of process `pid` for the symbol cache.
pub(crate) fn code_reader() -> hwbp_symbols::cache::CodeReader {
    Box::new(|pid, addr, len| {
        let mut buf = vec![0u8; len];
        memory::read_memory(pid, addr, &mut buf).ok().map(|_| buf)
    })
}

/// The process of thread `tid` (CPU-wide watches see any process): `Tgid` of
/// `/proc/TID/status` while the thread lives, else the thread id.
fn process_of(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// Runs `plan` in perf-event mode; see the module docs. A launched command that is still
/// running when the run ends (or fails) is ended or kept running ([`crate::launched`]).
pub(crate) fn run(
    mut plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    let result = run_plan(&mut plan, opts, stop, sink);
    let launched = match &mut plan.target {
        PlannedTarget::Threads { launched, .. } => launched.take(),
        PlannedTarget::Cpus { .. } => None,
    };
    match launched {
        // Never resumed: dropped here, killed before its first instruction.
        Some(launched) if launched.is_stopped() => result,
        // Reaped by the run: the summary says how it exited.
        Some(_) if result.as_ref().is_ok_and(|s| s.command.is_some()) => result,
        Some(launched) => {
            // The events are closed: nothing of hwbp's is armed in it any more.
            let command =
                crate::launched::settle(launched.into_pid(), None, opts.keep_running, sink);
            let mut summary = result?;
            summary.command = Some(command?);
            Ok(summary)
        }
        None => result,
    }
}

fn run_plan(
    plan: &mut WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    let online =
        target::online_cpus().map_err(|e| Error::wrap(ErrorKind::Kernel, e.to_string(), e))?;
    let mut placement = placement(plan)?;
    // Value chains (crate::chain) and typed values (crate::typed): hook 1 of 3.
    let chains = crate::chain::PerfChains::new(plan, &placement)?;
    let mut typed_values = crate::typed::WatchValues::new(plan, plan.target.pid());
    for piece in (0..placement.pieces().len()).filter(|p| !placement.is_armed(*p)) {
        // Not armed until its first turn: its bytes are unknown until then.
        let (watch, index) = placement.owner(piece);
        typed_values.set_armed(watch, index, false, None);
    }
    if let Some(notice) = placement.notice() {
        sink.notice(&Notice::Rotation(notice))?;
    }
    let requests = placement.session_requests();
    let target_pid = plan.target.pid();
    let engine = choose_engine(plan, &placement, opts)?;
    let mut session_opts = SessionOptions {
        ring_pages: opts.ring_pages,
        ..SessionOptions::default()
    };
    // The handler takes the stacks itself; perf samples only carry execute hits then.
    session_opts.sample.callchain = opts.callchain;
    session_opts.sample.regs_user = engine.regs_user;
    if opts.callchain {
        session_opts.sample.stack_user = opts.call_graph.stack_bytes();
    }
    session_opts.sample.in_kernel_handler = engine.handler.is_some();
    let mut session = WatchSession::open(&requests, &scopes(&plan.target), &online, &session_opts)?;
    if let Some(active) = &engine.handler {
        session
            .attach_handler(active.handler.program_fd())
            .map_err(|e| {
                Error::wrap(
                    ErrorKind::Kernel,
                    "cannot attach the BPF hit handler to a breakpoint event",
                    e,
                )
            })?;
    }
    let Engine {
        handler,
        seeded,
        notice: engine_notice,
        ..
    } = engine;
    let hotplug = match &plan.target {
        PlannedTarget::Cpus { cpus, all } => SessionHotplug::new(if *all {
            CpuSelection::AllOnline
        } else {
            CpuSelection::Listed(cpus.clone())
        })
        .ok(),
        PlannedTarget::Threads { .. } => None,
    };
    let reads_value = |w: &crate::plan::PlannedWatch| {
        opts.read_values && !w.kernel_address && w.len <= 8 && w.access != Access::Execute
    };
    // The value each watch held when armed: the "before" of its first hit.
    let mut last_value: Vec<Option<u64>> = plan
        .watches
        .iter()
        .map(|w| match target_pid {
            Some(pid) if reads_value(w) => memory::read_value(pid, w.addr, w.len as usize).ok(),
            _ => None,
        })
        .collect();
    let mut cache = SymbolCache::new(
        target_pid.zip(plan.symbols.clone()),
        plan.kernel_symbols.clone(),
        code_reader(),
    );
    let mut names = ThreadNames::from_proc();
    // Name every thread the target has now: a thread it creates later is named after its
    // creator (PERF_RECORD_FORK), and the creator may be gone from /proc by then.
    if let PlannedTarget::Threads { pid, tids, .. } = &plan.target {
        for &tid in tids {
            names.name(*pid, tid);
        }
    }
    let piece_owner: Vec<(WatchId, usize)> = (0..placement.pieces().len())
        .map(|p| placement.owner(p))
        .collect();
    let piece_members: Vec<Option<Arc<str>>> = piece_owner
        .iter()
        .map(|&(id, index)| plan.watches[id.0].piece_member(index).map(Into::into))
        .collect();

    // Read before arming, so every hit time (same clock) is after it.
    let armed_at = Instant::now();
    let armed_ns = monotonic_ns();
    placement.start(armed_ns);
    session.enable()?;
    if let PlannedTarget::Threads {
        launched: Some(launched),
        ..
    } = &mut plan.target
    {
        launched.resume().map_err(|e| {
            Error::wrap(ErrorKind::Target, "cannot let the launched command run", e)
        })?;
    }
    sink.notice(&Notice::Armed {
        description: format!(
            "{} on {}",
            plural(plan.watches.len(), "watchpoint"),
            plan.target.describe()
        ),
    })?;
    if let Some(notice) = engine_notice {
        sink.notice(&Notice::Engine(notice))?;
    }

    let queue: HitQueue<Queued> = HitQueue::new(opts.queue_bytes);
    let consumer = AtomicU8::new(CONSUMER_RUNNING);
    let value_watches: Vec<bool> = plan.watches.iter().map(reads_value).collect();
    let watch_ranges: Vec<(u64, u64)> = plan.watches.iter().map(|w| (w.addr, w.len)).collect();
    let n_pieces = piece_owner.len();
    let n_watches = plan.watches.len();
    let filtered_in_kernel = handler.is_some() && (opts.changes_only || opts.condition.is_some());
    let unwinder = StackUnwinder::new(target_pid.zip(plan.symbols.clone()));

    let (drained, delivered) = std::thread::scope(|scope| {
        let drain = scope.spawn(|| {
            let _close = CloseOnDrop(&queue);
            let drain = Drain {
                session,
                handler,
                placement,
                hotplug,
                queue: &queue,
                opts,
                stop,
                consumer: &consumer,
                target_pid,
                value_watches: &value_watches,
                watch_ranges: &watch_ranges,
                n_watches,
                armed_at,
                dropped: 0,
                next_interval: opts.interval,
                chains: &chains,
                chain_moves: Vec::new(),
                unwinder,
            };
            drain.run()
        });
        let delivered = deliver(
            &queue,
            &consumer,
            sink,
            opts,
            plan,
            &mut Delivery {
                cache: &mut cache,
                names: &mut names,
                last_value: &mut last_value,
                piece_owner: &piece_owner,
                piece_members: &piece_members,
                reported: vec![0; n_pieces],
                total_reported: 0,
                armed_ns,
                seeded,
                stores: HashMap::new(),
                pid_of: HashMap::new(),
                counted: vec![0; n_pieces],
                typed_values: &mut typed_values,
            },
        );
        let drained = drain
            .join()
            .unwrap_or_else(|_| Err(Error::new(ErrorKind::Kernel, "the drain thread panicked")));
        (drained, delivered)
    });
    let end = drained?;
    let reported = delivered?;

    let mut ended_by = end.ended_by;
    let mut command = None;
    if let PlannedTarget::Threads {
        launched: Some(launched),
        ..
    } = &mut plan.target
    {
        if ended_by == "target exited" {
            if let Ok(exit) = launched.wait() {
                ended_by = format!("the command {exit}");
                if matches!(exit, ProcessExit::Signaled { signal, .. } if signal == nix::libc::SIGTRAP)
                {
                    ended_by.push_str(STRAY_TRAP_HINT);
                }
                command = Some(crate::launched::exited(launched.pid(), exit));
            }
        }
        // A command still running is ended or kept running by `run`.
    }
    let max_hits = opts.max_hits.is_some();
    // Hits the kernel counted that no one will report: with in-kernel filters, "counted but
    // not reported" also holds the filtered hits, so `lost` is bounded by what was really lost.
    let really_lost = end.handler.map_or(0, |h| {
        h.skipped + h.ring_full + h.count_map_full + h.unknown_address
    }) + end.dropped
        + end.lost_records;
    let watchpoints = plan
        .watches
        .iter()
        .map(|w| {
            let mut totals = end.placement.totals(w, &reported, max_hits, end.duration);
            if filtered_in_kernel {
                totals.lost = totals.lost.min(really_lost);
            }
            totals
        })
        .collect();
    Ok(Summary {
        kind: "summary",
        watchpoints,
        lost_records: end.lost_records,
        queue_dropped: end.dropped,
        queue_peak_bytes: queue.peak_bytes() as u64,
        throttled: end.throttled,
        stray_traps: 0,
        handler: end.handler,
        duration_s: end.duration.as_secs_f64(),
        ended_by,
        processes: Vec::new(),
        pending: Vec::new(),
        command,
    })
}

/// The drain thread's state; see the module docs.
struct Drain<'a> {
    session: WatchSession,
    handler: Option<ActiveHandler>,
    placement: PiecePlacement,
    hotplug: Option<SessionHotplug>,
    queue: &'a HitQueue<Queued>,
    opts: &'a WatchOptions,
    stop: &'a StopHandle,
    consumer: &'a AtomicU8,
    target_pid: Option<i32>,
    /// Per watch: read its value after hits.
    value_watches: &'a [bool],
    /// Per watch: address and length.
    watch_ranges: &'a [(u64, u64)],
    n_watches: usize,
    armed_at: Instant,
    dropped: u64,
    next_interval: Option<Duration>,
    /// Value chains to move when one of their pointers is written.
    chains: &'a crate::chain::PerfChains,
    /// Per placement piece, its last move by a value chain in the handler's program: the
    /// pointer's record time and the time the program took the new address. A record of the
    /// piece between them was a write through the object the chain left (the program still
    /// had the old address), which is not reported, as the chain's docs say.
    chain_moves: Vec<Option<(u64, u64)>>,
    /// Unwinds the user stacks hits carry, before they are queued (the bytes are not kept).
    unwinder: StackUnwinder,
}

impl Drain<'_> {
    fn run(mut self) -> Result<DrainEnd> {
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
                CONSUMER_MAX_HITS => break "max hits reached",
                CONSUMER_BREAK => break "stopped by the hit sink",
                CONSUMER_FAILED => break "output failed",
                _ => {}
            }
            if self.stop.is_stopped() {
                break "interrupted";
            }
            if self
                .opts
                .duration
                .is_some_and(|d| self.armed_at.elapsed() >= d)
            {
                break "duration elapsed";
            }
            if target_exec {
                break "target exec'd a new program; the address watched was the old program's";
            }
            if outcome.all_exited {
                break "target exited";
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
            ended_by: ended_by.to_string(),
            lost_records,
            throttled,
            dropped,
            duration,
            handler: handler_totals,
        })
    }

    fn notice(&mut self, notice: Notice) {
        let item = Queued::Notice(notice);
        let cost = item.cost();
        let _ = self.queue.push_all([(item, cost)]);
    }

    /// Sorts one batch by time, charges every hit to its piece, reads the values (once per
    /// batch per process and watch) and queues it all.
    fn push(&mut self, batch: &mut Vec<Sampled>) {
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
    fn unwind_sample(&mut self, hit: &mut session::Hit) -> Option<String> {
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
    fn progress(&mut self) -> Result<()> {
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
    fn push_counts(&mut self) -> Result<()> {
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
    fn follow_hotplug(&mut self, batch: &mut Vec<Sampled>) {
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

/// The caller's side of a run: names, symbols, values, counts.
struct Delivery<'a> {
    cache: &'a mut SymbolCache,
    names: &'a mut ThreadNames,
    last_value: &'a mut [Option<u64>],
    piece_owner: &'a [(WatchId, usize)],
    piece_members: &'a [Option<Arc<str>>],
    reported: Vec<u64>,
    total_reported: u64,
    armed_ns: u64,
    /// Per piece: the handler knows its value at arming (else the first `old` is unknown).
    seeded: Vec<bool>,
    /// Decoded trapping stores per (pid, ip), for the fallback's register values.
    stores: HashMap<(i32, u64), Option<DecodedStore>>,
    /// Process of a thread seen in the count map (CPU-wide watches).
    pid_of: HashMap<i32, i32>,
    /// Per piece: the count map's total (count mode), added to `reported` at the end.
    counted: Vec<u64>,
    typed_values: &'a mut crate::typed::WatchValues,
}

/// Takes what the drain thread queues and hands it to the sink until the queue closes; returns
/// the hits reported per piece.
fn deliver(
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
                    match sink.hit(&hit) {
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
                failure = Some(e.into());
            }
        }
        if idle && failure.is_none() {
            if let Err(e) = sink.idle() {
                consumer.store(CONSUMER_FAILED, Ordering::SeqCst);
                failure = Some(e.into());
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
    fn hit(
        &mut self,
        plan: &WatchPlan,
        opts: &WatchOptions,
        hit: session::Hit,
        piece: usize,
        value: Option<u64>,
        unwind_stopped: Option<String>,
    ) -> Hit {
        let (id, index) = self.piece_owner[piece];
        let watch = &plan.watches[id.0];
        let code = if opts.symbolize {
            self.cache.code(
                hit.pid,
                hit.ip,
                hit.kernel_mode,
                watch.access == Access::Execute,
            )
        } else {
            Arc::new(CodeInfo::default())
        };
        // The fallback: a plain `mov` store's value from the user registers at the trap.
        let decoded = match hit.registers {
            Some(registers)
                if opts.read_values
                    && !hit.kernel_mode
                    && watch.pieces.len() == 1
                    && watch.access != Access::Execute =>
            {
                let cache = &mut *self.cache;
                self.stores
                    .entry((hit.pid, hit.ip))
                    .or_insert_with(|| crate::stop::decode_at(cache, hit.pid, hit.ip))
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
        let mut out = Hit {
            watch: id,
            time_ns: hit.time_ns.saturating_sub(self.armed_ns),
            cpu: Some(hit.cpu),
            pid: hit.pid,
            tid: hit.tid,
            comm: self.names.name(hit.pid, hit.tid),
            access: watch.access,
            kernel: hit.kernel_mode,
            ip: hit.ip,
            code,
            member: self.piece_members[piece].clone(),
            value,
            callchain,
            typed: None,
            frame: None,
        };
        // Hook 3 of 3: the value in its type.
        self.typed_values.annotate(plan, &mut out, index);
        out
    }
}

impl Delivery<'_> {
    /// A hit as the in-kernel handler recorded it: exact old and new values of the piece.
    fn record(
        &mut self,
        plan: &WatchPlan,
        opts: &WatchOptions,
        record: HandlerRecord,
        piece: usize,
        unwind_stopped: Option<String>,
    ) -> Hit {
        let (id, _) = self.piece_owner[piece];
        let watch = &plan.watches[id.0];
        let code = if opts.symbolize {
            self.cache
                .code(record.pid, record.ip, record.kernel_mode, false)
        } else {
            Arc::new(CodeInfo::default())
        };
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
        let mut out = Hit {
            watch: id,
            time_ns: record.time_ns.saturating_sub(self.armed_ns),
            cpu: Some(record.cpu),
            pid: record.pid,
            tid: record.tid,
            comm: self.names.name(record.pid, record.tid),
            access: watch.access,
            kernel: record.kernel_mode,
            ip: record.ip,
            code,
            member: self.piece_members[piece].clone(),
            value,
            callchain,
            typed: None,
            frame: None,
        };
        // The value in its type (the handler's exact new value, typed; a `char *`'s string
        // as the handler read it at the trap).
        let (_, index) = self.piece_owner[piece];
        self.typed_values
            .annotate_with_string(plan, &mut out, index, record.string);
        out
    }

    /// The count map, symbolized; the pieces' reported counts become its sums.
    fn counts(
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
                let code = if opts.symbolize {
                    self.cache.code(pid, key.ip, kernel, false)
                } else {
                    Arc::new(CodeInfo::default())
                };
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
