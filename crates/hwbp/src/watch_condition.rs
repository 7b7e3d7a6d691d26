//! `--if` against the plan's watches: a condition whose operand names a constant of a watched
//! enum ([`Condition::parse_for`]), the condition for one watch's piece
//! ([`Condition::for_watch`], in the watch's DWARF type), and the notice for a watch whose type
//! is unknown. The condition itself is [`crate::condition`]'s, plain data below the plan.

use hwbp_symbols::types::TypeKind;

use crate::condition::{CompareOp, Condition, ResolvedCondition};
use crate::error::{Error, Result};
use crate::plan::PlannedWatch;

impl Condition {
    /// [`Condition::parse`], where N may also be an enum constant of a watched value's type
    /// (`==MODE_ON`, as gdb's `watch mode if mode == MODE_ON`): it stands for the constant's
    /// value. A name no watched enum has is refused, naming the constants there are.
    pub fn parse_for(text: &str, watches: &[PlannedWatch]) -> Result<Self> {
        let trimmed = text.trim();
        let operand = CompareOp::split(trimmed).map_or("", |(_, rest)| rest);
        let is_name = operand
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && operand.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !is_name {
            return Self::parse(text);
        }
        let op_text = &trimmed[..trimmed.len() - operand.len()];
        let mut known = Vec::new();
        for ty in watches
            .iter()
            .filter_map(|w| w.value_type.as_ref()?.ty.as_ref())
        {
            if let TypeKind::Enum { enumerators, .. } = &ty.kind {
                if let Some(e) = enumerators.iter().find(|e| e.name == operand) {
                    return Self::parse(&format!("{op_text}{}", e.value));
                }
                known.extend(enumerators.iter().map(|e| e.name.clone()));
            }
        }
        Err(Error::bad_input(if known.is_empty() {
            format!(
                "--if {trimmed:?}: {operand} is a name, and no watched value is of an enum \
                 type: compare with a number, e.g. --if '==42'"
            )
        } else {
            format!(
                "--if {trimmed:?}: {operand} is not a constant of the watched enum; it has {}",
                known.join(", ")
            )
        }))
    }

    /// The condition for `watch`'s value, `len` bytes (one of its pieces).
    pub fn for_watch(&self, watch: &PlannedWatch, len: u64) -> ResolvedCondition {
        self.resolve(watch.value_type.as_ref().and_then(|t| t.ty.as_ref()), len)
    }

    /// For a watch whose value has no known type: a notice saying how the condition
    /// compares (`None` when the type is known).
    pub fn untyped_notice(&self, watch: &PlannedWatch) -> Option<String> {
        if watch.value_type.as_ref().is_some_and(|t| t.ty.is_some()) {
            return None;
        }
        let how = if self.op == CompareOp::AnyBit {
            "tests the bits of"
        } else if self.literal.hex {
            "compares unsigned (a 0x literal) with"
        } else {
            "compares signed (a decimal literal) with"
        };
        Some(format!(
            "--if '{}{}': the type of {} is unknown (no debug info); the condition {how} \
             its {} bytes",
            self.op,
            self.literal,
            watch.label,
            watch.len.min(8)
        ))
    }
}
