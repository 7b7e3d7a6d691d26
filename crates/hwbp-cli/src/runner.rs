//! Runs a [`Plan`]: opens the watch session (all-or-nothing), arms it, lets a launched command
//! go, turns every sample into a [`HitReport`] (symbolized, with the value read after the hit)
//! for a [`HitSink`], and stops on `--max-hits`, `--duration`, Ctrl-C/SIGTERM or when the target
//! is gone. The [`Summary`] counts every hit the kernel counted and says how many were lost.
//!
//! Thread names come from the records the kernel writes into the ring (as perf does), applied
//! in time order with the hits, so a thread that exits before its hits are read is still named:
//! `PERF_RECORD_FORK` gives a new thread its creator's name, `PERF_RECORD_COMM` a name it sets
//! itself. `/proc/PID/task/TID/comm` is the fallback for threads that existed before arming.
//!
//! More pieces than free debug registers (or `--flexible`): the pieces are placed by
//! `hwbp_core::sched` (pinned while they fit, the rest flexible, one register kept for the
//! rotation: the seed rule). The session opens one watch per logical register; every quantum
//! the rotating registers' watches are moved to the next flexible pieces with
//! `PERF_EVENT_IOC_MODIFY_ATTRIBUTES` ([`WatchSession::modify`]), which keeps each event and so
//! its slot (`modify_user_hw_breakpoint` in `kernel/events/hw_breakpoint.c`). A sample is
//! charged to the piece whose address it carries (`PERF_SAMPLE_ADDR` is `bp_addr` at the
//! time of the hit, `perf_bp_event`), never to the piece armed when the ring is read. A
//! rotating register's kernel count mixes pieces, so flexible pieces are counted from their
//! samples and scaled by time watched / time armed, as perf scales multiplexed counters.
//!
//! Hot path (a hot watch can deliver ~100k hits/s): symbolization is cached per (pid, ip), and
//! the watched value is read once per drained batch per (process, watch) rather than once per
//! hit: every read happens after all the hits of the batch anyway, so reading again per hit only
//! costs a `process_vm_readv` each.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hwbp_core::sched::{auto_placements, Action, Placement, RotationPlan, RotationScheduler};
use hwbp_linux::hotplug::{CpuSelection, HotplugNote, SessionHotplug};
use hwbp_linux::launch::ProcessExit;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::session::{EventScope, Hit, Record, SessionOptions, WatchSession};
use hwbp_linux::sys::perf::EventTarget;
use hwbp_linux::{memory, target};
use hwbp_symbols::{CodeLocation, KernelSymbols, ProcessSymbols};

use crate::output::{HitReport, Summary, WatchTotals};
use crate::plan::{Plan, PlannedTarget, PlannedWatch};

/// Set by the SIGINT/SIGTERM handler; the run loop ends at its next turn.
pub static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C / SIGTERM handler once.
pub fn install_stop_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // A failure only means a handler exists already; Ctrl-C then kills us, and the kernel
        // still frees every debug register when our fds close.
        let _ = ctrlc::set_handler(|| STOP_REQUESTED.store(true, Ordering::SeqCst));
    });
}

/// Receives hits as they come, and a tick at every loop turn.
pub trait HitSink {
    /// One hit.
    fn hit(&mut self, hit: &HitReport) -> anyhow::Result<()>;
    /// Called after each poll with the time since arming and the session (for counts).
    fn tick(&mut self, _elapsed: Duration, _session: &WatchSession) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Sample callchains.
    pub callchain: bool,
    /// Stop after this many reported hits.
    pub max_hits: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Data pages per CPU ring.
    pub ring_pages: usize,
    /// Symbolize the accessing instruction of each hit.
    pub symbolize: bool,
    /// Read the watched value after each hit.
    pub read_values: bool,
    /// Say on stderr when the watch is armed (tests and scripts wait for this line).
    pub announce: bool,
}

/// Symbolizes hits, caching per (pid, ip): a hot watch hits the same few instructions.
struct Symbolizer {
    target_pid: Option<i32>,
    target_symbols: Option<ProcessSymbols>,
    other_processes: HashMap<i32, Option<ProcessSymbols>>,
    kernel: Option<Option<KernelSymbols>>,
    cache: HashMap<(i32, u64), Rc<CodeInfo>>,
    comms: HashMap<i32, String>,
}

#[derive(Clone, Default)]
struct CodeInfo {
    instruction: Option<u64>,
    location: Option<CodeLocation>,
    kernel_function: Option<(String, u64)>,
}

impl Symbolizer {
    fn kernel(&mut self) -> Option<&KernelSymbols> {
        self.kernel
            .get_or_insert_with(|| KernelSymbols::from_kallsyms().ok())
            .as_ref()
    }

    fn process(&mut self, pid: i32) -> Option<&ProcessSymbols> {
        if Some(pid) == self.target_pid {
            return self.target_symbols.as_ref();
        }
        self.other_processes
            .entry(pid)
            .or_insert_with(|| ProcessSymbols::load(pid as u32).ok())
            .as_ref()
    }

    fn code(&mut self, pid: i32, ip: u64, kernel_mode: bool) -> Rc<CodeInfo> {
        if let Some(info) = self.cache.get(&(pid, ip)) {
            return Rc::clone(info);
        }
        let info = if kernel_mode {
            CodeInfo {
                kernel_function: self
                    .kernel()
                    .and_then(|k| k.symbolize(ip).map(|(n, off)| (n.to_string(), off))),
                ..CodeInfo::default()
            }
        } else {
            match self.process(pid) {
                Some(symbols) => {
                    let instruction = symbols.accessing_instruction(ip, |addr, len| {
                        let mut buf = vec![0u8; len];
                        memory::read_memory(pid, addr, &mut buf).ok().map(|_| buf)
                    });
                    let location = symbols.symbolize(instruction.unwrap_or(ip.wrapping_sub(1)));
                    CodeInfo {
                        instruction,
                        location,
                        kernel_function: None,
                    }
                }
                None => CodeInfo::default(),
            }
        };
        let info = Rc::new(info);
        self.cache.insert((pid, ip), Rc::clone(&info));
        info
    }

    fn frame(&mut self, pid: i32, addr: u64, kernel: bool) -> String {
        if kernel {
            return match self.kernel().and_then(|k| k.symbolize(addr)) {
                Some((name, off)) => format!("{addr:#x} {name}+{off:#x} [kernel]"),
                None => format!("{addr:#x} [kernel]"),
            };
        }
        match self
            .process(pid)
            .and_then(|s| s.symbolize(addr.wrapping_sub(1)))
        {
            Some(loc) => format!("{addr:#x} {loc}"),
            None => format!("{addr:#x}"),
        }
    }

    /// The name of `tid`: the last one a `PERF_RECORD_COMM` or `PERF_RECORD_FORK` gave, else
    /// read from `/proc` when the thread is first seen (`?` if it has exited by then).
    fn comm(&mut self, pid: i32, tid: i32) -> String {
        self.comms
            .entry(tid)
            .or_insert_with(|| target::thread_comm(pid, tid).unwrap_or_else(|_| "?".into()))
            .clone()
    }

    /// Records that `tid` is now called `comm` (from a `PERF_RECORD_COMM` or `_FORK`).
    fn rename(&mut self, tid: i32, comm: String) {
        self.comms.insert(tid, comm);
    }
}

/// What the run loop takes from the rings, in time order: hits, and thread names.
enum Sampled {
    Hit(Hit),
    Comm {
        tid: i32,
        comm: String,
        time_ns: Option<u64>,
    },
    /// Thread `tid` was created by thread `ptid` of process `ppid`, whose name it has until it
    /// renames itself.
    Fork {
        tid: i32,
        ppid: i32,
        ptid: i32,
        time_ns: u64,
    },
}

impl Sampled {
    /// Sort key: a name with no time applies before the hits it came with.
    fn time_ns(&self) -> u64 {
        match self {
            Sampled::Hit(hit) => hit.time_ns,
            Sampled::Comm { time_ns, .. } => time_ns.unwrap_or(0),
            Sampled::Fork { time_ns, .. } => *time_ns,
        }
    }

    /// Keeps what the runner uses: hits and renames.
    fn keep(record: Record, batch: &mut Vec<Sampled>) {
        match record {
            Record::Hit(hit) => batch.push(Sampled::Hit(hit)),
            Record::Comm {
                tid, comm, time_ns, ..
            } => batch.push(Sampled::Comm { tid, comm, time_ns }),
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

/// `CLOCK_MONOTONIC` now, in ns: the clock of [`Hit::time_ns`]
/// ([`hwbp_linux::perf::attr::SAMPLE_CLOCK`]).
fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Runs the plan to its end and returns the summary.
pub fn run(mut plan: Plan, opts: &RunOptions, sink: &mut dyn HitSink) -> anyhow::Result<Summary> {
    install_stop_handler();
    let online = target::online_cpus()?;
    let mut placement = PiecePlacement::new(&plan)?;
    let requests = placement.session_requests();
    if opts.announce {
        if let Some(notice) = placement.notice(&plan) {
            eprintln!("hwbp: {notice}");
        }
    }
    let (scopes, target_pid): (Vec<EventScope>, Option<i32>) = match &plan.target {
        PlannedTarget::Threads { pid, tids, .. } => (
            tids.iter().map(|t| EventScope::Thread(*t)).collect(),
            Some(*pid),
        ),
        PlannedTarget::Cpus(cpus) => (cpus.iter().map(|c| EventScope::Cpu(*c)).collect(), None),
    };
    let mut session_opts = SessionOptions {
        ring_pages: opts.ring_pages,
        ..SessionOptions::default()
    };
    session_opts.sample.callchain = opts.callchain;
    let mut session = WatchSession::open(&requests, &scopes, &online, &session_opts)?;
    // CPU hotplug: -a follows every CPU that comes online, -C LIST re-arms its CPUs.
    let mut hotplug = match &plan.target {
        PlannedTarget::Cpus(cpus) => SessionHotplug::new(if *cpus == online {
            CpuSelection::AllOnline
        } else {
            CpuSelection::Listed(cpus.clone())
        })
        .ok(),
        PlannedTarget::Threads { .. } => None,
    };

    // The value each watch held when armed: the "before" of its first hit.
    let mut last_value: Vec<Option<u64>> = plan
        .watches
        .iter()
        .map(|w| match target_pid {
            Some(pid) if opts.read_values && !w.kernel_address && w.len <= 8 => {
                memory::read_value(pid, w.addr, w.len as usize).ok()
            }
            _ => None,
        })
        .collect();

    let mut symbolizer = Symbolizer {
        target_pid,
        target_symbols: plan.symbols.take(),
        other_processes: HashMap::new(),
        kernel: plan.kernel_symbols.take().map(Some),
        cache: HashMap::new(),
        comms: HashMap::new(),
    };
    // Name every thread the target has now: a thread it creates later is named after its
    // creator (PERF_RECORD_FORK), and the creator may be gone from /proc by the time the new
    // thread's hits are read.
    if let PlannedTarget::Threads { pid, tids, .. } = &plan.target {
        for &tid in tids {
            symbolizer.comm(*pid, tid);
        }
    }

    // Read before arming, so every hit time (same clock) is after it: times are never negative.
    let armed_at = Instant::now();
    let armed_ns = monotonic_ns();
    // The session's watches are already the pieces `start` arms.
    let _ = placement.sched.start(armed_ns);
    session.enable()?;
    if let PlannedTarget::Threads {
        launched: Some(launched),
        ..
    } = &mut plan.target
    {
        launched
            .resume()
            .context("cannot let the launched command run")?;
    }
    if opts.announce {
        eprintln!(
            "hwbp: watching {} on {}; Ctrl-C to stop",
            plural(plan.watches.len(), "watchpoint"),
            describe_target(&plan.target)
        );
    }

    let mut delivery = Delivery {
        plan: &plan,
        placement: &mut placement,
        opts,
        armed_ns,
        symbolizer: &mut symbolizer,
        last_value: &mut last_value,
        total_reported: 0,
        values_read: HashMap::new(),
    };
    let mut batch: Vec<Sampled> = Vec::new();
    // The target exec'd: the watched address belonged to its old image, so the watch ends.
    let mut target_exec = false;
    let ended_by = loop {
        let wait = delivery.placement.time_to_rotation(monotonic_ns());
        let outcome = session.poll(wait.min(POLL_INTERVAL), &mut |record| {
            if let Record::Comm {
                pid, exec: true, ..
            } = &record
            {
                target_exec |= Some(*pid) == target_pid;
            }
            Sampled::keep(record, &mut batch)
        })?;
        follow_hotplug(&mut hotplug, &mut session, &mut batch, opts.announce);
        delivery.deliver(&mut batch, sink)?;
        sink.tick(armed_at.elapsed(), &session)?;
        if delivery.max_hits_reached() {
            break "max hits reached";
        }
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            break "interrupted";
        }
        if opts.duration.is_some_and(|d| armed_at.elapsed() >= d) {
            break "duration elapsed";
        }
        if target_exec {
            break "target exec'd a new program; the address watched was the old program's";
        }
        if outcome.all_exited {
            break "target exited";
        }
        delivery.placement.rotate(&mut session, monotonic_ns());
    };
    let stopped_ns = monotonic_ns();
    session.disable()?;
    delivery.placement.stop(stopped_ns);
    // What the kernel wrote before the disable is still in the rings.
    session.drain(&mut |record| Sampled::keep(record, &mut batch));
    delivery.deliver(&mut batch, sink)?;
    let duration_s = armed_at.elapsed().as_secs_f64();
    let counts = session.counts()?;
    for c in &counts {
        placement.register_count(c.watch, c.count);
    }
    let lost_records = session.lost();
    let throttled = session.throttled();
    drop(session);

    let mut ended_by = ended_by.to_string();
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
            }
        }
    }
    if let PlannedTarget::Threads { launched, .. } = &mut plan.target {
        // A command still running keeps running on its own: hwbp only stops watching it.
        if let Some(l) = launched.take() {
            let _ = l.into_pid();
        }
    }
    let watchpoints = plan
        .watches
        .iter()
        .enumerate()
        .map(|(i, w)| placement.totals(i, w, opts.max_hits.is_some()))
        .collect();
    Ok(Summary {
        kind: "summary",
        watchpoints,
        lost_records,
        throttled,
        duration_s,
        ended_by,
    })
}

/// Keeps a CPU-wide watch on the selected online CPUs ([`SessionHotplug`]), saying on stderr
/// what changed. Never ends the watch: if the online list cannot be read, hotplug is no longer
/// followed.
fn follow_hotplug(
    hotplug: &mut Option<SessionHotplug>,
    session: &mut WatchSession,
    batch: &mut Vec<Sampled>,
    announce: bool,
) {
    let Some(follower) = hotplug.as_mut() else {
        return;
    };
    let notes = match follower.follow(session, &mut |record| Sampled::keep(record, batch)) {
        Ok(notes) => notes,
        Err(error) => {
            eprintln!("hwbp: no longer following CPU hotplug: {error}");
            *hotplug = None;
            return;
        }
    };
    for note in notes {
        match note {
            HotplugNote::WentOffline { cpu, .. } if announce => {
                eprintln!("hwbp: CPU {cpu} went offline; its hits so far are kept")
            }
            HotplugNote::Armed { cpu } if announce => {
                eprintln!("hwbp: CPU {cpu} came online; watching it too")
            }
            HotplugNote::Refused { cpu, error } => {
                eprintln!("hwbp: CPU {cpu} came online but refused the watch: {error}")
            }
            _ => {}
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn describe_target(target: &PlannedTarget) -> String {
    match target {
        PlannedTarget::Threads {
            pid,
            launched: Some(_),
            ..
        } => format!("the command (pid {pid})"),
        PlannedTarget::Threads { pid, tids, .. } if tids.len() == 1 && tids[0] != *pid => {
            format!("thread {} of process {pid}", tids[0])
        }
        PlannedTarget::Threads { pid, tids, .. } => {
            format!(
                "process {pid} ({} and threads it creates)",
                plural(tids.len(), "thread")
            )
        }
        PlannedTarget::Cpus(cpus) => format!("CPUs {}", hwbp_linux::target::format_cpu_list(cpus)),
    }
}

/// Why a watched program may die of SIGTRAP without anyone sending one: some virtual machines
/// deliver a watchpoint hit as a debug exception with an empty DR6, which the kernel cannot match
/// to a watchpoint, so it counts nothing and sends SIGTRAP (seen with perf and bpftrace too).
const STRAY_TRAP_HINT: &str = " (if nothing in the program raised it, likely a debug \
     exception the kernel could not match to a watchpoint: some virtual machines raise these \
     under busy watchpoints, and that hit was not counted)";

/// How often the run loop wakes when no ring has reached its wake-up watermark: bounds the delay
/// between a hit and its line (and the value read after it).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Turns samples into reports for the sink, counting them per watch.
struct Delivery<'a> {
    plan: &'a Plan,
    placement: &'a mut PiecePlacement,
    opts: &'a RunOptions,
    armed_ns: u64,
    symbolizer: &'a mut Symbolizer,
    last_value: &'a mut [Option<u64>],
    total_reported: u64,
    /// Values read during the current batch, per (pid, planned watch).
    values_read: HashMap<(i32, usize), Option<u64>>,
}

impl Delivery<'_> {
    fn max_hits_reached(&self) -> bool {
        self.opts.max_hits.is_some_and(|m| self.total_reported >= m)
    }

    /// Hands one batch to the sink in time order (rings are per CPU, so a batch interleaves
    /// CPUs), applying thread renames where they happened, stopping at `--max-hits`.
    fn deliver(&mut self, batch: &mut Vec<Sampled>, sink: &mut dyn HitSink) -> anyhow::Result<()> {
        // Stable: records with equal times keep ring order (a rename before its thread's hits).
        batch.sort_by_key(Sampled::time_ns);
        self.values_read.clear();
        for sampled in batch.drain(..) {
            let hit = match sampled {
                Sampled::Hit(hit) => hit,
                Sampled::Comm { tid, comm, .. } => {
                    self.symbolizer.rename(tid, comm);
                    continue;
                }
                Sampled::Fork {
                    tid, ppid, ptid, ..
                } => {
                    let creator = self.symbolizer.comm(ppid, ptid);
                    self.symbolizer.rename(tid, creator);
                    continue;
                }
            };
            // Every sample counts for the estimates, even past --max-hits.
            let piece = self.placement.piece_of_hit(&hit);
            self.placement.hits_seen[piece] += 1;
            if self.max_hits_reached() {
                continue;
            }
            let watch_index = self.placement.piece_owner[piece];
            self.placement.reported[piece] += 1;
            self.total_reported += 1;
            let watch = &self.plan.watches[watch_index];
            let field = (watch.pieces.len() > 1).then(|| {
                let request = &self.placement.pieces[piece];
                watch.field_at(request.addr.wrapping_sub(watch.addr), request.len)
            });
            let value_after = if self.opts.read_values && !watch.kernel_address && watch.len <= 8 {
                *self
                    .values_read
                    .entry((hit.pid, watch_index))
                    .or_insert_with(|| {
                        memory::read_value(hit.pid, watch.addr, watch.len as usize).ok()
                    })
            } else {
                None
            };
            let mut report = make_report(
                self.plan,
                self.symbolizer,
                self.last_value,
                watch_index,
                &hit,
                value_after,
                self.armed_ns,
                self.opts,
            );
            report.field = field;
            sink.hit(&report)?;
        }
        batch.clear();
        Ok(())
    }
}

/// One hit as the user sees it. `value_after` is the watched value read after the hit (once
/// per batch, see [`Delivery::deliver`]).
#[allow(clippy::too_many_arguments)]
fn make_report(
    plan: &Plan,
    symbolizer: &mut Symbolizer,
    last_value: &mut [Option<u64>],
    watch_index: usize,
    hit: &Hit,
    value_after: Option<u64>,
    armed_ns: u64,
    opts: &RunOptions,
) -> HitReport {
    let watch = &plan.watches[watch_index];
    let code = if opts.symbolize {
        symbolizer.code(hit.pid, hit.ip, hit.kernel_mode)
    } else {
        Rc::new(CodeInfo::default())
    };
    let value_before = last_value[watch_index];
    if value_after.is_some() {
        last_value[watch_index] = value_after;
    }
    let (function, offset, file, line) = match (&code.location, &code.kernel_function) {
        (Some(loc), _) => (
            Some(loc.function.clone()),
            Some(loc.offset),
            loc.file.clone(),
            loc.line,
        ),
        (None, Some((name, off))) => (Some(name.clone()), Some(*off), None, None),
        _ => (None, None, None, None),
    };
    let callchain = if opts.callchain {
        hit.callchain
            .iter()
            .enumerate()
            .map(|(i, addr)| symbolizer.frame(hit.pid, *addr, i < hit.callchain_kernel_frames))
            .collect()
    } else {
        Vec::new()
    };
    HitReport {
        kind: "hit",
        time_ns: hit.time_ns.saturating_sub(armed_ns),
        cpu: hit.cpu,
        pid: hit.pid,
        tid: hit.tid,
        comm: symbolizer.comm(hit.pid, hit.tid),
        watch: watch.label.clone(),
        address: format!("{:#x}", watch.addr),
        field: None,
        access: watch.access.letters(),
        kernel: hit.kernel_mode,
        ip: format!("{:#x}", hit.ip),
        instruction: code.instruction.map(|i| format!("{i:#x}")),
        function,
        offset,
        file,
        line,
        value_after,
        value_before,
        callchain,
    }
}

/// How the pieces of every watch share the debug registers, and what each piece has seen.
///
/// Session watch `r` is logical register `r` of the [`RotationScheduler`]: pinned pieces on
/// `0..P`, then the flexible ones. Without rotation, register `r` holds piece `r` for the
/// whole run and everything is exactly as with one event per piece.
pub struct PiecePlacement {
    sched: RotationScheduler,
    /// Every piece of every watch, in plan order.
    pieces: Vec<WatchRequest>,
    /// Piece -> planned watch index.
    piece_owner: Vec<usize>,
    /// Piece -> the register it keeps for the whole run (pinned, or flexible with a register
    /// of its own); `None` for rotating pieces.
    fixed_register: Vec<Option<usize>>,
    /// Register -> the piece it keeps for the whole run; `None` for rotating registers.
    register_piece: Vec<Option<usize>>,
    /// Rotating pieces by address, to charge a sample to the piece it was taken for.
    rotating_by_addr: HashMap<u64, usize>,
    /// Samples received per piece.
    hits_seen: Vec<u64>,
    /// Samples reported (before `--max-hits`) per piece.
    reported: Vec<u64>,
    /// Kernel counts per register, read at the end.
    register_counts: Vec<u64>,
    /// Set when a move failed: rotation stopped there (the times stopped with it).
    rotation_stopped: bool,
}

/// Debug registers free for a new watch on every one of `scopes`, by trial
/// ([`crate::cmd::slots::kernel_free_slots`]); `None` if the kernel would not say (e.g. no
/// permission: the real open then reports why).
fn free_registers(target: &PlannedTarget) -> Option<usize> {
    let targets: Vec<EventTarget> = match target {
        PlannedTarget::Threads { tids, .. } => tids
            .iter()
            .map(|&tid| EventTarget { pid: tid, cpu: -1 })
            .collect(),
        PlannedTarget::Cpus(cpus) => cpus
            .iter()
            .map(|&cpu| EventTarget {
                pid: -1,
                cpu: cpu as i32,
            })
            .collect(),
    };
    let mut free: Option<usize> = None;
    for target in targets {
        let here = crate::cmd::slots::kernel_free_slots(target).ok()? as usize;
        free = Some(free.map_or(here, |f| f.min(here)));
    }
    free
}

impl PiecePlacement {
    /// Places the pieces of `plan`: all pinned while they fit in the free registers (and
    /// without `--flexible`), else pinned first and the rest flexible, rotating.
    pub fn new(plan: &Plan) -> anyhow::Result<PiecePlacement> {
        let mut pieces = Vec::new();
        let mut piece_owner = Vec::new();
        for (i, w) in plan.watches.iter().enumerate() {
            for piece in &w.pieces {
                pieces.push(*piece);
                piece_owner.push(i);
            }
        }
        let n = pieces.len();
        let quantum_ns = plan.rotation.rotate_ms.saturating_mul(1_000_000);
        let free = if plan.rotation.flexible || n > 1 {
            free_registers(&plan.target)
        } else {
            None
        };
        let (placements, registers) = match free {
            Some(free) if free > 0 && (plan.rotation.flexible || n > free) => {
                (auto_placements(n, free, plan.rotation.flexible), free)
            }
            // Everything fits, or the kernel would not say: one pinned event per piece, and
            // the kernel's refusal (if any) names what is full.
            _ => (vec![Placement::Pinned; n], n),
        };
        let sched = RotationScheduler::new(&placements, registers, quantum_ns)
            .map_err(|e| crate::exit::usage(e.to_string()))?;
        let rotating = sched.rotating_registers().to_vec();
        let register_piece: Vec<Option<usize>> = (0..registers)
            .map(|r| {
                if rotating.contains(&r) {
                    None
                } else {
                    sched.piece_on(r)
                }
            })
            .collect();
        let mut fixed_register = vec![None; n];
        for (r, piece) in register_piece.iter().enumerate() {
            if let Some(piece) = piece {
                fixed_register[*piece] = Some(r);
            }
        }
        let mut rotating_by_addr = HashMap::new();
        for piece in (0..n).filter(|&p| fixed_register[p].is_none()) {
            rotating_by_addr.entry(pieces[piece].addr).or_insert(piece);
        }
        Ok(PiecePlacement {
            sched,
            pieces,
            piece_owner,
            fixed_register,
            register_piece,
            rotating_by_addr,
            hits_seen: vec![0; n],
            reported: vec![0; n],
            register_counts: vec![0; registers],
            rotation_stopped: false,
        })
    }

    /// The session's watches: register `r`'s first piece, for every register that has one.
    pub fn session_requests(&self) -> Vec<WatchRequest> {
        (0..self.sched.registers())
            .map_while(|r| self.sched.piece_on(r).map(|p| self.pieces[p]))
            .collect()
    }

    /// The rotation plan (for `hwbp slots` and the notice).
    pub fn plan(&self) -> RotationPlan {
        self.sched.plan()
    }

    /// The one-line notice when some pieces are flexible, `None` when all are pinned.
    pub fn notice(&self, plan: &Plan) -> Option<String> {
        if self.fixed_register.iter().all(Option::is_some)
            && (0..self.pieces.len()).all(|p| self.sched.placement(p) == Placement::Pinned)
        {
            return None;
        }
        let why = if plan.rotation.flexible {
            "--flexible".to_string()
        } else {
            format!(
                "{} pieces for {} free debug registers",
                self.pieces.len(),
                self.sched.registers()
            )
        };
        Some(format!(
            "{why}: {}; flexible counts are estimates",
            self.plan()
        ))
    }

    /// How long the run loop may wait before the next rotation is due.
    fn time_to_rotation(&self, now_ns: u64) -> Duration {
        match self.sched.next_rotation_ns() {
            Some(next) if !self.rotation_stopped => {
                Duration::from_nanos(next.saturating_sub(now_ns))
            }
            _ => Duration::MAX,
        }
    }

    /// Rotates if a quantum has passed: moves every rotating register to its next piece.
    fn rotate(&mut self, session: &mut WatchSession, now_ns: u64) {
        if self.rotation_stopped {
            return;
        }
        for action in self.sched.tick(now_ns) {
            if let Action::Move {
                register, to_piece, ..
            } = action
            {
                if let Err(error) = session.modify(register, &self.pieces[to_piece]) {
                    eprintln!(
                        "hwbp: cannot move a flexible watch ({error}); rotation stops here, \
                         estimates cover the time until now"
                    );
                    let _ = self.sched.stop(now_ns);
                    self.rotation_stopped = true;
                    return;
                }
            }
        }
    }

    /// Ends the accounting of armed time.
    fn stop(&mut self, now_ns: u64) {
        let _ = self.sched.stop(now_ns);
    }

    /// The piece a sample belongs to: the register's own piece, or for a rotating register
    /// the flexible piece at the sample's address (`bp_addr` when it hit).
    fn piece_of_hit(&self, hit: &Hit) -> usize {
        if let Some(Some(piece)) = self.register_piece.get(hit.watch) {
            return *piece;
        }
        if let Some(&piece) = self.rotating_by_addr.get(&hit.addr) {
            return piece;
        }
        // Not expected: a rotating register's sample without a known address.
        self.sched.piece_on(hit.watch).unwrap_or(0)
    }

    /// Records the kernel's count of register `register` at the end.
    fn register_count(&mut self, register: usize, count: u64) {
        if let Some(slot) = self.register_counts.get_mut(register) {
            *slot += count;
        }
    }

    /// The summary line of watch `index`.
    fn totals(&self, index: usize, watch: &PlannedWatch, max_hits: bool) -> WatchTotals {
        let mine: Vec<usize> = (0..self.pieces.len())
            .filter(|&p| self.piece_owner[p] == index)
            .collect();
        let flexible: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&p| self.sched.placement(p) == Placement::Flexible)
            .collect();
        let exact_count = |p: usize| self.fixed_register[p].map(|r| self.register_counts[r]);
        // Exact counts where a piece kept a register, samples where it rotated.
        let counted = |p: usize| exact_count(p).unwrap_or(self.hits_seen[p]);
        let hits: u64 = mine.iter().map(|&p| counted(p)).sum();
        let reported: u64 = mine.iter().map(|&p| self.reported[p]).sum();
        let exact_hits: u64 = mine.iter().filter_map(|&p| exact_count(p)).sum();
        let exact_reported: u64 = mine
            .iter()
            .filter(|&&p| exact_count(p).is_some())
            .map(|&p| self.reported[p])
            .sum();
        let placement = match (flexible.len(), mine.len()) {
            (0, _) => "pinned",
            (f, all) if f == all => "flexible",
            _ => "mixed",
        };
        let (hits_seen, coverage, estimate) = if flexible.is_empty() {
            (None, None, None)
        } else {
            let seen: u64 = flexible.iter().map(|&p| counted(p)).sum();
            let (enabled, running) = flexible.iter().fold((0u64, 0u64), |(e, r), &p| {
                let t = self.sched.times(p);
                (e + t.time_enabled, r + t.time_running)
            });
            let coverage = if enabled == 0 {
                0.0
            } else {
                running as f64 / enabled as f64
            };
            let estimate = mine.iter().try_fold(0u64, |sum, &p| {
                let piece_estimate = match exact_count(p) {
                    Some(exact) => Some(exact),
                    None => self.sched.estimate(p, self.hits_seen[p]),
                };
                piece_estimate.map(|e| sum + e)
            });
            (Some(seen), Some(coverage), estimate)
        };
        WatchTotals {
            watch: watch.label.clone(),
            address: format!("{:#x}", watch.addr),
            len: watch.len,
            hits: hits.max(reported),
            reported,
            lost: if max_hits {
                0
            } else {
                exact_hits.saturating_sub(exact_reported)
            },
            placement,
            hits_seen,
            coverage,
            estimate,
        }
    }
}

impl PiecePlacement {
    /// One line per piece for `hwbp slots SPEC...`: where it goes and what it watches.
    pub fn piece_lines(&self, plan: &Plan) -> Vec<String> {
        let rotating: Vec<String> = self
            .sched
            .rotating_registers()
            .iter()
            .map(|r| format!("DR{r}"))
            .collect();
        (0..self.pieces.len())
            .map(|p| {
                let watch = &plan.watches[self.piece_owner[p]];
                let request = &self.pieces[p];
                let what = if watch.pieces.len() > 1 {
                    format!(
                        "{} {}",
                        watch.label,
                        watch.field_at(request.addr.wrapping_sub(watch.addr), request.len)
                    )
                } else {
                    watch.label.clone()
                };
                let (placement, registers) = match (self.sched.placement(p), self.fixed_register[p])
                {
                    (Placement::Pinned, Some(r)) => ("pinned", format!("DR{r}")),
                    (Placement::Flexible, Some(r)) => ("flexible", format!("DR{r}")),
                    (_, None) => ("flexible", rotating.join(",")),
                };
                format!(
                    "  {registers:<8} {placement:<9} {what} ({:#x}, {} bytes)",
                    request.addr, request.len
                )
            })
            .collect()
    }
}
