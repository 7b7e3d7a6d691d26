//! Pure parser for the records our breakpoint events write into a perf ring buffer.
//!
//! No I/O and no `unsafe`: it works on the unread bytes handed over as two slices (the part up
//! to the end of the ring and the part that wrapped to its start), so it can be unit-tested and
//! fuzzed on synthetic buffers. The sample layout is fixed by
//! [`crate::perf::attr::BASE_SAMPLE_TYPE`]; record layouts are documented in
//! `include/uapi/linux/perf_event.h` (`enum perf_event_type`).

use perf_event_open_sys::bindings;

/// `struct perf_event_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// `type`: a `PERF_RECORD_*` value.
    pub type_: u32,
    /// `misc`: for samples, `PERF_RECORD_MISC_CPUMODE_MASK` (low 3 bits) says kernel/user mode.
    pub misc: u16,
    /// `size`: the whole record, header included.
    pub size: u16,
}

impl RecordHeader {
    /// Size of the header in bytes.
    pub const SIZE: usize = 8;

    /// Decodes the 8 header bytes (native endian, as the kernel writes them).
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        RecordHeader {
            type_: u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            misc: u16::from_ne_bytes([bytes[4], bytes[5]]),
            size: u16::from_ne_bytes([bytes[6], bytes[7]]),
        }
    }
}

/// One `PERF_RECORD_SAMPLE` with our fixed `sample_type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleRecord {
    /// `PERF_SAMPLE_IDENTIFIER`: the id of the event (the parent's id for inherited events).
    pub identifier: u64,
    /// `PERF_SAMPLE_IP`: on x86 data breakpoints trap, so this is the instruction *after* the
    /// access.
    pub ip: u64,
    /// `PERF_SAMPLE_TID`: process id.
    pub pid: i32,
    /// `PERF_SAMPLE_TID`: thread id.
    pub tid: i32,
    /// `PERF_SAMPLE_TIME`: nanoseconds of the event's clock: `CLOCK_MONOTONIC` for events
    /// built by [`crate::perf::attr::breakpoint_attr`] (`use_clockid`), else `local_clock()`.
    pub time: u64,
    /// `PERF_SAMPLE_ADDR`: for breakpoints, the watched address (`bp_addr`).
    pub addr: u64,
    /// `PERF_SAMPLE_CPU`.
    pub cpu: u32,
    /// `header.misc & PERF_RECORD_MISC_CPUMODE_MASK`.
    pub cpumode: u16,
    /// `PERF_SAMPLE_CALLCHAIN`, raw: frames interleaved with `PERF_CONTEXT_*` markers. Empty
    /// when callchains were not requested.
    pub callchain: Vec<u64>,
    /// `PERF_SAMPLE_REGS_USER` with [`crate::perf::attr::REGS_USER_MASK`]: the user-mode
    /// general-purpose registers in instruction-encoding order (`rax, rcx, rdx, rbx, rsp, rbp,
    /// rsi, rdi, r8..r15`). `None` when not requested or when the kernel had no user registers
    /// (`abi == PERF_SAMPLE_REGS_ABI_NONE`, e.g. a kernel thread).
    pub regs_user: Option<[u64; 16]>,
    /// `PERF_SAMPLE_STACK_USER`: the user stack from `sp` up, as much as the kernel could copy
    /// (`dyn_size` bytes); empty when not requested or for a task without user registers.
    pub stack_user: Vec<u8>,
}

/// What the samples of a ring carry beyond [`crate::perf::attr::BASE_SAMPLE_TYPE`], in record
/// order: `PERF_SAMPLE_CALLCHAIN`, then `PERF_SAMPLE_REGS_USER` (with
/// [`crate::perf::attr::REGS_USER_MASK`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleLayout {
    /// `PERF_SAMPLE_CALLCHAIN` is set.
    pub callchain: bool,
    /// `PERF_SAMPLE_REGS_USER` is set.
    pub regs_user: bool,
    /// `PERF_SAMPLE_STACK_USER` is set (after the registers).
    pub stack_user: bool,
}

/// A bare `bool` is the callchain flag (the layout before registers were added).
impl From<bool> for SampleLayout {
    fn from(callchain: bool) -> Self {
        SampleLayout {
            callchain,
            ..SampleLayout::default()
        }
    }
}

/// Position of each register of [`crate::perf::attr::REGS_USER_MASK`], in the kernel's bit
/// order (`AX, BX, CX, DX, SI, DI, BP, SP, R8..R15`), in instruction-encoding order.
const PERF_REG_TO_ENCODING: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];

impl SampleRecord {
    /// True if the access happened in kernel mode (`PERF_RECORD_MISC_KERNEL`).
    pub fn kernel_mode(&self) -> bool {
        u32::from(self.cpumode) == bindings::PERF_RECORD_MISC_KERNEL
    }

    /// The callchain without `PERF_CONTEXT_*` markers, plus how many leading frames are
    /// kernel frames (the kernel emits the kernel part first, then the user part). Frames in
    /// hypervisor or guest contexts are dropped.
    pub fn frames(&self) -> (Vec<u64>, usize) {
        let mut frames = Vec::with_capacity(self.callchain.len());
        let mut kernel_frames = 0;
        let mut context = bindings::PERF_CONTEXT_USER;
        for &ip in &self.callchain {
            if ip >= bindings::PERF_CONTEXT_MAX {
                context = ip;
                continue;
            }
            if context == bindings::PERF_CONTEXT_KERNEL {
                frames.push(ip);
                kernel_frames += 1;
            } else if context == bindings::PERF_CONTEXT_USER {
                frames.push(ip);
            }
        }
        (frames, kernel_frames)
    }
}

/// A record we understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingRecord {
    /// A breakpoint hit.
    Sample(SampleRecord),
    /// `PERF_RECORD_LOST`: `lost` samples were dropped because the ring was full.
    Lost {
        /// Event id.
        id: u64,
        /// Number of dropped samples.
        lost: u64,
    },
    /// `PERF_RECORD_THROTTLE`: the kernel stopped the event for exceeding
    /// `kernel.perf_event_max_sample_rate`; hits are not counted until the unthrottle.
    Throttle {
        /// Timestamp.
        time: u64,
        /// Event id.
        id: u64,
    },
    /// `PERF_RECORD_UNTHROTTLE`.
    Unthrottle {
        /// Timestamp.
        time: u64,
        /// Event id.
        id: u64,
    },
    /// `PERF_RECORD_COMM`: a watched task set its name (`prctl(PR_SET_NAME)`,
    /// `pthread_setname_np`, a write to `/proc/PID/task/TID/comm`) or exec'd. Written because
    /// our events have `attr.comm = 1` (`perf_event_comm` in `kernel/events/core.c`).
    Comm(CommRecord),
    /// `PERF_RECORD_FORK`: a watched task created a thread or process. `attr.comm = 1` also
    /// enables these (`perf_event_task_match`): the new task starts with its creator's name.
    Fork(TaskRecord),
    /// `PERF_RECORD_EXIT`: a watched task exited.
    Exit(TaskRecord),
    /// Any other record type (skipped by readers).
    Other {
        /// The `PERF_RECORD_*` value.
        type_: u32,
    },
    /// A record too short for its type: the ring content is not what we asked for.
    Malformed {
        /// The `PERF_RECORD_*` value.
        type_: u32,
        /// Its claimed size.
        size: u16,
    },
}

/// One `PERF_RECORD_COMM`: `{ u32 pid, tid; char comm[]; struct sample_id }`, the name
/// NUL-terminated and padded to 8 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommRecord {
    /// Process id of the renamed task.
    pub pid: i32,
    /// Thread id of the renamed task.
    pub tid: i32,
    /// The new name (at most 15 bytes: `TASK_COMM_LEN - 1`), lossily decoded as UTF-8.
    pub comm: String,
    /// `PERF_RECORD_MISC_COMM_EXEC`: the name changed because the task exec'd.
    pub exec: bool,
    /// The record's time from its `sample_id` trailer (same clock as the samples), or `None`
    /// when the record has no trailer (`sample_id_all = 0`).
    pub time: Option<u64>,
}

/// One `PERF_RECORD_FORK` or `PERF_RECORD_EXIT`: `{ u32 pid, ppid; u32 tid, ptid; u64 time }`
/// (`perf_event_task_output`). For a fork, `pid`/`tid` are the new task and `ppid`/`ptid` the
/// task that created it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskRecord {
    /// Process id of the task.
    pub pid: i32,
    /// Process id of the creating (fork) or parent (exit) task.
    pub ppid: i32,
    /// Thread id of the task.
    pub tid: i32,
    /// Thread id of the creating (fork) or parent (exit) task.
    pub ptid: i32,
    /// When, on the samples' clock.
    pub time: u64,
}

/// Bytes of the `struct sample_id` trailer that `sample_id_all = 1` appends to non-sample
/// records with our [`crate::perf::attr::BASE_SAMPLE_TYPE`]: `{pid, tid}`, `time`, `{cpu, res}`,
/// `identifier` (`__perf_event_header__init_id` in `kernel/events/core.c`).
pub const SAMPLE_ID_SIZE: usize = 32;

/// Offset of `time` from the end of a `sample_id` trailer of [`SAMPLE_ID_SIZE`] bytes.
const SAMPLE_ID_TIME_FROM_END: usize = 24;

fn parse_comm(misc: u16, body: &[u8]) -> Option<CommRecord> {
    let (ids, rest) = body.split_first_chunk::<8>()?;
    let pid = i32::from_ne_bytes([ids[0], ids[1], ids[2], ids[3]]);
    let tid = i32::from_ne_bytes([ids[4], ids[5], ids[6], ids[7]]);
    let name_len = rest.iter().position(|&b| b == 0)?;
    let comm = String::from_utf8_lossy(&rest[..name_len]).into_owned();
    // The name with its NUL, padded to 8 bytes; a trailer follows only if it fits after that.
    let padded = (name_len + 1).next_multiple_of(8);
    let time = (rest.len() >= padded + SAMPLE_ID_SIZE).then(|| {
        let at = rest.len() - SAMPLE_ID_TIME_FROM_END;
        u64::from_ne_bytes(rest[at..at + 8].try_into().expect("8-byte slice"))
    });
    Some(CommRecord {
        pid,
        tid,
        comm,
        exec: u32::from(misc) & bindings::PERF_RECORD_MISC_COMM_EXEC != 0,
        time,
    })
}

struct Words<'a> {
    bytes: &'a [u8],
}

impl Words<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = rest;
        Some(u64::from_ne_bytes(*head))
    }

    fn two_u32(&mut self) -> Option<(u32, u32)> {
        let (head, rest) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = rest;
        let lo = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
        let hi = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
        Some((lo, hi))
    }
}

/// Parses one record's body (the bytes after the header). `layout` says what the events'
/// `sample_type` adds to the base (a `bool`: whether `PERF_SAMPLE_CALLCHAIN` is set).
pub fn parse_record(
    header: RecordHeader,
    body: &[u8],
    layout: impl Into<SampleLayout>,
) -> RingRecord {
    let layout = layout.into();
    let malformed = RingRecord::Malformed {
        type_: header.type_,
        size: header.size,
    };
    let mut w = Words { bytes: body };
    match header.type_ {
        bindings::PERF_RECORD_SAMPLE => {
            let parsed = (|| {
                let identifier = w.u64()?;
                let ip = w.u64()?;
                let (pid, tid) = w.two_u32()?;
                let time = w.u64()?;
                let addr = w.u64()?;
                let (cpu, _res) = w.two_u32()?;
                let mut chain = Vec::new();
                if layout.callchain {
                    let nr = usize::try_from(w.u64()?).ok()?;
                    if nr > w.bytes.len() / 8 {
                        return None;
                    }
                    chain.reserve_exact(nr);
                    for _ in 0..nr {
                        chain.push(w.u64()?);
                    }
                }
                let mut regs_user = None;
                if layout.regs_user {
                    let abi = w.u64()?;
                    if abi != 0 {
                        let mut regs = [0u64; 16];
                        for slot in PERF_REG_TO_ENCODING {
                            regs[slot] = w.u64()?;
                        }
                        regs_user = Some(regs);
                    }
                }
                let mut stack_user = Vec::new();
                if layout.stack_user {
                    // `size`, then `size` bytes and `dyn_size` (the bytes copied) if size != 0.
                    let size = usize::try_from(w.u64()?).ok()?;
                    if size > 0 {
                        let (data, rest) = w.bytes.split_at_checked(size)?;
                        w.bytes = rest;
                        let copied = usize::try_from(w.u64()?).ok()?.min(size);
                        stack_user = data[..copied].to_vec();
                    }
                }
                Some(SampleRecord {
                    identifier,
                    ip,
                    pid: pid as i32,
                    tid: tid as i32,
                    time,
                    addr,
                    cpu,
                    cpumode: header.misc & 7,
                    callchain: chain,
                    regs_user,
                    stack_user,
                })
            })();
            parsed.map_or(malformed, RingRecord::Sample)
        }
        bindings::PERF_RECORD_LOST => match (w.u64(), w.u64()) {
            (Some(id), Some(lost)) => RingRecord::Lost { id, lost },
            _ => malformed,
        },
        bindings::PERF_RECORD_THROTTLE | bindings::PERF_RECORD_UNTHROTTLE => {
            match (w.u64(), w.u64()) {
                (Some(time), Some(id)) if header.type_ == bindings::PERF_RECORD_THROTTLE => {
                    RingRecord::Throttle { time, id }
                }
                (Some(time), Some(id)) => RingRecord::Unthrottle { time, id },
                _ => malformed,
            }
        }
        bindings::PERF_RECORD_COMM => {
            parse_comm(header.misc, body).map_or(malformed, RingRecord::Comm)
        }
        bindings::PERF_RECORD_FORK | bindings::PERF_RECORD_EXIT => {
            match (w.two_u32(), w.two_u32(), w.u64()) {
                (Some((pid, ppid)), Some((tid, ptid)), Some(time)) => {
                    let task = TaskRecord {
                        pid: pid as i32,
                        ppid: ppid as i32,
                        tid: tid as i32,
                        ptid: ptid as i32,
                        time,
                    };
                    if header.type_ == bindings::PERF_RECORD_FORK {
                        RingRecord::Fork(task)
                    } else {
                        RingRecord::Exit(task)
                    }
                }
                _ => malformed,
            }
        }
        type_ => RingRecord::Other { type_ },
    }
}

/// Copies `len` bytes starting at `offset` of the logical sequence `first ++ second`.
fn copy_out(first: &[u8], second: &[u8], offset: usize, len: usize, dst: &mut Vec<u8>) {
    dst.clear();
    if offset < first.len() {
        let end = (offset + len).min(first.len());
        dst.extend_from_slice(&first[offset..end]);
        dst.extend_from_slice(&second[..len - (end - offset)]);
    } else {
        let start = offset - first.len();
        dst.extend_from_slice(&second[start..start + len]);
    }
}

/// Parses every whole record in the unread bytes `first ++ second` (`second` is the part that
/// wrapped to the start of the ring; empty when nothing wrapped) and returns how many bytes were
/// consumed. A record whose header or body straddles the two slices is reassembled in
/// `scratch`. A trailing partial record is left unconsumed. A header with `size < 8` cannot be
/// skipped record by record, so it reports [`RingRecord::Malformed`] and consumes everything.
pub fn parse_unread(
    first: &[u8],
    second: &[u8],
    layout: impl Into<SampleLayout>,
    scratch: &mut Vec<u8>,
    on_record: &mut dyn FnMut(RingRecord),
) -> usize {
    let layout = layout.into();
    let total = first.len() + second.len();
    let mut pos = 0usize;
    while total - pos >= RecordHeader::SIZE {
        let header = if pos + RecordHeader::SIZE <= first.len() {
            let bytes: [u8; 8] = first[pos..pos + 8].try_into().expect("8-byte slice");
            RecordHeader::from_bytes(bytes)
        } else {
            copy_out(first, second, pos, RecordHeader::SIZE, scratch);
            RecordHeader::from_bytes(scratch[..8].try_into().expect("8-byte slice"))
        };
        let size = usize::from(header.size);
        if size < RecordHeader::SIZE {
            on_record(RingRecord::Malformed {
                type_: header.type_,
                size: header.size,
            });
            return total;
        }
        if total - pos < size {
            break;
        }
        let body_start = pos + RecordHeader::SIZE;
        let body_len = size - RecordHeader::SIZE;
        let record = if body_start + body_len <= first.len() {
            parse_record(header, &first[body_start..body_start + body_len], layout)
        } else if body_start >= first.len() {
            let start = body_start - first.len();
            parse_record(header, &second[start..start + body_len], layout)
        } else {
            copy_out(first, second, body_start, body_len, scratch);
            parse_record(header, scratch, layout)
        };
        on_record(record);
        pos += size;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_: u32, misc: u16, size: usize) -> Vec<u8> {
        let mut v = type_.to_ne_bytes().to_vec();
        v.extend_from_slice(&misc.to_ne_bytes());
        v.extend_from_slice(&(size as u16).to_ne_bytes());
        v
    }

    fn sample_bytes(id: u64, tid: u32, addr: u64, chain: Option<&[u64]>) -> Vec<u8> {
        let words = 6 + chain.map_or(0, |c| 1 + c.len());
        let mut v = header(bindings::PERF_RECORD_SAMPLE, 2, 8 + words * 8);
        for w in [id, 0x401000 + id] {
            v.extend_from_slice(&w.to_ne_bytes());
        }
        v.extend_from_slice(&1000u32.to_ne_bytes());
        v.extend_from_slice(&tid.to_ne_bytes());
        v.extend_from_slice(&(5_000 + id).to_ne_bytes());
        v.extend_from_slice(&addr.to_ne_bytes());
        v.extend_from_slice(&1u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        if let Some(chain) = chain {
            v.extend_from_slice(&(chain.len() as u64).to_ne_bytes());
            for ip in chain {
                v.extend_from_slice(&ip.to_ne_bytes());
            }
        }
        v
    }

    fn lost_bytes(id: u64, lost: u64) -> Vec<u8> {
        let mut v = header(bindings::PERF_RECORD_LOST, 0, 24);
        v.extend_from_slice(&id.to_ne_bytes());
        v.extend_from_slice(&lost.to_ne_bytes());
        v
    }

    /// A COMM record as the kernel lays it out, with a `sample_id` trailer whose time is
    /// `time` when given.
    fn comm_bytes(pid: u32, tid: u32, name: &str, exec: bool, time: Option<u64>) -> Vec<u8> {
        let mut body = pid.to_ne_bytes().to_vec();
        body.extend_from_slice(&tid.to_ne_bytes());
        body.extend_from_slice(name.as_bytes());
        body.resize(8 + (name.len() + 1).next_multiple_of(8), 0);
        if let Some(time) = time {
            body.extend_from_slice(&pid.to_ne_bytes());
            body.extend_from_slice(&tid.to_ne_bytes());
            body.extend_from_slice(&time.to_ne_bytes());
            body.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
            body.extend_from_slice(&77u64.to_ne_bytes());
        }
        let misc = if exec {
            bindings::PERF_RECORD_MISC_COMM_EXEC as u16
        } else {
            0
        };
        let mut v = header(bindings::PERF_RECORD_COMM, misc, 8 + body.len());
        v.extend(body);
        v
    }

    fn expected_sample(id: u64, tid: i32, addr: u64) -> SampleRecord {
        SampleRecord {
            identifier: id,
            ip: 0x401000 + id,
            pid: 1000,
            tid,
            time: 5_000 + id,
            addr,
            cpu: 1,
            cpumode: 2,
            callchain: Vec::new(),
            regs_user: None,
            stack_user: Vec::new(),
        }
    }

    /// Lays `stream` into a ring of `ring_len` bytes starting at `tail % ring_len`, and returns
    /// the two unread slices exactly as the mmap reader would build them.
    fn ring_with(stream: &[u8], ring_len: usize, tail: usize) -> (Vec<u8>, usize) {
        let mut ring = vec![0xAA; ring_len];
        for (i, b) in stream.iter().enumerate() {
            ring[(tail + i) % ring_len] = *b;
        }
        (ring, tail % ring_len)
    }

    fn parse_all(first: &[u8], second: &[u8], callchain: bool) -> (Vec<RingRecord>, usize) {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let used = parse_unread(first, second, callchain, &mut scratch, &mut |r| out.push(r));
        (out, used)
    }

    #[test]
    fn contiguous_records_parse_in_order() {
        let mut stream = sample_bytes(1, 11, 0x5000, None);
        stream.extend(lost_bytes(7, 3));
        stream.extend(sample_bytes(2, 12, 0x5008, None));
        let (records, used) = parse_all(&stream, &[], false);
        assert_eq!(used, stream.len());
        assert_eq!(
            records,
            vec![
                RingRecord::Sample(expected_sample(1, 11, 0x5000)),
                RingRecord::Lost { id: 7, lost: 3 },
                RingRecord::Sample(expected_sample(2, 12, 0x5008)),
            ]
        );
    }

    #[test]
    fn every_wrap_point_gives_the_same_records() {
        // Two samples and a LOST record, laid into a 256-byte ring at every possible tail, so
        // the wrap falls inside a header, inside a body, and exactly on record boundaries.
        let mut stream = sample_bytes(1, 11, 0x5000, None);
        stream.extend(lost_bytes(7, 3));
        stream.extend(sample_bytes(2, 12, 0x5008, None));
        let expected = parse_all(&stream, &[], false).0;
        let ring_len = 256;
        for tail in (0..ring_len).step_by(8) {
            let (ring, start) = ring_with(&stream, ring_len, tail);
            let (first, second) = if start + stream.len() <= ring_len {
                (&ring[start..start + stream.len()], &ring[..0])
            } else {
                (&ring[start..], &ring[..stream.len() - (ring_len - start)])
            };
            let (records, used) = parse_all(first, second, false);
            assert_eq!(used, stream.len(), "tail {tail}");
            assert_eq!(records, expected, "tail {tail}");
        }
    }

    #[test]
    fn header_split_across_the_end_is_reassembled() {
        let stream = sample_bytes(9, 99, 0x7000, None);
        // The first 4 header bytes at the end of the ring, the rest at its start.
        let (records, used) = parse_all(&stream[..4], &stream[4..], false);
        assert_eq!(used, stream.len());
        assert_eq!(
            records,
            vec![RingRecord::Sample(expected_sample(9, 99, 0x7000))]
        );
    }

    #[test]
    fn callchain_markers_are_split_from_frames() {
        let chain = [
            bindings::PERF_CONTEXT_KERNEL,
            0xffff_8000_0000_1000,
            bindings::PERF_CONTEXT_USER,
            0x401234,
            0x401500,
        ];
        let stream = sample_bytes(3, 5, 0x6000, Some(&chain));
        let (records, _) = parse_all(&stream[..40], &stream[40..], true);
        let RingRecord::Sample(sample) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(sample.callchain, chain);
        assert_eq!(
            sample.frames(),
            (vec![0xffff_8000_0000_1000, 0x401234, 0x401500], 1)
        );
        assert!(!sample.kernel_mode());
    }

    #[test]
    fn user_stack_follows_the_registers_cut_to_its_dynamic_size() {
        // BASE fields, REGS_USER (abi 2, 16 registers), then STACK_USER: size 16, 16 bytes,
        // dyn_size 12.
        let mut body = Vec::new();
        for word in [7u64, 0x40_1000, (2u64 << 32) | 2, 9, 0x5000, 0] {
            body.extend(word.to_ne_bytes());
        }
        body.extend(2u64.to_ne_bytes());
        for r in 0..16u64 {
            body.extend((0x100 + r).to_ne_bytes());
        }
        body.extend(16u64.to_ne_bytes());
        body.extend((1..=16u8).collect::<Vec<_>>());
        body.extend(12u64.to_ne_bytes());
        let header = RecordHeader {
            type_: bindings::PERF_RECORD_SAMPLE,
            misc: 2,
            size: (body.len() + 8) as u16,
        };
        let layout = SampleLayout {
            callchain: false,
            regs_user: true,
            stack_user: true,
        };
        let RingRecord::Sample(sample) = parse_record(header, &body, layout) else {
            panic!("a sample");
        };
        assert_eq!(sample.stack_user, (1..=12u8).collect::<Vec<_>>());
        // rsp is register 7 in the kernel's order, encoding slot 4.
        assert_eq!(sample.regs_user.unwrap()[4], 0x107);
    }

    #[test]
    fn user_registers_follow_the_callchain_in_encoding_order() {
        // A sample with a one-frame callchain, then REGS_USER: abi 2 (64-bit) and the 16
        // registers in the kernel's bit order AX, BX, CX, DX, SI, DI, BP, SP, R8..R15, each
        // holding 100 + its perf_regs index (R8 is index 16).
        let perf_index = [0u64, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
        let mut v = sample_bytes(3, 33, 0x6000, Some(&[0x40_1234]));
        v.extend_from_slice(&2u64.to_ne_bytes());
        for i in perf_index {
            v.extend_from_slice(&(100 + i).to_ne_bytes());
        }
        // A second sample whose task had no user registers (abi 0: nothing follows).
        let mut none = sample_bytes(4, 44, 0x6000, Some(&[]));
        none.extend_from_slice(&0u64.to_ne_bytes());
        for stream in [&mut v, &mut none] {
            let size = stream.len() as u16;
            stream[6..8].copy_from_slice(&size.to_ne_bytes());
        }
        v.extend(none);
        let layout = SampleLayout {
            callchain: true,
            regs_user: true,
            stack_user: false,
        };
        let mut scratch = Vec::new();
        let mut got = Vec::new();
        let consumed = parse_unread(&v, &[], layout, &mut scratch, &mut |r| got.push(r));
        assert_eq!(consumed, v.len());
        let [RingRecord::Sample(first), RingRecord::Sample(second)] = &got[..] else {
            panic!("expected two samples, got {got:?}");
        };
        assert_eq!(first.callchain, vec![0x40_1234]);
        // rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15.
        assert_eq!(
            first.regs_user,
            Some([100, 102, 103, 101, 107, 106, 104, 105, 116, 117, 118, 119, 120, 121, 122, 123])
        );
        assert_eq!((second.tid, second.regs_user), (44, None));
        // Without the layout bit the same bytes are not read as registers.
        let mut plain = Vec::new();
        parse_unread(&v, &[], true, &mut scratch, &mut |r| plain.push(r));
        assert!(plain
            .iter()
            .all(|r| matches!(r, RingRecord::Sample(s) if s.regs_user.is_none())));
    }

    #[test]
    fn comm_records_give_the_name_the_tid_and_the_trailer_time() {
        let mut stream = comm_bytes(1000, 1001, "maintenance", false, Some(123_456));
        // Exactly 7 bytes: the NUL fills the 8-byte slot, so no padding follows it.
        stream.extend(comm_bytes(1000, 1000, "rename7", true, Some(9)));
        // No trailer (sample_id_all = 0): the name is still read, the time is unknown.
        stream.extend(comm_bytes(2000, 2002, "x", false, None));
        stream.extend(sample_bytes(1, 1001, 0x5000, None));
        let (records, used) = parse_all(&stream[..21], &stream[21..], false);
        assert_eq!(used, stream.len());
        assert_eq!(
            records,
            vec![
                RingRecord::Comm(CommRecord {
                    pid: 1000,
                    tid: 1001,
                    comm: "maintenance".into(),
                    exec: false,
                    time: Some(123_456),
                }),
                RingRecord::Comm(CommRecord {
                    pid: 1000,
                    tid: 1000,
                    comm: "rename7".into(),
                    exec: true,
                    time: Some(9),
                }),
                RingRecord::Comm(CommRecord {
                    pid: 2000,
                    tid: 2002,
                    comm: "x".into(),
                    exec: false,
                    time: None,
                }),
                RingRecord::Sample(expected_sample(1, 1001, 0x5000)),
            ]
        );
        // The first record: header 8, pid/tid 8, "maintenance\0" padded to 16, trailer 32.
        assert_eq!(stream[6..8], 64u16.to_ne_bytes());
    }

    #[test]
    fn fork_and_exit_records_give_the_new_task_and_its_creator() {
        let task = |type_: u32, tid: u32, ptid: u32, time: u64| {
            let mut v = header(type_, 0, 8 + 24 + SAMPLE_ID_SIZE);
            for w in [1000u32, 1000, tid, ptid] {
                v.extend_from_slice(&w.to_ne_bytes());
            }
            v.extend_from_slice(&time.to_ne_bytes());
            v.extend(std::iter::repeat_n(0xEE, SAMPLE_ID_SIZE));
            v
        };
        let mut stream = task(bindings::PERF_RECORD_FORK, 1002, 1001, 50);
        stream.extend(task(bindings::PERF_RECORD_EXIT, 1002, 1001, 90));
        stream.extend(&header(bindings::PERF_RECORD_FORK, 0, 16)[..]);
        stream.extend([0u8; 8]);
        let (records, used) = parse_all(&stream, &[], false);
        assert_eq!(used, stream.len());
        let fork = TaskRecord {
            pid: 1000,
            ppid: 1000,
            tid: 1002,
            ptid: 1001,
            time: 50,
        };
        assert_eq!(
            records,
            vec![
                RingRecord::Fork(fork),
                RingRecord::Exit(TaskRecord { time: 90, ..fork }),
                RingRecord::Malformed {
                    type_: bindings::PERF_RECORD_FORK,
                    size: 16
                },
            ]
        );
    }

    #[test]
    fn a_comm_record_without_its_nul_is_malformed() {
        let mut stream = header(bindings::PERF_RECORD_COMM, 0, 24);
        stream.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0]);
        stream.extend_from_slice(b"abcdefgh");
        let (records, used) = parse_all(&stream, &[], false);
        assert_eq!(used, 24);
        assert_eq!(
            records,
            vec![RingRecord::Malformed {
                type_: bindings::PERF_RECORD_COMM,
                size: 24
            }]
        );
    }

    #[test]
    fn partial_trailing_record_is_left_for_later() {
        let mut stream = sample_bytes(1, 11, 0x5000, None);
        let whole = stream.len();
        stream.extend(&sample_bytes(2, 12, 0x5008, None)[..20]);
        let (records, used) = parse_all(&stream, &[], false);
        assert_eq!((records.len(), used), (1, whole));
    }

    #[test]
    fn garbage_never_panics_and_zero_size_stops_the_reader() {
        let (records, used) = parse_all(&[0u8; 16], &[], false);
        assert_eq!(used, 16);
        assert_eq!(records, vec![RingRecord::Malformed { type_: 0, size: 0 }]);
        // A sample whose size is too small for our sample_type.
        let short = header(bindings::PERF_RECORD_SAMPLE, 0, 16);
        let mut stream = short.clone();
        stream.extend([0u8; 8]);
        let (records, used) = parse_all(&stream, &[], false);
        assert_eq!(used, 16);
        assert_eq!(records, vec![RingRecord::Malformed { type_: 9, size: 16 }]);
        // A callchain count larger than the record.
        let mut stream = sample_bytes(1, 1, 1, Some(&[1, 2]));
        stream[56..64].copy_from_slice(&u64::MAX.to_ne_bytes());
        let (records, _) = parse_all(&stream, &[], true);
        assert!(matches!(records[0], RingRecord::Malformed { type_: 9, .. }));
        // Every prefix/split of a pseudo-random buffer terminates without panicking.
        let noise: Vec<u8> = (0u32..512)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for split in (0..noise.len()).step_by(7) {
            let (_, used) = parse_all(&noise[..split], &noise[split..], true);
            assert!(used <= noise.len());
        }
    }
}
