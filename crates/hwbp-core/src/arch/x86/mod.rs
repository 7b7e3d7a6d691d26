//! x86 debug registers: DR7 encoding, DR6 decoding and the kernel's breakpoint validation.
//!
//! x86 has four address registers (DR0..DR3, [`HBP_NUM`]) shared by instruction breakpoints
//! and data watchpoints, one control register (DR7, [`dr7`]) and one status register (DR6,
//! [`dr6`]). Everything here is bit-exact with Linux: `arch/x86/kernel/hw_breakpoint.c`,
//! `arch/x86/include/asm/hw_breakpoint.h`, `arch/x86/include/uapi/asm/debugreg.h` and
//! `arch/x86/kernel/ptrace.c`.
//!
//! Facts worth knowing before using the codecs:
//! - There is no read-only watchpoint: DR7 offers execute, write, read+write (and I/O, which
//!   Linux refuses). [`validate::validate_breakpoint`] reports `r` as [`X86BreakpointError::ReadOnly`].
//! - Data watchpoints are traps (they fire after the access); execute breakpoints are faults.
//! - Lengths are 1, 2, 4 and 8 (x86_64), aligned to their size; AMD CPUs with `BPEXT` add
//!   power-of-two range breakpoints.
//!
//! # Known limitations
//! - The kernel's protected areas and kprobe blacklist are inputs ([`X86Environment`]); this
//!   crate cannot discover them.

pub mod dr6;
pub mod dr7;
pub mod validate;

pub use dr6::{Dr6, TrapSiCode, DR6_RESERVED};
pub use dr7::{
    arch_bp_generic_fields, decode_dr7, encode_dr7, encode_dr7_local, encode_dr7_slot, Dr7Slot,
    X86Error, X86Len, X86Type, HBP_NUM,
};
pub use validate::{
    validate_breakpoint, BreakpointRequest, KernelArea, X86BreakpointError, X86BreakpointInfo,
    X86Environment,
};
