//! Watch specs: the strings a user types to say what to watch.
//!
//! Three syntaxes are accepted, told apart by their prefix:
//!
//! | syntax | form | defaults |
//! |---|---|---|
//! | native | `SYMBOL[+OFF][/LEN][:ACCESS]`, `0xADDR[+OFF][/LEN][:ACCESS]` | access `w`, len unset |
//! | perf | `mem:ADDR[/LEN][:ACCESS][:MODIFIERS]` | access `rw`, len 4 (`x`: `sizeof(long)`) |
//! | bpftrace | `watchpoint:ADDR:LEN:MODE`, `w:ADDR:LEN:MODE` | none: all fields required |
//!
//! The perf form follows `tools/perf/util/parse-events.{l,y,c}` (the `<mem>` lexer state,
//! `parse_breakpoint_type`, event modifiers) and reproduces the breakpoint cases of
//! `tools/perf/tests/parse-events.c`. The bpftrace form follows bpftrace's `watchpoint` probe
//! (length 1, 2, 4 or 8; mode letters without repeats).
//!
//! Native specs answer "who wrote this?", so their default access is `w`; their length is left
//! to the caller (the symbol's size, or 8).

use alloc::string::{String, ToString};
use core::fmt;

use crate::access::{Access, AccessParseError};

/// perf's `default_breakpoint_len()` for execute breakpoints: `sizeof(long)`, except 4 on
/// aarch64 (where instructions are 4 bytes).
pub const PERF_DEFAULT_EXEC_LEN: u64 = if cfg!(target_arch = "aarch64") {
    4
} else {
    core::mem::size_of::<usize>() as u64
};

/// perf's default length for data breakpoints (`HW_BREAKPOINT_LEN_4`).
pub const PERF_DEFAULT_DATA_LEN: u64 = 4;

/// Where to watch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchLocation {
    /// A numeric address (any `+OFF` already added).
    Address(u64),
    /// A symbol name to resolve, plus a byte offset from it.
    Symbol {
        /// The name as typed (`counter`, `my_crate::STATE`, `obj.field$1`).
        name: String,
        /// `+OFF`, 0 when absent.
        offset: u64,
    },
}

/// Which syntax a spec was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecSyntax {
    /// `SYMBOL[+OFF][/LEN][:ACCESS]` or `0xADDR...`.
    Native,
    /// perf's `mem:ADDR[/LEN][:ACCESS][:MODIFIERS]`.
    Perf,
    /// bpftrace's `watchpoint:ADDR:LEN:MODE` / `w:ADDR:LEN:MODE`.
    Bpftrace,
}

/// A parsed watch spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchSpec {
    /// What to watch.
    pub location: WatchLocation,
    /// Bytes to watch; `None` when the native form gave no `/LEN`.
    pub len: Option<u64>,
    /// What to fire on.
    pub access: Access,
    /// The syntax used.
    pub syntax: SpecSyntax,
    /// `exclude_user` from perf modifiers (`k`, `h`).
    pub exclude_user: bool,
    /// `exclude_kernel` from perf modifiers (`u`, `h`).
    pub exclude_kernel: bool,
    /// `exclude_hv` from perf modifiers (`u`, `k`).
    pub exclude_hv: bool,
    /// `precise_ip` from perf's `p` modifiers (0..=3).
    pub precise: u8,
    /// The spec exactly as given.
    pub text: String,
}

/// Which number in a spec was bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecField {
    /// The address.
    Address,
    /// `+OFF`.
    Offset,
    /// `/LEN` or bpftrace's `LEN`.
    Length,
}

impl SpecField {
    fn name(self) -> &'static str {
        match self {
            SpecField::Address => "address",
            SpecField::Offset => "offset",
            SpecField::Length => "length",
        }
    }
}

/// What is wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// Nothing was given.
    Empty,
    /// No symbol or address before `+`, `/` or `:`.
    MissingLocation,
    /// A field that should be a number is not one (`token` is what was there).
    NotANumber {
        /// Which field.
        field: SpecField,
        /// The text found.
        token: String,
        /// Text before the field, to build an example with.
        before: String,
    },
    /// A number too large for 64 bits.
    TooLarge {
        /// Which field.
        field: SpecField,
        /// The text found.
        token: String,
    },
    /// `/0`.
    ZeroLength,
    /// Address plus offset does not fit in 64 bits.
    AddressOverflow,
    /// A symbol with a character no symbol has.
    BadSymbol {
        /// The symbol text.
        name: String,
        /// The first offending character.
        bad: char,
    },
    /// `:` with nothing after it.
    EmptyAccess,
    /// The access letters are wrong.
    BadAccess {
        /// The letters given.
        token: String,
        /// Why.
        reason: AccessParseError,
    },
    /// Text after the last field.
    Trailing {
        /// The extra text.
        extra: String,
    },
    /// perf's `mem:` was given something that is not a number as the address.
    PerfSymbol {
        /// The address text.
        token: String,
    },
    /// perf config terms (`/name=.../`) are not supported.
    PerfConfigTerms,
    /// A perf event modifier hwbp does not support.
    UnsupportedModifier(char),
    /// Access letters and modifiers run together (`mem:0:wu`).
    AccessWithModifiers {
        /// The field as given.
        token: String,
    },
    /// More than three `p` modifiers.
    TooPrecise,
    /// bpftrace form with the wrong number of fields.
    BpftraceFields {
        /// Fields found after the probe name.
        found: usize,
    },
    /// bpftrace length not 1, 2, 4 or 8.
    BpftraceLength(u64),
}

/// A spec that could not be parsed: the spec text plus what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The spec as given.
    pub text: String,
    /// The problem.
    pub kind: SpecErrorKind,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SpecErrorKind as K;
        write!(f, "bad watch spec '{}': ", self.text)?;
        match &self.kind {
            K::Empty => f.write_str(
                "nothing to watch: give a symbol or address, e.g. counter, counter/4:w or 0x1000/8",
            ),
            K::MissingLocation => f.write_str(
                "no symbol or address before '+', '/' or ':': start with a name or an address, \
                 e.g. counter/4:w",
            ),
            K::NotANumber {
                field: SpecField::Length,
                token,
                before,
            } => write!(
                f,
                "length '{token}' is not a number: write LEN as 1, 2, 4 or 8 (e.g. {before}/4)"
            ),
            K::NotANumber {
                field: SpecField::Offset,
                token,
                before,
            } => write!(
                f,
                "offset '{token}' is not a number: write OFF in decimal or 0x-hex (e.g. \
                 {before}+8)"
            ),
            K::NotANumber { field, token, .. } => write!(
                f,
                "{} '{token}' is not a number: write it in decimal or 0x-hex (e.g. 0x601040)",
                field.name()
            ),
            K::TooLarge { field, token } => write!(
                f,
                "{} '{token}' does not fit in 64 bits: use a smaller value",
                field.name()
            ),
            K::ZeroLength => f.write_str("length 0 watches nothing: use 1, 2, 4 or 8"),
            K::AddressOverflow => f.write_str(
                "address plus offset is past the end of the address space: use a smaller offset",
            ),
            K::BadSymbol { name, bad } => write!(
                f,
                "'{name}' is not a symbol name ('{bad}' is not allowed): use letters, digits, \
                 '_', '.', '$' and '::', or a 0x address"
            ),
            K::EmptyAccess => {
                f.write_str("nothing after ':': give an access, one of r, w, rw or x")
            }
            K::BadAccess { token, reason } => write!(f, "access '{token}': {reason}"),
            K::Trailing { extra } => write!(
                f,
                "unexpected '{extra}' at the end: the forms are NAME[+OFF][/LEN][:ACCESS], \
                 mem:ADDR[/LEN][:ACCESS][:u|k|h|p] and watchpoint:ADDR:LEN:MODE"
            ),
            K::PerfSymbol { token } => write!(
                f,
                "perf's mem: takes a numeric address, not '{token}': write mem:0xADDR, or \
                 use the native form {token}:w to watch a symbol"
            ),
            K::PerfConfigTerms => f.write_str(
                "perf config terms like /name=.../ are not supported: drop them, e.g. \
                 mem:0x1000/8:w",
            ),
            K::UnsupportedModifier(c) => write!(
                f,
                "event modifier '{c}' is not supported: use u (user only), k (kernel only), \
                 h (hypervisor only) or p (precise)"
            ),
            K::AccessWithModifiers { token } => write!(
                f,
                "'{token}' mixes access letters and modifiers: put modifiers after a second \
                 colon, e.g. mem:0x1000:w:u"
            ),
            K::TooPrecise => f.write_str("at most three 'p' modifiers: use p, pp or ppp"),
            K::BpftraceFields { found } => write!(
                f,
                "bpftrace watchpoints have 3 fields after the probe name, found {found}: write \
                 watchpoint:ADDR:LEN:MODE, e.g. watchpoint:0x1000:8:w"
            ),
            K::BpftraceLength(len) => write!(
                f,
                "bpftrace watchpoint length {len} is not supported: use 1, 2, 4 or 8"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SpecError {}

/// Why a number did not parse.
enum NumberError {
    NotANumber,
    TooLarge,
}

/// Decimal or `0x`-hex, as perf's lexer (`[0-9]+`, `0x[a-fA-F0-9]+`) and `strtoull` take them.
fn parse_number(s: &str) -> Result<u64, NumberError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumberError::NotANumber);
    }
    u64::from_str_radix(digits, radix).map_err(|_| NumberError::TooLarge)
}

/// Strips `prefix` (which ends in `:`) unless what follows is another `:` (a Rust path such as
/// `mem::swap`).
fn strip_probe<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.strip_prefix(prefix).filter(|rest| !rest.starts_with(':'))
}

/// The first `:` that is not half of a `::`.
fn single_colon(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if bytes.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

fn valid_symbol(name: &str) -> Result<(), char> {
    for segment in name.split("::") {
        if segment.is_empty() {
            return Err(':');
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$')))
        {
            return Err(bad);
        }
    }
    Ok(())
}

struct Parser<'a> {
    text: &'a str,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: SpecErrorKind) -> SpecError {
        SpecError {
            text: self.text.to_string(),
            kind,
        }
    }

    fn number(&self, token: &str, field: SpecField, before: &str) -> Result<u64, SpecError> {
        parse_number(token).map_err(|e| match e {
            NumberError::NotANumber => self.err(SpecErrorKind::NotANumber {
                field,
                token: token.to_string(),
                before: before.to_string(),
            }),
            NumberError::TooLarge => self.err(SpecErrorKind::TooLarge {
                field,
                token: token.to_string(),
            }),
        })
    }

    fn access(&self, token: &str) -> Result<Access, SpecError> {
        if token.is_empty() {
            return Err(self.err(SpecErrorKind::EmptyAccess));
        }
        Access::parse_letters(token).map_err(|reason| {
            self.err(SpecErrorKind::BadAccess {
                token: token.to_string(),
                reason,
            })
        })
    }

    fn spec(&self, location: WatchLocation, len: Option<u64>, access: Access) -> WatchSpec {
        WatchSpec {
            location,
            len,
            access,
            syntax: SpecSyntax::Native,
            exclude_user: false,
            exclude_kernel: false,
            exclude_hv: false,
            precise: 0,
            text: self.text.to_string(),
        }
    }

    /// `LOCATION[+OFF][/LEN][:ACCESS]`.
    fn native(&self, s: &str) -> Result<WatchSpec, SpecError> {
        let (head, access) = match single_colon(s) {
            Some(i) => {
                let access_text = &s[i + 1..];
                if let Some(j) = access_text.find(':') {
                    return Err(self.err(SpecErrorKind::Trailing {
                        extra: access_text[j..].to_string(),
                    }));
                }
                (&s[..i], self.access(access_text)?)
            }
            None => (s, Access::Write),
        };
        let (place, len) = match head.split_once('/') {
            Some((place, len_text)) => {
                let len = self.number(len_text, SpecField::Length, place)?;
                if len == 0 {
                    return Err(self.err(SpecErrorKind::ZeroLength));
                }
                (place, Some(len))
            }
            None => (head, None),
        };
        let (base, offset) = match place.split_once('+') {
            Some((base, off)) => (base, self.number(off, SpecField::Offset, base)?),
            None => (place, 0),
        };
        if base.is_empty() {
            return Err(self.err(SpecErrorKind::MissingLocation));
        }
        let location = if base.starts_with(|c: char| c.is_ascii_digit()) {
            let addr = self.number(base, SpecField::Address, "")?;
            let addr = addr
                .checked_add(offset)
                .ok_or_else(|| self.err(SpecErrorKind::AddressOverflow))?;
            WatchLocation::Address(addr)
        } else {
            valid_symbol(base).map_err(|bad| {
                self.err(SpecErrorKind::BadSymbol {
                    name: base.to_string(),
                    bad,
                })
            })?;
            WatchLocation::Symbol {
                name: base.to_string(),
                offset,
            }
        };
        Ok(self.spec(location, len, access))
    }

    /// After `mem:`: `ADDR[/LEN][:ACCESS][:MODIFIERS]`.
    fn perf(&self, s: &str) -> Result<WatchSpec, SpecError> {
        let addr_end = s.find([':', '/']).unwrap_or(s.len());
        let addr_text = &s[..addr_end];
        if addr_text.is_empty() {
            return Err(self.err(SpecErrorKind::MissingLocation));
        }
        let addr = match parse_number(addr_text) {
            Ok(addr) => addr,
            Err(NumberError::TooLarge) => {
                return Err(self.err(SpecErrorKind::TooLarge {
                    field: SpecField::Address,
                    token: addr_text.to_string(),
                }))
            }
            Err(NumberError::NotANumber) => {
                return Err(self.err(SpecErrorKind::PerfSymbol {
                    token: addr_text.to_string(),
                }))
            }
        };
        let mut rest = &s[addr_end..];
        let mut len = 0;
        if let Some(after) = rest.strip_prefix('/') {
            let end = after.find([':', '/']).unwrap_or(after.len());
            let len_text = &after[..end];
            if len_text.contains('=') || after[end..].starts_with('/') {
                return Err(self.err(SpecErrorKind::PerfConfigTerms));
            }
            len = self.number(len_text, SpecField::Length, &s[..addr_end])?;
            rest = &after[end..];
        }
        let mut access = Access::ReadWrite;
        let mut modifiers = "";
        if let Some(after) = rest.strip_prefix(':') {
            let (first, more) = match after.find(':') {
                Some(i) => (&after[..i], Some(&after[i + 1..])),
                None => (after, None),
            };
            let is_access = |t: &str| {
                !t.is_empty() && t.len() <= 3 && t.chars().all(|c| matches!(c, 'r' | 'w' | 'x'))
            };
            if is_access(first) {
                access = self.access(first)?;
                if let Some(m) = more {
                    if m.is_empty() {
                        return Err(self.err(SpecErrorKind::Trailing {
                            extra: ":".to_string(),
                        }));
                    }
                    modifiers = m;
                }
            } else if first.is_empty() {
                return Err(self.err(SpecErrorKind::EmptyAccess));
            } else if first.chars().all(|c| matches!(c, 'r' | 'w' | 'x')) {
                // More than three letters: some letter repeats, which perf refuses.
                return Err(self.access(first).err().unwrap_or_else(|| {
                    self.err(SpecErrorKind::Trailing {
                        extra: first.to_string(),
                    })
                }));
            } else if first.starts_with(['r', 'w', 'x']) {
                // The lexer takes the r/w/x run as the access; letters glued on are an error.
                return Err(self.err(SpecErrorKind::AccessWithModifiers {
                    token: first.to_string(),
                }));
            } else {
                if let Some(m) = more {
                    return Err(self.err(SpecErrorKind::Trailing {
                        extra: alloc::format!(":{m}"),
                    }));
                }
                modifiers = first;
            }
            if modifiers.contains('/') {
                return Err(self.err(SpecErrorKind::PerfConfigTerms));
            }
            if modifiers.contains(':') {
                let i = modifiers.find(':').unwrap_or(0);
                return Err(self.err(SpecErrorKind::Trailing {
                    extra: modifiers[i..].to_string(),
                }));
            }
        } else if rest.starts_with('/') {
            return Err(self.err(SpecErrorKind::PerfConfigTerms));
        } else if !rest.is_empty() {
            return Err(self.err(SpecErrorKind::Trailing {
                extra: rest.to_string(),
            }));
        }

        // perf's get_event_modifier: the first of u/k/h excludes everything, then each letter
        // re-includes its own level.
        let (mut eu, mut ek, mut eh, mut exclude) = (false, false, false, false);
        let mut precise = 0u8;
        for c in modifiers.chars() {
            match c {
                'u' | 'k' | 'h' => {
                    if !exclude {
                        exclude = true;
                        (eu, ek, eh) = (true, true, true);
                    }
                    match c {
                        'u' => eu = false,
                        'k' => ek = false,
                        _ => eh = false,
                    }
                }
                'p' => {
                    precise += 1;
                    if precise > 3 {
                        return Err(self.err(SpecErrorKind::TooPrecise));
                    }
                }
                other => return Err(self.err(SpecErrorKind::UnsupportedModifier(other))),
            }
        }

        if len == 0 {
            len = if access == Access::Execute {
                PERF_DEFAULT_EXEC_LEN
            } else {
                PERF_DEFAULT_DATA_LEN
            };
        }
        Ok(WatchSpec {
            syntax: SpecSyntax::Perf,
            exclude_user: eu,
            exclude_kernel: ek,
            exclude_hv: eh,
            precise,
            ..self.spec(WatchLocation::Address(addr), Some(len), access)
        })
    }

    /// After `watchpoint:` or `w:`: `ADDR:LEN:MODE`.
    fn bpftrace(&self, s: &str) -> Result<WatchSpec, SpecError> {
        let mut fields = s.split(':');
        let (Some(addr), Some(len), Some(mode), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(self.err(SpecErrorKind::BpftraceFields {
                found: s.split(':').count(),
            }));
        };
        let addr = self.number(addr, SpecField::Address, "")?;
        let len = self.number(len, SpecField::Length, "")?;
        if !matches!(len, 1 | 2 | 4 | 8) {
            return Err(self.err(SpecErrorKind::BpftraceLength(len)));
        }
        let access = self.access(mode)?;
        Ok(WatchSpec {
            syntax: SpecSyntax::Bpftrace,
            ..self.spec(WatchLocation::Address(addr), Some(len), access)
        })
    }
}

impl WatchSpec {
    /// Parses a native, perf (`mem:`) or bpftrace (`watchpoint:`, `w:`) watch spec.
    /// Surrounding whitespace is ignored. Never panics.
    pub fn parse(text: &str) -> Result<WatchSpec, SpecError> {
        let parser = Parser { text };
        let s = text.trim();
        if s.is_empty() {
            return Err(parser.err(SpecErrorKind::Empty));
        }
        if let Some(rest) = strip_probe(s, "mem:") {
            return parser.perf(rest);
        }
        for probe in ["watchpoint:", "w:"] {
            // `w:rw` is the native symbol `w`; bpftrace needs more fields.
            if let Some(rest) = strip_probe(s, probe).filter(|r| r.contains(':')) {
                return parser.bpftrace(rest);
            }
        }
        parser.native(s)
    }
}

impl core::str::FromStr for WatchSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<WatchSpec, SpecError> {
        WatchSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> WatchSpec {
        WatchSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn kind(s: &str) -> SpecErrorKind {
        WatchSpec::parse(s).unwrap_err().kind
    }

    fn sym(name: &str, offset: u64) -> WatchLocation {
        WatchLocation::Symbol {
            name: name.to_string(),
            offset,
        }
    }

    #[test]
    fn native_forms() {
        let s = parse("counter");
        assert_eq!(s.location, sym("counter", 0));
        assert_eq!(
            (s.len, s.access, s.syntax),
            (None, Access::Write, SpecSyntax::Native)
        );
        assert!(!s.exclude_user && !s.exclude_kernel);
        assert_eq!(s.text, "counter");

        let s = parse("counter+0x10/4:rw");
        assert_eq!(s.location, sym("counter", 16));
        assert_eq!((s.len, s.access), (Some(4), Access::ReadWrite));

        let s = parse("my_crate::state::COUNT/8:r");
        assert_eq!(s.location, sym("my_crate::state::COUNT", 0));
        assert_eq!((s.len, s.access), (Some(8), Access::Read));

        assert_eq!(parse("obj.field$1:wr").location, sym("obj.field$1", 0));
        assert_eq!(parse("obj.field$1:wr").access, Access::ReadWrite);
        assert_eq!(parse("_start:x").access, Access::Execute);

        let s = parse("0x601040+8/0x10");
        assert_eq!(s.location, WatchLocation::Address(0x601048));
        assert_eq!(s.len, Some(16));
        assert_eq!(parse("4096/2").location, WatchLocation::Address(4096));
        // symbols named like probes stay native
        assert_eq!(parse("w:rw").location, sym("w", 0));
        assert_eq!(parse("mem::swap").location, sym("mem::swap", 0));
        assert_eq!(parse("w::x:r").location, sym("w::x", 0));
        assert_eq!(parse("  counter/4  ").location, sym("counter", 0));
    }

    #[test]
    fn native_errors() {
        let e = WatchSpec::parse("foo/3x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad watch spec 'foo/3x': length '3x' is not a number: write LEN as 1, 2, 4 or 8 \
             (e.g. foo/4)"
        );
        assert_eq!(kind(""), SpecErrorKind::Empty);
        assert_eq!(kind("  "), SpecErrorKind::Empty);
        assert_eq!(kind("/4"), SpecErrorKind::MissingLocation);
        assert_eq!(kind("foo/0"), SpecErrorKind::ZeroLength);
        assert_eq!(kind("foo:"), SpecErrorKind::EmptyAccess);
        assert_eq!(
            kind("foo:q"),
            SpecErrorKind::BadAccess {
                token: "q".into(),
                reason: AccessParseError::UnknownLetter('q')
            }
        );
        assert_eq!(
            kind("foo:rwx"),
            SpecErrorKind::BadAccess {
                token: "rwx".into(),
                reason: AccessParseError::ExecuteWithData
            }
        );
        assert_eq!(
            kind("foo:w:u"),
            SpecErrorKind::Trailing { extra: ":u".into() }
        );
        assert_eq!(
            kind("foo bar"),
            SpecErrorKind::BadSymbol {
                name: "foo bar".into(),
                bad: ' '
            }
        );
        assert_eq!(
            kind("foo::"),
            SpecErrorKind::BadSymbol {
                name: "foo::".into(),
                bad: ':'
            }
        );
        assert!(matches!(
            kind("foo+x"),
            SpecErrorKind::NotANumber {
                field: SpecField::Offset,
                ..
            }
        ));
        assert!(matches!(
            kind("0x1g"),
            SpecErrorKind::NotANumber {
                field: SpecField::Address,
                ..
            }
        ));
        assert_eq!(
            kind("0x1ffffffffffffffff"),
            SpecErrorKind::TooLarge {
                field: SpecField::Address,
                token: "0x1ffffffffffffffff".into()
            }
        );
        assert_eq!(kind("0xffffffffffffffff+1"), SpecErrorKind::AddressOverflow);
    }

    /// One row of perf's `tools/perf/tests/parse-events.c` breakpoint cases.
    fn perf_row(input: &str, access: Access, len: u64, excl: (bool, bool, bool), precise: u8) {
        let s = parse(input);
        assert_eq!(s.syntax, SpecSyntax::Perf, "{input}");
        assert_eq!(s.location, WatchLocation::Address(0), "{input}");
        assert_eq!(s.access, access, "{input}");
        assert_eq!(s.len, Some(len), "{input}");
        assert_eq!(
            (s.exclude_user, s.exclude_kernel, s.exclude_hv),
            excl,
            "{input}"
        );
        assert_eq!(s.precise, precise, "{input}");
    }

    #[test]
    fn perf_parse_events_table() {
        const NONE: (bool, bool, bool) = (false, false, false);
        let x_len = PERF_DEFAULT_EXEC_LEN;
        perf_row("mem:0", Access::ReadWrite, 4, NONE, 0);
        perf_row("mem:0:x", Access::Execute, x_len, NONE, 0);
        perf_row("mem:0:r", Access::Read, 4, NONE, 0);
        perf_row("mem:0:w", Access::Write, 4, NONE, 0);
        perf_row("mem:0:rw", Access::ReadWrite, 4, NONE, 0);
        perf_row("mem:0:u", Access::ReadWrite, 4, (false, true, true), 0);
        perf_row("mem:0:x:k", Access::Execute, x_len, (true, false, true), 0);
        perf_row("mem:0:r:hp", Access::Read, 4, (true, true, false), 1);
        perf_row("mem:0:w:up", Access::Write, 4, (false, true, true), 1);
        perf_row("mem:0:rw:kp", Access::ReadWrite, 4, (true, false, true), 1);
        perf_row("mem:0/1", Access::ReadWrite, 1, NONE, 0);
        perf_row("mem:0/2:w", Access::Write, 2, NONE, 0);
        perf_row("mem:0/4:rw:u", Access::ReadWrite, 4, (false, true, true), 0);
        #[cfg(target_pointer_width = "64")]
        assert_eq!(x_len, if cfg!(target_arch = "aarch64") { 4 } else { 8 });
    }

    #[test]
    fn perf_details() {
        let s = parse("mem:0x601040/8:w");
        assert_eq!(s.location, WatchLocation::Address(0x601040));
        assert_eq!((s.len, s.access), (Some(8), Access::Write));
        // length 0 means the default
        assert_eq!(parse("mem:0x10/0:w").len, Some(4));
        assert_eq!(parse("mem:0x10/0:x").len, Some(PERF_DEFAULT_EXEC_LEN));
        // u and k together re-include both: only the hypervisor stays excluded
        let s = parse("mem:0:w:uk");
        assert_eq!(
            (s.exclude_user, s.exclude_kernel, s.exclude_hv),
            (false, false, true)
        );
        assert_eq!(parse("mem:0:ppp").precise, 3);
        assert_eq!(parse("mem:0:wr").access, Access::ReadWrite);
        assert_eq!(kind("mem:0:pppp"), SpecErrorKind::TooPrecise);
        assert_eq!(kind("mem:0:w:G"), SpecErrorKind::UnsupportedModifier('G'));
        assert_eq!(
            kind("mem:0:rr"),
            SpecErrorKind::BadAccess {
                token: "rr".into(),
                reason: AccessParseError::Repeated('r')
            }
        );
        assert_eq!(
            kind("mem:0:rwx"),
            SpecErrorKind::BadAccess {
                token: "rwx".into(),
                reason: AccessParseError::ExecuteWithData
            }
        );
        assert_eq!(
            kind("mem:0:wu"),
            SpecErrorKind::AccessWithModifiers { token: "wu".into() }
        );
        assert_eq!(kind("mem:0:"), SpecErrorKind::EmptyAccess);
        assert_eq!(
            kind("mem:0:w:"),
            SpecErrorKind::Trailing { extra: ":".into() }
        );
        assert_eq!(
            kind("mem:0:u:w"),
            SpecErrorKind::Trailing { extra: ":w".into() }
        );
        assert_eq!(kind("mem:0/name=bp/"), SpecErrorKind::PerfConfigTerms);
        assert_eq!(kind("mem:0/4/name=bp/"), SpecErrorKind::PerfConfigTerms);
        assert_eq!(kind("mem:"), SpecErrorKind::MissingLocation);
        assert_eq!(
            kind("mem:jiffies:rw"),
            SpecErrorKind::PerfSymbol {
                token: "jiffies".into()
            }
        );
        assert_eq!(
            kind("mem:0x10q"),
            SpecErrorKind::PerfSymbol {
                token: "0x10q".into()
            }
        );
        assert!(WatchSpec::parse("mem:jiffies")
            .unwrap_err()
            .to_string()
            .contains("use the native form jiffies:w"));
    }

    #[test]
    fn bpftrace_forms() {
        let s = parse("watchpoint:0x10000000:8:rw");
        assert_eq!(s.location, WatchLocation::Address(0x1000_0000));
        assert_eq!(
            (s.len, s.access, s.syntax),
            (Some(8), Access::ReadWrite, SpecSyntax::Bpftrace)
        );
        let s = parse("w:4096:1:r");
        assert_eq!(
            (s.location, s.len, s.access),
            (WatchLocation::Address(4096), Some(1), Access::Read)
        );
        assert_eq!(
            kind("watchpoint:0x1000:3:w"),
            SpecErrorKind::BpftraceLength(3)
        );
        assert_eq!(
            kind("watchpoint:0x1000:8"),
            SpecErrorKind::BpftraceFields { found: 2 }
        );
        assert_eq!(
            kind("w:0x1000:8:w:x"),
            SpecErrorKind::BpftraceFields { found: 4 }
        );
        assert_eq!(
            kind("watchpoint:0x1000:8:ww"),
            SpecErrorKind::BadAccess {
                token: "ww".into(),
                reason: AccessParseError::Repeated('w')
            }
        );
        assert_eq!(kind("watchpoint:0x1000:8:"), SpecErrorKind::EmptyAccess);
    }

    #[test]
    fn every_error_reads_as_one_line_of_advice() {
        for bad in [
            "",
            "/4",
            "foo/0",
            "foo:",
            "foo:q",
            "foo:w:u",
            "foo bar",
            "foo+x",
            "0x1g",
            "0x1ffffffffffffffff",
            "0xffffffffffffffff+1",
            "mem:0:pppp",
            "mem:0:w:G",
            "mem:0:wu",
            "mem:0/name=bp/",
            "mem:jiffies",
            "watchpoint:0x1000:3:w",
            "watchpoint:0x1000:8",
        ] {
            let msg = WatchSpec::parse(bad).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("bad watch spec '{bad}': ")),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains(':'), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = WatchSpec::parse(&s);
        }

        #[test]
        fn never_panics_on_spec_like_strings(s in "(mem:|w:|watchpoint:)?[a-z0-9x:/+_.$]{0,20}") {
            if let Ok(spec) = WatchSpec::parse(&s) {
                prop_assert_eq!(spec.text, s);
            }
        }

        #[test]
        fn native_round_trip(addr in any::<u32>(), len in 1u64..64) {
            let spec = parse(&format!("{addr:#x}/{len}:rw"));
            prop_assert_eq!(spec.location, WatchLocation::Address(addr as u64));
            prop_assert_eq!(spec.len, Some(len));
        }
    }
}
