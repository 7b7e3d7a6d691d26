//! # hwbp
//!
//! The library facade of hwbp: from "what to watch, where" to typed, symbolized hits.
#![forbid(unsafe_code)]
pub mod record;
