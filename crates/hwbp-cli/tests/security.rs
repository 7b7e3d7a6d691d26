//! Privilege: hwbp never raises it and is never installed setuid; an unprivileged user watches
//! their own process under the machine's `perf_event_paranoid` (2 here: user-space only, so
//! hwbp must set `exclude_kernel` itself); watching another user's process or all CPUs without
//! the right fails with a message naming what is needed.
//!
//! When the tests run as root (CI), the unprivileged side is a real system user, `hwbp-test`,
//! created here if absent; run as a normal user, that user is the unprivileged side itself.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hwbp_fixtures::{Fixture, WRITER};
use serde_json::Value;

const HWBP: &str = env!("CARGO_BIN_EXE_hwbp");
const TEST_USER: &str = "hwbp-test";

/// The uid and gid the unprivileged side runs as, or `None` to run as ourselves (not root).
fn unprivileged() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let lookup = || nix::unistd::User::from_name(TEST_USER).unwrap();
    if lookup().is_none() {
        // Parallel tests may race to create it; whoever loses finds it created.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(TEST_USER)
            .status();
    }
    let user = lookup().unwrap_or_else(|| panic!("cannot create user {TEST_USER}"));
    assert_ne!(user.uid.as_raw(), 0);
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// A command run as the unprivileged user (std drops supplementary groups when root sets uid).
fn as_unprivileged(program: &str) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = unprivileged() {
        command.uid(uid).gid(gid).env("HOME", "/");
    }
    command
}

fn run_unprivileged(args: &[&str]) -> Output {
    as_unprivileged(HWBP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn paranoid() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn unprivileged_user_watches_their_own_process_with_exact_counts() {
    assert!(
        paranoid() <= 2,
        "perf_event_paranoid > 2 forbids all perf use"
    );
    let child = as_unprivileged(WRITER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut writer = Fixture::from_child(child).unwrap();
    let owner = std::fs::metadata(format!("/proc/{}", writer.pid())).unwrap();
    if let Some((uid, _)) = unprivileged() {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(owner.uid(), uid, "the fixture runs as {TEST_USER}");
    }
    let mut hwbp = as_unprivileged(HWBP)
        .args(["stat", "counter", "-p", &writer.pid().to_string(), "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(hwbp.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    if !first.starts_with("hwbp: watching") {
        let _ = hwbp.kill();
        let _ = hwbp.wait();
        panic!("unprivileged hwbp did not arm: {first}");
    }
    writer.command("go 7").unwrap();
    writer.command("stray").unwrap();
    assert_eq!(writer.finish().unwrap().code(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = hwbp.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = hwbp.kill();
            let _ = hwbp.wait();
            panic!("hwbp did not end after its target exited");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    hwbp.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let watch = &report["watchpoints"][0];
    assert_eq!(watch["hits"], 8, "{report}");
    assert_eq!(watch["lost"], 0);
    // Every hit is a user-mode store: no kernel-mode access was (or could be) watched.
    let functions = watch["functions"].as_object().unwrap();
    assert!(
        functions.keys().all(|f| !f.contains("[kernel]")),
        "{functions:?}"
    );
    assert_eq!(
        functions
            .iter()
            .filter(|(f, _)| f.starts_with("bump_counter"))
            .map(|(_, n)| n.as_u64().unwrap())
            .sum::<u64>(),
        7
    );
}

#[test]
fn unprivileged_user_watching_a_root_process_is_told_it_needs_cap_sys_ptrace() {
    assert!(
        unprivileged().is_some(),
        "needs root: the test runs hwbp as the unprivileged user {TEST_USER} against a root \
         process (run the tests as root)"
    );
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid().to_string();
    let addr = format!("{:#x}", writer.addr());
    for spec in ["counter", addr.as_str()] {
        let out = run_unprivileged(&["stat", spec, "-p", &pid, "--duration", "0.2"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{spec}: {stderr}");
        assert!(out.stdout.is_empty(), "{spec}");
        assert_eq!(stderr.lines().count(), 1, "{spec}: {stderr}");
        assert!(
            stderr.starts_with("hwbp: ") && stderr.contains("CAP_SYS_PTRACE"),
            "{spec}: {stderr}"
        );
    }
    // The root process was not touched.
    let done = writer.command("go 2").unwrap();
    assert_eq!(done.number("value").unwrap(), 0x1234 + 2);
}

/// Opens (tries to open) CPU-wide events, hence `exclusive_`.
#[test]
fn exclusive_unprivileged_all_cpus_watch_is_told_it_needs_cap_perfmon() {
    let level = paranoid();
    assert!(
        level > 0,
        "perf_event_paranoid is {level}: at 0 or below every user may open CPU-wide watches, \
         so the refusal this tests cannot happen (sysctl kernel.perf_event_paranoid=2)"
    );
    let out = run_unprivileged(&["stat", "0x1000", "-a", "--duration", "0.2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("CAP_PERFMON") && stderr.contains("perf_event_paranoid"),
        "{stderr}"
    );
}

#[test]
fn the_built_binary_is_not_setuid_or_setgid() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(HWBP).unwrap().permissions().mode();
    assert_eq!(mode & 0o6000, 0, "{HWBP} has mode {mode:o}");
}

/// hwbp never changes its credentials: no crate calls a set*id or capability-raising function.
#[test]
fn no_source_file_changes_credentials() {
    const FORBIDDEN: &[&str] = &[
        "setuid(",
        "seteuid(",
        "setreuid(",
        "setresuid(",
        "setgid(",
        "setegid(",
        "setresgid(",
        "capset(",
        "SYS_capset",
        "PR_CAP_AMBIENT",
    ];
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    let mut stack = vec![crates];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "tests") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs" || e == "c") {
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for word in FORBIDDEN {
                    if text.contains(word) {
                        offenders.push(format!("{}: {word}", path.display()));
                    }
                }
            }
        }
    }
    assert!(files > 20, "only {files} source files found");
    assert!(offenders.is_empty(), "{offenders:?}");
}

/// Runs `hwbp ARGS -p <a sequence fixture of the unprivileged user>` as that user, sends
/// `command` to the fixture, and returns hwbp's exit code, stdout and stderr.
fn unprivileged_watch_of_sequence(args: &[&str], command: &str) -> (Option<i32>, String, String) {
    let child = as_unprivileged(hwbp_fixtures::SEQUENCE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut target = Fixture::from_child(child).unwrap();
    let pid = target.pid().to_string();
    let mut hwbp = as_unprivileged(HWBP)
        .args(args)
        .args(["-p", &pid])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(hwbp.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    if first.starts_with("hwbp: watching") {
        target.command(command).unwrap();
    }
    drop(target.finish());
    // Read everything before waiting: a full pipe would block hwbp.
    let mut stdout = String::new();
    hwbp.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = hwbp.wait().unwrap();
    (status.code(), stdout, first + &rest)
}

/// Without BPF permission the values come from perf samples with the user registers: the
/// plain `mov` of `store_value` is decoded, so every value is exact and says where it came from,
/// and the start-up notice names the engine and why.
#[test]
fn unprivileged_watch_decodes_the_trapping_store_for_exact_values() {
    let (code, stdout, stderr) =
        unprivileged_watch_of_sequence(&["watch", "value", "--json"], "go 1000");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.lines().any(|l| l
            == "hwbp: values: decoded from the trapping store, else read after (no BPF \
                permission: needs root or CAP_BPF+CAP_PERFMON)"),
        "{stderr}"
    );
    let hits: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "hit")
        .collect();
    assert_eq!(hits.len(), 1000, "{stderr}");
    // The value at arming is read from the target's memory, which Yama's ptrace_scope 1
    // forbids to a process that is not the target's ancestor: then the first `old` is unknown.
    let yama_restricts = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .is_ok_and(|s| s.trim() != "0");
    for (i, hit) in hits.iter().enumerate() {
        let i = i as u64 + 1;
        assert_eq!(hit["value_source"], "decoded-store", "{hit}");
        assert_eq!(hit["exact"], true, "{hit}");
        assert_eq!(hit["value_after"], i, "{hit}");
        if i == 1 && yama_restricts {
            assert_eq!(hit["value_before"], Value::Null, "{hit}");
        } else {
            assert_eq!(hit["value_before"], i - 1, "{hit}");
        }
    }
}

/// `--changes-only` without `--stop` needs the handler: without BPF permission it is refused
/// up front, in one line saying why and what would work.
#[test]
fn unprivileged_changes_only_without_stop_is_refused_with_the_reason() {
    let (code, _stdout, stderr) =
        unprivileged_watch_of_sequence(&["watch", "value", "--changes-only"], "go 1");
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "hwbp: --changes-only and --if without --stop are filtered by the in-kernel BPF \
         handler, which cannot be used (no BPF permission: needs root or CAP_BPF+CAP_PERFMON): \
         run as root, or add --stop"
    );
}
