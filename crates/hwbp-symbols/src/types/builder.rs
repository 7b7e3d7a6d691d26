//! Building [`Type`]s from DIEs: typedefs and qualifiers looked through, base types by their
//! `DW_AT_encoding`, enums with gdb's flag-enum rule, pointers with their targets left to be
//! read on dereference, struct/union members at their `DW_AT_data_member_location` (bit-fields
//! at `DW_AT_data_bit_offset`), arrays from their `DW_TAG_subrange_type`s, and the type names
//! C or Rust spells; nesting stops at [`MAX_DEPTH`].

use gimli::{AttributeValue, DebuggingInformationEntry, Reader, Unit, UnitOffset};

use super::{
    Encoding, Enumerator, Field, Language, ModuleDebug, RefTarget, Type, TypeKind, TypeRef, R,
};

/// Types nested deeper than this are malformed DWARF (or a loop); we stop there. Pointer
/// targets are read only on dereference, so only typedefs, qualifiers, members and array
/// dimensions count.
pub(super) const MAX_DEPTH: u32 = 64;

impl ModuleDebug {
    /// The type at `offset` in unit `unit` (an index into [`dwarf_units`](Self::dwarf_units)).
    pub(crate) fn type_at(&self, unit: usize, offset: UnitOffset) -> Type {
        self.build(unit, offset, 0)
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

    pub(super) fn name_of(
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

    pub(super) fn build(&self, unit_index: usize, offset: UnitOffset, depth: u32) -> Type {
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
