//! The library facade on the real kernel, as a Rust program uses it: a plan from specs and a
//! target, a watcher, typed hits through a sink, a typed summary; and the `who_wrote` example.
//!
//! Per-thread breakpoints (perf mode) may run in parallel; the `exclusive_` test traces with
//! ptrace (stop mode).

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::time::Duration;

use std::sync::mpsc::{channel, Sender};

use hwbp::{ErrorKind, Hit, HitSink, Notice, Target, WatchId, WatchOptions, WatchPlan, Watcher};

/// Keeps every hit, says when the watch is armed, and breaks after `limit` hits.
struct Collect {
    hits: Vec<Hit>,
    armed: Sender<()>,
    limit: Option<usize>,
}

impl HitSink for Collect {
    fn hit(&mut self, hit: &Hit) -> std::io::Result<ControlFlow<()>> {
        self.hits.push(hit.clone());
        Ok(match self.limit {
            Some(limit) if self.hits.len() >= limit => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
    }

    fn notice(&mut self, notice: &Notice) -> std::io::Result<()> {
        if matches!(notice, Notice::Armed { .. }) {
            let _ = self.armed.send(());
        }
        Ok(())
    }
}
use hwbp_fixtures::{Fixture, SEQUENCE, WRITER};

/// Runs `watcher` on a thread of its own (the target is a process, not a launch) into a
/// [`Collect`] that breaks after `limit` hits; returns once the watch is armed.
fn run_when_armed(
    watcher: Watcher,
    limit: Option<usize>,
) -> std::thread::JoinHandle<(hwbp::Summary, Vec<Hit>)> {
    let (armed, is_armed) = channel();
    let runner = std::thread::spawn(move || {
        let mut sink = Collect {
            hits: Vec::new(),
            armed,
            limit,
        };
        let summary = watcher.run(&mut sink).unwrap();
        (summary, sink.hits)
    });
    is_armed.recv_timeout(Duration::from_secs(30)).unwrap();
    runner
}

#[test]
fn two_identical_specs_are_two_watches_with_their_own_counts() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let plan = WatchPlan::builder()
        .watch("value")
        .watch("value")
        .target(Target::Process(target.pid()))
        .build()
        .unwrap();
    assert_eq!(plan.watches().len(), 2);
    assert_eq!(plan.watches()[1].id, WatchId(1));
    assert_eq!(plan.watches()[0].addr, target.addr());
    let watcher = Watcher::new(plan, WatchOptions::default());
    let stop = watcher.stop_handle();
    let runner = run_when_armed(watcher, None);
    target.command("go 50").unwrap();
    // The values are read after each drained batch (every 10 ms at the latest).
    std::thread::sleep(Duration::from_millis(200));
    stop.stop();
    let (summary, hits) = runner.join().unwrap();
    target.finish().unwrap();
    assert_eq!(summary.ended_by, "interrupted");
    for id in [WatchId(0), WatchId(1)] {
        let totals = summary.watch(id).unwrap();
        assert_eq!((totals.hits, totals.reported, totals.lost), (50, 50, 0));
        let mine: Vec<&Hit> = hits.iter().filter(|h| h.watch == id).collect();
        assert_eq!(mine.len(), 50);
        assert!(mine
            .iter()
            .all(|h| h.code.function() == Some("store_value")));
        assert!(mine.iter().all(|h| h.tid == target_pid(&hits)));
        // Every hit has a value; the last one is the last value written, whichever engine
        // read it (the BPF handler as root, else decoded stores or read after).
        assert!(mine.iter().all(|h| h.value.is_some()));
        assert_eq!(mine[49].value.and_then(|v| v.new), Some(50));
        if mine.iter().all(|h| h.is_exact()) {
            let values: Vec<u64> = mine.iter().filter_map(|h| h.value?.new).collect();
            assert_eq!(values, (1..=50).collect::<Vec<u64>>());
        }
    }
}

/// A plan watching the fixture's `value` in its process.
fn value_plan(target: &Fixture) -> WatchPlan {
    WatchPlan::builder()
        .watch("value")
        .target(Target::Process(target.pid()))
        .build()
        .unwrap()
}

/// Runs a stop-mode watch of `value` in `target` with `symbolize` while it writes 1..=5.
fn stop_mode_hits(target: &mut Fixture, symbolize: bool) -> Vec<Hit> {
    let plan = value_plan(target);
    let options = WatchOptions {
        mode: hwbp::Mode::Stop,
        symbolize,
        ..WatchOptions::default()
    };
    let watcher = Watcher::new(plan, options);
    let stop = watcher.stop_handle();
    let runner = run_when_armed(watcher, Some(5));
    target.command("go 5").unwrap();
    let (summary, hits) = runner.join().unwrap();
    stop.stop();
    assert_eq!(summary.ended_by, "stopped by the hit sink");
    let values: Vec<Option<u64>> = hits.iter().map(|h| h.value.and_then(|v| v.new)).collect();
    assert_eq!(
        values,
        (1..=5).map(Some).collect::<Vec<_>>(),
        "exact values either way"
    );
    hits
}

#[test]
fn exclusive_stop_mode_symbolizes_only_when_asked() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let plain = stop_mode_hits(&mut target, false);
    assert!(
        plain
            .iter()
            .all(|h| h.code.function().is_none() && h.code.location.is_none()),
        "symbolize: false leaves the code unnamed: {:?}",
        plain[0].code
    );
    assert!(plain.iter().all(|h| h.location().starts_with("0x")));
    let named = stop_mode_hits(&mut target, true);
    assert!(named
        .iter()
        .all(|h| h.code.function() == Some("store_value")));
    target.finish().unwrap();
}

fn target_pid(hits: &[Hit]) -> i32 {
    hits[0].pid
}

#[test]
fn a_sink_that_breaks_ends_the_run_with_its_summary() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let plan = value_plan(&target);
    let (armed, is_armed) = channel();
    let runner = std::thread::spawn(move || {
        let mut sink = Collect {
            hits: Vec::new(),
            armed,
            limit: Some(3),
        };
        let summary = Watcher::new(plan, WatchOptions::default())
            .run(&mut sink)
            .unwrap();
        (summary, sink.hits.len())
    });
    is_armed.recv_timeout(Duration::from_secs(30)).unwrap();
    target.command("go 10").unwrap();
    let (summary, seen) = runner.join().unwrap();
    target.finish().unwrap();
    assert_eq!(seen, 3);
    assert_eq!(summary.ended_by, "stopped by the hit sink");
    assert_eq!(summary.watchpoints[0].reported, 3);
}

#[test]
fn bad_input_is_refused_before_anything_is_armed() {
    let target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    // A name one edit from one the process defines is a typo, refused; a name no image
    // defines and none resembles waits for a library that defines it (issue 21).
    let error = WatchPlan::builder()
        .watch("valu")
        .target(Target::Process(target.pid()))
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadInput);
    assert!(error.to_string().contains("valu"), "{error}");
    assert!(error.to_string().contains("did you mean: value"), "{error}");
    let pending = WatchPlan::builder()
        .watch("no_such_variable")
        .target(Target::Process(target.pid()))
        .build()
        .unwrap();
    assert!(pending.is_pending());
    let error = WatchPlan::builder().watch("value").build().unwrap_err();
    assert!(error.to_string().starts_with("no target"), "{error}");
    let plan = value_plan(&target);
    let options = WatchOptions {
        ring_pages: 3,
        ..WatchOptions::default()
    };
    let error = Watcher::new(plan, options)
        .run(hwbp::from_fn(|_| Ok(ControlFlow::Continue(()))))
        .unwrap_err();
    assert!(error.is_bad_input());
    assert!(error.to_string().contains("power of two"), "{error}");
    target.finish().unwrap();
}

/// The `who_wrote` example, built by `cargo test`/`cargo nextest` next to the test binaries.
fn who_wrote() -> std::path::PathBuf {
    let deps = std::env::current_exe().unwrap();
    let example = deps
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples/who_wrote"))
        .unwrap();
    assert!(
        example.exists(),
        "{} is missing: build it with cargo build -p hwbp --example who_wrote",
        example.display()
    );
    example
}

#[test]
fn the_who_wrote_example_prints_thread_function_line_and_value_per_write() {
    let mut example = Command::new(who_wrote())
        .args(["counter", "--", WRITER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = example.stdin.take().unwrap();
    let mut lines = BufReader::new(example.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    let ready = next();
    assert!(ready.starts_with("ready pid="), "{ready}");
    let pid: i32 = ready["ready pid=".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut writes = Vec::new();
    // One write at a time, each seen before the next: every value is the one written.
    for expected in [0x1235, 0x1236, 0x1237] {
        writeln!(stdin, "go 1").unwrap();
        let mut line = next();
        if line.starts_with("done") {
            line = next();
        } else {
            assert!(next().starts_with("done"));
        }
        assert_eq!(
            line,
            format!("thread {pid} (writer) in bump_counter+0x0 (writer.c:26) wrote {expected}")
        );
        writes.push(line);
    }
    drop(stdin);
    let output = example.wait_with_output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim(), "3 writes; the command exited with status 0");
}
