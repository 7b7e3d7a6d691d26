//! Keeps the tracer thread on the CPU its single-threaded tracee runs on.
//!
//! A stop-mode hit is a ping-pong: the tracee stops and wakes the tracer (`ptrace_stop` ->
//! `do_notify_parent_cldstop`), the tracer resumes it (`wake_up_state`). When the two run on
//! different CPUs each wake-up is a cross-CPU wake (`try_to_wake_up` -> IPI); on a VM whose
//! idle vCPUs halt, that costs 3-5x the whole hit (bench/stop/RESULTS.md: 20 µs per hit on
//! one CPU, 80-117 µs across two). The scheduler keeps such a pair where it first put it
//! (a handful of migrations in 20,000 hits), so the tracer moves *itself* next to the tracee
//! (`sched_setaffinity` of the calling thread only; the tracee's affinity is never touched)
//! and looks again now and then, in case the tracee moved. The tracer's own affinity is put
//! back when the tracee gains a thread or tracing ends.
//!
//! The tracee's CPU is field 39 (`processor`) of `/proc/<tid>/stat` (`fs/proc/array.c`,
//! `do_task_stat`: `task_cpu(task)`).

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Hits between two looks at the tracee's CPU.
const RECHECK_HITS: u32 = 2048;

/// The calling thread's pinning to a tracee's CPU, and the affinity it had before.
#[derive(Debug, Default)]
pub(crate) struct CpuFollower {
    /// The affinity before the first pin, to put back.
    saved: Option<CpuSet>,
    /// The CPU pinned to now.
    pinned: Option<usize>,
    /// Hits until the next look.
    countdown: u32,
}

impl CpuFollower {
    /// At a hit of `tid` (stopped): every [`RECHECK_HITS`] hits (the first at once), pins the
    /// calling thread to the CPU `tid` last ran on. Failures leave things as they are.
    pub(crate) fn at_hit(&mut self, tid: i32) {
        if self.countdown > 0 {
            self.countdown -= 1;
            return;
        }
        self.countdown = RECHECK_HITS;
        let Some(cpu) = cpu_of(tid) else { return };
        if self.pinned == Some(cpu) {
            return;
        }
        if self.saved.is_none() {
            match sched_getaffinity(Pid::from_raw(0)) {
                Ok(set) => self.saved = Some(set),
                Err(_) => return,
            }
        }
        if self
            .saved
            .as_ref()
            .is_some_and(|s| !s.is_set(cpu).unwrap_or(false))
        {
            return; // hwbp may not run there
        }
        let mut only = CpuSet::new();
        if only.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &only).is_ok() {
            self.pinned = Some(cpu);
        }
    }

    /// Puts the calling thread's affinity back (the tracee gained a thread, or tracing ends).
    pub(crate) fn release(&mut self) {
        if let (Some(saved), Some(_)) = (&self.saved, self.pinned) {
            let _ = sched_setaffinity(Pid::from_raw(0), saved);
        }
        self.pinned = None;
        self.countdown = 0;
    }
}

/// The CPU thread `tid` last ran on.
fn cpu_of(tid: i32) -> Option<usize> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    parse_processor(&stat)
}

/// Field 39 of a `/proc/<tid>/stat` line; the command name (field 2, in parentheses) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_processor(stat: &str) -> Option<usize> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name.
    rest.split_ascii_whitespace().nth(39 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processor_is_field_39_after_the_name() {
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let line = format!("1234 (a (b) c) {}\n", fields.join(" "));
        assert_eq!(parse_processor(&line), Some(39));
        assert_eq!(parse_processor("1234 (x) S 1 2"), None);
        // This thread's own line parses to a CPU it may run on.
        let own = cpu_of(nix::unistd::gettid().as_raw()).unwrap();
        assert!(sched_getaffinity(Pid::from_raw(0))
            .unwrap()
            .is_set(own)
            .unwrap());
    }
}
