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
//!
//! This module holds [`ModuleDebug`] itself and the public paths; the work is in its parts:
//! `model` (the [`Type`] model and its queries), `loader` (reading a module's DWARF),
//! `index` (the variables and named types, and lookups), `builder` (types from DIEs) and
//! `c_base` (C base types by name).

use std::collections::HashMap;
use std::path::PathBuf;

use gimli::{RunTimeEndian, Unit, UnitOffset};

use crate::debuglink::DebugSource;

mod builder;
mod c_base;
mod index;
mod loader;
mod model;

pub use c_base::c_base_type;
pub use index::{VarLocation, Variable};
pub use loader::DwarfError;
pub use model::{Encoding, Enumerator, Field, Language, Leaf, Type, TypeKind, TypeRef};

pub(crate) use builder::type_ref;
pub(crate) use index::file_matches;
pub(crate) use model::RefTarget;

use index::TypeTag;

pub(crate) type R = gimli::EndianArcSlice<RunTimeEndian>;

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
