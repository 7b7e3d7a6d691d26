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
    fn hit(&mut self, hit: &Hit, _: &hwbp::PlannedWatch) -> hwbp::Result<ControlFlow<()>> {
        self.hits.push(hit.clone());
        Ok(match self.limit {
            Some(limit) if self.hits.len() >= limit => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
    }

    fn notice(&mut self, notice: &Notice) -> hwbp::Result<()> {
        if matches!(notice, Notice::Armed { .. }) {
            let _ = self.armed.send(());
        }
        Ok(())
    }
}
use hwbp_fixtures::{Fixture, SEQUENCE, TYPED, WRITER};

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
    assert_eq!(summary.ended_by, hwbp::EndedBy::Interrupted);
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
    assert_eq!(summary.ended_by, hwbp::EndedBy::Sink);
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
    assert_eq!(summary.ended_by, hwbp::EndedBy::Sink);
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
        .run(hwbp::from_fn(|_, _| Ok(ControlFlow::Continue(()))))
        .unwrap_err();
    assert!(error.is_bad_input());
    assert!(error.to_string().contains("power of two"), "{error}");
    target.finish().unwrap();
}

/// Starts example `name` (built by `cargo test`/`cargo nextest` next to the test binaries)
/// with `args`: the child, its stdin and its stdout's lines.
fn spawn_example(
    name: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let deps = std::env::current_exe().unwrap();
    let example = deps
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("examples").join(name))
        .unwrap();
    assert!(
        example.exists(),
        "{} is missing: build it with cargo build -p hwbp --example {name}",
        example.display()
    );
    let mut child = Command::new(example)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

#[test]
fn the_who_wrote_example_prints_thread_function_line_and_value_per_write() {
    let (example, mut stdin, mut lines) = spawn_example("who_wrote", &["counter", "--", WRITER]);
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

/// Runs the `typed_values` example on `typed` watching `spec` and feeds it each command in
/// turn, waiting for the fixture's `done` and the example's lines for that write (each write
/// is seen before the next), which must be exactly `expected`; returns the example's stderr.
fn run_typed_values(spec: &str, writes: &[(&str, &[&str])]) -> String {
    let (example, mut stdin, mut lines) = spawn_example("typed_values", &[spec, "--", TYPED]);
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.starts_with("ready pid="), "{ready}");
    for (command, expected) in writes {
        writeln!(stdin, "{command}").unwrap();
        let (mut done, mut printed) = (false, Vec::new());
        while !done || printed.len() < expected.len() {
            let line = lines.next().unwrap().unwrap();
            if line.starts_with("done") {
                done = true;
            } else {
                printed.push(line);
            }
        }
        assert_eq!(printed, *expected, "after {command}");
    }
    drop(stdin);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(rest.is_empty(), "{rest:?}");
    let output = example.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn the_typed_values_example_reads_an_int32_as_a_signed_value() {
    let stderr = run_typed_values(
        "cfg.limits[2].max",
        &[
            (
                "max 7",
                &["cfg.limits[2].max (int32_t) = signed 7, was 5, in main (typed.c:122)"],
            ),
            (
                "max -3",
                &[
                    "cfg.limits[2].max (int32_t) = signed -3, was 7, in main (typed.c:122)",
                    "cfg.limits[2].max went negative: -3",
                ],
            ),
        ],
    );
    assert_eq!(stderr, "2 hits; the command exited with status 0");
}

#[test]
fn the_typed_values_example_reads_a_structs_members() {
    let stderr = run_typed_values(
        "cfg.limits[2]",
        &[(
            "max -9",
            &[
                "cfg.limits[2] (struct limit) = {min: signed 4, max: signed -9}, was {min = 4, \
               max = 5}, in main (typed.c:122)",
            ],
        )],
    );
    assert_eq!(stderr, "1 hits; the command exited with status 0");
}
