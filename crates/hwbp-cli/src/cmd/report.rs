//! `hwbp report FILE`: reads a recording and prints what `hwbp stat` would have printed for
//! that run (per watch, member, thread and writing function), the timeline of changes, folded
//! stacks, JSON, or a self-contained HTML page; the work is `hwbp::record`'s, this file owns
//! the options and where the output goes.

use std::io::Write;

use crate::args::ReportArgs;
use hwbp::record::report::{changes, folded, report, write_folded, Filter};
use hwbp::record::{RecordError, Recording};

/// The filter the options ask for, checked.
fn filter(args: &ReportArgs) -> anyhow::Result<Filter> {
    for (name, secs) in [("--from", args.from), ("--to", args.to)] {
        if secs.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(crate::exit::usage(format!(
                "{name} {}: a time is seconds since the watch was armed, at least 0, e.g. \
                 {name} 1.5",
                secs.unwrap_or_default()
            )));
        }
    }
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from >= to {
            return Err(crate::exit::usage(format!(
                "--from {from} --to {to}: the range is empty; --from must be before --to"
            )));
        }
    }
    Ok(Filter {
        watches: args.watches.clone(),
        tid: args.tid,
        function: args.function.clone(),
        from_s: args.from,
        to_s: args.to,
    })
}

/// Runs `hwbp report`.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let filter = filter(&args)?;
    let recording = Recording::read(&args.file).map_err(|e| match e {
        RecordError::NotARecording { .. } | RecordError::NewerVersion { .. } => {
            crate::exit::usage(e.to_string())
        }
        e => anyhow::Error::new(e),
    })?;
    for w in &filter.watches {
        let known = recording
            .header
            .watches
            .iter()
            .any(|h| h.spec == *w || w.parse::<u32>() == Ok(h.id));
        if !known {
            let specs: Vec<String> = recording
                .header
                .watches
                .iter()
                .map(|h| format!("{} ({})", h.spec, h.id))
                .collect();
            return Err(crate::exit::usage(format!(
                "--watch {w}: the recording has no such watch; it has {}",
                specs.join(", ")
            )));
        }
    }
    if let Some(cut) = &recording.cut {
        eprintln!(
            "hwbp: {} was {cut}: reporting what it holds",
            args.file.display()
        );
    }
    if let Some(out) = &args.html {
        let page = hwbp::record::html::render(&recording, &filter);
        std::fs::write(out, &page)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        eprintln!("hwbp: wrote {} ({} bytes)", out.display(), page.len());
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.folded {
        write_folded(&mut out, &folded(&recording, &filter))?;
    } else if args.changes {
        for change in changes(&recording, &filter) {
            if args.json {
                serde_json::to_writer(&mut out, &change)?;
                writeln!(out)?;
            } else {
                change.write_text(&mut out)?;
            }
        }
    } else {
        let rep = report(&recording, &filter);
        if args.json {
            serde_json::to_writer(&mut out, &rep)?;
            writeln!(out)?;
        } else {
            rep.write_text(&mut out)?;
        }
    }
    out.flush()?;
    Ok(())
}
