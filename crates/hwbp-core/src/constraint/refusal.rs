//! Why a reservation was refused: the errno the kernel would return plus the numbers behind it.
//!
//! A [`Refusal`] is a value, not a panic: `ENOSPC` is an expected answer of the constraint
//! engine (`kernel/events/hw_breakpoint.c`, `__reserve_bp_slot`), and so are the `EINVAL`
//! answers for requests the kernel refuses before it counts slots.

use core::fmt;

use super::{BreakpointId, SlotType, TaskId};
use crate::BpType;

/// The errno a refusal maps to (Linux values, `include/uapi/asm-generic/errno-base.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EINVAL` (22): the request itself is malformed.
    Einval,
    /// `ENOSPC` (28): no free debug-register slot for the request.
    Enospc,
}

impl Errno {
    /// The raw Linux errno value.
    pub const fn raw(self) -> i32 {
        match self {
            Errno::Einval => 22,
            Errno::Enospc => 28,
        }
    }

    /// The symbolic name, `EINVAL` or `ENOSPC`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::Einval => "EINVAL",
            Errno::Enospc => "ENOSPC",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who the refused request was for, as the constraint check saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShortageTarget {
    /// A CPU breakpoint (no task): it must fit next to the busiest task on that CPU.
    Cpu,
    /// A task breakpoint bound to one CPU.
    TaskOnCpu(TaskId),
    /// A task breakpoint that follows its task on every CPU: it must fit on each of them;
    /// [`SlotShortage::cpu`] names the fullest CPU (the lowest-numbered one on a tie).
    TaskOnAllCpus(TaskId),
}

/// The numbers behind an `ENOSPC`.
///
/// They always satisfy `cpu_pinned + busiest_task.1 + flexible_reserve + needed > slots`,
/// which is exactly the failed check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotShortage {
    /// Who asked.
    pub target: ShortageTarget,
    /// The CPU on which the request does not fit.
    pub cpu: u32,
    /// The slot type of the request (the constraint space it was counted in).
    pub slot_type: SlotType,
    /// True when the pool is shared by instruction and data breakpoints (x86).
    pub shared_pool: bool,
    /// Slots in that pool on that CPU.
    pub slots: u32,
    /// Slots held there by CPU breakpoints (`cpu_pinned`; flexible ones are not counted under the
    /// seed policy).
    pub cpu_pinned: u32,
    /// For a CPU target: the task holding the most slots on that CPU (lowest id on a tie), with
    /// its count, or `None` when no task holds any. For a task target: that task and what it
    /// already holds on that CPU.
    pub busiest_task: Option<(TaskId, u32)>,
    /// Seed policy only: 1 when a flexible breakpoint in this view keeps a rotating slot free
    /// from pinned ones, else 0. Always 0 under the mainline policy.
    pub flexible_reserve: u32,
    /// What the request itself needs: its weight, or 1 rotating slot for a seed flexible request.
    pub needed: u32,
    /// True when the request was a flexible one under the seed policy.
    pub flexible_request: bool,
}

/// A request refused before any slot was counted (`EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidRequest {
    /// `HW_BREAKPOINT_EMPTY` or `HW_BREAKPOINT_INVALID`: `__reserve_bp_slot` returns `EINVAL`
    /// for these before looking at slots.
    BadType(BpType),
    /// The CPU does not exist in this engine's CPU set.
    CpuOutOfRange {
        /// The CPU asked for.
        cpu: u32,
        /// How many CPUs there are (valid ids are `0..cpus`).
        cpus: u32,
    },
    /// Weight 0: every breakpoint occupies at least one slot (`hw_breakpoint_weight`).
    ZeroWeight,
    /// No task and no CPU: `perf_event_open(pid = -1, cpu = -1)` is `EINVAL`.
    AllCpusWithoutTask,
    /// The breakpoint id is not (or no longer) reserved.
    UnknownBreakpoint(BreakpointId),
}

/// Why [`reserve`](super::ConstraintEngine::reserve) or
/// [`modify`](super::ConstraintEngine::modify) refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `ENOSPC`: the slots are full for this request.
    NoFreeSlot(SlotShortage),
    /// `EINVAL`: the request is malformed.
    Invalid(InvalidRequest),
}

impl Refusal {
    /// The errno the kernel returns for this refusal.
    pub const fn errno(&self) -> Errno {
        match self {
            Refusal::NoFreeSlot(_) => Errno::Enospc,
            Refusal::Invalid(_) => Errno::Einval,
        }
    }

    /// Displays the explanation with task names chosen by the caller (the scenario runner
    /// prints the user's task names instead of `#7`).
    pub fn display_with<F>(&self, task_name: F) -> RefusalDisplay<'_, F>
    where
        F: Fn(TaskId, &mut fmt::Formatter<'_>) -> fmt::Result,
    {
        RefusalDisplay {
            refusal: self,
            task_name,
        }
    }
}

fn default_task_name(task: TaskId, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "#{}", task.0)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.display_with(default_task_name), f)
    }
}

/// [`Refusal`] shown with caller-chosen task names; see [`Refusal::display_with`].
pub struct RefusalDisplay<'a, F> {
    refusal: &'a Refusal,
    task_name: F,
}

/// Adapter so a task-name callback can be used with `{}`.
struct Named<'a, F>(&'a F, TaskId);

impl<F> fmt::Display for Named<'_, F>
where
    F: Fn(TaskId, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(self.1, f)
    }
}

impl<F> fmt::Display for RefusalDisplay<'_, F>
where
    F: Fn(TaskId, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |task| Named(&self.task_name, task);
        match self.refusal {
            Refusal::Invalid(why) => match *why {
                InvalidRequest::BadType(ty) => write!(
                    f,
                    "breakpoint type {} is not a valid type (HW_BREAKPOINT_EMPTY or _INVALID): \
                     use a data type (r, w, rw) or an instruction type (x)",
                    ty.0
                ),
                InvalidRequest::CpuOutOfRange { cpu, cpus } => write!(
                    f,
                    "CPU {cpu} does not exist: there are {cpus} CPUs, numbered 0 to {}",
                    cpus.saturating_sub(1)
                ),
                InvalidRequest::ZeroWeight => {
                    f.write_str("weight 0: a breakpoint occupies at least 1 slot")
                }
                InvalidRequest::AllCpusWithoutTask => f.write_str(
                    "a breakpoint on all CPUs needs a task to follow: name a task, \
                     or put a CPU breakpoint on one CPU",
                ),
                InvalidRequest::UnknownBreakpoint(id) => {
                    write!(f, "breakpoint #{} is not reserved", id.0)
                }
            },
            Refusal::NoFreeSlot(s) => {
                // On a shared pool (x86) the slot is shared by both kinds; naming the request's
                // kind still tells the user which breakpoint was refused.
                let kind = match s.slot_type {
                    SlotType::Data => "data ",
                    SlotType::Inst => "instruction ",
                };
                match s.target {
                    ShortageTarget::Cpu => {
                        write!(f, "CPU {} has no free {kind}slot", s.cpu)?;
                    }
                    ShortageTarget::TaskOnCpu(t) => {
                        write!(
                            f,
                            "CPU {} has no free {kind}slot for task {}",
                            s.cpu,
                            name(t)
                        )?;
                    }
                    ShortageTarget::TaskOnAllCpus(t) => {
                        write!(
                            f,
                            "task {} on all CPUs does not fit on CPU {}, which has no free {kind}slot",
                            name(t),
                            s.cpu
                        )?;
                    }
                }
                write!(f, ": CPU breakpoints hold {} of {}", s.cpu_pinned, s.slots)?;
                match (s.target, s.busiest_task) {
                    (ShortageTarget::Cpu, Some((t, n))) => {
                        write!(f, ", the busiest task ({}) holds {n}", name(t))?
                    }
                    (ShortageTarget::Cpu, None) => f.write_str(", no task holds any")?,
                    (_, Some((t, n))) => write!(f, ", task {} already holds {n} there", name(t))?,
                    (_, None) => {}
                }
                if s.flexible_reserve > 0 {
                    write!(
                        f,
                        ", flexible breakpoints keep {} rotating slot free",
                        s.flexible_reserve
                    )?;
                }
                if s.flexible_request {
                    write!(
                        f,
                        ", this flexible request needs {} rotating slot",
                        s.needed
                    )
                } else {
                    write!(f, ", this request needs {}", s.needed)
                }
            }
        }
    }
}
