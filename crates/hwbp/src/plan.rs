//! [`WatchPlan`]: from what the user named to a validated plan, before any event is opened.
//!
//! Watch specs are parsed (`hwbp_core::spec`: hwbp's own, perf's `mem:` and bpftrace's
//! `watchpoint:` forms; a spec with an expression operator, or a `::` path no symbol table
//! names, is a watch expression: `hwbp_symbols::expr`, evaluated over the DWARF of the
//! executable first and of the libraries only when the executable does not name it, with its
//! value chain (`crate::chain`) unless [`PlanOptions::location`]), symbols resolved in the target's executable and libraries (PIE/ASLR
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

pub mod chain;
pub(crate) mod local;
pub(crate) mod pending;

use std::ffi::OsString;
use std::sync::Arc;

use hwbp_core::arch::native::{self, BreakpointRequest};
use hwbp_core::region;
use hwbp_core::spec::{WatchLocation, WatchSpec};
use hwbp_core::Access;
use hwbp_linux::launch::{self, LaunchedProcess};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::{memory, probe, target};
use hwbp_symbols::dwarf::VariableLayout;
use hwbp_symbols::eval::{self, EvalError, LoadedModule, Scope};
use hwbp_symbols::expr::{self, Expr};
use hwbp_symbols::{KernelSymbols, ModuleInfo, ProcessSymbols};

use self::chain::ValueChain;
use crate::error::{Error, ErrorKind, Result};
use crate::hit::WatchId;
use crate::typed::WatchType;

/// Most pieces one run may rotate through: beyond this each piece would be armed less than
/// 1/1000 of the time, and its estimate would mean nothing.
pub const MAX_PIECES: usize = 1024;
/// A layout-guided split may use up to this many times the pieces of a plain split (a
/// `char[4096]` split per element would need 4096 pieces instead of 512).
const LEAF_SPLIT_FACTOR: usize = 2;

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
    /// The debug-register pieces (one, unless the region needed splitting).
    pub pieces: Vec<WatchRequest>,
    /// The address is in kernel space.
    pub kernel_address: bool,
    /// The DWARF layout of the variable watched, when the watch needs several pieces and the
    /// symbol's type is known: names the field or element of each hit.
    pub layout: Option<Arc<VariableLayout>>,
    /// Offset of [`addr`](Self::addr) inside the variable of [`layout`](Self::layout).
    pub layout_offset: u64,
    /// The value's type, for a symbol or expression (`ty: None` for a symbol without DWARF);
    /// `None` for an address, or a symbol watched at an offset or another length.
    pub value_type: Option<Arc<WatchType>>,
    /// For an expression through pointers (without `-l`): the pointers it read, watched as the
    /// pieces after the value's ([`ValueChain::value_pieces`]), and how to move the value when
    /// one changes.
    pub chain: Option<Arc<ValueChain>>,
    /// For a local variable (`FUNC::LOCAL`): its frames, armed at each entry of FUNC
    /// ([`crate::local`]); `addr` and `pieces` are then per frame, not here.
    pub local: Option<Arc<local::LocalWatch>>,
}

impl PlannedWatch {
    /// Names the part of the watch at byte `offset` from its start: the DWARF path of the
    /// field or element (`cfg.limits[2].max`, or `first..last` when a piece spans several
    /// members), else `+0xNN`. `len` is the piece's length.
    pub fn member_at(&self, offset: u64, len: u64) -> String {
        match &self.layout {
            Some(layout) => {
                let start = layout.name_at(self.layout_offset + offset);
                let end = layout.name_at(self.layout_offset + offset + len.max(1) - 1);
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

    /// The member of piece `piece` (an index into [`pieces`](Self::pieces)), for a watch of
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
        launched: Option<LaunchedProcess>,
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
            } => match launched.followed().last() {
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

/// Plans `specs` in `target` (a process whose symbols are loaded here when they are needed):
/// the part of [`PlanBuilder::build`] after the target is resolved.
pub(crate) fn plan_watches(
    specs: &[ParsedSpec],
    target: PlannedTarget,
    options: PlanOptions,
) -> Result<WatchPlan> {
    {
        let needs_symbols = specs.iter().any(|s| match s {
            ParsedSpec::Spec(spec) => matches!(spec.location, WatchLocation::Symbol { .. }),
            ParsedSpec::Expression { .. } => true,
        });
        if let (None, Some(ParsedSpec::Expression { text, .. })) = (
            target.pid(),
            specs
                .iter()
                .find(|s| matches!(s, ParsedSpec::Expression { .. })),
        ) {
            return Err(Error::bad_input(format!(
                "watch '{text}': an expression is evaluated in one process's memory: give -p \
                 PID, -t TID or a command after --, not -a/-C"
            )));
        }
        let symbols = match target.pid() {
            Some(pid) if needs_symbols => {
                Some(Arc::new(ProcessSymbols::load(pid as u32).map_err(|e| {
                    let kind = if e.to_string().contains("ermission") {
                        ErrorKind::Permission
                    } else {
                        ErrorKind::Target
                    };
                    Error::wrap(
                        kind,
                        format!("cannot read the symbols of process {pid}: {e}"),
                        e,
                    )
                })?))
            }
            Some(pid) => ProcessSymbols::load(pid as u32).ok().map(Arc::new),
            None => None,
        };
        let mut modules = symbols.as_ref().map(|s| Modules::new(Arc::clone(s)));
        let mut kernel_symbols: Option<Arc<KernelSymbols>> = None;
        let kernel_mode_allowed = probe::may_watch_kernel_mode();
        let mut watches = Vec::new();
        for parsed in specs {
            let expression = match parsed {
                ParsedSpec::Expression { text, expr, access } => {
                    Some((text.as_str(), expr.clone(), *access))
                }
                ParsedSpec::Spec(spec) => dwarf_only_name(spec, symbols.as_deref())
                    .map(|expr| (spec.text.as_str(), expr, spec.access)),
            };
            if let Some((text, expr, access)) = expression {
                let (Some(pid), Some(modules)) = (target.pid(), modules.as_mut()) else {
                    unreachable!("expressions were refused without a process above");
                };
                let exclude_kernel = options.user_only || !kernel_mode_allowed;
                watches.push(plan_expression(
                    WatchId(watches.len()),
                    text,
                    &expr,
                    access,
                    exclude_kernel,
                    pid,
                    modules,
                    options.location,
                )?);
                continue;
            }
            let ParsedSpec::Spec(spec) = parsed else {
                unreachable!("expressions were planned above");
            };
            let mut resolved_symbol = None;
            let (addr, symbol_size) = match &spec.location {
                WatchLocation::Address(addr) => (*addr, None),
                WatchLocation::Symbol { name, offset } => match &symbols {
                    Some(symbols) => {
                        let sym = symbols
                            .resolve(name)
                            .map_err(|e| Error::bad_input(e.to_string()))?;
                        let found = (
                            sym.addr.wrapping_add(*offset),
                            (*offset == 0).then_some(sym.size),
                        );
                        resolved_symbol = Some((sym, *offset));
                        found
                    }
                    None => {
                        if kernel_symbols.is_none() {
                            kernel_symbols =
                                Some(Arc::new(KernelSymbols::from_kallsyms().map_err(|e| {
                                    Error::wrap(
                                        ErrorKind::Kernel,
                                        format!(
                                            "cannot read kernel symbols from /proc/kallsyms: {e}"
                                        ),
                                        e,
                                    )
                                })?));
                        }
                        let ksyms = kernel_symbols.as_ref().expect("loaded above");
                        let sym = ksyms
                            .resolve(name)
                            .map_err(|e| Error::bad_input(e.to_string()))?;
                        (
                            sym.addr.wrapping_add(*offset),
                            sym.size.filter(|_| *offset == 0),
                        )
                    }
                },
            };
            let len = choose_len(spec, addr, symbol_size);
            let kernel_address = native::is_kernel_address(addr);
            let exclude_kernel = spec.exclude_kernel
                || (!kernel_address && (options.user_only || !kernel_mode_allowed));
            let exclude_user = spec.exclude_user || kernel_address;
            // The symbol's DWARF type, when the whole symbol is watched.
            let value_type = match (&resolved_symbol, modules.as_mut()) {
                (Some((sym, 0)), Some(modules))
                    if len == sym.size && spec.access != Access::Execute =>
                {
                    Some(Arc::new(modules.symbol_type(sym)))
                }
                _ => None,
            };
            let mut pieces = split(&spec.text, spec.access, addr, len)?;
            let mut layout = None;
            let mut layout_offset = 0;
            if pieces.len() > 1 {
                if let Some((sym, offset)) = &resolved_symbol {
                    if let Ok(found) = VariableLayout::of_symbol(sym) {
                        if let Some(leaf_pieces) = split_by_leaves(&found, *offset, addr, len) {
                            if leaf_pieces.len() <= pieces.len() * LEAF_SPLIT_FACTOR {
                                pieces = leaf_pieces;
                            }
                        }
                        layout = Some(Arc::new(found));
                        layout_offset = *offset;
                    }
                }
            }
            let requests = validate_pieces(
                &spec.text,
                &pieces,
                spec.access,
                exclude_kernel,
                exclude_user,
            )?;
            watches.push(PlannedWatch {
                id: WatchId(watches.len()),
                label: spec.text.as_str().into(),
                addr,
                len,
                access: spec.access,
                pieces: requests,
                kernel_address,
                layout,
                layout_offset,
                value_type,
                chain: None,
                local: None,
            });
        }
        let pieces: usize = watches.iter().map(|w| w.pieces.len()).sum();
        if pieces > MAX_PIECES {
            return Err(Error::bad_input(format!(
                "{} need {pieces} debug-register pieces; hwbp rotates at most {MAX_PIECES} \
                 (each would be armed too rarely to estimate anything): narrow them with /LEN \
                 or run hwbp once per part",
                plural(watches.len(), "watch").replace("watchs", "watches"),
            )));
        }
        Ok(WatchPlan {
            watches,
            target,
            symbols,
            kernel_symbols,
            options,
            tree: None,
        })
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
    pub fn from_watches(
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

    /// The target process's symbols, when there is a process.
    pub fn symbols(&self) -> Option<&ProcessSymbols> {
        self.symbols.as_deref()
    }
}

/// The length to watch: as given, else the symbol's size, else the widest aligned length at
/// the address.
fn choose_len(spec: &WatchSpec, addr: u64, symbol_size: Option<u64>) -> u64 {
    if let Some(len) = spec.len {
        return len;
    }
    if spec.access == Access::Execute {
        return native::MAX_PIECE;
    }
    match symbol_size {
        Some(size) if size > 0 => size,
        _ => [8, 4, 2, 1]
            .into_iter()
            .find(|len| addr.is_multiple_of(*len))
            .unwrap_or(1),
    }
}

/// Splits `[addr, addr+len)` along the leaf members of `layout` (`addr` is at `offset` in
/// the variable), each leaf into aligned pieces, so no piece spans two members. Bytes between
/// leaves (padding) are left out. `None` when the layout covers none of the region.
fn split_by_leaves(
    layout: &VariableLayout,
    offset: u64,
    addr: u64,
    len: u64,
) -> Option<Vec<(u64, u64)>> {
    let end = offset.checked_add(len)?;
    let mut leaves = layout.leaves();
    leaves.sort_by_key(|leaf| leaf.offset);
    let mut pieces = Vec::new();
    let mut covered_to = offset;
    for leaf in leaves {
        let leaf_start = leaf.offset.max(covered_to);
        let leaf_end = (leaf.offset + leaf.size).min(end);
        if leaf_start >= leaf_end {
            continue;
        }
        let piece_addr = addr + (leaf_start - offset);
        for piece in
            region::split_region(piece_addr, leaf_end - leaf_start, native::MAX_PIECE).ok()?
        {
            pieces.push((piece.addr, piece.len));
        }
        covered_to = leaf_end;
    }
    (!pieces.is_empty()).then_some(pieces)
}

/// Splits `[addr, addr+len)` into debug-register pieces; refuses regions that would need more
/// than [`MAX_PIECES`]. `label` names the watch in errors.
fn split(label: &str, access: Access, addr: u64, len: u64) -> Result<Vec<(u64, u64)>> {
    let max = native::MAX_PIECE;
    if access == Access::Execute
        || (len <= max && addr.is_multiple_of(len) && len.is_power_of_two())
    {
        return Ok(vec![(addr, len)]);
    }
    let needed = region::pieces_needed(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
    if needed > MAX_PIECES {
        let base = label.split(['/', ':']).next().unwrap_or(label);
        let part = if expr::looks_like_expression(label) {
            format!("a member or an element (e.g. {base}[0] or {base}.MEMBER)")
        } else {
            format!("with /LEN (e.g. {base}/64)")
        };
        return Err(Error::bad_input(format!(
            "watch '{label}': {len} bytes at {addr:#x} need {needed} debug-register pieces; \
             hwbp rotates at most {MAX_PIECES}: watch a part of it {part}"
        )));
    }
    let pieces = region::split_region(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
    Ok(pieces.into_iter().map(|p| (p.addr, p.len)).collect())
}

/// The pieces of a value of `len` bytes at `addr`: aligned pieces, along the leaf members of
/// `layout` (the value's own, offset 0) when that does not take many more pieces.
pub(crate) fn value_pieces(
    addr: u64,
    len: u64,
    layout: Option<&VariableLayout>,
    access: Access,
) -> Result<Vec<(u64, u64)>> {
    value_pieces_of(&format!("{addr:#x}"), addr, len, layout, access)
}

fn value_pieces_of(
    label: &str,
    addr: u64,
    len: u64,
    layout: Option<&VariableLayout>,
    access: Access,
) -> Result<Vec<(u64, u64)>> {
    let pieces = split(label, access, addr, len)?;
    if pieces.len() > 1 {
        if let Some(leaf_pieces) = layout.and_then(|l| split_by_leaves(l, 0, addr, len)) {
            if leaf_pieces.len() <= pieces.len() * LEAF_SPLIT_FACTOR {
                return Ok(leaf_pieces);
            }
        }
    }
    Ok(pieces)
}

/// Checks each piece against the architecture's rules and makes it a request.
fn validate_pieces(
    label: &str,
    pieces: &[(u64, u64)],
    access: Access,
    exclude_kernel: bool,
    exclude_user: bool,
) -> Result<Vec<WatchRequest>> {
    pieces
        .iter()
        .map(|&(addr, len)| {
            let request = BreakpointRequest {
                addr,
                len,
                bp_type: access.bp_type(),
            };
            native::validate(&request, exclude_kernel, probe::is_root())
                .map_err(|e| Error::bad_input(format!("watch '{label}': {e}")))?;
            Ok(WatchRequest {
                addr,
                len,
                access,
                pinned: true,
                exclude_kernel,
                exclude_user,
            })
        })
        .collect()
}

/// A spec as given: hwbp's, perf's or bpftrace's syntax, or a watch expression.
pub(crate) enum ParsedSpec {
    Spec(WatchSpec),
    Expression {
        text: String,
        expr: Expr,
        access: Access,
    },
}

impl ParsedSpec {
    pub(crate) fn parse(text: &str) -> Result<ParsedSpec> {
        if expr::looks_like_expression(text) {
            let (body, access) = expr::split_access(text.trim());
            let expr = expr::parse(body).map_err(|e| Error::bad_input(e.to_string()))?;
            return Ok(ParsedSpec::Expression {
                text: text.to_string(),
                expr,
                access: access.unwrap_or(Access::Write),
            });
        }
        WatchSpec::parse(text)
            .map(ParsedSpec::Spec)
            .map_err(|e| Error::bad_input(e.to_string()))
    }
}

/// The DWARF of the target's modules, loaded when first needed: the executable's first,
/// libraries only for a name the executable does not have (libc's DWARF takes seconds).
struct Modules {
    symbols: Arc<ProcessSymbols>,
    infos: Vec<ModuleInfo>,
    loaded: Vec<Option<Option<LoadedModule>>>,
}

impl Modules {
    fn new(symbols: Arc<ProcessSymbols>) -> Modules {
        let infos = symbols.modules();
        let loaded = vec![None; infos.len()];
        Modules {
            symbols,
            infos,
            loaded,
        }
    }

    fn get(&mut self, index: usize) -> Option<LoadedModule> {
        let info = &self.infos[index];
        self.loaded[index]
            .get_or_insert_with(|| LoadedModule::load(info).ok())
            .clone()
    }

    /// The executable's DWARF (empty without), or every module's.
    fn scope(&mut self, all: bool) -> Vec<LoadedModule> {
        let n = if all {
            self.infos.len()
        } else {
            1.min(self.infos.len())
        };
        (0..n).filter_map(|i| self.get(i)).collect()
    }

    /// The type of symbol `sym` from its module's DWARF; unknown without.
    fn symbol_type(&mut self, sym: &hwbp_symbols::ResolvedSymbol) -> WatchType {
        let unknown = WatchType {
            ty: None,
            language: Default::default(),
            root: sym.name.clone(),
        };
        let Some(index) = self.infos.iter().position(|m| m.path == sym.module) else {
            return unknown;
        };
        let (Some(module), Ok(parsed)) = (self.get(index), expr::parse(&sym.name)) else {
            return unknown;
        };
        let scope = Scope {
            modules: std::slice::from_ref(&module),
            symbols: None,
        };
        match eval::evaluate(&parsed, &scope, &mut |_, _| false) {
            Ok(found) if found.addr == sym.addr && found.ty.is_some() => WatchType {
                ty: found.ty,
                language: found.language,
                root: sym.name.clone(),
            },
            _ => unknown,
        }
    }
}

/// A `::` path that no symbol table names but the DWARF may (`func::static_local`,
/// `ns::var`, `Class::static_member`): the expression to evaluate for it.
fn dwarf_only_name(spec: &WatchSpec, symbols: Option<&ProcessSymbols>) -> Option<Expr> {
    let WatchLocation::Symbol { name, offset: 0 } = &spec.location else {
        return None;
    };
    if !name.contains("::") || symbols?.resolve(name).is_ok() {
        return None;
    }
    expr::parse(name).ok()
}

/// Whether an evaluation error may go away with the libraries' DWARF loaded too.
fn may_be_in_a_library(e: &EvalError) -> bool {
    matches!(
        e,
        EvalError::UnknownVariable { .. }
            | EvalError::UnknownType { .. }
            | EvalError::NoType { .. }
    )
}

/// Plans one watch expression in process `pid`: evaluated in the executable's DWARF, then
/// every module's if the executable does not name it; with `location`, once (a NULL pointer
/// is refused), else with its value chain.
#[allow(clippy::too_many_arguments)]
fn plan_expression(
    id: WatchId,
    text: &str,
    parsed: &Expr,
    access: Access,
    exclude_kernel: bool,
    pid: i32,
    modules: &mut Modules,
    location: bool,
) -> Result<PlannedWatch> {
    let refuse = |e: EvalError| Error::bad_input(format!("watch '{text}': {e}"));
    let symbols = Arc::clone(&modules.symbols);
    let attempt = |scope_modules: &[LoadedModule]| {
        let scope = Scope {
            modules: scope_modules,
            symbols: Some(&symbols),
        };
        if location {
            let mut read = |addr: u64, buf: &mut [u8]| memory::read_memory(pid, addr, buf).is_ok();
            eval::evaluate(parsed, &scope, &mut read).map(|ev| {
                let point = chain::ChainPoint {
                    value_addr: ev.addr,
                    pointers: Vec::new(),
                };
                (ev, point)
            })
        } else {
            chain::evaluate_shape(parsed, &scope, pid)
        }
    };
    let mut scope_modules = modules.scope(false);
    let mut result = attempt(&scope_modules);
    if result.as_ref().is_err_and(may_be_in_a_library) {
        scope_modules = modules.scope(true);
        result = attempt(&scope_modules);
    }
    if let Err(EvalError::NoFixedAddress { .. } | EvalError::UnknownVariable { .. }) = &result {
        if let Some(planned) = local::plan_local(id, text, parsed, access, &scope_modules) {
            return planned;
        }
    }
    let (evaluated, point) = result.map_err(refuse)?;
    if access == Access::Execute {
        return Err(Error::bad_input(format!(
            "watch '{text}': an expression names data; execute breakpoints take a function \
             symbol or an address (e.g. main:x)"
        )));
    }
    let layout = evaluated.layout();
    let value = value_pieces_of(
        text,
        point.value_addr,
        evaluated.len,
        layout.as_ref(),
        access,
    )?;
    let value_count = value.len();
    let mut pieces = value;
    pieces.extend(point.pointers.iter().map(|&p| (p, 8)));
    let requests = validate_pieces(text, &pieces, access, exclude_kernel, false)?;
    let chain = ValueChain::new(
        parsed.clone(),
        scope_modules,
        Some(Arc::clone(&symbols)),
        &evaluated,
        point.clone(),
        requests[0],
        value_count,
    )
    .map(Arc::new);
    Ok(PlannedWatch {
        id,
        label: text.into(),
        addr: point.value_addr,
        len: evaluated.len,
        access,
        pieces: requests,
        kernel_address: false,
        layout: layout.map(Arc::new),
        layout_offset: 0,
        value_type: Some(expression_type(&evaluated)),
        chain,
        local: None,
    })
}

/// The type of an evaluated expression's value, its members named from the expression.
pub(crate) fn expression_type(evaluated: &eval::Evaluated) -> Arc<WatchType> {
    Arc::new(WatchType {
        ty: evaluated.ty.clone(),
        language: evaluated.language,
        root: evaluated.expr.clone(),
    })
}

/// The names the specs need from the program's symbol tables: each symbol, and the root
/// variable of each expression (none for a cast of a constant, nor for a `::` path, which
/// names DWARF scopes rather than a symbol).
pub(crate) fn names_needed(specs: &[ParsedSpec]) -> Vec<String> {
    specs
        .iter()
        .filter(|s| match s {
            ParsedSpec::Spec(spec) => !spec.text.contains("::"),
            ParsedSpec::Expression { text, .. } => !text.contains("::"),
        })
        .filter_map(|s| match s {
            ParsedSpec::Spec(spec) => match &spec.location {
                WatchLocation::Symbol { name, .. } => Some(name.clone()),
                WatchLocation::Address(_) => None,
            },
            ParsedSpec::Expression { text, .. } => {
                let body = text.trim_start_matches(['*', '&', ' ', '\'']);
                let root: String = body
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!root.is_empty() && !text.trim_start_matches('*').starts_with('(')).then_some(root)
            }
        })
        .collect()
}

/// A target that does not exist, with what to do about it.
fn target_error(e: target::TargetError) -> Error {
    match e {
        target::TargetError::NoSuchProcess(_) | target::TargetError::NoSuchThread { .. } => {
            Error::bad_input(format!("{e}: check the id with ps -eLf or pgrep"))
        }
        other => Error::bad_input(other.to_string()),
    }
}

fn ptrace_access(pid: i32) -> Result<()> {
    probe::require_ptrace_access(pid).map_err(|e| Error::new(ErrorKind::Permission, e.to_string()))
}

fn resolve_target(target: Target) -> Result<PlannedTarget> {
    match target {
        Target::Process(pid) => {
            let tids = target::threads_of(pid).map_err(target_error)?;
            ptrace_access(pid)?;
            Ok(PlannedTarget::Threads {
                pid,
                tids,
                launched: None,
            })
        }
        Target::Thread(tid) => {
            let pid = target::process_of_thread(tid).map_err(target_error)?;
            ptrace_access(pid)?;
            Ok(PlannedTarget::Threads {
                pid,
                tids: vec![tid],
                launched: None,
            })
        }
        Target::AllCpus => Ok(PlannedTarget::Cpus {
            cpus: target::online_cpus().map_err(|e| Error::wrap(ErrorKind::Kernel, "", e))?,
            all: true,
        }),
        Target::Cpus(cpus) => {
            target::require_online(&cpus).map_err(|e| Error::bad_input(e.to_string()))?;
            Ok(PlannedTarget::Cpus { cpus, all: false })
        }
        Target::Launch(argv) => {
            let launched = launch::launch(&argv).map_err(|e| match e {
                launch::LaunchError::Spawn { .. } => Error::bad_input(format!(
                    "{e}: check the program's path and that it is executable (hwbp runs it \
                     directly, without a shell)"
                )),
                other => Error::bad_input(other.to_string()),
            })?;
            let pid = launched.pid();
            Ok(PlannedTarget::Threads {
                pid,
                tids: vec![pid],
                launched: Some(launched),
            })
        }
    }
}
