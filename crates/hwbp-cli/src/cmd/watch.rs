//! `hwbp watch`: one line (or JSON object) per hit, live, then a summary; `--stop` for stop
//! mode. The library's [`hwbp::Watcher`] does the work; this file only wires flags to it.

use hwbp::{Condition, Mode, Watcher};

use crate::args::WatchArgs;
use crate::output::{Output, PrintingSink};
use crate::plan::{stop_handle, watch_options, watch_plan};

/// The plan and run options `hwbp watch` (and `hwbp record`) use for these flags.
pub fn plan_and_options(args: &WatchArgs) -> anyhow::Result<(hwbp::WatchPlan, hwbp::WatchOptions)> {
    let common = &args.common;
    if args.stop && args.rotation.flexible {
        return Err(crate::exit::usage(
            "--flexible rotates perf-event watches; --stop uses the thread's own debug \
             registers, which do not rotate: drop one of them",
        ));
    }
    let plan = watch_plan(common, args.rotation)?;
    let condition = args
        .condition
        .as_deref()
        .map(|text| Condition::parse_for(text, plan.watches()))
        .transpose()?;
    let mut options = watch_options(common, if args.stop { Mode::Stop } else { Mode::Perf });
    options.callchain = args.callchain || args.call_graph.is_some();
    options.call_graph = args.call_graph.unwrap_or_default();
    options.max_hits = args.max_hits;
    options.changes_only = args.changes_only;
    options.condition = condition;
    options.frames = args.frames;
    if let Some(chars) = args.string_chars {
        options.string_chars = chars;
    }
    Ok((plan, options))
}

/// Runs `hwbp watch`.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let (plan, options) = plan_and_options(&args)?;
    let out = Output::open(common.output.as_deref(), plan.target().is_launched())?;
    let watcher = Watcher::new(plan, options).with_stop_handle(stop_handle());
    let mut sink = PrintingSink::new(out, common.json, true);
    let summary = watcher.run(&mut sink)?;
    sink.finish(&summary)?;
    Ok(())
}
