//! Self-watch: a program watches its own memory and gets a callback in the thread that made
//! the access, without a debugger.
//!
//! Built on perf's synchronous signals (Linux 5.13, `kernel/events/core.c`): an event with
//! `sigtrap = 1` sends the accessing task a `SIGTRAP` whose `siginfo` has
//! `si_code = TRAP_PERF` (6), `si_addr` = the watched address (because `PERF_SAMPLE_ADDR` is
//! requested), and `si_perf_data` = the event's `sig_data`, which we use as a token naming the
//! watch. `remove_on_exec = 1` is mandatory with `sigtrap` and closes the event on `execve`.
//! The event is inherited by threads the watching thread creates later (`inherit` +
//! `inherit_thread`), not by child processes.
//!
//! `siginfo` layout (`include/uapi/asm-generic/siginfo.h`): after the 3-int preamble
//! (padded to 16 bytes on 64-bit), `_sigfault` starts with `void *_addr`; the following union
//! (8-byte aligned) holds `_perf { unsigned long _data; __u32 _type; __u32 _flags; }`, so on
//! LP64 `si_perf_data` is at offset 24 and `si_perf_type` at 32.
//!
//! # Signal safety
//! The callback runs inside the `SIGTRAP` handler, on the thread that touched the memory,
//! right after the access. It must do only async-signal-safe work: atomics, `write(2)`, no
//! allocation, no locks, no `println!`. Hits are also counted in an atomic readable with
//! [`SelfWatch::hits`], so many programs need no callback at all.
//!
//! # Example
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use hwbp_core::Access;
//! use hwbp_linux::selfwatch::{SelfWatch, SelfWatchHit};
//!
//! static WATCHED: AtomicU64 = AtomicU64::new(0);
//! static SEEN_ADDR: AtomicU64 = AtomicU64::new(0);
//!
//! fn on_hit(hit: &SelfWatchHit) {
//!     // Async-signal-safe: one atomic store.
//!     SEEN_ADDR.store(hit.addr, Ordering::Relaxed);
//! }
//!
//! let addr = WATCHED.as_ptr() as u64;
//! let watch = SelfWatch::new(addr, 8, Access::Write, Some(on_hit)).unwrap();
//! for i in 1..=3 {
//!     WATCHED.store(i, Ordering::Relaxed);
//! }
//! assert_eq!(watch.hits(), 3);
//! assert_eq!(watch.kernel_count().unwrap(), 3);
//! assert_eq!(SEEN_ADDR.load(Ordering::Relaxed), addr);
//! drop(watch); // closes the event: no more signals
//! WATCHED.store(4, Ordering::Relaxed);
//! ```

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use hwbp_core::Access;
use nix::errno::Errno;

use crate::error::Error;
use crate::perf::attr::counting_attr;
use crate::perf::WatchRequest;
use crate::sys::perf::{self as sys, EventTarget, RealPerfSys};

/// `TRAP_PERF`: `si_code` of a perf synchronous signal (`include/uapi/asm-generic/siginfo.h`).
pub const TRAP_PERF: i32 = 6;

#[cfg(target_pointer_width = "64")]
mod layout {
    pub const SI_CODE: usize = 8;
    pub const SI_ADDR: usize = 16;
    pub const SI_PERF_DATA: usize = 24;
    pub const SI_PERF_TYPE: usize = 32;
}
#[cfg(target_pointer_width = "32")]
mod layout {
    pub const SI_CODE: usize = 8;
    pub const SI_ADDR: usize = 12;
    pub const SI_PERF_DATA: usize = 16;
    pub const SI_PERF_TYPE: usize = 20;
}

/// How many self-watches can exist at once (each also needs a debug register).
pub const MAX_SELF_WATCHES: usize = 32;

/// What the callback learns about a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfWatchHit {
    /// The watched address (`si_addr`).
    pub addr: u64,
    /// The instruction pointer when the signal arrived: on x86 the instruction after the
    /// access. `0` where we do not decode the signal context (non-x86_64).
    pub ip: u64,
    /// The watch's token (`si_perf_data`), also returned by [`SelfWatch::token`].
    pub token: u64,
    /// Hits of this watch so far, this one included.
    pub hits: u64,
}

/// The callback type: a plain function, run in signal context.
pub type SelfWatchCallback = fn(&SelfWatchHit);

struct Slot {
    /// 0 when free, else the token of the watch using it.
    token: AtomicU64,
    /// The callback as a `usize` (0 for none).
    callback: AtomicUsize,
    hits: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot {
    token: AtomicU64::new(0),
    callback: AtomicUsize::new(0),
    hits: AtomicU64::new(0),
};
static SLOTS: [Slot; MAX_SELF_WATCHES] = [FREE_SLOT; MAX_SELF_WATCHES];
static GENERATION: AtomicU64 = AtomicU64::new(1);
static PREVIOUS_ACTION: OnceLock<Result<libc::sigaction, Errno>> = OnceLock::new();

fn token_slot(token: u64) -> Option<&'static Slot> {
    let index = (token & 0xff).checked_sub(1)? as usize;
    SLOTS.get(index)
}

/// Reads a field of `siginfo_t` at a byte offset.
///
/// # Safety
/// `info` must point to a valid `siginfo_t` and `offset + size_of::<T>()` lie inside it.
unsafe fn siginfo_field<T: Copy>(info: *const libc::siginfo_t, offset: usize) -> T {
    // SAFETY: guaranteed by the caller; unaligned read because the struct is plain bytes here.
    unsafe { info.cast::<u8>().add(offset).cast::<T>().read_unaligned() }
}

extern "C" fn on_sigtrap(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel hands a SA_SIGINFO handler a valid siginfo_t; the offsets are those of
    // the generic siginfo layout for this pointer width (see the module docs).
    let (code, addr, data, kind) = unsafe {
        (
            siginfo_field::<i32>(info, layout::SI_CODE),
            siginfo_field::<usize>(info, layout::SI_ADDR) as u64,
            siginfo_field::<usize>(info, layout::SI_PERF_DATA) as u64,
            siginfo_field::<u32>(info, layout::SI_PERF_TYPE),
        )
    };
    if code == TRAP_PERF && kind == perf_event_open_sys::bindings::PERF_TYPE_BREAKPOINT {
        if let Some(slot) = token_slot(data) {
            if slot.token.load(Ordering::Acquire) == data {
                let hits = slot.hits.fetch_add(1, Ordering::Relaxed) + 1;
                let callback = slot.callback.load(Ordering::Acquire);
                if callback != 0 {
                    // SAFETY: only `SelfWatch::new` stores into `callback`, always a
                    // `SelfWatchCallback` cast to usize.
                    let callback: SelfWatchCallback = unsafe { std::mem::transmute(callback) };
                    callback(&SelfWatchHit {
                        addr,
                        ip: context_ip(context),
                        token: data,
                        hits,
                    });
                }
            }
            // A stale token (watch dropped while the signal was in flight) is ours too: ignore.
            return;
        }
    }
    chain_to_previous(signal, info, context);
}

#[cfg(target_arch = "x86_64")]
fn context_ip(context: *mut libc::c_void) -> u64 {
    if context.is_null() {
        return 0;
    }
    // SAFETY: a SA_SIGINFO handler's third argument points to the interrupted ucontext_t.
    unsafe {
        (*context.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize] as u64
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn context_ip(_context: *mut libc::c_void) -> u64 {
    0
}

/// Passes a SIGTRAP that is not ours to whatever handler was installed before us.
fn chain_to_previous(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(Ok(previous)) = PREVIOUS_ACTION.get() else {
        return;
    };
    match previous.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => {
            // Restore the default action and re-raise: the process dies as it would have
            // without us. sigaction and raise are async-signal-safe.
            // SAFETY: installs the default disposition; `dfl` is a valid, zeroed sigaction.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &dfl, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
        handler if previous.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this type.
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            handler(signal, info, context);
        }
        handler => {
            // SAFETY: without SA_SIGINFO the previous handler takes only the signal number.
            let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            handler(signal);
        }
    }
}

fn install_handler() -> Result<(), Error> {
    let result = PREVIOUS_ACTION.get_or_init(|| {
        // SAFETY: we build a valid sigaction for a handler with the SA_SIGINFO signature and
        // receive the previous action into zeroed memory owned by this frame.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigtrap as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGTRAP, &action, &mut previous) != 0 {
                return Err(Errno::last());
            }
            Ok(previous)
        }
    });
    match result {
        Ok(_) => Ok(()),
        Err(errno) => Err(Error::Sys {
            op: "sigaction(SIGTRAP)",
            what: "this process".into(),
            errno: *errno,
        }),
    }
}

/// A watch on this process's own memory. Dropping it closes the event (the debug register is
/// freed and no more signals arrive for it).
#[derive(Debug)]
pub struct SelfWatch {
    fd: OwnedFd,
    slot: usize,
    token: u64,
    watch: WatchRequest,
}

impl SelfWatch {
    /// Watches `[addr, addr + len)` for `access` in the calling thread and the threads it
    /// creates from now on; `callback` (if any) runs in the accessing thread after each hit,
    /// in signal context (see the module docs on signal safety). Kernel-mode accesses (e.g. a
    /// `read(2)` into the buffer) are excluded, so no privilege is needed at
    /// `perf_event_paranoid = 2`.
    ///
    /// Installs a process-wide `SIGTRAP` handler on first use; SIGTRAPs that are not ours are
    /// passed to the handler that was installed before.
    pub fn new(
        addr: u64,
        len: u64,
        access: Access,
        callback: Option<SelfWatchCallback>,
    ) -> Result<Self, Error> {
        let watch = WatchRequest {
            exclude_kernel: true,
            ..WatchRequest::new(addr, len, access)
        };
        install_handler()?;
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let (slot, token) = (0..MAX_SELF_WATCHES)
            .find_map(|index| {
                let token = (generation << 8) | (index as u64 + 1);
                SLOTS[index]
                    .token
                    .compare_exchange(0, token, Ordering::AcqRel, Ordering::Relaxed)
                    .ok()
                    .map(|_| (index, token))
            })
            .ok_or(Error::SelfWatchSlotsFull(MAX_SELF_WATCHES))?;
        SLOTS[slot].hits.store(0, Ordering::Relaxed);
        SLOTS[slot]
            .callback
            .store(callback.map_or(0, |f| f as usize), Ordering::Release);

        let mut attr = counting_attr(&watch);
        attr.sample_period = 1;
        attr.sample_type = perf_event_open_sys::bindings::PERF_SAMPLE_ADDR as u64;
        attr.set_sigtrap(1);
        attr.set_remove_on_exec(1);
        attr.set_inherit(1);
        attr.set_inherit_thread(1);
        attr.sig_data = token;
        attr.set_disabled(0);
        let target = EventTarget { pid: 0, cpu: -1 };
        match sys::open_breakpoint(&RealPerfSys, &mut attr, target, &watch.to_string(), 1) {
            Ok(fd) => Ok(SelfWatch {
                fd,
                slot,
                token,
                watch,
            }),
            Err(error) => {
                SLOTS[slot].token.store(0, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Hits seen by the signal handler so far.
    pub fn hits(&self) -> u64 {
        SLOTS[self.slot].hits.load(Ordering::Relaxed)
    }

    /// The kernel's count of hits (`read(2)` of the event, including inherited threads).
    pub fn kernel_count(&self) -> Result<u64, Error> {
        sys::read_count(self.fd.as_fd(), &self.watch.to_string()).map(|r| r.value)
    }

    /// The token passed as `sig_data` and found in [`SelfWatchHit::token`].
    pub fn token(&self) -> u64 {
        self.token
    }

    /// What is watched.
    pub fn watch(&self) -> &WatchRequest {
        &self.watch
    }
}

impl Drop for SelfWatch {
    fn drop(&mut self) {
        // Free the slot; the fd closes right after (field drop), which frees the debug
        // register. A signal in flight in between, or after the slot is reused, carries a
        // token that no longer matches and is ignored by the handler.
        SLOTS[self.slot].callback.store(0, Ordering::Release);
        SLOTS[self.slot].token.store(0, Ordering::Release);
    }
}
