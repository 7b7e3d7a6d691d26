//! DR7, the x86 debug control register, encoded exactly as Linux encodes it.
//!
//! Follows `encode_dr7`, `__encode_dr7`, `decode_dr7` and `arch_bp_generic_fields` in
//! `arch/x86/kernel/hw_breakpoint.c`, with the constants of `arch/x86/include/asm/hw_breakpoint.h`
//! and `arch/x86/include/uapi/asm/debugreg.h` (Intel SDM Vol. 3B §18.2.4, "Debug Control
//! Register (DR7)").
//!
//! DR7 holds, for each of the four address registers DR0..DR3 ("slot" `i`):
//! - bits `2i` and `2i+1`: the local (`Li`) and global (`Gi`) enable bits;
//! - bits `16+4i .. 16+4i+3`: the 2-bit `R/Wi` field (low) and the 2-bit `LENi` field (high).
//!
//! The kernel describes a breakpoint with two one-byte values, [`X86Len`] and [`X86Type`], whose
//! low nibbles combine (`(len | type) & 0xf`) into that 4-bit field; the high bits (`0x40`,
//! `0x80`) only mark "this is a length" / "this is a type".

use core::fmt;

use crate::access::BpType;

/// Number of address debug registers (DR0..DR3): `HBP_NUM`.
pub const HBP_NUM: u8 = 4;

/// `DR_CONTROL_SHIFT`: bit where the per-slot `R/W`+`LEN` fields start.
pub const DR_CONTROL_SHIFT: u32 = 16;
/// `DR_CONTROL_SIZE`: bits per slot in the `R/W`+`LEN` area.
pub const DR_CONTROL_SIZE: u32 = 4;
/// `DR_LOCAL_ENABLE`: the `L0` bit; slot `i` uses `DR_LOCAL_ENABLE << (2*i)`.
pub const DR_LOCAL_ENABLE: u64 = 0x1;
/// `DR_GLOBAL_ENABLE`: the `G0` bit; slot `i` uses `DR_GLOBAL_ENABLE << (2*i)`.
pub const DR_GLOBAL_ENABLE: u64 = 0x2;
/// `DR_ENABLE_SIZE`: bits per slot in the enable area.
pub const DR_ENABLE_SIZE: u32 = 2;
/// `DR_LOCAL_SLOWDOWN`: the `LE` bit (bit 8), "local exact". gdb sets it.
pub const DR_LOCAL_SLOWDOWN: u64 = 0x100;
/// `DR_GLOBAL_SLOWDOWN`: the `GE` bit (bit 9), "global exact". The kernel's `encode_dr7` sets it.
pub const DR_GLOBAL_SLOWDOWN: u64 = 0x200;
/// `DR_CONTROL_RESERVED` on i386: bits `ptrace_write_dr7` masks off before decoding.
pub const DR_CONTROL_RESERVED_32: u64 = 0xFC00;
/// `DR_CONTROL_RESERVED` on x86_64: as on i386 plus the upper 32 bits.
pub const DR_CONTROL_RESERVED_64: u64 = 0xFFFF_FFFF_0000_FC00;

/// DR7 `R/Wn` field value `DR_RW_EXECUTE` (`00`): break on instruction execution.
pub const DR_RW_EXECUTE: u8 = 0x0;
/// DR7 `R/Wn` field value `DR_RW_WRITE` (`01`): break on data writes.
pub const DR_RW_WRITE: u8 = 0x1;
/// DR7 `R/Wn` field value `10`: I/O reads and writes. Linux never uses it and refuses it.
pub const DR_RW_IO: u8 = 0x2;
/// DR7 `R/Wn` field value `DR_RW_READ` (`11`): break on data reads or writes.
pub const DR_RW_READ: u8 = 0x3;
/// DR7 `LENn` field value `DR_LEN_1` (`00`), already shifted left by 2 as the kernel keeps it.
pub const DR_LEN_1: u8 = 0x0;
/// DR7 `LENn` field value `DR_LEN_2` (`01`), shifted left by 2.
pub const DR_LEN_2: u8 = 0x4;
/// DR7 `LENn` field value `DR_LEN_4` (`11`), shifted left by 2.
pub const DR_LEN_4: u8 = 0xC;
/// DR7 `LENn` field value `DR_LEN_8` (`10`, x86_64 only), shifted left by 2.
pub const DR_LEN_8: u8 = 0x8;

/// The kernel's length encoding (`X86_BREAKPOINT_LEN_*`): `0x40 | DR_LEN_n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum X86Len {
    /// `X86_BREAKPOINT_LEN_1` = `0x40` (DR7 `LEN` = `00`). Also `X86_BREAKPOINT_LEN_X`, the
    /// length every execute breakpoint must use.
    Len1 = 0x40,
    /// `X86_BREAKPOINT_LEN_2` = `0x44` (DR7 `LEN` = `01`).
    Len2 = 0x44,
    /// `X86_BREAKPOINT_LEN_4` = `0x4c` (DR7 `LEN` = `11`).
    Len4 = 0x4c,
    /// `X86_BREAKPOINT_LEN_8` = `0x48` (DR7 `LEN` = `10`; x86_64 only).
    Len8 = 0x48,
}

impl X86Len {
    /// `X86_BREAKPOINT_LEN_X`: the length of an execute breakpoint (same bits as `LEN_1`).
    pub const LEN_X: X86Len = X86Len::Len1;

    /// The kernel value (`0x40`, `0x44`, `0x4c`, `0x48`).
    pub const fn raw(self) -> u8 {
        self as u8
    }

    /// Parses a kernel length value; `None` for anything but the four encodings.
    pub const fn from_raw(raw: u8) -> Option<X86Len> {
        match raw {
            0x40 => Some(X86Len::Len1),
            0x44 => Some(X86Len::Len2),
            0x4c => Some(X86Len::Len4),
            0x48 => Some(X86Len::Len8),
            _ => None,
        }
    }

    /// The length in bytes this encoding watches (1, 2, 4 or 8).
    pub const fn bytes(self) -> u64 {
        match self {
            X86Len::Len1 => 1,
            X86Len::Len2 => 2,
            X86Len::Len4 => 4,
            X86Len::Len8 => 8,
        }
    }

    /// The encoding for a length in bytes (1, 2, 4, 8), if there is one.
    pub const fn from_bytes(bytes: u64) -> Option<X86Len> {
        match bytes {
            1 => Some(X86Len::Len1),
            2 => Some(X86Len::Len2),
            4 => Some(X86Len::Len4),
            8 => Some(X86Len::Len8),
            _ => None,
        }
    }

    /// The 2-bit DR7 `LENn` field, shifted left by 2 (`DR_LEN_*`).
    pub const fn dr7_field(self) -> u8 {
        self as u8 & 0xc
    }
}

/// The kernel's type encoding (`X86_BREAKPOINT_*`): `0x80 | DR_RW_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum X86Type {
    /// `X86_BREAKPOINT_EXECUTE` = `0x80` (DR7 `R/W` = `00`).
    Execute = 0x80,
    /// `X86_BREAKPOINT_WRITE` = `0x81` (DR7 `R/W` = `01`).
    Write = 0x81,
    /// `X86_BREAKPOINT_RW` = `0x83` (DR7 `R/W` = `11`: reads or writes).
    ReadWrite = 0x83,
}

impl X86Type {
    /// The kernel value (`0x80`, `0x81`, `0x83`).
    pub const fn raw(self) -> u8 {
        self as u8
    }

    /// Parses a kernel type value. `0x82` (I/O) and anything else give `None`.
    pub const fn from_raw(raw: u8) -> Option<X86Type> {
        match raw {
            0x80 => Some(X86Type::Execute),
            0x81 => Some(X86Type::Write),
            0x83 => Some(X86Type::ReadWrite),
            _ => None,
        }
    }

    /// The 2-bit DR7 `R/Wn` field (`DR_RW_*`).
    pub const fn dr7_field(self) -> u8 {
        self as u8 & 0x3
    }
}

/// Why a DR7 codec call was refused. Every variant is `EINVAL` in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X86Error {
    /// A slot number outside `0..=3`.
    InvalidSlot(u8),
    /// A type value that is not execute (`0x80`), write (`0x81`) or read/write (`0x83`); `0x82`
    /// is the I/O type.
    UnsupportedType(u8),
    /// A length value that is not one of `0x40`, `0x44`, `0x4c`, `0x48`.
    UnsupportedLen(u8),
    /// An execute breakpoint with a length other than `X86_BREAKPOINT_LEN_X` (DR7 `LEN` = `00`).
    ExecuteNeedsLenX(u8),
    /// An 8-byte length on a 32-bit kernel.
    Len8On32Bit,
}

impl X86Error {
    /// The errno the kernel returns for this case: always `EINVAL` (22).
    pub const fn errno(self) -> i32 {
        22
    }
}

impl fmt::Display for X86Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            X86Error::InvalidSlot(slot) => write!(
                f,
                "debug register slot {slot} does not exist: x86 has slots 0, 1, 2 and 3"
            ),
            X86Error::UnsupportedType(raw) if raw & 0x3 == DR_RW_IO => write!(
                f,
                "DR7 type {raw:#x} is an I/O breakpoint, which Linux does not support: \
                 use execute (R/W=00), write (01) or read/write (11)"
            ),
            X86Error::UnsupportedType(raw) => write!(
                f,
                "{raw:#x} is not an x86 breakpoint type: use execute (0x80), write (0x81) \
                 or read/write (0x83)"
            ),
            X86Error::UnsupportedLen(raw) => write!(
                f,
                "{raw:#x} is not an x86 breakpoint length: use 0x40 (1 byte), 0x44 (2), \
                 0x4c (4) or 0x48 (8)"
            ),
            X86Error::ExecuteNeedsLenX(raw) => write!(
                f,
                "an execute breakpoint must have DR7 length 00 (X86_BREAKPOINT_LEN_X), \
                 not {raw:#x}: set LEN to 00 for execute breakpoints"
            ),
            X86Error::Len8On32Bit => f.write_str(
                "8-byte watchpoints need a 64-bit kernel: use length 1, 2 or 4, or several \
                 watchpoints",
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for X86Error {}

const fn check_slot(slot: u8) -> Result<u32, X86Error> {
    if slot < HBP_NUM {
        Ok(slot as u32)
    } else {
        Err(X86Error::InvalidSlot(slot))
    }
}

/// The 4-bit `LENn:R/Wn` field for `len` and `ty`, placed at slot `slot`.
const fn control_bits(slot: u32, len: X86Len, ty: X86Type) -> u64 {
    (((len as u8 | ty as u8) & 0xf) as u64) << (DR_CONTROL_SHIFT + slot * DR_CONTROL_SIZE)
}

/// `__encode_dr7(slot, len, type)`: the slot's `LEN`/`R/W` field and its global enable bit, without
/// the `GE` bit. The kernel's `arch_uninstall_hw_breakpoint` clears slots with this value.
///
/// Like the kernel, this does not check that execute breakpoints use [`X86Len::LEN_X`]; use
/// [`arch_bp_generic_fields`] or the validator for that.
pub const fn encode_dr7_slot(slot: u8, len: X86Len, ty: X86Type) -> Result<u64, X86Error> {
    match check_slot(slot) {
        Ok(i) => Ok(control_bits(i, len, ty) | (DR_GLOBAL_ENABLE << (i * DR_ENABLE_SIZE))),
        Err(e) => Err(e),
    }
}

/// `encode_dr7(slot, len, type)`: [`encode_dr7_slot`] plus `DR_GLOBAL_SLOWDOWN` (`GE`, `0x200`),
/// the value the kernel ORs into the per-CPU `cpu_dr7` when it installs a perf breakpoint.
///
/// `encode_dr7(0, Len4, Write)` is `0x000D0202`.
pub const fn encode_dr7(slot: u8, len: X86Len, ty: X86Type) -> Result<u64, X86Error> {
    match encode_dr7_slot(slot, len, ty) {
        Ok(v) => Ok(v | DR_GLOBAL_SLOWDOWN),
        Err(e) => Err(e),
    }
}

/// The value a ptrace user (gdb) writes for one slot: the `LEN`/`R/W` field, the slot's
/// *local* enable bit `Li`, and `DR_LOCAL_SLOWDOWN` (`LE`, `0x100`), as gdb's `x86-dregs.c`
/// does. The kernel accepts L or G bits alike in `ptrace_write_dr7`.
pub const fn encode_dr7_local(slot: u8, len: X86Len, ty: X86Type) -> Result<u64, X86Error> {
    match check_slot(slot) {
        Ok(i) => Ok(control_bits(i, len, ty)
            | (DR_LOCAL_ENABLE << (i * DR_ENABLE_SIZE))
            | DR_LOCAL_SLOWDOWN),
        Err(e) => Err(e),
    }
}

/// Every DR7 bit that belongs to one slot: its `LEN`/`R/W` field and its `L`/`G` bits (the
/// historic kernel table `dr7_masks[]`: `0x000f0003`, `0x00f0000c`, `0x0f000030`, `0xf00000c0`).
pub const fn dr7_slot_mask(slot: u8) -> Result<u64, X86Error> {
    match check_slot(slot) {
        Ok(i) => Ok((0xf << (DR_CONTROL_SHIFT + i * DR_CONTROL_SIZE)) | (0x3 << (i * 2))),
        Err(e) => Err(e),
    }
}

/// One slot of a DR7 value, as `decode_dr7` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dr7Slot {
    /// The local enable bit `Li`.
    pub local: bool,
    /// The global enable bit `Gi`.
    pub global: bool,
    /// The length (always one of the four: every 2-bit `LEN` value has an encoding).
    pub len: X86Len,
    /// The type, or `None` for `R/W` = `10` (I/O breakpoints, which Linux refuses).
    pub ty: Option<X86Type>,
    /// The kernel's raw type value, `(field & 0x3) | 0x80`, including `0x82` for I/O.
    pub raw_type: u8,
}

impl Dr7Slot {
    /// `decode_dr7`'s return value is non-zero: the kernel treats the slot as enabled when
    /// either the local or the global bit is set.
    pub const fn enabled(&self) -> bool {
        self.local || self.global
    }
}

/// `decode_dr7(dr7, slot, &len, &type)`: the length, type and enable bits of one slot.
pub const fn decode_dr7(dr7: u64, slot: u8) -> Result<Dr7Slot, X86Error> {
    let i = match check_slot(slot) {
        Ok(i) => i,
        Err(e) => return Err(e),
    };
    let info = dr7 >> (DR_CONTROL_SHIFT + i * DR_CONTROL_SIZE);
    let raw_len = ((info & 0xc) as u8) | 0x40;
    let raw_type = ((info & 0x3) as u8) | 0x80;
    let len = match X86Len::from_raw(raw_len) {
        Some(len) => len,
        // (info & 0xc) | 0x40 is always one of 0x40, 0x44, 0x48, 0x4c.
        None => X86Len::Len1,
    };
    let enable = (dr7 >> (i * DR_ENABLE_SIZE)) & 0x3;
    Ok(Dr7Slot {
        local: enable & DR_LOCAL_ENABLE != 0,
        global: enable & DR_GLOBAL_ENABLE != 0,
        len,
        ty: X86Type::from_raw(raw_type),
        raw_type,
    })
}

/// `arch_bp_generic_fields(x86_len, x86_type, &gen_len, &gen_type)`: the generic
/// `(bp_len, bp_type)` for a kernel length/type pair, as ptrace's DR7 write path converts it.
///
/// Follows the kernel's order: the type first (execute requires `LEN_X` and yields
/// `sizeof(long)`, 8 or 4), then the length (8 bytes only on a 64-bit kernel).
pub const fn arch_bp_generic_fields(
    x86_len: u8,
    x86_type: u8,
    is_64bit: bool,
) -> Result<(u64, BpType), X86Error> {
    let bp_type = match X86Type::from_raw(x86_type) {
        Some(X86Type::Execute) => {
            if x86_len != X86Len::LEN_X.raw() {
                return Err(X86Error::ExecuteNeedsLenX(x86_len));
            }
            return Ok((if is_64bit { 8 } else { 4 }, BpType::X));
        }
        Some(X86Type::Write) => BpType::W,
        Some(X86Type::ReadWrite) => BpType::RW,
        None => return Err(X86Error::UnsupportedType(x86_type)),
    };
    match X86Len::from_raw(x86_len) {
        Some(X86Len::Len8) if !is_64bit => Err(X86Error::Len8On32Bit),
        Some(len) => Ok((len.bytes(), bp_type)),
        None => Err(X86Error::UnsupportedLen(x86_len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LENS: [X86Len; 4] = [X86Len::Len1, X86Len::Len2, X86Len::Len4, X86Len::Len8];
    const TYPES: [X86Type; 3] = [X86Type::Execute, X86Type::Write, X86Type::ReadWrite];

    #[test]
    fn worked_values_from_the_kernel_reference() {
        // (0xD << 16) | G0 (0x2) | GE (0x200)
        assert_eq!(encode_dr7(0, X86Len::Len4, X86Type::Write), Ok(0x000D_0202));
        // field 0 at bit 28, G3 = 0x2 << 6 = 0x80, GE
        assert_eq!(
            encode_dr7(3, X86Len::LEN_X, X86Type::Execute),
            Ok(0x0000_0280)
        );
        assert_eq!(
            encode_dr7_slot(0, X86Len::Len4, X86Type::Write),
            Ok(0x000D_0002)
        );
        // slot 1, len 8 (10b<<2 = 0x8), rw (11b): 0xB << 20, G1 = 0x8
        assert_eq!(
            encode_dr7(1, X86Len::Len8, X86Type::ReadWrite),
            Ok(0x00B0_0208)
        );
        // gdb-style: slot 2, len 2 (0x4) write (0x1): 0x5 << 24, L2 = 0x10, LE = 0x100
        assert_eq!(
            encode_dr7_local(2, X86Len::Len2, X86Type::Write),
            Ok(0x0500_0110)
        );
    }

    #[test]
    fn slot_masks_match_the_historic_table() {
        let expected = [0x000f_0003, 0x00f0_000c, 0x0f00_0030, 0xf000_00c0];
        for (slot, mask) in expected.into_iter().enumerate() {
            assert_eq!(dr7_slot_mask(slot as u8), Ok(mask));
        }
        assert_eq!(dr7_slot_mask(4), Err(X86Error::InvalidSlot(4)));
    }

    #[test]
    fn bad_slots_are_errors_not_panics() {
        for slot in [4u8, 5, 200, 255] {
            let e = Err(X86Error::InvalidSlot(slot));
            assert_eq!(encode_dr7(slot, X86Len::Len1, X86Type::Write), e);
            assert_eq!(encode_dr7_slot(slot, X86Len::Len1, X86Type::Write), e);
            assert_eq!(encode_dr7_local(slot, X86Len::Len1, X86Type::Write), e);
            assert_eq!(decode_dr7(u64::MAX, slot), Err(X86Error::InvalidSlot(slot)));
        }
    }

    #[test]
    fn decode_reports_io_type_and_enable_bits() {
        // slot 2: R/W = 10 (I/O), LEN = 01, only L2 set
        let dr7 = (0x6u64 << 24) | (0x1 << 4);
        let slot = decode_dr7(dr7, 2).unwrap();
        assert_eq!(slot.ty, None);
        assert_eq!(slot.raw_type, 0x82);
        assert_eq!(slot.len, X86Len::Len2);
        assert!(slot.local && !slot.global && slot.enabled());
        let off = decode_dr7(dr7, 0).unwrap();
        assert!(!off.enabled());
        assert_eq!((off.len, off.ty), (X86Len::Len1, Some(X86Type::Execute)));
    }

    #[test]
    fn generic_fields_follow_the_kernel() {
        assert_eq!(arch_bp_generic_fields(0x40, 0x80, true), Ok((8, BpType::X)));
        assert_eq!(
            arch_bp_generic_fields(0x40, 0x80, false),
            Ok((4, BpType::X))
        );
        assert_eq!(
            arch_bp_generic_fields(0x4c, 0x80, true),
            Err(X86Error::ExecuteNeedsLenX(0x4c))
        );
        assert_eq!(arch_bp_generic_fields(0x44, 0x81, true), Ok((2, BpType::W)));
        assert_eq!(
            arch_bp_generic_fields(0x4c, 0x83, true),
            Ok((4, BpType::RW))
        );
        assert_eq!(
            arch_bp_generic_fields(0x48, 0x83, true),
            Ok((8, BpType::RW))
        );
        assert_eq!(
            arch_bp_generic_fields(0x48, 0x81, false),
            Err(X86Error::Len8On32Bit)
        );
        assert_eq!(
            arch_bp_generic_fields(0x40, 0x82, true),
            Err(X86Error::UnsupportedType(0x82))
        );
        // the type is checked before the length
        assert_eq!(
            arch_bp_generic_fields(0x41, 0x82, true),
            Err(X86Error::UnsupportedType(0x82))
        );
        assert_eq!(
            arch_bp_generic_fields(0x41, 0x81, true),
            Err(X86Error::UnsupportedLen(0x41))
        );
        assert_eq!(X86Error::UnsupportedLen(0x41).errno(), 22);
    }

    #[test]
    fn every_slot_len_type_round_trips() {
        for slot in 0..HBP_NUM {
            for len in LENS {
                for ty in TYPES {
                    for value in [
                        encode_dr7(slot, len, ty).unwrap(),
                        encode_dr7_local(slot, len, ty).unwrap(),
                    ] {
                        let d = decode_dr7(value, slot).unwrap();
                        assert_eq!((d.len, d.ty), (len, Some(ty)));
                        assert!(d.enabled());
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip_survives_other_slots(
            slot in 0u8..4, li in 0usize..4, ti in 0usize..3, other in any::<u64>()
        ) {
            let (len, ty) = (LENS[li], TYPES[ti]);
            let mask = dr7_slot_mask(slot).unwrap();
            let dr7 = (other & !mask & !DR_GLOBAL_SLOWDOWN) | encode_dr7(slot, len, ty).unwrap();
            let d = decode_dr7(dr7, slot).unwrap();
            prop_assert_eq!((d.len, d.ty, d.global), (len, Some(ty), true));
            // the mask cleared this slot's L bit and encode_dr7 sets only G
            prop_assert!(!d.local);
            // clearing with the mask removes exactly this slot's bits
            prop_assert_eq!(dr7 & !mask & !DR_GLOBAL_SLOWDOWN, other & !mask & !DR_GLOBAL_SLOWDOWN);
        }

        #[test]
        fn decode_never_fails_for_valid_slots(dr7 in any::<u64>(), slot in 0u8..4) {
            let d = decode_dr7(dr7, slot).unwrap();
            prop_assert_eq!(d.len.raw() & 0x3, 0);
            prop_assert_eq!(d.ty.is_none(), d.raw_type == 0x82);
        }
    }
}
