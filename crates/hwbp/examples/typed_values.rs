//! Typed values as data: runs a command, watches a variable or expression, and reads each
//! hit's new value by its [`Value`] variant (an `i64` for a signed integer, the enumerator's
//! name for an enum, each member of a struct) instead of parsing text. `Display` gives the
//! text as the language prints it, for anything else.
//!
//! ```text
//! cargo run -p hwbp --example typed_values -- EXPR -- CMD ARGS...
//! ```
use std::ops::ControlFlow;
use std::process::ExitCode;

mod common;

use hwbp::{EnumName, Target, Value, WatchOptions, WatchPlan, Watcher};

fn main() -> ExitCode {
    common::main_with("typed_values EXPR -- CMD ARGS...", typed_values)
}

/// What a value is, read from the data: `signed -3`, `MODE_ON (1)`, `{min: signed 4, max:
/// signed 7}`.
fn describe(value: &Value) -> String {
    match value {
        Value::Signed(v) => format!("signed {v}"),
        Value::Unsigned(v) => format!("unsigned {v}"),
        Value::Enum {
            value,
            name: EnumName::Exact(name),
        } => format!("{name} ({value})"),
        Value::Struct { members, .. } => {
            let named: Vec<String> = members
                .iter()
                .map(|m| {
                    let name = m.name.as_deref().unwrap_or("?");
                    format!("{name}: {}", describe(&m.value))
                })
                .collect();
            format!("{{{}}}", named.join(", "))
        }
        // Pointers, floats, chars, strings, arrays...: as the language prints them.
        other => other.to_string(),
    }
}

fn typed_values(spec: &str, command: &[String]) -> Result<(), hwbp::Error> {
    let plan = WatchPlan::builder()
        .watch(spec)
        .target(Target::launch(command))
        .build()?;
    let summary =
        Watcher::new(plan, WatchOptions::default()).run(hwbp::from_fn(|hit, watch| {
            let Some(typed) = &hit.typed else {
                return Ok(ControlFlow::Continue(()));
            };
            let ty = typed.value_type.as_deref().unwrap_or("type unknown");
            let new = typed
                .new
                .as_ref()
                .map_or("unreadable".to_string(), describe);
            // The old value's text, exactly as `hwbp watch` prints it.
            let old = typed.old.as_ref().map_or("-".to_string(), Value::to_string);
            let place = match (&hit.code.location, hit.code.function()) {
                (Some(loc), Some(function)) => match (&loc.file, loc.line) {
                    (Some(file), Some(line)) => format!("{function} ({file}:{line})"),
                    _ => function.to_string(),
                },
                _ => format!("{:#x}", hit.ip),
            };
            println!("{} ({ty}) = {new}, was {old}, in {place}", watch.label);
            // A signed value as a Rust integer, no reinterpreting of `hit.value.new: u64`.
            if let Some(Value::Signed(v)) = &typed.new {
                if *v < 0 {
                    println!("{} went negative: {v}", watch.label);
                }
            }
            Ok(ControlFlow::Continue(()))
        }))?;
    eprintln!("{} hits; {}", summary.watchpoints[0].hits, summary.ended_by);
    Ok(())
}
