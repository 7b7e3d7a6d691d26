//! gdb's value chain for watch expressions that go through pointers (`cur->state`, `*head`,
//! `a->b->c`): besides the value, every pointer the expression read is watched; when one of
//! them is written, the expression is evaluated again, the value's pieces move to the new
//! address and the change of the expression's value is reported, as gdb's `watch` does
//! (`update_watchpoint` re-evaluates the chain after any of its locations changes). A NULL
//! pointer on the way leaves the value unreadable (`<unreadable> -> 1` when it is set), and a
//! write through the object the expression no longer names is not reported: its register has
//! moved.
//!
//! The number and sizes of the pieces are fixed when the plan is built, so the kernel never
//! has to find a new register mid-run (perf mode moves each piece's event with
//! `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`, stop mode rewrites every thread's debug registers).
//! While a pointer is NULL (or points at unreadable memory) its targets are evaluated at
//! [`PHANTOM`], an address below `mmap_min_addr` that no program maps, and the pieces wait
//! there. `-l/--location` ([`crate::PlanOptions::location`]) evaluates once and has no chain.

use std::sync::{Arc, Mutex};

use hwbp_linux::memory;
use hwbp_linux::perf::WatchRequest;
use hwbp_symbols::eval::{evaluate, EvalError, Evaluated, LoadedModule, Scope};
use hwbp_symbols::expr::Expr;
use hwbp_symbols::ProcessSymbols;

use crate::typed::WatchType;

/// Where a NULL pointer's target is evaluated: page 1, below every `mmap_min_addr`, so a
/// watch parked there never fires.
pub const PHANTOM: u64 = 0x1000;
/// End of the parking area: `mmap_min_addr`'s smallest value (64 KiB).
const PHANTOM_END: u64 = 0x10000;

fn is_phantom(addr: u64) -> bool {
    (PHANTOM..PHANTOM_END).contains(&addr)
}

/// Where the chain's locations are at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPoint {
    /// The value's address (in the parking area while a pointer on the way is NULL).
    pub value_addr: u64,
    /// The address of each pointer read, in order.
    pub pointers: Vec<u64>,
}

impl ChainPoint {
    /// False while a pointer on the way is NULL or unreadable.
    pub fn readable(&self) -> bool {
        !is_phantom(self.value_addr)
    }
}

/// An expression through pointers, with what it takes to evaluate it again.
#[derive(Debug)]
pub struct ValueChain {
    expr: Expr,
    modules: Vec<LoadedModule>,
    symbols: Option<Arc<ProcessSymbols>>,
    /// The layout the value's pieces follow.
    layout: Option<Arc<WatchType>>,
    /// The value's length.
    len: u64,
    /// Access and flags every piece has.
    template: WatchRequest,
    /// The expression of each pointer (`cur`, `cur->peer`).
    pub pointer_names: Vec<Arc<str>>,
    /// How many of the watch's pieces are the value's (the rest are the pointers).
    pub value_pieces: usize,
    /// Where the locations are now.
    pub point: Mutex<ChainPoint>,
}

/// Evaluates `expr` as the chain sees it: a NULL or unreadable pointer reads as [`PHANTOM`]
/// (so the shape of the rest is known), and the parking area reads as zeros.
pub(crate) fn evaluate_shape(
    expr: &Expr,
    scope: &Scope<'_>,
    pid: i32,
) -> std::result::Result<(Evaluated, ChainPoint), EvalError> {
    let mut read = |addr: u64, buf: &mut [u8]| {
        let ok = !is_phantom(addr) && memory::read_memory(pid, addr, buf).is_ok();
        if !ok || buf.iter().all(|b| *b == 0) {
            buf.fill(0);
            if buf.len() == 8 {
                buf.copy_from_slice(&PHANTOM.to_le_bytes());
            }
        }
        true
    };
    let evaluated = evaluate(expr, scope, &mut read)?;
    let point = ChainPoint {
        value_addr: evaluated.addr,
        pointers: evaluated.pointer_reads.iter().map(|r| r.addr).collect(),
    };
    Ok((evaluated, point))
}

impl ValueChain {
    /// The chain of `expr`, evaluated now to `point`; `None` when the expression reads no
    /// pointer (a fixed address needs no chain).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        expr: Expr,
        modules: Vec<LoadedModule>,
        symbols: Option<Arc<ProcessSymbols>>,
        evaluated: &Evaluated,
        point: ChainPoint,
        template: WatchRequest,
        value_pieces: usize,
    ) -> Option<ValueChain> {
        if point.pointers.is_empty() {
            return None;
        }
        Some(ValueChain {
            expr,
            modules,
            symbols,
            layout: crate::plan::expression_layout(evaluated),
            len: evaluated.len,
            template,
            pointer_names: evaluated
                .pointer_exprs
                .iter()
                .map(|e| Arc::from(e.as_str()))
                .collect(),
            value_pieces,
            point: Mutex::new(point),
        })
    }

    /// Evaluates the expression again in process `pid`.
    pub fn reevaluate(&self, pid: i32) -> Option<ChainPoint> {
        let scope = Scope {
            modules: &self.modules,
            symbols: self.symbols.as_deref(),
        };
        evaluate_shape(&self.expr, &scope, pid)
            .ok()
            .map(|(_, point)| point)
    }

    /// The pieces for `point`: the value's, split as the plan split them, then one per
    /// pointer. `None` when the value at its new address needs a different number of pieces
    /// (a misaligned object): the watch then stays where it was.
    pub fn requests(&self, point: &ChainPoint) -> Option<Vec<WatchRequest>> {
        let pieces = super::value_pieces(
            point.value_addr,
            self.len,
            self.layout.as_deref(),
            self.template.access,
        )
        .ok()?;
        if pieces.len() != self.value_pieces {
            return None;
        }
        let piece = |(addr, len): (u64, u64)| WatchRequest {
            addr,
            len,
            ..self.template
        };
        Some(
            pieces
                .into_iter()
                .chain(point.pointers.iter().map(|&p| (p, 8)))
                .map(piece)
                .collect(),
        )
    }

    /// The current point.
    pub fn current(&self) -> ChainPoint {
        self.point.lock().expect("chain point lock").clone()
    }

    /// Moves to `point`: returns the pieces to re-arm (index in the watch, new request) when
    /// any location changed, else `None`.
    pub fn move_to(&self, point: ChainPoint) -> Option<Vec<(usize, WatchRequest)>> {
        let mut current = self.point.lock().expect("chain point lock");
        if *current == point {
            return None;
        }
        let old = self.requests(&current)?;
        let new = self.requests(&point)?;
        *current = point;
        Some(
            new.into_iter()
                .enumerate()
                .filter(|(i, r)| old[*i] != *r)
                .collect(),
        )
    }

    /// True for a piece (index in the watch) that watches a pointer of the chain.
    pub fn is_pointer_piece(&self, piece: usize) -> bool {
        piece >= self.value_pieces
    }

    /// The name of pointer piece `piece` (index in the watch).
    pub fn pointer_name(&self, piece: usize) -> Option<Arc<str>> {
        piece
            .checked_sub(self.value_pieces)
            .and_then(|i| self.pointer_names.get(i))
            .cloned()
    }
}
