//! Slot constraints: may one more hardware breakpoint be created here?
//!
//! Every CPU has a few debug-register slots (x86: 4, shared by instruction and data
//! breakpoints; arm64: separate breakpoint (BRP) and watchpoint (WRP) registers). A breakpoint
//! targets one CPU (a *CPU breakpoint*), one task on one CPU, or one task on every CPU. The
//! kernel refuses a breakpoint with `ENOSPC` when, in the worst case, the slots it could need
//! on some CPU are already taken. This module reproduces that decision without a kernel
//! (`kernel/events/hw_breakpoint.c`, `__reserve_bp_slot` and `max_bp_pinned_slots`) and
//! explains every refusal with the numbers behind it ([`Refusal`]).
//!
//! # Views and the check
//! For a request of slot type `t` (pool `t`; one shared pool on x86) with weight `w`:
//! - a CPU breakpoint on CPU `c` must fit next to **the busiest task** on `c`:
//!   `busy = cpu_pinned[t][c] + max over tasks T of task_pinned(T, c, t)`;
//! - a task breakpoint of task `T` on CPU `c`: `busy = cpu_pinned[t][c] + task_pinned(T, c, t)`;
//! - a task breakpoint on all CPUs must fit on **every** CPU: `busy = max over c of` the above.
//!
//! `task_pinned(T, c, t)` counts T's breakpoints of type `t` bound to `c` or to all CPUs. The
//! request fits when `busy + w <= slots(t)`.
//!
//! # Policies
//! [`Policy::Mainline`] is today's kernel (6.1+): flexible breakpoints are counted as pinned
//! (they are not guaranteed to be scheduled before pinned ones), `bp_type` `EMPTY` (0) and
//! `INVALID` (7) get `EINVAL` before any slot is counted, every *possible* CPU (`0..cpus`) is
//! checked for all-CPU targets, and [`ConstraintEngine::modify`] re-reserves only when the
//! `bp_type` value changes (release old, reserve new, roll back on failure).
//!
//! [`Policy::Seed`] is the design of the 2009 rewrite of hw-breakpoints on perf counters
//! (seed thread, commit 24f1e32c60c4): flexible breakpoints share rotating slots, and while a
//! flexible breakpoint exists in a view it keeps one slot free from pinned ones:
//! - a **pinned** request fits when `busy + w + (any flexible in the view ? 1 : 0) <= slots`;
//! - a **flexible** request fits when `busy + 1 <= slots` (it needs one rotating slot; its
//!   weight does not enter the check, and pinned counts exclude flexible breakpoints).
//!
//! "In the view" means: for a task `T` on CPU `c`, a flexible CPU breakpoint on `c` or a
//! flexible breakpoint of `T` active on `c`; for a CPU breakpoint on `c`, the worst case over
//! the tasks: `cpu_pinned + max over T of (task_pinned(T) + flag(T))`, where `flag(T)` is 1
//! when `c` has a flexible CPU breakpoint or `T` has a flexible breakpoint on `c` (and a lone
//! flexible CPU breakpoint counts 1 even with no task).
//!
//! Relation to the seed's check, `if (slots.pinned + (!!slots.flexible) == HBP_NUM) return
//! -ENOSPC` for a pinned counter and `if (!slots.flexible && slots.pinned == HBP_NUM)` for a
//! flexible one: for weight 1, `pinned + !!flexible == HBP_NUM` is the boundary case of
//! `pinned + 1 + !!flexible > HBP_NUM` (the counters never exceed it), so the pinned rule is the
//! same check written as an inequality, extended to weights and to per-type pools. The flexible
//! rule differs in one way: the seed let a flexible counter "join the party" whenever any
//! flexible one existed; here it must still find `busy + 1 <= slots` in its own view. In the
//! seed's single per-CPU view the two agree (an existing flexible counter already guarantees
//! that room); with per-task views, checking the request's own view is what keeps the
//! invariant `busy + flag <= slots` true in every view, so a modify can always roll back. The
//! seed also counted per CPU only (`max_task_bp_pinned` for every target) over *online* CPUs,
//! whereas this policy uses the per-task views of later kernels and all configured CPUs.
//!
//! # Engines
//! [`ConstraintEngine`] keeps the kernel's counters and histograms (see [`engine`]); the
//! [`BruteForceEngine`] recomputes every number by scanning and is the reference the property
//! tests compare against. Both implement [`SlotAccounting`]. [`scenario`] is the text language
//! of `hwbp constraints`.
//!
//! # Known limitations
//! - No CPU hotplug: all `0..cpus` CPUs are always present.
//! - A seed flexible breakpoint heavier than 1 is not protected: the rotating reserve is one
//!   slot, as in the seed, which predates weights.
#![forbid(unsafe_code)]

pub mod brute;
pub mod engine;
pub mod refusal;
pub mod scenario;
mod types;

#[cfg(test)]
mod tests;
pub use brute::BruteForceEngine;
pub use engine::ConstraintEngine;
pub use refusal::{Errno, InvalidRequest, Refusal, RefusalDisplay, ShortageTarget, SlotShortage};
pub use types::{
    BreakpointId, BreakpointRequest, CpuTarget, EngineConfig, Policy, SlotPools, SlotType, TaskId,
};

use crate::BpType;

/// The operations both engines offer, so tests (and callers) can swap them.
pub trait SlotAccounting {
    /// Reserves slots for a breakpoint, or says why not.
    fn reserve(&mut self, req: &BreakpointRequest) -> Result<BreakpointId, Refusal>;
    /// Releases a breakpoint; `None` if the id is not reserved.
    fn release(&mut self, id: BreakpointId) -> Option<BreakpointRequest>;
    /// Changes a breakpoint's `bp_type`, rolling back on failure.
    fn modify(&mut self, id: BreakpointId, new_type: BpType) -> Result<(), Refusal>;
    /// Free slots for one more weight-1 pinned breakpoint of `slot_type` at this target.
    fn free_slots(&self, cpu: CpuTarget, task: Option<TaskId>, slot_type: SlotType) -> u32;
}

/// The `EINVAL` checks made before any slot is counted, in the kernel's order: the target
/// (`perf_event_open`'s pid/cpu checks), then the type (`__reserve_bp_slot`).
fn validate(
    config: &EngineConfig,
    req: &BreakpointRequest,
    bp_type: BpType,
) -> Result<(), Refusal> {
    let invalid = |why| Err(Refusal::Invalid(why));
    match req.cpu {
        CpuTarget::One(cpu) if cpu >= config.cpus => {
            return invalid(InvalidRequest::CpuOutOfRange {
                cpu,
                cpus: config.cpus,
            })
        }
        CpuTarget::All if req.task.is_none() => return invalid(InvalidRequest::AllCpusWithoutTask),
        CpuTarget::All if config.cpus == 0 => {
            return invalid(InvalidRequest::CpuOutOfRange { cpu: 0, cpus: 0 })
        }
        _ => {}
    }
    if req.weight == 0 {
        return invalid(InvalidRequest::ZeroWeight);
    }
    if bp_type == BpType::EMPTY || bp_type == BpType::INVALID {
        return invalid(InvalidRequest::BadType(bp_type));
    }
    Ok(())
}
