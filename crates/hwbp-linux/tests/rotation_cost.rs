//! What one rotation step costs: `PERF_EVENT_IOC_MODIFY_ATTRIBUTES` on a real breakpoint, and
//! the user-space disable / modify(disabled) / enable cycle, on a thread that is the caller,
//! one that sleeps and one that spins on the other CPU (the kernel must then reach it with an
//! IPI: `modify_user_hw_breakpoint` disables the event, checks and rewrites the breakpoint,
//! and re-enables it, `kernel/events/hw_breakpoint.c`). The numbers justify the default
//! rotation period of `hwbp watch --rotate-ms` (see `bench/rotation/RESULTS.md`); run with
//! `flock -s /tmp/hwbp-exclusive.lock cargo test --release -p hwbp-linux --test rotation_cost
//! -- --nocapture` to see them. The asserts check that every move really moved the watch and
//! that a move costs well under the 1 ms a rotation period must dwarf.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_linux::perf::attr::{counting_attr, set_breakpoint};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::sys::perf::{
    disable, enable, modify_attributes, open_breakpoint, read_count, EventTarget, RealPerfSys,
};

static FIRST: AtomicU64 = AtomicU64::new(0);
static SECOND: AtomicU64 = AtomicU64::new(0);
/// Written by the spinning thread, never watched: its progress measures the target-side cost.
static SPIN_PROGRESS: AtomicU64 = AtomicU64::new(0);

const MOVES: u32 = 10_000;

fn watch(var: &AtomicU64) -> WatchRequest {
    WatchRequest::new(var.as_ptr() as u64, 8, Access::Write)
}

fn open_on(tid: i32) -> OwnedFd {
    let mut attr = counting_attr(&watch(&FIRST));
    let fd = open_breakpoint(
        &RealPerfSys,
        &mut attr,
        EventTarget { pid: tid, cpu: -1 },
        "rotation-cost watch",
        1,
    )
    .unwrap();
    enable(fd.as_fd(), "rotation-cost watch").unwrap();
    fd
}

/// Latencies of single operations: median, 99th percentile and mean, in nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Latency {
    median: u64,
    p99: u64,
    mean: u64,
}

impl Latency {
    fn of(mut samples: Vec<u64>) -> Latency {
        samples.sort_unstable();
        let n = samples.len();
        Latency {
            median: samples[n / 2],
            p99: samples[n * 99 / 100],
            mean: samples.iter().sum::<u64>() / n as u64,
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>7} {:>7} {:>7}", self.median, self.p99, self.mean)
    }
}

/// Times `op` (given the iteration number) `MOVES` times, one sample per call.
fn sample(mut op: impl FnMut(usize)) -> Latency {
    let samples = (0..MOVES as usize)
        .map(|i| {
            let start = Instant::now();
            op(i);
            start.elapsed().as_nanos() as u64
        })
        .collect();
    Latency::of(samples)
}

/// One `MODIFY_ATTRIBUTES` that moves an enabled watch, alternating between FIRST and
/// SECOND; ends on FIRST (MOVES is even).
fn time_modify(fd: &OwnedFd) -> Latency {
    let mut attrs = [watch(&SECOND), watch(&FIRST)].map(|w| {
        let mut attr = counting_attr(&w);
        set_breakpoint(&mut attr, &w);
        attr.set_disabled(0);
        attr
    });
    sample(|i| modify_attributes(fd.as_fd(), &mut attrs[i % 2], "move").unwrap())
}

/// DISABLE + MODIFY_ATTRIBUTES(disabled) + ENABLE; ends on FIRST.
fn time_cycle(fd: &OwnedFd) -> Latency {
    let mut attrs = [watch(&SECOND), watch(&FIRST)].map(|w| counting_attr(&w));
    sample(|i| {
        disable(fd.as_fd(), "cycle").unwrap();
        modify_attributes(fd.as_fd(), &mut attrs[i % 2], "cycle").unwrap();
        enable(fd.as_fd(), "cycle").unwrap();
    })
}

/// Keeps the calling thread on `cpu`, so the spinner and the test thread never share a CPU
/// (a target that is not running needs no IPI, which would hide the cost we measure).
fn pin_to_cpu(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

/// A thread of this process that either sleeps on a channel or spins, writing FIRST/SECOND on
/// request so the test can check where the watch is.
struct Helper {
    tid: i32,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Helper {
    fn spawn(spin: bool) -> Helper {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let handle = std::thread::spawn(move || {
            if spin {
                pin_to_cpu(1);
            }
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            while !thread_stop.load(Ordering::Relaxed) {
                if spin {
                    SPIN_PROGRESS.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Helper {
            tid: rx.recv().unwrap(),
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The watch is on FIRST: 3 writes to FIRST count, 2 to SECOND do not.
fn assert_watch_on_first(fd: &OwnedFd) {
    let before = read_count(fd.as_fd(), "check").unwrap().value;
    for _ in 0..3 {
        FIRST.fetch_add(1, Ordering::SeqCst);
    }
    for _ in 0..2 {
        SECOND.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(read_count(fd.as_fd(), "check").unwrap().value - before, 3);
}

/// Nanoseconds thread `tid` of this process has run (first field of
/// `/proc/self/task/TID/schedstat`). Interrupts it takes while running, IPIs included, are
/// charged to it; time other processes take from it is not.
fn cpu_time_ns(tid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// Spinner iterations per nanosecond of its own CPU time over `window`, while `during` runs
/// (or idles) on this thread; and the sum of what `during` returned.
fn spin_rate(spinner: i32, window: Duration, mut during: impl FnMut() -> u64) -> (f64, u64) {
    let start_progress = SPIN_PROGRESS.load(Ordering::Relaxed);
    let start_cpu = cpu_time_ns(spinner);
    let start = Instant::now();
    let mut work = 0;
    while start.elapsed() < window {
        work += during();
    }
    let done = SPIN_PROGRESS.load(Ordering::Relaxed) - start_progress;
    (
        done as f64 / (cpu_time_ns(spinner) - start_cpu) as f64,
        work,
    )
}

#[test]
fn modify_attributes_cost_per_rotation_step() {
    pin_to_cpu(0);
    // 1. The calling thread: no IPI, the kernel disables/enables the event locally.
    let fd = open_on(0);
    let self_modify = time_modify(&fd);
    let self_cycle = time_cycle(&fd);
    assert_watch_on_first(&fd);
    drop(fd);

    // 2. A sleeping thread: its event is not on a CPU, nothing to interrupt.
    let sleeper = Helper::spawn(false);
    let fd = open_on(sleeper.tid);
    let sleeping_modify = time_modify(&fd);
    let sleeping_cycle = time_cycle(&fd);
    drop(fd);
    drop(sleeper);

    // 3. A thread spinning on the other CPU: every disable/enable is an IPI to it.
    let spinner = Helper::spawn(true);
    let fd = open_on(spinner.tid);
    let spinning_modify = time_modify(&fd);
    let spinning_cycle = time_cycle(&fd);
    // Cost to the target: its progress with back-to-back moves versus undisturbed.
    let window = Duration::from_millis(300);
    let (idle_rate, _) = spin_rate(spinner.tid, window, || {
        std::thread::sleep(Duration::from_millis(1));
        0
    });
    let mut attrs = [watch(&SECOND), watch(&FIRST)].map(|w| {
        let mut attr = counting_attr(&w);
        attr.set_disabled(0);
        attr
    });
    let mut flip = 0;
    let (busy_rate, moves) = spin_rate(spinner.tid, window, || {
        flip ^= 1;
        modify_attributes(fd.as_fd(), &mut attrs[flip], "move").unwrap();
        1
    });
    // Periodic rotation as hwbp would do it: the spinner's slowdown for each period, as the
    // median over 5 alternations of an idle and a rotating window (other load on the machine
    // moves single windows by a few percent).
    let mut periodic = Vec::new();
    for period_ms in [1u64, 4, 10] {
        let mut ratios: Vec<f64> = (0..5)
            .map(|_| {
                let (idle, _) = spin_rate(spinner.tid, window, || {
                    std::thread::sleep(Duration::from_millis(period_ms));
                    0
                });
                let (rotating, _) = spin_rate(spinner.tid, window, || {
                    std::thread::sleep(Duration::from_millis(period_ms));
                    flip ^= 1;
                    modify_attributes(fd.as_fd(), &mut attrs[flip], "move").unwrap();
                    1
                });
                1.0 - rotating / idle
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        periodic.push((period_ms, ratios[2]));
    }
    drop(fd);
    drop(spinner);
    let loss = (1.0 - busy_rate / idle_rate).max(0.0);
    let target_ns_per_move = loss * window.as_nanos() as f64 / moves as f64;

    eprintln!("rotation cost over {MOVES} moves, ns per move (median p99 mean):");
    eprintln!("  target            MODIFY_ATTRIBUTES        DISABLE+MODIFY+ENABLE");
    eprintln!("  calling thread    {self_modify}  {self_cycle}");
    eprintln!("  sleeping thread   {sleeping_modify}  {sleeping_cycle}");
    eprintln!("  spinning thread   {spinning_modify}  {spinning_cycle}");
    eprintln!(
        "  spinning target slowed {:.1}% by {moves} back-to-back moves in {} ms: ~{target_ns_per_move:.0} ns of target time per move",
        loss * 100.0,
        window.as_millis()
    );

    for (period_ms, slowdown) in &periodic {
        eprintln!(
            "  rotating every {period_ms:>2} ms: spinning target slowed {:.2}% (median of 5)",
            slowdown * 100.0
        );
    }

    // Sanity bounds (a move is microseconds; 1 ms would make any rotation period pointless).
    for cost in [
        self_modify,
        self_cycle,
        sleeping_modify,
        sleeping_cycle,
        spinning_modify,
        spinning_cycle,
    ] {
        assert!(
            cost.median > 0 && cost.median < 1_000_000,
            "{cost:?} ns per move"
        );
    }
}
