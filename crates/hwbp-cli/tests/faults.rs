//! Faults during a watch, on the real kernel: the target exits, is killed, forks or execs
//! mid-watch; 10,000 short-lived threads churn; hwbp itself gets SIGINT, SIGTERM or a closed
//! pipe; the ring buffer overruns. In every case hwbp ends cleanly (summary printed, exit 0),
//! counts exactly what the kernel counted, and leaves the target running with its debug
//! registers free.
//!
//! Per-thread breakpoints only: these tests may run in parallel.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hwbp_fixtures::{Fixture, CHURN, WRITER};
use serde_json::Value;

mod support;
use support::{assert_exited_ok, assert_registers_free, json_lines, Running};
/// The writer's `counter` starts at 0x1234.
const INITIAL_COUNTER: u64 = 0x1234;

/// The last stdout line as JSON (stat's report, watch's summary).
fn last_json(stdout: &str) -> Value {
    let line = stdout.lines().last().unwrap_or_else(|| panic!("no output"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}"))
}

#[test]
fn target_exiting_mid_watch_ends_the_watch_with_its_summary() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid().to_string();
    let hwbp = Running::hwbp_keeping_stdin(&["stat", "counter", "-p", &pid, "--json"]);
    writer.command("go 5").unwrap();
    assert_exited_ok(writer.finish().unwrap(), "writer");
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let report = last_json(&stdout);
    assert_eq!(report["ended_by"], "target exited");
    assert_eq!(report["watchpoints"][0]["hits"], 5);
}

#[test]
fn launched_command_killed_by_sigkill_is_reported_with_its_signal() {
    let hwbp = Running::hwbp_keeping_stdin(&["stat", "churn_var", "--json", "--", CHURN]);
    let armed = hwbp.stderr_seen().last().unwrap().clone();
    let pid: i32 = armed
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {armed:?}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let report = last_json(&stdout);
    assert_eq!(
        report["ended_by"],
        "the command killed by signal 9 (SIGKILL)"
    );
    assert_eq!(report["watchpoints"][0]["hits"], 0);
}

#[test]
fn launched_command_killed_by_sigtrap_is_reported_with_the_likely_cause() {
    // A SIGTRAP nobody sent is how these VMs report a watchpoint hit they could not match
    // (bench/sigtrap): the summary says so. Here the program sends it to itself.
    let hwbp = Running::hwbp(&[
        "stat",
        "0x1000/8:w",
        "--json",
        "--",
        "/bin/sh",
        "-c",
        "kill -TRAP $$",
    ]);
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let report = last_json(&stdout);
    let ended_by = report["ended_by"].as_str().unwrap();
    assert!(
        ended_by.starts_with("the command killed by signal 5 (SIGTRAP)"),
        "{ended_by}"
    );
    assert!(
        ended_by.contains("could not match to a watchpoint"),
        "{ended_by}"
    );
}

#[test]
fn writes_of_a_forked_child_are_reported_with_the_childs_pid() {
    let mut churn = Fixture::spawn(CHURN, &[]).unwrap();
    let pid = churn.pid();
    let hwbp =
        Running::hwbp_keeping_stdin(&["watch", "churn_var", "-p", &pid.to_string(), "--json"]);
    churn.command("go 1 2").unwrap();
    let done = churn.command("fork 7").unwrap();
    let child = done.number("child").unwrap() as i64;
    assert_eq!(done.number("status").unwrap(), 0);
    assert_exited_ok(churn.finish().unwrap(), "churn");
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let lines = json_lines(&stdout);
    let hits: Vec<&Value> = lines.iter().filter(|v| v["type"] == "hit").collect();
    let by_child = hits.iter().filter(|h| h["pid"] == child).count();
    let by_parent = hits.iter().filter(|h| h["pid"] == i64::from(pid)).count();
    assert_eq!((by_parent, by_child), (2, 7), "{stdout}");
    assert!(hits
        .iter()
        .filter(|h| h["pid"] == child)
        .all(|h| h["tid"] == child));
    let summary = lines.last().unwrap();
    assert_eq!(summary["watchpoints"][0]["hits"], 9);
    assert_eq!(summary["watchpoints"][0]["lost"], 0);
}

#[test]
fn target_exec_ends_the_watch_on_the_old_image() {
    let mut churn = Fixture::spawn(CHURN, &[]).unwrap();
    let pid = churn.pid();
    let hwbp =
        Running::hwbp_keeping_stdin(&["stat", "churn_var", "-p", &pid.to_string(), "--json"]);
    churn.command("go 1 3").unwrap();
    churn.send("exec").unwrap();
    let ready = hwbp_fixtures::FixtureLine::parse(&churn.read_line().unwrap()).unwrap();
    assert_eq!(ready.field("image"), Some("2"));
    assert_eq!(ready.number("pid").unwrap(), pid as u64);
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let report = last_json(&stdout);
    assert_eq!(
        report["ended_by"],
        "target exec'd a new program; the address watched was the old program's"
    );
    assert_eq!(report["watchpoints"][0]["hits"], 3);
    // The new image runs on, unwatched.
    let done = churn.command("go 2 2").unwrap();
    assert_eq!(done.number("writes").unwrap(), 4);
    assert_registers_free(pid);
}

fn signal_ends_the_watch_cleanly(signal: nix::sys::signal::Signal) {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid();
    let hwbp = Running::hwbp_keeping_stdin(&["stat", "counter", "-p", &pid.to_string(), "--json"]);
    writer.command("go 5").unwrap();
    hwbp.signal(signal);
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{signal}");
    let report = last_json(&stdout);
    assert_eq!(report["ended_by"], "interrupted");
    assert_eq!(report["watchpoints"][0]["hits"], 5);
    // The target runs on, its writes no longer watched, every register free.
    let done = writer.command("go 3").unwrap();
    assert_eq!(done.number("value").unwrap(), INITIAL_COUNTER + 8);
    assert_registers_free(pid);
    assert_exited_ok(writer.finish().unwrap(), "writer");
}

#[test]
fn sigint_prints_the_summary_and_releases_the_target() {
    signal_ends_the_watch_cleanly(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn sigterm_prints_the_summary_and_releases_the_target() {
    signal_ends_the_watch_cleanly(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn closed_output_pipe_ends_hwbp_quietly_with_exit_0() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid();
    // hwbp watch ... | head -1
    let (read_end, write_end) = std::io::pipe().unwrap();
    let mut hwbp = Running::hwbp_keeping_stdin_with(
        &["watch", "counter", "-p", &pid.to_string()],
        Stdio::from(write_end),
    );
    let head = Command::new("head")
        .arg("-1")
        .stdin(Stdio::from(read_end))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writer.command("go 1").unwrap();
    let head_out = head.wait_with_output().unwrap();
    let first = String::from_utf8(head_out.stdout).unwrap();
    assert!(first.contains("counter"), "{first:?}");
    // The next hit's write meets the closed pipe: hwbp ends, exit 0, nothing on stderr.
    let mut child_ended = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut writes = 1;
    while Instant::now() < deadline {
        writer.command("go 1").unwrap();
        writes += 1;
        std::thread::sleep(Duration::from_millis(50));
        if hwbp.has_ended() {
            child_ended = true;
            break;
        }
    }
    assert!(child_ended, "hwbp kept running after head exited");
    let (status, _, stderr) = hwbp.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    // The 'watching' line, then the engine notice (the BPF handler, as root).
    assert_eq!(stderr.len(), 2, "only the start-up lines: {stderr:?}");
    assert_eq!(stderr[1], "hwbp: values: in-kernel BPF handler (exact)");
    let done = writer.command("go 1").unwrap();
    assert_eq!(done.number("value").unwrap(), INITIAL_COUNTER + writes + 1);
    assert_registers_free(pid);
}

#[test]
fn ten_thousand_short_lived_threads_are_all_counted() {
    const THREADS: u64 = 10_000;
    const WRITES_EACH: u64 = 5;
    let mut churn = Fixture::spawn(CHURN, &[]).unwrap();
    let pid = churn.pid();
    let hwbp =
        Running::hwbp_keeping_stdin(&["stat", "churn_var", "-p", &pid.to_string(), "--json"]);
    let done = churn
        .command(&format!("go {THREADS} {WRITES_EACH}"))
        .unwrap();
    assert_eq!(done.number("writes").unwrap(), THREADS * WRITES_EACH);
    assert_exited_ok(churn.finish().unwrap(), "churn");
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let report = last_json(&stdout);
    let watch = &report["watchpoints"][0];
    assert_eq!(watch["hits"], THREADS * WRITES_EACH, "{report}");
    let sampled = watch["sampled"].as_u64().unwrap();
    let lost = watch["lost"].as_u64().unwrap();
    assert_eq!(sampled + lost, THREADS * WRITES_EACH);
    let threads = watch["threads"].as_object().unwrap();
    let per_thread: u64 = threads.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(per_thread, sampled);
    if lost == 0 {
        assert_eq!(threads.len() as u64, THREADS);
        assert!(threads.values().all(|v| v.as_u64() == Some(WRITES_EACH)));
    }
}

/// With the BPF handler (root), `hwbp stat` counts in a kernel map and samples nothing, so even
/// a 1-page perf ring loses nothing: every hit is in the per-thread and per-function counts.
#[test]
fn ring_overrun_is_counted_as_lost_and_the_total_stays_exact() {
    const WRITES: u64 = 200_000;
    let mut churn = Fixture::spawn(CHURN, &[]).unwrap();
    let pid = churn.pid();
    let hwbp = Running::hwbp_keeping_stdin(&[
        "stat",
        "churn_var",
        "-p",
        &pid.to_string(),
        "--json",
        "--ring-pages",
        "1",
    ]);
    churn.command(&format!("go 1 {WRITES}")).unwrap();
    assert_exited_ok(churn.finish().unwrap(), "churn");
    let (status, stdout, _) = hwbp.finish_within(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let watch = &last_json(&stdout)["watchpoints"][0];
    assert_eq!(watch["hits"], WRITES);
    assert_eq!(watch["lost"], 0, "counted in the kernel: {watch}");
    assert_eq!(watch["sampled"], WRITES, "{watch}");
    assert_eq!(
        watch["functions"]["churn_write (churn.c:26)"], WRITES,
        "{watch}"
    );
}
