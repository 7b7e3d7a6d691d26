//! `hwbp demo`: the main job on a bundled example.
//!
//! The example is a tiny "bank" program built into this binary (the hidden `demo-target`
//! subcommand), so the demo needs no compiler. Its account balance is corrupted by a stray
//! write: a statistics reset that, through a copy-paste slip in [`statistic_counter`], zeroes
//! the balance instead of a request counter. `hwbp demo` launches it under `hwbp watch` with a
//! write watchpoint on `ACCOUNT_BALANCE`, armed before the program's first instruction, and
//! names the function and line that made the bad write.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::Serialize;

use crate::args::{CommonWatchArgs, TargetArgs};
use crate::output::{write_json_line, HitReport};
use crate::plan::plan;
use crate::runner::{run as run_plan, HitSink, RunOptions};

/// The demo's victim: the balance of the one account of the demo bank, watched by its Rust path
/// `hwbp::cmd::demo::ACCOUNT_BALANCE`; non-zero so it lives in `.data`.
pub static ACCOUNT_BALANCE: AtomicU64 = AtomicU64::new(1000);

/// Requests served today: what the statistics reset was meant to clear.
pub static REQUESTS_SERVED: AtomicU64 = AtomicU64::new(0);

/// The balance the demo program should end with: 1000 + 5 deposits of 100.
pub const EXPECTED_FINAL_BALANCE: u64 = 1500;

/// The statistics the bank keeps.
#[derive(Clone, Copy)]
enum Statistic {
    RequestsServed,
}

/// The counter behind a statistic. The bug: the arm returns the balance, not the counter.
#[inline(never)]
fn statistic_counter(statistic: Statistic) -> &'static AtomicU64 {
    match statistic {
        Statistic::RequestsServed => std::hint::black_box(&ACCOUNT_BALANCE),
    }
}

/// A legitimate writer of the balance.
#[inline(never)]
fn deposit(amount: u64) {
    let balance = ACCOUNT_BALANCE.load(Ordering::Relaxed);
    ACCOUNT_BALANCE.store(balance + amount, Ordering::Relaxed);
    REQUESTS_SERVED.fetch_add(1, Ordering::Relaxed);
}

/// The culprit: resets the daily statistics and, through [`statistic_counter`], the balance.
#[inline(never)]
fn reset_daily_statistics() {
    statistic_counter(Statistic::RequestsServed).store(0, Ordering::Relaxed);
}

/// The demo's target program: three deposits, a maintenance thread that resets statistics,
/// two more deposits, then the (wrong) final balance.
///
/// Like a real server it does its work over time (a request every 50 ms), so a watcher reads
/// each value before the next write.
pub fn run_target() -> anyhow::Result<()> {
    let pause = || std::thread::sleep(std::time::Duration::from_millis(50));
    for _ in 0..3 {
        deposit(100);
        pause();
    }
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(reset_daily_statistics)?
        .join()
        .map_err(|_| anyhow::anyhow!("the maintenance thread panicked"))?;
    pause();
    for _ in 0..2 {
        deposit(100);
        pause();
    }
    let balance = ACCOUNT_BALANCE.load(Ordering::Relaxed);
    println!("demo bank: final balance {balance} (expected {EXPECTED_FINAL_BALANCE})");
    Ok(())
}

/// The watch spec the demo uses: the balance, by its Rust path, writes only.
pub const DEMO_SPEC: &str = "hwbp::cmd::demo::ACCOUNT_BALANCE:w";

/// Prints each hit and keeps them for the verdict.
struct DemoSink {
    json: bool,
    hits: Vec<HitReport>,
}

impl HitSink for DemoSink {
    fn hit(&mut self, hit: &HitReport) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            write_json_line(&mut out, hit)?;
        } else {
            hit.write_text(&mut out)?;
        }
        out.flush()?;
        self.hits.push(hit.clone());
        Ok(())
    }
}

/// The verdict: the first write that lowered the balance (deposits only ever raise it).
#[derive(Serialize)]
struct Culprit<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: Option<&'a str>,
    file: Option<&'a str>,
    line: Option<u32>,
    tid: i32,
    comm: &'a str,
    value_before: u64,
    value_after: u64,
}

/// Runs `hwbp demo`.
pub fn run(args: crate::args::DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .context("cannot find the hwbp executable to run the demo program")?;
    let common = CommonWatchArgs {
        specs: vec![DEMO_SPEC.to_string()],
        target: TargetArgs {
            command: vec![exe.to_string_lossy().into_owned(), "demo-target".into()],
            ..TargetArgs::default()
        },
        json: args.json,
        duration: Some(30.0),
        ring_pages: 64,
        user_only: false,
    };
    if !args.json {
        println!(
            "hwbp demo: a small bank program ends with the wrong balance. Who wrote it?\n\
             running `hwbp watch {DEMO_SPEC} -- hwbp demo-target`\n"
        );
    }
    let plan = plan(&common)?;
    let mut sink = DemoSink {
        json: args.json,
        hits: Vec::new(),
    };
    let opts = RunOptions {
        callchain: false,
        max_hits: None,
        duration: common.duration.map(std::time::Duration::from_secs_f64),
        ring_pages: common.ring_pages,
        symbolize: true,
        read_values: true,
        announce: false,
    };
    let summary = run_plan(plan, &opts, &mut sink)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json_line(&mut out, &summary)?;
    } else {
        summary.write_text(&mut out)?;
    }
    let culprit = sink
        .hits
        .iter()
        .find_map(|hit| match (hit.value_before, hit.value_after) {
            (Some(before), Some(after)) if after < before => Some((hit, before, after)),
            _ => None,
        });
    let Some((hit, before, after)) = culprit else {
        anyhow::bail!(
            "the demo saw {} writes but none lowered the balance: hwbp missed the stray write",
            sink.hits.len()
        );
    };
    if args.json {
        write_json_line(
            &mut out,
            &Culprit {
                kind: "culprit",
                function: hit.function.as_deref(),
                file: hit.file.as_deref(),
                line: hit.line,
                tid: hit.tid,
                comm: &hit.comm,
                value_before: before,
                value_after: after,
            },
        )?;
    } else {
        writeln!(
            out,
            "\nculprit: ACCOUNT_BALANCE went from {before} to {after} in {}\n         on thread {} ({}); every other write came from deposit().",
            hit.location(),
            hit.tid,
            hit.comm
        )?;
    }
    out.flush()?;
    Ok(())
}
