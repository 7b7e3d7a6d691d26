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

use std::os::fd::OwnedFd;

use hwbp_core::constraint::{
    ConstraintEngine, CpuTarget, EngineConfig, Policy, SlotPools, SlotType, TaskId,
};
use hwbp_core::Access;
use hwbp_linux::perf::attr::breakpoint_attr;
use hwbp_linux::perf::{SampleOptions, WatchRequest};
use hwbp_linux::sys::perf::{open_breakpoint, EventTarget, RealPerfSys};
use hwbp_linux::target;

use crate::exit::usage;

/// x86 debug address registers per CPU (`HBP_NUM`).
const SLOTS: u32 = hwbp_core::arch::x86::HBP_NUM as u32;

/// Arguments of `hwbp slots`.
#[derive(Debug, clap::Args)]
pub struct SlotsArgs {
    /// Watch specs (as for `hwbp watch`): print the rotation plan `hwbp watch` would use for
    /// them on the target given with -p/-t.
    #[arg(value_name = "SPEC")]
    pub specs: Vec<String>,
    /// Pinned and flexible watches (for the plan).
    #[command(flatten)]
    pub rotation: crate::args::RotationArgs,
    /// Also show every thread of process PID.
    #[arg(short = 'p', long = "pid", value_name = "PID", conflicts_with = "tid")]
    pub pid: Option<i32>,
    /// Also show thread TID.
    #[arg(short = 't', long = "tid", value_name = "TID")]
    pub tid: Option<i32>,
}

/// How many pinned data breakpoints the kernel accepts now on `target`, by opening them one by
/// one (at distinct, never-accessed addresses) until it refuses; all are closed on return.
/// `Err` carries the refusal that was not `ENOSPC` (e.g. permission).
pub fn kernel_free_slots(target: EventTarget) -> Result<u32, hwbp_linux::Error> {
    let mut held: Vec<OwnedFd> = Vec::new();
    for i in 0..u64::from(SLOTS) {
        // User page 0, never mapped: the event takes a slot and counts nothing (created
        // disabled as well).
        let watch = WatchRequest {
            pinned: true,
            exclude_kernel: true,
            ..WatchRequest::new(0x100 + 8 * i, 8, Access::Write)
        };
        let mut attr = breakpoint_attr(&watch, &SampleOptions::default(), false);
        attr.set_disabled(1);
        match open_breakpoint(&RealPerfSys, &mut attr, target, "trial slot", 1) {
            Ok(fd) => held.push(fd),
            Err(e) if e.kind() == hwbp_linux::ErrorKind::NoFreeSlot => break,
            Err(e) => return Err(e),
        }
    }
    Ok(held.len() as u32)
}

/// Processes holding perf events: (pid, comm, number of perf event fds).
fn perf_event_holders() -> Vec<(i32, String, usize)> {
    let mut holders = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return holders;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let count = fds
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| link.to_string_lossy() == "anon_inode:[perf_event]")
            })
            .count();
        if count > 0 && pid != std::process::id() as i32 {
            let comm = target::process_comm(pid).unwrap_or_else(|_| "?".into());
            holders.push((pid, comm, count));
        }
    }
    holders.sort();
    holders
}

fn held_elsewhere(model: u32, kernel: u32) -> u32 {
    model.saturating_sub(kernel)
}

/// Prints the rotation plan for `args.specs` on the -p/-t target.
fn print_rotation_plan(args: &SlotsArgs) -> anyhow::Result<()> {
    if args.pid.is_none() && args.tid.is_none() {
        return Err(usage(
            "a rotation plan needs the target: give -p PID or -t TID with the specs",
        ));
    }
    let common = crate::args::CommonWatchArgs {
        specs: args.specs.clone(),
        target: crate::args::TargetArgs {
            pid: args.pid,
            tid: args.tid,
            ..Default::default()
        },
        json: false,
        duration: None,
        ring_pages: 256,
        user_only: false,
    };
    let plan = crate::plan::plan_with(&common, args.rotation)?;
    let placement = crate::runner::PiecePlacement::new(&plan)?;
    println!();
    println!(
        "rotation plan for {}: {}",
        args.specs.join(" "),
        placement.plan()
    );
    for line in placement.piece_lines(&plan) {
        println!("{line}");
    }
    Ok(())
}

/// Runs `hwbp slots`.
pub fn run(args: SlotsArgs) -> anyhow::Result<()> {
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
    let holders = perf_event_holders();
    if holders.is_empty() {
        println!("perf events held by other processes: none");
    } else {
        println!("perf events held by other processes (any perf event, not only breakpoints):");
        for (pid, comm, count) in &holders {
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
        match kernel_free_slots(target) {
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
        match kernel_free_slots(EventTarget { pid: tid, cpu: -1 }) {
            Ok(kernel) => println!(
                "{label:<24} {model:>11} {kernel:>11} {:>15}",
                held_elsewhere(model, kernel)
            ),
            Err(e) => println!("{label:<24} {model:>11} {:>11}   ({e})", "?"),
        }
    }
    if !args.specs.is_empty() {
        print_rotation_plan(&args)?;
    }
    Ok(())
}
