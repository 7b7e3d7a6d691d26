//! Watches that wait for their target, on the real kernel: a launched command whose own image
//! does not define the watched name (a loader that `dlopen`s the library holding it, python
//! loading it through ctypes, a shell running the program that defines it) is followed as a
//! process tree, and the watch is armed in each process once an image defining it is mapped,
//! before that image's code runs: the library's constructor's write counts, each process of a
//! script has its own exact counts, and the tree runs on untouched when hwbp ends first.
//!
//! These tests use ptrace on every process of the tree: `exclusive_*`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hwbp_fixtures::{LIBLATE, LOADER, TREE_COUNT};
use serde_json::Value;

mod support;
use support::{hits, json_lines, json_of_type, old_new, run_hwbp, summary};

/// What hwbp says once for a watch no image of the launched command defines yet.
const PENDING_NOTICE: &str = "late_counter: pending until an image defining it is mapped";

/// `(old, new)` of one load of liblate.so and `late_bump(n)`: the constructor's 0 -> 1000, then
/// 1000 -> 1, 1 -> 2, ..., n-1 -> n.
fn one_load(n: u64) -> Vec<(u64, u64)> {
    let mut values = vec![(0, 1000), (1000, 1)];
    values.extend((1..n).map(|i| (i, i + 1)));
    values
}

/// The functions of the hits, in order.
fn functions(hits: &[&Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["function"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// `late_init` once, then `late_bump` n times.
fn one_load_functions(n: usize) -> Vec<String> {
    let mut names = vec!["late_init".to_owned()];
    names.extend(std::iter::repeat_n("late_bump".to_owned(), n));
    names
}

/// Asserts the hits of `values` are `loads` loads of liblate.so with `late_bump(n)` each:
/// values and writing functions in order.
fn assert_loads(values: &[Value], n: u64, loads: usize) {
    let hits = hits(values);
    let pairs: Vec<_> = hits.iter().map(|h| old_new(h)).collect();
    assert_eq!(pairs, one_load(n).repeat(loads), "{values:?}");
    let names: Vec<String> = std::iter::repeat_n(one_load_functions(n as usize), loads)
        .flatten()
        .collect();
    assert_eq!(functions(&hits), names);
}

#[test]
fn exclusive_pending_watch_arms_at_dlopen_and_sees_the_constructor_and_every_write() {
    let (code, stdout, stderr) =
        run_hwbp(&["watch", "late_counter", "--json", "--", LOADER, LIBLATE]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(PENDING_NOTICE).count(), 1, "{stderr}");
    let values = json_lines(&stdout);
    assert_loads(&values, 3, 1);
    let hits = hits(&values);
    for hit in &hits {
        assert_eq!(hit["value_source"], "handler", "{hit}");
        assert_eq!(hit["comm"], "loader", "{hit}");
        // Per process: the summary has the address armed.
        assert!(hit["address"].is_null(), "{hit}");
    }
    let summary = summary(&values);
    assert_eq!(summary["watchpoints"][0]["hits"], 4, "{summary}");
    let rows = summary["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{summary}");
    assert_eq!(rows[0]["pid"], hits[0]["pid"]);
    assert_eq!(rows[0]["hits"], serde_json::json!([4]));
    assert!(rows[0]["program"].as_str().unwrap().ends_with("/loader"));
    assert!(summary.get("pending").is_none(), "{summary}");
}

#[test]
fn exclusive_pending_watch_stat_counts_the_dlopened_library_per_function() {
    let (code, stdout, stderr) =
        run_hwbp(&["stat", "late_counter", "--json", "--", LOADER, LIBLATE]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json_of_type(&stdout, "stat")[0];
    let watch = &report["watchpoints"][0];
    assert_eq!(watch["hits"], 4, "{report}");
    let functions = watch["functions"].as_object().unwrap();
    assert_eq!(functions["late_bump (late.c:20)"], 3, "{report}");
    assert_eq!(functions["late_init (late.c:14)"], 1, "{report}");
    assert_eq!(report["processes"][0]["hits"], serde_json::json!([4]));
}

#[test]
fn exclusive_library_unloaded_and_loaded_again_is_armed_again_each_time() {
    // Three rounds of dlopen, late_bump(3), dlclose: each load is a new mapping, armed when
    // it is mapped and disarmed when it goes.
    let (code, stdout, stderr) = run_hwbp(&[
        "watch",
        "late_counter",
        "--json",
        "--",
        LOADER,
        LIBLATE,
        "3",
        "3",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let values = json_lines(&stdout);
    assert_loads(&values, 3, 3);
    assert_eq!(stderr.matches("hwbp: watching").count(), 3, "{stderr}");
    assert_eq!(summary(&values)["watchpoints"][0]["hits"], 12);
}

#[test]
fn exclusive_python_loading_the_library_through_ctypes_is_watched_from_its_constructor() {
    let script = format!("import ctypes; ctypes.CDLL('{LIBLATE}').late_bump(7)");
    let (code, stdout, stderr) = run_hwbp(&[
        "watch",
        "late_counter",
        "--json",
        "--",
        "/usr/bin/python3",
        "-c",
        &script,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(PENDING_NOTICE).count(), 1, "{stderr}");
    let values = json_lines(&stdout);
    assert_loads(&values, 7, 1);
    let program = summary(&values)["processes"][0]["program"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(program.contains("python3"), "{program}");
}

/// `sh -c 'tree_count 10; tree_count 20'`.
fn script_running_the_program_twice() -> String {
    format!("{TREE_COUNT} 10; {TREE_COUNT} 20")
}

#[test]
fn exclusive_script_running_the_program_twice_counts_each_process_exactly() {
    let script = script_running_the_program_twice();
    let (code, stdout, stderr) =
        run_hwbp(&["stat", "tree_counter", "--json", "--", "sh", "-c", &script]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json_of_type(&stdout, "stat")[0];
    assert_eq!(report["watchpoints"][0]["hits"], 32, "{report}");
    let rows = report["processes"].as_array().unwrap();
    let counts: Vec<&Value> = rows.iter().map(|r| &r["hits"][0]).collect();
    assert_eq!(counts, [11, 21], "{report}");
    assert_ne!(rows[0]["pid"], rows[1]["pid"]);
    for row in rows {
        assert!(row["program"].as_str().unwrap().ends_with("/tree_count"));
    }
    // The per-thread table names both processes' threads (each a single-threaded process).
    let threads = report["watchpoints"][0]["threads"].as_object().unwrap();
    let mut per_thread: Vec<u64> = threads.values().map(|v| v.as_u64().unwrap()).collect();
    per_thread.sort_unstable();
    assert_eq!(per_thread, [11, 21], "{report}");

    // The text summary: a row per process and the total.
    let (code, stdout, stderr) = run_hwbp(&["stat", "tree_counter", "--", "sh", "-c", &script]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("/tree_count): "))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows[0].ends_with("tree_counter 11"), "{stdout}");
    assert!(rows[1].ends_with("tree_counter 21"), "{stdout}");
    assert!(stdout.contains("total: tree_counter 32"), "{stdout}");
}

/// Asserts the hits of `sh -c 'tree_count 10; tree_count 20'`: 11 from one process and 21
/// from the other, each every write after its exec from the first.
fn assert_script_hits(values: &[Value]) {
    let hits = hits(values);
    assert_eq!(hits.len(), 32);
    let first = &hits[0]["pid"];
    let (a, b): (Vec<&&Value>, Vec<&&Value>) = hits.iter().partition(|h| &h["pid"] == first);
    assert_eq!((a.len(), b.len()), (11, 21));
    // Every write after the exec, from the first: -1 -> 0, 0 -> 1, ..., N-1 -> N (typed: the
    // raw value_before of -1 is its 64-bit pattern).
    for (group, n) in [(a, 10u64), (b, 20)] {
        let pairs: Vec<(i64, i64)> = group
            .iter()
            .map(|h| {
                (
                    h["old"].as_str().unwrap().parse().unwrap(),
                    h["new"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(i64, i64)> = (0..=n as i64).map(|i| (i - 1, i)).collect();
        assert_eq!(pairs, expected);
    }
}

#[test]
fn exclusive_script_running_the_program_twice_names_each_hits_process() {
    let script = script_running_the_program_twice();
    let (code, stdout, stderr) =
        run_hwbp(&["watch", "tree_counter", "--json", "--", "sh", "-c", &script]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_script_hits(&json_lines(&stdout));
}

#[test]
fn exclusive_watch_no_process_defines_stays_pending_and_the_summary_says_so() {
    let (code, stdout, stderr) =
        run_hwbp(&["stat", "late_counter", "--json", "--", TREE_COUNT, "3"]);
    // Exit 0: the command ran as asked; the summary says the watch never armed.
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(PENDING_NOTICE).count(), 1, "{stderr}");
    let report = &json_of_type(&stdout, "stat")[0];
    assert_eq!(report["pending"], serde_json::json!(["late_counter"]));
    assert_eq!(report["watchpoints"][0]["hits"], 0);
    let (code, stdout, _) = run_hwbp(&["watch", "late_counter", "--", TREE_COUNT, "3"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("late_counter: still pending: no process of the command mapped an image"),
        "{stdout}"
    );
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hwbp-pending-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits up to 10 s for `path` to exist.
fn wait_for_file(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `TracerPid:` of `/proc/PID/status`.
fn tracer_of(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn exclusive_tree_runs_on_untraced_when_hwbp_ends_first() {
    // hwbp ends (--duration, --keep-running) while the script sleeps between two runs of the
    // program: the shell is detached (no tracer, nothing it must not see) and runs the rest
    // to its end.
    let dir = scratch("runs-on");
    let pid_file = dir.join("pid");
    let done_file = dir.join("done");
    let script = format!(
        "echo $$ > {pids}; {TREE_COUNT} 5; sleep 1; {TREE_COUNT} 7; echo ok > {done}",
        pids = pid_file.display(),
        done = done_file.display()
    );
    let (code, stdout, stderr) = run_hwbp(&[
        "stat",
        "tree_counter",
        "--json",
        "--duration",
        "0.5",
        "--keep-running",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json_of_type(&stdout, "stat")[0];
    assert_eq!(report["ended_by"], "duration elapsed", "{report}");
    assert_eq!(report["command"]["fate"], "kept-running", "{report}");
    assert_eq!(report["processes"][0]["hits"], serde_json::json!([6]));
    let shell: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(tracer_of(shell), Some(0), "the shell is still traced");
    assert!(
        wait_for_file(&done_file),
        "the script did not run on to its end after hwbp ended"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exclusive_attached_process_that_dlopens_later_is_watched_from_the_constructor() {
    use hwbp_fixtures::Fixture;
    use std::process::Stdio;
    let mut loader = Fixture::spawn(LOADER, &[LIBLATE, "3", "1", "wait"]).unwrap();
    let loader_pid = loader.pid();
    let pid = loader_pid.to_string();
    let mut hwbp = support::Running::spawn(
        support::HWBP,
        &["watch", "late_counter", "--json", "-p", &pid],
        Stdio::piped(),
    );
    // Said once the process is attached and its dynamic linker's notifications are caught.
    hwbp.wait_stderr(&format!("hwbp: {PENDING_NOTICE}"));
    let done = loader.command("go").unwrap();
    assert_eq!(done.number("last").unwrap(), 3);
    support::assert_exited_ok(loader.finish().unwrap(), "the loader");
    let (status, stdout, stderr) = hwbp.finish();
    assert_eq!(status.code(), Some(0), "{stderr:?}");
    let values = json_lines(&stdout);
    assert_loads(&values, 3, 1);
    let summary = summary(&values);
    assert_eq!(summary["ended_by"], "target exited", "{summary}");
    assert_eq!(summary["processes"][0]["pid"], loader_pid);
}

#[test]
fn exclusive_attached_process_runs_on_untraced_when_hwbp_ends_before_the_dlopen() {
    use hwbp_fixtures::Fixture;
    let mut loader = Fixture::spawn(LOADER, &[LIBLATE, "3", "1", "wait"]).unwrap();
    let pid = loader.pid();
    let (code, _, stderr) = run_hwbp(&[
        "stat",
        "late_counter",
        "--duration",
        "0.2",
        "-p",
        &pid.to_string(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(PENDING_NOTICE), "{stderr}");
    assert_eq!(tracer_of(pid), Some(0), "the loader is still traced");
    // Its dynamic linker's breakpoint is gone: the dlopen runs without a SIGTRAP.
    let done = loader.command("go").unwrap();
    assert_eq!(done.number("last").unwrap(), 3);
    support::assert_exited_ok(loader.finish().unwrap(), "the loader");
}

#[test]
fn exclusive_stop_mode_arms_at_dlopen_and_stops_at_the_constructor_and_every_write() {
    let (code, stdout, stderr) = run_hwbp(&[
        "watch",
        "late_counter",
        "--stop",
        "--json",
        "--",
        LOADER,
        LIBLATE,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr.matches(PENDING_NOTICE).count(), 1, "{stderr}");
    assert!(stderr.contains("in stop mode"), "{stderr}");
    let values = json_lines(&stdout);
    assert_loads(&values, 3, 1);
    let hits = hits(&values);
    for hit in &hits {
        assert_eq!(hit["value_source"], "stopped", "{hit}");
    }
    assert_eq!(
        summary(&values)["processes"][0]["hits"],
        serde_json::json!([4])
    );
}

#[test]
fn exclusive_stop_mode_watches_each_process_a_script_runs() {
    let script = script_running_the_program_twice();
    let (code, stdout, stderr) = run_hwbp(&[
        "watch",
        "tree_counter",
        "--stop",
        "--json",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let values = json_lines(&stdout);
    assert_script_hits(&values);
    for hit in hits(&values) {
        assert_eq!(hit["value_source"], "stopped", "{hit}");
    }
    let rows = summary(&values)["processes"].as_array().unwrap().clone();
    let counts: Vec<&Value> = rows.iter().map(|r| &r["hits"][0]).collect();
    assert_eq!(counts, [11, 21], "{rows:?}");
}

#[test]
fn exclusive_slots_on_a_pending_plan_says_what_it_will_take() {
    use hwbp_fixtures::Fixture;
    let loader = Fixture::spawn(LOADER, &[LIBLATE, "3", "1", "wait"]).unwrap();
    let (code, stdout, stderr) =
        run_hwbp(&["slots", "late_counter", "-p", &loader.pid().to_string()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "rotation plan for late_counter: pending: no image of process {}",
            loader.pid()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("each watch takes one debug register per aligned piece"));
    assert_eq!(tracer_of(loader.pid()), Some(0));
}

#[test]
fn exclusive_follow_children_of_an_attached_shell_watches_the_program_it_runs() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // A shell waiting for a line, then running the program: attached with -p before.
    for follow in [true, false] {
        let mut shell = Command::new("sh")
            .args(["-c", &format!("read line; {TREE_COUNT} 5")])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = shell.id().to_string();
        let mut args = vec!["stat", "tree_counter", "--json", "-p", &pid];
        if follow {
            args.push("--follow-children");
        }
        let mut hwbp = support::Running::spawn(support::HWBP, &args, Stdio::piped());
        hwbp.wait_stderr("hwbp: tree_counter: pending until an image defining it is mapped");
        writeln!(shell.stdin.take().unwrap(), "go").unwrap();
        support::assert_exited_ok(shell.wait().unwrap(), "the shell");
        let (status, stdout, stderr) = hwbp.finish();
        assert_eq!(status.code(), Some(0), "{stderr:?}");
        let report = &json_of_type(&stdout, "stat")[0];
        if follow {
            assert_eq!(report["watchpoints"][0]["hits"], 6, "{report}");
            let rows = report["processes"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{report}");
            assert_eq!(rows[0]["hits"], serde_json::json!([6]));
            assert!(rows[0]["program"]
                .as_str()
                .unwrap()
                .ends_with("/tree_count"));
        } else {
            // Without the flag the shell's children are not followed: never armed.
            assert_eq!(
                report["pending"],
                serde_json::json!(["tree_counter"]),
                "{report}"
            );
        }
    }
}

#[test]
fn exclusive_recording_of_a_pending_watch_reads_back_with_every_write() {
    let dir = scratch("record");
    let file = dir.join("run.hwbp");
    let file_arg = file.to_str().unwrap();
    let (code, _, stderr) = run_hwbp(&[
        "record",
        "late_counter",
        "-o",
        file_arg,
        "--",
        LOADER,
        LIBLATE,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = run_hwbp(&["report", file_arg, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json_of_type(&stdout, "report")[0];
    let watch = &report["watchpoints"][0];
    assert_eq!(watch["hits"], 4, "{report}");
    assert_eq!(watch["address"], "pending", "{report}");
    assert_eq!(watch["changes"], 4, "{report}");
    assert_eq!(watch["functions"]["late_bump (late.c:20)"], 3, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exclusive_tree_is_ended_when_the_watch_ends_first_without_keep_running() {
    let dir = scratch("ended");
    let done_file = dir.join("done");
    let script = format!(
        "{TREE_COUNT} 5; sleep 2; echo ok > {done}",
        done = done_file.display()
    );
    let (code, stdout, stderr) = run_hwbp(&[
        "stat",
        "tree_counter",
        "--json",
        "--duration",
        "0.5",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json_of_type(&stdout, "stat")[0];
    assert_eq!(report["command"]["fate"], "ended", "{report}");
    assert_eq!(report["processes"][0]["hits"], serde_json::json!([6]));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!done_file.exists(), "the ended script ran on");
    let _ = std::fs::remove_dir_all(&dir);
}
