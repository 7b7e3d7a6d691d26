//! Planning watches that wait for their target ([`WatchPlan::is_pending`]): the names no
//! image of the process defines yet, and the placeholder plan the process-tree watcher
//! (`crate::tree`) plans again in each process of the tree.

use hwbp_symbols::{ProcessSymbols, SymbolError};

use super::{ParsedSpec, PlanOptions, PlannedTarget, PlannedWatch, WatchPlan};
use crate::hit::WatchId;

/// What a pending plan keeps to plan its watches again in each process.
#[derive(Debug, Clone)]
pub(crate) struct TreePlan {
    /// The specs as given, in order (their index is their [`WatchId`]).
    pub(crate) specs: Vec<String>,
}

/// Most edits between a watched name and a defined one for the name to be taken as a typo of
/// it (refused with its "did you mean") rather than waiting for another image.
const TYPO_DISTANCE: usize = 2;

/// The names of `names` that no image of process `pid` defines now; `::` paths are DWARF
/// names, left to the planner. With `refuse_typos`, a name within [`TYPO_DISTANCE`] edits of
/// a defined one is taken as a typo and left out (the planner refuses it, "did you mean").
pub(crate) fn undefined_names(pid: i32, names: &[String], refuse_typos: bool) -> Vec<String> {
    let Ok(symbols) = ProcessSymbols::load(pid as u32) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|name| !name.contains("::"))
        .filter(|name| match symbols.resolve(name) {
            Ok(_) => false,
            Err(SymbolError::NotFound { near, .. }) => {
                !refuse_typos
                    || !near
                        .iter()
                        .any(|n| hwbp_symbols::edit_distance(n, name) <= TYPO_DISTANCE)
            }
            Err(_) => !refuse_typos,
        })
        .cloned()
        .collect()
}

/// A plan whose watches wait for the images of the launched command's tree: one placeholder
/// watch (no pieces) per spec, in order.
pub(crate) fn pending_plan(
    texts: Vec<String>,
    specs: Vec<ParsedSpec>,
    target: PlannedTarget,
    options: PlanOptions,
) -> WatchPlan {
    let watches = texts
        .iter()
        .zip(&specs)
        .enumerate()
        .map(|(i, (text, spec))| {
            let access = match spec {
                ParsedSpec::Spec(spec) => spec.access,
                ParsedSpec::Expression { access, .. } => *access,
            };
            PlannedWatch::untyped(WatchId(i), text, (0, 0), access, Vec::new())
        })
        .collect();
    WatchPlan {
        watches,
        target,
        symbols: None,
        kernel_symbols: None,
        options,
        tree: Some(TreePlan { specs: texts }),
    }
}

impl WatchPlan {
    /// True when the watches wait for images of the launched command's process tree (its own
    /// image does not define them): each is armed in every process that maps one.
    pub fn is_pending(&self) -> bool {
        self.tree.is_some()
    }
}
