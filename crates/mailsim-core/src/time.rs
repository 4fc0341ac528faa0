//! Time as data. The core never reads a clock: every function that needs "now" takes a
//! [`Timestamp`], which is how retry schedules, replies and NDRs stay reproducible (quinn-proto's
//! contract).

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// The longest duration a configuration may give (a retry interval, an expiry, an `advance`, a
/// delay), and the most a scenario may advance its clock in total: 100 years. Loaders refuse more
/// with an error naming the field, so simulated time stays far from [`Timestamp::MAX`].
pub const MAX_CONFIG_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Timestamp {
    /// The latest moment simulated time reaches, 9999-12-31T23:59:59.999Z (the last an RFC 5322
    /// date can show): arithmetic saturates here, so the clock never wraps.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    /// From whole seconds since the epoch.
    pub const fn from_secs(s: i64) -> Self {
        Self(s * 1000)
    }
    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    fn datetime(self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 5322 §3.3 date, as EXO writes it in banners and Received headers:
    /// `Fri, 7 Jan 2022 05:46:46 +0000`.
    pub fn rfc5322(self) -> String {
        let d = self.datetime();
        // Written digit by digit rather than with `format!`: every accepted message needs one
        // (its Received header), so this is on the hot path (issue 14).
        let mut out = String::with_capacity(31);
        out.push_str(WEEKDAYS[d.weekday().number_days_from_monday() as usize]);
        out.push_str(", ");
        push_number(&mut out, u32::from(d.day()), 1);
        out.push(' ');
        out.push_str(MONTHS[d.month() as usize - 1]);
        out.push(' ');
        push_number(&mut out, d.year().unsigned_abs(), 1);
        out.push(' ');
        push_clock(&mut out, d);
        out.push_str(" +0000");
        out
    }

    /// The C library's `asctime` form, as an mbox `From ` line carries it: `Fri Jan  7 05:46:46 2022`.
    pub fn asctime(self) -> String {
        let d = self.datetime();
        let mut out = String::with_capacity(24);
        out.push_str(WEEKDAYS[d.weekday().number_days_from_monday() as usize]);
        out.push(' ');
        out.push_str(MONTHS[d.month() as usize - 1]);
        out.push(' ');
        if d.day() < 10 {
            out.push(' ');
        }
        push_number(&mut out, u32::from(d.day()), 1);
        out.push(' ');
        push_clock(&mut out, d);
        out.push(' ');
        push_number(&mut out, d.year().unsigned_abs(), 1);
        out
    }

    /// ISO 8601 UTC with milliseconds, as in EXO's diagnostic suffix: `2024-10-10T21:13:00.303Z`.
    pub fn iso8601(self) -> String {
        let mut out = String::with_capacity(24);
        self.push_iso8601(&mut out);
        out
    }

    /// [`Timestamp::iso8601`] appended to `out` (every protocol-log line starts with one).
    pub fn push_iso8601(self, out: &mut String) {
        let d = self.datetime();
        push_number(out, d.year().unsigned_abs(), 4);
        out.push('-');
        push_number(out, u32::from(d.month() as u8), 2);
        out.push('-');
        push_number(out, u32::from(d.day()), 2);
        out.push('T');
        push_clock(out, d);
        out.push('.');
        push_number(out, u32::from(d.millisecond()), 3);
        out.push('Z');
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    /// Saturates at [`Timestamp::MAX`].
    fn add(self, rhs: Duration) -> Timestamp {
        let ms = i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms).min(Self::MAX.0))
    }
}

impl Sub for Timestamp {
    type Output = Duration;
    /// The time from `rhs` to `self`, zero when `rhs` is later.
    fn sub(self, rhs: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(rhs.0).max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso8601())
    }
}

/// Appends `n` in decimal, zero-padded to `width` digits.
/// `HH:MM:SS`.
fn push_clock(out: &mut String, d: time::OffsetDateTime) {
    push_number(out, u32::from(d.hour()), 2);
    out.push(':');
    push_number(out, u32::from(d.minute()), 2);
    out.push(':');
    push_number(out, u32::from(d.second()), 2);
}

/// Appends `n` in decimal, zero-padded to `width` digits.
fn push_number(out: &mut String, n: u32, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_exo() {
        let t = Timestamp::from_millis(1_641_534_406_000); // 2022-01-07 05:46:46 UTC
        assert_eq!(t.rfc5322(), "Fri, 7 Jan 2022 05:46:46 +0000");
        assert_eq!(Timestamp::from_millis(0).rfc5322(), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(Timestamp::from_millis(1_767_225_599_999).rfc5322(), "Wed, 31 Dec 2025 23:59:59 +0000");
        assert_eq!(Timestamp::from_millis(1_728_594_780_303).iso8601(), "2024-10-10T21:13:00.303Z");
        assert_eq!(t.asctime(), "Fri Jan  7 05:46:46 2022");
        assert_eq!(Timestamp::from_millis(1_767_225_599_999).asctime(), "Wed Dec 31 23:59:59 2025");
    }
}
