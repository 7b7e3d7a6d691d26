//! What `hwbp report` computes from a [`Recording`]: the tables `hwbp stat` prints (per watch,
//! per member, per thread, per writing function and line), the timeline of changes, folded
//! stacks for flame graphs, all under one [`Filter`].

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{Hit, Recording};

/// Which hits a report looks at. Empty: all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only these watches (by spec, or by id as a number); empty: all.
    pub watches: Vec<String>,
    /// Only this thread.
    pub tid: Option<i32>,
    /// Only hits whose function (or `file:line`, or the writer as `hwbp stat` names it)
    /// contains this text.
    pub function: Option<String>,
    /// Only hits at or after this many seconds since the watch was armed.
    pub from_s: Option<f64>,
    /// Only hits before this many seconds since the watch was armed.
    pub to_s: Option<f64>,
}

impl Filter {
    /// True when the filter keeps every hit.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// True when `hit` passes; `watch_id` is the id of its watch, if the header has it.
    pub fn matches(&self, hit: &Hit, watch_id: Option<u32>) -> bool {
        if !self.keeps(&hit.watch, watch_id, hit.tid, hit.time_ns) {
            return false;
        }
        if let Some(text) = &self.function {
            let in_function = hit.function.as_deref().is_some_and(|f| f.contains(text));
            if !in_function && !hit.writer().contains(text.as_str()) {
                return false;
            }
        }
        true
    }

    /// The watch, thread and time range tests (a hit's, or a frame end's).
    fn keeps(&self, watch: &str, watch_id: Option<u32>, tid: i32, time_ns: u64) -> bool {
        if !self.watches.is_empty()
            && !self
                .watches
                .iter()
                .any(|w| *w == watch || watch_id.is_some_and(|id| w.parse::<u32>() == Ok(id)))
        {
            return false;
        }
        if self.tid.is_some_and(|want| want != tid) {
            return false;
        }
        let secs = time_ns as f64 / 1e9;
        if self.from_s.is_some_and(|from| secs < from) {
            return false;
        }
        if self.to_s.is_some_and(|to| secs >= to) {
            return false;
        }
        true
    }

    /// The filter as command-line options, e.g. `--tid 42 --from 1.5`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for w in &self.watches {
            parts.push(format!("--watch {w}"));
        }
        if let Some(tid) = self.tid {
            parts.push(format!("--tid {tid}"));
        }
        if let Some(f) = &self.function {
            parts.push(format!("--function {f}"));
        }
        if let Some(from) = self.from_s {
            parts.push(format!("--from {from}"));
        }
        if let Some(to) = self.to_s {
            parts.push(format!("--to {to}"));
        }
        parts.join(" ")
    }
}

/// The hits of `recording` that pass `filter`, in file order.
pub fn filtered<'a>(recording: &'a Recording, filter: &'a Filter) -> impl Iterator<Item = &'a Hit> {
    recording.hits.iter().filter(move |hit| {
        let id = recording.header.watch(&hit.watch).map(|w| w.id);
        filter.matches(hit, id)
    })
}

/// One watch's numbers: the fields of `hwbp stat --json`'s watchpoints, plus `members` and
/// `changes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchReport {
    /// The watch spec.
    pub watch: String,
    /// The watched address (`0x...`).
    pub address: String,
    /// Bytes watched.
    pub len: u64,
    /// Accesses: the summary's count (exact for pinned watches) when nothing is filtered out
    /// and the summary is there; else the recorded hits that pass the filter.
    pub hits: u64,
    /// Recorded hits that pass the filter.
    pub sampled: u64,
    /// Hits counted but not recorded (ring-buffer overrun), from the summary.
    pub lost: u64,
    /// `pinned`, `flexible`, `mixed`, or `unknown` (no summary).
    pub placement: String,
    /// Flexible watches: hits seen while armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hits_seen: Option<u64>,
    /// Flexible watches: time armed over time watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Flexible watches: the estimated number of accesses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<u64>,
    /// Struct and array watches: `field` → recorded hits.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub members: BTreeMap<String, u64>,
    /// `tid (comm)` → recorded hits.
    pub threads: BTreeMap<String, u64>,
    /// `function (file:line)` (or the instruction address) → recorded hits.
    pub functions: BTreeMap<String, u64>,
    /// Recorded hits that changed the value.
    pub changes: u64,
    /// Members never armed (the count is then a lower bound), from the summary.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never_armed: Vec<String>,
    /// Why they were never armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_armed_reason: Option<String>,
}

impl WatchReport {
    /// A watch with nothing counted yet (placement `unknown` until a summary says).
    pub fn empty(watch: String, address: String, len: u64) -> WatchReport {
        WatchReport {
            watch,
            address,
            len,
            hits: 0,
            sampled: 0,
            lost: 0,
            placement: "unknown".into(),
            hits_seen: None,
            coverage: None,
            estimate: None,
            members: BTreeMap::new(),
            threads: BTreeMap::new(),
            functions: BTreeMap::new(),
            changes: 0,
            never_armed: Vec::new(),
            never_armed_reason: None,
        }
    }

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

/// A report: `hwbp report --json` prints it as one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Always `"report"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The recording.
    pub file: String,
    /// Seconds the watch was armed (from the summary; without one, the last hit's time).
    pub duration_s: f64,
    /// Why the run ended (from the summary; without one, how the file was cut).
    pub ended_by: String,
    /// How the file was cut (`cut after N hits (...)`), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<String>,
    /// The filter as options, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Per watch, in the header's order (then watches only hits name).
    pub watchpoints: Vec<WatchReport>,
    /// The watched locals' frames that ended (`hwbp watch`'s scope events), in time order,
    /// under the filter's watch, thread and time range.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<super::ScopeRecord>,
}

/// Computes the report of `recording` under `filter`.
pub fn report(recording: &Recording, filter: &Filter) -> Report {
    let mut watches: Vec<WatchReport> = recording
        .header
        .watches
        .iter()
        .map(|w| WatchReport::empty(w.spec.clone(), w.address.clone(), w.len))
        .collect();
    for hit in filtered(recording, filter) {
        let i = match watches.iter().position(|w| w.watch == hit.watch) {
            Some(i) => i,
            None => {
                watches.push(WatchReport::empty(
                    hit.watch.clone(),
                    hit.address.clone().unwrap_or_default(),
                    0,
                ));
                watches.len() - 1
            }
        };
        let w = &mut watches[i];
        w.sampled += 1;
        if let Some(field) = &hit.field {
            *w.members.entry(field.clone()).or_default() += 1;
        }
        *w.threads.entry(hit.thread()).or_default() += 1;
        *w.functions.entry(hit.writer()).or_default() += 1;
        if hit.changed() {
            w.changes += 1;
        }
    }
    let exact_totals = filter.is_empty();
    for w in &mut watches {
        w.hits = w.sampled;
        let totals = recording
            .summary
            .as_ref()
            .and_then(|s| s.watchpoints.iter().find(|t| t.watch == w.watch));
        if let Some(t) = totals {
            w.placement = t.placement.clone();
            w.lost = t.lost;
            if w.len == 0 {
                w.len = t.len;
            }
            if exact_totals {
                w.hits = t.hits;
                w.hits_seen = t.hits_seen;
                w.coverage = t.coverage;
                w.estimate = t.estimate;
            }
        }
    }
    let cut = recording.cut.as_ref().map(ToString::to_string);
    let (duration_s, ended_by) = match &recording.summary {
        Some(s) => (s.duration_s, s.ended_by.clone()),
        None => (
            recording
                .hits
                .last()
                .map_or(0.0, |h| h.time_ns as f64 / 1e9),
            cut.clone().unwrap_or_default(),
        ),
    };
    Report {
        kind: "report",
        file: recording.path.display().to_string(),
        duration_s,
        ended_by,
        cut,
        filter: (!filter.is_empty()).then(|| filter.describe()),
        watchpoints: watches,
        scopes: recording
            .scopes
            .iter()
            .filter(|scope| {
                let spec = recording
                    .header
                    .watches
                    .iter()
                    .find(|w| w.id == scope.watch_id)
                    .map_or("", |w| w.spec.as_str());
                filter.keeps(spec, Some(scope.watch_id), scope.tid, scope.time_ns)
            })
            .cloned()
            .collect(),
    }
}

impl Report {
    /// Writes the report as `hwbp stat` writes its table, with a line per member before the
    /// threads, and notes on cuts and filters.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "hwbp report: {:.3}s ({})",
            self.duration_s, self.ended_by
        )?;
        if let (Some(cut), Some(_)) = (&self.cut, &self.filter) {
            writeln!(out, "hwbp report: the recording was {cut}")?;
        }
        if let Some(filter) = &self.filter {
            writeln!(
                out,
                "hwbp report: only hits that match {filter}: counts are of the recorded hits"
            )?;
        } else if self.cut.is_some() {
            writeln!(out, "hwbp report: counts are of the recorded hits")?;
        }
        write_watch_tables(out, &self.watchpoints)?;
        if !self.scopes.is_empty() {
            writeln!(out)?;
            for scope in &self.scopes {
                writeln!(out, "{:12.6} {}", scope.time_ns as f64 / 1e9, scope.text())?;
            }
        }
        Ok(())
    }
}

/// The per-watch tables of `hwbp stat` and `hwbp report`: the count (`>=N` when pieces were
/// never armed), the flexible and lower-bound notes, what was lost, then the hits per field,
/// thread and writing function, highest first.
pub fn write_watch_tables(out: &mut impl Write, watches: &[WatchReport]) -> std::io::Result<()> {
    for w in watches {
        writeln!(out)?;
        let hits = if w.never_armed.is_empty() {
            w.hits.to_string()
        } else {
            format!(">={}", w.hits)
        };
        writeln!(
            out,
            "{hits:>12}  {} ({}, {} bytes)",
            w.watch, w.address, w.len
        )?;
        let notes = [
            w.flexible_text(),
            crate::summary::lower_bound_text(&w.never_armed, w.never_armed_reason.as_deref()),
        ];
        for note in notes.iter().filter(|n| !n.is_empty()) {
            writeln!(out, "{:>12}  {note}", "")?;
        }
        if w.lost > 0 {
            writeln!(out, "{:>12}  of them not sampled (ring buffer overrun or output queue full): per-thread and per-function counts below are short by that many; use a larger --ring-pages", w.lost)?;
        }
        for (member, count) in by_count(&w.members) {
            writeln!(out, "{count:>12}    field {member}")?;
        }
        for (thread, count) in by_count(&w.threads) {
            writeln!(out, "{count:>12}    thread {thread}")?;
        }
        for (function, count) in by_count(&w.functions) {
            writeln!(out, "{count:>12}    by {function}")?;
        }
    }
    Ok(())
}

/// Entries by count, highest first, then by name (the order `hwbp stat` prints).
pub fn by_count(map: &BTreeMap<String, u64>) -> Vec<(&String, u64)> {
    let mut entries: Vec<_> = map.iter().map(|(k, v)| (k, *v)).collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    entries
}

/// One write that changed a value: a line of `hwbp report --changes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Always `"change"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Nanoseconds since the watch was armed.
    pub time_ns: u64,
    /// The watch spec.
    pub watch: String,
    /// The member, for struct and array watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The value before.
    pub old: u64,
    /// The value after.
    pub new: u64,
    /// Thread id.
    pub tid: i32,
    /// The thread's name.
    pub comm: String,
    /// The writer, as `hwbp stat` names it.
    pub writer: String,
    /// Where the values came from: the hit's `value_source`, else `exact` (stop mode) or
    /// `read-after`.
    pub value_source: String,
}

impl Change {
    /// The change as one text line.
    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let field = self
            .field
            .as_ref()
            .map(|f| format!(" {f}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{:12.6}  {}{field}  {} -> {}  thread {} ({})  by {}  [{}]",
            self.time_ns as f64 / 1e9,
            self.watch,
            self.old,
            self.new,
            self.tid,
            self.comm,
            self.writer,
            self.value_source
        )
    }
}

/// Where a hit's values came from, in one word.
pub fn value_source(hit: &Hit) -> String {
    match (&hit.value_source, hit.exact) {
        (Some(source), _) => source.clone(),
        (None, Some(true)) => "exact".into(),
        _ => "read-after".into(),
    }
}

/// The writes that changed the value, in time order.
pub fn changes(recording: &Recording, filter: &Filter) -> Vec<Change> {
    let mut changes: Vec<Change> = filtered(recording, filter)
        .filter(|hit| hit.changed())
        .map(|hit| Change {
            kind: "change",
            time_ns: hit.time_ns,
            watch: hit.watch.clone(),
            field: hit.field.clone(),
            old: hit.value_before.unwrap_or_default(),
            new: hit.value_after.unwrap_or_default(),
            tid: hit.tid,
            comm: hit.comm.clone(),
            writer: hit.writer(),
            value_source: value_source(hit),
        })
        .collect();
    changes.sort_by_key(|c| c.time_ns);
    changes
}

/// A callchain frame (`0xADDR function+0xOFF (file:line)`) as a flame-graph frame: the
/// function, else `[unknown]`; `;` (the frame separator) becomes `:`.
pub fn frame_name(frame: &str) -> String {
    let rest = match frame.split_once(' ') {
        Some((addr, rest)) if addr.starts_with("0x") => rest,
        Some(_) => frame,
        None if frame.starts_with("0x") => return "[unknown]".into(),
        None => frame,
    };
    let rest = match rest.rfind(" (") {
        Some(i) if rest.ends_with(')') => &rest[..i],
        _ => rest,
    };
    let rest = match rest.rfind("+0x") {
        Some(i) if rest[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => &rest[..i],
        _ => rest,
    };
    if rest.is_empty() {
        "[unknown]".into()
    } else {
        rest.replace(';', ":")
    }
}

/// Folded stacks (`root;...;leaf count`, the input of inferno, flamegraph.pl and speedscope),
/// one per distinct stack, weighted by hits: the hit's callchain root first, else its
/// function alone (`[unknown]` without one; ` [kernel]` appended to kernel-mode accesses).
/// The counts add up to the number of hits that pass `filter`.
pub fn folded(recording: &Recording, filter: &Filter) -> Vec<(String, u64)> {
    let mut stacks: BTreeMap<String, u64> = BTreeMap::new();
    for hit in filtered(recording, filter) {
        let mut frames: Vec<String> = if hit.callchain.is_empty() {
            vec![hit
                .function
                .as_deref()
                .map_or_else(|| "[unknown]".to_string(), |f| f.replace(';', ":"))]
        } else {
            hit.callchain.iter().rev().map(|f| frame_name(f)).collect()
        };
        if hit.kernel {
            if let Some(leaf) = frames.last_mut() {
                leaf.push_str(" [kernel]");
            }
        }
        *stacks.entry(frames.join(";")).or_default() += 1;
    }
    stacks.into_iter().collect()
}

/// Writes folded stacks, one `stack count` per line.
pub fn write_folded(out: &mut impl Write, stacks: &[(String, u64)]) -> std::io::Result<()> {
    for (stack, count) in stacks {
        writeln!(out, "{stack} {count}")?;
    }
    Ok(())
}
