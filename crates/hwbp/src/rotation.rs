//! [`PiecePlacement`]: how the pieces of every watch share the debug registers, the rotation
//! executor that moves flexible pieces, and the arithmetic of the totals.
//!
//! Pieces are placed by `hwbp_core::sched` (pinned while they fit, the rest flexible, one
//! register kept for the rotation: the seed's rule). The session opens one watch per logical
//! register; every quantum the rotating registers' watches are moved to the next flexible
//! pieces with `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`, which keeps each event and so its slot
//! (`modify_user_hw_breakpoint` in `kernel/events/hw_breakpoint.c`). A sample is charged to
//! the piece whose address it carries (`PERF_SAMPLE_ADDR` is `bp_addr` at the time of the hit,
//! `perf_bp_event`), never to the piece armed when the ring is read. A rotating register's
//! kernel count mixes pieces, so flexible pieces are counted from their samples and scaled by
//! time watched / time armed, as perf scales multiplexed counters. A piece that never had a
//! turn counted nothing: its watch's total is then a lower bound, and says so.

use std::collections::HashMap;
use std::time::Duration;

use hwbp_core::sched::{
    auto_placements, Action, Placement as Sched, RotationPlan, RotationScheduler,
};
use hwbp_linux::perf::WatchRequest;

use crate::error::{Error, Result};
use crate::hit::WatchId;
use crate::plan::{PlanOptions, PlannedWatch};
use crate::summary::{Placement, WatchTotals};

/// Where every piece of a plan goes; see the module docs.
#[derive(Debug)]
pub struct PiecePlacement {
    sched: RotationScheduler,
    /// Every piece of every watch, in plan order.
    pieces: Vec<WatchRequest>,
    /// Piece -> (watch, index of the piece in its watch).
    owner: Vec<(WatchId, usize)>,
    /// Piece -> the register it keeps for the whole run (pinned, or flexible with a register
    /// of its own); `None` for rotating pieces.
    fixed_register: Vec<Option<usize>>,
    /// Register -> the piece it keeps for the whole run; `None` for rotating registers.
    register_piece: Vec<Option<usize>>,
    /// Rotating pieces by address, to charge a sample to the piece it was taken for.
    rotating_by_addr: HashMap<u64, usize>,
    /// Samples received per piece.
    hits_seen: Vec<u64>,
    /// Kernel counts per register, read at the end.
    register_counts: Vec<u64>,
    /// Set when a move failed: rotation stopped there (the times stopped with it).
    rotation_stopped: bool,
    /// The flexible mode was asked for (`--flexible`), not forced by the register count.
    flexible_asked: bool,
    /// The (ended, started) pieces of the moves made since [`PiecePlacement::take_moves`].
    moves: Vec<(usize, usize)>,
}

impl PiecePlacement {
    /// Places the pieces of `watches` on `free` debug registers (`None`: the kernel would not
    /// say, so one pinned event per piece, and the kernel's refusal, if any, names what is full).
    #[cfg(test)]
    pub(crate) fn new(
        watches: &[PlannedWatch],
        free: Option<usize>,
        options: &PlanOptions,
    ) -> Result<PiecePlacement> {
        PiecePlacement::with_first_round(watches, free, options, None)
    }

    /// As [`new`](Self::new), with turns of `first_round_ns` until every flexible piece has
    /// had one (for a command hwbp launched, which may end within a few quanta).
    pub(crate) fn with_first_round(
        watches: &[PlannedWatch],
        free: Option<usize>,
        options: &PlanOptions,
        first_round_ns: Option<u64>,
    ) -> Result<PiecePlacement> {
        let mut pieces = Vec::new();
        let mut owner = Vec::new();
        for w in watches {
            for (i, piece) in w.pieces.iter().enumerate() {
                pieces.push(*piece);
                owner.push((w.id, i));
            }
        }
        let n = pieces.len();
        let quantum_ns = options.rotate_ms.saturating_mul(1_000_000);
        let (placements, registers) = match free {
            Some(free) if free > 0 && (options.flexible || n > free) => {
                (auto_placements(n, free, options.flexible), free)
            }
            _ => (vec![Sched::Pinned; n], n),
        };
        let mut sched = RotationScheduler::new(&placements, registers, quantum_ns)
            .map_err(|e| Error::bad_input(e.to_string()))?;
        if let Some(first) = first_round_ns {
            sched = sched.with_first_round_quantum(first);
        }
        let rotating = sched.rotating_registers().to_vec();
        let register_piece: Vec<Option<usize>> = (0..registers)
            .map(|r| {
                if rotating.contains(&r) {
                    None
                } else {
                    sched.piece_on(r)
                }
            })
            .collect();
        let mut fixed_register = vec![None; n];
        for (r, piece) in register_piece.iter().enumerate() {
            if let Some(piece) = piece {
                fixed_register[*piece] = Some(r);
            }
        }
        let mut rotating_by_addr = HashMap::new();
        for piece in (0..n).filter(|&p| fixed_register[p].is_none()) {
            rotating_by_addr.entry(pieces[piece].addr).or_insert(piece);
        }
        Ok(PiecePlacement {
            sched,
            pieces,
            owner,
            fixed_register,
            register_piece,
            rotating_by_addr,
            hits_seen: vec![0; n],
            register_counts: vec![0; registers],
            rotation_stopped: false,
            flexible_asked: options.flexible,
            moves: Vec::new(),
        })
    }

    /// Every piece, in plan order.
    pub(crate) fn pieces(&self) -> &[WatchRequest] {
        &self.pieces
    }

    /// The watch of piece `piece`, and the piece's index in that watch.
    pub(crate) fn owner(&self, piece: usize) -> (WatchId, usize) {
        self.owner[piece]
    }

    /// The register piece `piece` keeps for the whole run, `None` for a rotating piece.
    pub(crate) fn register_of(&self, piece: usize) -> Option<usize> {
        self.fixed_register[piece]
    }

    /// The session's watches: register `r`'s first piece, for every register that has one.
    pub(crate) fn session_requests(&self) -> Vec<WatchRequest> {
        (0..self.sched.registers())
            .map_while(|r| self.sched.piece_on(r).map(|p| self.pieces[p]))
            .collect()
    }

    /// True when every piece keeps its own register for the whole run.
    pub(crate) fn is_static(&self) -> bool {
        self.fixed_register.iter().all(Option::is_some)
    }

    /// The rotation plan (for `hwbp slots` and the notice).
    pub fn plan(&self) -> RotationPlan {
        self.sched.plan()
    }

    /// The one-line notice when some pieces are flexible, `None` when all are pinned.
    pub(crate) fn notice(&self) -> Option<String> {
        if self.is_static()
            && (0..self.pieces.len()).all(|p| self.sched.placement(p) == Sched::Pinned)
        {
            return None;
        }
        let why = if self.flexible_asked {
            "--flexible".to_string()
        } else {
            format!(
                "{} pieces for {} free debug registers",
                self.pieces.len(),
                self.sched.registers()
            )
        };
        Some(format!(
            "{why}: {}; flexible counts are estimates",
            self.plan()
        ))
    }

    /// Starts the accounting of armed time (the session's watches are the pieces `start` arms).
    pub(crate) fn start(&mut self, now_ns: u64) {
        let _ = self.sched.start(now_ns);
    }

    /// How long the run loop may wait before the next rotation is due.
    pub(crate) fn time_to_rotation(&self, now_ns: u64) -> Duration {
        match self.sched.next_rotation_ns() {
            Some(next) if !self.rotation_stopped => {
                Duration::from_nanos(next.saturating_sub(now_ns))
            }
            _ => Duration::MAX,
        }
    }

    /// Rotates if a quantum has passed: calls `modify(register, piece)` for every rotating
    /// register. If a move fails, rotation stops there (the estimates then cover the time until
    /// now) and the error is returned for a notice.
    pub(crate) fn rotate<E>(
        &mut self,
        now_ns: u64,
        mut modify: impl FnMut(usize, &WatchRequest) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if self.rotation_stopped {
            return Ok(());
        }
        for action in self.sched.tick(now_ns) {
            if let Action::Move {
                register,
                from_piece,
                to_piece,
            } = action
            {
                if let Err(error) = modify(register, &self.pieces[to_piece]) {
                    let _ = self.sched.stop(now_ns);
                    self.rotation_stopped = true;
                    return Err(error);
                }
                self.moves.push((from_piece, to_piece));
            }
        }
        Ok(())
    }

    /// The (ended, started) pieces of every move [`rotate`](Self::rotate) made since the
    /// last call.
    pub(crate) fn take_moves(&mut self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.moves)
    }

    /// True when piece `piece` is on a register now.
    pub(crate) fn is_armed(&self, piece: usize) -> bool {
        (0..self.sched.registers()).any(|r| self.sched.piece_on(r) == Some(piece))
    }

    /// Ends the accounting of armed time.
    pub(crate) fn stop(&mut self, now_ns: u64) {
        let _ = self.sched.stop(now_ns);
    }

    /// The piece a sample on session watch `register` at breakpoint address `addr` belongs to:
    /// the register's own piece, or for a rotating register the flexible piece at that
    /// address. Counts it as seen.
    pub(crate) fn charge_hit(&mut self, register: usize, addr: u64) -> usize {
        let piece = if let Some(Some(piece)) = self.register_piece.get(register) {
            *piece
        } else if let Some(&piece) = self.rotating_by_addr.get(&addr) {
            piece
        } else {
            // Not expected: a rotating register's sample without a known address.
            self.sched.piece_on(register).unwrap_or(0)
        };
        self.hits_seen[piece] += 1;
        piece
    }

    /// Counts one hit of piece `piece` as seen (a record of the in-kernel handler, which
    /// names the piece by its address, `ctx->addr`).
    pub(crate) fn charge_piece(&mut self, piece: usize) {
        self.hits_seen[piece] += 1;
    }

    /// Sets the hits seen of piece `piece` (the in-kernel handler's count map, which holds
    /// every count since arming).
    pub(crate) fn set_seen(&mut self, piece: usize, seen: u64) {
        self.hits_seen[piece] = seen;
    }

    /// Records the kernel's count of `register` at the end.
    pub(crate) fn register_count(&mut self, register: usize, count: u64) {
        if let Some(slot) = self.register_counts.get_mut(register) {
            *slot += count;
        }
    }

    /// Hits so far per watch (`watches` of them): the exact counts where every piece keeps a
    /// register (`register_counts` given, per session watch), else the hits seen.
    pub(crate) fn progress_counts(
        &self,
        watches: usize,
        register_counts: Option<&[u64]>,
    ) -> Vec<u64> {
        let mut counts = vec![0; watches];
        for (p, &(watch, _)) in self.owner.iter().enumerate() {
            counts[watch.0] += match (register_counts, self.fixed_register[p]) {
                (Some(kernel), Some(r)) if self.is_static() => kernel.get(r).copied().unwrap_or(0),
                _ => self.hits_seen[p],
            };
        }
        counts
    }

    /// The totals of `watch`: `reported` is the hits delivered per piece (all pieces, plan
    /// order), `max_hits` whether the run stopped at a hit limit (then nothing is "lost"),
    /// `ran_for` how long the run was armed.
    pub(crate) fn totals(
        &self,
        watch: &PlannedWatch,
        reported: &[u64],
        max_hits: bool,
        ran_for: Duration,
    ) -> WatchTotals {
        let mine: Vec<usize> = (0..self.pieces.len())
            .filter(|&p| self.owner[p].0 == watch.id)
            .collect();
        let flexible: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&p| self.sched.placement(p) == Sched::Flexible)
            .collect();
        let exact_count = |p: usize| self.fixed_register[p].map(|r| self.register_counts[r]);
        let counted = |p: usize| exact_count(p).unwrap_or(self.hits_seen[p]);
        let hits: u64 = mine.iter().map(|&p| counted(p)).sum();
        let reported_total: u64 = mine.iter().map(|&p| reported[p]).sum();
        let exact_hits: u64 = mine.iter().filter_map(|&p| exact_count(p)).sum();
        let exact_reported: u64 = mine
            .iter()
            .filter(|&&p| exact_count(p).is_some())
            .map(|&p| reported[p])
            .sum();
        let placement = match (flexible.len(), mine.len()) {
            (0, _) => Placement::Pinned,
            (f, all) if f == all => Placement::Flexible,
            _ => Placement::Mixed,
        };
        let never: Vec<usize> = mine
            .iter()
            .copied()
            .filter(|&p| self.fixed_register[p].is_none() && self.sched.turns(p) == 0)
            .collect();
        let (hits_seen, coverage, estimate) = if flexible.is_empty() {
            (None, None, None)
        } else {
            let seen: u64 = flexible.iter().map(|&p| counted(p)).sum();
            let (enabled, running) = flexible.iter().fold((0u64, 0u64), |(e, r), &p| {
                let t = self.sched.times(p);
                (e + t.time_enabled, r + t.time_running)
            });
            let coverage = if enabled == 0 {
                0.0
            } else {
                running as f64 / enabled as f64
            };
            let estimate = mine.iter().try_fold(0u64, |sum, &p| {
                let piece_estimate = match exact_count(p) {
                    Some(exact) => Some(exact),
                    None => self.sched.estimate(p, self.hits_seen[p]),
                };
                piece_estimate.map(|e| sum + e)
            });
            (Some(seen), Some(coverage), estimate)
        };
        let never_armed = never_armed_members(watch, &never, &self.owner);
        let never_armed_reason = (!never.is_empty()).then(|| {
            if self.rotation_stopped {
                "rotation stopped before their turn".to_string()
            } else {
                format!(
                    "the run ended after {} ms, before their first turn on a register ({} ms \
                     each, {} pieces taking turns)",
                    ran_for.as_millis(),
                    self.sched.quantum_ns() / 1_000_000,
                    self.rotating_by_addr.len()
                )
            }
        });
        WatchTotals {
            id: watch.id,
            watch: watch.label.to_string(),
            address: format!("{:#x}", watch.addr),
            len: watch.len,
            hits: hits.max(reported_total),
            reported: reported_total,
            lost: if max_hits {
                0
            } else {
                exact_hits.saturating_sub(exact_reported)
            },
            placement,
            hits_seen,
            coverage,
            estimate,
            lower_bound: !never.is_empty(),
            never_armed,
            never_armed_reason,
        }
    }

    /// One line per piece for `hwbp slots SPEC...`: where it goes and what it watches.
    pub fn piece_lines(&self, watches: &[PlannedWatch]) -> Vec<String> {
        let rotating: Vec<String> = self
            .sched
            .rotating_registers()
            .iter()
            .map(|r| format!("DR{r}"))
            .collect();
        (0..self.pieces.len())
            .map(|p| {
                let (id, index) = self.owner[p];
                let watch = &watches[id.0];
                let request = &self.pieces[p];
                let pointer = watch.chain.as_ref().and_then(|c| c.pointer_name(index));
                let what = match (pointer, watch.piece_member(index)) {
                    (Some(name), _) => format!("{} (pointer {name})", watch.label),
                    (None, Some(member)) => format!("{} {member}", watch.label),
                    (None, None) => watch.label.to_string(),
                };
                let (placement, registers) = match (self.sched.placement(p), self.fixed_register[p])
                {
                    (Sched::Pinned, Some(r)) => ("pinned", format!("DR{r}")),
                    (Sched::Flexible, Some(r)) => ("flexible", format!("DR{r}")),
                    (_, None) => ("flexible", rotating.join(",")),
                };
                format!(
                    "  {registers:<8} {placement:<9} {what} ({:#x}, {} bytes)",
                    request.addr, request.len
                )
            })
            .collect()
    }
}

/// The member names of pieces `never` (all of one watch), merged where consecutive pieces
/// name the same member (`cfg.name` split in two pieces is listed once).
fn never_armed_members(
    watch: &PlannedWatch,
    never: &[usize],
    owner: &[(WatchId, usize)],
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for &p in never {
        let name = watch
            .piece_member(owner[p].1)
            .unwrap_or_else(|| watch.label.to_string());
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwbp_core::Access;

    fn watch(id: usize, addr: u64, pieces: usize) -> PlannedWatch {
        let requests = (0..pieces)
            .map(|i| WatchRequest::new(addr + 8 * i as u64, 8, Access::Write))
            .collect();
        let len = 8 * pieces as u64;
        PlannedWatch::untyped(
            WatchId(id),
            &format!("w{id}"),
            (addr, len),
            Access::Write,
            requests,
        )
    }

    fn options(rotate_ms: u64) -> PlanOptions {
        PlanOptions {
            rotate_ms,
            ..PlanOptions::default()
        }
    }

    #[test]
    fn pieces_that_fit_are_pinned_and_exact() {
        let watches = [watch(0, 0x1000, 1), watch(1, 0x2000, 2)];
        let mut placement = PiecePlacement::new(&watches, Some(4), &options(10)).unwrap();
        assert!(placement.is_static());
        assert_eq!(placement.notice(), None);
        assert_eq!(placement.session_requests().len(), 3);
        placement.start(0);
        assert_eq!(placement.charge_hit(2, 0x2008), 2);
        for (r, count) in [(0, 10), (1, 4), (2, 5)] {
            placement.register_count(r, count);
        }
        placement.stop(1_000_000);
        let reported = [10, 4, 4];
        let t0 = placement.totals(&watches[0], &reported, false, Duration::from_millis(1));
        assert_eq!((t0.hits, t0.reported, t0.lost), (10, 10, 0));
        assert_eq!(t0.placement, Placement::Pinned);
        let t1 = placement.totals(&watches[1], &reported, false, Duration::from_millis(1));
        assert_eq!((t1.hits, t1.reported, t1.lost), (9, 8, 1));
        assert!(!t1.lower_bound);
        assert_eq!(placement.progress_counts(2, Some(&[10, 4, 5])), vec![10, 9]);
    }

    #[test]
    fn a_piece_that_never_had_a_turn_makes_the_total_a_lower_bound() {
        // Six pieces on two free registers: one pinned, five taking turns on the other.
        let watches = [watch(0, 0x1000, 6)];
        let mut placement = PiecePlacement::new(&watches, Some(2), &options(10)).unwrap();
        assert!(!placement.is_static());
        assert!(placement
            .notice()
            .unwrap()
            .contains("6 pieces for 2 free debug registers"));
        placement.start(0);
        // Two turns (20 ms): pieces 1 and 2 armed, 3..5 never.
        let mut moves = Vec::new();
        placement
            .rotate(10_000_000, |r, piece| {
                moves.push((r, piece.addr));
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(moves, vec![(1, 0x1010)]);
        assert_eq!(placement.charge_hit(1, 0x1010), 2);
        placement.stop(15_000_000);
        placement.register_count(0, 7);
        let totals = placement.totals(
            &watches[0],
            &[7, 0, 1, 0, 0, 0],
            false,
            Duration::from_millis(15),
        );
        assert_eq!(totals.placement, Placement::Mixed);
        assert!(totals.lower_bound);
        assert_eq!(totals.never_armed, vec!["+0x18", "+0x20", "+0x28"]);
        assert_eq!(totals.hits, 8);
        assert_eq!(totals.estimate, None);
        let reason = totals.never_armed_reason.clone().unwrap();
        assert!(reason.contains("ended after 15 ms"), "{reason}");
        assert_eq!(totals.hits_text(), ">=8");
    }

    #[test]
    fn a_failed_move_stops_rotation_and_says_why_pieces_were_never_armed() {
        let watches = [watch(0, 0x1000, 3)];
        let mut placement = PiecePlacement::new(&watches, Some(1), &options(1)).unwrap();
        placement.start(0);
        assert_eq!(
            placement.rotate(1_000_000, |_, _| Err("EBUSY")),
            Err("EBUSY")
        );
        assert_eq!(placement.time_to_rotation(1_000_000), Duration::MAX);
        placement.stop(2_000_000);
        let totals = placement.totals(&watches[0], &[0, 0, 0], false, Duration::from_millis(2));
        assert_eq!(
            totals.never_armed_reason.as_deref(),
            Some("rotation stopped before their turn")
        );
    }
}
