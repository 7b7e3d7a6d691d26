//! ID_AA64DFR0_EL1: how many breakpoint and watchpoint registers a CPU has.
//!
//! Follows `get_num_brps` / `get_num_wrps` in `arch/arm64/include/asm/hw_breakpoint.h` and the
//! field table of the Arm ARM (DDI 0487) D19.2 "ID_AA64DFR0_EL1". Each count field holds the
//! number of registers *minus one*, so a 4-bit field gives 1..=16 registers.
//!
//! Breakpoints (instruction, DBGBCR/DBGBVR) and watchpoints (data, DBGWCR/DBGWVR) are
//! separate pools: `hw_breakpoint_slots(TYPE_INST)` is the BRP count and
//! `hw_breakpoint_slots(TYPE_DATA)` the WRP count, unlike x86's four shared registers.

use super::ctrl::RegisterField;

/// An ID_AA64DFR0_EL1 value (as read from the register or `/sys` / `cpuinfo` dumps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IdAa64Dfr0(pub u64);

impl IdAa64Dfr0 {
    /// `DebugVer`, bits 3:0: debug architecture version.
    pub const DEBUG_VER: RegisterField = RegisterField { offset: 0, bits: 4 };
    /// `BRPs`, bits 15:12: number of breakpoints, minus 1.
    pub const BRPS: RegisterField = RegisterField {
        offset: 12,
        bits: 4,
    };
    /// `WRPs`, bits 23:20: number of watchpoints, minus 1.
    pub const WRPS: RegisterField = RegisterField {
        offset: 20,
        bits: 4,
    };
    /// `CTX_CMPs`, bits 31:28: number of context-aware breakpoints, minus 1.
    pub const CTX_CMPS: RegisterField = RegisterField {
        offset: 28,
        bits: 4,
    };

    /// Number of breakpoint registers (`BRPs + 1`), 1..=16.
    pub const fn brps(self) -> u8 {
        Self::BRPS.get(self.0) as u8 + 1
    }

    /// Number of watchpoint registers (`WRPs + 1`), 1..=16.
    pub const fn wrps(self) -> u8 {
        Self::WRPS.get(self.0) as u8 + 1
    }

    /// Number of context-aware breakpoints (`CTX_CMPs + 1`).
    pub const fn ctx_cmps(self) -> u8 {
        Self::CTX_CMPS.get(self.0) as u8 + 1
    }

    /// The slot pools the kernel's constraint code sees on this CPU.
    pub const fn slot_pools(self) -> SlotPools {
        SlotPools {
            brps: self.brps(),
            wrps: self.wrps(),
        }
    }
}

/// The two independent arm64 slot pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotPools {
    /// Instruction breakpoint registers (`TYPE_INST`).
    pub brps: u8,
    /// Data watchpoint registers (`TYPE_DATA`).
    pub wrps: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cortex_a53_like_value() {
        // Cortex-A53 reports ID_AA64DFR0_EL1 = 0x10305106:
        //   BRPs  = bits 15:12 = 0x5 -> 6 breakpoints
        //   WRPs  = bits 23:20 = 0x3 -> 4 watchpoints
        //   CTX_CMPs = bits 31:28 = 0x1 -> 2
        //   DebugVer = 0x6 (ARMv8 debug)
        let dfr0 = IdAa64Dfr0(0x1030_5106);
        assert_eq!(dfr0.brps(), 6);
        assert_eq!(dfr0.wrps(), 4);
        assert_eq!(dfr0.ctx_cmps(), 2);
        assert_eq!(IdAa64Dfr0::DEBUG_VER.get(dfr0.0), 6);
        assert_eq!(dfr0.slot_pools(), SlotPools { brps: 6, wrps: 4 });
    }

    #[test]
    fn field_extremes() {
        assert_eq!(IdAa64Dfr0(0).slot_pools(), SlotPools { brps: 1, wrps: 1 });
        let all = IdAa64Dfr0(u64::MAX);
        assert_eq!(all.slot_pools(), SlotPools { brps: 16, wrps: 16 });
        // BRPs and WRPs are independent fields
        assert_eq!(
            IdAa64Dfr0(0xf << 12).slot_pools(),
            SlotPools { brps: 16, wrps: 1 }
        );
        assert_eq!(
            IdAa64Dfr0(0xf << 20).slot_pools(),
            SlotPools { brps: 1, wrps: 16 }
        );
    }
}
