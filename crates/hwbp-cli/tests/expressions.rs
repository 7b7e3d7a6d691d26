//! Watch expressions on the real kernel, end to end through the `hwbp` binary: every
//! expression form and C type kind of the `chain` and `typed` fixtures, gdb's value chain
//! (`p->val` while `p` goes NULL -> &a -> &b -> &c, with a write through the old object after
//! each move that must not be reported; `hp->o->val` through two pointers), in perf and stop
//! mode, with the exact old and new values as C prints them; a differential test against
//! gdb's own `watch` from the first instruction; Debian's own programs (bash's exported
//! variables, libc's `optind` in coreutils' `env`), a `#!` shim and `env VAR=1 prog`
//! followed through their execs.
//!
//! ptrace (stop mode, launched commands): every test name starts with `exclusive_`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use hwbp_fixtures::{Fixture, CHAIN, TYPED};
use serde_json::Value;

mod support;
use support::{assert_success, json_lines, Running, HWBP};

/// Link-time addresses of `path`'s symbols (the `-no-pie` fixtures run at them).
fn nm(path: &str) -> HashMap<String, u64> {
    let out = Command::new("nm").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = u64::from_str_radix(w.next()?, 16).ok()?;
            let _kind = w.next()?;
            Some((w.next()?.to_string(), addr))
        })
        .collect()
}

/// One expected hit: after step `step` of the chain fixture, watch `watch` reports member
/// `field` (`None`: a one-piece watch) going from `old` to `new` as C prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    step: usize,
    watch: String,
    field: Option<String>,
    old: String,
    new: String,
}

fn exp(step: usize, watch: &str, field: Option<&str>, old: &str, new: &str) -> Expected {
    Expected {
        step,
        watch: watch.into(),
        field: field.map(Into::into),
        old: old.into(),
        new: new.into(),
    }
}

/// What a JSON hit says, in the terms of [`Expected`] (step unknown: 0).
fn seen(hit: &Value) -> Expected {
    Expected {
        step: 0,
        watch: hit["watch"].as_str().unwrap().into(),
        field: hit["field"].as_str().map(Into::into),
        old: hit["old"].as_str().unwrap_or("<none>").into(),
        new: hit["new"].as_str().unwrap_or("<none>").into(),
    }
}

/// The chain fixture's 24 writes.
const STEPS: usize = 24;

/// Runs the chain fixture in step mode under `hwbp watch EXPRS -p PID --json` (plus
/// `extra`), one write at a time, and checks after each write that exactly the expected hits
/// came (so every value was read before the next write). Returns every hit.
fn run_steps(exprs: &[&str], extra: &[&str], expected: &[Expected]) -> Vec<Value> {
    run_steps_in(&["step"], exprs, extra, expected)
}

/// [`run_steps`] with the chain fixture started with `fixture_args`.
fn run_steps_in(
    fixture_args: &[&str],
    exprs: &[&str],
    extra: &[&str],
    expected: &[Expected],
) -> Vec<Value> {
    let mut fixture = Fixture::spawn(CHAIN, fixture_args).unwrap();
    let pid = fixture.pid().to_string();
    let mut args = vec!["watch"];
    args.extend_from_slice(exprs);
    args.extend_from_slice(&["--json", "-p", &pid]);
    args.extend_from_slice(extra);
    let mut hwbp = Running::hwbp_streaming(&args);
    let mut hits = Vec::new();
    for step in 1..=STEPS {
        let done = fixture.command("next").unwrap();
        assert_eq!(done.number("step").unwrap(), step as u64);
        for want in expected.iter().filter(|e| e.step == step) {
            let line = hwbp.next_line();
            let hit: Value = serde_json::from_str(&line).unwrap();
            let got = Expected { step, ..seen(&hit) };
            assert_eq!(&got, want, "{exprs:?} {extra:?} after step {step}: {line}");
            hits.push(hit);
        }
    }
    assert_eq!(fixture.finish().unwrap().code(), Some(0));
    let (status, stdout, stderr) = hwbp.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let values = json_lines(&stdout);
    let late: Vec<&Value> = values.iter().filter(|v| v["type"] == "hit").collect();
    assert!(
        late.is_empty(),
        "{exprs:?} {extra:?}: unexpected hits {late:?}"
    );
    hits
}

/// The four runs that cover every expression form and type kind of the chain fixture, with
/// the hits each must report after each step, in both modes (every write is reported: perf
/// mode has no --changes-only, so neither does stop mode here).
fn step_runs() -> Vec<(Vec<&'static str>, Vec<Expected>)> {
    let neg = nm(CHAIN)["neg"];
    vec![
        (
            vec!["p->val", "neg", "fl"],
            vec![
                exp(1, "p->val", Some("p"), "<unreadable>", "1"),
                exp(2, "p->val", Some("p->val"), "1", "10"),
                exp(3, "p->val", Some("p"), "10", "2"),
                // step 4 writes a.val, which p no longer points at
                exp(5, "p->val", Some("p->val"), "2", "20"),
                exp(6, "p->val", Some("p"), "20", "3"),
                // step 7 writes b.val, which p no longer points at
                exp(8, "p->val", Some("p->val"), "3", "30"),
                exp(12, "neg", None, "5", "-7"),
                exp(13, "neg", None, "-7", "-7"),
                exp(14, "neg", None, "-7", "0"),
                exp(18, "fl", None, "F_A", "(F_A | F_C)"),
            ],
        ),
        (
            vec!["hp->o->val", "ch"],
            vec![
                exp(2, "hp->o->val", Some("hp->o->val"), "1", "10"),
                exp(4, "hp->o->val", Some("hp->o->val"), "10", "11"),
                exp(9, "hp->o->val", Some("hp->o"), "11", "21"),
                exp(10, "hp->o->val", Some("hp->o->val"), "21", "22"),
                exp(11, "hp->o->val", Some("hp"), "22", "<unreadable>"),
                exp(15, "ch", None, "120 'x'", "115 's'"),
            ],
        ),
        (
            vec!["*(int *)&neg", "ok"],
            vec![
                exp(12, "*(int *)&neg", None, "5", "-7"),
                exp(13, "*(int *)&neg", None, "-7", "-7"),
                exp(14, "*(int *)&neg", None, "-7", "0"),
                exp(16, "ok", None, "false", "true"),
            ],
        ),
        (
            vec!["color", "fv", "dv", "ip"],
            vec![
                exp(17, "color", None, "RED", "BLUE"),
                exp(19, "fv", None, "1.5", "-2.5"),
                exp(20, "dv", None, "0.25", "3.125"),
                exp(21, "ip", None, "0x0", &format!("{neg:#x} <neg>")),
            ],
        ),
        (
            vec!["pr", "arr[2]"],
            vec![
                exp(
                    22,
                    "pr",
                    Some("pr.hi"),
                    "{lo = 1, mid = 0, hi = 2}",
                    "{lo = 1, mid = 0, hi = 7}",
                ),
                exp(23, "arr[2]", None, "3", "-3"),
            ],
        ),
    ]
}

#[test]
fn exclusive_perf_mode_value_chains_and_typed_values_write_by_write() {
    for (exprs, expected) in step_runs() {
        let hits = run_steps(&exprs, &[], &expected);
        // Perf mode: the in-kernel handler (root), value chains too (it follows their moves).
        for hit in &hits {
            assert_eq!(hit["value_source"], "handler", "{hit}");
            assert_eq!(hit["exact"], true, "{hit}");
        }
        check_typed_fields(&hits);
    }
}

#[test]
fn exclusive_stop_mode_value_chains_and_typed_values_write_by_write() {
    for (exprs, expected) in step_runs() {
        let hits = run_steps(&exprs, &["--stop"], &expected);
        for hit in &hits {
            assert_eq!(hit["value_source"], "stopped", "{hit}");
        }
        check_typed_fields(&hits);
    }
}

#[test]
fn exclusive_value_chains_move_in_every_thread() {
    // Odd writes by a second thread, even ones by main: when one thread moves p, the other,
    // blocked in the kernel, must be moved too (its next write through the old object is not
    // reported, through the new one is). Stop mode (every thread's debug registers) and perf
    // mode (the events inherited by both threads).
    let (exprs, expected) = step_runs().remove(0);
    for extra in [&[][..], &["--stop"][..]] {
        let hits = run_steps_in(&["step", "threads"], &exprs, extra, &expected);
        let pid = hits[0]["pid"].as_i64().unwrap();
        for (hit, want) in hits.iter().zip(&expected) {
            let by_main = hit["tid"].as_i64() == Some(pid);
            assert_eq!(
                by_main,
                want.step % 2 == 0,
                "{extra:?} step {}: {hit}",
                want.step
            );
        }
    }
    // A launched command (stopped with SIGSTOP, not PTRACE_INTERRUPT, to be moved): stop mode
    // reads every value while the writer is stopped, so all input may come at once.
    let mut child = Command::new(HWBP)
        .args([
            "watch", "p->val", "--stop", "--json", "--", CHAIN, "step", "threads",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&[b'\n'; STEPS])
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    let hits: Vec<Value> = json_lines(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter(|v| v["type"] == "hit")
        .collect();
    let got: Vec<Expected> = hits
        .iter()
        .zip(&expected)
        .map(|(h, e)| Expected {
            step: e.step,
            ..seen(h)
        })
        .collect();
    assert_eq!(got, expected[..6], "{hits:?}");
    let pid = hits[0]["pid"].as_i64().unwrap();
    let by_main: Vec<bool> = hits
        .iter()
        .map(|h| h["tid"].as_i64() == Some(pid))
        .collect();
    assert_eq!(by_main, [false, true, false, false, true, true]);
}

/// The typed JSON fields beside the raw integers.
fn check_typed_fields(hits: &[Value]) {
    for hit in hits {
        let want_type = match hit["watch"].as_str().unwrap() {
            "p->val" | "hp->o->val" | "neg" | "*(int *)&neg" => "int",
            "fl" => "enum flags",
            "ch" => "char",
            "ok" => "_Bool",
            "color" => "enum color",
            "fv" => "float",
            "dv" => "double",
            "ip" => "int *",
            "pr" => "struct pair",
            "arr[2]" => "short int",
            other => panic!("unexpected watch {other}"),
        };
        assert_eq!(hit["value_type"], want_type, "{hit}");
        match hit["watch"].as_str().unwrap() {
            "neg" if hit["new"] == "-7" => {
                assert_eq!(hit["value_after"], u64::from((-7i32) as u32), "{hit}")
            }
            "pr" => {
                assert_eq!(
                    hit["changes"],
                    serde_json::json!([{"member": "pr.hi", "old": "2", "new": "7"}]),
                    "{hit}"
                );
                assert_eq!(hit["bytes_after"], "010000000000000007000000", "{hit}");
                // Stop mode and the in-kernel handler: the member's own piece, exact; perf
                // mode without them reads the 12 bytes.
                if hit["value_source"] == "stopped" || hit["value_source"] == "handler" {
                    assert_eq!(
                        (&hit["value_before"], &hit["value_after"]),
                        (&2.into(), &7.into())
                    );
                } else {
                    assert!(hit["value_after"].is_null(), "{hit}");
                }
            }
            "p->val" if hit["field"] == "p" => {
                assert_eq!(hit["moved_by"], "p", "{hit}");
                assert!(hit["moved_to"].as_str().unwrap().starts_with("0x"), "{hit}");
                // The raw integers are the expression's too (NULL before: none).
                let old = hit["value_before"].as_u64();
                let new = hit["value_after"].as_u64().unwrap();
                assert_eq!(new.to_string(), hit["new"].as_str().unwrap(), "{hit}");
                assert_eq!(old.is_none(), hit["old"] == "<unreadable>", "{hit}");
            }
            _ => {}
        }
    }
}

/// gdb's `Old value`/`New value` pairs for `watch EXPR` on `program` from its first
/// instruction (`starti`), every hit continued; a pointer's `(T *) ` prefix dropped, as hwbp
/// prints a top-level pointer.
fn gdb_changes(program: &str, expr: &str) -> Vec<(String, String)> {
    let script = format!(
        "set pagination off\nset confirm off\nstarti\nwatch {expr}\ncommands\ncontinue\nend\n\
         continue\n"
    );
    let path = std::env::temp_dir().join(format!("hwbp-gdb-{}.gdb", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-x"])
        .arg(&path)
        .arg(program)
        .output()
        .expect("gdb runs");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    let strip = |v: &str| -> String {
        let v = v.trim();
        match v.strip_prefix('(').and_then(|r| r.split_once(" *) ")) {
            Some((_, rest)) => rest.to_string(),
            None => v.to_string(),
        }
    };
    let mut pairs = Vec::new();
    let mut old = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("Old value = ") {
            old = Some(strip(v));
        } else if let Some(v) = line.strip_prefix("New value = ") {
            pairs.push((old.take().expect("Old value first"), strip(v)));
        }
    }
    pairs
}

/// hwbp's changes for `watch EXPR --stop --changes-only` on `program`, launched.
fn hwbp_changes(program: &str, expr: &str) -> Vec<(String, String)> {
    let out = Command::new(HWBP)
        .args([
            "watch",
            expr,
            "--stop",
            "--changes-only",
            "--json",
            "--",
            program,
        ])
        .output()
        .unwrap();
    assert_success(&out);
    json_lines(&String::from_utf8_lossy(&out.stdout))
        .iter()
        .filter(|v| v["type"] == "hit")
        .map(|h| {
            (
                h["old"].as_str().unwrap().to_string(),
                h["new"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn exclusive_expressions_change_as_gdb_watch_reports_them_from_the_first_instruction() {
    let exprs = [
        "p->val",
        "hp->o->val",
        "neg",
        "ch",
        "ok",
        "color",
        "fl",
        "fv",
        "dv",
        "ip",
        "pr",
        "arr[2]",
        "big[100]",
    ];
    for expr in exprs {
        let gdb = gdb_changes(CHAIN, expr);
        assert!(!gdb.is_empty(), "gdb saw no change of {expr}");
        assert_eq!(hwbp_changes(CHAIN, expr), gdb, "watch {expr}");
    }
    // The chain's own sequence, spelled out once.
    assert_eq!(
        gdb_changes(CHAIN, "p->val"),
        [
            ("<unreadable>", "1"),
            ("1", "10"),
            ("10", "2"),
            ("2", "20"),
            ("20", "3"),
            ("3", "30")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
}

/// Runs the `typed` fixture under `hwbp watch SPEC --json` (plus `extra`) attached, sends it
/// each command and waits for the hits it must cause (so perf mode reads each value before
/// the next command), and returns them; no other hit may come.
fn typed_hits(spec: &str, extra: &[&str], steps: &[(&str, usize)]) -> Vec<Value> {
    let mut fixture = Fixture::spawn(TYPED, &[]).unwrap();
    let pid = fixture.pid().to_string();
    let mut args = vec!["watch", spec, "--json", "-p", &pid];
    args.extend_from_slice(extra);
    let mut hwbp = Running::hwbp_streaming(&args);
    let mut got = Vec::new();
    for (command, hits) in steps {
        fixture.command(command).unwrap();
        for _ in 0..*hits {
            got.push(serde_json::from_str::<Value>(&hwbp.next_line()).unwrap());
        }
    }
    let hits = got.len();
    assert_eq!(fixture.finish().unwrap().code(), Some(0));
    let (status, stdout, stderr) = hwbp.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let late: Vec<Value> = json_lines(&stdout)
        .into_iter()
        .filter(|v| v["type"] == "hit")
        .collect();
    assert!(
        late.is_empty(),
        "{spec} {extra:?}: more hits than {hits}: {late:?}"
    );
    got
}

#[test]
fn exclusive_static_locals_scoped_names_and_members_in_both_modes() {
    for extra in [&[][..], &["--stop"][..]] {
        // gdb's 'func'::var, func::var, and a member of an array of structs.
        let hits = typed_hits("'bump'::calls", extra, &[("calls", 1)]);
        assert_eq!(
            (&hits[0]["old"], &hits[0]["new"]),
            (&"100".into(), &"101".into())
        );
        let hits = typed_hits("parse::depth", extra, &[("calls", 1)]);
        assert_eq!(hits[0]["value_type"], "int");
        assert_eq!(
            (&hits[0]["old"], &hits[0]["new"]),
            (&"5".into(), &"7".into())
        );
        let hits = typed_hits("cfg.limits[2].max", extra, &[("max 7", 1), ("max -2", 1)]);
        assert_eq!(seen(&hits[0]).new, "7");
        assert_eq!(
            (seen(&hits[1]).old.as_str(), seen(&hits[1]).new.as_str()),
            ("7", "-2")
        );
        // A struct of two registers: the member touched, with its own old and new.
        let hits = typed_hits("cfg.limits[2]", extra, &[("max 9", 1)]);
        assert_eq!(
            hits[0]["changes"],
            serde_json::json!([{"member": "cfg.limits[2].max", "old": "5", "new": "9"}])
        );
        // One register (8 aligned bytes): the change names the member.
        assert!(hits[0]["field"].is_null(), "{}", hits[0]);
        // `(*cur).state` is `cur->state`: a chain, retargeted by `retarget`.
        let hits = typed_hits(
            "(*cur).state",
            extra,
            &[("state 8", 1), ("retarget", 1), ("state 6", 1)],
        );
        let pairs: Vec<(String, String)> =
            hits.iter().map(|h| (seen(h).old, seen(h).new)).collect();
        assert_eq!(
            pairs,
            [("1", "8"), ("8", "2"), ("2", "6")].map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }
}

#[test]
fn exclusive_if_compares_in_the_type() {
    // `cfg.limits[2].max` is an int32_t: --if '<0' holds for -2 only.
    let hits = typed_hits(
        "cfg.limits[2].max",
        &["--stop", "--if", "<0"],
        &[("max 7", 0), ("max -2", 1), ("max 3", 0)],
    );
    assert_eq!(
        (seen(&hits[0]).old.as_str(), seen(&hits[0]).new.as_str()),
        ("7", "-2")
    );
}

/// `--if` with an enum constant, as gdb's `watch color if color == BLUE`: the chain
/// fixture's one write to `color` (RED -> BLUE, step 17) is reported for `==BLUE` and not for
/// `==GREEN` or `!=BLUE`, in perf mode (filtered in the kernel) and in stop mode; a name the
/// enum does not have is refused before anything is armed, naming the constants.
#[test]
fn exclusive_if_compares_with_an_enum_constant_in_both_modes() {
    let blue = [exp(17, "color", None, "RED", "BLUE")];
    for mode in [None, Some("--stop")] {
        for (condition, expected) in [("==BLUE", &blue[..]), ("==GREEN", &[]), ("!=BLUE", &[])] {
            let mut extra = vec!["--if", condition];
            extra.extend(mode);
            run_steps(&["color"], &extra, expected);
        }
    }
    let mut fixture = Fixture::spawn(CHAIN, &["step"]).unwrap();
    let pid = fixture.pid().to_string();
    let (code, stdout, stderr) =
        support::run_hwbp(&["watch", "color", "-p", &pid, "--if", "==PURPLE"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(
        stderr.trim(),
        "hwbp: --if \"==PURPLE\": PURPLE is not a constant of the watched enum; it has RED, \
         GREEN, BLUE"
    );
    let (code, _, stderr) = support::run_hwbp(&["watch", "fv", "-p", &pid, "--if", "==RED"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no watched value is of an enum type"),
        "{stderr}"
    );
    // The fixture was never touched: it still runs its steps to the end.
    for step in 1..=STEPS {
        let done = fixture.command("next").unwrap();
        assert_eq!(done.number("step").unwrap(), step as u64);
    }
    assert_eq!(fixture.finish().unwrap().code(), Some(0));
}

#[test]
fn exclusive_location_mode_watches_the_address_found_once() {
    // -l: cur->state is conns[0].state for good; after `retarget` its writes go elsewhere.
    let hits = typed_hits(
        "cur->state",
        &["-l", "--stop"],
        &[
            ("state 4", 1),
            ("retarget", 0),
            ("state 5", 0),
            ("retarget", 0),
            ("state 6", 1),
        ],
    );
    let pairs: Vec<(String, String)> = hits.iter().map(|h| (seen(h).old, seen(h).new)).collect();
    assert_eq!(
        pairs,
        [("1", "4"), ("4", "6")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(hits.iter().all(|h| h["field"].is_null()), "{hits:?}");
}

#[test]
fn exclusive_slots_counts_the_pointer_watches_of_a_chain() {
    let fixture = Fixture::spawn(TYPED, &[]).unwrap();
    let pid = fixture.pid().to_string();
    let out = Command::new(HWBP)
        .args(["slots", "cur->peer->state", "-p", &pid])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "watch 'cur->peer->state' takes 3 debug registers: 1 for the value, 2 for the \
             pointers it reads (cur, cur->peer); -l/--location watches the value alone"
        ),
        "{text}"
    );
    assert!(
        text.contains("cur->peer->state (pointer cur->peer)"),
        "{text}"
    );
    let out = Command::new(HWBP)
        .args(["slots", "-l", "cur->peer->state", "-p", &pid])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("pointer"), "{text}");
}

/// `hwbp watch SPEC --stop --changes-only --json -- ARGV...`: the hits and stderr.
fn launched_hits(spec: &str, argv: &[&str]) -> (Vec<Value>, Vec<String>) {
    launched_hits_with(spec, argv, &[])
}

/// [`launched_hits`] with `env` set for hwbp.
fn launched_hits_with(
    spec: &str,
    argv: &[&str],
    env: &[(&str, &str)],
) -> (Vec<Value>, Vec<String>) {
    let out = Command::new(HWBP)
        .args(["watch", spec, "--stop", "--changes-only", "--json", "--"])
        .args(argv)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(out.status.code(), Some(0), "{stderr:?}");
    let hits = json_lines(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter(|v| v["type"] == "hit")
        .collect();
    (hits, stderr)
}

fn olds_news(hits: &[Value]) -> Vec<(u64, u64)> {
    hits.iter()
        .map(|h| {
            (
                h["value_before"].as_u64().unwrap(),
                h["value_after"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn exclusive_debian_bash_exported_variable_followed_through_env_and_a_shim() {
    // bash's own `last_command_exit_value` (stripped: .dynsym only, type unknown), through
    // `env -i` and through a `#!/bin/sh` shim that execs bash: both followed to bash.
    let script = "false; true; exit 0";
    let dir = std::env::temp_dir().join(format!("hwbp-shim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shim = dir.join("shim");
    let mut file = std::fs::File::create(&shim).unwrap();
    writeln!(file, "#!/bin/sh\nexec /usr/bin/bash --norc -c '{script}'").unwrap();
    drop(file);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runs: [&[&str]; 2] = [
        &["env", "-i", "/usr/bin/bash", "--norc", "-c", script],
        &[shim.to_str().unwrap()],
    ];
    for argv in runs {
        let (hits, stderr) = launched_hits("last_command_exit_value", argv);
        assert_eq!(olds_news(&hits), [(0, 1), (1, 0)], "{argv:?}");
        for hit in &hits {
            assert_eq!(hit["comm"], "bash");
            assert!(hit["value_type"].is_null(), "{hit}");
            // Code in the stripped bash is named by symbol or as bash+0x...
            let named = hit["function"].is_string()
                || hit["module_offset"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("bash+0x"));
            assert!(named, "{hit}");
        }
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("followed through exec to /usr/bin/bash")),
            "{stderr:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exclusive_debian_coreutils_env_optind_written_by_stripped_libc() {
    // coreutils' env parses its options with libc's getopt_long: optind 1 -> 3 for `-u FOO`.
    // libc6-dbg's debug file names the writer, with its line.
    let argv = ["/usr/bin/env", "-u", "FOO", "true"];
    let (hits, _) = launched_hits("optind", &argv);
    assert_eq!(olds_news(&hits), [(1, 3)]);
    for hit in &hits {
        assert_eq!(hit["function"], "_getopt_internal", "{hit}");
        assert_eq!(hit["file"], "getopt.c", "{hit}");
    }
    // Without it (hidden from hwbp as if libc6-dbg were not installed), the module and offset.
    let hidden = [("HWBP_DEBUG_FILE_DIRECTORY", "")];
    let (hits, _) = launched_hits_with("optind", &argv, &hidden);
    assert_eq!(olds_news(&hits), [(1, 3)]);
    for hit in &hits {
        let module = hit["module_offset"].as_str().unwrap_or_default();
        assert!(module.starts_with("libc.so.6+0x"), "{hit}");
        assert!(hit["function"].is_null(), "{hit}");
    }
    // The text line names the module too, never a bare address.
    let out = Command::new(HWBP)
        .args([
            "watch",
            "optind",
            "--stop",
            "--",
            "/usr/bin/env",
            "-u",
            "FOO",
            "true",
        ])
        .envs(hidden)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains(" optind ")).unwrap();
    assert!(line.contains(" by libc.so.6+0x"), "{line}");
    // libc's optind has no type without its debug info, but an int of its size reads as one:
    // no note per hit.
    assert!(line.contains("value 1 -> 3"), "{line}");
    assert!(!line.contains("type unknown"), "{line}");
}

/// `print EXPR` in gdb attached to `pid`, one value per expression (`$N = ` dropped).
fn gdb_print(pid: i32, exprs: &[String]) -> Vec<String> {
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch", "-p", &pid.to_string()]);
    for e in exprs {
        cmd.args(["-ex", &format!("print {e}")]);
    }
    let out = cmd.output().expect("gdb runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" = ").filter(|(h, _)| h.starts_with('$')))
        .map(|(_, v)| v.to_string())
        .collect()
}

#[test]
fn exclusive_cxx_and_rust_paths_resolve_where_gdb_puts_them() {
    // C++: namespaces, a class's static members, a member of a namespaced struct.
    let fixture = Fixture::spawn(hwbp_fixtures::SCOPED, &[]).unwrap();
    let exprs = [
        "net::port",
        "Registry::count",
        "Registry::corners[1].y",
        "geo::origin.y",
    ];
    let out = Command::new(HWBP)
        .arg("slots")
        .args(exprs)
        .args(["net::inner::depth"])
        .args(["-p", &fixture.pid().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let queries: Vec<String> = exprs
        .iter()
        .flat_map(|e| [format!("(unsigned long)&({e})"), format!("sizeof({e})")])
        .collect();
    let gdb = gdb_print(fixture.pid(), &queries);
    assert_eq!(gdb.len(), queries.len(), "gdb: {gdb:?}");
    for (i, expr) in exprs.iter().enumerate() {
        let addr: u64 = gdb[2 * i].parse().unwrap();
        let want = format!(" {expr} ({addr:#x}, {} bytes)", gdb[2 * i + 1]);
        assert!(text.contains(&want), "{want:?} not in {text}");
    }
    // A nested namespace (gdb attached cannot name it; nm can).
    let depth = nm(hwbp_fixtures::SCOPED)["_ZN3net5inner5depthE"];
    let want = format!(" net::inner::depth ({depth:#x}, 8 bytes)");
    assert!(text.contains(&want), "{want:?} not in {text}");
    drop(fixture);

    // Rust: a static's path, typed as gdb's Rust printer names its members.
    let fixture = Fixture::spawn(hwbp_fixtures::RUST_STATICS, &[]).unwrap();
    let pid = fixture.pid().to_string();
    let mut hwbp = Running::hwbp_streaming(&[
        "watch",
        "rust_statics::config::COUNTER",
        "--stop",
        "--json",
        "-p",
        &pid,
    ]);
    // End of input: the fixture's exit path does COUNTER.fetch_add(1).
    fixture.finish().unwrap();
    let hit: Value = serde_json::from_str(&hwbp.next_line()).unwrap();
    assert_eq!(
        hit["changes"],
        serde_json::json!([{
            "member": "rust_statics::config::COUNTER.v.value", "old": "9", "new": "10"
        }]),
        "{hit}"
    );
    assert_eq!(hit["value_type"], "core::sync::atomic::AtomicU32", "{hit}");
    let (status, _, stderr) = hwbp.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
}
