//! Typed values: raw bytes printed by their [`Type`] the way gdb's `print` shows them (C
//! language, default `print` settings), a diff of two values naming the members that changed,
//! and `--if` conditions compared in the type.
//!
//! gdb's rules followed (gdb 13 `valprint.c`, `c-valprint.c`, `generic_val_print_enum_1`):
//! integers by signedness (`-1`, never `4294967295` for an `int`); `char` types as the number
//! and the character, `115 's'`, non-printing ones as C escapes or 3-digit octal (`10 '\n'`,
//! `-56 '\310'`); `bool` as `true`/`false` (other values as the number); enums by the
//! enumerator with that value, a flag enum as `(A | B)` with leftover bits as
//! `unknown: 0x8`, `0` when no enumerator is 0, any other unnamed value as the number;
//! pointers as hex with `<symbol+off>` when the symbolizer knows the address (`0x0` for
//! NULL); `float` with 9 and `double` with 17 significant digits (`%g`); structs as
//! `{a = 1, b = {c = 2}}`, arrays as `{1, 2, 3}` with runs of 10 or more equal elements as
//! `0 <repeats 12 times>`, and `char` arrays as strings (`"abc\000\000"`, a trailing NUL
//! dropped, runs over 10 as `'\000' <repeats 30 times>`). A top-level pointer is printed
//! without gdb's `(type *)` prefix. Rust values ([`format_value_in`] with
//! [`Language::Rust`]) follow gdb's Rust printer: `krate::m::Settings {id: 42, limits: [..]}`,
//! tuple structs `krate::m::Point (3, -4)`, arrays `[1, 2]`, `char` as `115 's'`. Without a
//! type a value is an unsigned little-endian integer of its size (hwbp's format before types).
//!
//! ```
//! use hwbp_symbols::types::c_base_type;
//! use hwbp_symbols::value::format_value;
//! let int = c_base_type("int").unwrap();
//! assert_eq!(format_value(&int, &(-1i32).to_le_bytes(), &mut |_| None), "-1");
//! ```

use std::fmt;
use std::fmt::Write as _;

use crate::types::{Encoding, Language, Type, TypeKind};

/// gdb's `repeat_count_threshold`.
const REPEAT_THRESHOLD: usize = 10;
/// gdb's `print elements` limit.
const PRINT_MAX: usize = 200;

/// Names an address for pointer values: `Some("nodes+16")` prints `0x4040a0 <nodes+16>`.
pub type Symbolizer<'a> = dyn FnMut(u64) -> Option<String> + 'a;

/// Formats `bytes` (at least `ty.size` of them) as gdb prints a value of type `ty` in C.
pub fn format_value(ty: &Type, bytes: &[u8], symbolize: &mut Symbolizer<'_>) -> String {
    format_value_in(Language::C, ty, bytes, symbolize)
}

/// [`format_value`] in the value's source language ([`crate::eval::Evaluated::language`]):
/// C and C++ as above; Rust as gdb prints it in Rust mode: `krate::m::Settings {id: 42,
/// limits: [...]}`, tuple structs `krate::m::Point (3, -4)`, arrays `[1, 2, 3]`.
pub fn format_value_in(
    language: Language,
    ty: &Type,
    bytes: &[u8],
    symbolize: &mut Symbolizer<'_>,
) -> String {
    let mut out = String::new();
    write_value(&mut out, language, ty, bytes, symbolize);
    out
}

/// A typeless value: the bytes as an unsigned little-endian integer (up to 8 bytes), or hex
/// bytes for longer ones.
pub fn format_untyped(bytes: &[u8]) -> String {
    if bytes.len() <= 8 {
        unsigned(bytes).to_string()
    } else {
        let mut s = String::from("0x");
        for b in bytes.iter().rev() {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

fn unsigned(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}

fn signed(bytes: &[u8]) -> i64 {
    let n = bytes.len().min(8);
    if n == 0 {
        return 0;
    }
    let shift = 64 - 8 * n as u32;
    ((unsigned(bytes) << shift) as i64) >> shift
}

/// The scalar bytes as an integer in the type's signedness (floats: truncated).
fn integer(ty: &Type, bytes: &[u8]) -> i128 {
    match &ty.kind {
        TypeKind::Base(Encoding::Float) => float(bytes).map_or(0, |f| f as i128),
        _ if ty.is_signed() => i128::from(signed(bytes)),
        _ => i128::from(unsigned(bytes)),
    }
}

fn float(bytes: &[u8]) -> Option<f64> {
    match bytes.len() {
        4 => Some(f64::from(f32::from_le_bytes(bytes.try_into().ok()?))),
        8 => Some(f64::from_le_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

fn write_value(
    out: &mut String,
    lang: Language,
    ty: &Type,
    bytes: &[u8],
    symbolize: &mut Symbolizer<'_>,
) {
    let size = usize::try_from(ty.size)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let bytes = &bytes[..size];
    match &ty.kind {
        TypeKind::Base(Encoding::Signed) => {
            let _ = write!(out, "{}", signed(bytes));
        }
        TypeKind::Base(Encoding::Unsigned) => {
            if bytes.len() > 8 {
                out.push_str(&format_untyped(bytes));
            } else {
                let _ = write!(out, "{}", unsigned(bytes));
            }
        }
        TypeKind::Base(Encoding::SignedChar) => {
            let _ = write!(out, "{} ", signed(bytes));
            char_literal(out, unsigned(bytes) as u8);
        }
        TypeKind::Base(Encoding::UnsignedChar) => {
            let _ = write!(out, "{} ", unsigned(bytes));
            char_literal(out, unsigned(bytes) as u8);
        }
        TypeKind::Base(Encoding::Utf) => {
            let code = unsigned(bytes);
            let _ = write!(out, "{code} ");
            let prefix = match (lang, bytes.len()) {
                (Language::Rust, _) => "",
                (_, 2) => "u",
                _ => "U",
            };
            out.push_str(prefix);
            match char::from_u32(code as u32) {
                Some(c) if code < 0x80 => char_literal(out, c as u8),
                Some(c) if !c.is_control() => {
                    let _ = write!(out, "'{c}'");
                }
                _ => {
                    let _ = write!(out, "'\\u{{{code:x}}}'");
                }
            }
        }
        TypeKind::Base(Encoding::Bool) => match unsigned(bytes) {
            0 => out.push_str("false"),
            1 => out.push_str("true"),
            n => {
                let _ = write!(out, "{n}");
            }
        },
        TypeKind::Base(Encoding::Float) => match (bytes.len(), float(bytes)) {
            (4, Some(f)) => out.push_str(&format_g(f, 9)),
            (8, Some(f)) => out.push_str(&format_g(f, 17)),
            _ => out.push_str(&format_untyped(bytes)),
        },
        TypeKind::Enum {
            enumerators, flag, ..
        } => {
            let value = integer(ty, bytes) as i64;
            if let Some(e) = enumerators.iter().find(|e| e.value == value) {
                out.push_str(&e.name);
            } else if *flag {
                let mut rest = value as u64;
                let mut parts: Vec<String> = Vec::new();
                for e in enumerators {
                    let bits = e.value as u64;
                    if bits != 0 && rest & bits != 0 {
                        parts.push(e.name.clone());
                        rest &= !bits;
                    }
                }
                if rest != 0 {
                    parts.push(format!("unknown: {rest:#x}"));
                }
                if parts.is_empty() {
                    out.push('0');
                } else {
                    let _ = write!(out, "({})", parts.join(" | "));
                }
            } else {
                let _ = write!(out, "{value}");
            }
        }
        TypeKind::Pointer { .. } => {
            let value = unsigned(bytes);
            let _ = write!(out, "{value:#x}");
            if value != 0 {
                if let Some(name) = symbolize(value) {
                    let _ = write!(out, " <{name}>");
                }
            }
        }
        TypeKind::Struct(fields) | TypeKind::Union(fields) => {
            let tuple = lang == Language::Rust
                && !fields.is_empty()
                && fields.iter().all(|f| {
                    f.name
                        .as_deref()
                        .and_then(|n| n.strip_prefix("__"))
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
                });
            if lang == Language::Rust {
                out.push_str(&ty.name);
                if fields.is_empty() {
                    return;
                }
                out.push_str(if tuple { " (" } else { " {" });
            } else {
                out.push('{');
            }
            let mut first = true;
            for field in fields {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                match (&field.name, lang) {
                    (Some(_), Language::Rust) if tuple => {}
                    (Some(name), Language::Rust) => {
                        let _ = write!(out, "{name}: ");
                    }
                    (Some(name), _) => {
                        let _ = write!(out, "{name} = ");
                    }
                    (None, _) if field.base => {
                        let name = field
                            .ty
                            .name
                            .split_once(' ')
                            .map_or(&*field.ty.name, |(_, n)| n);
                        let _ = write!(out, "<{name}> = ");
                    }
                    (None, _) => {}
                }
                let start = usize::try_from(field.offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                match field.bits {
                    Some((first_bit, count)) => {
                        let raw = unsigned(&bytes[start..]) >> first_bit;
                        let mask = if count >= 64 { !0 } else { (1u64 << count) - 1 };
                        let v = raw & mask;
                        if field.ty.is_signed()
                            && count > 0
                            && count < 64
                            && v >> (count - 1) & 1 == 1
                        {
                            let _ = write!(out, "{}", (v | !mask) as i64);
                        } else {
                            let _ = write!(out, "{v}");
                        }
                    }
                    None => write_value(out, lang, &field.ty, &bytes[start..], symbolize),
                }
            }
            out.push(if tuple { ')' } else { '}' });
        }
        TypeKind::Array { element, count } => {
            let elem_size = usize::try_from(element.size).unwrap_or(0);
            let count = usize::try_from(*count).unwrap_or(0);
            if elem_size == 1
                && matches!(
                    element.kind,
                    TypeKind::Base(Encoding::SignedChar | Encoding::UnsignedChar)
                )
            {
                string_literal(out, &bytes[..count.min(bytes.len())]);
                return;
            }
            let elements: Vec<String> = (0..count)
                .take(PRINT_MAX)
                .map(|i| {
                    let start = (i * elem_size).min(bytes.len());
                    format_value_in(lang, element, &bytes[start..], symbolize)
                })
                .collect();
            let (open, close) = if lang == Language::Rust {
                ('[', ']')
            } else {
                ('{', '}')
            };
            out.push(open);
            let mut i = 0;
            let mut first = true;
            while i < elements.len() {
                let mut run = 1;
                while i + run < elements.len() && elements[i + run] == elements[i] {
                    run += 1;
                }
                if !first {
                    out.push_str(", ");
                }
                first = false;
                if run >= REPEAT_THRESHOLD {
                    let _ = write!(out, "{} <repeats {run} times>", elements[i]);
                    i += run;
                } else {
                    out.push_str(&elements[i]);
                    i += 1;
                }
            }
            if count > PRINT_MAX {
                out.push_str("...");
            }
            out.push(close);
        }
        TypeKind::Opaque => out.push_str(&format_untyped(bytes)),
    }
}

fn escape(out: &mut String, c: u8, quote: u8) {
    match c {
        b'\n' => out.push_str("\\n"),
        b'\t' => out.push_str("\\t"),
        b'\r' => out.push_str("\\r"),
        0x07 => out.push_str("\\a"),
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        0x0b => out.push_str("\\v"),
        0x1b => out.push_str("\\033"),
        b'\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c as char);
        }
        0x20..=0x7e => out.push(c as char),
        c => {
            let _ = write!(out, "\\{c:03o}");
        }
    }
}

fn char_literal(out: &mut String, c: u8) {
    out.push('\'');
    escape(out, c, b'\'');
    out.push('\'');
}

/// A `char` array as gdb prints it: a trailing NUL dropped, runs over the threshold as
/// `'c' <repeats N times>` segments.
fn string_literal(out: &mut String, bytes: &[u8]) {
    let bytes = match bytes.split_last() {
        Some((0, rest)) => rest,
        _ => bytes,
    };
    if bytes.is_empty() {
        out.push_str("\"\"");
        return;
    }
    let mut segments: Vec<String> = Vec::new();
    let mut quoted = String::new();
    let mut i = 0;
    while i < bytes.len().min(PRINT_MAX) {
        let mut run = 1;
        while i + run < bytes.len() && bytes[i + run] == bytes[i] {
            run += 1;
        }
        if run > REPEAT_THRESHOLD {
            if !quoted.is_empty() {
                segments.push(format!("\"{quoted}\""));
                quoted.clear();
            }
            let mut c = String::new();
            char_literal(&mut c, bytes[i]);
            segments.push(format!("{c} <repeats {run} times>"));
            i += run;
        } else {
            escape(&mut quoted, bytes[i], b'"');
            i += 1;
        }
    }
    if !quoted.is_empty() {
        segments.push(format!("\"{quoted}\""));
    }
    out.push_str(&segments.join(", "));
    if bytes.len() > PRINT_MAX {
        out.push_str("...");
    }
}

/// C's `%.{precision}g`, as gdb prints floating-point values.
pub fn format_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return if value.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if value.is_infinite() {
        return if value < 0.0 {
            "-inf".into()
        } else {
            "inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let precision = precision.max(1);
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exponent < -4 || exponent >= precision as i32 {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim(&format!("{value:.decimals$}"))
    }
}

/// One member whose value differs between two values of a struct or array type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `cfg.limits[2].max`
    pub path: String,
    /// The old value, formatted.
    pub old: String,
    /// The new value, formatted.
    pub new: String,
}

impl fmt::Display for Change {
    /// `cfg.limits[2].max: 3 -> 7`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.path, self.old, self.new)
    }
}

/// The leaves (scalars, `char` arrays as one string, bit-fields as their bytes) of `ty` whose
/// bytes differ between `old` and `new`, named from `root` (`cfg` -> `cfg.limits[2].max`),
/// values formatted in `language`.
pub fn diff_values(
    root: &str,
    ty: &Type,
    old: &[u8],
    new: &[u8],
    language: Language,
    symbolize: &mut Symbolizer<'_>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut path = root.to_string();
    diff_into(&mut changes, &mut path, language, ty, old, new, symbolize);
    changes
}

fn diff_into(
    changes: &mut Vec<Change>,
    path: &mut String,
    lang: Language,
    ty: &Type,
    old: &[u8],
    new: &[u8],
    symbolize: &mut Symbolizer<'_>,
) {
    let size = usize::try_from(ty.size).unwrap_or(usize::MAX);
    let (o, n) = (&old[..size.min(old.len())], &new[..size.min(new.len())]);
    if o == n {
        return;
    }
    let is_string = matches!(&ty.kind, TypeKind::Array { element, .. }
        if element.size == 1 && matches!(element.kind, TypeKind::Base(Encoding::SignedChar | Encoding::UnsignedChar)));
    match &ty.kind {
        TypeKind::Struct(fields) | TypeKind::Union(fields) if !fields.is_empty() => {
            for field in fields {
                let len = path.len();
                if let Some(name) = &field.name {
                    path.push('.');
                    path.push_str(name);
                }
                let start = usize::try_from(field.offset).unwrap_or(usize::MAX);
                if start < o.len() && start < n.len() {
                    if field.bits.is_some() {
                        let width =
                            usize::try_from((field.bits.map_or(0, |b| b.0 + b.1)).div_ceil(8))
                                .unwrap_or(1);
                        let end = (start + width).min(o.len()).min(n.len());
                        if o[start..end] != n[start..end] {
                            changes.push(Change {
                                path: path.clone(),
                                old: format_untyped(&o[start..end]),
                                new: format_untyped(&n[start..end]),
                            });
                        }
                    } else {
                        diff_into(
                            changes,
                            path,
                            lang,
                            &field.ty,
                            &o[start..],
                            &n[start..],
                            symbolize,
                        );
                    }
                }
                path.truncate(len);
            }
        }
        TypeKind::Array { element, count } if !is_string && element.size > 0 => {
            let step = usize::try_from(element.size).unwrap_or(usize::MAX);
            for i in 0..usize::try_from(*count).unwrap_or(0) {
                let start = i * step;
                if start >= o.len() || start >= n.len() {
                    break;
                }
                let len = path.len();
                let _ = write!(path, "[{i}]");
                diff_into(
                    changes,
                    path,
                    lang,
                    element,
                    &o[start..],
                    &n[start..],
                    symbolize,
                );
                path.truncate(len);
            }
        }
        _ => changes.push(Change {
            path: path.clone(),
            old: format_value_in(lang, ty, o, symbolize),
            new: format_value_in(lang, ty, n, symbolize),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_like_c() {
        assert_eq!(format_g(1.5, 17), "1.5");
        assert_eq!(format_g(f64::from(2.71f32), 9), "2.71000004");
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(-2.25, 17), "-2.25");
        assert_eq!(format_g(1e20, 17), "1e+20");
        assert_eq!(format_g(0.0001, 17), "0.0001");
        assert_eq!(format_g(0.00001, 9), "1e-05");
        assert_eq!(format_g(100.0, 9), "100");
    }
}
