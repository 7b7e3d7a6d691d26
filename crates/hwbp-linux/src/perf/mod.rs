//! Breakpoint perf events: building the `perf_event_attr` for a watch.

pub mod attr;

pub use attr::{SampleOptions, Wakeup, WatchRequest};
