//! What the CLI test binaries share: running `hwbp` (or a peer tool) with its output read as it
//! comes, waiting for its "armed" line, ending it, and reading its JSON lines.
//!
//! Each test binary includes this with `mod support;` and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Asserts that `what`, a fixture or launched target that hwbp watched in perf mode, exited
/// with status 0. If it died of SIGTRAP, the test fails saying so: in perf mode nothing of
/// hwbp's sends the target a SIGTRAP, but these VMs sometimes raise a watchpoint's debug
/// exception with an empty DR6, which the kernel cannot match to a watchpoint and answers
/// with a SIGTRAP (TRAP_BRKPT) that kills the program (bench/sigtrap/RESULTS.md; seen with
/// perf and bpftrace alone). Not for stop mode, where such a SIGTRAP is hwbp's to swallow.
pub fn assert_exited_ok(status: ExitStatus, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    if status.signal() == Some(nix::libc::SIGTRAP) {
        panic!(
            "{what} was killed by SIGTRAP ({status}) while watched in perf mode: the signature \
             of this VM's stray debug exception (a watchpoint #DB with an empty DR6 that the \
             kernel answers with SIGTRAP TRAP_BRKPT; bench/sigtrap/RESULTS.md), not a hwbp \
             result; check dmesg and rerun on a quieter machine"
        );
    }
    assert_eq!(
        status.code(),
        Some(0),
        "{what} did not exit normally: {status}"
    );
}

/// Asserts that a finished command exited 0, showing its stderr if not.
pub fn assert_success(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `hwbp` binary under test.
pub const HWBP: &str = env!("CARGO_BIN_EXE_hwbp");

/// What hwbp prints on stderr once every watchpoint is armed.
pub const ARMED: &str = "hwbp: watching";

/// A running process whose stdout is collected in the background (a large report must not block
/// it on a full pipe) and whose stderr is read line by line; killed and reaped on drop, so a
/// failing test leaves nothing running.
pub struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    /// Stdout line by line, for [`Running::hwbp_streaming`].
    lines: Option<Receiver<String>>,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    /// Starts `program` with stdin closed and the given stdout.
    pub fn spawn(program: &str, args: &[&str], stdout: Stdio) -> Running {
        Running::spawn_with_stdin(program, args, Stdio::null(), stdout)
    }

    /// Starts `program` with the given stdin and stdout.
    pub fn spawn_with_stdin(program: &str, args: &[&str], stdin: Stdio, stdout: Stdio) -> Running {
        Running::spawn_inner(program, args, stdin, stdout, false, false)
    }

    /// As [`Running::spawn`], in a process group of its own (as a shell runs a foreground
    /// job), so [`Running::interrupt_group`] can send what a terminal's Ctrl-C sends.
    pub fn spawn_in_own_group(program: &str, args: &[&str], stdout: Stdio) -> Running {
        Running::spawn_inner(program, args, Stdio::null(), stdout, false, true)
    }

    /// Starts hwbp (stdin closed) with its stdout read line by line ([`Running::next_line`])
    /// and waits until it says its watch is armed.
    pub fn hwbp_streaming(args: &[&str]) -> Running {
        let mut running =
            Running::spawn_inner(HWBP, args, Stdio::null(), Stdio::piped(), true, false);
        running.wait_stderr(ARMED);
        running
    }

    /// The next stdout line of a [`Running::hwbp_streaming`] process, waiting 30 s at most.
    pub fn next_line(&mut self) -> String {
        let lines = self.lines.as_ref().expect("started with hwbp_streaming");
        lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("no stdout line within 30 s ({e}); stderr: {:?}", self.seen))
    }

    fn spawn_inner(
        program: &str,
        args: &[&str],
        stdin: Stdio,
        stdout: Stdio,
        streaming: bool,
        own_group: bool,
    ) -> Running {
        let mut command = Command::new(program);
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let mut child = command
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let mut lines = None;
        let stdout = child.stdout.take().map(|mut out| {
            if streaming {
                let (tx, rx) = channel();
                lines = Some(rx);
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    String::new()
                })
            } else {
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = out.read_to_string(&mut text);
                    text
                })
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child: Some(child),
            stdout,
            lines,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Starts hwbp (stdin closed) and waits until it says its watch is armed.
    pub fn hwbp(args: &[&str]) -> Running {
        let mut running = Running::spawn(HWBP, args, Stdio::piped());
        running.wait_stderr(ARMED);
        running
    }

    /// As [`Running::hwbp`], with stdin kept open: a command hwbp launches inherits it and
    /// must not see end of input.
    pub fn hwbp_keeping_stdin(args: &[&str]) -> Running {
        Running::hwbp_keeping_stdin_with(args, Stdio::piped())
    }

    /// As [`Running::hwbp_keeping_stdin`], with the given stdout.
    pub fn hwbp_keeping_stdin_with(args: &[&str], stdout: Stdio) -> Running {
        let mut running = Running::spawn_with_stdin(HWBP, args, Stdio::piped(), stdout);
        running.wait_stderr(ARMED);
        running
    }

    /// Waits (30 s at most) until a stderr line starts with `prefix`; returns when it came.
    pub fn wait_stderr(&mut self, prefix: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(5)) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    self.seen.push(line);
                    if found {
                        return Instant::now();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no stderr line starting {prefix:?}; saw {:?}", self.seen);
    }

    /// The process's stdin, when it was started with one piped (a command hwbp launches reads
    /// it).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
    }

    /// The stderr lines read so far.
    pub fn stderr_seen(&self) -> &[String] {
        &self.seen
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Sends SIGINT to its whole process group, as a terminal's Ctrl-C does (started with
    /// [`Running::spawn_in_own_group`]).
    pub fn interrupt_group(&self) {
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
    }

    /// True once the process has exited.
    pub fn has_ended(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_some()
    }

    /// Sends SIGINT and waits for the end.
    pub fn interrupt(self) -> (ExitStatus, String, Vec<String>) {
        self.signal(nix::sys::signal::Signal::SIGINT);
        self.finish()
    }

    /// Waits (two minutes at most) for the end; returns the status, stdout and stderr lines.
    pub fn finish(self) -> (ExitStatus, String, Vec<String>) {
        self.finish_within(Duration::from_secs(120))
    }

    /// Waits at most `limit` for the end; returns the status, stdout and stderr lines.
    pub fn finish_within(mut self, limit: Duration) -> (ExitStatus, String, Vec<String>) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "process did not end within {limit:?}; stderr: {:?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = self
            .stdout
            .take()
            .map(|reader| reader.join().unwrap())
            .unwrap_or_default();
        if let Some(lines) = &self.lines {
            for line in lines.try_iter() {
                stdout.push_str(&line);
                stdout.push('\n');
            }
        }
        let mut stderr = std::mem::take(&mut self.seen);
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            stderr.push(line);
        }
        (status, stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// All four debug registers of `pid`'s main thread are free: a four-watch stat opens and ends.
pub fn assert_registers_free(pid: i32) {
    let out = Command::new(HWBP)
        .args(["stat", "0x1000", "0x1008", "0x1010", "0x1018"])
        .args(["-p", &pid.to_string(), "--duration", "0.05"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "registers of {pid} not free: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many perf events process `pid` holds open (its `anon_inode:[perf_event]` fds).
pub fn perf_event_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.to_string_lossy() == "anon_inode:[perf_event]")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Waits (10 s at most) until a peer tool (perf) has opened `events` perf events: it prints no
/// "armed" line of its own.
pub fn wait_for_perf_events(pid: i32, events: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while perf_event_fds(pid) < events {
        assert!(
            Instant::now() < deadline,
            "process {pid} never opened {events} perf events"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs hwbp to its end: exit code, stdout, stderr.
pub fn run_hwbp(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(HWBP).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every JSON line of `stdout` (other lines, e.g. a launched program's own output, skipped).
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The JSON objects of one `"type"`.
pub fn of_type<'a>(values: &'a [Value], kind: &str) -> Vec<&'a Value> {
    values.iter().filter(|v| v["type"] == kind).collect()
}

/// The JSON objects of one `"type"` in `stdout`, owned.
pub fn json_of_type(stdout: &str, kind: &str) -> Vec<Value> {
    json_lines(stdout)
        .into_iter()
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The hit objects among `values`.
pub fn hits(values: &[Value]) -> Vec<&Value> {
    of_type(values, "hit")
}

/// A hit's raw `(value_before, value_after)`.
pub fn old_new(hit: &Value) -> (u64, u64) {
    (
        hit["value_before"].as_u64().unwrap(),
        hit["value_after"].as_u64().unwrap(),
    )
}

/// The one summary object of a `watch --json` run.
pub fn summary(values: &[Value]) -> &Value {
    let summaries = of_type(values, "summary");
    assert_eq!(summaries.len(), 1, "one summary expected in {values:?}");
    summaries[0]
}

/// A fixture watched by `hwbp watch SPEC -p PID --json EXTRA...`, its JSON lines read as
/// they come, while the test drives the fixture with its commands.
pub struct WatchedFixture {
    /// The fixture, for its commands.
    pub target: hwbp_fixtures::Fixture,
    hwbp: Running,
}

impl WatchedFixture {
    /// Spawns `program` and starts watching `spec` in it with `extra` options.
    pub fn start(program: &str, spec: &str, extra: &[&str]) -> WatchedFixture {
        let target = hwbp_fixtures::Fixture::spawn(program, &[]).unwrap();
        let pid = target.pid().to_string();
        let mut args = vec!["watch", spec, "-p", &pid, "--json"];
        args.extend_from_slice(extra);
        let hwbp = Running::hwbp_streaming(&args);
        WatchedFixture { target, hwbp }
    }

    /// The next `n` JSON lines hwbp prints (the hits, while it prints nothing else).
    pub fn lines(&mut self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|_| serde_json::from_str(&self.hwbp.next_line()).unwrap())
            .collect()
    }

    /// Ends the fixture (at the end of its input), then hwbp, which must exit 0: how the
    /// fixture exited (some compute their status from the values they keep) and hwbp's stdout.
    pub fn end(self) -> (ExitStatus, String) {
        let fixture = self.target.finish().unwrap();
        let (status, stdout, stderr) = self.hwbp.finish();
        assert!(status.success(), "{stderr:?}");
        (fixture, stdout)
    }
}
