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

use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use hwbp_core::Access;
use hwbp_linux::hotplug::{CpuSelection, SessionHotplug};
use hwbp_linux::session::{SessionOptions, WatchSession};
use hwbp_linux::{memory, target};
use hwbp_symbols::cache::SymbolCache;
use hwbp_symbols::unwind::StackUnwinder;

mod chains;
mod delivery;
mod drain;
mod engine;
mod queued;
mod targets;

use crate::capture::{code_reader, DecodedStores};
use crate::clock::monotonic_ns;
use crate::error::{Error, ErrorKind, Result};
use crate::hit::WatchId;
use crate::options::{StopHandle, WatchOptions};
use crate::plan::{plural, PlannedTarget, WatchPlan};
use crate::queue::HitQueue;
use crate::rotation::PiecePlacement;
use crate::sink::{HitSink, Notice};
use crate::summary::{EndedBy, Summary, SummaryKind};
use crate::threads::ThreadNames;
use delivery::{deliver, Delivery};
use drain::Drain;
use engine::{choose_engine, Engine};
use queued::{CloseOnDrop, DrainEnd, Queued, CONSUMER_RUNNING};
pub(crate) use targets::placement;
use targets::scopes;

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
        PlannedTarget::Threads { launched, .. } => launched.take().map(|l| l.0),
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
    let mut placement = placement(plan)?;
    // Value chains (crate::plan::chain) and typed values (crate::typed): hook 1 of 3.
    let chains = chains::PerfChains::new(plan, &placement)?;
    let mut typed_values = crate::values::WatchValues::new(plan, plan.target.pid());
    for piece in (0..placement.pieces().len()).filter(|p| !placement.is_armed(*p)) {
        // Not armed until its first turn: its bytes are unknown until then.
        let (watch, index) = placement.owner(piece);
        typed_values.set_armed(watch, index, false, None);
    }
    if let Some(notice) = placement.notice() {
        sink.notice(&Notice::Rotation(notice))?;
    }
    let target_pid = plan.target.pid();
    let engine = choose_engine(plan, &placement, opts)?;
    let mut session = open_session(plan, &placement, opts, &engine)?;
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
    arm(plan, &mut session, sink, engine_notice)?;

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
                stores: DecodedStores::default(),
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

    Ok(summarize(
        plan,
        opts,
        end,
        &reported,
        filtered_in_kernel,
        queue.peak_bytes(),
    ))
}

/// Opens the session of `placement`'s requests on the plan's threads or CPUs, with the sample
/// fields the engine needs, and attaches the engine's handler to every breakpoint event.
fn open_session(
    plan: &WatchPlan,
    placement: &PiecePlacement,
    opts: &WatchOptions,
    engine: &Engine,
) -> Result<WatchSession> {
    let online =
        target::online_cpus().map_err(|e| Error::wrap(ErrorKind::Kernel, e.to_string(), e))?;
    let requests = placement.session_requests();
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
    Ok(session)
}

/// Enables the session, lets a launched command run, and says what is armed and which value
/// engine runs.
fn arm(
    plan: &mut WatchPlan,
    session: &mut WatchSession,
    sink: &mut dyn HitSink,
    engine_notice: Option<String>,
) -> Result<()> {
    session.enable()?;
    if let PlannedTarget::Threads {
        launched: Some(launched),
        ..
    } = &mut plan.target
    {
        launched.0.resume().map_err(|e| {
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
    Ok(())
}

/// The run's summary: each watch's totals from the placement's counts and what was reported,
/// and how the run ended (a launched command that exited is reaped here and named).
fn summarize(
    plan: &mut WatchPlan,
    opts: &WatchOptions,
    end: DrainEnd,
    reported: &[u64],
    filtered_in_kernel: bool,
    queue_peak_bytes: usize,
) -> Summary {
    let mut ended_by = end.ended_by;
    let mut command = None;
    if let PlannedTarget::Threads {
        launched: Some(launched),
        ..
    } = &mut plan.target
    {
        if ended_by == EndedBy::TargetExited {
            if let Ok(exit) = launched.0.wait() {
                ended_by = EndedBy::command(exit);
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
            let mut totals = end.placement.totals(w, reported, max_hits, end.duration);
            if filtered_in_kernel {
                totals.lost = totals.lost.min(really_lost);
            }
            totals
        })
        .collect();
    Summary {
        kind: SummaryKind::Summary,
        watchpoints,
        lost_records: end.lost_records,
        queue_dropped: end.dropped,
        queue_peak_bytes: queue_peak_bytes as u64,
        throttled: end.throttled,
        stray_traps: 0,
        handler: end.handler,
        duration_s: end.duration.as_secs_f64(),
        ended_by,
        processes: Vec::new(),
        pending: Vec::new(),
        command,
    }
}
