//! Builds the `perf_event_attr` of a hardware breakpoint (`PERF_TYPE_BREAKPOINT`, 5).
//!
//! Field rules follow `include/uapi/linux/perf_event.h`, `include/uapi/linux/hw_breakpoint.h`
//! and the checks in `kernel/events/core.c` (`perf_copy_attr`): `sigtrap` requires
//! `remove_on_exec`, `inherit_thread` requires `inherit`. Validation of the address, length
//! and alignment happens upstream in `hwbp-core`; the kernel re-checks it anyway
//! (`arch/x86/kernel/hw_breakpoint.c`, `hw_breakpoint_arch_parse`) and we report its `EINVAL`.

use std::fmt;

use hwbp_core::Access;
use perf_event_open_sys::bindings::{self, perf_event_attr};

/// One address range to watch: the breakpoint part of a perf event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchRequest {
    /// `bp_addr`: the data address (R/W) or instruction address (X).
    pub addr: u64,
    /// `bp_len`: 1, 2, 4 or 8 on x86; `sizeof(long)` for execute breakpoints.
    pub len: u64,
    /// What fires the breakpoint (`bp_type`).
    pub access: Access,
    /// `pinned`: the event must always be on a debug register. For breakpoints the slot is
    /// reserved when the event is created either way; pinned only changes scheduling.
    pub pinned: bool,
    /// `exclude_kernel`: ignore accesses made while the CPU is in kernel mode (e.g. `read(2)`
    /// filling a watched buffer).
    pub exclude_kernel: bool,
    /// `exclude_user`: ignore user-mode accesses (used for kernel-address watches).
    pub exclude_user: bool,
}

impl WatchRequest {
    /// A user-space watch with the usual flags: not pinned, kernel-mode accesses included.
    pub fn new(addr: u64, len: u64, access: Access) -> Self {
        WatchRequest {
            addr,
            len,
            access,
            pinned: false,
            exclude_kernel: false,
            exclude_user: false,
        }
    }
}

impl fmt::Display for WatchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.access {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read/write",
            Access::Execute => "execute",
        };
        write!(f, "{kind} watch on {:#x} ({} bytes)", self.addr, self.len)
    }
}

/// When the kernel wakes a reader blocked in `poll(2)` on the ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// `wakeup_events = n`: after every `n` samples. `Events(1)` gives the lowest latency and
    /// costs one wake-up per hit.
    Events(u32),
    /// `watermark = 1, wakeup_watermark = bytes`: when this many bytes are unread. Best for
    /// throughput; the reader's poll timeout bounds the latency for slow hit rates.
    Bytes(u32),
}

/// What each sample carries and how readers are woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleOptions {
    /// Add `PERF_SAMPLE_CALLCHAIN` (kernel and user frames; user frames need frame pointers).
    pub callchain: bool,
    /// Maximum callchain depth (`sample_max_stack`); `0` means the kernel's
    /// `/proc/sys/kernel/perf_event_max_stack`, which is read and written into the attr so
    /// later `MODIFY_ATTRIBUTES` calls send the same attr the kernel stored.
    pub max_stack: u16,
    /// Reader wake-up policy.
    pub wakeup: Wakeup,
    /// Add `PERF_SAMPLE_REGS_USER` with the 16 general-purpose registers
    /// ([`REGS_USER_MASK`]): the user registers at the hit, from which the value of a plain
    /// `mov` store can be recovered (`hwbp_symbols::store`).
    pub regs_user: bool,
    /// Add `PERF_SAMPLE_STACK_USER` with this many bytes (`sample_stack_user`, a multiple of 8;
    /// `0`: none), and the user registers with it: the stack from the user `sp` at the hit,
    /// for unwinding with the unwind tables (perf's `--call-graph dwarf,SIZE`). The kernel
    /// copies what is mapped up to that size and says how much (`dyn_size`;
    /// `perf_output_sample_ustack` in `kernel/events/core.c`).
    pub stack_user: u32,
    /// A BPF program ([`crate::bpf`]) takes every hit of the data watches (read, write) and
    /// never lets perf sample them: their events ask for no sample fields and write no
    /// side-band records. The kernel prepares a sample for the program at every hit
    /// (`perf_prepare_sample` in `bpf_overflow_handler`, `kernel/events/core.c`), at a cost
    /// that grows with `sample_type` (the base fields cost 5-10% of a trap here); the
    /// session's one side-band event per ring carries the names instead
    /// ([`side_band_attr`]). Execute watches keep their samples.
    pub in_kernel_handler: bool,
}

/// `sample_regs_user` for [`SampleOptions::regs_user`]: `AX, BX, CX, DX, SI, DI, BP, SP` and
/// `R8..R15` of `arch/x86/include/uapi/asm/perf_regs.h` (bits 0-7 and 16-23; not IP, FLAGS or
/// the segment registers). The kernel writes them in bit order; the ring parser returns them in
/// instruction-encoding order (`rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15`).
pub const REGS_USER_MASK: u64 = 0x00ff_00ff;

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            callchain: false,
            max_stack: 0,
            wakeup: Wakeup::Bytes(16 * 1024),
            regs_user: false,
            stack_user: 0,
            in_kernel_handler: false,
        }
    }
}

impl SampleOptions {
    /// Samples carry `PERF_SAMPLE_REGS_USER`: asked for, or needed by the user stack.
    pub fn with_regs_user(&self) -> bool {
        self.regs_user || self.stack_user > 0
    }
}

/// The fixed `sample_type` of every sample we ask for, in record order:
/// `IDENTIFIER, IP, TID (pid, tid), TIME, ADDR, CPU (cpu, res)`, then `CALLCHAIN` if asked.
pub const BASE_SAMPLE_TYPE: u64 = (bindings::PERF_SAMPLE_IDENTIFIER
    | bindings::PERF_SAMPLE_IP
    | bindings::PERF_SAMPLE_TID
    | bindings::PERF_SAMPLE_TIME
    | bindings::PERF_SAMPLE_ADDR
    | bindings::PERF_SAMPLE_CPU) as u64;

/// The base `read_format` of every event: `read(2)` returns `{value, time_enabled,
/// time_running}`, followed by `lost` when [`read_format`] adds `PERF_FORMAT_LOST`.
pub const READ_FORMAT: u64 =
    (bindings::PERF_FORMAT_TOTAL_TIME_ENABLED | bindings::PERF_FORMAT_TOTAL_TIME_RUNNING) as u64;

/// `PERF_FORMAT_LOST` (Linux 6.0): the number of samples of this event the kernel dropped
/// because its ring was full. Unlike `PERF_RECORD_LOST`, which the kernel only writes once
/// the ring has room again, this is exact at any time.
pub const PERF_FORMAT_LOST: u64 = bindings::PERF_FORMAT_LOST as u64;

/// True if the running kernel accepts `PERF_FORMAT_LOST` (6.0 or newer; older kernels refuse
/// unknown `read_format` bits with `EINVAL`). Read once from `/proc/sys/kernel/osrelease`.
pub fn kernel_has_format_lost() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|release| {
                let major: u32 = release.trim().split(['.', '-']).next()?.parse().ok()?;
                Some(major >= 6)
            })
            .unwrap_or(false)
    })
}

/// The `read_format` we open events with: [`READ_FORMAT`], plus [`PERF_FORMAT_LOST`] where
/// the kernel has it.
pub fn read_format() -> u64 {
    if kernel_has_format_lost() {
        READ_FORMAT | PERF_FORMAT_LOST
    } else {
        READ_FORMAT
    }
}

/// The clock of sample and record times (`attr.clockid` with `use_clockid = 1`):
/// `CLOCK_MONOTONIC`, so a reader can compare them with `clock_gettime(CLOCK_MONOTONIC)`.
/// It is NMI-safe, which `perf_event_set_clock` requires for PMUs that may sample from NMI.
pub const SAMPLE_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// Builds a sampling breakpoint attr: `sample_period = 1` (every hit is a sample), created
/// disabled, `inherit` as asked (task events only: threads the target creates later get a
/// copy of the event whose samples go to the parent's ring).
///
/// Times are [`SAMPLE_CLOCK`] nanoseconds. `comm = 1` and `comm_exec = 1` make the kernel
/// write a `PERF_RECORD_COMM` into the ring whenever a watched task (or an inherited child)
/// sets its name or execs, and `sample_id_all = 1` gives those records the samples' `{pid,
/// tid}`, `time`, `cpu` and `identifier` (`perf_event_comm_output` in `kernel/events/core.c`),
/// so a reader names short-lived threads without racing their exit against `/proc`.
pub fn breakpoint_attr(
    watch: &WatchRequest,
    sample: &SampleOptions,
    inherit: bool,
) -> perf_event_attr {
    let mut attr = counting_attr(watch);
    attr.sample_period = 1;
    attr.set_inherit(inherit.into());
    // Every event of a ring needs the same clock (`perf_event_set_output`).
    attr.set_use_clockid(1);
    attr.clockid = SAMPLE_CLOCK;
    if sample.in_kernel_handler && watch.access != Access::Execute {
        // The program's: no sample fields, no COMM/FORK records.
        return attr;
    }
    attr.sample_type = BASE_SAMPLE_TYPE;
    if sample.callchain {
        attr.sample_type |= bindings::PERF_SAMPLE_CALLCHAIN as u64;
        attr.sample_max_stack = if sample.max_stack != 0 {
            sample.max_stack
        } else {
            crate::error::read_proc_int("/proc/sys/kernel/perf_event_max_stack")
                .and_then(|m| u16::try_from(m).ok())
                .unwrap_or(127)
        };
    }
    if sample.with_regs_user() {
        attr.sample_type |= bindings::PERF_SAMPLE_REGS_USER as u64;
        attr.sample_regs_user = REGS_USER_MASK;
    }
    if sample.stack_user > 0 {
        attr.sample_type |= bindings::PERF_SAMPLE_STACK_USER as u64;
        attr.sample_stack_user = sample.stack_user;
    }
    set_side_band(&mut attr);
    match sample.wakeup {
        Wakeup::Events(n) => attr.wakeup_events = n.max(1),
        Wakeup::Bytes(bytes) => {
            attr.set_watermark(1);
            attr.wakeup_watermark = bytes.max(1);
        }
    }
    attr
}

/// Asks for `COMM` and `FORK` records with the `sample_id_all` fields.
fn set_side_band(attr: &mut perf_event_attr) {
    attr.set_comm(1);
    attr.set_comm_exec(1);
    attr.set_sample_id_all(1);
}

/// The side-band event of a ring whose data watches belong to an in-kernel handler
/// ([`SampleOptions::in_kernel_handler`]): a software dummy event (`PERF_COUNT_SW_DUMMY`,
/// as `perf record` uses for tracking) that counts nothing, uses no debug register and only
/// writes `COMM`/`FORK` records, with the [`BASE_SAMPLE_TYPE`] id fields the ring parser
/// expects. Created disabled; `inherit` for task scopes.
pub fn side_band_attr(inherit: bool) -> perf_event_attr {
    let mut attr = perf_event_attr {
        type_: bindings::PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<perf_event_attr>() as u32,
        config: bindings::PERF_COUNT_SW_DUMMY as u64,
        read_format: read_format(),
        sample_type: BASE_SAMPLE_TYPE,
        ..Default::default()
    };
    attr.set_disabled(1);
    attr.set_exclude_hv(1);
    attr.set_inherit(inherit.into());
    attr.set_use_clockid(1);
    attr.clockid = SAMPLE_CLOCK;
    set_side_band(&mut attr);
    attr
}

/// The common part: type, size, breakpoint fields, privilege filters, created disabled,
/// `precise_ip = 0` (breakpoints are exact by nature; the x86 PMU has no skid for them).
pub fn counting_attr(watch: &WatchRequest) -> perf_event_attr {
    let mut attr = perf_event_attr {
        type_: bindings::PERF_TYPE_BREAKPOINT,
        size: std::mem::size_of::<perf_event_attr>() as u32,
        config: 0,
        read_format: read_format(),
        ..Default::default()
    };
    set_breakpoint(&mut attr, watch);
    attr.set_disabled(1);
    attr.set_pinned(watch.pinned.into());
    attr.set_exclude_kernel(watch.exclude_kernel.into());
    attr.set_exclude_user(watch.exclude_user.into());
    attr.set_exclude_hv(1);
    attr.set_precise_ip(0);
    attr
}

/// Writes `bp_type`, `bp_addr` and `bp_len` (the only fields `MODIFY_ATTRIBUTES` may change,
/// along with `disabled`).
pub fn set_breakpoint(attr: &mut perf_event_attr, watch: &WatchRequest) {
    attr.bp_type = watch.access.bp_type().0;
    attr.bp_addr = watch.addr;
    attr.bp_len = watch.len;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_owned_data_watches_ask_for_nothing_and_execute_watches_keep_their_samples() {
        let sample = SampleOptions {
            in_kernel_handler: true,
            regs_user: true,
            callchain: true,
            ..SampleOptions::default()
        };
        let data = breakpoint_attr(&WatchRequest::new(0x1000, 8, Access::Write), &sample, true);
        assert_eq!((data.sample_period, data.sample_type), (1, 0));
        assert_eq!(
            (data.comm(), data.comm_exec(), data.sample_id_all()),
            (0, 0, 0)
        );
        assert_eq!((data.inherit(), data.disabled()), (1, 1));
        // One clock for every event of a ring, or SET_OUTPUT refuses.
        assert_eq!((data.use_clockid(), data.clockid), (1, SAMPLE_CLOCK));
        let exec = breakpoint_attr(
            &WatchRequest::new(0x1000, 8, Access::Execute),
            &sample,
            true,
        );
        assert_eq!(exec.sample_type & BASE_SAMPLE_TYPE, BASE_SAMPLE_TYPE);
        assert_eq!(exec.comm(), 1);
        let side = side_band_attr(true);
        assert_eq!((side.type_, side.config), (1, 9));
        assert_eq!(
            (side.sample_period, side.sample_type),
            (0, BASE_SAMPLE_TYPE)
        );
        assert_eq!(
            (side.comm(), side.comm_exec(), side.sample_id_all()),
            (1, 1, 1)
        );
        assert_eq!((side.use_clockid(), side.clockid), (1, SAMPLE_CLOCK));
        assert_eq!((side.inherit(), side.disabled()), (1, 1));
    }

    #[test]
    fn sampling_attr_has_the_fields_the_ring_parser_expects() {
        let watch = WatchRequest {
            pinned: true,
            ..WatchRequest::new(0x1000, 8, Access::Write)
        };
        let attr = breakpoint_attr(&watch, &SampleOptions::default(), true);
        assert_eq!(attr.type_, 5);
        assert_eq!(attr.bp_type, 2);
        assert_eq!(attr.bp_addr, 0x1000);
        assert_eq!(attr.bp_len, 8);
        assert_eq!(attr.sample_period, 1);
        assert_eq!(attr.sample_type, 0x10000 | 1 | 2 | 4 | 8 | 0x80);
        assert_eq!(attr.read_format & 3, 3);
        assert_eq!(attr.read_format & 16 != 0, kernel_has_format_lost());
        assert_eq!((attr.disabled(), attr.inherit(), attr.pinned()), (1, 1, 1));
        assert_eq!((attr.watermark(), attr.wakeup_watermark), (1, 16 * 1024));
        assert_eq!(
            (
                attr.exclude_kernel(),
                attr.exclude_user(),
                attr.precise_ip()
            ),
            (0, 0, 0)
        );
        assert_eq!(attr.size as usize, std::mem::size_of::<perf_event_attr>());
        assert_eq!((attr.use_clockid(), attr.clockid), (1, 1));
        assert_eq!(
            (attr.comm(), attr.comm_exec(), attr.sample_id_all()),
            (1, 1, 1)
        );
    }

    #[test]
    fn callchain_adds_the_bit_and_a_depth() {
        let watch = WatchRequest::new(0x2000, 4, Access::ReadWrite);
        let sample = SampleOptions {
            callchain: true,
            max_stack: 32,
            wakeup: Wakeup::Events(1),
            ..SampleOptions::default()
        };
        let attr = breakpoint_attr(&watch, &sample, false);
        assert_eq!(attr.sample_type, BASE_SAMPLE_TYPE | 0x20);
        assert_eq!(attr.sample_max_stack, 32);
        assert_eq!(
            (attr.inherit(), attr.watermark(), attr.wakeup_events),
            (0, 0, 1)
        );
        assert_eq!(attr.bp_type, 3);
    }

    #[test]
    fn stack_user_adds_the_bit_its_size_and_the_registers() {
        let watch = WatchRequest::new(0x2000, 8, Access::Write);
        let sample = SampleOptions {
            stack_user: 8192,
            ..SampleOptions::default()
        };
        let attr = breakpoint_attr(&watch, &sample, true);
        assert_eq!(attr.sample_type, BASE_SAMPLE_TYPE | 0x1000 | 0x2000);
        assert_eq!(
            (attr.sample_stack_user, attr.sample_regs_user),
            (8192, 0x00ff_00ff)
        );
    }

    #[test]
    fn regs_user_adds_the_bit_and_the_sixteen_gprs() {
        let watch = WatchRequest::new(0x2000, 8, Access::Write);
        let sample = SampleOptions {
            regs_user: true,
            ..SampleOptions::default()
        };
        let attr = breakpoint_attr(&watch, &sample, true);
        assert_eq!(attr.sample_type, BASE_SAMPLE_TYPE | 0x1000);
        assert_eq!(attr.sample_regs_user, 0x00ff_00ff);
        assert_eq!(attr.sample_regs_user.count_ones(), 16);
    }

    #[test]
    fn watch_reads_in_user_terms() {
        let watch = WatchRequest::new(0x1000, 8, Access::Write);
        assert_eq!(watch.to_string(), "write watch on 0x1000 (8 bytes)");
    }
}
