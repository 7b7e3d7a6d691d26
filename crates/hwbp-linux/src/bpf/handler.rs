//! The hit handler: the BPF program generated for a watch set, its maps, and the readers of
//! its records and counts.
//!
//! Owns the program's layout and the record format. Per hit the program
//! 1. counts its run (per-CPU `stats[RUNS]`), then finds the piece by comparing `ctx->addr`
//!    (offset 176 of `struct bpf_perf_event_data` on x86_64: `pt_regs` is 168 bytes, then
//!    `sample_period`) with each piece's address — a compare chain, because rotation moves a
//!    breakpoint with `MODIFY_ATTRIBUTES` and the event says nothing about which watch it holds
//!    now; a [movable](HandlerPiece::movable) piece's address (a value chain's, which user
//!    space moves, [`HitHandler::move_piece`]) is read from the `addrs` array instead; an
//!    address that is no piece (such as a moved piece's old one, hit in the moment before
//!    its breakpoint follows the map) is counted (`stats[UNKNOWN_ADDR]`) and dropped, as
//!    every hit is: the events of handled watches ask perf for no sample fields
//!    ([`crate::perf::SampleOptions::in_kernel_handler`]), so a sample would say nothing;
//! 2. reads the piece's bytes at `ctx->addr` with `bpf_probe_read_user` (`bpf_probe_read_kernel`
//!    for kernel addresses, `>= 0xffff_8000_0000_0000`) into a zeroed u64: the value just
//!    written, since x86 data breakpoints trap after the access;
//! 3. swaps it atomically (`BPF_XCHG`) with the previous value of the piece in the `prev`
//!    array, which user space seeds with the value at arming ([`HitHandler::seed`]), so the
//!    old value is exact from the first hit on, also when threads on several CPUs write;
//! 4. applies the filters ([`ValueFilter`]): changes-only drops `new == old`, a condition
//!    compares the new value, signed or unsigned in the piece's width; a dropped hit returns 0
//!    (no perf sample, no wakeup) and counts in `stats[FILTERED]`;
//! 5. [`HandlerMode::Emit`]: reserves a record in the `ring` ring buffer
//!    (`bpf_ringbuf_reserve`; a full ring counts in `stats[RING_FULL]`), fills it (time from
//!    `bpf_ktime_get_ns`, which is `CLOCK_MONOTONIC` like hwbp's perf samples; pid/tid; CPU;
//!    `regs.ip`; piece; old; new; kernel mode when `regs.cs & 3 == 0`; optionally the user
//!    stack from `bpf_get_stack(BPF_F_USER_STACK)`; for a piece of a string
//!    ([`HandlerPiece::string`]), the string as this write left it, up to
//!    [`HandlerSpec::string_chars`]: a `char *`'s by `bpf_probe_read_user_str` at the new
//!    pointer, a Rust `&str`'s or `String`'s by `bpf_probe_read_user` of its length at its
//!    data pointer, both the current values of their pieces in `prev`) and submits it, waking
//!    the reader only
//!    with the record that takes the unread bytes past [`HandlerSpec::wakeup_bytes`]
//!    (`bpf_ringbuf_query(BPF_RB_AVAIL_DATA)`, then `BPF_RB_NO_WAKEUP` or
//!    `BPF_RB_FORCE_WAKEUP`). The kernel's default wakes the reader whenever it has caught up,
//!    a wakeup per record under a steady stream (`bpf_ringbuf_commit` in
//!    `kernel/bpf/ringbuf.c`); waking on every record above the mark does the same once a
//!    backlog builds (measured: the writer 1.7x slower with a 5 ms reader pause). Two CPUs
//!    crossing the mark at once may both skip the wakeup; the reader's poll timeout bounds
//!    that delay; or
//!    [`HandlerMode::Count`]: adds one to a per-CPU hash map keyed by (piece, tid, ip) (a full
//!    map counts in `stats[COUNT_MAP_FULL]`). Either way it returns 0.
//!
//! The kernel skips the program when another BPF program runs on that CPU (`bpf_prog_active`
//! in `bpf_overflow_handler`, `kernel/events/core.c`); the perf event still counts those hits,
//! so [`HandlerStats::skipped`] = perf count − runs. A failed read (never seen for a page just
//! written) emits a record with [`HandlerRecord::value_unreadable`], bypassing the filters.
//!
//! All maps are preallocated (`pe_prog` programs may run in NMI-like context, and
//! `check_map_prog_compatibility` in `kernel/bpf/verifier.c` has long required it).

use std::os::fd::BorrowedFd;
use std::time::Duration;

use hwbp_core::compare::{CompareOp, IntCondition};

use super::insn::{AluOp, Asm, Cond, Helper, Program, Reg, Size, Src};
use super::ringbuf::RingReader;
use super::sys::{self, Map, MapType, Prog, BPF_ANY};
use super::BpfError;

/// One watched piece: an aligned 1, 2, 4 or 8-byte location (one breakpoint's `bp_addr` and
/// `bp_len`). Its index in [`HandlerSpec::pieces`] is the piece number in records and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerPiece {
    /// `bp_addr`.
    pub addr: u64,
    /// `bp_len`: 1, 2, 4 or 8.
    pub len: u8,
    /// Keep only hits whose new value satisfies this (`--if`, resolved for the value's type:
    /// its width is the piece's).
    pub condition: Option<IntCondition>,
    /// The piece is part of a string: each record carries the string as the write left it,
    /// read at the trap ([`HandlerRecord::string`]). An 8-byte user piece.
    pub string: Option<PieceString>,
    /// User space moves the piece to other addresses ([`HitHandler::move_piece`]): the
    /// program reads its address from a map instead of holding it.
    pub movable: bool,
}

/// The string a piece's hits read at the trap ([`HandlerPiece::string`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PieceString {
    /// The piece is a `char *`: the NUL-terminated string its new value points to.
    CString,
    /// The piece is one word of a Rust `&str` or `String`: as many bytes as piece `length`
    /// holds at the address piece `pointer` holds (indices in [`HandlerSpec::pieces`]; their
    /// values in `prev`, this hit's write included).
    Counted {
        /// The piece of the data pointer.
        pointer: usize,
        /// The piece of the length.
        length: usize,
    },
}

impl HandlerPiece {
    /// The piece at `addr` of `len` bytes, without a condition.
    pub fn new(addr: u64, len: u8) -> Self {
        HandlerPiece {
            addr,
            len,
            condition: None,
            string: None,
            movable: false,
        }
    }

    /// The same piece, movable ([`HandlerPiece::movable`]).
    pub fn movable(self) -> Self {
        HandlerPiece {
            movable: true,
            ..self
        }
    }

    /// The same piece, reading `string` at each hit.
    pub fn with_string(self, string: PieceString) -> Self {
        HandlerPiece {
            string: Some(string),
            ..self
        }
    }

    /// The same piece, keeping only hits whose new value satisfies `condition`.
    pub fn with_condition(self, condition: Option<IntCondition>) -> Self {
        HandlerPiece { condition, ..self }
    }

    /// A kernel address (upper half of the x86_64 address space): read with
    /// `bpf_probe_read_kernel`.
    pub fn is_kernel(&self) -> bool {
        self.addr >= 0xffff_8000_0000_0000
    }

    fn bits(&self) -> u32 {
        u32::from(self.len) * 8
    }

    /// `value` truncated to the piece's width.
    pub fn truncate(&self, value: u64) -> u64 {
        if self.len >= 8 {
            value
        } else {
            value & ((1u64 << self.bits()) - 1)
        }
    }
}

/// What the handler does with a hit that passes the filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandlerMode {
    /// One record per hit to the ring buffer, with the user stack if `stack`.
    Emit {
        /// Add up to [`STACK_FRAMES`] user-stack frames (`bpf_get_stack`).
        stack: bool,
    },
    /// Count hits per (piece, tid, ip), for `hwbp stat`.
    Count,
}

/// The in-kernel filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ValueFilter {
    /// Drop hits whose new value equals the old one.
    pub changes_only: bool,
}

/// Everything the program is generated from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HandlerSpec {
    /// The watched pieces (at least one).
    pub pieces: Vec<HandlerPiece>,
    /// Emit records or count.
    pub mode: HandlerMode,
    /// Filters applied before emitting or counting.
    pub filter: ValueFilter,
    /// Emit mode: ring buffer data bytes, a power of two and a multiple of the page size.
    /// The default, 4 MiB, holds about 65,000 records without stacks.
    pub ring_bytes: u32,
    /// Emit mode: the reader is woken once this many bytes are unread (64 bytes per record
    /// without a stack); below that, records wait for the reader's own poll timeout
    /// ([`HitHandler::wait`]), as perf's `wakeup_watermark` does.
    pub wakeup_bytes: u32,
    /// Count mode: distinct (piece, tid, ip) keys the map holds.
    pub count_keys: u32,
    /// Emit mode with stacks: bytes of the user stack copied from `sp` into each record of a
    /// user-mode access, with the user `ip`, `sp` and `bp`, for unwinding with the unwind
    /// tables (perf's `--call-graph dwarf,SIZE`); a multiple of 8 up to
    /// [`MAX_USER_STACK_BYTES`]. `0`: the user frames come from `bpf_get_stack` (frame
    /// pointers) instead. A kernel-mode access has no user registers in its context, so its
    /// user frames always come from `bpf_get_stack`.
    pub user_stack_bytes: u32,
    /// Where a copy from the watched process's main thread's `sp` may stop: the top of its
    /// frames (the entry stack pointer, [`crate::user_stack::main_thread_frames_top`]) or the
    /// end of its `[stack]` mapping; `0` when unknown. The copy stops there in one read instead
    /// of trying past it (a read past the mapping faults, and each retry costs a fault).
    pub main_stack_top: u64,
    /// Emit mode, for pieces that [read a string](HandlerPiece::string): the most
    /// characters of it each record carries, 1 to [`MAX_STRING_CHARS`]; a longer string is
    /// marked [`TrapString::truncated`]. Default [`DEFAULT_STRING_CHARS`].
    pub string_chars: u32,
}

/// The default of [`HandlerSpec::string_chars`]: gdb's `print elements` limit, the most
/// characters gdb prints behind a `char *`, so a string read at the trap prints as gdb prints
/// it; it costs 216 bytes per record.
pub const DEFAULT_STRING_CHARS: u32 = 200;

/// The most of [`HandlerSpec::string_chars`]: a page.
pub const MAX_STRING_CHARS: u32 = 4096;

impl HandlerSpec {
    /// A spec with no filter, a 4 MiB ring woken every 16 KiB, and 16,384 count keys.
    pub fn new(pieces: Vec<HandlerPiece>, mode: HandlerMode) -> Self {
        HandlerSpec {
            pieces,
            mode,
            filter: ValueFilter::default(),
            ring_bytes: 4 << 20,
            wakeup_bytes: 16 * 1024,
            count_keys: 16 * 1024,
            user_stack_bytes: 0,
            main_stack_top: 0,
            string_chars: DEFAULT_STRING_CHARS,
        }
    }

    /// The string area records carry: its buffer's bytes (the characters, one more to tell a
    /// string of exactly `string_chars` from a longer one, and the NUL, in whole words), `0`
    /// when no piece reads a string.
    fn string_buffer(&self) -> u32 {
        if self.mode == HandlerMode::Count || self.pieces.iter().all(|p| p.string.is_none()) {
            return 0;
        }
        (self.string_chars + 2).next_multiple_of(8)
    }

    /// Bytes of one Emit record.
    fn record_size(&self) -> i32 {
        let stack = matches!(self.mode, HandlerMode::Emit { stack: true });
        let base = record_bytes(stack, self.user_stack_bytes);
        match self.string_buffer() {
            0 => base,
            buffer => (base + 7) / 8 * 8 + 8 + buffer as i32,
        }
    }

    /// Emit mode: the records the ring holds when full (each record's span in the ring, its
    /// 8-byte header included; with the stack, room for all of [`STACK_FRAMES`]).
    pub fn ring_records(&self) -> usize {
        let size = self.record_size();
        self.ring_bytes as usize / super::ringbuf::record_span(size as u32) as usize
    }

    /// Some filter drops hits in the kernel (`changes_only`, or a piece's condition).
    pub fn filters(&self) -> bool {
        self.filter.changes_only || self.pieces.iter().any(|p| p.condition.is_some())
    }

    /// The program for this spec, without loading it. Deterministic: equal specs give equal
    /// programs.
    pub fn program(&self) -> Result<Program, BpfError> {
        generate(self)
    }
}

/// User-stack frames an Emit record carries when asked.
pub const STACK_FRAMES: usize = 32;

/// Kernel-stack frames an Emit record carries when asked, for an access made in kernel mode.
pub const KERNEL_STACK_FRAMES: usize = 32;

/// The most user-stack bytes a record carries ([`HandlerSpec::user_stack_bytes`]): perf's own
/// limit for `PERF_SAMPLE_STACK_USER` (a record's size is a `u16`).
pub const MAX_USER_STACK_BYTES: u32 = 65528;

/// Emit record layout: fixed header bytes; with stacks, the kernel stack's length, then
/// [`KERNEL_STACK_FRAMES`] kernel frames' room, then [`STACK_FRAMES`] user frames' room; with
/// user stack bytes, then the user `ip`, `sp`, `bp`, the bytes copied, and the bytes.
const RECORD_HEADER: i16 = 56;
const OFF_KERNEL_STACK_LEN: i16 = 56;
const STACK_HEADER: i16 = 64;
const OFF_USER_STACK: i16 = STACK_HEADER + KERNEL_STACK_FRAMES as i16 * 8;
const OFF_USER_IP: i16 = OFF_USER_STACK + STACK_FRAMES as i16 * 8;
const OFF_USER_SP: i16 = OFF_USER_IP + 8;
const OFF_USER_BP: i16 = OFF_USER_SP + 8;
const OFF_USER_STACK_BYTES: i16 = OFF_USER_BP + 8;
const OFF_USER_STACK_DATA: i16 = OFF_USER_STACK_BYTES + 8;
const OFF_TIME: i16 = 0;
const OFF_PID_TGID: i16 = 8;
const OFF_IP: i16 = 16;
const OFF_OLD: i16 = 24;
const OFF_NEW: i16 = 32;
const OFF_PIECE: i16 = 40;
const OFF_CPU: i16 = 44;
const OFF_FLAGS: i16 = 48;
const OFF_STACK_LEN: i16 = 52;

/// Record flag: the access was made in kernel mode.
const FLAG_KERNEL: i32 = 1;
/// Record flag: `bpf_probe_read_*` failed; old and new are 0.
const FLAG_UNREADABLE: i32 = 2;
/// Record flag (set per piece, before the record is filled): read the C string the new value
/// points to.
const FLAG_STRING: i32 = 4;
/// Record flag (set per piece): read [`SLOT_STRING_LEN`] bytes at [`SLOT_STRING_PTR`].
const FLAG_COUNTED: i32 = 8;

/// `bpf_perf_event_data` offsets on x86_64 (`arch/x86/include/uapi/asm/ptrace.h`).
const CTX_BP: i16 = 4 * 8;
const CTX_IP: i16 = 16 * 8;
const CTX_CS: i16 = 17 * 8;
const CTX_SP: i16 = 19 * 8;
const CTX_ADDR: i16 = 21 * 8 + 8;

/// Stack slots (offsets from r10).
const SLOT_NEW: i16 = -8;
const SLOT_PREV_KEY: i16 = -16;
const SLOT_STATS_KEY: i16 = -24;
const SLOT_FLAGS: i16 = -32;
const SLOT_COUNT_KEY: i16 = -48;
const SLOT_ONE: i16 = -56;
const SLOT_STRING_PTR: i16 = -64;
const SLOT_STRING_LEN: i16 = -72;

/// `BPF_F_USER_STACK`.
const F_USER_STACK: i32 = 1 << 8;
/// `BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP`, `BPF_RB_AVAIL_DATA`.
const RB_NO_WAKEUP: i32 = 1;
const RB_FORCE_WAKEUP: i32 = 2;
const RB_AVAIL_DATA: i32 = 0;
/// `BPF_NOEXIST`.
const NOEXIST: i32 = 1;
/// `-EEXIST`.
const NEG_EEXIST: i32 = -17;

/// Map names in the program text.
const MAP_PREV: &str = "prev";
const MAP_STATS: &str = "stats";
const MAP_RING: &str = "ring";
const MAP_COUNTS: &str = "counts";
const MAP_ADDRS: &str = "addrs";

/// Indices of the per-CPU `stats` array.
const STAT_RUNS: i32 = 0;
const STAT_FILTERED: i32 = 1;
const STAT_RING_FULL: i32 = 2;
const STAT_COUNT_MAP_FULL: i32 = 3;
const STAT_UNKNOWN_ADDR: i32 = 4;
const STAT_READ_FAILED: i32 = 5;
const STAT_COUNT: u32 = 6;

/// `stats[index] += 1` (per CPU: programs do not nest on a CPU, so no atomics).
fn bump(asm: &mut Asm, index: i32, name: &str) {
    let done = asm.label(format!("{name}_counted"));
    asm.st(Size::W, Reg::FP, SLOT_STATS_KEY, index)
        .ld_map(Reg::R1, MAP_STATS)
        .stack_ptr(Reg::R2, SLOT_STATS_KEY)
        .call(Helper::MapLookupElem)
        .jmp(Cond::Eq, Reg::R0, Src::Imm(0), done)
        .ldx(Size::DW, Reg::R1, Reg::R0, 0)
        .alu(AluOp::Add, Reg::R1, Src::Imm(1))
        .stx(Size::DW, Reg::R0, 0, Reg::R1)
        .bind(done);
}

fn validate(spec: &HandlerSpec) -> Result<(), BpfError> {
    if spec.pieces.is_empty() {
        return Err(BpfError::Invalid("no pieces to watch".into()));
    }
    if spec.pieces.len() > 64 {
        return Err(BpfError::Invalid(format!(
            "{} pieces: at most 64 per handler",
            spec.pieces.len()
        )));
    }
    for (i, piece) in spec.pieces.iter().enumerate() {
        if ![1, 2, 4, 8].contains(&piece.len) || piece.addr % u64::from(piece.len) != 0 {
            return Err(BpfError::Invalid(format!(
                "piece {i} at {:#x}: needs a length of 1, 2, 4 or 8 bytes and an address \
                 aligned to it, got {}",
                piece.addr, piece.len
            )));
        }
        if piece.string.is_some() && (piece.len != 8 || piece.is_kernel()) {
            return Err(BpfError::Invalid(format!(
                "piece {i} at {:#x}: only an 8-byte user-space word reads a string",
                piece.addr
            )));
        }
        if let Some(PieceString::Counted { pointer, length }) = piece.string {
            if pointer.max(length) >= spec.pieces.len() {
                return Err(BpfError::Invalid(format!(
                    "piece {i}: its string's pointer or length is no piece"
                )));
            }
        }
        if let Some(cond) = piece.condition {
            if cond.bytes != piece.len {
                return Err(BpfError::Invalid(format!(
                    "piece {i}: its condition compares a {}-byte value, the piece has {}",
                    cond.bytes, piece.len
                )));
            }
        }
    }
    if let HandlerMode::Emit { .. } = spec.mode {
        let page = 4096u32;
        if !spec.ring_bytes.is_power_of_two() || spec.ring_bytes < page {
            return Err(BpfError::Invalid(format!(
                "ring buffer of {} bytes: needs a power of two of at least one page",
                spec.ring_bytes
            )));
        }
    }
    if spec.string_buffer() > 0 && !(1..=MAX_STRING_CHARS).contains(&spec.string_chars) {
        return Err(BpfError::Invalid(format!(
            "strings of {} characters: needs 1 to {MAX_STRING_CHARS}",
            spec.string_chars
        )));
    }
    if spec.mode == HandlerMode::Count && spec.count_keys == 0 {
        return Err(BpfError::Invalid("count map of 0 keys".into()));
    }
    Ok(())
}

fn generate(spec: &HandlerSpec) -> Result<Program, BpfError> {
    validate(spec)?;
    let mut asm = Asm::new();
    let unknown = asm.label("unknown_addr");
    let read_failed = asm.label("read_failed");
    let drop_hit = asm.label("filtered");
    let common = asm.label(match spec.mode {
        HandlerMode::Emit { .. } => "emit",
        HandlerMode::Count => "count",
    });
    let needs_value = matches!(spec.mode, HandlerMode::Emit { .. }) || spec.filters();

    asm.mov_reg(Reg::R6, Reg::R1);
    bump(&mut asm, STAT_RUNS, "run");
    asm.st(Size::W, Reg::FP, SLOT_FLAGS, 0)
        .ldx(Size::DW, Reg::R7, Reg::R6, CTX_ADDR);
    if spec.string_buffer() > 0
        && spec
            .pieces
            .iter()
            .any(|p| matches!(p.string, Some(PieceString::Counted { .. })))
    {
        // The verifier sees the counted read on every path: its slots start initialized.
        asm.st(Size::DW, Reg::FP, SLOT_STRING_PTR, 0)
            .st(Size::DW, Reg::FP, SLOT_STRING_LEN, 0);
    }

    let piece_labels: Vec<_> = (0..spec.pieces.len())
        .map(|i| asm.label(format!("piece{i}")))
        .collect();
    for (i, piece) in spec.pieces.iter().enumerate() {
        let next = piece_labels.get(i + 1).copied().unwrap_or(unknown);
        let index = i32::try_from(i).expect("at most 64 pieces");
        asm.bind(piece_labels[i]);
        if piece.movable {
            asm.st(Size::W, Reg::FP, SLOT_PREV_KEY, index)
                .ld_map(Reg::R1, MAP_ADDRS)
                .stack_ptr(Reg::R2, SLOT_PREV_KEY)
                .call(Helper::MapLookupElem)
                .jmp(Cond::Eq, Reg::R0, Src::Imm(0), unknown)
                .ldx(Size::DW, Reg::R1, Reg::R0, 0);
        } else {
            asm.ld_imm64(Reg::R1, piece.addr);
        }
        asm.jmp(Cond::Ne, Reg::R7, Src::Reg(Reg::R1), next)
            .mov(Reg::R8, index);
        if !needs_value {
            asm.ja(common);
            continue;
        }
        let read = if piece.is_kernel() {
            Helper::ProbeReadKernel
        } else {
            Helper::ProbeReadUser
        };
        if piece.string == Some(PieceString::CString) && spec.string_buffer() > 0 {
            asm.st(Size::W, Reg::FP, SLOT_FLAGS, FLAG_STRING);
        }
        asm.st(Size::DW, Reg::FP, SLOT_NEW, 0)
            .stack_ptr(Reg::R1, SLOT_NEW)
            .mov(Reg::R2, i32::from(piece.len))
            .mov_reg(Reg::R3, Reg::R7)
            .call(read)
            .jmp(Cond::Ne, Reg::R0, Src::Imm(0), read_failed)
            .ldx(Size::DW, Reg::R9, Reg::FP, SLOT_NEW)
            .st(Size::W, Reg::FP, SLOT_PREV_KEY, index)
            .ld_map(Reg::R1, MAP_PREV)
            .stack_ptr(Reg::R2, SLOT_PREV_KEY)
            .call(Helper::MapLookupElem)
            // Cannot happen for an index below max_entries; the verifier needs the check.
            .jmp(Cond::Eq, Reg::R0, Src::Imm(0), unknown)
            .mov_reg(Reg::R7, Reg::R9)
            .xchg64(Reg::R0, 0, Reg::R7);
        if spec.filter.changes_only {
            asm.jmp(Cond::Eq, Reg::R7, Src::Reg(Reg::R9), drop_hit);
        }
        if let Some(cond) = piece.condition {
            emit_condition(&mut asm, &cond, drop_hit);
        }
        if let (Some(PieceString::Counted { pointer, length }), HandlerMode::Emit { .. }) =
            (piece.string, spec.mode)
        {
            // The string's pointer and length as they are now, this write included.
            for (from, slot) in [(pointer, SLOT_STRING_PTR), (length, SLOT_STRING_LEN)] {
                let from = i32::try_from(from).expect("at most 64 pieces");
                asm.st(Size::W, Reg::FP, SLOT_PREV_KEY, from)
                    .ld_map(Reg::R1, MAP_PREV)
                    .stack_ptr(Reg::R2, SLOT_PREV_KEY)
                    .call(Helper::MapLookupElem)
                    .jmp(Cond::Eq, Reg::R0, Src::Imm(0), unknown)
                    .ldx(Size::DW, Reg::R1, Reg::R0, 0)
                    .stx(Size::DW, Reg::FP, slot, Reg::R1);
            }
            asm.st(Size::W, Reg::FP, SLOT_FLAGS, FLAG_COUNTED);
        }
        asm.ja(common);
    }

    asm.bind(unknown);
    bump(&mut asm, STAT_UNKNOWN_ADDR, "unknown_addr");
    asm.mov(Reg::R0, 0).exit();

    if needs_value {
        asm.bind(read_failed);
        bump(&mut asm, STAT_READ_FAILED, "read_failed");
        asm.st(Size::W, Reg::FP, SLOT_FLAGS, FLAG_UNREADABLE)
            .mov(Reg::R7, 0)
            .mov(Reg::R9, 0)
            .ja(common);
    }
    if spec.filters() {
        asm.bind(drop_hit);
        bump(&mut asm, STAT_FILTERED, "filtered");
        asm.mov(Reg::R0, 0).exit();
    }

    asm.bind(common);
    match spec.mode {
        HandlerMode::Emit { stack } => {
            let wakeup = spec.wakeup_bytes.clamp(1, spec.ring_bytes / 2);
            let stack = stack.then_some(spec.user_stack_bytes);
            emit_record(
                &mut asm,
                RecordShape {
                    stack,
                    size: spec.record_size(),
                    string_buffer: spec.string_buffer(),
                    string_chars: spec.string_chars,
                },
                i32::try_from(wakeup).unwrap_or(i32::MAX),
                spec.main_stack_top,
            )
        }
        HandlerMode::Count => emit_count(&mut asm),
    }
    Ok(asm.finish())
}

/// `if !(new OP value) goto drop`: the new value (r9, zero-extended from the piece) widened as
/// the condition says ([`IntCondition::widen`]), compared signed or unsigned in 64 bits.
fn emit_condition(asm: &mut Asm, cond: &IntCondition, drop_hit: super::insn::Label) {
    let mut subject = Reg::R9;
    if cond.extend_signed && cond.bytes < 8 {
        let shift = 64 - 8 * i32::from(cond.bytes);
        asm.mov_reg(Reg::R1, Reg::R9)
            .alu(AluOp::Lsh, Reg::R1, Src::Imm(shift))
            .alu(AluOp::Arsh, Reg::R1, Src::Imm(shift));
        subject = Reg::R1;
    }
    if cond.narrow_to_32 && (cond.extend_signed || cond.bytes > 4) {
        if subject != Reg::R1 {
            asm.mov_reg(Reg::R1, subject);
            subject = Reg::R1;
        }
        asm.alu(AluOp::Lsh, Reg::R1, Src::Imm(32))
            .alu(AluOp::Rsh, Reg::R1, Src::Imm(32));
    }
    // A 32-bit immediate is sign-extended to 64 bits by the kernel: it stands for any operand
    // whose 64 bits are that sign extension, for signed and unsigned tests alike.
    let operand = |asm: &mut Asm| match i32::try_from(cond.operand as i64) {
        Ok(imm) => Src::Imm(imm),
        Err(_) => {
            asm.ld_imm64(Reg::R2, cond.operand);
            Src::Reg(Reg::R2)
        }
    };
    if cond.op == CompareOp::AnyBit {
        if subject != Reg::R1 {
            asm.mov_reg(Reg::R1, subject);
        }
        let mask = operand(asm);
        asm.alu(AluOp::And, Reg::R1, mask);
        asm.jmp(Cond::Eq, Reg::R1, Src::Imm(0), drop_hit);
        return;
    }
    let keep = match (cond.op, cond.compare_signed) {
        (CompareOp::Equal, _) => Cond::Eq,
        (CompareOp::NotEqual, _) => Cond::Ne,
        (CompareOp::Less, false) => Cond::Lt,
        (CompareOp::LessEqual, false) => Cond::Le,
        (CompareOp::Greater, false) => Cond::Gt,
        (CompareOp::GreaterEqual, false) => Cond::Ge,
        (CompareOp::Less, true) => Cond::Slt,
        (CompareOp::LessEqual, true) => Cond::Sle,
        (CompareOp::Greater, true) => Cond::Sgt,
        (CompareOp::GreaterEqual, true) => Cond::Sge,
        (CompareOp::AnyBit, _) => unreachable!("handled above"),
    };
    let drop_if = keep.negate().expect("only Set has no negation");
    let operand = operand(asm);
    asm.jmp(drop_if, subject, operand, drop_hit);
}

/// An Emit record's bytes, with or without stacks (and with `user_stack_bytes` of user stack).
fn record_bytes(stack: bool, user_stack_bytes: u32) -> i32 {
    match (stack, user_stack_bytes) {
        (false, _) => i32::from(RECORD_HEADER),
        (true, 0) => i32::from(OFF_USER_IP),
        (true, bytes) => i32::from(OFF_USER_STACK_DATA) + bytes as i32,
    }
}

/// Copies the user registers and up to `bytes` of the user stack from `sp` into the record at
/// r7 (r6 ctx; r8 is free). `bpf_probe_read_user` copies all or nothing, and the stack ends at
/// a page boundary (the top of a `[stack]` mapping), so the copy tries `bytes`, then the bytes
/// up to each page boundary below, nearest last, and records the length that read.
fn copy_user_stack(asm: &mut Asm, bytes: u32, main_stack_top: u64) {
    let done = asm.label("user_stack_copied");
    let bytes = bytes as i32;
    asm.ldx(Size::DW, Reg::R1, Reg::R6, CTX_IP)
        .stx(Size::DW, Reg::R7, OFF_USER_IP, Reg::R1)
        .ldx(Size::DW, Reg::R1, Reg::R6, CTX_BP)
        .stx(Size::DW, Reg::R7, OFF_USER_BP, Reg::R1)
        .ldx(Size::DW, Reg::R1, Reg::R6, CTX_SP)
        .stx(Size::DW, Reg::R7, OFF_USER_SP, Reg::R1);
    if main_stack_top != 0 {
        // The main thread (tid == tgid) with `sp` less than `bytes` below the stack's top:
        // copy up to the top, in one read.
        let general = asm.label("user_stack_general");
        asm.ldx(Size::DW, Reg::R1, Reg::R7, OFF_PID_TGID)
            .mov_reg(Reg::R2, Reg::R1)
            .alu(AluOp::Rsh, Reg::R2, Src::Imm(32))
            .alu(AluOp::Lsh, Reg::R1, Src::Imm(32))
            .alu(AluOp::Rsh, Reg::R1, Src::Imm(32))
            .jmp(Cond::Ne, Reg::R1, Src::Reg(Reg::R2), general)
            .ldx(Size::DW, Reg::R3, Reg::R7, OFF_USER_SP)
            .ld_imm64(Reg::R8, main_stack_top)
            .jmp(Cond::Ge, Reg::R3, Src::Reg(Reg::R8), general)
            .alu(AluOp::Sub, Reg::R8, Src::Reg(Reg::R3))
            .jmp(Cond::Gt, Reg::R8, Src::Imm(bytes), general)
            .mov_reg(Reg::R1, Reg::R7)
            .alu(AluOp::Add, Reg::R1, Src::Imm(OFF_USER_STACK_DATA.into()))
            .mov_reg(Reg::R2, Reg::R8)
            .call(Helper::ProbeReadUser)
            .jmp(Cond::Eq, Reg::R0, Src::Imm(0), done)
            .bind(general);
    }
    let pages = (bytes as u32).div_ceil(4096) as i32;
    for k in (0..=pages).rev() {
        let clamped = asm.label(format!("user_stack_len{k}"));
        // r8 = min(bytes, (4096 - sp % 4096) + k * 4096): 1..=bytes, as the verifier sees it.
        asm.ldx(Size::DW, Reg::R2, Reg::R7, OFF_USER_SP)
            .alu(AluOp::And, Reg::R2, Src::Imm(4095))
            .mov(Reg::R8, 4096 + k * 4096)
            .alu(AluOp::Sub, Reg::R8, Src::Reg(Reg::R2))
            .jmp(Cond::Le, Reg::R8, Src::Imm(bytes), clamped)
            .mov(Reg::R8, bytes)
            .bind(clamped)
            .mov_reg(Reg::R1, Reg::R7)
            .alu(AluOp::Add, Reg::R1, Src::Imm(OFF_USER_STACK_DATA.into()))
            .mov_reg(Reg::R2, Reg::R8)
            .ldx(Size::DW, Reg::R3, Reg::R7, OFF_USER_SP)
            .call(Helper::ProbeReadUser)
            .jmp(Cond::Eq, Reg::R0, Src::Imm(0), done);
    }
    asm.mov(Reg::R8, 0)
        .bind(done)
        .stx(Size::DW, Reg::R7, OFF_USER_STACK_BYTES, Reg::R8);
}

/// What an Emit record holds.
struct RecordShape {
    /// With stacks, and how many user-stack bytes (0: user frames by `bpf_get_stack`).
    stack: Option<u32>,
    /// The record's bytes.
    size: i32,
    /// The string area's buffer bytes, 0 without one ([`HandlerSpec::string_buffer`]).
    string_buffer: u32,
    /// [`HandlerSpec::string_chars`].
    string_chars: u32,
}

/// The string area, last in a record of `size` bytes whose buffer has `buffer` bytes: the
/// offset of `bpf_probe_read_user_str`'s result (8 bytes: the length with the NUL, `0` when
/// no string was read, or `-errno`), followed by the buffer. [`HandlerRecord::parse_for`]
/// finds it from the record's end the same way.
fn string_area(size: usize, buffer: usize) -> usize {
    size - buffer - 8
}

/// For a piece flagged [`FLAG_STRING`]: the string at the new value, up to the buffer, into
/// the record at r7; flagged [`FLAG_COUNTED`]: the string's length in bytes, up to one more
/// than `chars`, at its pointer (the result word then says bytes read + 1, as
/// `bpf_probe_read_user_str`'s counts the NUL); otherwise a result of 0. r8 is free.
fn copy_string(asm: &mut Asm, shape: &RecordShape, chars: u32) {
    let none = asm.label("no_string");
    let done = asm.label("string_done");
    let counted = asm.label("counted_string");
    let length_ok = asm.label("counted_length_ok");
    let stored = asm.label("counted_stored");
    let area = string_area(shape.size as usize, shape.string_buffer as usize) as i16;
    let most = chars as i32 + 1;
    asm.ldx(Size::W, Reg::R1, Reg::R7, OFF_FLAGS)
        .alu(AluOp::And, Reg::R1, Src::Imm(FLAG_COUNTED))
        .jmp(Cond::Ne, Reg::R1, Src::Imm(0), counted)
        .ldx(Size::W, Reg::R1, Reg::R7, OFF_FLAGS)
        .alu(AluOp::And, Reg::R1, Src::Imm(FLAG_STRING))
        .jmp(Cond::Eq, Reg::R1, Src::Imm(0), none)
        .mov_reg(Reg::R1, Reg::R7)
        .alu(AluOp::Add, Reg::R1, Src::Imm(i32::from(area) + 8))
        .mov(Reg::R2, shape.string_buffer as i32)
        .ldx(Size::DW, Reg::R3, Reg::R7, OFF_NEW)
        .call(Helper::ProbeReadUserStr)
        .stx(Size::DW, Reg::R7, area, Reg::R0)
        .ja(done)
        .bind(counted)
        .ldx(Size::DW, Reg::R2, Reg::FP, SLOT_STRING_LEN)
        .jmp(Cond::Le, Reg::R2, Src::Imm(most), length_ok)
        .mov(Reg::R2, most)
        .bind(length_ok)
        .mov_reg(Reg::R8, Reg::R2)
        .mov_reg(Reg::R1, Reg::R7)
        .alu(AluOp::Add, Reg::R1, Src::Imm(i32::from(area) + 8))
        .ldx(Size::DW, Reg::R3, Reg::FP, SLOT_STRING_PTR)
        .call(Helper::ProbeReadUser)
        .jmp(Cond::Ne, Reg::R0, Src::Imm(0), stored)
        .mov_reg(Reg::R0, Reg::R8)
        .alu(AluOp::Add, Reg::R0, Src::Imm(1))
        .bind(stored)
        .stx(Size::DW, Reg::R7, area, Reg::R0)
        .ja(done)
        .bind(none)
        .st(Size::DW, Reg::R7, area, 0)
        .bind(done);
}

/// Registers on entry: r6 ctx, r7 old, r8 piece, r9 new.
fn emit_record(asm: &mut Asm, shape: RecordShape, wakeup_bytes: i32, main_stack_top: u64) {
    let full = asm.label("ring_full");
    let submit = asm.label("submit");
    let user_mode = asm.label("user_mode");
    let RecordShape { stack, size, .. } = shape;
    // The record's span in the ring (`bpf_ringbuf_query(AVAIL_DATA)` counts it once reserved).
    let span = super::ringbuf::record_span(size as u32) as i32;
    asm.ld_map(Reg::R1, MAP_RING)
        .mov(Reg::R2, size)
        .mov(Reg::R3, 0)
        .call(Helper::RingbufReserve)
        .jmp(Cond::Eq, Reg::R0, Src::Imm(0), full)
        .stx(Size::DW, Reg::R0, OFF_OLD, Reg::R7)
        .stx(Size::DW, Reg::R0, OFF_NEW, Reg::R9)
        .stx(Size::W, Reg::R0, OFF_PIECE, Reg::R8)
        .mov_reg(Reg::R7, Reg::R0)
        .ldx(Size::DW, Reg::R1, Reg::R6, CTX_IP)
        .stx(Size::DW, Reg::R7, OFF_IP, Reg::R1)
        .ldx(Size::DW, Reg::R1, Reg::R6, CTX_CS)
        .alu(AluOp::And, Reg::R1, Src::Imm(3))
        .ldx(Size::W, Reg::R2, Reg::FP, SLOT_FLAGS)
        .jmp(Cond::Ne, Reg::R1, Src::Imm(0), user_mode)
        .alu(AluOp::Or, Reg::R2, Src::Imm(FLAG_KERNEL))
        .bind(user_mode)
        .stx(Size::W, Reg::R7, OFF_FLAGS, Reg::R2)
        .call(Helper::KtimeGetNs)
        .stx(Size::DW, Reg::R7, OFF_TIME, Reg::R0)
        .call(Helper::GetCurrentPidTgid)
        .stx(Size::DW, Reg::R7, OFF_PID_TGID, Reg::R0)
        .call(Helper::GetSmpProcessorId)
        .stx(Size::W, Reg::R7, OFF_CPU, Reg::R0);
    if shape.string_buffer > 0 {
        copy_string(asm, &shape, shape.string_chars);
    }
    if let Some(user_stack_bytes) = stack {
        // The kernel frames of a kernel-mode access (read(2) filling the buffer), as perf's
        // callchain has them; a user-mode access has none.
        let user_only = asm.label("user_stack_only");
        let user_stack = asm.label("user_stack");
        let stack_done = asm.label("stacks_done");
        asm.ldx(Size::W, Reg::R1, Reg::R7, OFF_FLAGS)
            .alu(AluOp::And, Reg::R1, Src::Imm(FLAG_KERNEL))
            .jmp(Cond::Eq, Reg::R1, Src::Imm(0), user_only)
            .mov_reg(Reg::R1, Reg::R6)
            .mov_reg(Reg::R2, Reg::R7)
            .alu(AluOp::Add, Reg::R2, Src::Imm(STACK_HEADER.into()))
            .mov(Reg::R3, KERNEL_STACK_FRAMES as i32 * 8)
            .mov(Reg::R4, 0)
            .call(Helper::GetStack)
            .stx(Size::W, Reg::R7, OFF_KERNEL_STACK_LEN, Reg::R0)
            .ja(user_stack)
            .bind(user_only)
            .st(Size::W, Reg::R7, OFF_KERNEL_STACK_LEN, 0);
        if user_stack_bytes > 0 {
            // A user-mode access: ctx's registers are the user's; unwound in user space.
            copy_user_stack(asm, user_stack_bytes, main_stack_top);
            asm.st(Size::W, Reg::R7, OFF_STACK_LEN, 0).ja(stack_done);
        }
        asm.bind(user_stack);
        if user_stack_bytes > 0 {
            asm.st(Size::DW, Reg::R7, OFF_USER_STACK_BYTES, 0);
        }
        asm.mov_reg(Reg::R1, Reg::R6)
            .mov_reg(Reg::R2, Reg::R7)
            .alu(AluOp::Add, Reg::R2, Src::Imm(OFF_USER_STACK.into()))
            .mov(Reg::R3, STACK_FRAMES as i32 * 8)
            .mov(Reg::R4, F_USER_STACK)
            .call(Helper::GetStack)
            .stx(Size::W, Reg::R7, OFF_STACK_LEN, Reg::R0)
            .bind(stack_done);
    } else {
        asm.st(Size::W, Reg::R7, OFF_STACK_LEN, 0);
    }
    asm.ld_map(Reg::R1, MAP_RING)
        .mov(Reg::R2, RB_AVAIL_DATA)
        .call(Helper::RingbufQuery)
        .mov(Reg::R2, RB_NO_WAKEUP)
        .jmp(Cond::Lt, Reg::R0, Src::Imm(wakeup_bytes), submit)
        // Past the mark already before this record: the reader was woken then.
        .mov_reg(Reg::R1, Reg::R0)
        .alu(AluOp::Sub, Reg::R1, Src::Imm(span))
        .jmp(Cond::Ge, Reg::R1, Src::Imm(wakeup_bytes), submit)
        .mov(Reg::R2, RB_FORCE_WAKEUP)
        .bind(submit)
        .mov_reg(Reg::R1, Reg::R7)
        .call(Helper::RingbufSubmit)
        .mov(Reg::R0, 0)
        .exit()
        .bind(full);
    bump(asm, STAT_RING_FULL, "ring_full");
    asm.mov(Reg::R0, 0).exit();
}

/// Registers on entry: r6 ctx, r8 piece.
fn emit_count(asm: &mut Asm) {
    let insert = asm.label("insert");
    let raced = asm.label("raced");
    let full = asm.label("count_map_full");
    let add = |asm: &mut Asm| {
        asm.ldx(Size::DW, Reg::R1, Reg::R0, 0)
            .alu(AluOp::Add, Reg::R1, Src::Imm(1))
            .stx(Size::DW, Reg::R0, 0, Reg::R1)
            .mov(Reg::R0, 0)
            .exit();
    };
    let lookup = |asm: &mut Asm| {
        asm.ld_map(Reg::R1, MAP_COUNTS)
            .stack_ptr(Reg::R2, SLOT_COUNT_KEY)
            .call(Helper::MapLookupElem);
    };
    asm.stx(Size::W, Reg::FP, SLOT_COUNT_KEY, Reg::R8)
        .call(Helper::GetCurrentPidTgid)
        .stx(Size::W, Reg::FP, SLOT_COUNT_KEY + 4, Reg::R0)
        .ldx(Size::DW, Reg::R1, Reg::R6, CTX_IP)
        .stx(Size::DW, Reg::FP, SLOT_COUNT_KEY + 8, Reg::R1);
    lookup(asm);
    asm.jmp(Cond::Eq, Reg::R0, Src::Imm(0), insert);
    add(asm);
    asm.bind(insert)
        .st(Size::DW, Reg::FP, SLOT_ONE, 1)
        .ld_map(Reg::R1, MAP_COUNTS)
        .stack_ptr(Reg::R2, SLOT_COUNT_KEY)
        .stack_ptr(Reg::R3, SLOT_ONE)
        .mov(Reg::R4, NOEXIST)
        .call(Helper::MapUpdateElem)
        .jmp(Cond::Eq, Reg::R0, Src::Imm(NEG_EEXIST), raced)
        .jmp(Cond::Ne, Reg::R0, Src::Imm(0), full)
        .mov(Reg::R0, 0)
        .exit()
        // Another CPU inserted the key between our lookup and update: add to it.
        .bind(raced);
    lookup(asm);
    asm.jmp(Cond::Eq, Reg::R0, Src::Imm(0), full);
    add(asm);
    asm.bind(full);
    bump(asm, STAT_COUNT_MAP_FULL, "count_map_full");
    asm.mov(Reg::R0, 0).exit();
}

/// One hit, as the handler emitted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerRecord {
    /// `bpf_ktime_get_ns()`: `CLOCK_MONOTONIC` nanoseconds, the clock of hwbp's perf samples.
    pub time_ns: u64,
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// CPU the hit ran on.
    pub cpu: u32,
    /// `regs.ip`: on x86 data watches the instruction after the access.
    pub ip: u64,
    /// Index of the piece in [`HandlerSpec::pieces`].
    pub piece: u32,
    /// The piece's value before this hit (the previous hit's new value, or the seed).
    pub old: u64,
    /// The piece's value right after the access, zero-extended from its width.
    pub new: u64,
    /// The access was made in kernel mode (`regs.cs & 3 == 0`), e.g. `read(2)` filling the
    /// watched buffer.
    pub kernel_mode: bool,
    /// The value could not be read (`old` and `new` are 0).
    pub value_unreadable: bool,
    /// User-stack frames, innermost first (empty without [`HandlerMode::Emit`]`{ stack: true
    /// }`).
    pub stack: Vec<u64>,
    /// Kernel-stack frames of a kernel-mode access, innermost first (empty for a user-mode
    /// access, or without stacks).
    pub kernel_stack: Vec<u64>,
    /// `bpf_get_stack`'s negative errno, if one of the stacks failed.
    pub stack_error: Option<i32>,
    /// The user registers and stack bytes of a user-mode access, with
    /// [`HandlerSpec::user_stack_bytes`] (then [`stack`](Self::stack) is empty); `None` for a
    /// kernel-mode access, or when not even the bytes up to `sp`'s page end could be read.
    pub user_stack: Option<crate::user_stack::UserStack>,
    /// For a piece that [reads a string](HandlerPiece::string): the string as the write left
    /// it, read at the trap, or the read's negative errno (a NULL or unmapped pointer);
    /// `None` for other pieces and when the value was unreadable.
    pub string: Option<Result<TrapString, i32>>,
}

/// A C string read by the handler at the trap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrapString {
    /// Its characters (a C string's up to the NUL), at most [`HandlerSpec::string_chars`].
    pub bytes: Vec<u8>,
    /// The string goes on past `bytes` (longer than the bound).
    pub truncated: bool,
}

impl HandlerRecord {
    /// Decodes one ring buffer payload of a handler built from `spec`; `None` if it is shorter
    /// than a record.
    pub fn parse_for(spec: &HandlerSpec, bytes: &[u8]) -> Option<HandlerRecord> {
        let buffer = spec.string_buffer() as usize;
        if buffer == 0 {
            return HandlerRecord::parse(bytes);
        }
        let area = bytes.len().checked_sub(buffer + 8)?;
        let mut record = HandlerRecord::parse(bytes.get(..area)?)?;
        let read = i64::from_le_bytes(bytes.get(area..area + 8)?.try_into().ok()?);
        let chars = spec.string_chars as usize;
        record.string = match read {
            0 => None,
            errno if errno < 0 => Some(Err(i32::try_from(errno).unwrap_or(i32::MIN))),
            len => {
                // The length counts the NUL; more than `chars` characters: truncated.
                let text = bytes.get(area + 8..area + 8 + len as usize - 1)?;
                Some(Ok(TrapString {
                    bytes: text[..text.len().min(chars)].to_vec(),
                    truncated: text.len() > chars,
                }))
            }
        };
        Some(record)
    }

    /// Decodes one ring buffer payload of a handler without strings; `None` if it is shorter
    /// than a record.
    pub fn parse(bytes: &[u8]) -> Option<HandlerRecord> {
        let u64_at = |off: i16| -> Option<u64> {
            let off = off as usize;
            Some(u64::from_le_bytes(
                bytes.get(off..off + 8)?.try_into().ok()?,
            ))
        };
        let u32_at = |off: i16| -> Option<u32> {
            let off = off as usize;
            Some(u32::from_le_bytes(
                bytes.get(off..off + 4)?.try_into().ok()?,
            ))
        };
        let pid_tgid = u64_at(OFF_PID_TGID)?;
        let flags = u32_at(OFF_FLAGS)?;
        // A record with stacks is longer than the header; the lengths are bytes or -errno.
        let frames = |len: i32, start: i16| -> (Vec<u64>, Option<i32>) {
            if len < 0 {
                return (Vec::new(), Some(len));
            }
            let start = start as usize;
            let end = (start + len as usize).min(bytes.len());
            let frames = bytes
                .get(start..end)
                .unwrap_or_default()
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            (frames, None)
        };
        let with_stacks = bytes.len() > RECORD_HEADER as usize;
        let (stack, user_error) = frames(
            u32_at(OFF_STACK_LEN)? as i32,
            if with_stacks {
                OFF_USER_STACK
            } else {
                RECORD_HEADER
            },
        );
        let (kernel_stack, kernel_error) = if with_stacks {
            frames(u32_at(OFF_KERNEL_STACK_LEN)? as i32, STACK_HEADER)
        } else {
            (Vec::new(), None)
        };
        let stack_error = user_error.or(kernel_error);
        let copied = u64_at(OFF_USER_STACK_BYTES).unwrap_or(0) as usize;
        let user_stack = (copied > 0)
            .then(|| {
                let data = OFF_USER_STACK_DATA as usize;
                Some(crate::user_stack::UserStack {
                    ip: u64_at(OFF_USER_IP)?,
                    sp: u64_at(OFF_USER_SP)?,
                    bp: u64_at(OFF_USER_BP)?,
                    bytes: bytes.get(data..data + copied)?.to_vec(),
                })
            })
            .flatten();
        Some(HandlerRecord {
            time_ns: u64_at(OFF_TIME)?,
            pid: (pid_tgid >> 32) as i32,
            tid: pid_tgid as u32 as i32,
            cpu: u32_at(OFF_CPU)?,
            ip: u64_at(OFF_IP)?,
            piece: u32_at(OFF_PIECE)?,
            old: u64_at(OFF_OLD)?,
            new: u64_at(OFF_NEW)?,
            kernel_mode: flags & FLAG_KERNEL as u32 != 0,
            value_unreadable: flags & FLAG_UNREADABLE as u32 != 0,
            stack,
            kernel_stack,
            stack_error,
            user_stack,
            string: None,
        })
    }
}

/// A key of the Count map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    /// Index of the piece.
    pub piece: u32,
    /// Thread id.
    pub tid: i32,
    /// `regs.ip` of the hit.
    pub ip: u64,
}

/// The handler's own counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Times the program ran.
    pub runs: u64,
    /// Hits dropped by the filters.
    pub filtered: u64,
    /// Records lost because the ring buffer was full.
    pub ring_full: u64,
    /// Hits not counted because the count map was full.
    pub count_map_full: u64,
    /// Hits at an address that is no piece (dropped; reported as lost).
    pub unknown_addr: u64,
    /// Hits whose value could not be read.
    pub read_failed: u64,
}

impl HandlerStats {
    /// Hits the perf events counted (`perf_count`, summed over the events the handler is
    /// attached to) that the program never saw: the kernel skips it while another BPF program
    /// runs on that CPU (`bpf_prog_active`).
    pub fn skipped(&self, perf_count: u64) -> u64 {
        perf_count.saturating_sub(self.runs)
    }
}

/// Kernel ids of a handler's program and maps, to check that they are freed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelIds {
    /// The program's id.
    pub prog: u32,
    /// The maps' ids.
    pub maps: Vec<u32>,
}

/// A loaded hit handler. Dropping it closes the program and maps; the kernel frees them once
/// the perf events it was attached to are closed too.
#[derive(Debug)]
pub struct HitHandler {
    spec: HandlerSpec,
    program: Program,
    // Unmapped before the map fds close (either order is sound; this one is tidy).
    ring: Option<RingReader>,
    prog: Prog,
    prev: Map,
    stats: Map,
    ring_map: Option<Map>,
    counts: Option<Map>,
    /// The movable pieces' addresses, when some piece is movable.
    addrs: Option<Map>,
    malformed: u64,
}

impl HitHandler {
    /// Creates the maps, seeds every piece's previous value with 0, and loads the program.
    pub fn load(spec: &HandlerSpec) -> Result<HitHandler, BpfError> {
        let program = generate(spec)?;
        let prev = Map::create(MapType::Array, 4, 8, spec.pieces.len() as u32, "hwbp_prev")?;
        let stats = Map::create(MapType::PercpuArray, 4, 8, STAT_COUNT, "hwbp_stats")?;
        let (ring_map, counts) = match spec.mode {
            HandlerMode::Emit { .. } => (
                Some(Map::create(
                    MapType::Ringbuf,
                    0,
                    0,
                    spec.ring_bytes,
                    "hwbp_ring",
                )?),
                None,
            ),
            HandlerMode::Count => (
                None,
                Some(Map::create(
                    MapType::PercpuHash,
                    16,
                    8,
                    spec.count_keys,
                    "hwbp_counts",
                )?),
            ),
        };
        let addrs = if spec.pieces.iter().any(|p| p.movable) {
            let map = Map::create(MapType::Array, 4, 8, spec.pieces.len() as u32, "hwbp_addrs")?;
            for (i, piece) in spec.pieces.iter().enumerate() {
                map.update(
                    &(i as u32).to_ne_bytes(),
                    &piece.addr.to_ne_bytes(),
                    BPF_ANY,
                )?;
            }
            Some(map)
        } else {
            None
        };
        let fd_of = |name: &'static str| -> Option<i32> {
            use std::os::fd::AsRawFd;
            let map = match name {
                MAP_PREV => Some(&prev),
                MAP_STATS => Some(&stats),
                MAP_RING => ring_map.as_ref(),
                MAP_COUNTS => counts.as_ref(),
                MAP_ADDRS => addrs.as_ref(),
                _ => None,
            };
            map.map(|m| m.fd().as_raw_fd())
        };
        let raw = program
            .encode(&fd_of)
            .map_err(|e| BpfError::Invalid(e.to_string()))?;
        let prog = Prog::load_perf_event(&super::insn::to_bytes(&raw), "hwbp_hit")?;
        let ring = ring_map.as_ref().map(RingReader::map).transpose()?;
        Ok(HitHandler {
            spec: spec.clone(),
            program,
            ring,
            prog,
            prev,
            stats,
            ring_map,
            counts,
            addrs,
            malformed: 0,
        })
    }

    /// Moves [movable](HandlerPiece::movable) piece `piece` to `addr`, `len` bytes (its own
    /// length: the program reads that many): from now on the program takes a hit at `addr`
    /// as that piece's. Call it before the breakpoint moves, then [`seed`](Self::seed) it
    /// with the value at `addr`.
    pub fn move_piece(&self, piece: usize, addr: u64, len: u64) -> Result<(), BpfError> {
        let (Some(map), Some(p)) = (&self.addrs, self.spec.pieces.get(piece)) else {
            return Err(BpfError::Invalid(format!("no piece {piece} to move")));
        };
        if !p.movable || len != u64::from(p.len) || !addr.is_multiple_of(len) {
            return Err(BpfError::Invalid(format!(
                "piece {piece}: not movable, or {len} bytes at {addr:#x} are not its {} \
                 aligned bytes",
                p.len
            )));
        }
        map.update(&(piece as u32).to_ne_bytes(), &addr.to_ne_bytes(), BPF_ANY)
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &HandlerSpec {
        &self.spec
    }

    /// The loaded program, printable.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Sets piece `piece`'s previous value (truncated to its width): call it with the value
    /// read at arming, before the breakpoint is enabled, so the first hit's `old` is exact.
    pub fn seed(&self, piece: usize, value: u64) -> Result<(), BpfError> {
        let p = self.spec.pieces.get(piece).ok_or_else(|| {
            BpfError::Invalid(format!(
                "no piece {piece} (the handler has {})",
                self.spec.pieces.len()
            ))
        })?;
        let key = (piece as u32).to_ne_bytes();
        self.prev
            .update(&key, &p.truncate(value).to_ne_bytes(), BPF_ANY)
    }

    /// The program's fd, for [`crate::session::WatchSession::attach_handler`].
    pub fn program_fd(&self) -> BorrowedFd<'_> {
        self.prog.fd()
    }

    /// Runs the handler at every hit of the breakpoint event `event` (and of its inherited
    /// copies created afterwards). The event must sample every hit (`sample_period = 1`), as
    /// [`crate::session::WatchSession`]'s events do.
    pub fn attach(&self, event: BorrowedFd<'_>) -> Result<(), BpfError> {
        self.prog.attach_perf_event(event)
    }

    /// Delivers every record emitted so far (Emit mode; none in Count mode) and frees their
    /// space. Returns how many were delivered; undecodable payloads are counted in
    /// [`HitHandler::malformed`].
    pub fn poll_records(&mut self, deliver: &mut dyn FnMut(HandlerRecord)) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let mut malformed = 0;
        let spec = &self.spec;
        let n = ring.drain(&mut |bytes| match HandlerRecord::parse_for(spec, bytes) {
            Some(record) => deliver(record),
            None => malformed += 1,
        });
        self.malformed += malformed;
        n - malformed as usize
    }

    /// Waits up to `timeout` for records (Emit mode); true if some are ready. In Count mode it
    /// just sleeps.
    pub fn wait(&self, timeout: Duration) -> Result<bool, BpfError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        match &self.ring_map {
            Some(map) => sys::wait_readable(map.fd(), ms),
            None => {
                std::thread::sleep(timeout);
                Ok(false)
            }
        }
    }

    /// Ring payloads that did not decode as records (a bug if ever non-zero).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The Count map, summed over CPUs and sorted by key (empty in Emit mode).
    pub fn counts(&self) -> Result<Vec<(CountKey, u64)>, BpfError> {
        let Some(map) = &self.counts else {
            return Ok(Vec::new());
        };
        let mut out: Vec<(CountKey, u64)> = map
            .entries()?
            .into_iter()
            .map(|(key, value)| {
                let word = |b: &[u8]| u32::from_ne_bytes(b.try_into().expect("4 bytes"));
                let key = CountKey {
                    piece: word(&key[0..4]),
                    tid: word(&key[4..8]) as i32,
                    ip: u64::from_ne_bytes(key[8..16].try_into().expect("8 bytes")),
                };
                (key, sum_percpu(&value))
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The handler's counters, summed over CPUs.
    pub fn stats(&self) -> Result<HandlerStats, BpfError> {
        let read = |index: i32| -> Result<u64, BpfError> {
            Ok(self
                .stats
                .lookup(&(index as u32).to_ne_bytes())?
                .map_or(0, |v| sum_percpu(&v)))
        };
        Ok(HandlerStats {
            runs: read(STAT_RUNS)?,
            filtered: read(STAT_FILTERED)?,
            ring_full: read(STAT_RING_FULL)?,
            count_map_full: read(STAT_COUNT_MAP_FULL)?,
            unknown_addr: read(STAT_UNKNOWN_ADDR)?,
            read_failed: read(STAT_READ_FAILED)?,
        })
    }

    /// The kernel ids of the program and its maps.
    pub fn kernel_ids(&self) -> Result<KernelIds, BpfError> {
        let mut maps = vec![self.prev.id()?, self.stats.id()?];
        for map in [&self.ring_map, &self.counts, &self.addrs]
            .into_iter()
            .flatten()
        {
            maps.push(map.id()?);
        }
        Ok(KernelIds {
            prog: self.prog.id()?,
            maps,
        })
    }
}

fn sum_percpu(value: &[u8]) -> u64 {
    value
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwbp_core::compare::{IntType, Literal};

    fn spec(pieces: &[(u64, u8)], mode: HandlerMode) -> HandlerSpec {
        HandlerSpec::new(
            pieces
                .iter()
                .map(|&(a, l)| HandlerPiece::new(a, l))
                .collect(),
            mode,
        )
    }

    #[test]
    fn one_piece_emit_program_reads_as_expected() {
        let program = spec(&[(0x5555_0000_1010, 8)], HandlerMode::Emit { stack: false })
            .program()
            .unwrap();
        let expected = "   0: r6 = r1
   1: *(u32 *)(r10 -24) = 0
   2: r1 = map[stats] ll
   4: r2 = r10
   5: r2 += -24
   6: call bpf_map_lookup_elem#1
   7: if r0 == 0 goto run_counted
   8: r1 = *(u64 *)(r0 +0)
   9: r1 += 1
  10: *(u64 *)(r0 +0) = r1
run_counted:
  11: *(u32 *)(r10 -32) = 0
  12: r7 = *(u64 *)(r6 +176)
piece0:
  13: r1 = 0x555500001010 ll
  15: if r7 != r1 goto unknown_addr
  16: r8 = 0
  17: *(u64 *)(r10 -8) = 0
  18: r1 = r10
  19: r1 += -8
  20: r2 = 8
  21: r3 = r7
  22: call bpf_probe_read_user#112
  23: if r0 != 0 goto read_failed
  24: r9 = *(u64 *)(r10 -8)
  25: *(u32 *)(r10 -16) = 0
  26: r1 = map[prev] ll
  28: r2 = r10
  29: r2 += -16
  30: call bpf_map_lookup_elem#1
  31: if r0 == 0 goto unknown_addr
  32: r7 = r9
  33: r7 = atomic64_xchg((r0 +0), r7)
  34: goto emit
unknown_addr:
  35: *(u32 *)(r10 -24) = 4
  36: r1 = map[stats] ll
  38: r2 = r10
  39: r2 += -24
  40: call bpf_map_lookup_elem#1
  41: if r0 == 0 goto unknown_addr_counted
  42: r1 = *(u64 *)(r0 +0)
  43: r1 += 1
  44: *(u64 *)(r0 +0) = r1
unknown_addr_counted:
  45: r0 = 0
  46: exit
read_failed:
  47: *(u32 *)(r10 -24) = 5
  48: r1 = map[stats] ll
  50: r2 = r10
  51: r2 += -24
  52: call bpf_map_lookup_elem#1
  53: if r0 == 0 goto read_failed_counted
  54: r1 = *(u64 *)(r0 +0)
  55: r1 += 1
  56: *(u64 *)(r0 +0) = r1
read_failed_counted:
  57: *(u32 *)(r10 -32) = 2
  58: r7 = 0
  59: r9 = 0
  60: goto emit
emit:
  61: r1 = map[ring] ll
  63: r2 = 56
  64: r3 = 0
  65: call bpf_ringbuf_reserve#131
  66: if r0 == 0 goto ring_full
  67: *(u64 *)(r0 +24) = r7
  68: *(u64 *)(r0 +32) = r9
  69: *(u32 *)(r0 +40) = r8
  70: r7 = r0
  71: r1 = *(u64 *)(r6 +128)
  72: *(u64 *)(r7 +16) = r1
  73: r1 = *(u64 *)(r6 +136)
  74: r1 &= 3
  75: r2 = *(u32 *)(r10 -32)
  76: if r1 != 0 goto user_mode
  77: r2 |= 1
user_mode:
  78: *(u32 *)(r7 +48) = r2
  79: call bpf_ktime_get_ns#5
  80: *(u64 *)(r7 +0) = r0
  81: call bpf_get_current_pid_tgid#14
  82: *(u64 *)(r7 +8) = r0
  83: call bpf_get_smp_processor_id#8
  84: *(u32 *)(r7 +44) = r0
  85: *(u32 *)(r7 +52) = 0
  86: r1 = map[ring] ll
  88: r2 = 0
  89: call bpf_ringbuf_query#134
  90: r2 = 1
  91: if r0 < 16384 goto submit
  92: r1 = r0
  93: r1 -= 64
  94: if r1 >= 16384 goto submit
  95: r2 = 2
submit:
  96: r1 = r7
  97: call bpf_ringbuf_submit#132
  98: r0 = 0
  99: exit
ring_full:
 100: *(u32 *)(r10 -24) = 2
 101: r1 = map[stats] ll
 103: r2 = r10
 104: r2 += -24
 105: call bpf_map_lookup_elem#1
 106: if r0 == 0 goto ring_full_counted
 107: r1 = *(u64 *)(r0 +0)
 108: r1 += 1
 109: *(u64 *)(r0 +0) = r1
ring_full_counted:
 110: r0 = 0
 111: exit
";
        assert_eq!(program.to_string(), expected);
        assert_eq!(program.maps(), vec!["stats", "prev", "ring"]);
    }

    #[test]
    fn pieces_chain_by_address_with_their_own_width_and_reader() {
        let program = spec(
            &[(0x1000, 1), (0x2002, 2), (0xffff_ffff_8200_0000, 4)],
            HandlerMode::Emit { stack: true },
        )
        .program()
        .unwrap();
        let text = program.to_string();
        for needle in [
            "piece0:\n  13: r1 = 0x1000 ll\n  15: if r7 != r1 goto piece1\n  16: r8 = 0\n",
            "if r7 != r1 goto piece2",
            "if r7 != r1 goto unknown_addr",
            "r2 = 1\n",
            "r2 = 2\n",
            "r2 = 4\n",
            "call bpf_probe_read_kernel#113",
            // Header 64 + 32 kernel + 32 user frames.
            "r2 = 576\n",
            "r4 = 256\n",
            "call bpf_get_stack#67",
            "*(u32 *)(r7 +52) = r0",
            // The kernel stack only for a kernel-mode access, into its own slots.
            "r1 &= 1\n",
            "r2 += 64\n",
            "*(u32 *)(r7 +56) = r0",
            "*(u32 *)(r7 +56) = 0",
            "r2 += 320\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(text.matches("call bpf_get_stack#67").count(), 2);
        assert_eq!(text.matches("call bpf_probe_read_user#112").count(), 2);
    }

    #[test]
    fn filters_generate_width_aware_compares() {
        let resolve = |op, literal: &str, ty| {
            Some(IntCondition::resolve(
                op,
                Literal::parse(literal).unwrap(),
                ty,
            ))
        };
        let mut s = spec(&[(0x1000, 4)], HandlerMode::Emit { stack: false });
        s.filter = ValueFilter { changes_only: true };
        s.pieces[0].condition = resolve(CompareOp::Less, "0", IntType::signed(4));
        let text = s.program().unwrap().to_string();
        assert!(
            text.contains(
                "r7 = atomic64_xchg((r0 +0), r7)\n  34: if r7 == r9 goto filtered\n  35: r1 = r9\n  36: r1 <<= 32\n  37: r1 s>>= 32\n  38: if r1 s>= 0 goto filtered\n  39: goto emit\n"
            ),
            "{text}"
        );
        // 8-byte unsigned with a wide operand: loaded into r2, no shifts.
        let mut s = spec(&[(0x1000, 8)], HandlerMode::Count);
        s.pieces[0].condition = resolve(CompareOp::Greater, "0x100000000", IntType::unsigned(8));
        let text = s.program().unwrap().to_string();
        assert!(
            text.contains("r2 = 0x100000000 ll\n  36: if r9 <= r2 goto filtered\n"),
            "{text}"
        );
        // A mask.
        s.pieces[0].condition = resolve(CompareOp::AnyBit, "0x80", IntType::unsigned(8));
        let text = s.program().unwrap().to_string();
        assert!(
            text.contains("r1 = r9\n  35: r1 &= 128\n  36: if r1 == 0 goto filtered\n"),
            "{text}"
        );
        // An unsigned char promoted to int: zero-extended, compared signed, `<=`.
        let mut s = spec(&[(0x1000, 1)], HandlerMode::Count);
        s.pieces[0].condition = resolve(CompareOp::LessEqual, "-1", IntType::unsigned(1));
        let text = s.program().unwrap().to_string();
        assert!(text.contains("if r9 s> -1 goto filtered\n"), "{text}");
        // A signed char against an unsigned int constant: sign-extended, cut to 32 bits.
        s.pieces[0].condition = resolve(CompareOp::Equal, "0xffffffff", IntType::signed(1));
        let text = s.program().unwrap().to_string();
        assert!(
            text.contains("r1 <<= 56\n  36: r1 s>>= 56\n  37: r1 <<= 32\n  38: r1 >>= 32\n"),
            "{text}"
        );
    }

    #[test]
    fn a_known_stack_top_bounds_the_main_threads_copy_in_one_read() {
        let mut s = spec(&[(0x1000, 8)], HandlerMode::Emit { stack: true });
        s.user_stack_bytes = 8192;
        let without = s.program().unwrap().to_string();
        assert!(!without.contains("user_stack_general"), "{without}");
        s.main_stack_top = 0x7ffd_0000_0000;
        let text = s.program().unwrap().to_string();
        for needle in [
            "r2 >>= 32\n",
            "if r1 != r2 goto user_stack_general",
            "r8 = 0x7ffd00000000 ll\n",
            "if r3 >= r8 goto user_stack_general",
            "r8 -= r3\n",
            "if r8 > 8192 goto user_stack_general",
            "user_stack_general:\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // One more read than without the bound, taken only below the top.
        assert_eq!(
            text.matches("call bpf_probe_read_user#112").count(),
            without.matches("call bpf_probe_read_user#112").count() + 1
        );
    }

    #[test]
    fn a_string_piece_reads_its_string_at_the_trap_into_the_records_tail() {
        let mut s = spec(
            &[(0x1000, 8), (0x2000, 8)],
            HandlerMode::Emit { stack: false },
        );
        s.pieces[0] = s.pieces[0].with_string(PieceString::CString);
        s.string_chars = 6;
        let text = s.program().unwrap().to_string();
        // Header 56, then the result word and 8 buffer bytes (6 characters, 1 more, the NUL).
        for needle in [
            "piece0:\n  13: r1 = 0x1000 ll\n  15: if r7 != r1 goto piece1\n  16: r8 = 0\n  17: *(u32 *)(r10 -32) = 4\n",
            "r2 = 72\n",
            "r1 &= 4\n",
            "r1 += 64\n",
            "r2 = 8\n",
            "call bpf_probe_read_user_str#114",
            "*(u64 *)(r7 +56) = r0",
            "*(u64 *)(r7 +56) = 0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Piece 1 reads no string.
        assert_eq!(text.matches("(r10 -32) = 4\n").count(), 1, "{text}");
        let record = |read: i64, bytes: &[u8]| {
            let mut r = vec![0u8; 72];
            r[56..64].copy_from_slice(&read.to_le_bytes());
            r[64..64 + bytes.len()].copy_from_slice(bytes);
            HandlerRecord::parse_for(&s, &r).unwrap().string
        };
        let read = |text: &[u8], truncated| {
            Some(Ok(TrapString {
                bytes: text.to_vec(),
                truncated,
            }))
        };
        assert_eq!(record(6, b"alpha\0"), read(b"alpha", false));
        assert_eq!(record(7, b"doomed\0"), read(b"doomed", false));
        assert_eq!(record(8, b"scratch\0"), read(b"scratc", true));
        assert_eq!(record(-14, b""), Some(Err(-14)));
        assert_eq!(record(0, b""), None);
        // Strings only from 8-byte user pieces, up to a page.
        let mut bad = spec(&[(0x1000, 4)], HandlerMode::Emit { stack: false });
        bad.pieces[0] = bad.pieces[0].with_string(PieceString::CString);
        assert!(bad.program().unwrap_err().to_string().contains("8-byte"));
        s.string_chars = 0;
        assert!(s.program().unwrap_err().to_string().contains("1 to 4096"));
    }

    #[test]
    fn a_counted_string_reads_its_length_at_its_pointer_from_the_pieces_values() {
        let mut s = spec(
            &[(0x1000, 8), (0x1008, 8)],
            HandlerMode::Emit { stack: false },
        );
        let counted = PieceString::Counted {
            pointer: 0,
            length: 1,
        };
        s.pieces = s.pieces.iter().map(|p| p.with_string(counted)).collect();
        s.string_chars = 6;
        let text = s.program().unwrap().to_string();
        for needle in [
            // Slots initialized for the verifier, filled from prev[0] and prev[1] per piece.
            "*(u64 *)(r10 -64) = 0\n",
            "*(u64 *)(r10 -72) = 0\n",
            "*(u64 *)(r10 -64) = r1\n",
            "*(u64 *)(r10 -72) = r1\n",
            "*(u32 *)(r10 -32) = 8\n",
            // At most chars + 1 bytes, read with bpf_probe_read_user; result = bytes + 1.
            "r2 = *(u64 *)(r10 -72)\n",
            "if r2 <= 7 goto counted_length_ok",
            "r3 = *(u64 *)(r10 -64)\n",
            "r0 += 1\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert_eq!(text.matches("*(u32 *)(r10 -32) = 8\n").count(), 2, "{text}");
        s.pieces[0].string = Some(PieceString::Counted {
            pointer: 0,
            length: 2,
        });
        assert!(s.program().unwrap_err().to_string().contains("no piece"));
    }

    #[test]
    fn a_movable_piece_takes_its_address_from_the_addrs_map() {
        let mut s = spec(
            &[(0x1000, 8), (0x2000, 8)],
            HandlerMode::Emit { stack: false },
        );
        s.pieces[1] = s.pieces[1].movable();
        let text = s.program().unwrap().to_string();
        assert!(
            text.contains("r1 = map[addrs] ll\n"),
            "missing the lookup in\n{text}"
        );
        assert!(!text.contains("r1 = 0x2000 ll"), "{text}");
        assert!(text.contains("r1 = 0x1000 ll"), "{text}");
        assert_eq!(
            s.program().unwrap().maps(),
            vec!["stats", "prev", "addrs", "ring"]
        );
    }

    #[test]
    fn count_without_filters_skips_the_value_read() {
        let text = spec(&[(0x1000, 8)], HandlerMode::Count)
            .program()
            .unwrap()
            .to_string();
        assert!(!text.contains("probe_read"), "{text}");
        assert!(!text.contains("map[prev]"), "{text}");
        assert!(
            text.contains("count:\n  30: *(u32 *)(r10 -48) = r8\n"),
            "{text}"
        );
        assert!(text.contains("r4 = 1\n"), "{text}");
        assert!(text.contains("if r0 == -17 goto raced"), "{text}");
    }

    #[test]
    fn specs_the_kernel_would_refuse_are_refused_first() {
        let bad = |s: HandlerSpec| s.program().unwrap_err().to_string();
        assert!(bad(spec(&[], HandlerMode::Count)).contains("no pieces"));
        assert!(bad(spec(&[(0x1001, 2)], HandlerMode::Count)).contains("aligned"));
        assert!(bad(spec(&[(0x1000, 3)], HandlerMode::Count)).contains("1, 2, 4 or 8"));
        let mut s = spec(&[(0x1000, 1)], HandlerMode::Count);
        s.pieces[0].condition = Some(IntCondition::resolve(
            CompareOp::Less,
            Literal::parse("-129").unwrap(),
            IntType::signed(4),
        ));
        assert_eq!(
            bad(s),
            "invalid hit handler: piece 0: its condition compares a 4-byte value, the piece has 1"
        );
        let mut s = spec(&[(0x1000, 8)], HandlerMode::Emit { stack: false });
        s.ring_bytes = 5000;
        assert!(bad(s).contains("power of two"));
    }

    #[test]
    fn records_decode_from_bytes() {
        // A record with stacks: header, kernel-stack length, 32 kernel then 32 user slots.
        let mut bytes = vec![0u8; record_bytes(true, 0) as usize];
        bytes[0..8].copy_from_slice(&123_456_789u64.to_le_bytes());
        bytes[8..16].copy_from_slice(&((42u64 << 32) | 43).to_le_bytes());
        bytes[16..24].copy_from_slice(&0x40_1122u64.to_le_bytes());
        bytes[24..32].copy_from_slice(&7u64.to_le_bytes());
        bytes[32..40].copy_from_slice(&8u64.to_le_bytes());
        bytes[40..44].copy_from_slice(&2u32.to_le_bytes());
        bytes[44..48].copy_from_slice(&1u32.to_le_bytes());
        bytes[48..52].copy_from_slice(&1u32.to_le_bytes());
        bytes[52..56].copy_from_slice(&16u32.to_le_bytes());
        bytes[56..60].copy_from_slice(&8u32.to_le_bytes());
        bytes[64..72].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        bytes[320..328].copy_from_slice(&0xaaaau64.to_le_bytes());
        bytes[328..336].copy_from_slice(&0xbbbbu64.to_le_bytes());
        assert_eq!(
            HandlerRecord::parse(&bytes),
            Some(HandlerRecord {
                time_ns: 123_456_789,
                pid: 42,
                tid: 43,
                cpu: 1,
                ip: 0x40_1122,
                piece: 2,
                old: 7,
                new: 8,
                kernel_mode: true,
                value_unreadable: false,
                stack: vec![0xaaaa, 0xbbbb],
                kernel_stack: vec![0xffff_ffff_8100_0000],
                stack_error: None,
                user_stack: None,
                string: None,
            })
        );
        bytes[52..56].copy_from_slice(&(-14i32).to_le_bytes());
        bytes[48..52].copy_from_slice(&2u32.to_le_bytes());
        let r = HandlerRecord::parse(&bytes).unwrap();
        assert_eq!(
            (
                r.stack_error,
                r.stack.len(),
                r.value_unreadable,
                r.kernel_mode
            ),
            (Some(-14), 0, true, false)
        );
        // Without stacks: the header alone, no frames.
        let r = HandlerRecord::parse(&bytes[..56]).unwrap();
        assert!(r.stack.is_empty() && r.kernel_stack.is_empty());
        assert_eq!(HandlerRecord::parse(&bytes[..40]), None);
    }
}
