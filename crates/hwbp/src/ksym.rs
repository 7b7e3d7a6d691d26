//! The kernel-symbol tracer's plan (`hwbp ksym`): filters in the syntax of the ftrace ksym
//! tracer that the hw-breakpoint rewrite of 2009 carried (`kernel/trace/trace_ksym.c`, removed
//! in 2.6.36): `SYMBOL[+OFF][/LEN]:OP`, OP `rw-` (reads and writes) or `-w-` (writes), at most 4
//! (`HBP_NUM`), 4 bytes by default (`HW_BREAKPOINT_LEN_4`), kernel mode only, on CPUs.
//!
//! Names come from `/proc/kallsyms`, which lists variables only on kernels built with
//! `CONFIG_KALLSYMS_ALL`; otherwise from a `System.map` or a `vmlinux`, whose link-time
//! addresses are moved by the KASLR offset (the difference between the two `_text` symbols).

use std::path::Path;

use hwbp_core::arch::native::{self, BreakpointRequest};
use hwbp_core::Access;
use hwbp_linux::perf::WatchRequest;
use hwbp_symbols::{KernelSymbols, SymbolKind};

use crate::error::{Error, Result};
use crate::hit::WatchId;
use crate::plan::{PlannedTarget, PlannedWatch, WatchPlan};

/// `KSYM_TRACER_MAX` of the old tracer, which is `HBP_NUM`: the debug registers of one CPU.
pub const MAX_FILTERS: usize = 4;
/// The old tracer's fixed length (`HW_BREAKPOINT_LEN_4`).
pub const DEFAULT_LEN: u64 = 4;

/// One parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KsymFilter {
    /// The symbol name, or `None` for a raw address.
    pub symbol: Option<String>,
    /// The raw address when no symbol was given.
    pub address: Option<u64>,
    /// Byte offset added to the symbol.
    pub offset: u64,
    /// Bytes watched, when given with `/LEN`.
    pub len: Option<u64>,
    /// `rw-` → reads and writes, `-w-` → writes.
    pub access: Access,
}

/// Parses one filter (`SYMBOL[+OFF][/LEN]:OP`); messages say what would work.
pub fn parse_filter(text: &str) -> Result<KsymFilter, String> {
    let (what, op) = text.rsplit_once(':').ok_or_else(|| {
        format!("filter '{text}' has no ':OP': write it as SYMBOL:rw- or SYMBOL:-w-")
    })?;
    let access = match op {
        "rw-" => Access::ReadWrite,
        "-w-" => Access::Write,
        "r--" => {
            return Err(format!(
                "filter '{text}': x86 debug registers cannot watch reads alone: use {what}:rw-"
            ))
        }
        "---" => {
            return Err(format!(
                "filter '{text}': '---' removed an entry from the old tracer's filter file; \
                 here just leave {what} out"
            ))
        }
        op if op.len() == 3 && op.ends_with('x') => {
            return Err(format!(
                "filter '{text}': execute breakpoints are not part of the ksym tracer (and this \
                 kernel refuses kernel execute breakpoints without kprobes): use rw- or -w-"
            ))
        }
        _ => {
            return Err(format!(
                "filter '{text}': OP '{op}' is not rw- or -w- (three characters: r, w, then -)"
            ))
        }
    };
    let (what, len) = match what.split_once('/') {
        Some((what, len)) => {
            let len = parse_number(len)
                .filter(|l| matches!(l, 1 | 2 | 4 | 8))
                .ok_or_else(|| format!("filter '{text}': /LEN must be 1, 2, 4 or 8"))?;
            (what, Some(len))
        }
        None => (what, None),
    };
    let (name, offset) = match what.split_once('+') {
        Some((name, off)) => (
            name,
            parse_number(off)
                .ok_or_else(|| format!("filter '{text}': offset '{off}' is not a number"))?,
        ),
        None => (what, 0),
    };
    if name.is_empty() {
        return Err(format!("filter '{text}' names no symbol"));
    }
    let address = name
        .strip_prefix("0x")
        .map(|hex| u64::from_str_radix(hex, 16))
        .transpose()
        .map_err(|_| format!("filter '{text}': '{name}' is not a hex address"))?;
    Ok(KsymFilter {
        symbol: address.is_none().then(|| name.to_string()),
        address,
        offset,
        len,
        access,
    })
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Parses the filters (as given, in order), refusing more than [`MAX_FILTERS`].
pub fn parse_filters(texts: Vec<String>) -> Result<Vec<(String, KsymFilter)>> {
    if texts.is_empty() {
        return Err(Error::bad_input(
            "no filter: give SYMBOL:rw- or SYMBOL:-w- (e.g. hwbp ksym 'pid_max:rw-'), or --file F",
        ));
    }
    if texts.len() > MAX_FILTERS {
        return Err(Error::bad_input(format!(
            "{} filters, but a CPU has {MAX_FILTERS} debug registers: give at most {MAX_FILTERS}",
            texts.len()
        )));
    }
    texts
        .into_iter()
        .map(|t| parse_filter(&t).map(|f| (t, f)).map_err(Error::bad_input))
        .collect()
}

/// Where kernel names are looked up: a `System.map` or `vmlinux` moved by the KASLR offset,
/// else `/proc/kallsyms`.
#[derive(Debug)]
pub struct KernelSymbolSource {
    table: Option<KernelSymbols>,
    kallsyms: Option<KernelSymbols>,
}

impl KernelSymbolSource {
    /// Loads `system_map` or `vmlinux` (at most one) and `/proc/kallsyms`.
    pub fn load(system_map: Option<&Path>, vmlinux: Option<&Path>) -> Result<KernelSymbolSource> {
        let kallsyms = KernelSymbols::from_kallsyms().ok();
        let linked = match (system_map, vmlinux) {
            (Some(map), _) => Some(
                KernelSymbols::from_system_map(map)
                    .map_err(|e| Error::bad_input(format!("--system-map: {e}")))?,
            ),
            (None, Some(vmlinux)) => Some(
                KernelSymbols::from_vmlinux(vmlinux)
                    .map_err(|e| Error::bad_input(format!("--vmlinux: {e}")))?,
            ),
            (None, None) => None,
        };
        let table = match (linked, &kallsyms) {
            (Some(linked), Some(running)) => {
                let offset = linked.kaslr_offset_from(running).unwrap_or(0);
                Some(linked.with_kaslr_offset(offset))
            }
            (linked, _) => linked,
        };
        Ok(KernelSymbolSource { table, kallsyms })
    }

    fn resolve(&self, name: &str) -> Result<(u64, Option<u64>, SymbolKind)> {
        let table = self
            .table
            .as_ref()
            .or(self.kallsyms.as_ref())
            .ok_or_else(|| {
                Error::bad_input(
                    "cannot read /proc/kallsyms (kernel.kptr_restrict hides addresses, or not \
                     root): run as root, or pass --system-map FILE / --vmlinux FILE",
                )
            })?;
        match table.resolve(name) {
            Ok(sym) => Ok((sym.addr, sym.size, sym.kind)),
            // The symbols crate already says that kallsyms lacks variables and to pass a map.
            Err(e) if self.table.is_none() && !table.has_data_symbols() => {
                Err(Error::bad_input(format!(
                    "{e}. The System.map and vmlinux of a kernel come with its build tree or \
                     its debug package; or rebuild the kernel with CONFIG_KALLSYMS_ALL=y"
                )))
            }
            Err(e) => Err(Error::bad_input(e.to_string())),
        }
    }
}

/// A planned ksym trace: the plan, how each watch is shown in trace lines (`symbol+off`), and
/// notes for the user (a filter on a function).
#[derive(Debug)]
pub struct KsymPlan {
    /// The plan: one kernel-mode watch per filter on `cpus`.
    pub plan: WatchPlan,
    /// Per watch, the name trace lines show (`pid_max+0x0`).
    pub names: Vec<String>,
    /// Notes worth saying before the trace starts.
    pub notes: Vec<String>,
}

/// Resolves the filters with `source` and plans them on `cpus` (`all`: every online CPU,
/// following hotplug).
pub fn plan(
    filters: &[(String, KsymFilter)],
    source: KernelSymbolSource,
    cpus: Vec<u32>,
    all: bool,
) -> Result<KsymPlan> {
    let cap_sys_admin = hwbp_linux::probe::is_root();
    let mut watches = Vec::new();
    let mut names = Vec::new();
    let mut notes = Vec::new();
    for (text, filter) in filters {
        let (base, size, kind, shown) = match (&filter.symbol, filter.address) {
            (Some(name), _) => {
                let (addr, size, kind) = source.resolve(name)?;
                (addr, size, kind, name.clone())
            }
            (None, Some(addr)) => (addr, None, SymbolKind::Data, format!("{addr:#x}")),
            (None, None) => unreachable!("parse_filter gives a symbol or an address"),
        };
        if kind == SymbolKind::Function {
            notes.push(format!(
                "note: {shown} is a function: its bytes are read only by code that reads \
                 kernel text, not by running it (execute breakpoints need kprobes)"
            ));
        }
        let addr = base.wrapping_add(filter.offset);
        let len = filter.len.unwrap_or_else(|| {
            let wanted = size
                .filter(|s| filter.offset == 0 && matches!(s, 1 | 2 | 4 | 8))
                .unwrap_or(DEFAULT_LEN)
                .min(8);
            [wanted, 4, 2, 1]
                .into_iter()
                .find(|l| *l <= wanted && addr.is_multiple_of(*l))
                .unwrap_or(1)
        });
        let request = BreakpointRequest {
            addr,
            len,
            bp_type: filter.access.bp_type(),
        };
        native::validate(&request, false, cap_sys_admin)
            .map_err(|e| Error::bad_input(format!("filter '{text}': {e}")))?;
        names.push(format!("{shown}+{:#x}", filter.offset));
        let piece = WatchRequest {
            addr,
            len,
            access: filter.access,
            pinned: true,
            exclude_kernel: false,
            exclude_user: true,
        };
        let id = WatchId(watches.len());
        watches.push(PlannedWatch {
            kernel_address: true,
            ..PlannedWatch::untyped(id, text, (addr, len), filter.access, vec![piece])
        });
    }
    let kernel = source.kallsyms.or(source.table);
    Ok(KsymPlan {
        plan: WatchPlan::from_watches(watches, PlannedTarget::Cpus { cpus, all }, kernel),
        names,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_ksym_tracer_syntax() {
        let f = parse_filter("pid_max:rw-").unwrap();
        assert_eq!(f.symbol.as_deref(), Some("pid_max"));
        assert_eq!((f.offset, f.len, f.access), (0, None, Access::ReadWrite));
        let f = parse_filter("jiffies+0x4/4:-w-").unwrap();
        assert_eq!((f.offset, f.len, f.access), (4, Some(4), Access::Write));
        let f = parse_filter("0xffffffff82000000:rw-").unwrap();
        assert_eq!((f.symbol, f.address), (None, Some(0xffff_ffff_8200_0000)));
    }

    #[test]
    fn bad_filters_say_what_would_work() {
        let cases = [
            ("pid_max", "has no ':OP'"),
            ("pid_max:r--", "use pid_max:rw-"),
            ("pid_max:--x", "execute breakpoints"),
            ("pid_max:rw", "is not rw- or -w-"),
            ("pid_max:---", "leave pid_max out"),
            ("pid_max/3:rw-", "/LEN must be 1, 2, 4 or 8"),
            (":rw-", "names no symbol"),
            ("pid_max+zz:rw-", "offset 'zz' is not a number"),
        ];
        for (text, expected) in cases {
            let e = parse_filter(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
