//! [`KernelSymbols`]: kernel symbol tables from `/proc/kallsyms`, a `System.map` or a `vmlinux`.
//!
//! `/proc/kallsyms` is printed by `s_show()` in `kernel/kallsyms.c` as
//! `ADDRESS TYPE NAME` plus `\t[MODULE]` for module symbols, where TYPE is an `nm` letter
//! (upper case = global). Without `CONFIG_KALLSYMS_ALL` (`scripts/kallsyms.c` then keeps only
//! text symbols and section markers), variables such as `jiffies` are absent; addresses print as
//! zero when `kernel.kptr_restrict` hides them (`kallsyms_show_value()` in `kernel/ksyms_common.c`).
//! `System.map` has the same lines without modules. A `vmlinux`'s `.symtab` has real sizes.
//! System.map and vmlinux addresses are link-time: shift them by the KASLR offset
//! ([`KernelSymbols::kaslr_offset_from`], [`KernelSymbols::with_kaslr_offset`]).

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSymbol};

use crate::{near_matches, SymbolError, SymbolKind};

/// Where the running kernel lists its symbols.
pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// One kernel symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSymbol {
    /// Symbol name.
    pub name: String,
    /// Address (runtime for kallsyms; link-time for System.map/vmlinux until relocated).
    pub addr: u64,
    /// Size: real for vmlinux; for kallsyms/System.map the distance to the next higher symbol
    /// of the same module (`None` for the last one).
    pub size: Option<u64>,
    /// From the `nm` letter (`t T` function; `d D b B r R v V` data) or the ELF type.
    pub kind: SymbolKind,
    /// The module for `[mod]` lines of `/proc/kallsyms`; `None` for the core kernel.
    pub module: Option<String>,
}

/// A kernel symbol table, sorted by address, with a name index.
#[derive(Debug, Clone)]
pub struct KernelSymbols {
    source_name: String,
    symbols: Vec<KernelSymbol>,
    by_name: HashMap<String, usize>,
    lists_data_symbols: bool,
}

/// Maps an `nm` type letter to a [`SymbolKind`].
pub fn kind_from_nm_letter(letter: char) -> SymbolKind {
    match letter {
        't' | 'T' => SymbolKind::Function,
        'd' | 'D' | 'b' | 'B' | 'r' | 'R' | 'v' | 'V' | 'g' | 'G' | 's' | 'S' => SymbolKind::Data,
        _ => SymbolKind::Other,
    }
}

impl KernelSymbols {
    /// Reads `/proc/kallsyms` of the running kernel.
    pub fn from_kallsyms() -> Result<KernelSymbols, SymbolError> {
        let text = std::fs::read_to_string(KALLSYMS_PATH).map_err(|source| SymbolError::Io {
            path: KALLSYMS_PATH.into(),
            source,
        })?;
        Self::parse_kallsyms(&text, KALLSYMS_PATH)
    }

    /// Parses `/proc/kallsyms` text. Fails with `KernelAddressesHidden` if every address is 0.
    pub fn parse_kallsyms(text: &str, source_name: &str) -> Result<KernelSymbols, SymbolError> {
        let symbols = parse_nm_lines(text, source_name)?;
        if !symbols.is_empty() && symbols.iter().all(|s| s.addr == 0) {
            return Err(SymbolError::KernelAddressesHidden {
                source_name: source_name.to_string(),
            });
        }
        Ok(Self::build(symbols, source_name, true))
    }

    /// Reads a `System.map` file (e.g. `/boot/System.map-$(uname -r)`). Addresses are
    /// link-time.
    pub fn from_system_map(path: &Path) -> Result<KernelSymbols, SymbolError> {
        let text = std::fs::read_to_string(path).map_err(|source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_system_map(&text, &path.display().to_string())
    }

    /// Parses `System.map` text (`nm -n vmlinux` output).
    pub fn parse_system_map(text: &str, source_name: &str) -> Result<KernelSymbols, SymbolError> {
        Ok(Self::build(
            parse_nm_lines(text, source_name)?,
            source_name,
            true,
        ))
    }

    /// Reads the `.symtab` of an uncompressed `vmlinux` ELF file. Addresses are link-time.
    pub fn from_vmlinux(path: &Path) -> Result<KernelSymbols, SymbolError> {
        let data = std::fs::read(path).map_err(|source| SymbolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = object::File::parse(data.as_slice()).map_err(|e| SymbolError::Elf {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let symbols = file
            .symbols()
            .filter(|s| !s.is_undefined() && s.section_index().is_some())
            .filter_map(|s| {
                let kind = match s.kind() {
                    object::SymbolKind::Text => SymbolKind::Function,
                    object::SymbolKind::Data => SymbolKind::Data,
                    object::SymbolKind::Unknown | object::SymbolKind::Label => SymbolKind::Other,
                    _ => return None,
                };
                let name = s.name().ok().filter(|n| !n.is_empty())?;
                Some(KernelSymbol {
                    name: name.to_string(),
                    addr: s.address(),
                    size: (s.size() > 0).then(|| s.size()),
                    kind,
                    module: None,
                })
            })
            .collect();
        Ok(Self::build(symbols, &path.display().to_string(), false))
    }

    fn build(mut symbols: Vec<KernelSymbol>, source_name: &str, estimate_sizes: bool) -> Self {
        // Stable: aliases at one address keep file order.
        symbols.sort_by_key(|s| s.addr);
        if estimate_sizes {
            for i in 0..symbols.len() {
                let next = symbols[i + 1..]
                    .iter()
                    .find(|n| n.addr > symbols[i].addr)
                    .filter(|n| n.module == symbols[i].module)
                    .map(|n| n.addr - symbols[i].addr);
                symbols[i].size = next;
            }
        }
        let mut by_name = HashMap::with_capacity(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            by_name.entry(s.name.clone()).or_insert(i);
        }
        // Section markers (`__start_rodata`, `__stop___param`) are listed even without
        // CONFIG_KALLSYMS_ALL; real variables (`jiffies`, `init_task`) only with it.
        let lists_data_symbols = symbols
            .iter()
            .any(|s| s.kind == SymbolKind::Data && s.module.is_none() && !s.name.starts_with('_'));
        KernelSymbols {
            source_name: source_name.to_string(),
            symbols,
            by_name,
            lists_data_symbols,
        }
    }

    /// Where the symbols came from (`/proc/kallsyms` or the file's path).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// All symbols, ascending by address.
    pub fn symbols(&self) -> &[KernelSymbol] {
        &self.symbols
    }

    /// Whether core-kernel variables (not just section markers) are listed. `false` for
    /// `/proc/kallsyms` of a kernel built without `CONFIG_KALLSYMS_ALL`.
    pub fn has_data_symbols(&self) -> bool {
        self.lists_data_symbols
    }

    /// Looks a symbol up by exact name (the first one listed if the name repeats).
    pub fn resolve(&self, name: &str) -> Result<KernelSymbol, SymbolError> {
        match self.by_name.get(name) {
            Some(&i) => Ok(self.symbols[i].clone()),
            None => Err(SymbolError::KernelNotFound {
                name: name.to_string(),
                source_name: self.source_name.clone(),
                lists_data_symbols: self.lists_data_symbols,
                near: near_matches(name, self.symbols.iter().map(|s| s.name.as_str()), 3),
            }),
        }
    }

    /// The symbol containing `addr` and the offset into it.
    pub fn symbolize(&self, addr: u64) -> Option<(&str, u64)> {
        let last = self
            .symbols
            .partition_point(|s| s.addr <= addr)
            .checked_sub(1)?;
        let start = self.symbols[last].addr;
        // Of several aliases at one address, report the first one listed.
        let first = self.symbols[..last].partition_point(|s| s.addr < start);
        let sym = &self.symbols[first];
        let offset = addr - sym.addr;
        match sym.size {
            Some(size) if offset >= size => None,
            _ => Some((sym.name.as_str(), offset)),
        }
    }

    /// The KASLR offset that maps this (link-time) table onto `running` (e.g. kallsyms), from
    /// the `_text` symbol both list.
    pub fn kaslr_offset_from(&self, running: &KernelSymbols) -> Option<u64> {
        let linked = self.resolve("_text").ok()?.addr;
        let live = running.resolve("_text").ok()?.addr;
        Some(live.wrapping_sub(linked))
    }

    /// Shifts every core-kernel address by `offset` (module symbols keep theirs).
    pub fn with_kaslr_offset(mut self, offset: u64) -> KernelSymbols {
        for s in self.symbols.iter_mut().filter(|s| s.module.is_none()) {
            s.addr = s.addr.wrapping_add(offset);
        }
        self
    }
}

/// Parses `ADDRESS TYPE NAME[\t[MODULE]]` lines.
fn parse_nm_lines(text: &str, source_name: &str) -> Result<Vec<KernelSymbol>, SymbolError> {
    let mut symbols = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || SymbolError::KernelParse {
            source_name: source_name.to_string(),
            line_no: i + 1,
            line: line.to_string(),
        };
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(letter), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad());
        };
        let addr = u64::from_str_radix(addr, 16).map_err(|_| bad())?;
        let mut letters = letter.chars();
        let (Some(letter), None) = (letters.next(), letters.next()) else {
            return Err(bad());
        };
        let module = match fields.next() {
            None => None,
            Some(m) => Some(
                m.strip_prefix('[')
                    .and_then(|m| m.strip_suffix(']'))
                    .ok_or_else(bad)?
                    .to_string(),
            ),
        };
        if fields.next().is_some() {
            return Err(bad());
        }
        symbols.push(KernelSymbol {
            name: name.to_string(),
            addr,
            size: None,
            kind: kind_from_nm_letter(letter),
            module,
        });
    }
    Ok(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS_NO_ALL: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 t helper_fn
ffffffff82265dd0 T schedule
ffffffff82265e80 T schedule_idle
ffffffff82400000 D __start_rodata
ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]
ffffffffc0300000 t e1000_probe\t[e1000]
ffffffffc0300400 T e1000_remove\t[e1000]
";

    #[test]
    fn parses_kallsyms_with_modules_and_sizes() {
        let k = KernelSymbols::parse_kallsyms(KALLSYMS_NO_ALL, KALLSYMS_PATH).unwrap();
        assert_eq!(k.symbols().len(), 9);
        let s = k.resolve("schedule").unwrap();
        assert_eq!(s.addr, 0xffffffff82265dd0);
        assert_eq!(s.size, Some(0xb0));
        assert_eq!(s.kind, SymbolKind::Function);
        assert_eq!(s.module, None);
        // _stext and _text alias; the size skips the alias.
        assert_eq!(k.resolve("_stext").unwrap().size, Some(0x1000));
        let m = k.resolve("e1000_probe").unwrap();
        assert_eq!(m.module.as_deref(), Some("e1000"));
        assert_eq!(m.size, Some(0x400));
        assert_eq!(k.resolve("e1000_remove").unwrap().size, None);
        // Last core symbol before the modules: no size (next symbol is in a module).
        assert_eq!(k.resolve("__start_rodata").unwrap().size, None);
        assert_eq!(k.resolve("__start_rodata").unwrap().kind, SymbolKind::Data);
    }

    #[test]
    fn symbolize_binary_searches() {
        let k = KernelSymbols::parse_kallsyms(KALLSYMS_NO_ALL, KALLSYMS_PATH).unwrap();
        assert_eq!(
            k.symbolize(0xffffffff82265dd0 + 0x13),
            Some(("schedule", 0x13))
        );
        assert_eq!(k.symbolize(0xffffffff82265e80), Some(("schedule_idle", 0)));
        assert_eq!(k.symbolize(0xffffffff81000fff), Some(("_stext", 0xfff)));
        assert_eq!(k.symbolize(0xffffffff80000000), None);
    }

    #[test]
    fn missing_data_symbol_explains_kallsyms_all() {
        let k = KernelSymbols::parse_kallsyms(KALLSYMS_NO_ALL, KALLSYMS_PATH).unwrap();
        assert!(!k.has_data_symbols());
        let err = k.resolve("jiffies").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel symbol 'jiffies' not found: this kernel's /proc/kallsyms lists no data \
             symbols (built without CONFIG_KALLSYMS_ALL); pass --system-map \
             /boot/System.map-$(uname -r) or --vmlinux FILE"
        );
        let with_all = format!("{KALLSYMS_NO_ALL}ffffffff82a05000 D jiffies\n");
        let k = KernelSymbols::parse_kallsyms(&with_all, KALLSYMS_PATH).unwrap();
        assert!(k.has_data_symbols());
        assert_eq!(k.resolve("jiffies").unwrap().kind, SymbolKind::Data);
        assert_eq!(
            k.resolve("schedul").unwrap_err().to_string(),
            "kernel symbol 'schedul' not found in /proc/kallsyms; did you mean: schedule, schedule_idle?"
        );
    }

    #[test]
    fn zeroed_addresses_are_reported() {
        let hidden = "0000000000000000 T _text\n0000000000000000 T schedule\n";
        let err = KernelSymbols::parse_kallsyms(hidden, KALLSYMS_PATH).unwrap_err();
        assert!(
            matches!(err, SymbolError::KernelAddressesHidden { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("kptr_restrict"));
    }

    #[test]
    fn system_map_and_kaslr_offset() {
        let map = "\
ffffffff81000000 T _text
ffffffff81e00000 D jiffies_64
ffffffff81e00000 D jiffies
ffffffff81e00008 b some_bss
ffffffff81e00010 R some_rodata
ffffffff81e00020 W weak_thing
";
        let linked = KernelSymbols::parse_system_map(map, "System.map").unwrap();
        assert!(linked.has_data_symbols());
        let j = linked.resolve("jiffies").unwrap();
        assert_eq!(
            (j.addr, j.size, j.kind),
            (0xffffffff81e00000, Some(8), SymbolKind::Data)
        );
        assert_eq!(linked.resolve("some_bss").unwrap().kind, SymbolKind::Data);
        assert_eq!(
            linked.resolve("weak_thing").unwrap().kind,
            SymbolKind::Other
        );
        let running =
            KernelSymbols::parse_kallsyms("ffffffff9a200000 T _text\n", KALLSYMS_PATH).unwrap();
        let offset = linked.kaslr_offset_from(&running).unwrap();
        assert_eq!(offset, 0x19200000);
        let relocated = linked.with_kaslr_offset(offset);
        assert_eq!(
            relocated.resolve("jiffies").unwrap().addr,
            0xffffffff9b000000
        );
        assert_eq!(
            relocated.resolve("nosuch").unwrap_err().to_string(),
            "kernel symbol 'nosuch' not found in System.map"
        );
    }

    #[test]
    fn malformed_lines_fail_with_line_number() {
        let err = KernelSymbols::parse_system_map("ffffffff81000000 T ok\nnot-hex T x\n", "m")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed line 2 in m: 'not-hex T x'; expected 'ADDRESS TYPE NAME' lines as in \
             /proc/kallsyms or a System.map"
        );
        assert!(KernelSymbols::parse_system_map("ffffffff81000000 TT x\n", "m").is_err());
        assert!(KernelSymbols::parse_system_map("ffffffff81000000 T x mod\n", "m").is_err());
    }

    #[test]
    fn vmlinux_symtab_has_real_sizes() {
        // Any ELF with a symtab exercises the same reader; our own test binary has one.
        let exe = std::env::current_exe().unwrap();
        let k = KernelSymbols::from_vmlinux(&exe).unwrap();
        assert!(k
            .symbols()
            .iter()
            .any(|s| s.kind == SymbolKind::Function && s.size.is_some()));
        assert!(k.symbolize(k.resolve("main").unwrap().addr).is_some());
    }
}
