//! ptrace debug registers on a real stopped fixture (`exclusive_`: uses ptrace).

use hwbp_fixtures::{Fixture, WRITER};
use hwbp_linux::ptrace::{
    debugreg_offset, peek_debugreg, poke_debugreg, DebugRegisterGuard, PtraceError, SeizedThread,
};
use nix::errno::Errno;

/// DR7 for slot 0: L0, R/W0 = 01 (write), LEN0 = 11 (4 bytes).
const DR7_L0_WRITE_LEN4: u64 = 1 | (0b01 << 16) | (0b11 << 18);
/// DR7 for slot 0: L0, R/W0 = 01 (write), LEN0 = 10 (8 bytes).
const DR7_L0_WRITE_LEN8: u64 = 1 | (0b01 << 16) | (0b10 << 18);

#[test]
fn debugreg_offsets_follow_struct_user() {
    assert_eq!(debugreg_offset(0).unwrap(), 848);
    assert_eq!(debugreg_offset(7).unwrap(), 904);
    assert_eq!(debugreg_offset(8), Err(PtraceError::NoSuchRegister(8)));
}

#[test]
fn exclusive_poke_and_read_back_dr0_dr7() {
    let fixture = Fixture::spawn(WRITER, &[]).unwrap();
    let seized = SeizedThread::seize_stopped(fixture.pid()).unwrap();
    let tid = seized.tid();
    let guard = DebugRegisterGuard::capture(tid).unwrap();
    assert_eq!(guard.saved_addresses(), [0; 4]);
    assert_eq!(guard.saved_dr7(), 0);

    poke_debugreg(tid, 0, fixture.addr()).unwrap();
    assert_eq!(peek_debugreg(tid, 0).unwrap(), fixture.addr());
    poke_debugreg(tid, 7, DR7_L0_WRITE_LEN8).unwrap();
    assert_eq!(peek_debugreg(tid, 7).unwrap(), DR7_L0_WRITE_LEN8);
    // DR7 reads back the raw value written, reserved bit 10 and GE included.
    let raw = DR7_L0_WRITE_LEN8 | (1 << 10) | (1 << 9);
    poke_debugreg(tid, 7, raw).unwrap();
    assert_eq!(peek_debugreg(tid, 7).unwrap(), raw);
    // DR4 and DR5 read as 0.
    assert_eq!(peek_debugreg(tid, 4).unwrap(), 0);
    assert_eq!(peek_debugreg(tid, 5).unwrap(), 0);

    guard.restore().unwrap();
    assert_eq!(peek_debugreg(tid, 7).unwrap(), 0);
    assert_eq!(peek_debugreg(tid, 0).unwrap(), 0);
    seized.detach().unwrap();
}

#[test]
fn exclusive_misaligned_four_byte_watch_is_einval() {
    let fixture = Fixture::spawn(WRITER, &[]).unwrap();
    let seized = SeizedThread::seize_stopped(fixture.pid()).unwrap();
    let tid = seized.tid();
    let _guard = DebugRegisterGuard::capture(tid).unwrap();

    poke_debugreg(tid, 0, fixture.addr() + 1).unwrap();
    let error = poke_debugreg(tid, 7, DR7_L0_WRITE_LEN4).unwrap_err();
    assert_eq!(error.errno(), Some(Errno::EINVAL), "{error}");
    assert!(error.to_string().contains("misaligned"), "{error}");
    // The failed write is rolled back: DR7 still reads its previous value.
    assert_eq!(peek_debugreg(tid, 7).unwrap(), 0);
}

#[test]
fn exclusive_dr4_dr5_writes_are_eio() {
    let fixture = Fixture::spawn(WRITER, &[]).unwrap();
    let seized = SeizedThread::seize_stopped(fixture.pid()).unwrap();
    for register in [4, 5] {
        let error = poke_debugreg(seized.tid(), register, 0).unwrap_err();
        assert_eq!(error.errno(), Some(Errno::EIO), "DR{register}: {error}");
    }
}

#[test]
fn exclusive_guard_drop_disarms_before_detach() {
    let mut fixture = Fixture::spawn(WRITER, &[]).unwrap();
    {
        let seized = SeizedThread::seize_stopped(fixture.pid()).unwrap();
        let tid = seized.tid();
        let guard = DebugRegisterGuard::capture(tid).unwrap();
        poke_debugreg(tid, 0, fixture.addr()).unwrap();
        poke_debugreg(tid, 7, DR7_L0_WRITE_LEN8).unwrap();
        drop(guard);
        assert_eq!(peek_debugreg(tid, 7).unwrap(), 0);
    }
    // Detached with DR7 restored: the writes run without any SIGTRAP.
    let done = fixture.command("go 3").unwrap();
    assert_eq!(done.number("writes").unwrap(), 3);
    assert_eq!(fixture.finish().unwrap().code(), Some(0));
}
