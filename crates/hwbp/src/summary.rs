//! [`Summary`]: what a watch run counted, per watch ([`WatchTotals`]): exact kernel counts
//! where a piece kept a debug register, hits seen and perf-style estimates where pieces took
//! turns, what was lost and why, and which members were never watched at all.
//!
//! The JSON form (`"type": "summary"`) is part of hwbp's interface; see each field.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::hit::WatchId;

/// How a watch's pieces held the debug registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Always on a debug register: `hits` is exact.
    Pinned,
    /// Took turns on the registers left over: `hits` are the hits seen while armed.
    Flexible,
    /// A region whose first pieces are pinned and the rest flexible.
    Mixed,
}

impl Placement {
    /// `pinned`, `flexible` or `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Pinned => "pinned",
            Placement::Flexible => "flexible",
            Placement::Mixed => "mixed",
        }
    }
}

/// Per-watch totals at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct WatchTotals {
    /// The watch.
    #[serde(rename = "watch_id")]
    pub id: WatchId,
    /// The spec as the user wrote it.
    pub watch: String,
    /// The watched address (`0x...`).
    pub address: String,
    /// Bytes watched.
    pub len: u64,
    /// Accesses counted: exact from the event counters for pieces that kept a register; for
    /// pieces that rotated, the hits seen while armed (see `estimate` for the whole time).
    pub hits: u64,
    /// Hits hwbp received and reported.
    pub reported: u64,
    /// Hits counted by the kernel but never reported (ring buffer overrun, or hwbp's queue
    /// full), for the pieces that kept a register (a rotating register's count mixes pieces).
    pub lost: u64,
    /// `pinned`, `flexible` or `mixed`.
    pub placement: Placement,
    /// Flexible and mixed watches: hits seen while the flexible pieces were armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hits_seen: Option<u64>,
    /// Flexible and mixed watches: time the flexible pieces were armed over the time they
    /// were watched (perf's `time_running / time_enabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// Flexible and mixed watches: the estimated number of accesses, `hits_seen / coverage`
    /// per flexible piece (perf's scaling of multiplexed counters) plus the exact counts of
    /// pinned pieces; absent if a flexible piece never had a turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<u64>,
    /// True when `hits` is only a lower bound: some pieces were never armed, so accesses to
    /// them were not counted at all.
    pub lower_bound: bool,
    /// The members (or byte ranges) that were never armed, when `lower_bound`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never_armed: Vec<String>,
    /// Why they were never armed, when `lower_bound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_armed_reason: Option<String>,
}

impl WatchTotals {
    /// The flexible part in words: `flexible: 1234 hits seen, armed 11.1% of the time,
    /// estimate 11106`; empty for pinned watches.
    pub fn flexible_text(&self) -> String {
        flexible_text(
            self.placement.name(),
            self.hits_seen,
            self.coverage,
            self.estimate,
        )
    }

    /// `hits` as text: `1234`, or `>= 1234` when it is a lower bound.
    pub fn hits_text(&self) -> String {
        if self.lower_bound {
            format!(">={}", self.hits)
        } else {
            self.hits.to_string()
        }
    }

    /// The lower-bound note in words, empty when the count covers every piece:
    /// `lower bound: cfg.name[0..7], cfg.tail never armed (the command ended before their
    /// first turn)`.
    pub fn lower_bound_text(&self) -> String {
        lower_bound_text(&self.never_armed, self.never_armed_reason.as_deref())
    }
}

/// A flexible watch's numbers in words (`flexible: 1234 hits seen, armed 11.1% of the time,
/// estimate 11106`), as `hwbp watch`, `hwbp stat` and `hwbp report` print them; empty when
/// there are no flexible numbers.
pub fn flexible_text(
    placement: &str,
    hits_seen: Option<u64>,
    coverage: Option<f64>,
    estimate: Option<u64>,
) -> String {
    let (Some(seen), Some(coverage)) = (hits_seen, coverage) else {
        return String::new();
    };
    let estimate = match estimate {
        Some(estimate) => estimate.to_string(),
        None => "none (never armed)".to_string(),
    };
    format!(
        "{placement}: {seen} hits seen, armed {:.1}% of the time, estimate {estimate}",
        coverage * 100.0
    )
}

/// A lower-bound note in words (`lower bound: cfg.tail never armed (why)`), empty when the
/// count covers every piece.
pub fn lower_bound_text(never_armed: &[String], reason: Option<&str>) -> String {
    if never_armed.is_empty() {
        return String::new();
    }
    let mut text = format!("lower bound: {} never armed", never_armed.join(", "));
    if let Some(reason) = reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

/// The `type` of a [`Summary`]'s JSON object: always `"summary"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryKind {
    /// `"summary"`
    #[default]
    Summary,
}

/// Why a run ended. Its `Display`, and its JSON (`ended_by`), is the reason in words:
/// `interrupted`, `the command exited with status 0`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndedBy {
    /// Stopped through the [`crate::StopHandle`] (Ctrl-C in the CLI): `interrupted`.
    Interrupted,
    /// [`crate::WatchOptions::duration`] elapsed: `duration elapsed`.
    Duration,
    /// [`crate::WatchOptions::max_hits`] were reported: `max hits reached`.
    MaxHits,
    /// The sink returned `ControlFlow::Break`: `stopped by the hit sink`.
    Sink,
    /// The sink failed (perf mode; the run's error says why): `output failed`.
    OutputFailed,
    /// [`crate::WatchOptions::frames`] frames of a watched local ended: `2 frames watched`.
    Frames(u64),
    /// Every watched thread exited (a target hwbp attached to, in perf mode): `target
    /// exited`.
    TargetExited,
    /// The command hwbp launched ended: `the command exited with status 0`, `the command
    /// killed by signal 9 (SIGKILL)`.
    Command {
        /// How it ended, in words (`exited with status 0`).
        status: String,
        /// It died of a SIGTRAP hwbp's watchpoints may have caused (some virtual machines
        /// raise debug exceptions the kernel cannot match): the text says so.
        stray_trap: bool,
    },
    /// Stop mode: the process hwbp attached to ended: `the target exited with status 0`.
    Target {
        /// How it ended, in words.
        status: String,
    },
    /// The target exec'd another program: the addresses watched (or, `frames`, the watched
    /// local's frames) were the old program's.
    Exec {
        /// A watched local's frames were lost (else the watched addresses).
        frames: bool,
    },
}

/// Why a watched program may die of SIGTRAP without anyone sending one: some virtual machines
/// deliver a watchpoint hit as a debug exception with an empty DR6, which the kernel cannot match
/// to a watchpoint, so it counts nothing and sends SIGTRAP (seen with perf and bpftrace too).
const STRAY_TRAP_HINT: &str = " (if nothing in the program raised it, likely a debug \
     exception the kernel could not match to a watchpoint: some virtual machines raise these \
     under busy watchpoints, and that hit was not counted)";

impl EndedBy {
    /// The launched command ended with `exit` (perf mode: a SIGTRAP may be a stray debug
    /// exception).
    pub(crate) fn command(exit: hwbp_linux::launch::ProcessExit) -> EndedBy {
        use hwbp_linux::launch::ProcessExit;
        EndedBy::Command {
            status: exit.to_string(),
            stray_trap: matches!(exit, ProcessExit::Signaled { signal, .. } if signal == nix::libc::SIGTRAP),
        }
    }

    /// A traced target ended with `exit`: the command hwbp launched (`launched`) or the
    /// attached target. The tracer sees every debug exception, so a SIGTRAP is the program's.
    pub(crate) fn traced_exit(exit: impl fmt::Display, launched: bool) -> EndedBy {
        let status = exit.to_string();
        if launched {
            EndedBy::Command {
                status,
                stray_trap: false,
            }
        } else {
            EndedBy::Target { status }
        }
    }
}

impl fmt::Display for EndedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndedBy::Interrupted => f.write_str("interrupted"),
            EndedBy::Duration => f.write_str("duration elapsed"),
            EndedBy::MaxHits => f.write_str("max hits reached"),
            EndedBy::Sink => f.write_str("stopped by the hit sink"),
            EndedBy::OutputFailed => f.write_str("output failed"),
            EndedBy::Frames(n) => {
                let s = if *n == 1 { "" } else { "s" };
                write!(f, "{n} frame{s} watched")
            }
            EndedBy::TargetExited => f.write_str("target exited"),
            EndedBy::Command { status, stray_trap } => {
                write!(f, "the command {status}")?;
                if *stray_trap {
                    f.write_str(STRAY_TRAP_HINT)?;
                }
                Ok(())
            }
            EndedBy::Target { status } => write!(f, "the target {status}"),
            EndedBy::Exec { frames: true } => {
                f.write_str("the target exec'd another program (its frames are gone)")
            }
            EndedBy::Exec { frames: false } => f.write_str(
                "target exec'd a new program; the address watched was the old program's",
            ),
        }
    }
}

impl Serialize for EndedBy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The end-of-run summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Always [`SummaryKind::Summary`].
    #[serde(rename = "type")]
    pub kind: SummaryKind,
    /// One entry per watch, in plan order.
    pub watchpoints: Vec<WatchTotals>,
    /// Samples the kernel dropped (`PERF_RECORD_LOST`), over all watchpoints.
    pub lost_records: u64,
    /// Hits hwbp drained from the kernel but dropped because its queue was full (the output
    /// was slower than the target for longer than the queue holds); counted in `lost` too.
    pub queue_dropped: u64,
    /// The largest the in-memory queue between the rings and the output grew, in bytes.
    pub queue_peak_bytes: u64,
    /// Times the kernel throttled sampling.
    pub throttled: u64,
    /// Debug exceptions that matched no watchpoint (stop mode: swallowed, never delivered to
    /// the target; seen on some virtual machines under busy watchpoints).
    #[serde(skip_serializing_if = "is_zero")]
    pub stray_traps: u64,
    /// The in-kernel hit handler's own counters, when it was in use (perf mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerTotals>,
    /// Seconds the watch was armed.
    pub duration_s: f64,
    /// Why the run ended.
    pub ended_by: EndedBy,
    /// What became of the command hwbp launched (absent for a process, thread or CPUs it
    /// attached to: those are never ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandFate>,
    /// For a launched command's process tree (watches that waited for their image,
    /// `crate::tree`): each process, its program and its hits per watch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessTotals>,
    /// Watches no process of the tree ever mapped an image for: never armed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// One process of a launched command's tree in the [`Summary`].
#[derive(Debug, Clone, Serialize)]
pub struct ProcessTotals {
    /// The process id.
    pub pid: i32,
    /// The program it ran last (`/proc/PID/exe`).
    pub program: String,
    /// Hits per watch (index: the watch id), exact as the kernel counted them.
    pub hits: Vec<u64>,
}

/// What became of a launched command when the run ended ([`crate::WatchOptions::keep_running`]).
/// JSON: `"command": {"pid": 1234, "fate": "ended", "status": "killed by signal 15 (SIGTERM)",
/// "signal_sent": "SIGTERM"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFate {
    /// Its process id.
    pub pid: i32,
    /// `exited`, `ended` or `kept-running`.
    pub fate: Fate,
    /// How it ended, as a shell would say (`exited with status 0`, `killed by signal 15
    /// (SIGTERM)`); `null` while it keeps running (or, rarely, when it ended while hwbp
    /// detached from it in stop mode and its status went to the tracer).
    pub status: Option<String>,
    /// For `ended`: the last signal hwbp sent it, `SIGTERM`, or `SIGKILL` when it was still
    /// there after the grace period (`hwbp_linux::ending::END_GRACE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_sent: Option<String>,
}

/// What became of a launched command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fate {
    /// It ended by itself before hwbp stopped watching (the run ended because it did, or it
    /// was gone by the time hwbp came to end it).
    Exited,
    /// The run ended first, so hwbp ended it: `SIGTERM`, then `SIGKILL` after a grace
    /// period; it was waited for.
    Ended,
    /// The run ended first and the command was asked to keep running: hwbp detached from it
    /// (no debug register armed, no ptrace attachment) and left it running.
    KeptRunning,
}

impl CommandFate {
    /// The fate in words: `the command (pid 42) was ended (SIGTERM): killed by signal 15
    /// (SIGTERM)`, `the command (pid 42) exited with status 0`, `the command (pid 42) keeps
    /// running`.
    pub fn text(&self) -> String {
        let status = self.status.as_deref().unwrap_or("ended");
        match self.fate {
            Fate::Exited => format!("the command (pid {}) {status}", self.pid),
            Fate::Ended => format!(
                "the command (pid {}) was ended with {}: {status}",
                self.pid,
                self.signal_sent.as_deref().unwrap_or("a signal")
            ),
            Fate::KeptRunning => format!("the command (pid {}) keeps running", self.pid),
        }
    }
}

/// What the in-kernel BPF hit handler counted over the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HandlerTotals {
    /// Times the handler ran (one per hit it saw).
    pub runs: u64,
    /// Hits the in-kernel filters (`--changes-only`, `--if`) dropped: not reported, not lost.
    pub filtered: u64,
    /// Hits counted by the breakpoint events that the handler never saw (the kernel skips it
    /// while another BPF program runs on that CPU); counted in `lost`.
    pub skipped: u64,
    /// Records lost because the handler's ring buffer was full; counted in `lost`.
    pub ring_full: u64,
    /// Hits not counted because the count map was full (`hwbp stat`); counted in `lost`.
    pub count_map_full: u64,
    /// Hits at an address the handler does not watch (never seen; a breakpoint the handler
    /// was not built for); counted in `lost`.
    pub unknown_address: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// The totals of watch `id`.
    pub fn watch(&self, id: WatchId) -> Option<&WatchTotals> {
        self.watchpoints.get(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ended_by` and `type` in JSON are the texts they were before they were enums.
    #[test]
    fn end_reasons_serialise_as_their_words() {
        let json = |e: &EndedBy| serde_json::to_value(e).unwrap();
        let cases = [
            (EndedBy::Interrupted, "interrupted"),
            (EndedBy::Duration, "duration elapsed"),
            (EndedBy::MaxHits, "max hits reached"),
            (EndedBy::Sink, "stopped by the hit sink"),
            (EndedBy::OutputFailed, "output failed"),
            (EndedBy::Frames(1), "1 frame watched"),
            (EndedBy::Frames(2), "2 frames watched"),
            (EndedBy::TargetExited, "target exited"),
            (
                EndedBy::Command {
                    status: "exited with status 0".into(),
                    stray_trap: false,
                },
                "the command exited with status 0",
            ),
            (
                EndedBy::Target {
                    status: "exited with status 3".into(),
                },
                "the target exited with status 3",
            ),
            (
                EndedBy::Exec { frames: false },
                "target exec'd a new program; the address watched was the old program's",
            ),
            (
                EndedBy::Exec { frames: true },
                "the target exec'd another program (its frames are gone)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(json(&reason), text);
        }
        let trapped = EndedBy::command(hwbp_linux::launch::ProcessExit::Signaled {
            signal: nix::libc::SIGTRAP,
            core_dumped: false,
        });
        let text = trapped.to_string();
        assert!(
            text.starts_with("the command killed by signal 5 (SIGTRAP) (if nothing"),
            "{text}"
        );
        assert_eq!(
            serde_json::to_value(SummaryKind::Summary).unwrap(),
            "summary"
        );
    }
}
