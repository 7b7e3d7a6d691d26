//! [`Hit`]: one access to a watched location, as both watchers (perf events and stop mode)
//! deliver it: a typed [`WatchId`], the thread, the accessing instruction resolved to
//! `function+off (file:line)`, the member touched, values with where they came from, and the
//! callchain. Plain data: `crate::hit_json` writes it as hwbp's documented JSON line
//! ([`Hit::write_json`]).

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_symbols::cache::CodeInfo;
use serde::Serialize;

use crate::typed::TypedValue;

/// A watch of a plan: its index in the order the watches were given. Two identical specs are
/// two watches with two ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WatchId(pub usize);

impl WatchId {
    /// The index in [`crate::WatchPlan::watches`].
    pub fn index(self) -> usize {
        self.0
    }
}

/// Where a hit's value came from, which says whether it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueSource {
    /// Read while the accessing thread was stopped at the hit, and no other thread could
    /// have written in between: exact.
    Stopped,
    /// Computed from the registers at the trap by decoding the store that made the access
    /// (a `mov` from a register or an immediate): exact even under racing threads.
    DecodedStore,
    /// Read from memory after the hit while the target ran on: a later write may already
    /// have changed it.
    ReadAfter,
    /// Read in the kernel by hwbp's BPF hit handler in the accessing thread, right after the
    /// access: exact.
    Handler,
}

impl ValueSource {
    /// True when the value is the one the access left.
    pub fn is_exact(self) -> bool {
        !matches!(self, ValueSource::ReadAfter)
    }

    /// The JSON name (`stopped`, `decoded-store`, `read-after`, `handler`).
    pub fn name(self) -> &'static str {
        match self {
            ValueSource::Stopped => "stopped",
            ValueSource::DecodedStore => "decoded-store",
            ValueSource::ReadAfter => "read-after",
            ValueSource::Handler => "handler",
        }
    }
}

/// The watched value around a hit: raw integers of the watch's (or member's) size, up to 8
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitValue {
    /// The value before the access, as last seen by hwbp (at arming or at the previous hit).
    pub old: Option<u64>,
    /// The value after the access.
    pub new: Option<u64>,
    /// Where `new` came from.
    pub source: ValueSource,
}

/// One access to a watched location.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The watch that fired.
    pub watch: WatchId,
    /// Nanoseconds since the watch was armed.
    pub time_ns: u64,
    /// The CPU the access ran on (perf mode; stop mode does not learn it).
    pub cpu: Option<u32>,
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The thread's name at the time of the hit.
    pub comm: Arc<str>,
    /// The watch's access mode.
    pub access: Access,
    /// The CPU was in kernel mode (e.g. `read(2)` filling a watched buffer).
    pub kernel: bool,
    /// The address the CPU reported: on x86 the instruction after a data access.
    pub ip: u64,
    /// The accessing instruction, resolved where hwbp could.
    pub code: Arc<CodeInfo>,
    /// For a watch over several members or pieces: the member touched (`cfg.limits[2].max`,
    /// `a..b` when a piece spans several), else the byte offset (`+0x18`).
    pub member: Option<Arc<str>>,
    /// The value, when hwbp reads values for this watch.
    pub value: Option<HitValue>,
    /// The callchain, innermost first, each frame symbolized where possible.
    pub callchain: Vec<Arc<str>>,
    /// The value in its type, for a watch of a symbol or expression
    /// ([`PlannedWatch::value_type`](crate::plan::PlannedWatch::value_type)).
    pub typed: Option<TypedValue>,
    /// For a watch of a local variable: the frame whose copy was accessed.
    pub frame: Option<FrameRef>,
}

/// One frame of a function whose local is watched ([`crate::local`]): the watch instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    /// The instance number: 1 for the first frame armed, counting every thread's.
    pub instance: u64,
    /// The frame's canonical frame address (the caller's `rsp` before the call).
    pub cfa: u64,
    /// Where the local is in this frame.
    pub address: u64,
}

impl Hit {
    /// The accessing instruction as `function+0xoff (file:line)`, else `module+0xoff` in a
    /// stripped library, else its address, else the reported IP.
    pub fn location(&self) -> String {
        let mut out = match (self.code.function(), self.code.offset()) {
            (Some(f), Some(off)) => format!("{f}+{off:#x}"),
            (Some(f), None) => f.to_string(),
            _ => match &self.code.module_offset {
                Some(offset) => offset.to_string(),
                None => format!("{:#x}", self.code.instruction.unwrap_or(self.ip)),
            },
        };
        if let Some(loc) = &self.code.location {
            if let (Some(file), Some(line)) = (&loc.file, loc.line) {
                out.push_str(&format!(" ({file}:{line})"));
            }
        }
        out
    }

    /// True when the value is known exactly ([`ValueSource::is_exact`]).
    pub fn is_exact(&self) -> bool {
        self.value.is_some_and(|v| v.source.is_exact())
    }
}
