//! The kernel's x86 debug-register semantics, checked through hwbp's ptrace layer
//! ([`StopTracer`]): for every slot DR0-DR3, every length 1/2/4/8 and both data types (write,
//! read/write), a forked child runs a fixed script of reads and writes around the watched
//! range; exactly the accesses that overlap the range (and, for a write watch, only writes)
//! stop the child, each reported with DR6 showing that one slot. Execute breakpoints in every
//! slot stop at the function's first instruction (a fault: the IP is the instruction) once per
//! call, and the child then runs on (the kernel sets RF).
//!
//! ptrace: names start with `exclusive_`.

use std::sync::atomic::{AtomicU64, Ordering};

use hwbp_core::arch::x86::{encode_dr7_local, X86Len, X86Type};
use hwbp_linux::launch::ProcessExit;
use hwbp_linux::memory;
use hwbp_linux::ptrace::{DebugRegisterSet, StopEvent, StopTracer};

/// The data the child touches: 64 bytes, 64-aligned, watched at offset 8.
#[repr(C, align(64))]
struct Buffer([u64; 8]);
static mut BUFFER: Buffer = Buffer([0; 8]);
/// The index of the access the child is about to make (another cache line).
static PROGRESS: AtomicU64 = AtomicU64::new(u64::MAX);

const WATCH_OFFSET: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Write,
    Read,
}

/// (op, offset from the buffer, width)
fn script(len: u64) -> Vec<(Op, u64, u64)> {
    vec![
        (Op::Write, WATCH_OFFSET, 1),
        (Op::Write, WATCH_OFFSET + len - 1, 1),
        (Op::Write, WATCH_OFFSET + len, 1),
        (Op::Write, WATCH_OFFSET - 1, 1),
        (Op::Write, 0, 8),
        (Op::Write, WATCH_OFFSET, 8),
        (Op::Write, 16, 8),
        (Op::Read, WATCH_OFFSET, 1),
        (Op::Read, WATCH_OFFSET + len - 1, 1),
        (Op::Read, 16, 8),
        (Op::Read, 0, 8),
        (Op::Read, WATCH_OFFSET, 8),
    ]
}

fn buffer_addr() -> u64 {
    std::ptr::addr_of!(BUFFER) as u64
}

/// Runs in the forked child only: the accesses, then `_exit(0)`.
fn child_accesses(ops: &[(Op, u64, u64)], gate: i32) -> ! {
    let mut byte = [0u8; 1];
    // SAFETY: a blocking read(2) on our own pipe into a local buffer.
    unsafe { libc::read(gate, byte.as_mut_ptr().cast(), 1) };
    let base = buffer_addr();
    for (index, (op, offset, width)) in ops.iter().enumerate() {
        PROGRESS.store(index as u64, Ordering::SeqCst);
        let addr = base + offset;
        // SAFETY: every address is inside BUFFER, aligned to its width; the child is
        // single-threaded, so nothing else touches BUFFER.
        unsafe {
            match (op, width) {
                (Op::Write, 1) => std::ptr::write_volatile(addr as *mut u8, 0x5a),
                (Op::Write, _) => std::ptr::write_volatile(addr as *mut u64, 0x5a5a),
                (Op::Read, 1) => {
                    std::ptr::read_volatile(addr as *const u8);
                }
                (Op::Read, _) => {
                    std::ptr::read_volatile(addr as *const u64);
                }
            }
        }
    }
    // SAFETY: ends the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(0) }
}

#[inline(never)]
fn called_function(x: u64) -> u64 {
    std::hint::black_box(x.wrapping_mul(3))
}

fn child_calls(calls: u64, gate: i32) -> ! {
    let mut byte = [0u8; 1];
    // SAFETY: a blocking read(2) on our own pipe into a local buffer.
    unsafe { libc::read(gate, byte.as_mut_ptr().cast(), 1) };
    for i in 0..calls {
        std::hint::black_box(called_function(i));
    }
    // SAFETY: ends the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(0) }
}

/// Forks a child that waits on a pipe and then runs `body`. Returns (pid, write end).
fn fork_child(body: impl FnOnce(i32)) -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only does volatile memory accesses, read(2) and _exit(2).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        body(fds[0]);
        // SAFETY: `body` never returns; this only satisfies the type.
        unsafe { libc::_exit(1) }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(fds[0]) };
    (pid, fds[1])
}

fn release(gate: i32) {
    // SAFETY: one byte from a local into our pipe, then close it.
    unsafe {
        assert_eq!(libc::write(gate, b"g".as_ptr().cast(), 1), 1);
        libc::close(gate);
    }
}

/// Traces `pid` with `registers` until it exits; returns (PROGRESS at each hit, slots, ip).
fn trace_hits(pid: i32, gate: i32, registers: DebugRegisterSet) -> Vec<(u64, u8, u64)> {
    let mut tracer = StopTracer::attach(pid, &[pid], registers).expect("attach");
    release(gate);
    let progress_addr = std::ptr::addr_of!(PROGRESS) as u64;
    let mut hits = Vec::new();
    loop {
        match tracer.next_event().expect("event") {
            StopEvent::Hit { tid, slots, ip, .. } => {
                let progress = memory::read_value(pid, progress_addr, 8).unwrap();
                hits.push((progress, slots, ip));
                tracer.resume(tid).unwrap();
            }
            StopEvent::Exited(exit) => {
                assert_eq!(exit, ProcessExit::Exited(0));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    hits
}

#[test]
fn exclusive_every_slot_length_and_data_type_matches_the_kernel_rules() {
    let lens = [X86Len::Len1, X86Len::Len2, X86Len::Len4, X86Len::Len8];
    for slot in 0..4u8 {
        for len in lens {
            for ty in [X86Type::Write, X86Type::ReadWrite] {
                let bytes = len.bytes();
                let ops = script(bytes);
                let mut addresses = [0u64; 4];
                addresses[usize::from(slot)] = buffer_addr() + WATCH_OFFSET;
                let registers = DebugRegisterSet {
                    addresses,
                    dr7: encode_dr7_local(slot, len, ty).unwrap(),
                };
                let child_ops = ops.clone();
                let (pid, gate) = fork_child(move |gate| child_accesses(&child_ops, gate));
                let hits = trace_hits(pid, gate, registers);
                let expected: Vec<u64> = ops
                    .iter()
                    .enumerate()
                    .filter(|(_, (op, offset, width))| {
                        let overlaps =
                            *offset < WATCH_OFFSET + bytes && WATCH_OFFSET < offset + width;
                        overlaps && (ty == X86Type::ReadWrite || *op == Op::Write)
                    })
                    .map(|(i, _)| i as u64)
                    .collect();
                let got: Vec<u64> = hits.iter().map(|h| h.0).collect();
                assert_eq!(got, expected, "slot {slot}, {bytes} bytes, {ty:?}");
                assert!(
                    hits.iter().all(|h| h.1 == 1 << slot),
                    "DR6 names slot {slot} only: {hits:?}"
                );
            }
        }
    }
}

#[test]
fn exclusive_execute_breakpoints_stop_at_the_instruction_in_every_slot() {
    let function = called_function as *const () as usize as u64;
    for slot in 0..4u8 {
        let mut addresses = [0u64; 4];
        addresses[usize::from(slot)] = function;
        let registers = DebugRegisterSet {
            addresses,
            dr7: encode_dr7_local(slot, X86Len::LEN_X, X86Type::Execute).unwrap(),
        };
        let (pid, gate) = fork_child(|gate| child_calls(5, gate));
        let hits = trace_hits(pid, gate, registers);
        assert_eq!(hits.len(), 5, "slot {slot}: one stop per call: {hits:?}");
        assert!(hits.iter().all(|h| h.1 == 1 << slot && h.2 == function));
    }
}
