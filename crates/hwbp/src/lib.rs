//! # hwbp
//!
//! The library facade of hwbp: from "what to watch, where" to typed, symbolized hits. Every
//! `hwbp` subcommand goes through it, and so can any Rust program.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use hwbp::{Target, WatchOptions, WatchPlan, Watcher};
//!
//! # fn main() -> Result<(), hwbp::Error> {
//! let plan = WatchPlan::builder()
//!     .watch("counter")                             // a symbol, 0xADDR/LEN:w, mem:..., ...
//!     .target(Target::launch(["./prog", "--fast"])) // or Target::Process(pid), ...
//!     .build()?;                                    // bad input fails here, nothing armed
//! let watches = plan.watches().to_vec();
//! let summary = Watcher::new(plan, WatchOptions::default()).run(hwbp::from_fn(|hit| {
//!     let value = hit.value.and_then(|v| v.new);
//!     println!("{} {} wrote {value:?} at {}", hit.tid, hit.comm, hit.location());
//!     let _ = &watches[hit.watch.index()];          // the watch: label, address, length
//!     Ok(ControlFlow::Continue(()))
//! }))?;
//! println!("{} hits", summary.watchpoints[0].hits);
//! # Ok(())
//! # }
//! ```
//!
//! ## Design constraints
//! - No `unsafe`, no clap, no anyhow: errors are one [`Error`] with a [`ErrorKind`]
//!   (`BadInput` is refused before anything is armed).
//! - The watcher runs the drain of the kernel's rings on a worker thread and delivers to the
//!   sink on the caller's thread: a slow sink costs memory up to a bound, never hits.
//! - However a run ends, every debug register is freed and the target runs on. A command hwbp
//!   launched is ended with the run (SIGTERM, then SIGKILL) and waited for, unless
//!   [`WatchOptions::keep_running`]; the [`Summary`] says what became of it.
//!
//! ## Modules
//! - [`plan`]: [`WatchPlan`], [`Target`], [`PlanOptions`]: specs to validated pieces.
//! - [`watcher`]: [`Watcher`], [`WatchOptions`], [`Mode`], [`StopHandle`].
//! - [`hit`], [`summary`], [`sink`]: what comes out, and where it goes.
//! - [`rotation`]: more pieces than debug registers (the rotation executor and its totals).
//! - [`threads`]: thread names from the kernel's COMM/FORK records.
//! - [`condition`]: `--if` tests on values.
//! - [`ksym`]: the kernel-symbol tracer's filters and plan (`hwbp ksym`).
//! - [`slots`]: who holds the debug registers, per CPU and thread (`hwbp slots`); CPU lists.
//! - [`typed`]: values in their DWARF type, as the language prints them; members changed.
//! - [`chain`]: gdb's value chain for expressions through pointers.
//! - [`record`]: the recording file format (`hwbp record` / `hwbp report`), its reader and
//!   writer, the report tables, folded stacks and the HTML page.
//!
//! ## Layers
//! Each module imports only modules of its own layer or lower ones, and no two modules import
//! each other, directly or around a circle (`tests/layers.rs` reads the sources and fails
//! when one does). Bottom to top:
//! 1. **data**: plain data and pure functions of it. `error`, `json` (the JSON writer's
//!    primitives), `hit` (ids, hits, values), `typed` (a watch's DWARF type, typed values and
//!    their formatting), `scope` (a local's frame ended), `summary` (totals), `condition`
//!    (the pure `--if` test), `queue` (the bounded hit queue), `options` ([`WatchOptions`],
//!    [`Mode`], [`CallGraph`], [`StopHandle`]), `clock`, `threads`, `sink` (where hits go).
//! 2. **plan**: [`plan`] (with its parts `plan::chain`, `plan::local` and `plan::pending`:
//!    value chains, locals' watches, watches that wait for their image), and what reads a plan
//!    without running it: `watch_condition` (`--if` against the planned watches),
//!    `hit_json` (a hit's JSON line, which names its watch), [`ksym`], [`slots`], [`record`].
//! 3. **capture**: what the engines share to turn traps into hits and counts into totals:
//!    `capture` (the one place a [`Hit`] is made, symbolizing, decoded stores, a stopped
//!    thread's value and callchain, pinned totals), `values` (each watch's values during a
//!    run), `shadow`, [`rotation`], `callchain`, `launched` (ending a launched command).
//! 4. **engine**: `perf` (perf events: `perf/queued`, `perf/targets`, `perf/drain`,
//!    `perf/delivery`, `perf/engine`, `perf/chains`), `stop` (ptrace debug registers),
//!    `local` (a local's frames), `dispatch` (which of them runs a plan), `tree` (a process
//!    tree, a run per process).
//! 5. **watcher**: [`watcher`], the public runner.
#![forbid(unsafe_code)]

mod callchain;
mod capture;
mod clock;
pub mod condition;
mod dispatch;
pub mod error;
pub mod hit;
mod hit_json;
mod json;
pub mod ksym;
mod launched;
pub mod local;
mod options;
mod perf;
pub mod plan;
pub use plan::chain;
mod queue;
pub mod record;
pub mod rotation;
mod scope;
mod shadow;
pub mod sink;
pub mod slots;
mod stop;
pub mod summary;
pub mod threads;
mod tree;
pub mod typed;
mod values;
mod watch_condition;
pub mod watcher;

pub use condition::{CompareOp, Condition, ResolvedCondition};
pub use error::{Error, ErrorKind, Result};
pub use hit::{FrameRef, Hit, HitValue, ValueSource, WatchId};
pub use hit_json::HitJsonWriter;
pub use options::{CallGraph, Mode, StopHandle, WatchOptions, DEFAULT_STACK_BYTES};
pub use plan::{PlanBuilder, PlanOptions, PlannedTarget, PlannedWatch, Target, WatchPlan};
pub use queue::DEFAULT_QUEUE_BYTES;
pub use scope::{ScopeEnd, ScopeEvent};
pub use sink::{from_fn, HitCount, HitSink, Notice, Progress};
pub use summary::{
    CommandFate, Fate, HandlerTotals, Placement, ProcessTotals, Summary, WatchTotals,
};
pub use watcher::Watcher;

/// An access mode: read, write, read/write, execute.
pub use hwbp_core::Access;
/// The code location of a hit's accessing instruction (from `hwbp-symbols`).
pub use hwbp_symbols::cache::CodeInfo;
/// Where an address is in the code: function, offset, file and line.
pub use hwbp_symbols::CodeLocation;

/// How many debug registers a new watch would get now on the plan's target (trial-open), and
/// how the plan's pieces would be placed: what `hwbp slots SPEC...` prints.
pub fn placement(plan: &WatchPlan) -> Result<rotation::PiecePlacement> {
    perf::placement(plan)
}
