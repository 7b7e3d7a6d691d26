//! `hwbp record -o FILE`: everything `hwbp watch` can watch, written to a recording
//! (`hwbp::record`: a header with the watches and the target, every symbolized hit, the
//! summary) that `hwbp report` reads after the target and its binaries are gone. Lines are
//! written whole, so an interrupted recording reads up to its last complete hit.

use std::ops::ControlFlow;

use anyhow::Context;
use hwbp::record::{Header, Member, RecordingWriter, Target as RecordedTarget, WatchInfo};
use hwbp::{Hit, HitSink, Notice, PlannedTarget, PlannedWatch, WatchPlan, Watcher};

use crate::args::{RecordArgs, TargetArgs};
use crate::exit::usage;
use crate::output::print_notice;

/// Writes every hit into the recording.
struct RecordingSink {
    writer: RecordingWriter,
    /// The first write error: the watch ends, the file keeps what was written.
    failed: Option<hwbp::record::RecordError>,
}

impl HitSink for RecordingSink {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        match self.writer.write_hit_json(hit, watch) {
            Ok(()) => Ok(ControlFlow::Continue(())),
            Err(e) => {
                self.failed = Some(e);
                Ok(ControlFlow::Break(()))
            }
        }
    }

    fn notice(&mut self, notice: &Notice) -> hwbp::Result<()> {
        print_notice(notice, true);
        Ok(())
    }

    fn scope(&mut self, event: &hwbp::ScopeEvent) -> hwbp::Result<()> {
        if let Err(e) = self.writer.write_scope(event) {
            self.failed.get_or_insert(e);
        }
        Ok(())
    }

    fn idle(&mut self) -> hwbp::Result<()> {
        if let Err(e) = self.writer.flush() {
            self.failed.get_or_insert(e);
        }
        Ok(())
    }
}

/// The header's description of the target.
fn recorded_target(args: &TargetArgs, plan: &WatchPlan) -> RecordedTarget {
    let pid = plan.target().pid();
    let executable = pid
        .and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok())
        .map(|p| p.display().to_string());
    let (kind, cpus) = match plan.target() {
        PlannedTarget::Cpus { all: true, .. } => ("cpus", Some("all".to_string())),
        PlannedTarget::Cpus { cpus, .. } => ("cpus", Some(hwbp::slots::format_cpu_list(cpus))),
        PlannedTarget::Threads { .. } if !args.command.is_empty() => ("command", None),
        PlannedTarget::Threads { .. } if args.tid.is_some() => ("thread", None),
        PlannedTarget::Threads { .. } => ("process", None),
    };
    RecordedTarget {
        kind: kind.to_string(),
        pid,
        tid: args.tid,
        command: args.command.clone(),
        cpus,
        executable,
        ..RecordedTarget::default()
    }
}

/// The header's entry for one watch, with its members when DWARF named them.
fn watch_info(watch: &PlannedWatch) -> WatchInfo {
    let members = watch
        .pieces()
        .enumerate()
        .filter_map(|(i, piece)| {
            let name = watch.piece_member(i)?;
            Some(Member {
                name,
                offset: piece.addr - watch.addr,
                len: piece.len,
            })
        })
        .collect();
    WatchInfo {
        id: watch.id.index() as u32,
        spec: watch.label.to_string(),
        // A local has an address per frame, in its hits and scope records; a watch that
        // waits for its image has one per process, in the summary.
        address: if watch.is_local() {
            "frame".to_owned()
        } else if watch.pieces().len() == 0 {
            "pending".to_owned()
        } else {
            format!("{:#x}", watch.addr)
        },
        len: watch.len,
        access: watch.access.letters().to_string(),
        members,
        extra: serde_json::Map::new(),
    }
}

/// Runs `hwbp record`.
pub fn run(args: RecordArgs) -> anyhow::Result<()> {
    let watch = &args.watch;
    let Some(path) = watch.common.output.clone() else {
        return Err(usage(
            "hwbp record needs the file to write: add -o FILE (read it later with hwbp report \
             FILE)",
        ));
    };
    let (plan, options) = super::watch::plan_and_options(watch)?;
    let mut header = Header::new(
        std::env::args().collect(),
        recorded_target(&watch.common.target, &plan),
        plan.watches().iter().map(watch_info).collect(),
    );
    header.mode = Some(if watch.stop { "stop" } else { "perf" }.to_string());
    let writer = RecordingWriter::create(&path, &header)
        .with_context(|| format!("cannot start the recording {}", path.display()))?;
    let mut sink = RecordingSink {
        writer,
        failed: None,
    };
    let summary = Watcher::new(plan, options)
        .with_stop_handle(crate::plan::stop_handle())
        .run(&mut sink)?;
    let RecordingSink {
        mut writer, failed, ..
    } = sink;
    if let Some(error) = failed {
        return Err(error).context(format!(
            "the recording {} stopped early; it holds {} hits",
            path.display(),
            writer.hits_written()
        ));
    }
    writer.write_summary(&summary)?;
    let stats = writer.finish()?;
    eprintln!(
        "hwbp: recorded {} hits to {} ({} bytes); read it with hwbp report {}",
        stats.hits,
        path.display(),
        stats.bytes,
        path.display()
    );
    Ok(())
}
