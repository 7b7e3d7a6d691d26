//! Real-kernel tests of `SelfWatch`: the SIGTRAP callback runs in the thread that made the
//! access, including threads created after the watch.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use hwbp_core::Access;
use hwbp_linux::selfwatch::{SelfWatch, SelfWatchHit};

static WATCHED: AtomicU64 = AtomicU64::new(0);
static LAST_TID: AtomicI32 = AtomicI32::new(0);
static LAST_IP: AtomicU64 = AtomicU64::new(0);

fn record_hit(hit: &SelfWatchHit) {
    // gettid(2) is async-signal-safe.
    LAST_TID.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed);
    LAST_IP.store(hit.ip, Ordering::Relaxed);
}

#[inline(never)]
fn write_times(n: u64) {
    for i in 0..n {
        // SAFETY: WATCHED is a live static.
        unsafe { std::ptr::write_volatile(WATCHED.as_ptr(), i) };
    }
}

#[test]
fn callback_runs_in_the_accessing_thread_including_later_threads() {
    let watch =
        SelfWatch::new(WATCHED.as_ptr() as u64, 8, Access::Write, Some(record_hit)).unwrap();
    write_times(4);
    assert_eq!(watch.hits(), 4);
    assert_eq!(
        LAST_TID.load(Ordering::Relaxed),
        nix::unistd::gettid().as_raw()
    );
    assert_ne!(LAST_IP.load(Ordering::Relaxed), 0);

    let child_tid = std::thread::spawn(|| {
        write_times(6);
        nix::unistd::gettid().as_raw()
    })
    .join()
    .unwrap();
    assert_eq!(watch.hits(), 10);
    assert_eq!(LAST_TID.load(Ordering::Relaxed), child_tid);
    assert_eq!(watch.kernel_count().unwrap(), 10);

    drop(watch);
    write_times(3); // no watch: no signal, and no crash from a stray SIGTRAP
    let again = SelfWatch::new(WATCHED.as_ptr() as u64, 8, Access::Write, None).unwrap();
    write_times(2);
    assert_eq!(again.hits(), 2);
}
