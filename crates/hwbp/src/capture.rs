//! What every engine shares to turn a trap into a hit and a run's counts into totals: the
//! one place a [`Hit`] is made ([`hit`], from a [`Trap`]), the accessing code symbolized or
//! not as [`WatchOptions::symbolize`] says ([`code_at`]), the code reader the symbol cache
//! reads a traced process with, the trapping store decoded from the code once per process and
//! IP ([`DecodedStores`]; `hwbp_symbols::store`: the value a plain `mov` wrote, from the
//! registers at the trap), the stopped thread's value, the marker that ends a callchain whose
//! unwinding stopped, and the exact totals of watches whose pieces kept their registers
//! ([`pinned_totals`]; rotated pieces' totals are `crate::rotation`'s). Below the engines
//! (perf, stop, locals, trees), above the plan.

use std::collections::HashMap;
use std::sync::Arc;

use hwbp_linux::memory;
use hwbp_symbols::cache::{CodeInfo, SymbolCache};
use hwbp_symbols::store::{decode_store, DecodedStore};

use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::options::WatchOptions;
use crate::plan::PlannedWatch;
use crate::summary::{Placement, WatchTotals};

/// Where and when an access trapped, as an engine saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trap {
    /// Nanoseconds since the watch was armed.
    pub(crate) time_ns: u64,
    /// The CPU (perf mode; a stopped thread has none).
    pub(crate) cpu: Option<u32>,
    pub(crate) pid: i32,
    pub(crate) tid: i32,
    /// The access was made in kernel mode.
    pub(crate) kernel: bool,
    /// The IP the trap reported (the instruction after a data access).
    pub(crate) ip: u64,
}

impl Trap {
    /// A trap of a thread stopped by ptrace (stop mode, a local's frame): user mode, no CPU.
    pub(crate) fn stopped(time_ns: u64, pid: i32, tid: i32, ip: u64) -> Trap {
        Trap {
            time_ns,
            cpu: None,
            pid,
            tid,
            kernel: false,
            ip,
        }
    }
}

/// The hit of `watch` at `trap`, with what the engine captured of it: the one place a [`Hit`]
/// is made. Its typed value and a local's frame are the engine's to add.
pub(crate) fn hit(
    watch: &PlannedWatch,
    trap: Trap,
    comm: Arc<str>,
    code: Arc<CodeInfo>,
    member: Option<Arc<str>>,
    value: Option<HitValue>,
    callchain: Vec<Arc<str>>,
) -> Hit {
    Hit {
        watch: watch.id,
        time_ns: trap.time_ns,
        cpu: trap.cpu,
        pid: trap.pid,
        tid: trap.tid,
        comm,
        access: watch.access,
        kernel: trap.kernel,
        ip: trap.ip,
        code,
        member,
        value,
        callchain,
        typed: None,
        frame: None,
    }
}

/// The code at `ip` of process `pid`, symbolized when `opts.symbolize` (else empty: the hit
/// names its address only).
pub(crate) fn code_at(
    cache: &mut SymbolCache,
    opts: &WatchOptions,
    pid: i32,
    ip: u64,
    kernel: bool,
    execute: bool,
) -> Arc<CodeInfo> {
    if opts.symbolize {
        cache.code(pid, ip, kernel, execute)
    } else {
        Arc::new(CodeInfo::default())
    }
}

/// A stopped thread's callchain: the accessing instruction (`code` at `ip`), then the frames
/// of the return addresses `frames` the unwinder found, and the marker when unwinding stopped
/// early. Stop mode and the locals' tracer both build it here.
pub(crate) fn stopped_callchain(
    cache: &mut SymbolCache,
    pid: i32,
    (ip, code): (u64, &CodeInfo),
    frames: &[u64],
    unwind_stopped: Option<&str>,
) -> Vec<Arc<str>> {
    let mut callchain = Vec::with_capacity(frames.len() + 1);
    callchain.push(match &code.location {
        Some(loc) => format!("{:#x} {loc}", code.instruction.unwrap_or(ip)).into(),
        None => match &code.module_offset {
            Some(offset) => format!("{ip:#x} {offset}").into(),
            None => format!("{ip:#x}").into(),
        },
    });
    for &addr in frames {
        cache.push_frames(pid, addr, false, true, &mut callchain);
    }
    callchain.extend(unwind_stopped.map(unwind_marker));
    callchain
}

/// The trapping stores of a run, each decoded once per process and IP ([`decode_at`]).
#[derive(Debug, Default)]
pub(crate) struct DecodedStores(HashMap<(i32, u64), Option<DecodedStore>>);

impl DecodedStores {
    /// The store that trapped at `ip` in process `pid`, when it is one the decoder knows.
    pub(crate) fn at(
        &mut self,
        cache: &mut SymbolCache,
        pid: i32,
        ip: u64,
    ) -> Option<DecodedStore> {
        *self
            .0
            .entry((pid, ip))
            .or_insert_with(|| decode_at(cache, pid, ip))
    }
}

/// The exact totals of each of `watches` in a run whose pieces kept their registers
/// throughout (stop mode): a watch's hits and reported hits are the sums over its pieces
/// (`owners[i]` is piece `i`'s watch; `hits[i]`, `reported[i]` its counts).
pub(crate) fn pinned_totals(
    watches: &[PlannedWatch],
    owners: &[WatchId],
    hits: &[u64],
    reported: &[u64],
) -> Vec<WatchTotals> {
    watches
        .iter()
        .map(|w| {
            let mine = owners
                .iter()
                .enumerate()
                .filter(|(_, owner)| **owner == w.id);
            let (h, r) = mine.fold((0, 0), |(h, r), (i, _)| (h + hits[i], r + reported[i]));
            WatchTotals::exact(w, format!("{:#x}", w.addr), w.len, h, r)
        })
        .collect()
}

/// Appends the frames of one callchain address; a frame-pointer walk's `0` (a return address
/// read from a frame that was no frame record) ends the chain with a marker instead, and
/// returns false.
pub(crate) fn push_frame(
    cache: &mut SymbolCache,
    pid: i32,
    addr: u64,
    kernel: bool,
    after: bool,
    out: &mut Vec<Arc<str>>,
) -> bool {
    if addr == 0 {
        out.push(unwind_marker(
            "no frame record (code without frame pointers)",
        ));
        return false;
    }
    cache.push_frames(pid, addr, kernel, after, out);
    true
}

/// The frame that ends a chain whose unwinding stopped before the outermost frame.
pub(crate) fn unwind_marker(why: &str) -> Arc<str> {
    format!("[unwinding stopped: {why}]").into()
}

/// Reads `len` bytes of process `pid` for the symbol cache.
pub(crate) fn code_reader() -> hwbp_symbols::cache::CodeReader {
    Box::new(|pid, addr, len| {
        let mut buf = vec![0u8; len];
        memory::read_memory(pid, addr, &mut buf).ok().map(|_| buf)
    })
}

/// The store that trapped at `ip` (the instruction after it), decoded from the code.
pub(crate) fn decode_at(cache: &mut SymbolCache, pid: i32, ip: u64) -> Option<DecodedStore> {
    cache
        .code(pid, ip, false, false)
        .instruction
        .and_then(|start| {
            let bytes = cache.read_code(pid, start, usize::try_from(ip - start).ok()?)?;
            decode_store(start, &bytes)
        })
}

/// The value of `len` bytes at `addr` after a hit of a stopped thread: the decoded store's
/// when it wrote them (`store`, with the thread's registers), else `read` now (exact with one
/// thread, read-after with several). Stop mode and the locals' tracer both take values here.
pub(crate) fn stopped_value(
    store: Option<(&DecodedStore, &[u64; 16])>,
    (addr, len): (u64, u64),
    single_thread: bool,
    read: impl FnOnce(u64, u64) -> Option<u64>,
) -> (Option<u64>, ValueSource) {
    match store.and_then(|(st, registers)| st.value_at(registers, addr, len)) {
        Some(v) => (Some(v), ValueSource::DecodedStore),
        None => (
            read(addr, len),
            if single_thread {
                ValueSource::Stopped
            } else {
                ValueSource::ReadAfter
            },
        ),
    }
}

impl WatchTotals {
    /// The totals of a watch whose pieces kept their registers the whole run (stop mode, a
    /// local's frames, a watch that never armed): `hits` counted, `reported` of them, exact.
    pub fn exact(
        watch: &PlannedWatch,
        address: String,
        len: u64,
        hits: u64,
        reported: u64,
    ) -> Self {
        WatchTotals {
            id: watch.id,
            watch: watch.label.to_string(),
            address,
            len,
            hits,
            reported,
            lost: 0,
            placement: Placement::Pinned,
            hits_seen: None,
            coverage: None,
            estimate: None,
            lower_bound: false,
            never_armed: Vec::new(),
            never_armed_reason: None,
        }
    }
}
