//! `hwbp constraints`: the real binary on scenario strings, exact output lines.
//!
//! The rules are the kernel's (`kernel/events/hw_breakpoint.c`). Not covered here because the
//! scenario language has no enable/disable: "disabled breakpoints keep their slot" (a slot is
//! held from `bp` to `del`, which is the same thing).

use assert_cmd::Command;

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn hwbp(args: &[&str], stdin: &str) -> Run {
    let output = Command::cargo_bin("hwbp")
        .expect("hwbp binary")
        .arg("constraints")
        .args(args)
        .write_stdin(stdin)
        .output()
        .expect("run hwbp");
    Run {
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        code: output.status.code().expect("exit code"),
    }
}

/// Runs a scenario that must succeed and returns its output lines.
fn lines(args: &[&str], scenario: &str) -> Vec<String> {
    let run = hwbp(args, scenario);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stderr, "");
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn cpu_breakpoint_must_fit_next_to_the_busiest_task() {
    let out = lines(
        &[],
        "bp c1 cpu=2\n\
         bp c2 cpu=2\n\
         bp small cpu=2 task=t3\n\
         bp busy1 cpu=2 task=t7\n\
         bp busy2 cpu=all task=t7\n\
         bp x cpu=2\n\
         bp y cpu=3\n\
         del busy2\n\
         bp x cpu=2\n",
    );
    assert_eq!(
        out,
        [
            "c1 ok",
            "c2 ok",
            "small ok",
            "busy1 ok",
            "busy2 ok",
            "x ENOSPC: CPU 2 has no free data slot: CPU breakpoints hold 2 of 4, the busiest task (t7) holds 2, this request needs 1",
            "y ok",
            "busy2 released",
            "x ok",
        ]
    );
}

#[test]
fn task_on_all_cpus_must_fit_on_every_cpu() {
    let out = lines(
        &["--cpus", "3"],
        "bp a cpu=1\nbp b cpu=1\nbp c cpu=1\n\
         bp t1 cpu=all task=me\n\
         bp t2 cpu=all task=me\n\
         bp t3 cpu=0 task=me\n\
         bp t4 cpu=2 task=me\n",
    );
    assert_eq!(
        out,
        [
            "a ok",
            "b ok",
            "c ok",
            "t1 ok",
            "t2 ENOSPC: task me on all CPUs does not fit on CPU 1, which has no free data slot: CPU breakpoints hold 3 of 4, task me already holds 1 there, this request needs 1",
            "t3 ok",
            "t4 ok",
        ]
    );
}

#[test]
fn task_on_one_cpu_sees_only_that_cpu() {
    let out = lines(
        &["--slots", "2", "--cpus", "2"],
        "bp a cpu=0\nbp t1 cpu=0 task=me\nbp t2 cpu=0 task=me type=inst\nbp t3 cpu=1 task=me\n",
    );
    assert_eq!(
        out,
        [
            "a ok",
            "t1 ok",
            "t2 ENOSPC: CPU 0 has no free instruction slot for task me: CPU breakpoints hold 1 of 2, task me already holds 1 there, this request needs 1",
            "t3 ok",
        ]
    );
}

#[test]
fn modify_changes_pools_and_rolls_back_on_separate_pools() {
    let out = lines(
        &["--inst-slots", "1", "--data-slots", "2", "--cpus", "1"],
        "bp i cpu=0 type=inst\n\
         bp d1 cpu=0 type=data\n\
         bp d2 cpu=0 type=data\n\
         modify d1 type=inst\n\
         bp d3 cpu=0 type=data\n\
         modify i type=data\n\
         del d2\n\
         modify i type=data\n\
         bp i2 cpu=0 type=inst\n",
    );
    assert_eq!(
        out,
        [
            "i ok",
            "d1 ok",
            "d2 ok",
            "d1 ENOSPC: CPU 0 has no free instruction slot: CPU breakpoints hold 1 of 1, no task holds any, this request needs 1",
            // The refused modify left d1 in the data pool: still full.
            "d3 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 2 of 2, no task holds any, this request needs 1",
            "i ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 2 of 2, no task holds any, this request needs 1",
            "d2 released",
            "i ok",
            "i2 ok",
        ]
    );
}

#[test]
fn shared_pool_counts_instruction_and_data_together() {
    let out = lines(
        &["--slots", "2", "--cpus", "1"],
        "bp i cpu=0 type=inst\nbp d cpu=0 type=data\nbp e cpu=0 type=data\nmodify i type=data\n",
    );
    assert_eq!(
        out,
        [
            "i ok",
            "d ok",
            "e ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 2 of 2, no task holds any, this request needs 1",
            "i ok",
        ]
    );
}

#[test]
fn weights_take_several_slots() {
    let out = lines(
        &[],
        "bp w3 cpu=0 task=t weight=3\nbp w2 cpu=0 weight=2\nbp w1 cpu=0\nbp w5 cpu=1 weight=5\n",
    );
    assert_eq!(
        out,
        [
            "w3 ok",
            "w2 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 0 of 4, the busiest task (t) holds 3, this request needs 2",
            "w1 ok",
            "w5 ENOSPC: CPU 1 has no free data slot: CPU breakpoints hold 0 of 4, no task holds any, this request needs 5",
        ]
    );
}

#[test]
fn seed_policy_keeps_a_rotating_slot_for_flexible_breakpoints() {
    let scenario = "bp p1 cpu=0\nbp p2 cpu=0\nbp f1 cpu=0 flexible\nbp f2 cpu=0 task=t flexible\n\
                    bp p3 cpu=0\nbp p4 cpu=0\ndel f1\nbp p4 cpu=0 task=u\nbp f3 cpu=0 flexible\n";
    let seed = lines(&["--policy", "seed", "--cpus", "1"], scenario);
    assert_eq!(
        seed,
        [
            "p1 ok",
            "p2 ok",
            "f1 ok",
            "f2 ok",
            "p3 ok",
            "p4 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 3 of 4, no task holds any, flexible breakpoints keep 1 rotating slot free, this request needs 1",
            "f1 released",
            "p4 ok",
            "f3 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 3 of 4, the busiest task (u) holds 1, this flexible request needs 1 rotating slot",
        ]
    );
    // Mainline counts flexible breakpoints as pinned: the slots are gone after four.
    let mainline = lines(&["--cpus", "1"], scenario);
    assert_eq!(
        mainline,
        [
            "p1 ok",
            "p2 ok",
            "f1 ok",
            "f2 ok",
            "p3 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 3 of 4, the busiest task (t) holds 1, this request needs 1",
            "p4 ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 3 of 4, the busiest task (t) holds 1, this request needs 1",
            "f1 released",
            "p4 ok",
            "f3 ok",
        ]
    );
}

#[test]
fn semantic_problems_are_einval_and_the_scenario_goes_on() {
    let out = lines(
        &["--cpus", "2", "--slots", "1"],
        "# comment line\n\
         \n\
         bp a cpu=0\n\
         bp a cpu=1\n\
         bp b cpu=all\n\
         bp b cpu=2\n\
         bp b cpu=1 weight=0\n\
         bp b cpu=0 type=empty\n\
         bp b cpu=0 type=invalid\n\
         bp b cpu=0 type=5\n\
         del zz\n\
         modify zz type=inst\n\
         modify a type=empty\n\
         bp b cpu=1   # b was never registered, so the name is free\n",
    );
    assert_eq!(
        out,
        [
            "a ok",
            "a EINVAL: a breakpoint named a is already registered: del a first or pick another name",
            "b EINVAL: a breakpoint on all CPUs needs a task to follow: name a task, or put a CPU breakpoint on one CPU",
            "b EINVAL: CPU 2 does not exist: there are 2 CPUs, numbered 0 to 1",
            "b EINVAL: weight 0: a breakpoint occupies at least 1 slot",
            "b EINVAL: breakpoint type 0 is not a valid type (HW_BREAKPOINT_EMPTY or _INVALID): use a data type (r, w, rw) or an instruction type (x)",
            "b EINVAL: breakpoint type 7 is not a valid type (HW_BREAKPOINT_EMPTY or _INVALID): use a data type (r, w, rw) or an instruction type (x)",
            // Slots are counted before the type is validated further: X|R on a full CPU is ENOSPC.
            "b ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 1 of 1, no task holds any, this request needs 1",
            "zz EINVAL: no breakpoint named zz is registered (never created, refused, or deleted)",
            "zz EINVAL: no breakpoint named zz is registered (never created, refused, or deleted)",
            "a EINVAL: breakpoint type 0 is not a valid type (HW_BREAKPOINT_EMPTY or _INVALID): use a data type (r, w, rw) or an instruction type (x)",
            "b ok",
        ]
    );
}

#[test]
fn unparsable_line_runs_nothing_and_exits_2_with_its_number() {
    let run = hwbp(
        &[],
        "bp a cpu=0\n# fine\n\nbp b cpu=0\nbp c cpu=zero\nbp d cpu=0\n",
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "", "a bad scenario runs no line");
    assert_eq!(
        run.stderr,
        "hwbp: line 5: bad value 'zero' for cpu= (expected a CPU number or 'all'); expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'\n"
    );

    let run = hwbp(&[], "bp a cpu=0 wieght=2\n");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "hwbp: line 1: unknown key 'wieght'; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'\n"
    );

    let run = hwbp(&[], "del a\ndel\n");
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "hwbp: line 2: missing breakpoint NAME; expected e.g. 'del NAME'\n"
    );
}

#[test]
fn bad_options_and_files_exit_2() {
    let run = hwbp(&["--cpus", "0"], "");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "hwbp: --cpus 0 is out of range: give 1 to 8192\n"
    );

    let run = hwbp(
        &["--slots", "4", "--inst-slots", "2", "--data-slots", "2"],
        "",
    );
    assert_eq!(run.code, 2, "clap refuses --slots with separate pools");

    let run = hwbp(&["--inst-slots", "2"], "");
    assert_eq!(run.code, 2, "--inst-slots needs --data-slots");

    let run = hwbp(&["/nonexistent/scenario.txt"], "");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "hwbp: scenario file /nonexistent/scenario.txt does not exist: check the path, or give - to read stdin\n"
    );
}

#[test]
fn reads_a_file_argument_and_dash_for_stdin() {
    let dir = std::env::temp_dir().join(format!("hwbp-constraints-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.txt");
    std::fs::write(&path, "bp a cpu=0\r\nbp b cpu=all task=t\r\ndel a\r\n").unwrap();
    let from_file = lines(&[path.to_str().unwrap()], "bp ignored cpu=0\n");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_file, ["a ok", "b ok", "a released"]);

    let from_stdin = lines(&["-"], "bp a cpu=0\n");
    assert_eq!(from_stdin, ["a ok"]);
}

/// A scenario shaped like `bench/constraints/gen_scenario.py`'s: 10,000 commands, 64 CPUs,
/// 1,000 tasks (deterministic LCG, so no Python needed here).
fn generated_scenario(commands: usize, cpus: u64, tasks: u64) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut live: Vec<String> = Vec::new();
    let mut out = String::new();
    for i in 0..commands {
        let roll = next(100);
        if roll < 55 || live.is_empty() {
            let name = format!("b{i}");
            let target = match next(10) {
                0..=2 => format!("cpu=all task=t{}", next(tasks)),
                3..=7 => format!("cpu={} task=t{}", next(cpus), next(tasks)),
                _ => format!("cpu={}", next(cpus)),
            };
            let ty = if next(3) == 0 { "inst" } else { "data" };
            let weight = if next(10) == 0 { " weight=2" } else { "" };
            let flexible = if next(10) == 0 { " flexible" } else { "" };
            out += &format!("bp {name} {target} type={ty}{weight}{flexible}\n");
            live.push(name);
        } else if roll < 85 {
            let name = live.swap_remove(next(live.len() as u64) as usize);
            out += &format!("del {name}\n");
        } else {
            let name = &live[next(live.len() as u64) as usize];
            let ty = if next(2) == 0 { "inst" } else { "data" };
            out += &format!("modify {name} type={ty}\n");
        }
    }
    out
}

#[test]
fn large_generated_scenario_prints_one_line_per_command() {
    let scenario = generated_scenario(10_000, 64, 1_000);
    for policy in ["mainline", "seed"] {
        let out = lines(&["--cpus", "64", "--policy", policy], &scenario);
        assert_eq!(out.len(), 10_000, "{policy}");
        let mut enospc = 0;
        for (command, result) in scenario.lines().zip(&out) {
            let name = command.split_whitespace().nth(1).unwrap();
            let rest = result
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .unwrap_or_else(|| panic!("'{result}' does not answer '{command}'"));
            assert!(
                rest == "ok"
                    || rest == "released"
                    || rest.starts_with("ENOSPC: ")
                    || rest.starts_with("EINVAL: "),
                "{result}"
            );
            enospc += usize::from(rest.starts_with("ENOSPC: "));
        }
        assert!(
            enospc > 100,
            "{policy}: the scenario should hit full CPUs ({enospc})"
        );
    }
}
