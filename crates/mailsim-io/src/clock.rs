//! The simulated clock: real time plus an offset that tests and scenarios advance, so a 24-hour
//! retry window passes in milliseconds without sleeping. The shell reads it and hands the result to
//! the core as a `Timestamp`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use mailsim_core::time::Timestamp;
use tokio::sync::Notify;

/// Real time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub struct SimClock {
    offset_ms: AtomicI64,
    advanced: Notify,
}

impl SimClock {
    /// A clock at real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// Now, in simulated time.
    pub fn now(&self) -> Timestamp {
        let real = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Timestamp::from_millis(real + self.offset_ms.load(Ordering::Relaxed))
    }

    /// Now in simulated time as a `SystemTime`: the moment certificates' validity periods are
    /// judged at, inbound and outbound, so advancing the world can expire them.
    pub fn system_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.now().as_millis().max(0) as u64)
    }

    /// Moves simulated time forward and wakes whoever waits on it (the queue).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
        self.advanced.notify_waiters();
    }

    /// Sleeps until simulated time reaches `at`, or until the clock is advanced (whichever comes
    /// first; the caller re-checks).
    pub async fn sleep_until(&self, at: Timestamp) {
        let notified = self.advanced.notified();
        let wait = at - self.now();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = notified => {}
        }
    }
}
