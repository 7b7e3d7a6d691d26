//! Which engine runs a resolved plan: perf events ([`Mode::Perf`], `crate::perf`), the
//! ptrace debug registers ([`Mode::Stop`], `crate::stop`), or, for a plan that watches a
//! function's local (either mode), the frame-by-frame tracer of `crate::local`.
//! The watcher and each process of a tree (`crate::tree`) start a run here.

use crate::error::Result;
use crate::options::{Mode, StopHandle, WatchOptions};
use crate::plan::WatchPlan;
use crate::sink::HitSink;
use crate::summary::Summary;

/// Runs `plan` to its end with the engine `opts.mode` and the plan choose.
pub(crate) fn run(
    plan: WatchPlan,
    opts: &WatchOptions,
    stop: &StopHandle,
    sink: &mut dyn HitSink,
) -> Result<Summary> {
    if plan.watches.iter().any(|w| w.local.is_some()) {
        // A local's frames, in either mode: the entry and the return by ptrace; the writes
        // stop the thread (`--stop`) or are perf events with the BPF hit handler.
        return crate::local::run(plan, opts, stop, sink);
    }
    match opts.mode {
        Mode::Perf => crate::perf::run(plan, opts, stop, sink),
        Mode::Stop => crate::stop::run(plan, opts, stop, sink),
    }
}
