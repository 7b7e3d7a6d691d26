//! [`HitSink`]: where a watcher delivers hits, start-up notices and interval progress, in the
//! caller's thread. One required method, which gets each hit with its [`PlannedWatch`] (label,
//! address, type: no copy of the plan needed); [`from_fn`] turns a closure into a sink. A sink
//! says whether to go on with [`ControlFlow`], and its errors ([`crate::Error`]; an
//! `io::Error` converts with `?`, as [`ErrorKind::Output`](crate::ErrorKind::Output)) end the
//! run (a closed pipe is a normal end for a CLI).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use hwbp_symbols::cache::CodeInfo;

use crate::error::Result;
use crate::hit::{Hit, WatchId};
use crate::plan::PlannedWatch;
use crate::scope::ScopeEvent;

/// Something the watcher says about the run, apart from hits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Every watch is armed and the target runs: `description` names what is watched.
    Armed {
        /// E.g. `2 watchpoints on process 1234 (3 threads and threads it creates)`.
        description: String,
    },
    /// Some pieces take turns on the debug registers (the plan in words).
    Rotation(String),
    /// Which engine reads the values and why (e.g. perf samples, or stop mode).
    Engine(String),
    /// CPU hotplug, a rotation stopped, a thread that could not be armed: the run goes on.
    Warning(String),
    /// The run ended before the launched command and, as asked
    /// ([`crate::WatchOptions::keep_running`]), left it running, detached.
    CommandKeptRunning {
        /// The command's process id.
        pid: i32,
    },
}

/// Counts so far, at each interval (`WatchOptions::interval`).
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    /// Time since arming.
    pub elapsed: Duration,
    /// Accesses so far per watch (plan order): the kernel's exact counts where every piece of
    /// the watch kept a register, else the hits received.
    pub counts: &'a [u64],
    /// The plan's watches, in the order of `counts`.
    pub watches: &'a [PlannedWatch],
}

/// Hits of one watch piece by one thread at one instruction, counted in the kernel
/// ([`crate::WatchOptions::aggregate`]): what `hwbp stat` builds its per-thread and
/// per-function tables from.
#[derive(Debug, Clone)]
pub struct HitCount {
    /// The watch.
    pub watch: WatchId,
    /// The member (or byte offset) of the piece, for watches over several pieces.
    pub member: Option<Arc<str>>,
    /// Process id (the target's; for CPU-wide watches the thread's process while it lives,
    /// else the thread id).
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The thread's name (its last known one).
    pub comm: Arc<str>,
    /// The reported address is in the kernel (a kernel-mode access such as `read(2)`).
    pub kernel: bool,
    /// The address the CPU reported (on x86 the instruction after a data access).
    pub ip: u64,
    /// The accessing instruction, resolved where hwbp could.
    pub code: Arc<CodeInfo>,
    /// Hits since arming.
    pub count: u64,
}

/// Receives what a watcher produces.
pub trait HitSink {
    /// One hit of `watch` (the plan's watch [`Hit::watch`] names). `Break` ends the run (the
    /// summary still comes).
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> Result<ControlFlow<()>>;

    /// A notice; ignored by default.
    fn notice(&mut self, _notice: &Notice) -> Result<()> {
        Ok(())
    }

    /// Interval counts; ignored by default.
    fn progress(&mut self, _progress: &Progress<'_>) -> Result<()> {
        Ok(())
    }

    /// Called when the watcher has nothing to deliver for a moment (a good time to flush
    /// buffered output); ignored by default.
    fn idle(&mut self) -> Result<()> {
        Ok(())
    }

    /// Aggregated mode ([`crate::WatchOptions::aggregate`] with the in-kernel handler): every
    /// count since arming, per (watch piece, thread, instruction), at each interval and once
    /// at the end (the last call holds the totals). Those hits are not delivered to
    /// [`hit`](Self::hit). Ignored by default.
    fn counts(&mut self, _counts: &[HitCount]) -> Result<()> {
        Ok(())
    }

    /// A watched local's frame ended ([`crate::local`]); ignored by default.
    fn scope(&mut self, _event: &ScopeEvent) -> Result<()> {
        Ok(())
    }
}

impl<S: HitSink + ?Sized> HitSink for &mut S {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> Result<ControlFlow<()>> {
        (**self).hit(hit, watch)
    }
    fn notice(&mut self, notice: &Notice) -> Result<()> {
        (**self).notice(notice)
    }
    fn progress(&mut self, progress: &Progress<'_>) -> Result<()> {
        (**self).progress(progress)
    }
    fn idle(&mut self) -> Result<()> {
        (**self).idle()
    }
    fn counts(&mut self, counts: &[HitCount]) -> Result<()> {
        (**self).counts(counts)
    }
    fn scope(&mut self, event: &ScopeEvent) -> Result<()> {
        (**self).scope(event)
    }
}

/// A sink made from a closure over hits; see [`from_fn`].
pub struct FnSink<F>(F);

impl<F: FnMut(&Hit, &PlannedWatch) -> Result<ControlFlow<()>>> HitSink for FnSink<F> {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> Result<ControlFlow<()>> {
        (self.0)(hit, watch)
    }
}

/// A sink that calls `f` for every hit, with its watch.
pub fn from_fn<F: FnMut(&Hit, &PlannedWatch) -> Result<ControlFlow<()>>>(f: F) -> FnSink<F> {
    FnSink(f)
}
