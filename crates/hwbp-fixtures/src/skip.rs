//! Skips for tests whose capability the kernel refuses even to root (lockdown, a security
//! module, a single CPU). A skipped test ends right after [`skip`] and passes in the runner's
//! eyes; `scripts/test-all.sh` reads the skip file ([`SKIP_FILE_VAR`]) and counts each skip
//! apart, with its reason, in its closing line `tests: N passed, M failed, K skipped`.
//!
//! Only a refusal of the kernel is a skip: a missing package is installed by the test command,
//! and a refusal to an unprivileged user in a test about that refusal is an assertion.

use std::io::Write;

/// The environment variable naming the file skips are appended to.
pub const SKIP_FILE_VAR: &str = "HWBP_TEST_SKIPS";

/// The running test's name: libtest names the thread it runs a test in after the test; a test
/// run on the main thread (one test thread) is named by its binary.
fn test_name() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::args()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .unwrap_or_else(|| "?".to_string()),
    }
}

/// Records that the running test is skipped for `reason` (stderr, and one line
/// `binary::test\treason` in the skip file). The caller returns right after.
pub fn skip(reason: &str) {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| {
            stem.rsplit_once('-')
                .map_or(stem.clone(), |(b, _)| b.to_string())
        })
        .unwrap_or_default();
    let line = format!("{binary}::{}\t{}", test_name(), reason.replace('\n', " "));
    eprintln!("SKIP {line}");
    if let Some(path) = std::env::var_os(SKIP_FILE_VAR) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot append to the skip file {path:?}: {e}"));
        writeln!(file, "{line}").expect("the skip file takes the line");
    }
}

/// Skips the running test when the machine has one CPU, and says so; true when skipped.
pub fn skip_unless_second_cpu() -> bool {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    if possible.trim() == "0" {
        skip(
            "the machine has one CPU (/sys/devices/system/cpu/possible is 0); the test needs CPU 1",
        );
        return true;
    }
    false
}

/// Skips the running test when CPU 1 cannot be taken offline on this kernel (no hotplug
/// control file: `CONFIG_HOTPLUG_CPU` off, or the CPU not removable); true when skipped.
pub fn skip_unless_cpu1_hotplug() -> bool {
    if skip_unless_second_cpu() {
        return true;
    }
    if !std::path::Path::new("/sys/devices/system/cpu/cpu1/online").exists() {
        skip(
            "CPU 1 cannot be taken offline on this kernel (no /sys/devices/system/cpu/cpu1/online: \
             CONFIG_HOTPLUG_CPU is off or the CPU is not removable)",
        );
        return true;
    }
    false
}
