//! Watches that wait for their target: a launched command whose own image does not define
//! every watched name (a loader that `dlopen`s the library holding it, `sh -c './prog 10;
//! ./prog 20'`, python loading a ctypes library) runs as a tree of processes, and each watch
//! is armed in every process of the tree that maps an image defining it, resolved in that
//! process's own images.
//!
//! [`hwbp_linux::tree::ProcessTree`] follows the command's `fork`s, `vfork`s, `clone`s and
//! `exec`s with ptrace and stops a process only at the entry point of each new image and at
//! the dynamic linker's notification point (glibc's `_dl_debug_state`, which `r_debug.r_brk`
//! names; `elf/dl-open.c` calls it once the new objects are mapped and relocated and before
//! their constructors run, `elf/dl-close.c` once they are unmapped). At each such stop the
//! watches defined in the process are planned there ([`crate::plan::plan_watches`]) and run
//! by a perf-mode watcher of their own (one per process, on its threads, rotating on its own
//! registers: debug registers are per thread); the hits of every process reach the sink,
//! each naming its pid. When the defining image goes (`dlclose`, `exec`) that process's
//! watcher ends and frees its registers; mapped again, a new one starts. Children that
//! `fork` without `exec` inherit their parent's events (`inherit`), so their hits are
//! counted there, under their own pid.
//!
//! A watch no process ever defined is `pending` in the [`Summary`] (the run still ends with
//! success: the command ran as asked, and the summary says what never armed). Interval
//! counts (`-I`) are not delivered for a tree, and a hit's `time_ns` counts from the arming
//! in its own process.
//!
//! `-p PID` of a process whose images do not define a watch yet: the process is attached
//! ([`ProcessTree::attach`]: its threads and execs followed, not its children) and the watch
//! armed once it maps one. Stop mode (`--stop`) hands the command's own process (or the
//! attached one) to the stop watcher's tracer, on its thread, once it defines the watches:
//! the tree's tracer detaches it left stopped (`SIGSTOP`), the stop tracer seizes it, arms
//! every thread and the process gets `SIGCONT`; so does each other process of the tree that
//! defines them (each with its own stop tracer); the processes a handed-over process creates
//! are then not followed.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hwbp_linux::tree::{ProcessTree, TreeEvent};
use hwbp_symbols::ProcessSymbols;

use crate::error::{Error, ErrorKind, Result};
use crate::hit::{Hit, WatchId};
use crate::options::{Mode, StopHandle, WatchOptions};
use crate::plan::{self, ParsedSpec, PlanOptions, PlannedTarget, PlannedWatch, WatchPlan};
use crate::sink::{HitCount, HitSink, Notice};
use crate::summary::{EndedBy, Placement, ProcessTotals, Summary, SummaryKind, WatchTotals};

/// The dynamic linker's notification function (glibc's ld.so exports it; `r_debug.r_brk`
/// points at it).
const LOADER_NOTIFY_SYMBOL: &str = "_dl_debug_state";
/// How long a process is held for its watcher to arm (opening the events takes milliseconds).
const ARM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the tracer waits for a process event before it looks at the hits again.
const EVENT_WAIT: Duration = Duration::from_millis(2);

use crate::plan::pending::undefined_names;

fn parse_all(texts: &[String]) -> Result<Vec<ParsedSpec>> {
    texts.iter().map(|t| ParsedSpec::parse(t)).collect()
}

/// What a process's watcher sends to the tracer's thread.
enum Forwarded {
    /// Run `.0` has its events enabled: its process may go on.
    Armed(usize),
    Hit(Box<Hit>),
    Notice(Notice),
    Counts(usize, Vec<HitCount>),
}

/// The sink of one process's watcher: everything goes to the tracer's thread, watch ids
/// mapped to the plan's.
struct ForwardSink {
    run: usize,
    ids: Arc<[WatchId]>,
    to: mpsc::Sender<Forwarded>,
}

impl HitSink for ForwardSink {
    fn hit(&mut self, hit: &Hit, _: &PlannedWatch) -> Result<std::ops::ControlFlow<()>> {
        let mut hit = hit.clone();
        hit.watch = self.ids[hit.watch.0];
        let _ = self.to.send(Forwarded::Hit(Box::new(hit)));
        Ok(std::ops::ControlFlow::Continue(()))
    }

    fn notice(&mut self, notice: &Notice) -> Result<()> {
        let _ = self.to.send(Forwarded::Notice(notice.clone()));
        if matches!(notice, Notice::Armed { .. }) {
            let _ = self.to.send(Forwarded::Armed(self.run));
        }
        Ok(())
    }

    fn counts(&mut self, counts: &[HitCount]) -> Result<()> {
        let counts = counts
            .iter()
            .map(|c| HitCount {
                watch: self.ids[c.watch.0],
                ..c.clone()
            })
            .collect();
        let _ = self.to.send(Forwarded::Counts(self.run, counts));
        Ok(())
    }
}

/// One process's watcher.
struct ProcessRun {
    pid: i32,
    /// The specs it watches (indexes into the plan's).
    specs: Vec<usize>,
    ids: Arc<[WatchId]>,
    stop: StopHandle,
    thread: std::thread::JoinHandle<Result<Summary>>,
}

/// The whole run's state on the tracer's thread.
struct TreeRun<'a> {
    watches: &'a [PlannedWatch],
    specs: Vec<ParsedSpec>,
    options: PlanOptions,
    opts: WatchOptions,
    sink: &'a mut dyn HitSink,
    to: mpsc::Sender<Forwarded>,
    runs: Vec<Option<ProcessRun>>,
    /// The last counts of each run (stat).
    counts: HashMap<usize, Vec<HitCount>>,
    /// Per process: its program and hits per watch.
    rows: Vec<ProcessTotals>,
    /// Per watch: the summed totals of every run that armed it.
    totals: Vec<Option<WatchTotals>>,
    /// Notices already passed on (each process's watcher announces its engine).
    said: HashSet<String>,
    /// Processes that had a watcher.
    watched: HashSet<i32>,
    /// Runs whose events are enabled.
    armed: HashSet<usize>,
    reported: u64,
    /// The run's hit limit, over every process.
    max_hits: Option<u64>,
    limit_reached: bool,
    /// The kernel's and the queue's losses, summed over the runs.
    lost_records: u64,
    queue_dropped: u64,
    throttled: u64,
}

/// Runs a pending plan (perf or stop mode); see the module docs.
pub(crate) fn run(
    mut plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    let tree_plan = plan.tree.take().expect("a pending plan");
    let PlannedTarget::Threads {
        pid,
        tids,
        launched,
    } = plan.take_target()
    else {
        unreachable!("pending plans are built for processes");
    };
    let target_error = |e: hwbp_linux::launch::LaunchError| {
        Error::wrap(ErrorKind::Target, "cannot follow the launched command", e)
    };
    let mut tree = match launched {
        Some(launched) => {
            let pid = launched.0.into_traced().map_err(target_error)?;
            ProcessTree::from_launched(pid).map_err(target_error)?
        }
        None => ProcessTree::attach(pid, &tids, plan.options.follow_children).map_err(|e| {
            Error::wrap(
                ErrorKind::Target,
                format!("cannot follow process {pid}'s libraries"),
                e,
            )
        })?,
    };
    let (to, from) = mpsc::channel();
    let mut run = TreeRun {
        watches: &plan.watches,
        specs: parse_all(&tree_plan.specs)?,
        options: plan.options.clone(),
        opts: WatchOptions {
            max_hits: None,
            duration: None,
            interval: None,
            ..opts.clone()
        },
        sink,
        to,
        runs: Vec::new(),
        counts: HashMap::new(),
        rows: Vec::new(),
        totals: vec![None; plan.watches.len()],
        said: HashSet::new(),
        armed: HashSet::new(),
        watched: HashSet::new(),
        reported: 0,
        max_hits: opts.max_hits,
        limit_reached: false,
        lost_records: 0,
        queue_dropped: 0,
        throttled: 0,
    };
    let started = Instant::now();
    let outcome = run.follow(&mut tree, &from, opts, stop, started);
    // However it ended: every watcher stops (its registers freed), then the tree runs on.
    for index in 0..run.runs.len() {
        run.finish(index, &from)?;
    }
    run.take_forwarded(&from)?;
    let detached = tree.detach();
    let ended_by = outcome?;
    detached.map_err(target_error)?;
    // A launched command still running when the watch ends first is ended, unless
    // --keep-running (crate::launched); an attached process runs on.
    let command = match tree.root_is_launched() {
        true => Some(crate::launched::settle(
            tree.root(),
            tree.root_exit(),
            opts.keep_running,
            &mut *run.sink,
        )?),
        false => None,
    };
    Ok(run.summary(ended_by, started.elapsed(), command))
}

impl TreeRun<'_> {
    /// Follows the tree until it ends or the run is stopped; returns why it ended.
    fn follow(
        &mut self,
        tree: &mut ProcessTree,
        from: &mpsc::Receiver<Forwarded>,
        opts: &WatchOptions,
        stop: &StopHandle,
        started: Instant,
    ) -> Result<EndedBy> {
        let target_error = |e: hwbp_linux::launch::LaunchError| {
            Error::wrap(ErrorKind::Target, "cannot follow the launched command", e)
        };
        // The root exec'd: its next image is named when it is ready.
        let mut root_exec = false;
        loop {
            self.take_forwarded(from)?;
            if self.limit_reached {
                return Ok(EndedBy::MaxHits);
            }
            if stop.is_stopped() {
                return Ok(EndedBy::Interrupted);
            }
            if opts.duration.is_some_and(|d| started.elapsed() >= d) {
                return Ok(EndedBy::Duration);
            }
            match tree.next_event(EVENT_WAIT).map_err(target_error)? {
                Some(TreeEvent::ImageReady { pid }) => {
                    self.end_process(pid, from)?;
                    let program = program_of(pid);
                    if pid == tree.root() && std::mem::take(&mut root_exec) {
                        self.sink.notice(&Notice::Warning(format!(
                            "the command (pid {pid}), followed through exec to {program}"
                        )))?;
                    }
                    self.row(pid, Some(&program));
                    let armed_all = self.arm(pid, tree, from)?;
                    if !armed_all {
                        if let Some(addr) = loader_notify_address(pid) {
                            tree.set_loader_breakpoint(pid, addr)
                                .map_err(target_error)?;
                        }
                    }
                    tree.resume_process(pid).map_err(target_error)?;
                }
                Some(TreeEvent::LoaderNotified { pid, tid }) => {
                    self.arm(pid, tree, from)?;
                    tree.resume(tid).map_err(target_error)?;
                }
                Some(TreeEvent::Exec { pid }) => {
                    root_exec |= pid == tree.root();
                    self.end_process(pid, from)?;
                }
                Some(TreeEvent::Forked { pid, parent }) => {
                    let program = program_of(parent);
                    self.row(pid, Some(&program));
                }
                Some(TreeEvent::Exited { pid, .. }) => self.end_process(pid, from)?,
                None if tree.is_empty()
                    && self.runs.iter().flatten().all(|r| r.thread.is_finished()) =>
                {
                    return Ok(match tree.root_exit() {
                        Some(exit) if tree.root_is_launched() => EndedBy::command(exit),
                        _ => EndedBy::TargetExited,
                    });
                }
                None => {}
            }
        }
    }

    /// The per-process row of `pid`, made if new; `program` names what it runs now (`None`:
    /// unchanged).
    fn row(&mut self, pid: i32, program: Option<&str>) -> &mut ProcessTotals {
        let index = match self.rows.iter().position(|r| r.pid == pid) {
            Some(i) => {
                if let Some(program) = program {
                    self.rows[i].program = program.to_owned();
                }
                i
            }
            None => {
                let program = program.map_or_else(|| program_of(pid), str::to_owned);
                self.rows.push(ProcessTotals {
                    pid,
                    program,
                    hits: vec![0; self.watches.len()],
                });
                self.rows.len() - 1
            }
        };
        &mut self.rows[index]
    }

    /// Plans, in process `pid` (stopped), the specs its images define now, and (re)starts its
    /// watcher when that set changed. Returns true when every spec is armed there.
    fn arm(
        &mut self,
        pid: i32,
        tree: &mut ProcessTree,
        from: &mpsc::Receiver<Forwarded>,
    ) -> Result<bool> {
        let names: Vec<Vec<String>> = self
            .specs
            .iter()
            .map(|s| plan::names_needed(std::slice::from_ref(s)))
            .collect();
        let all: Vec<String> = names.iter().flatten().cloned().collect();
        let undefined = undefined_names(pid, &all, false);
        let defined: Vec<usize> = (0..self.specs.len())
            .filter(|&i| !names[i].iter().any(|n| undefined.contains(n)))
            .collect();
        for (i, watch) in self.watches.iter().enumerate() {
            if !defined.contains(&i) && self.said.insert(format!("pending {i}")) {
                self.sink.notice(&Notice::Warning(format!(
                    "{}: pending until an image defining it is mapped",
                    watch.label
                )))?;
            }
        }
        let current = self
            .runs
            .iter()
            .flatten()
            .find(|r| r.pid == pid)
            .map(|r| r.specs.clone());
        if current.as_ref() == Some(&defined) {
            return Ok(defined.len() == self.specs.len());
        }
        if let Some(index) = self.run_of(pid) {
            self.end_run(index)?;
        }
        if defined.is_empty() {
            return Ok(false);
        }
        let specs: Vec<ParsedSpec> = defined
            .iter()
            .map(|&i| ParsedSpec::parse(&self.watches[i].label))
            .collect::<Result<_>>()?;
        let target = PlannedTarget::Threads {
            pid,
            tids: tree.threads_of(pid),
            launched: None,
        };
        let sub_plan = match plan::plan_watches(&specs, target, self.options.clone()) {
            Ok(p) => p,
            Err(e) => {
                self.sink.notice(&Notice::Warning(format!(
                    "process {pid} ({}): not watched: {e}",
                    program_of(pid)
                )))?;
                return Ok(false);
            }
        };
        let ids: Arc<[WatchId]> = defined.iter().map(|&i| WatchId(i)).collect();
        let stop = StopHandle::new();
        let mut sink = ForwardSink {
            run: self.runs.len(),
            ids: Arc::clone(&ids),
            to: self.to.clone(),
        };
        let opts = self.opts.clone();
        let run_stop = stop.clone();
        let stop_mode = opts.mode == Mode::Stop;
        if stop_mode {
            // The stop watcher's tracer is its own thread: the process goes over to it,
            // stopped (crate::tree module docs).
            if let Err(e) = tree.release(pid) {
                self.sink.notice(&Notice::Warning(format!(
                    "process {pid} ({}): not watched: cannot hand it to the stop-mode \
                     tracer: {e}",
                    program_of(pid)
                )))?;
                return Ok(false);
            }
            wait_until_stopped(pid);
        }
        let thread = std::thread::Builder::new()
            .name(format!("hwbp-pid-{pid}"))
            .spawn(move || crate::dispatch::run(sub_plan, &opts, &run_stop, &mut sink))
            .map_err(|e| Error::wrap(ErrorKind::Kernel, "cannot start a watcher thread", e))?;
        let index = self.runs.len();
        self.runs.push(Some(ProcessRun {
            pid,
            specs: defined.clone(),
            ids,
            stop,
            thread,
        }));
        // The process stays stopped until its events are enabled: its first write counts.
        let deadline = Instant::now() + ARM_TIMEOUT;
        while !self.armed.contains(&index) {
            if Instant::now() >= deadline {
                self.sink.notice(&Notice::Warning(format!(
                    "process {pid}: its watch was not armed within {}s; letting it run on \
                     (its writes until the watch is armed are not counted)",
                    ARM_TIMEOUT.as_secs()
                )))?;
                break;
            }
            if self.runs[index]
                .as_ref()
                .is_some_and(|r| r.thread.is_finished())
            {
                // Refused (its error is the run's result) or ended.
                self.end_run(index)?;
                break;
            }
            if let Ok(item) = from.recv_timeout(EVENT_WAIT) {
                self.forwarded(item)?;
            }
            self.take_forwarded(from)?;
        }
        if stop_mode {
            // Armed in every thread: the group-stop the hand-over left ends.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        Ok(defined.len() == self.specs.len())
    }

    fn run_of(&self, pid: i32) -> Option<usize> {
        self.runs
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.pid == pid))
    }

    /// Ends the watcher of `pid`, if it has one.
    fn end_process(&mut self, pid: i32, from: &mpsc::Receiver<Forwarded>) -> Result<()> {
        if let Some(index) = self.run_of(pid) {
            self.end_run(index)?;
            self.take_forwarded(from)?;
        }
        Ok(())
    }

    fn finish(&mut self, index: usize, from: &mpsc::Receiver<Forwarded>) -> Result<()> {
        if self.runs[index].is_some() {
            self.end_run(index)?;
        }
        self.take_forwarded(from)
    }

    /// Stops run `index`, waits for it (its events closed, registers freed) and adds its
    /// totals.
    fn end_run(&mut self, index: usize) -> Result<()> {
        let Some(run) = self.runs[index].take() else {
            return Ok(());
        };
        run.stop.stop();
        let summary = run
            .thread
            .join()
            .unwrap_or_else(|_| Err(Error::new(ErrorKind::Kernel, "a watcher thread panicked")))?;
        self.lost_records += summary.lost_records;
        self.queue_dropped += summary.queue_dropped;
        self.throttled += summary.throttled;
        self.watched.insert(run.pid);
        let row = self.row(run.pid, None);
        for (local, totals) in summary.watchpoints.iter().enumerate() {
            row.hits[run.ids[local].0] += totals.hits;
        }
        for (local, totals) in summary.watchpoints.into_iter().enumerate() {
            let global = run.ids[local].0;
            match &mut self.totals[global] {
                slot @ None => {
                    *slot = Some(WatchTotals {
                        id: WatchId(global),
                        ..totals
                    })
                }
                Some(sum) => add_totals(sum, &totals),
            }
        }
        Ok(())
    }

    /// Passes on what the watchers sent.
    fn take_forwarded(&mut self, from: &mpsc::Receiver<Forwarded>) -> Result<()> {
        while let Ok(item) = from.try_recv() {
            self.forwarded(item)?;
        }
        Ok(())
    }

    /// Passes on one thing a watcher sent.
    fn forwarded(&mut self, item: Forwarded) -> Result<()> {
        {
            match item {
                Forwarded::Armed(run) => {
                    self.armed.insert(run);
                }
                Forwarded::Hit(hit) => {
                    if self.limit_reached {
                        return Ok(());
                    }
                    self.reported += 1;
                    let flow = self.sink.hit(&hit, &self.watches[hit.watch.0])?;
                    if flow.is_break() || self.max_hits.is_some_and(|m| self.reported >= m) {
                        self.limit_reached = true;
                    }
                }
                Forwarded::Notice(notice) => {
                    let text = format!("{notice:?}");
                    let repeated = matches!(notice, Notice::Engine(_) | Notice::Rotation(_))
                        && !self.said.insert(text);
                    if !repeated {
                        self.sink.notice(&notice)?;
                    }
                }
                Forwarded::Counts(run, counts) => {
                    self.counts.insert(run, counts);
                    self.counts_changed()?;
                }
            }
        }
        Ok(())
    }

    /// Hands the sink every run's last counts.
    fn counts_changed(&mut self) -> Result<()> {
        {
            let mut runs: Vec<_> = self.counts.iter().collect();
            runs.sort_by_key(|(run, _)| **run);
            let all: Vec<HitCount> = runs.into_iter().flat_map(|(_, c)| c.clone()).collect();
            self.sink.counts(&all)?;
        }
        Ok(())
    }

    fn summary(
        self,
        ended_by: EndedBy,
        duration: Duration,
        command: Option<crate::summary::CommandFate>,
    ) -> Summary {
        let watchpoints: Vec<WatchTotals> = self
            .totals
            .into_iter()
            .zip(self.watches)
            .map(|(totals, watch)| totals.unwrap_or_else(|| pending_totals(watch)))
            .collect();
        let pending = watchpoints
            .iter()
            .zip(self.watches)
            .filter(|(t, _)| t.address == PENDING_ADDRESS)
            .map(|(_, w)| w.label.to_string())
            .collect();
        Summary {
            kind: SummaryKind::Summary,
            watchpoints,
            lost_records: self.lost_records,
            queue_dropped: self.queue_dropped,
            queue_peak_bytes: 0,
            throttled: self.throttled,
            stray_traps: 0,
            handler: None,
            duration_s: duration.as_secs_f64(),
            ended_by,
            command,
            processes: self
                .rows
                .into_iter()
                .filter(|r| self.watched.contains(&r.pid))
                .collect(),
            pending,
        }
    }
}

/// The address column of a watch that never armed.
const PENDING_ADDRESS: &str = "pending";

/// The totals of a watch no process defined.
fn pending_totals(watch: &PlannedWatch) -> WatchTotals {
    WatchTotals::exact(watch, PENDING_ADDRESS.to_owned(), 0, 0, 0)
}

/// Adds another process's totals of the same watch (the address stays the first one's).
fn add_totals(sum: &mut WatchTotals, more: &WatchTotals) {
    sum.hits += more.hits;
    sum.reported += more.reported;
    sum.lost += more.lost;
    if sum.placement != more.placement {
        sum.placement = Placement::Mixed;
    }
    let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    sum.hits_seen = add(sum.hits_seen, more.hits_seen);
    sum.estimate = add(sum.estimate, more.estimate);
    sum.lower_bound |= more.lower_bound;
    for member in &more.never_armed {
        if !sum.never_armed.contains(member) {
            sum.never_armed.push(member.clone());
        }
    }
}

/// The program process `pid` runs (`/proc/PID/exe`), or its pid.
fn program_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_or_else(|_| format!("pid {pid}"), |p| p.display().to_string())
}

/// Where the dynamic linker of `pid` tells a debugger that libraries changed; `None` for a
/// program without one (static).
fn loader_notify_address(pid: i32) -> Option<u64> {
    let symbols = ProcessSymbols::load(pid as u32).ok()?;
    symbols.resolve(LOADER_NOTIFY_SYMBOL).ok().map(|s| s.addr)
}

/// Waits (1 s at most) until process `pid` is in a stop (`T` in `/proc/PID/stat`).
fn wait_until_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let stopped = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().next().map(|state| state == "T")
            })
            .unwrap_or(true);
        if stopped {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
