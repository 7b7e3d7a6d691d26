//! Watch expressions: the parser and AST for what a user writes after `hwbp watch` when it is
//! more than a symbol (`cfg.limits[2].max`, `conn->state`, `*(int *)0x601040`,
//! `'parse.c'::depth`), told apart from the spec syntax `SYMBOL[+OFF][/LEN][:ACCESS]`,
//! `0xADDR...`, `mem:...` and `watchpoint:...` by its operators.
//!
//! The grammar is the subset of C expressions gdb's `watch` accepts for an lvalue with a
//! fixed address (gdb manual, "Expressions" and "Variables": `file::variable`,
//! `function::variable` and their quoted forms `'file.c'::var`, `'func'::var`), plus C++ and
//! Rust `::` paths:
//!
//! ```text
//! expr    := unary
//! unary   := '*' unary | '&' unary | '(' type ')' unary | postfix
//! postfix := primary ( '.' IDENT | '->' IDENT | '[' INT ']' )*
//! primary := INT | name | '(' expr ')'
//! name    := [ QUOTED '::' ] IDENT ( '::' IDENT )*
//! type    := WORD+ ( '::' IDENT )* '*'*        e.g. `unsigned long *`, `struct conn *`
//! INT     := decimal | 0x hex                   QUOTED := 'text'
//! ```
//!
//! Postfix operators bind tighter than prefix ones, as in C: `*p.f` is `*(p.f)`. Indices are
//! constants. A parenthesized group is a cast when it starts with a C type keyword (`struct`,
//! `unsigned`, `int`, ...) or ends with `*` (`(uint32_t *)`). [`Expr`]'s `Display` prints the
//! canonical text (minimal parentheses, hex integers), which [`parse`] reads back to the same
//! AST.
//!
//! ```
//! use hwbp_symbols::expr::{looks_like_expression, parse, split_access};
//! use hwbp_core::Access;
//!
//! let (text, access) = split_access("conn->peer->state:rw");
//! assert_eq!((text, access), ("conn->peer->state", Some(Access::ReadWrite)));
//! assert!(looks_like_expression(text));
//! assert!(!looks_like_expression("counter+8/4"));
//! let expr = parse("( * head ).next [0]").unwrap();
//! assert_eq!(expr.to_string(), "(*head).next[0]");
//! ```

use std::fmt;

use hwbp_core::Access;

/// A parsed watch expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A variable: `counter`, `ns::var`, `func::static_local`, `'file.c'::var`.
    Name(NamePath),
    /// An integer constant (an address, in a cast).
    Int(u64),
    /// `base.field`
    Member(Box<Expr>, String),
    /// `base->field`
    Arrow(Box<Expr>, String),
    /// `base[index]` with a constant index.
    Index(Box<Expr>, u64),
    /// `*base`
    Deref(Box<Expr>),
    /// `&base`
    AddrOf(Box<Expr>),
    /// `(T *)base`
    Cast(CastType, Box<Expr>),
}

/// A possibly scoped variable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePath {
    /// gdb's quoted scope: `'file.c'` or `'func'` (without the quotes).
    pub quoted: Option<String>,
    /// The `::`-separated segments; at least one.
    pub segments: Vec<String>,
}

impl NamePath {
    /// The segments joined with `::` (without the quoted scope).
    pub fn joined(&self) -> String {
        self.segments.join("::")
    }
}

/// The type of a cast: a base name and a number of `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastType {
    /// `unsigned long`, `struct conn`, `uint32_t`, `ns::Point` (words separated by one space).
    pub base: String,
    /// How many `*` follow the base (at least 1 for a watchable cast).
    pub pointers: u32,
}

impl fmt::Display for CastType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)?;
        if self.pointers > 0 {
            f.write_str(" ")?;
            for _ in 0..self.pointers {
                f.write_str("*")?;
            }
        }
        Ok(())
    }
}

impl Expr {
    /// Whether the expression is a prefix form (`*e`, `&e`, `(T *)e`), which needs parentheses
    /// as the operand of a postfix operator.
    fn is_prefix(&self) -> bool {
        matches!(self, Expr::Deref(_) | Expr::AddrOf(_) | Expr::Cast(..))
    }

    /// Whether evaluating the expression reads a pointer from memory (`->`, `*`, indexing a
    /// pointer): such an expression's address can change (gdb's value chain).
    pub fn dereferences(&self) -> bool {
        match self {
            Expr::Name(_) | Expr::Int(_) => false,
            Expr::Arrow(..) | Expr::Deref(_) => true,
            Expr::Member(base, _) | Expr::Index(base, _) | Expr::AddrOf(base) => {
                base.dereferences()
            }
            Expr::Cast(_, base) => base.dereferences(),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, e: &Expr| {
            if e.is_prefix() {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Name(path) => {
                if let Some(quoted) = &path.quoted {
                    write!(f, "'{quoted}'::")?;
                }
                f.write_str(&path.joined())
            }
            Expr::Int(n) => write!(f, "{n:#x}"),
            Expr::Member(base, field) => {
                operand(f, base)?;
                write!(f, ".{field}")
            }
            Expr::Arrow(base, field) => {
                operand(f, base)?;
                write!(f, "->{field}")
            }
            Expr::Index(base, index) => {
                operand(f, base)?;
                write!(f, "[{index}]")
            }
            Expr::Deref(base) => write!(f, "*{base}"),
            Expr::AddrOf(base) => write!(f, "&{base}"),
            Expr::Cast(ty, base) => write!(f, "({ty}){base}"),
        }
    }
}

/// Why an expression does not parse: the text, the byte position and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse watch expression '{input}' at column {}: {message}", position + 1)]
pub struct ParseError {
    /// The whole input.
    pub input: String,
    /// 0-based byte offset of the problem.
    pub position: usize,
    /// What was wrong and what would work.
    pub message: String,
}

/// Splits a trailing `:ACCESS` (`:r`, `:w`, `:rw`, `:wr`, `:x`) off a spec or expression. A
/// `::` path separator is never split (`ns::x` stays whole; `ns::x:w` splits).
pub fn split_access(spec: &str) -> (&str, Option<Access>) {
    let Some(colon) = spec.rfind(':') else {
        return (spec, None);
    };
    let (head, suffix) = (&spec[..colon], &spec[colon + 1..]);
    if head.is_empty() || head.ends_with(':') {
        return (spec, None);
    }
    let access = match suffix {
        "r" => Access::Read,
        "w" => Access::Write,
        "rw" | "wr" => Access::ReadWrite,
        "x" => Access::Execute,
        _ => return (spec, None),
    };
    (head, Some(access))
}

/// Whether `spec` (with or without its `:ACCESS` suffix) is a watch expression rather than the
/// spec syntax `SYMBOL[+OFF][/LEN]`, `0xADDR...`, `mem:...`, `watchpoint:...`.
///
/// An expression uses one of `.` `->` `[` `*` `(` `&` `'`. Not expressions: the perf and
/// bpftrace forms, specs with `+OFF`/`/LEN`, gcc's local symbol names such as `depth.1` (a
/// name, `.` and digits only), and a bare path `a::b` — that is a Rust/C++ symbol as today; a
/// caller should try [`parse`] and evaluation for it when the symbol lookup fails
/// (`func::static_local`, `Class::member`).
pub fn looks_like_expression(spec: &str) -> bool {
    let (text, _) = split_access(spec.trim());
    if text.starts_with("mem:") || text.starts_with("watchpoint:") {
        return false;
    }
    if text.contains('+') || text.contains('/') {
        // `SYMBOL+OFF/LEN`: arithmetic is not part of the expression grammar.
        return false;
    }
    if let Some((name, digits)) = text.split_once('.') {
        let is_ident = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if is_ident && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    text.contains(['.', '[', '*', '(', '&', '\'']) || text.contains("->")
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Quoted(String),
    Int(u64),
    Dot,
    Arrow,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Star,
    Amp,
    Scope,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Quoted(s) => write!(f, "quoted '{s}'"),
            Token::Int(n) => write!(f, "{n}"),
            Token::Dot => f.write_str("'.'"),
            Token::Arrow => f.write_str("'->'"),
            Token::LBracket => f.write_str("'['"),
            Token::RBracket => f.write_str("']'"),
            Token::LParen => f.write_str("'('"),
            Token::RParen => f.write_str("')'"),
            Token::Star => f.write_str("'*'"),
            Token::Amp => f.write_str("'&'"),
            Token::Scope => f.write_str("'::'"),
            Token::End => f.write_str("the end"),
        }
    }
}

fn lex(input: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let err = |position: usize, message: String| ParseError {
        input: input.to_string(),
        position,
        message,
    };
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'.' => Some(Token::Dot),
            b'[' => Some(Token::LBracket),
            b']' => Some(Token::RBracket),
            b'(' => Some(Token::LParen),
            b')' => Some(Token::RParen),
            b'*' => Some(Token::Star),
            b'&' => Some(Token::Amp),
            _ => None,
        };
        if let Some(token) = single {
            tokens.push((token, start));
            i += 1;
            continue;
        }
        if input[i..].starts_with("->") {
            tokens.push((Token::Arrow, start));
            i += 2;
        } else if input[i..].starts_with("::") {
            tokens.push((Token::Scope, start));
            i += 2;
        } else if c == b'\'' {
            let Some(len) = input[i + 1..].find('\'') else {
                return Err(err(start, "unterminated quote: write 'file.c'::var".into()));
            };
            let text = &input[i + 1..i + 1 + len];
            if text.is_empty() {
                return Err(err(
                    start,
                    "empty quotes: write 'file.c'::var or 'func'::var".into(),
                ));
            }
            tokens.push((Token::Quoted(text.to_string()), start));
            i += len + 2;
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let text = &input[start..i];
            let value = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse::<u64>(),
            };
            match value {
                Ok(n) => tokens.push((Token::Int(n), start)),
                Err(_) => {
                    return Err(err(
                        start,
                        format!("'{text}' is not a number: use decimal or 0x hex"),
                    ))
                }
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            tokens.push((Token::Ident(input[start..i].to_string()), start));
        } else {
            let ch = input[i..].chars().next().unwrap_or('?');
            return Err(err(
                start,
                format!(
                    "unexpected '{ch}': expressions use names, '.', '->', '[N]', '*', '&', \
                     '::' and casts '(T *)'"
                ),
            ));
        }
    }
    tokens.push((Token::End, input.len()));
    Ok(tokens)
}

/// Words that start a C type name in a cast.
const TYPE_KEYWORDS: &[&str] = &[
    "struct", "union", "enum", "class", "unsigned", "signed", "const", "volatile", "int", "char",
    "short", "long", "float", "double", "_Bool", "bool", "void",
];

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos].0
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].0
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].0.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn error(&self, message: String) -> ParseError {
        ParseError {
            input: self.input.to_string(),
            position: self.tokens[self.pos].1,
            message,
        }
    }

    fn expect(&mut self, want: Token, context: &str) -> Result<(), ParseError> {
        if *self.peek() == want {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {want} {context}, found {}", self.peek())))
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Token::Star => {
                self.next();
                Ok(Expr::Deref(Box::new(self.unary()?)))
            }
            Token::Amp => {
                self.next();
                Ok(Expr::AddrOf(Box::new(self.unary()?)))
            }
            Token::LParen if self.cast_ahead() => {
                self.next();
                let ty = self.cast_type()?;
                self.expect(Token::RParen, "after the cast's type")?;
                Ok(Expr::Cast(ty, Box::new(self.unary()?)))
            }
            _ => self.postfix(),
        }
    }

    /// Whether the `(` at the cursor opens a cast: `(WORD... [::IDENT]... *... )` starting
    /// with a type keyword or ending in `*`.
    fn cast_ahead(&self) -> bool {
        let mut i = 1;
        let first_is_keyword = match self.peek_at(1) {
            Token::Ident(word) => TYPE_KEYWORDS.contains(&word.as_str()),
            _ => return false,
        };
        while matches!(self.peek_at(i), Token::Ident(_) | Token::Scope) {
            i += 1;
        }
        let mut stars = 0;
        while *self.peek_at(i) == Token::Star {
            stars += 1;
            i += 1;
        }
        *self.peek_at(i) == Token::RParen && (first_is_keyword || stars > 0)
    }

    fn cast_type(&mut self) -> Result<CastType, ParseError> {
        let mut base = String::new();
        loop {
            match self.peek().clone() {
                Token::Ident(word) => {
                    if !base.is_empty() && !base.ends_with("::") {
                        base.push(' ');
                    }
                    base.push_str(&word);
                    self.next();
                }
                Token::Scope => {
                    base.push_str("::");
                    self.next();
                }
                _ => break,
            }
        }
        let mut pointers = 0;
        while *self.peek() == Token::Star {
            pointers += 1;
            self.next();
        }
        Ok(CastType { base, pointers })
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.primary()?;
        loop {
            match self.peek() {
                Token::Dot => {
                    self.next();
                    expr = Expr::Member(Box::new(expr), self.field("'.'")?);
                }
                Token::Arrow => {
                    self.next();
                    expr = Expr::Arrow(Box::new(expr), self.field("'->'")?);
                }
                Token::LBracket => {
                    self.next();
                    let index = match self.next() {
                        Token::Int(n) => n,
                        other => {
                            self.pos -= 1;
                            return Err(self.error(format!(
                                "an index must be a constant (decimal or 0x hex), found {other}"
                            )));
                        }
                    };
                    self.expect(Token::RBracket, "after the index")?;
                    expr = Expr::Index(Box::new(expr), index);
                }
                _ => return Ok(expr),
            }
        }
    }

    fn field(&mut self, after: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            Token::Ident(name) => {
                self.next();
                Ok(name)
            }
            other => Err(self.error(format!(
                "expected a member name after {after}, found {other}"
            ))),
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Token::Int(n) => {
                self.next();
                Ok(Expr::Int(n))
            }
            Token::LParen => {
                self.next();
                let inner = self.unary()?;
                self.expect(Token::RParen, "to close '('")?;
                Ok(inner)
            }
            Token::Quoted(scope) => {
                self.next();
                self.expect(Token::Scope, "after a quoted scope ('file.c'::var)")?;
                let mut path = self.name_path()?;
                path.quoted = Some(scope);
                Ok(Expr::Name(path))
            }
            Token::Ident(_) => Ok(Expr::Name(self.name_path()?)),
            other => Err(self.error(format!("expected a variable name, found {other}"))),
        }
    }

    fn name_path(&mut self) -> Result<NamePath, ParseError> {
        let mut segments = Vec::new();
        loop {
            match self.next() {
                Token::Ident(name) => segments.push(name),
                other => {
                    self.pos -= 1;
                    return Err(self.error(format!("expected a name, found {other}")));
                }
            }
            if *self.peek() == Token::Scope {
                self.next();
            } else {
                return Ok(NamePath {
                    quoted: None,
                    segments,
                });
            }
        }
    }
}

/// Parses a watch expression (without its `:ACCESS` suffix: see [`split_access`]).
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let tokens = lex(input)?;
    let mut parser = Parser {
        input,
        tokens,
        pos: 0,
    };
    if *parser.peek() == Token::End {
        return Err(parser.error("empty expression: name a variable, e.g. cfg.mode".into()));
    }
    let expr = parser.unary()?;
    if *parser.peek() != Token::End {
        return Err(parser.error(format!(
            "unexpected {} after a complete expression",
            parser.peek()
        )));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Box<Expr> {
        Box::new(Expr::Name(NamePath {
            quoted: None,
            segments: s.split("::").map(String::from).collect(),
        }))
    }

    #[test]
    fn every_form_parses_to_its_ast_and_prints_back() {
        let cases: &[(&str, Expr, &str)] = &[
            ("counter", *name("counter"), "counter"),
            (
                "a.b.c",
                Expr::Member(Box::new(Expr::Member(name("a"), "b".into())), "c".into()),
                "a.b.c",
            ),
            ("a[3]", Expr::Index(name("a"), 3), "a[3]"),
            (
                "a[2].b[0x1]",
                Expr::Index(
                    Box::new(Expr::Member(
                        Box::new(Expr::Index(name("a"), 2)),
                        "b".into(),
                    )),
                    1,
                ),
                "a[2].b[1]",
            ),
            ("p->f", Expr::Arrow(name("p"), "f".into()), "p->f"),
            (
                "(*p).f",
                Expr::Member(Box::new(Expr::Deref(name("p"))), "f".into()),
                "(*p).f",
            ),
            ("* p", Expr::Deref(name("p")), "*p"),
            (
                "*(unsigned long *)0x601040",
                Expr::Deref(Box::new(Expr::Cast(
                    CastType {
                        base: "unsigned long".into(),
                        pointers: 1,
                    },
                    Box::new(Expr::Int(0x601040)),
                ))),
                "*(unsigned long *)0x601040",
            ),
            (
                "*(struct conn*)&conns",
                Expr::Deref(Box::new(Expr::Cast(
                    CastType {
                        base: "struct conn".into(),
                        pointers: 1,
                    },
                    Box::new(Expr::AddrOf(name("conns"))),
                ))),
                "*(struct conn *)&conns",
            ),
            (
                "*(uint32_t *)&cfg",
                Expr::Deref(Box::new(Expr::Cast(
                    CastType {
                        base: "uint32_t".into(),
                        pointers: 1,
                    },
                    Box::new(Expr::AddrOf(name("cfg"))),
                ))),
                "*(uint32_t *)&cfg",
            ),
            ("parse::depth", *name("parse::depth"), "parse::depth"),
            (
                "'typed_b.c'::file_static",
                Expr::Name(NamePath {
                    quoted: Some("typed_b.c".into()),
                    segments: vec!["file_static".into()],
                }),
                "'typed_b.c'::file_static",
            ),
            (
                "krate::module::STATIC.field",
                Expr::Member(name("krate::module::STATIC"), "field".into()),
                "krate::module::STATIC.field",
            ),
            (
                "(*head).next->next->value",
                Expr::Arrow(
                    Box::new(Expr::Arrow(
                        Box::new(Expr::Member(
                            Box::new(Expr::Deref(name("head"))),
                            "next".into(),
                        )),
                        "next".into(),
                    )),
                    "value".into(),
                ),
                "(*head).next->next->value",
            ),
            ("(counter)", *name("counter"), "counter"),
            (
                "**pp",
                Expr::Deref(Box::new(Expr::Deref(name("pp")))),
                "**pp",
            ),
        ];
        for (text, ast, canonical) in cases {
            let parsed = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(&parsed, ast, "{text}");
            assert_eq!(parsed.to_string(), *canonical, "{text}");
            assert_eq!(parse(canonical).unwrap(), parsed, "{canonical} round trip");
        }
    }

    #[test]
    fn bad_syntax_names_the_column_and_what_works() {
        assert_eq!(
            parse("a[i]").unwrap_err().to_string(),
            "cannot parse watch expression 'a[i]' at column 3: an index must be a constant \
             (decimal or 0x hex), found 'i'"
        );
        assert_eq!(
            parse("a.").unwrap_err().to_string(),
            "cannot parse watch expression 'a.' at column 3: expected a member name after '.', \
             found the end"
        );
        assert_eq!(
            parse("a + 1").unwrap_err().to_string(),
            "cannot parse watch expression 'a + 1' at column 3: unexpected '+': expressions use \
             names, '.', '->', '[N]', '*', '&', '::' and casts '(T *)'"
        );
        assert_eq!(
            parse("(a").unwrap_err().to_string(),
            "cannot parse watch expression '(a' at column 3: expected ')' to close '(', found \
             the end"
        );
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "cannot parse watch expression '' at column 1: empty expression: name a variable, \
             e.g. cfg.mode"
        );
    }

    #[test]
    fn access_suffix_splits_but_never_a_path_separator() {
        assert_eq!(
            split_access("cfg.mode:rw"),
            ("cfg.mode", Some(Access::ReadWrite))
        );
        assert_eq!(split_access("counter:w"), ("counter", Some(Access::Write)));
        assert_eq!(
            split_access("*(int *)0x10:x"),
            ("*(int *)0x10", Some(Access::Execute))
        );
        assert_eq!(split_access("ns::w"), ("ns::w", None));
        assert_eq!(split_access("ns::x:r"), ("ns::x", Some(Access::Read)));
        assert_eq!(split_access("'f.c'::r"), ("'f.c'::r", None));
        assert_eq!(split_access("mem:0x10"), ("mem:0x10", None));
        assert_eq!(split_access(":w"), (":w", None));
    }

    #[test]
    fn expressions_are_told_apart_from_specs() {
        for spec in [
            "cfg.mode",
            "ring[7]",
            "conn->state",
            "*head",
            "(*p).f",
            "*(int *)0x601040",
            "'parse'::depth",
            "'file.c'::var:w",
            "krate::m::S.field",
        ] {
            assert!(looks_like_expression(spec), "{spec}");
        }
        for spec in [
            "counter",
            "counter:rw",
            "counter+8/4:w",
            "0x601040/8:w",
            "mem:0x601040/8:w",
            "watchpoint:0x601040:8:w",
            "my_crate::COUNTER",
            "depth.1",
        ] {
            assert!(!looks_like_expression(spec), "{spec}");
        }
    }
}
