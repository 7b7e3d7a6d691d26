//! `hwbp watch`: one line (or JSON object) per hit, live, then a summary.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::args::WatchArgs;
use crate::output::{write_json_line, HitReport};
use crate::plan::plan_with;
use crate::runner::{run as run_plan, HitSink, RunOptions};

/// Prints hits as they come: line-buffered on a terminal, block-buffered into a pipe or file.
struct PrintingSink<W: Write> {
    out: W,
    json: bool,
    flush_each: bool,
}

impl<W: Write> HitSink for PrintingSink<W> {
    fn hit(&mut self, hit: &HitReport) -> anyhow::Result<()> {
        if self.json {
            write_json_line(&mut self.out, hit)?;
        } else {
            hit.write_text(&mut self.out)?;
        }
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn tick(
        &mut self,
        _elapsed: Duration,
        _session: &hwbp_linux::session::WatchSession,
    ) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// Runs `hwbp watch`.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    if args.stop {
        if args.rotation.flexible {
            return Err(crate::exit::usage(
                "--flexible rotates perf-event watches; --stop uses the thread's own debug \
                 registers, which do not rotate: drop one of them",
            ));
        }
        return super::watch_stop::run(args);
    }
    let common = &args.common;
    let plan = plan_with(common, args.rotation)?;
    let opts = RunOptions {
        callchain: args.callchain,
        max_hits: args.max_hits,
        duration: common.duration.map(Duration::from_secs_f64),
        ring_pages: common.ring_pages,
        symbolize: true,
        read_values: true,
        announce: true,
    };
    let stdout = std::io::stdout();
    let flush_each = stdout.is_terminal();
    let mut sink = PrintingSink {
        out: std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()),
        json: common.json,
        flush_each,
    };
    let summary = run_plan(plan, &opts, &mut sink)?;
    if common.json {
        write_json_line(&mut sink.out, &summary)?;
    } else {
        summary.write_text(&mut sink.out)?;
    }
    sink.out.flush()?;
    Ok(())
}
