//! Typed values of a watch: what a hit's raw bytes mean in the watched variable's DWARF type,
//! as data ([`Value`]: `Signed(-1)`, `Char`, `Enum`, `Pointer`, ...) whose `Display` is gdb's
//! `print` (`hwbp_symbols::value`: `-1`, `115 's'`, enum names, `0x... <sym>`, floats), the
//! members of a struct or array that changed (`cfg.limits[2].max: 3 -> 7`). `--if` in the
//! type is [`crate::condition`]'s.
//!
//! A [`WatchType`] belongs to a planned watch (from DWARF, for a symbol or an expression; with
//! `ty: None` for a symbol without DWARF, whose values stay unsigned integers of the symbol's
//! size, "type unknown"). Both watchers keep the whole value's last bytes per watch
//! ([`LastValue`]) and turn them with the new bytes into a [`TypedValue`] on each hit; stop
//! mode reads the new bytes while the thread is stopped; perf mode advances a watch of
//! several pieces by the BPF handler's exact bytes of the piece written
//! (`crate::shadow`: nothing read, bytes of a piece not armed print `<unavailable>`), and
//! otherwise reads the new bytes after the hit (read-after).
//! A value that cannot be read (the pointer of a value chain is NULL) prints as gdb prints it,
//! `<unreadable>`.
//!
//! Plain data and pure formatting; the run-time bookkeeping of each watch's values is
//! `crate::values`'.

use std::sync::Arc;

use hwbp_symbols::types::{Language, Type};
use hwbp_symbols::value::{diff_values_known, Change, KnownBytes, Value};
use hwbp_symbols::ProcessSymbols;

/// The most bytes of one value hwbp reads, formats and diffs at each hit.
pub const MAX_TYPED_BYTES: u64 = 4096;

/// The type of a watch's value.
#[derive(Debug, Clone)]
pub struct WatchType {
    /// The DWARF type; `None` when the symbol has no debug info (values are unsigned
    /// integers of its size).
    pub ty: Option<Type>,
    /// The source language values are printed in.
    pub language: Language,
    /// The expression or symbol as the member paths start (`cfg`, `cur->state`).
    pub root: String,
}

impl WatchType {
    /// The type's name (`int`, `struct config`, `config_t`), `None` when unknown.
    pub fn name(&self) -> Option<&str> {
        self.ty.as_ref().map(|t| t.name.as_str())
    }
}

/// A hit's value in its type. The JSON fields of a hit (see [`crate::Hit::write_json`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypedValue {
    /// The type's name, `None` when unknown (no DWARF).
    pub value_type: Option<String>,
    /// The whole value before ([`Value::Unreadable`] when it could not be read); `None`
    /// before the first reading. Its `Display` is the text hwbp prints.
    pub old: Option<Value>,
    /// The whole value after.
    pub new: Option<Value>,
    /// For structs and arrays: each member that changed, `cfg.limits[2].max: 3 -> 7`.
    pub changes: Vec<Change>,
    /// The raw bytes before, for values wider than 8 bytes (narrower ones are the raw
    /// integers `value_before`/`value_after`).
    pub bytes_before: Option<Vec<u8>>,
    /// The raw bytes after, for values wider than 8 bytes.
    pub bytes_after: Option<Vec<u8>>,
    /// Which of `bytes_before` are known (`None`: all); an unknown byte is one of a piece
    /// that was not armed (`crate::shadow`).
    pub known_before: Option<Vec<bool>>,
    /// Which of `bytes_after` are known (`None`: all).
    pub known_after: Option<Vec<bool>>,
    /// For a value chain: the pointer whose change moved the watch (`cur`).
    pub moved_by: Option<Arc<str>>,
    /// Where the value is now after that move; `None` while a pointer on the way is NULL.
    pub moved_to: Option<u64>,
}

/// The last bytes seen of one watch's whole value.
#[derive(Debug, Clone, Default)]
pub struct LastValue(pub Option<Vec<u8>>);

impl LastValue {
    /// Replaces the last bytes with `new` (`None`: unreadable now) and describes the change.
    pub fn update(
        &mut self,
        ty: &WatchType,
        new: Option<Vec<u8>>,
        symbols: Option<&ProcessSymbols>,
    ) -> TypedValue {
        let old = std::mem::replace(&mut self.0, new.clone());
        describe(ty, old.as_deref(), new.as_deref(), symbols)
    }
}

/// Decodes one value of `ty` (`None` bytes: unreadable).
pub fn decode(ty: &WatchType, bytes: Option<&[u8]>, symbols: Option<&ProcessSymbols>) -> Value {
    decode_known(ty, bytes.map(KnownBytes::all), symbols)
}

/// [`decode`] of a value of which only some bytes may be known.
fn decode_known(
    ty: &WatchType,
    value: Option<KnownBytes<'_>>,
    symbols: Option<&ProcessSymbols>,
) -> Value {
    let Some(value) = value else {
        return Value::Unreadable;
    };
    let mut symbolize = |addr: u64| symbols.and_then(|s| s.data_symbol(addr));
    match &ty.ty {
        Some(t) if value.bytes.len() as u64 >= t.size => {
            Value::decode(ty.language, t, value, &mut symbolize)
        }
        _ if value.known.is_some() => Value::Unavailable,
        _ => Value::untyped(value.bytes),
    }
}

/// The change from `old` to `new` (either `None`: unreadable) of a value of type `ty`.
fn describe(
    ty: &WatchType,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
    symbols: Option<&ProcessSymbols>,
) -> TypedValue {
    describe_known(
        ty,
        old.map(KnownBytes::all),
        new.map(KnownBytes::all),
        symbols,
    )
}

/// [`describe`] of values of which only some bytes may be known.
pub(crate) fn describe_known<'a>(
    ty: &WatchType,
    old: Option<KnownBytes<'a>>,
    new: Option<KnownBytes<'a>>,
    symbols: Option<&ProcessSymbols>,
) -> TypedValue {
    let wide = |v: Option<KnownBytes<'a>>| v.filter(|v| v.bytes.len() > 8);
    let composite = ty.ty.as_ref().is_some_and(|t| {
        t.fields().is_some() || matches!(t.kind, hwbp_symbols::types::TypeKind::Array { .. })
    });
    let changes = match (&ty.ty, old, new) {
        (Some(t), Some(o), Some(n)) if composite => {
            let mut symbolize = |addr: u64| symbols.and_then(|s| s.data_symbol(addr));
            diff_values_known(&ty.root, t, o, n, ty.language, &mut symbolize)
        }
        _ => Vec::new(),
    };
    TypedValue {
        value_type: ty.name().map(str::to_string),
        old: Some(decode_known(ty, old, symbols)),
        new: Some(decode_known(ty, new, symbols)),
        changes,
        bytes_before: wide(old).map(|v| v.bytes.to_vec()),
        bytes_after: wide(new).map(|v| v.bytes.to_vec()),
        known_before: wide(old).and_then(|v| v.known).map(<[bool]>::to_vec),
        known_after: wide(new).and_then(|v| v.known).map(<[bool]>::to_vec),
        moved_by: None,
        moved_to: None,
    }
}
