//! The bad-input matrix: malformed or impossible requests across watch specs, targets,
//! options and scenario files, each run against the real `hwbp` binary.
//!
//! Every case must exit with code 2, print nothing on stdout, and print exactly one stderr
//! line `hwbp: ...` that names the problem and a fix (both checked by substring). The target
//! fixture must be untouched: alive, its counter unchanged, every debug register of its thread
//! free afterwards; a command hwbp was asked to launch must not be left running.
//!
//! Kernel symbol files are covered through `hwbp ksym --system-map`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hwbp_fixtures::{Fixture, CHAIN, TYPED, WRITER};

mod support;
use support::assert_success;

const HWBP: &str = env!("CARGO_BIN_EXE_hwbp");

/// The writer's `counter` starts at 0x1234.
const INITIAL_COUNTER: u64 = 0x1234;

/// One bad request: the arguments (`{pid}`, `{cmd}`, `{noexec}` and `{badmap}` are
/// substituted), optional stdin, the words naming the problem and the words of the fix.
struct Case {
    args: &'static [&'static str],
    stdin: &'static [u8],
    problem: &'static str,
    fix: &'static str,
}

const fn case(args: &'static [&'static str], problem: &'static str, fix: &'static str) -> Case {
    Case {
        args,
        stdin: b"",
        problem,
        fix,
    }
}

const fn scenario(stdin: &'static [u8], problem: &'static str, fix: &'static str) -> Case {
    Case {
        args: &["constraints"],
        stdin,
        problem,
        fix,
    }
}

const CASES: &[Case] = &[
    // Watch-spec syntax.
    case(
        &["watch", "counter:q", "-p", "{pid}"],
        "unknown access letter 'q'",
        "use r, w, rw or x",
    ),
    case(
        &["watch", "counter:ww", "-p", "{pid}"],
        "'w' given twice",
        "use r, w, rw or x",
    ),
    case(
        &["watch", "counter/abc", "-p", "{pid}"],
        "length 'abc' is not a number",
        "write LEN as 1, 2, 4 or 8",
    ),
    case(
        &["watch", "0xzz", "-p", "{pid}"],
        "address '0xzz' is not a number",
        "0x-hex",
    ),
    case(
        &["watch", "counter+0xffffffffffffffffff", "-p", "{pid}"],
        "does not fit in 64 bits",
        "use a smaller value",
    ),
    case(
        &["watch", "counter/0", "-p", "{pid}"],
        "length 0 watches nothing",
        "use 1, 2, 4 or 8",
    ),
    case(
        &["watch", "", "-p", "{pid}"],
        "nothing to watch",
        "e.g. counter",
    ),
    case(
        &["watch", "counter@", "-p", "{pid}"],
        "'@' is not allowed",
        "use letters, digits",
    ),
    case(
        &["watch", "counter:rwx", "-p", "{pid}"],
        "x cannot be combined with r or w",
        "use x alone",
    ),
    case(
        &["watch", "counter:r", "-p", "{pid}"],
        "no read-only watchpoints",
        "use rw",
    ),
    case(
        &["watch", "countr", "-p", "{pid}"],
        "no symbol 'countr'",
        "did you mean: counter",
    ),
    case(
        &["watch", "counter/16:x", "-p", "{pid}"],
        "execute breakpoint must have length 8",
        "use length 8",
    ),
    case(
        &["watch", "0xfffffffffffffffc/8", "-p", "{pid}"],
        "past the end of the address space",
        "use a smaller length",
    ),
    case(
        &["watch", "counter/100000", "-p", "{pid}"],
        "need 12500 debug-register pieces",
        "watch a part of it with /LEN",
    ),
    case(
        &[
            "watch", "0x1000", "0x1008", "0x1010", "0x1018", "0x1020", "--stop", "-p", "{pid}",
        ],
        "need 1 more debug register but only 0 of 4 are free",
        "remove another watch first",
    ),
    case(
        &["watch", "counter", "--rotate-ms", "0", "-p", "{pid}"],
        "--rotate-ms 0",
        "e.g. --rotate-ms 10",
    ),
    case(
        &["watch", "counter", "--flexible", "--stop", "-p", "{pid}"],
        "--flexible rotates perf-event watches",
        "drop one of them",
    ),
    case(
        &["watch", "mem:zz", "-p", "{pid}"],
        "numeric address",
        "write mem:0xADDR",
    ),
    case(
        &["watch", "mem:0x1000:q", "-p", "{pid}"],
        "modifier 'q' is not supported",
        "use u (user only)",
    ),
    case(
        &["watch", "watchpoint:0x1000:3:w", "-p", "{pid}"],
        "length 3 is not supported",
        "use 1, 2, 4 or 8",
    ),
    case(
        &["watch", "watchpoint:zz:8:w", "-p", "{pid}"],
        "address 'zz' is not a number",
        "0x-hex",
    ),
    case(
        &["watch", "watchpoint:0x1000:8:z", "-p", "{pid}"],
        "unknown access letter 'z'",
        "use r, w, rw or x",
    ),
    // Targets.
    case(&["watch", "counter"], "no target", "give -p PID"),
    case(
        &["watch", "counter", "-p", "{pid}", "-t", "{pid}"],
        "'--pid <PID>' cannot be used with '--tid <TID>'",
        "usage: hwbp watch",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--", "{cmd}"],
        "give only one target",
        "-p PID, -t TID, -a, -C LIST, or -- CMD",
    ),
    case(
        &["watch", "counter", "-p", "abc"],
        "invalid value 'abc' for '--pid <PID>'",
        "see hwbp --help",
    ),
    case(&["watch", "counter", "-p", "0"], "id 0", "ids are positive"),
    case(
        &["watch", "counter", "-p", "-5"],
        "id -5",
        "ids are positive",
    ),
    case(
        &["watch", "counter", "-p", "99999999999"],
        "'99999999999' for '--pid <PID>'",
        "see hwbp --help",
    ),
    case(
        &["watch", "counter", "-p", "2147483646"],
        "no such process 2147483646",
        "check the id with ps",
    ),
    case(
        &["watch", "counter", "-t", "2147483646"],
        "no such process 2147483646",
        "check the id with ps",
    ),
    case(
        &["watch", "counter", "-C", "1-0"],
        "range 1-0 runs backwards",
        "expected comma-separated CPU numbers",
    ),
    case(
        &["watch", "counter", "-C", "9999"],
        "CPU 9999 is not online",
        "online CPUs: ",
    ),
    case(
        &["watch", "counter", "-C", "a"],
        "\"a\" is not a CPU number",
        "expected comma-separated CPU numbers",
    ),
    case(
        &[
            "watch",
            "counter",
            "--",
            "/nonexistent/hwbp-no-such-program",
        ],
        "No such file or directory",
        "check the program's path",
    ),
    case(
        &["watch", "counter", "--", "{noexec}"],
        "Permission denied",
        "that it is executable",
    ),
    case(
        &["watch", "countr", "--", "{cmd}"],
        "no symbol 'countr'",
        "did you mean: counter",
    ),
    case(
        &["watch", "counter:r", "--", "{cmd}"],
        "no read-only watchpoints",
        "use rw",
    ),
    // Options.
    case(
        &["watch", "counter", "-p", "{pid}", "--duration", "0"],
        "--duration 0 is not a positive number",
        "use e.g. --duration 5",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--duration", "-1"],
        "--duration -1 is not a positive number",
        "use e.g. --duration 5",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--duration", "nan"],
        "--duration NaN is not a positive number",
        "use e.g. --duration 5",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--duration", "soon"],
        "invalid value 'soon' for '--duration <SECS>'",
        "see hwbp --help",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--ring-pages", "0"],
        "--ring-pages 0 is not a power of two",
        "use e.g. 64",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--ring-pages", "3"],
        "--ring-pages 3 is not a power of two",
        "use e.g. 64",
    ),
    case(
        &["stat", "counter", "-p", "{pid}", "-I", "0"],
        "-I 0",
        "at least 1 millisecond",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--max-hits", "0"],
        "invalid value '0' for '--max-hits <N>'",
        "1..",
    ),
    case(
        &["watch", "counter/1", "-p", "{pid}", "--if", ">300"],
        "does not fit piece 0 (1 bytes",
        "use a value the watched piece can hold",
    ),
    case(
        &["watch", "counter", "-p", "{pid}", "--bogus"],
        "unexpected argument '--bogus'",
        "usage: hwbp watch",
    ),
    case(
        &["watch"],
        "required arguments were not provided: <SPEC>",
        "usage: hwbp watch <SPEC>",
    ),
    case(
        &["frobnicate"],
        "unrecognized subcommand 'frobnicate'",
        "usage: hwbp <COMMAND>",
    ),
    case(&[], "no subcommand given", "use one of watch, record, stat"),
    // Kernel symbol files and filters for `hwbp ksym`.
    case(
        &["ksym", "--system-map", "{badmap}", "jiffies:rw-"],
        "malformed line 2",
        "expected 'ADDRESS TYPE NAME' lines",
    ),
    case(
        &["ksym", "jiffies"],
        "has no ':OP'",
        "write it as SYMBOL:rw-",
    ),
    // Scenario files for `hwbp constraints`.
    case(
        &["constraints", "/nonexistent/hwbp-scenario.txt"],
        "does not exist",
        "check the path",
    ),
    case(
        &["constraints", "--cpus", "0"],
        "--cpus 0 is out of range",
        "give 1 to 8192",
    ),
    case(
        &["constraints", "--policy", "bogus"],
        "invalid value 'bogus' for '--policy <POLICY>'",
        "[possible values: mainline, seed]",
    ),
    scenario(
        b"bp a cpu=0\nbp b cpu=zero\n",
        "line 2: bad value 'zero' for cpu=",
        "expected e.g. 'bp NAME cpu=0",
    ),
    scenario(
        b"bp a cpu=0 wieght=2\n",
        "line 1: unknown key 'wieght'",
        "expected e.g. 'bp NAME",
    ),
    scenario(
        b"bp a cpu=0\nfrob a\n",
        "line 2: unknown command 'frob'",
        "commands are bp, del, modify",
    ),
    scenario(
        b"bp\n",
        "line 1: missing breakpoint NAME",
        "expected e.g. 'bp NAME",
    ),
    scenario(
        b"bp a cpu=0\nmodify a\n",
        "line 2: missing type=",
        "expected e.g. 'modify NAME type=inst'",
    ),
    scenario(
        b"bp a cpu=0 type=foo\n",
        "bad value 'foo' for type=",
        "expected data, inst",
    ),
    scenario(
        b"bp a cpu=0\n\xff\xfe\n",
        "line 2: not valid UTF-8",
        "expected e.g. 'bp NAME cpu=0",
    ),
];

/// A private copy of the writer fixture, so that "no copy of it is left running" is a check
/// no parallel test can disturb.
struct LaunchCopy {
    dir: PathBuf,
    program: PathBuf,
}

impl LaunchCopy {
    fn new() -> LaunchCopy {
        let dir = std::env::temp_dir().join(format!("hwbp-bad-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("writer-copy");
        std::fs::copy(WRITER, &program).unwrap();
        // A program file without execute permission.
        std::fs::write(dir.join("not-executable"), b"\x7fELF").unwrap();
        // A System.map with a line that is not `ADDRESS TYPE NAME`.
        std::fs::write(dir.join("bad.map"), b"ffffffff81000000 T _text\ngarbage\n").unwrap();
        LaunchCopy { dir, program }
    }

    /// Processes running the copy.
    fn running(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_link(entry.path().join("exe")).is_ok_and(|exe| exe == self.program) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for LaunchCopy {
    fn drop(&mut self) {
        for pid in self.running() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs every case against process `pid` (and the launch copy), calling `untouched` after
/// each to check the target; returns what failed.
fn check_cases(
    cases: &[Case],
    pid: &str,
    copy: &LaunchCopy,
    untouched: &mut dyn FnMut(&str),
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let (code, stdout, stderr) = run_case(case, pid, &copy.program);
        let what = format!("{:?}", case.args);
        if code != Some(2) {
            failures.push(format!("{what}: exit {code:?}, stderr {stderr:?}"));
        }
        if !stdout.is_empty() {
            failures.push(format!("{what}: printed {stdout:?} on stdout"));
        }
        let lines: Vec<&str> = stderr.lines().collect();
        if lines.len() != 1 || !lines[0].starts_with("hwbp: ") {
            failures.push(format!("{what}: want one 'hwbp: ' line, got {stderr:?}"));
        }
        if stderr.contains("panicked") {
            failures.push(format!("{what}: panicked: {stderr:?}"));
        }
        for needle in [case.problem, case.fix] {
            if !stderr.contains(needle) {
                failures.push(format!("{what}: {stderr:?} lacks {needle:?}"));
            }
        }
        untouched(&what);
        let left = copy.running();
        if !left.is_empty() {
            failures.push(format!(
                "{what}: left the launched command running: {left:?}"
            ));
        }
    }
    failures
}

/// Watch expressions the program's DWARF refutes, on the `typed` fixture (`{pid}`) and the
/// `chain` fixture launched (`{chain}`).
const EXPRESSION_CASES: &[Case] = &[
    case(
        &["watch", "cfg.nope", "-p", "{pid}"],
        "cfg has no member 'nope'",
        "config_t has id, level, tag, enabled, range, limits, name, ratio, scale, mode, perm",
    ),
    case(
        &["watch", "counter[1]", "-p", "{pid}"],
        "cannot index counter: it is int",
        "not an array or a pointer",
    ),
    case(
        &["stat", "*counter", "-p", "{pid}"],
        "cannot dereference counter: it is int, not a pointer",
        "*(T *)counter",
    ),
    case(
        &["watch", "parse::tmp", "--stop", "-p", "{pid}"],
        "'tmp' lives in a register in parse",
        "watch it with -l at an address, or build with -O0",
    ),
    case(
        &["watch", "cfg.limits[3]", "-p", "{pid}"],
        "index 3 is out of range for cfg.limits",
        "has elements 0..=2",
    ),
    case(
        &["watch", "-l", "null_conn->state", "-p", "{pid}"],
        "null_conn is a NULL pointer",
        "watch null_conn itself",
    ),
    case(
        &["slots", "-l", "null_conn->state", "-p", "{pid}"],
        "null_conn is a NULL pointer",
        "watch null_conn itself",
    ),
    case(
        &["watch", "cfg..id", "-p", "{pid}"],
        "cannot parse watch expression 'cfg..id' at column 5",
        "expected a member name after '.'",
    ),
    case(
        &["watch", "big", "--", "{chain}"],
        "16384 bytes at 0x",
        "watch a part of it with /LEN (e.g. big/64)",
    ),
    case(
        &["watch", "*&big", "--", "{chain}"],
        "16384 bytes at 0x",
        "watch a part of it a member or an element (e.g. *&big[0]",
    ),
    case(
        &["watch", "hp->o->val", "ch", "ok", "--", "{chain}"],
        "its value chain needs all 3 pieces (value and pointers) on registers of their own",
        "use -l/--location to watch the current address only",
    ),
    case(
        &["watch", "hp->o->val", "ch", "ok", "--stop", "--", "{chain}"],
        "watch 'ok': 1 bytes at 0x",
        "watch 'hp->o->val' takes 3 debug registers: 1 for the value, 2 for the pointers it \
         reads (hp, hp->o); -l/--location watches the value alone",
    ),
    case(
        &["watch", "big[0]", "-a"],
        "an expression is evaluated in one process's memory",
        "give -p PID, -t TID or a command after --",
    ),
];

#[test]
fn every_bad_expression_exits_2_with_one_line_naming_the_problem_and_a_fix() {
    let mut typed = Fixture::spawn(TYPED, &[]).unwrap();
    let pid = typed.pid().to_string();
    let copy = LaunchCopy::new();
    let failures = check_cases(EXPRESSION_CASES, &pid, &copy, &mut |what| {
        // Alive and unchanged: cur->state still 1.
        let done = typed.command("state 1").unwrap();
        assert_eq!(done.number("state").unwrap(), 1, "after {what}");
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(typed.finish().unwrap().code(), Some(0));
}

fn run_case(case: &Case, pid: &str, cmd: &Path) -> (Option<i32>, String, String) {
    use std::io::Write;
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| {
            a.replace("{pid}", pid)
                .replace("{cmd}", cmd.to_str().unwrap())
                .replace(
                    "{noexec}",
                    cmd.with_file_name("not-executable").to_str().unwrap(),
                )
                .replace("{badmap}", cmd.with_file_name("bad.map").to_str().unwrap())
                .replace("{chain}", CHAIN)
        })
        .collect();
    let mut child = Command::new(HWBP)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(case.stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_bad_request_exits_2_with_one_line_naming_the_problem_and_a_fix() {
    assert!(CASES.len() >= 40, "the matrix has {} cases", CASES.len());
    let mut writer = Fixture::spawn(WRITER, &[]).unwrap();
    let pid = writer.pid().to_string();
    let copy = LaunchCopy::new();
    let failures = check_cases(CASES, &pid, &copy, &mut |what| {
        // The target is untouched: alive, counter unchanged.
        let done = writer.command("go 0").unwrap();
        assert_eq!(
            done.number("value").unwrap(),
            INITIAL_COUNTER,
            "after {what}"
        );
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // No breakpoint was left on the target: all four debug registers of its thread are free,
    // and a real watch counts its next writes exactly.
    let out = Command::new(HWBP)
        .args(["stat", "0x1000", "0x1008", "0x1010", "0x1018", "-p", &pid])
        .args(["--duration", "0.1"])
        .output()
        .unwrap();
    assert_success(&out);
    let done = writer.command("go 3").unwrap();
    assert_eq!(done.number("value").unwrap(), INITIAL_COUNTER + 3);
    assert_eq!(writer.finish().unwrap().code(), Some(0));
}
