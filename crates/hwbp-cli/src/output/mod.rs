//! What `hwbp watch` and `hwbp stat` print: one [`HitReport`] per hit and one [`Summary`] at the
//! end, as text lines or as JSON objects (one per line, `"type"` first).
//!
//! The JSON field names are part of hwbp's interface: plain words, addresses as `0x` strings,
//! times in nanoseconds.

use serde::Serialize;
use std::io::Write;

/// One access to a watched location, as reported to the user.
#[derive(Debug, Clone, Serialize)]
pub struct HitReport {
    /// Always `"hit"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Nanoseconds since the watch was armed.
    pub time_ns: u64,
    /// The CPU the access ran on.
    pub cpu: u32,
    /// Process id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// The thread's command name.
    pub comm: String,
    /// The watch spec as the user wrote it.
    pub watch: String,
    /// The watched address (`0x...`).
    pub address: String,
    /// For a watch split into several pieces (a struct, an array, a long region): the field
    /// or element of the piece that was hit, from DWARF (`cfg.limits[2].max`; `a..b` when the
    /// piece spans several), else its byte offset (`+0x18`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The watch's access mode (`w`, `rw`, `r`, `x`).
    pub access: &'static str,
    /// True when the CPU was in kernel mode (e.g. `read(2)` filling a watched buffer).
    pub kernel: bool,
    /// The address the CPU reported (`0x...`): on x86 the instruction after the access.
    pub ip: String,
    /// The accessing instruction (`0x...`), when hwbp could find it.
    pub instruction: Option<String>,
    /// The function containing the accessing instruction.
    pub function: Option<String>,
    /// Offset of the accessing instruction in `function`.
    pub offset: Option<u64>,
    /// Source file of the accessing instruction.
    pub file: Option<String>,
    /// Source line of the accessing instruction.
    pub line: Option<u32>,
    /// The watched value read after the hit (it may have changed again since): read once per
    /// batch of hits drained together, so hits of one batch of one process share it.
    pub value_after: Option<u64>,
    /// The value before this hit, as last seen by hwbp (at arming or at the previous hit).
    pub value_before: Option<u64>,
    /// The callchain, innermost first, each frame symbolized where possible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callchain: Vec<String>,
}

impl HitReport {
    /// The location of the accessing instruction as `function+0xoff (file:line)`.
    pub fn location(&self) -> String {
        let mut out = match (&self.function, self.offset) {
            (Some(f), Some(off)) => format!("{f}+{off:#x}"),
            (Some(f), None) => f.clone(),
            _ => self.instruction.clone().unwrap_or_else(|| self.ip.clone()),
        };
        if let (Some(file), Some(line)) = (&self.file, self.line) {
            out.push_str(&format!(" ({file}:{line})"));
        }
        out
    }

    /// Writes the hit as one human-readable line.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let secs = self.time_ns as f64 / 1e9;
        let mode = if self.kernel { " [kernel]" } else { "" };
        let field = match &self.field {
            Some(field) => format!(" field {field}"),
            None => String::new(),
        };
        write!(
            out,
            "{secs:12.6} [{:03}] {}/{} {:<15} {} {}{field}{mode} by {}",
            self.cpu,
            self.pid,
            self.tid,
            self.comm,
            self.access,
            self.watch,
            self.location()
        )?;
        match (self.value_before, self.value_after) {
            (Some(before), Some(after)) => write!(out, "  value {before} -> {after} (read after)")?,
            (None, Some(after)) => write!(out, "  value {after} (read after)")?,
            _ => {}
        }
        writeln!(out)?;
        for frame in &self.callchain {
            writeln!(out, "{:16}{frame}", "")?;
        }
        Ok(())
    }
}

/// Per-watchpoint totals at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct WatchTotals {
    /// The watch spec as the user wrote it.
    pub watch: String,
    /// The watched address (`0x...`).
    pub address: String,
    /// Bytes watched.
    pub len: u64,
    /// Accesses counted: exact from the event counters for pieces that kept a register; for
    /// pieces that rotated, the hits seen while armed (see `estimate` for the whole time).
    pub hits: u64,
    /// Hits hwbp received and reported.
    pub reported: u64,
    /// Hits counted by the kernel but never received (ring buffer overrun), for the pieces
    /// that kept a register (a rotating register's count mixes pieces).
    pub lost: u64,
    /// `pinned` (always on a debug register, `hits` exact), `flexible` (took turns on the
    /// registers left over, `hits` are the hits seen while armed) or `mixed` (a region whose
    /// first pieces are pinned and the rest flexible).
    pub placement: &'static str,
    /// Flexible and mixed watches: hits seen while the flexible pieces were armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hits_seen: Option<u64>,
    /// Flexible and mixed watches: time the flexible pieces were armed over the time they
    /// were watched (perf's `time_running / time_enabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Flexible and mixed watches: the estimated number of accesses, `hits_seen / coverage`
    /// per flexible piece (perf's scaling of multiplexed counters) plus the exact counts of
    /// pinned pieces; absent if a flexible piece never had a turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<u64>,
}

impl WatchTotals {
    /// The flexible part in words: `flexible: 1234 hits seen, armed 11.1% of the time,
    /// estimate 11106`; empty for pinned watches.
    pub fn flexible_text(&self) -> String {
        let (Some(seen), Some(coverage)) = (self.hits_seen, self.coverage) else {
            return String::new();
        };
        let estimate = match self.estimate {
            Some(estimate) => estimate.to_string(),
            None => "none (never armed)".to_string(),
        };
        format!(
            "{}: {seen} hits seen, armed {:.1}% of the time, estimate {estimate}",
            self.placement,
            coverage * 100.0
        )
    }
}

/// The end-of-run summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always `"summary"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// One entry per watchpoint, in the order given.
    pub watchpoints: Vec<WatchTotals>,
    /// Samples the kernel dropped (PERF_RECORD_LOST), over all watchpoints.
    pub lost_records: u64,
    /// Times the kernel throttled sampling.
    pub throttled: u64,
    /// Seconds the watch was armed.
    pub duration_s: f64,
    /// Why the run ended.
    pub ended_by: String,
}

impl Summary {
    /// Writes the summary as a small table.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "\nsummary after {:.3}s ({}); per watchpoint:",
            self.duration_s, self.ended_by
        )?;
        writeln!(
            out,
            "  {:>10} {:>10} {:>8}  watch",
            "hits", "reported", "lost"
        )?;
        for w in &self.watchpoints {
            writeln!(
                out,
                "  {:>10} {:>10} {:>8}  {} ({}, {} bytes)",
                w.hits, w.reported, w.lost, w.watch, w.address, w.len
            )?;
            let flexible = w.flexible_text();
            if !flexible.is_empty() {
                writeln!(out, "  {:>30}  {flexible}", "")?;
            }
        }
        if self.lost_records > 0 || self.throttled > 0 {
            writeln!(
                out,
                "  the kernel dropped {} samples and throttled {} times: use a larger --ring-pages",
                self.lost_records, self.throttled
            )?;
        }
        Ok(())
    }
}

/// Writes one value as a JSON line.
pub fn write_json_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
