//! How a run is taken, given to the engines: [`WatchOptions`], [`Mode`], [`CallGraph`], and the
//! [`StopHandle`] that ends a run from anywhere. Plain data, below every engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::condition::Condition;
use crate::queue::DEFAULT_QUEUE_BYTES;

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
