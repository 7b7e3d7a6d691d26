//! `hwbp slots`: debug-register use per CPU and per target thread, as the facade's survey
//! (`hwbp::slots`) finds it, from three sources:
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

use hwbp::slots::{format_cpu_list, FreeSlots, SlotSurvey, SurveyTarget};

use crate::args::SlotsArgs;
use crate::exit::usage;

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
    if plan.is_pending() {
        return Ok(pending_plan_lines(&plan));
    }
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

/// What a plan whose watches wait for an image will take: nothing yet; once an image defining
/// a watch is mapped, its pieces in every thread of that process.
fn pending_plan_lines(plan: &hwbp::WatchPlan) -> Vec<String> {
    let labels: Vec<&str> = plan.watches().iter().map(|w| &*w.label).collect();
    vec![
        String::new(),
        format!(
            "rotation plan for {}: pending: no image of {} defines {} yet, so no register is \
             taken now",
            labels.join(" "),
            plan.target().describe(),
            if labels.len() == 1 { "it" } else { "them" }
        ),
        "  once a library defining it is mapped, each watch takes one debug register per \
         aligned piece of up to 8 bytes (a variable of its type's size: usually 1) in every \
         thread of that process, pinned while the 4 registers per thread hold them, else \
         rotating in that process"
            .to_owned(),
    ]
}

/// One row: the model's and the kernel's free registers and those held elsewhere.
fn row(label: &str, width: usize, free: &FreeSlots) {
    let model = free.model;
    match (&free.kernel, free.held_elsewhere()) {
        (Ok(kernel), Some(held)) => {
            println!("{label:<width$} {model:>11} {kernel:>11} {held:>15}")
        }
        (Err(why), _) => println!("{label:<width$} {model:>11} {:>11}   ({why})", "?"),
        (Ok(_), None) => unreachable!("held_elsewhere is known when the kernel answered"),
    }
}

/// Runs `hwbp slots`.
pub fn run(args: SlotsArgs) -> anyhow::Result<()> {
    let plan_lines = if args.specs.is_empty() {
        Vec::new()
    } else {
        rotation_plan(&args)?
    };
    let target = match (args.pid, args.tid) {
        (Some(pid), _) => Some(SurveyTarget::Process(pid)),
        (None, Some(tid)) => Some(SurveyTarget::Thread(tid)),
        (None, None) => None,
    };
    let survey = SlotSurvey::take(target).map_err(|e| {
        if e.is_bad_input() {
            usage(e.to_string())
        } else {
            e.into()
        }
    })?;
    println!(
        "debug registers: {} per CPU and per thread ({})",
        survey.registers, survey.arch
    );
    if survey.holders.is_empty() {
        println!("perf events held by other processes: none");
    } else {
        println!("perf events held by other processes (any perf event, not only breakpoints):");
        for holder in &survey.holders {
            let who = if holder.comm.starts_with("hwbp") {
                " (hwbp)"
            } else {
                ""
            };
            println!(
                "  pid {:<8} {:<16} {} events{who}",
                holder.pid, holder.comm, holder.events
            );
        }
    }
    println!();
    println!(
        "{:<10} {:>11} {:>11} {:>15}",
        "CPU", "MODEL-FREE", "KERNEL-FREE", "HELD-ELSEWHERE"
    );
    for (cpu, free) in &survey.cpus {
        row(&format!("cpu{cpu}"), 10, free);
    }
    if !survey.offline.is_empty() {
        println!(
            "offline CPUs (not probed): {}",
            format_cpu_list(&survey.offline)
        );
    }
    if !survey.threads.is_empty() {
        println!();
        println!(
            "{:<24} {:>11} {:>11} {:>15}",
            "THREAD (all CPUs)", "MODEL-FREE", "KERNEL-FREE", "HELD-ELSEWHERE"
        );
    }
    for thread in &survey.threads {
        row(&format!("{} {}", thread.tid, thread.comm), 24, &thread.free);
    }
    for line in plan_lines {
        println!("{line}");
    }
    Ok(())
}
