//! Sharing too few debug registers among many watch pieces: pinned pieces keep a register,
//! flexible pieces take turns on the registers left over.
//!
//! This is the seed design of hw-breakpoints on perf counters (the 2009 LKML thread, commit
//! 24f1e32c60c4) brought to user space: pinned events are guaranteed a slot, flexible ones
//! are multiplexed, and while any flexible piece exists at least one register is kept for the
//! rotation, so pinned pieces must fit in `K - 1` of the `K` free registers (the same rule as
//! [`crate::constraint::Policy::Seed`]). The kernel itself no longer rotates breakpoints
//! (`kernel/events/hw_breakpoint.c` reserves a slot per event at creation and refuses the rest
//! with `ENOSPC`), so the caller rotates: it opens one event per register and re-points it
//! with `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`, which keeps the event, and so its debug-register
//! slot, while changing `bp_addr`/`bp_len`/`bp_type` (`modify_user_hw_breakpoint` in
//! `kernel/events/hw_breakpoint.c`).
//!
//! [`RotationScheduler`] is sans-IO: the caller feeds it the time ([`RotationScheduler::tick`])
//! and carries out the [`Action`]s it returns. It keeps, per piece, the time the piece was
//! watched (`time_enabled`) and the time it was actually on a register (`time_running`), and
//! scales hit counts the way perf scales multiplexed counters (`perf_counts_values__scale` in
//! `tools/perf/util/evsel.c`): `hits * time_enabled / time_running`.
//!
//! # Round robin
//! Flexible pieces stand in a ring; the `R` rotating registers hold a window of `R`
//! consecutive pieces, and every quantum the window slides by `R`. After `n` rotations every
//! flexible piece has been armed either `floor(n*R/F)` or `ceil(n*R/F)` times: the shares
//! differ by at most one quantum.
//!
//! Registers here are logical slots `0..K` of one thread/CPU view (the minimum free count over
//! the views the watch spans); [`plan::RotationPlan`] prints slot `i` as `DRi`. The kernel
//! chooses the physical register when it installs an event (`arch_install_hw_breakpoint` in
//! `arch/x86/kernel/hw_breakpoint.c` takes the first free one).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

pub mod plan;
#[cfg(test)]
mod tests;

pub use plan::RotationPlan;

/// Default rotation quantum: 10 ms. Measured on a 2-vCPU VM (`bench/rotation/RESULTS.md`), a
/// move costs ~33 µs when the watched thread runs on another CPU (two IPIs), so 10 ms keeps the
/// cost to watcher and target near 0.3% per rotating register and thread, while a few seconds
/// still give each of 9 pieces sharing one register 30+ turns.
pub const DEFAULT_QUANTUM_NS: u64 = 10_000_000;

/// Whether a piece keeps a register for the whole watch or shares one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Always armed: never misses a hit (perf's `pinned`).
    Pinned,
    /// Armed in turns on the rotating registers; its count is an estimate.
    Flexible,
}

/// Chooses placements for `pieces` pieces on `free_registers` registers: all pinned while
/// they fit; otherwise (or when `all_flexible`) the overflow becomes flexible, and pinned
/// pieces give up one register for the rotation (the seed rule). The first pieces stay
/// pinned, so the caller orders pieces by priority.
pub fn auto_placements(pieces: usize, free_registers: usize, all_flexible: bool) -> Vec<Placement> {
    let pinned = if all_flexible {
        0
    } else if pieces <= free_registers {
        pieces
    } else {
        free_registers.saturating_sub(1)
    };
    (0..pieces)
        .map(|i| {
            if i < pinned {
                Placement::Pinned
            } else {
                Placement::Flexible
            }
        })
        .collect()
}

/// One change to the debug registers the caller must make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Open (or enable) an event for `piece` on logical register `register`.
    Arm {
        /// Index of the piece, as given to [`RotationScheduler::new`].
        piece: usize,
        /// Logical register slot, `0..K`.
        register: usize,
    },
    /// Re-point the event on `register` from `from_piece` to `to_piece` with
    /// `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`, which keeps the register's slot.
    Move {
        /// Logical register slot, `0..K`.
        register: usize,
        /// Piece armed until now.
        from_piece: usize,
        /// Piece armed from now on.
        to_piece: usize,
    },
    /// Disable (or close) the event of `piece` on `register`.
    Disarm {
        /// Index of the piece.
        piece: usize,
        /// Logical register slot, `0..K`.
        register: usize,
    },
}

/// Why a set of pieces cannot be scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// Pieces to watch but no free register at all.
    NoRegisters {
        /// Pieces asked for.
        pieces: usize,
    },
    /// More pinned pieces than registers they may use.
    TooManyPinned {
        /// Pinned pieces asked for.
        pinned: usize,
        /// Free registers.
        registers: usize,
        /// Whether flexible pieces exist (then one register is kept for them).
        flexible: bool,
    },
    /// A rotation quantum of 0 ns.
    ZeroQuantum,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ScheduleError::NoRegisters { pieces } => write!(
                f,
                "{pieces} watch pieces but no free debug register: stop another \
                 hardware-breakpoint user (gdb, perf) and try again"
            ),
            ScheduleError::TooManyPinned {
                pinned,
                registers,
                flexible: true,
            } => write!(
                f,
                "{pinned} pinned pieces do not fit: {registers} debug registers are free and one \
                 is kept for the flexible pieces' rotation, so at most {} can be pinned; make \
                 the others flexible",
                registers.saturating_sub(1)
            ),
            ScheduleError::TooManyPinned {
                pinned, registers, ..
            } => write!(
                f,
                "{pinned} pinned pieces do not fit in {registers} free debug registers; make \
                 the others flexible (--flexible)"
            ),
            ScheduleError::ZeroQuantum => {
                f.write_str("a rotation period of 0 is not possible: give at least 1 ms")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ScheduleError {}

/// A piece's watched and armed time, in nanoseconds (perf's `time_enabled`/`time_running`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PieceTimes {
    /// Time the piece was being watched (armed or waiting for its turn).
    pub time_enabled: u64,
    /// Time the piece was on a debug register.
    pub time_running: u64,
}

impl PieceTimes {
    /// `time_running / time_enabled`, or `None` before any time has passed.
    pub fn coverage(&self) -> Option<f64> {
        (self.time_enabled != 0).then(|| self.time_running as f64 / self.time_enabled as f64)
    }

    /// The hit count scaled to the whole watched time, see [`scale_count`].
    pub fn estimate(&self, hits_seen: u64) -> Option<u64> {
        scale_count(hits_seen, self.time_enabled, self.time_running)
    }
}

/// perf's multiplexing scale: `hits_seen * time_enabled / time_running`, rounded to the
/// nearest integer; `None` when the piece was never armed (perf prints `<not counted>`).
pub fn scale_count(hits_seen: u64, time_enabled: u64, time_running: u64) -> Option<u64> {
    if time_running == 0 {
        return None;
    }
    let scaled = (u128::from(hits_seen) * u128::from(time_enabled) + u128::from(time_running) / 2)
        / u128::from(time_running);
    Some(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// What the caller reports for one piece: hits seen, times, coverage and scaled estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The piece's placement.
    pub placement: Placement,
    /// Hits the caller saw while the piece was armed.
    pub hits_seen: u64,
    /// Watched and armed time.
    pub times: PieceTimes,
    /// `time_running / time_enabled` (1.0 for pinned pieces).
    pub coverage: Option<f64>,
    /// `hits_seen` scaled to the watched time (equal to `hits_seen` for pinned pieces).
    pub scaled: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running { last_ns: u64, next_rotation_ns: u64 },
    Stopped,
}

/// The rotation scheduler: which piece is on which register, when to rotate, and how long
/// each piece has been armed. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct RotationScheduler {
    placements: Vec<Placement>,
    quantum_ns: u64,
    /// The quantum while some flexible piece has not had its first turn (equal to
    /// `quantum_ns` unless [`RotationScheduler::with_first_round_quantum`] shortened it).
    first_round_quantum_ns: u64,
    /// `slots[r]`: the piece on logical register `r`.
    slots: Vec<Option<usize>>,
    /// `armed_on[p]`: the register piece `p` is on.
    armed_on: Vec<Option<usize>>,
    /// Registers whose piece changes every quantum, in rotation order.
    rotating: Vec<usize>,
    /// Flexible pieces waiting for a turn, next first.
    waiting: VecDeque<usize>,
    times: Vec<PieceTimes>,
    /// Turns (arming) each piece has had, for fairness checks and the plan.
    turns: Vec<u64>,
    phase: Phase,
}

impl RotationScheduler {
    /// Schedules `placements.len()` pieces on `free_registers` registers, rotating flexible
    /// pieces every `quantum_ns`. Pinned pieces get registers `0..P`, flexible ones share the
    /// rest. Fails when pinned pieces do not fit (in `K - 1` registers if any piece is
    /// flexible, else in `K`).
    pub fn new(
        placements: &[Placement],
        free_registers: usize,
        quantum_ns: u64,
    ) -> Result<RotationScheduler, ScheduleError> {
        if quantum_ns == 0 {
            return Err(ScheduleError::ZeroQuantum);
        }
        if !placements.is_empty() && free_registers == 0 {
            return Err(ScheduleError::NoRegisters {
                pieces: placements.len(),
            });
        }
        let pinned = placements
            .iter()
            .filter(|&&p| p == Placement::Pinned)
            .count();
        let flexible = placements.len() - pinned;
        let usable = if flexible > 0 {
            free_registers - 1
        } else {
            free_registers
        };
        if pinned > usable {
            return Err(ScheduleError::TooManyPinned {
                pinned,
                registers: free_registers,
                flexible: flexible > 0,
            });
        }
        let mut slots = alloc::vec![None; free_registers];
        let mut armed_on = alloc::vec![None; placements.len()];
        let mut next_register = 0;
        for (piece, _) in placements
            .iter()
            .enumerate()
            .filter(|(_, &p)| p == Placement::Pinned)
        {
            slots[next_register] = Some(piece);
            armed_on[piece] = Some(next_register);
            next_register += 1;
        }
        let mut waiting = VecDeque::new();
        let mut rotating = Vec::new();
        let flexible_registers = free_registers - pinned;
        for (piece, _) in placements
            .iter()
            .enumerate()
            .filter(|(_, &p)| p == Placement::Flexible)
        {
            if next_register < free_registers {
                slots[next_register] = Some(piece);
                armed_on[piece] = Some(next_register);
                next_register += 1;
            } else {
                waiting.push_back(piece);
            }
        }
        if flexible > flexible_registers {
            rotating.extend(pinned..free_registers);
        }
        Ok(RotationScheduler {
            placements: placements.to_vec(),
            quantum_ns,
            first_round_quantum_ns: quantum_ns,
            slots,
            armed_on,
            rotating,
            waiting,
            times: alloc::vec![PieceTimes::default(); placements.len()],
            turns: alloc::vec![0; placements.len()],
            phase: Phase::NotStarted,
        })
    }

    /// Uses `first_ns` (at most the quantum, at least 1 ns) as the quantum until every flexible
    /// piece has had one turn: a short-lived program (a command that runs for 5 ms) then still
    /// gets each piece watched at least once, at the price of a few more moves at the start.
    pub fn with_first_round_quantum(mut self, first_ns: u64) -> RotationScheduler {
        self.first_round_quantum_ns = first_ns.clamp(1, self.quantum_ns);
        self
    }

    /// The quantum that starts now: the first-round one while a waiting piece never had a turn.
    fn current_quantum(&self) -> u64 {
        if self.waiting.iter().any(|&p| self.turns[p] == 0) {
            self.first_round_quantum_ns
        } else {
            self.quantum_ns
        }
    }

    /// Starts the watch at `now_ns`: arms every pinned piece and the first flexible ones.
    /// Returns no actions if already started.
    pub fn start(&mut self, now_ns: u64) -> Vec<Action> {
        if self.phase != Phase::NotStarted {
            return Vec::new();
        }
        self.phase = Phase::Running {
            last_ns: now_ns,
            next_rotation_ns: now_ns.saturating_add(self.current_quantum()),
        };
        let mut actions = Vec::new();
        for (register, piece) in self.slots.iter().enumerate() {
            if let Some(piece) = *piece {
                self.turns[piece] += 1;
                actions.push(Action::Arm { piece, register });
            }
        }
        actions
    }

    /// Advances the clock to `now_ns` (charging the time since the last call to the pieces),
    /// and rotates if a quantum has passed since the last rotation. A late tick rotates once
    /// and the next quantum starts at `now_ns`. A clock that goes backwards is taken as no
    /// time passing.
    pub fn tick(&mut self, now_ns: u64) -> Vec<Action> {
        let Phase::Running {
            next_rotation_ns, ..
        } = self.phase
        else {
            return Vec::new();
        };
        self.account(now_ns);
        if self.rotating.is_empty() || now_ns < next_rotation_ns {
            return Vec::new();
        }
        let mut actions = Vec::with_capacity(self.rotating.len());
        for &register in &self.rotating {
            let (Some(from_piece), Some(to_piece)) =
                (self.slots[register], self.waiting.pop_front())
            else {
                continue;
            };
            self.waiting.push_back(from_piece);
            self.slots[register] = Some(to_piece);
            self.armed_on[from_piece] = None;
            self.armed_on[to_piece] = Some(register);
            self.turns[to_piece] += 1;
            actions.push(Action::Move {
                register,
                from_piece,
                to_piece,
            });
        }
        let quantum = self.current_quantum();
        if let Phase::Running {
            ref mut next_rotation_ns,
            ..
        } = self.phase
        {
            *next_rotation_ns = now_ns.saturating_add(quantum);
        }
        actions
    }

    /// Ends the watch at `now_ns`: charges the last stretch and disarms every piece.
    pub fn stop(&mut self, now_ns: u64) -> Vec<Action> {
        if !matches!(self.phase, Phase::Running { .. }) {
            self.phase = Phase::Stopped;
            return Vec::new();
        }
        self.account(now_ns);
        self.phase = Phase::Stopped;
        let mut actions = Vec::new();
        for (register, slot) in self.slots.iter_mut().enumerate() {
            if let Some(piece) = slot.take() {
                self.armed_on[piece] = None;
                actions.push(Action::Disarm { piece, register });
            }
        }
        actions
    }

    fn account(&mut self, now_ns: u64) {
        if let Phase::Running {
            ref mut last_ns, ..
        } = self.phase
        {
            let elapsed = now_ns.saturating_sub(*last_ns);
            *last_ns = (*last_ns).max(now_ns);
            for (piece, times) in self.times.iter_mut().enumerate() {
                times.time_enabled += elapsed;
                if self.armed_on[piece].is_some() {
                    times.time_running += elapsed;
                }
            }
        }
    }

    /// When the caller should next call [`tick`](Self::tick), or `None` if nothing rotates
    /// (every piece has a register) or the watch is not running.
    pub fn next_rotation_ns(&self) -> Option<u64> {
        match self.phase {
            Phase::Running {
                next_rotation_ns, ..
            } if !self.rotating.is_empty() => Some(next_rotation_ns),
            _ => None,
        }
    }

    /// The rotation quantum in nanoseconds.
    pub fn quantum_ns(&self) -> u64 {
        self.quantum_ns
    }

    /// Number of pieces.
    pub fn pieces(&self) -> usize {
        self.placements.len()
    }

    /// Number of logical registers.
    pub fn registers(&self) -> usize {
        self.slots.len()
    }

    /// The placement of `piece`.
    pub fn placement(&self, piece: usize) -> Placement {
        self.placements[piece]
    }

    /// The register `piece` is armed on right now, if any.
    pub fn register_of(&self, piece: usize) -> Option<usize> {
        self.armed_on[piece]
    }

    /// The piece on `register` right now, if any. A hit reported by the event on `register`
    /// belongs to this piece.
    pub fn piece_on(&self, register: usize) -> Option<usize> {
        self.slots[register]
    }

    /// The registers that rotate (empty when every flexible piece has its own).
    pub fn rotating_registers(&self) -> &[usize] {
        &self.rotating
    }

    /// How many times `piece` has been armed (1 for pinned pieces once started).
    pub fn turns(&self, piece: usize) -> u64 {
        self.turns[piece]
    }

    /// `piece`'s watched and armed time up to the last `tick`/`stop`.
    pub fn times(&self, piece: usize) -> PieceTimes {
        self.times[piece]
    }

    /// `time_running / time_enabled` for `piece`.
    pub fn coverage(&self, piece: usize) -> Option<f64> {
        self.times[piece].coverage()
    }

    /// `hits_seen * time_enabled / time_running` for `piece` (perf's scaling).
    pub fn estimate(&self, piece: usize, hits_seen: u64) -> Option<u64> {
        self.times[piece].estimate(hits_seen)
    }

    /// Everything to report for `piece`: hits, times, coverage and estimate.
    pub fn report(&self, piece: usize, hits_seen: u64) -> Estimate {
        let times = self.times[piece];
        Estimate {
            placement: self.placements[piece],
            hits_seen,
            times,
            coverage: times.coverage(),
            scaled: times.estimate(hits_seen),
        }
    }

    /// The rotation plan, for `hwbp slots`.
    pub fn plan(&self) -> RotationPlan {
        RotationPlan::of(self)
    }
}
