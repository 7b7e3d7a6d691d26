//! The records of a recording file, as Rust types: the [`Header`] first, then [`Hit`]s and
//! [`ThreadName`]s, then one [`Summary`]. Each type keeps the fields it does not know in
//! `extra`, so a file written by a newer hwbp of the same major version reads (and re-writes)
//! without loss.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The value of the header's `"format"` field.
pub const FORMAT_NAME: &str = "hwbp-recording";

/// The major version this hwbp writes and reads. Fields are only ever added within a major
/// version; a reader refuses a file of a newer major version.
pub const FORMAT_VERSION: u32 = 1;

/// The first record: what was watched, where, by which hwbp and command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format's major version ([`FORMAT_VERSION`] when written by this hwbp).
    pub version: u32,
    /// The version of hwbp that wrote the file.
    pub hwbp_version: String,
    /// hwbp's command line, program name first.
    pub command_line: Vec<String>,
    /// When the recording started, nanoseconds since the Unix epoch (hit times are relative to
    /// when the watch was armed).
    pub started_unix_ns: u64,
    /// `"perf"` (hits from perf events, values read after) or `"stop"` (ptrace stop mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// What was watched.
    pub target: Target,
    /// The watches, in the order given; hits name theirs by `spec` (their `"watch"` field).
    pub watches: Vec<WatchInfo>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Header {
    /// A header for a recording starting now, written by this hwbp.
    pub fn new(command_line: Vec<String>, target: Target, watches: Vec<WatchInfo>) -> Header {
        let started_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Header {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            hwbp_version: env!("CARGO_PKG_VERSION").to_string(),
            command_line,
            started_unix_ns,
            mode: None,
            target,
            watches,
            extra: Map::new(),
        }
    }

    /// The watch a hit names by its `"watch"` field.
    pub fn watch(&self, spec: &str) -> Option<&WatchInfo> {
        self.watches.iter().find(|w| w.spec == spec)
    }
}

/// What the recording watched: a command hwbp started, a process, a thread or CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `"command"`, `"process"`, `"thread"` or `"cpus"`.
    pub kind: String,
    /// The process id (of the command, once started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The thread id, for `"thread"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i32>,
    /// The command and its arguments, for `"command"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The CPU list as given (`"0,2-3"`, or `"all"`), for `"cpus"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// The executable's path, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One watch as resolved when the recording started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchInfo {
    /// Position in the header's list, from 0.
    pub id: u32,
    /// The spec as the user wrote it; hits carry it as `"watch"`.
    pub spec: String,
    /// The resolved address (`0x...`).
    pub address: String,
    /// Bytes watched.
    pub len: u64,
    /// `w`, `rw`, `r` or `x`.
    pub access: String,
    /// For a struct or array: its members from DWARF, which hits name as `"field"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One member of a watched struct or array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's path, as hits name it (`cfg.limits[2].max`).
    pub name: String,
    /// Byte offset from the watch's address.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// One access: the object `hwbp watch --json` prints per hit, `"type"` aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Nanoseconds since the watch was armed.
    pub time_ns: u64,
    /// The CPU the access ran on (absent in stop mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u32>,
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The thread's command name.
    #[serde(default)]
    pub comm: String,
    /// The watch spec as the user wrote it (a [`WatchInfo::spec`]).
    pub watch: String,
    /// The watched address (`0x...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The member of a struct or array watch that was hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The watch's access mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// True when the CPU was in kernel mode.
    #[serde(default)]
    pub kernel: bool,
    /// The address the CPU reported (`0x...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The accessing instruction (`0x...`).
    #[serde(default)]
    pub instruction: Option<String>,
    /// The function containing the accessing instruction.
    #[serde(default)]
    pub function: Option<String>,
    /// `libc.so.6+0x27e66` for code no symbol names (a stripped library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_offset: Option<String>,
    /// Offset of the accessing instruction in `function`.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Source file of the accessing instruction.
    #[serde(default)]
    pub file: Option<String>,
    /// Source line of the accessing instruction.
    #[serde(default)]
    pub line: Option<u32>,
    /// The value after the hit.
    #[serde(default)]
    pub value_after: Option<u64>,
    /// The value before the hit.
    #[serde(default)]
    pub value_before: Option<u64>,
    /// True when both values are exact (stop mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// Where the value came from: `stopped`, `decoded-store`, `read-after` or `handler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_source: Option<String>,
    /// The callchain, innermost first (`0xADDR function+0xOFF (file:line)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callchain: Vec<String>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Hit {
    /// The writer as `hwbp stat` names it: `function (file:line)`, else the function, else
    /// `module+0xoff`, else the instruction or ip address; ` [kernel]` appended for kernel-mode accesses.
    pub fn writer(&self) -> String {
        let name = match (&self.function, &self.file, self.line) {
            (Some(f), Some(file), Some(line)) => format!("{f} ({file}:{line})"),
            (Some(f), _, _) => f.clone(),
            _ => self.address_text(),
        };
        if self.kernel {
            format!("{name} [kernel]")
        } else {
            name
        }
    }

    /// The function, else `module+0xoff`, else the instruction or ip address.
    pub fn function_or_address(&self) -> String {
        self.function.clone().unwrap_or_else(|| self.address_text())
    }

    /// `file:line`, when both are known.
    pub fn source_line(&self) -> Option<String> {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => Some(format!("{file}:{line}")),
            _ => None,
        }
    }

    /// The thread as `hwbp stat` names it: `tid (comm)`.
    pub fn thread(&self) -> String {
        format!("{} ({})", self.tid, self.comm)
    }

    /// True when the hit changed the value (both values known and different).
    pub fn changed(&self) -> bool {
        matches!((self.value_before, self.value_after), (Some(b), Some(a)) if a != b)
    }

    fn address_text(&self) -> String {
        self.module_offset
            .clone()
            .or_else(|| self.instruction.clone())
            .or_else(|| self.ip.clone())
            .unwrap_or_else(|| "[unknown]".to_string())
    }
}

/// A thread's name, recorded once per thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadName {
    /// Thread id.
    pub tid: i32,
    /// Process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The thread's name (`comm`).
    pub name: String,
}

/// Per-watchpoint totals as a recording holds them: one entry of the summary record's
/// `watchpoints`, read back tolerantly (text placement, unknown fields kept), unlike the live
/// run's [`crate::summary::WatchTotals`] that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTotals {
    /// The watch spec.
    pub watch: String,
    /// The watched address (`0x...`).
    pub address: String,
    /// Bytes watched.
    pub len: u64,
    /// Accesses counted (exact for pinned watches).
    pub hits: u64,
    /// Hits received and reported (the hit records).
    pub reported: u64,
    /// Hits counted but never received (ring-buffer overrun).
    pub lost: u64,
    /// `pinned`, `flexible` or `mixed`.
    pub placement: String,
    /// Flexible watches: hits seen while armed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits_seen: Option<u64>,
    /// Flexible watches: time armed over time watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Flexible watches: the estimated number of accesses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<u64>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RecordedTotals {
    /// The flexible part in words, as `hwbp stat` prints it; empty for pinned watches.
    pub fn flexible_text(&self) -> String {
        crate::summary::flexible_text(
            &self.placement,
            self.hits_seen,
            self.coverage,
            self.estimate,
        )
    }
}

/// The last record: the object `hwbp watch --json` prints at the end, `"type"` aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// One entry per watchpoint, in the order given.
    pub watchpoints: Vec<RecordedTotals>,
    /// Samples the kernel dropped.
    #[serde(default)]
    pub lost_records: u64,
    /// Times the kernel throttled sampling.
    #[serde(default)]
    pub throttled: u64,
    /// Seconds the watch was armed.
    pub duration_s: f64,
    /// Why the run ended.
    pub ended_by: String,
    /// What became of the command hwbp launched (absent for attached targets and in
    /// recordings from before hwbp reported it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<crate::summary::CommandFate>,
    /// Fields this hwbp does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One record after the header.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// `"type": "hit"`.
    Hit(Box<Hit>),
    /// `"type": "thread"`.
    Thread(ThreadName),
    /// `"type": "summary"`.
    Summary(Summary),
    /// A record type this hwbp does not know (written by a newer minor revision): kept as is.
    Other(Value),
}
