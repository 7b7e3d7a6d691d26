//! Launching programs stopped at their entry point (`exclusive_`: uses ptrace).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use hwbp_fixtures::{Fixture, FixtureLine, SHLIB, WRITER, WRITER_NOPIE};
use std::os::fd::{AsFd, OwnedFd};

use hwbp_core::Access;
use hwbp_linux::launch::{
    launch, launch_command, launch_command_with, EntryStop, LaunchError, ProcessExit,
};
use hwbp_linux::memory::read_value;
use hwbp_linux::perf::attr::{counting_attr, WatchRequest};
use hwbp_linux::ptrace::peek_debugreg;
use hwbp_linux::sys::perf::{enable, read_count, EventTarget, PerfSys, RealPerfSys};
use nix::unistd::Pid;

const BOTH: [EntryStop; 2] = [EntryStop::SoftwareBreakpoint, EntryStop::DebugRegister];

/// writer_nopie has the same addresses in every run: learn them from one.
/// Returns (&counter, &main_reached).
fn writer_nopie_addresses() -> (u64, u64) {
    let probe = Fixture::spawn(WRITER_NOPIE, &[]).unwrap();
    (probe.addr(), probe.ready().number("main_reached").unwrap())
}

/// One write watch (8 bytes, user and kernel mode) on thread `pid`, enabled.
fn open_write_watch(pid: i32, addr: u64) -> Result<OwnedFd, nix::errno::Errno> {
    let mut attr = counting_attr(&WatchRequest::new(addr, 8, Access::Write));
    let fd = RealPerfSys.perf_event_open(&mut attr, EventTarget { pid, cpu: -1 }, None, 0)?;
    enable(fd.as_fd(), "test watch").unwrap();
    Ok(fd)
}

#[test]
fn exclusive_launch_stops_before_main_and_runs_to_completion() {
    for entry_stop in BOTH {
        stops_before_main_and_runs_to_completion(entry_stop);
    }
}

fn stops_before_main_and_runs_to_completion(entry_stop: EntryStop) {
    let (counter, main_reached) = writer_nopie_addresses();
    let mut command = Command::new(WRITER_NOPIE);
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut launched = launch_command_with(command, entry_stop).unwrap();
    let pid = launched.pid();
    assert!(launched.is_stopped());

    // Stopped exactly at AT_ENTRY with the initial .data image, before main.
    let regs = nix::sys::ptrace::getregs(Pid::from_raw(pid)).unwrap();
    assert_eq!(regs.rip, launched.entry());
    assert_eq!(read_value(pid, counter, 8).unwrap(), 0x1234);
    assert_eq!(read_value(pid, main_reached, 4).unwrap(), 0);
    // The entry-point breakpoint is gone again.
    assert_eq!(peek_debugreg(pid, 7).unwrap(), 0);
    assert_eq!(peek_debugreg(pid, 0).unwrap(), 0);

    let mut stdin = launched.take_stdin().unwrap();
    let mut stdout = BufReader::new(launched.take_stdout().unwrap());
    launched.resume().unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready = FixtureLine::parse(&line).unwrap();
    assert_eq!(ready.number("pid").unwrap(), pid as u64);
    assert_eq!(ready.number("addr").unwrap(), counter);
    stdin.write_all(b"go 3\n").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "done writes=3 value=4663\n");
    drop(stdin);
    assert_eq!(launched.wait().unwrap(), ProcessExit::Exited(0));
}

#[test]
fn exclusive_launch_waits_for_shared_libraries() {
    for entry_stop in BOTH {
        let mut command = Command::new(SHLIB);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        waits_for_shared_libraries(launch_command_with(command, entry_stop).unwrap());
    }
}

fn waits_for_shared_libraries(mut launched: hwbp_linux::launch::LaunchedProcess) {
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", launched.pid())).unwrap();
    assert!(
        maps.lines().any(|l| l.ends_with("/libhwbpfix.so")),
        "libhwbpfix.so not mapped at the entry point:\n{maps}"
    );
    assert_eq!(peek_debugreg(launched.pid(), 7).unwrap(), 0);
    launched.resume().unwrap();
    assert_eq!(launched.wait().unwrap(), ProcessExit::Exited(0));
}

#[test]
fn exclusive_launch_watch_sees_every_write_and_all_four_slots() {
    let (counter, _) = writer_nopie_addresses();
    let mut command = Command::new(WRITER_NOPIE);
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut launched = launch_command(command).unwrap();
    let pid = launched.pid();
    // The default entry stop leaves all 4 debug-register slots free.
    let watches: Vec<OwnedFd> = (0..4)
        .map(|i| open_write_watch(pid, counter + 8 * i).unwrap())
        .collect();
    let mut stdin = launched.take_stdin().unwrap();
    let mut stdout = BufReader::new(launched.take_stdout().unwrap());
    launched.resume().unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    stdin.write_all(b"go 7\n").unwrap();
    drop(stdin);
    assert_eq!(launched.wait().unwrap(), ProcessExit::Exited(0));
    // Exactly the 7 stores of bump_counter; nothing between exec and main.
    assert_eq!(read_count(watches[0].as_fd(), "counter").unwrap().value, 7);
}

#[test]
fn exclusive_launch_with_debug_register_keeps_one_slot() {
    let launched = launch_command_with(Command::new(WRITER), EntryStop::DebugRegister).unwrap();
    let base = launched.entry() & !7;
    let mut watches = Vec::new();
    for i in 0..3 {
        watches.push(open_write_watch(launched.pid(), base + 8 * i).unwrap());
    }
    // The kernel keeps the ptrace breakpoint's slot until exec or exit.
    assert_eq!(
        open_write_watch(launched.pid(), base + 24).unwrap_err(),
        nix::errno::Errno::ENOSPC
    );
}

#[test]
fn exclusive_launch_pie_stops_at_entry() {
    let launched = launch(&[WRITER]).unwrap();
    let regs = nix::sys::ptrace::getregs(Pid::from_raw(launched.pid())).unwrap();
    assert_eq!(regs.rip, launched.entry());
    // A PIE's entry point is inside the randomized executable mapping.
    assert!(launched.entry() > 0x1000_0000, "{:#x}", launched.entry());
    let pid = launched.pid();
    drop(launched);
    // Dropping a never-resumed launch kills and reaps the child.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn exclusive_launch_not_found_is_a_clean_error() {
    let error = launch(&["hwbp-no-such-program-xyz"]).unwrap_err();
    assert!(matches!(error, LaunchError::Spawn { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "cannot run 'hwbp-no-such-program-xyz': No such file or directory"
    );
    let error = launch(&["/proc/self/status"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot run '/proc/self/status': Permission denied"
    );
}

#[test]
fn exclusive_launch_reports_signal_exit() {
    let mut launched = launch(&["sh", "-c", "kill -TERM $$"]).unwrap();
    launched.resume().unwrap();
    assert_eq!(
        launched.wait().unwrap(),
        ProcessExit::Signaled {
            signal: libc::SIGTERM,
            core_dumped: false
        }
    );
}
