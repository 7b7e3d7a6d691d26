//! [`ProcessSymbols`]: the symbols of one user process, from a snapshot of its
//! `/proc/PID/maps` plus the ELF files it maps.
//!
//! Load biases follow the kernel's ELF loader (`load_elf_binary()` in `fs/binfmt_elf.c`, and
//! ld.so for libraries): a PIE or shared object (`ET_DYN`) is mapped at a random base, so its
//! runtime address = link-time address + bias, where the bias comes from any mapping's start
//! and file offset and the covering `PT_LOAD` segment; an `ET_EXEC` executable has bias 0.
//!
//! Everything after [`ProcessSymbols::load`] works from the snapshot and the open ELF files, so
//! hits are symbolized after the process has exited. x86 data breakpoints are traps (Intel SDM
//! Vol. 3B §17.3.1.2; the kernel reports the IP after the access, see
//! `arch/x86/kernel/hw_breakpoint.c`), hence [`ProcessSymbols::accessing_instruction`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use blazesym::symbolize::source::{Elf as ElfSource, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use iced_x86::{Decoder, DecoderOptions};

use crate::elf::{ElfImage, ElfSymbol};
use crate::maps::ProcessMaps;
use crate::{near_matches, SymbolError, SymbolKind};

/// A name resolved to a runtime address in a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSymbol {
    /// The name as the user would write it (Rust paths demangled, without hash).
    pub name: String,
    /// Runtime address (load bias applied).
    pub addr: u64,
    /// Size in bytes from the symbol table (0 when the table does not say).
    pub size: u64,
    /// The ELF module that defines it.
    pub module: PathBuf,
    /// Variable, function or other.
    pub kind: SymbolKind,
}

/// Where an address is in the code: function, offset and (with DWARF) source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeLocation {
    /// The function's name (demangled, without Rust hash).
    pub function: String,
    /// Bytes from the function's start.
    pub offset: u64,
    /// Source file name as recorded in the line table (e.g. `writer.c`, `src/main.rs`).
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
    /// The ELF module holding the function.
    pub module: PathBuf,
}

impl fmt::Display for CodeLocation {
    /// `bump_counter+0x12 (writer.c:31)`, or `memcpy+0x12 (libc.so.6)` without line info.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.function, self.offset)?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " ({file}:{line})"),
            (Some(file), None) => write!(f, " ({file})"),
            _ => match self.module.file_name() {
                Some(name) => write!(f, " ({})", name.to_string_lossy()),
                None => Ok(()),
            },
        }
    }
}

/// A function inlined at an address: its name and the source line of the address within it
/// (gdb's and perf's inlined frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinedCall {
    /// The inlined function's name (demangled).
    pub function: String,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
}

/// An address inside a module that has no symbol for it (a stripped library): the module's
/// file name and the address's link-time offset in it, `libc.so.6+0x27e66` (the form
/// `addr2line -e`, `objdump --start-address` and perf's `dso+offset` use; for the usual
/// layouts the text segment's vaddr equals its file offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleOffset {
    /// The module.
    pub module: PathBuf,
    /// Runtime address minus the module's load bias.
    pub offset: u64,
}

impl fmt::Display for ModuleOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .module
            .file_name()
            .map_or_else(|| self.module.to_string_lossy(), |n| n.to_string_lossy());
        write!(f, "{name}+{:#x}", self.offset)
    }
}

/// One ELF module as mapped in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The file's path (as in the maps file).
    pub path: PathBuf,
    /// Runtime address minus link-time address.
    pub bias: u64,
    /// `[start, end)` runtime span of its load segments (includes `.bss`).
    pub span: (u64, u64),
    /// This is the process's main executable.
    pub is_executable: bool,
    /// The file is `ET_DYN` (PIE or shared library) rather than `ET_EXEC`.
    pub position_independent: bool,
}

#[derive(Debug)]
struct Module {
    info: ModuleInfo,
    inode: u64,
    image: ElfImage,
    /// The separate debug file (`.build-id`, `.gnu_debuglink`), looked for when first needed.
    debug_file: std::sync::OnceLock<Option<PathBuf>>,
}

impl Module {
    fn runtime(&self, sym: &ElfSymbol) -> u64 {
        sym.vaddr.wrapping_add(self.info.bias)
    }

    /// Where to symbolize first: the image itself when it has a `.symtab` (not stripped), else
    /// its separate debug file (full symbols, line tables, inlined functions), else the image
    /// (`.dynsym` only).
    fn symbol_sources(&self) -> Vec<&Path> {
        let stripped = !self
            .image
            .symbols
            .iter()
            .any(|s| s.table == crate::elf::SymbolTable::Symtab);
        let debug = self.debug_file.get_or_init(|| {
            let data = std::fs::read(&self.image.path).ok()?;
            let search = crate::debuglink::DebugSearch::default();
            crate::debuglink::find_debug_file(&self.image.path, &data, &search).map(|f| f.path)
        });
        match debug {
            Some(debug) if stripped => vec![debug.as_path(), self.image.path.as_path()],
            _ => vec![self.image.path.as_path()],
        }
    }

    fn contains(&self, addr: u64) -> bool {
        self.info.span.0 <= addr && addr < self.info.span.1
    }
}

#[derive(Debug)]
struct Snapshot {
    maps: ProcessMaps,
    /// Executable first, then the other modules in (approximate) load order.
    modules: Vec<Arc<Module>>,
}

/// The symbols of one process: resolve names, symbolize addresses, fix up trap IPs.
///
/// `Send + Sync`; [`refresh`](Self::refresh) and the automatic refresh take `&self`.
#[derive(Debug)]
pub struct ProcessSymbols {
    pid: u32,
    /// Field 22 of `/proc/PID/stat` at load, to tell our process from a reused pid.
    start_time: Option<u64>,
    executable: PathBuf,
    snapshot: RwLock<Snapshot>,
}

thread_local! {
    /// blazesym's symbolizer caches parsed DWARF per file but is `!Send` (Rc/RefCell inside),
    /// so each thread keeps one.
    /// blazesym follows an image's `.gnu_debuglink` itself: in the same directories as
    /// [`crate::debuglink`] (so hiding them hides both).
    static SYMBOLIZER: Symbolizer = Symbolizer::builder()
        .set_debug_dirs(Some(crate::debuglink::DebugSearch::default().debug_dirs))
        .build();
}

fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may contain spaces and ')', so split after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after comm start at field 3 (state); starttime is field 22.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

fn strip_deleted(path: &str) -> &str {
    path.strip_suffix(" (deleted)").unwrap_or(path)
}

impl ProcessSymbols {
    /// Snapshots `/proc/PID/maps` and loads every mapped ELF file.
    pub fn load(pid: u32) -> Result<ProcessSymbols, SymbolError> {
        let start_time = proc_start_time(pid);
        let maps = ProcessMaps::read(pid)?;
        let exe_link = format!("/proc/{pid}/exe");
        let executable = match std::fs::read_link(&exe_link) {
            Ok(p) => PathBuf::from(strip_deleted(&p.to_string_lossy())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SymbolError::NoSuchProcess { pid })
            }
            Err(_) => return Err(SymbolError::NoExecutable { pid }),
        };
        let modules = build_modules(&maps, &executable, &[]);
        if !modules.first().is_some_and(|m| m.info.is_executable) {
            return Err(SymbolError::NoExecutable { pid });
        }
        Ok(ProcessSymbols {
            pid,
            start_time,
            executable,
            snapshot: RwLock::new(Snapshot { maps, modules }),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The main executable's path.
    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// The ELF modules of the current snapshot: executable first.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.read_snapshot()
            .modules
            .iter()
            .map(|m| m.info.clone())
            .collect()
    }

    /// The maps of the current snapshot.
    pub fn maps(&self) -> ProcessMaps {
        self.read_snapshot().maps.clone()
    }

    /// Whether the process we loaded is still alive (same pid and start time).
    pub fn is_alive(&self) -> bool {
        let now = proc_start_time(self.pid);
        now.is_some() && now == self.start_time
    }

    /// Re-reads `/proc/PID/maps` (e.g. after `dlopen`) and loads new modules; modules already
    /// known are kept. Fails with `NoSuchProcess` once the process is gone (the old snapshot
    /// stays usable).
    pub fn refresh(&self) -> Result<(), SymbolError> {
        if !self.is_alive() {
            return Err(SymbolError::NoSuchProcess { pid: self.pid });
        }
        let maps = ProcessMaps::read(self.pid)?;
        let old = self.read_snapshot().modules.clone();
        let modules = build_modules(&maps, &self.executable, &old);
        let mut snap = self
            .snapshot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *snap = Snapshot { maps, modules };
        Ok(())
    }

    fn read_snapshot(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn modules_snapshot(&self) -> Vec<Arc<Module>> {
        self.read_snapshot().modules.clone()
    }

    /// Looks `name` up: the executable first, then shared libraries in load order; in each,
    /// `.symtab` then `.dynsym`. Matches the raw name (C, mangled) or the demangled Rust path
    /// without hash (`my_crate::COUNTER`). If nothing matches and the process still lives, the
    /// maps are re-read once (a library may have been `dlopen`ed).
    pub fn resolve(&self, name: &str) -> Result<ResolvedSymbol, SymbolError> {
        if let Some(found) = find_symbol(&self.modules_snapshot(), name) {
            return found;
        }
        if self.refresh().is_ok() {
            if let Some(found) = find_symbol(&self.modules_snapshot(), name) {
                return found;
            }
        }
        let modules = self.modules_snapshot();
        let candidates = modules
            .iter()
            .flat_map(|m| m.image.symbols.iter())
            .filter(|s| s.kind == SymbolKind::Data)
            .map(|s| s.display_name.as_str());
        Err(SymbolError::NotFound {
            name: name.to_string(),
            pid: self.pid,
            executable: self.executable.clone(),
            library_count: modules.len().saturating_sub(1),
            near: near_matches(name, candidates, 3),
        })
    }

    fn module_for(&self, addr: u64) -> Option<Arc<Module>> {
        let find = |mods: Vec<Arc<Module>>| mods.into_iter().find(|m| m.contains(addr));
        find(self.modules_snapshot()).or_else(|| {
            self.refresh().ok()?;
            find(self.modules_snapshot())
        })
    }

    /// Function, offset and (with DWARF line tables) file:line of a runtime address.
    ///
    /// `None` when no mapped ELF module contains it (JIT code, `[vdso]`, anonymous memory) or
    /// the module has no symbol covering it. A stripped module is named from its separate
    /// debug file (`/usr/lib/debug/.build-id/...`, `.gnu_debuglink`), found as gdb finds it.
    pub fn symbolize(&self, addr: u64) -> Option<CodeLocation> {
        self.symbolize_inlined(addr).map(|(location, _)| location)
    }

    /// [`symbolize`](Self::symbolize), with the functions inlined at `addr` (from the DWARF),
    /// innermost first.
    pub fn symbolize_inlined(&self, addr: u64) -> Option<(CodeLocation, Vec<InlinedCall>)> {
        let module = self.module_for(addr)?;
        let vaddr = addr.wrapping_sub(module.info.bias);
        let from_dwarf = module.symbol_sources().into_iter().find_map(|path| {
            SYMBOLIZER.with(|symbolizer| {
                let source = Source::Elf(ElfSource::new(path));
                match symbolizer.symbolize_single(&source, Input::VirtOffset(vaddr)) {
                    // Symbol versions are absolute symbols at 0 (`GLIBC_2.3.2`, in libc's
                    // debug file): no code lives at 0, so they name nothing.
                    Ok(Symbolized::Sym(sym)) if sym.addr == 0 => None,
                    Ok(Symbolized::Sym(sym)) => {
                        let line_of = |ci: Option<&blazesym::symbolize::CodeInfo<'_>>| {
                            (
                                ci.map(|ci| ci.file.to_string_lossy().into_owned()),
                                ci.and_then(|ci| ci.line),
                            )
                        };
                        // blazesym lists the inlined calls outermost first, each with the line
                        // the address is at within it; `code_info` is then the line of the
                        // outermost call in the function itself.
                        let (file, line) = line_of(sym.code_info.as_deref());
                        let inlined = sym
                            .inlined
                            .iter()
                            .rev()
                            .map(|f| {
                                let (file, line) = line_of(f.code_info.as_ref());
                                InlinedCall {
                                    function: f.name.to_string(),
                                    file,
                                    line,
                                }
                            })
                            .collect();
                        Some((
                            CodeLocation {
                                function: sym.name.to_string(),
                                offset: sym.offset as u64,
                                file,
                                line,
                                module: module.info.path.clone(),
                            },
                            inlined,
                        ))
                    }
                    _ => None,
                }
            })
        });
        from_dwarf.or_else(|| {
            // The file may be gone from disk; our own symbol table still has the function.
            let func = module.image.function_containing(vaddr)?;
            let location = CodeLocation {
                function: func.display_name.clone(),
                offset: vaddr - func.vaddr,
                file: None,
                line: None,
                module: module.info.path.clone(),
            };
            Some((location, Vec::new()))
        })
    }

    /// The module and link-time offset of `addr`, for addresses [`symbolize`](Self::symbolize)
    /// cannot name (stripped libraries): `libc.so.6+0x27e66`. `None` outside every module.
    pub fn module_offset(&self, addr: u64) -> Option<ModuleOffset> {
        let module = self.module_for(addr)?;
        Some(ModuleOffset {
            module: module.info.path.clone(),
            offset: addr.wrapping_sub(module.info.bias),
        })
    }

    /// An address as hwbp prints code locations: `func+0x12 (file.c:31)` when symbolized,
    /// else `libc.so.6+0x27e66` inside a module, else the bare `0x...` (JIT, anonymous).
    pub fn describe_code(&self, addr: u64) -> String {
        if let Some(location) = self.symbolize(addr) {
            return location.to_string();
        }
        match self.module_offset(addr) {
            Some(offset) => offset.to_string(),
            None => format!("{addr:#x}"),
        }
    }

    /// The data (or function) symbol whose `[start, start+size)` covers `addr`, as gdb's
    /// `<symbol+off>` after a pointer value: `nodes+16`, `counter`. `None` when no symbol
    /// covers it (heap, stack).
    pub fn data_symbol(&self, addr: u64) -> Option<String> {
        let module = self.module_for(addr)?;
        let vaddr = addr.wrapping_sub(module.info.bias);
        let best = module
            .image
            .symbols
            .iter()
            .filter(|s| s.kind != SymbolKind::Other || s.size > 0)
            .filter(|s| {
                s.vaddr <= vaddr && (vaddr < s.vaddr + s.size || (s.size == 0 && s.vaddr == vaddr))
            })
            .min_by_key(|s| (s.size, s.table as u8))?;
        let name = best.display_name.clone();
        Some(if vaddr == best.vaddr {
            name
        } else {
            format!("{name}+{}", vaddr - best.vaddr)
        })
    }

    /// The start of the instruction that executed just before `ip_after`, i.e. the instruction
    /// that made the data access an x86 trap reports at `ip_after`.
    ///
    /// Decodes forwards from the start of the containing function (from the symbol table),
    /// reading code from the ELF file; `read_code(addr, len)` is used only when the file does
    /// not hold those bytes (pass `|_, _| None` to rely on the file alone). `None` when no
    /// function symbol covers the address or decoding does not land on `ip_after`.
    pub fn accessing_instruction(
        &self,
        ip_after: u64,
        read_code: impl Fn(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<u64> {
        let probe = ip_after.checked_sub(1)?;
        let module = self.module_for(probe)?;
        let bias = module.info.bias;
        let func = module.image.function_containing(probe.wrapping_sub(bias))?;
        let func_start = module.runtime(func);
        let len = usize::try_from(ip_after - func_start).ok()?;
        if len > MAX_DECODE_BYTES {
            return None;
        }
        let code = module
            .image
            .read_vaddr(func.vaddr, len)
            .or_else(|| read_code(func_start, len))?;
        previous_instruction_start(&code, func_start, ip_after)
    }
}

/// Functions longer than this are not decoded (a stray huge symbol size).
const MAX_DECODE_BYTES: usize = 1 << 20;

/// Decodes x86-64 `code` (which starts at `code_start`) and returns the start of the
/// instruction that ends exactly at `ip_after`.
pub(crate) fn previous_instruction_start(
    code: &[u8],
    code_start: u64,
    ip_after: u64,
) -> Option<u64> {
    let mut decoder = Decoder::with_ip(64, code, code_start, DecoderOptions::NONE);
    let mut instruction = iced_x86::Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return None;
        }
        if instruction.next_ip() == ip_after {
            return Some(instruction.ip());
        }
        if instruction.next_ip() > ip_after {
            return None;
        }
    }
    None
}

fn find_symbol(modules: &[Arc<Module>], name: &str) -> Option<Result<ResolvedSymbol, SymbolError>> {
    for module in modules {
        // `symbols` holds .symtab first, then .dynsym. Prefer a variable or function over an
        // untyped label of the same name.
        let mut matches = module
            .image
            .symbols
            .iter()
            .filter(|s| s.raw_name == name || s.display_name == name);
        let Some(first) = matches.next() else {
            continue;
        };
        let best = if first.kind == SymbolKind::Other {
            std::iter::once(first)
                .chain(matches)
                .find(|s| s.kind != SymbolKind::Other)
                .unwrap_or(first)
        } else {
            first
        };
        if best.thread_local {
            return Some(Err(SymbolError::ThreadLocal {
                name: name.to_string(),
                module: module.info.path.clone(),
            }));
        }
        return Some(Ok(ResolvedSymbol {
            name: best.display_name.clone(),
            addr: module.runtime(best),
            size: best.size,
            module: module.info.path.clone(),
            kind: best.kind,
        }));
    }
    None
}

/// Groups the maps' file-backed entries per file and loads each ELF file once, reusing
/// `previous` modules that are still mapped at the same place.
fn build_modules(
    maps: &ProcessMaps,
    executable: &Path,
    previous: &[Arc<Module>],
) -> Vec<Arc<Module>> {
    // (path, inode) -> (first mapping start, that mapping's offset), in order of appearance.
    let mut order: Vec<(String, u64)> = Vec::new();
    let mut first_mapping: HashMap<(String, u64), Vec<(u64, u64)>> = HashMap::new();
    for entry in &maps.entries {
        let Some(path) = entry.file_path() else {
            continue;
        };
        let key = (path.to_string_lossy().into_owned(), entry.inode);
        first_mapping
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key.clone());
                Vec::new()
            })
            .push((entry.start, entry.offset));
    }

    let mut modules: Vec<Arc<Module>> = Vec::new();
    for key in order {
        let mappings = &first_mapping[&key];
        let (path_str, inode) = key;
        let path = PathBuf::from(&path_str);
        if let Some(prev) = previous.iter().find(|m| {
            m.info.path == path
                && m.inode == inode
                && m.image.bias_for_mapping(mappings[0].0, mappings[0].1) == Some(m.info.bias)
        }) {
            modules.push(prev.clone());
            continue;
        }
        if !ElfImage::is_elf(&path) {
            continue;
        }
        let Ok(image) = ElfImage::load(&path) else {
            continue;
        };
        let Some(bias) = mappings
            .iter()
            .find_map(|&(start, offset)| image.bias_for_mapping(start, offset))
        else {
            continue;
        };
        let Some((lo, hi)) = image.vaddr_span() else {
            continue;
        };
        modules.push(Arc::new(Module {
            info: ModuleInfo {
                is_executable: path == executable,
                position_independent: image.position_independent,
                span: (lo.wrapping_add(bias), hi.wrapping_add(bias)),
                bias,
                path,
            },
            inode,
            image,
            debug_file: std::sync::OnceLock::new(),
        }));
    }
    // Executable first; then libraries by descending base: ld.so maps each new library below
    // the previous ones (top-down mmap), so this approximates load order.
    modules.sort_by_key(|m| (!m.info.is_executable, std::cmp::Reverse(m.info.span.0)));
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_instruction_start_decodes_forward() {
        // push rbp; mov rbp,rsp; mov dword [rip+0x2edc],0x7; nop; pop rbp; ret
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0xc7, 0x05, 0xdc, 0x2e, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
            0x90, 0x5d, 0xc3,
        ];
        let base = 0x1000;
        assert_eq!(
            previous_instruction_start(&code, base, 0x100e),
            Some(0x1004)
        );
        assert_eq!(
            previous_instruction_start(&code, base, 0x1004),
            Some(0x1001)
        );
        assert_eq!(
            previous_instruction_start(&code, base, 0x1001),
            Some(0x1000)
        );
        // Inside an instruction: no instruction ends there.
        assert_eq!(previous_instruction_start(&code, base, 0x1005), None);
    }

    #[test]
    fn code_location_display() {
        let mut loc = CodeLocation {
            function: "bump_counter".into(),
            offset: 0x12,
            file: Some("writer.c".into()),
            line: Some(31),
            module: "/tmp/writer".into(),
        };
        assert_eq!(loc.to_string(), "bump_counter+0x12 (writer.c:31)");
        loc.file = None;
        loc.line = None;
        assert_eq!(loc.to_string(), "bump_counter+0x12 (writer)");
    }

    #[test]
    fn symbols_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ProcessSymbols>();
    }

    #[test]
    fn resolves_and_symbolizes_own_test_binary() {
        let symbols = ProcessSymbols::load(std::process::id()).unwrap();
        assert_eq!(symbols.executable(), std::env::current_exe().unwrap());
        let modules = symbols.modules();
        assert!(modules[0].is_executable);
        let here = resolves_and_symbolizes_own_test_binary as fn() as usize as u64;
        let loc = symbols.symbolize(here).unwrap();
        assert!(
            loc.function
                .ends_with("resolves_and_symbolizes_own_test_binary"),
            "{loc}"
        );
        assert_eq!(loc.offset, 0);
        assert_eq!(
            loc.file.as_deref().map(|f| f.ends_with("process.rs")),
            Some(true)
        );
    }
}
