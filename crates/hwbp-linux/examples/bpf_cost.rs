//! What the BPF hit handler costs per hit, in one run: a thread writes a variable N times in a
//! tight loop, first unwatched, then under a plain counting breakpoint (the trap floor, as
//! `perf stat` has it), a sampling session without a handler (perf samples to user space, as
//! hwbp watch does without BPF), a program that only returns 0 (the floor of any handler),
//! the handler in Emit mode (one exact record per hit, drained by this
//! thread) and in Count mode. Prints ns per write in the writer, and this (reader) thread's
//! CPU per hit. Run as root: `cargo run --release -p hwbp-linux --example bpf_cost [N]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_linux::bpf::insn::{to_bytes, Asm, Reg};
use hwbp_linux::bpf::sys::Prog;
use hwbp_linux::bpf::{HandlerMode, HandlerPiece, HandlerSpec, HitHandler};
use hwbp_linux::perf::attr::counting_attr;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::session::{online_cpus, EventScope, Record, SessionOptions, WatchSession};
use hwbp_linux::sys::perf::{self as perf, EventTarget, RealPerfSys};

static CELL: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn write_loop(n: u64) {
    for i in 1..=n {
        CELL.store(i, Ordering::Relaxed);
    }
}

/// A writer thread: reports its tid, waits for go, writes n times, returns the loop's time.
fn writer(n: u64) -> (i32, mpsc::Sender<()>, std::thread::JoinHandle<Duration>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        go_rx.recv().unwrap();
        let start = Instant::now();
        write_loop(n);
        start.elapsed()
    });
    (tid_rx.recv().unwrap(), go_tx, handle)
}

/// User + system CPU time of the calling thread (clock ticks of `/proc/thread-self/stat`).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

struct Row {
    name: &'static str,
    loop_time: Duration,
    reader_cpu: Duration,
    hits: u64,
    delivered: u64,
}

/// The session as hwbp opens it: perf samples, or (`handler`) events that ask for no sample
/// fields and leave the names to a side-band event.
fn session_for(tid: i32, addr: u64, handler: bool) -> WatchSession {
    let mut opts = SessionOptions {
        inherit: false,
        ..SessionOptions::default()
    };
    opts.sample.in_kernel_handler = handler;
    WatchSession::open(
        &[WatchRequest::new(addr, 8, Access::Write)],
        &[EventScope::Thread(tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .unwrap()
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("N"));
    let rounds: usize = std::env::args()
        .nth(2)
        .map_or(3, |a| a.parse().expect("rounds"));
    // The machines are shared: run every mode `rounds` times, interleaved, and keep the
    // median loop time of each.
    let mut all: Vec<Vec<Row>> = (0..rounds).map(|_| measure(n)).collect();
    let mut rows = Vec::new();
    for _ in 0..all[0].len() {
        let mut runs: Vec<Row> = all.iter_mut().map(|r| r.remove(0)).collect();
        runs.sort_by_key(|r| r.loop_time);
        rows.push(runs.swap_remove(rounds / 2));
    }
    report(n, rounds, &rows);
}

fn measure(n: u64) -> Vec<Row> {
    let addr = CELL.as_ptr() as u64;
    let mut rows = Vec::new();

    // 1. Unwatched.
    let (_, go, handle) = writer(n);
    go.send(()).unwrap();
    rows.push(Row {
        name: "no watch",
        loop_time: handle.join().unwrap(),
        reader_cpu: Duration::ZERO,
        hits: 0,
        delivered: 0,
    });

    // 2. A counting breakpoint (sample_period = 0): the trap alone.
    let (tid, go, handle) = writer(n);
    let mut attr = counting_attr(&WatchRequest::new(addr, 8, Access::Write));
    let fd = perf::open_breakpoint(
        &RealPerfSys,
        &mut attr,
        EventTarget { pid: tid, cpu: -1 },
        "counting watch",
        1,
    )
    .unwrap();
    use std::os::fd::AsFd;
    perf::enable(fd.as_fd(), "counting watch").unwrap();
    go.send(()).unwrap();
    let loop_time = handle.join().unwrap();
    let hits = perf::read_count(fd.as_fd(), "counting watch")
        .unwrap()
        .value;
    rows.push(Row {
        name: "counting event (perf stat)",
        loop_time,
        reader_cpu: Duration::ZERO,
        hits,
        delivered: 0,
    });
    drop(fd);

    // 3. Sampling session, no handler: every hit is a perf sample read here.
    let (tid, go, handle) = writer(n);
    let mut session = session_for(tid, addr, false);
    session.enable().unwrap();
    let cpu0 = thread_cpu();
    go.send(()).unwrap();
    let mut delivered = 0u64;
    let mut count = |r: Record| {
        if let Record::Hit(_) = r {
            delivered += 1;
        }
    };
    while !handle.is_finished() {
        session.poll(Duration::from_millis(10), &mut count).unwrap();
    }
    let loop_time = handle.join().unwrap();
    session.poll(Duration::ZERO, &mut count).unwrap();
    let reader_cpu = thread_cpu() - cpu0;
    rows.push(Row {
        name: "perf samples, no handler",
        loop_time,
        reader_cpu,
        hits: session.counts().unwrap()[0].count,
        delivered,
    });
    drop(session);

    // 4. The floor of any handler: a program that only returns 0.
    let (tid, go, handle) = writer(n);
    let mut nothing = Asm::new();
    nothing.mov(Reg::R0, 0).exit();
    let raw = nothing.finish().encode(&|_| None).unwrap();
    let prog = Prog::load_perf_event(&to_bytes(&raw), "hwbp_nothing").unwrap();
    let mut session = session_for(tid, addr, true);
    session.attach_handler(prog.fd()).unwrap();
    session.enable().unwrap();
    go.send(()).unwrap();
    let loop_time = handle.join().unwrap();
    rows.push(Row {
        name: "program that returns 0",
        loop_time,
        reader_cpu: Duration::ZERO,
        hits: session.counts().unwrap()[0].count,
        delivered: 0,
    });
    drop(session);

    // 5 and 6. The handler, Emit and Count.
    for (name, mode) in [
        (
            "handler, Emit (exact values)",
            HandlerMode::Emit { stack: false },
        ),
        ("handler, Count", HandlerMode::Count),
    ] {
        let (tid, go, handle) = writer(n);
        let mut handler =
            HitHandler::load(&HandlerSpec::new(vec![HandlerPiece::new(addr, 8)], mode)).unwrap();
        handler.seed(0, CELL.load(Ordering::Relaxed)).unwrap();
        let mut session = session_for(tid, addr, true);
        session.attach_handler(handler.program_fd()).unwrap();
        session.enable().unwrap();
        let cpu0 = thread_cpu();
        go.send(()).unwrap();
        let mut delivered = 0u64;
        while !handle.is_finished() {
            handler.wait(Duration::from_millis(10)).unwrap();
            delivered += handler.poll_records(&mut |_| {}) as u64;
        }
        let loop_time = handle.join().unwrap();
        delivered += handler.poll_records(&mut |_| {}) as u64;
        if mode == HandlerMode::Count {
            delivered = handler.counts().unwrap().iter().map(|(_, c)| c).sum();
        }
        let reader_cpu = thread_cpu() - cpu0;
        let hits = session.counts().unwrap()[0].count;
        let stats = handler.stats().unwrap();
        assert_eq!(stats.ring_full, 0, "ring overflowed");
        rows.push(Row {
            name,
            loop_time,
            reader_cpu,
            hits,
            delivered,
        });
    }

    rows
}

fn report(n: u64, rounds: usize, rows: &[Row]) {
    let floor = rows[1].loop_time.as_secs_f64();
    println!(
        "{n} writes, one thread, median of {rounds} rounds; ns/write in the writer, ratio to \
         the counting event"
    );
    println!(
        "{:<30} {:>10} {:>8} {:>10} {:>10} {:>14}",
        "mode", "ns/write", "ratio", "hits", "delivered", "reader ns/hit"
    );
    for row in rows {
        let per = row.loop_time.as_secs_f64() * 1e9 / n as f64;
        let reader = if row.hits > 0 {
            format!(
                "{:.0}",
                row.reader_cpu.as_secs_f64() * 1e9 / row.hits as f64
            )
        } else {
            "-".into()
        };
        println!(
            "{:<30} {:>10.0} {:>8.2} {:>10} {:>10} {:>14}",
            row.name,
            per,
            row.loop_time.as_secs_f64() / floor,
            row.hits,
            row.delivered,
            reader
        );
    }
}
