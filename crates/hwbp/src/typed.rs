//! Typed values of a watch: what a hit's raw bytes mean in the watched variable's DWARF type,
//! printed as gdb's `print` does (`hwbp_symbols::value`: `-1`, `115 's'`, enum names, `0x...
//! <sym>`, floats), the members of a struct or array that changed (`cfg.limits[2].max: 3 ->
//! 7`). `--if` in the type is [`crate::condition`]'s.
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

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_linux::bpf::TrapString;
use hwbp_linux::memory;
use hwbp_symbols::types::{Language, Type};
use hwbp_symbols::value::{
    diff_values_known, format_untyped, format_value_known, Change, KnownBytes,
};
use hwbp_symbols::ProcessSymbols;

use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::plan::{PlannedWatch, WatchPlan};
use crate::shadow::Shadow;

/// The most bytes of one value hwbp reads, formats and diffs at each hit.
pub const MAX_TYPED_BYTES: u64 = 4096;

/// gdb's text for a value that cannot be read.
pub const UNREADABLE: &str = "<unreadable>";

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedValue {
    /// The type's name, `None` when unknown (no DWARF).
    pub value_type: Option<String>,
    /// The whole value before, as the language prints it (`<unreadable>` when it could not
    /// be read); `None` before the first reading.
    pub old: Option<String>,
    /// The whole value after.
    pub new: Option<String>,
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

/// Formats one value of `ty` (`None` bytes: unreadable).
pub fn format(ty: &WatchType, bytes: Option<&[u8]>, symbols: Option<&ProcessSymbols>) -> String {
    format_known(ty, bytes.map(KnownBytes::all), symbols)
}

/// [`format`] of a value of which only some bytes may be known.
fn format_known(
    ty: &WatchType,
    value: Option<KnownBytes<'_>>,
    symbols: Option<&ProcessSymbols>,
) -> String {
    let Some(value) = value else {
        return UNREADABLE.to_string();
    };
    let mut symbolize = |addr: u64| symbols.and_then(|s| s.data_symbol(addr));
    match &ty.ty {
        Some(t) if value.bytes.len() as u64 >= t.size => {
            format_value_known(ty.language, t, value, &mut symbolize)
        }
        _ if value.known.is_some() => hwbp_symbols::value::UNAVAILABLE.to_string(),
        _ => format_untyped(value.bytes),
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
fn describe_known<'a>(
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
        old: Some(format_known(ty, old, symbols)),
        new: Some(format_known(ty, new, symbols)),
        changes,
        bytes_before: wide(old).map(|v| v.bytes.to_vec()),
        bytes_after: wide(new).map(|v| v.bytes.to_vec()),
        known_before: wide(old).and_then(|v| v.known).map(<[bool]>::to_vec),
        known_after: wide(new).and_then(|v| v.known).map(<[bool]>::to_vec),
        moved_by: None,
        moved_to: None,
    }
}

/// The whole value of every typed watch of a run, as last seen: read at arming and at each
/// hit, at the watch's current address (a value chain's moves with it).
pub(crate) struct WatchValues {
    last: Vec<LastValue>,
    /// Per `char *` or `&str` watch: the last value and its text with the string it
    /// pointed to.
    strings: Vec<Option<(Vec<u8>, String)>>,
    /// Per watch of several value pieces: its shadow ([`crate::shadow`]); a value chain's
    /// covers its value's pieces, re-seeded piece by piece when the chain moves them.
    shadows: Vec<Option<Shadow>>,
    pid: Option<i32>,
}

impl WatchValues {
    /// Reads every typed watch's value now (before arming: the "before" of its first hit).
    pub(crate) fn new(plan: &WatchPlan, pid: Option<i32>) -> WatchValues {
        let mut values = WatchValues {
            last: vec![LastValue::default(); plan.watches.len()],
            strings: vec![None; plan.watches.len()],
            shadows: vec![None; plan.watches.len()],
            pid,
        };
        for w in &plan.watches {
            let seed = values.read(w);
            // A chain's value pieces come first, then its pointers'.
            let (addr, value_pieces) = match &w.chain {
                Some(chain) => (chain.current().value_addr, chain.value_pieces),
                None => (w.addr, w.pieces.len()),
            };
            let shadowed = value_pieces > 1
                && w.value_type.is_some()
                && w.len <= MAX_TYPED_BYTES
                && w.access != Access::Execute;
            if shadowed {
                if let Ok(len) = usize::try_from(w.len) {
                    let pieces = &w.pieces[..value_pieces];
                    values.shadows[w.id.0] = Some(Shadow::new(addr, len, pieces, seed.as_deref()));
                }
            }
            if let (Some(kind), Some(ty), Some(bytes)) = (
                w.value_type.as_deref().and_then(StringKind::of),
                w.value_type.as_ref(),
                seed.as_deref(),
            ) {
                // The string at arming: the `old` of the first hit.
                let shown = format(ty, Some(bytes), plan.symbols.as_deref());
                if let Some(text) = values.with_string(kind, &shown, bytes) {
                    values.strings[w.id.0] = Some((bytes.to_vec(), text));
                }
            }
            values.last[w.id.0] = LastValue(seed);
        }
        values
    }

    /// Piece `piece` of watch `watch` is armed from now on with value `seed` (read as its turn
    /// starts), or (`armed` false) no longer armed.
    pub(crate) fn set_armed(
        &mut self,
        watch: WatchId,
        piece: usize,
        armed: bool,
        seed: Option<u64>,
    ) {
        if let Some(Some(shadow)) = self.shadows.get_mut(watch.0) {
            if armed {
                shadow.turn_started(piece, seed);
            } else {
                shadow.turn_ended(piece);
            }
        }
    }

    /// The watch's whole value now, `None` when it cannot be read (or is not typed).
    fn read(&self, watch: &PlannedWatch) -> Option<Vec<u8>> {
        let pid = self.pid?;
        watch.value_type.as_ref()?;
        if watch.len > MAX_TYPED_BYTES || watch.access == Access::Execute {
            return None;
        }
        let addr = match &watch.chain {
            Some(chain) => {
                let point = chain.current();
                if !point.readable() {
                    return None;
                }
                point.value_addr
            }
            None => watch.addr,
        };
        let mut buf = vec![0u8; usize::try_from(watch.len).ok()?];
        memory::read_memory(pid, addr, &mut buf).ok()?;
        Some(buf)
    }

    /// Reads the value of watch `watch` now against the last one (the hit was on piece
    /// `piece` of it); `None` for an untyped watch. Stop mode calls it while the thread is
    /// stopped, before building the [`Hit`]. `known` is the raw value the watcher read for
    /// the hit, for a one-piece watch of up to 8 bytes at a fixed address: taken instead of
    /// reading again.
    pub(crate) fn observe(
        &mut self,
        plan: &WatchPlan,
        watch: WatchId,
        piece: usize,
        known: Option<u64>,
    ) -> Option<Observed> {
        self.observe_known(plan, watch, piece, known, None, StringRead::Now)
    }

    /// [`observe`](Self::observe), taking `known` (the raw value the watcher read for the hit,
    /// for a one-piece watch of up to 8 bytes at a fixed address) or `shadowed` (the whole
    /// value from the watch's shadow) instead of reading again; `string`: where a `char *`'s
    /// string comes from.
    fn observe_known(
        &mut self,
        plan: &WatchPlan,
        watch: WatchId,
        piece: usize,
        known: Option<u64>,
        shadowed: Option<Vec<u8>>,
        string: StringRead,
    ) -> Option<Observed> {
        let watch = &plan.watches[watch.0];
        let ty = watch.value_type.as_ref()?;
        let len = usize::try_from(watch.len).unwrap_or(usize::MAX);
        let new = match (known, shadowed) {
            (_, Some(bytes)) => Some(bytes),
            (known, None) => {
                let new = match known {
                    Some(raw) if watch.chain.is_none() && len <= 8 => {
                        Some(raw.to_le_bytes()[..len].to_vec())
                    }
                    _ => self.read(watch),
                };
                if let Some(shadow) = &mut self.shadows[watch.id.0] {
                    shadow.reset(new.as_deref());
                }
                new
            }
        };
        let old = self.last[watch.id.0].0.clone();
        let mut typed = self.last[watch.id.0].update(ty, new.clone(), plan.symbols.as_deref());
        self.add_string(watch, &mut typed, (old.as_deref(), new.as_deref()), string);
        let mut raw_values = None;
        if let Some(chain) = &watch.chain {
            if let Some(name) = chain.pointer_name(piece) {
                let point = chain.current();
                typed.moved_by = Some(name);
                typed.moved_to = point.readable().then_some(point.value_addr);
            }
            if watch.len <= 8 {
                raw_values = Some((old.as_deref().map(raw), new.as_deref().map(raw)));
            }
        }
        Some(Observed {
            changed: old != new,
            new_bytes: new,
            typed,
            raw_values,
        })
    }

    /// [`observe`](Self::observe) and [`Observed::apply`] to `hit` at once (perf mode: the
    /// value is read after the hit; a scalar's is the one the drain already read).
    pub(crate) fn annotate(&mut self, plan: &WatchPlan, hit: &mut Hit, piece: usize) {
        self.annotate_with_string(plan, hit, piece, None);
    }

    /// [`annotate`](Self::annotate) with the string the BPF handler read at the trap for a
    /// `char *` watch (`None`: it read none, then the string is read now, after the hit).
    pub(crate) fn annotate_with_string(
        &mut self,
        plan: &WatchPlan,
        hit: &mut Hit,
        piece: usize,
        trap_string: Option<Result<TrapString, i32>>,
    ) {
        let string = match trap_string {
            Some(read) => StringRead::AtTrap(read.ok()),
            None => StringRead::After,
        };
        let Some(string) = self.advance_shadow(plan, hit, piece, string) else {
            return;
        };
        let known = hit.value.and_then(|v| v.new);
        let shadowed = self.moved_shadow(plan, hit, piece);
        if let Some(observed) = self.observe_known(plan, hit.watch, piece, known, shadowed, string)
        {
            observed.apply(hit, ValueSource::ReadAfter);
        }
    }
}

/// Where the string of a `char *` watch's new value comes from.
enum StringRead {
    /// Read now, with the thread at the hit (stop mode) or at arming: printed as it is.
    Now,
    /// Read now, while the target ran on since the hit: marked ` (string read after)`.
    After,
    /// Read by the BPF handler at the trap (`None`: the pointer was NULL or unmapped there):
    /// printed as it is, nothing read now.
    AtTrap(Option<TrapString>),
}

/// A value gdb prints with the string it points to.
#[derive(Clone, Copy)]
pub(crate) enum StringKind {
    /// A C `char *` (`const`, `signed`, `unsigned` alike): the pointer, then `"text"`.
    CPointer,
    /// A Rust `&str` (DWARF: `struct &str { data_ptr, length }`) or `String`
    /// ([`rust_string_words`]): `"text"` alone, at byte offsets `data_ptr` and `length`.
    RustStr { data_ptr: usize, length: usize },
}

impl StringKind {
    /// The kind of string `ty` is, `None` for other types.
    pub(crate) fn of(ty: &WatchType) -> Option<StringKind> {
        let t = ty.ty.as_ref()?;
        match &t.kind {
            hwbp_symbols::types::TypeKind::Pointer { target } if t.size == 8 => {
                let mut name = target.name.as_str();
                while let Some(rest) = name
                    .strip_prefix("const ")
                    .or_else(|| name.strip_prefix("volatile "))
                {
                    name = rest;
                }
                let c_char = matches!(name, "char" | "signed char" | "unsigned char");
                (ty.language != Language::Rust && c_char).then_some(StringKind::CPointer)
            }
            hwbp_symbols::types::TypeKind::Struct(fields)
                if ty.language == Language::Rust
                    && matches!(t.name.as_str(), "&str" | "&mut str") =>
            {
                let offset = |name: &str| {
                    let f = fields.iter().find(|f| f.name.as_deref() == Some(name))?;
                    (f.ty.size == 8).then(|| usize::try_from(f.offset).ok())?
                };
                Some(StringKind::RustStr {
                    data_ptr: offset("data_ptr")?,
                    length: offset("length")?,
                })
            }
            hwbp_symbols::types::TypeKind::Struct(_)
                if ty.language == Language::Rust && t.name == "alloc::string::String" =>
            {
                let (data_ptr, length) = rust_string_words(t)?;
                Some(StringKind::RustStr { data_ptr, length })
            }
            _ => None,
        }
    }
}

/// The byte offsets of a Rust `String`'s data pointer and length, found by member names in
/// its DWARF: `vec: Vec<u8> { buf: RawVec { inner: RawVecInner { cap, ptr: Unique { pointer:
/// NonNull { pointer: *mut u8 } } } }, len }` (rustc 1.80 on; before, `RawVec` held `ptr` and
/// `cap` itself, which the search below also finds).
fn rust_string_words(string: &Type) -> Option<(usize, usize)> {
    let member = |t: &Type, name: &str| {
        t.fields()?
            .iter()
            .find(|f| f.name.as_deref() == Some(name))
            .map(|f| (f.offset, f.ty.clone()))
    };
    let (vec_at, vec) = member(string, "vec")?;
    let (len_at, len) = member(&vec, "len")?;
    let (buf_at, mut raw) = member(&vec, "buf")?;
    let mut ptr_at = vec_at + buf_at;
    if let Some((inner_at, inner)) = member(&raw, "inner") {
        ptr_at += inner_at;
        raw = inner;
    }
    let (at, mut ptr) = member(&raw, "ptr")?;
    ptr_at += at;
    // `Unique { pointer: NonNull { pointer: *mut u8 } }`: down to the raw pointer.
    while !matches!(ptr.kind, hwbp_symbols::types::TypeKind::Pointer { .. }) {
        let (at, inner) = member(&ptr, "pointer")?;
        ptr_at += at;
        ptr = inner;
    }
    let word = |at: u64, t: &Type| (t.size == 8).then(|| usize::try_from(at).ok())?;
    Some((word(ptr_at, &ptr)?, word(vec_at + len_at, &len)?))
}

impl WatchValues {
    /// For a `char *` or `&str` watch: shows the string the new value points to (read at the
    /// trap by the handler, or now, up to gdb's 200 characters; ` (string read after)` when
    /// read now and the target ran on since the hit) in `typed.new`, and the one shown for
    /// the old value, when it was the last new one, in `typed.old`. NULL and unreadable
    /// pointers print as the value alone.
    fn add_string(
        &mut self,
        watch: &PlannedWatch,
        typed: &mut TypedValue,
        (old, new): (Option<&[u8]>, Option<&[u8]>),
        string: StringRead,
    ) {
        let Some(kind) = watch.value_type.as_deref().and_then(StringKind::of) else {
            return;
        };
        if let (Some(old), Some((last, text))) = (old, &self.strings[watch.id.0]) {
            if old == last.as_slice() {
                typed.old = Some(text.clone());
            }
        }
        let (Some(new), Some(shown)) = (new, typed.new.as_ref()) else {
            return;
        };
        let text = match (string, kind) {
            (StringRead::AtTrap(None), StringKind::CPointer) => return,
            (StringRead::AtTrap(Some(read)), StringKind::CPointer) => {
                let string =
                    hwbp_symbols::value::format_c_string_chars(&read.bytes, read.truncated);
                format!("{shown} {string}")
            }
            (StringRead::AtTrap(read), StringKind::RustStr { .. }) => match read {
                Some(read) => rust_debug_string(&read.bytes, read.truncated),
                None => return,
            },
            (string, _) => {
                let Some(mut text) = self.with_string(kind, shown, new) else {
                    return;
                };
                if !matches!(string, StringRead::Now) {
                    text.push_str(" (string read after)");
                }
                text
            }
        };
        typed.new = Some(text.clone());
        self.strings[watch.id.0] = Some((new.to_vec(), text));
    }

    /// `shown` (the value printed by its type, of bytes `value`) with the string it points
    /// to, read now; `None` for NULL or unreadable memory.
    fn with_string(&self, kind: StringKind, shown: &str, value: &[u8]) -> Option<String> {
        let word = |at: usize| value.get(at..at + 8).map(raw);
        let pid = self.pid?;
        match kind {
            StringKind::CPointer => {
                let pointer = word(0).filter(|p| *p != 0)?;
                let mut buf = vec![0u8; hwbp_symbols::value::C_STRING_MAX];
                let n = memory::read_memory(pid, pointer, &mut buf).ok()?;
                let string = hwbp_symbols::value::format_c_string(&buf[..n]);
                Some(format!("{shown} {string}"))
            }
            StringKind::RustStr { data_ptr, length } => {
                let pointer = word(data_ptr).filter(|p| *p != 0)?;
                let length = word(length)?;
                let limit = hwbp_symbols::value::C_STRING_MAX;
                let mut buf = vec![0u8; usize::try_from(length).map_or(limit, |l| l.min(limit))];
                if memory::read_memory(pid, pointer, &mut buf).ok()? < buf.len() {
                    return None;
                }
                Some(rust_debug_string(&buf, length > limit as u64))
            }
        }
    }

    /// For a handler record of a value chain's pointer: the whole value at the new object
    /// from the watch's shadow, when it knows every byte (each moved piece's turn, queued
    /// before the record by the drain thread, seeded it with the value read once armed).
    /// `None` (read it now) while the chain is unreadable, or without a shadow.
    fn moved_shadow(&self, plan: &WatchPlan, hit: &Hit, piece: usize) -> Option<Vec<u8>> {
        let chain = plan.watches[hit.watch.0].chain.as_ref()?;
        if !chain.is_pointer_piece(piece)
            || hit.value.is_none_or(|v| v.source != ValueSource::Handler)
        {
            return None;
        }
        let shadow = self.shadows.get(hit.watch.0)?.as_ref()?;
        let value = shadow.value();
        value.complete().then(|| value.bytes.clone())
    }

    /// For a watch with a shadow and a hit with the handler's exact piece values: the whole
    /// value before and after from the shadow, nothing read (a string's text as `string`
    /// says). Hands `string` back when it does not apply.
    fn advance_shadow(
        &mut self,
        plan: &WatchPlan,
        hit: &mut Hit,
        piece: usize,
        string: StringRead,
    ) -> Option<StringRead> {
        let chain = plan.watches[hit.watch.0].chain.as_ref();
        if chain.is_some_and(|c| c.is_pointer_piece(piece)) {
            // The chain moved: the whole value is the new object's (`moved_shadow`).
            return Some(string);
        }
        let Some(Some(shadow)) = self.shadows.get_mut(hit.watch.0) else {
            return Some(string);
        };
        let Some(HitValue {
            old,
            new: Some(new),
            source: ValueSource::Handler,
        }) = hit.value
        else {
            return Some(string);
        };
        let Some(ty) = plan.watches[hit.watch.0].value_type.as_ref() else {
            return Some(string);
        };
        let (before, after) = shadow.write(piece, old, new);
        if let (Some(value), Some(old)) = (hit.value.as_mut(), shadow.piece_value(&before, piece)) {
            // The shadow's before (see `Shadow::write`), so value_before agrees with `old`.
            value.old = Some(old);
        }
        let mut typed = describe_known(
            ty,
            Some(before.view()),
            Some(after.view()),
            plan.symbols.as_deref(),
        );
        if before.complete() && after.complete() {
            let watch = &plan.watches[hit.watch.0];
            let values = (Some(&before.bytes[..]), Some(&after.bytes[..]));
            self.add_string(watch, &mut typed, values, string);
        }
        self.last[hit.watch.0] = LastValue(Some(after.bytes));
        hit.typed = Some(typed);
        None
    }
}

/// One reading of a typed watch at a hit.
pub(crate) struct Observed {
    /// The whole value differs from the last one seen.
    pub changed: bool,
    /// The whole value's bytes now (`None`: unreadable).
    pub new_bytes: Option<Vec<u8>>,
    typed: TypedValue,
    /// For a value chain of up to 8 bytes: the expression's raw old and new value, which
    /// replace the hit's piece values.
    raw_values: Option<(Option<u64>, Option<u64>)>,
}

impl Observed {
    /// Puts the typed value (and a chain's raw values) into `hit`; a hit without raw values
    /// of its own (wider than 8 bytes, or a chain unreadable when armed) gets its source,
    /// `source`, from this reading.
    pub(crate) fn apply(self, hit: &mut Hit, source: ValueSource) {
        let value = hit.value.get_or_insert(HitValue {
            old: None,
            new: None,
            source,
        });
        if let Some((old, new)) = self.raw_values {
            value.old = old;
            value.new = new;
        }
        hit.typed = Some(self.typed);
    }
}

/// A Rust string's text as gdb's Rust printer shows it: quoted with Rust's escapes, `...`
/// when it goes on past the bytes shown.
fn rust_debug_string(bytes: &[u8], truncated: bool) -> String {
    let mut string = format!("{:?}", String::from_utf8_lossy(bytes));
    if truncated {
        string.push_str("...");
    }
    string
}

/// Little-endian bytes (up to 8) as an unsigned integer.
fn raw(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}
