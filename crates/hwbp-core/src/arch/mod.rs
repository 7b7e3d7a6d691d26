//! Architecture codecs. Every codec builds and is tested on every host; only the Linux layer
//! picks the native one.

pub mod arm64;
pub mod native;
pub mod x86;
