//! What the unit tests of this crate share.

use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::time::Timestamp;

/// Message `id` from `sender` to `rcpts`, accepted on the `Partner` connector.
pub fn message(id: u64, sender: Option<&str>, rcpts: &[&str]) -> AcceptedMessage {
    AcceptedMessage {
        internal_id: id,
        message_id: format!("<{id}@test>"),
        envelope: Envelope {
            sender: sender.map(|s| s.parse().unwrap()),
            recipients: rcpts.iter().map(|r| r.parse().unwrap()).collect(),
            ..Envelope::default()
        },
        peer: PeerFacts::new("127.0.0.9".parse().unwrap(), 2525, "203.0.113.9".parse().unwrap()),
        verdict: InboundVerdict::Accepted {
            connector: Some("Partner".into()),
            direction: Direction::Incoming,
            internal: false,
            relay_allowed: false,
            cross_premises: false,
            checks: Vec::new(),
        },
        data: format!("Subject: {id}\r\n\r\nbody\r\n").into_bytes(),
        received_at: Timestamp::from_millis(1_700_000_000_000),
        auth: None,
    }
}
