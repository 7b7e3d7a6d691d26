//! scratch: decompose per-hit costs
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hwbp_core::Access;
use hwbp_linux::bpf::insn::{Asm, Reg};
use hwbp_linux::bpf::sys::Prog;
use hwbp_linux::bpf::{HandlerMode, HandlerPiece, HandlerSpec, HitHandler};
use hwbp_linux::perf::attr::counting_attr;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::sys::perf::{self as perf, EventTarget, RealPerfSys};

static CELL: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn write_loop(n: u64) {
    for i in 1..=n {
        CELL.store(i, Ordering::Relaxed);
    }
}

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

fn run(n: u64, sample_type: Option<u64>, prog: Option<&dyn Fn(std::os::fd::BorrowedFd)>) -> f64 {
    let (tid, go, handle) = writer(n);
    let mut attr = counting_attr(&WatchRequest::new(CELL.as_ptr() as u64, 8, Access::Write));
    if let Some(st) = sample_type {
        attr.sample_period = 1;
        attr.sample_type = st;
    }
    let fd = perf::open_breakpoint(&RealPerfSys, &mut attr, EventTarget { pid: tid, cpu: -1 }, "w", 1).unwrap();
    if let Some(p) = prog { p(fd.as_fd()); }
    perf::enable(fd.as_fd(), "w").unwrap();
    go.send(()).unwrap();
    let t = handle.join().unwrap();
    let c = perf::read_count(fd.as_fd(), "w").unwrap().value;
    assert_eq!(c, n);
    t.as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(300_000, |a| a.parse().unwrap());
    let mut asm = Asm::new();
    asm.mov(Reg::R0, 0).exit();
    let raw = asm.finish().encode(&|_| None).unwrap();
    let trivial = Prog::load_perf_event(&hwbp_linux::bpf::insn::to_bytes(&raw), "triv").unwrap();
    let base = hwbp_linux::perf::attr::BASE_SAMPLE_TYPE;
    let count = HitHandler::load(&HandlerSpec::new(vec![HandlerPiece::new(CELL.as_ptr() as u64, 8)], HandlerMode::Count)).unwrap();
    let emit = HitHandler::load(&HandlerSpec::new(vec![HandlerPiece::new(CELL.as_ptr() as u64, 8)], HandlerMode::Emit{stack:false})).unwrap();
    let attach_triv = |fd: std::os::fd::BorrowedFd| trivial.attach_perf_event(fd).unwrap();
    let attach_count = |fd: std::os::fd::BorrowedFd| count.attach(fd).unwrap();
    let attach_emit = |fd: std::os::fd::BorrowedFd| emit.attach(fd).unwrap();
    use perf_event_open_sys::bindings as b;
    let configs: Vec<(&str, Option<u64>, Option<&dyn Fn(std::os::fd::BorrowedFd)>)> = vec![
        ("counting", None, None),
        ("trivial prog st=0", Some(0), Some(&attach_triv)),
        ("trivial prog st=base", Some(base), Some(&attach_triv)),
        ("trivial st=IP|ADDR|IDENT", Some((b::PERF_SAMPLE_IP|b::PERF_SAMPLE_ADDR|b::PERF_SAMPLE_IDENTIFIER) as u64), Some(&attach_triv)),
        ("trivial st=TID", Some(b::PERF_SAMPLE_TID as u64), Some(&attach_triv)),
        ("trivial st=TIME", Some(b::PERF_SAMPLE_TIME as u64), Some(&attach_triv)),
        ("trivial st=CPU", Some(b::PERF_SAMPLE_CPU as u64), Some(&attach_triv)),
        ("count prog st=0", Some(0), Some(&attach_count)),
        ("emit prog st=0", Some(0), Some(&attach_emit)),
    ];
    let rounds: usize = std::env::args().nth(2).map_or(9, |a| a.parse().unwrap());
    let mut times = vec![Vec::new(); configs.len()];
    for _ in 0..rounds {
        for (i, (_, st, p)) in configs.iter().enumerate() {
            times[i].push(run(n, *st, *p));
        }
    }
    let med = |v: &mut Vec<f64>| { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] };
    let floor = med(&mut times[0].clone());
    for (i, (name, _, _)) in configs.iter().enumerate() {
        let m = med(&mut times[i]);
        println!("{name:<30} {m:>8.0} ns {:>6.3}x  min {:.0} max {:.0}", m / floor, times[i][0], times[i][times[i].len()-1]);
    }
}
