//! x86_64 debug registers through `PTRACE_PEEKUSER`/`PTRACE_POKEUSER`
//! (`arch/x86/kernel/ptrace.c`).

use std::mem::offset_of;

use nix::unistd::Pid;

use super::PtraceError;

/// `offsetof(struct user, u_debugreg)`: the kernel's `arch_ptrace` turns
/// `PTRACE_PEEKUSER`/`POKEUSER` at this offset + 8n into DRn accesses.
const DEBUGREG_BASE: usize = offset_of!(libc::user, u_debugreg);
const _: () = assert!(
    DEBUGREG_BASE == 848,
    "struct user layout differs from the x86_64 ABI"
);

/// DR7 bit 0, `L0`: local enable of DR0. With R/W0 = 00 and LEN0 = 00 it makes
/// DR0 an execute breakpoint (Intel SDM Vol. 3B §17.2.4).
pub const DR7_LOCAL_ENABLE_0: u64 = 1;

/// The `PTRACE_PEEKUSER`/`POKEUSER` offset of DRn: 848 + 8n.
pub fn debugreg_offset(register: u8) -> Result<usize, PtraceError> {
    if register > 7 {
        return Err(PtraceError::NoSuchRegister(register));
    }
    Ok(DEBUGREG_BASE + 8 * usize::from(register))
}

/// Reads debug register DRn of the ptrace-stopped thread `tid`.
///
/// DR7 reads back the raw value last written; DR0-3 read 0 when no address
/// was ever written; DR4/5 read 0.
pub fn peek_debugreg(tid: i32, register: u8) -> Result<u64, PtraceError> {
    let offset = debugreg_offset(register)?;
    nix::sys::ptrace::read_user(Pid::from_raw(tid), offset as nix::sys::ptrace::AddressType)
        // The register's bits, reinterpreted from the C `long` ptrace returns.
        .map(|value| value as u64)
        .map_err(|errno| PtraceError::Peek {
            tid,
            register,
            errno,
        })
}

/// Writes `value` to debug register DRn of the ptrace-stopped thread `tid`.
///
/// Errors (§4.3/§4.4): `EIO` for DR4/DR5, `EINVAL` for a kernel address or a
/// DR7 value that makes an enabled slot invalid, `ENOSPC` when the thread has
/// no free breakpoint slot.
pub fn poke_debugreg(tid: i32, register: u8, value: u64) -> Result<(), PtraceError> {
    let offset = debugreg_offset(register)?;
    nix::sys::ptrace::write_user(
        Pid::from_raw(tid),
        offset as nix::sys::ptrace::AddressType,
        // Same bits as the C `long` POKEUSER takes.
        value as libc::c_long,
    )
    .map_err(|errno| PtraceError::Poke {
        tid,
        register,
        value,
        errno,
    })
}

/// The DR0-3 and DR7 values of a thread, captured so they can be put back.
///
/// Dropping the guard restores them (DR7 first cleared, then DR0-3, then DR7),
/// ignoring errors; use [`DebugRegisterGuard::restore`] to see them. The
/// thread must still be ptrace-stopped by the same tracer thread at that time.
/// A slot the kernel reserved while the guard was alive stays reserved until
/// the thread execs or exits (see the module docs).
#[derive(Debug)]
pub struct DebugRegisterGuard {
    tid: i32,
    addresses: [u64; 4],
    dr7: u64,
    restored: bool,
}

impl DebugRegisterGuard {
    /// Records DR0-3 and DR7 of the ptrace-stopped thread `tid`.
    pub fn capture(tid: i32) -> Result<Self, PtraceError> {
        let mut addresses = [0; 4];
        for (register, address) in (0u8..).zip(addresses.iter_mut()) {
            *address = peek_debugreg(tid, register)?;
        }
        let dr7 = peek_debugreg(tid, 7)?;
        Ok(Self {
            tid,
            addresses,
            dr7,
            restored: false,
        })
    }

    /// The thread whose registers are guarded.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// The captured DR0-3.
    pub fn saved_addresses(&self) -> [u64; 4] {
        self.addresses
    }

    /// The captured DR7.
    pub fn saved_dr7(&self) -> u64 {
        self.dr7
    }

    /// Restores the captured values now and reports the first error.
    pub fn restore(mut self) -> Result<(), PtraceError> {
        self.restored = true;
        self.write_back()
    }

    fn write_back(&self) -> Result<(), PtraceError> {
        // Disable every slot first so no intermediate DR0-3/DR7 pair is invalid.
        poke_debugreg(self.tid, 7, 0)?;
        for (register, address) in (0u8..).zip(self.addresses) {
            // Writing an address into a slot that never had one would reserve a
            // slot for nothing; only touch slots that now hold something.
            if peek_debugreg(self.tid, register)? != address {
                poke_debugreg(self.tid, register, address)?;
            }
        }
        if self.dr7 != 0 {
            poke_debugreg(self.tid, 7, self.dr7)?;
        }
        Ok(())
    }
}

impl Drop for DebugRegisterGuard {
    fn drop(&mut self) {
        if !self.restored {
            // Best effort: the thread may be gone, which also frees its registers.
            let _ = self.write_back();
        }
    }
}
