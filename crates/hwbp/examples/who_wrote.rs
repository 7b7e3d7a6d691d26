//! Who wrote it? Runs a command and prints one line per write to a watched variable: the
//! thread, the writing function with `file:line`, and the value.
//!
//! ```text
//! cargo run --release -p hwbp --example who_wrote -- SPEC -- CMD ARGS...
//! ```
use std::ops::ControlFlow;
use std::process::ExitCode;

mod common;

use hwbp::{Target, WatchOptions, WatchPlan, Watcher};

fn main() -> ExitCode {
    common::main_with("who_wrote SPEC -- CMD ARGS...", who_wrote)
}

fn who_wrote(spec: &str, command: &[String]) -> Result<(), hwbp::Error> {
    let plan = WatchPlan::builder()
        .watch(spec)
        .target(Target::launch(command))
        .build()?;
    let options = WatchOptions::default();
    let summary = Watcher::new(plan, options).run(hwbp::from_fn(|hit, _watch| {
        let value = match hit.value.and_then(|v| v.new) {
            Some(v) => v.to_string(),
            None => "?".to_string(),
        };
        println!(
            "thread {} ({}) in {} wrote {value}",
            hit.tid,
            hit.comm,
            hit.location()
        );
        Ok(ControlFlow::Continue(()))
    }))?;
    eprintln!(
        "{} writes; {}",
        summary.watchpoints[0].hits, summary.ended_by
    );
    Ok(())
}
