//! Planning each watch: [`plan_watches`] turns parsed specs into [`PlannedWatch`]es in a
//! resolved target (symbols resolved in the process's or the kernel's tables, lengths chosen,
//! each symbol's DWARF type read once, pieces split and validated) and refuses a plan of more
//! than [`MAX_PIECES`] pieces; a watch expression is evaluated over the DWARF, with its value
//! chain unless `-l`, or planned as a local ([`crate::local`]).

use std::sync::Arc;

use hwbp_core::arch::native;
use hwbp_core::spec::WatchLocation;
use hwbp_core::Access;
use hwbp_linux::{memory, probe};
use hwbp_symbols::eval::{self, EvalError, LoadedModule, Scope};
use hwbp_symbols::expr::Expr;
use hwbp_symbols::{KernelSymbols, ProcessSymbols};

use super::chain::{self, ValueChain};
use crate::error::{Error, ErrorKind, Result};
use crate::hit::WatchId;

use super::pieces::{
    choose_len, split, split_by_leaves, validate_pieces, value_pieces_of, LEAF_SPLIT_FACTOR,
};
use super::typing::{dwarf_only_name, may_be_in_a_library, Modules};
use super::{
    expression_layout, expression_type, plural, ParsedSpec, PlanOptions, PlannedTarget,
    PlannedWatch, WatchPlan, MAX_PIECES,
};

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
            let whole_symbol = matches!(&resolved_symbol, Some((sym, 0)) if len == sym.size)
                && spec.access != Access::Execute;
            let mut pieces = split(&spec.text, spec.access, addr, len)?;
            // The symbol's DWARF type, read once: the value's type when the whole symbol is
            // watched, and what a watch of several pieces is split along and names hits by.
            let symbol_type = match (&resolved_symbol, modules.as_mut()) {
                (Some((sym, _)), Some(modules)) if whole_symbol || pieces.len() > 1 => {
                    Some(Arc::new(modules.symbol_type(sym)))
                }
                _ => None,
            };
            let value_type = symbol_type.clone().filter(|_| whole_symbol);
            let mut layout = None;
            let mut layout_offset = 0;
            if let (true, Some((_, offset)), Some(found)) =
                (pieces.len() > 1, &resolved_symbol, symbol_type)
            {
                if let Some(ty) = &found.ty {
                    if let Some(leaf_pieces) = split_by_leaves(ty, *offset, addr, len) {
                        if leaf_pieces.len() <= pieces.len() * LEAF_SPLIT_FACTOR {
                            pieces = leaf_pieces;
                        }
                    }
                    layout = Some(found);
                    layout_offset = *offset;
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
        if let Some(planned) = super::local::plan_local(id, text, parsed, access, &scope_modules) {
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
    let layout = expression_layout(&evaluated);
    let value = value_pieces_of(
        text,
        point.value_addr,
        evaluated.len,
        layout.as_deref(),
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
        layout,
        layout_offset: 0,
        value_type: Some(expression_type(&evaluated)),
        chain,
        local: None,
    })
}
