//! Watching a local variable frame by frame (`FUNC::LOCAL`), on the real kernel through the
//! `hwbp` binary and the `locals` fixture (built -O0): the outermost frame of a recursion
//! against gdb's own `break FUNC` / `watch LOCAL` (the same new values, inner frames' writes
//! not reported, the frame's end), one instance per call, two threads' frames live at once,
//! frames left by `longjmp`, `--frames`, `--changes-only` and `--if`; each in both modes:
//! with `--stop` (every write stops the thread) and without (the writes are the BPF hit
//! handler's records; only the entry and the return stop the thread), with the same hits and
//! scope events.
//!
//! ptrace and BPF (launched commands): every test name starts with `exclusive_`.

use std::process::{Command, Stdio};

use hwbp_fixtures::LOCALS;
use serde_json::Value;

mod support;
use support::{assert_success, json_lines, HWBP};

/// The two modes: stop mode, then perf mode (no flag).
const MODES: [&[&str]; 2] = [&["--stop"], &[]];

/// `EXTRA` in mode `mode` (one of [`MODES`]).
fn with(mode: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    [mode, extra].concat()
}

/// `hwbp watch SPEC --json EXTRA -- locals MODE`: hits and scope events in order, and the
/// summary.
fn run(spec: &str, extra: &[&str], mode: &str) -> (Vec<Value>, Value) {
    run_program(spec, extra, &[LOCALS, mode])
}

/// `hwbp watch SPEC --json EXTRA -- ARGV...`.
fn run_program(spec: &str, extra: &[&str], argv: &[&str]) -> (Vec<Value>, Value) {
    let out = Command::new(HWBP)
        .args(["watch", spec, "--json"])
        .args(extra)
        .arg("--")
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&out);
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let summary = lines
        .iter()
        .find(|v| v["type"] == "summary")
        .cloned()
        .expect("a summary");
    let events = lines
        .into_iter()
        .filter(|v| v["type"] == "hit" || v["type"] == "scope")
        .collect();
    (events, summary)
}

fn news(events: &[Value], instance: u64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "hit" && e["frame"]["instance"] == instance)
        .map(|e| e["new"].as_str().unwrap().to_string())
        .collect()
}

fn scopes(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["type"] == "scope").collect()
}

/// gdb's `Old value`/`New value` pairs for `break AT` (a function or a line), `run`, `watch
/// LOCAL`, the breakpoint deleted, continued to the end, and whether it said the watchpoint
/// left its block.
fn gdb_local(at: &str, local: &str, argv: &[&str]) -> (Vec<(String, String)>, bool) {
    let script = format!(
        "set pagination off\nset confirm off\nbreak {at}\nrun\nwatch {local}\ndelete 1\n\
         commands 2\ncontinue\nend\ncontinue\n"
    );
    let path = std::env::temp_dir().join(format!("hwbp-gdb-locals-{}.gdb", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&path)
        .arg("--args")
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("gdb runs");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut pairs = Vec::new();
    let mut old = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Old value = ") {
            old = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("New value = ") {
            pairs.push((old.take().expect("Old value first"), v.trim().to_string()));
        }
    }
    (pairs, text.contains("has left the block in"))
}

#[test]
fn exclusive_the_outermost_frame_of_a_recursion_changes_as_gdb_reports_it() {
    let (gdb, gdb_left) = gdb_local("recurse", "b", &[LOCALS, "recurse"]);
    assert!(gdb_left, "gdb saw the frame end");
    assert_eq!(gdb.len(), 4, "gdb: {gdb:?}");
    let mut by_mode = Vec::new();
    for mode in MODES {
        let (events, summary) = run("recurse::b", &with(mode, &["--changes-only"]), "recurse");
        outermost_frame_as_gdb(&gdb, &events, &summary);
        by_mode.push(pairs(&events)[1..].to_vec());
    }
    assert_eq!(by_mode[0], by_mode[1], "stop mode, then perf mode");
}

fn outermost_frame_as_gdb(gdb: &[(String, String)], events: &[Value], summary: &Value) {
    let hits: Vec<&Value> = events.iter().filter(|e| e["type"] == "hit").collect();
    // The first old value is the uninitialized slot (the stack differs under gdb); every
    // other old value and every new value is gdb's.
    let ours: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            (
                h["old"].as_str().unwrap().into(),
                h["new"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(ours.len(), gdb.len(), "{events:?}");
    assert_eq!(ours[1..], gdb[1..]);
    assert_eq!(ours[0].1, gdb[0].1);
    assert_eq!(news(events, 1), ["30", "31", "125", "250"]);
    // One frame: recurse(3)'s; the inner frames' b (other addresses) are not reported.
    let cfa = &hits[0]["frame"]["cfa"];
    assert!(hits
        .iter()
        .all(|h| h["frame"]["instance"] == 1 && h["frame"]["cfa"] == *cfa));
    let scope = scopes(events);
    assert_eq!(scope.len(), 1, "{events:?}");
    assert_eq!(scope[0]["ended"], "returned");
    assert_eq!(scope[0]["variable"], "b");
    assert_eq!(scope[0]["function"], "recurse");
    assert_eq!(scope[0]["frame"]["cfa"], *cfa);
    assert_eq!(scope[0]["reported"], 4);
    // The scope event comes after the frame's last hit.
    assert_eq!(events.last().unwrap()["type"], "scope");
    assert_eq!(summary["watchpoints"][0]["reported"], 4);
}

#[test]
fn exclusive_each_call_is_its_own_frame_and_frames_limits_them() {
    for mode in MODES {
        each_call_is_its_own_frame(mode);
    }
}

fn each_call_is_its_own_frame(mode: &[&'static str]) {
    let (events, summary) = run("step::acc", mode, "calls");
    for i in 0..3u64 {
        let n = i as i64;
        // acc = i; acc += zero (unchanged); acc += 100; acc *= 2.
        let want: Vec<String> = [n, n, n + 100, 2 * (n + 100)]
            .iter()
            .map(i64::to_string)
            .collect();
        assert_eq!(news(&events, i + 1), want, "frame {}", i + 1);
    }
    let scope = scopes(&events);
    let instances: Vec<u64> = scope
        .iter()
        .map(|s| s["frame"]["instance"].as_u64().unwrap())
        .collect();
    assert_eq!(instances, [1, 2, 3]);
    assert!(scope
        .iter()
        .all(|s| s["ended"] == "returned" && s["hits"] == 4));
    assert_eq!(summary["watchpoints"][0]["hits"], 12);

    let (events, summary) = run(
        "step::acc",
        &with(mode, &["--frames", "2", "--changes-only"]),
        "calls",
    );
    assert_eq!(news(&events, 1), ["0", "100", "200"]);
    assert_eq!(news(&events, 2), ["1", "101", "202"]);
    assert!(news(&events, 3).is_empty());
    assert_eq!(scopes(&events).len(), 2);
    assert_eq!(summary["ended_by"], "2 frames watched");
}

#[test]
fn exclusive_if_on_a_local_tests_the_new_value() {
    for mode in MODES {
        let (events, summary) = run("recurse::b", &with(mode, &["--if", ">100"]), "recurse");
        assert_eq!(news(&events, 1), ["125", "250"], "{mode:?}");
        let scope = scopes(&events);
        assert_eq!(scope.len(), 1);
        // Every write of the frame counted, the two that hold reported.
        assert_eq!(
            (&scope[0]["hits"], &scope[0]["reported"]),
            (&4.into(), &2.into())
        );
        assert_eq!(summary["watchpoints"][0]["reported"], 2);
        // --changes-only and --if together: acc += zero changes nothing and is dropped.
        let (events, _) = run(
            "step::acc",
            &with(mode, &["--changes-only", "--if", ">=100"]),
            "calls",
        );
        assert_eq!(news(&events, 1), ["100", "200"], "{mode:?}");
        assert_eq!(news(&events, 3), ["102", "204"], "{mode:?}");
    }
}

#[test]
fn exclusive_two_threads_have_frames_of_their_own_at_once() {
    for mode in MODES {
        two_threads_at_once(mode);
    }
}

fn two_threads_at_once(mode: &[&'static str]) {
    let (events, _) = run("work::v", mode, "threads");
    let scope = scopes(&events);
    assert_eq!(scope.len(), 2, "{events:?}");
    let mut by_id = Vec::new();
    for s in &scope {
        let instance = s["frame"]["instance"].as_u64().unwrap();
        let values = news(&events, instance);
        let id: i64 = values[0].parse().unwrap();
        assert_eq!(
            values,
            [
                id.to_string(),
                (id + 1000).to_string(),
                (id + 1001).to_string()
            ]
        );
        // Every hit of the frame is in the frame's thread.
        assert!(events
            .iter()
            .filter(|e| e["type"] == "hit" && e["frame"]["instance"] == instance)
            .all(|e| e["tid"] == s["tid"]));
        by_id.push(id);
    }
    by_id.sort_unstable();
    assert_eq!(by_id, [1, 2]);
    assert_ne!(scope[0]["tid"], scope[1]["tid"]);
    // Both frames were live at once: each frame's first write comes before the first end.
    let first_end = events.iter().position(|e| e["type"] == "scope").unwrap();
    for instance in [1u64, 2] {
        let first = events
            .iter()
            .position(|e| e["type"] == "hit" && e["frame"]["instance"] == instance)
            .unwrap();
        assert!(
            first < first_end,
            "frame {instance} armed after a frame ended"
        );
    }
}

#[test]
fn exclusive_a_frame_left_by_longjmp_ends_at_the_threads_next_stop() {
    for mode in MODES {
        left_by_longjmp(mode);
    }
}

fn left_by_longjmp(mode: &[&'static str]) {
    let (events, _) = run("leaper::x", mode, "longjmp");
    assert_eq!(news(&events, 1), ["1", "11"]);
    assert_eq!(news(&events, 2), ["2", "12"]);
    let scope = scopes(&events);
    assert_eq!(scope.len(), 2, "{events:?}");
    // The first ends when leaper is entered again at the same place; the second when
    // overlay()'s frame overwrites the return address slot and writes x's bytes.
    assert!(scope.iter().all(|s| s["ended"] == "left-without-return"));
    // overlay()'s writes to the dead slot are not reported as x's.
    assert_eq!(
        events.iter().filter(|e| e["type"] == "hit").count(),
        4,
        "{events:?}"
    );
}

#[test]
fn exclusive_expressions_rooted_at_a_local_and_scoped_names() {
    for mode in MODES {
        expressions_rooted_at_a_local(mode);
    }
}

fn expressions_rooted_at_a_local(mode: &[&'static str]) {
    // A struct member, an array element, gdb's 'file.c'::FUNC::LOCAL and 'FUNC'::LOCAL.
    let (events, _) = run("shape::cfg.len", mode, "shape");
    assert_eq!(news(&events, 1), ["0", "3", "4"]);
    let (events, _) = run("'locals.c'::shape::arr[3]", mode, "shape");
    assert_eq!(news(&events, 1), ["0", "10"]);
    assert_eq!(scopes(&events)[0]["variable"], "arr[3]");
    let (events, _) = run("shape::cfg", mode, "shape");
    // One 8-byte piece: each hit names the member that changed.
    let fields: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "hit")
        .map(|e| e["changes"][0]["member"].as_str().unwrap())
        .collect();
    assert!(events
        .iter()
        .all(|e| e.get("address").is_none() && e["frame"]["address"].is_string()));
    assert_eq!(
        fields,
        [
            "shape::cfg.len",
            "shape::cfg.cap",
            "shape::cfg.len",
            "shape::cfg.cap",
            "shape::cfg.len"
        ]
    );
    let (events, _) = run("'recurse'::b", &with(mode, &["--changes-only"]), "recurse");
    assert_eq!(news(&events, 1), ["30", "31", "125", "250"]);
}

/// `hwbp watch SPEC --stop -- PROGRAM calls`, and without `--stop`: refused with exit 2 and
/// the same line.
fn refused(spec: &str, program: &str) -> String {
    let lines: Vec<String> = MODES.iter().map(|m| refused_in(m, spec, program)).collect();
    assert_eq!(lines[0], lines[1]);
    lines[0].clone()
}

fn refused_in(mode: &[&str], spec: &str, program: &str) -> String {
    let out = Command::new(HWBP)
        .args(["watch", spec])
        .args(mode)
        .args(["--", program, "calls"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{spec}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
    stderr
}

#[test]
fn exclusive_locals_without_memory_of_their_own_are_refused_in_one_line() {
    use hwbp_fixtures::LOCALS_O2;
    assert!(refused("work::v", LOCALS_O2).contains(
        "'v' lives in a register in work; watch it with -l at an address, or build with -O0"
    ));
    assert!(refused("step::acc", LOCALS_O2)
        .contains("'acc' has no memory in step where its frame is armed"));
    // int arr[4]: four pieces, plus entry and return, do not fit four registers.
    assert!(refused("shape::arr", LOCALS).contains(
        "a live frame needs 6 debug registers (its entry, 4 for the value, its return) and a \
         thread has 4: watch one member or element"
    ));
    assert!(refused("helper::h", LOCALS_O2)
        .contains("helper is inlined everywhere, so no frame of its own holds 'h'"));
    // A process tree's tracer holds the processes a local's frames would be traced in.
    for mode in MODES {
        let args = [mode, &["--follow-children"][..]].concat();
        assert!(refused_in(&args, "recurse::b", LOCALS).contains(
            "watch 'recurse::b': a local is watched in the frames of the one process hwbp \
             launches or attaches to, not across a process tree: drop --follow-children"
        ));
    }
}

/// The hits' `(old, new)` after the first (whose old value is the slot before the frame).
fn pairs(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] == "hit")
        .map(|h| {
            (
                h["old"].as_str().unwrap().into(),
                h["new"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn exclusive_a_cxx_methods_local_and_a_rust_functions_local() {
    for mode in MODES {
        cxx_and_rust_locals(mode);
    }
}

fn cxx_and_rust_locals(mode: &[&'static str]) {
    use hwbp_fixtures::{CXX_LOCALS, RUST_LOCALS};
    // C++: shop::Counter::bump(int), defined outside its class (DW_AT_specification).
    let (events, _) = run_program("shop::Counter::bump::t", mode, &[CXX_LOCALS]);
    assert_eq!(news(&events, 1), ["0", "2", "6"]);
    assert_eq!(news(&events, 2), ["6", "11", "33"]);
    assert_eq!(scopes(&events).len(), 2);
    // Rust: a crate-qualified function whose frame base is rsp (DW_OP_reg7).
    let (events, _) = run_program("rust_locals::tally::sum", mode, &[RUST_LOCALS]);
    assert_eq!(news(&events, 1), ["1", "8", "16"]);
    assert_eq!(news(&events, 2), ["2", "9", "18"]);
    let (events, _) = run_program(
        "rust_locals::tally::sum",
        &with(mode, &["--changes-only", "--frames", "1"]),
        &[RUST_LOCALS],
    );
    let want: Vec<(String, String)> = vec![("1".into(), "8".into()), ("8".into(), "16".into())];
    assert_eq!(pairs(&events)[1..], want);
    assert_eq!(scopes(&events).len(), 1);
}

#[test]
fn exclusive_slots_says_what_a_locals_frames_take() {
    use std::io::BufRead;
    let mut child = Command::new(LOCALS)
        .arg("wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let out = Command::new(HWBP)
        .args(["slots", "recurse::b", "shape::cfg", "-p"])
        .arg(child.id().to_string())
        .output()
        .unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "watch 'recurse::b' takes 1 debug register while no frame of recurse is live (its \
         entry), 3 in a thread with a live frame (entry, 1 for the value, return)"
        ),
        "{text}"
    );
    // struct cfg {int len, cap;}: one aligned 8-byte piece.
    assert!(text.contains("watch 'shape::cfg' takes 1 debug register while no frame of shape is live (its entry), 3 in a thread"), "{text}");
}

#[test]
fn exclusive_a_recorded_local_reports_its_frames() {
    for mode in MODES {
        let path = std::env::temp_dir().join(format!(
            "hwbp-locals-{}-{}.hwbp",
            std::process::id(),
            mode.len()
        ));
        let out = Command::new(HWBP)
            .args(["record", "step::acc", "--changes-only", "-o"])
            .arg(&path)
            .args(mode)
            .args(["--", LOCALS, "calls"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_success(&out);
        let text = std::fs::read_to_string(&path).unwrap();
        let records = json_lines(&text);
        assert_eq!(records[0]["watches"][0]["address"], "frame");
        // Each frame's hits, then its scope record.
        let kinds: Vec<&str> = records[1..]
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .filter(|k| *k != "thread")
            .collect();
        let frame = ["hit", "hit", "hit", "scope"];
        assert_eq!(
            kinds,
            [&frame[..], &frame, &frame, &["summary"]].concat(),
            "{mode:?}"
        );
        let report = Command::new(HWBP)
            .args(["report"])
            .arg(&path)
            .output()
            .unwrap();
        assert_success(&report);
        let shown = String::from_utf8_lossy(&report.stdout);
        for instance in 1..=3 {
            assert!(
                shown.contains(&format!(
                    "acc left scope: step returned (frame {instance}, thread "
                )),
                "{shown}"
            );
        }
        assert!(shown.contains("; 3 reported of 4 accesses)"), "{shown}");
        let json = Command::new(HWBP)
            .args(["report", "--json"])
            .arg(&path)
            .output()
            .unwrap();
        let rep: Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(rep["watchpoints"][0]["hits"], 12);
        let ends: Vec<&Value> = rep["scopes"].as_array().unwrap().iter().collect();
        assert_eq!(ends.len(), 3);
        assert!(ends
            .iter()
            .all(|e| e["ended"] == "returned" && e["reported"] == 3));
        std::fs::remove_file(&path).unwrap();
    }
}
