//! The rotation plan in words, for `hwbp slots`: which pieces are pinned on which registers,
//! which registers rotate, how often, and what share of the time each flexible piece is armed.

use alloc::vec::Vec;
use core::fmt;

use super::{Placement, RotationScheduler};

/// A snapshot of how a [`RotationScheduler`] uses its registers.
///
/// Displays as, e.g., `3 pinned on DR0-DR2; 9 flexible rotating on DR3 every 10 ms, each armed
/// 1/9 of the time`. Registers are logical slots shown as `DRi` (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationPlan {
    /// `(piece, register)` for every pinned piece.
    pub pinned: Vec<(usize, usize)>,
    /// Flexible pieces with a register of their own (no rotation needed): `(piece, register)`.
    pub flexible_fixed: Vec<(usize, usize)>,
    /// Flexible pieces that take turns.
    pub rotating_pieces: Vec<usize>,
    /// Registers they take turns on.
    pub rotating_registers: Vec<usize>,
    /// Logical registers with nothing on them.
    pub idle_registers: Vec<usize>,
    /// The rotation quantum in nanoseconds.
    pub quantum_ns: u64,
}

impl RotationPlan {
    pub(super) fn of(sched: &RotationScheduler) -> RotationPlan {
        let mut plan = RotationPlan {
            pinned: Vec::new(),
            flexible_fixed: Vec::new(),
            rotating_pieces: Vec::new(),
            rotating_registers: sched.rotating_registers().to_vec(),
            idle_registers: Vec::new(),
            quantum_ns: sched.quantum_ns(),
        };
        for piece in 0..sched.pieces() {
            match (sched.placement(piece), plan.rotating_registers.is_empty()) {
                (Placement::Pinned, _) => {
                    if let Some(register) = sched.register_of(piece) {
                        plan.pinned.push((piece, register));
                    }
                }
                (Placement::Flexible, false) => plan.rotating_pieces.push(piece),
                (Placement::Flexible, true) => {
                    if let Some(register) = sched.register_of(piece) {
                        plan.flexible_fixed.push((piece, register));
                    }
                }
            }
        }
        plan.pinned.sort_by_key(|&(_, r)| r);
        plan.flexible_fixed.sort_by_key(|&(_, r)| r);
        plan.idle_registers = (0..sched.registers())
            .filter(|&r| sched.piece_on(r).is_none() && !plan.rotating_registers.contains(&r))
            .collect();
        plan
    }

    /// The share of the time each rotating piece is armed, as a reduced fraction
    /// `(registers, pieces)`; `(1, 1)` when nothing rotates.
    pub fn share(&self) -> (u64, u64) {
        if self.rotating_pieces.is_empty() {
            return (1, 1);
        }
        let num = self.rotating_registers.len() as u64;
        let den = self.rotating_pieces.len() as u64;
        let g = gcd(num, den);
        (num / g, den / g)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// `DR0-DR2`, `DR3`, or `DR0, DR2` for non-consecutive registers.
struct RegisterList<'a>(&'a [usize]);

impl fmt::Display for RegisterList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regs = self.0;
        let consecutive = regs.windows(2).all(|w| w[1] == w[0] + 1);
        match regs {
            [] => f.write_str("no register"),
            [only] => write!(f, "DR{only}"),
            [first, .., last] if consecutive => write!(f, "DR{first}-DR{last}"),
            _ => {
                for (i, r) in regs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "DR{r}")?;
                }
                Ok(())
            }
        }
    }
}

/// A duration in the largest unit that shows it exactly: `10 ms`, `250 us`, `1 s`.
struct Quantum(u64);

impl fmt::Display for Quantum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns.is_multiple_of(1_000_000_000) {
            write!(f, "{} s", ns / 1_000_000_000)
        } else if ns.is_multiple_of(1_000_000) {
            write!(f, "{} ms", ns / 1_000_000)
        } else if ns.is_multiple_of(1_000) {
            write!(f, "{} us", ns / 1_000)
        } else {
            write!(f, "{ns} ns")
        }
    }
}

impl fmt::Display for RotationPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = 0;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            parts += 1;
            if parts > 1 {
                f.write_str("; ")
            } else {
                Ok(())
            }
        };
        if !self.pinned.is_empty() {
            sep(f)?;
            let regs: Vec<usize> = self.pinned.iter().map(|&(_, r)| r).collect();
            write!(f, "{} pinned on {}", self.pinned.len(), RegisterList(&regs))?;
        }
        if !self.flexible_fixed.is_empty() {
            sep(f)?;
            let regs: Vec<usize> = self.flexible_fixed.iter().map(|&(_, r)| r).collect();
            write!(
                f,
                "{} flexible on {}, always armed (enough registers, no rotation)",
                self.flexible_fixed.len(),
                RegisterList(&regs)
            )?;
        }
        if !self.rotating_pieces.is_empty() {
            sep(f)?;
            let (num, den) = self.share();
            write!(
                f,
                "{} flexible rotating on {} every {}, each armed {num}/{den} of the time",
                self.rotating_pieces.len(),
                RegisterList(&self.rotating_registers),
                Quantum(self.quantum_ns)
            )?;
        }
        if !self.idle_registers.is_empty() {
            sep(f)?;
            write!(f, "{} free", RegisterList(&self.idle_registers))?;
        }
        if parts == 0 {
            f.write_str("nothing to watch")?;
        }
        Ok(())
    }
}
