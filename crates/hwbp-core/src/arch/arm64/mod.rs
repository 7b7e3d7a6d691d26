//! arm64 debug registers: DBGBCR/DBGWCR control values, ID_AA64DFR0_EL1 slot counts and the
//! kernel's breakpoint validation.
//!
//! Bit-exact with Linux's `arch/arm64/include/asm/hw_breakpoint.h` and
//! `arch/arm64/kernel/hw_breakpoint.c`; register layouts from the Arm ARM (DDI 0487) D19.
//!
//! Unlike x86:
//! - Breakpoints and watchpoints are separate slot pools ([`SlotPools`]): 2..16 of each,
//!   read from ID_AA64DFR0_EL1 ([`IdAa64Dfr0`]).
//! - Watchpoints select any 1..8 contiguous bytes of an aligned doubleword (byte address
//!   select, [`byte_address_select`]), and read-only watchpoints exist.
//! - A watchpoint fires *before* the access completes, and the reported address may be
//!   outside the watched bytes for multi-register instructions (the kernel's
//!   `get_distance_from_watchpoint` heuristic); match hits by event, not by address.
//!
//! # Known limitations
//! - `MASK` range watchpoints (up to 2 GiB) are decoded but Linux never programs them.
//! - FEAT_Debugv8p9's extra breakpoints (ID_AA64DFR1_EL1) are not counted; the kernel
//!   ignores them too.

pub mod ctrl;
pub mod dfr0;
pub mod validate;

pub use ctrl::{
    arch_bp_generic_fields, byte_address_select, decode_ctrl_reg, encode_ctrl_reg,
    ArchHwBreakpointCtrl, Arm64CtrlError, Dbgbcr, Dbgwcr, RegisterField,
};
pub use dfr0::{IdAa64Dfr0, SlotPools};
pub use validate::{
    validate_breakpoint, Arm64BreakpointError, Arm64BreakpointInfo, Arm64Environment,
};
