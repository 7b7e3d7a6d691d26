//! Stop mode never harms its target: [`StopTracer::detach`] while the target's threads keep
//! writing the watched variable leaves every thread alive and running, with the debug
//! registers it had before, and a `SIGTRAP` that is the program's own is still delivered; a
//! debug exception with an empty DR6 is swallowed and counted, never delivered.
//!
//! The `spin` fixture's writers store to `spin_var` in a tight loop and `SIGTRAP` keeps its
//! default action, so a watchpoint `SIGTRAP` left queued at the detach kills it (issue 10,
//! item 5: the `PTRACE_EVENT_STOP` of the detach's `PTRACE_INTERRUPT` is reported before a
//! just-queued `SIGTRAP`).
//!
//! ptrace: names start with `exclusive_`.

use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_fixtures::{Fixture, SPIN};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::ptrace::{peek_debugreg, DebugRegisterSet, SeizedThread, StopEvent, StopTracer};

/// A write watch on the fixture's `spin_var`.
fn registers(fixture: &Fixture) -> DebugRegisterSet {
    let (set, _) =
        DebugRegisterSet::allocate(&[WatchRequest::new(fixture.addr(), 8, Access::Write)]).unwrap();
    set
}

/// DR0-3 and DR7 of `tid`, read through ptrace while it is briefly seized.
fn debug_registers(tid: i32) -> [u64; 5] {
    let seized = SeizedThread::seize_stopped(tid).unwrap();
    let mut values = [0; 5];
    for (value, register) in values.iter_mut().zip([0u8, 1, 2, 3, 7]) {
        *value = peek_debugreg(tid, register).unwrap();
    }
    seized.detach().unwrap();
    values
}

/// Takes `hits` hits, resuming each thread at its hit except, if `keep_last_stopped`, the
/// last one. Returns the threads that hit.
fn take_hits(tracer: &mut StopTracer, hits: usize, keep_last_stopped: bool) -> Vec<i32> {
    let mut hitters = Vec::new();
    while hitters.len() < hits {
        match tracer.next_event().unwrap() {
            StopEvent::Hit { tid, slots, .. } => {
                assert_eq!(slots, 0b0001, "only DR0 is armed");
                hitters.push(tid);
                if !(keep_last_stopped && hitters.len() == hits) {
                    tracer.resume(tid).unwrap();
                }
            }
            other => panic!("expected only hits from the writers, got {other:?}"),
        }
    }
    hitters
}

/// The fixture's store count; a target that died meanwhile fails with its exit status.
fn writes(mut fixture: Fixture) -> (Fixture, u64) {
    match fixture.command("count") {
        Ok(done) => {
            let writes = done.number("writes").unwrap();
            (fixture, writes)
        }
        Err(e) => {
            let status = fixture.finish().unwrap();
            panic!(
                "the target died after the detach ({e}): {status} \
                 (signal 5, SIGTRAP, is a watchpoint trap the tracer left queued)"
            )
        }
    }
}

/// After the detach: the writers are alive and keep writing, their registers are what they
/// were before the attach, and the fixture exits 0 when told to.
fn assert_runs_on(fixture: Fixture, tids: &[i32], before: &[[u64; 5]]) {
    let (fixture, first) = writes(fixture);
    std::thread::sleep(Duration::from_millis(50));
    let (fixture, second) = writes(fixture);
    assert!(
        second > first,
        "the writers stopped writing after the detach ({first} then {second} stores)"
    );
    let after: Vec<[u64; 5]> = tids.iter().map(|&tid| debug_registers(tid)).collect();
    assert_eq!(
        after, before,
        "DR0-3/DR7 of threads {tids:?} after the detach"
    );
    let status = fixture.finish().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "the target did not exit normally after the detach: {status} \
         (signal 5 is a SIGTRAP the tracer left queued)"
    );
}

fn detach_while_writing(writers: usize, hits: usize, keep_last_stopped: bool) {
    let fixture = Fixture::spawn(SPIN, &[&writers.to_string()]).unwrap();
    let tids = fixture.ready().list("tids").unwrap();
    assert_eq!(tids.len(), writers);
    let before: Vec<[u64; 5]> = tids.iter().map(|&tid| debug_registers(tid)).collect();
    let mut all = vec![fixture.pid()];
    all.extend(&tids);
    let mut tracer = StopTracer::attach(fixture.pid(), &all, registers(&fixture)).unwrap();
    assert_eq!(tracer.thread_count(), writers + 1);
    let hitters = take_hits(&mut tracer, hits, keep_last_stopped);
    assert!(hitters.iter().all(|t| tids.contains(t)), "{hitters:?}");
    assert_eq!(tracer.detach().unwrap(), writers + 1);
    assert_runs_on(fixture, &tids, &before);
}

#[test]
fn exclusive_detach_after_hits_leaves_a_writing_thread_running() {
    // The last hit's thread was resumed and writes on while the detach stops it: the race
    // between its next watchpoint SIGTRAP and the PTRACE_INTERRUPT.
    for _ in 0..10 {
        detach_while_writing(1, 5, false);
    }
}

#[test]
fn exclusive_detach_after_hits_leaves_four_writing_threads_running() {
    for keep_last_stopped in [false, true, false, true, false] {
        detach_while_writing(4, 20, keep_last_stopped);
    }
}

#[test]
fn exclusive_the_programs_own_sigtrap_is_still_delivered_after_the_detach() {
    let mut fixture = Fixture::spawn(SPIN, &["1"]).unwrap();
    assert_eq!(fixture.command("catch").unwrap().field("catch"), Some("1"));
    let tid = fixture.ready().list("tids").unwrap()[0];
    let pid = fixture.pid();
    let before = debug_registers(tid);
    let mut tracer = StopTracer::attach(pid, &[pid, tid], registers(&fixture)).unwrap();
    take_hits(&mut tracer, 3, true);
    // The writer is stopped at its third hit: queue a SIGTRAP of the program's own
    // (SI_TKILL) for it, which must survive the detach.
    // SAFETY: tgkill takes three integers.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGTRAP) };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
    assert_eq!(tracer.detach().unwrap(), 2);
    // The handler runs in the writer thread once it is scheduled again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let traps = loop {
        let traps = fixture.command("traps").unwrap();
        if traps.number("traps").unwrap() > 0 || Instant::now() > deadline {
            break traps;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Exactly the program's own trap: no watchpoint trap (TRAP_HWBKPT) leaked past the detach.
    assert_eq!(
        traps.fields,
        [
            ("traps".to_owned(), "1".to_owned()),
            ("tkill".to_owned(), "1".to_owned()),
            ("hwbkpt".to_owned(), "0".to_owned()),
            ("brkpt".to_owned(), "0".to_owned()),
        ]
    );
    assert_runs_on(fixture, &[tid], &[before]);
}

#[test]
fn exclusive_a_debug_exception_with_an_empty_dr6_is_swallowed_and_counted_as_stray() {
    // `icebp` raises the same SIGTRAP (TRAP_BRKPT from exc_debug_user, no B0-B3 in DR6) as
    // the stray debug exceptions these VMs raise under busy watchpoints (bench/sigtrap).
    let mut fixture = Fixture::spawn(SPIN, &["1"]).unwrap();
    let pid = fixture.pid();
    let tid = fixture.ready().list("tids").unwrap()[0];
    let before = debug_registers(tid);
    let mut tracer = StopTracer::attach(pid, &[pid, tid], registers(&fixture)).unwrap();
    fixture.send("icebp").unwrap();
    let stray = loop {
        match tracer.next_event().unwrap() {
            StopEvent::Hit { tid, .. } => tracer.resume(tid).unwrap(),
            other => break other,
        }
    };
    assert_eq!(stray, StopEvent::StrayTrap { tid: pid });
    assert_eq!(tracer.stray_traps(), 1);
    assert_eq!(tracer.detach().unwrap(), 2);
    assert_eq!(fixture.read_done().unwrap().field("icebp"), Some("1"));
    assert_runs_on(fixture, &[tid], &[before]);
}
