//! Real-kernel tests of `WatchSession`: per-thread breakpoints on threads of this test process.
//! No CPU-wide events here, so these run in parallel with each other.

use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use hwbp_core::Access;
use hwbp_linux::perf::{SampleOptions, Wakeup, WatchRequest};
use hwbp_linux::session::{online_cpus, EventScope, Hit, Record, SessionOptions, WatchSession};
use hwbp_linux::ErrorKind;

/// Writes `*target` exactly `n` times; not inlined and volatile so the compiler keeps every
/// store.
#[inline(never)]
fn write_times(target: &AtomicU64, n: u64) {
    for i in 0..n {
        // SAFETY: the pointer comes from a live static; only the watched thread writes it.
        unsafe { std::ptr::write_volatile(target.as_ptr(), i) };
    }
}

fn addr_of(target: &AtomicU64) -> u64 {
    target.as_ptr() as u64
}

/// A thread that reports its tid, then runs `body` (which synchronises through the barrier).
struct WatchedThread {
    tid: i32,
    handle: JoinHandle<()>,
}

fn spawn_watched(body: impl FnOnce() + Send + 'static) -> WatchedThread {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        tx.send(nix::unistd::gettid().as_raw()).unwrap();
        body();
    });
    WatchedThread {
        tid: rx.recv().unwrap(),
        handle,
    }
}

/// Polls until every watched task has exited, collecting hits; fails after 20 s.
fn collect_until_exit(session: &mut WatchSession) -> (Vec<Hit>, u64) {
    let mut hits = Vec::new();
    let mut lost_records = 0;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let outcome = session
            .poll(Duration::from_millis(100), &mut |record| match record {
                Record::Hit(hit) => hits.push(hit),
                Record::Lost { count } => lost_records += count,
                Record::Throttle
                | Record::Unthrottle
                | Record::Comm { .. }
                | Record::Fork { .. } => {}
            })
            .unwrap();
        if outcome.all_exited {
            return (hits, lost_records);
        }
    }
    panic!(
        "watched tasks did not exit within 20 s; got {} hits",
        hits.len()
    );
}

fn write_watch(target: &AtomicU64) -> WatchRequest {
    WatchRequest::new(addr_of(target), 8, Access::Write)
}

#[test]
fn every_write_by_a_watched_thread_is_counted_and_sampled_once() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    const N: u64 = 1000;
    let armed = Arc::new(Barrier::new(2));
    let go = armed.clone();
    let thread = spawn_watched(move || {
        go.wait();
        write_times(&TARGET, N);
    });
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    session.enable().unwrap();
    armed.wait();
    let (hits, lost) = collect_until_exit(&mut session);
    thread.handle.join().unwrap();

    let counts = session.counts().unwrap();
    assert_eq!(counts[0].count, N);
    assert_eq!((lost, session.lost()), (0, 0));
    assert_eq!(hits.len() as u64, N);
    let pid = std::process::id() as i32;
    for hit in &hits {
        assert_eq!((hit.watch, hit.tid, hit.pid), (0, thread.tid, pid));
        assert_eq!(hit.addr, addr_of(&TARGET));
        assert!(!hit.kernel_mode);
        assert!(hit.callchain.is_empty());
    }
    // One store instruction in the loop, so one sampled ip (the instruction after the store,
    // as x86 data breakpoints trap after the access).
    assert_ne!(hits[0].ip, 0);
    assert!(
        hits.iter().all(|h| h.ip == hits[0].ip),
        "ips differ: {:#x?}",
        &hits[..3]
    );
    assert!(hits.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
}

#[test]
fn threads_created_after_enable_are_followed_through_inherit() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    const PARENT_WRITES: u64 = 30;
    const CHILD_WRITES: u64 = 70;
    let armed = Arc::new(Barrier::new(2));
    let go = armed.clone();
    let (child_tx, child_rx) = mpsc::channel();
    let thread = spawn_watched(move || {
        go.wait();
        write_times(&TARGET, PARENT_WRITES);
        std::thread::spawn(move || {
            child_tx.send(nix::unistd::gettid().as_raw()).unwrap();
            write_times(&TARGET, CHILD_WRITES);
        })
        .join()
        .unwrap();
    });
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    session.enable().unwrap();
    armed.wait();
    let (hits, _) = collect_until_exit(&mut session);
    thread.handle.join().unwrap();
    let child_tid = child_rx.recv().unwrap();

    assert_eq!(
        session.counts().unwrap()[0].count,
        PARENT_WRITES + CHILD_WRITES
    );
    let by_parent = hits.iter().filter(|h| h.tid == thread.tid).count() as u64;
    let by_child = hits.iter().filter(|h| h.tid == child_tid).count() as u64;
    assert_eq!(
        (by_parent, by_child, hits.len() as u64),
        (PARENT_WRITES, CHILD_WRITES, PARENT_WRITES + CHILD_WRITES)
    );
    assert!(hits
        .iter()
        .all(|h| h.watch == 0 && h.addr == addr_of(&TARGET)));
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds: the clock hit times are on.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn a_short_lived_named_thread_is_named_by_a_comm_record_and_hit_times_are_monotonic() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    const CHILD_WRITES: u64 = 3;
    let armed = Arc::new(Barrier::new(2));
    let go = armed.clone();
    let (child_tx, child_rx) = mpsc::channel();
    let thread = spawn_watched(move || {
        go.wait();
        // std names the thread from inside it (prctl(PR_SET_NAME)) before running the
        // closure; the thread then writes a few times and is gone before anyone polls.
        std::thread::Builder::new()
            .name("short-lived".into())
            .spawn(move || {
                child_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                write_times(&TARGET, CHILD_WRITES);
            })
            .unwrap()
            .join()
            .unwrap();
    });
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    let before_enable = monotonic_ns();
    session.enable().unwrap();
    armed.wait();
    let mut hits = Vec::new();
    let mut comms = Vec::new();
    let mut forks = Vec::new();
    let start = std::time::Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(20), "no exit");
        let outcome = session
            .poll(Duration::from_millis(100), &mut |record| match record {
                Record::Hit(hit) => hits.push(hit),
                Record::Comm {
                    pid,
                    tid,
                    comm,
                    exec,
                    time_ns,
                } => comms.push((pid, tid, comm, exec, time_ns)),
                Record::Fork {
                    pid,
                    tid,
                    ppid,
                    ptid,
                    time_ns,
                } => forks.push((pid, tid, ppid, ptid, time_ns)),
                _ => {}
            })
            .unwrap();
        if outcome.all_exited {
            break;
        }
    }
    let after_exit = monotonic_ns();
    thread.handle.join().unwrap();
    let child_tid = child_rx.recv().unwrap();
    // The thread has exited (its events hung up), so /proc may no longer name it; the ring did.
    let pid = std::process::id() as i32;
    let child_comms: Vec<_> = comms.iter().filter(|c| c.1 == child_tid).collect();
    assert_eq!(child_comms.len(), 1, "{comms:?}");
    let (comm_pid, _, name, exec, comm_time) = child_comms[0].clone();
    assert_eq!((comm_pid, name.as_str(), exec), (pid, "short-lived", false));
    let child_hits: Vec<&Hit> = hits.iter().filter(|h| h.tid == child_tid).collect();
    assert_eq!(child_hits.len() as u64, CHILD_WRITES);
    // Records and samples share CLOCK_MONOTONIC: the rename comes before the thread's writes,
    // and everything lies between our own readings around the run.
    let comm_time = comm_time.expect("sample_id_all gives COMM records a time");
    assert!(comm_time >= before_enable && comm_time <= child_hits[0].time_ns);
    // Its creation came first, as a FORK record naming the watched thread as its creator.
    assert_eq!(forks.len(), 1, "{forks:?}");
    let (fork_pid, fork_tid, fork_ppid, fork_ptid, fork_time) = forks[0];
    assert_eq!(
        (fork_pid, fork_tid, fork_ppid, fork_ptid),
        (pid, child_tid, pid, thread.tid)
    );
    assert!(fork_time >= before_enable && fork_time <= comm_time);
    for hit in &hits {
        assert!(
            hit.time_ns >= before_enable && hit.time_ns <= after_exit,
            "{} not in [{before_enable}, {after_exit}]",
            hit.time_ns
        );
    }
}

#[test]
fn modify_attributes_moves_the_watch_without_reopening() {
    static FIRST: AtomicU64 = AtomicU64::new(0);
    static SECOND: AtomicU64 = AtomicU64::new(0);
    let step = Arc::new(Barrier::new(2));
    let thread_step = step.clone();
    let thread = spawn_watched(move || {
        thread_step.wait(); // armed on FIRST
        write_times(&FIRST, 5);
        write_times(&SECOND, 6);
        thread_step.wait(); // main moves the watch
        thread_step.wait(); // moved to SECOND
        write_times(&FIRST, 7);
        write_times(&SECOND, 8);
    });
    let mut session = WatchSession::open(
        &[write_watch(&FIRST)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    session.enable().unwrap();
    let events = session.event_count();
    step.wait();
    step.wait();
    session.modify(0, &write_watch(&SECOND)).unwrap();
    step.wait();
    let (hits, _) = collect_until_exit(&mut session);
    thread.handle.join().unwrap();

    assert_eq!(session.event_count(), events);
    assert_eq!(session.watches()[0].addr, addr_of(&SECOND));
    assert_eq!(session.counts().unwrap()[0].count, 5 + 8);
    let on_first = hits.iter().filter(|h| h.addr == addr_of(&FIRST)).count();
    let on_second = hits.iter().filter(|h| h.addr == addr_of(&SECOND)).count();
    assert_eq!((on_first, on_second, hits.len()), (5, 8, 13));
}

#[test]
fn a_full_ring_reports_lost_samples_while_counts_stay_exact() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    const BURST: u64 = 2000;
    let step = Arc::new(Barrier::new(2));
    let thread_step = step.clone();
    let thread = spawn_watched(move || {
        thread_step.wait();
        write_times(&TARGET, BURST);
        thread_step.wait(); // main drains the full ring
        thread_step.wait();
        // The kernel writes PERF_RECORD_LOST before the next sample that fits.
        write_times(&TARGET, 1);
    });
    let opts = SessionOptions {
        ring_pages: 1,
        sample: SampleOptions {
            wakeup: Wakeup::Events(1),
            ..SampleOptions::default()
        },
        ..SessionOptions::default()
    };
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .unwrap();
    session.enable().unwrap();
    step.wait();
    step.wait(); // burst done, nothing drained yet
    let mut hits = Vec::new();
    session.drain(&mut |r| {
        if let Record::Hit(h) = r {
            hits.push(h)
        }
    });
    step.wait();
    let (more, lost_records) = collect_until_exit(&mut session);
    thread.handle.join().unwrap();
    hits.extend(more);

    let counts = session.counts().unwrap();
    let count = counts[0].count;
    assert_eq!(count, BURST + 1);
    let dropped = counts[0].lost.expect("Linux 6.18 has PERF_FORMAT_LOST");
    assert!(dropped > 0, "a 4 KiB ring cannot hold {BURST} samples");
    // Every hit is either delivered or counted as lost by the kernel.
    assert_eq!(hits.len() as u64 + dropped, count);
    // LOST records arrive only on rings that got more output after the overflow (the thread may
    // have migrated to another CPU for its last write), so they can under-report, never over.
    assert_eq!(session.lost(), lost_records);
    assert!(session.lost() <= dropped);
    assert_eq!(hits.last().unwrap().tid, thread.tid);
}

#[test]
fn a_fifth_watch_on_one_thread_fails_with_enospc_naming_the_thread() {
    static TARGETS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
    let done = Arc::new(Barrier::new(2));
    let thread_done = done.clone();
    let thread = spawn_watched(move || {
        thread_done.wait();
    });
    let watches: Vec<WatchRequest> = TARGETS
        .iter()
        .map(|t| WatchRequest {
            pinned: true,
            ..write_watch(t)
        })
        .collect();
    let cpus = online_cpus().unwrap();
    // Four fit: x86 has four debug registers per thread.
    let four = WatchSession::open(
        &watches[..4],
        &[EventScope::Thread(thread.tid)],
        &cpus,
        &SessionOptions::default(),
    )
    .unwrap();
    assert_eq!(four.event_count(), 4 * cpus.len());
    drop(four);
    let error = WatchSession::open(
        &watches,
        &[EventScope::Thread(thread.tid)],
        &cpus,
        &SessionOptions::default(),
    )
    .unwrap_err();
    done.wait();
    thread.handle.join().unwrap();

    assert_eq!(error.kind(), ErrorKind::NoFreeSlot);
    assert_eq!(error.errno(), Some(nix::errno::Errno::ENOSPC));
    let message = error.to_string();
    assert!(
        message.contains(&format!("thread {} on CPU", thread.tid)),
        "{message}"
    );
    assert!(
        message.contains(&format!("{:#x}", addr_of(&TARGETS[4]))),
        "{message}"
    );
    assert!(
        message.contains("no free debug register") && message.contains("--flexible"),
        "{message}"
    );
}

#[test]
fn counts_work_without_reading_the_ring_and_respect_disable() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    let step = Arc::new(Barrier::new(2));
    let thread_step = step.clone();
    let thread = spawn_watched(move || {
        thread_step.wait();
        write_times(&TARGET, 40);
        thread_step.wait(); // main disables
        thread_step.wait();
        write_times(&TARGET, 50);
    });
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &SessionOptions::default(),
    )
    .unwrap();
    assert!(!session.is_enabled());
    session.enable().unwrap();
    step.wait();
    step.wait();
    session.disable().unwrap();
    step.wait();
    thread.handle.join().unwrap();
    let counts = session.counts().unwrap();
    assert_eq!(counts[0].count, 40);
    assert!(counts[0].time_enabled > 0);
}

#[test]
fn callchains_start_at_the_sampled_ip_and_have_no_kernel_frames_for_user_writes() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    let armed = Arc::new(Barrier::new(2));
    let go = armed.clone();
    let thread = spawn_watched(move || {
        go.wait();
        write_times(&TARGET, 3);
    });
    let opts = SessionOptions {
        sample: SampleOptions {
            callchain: true,
            ..SampleOptions::default()
        },
        ..SessionOptions::default()
    };
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .unwrap();
    session.enable().unwrap();
    armed.wait();
    let (hits, _) = collect_until_exit(&mut session);
    thread.handle.join().unwrap();
    assert_eq!(hits.len(), 3);
    for hit in &hits {
        assert_eq!(hit.callchain_kernel_frames, 0, "{hit:?}");
        assert!(hit.callchain.len() >= 2, "{hit:?}");
        assert_eq!(hit.callchain[0], hit.ip, "{hit:?}");
    }
    // MODIFY_ATTRIBUTES compares the whole attr with the kernel's copy; with callchains the
    // kernel fills sample_max_stack, which we send explicitly, so a move still works.
    static OTHER: AtomicU64 = AtomicU64::new(0);
    session.modify(0, &write_watch(&OTHER)).unwrap();
}

#[test]
fn the_reader_keeps_up_with_a_hot_watch_without_losing_samples() {
    static TARGET: AtomicU64 = AtomicU64::new(0);
    const N: u64 = 200_000;
    let armed = Arc::new(Barrier::new(2));
    let go = armed.clone();
    let thread = spawn_watched(move || {
        go.wait();
        write_times(&TARGET, N);
    });
    // The default ring (512 KiB per CPU).
    let opts = SessionOptions::default();
    let mut session = WatchSession::open(
        &[write_watch(&TARGET)],
        &[EventScope::Thread(thread.tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .unwrap();
    session.enable().unwrap();
    let start = std::time::Instant::now();
    armed.wait();
    let mut hits = 0u64;
    let mut on_target = 0u64;
    loop {
        let outcome = session
            .poll(Duration::from_millis(100), &mut |record| {
                if let Record::Hit(hit) = record {
                    hits += 1;
                    on_target += u64::from(hit.addr == addr_of(&TARGET));
                }
            })
            .unwrap();
        if outcome.all_exited {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "writer did not finish"
        );
    }
    let elapsed = start.elapsed();
    thread.handle.join().unwrap();
    let counts = session.counts().unwrap();
    eprintln!(
        "{N} hits in {elapsed:?} ({:.0} hits/s), throttled {}",
        N as f64 / elapsed.as_secs_f64(),
        session.throttled()
    );
    assert_eq!(counts[0].count, N);
    assert_eq!(counts[0].lost, Some(0));
    assert_eq!((hits, on_target), (N, N));
}
