//! The type model: [`Type`] (name, size, [`TypeKind`]) with its [`Field`]s, [`Enumerator`]s
//! and lazily read pointer targets ([`TypeRef`]), base-type [`Encoding`]s, a unit's
//! [`Language`], and the queries on a value's bytes: the member or element at an offset
//! ([`Type::member_path`]) and the leaves a wide watch is split along ([`Type::leaves`]).

use std::fmt::Write as _;

use gimli::{AttributeValue, Unit};

use super::R;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::c_base_type;

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
}
