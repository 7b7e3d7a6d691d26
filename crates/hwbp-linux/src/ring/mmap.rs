//! The mapped perf ring buffer: one metadata page plus `2^n` data pages (`perf_mmap` in
//! `kernel/events/core.c` refuses other sizes), read-write so we can publish `data_tail`
//! (non-overwrite mode: the kernel never overwrites unread data and counts the samples it had
//! to drop in `PERF_RECORD_LOST`).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use perf_event_open_sys::bindings::perf_event_mmap_page;

use super::parse::{parse_unread, RingRecord, SampleLayout};
use crate::error::{read_proc_int, Error};

/// What a ring has seen since it was mapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Sum of `lost` over all `PERF_RECORD_LOST` records.
    pub lost: u64,
    /// Number of `PERF_RECORD_THROTTLE` records.
    pub throttled: u64,
    /// Number of `PERF_RECORD_UNTHROTTLE` records.
    pub unthrottled: u64,
    /// Records that did not match the layout we asked for.
    pub malformed: u64,
}

/// A perf event's ring buffer, mapped into our address space. Unmapped on drop.
#[derive(Debug)]
pub struct MappedRing {
    base: NonNull<u8>,
    map_len: usize,
    data_offset: usize,
    data_size: usize,
    tail: u64,
    scratch: Vec<u8>,
    stats: RingStats,
}

// SAFETY: the mapping is owned by this value alone; the kernel is the only other writer and it
// synchronises through data_head/data_tail, which we access atomically.
unsafe impl Send for MappedRing {}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

impl MappedRing {
    /// Maps `1 + data_pages` pages of `fd`'s ring. `data_pages` must be a power of two.
    pub fn map(fd: BorrowedFd<'_>, data_pages: usize, what: &str) -> Result<Self, Error> {
        if !data_pages.is_power_of_two() {
            return Err(Error::InvalidRequest(format!(
                "ring buffer size must be a power of two pages, got {data_pages}"
            )));
        }
        let page = page_size();
        let map_len = (data_pages + 1) * page;
        // SAFETY: a fresh shared mapping of a perf fd; we do not overlap any existing Rust
        // object (addr = NULL lets the kernel choose), and the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let errno = Errno::last();
            let hint = match errno {
                Errno::EPERM | Errno::ENOMEM => {
                    let limit = read_proc_int("/proc/sys/kernel/perf_event_mlock_kb");
                    format!(
                        "the ring buffers exceed the locked-memory budget \
                         (/proc/sys/kernel/perf_event_mlock_kb = {} KiB per user and CPU): use \
                         a smaller ring, run as root, or raise that sysctl",
                        limit.map_or_else(|| "unknown".into(), |l| l.to_string())
                    )
                }
                Errno::EINVAL => "inherited events on any CPU (cpu = -1) cannot be mapped; \
                                  open one event per CPU"
                    .to_string(),
                _ => "see perf_event_open(2), section on mmap".to_string(),
            };
            return Err(Error::Mmap {
                what: what.to_string(),
                bytes: map_len,
                errno,
                hint,
            });
        }
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns NULL on success");
        let meta = base.as_ptr().cast::<perf_event_mmap_page>();
        // SAFETY: the first page is the metadata page the kernel filled in during mmap;
        // data_offset/data_size are written once before mmap returns and never change.
        let (offset, size) = unsafe {
            (
                std::ptr::addr_of!((*meta).data_offset).read_volatile(),
                std::ptr::addr_of!((*meta).data_size).read_volatile(),
            )
        };
        // Kernels before 4.1 leave these 0: the data area then starts at the second page.
        let (data_offset, data_size) = if size == 0 {
            (page, data_pages * page)
        } else {
            (offset as usize, size as usize)
        };
        let mut ring = MappedRing {
            base,
            map_len,
            data_offset,
            data_size,
            tail: 0,
            scratch: Vec::new(),
            stats: RingStats::default(),
        };
        ring.tail = ring.data_tail().load(Ordering::Relaxed);
        Ok(ring)
    }

    /// Size of the data area in bytes.
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Counters of LOST/THROTTLE/UNTHROTTLE records seen so far.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    fn data_head(&self) -> &AtomicU64 {
        let meta = self.base.as_ptr().cast::<perf_event_mmap_page>();
        // SAFETY: data_head is an aligned u64 inside the mapped metadata page, which lives as
        // long as `self`; the kernel updates it concurrently, so we only touch it atomically.
        unsafe { AtomicU64::from_ptr(std::ptr::addr_of_mut!((*meta).data_head)) }
    }

    fn data_tail(&self) -> &AtomicU64 {
        let meta = self.base.as_ptr().cast::<perf_event_mmap_page>();
        // SAFETY: as for data_head; the kernel reads data_tail, we are its only writer.
        unsafe { AtomicU64::from_ptr(std::ptr::addr_of_mut!((*meta).data_tail)) }
    }

    /// Bytes the kernel has published that we have not consumed.
    pub fn unread_bytes(&self) -> u64 {
        self.data_head()
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail)
    }

    /// Parses every published record, calling `on_record` for each, and hands the space back
    /// to the kernel. LOST/THROTTLE/UNTHROTTLE records are also counted in [`Self::stats`].
    /// Returns the number of records seen.
    pub fn drain(
        &mut self,
        layout: impl Into<SampleLayout>,
        on_record: &mut dyn FnMut(RingRecord),
    ) -> usize {
        let layout = layout.into();
        let mut records = 0;
        // Re-read the head after each pass so records that arrive while we work are taken too,
        // but bound the work to one ring's worth so one busy CPU cannot starve the others.
        let mut budget = self.data_size as u64;
        loop {
            // Acquire pairs with the kernel's store of data_head after writing the records
            // (`perf_output_put_handle`): every byte before head is visible to us.
            let head = self.data_head().load(Ordering::Acquire);
            let avail = head.wrapping_sub(self.tail);
            if avail == 0 || budget == 0 {
                break;
            }
            if avail > self.data_size as u64 {
                // Cannot happen in non-overwrite mode; resynchronise instead of reading junk.
                self.stats.malformed += 1;
                self.publish_tail(head);
                break;
            }
            let start = (self.tail % self.data_size as u64) as usize;
            let avail = avail as usize;
            let first_len = avail.min(self.data_size - start);
            // SAFETY: [tail, head) lies inside the data area (avail <= data_size) and the
            // kernel does not write it until we publish a data_tail past it, so these shared
            // slices are not mutated while they live.
            let (first, second) = unsafe {
                let data = self.base.as_ptr().add(self.data_offset);
                (
                    std::slice::from_raw_parts(data.add(start), first_len),
                    std::slice::from_raw_parts(data, avail - first_len),
                )
            };
            let stats = &mut self.stats;
            let consumed = parse_unread(first, second, layout, &mut self.scratch, &mut |r| {
                records += 1;
                match &r {
                    RingRecord::Lost { lost, .. } => stats.lost += lost,
                    RingRecord::Throttle { .. } => stats.throttled += 1,
                    RingRecord::Unthrottle { .. } => stats.unthrottled += 1,
                    RingRecord::Malformed { .. } => stats.malformed += 1,
                    _ => {}
                }
                on_record(r);
            });
            if consumed == 0 {
                break;
            }
            self.publish_tail(self.tail + consumed as u64);
            budget = budget.saturating_sub(consumed as u64);
        }
        records
    }

    fn publish_tail(&mut self, tail: u64) {
        self.tail = tail;
        // Release: our reads of the consumed bytes happen before the kernel may reuse them.
        self.data_tail().store(tail, Ordering::Release);
    }
}

impl Drop for MappedRing {
    fn drop(&mut self) {
        // SAFETY: base/map_len are exactly what mmap returned; no slices into the mapping
        // outlive `drain`, so nothing refers to it any more.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}
