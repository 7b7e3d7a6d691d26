//! # hwbp-symbols
//!
//! Names to addresses and addresses to names, for the processes and the kernel that hwbp
//! watches:
//!
//! - [`maps`]: `/proc/PID/maps` parsing ([`ProcessMaps`], [`MapEntry`]).
//! - [`process`]: [`ProcessSymbols`] snapshots a process's ELF modules and their load biases,
//!   resolves `my_crate::COUNTER` / `counter` to runtime addresses, symbolizes hit IPs to
//!   `function+0x12 (file.c:31)` (DWARF lines through blazesym), and finds the accessing
//!   instruction before an x86 trap IP. Works from the ELF files and the snapshot, so hits are
//!   symbolized after the process has exited.
//! - [`kernel`]: [`KernelSymbols`] from `/proc/kallsyms`, a `System.map` or a `vmlinux`.
//! - [`expr`]: watch expressions (`cfg.limits[2].max`, `conn->state`, `'file.c'::var`,
//!   `*(T *)0xADDR`): parser, AST, telling them apart from specs.
//! - [`types`]: [`types::ModuleDebug`], a module's DWARF variables and [`types::Type`]s, which
//!   also name the field or element (`cfg.limits[2].max`) at a byte offset.
//! - [`eval`]: [`eval::evaluate`] an expression to address, length, type and the pointers read.
//! - [`value`]: typed values as gdb prints them, diffs of structs/arrays, typed `--if`.
//! - [`debuglink`]: separate debug files (build ID, `.gnu_debuglink`, debuginfod cache).
//!
//! The facade's path for a watch spec:
//!
//! ```no_run
//! use hwbp_symbols::{eval, expr, value, ProcessSymbols};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pid = 1234;
//! let (text, access) = expr::split_access("cfg.limits[2].max:rw");
//! assert!(expr::looks_like_expression(text));
//! let symbols = ProcessSymbols::load(pid)?;
//! let modules = eval::LoadedModule::for_process(&symbols);
//! let scope = eval::Scope { modules: &modules, symbols: Some(&symbols) };
//! let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
//! let mut read = |addr: u64, buf: &mut [u8]| {
//!     std::os::unix::fs::FileExt::read_exact_at(&mem, buf, addr).is_ok()
//! };
//! let watched = eval::evaluate(&expr::parse(text)?, &scope, &mut read)?;
//! // watch watched.addr .. + watched.len with `access`, and every watched.pointer_reads entry.
//! let mut bytes = vec![0; watched.len as usize];
//! read(watched.addr, &mut bytes);
//! let shown = match &watched.ty {
//!     Some(ty) => value::format_value(ty, &bytes, &mut |a| symbols.data_symbol(a)),
//!     None => value::format_untyped(&bytes),
//! };
//! println!("{} = {shown} ({access:?})", watched.expr);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod cache;
pub mod debuglink;
mod elf;
mod error;
pub mod eval;
pub mod expr;
pub mod kernel;
pub mod local;
pub mod maps;
pub mod process;
pub mod store;
pub mod types;
pub mod unwind;
pub mod value;

pub use error::SymbolError;
pub use kernel::{KernelSymbol, KernelSymbols};
pub use maps::{MapEntry, ProcessMaps};
pub use process::{
    CodeLocation, InlinedCall, ModuleInfo, ModuleOffset, ProcessSymbols, ResolvedSymbol,
};

/// What a symbol names, from its ELF `STT_*` type or its `nm` letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    /// A variable (`STT_OBJECT`/`STT_TLS`; nm `d D b B r R v V`).
    Data,
    /// Code (`STT_FUNC`; nm `t T`).
    Function,
    /// Anything else (`STT_NOTYPE`, absolute `A`, weak `W` of unknown type...).
    Other,
}

/// Up to `limit` names from `candidates` close to `wanted`: by edit distance (on the whole name
/// or its last `::` segment) or because one contains the other; closest first.
pub(crate) fn near_matches<'a>(
    wanted: &str,
    candidates: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let max_distance = (wanted.len() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for cand in candidates {
        if cand == wanted {
            continue;
        }
        let last = cand.rsplit("::").next().unwrap_or(cand);
        let cand_lower = last.to_ascii_lowercase();
        let contains = wanted.len() >= 3
            && (cand_lower.contains(&wanted_lower) || wanted_lower.contains(&cand_lower))
            && cand_lower.len() >= 3;
        // The edit distance is at least the length difference: skip hopeless candidates
        // cheaply (kallsyms has >100k names).
        let close_in_length = |n: &str| n.len().abs_diff(wanted.len()) <= max_distance;
        if !contains && !close_in_length(last) && !close_in_length(cand) {
            continue;
        }
        let distance = edit_distance(&wanted_lower, &cand_lower)
            .min(edit_distance(&wanted_lower, &cand.to_ascii_lowercase()));
        if distance <= max_distance || contains {
            scored.push((distance, cand));
        }
    }
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Levenshtein distance over bytes.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("countr", "counter"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn near_matches_rank_closest_first_and_cap() {
        let names = [
            "counter",
            "count_r",
            "country_code",
            "banana",
            "my_crate::COUNTER",
            "counted",
        ];
        let near = near_matches("countr", names.iter().copied(), 3);
        assert_eq!(near, vec!["count_r", "counter", "my_crate::COUNTER"]);
        assert!(near_matches("zzzzzz", names.iter().copied(), 3).is_empty());
    }
}
