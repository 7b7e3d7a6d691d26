//! A value chain's aggregate through a pointer (`*cur`, a 16-byte struct: two value pieces and
//! the pointer's), without `--stop` (issue 19): the BPF hit handler follows the chain (its
//! pieces' addresses in a map user space moves with the breakpoints), and each hit's whole
//! old/new and changes come from the watch's shadow, re-seeded from the new object when the
//! chain moves, so two writes made back to back each show their own change: the same sequence
//! as with `--stop`. A write through the object the chain just left, right after the pointer's
//! write (before hwbp has moved the watch, or after), is not reported either way.
//!
//! Every test loads BPF or uses ptrace: names start with `exclusive_`; run as root.

use hwbp_fixtures::CHAIN_PAIR;
use serde_json::Value;

mod support;
use support::{json_lines, summary, WatchedFixture};

/// One hit: field, whole old and new, changes (`member old new`), and the pointer that moved
/// the watch.
type Seen = (String, String, String, Vec<String>, Option<String>);

/// The commands and how many hits each makes (`stray` writes the object `cur` left).
const STEPS: &[(&str, usize)] = &[
    ("pair 11 12", 2),
    ("point second", 1),
    ("pair 31 42", 2),
    ("stray 99", 0),
    ("point first", 1),
    ("point null", 1),
    ("point second", 1),
    ("pair 7 8", 2),
    ("point first", 1),
    ("leave 55", 1),
    ("pair 1 2", 2),
];

fn run(extra: &[&str]) -> (Vec<Seen>, Vec<String>) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load BPF or use ptrace: run them as root"
    );
    let mut run = WatchedFixture::start(CHAIN_PAIR, "*cur", extra);
    let mut hits: Vec<Value> = Vec::new();
    for (command, n) in STEPS {
        run.target.command(command).unwrap();
        // Each step's hits before the next step: a move is made when its hit is taken.
        hits.extend(run.lines(*n));
    }
    let (_, stdout) = run.end();
    assert_eq!(
        summary(&json_lines(&stdout))["watchpoints"][0]["reported"],
        14
    );
    let text = |h: &Value, k: &str| h[k].as_str().unwrap().to_string();
    let seen = hits
        .iter()
        .map(|h| {
            assert_eq!(h["type"], "hit", "{h}");
            let changes = h["changes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| {
                            format!(
                                "{} {} {}",
                                text(c, "member"),
                                text(c, "old"),
                                text(c, "new")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                text(h, "field"),
                text(h, "old"),
                text(h, "new"),
                changes,
                h["moved_by"].as_str().map(str::to_string),
            )
        })
        .collect();
    let sources = hits.iter().map(|h| text(h, "value_source")).collect();
    (seen, sources)
}

fn expected() -> Vec<Seen> {
    let pair = |l: i64, r: i64| format!("{{left = {l}, right = {r}}}");
    let hit = |field: &str, old: String, new: String, changes: &[String], moved: bool| {
        (
            field.to_string(),
            old,
            new,
            changes.to_vec(),
            moved.then(|| "cur".to_string()),
        )
    };
    let left = |o: i64, n: i64| format!("*cur.left {o} {n}");
    let right = |o: i64, n: i64| format!("*cur.right {o} {n}");
    vec![
        hit(
            "(*cur).left",
            pair(1, 2),
            pair(11, 2),
            &[left(1, 11)],
            false,
        ),
        hit(
            "(*cur).right",
            pair(11, 2),
            pair(11, 12),
            &[right(2, 12)],
            false,
        ),
        hit(
            "cur",
            pair(11, 12),
            pair(30, 40),
            &[left(11, 30), right(12, 40)],
            true,
        ),
        hit(
            "(*cur).left",
            pair(30, 40),
            pair(31, 40),
            &[left(30, 31)],
            false,
        ),
        hit(
            "(*cur).right",
            pair(31, 40),
            pair(31, 42),
            &[right(40, 42)],
            false,
        ),
        // first.left = 99 went through the object cur left: not reported, but it is there.
        hit(
            "cur",
            pair(31, 42),
            pair(99, 12),
            &[left(31, 99), right(42, 12)],
            true,
        ),
        hit("cur", pair(99, 12), "<unreadable>".into(), &[], true),
        hit("cur", "<unreadable>".into(), pair(31, 42), &[], true),
        hit(
            "(*cur).left",
            pair(31, 42),
            pair(7, 42),
            &[left(31, 7)],
            false,
        ),
        hit(
            "(*cur).right",
            pair(7, 42),
            pair(7, 8),
            &[right(42, 8)],
            false,
        ),
        hit(
            "cur",
            pair(7, 8),
            pair(99, 12),
            &[left(7, 99), right(8, 12)],
            true,
        ),
        // first.left = 55 right after: through the object cur left, not reported.
        hit(
            "cur",
            pair(99, 12),
            pair(7, 8),
            &[left(99, 7), right(12, 8)],
            true,
        ),
        hit("(*cur).left", pair(7, 8), pair(1, 8), &[left(7, 1)], false),
        hit(
            "(*cur).right",
            pair(1, 8),
            pair(1, 2),
            &[right(8, 2)],
            false,
        ),
    ]
}

#[test]
fn exclusive_a_chains_struct_has_one_exact_change_per_write_with_or_without_stop() {
    let (handler, sources) = run(&[]);
    assert!(sources.iter().all(|s| s == "handler"), "{sources:?}");
    assert_eq!(handler, expected());
    let (stopped, sources) = run(&["--stop"]);
    assert!(sources.iter().all(|s| s == "stopped"), "{sources:?}");
    assert_eq!(stopped, expected());
}
