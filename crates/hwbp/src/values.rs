//! The values of each watch during a run, shared by the engines: the whole value as last
//! seen per watch (read at arming and at each hit, at the watch's current address), a
//! multi-piece watch's shadow advanced by the BPF handler's exact piece values
//! ([`crate::shadow`]), strings a `char *` points to, and the typed value each hit carries
//! ([`crate::typed`] formats it).

use hwbp_core::Access;
use hwbp_linux::bpf::TrapString;
use hwbp_linux::memory;
use hwbp_symbols::types::{Language, Type};
use hwbp_symbols::value::{PointedString, Value};

use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::plan::{PlannedWatch, WatchPlan};
use crate::shadow::Shadow;
use crate::typed::{describe_known, LastValue, TypedValue, WatchType, MAX_TYPED_BYTES};

/// The whole value of every typed watch of a run, as last seen: read at arming and at each
/// hit, at the watch's current address (a value chain's moves with it).
pub(crate) struct WatchValues {
    last: Vec<LastValue>,
    /// Per `char *` or `&str` watch: the last value and it with the string it pointed to.
    strings: Vec<Option<(Vec<u8>, Value)>>,
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
                let pointer = crate::typed::decode(ty, Some(bytes), plan.symbols.as_deref());
                if let Some(string) = values.with_string(kind, pointer, bytes, StringRead::Now) {
                    values.strings[w.id.0] = Some((bytes.to_vec(), string));
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
    /// value is read after the hit, unless the handler's exact piece values advance the
    /// watch's shadow; a scalar's is the one the drain already read). `trap_string`: the
    /// string the BPF handler read at the trap for a `char *` or Rust string watch (`None`:
    /// it read none, then the string is read now, after the hit).
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

/// Where the string of a `char *` (or Rust string) watch's new value comes from.
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
    /// For a `char *` or Rust string watch: shows the string the new value points to (read
    /// at the trap by the handler, or now, up to gdb's 200 characters; ` (string read after)`
    /// when read now and the target ran on since the hit) in `typed.new`, and the one shown
    /// for the old value, when it was the last new one, in `typed.old`. NULL and unreadable
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
        if let (Some(old), Some((last, string))) = (old, &self.strings[watch.id.0]) {
            if old == last.as_slice() {
                typed.old = Some(string.clone());
            }
        }
        let (Some(new), Some(pointer)) = (new, typed.new.as_ref()) else {
            return;
        };
        let Some(string) = self.with_string(kind, pointer.clone(), new, string) else {
            return;
        };
        typed.new = Some(string.clone());
        self.strings[watch.id.0] = Some((new.to_vec(), string));
    }

    /// `pointer` (the value decoded by its type, of bytes `value`) with the string it points
    /// to, as `string` says: read by the handler at the trap, or read now (`After`: the target
    /// ran on since the hit); `None` for NULL or unreadable memory.
    fn with_string(
        &self,
        kind: StringKind,
        pointer: Value,
        value: &[u8],
        string: StringRead,
    ) -> Option<Value> {
        let word = |at: usize| value.get(at..at + 8).map(raw);
        let limit = hwbp_symbols::value::C_STRING_MAX;
        let read_after = matches!(string, StringRead::After);
        if let StringRead::AtTrap(read) = string {
            let read = read?;
            let rust_length = match kind {
                StringKind::CPointer => None,
                StringKind::RustStr { length, .. } => Some(word(length)?),
            };
            let mut bytes = read.bytes;
            if rust_length.is_none() && !read.truncated {
                // The whole C string: its NUL ends it (PointedString prints to it).
                bytes.push(0);
            }
            return Some(Value::String(Box::new(PointedString {
                pointer,
                bytes,
                rust_length,
                read_after: false,
                truncated: read.truncated,
            })));
        }
        let pid = self.pid?;
        let (bytes, rust_length) = match kind {
            StringKind::CPointer => {
                let address = word(0).filter(|p| *p != 0)?;
                let mut buf = vec![0u8; limit];
                let n = memory::read_memory(pid, address, &mut buf).ok()?;
                buf.truncate(n);
                (buf, None)
            }
            StringKind::RustStr { data_ptr, length } => {
                let address = word(data_ptr).filter(|p| *p != 0)?;
                let length = word(length)?;
                let mut buf = vec![0u8; usize::try_from(length).map_or(limit, |l| l.min(limit))];
                if memory::read_memory(pid, address, &mut buf).ok()? < buf.len() {
                    return None;
                }
                (buf, Some(length))
            }
        };
        Some(Value::String(Box::new(PointedString {
            pointer,
            bytes,
            rust_length,
            read_after,
            truncated: false,
        })))
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

/// Little-endian bytes (up to 8) as an unsigned integer.
fn raw(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}
