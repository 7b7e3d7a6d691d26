//! `hwbp watch` and `hwbp stat` against real fixture programs on the real kernel: exact counts,
//! the writing functions, threads created after attach, a shared-library variable, PIE and
//! non-PIE executables, a command launched by hwbp, agreement with `perf stat`, and lost hits
//! reported when the ring overruns.
//!
//! These tests use per-thread breakpoints only, so they may run in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use hwbp_fixtures::{Fixture, FixtureLine, SHLIB, THREADS, WRITER, WRITER_NOPIE};
use serde_json::Value;

mod support;
use support::{
    assert_exited_ok, json_lines, of_type, run_hwbp, wait_for_perf_events, Running, HWBP,
};

fn pid_arg(f: &Fixture) -> String {
    f.pid().to_string()
}

/// The one `stat` JSON object hwbp prints at the end.
fn stat_report(stdout: &str) -> Value {
    let values = json_lines(stdout);
    let stats = of_type(&values, "stat");
    assert_eq!(stats.len(), 1, "one stat object expected in {stdout}");
    stats[0].clone()
}

#[test]
fn stat_counts_a_pie_data_variable_exactly_and_agrees_with_perf_stat() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = pid_arg(&writer);
    let perf_out = std::env::temp_dir().join(format!("hwbp-perf-stat-{pid}.csv"));
    let mut perf = Command::new("perf")
        .args(["stat", "-x", ",", "-o"])
        .arg(&perf_out)
        .args(["-e", &format!("mem:{:#x}/8:w", writer.addr()), "-p", &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("perf is installed (Debian package linux-perf)");
    let hwbp = Running::hwbp(&["stat", "counter", "-p", &pid, "--json"]);
    wait_for_perf_events(perf.id() as i32, 1);
    // perf enables its counters right after opening them.
    std::thread::sleep(Duration::from_millis(200));

    let done = writer.command("go 1000").unwrap();
    assert_eq!(done.field("writes"), Some("1000"));
    assert_exited_ok(writer.finish().unwrap(), "writer");

    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "hwbp failed: {stderr:?}");
    let perf_status = perf.wait().unwrap();
    assert!(perf_status.success());
    let perf_csv = std::fs::read_to_string(&perf_out).unwrap();
    let _ = std::fs::remove_file(&perf_out);
    let perf_count: u64 = perf_csv
        .lines()
        .find(|l| l.contains("mem:"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in perf output {perf_csv:?}"));

    let report = stat_report(&stdout);
    let w = &report["watchpoints"][0];
    assert_eq!(w["hits"], 1000, "{report}");
    assert_eq!(perf_count, 1000, "perf stat counted {perf_count}");
    assert_eq!(w["lost"], 0);
    assert_eq!(
        w["address"],
        format!("{:#x}", writer_addr_from(&stdout, &report))
    );
    let functions = w["functions"].as_object().unwrap();
    assert_eq!(functions.len(), 1, "{functions:?}");
    let (function, count) = functions.iter().next().unwrap();
    assert!(
        function.starts_with("bump_counter (writer.c:"),
        "{function}"
    );
    assert_eq!(count, 1000);
    let threads = w["threads"].as_object().unwrap();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads.keys().next().unwrap(), &format!("{pid} (writer)"));
}

/// The address in the report, checked against itself being the fixture's (passed through).
fn writer_addr_from(_stdout: &str, report: &Value) -> u64 {
    let text = report["watchpoints"][0]["address"].as_str().unwrap();
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn watch_follows_existing_threads_and_threads_created_after_attach() {
    let mut threads = Fixture::spawn(THREADS, &["2"]).unwrap();
    let pid = pid_arg(&threads);
    let prestarted = threads.ready().list("tids").unwrap();
    let hwbp = Running::hwbp(&["watch", "shared_var", "-p", &pid, "--json"]);
    let done = threads.command("go 2 3 100").unwrap();
    assert_eq!(done.field("total"), Some("500"));
    let new_tids = done.list("new_tids").unwrap();
    assert_exited_ok(threads.finish().unwrap(), "threads");

    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = of_type(&values, "hit");
    assert_eq!(hits.len(), 500);
    for hit in &hits {
        assert_eq!(hit["function"], "thread_writer", "{hit}");
        assert_eq!(hit["file"], "threads.c");
        assert_eq!(hit["access"], "w");
        assert_eq!(hit["pid"], threads_pid(&pid));
    }
    let mut per_tid = std::collections::BTreeMap::<i64, u64>::new();
    for hit in &hits {
        *per_tid.entry(hit["tid"].as_i64().unwrap()).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<i64, u64> = prestarted
        .iter()
        .chain(&new_tids)
        .map(|t| (*t as i64, 100))
        .collect();
    assert_eq!(
        per_tid, expected,
        "100 hits from each of the 2 old and 3 new threads"
    );
    let summary = of_type(&values, "summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["watchpoints"][0]["hits"], 500);
    assert_eq!(summary[0]["watchpoints"][0]["lost"], 0);
    assert_eq!(summary[0]["ended_by"], "target exited");
}

fn threads_pid(pid: &str) -> i64 {
    pid.parse().unwrap()
}

#[test]
fn stat_counts_a_shared_library_variable() {
    let mut shlib = Fixture::spawn(SHLIB, &[]).unwrap();
    let pid = pid_arg(&shlib);
    let hwbp = Running::hwbp(&["stat", "lib_value", "-p", &pid, "--json"]);
    shlib.command("go 50").unwrap();
    assert_exited_ok(shlib.finish().unwrap(), "shlib");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let report = stat_report(&stdout);
    let w = &report["watchpoints"][0];
    assert_eq!(w["hits"], 50);
    assert_eq!(w["len"], 4, "an int: the symbol's size");
    let functions = w["functions"].as_object().unwrap();
    assert_eq!(functions.len(), 1, "{functions:?}");
    assert!(functions
        .keys()
        .next()
        .unwrap()
        .starts_with("lib_bump (hwbpfix_lib.c:"));
}

#[test]
fn watch_launched_non_pie_command_sees_every_value_from_the_first_write() {
    // hwbp's JSON lines and the program's own lines share one stdout: keep the JSON ones.
    let mut json_seen = String::new();
    let mut child = Command::new(HWBP)
        .args(["watch", "counter", "--json", "--", WRITER_NOPIE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin: ChildStdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The launched program shares hwbp's stdout: its ready line comes first.
    stdout.read_line(&mut line).unwrap();
    let ready = FixtureLine::parse(line.trim()).unwrap();
    assert_eq!(ready.kind, "ready", "{line}");
    // Writes spaced out in time: each value is read after its own write (perf events never
    // stop the target, so back-to-back writes would all read the last value).
    for _ in 0..5 {
        writeln!(stdin, "go 1").unwrap();
        stdin.flush().unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        while line.starts_with('{') {
            json_seen.push_str(&line);
            line.clear();
            stdout.read_line(&mut line).unwrap();
        }
        assert!(line.starts_with("done writes=1"), "{line}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    json_seen.push_str(&rest);
    let values = json_lines(&json_seen);
    let hits = of_type(&values, "hit");
    let expected_address = format!("{:#x}", ready.number("addr").unwrap());
    let seen: Vec<(u64, u64)> = hits
        .iter()
        .map(|h| {
            assert_eq!(h["address"], expected_address);
            assert_eq!(h["function"], "bump_counter", "{h}");
            (
                h["value_before"].as_u64().unwrap(),
                h["value_after"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = (0..5).map(|i| (0x1234 + i, 0x1235 + i)).collect();
    assert_eq!(seen, expected);
    let summary = of_type(&values, "summary");
    assert_eq!(summary[0]["watchpoints"][0]["hits"], 5);
    assert_eq!(summary[0]["ended_by"], "the command exited with status 0");
}

#[test]
fn watch_reports_lost_hits_when_a_small_ring_overruns() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = pid_arg(&writer);
    let hwbp = Running::hwbp(&[
        "watch",
        "counter",
        "-p",
        &pid,
        "--json",
        "--ring-pages",
        "1",
    ]);
    writer.command("go 50000").unwrap();
    assert_exited_ok(writer.finish().unwrap(), "writer");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let reported = of_type(&values, "hit").len() as u64;
    let summary = of_type(&values, "summary");
    let w = &summary[0]["watchpoints"][0];
    assert_eq!(
        w["hits"], 50000,
        "the kernel's count is exact even when samples are lost"
    );
    assert_eq!(w["reported"], reported);
    let lost = w["lost"].as_u64().unwrap();
    assert!(
        lost > 0,
        "a one-page ring cannot hold 50,000 hits: {summary:?}"
    );
    assert_eq!(reported + lost, 50000);
    // As root the BPF handler's ring (sized from --ring-pages) is the one that overruns.
    let ring_full = summary[0]["handler"]["ring_full"].as_u64().unwrap_or(0);
    assert!(summary[0]["lost_records"].as_u64().unwrap() + ring_full > 0);
}

#[test]
fn watch_max_hits_stops_early_and_leaves_the_target_running() {
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = pid_arg(&writer);
    let hwbp = Running::hwbp(&["watch", "counter", "-p", &pid, "--json", "--max-hits", "3"]);
    writer.command("go 10").unwrap();
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    assert_eq!(of_type(&values, "hit").len(), 3);
    assert_eq!(
        of_type(&values, "summary")[0]["ended_by"],
        "max hits reached"
    );
    // The target is unharmed and no longer watched.
    let done = writer.command("go 2").unwrap();
    assert_eq!(done.field("writes"), Some("2"));
    assert_exited_ok(writer.finish().unwrap(), "writer");
}

#[test]
fn bad_requests_exit_2_with_one_line_naming_the_fix() {
    let writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = pid_arg(&writer);
    let cases: &[(&[&str], &str)] = &[
        (&["watch", "countr", "-p", &pid], "did you mean: counter"),
        (&["watch", "counter:r", "-p", &pid], "use rw"),
        (&["watch", "0x1000/0", "-p", &pid], "watches nothing"),
        (
            &["watch", "0xfffffffffffffffc/8", "-p", &pid],
            "end of the address space",
        ),
        (
            &["watch", "counter/100000", "-p", &pid],
            "need 12500 debug-register pieces",
        ),
        (&["watch", "counter", "-p", "999999999"], "999999999"),
        (&["watch", "counter"], "no target"),
        (
            &["watch", "mem:0x1000:rwx", "-p", &pid],
            "x cannot be combined",
        ),
        (
            &["watch", "counter", "--", "/nonexistent/prog"],
            "cannot run",
        ),
        (&["stat", "counter", "-p", &pid, "-I", "0"], "interval"),
        (
            &["watch", "counter", "-p", &pid, "--ring-pages", "3"],
            "power of two",
        ),
    ];
    for (args, needle) in cases {
        let (code, stdout, stderr) = run_hwbp(args);
        assert_eq!(code, Some(2), "{args:?}: stderr {stderr}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line expected, got {stderr}"
        );
        assert!(stderr.starts_with("hwbp: "), "{stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }
    drop(writer);
}

#[test]
fn demo_names_the_culprit_function_and_line() {
    let (code, stdout, stderr) = run_hwbp(&["demo"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("demo bank: final balance 200 (expected 1500)"),
        "{stdout}"
    );
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("culprit:"))
        .expect(&stdout);
    assert!(verdict.contains("went from 1300 to 0 in"), "{verdict}");
    assert!(verdict.contains("reset_daily_statistics+0x"), "{verdict}");
    assert!(verdict.contains("(demo.rs:"), "{verdict}");
    // The maintenance thread has exited long before hwbp reads its hit; its name comes from
    // the PERF_RECORD_COMM it wrote when it named itself.
    let on_thread = stdout
        .lines()
        .skip_while(|l| !l.starts_with("culprit:"))
        .nth(1)
        .expect(&stdout);
    assert!(
        on_thread.trim_start().starts_with("on thread ")
            && on_thread.contains(" (maintenance); every other write came from deposit()."),
        "{on_thread}"
    );
    // Hit times are seconds since arming on CLOCK_MONOTONIC: 6 writes 50 ms apart, in order,
    // the first within a few ms of the command starting.
    let times: Vec<f64> = stdout
        .lines()
        .filter(|l| l.contains(" w hwbp::cmd::demo::ACCOUNT_BALANCE:w by "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 6, "{stdout}");
    // The balance is an 8-byte integer (an AtomicU64 with DWARF in a debug build, without in
    // a release build): it reads as one, never with a "type unknown" note per hit.
    let values: Vec<(&str, &str)> = stdout
        .lines()
        .filter(|l| l.contains(" w hwbp::cmd::demo::ACCOUNT_BALANCE:w by "))
        .map(|l| {
            let (before, after) = l.rsplit_once(" -> ").expect(l);
            (before.rsplit(' ').next().unwrap(), after)
        })
        .collect();
    assert_eq!(
        values,
        [
            ("1000", "1100"),
            ("1100", "1200"),
            ("1200", "1300"),
            ("1300", "0"),
            ("0", "100"),
            ("100", "200")
        ],
        "{stdout}"
    );
    assert!(times[0] >= 0.0 && times[0] < 5.0, "{times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 0.040), "{times:?}");
}

#[test]
fn threads_that_exit_before_their_hits_are_read_keep_their_creators_name() {
    // The 3 new threads never name themselves and are joined before the command answers, so
    // /proc no longer has them when hwbp reads their hits: their names come from the
    // PERF_RECORD_FORK records (a new thread is called what its creator was).
    let mut threads = Fixture::spawn(THREADS, &["1"]).unwrap();
    let pid = pid_arg(&threads);
    threads.ready();
    let hwbp = Running::hwbp(&["watch", "shared_var", "-p", &pid, "--json"]);
    let done = threads.command("go 0 3 50").unwrap();
    assert_eq!(done.field("total"), Some("150"));
    let new_tids = done.list("new_tids").unwrap();
    assert_exited_ok(threads.finish().unwrap(), "threads");
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = of_type(&values, "hit");
    assert_eq!(hits.len(), 150);
    for hit in &hits {
        assert!(
            new_tids.contains(&(hit["tid"].as_i64().unwrap() as _)),
            "{hit}"
        );
        assert_eq!(hit["comm"], "threads", "{hit}");
    }
}
