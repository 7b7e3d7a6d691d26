//! The fast constraint engine: counters and histograms kept up to date on every reserve and
//! release, the way `kernel/events/hw_breakpoint.c` keeps `bp_cpuinfo`, `tsk_pinned` and
//! `tsk_pinned_all`, so that a check never rescans the breakpoints.
//!
//! Per slot pool it keeps:
//! - `cpu_pinned[cpu]`: weight held by CPU breakpoints (kernel `bp_cpuinfo.cpu_pinned`), and a
//!   histogram of those values over CPUs (kernel `cpu_pinned[type]`), for the task-on-all-CPUs
//!   fast path;
//! - `task_pinned[cpu]`: a histogram "how many tasks hold k slots on this CPU" (kernel
//!   `bp_cpuinfo.tsk_pinned`) for tasks with at least one CPU-bound breakpoint, and
//!   `task_pinned_all`, the same for tasks whose breakpoints all follow them on every CPU
//!   (kernel `tsk_pinned_all`), so those tasks cost O(1) per update instead of O(CPUs);
//! - per task and CPU: the slots the task holds there (kernel: `task_bp_pinned`, computed from
//!   the `task_bps_ht` list; here a per-task per-CPU counter).
//!
//! The seed policy adds flexible counters and the "loaded" histograms (pinned count plus one
//! when a flexible breakpoint of the same view exists).
//!
//! Checks cost O(slots) for one-CPU targets and O(slots) or O(CPUs) for all-CPU targets. Only
//! building the explanation of an `ENOSPC` scans the tasks (to name the busiest) or the CPUs (to
//! name the fullest).

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::refusal::{InvalidRequest, Refusal, ShortageTarget, SlotShortage};
use super::types::{
    BreakpointId, BreakpointRequest, CpuTarget, EngineConfig, Policy, SlotType, TaskId,
};
use super::{validate, SlotAccounting};
use crate::BpType;

/// Counts of "how many members hold exactly k slots", k >= 1 (members holding 0 are not
/// counted; the maximum of an empty histogram is 0).
#[derive(Clone, Debug, Default)]
struct Histogram(Vec<u32>);

impl Histogram {
    fn add(&mut self, k: u32) {
        if k == 0 {
            return;
        }
        let k = k as usize;
        if k >= self.0.len() {
            self.0.resize(k + 1, 0);
        }
        self.0[k] += 1;
    }

    fn remove(&mut self, k: u32) {
        if k == 0 {
            return;
        }
        self.0[k as usize] -= 1;
    }

    fn max(&self) -> u32 {
        self.0.iter().rposition(|&n| n > 0).map_or(0, |k| k as u32)
    }
}

/// One slot pool's counters across all CPUs.
#[derive(Clone, Debug)]
struct PoolCounters {
    cpu_pinned: Vec<u32>,
    cpu_flexible: Vec<u32>,
    /// Over CPUs: `cpu_pinned[c]`.
    cpu_pinned_hist: Histogram,
    /// Over CPUs: `cpu_pinned[c] + (cpu_flexible[c] > 0)`.
    cpu_loaded_hist: Histogram,
    /// Per CPU, over CPU-bound tasks: pinned slots the task holds on that CPU.
    task_pinned: Vec<Histogram>,
    /// Per CPU, over CPU-bound tasks: pinned + (task has a flexible breakpoint there).
    task_loaded: Vec<Histogram>,
    /// Over tasks with only all-CPU breakpoints: their pinned slots (the same on every CPU).
    task_pinned_all: Histogram,
    /// Over tasks with only all-CPU breakpoints: pinned + (has a flexible one).
    task_loaded_all: Histogram,
}

impl PoolCounters {
    fn new(cpus: usize) -> Self {
        PoolCounters {
            cpu_pinned: vec![0; cpus],
            cpu_flexible: vec![0; cpus],
            cpu_pinned_hist: Histogram::default(),
            cpu_loaded_hist: Histogram::default(),
            task_pinned: vec![Histogram::default(); cpus],
            task_loaded: vec![Histogram::default(); cpus],
            task_pinned_all: Histogram::default(),
            task_loaded_all: Histogram::default(),
        }
    }

    fn cpu_loaded(&self, c: usize) -> u32 {
        self.cpu_pinned[c] + u32::from(self.cpu_flexible[c] > 0)
    }

    fn max_task_pinned(&self, c: usize) -> u32 {
        self.task_pinned[c].max().max(self.task_pinned_all.max())
    }

    fn max_task_loaded(&self, c: usize) -> u32 {
        self.task_loaded[c].max().max(self.task_loaded_all.max())
    }
}

/// One task's holdings in one pool.
#[derive(Clone, Debug, Default)]
struct TaskPool {
    /// Weight of pinned breakpoints on all CPUs.
    pinned_all: u32,
    /// Number of flexible breakpoints on all CPUs (seed policy only).
    flexible_all: u32,
    /// Weight of pinned breakpoints bound to each CPU (empty until the first CPU-bound one).
    pinned_on: Vec<u32>,
    /// Number of flexible breakpoints bound to each CPU.
    flexible_on: Vec<u32>,
    /// Number of CPU-bound breakpoints (pinned or flexible); 0 means "CPU-independent".
    cpu_bound: u32,
}

impl TaskPool {
    fn pinned(&self, c: usize) -> u32 {
        self.pinned_all + self.pinned_on.get(c).copied().unwrap_or(0)
    }

    fn has_flexible(&self, c: usize) -> bool {
        self.flexible_all > 0 || self.flexible_on.get(c).is_some_and(|&n| n > 0)
    }

    fn loaded(&self, c: usize) -> u32 {
        self.pinned(c) + u32::from(self.has_flexible(c))
    }

    fn loaded_all(&self) -> u32 {
        self.pinned_all + u32::from(self.flexible_all > 0)
    }

    fn apply(&mut self, cpu: CpuTarget, weight: u32, flexible: bool, enable: bool, cpus: usize) {
        let add = |v: &mut u32, d: u32| {
            if enable {
                *v += d
            } else {
                *v -= d
            }
        };
        match cpu {
            CpuTarget::All if flexible => add(&mut self.flexible_all, 1),
            CpuTarget::All => add(&mut self.pinned_all, weight),
            CpuTarget::One(c) => {
                if self.pinned_on.is_empty() {
                    self.pinned_on = vec![0; cpus];
                    self.flexible_on = vec![0; cpus];
                }
                let c = c as usize;
                if flexible {
                    add(&mut self.flexible_on[c], 1);
                } else {
                    add(&mut self.pinned_on[c], weight);
                }
                add(&mut self.cpu_bound, 1);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct TaskState {
    pools: [TaskPool; 2],
    breakpoints: u32,
}

#[derive(Clone, Copy, Debug)]
struct Reserved {
    request: BreakpointRequest,
    /// Flexible as the policy counts it (always false under mainline).
    counted_flexible: bool,
}

/// The slot-constraint engine: reserve, release and modify breakpoints against per-CPU slot
/// pools, following `kernel/events/hw_breakpoint.c` (see the [module docs](super)).
#[derive(Clone, Debug)]
pub struct ConstraintEngine {
    config: EngineConfig,
    pools: Vec<PoolCounters>,
    tasks: BTreeMap<TaskId, TaskState>,
    reserved: Vec<Option<Reserved>>,
}

/// How one check is counted: which pool, whether the flexible reserve applies, what is needed.
#[derive(Clone, Copy, Debug)]
pub(super) struct CheckShape {
    pub(super) slot_type: SlotType,
    pub(super) pool: usize,
    pub(super) slots: u32,
    /// Seed policy, pinned request: a flexible breakpoint in the view keeps one slot free.
    pub(super) reserve_applies: bool,
    pub(super) needed: u32,
    pub(super) flexible_request: bool,
}

impl CheckShape {
    pub(super) fn new(config: &EngineConfig, req: &BreakpointRequest, bp_type: BpType) -> Self {
        let slot_type = SlotType::of(bp_type);
        let seed_flexible = config.policy == Policy::Seed && req.flexible;
        CheckShape {
            slot_type,
            pool: config.pools.pool_of(slot_type),
            slots: config.pools.slots(slot_type),
            reserve_applies: config.policy == Policy::Seed && !req.flexible,
            needed: if seed_flexible { 1 } else { req.weight },
            flexible_request: seed_flexible,
        }
    }
}

impl ConstraintEngine {
    /// An engine with no breakpoints.
    pub fn new(config: EngineConfig) -> Self {
        let cpus = config.cpus as usize;
        ConstraintEngine {
            config,
            pools: (0..config.pools.pool_count())
                .map(|_| PoolCounters::new(cpus))
                .collect(),
            tasks: BTreeMap::new(),
            reserved: Vec::new(),
        }
    }

    /// The configuration this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The request a live breakpoint was reserved with (its `bp_type` updated by `modify`).
    pub fn get(&self, id: BreakpointId) -> Option<&BreakpointRequest> {
        self.reserved
            .get(id.0 as usize)
            .and_then(|r| r.as_ref())
            .map(|r| &r.request)
    }

    /// Reserves slots for a breakpoint (`reserve_bp_slot`), or says why not.
    pub fn reserve(&mut self, req: &BreakpointRequest) -> Result<BreakpointId, Refusal> {
        validate(&self.config, req, req.bp_type)?;
        let shape = CheckShape::new(&self.config, req, req.bp_type);
        self.check(req, &shape)?;
        let counted_flexible = shape.flexible_request;
        self.toggle(req, shape.pool, counted_flexible, true);
        let id = BreakpointId(self.reserved.len() as u32);
        self.reserved.push(Some(Reserved {
            request: *req,
            counted_flexible,
        }));
        Ok(id)
    }

    /// Releases a breakpoint's slots (`release_bp_slot`). Returns what it was, or `None` if the
    /// id is not reserved.
    pub fn release(&mut self, id: BreakpointId) -> Option<BreakpointRequest> {
        let r = self.reserved.get_mut(id.0 as usize)?.take()?;
        let pool = self.config.pools.pool_of(SlotType::of(r.request.bp_type));
        self.toggle(&r.request, pool, r.counted_flexible, false);
        Some(r.request)
    }

    /// Changes a breakpoint's `bp_type` (`modify_bp_slot`, reached through
    /// `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`). Like the kernel, it re-reserves only when the
    /// `bp_type` value changes: it releases the old reservation, reserves the new one, and on
    /// failure reserves the old one again (which always fits, as it did a moment ago) and
    /// returns the failure.
    pub fn modify(&mut self, id: BreakpointId, new_type: BpType) -> Result<(), Refusal> {
        let Some(Some(old)) = self.reserved.get(id.0 as usize).copied() else {
            return Err(Refusal::Invalid(InvalidRequest::UnknownBreakpoint(id)));
        };
        if old.request.bp_type == new_type {
            return Ok(());
        }
        let old_pool = self.config.pools.pool_of(SlotType::of(old.request.bp_type));
        self.toggle(&old.request, old_pool, old.counted_flexible, false);
        let new_req = BreakpointRequest {
            bp_type: new_type,
            ..old.request
        };
        let attempt = validate(&self.config, &new_req, new_type).and_then(|()| {
            let shape = CheckShape::new(&self.config, &new_req, new_type);
            self.check(&new_req, &shape).map(|()| shape)
        });
        match attempt {
            Ok(shape) => {
                self.toggle(&new_req, shape.pool, shape.flexible_request, true);
                self.reserved[id.0 as usize] = Some(Reserved {
                    request: new_req,
                    counted_flexible: shape.flexible_request,
                });
                Ok(())
            }
            Err(refusal) => {
                let old_shape = CheckShape::new(&self.config, &old.request, old.request.bp_type);
                debug_assert!(
                    self.check(&old.request, &old_shape).is_ok(),
                    "rolling back a modify must fit"
                );
                self.toggle(&old.request, old_pool, old.counted_flexible, true);
                Err(refusal)
            }
        }
    }

    /// Free slots for a new weight-1 pinned breakpoint of `slot_type` aimed at `cpu` and `task`
    /// (what `hwbp slots` shows). 0 for targets that could never be reserved (CPU out of range,
    /// all CPUs without a task).
    pub fn free_slots(&self, cpu: CpuTarget, task: Option<TaskId>, slot_type: SlotType) -> u32 {
        let bp_type = match slot_type {
            SlotType::Data => BpType::RW,
            SlotType::Inst => BpType::X,
        };
        let req = BreakpointRequest::pinned(cpu, task, bp_type);
        if validate(&self.config, &req, bp_type).is_err() {
            return 0;
        }
        let shape = CheckShape::new(&self.config, &req, bp_type);
        shape.slots.saturating_sub(self.busy(&req, &shape))
    }

    fn check(&self, req: &BreakpointRequest, shape: &CheckShape) -> Result<(), Refusal> {
        let busy = self.busy(req, shape);
        if busy + shape.needed <= shape.slots {
            return Ok(());
        }
        let shortage = self.explain(req, shape);
        debug_assert_eq!(
            shortage.cpu_pinned
                + shortage.busiest_task.map_or(0, |(_, n)| n)
                + shortage.flexible_reserve,
            busy,
            "explanation must add up to the failed check"
        );
        Err(Refusal::NoFreeSlot(shortage))
    }

    fn task_pool(&self, task: TaskId, pool: usize) -> Option<&TaskPool> {
        self.tasks.get(&task).map(|t| &t.pools[pool])
    }

    /// Slots already taken in the request's view (`max_bp_pinned_slots`, plus the seed's
    /// flexible reserve when it applies).
    fn busy(&self, req: &BreakpointRequest, shape: &CheckShape) -> u32 {
        let p = &self.pools[shape.pool];
        let reserve = shape.reserve_applies;
        match (req.task, req.cpu) {
            (None, CpuTarget::One(c)) => {
                let c = c as usize;
                let tasks = if !reserve {
                    p.max_task_pinned(c)
                } else if p.cpu_flexible[c] > 0 {
                    p.max_task_pinned(c) + 1
                } else {
                    p.max_task_loaded(c)
                };
                p.cpu_pinned[c] + tasks
            }
            (Some(task), CpuTarget::One(c)) => self.task_view(task, c as usize, shape),
            (Some(task), CpuTarget::All) => match self.task_pool(task, shape.pool) {
                // Fast path: the task's load is the same on every CPU.
                Some(tp) if tp.cpu_bound > 0 => (0..self.config.cpus as usize)
                    .map(|c| self.task_view(task, c, shape))
                    .max()
                    .unwrap_or(0),
                tp => {
                    let (pinned, flexible) =
                        tp.map_or((0, false), |tp| (tp.pinned_all, tp.flexible_all > 0));
                    if !reserve {
                        pinned + p.cpu_pinned_hist.max()
                    } else if flexible {
                        pinned + 1 + p.cpu_pinned_hist.max()
                    } else {
                        pinned + p.cpu_loaded_hist.max()
                    }
                }
            },
            (None, CpuTarget::All) => unreachable!("validated: all CPUs needs a task"),
        }
    }

    fn task_view(&self, task: TaskId, c: usize, shape: &CheckShape) -> u32 {
        let p = &self.pools[shape.pool];
        let (pinned, flexible) = self
            .task_pool(task, shape.pool)
            .map_or((0, false), |tp| (tp.pinned(c), tp.has_flexible(c)));
        let reserve = shape.reserve_applies && (p.cpu_flexible[c] > 0 || flexible);
        p.cpu_pinned[c] + pinned + u32::from(reserve)
    }

    fn explain_task_view(&self, task: TaskId, c: usize, shape: &CheckShape) -> SlotShortage {
        let p = &self.pools[shape.pool];
        let (pinned, flexible) = self
            .task_pool(task, shape.pool)
            .map_or((0, false), |tp| (tp.pinned(c), tp.has_flexible(c)));
        let reserve = shape.reserve_applies && (p.cpu_flexible[c] > 0 || flexible);
        self.shortage(
            ShortageTarget::TaskOnCpu(task),
            c,
            shape,
            Some((task, pinned)),
            reserve,
        )
    }

    fn shortage(
        &self,
        target: ShortageTarget,
        c: usize,
        shape: &CheckShape,
        busiest_task: Option<(TaskId, u32)>,
        reserve: bool,
    ) -> SlotShortage {
        SlotShortage {
            target,
            cpu: c as u32,
            slot_type: shape.slot_type,
            shared_pool: self.config.pools.is_shared(),
            slots: shape.slots,
            cpu_pinned: self.pools[shape.pool].cpu_pinned[c],
            busiest_task,
            flexible_reserve: u32::from(reserve),
            needed: shape.needed,
            flexible_request: shape.flexible_request,
        }
    }

    /// Builds the explanation of a failed check (rare path: may scan tasks or CPUs).
    fn explain(&self, req: &BreakpointRequest, shape: &CheckShape) -> SlotShortage {
        let p = &self.pools[shape.pool];
        match (req.task, req.cpu) {
            (None, CpuTarget::One(c)) => {
                let c = c as usize;
                let cpu_flexible = p.cpu_flexible[c] > 0;
                // The busiest task: lowest id with the highest key, where the key is what the
                // task adds to the check (its own flexible breakpoint counts only when no CPU
                // flexible breakpoint already reserves the rotating slot).
                let mut best: Option<(TaskId, u32, bool, u32)> = None;
                for (&id, state) in &self.tasks {
                    let tp = &state.pools[shape.pool];
                    let pinned = tp.pinned(c);
                    let own_flexible = shape.reserve_applies && !cpu_flexible && tp.has_flexible(c);
                    let key = pinned + u32::from(own_flexible);
                    if key > 0 && best.is_none_or(|(_, _, _, k)| key > k) {
                        best = Some((id, pinned, own_flexible, key));
                    }
                }
                let reserve = shape.reserve_applies
                    && (cpu_flexible || best.is_some_and(|(_, _, own, _)| own));
                self.shortage(
                    ShortageTarget::Cpu,
                    c,
                    shape,
                    best.map(|(id, pinned, _, _)| (id, pinned)),
                    reserve,
                )
            }
            (Some(task), CpuTarget::One(c)) => self.explain_task_view(task, c as usize, shape),
            (Some(task), CpuTarget::All) => {
                let mut fullest = (0usize, 0u32);
                for c in 0..self.config.cpus as usize {
                    let busy = self.task_view(task, c, shape);
                    if c == 0 || busy > fullest.1 {
                        fullest = (c, busy);
                    }
                }
                SlotShortage {
                    target: ShortageTarget::TaskOnAllCpus(task),
                    ..self.explain_task_view(task, fullest.0, shape)
                }
            }
            (None, CpuTarget::All) => unreachable!("validated: all CPUs needs a task"),
        }
    }

    /// Adds or removes one breakpoint in the counters (`toggle_bp_slot`).
    fn toggle(&mut self, req: &BreakpointRequest, pool: usize, flexible: bool, enable: bool) {
        let cpus = self.config.cpus as usize;
        let p = &mut self.pools[pool];
        let Some(task) = req.task else {
            let CpuTarget::One(c) = req.cpu else {
                unreachable!("validated: all CPUs needs a task")
            };
            let c = c as usize;
            p.cpu_pinned_hist.remove(p.cpu_pinned[c]);
            p.cpu_loaded_hist.remove(p.cpu_loaded(c));
            let counter = if flexible {
                &mut p.cpu_flexible[c]
            } else {
                &mut p.cpu_pinned[c]
            };
            let delta = if flexible { 1 } else { req.weight };
            if enable {
                *counter += delta;
            } else {
                *counter -= delta;
            }
            p.cpu_pinned_hist.add(p.cpu_pinned[c]);
            p.cpu_loaded_hist.add(p.cpu_loaded(c));
            return;
        };

        let state = self.tasks.entry(task).or_insert_with(|| TaskState {
            pools: Default::default(),
            breakpoints: 0,
        });
        let tp = &mut state.pools[pool];
        let was_independent = tp.cpu_bound == 0;
        let bound_after = match (req.cpu, enable) {
            (CpuTarget::All, _) => tp.cpu_bound,
            (CpuTarget::One(_), true) => tp.cpu_bound + 1,
            (CpuTarget::One(_), false) => tp.cpu_bound - 1,
        };
        let will_be_independent = bound_after == 0;

        if was_independent && will_be_independent {
            p.task_pinned_all.remove(tp.pinned_all);
            p.task_loaded_all.remove(tp.loaded_all());
            tp.apply(req.cpu, req.weight, flexible, enable, cpus);
            p.task_pinned_all.add(tp.pinned_all);
            p.task_loaded_all.add(tp.loaded_all());
        } else if let (CpuTarget::One(c), false, false) =
            (req.cpu, was_independent, will_be_independent)
        {
            // Still CPU-bound before and after: only this CPU's value changes.
            let c = c as usize;
            p.task_pinned[c].remove(tp.pinned(c));
            p.task_loaded[c].remove(tp.loaded(c));
            tp.apply(req.cpu, req.weight, flexible, enable, cpus);
            p.task_pinned[c].add(tp.pinned(c));
            p.task_loaded[c].add(tp.loaded(c));
        } else {
            // An all-CPU change of a CPU-bound task, or a move between the per-CPU
            // histograms and the all-CPU one: O(CPUs), as in the kernel.
            if was_independent {
                p.task_pinned_all.remove(tp.pinned_all);
                p.task_loaded_all.remove(tp.loaded_all());
            } else {
                for c in 0..cpus {
                    p.task_pinned[c].remove(tp.pinned(c));
                    p.task_loaded[c].remove(tp.loaded(c));
                }
            }
            tp.apply(req.cpu, req.weight, flexible, enable, cpus);
            if will_be_independent {
                p.task_pinned_all.add(tp.pinned_all);
                p.task_loaded_all.add(tp.loaded_all());
            } else {
                for c in 0..cpus {
                    p.task_pinned[c].add(tp.pinned(c));
                    p.task_loaded[c].add(tp.loaded(c));
                }
            }
        }
        if enable {
            state.breakpoints += 1;
        } else {
            state.breakpoints -= 1;
            if state.breakpoints == 0 {
                self.tasks.remove(&task);
            }
        }
    }
}

impl SlotAccounting for ConstraintEngine {
    fn reserve(&mut self, req: &BreakpointRequest) -> Result<BreakpointId, Refusal> {
        ConstraintEngine::reserve(self, req)
    }
    fn release(&mut self, id: BreakpointId) -> Option<BreakpointRequest> {
        ConstraintEngine::release(self, id)
    }
    fn modify(&mut self, id: BreakpointId, new_type: BpType) -> Result<(), Refusal> {
        ConstraintEngine::modify(self, id, new_type)
    }
    fn free_slots(&self, cpu: CpuTarget, task: Option<TaskId>, slot_type: SlotType) -> u32 {
        ConstraintEngine::free_slots(self, cpu, task, slot_type)
    }
}
