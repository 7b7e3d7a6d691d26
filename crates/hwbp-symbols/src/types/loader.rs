//! Loading a module's DWARF: [`ModuleDebug::load`] reads the ELF file's own `.debug_info`
//! when it has content (a missing, empty or `NOBITS` section is none), else its separate debug
//! file ([`crate::debuglink`]: build ID, `.gnu_debuglink`, debuginfod cache), parses every
//! unit with gimli and has each indexed ([`super::index`]); [`DwarfError`] says why a module's
//! DWARF could not be read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gimli::{RunTimeEndian, Unit};
use object::{Object, ObjectSection};

use crate::debuglink::{find_debug_file, DebugSearch, DebugSource};

use super::index::Links;
use super::{ModuleDebug, VarLocation, R};

/// Why a module's DWARF, or a variable's type in it, could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DwarfError {
    /// The module file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF file object can parse, or a section could not be decompressed.
    #[error("{path} is not a usable ELF file: {reason}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// What the ELF parser said.
        reason: String,
    },
    /// The module has no DWARF: no `.debug_info` with content (missing, empty or `NOBITS`)
    /// and no separate debug file.
    #[error(
        "{path} has no DWARF debug info, so fields cannot be named (offsets are shown instead); \
         rebuild it with -g (or debug = true in Cargo)"
    )]
    NoDebugInfo {
        /// The file.
        path: PathBuf,
    },
    /// No global variable of that name in the DWARF.
    #[error(
        "no global variable '{name}' in the debug info of {path}{}",
        if near.is_empty() { String::new() } else { format!("; did you mean {}?", near.join(", ")) }
    )]
    NoSuchVariable {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// Close names that do exist.
        near: Vec<String>,
    },
    /// The DWARF could not be parsed, or uses a form we do not follow.
    #[error("cannot read the debug info of {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

static NEXT_MODULE_ID: AtomicU64 = AtomicU64::new(1);

impl ModuleDebug {
    /// Loads the DWARF of ELF file `elf`: its own `.debug_info`, or else a separate debug file
    /// found under the default [`DebugSearch`] (gdb's places).
    pub fn load(elf: &Path) -> Result<ModuleDebug, DwarfError> {
        ModuleDebug::load_with(elf, &DebugSearch::default())
    }

    /// [`load`](Self::load) with explicit debug-file search places.
    pub fn load_with(elf: &Path, search: &DebugSearch) -> Result<ModuleDebug, DwarfError> {
        let data = read(elf)?;
        let has_dwarf = {
            let file = parse_elf(elf, &data)?;
            file.section_by_name(".debug_info")
                .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData)
        };
        if has_dwarf {
            return ModuleDebug::from_bytes(elf, elf, DebugSource::Embedded, &data);
        }
        let Some(found) = find_debug_file(elf, &data, search) else {
            return Err(DwarfError::NoDebugInfo {
                path: elf.to_path_buf(),
            });
        };
        let debug_data = read(&found.path)?;
        ModuleDebug::from_bytes(elf, &found.path, found.source, &debug_data)
    }

    fn from_bytes(
        elf: &Path,
        debug_file: &Path,
        source: DebugSource,
        data: &[u8],
    ) -> Result<ModuleDebug, DwarfError> {
        let file = parse_elf(debug_file, data)?;
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let elf_error = |reason: String| DwarfError::Elf {
            path: debug_file.to_path_buf(),
            reason,
        };
        let malformed = |e: gimli::Error| DwarfError::Malformed {
            path: debug_file.to_path_buf(),
            reason: e.to_string(),
        };
        let dwarf = gimli::Dwarf::load(|id| -> Result<R, DwarfError> {
            let bytes: Arc<[u8]> = match file.section_by_name(id.name()) {
                Some(section) => Arc::from(
                    section
                        .uncompressed_data()
                        .map_err(|e| elf_error(format!("section {}: {e}", id.name())))?
                        .as_ref(),
                ),
                None => Arc::from(&[][..]),
            };
            Ok(gimli::EndianArcSlice::new(bytes, endian))
        })?;
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next().map_err(malformed)? {
            units.push(dwarf.unit(header).map_err(malformed)?);
        }
        if units.is_empty() {
            return Err(DwarfError::NoDebugInfo {
                path: elf.to_path_buf(),
            });
        }
        let mut module = ModuleDebug {
            id: NEXT_MODULE_ID.fetch_add(1, Ordering::Relaxed),
            path: elf.to_path_buf(),
            debug_file: debug_file.to_path_buf(),
            source,
            dwarf,
            units: Vec::new(),
            variables: Vec::new(),
            named_types: HashMap::new(),
            by_address: Vec::new(),
            languages: Vec::new(),
            rust_names: HashMap::new(),
        };
        let mut links = Links::default();
        for (index, unit) in units.iter().enumerate() {
            module
                .index_unit(index, unit, &mut links)
                .map_err(malformed)?;
        }
        module.resolve_links(&links);
        module.units = units;
        let mut by_address: Vec<usize> = (0..module.variables.len())
            .filter(|&i| matches!(module.variables[i].location, VarLocation::Address(_)))
            .collect();
        by_address.sort_by_key(|&i| match module.variables[i].location {
            VarLocation::Address(a) => a,
            _ => 0,
        });
        module.by_address = by_address;
        Ok(module)
    }

    /// The ELF module this DWARF describes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file the DWARF was read from: the module itself or its separate debug file.
    pub fn debug_file(&self) -> &Path {
        &self.debug_file
    }

    /// How the debug file was found.
    pub fn debug_source(&self) -> DebugSource {
        self.source
    }

    /// The parsed DWARF and its units, for [`crate::local`].
    pub(crate) fn dwarf_units(&self) -> (&gimli::Dwarf<R>, &[Unit<R>]) {
        (&self.dwarf, &self.units)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, DwarfError> {
    std::fs::read(path).map_err(|source| DwarfError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_elf<'d>(path: &Path, data: &'d [u8]) -> Result<object::File<'d>, DwarfError> {
    object::File::parse(data).map_err(|e| DwarfError::Elf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
