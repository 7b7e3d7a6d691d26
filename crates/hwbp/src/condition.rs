//! [`Condition`]: `--if EXPR`, a test on a hit's new value (`==N`, `!=N`, `<N`, `>N`, `&MASK`),
//! as gdb's `watch ... if` tests the new value.
//!
//! A decimal literal compares signed, in the width of the watched piece, as C's `int` does: on
//! a 4-byte `int`, `<0` is "the sign bit is set" and `==-1` matches `0xffffffff`. A `0x` hex
//! literal compares unsigned (bit patterns, and values above the signed range). hwbp does not
//! know the variable's C type, so the literal's spelling chooses. [`Condition::parse_for`] also
//! takes an enum constant of the watched value's type (`==MODE_ON`). In perf mode with the BPF hit handler the test runs in the kernel
//! ([`Condition::to_handler`]); in stop mode in hwbp ([`Condition::holds`]).

use hwbp_linux::bpf::{Condition as KernelCondition, ConditionOp};
use hwbp_symbols::types::TypeKind;

use crate::error::{Error, Result};
use crate::plan::PlannedWatch;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==N`
    Equal,
    /// `!=N`
    NotEqual,
    /// `<N`
    Less,
    /// `>N`
    Greater,
    /// `&MASK`: some bit of MASK set.
    AnyBit,
}

/// A test on the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Condition {
    /// The comparison.
    pub op: CompareOp,
    /// The operand's bits (a negative operand as its 64-bit two's complement).
    pub value: u64,
    /// Compare as signed integers of the value's width (a decimal literal; never for
    /// `&MASK`).
    pub signed: bool,
}

impl Condition {
    /// An unsigned test.
    pub fn unsigned(op: CompareOp, value: u64) -> Condition {
        Condition {
            op,
            value,
            signed: false,
        }
    }

    /// A signed test.
    pub fn signed(op: CompareOp, value: i64) -> Condition {
        Condition {
            op,
            value: value as u64,
            signed: op != CompareOp::AnyBit,
        }
    }

    /// Parses `==N`, `!=N`, `<N`, `>N` or `&MASK`: N decimal (possibly negative; compared
    /// signed) or `0x` hex (compared unsigned).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (op, rest) = if let Some(rest) = text.strip_prefix("==") {
            (CompareOp::Equal, rest)
        } else if let Some(rest) = text.strip_prefix("!=") {
            (CompareOp::NotEqual, rest)
        } else if let Some(rest) = text.strip_prefix('<') {
            (CompareOp::Less, rest)
        } else if let Some(rest) = text.strip_prefix('>') {
            (CompareOp::Greater, rest)
        } else if let Some(rest) = text.strip_prefix('&') {
            (CompareOp::AnyBit, rest)
        } else {
            return Err(Error::bad_input(format!(
                "--if {text:?}: start with ==, !=, <, > or &, e.g. --if '==42' or --if '&0x80'"
            )));
        };
        let rest = rest.trim();
        let parsed = match rest.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok().map(|n| (n, false)),
            None => rest.parse::<i64>().ok().map(|n| (n as u64, true)),
        };
        let Some((value, decimal)) = parsed else {
            return Err(Error::bad_input(format!(
                "--if {text:?}: {rest:?} is not a number: use decimal (signed, 64-bit) or 0x \
                 hex (unsigned)"
            )));
        };
        if decimal && op == CompareOp::AnyBit && (value as i64) < 0 {
            return Err(Error::bad_input(format!(
                "--if {text:?}: a mask cannot be negative: use 0x hex, e.g. --if '&0x80'"
            )));
        }
        Ok(Condition {
            op,
            value,
            signed: decimal && op != CompareOp::AnyBit,
        })
    }

    /// [`Condition::parse`], where N may also be an enum constant of a watched value's type
    /// (`==MODE_ON`, as gdb's `watch mode if mode == MODE_ON`): it compares as that
    /// constant's value, signed when the enum has negative constants. A name no watched enum
    /// has is refused, naming the constants there are.
    pub fn parse_for(text: &str, watches: &[PlannedWatch]) -> Result<Self> {
        let trimmed = text.trim();
        let operand = trimmed.trim_start_matches(['=', '!', '<', '>', '&']).trim();
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
            if let TypeKind::Enum {
                enumerators,
                signed,
                ..
            } = &ty.kind
            {
                if let Some(e) = enumerators.iter().find(|e| e.name == operand) {
                    let numeric = Self::parse(&format!("{op_text}{}", e.value))?;
                    return Ok(Condition {
                        signed: *signed && numeric.op != CompareOp::AnyBit,
                        value: e.value as u64,
                        ..numeric
                    });
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

    /// Whether `value`, a `len`-byte integer (1, 2, 4 or 8), satisfies the condition.
    pub fn holds(self, value: u64, len: u64) -> bool {
        let bits = (len.clamp(1, 8) * 8) as u32;
        let widen = |v: u64| -> i64 {
            if bits == 64 {
                v as i64
            } else {
                ((v << (64 - bits)) as i64) >> (64 - bits)
            }
        };
        let truncate = |v: u64| if bits == 64 { v } else { v & ((1 << bits) - 1) };
        if self.signed {
            let (v, n) = (widen(value), self.value as i64);
            match self.op {
                CompareOp::Equal => v == n,
                CompareOp::NotEqual => v != n,
                CompareOp::Less => v < n,
                CompareOp::Greater => v > n,
                CompareOp::AnyBit => value & self.value != 0,
            }
        } else {
            let v = truncate(value);
            match self.op {
                CompareOp::Equal => v == self.value,
                CompareOp::NotEqual => v != self.value,
                CompareOp::Less => v < self.value,
                CompareOp::Greater => v > self.value,
                CompareOp::AnyBit => v & self.value != 0,
            }
        }
    }

    /// The same test for the in-kernel hit handler.
    pub fn to_handler(self) -> KernelCondition {
        let op = match self.op {
            CompareOp::Equal => ConditionOp::Eq,
            CompareOp::NotEqual => ConditionOp::Ne,
            CompareOp::Less => ConditionOp::Lt,
            CompareOp::Greater => ConditionOp::Gt,
            CompareOp::AnyBit => ConditionOp::Mask,
        };
        KernelCondition {
            op,
            value: self.value,
            signed: self.signed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_test_the_new_value() {
        use CompareOp::*;
        assert_eq!(
            Condition::parse("==42").unwrap(),
            Condition::signed(Equal, 42)
        );
        assert_eq!(
            Condition::parse("!=0x10").unwrap(),
            Condition::unsigned(NotEqual, 16)
        );
        assert_eq!(Condition::parse("<5").unwrap(), Condition::signed(Less, 5));
        assert_eq!(
            Condition::parse("> 7").unwrap(),
            Condition::signed(Greater, 7)
        );
        assert_eq!(
            Condition::parse("&128").unwrap(),
            Condition::unsigned(AnyBit, 128)
        );
        assert_eq!(
            Condition::parse("&0x80").unwrap(),
            Condition::unsigned(AnyBit, 0x80)
        );
        assert_eq!(
            Condition::parse("==-1").unwrap(),
            Condition::signed(Equal, -1)
        );
        assert!(Condition::parse("=5").is_err());
        assert!(Condition::parse("==x").is_err());
        assert!(Condition::parse("&-1").is_err());
        let mask = Condition::unsigned(AnyBit, 0x80);
        assert!(mask.holds(0x81, 8) && !mask.holds(0x7f, 8));
        let less = Condition::unsigned(Less, 5);
        assert!(less.holds(4, 8) && !less.holds(5, 8));
        let greater = Condition::unsigned(Greater, 5);
        assert!(greater.holds(6, 8) && !greater.holds(5, 8));
        // Unsigned: a set top bit is a large value.
        assert!(Condition::parse(">0x10").unwrap().holds(0xffff_fffe, 4));
    }

    #[test]
    fn a_decimal_literal_compares_signed_in_the_pieces_width() {
        let below_zero = Condition::parse("<0").unwrap();
        assert!(below_zero.signed);
        assert!(below_zero.holds(0xffff_ffff, 4) && below_zero.holds(0x80, 1));
        assert!(!below_zero.holds(0x7fff_ffff, 4) && !below_zero.holds(0xffff_ffff, 8));
        assert!(!Condition::parse(">100").unwrap().holds(0xffff_fff0, 4));
        let lt = Condition::parse("<-1").unwrap();
        assert!(lt.signed);
        // -2 as a 4-byte int, zero-extended as the kernel and memory reads give it.
        assert!(lt.holds(0xffff_fffe, 4));
        assert!(!lt.holds(0xffff_ffff, 4));
        assert!(!lt.holds(5, 4));
        assert!(lt.holds(0xfe, 1));
        let eq = Condition::parse("==-1").unwrap();
        assert!(eq.holds(0xffff_ffff, 4) && eq.holds(u64::MAX, 8) && !eq.holds(0xffff, 4));
        let handler = Condition::parse(">-3").unwrap().to_handler();
        assert_eq!(
            handler,
            KernelCondition::signed(ConditionOp::Gt, -3),
            "the kernel gets the same signed test"
        );
    }
}
