//! Typed values: raw bytes decoded by their [`Type`] into a [`Value`] (the data) whose
//! `Display` is the way gdb's `print` shows it (C language, default `print` settings), a diff
//! of two values naming the members that changed, and `--if` conditions compared in the type.
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
    Value::decode(language, ty, KnownBytes::all(bytes), symbolize).to_string()
}

/// gdb's text for bytes whose value is not known (gdb prints data a tracepoint did not
/// collect so); hwbp prints it for the bytes of a piece that was not armed.
pub const UNAVAILABLE: &str = "<unavailable>";

/// gdb's text for a value that cannot be read (a NULL pointer on the way to it).
pub const UNREADABLE: &str = "<unreadable>";

/// True when every byte of `known` (up to `len`) is known; `None` means all are.
fn all_known(known: Option<&[bool]>, len: usize) -> bool {
    known.is_none_or(|k| k.iter().take(len).all(|b| *b))
}

/// `known` from `start` on (`None` stays `None`).
fn known_from(known: Option<&[bool]>, start: usize) -> Option<&[bool]> {
    known.map(|k| &k[start.min(k.len())..])
}

/// A bit-field's value as gdb prints it: the field's own bits, sign-extended for a signed
/// type; `bytes` start at the field's byte offset.
fn bitfield_value(field: &crate::types::Field, bytes: &[u8]) -> Value {
    let Some((first_bit, count)) = field.bits else {
        return Value::untyped(bytes);
    };
    let raw = unsigned(bytes) >> first_bit;
    let mask = if count >= 64 { !0 } else { (1u64 << count) - 1 };
    let v = raw & mask;
    if !field.ty.is_signed() {
        Value::Unsigned(v)
    } else if count > 0 && count < 64 && v >> (count - 1) & 1 == 1 {
        Value::Signed((v | !mask) as i64)
    } else {
        Value::Signed(v as i64)
    }
}

/// The bytes a bit-field's bits lie in, from its byte offset.
fn bitfield_width(field: &crate::types::Field) -> usize {
    usize::try_from(field.bits.map_or(0, |b| b.0 + b.1).div_ceil(8)).unwrap_or(1)
}

/// A typeless value: the bytes as an unsigned little-endian integer (up to 8 bytes), or hex
/// bytes for longer ones.
pub fn format_untyped(bytes: &[u8]) -> String {
    Value::untyped(bytes).to_string()
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

/// A value decoded from its bytes by its DWARF type: what gdb's `print` shows, as data. Its
/// [`Display`](fmt::Display) is the text hwbp prints (gdb's C printer, or its Rust printer for
/// [`Language::Rust`] values); [`Value::decode`] is the one decoder behind every typed text.
///
/// ```
/// use hwbp_symbols::types::{c_base_type, Language};
/// use hwbp_symbols::value::{KnownBytes, Value};
/// let int = c_base_type("int").unwrap();
/// let bytes = (-7i32).to_le_bytes();
/// let value = Value::decode(Language::C, &int, KnownBytes::all(&bytes), &mut |_| None);
/// assert_eq!(value, Value::Signed(-7));
/// assert_eq!(value.to_string(), "-7");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A signed integer (`DW_ATE_signed`, a signed bit-field): `-1`.
    Signed(i64),
    /// An unsigned integer of up to 8 bytes (also a value without a type): `4000000000`.
    Unsigned(u64),
    /// A `float` (`size` 4, 9 significant digits) or `double` (`size` 8, 17 digits): `1.5`.
    Float {
        /// The value (a `float` widened exactly).
        value: f64,
        /// Its size in bytes: 4 or 8.
        size: u8,
    },
    /// A `bool` holding 0 or 1: `true`, `false` (other values are [`Value::Unsigned`]).
    Bool(bool),
    /// A character: `115 's'`, `-56 '\310'`, `U'é'`, Rust's `'é'`.
    Char {
        /// The number (signed for a signed `char`).
        code: i64,
        /// How the character is spelled after the number.
        kind: CharKind,
    },
    /// An enum: by its enumerator's name, a flag enum as `(A | B)`, else the number.
    Enum {
        /// The number stored.
        value: i64,
        /// The name(s) it prints as.
        name: EnumName,
    },
    /// A pointer: `0x4040a0 <nodes+16>` (the symbol when one names the address), `0x0`.
    Pointer {
        /// The address held.
        address: u64,
        /// `nodes+16`
        symbol: Option<String>,
    },
    /// An array: `{1, 2, 3}` (C), `[1, 2, 3]` (Rust), runs of more than 10 equal elements as
    /// `0 <repeats 12 times>`, at most gdb's 200 elements printed (then `...`).
    Array {
        /// Every element, in order.
        elements: Vec<Value>,
        /// The language it prints in.
        language: Language,
    },
    /// A `char` array, printed as a string: `"abc\000\000"` (a trailing NUL dropped); `None`
    /// for a byte not known (of a piece that was not armed), printed `<unavailable>`.
    CharArray(Vec<Option<u8>>),
    /// A struct or union: `{a = 1, b = {c = 2}}` (C), `krate::Settings {id: 42}` and tuple
    /// structs `krate::Point (3, -4)` (Rust).
    Struct {
        /// The type's name (printed in Rust).
        name: String,
        /// The members, in order.
        members: Vec<Member>,
        /// The language it prints in.
        language: Language,
    },
    /// A `char *` with the C string it points to, or a Rust `&str`, read from the target.
    String(Box<PointedString>),
    /// Bytes without a type that says more, wider than 8: `0x` and the little-endian number
    /// in hex (`long double`, `unsigned __int128`, an opaque type).
    Bytes(Vec<u8>),
    /// A value some of whose bytes are not known: gdb's `<unavailable>`.
    Unavailable,
    /// A value that could not be read (a NULL pointer on the way): gdb's `<unreadable>`.
    Unreadable,
}

/// How a [`Value::Char`] spells its character after the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CharKind {
    /// A C `char` (signed or unsigned): the byte as a C literal, `'s'`, `'\n'`, `'\310'`.
    Byte,
    /// C++ `char16_t`: `u'x'`.
    Utf16,
    /// C++ `char32_t` (and other C code points): `U'x'`.
    Utf32,
    /// Rust's `char`: `'x'`.
    Rust,
}

/// What a [`Value::Enum`] prints as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumName {
    /// The enumerator with that value: `MODE_ON`.
    Exact(String),
    /// A flag enum's enumerators whose bits are set, and bits no enumerator names:
    /// `(PERM_R | PERM_W | unknown: 0x8)`; `0` when neither.
    Flags {
        /// The enumerators whose bits are set.
        names: Vec<String>,
        /// Bits no enumerator names.
        unknown: u64,
    },
    /// No enumerator has the value: the number.
    None,
}

/// One member of a [`Value::Struct`].
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's name (a base class's: its type's, `base`); `None` for an anonymous one.
    pub name: Option<String>,
    /// A C++ base class, printed `<base> = {...}`.
    pub base: bool,
    /// Its value.
    pub value: Value,
}

/// A string read from the target behind a pointer at a hit: gdb prints a `char *` as the
/// pointer and the string (`0x4052a0 "hello"`), a Rust `&str` as the string alone.
#[derive(Debug, Clone, PartialEq)]
pub struct PointedString {
    /// The value read: the `char *` (printed before the string) or the `&str` (not printed).
    pub pointer: Value,
    /// The bytes read there: C, printed to the first NUL (without one, the bytes read go on
    /// when they fill [`C_STRING_MAX`]); Rust, up to [`C_STRING_MAX`] of its length.
    pub bytes: Vec<u8>,
    /// For a Rust `&str` or `String`: its length (past [`C_STRING_MAX`] the text ends with
    /// `...`); `None` for a C string.
    pub rust_length: Option<u64>,
    /// Read after the hit while the target ran on: ` (string read after)`.
    pub read_after: bool,
    /// The string goes on past `bytes`: read up to a bound below gdb's (the BPF handler's
    /// `--string-chars`), so the text ends with `...`.
    pub truncated: bool,
}

impl Value {
    /// Decodes `value` (at least `ty.size` bytes) by `ty`, values of `language`: every scalar,
    /// pointer and bit-field with an unknown byte is [`Value::Unavailable`] (printed
    /// [`UNAVAILABLE`]; a `char` array prints its known runs as strings and the rest so);
    /// `symbolize` names pointers' addresses.
    pub fn decode(
        language: Language,
        ty: &Type,
        value: KnownBytes<'_>,
        symbolize: &mut Symbolizer<'_>,
    ) -> Value {
        decode(language, ty, value.bytes, value.known, symbolize)
    }

    /// A value without a type: an unsigned little-endian integer of up to 8 bytes, else
    /// [`Value::Bytes`].
    pub fn untyped(bytes: &[u8]) -> Value {
        if bytes.len() <= 8 {
            Value::Unsigned(unsigned(bytes))
        } else {
            Value::Bytes(bytes.to_vec())
        }
    }
}

fn decode(
    lang: Language,
    ty: &Type,
    bytes: &[u8],
    known: Option<&[bool]>,
    symbolize: &mut Symbolizer<'_>,
) -> Value {
    let size = usize::try_from(ty.size)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let bytes = &bytes[..size];
    let composite = matches!(
        ty.kind,
        TypeKind::Struct(_) | TypeKind::Union(_) | TypeKind::Array { .. }
    );
    if !composite && !all_known(known, size) {
        return Value::Unavailable;
    }
    match &ty.kind {
        TypeKind::Base(Encoding::Signed) => Value::Signed(signed(bytes)),
        TypeKind::Base(Encoding::Unsigned) => Value::untyped(bytes),
        TypeKind::Base(Encoding::SignedChar) => Value::Char {
            code: signed(bytes),
            kind: CharKind::Byte,
        },
        TypeKind::Base(Encoding::UnsignedChar) => Value::Char {
            code: unsigned(bytes) as i64,
            kind: CharKind::Byte,
        },
        TypeKind::Base(Encoding::Utf) => Value::Char {
            code: unsigned(bytes) as i64,
            kind: match (lang, bytes.len()) {
                (Language::Rust, _) => CharKind::Rust,
                (_, 2) => CharKind::Utf16,
                _ => CharKind::Utf32,
            },
        },
        TypeKind::Base(Encoding::Bool) => match unsigned(bytes) {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            n => Value::Unsigned(n),
        },
        TypeKind::Base(Encoding::Float) => match (bytes.len(), float(bytes)) {
            (4, Some(value)) => Value::Float { value, size: 4 },
            (8, Some(value)) => Value::Float { value, size: 8 },
            _ => Value::untyped(bytes),
        },
        TypeKind::Enum {
            enumerators, flag, ..
        } => {
            let value = integer(ty, bytes) as i64;
            let name = if let Some(e) = enumerators.iter().find(|e| e.value == value) {
                EnumName::Exact(e.name.clone())
            } else if *flag {
                let mut rest = value as u64;
                let mut names = Vec::new();
                for e in enumerators {
                    let bits = e.value as u64;
                    if bits != 0 && rest & bits != 0 {
                        names.push(e.name.clone());
                        rest &= !bits;
                    }
                }
                EnumName::Flags {
                    names,
                    unknown: rest,
                }
            } else {
                EnumName::None
            };
            Value::Enum { value, name }
        }
        TypeKind::Pointer { .. } => {
            let address = unsigned(bytes);
            Value::Pointer {
                address,
                symbol: (address != 0).then(|| symbolize(address)).flatten(),
            }
        }
        TypeKind::Struct(fields) | TypeKind::Union(fields) => {
            let members = fields
                .iter()
                .map(|field| {
                    let start = usize::try_from(field.offset)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    let field_known = known_from(known, start);
                    let value = if field.bits.is_none() {
                        decode(lang, &field.ty, &bytes[start..], field_known, symbolize)
                    } else if all_known(field_known, bitfield_width(field)) {
                        bitfield_value(field, &bytes[start..])
                    } else {
                        Value::Unavailable
                    };
                    let name = match &field.name {
                        None if field.base => Some(
                            field
                                .ty
                                .name
                                .split_once(' ')
                                .map_or(&*field.ty.name, |(_, n)| n)
                                .to_string(),
                        ),
                        name => name.clone(),
                    };
                    Member {
                        name,
                        base: field.base && field.name.is_none(),
                        value,
                    }
                })
                .collect();
            Value::Struct {
                name: ty.name.clone(),
                members,
                language: lang,
            }
        }
        TypeKind::Array { element, count } => {
            let elem_size = usize::try_from(element.size).unwrap_or(0);
            let count = usize::try_from(*count).unwrap_or(0);
            if is_char(element) {
                let bytes = &bytes[..count.min(bytes.len())];
                let chars = bytes
                    .iter()
                    .enumerate()
                    .map(|(i, b)| known.is_none_or(|k| k.get(i) == Some(&true)).then_some(*b))
                    .collect();
                return Value::CharArray(chars);
            }
            let elements = (0..count)
                .map(|i| {
                    let start = (i * elem_size).min(bytes.len());
                    let element_known = known_from(known, start);
                    decode(lang, element, &bytes[start..], element_known, symbolize)
                })
                .collect();
            Value::Array {
                elements,
                language: lang,
            }
        }
        TypeKind::Opaque => Value::untyped(bytes),
    }
}

impl fmt::Display for Value {
    /// The value as the language prints it (see the module's rules).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_value(&mut out, self);
        f.write_str(&out)
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Signed(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Unsigned(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float { value, size } => {
            out.push_str(&format_g(*value, if *size == 4 { 9 } else { 17 }));
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Char { code, kind } => {
            let _ = write!(out, "{code} ");
            let prefix = match kind {
                CharKind::Byte => {
                    char_literal(out, *code as u8);
                    return;
                }
                CharKind::Utf16 => "u",
                CharKind::Utf32 => "U",
                CharKind::Rust => "",
            };
            out.push_str(prefix);
            let code = *code as u64;
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
        Value::Enum { value, name } => match name {
            EnumName::Exact(name) => out.push_str(name),
            EnumName::Flags { names, unknown } => {
                let mut parts = names.clone();
                if *unknown != 0 {
                    parts.push(format!("unknown: {unknown:#x}"));
                }
                if parts.is_empty() {
                    out.push('0');
                } else {
                    let _ = write!(out, "({})", parts.join(" | "));
                }
            }
            EnumName::None => {
                let _ = write!(out, "{value}");
            }
        },
        Value::Pointer { address, symbol } => {
            let _ = write!(out, "{address:#x}");
            if let Some(name) = symbol {
                let _ = write!(out, " <{name}>");
            }
        }
        Value::Struct {
            name,
            members,
            language,
        } => write_struct(out, name, members, *language),
        Value::Array { elements, language } => write_array(out, elements, *language),
        Value::CharArray(chars) => {
            let bytes: Vec<u8> = chars.iter().map(|c| c.unwrap_or(0)).collect();
            if chars.iter().all(Option::is_some) {
                string_literal(out, &bytes);
            } else {
                let known: Vec<bool> = chars.iter().map(Option::is_some).collect();
                known_runs_literal(out, &bytes, &known);
            }
        }
        Value::String(string) => {
            match string.rust_length {
                None => {
                    write_value(out, &string.pointer);
                    out.push(' ');
                    // To the first NUL; without one, a buffer of gdb's whole limit goes on.
                    let bytes = &string.bytes;
                    let (chars, goes_on) = match bytes.iter().position(|b| *b == 0) {
                        Some(nul) => (&bytes[..nul], false),
                        None => (&bytes[..], bytes.len() >= C_STRING_MAX),
                    };
                    out.push_str(&format_c_string_chars(chars, string.truncated || goes_on));
                }
                Some(length) => {
                    // gdb's Rust printer: the text quoted with Rust's escapes, `...` past the
                    // limit.
                    let _ = write!(out, "{:?}", String::from_utf8_lossy(&string.bytes));
                    if string.truncated || length > C_STRING_MAX as u64 {
                        out.push_str("...");
                    }
                }
            }
            if string.read_after {
                out.push_str(" (string read after)");
            }
        }
        Value::Bytes(bytes) => {
            out.push_str("0x");
            for b in bytes.iter().rev() {
                let _ = write!(out, "{b:02x}");
            }
        }
        Value::Unavailable => out.push_str(UNAVAILABLE),
        Value::Unreadable => out.push_str(UNREADABLE),
    }
}

/// A struct's members: C's `{a = 1, <base> = {...}}`, Rust's `Name {a: 1}` and tuple
/// structs' `Name (1, 2)`.
fn write_struct(out: &mut String, name: &str, members: &[Member], lang: Language) {
    let tuple = lang == Language::Rust
        && !members.is_empty()
        && members.iter().all(|m| {
            !m.base
                && m.name
                    .as_deref()
                    .and_then(|n| n.strip_prefix("__"))
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        });
    if lang == Language::Rust {
        out.push_str(name);
        if members.is_empty() {
            return;
        }
        out.push_str(if tuple { " (" } else { " {" });
    } else {
        out.push('{');
    }
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match (&member.name, lang) {
            (Some(name), _) if member.base => {
                let _ = write!(out, "<{name}> = ");
            }
            (Some(_), Language::Rust) if tuple => {}
            (Some(name), Language::Rust) => {
                let _ = write!(out, "{name}: ");
            }
            (Some(name), _) => {
                let _ = write!(out, "{name} = ");
            }
            (None, _) => {}
        }
        write_value(out, &member.value);
    }
    out.push(if tuple { ')' } else { '}' });
}

/// An array's elements as gdb's `value_print_array_elements` prints them: a run of more than
/// the threshold prints once with its count and costs the threshold of the `print elements`
/// budget.
fn write_array(out: &mut String, elements: &[Value], lang: Language) {
    let (open, close) = if lang == Language::Rust {
        ('[', ']')
    } else {
        ('{', '}')
    };
    let count = elements.len();
    let element_at = |i: usize| elements[i].to_string();
    out.push(open);
    let mut i = 0;
    let mut printed = 0;
    let mut current = (count > 0).then(|| element_at(0));
    while i < count && printed < PRINT_MAX {
        let this = current.take().unwrap_or_else(|| element_at(i));
        let mut run = 1;
        let mut next = None;
        while i + run < count {
            let candidate = element_at(i + run);
            if candidate != this {
                next = Some(candidate);
                break;
            }
            run += 1;
        }
        if i > 0 {
            out.push_str(", ");
        }
        if run > REPEAT_THRESHOLD {
            let _ = write!(out, "{this} <repeats {run} times>");
            i += run;
            printed += REPEAT_THRESHOLD;
            current = next;
        } else {
            out.push_str(&this);
            i += 1;
            printed += 1;
            current = if run > 1 { Some(this) } else { next };
        }
    }
    if i < count {
        out.push_str("...");
    }
    out.push(close);
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

/// The string a `char *` points to as gdb prints it after the pointer: `bytes` are the
/// bytes read there, at most `PRINT_MAX`; up to the first NUL as `string_literal` does,
/// or, with no NUL in `PRINT_MAX` bytes, those and `...` (`'x' <repeats 200 times>...`).
pub fn format_c_string(bytes: &[u8]) -> String {
    let mut out = String::new();
    match bytes.iter().position(|b| *b == 0) {
        Some(0) => out.push_str("\"\""),
        Some(nul) => {
            string_segments(&mut out, &bytes[..nul]);
        }
        None => {
            let printed = string_segments(&mut out, &bytes[..bytes.len().min(PRINT_MAX)]);
            if printed >= PRINT_MAX || bytes.len() >= PRINT_MAX {
                out.push_str("...");
            }
        }
    }
    out
}

/// The string a `char *` points to, of which `chars` (no NUL) were read, as gdb prints it:
/// as [`format_c_string`] does, with `...` also when `truncated` (the string goes on past
/// the characters read, a bound below gdb's).
pub fn format_c_string_chars(chars: &[u8], truncated: bool) -> String {
    if chars.is_empty() {
        return if truncated {
            "...".into()
        } else {
            "\"\"".into()
        };
    }
    // gdb reads no more than its limit.
    let shown = &chars[..chars.len().min(PRINT_MAX)];
    let mut out = String::new();
    let printed = string_segments(&mut out, shown);
    if truncated || printed < chars.len() {
        out.push_str("...");
    }
    out
}

/// The most bytes gdb reads behind a `char *` (its `print elements` limit).
pub const C_STRING_MAX: usize = PRINT_MAX;

/// A `char` element: gdb prints arrays of them as strings.
fn is_char(element: &Type) -> bool {
    element.size == 1
        && matches!(
            element.kind,
            TypeKind::Base(Encoding::SignedChar | Encoding::UnsignedChar)
        )
}

/// A `char` array as gdb prints it (`generic_printstr` in gdb's `valprint.c`): a trailing
/// NUL dropped; runs of equal characters taken whole until the `print elements` budget (200
/// characters) is spent, a run longer than the threshold as `'c' <repeats N times>`, the
/// rest quoted with C escapes; `...` when the budget ended the string.
fn string_literal(out: &mut String, bytes: &[u8]) {
    let bytes = match bytes.split_last() {
        Some((0, rest)) => rest,
        _ => bytes,
    };
    if bytes.is_empty() {
        out.push_str("\"\"");
        return;
    }
    let end = string_segments(out, bytes);
    if end < bytes.len() {
        out.push_str("...");
    }
}

/// Appends the segments of `bytes` (`"abc", 'x' <repeats 20 times>`) until the `print
/// elements` budget is spent; returns how many bytes were printed.
fn string_segments(out: &mut String, bytes: &[u8]) -> usize {
    let mut segments: Vec<String> = Vec::new();
    let mut quoted = String::new();
    let mut i = 0;
    while i < bytes.len() && i < PRINT_MAX {
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
        } else {
            for _ in 0..run {
                escape(&mut quoted, bytes[i], b'"');
            }
        }
        i += run;
    }
    if !quoted.is_empty() {
        segments.push(format!("\"{quoted}\""));
    }
    out.push_str(&segments.join(", "));
    i
}

/// A `char` array of which only some bytes are known: each known run as a string (the
/// last one without its trailing NUL, as [`string_literal`]), each unknown run as
/// [`UNAVAILABLE`], joined as gdb joins string segments.
fn known_runs_literal(out: &mut String, bytes: &[u8], known: &[bool]) {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let k = known.get(i).copied().unwrap_or(false);
        let mut end = i + 1;
        while end < bytes.len() && known.get(end).copied().unwrap_or(false) == k {
            end += 1;
        }
        let mut part = String::new();
        if !k {
            part.push_str(UNAVAILABLE);
        } else if end == bytes.len() {
            string_literal(&mut part, &bytes[i..end]);
        } else {
            string_segments(&mut part, &bytes[i..end]);
        }
        parts.push(part);
        i = end;
    }
    out.push_str(&parts.join(", "));
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
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `cfg.limits[2].max`
    pub path: String,
    /// The old value.
    pub old: Value,
    /// The new value.
    pub new: Value,
}

impl fmt::Display for Change {
    /// `cfg.limits[2].max: 3 -> 7`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.path, self.old, self.new)
    }
}

/// The leaves (scalars, `char` arrays as one string, bit-fields by their own bits) of `ty`
/// whose value differs between `old` and `new`, named from `root` (`cfg` ->
/// `cfg.limits[2].max`), values formatted in `language`.
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
    let values = (KnownBytes::all(old), KnownBytes::all(new));
    diff_into(&mut changes, &mut path, language, ty, values, symbolize);
    changes
}

/// [`diff_values`] between two values of which only some bytes are known: a leaf changed when its bytes or whether they are known differ; an unknown leaf
/// prints as [`UNAVAILABLE`].
pub fn diff_values_known(
    root: &str,
    ty: &Type,
    old: KnownBytes<'_>,
    new: KnownBytes<'_>,
    language: Language,
    symbolize: &mut Symbolizer<'_>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut path = root.to_string();
    let values = (old, new);
    diff_into(&mut changes, &mut path, language, ty, values, symbolize);
    changes
}

/// The bytes of a value and which of them are known (`known[i]` for `bytes[i]`; `None`:
/// all), for [`Value::decode`] and [`diff_values_known`].
#[derive(Debug, Clone, Copy)]
pub struct KnownBytes<'a> {
    /// The bytes (an unknown one holds anything).
    pub bytes: &'a [u8],
    /// Per byte: known; `None` when all are.
    pub known: Option<&'a [bool]>,
}

impl<'a> KnownBytes<'a> {
    /// Bytes that are all known.
    pub fn all(bytes: &'a [u8]) -> KnownBytes<'a> {
        KnownBytes { bytes, known: None }
    }

    /// The first `len` bytes.
    fn take(self, len: usize) -> KnownBytes<'a> {
        let len = len.min(self.bytes.len());
        KnownBytes {
            bytes: &self.bytes[..len],
            known: self.known.map(|k| &k[..len.min(k.len())]),
        }
    }

    /// From byte `start` on.
    fn from(self, start: usize) -> KnownBytes<'a> {
        KnownBytes {
            bytes: &self.bytes[start.min(self.bytes.len())..],
            known: known_from(self.known, start),
        }
    }

    fn all_known(self) -> bool {
        all_known(self.known, self.bytes.len())
    }

    /// The same bytes, known alike.
    fn same(self, other: KnownBytes<'_>) -> bool {
        let known = |s: KnownBytes<'_>| -> Vec<bool> {
            (0..s.bytes.len())
                .map(|i| s.known.is_none_or(|k| k.get(i).copied().unwrap_or(false)))
                .collect()
        };
        self.bytes == other.bytes && known(self) == known(other)
    }

    fn decode(self, lang: Language, ty: &Type, symbolize: &mut Symbolizer<'_>) -> Value {
        decode(lang, ty, self.bytes, self.known, symbolize)
    }
}

fn diff_into(
    changes: &mut Vec<Change>,
    path: &mut String,
    lang: Language,
    ty: &Type,
    (old, new): (KnownBytes<'_>, KnownBytes<'_>),
    symbolize: &mut Symbolizer<'_>,
) {
    let size = usize::try_from(ty.size).unwrap_or(usize::MAX);
    let (o, n) = (old.take(size), new.take(size));
    if o.same(n) {
        return;
    }
    let is_string = matches!(&ty.kind, TypeKind::Array { element, .. } if is_char(element));
    match &ty.kind {
        TypeKind::Struct(fields) | TypeKind::Union(fields) if !fields.is_empty() => {
            for field in fields {
                let len = path.len();
                if let Some(name) = &field.name {
                    path.push('.');
                    path.push_str(name);
                }
                let start = usize::try_from(field.offset).unwrap_or(usize::MAX);
                if start < o.bytes.len() && start < n.bytes.len() {
                    let (fo, fnew) = (o.from(start), n.from(start));
                    if field.bits.is_some() {
                        // A bit-field by its own bits: a write to a neighbour in the same
                        // bytes is no change of this one.
                        let width = bitfield_width(field);
                        let (fo, fnew) = (fo.take(width), fnew.take(width));
                        let shown = |s: KnownBytes<'_>| {
                            if s.all_known() {
                                bitfield_value(field, s.bytes)
                            } else {
                                Value::Unavailable
                            }
                        };
                        let (old, new) = (shown(fo), shown(fnew));
                        if old != new {
                            changes.push(Change {
                                path: path.clone(),
                                old,
                                new,
                            });
                        }
                    } else {
                        diff_into(changes, path, lang, &field.ty, (fo, fnew), symbolize);
                    }
                }
                path.truncate(len);
            }
        }
        TypeKind::Array { element, count } if !is_string && element.size > 0 => {
            let step = usize::try_from(element.size).unwrap_or(usize::MAX);
            for i in 0..usize::try_from(*count).unwrap_or(0) {
                let start = i * step;
                if start >= o.bytes.len() || start >= n.bytes.len() {
                    break;
                }
                let len = path.len();
                let _ = write!(path, "[{i}]");
                let elements = (o.from(start), n.from(start));
                diff_into(changes, path, lang, element, elements, symbolize);
                path.truncate(len);
            }
        }
        _ => changes.push(Change {
            path: path.clone(),
            old: o.decode(lang, ty, symbolize),
            new: n.decode(lang, ty, symbolize),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{c_base_type, Field};

    fn field(name: &str, offset: u64, ty: Type) -> Field {
        Field {
            name: Some(name.into()),
            offset,
            bits: None,
            base: false,
            ty,
        }
    }

    #[test]
    fn unknown_bytes_print_unavailable_and_change_only_when_their_knowledge_does() {
        let long = c_base_type("long").unwrap();
        let chars = Type {
            name: "char [8]".into(),
            size: 8,
            kind: TypeKind::Array {
                element: Box::new(c_base_type("char").unwrap()),
                count: 8,
            },
        };
        let ty = Type {
            name: "struct s".into(),
            size: 24,
            kind: TypeKind::Struct(vec![
                field("a", 0, long.clone()),
                field("b", 8, long),
                field("name", 16, chars),
            ]),
        };
        let mut bytes = [0u8; 24];
        bytes[0] = 1;
        bytes[16..19].copy_from_slice(b"abc");
        let mut known = [true; 24];
        known[8..16].fill(false);
        known[20..24].fill(false);
        let value = KnownBytes {
            bytes: &bytes,
            known: Some(&known),
        };
        assert_eq!(
            Value::decode(Language::C, &ty, value, &mut |_| None).to_string(),
            r#"{a = 1, b = <unavailable>, name = "abc\000", <unavailable>}"#
        );
        // b becomes known (still 0): a change from unavailable; a's bytes are the same.
        let all = [true; 24];
        let changes = diff_values_known(
            "s",
            &ty,
            value,
            KnownBytes {
                bytes: &bytes,
                known: Some(&all),
            },
            Language::C,
            &mut |_| None,
        );
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "s.b: <unavailable> -> 0",
                r#"s.name: "abc\000", <unavailable> -> "abc\000\000\000\000""#
            ]
        );
    }

    #[test]
    fn a_bit_field_changes_by_its_own_bits() {
        let unsigned = c_base_type("unsigned int").unwrap();
        let bit = |name: &str, first: u64, count: u64| Field {
            bits: Some((first, count)),
            ..field(name, 0, unsigned.clone())
        };
        let ty = Type {
            name: "struct bits".into(),
            size: 4,
            kind: TypeKind::Struct(vec![bit("a", 0, 3), bit("c", 3, 12)]),
        };
        let (old, new) = (5u32.to_le_bytes(), (5u32 | 9 << 3).to_le_bytes());
        let changes = diff_values("bits", &ty, &old, &new, Language::C, &mut |_| None);
        let shown: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["bits.c: 0 -> 9"]);
    }

    #[test]
    fn a_char_pointers_string_stops_at_the_nul_or_the_print_limit() {
        assert_eq!(format_c_string(b"hi\tx\0junk"), r#""hi\tx""#);
        assert_eq!(format_c_string(b"\0"), r#""""#);
        assert_eq!(format_c_string(&[b'x'; 200]), "'x' <repeats 200 times>...");
    }

    /// Every variant's text, in C's spelling and (where it differs) Rust's.
    #[test]
    fn each_value_prints_as_its_language_prints_it() {
        let shown = |v: Value| v.to_string();
        assert_eq!(shown(Value::Signed(-1)), "-1");
        assert_eq!(shown(Value::Unsigned(4_000_000_000)), "4000000000");
        assert_eq!(
            shown(Value::Float {
                value: 1.5,
                size: 8
            }),
            "1.5"
        );
        let f = f64::from(2.71f32);
        assert_eq!(shown(Value::Float { value: f, size: 4 }), "2.71000004");
        assert_eq!(
            shown(Value::Float { value: f, size: 8 }),
            "2.7100000381469727"
        );
        assert_eq!(shown(Value::Bool(true)), "true");
        assert_eq!(shown(Value::Bool(false)), "false");
        let char = |code, kind| Value::Char { code, kind };
        assert_eq!(shown(char(115, CharKind::Byte)), "115 's'");
        assert_eq!(shown(char(-56, CharKind::Byte)), r"-56 '\310'");
        assert_eq!(shown(char(10, CharKind::Byte)), r"10 '\n'");
        assert_eq!(shown(char(0xe9, CharKind::Utf16)), "233 u'é'");
        assert_eq!(shown(char(0x41, CharKind::Utf32)), "65 U'A'");
        assert_eq!(shown(char(0xe9, CharKind::Rust)), "233 'é'");
        assert_eq!(shown(char(0x85, CharKind::Rust)), r"133 '\u{85}'");
        let en = |value, name| Value::Enum { value, name };
        assert_eq!(shown(en(1, EnumName::Exact("MODE_ON".into()))), "MODE_ON");
        assert_eq!(shown(en(7, EnumName::None)), "7");
        let flags = |names: &[&str], unknown| EnumName::Flags {
            names: names.iter().map(|n| n.to_string()).collect(),
            unknown,
        };
        assert_eq!(
            shown(en(3, flags(&["PERM_R", "PERM_W"], 0))),
            "(PERM_R | PERM_W)"
        );
        assert_eq!(
            shown(en(9, flags(&["PERM_R"], 8))),
            "(PERM_R | unknown: 0x8)"
        );
        assert_eq!(shown(en(0, flags(&[], 0))), "0");
        let pointer = |address, symbol: Option<&str>| Value::Pointer {
            address,
            symbol: symbol.map(str::to_string),
        };
        assert_eq!(
            shown(pointer(0x4040a0, Some("nodes+16"))),
            "0x4040a0 <nodes+16>"
        );
        assert_eq!(shown(pointer(0, None)), "0x0");
        let array = |elements: Vec<Value>, language| Value::Array { elements, language };
        let small = vec![Value::Signed(1), Value::Signed(2), Value::Signed(3)];
        assert_eq!(shown(array(small.clone(), Language::C)), "{1, 2, 3}");
        assert_eq!(shown(array(small, Language::Rust)), "[1, 2, 3]");
        let mut run = vec![Value::Signed(0); 12];
        run.push(Value::Signed(5));
        assert_eq!(shown(array(run, Language::C)), "{0 <repeats 12 times>, 5}");
        let many: Vec<Value> = (0..201).map(Value::Signed).collect();
        assert!(shown(array(many, Language::C)).ends_with(", 199...}"));
        let chars = |b: &[u8]| Value::CharArray(b.iter().copied().map(Some).collect());
        assert_eq!(shown(chars(b"abc\0\0")), r#""abc\000""#);
        assert_eq!(shown(chars(b"\0")), r#""""#);
        assert_eq!(
            shown(Value::CharArray(vec![Some(b'a'), None, None])),
            r#""a", <unavailable>"#
        );
        let member = |name: &str, value| Member {
            name: Some(name.into()),
            base: false,
            value,
        };
        let inner = Value::Struct {
            name: "struct in".into(),
            members: vec![member("c", Value::Signed(2))],
            language: Language::C,
        };
        let base = Member {
            name: Some("base".into()),
            base: true,
            value: Value::Struct {
                name: "struct base".into(),
                members: vec![member("x", Value::Signed(0))],
                language: Language::Cxx,
            },
        };
        let anonymous = Member {
            name: None,
            base: false,
            value: Value::Bool(true),
        };
        let s = Value::Struct {
            name: "struct s".into(),
            members: vec![
                base,
                member("a", Value::Signed(1)),
                member("b", inner),
                anonymous,
            ],
            language: Language::C,
        };
        assert_eq!(shown(s), "{<base> = {x = 0}, a = 1, b = {c = 2}, true}");
        let settings = Value::Struct {
            name: "krate::m::Settings".into(),
            members: vec![
                member("id", Value::Unsigned(42)),
                member(
                    "limits",
                    array(vec![Value::Signed(1), Value::Signed(2)], Language::Rust),
                ),
            ],
            language: Language::Rust,
        };
        assert_eq!(
            shown(settings),
            "krate::m::Settings {id: 42, limits: [1, 2]}"
        );
        let point = Value::Struct {
            name: "krate::m::Point".into(),
            members: vec![
                member("__0", Value::Signed(3)),
                member("__1", Value::Signed(-4)),
            ],
            language: Language::Rust,
        };
        assert_eq!(shown(point), "krate::m::Point (3, -4)");
        let unit = Value::Struct {
            name: "krate::Unit".into(),
            members: Vec::new(),
            language: Language::Rust,
        };
        assert_eq!(shown(unit), "krate::Unit");
        let c_string = PointedString {
            pointer: pointer(0x4052a0, None),
            bytes: b"hi\n\0junk".to_vec(),
            rust_length: None,
            read_after: false,
            truncated: false,
        };
        assert_eq!(
            shown(Value::String(Box::new(c_string.clone()))),
            r#"0x4052a0 "hi\n""#
        );
        let read_after = PointedString {
            read_after: true,
            ..c_string.clone()
        };
        assert_eq!(
            shown(Value::String(Box::new(read_after))),
            r#"0x4052a0 "hi\n" (string read after)"#
        );
        // Read at the trap up to a bound below gdb's, the string going on past it.
        let bounded = PointedString {
            bytes: b"abcd".to_vec(),
            truncated: true,
            ..c_string.clone()
        };
        assert_eq!(
            shown(Value::String(Box::new(bounded))),
            r#"0x4052a0 "abcd"..."#
        );
        // No NUL in a whole buffer of gdb's limit: it goes on; in a shorter one, it ends.
        let full = PointedString {
            bytes: vec![b'y'; C_STRING_MAX],
            ..c_string
        };
        assert_eq!(
            shown(Value::String(Box::new(full))),
            "0x4052a0 'y' <repeats 200 times>..."
        );
        let rust_str = |bytes: &[u8], length| {
            Value::String(Box::new(PointedString {
                pointer: Value::Unsigned(0),
                bytes: bytes.to_vec(),
                rust_length: Some(length),
                read_after: false,
                truncated: false,
            }))
        };
        assert_eq!(shown(rust_str(b"a\"b\n", 4)), r#""a\"b\n""#);
        assert_eq!(
            shown(rust_str(&[b'x'; C_STRING_MAX], 300)),
            format!("\"{}\"...", "x".repeat(C_STRING_MAX))
        );
        assert_eq!(
            shown(Value::Bytes(vec![0x01, 0x02, 0xff, 0, 0, 0, 0, 0, 0x10])),
            "0x100000000000ff0201"
        );
        assert_eq!(shown(Value::Unavailable), "<unavailable>");
        assert_eq!(shown(Value::Unreadable), "<unreadable>");
    }

    /// The decoder gives the data the text is printed from.
    #[test]
    fn decoding_gives_the_variant_of_the_type() {
        let decode = |name: &str, bytes: &[u8]| {
            let ty = c_base_type(name).unwrap();
            Value::decode(Language::C, &ty, KnownBytes::all(bytes), &mut |_| None)
        };
        assert_eq!(decode("int", &(-5i32).to_le_bytes()), Value::Signed(-5));
        assert_eq!(
            decode("unsigned int", &u32::MAX.to_le_bytes()),
            Value::Unsigned(u64::from(u32::MAX))
        );
        assert_eq!(
            decode("char", &[0xc8]),
            Value::Char {
                code: -56,
                kind: CharKind::Byte
            }
        );
        assert_eq!(
            decode("double", &1.5f64.to_le_bytes()),
            Value::Float {
                value: 1.5,
                size: 8
            }
        );
        assert_eq!(Value::untyped(&[1, 0, 0, 0]), Value::Unsigned(1));
        assert_eq!(Value::untyped(&[1; 9]), Value::Bytes(vec![1; 9]));
        let known = [true, false, true, true];
        let partly = KnownBytes {
            bytes: &[0; 4],
            known: Some(&known),
        };
        let int = c_base_type("int").unwrap();
        assert_eq!(
            Value::decode(Language::C, &int, partly, &mut |_| None),
            Value::Unavailable
        );
    }

    #[test]
    fn a_string_read_up_to_a_bound_says_when_it_goes_on() {
        assert_eq!(format_c_string_chars(b"hi\tx", false), r#""hi\tx""#);
        assert_eq!(format_c_string_chars(b"", false), r#""""#);
        assert_eq!(format_c_string_chars(b"abcd", true), r#""abcd"..."#);
        // Exactly gdb's limit: all of it, no `...`; past it, the limit and `...`.
        assert_eq!(
            format_c_string_chars(&[b'y'; 200], false),
            "'y' <repeats 200 times>"
        );
        assert_eq!(
            format_c_string_chars(&[b'y'; 201], false),
            "'y' <repeats 200 times>..."
        );
    }

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
