//! [`Watcher`]: runs a [`WatchPlan`] to its end in one of two modes and delivers typed
//! [`Hit`](crate::Hit)s to a [`HitSink`], then returns the [`Summary`]:
//!
//! - [`Mode::Perf`]: perf breakpoint events (`perf_event_open(PERF_TYPE_BREAKPOINT)`); the
//!   target never stops (the `perf` module: a drain thread, a bounded queue, the BPF hit handler);
//! - [`Mode::Stop`]: the ptrace debug registers of every thread; each accessing thread stops
//!   at the hit for exact values, then runs on (the `stop` module).
//!
//! A [`StopHandle`] ends a run from anywhere (a Ctrl-C handler, another thread); so do the
//! duration, the hit limit and the sink's `Break`. However it ends, every debug register is
//! freed and the target runs on; a command the run launched is ended with it unless
//! [`WatchOptions::keep_running`] (`crate::launched`).

use crate::error::{Error, Result};
pub use crate::options::{CallGraph, Mode, StopHandle, WatchOptions, DEFAULT_STACK_BYTES};
use crate::plan::WatchPlan;
use crate::sink::HitSink;
use crate::summary::Summary;

/// Runs a plan; see the module docs.
#[derive(Debug)]
pub struct Watcher {
    plan: WatchPlan,
    options: WatchOptions,
    stop: StopHandle,
}

impl Watcher {
    /// A watcher for `plan`. Building it cannot fail; [`run`](Self::run) checks the options
    /// against the plan before arming anything.
    pub fn new(plan: WatchPlan, options: WatchOptions) -> Watcher {
        Watcher {
            plan,
            options,
            stop: StopHandle::new(),
        }
    }

    /// Uses `stop` to end the run (e.g. one shared with a Ctrl-C handler).
    pub fn with_stop_handle(mut self, stop: StopHandle) -> Watcher {
        self.stop = stop;
        self
    }

    /// A handle that ends the run.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The plan.
    pub fn plan(&self) -> &WatchPlan {
        &self.plan
    }

    /// The options.
    pub fn options(&self) -> &WatchOptions {
        &self.options
    }

    /// Arms the watches, delivers every hit to `sink` until the run ends, frees every register
    /// and returns the summary. Call it on the thread that built the plan when the target is a
    /// launched command (ptrace ties the command to that thread).
    pub fn run(self, mut sink: impl HitSink) -> Result<Summary> {
        let Watcher {
            plan,
            options,
            stop,
        } = self;
        check(&plan, &options)?;
        if plan.is_pending() {
            // Watches waiting for their image in the launched command's tree (crate::tree).
            return crate::tree::run(plan, &options, &stop, &mut sink);
        }
        if let Some(condition) = options.condition {
            for watch in plan.watches() {
                for (i, piece) in watch.pieces.iter().enumerate() {
                    condition.check_fits(piece.len, i, &watch.label)?;
                }
            }
            for watch in plan.watches() {
                if let Some(text) = condition.untyped_notice(watch) {
                    sink.notice(&crate::sink::Notice::Warning(text))?;
                }
            }
        }
        crate::dispatch::run(plan, &options, &stop, &mut sink)
    }
}

/// Option checks that need the plan, before anything is armed.
fn check(plan: &WatchPlan, options: &WatchOptions) -> Result<()> {
    if options.ring_pages == 0 || !options.ring_pages.is_power_of_two() {
        return Err(Error::bad_input(format!(
            "--ring-pages {} is not a power of two: use e.g. 64, 256 or 1024",
            options.ring_pages
        )));
    }
    if options.queue_bytes == 0 {
        return Err(Error::bad_input(
            "--queue-size 0: hits need room between the kernel and the output, e.g. \
             --queue-size 256M",
        ));
    }
    if let Some(d) = options.duration {
        if d.is_zero() {
            return Err(Error::bad_input(
                "--duration 0: give a positive number of seconds, e.g. --duration 5",
            ));
        }
    }
    if options.mode == Mode::Perf
        && (options.changes_only || options.condition.is_some())
        && !options.use_bpf
    {
        return Err(Error::bad_input(
            "--changes-only and --if without --stop need the in-kernel BPF handler, which is \
             turned off: turn it on, or add --stop",
        ));
    }
    if options.mode == Mode::Stop && plan.options.flexible {
        return Err(Error::bad_input(
            "--flexible rotates perf-event watches; --stop uses the thread's own debug \
             registers, which do not rotate: drop one of them",
        ));
    }
    Ok(())
}
