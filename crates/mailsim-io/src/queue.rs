//! The retry queue: recipients deferred by an attempt wait here until their `retry_at` in
//! simulated time (exo-behaviour §3.3; the schedule itself is the core's `RetryPolicy`). Holds the
//! entries, wakes when one is due or the clock is advanced, and answers whether the world has gone
//! quiet. It decides nothing: the sequencer settles every attempt and queues what the core deferred.

use std::collections::BTreeMap;
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
    entries: Mutex<Entries>,
    changed: Notify,
}

/// The entries by when they are due (and the order they were queued in): queuing one, taking the
/// due ones and finding the next wake-up cost O(log n), not a pass over the whole queue. (A pass
/// per change made every deferral O(n): with 20,000 recipients deferred, acceptance ran at a sixth
/// of its speed.)
#[derive(Debug, Default)]
struct Entries {
    by_due: BTreeMap<(Timestamp, u64), QueueEntry>,
    queued: u64,
}

impl Entries {
    fn push(&mut self, entry: QueueEntry) {
        self.by_due.insert((entry.retry_at, self.queued), entry);
        self.queued += 1;
    }

    /// Removes and returns the entries due at `now`, earliest first.
    fn take_due(&mut self, now: Timestamp) -> Vec<QueueEntry> {
        let mut due = Vec::new();
        while let Some(first) = self.by_due.first_entry() {
            if first.key().0 > now {
                break;
            }
            due.push(first.remove());
        }
        due
    }

    /// When the earliest entry is due.
    fn next_due(&self) -> Option<Timestamp> {
        self.by_due.first_key_value().map(|((at, _), _)| *at)
    }
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

    /// The entries waiting, earliest due first.
    pub fn entries(&self) -> Vec<QueueEntry> {
        self.entries.lock().expect("queue lock").by_due.values().cloned().collect()
    }

    /// Recipients waiting, over all entries.
    pub fn recipients(&self) -> usize {
        self.entries.lock().expect("queue lock").by_due.values().map(|e| e.recipients.len()).sum()
    }

    /// Makes the entries `which` selects due at `now` (an admin's "retry now"); returns how many.
    pub fn retry_now(&self, now: Timestamp, which: impl Fn(&QueueEntry) -> bool) -> usize {
        let mut entries = self.entries.lock().expect("queue lock");
        let picked: Vec<_> = entries.by_due.iter().filter(|(_, e)| which(e)).map(|(k, _)| *k).collect();
        for key in &picked {
            if let Some(mut entry) = entries.by_due.remove(key) {
                entry.retry_at = entry.retry_at.min(now);
                entries.push(entry);
            }
        }
        drop(entries);
        self.changed.notify_waiters();
        picked.len()
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
                (entries.take_due(now), entries.next_due())
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
            let due = self.entries.lock().expect("queue lock").next_due().is_some_and(|at| at <= now);
            if idle() && !due {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, retry_at: i64) -> QueueEntry {
        let message = crate::test_support::message(id, None, &["a@contoso.test"]);
        QueueEntry {
            message: Arc::new(message),
            hop: Hop::Mailbox,
            recipients: vec!["a@contoso.test".parse().unwrap()],
            attempts: 1,
            retry_at: Timestamp::from_millis(retry_at),
            last_error: None,
        }
    }

    fn ids(entries: &[QueueEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.message.internal_id).collect()
    }

    #[test]
    fn due_entries_come_out_earliest_first_and_in_queued_order_when_due_together() {
        let mut entries = Entries::default();
        for (id, at) in [(1, 300), (2, 100), (3, 200), (4, 100), (5, 900)] {
            entries.push(entry(id, at));
        }
        assert_eq!(entries.next_due(), Some(Timestamp::from_millis(100)));
        assert_eq!(ids(&entries.take_due(Timestamp::from_millis(50))), Vec::<u64>::new());
        assert_eq!(ids(&entries.take_due(Timestamp::from_millis(300))), [2, 4, 3, 1]);
        assert_eq!(entries.next_due(), Some(Timestamp::from_millis(900)));
        assert_eq!(ids(&entries.take_due(Timestamp::from_millis(900))), [5]);
        assert_eq!(entries.next_due(), None);
    }

    #[test]
    fn retry_now_makes_the_chosen_entries_due_and_leaves_the_rest() {
        let queue = Queue::new();
        for (id, at) in [(1, 500), (2, 600), (3, 700)] {
            queue.defer(entry(id, at));
        }
        assert_eq!(queue.recipients(), 3);
        let n = queue.retry_now(Timestamp::from_millis(10), |e| e.message.internal_id != 2);
        assert_eq!(n, 2);
        let mut entries = queue.entries.lock().unwrap();
        assert_eq!(ids(&entries.take_due(Timestamp::from_millis(10))), [1, 3]);
        assert_eq!(entries.next_due(), Some(Timestamp::from_millis(600)));
    }
}
