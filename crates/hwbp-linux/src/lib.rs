//! # hwbp-linux
//!
//! The Linux layer of hwbp: the only crate that talks to the kernel.
