//! A `char *` watch's string as it was at the write (issue 19): without `--stop` the BPF hit
//! handler reads the string the new pointer points to at the trap
//! (`bpf_probe_read_user_str`) into the hit's record; with `--stop` it is read while the
//! writer is stopped. The fixture (`-O1 -g`, no frame pointers) overwrites and frees one
//! string and rewrites another right after pointing at them, so a string read after the hit
//! would differ: every hit's string must be gdb's (`New value`), in both modes.
//!
//! Every test loads BPF or uses ptrace: names start with `exclusive_`; run as root.

use std::process::Command;

use hwbp_fixtures::{RUST_STATICS, STRINGS};
use serde_json::Value;

mod support;
use support::{json_lines, summary, WatchedFixture};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load BPF or use ptrace: run them as root"
    );
}

/// One hit: the pointer (`value_after`), the whole new value printed, and its source.
type Seen = (u64, String, String);

/// `hwbp watch msg -p PID --json` (with `extra`) over one `repoint`: its seven hits.
fn hwbp_hits(extra: &[&str]) -> Vec<Seen> {
    let mut run = WatchedFixture::start(STRINGS, "msg", extra);
    assert_eq!(
        run.target
            .command("repoint")
            .unwrap()
            .number("writes")
            .unwrap(),
        7
    );
    let hits = run.lines(7);
    let (fixture, stdout) = run.end();
    assert!(fixture.success());
    assert_eq!(summary(&json_lines(&stdout))["watchpoints"][0]["hits"], 7);
    hits.iter()
        .map(|h| {
            assert_eq!(h["type"], "hit", "{h}");
            (
                h["value_after"].as_u64().unwrap(),
                h["new"].as_str().unwrap().to_string(),
                h["value_source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// gdb's `New value` of each hit of `watch msg` over one `repoint`, from the first
/// instruction.
fn gdb_news() -> Vec<String> {
    let dir = std::env::temp_dir();
    let input = dir.join(format!("hwbp-strings-{}.in", std::process::id()));
    std::fs::write(&input, "repoint\n").unwrap();
    let script = dir.join(format!("hwbp-strings-{}.gdb", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "set pagination off\nset confirm off\nstarti < {}\nwatch msg\ncommands\ncontinue\n\
             end\ncontinue\n",
            input.display()
        ),
    )
    .unwrap();
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&script)
        .arg(STRINGS)
        .output()
        .expect("gdb runs");
    std::fs::remove_file(&input).unwrap();
    std::fs::remove_file(&script).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("New value = "))
        .map(str::to_string)
        .collect()
}

/// The text after the pointer of each hit, as gdb prints it (`None`: the pointer alone).
fn expected_strings(chars: usize) -> Vec<Option<String>> {
    let alphabet = "abcdefghijklmnopqrstuvwxyz".repeat(10);
    let string = |text: &str| {
        let shown: String = text.chars().take(chars).collect();
        let dots = if text.len() > chars { "..." } else { "" };
        format!("\"{shown}\"{dots}")
    };
    vec![
        Some(string("alpha")),
        Some(string("beta gamma")),
        Some(string("doomed")),
        Some(format!("<scratch> {}", string("scratch 1"))),
        Some(format!("<long_text> {}", string(&alphabet))),
        None,
        Some(string("alpha")),
    ]
}

fn check(hits: &[Seen], expected: &[Option<String>], source: &str) {
    assert_eq!(hits.len(), expected.len(), "{hits:?}");
    for ((pointer, new, from), text) in hits.iter().zip(expected) {
        let want = match text {
            Some(text) => format!("{pointer:#x} {text}"),
            None => format!("{pointer:#x}"),
        };
        assert_eq!(new, &want);
        assert_eq!(from, source, "{new}");
    }
}

#[test]
fn exclusive_a_char_pointers_string_is_the_one_it_pointed_to_at_the_write_in_both_modes() {
    require_root();
    let expected = expected_strings(200);
    // Without stopping: read by the handler at the trap, unmarked (the doomed string was
    // overwritten and freed, scratch rewritten, before user space saw the record).
    let handler = hwbp_hits(&[]);
    check(&handler, &expected, "handler");
    let stopped = hwbp_hits(&["--stop"]);
    check(&stopped, &expected, "stopped");
    // gdb: the same values (its heap pointer is its own run's).
    let from_gdb = gdb_news();
    assert_eq!(from_gdb.len(), 7, "{from_gdb:?}");
    for (i, ((pointer, new, _), gdb)) in handler.iter().zip(&from_gdb).enumerate() {
        if i == 2 {
            let tail = |s: &str| s.split_once(' ').map(|(_, t)| t.to_string());
            assert_eq!(tail(new), tail(gdb), "{pointer:#x}");
        } else {
            assert_eq!(new, gdb);
        }
    }
}

#[test]
fn exclusive_string_chars_bounds_the_string_read_at_the_trap_and_marks_the_rest() {
    require_root();
    let hits = hwbp_hits(&["--string-chars", "8"]);
    check(&hits, &expected_strings(8), "handler");
    // Exactly the bound: whole, no `...`.
    let hits = hwbp_hits(&["--string-chars", "6"]);
    assert_eq!(hits[2].1, format!("{:#x} \"doomed\"", hits[2].0));
    assert_eq!(hits[0].1, format!("{:#x} \"alpha\"", hits[0].0));
    assert_eq!(hits[1].1, format!("{:#x} \"beta g\"...", hits[1].0));
}

/// `hwbp watch rust_statics::config::TITLE -p PID --json` (with `extra`) over one `retitle`:
/// each hit's field, old and new text, and source.
fn title_hits(extra: &[&str]) -> Vec<(String, String, String, String)> {
    let mut run = WatchedFixture::start(RUST_STATICS, "rust_statics::config::TITLE", extra);
    assert_eq!(
        run.target
            .command("retitle")
            .unwrap()
            .number("edits")
            .unwrap(),
        4
    );
    let hits = run.lines(4);
    let (_, stdout) = run.end();
    assert_eq!(summary(&json_lines(&stdout))["watchpoints"][0]["hits"], 4);
    let text = |h: &Value, k: &str| h[k].as_str().unwrap().to_string();
    hits.iter()
        .map(|h| {
            assert_eq!(h["type"], "hit", "{h}");
            assert_eq!(h["value_type"], "alloc::string::String", "{h}");
            (
                text(h, "field"),
                text(h, "old"),
                text(h, "new"),
                text(h, "value_source"),
            )
        })
        .collect()
}

#[test]
fn exclusive_a_rust_string_prints_as_rusts_debug_text_as_each_write_left_it_in_both_modes() {
    require_root();
    // Room for 64 bytes from the start: each edit writes the length alone (`vec.len`).
    let len = "rust_statics::config::TITLE.vec.len";
    let texts = [
        r#""""#,
        r#""hello""#,
        r#""hello \"world\"\n""#,
        r#""he""#,
        r#""""#,
    ];
    for (extra, source) in [(&[][..], "handler"), (&["--stop"][..], "stopped")] {
        let hits = title_hits(extra);
        let expected: Vec<_> = texts
            .windows(2)
            .map(|w| {
                let (old, new) = (w[0].to_string(), w[1].to_string());
                (len.to_string(), old, new, source.to_string())
            })
            .collect();
        assert_eq!(hits, expected, "{extra:?}");
    }
}
