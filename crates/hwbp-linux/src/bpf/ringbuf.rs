//! The user-space consumer of a `BPF_MAP_TYPE_RINGBUF` map: the mapping and a pure parser.
//!
//! Layout and protocol follow `kernel/bpf/ringbuf.c` (and libbpf's `ringbuf.c`, the reference
//! consumer):
//! - Page 0 of the map fd is the consumer page (`consumer_pos`, the only page user space may
//!   map writable); from page 1 come the producer page (`producer_pos`) and the data area,
//!   mapped twice in a row so a record that wraps is contiguous in the mapping.
//! - Each record starts with an 8-byte header `{ u32 len; u32 pg_off; }` at an 8-aligned
//!   position; `len` has `BPF_RINGBUF_BUSY_BIT` (1 << 31) set while the producer still writes
//!   it and `BPF_RINGBUF_DISCARD_BIT` (1 << 30) if it was discarded. A record takes
//!   `round_up(len + 8, 8)` bytes. The kernel publishes `producer_pos` (release) when it
//!   reserves and clears the busy bit (release) when it commits, so records are consumed in
//!   order up to the first busy one; we publish `consumer_pos` (release) after each record,
//!   which frees its space.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use nix::errno::Errno;

use super::sys::Map;
use super::BpfError;

/// `BPF_RINGBUF_BUSY_BIT`.
pub const BUSY_BIT: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`.
pub const DISCARD_BIT: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
pub const HEADER_SIZE: u64 = 8;

/// What the header word at the consumer position says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Still being written: stop here.
    Busy,
    /// A committed record of `len` bytes to deliver.
    Record {
        /// Payload bytes.
        len: u32,
    },
    /// A discarded record of `len` bytes to skip.
    Discarded {
        /// Payload bytes.
        len: u32,
    },
}

impl Slot {
    /// Classifies a header's `len` word.
    pub fn from_header(word: u32) -> Slot {
        let len = word & !(BUSY_BIT | DISCARD_BIT);
        if word & BUSY_BIT != 0 {
            Slot::Busy
        } else if word & DISCARD_BIT != 0 {
            Slot::Discarded { len }
        } else {
            Slot::Record { len }
        }
    }
}

/// Bytes a record of `len` payload bytes takes in the ring.
pub fn record_span(len: u32) -> u64 {
    (u64::from(len) + HEADER_SIZE).div_ceil(8) * 8
}

/// Consumes records between `consumer` and `producer` in `data`, a single copy of the data
/// area (a power-of-two size; positions wrap at it, a payload may wrap too). Calls `deliver`
/// with each committed payload and returns the new consumer position (stopping at a busy
/// record). The pure model of [`RingReader::drain`], for tests on synthetic bytes.
pub fn parse_ring(
    data: &[u8],
    mut consumer: u64,
    producer: u64,
    deliver: &mut dyn FnMut(&[u8]),
) -> u64 {
    let mask = data.len() as u64 - 1;
    let mut scratch = Vec::new();
    while consumer < producer {
        let at = (consumer & mask) as usize;
        let word = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        match Slot::from_header(word) {
            Slot::Busy => break,
            Slot::Discarded { len } => consumer += record_span(len),
            Slot::Record { len } => {
                scratch.clear();
                for i in 0..u64::from(len) {
                    scratch.push(data[((consumer + HEADER_SIZE + i) & mask) as usize]);
                }
                deliver(&scratch);
                consumer += record_span(len);
            }
        }
    }
    consumer
}

/// A mapped BPF ring buffer. Keeps its map's kernel object alive (a mapping holds a
/// reference) until dropped, which unmaps it.
#[derive(Debug)]
pub struct RingReader {
    consumer: NonNull<u8>,
    producer: NonNull<u8>,
    page: usize,
    data_size: usize,
}

// SAFETY: the mappings are owned by this value alone; the kernel is the only other party and
// it synchronises through producer_pos/consumer_pos and the header words, which we access
// atomically.
unsafe impl Send for RingReader {}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

fn map_pages(
    map: &Map,
    len: usize,
    prot: libc::c_int,
    offset: usize,
) -> Result<NonNull<u8>, BpfError> {
    // SAFETY: a fresh shared mapping of a ring buffer map fd chosen by the kernel (addr =
    // NULL), overlapping no Rust object; the result is checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            map.fd().as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(BpfError::from_errno("mmap(BPF ring buffer)", Errno::last()));
    }
    Ok(NonNull::new(ptr.cast()).expect("mmap never returns NULL on success"))
}

impl RingReader {
    /// Maps the consumer page (read-write) and the producer page plus the doubled data area
    /// (read-only) of a ring buffer map.
    pub fn map(map: &Map) -> Result<RingReader, BpfError> {
        let page = page_size();
        let data_size = map.max_entries() as usize;
        let consumer = map_pages(map, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = match map_pages(map, page + 2 * data_size, libc::PROT_READ, page) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `consumer` is the page-sized mapping made just above; nothing
                // refers to it.
                unsafe { libc::munmap(consumer.as_ptr().cast(), page) };
                return Err(e);
            }
        };
        Ok(RingReader {
            consumer,
            producer,
            page,
            data_size,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: consumer_pos is the aligned first word of the consumer page, mapped for the
        // life of `self`; the kernel reads it concurrently, so it is accessed atomically.
        unsafe { AtomicU64::from_ptr(self.consumer.as_ptr().cast()) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: producer_pos is the aligned first word of the producer page, mapped for the
        // life of `self`; the kernel writes it concurrently, so it is read atomically.
        unsafe { AtomicU64::from_ptr(self.producer.as_ptr().cast()) }
    }

    /// Bytes written and not yet consumed.
    pub fn pending_bytes(&self) -> u64 {
        let prod = self.producer_pos().load(Ordering::Acquire);
        prod.saturating_sub(self.consumer_pos().load(Ordering::Relaxed))
    }

    /// Delivers every committed record, in order, and frees its space. Returns how many
    /// records were delivered.
    pub fn drain(&mut self, deliver: &mut dyn FnMut(&[u8])) -> usize {
        let mask = self.data_size as u64 - 1;
        // SAFETY: the data area starts one page after the producer page and is mapped twice
        // (2 * data_size bytes), for the life of `self`.
        let data = unsafe { self.producer.as_ptr().add(self.page) };
        let mut cons = self.consumer_pos().load(Ordering::Relaxed);
        let mut delivered = 0;
        loop {
            let prod = self.producer_pos().load(Ordering::Acquire);
            if cons >= prod {
                break;
            }
            while cons < prod {
                let at = (cons & mask) as usize;
                // SAFETY: `at` is 8-aligned and below data_size, inside the mapping; the
                // kernel writes the header word concurrently (commit), so it is read
                // atomically with Acquire, pairing with the kernel's release.
                let word =
                    unsafe { AtomicU32::from_ptr(data.add(at).cast()) }.load(Ordering::Acquire);
                let slot = Slot::from_header(word);
                let len = match slot {
                    Slot::Busy => {
                        self.consumer_pos().store(cons, Ordering::Release);
                        return delivered;
                    }
                    Slot::Discarded { len } | Slot::Record { len } => len,
                };
                if let Slot::Record { .. } = slot {
                    // SAFETY: a committed record lies in [at + 8, at + 8 + len), which is
                    // inside the doubled data area (len < data_size); the kernel does not
                    // write it again until consumer_pos passes it, which happens after this
                    // borrow ends.
                    let payload = unsafe {
                        std::slice::from_raw_parts(
                            data.add(at + HEADER_SIZE as usize),
                            len as usize,
                        )
                    };
                    deliver(payload);
                    delivered += 1;
                }
                cons += record_span(len);
            }
            // Once per batch, not per record: the producer reads this word at every reserve
            // on the writing thread's CPU, and each store here would pull its cache line
            // away. The space of the batch is freed a moment later; nothing else changes.
            self.consumer_pos().store(cons, Ordering::Release);
        }
        delivered
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        // SAFETY: both mappings are exactly what mmap returned in `map`; no slice into them
        // outlives `drain`.
        unsafe {
            libc::munmap(self.consumer.as_ptr().cast(), self.page);
            libc::munmap(
                self.producer.as_ptr().cast(),
                self.page + 2 * self.data_size,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_record(data: &mut [u8], pos: u64, header: u32, payload: &[u8]) -> u64 {
        let mask = data.len() as u64 - 1;
        let at = (pos & mask) as usize;
        data[at..at + 4].copy_from_slice(&header.to_le_bytes());
        data[at + 4..at + 8].copy_from_slice(&0u32.to_le_bytes());
        for (i, b) in payload.iter().enumerate() {
            data[((pos + 8 + i as u64) & mask) as usize] = *b;
        }
        pos + record_span(payload.len() as u32)
    }

    fn collect(data: &[u8], cons: u64, prod: u64) -> (Vec<Vec<u8>>, u64) {
        let mut out = Vec::new();
        let end = parse_ring(data, cons, prod, &mut |p| out.push(p.to_vec()));
        (out, end)
    }

    #[test]
    fn spans_round_up_to_eight_with_the_header() {
        assert_eq!(record_span(0), 8);
        assert_eq!(record_span(1), 16);
        assert_eq!(record_span(8), 16);
        assert_eq!(record_span(56), 64);
        assert_eq!(record_span(57), 72);
    }

    #[test]
    fn header_bits_classify() {
        assert_eq!(Slot::from_header(12), Slot::Record { len: 12 });
        assert_eq!(Slot::from_header(BUSY_BIT | 12), Slot::Busy);
        assert_eq!(
            Slot::from_header(DISCARD_BIT | 12),
            Slot::Discarded { len: 12 }
        );
        assert_eq!(Slot::from_header(BUSY_BIT | DISCARD_BIT | 1), Slot::Busy);
    }

    #[test]
    fn records_discards_and_busy_stop() {
        let mut data = vec![0u8; 64];
        let mut pos = 0;
        pos = put_record(&mut data, pos, 3, b"abc");
        pos = put_record(&mut data, pos, DISCARD_BIT | 5, b"zzzzz");
        pos = put_record(&mut data, pos, 8, b"12345678");
        let busy_at = pos;
        pos = put_record(&mut data, pos, BUSY_BIT | 2, b"xy");
        let (got, end) = collect(&data, 0, pos);
        assert_eq!(got, vec![b"abc".to_vec(), b"12345678".to_vec()]);
        assert_eq!(end, busy_at);
        // Once committed, the rest is delivered from where we stopped.
        put_record(&mut data, busy_at, 2, b"xy");
        let (got, end) = collect(&data, busy_at, pos);
        assert_eq!(got, vec![b"xy".to_vec()]);
        assert_eq!(end, pos);
    }

    #[test]
    fn a_payload_that_wraps_is_reassembled() {
        let mut data = vec![0u8; 32];
        // Start at position 48 (offset 16 in the ring): header at 16..24, payload 24..32 then
        // 0..4.
        let payload: Vec<u8> = (1..=12).collect();
        let end = put_record(&mut data, 48, 12, &payload);
        assert_eq!(end, 48 + 24);
        assert_eq!(&data[0..4], &[9, 10, 11, 12]);
        let (got, stop) = collect(&data, 48, end);
        assert_eq!(got, vec![payload]);
        assert_eq!(stop, end);
    }
}
