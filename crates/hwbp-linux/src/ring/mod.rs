//! The perf mmap ring buffer: a pure record parser ([`parse`]) and the mapping that feeds it
//! ([`mmap`]).
//!
//! Layout and ordering rules follow `include/uapi/linux/perf_event.h` (`struct
//! perf_event_mmap_page`) and `kernel/events/ring_buffer.c`: the kernel publishes `data_head`
//! after writing whole records; we read it with Acquire ordering, consume `[data_tail,
//! data_head)` (which may wrap at `data_size`, even in the middle of a record header), then
//! publish the new `data_tail` with Release ordering so the kernel may overwrite those bytes.

pub mod mmap;
pub mod parse;

pub use mmap::{MappedRing, RingStats};
pub use parse::{
    parse_record, parse_unread, CommRecord, RecordHeader, RingRecord, SampleLayout, SampleRecord,
    TaskRecord, SAMPLE_ID_SIZE,
};
