//! `hwbp stat`: exact access counts per watchpoint (from the kernel's event counters), broken
//! down per member, per thread and per accessing function, as a table or JSON; `-I MS` prints
//! interval counts while it runs. The breakdown is counted in the kernel by the BPF hit
//! handler when it can be loaded ([`HitSink::counts`]), else built from one perf sample per
//! hit.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Duration;

use hwbp::{
    CodeInfo, Hit, HitCount, HitSink, Mode, Notice, PlannedWatch, Progress, Summary, Watcher,
};
use serde::Serialize;

use crate::args::StatArgs;
use hwbp::record::report::{write_watch_tables, WatchReport};

use crate::output::{print_notice, write_summary_notes, Output};
use crate::plan::{stop_handle, watch_options, watch_plan};

/// Counts of one watchpoint by member, thread and function.
#[derive(Debug, Default, Clone, Serialize)]
struct Breakdown {
    /// `tid (comm)` → hits.
    threads: BTreeMap<String, u64>,
    /// `function (file:line)` or the instruction address → hits.
    functions: BTreeMap<String, u64>,
    /// Member (for watches over several members) → hits.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    members: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct IntervalLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    elapsed_s: f64,
    watch: &'a str,
    watch_id: usize,
    count: u64,
}

/// Counts hits per watch id and prints interval lines.
struct CountingSink {
    breakdown: Vec<Breakdown>,
    previous: Vec<u64>,
    out: Output,
    json: bool,
}

/// The function column of a hit: `function (file:line)`, else `module+0xoff` in a stripped
/// library, else the instruction's address.
pub fn function_key(hit: &Hit) -> String {
    code_key(&hit.code, hit.ip, hit.kernel)
}

/// The function column of an accessing instruction (`ip` the reported address).
fn code_key(code: &CodeInfo, ip: u64, kernel: bool) -> String {
    let function = match (code.function(), &code.location) {
        (Some(f), Some(loc)) if loc.file.is_some() && loc.line.is_some() => format!(
            "{f} ({}:{})",
            loc.file.as_deref().unwrap_or_default(),
            loc.line.unwrap_or_default()
        ),
        (Some(f), _) => f.to_string(),
        _ => match &code.module_offset {
            Some(offset) => offset.to_string(),
            None => format!("{:#x}", code.instruction.unwrap_or(ip)),
        },
    };
    if kernel {
        format!("{function} [kernel]")
    } else {
        function
    }
}

impl HitSink for CountingSink {
    fn hit(&mut self, hit: &Hit, _: &PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        let b = &mut self.breakdown[hit.watch.index()];
        *b.threads
            .entry(format!("{} ({})", hit.tid, hit.comm))
            .or_default() += 1;
        *b.functions.entry(function_key(hit)).or_default() += 1;
        if let Some(member) = &hit.member {
            *b.members.entry(member.to_string()).or_default() += 1;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn counts(&mut self, counts: &[HitCount]) -> hwbp::Result<()> {
        // Every count since arming: the tables start over.
        for b in &mut self.breakdown {
            *b = Breakdown::default();
        }
        for c in counts {
            let b = &mut self.breakdown[c.watch.index()];
            *b.threads
                .entry(format!("{} ({})", c.tid, c.comm))
                .or_default() += c.count;
            *b.functions
                .entry(code_key(&c.code, c.ip, c.kernel))
                .or_default() += c.count;
            if let Some(member) = &c.member {
                *b.members.entry(member.to_string()).or_default() += c.count;
            }
        }
        Ok(())
    }

    fn notice(&mut self, notice: &Notice) -> hwbp::Result<()> {
        print_notice(notice, true);
        Ok(())
    }

    fn progress(&mut self, progress: &Progress<'_>) -> hwbp::Result<()> {
        let elapsed = progress.elapsed.as_secs_f64();
        for (i, watch) in progress.watches.iter().enumerate() {
            let now = progress.counts[i];
            let delta = now - self.previous[i].min(now);
            if self.json {
                self.out.json(&IntervalLine {
                    kind: "interval",
                    elapsed_s: elapsed,
                    watch: &watch.label,
                    watch_id: i,
                    count: delta,
                })?;
            } else {
                let label = &watch.label;
                self.out
                    .lines(|out| writeln!(out, "{elapsed:10.3}s {delta:>12} {label}"))?;
            }
        }
        self.out.flush()?;
        self.previous = progress.counts.to_vec();
        Ok(())
    }
}

#[derive(Serialize)]
struct StatWatch<'a> {
    watch: &'a str,
    watch_id: usize,
    address: &'a str,
    len: u64,
    hits: u64,
    sampled: u64,
    lost: u64,
    placement: hwbp::Placement,
    #[serde(skip_serializing_if = "Option::is_none")]
    hits_seen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    coverage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    estimate: Option<u64>,
    lower_bound: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    never_armed: &'a [String],
    #[serde(flatten)]
    breakdown: &'a Breakdown,
}

#[derive(Serialize)]
struct StatReport<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    duration_s: f64,
    ended_by: &'a hwbp::EndedBy,
    queue_dropped: u64,
    watchpoints: Vec<StatWatch<'a>>,
    /// A launched command's process tree: hits per process and watch.
    #[serde(skip_serializing_if = "<[hwbp::ProcessTotals]>::is_empty")]
    processes: &'a [hwbp::ProcessTotals],
    /// Watches never armed (no process mapped an image defining them).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pending: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a hwbp::CommandFate>,
}

/// Runs `hwbp stat`.
pub fn run(args: StatArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if args.interval_ms == Some(0) {
        return Err(crate::exit::usage(
            "-I 0: the interval must be at least 1 millisecond, e.g. -I 1000",
        ));
    }
    let plan = watch_plan(common, args.rotation)?;
    let mut options = watch_options(common, Mode::Perf);
    options.read_values = false;
    options.aggregate = true;
    options.interval = args.interval_ms.map(Duration::from_millis);
    let watch_count = plan.watches().len();
    let mut sink = CountingSink {
        breakdown: vec![Breakdown::default(); watch_count],
        previous: vec![0; watch_count],
        out: Output::open(common.output.as_deref(), true)?,
        json: common.json,
    };
    let summary = Watcher::new(plan, options)
        .with_stop_handle(stop_handle())
        .run(&mut sink)?;
    let CountingSink {
        mut out, breakdown, ..
    } = sink;
    if common.json {
        out.json(&json_report(&summary, &breakdown))?;
    } else {
        out.lines(|buf| write_table(buf, &summary, &breakdown))?;
    }
    out.flush()?;
    Ok(())
}

fn json_report<'a>(summary: &'a Summary, breakdown: &'a [Breakdown]) -> StatReport<'a> {
    StatReport {
        kind: "stat",
        duration_s: summary.duration_s,
        ended_by: &summary.ended_by,
        queue_dropped: summary.queue_dropped,
        processes: &summary.processes,
        pending: &summary.pending,
        watchpoints: summary
            .watchpoints
            .iter()
            .zip(breakdown)
            .map(|(w, b)| StatWatch {
                watch: &w.watch,
                watch_id: w.id.index(),
                address: &w.address,
                len: w.len,
                hits: w.hits,
                sampled: w.reported,
                lost: w.lost,
                placement: w.placement,
                hits_seen: w.hits_seen,
                coverage: w.coverage,
                estimate: w.estimate,
                lower_bound: w.lower_bound,
                never_armed: &w.never_armed,
                breakdown: b,
            })
            .collect(),
        command: summary.command.as_ref(),
    }
}

fn write_table(
    out: &mut Vec<u8>,
    summary: &Summary,
    breakdown: &[Breakdown],
) -> std::io::Result<()> {
    writeln!(
        out,
        "hwbp stat: {:.3}s ({})",
        summary.duration_s, summary.ended_by
    )?;
    let tables: Vec<WatchReport> = summary
        .watchpoints
        .iter()
        .zip(breakdown)
        .map(|(w, b)| WatchReport {
            watch: w.watch.clone(),
            address: w.address.clone(),
            len: w.len,
            hits: w.hits,
            sampled: w.reported,
            lost: w.lost,
            placement: w.placement.name().to_string(),
            hits_seen: w.hits_seen,
            coverage: w.coverage,
            estimate: w.estimate,
            members: b.members.clone(),
            threads: b.threads.clone(),
            functions: b.functions.clone(),
            changes: 0,
            never_armed: w.never_armed.clone(),
            never_armed_reason: w.never_armed_reason.clone(),
        })
        .collect();
    write_watch_tables(out, &tables)?;
    write_summary_notes(out, summary)
}
