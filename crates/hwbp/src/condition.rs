//! [`Condition`]: `--if EXPR`, a test on a hit's new value (`==N`, `!=N`, `<N`, `>N`, `&MASK`),
//! as gdb's `watch ... if` tests the new value.

use crate::error::{Error, Result};

/// A test on the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `==N`
    Equal(u64),
    /// `!=N`
    NotEqual(u64),
    /// `<N` (unsigned)
    Less(u64),
    /// `>N` (unsigned)
    Greater(u64),
    /// `&MASK`: some bit of MASK set.
    AnyBit(u64),
}

impl Condition {
    /// Parses `==N`, `!=N`, `<N`, `>N` or `&MASK` (N decimal, `0x` hex or negative decimal).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (make, rest): (fn(u64) -> Condition, &str) = if let Some(rest) = text.strip_prefix("==")
        {
            (Condition::Equal, rest)
        } else if let Some(rest) = text.strip_prefix("!=") {
            (Condition::NotEqual, rest)
        } else if let Some(rest) = text.strip_prefix('<') {
            (Condition::Less, rest)
        } else if let Some(rest) = text.strip_prefix('>') {
            (Condition::Greater, rest)
        } else if let Some(rest) = text.strip_prefix('&') {
            (Condition::AnyBit, rest)
        } else {
            return Err(Error::bad_input(format!(
                "--if {text:?}: start with ==, !=, <, > or &, e.g. --if '==42' or --if '&0x80'"
            )));
        };
        let rest = rest.trim();
        let number = match rest.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => rest
                .parse::<u64>()
                .ok()
                .or_else(|| rest.parse::<i64>().ok().map(|n| n as u64)),
        };
        number.map(make).ok_or_else(|| {
            Error::bad_input(format!(
                "--if {text:?}: {rest:?} is not a number: use decimal or 0x hex"
            ))
        })
    }

    /// Whether `value` satisfies the condition.
    pub fn holds(self, value: u64) -> bool {
        match self {
            Condition::Equal(n) => value == n,
            Condition::NotEqual(n) => value != n,
            Condition::Less(n) => value < n,
            Condition::Greater(n) => value > n,
            Condition::AnyBit(mask) => value & mask != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_test_the_new_value() {
        assert_eq!(Condition::parse("==42").unwrap(), Condition::Equal(42));
        assert_eq!(Condition::parse("!=0x10").unwrap(), Condition::NotEqual(16));
        assert_eq!(Condition::parse("<5").unwrap(), Condition::Less(5));
        assert_eq!(Condition::parse("> 7").unwrap(), Condition::Greater(7));
        assert_eq!(Condition::parse("&0x80").unwrap(), Condition::AnyBit(0x80));
        assert_eq!(
            Condition::parse("==-1").unwrap(),
            Condition::Equal(u64::MAX)
        );
        assert!(Condition::parse("=5").is_err());
        assert!(Condition::parse("==x").is_err());
        assert!(Condition::AnyBit(0x80).holds(0x81));
        assert!(!Condition::AnyBit(0x80).holds(0x7f));
        assert!(Condition::Less(5).holds(4) && !Condition::Less(5).holds(5));
        assert!(Condition::Greater(5).holds(6) && !Condition::Greater(5).holds(5));
    }
}
