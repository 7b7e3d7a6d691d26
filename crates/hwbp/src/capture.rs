//! What every engine shares to turn a trap into a hit and a run's counts into totals: the
//! code reader the symbol cache reads a traced process with, the trapping store decoded from
//! the code (`hwbp_symbols::store`: the value a plain `mov` wrote, from the registers at the
//! trap), the stopped thread's value, the marker that ends a callchain whose unwinding
//! stopped, and a pinned watch's exact totals. Below the engines (perf, stop, locals, trees),
//! above the plan.

use std::sync::Arc;

use hwbp_linux::memory;
use hwbp_symbols::cache::SymbolCache;
use hwbp_symbols::store::{decode_store, DecodedStore};

use crate::hit::ValueSource;
use crate::plan::PlannedWatch;
use crate::summary::{Placement, WatchTotals};

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

/// The value of `len` bytes at `addr` after a hit of a stopped thread with `registers`: the
/// decoded store's when it wrote them, else read now (exact with one thread, read-after with
/// several).
pub(crate) fn stopped_value(
    store: Option<&DecodedStore>,
    registers: &[u64; 16],
    pid: i32,
    (addr, len): (u64, u64),
    single_thread: bool,
) -> (Option<u64>, ValueSource) {
    match store.and_then(|st| st.value_at(registers, addr, len)) {
        Some(v) => (Some(v), ValueSource::DecodedStore),
        None => (
            memory::read_value(pid, addr, len as usize).ok(),
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
