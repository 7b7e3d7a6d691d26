//! `hwbp slots`: debug-register use per CPU and per target thread, from three sources:
//! - **hwbp**: processes that hold perf events, and which of them are hwbp (from
//!   `/proc/PID/fd`; the kernel does not say which CPU or address an event has);
//! - **model**: what hwbp's constraint engine (`hwbp_core::constraint`, the rules of
//!   `kernel/events/hw_breakpoint.c`) says is free, given the breakpoints hwbp knows of (here,
//!   none: it sees no other tool's reservations);
//! - **kernel**: the real answer, by trial: pinned breakpoints are opened one by one on the
//!   CPU (`pid = -1`) or thread (`cpu = -1`) until `ENOSPC`, then closed at once.
//!
//! Slots the model thinks free but the kernel refuses are **held elsewhere**: by another
//! perf/gdb/bpftrace/hwbp user, a CPU-wide breakpoint, or a busier thread on that CPU (a
//! CPU-wide breakpoint must fit next to the busiest task, `max_bp_pinned_slots`).
//!
//! With watch specs (`hwbp slots counter cfg -p PID`), it also prints the rotation plan
//! `hwbp watch` would use for them (`hwbp_core::sched`): which pieces are pinned on which
//! registers and which take turns, how often, and what share of the time each is armed.
//!
//! The trial itself holds the probed slots for a few microseconds; a tool that opens a
//! breakpoint at exactly that moment may be refused.

use hwbp_core::constraint::{
    ConstraintEngine, CpuTarget, EngineConfig, Policy, SlotPools, SlotType, TaskId,
};
use hwbp_linux::sys::perf::EventTarget;
use hwbp_linux::{probe, target};

use crate::args::SlotsArgs;
use crate::exit::usage;

/// x86 debug address registers per CPU (`HBP_NUM`).
const SLOTS: u32 = hwbp_core::arch::x86::HBP_NUM as u32;

fn held_elsewhere(model: u32, kernel: u32) -> u32 {
    model.saturating_sub(kernel)
}

/// The rotation plan for `args.specs` on the -p/-t target: the lines to print after the
/// table, built first so a bad spec is refused before anything is printed.
fn rotation_plan(args: &SlotsArgs) -> anyhow::Result<Vec<String>> {
    if args.pid.is_none() && args.tid.is_none() {
        return Err(usage(
            "a rotation plan needs the target: give -p PID or -t TID with the specs",
        ));
    }
    let target = match (args.pid, args.tid) {
        (Some(pid), _) => hwbp::Target::Process(pid),
        (None, Some(tid)) => hwbp::Target::Thread(tid),
        (None, None) => unreachable!("checked above"),
    };
    let plan = hwbp::WatchPlan::builder()
        .watches(args.specs.iter())
        .target(target)
        .options(hwbp::PlanOptions {
            flexible: args.rotation.flexible,
            rotate_ms: args.rotation.rotate_ms,
            location: args.location,
            ..hwbp::PlanOptions::default()
        })
        .build()?;
    let placement = hwbp::placement(&plan)?;
    let mut lines = vec![
        String::new(),
        format!(
            "rotation plan for {}: {}",
            args.specs.join(" "),
            placement.plan()
        ),
    ];
    lines.extend(placement.piece_lines(plan.watches()));
    lines.extend(
        plan.watches()
            .iter()
            .filter_map(hwbp::PlannedWatch::chain_note),
    );
    lines.extend(
        plan.watches()
            .iter()
            .filter_map(hwbp::PlannedWatch::local_note),
    );
    Ok(lines)
}

/// Runs `hwbp slots`.
pub fn run(args: SlotsArgs) -> anyhow::Result<()> {
    let plan_lines = if args.specs.is_empty() {
        Vec::new()
    } else {
        rotation_plan(&args)?
    };
    let online = target::online_cpus()?;
    let possible = target::possible_cpus()?;
    let engine = ConstraintEngine::new(EngineConfig {
        pools: SlotPools::Shared(SLOTS),
        cpus: possible.iter().max().map_or(1, |m| m + 1),
        policy: Policy::Mainline,
    });
    let threads: Vec<(i32, i32)> = match (args.pid, args.tid) {
        (Some(pid), _) => target::threads_of(pid)
            .map_err(|e| usage(e.to_string()))?
            .into_iter()
            .map(|tid| (pid, tid))
            .collect(),
        (None, Some(tid)) => vec![(
            target::process_of_thread(tid).map_err(|e| usage(e.to_string()))?,
            tid,
        )],
        (None, None) => Vec::new(),
    };

    println!("debug registers: {SLOTS} per CPU and per thread (x86)");
    let holders = probe::perf_event_holders();
    if holders.is_empty() {
        println!("perf events held by other processes: none");
    } else {
        println!("perf events held by other processes (any perf event, not only breakpoints):");
        for probe::PerfEventHolder {
            pid,
            comm,
            events: count,
        } in &holders
        {
            let who = if comm.starts_with("hwbp") {
                " (hwbp)"
            } else {
                ""
            };
            println!("  pid {pid:<8} {comm:<16} {count} events{who}");
        }
    }
    println!();
    println!(
        "{:<10} {:>11} {:>11} {:>15}",
        "CPU", "MODEL-FREE", "KERNEL-FREE", "HELD-ELSEWHERE"
    );
    for cpu in &online {
        let model = engine.free_slots(CpuTarget::One(*cpu), None, SlotType::Data);
        let target = EventTarget {
            pid: -1,
            cpu: *cpu as i32,
        };
        match probe::kernel_free_slots(target) {
            Ok(kernel) => println!(
                "{:<10} {model:>11} {kernel:>11} {:>15}",
                format!("cpu{cpu}"),
                held_elsewhere(model, kernel)
            ),
            Err(e) => println!(
                "{:<10} {model:>11} {:>11}   ({e})",
                format!("cpu{cpu}"),
                "?"
            ),
        }
    }
    let offline: Vec<u32> = possible
        .iter()
        .filter(|c| !online.contains(c))
        .copied()
        .collect();
    if !offline.is_empty() {
        println!(
            "offline CPUs (not probed): {}",
            target::format_cpu_list(&offline)
        );
    }
    if !threads.is_empty() {
        println!();
        println!(
            "{:<24} {:>11} {:>11} {:>15}",
            "THREAD (all CPUs)", "MODEL-FREE", "KERNEL-FREE", "HELD-ELSEWHERE"
        );
    }
    for (pid, tid) in threads {
        let comm = target::thread_comm(pid, tid).unwrap_or_else(|_| "?".into());
        let model = engine.free_slots(CpuTarget::All, Some(TaskId(tid as u32)), SlotType::Data);
        let label = format!("{tid} {comm}");
        match probe::kernel_free_slots(EventTarget { pid: tid, cpu: -1 }) {
            Ok(kernel) => println!(
                "{label:<24} {model:>11} {kernel:>11} {:>15}",
                held_elsewhere(model, kernel)
            ),
            Err(e) => println!("{label:<24} {model:>11} {:>11}   ({e})", "?"),
        }
    }
    for line in plan_lines {
        println!("{line}");
    }
    Ok(())
}
