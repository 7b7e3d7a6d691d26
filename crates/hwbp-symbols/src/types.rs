//! The type model of watch expressions and the per-module DWARF it is read from.
//!
//! [`ModuleDebug`] loads one ELF module's `.debug_info` (or its separate debug file, found as
//! gdb finds it: [`crate::debuglink`]) with gimli and indexes every variable with a name:
//! globals and file-scoped statics (`DW_TAG_variable` children of the `DW_TAG_compile_unit`,
//! DWARF 5 §4.1), function static locals (a `DW_TAG_variable` inside a `DW_TAG_subprogram`,
//! §3.3, with a `DW_AT_location` of `DW_OP_addr`/`DW_OP_addrx`, §2.5.1.1), variables in
//! `DW_TAG_namespace`s (§3.2.2: C++ namespaces, Rust crates and modules) and C++ static data
//! members (declared in the class, §5.7.7; defined at file scope with `DW_AT_specification`,
//! §2.13.2). Variables without a fixed address are kept with the reason (register, stack,
//! location list, thread-local, constant, optimized out) for the error message.
//!
//! [`Type`] is what an expression evaluates to: base types with their `DW_AT_encoding`
//! (§5.1, Table 5.2: signed, unsigned, signed/unsigned char, boolean, float) and size, enums
//! with their enumerators (§5.11) and gdb's flag-enum detection (every value non-negative and
//! the values' bits disjoint, as gdb's `process_enumeration_scope`), pointers (§5.3) whose
//! target is read only when dereferenced (so `struct node { struct node *next; }` is finite),
//! structs/classes/unions with members (§5.7), arrays (§5.5; a multi-dimensional array is an
//! array of arrays) and void. Typedefs and `const`/`volatile`/`restrict`/`_Atomic` are looked
//! through; the type keeps the name the program spelled (`config_t`; in Rust units the
//! qualified path gdb prints, `krate::module::Settings`). Each variable carries its unit's
//! [`Language`] (`DW_AT_language`), which selects C or Rust value syntax.
//!
//! The same model names the bytes of a value: [`Type::member_path`] gives the member or
//! element at a byte offset (`cfg.limits[2].max`, so a hit on a whole-struct watch names its
//! field) and [`Type::leaves`] the scalar members, elements and bit-fields a wide watch is
//! split along; [`ModuleDebug::global_type`] finds a global's type by name.
//!
//! A module has DWARF when its `.debug_info` has content: a missing, empty or `NOBITS`
//! section means none, and its separate debug file is looked for.
//!
//! Specifications and abstract origins are followed within a unit and across units
//! (`DW_FORM_ref_addr`, as gcc's LTO output links its LTRANS units to the early-debug ones).
//! Not read: DWARF type units, split DWARF (`.dwo`), dwz's supplementary files
//! (`.gnu_debugaltlink`), a `DW_AT_type` that points into another unit, Rust enums'
//! `DW_TAG_variant_part` (their data members are listed, not the variants).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gimli::{AttributeValue, DebuggingInformationEntry, Reader, RunTimeEndian, Unit, UnitOffset};
use object::{Object, ObjectSection};

use crate::debuglink::{find_debug_file, DebugSearch, DebugSource};

pub(crate) type R = gimli::EndianArcSlice<RunTimeEndian>;

/// Types nested deeper than this are malformed DWARF (or a loop); we stop there. Pointer
/// targets are read only on dereference, so only typedefs, qualifiers, members and array
/// dimensions count.
const MAX_DEPTH: u32 = 64;

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

/// The source language of a compile unit (`DW_AT_language`, DWARF 5 §3.1.1, Table 3.1), which
/// decides how values print ([`crate::value::format_value_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// C, and anything not listed below.
    #[default]
    C,
    /// C++ (printed as C, as gdb does for plain data).
    Cxx,
    /// Rust: `Name {a: 1}`, `[1, 2]`, qualified type names.
    Rust,
}

impl Language {
    pub(crate) fn of_unit(unit: &Unit<R>) -> Language {
        let lang = unit
            .entries()
            .next_dfs()
            .ok()
            .flatten()
            .and_then(|e| e.attr_value(gimli::DW_AT_language));
        match lang {
            Some(AttributeValue::Language(gimli::DW_LANG_Rust)) => Language::Rust,
            Some(AttributeValue::Language(
                gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14
                | gimli::DW_LANG_C_plus_plus_17
                | gimli::DW_LANG_C_plus_plus_20,
            )) => Language::Cxx,
            _ => Language::C,
        }
    }
}

/// How a base type's bytes are read (`DW_AT_encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `DW_ATE_signed` (two's complement).
    Signed,
    /// `DW_ATE_unsigned`.
    Unsigned,
    /// `DW_ATE_UTF`: a Unicode code point (Rust's `char`, C++'s `char16_t`/`char32_t`).
    Utf,
    /// `DW_ATE_signed_char`: C `char`/`signed char`, printed `115 's'`.
    SignedChar,
    /// `DW_ATE_unsigned_char`.
    UnsignedChar,
    /// `DW_ATE_boolean`.
    Bool,
    /// `DW_ATE_float` (4 or 8 bytes are formatted).
    Float,
}

/// One enumerator: name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enumerator {
    /// `MODE_AUTO`
    pub name: String,
    /// Its value.
    pub value: i64,
}

/// What a type is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// An integer, character, boolean or floating-point type.
    Base(Encoding),
    /// An enum.
    Enum {
        /// The enumerators in declaration order.
        enumerators: Vec<Enumerator>,
        /// Some enumerator is negative (values are read as signed).
        signed: bool,
        /// gdb's flag enum: non-negative values with disjoint bits, printed `(A | B)`.
        flag: bool,
    },
    /// A pointer (or C++ reference) to `target`.
    Pointer {
        /// What it points at, read on dereference.
        target: TypeRef,
    },
    /// A struct or class.
    Struct(Vec<Field>),
    /// A union.
    Union(Vec<Field>),
    /// `count` elements of `element` (`count` 0: a flexible or unknown-size array).
    Array {
        /// The element type.
        element: Box<Type>,
        /// Elements (for the outermost dimension).
        count: u64,
    },
    /// `void`, a function, or a type the model does not cover.
    Opaque,
}

/// A type: its name as the program spells it, its size, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    /// `int`, `config_t`, `struct node *`, `int [3]`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// What it is.
    pub kind: TypeKind,
}

/// A member of a struct or union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The member's name; `None` for an anonymous struct/union member.
    pub name: Option<String>,
    /// Byte offset in the enclosing type.
    pub offset: u64,
    /// `(first bit within the byte at offset, bits)` for a bit-field.
    pub bits: Option<(u64, u64)>,
    /// A C++ base class (`DW_TAG_inheritance`, DWARF 5 §5.7.3): unnamed, its members are
    /// found through it, and gdb prints it as `<Base> = {...}`.
    pub base: bool,
    /// The member's type.
    pub ty: Type,
}

/// A pointer's target: its name and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The target type's name (`struct node`, `void`).
    pub name: String,
    pub(crate) target: RefTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefTarget {
    Void,
    Die {
        module: u64,
        unit: usize,
        offset: usize,
    },
    Builtin(Box<Type>),
}

impl TypeRef {
    /// A pointer target that is already built (casts to C base types).
    pub fn to_type(ty: Type) -> TypeRef {
        TypeRef {
            name: ty.name.clone(),
            target: RefTarget::Builtin(Box::new(ty)),
        }
    }

    /// The target when it is already built (not read from DWARF on dereference).
    pub fn built(&self) -> Option<&Type> {
        match &self.target {
            RefTarget::Builtin(ty) => Some(ty),
            _ => None,
        }
    }

    /// Whether the target is `void`.
    pub fn is_void(&self) -> bool {
        self.target == RefTarget::Void
    }
}

impl Type {
    /// A pointer to `target` (8 bytes, x86-64).
    pub fn pointer_to(target: TypeRef) -> Type {
        let name = if target.name.ends_with('*') {
            format!("{}*", target.name)
        } else {
            format!("{} *", target.name)
        };
        Type {
            name,
            size: 8,
            kind: TypeKind::Pointer { target },
        }
    }

    /// Whether values are compared and printed as signed numbers.
    pub fn is_signed(&self) -> bool {
        match &self.kind {
            TypeKind::Base(Encoding::Signed | Encoding::SignedChar | Encoding::Float) => true,
            TypeKind::Enum { signed, .. } => *signed,
            _ => false,
        }
    }

    /// The C integer type a comparison sees for a value of this type (`--if`,
    /// [`hwbp_core::compare`]): integers, characters and `_Bool` by their encoding, an enum as
    /// gcc types it (unsigned unless a constant is negative), a pointer unsigned. `None` for a
    /// float, an aggregate, or a size that is not 1, 2, 4 or 8.
    pub fn int_type(&self) -> Option<hwbp_core::compare::IntType> {
        let bytes = u8::try_from(self.size)
            .ok()
            .filter(|b| matches!(b, 1 | 2 | 4 | 8))?;
        let signed = match &self.kind {
            TypeKind::Base(Encoding::Signed | Encoding::SignedChar) => true,
            TypeKind::Base(
                Encoding::Unsigned | Encoding::UnsignedChar | Encoding::Bool | Encoding::Utf,
            )
            | TypeKind::Pointer { .. } => false,
            TypeKind::Enum { signed, .. } => *signed,
            _ => return None,
        };
        Some(hwbp_core::compare::IntType { bytes, signed })
    }

    /// The members of a struct or union.
    pub fn fields(&self) -> Option<&[Field]> {
        match &self.kind {
            TypeKind::Struct(fields) | TypeKind::Union(fields) => Some(fields),
            _ => None,
        }
    }

    /// The member called `name`, looking into anonymous members (C11): its offset from the
    /// start of this type and its type.
    pub fn field(&self, name: &str) -> Option<(u64, &Type)> {
        for field in self.fields()? {
            match &field.name {
                Some(n) if n == name => return Some((field.offset, &field.ty)),
                None => {
                    if let Some((offset, ty)) = field.ty.field(name) {
                        return Some((field.offset + offset, ty));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The member names (anonymous members' members included), for error messages.
    pub fn field_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for field in self.fields().unwrap_or(&[]) {
            match &field.name {
                Some(n) => names.push(n.clone()),
                None => names.extend(field.ty.field_names()),
            }
        }
        names
    }

    /// Names the member or element covering byte `offset` of a value of this type, its path
    /// rooted at `root`: `cfg.limits[2].max`, `m[1][2]`. A union's byte is named after the first
    /// member covering it; anonymous members (C11) and base classes add no component, and a
    /// bit-field is named for every byte holding its bits. Padding is named after the innermost
    /// enclosing part plus an offset (`cfg+0x6`), bytes past the end as `cfg+0x40`.
    pub fn member_path(&self, root: &str, offset: u64) -> String {
        let mut path = root.to_string();
        if offset >= self.size {
            let _ = write!(path, "+{offset:#x}");
        } else {
            self.push_member_path(offset, &mut path);
        }
        path
    }

    /// Appends to `path` the part of this type covering `offset` (inside the type).
    fn push_member_path(&self, offset: u64, path: &mut String) {
        match &self.kind {
            TypeKind::Struct(fields) | TypeKind::Union(fields) => {
                let covering = fields
                    .iter()
                    .find(|f| f.offset <= offset && offset < f.offset + f.size());
                match covering {
                    Some(field) => {
                        if let Some(name) = &field.name {
                            path.push('.');
                            path.push_str(name);
                        }
                        if field.bits.is_none() {
                            field.ty.push_member_path(offset - field.offset, path);
                        }
                    }
                    None => {
                        let _ = write!(path, "+{offset:#x}");
                    }
                }
            }
            TypeKind::Array { element, count } => {
                if element.size == 0 || offset / element.size >= *count {
                    let _ = write!(path, "+{offset:#x}");
                    return;
                }
                let _ = write!(path, "[{}]", offset / element.size);
                element.push_member_path(offset % element.size, path);
            }
            _ => {}
        }
    }

    /// Every leaf of a value of this type (scalar member, array element, bit-field) in
    /// declaration order, with its path rooted at `root`. O(number of leaves): a large array
    /// yields one leaf per element.
    pub fn leaves(&self, root: &str) -> Vec<Leaf> {
        let mut out = Vec::new();
        let mut path = root.to_string();
        self.collect_leaves(0, &mut path, &mut out);
        out
    }

    fn collect_leaves(&self, base: u64, path: &mut String, out: &mut Vec<Leaf>) {
        match &self.kind {
            TypeKind::Struct(fields) | TypeKind::Union(fields) => {
                for field in fields {
                    let len = path.len();
                    if let Some(name) = &field.name {
                        path.push('.');
                        path.push_str(name);
                    }
                    if field.bits.is_some() {
                        out.push(Leaf {
                            offset: base + field.offset,
                            size: field.size(),
                            path: path.clone(),
                        });
                    } else {
                        field.ty.collect_leaves(base + field.offset, path, out);
                    }
                    path.truncate(len);
                }
            }
            TypeKind::Array { element, count } => {
                for index in 0..*count {
                    let len = path.len();
                    let _ = write!(path, "[{index}]");
                    element.collect_leaves(base + index * element.size, path, out);
                    path.truncate(len);
                }
            }
            _ => out.push(Leaf {
                offset: base,
                size: self.size,
                path: path.clone(),
            }),
        }
    }
}

impl Field {
    /// Bytes the member covers: its type's size, or for a bit-field the bytes holding its bits.
    pub fn size(&self) -> u64 {
        match self.bits {
            Some((first, count)) => (first + count).div_ceil(8),
            None => self.ty.size,
        }
    }
}

/// One leaf of a value ([`Type::leaves`]): a scalar member or array element, or a bit-field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Leaf {
    /// Byte offset from the value's start.
    pub offset: u64,
    /// Size in bytes (a bit-field's: the bytes holding its bits).
    pub size: u64,
    /// C-style access path: `cfg.limits[2].max`.
    pub path: String,
}

/// Where a variable lives, from its `DW_AT_location` (DWARF 5 §2.5, §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarLocation {
    /// A fixed link-time address (`DW_OP_addr`/`DW_OP_addrx`); add the module's load bias.
    Address(u64),
    /// In a register (`DW_OP_reg*`).
    Register,
    /// On the stack, relative to the frame (`DW_OP_fbreg`, `DW_OP_breg*`).
    Stack,
    /// A location list: where it is depends on the pc.
    LocationList,
    /// Thread-local storage (`DW_OP_form_tls_address`).
    ThreadLocal,
    /// No storage, a `DW_AT_const_value`.
    Constant,
    /// No `DW_AT_location`: optimized out.
    OptimizedOut,
    /// A declaration (`extern`, or a C++ static member in its class): defined elsewhere.
    Declaration,
    /// A location expression this reader does not evaluate.
    Complex,
}

/// One named variable of a module's DWARF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Its own name (`depth`, `count`).
    pub name: String,
    /// Enclosing namespaces and classes, outermost first (`["net", "inner"]`).
    pub scope: Vec<String>,
    /// The enclosing function's qualified name, for locals and static locals.
    pub function: Option<String>,
    /// The compile unit's `DW_AT_name` (the source file).
    pub file: String,
    /// `DW_AT_external`: visible outside its file.
    pub external: bool,
    /// Where it lives.
    pub location: VarLocation,
    /// Its compile unit's language.
    pub language: Language,
    unit: usize,
    ty: Option<UnitOffset>,
}

impl Variable {
    /// The name as the user writes it: `func::x`, `ns::x`, `x`.
    pub fn qualified(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(function) = &self.function {
            parts.push(function);
        }
        parts.extend(self.scope.iter().map(String::as_str));
        parts.push(&self.name);
        parts.join("::")
    }

    fn path_matches(&self, segments: &[String]) -> bool {
        segments.len() == self.scope.len() + 1
            && segments.last() == Some(&self.name)
            && self.scope.iter().zip(segments).all(|(a, b)| a == b)
    }
}

static NEXT_MODULE_ID: AtomicU64 = AtomicU64::new(1);

/// The DWARF of one ELF module: its variables and types.
pub struct ModuleDebug {
    id: u64,
    path: PathBuf,
    debug_file: PathBuf,
    source: DebugSource,
    dwarf: gimli::Dwarf<R>,
    units: Vec<Unit<R>>,
    variables: Vec<Variable>,
    /// `(kind, qualified name)` -> type DIE, for casts.
    named_types: HashMap<(TypeTag, String), (usize, UnitOffset)>,
    /// Indices of `variables` with an address, sorted by address.
    by_address: Vec<usize>,
    /// Each unit's language.
    languages: Vec<Language>,
    /// Qualified names (`krate::module::Type`) of Rust types, as gdb prints them.
    rust_names: HashMap<(usize, UnitOffset), String>,
}

impl std::fmt::Debug for ModuleDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleDebug")
            .field("path", &self.path)
            .field("debug_file", &self.debug_file)
            .field("variables", &self.variables.len())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TypeTag {
    Struct,
    Union,
    Enum,
    /// Typedefs, base types and C++ class names usable without a keyword.
    Plain,
}

/// What the index remembers of a DIE another DIE refers to (specification, abstract origin).
#[derive(Clone)]
struct Declared {
    name: String,
    scope: Vec<String>,
    function: Option<String>,
    ty: Option<UnitOffset>,
    /// The unit `ty` is relative to.
    unit: usize,
}

/// Cross-references collected while indexing, resolved once every unit is indexed (gcc's LTO
/// output refers from LTRANS units to the early-debug units with `DW_FORM_ref_addr`).
#[derive(Default)]
struct Links {
    /// `.debug_info` offset of a DIE -> what it declares.
    declared: HashMap<usize, Declared>,
    /// (variable index, `.debug_info` offset of its specification/abstract origin).
    linked: Vec<(usize, usize)>,
}

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

    /// Every named variable (globals, statics, static locals, locals, namespace members).
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The parsed DWARF and its units, for [`crate::local`].
    pub(crate) fn dwarf_units(&self) -> (&gimli::Dwarf<R>, &[Unit<R>]) {
        (&self.dwarf, &self.units)
    }

    /// The type at `offset` in unit `unit` (an index into [`dwarf_units`](Self::dwarf_units)).
    pub(crate) fn type_at(&self, unit: usize, offset: UnitOffset) -> Type {
        self.build(unit, offset, 0)
    }

    /// The type of a variable (`None`: no `DW_AT_type`).
    pub fn variable_type(&self, var: &Variable) -> Option<Type> {
        let offset = var.ty?;
        Some(self.build(var.unit, offset, 0))
    }

    /// The type of the global variable `name`: file-scope or namespace-level (`cfg`,
    /// `ns::inner::var`, a Rust static's path), matched by its own name or its qualified one;
    /// a definition's over an `extern` declaration's (a definition elsewhere, e.g. built
    /// without -g). [`DwarfError::NoSuchVariable`] with the closest global names otherwise.
    pub fn global_type(&self, name: &str) -> Result<Type, DwarfError> {
        let segments: Vec<String> = name.split("::").map(String::from).collect();
        let globals = || self.variables.iter().filter(|v| v.function.is_none());
        let found = globals()
            .filter(|v| v.ty.is_some() && (v.name == name || v.path_matches(&segments)))
            .min_by_key(|v| v.location == VarLocation::Declaration);
        if let Some(ty) = found.and_then(|var| self.variable_type(var)) {
            return Ok(ty);
        }
        let mut names: Vec<String> = globals().map(Variable::qualified).collect();
        names.sort();
        names.dedup();
        Err(DwarfError::NoSuchVariable {
            name: name.to_string(),
            path: self.path.clone(),
            near: crate::near_matches(name, names.iter().map(String::as_str), 3),
        })
    }

    /// Resolves a pointer target built by this module.
    pub(crate) fn resolve_ref(&self, target: &TypeRef) -> Option<Type> {
        match &target.target {
            RefTarget::Void => None,
            RefTarget::Builtin(ty) => Some((**ty).clone()),
            RefTarget::Die {
                module,
                unit,
                offset,
            } if *module == self.id => Some(self.build(*unit, UnitOffset(*offset), 0)),
            RefTarget::Die { .. } => None,
        }
    }

    /// Variables matching a name: `segments` is `ns::...::name` or `func::name`; `quoted` is
    /// gdb's `'file.c'` or `'func'` scope.
    pub fn find_variables(&self, quoted: Option<&str>, segments: &[String]) -> Vec<&Variable> {
        let joined = segments.join("::");
        self.variables
            .iter()
            .filter(|v| match quoted {
                Some(q) if file_matches(&v.file, q) => {
                    v.function.is_none() && v.path_matches(segments)
                }
                Some(q) => {
                    v.function.as_deref() == Some(q) && v.scope.is_empty() && v.name == joined
                }
                None => {
                    (v.function.is_none() && v.path_matches(segments))
                        || (segments.len() >= 2
                            && v.scope.is_empty()
                            && segments.last() == Some(&v.name)
                            && v.function.as_deref()
                                == Some(&segments[..segments.len() - 1].join("::")))
                }
            })
            .collect()
    }

    /// A type by the name a cast uses: `struct conn`, `union u`, `enum mode`, `uint32_t`,
    /// `ns::Point`, `unsigned long` (C base types are matched in any word order; one missing
    /// from the DWARF is synthesized with its x86-64 size).
    pub fn find_type(&self, name: &str) -> Option<Type> {
        let name = name.trim();
        let (tag, bare) = if let Some(rest) = name.strip_prefix("struct ") {
            (TypeTag::Struct, rest)
        } else if let Some(rest) = name.strip_prefix("class ") {
            (TypeTag::Struct, rest)
        } else if let Some(rest) = name.strip_prefix("union ") {
            (TypeTag::Union, rest)
        } else if let Some(rest) = name.strip_prefix("enum ") {
            (TypeTag::Enum, rest)
        } else {
            (TypeTag::Plain, name)
        };
        let key = match (tag, c_base_type(bare)) {
            (TypeTag::Plain, Some(builtin)) => builtin.name.clone(),
            _ => bare.trim().to_string(),
        };
        if let Some(&(unit, offset)) = self.named_types.get(&(tag, key)) {
            return Some(self.build(unit, offset, 0));
        }
        if tag == TypeTag::Plain {
            for alt in [TypeTag::Struct, TypeTag::Union, TypeTag::Enum] {
                if let Some(&(unit, offset)) = self.named_types.get(&(alt, bare.to_string())) {
                    return Some(self.build(unit, offset, 0));
                }
            }
            return c_base_type(bare);
        }
        None
    }

    /// The variable whose storage covers link-time address `vaddr`: `nodes+16`, `counter`.
    pub fn variable_at(&self, vaddr: u64) -> Option<String> {
        let addr_of = |i: usize| match self.variables[i].location {
            VarLocation::Address(a) => a,
            _ => 0,
        };
        let end = self.by_address.partition_point(|&i| addr_of(i) <= vaddr);
        for &i in self.by_address[..end].iter().rev().take(4) {
            let var = &self.variables[i];
            let start = addr_of(i);
            let size = self.variable_type(var).map_or(0, |t| t.size);
            if vaddr < start + size.max(1) {
                let mut name = var.scope.clone();
                name.push(var.name.clone());
                let name = name.join("::");
                return Some(if vaddr == start {
                    name
                } else {
                    format!("{name}+{}", vaddr - start)
                });
            }
        }
        None
    }

    /// Gives variables defined through `DW_AT_specification`/`DW_AT_abstract_origin` the
    /// name, scope and type of the DIE they refer to.
    fn resolve_links(&mut self, links: &Links) {
        for &(index, target) in &links.linked {
            let Some(decl) = links.declared.get(&target) else {
                continue;
            };
            let var = &mut self.variables[index];
            if var.name.is_empty() {
                var.name = decl.name.clone();
            }
            var.scope = decl.scope.clone();
            if decl.function.is_some() || var.function.is_none() {
                var.function = decl.function.clone();
            }
            if var.ty.is_none() {
                var.ty = decl.ty;
                var.unit = decl.unit;
            }
        }
        self.variables.retain(|v| !v.name.is_empty());
    }

    fn index_unit(
        &mut self,
        unit_index: usize,
        unit: &Unit<R>,
        links: &mut Links,
    ) -> gimli::Result<()> {
        #[derive(Clone)]
        enum Scope {
            Unit,
            Named(String),
            Function(String),
            Other,
        }
        let file = match unit.name.as_ref() {
            Some(name) => name.to_string_lossy()?.into_owned(),
            None => String::new(),
        };
        let language = Language::of_unit(unit);
        self.languages.push(language);
        let global = |o: UnitOffset| o.to_debug_info_offset(&unit.header).map_or(0, |g| g.0);
        let mut scopes: Vec<(isize, Scope)> = Vec::new();
        let mut cursor = unit.entries();
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            while scopes.last().is_some_and(|(d, _)| *d >= depth) {
                scopes.pop();
            }
            let tag = entry.tag();
            let interesting = match tag {
                gimli::DW_TAG_member => {
                    entry.attr(gimli::DW_AT_external).is_some()
                        || entry.attr(gimli::DW_AT_declaration).is_some()
                }
                gimli::DW_TAG_compile_unit
                | gimli::DW_TAG_partial_unit
                | gimli::DW_TAG_namespace
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_base_type
                | gimli::DW_TAG_subprogram
                | gimli::DW_TAG_variable => true,
                _ => false,
            };
            if !interesting {
                // Parameters, blocks, members...: only their children's scope matters.
                if entry.has_children() {
                    scopes.push((depth, Scope::Other));
                }
                continue;
            }
            let named_scope: Vec<String> = scopes
                .iter()
                .filter_map(|(_, s)| match s {
                    Scope::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            let function = scopes.iter().rev().find_map(|(_, s)| match s {
                Scope::Function(f) => Some(f.clone()),
                _ => None,
            });
            let in_type_or_ns_only = scopes
                .iter()
                .all(|(_, s)| matches!(s, Scope::Unit | Scope::Named(_)));
            let name = self.name_of(unit, entry)?;
            let offset = entry.offset();
            let mut push = |scope: Scope| {
                if entry.has_children() {
                    scopes.push((depth, scope));
                }
            };
            match tag {
                gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => push(Scope::Unit),
                gimli::DW_TAG_namespace => {
                    push(Scope::Named(
                        name.unwrap_or_else(|| "(anonymous namespace)".to_string()),
                    ));
                }
                gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_base_type => {
                    if let (Some(n), true) = (&name, in_type_or_ns_only) {
                        let mut qualified = named_scope.clone();
                        qualified.push(n.clone());
                        let qualified = qualified.join("::");
                        let kind = match tag {
                            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type => {
                                TypeTag::Struct
                            }
                            gimli::DW_TAG_union_type => TypeTag::Union,
                            gimli::DW_TAG_enumeration_type => TypeTag::Enum,
                            _ => TypeTag::Plain,
                        };
                        if entry.attr(gimli::DW_AT_declaration).is_none() {
                            self.named_types
                                .entry((kind, qualified.clone()))
                                .or_insert((unit_index, offset));
                            if kind != TypeTag::Plain && language == Language::Rust {
                                self.rust_names
                                    .insert((unit_index, offset), qualified.clone());
                            }
                            if kind == TypeTag::Struct && language != Language::C {
                                self.named_types
                                    .entry((TypeTag::Plain, qualified))
                                    .or_insert((unit_index, offset));
                            }
                        }
                    }
                    match (&name, tag) {
                        (
                            Some(n),
                            gimli::DW_TAG_structure_type
                            | gimli::DW_TAG_class_type
                            | gimli::DW_TAG_union_type,
                        ) => push(Scope::Named(n.clone())),
                        _ => push(Scope::Other),
                    }
                }
                gimli::DW_TAG_subprogram => {
                    let own = match (&name, link_of(unit, entry)) {
                        (Some(n), _) => {
                            let mut q = named_scope.clone();
                            q.push(n.clone());
                            q.join("::")
                        }
                        (None, Some(target)) => links
                            .declared
                            .get(&target)
                            .map(|d| {
                                let mut q = d.scope.clone();
                                q.push(d.name.clone());
                                q.join("::")
                            })
                            .or_else(|| {
                                let local =
                                    gimli::DebugInfoOffset(target).to_unit_offset(&unit.header)?;
                                self.qualified_via(unit, local)
                            })
                            .unwrap_or_default(),
                        (None, None) => String::new(),
                    };
                    let split: Vec<String> = own.split("::").map(String::from).collect();
                    if let Some((last, scope)) = split.split_last() {
                        links.declared.insert(
                            global(offset),
                            Declared {
                                name: last.clone(),
                                scope: scope.to_vec(),
                                function: None,
                                ty: None,
                                unit: unit_index,
                            },
                        );
                    }
                    push(Scope::Function(own));
                }
                gimli::DW_TAG_variable | gimli::DW_TAG_member
                    if tag == gimli::DW_TAG_variable
                        || entry.attr(gimli::DW_AT_external).is_some()
                        || entry.attr(gimli::DW_AT_declaration).is_some() =>
                {
                    let location = location_of(&self.dwarf, unit, entry)?;
                    let link = link_of(unit, entry);
                    if link.is_some() && name.is_none() && location == VarLocation::OptimizedOut {
                        // A concrete inlined instance without storage: the abstract one counts.
                        continue;
                    }
                    let var = Variable {
                        name: name.clone().unwrap_or_default(),
                        scope: named_scope.clone(),
                        function: function.clone(),
                        file: file.clone(),
                        external: entry.attr(gimli::DW_AT_external).is_some(),
                        location,
                        language,
                        unit: unit_index,
                        ty: type_ref(entry),
                    };
                    links.declared.insert(
                        global(offset),
                        Declared {
                            name: var.name.clone(),
                            scope: var.scope.clone(),
                            function: var.function.clone(),
                            ty: var.ty,
                            unit: unit_index,
                        },
                    );
                    if let Some(target) = link {
                        links.linked.push((self.variables.len(), target));
                    }
                    self.variables.push(var);
                }
                _ => push(Scope::Other),
            }
        }
        Ok(())
    }

    /// `ns::Class::method` for a declaration DIE reached by a forward reference.
    fn qualified_via(&self, unit: &Unit<R>, target: UnitOffset) -> Option<String> {
        let entry = unit.entry(target).ok()?;
        self.name_of(unit, &entry).ok().flatten()
    }

    fn name_of(
        &self,
        unit: &Unit<R>,
        entry: &DebuggingInformationEntry<R>,
    ) -> gimli::Result<Option<String>> {
        match entry.attr_value(gimli::DW_AT_name) {
            Some(value) => Ok(Some(
                self.dwarf
                    .attr_string(unit, value)?
                    .to_string_lossy()?
                    .into_owned(),
            )),
            None => Ok(None),
        }
    }

    fn type_name(&self, unit_index: usize, offset: Option<UnitOffset>, depth: u32) -> String {
        let unit = &self.units[unit_index];
        let rust = self.languages.get(unit_index) == Some(&Language::Rust);
        let Some(offset) = offset else {
            return if rust {
                "()".to_string()
            } else {
                "void".to_string()
            };
        };
        let Ok(entry) = unit.entry(offset) else {
            return "?".to_string();
        };
        if depth > MAX_DEPTH {
            return "?".to_string();
        }
        let own = self.name_of(unit, &entry).ok().flatten();
        let inner = || self.type_name(unit_index, type_ref(&entry), depth + 1);
        let anonymous = || own.clone().unwrap_or_else(|| "{...}".to_string());
        if rust {
            return match entry.tag() {
                gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_enumeration_type => self
                    .rust_names
                    .get(&(unit_index, offset))
                    .cloned()
                    .unwrap_or_else(anonymous),
                gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => {
                    format!("*mut {}", inner())
                }
                gimli::DW_TAG_array_type => format!("[{}]", inner()),
                gimli::DW_TAG_typedef | gimli::DW_TAG_base_type => anonymous(),
                _ => own.unwrap_or_else(inner),
            };
        }
        match entry.tag() {
            gimli::DW_TAG_structure_type => format!("struct {}", anonymous()),
            gimli::DW_TAG_class_type => format!("class {}", anonymous()),
            gimli::DW_TAG_union_type => format!("union {}", anonymous()),
            gimli::DW_TAG_enumeration_type => format!("enum {}", anonymous()),
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_reference_type => {
                let inner = inner();
                if inner.ends_with('*') {
                    format!("{inner}*")
                } else {
                    format!("{inner} *")
                }
            }
            gimli::DW_TAG_const_type => format!("const {}", inner()),
            gimli::DW_TAG_volatile_type => format!("volatile {}", inner()),
            gimli::DW_TAG_atomic_type => format!("_Atomic {}", inner()),
            gimli::DW_TAG_restrict_type => inner(),
            gimli::DW_TAG_array_type => format!("{} []", inner()),
            gimli::DW_TAG_subroutine_type => "function".to_string(),
            _ => own.unwrap_or_else(|| "?".to_string()),
        }
    }

    fn build(&self, unit_index: usize, offset: UnitOffset, depth: u32) -> Type {
        let opaque = |name: String| Type {
            name,
            size: 0,
            kind: TypeKind::Opaque,
        };
        let unit = &self.units[unit_index];
        if depth > MAX_DEPTH {
            return opaque("?".into());
        }
        let Ok(mut tree) = unit.entries_tree(Some(offset)) else {
            return opaque("?".into());
        };
        let Ok(root) = tree.root() else {
            return opaque("?".into());
        };
        let entry = root.entry().clone();
        let name = self.type_name(unit_index, Some(offset), 0);
        let size = udata(&entry, gimli::DW_AT_byte_size);
        match entry.tag() {
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type
            | gimli::DW_TAG_immutable_type => match type_ref(&entry) {
                Some(inner) => {
                    let mut ty = self.build(unit_index, inner, depth + 1);
                    if entry.tag() == gimli::DW_TAG_typedef {
                        ty.name = name;
                    }
                    ty
                }
                None => opaque(name),
            },
            gimli::DW_TAG_base_type => {
                let encoding = match entry.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(e)) => e,
                    _ => gimli::DW_ATE_unsigned,
                };
                let encoding = match encoding {
                    gimli::DW_ATE_signed => Encoding::Signed,
                    gimli::DW_ATE_signed_char => Encoding::SignedChar,
                    gimli::DW_ATE_unsigned_char => Encoding::UnsignedChar,
                    gimli::DW_ATE_boolean => Encoding::Bool,
                    gimli::DW_ATE_float => Encoding::Float,
                    gimli::DW_ATE_UTF => Encoding::Utf,
                    _ => Encoding::Unsigned,
                };
                Type {
                    name,
                    size: size.unwrap_or(0),
                    kind: TypeKind::Base(encoding),
                }
            }
            gimli::DW_TAG_enumeration_type => {
                let mut enumerators = Vec::new();
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let e = child.entry();
                    if e.tag() != gimli::DW_TAG_enumerator {
                        continue;
                    }
                    let value = match e.attr_value(gimli::DW_AT_const_value) {
                        Some(AttributeValue::Sdata(v)) => v,
                        Some(AttributeValue::Udata(v)) => v as i64,
                        Some(v) => v.udata_value().map_or(0, |v| v as i64),
                        None => 0,
                    };
                    if let Ok(Some(n)) = self.name_of(unit, e) {
                        enumerators.push(Enumerator { name: n, value });
                    }
                }
                let underlying_signed = type_ref(&entry)
                    .is_some_and(|t| self.build(unit_index, t, depth + 1).is_signed());
                let signed = underlying_signed || enumerators.iter().any(|e| e.value < 0);
                let mut mask = 0u64;
                let mut flag = !enumerators.is_empty();
                for e in &enumerators {
                    if e.value < 0 || mask & e.value as u64 != 0 {
                        flag = false;
                        break;
                    }
                    mask |= e.value as u64;
                }
                Type {
                    name,
                    size: size.unwrap_or(4),
                    kind: TypeKind::Enum {
                        enumerators,
                        signed,
                        flag,
                    },
                }
            }
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => {
                let target = match type_ref(&entry) {
                    Some(t) => TypeRef {
                        name: self.type_name(unit_index, Some(t), 0),
                        target: RefTarget::Die {
                            module: self.id,
                            unit: unit_index,
                            offset: t.0,
                        },
                    },
                    None => TypeRef {
                        name: "void".into(),
                        target: RefTarget::Void,
                    },
                };
                Type {
                    name,
                    size: size.unwrap_or(u64::from(unit.header.address_size())),
                    kind: TypeKind::Pointer { target },
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let mut raw = Vec::new();
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let m = child.entry();
                    if m.tag() != gimli::DW_TAG_member && m.tag() != gimli::DW_TAG_inheritance {
                        continue;
                    }
                    if m.attr(gimli::DW_AT_declaration).is_some()
                        || m.attr(gimli::DW_AT_external).is_some()
                    {
                        continue;
                    }
                    let Some(ty) = type_ref(m) else { continue };
                    let bit_size = udata(m, gimli::DW_AT_bit_size);
                    let (offset, bits) = match (bit_size, udata(m, gimli::DW_AT_data_bit_offset)) {
                        (Some(count), Some(bit)) => (bit / 8, Some((bit % 8, count))),
                        _ => (member_offset(m).unwrap_or(0), None),
                    };
                    let member_name = self.name_of(unit, m).ok().flatten();
                    let base = m.tag() == gimli::DW_TAG_inheritance;
                    raw.push((member_name, offset, bits, base, ty));
                }
                let fields = raw
                    .into_iter()
                    .map(|(name, offset, bits, base, ty)| Field {
                        name,
                        offset,
                        bits,
                        base,
                        ty: self.build(unit_index, ty, depth + 1),
                    })
                    .collect();
                Type {
                    name,
                    size: size.unwrap_or(0),
                    kind: if entry.tag() == gimli::DW_TAG_union_type {
                        TypeKind::Union(fields)
                    } else {
                        TypeKind::Struct(fields)
                    },
                }
            }
            gimli::DW_TAG_array_type => {
                let mut counts = Vec::new();
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let d = child.entry();
                    if d.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let count = match udata(d, gimli::DW_AT_count) {
                        Some(c) => c,
                        None => match udata(d, gimli::DW_AT_upper_bound) {
                            Some(upper) => (upper + 1)
                                .saturating_sub(udata(d, gimli::DW_AT_lower_bound).unwrap_or(0)),
                            None => 0,
                        },
                    };
                    counts.push(count);
                }
                if counts.is_empty() {
                    counts.push(0);
                }
                let mut ty = match type_ref(&entry) {
                    Some(e) => self.build(unit_index, e, depth + 1),
                    None => opaque("?".into()),
                };
                let base_name = ty.name.clone();
                let rust = self.languages.get(unit_index) == Some(&Language::Rust);
                for (i, &count) in counts.iter().enumerate().rev() {
                    let mut n = format!("{base_name} ");
                    for c in &counts[i..] {
                        n.push_str(&format!("[{c}]"));
                    }
                    if rust {
                        n = format!("[{}; {count}]", ty.name);
                    }
                    ty = Type {
                        name: n,
                        size: ty.size.saturating_mul(count),
                        kind: TypeKind::Array {
                            element: Box::new(ty),
                            count,
                        },
                    };
                }
                if let Some(s) = size {
                    ty.size = s;
                }
                ty
            }
            _ => Type {
                name,
                size: size.unwrap_or(0),
                kind: TypeKind::Opaque,
            },
        }
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

/// `'file.c'` matches a unit named `file.c`, `dir/file.c` or `/abs/dir/file.c`.
pub(crate) fn file_matches(unit_name: &str, quoted: &str) -> bool {
    unit_name == quoted || unit_name.ends_with(&format!("/{quoted}"))
}

/// The `.debug_info` offset of the DIE a `DW_AT_specification`/`DW_AT_abstract_origin`
/// names: in the same unit (`DW_FORM_ref*`) or anywhere in the section (`DW_FORM_ref_addr`).
fn link_of(unit: &Unit<R>, entry: &DebuggingInformationEntry<R>) -> Option<usize> {
    [gimli::DW_AT_specification, gimli::DW_AT_abstract_origin]
        .into_iter()
        .find_map(|at| match entry.attr_value(at) {
            Some(AttributeValue::UnitRef(o)) => o.to_debug_info_offset(&unit.header).map(|g| g.0),
            Some(AttributeValue::DebugInfoRef(o)) => Some(o.0),
            _ => None,
        })
}

pub(crate) fn type_ref(entry: &DebuggingInformationEntry<R>) -> Option<UnitOffset> {
    match entry.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(offset)) => Some(offset),
        _ => None,
    }
}

fn udata(entry: &DebuggingInformationEntry<R>, at: gimli::DwAt) -> Option<u64> {
    entry.attr_value(at).and_then(|v| v.udata_value())
}

fn member_offset(entry: &DebuggingInformationEntry<R>) -> Option<u64> {
    match entry.attr_value(gimli::DW_AT_data_member_location)? {
        AttributeValue::Exprloc(expr) => {
            let mut bytes = expr.0;
            if bytes.read_u8().ok()? == gimli::DW_OP_plus_uconst.0 {
                bytes.read_uleb128().ok()
            } else {
                None
            }
        }
        value => value.udata_value(),
    }
}

/// Classifies `DW_AT_location` (DWARF 5 §2.5/§2.6): a lone `DW_OP_addr`/`DW_OP_addrx` is a
/// fixed address; register, frame-relative and TLS operations say why there is none.
fn location_of(
    dwarf: &gimli::Dwarf<R>,
    unit: &Unit<R>,
    entry: &DebuggingInformationEntry<R>,
) -> gimli::Result<VarLocation> {
    if entry.attr(gimli::DW_AT_declaration).is_some() && entry.attr(gimli::DW_AT_location).is_none()
    {
        return Ok(VarLocation::Declaration);
    }
    let expr = match entry.attr_value(gimli::DW_AT_location) {
        Some(AttributeValue::Exprloc(expr)) => expr,
        Some(AttributeValue::LocationListsRef(_) | AttributeValue::SecOffset(_)) => {
            return Ok(VarLocation::LocationList)
        }
        Some(_) => return Ok(VarLocation::Complex),
        None if entry.attr(gimli::DW_AT_const_value).is_some() => return Ok(VarLocation::Constant),
        None => return Ok(VarLocation::OptimizedOut),
    };
    let mut ops = expr.operations(unit.encoding());
    let mut address = None;
    let mut count = 0;
    while let Some(op) = ops.next()? {
        count += 1;
        match op {
            gimli::Operation::Address { address: a } => address = Some(a),
            gimli::Operation::AddressIndex { index } => address = Some(dwarf.address(unit, index)?),
            gimli::Operation::Register { .. } => return Ok(VarLocation::Register),
            gimli::Operation::FrameOffset { .. }
            | gimli::Operation::RegisterOffset { .. }
            | gimli::Operation::CallFrameCFA => return Ok(VarLocation::Stack),
            gimli::Operation::TLS => return Ok(VarLocation::ThreadLocal),
            gimli::Operation::StackValue | gimli::Operation::ImplicitValue { .. } => {
                return Ok(VarLocation::Constant)
            }
            _ => {}
        }
    }
    Ok(match (address, count) {
        (Some(a), 1) => VarLocation::Address(a),
        _ => VarLocation::Complex,
    })
}

/// A C base type spelled in any word order (`unsigned long`, `long unsigned int`, `_Bool`),
/// with gcc's DWARF name and its x86-64 (LP64) size.
pub fn c_base_type(name: &str) -> Option<Type> {
    let words: Vec<&str> = name.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let count = |w: &str| words.iter().filter(|&&x| x == w).count();
    let known = [
        "unsigned", "signed", "long", "short", "int", "char", "float", "double", "_Bool", "bool",
    ];
    if words.iter().any(|w| !known.contains(w)) {
        return None;
    }
    let unsigned = count("unsigned") > 0;
    let longs = count("long");
    let (gcc, size, encoding) = if count("_Bool") + count("bool") > 0 {
        ("_Bool", 1, Encoding::Bool)
    } else if count("float") > 0 {
        ("float", 4, Encoding::Float)
    } else if count("double") > 0 {
        if longs > 0 {
            ("long double", 16, Encoding::Float)
        } else {
            ("double", 8, Encoding::Float)
        }
    } else if count("char") > 0 {
        match (unsigned, count("signed") > 0) {
            (true, _) => ("unsigned char", 1, Encoding::UnsignedChar),
            (false, true) => ("signed char", 1, Encoding::SignedChar),
            (false, false) => ("char", 1, Encoding::SignedChar),
        }
    } else {
        let enc = if unsigned {
            Encoding::Unsigned
        } else {
            Encoding::Signed
        };
        match (count("short") > 0, longs, unsigned) {
            (true, _, false) => ("short int", 2, enc),
            (true, _, true) => ("short unsigned int", 2, enc),
            (false, 0, false) => ("int", 4, enc),
            (false, 0, true) => ("unsigned int", 4, enc),
            (false, 1, false) => ("long int", 8, enc),
            (false, 1, true) => ("long unsigned int", 8, enc),
            (false, _, false) => ("long long int", 8, enc),
            (false, _, true) => ("long long unsigned int", 8, enc),
        }
    };
    Some(Type {
        name: gcc.to_string(),
        size,
        kind: TypeKind::Base(encoding),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_of(element: Type, count: u64) -> Type {
        Type {
            name: format!("{} [{count}]", element.name),
            size: element.size * count,
            kind: TypeKind::Array {
                element: Box::new(element),
                count,
            },
        }
    }

    #[test]
    fn indices_of_an_element_in_a_multi_dimensional_array() {
        let char_type = || c_base_type("char").unwrap();
        let int_type = || c_base_type("int").unwrap();
        let m = array_of(array_of(int_type(), 3), 2);
        assert_eq!(m.member_path("m", 5 * 4), "m[1][2]");
        assert_eq!(m.member_path("m", 5 * 4 + 3), "m[1][2]");
        assert_eq!(array_of(int_type(), 8).member_path("v", 7 * 4), "v[7]");
        let c = array_of(array_of(array_of(char_type(), 4), 3), 2);
        assert_eq!(c.member_path("c", 13), "c[1][0][1]");
        assert_eq!(c.member_path("c", 24), "c+0x18");
        let leaves = c.leaves("c");
        assert_eq!(leaves.len(), 24);
        assert_eq!(
            leaves[13],
            Leaf {
                offset: 13,
                size: 1,
                path: "c[1][0][1]".into()
            }
        );
    }

    #[test]
    fn c_base_types_in_any_word_order() {
        let t = |n: &str| c_base_type(n).map(|t| (t.name, t.size, t.kind));
        assert_eq!(
            t("unsigned long"),
            Some((
                "long unsigned int".into(),
                8,
                TypeKind::Base(Encoding::Unsigned)
            ))
        );
        assert_eq!(t("long unsigned int"), t("unsigned long"));
        assert_eq!(
            t("long long"),
            Some(("long long int".into(), 8, TypeKind::Base(Encoding::Signed)))
        );
        assert_eq!(
            t("char"),
            Some(("char".into(), 1, TypeKind::Base(Encoding::SignedChar)))
        );
        assert_eq!(
            t("unsigned char"),
            Some((
                "unsigned char".into(),
                1,
                TypeKind::Base(Encoding::UnsignedChar)
            ))
        );
        assert_eq!(
            t("short"),
            Some(("short int".into(), 2, TypeKind::Base(Encoding::Signed)))
        );
        assert_eq!(
            t("int"),
            Some(("int".into(), 4, TypeKind::Base(Encoding::Signed)))
        );
        assert_eq!(
            t("double"),
            Some(("double".into(), 8, TypeKind::Base(Encoding::Float)))
        );
        assert_eq!(t("uint32_t"), None);
        assert_eq!(t("struct conn"), None);
    }
}
