//! The vocabulary shared by the constraint engines: requests, targets, pools, policies.

use crate::BpType;

/// Which constraint rules to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Today's kernel (6.1+, `kernel/events/hw_breakpoint.c`): flexible breakpoints are counted
    /// exactly like pinned ones.
    #[default]
    Mainline,
    /// The 2009 seed design: flexible breakpoints share rotating slots, and while any exists in
    /// a view, pinned breakpoints must leave one slot free for them. See the module docs.
    Seed,
}

/// How many debug-register slots each CPU has, per slot type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotPools {
    /// One pool shared by instruction and data breakpoints (`CONFIG_HAVE_MIXED_BREAKPOINTS_REGS`,
    /// x86: `HBP_NUM` = 4, `TYPE_DATA` = `TYPE_INST`).
    Shared(u32),
    /// Separate pools (ARM/arm64): `inst` breakpoint registers (BRPs) and `data` watchpoint
    /// registers (WRPs).
    Separate {
        /// Instruction breakpoint slots (BRPs).
        inst: u32,
        /// Data watchpoint slots (WRPs).
        data: u32,
    },
}

impl SlotPools {
    /// Number of independent constraint spaces (1 shared, 2 separate).
    pub const fn pool_count(self) -> usize {
        match self {
            SlotPools::Shared(_) => 1,
            SlotPools::Separate { .. } => 2,
        }
    }

    /// The constraint space a slot type is counted in (`find_slot_idx`).
    pub const fn pool_of(self, ty: SlotType) -> usize {
        match (self, ty) {
            (SlotPools::Shared(_), _) => 0,
            (SlotPools::Separate { .. }, SlotType::Inst) => 0,
            (SlotPools::Separate { .. }, SlotType::Data) => 1,
        }
    }

    /// Slots per CPU for a slot type (`hw_breakpoint_slots(type)`).
    pub const fn slots(self, ty: SlotType) -> u32 {
        match (self, ty) {
            (SlotPools::Shared(n), _) => n,
            (SlotPools::Separate { inst, .. }, SlotType::Inst) => inst,
            (SlotPools::Separate { data, .. }, SlotType::Data) => data,
        }
    }

    /// True for a pool shared by both slot types.
    pub const fn is_shared(self) -> bool {
        matches!(self, SlotPools::Shared(_))
    }
}

/// Engine parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    /// Slots per CPU.
    pub pools: SlotPools,
    /// Number of possible CPUs, numbered `0..cpus`.
    pub cpus: u32,
    /// Which rules to apply.
    pub policy: Policy,
}

impl Default for EngineConfig {
    /// x86 with 4 CPUs under the mainline rules.
    fn default() -> Self {
        EngineConfig {
            pools: SlotPools::Shared(4),
            cpus: 4,
            policy: Policy::Mainline,
        }
    }
}

/// Where a breakpoint is active: perf's `cpu` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuTarget {
    /// One CPU (`cpu >= 0`).
    One(u32),
    /// Every CPU the task runs on (`cpu == -1`); only valid with a task.
    All,
}

/// An opaque task identity (perf's `pid` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u32);

/// The constraint space of a breakpoint (`enum bp_type_idx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotType {
    /// `TYPE_INST`: instruction breakpoints (and any `bp_type` without R or W bits).
    Inst,
    /// `TYPE_DATA`: anything with `HW_BREAKPOINT_R` or `_W` set.
    Data,
}

impl SlotType {
    /// `find_slot_idx`: data if `bp_type & HW_BREAKPOINT_RW`, else instruction.
    pub const fn of(bp_type: BpType) -> SlotType {
        if bp_type.is_data() {
            SlotType::Data
        } else {
            SlotType::Inst
        }
    }

    /// `data` or `instruction`.
    pub const fn name(self) -> &'static str {
        match self {
            SlotType::Inst => "instruction",
            SlotType::Data => "data",
        }
    }
}

/// One breakpoint as the constraint check sees it: no address, no length, just where it runs
/// and how many slots it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BreakpointRequest {
    /// One CPU, or all CPUs (task breakpoints only).
    pub cpu: CpuTarget,
    /// The task it follows, or `None` for a CPU breakpoint.
    pub task: Option<TaskId>,
    /// The kernel `bp_type` (`EMPTY` and `INVALID` are refused with `EINVAL`).
    pub bp_type: BpType,
    /// Slots it occupies (`hw_breakpoint_weight`, 1 on every current arch).
    pub weight: u32,
    /// perf's `!attr.pinned`: only the seed policy treats these differently.
    pub flexible: bool,
}

impl BreakpointRequest {
    /// A weight-1 pinned breakpoint.
    pub const fn pinned(cpu: CpuTarget, task: Option<TaskId>, bp_type: BpType) -> Self {
        BreakpointRequest {
            cpu,
            task,
            bp_type,
            weight: 1,
            flexible: false,
        }
    }
}

/// Handle of a reserved breakpoint. Ids are handed out in increasing order starting at 0 and
/// never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreakpointId(pub u32);
