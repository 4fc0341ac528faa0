//! The message-trace vocabulary (exo-behaviour §8.1, §8.2), and the events built from each stage's
//! result: the shell records what these functions return and words nothing itself. Every stage's
//! result becomes one event; `Get-MessageTraceV2`'s status per recipient follows from its last
//! event.

use std::net::IpAddr;

use crate::addr::EmailAddress;
use crate::envelope::AcceptedMessage;
use crate::reply::{LastAttempt, Reply};
use crate::reply::{ReplyContext, ReplyKind};
use crate::session::Refusal;
use crate::stage::inbound::{Direction, InboundVerdict};
use crate::stage::outcome::Outcome;
use crate::stage::rules::{Fate, RulesOutcome};
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
    /// Recipients split to a forked copy per next hop, or by mail flow rules (§13.3).
    Transfer,
    /// A mail flow rule matched (§13.6 `Transport rule`): the rule's name and id in the detail,
    /// `S:TRA=ETR|ruleId=…|action=…|mode=…` in the data.
    #[serde(rename = "TRANSPORT RULE", alias = "TRANSPORTRULE")]
    TransportRule,
    /// Dropped by a rule's `DeleteMessage` (§13.6 recommendation: status Failed).
    Drop,
    /// Held in quarantine by a rule (§13.6 recommendation: status Quarantined; mailsim names the
    /// event for what happened rather than EXO's `Deliver` to the quarantine).
    Quarantine,
    /// Redirected by a rule's `RedirectMessageTo` to other recipients (§13.6 recommendation:
    /// delivered, to someone else).
    Redirect,
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
    /// Held in quarantine (§13.6).
    Quarantined,
}

impl Event {
    /// The status this event leaves the recipient in.
    pub fn status(self) -> Status {
        match self {
            Event::Deliver | Event::Send | Event::Redirect => Status::Delivered,
            Event::Defer => Status::Pending,
            Event::Fail | Event::Dsn | Event::Drop => Status::Failed,
            Event::Quarantine => Status::Quarantined,
            Event::Receive | Event::Transfer | Event::TransportRule => Status::GettingStatus,
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
        let mut detail = format!("Received by {server_name} ({direction})");
        // §14: the authentication verdicts, when the world evaluates them.
        if let Some(auth) = &message.auth {
            detail.push_str("; authentication: ");
            detail.push_str(&auth.summary());
        }
        Self::of_message(message, at, Event::Receive, Some(rcpt), detail)
    }

    /// QUARANTINE by the anti-phishing policy: a DMARC failure whose action is quarantine
    /// (exo-behaviour §14.5); `None` unless the message's authentication says so.
    pub fn auth_quarantined(message: &AcceptedMessage, rcpt: &EmailAddress, at: Timestamp) -> Option<Self> {
        let auth = message.auth.as_ref()?;
        if auth.disposition() != crate::auth::Disposition::Quarantine {
            return None;
        }
        let policy = auth.policy.map_or("none", |p| p.as_str());
        let detail = format!(
            "Quarantined: the sender's DMARC policy (p={policy}) failed; anti-phishing policy action; {}",
            auth.summary()
        );
        Some(Self::of_message(message, at, Event::Quarantine, Some(rcpt), detail))
    }

    /// DELIVER: stored in a local mailbox.
    pub fn delivered_to_mailbox(message: &AcceptedMessage, rcpt: &EmailAddress, at: Timestamp) -> Self {
        Self::of_message(message, at, Event::Deliver, Some(rcpt), "Delivered to mailbox".into())
    }

    /// FAIL before any attempt (a loop, no route, a null MX): `reply` is the reason. No connector
    /// was used: the connector column is empty (the inbound connector is RECEIVE's).
    pub fn failed(message: &AcceptedMessage, rcpt: &EmailAddress, reply: &Reply, at: Timestamp) -> Self {
        let mut ev = Self::of_message(message, at, Event::Fail, Some(rcpt), "Delivery failed".into());
        ev.connector = None;
        ev.data = Some(reply.to_string());
        ev
    }

    /// SEND, DEFER or FAIL after an outbound attempt on the hop of `connector`, from the
    /// recipient's [`Outcome`]; `last` is the server tried last, `tls` the channel's version and
    /// cipher. The connector column names the outbound connector used, and is empty for MX
    /// delivery without one (never the inbound connector of record: that one is RECEIVE's).
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
        ev.connector = connector.map(str::to_string);
        ev.data = data;
        ev
    }

    /// DSN: an NDR (Message-ID `ndr_id`, to `ndr_recipient`) was generated for the message. The
    /// row is the NDR's own, as admins read it: its Message-ID, its sender `<>` (the null reverse
    /// path every NDR has, RFC 5321 §4.5.5; its header From is the postmaster) and its recipient,
    /// the original sender; so the NDR's later RECEIVE and DELIVER/SEND events continue the same
    /// row, and no "sender to sender, Failed" row appears. The detail names the original
    /// message. No connector: the NDR has not left yet (its SEND names the connector it leaves by).
    pub fn ndr_generated(message: &AcceptedMessage, ndr_id: &str, ndr_recipient: &EmailAddress, at: Timestamp) -> Self {
        let mut ev = Self::of_message(
            message,
            at,
            Event::Dsn,
            Some(ndr_recipient),
            format!("NDR {ndr_id} generated for {ndr_recipient} about {}", message.message_id),
        );
        ev.message_id = ndr_id.to_string();
        ev.sender = "<>".to_string();
        ev.connector = None;
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

/// `7/17/2017 12:31:25 AM`, the `st=` of `AGENTINFO` (§13.6).
fn agent_time(at: Timestamp) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.as_millis()) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (h, pm) = match d.hour() {
        0 => (12, false),
        h @ 1..=11 => (h, false),
        12 => (12, true),
        h => (h - 12, true),
    };
    format!(
        "{}/{}/{} {h}:{:02}:{:02} {}",
        d.month() as u8,
        d.day(),
        d.year(),
        d.minute(),
        d.second(),
        if pm { "PM" } else { "AM" }
    )
}

impl TraceEvent {
    /// The evidence of the rules stage (§13.6), in order: per matched rule, recipient and action a
    /// `Transport rule` event (`Transport rule: '<name>', ID: ('<guid>'), ...` with
    /// `S:TRA=ETR|ruleId=<guid>|st=<time>|action=<Action>|sev=1|mode=<Mode>`); `REDIRECT` for
    /// recipients a rule redirected; `TRANSFER` when rules forked the message; `RECEIVE` for
    /// recipients a rule added. What happens to each fork afterwards has its own events
    /// ([`TraceEvent::rule_fate`]).
    pub fn rules_applied(message: &AcceptedMessage, outcome: &RulesOutcome, at: Timestamp) -> Vec<Self> {
        let mut out = Vec::new();
        for hit in &outcome.hits {
            let detail = format!(
                "Transport rule: '{}', ID: ('{}'), DLP policy: '', ID: (00000000-0000-0000-0000-000000000000).",
                hit.rule, hit.guid
            );
            for rcpt in &hit.recipients {
                for a in &hit.actions {
                    let mut ev = Self::of_message(message, at, Event::TransportRule, Some(rcpt), detail.clone());
                    ev.data = Some(format!(
                        "S:TRA=ETR|ruleId={}|st={}|action={}|sev=1|mode={}",
                        hit.guid,
                        agent_time(at),
                        a.action,
                        hit.mode
                    ));
                    out.push(ev);
                }
                if hit.mode.enforces()
                    && let Some(redirect) = hit.actions.iter().find(|a| a.action == "RedirectMessage")
                    && !redirect.effect.contains("5.7.128")
                {
                    out.push(Self::of_message(
                        message,
                        at,
                        Event::Redirect,
                        Some(rcpt),
                        format!("Transport rule '{}': {}", hit.rule, redirect.effect),
                    ));
                }
            }
        }
        let original = outcome.forks.iter().filter(|f| f.added_by.is_none()).count();
        for fork in &outcome.forks {
            for rcpt in &fork.recipients {
                match &fork.added_by {
                    Some((rule, action)) => out.push(Self::of_message(
                        message,
                        at,
                        Event::Receive,
                        Some(rcpt),
                        format!("Added by transport rule '{rule}' ({action})"),
                    )),
                    None if original > 1 => out.push(Self::of_message(
                        message,
                        at,
                        Event::Transfer,
                        Some(rcpt),
                        format!("Forked by transport rules into {original} copies"),
                    )),
                    None => {}
                }
            }
        }
        out
    }

    /// The end of a fork the rules decided: `FAIL` for a reject (data: what trace shows,
    /// `550 5.7.1 TRANSPORT.RULES.RejectMessage; ...`, whatever the rule's text, §13.6 \[O32]; the
    /// loop's own 5.7.128), `DROP` for a delete, `QUARANTINE` for quarantine. `None` for a fork
    /// that is routed.
    pub fn rule_fate(
        message: &AcceptedMessage,
        rcpt: &EmailAddress,
        fate: &Fate,
        ctx: &ReplyContext<'_>,
    ) -> Option<Self> {
        let at = ctx.now;
        let (event, detail, data) = match fate {
            Fate::Route { .. } => return None,
            Fate::Reject(ReplyKind::TransportRuleRejected { code, .. }) => (
                Event::Fail,
                "Rejected by a transport rule",
                Some(format!(
                    "550 5.7.{code} TRANSPORT.RULES.RejectMessage; the message was rejected by organization policy"
                )),
            ),
            Fate::Reject(kind) => (Event::Fail, "Rejected by transport rules", Some(kind.reply(ctx).to_string())),
            Fate::Delete => (Event::Drop, "Message deleted by a transport rule", None),
            Fate::Quarantine => (Event::Quarantine, "Message quarantined by a transport rule", None),
        };
        let mut ev = Self::of_message(message, at, event, Some(rcpt), detail.to_string());
        ev.data = data;
        Some(ev)
    }

    /// A rule's routing that could not be honoured (§13.5: the connector is disabled or missing;
    /// the fork is routed normally).
    pub fn rule_route_warning(message: &AcceptedMessage, rcpt: &EmailAddress, warning: &str, at: Timestamp) -> Self {
        Self::of_message(message, at, Event::Transfer, Some(rcpt), warning.to_string())
    }
}

/// The event that decides a recipient's status, from that recipient's events of one message in
/// the order they were recorded: the last one, except that a SEND does not undo a failure (§8.1).
/// In a mail loop every copy carries the Message-ID, and an earlier hop's SEND can be recorded
/// after the last hop's `554 5.4.14` FAIL (scenario 10): the recipient has still failed.
pub fn deciding_event<'a>(events: impl Iterator<Item = &'a TraceEvent>) -> Option<&'a TraceEvent> {
    events.fold(None, |chosen, e| match chosen {
        Some(c) if next_status(c.event.status(), e.event) != e.event.status() => Some(c),
        _ => Some(e),
    })
}

/// A recipient's status after one more of its events, in recording order ([`deciding_event`]'s
/// rule, for row builders that see one event at a time).
pub fn next_status(current: Status, event: Event) -> Status {
    if current == Status::Failed && event == Event::Send { current } else { event.status() }
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::envelope::Envelope;
    use crate::peer::PeerFacts;
    use crate::phase::SmtpPhase;
    use crate::reply::ReplyKind;
    use crate::stage::inbound::Rejection;

    const AT: Timestamp = Timestamp(1_728_594_780_303);

    fn addr(s: &str) -> EmailAddress {
        s.parse().expect("address")
    }

    #[test]
    fn a_failure_decides_the_status_even_before_a_later_send() {
        let m = message();
        let rcpt = addr("bob@partner.test");
        let event = |kind| TraceEvent::of_message(&m, AT, kind, Some(&rcpt), String::new());
        let looped = [event(Event::Receive), event(Event::Fail), event(Event::Send)];
        assert_eq!(deciding_event(looped.iter()).map(|e| e.event), Some(Event::Fail));
        let retried = [event(Event::Receive), event(Event::Defer), event(Event::Send)];
        assert_eq!(deciding_event(retried.iter()).map(|e| e.event), Some(Event::Send));
        assert!(deciding_event([].iter()).is_none());
    }

    fn message() -> AcceptedMessage {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        AcceptedMessage {
            internal_id: 7,
            message_id: "<m@contoso.test>".into(),
            envelope: Envelope {
                sender: Some(addr("alice@contoso.test")),
                recipients: vec![addr("bob@fabrikam.test")],
                ..Envelope::default()
            },
            peer: PeerFacts::new(ip, 25, ip),
            verdict: InboundVerdict::Accepted {
                connector: Some("On-premises relay".into()),
                direction: Direction::Originating,
                internal: true,
                relay_allowed: true,
                cross_premises: false,
                checks: vec![],
            },
            data: Vec::new(),
            received_at: AT,
            auth: None,
        }
    }

    fn reply(wire: &str) -> Reply {
        Reply::parse(&format!("{wire}\r\n")).expect("reply")
    }

    /// One row per outcome: the event, its detail, data, ToIP and connector.
    #[test]
    fn settled_events() {
        let m = message();
        let rcpt = addr("bob@fabrikam.test");
        let last = LastAttempt { server: "smtp.gateway.test".into(), ip: "198.51.100.7:25".into() };
        let rows = [
            (
                Outcome::Delivered { reply: reply("250 2.6.0 ok") },
                Some("TLSv1.3 TLS13_AES_256_GCM_SHA384"),
                Event::Send,
                "Sent to smtp.gateway.test over TLSv1.3 TLS13_AES_256_GCM_SHA384",
                "250 2.6.0 ok",
            ),
            (
                Outcome::Delivered { reply: reply("250 ok") },
                None,
                Event::Send,
                "Sent to smtp.gateway.test without TLS",
                "250 ok",
            ),
            (
                Outcome::Deferred { retry_at: AT, reply: reply("451 4.7.1 later") },
                None,
                Event::Defer,
                "The last attempt to deliver the message encountered an error; next attempt at 2024-10-10T21:13:00.303Z",
                "LED=451 4.7.1 later",
            ),
            (
                Outcome::Failed { reply: reply("550 5.1.1 unknown"), last_error: None },
                None,
                Event::Fail,
                "Delivery failed",
                "550 5.1.1 unknown",
            ),
            (
                Outcome::Failed {
                    reply: reply("550 4.4.7 QUEUE.Expired; message expired"),
                    last_error: Some(reply("451 4.7.1 later")),
                },
                None,
                Event::Fail,
                "Message expired; last error: 451 4.7.1 later",
                "550 4.4.7 QUEUE.Expired; message expired",
            ),
        ];
        for (outcome, tls, event, detail, data) in rows {
            let ev = TraceEvent::settled(&m, &rcpt, &outcome, Some(&last), tls, Some("To gateway"), AT);
            assert_eq!((ev.event, ev.detail.as_str(), ev.data.as_deref()), (event, detail, Some(data)));
            assert_eq!(ev.to_ip.as_deref(), Some("198.51.100.7:25"));
            assert_eq!(ev.connector.as_deref(), Some("To gateway"));
        }
        // MX delivery without an outbound connector: none (issue 10 changed this on purpose: it
        // named the inbound connector of record before).
        let ev = TraceEvent::settled(&m, &rcpt, &Outcome::Delivered { reply: reply("250 ok") }, None, None, None, AT);
        assert_eq!(ev.connector, None, "no outbound connector: none, not the inbound one");
        let ev = TraceEvent::failed(&m, &rcpt, &reply("556 5.1.10 null MX"), AT);
        assert_eq!(ev.connector, None);
        assert_eq!(TraceEvent::received(&m, &rcpt, "MAILSIM01", AT).connector.as_deref(), Some("On-premises relay"));
    }

    #[test]
    fn received_ndr_and_refusal_wording() {
        let m = message();
        let rcpt = addr("bob@fabrikam.test");
        assert_eq!(TraceEvent::received(&m, &rcpt, "MAILSIM01", AT).detail, "Received by MAILSIM01 (Originating)");
        let dsn = TraceEvent::ndr_generated(&m, "<ndr-1@MAILSIM01>", &addr("alice@contoso.test"), AT);
        assert_eq!(
            (dsn.event, dsn.detail.as_str()),
            (
                Event::Dsn,
                format!("NDR <ndr-1@MAILSIM01> generated for alice@contoso.test about {}", m.message_id).as_str()
            )
        );
        // The NDR's own row: its id, `<>` to the original sender, no connector.
        assert_eq!(dsn.recipient.as_deref(), Some("alice@contoso.test"));
        assert_eq!((dsn.sender.as_str(), dsn.message_id.as_str()), ("<>", "<ndr-1@MAILSIM01>"));
        assert_eq!(dsn.connector, None);
        let mut refusal = Refusal {
            envelope: m.envelope.clone(),
            peer: m.peer.clone(),
            stage: SmtpPhase::Rcpt,
            reply: reply("550 5.7.64 TenantAttribution; Relay Access Denied"),
            rejection: Some(Rejection {
                connector: None,
                reply: ReplyKind::RelayDenied,
                reason: "no connector attributes the message".into(),
            }),
            at: AT,
        };
        let evs = TraceEvent::refused(&refusal);
        assert_eq!(evs[0].detail, "Rejected at RCPT: no connector attributes the message");
        refusal.stage = SmtpPhase::Dot;
        refusal.rejection = None;
        assert_eq!(TraceEvent::refused(&refusal)[0].detail, "Rejected at DATA");
    }
}
