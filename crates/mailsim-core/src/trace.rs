//! The message-trace vocabulary (exo-semantics §8.1, §8.2): data only. Every stage's result
//! becomes one event; `Get-MessageTraceV2`'s status per recipient follows from its last event.

use std::net::IpAddr;

use crate::time::Timestamp;

/// Message-trace detail events (§8.2), named as EXO names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Event {
    /// The tenant accepted the message (250 at end of data).
    Receive,
    /// Delivered to a local mailbox.
    Deliver,
    /// Handed to the next hop (smart host or MX) with a 2xx.
    Send,
    /// Deferred; will be retried.
    Defer,
    /// Failed: refused during the session, or given up after acceptance.
    Fail,
    /// An NDR (DSN) was generated for failed recipients.
    Dsn,
    /// Recipients split to a forked copy per next hop.
    Transfer,
}

/// Status per recipient as `Get-MessageTraceV2` shows it (§8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Delivered or sent on.
    Delivered,
    /// Deferred, retrying.
    Pending,
    /// Failed (including SMTP-time refusals, §8.1 recommendation).
    Failed,
    /// Only received so far.
    GettingStatus,
}

impl Event {
    /// The status this event leaves the recipient in.
    pub fn status(self) -> Status {
        match self {
            Event::Deliver | Event::Send => Status::Delivered,
            Event::Defer => Status::Pending,
            Event::Fail | Event::Dsn => Status::Failed,
            Event::Receive | Event::Transfer => Status::GettingStatus,
        }
    }
}

/// One trace record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TraceEvent {
    /// When (UTC).
    pub at: Timestamp,
    /// What.
    pub event: Event,
    /// The Message-ID header value.
    pub message_id: String,
    /// The tenant's internal id, once accepted.
    pub internal_id: Option<u64>,
    /// P1 MAIL FROM (`<>` for the null sender).
    pub sender: String,
    /// The recipient this event concerns, if one.
    pub recipient: Option<String>,
    /// `FromIP`: the sending server's declared address, for received mail.
    pub from_ip: Option<IpAddr>,
    /// `ToIP`: the next hop's declared address, for sent mail.
    pub to_ip: Option<String>,
    /// The connector involved (inbound attribution or outbound route).
    pub connector: Option<String>,
    /// Human-readable detail, in the words of EXO's trace detail.
    pub detail: String,
    /// The reply or last error (`LED=`), wire form.
    pub data: Option<String>,
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso8601())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let format = time::format_description::well_known::Rfc3339;
        let parsed = time::OffsetDateTime::parse(&text, &format).map_err(serde::de::Error::custom)?;
        Ok(Timestamp::from_millis((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}
