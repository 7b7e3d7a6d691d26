//! Who holds the debug registers: the survey `hwbp slots` prints, per CPU and per thread of a
//! target, from three sources:
//! - the processes that hold perf events (`/proc/PID/fd`; the kernel does not say which CPU
//!   or address an event has);
//! - the model: what the constraint engine (`hwbp_core::constraint`, the rules of
//!   `kernel/events/hw_breakpoint.c`) says is free given the breakpoints hwbp knows of (none
//!   of other tools');
//! - the kernel, by trial: pinned breakpoints opened one by one on the CPU (`pid = -1`) or
//!   thread (`cpu = -1`) until `ENOSPC`, then closed at once (`reserve_bp_slot` reserves at
//!   creation). The trial holds the probed slots for a few microseconds.
//!
//! Slots the model thinks free and the kernel refuses are held elsewhere: another perf, gdb,
//! bpftrace or hwbp user, a CPU-wide breakpoint, or a busier thread on that CPU (a CPU-wide
//! breakpoint must fit beside the busiest task, `max_bp_pinned_slots`).

use hwbp_core::arch::native::DEBUG_REGISTERS;
use hwbp_core::constraint::{
    ConstraintEngine, CpuTarget, EngineConfig, Policy, SlotPools, SlotType, TaskId,
};
use hwbp_linux::probe;
use hwbp_linux::sys::perf::EventTarget;
use hwbp_linux::target;

pub use hwbp_linux::probe::PerfEventHolder;

use crate::error::{Error, Result};

/// Whose threads the survey also probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyTarget {
    /// Every thread of a process.
    Process(i32),
    /// One thread.
    Thread(i32),
}

/// Free debug registers of one CPU or thread: the model's count and the kernel's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSlots {
    /// Free by the constraint model (which knows no other tool's breakpoints).
    pub model: u32,
    /// Free by the kernel's answer to trial opens, or why the kernel would not say.
    pub kernel: std::result::Result<u32, String>,
}

impl FreeSlots {
    fn probe(model: u32, target: EventTarget) -> FreeSlots {
        FreeSlots {
            model,
            kernel: probe::kernel_free_slots(target).map_err(|e| e.to_string()),
        }
    }

    /// Registers the model thinks free and the kernel refuses: held by someone else.
    pub fn held_elsewhere(&self) -> Option<u32> {
        self.kernel
            .as_ref()
            .ok()
            .map(|&kernel| self.model.saturating_sub(kernel))
    }
}

/// One thread of the surveyed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSlots {
    /// Its process.
    pub pid: i32,
    /// The thread.
    pub tid: i32,
    /// Its name, `?` when gone.
    pub comm: String,
    /// Its free registers (on every CPU it may run on).
    pub free: FreeSlots,
}

/// The survey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSurvey {
    /// Debug registers per CPU and per thread on this architecture.
    pub registers: u32,
    /// The architecture's name (`x86_64`, `aarch64`).
    pub arch: &'static str,
    /// Other processes holding perf events, by pid.
    pub holders: Vec<PerfEventHolder>,
    /// Each online CPU, in order.
    pub cpus: Vec<(u32, FreeSlots)>,
    /// Possible CPUs that are offline (not probed).
    pub offline: Vec<u32>,
    /// The target's threads, when one was given.
    pub threads: Vec<ThreadSlots>,
}

impl SlotSurvey {
    /// Surveys every online CPU and, when given, the threads of `target`. A target that does
    /// not exist is bad input.
    pub fn take(target: Option<SurveyTarget>) -> Result<SlotSurvey> {
        let online = target::online_cpus().map_err(|e| Error::bad_input(e.to_string()))?;
        let possible = target::possible_cpus().map_err(|e| Error::bad_input(e.to_string()))?;
        let engine = ConstraintEngine::new(EngineConfig {
            pools: SlotPools::Shared(DEBUG_REGISTERS),
            cpus: possible.iter().max().map_or(1, |m| m + 1),
            policy: Policy::Mainline,
        });
        let ids: Vec<(i32, i32)> = match target {
            Some(SurveyTarget::Process(pid)) => target::threads_of(pid)
                .map_err(|e| Error::bad_input(e.to_string()))?
                .into_iter()
                .map(|tid| (pid, tid))
                .collect(),
            Some(SurveyTarget::Thread(tid)) => vec![(
                target::process_of_thread(tid).map_err(|e| Error::bad_input(e.to_string()))?,
                tid,
            )],
            None => Vec::new(),
        };
        let cpus = online
            .iter()
            .map(|&cpu| {
                let model = engine.free_slots(CpuTarget::One(cpu), None, SlotType::Data);
                let target = EventTarget {
                    pid: -1,
                    cpu: cpu as i32,
                };
                (cpu, FreeSlots::probe(model, target))
            })
            .collect();
        let threads = ids
            .into_iter()
            .map(|(pid, tid)| ThreadSlots {
                pid,
                tid,
                comm: target::thread_comm(pid, tid).unwrap_or_else(|_| "?".into()),
                free: FreeSlots::probe(
                    engine.free_slots(CpuTarget::All, Some(TaskId(tid as u32)), SlotType::Data),
                    EventTarget { pid: tid, cpu: -1 },
                ),
            })
            .collect();
        Ok(SlotSurvey {
            registers: DEBUG_REGISTERS,
            arch: std::env::consts::ARCH,
            holders: probe::perf_event_holders(),
            offline: possible
                .iter()
                .filter(|c| !online.contains(c))
                .copied()
                .collect(),
            cpus,
            threads,
        })
    }
}

/// Parses a CPU list as perf and taskset write it (`0-3,6`), refusing CPUs the machine does
/// not have online.
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>> {
    let cpus = target::parse_cpu_arg(text).map_err(|e| Error::bad_input(e.to_string()))?;
    target::require_online(&cpus).map_err(|e| Error::bad_input(e.to_string()))?;
    Ok(cpus)
}

/// A CPU list in its short form (`0-3,6`).
pub fn format_cpu_list(cpus: &[u32]) -> String {
    target::format_cpu_list(cpus)
}

/// The CPUs online now.
pub fn online_cpus() -> Result<Vec<u32>> {
    target::online_cpus().map_err(|e| Error::new(crate::error::ErrorKind::Target, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survey_of_this_process_sees_every_online_cpu_and_its_own_thread() {
        let me = std::process::id() as i32;
        let survey = SlotSurvey::take(Some(SurveyTarget::Thread(me))).unwrap();
        assert_eq!(survey.registers, 4);
        assert_eq!(
            survey.cpus.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            target::online_cpus().unwrap()
        );
        assert_eq!(survey.threads.len(), 1);
        assert_eq!((survey.threads[0].pid, survey.threads[0].tid), (me, me));
        let free = &survey.threads[0].free;
        assert_eq!(free.model, 4, "hwbp's model knows no breakpoint here");
        assert!(
            free.kernel.as_ref().is_ok_and(|&k| k <= 4),
            "{:?}",
            free.kernel
        );
        assert_eq!(
            FreeSlots {
                model: 4,
                kernel: Ok(1)
            }
            .held_elsewhere(),
            Some(3)
        );
        assert!(SlotSurvey::take(Some(SurveyTarget::Process(1 << 23))).is_err());
    }

    #[test]
    fn cpu_lists_parse_and_print_as_perf_writes_them() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        let e = parse_cpu_list("9999").unwrap_err();
        assert!(e.is_bad_input(), "{e}");
    }
}
