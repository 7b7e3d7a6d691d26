//! Real-kernel tests of the BPF hit handler: the verifier accepts every program hwbp generates,
//! and a handler attached to a `WatchSession`'s breakpoint events on a thread of this process
//! sees every write with its exact old and new values, filters and counts in the kernel, and
//! leaves nothing behind. Every test loads BPF, so every name starts with `exclusive_` (they
//! run one at a time). Run as root (or with CAP_BPF + CAP_PERFMON).

use std::sync::atomic::{AtomicI32, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hwbp_core::compare::{CompareOp, IntCondition, IntType, Literal};
use hwbp_core::Access;
use hwbp_linux::bpf::handler::{CountKey, KernelIds};
use hwbp_linux::bpf::{
    self, sys, BpfError, HandlerMode, HandlerPiece, HandlerRecord, HandlerSpec, HitHandler,
    ValueFilter,
};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::session::{online_cpus, EventScope, Record, SessionOptions, WatchSession};

/// A thread that reports its tid, waits for `go`, then runs its body.
struct Writer {
    tid: i32,
    go: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

fn spawn_writer(body: impl FnOnce() + Send + 'static) -> Writer {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
        go_rx.recv().unwrap();
        body();
    });
    Writer {
        tid: tid_rx.recv().unwrap(),
        go: go_tx,
        handle,
    }
}

/// The watches' session on the writer, as hwbp opens it for the handler: events that ask for
/// no sample fields, a side-band event per ring, the program on every breakpoint event.
fn armed_session(writer: &Writer, watches: &[WatchRequest], handler: &HitHandler) -> WatchSession {
    let mut opts = SessionOptions {
        inherit: false,
        ..SessionOptions::default()
    };
    opts.sample.in_kernel_handler = true;
    let mut session = WatchSession::open(
        watches,
        &[EventScope::Thread(writer.tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .expect("open the breakpoint events (run as root)");
    session
        .attach_handler(handler.program_fd())
        .expect("attach the handler");
    let cpus = online_cpus().unwrap().len();
    assert_eq!(session.event_fds().count(), watches.len() * cpus);
    assert_eq!(session.event_count(), (watches.len() + 1) * cpus);
    session
}

/// Starts the writer, drains records while it runs and once after; returns the records.
fn run_and_collect(
    writer: Writer,
    session: &mut WatchSession,
    handler: &mut HitHandler,
) -> Vec<HandlerRecord> {
    session.enable().unwrap();
    writer.go.send(()).unwrap();
    let mut records = Vec::new();
    while !writer.handle.is_finished() {
        handler.wait(Duration::from_millis(5)).unwrap();
        handler.poll_records(&mut |r| records.push(r));
    }
    writer.handle.join().unwrap();
    handler.poll_records(&mut |r| records.push(r));
    session.disable().unwrap();
    records
}

/// Hits perf itself recorded as samples (the handler should have dropped all of them).
fn perf_samples(session: &mut WatchSession) -> usize {
    let mut hits = 0;
    session
        .poll(Duration::ZERO, &mut |record| {
            if let Record::Hit(_) = record {
                hits += 1;
            }
        })
        .unwrap();
    hits
}

fn perf_count(session: &WatchSession) -> u64 {
    session.counts().unwrap().iter().map(|c| c.count).sum()
}

fn require_bpf() {
    if let Err(e) = bpf::available() {
        panic!("BPF is not available to this test (run as root): {e}");
    }
}

#[test]
fn exclusive_bpf_is_available_as_root() {
    bpf::available().unwrap();
}

#[test]
fn exclusive_refused_program_says_why_in_one_line() {
    require_bpf();
    // `exit` with r0 never written.
    let err = sys::Prog::load_perf_event(&[0x95, 0, 0, 0, 0, 0, 0, 0], "hwbp_bad").unwrap_err();
    match &err {
        BpfError::Refused { line, errno, .. } => {
            assert_eq!(line, "R0 !read_ok");
            assert_eq!(*errno, nix::errno::Errno::EACCES);
        }
        other => panic!("expected a verifier refusal, got {other:?}"),
    }
    let text = err.to_string();
    assert_eq!(
        text,
        "the kernel's verifier refused the hit handler: R0 !read_ok (EACCES: Permission denied)"
    );
    assert!(!text.contains('\n'));
}

/// Every kind of program the facade can ask for loads: widths, several pieces (one of them a
/// kernel address), each filter, with and without stacks, and count mode.
#[test]
fn exclusive_verifier_accepts_every_variant() {
    require_bpf();
    // (op, literal, the value's type is signed), resolved for each piece's width.
    let mut conditions: Vec<Option<(CompareOp, &str, bool)>> = vec![None];
    for op in [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::LessEqual,
        CompareOp::Greater,
        CompareOp::GreaterEqual,
    ] {
        conditions.push(Some((op, "-5", true)));
        conditions.push(Some((op, "100", false)));
    }
    conditions.push(Some((CompareOp::AnyBit, "0x81", false)));
    // A signed value cut to 32 bits against an unsigned int constant.
    conditions.push(Some((CompareOp::Equal, "0xffffffff", true)));
    let piece_sets: Vec<Vec<HandlerPiece>> = vec![
        vec![HandlerPiece::new(0x7000_0000_1000, 1)],
        vec![HandlerPiece::new(0x7000_0000_1000, 2)],
        vec![HandlerPiece::new(0x7000_0000_1000, 4)],
        vec![HandlerPiece::new(0x7000_0000_1000, 8)],
        vec![
            HandlerPiece::new(0x7000_0000_1000, 8),
            HandlerPiece::new(0x7000_0000_2004, 4),
            HandlerPiece::new(0x7000_0000_3002, 2),
            HandlerPiece::new(0xffff_ffff_8200_0001, 1),
        ],
        // A value chain's: its address from the `addrs` map.
        vec![
            HandlerPiece::new(0x7000_0000_1000, 8),
            HandlerPiece::new(0x7000_0000_2000, 8).movable(),
        ],
    ];
    let modes = [
        HandlerMode::Emit { stack: false },
        HandlerMode::Emit { stack: true },
        HandlerMode::Count,
    ];
    let mut loaded = 0;
    for pieces in &piece_sets {
        for mode in modes {
            for condition in &conditions {
                for changes_only in [false, true] {
                    let with_condition = pieces
                        .iter()
                        .map(|p| {
                            p.with_condition(condition.map(|(op, literal, signed)| {
                                IntCondition::resolve(
                                    op,
                                    Literal::parse(literal).unwrap(),
                                    IntType {
                                        bytes: p.len,
                                        signed,
                                    },
                                )
                            }))
                        })
                        .collect();
                    let mut spec = HandlerSpec::new(with_condition, mode);
                    spec.ring_bytes = 64 * 1024;
                    spec.count_keys = 64;
                    spec.filter = ValueFilter { changes_only };
                    if let Err(e) = HitHandler::load(&spec) {
                        let program = spec.program().unwrap();
                        panic!("{e}\nspec {spec:?}\n{program}");
                    }
                    loaded += 1;
                }
            }
        }
    }
    // Wide operands (not an imm32) on 8-byte pieces, signed and unsigned.
    for (op, literal, signed) in [
        (CompareOp::Less, "-1099511627776", true),
        (CompareOp::Greater, "1099511627776", false),
        (CompareOp::AnyBit, "0x8000000000000000", false),
    ] {
        let ty = IntType { bytes: 8, signed };
        let condition = IntCondition::resolve(op, Literal::parse(literal).unwrap(), ty);
        let mut spec = HandlerSpec::new(
            vec![HandlerPiece::new(0x7000_0000_1000, 8).with_condition(Some(condition))],
            HandlerMode::Emit { stack: false },
        );
        spec.ring_bytes = 64 * 1024;
        HitHandler::load(&spec).unwrap_or_else(|e| panic!("{e} for {condition:?}"));
        loaded += 1;
    }
    assert_eq!(loaded, 6 * 3 * 15 * 2 + 3);
}

static CELL: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn write_one_to(n: u64) {
    for i in 1..=n {
        CELL.store(i, Ordering::Relaxed);
    }
}

/// The acceptance loop: 1..=100,000 written in a tight loop, every record exact, the perf count
/// exact, and no perf sample (the handler returns 0).
#[test]
fn exclusive_every_write_of_a_tight_loop_is_exact() {
    require_bpf();
    const N: u64 = 100_000;
    CELL.store(777, Ordering::Relaxed);
    let addr = CELL.as_ptr() as u64;
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 8)],
        HandlerMode::Emit { stack: false },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, CELL.load(Ordering::Relaxed)).unwrap();
    let writer = spawn_writer(|| write_one_to(N));
    let tid = writer.tid;
    let watch = WatchRequest::new(addr, 8, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);

    assert_eq!(perf_count(&session), N);
    assert_eq!(
        perf_samples(&mut session),
        0,
        "the handler drops every sample"
    );
    let stats = handler.stats().unwrap();
    assert_eq!(
        (
            stats.runs,
            stats.ring_full,
            stats.read_failed,
            stats.unknown_addr
        ),
        (N, 0, 0, 0)
    );
    assert_eq!(stats.skipped(perf_count(&session)), 0);
    assert_eq!(records.len() as u64, N);
    let pid = std::process::id() as i32;
    let cpus = online_cpus().unwrap();
    for (i, r) in records.iter().enumerate() {
        let i = i as u64 + 1;
        let old = if i == 1 { 777 } else { i - 1 };
        assert_eq!((r.new, r.old, r.piece), (i, old, 0), "record {i}: {r:?}");
        assert_eq!((r.pid, r.tid, r.kernel_mode), (pid, tid, false), "{r:?}");
        assert!(cpus.contains(&r.cpu) && !r.value_unreadable && r.stack.is_empty());
    }
    // Times are CLOCK_MONOTONIC (the clock of hwbp's perf samples), in order.
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now_ns = now.tv_sec() as u64 * 1_000_000_000 + now.tv_nsec() as u64;
    assert!(records.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    assert!(records[0].time_ns < now_ns && now_ns - records[0].time_ns < 60_000_000_000);
    // Every ip is the same instruction (after the store in write_one_to).
    assert!(records.iter().all(|r| r.ip == records[0].ip));
    assert_eq!(handler.malformed(), 0);
}

static SAME: AtomicU64 = AtomicU64::new(0);

#[test]
fn exclusive_changes_only_drops_a_same_value_write() {
    require_bpf();
    SAME.store(0, Ordering::Relaxed);
    let addr = SAME.as_ptr() as u64;
    let mut spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 8)],
        HandlerMode::Emit { stack: false },
    );
    spec.filter.changes_only = true;
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 0).unwrap();
    let writer = spawn_writer(|| {
        for v in [5, 5, 6, 6, 6, 0] {
            SAME.store(v, Ordering::Relaxed);
        }
    });
    let watch = WatchRequest::new(addr, 8, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    let pairs: Vec<(u64, u64)> = records.iter().map(|r| (r.old, r.new)).collect();
    assert_eq!(pairs, vec![(0, 5), (5, 6), (6, 0)]);
    assert_eq!(perf_count(&session), 6);
    assert_eq!(perf_samples(&mut session), 0);
    let stats = handler.stats().unwrap();
    assert_eq!((stats.runs, stats.filtered), (6, 3));
}

static SIGNED: AtomicI32 = AtomicI32::new(0);

#[test]
fn exclusive_signed_condition_on_an_int() {
    require_bpf();
    SIGNED.store(1, Ordering::Relaxed);
    let addr = SIGNED.as_ptr() as u64;
    let below_zero = IntCondition::resolve(
        CompareOp::Less,
        Literal::parse("0").unwrap(),
        IntType::signed(4),
    );
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 4).with_condition(Some(below_zero))],
        HandlerMode::Emit { stack: false },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 1).unwrap();
    let values = [3, -1, 0, -2_147_483_648, 2_147_483_647, -7];
    let writer = spawn_writer(move || {
        for v in values {
            SIGNED.store(v, Ordering::Relaxed);
        }
    });
    let watch = WatchRequest::new(addr, 4, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    // Values are the piece's 4 bytes, zero-extended; old is the previous write, dropped or not.
    let pairs: Vec<(i32, i32)> = records
        .iter()
        .map(|r| (r.old as u32 as i32, r.new as u32 as i32))
        .collect();
    assert_eq!(
        pairs,
        vec![(3, -1), (0, -2_147_483_648), (2_147_483_647, -7)]
    );
    assert!(records.iter().all(|r| r.new <= u64::from(u32::MAX)));
    assert_eq!(perf_count(&session), 6);
    assert_eq!(perf_samples(&mut session), 0);
}

static WIDE: AtomicU32 = AtomicU32::new(0);
static NARROW: AtomicU16 = AtomicU16::new(0);

/// Two pieces of different widths in one program: each hit is told apart by `ctx->addr`.
#[test]
fn exclusive_two_pieces_are_told_apart_by_address() {
    require_bpf();
    WIDE.store(10, Ordering::Relaxed);
    NARROW.store(20, Ordering::Relaxed);
    let (wide, narrow) = (WIDE.as_ptr() as u64, NARROW.as_ptr() as u64);
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(wide, 4), HandlerPiece::new(narrow, 2)],
        HandlerMode::Emit { stack: true },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 10).unwrap();
    handler.seed(1, 20).unwrap();
    let writer = spawn_writer(|| {
        for i in 1..=3u16 {
            WIDE.store(0xdead_0000 | u32::from(i), Ordering::Relaxed);
            NARROW.store(0xbe00 | i, Ordering::Relaxed);
        }
    });
    let watches = [
        WatchRequest::new(wide, 4, Access::Write),
        WatchRequest::new(narrow, 2, Access::Write),
    ];
    let mut session = armed_session(&writer, &watches, &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    let got: Vec<(u32, u64, u64)> = records.iter().map(|r| (r.piece, r.old, r.new)).collect();
    assert_eq!(
        got,
        vec![
            (0, 10, 0xdead_0001),
            (1, 20, 0xbe01),
            (0, 0xdead_0001, 0xdead_0002),
            (1, 0xbe01, 0xbe02),
            (0, 0xdead_0002, 0xdead_0003),
            (1, 0xbe02, 0xbe03),
        ]
    );
    // The user stack starts at the interrupted ip.
    for r in &records {
        assert_eq!(r.stack_error, None, "{r:?}");
        assert_eq!(r.stack.first(), Some(&r.ip), "{r:?}");
    }
    assert_eq!(perf_count(&session), 6);
    assert_eq!(perf_samples(&mut session), 0);
}

static LEFT: AtomicU64 = AtomicU64::new(0);
static RIGHT: AtomicU64 = AtomicU64::new(0);

/// A movable piece (a value chain's) moved with `move_piece` and then its breakpoint: the
/// program takes the new address's hits as the piece's, from the seed there, and a write to
/// the old address after the move is not trapped.
#[test]
fn exclusive_a_moved_piece_is_found_at_its_new_address() {
    require_bpf();
    LEFT.store(1, Ordering::Relaxed);
    RIGHT.store(100, Ordering::Relaxed);
    let (left, right) = (LEFT.as_ptr() as u64, RIGHT.as_ptr() as u64);
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(left, 8).movable()],
        HandlerMode::Emit { stack: false },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 1).unwrap();
    assert!(handler.move_piece(0, right + 4, 8).is_err(), "misaligned");
    assert!(handler.move_piece(0, right, 4).is_err(), "another length");
    let (wrote_tx, wrote_rx) = mpsc::channel::<()>();
    let (moved_tx, moved_rx) = mpsc::channel::<()>();
    let writer = spawn_writer(move || {
        LEFT.store(2, Ordering::Relaxed);
        wrote_tx.send(()).unwrap();
        moved_rx.recv().unwrap();
        RIGHT.store(101, Ordering::Relaxed);
        LEFT.store(3, Ordering::Relaxed);
        RIGHT.store(102, Ordering::Relaxed);
    });
    let watch = WatchRequest::new(left, 8, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    session.enable().unwrap();
    writer.go.send(()).unwrap();
    wrote_rx.recv().unwrap();
    handler.move_piece(0, right, 8).unwrap();
    handler.seed(0, 100).unwrap();
    session
        .modify(0, &WatchRequest::new(right, 8, Access::Write))
        .unwrap();
    moved_tx.send(()).unwrap();
    writer.handle.join().unwrap();
    let mut records = Vec::new();
    handler.poll_records(&mut |r| records.push(r));
    session.disable().unwrap();
    let got: Vec<(u32, u64, u64)> = records.iter().map(|r| (r.piece, r.old, r.new)).collect();
    assert_eq!(got, vec![(0, 1, 2), (0, 100, 101), (0, 101, 102)]);
    assert_eq!(handler.stats().unwrap().unknown_addr, 0);
}

static UNWOUND: AtomicU64 = AtomicU64::new(0);

/// With `user_stack_bytes`, a user-mode hit's record carries the user ip, sp and bp and the
/// stack from sp up: a marker the writer keeps on its stack is found in the copied bytes at
/// its own address, and the copy is bounded by the size asked for.
#[test]
fn exclusive_user_stack_bytes_are_copied_from_sp() {
    require_bpf();
    const MARKER: u64 = 0x5eed_cafe_f00d_beef;
    let addr = UNWOUND.as_ptr() as u64;
    let mut spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 8)],
        HandlerMode::Emit { stack: true },
    );
    spec.user_stack_bytes = 2048;
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 0).unwrap();
    let (marker_tx, marker_rx) = mpsc::channel();
    let writer = spawn_writer(move || {
        let marker = std::hint::black_box([MARKER; 1]);
        marker_tx.send(marker.as_ptr() as u64).unwrap();
        for i in 1..=3 {
            UNWOUND.store(i, Ordering::Relaxed);
        }
        std::hint::black_box(&marker);
    });
    let watch = WatchRequest::new(addr, 8, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    let marker_at = marker_rx.recv().unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records {
        let user = r
            .user_stack
            .as_ref()
            .expect("a user-mode hit has its stack");
        assert_eq!(user.ip, r.ip);
        assert!(
            r.stack.is_empty(),
            "no frame-pointer frames beside the bytes"
        );
        assert!(!user.bytes.is_empty() && user.bytes.len() <= 2048);
        assert!(user.sp <= marker_at && marker_at + 8 <= user.sp + user.bytes.len() as u64);
        let at = (marker_at - user.sp) as usize;
        let word = u64::from_le_bytes(user.bytes[at..at + 8].try_into().unwrap());
        assert_eq!(word, MARKER, "the stack as it was at the trap");
    }
}

#[repr(align(8))]
struct Buffer([u8; 8]);

/// `read(2)` from a pipe fills a watched buffer: the kernel makes the store, and the record says
/// so with the byte it wrote.
#[test]
fn exclusive_kernel_mode_write_is_flagged_with_its_byte() {
    require_bpf();
    for stack in [false, true] {
        kernel_mode_write(stack);
    }
}

/// One `read(2)` into a watched byte; with `stack`, the record has the kernel frames of the
/// copy (innermost at the trapping ip) and the user frames of the `read` call.
fn kernel_mode_write(stack: bool) {
    let mut buffer = Box::new(Buffer([0; 8]));
    let addr = buffer.0.as_ptr() as u64;
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 1)],
        HandlerMode::Emit { stack },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    handler.seed(0, 0).unwrap();
    let (rx, tx) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&tx, b"\x5aBCDEFGH").unwrap();
    let (back_tx, back_rx) = mpsc::channel();
    let writer = spawn_writer(move || {
        let n = nix::unistd::read(&rx, &mut buffer.0).unwrap();
        assert_eq!((n, &buffer.0), (8, b"\x5aBCDEFGH"));
        // Freed only after the watch is gone: free() writes into the chunk.
        back_tx.send(buffer).unwrap();
    });
    let tid = writer.tid;
    let watch = WatchRequest::new(addr, 1, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!((r.old, r.new, r.kernel_mode, r.tid), (0, 0x5a, true, tid));
    assert!(r.ip >= 0xffff_8000_0000_0000, "a kernel ip: {:#x}", r.ip);
    assert_eq!(perf_count(&session), 1);
    assert_eq!(r.stack_error, None);
    if stack {
        assert_eq!(r.kernel_stack.first(), Some(&r.ip), "{r:?}");
        assert!(
            r.kernel_stack.len() >= 3,
            "copy, read path, syscall entry: {r:?}"
        );
        assert!(
            r.kernel_stack.iter().all(|&a| a >= 0xffff_8000_0000_0000),
            "{r:?}"
        );
        assert!(
            !r.stack.is_empty(),
            "the user frames of the read call: {r:?}"
        );
        assert!(r.stack.iter().all(|&a| a < 0x8000_0000_0000), "{r:?}");
    } else {
        assert!(r.kernel_stack.is_empty() && r.stack.is_empty(), "{r:?}");
    }
    drop(session);
    drop(back_rx.recv().unwrap());
}

static COUNTED: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn count_loop(n: u64) {
    for i in 0..n {
        COUNTED.store(i, Ordering::Relaxed);
    }
}

/// A second store site: test builds are not optimised, so `store` is one out-of-line function
/// whatever calls it, and `fetch_add` (a locked add, also a write) is another.
#[inline(never)]
fn count_other_site(n: u64) {
    for _ in 0..n {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn exclusive_count_mode_totals_equal_the_perf_count() {
    require_bpf();
    let addr = COUNTED.as_ptr() as u64;
    let spec = HandlerSpec::new(vec![HandlerPiece::new(addr, 8)], HandlerMode::Count);
    let mut handler = HitHandler::load(&spec).unwrap();
    let writer = spawn_writer(|| {
        count_loop(30_000);
        count_other_site(12_345);
    });
    let tid = writer.tid;
    let watch = WatchRequest::new(addr, 8, Access::Write);
    let mut session = armed_session(&writer, &[watch], &handler);
    let records = run_and_collect(writer, &mut session, &mut handler);
    assert!(records.is_empty());
    let counts = handler.counts().unwrap();
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, perf_count(&session));
    assert_eq!(total, 42_345);
    assert_eq!(perf_samples(&mut session), 0);
    // Two store sites, one thread, piece 0.
    let mut per_site: Vec<u64> = counts.iter().map(|(_, n)| *n).collect();
    per_site.sort_unstable();
    assert_eq!(per_site, vec![12_345, 30_000], "{counts:?}");
    assert!(counts
        .iter()
        .all(|(CountKey { piece, tid: t, .. }, _)| *piece == 0 && *t == tid));
    let stats = handler.stats().unwrap();
    assert_eq!((stats.runs, stats.count_map_full), (42_345, 0));
}

fn wait_gone(ids: &KernelIds) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let prog = sys::prog_exists(ids.prog).unwrap();
        let maps: Vec<u32> = ids
            .maps
            .iter()
            .copied()
            .filter(|&id| sys::map_exists(id).unwrap())
            .collect();
        if !prog && maps.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("still alive: prog {prog}, maps {maps:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// BPF objects and perf events this process holds fds of (nextest runs each test in its own
/// process, so these are this test's).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|link| {
            let link = link.to_string_lossy();
            link.starts_with("anon_inode:bpf") || link.contains("perf_event")
        })
        .count()
}

/// Dropping the handler and the events frees the program and every map (checked by id with
/// `BPF_*_GET_FD_BY_ID`), and closes every fd it opened.
#[test]
fn exclusive_program_and_maps_are_freed_on_drop() {
    require_bpf();
    let fds_before = open_fds();
    for mode in [HandlerMode::Emit { stack: true }, HandlerMode::Count] {
        let addr = CELL.as_ptr() as u64;
        let handler =
            HitHandler::load(&HandlerSpec::new(vec![HandlerPiece::new(addr, 8)], mode)).unwrap();
        let ids = handler.kernel_ids().unwrap();
        assert_eq!(ids.maps.len(), 3);
        assert!(sys::prog_exists(ids.prog).unwrap());
        let writer = spawn_writer(|| {});
        let session = armed_session(
            &writer,
            &[WatchRequest::new(addr, 8, Access::Write)],
            &handler,
        );
        // The events hold the program: dropping the handler alone leaves it loaded.
        drop(handler);
        assert!(sys::prog_exists(ids.prog).unwrap());
        drop(session);
        writer.go.send(()).unwrap();
        writer.handle.join().unwrap();
        wait_gone(&ids).unwrap();
    }
    assert_eq!(open_fds(), fds_before);
}

static LATE: AtomicU64 = AtomicU64::new(0);

/// The events the handler owns write nothing into the perf rings: a thread created after the
/// session was enabled still gets the program (inherit) and is still named (the side-band
/// event's `COMM` record), and a thread added later with `add_thread` gets the program before
/// its events are enabled. Every one of the 3 × 1000 writes is a handler record; no perf
/// sample at all.
#[test]
fn exclusive_handler_events_leave_names_to_the_side_band_and_later_threads_get_the_program() {
    require_bpf();
    const N: u64 = 1000;
    let addr = LATE.as_ptr() as u64;
    let spec = HandlerSpec::new(
        vec![HandlerPiece::new(addr, 8)],
        HandlerMode::Emit { stack: false },
    );
    let mut handler = HitHandler::load(&spec).unwrap();
    // The first writer spawns a named child that writes too; a second writer is added later.
    let (late_tx, late_rx) = mpsc::channel::<()>();
    let first = spawn_writer(|| {
        write_late(N);
        std::thread::Builder::new()
            .name("late-child".into())
            .spawn(|| write_late(N))
            .unwrap()
            .join()
            .unwrap();
    });
    let second = spawn_writer(move || {
        late_rx.recv().unwrap();
        write_late(N);
    });
    let mut opts = SessionOptions::default();
    opts.sample.in_kernel_handler = true;
    let mut session = WatchSession::open(
        &[WatchRequest::new(addr, 8, Access::Write)],
        &[EventScope::Thread(first.tid)],
        &online_cpus().unwrap(),
        &opts,
    )
    .expect("open the breakpoint events (run as root)");
    session.attach_handler(handler.program_fd()).unwrap();
    session.enable().unwrap();
    first.go.send(()).unwrap();
    first.handle.join().unwrap();
    session.add_thread(second.tid).unwrap();
    second.go.send(()).unwrap();
    late_tx.send(()).unwrap();
    second.handle.join().unwrap();
    session.disable().unwrap();

    let mut records = Vec::new();
    handler.poll_records(&mut |r| records.push(r));
    let (mut samples, mut names) = (0, Vec::new());
    session.drain(&mut |record| match record {
        Record::Hit(_) => samples += 1,
        Record::Comm {
            tid, comm, time_ns, ..
        } => names.push((tid, comm, time_ns)),
        _ => {}
    });
    assert_eq!(perf_count(&session), 3 * N);
    assert_eq!(samples, 0, "no perf sample from the handler's events");
    assert_eq!(records.len() as u64, 3 * N);
    let mut per_tid = std::collections::BTreeMap::new();
    for r in &records {
        *per_tid.entry(r.tid).or_insert(0u64) += 1;
    }
    assert_eq!(per_tid.len(), 3, "{per_tid:?}");
    assert!(per_tid.values().all(|&n| n == N), "{per_tid:?}");
    assert_eq!(per_tid.get(&first.tid), Some(&N));
    assert_eq!(per_tid.get(&second.tid), Some(&N));
    let child = *per_tid
        .keys()
        .find(|t| **t != first.tid && **t != second.tid)
        .unwrap();
    let named: Vec<_> = names.iter().filter(|(tid, _, _)| *tid == child).collect();
    assert_eq!(named.len(), 1, "one COMM record for the child: {names:?}");
    assert_eq!(named[0].1, "late-child");
    assert!(named[0].2.is_some(), "the side-band record has its time");
    assert_eq!(handler.stats().unwrap().runs, 3 * N);
}

#[inline(never)]
fn write_late(n: u64) {
    for i in 1..=n {
        LATE.store(i, Ordering::Relaxed);
    }
}
