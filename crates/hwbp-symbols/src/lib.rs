//! # hwbp-symbols
//!
//! Symbols for hwbp.
#![forbid(unsafe_code)]
