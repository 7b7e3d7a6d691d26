//! What the perf engine's drain thread hands the caller's thread through the bounded
//! [`HitQueue`]: hits, handler records, thread names, rotation turns, notices and counts, in
//! time order, and how the caller's side tells the drain thread to end.

use std::time::Duration;

use hwbp_linux::bpf::handler::CountKey;
use hwbp_linux::bpf::HandlerRecord;
use hwbp_linux::session::{self, Record};

use crate::queue::HitQueue;
use crate::rotation::PiecePlacement;
use crate::sink::Notice;
use crate::summary::{EndedBy, HandlerTotals};

/// What the drain thread queues for the caller's thread, in time order.
pub(super) enum Queued {
    /// A hit of piece `piece`, with the value read after it (if values are read); its user
    /// stack bytes, if it carried them, already unwound into its callchain, and why that
    /// unwinding stopped early.
    Hit {
        hit: session::Hit,
        piece: usize,
        value: Option<u64>,
        unwind_stopped: Option<String>,
    },
    /// A hit of piece `piece` as the in-kernel handler recorded it; its user stack bytes, if it
    /// carried them, already unwound into `record.stack`, and why that unwinding stopped early.
    Record {
        record: HandlerRecord,
        piece: usize,
        unwind_stopped: Option<String>,
    },
    /// Every count of the handler's count map since arming, per piece.
    Counts(Vec<(CountKey, usize, u64)>),
    /// `tid` set its name.
    Comm { tid: i32, comm: String },
    /// `tid` was created by `ptid` of `ppid`.
    Fork { tid: i32, ppid: i32, ptid: i32 },
    /// Interval counts per watch.
    Progress { elapsed: Duration, counts: Vec<u64> },
    /// A notice from the drain side.
    Notice(Notice),
    /// Rotation took piece `piece` off its register (`armed` false) or put it on one, with
    /// the value `seed` read once armed (for the shadows of wide watches, [`crate::shadow`]).
    Turn {
        piece: usize,
        armed: bool,
        seed: Option<u64>,
    },
}

impl Queued {
    /// What the item costs in the queue, in bytes.
    pub(super) fn cost(&self) -> usize {
        if matches!(self, Queued::Turn { .. }) {
            // Never refused: a lost turn would leave a shadow's bytes wrongly known.
            return 0;
        }
        std::mem::size_of::<Queued>()
            + match self {
                Queued::Hit {
                    hit,
                    unwind_stopped,
                    ..
                } => hit.callchain.len() * 8 + unwind_stopped.as_ref().map_or(0, String::len),
                Queued::Record {
                    record,
                    unwind_stopped,
                    ..
                } => {
                    (record.stack.len() + record.kernel_stack.len()) * 8
                        + unwind_stopped.as_ref().map_or(0, String::len)
                }
                Queued::Counts(counts) => {
                    counts.len() * std::mem::size_of::<(CountKey, usize, u64)>()
                }
                Queued::Comm { comm, .. } => comm.len(),
                Queued::Progress { counts, .. } => counts.len() * 8,
                Queued::Fork { .. } | Queued::Notice(_) | Queued::Turn { .. } => 0,
            }
    }
}

/// A record as the drain thread sorts it (rings are per CPU, so a poll interleaves CPUs).
pub(super) enum Sampled {
    Hit(session::Hit),
    Record(HandlerRecord),
    Comm {
        tid: i32,
        comm: String,
        time_ns: u64,
    },
    Fork {
        tid: i32,
        ppid: i32,
        ptid: i32,
        time_ns: u64,
    },
    /// A rotation move's end or start of a piece's turn ([`Queued::Turn`]).
    Turn {
        piece: usize,
        armed: bool,
        seed: Option<u64>,
        time_ns: u64,
    },
}

impl Sampled {
    /// Sort key: a name with no time applies before the hits it came with.
    pub(super) fn time_ns(&self) -> u64 {
        match self {
            Sampled::Hit(hit) => hit.time_ns,
            Sampled::Record(record) => record.time_ns,
            Sampled::Comm { time_ns, .. }
            | Sampled::Fork { time_ns, .. }
            | Sampled::Turn { time_ns, .. } => *time_ns,
        }
    }

    pub(super) fn keep(record: Record, batch: &mut Vec<Sampled>) {
        match record {
            Record::Hit(hit) => batch.push(Sampled::Hit(hit)),
            Record::Comm {
                tid, comm, time_ns, ..
            } => batch.push(Sampled::Comm {
                tid,
                comm,
                time_ns: time_ns.unwrap_or(0),
            }),
            Record::Fork {
                tid,
                ppid,
                ptid,
                time_ns,
                ..
            } => batch.push(Sampled::Fork {
                tid,
                ppid,
                ptid,
                time_ns,
            }),
            Record::Lost { .. } | Record::Throttle | Record::Unthrottle => {}
        }
    }
}

/// Why the caller's side asked the drain thread to end.
pub(super) const CONSUMER_RUNNING: u8 = 0;
pub(super) const CONSUMER_MAX_HITS: u8 = 1;
pub(super) const CONSUMER_BREAK: u8 = 2;
pub(super) const CONSUMER_FAILED: u8 = 3;

/// What the drain thread hands back at the end.
pub(super) struct DrainEnd {
    pub(super) placement: PiecePlacement,
    pub(super) ended_by: EndedBy,
    pub(super) lost_records: u64,
    pub(super) throttled: u64,
    pub(super) dropped: u64,
    pub(super) duration: Duration,
    pub(super) handler: Option<HandlerTotals>,
}

/// Closes the queue however the drain thread ends, so the caller's thread never waits forever.
pub(super) struct CloseOnDrop<'a, T>(pub(super) &'a HitQueue<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}
