//! Names for the bytes of a variable: the type layout of a global from the module's DWARF
//! (`.debug_info`, read with gimli), so a hit at `cfg + 0x14` can say `cfg.limits[1].max`.
//!
//! A watch on a whole struct or array is split into aligned debug-register pieces
//! (`hwbp_core::region`); each hit then names the field or element it touched. The layout is a
//! tree ([`TypeLayout`]): structs and unions list their members at their
//! `DW_AT_data_member_location`, arrays their element type and the counts of each dimension
//! (`DW_TAG_subrange_type`'s `DW_AT_count` or `DW_AT_upper_bound + 1`); typedefs and
//! `const`/`volatile`/`restrict`/`_Atomic` qualifiers are looked through. Anonymous struct and
//! union members (C11) add no path component, as in C (`cfg.word`). Bit-fields are leaves that
//! cover the bytes holding their bits. The module's own `.debug_info` is read, or else its
//! separate debug file found as gdb finds it ([`crate::debuglink`]: build ID,
//! `.gnu_debuglink`, an existing debuginfod cache); no split DWARF (`.dwo`), no type units.
//! Watch expressions use the richer model of [`crate::types`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gimli::{
    AttributeValue, DebuggingInformationEntry, EndianSlice, Reader, RunTimeEndian, Unit, UnitOffset,
};
use object::{Object, ObjectSection};

use crate::ResolvedSymbol;

type Slice<'a> = EndianSlice<'a, RunTimeEndian>;

/// Types nested deeper than this are malformed DWARF (or a loop); we stop there.
const MAX_TYPE_DEPTH: u32 = 64;

/// Why a variable's layout could not be read.
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
    /// The module has no `.debug_info`.
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

/// The shape of a type, with typedefs and qualifiers looked through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A value with no parts hwbp names: integer, float, enum, pointer, ...
    Scalar,
    /// A struct (or class): members at their offsets.
    Struct(Vec<Member>),
    /// A union: members overlap at offset 0; a byte is named after the first member covering it.
    Union(Vec<Member>),
    /// An array of `counts` (one per dimension, outermost first) elements.
    Array {
        /// The element type.
        element: Box<TypeLayout>,
        /// Elements per dimension; `[2, 3]` for `int m[2][3]`; `[0]` for a flexible array.
        counts: Vec<u64>,
    },
}

/// A type's size, name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeLayout {
    /// The type as C would spell it: `struct config`, `config_t`, `int[4]`, `char *`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// What it is made of.
    pub shape: Shape,
}

/// One member of a struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's name; `None` for an anonymous struct/union member.
    pub name: Option<String>,
    /// Byte offset in the enclosing type (of the first byte holding a bit-field's bits).
    pub offset: u64,
    /// `(first bit within the byte at offset, bits)` for a bit-field.
    pub bits: Option<(u64, u64)>,
    /// The member's type.
    pub layout: TypeLayout,
}

impl Member {
    /// Bytes the member covers: its type's size, or for a bit-field the bytes holding its bits.
    pub fn size(&self) -> u64 {
        match self.bits {
            Some((first, count)) => (first + count).div_ceil(8),
            None => self.layout.size,
        }
    }
}

/// One named leaf of a variable: a scalar member or array element, or a bit-field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeafMember {
    /// Byte offset from the variable's start.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// C-style access path: `cfg.limits[2].max`.
    pub path: String,
}

/// A global variable and the layout of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableLayout {
    /// The variable's name as looked up (the root of every path).
    pub name: String,
    /// Its type.
    pub layout: TypeLayout,
}

impl VariableLayout {
    /// Reads the layout of global variable `name` from the DWARF of the ELF file `module`.
    /// `name` may be qualified with `::` for variables inside namespaces (Rust, C++).
    pub fn from_module(module: &Path, name: &str) -> Result<VariableLayout, DwarfError> {
        let data = std::fs::read(module).map_err(|source| DwarfError::Io {
            path: module.to_path_buf(),
            source,
        })?;
        let layout = match read_variable(module, &data, name) {
            // DWARF in a separate debug file (build ID, .gnu_debuglink, debuginfod cache).
            Err(DwarfError::NoDebugInfo { .. }) => {
                let search = crate::debuglink::DebugSearch::default();
                let Some(found) = crate::debuglink::find_debug_file(module, &data, &search) else {
                    return Err(DwarfError::NoDebugInfo {
                        path: module.to_path_buf(),
                    });
                };
                let debug = std::fs::read(&found.path).map_err(|source| DwarfError::Io {
                    path: found.path.clone(),
                    source,
                })?;
                read_variable(&found.path, &debug, name)?
            }
            other => other?,
        };
        Ok(VariableLayout {
            name: name.to_string(),
            layout,
        })
    }

    /// The layout of a symbol resolved in a process ([`crate::ProcessSymbols`]), from the
    /// DWARF of the module that defines it.
    pub fn of_symbol(symbol: &ResolvedSymbol) -> Result<VariableLayout, DwarfError> {
        VariableLayout::from_module(&symbol.module, &symbol.name)
    }

    /// The variable's size in bytes.
    pub fn size(&self) -> u64 {
        self.layout.size
    }

    /// Every leaf (scalar member, array element, bit-field) in offset order of the walk, with
    /// its path. O(number of leaves): a large array yields one leaf per element.
    pub fn leaves(&self) -> Vec<LeafMember> {
        let mut out = Vec::new();
        let mut path = self.name.clone();
        collect_leaves(&self.layout, 0, &mut path, &mut out);
        out
    }

    /// Names the field or element covering byte `offset` of the variable: `cfg.limits[2].max`.
    /// Padding is named after the innermost enclosing part plus an offset (`cfg+0x6`,
    /// `cfg.limits[1]+0x5`), and bytes past the end as `cfg+0x40`.
    pub fn name_at(&self, offset: u64) -> String {
        let mut path = self.name.clone();
        if offset >= self.layout.size {
            let _ = write!(path, "+{offset:#x}");
            return path;
        }
        name_within(&self.layout, offset, &mut path);
        path
    }
}

/// Appends to `path` the part of `layout` that covers `offset` (which is inside `layout`).
fn name_within(layout: &TypeLayout, offset: u64, path: &mut String) {
    match &layout.shape {
        Shape::Scalar => {}
        Shape::Struct(members) | Shape::Union(members) => {
            let covering = members
                .iter()
                .find(|m| m.offset <= offset && offset < m.offset + m.size());
            match covering {
                Some(member) => {
                    if let Some(name) = &member.name {
                        path.push('.');
                        path.push_str(name);
                    }
                    if member.bits.is_none() {
                        name_within(&member.layout, offset - member.offset, path);
                    }
                }
                None => {
                    let _ = write!(path, "+{offset:#x}");
                }
            }
        }
        Shape::Array { element, counts } => {
            let total: u64 = counts.iter().product();
            if element.size == 0 || offset / element.size >= total {
                let _ = write!(path, "+{offset:#x}");
                return;
            }
            push_indices(path, offset / element.size, counts);
            name_within(element, offset % element.size, path);
        }
    }
}

/// Appends `[i][j]...` for the flat element index `flat` of an array with `counts`.
fn push_indices(path: &mut String, flat: u64, counts: &[u64]) {
    let mut stride: u64 = counts.iter().skip(1).product();
    let mut rest = flat;
    for (dim, _) in counts.iter().enumerate() {
        let index = rest / stride.max(1);
        rest %= stride.max(1);
        let _ = write!(path, "[{index}]");
        if let Some(next) = counts.get(dim + 1) {
            stride /= (*next).max(1);
        }
    }
}

fn collect_leaves(layout: &TypeLayout, base: u64, path: &mut String, out: &mut Vec<LeafMember>) {
    match &layout.shape {
        Shape::Scalar => out.push(LeafMember {
            offset: base,
            size: layout.size,
            path: path.clone(),
        }),
        Shape::Struct(members) | Shape::Union(members) => {
            for member in members {
                let len = path.len();
                if let Some(name) = &member.name {
                    path.push('.');
                    path.push_str(name);
                }
                if member.bits.is_some() {
                    out.push(LeafMember {
                        offset: base + member.offset,
                        size: member.size(),
                        path: path.clone(),
                    });
                } else {
                    collect_leaves(&member.layout, base + member.offset, path, out);
                }
                path.truncate(len);
            }
        }
        Shape::Array { element, counts } => {
            let total: u64 = counts.iter().product();
            for flat in 0..total {
                let len = path.len();
                push_indices(path, flat, counts);
                collect_leaves(element, base + flat * element.size, path, out);
                path.truncate(len);
            }
        }
    }
}

/// Finds global `name` in `data` (the bytes of `module`) and builds its type's layout.
fn read_variable(module: &Path, data: &[u8], name: &str) -> Result<TypeLayout, DwarfError> {
    let elf_error = |reason: String| DwarfError::Elf {
        path: module.to_path_buf(),
        reason,
    };
    let file = object::File::parse(data).map_err(|e| elf_error(e.to_string()))?;
    if file.section_by_name(".debug_info").is_none() {
        return Err(DwarfError::NoDebugInfo {
            path: module.to_path_buf(),
        });
    }
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, DwarfError> {
        match file.section_by_name(id.name()) {
            Some(section) => section
                .uncompressed_data()
                .map_err(|e| elf_error(format!("section {}: {e}", id.name()))),
            None => Ok(Cow::Borrowed(&[])),
        }
    })?;
    let dwarf = sections.borrow(|section| EndianSlice::new(section, endian));
    let malformed = |e: gimli::Error| DwarfError::Malformed {
        path: module.to_path_buf(),
        reason: e.to_string(),
    };

    let mut globals: Vec<String> = Vec::new();
    let mut declaration: Option<(usize, UnitOffset)> = None;
    let mut units_seen: Vec<Unit<Slice<'_>>> = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(malformed)? {
        let unit = dwarf.unit(header).map_err(malformed)?;
        let found = find_in_unit(&dwarf, &unit, name, &mut globals).map_err(malformed)?;
        match found {
            Some(Found::Definition(type_offset)) => {
                return build_type(&dwarf, &unit, type_offset, 0).map_err(malformed);
            }
            Some(Found::Declaration(type_offset)) if declaration.is_none() => {
                declaration = Some((units_seen.len(), type_offset));
            }
            _ => {}
        }
        units_seen.push(unit);
    }
    // Only an `extern` declaration has the type (a definition elsewhere, e.g. without -g).
    if let Some((unit_index, type_offset)) = declaration {
        return build_type(&dwarf, &units_seen[unit_index], type_offset, 0).map_err(malformed);
    }
    globals.sort();
    globals.dedup();
    Err(DwarfError::NoSuchVariable {
        name: name.to_string(),
        path: module.to_path_buf(),
        near: crate::near_matches(name, globals.iter().map(String::as_str), 3),
    })
}

enum Found {
    /// A variable with a location (storage here) and this type.
    Definition(UnitOffset),
    /// A declaration only.
    Declaration(UnitOffset),
}

/// Walks one unit for a file- or namespace-level variable called `name` (plain or
/// `ns::name`), collecting the global names seen for "did you mean".
fn find_in_unit(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    unit: &Unit<Slice<'_>>,
    name: &str,
    globals: &mut Vec<String>,
) -> gimli::Result<Option<Found>> {
    // Ancestors of the current entry: (depth, namespace name if it is a namespace, else None
    // when it is anything but the unit or a namespace).
    let mut scopes: Vec<(isize, Option<Option<String>>)> = Vec::new();
    let mut declaration = None;
    let mut cursor = unit.entries();
    while let Some(entry) = cursor.next_dfs()? {
        let depth = entry.depth();
        while scopes.last().is_some_and(|&(d, _)| d >= depth) {
            scopes.pop();
        }
        let at_global_scope = scopes.iter().all(|(_, s)| s.is_some());
        match entry.tag() {
            gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => {
                scopes.push((depth, Some(None)));
            }
            gimli::DW_TAG_namespace => {
                let ns = entry_name(dwarf, unit, entry)?;
                scopes.push((depth, Some(ns)));
            }
            gimli::DW_TAG_variable if at_global_scope => {
                let spec = specification(unit, entry)?;
                let source = spec.as_ref().unwrap_or(entry);
                let Some(var_name) =
                    entry_name(dwarf, unit, entry)?.or(entry_name(dwarf, unit, source)?)
                else {
                    continue;
                };
                let mut qualified = String::new();
                for ns in scopes.iter().filter_map(|(_, s)| s.clone().flatten()) {
                    qualified.push_str(&ns);
                    qualified.push_str("::");
                }
                qualified.push_str(&var_name);
                let matches = var_name == name || qualified == name;
                globals.push(qualified);
                if !matches {
                    continue;
                }
                let Some(type_offset) = type_ref(entry).or_else(|| type_ref(source)) else {
                    continue;
                };
                if entry.attr(gimli::DW_AT_location).is_some() {
                    return Ok(Some(Found::Definition(type_offset)));
                }
                declaration.get_or_insert(Found::Declaration(type_offset));
            }
            _ => {
                if entry.has_children() {
                    scopes.push((depth, None));
                }
            }
        }
    }
    Ok(declaration)
}

/// The entry `DW_AT_specification` points at (a definition's declaration), same unit only.
fn specification<'a>(
    unit: &Unit<Slice<'a>>,
    entry: &DebuggingInformationEntry<Slice<'a>>,
) -> gimli::Result<Option<DebuggingInformationEntry<Slice<'a>>>> {
    match entry.attr_value(gimli::DW_AT_specification) {
        Some(AttributeValue::UnitRef(offset)) => unit.entry(offset).map(Some),
        _ => Ok(None),
    }
}

fn entry_name(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    unit: &Unit<Slice<'_>>,
    entry: &DebuggingInformationEntry<Slice<'_>>,
) -> gimli::Result<Option<String>> {
    match entry.attr_value(gimli::DW_AT_name) {
        Some(value) => Ok(Some(
            dwarf
                .attr_string(unit, value)?
                .to_string_lossy()
                .into_owned(),
        )),
        None => Ok(None),
    }
}

fn type_ref(entry: &DebuggingInformationEntry<Slice<'_>>) -> Option<UnitOffset> {
    match entry.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(offset)) => Some(offset),
        _ => None,
    }
}

fn udata(entry: &DebuggingInformationEntry<Slice<'_>>, at: gimli::DwAt) -> Option<u64> {
    entry.attr_value(at).and_then(|v| v.udata_value())
}

/// `DW_AT_data_member_location` as a constant, or the DWARF 2 form `DW_OP_plus_uconst N`.
fn member_offset(entry: &DebuggingInformationEntry<Slice<'_>>) -> gimli::Result<Option<u64>> {
    match entry.attr_value(gimli::DW_AT_data_member_location) {
        Some(AttributeValue::Exprloc(expr)) => {
            let mut bytes = expr.0;
            if bytes.read_u8()? == gimli::DW_OP_plus_uconst.0 {
                Ok(Some(bytes.read_uleb128()?))
            } else {
                Ok(None)
            }
        }
        Some(value) => Ok(value.udata_value()),
        None => Ok(None),
    }
}

/// The C spelling of the type at `offset`, without expanding members (so `struct node *`
/// inside `struct node` does not recurse).
fn type_name(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    unit: &Unit<Slice<'_>>,
    offset: Option<UnitOffset>,
    depth: u32,
) -> gimli::Result<String> {
    let Some(offset) = offset else {
        return Ok("void".to_string());
    };
    if depth > MAX_TYPE_DEPTH {
        return Ok("?".to_string());
    }
    let entry = unit.entry(offset)?;
    let own = entry_name(dwarf, unit, &entry)?;
    let inner = || type_name(dwarf, unit, type_ref(&entry), depth + 1);
    Ok(match entry.tag() {
        gimli::DW_TAG_structure_type => {
            format!("struct {}", own.as_deref().unwrap_or("<anonymous>"))
        }
        gimli::DW_TAG_class_type => format!("class {}", own.as_deref().unwrap_or("<anonymous>")),
        gimli::DW_TAG_union_type => format!("union {}", own.as_deref().unwrap_or("<anonymous>")),
        gimli::DW_TAG_enumeration_type => {
            format!("enum {}", own.as_deref().unwrap_or("<anonymous>"))
        }
        gimli::DW_TAG_pointer_type => format!("{} *", inner()?),
        gimli::DW_TAG_const_type => format!("const {}", inner()?),
        gimli::DW_TAG_volatile_type => format!("volatile {}", inner()?),
        gimli::DW_TAG_atomic_type => format!("_Atomic {}", inner()?),
        gimli::DW_TAG_restrict_type => format!("{} restrict", inner()?),
        gimli::DW_TAG_subroutine_type => "function".to_string(),
        _ => own.unwrap_or_else(|| "?".to_string()),
    })
}

/// Builds the layout of the type at `offset`.
fn build_type(
    dwarf: &gimli::Dwarf<Slice<'_>>,
    unit: &Unit<Slice<'_>>,
    offset: UnitOffset,
    depth: u32,
) -> gimli::Result<TypeLayout> {
    if depth > MAX_TYPE_DEPTH {
        return Ok(TypeLayout {
            name: "?".to_string(),
            size: 0,
            shape: Shape::Scalar,
        });
    }
    let mut tree = unit.entries_tree(Some(offset))?;
    let root = tree.root()?;
    let entry = root.entry().clone();
    let byte_size = udata(&entry, gimli::DW_AT_byte_size);
    match entry.tag() {
        gimli::DW_TAG_typedef
        | gimli::DW_TAG_const_type
        | gimli::DW_TAG_volatile_type
        | gimli::DW_TAG_restrict_type
        | gimli::DW_TAG_atomic_type
        | gimli::DW_TAG_immutable_type => {
            let name = type_name(dwarf, unit, Some(offset), 0)?;
            match type_ref(&entry) {
                Some(inner) => {
                    let mut layout = build_type(dwarf, unit, inner, depth + 1)?;
                    layout.name = name;
                    Ok(layout)
                }
                None => Ok(TypeLayout {
                    name,
                    size: 0,
                    shape: Shape::Scalar,
                }),
            }
        }
        gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
            let is_union = entry.tag() == gimli::DW_TAG_union_type;
            let mut members = Vec::new();
            let mut children = root.children();
            while let Some(child) = children.next()? {
                let member = child.entry();
                if member.tag() != gimli::DW_TAG_member {
                    continue;
                }
                // C++ static data members (DWARF 4) are declarations without storage here.
                if member.attr(gimli::DW_AT_declaration).is_some()
                    || member.attr(gimli::DW_AT_external).is_some()
                {
                    continue;
                }
                let Some(member_type) = type_ref(member) else {
                    continue;
                };
                let bit_size = udata(member, gimli::DW_AT_bit_size);
                let (offset, bits) = match (bit_size, udata(member, gimli::DW_AT_data_bit_offset)) {
                    (Some(count), Some(bit_offset)) => {
                        (bit_offset / 8, Some((bit_offset % 8, count)))
                    }
                    _ => (member_offset(member)?.unwrap_or(0), None),
                };
                let name = entry_name(dwarf, unit, member)?;
                members.push((name, offset, bits, member_type));
            }
            let mut built = Vec::with_capacity(members.len());
            for (name, offset, bits, member_type) in members {
                built.push(Member {
                    name,
                    offset,
                    bits,
                    layout: build_type(dwarf, unit, member_type, depth + 1)?,
                });
            }
            Ok(TypeLayout {
                name: type_name(dwarf, unit, Some(offset), 0)?,
                size: byte_size.unwrap_or(0),
                shape: if is_union {
                    Shape::Union(built)
                } else {
                    Shape::Struct(built)
                },
            })
        }
        gimli::DW_TAG_array_type => {
            let mut counts = Vec::new();
            let mut children = root.children();
            while let Some(child) = children.next()? {
                let dim = child.entry();
                if dim.tag() != gimli::DW_TAG_subrange_type {
                    continue;
                }
                let count = match udata(dim, gimli::DW_AT_count) {
                    Some(count) => count,
                    None => match udata(dim, gimli::DW_AT_upper_bound) {
                        Some(upper) => {
                            let lower = udata(dim, gimli::DW_AT_lower_bound).unwrap_or(0);
                            (upper + 1).saturating_sub(lower)
                        }
                        None => 0,
                    },
                };
                counts.push(count);
            }
            if counts.is_empty() {
                counts.push(0);
            }
            let element = match type_ref(&entry) {
                Some(element) => build_type(dwarf, unit, element, depth + 1)?,
                None => TypeLayout {
                    name: "?".to_string(),
                    size: 0,
                    shape: Shape::Scalar,
                },
            };
            let total: u64 = counts.iter().product();
            let mut name = element.name.clone();
            for count in &counts {
                let _ = write!(name, "[{count}]");
            }
            Ok(TypeLayout {
                name,
                size: byte_size.unwrap_or(element.size.saturating_mul(total)),
                shape: Shape::Array {
                    element: Box::new(element),
                    counts,
                },
            })
        }
        gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => Ok(TypeLayout {
            name: type_name(dwarf, unit, Some(offset), 0)?,
            size: byte_size.unwrap_or(u64::from(unit.header.address_size())),
            shape: Shape::Scalar,
        }),
        _ => Ok(TypeLayout {
            name: type_name(dwarf, unit, Some(offset), 0)?,
            size: byte_size.unwrap_or(0),
            shape: Shape::Scalar,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_of_a_flat_element_in_a_multi_dimensional_array() {
        let mut path = String::from("m");
        push_indices(&mut path, 5, &[2, 3]);
        assert_eq!(path, "m[1][2]");
        let mut path = String::from("v");
        push_indices(&mut path, 7, &[8]);
        assert_eq!(path, "v[7]");
        let mut path = String::from("c");
        push_indices(&mut path, 13, &[2, 3, 4]);
        assert_eq!(path, "c[1][0][1]");
    }
}
