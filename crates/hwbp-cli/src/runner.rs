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
//! Hot path (a hot watch can deliver ~100k hits/s): symbolization is cached per (pid, ip), and
//! the watched value is read once per drained batch per (process, watch) rather than once per
//! hit: every read happens after all the hits of the batch anyway, so reading again per hit only
//! costs a `process_vm_readv` each.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hwbp_linux::hotplug::{CpuSelection, HotplugNote, SessionHotplug};
use hwbp_linux::session::{EventScope, Hit, Record, SessionOptions, WatchSession};
use hwbp_linux::{memory, target};
use hwbp_symbols::{CodeLocation, KernelSymbols, ProcessSymbols};

use crate::output::{HitReport, Summary, WatchTotals};
use crate::plan::{Plan, PlannedTarget};

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
    // Flatten pieces: session watch index -> planned watch index.
    let mut requests = Vec::new();
    let mut owner = Vec::new();
    for (i, w) in plan.watches.iter().enumerate() {
        for piece in &w.pieces {
            requests.push(*piece);
            owner.push(i);
        }
    }
    let online = target::online_cpus()?;
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

    // Read before arming, so every hit time (same clock) is after it: times are never negative.
    let armed_at = Instant::now();
    let armed_ns = monotonic_ns();
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
        owner: &owner,
        opts,
        armed_ns,
        symbolizer: &mut symbolizer,
        last_value: &mut last_value,
        reported: vec![0u64; plan.watches.len()],
        total_reported: 0,
        values_read: HashMap::new(),
    };
    let mut batch: Vec<Sampled> = Vec::new();
    // The target exec'd: the watched address belonged to its old image, so the watch ends.
    let mut target_exec = false;
    let ended_by = loop {
        let outcome = session.poll(POLL_INTERVAL, &mut |record| {
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
    };
    session.disable()?;
    // What the kernel wrote before the disable is still in the rings.
    session.drain(&mut |record| Sampled::keep(record, &mut batch));
    delivery.deliver(&mut batch, sink)?;
    let reported = delivery.reported;
    let duration_s = armed_at.elapsed().as_secs_f64();
    let counts = session.counts()?;
    let mut hits = vec![0u64; plan.watches.len()];
    for c in &counts {
        hits[owner[c.watch]] += c.count;
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
        .map(|(i, w)| WatchTotals {
            watch: w.label.clone(),
            address: format!("{:#x}", w.addr),
            len: w.len,
            hits: hits[i].max(reported[i]),
            reported: reported[i],
            lost: if opts.max_hits.is_some() {
                0
            } else {
                hits[i].saturating_sub(reported[i])
            },
        })
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

/// How often the run loop wakes when no ring has reached its wake-up watermark: bounds the delay
/// between a hit and its line (and the value read after it).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Turns samples into reports for the sink, counting them per watch.
struct Delivery<'a> {
    plan: &'a Plan,
    owner: &'a [usize],
    opts: &'a RunOptions,
    armed_ns: u64,
    symbolizer: &'a mut Symbolizer,
    last_value: &'a mut [Option<u64>],
    reported: Vec<u64>,
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
            if self.max_hits_reached() {
                break;
            }
            let watch_index = self.owner[hit.watch];
            self.reported[watch_index] += 1;
            self.total_reported += 1;
            let watch = &self.plan.watches[watch_index];
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
            let report = make_report(
                self.plan,
                self.symbolizer,
                self.last_value,
                watch_index,
                &hit,
                value_after,
                self.armed_ns,
                self.opts,
            );
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
