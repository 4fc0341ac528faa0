//! A world filled the way the pipeline fills it, without SMTP: the listing benchmarks (`api` here,
//! `web_page` in the e2e crate) deliver sample messages straight into a tenant endpoint.

use std::sync::Arc;

use mailsim::endpoint::RunningEndpoint;
use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::time::Timestamp;
use mailsim_core::trace::TraceEvent;

/// Message `n` (1,000 senders, 100 mailboxes, about 1 KiB; its header section starts with
/// `head`): a delivered copy, a RECEIVE and a DELIVER event.
pub fn deliver(endpoint: &RunningEndpoint, n: usize, head: &str) {
    let ip = "203.0.113.9".parse().unwrap();
    let sender: EmailAddress = format!("sender{}@fabrikam.test", n % 1000).parse().unwrap();
    let rcpt: EmailAddress = format!("user{}@contoso.test", n % 100).parse().unwrap();
    let data = format!(
        "{head}From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: message {n}\r\nMessage-ID: <{n}@fabrikam.test>\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(12)
    );
    let message = Arc::new(AcceptedMessage {
        internal_id: n as u64 + 1,
        message_id: format!("<{n}@fabrikam.test>"),
        envelope: Envelope { sender: Some(sender), recipients: vec![rcpt.clone()], ..Envelope::default() },
        peer: PeerFacts::new(ip, 25, ip),
        verdict: InboundVerdict::Accepted {
            connector: None,
            direction: Direction::Incoming,
            internal: false,
            relay_allowed: false,
            cross_premises: false,
            checks: vec![],
        },
        data: data.into_bytes(),
        received_at: Timestamp::from_secs(1_800_000_000 + n as i64),
        auth: None,
    });
    let at = message.received_at;
    endpoint.trace().record(TraceEvent::received(&message, &rcpt, "MAILSIM01", at));
    endpoint.trace().record(TraceEvent::delivered_to_mailbox(&message, &rcpt, at));
    let _ = endpoint.store().deliver(rcpt, message);
}
