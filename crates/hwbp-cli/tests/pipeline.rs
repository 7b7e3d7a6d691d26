//! The hit pipeline end to end on the real kernel: a consumer slower than the target loses no
//! hit (the rings are drained into hwbp's queue whatever the output does), `-o FILE` keeps hits
//! apart from a launched command's own output, and a watch whose pieces never had a turn on a
//! register says its total is a lower bound.
//!
//! Per-thread breakpoints only: these tests may run in parallel.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hwbp_fixtures::{Fixture, MANY, SEQUENCE, WRITER};
use serde_json::Value;

mod support;
use support::{assert_exited_ok, json_lines, of_type, summary, Running, ARMED, HWBP};

/// Peak resident set of process `pid` (`VmHWM` in `/proc/PID/status`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn a_consumer_slower_than_the_target_loses_no_hit() {
    const WRITES: u64 = 100_001;
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let mut hwbp = Command::new(HWBP)
        .args(["watch", "value", "-p", &pid, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hwbp_pid = hwbp.id();
    let mut stderr = BufReader::new(hwbp.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with(ARMED) {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "hwbp ended before arming"
        );
    }
    // The reader: 1,000 lines, then a 40 ms nap (at most 25,000 lines/s, while the target
    // writes 100,000 values in about a second).
    let stdout = hwbp.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for (i, line) in BufReader::new(stdout).lines().enumerate() {
            lines.push(line.unwrap());
            if i % 1000 == 999 {
                std::thread::sleep(Duration::from_millis(40));
            }
        }
        lines
    });
    let started = Instant::now();
    let done = target.command(&format!("go {WRITES}")).unwrap();
    assert_eq!(done.number("writes").unwrap(), WRITES);
    let wrote_in = started.elapsed();
    // Wait until hwbp has taken every hit from the kernel and handed most to the slow reader,
    // then read its peak memory while it still runs.
    std::thread::sleep(Duration::from_secs(1));
    let rss_kib = peak_rss_kib(hwbp_pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hwbp_pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let lines = reader.join().unwrap();
    let status = hwbp.wait().unwrap();
    let read_in = started.elapsed();
    assert!(status.success(), "hwbp failed: {status:?}");
    assert_exited_ok(target.finish().unwrap(), "sequence");
    let values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hits = of_type(&values, "hit");
    let sum = summary(&values);
    let watch = &sum["watchpoints"][0];
    eprintln!(
        "slow consumer: target wrote {WRITES} in {wrote_in:?}, reader took {read_in:?}; \
         hwbp peak RSS {rss_kib} KiB, queue peak {} bytes",
        sum["queue_peak_bytes"]
    );
    assert_eq!(hits.len() as u64, WRITES, "every hit reported");
    assert_eq!(watch["hits"], WRITES);
    assert_eq!(watch["reported"], WRITES);
    assert_eq!(watch["lost"], 0);
    assert_eq!(sum["lost_records"], 0);
    assert_eq!(sum["queue_dropped"], 0);
    // The reader really was slower: hwbp had to hold hits while it caught up.
    assert!(
        read_in > wrote_in + Duration::from_secs(1),
        "the reader ({read_in:?}) kept up with the target ({wrote_in:?})"
    );
    assert!(sum["queue_peak_bytes"].as_u64().unwrap() > 0);
    assert!(rss_kib < 512 * 1024, "peak RSS {rss_kib} KiB");
}

#[test]
fn a_queue_too_small_for_a_slow_consumer_counts_every_dropped_hit_as_lost() {
    const WRITES: u64 = 20_000;
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    // 64 KiB holds a few hundred hits, and nobody reads hwbp's stdout until the target is
    // done (the pipe holds 64 KiB more): the rest must be counted as lost, not go missing.
    let mut hwbp = Command::new(HWBP)
        .args([
            "watch",
            "value",
            "-p",
            &pid,
            "--json",
            "--queue-size",
            "64K",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(hwbp.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with(ARMED) {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "hwbp ended before arming"
        );
    }
    target.command(&format!("go {WRITES}")).unwrap();
    assert_exited_ok(target.finish().unwrap(), "sequence");
    let output = hwbp.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let values = json_lines(&String::from_utf8_lossy(&output.stdout));
    let sum = summary(&values);
    let watch = &sum["watchpoints"][0];
    let reported = watch["reported"].as_u64().unwrap();
    let dropped = sum["queue_dropped"].as_u64().unwrap();
    assert_eq!(watch["hits"], WRITES);
    assert_eq!(of_type(&values, "hit").len() as u64, reported);
    assert!(dropped > 0, "the queue never filled: {sum}");
    assert_eq!(watch["lost"].as_u64().unwrap(), WRITES - reported);
    assert_eq!(
        dropped + sum["lost_records"].as_u64().unwrap(),
        WRITES - reported,
        "{sum}"
    );
}

#[test]
fn output_file_keeps_hits_apart_from_the_commands_own_stdout() {
    let dir = std::env::temp_dir().join(format!("hwbp-o-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("hits.jsonl");
    let out_arg = out.to_string_lossy().into_owned();
    // The writer prints its ready line and one line per command to stdout, which it shares
    // with hwbp.
    let mut hwbp =
        Running::hwbp_keeping_stdin(&["watch", "counter", "--json", "-o", &out_arg, "--", WRITER]);
    let mut stdin = hwbp_stdin(&mut hwbp);
    for _ in 0..5 {
        writeln!(stdin, "go 20").unwrap();
    }
    drop(stdin);
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    // stdout: only the command's lines.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ready pid="), "{stdout}");
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("done writes=20")),
        "{stdout}"
    );
    // The file: only whole JSON lines, 100 hits and the summary.
    let text = std::fs::read_to_string(&out).unwrap();
    let values = json_lines(&text);
    assert_eq!(values.len(), text.lines().count());
    assert_eq!(of_type(&values, "hit").len(), 100);
    assert_eq!(summary(&values)["watchpoints"][0]["hits"], 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stdin hwbp's launched command reads.
fn hwbp_stdin(hwbp: &mut Running) -> std::process::ChildStdin {
    hwbp.take_stdin().expect("hwbp started with stdin piped")
}

#[test]
fn a_struct_whose_pieces_never_had_a_turn_reports_a_lower_bound_naming_them() {
    // The 64-byte struct takes 15 pieces; --flexible makes them all take turns, 10 s each, so
    // in a run of a fraction of a second only the first piece of each register is armed.
    // (A process given with -p keeps the full quantum from the start; a launched command's
    // first round is shorter.)
    let run = |json: bool| {
        let mut target = Fixture::spawn(MANY, &[]).unwrap();
        let pid = target.pid().to_string();
        let mut args = vec![
            "stat",
            "cfg",
            "--flexible",
            "--rotate-ms",
            "10000",
            "-p",
            &pid,
        ];
        if json {
            args.push("--json");
        }
        let hwbp = Running::hwbp(&args);
        target.command("fields 100 10").unwrap();
        assert_exited_ok(target.finish().unwrap(), "many");
        let (status, stdout, stderr) = hwbp.finish();
        assert!(status.success(), "{stderr:?}");
        stdout
    };
    let stat = &json_lines(&run(true))[0];
    let watch = &stat["watchpoints"][0];
    assert_eq!(watch["lower_bound"], true, "{watch}");
    let never: Vec<&str> = watch["never_armed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // 15 pieces on 4 registers, all flexible: 3 keep one each, 12 take turns on the last, and
    // only the first of those had its turn.
    assert_eq!(never.len(), 11, "{never:?}");
    assert!(never.contains(&"cfg.limits[2].max"), "{never:?}");
    assert!(never.iter().all(|m| m.starts_with("cfg.")), "{never:?}");
    let table = run(false);
    assert!(table.contains("lower bound:"), "{table}");
    assert!(
        table.contains("never armed (the run ended after"),
        "{table}"
    );
}
