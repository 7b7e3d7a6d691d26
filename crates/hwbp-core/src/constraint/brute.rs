//! The brute-force evaluator: the same rules as [`ConstraintEngine`](super::ConstraintEngine),
//! computed from their definitions by scanning the list of reserved breakpoints on every check.
//!
//! It exists to be obviously right, not fast: the property tests drive it and the fast engine
//! with the same random operations and require identical answers, including every number in
//! the explanations. It follows the brute-force form of `max_bp_pinned_slots` in
//! `kernel/events/hw_breakpoint.c` (and the 2.6.3x `task_bp_pinned` walk over all task
//! breakpoints).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::engine::CheckShape;
use super::refusal::{InvalidRequest, Refusal, ShortageTarget, SlotShortage};
use super::types::{BreakpointId, BreakpointRequest, CpuTarget, EngineConfig, SlotType, TaskId};
use super::{validate, SlotAccounting};
use crate::BpType;

#[derive(Clone, Copy, Debug)]
struct Entry {
    request: BreakpointRequest,
    counted_flexible: bool,
}

/// Reference implementation of the constraint rules by exhaustive scanning.
#[derive(Clone, Debug)]
pub struct BruteForceEngine {
    config: EngineConfig,
    entries: Vec<Option<Entry>>,
}

/// What one view (a task or "no task" on one CPU) holds.
#[derive(Clone, Copy, Debug)]
struct View {
    pinned: u32,
    flexible: bool,
}

impl BruteForceEngine {
    /// An evaluator with no breakpoints.
    pub fn new(config: EngineConfig) -> Self {
        BruteForceEngine {
            config,
            entries: Vec::new(),
        }
    }

    fn live(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().flatten()
    }

    fn pool_of(&self, bp_type: BpType) -> usize {
        self.config.pools.pool_of(SlotType::of(bp_type))
    }

    /// CPU breakpoints on CPU `c` in `pool`.
    fn cpu_view(&self, pool: usize, c: u32) -> View {
        let mut v = View {
            pinned: 0,
            flexible: false,
        };
        for e in self.live() {
            let r = &e.request;
            if r.task.is_none() && r.cpu == CpuTarget::One(c) && self.pool_of(r.bp_type) == pool {
                if e.counted_flexible {
                    v.flexible = true;
                } else {
                    v.pinned += r.weight;
                }
            }
        }
        v
    }

    /// Task `t`'s breakpoints that are active on CPU `c` (cpu == c or all CPUs) in `pool`.
    fn task_view(&self, pool: usize, t: TaskId, c: u32) -> View {
        let mut v = View {
            pinned: 0,
            flexible: false,
        };
        for e in self.live() {
            let r = &e.request;
            let on_c = r.cpu == CpuTarget::All || r.cpu == CpuTarget::One(c);
            if r.task == Some(t) && on_c && self.pool_of(r.bp_type) == pool {
                if e.counted_flexible {
                    v.flexible = true;
                } else {
                    v.pinned += r.weight;
                }
            }
        }
        v
    }

    fn tasks(&self) -> BTreeSet<TaskId> {
        self.live().filter_map(|e| e.request.task).collect()
    }

    /// Slots taken on CPU `c` as seen by task `t`.
    fn task_total(&self, shape: &CheckShape, t: TaskId, c: u32) -> (u32, SlotShortage) {
        let cpu = self.cpu_view(shape.pool, c);
        let task = self.task_view(shape.pool, t, c);
        let reserve = shape.reserve_applies && (cpu.flexible || task.flexible);
        let total = cpu.pinned + task.pinned + u32::from(reserve);
        let s = self.shortage(
            ShortageTarget::TaskOnCpu(t),
            c,
            shape,
            cpu.pinned,
            Some((t, task.pinned)),
            reserve,
        );
        (total, s)
    }

    fn shortage(
        &self,
        target: ShortageTarget,
        cpu: u32,
        shape: &CheckShape,
        cpu_pinned: u32,
        busiest_task: Option<(TaskId, u32)>,
        reserve: bool,
    ) -> SlotShortage {
        SlotShortage {
            target,
            cpu,
            slot_type: shape.slot_type,
            shared_pool: self.config.pools.is_shared(),
            slots: shape.slots,
            cpu_pinned,
            busiest_task,
            flexible_reserve: u32::from(reserve),
            needed: shape.needed,
            flexible_request: shape.flexible_request,
        }
    }

    /// Slots taken in the request's view, and the explanation should it not fit.
    fn evaluate(&self, req: &BreakpointRequest, shape: &CheckShape) -> (u32, SlotShortage) {
        match (req.task, req.cpu) {
            (None, CpuTarget::One(c)) => {
                // Against every task on this CPU, and against no task at all.
                let cpu = self.cpu_view(shape.pool, c);
                let mut worst = u32::from(shape.reserve_applies && cpu.flexible);
                let mut busiest: Option<(TaskId, u32, bool, u32)> = None;
                for t in self.tasks() {
                    let v = self.task_view(shape.pool, t, c);
                    let reserve = shape.reserve_applies && (cpu.flexible || v.flexible);
                    worst = worst.max(v.pinned + u32::from(reserve));
                    let own = shape.reserve_applies && !cpu.flexible && v.flexible;
                    let key = v.pinned + u32::from(own);
                    if key > 0 && busiest.is_none_or(|(_, _, _, k)| key > k) {
                        busiest = Some((t, v.pinned, own, key));
                    }
                }
                let reserve = shape.reserve_applies
                    && (cpu.flexible || busiest.is_some_and(|(_, _, own, _)| own));
                let s = self.shortage(
                    ShortageTarget::Cpu,
                    c,
                    shape,
                    cpu.pinned,
                    busiest.map(|(t, n, _, _)| (t, n)),
                    reserve,
                );
                (cpu.pinned + worst, s)
            }
            (Some(t), CpuTarget::One(c)) => self.task_total(shape, t, c),
            (Some(t), CpuTarget::All) => {
                let mut fullest: Option<(u32, SlotShortage)> = None;
                for c in 0..self.config.cpus {
                    let (total, s) = self.task_total(shape, t, c);
                    if fullest.is_none_or(|(best, _)| total > best) {
                        fullest = Some((total, s));
                    }
                }
                let (total, s) = fullest.expect("validated: at least one CPU");
                (
                    total,
                    SlotShortage {
                        target: ShortageTarget::TaskOnAllCpus(t),
                        ..s
                    },
                )
            }
            (None, CpuTarget::All) => unreachable!("validated: all CPUs needs a task"),
        }
    }

    fn check(&self, req: &BreakpointRequest, bp_type: BpType) -> Result<CheckShape, Refusal> {
        validate(&self.config, req, bp_type)?;
        let shape = CheckShape::new(&self.config, req, bp_type);
        let (busy, shortage) = self.evaluate(req, &shape);
        if busy + shape.needed > shape.slots {
            return Err(Refusal::NoFreeSlot(shortage));
        }
        Ok(shape)
    }
}

impl SlotAccounting for BruteForceEngine {
    fn reserve(&mut self, req: &BreakpointRequest) -> Result<BreakpointId, Refusal> {
        let shape = self.check(req, req.bp_type)?;
        self.entries.push(Some(Entry {
            request: *req,
            counted_flexible: shape.flexible_request,
        }));
        Ok(BreakpointId(self.entries.len() as u32 - 1))
    }

    fn release(&mut self, id: BreakpointId) -> Option<BreakpointRequest> {
        Some(self.entries.get_mut(id.0 as usize)?.take()?.request)
    }

    fn modify(&mut self, id: BreakpointId, new_type: BpType) -> Result<(), Refusal> {
        let Some(Some(old)) = self.entries.get(id.0 as usize).copied() else {
            return Err(Refusal::Invalid(InvalidRequest::UnknownBreakpoint(id)));
        };
        if old.request.bp_type == new_type {
            return Ok(());
        }
        self.entries[id.0 as usize] = None;
        let new_req = BreakpointRequest {
            bp_type: new_type,
            ..old.request
        };
        match self.check(&new_req, new_type) {
            Ok(shape) => {
                self.entries[id.0 as usize] = Some(Entry {
                    request: new_req,
                    counted_flexible: shape.flexible_request,
                });
                Ok(())
            }
            Err(refusal) => {
                assert!(
                    self.check(&old.request, old.request.bp_type).is_ok(),
                    "rolling back a modify must fit"
                );
                self.entries[id.0 as usize] = Some(old);
                Err(refusal)
            }
        }
    }

    fn free_slots(&self, cpu: CpuTarget, task: Option<TaskId>, slot_type: SlotType) -> u32 {
        let bp_type = match slot_type {
            SlotType::Data => BpType::RW,
            SlotType::Inst => BpType::X,
        };
        let req = BreakpointRequest::pinned(cpu, task, bp_type);
        if validate(&self.config, &req, bp_type).is_err() {
            return 0;
        }
        let shape = CheckShape::new(&self.config, &req, bp_type);
        shape.slots.saturating_sub(self.evaluate(&req, &shape).0)
    }
}
