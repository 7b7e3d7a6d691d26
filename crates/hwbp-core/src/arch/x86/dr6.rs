//! DR6, the x86 debug status register: which condition raised a debug exception.
//!
//! Follows the DR6 constants of `arch/x86/include/uapi/asm/debugreg.h`, the polarity flip in
//! `arch/x86/kernel/traps.c` (`debug_read_clear_dr6`) and ptrace (`ptrace_get_debugreg` /
//! `ptrace_set_debugreg` in `arch/x86/kernel/ptrace.c`), and `get_si_code` in
//! `arch/x86/include/asm/traps.h`.
//!
//! The hardware register reads with its reserved bits set (`DR6_RESERVED`, `0xFFFF0FF0`) and
//! with the bus-lock bit active-low. The kernel XORs the raw value with `DR6_RESERVED` so that
//! every set bit means "this happened" (positive polarity), keeps `virtual_dr6` that way, and
//! XORs again when a debugger reads DR6 through ptrace. [`Dr6`] holds the positive-polarity
//! value; [`Dr6::from_architectural`] and [`Dr6::to_architectural`] convert.

/// `DR_TRAP0`: DR0 matched.
pub const DR_TRAP0: u64 = 0x1;
/// `DR_TRAP1`: DR1 matched.
pub const DR_TRAP1: u64 = 0x2;
/// `DR_TRAP2`: DR2 matched.
pub const DR_TRAP2: u64 = 0x4;
/// `DR_TRAP3`: DR3 matched.
pub const DR_TRAP3: u64 = 0x8;
/// `DR_TRAP_BITS`: all four match bits B0..B3.
pub const DR_TRAP_BITS: u64 = 0xF;
/// `DR_BUS_LOCK` (bit 11): a bus lock was detected (active-low in the hardware register).
pub const DR_BUS_LOCK: u64 = 0x800;
/// `BD` (bit 13): the next instruction accesses a debug register while `GD` is set.
pub const DR_BD: u64 = 0x2000;
/// `DR_STEP` (`BS`, bit 14): single-step trap (`TF`).
pub const DR_STEP: u64 = 0x4000;
/// `DR_SWITCH` (`BT`, bit 15): task switch to a TSS with the T bit set.
pub const DR_SWITCH: u64 = 0x8000;
/// `DR6_RESERVED`: the architectural power-on value, `0xFFFF0FF0`; the bits whose hardware
/// polarity the kernel flips.
pub const DR6_RESERVED: u64 = 0xFFFF_0FF0;

/// A DR6 value in the kernel's positive polarity (a set bit means the condition happened).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dr6(pub u64);

/// The `si_code` of the `SIGTRAP` the kernel sends for a debug exception (`get_si_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TrapSiCode {
    /// `TRAP_BRKPT` (1): none of the conditions below.
    Breakpoint = 1,
    /// `TRAP_TRACE` (2): a single step (`DR_STEP`), which wins over breakpoint hits.
    Trace = 2,
    /// `TRAP_HWBKPT` (4): a hardware breakpoint or watchpoint matched (`DR_TRAP0..3`).
    HardwareBreakpoint = 4,
}

impl TrapSiCode {
    /// The numeric `si_code`.
    pub const fn raw(self) -> i32 {
        self as i32
    }
}

impl Dr6 {
    /// From the hardware register as read with `mov %dr6` (reserved bits read as 1):
    /// `raw ^ DR6_RESERVED`, as `debug_read_clear_dr6` does.
    pub const fn from_architectural(raw: u64) -> Dr6 {
        Dr6(raw ^ DR6_RESERVED)
    }

    /// The value ptrace returns for DR6 (`PTRACE_PEEKUSER` of `u_debugreg[6]`) when
    /// `virtual_dr6` is `self`: `virtual_dr6 ^ DR6_RESERVED`, the architectural polarity.
    pub const fn to_architectural(self) -> u64 {
        self.0 ^ DR6_RESERVED
    }

    /// The `virtual_dr6` a ptrace write of `val` to DR6 stores: `val ^ DR6_RESERVED`.
    /// The same conversion as [`Dr6::from_architectural`].
    pub const fn from_ptrace_write(val: u64) -> Dr6 {
        Dr6::from_architectural(val)
    }

    /// The slots (0..=3) whose match bits are set, as a 4-bit mask (bit `i` = DR`i` hit).
    pub const fn hit_mask(self) -> u8 {
        (self.0 & DR_TRAP_BITS) as u8
    }

    /// Whether slot `slot` matched (`B0`..`B3`). Slots above 3 never match.
    pub const fn hit(self, slot: u8) -> bool {
        slot < 4 && self.0 & (DR_TRAP0 << slot) != 0
    }

    /// An iterator over the slots that matched, lowest first (the order the kernel's
    /// `hw_breakpoint_handler` walks them).
    pub fn hit_slots(self) -> impl Iterator<Item = u8> {
        (0u8..4).filter(move |&slot| self.hit(slot))
    }

    /// `BD`: debug-register access detected.
    pub const fn debug_register_access(self) -> bool {
        self.0 & DR_BD != 0
    }

    /// `BS` (`DR_STEP`): single step.
    pub const fn single_step(self) -> bool {
        self.0 & DR_STEP != 0
    }

    /// `BT` (`DR_SWITCH`): task switch.
    pub const fn task_switch(self) -> bool {
        self.0 & DR_SWITCH != 0
    }

    /// `DR_BUS_LOCK`: a bus lock was detected.
    pub const fn bus_lock(self) -> bool {
        self.0 & DR_BUS_LOCK != 0
    }

    /// `get_si_code(dr6)`: the `SIGTRAP` `si_code` for this condition. The kernel passes
    /// `dr6 | virtual_dr6`.
    pub const fn si_code(self) -> TrapSiCode {
        if self.0 & DR_STEP != 0 {
            TrapSiCode::Trace
        } else if self.0 & DR_TRAP_BITS != 0 {
            TrapSiCode::HardwareBreakpoint
        } else {
            TrapSiCode::Breakpoint
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn power_on_value_means_nothing_happened() {
        let dr6 = Dr6::from_architectural(DR6_RESERVED);
        assert_eq!(dr6, Dr6(0));
        assert_eq!(dr6.hit_mask(), 0);
        assert!(!dr6.bus_lock() && !dr6.single_step());
        assert_eq!(dr6.si_code(), TrapSiCode::Breakpoint);
    }

    #[test]
    fn hardware_hit_on_dr2_decodes() {
        // The CPU sets B2 and leaves the reserved bits at 1.
        let dr6 = Dr6::from_architectural(0xFFFF_0FF4);
        assert_eq!(dr6.0, 0x4);
        assert_eq!(dr6.hit_mask(), 0b0100);
        assert!(dr6.hit(2) && !dr6.hit(0) && !dr6.hit(4));
        assert_eq!(dr6.hit_slots().collect::<Vec<_>>(), vec![2]);
        assert_eq!(dr6.si_code(), TrapSiCode::HardwareBreakpoint);
        assert_eq!(dr6.si_code().raw(), 4);
    }

    #[test]
    fn bus_lock_is_active_low_in_hardware() {
        // Bit 11 cleared in the raw register means a bus lock happened.
        let dr6 = Dr6::from_architectural(0xFFFF_07F0);
        assert!(dr6.bus_lock());
        assert_eq!(dr6.0, DR_BUS_LOCK);
    }

    #[test]
    fn status_bits_keep_their_polarity() {
        let dr6 = Dr6::from_architectural(0xFFFF_0FF0 | DR_BD | DR_SWITCH | DR_STEP | 0x3);
        assert!(dr6.debug_register_access() && dr6.task_switch() && dr6.single_step());
        assert_eq!(dr6.hit_slots().collect::<Vec<_>>(), vec![0, 1]);
        // a single step wins over breakpoint hits
        assert_eq!(dr6.si_code(), TrapSiCode::Trace);
        assert_eq!(TrapSiCode::Trace.raw(), 2);
    }

    #[test]
    fn ptrace_reads_what_ptrace_wrote() {
        // ptrace_triggered sets virtual_dr6 |= DR_TRAP0 << 1; a debugger then reads 0xFFFF0FF2.
        let virtual_dr6 = Dr6(DR_TRAP1);
        assert_eq!(virtual_dr6.to_architectural(), 0xFFFF_0FF2);
        // gdb clears DR6 by writing 0: virtual_dr6 becomes DR6_RESERVED in positive polarity.
        assert_eq!(Dr6::from_ptrace_write(0), Dr6(DR6_RESERVED));
    }

    proptest! {
        #[test]
        fn polarity_conversion_round_trips(raw in any::<u64>()) {
            prop_assert_eq!(Dr6::from_architectural(raw).to_architectural(), raw);
            prop_assert_eq!(Dr6::from_architectural(raw).hit_mask() as u64, raw & DR_TRAP_BITS);
        }
    }
}
