//! The value chains of a perf-mode run ([`crate::plan::chain`]): which placement pieces are a
//! chain's pointers, and moving the chain's pieces when one of them fires.

use std::sync::Arc;

use hwbp_linux::perf::WatchRequest;

use crate::error::{Error, Result};
use crate::hit::WatchId;
use crate::plan::chain::ValueChain;
use crate::plan::WatchPlan;
use crate::rotation::PiecePlacement;

/// The chains of a perf-mode run, moved by the drain thread when a pointer piece fires.
pub(crate) struct PerfChains {
    /// (watch, its first piece's index in the placement, the chain).
    chains: Vec<(WatchId, usize, Arc<ValueChain>)>,
}

impl PerfChains {
    /// The chains of `plan`; refuses a chain whose pieces would rotate (a moved register must
    /// stay the piece's).
    pub(crate) fn new(plan: &WatchPlan, placement: &PiecePlacement) -> Result<PerfChains> {
        let mut chains = Vec::new();
        let mut first = 0;
        for w in &plan.watches {
            if let Some(chain) = &w.chain {
                if !placement.is_static() {
                    return Err(Error::bad_input(format!(
                        "watch '{}': its value chain needs all {} pieces (value and pointers) \
                         on registers of their own, but the plan rotates pieces: watch fewer \
                         things at once, or use -l/--location to watch the current address only",
                        w.label,
                        w.pieces.len()
                    )));
                }
                chains.push((w.id, first, Arc::clone(chain)));
            }
            first += w.pieces.len();
        }
        Ok(PerfChains { chains })
    }

    /// A hit on placement piece `piece` of process `pid`: when it is a chain's pointer,
    /// re-evaluates and moves the chain's pieces (`modify(piece, request)`).
    pub(crate) fn on_hit<E>(
        &self,
        piece: usize,
        pid: i32,
        mut modify: impl FnMut(usize, &WatchRequest) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for (_, first, chain) in &self.chains {
            let Some(index) = piece.checked_sub(*first) else {
                continue;
            };
            if index >= chain.value_pieces + chain.pointer_names.len()
                || !chain.is_pointer_piece(index)
            {
                continue;
            }
            if let Some(point) = chain.reevaluate(pid) {
                for (i, request) in chain.move_to(point).unwrap_or_default() {
                    modify(first + i, &request)?;
                }
            }
        }
        Ok(())
    }
}
