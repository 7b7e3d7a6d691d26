//! # hwbp-linux
//!
//! The Linux layer of hwbp: the only crate that talks to the kernel.

pub mod error;
pub mod perf;
pub mod ring;
pub mod selfwatch;
pub mod session;
pub mod sys;

pub use error::{Error, ErrorKind};

pub mod launch;
pub mod memory;
pub mod ptrace;
pub mod target;
