//! Real-kernel tests of CPU-wide sessions (`pid = -1`): all-or-nothing opening across CPUs and
//! CPU hotplug (`add_cpu`/`remove_cpu`). Every test takes debug registers from every thread on
//! a CPU or takes CPU 1 offline, so every name starts with `exclusive_` (run serially).
//! Tests needing CPU 1 are skipped (`hwbp_fixtures::skip`, counted by the test command) on a
//! machine with one CPU, and the hotplug tests where CPU 1 cannot be taken offline.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_fixtures::skip::{skip_unless_cpu1_hotplug, skip_unless_second_cpu};
use hwbp_linux::hotplug::{is_cpu_online, OfflineCpu, OnlineCpuMonitor};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::session::{EventScope, Hit, Record, SessionOptions, WatchSession};
use hwbp_linux::ErrorKind;

/// Writes `*target` exactly `n` times from a thread pinned to `cpu`.
fn write_on_cpu(cpu: usize, target: &'static AtomicU64, n: u64) {
    std::thread::spawn(move || {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
        for i in 0..n {
            // SAFETY: the pointer comes from a live static; this thread is its only writer.
            unsafe { std::ptr::write_volatile(target.as_ptr(), i) };
        }
    })
    .join()
    .unwrap();
}

fn watch(target: &AtomicU64) -> WatchRequest {
    WatchRequest {
        pinned: true,
        exclude_kernel: true,
        ..WatchRequest::new(target.as_ptr() as u64, 8, Access::Write)
    }
}

/// `cargo test` runs a binary's tests in parallel threads (nextest serializes `exclusive_`
/// tests itself): these share CPU 1's registers and its online state, so they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn has_cpu1() -> bool {
    is_cpu_online(1).unwrap_or(false)
}

/// Drains everything delivered so far (two polls: a sample may land just after the first).
fn drain_hits(session: &mut WatchSession) -> Vec<Hit> {
    let mut hits = Vec::new();
    for _ in 0..2 {
        session
            .poll(Duration::from_millis(20), &mut |record| {
                if let Record::Hit(hit) = record {
                    hits.push(hit);
                }
            })
            .unwrap();
    }
    hits
}

#[test]
fn exclusive_a_full_cpu_refuses_the_whole_wide_session_and_names_that_cpu() {
    let _serial = serial();
    static TARGET: AtomicU64 = AtomicU64::new(0);
    static FILLER: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    if skip_unless_second_cpu() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let fillers: Vec<WatchRequest> = FILLER.iter().map(watch).collect();
    let full = WatchSession::open(
        &fillers,
        &[EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .expect("four CPU-wide breakpoints on CPU 1 (is another debugger holding slots there?)");
    let error = WatchSession::open(
        &[watch(&TARGET)],
        &[EventScope::Cpu(0), EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoFreeSlot, "{error}");
    let text = error.to_string();
    assert!(text.contains("every task on CPU 1"), "{text}");
    assert!(text.contains("CPU 1 has no free debug register"), "{text}");
    // Nothing stayed armed on CPU 0: writes there are not counted by anyone, and CPU 0 still
    // has all four registers for a new session.
    let cpu0 = WatchSession::open(
        &fillers,
        &[EventScope::Cpu(0)],
        &[],
        &SessionOptions::default(),
    )
    .expect("CPU 0's registers were released by the refused session");
    drop(cpu0);
    drop(full);
    // Once CPU 1's registers are free, the same request succeeds and counts on both CPUs.
    let mut session = WatchSession::open(
        &[watch(&TARGET)],
        &[EventScope::Cpu(0), EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .unwrap();
    session.enable().unwrap();
    write_on_cpu(0, &TARGET, 7);
    write_on_cpu(1, &TARGET, 5);
    session.disable().unwrap();
    let hits = drain_hits(&mut session);
    assert_eq!(session.counts().unwrap()[0].count, 12);
    assert_eq!(hits.iter().filter(|h| h.cpu == 0).count(), 7);
    assert_eq!(hits.iter().filter(|h| h.cpu == 1).count(), 5);
}

#[test]
fn exclusive_a_cpu_that_goes_offline_and_returns_is_rearmed_and_its_hits_kept() {
    let _serial = serial();
    static TARGET: AtomicU64 = AtomicU64::new(0);
    if skip_unless_cpu1_hotplug() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let mut session = WatchSession::open(
        &[watch(&TARGET)],
        &[EventScope::Cpu(0), EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .unwrap();
    session.enable().unwrap();
    write_on_cpu(1, &TARGET, 10);
    let mut monitor = OnlineCpuMonitor::new().unwrap();

    let offline = OfflineCpu::take(1).unwrap();
    let changes = monitor.check().unwrap();
    assert_eq!(changes.went_offline, vec![1]);
    let mut before = Vec::new();
    let closed = session.remove_cpu(1, &mut |record| {
        if let Record::Hit(hit) = record {
            before.push(hit);
        }
    });
    assert_eq!(closed.unwrap(), 1);
    assert_eq!(session.watched_cpus(), vec![0]);
    // The closed event's hits are still counted, and its samples were delivered.
    assert_eq!(session.counts().unwrap()[0].count, 10);
    assert_eq!(before.iter().filter(|h| h.cpu == 1).count(), 10);
    // add_cpu refuses an offline CPU, changing nothing.
    assert!(session.add_cpu(1).is_err());
    assert_eq!(session.event_count(), 1);

    offline.bring_back().unwrap();
    let since = Instant::now();
    let changes = monitor.check().unwrap();
    assert_eq!(changes.came_online, vec![1]);
    session.add_cpu(1).unwrap();
    assert!(since.elapsed() < Duration::from_millis(100));
    assert_eq!(session.watched_cpus(), vec![0, 1]);
    // add_cpu on a CPU that is watched already does nothing.
    session.add_cpu(1).unwrap();
    assert_eq!(session.event_count(), 2);

    write_on_cpu(1, &TARGET, 20);
    write_on_cpu(0, &TARGET, 3);
    session.disable().unwrap();
    let after = drain_hits(&mut session);
    assert_eq!(session.counts().unwrap()[0].count, 33);
    assert_eq!(after.iter().filter(|h| h.cpu == 1).count(), 20);
    assert_eq!(after.iter().filter(|h| h.cpu == 0).count(), 3);
}

#[test]
fn exclusive_remove_cpu_frees_the_registers_a_dead_event_would_keep() {
    let _serial = serial();
    static FILLER: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    if skip_unless_cpu1_hotplug() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let fillers: Vec<WatchRequest> = FILLER.iter().map(watch).collect();
    let mut session = WatchSession::open(
        &fillers,
        &[EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .unwrap();
    {
        let _offline = OfflineCpu::take(1).unwrap();
    }
    // Still open but detached, the four events keep CPU 1's registers reserved.
    let refused = WatchSession::open(
        &fillers[..1],
        &[EventScope::Cpu(1)],
        &[],
        &SessionOptions::default(),
    )
    .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NoFreeSlot, "{refused}");
    assert_eq!(session.remove_cpu(1, &mut |_| {}).unwrap(), 4);
    session.add_cpu(1).unwrap();
    assert_eq!(session.event_count(), 4);
}
