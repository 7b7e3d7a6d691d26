//! Typed values of a watch: what a hit's raw bytes mean in the watched variable's DWARF type,
//! printed as gdb's `print` does (`hwbp_symbols::value`: `-1`, `115 's'`, enum names, `0x...
//! <sym>`, floats), the members of a struct or array that changed (`cfg.limits[2].max: 3 ->
//! 7`). `--if` in the type is [`crate::condition`]'s.
//!
//! A [`WatchType`] belongs to a planned watch (from DWARF, for a symbol or an expression; with
//! `ty: None` for a symbol without DWARF, whose values stay unsigned integers of the symbol's
//! size, "type unknown"). Both watchers keep the whole value's last bytes per watch
//! ([`LastValue`]) and turn them with the new bytes into a [`TypedValue`] on each hit; perf
//! mode reads the new bytes after the hit (read-after), stop mode while the thread is stopped.
//! A value that cannot be read (the pointer of a value chain is NULL) prints as gdb prints it,
//! `<unreadable>`.

use std::sync::Arc;

use hwbp_core::Access;
use hwbp_linux::memory;
use hwbp_symbols::types::{Language, Type};
use hwbp_symbols::value::{diff_values, format_untyped, format_value_in, Change};
use hwbp_symbols::ProcessSymbols;

use crate::hit::{Hit, HitValue, ValueSource, WatchId};
use crate::plan::{PlannedWatch, WatchPlan};

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
    let Some(bytes) = bytes else {
        return UNREADABLE.to_string();
    };
    let mut symbolize = |addr: u64| symbols.and_then(|s| s.data_symbol(addr));
    match &ty.ty {
        Some(t) if bytes.len() as u64 >= t.size => {
            format_value_in(ty.language, t, bytes, &mut symbolize)
        }
        _ => format_untyped(bytes),
    }
}

/// The change from `old` to `new` (either `None`: unreadable) of a value of type `ty`.
fn describe(
    ty: &WatchType,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
    symbols: Option<&ProcessSymbols>,
) -> TypedValue {
    let wide = |b: Option<&[u8]>| b.filter(|b| b.len() > 8).map(<[u8]>::to_vec);
    let composite = ty.ty.as_ref().is_some_and(|t| {
        t.fields().is_some() || matches!(t.kind, hwbp_symbols::types::TypeKind::Array { .. })
    });
    let changes = match (&ty.ty, old, new) {
        (Some(t), Some(o), Some(n)) if composite => {
            let mut symbolize = |addr: u64| symbols.and_then(|s| s.data_symbol(addr));
            diff_values(&ty.root, t, o, n, ty.language, &mut symbolize)
        }
        _ => Vec::new(),
    };
    TypedValue {
        value_type: ty.name().map(str::to_string),
        old: Some(format(ty, old, symbols)),
        new: Some(format(ty, new, symbols)),
        changes,
        bytes_before: wide(old),
        bytes_after: wide(new),
        moved_by: None,
        moved_to: None,
    }
}

/// The whole value of every typed watch of a run, as last seen: read at arming and at each
/// hit, at the watch's current address (a value chain's moves with it).
pub(crate) struct WatchValues {
    last: Vec<LastValue>,
    pid: Option<i32>,
}

impl WatchValues {
    /// Reads every typed watch's value now (before arming: the "before" of its first hit).
    pub(crate) fn new(plan: &WatchPlan, pid: Option<i32>) -> WatchValues {
        let mut values = WatchValues {
            last: vec![LastValue::default(); plan.watches.len()],
            pid,
        };
        for w in &plan.watches {
            values.last[w.id.0] = LastValue(values.read(w));
        }
        values
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
    /// stopped, before building the [`Hit`].
    pub(crate) fn observe(
        &mut self,
        plan: &WatchPlan,
        watch: WatchId,
        piece: usize,
    ) -> Option<Observed> {
        self.observe_known(plan, watch, piece, None)
    }

    /// [`observe`](Self::observe), taking `known` (the raw value the watcher read for the hit,
    /// for a one-piece watch of up to 8 bytes at a fixed address) instead of reading again.
    fn observe_known(
        &mut self,
        plan: &WatchPlan,
        watch: WatchId,
        piece: usize,
        known: Option<u64>,
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
        let old = self.last[watch.id.0].0.clone();
        let mut typed = self.last[watch.id.0].update(ty, new.clone(), plan.symbols.as_deref());
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
        let known = hit.value.and_then(|v| v.new);
        if let Some(observed) = self.observe_known(plan, hit.watch, piece, known) {
            observed.apply(hit, ValueSource::ReadAfter);
        }
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
