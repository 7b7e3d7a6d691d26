//! `hwbp ksym`: the kernel-symbol tracer. Watches kernel variables named by symbol on every
//! CPU and prints one trace line per access, then a table per symbol of accesses per accessing
//! function.
//!
//! It follows the filter syntax of the ftrace ksym tracer that the hw-breakpoint rewrite of
//! 2009 carried (`kernel/trace/trace_ksym.c`, removed in 2.6.36): `SYMBOL:OP`, where OP is three
//! characters in the positions `r`, `w`, `x`: `rw-` (reads and writes) or `-w-` (writes). Like
//! that tracer it registers a wide breakpoint (one per CPU, here all-or-nothing: if one CPU
//! refuses, none is armed) of 4 bytes, and allows at most 4 symbols (`HBP_NUM`). Added here:
//! `+OFF` and `/LEN` (`SYMBOL+0x10/8:rw-`), a raw kernel address instead of a symbol, and CPUs
//! that come online during the trace get the watch too.
//!
//! Names come from `/proc/kallsyms`, which lists variables only on kernels built with
//! `CONFIG_KALLSYMS_ALL`; otherwise from `--system-map` or `--vmlinux`, whose link-time
//! addresses are moved by the KASLR offset (the difference between the two `_text` symbols).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use hwbp_core::arch::native::{self, BreakpointRequest};
use hwbp_core::Access;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::target;
use hwbp_symbols::{KernelSymbols, SymbolKind};

use std::ops::ControlFlow;

use hwbp::{
    Hit, HitSink, Notice, PlannedTarget, PlannedWatch, WatchId, WatchOptions, WatchPlan, Watcher,
};

use crate::args::KsymArgs;
use crate::exit::usage;
use crate::output::print_notice;
use crate::plan::stop_handle;

/// `KSYM_TRACER_MAX` of the old tracer, which is `HBP_NUM`: the debug registers of one CPU.
const MAX_FILTERS: usize = 4;
/// The old tracer's fixed length (`HW_BREAKPOINT_LEN_4`).
const DEFAULT_LEN: u64 = 4;

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

/// The filters from the command line and `--file`, in order.
fn collect_filters(args: &KsymArgs) -> anyhow::Result<Vec<(String, KsymFilter)>> {
    let mut texts: Vec<String> = args.filters.clone();
    if let Some(path) = &args.file {
        let content = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read --file {}: {e}", path.display())))?;
        texts.extend(
            content
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if texts.is_empty() {
        return Err(usage(
            "no filter: give SYMBOL:rw- or SYMBOL:-w- (e.g. hwbp ksym 'pid_max:rw-'), or --file F",
        ));
    }
    if texts.len() > MAX_FILTERS {
        return Err(usage(format!(
            "{} filters, but a CPU has {MAX_FILTERS} debug registers: give at most {MAX_FILTERS}",
            texts.len()
        )));
    }
    texts
        .into_iter()
        .map(|t| parse_filter(&t).map(|f| (t, f)).map_err(usage))
        .collect()
}

/// Where names are looked up: the file given, moved by the KASLR offset, or kallsyms.
struct SymbolSource {
    table: Option<KernelSymbols>,
    kallsyms: Option<KernelSymbols>,
}

impl SymbolSource {
    fn load(args: &KsymArgs) -> anyhow::Result<SymbolSource> {
        let kallsyms = KernelSymbols::from_kallsyms().ok();
        let linked = match (&args.system_map, &args.vmlinux) {
            (Some(map), _) => Some(
                KernelSymbols::from_system_map(map)
                    .map_err(|e| usage(format!("--system-map: {e}")))?,
            ),
            (None, Some(vmlinux)) => Some(
                KernelSymbols::from_vmlinux(vmlinux)
                    .map_err(|e| usage(format!("--vmlinux: {e}")))?,
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
        Ok(SymbolSource { table, kallsyms })
    }

    fn resolve(&self, name: &str) -> anyhow::Result<(u64, Option<u64>, SymbolKind)> {
        let table = self
            .table
            .as_ref()
            .or(self.kallsyms.as_ref())
            .ok_or_else(|| {
                usage(
                "cannot read /proc/kallsyms (kernel.kptr_restrict hides addresses, or not root): \
                 run as root, or pass --system-map FILE / --vmlinux FILE",
            )
            })?;
        match table.resolve(name) {
            Ok(sym) => Ok((sym.addr, sym.size, sym.kind)),
            // The symbols crate already says that kallsyms lacks variables and to pass a map.
            Err(e) if self.table.is_none() && !table.has_data_symbols() => Err(usage(format!(
                "{e}. The System.map and vmlinux of a kernel come with its build tree or its \
                 debug package; or rebuild the kernel with CONFIG_KALLSYMS_ALL=y"
            ))),
            Err(e) => Err(usage(e.to_string())),
        }
    }
}

/// Counts per symbol and accessing function, and prints trace lines.
struct KsymSink<W: Write> {
    out: W,
    quiet: bool,
    /// watch -> accessing function -> accesses.
    by_function: Vec<BTreeMap<String, u64>>,
    /// watch -> the text printed for it in trace lines (`symbol+off`).
    names: Vec<String>,
    /// watch -> its access letters.
    access: Vec<&'static str>,
}

impl<W: Write> HitSink for KsymSink<W> {
    fn hit(&mut self, hit: &Hit) -> std::io::Result<ControlFlow<()>> {
        let ip = format!("{:#x}", hit.ip);
        let caller = match (hit.code.function(), hit.code.offset()) {
            (Some(f), Some(off)) => format!("{f}+{off:#x}"),
            _ => ip.clone(),
        };
        let function = hit.code.function().map_or(ip, str::to_string);
        let i = hit.watch.index();
        *self.by_function[i].entry(function).or_default() += 1;
        if !self.quiet {
            let mode = if hit.kernel { "" } else { " (user mode)" };
            writeln!(
                self.out,
                "{:>16}-{:<7} [{:03}] {:<28} {:<2} {caller}{mode}",
                hit.comm,
                hit.tid,
                hit.cpu.unwrap_or_default(),
                self.names[i],
                access_column(self.access[i])
            )?;
        }
        Ok(ControlFlow::Continue(()))
    }

    fn notice(&mut self, notice: &Notice) -> std::io::Result<()> {
        print_notice(notice, true);
        Ok(())
    }

    fn idle(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The old tracer's type column: `RW` or `W`.
fn access_column(letters: &str) -> &'static str {
    match letters {
        "w" => "W",
        "r" => "R",
        _ => "RW",
    }
}

/// Runs `hwbp ksym`.
pub fn run(args: KsymArgs) -> anyhow::Result<()> {
    let filters = collect_filters(&args)?;
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(usage(format!(
                "--duration {d} is not a positive number of seconds: use e.g. --duration 5"
            )));
        }
    }
    let source = SymbolSource::load(&args)?;
    let cpus = match &args.cpus {
        Some(list) => {
            let cpus = target::parse_cpu_arg(list).map_err(|e| usage(e.to_string()))?;
            target::require_online(&cpus).map_err(|e| usage(e.to_string()))?;
            cpus
        }
        None => target::online_cpus()?,
    };
    let cap_sys_admin = hwbp_linux::probe::is_root();
    let mut watches = Vec::new();
    let mut names = Vec::new();
    for (text, filter) in &filters {
        let (base, size, kind, shown) = match (&filter.symbol, filter.address) {
            (Some(name), _) => {
                let (addr, size, kind) = source.resolve(name)?;
                (addr, size, kind, name.clone())
            }
            (None, Some(addr)) => (addr, None, SymbolKind::Data, format!("{addr:#x}")),
            (None, None) => unreachable!("parse_filter gives a symbol or an address"),
        };
        if kind == SymbolKind::Function {
            eprintln!(
                "hwbp: note: {shown} is a function: its bytes are read only by code that reads \
                 kernel text, not by running it (execute breakpoints need kprobes)"
            );
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
            .map_err(|e| usage(format!("filter '{text}': {e}")))?;
        names.push(format!("{shown}+{:#x}", filter.offset));
        watches.push(PlannedWatch {
            id: WatchId(watches.len()),
            label: text.as_str().into(),
            addr,
            len,
            access: filter.access,
            pieces: vec![WatchRequest {
                addr,
                len,
                access: filter.access,
                pinned: true,
                exclude_kernel: false,
                exclude_user: true,
            }],
            kernel_address: true,
            layout: None,
            layout_offset: 0,
            value_type: None,
            chain: None,
        });
    }
    let access = watches.iter().map(|w| w.access.letters()).collect();
    let plan = WatchPlan::from_watches(
        watches,
        PlannedTarget::Cpus {
            all: args.cpus.is_none(),
            cpus,
        },
        source.kallsyms.or(source.table),
    );
    let options = WatchOptions {
        max_hits: args.max_hits,
        duration: args.duration.map(Duration::from_secs_f64),
        read_values: false,
        ..WatchOptions::default()
    };
    let stdout = std::io::stdout();
    let mut sink = KsymSink {
        out: std::io::BufWriter::new(stdout.lock()),
        quiet: args.quiet,
        by_function: vec![BTreeMap::new(); filters.len()],
        names,
        access,
    };
    if !args.quiet {
        writeln!(
            sink.out,
            "#{:>15}-{:<7} {:<5} {:<28} {:<2} FUNCTION",
            "TASK", "PID", "CPU#", "SYMBOL", "TYPE"
        )?;
    }
    let summary = Watcher::new(plan, options)
        .with_stop_handle(stop_handle())
        .run(&mut sink)
        .context("ksym trace failed")?;
    let out = &mut sink.out;
    writeln!(
        out,
        "\nksym summary after {:.3}s ({}):",
        summary.duration_s, summary.ended_by
    )?;
    for (i, (total, (text, _))) in summary.watchpoints.iter().zip(&filters).enumerate() {
        let name = &sink.names[i];
        writeln!(
            out,
            "{name} ({}, {} bytes at {}): {} accesses{}",
            access_column(total_access(text)),
            total.len,
            total.address,
            total.hits,
            if total.lost > 0 {
                format!(", {} not reported (ring full)", total.lost)
            } else {
                String::new()
            }
        )?;
        let mut rows: Vec<(&String, &u64)> = sink.by_function[i].iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (function, count) in rows {
            writeln!(out, "  {count:>10}  {function}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The access letters of a filter text (already validated).
fn total_access(text: &str) -> &'static str {
    if text.ends_with("-w-") {
        "w"
    } else {
        "rw"
    }
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

    #[test]
    fn access_column_matches_the_old_tracer() {
        assert_eq!(access_column("rw"), "RW");
        assert_eq!(access_column("w"), "W");
    }
}
