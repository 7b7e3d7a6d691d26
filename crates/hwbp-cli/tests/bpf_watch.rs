//! `hwbp watch` and `hwbp stat` without `--stop`, with the in-kernel BPF hit handler (issue 12),
//! on the real kernel: every value of a tight loop of 100,000 writes exact, `--changes-only` and
//! `--if` filtered in the kernel, a kernel-mode `read(2)` write with its bytes, rotation with
//! exact values on the pieces that were armed, and `hwbp stat`'s tables counted in the kernel.
//!
//! Run as root (the handler needs root, or CAP_BPF + CAP_PERFMON); every test loads BPF, so
//! every name starts with `exclusive_`. The fallback without BPF is in `security.rs`.

use hwbp_fixtures::{Fixture, KREAD, MANY, SEQUENCE};
use serde_json::Value;

mod support;
use support::{hits, json_lines, old_new, summary, Running};

const HANDLER_NOTICE: &str = "hwbp: values: in-kernel BPF handler (exact)";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load BPF: run them as root (or with CAP_BPF + CAP_PERFMON)"
    );
}

/// Every hit came from the handler and is exact.
fn assert_handler_values(hits: &[&Value]) {
    for hit in hits {
        assert_eq!(hit["exact"], true, "{hit}");
        assert_eq!(hit["value_source"], "handler", "{hit}");
    }
}

#[test]
fn exclusive_tight_loop_of_100000_writes_has_every_value_exact_without_stop() {
    require_root();
    const N: u64 = 100_000;
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "value", "-p", &pid, "--json"]);
    let done = target.command(&format!("go {N}")).unwrap();
    assert_eq!(done.number("value").unwrap(), N);
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    assert!(stderr.iter().any(|l| l == HANDLER_NOTICE), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert_handler_values(&hits);
    let sequence: Vec<(u64, u64)> = hits.iter().map(|h| old_new(h)).collect();
    let expected: Vec<(u64, u64)> = (1..=N).map(|i| (i - 1, i)).collect();
    assert_eq!(sequence.len(), expected.len());
    assert!(sequence == expected, "first difference at {:?}", {
        let i = sequence.iter().zip(&expected).position(|(a, b)| a != b);
        i.map(|i| (i, sequence[i], expected[i]))
    });
    assert!(hits.iter().all(|h| h["function"] == "store_value"));
    let totals = &summary(&values)["watchpoints"][0];
    assert_eq!(
        (totals["hits"].as_u64(), totals["lost"].as_u64()),
        (Some(N), Some(0))
    );
    let handler = &summary(&values)["handler"];
    assert_eq!(handler["runs"], N, "{handler}");
    assert_eq!(handler["skipped"], 0, "{handler}");
}

#[test]
fn exclusive_changes_only_without_stop_drops_same_value_writes_in_the_kernel() {
    require_root();
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "value", "-p", &pid, "--json", "--changes-only"]);
    target.command("dup 500").unwrap();
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert_handler_values(&hits);
    let sequence: Vec<(u64, u64)> = hits.iter().map(|h| old_new(h)).collect();
    assert_eq!(sequence, (1..=500).map(|i| (i - 1, i)).collect::<Vec<_>>());
    let s = summary(&values);
    assert_eq!(s["watchpoints"][0]["hits"], 1000);
    assert_eq!(s["watchpoints"][0]["reported"], 500);
    // Filtered hits are not lost.
    assert_eq!(s["watchpoints"][0]["lost"], 0);
    assert_eq!(s["handler"]["filtered"], 500);
}

#[test]
fn exclusive_if_below_zero_without_stop_tests_the_signed_value_in_the_kernel() {
    require_root();
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "value", "-p", &pid, "--json", "--if", "<0"]);
    target.command("neg 300").unwrap();
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert_handler_values(&hits);
    // Only the stores of -i, each after the store of i: old i, new -i (as u64 bits).
    let sequence: Vec<(u64, u64)> = hits.iter().map(|h| old_new(h)).collect();
    let expected: Vec<(u64, u64)> = (1..=300i64).map(|i| (i as u64, (-i) as u64)).collect();
    assert_eq!(sequence, expected);
    let s = summary(&values);
    assert_eq!(s["watchpoints"][0]["hits"], 600);
    assert_eq!(s["handler"]["filtered"], 300);
}

#[test]
fn exclusive_if_with_a_value_the_piece_cannot_hold_is_bad_input() {
    require_root();
    let target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    // `value` is 8 bytes; watch only its first byte.
    let spec = format!("{:#x}/1:w", target.addr());
    let (code, _stdout, stderr) = support::run_hwbp(&["watch", &spec, "-p", &pid, "--if", ">300"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--if") && stderr.contains("does not fit piece 0 (1 bytes"),
        "{stderr}"
    );
}

/// `read(2)` from a pipe fills the watched buffer: each hit is kernel-mode, and its value is
/// the bytes the kernel's copy had written at that moment (this CPU copies byte by byte with
/// `rep movsb`, trapping after each byte of the watched 8).
#[test]
fn exclusive_kernel_mode_read_into_a_watched_buffer_carries_the_bytes_written() {
    require_root();
    let mut kread = Fixture::spawn(KREAD, &[]).unwrap();
    let pid = kread.pid().to_string();
    let spec = format!("{:#x}/8:w", kread.addr());
    let hwbp = Running::hwbp(&["watch", &spec, "-p", &pid, "--json"]);
    kread.command("go 1").unwrap();
    assert!(kread.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert!(!hits.is_empty() && hits.len() <= 8, "{hits:?}");
    assert_handler_values(&hits);
    let before = u64::from_le_bytes(*b"kread bu");
    let payload = b"hwbp ker";
    let mut previous = before;
    let mut written = 0;
    for hit in &hits {
        assert_eq!(hit["kernel"], true, "{hit}");
        let (old, new) = old_new(hit);
        assert_eq!(old, previous, "{hit}");
        // new = the first k payload bytes over the buffer's old bytes, k growing.
        let bytes = new.to_le_bytes();
        let k = (1..=8)
            .find(|&k| bytes[..k] == payload[..k] && bytes[k..] == before.to_le_bytes()[k..])
            .unwrap_or_else(|| panic!("{:?} is no prefix of the payload", bytes));
        assert!(k > written, "{hit}");
        written = k;
        previous = new;
    }
    assert_eq!(previous, u64::from_le_bytes(*payload));
}

/// Six variables on four registers: three pinned, three taking turns on the fourth. The
/// pinned ones report every value; the rotating ones report exact values of the writes made
/// while they were armed (the handler reads `ctx->addr`, the piece armed then).
#[test]
fn exclusive_rotation_keeps_values_exact_on_the_pieces_that_were_armed() {
    require_root();
    const ROUNDS: u64 = 3000;
    let mut many = Fixture::spawn(MANY, &[]).unwrap();
    let pid = many.pid().to_string();
    let hwbp = Running::hwbp(&[
        "watch",
        "--json",
        "--ring-pages",
        "1024",
        "--rotate-ms",
        "20",
        "-p",
        &pid,
        "v0",
        "v1",
        "v2",
        "v3",
        "v4",
        "v5",
    ]);
    many.command(&format!("go {ROUNDS} 1500")).unwrap();
    assert!(many.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert_handler_values(&hits);
    let totals = summary(&values)["watchpoints"].as_array().unwrap().clone();
    for (w, total) in totals.iter().enumerate() {
        let mine: Vec<(u64, u64)> = hits
            .iter()
            .filter(|h| h["watch_id"] == w)
            .map(|h| old_new(h))
            .collect();
        if total["placement"] == "pinned" {
            // Every round's value, each after the previous one.
            let expected: Vec<(u64, u64)> = (1..ROUNDS).map(|r| (r - 1, r)).collect();
            assert_eq!(&mine[1..], &expected[..], "v{w}");
            assert_eq!(mine[0], (0, 0), "v{w}: round 0 stores 0 over the initial 0");
        } else {
            assert!(!mine.is_empty(), "v{w} never had a turn: {total}");
            // Values are round numbers in order; old never runs ahead of the write.
            assert!(
                mine.iter().all(|&(old, new)| new < ROUNDS && old <= new),
                "v{w}"
            );
            assert!(mine.windows(2).all(|p| p[0].1 < p[1].1), "v{w}: {mine:?}");
            // Within a turn, consecutive rounds.
            let consecutive = mine.windows(2).filter(|p| p[1].1 == p[0].1 + 1).count();
            assert!(consecutive * 2 > mine.len(), "v{w}: {mine:?}");
            assert!(
                mine.windows(2)
                    .all(|p| p[1].1 != p[0].1 + 1 || p[1].0 == p[0].1),
                "v{w}: a hit right after another has its value as old"
            );
        }
    }
}

#[test]
fn exclusive_stat_counts_threads_and_functions_in_the_kernel() {
    require_root();
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["stat", "value", "-p", &pid, "--json"]);
    target.command("go 1000").unwrap();
    let done = target.command("threads 2 700").unwrap();
    let tids = done.list("new_tids").unwrap();
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    assert!(
        stderr.iter().any(|l| l
            == "hwbp: counts: per thread and instruction, in the kernel by hwbp's BPF hit \
                handler; totals from the breakpoint counters"),
        "{stderr:?}"
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let w = &report["watchpoints"][0];
    assert_eq!(w["hits"], 2400, "{report}");
    assert_eq!(w["sampled"], 2400, "{report}");
    assert_eq!(w["lost"], 0, "{report}");
    let threads = w["threads"].as_object().unwrap();
    assert_eq!(threads.len(), 3, "{threads:?}");
    assert_eq!(threads[&format!("{pid} (sequence)")], 1000);
    for tid in tids {
        assert_eq!(threads[&format!("{tid} (sequence)")], 700, "{threads:?}");
    }
    assert_eq!(
        w["functions"]["store_value (sequence.c:27)"], 2400,
        "{report}"
    );
}

/// Two hwbp at once on one process, each with its own handler program and maps: both exact,
/// `hwbp slots` names both as holders, and after both end no BPF program of theirs is left
/// (their fds closed with them; nothing pinned in bpffs).
#[test]
fn exclusive_two_hwbp_at_once_each_get_every_value_exact_and_leave_nothing() {
    require_root();
    let programs_before = bpf_program_ids();
    let mut target = Fixture::spawn(SEQUENCE, &[]).unwrap();
    let pid = target.pid().to_string();
    let first = Running::hwbp(&["watch", "value", "-p", &pid, "--json"]);
    let second = Running::hwbp(&["watch", "value", "-p", &pid, "--json"]);
    let slots = std::process::Command::new(support::HWBP)
        .args(["slots", "-p", &pid])
        .output()
        .unwrap();
    let slots = String::from_utf8_lossy(&slots.stdout);
    for running in [&first, &second] {
        assert!(
            slots.contains(&format!("pid {:<8}", running.pid())),
            "hwbp slots does not list hwbp {}: {slots}",
            running.pid()
        );
    }
    // The thread: the model sees 4 free, the kernel 2 (one register per hwbp), 2 held elsewhere.
    let thread_row: Vec<&str> = slots
        .lines()
        .find(|l| l.starts_with(&format!("{pid} sequence")))
        .unwrap_or_else(|| panic!("no row for thread {pid}: {slots}"))
        .split_whitespace()
        .collect();
    assert_eq!(thread_row[2..], ["4", "2", "2"], "{slots}");
    target.command("go 1000").unwrap();
    assert!(target.finish().unwrap().success());
    for hwbp in [first, second] {
        let (status, stdout, stderr) = hwbp.finish();
        assert!(status.success(), "{stderr:?}");
        assert!(stderr.iter().any(|l| l == HANDLER_NOTICE), "{stderr:?}");
        let values = json_lines(&stdout);
        let hits = hits(&values);
        assert_eq!(hits.len(), 1000);
        assert_handler_values(&hits);
        let pairs: Vec<(u64, u64)> = hits.iter().map(|h| old_new(h)).collect();
        let expected: Vec<(u64, u64)> = (1..=1000).map(|i| (i - 1, i)).collect();
        assert_eq!(pairs, expected);
    }
    let left: Vec<u32> = bpf_program_ids()
        .into_iter()
        .filter(|id| !programs_before.contains(id))
        .collect();
    assert!(left.is_empty(), "BPF programs left loaded: {left:?}");
}

/// The ids of the BPF programs loaded now (BPF_PROG_GET_NEXT_ID through hwbp-linux).
fn bpf_program_ids() -> Vec<u32> {
    hwbp_linux::bpf::sys::program_ids().expect("list BPF programs")
}
