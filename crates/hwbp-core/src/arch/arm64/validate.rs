//! The kernel's checks on an arm64 breakpoint request, in the kernel's order.
//!
//! Follows `arch_build_bp_info` and `hw_breakpoint_arch_parse` in
//! `arch/arm64/kernel/hw_breakpoint.c`, and the generic kernel-space policy of
//! `hw_breakpoint_parse` in `kernel/events/hw_breakpoint.c`.
//!
//! Differences from x86 worth knowing:
//! - Read-only watchpoints exist (`LSC` = load).
//! - Lengths 1..=8 are all valid (`HW_BREAKPOINT_LEN_3/5/6/7` exist for arm64).
//! - For AArch64 tasks the kernel does **no alignment check**: it rounds the address down to
//!   the doubleword (watchpoints) or word (breakpoints) and shifts the byte-select by the
//!   offset. The byte-select is an 8-bit field, so bytes shifted past the doubleword are
//!   silently dropped ([`Arm64BreakpointInfo::truncated`]).
//! - AArch64 instruction breakpoints always get length 4, whatever was asked.
//! - AArch32 (compat) tasks get the old ARM alignment rules.

use core::fmt;

use super::ctrl::{
    bas_for_len, len_of_bas, ArchHwBreakpointCtrl, AARCH64_BREAKPOINT_EL0, AARCH64_BREAKPOINT_EL1,
    ARM_BREAKPOINT_EXECUTE, ARM_BREAKPOINT_LEN, ARM_BREAKPOINT_LOAD, ARM_BREAKPOINT_STORE,
};
use crate::access::BpType;
use crate::arch::x86::BreakpointRequest;

/// `TASK_SIZE` for a 48-bit user address space (the common arm64 configuration).
pub const TASK_SIZE_ARM64_48BIT: u64 = 1 << 48;

/// The kernel and caller facts the checks depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm64Environment {
    /// `TASK_SIZE`: addresses at or above it are kernel space.
    pub task_size: u64,
    /// The target is an AArch32 task (`is_compat_bp`).
    pub compat: bool,
    /// The breakpoint belongs to a task (`bp->hw.target` set), not to a CPU.
    pub per_task: bool,
    /// `attr.disabled`.
    pub disabled: bool,
    /// `attr.exclude_kernel`.
    pub exclude_kernel: bool,
    /// The caller has `CAP_SYS_ADMIN`.
    pub cap_sys_admin: bool,
}

impl Default for Arm64Environment {
    /// A per-task, enabled breakpoint for an AArch64 task in a 48-bit address space, from an
    /// unprivileged caller.
    fn default() -> Self {
        Arm64Environment {
            task_size: TASK_SIZE_ARM64_48BIT,
            compat: false,
            per_task: true,
            disabled: false,
            exclude_kernel: false,
            cap_sys_admin: false,
        }
    }
}

/// What the kernel programs for an accepted request (`struct arch_hw_breakpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm64BreakpointInfo {
    /// The value for DBGBVR/DBGWVR: the request address rounded down to the word (execute) or
    /// doubleword (data).
    pub address: u64,
    /// The control fields (`len` is the shifted byte-select).
    pub ctrl: ArchHwBreakpointCtrl,
    /// Byte-select bits were shifted out of the 8-bit field: the kernel watches fewer bytes
    /// than requested (offset + length past the end of the doubleword).
    pub truncated: bool,
}

impl Arm64BreakpointInfo {
    /// True if this goes to the breakpoint (BRP) pool, false for the watchpoint (WRP) pool.
    pub const fn is_breakpoint(&self) -> bool {
        self.ctrl.is_breakpoint()
    }
}

/// Why the kernel refuses an arm64 breakpoint request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm64BreakpointError {
    /// `bp_type` is `HW_BREAKPOINT_EMPTY` or `HW_BREAKPOINT_INVALID` (generic check).
    EmptyOrInvalidType(BpType),
    /// `x` mixed with `r`/`w`, or unknown bits.
    UnsupportedType(BpType),
    /// A length outside 1..=8.
    BadLength {
        /// `bp_len`.
        len: u64,
    },
    /// An AArch32 instruction breakpoint whose length is not 2 or 4.
    CompatExecuteLength {
        /// `bp_len`.
        len: u64,
    },
    /// An AArch32 request whose address offset is not allowed for its length.
    CompatMisaligned {
        /// `bp_addr`.
        addr: u64,
        /// `bp_len`.
        len: u64,
    },
    /// A kernel address in a per-task breakpoint (the kernel would have to step it).
    KernelAddressPerTask {
        /// `bp_addr`.
        addr: u64,
    },
    /// A kernel address with `exclude_kernel` set.
    KernelAddressExcluded {
        /// `bp_addr`.
        addr: u64,
    },
    /// A kernel address without `CAP_SYS_ADMIN`.
    KernelAddressNeedsCapSysAdmin {
        /// `bp_addr`.
        addr: u64,
    },
}

impl Arm64BreakpointError {
    /// The errno: `EPERM` (1) for the capability check, `EINVAL` (22) otherwise.
    pub const fn errno(self) -> i32 {
        match self {
            Arm64BreakpointError::KernelAddressNeedsCapSysAdmin { .. } => 1,
            _ => 22,
        }
    }
}

impl fmt::Display for Arm64BreakpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Arm64BreakpointError as E;
        match *self {
            E::EmptyOrInvalidType(t) if t == BpType::EMPTY => {
                f.write_str("no access type given: use r, w, rw or x")
            }
            E::EmptyOrInvalidType(_) => f.write_str(
                "x cannot be combined with r or w in one breakpoint: use x alone, or r, w or rw",
            ),
            E::UnsupportedType(t) => write!(
                f,
                "access type {:#x} is not a valid breakpoint type: use r, w, rw or x",
                t.0
            ),
            E::BadLength { len } => write!(
                f,
                "length {len} is not supported on arm64: use 1 to 8 bytes, or split the range \
                 into several watchpoints"
            ),
            E::CompatExecuteLength { len } => write!(
                f,
                "a 32-bit (AArch32) instruction breakpoint must be 2 (Thumb) or 4 (ARM) bytes, \
                 not {len}: use length 2 or 4"
            ),
            E::CompatMisaligned { addr, len } => write!(
                f,
                "address {addr:#x} is not aligned for a {len}-byte watchpoint in a 32-bit \
                 task: align it to 4 bytes (8 for length 8), or use length 1 or 2"
            ),
            E::KernelAddressPerTask { addr } => write!(
                f,
                "kernel address {addr:#x} cannot be watched per task on arm64: watch it on \
                 every CPU instead"
            ),
            E::KernelAddressExcluded { addr } => write!(
                f,
                "address {addr:#x} is in kernel space but kernel events are excluded: watch \
                 a user-space address, or include kernel events (needs CAP_SYS_ADMIN)"
            ),
            E::KernelAddressNeedsCapSysAdmin { addr } => write!(
                f,
                "address {addr:#x} is in kernel space, which needs CAP_SYS_ADMIN: run as \
                 root or watch a user-space address"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Arm64BreakpointError {}

/// `arch_check_bp_in_kernelspace`: `va >= TASK_SIZE && va + len - 1 >= TASK_SIZE`, with `len`
/// decoded from the (possibly shifted) byte-select as the kernel's `get_hbp_len` does (0 for
/// a shifted value).
const fn in_kernel_space(address: u64, bas: u8, task_size: u64) -> bool {
    let len = len_of_bas(bas);
    address >= task_size && address.wrapping_add(len).wrapping_sub(1) >= task_size
}

/// Runs the kernel's checks on `req` and returns what the kernel would program, or the error
/// `perf_event_open` would return (slot availability, `ENOSPC`, is not checked here).
///
/// Order: generic `EMPTY`/`INVALID`; type; length 1..=8; execute length (compat: 2 or 4;
/// AArch64: forced to 4); privilege from the *requested* address; alignment (compat rules
/// only); rounding and byte-select shift; kernel address in a per-task breakpoint → `EINVAL`;
/// then the generic kernel-space policy on the *rounded* address (`exclude_kernel` → `EINVAL`,
/// no `CAP_SYS_ADMIN` → `EPERM`).
pub fn validate_breakpoint(
    req: &BreakpointRequest,
    env: &Arm64Environment,
) -> Result<Arm64BreakpointInfo, Arm64BreakpointError> {
    use Arm64BreakpointError as E;
    if req.bp_type == BpType::EMPTY || req.bp_type == BpType::INVALID {
        return Err(E::EmptyOrInvalidType(req.bp_type));
    }
    let ty = match req.bp_type {
        BpType::X => ARM_BREAKPOINT_EXECUTE,
        BpType::R => ARM_BREAKPOINT_LOAD,
        BpType::W => ARM_BREAKPOINT_STORE,
        BpType::RW => ARM_BREAKPOINT_LOAD | ARM_BREAKPOINT_STORE,
        other => return Err(E::UnsupportedType(other)),
    };
    let mut bas = match bas_for_len(req.len) {
        Some(bas) => bas,
        None => return Err(E::BadLength { len: req.len }),
    };
    let len_2 = ARM_BREAKPOINT_LEN[1];
    let len_4 = ARM_BREAKPOINT_LEN[3];
    if ty == ARM_BREAKPOINT_EXECUTE {
        if env.compat {
            if bas != len_2 && bas != len_4 {
                return Err(E::CompatExecuteLength { len: req.len });
            }
        } else {
            // "Some tools (perf) assume breakpoints should be sizeof(long)": fixed up to 4.
            bas = len_4;
        }
    }
    let privilege = if in_kernel_space(req.addr, bas, env.task_size) {
        AARCH64_BREAKPOINT_EL1
    } else {
        AARCH64_BREAKPOINT_EL0
    };

    let alignment_mask: u64 = if env.compat {
        let mask = if bas == ARM_BREAKPOINT_LEN[7] {
            0x7
        } else {
            0x3
        };
        let offset = req.addr & mask;
        let allowed = match offset {
            0 => true,
            1 | 2 => bas == len_2 || bas == ARM_BREAKPOINT_LEN[0],
            3 => bas == ARM_BREAKPOINT_LEN[0],
            _ => false,
        };
        if !allowed {
            return Err(E::CompatMisaligned {
                addr: req.addr,
                len: req.len,
            });
        }
        mask
    } else if ty == ARM_BREAKPOINT_EXECUTE {
        0x3
    } else {
        0x7
    };
    let offset = req.addr & alignment_mask;
    let shifted = (bas as u32) << offset;
    let info = Arm64BreakpointInfo {
        address: req.addr & !alignment_mask,
        ctrl: ArchHwBreakpointCtrl {
            len: shifted as u8,
            ty,
            privilege,
            enabled: !env.disabled,
        },
        truncated: shifted > 0xff,
    };

    if privilege == AARCH64_BREAKPOINT_EL1 && env.per_task {
        return Err(E::KernelAddressPerTask { addr: req.addr });
    }
    if in_kernel_space(info.address, info.ctrl.len, env.task_size) {
        if env.exclude_kernel {
            return Err(E::KernelAddressExcluded { addr: req.addr });
        }
        if !env.cap_sys_admin {
            return Err(E::KernelAddressNeedsCapSysAdmin { addr: req.addr });
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Arm64BreakpointError as E;

    fn req(addr: u64, len: u64, bp_type: BpType) -> BreakpointRequest {
        BreakpointRequest { addr, len, bp_type }
    }

    fn info(address: u64, len: u8, ty: u8, privilege: u8, truncated: bool) -> Arm64BreakpointInfo {
        Arm64BreakpointInfo {
            address,
            ctrl: ArchHwBreakpointCtrl {
                len,
                ty,
                privilege,
                enabled: true,
            },
            truncated,
        }
    }

    const ENV: Arm64Environment = Arm64Environment {
        task_size: TASK_SIZE_ARM64_48BIT,
        compat: false,
        per_task: true,
        disabled: false,
        exclude_kernel: false,
        cap_sys_admin: false,
    };
    const KERNEL: u64 = 0xffff_8000_1000_0000;

    #[test]
    fn read_only_watchpoints_exist() {
        let r = validate_breakpoint(&req(0x1000, 4, BpType::R), &ENV);
        assert_eq!(
            r,
            Ok(info(
                0x1000,
                0xf,
                ARM_BREAKPOINT_LOAD,
                AARCH64_BREAKPOINT_EL0,
                false
            ))
        );
    }

    #[test]
    fn unaligned_watchpoints_shift_the_byte_select() {
        // 2 bytes at 0x1003: offset 3, BAS 0x3 << 3 = 0x18, address rounded to 0x1000
        let r = validate_breakpoint(&req(0x1003, 2, BpType::W), &ENV);
        assert_eq!(r, Ok(info(0x1000, 0x18, ARM_BREAKPOINT_STORE, 2, false)));
        // 3 bytes at 0x2005: BAS 0x7 << 5 = 0xe0 (bytes 5, 6, 7)
        let r = validate_breakpoint(&req(0x2005, 3, BpType::RW), &ENV);
        assert_eq!(r, Ok(info(0x2000, 0xe0, 3, 2, false)));
        // 8 bytes at 0x1004: 0xff << 4 = 0xff0, the 8-bit field keeps 0xf0: only 4 bytes
        let r = validate_breakpoint(&req(0x1004, 8, BpType::W), &ENV);
        assert_eq!(r, Ok(info(0x1000, 0xf0, ARM_BREAKPOINT_STORE, 2, true)));
    }

    #[test]
    fn instruction_breakpoints_are_forced_to_four_bytes() {
        // perf asks for sizeof(long) = 8; the kernel programs BAS 0xf at the word
        let r = validate_breakpoint(&req(0x40_0000, 8, BpType::X), &ENV);
        assert_eq!(
            r,
            Ok(info(0x40_0000, 0xf, ARM_BREAKPOINT_EXECUTE, 2, false))
        );
        // misaligned by 2: address rounded to the word, BAS 0xf << 2 = 0x3c
        let r = validate_breakpoint(&req(0x40_0002, 4, BpType::X), &ENV);
        assert_eq!(
            r,
            Ok(info(0x40_0000, 0x3c, ARM_BREAKPOINT_EXECUTE, 2, false))
        );
        assert!(r.unwrap().is_breakpoint());
    }

    #[test]
    fn type_and_length_errors() {
        let r = validate_breakpoint(&req(0x1000, 4, BpType::EMPTY), &ENV);
        assert_eq!(r, Err(E::EmptyOrInvalidType(BpType::EMPTY)));
        let r = validate_breakpoint(&req(0x1000, 4, BpType(5)), &ENV);
        assert_eq!(r, Err(E::UnsupportedType(BpType(5))));
        for len in [0u64, 9, 16] {
            let r = validate_breakpoint(&req(0x1000, len, BpType::W), &ENV);
            assert_eq!(r, Err(E::BadLength { len }));
        }
        // type is checked before length
        let r = validate_breakpoint(&req(0x1000, 16, BpType(6)), &ENV);
        assert_eq!(r, Err(E::UnsupportedType(BpType(6))));
    }

    #[test]
    fn compat_rules() {
        let compat = Arm64Environment {
            compat: true,
            ..ENV
        };
        let v = |addr, len, t| validate_breakpoint(&req(addr, len, t), &compat);
        assert_eq!(
            v(0x1000, 8, BpType::X),
            Err(E::CompatExecuteLength { len: 8 })
        );
        // Thumb breakpoint at a halfword: mask 3, offset 2, BAS 0x3 << 2 = 0xc
        assert_eq!(v(0x1002, 2, BpType::X), Ok(info(0x1000, 0xc, 0, 2, false)));
        // offsets 1..3 for a byte, 1..2 for a halfword, none for a word
        assert_eq!(v(0x1003, 1, BpType::W), Ok(info(0x1000, 0x8, 2, 2, false)));
        assert_eq!(v(0x1001, 2, BpType::W), Ok(info(0x1000, 0x6, 2, 2, false)));
        assert_eq!(
            v(0x1003, 2, BpType::W),
            Err(E::CompatMisaligned {
                addr: 0x1003,
                len: 2
            })
        );
        assert_eq!(
            v(0x1002, 4, BpType::W),
            Err(E::CompatMisaligned {
                addr: 0x1002,
                len: 4
            })
        );
        // 8 bytes uses mask 7 and must be doubleword aligned
        assert_eq!(
            v(0x1004, 8, BpType::W),
            Err(E::CompatMisaligned {
                addr: 0x1004,
                len: 8
            })
        );
        assert_eq!(v(0x1008, 8, BpType::W), Ok(info(0x1008, 0xff, 2, 2, false)));
        // 3 bytes at offset 1 is refused: only byte and halfword get fixups
        assert_eq!(
            v(0x1001, 3, BpType::W),
            Err(E::CompatMisaligned {
                addr: 0x1001,
                len: 3
            })
        );
    }

    #[test]
    fn kernel_addresses() {
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::RW), &ENV);
        assert_eq!(r, Err(E::KernelAddressPerTask { addr: KERNEL }));
        let cpu = Arm64Environment {
            per_task: false,
            ..ENV
        };
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::RW), &cpu);
        assert_eq!(r, Err(E::KernelAddressNeedsCapSysAdmin { addr: KERNEL }));
        assert_eq!(r.unwrap_err().errno(), 1);
        let excl = Arm64Environment {
            exclude_kernel: true,
            cap_sys_admin: true,
            ..cpu
        };
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::RW), &excl);
        assert_eq!(r, Err(E::KernelAddressExcluded { addr: KERNEL }));
        let root = Arm64Environment {
            cap_sys_admin: true,
            ..cpu
        };
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::RW), &root);
        assert_eq!(r, Ok(info(KERNEL, 0xff, 3, AARCH64_BREAKPOINT_EL1, false)));
        let disabled = Arm64Environment {
            disabled: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(0x1000, 1, BpType::W), &disabled).unwrap();
        assert!(!r.ctrl.enabled);
    }
}
