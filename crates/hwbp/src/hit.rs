//! [`Hit`]: one access to a watched location, as both watchers (perf events and stop mode)
//! deliver it: a typed [`WatchId`], the thread, the accessing instruction resolved to
//! `function+off (file:line)`, the member touched, values with where they came from, and the
//! callchain. [`Hit::to_json`] is hwbp's documented JSON line for it.

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_symbols::cache::CodeInfo;
use serde::Serialize;

use crate::plan::PlannedWatch;
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
    /// The value in its type, for a watch of a symbol or expression ([`PlannedWatch::value_type`]).
    pub typed: Option<TypedValue>,
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

    /// hwbp's JSON object for this hit (one line of `hwbp watch --json`). Fields, in order:
    /// `type` (`"hit"`), `time_ns`, `cpu` (absent in stop mode), `pid`, `tid`, `comm`,
    /// `watch` (the spec as written), `watch_id`, `address` (`0x...`), `field` (absent for a
    /// one-piece watch), `access`, `kernel`, `ip`, `instruction`, `function`, `module_offset`
    /// (`libc.so.6+0x27e66` when no symbol names the code; absent otherwise), `offset`, `file`,
    /// `line`, `value_after`, `value_before`, `exact`, `value_source` (`stopped`,
    /// `decoded-store`, `read-after`, `handler`; absent when no value is read), `callchain`
    /// (absent unless sampled). For a watch of a symbol or expression, the typed fields
    /// follow: `value_type` (the DWARF type's name, `null` when the symbol has no debug info),
    /// `old` and `new` (the whole value as the language prints it: `-1`, `115 's'`,
    /// `MODE_ON`, `(PERM_R | PERM_W)`, `0x4040a0 <nodes+16>`, `{a = 1, b = 2}`,
    /// `<unreadable>`), `changes` (for structs and arrays, each changed member as
    /// `{"member": "cfg.limits[2].max", "old": "3", "new": "7"}`), `bytes_before` and
    /// `bytes_after` (hex, lowest address first, for values wider than 8 bytes, whose raw
    /// integers are null), and for a value chain `moved_by` (the pointer whose write moved
    /// the watch) and `moved_to` (the value's new address, `null` while a pointer is NULL).
    pub fn to_json<'a>(&'a self, watch: &'a PlannedWatch) -> HitJson<'a> {
        let location = self.code.location.as_ref();
        HitJson {
            kind: "hit",
            time_ns: self.time_ns,
            cpu: self.cpu,
            pid: self.pid,
            tid: self.tid,
            comm: &self.comm,
            watch: &watch.label,
            watch_id: self.watch,
            address: Hex(watch.addr),
            field: self.member.as_deref(),
            access: self.access.letters(),
            kernel: self.kernel,
            ip: Hex(self.ip),
            instruction: self.code.instruction.map(Hex),
            function: self.code.function(),
            module_offset: self.code.module_offset.as_ref().map(ToString::to_string),
            offset: self.code.offset(),
            file: location.and_then(|l| l.file.as_deref()),
            line: location.and_then(|l| l.line),
            value_after: self.value.and_then(|v| v.new),
            value_before: self.value.and_then(|v| v.old),
            exact: self.is_exact(),
            value_source: self.value.map(|v| v.source.name()),
            callchain: self.callchain.iter().map(|f| &**f).collect(),
            typed: self.typed.as_ref().map(|t| TypedJson {
                value_type: t.value_type.as_deref(),
                old: t.old.as_deref(),
                new: t.new.as_deref(),
                changes: t
                    .changes
                    .iter()
                    .map(|c| ChangeJson {
                        member: &c.path,
                        old: &c.old,
                        new: &c.new,
                    })
                    .collect(),
                bytes_before: t.bytes_before.as_deref().map(hex),
                bytes_after: t.bytes_after.as_deref().map(hex),
                moved_by: t.moved_by.as_deref(),
                moved_to: t
                    .moved_by
                    .as_ref()
                    .map(|_| t.moved_to.map(|a| format!("{a:#x}"))),
            }),
        }
    }
}

/// An address as a JSON string `"0x..."`, formatted straight into the output (no allocation
/// per hit).
#[derive(Debug, Clone, Copy)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:#x}", self.0))
    }
}

/// The JSON form of a [`Hit`]; see [`Hit::to_json`].
#[derive(Debug, Serialize)]
pub struct HitJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<u32>,
    pid: i32,
    tid: i32,
    comm: &'a str,
    watch: &'a str,
    watch_id: WatchId,
    address: Hex,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    access: &'static str,
    kernel: bool,
    ip: Hex,
    instruction: Option<Hex>,
    function: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    module_offset: Option<String>,
    offset: Option<u64>,
    file: Option<&'a str>,
    line: Option<u32>,
    value_after: Option<u64>,
    value_before: Option<u64>,
    exact: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    callchain: Vec<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    typed: Option<TypedJson<'a>>,
}

/// The typed fields of a hit's JSON; see [`Hit::to_json`].
#[derive(Debug, Serialize)]
struct TypedJson<'a> {
    value_type: Option<&'a str>,
    old: Option<&'a str>,
    new: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changes: Vec<ChangeJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_to: Option<Option<String>>,
}

#[derive(Debug, Serialize)]
struct ChangeJson<'a> {
    member: &'a str,
    old: &'a str,
    new: &'a str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
