//! Tests of the constraint engines: the kernel's KUnit cases (`kernel/events/hw_breakpoint_test.c`)
//! as table tests on both engines, exact explanations, the seed policy, modify, and a property
//! test that the fast engine and the brute-force evaluator always agree.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use proptest::prelude::*;

use super::scenario::{parse_line, Outcome, Scenario, ScenarioCommand};
use super::*;

fn shared(slots: u32, cpus: u32, policy: Policy) -> EngineConfig {
    EngineConfig {
        pools: SlotPools::Shared(slots),
        cpus,
        policy,
    }
}

/// Runs a table script on any engine. Each line is `<scenario command> => <expected>`, where
/// expected is `ok`, `released`, `ENOSPC` or `EINVAL`. Task names map to ids in order.
fn run_table<E: SlotAccounting>(engine: &mut E, script: &str) {
    let mut names: BTreeMap<String, BreakpointId> = BTreeMap::new();
    let mut tasks: BTreeMap<String, TaskId> = BTreeMap::new();
    for (n, line) in script.lines().enumerate() {
        let Some((cmd, expected)) = line.split_once("=>") else {
            continue;
        };
        let command = parse_line(cmd)
            .expect("table lines parse")
            .expect("a command");
        let got = match command {
            ScenarioCommand::Bp {
                name,
                cpu,
                task,
                bp_type,
                weight,
                flexible,
            } => {
                let next = TaskId(tasks.len() as u32);
                let task = task.map(|t| *tasks.entry(t.to_string()).or_insert(next));
                let req = BreakpointRequest {
                    cpu,
                    task,
                    bp_type,
                    weight,
                    flexible,
                };
                match engine.reserve(&req) {
                    Ok(id) => {
                        names.insert(name.to_string(), id);
                        "ok".to_string()
                    }
                    Err(r) => r.errno().name().to_string(),
                }
            }
            ScenarioCommand::Del { name } => {
                let id = names.remove(name).expect("table deletes known names");
                assert!(engine.release(id).is_some());
                "released".to_string()
            }
            ScenarioCommand::Modify { name, bp_type } => {
                match engine.modify(names[name], bp_type) {
                    Ok(()) => "ok".to_string(),
                    Err(r) => r.errno().name().to_string(),
                }
            }
        };
        assert_eq!(got, expected.trim(), "line {}: {}", n + 1, line.trim());
    }
}

fn run_both(config: EngineConfig, script: &str) {
    run_table(&mut ConstraintEngine::new(config), script);
    run_table(&mut BruteForceEngine::new(config), script);
}

/// Four CPU breakpoints fill CPU 0; neither a task on all CPUs nor a fifth CPU breakpoint fits.
#[test]
fn kunit_one_cpu() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a cpu=0 => ok
         bp b cpu=0 => ok
         bp c cpu=0 => ok
         bp d cpu=0 => ok
         bp x cpu=all task=me => ENOSPC
         bp y cpu=0 => ENOSPC
         bp z cpu=1 => ok",
    );
}

/// CPUs are independent: each one fills up on its own.
#[test]
fn kunit_many_cpus() {
    let mut script = String::new();
    for cpu in 0..4 {
        for i in 0..4 {
            script += &format!("bp c{cpu}_{i} cpu={cpu} => ok\n");
        }
        script += &format!("bp over{cpu} cpu={cpu} => ENOSPC\n");
    }
    run_both(shared(4, 4, Policy::Mainline), &script);
}

/// A task holding all slots on all CPUs blocks itself and CPU breakpoints until one goes.
#[test]
fn kunit_one_task_on_all_cpus() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a cpu=all task=me => ok
         bp b cpu=all task=me => ok
         bp c cpu=all task=me => ok
         bp d cpu=all task=me => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 => ENOSPC
         del a => released
         bp x cpu=0 => ok",
    );
}

/// Two tasks are independent of each other, but a CPU breakpoint must fit against the busiest.
#[test]
fn kunit_two_tasks_on_all_cpus() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a0 cpu=all task=me => ok
         bp a1 cpu=all task=me => ok
         bp a2 cpu=all task=me => ok
         bp a3 cpu=all task=me => ok
         bp b0 cpu=all task=other => ok
         bp b1 cpu=all task=other => ok
         bp b2 cpu=all task=other => ok
         bp b3 cpu=all task=other => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=all task=other => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 task=other => ENOSPC
         bp x cpu=0 => ENOSPC
         del a0 => released
         bp x cpu=0 => ENOSPC",
    );
}

/// Same as on all CPUs, with the task's slots bound to one CPU (CPU-dependent histogram).
#[test]
fn kunit_one_task_on_one_cpu() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a cpu=0 task=me => ok
         bp b cpu=0 task=me => ok
         bp c cpu=0 task=me => ok
         bp d cpu=0 task=me => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 => ENOSPC
         del a => released
         bp x cpu=0 => ok",
    );
}

/// One CPU-bound plus three all-CPU breakpoints of one task, then back to CPU-independent.
#[test]
fn kunit_one_task_mixed() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp bound cpu=0 task=me => ok
         bp a1 cpu=all task=me => ok
         bp a2 cpu=all task=me => ok
         bp a3 cpu=all task=me => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 => ENOSPC
         del bound => released
         del a1 => released
         bp c1 cpu=0 => ok
         bp c2 cpu=0 => ok
         bp x cpu=0 => ENOSPC",
    );
}

/// Two tasks full on CPU 0: nothing more there, but CPU 1 is untouched.
#[test]
fn kunit_two_tasks_on_one_cpu() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a0 cpu=0 task=me => ok
         bp a1 cpu=0 task=me => ok
         bp a2 cpu=0 task=me => ok
         bp a3 cpu=0 task=me => ok
         bp b0 cpu=0 task=other => ok
         bp b1 cpu=0 task=other => ok
         bp b2 cpu=0 task=other => ok
         bp b3 cpu=0 task=other => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=all task=other => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 task=other => ENOSPC
         bp x cpu=0 => ENOSPC
         bp c0 cpu=1 => ok
         bp c1 cpu=1 => ok
         bp c2 cpu=1 => ok
         bp c3 cpu=1 => ok",
    );
}

/// One task full on CPU 0, another full on all CPUs: no CPU breakpoint fits anywhere.
#[test]
fn kunit_two_tasks_on_one_all_cpus() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a0 cpu=0 task=me => ok
         bp a1 cpu=0 task=me => ok
         bp a2 cpu=0 task=me => ok
         bp a3 cpu=0 task=me => ok
         bp b0 cpu=all task=other => ok
         bp b1 cpu=all task=other => ok
         bp b2 cpu=all task=other => ok
         bp b3 cpu=all task=other => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=all task=other => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 task=other => ENOSPC
         bp x cpu=0 => ENOSPC
         bp x cpu=1 => ENOSPC",
    );
}

/// A task moving between all-CPU-only and mixed, with a CPU breakpoint on another CPU.
#[test]
fn kunit_task_on_all_and_one_cpu() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp a0 cpu=all task=me => ok
         bp a1 cpu=all task=me => ok
         bp on0 cpu=0 task=me => ok
         bp a2 cpu=all task=me => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 => ENOSPC
         bp c1 cpu=1 => ok
         bp x cpu=1 => ENOSPC
         del on0 => released
         bp x cpu=all task=me => ENOSPC
         del c1 => released
         bp a3 cpu=all task=me => ok
         bp x cpu=all task=me => ENOSPC
         bp x cpu=0 task=me => ENOSPC
         bp x cpu=0 => ENOSPC
         bp x cpu=1 => ENOSPC",
    );
}

/// EINVAL comes before the slot check: on a full CPU, EMPTY and INVALID still get EINVAL,
/// while an X|R (5) request is counted as data and gets ENOSPC.
#[test]
fn bad_types_are_einval_before_enospc() {
    run_both(
        shared(1, 1, Policy::Mainline),
        "bp a cpu=0 => ok
         bp x cpu=0 type=empty => EINVAL
         bp x cpu=0 type=invalid => EINVAL
         bp x cpu=0 type=5 => ENOSPC
         bp x cpu=0 weight=0 => EINVAL
         bp x cpu=1 => EINVAL
         bp x cpu=all => EINVAL
         modify a type=empty => EINVAL
         modify a type=inst => ok",
    );
}

/// Weights count in slots: a weight-3 task breakpoint leaves room for one more slot.
#[test]
fn weights_take_several_slots() {
    run_both(
        shared(4, 2, Policy::Mainline),
        "bp w3 cpu=0 task=t weight=3 => ok
         bp w2 cpu=0 weight=2 => ENOSPC
         bp w1 cpu=0 weight=1 => ok
         bp big cpu=1 weight=5 => ENOSPC",
    );
}

/// Separate pools: instruction and data never compete; modify moves between pools and rolls
/// back when the new pool is full.
#[test]
fn separate_pools_and_modify_rollback() {
    let config = EngineConfig {
        pools: SlotPools::Separate { inst: 2, data: 1 },
        cpus: 1,
        policy: Policy::Mainline,
    };
    run_both(
        config,
        "bp d cpu=0 type=data => ok
         bp d2 cpu=0 type=data => ENOSPC
         bp i1 cpu=0 type=inst => ok
         bp i2 cpu=0 type=inst => ok
         bp i3 cpu=0 type=inst => ENOSPC
         modify i1 type=data => ENOSPC
         bp i3 cpu=0 type=inst => ENOSPC
         modify d type=w => ok
         modify d type=inst => ENOSPC
         del i2 => released
         modify d type=inst => ok
         bp d2 cpu=0 type=r => ok
         bp i3 cpu=0 type=inst => ENOSPC",
    );
}

/// Seed: a flexible breakpoint keeps one slot free from pinned ones, and flexible ones share
/// the rotating slot.
#[test]
fn seed_flexible_keeps_a_rotating_slot() {
    run_both(
        shared(4, 1, Policy::Seed),
        "bp p1 cpu=0 => ok
         bp p2 cpu=0 => ok
         bp f1 cpu=0 flexible => ok
         bp f2 cpu=0 flexible => ok
         bp f3 cpu=0 task=t flexible => ok
         bp p3 cpu=0 => ok
         bp p4 cpu=0 => ENOSPC
         bp p4 cpu=0 task=t => ENOSPC
         del f1 => released
         del f2 => released
         bp p4 cpu=0 task=u => ok
         bp p5 cpu=0 task=t => ENOSPC
         del f3 => released
         bp p5 cpu=0 task=t => ok
         bp f4 cpu=0 flexible => ENOSPC",
    );
    // Under mainline, flexible breakpoints simply fill slots like pinned ones.
    run_both(
        shared(4, 1, Policy::Mainline),
        "bp p1 cpu=0 => ok
         bp p2 cpu=0 => ok
         bp f1 cpu=0 flexible => ok
         bp f2 cpu=0 flexible => ok
         bp p3 cpu=0 => ENOSPC",
    );
}

/// Seed: a task's own flexible breakpoint only reserves a slot in its own view.
#[test]
fn seed_task_flexible_is_per_view() {
    run_both(
        shared(2, 2, Policy::Seed),
        "bp f cpu=all task=a flexible => ok
         bp pa cpu=0 task=a => ok
         bp pa2 cpu=0 task=a => ENOSPC
         bp pb cpu=0 task=b => ok
         bp pb2 cpu=0 task=b => ok
         bp c0 cpu=0 => ENOSPC
         bp c cpu=1 => ok
         bp c2 cpu=1 => ENOSPC
         bp c3 cpu=1 flexible => ok
         bp pb3 cpu=1 task=b => ENOSPC",
    );
}

fn refusal_of(config: EngineConfig, script: &str, last: &str) -> (Scenario, String) {
    let mut s = Scenario::new(config);
    for line in script.lines() {
        s.run_line(line).expect("parses");
    }
    let (name, outcome) = s.run_line(last).expect("parses").expect("command");
    let text = s.report(name, &outcome).to_string();
    (s, text)
}

#[test]
fn explanation_cpu_target_names_the_busiest_task() {
    let (_, text) = refusal_of(
        shared(4, 4, Policy::Mainline),
        "bp a cpu=2\nbp b cpu=2\nbp c cpu=2\nbp t cpu=2 task=t7\nbp u cpu=all task=t3",
        "bp x cpu=2",
    );
    assert_eq!(
        text,
        "x ENOSPC: CPU 2 has no free data slot: CPU breakpoints hold 3 of 4, \
         the busiest task (t7) holds 1, this request needs 1"
    );
}

#[test]
fn explanation_task_on_all_cpus_names_the_fullest_cpu() {
    let (_, text) = refusal_of(
        shared(4, 4, Policy::Mainline),
        "bp a cpu=1\nbp b cpu=3\nbp c cpu=3\nbp t cpu=all task=me\nbp u cpu=all task=me",
        "bp x cpu=all task=me type=inst weight=2",
    );
    assert_eq!(
        text,
        "x ENOSPC: task me on all CPUs does not fit on CPU 3, which has no free instruction \
         slot: CPU breakpoints hold 2 of 4, task me already holds 2 there, this request needs 2"
    );
}

#[test]
fn explanation_seed_mentions_the_rotating_slot() {
    let (_, text) = refusal_of(
        shared(4, 1, Policy::Seed),
        "bp a cpu=0\nbp b cpu=0\nbp f cpu=0 task=t flexible\nbp p cpu=0 task=t",
        "bp x cpu=0",
    );
    assert_eq!(
        text,
        "x ENOSPC: CPU 0 has no free data slot: CPU breakpoints hold 2 of 4, the busiest task \
         (t) holds 1, flexible breakpoints keep 1 rotating slot free, this request needs 1"
    );
    let (_, text) = refusal_of(
        shared(2, 1, Policy::Seed),
        "bp a cpu=0\nbp b cpu=0 task=t",
        "bp f cpu=0 task=t flexible",
    );
    assert_eq!(
        text,
        "f ENOSPC: CPU 0 has no free data slot for task t: CPU breakpoints hold 1 of 2, \
         task t already holds 1 there, this flexible request needs 1 rotating slot"
    );
}

#[test]
fn scenario_names_and_einval_outcomes() {
    let mut s = Scenario::new(shared(4, 2, Policy::Mainline));
    let mut out = Vec::new();
    for line in [
        "# a comment",
        "",
        "bp a cpu=0   # trailing comment",
        "bp a cpu=1",
        "del nope",
        "modify nope type=inst",
        "bp b cpu=all",
        "bp b cpu=2",
        "bp b cpu=1 weight=9",
        "bp b cpu=1",
        "del a",
        "bp a cpu=1 type=inst",
    ] {
        if let Some((name, outcome)) = s.run_line(line).expect("parses") {
            out.push(s.report(name, &outcome).to_string());
        }
    }
    assert_eq!(
        out,
        [
            "a ok",
            "a EINVAL: a breakpoint named a is already registered: del a first or pick another name",
            "nope EINVAL: no breakpoint named nope is registered (never created, refused, or deleted)",
            "nope EINVAL: no breakpoint named nope is registered (never created, refused, or deleted)",
            "b EINVAL: a breakpoint on all CPUs needs a task to follow: name a task, or put a CPU \
             breakpoint on one CPU",
            "b EINVAL: CPU 2 does not exist: there are 2 CPUs, numbered 0 to 1",
            "b ENOSPC: CPU 1 has no free data slot: CPU breakpoints hold 0 of 4, no task holds \
             any, this request needs 9",
            "b ok",
            "a released",
            "a ok",
        ]
    );
}

#[test]
fn parse_errors_say_what_and_show_an_example() {
    let cases = [
        ("frob a", "unknown command 'frob' (commands are bp, del, modify); expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp", "missing breakpoint NAME; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp cpu=0", "'cpu=0' is not a breakpoint NAME (NAME comes first and has no '='); expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a", "missing cpu=; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a cpu=x", "bad value 'x' for cpu= (expected a CPU number or 'all'); expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a cpu=0 wieght=2", "unknown key 'wieght'; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a cpu=0 cpu=1", "key 'cpu' given twice; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a cpu=0 type=q", "bad value 'q' for type= (expected data, inst, r, w, rw, x, empty, invalid or a number 0-7); expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("bp a cpu=0 pinned", "unexpected 'pinned'; expected e.g. 'bp NAME cpu=0 task=T1 type=data weight=1 flexible'"),
        ("del a b", "unexpected 'b'; expected e.g. 'del NAME'"),
        ("modify a", "missing type=; expected e.g. 'modify NAME type=inst'"),
        ("modify a cpu=1", "unknown key 'cpu'; expected e.g. 'modify NAME type=inst'"),
    ];
    for (line, message) in cases {
        let err = parse_line(line).expect_err(line);
        assert_eq!(err.to_string(), message, "{line}");
    }
    assert_eq!(parse_line("   # only a comment"), Ok(None));
    assert_eq!(
        parse_line("bp n cpu=all task=T type=x weight=2 flexible"),
        Ok(Some(ScenarioCommand::Bp {
            name: "n",
            cpu: CpuTarget::All,
            task: Some("T"),
            bp_type: BpType::X,
            weight: 2,
            flexible: true,
        }))
    );
}

#[test]
fn free_slots_follow_the_views() {
    let mut e = ConstraintEngine::new(shared(4, 2, Policy::Mainline));
    let t = TaskId(0);
    e.reserve(&BreakpointRequest::pinned(
        CpuTarget::One(0),
        None,
        BpType::W,
    ))
    .unwrap();
    e.reserve(&BreakpointRequest::pinned(
        CpuTarget::All,
        Some(t),
        BpType::X,
    ))
    .unwrap();
    e.reserve(&BreakpointRequest::pinned(
        CpuTarget::One(1),
        Some(t),
        BpType::X,
    ))
    .unwrap();
    assert_eq!(e.free_slots(CpuTarget::One(0), None, SlotType::Data), 2);
    assert_eq!(e.free_slots(CpuTarget::One(1), None, SlotType::Data), 2);
    assert_eq!(e.free_slots(CpuTarget::One(0), Some(t), SlotType::Data), 2);
    assert_eq!(
        e.free_slots(CpuTarget::One(0), Some(TaskId(9)), SlotType::Inst),
        3
    );
    assert_eq!(e.free_slots(CpuTarget::All, Some(t), SlotType::Data), 2);
    assert_eq!(e.free_slots(CpuTarget::All, None, SlotType::Data), 0);
    assert_eq!(e.free_slots(CpuTarget::One(7), None, SlotType::Data), 0);
}

// ----- property test: fast engine == brute force -----

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        cpu: Option<u32>,
        task: Option<u32>,
        ty: u32,
        weight: u32,
        flexible: bool,
    },
    Release(usize),
    Modify(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    // Types: mostly valid ones, sometimes EMPTY/INVALID or the odd X|R (5).
    let ty = prop::sample::select(vec![1u32, 2, 3, 3, 4, 4, 0, 7, 5]);
    prop_oneof![
        6 => (
            prop::option::weighted(0.7, 0u32..5),
            prop::option::weighted(0.7, 0u32..4),
            ty.clone(),
            prop::sample::select(vec![1u32, 1, 1, 2, 3, 0, 5]),
            prop::bool::weighted(0.3),
        )
            .prop_map(|(cpu, task, ty, weight, flexible)| Op::Reserve {
                cpu,
                task,
                ty,
                weight,
                flexible
            }),
        3 => any::<usize>().prop_map(Op::Release),
        2 => (any::<usize>(), ty).prop_map(|(i, ty)| Op::Modify(i, ty)),
    ]
}

fn config() -> impl Strategy<Value = EngineConfig> {
    let pools = prop_oneof![
        (1u32..6).prop_map(SlotPools::Shared),
        (0u32..4, 1u32..5).prop_map(|(inst, data)| SlotPools::Separate { inst, data }),
    ];
    let policy = prop_oneof![Just(Policy::Mainline), Just(Policy::Seed)];
    (pools, 1u32..5, policy).prop_map(|(pools, cpus, policy)| EngineConfig {
        pools,
        cpus,
        policy,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fast_engine_matches_brute_force(config in config(), ops in prop::collection::vec(op(), 1..120)) {
        let mut fast = ConstraintEngine::new(config);
        let mut brute = BruteForceEngine::new(config);
        let mut live: Vec<BreakpointId> = Vec::new();
        for op in &ops {
            match *op {
                Op::Reserve { cpu, task, ty, weight, flexible } => {
                    let req = BreakpointRequest {
                        cpu: cpu.map_or(CpuTarget::All, CpuTarget::One),
                        task: task.map(TaskId),
                        bp_type: BpType(ty),
                        weight,
                        flexible,
                    };
                    let a = fast.reserve(&req);
                    let b = brute.reserve(&req);
                    prop_assert_eq!(a, b, "reserve {:?}", req);
                    if let Ok(id) = a {
                        live.push(id);
                    }
                }
                Op::Release(i) => {
                    if live.is_empty() { continue; }
                    let id = live.swap_remove(i % live.len());
                    prop_assert_eq!(fast.release(id), brute.release(id));
                    prop_assert_eq!(fast.release(id), None);
                }
                Op::Modify(i, ty) => {
                    if live.is_empty() { continue; }
                    let id = live[i % live.len()];
                    let a = fast.modify(id, BpType(ty));
                    let b = brute.modify(id, BpType(ty));
                    prop_assert_eq!(a, b, "modify {:?} to {}", id, ty);
                    if a.is_ok() {
                        prop_assert_eq!(fast.get(id).map(|r| r.bp_type), Some(BpType(ty)));
                    }
                }
            }
            for cpu in (0..config.cpus).map(CpuTarget::One).chain([CpuTarget::All]) {
                for task in [None, Some(TaskId(0)), Some(TaskId(2)), Some(TaskId(9))] {
                    for ty in [SlotType::Inst, SlotType::Data] {
                        prop_assert_eq!(
                            fast.free_slots(cpu, task, ty),
                            brute.free_slots(cpu, task, ty),
                            "free slots {:?} {:?} {:?}", cpu, task, ty
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn parser_never_panics(line in "\\PC{0,60}") {
        let _ = parse_line(&line);
    }

    #[test]
    fn scenario_outcomes_are_one_line(lines in prop::collection::vec(
        "(bp|del|modify) [a-c]( cpu=(0|1|all))?( task=t[0-2])?( type=(data|inst|empty))?( weight=[0-3])?( flexible)?",
        1..40,
    )) {
        let mut s = Scenario::new(shared(2, 2, Policy::Seed));
        for line in &lines {
            if let Ok(Some((name, outcome))) = s.run_line(line) {
                let text = s.report(name, &outcome).to_string();
                prop_assert!(!text.contains('\n'));
                prop_assert!(text.starts_with(name));
                let is_ok = matches!(outcome, Outcome::Ok | Outcome::Released);
                prop_assert_eq!(is_ok, text.ends_with(" ok") || text.ends_with(" released"));
            }
        }
    }
}
