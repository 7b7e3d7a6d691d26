//! The kernel's checks on an x86 breakpoint request, in the kernel's order.
//!
//! Follows `arch_build_bp_info` and `hw_breakpoint_arch_parse` in
//! `arch/x86/kernel/hw_breakpoint.c`, plus the generic steps around them in
//! `kernel/events/hw_breakpoint.c` (`hw_breakpoint_event_init` refusing `HW_BREAKPOINT_EMPTY` /
//! `HW_BREAKPOINT_INVALID`, and `hw_breakpoint_parse`'s kernel-space policy). The first failing
//! check decides the error, exactly as the kernel's early returns do, so a request that is both
//! misaligned and read-only reports "read-only".
//!
//! Kernel-only facts that a pure crate cannot know (where the CPU entry area is, the kprobe
//! blacklist, whether the CPU has `X86_FEATURE_BPEXT`, the caller's capabilities) come in an
//! [`X86Environment`].

use core::fmt;

use super::dr7::{X86Len, X86Type};
use crate::access::BpType;

/// `TASK_SIZE_MAX` on x86_64 with 4-level paging: the first non-user address.
pub const TASK_SIZE_MAX_X86_64: u64 = 0x7fff_ffff_f000;
/// `TASK_SIZE_MAX` on i386 with the default 3G/1G split (`PAGE_OFFSET`).
pub const TASK_SIZE_MAX_I386: u64 = 0xc000_0000;

/// What the caller asks for: the generic `perf_event_attr` breakpoint fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakpointRequest {
    /// `bp_addr`.
    pub addr: u64,
    /// `bp_len` in bytes.
    pub len: u64,
    /// `bp_type`.
    pub bp_type: BpType,
}

/// A kernel address range `[base, base + size)` no breakpoint may overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelArea {
    /// First byte.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl KernelArea {
    /// The kernel's `within_area(addr, end, base, size)`: does `[addr, end]` (inclusive) overlap
    /// this area?
    pub const fn overlaps(&self, addr: u64, end: u64) -> bool {
        end >= self.base && (addr as u128) < self.base as u128 + self.size as u128
    }
}

/// The kernel and CPU facts the checks depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86Environment<'a> {
    /// A 64-bit kernel (`CONFIG_X86_64`): 8-byte watchpoints exist and `sizeof(long)` is 8.
    pub is_64bit: bool,
    /// `TASK_SIZE_MAX`: addresses at or above it are kernel space.
    pub task_size_max: u64,
    /// The CPU has `X86_FEATURE_BPEXT` (AMD range breakpoints).
    pub has_bpext: bool,
    /// The request has `exclude_kernel` set (ptrace always sets it).
    pub exclude_kernel: bool,
    /// The caller has `CAP_SYS_ADMIN` (needed for kernel-space breakpoints).
    pub cap_sys_admin: bool,
    /// The kernel is built with kprobes. Without it, `within_kprobe_blacklist` is always true and
    /// every kernel-space execute breakpoint is refused.
    pub kprobes: bool,
    /// Areas `within_cpu_entry` protects: the CPU entry area, `__per_cpu_offset[]`, each CPU's
    /// GDT, `cpu_tss_rw`, `cpu_tlbstate` and `cpu_dr7`.
    pub protected_areas: &'a [KernelArea],
    /// Kernel text where execute breakpoints are refused (the kprobe blacklist).
    pub kprobe_blacklist: &'a [KernelArea],
}

impl X86Environment<'static> {
    /// An x86_64 kernel with 4-level paging, kprobes, no BPEXT, an unprivileged caller that
    /// does not set `exclude_kernel`, and no protected areas known.
    pub const fn x86_64() -> Self {
        X86Environment {
            is_64bit: true,
            task_size_max: TASK_SIZE_MAX_X86_64,
            has_bpext: false,
            exclude_kernel: false,
            cap_sys_admin: false,
            kprobes: true,
            protected_areas: &[],
            kprobe_blacklist: &[],
        }
    }

    /// As [`X86Environment::x86_64`], for a 32-bit kernel with the 3G/1G split.
    pub const fn i386() -> Self {
        X86Environment {
            is_64bit: false,
            task_size_max: TASK_SIZE_MAX_I386,
            ..Self::x86_64()
        }
    }
}

impl Default for X86Environment<'static> {
    fn default() -> Self {
        Self::x86_64()
    }
}

/// A request the kernel accepts, in the kernel's `struct arch_hw_breakpoint` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86BreakpointInfo {
    /// `address`, the value for DR0..DR3.
    pub address: u64,
    /// `len` (`LEN_1` for execute and for AMD range breakpoints).
    pub len: X86Len,
    /// `type`.
    pub ty: X86Type,
    /// `mask`: `bp_len - 1` for an AMD range breakpoint, else 0.
    pub mask: u64,
}

/// Why the kernel refuses an x86 breakpoint request. [`X86BreakpointError::errno`] gives the
/// errno `perf_event_open` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X86BreakpointError {
    /// `bp_type` is `HW_BREAKPOINT_EMPTY` (0) or `HW_BREAKPOINT_INVALID` (7): refused by the
    /// generic code before the arch code runs.
    EmptyOrInvalidType(BpType),
    /// `bp_addr + bp_len - 1` wraps around the address space.
    RangeWraps {
        /// `bp_addr`.
        addr: u64,
        /// `bp_len`.
        len: u64,
    },
    /// The range overlaps the CPU entry area or other memory the entry code uses.
    ProtectedArea {
        /// `bp_addr`.
        addr: u64,
        /// The protected area hit.
        area: KernelArea,
    },
    /// An execute breakpoint on kernel text kprobes may not touch (or any kernel execute
    /// breakpoint on a kernel without kprobes).
    KprobeBlacklisted {
        /// `bp_addr`.
        addr: u64,
    },
    /// Read-only (`r`): x86 debug registers can only watch writes or reads+writes.
    ReadOnly,
    /// `x` mixed with `r`/`w`, or another bit set the kernel has no type for.
    UnsupportedType(BpType),
    /// An execute breakpoint whose length is not `sizeof(long)`.
    ExecuteLength {
        /// `bp_len`.
        len: u64,
        /// `sizeof(long)`: 8 or 4.
        required: u64,
    },
    /// A length that is not 1, 2, 4, 8 (or 4 max on i386) and not a power of two.
    BadLength {
        /// `bp_len`.
        len: u64,
        /// Largest plain length (8 on x86_64, 4 on i386).
        max: u64,
    },
    /// An AMD range breakpoint (power-of-two length above the plain lengths) at an address
    /// that is not a multiple of its length.
    RangeMisaligned {
        /// `bp_addr`.
        addr: u64,
        /// `bp_len`.
        len: u64,
    },
    /// A range breakpoint on a CPU without `X86_FEATURE_BPEXT`.
    RangeUnsupported {
        /// `bp_len`.
        len: u64,
        /// Largest plain length.
        max: u64,
    },
    /// The address is not a multiple of the length.
    Misaligned {
        /// `bp_addr`.
        addr: u64,
        /// `bp_len`.
        len: u64,
    },
    /// A kernel-space address with `exclude_kernel` set.
    KernelAddressExcluded {
        /// `bp_addr`.
        addr: u64,
    },
    /// A kernel-space address without `CAP_SYS_ADMIN`.
    KernelAddressNeedsCapSysAdmin {
        /// `bp_addr`.
        addr: u64,
    },
}

/// `EPERM`.
pub const EPERM: i32 = 1;
/// `EINVAL`.
pub const EINVAL: i32 = 22;
/// `EOPNOTSUPP`.
pub const EOPNOTSUPP: i32 = 95;

impl X86BreakpointError {
    /// The errno the kernel returns: `EINVAL` (22), `EPERM` (1) or `EOPNOTSUPP` (95).
    pub const fn errno(self) -> i32 {
        match self {
            X86BreakpointError::RangeUnsupported { .. } => EOPNOTSUPP,
            X86BreakpointError::KernelAddressNeedsCapSysAdmin { .. } => EPERM,
            _ => EINVAL,
        }
    }
}

impl fmt::Display for X86BreakpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use X86BreakpointError as E;
        match *self {
            E::EmptyOrInvalidType(t) if t == BpType::EMPTY => {
                f.write_str("no access type given: use r, w, rw or x")
            }
            E::EmptyOrInvalidType(_) => f.write_str(
                "x cannot be combined with r or w in one breakpoint: use x alone, or w or rw",
            ),
            E::RangeWraps { addr, len } => write!(
                f,
                "range {addr:#x} + {len} bytes wraps past the end of the address space: \
                 use a smaller length or a lower address"
            ),
            E::ProtectedArea { addr, area } => write!(
                f,
                "address {addr:#x} overlaps kernel entry memory [{:#x}, {:#x}) that no \
                 breakpoint may touch: watch a different address",
                area.base,
                area.base.wrapping_add(area.size)
            ),
            E::KprobeBlacklisted { addr } => write!(
                f,
                "execute breakpoints are not allowed at kernel address {addr:#x} (kprobe \
                 blacklist, or a kernel built without kprobes): choose another function"
            ),
            E::ReadOnly => {
                f.write_str("x86 has no read-only watchpoints: use rw (reads and writes) or w")
            }
            E::UnsupportedType(t) => write!(
                f,
                "access type {:#x} is not a valid breakpoint type: use r, w, rw or x",
                t.0
            ),
            E::ExecuteLength { len, required } => write!(
                f,
                "an execute breakpoint must have length {required} (sizeof(long)), not \
                 {len}: use length {required} with x"
            ),
            E::BadLength { len, max } => write!(
                f,
                "length {len} is not supported: use {}, or split the range into several \
                 watchpoints",
                if max == 8 {
                    "1, 2, 4 or 8"
                } else {
                    "1, 2 or 4"
                }
            ),
            E::RangeMisaligned { addr, len } => write!(
                f,
                "range breakpoint at {addr:#x} is not aligned to its length {len}: use an \
                 address that is a multiple of {len}"
            ),
            E::RangeUnsupported { len, max } => write!(
                f,
                "length {len} needs an AMD range breakpoint (BPEXT), which this CPU lacks: \
                 use lengths up to {max}, or split the range into several watchpoints"
            ),
            E::Misaligned { addr, len } => write!(
                f,
                "address {addr:#x} is not aligned to its length {len}: use an address that \
                 is a multiple of {len}, or a smaller length"
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
impl std::error::Error for X86BreakpointError {}

/// Runs the kernel's checks on `req` and returns what the kernel would program, or the error
/// `perf_event_open` would return (ignoring slot availability, `ENOSPC`, which is the
/// constraint engine's job).
///
/// Order (first failure wins):
/// 0. `bp_type` `EMPTY`/`INVALID` → `EINVAL` (generic `hw_breakpoint_event_init`).
/// 1. `bp_addr + bp_len - 1` wraps → `EINVAL`.
/// 2. overlaps a protected entry area → `EINVAL`.
/// 3. type: `W`, `RW`; `X` (kernel address in the kprobe blacklist → `EINVAL`; `bp_len` must be
///    `sizeof(long)`, then done with `LEN_X`); anything else (including `R`) → `EINVAL`.
/// 4. length 1/2/4/8 (8 on x86_64 only); else a range breakpoint: not a power of two →
///    `EINVAL`, misaligned → `EINVAL`, no BPEXT → `EOPNOTSUPP`.
/// 5. alignment of the address to the length → `EINVAL`.
/// 6. kernel space (`va >= TASK_SIZE_MAX || va + len - 1 >= TASK_SIZE_MAX`, with `len` the
///    arch length: 1 for execute and range breakpoints): `exclude_kernel` → `EINVAL`, no
///    `CAP_SYS_ADMIN` → `EPERM`.
pub fn validate_breakpoint(
    req: &BreakpointRequest,
    env: &X86Environment<'_>,
) -> Result<X86BreakpointInfo, X86BreakpointError> {
    use X86BreakpointError as E;
    let (addr, len) = (req.addr, req.len);

    if req.bp_type == BpType::EMPTY || req.bp_type == BpType::INVALID {
        return Err(E::EmptyOrInvalidType(req.bp_type));
    }

    // 1. `unsigned long bp_end = attr->bp_addr + attr->bp_len - 1`, truncated to 32 bits on i386.
    let mut end = addr.wrapping_add(len).wrapping_sub(1);
    if !env.is_64bit {
        end &= 0xffff_ffff;
    }
    if end < addr {
        return Err(E::RangeWraps { addr, len });
    }

    // 2. within_cpu_entry
    if let Some(area) = env.protected_areas.iter().find(|a| a.overlaps(addr, end)) {
        return Err(E::ProtectedArea { addr, area: *area });
    }

    // 3. type
    let long_size = if env.is_64bit { 8 } else { 4 };
    let ty = match req.bp_type {
        BpType::W => X86Type::Write,
        BpType::RW => X86Type::ReadWrite,
        BpType::X => {
            if addr >= env.task_size_max
                && (!env.kprobes || env.kprobe_blacklist.iter().any(|a| a.overlaps(addr, addr)))
            {
                return Err(E::KprobeBlacklisted { addr });
            }
            if len != long_size {
                return Err(E::ExecuteLength {
                    len,
                    required: long_size,
                });
            }
            let info = X86BreakpointInfo {
                address: addr,
                len: X86Len::LEN_X,
                ty: X86Type::Execute,
                mask: 0,
            };
            return check_kernel_space(info, env);
        }
        BpType::R => return Err(E::ReadOnly),
        other => return Err(E::UnsupportedType(other)),
    };

    // 4. length
    let max = long_size;
    let (x86_len, mask) = match X86Len::from_bytes(len) {
        Some(X86Len::Len8) if !env.is_64bit => range_breakpoint(addr, len, max, env)?,
        Some(l) => (l, 0),
        None => range_breakpoint(addr, len, max, env)?,
    };

    // 5. alignment
    let align = if mask != 0 { mask } else { x86_len.bytes() - 1 };
    if addr & align != 0 {
        return Err(E::Misaligned { addr, len });
    }

    check_kernel_space(
        X86BreakpointInfo {
            address: addr,
            len: x86_len,
            ty,
            mask,
        },
        env,
    )
}

/// Step 4's AMD range breakpoint branch.
fn range_breakpoint(
    addr: u64,
    len: u64,
    max: u64,
    env: &X86Environment<'_>,
) -> Result<(X86Len, u64), X86BreakpointError> {
    if !len.is_power_of_two() {
        return Err(X86BreakpointError::BadLength { len, max });
    }
    if addr & (len - 1) != 0 {
        return Err(X86BreakpointError::RangeMisaligned { addr, len });
    }
    if !env.has_bpext {
        return Err(X86BreakpointError::RangeUnsupported { len, max });
    }
    Ok((X86Len::Len1, len - 1))
}

/// Step 6: `arch_check_bp_in_kernelspace` and the policy in `hw_breakpoint_parse`.
fn check_kernel_space(
    info: X86BreakpointInfo,
    env: &X86Environment<'_>,
) -> Result<X86BreakpointInfo, X86BreakpointError> {
    let va = info.address;
    let last = va.wrapping_add(info.len.bytes() - 1);
    if va >= env.task_size_max || last >= env.task_size_max {
        if env.exclude_kernel {
            return Err(X86BreakpointError::KernelAddressExcluded { addr: va });
        }
        if !env.cap_sys_admin {
            return Err(X86BreakpointError::KernelAddressNeedsCapSysAdmin { addr: va });
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use X86BreakpointError as E;

    fn req(addr: u64, len: u64, bp_type: BpType) -> BreakpointRequest {
        BreakpointRequest { addr, len, bp_type }
    }

    fn ok(addr: u64, len: X86Len, ty: X86Type, mask: u64) -> X86BreakpointInfo {
        X86BreakpointInfo {
            address: addr,
            len,
            ty,
            mask,
        }
    }

    const ENV: X86Environment<'static> = X86Environment::x86_64();
    const KERNEL: u64 = 0xffff_ffff_8100_0000;

    #[test]
    fn accepts_the_plain_cases() {
        let v = |r| validate_breakpoint(&r, &ENV);
        assert_eq!(
            v(req(0x1000, 4, BpType::W)),
            Ok(ok(0x1000, X86Len::Len4, X86Type::Write, 0))
        );
        assert_eq!(
            v(req(0x1001, 1, BpType::RW)),
            Ok(ok(0x1001, X86Len::Len1, X86Type::ReadWrite, 0))
        );
        assert_eq!(
            v(req(0x1002, 2, BpType::W)),
            Ok(ok(0x1002, X86Len::Len2, X86Type::Write, 0))
        );
        assert_eq!(
            v(req(0x1008, 8, BpType::RW)),
            Ok(ok(0x1008, X86Len::Len8, X86Type::ReadWrite, 0))
        );
        // execute: length sizeof(long), no alignment check at all
        assert_eq!(
            v(req(0x401003, 8, BpType::X)),
            Ok(ok(0x401003, X86Len::LEN_X, X86Type::Execute, 0))
        );
    }

    #[test]
    fn empty_and_invalid_types() {
        let r = validate_breakpoint(&req(0x1000, 4, BpType::EMPTY), &ENV);
        assert_eq!(r, Err(E::EmptyOrInvalidType(BpType::EMPTY)));
        let r = validate_breakpoint(&req(0x1000, 4, BpType::INVALID), &ENV);
        assert_eq!(r, Err(E::EmptyOrInvalidType(BpType::INVALID)));
        assert_eq!(r.unwrap_err().errno(), EINVAL);
        // X|W (6) is not INVALID: it reaches the arch switch and fails there
        let r = validate_breakpoint(&req(0x1000, 4, BpType(6)), &ENV);
        assert_eq!(r, Err(E::UnsupportedType(BpType(6))));
    }

    #[test]
    fn wrapping_range() {
        let r = validate_breakpoint(&req(u64::MAX - 1, 4, BpType::W), &ENV);
        assert_eq!(
            r,
            Err(E::RangeWraps {
                addr: u64::MAX - 1,
                len: 4
            })
        );
        // len 0 at a non-zero address wraps too (end = addr - 1)
        let r = validate_breakpoint(&req(0x1000, 0, BpType::W), &ENV);
        assert_eq!(
            r,
            Err(E::RangeWraps {
                addr: 0x1000,
                len: 0
            })
        );
        // on i386 the end is computed in 32 bits
        let r = validate_breakpoint(&req(0xffff_fffe, 4, BpType::W), &X86Environment::i386());
        assert_eq!(
            r,
            Err(E::RangeWraps {
                addr: 0xffff_fffe,
                len: 4
            })
        );
    }

    #[test]
    fn protected_areas_come_before_the_type() {
        let area = KernelArea {
            base: 0xfffffe00_00000000,
            size: 0x1000,
        };
        let env = X86Environment {
            protected_areas: &[area],
            ..ENV
        };
        // last byte of the range touches the first byte of the area; type is read-only but the
        // area check comes first
        let r = validate_breakpoint(&req(0xfffffdff_fffffffc, 8, BpType::R), &env);
        assert_eq!(
            r,
            Err(E::ProtectedArea {
                addr: 0xfffffdff_fffffffc,
                area
            })
        );
        // just below it is fine as far as the area goes
        let r = validate_breakpoint(&req(0xfffffdff_fffffff8, 8, BpType::RW), &env);
        assert_eq!(
            r,
            Err(E::KernelAddressNeedsCapSysAdmin {
                addr: 0xfffffdff_fffffff8
            })
        );
    }

    #[test]
    fn read_only_is_refused_before_alignment() {
        let r = validate_breakpoint(&req(0x1003, 4, BpType::R), &ENV);
        assert_eq!(r, Err(E::ReadOnly));
        assert_eq!(
            r.unwrap_err().to_string(),
            "x86 has no read-only watchpoints: use rw (reads and writes) or w"
        );
    }

    #[test]
    fn execute_length_must_be_sizeof_long() {
        let r = validate_breakpoint(&req(0x401000, 1, BpType::X), &ENV);
        assert_eq!(
            r,
            Err(E::ExecuteLength {
                len: 1,
                required: 8
            })
        );
        let i386 = X86Environment::i386();
        let r = validate_breakpoint(&req(0x401000, 4, BpType::X), &i386);
        assert_eq!(r, Ok(ok(0x401000, X86Len::LEN_X, X86Type::Execute, 0)));
        let r = validate_breakpoint(&req(0x401000, 8, BpType::X), &i386);
        assert_eq!(
            r,
            Err(E::ExecuteLength {
                len: 8,
                required: 4
            })
        );
    }

    #[test]
    fn kernel_execute_breakpoints_and_kprobes() {
        let root = X86Environment {
            cap_sys_admin: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::X), &root);
        assert_eq!(r, Ok(ok(KERNEL, X86Len::LEN_X, X86Type::Execute, 0)));
        let no_kprobes = X86Environment {
            kprobes: false,
            ..root
        };
        let r = validate_breakpoint(&req(KERNEL, 8, BpType::X), &no_kprobes);
        assert_eq!(r, Err(E::KprobeBlacklisted { addr: KERNEL }));
        let blacklist = [KernelArea {
            base: KERNEL,
            size: 0x100,
        }];
        let env = X86Environment {
            kprobe_blacklist: &blacklist,
            ..root
        };
        // blacklist is checked before the length
        let r = validate_breakpoint(&req(KERNEL + 0x10, 1, BpType::X), &env);
        assert_eq!(
            r,
            Err(E::KprobeBlacklisted {
                addr: KERNEL + 0x10
            })
        );
        // user addresses never consult the blacklist
        let r = validate_breakpoint(&req(0x1000, 8, BpType::X), &no_kprobes);
        assert!(r.is_ok());
    }

    #[test]
    fn odd_lengths_and_range_breakpoints() {
        let r = validate_breakpoint(&req(0x1000, 3, BpType::W), &ENV);
        assert_eq!(r, Err(E::BadLength { len: 3, max: 8 }));
        assert_eq!(r.unwrap_err().errno(), EINVAL);
        let r = validate_breakpoint(&req(0x1008, 16, BpType::W), &ENV);
        assert_eq!(
            r,
            Err(E::RangeMisaligned {
                addr: 0x1008,
                len: 16
            })
        );
        let r = validate_breakpoint(&req(0x1000, 16, BpType::W), &ENV);
        assert_eq!(r, Err(E::RangeUnsupported { len: 16, max: 8 }));
        assert_eq!(r.unwrap_err().errno(), EOPNOTSUPP);
        let amd = X86Environment {
            has_bpext: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(0x1000, 16, BpType::RW), &amd);
        assert_eq!(r, Ok(ok(0x1000, X86Len::Len1, X86Type::ReadWrite, 15)));
        let r = validate_breakpoint(&req(0x1000, 0x1000, BpType::W), &amd);
        assert_eq!(r, Ok(ok(0x1000, X86Len::Len1, X86Type::Write, 0xfff)));
        // 8 bytes on i386 is a range breakpoint request
        let i386 = X86Environment::i386();
        let r = validate_breakpoint(&req(0x1000, 8, BpType::W), &i386);
        assert_eq!(r, Err(E::RangeUnsupported { len: 8, max: 4 }));
        let r = validate_breakpoint(
            &req(0x1000, 8, BpType::W),
            &X86Environment {
                has_bpext: true,
                ..i386
            },
        );
        assert_eq!(r, Ok(ok(0x1000, X86Len::Len1, X86Type::Write, 7)));
    }

    #[test]
    fn misaligned_addresses() {
        for (addr, len) in [(0x1003u64, 4u64), (0x1001, 2), (0x1004, 8), (0x1002, 4)] {
            let r = validate_breakpoint(&req(addr, len, BpType::W), &ENV);
            assert_eq!(r, Err(E::Misaligned { addr, len }), "{addr:#x}/{len}");
        }
        assert_eq!(
            E::Misaligned {
                addr: 0x1003,
                len: 4
            }
            .to_string(),
            "address 0x1003 is not aligned to its length 4: use an address that is a multiple \
             of 4, or a smaller length"
        );
    }

    #[test]
    fn kernel_space_policy() {
        // the last byte crosses TASK_SIZE_MAX
        let addr = TASK_SIZE_MAX_X86_64 - 4;
        let r = validate_breakpoint(&req(addr, 8, BpType::W), &ENV);
        // 0x7fff_ffff_effc is not 8-aligned: alignment comes first
        assert_eq!(r, Err(E::Misaligned { addr, len: 8 }));
        let addr = TASK_SIZE_MAX_X86_64 - 8;
        assert!(validate_breakpoint(&req(addr, 8, BpType::W), &ENV).is_ok());
        let r = validate_breakpoint(&req(TASK_SIZE_MAX_X86_64, 8, BpType::W), &ENV);
        let e = r.unwrap_err();
        assert_eq!(
            e,
            E::KernelAddressNeedsCapSysAdmin {
                addr: TASK_SIZE_MAX_X86_64
            }
        );
        assert_eq!(e.errno(), EPERM);
        let ptrace = X86Environment {
            exclude_kernel: true,
            cap_sys_admin: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(KERNEL, 4, BpType::RW), &ptrace);
        assert_eq!(r, Err(E::KernelAddressExcluded { addr: KERNEL }));
        assert_eq!(r.unwrap_err().errno(), EINVAL);
        let root = X86Environment {
            cap_sys_admin: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(KERNEL, 4, BpType::RW), &root);
        assert_eq!(r, Ok(ok(KERNEL, X86Len::Len4, X86Type::ReadWrite, 0)));
        // range breakpoints use len LEN_1 for the kernel-space test, like the kernel: this
        // range's last byte 0x7fff_ffff_ffff is above TASK_SIZE_MAX, yet no privilege is needed
        let amd = X86Environment {
            has_bpext: true,
            ..ENV
        };
        let r = validate_breakpoint(&req(0x7fff_ffff_0000, 0x10000, BpType::W), &amd);
        assert_eq!(
            r,
            Ok(ok(0x7fff_ffff_0000, X86Len::Len1, X86Type::Write, 0xffff))
        );
    }

    #[test]
    fn errors_read_as_advice() {
        let msg = E::BadLength { len: 3, max: 8 }.to_string();
        assert_eq!(
            msg,
            "length 3 is not supported: use 1, 2, 4 or 8, or split the range into several \
             watchpoints"
        );
        let msg = E::EmptyOrInvalidType(BpType::EMPTY).to_string();
        assert_eq!(msg, "no access type given: use r, w, rw or x");
    }
}
