//! From what the user typed ([`crate::args`]) to the library's validated plan and options
//! (ripgrep's low-args → high-args step): the target flags become one [`Target`], the rotation
//! flags [`PlanOptions`], the run flags [`WatchOptions`]. Everything the library refuses is bad
//! input (exit 2) and arms nothing.

use std::time::Duration;

use hwbp::{Mode, PlanOptions, StopHandle, Target, WatchOptions, WatchPlan};

use crate::args::{CommonWatchArgs, RotationArgs, TargetArgs};
use crate::exit::usage;

/// The one target the flags name.
pub fn target(t: &TargetArgs) -> anyhow::Result<Target> {
    let given = [
        t.pid.is_some(),
        t.tid.is_some(),
        t.all_cpus,
        t.cpus.is_some(),
        !t.command.is_empty(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given == 0 {
        return Err(usage(
            "no target: give -p PID, -t TID, -a (all CPUs), -C LIST, or a command after --",
        ));
    }
    if given > 1 {
        return Err(usage(
            "give only one target: -p PID, -t TID, -a, -C LIST, or -- CMD",
        ));
    }
    Ok(if let Some(pid) = t.pid {
        Target::Process(pid)
    } else if let Some(tid) = t.tid {
        Target::Thread(tid)
    } else if t.all_cpus {
        Target::AllCpus
    } else if let Some(list) = &t.cpus {
        Target::Cpus(hwbp::slots::parse_cpu_list(list).map_err(|e| usage(e.to_string()))?)
    } else {
        Target::launch(t.command.iter())
    })
}

/// The plan for `watch`, `stat` and `slots`.
pub fn watch_plan(common: &CommonWatchArgs, rotation: RotationArgs) -> anyhow::Result<WatchPlan> {
    // Cheap flag checks first: nothing is launched for a command line that cannot run.
    if let Some(d) = common.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(usage(format!(
                "--duration {d} is not a positive number of seconds: use e.g. --duration 5"
            )));
        }
    }
    if common.ring_pages == 0 || !common.ring_pages.is_power_of_two() {
        return Err(usage(format!(
            "--ring-pages {} is not a power of two: use e.g. 64, 256 or 1024",
            common.ring_pages
        )));
    }
    let target = target(&common.target)?;
    Ok(WatchPlan::builder()
        .watches(common.specs.iter())
        .target(target)
        .options(PlanOptions {
            user_only: common.user_only,
            flexible: rotation.flexible,
            rotate_ms: rotation.rotate_ms,
            location: common.location,
            follow_children: common.follow_children,
        })
        .build()?)
}

/// The run options every watching subcommand shares.
pub fn watch_options(common: &CommonWatchArgs, mode: Mode) -> WatchOptions {
    WatchOptions {
        mode,
        duration: common.duration.map(Duration::from_secs_f64),
        ring_pages: common.ring_pages,
        queue_bytes: common.queue_size,
        keep_running: common.keep_running,
        ..WatchOptions::default()
    }
}

/// The stop handle Ctrl-C and SIGTERM set: the run ends with its summary and frees every
/// register. Installed once per process.
pub fn stop_handle() -> StopHandle {
    static HANDLE: std::sync::OnceLock<StopHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = StopHandle::new();
            let on_signal = handle.clone();
            // A failure only means a handler exists already; Ctrl-C then kills us, and the
            // kernel still frees every debug register when our fds close.
            let _ = ctrlc::set_handler(move || on_signal.stop());
            handle
        })
        .clone()
}
