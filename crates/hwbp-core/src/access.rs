//! What a breakpoint fires on.
//!
//! [`BpType`] is the kernel's `bp_type` bit set (`HW_BREAKPOINT_EMPTY/R/W/X/INVALID`,
//! `include/uapi/linux/hw_breakpoint.h`); [`Access`] is the user-facing, always-valid subset.

use core::fmt;

/// The kernel's `bp_type` field: a bit set of `HW_BREAKPOINT_R` (1), `_W` (2) and `_X` (4).
///
/// Not every combination is valid: `EMPTY` (0) and anything mixing X with R or W
/// (`INVALID` = 7 and friends) are refused by the kernel with `EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BpType(pub u32);

impl BpType {
    /// `HW_BREAKPOINT_EMPTY`.
    pub const EMPTY: BpType = BpType(0);
    /// `HW_BREAKPOINT_R`.
    pub const R: BpType = BpType(1);
    /// `HW_BREAKPOINT_W`.
    pub const W: BpType = BpType(2);
    /// `HW_BREAKPOINT_RW`.
    pub const RW: BpType = BpType(3);
    /// `HW_BREAKPOINT_X`.
    pub const X: BpType = BpType(4);
    /// `HW_BREAKPOINT_INVALID` (`RW | X`).
    pub const INVALID: BpType = BpType(7);

    /// True for data breakpoints (`bp_type & HW_BREAKPOINT_RW`): the kernel's `find_slot_idx`
    /// puts these in the `TYPE_DATA` constraint space, everything else in `TYPE_INST`.
    pub const fn is_data(self) -> bool {
        self.0 & Self::RW.0 != 0
    }

    /// The valid access this bit set names, if any.
    pub const fn access(self) -> Option<Access> {
        match self.0 {
            1 => Some(Access::Read),
            2 => Some(Access::Write),
            3 => Some(Access::ReadWrite),
            4 => Some(Access::Execute),
            _ => None,
        }
    }
}

/// What a watchpoint or breakpoint fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Data reads only (`r`). Not available on x86, which can only watch writes or reads+writes.
    Read,
    /// Data writes (`w`).
    Write,
    /// Data reads and writes (`rw`).
    ReadWrite,
    /// Instruction execution (`x`).
    Execute,
}

impl Access {
    /// The kernel `bp_type` bits for this access.
    pub const fn bp_type(self) -> BpType {
        match self {
            Access::Read => BpType::R,
            Access::Write => BpType::W,
            Access::ReadWrite => BpType::RW,
            Access::Execute => BpType::X,
        }
    }

    /// The short letters tools use for this access (`r`, `w`, `rw`, `x`).
    pub const fn letters(self) -> &'static str {
        match self {
            Access::Read => "r",
            Access::Write => "w",
            Access::ReadWrite => "rw",
            Access::Execute => "x",
        }
    }

    /// Parses `r`, `w`, `rw`/`wr`, `x`, and perf's `[rwx]{1,3}` with no letter repeated.
    /// An empty string is perf's default, `rw`.
    pub fn parse_letters(s: &str) -> Result<Access, AccessParseError> {
        let mut bits = 0u32;
        for c in s.chars() {
            let bit = match c {
                'r' => 1,
                'w' => 2,
                'x' => 4,
                other => return Err(AccessParseError::UnknownLetter(other)),
            };
            if bits & bit != 0 {
                return Err(AccessParseError::Repeated(c));
            }
            bits |= bit;
        }
        if bits == 0 {
            return Ok(Access::ReadWrite);
        }
        BpType(bits)
            .access()
            .ok_or(AccessParseError::ExecuteWithData)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.letters())
    }
}

/// Why an access string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessParseError {
    /// A letter other than `r`, `w`, `x`.
    UnknownLetter(char),
    /// A letter given twice.
    Repeated(char),
    /// `x` combined with `r` or `w`: the kernel refuses these (`HW_BREAKPOINT_INVALID`).
    ExecuteWithData,
}

impl fmt::Display for AccessParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessParseError::UnknownLetter(c) => {
                write!(f, "unknown access letter '{c}': use r, w, rw or x")
            }
            AccessParseError::Repeated(c) => {
                write!(f, "access letter '{c}' given twice: use r, w, rw or x")
            }
            AccessParseError::ExecuteWithData => f.write_str(
                "x cannot be combined with r or w in one breakpoint: use x alone, or r, w, rw",
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AccessParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_parse_like_perf() {
        assert_eq!(Access::parse_letters(""), Ok(Access::ReadWrite));
        assert_eq!(Access::parse_letters("r"), Ok(Access::Read));
        assert_eq!(Access::parse_letters("w"), Ok(Access::Write));
        assert_eq!(Access::parse_letters("wr"), Ok(Access::ReadWrite));
        assert_eq!(Access::parse_letters("x"), Ok(Access::Execute));
        assert_eq!(
            Access::parse_letters("rr"),
            Err(AccessParseError::Repeated('r'))
        );
        assert_eq!(
            Access::parse_letters("q"),
            Err(AccessParseError::UnknownLetter('q'))
        );
        assert_eq!(
            Access::parse_letters("rwx"),
            Err(AccessParseError::ExecuteWithData)
        );
    }

    #[test]
    fn data_types_use_the_data_constraint_space() {
        assert!(BpType::R.is_data() && BpType::W.is_data() && BpType::RW.is_data());
        assert!(!BpType::X.is_data() && !BpType::EMPTY.is_data());
        for a in [
            Access::Read,
            Access::Write,
            Access::ReadWrite,
            Access::Execute,
        ] {
            assert_eq!(a.bp_type().access(), Some(a));
        }
    }
}
