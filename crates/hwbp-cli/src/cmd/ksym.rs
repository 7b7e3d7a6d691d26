//! `hwbp ksym`: the kernel-symbol tracer. Watches kernel variables named by symbol on every
//! CPU and prints one trace line per access, then a table per symbol of accesses per accessing
//! function.
//!
//! The filters (the ftrace ksym tracer's syntax, `SYMBOL[+OFF][/LEN]:rw-` or `:-w-`), the
//! symbol sources and the plan are the library's ([`hwbp::ksym`]); this file reads `--file`,
//! prints the trace lines in the old tracer's layout and the table.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::Duration;

use anyhow::Context;
use hwbp::{ksym, Hit, HitSink, Notice, PlannedWatch, WatchOptions, Watcher};

use crate::args::KsymArgs;
use crate::exit::usage;
use crate::output::print_notice;
use crate::plan::stop_handle;

/// The filters from the command line and `--file`, in order.
fn collect_filters(args: &KsymArgs) -> anyhow::Result<Vec<(String, ksym::KsymFilter)>> {
    let mut texts: Vec<String> = args.filters.clone();
    if let Some(path) = &args.file {
        let content = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read --file {}: {e}", path.display())))?;
        texts.extend(
            content
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    Ok(ksym::parse_filters(texts)?)
}

/// Counts per symbol and accessing function, and prints trace lines.
struct KsymSink<W: Write> {
    out: W,
    quiet: bool,
    /// watch -> accessing function -> accesses.
    by_function: Vec<BTreeMap<String, u64>>,
    /// watch -> the text printed for it in trace lines (`symbol+off`).
    names: Vec<String>,
}

impl<W: Write> HitSink for KsymSink<W> {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        let ip = format!("{:#x}", hit.ip);
        let caller = match (hit.code.function(), hit.code.offset()) {
            (Some(f), Some(off)) => format!("{f}+{off:#x}"),
            _ => ip.clone(),
        };
        let function = hit.code.function().map_or(ip, str::to_string);
        let i = hit.watch.index();
        *self.by_function[i].entry(function).or_default() += 1;
        if !self.quiet {
            let mode = if hit.kernel { "" } else { " (user mode)" };
            writeln!(
                self.out,
                "{:>16}-{:<7} [{:03}] {:<28} {:<2} {caller}{mode}",
                hit.comm,
                hit.tid,
                hit.cpu.unwrap_or_default(),
                self.names[i],
                access_column(watch.access.letters())
            )?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn notice(&mut self, notice: &Notice) -> hwbp::Result<()> {
        print_notice(notice, true);
        Ok(())
    }

    fn idle(&mut self) -> hwbp::Result<()> {
        Ok(self.out.flush()?)
    }
}

/// The old tracer's type column: `RW` or `W`.
fn access_column(letters: &str) -> &'static str {
    match letters {
        "w" => "W",
        "r" => "R",
        _ => "RW",
    }
}

/// Runs `hwbp ksym`.
pub fn run(args: KsymArgs) -> anyhow::Result<()> {
    let filters = collect_filters(&args)?;
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(usage(format!(
                "--duration {d} is not a positive number of seconds: use e.g. --duration 5"
            )));
        }
    }
    let source =
        ksym::KernelSymbolSource::load(args.system_map.as_deref(), args.vmlinux.as_deref())?;
    let cpus = match &args.cpus {
        Some(list) => hwbp::slots::parse_cpu_list(list).map_err(|e| usage(e.to_string()))?,
        None => hwbp::slots::online_cpus()?,
    };
    let ksym::KsymPlan { plan, names, notes } =
        ksym::plan(&filters, source, cpus, args.cpus.is_none())?;
    for note in notes {
        eprintln!("hwbp: {note}");
    }
    let options = WatchOptions {
        max_hits: args.max_hits,
        duration: args.duration.map(Duration::from_secs_f64),
        read_values: false,
        ..WatchOptions::default()
    };
    let stdout = std::io::stdout();
    let mut sink = KsymSink {
        out: std::io::BufWriter::new(stdout.lock()),
        quiet: args.quiet,
        by_function: vec![BTreeMap::new(); filters.len()],
        names,
    };
    if !args.quiet {
        writeln!(
            sink.out,
            "#{:>15}-{:<7} {:<5} {:<28} {:<2} FUNCTION",
            "TASK", "PID", "CPU#", "SYMBOL", "TYPE"
        )?;
    }
    let summary = match Watcher::new(plan, options)
        .with_stop_handle(stop_handle())
        .run(&mut sink)
    {
        Ok(summary) => summary,
        Err(e) => {
            // Nothing was traced: the header still in the buffer goes unwritten.
            let _unwritten = sink.out.into_parts();
            return Err(e).context("ksym trace failed");
        }
    };
    let out = &mut sink.out;
    writeln!(
        out,
        "\nksym summary after {:.3}s ({}):",
        summary.duration_s, summary.ended_by
    )?;
    for (i, (total, (text, _))) in summary.watchpoints.iter().zip(&filters).enumerate() {
        let name = &sink.names[i];
        writeln!(
            out,
            "{name} ({}, {} bytes at {}): {} accesses{}",
            access_column(total_access(text)),
            total.len,
            total.address,
            total.hits,
            if total.lost > 0 {
                format!(", {} not reported (ring full)", total.lost)
            } else {
                String::new()
            }
        )?;
        let mut rows: Vec<(&String, &u64)> = sink.by_function[i].iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (function, count) in rows {
            writeln!(out, "  {count:>10}  {function}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The access letters of a filter text (already validated).
fn total_access(text: &str) -> &'static str {
    if text.ends_with("-w-") {
        "w"
    } else {
        "rw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_column_matches_the_old_tracer() {
        assert_eq!(access_column("rw"), "RW");
        assert_eq!(access_column("w"), "W");
    }
}
