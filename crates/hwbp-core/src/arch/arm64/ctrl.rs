//! DBGBCR/DBGWCR control values, encoded as Linux encodes them.
//!
//! Follows `struct arch_hw_breakpoint_ctrl`, `encode_ctrl_reg` and `decode_ctrl_reg` in
//! `arch/arm64/include/asm/hw_breakpoint.h`, and `arch_bp_generic_fields` in
//! `arch/arm64/kernel/hw_breakpoint.c`. Register layouts are from the Arm ARM (DDI 0487),
//! D19.3 `DBGBCR<n>_EL1` and `DBGWCR<n>_EL1`.
//!
//! The kernel packs four fields into the low 13 bits of both registers:
//!
//! ```text
//!  bit 13      12 ........ 5   4 3   2 1   0
//!  HMC (VHE)   BAS / "len"     LSC   PAC   E
//!              (8 bits)        type  priv  enabled
//! ```
//!
//! `BAS` (byte address select) says which bytes of the aligned doubleword (watchpoints) or word
//! (breakpoints) match: bit `k` set = byte `addr + k` is watched. The kernel calls it `len` and
//! stores 1..8 contiguous bytes as `0x1, 0x3, ... 0xff`, then shifts them left by the address's
//! offset inside the doubleword.

use core::fmt;

use crate::access::BpType;

/// `ARM_BREAKPOINT_EXECUTE`: the `type` of an instruction breakpoint (a DBGBCR).
pub const ARM_BREAKPOINT_EXECUTE: u8 = 0;
/// `ARM_BREAKPOINT_LOAD`: `LSC` bit 0, match loads.
pub const ARM_BREAKPOINT_LOAD: u8 = 1;
/// `ARM_BREAKPOINT_STORE`: `LSC` bit 1, match stores.
pub const ARM_BREAKPOINT_STORE: u8 = 2;
/// `AARCH64_BREAKPOINT_EL1`: `PAC`/`PMC` = `0b01`, match at EL1 (kernel).
pub const AARCH64_BREAKPOINT_EL1: u8 = 1;
/// `AARCH64_BREAKPOINT_EL0`: `PAC`/`PMC` = `0b10`, match at EL0 (user).
pub const AARCH64_BREAKPOINT_EL0: u8 = 2;
/// `DBG_HMC_HYP`: bit 13, set with EL1 privilege when the kernel runs at EL2 (VHE).
pub const DBG_HMC_HYP: u32 = 1 << 13;
/// `ARM_MAX_BRP`: the kernel's limit on breakpoint registers.
pub const ARM_MAX_BRP: u8 = 16;
/// `ARM_MAX_WRP`: the kernel's limit on watchpoint registers.
pub const ARM_MAX_WRP: u8 = 16;

/// `ARM_BREAKPOINT_LEN_1` .. `ARM_BREAKPOINT_LEN_8`: the BAS value for `n` bytes at offset 0,
/// indexed by `n - 1`.
pub const ARM_BREAKPOINT_LEN: [u8; 8] = [0x1, 0x3, 0x7, 0xf, 0x1f, 0x3f, 0x7f, 0xff];

/// The BAS value for `len` bytes (1..=8) at offset 0 (`ARM_BREAKPOINT_LEN_<len>`).
pub const fn bas_for_len(len: u64) -> Option<u8> {
    if len >= 1 && len <= 8 {
        Some(ARM_BREAKPOINT_LEN[len as usize - 1])
    } else {
        None
    }
}

/// The length in bytes of an offset-0 BAS value (`get_hbp_len`): 0 for anything else.
pub const fn len_of_bas(bas: u8) -> u64 {
    match bas {
        0x1 => 1,
        0x3 => 2,
        0x7 => 3,
        0xf => 4,
        0x1f => 5,
        0x3f => 6,
        0x7f => 7,
        0xff => 8,
        _ => 0,
    }
}

/// Byte-address-select for the byte range `[addr, addr + len)` when it lies inside one
/// aligned doubleword: returns the doubleword address (for DBGWVR) and the BAS bits.
/// `None` when `len` is not 1..=8 or the range crosses a doubleword boundary.
pub const fn byte_address_select(addr: u64, len: u64) -> Option<(u64, u8)> {
    let offset = addr & 7;
    match bas_for_len(len) {
        Some(bas) if offset + len <= 8 => Some((addr & !7, bas << offset)),
        _ => None,
    }
}

/// `struct arch_hw_breakpoint_ctrl`: the kernel's description of a breakpoint, raw values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArchHwBreakpointCtrl {
    /// `len`: the BAS bits (8-bit field).
    pub len: u8,
    /// `type`: `ARM_BREAKPOINT_EXECUTE` (0) or the LSC bits `LOAD`(1) | `STORE`(2) (2-bit field).
    pub ty: u8,
    /// `privilege`: `AARCH64_BREAKPOINT_EL1` (1) or `_EL0` (2) (2-bit field).
    pub privilege: u8,
    /// `enabled`: the `E` bit.
    pub enabled: bool,
}

impl ArchHwBreakpointCtrl {
    /// True for instruction breakpoints (programmed into a DBGBCR, from the BRP pool).
    pub const fn is_breakpoint(&self) -> bool {
        self.ty == ARM_BREAKPOINT_EXECUTE
    }
}

/// `encode_ctrl_reg(ctrl)`: `(len << 5) | (type << 3) | (privilege << 1) | enabled`, plus
/// `DBG_HMC_HYP` when the kernel runs in hyp mode (VHE) and the privilege is EL1. Fields wider
/// than the kernel's bitfields are truncated as the bitfields would.
pub const fn encode_ctrl_reg(ctrl: ArchHwBreakpointCtrl, kernel_in_hyp_mode: bool) -> u32 {
    let privilege = ctrl.privilege & 0x3;
    let mut val = ((ctrl.len as u32) << 5)
        | (((ctrl.ty & 0x3) as u32) << 3)
        | ((privilege as u32) << 1)
        | ctrl.enabled as u32;
    if kernel_in_hyp_mode && privilege == AARCH64_BREAKPOINT_EL1 {
        val |= DBG_HMC_HYP;
    }
    val
}

/// `decode_ctrl_reg(reg, &ctrl)`: the inverse of [`encode_ctrl_reg`] (HMC and higher bits are
/// ignored).
pub const fn decode_ctrl_reg(reg: u32) -> ArchHwBreakpointCtrl {
    ArchHwBreakpointCtrl {
        enabled: reg & 0x1 != 0,
        privilege: ((reg >> 1) & 0x3) as u8,
        ty: ((reg >> 3) & 0x3) as u8,
        len: ((reg >> 5) & 0xff) as u8,
    }
}

/// A bit field of a system register: `NUMBITS` bits at `OFFSET`, as the Arm ARM names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterField {
    /// Lowest bit.
    pub offset: u32,
    /// Width in bits.
    pub bits: u32,
}

impl RegisterField {
    /// The unshifted mask of this field.
    pub const fn mask(self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// Reads this field from a register value.
    pub const fn get(self, reg: u64) -> u64 {
        (reg >> self.offset) & self.mask()
    }

    /// Returns `reg` with this field set to `value`, or `None` if `value` does not fit.
    pub const fn set(self, reg: u64, value: u64) -> Option<u64> {
        if value > self.mask() {
            return None;
        }
        Some((reg & !(self.mask() << self.offset)) | (value << self.offset))
    }
}

/// Why a control value cannot be used or converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm64CtrlError {
    /// A DBGBCR needs type `ARM_BREAKPOINT_EXECUTE`; a DBGWCR needs a load/store type.
    WrongRegister {
        /// The `type` value.
        ty: u8,
    },
    /// `len` (BAS) is zero or not a contiguous run of 1..8 bytes.
    BadByteSelect(u8),
}

impl Arm64CtrlError {
    /// `EINVAL` (22), as `arch_bp_generic_fields` returns.
    pub const fn errno(self) -> i32 {
        22
    }
}

impl fmt::Display for Arm64CtrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Arm64CtrlError::WrongRegister { ty: 0 } => f.write_str(
                "an execute breakpoint belongs in a DBGBCR, not a DBGWCR: use a breakpoint register",
            ),
            Arm64CtrlError::WrongRegister { ty } => write!(
                f,
                "type {ty} is a watchpoint (load/store) type, not a breakpoint: use a \
                 watchpoint register (DBGWCR)"
            ),
            Arm64CtrlError::BadByteSelect(bas) => write!(
                f,
                "byte-address-select {bas:#04x} is not 1 to 8 contiguous bytes: use a value \
                 like 0x01, 0x03, 0x0f or 0xff shifted by the byte offset"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Arm64CtrlError {}

/// `arch_bp_generic_fields(ctrl, &gen_len, &gen_type, &offset)` as ptrace uses it: the generic
/// `(bp_len, bp_type, offset)` for a control value, where `offset` is the index of the lowest
/// BAS bit (ptrace adds it to the address).
pub const fn arch_bp_generic_fields(
    ctrl: ArchHwBreakpointCtrl,
) -> Result<(u64, BpType, u32), Arm64CtrlError> {
    let bp_type = match ctrl.ty & 0x3 {
        ARM_BREAKPOINT_EXECUTE => BpType::X,
        ARM_BREAKPOINT_LOAD => BpType::R,
        ARM_BREAKPOINT_STORE => BpType::W,
        _ => BpType::RW,
    };
    if ctrl.len == 0 {
        return Err(Arm64CtrlError::BadByteSelect(ctrl.len));
    }
    let offset = ctrl.len.trailing_zeros();
    match len_of_bas(ctrl.len >> offset) {
        0 => Err(Arm64CtrlError::BadByteSelect(ctrl.len)),
        len => Ok((len, bp_type, offset)),
    }
}

/// A `DBGBCR<n>_EL1` value (breakpoint control, Arm ARM D19.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dbgbcr(pub u32);

impl Dbgbcr {
    /// `E`, bit 0: enable.
    pub const E: RegisterField = RegisterField { offset: 0, bits: 1 };
    /// `PMC`, bits 2:1: privilege mode control.
    pub const PMC: RegisterField = RegisterField { offset: 1, bits: 2 };
    /// `BAS`, bits 8:5: byte address select (4 bits for breakpoints).
    pub const BAS: RegisterField = RegisterField { offset: 5, bits: 4 };
    /// `HMC`, bit 13: higher mode control.
    pub const HMC: RegisterField = RegisterField {
        offset: 13,
        bits: 1,
    };
    /// `SSC`, bits 15:14: security state control.
    pub const SSC: RegisterField = RegisterField {
        offset: 14,
        bits: 2,
    };
    /// `LBN`, bits 19:16: linked breakpoint number.
    pub const LBN: RegisterField = RegisterField {
        offset: 16,
        bits: 4,
    };
    /// `BT`, bits 23:20: breakpoint type (0 = unlinked address match).
    pub const BT: RegisterField = RegisterField {
        offset: 20,
        bits: 4,
    };

    /// The kernel's encoding of an execute `ctrl` (`encode_ctrl_reg`). Refuses watchpoint types.
    pub const fn from_ctrl(
        ctrl: ArchHwBreakpointCtrl,
        kernel_in_hyp_mode: bool,
    ) -> Result<Dbgbcr, Arm64CtrlError> {
        if ctrl.ty != ARM_BREAKPOINT_EXECUTE {
            return Err(Arm64CtrlError::WrongRegister { ty: ctrl.ty });
        }
        Ok(Dbgbcr(encode_ctrl_reg(ctrl, kernel_in_hyp_mode)))
    }

    /// The kernel's view of this register (`decode_ctrl_reg`).
    pub const fn ctrl(self) -> ArchHwBreakpointCtrl {
        decode_ctrl_reg(self.0)
    }

    /// Reads a field.
    pub const fn field(self, field: RegisterField) -> u32 {
        field.get(self.0 as u64) as u32
    }
}

/// A `DBGWCR<n>_EL1` value (watchpoint control, Arm ARM D19.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dbgwcr(pub u32);

impl Dbgwcr {
    /// `E`, bit 0: enable.
    pub const E: RegisterField = RegisterField { offset: 0, bits: 1 };
    /// `PAC`, bits 2:1: privilege of access control.
    pub const PAC: RegisterField = RegisterField { offset: 1, bits: 2 };
    /// `LSC`, bits 4:3: load/store control (`0b01` load, `0b10` store, `0b11` both).
    pub const LSC: RegisterField = RegisterField { offset: 3, bits: 2 };
    /// `BAS`, bits 12:5: byte address select.
    pub const BAS: RegisterField = RegisterField { offset: 5, bits: 8 };
    /// `HMC`, bit 13: higher mode control.
    pub const HMC: RegisterField = RegisterField {
        offset: 13,
        bits: 1,
    };
    /// `SSC`, bits 15:14: security state control.
    pub const SSC: RegisterField = RegisterField {
        offset: 14,
        bits: 2,
    };
    /// `LBN`, bits 19:16: linked breakpoint number.
    pub const LBN: RegisterField = RegisterField {
        offset: 16,
        bits: 4,
    };
    /// `WT`, bit 20: watchpoint type (0 = unlinked).
    pub const WT: RegisterField = RegisterField {
        offset: 20,
        bits: 1,
    };
    /// `MASK`, bits 28:24: address mask (power-of-two ranges up to 2 GiB). Linux writes 0.
    pub const MASK: RegisterField = RegisterField {
        offset: 24,
        bits: 5,
    };

    /// The kernel's encoding of a load/store `ctrl` (`encode_ctrl_reg`). Refuses execute.
    pub const fn from_ctrl(
        ctrl: ArchHwBreakpointCtrl,
        kernel_in_hyp_mode: bool,
    ) -> Result<Dbgwcr, Arm64CtrlError> {
        if ctrl.ty == ARM_BREAKPOINT_EXECUTE {
            return Err(Arm64CtrlError::WrongRegister { ty: ctrl.ty });
        }
        Ok(Dbgwcr(encode_ctrl_reg(ctrl, kernel_in_hyp_mode)))
    }

    /// The kernel's view of this register (`decode_ctrl_reg`).
    pub const fn ctrl(self) -> ArchHwBreakpointCtrl {
        decode_ctrl_reg(self.0)
    }

    /// Reads a field.
    pub const fn field(self, field: RegisterField) -> u32 {
        field.get(self.0 as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctrl(len: u8, ty: u8, privilege: u8, enabled: bool) -> ArchHwBreakpointCtrl {
        ArchHwBreakpointCtrl {
            len,
            ty,
            privilege,
            enabled,
        }
    }

    #[test]
    fn worked_encodings() {
        // 4-byte store watchpoint at EL0, enabled:
        //   len 0xf << 5 = 0x1e0; type STORE 2 << 3 = 0x10; EL0 2 << 1 = 0x4; E = 1
        //   0x1e0 | 0x10 | 0x4 | 0x1 = 0x1f5
        let store4 = ctrl(0xf, ARM_BREAKPOINT_STORE, AARCH64_BREAKPOINT_EL0, true);
        assert_eq!(encode_ctrl_reg(store4, false), 0x1f5);
        // 8-byte load+store at EL1 under VHE:
        //   0xff << 5 = 0x1fe0; 3 << 3 = 0x18; 1 << 1 = 0x2; E = 1; HMC = 0x2000
        //   0x1fe0 | 0x18 | 0x2 | 0x1 | 0x2000 = 0x3ffb
        let rw8 = ctrl(0xff, 3, AARCH64_BREAKPOINT_EL1, true);
        assert_eq!(encode_ctrl_reg(rw8, true), 0x3ffb);
        assert_eq!(encode_ctrl_reg(rw8, false), 0x1ffb);
        // HMC only goes with EL1
        let el0 = ctrl(0xff, 3, AARCH64_BREAKPOINT_EL0, false);
        assert_eq!(encode_ctrl_reg(el0, true), 0x1fe0 | 0x18 | 0x4);
        // AArch64 instruction breakpoint, EL0: len 0xf << 5 = 0x1e0, type 0, 0x4, E: 0x1e5
        let x = ctrl(0xf, ARM_BREAKPOINT_EXECUTE, AARCH64_BREAKPOINT_EL0, true);
        let bcr = Dbgbcr::from_ctrl(x, false).unwrap();
        assert_eq!(bcr, Dbgbcr(0x1e5));
        assert_eq!(bcr.field(Dbgbcr::BAS), 0xf);
        assert_eq!(bcr.field(Dbgbcr::PMC), 2);
        assert_eq!(
            Dbgbcr::from_ctrl(store4, false),
            Err(Arm64CtrlError::WrongRegister { ty: 2 })
        );
        let wcr = Dbgwcr::from_ctrl(store4, false).unwrap();
        assert_eq!(wcr.field(Dbgwcr::LSC), 2);
        assert_eq!(wcr.field(Dbgwcr::BAS), 0xf);
        assert_eq!(wcr.field(Dbgwcr::MASK), 0);
        assert_eq!(
            Dbgwcr::from_ctrl(x, false),
            Err(Arm64CtrlError::WrongRegister { ty: 0 })
        );
    }

    #[test]
    fn decode_ignores_hmc_and_upper_bits() {
        let c = decode_ctrl_reg(0x1f00_3ffb);
        assert_eq!(c, ctrl(0xff, 3, 1, true));
        assert_eq!(Dbgwcr(0x1f00_3ffb).field(Dbgwcr::MASK), 0x1f);
    }

    #[test]
    fn byte_address_select_inside_a_doubleword() {
        // 2 bytes at offset 3: 0b11 << 3 = 0x18
        assert_eq!(byte_address_select(0x1003, 2), Some((0x1000, 0x18)));
        // 5 bytes at offset 3: 0x1f << 3 = 0xf8, exactly to the end of the doubleword
        assert_eq!(byte_address_select(0x100b, 5), Some((0x1008, 0xf8)));
        // crossing into the next doubleword does not fit
        assert_eq!(byte_address_select(0x100b, 6), None);
        assert_eq!(byte_address_select(0x1000, 0), None);
        assert_eq!(byte_address_select(0x1000, 9), None);
        assert_eq!(byte_address_select(0x1000, 8), Some((0x1000, 0xff)));
    }

    #[test]
    fn generic_fields_for_ptrace() {
        // BAS 0x18 is 2 bytes starting at offset 3
        assert_eq!(
            arch_bp_generic_fields(ctrl(0x18, ARM_BREAKPOINT_LOAD, 2, true)),
            Ok((2, BpType::R, 3))
        );
        assert_eq!(
            arch_bp_generic_fields(ctrl(0xff, 3, 2, true)),
            Ok((8, BpType::RW, 0))
        );
        assert_eq!(
            arch_bp_generic_fields(ctrl(0xf, 0, 2, true)),
            Ok((4, BpType::X, 0))
        );
        assert_eq!(
            arch_bp_generic_fields(ctrl(0, 2, 2, true)),
            Err(Arm64CtrlError::BadByteSelect(0))
        );
        // a hole in the byte select (0b101) is not a length
        assert_eq!(
            arch_bp_generic_fields(ctrl(0x5, 2, 2, true)),
            Err(Arm64CtrlError::BadByteSelect(0x5))
        );
    }

    #[test]
    fn register_fields_set_and_get() {
        let v = Dbgwcr::MASK.set(0, 3).unwrap();
        assert_eq!(v, 3 << 24);
        assert_eq!(Dbgwcr::MASK.set(0, 32), None);
        assert_eq!(Dbgwcr::MASK.get(v), 3);
    }

    proptest! {
        #[test]
        fn ctrl_round_trips(len in any::<u8>(), ty in 0u8..4, privilege in 0u8..4,
                            enabled in any::<bool>(), hyp in any::<bool>()) {
            let c = ctrl(len, ty, privilege, enabled);
            prop_assert_eq!(decode_ctrl_reg(encode_ctrl_reg(c, hyp)), c);
        }

        #[test]
        fn bas_covers_exactly_the_range(addr in any::<u64>(), len in 1u64..=8) {
            if let Some((base, bas)) = byte_address_select(addr, len) {
                prop_assert_eq!(base % 8, 0);
                prop_assert_eq!(bas.count_ones() as u64, len);
                prop_assert_eq!(base + bas.trailing_zeros() as u64, addr);
            } else {
                prop_assert!(addr % 8 + len > 8);
            }
        }
    }
}
