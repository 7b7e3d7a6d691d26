//! C base types by name: [`c_base_type`] parses `unsigned long`, `long unsigned int`,
//! `_Bool` in any word order to the type gcc's DWARF names, with its x86-64 (LP64) size, for
//! casts a module's DWARF does not spell.

use super::{Encoding, Type, TypeKind};

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
