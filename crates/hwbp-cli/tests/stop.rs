//! `hwbp watch --stop` (ptrace stop mode) against the `sequence` fixture on the real kernel:
//! the exact, complete old -> new sequence of 1000 writes, writes from threads created after
//! attach, `--changes-only`, `--if`, `--max-hits`, and a clean detach (DR7 reads 0 through
//! ptrace afterwards and the target runs on and exits normally).
//!
//! ptrace: every test name starts with `exclusive_`.

use hwbp_fixtures::{Fixture, SEQUENCE};
use hwbp_linux::ptrace::{peek_debugreg, SeizedThread};
use serde_json::Value;

mod support;
use support::{hits, json_lines, old_new, summary, Running};

/// DR7 of every thread of `pid`, read through ptrace.
fn dr7_of_threads(pid: i32) -> Vec<u64> {
    hwbp_linux::target::threads_of(pid)
        .unwrap()
        .into_iter()
        .map(|tid| {
            let seized = SeizedThread::seize_stopped(tid).unwrap();
            let dr7 = peek_debugreg(tid, 7).unwrap();
            seized.detach().unwrap();
            dr7
        })
        .collect()
}

#[test]
fn exclusive_stop_reports_the_exact_complete_sequence_of_1000_writes() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let target_pid = target.pid();
    let pid = target_pid.to_string();
    let hwbp = Running::hwbp(&["watch", "--stop", "value", "-p", &pid, "--json"]);
    let done = target.command("go 1000").unwrap();
    assert_eq!(done.field("value"), Some("1000"));
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    let sequence: Vec<(u64, u64)> = hits.iter().map(|h| old_new(h)).collect();
    let expected: Vec<(u64, u64)> = (1..=1000).map(|i| (i - 1, i)).collect();
    assert_eq!(sequence, expected);
    for hit in &hits {
        assert_eq!(hit["exact"], true);
        assert_eq!(hit["tid"].as_i64(), Some(target_pid.into()));
        assert_eq!(hit["function"], "store_value");
        assert_eq!(hit["file"], "sequence.c");
        assert!(hit["line"].as_u64().is_some());
        assert!(hit.get("cpu").is_none());
    }
    let s = summary(&values);
    assert_eq!(s["watchpoints"][0]["hits"], 1000);
    assert_eq!(s["watchpoints"][0]["reported"], 1000);
    assert_eq!(s["ended_by"], "the target exited with status 0");
}

#[test]
fn exclusive_stop_catches_writes_from_threads_created_after_attach() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "--stop", "value", "-p", &pid, "--json"]);
    let done = target.command("threads 4 50").unwrap();
    let new_tids = done.list("new_tids").unwrap();
    assert_eq!(new_tids.len(), 4);
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert_eq!(hits.len(), 200);
    for (k, tid) in (1u64..).zip(&new_tids) {
        let from_thread: Vec<&&Value> = hits
            .iter()
            .filter(|h| h["tid"].as_i64() == Some(i64::from(*tid)))
            .collect();
        // Each thread's own writes, exactly, even though the threads race: the value comes
        // from the decoded store, not from memory read later.
        let written: Vec<u64> = from_thread
            .iter()
            .map(|h| h["value_after"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (1..=50).map(|i| k * 1_000_000 + i).collect();
        assert_eq!(written, expected, "thread {tid}");
        assert!(from_thread.iter().all(|h| h["exact"] == true));
    }
    assert_eq!(summary(&values)["watchpoints"][0]["hits"], 200);
}

#[test]
fn exclusive_stop_changes_only_drops_same_value_writes() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&[
        "watch",
        "--stop",
        "--changes-only",
        "value",
        "-p",
        &pid,
        "--json",
    ]);
    let done = target.command("dup 100").unwrap();
    assert_eq!(done.field("writes"), Some("200"));
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let sequence: Vec<(u64, u64)> = hits(&values).iter().map(|h| old_new(h)).collect();
    let expected: Vec<(u64, u64)> = (1..=100).map(|i| (i - 1, i)).collect();
    assert_eq!(sequence, expected);
    let totals = &summary(&values)["watchpoints"][0];
    assert_eq!(totals["hits"], 200);
    assert_eq!(totals["reported"], 100);
}

#[test]
fn exclusive_stop_condition_tests_the_new_value() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&[
        "watch", "--stop", "value", "-p", &pid, "--json", "--if", ">990",
    ]);
    target.command("go 1000").unwrap();
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let sequence: Vec<(u64, u64)> = hits(&values).iter().map(|h| old_new(h)).collect();
    let expected: Vec<(u64, u64)> = (991..=1000).map(|i| (i - 1, i)).collect();
    assert_eq!(sequence, expected);
}

#[test]
fn exclusive_stop_detaches_cleanly_after_max_hits_and_the_target_runs_on() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid();
    let hwbp = Running::hwbp(&[
        "watch",
        "--stop",
        "value",
        "-p",
        &pid.to_string(),
        "--json",
        "--max-hits",
        "5",
    ]);
    let done = target.command("go 20").unwrap();
    assert_eq!(done.field("value"), Some("20"));
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let sequence: Vec<(u64, u64)> = hits(&values).iter().map(|h| old_new(h)).collect();
    assert_eq!(sequence, (1..=5).map(|i| (i - 1, i)).collect::<Vec<_>>());
    assert_eq!(summary(&values)["ended_by"], "max hits reached");
    assert_eq!(dr7_of_threads(pid), vec![0]);
    let done = target.command("go 3").unwrap();
    assert_eq!(done.field("value"), Some("3"));
    assert!(target.finish().unwrap().success());
}

#[test]
fn exclusive_stop_detaches_cleanly_on_ctrl_c() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid();
    let hwbp = Running::hwbp(&["watch", "--stop", "value", "-p", &pid.to_string(), "--json"]);
    target.command("go 10").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hwbp.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    assert_eq!(hits(&values).len(), 10);
    assert_eq!(summary(&values)["ended_by"], "interrupted");
    assert_eq!(dr7_of_threads(pid), vec![0]);
    target.command("go 2").unwrap();
    assert!(target.finish().unwrap().success());
}

#[test]
fn exclusive_stop_launches_a_command_and_reports_its_exit() {
    // A launched command under stop mode: its stdin is hwbp's (null), so it exits at once.
    let hwbp = Running::hwbp(&["watch", "--stop", "value", "--json", "--", SEQUENCE]);
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    assert_eq!(hits(&values).len(), 0);
    assert_eq!(
        summary(&values)["ended_by"],
        "the command exited with status 0"
    );
}

#[test]
fn exclusive_stop_identical_watches_share_a_register_and_both_report() {
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    // value/16 takes DR0 and DR1; `value` is its first piece and shares DR0.
    let hwbp = Running::hwbp(&["watch", "--stop", "value/16", "value", "-p", &pid, "--json"]);
    target.command("go 3").unwrap();
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let labels: Vec<&str> = hits(&values)
        .iter()
        .map(|h| h["watch"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["value/16", "value", "value/16", "value", "value/16", "value"]
    );
}
