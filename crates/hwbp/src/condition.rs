//! [`Condition`]: `--if EXPR`, a test on a hit's new value (`==N`, `!=N`, `<N`, `<=N`, `>N`,
//! `>=N`, `&MASK`), as gdb's `watch ... if` tests the new value, with C's meaning in the
//! watched value's type.
//!
//! The comparison is [`hwbp_core::compare`]'s: one model from the command line to the kernel
//! filter. A condition is parsed once ([`Condition::parse_for`]: a number, or an enum
//! constant of the watched value's type), then resolved for each watch's type
//! ([`Condition::for_watch`]): an `unsigned int` compares unsigned (`<0` never holds), an
//! `int` signed, an `unsigned char` as the `int` C promotes it to, a float as a float. A value
//! with no known type (an address, a symbol without DWARF) is an integer of the watched
//! width whose signedness the literal's spelling chooses (decimal signed, `0x` unsigned), and
//! [`Condition::untyped_notice`] says so. In perf mode the resolved test runs in the kernel
//! (`ResolvedCondition::to_handler`, the BPF hit handler), in stop mode in hwbp
//! ([`ResolvedCondition::holds`]): the same answers by construction.

pub use hwbp_core::compare::CompareOp;
use hwbp_core::compare::{IntCondition, IntType, Literal};
use hwbp_symbols::types::{Encoding, Type, TypeKind};

use crate::error::{Error, Result};

/// A test on the new value, as written: the comparison and its literal (an enum constant
/// already replaced by its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Condition {
    /// The comparison.
    pub op: CompareOp,
    /// The right-hand side.
    pub literal: Literal,
}

/// A condition resolved for one watched value's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResolvedCondition {
    /// An integer (or enum, pointer, bool, char) value: C's comparison.
    Int(IntCondition),
    /// A `float` or `double` (4 or 8 bytes): compared as floating point; `&` never holds.
    Float {
        /// The comparison.
        op: CompareOp,
        /// The literal as a float.
        value: f64,
        /// The value's size, 4 or 8.
        bytes: u8,
    },
}

impl ResolvedCondition {
    /// Whether a new value (its bytes, little-endian) satisfies the condition.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        match *self {
            ResolvedCondition::Int(c) => c.holds(raw(bytes)),
            ResolvedCondition::Float {
                op,
                value,
                bytes: size,
            } => {
                let v = match (size, bytes.len()) {
                    (4, n) if n >= 4 => {
                        f64::from(f32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")))
                    }
                    (8, n) if n >= 8 => f64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
                    _ => return false,
                };
                op.apply(v, value, || false)
            }
        }
    }

    /// The same test for the in-kernel hit handler; `None` for a float (the handler compares
    /// integers).
    pub(crate) fn to_handler(self) -> Option<IntCondition> {
        match self {
            ResolvedCondition::Int(c) => Some(c),
            ResolvedCondition::Float { .. } => None,
        }
    }
}

impl Condition {
    /// Parses `==N`, `!=N`, `<N`, `<=N`, `>N`, `>=N` or `&MASK`: N decimal (possibly negative)
    /// or `0x` hex.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let Some((op, rest)) = CompareOp::split(trimmed) else {
            return Err(Error::bad_input(format!(
                "--if {trimmed:?}: start with ==, !=, <, <=, >, >= or &, e.g. --if '==42', \
                 --if '<=5' or --if '&0x80'"
            )));
        };
        let Some(literal) = Literal::parse(rest) else {
            return Err(Error::bad_input(format!(
                "--if {trimmed:?}: {rest:?} is not a number: use decimal, -decimal or 0x hex \
                 (at most 64 bits), or an enum constant of the watched value"
            )));
        };
        if op == CompareOp::AnyBit && literal.value < 0 {
            return Err(Error::bad_input(format!(
                "--if {trimmed:?}: a mask cannot be negative: use 0x hex, e.g. --if '&0x80'"
            )));
        }
        Ok(Condition { op, literal })
    }

    /// The condition for a value of DWARF type `ty` (`None`: unknown) and `len` bytes (the
    /// watched piece's). A struct, union or array of several pieces compares each piece as an
    /// unsigned integer of its width.
    pub fn resolve(&self, ty: Option<&Type>, len: u64) -> ResolvedCondition {
        let bytes = u8::try_from(len.clamp(1, 8)).expect("clamped");
        let int = |signed| {
            ResolvedCondition::Int(IntCondition::resolve(
                self.op,
                self.literal,
                IntType { bytes, signed },
            ))
        };
        let Some(ty) = ty else {
            // No type: the spelling chooses, as C types the literal alone.
            return int(!self.literal.hex && self.op != CompareOp::AnyBit);
        };
        match (&ty.kind, ty.int_type()) {
            (_, _) if ty.size != len => int(false),
            (TypeKind::Base(Encoding::Float), _) if matches!(len, 4 | 8) => {
                ResolvedCondition::Float {
                    op: self.op,
                    value: self.literal.value as f64,
                    bytes,
                }
            }
            (_, Some(int_type)) => int(int_type.signed),
            // An aggregate of one piece: its bytes as an unsigned integer.
            (_, None) => int(false),
        }
    }

    /// Refuses a literal that no `len`-byte value can equal, signed or unsigned (`>300` on a
    /// byte): C would accept it, but it is a mistake, said before anything is armed.
    pub fn check_fits(&self, len: u64, piece: usize, watch: &str) -> Result<()> {
        let bits = 8 * u32::try_from(len.clamp(1, 8)).expect("clamped");
        let (min, max) = (-(1i128 << (bits - 1)), (1i128 << bits) - 1);
        if (min..=max).contains(&self.literal.value) {
            return Ok(());
        }
        Err(Error::bad_input(format!(
            "--if '{}{}': {} does not fit piece {piece} ({len} bytes) of {watch}: use a value \
             the watched piece can hold",
            self.op, self.literal, self.literal
        )))
    }
}

/// The first 8 bytes of `bytes` as a little-endian integer.
fn raw(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hwbp_symbols::types::Enumerator;

    fn int_type(name: &str, size: u64, encoding: Encoding) -> Type {
        Type {
            name: name.into(),
            size,
            kind: TypeKind::Base(encoding),
        }
    }

    #[test]
    fn conditions_parse_every_operator_and_refuse_what_is_not_one() {
        let parsed = |t: &str| Condition::parse(t).map(|c| (c.op, c.literal.value, c.literal.hex));
        assert_eq!(parsed("==42").unwrap(), (CompareOp::Equal, 42, false));
        assert_eq!(parsed("!=0x10").unwrap(), (CompareOp::NotEqual, 16, true));
        assert_eq!(parsed("<=5").unwrap(), (CompareOp::LessEqual, 5, false));
        assert_eq!(
            parsed(">= -3").unwrap(),
            (CompareOp::GreaterEqual, -3, false)
        );
        assert_eq!(parsed("> 7").unwrap(), (CompareOp::Greater, 7, false));
        assert_eq!(parsed("&0x80").unwrap(), (CompareOp::AnyBit, 0x80, true));
        for bad in ["=5", "==x1", "&-1", "<", "5"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_watched_type_decides_not_the_spelling() {
        let unsigned = int_type("unsigned int", 4, Encoding::Unsigned);
        let signed = int_type("int", 4, Encoding::Signed);
        let values: [u32; 7] = [3, 0xffff_ffff, 5, 6, 0, 4_000_000_000, 2];
        let count = |text: &str, ty: &Type| {
            let c = Condition::parse(text).unwrap().resolve(Some(ty), 4);
            values.iter().filter(|v| c.holds(&v.to_le_bytes())).count()
        };
        assert_eq!(count("<0", &unsigned), 0);
        assert_eq!(count(">5", &unsigned), 3);
        assert_eq!(count("<=5", &unsigned), 4);
        assert_eq!(count(">=6", &unsigned), 3);
        assert_eq!(count("<0", &signed), 2);
        assert_eq!(count(">5", &signed), 1);
        // Without a type, the spelling: decimal signed, hex unsigned.
        let untyped = |text: &str| {
            let c = Condition::parse(text).unwrap().resolve(None, 4);
            values.iter().filter(|v| c.holds(&v.to_le_bytes())).count()
        };
        assert_eq!(untyped("<0"), 2);
        assert_eq!(untyped(">0x5"), 3);
    }

    #[test]
    fn enums_floats_and_handlers() {
        let colour = Type {
            name: "enum colour".into(),
            size: 4,
            kind: TypeKind::Enum {
                enumerators: vec![
                    Enumerator {
                        name: "RED".into(),
                        value: 0,
                    },
                    Enumerator {
                        name: "BLUE".into(),
                        value: 2,
                    },
                ],
                signed: false,
                flag: false,
            },
        };
        let c = Condition::parse("<0").unwrap().resolve(Some(&colour), 4);
        assert!(
            !c.holds(&0xffff_ffffu32.to_le_bytes()),
            "gcc's enum is unsigned"
        );
        let double = int_type("double", 8, Encoding::Float);
        let c = Condition::parse(">1").unwrap().resolve(Some(&double), 8);
        assert!(c.holds(&1.5f64.to_le_bytes()) && !c.holds(&0.5f64.to_le_bytes()));
        assert_eq!(c.to_handler(), None);
        let c = Condition::parse("<0").unwrap().resolve(None, 8);
        let kernel = c.to_handler().unwrap();
        assert!(kernel.compare_signed && kernel.extend_signed && kernel.bytes == 8);
    }
}
