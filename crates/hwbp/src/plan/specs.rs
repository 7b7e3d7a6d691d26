//! Specs as the user wrote them: [`ParsedSpec`] tells a watch expression
//! (`hwbp_symbols::expr`) from a spec in hwbp's, perf's or bpftrace's syntax
//! (`hwbp_core::spec`), and [`names_needed`] lists the names a plan needs from the program's
//! symbol tables (a name no image defines yet makes the plan pending: `crate::tree`).

use hwbp_core::spec::{WatchLocation, WatchSpec};
use hwbp_core::Access;
use hwbp_symbols::expr::{self, Expr};

use crate::error::{Error, Result};

/// A spec as given: hwbp's, perf's or bpftrace's syntax, or a watch expression.
pub(crate) enum ParsedSpec {
    Spec(WatchSpec),
    Expression {
        text: String,
        expr: Expr,
        access: Access,
    },
}

impl ParsedSpec {
    pub(crate) fn parse(text: &str) -> Result<ParsedSpec> {
        if expr::looks_like_expression(text) {
            let (body, access) = expr::split_access(text.trim());
            let expr = expr::parse(body).map_err(|e| Error::bad_input(e.to_string()))?;
            return Ok(ParsedSpec::Expression {
                text: text.to_string(),
                expr,
                access: access.unwrap_or(Access::Write),
            });
        }
        WatchSpec::parse(text)
            .map(ParsedSpec::Spec)
            .map_err(|e| Error::bad_input(e.to_string()))
    }
}

/// The names the specs need from the program's symbol tables: each symbol, and the root
/// variable of each expression (none for a cast of a constant, nor for a `::` path, which
/// names DWARF scopes rather than a symbol).
pub(crate) fn names_needed(specs: &[ParsedSpec]) -> Vec<String> {
    specs
        .iter()
        .filter(|s| match s {
            ParsedSpec::Spec(spec) => !spec.text.contains("::"),
            ParsedSpec::Expression { text, .. } => !text.contains("::"),
        })
        .filter_map(|s| match s {
            ParsedSpec::Spec(spec) => match &spec.location {
                WatchLocation::Symbol { name, .. } => Some(name.clone()),
                WatchLocation::Address(_) => None,
            },
            ParsedSpec::Expression { text, .. } => {
                let body = text.trim_start_matches(['*', '&', ' ', '\'']);
                let root: String = body
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                (!root.is_empty() && !text.trim_start_matches('*').starts_with('(')).then_some(root)
            }
        })
        .collect()
}
