//! # hwbp-linux
//!
//! The Linux layer of hwbp: the only crate that talks to the kernel.
//!
//! ## Design constraints
//! - The only crate of the workspace with `unsafe`, confined to the syscall/mmap/signal
//!   boundary (`sys/`, `ring/mmap.rs`, `selfwatch.rs`, `ptrace/`, `bpf/sys.rs`,
//!   `bpf/ringbuf.rs`); every block has a
//!   `// SAFETY:` comment.
//! - Errors are typed ([`Error`], [`ErrorKind`]) with the errno mapped where the call is made.
//!
//! ## Module map (perf side)
//! - [`sys::perf`]: `perf_event_open` (behind the [`sys::perf::PerfSys`] seam) and the
//!   `PERF_EVENT_IOC_*` ioctls.
//! - [`perf::attr`]: `WatchRequest` → breakpoint `perf_event_attr`.
//! - [`ring`]: the mmap ring buffer and its pure record parser.
//! - [`session`]: [`session::WatchSession`], the watch session the CLI drives.
//! - [`selfwatch`]: [`selfwatch::SelfWatch`], in-process watches with a SIGTRAP callback.
//! - [`bpf`]: [`bpf::HitHandler`], the in-kernel hit handler (a BPF program on the breakpoint
//!   events: exact values, in-kernel filters and counts).
//! - [`security`]: why the kernel refused a privileged request (lockdown, security modules,
//!   capabilities), in one explanation for perf and BPF refusals.

pub mod bpf;
pub mod error;
pub mod hotplug;
pub mod perf;
pub mod ring;
pub mod selfwatch;
pub mod session;
pub mod sys;

pub use error::{Error, ErrorKind};

pub mod ending;
pub mod launch;
pub mod memory;
pub mod probe;
pub mod ptrace;
pub mod security;
pub mod target;
pub mod tree;
pub mod user_stack;
