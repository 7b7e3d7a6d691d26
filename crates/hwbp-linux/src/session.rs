//! A watch session: a set of breakpoint watches on threads and/or CPUs, sampled into one ring
//! buffer per CPU, read by [`WatchSession::poll`].
//!
//! Kernel behaviour it follows (`kernel/events/core.c` unless noted):
//! - One event per (watch × thread × CPU) for thread scopes (`pid = tid`, `cpu = c`, `inherit`),
//!   because an inherited event on `cpu = -1` cannot be mmapped (`perf_mmap`). Threads the
//!   watched thread creates later get a copy of each event (`inherit_event`); their samples go
//!   to the parent event's buffer and carry the parent's id (`primary_event_id`).
//! - One event per (watch × CPU) for CPU scopes (`pid = -1`).
//! - One ring per CPU: the first event opened on a CPU owns the mapping and every later event
//!   on that CPU is redirected to it with `PERF_EVENT_IOC_SET_OUTPUT` (which requires the same
//!   CPU, `perf_event_set_output`).
//! - A task event polls `POLLHUP` once its task has exited and it has no live inherited
//!   children (`is_event_hup`), which is how [`WatchSession::poll`] knows the target is gone.
//! - Every event has `comm = 1`: a task that renames itself or execs writes a
//!   `PERF_RECORD_COMM` into the ring of the event that watches it (`perf_event_comm`), which
//!   [`WatchSession::poll`] delivers as [`Record::Comm`]. With one event per watch on the
//!   task's CPU, a rename is delivered once per watch. `comm = 1` also enables
//!   `PERF_RECORD_FORK` (`perf_event_task_match`), delivered as [`Record::Fork`].
//! - With [`SampleOptions::in_kernel_handler`] the data watches' events are the BPF
//!   program's ([`WatchSession::attach_handler`]): no sample fields, no `comm`; each ring gets
//!   one software dummy event (`PERF_COUNT_SW_DUMMY`) that writes the `COMM`/`FORK` records
//!   instead, once per rename. Every event of a ring has the same clock, which
//!   `PERF_EVENT_IOC_SET_OUTPUT` requires (`perf_event_set_output`).
//! - Slots are reserved when an event is created (`reserve_bp_slot` in
//!   `kernel/events/hw_breakpoint.c`), so [`WatchSession::open`] fails with `ENOSPC` up front
//!   instead of silently not counting later.
//!
//! ```no_run
//! use std::time::Duration;
//! use hwbp_core::Access;
//! use hwbp_linux::perf::WatchRequest;
//! use hwbp_linux::session::{online_cpus, EventScope, Record, SessionOptions, WatchSession};
//!
//! # fn main() -> Result<(), hwbp_linux::Error> {
//! let watch = WatchRequest::new(0x5555_5555_8010, 8, Access::Write);
//! let mut session =
//!     WatchSession::open(&[watch], &[EventScope::Thread(1234)], &online_cpus()?, &SessionOptions::default())?;
//! session.enable()?;
//! loop {
//!     let outcome = session.poll(Duration::from_millis(100), &mut |record| {
//!         if let Record::Hit(hit) = record {
//!             println!("tid {} wrote {:#x} at ip {:#x}", hit.tid, hit.addr, hit.ip);
//!         }
//!     })?;
//!     if outcome.all_exited {
//!         break;
//!     }
//! }
//! println!("{:?}, lost {}", session.counts()?, session.lost());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use std::time::Duration;

use nix::errno::Errno;
use perf_event_open_sys::bindings::perf_event_attr;

use crate::error::Error;
use crate::perf::attr::{breakpoint_attr, set_breakpoint};
use crate::perf::{SampleOptions, WatchRequest};
use crate::ring::{MappedRing, RingRecord};
use crate::sys::perf::{self as sys, EventTarget, PerfSys, RealPerfSys};

/// Where a session's events count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventScope {
    /// One thread (and, with [`SessionOptions::inherit`], every thread or child it creates
    /// after the session is opened). For a whole process pass one scope per entry of
    /// `/proc/PID/task`.
    Thread(i32),
    /// Every task running on one CPU (`pid = -1`). Needs `perf_event_paranoid <= 0` or
    /// `CAP_PERFMON`.
    Cpu(u32),
}

/// How a session samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// What each sample carries and when the reader is woken.
    pub sample: SampleOptions,
    /// Data pages per CPU ring; a power of two. The default, 128 pages (512 KiB with 4 KiB
    /// pages, as `perf record` uses), holds about 9,300 hits without callchains (~90 ms at
    /// 100k hits/s) and, with the metadata page, fits the unprivileged locked-memory budget
    /// (`/proc/sys/kernel/perf_event_mlock_kb`, 516 KiB per CPU by default).
    pub ring_pages: usize,
    /// Follow threads created later by watched threads (`inherit = 1`). Ignored for CPU scopes.
    pub inherit: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            sample: SampleOptions::default(),
            ring_pages: 128,
            inherit: true,
        }
    }
}

/// One breakpoint hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index of the watch in the slice given to [`WatchSession::open`].
    pub watch: usize,
    /// `PERF_SAMPLE_TIME`: `CLOCK_MONOTONIC` nanoseconds
    /// ([`crate::perf::attr::SAMPLE_CLOCK`]), comparable with `clock_gettime`.
    pub time_ns: u64,
    /// CPU the access happened on.
    pub cpu: u32,
    /// Process id of the accessing task.
    pub pid: i32,
    /// Thread id of the accessing task.
    pub tid: i32,
    /// Sampled instruction pointer. On x86 data watches trap *after* the access, so this is
    /// the next instruction; symbolize `ip - 1` to name the accessing one.
    pub ip: u64,
    /// The watched address (`bp_addr`), not the exact byte accessed.
    pub addr: u64,
    /// The access happened in kernel mode (e.g. a syscall filling a watched buffer).
    pub kernel_mode: bool,
    /// Callchain frames without `PERF_CONTEXT_*` markers, innermost first; empty unless
    /// [`SampleOptions::callchain`] was set.
    pub callchain: Vec<u64>,
    /// The first `callchain_kernel_frames` entries of `callchain` are kernel addresses; the
    /// rest are user addresses.
    pub callchain_kernel_frames: usize,
    /// The user-mode general-purpose registers at the hit, in instruction-encoding order
    /// (`rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15`), when
    /// [`SampleOptions::regs_user`] was set and the task had user registers. For a
    /// kernel-mode access these are the registers at the system call, not at the access.
    pub registers: Option<Box<[u64; 16]>>,
    /// The user stack from `sp` up, when [`SampleOptions::stack_user`] was set (empty
    /// otherwise, or when the task had no user registers).
    pub stack_user: Vec<u8>,
}

/// Something read from a ring buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A breakpoint hit.
    Hit(Hit),
    /// The ring was full and the kernel dropped `count` samples (`PERF_RECORD_LOST`). Counts
    /// from [`WatchSession::counts`] still include them.
    Lost {
        /// Dropped samples.
        count: u64,
    },
    /// The kernel throttled a watch for exceeding `kernel.perf_event_max_sample_rate`; hits
    /// are not even counted until [`Record::Unthrottle`].
    Throttle,
    /// Throttling ended.
    Unthrottle,
    /// A watched task (or a thread it created) set its name or exec'd: from now on `tid` is
    /// called `comm`. Delivered even when the thread exits right after, so hits can be named
    /// without reading `/proc`, where an exited thread is gone.
    Comm {
        /// Process id.
        pid: i32,
        /// Thread id.
        tid: i32,
        /// The new name (at most 15 bytes).
        comm: String,
        /// The name changed because the task exec'd.
        exec: bool,
        /// When, on the samples' clock ([`Hit::time_ns`]); `None` if the kernel gave no time.
        time_ns: Option<u64>,
    },
    /// A watched task created thread `tid` (of process `pid`): the new thread is watched too
    /// (with [`SessionOptions::inherit`]) and is called what its creator `ptid` was called
    /// until it names itself ([`Record::Comm`]).
    Fork {
        /// Process id of the new task.
        pid: i32,
        /// Thread id of the new task.
        tid: i32,
        /// Process id of the creator.
        ppid: i32,
        /// Thread id of the creator.
        ptid: i32,
        /// When, on the samples' clock.
        time_ns: u64,
    },
}

/// What one [`WatchSession::poll`] call saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Records delivered to the callback.
    pub records: usize,
    /// The session has thread scopes and every one of their tasks (with inherited children)
    /// has exited. All their records have been delivered.
    pub all_exited: bool,
}

/// Exact hit count of one watch, summed over its events (and their inherited children).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchCount {
    /// Index of the watch.
    pub watch: usize,
    /// Number of hits.
    pub count: u64,
    /// Sum over the watch's events of the time they were enabled (ns).
    pub time_enabled: u64,
    /// Sum of the time they were on a debug register (ns); less than `time_enabled` means the
    /// watch was multiplexed or throttled for a while.
    pub time_running: u64,
    /// Samples of this watch the kernel dropped because a ring was full (`PERF_FORMAT_LOST`,
    /// Linux 6.0+; `None` on older kernels). Exact at any time, unlike [`WatchSession::lost`],
    /// which only sees `PERF_RECORD_LOST` records once the kernel could write them.
    pub lost: Option<u64>,
}

#[derive(Debug)]
struct WatchEvent {
    fd: OwnedFd,
    id: u64,
    watch: usize,
    is_task: bool,
    /// The CPU the event counts on (`cpu` of `perf_event_open`).
    cpu: u32,
    hung_up: bool,
    what: String,
    /// The ring's side-band event ([`crate::perf::attr::side_band_attr`]), not a watch's:
    /// `watch` is meaningless and it counts nothing.
    side_band: bool,
}

#[derive(Debug)]
struct CpuRing {
    cpu: u32,
    /// Index in `events` of the event whose fd was mapped; `None` for a moment inside
    /// [`WatchSession::remove_cpu`], between closing it and unmapping the ring.
    owner: Option<usize>,
    ring: MappedRing,
}

/// A set of armed (or armable) watches and their ring buffers. Dropping it closes every event,
/// which frees the debug registers.
pub struct WatchSession {
    sys: Box<dyn PerfSys>,
    watches: Vec<WatchRequest>,
    attrs: Vec<perf_event_attr>,
    cpus: Vec<u32>,
    opts: SessionOptions,
    // Field order matters for Drop only in that rings and events are independent: a mapping
    // keeps the kernel buffer alive after its owner fd is closed.
    events: Vec<WatchEvent>,
    rings: Vec<CpuRing>,
    id_to_watch: HashMap<u64, usize>,
    enabled: bool,
    /// The in-kernel hit handler's program, attached to every data watch's event, also to
    /// those opened later (before they are enabled).
    handler_prog: Option<OwnedFd>,
    /// Counts of events closed by [`WatchSession::remove_cpu`], per watch, still reported by
    /// [`WatchSession::counts`].
    retired: Vec<WatchCount>,
    /// `PERF_RECORD_LOST` and `PERF_RECORD_THROTTLE` tallies of rings unmapped by
    /// [`WatchSession::remove_cpu`].
    retired_lost: u64,
    retired_throttled: u64,
}

impl std::fmt::Debug for WatchSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSession")
            .field("watches", &self.watches)
            .field("cpus", &self.cpus)
            .field("events", &self.events.len())
            .field("rings", &self.rings.len())
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// The online CPUs, ascending, from `/sys/devices/system/cpu/online` (e.g. `0-3,6`); the one
/// parser is [`crate::target::parse_cpu_list`].
pub fn online_cpus() -> Result<Vec<u32>, Error> {
    crate::target::online_cpus().map_err(|e| Error::InvalidRequest(e.to_string()))
}

/// `PERF_EVENT_IOC_SET_BPF`: runs `prog` at every overflow of `event`.
fn attach_program(event: BorrowedFd<'_>, prog: BorrowedFd<'_>, what: &str) -> Result<(), Error> {
    // SAFETY: a plain ioctl on a perf fd we borrow; the argument is the program's fd number,
    // which lives across the call (the kernel takes its own reference to the program).
    let ret =
        unsafe { perf_event_open_sys::ioctls::SET_BPF(event.as_raw_fd(), prog.as_raw_fd() as u32) };
    if ret < 0 {
        return Err(Error::Ioctl {
            op: "PERF_EVENT_IOC_SET_BPF",
            what: what.to_string(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// Adds one event's reading to its watch's total.
fn add_reading(count: &mut WatchCount, reading: &sys::CountReading) {
    count.lost = reading.lost.map(|l| l + count.lost.unwrap_or(0));
    count.count += reading.value;
    count.time_enabled += reading.time_enabled;
    count.time_running += reading.time_running;
}

impl WatchSession {
    /// Opens one event per (watch × scope × CPU), all disabled. All-or-nothing: if any event
    /// cannot be opened, every event opened so far is closed and the error names the watch and
    /// the thread/CPU that refused, and why.
    ///
    /// `cpus` is the set of online CPUs (see [`online_cpus`]); thread scopes get one event
    /// per CPU in it.
    pub fn open(
        watches: &[WatchRequest],
        scopes: &[EventScope],
        cpus: &[u32],
        opts: &SessionOptions,
    ) -> Result<Self, Error> {
        Self::open_with(Box::new(RealPerfSys), watches, scopes, cpus, opts)
    }

    /// [`WatchSession::open`] through a custom [`PerfSys`] (for tests that pin error paths).
    pub fn open_with(
        sys: Box<dyn PerfSys>,
        watches: &[WatchRequest],
        scopes: &[EventScope],
        cpus: &[u32],
        opts: &SessionOptions,
    ) -> Result<Self, Error> {
        if watches.is_empty() || scopes.is_empty() {
            return Err(Error::InvalidRequest(
                "a session needs at least one watch and one thread or CPU".into(),
            ));
        }
        if !opts.ring_pages.is_power_of_two() {
            return Err(Error::InvalidRequest(format!(
                "ring size must be a power of two pages, got {}",
                opts.ring_pages
            )));
        }
        if cpus.is_empty() && scopes.iter().any(|s| matches!(s, EventScope::Thread(_))) {
            return Err(Error::InvalidRequest(
                "thread scopes need the list of online CPUs".into(),
            ));
        }
        let attrs = watches
            .iter()
            .map(|w| breakpoint_attr(w, &opts.sample, opts.inherit))
            .collect();
        let mut session = WatchSession {
            sys,
            watches: watches.to_vec(),
            attrs,
            cpus: cpus.to_vec(),
            opts: *opts,
            events: Vec::new(),
            rings: Vec::new(),
            id_to_watch: HashMap::new(),
            enabled: false,
            handler_prog: None,
            retired: Vec::new(),
            retired_lost: 0,
            retired_throttled: 0,
        };
        for scope in scopes {
            // On error `session` drops here: every fd is closed and every ring unmapped.
            session.open_scope(*scope)?;
        }
        Ok(session)
    }

    /// Watches a thread discovered after the session was opened, with every watch on every
    /// CPU; enabled at once if the session is. All-or-nothing for that thread.
    pub fn add_thread(&mut self, tid: i32) -> Result<(), Error> {
        self.add_scope(EventScope::Thread(tid))
    }

    /// Watches every task on `cpu` (a CPU that came online after the session was opened, or
    /// came back after [`WatchSession::remove_cpu`]), with every watch; enabled at once if the
    /// session is. All-or-nothing for that CPU. Does nothing if the session already has live
    /// CPU-wide events there.
    ///
    /// An event on a CPU that goes offline is dead for good: `perf_event_exit_cpu_context`
    /// (`kernel/events/core.c`) detaches it, and neither `PERF_EVENT_IOC_ENABLE` nor the CPU
    /// coming back revives it, so a CPU that returns needs new events.
    pub fn add_cpu(&mut self, cpu: u32) -> Result<(), Error> {
        if self.events.iter().any(|e| !e.is_task && e.cpu == cpu) {
            return Ok(());
        }
        self.add_scope(EventScope::Cpu(cpu))
    }

    /// Closes the CPU-wide events on `cpu` (call it when the CPU went offline): their hits
    /// stay in [`WatchSession::counts`], every record in the rings is first delivered to
    /// `on_record` (as [`WatchSession::drain`] does), and the debug registers they reserved are
    /// freed (a dead event keeps its slot until its file is released, `release_bp_slot` in
    /// `kernel/events/hw_breakpoint.c`, and a mapped ring holds its owner's file, so the ring
    /// of that CPU is unmapped too unless thread-scope events still use it). Returns how many
    /// events were closed. Thread-scope events are left alone: they live in the task's
    /// context, not the CPU's.
    pub fn remove_cpu(
        &mut self,
        cpu: u32,
        on_record: &mut dyn FnMut(Record),
    ) -> Result<usize, Error> {
        let closing = |e: &WatchEvent| !e.is_task && e.cpu == cpu;
        for event in self.events.iter().filter(|e| closing(e)) {
            // Already dead if the CPU is offline; stops counting if it is not.
            let _ = sys::disable(event.fd.as_fd(), &event.what);
            if event.side_band {
                continue;
            }
            let reading = sys::read_count(event.fd.as_fd(), &event.what)?;
            if self.retired.is_empty() {
                self.retired = (0..self.watches.len())
                    .map(|watch| WatchCount {
                        watch,
                        ..WatchCount::default()
                    })
                    .collect();
            }
            add_reading(&mut self.retired[event.watch], &reading);
        }
        // Old index -> new index for the events that stay.
        let mut new_index = Vec::with_capacity(self.events.len());
        let mut kept = 0;
        for event in &self.events {
            if closing(event) {
                new_index.push(None);
            } else {
                new_index.push(Some(kept));
                kept += 1;
            }
        }
        for ring in &mut self.rings {
            ring.owner = ring.owner.and_then(|owner| new_index[owner]);
        }
        // Ids stay in `id_to_watch`: records of the closed events may still be in the ring.
        let before = self.events.len();
        self.events.retain(|e| !closing(e));
        self.drain(on_record);
        for ring in self.rings.iter().filter(|r| r.owner.is_none()) {
            self.retired_lost += ring.ring.stats().lost;
            self.retired_throttled += ring.ring.stats().throttled;
        }
        self.rings.retain(|r| r.owner.is_some());
        Ok(before - self.events.len())
    }

    /// The CPUs that have live CPU-wide events, ascending.
    pub fn watched_cpus(&self) -> Vec<u32> {
        let mut cpus: Vec<u32> = self
            .events
            .iter()
            .filter(|e| !e.is_task)
            .map(|e| e.cpu)
            .collect();
        cpus.sort_unstable();
        cpus.dedup();
        cpus
    }

    fn add_scope(&mut self, scope: EventScope) -> Result<(), Error> {
        let (events_before, rings_before) = (self.events.len(), self.rings.len());
        let result = self.open_scope(scope).and_then(|()| {
            if self.enabled {
                for event in &self.events[events_before..] {
                    sys::enable(event.fd.as_fd(), &event.what)?;
                }
            }
            Ok(())
        });
        if result.is_err() {
            // Rings created for this thread are owned by its events: drop both.
            self.rings.truncate(rings_before);
            for event in self.events.drain(events_before..) {
                self.id_to_watch.remove(&event.id);
            }
        }
        result
    }

    fn open_scope(&mut self, scope: EventScope) -> Result<(), Error> {
        let (pid, cpus, is_task) = match scope {
            EventScope::Thread(tid) => (tid, self.cpus.clone(), true),
            EventScope::Cpu(cpu) => (-1, vec![cpu], false),
        };
        for cpu in cpus {
            let target = EventTarget {
                pid,
                cpu: cpu as i32,
            };
            for watch in 0..self.watches.len() {
                let mut attr = self.attrs[watch];
                if !is_task {
                    attr.set_inherit(0);
                }
                let watch_text = self.watches[watch].to_string();
                let fd = sys::open_breakpoint(
                    self.sys.as_ref(),
                    &mut attr,
                    target,
                    &watch_text,
                    self.watches.len(),
                )?;
                let what = format!("{watch_text} in {target}");
                if let Some(prog) = &self.handler_prog {
                    if self.watches[watch].access != hwbp_core::Access::Execute {
                        attach_program(fd.as_fd(), prog.as_fd(), &what)?;
                    }
                }
                let id = self.add_event(&fd, cpu, &what)?;
                self.id_to_watch.insert(id, watch);
                self.events.push(WatchEvent {
                    fd,
                    id,
                    watch,
                    is_task,
                    cpu,
                    hung_up: false,
                    what,
                    side_band: false,
                });
            }
            // After the breakpoints, so a refusal (no free register, no permission) is theirs,
            // in their words.
            if self.opts.sample.in_kernel_handler {
                self.open_side_band(target, cpu, is_task)?;
            }
        }
        Ok(())
    }

    /// Maps the ring of `cpu` from `fd` if the session has none there yet, else redirects
    /// `fd`'s records into it; returns the event's id. The caller pushes the event next.
    fn add_event(&mut self, fd: &OwnedFd, cpu: u32, what: &str) -> Result<u64, Error> {
        let id = sys::id(fd.as_fd(), what)?;
        match self
            .rings
            .iter()
            .find_map(|r| r.owner.filter(|_| r.cpu == cpu))
        {
            Some(owner) => {
                let owner = &self.events[owner];
                sys::set_output(fd.as_fd(), owner.fd.as_fd(), what)?;
            }
            None => {
                let ring = MappedRing::map(fd.as_fd(), self.opts.ring_pages, what)?;
                self.rings.push(CpuRing {
                    cpu,
                    owner: Some(self.events.len()),
                    ring,
                });
            }
        }
        Ok(id)
    }

    /// Opens the side-band event of one thread/CPU ring ([`SampleOptions::in_kernel_handler`]).
    fn open_side_band(
        &mut self,
        target: EventTarget,
        cpu: u32,
        is_task: bool,
    ) -> Result<(), Error> {
        let mut attr = crate::perf::attr::side_band_attr(is_task);
        let what = format!("the thread-name event (software dummy) in {target}");
        let fd = self
            .sys
            .perf_event_open(&mut attr, target, None, sys::PERF_FLAG_FD_CLOEXEC)
            .map_err(|errno| Error::Open {
                what: what.clone(),
                errno,
                hint: "the breakpoint events on the same thread or CPU opened, so this is \
                       unexpected: see perf_event_open(2) for this errno"
                    .into(),
            })?;
        let id = self.add_event(&fd, cpu, &what)?;
        self.events.push(WatchEvent {
            fd,
            id,
            watch: 0,
            is_task,
            cpu,
            hung_up: false,
            what,
            side_band: true,
        });
        Ok(())
    }

    /// Runs the in-kernel hit handler's program `prog` ([`crate::bpf`]) at every hit of every
    /// data watch (`PERF_EVENT_IOC_SET_BPF`), on the events open now and on those later scopes
    /// and CPUs add, which get it before they are enabled, so no hit of theirs escapes it.
    /// Execute watches keep their perf samples. Call it once, before [`WatchSession::enable`].
    pub fn attach_handler(&mut self, prog: BorrowedFd<'_>) -> Result<(), Error> {
        let prog = prog.try_clone_to_owned().map_err(|e| Error::Sys {
            op: "fcntl(F_DUPFD_CLOEXEC)",
            what: "the BPF program's fd".into(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
        })?;
        for event in self
            .events
            .iter()
            .filter(|e| !e.side_band && self.watches[e.watch].access != hwbp_core::Access::Execute)
        {
            attach_program(event.fd.as_fd(), prog.as_fd(), &event.what)?;
        }
        self.handler_prog = Some(prog);
        Ok(())
    }

    /// Every open breakpoint event, as (watch index, fd): one per watch × thread × CPU (or
    /// watch × CPU), for attaching a BPF program (`PERF_EVENT_IOC_SET_BPF`) to each.
    pub fn event_fds(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> + '_ {
        self.events
            .iter()
            .filter(|e| !e.side_band)
            .map(|e| (e.watch, e.fd.as_fd()))
    }

    /// Arms every event (`PERF_EVENT_IOC_ENABLE`); inherited children follow.
    pub fn enable(&mut self) -> Result<(), Error> {
        for event in &self.events {
            sys::enable(event.fd.as_fd(), &event.what)?;
        }
        self.enabled = true;
        Ok(())
    }

    /// Disarms every event (`PERF_EVENT_IOC_DISABLE`). Slots stay reserved until drop.
    pub fn disable(&mut self) -> Result<(), Error> {
        for event in &self.events {
            sys::disable(event.fd.as_fd(), &event.what)?;
        }
        self.enabled = false;
        Ok(())
    }

    /// Waits up to `timeout` for data (`poll(2)` on the event fds), then drains every ring,
    /// calling `on_record` for each record. Returns early on a signal (`EINTR`), after
    /// draining. Records of tasks that exited are delivered before `all_exited` is reported.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_record: &mut dyn FnMut(Record),
    ) -> Result<PollOutcome, Error> {
        let mut watched: Vec<usize> = Vec::new();
        let mut pollfds: Vec<libc::pollfd> = Vec::new();
        for (index, event) in self.events.iter().enumerate() {
            if !event.hung_up {
                watched.push(index);
                pollfds.push(libc::pollfd {
                    fd: event.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if !pollfds.is_empty() {
            let timeout_ms =
                i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
            // SAFETY: `pollfds` is a valid array of `pollfds.len()` entries, and every fd in it
            // is owned by `self.events`, which outlives the call.
            let ready = unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    timeout_ms,
                )
            };
            if ready < 0 && Errno::last() != Errno::EINTR {
                return Err(Error::Sys {
                    op: "poll",
                    what: "perf event fds".into(),
                    errno: Errno::last(),
                });
            }
            if ready > 0 {
                for (slot, pfd) in pollfds.iter().enumerate() {
                    if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                        self.events[watched[slot]].hung_up = true;
                    }
                }
            }
        }
        let records = self.drain(on_record);
        let mut tasks = self.events.iter().filter(|e| e.is_task).peekable();
        let all_exited = tasks.peek().is_some() && tasks.all(|e| e.hung_up);
        Ok(PollOutcome {
            records,
            all_exited,
        })
    }

    /// Drains every ring without waiting; returns the number of records delivered.
    pub fn drain(&mut self, on_record: &mut dyn FnMut(Record)) -> usize {
        let layout = crate::ring::SampleLayout {
            callchain: self.opts.sample.callchain,
            regs_user: self.opts.sample.with_regs_user(),
            stack_user: self.opts.sample.stack_user > 0,
        };
        let id_to_watch = &self.id_to_watch;
        let mut delivered = 0;
        for cpu_ring in &mut self.rings {
            cpu_ring.ring.drain(layout, &mut |raw| {
                let record = match raw {
                    RingRecord::Sample(sample) => {
                        let Some(&watch) = id_to_watch.get(&sample.identifier) else {
                            return;
                        };
                        let (callchain, callchain_kernel_frames) = sample.frames();
                        Record::Hit(Hit {
                            watch,
                            time_ns: sample.time,
                            cpu: sample.cpu,
                            pid: sample.pid,
                            tid: sample.tid,
                            ip: sample.ip,
                            addr: sample.addr,
                            kernel_mode: sample.kernel_mode(),
                            callchain,
                            callchain_kernel_frames,
                            registers: sample.regs_user.map(Box::new),
                            stack_user: sample.stack_user,
                        })
                    }
                    RingRecord::Lost { lost, .. } => Record::Lost { count: lost },
                    RingRecord::Throttle { .. } => Record::Throttle,
                    RingRecord::Unthrottle { .. } => Record::Unthrottle,
                    RingRecord::Fork(task) => Record::Fork {
                        pid: task.pid,
                        tid: task.tid,
                        ppid: task.ppid,
                        ptid: task.ptid,
                        time_ns: task.time,
                    },
                    RingRecord::Comm(comm) => Record::Comm {
                        pid: comm.pid,
                        tid: comm.tid,
                        comm: comm.comm,
                        exec: comm.exec,
                        time_ns: comm.time,
                    },
                    RingRecord::Exit(_)
                    | RingRecord::Other { .. }
                    | RingRecord::Malformed { .. } => return,
                };
                delivered += 1;
                on_record(record);
            });
        }
        delivered
    }

    /// Exact hit count per watch: `read(2)` of each of its events, which includes inherited
    /// children, summed. Samples dropped from full rings are still counted here.
    pub fn counts(&self) -> Result<Vec<WatchCount>, Error> {
        let mut counts: Vec<WatchCount> = (0..self.watches.len())
            .map(|watch| WatchCount {
                watch,
                ..WatchCount::default()
            })
            .collect();
        for event in self.events.iter().filter(|e| !e.side_band) {
            let reading = sys::read_count(event.fd.as_fd(), &event.what)?;
            add_reading(&mut counts[event.watch], &reading);
        }
        for retired in &self.retired {
            let count = &mut counts[retired.watch];
            count.lost = retired.lost.map(|l| l + count.lost.unwrap_or(0));
            count.count += retired.count;
            count.time_enabled += retired.time_enabled;
            count.time_running += retired.time_running;
        }
        Ok(counts)
    }

    /// Samples the kernel reported dropped so far (sum of `PERF_RECORD_LOST` records). The
    /// kernel writes such a record only when the ring next has room for output on that CPU, so
    /// prefer [`WatchCount::lost`] for a final tally.
    pub fn lost(&self) -> u64 {
        self.retired_lost + self.rings.iter().map(|r| r.ring.stats().lost).sum::<u64>()
    }

    /// Number of `PERF_RECORD_THROTTLE` records seen.
    pub fn throttled(&self) -> u64 {
        self.retired_throttled
            + self
                .rings
                .iter()
                .map(|r| r.ring.stats().throttled)
                .sum::<u64>()
    }

    /// Moves watch `watch_index` to `new` on every one of its events (and their inherited
    /// children) with `PERF_EVENT_IOC_MODIFY_ATTRIBUTES`, without closing them. Only the
    /// address, length and access may change; `pinned`/`exclude_*` must stay as opened. If an
    /// event refuses, the ones already moved are moved back before the error is returned.
    pub fn modify(&mut self, watch_index: usize, new: &WatchRequest) -> Result<(), Error> {
        let old = *self.watches.get(watch_index).ok_or_else(|| {
            Error::InvalidRequest(format!(
                "watch {watch_index} does not exist (the session has {})",
                self.watches.len()
            ))
        })?;
        if (new.pinned, new.exclude_kernel, new.exclude_user)
            != (old.pinned, old.exclude_kernel, old.exclude_user)
        {
            return Err(Error::InvalidRequest(
                "a moved watch keeps its pinned and exclude-kernel/user flags; open a new session to change them".into(),
            ));
        }
        let retarget = |watch: &WatchRequest,
                        template: &perf_event_attr,
                        event: &WatchEvent,
                        enabled: bool| {
            let mut attr = *template;
            set_breakpoint(&mut attr, watch);
            attr.set_disabled((!enabled).into());
            if !event.is_task {
                attr.set_inherit(0);
            }
            sys::modify_attributes(event.fd.as_fd(), &mut attr, &event.what)
        };
        let template = self.attrs[watch_index];
        let mine: Vec<&WatchEvent> = self
            .events
            .iter()
            .filter(|e| !e.side_band && e.watch == watch_index)
            .collect();
        for (done, event) in mine.iter().enumerate() {
            if let Err(error) = retarget(new, &template, event, self.enabled) {
                for moved in &mine[..done] {
                    let _ = retarget(&old, &template, moved, self.enabled);
                }
                return Err(error);
            }
        }
        set_breakpoint(&mut self.attrs[watch_index], new);
        self.watches[watch_index] = *new;
        Ok(())
    }

    /// The watches, in the order given to [`WatchSession::open`] (updated by `modify`).
    pub fn watches(&self) -> &[WatchRequest] {
        &self.watches
    }

    /// Number of perf events (file descriptors) the session holds.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Number of ring buffers (one per CPU that has events).
    pub fn ring_count(&self) -> usize {
        self.rings.len()
    }

    /// True between [`WatchSession::enable`] and [`WatchSession::disable`].
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_options_are_refused_before_any_syscall() {
        let w = WatchRequest::new(0x1000, 8, hwbp_core::Access::Write);
        let opts = SessionOptions {
            ring_pages: 3,
            ..SessionOptions::default()
        };
        let e = WatchSession::open(&[w], &[EventScope::Thread(1)], &[0], &opts).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidRequest);
        assert!(e.to_string().contains("power of two"), "{e}");
        let e = WatchSession::open(
            &[],
            &[EventScope::Thread(1)],
            &[0],
            &SessionOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidRequest);
    }
}
