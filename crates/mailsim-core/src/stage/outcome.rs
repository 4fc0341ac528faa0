//! Outcome: what happens to each recipient after an attempt (exo-behaviour §3.3, §5.3, §6).
//!
//! Semantics, written down once (maddy's queue doc is the model):
//! - Results are per recipient. A reply at RCPT decides that recipient; a failure before RCPT
//!   (DNS, connect, TLS, MAIL) or after it (DATA, end of data, a dropped connection) decides every
//!   recipient of the attempt alike.
//! - 2xx: delivered. 5xx: failed now, and the sender gets an NDR quoting the reply. 4xx and every
//!   connection-level failure: deferred, retried on the [`RetryPolicy`] schedule.
//! - A deferral older than the retry window (24 h from arrival, §3.3) becomes a failure with
//!   `550 4.4.7 QUEUE.Expired; message expired`; the last error stays in the trace.
//! - Loops: a message carrying more `Received:` headers than the hop limit (30, Exchange's
//!   `MaxHopCount`, §6) fails with `554 5.4.14 Hop count exceeded - possible mail loop`.
//! - Time is an argument; nothing here reads a clock.

use std::time::Duration;

use crate::reply::{Reply, ReplyContext, ReplyKind};
use crate::stage::deliver::{ReplyClass, classify_reply};
use crate::time::Timestamp;

/// Retry schedule and window. EXO's intervals are unpublished (§3.3); the defaults are Exchange
/// Server's: six retries five minutes apart, then every ten minutes, for 24 hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Interval of the first retries.
    pub first_interval: Duration,
    /// How many retries use `first_interval`.
    pub first_count: u32,
    /// Interval after that.
    pub later_interval: Duration,
    /// How long after arrival a message may stay queued.
    pub expiry: Duration,
    /// Hop limit for loop detection.
    pub max_hop_count: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_interval: Duration::from_secs(300),
            first_count: 6,
            later_interval: Duration::from_secs(600),
            expiry: Duration::from_secs(24 * 3600),
            max_hop_count: 30,
        }
    }
}

impl RetryPolicy {
    /// When to try again after the `attempts`-th failed attempt (1-based).
    pub fn next_retry(&self, attempts: u32, now: Timestamp) -> Timestamp {
        now + if attempts <= self.first_count { self.first_interval } else { self.later_interval }
    }
}

/// Where a recipient ended after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the next hop (or a local mailbox).
    Delivered {
        /// The reply that accepted it.
        reply: Reply,
    },
    /// Retry at `retry_at`; `reply` is the last error (EXO's `LED=`).
    Deferred {
        /// When.
        retry_at: Timestamp,
        /// The last error.
        reply: Reply,
    },
    /// Given up: an NDR goes to the sender with `reply` as the diagnostic.
    Failed {
        /// The reply the NDR quotes.
        reply: Reply,
        /// The last transient error, when the failure is an expiry.
        last_error: Option<Reply>,
    },
}

/// Settles one recipient after an attempt that ended with `reply` (the remote server's reply, or
/// the tenant's own deferral/failure reply for connection-level problems). `attempts` counts this
/// attempt too; `received_at` is when the tenant accepted the message.
pub fn settle(
    reply: Reply,
    attempts: u32,
    received_at: Timestamp,
    now: Timestamp,
    policy: &RetryPolicy,
    ctx: &ReplyContext<'_>,
) -> Outcome {
    match classify_reply(&reply) {
        ReplyClass::Positive => Outcome::Delivered { reply },
        ReplyClass::Permanent => Outcome::Failed { reply, last_error: None },
        ReplyClass::Transient => {
            if now >= received_at + policy.expiry {
                Outcome::Failed { reply: ReplyKind::QueueExpired.reply(ctx), last_error: Some(reply) }
            } else {
                Outcome::Deferred { retry_at: policy.next_retry(attempts, now), reply }
            }
        }
    }
}

/// Counts `Received:` fields in the header section of `data` (RFC 5321 §6.3), as
/// [`crate::header_section`] reads it.
pub fn hop_count(data: &[u8]) -> usize {
    crate::header_section::count(data, "Received")
}

/// The loop check: `Some(HopCountExceeded)` when the message has travelled too far.
pub fn check_loop(data: &[u8], policy: &RetryPolicy) -> Option<ReplyKind> {
    (hop_count(data) > policy.max_hop_count).then_some(ReplyKind::HopCountExceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ReplyContext<'static> {
        ReplyContext { host: "MAILSIM01", now: Timestamp(0), session_id: 0 }
    }

    fn reply(code: u16, text: &'static str) -> Reply {
        Reply::new(code, None, text)
    }

    #[test]
    fn settle_table() {
        let p = RetryPolicy::default();
        let t0 = Timestamp::from_secs(1_000_000);
        let min = |m: u64| Duration::from_secs(60 * m);
        let cases = [
            (reply(250, "ok"), 1, t0, "delivered"),
            (reply(550, "5.1.1 unknown"), 1, t0, "failed"),
            (reply(451, "busy"), 1, t0, "deferred@5"),
            (reply(451, "busy"), 6, t0, "deferred@5"),
            (reply(451, "busy"), 7, t0, "deferred@10"),
            (reply(451, "busy"), 50, t0 + min(24 * 60 - 1), "deferred@10"),
            (reply(451, "busy"), 50, t0 + min(24 * 60), "expired"),
        ];
        for (r, attempts, now, expected) in cases {
            let got = match settle(r, attempts, t0, now, &p, &ctx()) {
                Outcome::Delivered { .. } => "delivered".to_string(),
                Outcome::Failed { last_error: None, .. } => "failed".to_string(),
                Outcome::Failed { reply, last_error: Some(_) } => {
                    assert_eq!(reply.to_string(), "550 4.4.7 QUEUE.Expired; message expired");
                    "expired".to_string()
                }
                Outcome::Deferred { retry_at, .. } => format!("deferred@{}", (retry_at - now).as_secs() / 60),
            };
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn loop_check_counts_received_headers_only_in_the_header_section() {
        let p = RetryPolicy::default();
        let headers = "Received: from a\r\n".repeat(30);
        let data = format!("{headers}Subject: x\r\n\r\nReceived: in the body\r\n");
        assert_eq!(hop_count(data.as_bytes()), 30);
        assert_eq!(check_loop(data.as_bytes(), &p), None);
        let data = format!("received: one more\r\n{data}");
        assert_eq!(check_loop(data.as_bytes(), &p), Some(ReplyKind::HopCountExceeded));
    }
}
