//! From what the user typed to a validated plan: watch specs resolved to addresses, lengths
//! chosen, each piece checked against the kernel's x86 rules (`hwbp_core::arch::x86`) before
//! any event is opened, and the target found (threads of a process, a launched command, CPUs).
//!
//! A region wider than one debug register (a struct, an array, `ADDR/LEN` of any length) is
//! split into aligned 1/2/4/8-byte pieces (`hwbp_core::region`); when the symbol's type is
//! known from DWARF ([`VariableLayout`]) the pieces also follow its leaf members, so a hit on
//! a piece names one field or element. More pieces than free debug registers is not an error
//! here: the runner makes the overflow flexible and rotates it (`hwbp_core::sched`).
//!
//! Everything refused here is bad input: a [`crate::exit::usage`] error, exit code 2, and no
//! kernel state changed (a command hwbp launched for the watch is killed before it ran its
//! first instruction).

use anyhow::Context;
use hwbp_core::arch::x86::{validate_breakpoint, BreakpointRequest, X86Environment};
use hwbp_core::region;
use hwbp_core::spec::{WatchLocation, WatchSpec};
use hwbp_core::Access;
use hwbp_linux::launch::{self, LaunchedProcess};
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::target;
use hwbp_symbols::dwarf::VariableLayout;
use hwbp_symbols::{KernelSymbols, ProcessSymbols};

use crate::args::{CommonWatchArgs, RotationArgs};
use crate::exit::usage;

/// Largest single debug-register piece on x86_64.
const MAX_PIECE: u64 = 8;
/// Most pieces one run may rotate through: beyond this each piece would be armed less than
/// 1/1000 of the time, and its estimate would mean nothing.
pub const MAX_PIECES: usize = 1024;
/// A layout-guided split may use up to this many times the pieces of a plain split (a
/// `char[4096]` split per element would need 4096 pieces instead of 512).
const LEAF_SPLIT_FACTOR: usize = 2;
/// `TASK_SIZE_MAX` on x86_64 with 4-level paging: addresses at or above are kernel space.
const TASK_SIZE_MAX: u64 = hwbp_core::arch::x86::validate::TASK_SIZE_MAX_X86_64;

/// One watch as the user asked for it, resolved.
#[derive(Debug, Clone)]
pub struct PlannedWatch {
    /// The spec as written.
    pub label: String,
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
    /// The DWARF layout of the symbol watched, when the watch needs several pieces and the
    /// symbol's type is known: names the field or element of each hit.
    pub layout: Option<VariableLayout>,
    /// Offset of [`addr`](Self::addr) inside the variable of [`layout`](Self::layout).
    pub layout_offset: u64,
}

impl PlannedWatch {
    /// Names the part of the watch at byte `offset` from its start: the DWARF path of the
    /// field or element (`cfg.limits[2].max`, or `first..last` when a piece spans several
    /// members), else `+0xNN`. `len` is the piece's length.
    pub fn field_at(&self, offset: u64, len: u64) -> String {
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
}

/// What the watch runs on.
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
    /// Every task on these CPUs.
    Cpus(Vec<u32>),
}

/// The validated plan.
pub struct Plan {
    /// The watches, in the order given.
    pub watches: Vec<PlannedWatch>,
    /// The target.
    pub target: PlannedTarget,
    /// Symbols of the target process, when there is one.
    pub symbols: Option<ProcessSymbols>,
    /// Kernel symbols, when a spec named one.
    pub kernel_symbols: Option<KernelSymbols>,
    /// `--flexible` and `--rotate-ms`.
    pub rotation: RotationArgs,
}

/// True when this process may see kernel-mode accesses (root, or `perf_event_paranoid <= 1`).
fn may_watch_kernel_mode() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .is_some_and(|level| level <= 1)
}

/// Builds the plan with the default rotation settings (pinned while they fit, 10 ms).
pub fn plan(common: &CommonWatchArgs) -> anyhow::Result<Plan> {
    plan_with(common, RotationArgs::default())
}

/// Builds the plan for `watch`/`stat`.
pub fn plan_with(common: &CommonWatchArgs, rotation: RotationArgs) -> anyhow::Result<Plan> {
    if rotation.rotate_ms == 0 {
        return Err(usage(
            "--rotate-ms 0: flexible watches need at least 1 ms on a register, e.g. --rotate-ms 10",
        ));
    }
    let specs = common
        .specs
        .iter()
        .map(|text| WatchSpec::parse(text).map_err(|e| usage(e.to_string())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if common.ring_pages == 0 || !common.ring_pages.is_power_of_two() {
        return Err(usage(format!(
            "--ring-pages {} is not a power of two: use e.g. 64, 256 or 1024",
            common.ring_pages
        )));
    }
    if let Some(d) = common.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(usage(format!(
                "--duration {d} is not a positive number of seconds: use e.g. --duration 5"
            )));
        }
    }
    let target = plan_target(common)?;
    let pid = match &target {
        PlannedTarget::Threads { pid, .. } => Some(*pid),
        PlannedTarget::Cpus(_) => None,
    };
    let symbols = match pid {
        Some(pid)
            if specs
                .iter()
                .any(|s| matches!(s.location, WatchLocation::Symbol { .. })) =>
        {
            Some(
                ProcessSymbols::load(pid as u32)
                    .with_context(|| format!("cannot read the symbols of process {pid}"))?,
            )
        }
        Some(pid) => ProcessSymbols::load(pid as u32).ok(),
        None => None,
    };
    let mut kernel_symbols = None;
    let kernel_mode_allowed = may_watch_kernel_mode();
    let mut watches = Vec::new();
    for spec in &specs {
        let mut resolved_symbol = None;
        let (addr, symbol_size) = match &spec.location {
            WatchLocation::Address(addr) => (*addr, None),
            WatchLocation::Symbol { name, offset } => match &symbols {
                Some(symbols) => {
                    let sym = symbols.resolve(name).map_err(|e| usage(e.to_string()))?;
                    let found = (
                        sym.addr.wrapping_add(*offset),
                        (*offset == 0).then_some(sym.size),
                    );
                    resolved_symbol = Some((sym, *offset));
                    found
                }
                None => {
                    if kernel_symbols.is_none() {
                        kernel_symbols = Some(
                            KernelSymbols::from_kallsyms()
                                .context("cannot read kernel symbols from /proc/kallsyms")?,
                        );
                    }
                    let ksyms = kernel_symbols.as_ref().expect("loaded above");
                    let sym = ksyms.resolve(name).map_err(|e| usage(e.to_string()))?;
                    (
                        sym.addr.wrapping_add(*offset),
                        sym.size.filter(|_| *offset == 0),
                    )
                }
            },
        };
        let len = choose_len(spec, addr, symbol_size)?;
        let kernel_address = addr >= TASK_SIZE_MAX;
        let exclude_kernel =
            spec.exclude_kernel || (!kernel_address && (common.user_only || !kernel_mode_allowed));
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
                    layout = Some(found);
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
            let env = X86Environment {
                exclude_kernel,
                cap_sys_admin: nix::unistd::geteuid().is_root(),
                kprobes: false,
                ..X86Environment::x86_64()
            };
            validate_breakpoint(&request, &env)
                .map_err(|e| usage(format!("watch '{}': {e}", spec.text)))?;
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
            label: spec.text.clone(),
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
        return Err(usage(format!(
            "{} need {pieces} debug-register pieces; hwbp rotates at most {MAX_PIECES} \
             (each would be armed too rarely to estimate anything): narrow them with /LEN \
             or run hwbp once per part",
            plural_watches(watches.len()),
        )));
    }
    Ok(Plan {
        watches,
        target,
        symbols,
        kernel_symbols,
        rotation,
    })
}

fn plural_watches(n: usize) -> String {
    if n == 1 {
        "1 watch".to_string()
    } else {
        format!("{n} watches")
    }
}

/// The length to watch: as given, else the symbol's size when a debug register can hold it,
/// else the widest aligned length at the address.
fn choose_len(spec: &WatchSpec, addr: u64, symbol_size: Option<u64>) -> anyhow::Result<u64> {
    if let Some(len) = spec.len {
        return Ok(len);
    }
    if spec.access == Access::Execute {
        return Ok(8);
    }
    match symbol_size {
        Some(size) if size > 0 => Ok(size),
        _ => Ok([8, 4, 2, 1]
            .into_iter()
            .find(|len| addr.is_multiple_of(*len))
            .unwrap_or(1)),
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
        for piece in region::split_region(piece_addr, leaf_end - leaf_start, MAX_PIECE).ok()? {
            pieces.push((piece.addr, piece.len));
        }
        covered_to = leaf_end;
    }
    (!pieces.is_empty()).then_some(pieces)
}

/// Splits `[addr, addr+len)` into debug-register pieces; refuses regions that would need more
/// than [`MAX_PIECES`].
fn split(spec: &WatchSpec, addr: u64, len: u64) -> anyhow::Result<Vec<(u64, u64)>> {
    if spec.access == Access::Execute
        || (len <= MAX_PIECE && addr.is_multiple_of(len) && len.is_power_of_two())
    {
        return Ok(vec![(addr, len)]);
    }
    let needed = region::pieces_needed(addr, len, MAX_PIECE)
        .map_err(|e| usage(format!("watch '{}': {e}", spec.text)))?;
    if needed > MAX_PIECES {
        return Err(usage(format!(
            "watch '{}': {len} bytes at {addr:#x} need {} debug-register pieces; hwbp rotates \
             at most {MAX_PIECES}: watch a part of it with /LEN (e.g. {}/64)",
            spec.text,
            needed,
            spec.text.split(['/', ':']).next().unwrap_or(&spec.text),
        )));
    }
    let pieces = region::split_region(addr, len, MAX_PIECE)
        .map_err(|e| usage(format!("watch '{}': {e}", spec.text)))?;
    Ok(pieces.into_iter().map(|p| (p.addr, p.len)).collect())
}

/// `CAP_SYS_PTRACE`'s bit in the capability sets (`include/uapi/linux/capability.h`).
const CAP_SYS_PTRACE: u32 = 19;

/// True when this process's effective capability set holds capability `bit`.
fn has_capability(bit: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// Refuses, before any event is opened, a process of another user when this process may not
/// ptrace it: `perf_event_open` on a task needs `ptrace_may_access(PTRACE_MODE_READ_REALCREDS)`
/// (`kernel/events/core.c`), which without `CAP_SYS_PTRACE` requires the same user
/// (`kernel/ptrace.c`). Whatever the answer here, the kernel still decides at open time.
fn require_ptrace_access(pid: i32) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(owner) = std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid()) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if owner == me || has_capability(CAP_SYS_PTRACE) {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "process {pid} belongs to uid {owner}, not to you (uid {me}): watching another user's \
         process needs CAP_SYS_PTRACE; run hwbp as that user, or as root"
    ))
}

/// A target that does not exist, with what to do about it.
fn target_error(e: target::TargetError) -> anyhow::Error {
    match e {
        target::TargetError::NoSuchProcess(_) | target::TargetError::NoSuchThread { .. } => {
            usage(format!("{e}: check the id with ps -eLf or pgrep"))
        }
        other => usage(other.to_string()),
    }
}

fn plan_target(common: &CommonWatchArgs) -> anyhow::Result<PlannedTarget> {
    let t = &common.target;
    let given = [
        t.pid.is_some(),
        t.tid.is_some(),
        t.all_cpus,
        t.cpus.is_some(),
        !t.command.is_empty(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given == 0 {
        return Err(usage(
            "no target: give -p PID, -t TID, -a (all CPUs), -C LIST, or a command after --",
        ));
    }
    if given > 1 {
        return Err(usage(
            "give only one target: -p PID, -t TID, -a, -C LIST, or -- CMD",
        ));
    }
    if let Some(pid) = t.pid {
        let tids = target::threads_of(pid).map_err(target_error)?;
        require_ptrace_access(pid)?;
        return Ok(PlannedTarget::Threads {
            pid,
            tids,
            launched: None,
        });
    }
    if let Some(tid) = t.tid {
        let pid = target::process_of_thread(tid).map_err(target_error)?;
        require_ptrace_access(pid)?;
        return Ok(PlannedTarget::Threads {
            pid,
            tids: vec![tid],
            launched: None,
        });
    }
    if t.all_cpus {
        return Ok(PlannedTarget::Cpus(target::online_cpus()?));
    }
    if let Some(list) = &t.cpus {
        let cpus = target::parse_cpu_arg(list).map_err(|e| usage(e.to_string()))?;
        target::require_online(&cpus).map_err(|e| usage(e.to_string()))?;
        return Ok(PlannedTarget::Cpus(cpus));
    }
    let launched = launch::launch(&t.command).map_err(|e| match e {
        launch::LaunchError::Spawn { .. } => usage(format!(
            "{e}: check the program's path and that it is executable (hwbp runs it directly, \
             without a shell)"
        )),
        other => usage(other.to_string()),
    })?;
    let pid = launched.pid();
    Ok(PlannedTarget::Threads {
        pid,
        tids: vec![pid],
        launched: Some(launched),
    })
}
