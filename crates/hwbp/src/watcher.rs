//! [`Watcher`]: runs a [`WatchPlan`] to its end in one of two modes and delivers typed
//! [`Hit`](crate::Hit)s to a [`HitSink`], then returns the [`Summary`]:
//!
//! - [`Mode::Perf`]: perf breakpoint events (`perf_event_open(PERF_TYPE_BREAKPOINT)`); the
//!   target never stops (the `perf` module: a drain thread, a bounded queue, the BPF hit handler);
//! - [`Mode::Stop`]: the ptrace debug registers of every thread; each accessing thread stops
//!   at the hit for exact values, then runs on (the `stop` module).
//!
//! A [`StopHandle`] ends a run from anywhere (a Ctrl-C handler, another thread); so do the
//! duration, the hit limit and the sink's `Break`. However it ends, every debug register is
//! freed and the target runs on; a command the run launched is ended with it unless
//! [`WatchOptions::keep_running`] (`crate::launched`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::condition::Condition;
use crate::error::{Error, Result};
use crate::plan::WatchPlan;
use crate::queue::DEFAULT_QUEUE_BYTES;
use crate::sink::HitSink;
use crate::summary::Summary;

/// How hits are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Perf breakpoint events: the target never stops; values come from the in-kernel BPF
    /// handler (exact), else from the trapping store or read after the hit.
    #[default]
    Perf,
    /// ptrace debug registers: the accessing thread stops at each hit; values are exact.
    Stop,
}

/// How a callchain's user frames are found (perf's `--call-graph fp|dwarf[,SIZE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallGraph {
    /// Walk `rbp` frame records (`bpf_get_stack`, `PERF_SAMPLE_CALLCHAIN`): cheap, but code
    /// built without frame pointers (Debian's libc, `-O1` and up) loses its callers.
    FramePointers,
    /// Copy the user registers and `stack_bytes` of the user stack at each hit and unwind them
    /// with each image's `.eh_frame`/`.debug_frame` (framehop): the chain reaches as far as
    /// those bytes hold frames.
    Dwarf {
        /// Bytes of stack copied per hit, a multiple of 8 from 8 to 65528.
        stack_bytes: u32,
    },
}

/// Stack bytes copied per hit by default: perf's `--call-graph dwarf` default, 8 KiB.
pub const DEFAULT_STACK_BYTES: u32 = 8192;

impl Default for CallGraph {
    fn default() -> Self {
        CallGraph::Dwarf {
            stack_bytes: DEFAULT_STACK_BYTES,
        }
    }
}

impl CallGraph {
    /// Parses `fp`, `dwarf` or `dwarf,SIZE` (bytes; a multiple of 8, 8 to 65528), as perf's
    /// `--call-graph` takes them.
    pub fn parse(text: &str) -> std::result::Result<CallGraph, String> {
        let (mode, size) = match text.split_once(',') {
            Some((mode, size)) => (mode, Some(size)),
            None => (text, None),
        };
        match (mode, size) {
            ("fp", None) => Ok(CallGraph::FramePointers),
            ("dwarf", None) => Ok(CallGraph::default()),
            ("dwarf", Some(size)) => match size.parse::<u32>() {
                Ok(n) if n % 8 == 0 && (8..=65528).contains(&n) => {
                    Ok(CallGraph::Dwarf { stack_bytes: n })
                }
                _ => Err(format!(
                    "stack size '{size}': needs a multiple of 8 from 8 to 65528 bytes, e.g. \
                     dwarf,8192"
                )),
            },
            _ => Err(format!(
                "call graph '{text}': use fp, dwarf or dwarf,SIZE (bytes of stack per hit)"
            )),
        }
    }

    /// Stack bytes copied per hit (0 for frame pointers).
    pub fn stack_bytes(self) -> u32 {
        match self {
            CallGraph::FramePointers => 0,
            CallGraph::Dwarf { stack_bytes } => stack_bytes,
        }
    }
}

/// How to run; the defaults suit `hwbp watch`.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Perf events or stop mode.
    pub mode: Mode,
    /// Sample callchains: the kernel frames of a kernel-mode access, then the user frames as
    /// [`call_graph`](Self::call_graph) says.
    pub callchain: bool,
    /// How `callchain` finds the user frames: the unwind tables over the stack bytes copied at
    /// the hit (the default), or frame pointers.
    pub call_graph: CallGraph,
    /// End after this many reported hits.
    pub max_hits: Option<u64>,
    /// End after this long.
    pub duration: Option<Duration>,
    /// Data pages per CPU ring (perf mode; a power of two).
    pub ring_pages: usize,
    /// Most bytes of hits held between the rings and the sink (perf mode): past it, hits are
    /// counted as lost. Default [`DEFAULT_QUEUE_BYTES`] (256 MiB).
    pub queue_bytes: usize,
    /// Resolve each hit's accessing instruction to `function+off (file:line)`.
    pub symbolize: bool,
    /// Read the watched value at each hit.
    pub read_values: bool,
    /// Report only hits that changed the value (gdb's `watch`). Stop mode, or perf mode with
    /// the in-kernel handler (filtered in the kernel).
    pub changes_only: bool,
    /// Report only hits whose new value satisfies this. Stop mode, or perf mode with the
    /// in-kernel handler.
    pub condition: Option<Condition>,
    /// Perf mode: read values (and filter, and count) with the in-kernel BPF hit handler when
    /// this process may load it (root, or CAP_BPF + CAP_PERFMON); else, or when false, from
    /// perf samples (the stored value decoded from the trapping `mov`, else read after).
    pub use_bpf: bool,
    /// Perf mode with the handler: count hits per (piece, thread, instruction) in the kernel
    /// and deliver them to [`crate::HitSink::counts`] at each interval and at
    /// the end, instead of one [`Hit`](crate::Hit) each (`hwbp stat`). Without the handler,
    /// hits are delivered one by one as usual.
    pub aggregate: bool,
    /// Deliver [`crate::Progress`] counts this often (perf mode).
    pub interval: Option<Duration>,
    /// When the run ends before a launched command ([`crate::Target::Launch`]) does, leave the
    /// command running, detached, instead of ending it (SIGTERM, then SIGKILL after
    /// `hwbp_linux::ending::END_GRACE`, and waiting for it). Processes the run attached to are
    /// never ended. [`crate::Summary::command`] says what became of the command.
    pub keep_running: bool,
    /// For a local's watch: end after this many frames were watched (each frame of the
    /// function is its own instance; `None`: every frame until the run ends).
    pub frames: Option<u64>,
    /// Perf mode with the in-kernel handler: the most characters of a `char *` watch's string
    /// the handler reads at each hit, at the trap (1 to
    /// [`hwbp_linux::bpf::handler::MAX_STRING_CHARS`]; default gdb's `print elements`, 200).
    pub string_chars: u32,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            mode: Mode::Perf,
            callchain: false,
            call_graph: CallGraph::default(),
            max_hits: None,
            duration: None,
            ring_pages: 256,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            symbolize: true,
            read_values: true,
            changes_only: false,
            condition: None,
            use_bpf: true,
            aggregate: false,
            interval: None,
            keep_running: false,
            frames: None,
            string_chars: hwbp_linux::bpf::handler::DEFAULT_STRING_CHARS,
        }
    }
}

/// Ends a run from any thread (also from a signal handler: it only stores a flag).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A handle not yet stopped.
    pub fn new() -> StopHandle {
        StopHandle::default()
    }

    /// Asks the run to end; it does so within about 10 ms, with its summary.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs a plan; see the module docs.
#[derive(Debug)]
pub struct Watcher {
    plan: WatchPlan,
    options: WatchOptions,
    stop: StopHandle,
}

impl Watcher {
    /// A watcher for `plan`. Building it cannot fail; [`run`](Self::run) checks the options
    /// against the plan before arming anything.
    pub fn new(plan: WatchPlan, options: WatchOptions) -> Watcher {
        Watcher {
            plan,
            options,
            stop: StopHandle::new(),
        }
    }

    /// Uses `stop` to end the run (e.g. one shared with a Ctrl-C handler).
    pub fn with_stop_handle(mut self, stop: StopHandle) -> Watcher {
        self.stop = stop;
        self
    }

    /// A handle that ends the run.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The plan.
    pub fn plan(&self) -> &WatchPlan {
        &self.plan
    }

    /// The options.
    pub fn options(&self) -> &WatchOptions {
        &self.options
    }

    /// Arms the watches, delivers every hit to `sink` until the run ends, frees every register
    /// and returns the summary. Call it on the thread that built the plan when the target is a
    /// launched command (ptrace ties the command to that thread).
    pub fn run(self, mut sink: impl HitSink) -> Result<Summary> {
        let Watcher {
            plan,
            options,
            stop,
        } = self;
        check(&plan, &options)?;
        if plan.is_pending() {
            // Watches waiting for their image in the launched command's tree (crate::tree).
            return crate::tree::run(plan, &options, &stop, &mut sink);
        }
        if let Some(condition) = options.condition {
            for watch in plan.watches() {
                for (i, piece) in watch.pieces.iter().enumerate() {
                    condition.check_fits(piece.len, i, &watch.label)?;
                }
            }
            for watch in plan.watches() {
                if let Some(text) = condition.untyped_notice(watch) {
                    sink.notice(&crate::sink::Notice::Warning(text))?;
                }
            }
        }
        match options.mode {
            Mode::Perf => crate::perf::run(plan, &options, &stop, &mut sink),
            Mode::Stop => crate::stop::run(plan, &options, &stop, &mut sink),
        }
    }
}

/// Option checks that need the plan, before anything is armed.
fn check(plan: &WatchPlan, options: &WatchOptions) -> Result<()> {
    if let Some(w) = plan.watches().iter().find(|w| w.local.is_some()) {
        if options.mode != Mode::Stop {
            return Err(Error::bad_input(format!(
                "watch '{}': a local is watched in stop mode only for now: add --stop",
                w.label
            )));
        }
    }
    if options.ring_pages == 0 || !options.ring_pages.is_power_of_two() {
        return Err(Error::bad_input(format!(
            "--ring-pages {} is not a power of two: use e.g. 64, 256 or 1024",
            options.ring_pages
        )));
    }
    if options.queue_bytes == 0 {
        return Err(Error::bad_input(
            "--queue-size 0: hits need room between the kernel and the output, e.g. \
             --queue-size 256M",
        ));
    }
    if let Some(d) = options.duration {
        if d.is_zero() {
            return Err(Error::bad_input(
                "--duration 0: give a positive number of seconds, e.g. --duration 5",
            ));
        }
    }
    if options.mode == Mode::Perf
        && (options.changes_only || options.condition.is_some())
        && !options.use_bpf
    {
        return Err(Error::bad_input(
            "--changes-only and --if without --stop need the in-kernel BPF handler, which is \
             turned off: turn it on, or add --stop",
        ));
    }
    if options.mode == Mode::Stop && plan.options.flexible {
        return Err(Error::bad_input(
            "--flexible rotates perf-event watches; --stop uses the thread's own debug \
             registers, which do not rotate: drop one of them",
        ));
    }
    Ok(())
}

/// `CLOCK_MONOTONIC` now, in ns: the clock of perf sample times
/// (`hwbp_linux::perf::attr::SAMPLE_CLOCK`).
pub(crate) fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}
