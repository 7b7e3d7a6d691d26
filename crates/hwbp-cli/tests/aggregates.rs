//! Watches wider than one debug register, without `--stop`, on the real kernel (issue 19): the
//! whole value of each hit comes from hwbp's shadow of the watched bytes, advanced by the BPF
//! handler's exact bytes of the piece written, so a struct written a member at a time has one
//! change per hit equal to the write (the same sequence as with `--stop`), a process that
//! ends within milliseconds still has every value, and a `char` buffer written by `snprintf`
//! prints as gdb prints it. The fixture is built `-O1 -g` without frame pointers.
//!
//! Every test loads BPF or uses ptrace (gdb, `--stop`): names start with `exclusive_`; run as
//! root.

use std::io::Write as _;
use std::process::Command;

use hwbp_fixtures::{Fixture, AGGREGATES, RUST_STATICS};
use serde_json::Value;

mod support;
use support::{hits, json_lines, summary, Running, WatchedFixture};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load BPF: run them as root (or with CAP_BPF + CAP_PERFMON)"
    );
}

/// One hit as compared across modes: field, raw old and new, whole old and new, changes.
type Seen = (
    String,
    u64,
    u64,
    String,
    String,
    Vec<(String, String, String)>,
);

fn seen(hit: &Value) -> Seen {
    let changes = hit["changes"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    let text = |k: &str| c[k].as_str().unwrap().to_string();
                    (text("member"), text("old"), text("new"))
                })
                .collect()
        })
        .unwrap_or_default();
    (
        hit["field"].as_str().unwrap().to_string(),
        hit["value_before"].as_u64().unwrap(),
        hit["value_after"].as_u64().unwrap(),
        hit["old"].as_str().unwrap().to_string(),
        hit["new"].as_str().unwrap().to_string(),
        changes,
    )
}

/// `hwbp watch pair` (with `extra` options) on `pair N`: every hit as [`Seen`], and whether
/// each was exact from the handler.
fn pair_run(n: u64, extra: &[&str]) -> (Vec<Seen>, Vec<String>) {
    let mut target = Fixture::spawn(AGGREGATES, &[]).unwrap();
    let pid = target.pid().to_string();
    let mut args = vec!["watch", "pair", "-p", &pid, "--json"];
    args.extend_from_slice(extra);
    let hwbp = Running::hwbp(&args);
    let done = target.command(&format!("pair {n}")).unwrap();
    assert_eq!(done.number("writes").unwrap(), 2 * n);
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    for hit in &hits {
        assert_eq!(hit["exact"], true, "{hit}");
    }
    let sources = hits
        .iter()
        .map(|h| h["value_source"].as_str().unwrap().to_string())
        .collect();
    (hits.iter().map(|h| seen(h)).collect(), sources)
}

#[test]
fn exclusive_a_struct_written_a_member_at_a_time_has_one_exact_change_per_hit_with_or_without_stop()
{
    require_root();
    const N: u64 = 50;
    let (handler, sources) = pair_run(N, &[]);
    assert!(sources.iter().all(|s| s == "handler"), "{sources:?}");
    // pair starts {5, 7}; then left = i, right = 100 + i for i in 1..=N.
    let mut expected = Vec::new();
    let (mut left, mut right) = (5u64, 7u64);
    for i in 1..=N {
        let old = format!("{{left = {left}, right = {right}}}");
        let was = left;
        left = i;
        let new = format!("{{left = {left}, right = {right}}}");
        let change = ("pair.left".to_string(), was.to_string(), left.to_string());
        expected.push((
            "pair.left".to_string(),
            was,
            left,
            old,
            new.clone(),
            vec![change],
        ));
        let was = right;
        right = 100 + i;
        let newer = format!("{{left = {left}, right = {right}}}");
        let change = ("pair.right".to_string(), was.to_string(), right.to_string());
        expected.push((
            "pair.right".to_string(),
            was,
            right,
            new,
            newer,
            vec![change],
        ));
    }
    assert_eq!(handler.len(), expected.len());
    assert!(handler == expected, "first difference at {:?}", {
        let i = handler.iter().zip(&expected).position(|(a, b)| a != b);
        i.map(|i| (i, &handler[i], &expected[i]))
    });
    let (stopped, sources) = pair_run(N, &["--stop"]);
    assert!(sources.iter().all(|s| s == "stopped"), "{sources:?}");
    assert_eq!(stopped, handler, "the same hits with --stop");
}

/// The elements of `{v = {1, 2, <unavailable>, ...}}`.
fn wide_elements(text: &str) -> Vec<String> {
    let inner = text
        .strip_prefix("{v = {")
        .and_then(|t| t.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("not a struct wide: {text}"));
    inner.split(", ").map(str::to_string).collect()
}

#[test]
fn exclusive_a_process_that_ends_in_milliseconds_has_every_hit_with_its_values() {
    require_root();
    // 8 members x 100 rounds: wide.v[k] = 8r + k + 1, then the program exits.
    const ROUNDS: u64 = 100;
    let rounds = ROUNDS.to_string();
    let hwbp = Running::hwbp(&[
        "watch", "wide", "--json", "--", AGGREGATES, "burst", &rounds,
    ]);
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    let s = summary(&values);
    assert_eq!(s["watchpoints"][0]["reported"], hits.len() as u64, "{s}");
    assert_eq!(s["watchpoints"][0]["lost"], 0, "{s}");
    // 8 pieces on 4 registers: v[0..3] pinned (every write seen), v[3..8] take turns.
    let mut per_member = [0u64; 8];
    let mut last_seen: [Option<u64>; 8] = [None; 8];
    for hit in &hits {
        assert_eq!(hit["value_source"], "handler", "{hit}");
        let (field, old, new, old_text, new_text, changes) = seen(hit);
        assert!(
            !old_text.contains("unreadable") && !new_text.contains("unreadable"),
            "{hit}"
        );
        let k: usize = field
            .strip_prefix("wide.v[")
            .and_then(|f| f.strip_suffix(']'))
            .unwrap()
            .parse()
            .unwrap();
        per_member[k] += 1;
        // The write this hit is: 8r + k + 1.
        let j = new - 1;
        assert_eq!(j % 8, k as u64, "{hit}");
        // Its member's previous value: the previous round's write, 0 in the first round. A
        // member taking turns has its first hit of a turn's `old` from the value the handler
        // was seeded with just before the move (as `bpf_watch.rs` says), which can miss a
        // write made in that moment: an earlier write of the same member.
        let previous = if j >= 8 { j - 7 } else { 0 };
        let first_of_turn = last_seen[k] != Some(new.wrapping_sub(8));
        last_seen[k] = Some(new);
        if k < 3 || !first_of_turn {
            assert_eq!(old, previous, "{hit}");
        } else {
            assert!(old <= previous && (old == 0 || old % 8 == new % 8), "{hit}");
        }
        assert_eq!(
            changes,
            vec![(field.clone(), old.to_string(), new.to_string())]
        );
        // Every element shown is what the program had written there by then; only members
        // that take turns may be unavailable.
        let (before, after) = (wide_elements(&old_text), wide_elements(&new_text));
        assert_eq!((before.len(), after.len()), (8, 8), "{hit}");
        for m in 0..8u64 {
            let truth = |upto: u64| -> u64 {
                // The last write to v[m] at or before write number `upto` (0 before any).
                if upto % 8 >= m {
                    upto / 8 * 8 + m + 1
                } else if upto >= 8 {
                    (upto / 8 - 1) * 8 + m + 1
                } else {
                    0
                }
            };
            let shown_after = &after[m as usize];
            if shown_after == "<unavailable>" {
                assert!(m >= 3, "a pinned member unavailable: {hit}");
            } else {
                assert_eq!(shown_after, &truth(j).to_string(), "v[{m}] after: {hit}");
            }
            let shown_before = &before[m as usize];
            if m as usize != k && shown_before != "<unavailable>" {
                assert_eq!(shown_before, &truth(j).to_string(), "v[{m}] before: {hit}");
            }
        }
    }
    assert_eq!(&per_member[..3], &[ROUNDS; 3], "{per_member:?}");
}

/// The value of gdb's first `print` (`$1 = ...`) in its output.
fn first_value(out: std::process::Output) -> String {
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("$1 = "))
        .unwrap_or_else(|| panic!("gdb printed no value: {stdout}"))
        .to_string()
}

/// gdb's `print EXPR` on the fixture when it has answered every line of `commands` (it
/// stops at `answered()` once per answer).
fn gdb_print(commands: &str, expr: &str) -> String {
    let input = std::env::temp_dir().join(format!("hwbp-aggregates-{}.in", std::process::id()));
    std::fs::File::create(&input)
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let mut gdb = Command::new("gdb");
    gdb.args(["-nx", "-batch", "-ex", "break answered", "-ex"])
        .arg(format!("run < {}", input.display()));
    for _ in 1..commands.lines().count() {
        gdb.args(["-ex", "continue"]);
    }
    let out = gdb
        .args(["-ex", &format!("print {expr}"), "-ex", "kill", AGGREGATES])
        .output()
        .unwrap();
    std::fs::remove_file(&input).unwrap();
    first_value(out)
}

#[test]
fn exclusive_a_char_buffer_written_by_snprintf_prints_as_gdb_prints_it() {
    require_root();
    let mut target = Fixture::spawn(AGGREGATES, &[]).unwrap();
    let pid = target.pid().to_string();
    let hwbp = Running::hwbp(&["watch", "line", "-p", &pid, "--json"]);
    assert_eq!(
        target.command("fill 12").unwrap().number("fills").unwrap(),
        12
    );
    assert!(target.finish().unwrap().success());
    let (status, stdout, stderr) = hwbp.finish();
    assert!(status.success(), "{stderr:?}");
    let values = json_lines(&stdout);
    let hits = hits(&values);
    assert!(!hits.is_empty());
    for hit in &hits {
        assert_eq!(hit["value_source"], "handler", "{hit}");
        let (_, _, _, old, new, changes) = seen(hit);
        for text in [&old, &new] {
            assert!(!text.contains('<') || text.contains("<repeats"), "{hit}");
        }
        // The string is one member: at most one change, naming it.
        assert!(
            changes.len() <= 1 && changes.iter().all(|c| c.0 == "line"),
            "{hit}"
        );
    }
    let last = seen(hits.last().unwrap()).4;
    assert_eq!(last, r#""value 12", '\000' <repeats 23 times>"#);
    assert_eq!(last, gdb_print("fill 12\n", "line"));
}

/// `hwbp watch text` (with `extra` options) on `fill 2` then `text 4`: each hit's raw
/// pointer and `new`, taken while the target still runs (its strings are read after).
fn text_run(extra: &[&str]) -> Vec<(u64, String)> {
    let mut run = WatchedFixture::start(AGGREGATES, "text", extra);
    run.target.command("fill 2").unwrap();
    assert_eq!(
        run.target
            .command("text 4")
            .unwrap()
            .number("writes")
            .unwrap(),
        4
    );
    let hits = run.lines(4);
    let (fixture, stdout) = run.end();
    assert!(fixture.success());
    assert_eq!(summary(&json_lines(&stdout))["watchpoints"][0]["hits"], 4);
    hits.iter()
        .map(|h| {
            assert_eq!(h["type"], "hit", "{h}");
            let new = h["new"].as_str().unwrap().to_string();
            (h["value_after"].as_u64().unwrap(), new)
        })
        .collect()
}

#[test]
fn exclusive_a_char_pointer_prints_the_pointer_and_its_string_as_gdb_does() {
    require_root();
    // text = names[i % 3] for i in 1..=4: "beta\t2", line ("value 2"), "alpha", "beta\t2".
    let strings = [
        r#""beta\t2""#,
        r#"<line> "value 2""#,
        r#""alpha""#,
        r#""beta\t2""#,
    ];
    let check = |hits: &[(u64, String)], suffix: &str| {
        assert_eq!(hits.len(), 4, "{hits:?}");
        for ((pointer, new), string) in hits.iter().zip(strings) {
            assert_eq!(new, &format!("{pointer:#x} {string}{suffix}"));
        }
    };
    // Stopped: the string is read while the writer is stopped.
    let stopped = text_run(&["--stop"]);
    check(&stopped, "");
    // gdb (its own run, so its own addresses): the same text after the pointer.
    let from_gdb = gdb_print("fill 2\ntext 4\n", "text");
    let (pointer, last) = stopped.last().unwrap();
    assert_eq!(
        last.strip_prefix(&format!("{pointer:#x}")),
        from_gdb
            .split_once(' ')
            .map(|(_, rest)| format!(" {rest}"))
            .as_deref()
    );
    // Without stopping, the pointer and its string are the handler's, read at the trap.
    check(&text_run(&[]), "");
}

/// gdb's `print rust_statics::config::NAME` in the Rust fixture once `main` runs.
fn gdb_print_rust_name() -> String {
    let out = Command::new("gdb")
        .args([
            "-nx",
            "-batch",
            "-ex",
            "break rust_statics::main",
            "-ex",
            "run",
        ])
        .args(["-ex", "print rust_statics::config::NAME", "-ex", "kill"])
        .arg(RUST_STATICS)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    first_value(out)
}

#[test]
fn exclusive_a_rust_str_prints_as_the_text_it_points_to() {
    require_root();
    // Read while stopped, or by the handler at the trap from the pointer and length pieces.
    for (extra, suffix) in [(&["--stop"][..], ""), (&[][..], "")] {
        let mut run = WatchedFixture::start(RUST_STATICS, "rust_statics::config::NAME", extra);
        assert_eq!(
            run.target
                .command("rename")
                .unwrap()
                .number("renamed")
                .unwrap(),
            1
        );
        // Two stores (data_ptr, length), taken while the target still runs.
        let hits = run.lines(2);
        run.end();
        let text = |h: &Value, k: &str| h[k].as_str().unwrap().to_string();
        // Read at arming: exact, unmarked.
        assert_eq!(text(&hits[0], "old"), r#""hwbp""#, "{extra:?}");
        assert_eq!(
            text(&hits[1], "new"),
            format!(r#""renamed \"x\"\n"{suffix}"#),
            "{extra:?}"
        );
        // Between the two stores the new pointer has the old length: 4 bytes of the new text.
        assert_eq!(
            text(&hits[0], "new"),
            format!(r#""rena"{suffix}"#),
            "{extra:?}"
        );
    }
    assert_eq!(gdb_print_rust_name(), r#""hwbp""#);
}
