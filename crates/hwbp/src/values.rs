//! The values of each watch during a run, shared by the engines: the whole value as last
//! seen per watch (read at arming and at each hit, at the watch's current address), a
//! multi-piece watch's shadow advanced by the BPF handler's exact piece values
//! ([`crate::shadow`]), strings a `char *` points to, and the typed value each hit carries
//! ([`crate::typed`] formats it).

use hwbp_core::Access;
use hwbp_linux::memory;
use hwbp_symbols::types::Language;
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
    /// Per watch of several pieces (not a value chain): its shadow ([`crate::shadow`]).
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
            let shadowed = w.pieces.len() > 1
                && w.chain.is_none()
                && w.value_type.is_some()
                && w.len <= MAX_TYPED_BYTES
                && w.access != Access::Execute;
            if shadowed {
                if let Ok(len) = usize::try_from(w.len) {
                    values.shadows[w.id.0] =
                        Some(Shadow::new(w.addr, len, &w.pieces, seed.as_deref()));
                }
            }
            if let (Some(kind), Some(ty), Some(bytes)) = (
                w.value_type.as_deref().and_then(StringKind::of),
                w.value_type.as_ref(),
                seed.as_deref(),
            ) {
                // The string at arming: the `old` of the first hit.
                let pointer = crate::typed::decode(ty, Some(bytes), plan.symbols.as_deref());
                if let Some(string) = values.with_string(kind, pointer, bytes, false) {
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
        self.observe_known(plan, watch, piece, known, false)
    }

    /// [`observe`](Self::observe), taking `known` (the raw value the watcher read for the hit,
    /// for a one-piece watch of up to 8 bytes at a fixed address) instead of reading again;
    /// `read_after`: the target ran on since the hit (a `char *`'s string says so).
    fn observe_known(
        &mut self,
        plan: &WatchPlan,
        watch: WatchId,
        piece: usize,
        known: Option<u64>,
        read_after: bool,
    ) -> Option<Observed> {
        let watch = &plan.watches[watch.0];
        let ty = watch.value_type.as_ref()?;
        let len = usize::try_from(watch.len).unwrap_or(usize::MAX);
        let new = match known {
            Some(raw) if watch.chain.is_none() && len <= 8 => {
                Some(raw.to_le_bytes()[..len].to_vec())
            }
            _ => self.read(watch),
        };
        if let Some(shadow) = &mut self.shadows[watch.id.0] {
            shadow.reset(new.as_deref());
        }
        let old = self.last[watch.id.0].0.clone();
        let mut typed = self.last[watch.id.0].update(ty, new.clone(), plan.symbols.as_deref());
        self.add_string(
            watch,
            &mut typed,
            (old.as_deref(), new.as_deref()),
            read_after,
        );
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
        if self.advance_shadow(plan, hit, piece) {
            return;
        }
        let known = hit.value.and_then(|v| v.new);
        if let Some(observed) = self.observe_known(plan, hit.watch, piece, known, true) {
            observed.apply(hit, ValueSource::ReadAfter);
        }
    }
}

/// A value gdb prints with the string it points to.
#[derive(Clone, Copy)]
enum StringKind {
    /// A C `char *` (`const`, `signed`, `unsigned` alike): the pointer, then `"text"`.
    CPointer,
    /// A Rust `&str` (DWARF: `struct &str { data_ptr, length }`): `"text"` alone.
    RustStr { data_ptr: usize, length: usize },
}

impl StringKind {
    fn of(ty: &WatchType) -> Option<StringKind> {
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
            _ => None,
        }
    }
}

impl WatchValues {
    /// For a `char *` or `&str` watch: shows the string the new value points to (read now,
    /// up to gdb's 200 characters; ` (string read after)` when the target ran on since the
    /// hit) in `typed.new`, and the one read for the old value, when it was the last new
    /// one, in `typed.old`. NULL and unreadable pointers print as the value alone.
    fn add_string(
        &mut self,
        watch: &PlannedWatch,
        typed: &mut TypedValue,
        (old, new): (Option<&[u8]>, Option<&[u8]>),
        read_after: bool,
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
        let Some(string) = self.with_string(kind, pointer.clone(), new, read_after) else {
            return;
        };
        typed.new = Some(string.clone());
        self.strings[watch.id.0] = Some((new.to_vec(), string));
    }

    /// `pointer` (the value decoded by its type, of bytes `value`) with the string it points
    /// to, read now (`read_after`: the target ran on since the hit); `None` for NULL or
    /// unreadable memory.
    fn with_string(
        &self,
        kind: StringKind,
        pointer: Value,
        value: &[u8],
        read_after: bool,
    ) -> Option<Value> {
        let word = |at: usize| value.get(at..at + 8).map(raw);
        let pid = self.pid?;
        let limit = hwbp_symbols::value::C_STRING_MAX;
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
        })))
    }

    /// For a watch with a shadow and a hit with the handler's exact piece values: the whole
    /// value before and after from the shadow, nothing read. False when it does not apply.
    fn advance_shadow(&mut self, plan: &WatchPlan, hit: &mut Hit, piece: usize) -> bool {
        let Some(Some(shadow)) = self.shadows.get_mut(hit.watch.0) else {
            return false;
        };
        let Some(HitValue {
            old,
            new: Some(new),
            source: ValueSource::Handler,
        }) = hit.value
        else {
            return false;
        };
        let Some(ty) = plan.watches[hit.watch.0].value_type.as_ref() else {
            return false;
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
            self.add_string(watch, &mut typed, values, true);
        }
        self.last[hit.watch.0] = LastValue(Some(after.bytes));
        hit.typed = Some(typed);
        true
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
