//! # hwbp
//!
//! The library facade of hwbp: from "what to watch, where" to typed, symbolized hits. Every
//! `hwbp` subcommand goes through it, and so can any Rust program.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use hwbp::{Target, Value, WatchOptions, WatchPlan, Watcher};
//!
//! # fn main() -> Result<(), hwbp::Error> {
//! let plan = WatchPlan::builder()
//!     .watch("counter")                             // a symbol, 0xADDR/LEN:w, mem:..., ...
//!     .target(Target::launch(["./prog", "--fast"])) // or Target::Process(pid), ...
//!     .build()?;                                    // bad input fails here, nothing armed
//! let summary = Watcher::new(plan, WatchOptions::default()).run(hwbp::from_fn(|hit, watch| {
//!     // `watch`: the hit's watch (label, address, length, type); `new`: a typed Value.
//!     if let Some(Value::Signed(v)) = hit.typed.as_ref().and_then(|t| t.new.as_ref()) {
//!         println!("{} {} set {} to {v} at {}", hit.tid, hit.comm, watch.label, hit.location());
//!     }
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
//! - [`hit`], [`summary`], [`sink`]: what comes out ([`Hit`], [`Summary`], [`EndedBy`]), and
//!   where it goes ([`HitSink`], which gets each hit with its [`PlannedWatch`]).
//! - Typed values: a hit's [`TypedValue`] holds the old and new [`Value`] (`Signed`, `Char`,
//!   `Enum`, `Pointer`, `Struct`, ...), decoded by the watch's DWARF type ([`WatchType`]);
//!   `Display` prints them as the language does (gdb's C printer, or its Rust one).
//! - [`condition`]: `--if` tests on values.
//! - [`local`]: watches of a function's local, frame by frame.
//! - [`ksym`]: the kernel-symbol tracer's filters and plan (`hwbp ksym`).
//! - [`slots`]: who holds the debug registers, per CPU and thread (`hwbp slots`); CPU lists;
//!   [`placement`] and [`PiecePlacement`]: how a plan's pieces would share them.
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
//!    [`Mode`], [`CallGraph`], [`StopHandle`]), `clock`, `threads`.
//! 2. **plan**: [`plan`] (with its parts `plan::chain`, `plan::local` and `plan::pending`:
//!    value chains, locals' watches, watches that wait for their image), and what reads a plan
//!    without running it: `sink` (where hits go, each with its [`PlannedWatch`]),
//!    `watch_condition` (`--if` against the planned watches),
//!    `hit_json` (a hit's JSON line, which names its watch), [`ksym`], [`slots`], [`record`].
//! 3. **capture**: what the engines share to turn traps into hits and counts into totals:
//!    `capture` (the one place a [`Hit`] is made, symbolizing, decoded stores, a stopped
//!    thread's value and callchain, pinned totals), `values` (each watch's values during a
//!    run), `shadow`, `rotation`, `callchain`, `launched` (ending a launched command).
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
mod queue;
pub mod record;
mod rotation;
mod scope;
mod shadow;
pub mod sink;
pub mod slots;
mod stop;
pub mod summary;
mod threads;
mod tree;
mod typed;
mod values;
mod watch_condition;
pub mod watcher;

pub use condition::{CompareOp, Condition, ResolvedCondition};
pub use error::{Error, ErrorKind, Result};
pub use hit::{FrameRef, Hit, HitValue, ValueSource, WatchId};
pub use hit_json::HitJsonWriter;
pub use options::{CallGraph, Mode, StopHandle, WatchOptions, DEFAULT_STACK_BYTES};
pub use plan::{
    LaunchedCommand, Piece, PlanBuilder, PlanOptions, PlannedTarget, PlannedWatch, Target,
    WatchPlan,
};
pub use queue::DEFAULT_QUEUE_BYTES;
pub use rotation::PiecePlacement;
pub use scope::{ScopeEnd, ScopeEvent};
pub use sink::{from_fn, HitCount, HitSink, Notice, Progress};
pub use summary::{
    CommandFate, EndedBy, Fate, HandlerTotals, Placement, ProcessTotals, Summary, SummaryKind,
    WatchTotals,
};
pub use typed::{TypedValue, WatchType};
pub use watcher::Watcher;

/// How pieces share the debug registers ([`PiecePlacement::plan`]): pinned, flexible, rotating.
pub use hwbp_core::sched::RotationPlan;
/// An access mode: read, write, read/write, execute.
pub use hwbp_core::Access;
/// The code location of a hit's accessing instruction (from `hwbp-symbols`).
pub use hwbp_symbols::cache::CodeInfo;
/// A watched value's DWARF type ([`WatchType::ty`], [`PlannedWatch::layout`], [`Condition::resolve`]):
/// what it is made of, and the member or element at a byte offset ([`Type::member_path`]);
/// the source language its values print in.
pub use hwbp_symbols::types::{Encoding, Enumerator, Field, Language, Type, TypeKind};
/// Typed values as data ([`Value`]; its `Display` is gdb's text), a changed member, and the
/// parts of a value.
pub use hwbp_symbols::value::{Change, CharKind, EnumName, Member, PointedString, Value};
/// Where an address is in the code: function, offset, file and line.
pub use hwbp_symbols::CodeLocation;

/// How many debug registers a new watch would get now on the plan's target (trial-open), and
/// how the plan's pieces would be placed: what `hwbp slots SPEC...` prints.
pub fn placement(plan: &WatchPlan) -> Result<PiecePlacement> {
    perf::placement(plan)
}
