//! The message-trace vocabulary (exo-semantics §8.1, §8.2), and the events built from each stage's
//! result: the shell records what these functions return and words nothing itself. Every stage's
//! result becomes one event; `Get-MessageTraceV2`'s status per recipient follows from its last
//! event.

use std::net::IpAddr;

use crate::addr::EmailAddress;
use crate::envelope::AcceptedMessage;
use crate::reply::{LastAttempt, Reply};
use crate::session::Refusal;
use crate::stage::inbound::{Direction, InboundVerdict};
use crate::stage::outcome::Outcome;
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

impl TraceEvent {
    /// An event about an accepted message (and one of its recipients), with the fields the message
    /// gives: ids, sender, `FromIP`, the inbound connector of record.
    pub fn of_message(
        message: &AcceptedMessage,
        at: Timestamp,
        event: Event,
        recipient: Option<&EmailAddress>,
        detail: String,
    ) -> Self {
        TraceEvent {
            at,
            event,
            message_id: message.message_id.clone(),
            internal_id: Some(message.internal_id),
            sender: message.envelope.sender.as_ref().map_or("<>".to_string(), |s| s.to_string()),
            recipient: recipient.map(|r| r.to_string()),
            from_ip: Some(message.peer.ip),
            to_ip: None,
            connector: message.verdict.connector().map(str::to_string),
            detail,
            data: None,
        }
    }

    /// RECEIVE: the tenant (`server_name`) accepted the message for `rcpt` (§8.2), Incoming or
    /// Originating as the inbound verdict says.
    pub fn received(message: &AcceptedMessage, rcpt: &EmailAddress, server_name: &str, at: Timestamp) -> Self {
        let direction = match &message.verdict {
            InboundVerdict::Accepted { direction: Direction::Originating, .. } => "Originating",
            _ => "Incoming",
        };
        Self::of_message(message, at, Event::Receive, Some(rcpt), format!("Received by {server_name} ({direction})"))
    }

    /// DELIVER: stored in a local mailbox.
    pub fn delivered_to_mailbox(message: &AcceptedMessage, rcpt: &EmailAddress, at: Timestamp) -> Self {
        Self::of_message(message, at, Event::Deliver, Some(rcpt), "Delivered to mailbox".into())
    }

    /// FAIL before any attempt (a loop, no route): `reply` is the reason.
    pub fn failed(message: &AcceptedMessage, rcpt: &EmailAddress, reply: &Reply, at: Timestamp) -> Self {
        let mut ev = Self::of_message(message, at, Event::Fail, Some(rcpt), "Delivery failed".into());
        ev.data = Some(reply.to_string());
        ev
    }

    /// SEND, DEFER or FAIL after an outbound attempt on the hop of `connector`, from the
    /// recipient's [`Outcome`]; `last` is the server tried last, `tls` the channel's version and
    /// cipher.
    pub fn settled(
        message: &AcceptedMessage,
        rcpt: &EmailAddress,
        outcome: &Outcome,
        last: Option<&LastAttempt>,
        tls: Option<&str>,
        connector: Option<&str>,
        at: Timestamp,
    ) -> Self {
        let (event, detail, data) = match outcome {
            Outcome::Delivered { reply } => {
                let via = last.map_or(String::new(), |l| l.server.clone());
                let tls = tls.map_or("without TLS".to_string(), |t| format!("over {t}"));
                (Event::Send, format!("Sent to {via} {tls}"), Some(reply.to_string()))
            }
            Outcome::Deferred { retry_at, reply } => (
                Event::Defer,
                format!("The last attempt to deliver the message encountered an error; next attempt at {retry_at}"),
                Some(format!("LED={reply}")),
            ),
            Outcome::Failed { reply, last_error } => (
                Event::Fail,
                match last_error {
                    Some(led) => format!("Message expired; last error: {led}"),
                    None => "Delivery failed".to_string(),
                },
                Some(reply.to_string()),
            ),
        };
        let mut ev = Self::of_message(message, at, event, Some(rcpt), detail);
        ev.to_ip = last.map(|l| l.ip.clone());
        ev.connector = connector.map(str::to_string).or(ev.connector);
        ev.data = data;
        ev
    }

    /// DSN: an NDR (`ndr_id`, to `ndr_recipient`) was generated for the message.
    pub fn ndr_generated(message: &AcceptedMessage, ndr_id: &str, ndr_recipient: &EmailAddress, at: Timestamp) -> Self {
        let mut ev =
            Self::of_message(message, at, Event::Dsn, None, format!("NDR {ndr_id} generated for {ndr_recipient}"));
        ev.recipient = message.envelope.sender.as_ref().map(|s| s.to_string());
        ev
    }

    /// A refusal during the session, one FAIL per recipient (§8.1 recommendation: status Failed,
    /// the reply text, FromIP set, ToIP blank).
    pub fn refused(refusal: &Refusal) -> Vec<Self> {
        let reply = refusal.reply.to_string();
        let sender = refusal.envelope.sender.as_ref().map_or("<>".to_string(), |s| s.to_string());
        let stage = refusal.stage.command();
        refusal
            .envelope
            .recipients
            .iter()
            .map(|rcpt| TraceEvent {
                at: refusal.at,
                event: Event::Fail,
                message_id: String::new(),
                internal_id: None,
                sender: sender.clone(),
                recipient: Some(rcpt.to_string()),
                from_ip: Some(refusal.peer.ip),
                to_ip: None,
                connector: refusal.rejection.as_ref().and_then(|r| r.connector.clone()),
                detail: match &refusal.rejection {
                    Some(r) => format!("Rejected at {stage}: {}", r.reason),
                    None => format!("Rejected at {stage}"),
                },
                data: Some(reply.clone()),
            })
            .collect()
    }
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
