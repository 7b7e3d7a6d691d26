//! What the watching subcommands print, built from the library's [`hwbp::Hit`] and
//! [`hwbp::Summary`]: one text line (or JSON object, [`hwbp::Hit::write_json`]) per hit and a
//! summary at the end, to stdout or to `-o FILE`.
//!
//! [`Output`] writes whole lines only: each `write(2)` holds complete lines, at most 4 KiB
//! (`PIPE_BUF`, atomic on a pipe) when stdout is shared with a launched command, so the
//! command's own `printf` can never land inside a hit's line; 64 KiB otherwise.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Context;
use hwbp::{Hit, HitSink, Notice, PlannedWatch, Summary, WatchTotals};
use serde::Serialize;

/// Whole-line output to stdout or a file.
pub struct Output {
    inner: Box<dyn Write>,
    buf: Vec<u8>,
    /// Most bytes per write.
    chunk: usize,
    /// Flush after every line (a terminal).
    flush_each: bool,
}

impl Output {
    /// stdout, or `path` (created or truncated) when given. `shared` says a launched command
    /// writes to the same stdout: writes then stay within `PIPE_BUF` (4 KiB), else they go
    /// in 64 KiB.
    pub fn open(path: Option<&Path>, shared: bool) -> anyhow::Result<Output> {
        let (inner, chunk, flush_each): (Box<dyn Write>, usize, bool) = match path {
            Some(path) => (
                Box::new(File::create(path).with_context(|| {
                    format!("cannot create the output file {}", path.display())
                })?),
                64 * 1024,
                false,
            ),
            None => {
                let stdout = std::io::stdout();
                let tty = stdout.is_terminal();
                (Box::new(stdout), if shared { 4096 } else { 64 * 1024 }, tty)
            }
        };
        Ok(Output {
            inner,
            buf: Vec::with_capacity(chunk + 4096),
            chunk,
            flush_each,
        })
    }

    /// Writes one or more whole lines made by `fill` (which must end them with `\n`).
    pub fn lines(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        // Made in place: a write then holds the lines before this one, and this one moves to
        // the front of the buffer (the only copy, once per chunk).
        let start = self.buf.len();
        fill(&mut self.buf)?;
        if self.buf.len() > self.chunk && start > 0 {
            self.inner.write_all(&self.buf[..start])?;
            self.buf.drain(..start);
        }
        if self.buf.len() > self.chunk {
            // One very long line (a deep callchain): its own write.
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// One value as a JSON line.
    pub fn json(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        self.lines(|out| {
            serde_json::to_writer(&mut *out, value)?;
            out.push(b'\n');
            Ok(())
        })
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.inner.flush()
    }
}

/// A hit as one text line (plus its callchain frames). `note_unknown_type` adds `(type
/// unknown: no debug info)` to a typed value without a type (the sink asks for it once per
/// watch).
pub fn write_hit_text(
    out: &mut Vec<u8>,
    hit: &Hit,
    watch: &PlannedWatch,
    note_unknown_type: bool,
) -> std::io::Result<()> {
    let secs = hit.time_ns as f64 / 1e9;
    let cpu = match hit.cpu {
        Some(cpu) => format!(" [{cpu:03}]"),
        None => String::new(),
    };
    let field = match &hit.member {
        Some(member) => format!(" field {member}"),
        None => String::new(),
    };
    let mode = if hit.kernel { " [kernel]" } else { "" };
    write!(
        out,
        "{secs:12.6}{cpu} {}/{} {:<15} {} {}{field}{mode} by {}",
        hit.pid,
        hit.tid,
        hit.comm,
        hit.access.letters(),
        watch.label,
        hit.location()
    )?;
    if let Some(frame) = &hit.frame {
        write!(out, " (frame {}, cfa {:#x})", frame.instance, frame.cfa)?;
    }
    match (&hit.typed, hit.value) {
        (Some(typed), value) => {
            write_typed(out, typed, note_unknown_type)?;
            if value.is_some_and(|v| !v.source.is_exact()) {
                write!(out, " (read after)")?;
            }
        }
        (None, Some(value)) => {
            match (value.old, value.new) {
                (Some(old), Some(new)) => write!(out, "  value {old} -> {new}")?,
                (None, Some(new)) => write!(out, "  value {new}")?,
                _ => {}
            }
            if value.new.is_some() && !value.source.is_exact() {
                write!(out, " (read after)")?;
            }
        }
        (None, None) => {}
    }
    writeln!(out)?;
    for frame in &hit.callchain {
        writeln!(out, "{:16}{frame}", "")?;
    }
    Ok(())
}

/// A typed value: `  value -1 -> 5`, or the members that changed, `  cfg.limits[2].max: 3
/// -> 7`; a value chain's move, `(cur moved it to 0x...)`; `(type unknown: no debug info)` when
/// `note_unknown_type` and the type is unknown.
fn write_typed(
    out: &mut Vec<u8>,
    typed: &hwbp::TypedValue,
    note_unknown_type: bool,
) -> std::io::Result<()> {
    if typed.changes.is_empty() {
        match (&typed.old, &typed.new) {
            (Some(old), Some(new)) => write!(out, "  value {old} -> {new}")?,
            (None, Some(new)) => write!(out, "  value {new}")?,
            _ => {}
        }
    } else {
        let changes: Vec<String> = typed.changes.iter().map(ToString::to_string).collect();
        write!(out, "  {}", changes.join(", "))?;
    }
    if let Some(pointer) = &typed.moved_by {
        match typed.moved_to {
            Some(addr) => write!(out, " ({pointer} moved it to {addr:#x})")?,
            None => write!(out, " ({pointer} changed; a pointer on the way is NULL)")?,
        }
    }
    if note_unknown_type && typed.value_type.is_none() {
        write!(out, " (type unknown: no debug info)")?;
    }
    Ok(())
}

/// The summary as a small table.
pub fn write_summary_text(out: &mut Vec<u8>, summary: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "\nsummary after {:.3}s ({}); per watchpoint:",
        summary.duration_s, summary.ended_by
    )?;
    writeln!(
        out,
        "  {:>10} {:>10} {:>8}  watch",
        "hits", "reported", "lost"
    )?;
    for w in &summary.watchpoints {
        writeln!(
            out,
            "  {:>10} {:>10} {:>8}  {} ({}, {} bytes)",
            w.hits_text(),
            w.reported,
            w.lost,
            w.watch,
            w.address,
            w.len
        )?;
        for note in totals_notes(w) {
            writeln!(out, "  {:>30}  {note}", "")?;
        }
    }
    write_summary_notes(out, summary)
}

/// The flexible and lower-bound notes of one watch's totals.
pub fn totals_notes(w: &WatchTotals) -> Vec<String> {
    [w.flexible_text(), w.lower_bound_text()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect()
}

/// The run-wide notes: what became of a launched command, dropped samples, a full queue,
/// stray traps.
pub fn write_summary_notes(out: &mut Vec<u8>, summary: &Summary) -> std::io::Result<()> {
    if let Some(command) = &summary.command {
        // A command whose exit ended the run is told by the summary's first line already.
        let told = command.fate == hwbp::Fate::Exited
            && matches!(summary.ended_by, hwbp::EndedBy::Command { .. });
        if !told {
            writeln!(out, "  {}", command.text())?;
        }
    }
    write_process_rows(out, summary)?;
    if summary.lost_records > 0 || summary.throttled > 0 {
        writeln!(
            out,
            "  the kernel dropped {} samples and throttled {} times: use a larger --ring-pages",
            summary.lost_records, summary.throttled
        )?;
    }
    if summary.queue_dropped > 0 {
        writeln!(
            out,
            "  {} hits were dropped because the output fell behind by more than --queue-size \
             (peak {} MiB): write to a file with -o, or raise --queue-size",
            summary.queue_dropped,
            summary.queue_peak_bytes >> 20
        )?;
    }
    if summary.stray_traps > 0 {
        writeln!(
            out,
            "  {} debug exceptions matched no watchpoint (swallowed; this VM raises them under \
             busy watchpoints): those accesses were not counted",
            summary.stray_traps
        )?;
    }
    Ok(())
}

/// A launched command's process tree: one row per process (pid, program, hits per watch),
/// the total, and the watches that never armed.
fn write_process_rows(out: &mut Vec<u8>, summary: &Summary) -> std::io::Result<()> {
    let per_watch = |hits: &dyn Fn(usize) -> u64| {
        summary
            .watchpoints
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{} {}", w.watch, hits(i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !summary.processes.is_empty() {
        writeln!(out, "  per process:")?;
        for row in &summary.processes {
            let hits = per_watch(&|i| row.hits.get(i).copied().unwrap_or(0));
            writeln!(out, "    pid {} ({}): {hits}", row.pid, row.program)?;
        }
        let total = per_watch(&|i| summary.processes.iter().map(|r| r.hits[i]).sum());
        writeln!(out, "    total: {total}")?;
    }
    for label in &summary.pending {
        writeln!(
            out,
            "  {label}: still pending: no process of the command mapped an image defining it \
             (never armed)"
        )?;
    }
    Ok(())
}

/// Prints hits as they come, text or JSON, then the summary; notices go to stderr.
pub struct PrintingSink {
    /// Where hits go.
    pub out: Output,
    /// JSON lines instead of text.
    pub json: bool,
    /// Print the start-up notices on stderr.
    pub announce: bool,
    /// The JSON writer, with its cached fragments.
    hit_json: hwbp::HitJsonWriter,
    /// Watches whose unknown type the text output has already noted (once per watch).
    type_noted: Vec<bool>,
}

impl HitSink for PrintingSink {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        if self.json {
            let writer = &mut self.hit_json;
            self.out.lines(|buf| {
                writer.write(hit, watch, buf);
                buf.push(b'\n');
                Ok(())
            })?;
        } else {
            let i = hit.watch.index();
            if self.type_noted.len() <= i {
                self.type_noted.resize(i + 1, false);
            }
            // An integer of the symbol's size reads as what it is; a wider value without a
            // type (raw bytes) says why, on its first hit.
            let note = !self.type_noted[i] && !matches!(watch.len, 1 | 2 | 4 | 8);
            self.type_noted[i] |= note;
            self.out
                .lines(|buf| write_hit_text(buf, hit, watch, note))?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn notice(&mut self, notice: &Notice) -> hwbp::Result<()> {
        print_notice(notice, self.announce);
        Ok(())
    }

    fn scope(&mut self, event: &hwbp::ScopeEvent) -> hwbp::Result<()> {
        let line = if self.json {
            event.json_line()
        } else {
            format!("{:12.6} {}", event.time_ns as f64 / 1e9, event.text())
        };
        self.out.lines(|buf| {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            Ok(())
        })?;
        Ok(())
    }

    fn idle(&mut self) -> hwbp::Result<()> {
        Ok(self.out.flush()?)
    }
}

impl PrintingSink {
    /// Prints to `out`, as JSON lines when `json`; notices on stderr when `announce`.
    pub fn new(out: Output, json: bool, announce: bool) -> Self {
        PrintingSink {
            out,
            json,
            announce,
            hit_json: hwbp::HitJsonWriter::new(),
            type_noted: Vec::new(),
        }
    }

    /// Writes the summary and flushes.
    pub fn finish(mut self, summary: &Summary) -> std::io::Result<()> {
        if self.json {
            self.out.json(summary)?;
        } else {
            self.out.lines(|buf| write_summary_text(buf, summary))?;
        }
        self.out.flush()
    }
}

/// A notice on stderr as `hwbp: ...`: warnings always, the rest when `announce` (tests and
/// scripts wait for the "watching" line).
pub fn print_notice(notice: &Notice, announce: bool) {
    match notice {
        Notice::Armed { description } if announce => {
            eprintln!("hwbp: watching {description}; Ctrl-C to stop")
        }
        Notice::Rotation(text) | Notice::Engine(text) if announce => eprintln!("hwbp: {text}"),
        Notice::Warning(text) => eprintln!("hwbp: {text}"),
        Notice::CommandKeptRunning { pid } => {
            eprintln!("hwbp: the command keeps running as pid {pid} (--keep-running)")
        }
        _ => {}
    }
}
