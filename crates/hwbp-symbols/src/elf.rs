//! One ELF file read once: its `PT_LOAD` segments, its `.symtab` and `.dynsym` symbols (with
//! Rust names demangled), and an open handle for reading code bytes later.
//!
//! Load segments follow the ELF gABI and the kernel's loader (`load_elf_binary()` and
//! `elf_map()` in `fs/binfmt_elf.c`): a segment's file pages at `p_offset & ~(PAGE-1)` are
//! mapped at `bias + (p_vaddr & ~(PAGE-1))`, so `p_vaddr - p_offset` is constant per segment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Object, ObjectSymbol};

use crate::{SymbolError, SymbolKind};

/// Which ELF symbol table a symbol came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolTable {
    /// `.symtab` (full, stripped by `strip`).
    Symtab,
    /// `.dynsym` (exported, survives stripping).
    Dynsym,
}

/// One defined symbol, addresses as in the file (link-time virtual addresses).
#[derive(Debug, Clone)]
pub(crate) struct ElfSymbol {
    /// The name as stored (mangled).
    pub raw_name: String,
    /// Demangled without the Rust `::h<hash>` suffix; equal to `raw_name` for C.
    pub display_name: String,
    pub vaddr: u64,
    pub size: u64,
    pub kind: SymbolKind,
    pub thread_local: bool,
    pub table: SymbolTable,
}

/// A `PT_LOAD` program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadSegment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
}

/// A parsed ELF file. Keeps the file open so code can be read even after the file is unlinked.
#[derive(Debug)]
pub(crate) struct ElfImage {
    pub path: PathBuf,
    file: File,
    /// `ET_DYN` (PIE or shared library) as opposed to `ET_EXEC` (fixed addresses).
    pub position_independent: bool,
    pub segments: Vec<LoadSegment>,
    /// `.symtab` symbols first, then `.dynsym` symbols.
    pub symbols: Vec<ElfSymbol>,
    /// Indexes into `symbols` of function symbols with a size, sorted by address.
    functions_by_addr: Vec<usize>,
}

/// The four bytes every ELF file starts with.
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];

/// Demangles a Rust name without its hash; returns C names unchanged.
pub(crate) fn display_name(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_string(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> SymbolError {
    SymbolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ElfImage {
    /// Whether the file at `path` starts with the ELF magic (cheap check before a full parse).
    pub fn is_elf(path: &Path) -> bool {
        let mut magic = [0u8; 4];
        File::open(path)
            .and_then(|f| f.read_exact_at(&mut magic, 0))
            .is_ok()
            && magic == ELF_MAGIC
    }

    /// Reads and parses a 64-bit ELF file.
    pub fn load(path: &Path) -> Result<ElfImage, SymbolError> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let bad = |reason: String| SymbolError::Elf {
            path: path.to_path_buf(),
            reason,
        };
        let elf_file = ElfFile64::<object::Endianness>::parse(data.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        let endian = elf_file.endian();
        let header = elf_file.elf_header();
        let position_independent = header.e_type(endian) == elf::ET_DYN;
        let segments = elf_file
            .elf_program_headers()
            .iter()
            .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
            .map(|ph| LoadSegment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                executable: ph.p_flags(endian).0 & elf::PF_X.0 != 0,
            })
            .collect();

        let mut symbols = Vec::new();
        for (table, iter) in [
            (SymbolTable::Symtab, elf_file.symbols()),
            (SymbolTable::Dynsym, elf_file.dynamic_symbols()),
        ] {
            for sym in iter {
                if sym.is_undefined() || sym.section_index().is_none() {
                    continue;
                }
                let (kind, thread_local) = match sym.kind() {
                    object::SymbolKind::Text => (SymbolKind::Function, false),
                    object::SymbolKind::Data => (SymbolKind::Data, false),
                    object::SymbolKind::Tls => (SymbolKind::Data, true),
                    object::SymbolKind::Unknown | object::SymbolKind::Label => {
                        (SymbolKind::Other, false)
                    }
                    _ => continue,
                };
                let Ok(raw) = sym.name() else { continue };
                if raw.is_empty() {
                    continue;
                }
                symbols.push(ElfSymbol {
                    raw_name: raw.to_string(),
                    display_name: display_name(raw),
                    vaddr: sym.address(),
                    size: sym.size(),
                    kind,
                    thread_local,
                    table,
                });
            }
        }
        let mut functions_by_addr: Vec<usize> = symbols
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == SymbolKind::Function && s.size > 0)
            .map(|(i, _)| i)
            .collect();
        functions_by_addr.sort_by_key(|&i| (symbols[i].vaddr, symbols[i].table as u8));
        functions_by_addr.dedup_by_key(|i| symbols[*i].vaddr);
        Ok(ElfImage {
            path: path.to_path_buf(),
            file,
            position_independent,
            segments,
            symbols,
            functions_by_addr,
        })
    }

    /// The load bias of a mapping of this file: `start` is where file offset `offset` was
    /// mapped. `None` if no `PT_LOAD` segment covers that offset.
    pub fn bias_for_mapping(&self, start: u64, offset: u64) -> Option<u64> {
        self.segments.iter().find_map(|seg| {
            let page_start = seg.offset & !0xfff;
            let covered =
                seg.filesz > 0 && page_start <= offset && offset < seg.offset + seg.filesz;
            // The virtual address file offset `offset` has in this segment.
            let vaddr = (seg.vaddr.wrapping_sub(seg.offset)).wrapping_add(offset);
            covered.then(|| start.wrapping_sub(vaddr))
        })
    }

    /// `[lowest, highest)` virtual addresses of all load segments (including `.bss`).
    pub fn vaddr_span(&self) -> Option<(u64, u64)> {
        let lo = self.segments.iter().map(|s| s.vaddr).min()?;
        let hi = self.segments.iter().map(|s| s.vaddr + s.memsz).max()?;
        Some((lo, hi))
    }

    /// The function symbol whose `[vaddr, vaddr+size)` contains `vaddr`.
    pub fn function_containing(&self, vaddr: u64) -> Option<&ElfSymbol> {
        let i = self
            .functions_by_addr
            .partition_point(|&i| self.symbols[i].vaddr <= vaddr);
        // Sizes can nest (aliases, local labels): look back a few entries for a cover.
        self.functions_by_addr[..i]
            .iter()
            .rev()
            .take(8)
            .map(|&i| &self.symbols[i])
            .find(|s| vaddr < s.vaddr + s.size)
    }

    /// Reads `len` bytes of the file image at virtual address `vaddr` (must lie within the
    /// file-backed part of one load segment).
    pub fn read_vaddr(&self, vaddr: u64, len: usize) -> Option<Vec<u8>> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.vaddr <= vaddr && vaddr + len as u64 <= s.vaddr + s.filesz)?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, seg.offset + (vaddr - seg.vaddr))
            .ok()?;
        Some(buf)
    }
}
