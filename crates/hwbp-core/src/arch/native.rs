//! The architecture hwbp runs on, chosen at compile time (framehop's `Native` aliases): callers
//! name `arch::native`, never x86 or arm64. Every codec still builds and is tested on every
//! host; only this module picks one.
//!
//! - x86_64: 4 debug registers, pieces of 1/2/4/8 bytes, kernel space from `TASK_SIZE_MAX`
//!   (`arch/x86/include/asm/page_64_types.h`), checks of `hw_breakpoint_arch_parse` in
//!   `arch/x86/kernel/hw_breakpoint.c`.
//! - aarch64: pieces of up to 8 bytes (BAS), kernel space from a 48-bit `TASK_SIZE`, checks of
//!   `hw_breakpoint_arch_parse` in `arch/arm64/kernel/hw_breakpoint.c`.

pub use super::x86::BreakpointRequest;

/// The largest single debug-register piece, in bytes.
pub const MAX_PIECE: u64 = 8;

#[cfg(not(target_arch = "aarch64"))]
mod imp {
    use super::BreakpointRequest;
    use crate::arch::x86::{self, X86Environment};

    /// The native refusal.
    pub type NativeBreakpointError = x86::X86BreakpointError;

    /// Debug registers per thread and per CPU.
    pub const DEBUG_REGISTERS: u32 = 4;

    /// First kernel-space address (`TASK_SIZE_MAX` on x86_64 with 4-level paging).
    pub const KERNEL_SPACE_START: u64 = x86::validate::TASK_SIZE_MAX_X86_64;

    /// The kernel's checks for one piece (`exclude_kernel` as the event will have it,
    /// `cap_sys_admin` of this process; kernel execute breakpoints need kprobes, which these
    /// checks assume absent).
    pub fn validate(
        request: &BreakpointRequest,
        exclude_kernel: bool,
        cap_sys_admin: bool,
    ) -> Result<(), NativeBreakpointError> {
        let env = X86Environment {
            exclude_kernel,
            cap_sys_admin,
            kprobes: false,
            ..X86Environment::x86_64()
        };
        x86::validate_breakpoint(request, &env).map(drop)
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    use super::BreakpointRequest;
    use crate::arch::arm64::{self, Arm64Environment};

    /// The native refusal.
    pub type NativeBreakpointError = arm64::Arm64BreakpointError;

    /// Watchpoint registers of the common arm64 cores (ID_AA64DFR0 says the real number).
    pub const DEBUG_REGISTERS: u32 = 4;

    /// First kernel-space address (48-bit `TASK_SIZE`).
    pub const KERNEL_SPACE_START: u64 = arm64::validate::TASK_SIZE_ARM64_48BIT;

    /// The kernel's checks for one piece.
    pub fn validate(
        request: &BreakpointRequest,
        exclude_kernel: bool,
        cap_sys_admin: bool,
    ) -> Result<(), NativeBreakpointError> {
        let env = Arm64Environment {
            exclude_kernel,
            cap_sys_admin,
            ..Arm64Environment::default()
        };
        arm64::validate_breakpoint(request, &env).map(drop)
    }
}

pub use imp::{validate, NativeBreakpointError, DEBUG_REGISTERS, KERNEL_SPACE_START};

/// True for an address in kernel space.
pub const fn is_kernel_address(addr: u64) -> bool {
    addr >= KERNEL_SPACE_START
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::BpType;

    #[test]
    fn a_user_write_piece_passes_and_a_misaligned_one_does_not() {
        let ok = BreakpointRequest {
            addr: 0x601040,
            len: 8,
            bp_type: BpType::W,
        };
        assert!(validate(&ok, true, false).is_ok());
        assert!(!is_kernel_address(ok.addr));
        assert!(is_kernel_address(u64::MAX - 7));
    }
}
