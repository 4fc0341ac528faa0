//! The messages of a world as the HTTP API lists them (in the spirit of Mailpit's
//! `/api/v1/messages`): every copy in a tenant mailbox and every message a scripted peer received,
//! each under a stable id, newest first.
//!
//! Ids: `mbx:<INTERNAL-ID>:<mailbox>` for a tenant copy (the 16-hex internal id of the 250 reply)
//! and `peer:<host>:<connection>:<DIGEST>` for a peer's message (its connection and a 16-hex digest
//! of its envelope and content, so the id stays when older messages are dropped or deleted). The index keeps
//! a parsed summary of each (From, To, Subject come from the headers once, not per request) and
//! catches up with the stores by what was appended since it last looked; when a store shrank or
//! changed under it (a delete, a cap), it rebuilds, reusing the summaries it has.

use std::collections::HashMap;
use std::sync::Arc;

use mail_parser::MessageParser;
use mailsim_core::time::Timestamp;
use mailsim_io::store::Delivered;
use mailsim_testkit::peer::ReceivedMessage;
use serde::Serialize;

/// One message in a listing.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The API's id.
    pub id: String,
    /// `mailbox` (a tenant mailbox) or `peer` (a scripted host's inbox).
    pub kind: &'static str,
    /// The mailbox address or the host name.
    #[serde(rename = "where")]
    pub location: String,
    /// MAIL FROM (empty for `<>`).
    pub mail_from: String,
    /// RCPT TO.
    pub rcpt_to: Vec<String>,
    /// The `From` header.
    pub from: String,
    /// The `To` header's addresses.
    pub to: Vec<String>,
    /// The `Subject` header.
    pub subject: String,
    /// The `Message-ID` header.
    pub message_id: String,
    /// Size in octets.
    pub size: usize,
    /// Simulated time: when the tenant accepted it, or when the API first saw a peer's copy.
    pub time: String,
    /// The TLS session it came over, if any.
    pub tls: Option<TlsSummary>,
    /// The address it came from (declared for the tenant's copies, loopback for a peer's).
    pub client_ip: String,
    #[serde(skip)]
    lower: String,
}

/// TLS facts of a message's session.
#[derive(Clone, Debug, Serialize)]
pub struct TlsSummary {
    /// `TLS1_2` or `TLS1_3`.
    pub version: String,
    /// Cipher suite.
    pub cipher: String,
    /// The client certificate's subject, if one was presented.
    pub client_cert_subject: Option<String>,
    /// The client certificate's trust as the tenant judged it (tenant copies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_trust: Option<String>,
    /// SNI.
    pub sni: Option<String>,
}

/// A listing's filters (query parameters). Text filters are case-insensitive substrings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `mailbox`, `peer`, a mailbox address or a host name.
    #[serde(rename = "where")]
    pub location: Option<String>,
    /// Any of envelope, From, To, Subject.
    pub q: Option<String>,
    /// MAIL FROM or From.
    pub sender: Option<String>,
    /// RCPT TO or To.
    pub recipient: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Skip this many matches (default 0).
    pub start: Option<usize>,
    /// At most this many (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// A page of messages.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Messages matching the filters.
    pub total: usize,
    /// Offset of this page.
    pub start: usize,
    /// Messages in this page.
    pub count: usize,
    /// The page, newest first.
    pub messages: Vec<Summary>,
}

#[derive(Default)]
struct Source {
    seen: usize,
    last: Option<String>,
}

#[derive(Default)]
struct PeerSource {
    seen: usize,
    last_peer: Option<(usize, usize, String)>,
}

/// Summaries in the order first seen, and where each store was read up to.
#[derive(Default)]
pub struct MessageIndex {
    order: Vec<Arc<Summary>>,
    by_id: HashMap<String, usize>,
    mailboxes: Source,
    peers: HashMap<String, PeerSource>,
}

/// The id of a tenant copy.
pub fn mailbox_id(d: &Delivered) -> String {
    format!("mbx:{:016X}:{}", d.message.internal_id, d.mailbox.key())
}

/// The digest of a peer's message in its id (stable within a run).
pub fn peer_digest(m: &ReceivedMessage) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (&m.mail_from, &m.rcpt_to, &m.data).hash(&mut h);
    h.finish()
}

/// The id of a peer's message.
pub fn peer_id(host: &str, m: &ReceivedMessage) -> String {
    format!("peer:{host}:{}:{:016X}", m.connection, peer_digest(m))
}

/// A parsed id.
pub enum Id<'a> {
    /// A tenant copy.
    Mailbox {
        /// Internal id.
        internal_id: u64,
        /// Mailbox.
        mailbox: &'a str,
    },
    /// A peer's message.
    Peer {
        /// Host.
        host: &'a str,
        /// Connection.
        connection: usize,
        /// Digest of envelope and content.
        digest: u64,
    },
}

impl<'a> Id<'a> {
    /// Parses an id; `None` when it is not one.
    pub fn parse(id: &'a str) -> Option<Self> {
        if let Some(rest) = id.strip_prefix("mbx:") {
            let (hex, mailbox) = rest.split_once(':')?;
            return Some(Id::Mailbox { internal_id: u64::from_str_radix(hex, 16).ok()?, mailbox });
        }
        let rest = id.strip_prefix("peer:")?;
        let mut parts = rest.rsplitn(3, ':');
        let digest = u64::from_str_radix(parts.next()?, 16).ok()?;
        let connection = parts.next()?.parse().ok()?;
        Some(Id::Peer { host: parts.next()?, connection, digest })
    }
}

fn headers(data: &[u8]) -> (String, Vec<String>, String, String) {
    let Some(m) = MessageParser::default().parse_headers(data) else {
        return Default::default();
    };
    let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| a.iter().filter_map(|x| x.address().map(str::to_string)).collect()).unwrap_or_default()
    };
    let from = addrs(m.from()).into_iter().next().unwrap_or_default();
    let id = m.message_id().map(|i| format!("<{i}>")).unwrap_or_default();
    (from, addrs(m.to()), m.subject().unwrap_or_default().to_string(), id)
}

fn finish(mut s: Summary) -> Summary {
    s.lower = format!("{}\n{}\n{}\n{}\n{}", s.mail_from, s.rcpt_to.join(","), s.from, s.to.join(","), s.subject)
        .to_ascii_lowercase();
    s
}

fn of_delivered(d: &Delivered) -> Summary {
    let m = &d.message;
    let (from, to, subject, message_id) = headers(&m.data);
    finish(Summary {
        id: mailbox_id(d),
        kind: "mailbox",
        location: d.mailbox.to_string(),
        mail_from: m.envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default(),
        rcpt_to: m.envelope.recipients.iter().map(ToString::to_string).collect(),
        from,
        to,
        subject,
        message_id: if message_id.is_empty() { m.message_id.clone() } else { message_id },
        size: m.data.len(),
        time: m.received_at.iso8601(),
        tls: m.peer.tls.as_ref().map(|t| TlsSummary {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            client_cert_subject: t.client_cert.as_ref().map(|c| c.subject.clone()),
            client_cert_trust: t.client_cert.as_ref().map(|c| format!("{:?}", c.trust)),
            sni: t.sni.clone(),
        }),
        client_ip: m.peer.ip.to_string(),
        lower: String::new(),
    })
}

fn of_received(host: &str, m: &ReceivedMessage, now: Timestamp) -> Summary {
    let (from, to, subject, message_id) = headers(&m.data);
    finish(Summary {
        id: peer_id(host, m),
        kind: "peer",
        location: host.to_string(),
        mail_from: m.mail_from.clone(),
        rcpt_to: m.rcpt_to.clone(),
        from,
        to,
        subject,
        message_id,
        size: m.data.len(),
        time: now.iso8601(),
        tls: m.tls.as_ref().map(|t| TlsSummary {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            client_cert_subject: t.client_cert_subject.clone(),
            client_cert_trust: None,
            sni: t.sni.clone(),
        }),
        client_ip: m.client_ip.to_string(),
        lower: String::new(),
    })
}

/// The position in a peer's inbox of the message with this connection and digest.
pub fn peer_position(inbox: &[ReceivedMessage], connection: usize, digest: u64) -> Option<usize> {
    inbox.iter().position(|m| m.connection == connection && peer_digest(m) == digest)
}

impl MessageIndex {
    fn add(&mut self, s: Summary) {
        if !self.by_id.contains_key(&s.id) {
            self.by_id.insert(s.id.clone(), self.order.len());
            self.order.push(Arc::new(s));
        }
    }

    /// Catches up with the tenant's mailboxes.
    pub fn sync_mailboxes(&mut self, delivered: &[Delivered]) {
        let src = &self.mailboxes;
        let incremental = delivered.len() >= src.seen
            && (src.seen == 0 || src.last.as_deref() == Some(mailbox_id(&delivered[src.seen - 1]).as_str()));
        let from = if incremental { src.seen } else { 0 };
        if !incremental {
            self.prune(|s| s.kind == "mailbox", delivered.iter().map(mailbox_id).collect());
        }
        for d in &delivered[from..] {
            if !self.by_id.contains_key(&mailbox_id(d)) {
                self.add(of_delivered(d));
            }
        }
        self.mailboxes = Source { seen: delivered.len(), last: delivered.last().map(mailbox_id) };
    }

    /// Catches up with one peer's inbox.
    pub fn sync_peer(&mut self, host: &str, inbox: &[ReceivedMessage], now: Timestamp) {
        let fingerprint = |m: &ReceivedMessage| (m.connection, m.data.len(), m.mail_from.clone());
        let src = self.peers.remove(host).unwrap_or_default();
        let incremental = inbox.len() >= src.seen
            && (src.seen == 0 || src.last_peer.as_ref() == Some(&fingerprint(&inbox[src.seen - 1])));
        let mut src = if incremental {
            src
        } else {
            let prefix = format!("peer:{host}:");
            self.prune(|s| s.id.starts_with(&prefix), inbox.iter().map(|m| peer_id(host, m)).collect());
            PeerSource::default()
        };
        for m in &inbox[src.seen..] {
            if !self.by_id.contains_key(&peer_id(host, m)) {
                self.add(of_received(host, m, now));
            }
        }
        src.seen = inbox.len();
        src.last_peer = inbox.last().map(fingerprint);
        self.peers.insert(host.to_string(), src);
    }

    /// Drops the summaries `which` selects that are not in `keep`.
    fn prune(&mut self, which: impl Fn(&Summary) -> bool, keep: std::collections::HashSet<String>) {
        self.order.retain(|s| !which(s) || keep.contains(&s.id));
        self.by_id = self.order.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
    }

    /// Forgets one message (deleted).
    pub fn forget(&mut self, id: &str) {
        if self.by_id.remove(id).is_some() {
            self.order.retain(|s| s.id != id);
            self.by_id = self.order.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        }
    }

    /// One message's summary.
    pub fn get(&self, id: &str) -> Option<Arc<Summary>> {
        self.by_id.get(id).map(|&i| self.order[i].clone())
    }

    /// A page of the messages `f` selects, newest first.
    pub fn page(&self, f: &Filter) -> Page {
        let low = |o: &Option<String>| o.as_ref().map(|s| s.to_ascii_lowercase());
        let finder =
            |o: &Option<String>| o.as_ref().map(|s| memchr::memmem::Finder::new(&s.to_ascii_lowercase()).into_owned());
        let (sender, recipient, subject) = (low(&f.sender), low(&f.recipient), low(&f.subject));
        let q = finder(&f.q);
        let location = low(&f.location);
        let matches = |s: &Summary| {
            location.as_ref().is_none_or(|l| l == s.kind || s.location.eq_ignore_ascii_case(l))
                && q.as_ref().is_none_or(|q| q.find(s.lower.as_bytes()).is_some())
                && sender.as_ref().is_none_or(|x| {
                    s.mail_from.to_ascii_lowercase().contains(x.as_str())
                        || s.from.to_ascii_lowercase().contains(x.as_str())
                })
                && recipient
                    .as_ref()
                    .is_none_or(|x| s.rcpt_to.iter().chain(&s.to).any(|r| r.to_ascii_lowercase().contains(x.as_str())))
                && subject.as_ref().is_none_or(|x| s.subject.to_ascii_lowercase().contains(x.as_str()))
        };
        let start = f.start.unwrap_or(0);
        let limit = f.limit.unwrap_or(50).min(1000);
        let mut total = 0;
        let mut messages = Vec::new();
        for s in self.order.iter().rev() {
            if matches(s) {
                if total >= start && messages.len() < limit {
                    messages.push((**s).clone());
                }
                total += 1;
            }
        }
        Page { total, start, count: messages.len(), messages }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(connection: usize, subject: &str) -> ReceivedMessage {
        ReceivedMessage {
            mail_from: "a@contoso.test".into(),
            rcpt_to: vec!["bob@partner.test".into()],
            data: format!("From: <a@contoso.test>\r\nTo: <bob@partner.test>\r\nSubject: {subject}\r\n\r\nhi\r\n")
                .into_bytes(),
            tls: None,
            client_ip: "127.0.0.1".parse().unwrap(),
            helo: None,
            connection,
            id: connection as u64,
        }
    }

    #[test]
    fn ids_round_trip() {
        assert!(matches!(
            Id::parse("mbx:00000000000000FF:alice@contoso.test"),
            Some(Id::Mailbox { internal_id: 255, mailbox: "alice@contoso.test" })
        ));
        assert!(matches!(
            Id::parse("peer:partner:3:00000000000000A1"),
            Some(Id::Peer { host: "partner", connection: 3, digest: 0xA1 })
        ));
        for bad in ["", "mbx:", "mbx:zz:a@b", "peer:partner:x:1", "peer:1", "other:1"] {
            assert!(Id::parse(bad).is_none(), "{bad}");
        }
    }

    /// Appends are taken in as they come; a store that lost its oldest (a cap) or one message (a
    /// delete) is re-read, keeping the ids of the messages still there.
    #[test]
    fn a_peer_inbox_is_followed_through_appends_caps_and_deletes() {
        let now = Timestamp(0);
        let mut index = MessageIndex::default();
        let mut inbox = vec![received(0, "one"), received(0, "two"), received(1, "three")];
        index.sync_peer("partner", &inbox, now);
        let ids = |index: &MessageIndex| {
            index.page(&Filter::default()).messages.into_iter().map(|m| m.id).collect::<Vec<_>>()
        };
        let id = |m: &ReceivedMessage| peer_id("partner", m);
        assert_eq!(ids(&index), [id(&inbox[2]), id(&inbox[1]), id(&inbox[0])]);
        assert!(id(&inbox[1]).starts_with("peer:partner:0:"));
        inbox.push(received(1, "four"));
        index.sync_peer("partner", &inbox, now);
        assert_eq!(ids(&index)[0], id(&inbox[3]));
        let before = ids(&index);
        inbox.remove(0);
        index.sync_peer("partner", &inbox, now);
        assert_eq!(ids(&index), before[..3]);
        assert_eq!(peer_position(&inbox, 1, peer_digest(&inbox[2])), Some(2));
        let page = index.page(&Filter { subject: Some("THREE".into()), ..Filter::default() });
        assert_eq!((page.total, page.messages[0].subject.as_str()), (1, "three"));
    }
}
