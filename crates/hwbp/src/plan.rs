//! [`WatchPlan`]: from what the user named to a validated plan, before any event is opened.
//!
//! Watch specs are parsed (`hwbp_core::spec`: hwbp's own, perf's `mem:` and bpftrace's
//! `watchpoint:` forms), symbols resolved in the target's executable and libraries (PIE/ASLR
//! aware) or the kernel's, lengths chosen (a symbol's size by default), and each piece checked
//! against the native architecture's rules (`hwbp_core::arch::native`, the kernel's
//! `hw_breakpoint_arch_parse` order) and the kernel-mode policy (`exclude_kernel` unless this
//! process may see kernel-mode accesses). A region wider than one debug register (a struct, an
//! array, `ADDR/LEN` of any length) is split into aligned pieces (`hwbp_core::region`); when the
//! symbol's type is known from DWARF the pieces follow its leaf members, so a hit names one field
//! or element. More pieces than free registers is not an error here: the perf watcher rotates
//! them (`hwbp_core::sched`).
//!
//! Everything refused here is [`ErrorKind::BadInput`](crate::ErrorKind::BadInput) and leaves no
//! kernel state: a command launched for the watch is killed before its first instruction when
//! the plan is dropped unused.
//!
//! A [`Target::Launch`] command is started (stopped at its entry point under ptrace) while the
//! plan is built, so its symbols can be resolved; the [`crate::Watcher`] must then run on the
//! same thread, which ptrace ties to the command.

use std::ffi::OsString;
use std::sync::Arc;

use hwbp_core::arch::native::{self, BreakpointRequest};
use hwbp_core::region;
use hwbp_core::spec::{WatchLocation, WatchSpec};
use hwbp_core::Access;
use hwbp_linux::launch::{self, LaunchedProcess};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::{probe, target};
use hwbp_symbols::dwarf::VariableLayout;
use hwbp_symbols::{KernelSymbols, ProcessSymbols};

use crate::error::{Error, ErrorKind, Result};
use crate::hit::WatchId;

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
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            user_only: false,
            flexible: false,
            rotate_ms: hwbp_core::sched::DEFAULT_QUANTUM_NS / 1_000_000,
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

    /// The member of piece `piece` (an index into [`pieces`](Self::pieces)), for a watch of
    /// several pieces; `None` for a one-piece watch.
    pub fn piece_member(&self, piece: usize) -> Option<String> {
        if self.pieces.len() < 2 {
            return None;
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
                launched: Some(_),
                ..
            } => format!("the command (pid {pid})"),
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
            .map(|text| WatchSpec::parse(text).map_err(|e| Error::bad_input(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        let Some(target) = self.target else {
            return Err(Error::bad_input(
                "no target: give -p PID, -t TID, -a (all CPUs), -C LIST, or a command after --",
            ));
        };
        let target = resolve_target(target)?;
        let needs_symbols = specs
            .iter()
            .any(|s| matches!(s.location, WatchLocation::Symbol { .. }));
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
        let mut kernel_symbols: Option<Arc<KernelSymbols>> = None;
        let kernel_mode_allowed = probe::may_watch_kernel_mode();
        let mut watches = Vec::new();
        for spec in &specs {
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
                || (!kernel_address && (self.options.user_only || !kernel_mode_allowed));
            let exclude_user = spec.exclude_user || kernel_address;
            let mut pieces = split(spec, addr, len)?;
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
            let mut requests = Vec::with_capacity(pieces.len());
            for (piece_addr, piece_len) in pieces {
                let request = BreakpointRequest {
                    addr: piece_addr,
                    len: piece_len,
                    bp_type: spec.access.bp_type(),
                };
                native::validate(&request, exclude_kernel, probe::is_root())
                    .map_err(|e| Error::bad_input(format!("watch '{}': {e}", spec.text)))?;
                requests.push(WatchRequest {
                    addr: piece_addr,
                    len: piece_len,
                    access: spec.access,
                    pinned: true,
                    exclude_kernel,
                    exclude_user,
                });
            }
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
            options: self.options,
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
/// than [`MAX_PIECES`].
fn split(spec: &WatchSpec, addr: u64, len: u64) -> Result<Vec<(u64, u64)>> {
    let max = native::MAX_PIECE;
    if spec.access == Access::Execute
        || (len <= max && addr.is_multiple_of(len) && len.is_power_of_two())
    {
        return Ok(vec![(addr, len)]);
    }
    let needed = region::pieces_needed(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{}': {e}", spec.text)))?;
    if needed > MAX_PIECES {
        return Err(Error::bad_input(format!(
            "watch '{}': {len} bytes at {addr:#x} need {} debug-register pieces; hwbp rotates \
             at most {MAX_PIECES}: watch a part of it with /LEN (e.g. {}/64)",
            spec.text,
            needed,
            spec.text.split(['/', ':']).next().unwrap_or(&spec.text),
        )));
    }
    let pieces = region::split_region(addr, len, max)
        .map_err(|e| Error::bad_input(format!("watch '{}': {e}", spec.text)))?;
    Ok(pieces.into_iter().map(|p| (p.addr, p.len)).collect())
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
