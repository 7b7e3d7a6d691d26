//! Error paths of `WatchSession::open`/`add_thread`: every failure leaves no file descriptor
//! behind. One test function on purpose: it counts this process's open fds, so nothing else
//! may open fds concurrently in this binary.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use hwbp_core::Access;
use hwbp_linux::perf::WatchRequest;
use hwbp_linux::session::{online_cpus, EventScope, SessionOptions, WatchSession};
use hwbp_linux::sys::perf::{EventTarget, PerfSys, RealPerfSys};
use hwbp_linux::ErrorKind;
use nix::errno::Errno;
use perf_event_open_sys::bindings::perf_event_attr;

static TARGETS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Lets the first `allow` opens through to the kernel, then answers `errno`.
struct FailAfter {
    allow: usize,
    errno: Errno,
    calls: Arc<AtomicUsize>,
}

impl PerfSys for FailAfter {
    fn perf_event_open(
        &self,
        attr: &mut perf_event_attr,
        target: EventTarget,
        group_fd: Option<BorrowedFd<'_>>,
        flags: u64,
    ) -> Result<OwnedFd, Errno> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(self.errno);
        }
        RealPerfSys.perf_event_open(attr, target, group_fd, flags)
    }
}

#[test]
fn failed_opens_close_everything_and_explain_themselves() {
    let cpus = online_cpus().unwrap();
    let (tx, rx) = mpsc::channel();
    let done = Arc::new(Barrier::new(2));
    let thread_done = done.clone();
    let thread = std::thread::spawn(move || {
        tx.send(nix::unistd::gettid().as_raw()).unwrap();
        thread_done.wait();
    });
    let tid = rx.recv().unwrap();
    let watches: Vec<WatchRequest> = TARGETS
        .iter()
        .map(|t| WatchRequest::new(t.as_ptr() as u64, 8, Access::Write))
        .collect();
    let before = open_fds();

    // Real kernel: the fifth watch on a thread finds no debug register.
    let error = WatchSession::open(
        &watches,
        &[EventScope::Thread(tid)],
        &cpus,
        &SessionOptions::default(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoFreeSlot);
    assert_eq!(open_fds(), before, "ENOSPC left fds open");

    // Fake kernel: permission refused on the third open, after two real events and a ring.
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = FailAfter {
        allow: 2,
        errno: Errno::EACCES,
        calls: calls.clone(),
    };
    let error = WatchSession::open_with(
        Box::new(fake),
        &watches[..2],
        &[EventScope::Thread(tid)],
        &cpus,
        &SessionOptions::default(),
    )
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap();
    let message = error.to_string();
    assert!(
        message.contains(&format!("perf_event_paranoid is {}", paranoid.trim())),
        "{message}"
    );
    assert!(
        message.contains(&format!("thread {tid} on CPU")),
        "{message}"
    );
    assert_eq!(open_fds(), before, "EACCES left fds open");

    // add_thread for a thread that is gone: ESRCH, and the session keeps only its own events.
    let mut session = WatchSession::open(
        &watches[..1],
        &[EventScope::Thread(tid)],
        &cpus,
        &SessionOptions::default(),
    )
    .unwrap();
    let with_session = open_fds();
    let gone = std::thread::spawn(|| nix::unistd::gettid().as_raw())
        .join()
        .unwrap();
    let error = session.add_thread(gone).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TargetGone);
    assert!(
        error.to_string().contains(&format!("thread {gone}")),
        "{error}"
    );
    assert_eq!(session.event_count(), cpus.len());
    assert_eq!(open_fds(), with_session, "add_thread left fds open");
    drop(session);
    assert_eq!(open_fds(), before, "dropping the session left fds open");

    done.wait();
    thread.join().unwrap();
}
