//! [`ThreadNames`]: the name of each thread at the time of each hit, from the records the kernel
//! writes into the ring (as perf does): `PERF_RECORD_FORK` gives a new thread its creator's name,
//! `PERF_RECORD_COMM` a name it sets itself or takes at exec (`perf_event_comm`,
//! `perf_event_task` in `kernel/events/core.c`). Records are applied in time order with the
//! hits, so a thread that exits before its hits are read is still named. A thread first seen
//! without a record is looked up once (`/proc/PID/task/TID/comm`); `?` if it is gone by then.

// Looked up once per hit: Fx hashing, not SipHash.
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Looks up the current name of thread `tid` of process `pid`.
pub type NameLookup = Box<dyn Fn(i32, i32) -> Option<String> + Send>;

/// Thread names as of the records applied so far.
pub struct ThreadNames {
    names: FxHashMap<i32, Arc<str>>,
    lookup: NameLookup,
}

impl std::fmt::Debug for ThreadNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.names.iter()).finish()
    }
}

impl ThreadNames {
    /// Names looked up in `/proc` when a thread is first seen without a record.
    pub fn from_proc() -> ThreadNames {
        ThreadNames::with_lookup(Box::new(|pid, tid| {
            hwbp_linux::target::thread_comm(pid, tid).ok()
        }))
    }

    /// Names looked up with `lookup`.
    pub fn with_lookup(lookup: NameLookup) -> ThreadNames {
        ThreadNames {
            names: FxHashMap::default(),
            lookup,
        }
    }

    /// The name of `tid` now.
    pub fn name(&mut self, pid: i32, tid: i32) -> Arc<str> {
        if let Some(name) = self.names.get(&tid) {
            return Arc::clone(name);
        }
        let name: Arc<str> = (self.lookup)(pid, tid).unwrap_or_else(|| "?".into()).into();
        self.names.insert(tid, Arc::clone(&name));
        name
    }

    /// `PERF_RECORD_COMM`: `tid` is now called `comm`.
    pub fn renamed(&mut self, tid: i32, comm: &str) {
        if self.names.get(&tid).is_none_or(|n| &**n != comm) {
            self.names.insert(tid, comm.into());
        }
    }

    /// `PERF_RECORD_FORK`: `tid` was created by thread `ptid` of process `ppid` and has its
    /// name until it sets one.
    pub fn forked(&mut self, tid: i32, ppid: i32, ptid: i32) {
        let creator = self.name(ppid, ptid);
        self.names.insert(tid, creator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ThreadNames {
        ThreadNames::with_lookup(Box::new(|_, tid| (tid == 10).then(|| "main".to_string())))
    }

    #[test]
    fn a_forked_thread_has_its_creators_name_until_it_renames_itself() {
        let mut names = names();
        assert_eq!(&*names.name(10, 10), "main");
        names.forked(11, 10, 10);
        assert_eq!(&*names.name(10, 11), "main");
        names.renamed(11, "worker");
        assert_eq!(&*names.name(10, 11), "worker");
        assert_eq!(&*names.name(10, 10), "main");
    }

    #[test]
    fn a_thread_gone_before_it_was_seen_is_a_question_mark_and_looked_up_once() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let mut names = ThreadNames::with_lookup(Box::new(move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            None
        }));
        assert_eq!(&*names.name(5, 6), "?");
        assert_eq!(&*names.name(5, 6), "?");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_name_from_a_record_wins_over_the_lookup() {
        let mut names = names();
        names.renamed(10, "renamed");
        assert_eq!(&*names.name(10, 10), "renamed");
    }
}
