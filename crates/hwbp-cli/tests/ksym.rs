//! `hwbp ksym` on the real kernel. This machine's `/proc/kallsyms` lists no variables (no
//! `CONFIG_KALLSYMS_ALL`) and there is no System.map, so the traced kernel memory is the
//! ELF-notes section: `/proc/kallsyms` lists its start marker `__start_notes`, and every
//! read of `/sys/kernel/notes` copies from it (`notes_read` in `kernel/ksysfs.c`). The
//! System.map path is tested with a map written here that names that address.
//!
//! Tests that arm breakpoints are CPU-wide, so their names start with `exclusive_`; the input
//! checks fail before any event is opened.

use std::process::{Command, Stdio};
use std::time::Duration;

use hwbp_fixtures::skip::skip;
use hwbp_linux::probe::kernel_address_watch_refusal;
use hwbp_linux::security::{RefusedRequest, SecurityState};
use hwbp_symbols::KernelSymbols;

mod support;
use support::{run_hwbp, Running};

fn kallsyms_address(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("{name} not in /proc/kallsyms"));
    u64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap()
}

/// A file removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, content: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("hwbp-ksym-{tag}-{}.txt", std::process::id()));
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `cargo test` runs a binary's tests in parallel threads (nextest serializes `exclusive_`
/// tests itself): these share CPU 1's registers and its online state, so they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Skips the running test when the kernel refuses a kernel-address breakpoint on `address` to
/// this process although it holds the privilege (lockdown, a security module): true when
/// skipped. Without the privilege the test runs and fails, naming it.
fn kernel_refuses_kernel_watches(address: u64) -> bool {
    if kernel_address_watch_refusal(address).is_none() {
        return false;
    }
    let state = SecurityState::read();
    if !state.permits(RefusedRequest::KernelAddressWatch) {
        return false;
    }
    skip(&format!(
        "kernel refuses kernel-address breakpoints to root: {}",
        state.policy_summary()
    ));
    true
}

fn read_notes_with_cat(times: usize) {
    for _ in 0..times {
        let status = Command::new("cat")
            .arg("/sys/kernel/notes")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// Trace lines (`comm-tid [cpu] symbol+off TYPE caller`) of a ksym run.
fn trace_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with('#'))
        .collect()
}

/// The total of the `NAME (...): N accesses` line for `name`.
fn table_total(stdout: &str, name: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} (")))
        .unwrap_or_else(|| panic!("no table for {name} in {stdout}"));
    line.rsplit_once(": ")
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_kernel_variable_without_a_symbol_source_says_why_and_how_to_fix_it() {
    let kallsyms = KernelSymbols::from_kallsyms().unwrap();
    let (code, stdout, stderr) = run_hwbp(&["ksym", "jiffies:rw-"]);
    // A kernel with CONFIG_KALLSYMS_ALL resolves jiffies; this tests the refusal path.
    assert!(
        !kallsyms.has_data_symbols(),
        "this kernel lists variables in /proc/kallsyms (CONFIG_KALLSYMS_ALL), so `hwbp ksym \
         jiffies` resolves and the refusal it tests cannot happen: run it on a kernel built \
         without CONFIG_KALLSYMS_ALL"
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty());
    for expected in [
        "kernel symbol 'jiffies' not found",
        "CONFIG_KALLSYMS_ALL",
        "--system-map",
        "--vmlinux",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

#[test]
fn bad_filters_are_refused_with_what_would_work() {
    let cases: [(&[&str], &str); 6] = [
        (&["ksym", "pid_max"], "has no ':OP'"),
        (&["ksym", "pid_max:r--"], "use pid_max:rw-"),
        (&["ksym", "pid_max:--x"], "execute breakpoints"),
        (&["ksym"], "no filter"),
        (
            &["ksym", "a:rw-", "b:rw-", "c:rw-", "d:rw-", "e:rw-"],
            "give at most 4",
        ),
        (
            &["ksym", "--system-map", "/nonexistent/System.map", "x:rw-"],
            "--system-map",
        ),
    ];
    for (args, expected) in cases {
        let (code, stdout, stderr) = run_hwbp(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn exclusive_ksym_traces_a_symbol_from_a_system_map_per_accessing_function() {
    let _serial = serial();
    let text = kallsyms_address("_text");
    let notes = kallsyms_address("__start_notes");
    if kernel_refuses_kernel_watches(notes) {
        return;
    }
    // A System.map in `nm -n` format naming the notes section as a variable.
    let map = TempFile::new(
        "map",
        &format!(
            "{text:016x} T _text\n{notes:016x} D kernel_notes\n{:016x} D after_notes\n",
            notes + 0x40
        ),
    );
    let tracer = Running::hwbp(&["ksym", "--system-map", map.path(), "kernel_notes:rw-"]);
    read_notes_with_cat(3);
    let (status, stdout, _) = tracer.interrupt();
    assert!(status.success(), "{stdout}");
    let lines = trace_lines(&stdout);
    // Each read(2) of /sys/kernel/notes copies from the watched bytes at least once.
    assert!(lines.len() >= 3, "{stdout}");
    for line in &lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields[0].starts_with("cat-"), "{line}");
        assert!(
            fields[1].starts_with('[') && fields[1].ends_with(']'),
            "{line}"
        );
        assert_eq!(&fields[2..4], ["kernel_notes+0x0", "RW"], "{line}");
        assert!(
            fields[4].contains("+0x"),
            "caller as function+offset: {line}"
        );
    }
    assert_eq!(table_total(&stdout, "kernel_notes+0x0"), lines.len() as u64);
    let caller = lines[0].split_whitespace().nth(4).unwrap();
    let function = caller.split('+').next().unwrap();
    let row = format!("{:>10}  {function}", lines.len());
    assert!(
        lines.iter().all(|l| l.contains(&format!(" {function}+"))),
        "one accessing function: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim_end() == format!("  {row}")),
        "{row:?} in {stdout}"
    );
    let address = format!("at {notes:#x}");
    assert!(stdout.contains(&address), "{address} in {stdout}");
}

#[test]
fn exclusive_ksym_reads_filters_from_a_file_and_counts_like_perf() {
    let _serial = serial();
    // `__start_notes` is a section marker /proc/kallsyms lists even without KALLSYMS_ALL.
    let notes = kallsyms_address("__start_notes");
    if kernel_refuses_kernel_watches(notes) {
        return;
    }
    let filters = TempFile::new("filters", "# the notes section\n__start_notes:rw-\n");
    let out = TempFile::new("perf", "");
    let mut perf = Command::new("perf")
        .args(["stat", "-a", "-x,", "-o", out.path(), "-e"])
        .arg(format!("mem:{notes:#x}/4:rw:k"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let tracer = Running::hwbp(&["ksym", "--file", filters.path(), "-q"]);
    read_notes_with_cat(4);
    let (status, stdout, _) = tracer.interrupt();
    assert!(Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()
        .unwrap()
        .success());
    perf.wait().unwrap();
    assert!(status.success(), "{stdout}");
    assert!(
        trace_lines(&stdout).is_empty(),
        "-q prints no trace: {stdout}"
    );
    let ours = table_total(&stdout, "__start_notes+0x0");
    let csv = std::fs::read_to_string(out.path()).unwrap();
    let perfs: u64 = csv
        .lines()
        .find(|l| l.contains("mem:"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {csv:?}"));
    assert!(ours >= 4, "{stdout}");
    assert_eq!(ours, perfs, "hwbp {ours} vs perf {perfs}: {stdout} {csv}");
}

#[test]
fn exclusive_a_kernel_watch_the_kernel_refuses_to_root_names_the_policy_not_privileges() {
    let _serial = serial();
    let notes = kallsyms_address("__start_notes");
    let refused = kernel_address_watch_refusal(notes).is_some();
    let filters = TempFile::new("refusal", "__start_notes:rw-\n");
    let (code, stdout, stderr) = run_hwbp(&["ksym", "--file", filters.path(), "--duration", "0.2"]);
    if refused {
        // The kernel gives this refusal here: hwbp names what it sees, not a privilege it holds.
        let state = SecurityState::read();
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("EACCES") || stderr.contains("EPERM"),
            "{stderr}"
        );
        if state.permits(RefusedRequest::KernelAddressWatch) {
            for expected in [
                "so the refusal comes from the kernel's security policy",
                "kernel-address watches are unavailable on this kernel",
                "lockdown",
            ] {
                assert!(stderr.contains(expected), "{expected}: {stderr}");
            }
            for never in ["setcap", "Run as root", "run hwbp as root"] {
                assert!(!stderr.contains(never), "{never}: {stderr}");
            }
        }
    } else {
        // The kernel allows it here: the same run traces and ends cleanly.
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("__start_notes+0x0"), "{stdout}");
    }
}
