//! Where the perf engine's events go: the session's scopes and the trial-open targets for a
//! planned target, the placement of the plan's pieces on the registers free now, and the
//! process of a thread a CPU-wide watch saw.

use hwbp_linux::probe;
use hwbp_linux::session::EventScope;
use hwbp_linux::sys::perf::EventTarget;

use crate::error::Result;
use crate::plan::{PlannedTarget, WatchPlan};
use crate::rotation::PiecePlacement;

/// The session's scopes for the target.
pub(super) fn scopes(target: &PlannedTarget) -> Vec<EventScope> {
    match target {
        PlannedTarget::Threads { tids, .. } => {
            tids.iter().map(|t| EventScope::Thread(*t)).collect()
        }
        PlannedTarget::Cpus { cpus, .. } => cpus.iter().map(|c| EventScope::Cpu(*c)).collect(),
    }
}

/// The trial-open targets for counting free registers.
pub(super) fn event_targets(target: &PlannedTarget) -> Vec<EventTarget> {
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
pub(super) const LAUNCHED_FIRST_ROUND_NS: u64 = 250_000;

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

/// The process of thread `tid` (CPU-wide watches see any process): `Tgid` of
/// `/proc/TID/status` while the thread lives, else the thread id.
pub(super) fn process_of(tid: i32) -> i32 {
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
