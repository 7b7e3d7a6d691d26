//! `hwbp demo`: the main job on a bundled example.
//!
//! The example is a tiny "bank" program built into this binary (the hidden `demo-target`
//! subcommand), so the demo needs no compiler. Its account balance is corrupted by a stray
//! write: a statistics reset that, through a copy-paste slip in [`statistic_counter`], zeroes
//! the balance instead of a request counter. `hwbp demo` launches it under `hwbp watch` with a
//! write watchpoint on `ACCOUNT_BALANCE`, armed before the program's first instruction, and
//! names the function and line that made the bad write.

use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hwbp::{Hit, HitSink, HitValue, PlannedWatch, Target, WatchOptions, WatchPlan, Watcher};
use serde::Serialize;

use crate::output::{write_summary_text, Output, PrintingSink};
use crate::plan::stop_handle;

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

/// Prints each hit as `hwbp watch` does, at once, and keeps them for the verdict.
struct DemoSink {
    printing: PrintingSink,
    hits: Vec<Hit>,
}

impl HitSink for DemoSink {
    fn hit(&mut self, hit: &Hit, watch: &PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        let go_on = self.printing.hit(hit, watch)?;
        self.printing.out.flush()?;
        self.hits.push(hit.clone());
        Ok(go_on)
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
    if !args.json {
        println!(
            "hwbp demo: a small bank program ends with the wrong balance. Who wrote it?\n\
             running `hwbp watch {DEMO_SPEC} -- hwbp demo-target`\n"
        );
    }
    let plan = WatchPlan::builder()
        .watch(DEMO_SPEC)
        .target(Target::launch([exe.into_os_string(), "demo-target".into()]))
        .build()?;
    let options = WatchOptions {
        duration: Some(Duration::from_secs(30)),
        ring_pages: 64,
        ..WatchOptions::default()
    };
    let mut sink = DemoSink {
        // The demo prints its own story instead of the start-up notices.
        printing: PrintingSink::new(Output::open(None, true)?, args.json, false),
        hits: Vec::new(),
    };
    let summary = Watcher::new(plan, options)
        .with_stop_handle(stop_handle())
        .run(&mut sink)?;
    let DemoSink {
        printing: PrintingSink { mut out, .. },
        hits,
    } = sink;
    if args.json {
        out.json(&summary)?;
    } else {
        out.lines(|buf| write_summary_text(buf, &summary))?;
    }
    let culprit = hits.iter().find_map(|hit| match hit.value {
        Some(HitValue {
            old: Some(before),
            new: Some(after),
            ..
        }) if after < before => Some((hit, before, after)),
        _ => None,
    });
    let Some((hit, before, after)) = culprit else {
        anyhow::bail!(
            "the demo saw {} writes but none lowered the balance: hwbp missed the stray write",
            hits.len()
        );
    };
    let location = hit.code.location.as_ref();
    if args.json {
        out.json(&Culprit {
            kind: "culprit",
            function: hit.code.function(),
            file: location.and_then(|l| l.file.as_deref()),
            line: location.and_then(|l| l.line),
            tid: hit.tid,
            comm: &hit.comm,
            value_before: before,
            value_after: after,
        })?;
    } else {
        let place = hit.location();
        out.lines(|buf| {
            writeln!(
                buf,
                "\nculprit: ACCOUNT_BALANCE went from {before} to {after} in {place}\n         on thread {} ({}); every other write came from deposit().",
                hit.tid, hit.comm
            )
        })?;
    }
    out.flush()?;
    Ok(())
}
