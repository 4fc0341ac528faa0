//! The retry queue: recipients deferred by an attempt wait here until their `retry_at` in
//! simulated time (exo-behaviour §3.3; the schedule itself is the core's `RetryPolicy`). Holds the
//! entries, wakes when one is due or the clock is advanced, and answers whether the world has gone
//! quiet. It decides nothing: the sequencer settles every attempt and queues what the core deferred.

use std::sync::Mutex;

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::reply::Reply;
use mailsim_core::stage::route::Hop;
use mailsim_core::time::Timestamp;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::clock::SimClock;

/// Recipients of one message waiting for their next attempt on one hop.
#[derive(Clone, Debug)]
pub struct QueueEntry {
    /// The message.
    pub message: Arc<AcceptedMessage>,
    /// Where to.
    pub hop: Hop,
    /// Who.
    pub recipients: Vec<EmailAddress>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (simulated time).
    pub retry_at: Timestamp,
    /// The last error (EXO's `LED=`).
    pub last_error: Option<Reply>,
}

/// Deferred entries and the notification that something changed (an entry queued, an attempt
/// finished).
#[derive(Debug, Default)]
pub struct Queue {
    entries: Mutex<Vec<QueueEntry>>,
    changed: Notify,
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `entry` until its `retry_at`.
    pub fn defer(&self, entry: QueueEntry) {
        self.entries.lock().expect("queue lock").push(entry);
        self.changed.notify_waiters();
    }

    /// The entries waiting.
    pub fn entries(&self) -> Vec<QueueEntry> {
        self.entries.lock().expect("queue lock").clone()
    }

    /// Makes the entries `which` selects due at `now` (an admin's "retry now"); returns how many.
    pub fn retry_now(&self, now: Timestamp, which: impl Fn(&QueueEntry) -> bool) -> usize {
        let mut n = 0;
        for entry in self.entries.lock().expect("queue lock").iter_mut().filter(|e| which(e)) {
            entry.retry_at = entry.retry_at.min(now);
            n += 1;
        }
        self.changed.notify_waiters();
        n
    }

    /// Wakes whoever waits for a change (the schedule, [`Queue::settled`]).
    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// Hands every entry that is due to `due`, in simulated time, then sleeps until the next one
    /// is due, the clock is advanced or something is queued. Runs until the task is dropped.
    pub async fn run(&self, clock: &SimClock, mut due: impl FnMut(QueueEntry)) {
        loop {
            let changed = self.changed();
            let now = clock.now();
            let (ready, next) = {
                let mut entries = self.entries.lock().expect("queue lock");
                let (ready, wait): (Vec<_>, Vec<_>) = entries.drain(..).partition(|e| e.retry_at <= now);
                *entries = wait;
                (ready, entries.iter().map(|e| e.retry_at).min())
            };
            for entry in ready {
                due(entry);
            }
            let next = next.unwrap_or(now + std::time::Duration::from_secs(3600));
            tokio::select! {
                _ = clock.sleep_until(next) => {}
                _ = changed => {}
            }
        }
    }

    /// Waits until `idle()` holds and nothing queued is due, or `timeout` passes. Returns whether
    /// the world went quiet.
    pub async fn settled(&self, clock: &SimClock, idle: impl Fn() -> bool, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed();
            let now = clock.now();
            let due = self.entries.lock().expect("queue lock").iter().any(|e| e.retry_at <= now);
            if idle() && !due {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}
