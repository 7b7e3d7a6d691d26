//! Wide watches (`-a`) on the real kernel: all-or-nothing across CPUs (a CPU whose four
//! registers another process holds refuses the whole watch, and no hit is printed), CPU
//! hotplug during a watch (CPU 1 taken offline and back; its hits after it returns are
//! counted), a kernel-mode write into a watched user buffer, and agreement with
//! `perf stat -a` in the same run.
//!
//! Every test opens CPU-wide breakpoints (or takes CPU 1 offline), so every name starts with
//! `exclusive_`. Tests needing CPU 1 are skipped (`hwbp_fixtures::skip`, counted by the test
//! command) on a machine with one CPU, and the hotplug test where CPU 1 cannot go offline.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hwbp_fixtures::skip::{skip_unless_cpu1_hotplug, skip_unless_second_cpu};
use hwbp_fixtures::{Fixture, KREAD, WRITER};
use hwbp_linux::hotplug::{is_cpu_online, OfflineCpu};

mod support;
use support::{json_of_type, wait_for_perf_events, Running, HWBP};

fn summary_hits(stdout: &str) -> u64 {
    let summaries = json_of_type(stdout, "summary");
    assert_eq!(summaries.len(), 1, "{stdout}");
    summaries[0]["watchpoints"][0]["hits"].as_u64().unwrap()
}

/// `cargo test` runs a binary's tests in parallel threads (nextest serializes `exclusive_`
/// tests itself): these share CPU 1's registers and its online state, so they take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn has_cpu1() -> bool {
    is_cpu_online(1).unwrap_or(false)
}

fn pin(pid: i32, cpu: u32) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "taskset {pid} to CPU {cpu}");
}

#[test]
fn exclusive_watch_all_cpus_fails_naming_the_full_cpu_and_prints_no_hit() {
    let _serial = serial();
    if skip_unless_second_cpu() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let spec = format!("{:#x}/8:w", writer.addr());
    // Another process takes CPU 1's four debug registers with CPU-wide breakpoints.
    let perf = Running::spawn(
        "perf",
        &[
            "stat",
            "-C",
            "1",
            "-e",
            "mem:0x1000/8:w,mem:0x1008/8:w,mem:0x1010/8:w,mem:0x1018/8:w",
            "--",
            "sleep",
            "60",
        ],
        Stdio::piped(),
    );
    wait_for_perf_events(perf.pid(), 4);
    let refused = Command::new(HWBP)
        .args(["watch", "-a", &spec, "--json", "--duration", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(refused.stdout.is_empty(), "printed {:?}", refused.stdout);
    assert!(stderr.contains("every task on CPU 1"), "{stderr}");
    assert!(
        stderr.contains("CPU 1 has no free debug register"),
        "{stderr}"
    );
    assert!(!stderr.contains("hwbp: watching"), "{stderr}");
    drop(perf);

    // Released: the same watch now succeeds and counts the writer exactly.
    let hwbp = {
        let mut h = Running::spawn(HWBP, &["watch", "-a", &spec, "--json"], Stdio::piped());
        h.wait_stderr("hwbp: watching");
        h
    };
    writer.command("go 250").unwrap();
    let (status, stdout, stderr) = hwbp.interrupt();
    assert!(status.success(), "{stderr:?}");
    assert_eq!(json_of_type(&stdout, "hit").len(), 250);
    assert_eq!(summary_hits(&stdout), 250);
}

#[test]
fn exclusive_cpu_taken_offline_and_back_is_rearmed_and_its_hits_counted() {
    let _serial = serial();
    if skip_unless_cpu1_hotplug() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    pin(writer.pid(), 1);
    let spec = format!("{:#x}/8:w", writer.addr());
    let mut hwbp = Running::spawn(HWBP, &["watch", "-a", &spec, "--json"], Stdio::piped());
    hwbp.wait_stderr("hwbp: watching");
    writer.command("go 10").unwrap();

    let offline = OfflineCpu::take(1).unwrap();
    hwbp.wait_stderr("hwbp: CPU 1 went offline");
    // The kernel moved the writer to CPU 0.
    writer.command("go 20").unwrap();
    offline.bring_back().unwrap();
    let back = Instant::now();
    let armed = hwbp.wait_stderr("hwbp: CPU 1 came online; watching it too");
    let rearm = armed - back;
    eprintln!("CPU 1 re-armed {rearm:?} after it came back online");
    assert!(rearm < Duration::from_millis(100), "{rearm:?}");
    pin(writer.pid(), 1);
    writer.command("go 30").unwrap();

    let (status, stdout, stderr) = hwbp.interrupt();
    assert!(status.success(), "{stderr:?}");
    let hits = json_of_type(&stdout, "hit");
    let on = |cpu: u64| hits.iter().filter(|h| h["cpu"] == cpu).count();
    assert_eq!((on(0), on(1)), (20, 40), "{stdout}");
    assert_eq!(summary_hits(&stdout), 60);
}

#[test]
fn exclusive_a_wide_watch_counts_what_perf_stat_a_counts_in_the_same_run() {
    let _serial = serial();
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let addr = writer.addr();
    let out = std::env::temp_dir().join(format!("hwbp-wide-perf-{}.csv", std::process::id()));
    let perf = Running::spawn(
        "perf",
        &[
            "stat",
            "-a",
            "-x,",
            "-o",
            out.to_str().unwrap(),
            "-e",
            &format!("mem:{addr:#x}/8:w"),
        ],
        Stdio::piped(),
    );
    wait_for_perf_events(perf.pid(), 2);
    let mut hwbp = Running::spawn(
        HWBP,
        &["watch", "-a", &format!("{addr:#x}/8:w"), "--json"],
        Stdio::piped(),
    );
    hwbp.wait_stderr("hwbp: watching");
    writer.command("go 400").unwrap();
    let (status, stdout, stderr) = hwbp.interrupt();
    assert!(status.success(), "{stderr:?}");
    let (_, _, _) = perf.interrupt();
    let csv = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let perf_count: u64 = csv
        .lines()
        .find(|l| l.contains("mem:"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in perf output {csv:?}"));
    assert_eq!(perf_count, 400, "{csv}");
    assert_eq!(summary_hits(&stdout), perf_count);
}

#[test]
fn exclusive_a_kernel_write_into_a_watched_user_buffer_names_the_kernel_function_and_syscall() {
    let _serial = serial();
    let mut kread = Fixture::spawn(KREAD, &[]).unwrap();
    let spec = format!("{:#x}/8:w", kread.addr());
    let mut hwbp = Running::spawn(
        HWBP,
        &["watch", "-a", &spec, "--json", "-g"],
        Stdio::piped(),
    );
    hwbp.wait_stderr("hwbp: watching");
    kread.command("go 3").unwrap();
    let (status, stdout, stderr) = hwbp.interrupt();
    assert!(status.success(), "{stderr:?}");
    let hits = json_of_type(&stdout, "hit");
    assert!(
        hits.len() >= 3,
        "each of 3 read(2)s writes the buffer: {stdout}"
    );
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    for hit in &hits {
        assert_eq!(hit["kernel"], true, "{hit}");
        assert_eq!(hit["pid"], kread.pid(), "{hit}");
        let function = hit["function"].as_str().expect("a kernel function");
        assert!(
            kallsyms
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(function)),
            "{function} is not in /proc/kallsyms"
        );
        let frames: Vec<&str> = hit["callchain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let first_user = frames
            .iter()
            .position(|f| !f.ends_with("[kernel]"))
            .expect("a user frame");
        assert!(first_user > 0, "{frames:?}");
        assert!(
            frames[..first_user].iter().any(|f| f.contains("vfs_read")),
            "{frames:?}"
        );
        assert!(frames[first_user].contains("read"), "{frames:?}");
    }
    assert_eq!(summary_hits(&stdout), hits.len() as u64);
}

/// The rows of `hwbp slots` whose first column is `name`: (model, kernel, held elsewhere).
fn slots_row(stdout: &str, name: &str) -> (u32, u32, u32) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {stdout}"));
    let n: Vec<u32> = line
        .split_whitespace()
        .rev()
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    (n[2], n[1], n[0])
}

#[test]
fn exclusive_slots_shows_registers_held_by_other_tools_as_held_elsewhere() {
    let _serial = serial();
    if skip_unless_second_cpu() {
        return;
    }
    assert!(
        has_cpu1(),
        "needs CPU 1 online (the test uses CPU 1 by number): bring it online with \
         `echo 1 > /sys/devices/system/cpu/cpu1/online`, or run on a machine with 2 CPUs"
    );
    let slots = || {
        let out = Command::new(HWBP).args(["slots"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let idle = slots();
    assert_eq!(slots_row(&idle, "cpu0"), (4, 4, 0), "{idle}");
    assert_eq!(slots_row(&idle, "cpu1"), (4, 4, 0), "{idle}");

    // perf holds two of CPU 1's registers.
    let perf = Running::spawn(
        "perf",
        &[
            "stat",
            "-C",
            "1",
            "-e",
            "mem:0x1000/8:w,mem:0x1008/8:w",
            "--",
            "sleep",
            "60",
        ],
        Stdio::piped(),
    );
    wait_for_perf_events(perf.pid(), 2);
    let busy = slots();
    assert_eq!(slots_row(&busy, "cpu0"), (4, 4, 0), "{busy}");
    assert_eq!(slots_row(&busy, "cpu1"), (4, 2, 2), "{busy}");
    assert!(
        busy.contains(&format!("pid {:<8} perf", perf.pid())),
        "{busy}"
    );
    drop(perf);

    // An hwbp watch of one thread: that thread has 3 left, and a CPU-wide breakpoint must
    // fit next to it on every CPU.
    let writer = Fixture::spawn(WRITER, &[]).unwrap();
    let mut hwbp = Running::spawn(
        HWBP,
        &[
            "watch",
            "-p",
            &writer.pid().to_string(),
            &format!("{:#x}/8:w", writer.addr()),
        ],
        Stdio::piped(),
    );
    hwbp.wait_stderr("hwbp: watching");
    let out = Command::new(HWBP)
        .args(["slots", "-p", &writer.pid().to_string()])
        .output()
        .unwrap();
    let watched = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        slots_row(&watched, &writer.pid().to_string()),
        (4, 3, 1),
        "{watched}"
    );
    assert_eq!(slots_row(&watched, "cpu0"), (4, 3, 1), "{watched}");
    assert!(
        watched.contains(&format!("pid {:<8} hwbp", hwbp.pid())),
        "{watched}"
    );
    assert!(watched.contains("(hwbp)"), "{watched}");
}
