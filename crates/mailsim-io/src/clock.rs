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
        Timestamp::from_millis(
            real_millis().saturating_add(self.offset_ms.load(Ordering::Relaxed)).min(Timestamp::MAX.as_millis()),
        )
    }

    /// Now in simulated time as a `SystemTime`: the moment certificates' validity periods are
    /// judged at, inbound and outbound, so advancing the world can expire them.
    pub fn system_time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.now().as_millis().max(0) as u64)
    }

    /// Moves simulated time forward and wakes whoever waits on it (the queue). Saturates: the
    /// clock stops at [`Timestamp::MAX`] rather than wrap (loaders refuse durations over
    /// `MAX_CONFIG_DURATION`, so only a program can get there).
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let limit = Timestamp::MAX.as_millis().saturating_sub(real_millis()).max(0);
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| Some(o.saturating_add(by).min(limit)));
        self.advanced.notify_waiters();
    }

    #[cfg(test)]
    fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
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

/// Real time, in milliseconds since the epoch.
fn real_millis() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14: `advance = "200000000000d"` wrapped the clock to 1970.
    #[test]
    fn the_clock_never_wraps() {
        let clock = SimClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(200_000_000_000 * 86_400));
        assert_eq!(clock.now(), Timestamp::MAX);
        clock.advance(Duration::MAX);
        assert!(clock.offset() > 0);
        assert_eq!(clock.now(), Timestamp::MAX);
        assert!(clock.now() > before);
        assert!(clock.now().rfc5322().contains("9999"), "{}", clock.now().rfc5322());
    }
}
