//! [`HitQueue`]: the bounded in-memory queue between the thread that drains the kernel's ring
//! buffers and the thread that symbolizes and delivers hits. The drain side never blocks: the
//! rings are emptied as fast as the kernel fills them, whatever the output does, and only when
//! the queue holds more than its bound (in bytes) are new items refused, for the caller to count
//! as lost. The consumer takes everything queued at once.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The default bound: 256 MiB, about 2 million hits without callchains.
pub const DEFAULT_QUEUE_BYTES: usize = 256 << 20;

struct State<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    peak: usize,
    closed: bool,
}

/// A multi-producer, single-consumer queue bounded by the bytes its items cost.
pub(crate) struct HitQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    bound: usize,
}

/// What [`HitQueue::take_all`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Items were moved out (or none came before the timeout).
    Open,
    /// The queue is closed and empty: nothing more will come.
    Closed,
}

impl<T> HitQueue<T> {
    /// A queue holding at most `bound` bytes.
    pub(crate) fn new(bound: usize) -> HitQueue<T> {
        HitQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                peak: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            bound,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic on the other side leaves consistent state (plain pushes and pops).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues each item with its cost; returns the items refused because the bound was
    /// reached (in order), for the caller to count as lost. Never blocks for long.
    pub(crate) fn push_all(&self, items: impl IntoIterator<Item = (T, usize)>) -> Vec<T> {
        let mut refused = Vec::new();
        let mut state = self.lock();
        for (item, cost) in items {
            if state.bytes + cost > self.bound {
                refused.push(item);
                continue;
            }
            state.bytes += cost;
            state.peak = state.peak.max(state.bytes);
            state.items.push_back((item, cost));
        }
        drop(state);
        self.ready.notify_one();
        refused
    }

    /// Moves every queued item into `out`, waiting up to `timeout` when there is none.
    pub(crate) fn take_all(&self, out: &mut Vec<T>, timeout: Duration) -> Taken {
        let mut state = self.lock();
        if state.items.is_empty() && !state.closed {
            state = self
                .ready
                .wait_timeout(state, timeout)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        if state.items.is_empty() && state.closed {
            return Taken::Closed;
        }
        state.bytes = 0;
        out.extend(state.items.drain(..).map(|(item, _)| item));
        Taken::Open
    }

    /// No more items will come.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The most bytes queued at once.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.lock().peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_past_the_bound_are_refused_in_order_and_the_peak_is_kept() {
        let queue = HitQueue::new(100);
        let refused = queue.push_all([(1, 40), (2, 40), (3, 40), (4, 20)]);
        assert_eq!(refused, vec![3]);
        assert_eq!(queue.peak_bytes(), 100);
        let mut out = Vec::new();
        assert_eq!(queue.take_all(&mut out, Duration::ZERO), Taken::Open);
        assert_eq!(out, vec![1, 2, 4]);
        // Taking frees the room.
        assert!(queue.push_all([(5, 100)]).is_empty());
    }

    #[test]
    fn a_closed_queue_still_gives_what_it_holds_then_says_closed() {
        let queue = HitQueue::new(10);
        queue.push_all([(7, 1)]);
        queue.close();
        let mut out = Vec::new();
        assert_eq!(queue.take_all(&mut out, Duration::ZERO), Taken::Open);
        assert_eq!(out, vec![7]);
        assert_eq!(queue.take_all(&mut out, Duration::ZERO), Taken::Closed);
    }

    #[test]
    fn the_consumer_wakes_when_the_producer_pushes() {
        let queue = std::sync::Arc::new(HitQueue::new(10));
        let producer = std::sync::Arc::clone(&queue);
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            producer.push_all([(1u8, 1)]);
            producer.close();
        });
        let mut out = Vec::new();
        while queue.take_all(&mut out, Duration::from_secs(5)) == Taken::Open {}
        handle.join().unwrap();
        assert_eq!(out, vec![1]);
    }
}
