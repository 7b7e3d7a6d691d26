//! `hwbp stat`: exact access counts per watchpoint (from the kernel's event counters), broken
//! down per thread and per accessing function (from the samples), as a table or JSON;
//! `-I MS` prints interval counts while it runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::args::StatArgs;
use crate::output::{write_json_line, HitReport, Summary};
use crate::plan::plan_with;
use crate::runner::{run as run_plan, HitSink, RunOptions};

/// Counts of one watchpoint by thread and by function.
#[derive(Debug, Default, Clone, Serialize)]
struct Breakdown {
    /// `tid (comm)` → hits.
    threads: BTreeMap<String, u64>,
    /// `function (file:line)` or the instruction address → hits.
    functions: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct IntervalLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    elapsed_s: f64,
    watch: &'a str,
    count: u64,
}

struct CountingSink {
    labels: Vec<String>,
    /// Session watch index (one per debug-register piece) → index in `labels`.
    piece_owner: Vec<usize>,
    breakdown: Vec<Breakdown>,
    interval: Option<Duration>,
    next_interval: Duration,
    /// Hits received per label, for interval counts when watches rotate (a rotating
    /// register's kernel count mixes the pieces it held).
    received: Vec<u64>,
    previous: Vec<u64>,
    json: bool,
}

impl CountingSink {
    fn index_of(&self, label: &str) -> usize {
        self.labels.iter().position(|l| l == label).unwrap_or(0)
    }
}

impl HitSink for CountingSink {
    fn hit(&mut self, hit: &HitReport) -> anyhow::Result<()> {
        let i = self.index_of(&hit.watch);
        self.received[i] += 1;
        let b = &mut self.breakdown[i];
        *b.threads
            .entry(format!("{} ({})", hit.tid, hit.comm))
            .or_default() += 1;
        let function = match (&hit.function, &hit.file, hit.line) {
            (Some(f), Some(file), Some(line)) => format!("{f} ({file}:{line})"),
            (Some(f), _, _) => f.clone(),
            _ => hit.instruction.clone().unwrap_or_else(|| hit.ip.clone()),
        };
        let function = if hit.kernel {
            format!("{function} [kernel]")
        } else {
            function
        };
        *b.functions.entry(function).or_default() += 1;
        Ok(())
    }

    fn tick(
        &mut self,
        elapsed: Duration,
        session: &hwbp_linux::session::WatchSession,
    ) -> anyhow::Result<()> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        if elapsed < self.next_interval {
            return Ok(());
        }
        self.next_interval += interval;
        let mut now = vec![0u64; self.labels.len()];
        if session.watches().len() == self.piece_owner.len() {
            for c in session.counts()? {
                // Pieces of one watch share its label; counts arrive per piece in order.
                now[self.piece_owner[c.watch]] += c.count;
            }
        } else {
            // Pieces take turns on fewer registers: count the hits received instead.
            now.clone_from(&self.received);
        }
        let mut out = std::io::stdout().lock();
        for (i, label) in self.labels.iter().enumerate() {
            let delta = now[i] - self.previous[i].min(now[i]);
            if self.json {
                write_json_line(
                    &mut out,
                    &IntervalLine {
                        kind: "interval",
                        elapsed_s: elapsed.as_secs_f64(),
                        watch: label,
                        count: delta,
                    },
                )?;
            } else {
                writeln!(out, "{:10.3}s {:>12} {label}", elapsed.as_secs_f64(), delta)?;
            }
        }
        out.flush()?;
        self.previous = now;
        Ok(())
    }
}

#[derive(Serialize)]
struct StatWatch<'a> {
    watch: &'a str,
    address: &'a str,
    len: u64,
    hits: u64,
    sampled: u64,
    lost: u64,
    placement: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hits_seen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coverage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate: Option<u64>,
    threads: &'a BTreeMap<String, u64>,
    functions: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct StatReport<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    duration_s: f64,
    ended_by: &'a str,
    watchpoints: Vec<StatWatch<'a>>,
}

/// Runs `hwbp stat`.
pub fn run(args: StatArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if args.interval_ms == Some(0) {
        return Err(crate::exit::usage(
            "-I 0: the interval must be at least 1 millisecond, e.g. -I 1000",
        ));
    }
    let plan = plan_with(common, args.rotation)?;
    let labels: Vec<String> = plan.watches.iter().map(|w| w.label.clone()).collect();
    let piece_owner = plan
        .watches
        .iter()
        .enumerate()
        .flat_map(|(i, w)| std::iter::repeat_n(i, w.pieces.len()))
        .collect();
    let interval = args.interval_ms.map(Duration::from_millis);
    let labels_len = labels.len();
    let mut sink = CountingSink {
        breakdown: vec![Breakdown::default(); labels.len()],
        previous: vec![0; labels.len()],
        labels,
        piece_owner,
        interval,
        next_interval: interval.unwrap_or_default(),
        received: vec![0; labels_len],
        json: common.json,
    };
    let opts = RunOptions {
        callchain: false,
        max_hits: None,
        duration: common.duration.map(Duration::from_secs_f64),
        ring_pages: common.ring_pages,
        symbolize: true,
        read_values: false,
        announce: true,
    };
    let summary = run_plan(plan, &opts, &mut sink)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if common.json {
        write_json_line(&mut out, &json_report(&summary, &sink))?;
    } else {
        write_table(&mut out, &summary, &sink)?;
    }
    out.flush()?;
    Ok(())
}

fn json_report<'a>(summary: &'a Summary, sink: &'a CountingSink) -> StatReport<'a> {
    StatReport {
        kind: "stat",
        duration_s: summary.duration_s,
        ended_by: &summary.ended_by,
        watchpoints: summary
            .watchpoints
            .iter()
            .zip(&sink.breakdown)
            .map(|(w, b)| StatWatch {
                watch: &w.watch,
                address: &w.address,
                len: w.len,
                hits: w.hits,
                sampled: w.reported,
                lost: w.lost,
                placement: w.placement,
                hits_seen: w.hits_seen,
                coverage: w.coverage,
                estimate: w.estimate,
                threads: &b.threads,
                functions: &b.functions,
            })
            .collect(),
    }
}

fn write_table(
    out: &mut impl Write,
    summary: &Summary,
    sink: &CountingSink,
) -> std::io::Result<()> {
    writeln!(
        out,
        "hwbp stat: {:.3}s ({})",
        summary.duration_s, summary.ended_by
    )?;
    for (w, b) in summary.watchpoints.iter().zip(&sink.breakdown) {
        writeln!(out)?;
        writeln!(
            out,
            "{:>12}  {} ({}, {} bytes)",
            w.hits, w.watch, w.address, w.len
        )?;
        let flexible = w.flexible_text();
        if !flexible.is_empty() {
            writeln!(out, "{:>12}  {flexible}", "")?;
        }
        if w.lost > 0 {
            writeln!(out, "{:>12}  of them not sampled (ring buffer overrun): per-thread and per-function counts below are short by that many; use a larger --ring-pages", w.lost)?;
        }
        let mut threads: Vec<_> = b.threads.iter().collect();
        threads.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (thread, count) in threads {
            writeln!(out, "{count:>12}    thread {thread}")?;
        }
        let mut functions: Vec<_> = b.functions.iter().collect();
        functions.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (function, count) in functions {
            writeln!(out, "{count:>12}    by {function}")?;
        }
    }
    Ok(())
}
