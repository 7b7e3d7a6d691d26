//! [`WatchPlan`]: from what the user named to a validated plan, before any event is opened.
//!
//! Watch specs are parsed (`hwbp_core::spec`: hwbp's own, perf's `mem:` and bpftrace's
//! `watchpoint:` forms; a spec with an expression operator, or a `::` path no symbol table
//! names, is a watch expression: `hwbp_symbols::expr`, evaluated over the DWARF of the
//! executable first and of the libraries only when the executable does not name it, with its
//! value chain (`crate::plan::chain`) unless [`PlanOptions::location`]), symbols resolved in the target's executable and libraries (PIE/ASLR
//! aware) or the kernel's, lengths chosen (a symbol's size by default), and each piece checked
//! against the native architecture's rules (`hwbp_core::arch::native`, the kernel's
//! `hw_breakpoint_arch_parse` order) and the kernel-mode policy (`exclude_kernel` unless this
//! process may see kernel-mode accesses). A region wider than one debug register (a struct, an
//! array, `ADDR/LEN` of any length) is split into aligned pieces (`hwbp_core::region`); when the
//! symbol's type is known from DWARF the pieces follow its leaf members, so a hit names one field
//! or element. More pieces than free registers is not an error here: the perf watcher rotates
//! them (`hwbp_core::sched`).
//!
//! Everything refused here is [`crate::ErrorKind::BadInput`] and leaves no
//! kernel state: a command launched for the watch is killed before its first instruction when
//! the plan is dropped unused.
//!
//! A [`Target::Launch`] command is started (stopped at its entry point under ptrace) while the
//! plan is built, so its symbols can be resolved; the [`crate::Watcher`] must then run on the
//! same thread, which ptrace ties to the command. A launched command (or a `-p` process)
//! whose images do not define every watched name makes a pending plan: its watches are armed
//! in each process of the command's tree once it maps an image that defines them
//! (`crate::tree`); a name one edit or two from a defined one is refused as a typo. Each watch
//! of a symbol or
//! expression gets its DWARF type ([`crate::typed::WatchType`]; unknown for a symbol without
//! debug info).
//!
//! This module holds the public model: targets, options, planned watches and targets, the plan
//! and its builder. The work is in its parts: `specs` (what the user wrote), `resolve` (the
//! target), `build` (each watch), `typing` (DWARF types) and `pieces` (splitting and
//! validating the debug-register pieces).

use std::ffi::OsString;
use std::sync::Arc;

use hwbp_core::Access;
use hwbp_linux::launch::LaunchedProcess;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::target;
use hwbp_symbols::{KernelSymbols, ProcessSymbols};

use self::chain::ValueChain;
use crate::error::{Error, Result};
use crate::hit::WatchId;
use crate::typed::WatchType;

pub(crate) mod chain;
pub(crate) mod local;
pub(crate) mod pending;

mod build;
mod pieces;
mod resolve;
mod specs;
mod typing;

pub(crate) use build::plan_watches;
pub(crate) use pieces::value_pieces;
pub(crate) use specs::{names_needed, ParsedSpec};
pub(crate) use typing::{expression_layout, expression_type};

use resolve::resolve_target;

/// Most pieces one run may rotate through: beyond this each piece would be armed less than
/// 1/1000 of the time, and its estimate would mean nothing.
pub const MAX_PIECES: usize = 1024;

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One thread (and threads it creates later).
    Thread(i32),
    /// Every thread of a process, including threads it creates later.
    Process(i32),
    /// A command hwbp starts and watches from its first instruction: program and arguments.
    Launch(Vec<OsString>),
    /// Every task on all online CPUs (root or `CAP_PERFMON`), following CPU hotplug.
    AllCpus,
    /// Every task on these CPUs (root or `CAP_PERFMON`).
    Cpus(Vec<u32>),
}

impl Target {
    /// A command from its words, e.g. `Target::launch(["./prog", "--fast"])`.
    pub fn launch<S: Into<OsString>>(argv: impl IntoIterator<Item = S>) -> Target {
        Target::Launch(argv.into_iter().map(Into::into).collect())
    }
}

/// Plan options; the defaults are pinned watches while they fit, 10 ms rotation, kernel-mode
/// accesses included when permitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// Watch user-space accesses only (by default kernel-mode accesses to a user address, e.g.
    /// `read(2)` filling a buffer, are reported too when permitted).
    pub user_only: bool,
    /// Make every watch flexible (take turns on the free registers, counts estimated).
    pub flexible: bool,
    /// Milliseconds each flexible piece keeps a register before the next one's turn.
    pub rotate_ms: u64,
    /// Evaluate expressions once and watch the address found (gdb's `watch -l`): no value
    /// chain, and a NULL pointer on the way is refused.
    pub location: bool,
    /// Follow the processes the target creates (`fork`, `vfork`, `clone` and their `exec`s),
    /// each watching in its own images (`crate::tree`): always for a launched command whose
    /// image does not define the watches; with this, for `-p PID` too, and for a launched
    /// command that defines them.
    pub follow_children: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            user_only: false,
            flexible: false,
            rotate_ms: hwbp_core::sched::DEFAULT_QUANTUM_NS / 1_000_000,
            location: false,
            follow_children: false,
        }
    }
}

/// One watch as the user asked for it, resolved.
#[derive(Debug, Clone)]
pub struct PlannedWatch {
    /// Its id (index in the plan).
    pub id: WatchId,
    /// The spec as written.
    pub label: Arc<str>,
    /// Runtime start address.
    pub addr: u64,
    /// Bytes watched.
    pub len: u64,
    /// Access mode.
    pub access: Access,
    /// The debug-register pieces (one, unless the region needed splitting); see
    /// [`pieces`](Self::pieces).
    pub(crate) pieces: Vec<WatchRequest>,
    /// The address is in kernel space.
    pub kernel_address: bool,
    /// The type of the variable watched (its [`WatchType::ty`] known) and the name its member
    /// paths start from, when the watch needs several pieces: names the field or element of
    /// each hit.
    pub layout: Option<Arc<WatchType>>,
    /// Offset of [`addr`](Self::addr) inside the variable of [`layout`](Self::layout).
    pub layout_offset: u64,
    /// The value's type, for a symbol or expression (`ty: None` for a symbol without DWARF);
    /// `None` for an address, or a symbol watched at an offset or another length.
    pub value_type: Option<Arc<WatchType>>,
    /// For an expression through pointers (without `-l`): the pointers it read, watched as the
    /// pieces after the value's (`ValueChain::value_pieces`), and how to move the value when
    /// one changes.
    pub(crate) chain: Option<Arc<ValueChain>>,
    /// For a local variable (`FUNC::LOCAL`): its frames, armed at each entry of FUNC
    /// ([`crate::local`]); `addr` and `pieces` are then per frame, not here.
    pub(crate) local: Option<Arc<local::LocalWatch>>,
}

/// One debug-register piece of a watch: an aligned region of 1, 2, 4 or 8 bytes (an execute
/// breakpoint's length is the architecture's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Piece {
    /// Its start address.
    pub addr: u64,
    /// Its length in bytes.
    pub len: u64,
    /// What fires it.
    pub access: Access,
}

impl PlannedWatch {
    /// A watch of `len` raw bytes at user address `addr` over `pieces`: no type, no value
    /// chain, not a local. The literal the other kinds of watch start from.
    pub(crate) fn untyped(
        id: WatchId,
        label: &str,
        (addr, len): (u64, u64),
        access: Access,
        pieces: Vec<WatchRequest>,
    ) -> PlannedWatch {
        PlannedWatch {
            id,
            label: label.into(),
            addr,
            len,
            access,
            pieces,
            kernel_address: false,
            layout: None,
            layout_offset: 0,
            value_type: None,
            chain: None,
            local: None,
        }
    }

    /// The debug-register pieces, in order (one, unless the region needed splitting; none
    /// for a watch that waits for its image, or a local's, whose pieces are per frame).
    pub fn pieces(&self) -> impl ExactSizeIterator<Item = Piece> + '_ {
        self.pieces.iter().map(|p| Piece {
            addr: p.addr,
            len: p.len,
            access: p.access,
        })
    }

    /// True for an expression through pointers whose value hwbp moves when a pointer changes
    /// (gdb's value chain).
    pub fn is_value_chain(&self) -> bool {
        self.chain.is_some()
    }

    /// True for a watch of a function's local ([`crate::local`]), armed per frame.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Names the part of the watch at byte `offset` from its start: the DWARF path of the
    /// field or element (`cfg.limits[2].max`, or `first..last` when a piece spans several
    /// members), else `+0xNN`. `len` is the piece's length.
    pub fn member_at(&self, offset: u64, len: u64) -> String {
        match self
            .layout
            .as_ref()
            .and_then(|l| Some((l.ty.as_ref()?, l.root.as_str())))
        {
            Some((ty, root)) => {
                let start = ty.member_path(root, self.layout_offset + offset);
                let end = ty.member_path(root, self.layout_offset + offset + len.max(1) - 1);
                if start == end {
                    start
                } else {
                    format!("{start}..{end}")
                }
            }
            None => format!("+{offset:#x}"),
        }
    }

    /// For a value chain: how its registers are spent, `watch 'cur->state' takes 2 debug
    /// registers: 1 for the value, 1 for the pointer it reads (cur); -l/--location watches the
    /// value alone`.
    pub fn chain_note(&self) -> Option<String> {
        let chain = self.chain.as_ref()?;
        let names: Vec<&str> = chain.pointer_names.iter().map(|n| &**n).collect();
        Some(format!(
            "watch '{}' takes {}: {} for the value, {} for the {} it reads ({}); \
             -l/--location watches the value alone",
            self.label,
            plural(self.pieces.len(), "debug register"),
            chain.value_pieces,
            names.len(),
            if names.len() == 1 {
                "pointer"
            } else {
                "pointers"
            },
            names.join(", ")
        ))
    }

    /// The member of piece `piece` (an index into [`pieces`](Self::pieces())), for a watch of
    /// several pieces; `None` for a one-piece watch.
    pub fn piece_member(&self, piece: usize) -> Option<String> {
        if self.pieces.len() < 2 {
            return None;
        }
        if let Some(name) = self.chain.as_ref().and_then(|c| c.pointer_name(piece)) {
            return Some(name.to_string());
        }
        let request = self.pieces.get(piece)?;
        Some(self.member_at(request.addr.wrapping_sub(self.addr), request.len))
    }
}

/// A command hwbp launched for a plan, held stopped before its first instruction until a
/// run lets it go (and ended with the run unless [`crate::WatchOptions::keep_running`]).
#[derive(Debug)]
pub struct LaunchedCommand(pub(crate) LaunchedProcess);

impl LaunchedCommand {
    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.0.pid()
    }
}

/// What a plan runs on, resolved.
#[derive(Debug)]
pub enum PlannedTarget {
    /// Threads of one process (all of them, or one), optionally a command hwbp launched and
    /// holds stopped at its entry point.
    Threads {
        /// The process.
        pid: i32,
        /// The threads to open events on.
        tids: Vec<i32>,
        /// The launched command, if hwbp started it.
        launched: Option<LaunchedCommand>,
    },
    /// Every task on these CPUs; `all` when they are all online CPUs (hotplug is followed).
    Cpus {
        /// The CPUs.
        cpus: Vec<u32>,
        /// Follow every CPU that comes online.
        all: bool,
    },
}

impl PlannedTarget {
    /// The process, for thread targets.
    pub fn pid(&self) -> Option<i32> {
        match self {
            PlannedTarget::Threads { pid, .. } => Some(*pid),
            PlannedTarget::Cpus { .. } => None,
        }
    }

    /// True for a command hwbp launched.
    pub fn is_launched(&self) -> bool {
        matches!(
            self,
            PlannedTarget::Threads {
                launched: Some(_),
                ..
            }
        )
    }

    /// In words: `the command (pid 42)`, `thread 7 of process 5`, `process 5 (3 threads and
    /// threads it creates)`, `CPUs 0-1`.
    pub fn describe(&self) -> String {
        match self {
            PlannedTarget::Threads {
                pid,
                launched: Some(launched),
                ..
            } => match launched.0.followed().last() {
                Some(program) => format!(
                    "the command (pid {pid}), followed through exec to {}",
                    program.display()
                ),
                None => format!("the command (pid {pid})"),
            },
            PlannedTarget::Threads { pid, tids, .. } if tids.len() == 1 && tids[0] != *pid => {
                format!("thread {} of process {pid}", tids[0])
            }
            PlannedTarget::Threads { pid, tids, .. } => {
                format!(
                    "process {pid} ({} and threads it creates)",
                    plural(tids.len(), "thread")
                )
            }
            PlannedTarget::Cpus { cpus, .. } => format!("CPUs {}", target::format_cpu_list(cpus)),
        }
    }
}

pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The validated plan: watches, target, symbols. Build it with [`WatchPlan::builder`].
#[derive(Debug)]
pub struct WatchPlan {
    pub(crate) watches: Vec<PlannedWatch>,
    pub(crate) target: PlannedTarget,
    pub(crate) symbols: Option<Arc<ProcessSymbols>>,
    pub(crate) kernel_symbols: Option<Arc<KernelSymbols>>,
    pub(crate) options: PlanOptions,
    /// For a launched command whose image does not define every watched name: what the
    /// process-tree watcher plans again in each process ([`crate::tree`]).
    pub(crate) tree: Option<pending::TreePlan>,
}

/// Builds a [`WatchPlan`]; see [`WatchPlan::builder`].
#[derive(Debug, Default)]
pub struct PlanBuilder {
    specs: Vec<String>,
    target: Option<Target>,
    options: PlanOptions,
}

impl PlanBuilder {
    /// Adds a watch spec: `SYMBOL[+OFF][/LEN][:ACCESS]`, `0xADDR[+OFF][/LEN][:ACCESS]`, perf's
    /// `mem:ADDR[/LEN][:rwx]` or bpftrace's `watchpoint:ADDR:LEN:MODE`.
    pub fn watch(mut self, spec: impl Into<String>) -> Self {
        self.specs.push(spec.into());
        self
    }

    /// Adds several specs.
    pub fn watches<S: Into<String>>(mut self, specs: impl IntoIterator<Item = S>) -> Self {
        self.specs.extend(specs.into_iter().map(Into::into));
        self
    }

    /// What to watch.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Plan options.
    pub fn options(mut self, options: PlanOptions) -> Self {
        self.options = options;
        self
    }

    /// Validates everything and resolves the target and symbols.
    pub fn build(self) -> Result<WatchPlan> {
        if self.options.rotate_ms == 0 {
            return Err(Error::bad_input(
                "--rotate-ms 0: flexible watches need at least 1 ms on a register, e.g. \
                 --rotate-ms 10",
            ));
        }
        if self.specs.is_empty() {
            return Err(Error::bad_input(
                "nothing to watch: give at least one spec, e.g. counter or 0x601040/8:w",
            ));
        }
        let specs = self
            .specs
            .iter()
            .map(|text| ParsedSpec::parse(text))
            .collect::<Result<Vec<_>>>()?;
        let Some(target) = self.target else {
            return Err(Error::bad_input(
                "no target: give -p PID, -t TID, -a (all CPUs), -C LIST, or a command after --",
            ));
        };
        let whole_process = matches!(target, Target::Process(_) | Target::Launch(_));
        let target = resolve_target(target)?;
        if let (PlannedTarget::Threads { pid, .. }, true) = (&target, whole_process) {
            let undefined = pending::undefined_names(*pid, &names_needed(&specs), true);
            if undefined.is_empty() && self.options.follow_children {
                refuse_tree_locals(&specs, *pid, &self.options)?;
            }
            if !undefined.is_empty() || self.options.follow_children {
                // Armed in each process of the command's tree (or in the attached process)
                // once it maps an image defining them (crate::tree).
                return Ok(pending::pending_plan(
                    self.specs,
                    specs,
                    target,
                    self.options,
                ));
            }
        }
        plan_watches(&specs, target, self.options)
    }
}

/// Refuses a local's watch in a plan of a process tree (`--follow-children`): a local's frames
/// are armed by the tracer of the one process hwbp launches or attaches to, which a tree's
/// tracer already holds. Only specs naming a scope (`FUNC::LOCAL`) are planned here, against
/// the target's own image, and only to tell a local from a namespaced global.
fn refuse_tree_locals(specs: &[ParsedSpec], pid: i32, options: &PlanOptions) -> Result<()> {
    let scoped = specs.iter().any(|spec| match spec {
        ParsedSpec::Spec(spec) => spec.text.contains("::"),
        ParsedSpec::Expression { text, .. } => text.contains("::"),
    });
    if !scoped {
        return Ok(());
    }
    let probe = PlannedTarget::Threads {
        pid,
        tids: vec![pid],
        launched: None,
    };
    let Ok(plan) = plan_watches(specs, probe, options.clone()) else {
        // Not plannable in this image: the tree plans it in each process, as any spec.
        return Ok(());
    };
    match plan.watches.iter().find(|w| w.is_local()) {
        Some(local) => Err(Error::bad_input(format!(
            "watch '{}': a local is watched in the frames of the one process hwbp launches or \
             attaches to, not across a process tree: drop --follow-children, or watch it in \
             the child with -p PID",
            local.label
        ))),
        None => Ok(()),
    }
}

impl WatchPlan {
    /// A builder with no watches, no target and default options.
    pub fn builder() -> PlanBuilder {
        PlanBuilder::default()
    }

    /// A plan of watches made by the caller (e.g. the ksym tracer's kernel filters) on
    /// `target`, with `kernel_symbols` to name kernel code. The watches' ids are renumbered in
    /// order.
    pub(crate) fn from_watches(
        mut watches: Vec<PlannedWatch>,
        target: PlannedTarget,
        kernel_symbols: Option<KernelSymbols>,
    ) -> WatchPlan {
        for (i, w) in watches.iter_mut().enumerate() {
            w.id = WatchId(i);
        }
        WatchPlan {
            watches,
            target,
            symbols: None,
            kernel_symbols: kernel_symbols.map(Arc::new),
            options: PlanOptions::default(),
            tree: None,
        }
    }

    /// The watches, in the order given.
    pub fn watches(&self) -> &[PlannedWatch] {
        &self.watches
    }

    /// One watch.
    pub fn watch(&self, id: WatchId) -> &PlannedWatch {
        &self.watches[id.0]
    }

    /// The target.
    pub fn target(&self) -> &PlannedTarget {
        &self.target
    }

    /// The options.
    pub fn options(&self) -> &PlanOptions {
        &self.options
    }

    /// Takes the target out (an empty CPU list is left), for a watcher that owns it.
    pub(crate) fn take_target(&mut self) -> PlannedTarget {
        std::mem::replace(
            &mut self.target,
            PlannedTarget::Cpus {
                cpus: Vec::new(),
                all: false,
            },
        )
    }
}
