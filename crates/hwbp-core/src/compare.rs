//! `--if`: a comparison of a watched integer with a literal, with C's meaning. One model for
//! every place that tests a hit's new value: the BPF hit handler's in-kernel filter (which
//! runs [`IntCondition`] as generated instructions), stop mode and the symbols layer.
//!
//! C decides how `x < 0` compares from the types of both sides, not from how the number is
//! spelled (C11 6.3.1.1 integer promotions, 6.3.1.8 usual arithmetic conversions, 6.4.4.1 the
//! type of an integer constant; LP64 as on Linux x86_64 and arm64: `int` 32 bits, `long` 64):
//! an `unsigned int` against `0` compares unsigned, so `u < 0` never holds and `u > -1` never
//! holds (the `-1` becomes `UINT_MAX`), while an `unsigned char` is promoted to `int`, so
//! `c > -1` always holds. [`IntCondition::resolve`] applies those rules once, into the
//! operand's bits and how the value is widened and compared, so the kernel filter and hwbp's
//! own test agree by construction.

use core::fmt;

/// A comparison of `--if`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==N`
    Equal,
    /// `!=N`
    NotEqual,
    /// `<N`
    Less,
    /// `<=N`
    LessEqual,
    /// `>N`
    Greater,
    /// `>=N`
    GreaterEqual,
    /// `&MASK`: some bit of MASK is set (C's `(x & MASK) != 0`).
    AnyBit,
}

impl CompareOp {
    /// The operator as written (`==`, `<=`, `&`).
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Equal => "==",
            CompareOp::NotEqual => "!=",
            CompareOp::Less => "<",
            CompareOp::LessEqual => "<=",
            CompareOp::Greater => ">",
            CompareOp::GreaterEqual => ">=",
            CompareOp::AnyBit => "&",
        }
    }

    /// Splits `==42` into the operator and the rest (`42`), longest operator first.
    pub fn split(text: &str) -> Option<(CompareOp, &str)> {
        const OPS: [(&str, CompareOp); 7] = [
            ("==", CompareOp::Equal),
            ("!=", CompareOp::NotEqual),
            ("<=", CompareOp::LessEqual),
            (">=", CompareOp::GreaterEqual),
            ("<", CompareOp::Less),
            (">", CompareOp::Greater),
            ("&", CompareOp::AnyBit),
        ];
        let text = text.trim_start();
        OPS.iter()
            .find_map(|(p, op)| text.strip_prefix(p).map(|rest| (*op, rest.trim())))
    }

    /// Applies the comparison to two values already converted to one type; `&` answers
    /// `any_bit()` (a float has no bits to test: pass `|| false`).
    pub fn apply<T: PartialOrd>(self, lhs: T, rhs: T, any_bit: impl FnOnce() -> bool) -> bool {
        match self {
            CompareOp::Equal => lhs == rhs,
            CompareOp::NotEqual => lhs != rhs,
            CompareOp::Less => lhs < rhs,
            CompareOp::LessEqual => lhs <= rhs,
            CompareOp::Greater => lhs > rhs,
            CompareOp::GreaterEqual => lhs >= rhs,
            CompareOp::AnyBit => any_bit(),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// The low `bytes` bytes of `raw`, sign-extended to 64 bits (`bytes` 1, 2, 4 or 8).
pub fn sign_extend(raw: u64, bytes: u8) -> i64 {
    let shift = 64 - 8 * u32::from(bytes.clamp(1, 8));
    ((raw << shift) as i64) >> shift
}

/// The low `bytes` bytes of `raw`, zero-extended to 64 bits (`bytes` 1, 2, 4 or 8).
pub fn truncate(raw: u64, bytes: u8) -> u64 {
    if bytes >= 8 {
        raw
    } else {
        raw & ((1u64 << (8 * u32::from(bytes.max(1)))) - 1)
    }
}

/// An integer type of C: its size and signedness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntType {
    /// Bytes: 1, 2, 4 or 8.
    pub bytes: u8,
    /// Signed (`int`, `signed char`, `long`) or not (`unsigned`, `size_t`, pointers, `_Bool`).
    pub signed: bool,
}

impl IntType {
    /// A signed type of `bytes`.
    pub const fn signed(bytes: u8) -> IntType {
        IntType {
            bytes,
            signed: true,
        }
    }

    /// An unsigned type of `bytes`.
    pub const fn unsigned(bytes: u8) -> IntType {
        IntType {
            bytes,
            signed: false,
        }
    }

    /// The type after C's integer promotions: narrower than `int` becomes `int`.
    fn promoted(self) -> IntType {
        if self.bytes < 4 {
            IntType::signed(4)
        } else {
            self
        }
    }

    /// The common type of C's usual arithmetic conversions for two promoted types.
    fn common(a: IntType, b: IntType) -> IntType {
        if a.signed == b.signed {
            return if a.bytes >= b.bytes { a } else { b };
        }
        let (unsigned, signed) = if a.signed { (b, a) } else { (a, b) };
        if unsigned.bytes >= signed.bytes {
            unsigned
        } else {
            // The wider signed type holds every value of the unsigned one.
            signed
        }
    }

    /// `value` (exact) converted to this type, as C converts: modulo 2^bits for an unsigned
    /// type; a signed type receives only values it holds here.
    fn convert(self, value: i128) -> i128 {
        let bits = 8 * u32::from(self.bytes);
        let modulus = 1i128 << bits;
        let wrapped = value.rem_euclid(modulus);
        if self.signed && wrapped >= modulus / 2 {
            wrapped - modulus
        } else {
            wrapped
        }
    }
}

/// An integer literal as written: its value and whether it was hex (C types hex constants
/// differently: `0xffffffff` is an `unsigned int`, `4294967295` a `long`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Literal {
    /// The value, `-` applied.
    pub value: i128,
    /// Spelled `0x...`.
    pub hex: bool,
}

impl Literal {
    /// Parses `42`, `-1`, `0x80`, `-0x10`; `None` if it is not a number of at most 64 bits.
    pub fn parse(text: &str) -> Option<Literal> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, text),
        };
        let (magnitude, hex) = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (u64::from_str_radix(h, 16).ok()?, true)
            }
            Some(_) => return None,
            None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                (digits.parse::<u64>().ok()?, false)
            }
            None => return None,
        };
        let value = i128::from(magnitude);
        Some(Literal {
            value: if negative { -value } else { value },
            hex,
        })
    }

    /// The C type of the constant (C11 6.4.4.1, LP64, no suffix), then negated in that type
    /// when written with `-`: `int`, `long`, and for hex also `unsigned int`, `unsigned long`.
    fn c_type(self) -> IntType {
        let magnitude = self.value.unsigned_abs();
        let candidates: &[IntType] = if self.hex {
            &[
                IntType::signed(4),
                IntType::unsigned(4),
                IntType::signed(8),
                IntType::unsigned(8),
            ]
        } else {
            &[IntType::signed(4), IntType::signed(8), IntType::unsigned(8)]
        };
        candidates
            .iter()
            .copied()
            .find(|t| {
                let bits = 8 * u32::from(t.bytes) - u32::from(t.signed);
                magnitude < (1u128 << bits)
            })
            .unwrap_or(IntType::unsigned(8))
    }

    /// The literal's value in its own C type (`-` of an unsigned constant wraps).
    fn typed_value(self) -> (IntType, i128) {
        let ty = self.c_type();
        (ty, ty.convert(self.value))
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hex {
            let sign = if self.value < 0 { "-" } else { "" };
            write!(f, "{sign}{:#x}", self.value.unsigned_abs())
        } else {
            write!(f, "{}", self.value)
        }
    }
}

/// `value OP literal` resolved for the value's C type: what the in-kernel filter and hwbp's
/// own test both run on the value's raw bits.
///
/// The value's `bytes` are widened to 64 bits ([`extend_signed`](Self::extend_signed):
/// sign-, else zero-extension), cut to 32 bits when the comparison's common type is a 32-bit
/// unsigned ([`narrow_to_32`](Self::narrow_to_32)), and compared with
/// [`operand`](Self::operand) as signed or unsigned 64-bit integers
/// ([`compare_signed`](Self::compare_signed)). `&MASK` tests `(value & operand) != 0` on the
/// widened value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntCondition {
    /// The comparison.
    pub op: CompareOp,
    /// The literal converted to the common type, as 64 bits.
    pub operand: u64,
    /// The width of the value compared, in bytes.
    pub bytes: u8,
    /// Widen the value by sign extension (a signed type).
    pub extend_signed: bool,
    /// Keep only the low 32 bits of the widened value (an `unsigned int` common type).
    pub narrow_to_32: bool,
    /// Compare as signed 64-bit integers (a signed common type).
    pub compare_signed: bool,
}

impl IntCondition {
    /// `value OP literal` as C evaluates it for a value of type `value`.
    pub fn resolve(op: CompareOp, literal: Literal, value: IntType) -> IntCondition {
        let (literal_type, literal_value) = literal.typed_value();
        let common = IntType::common(value.promoted(), literal_type);
        let operand = common.convert(literal_value);
        IntCondition {
            op,
            operand: operand as i64 as u64,
            bytes: value.bytes,
            extend_signed: value.signed,
            narrow_to_32: !common.signed && common.bytes == 4,
            compare_signed: common.signed,
        }
    }

    /// The value's raw bits (its low [`bytes`](Self::bytes)), widened as the condition says.
    pub fn widen(&self, raw: u64) -> u64 {
        let wide = if self.extend_signed {
            sign_extend(raw, self.bytes) as u64
        } else {
            truncate(raw, self.bytes)
        };
        if self.narrow_to_32 {
            wide & 0xffff_ffff
        } else {
            wide
        }
    }

    /// Whether a value with raw bits `raw` satisfies the condition.
    pub fn holds(&self, raw: u64) -> bool {
        let lhs = self.widen(raw);
        let any_bit = || lhs & self.operand != 0;
        if self.compare_signed {
            self.op.apply(lhs as i64, self.operand as i64, any_bit)
        } else {
            self.op.apply(lhs, self.operand, any_bit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(op: CompareOp, literal: &str, ty: IntType) -> IntCondition {
        IntCondition::resolve(op, Literal::parse(literal).unwrap(), ty)
    }

    #[test]
    fn literals_parse_as_c_writes_them() {
        assert_eq!(
            Literal::parse("-1"),
            Some(Literal {
                value: -1,
                hex: false
            })
        );
        assert_eq!(Literal::parse("0xff").unwrap().value, 255);
        assert!(Literal::parse("0xff").unwrap().hex);
        assert_eq!(Literal::parse("-0x10").unwrap().value, -16);
        assert_eq!(
            Literal::parse("18446744073709551615").unwrap().value,
            u64::MAX as i128
        );
        for bad in ["", "x", "0x", "1.5", "--1", "0xg", "18446744073709551616"] {
            assert_eq!(Literal::parse(bad), None, "{bad}");
        }
        assert_eq!(Literal::parse("-0x10").unwrap().to_string(), "-0x10");
        assert_eq!(Literal::parse("42").unwrap().to_string(), "42");
    }

    #[test]
    fn an_unsigned_int_compares_unsigned_whatever_the_spelling() {
        let u32_ = IntType::unsigned(4);
        // The sequence: 3, 0xffffffff, 5, 6, 0, 4000000000, 2.
        let values = [3u64, 0xffff_ffff, 5, 6, 0, 4_000_000_000, 2];
        let count = |cond: IntCondition| values.iter().filter(|&&v| cond.holds(v)).count();
        assert_eq!(count(c(CompareOp::Less, "0", u32_)), 0);
        assert_eq!(count(c(CompareOp::Greater, "5", u32_)), 3);
        assert_eq!(count(c(CompareOp::LessEqual, "5", u32_)), 4);
        assert_eq!(count(c(CompareOp::GreaterEqual, "6", u32_)), 3);
        assert_eq!(count(c(CompareOp::Greater, "-1", u32_)), 0);
        assert_eq!(count(c(CompareOp::Equal, "-1", u32_)), 1);
        // 4294967296 is a long: the unsigned int converts to long, nothing reaches it.
        assert_eq!(count(c(CompareOp::Less, "4294967296", u32_)), 7);
    }

    #[test]
    fn narrow_types_are_promoted_to_int() {
        let u8_ = IntType::unsigned(1);
        let i8_ = IntType::signed(1);
        let gt_minus_one = c(CompareOp::Greater, "-1", u8_);
        assert!(gt_minus_one.compare_signed && gt_minus_one.holds(0xff));
        assert!(c(CompareOp::Less, "0", i8_).holds(0x80));
        assert!(!c(CompareOp::Less, "0", u8_).holds(0x80));
        // A signed char of -1 becomes UINT_MAX against an unsigned int constant.
        let eq = c(CompareOp::Equal, "0xffffffff", i8_);
        assert!(eq.narrow_to_32 && eq.holds(0xff));
        assert!(!c(CompareOp::Equal, "0xffffffff", IntType::signed(8)).holds(u64::MAX));
    }

    #[test]
    fn signed_types_compare_signed_and_masks_test_bits() {
        let i32_ = IntType::signed(4);
        assert!(c(CompareOp::Less, "0", i32_).holds(0xffff_ffff));
        assert!(!c(CompareOp::Less, "0", i32_).holds(0x7fff_ffff));
        // 0x80000000 is an unsigned int: an int compares unsigned against it.
        assert!(c(CompareOp::GreaterEqual, "0x80000000", i32_).holds(0xffff_ffff));
        let mask = c(CompareOp::AnyBit, "0x80", IntType::unsigned(8));
        assert!(mask.holds(0x81) && !mask.holds(0x7f));
        assert_eq!(sign_extend(0xfe, 1), -2);
        assert_eq!(truncate(0x1_0000_00fe, 4), 0xfe);
        assert_eq!(CompareOp::split(" <= 5"), Some((CompareOp::LessEqual, "5")));
        assert_eq!(CompareOp::split("&0x80"), Some((CompareOp::AnyBit, "0x80")));
        assert_eq!(CompareOp::split("=5"), None);
    }
}
