//! The script: everything a [`ScriptedPeer`](super::ScriptedPeer) does, as plain data (serde, so
//! scenario files can build it): STARTTLS, the certificate, the client-certificate request, and a
//! [`Behaviour`] per stage, sequences advancing each time the stage is reached.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DEFAULT_MAX_MESSAGE_SIZE;
use crate::certs::LeafCert;

/// Whether and how the peer offers STARTTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartTls {
    /// Advertise STARTTLS; plaintext mail is accepted too.
    #[default]
    Offer,
    /// Advertise STARTTLS and refuse MAIL before it with
    /// `530 5.7.0 Must issue a STARTTLS command first`.
    Require,
    /// Neither advertise nor accept STARTTLS (`502 5.5.1`).
    None,
}

/// Whether the peer asks the client for a certificate during the handshake. Any certificate is
/// accepted (its subject is recorded); judging it is the test's business.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientCertRequest {
    /// Do not ask.
    #[default]
    Ignore,
    /// Ask; a client without one still completes the handshake.
    Request,
    /// Ask, and fail the handshake if the client presents none.
    Require,
}

/// The certificate the peer presents after STARTTLS.
///
/// Every generated certificate carries both `serverAuth` and `clientAuth`, so a client that
/// rejects it does so for the reason the variant names (name, expiry, issuer) and not for its key
/// usage. (`TestPki::wrong_subject`, `expired` and `untrusted` are client-only certificates, which
/// is why they are not used here as they are.) Certificates are issued by the peer's [`TestPki`](crate::certs::TestPki)
/// (or its rogue CA) when the script is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum PeerCert {
    /// Trusted (test CA), valid, CN and dNSName SAN = the script's `host_name`. For
    /// `mx.partner.test`, `mail.gateway.test` and `tenant.mailsim.test` this is the PKI's own leaf.
    #[default]
    RightName,
    /// Trusted and valid, but for [`WRONG_NAME`](super::WRONG_NAME) (`mail.wrong.test`).
    WrongName,
    /// Trusted and for the host's name, but expired (2020–2021).
    Expired,
    /// For the host's name and valid, but issued by the rogue CA nobody trusts.
    Untrusted,
    /// Trusted and valid, for the given name (CN and dNSName SAN).
    Named(String),
    /// A certificate made elsewhere (not serialisable).
    #[serde(skip)]
    Leaf(Box<LeafCert>),
}

/// What the peer does when a stage is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behaviour {
    /// The stage's default (accepting) reply.
    #[default]
    Accept,
    /// This reply instead: code and text, e.g. `(451, "4.3.0 Try again later")`. A text with
    /// `\n` becomes a multi-line reply. A 2xx code (354 for DATA) still counts as acceptance.
    Reply(u16, String),
    /// Wait this long (milliseconds in serde form), then the default reply.
    Delay(#[serde(with = "millis")] Duration),
    /// Close the TCP connection without replying.
    Drop,
    /// The n-th time this stage is reached (counted across connections since the script was set)
    /// use the n-th behaviour; the last one repeats. Empty means [`Behaviour::Accept`].
    Sequence(Vec<Behaviour>),
}

impl Behaviour {
    /// `Behaviour::Reply(code, text.into())`.
    pub fn reply(code: u16, text: impl Into<String>) -> Self {
        Behaviour::Reply(code, text.into())
    }
}

/// Everything a [`ScriptedPeer`](super::ScriptedPeer) does, as plain data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerScript {
    /// The name in the greeting and the EHLO reply, e.g. `mx.partner.test`.
    pub host_name: String,
    /// STARTTLS policy.
    pub starttls: StartTls,
    /// Certificate presented after STARTTLS.
    pub cert: PeerCert,
    /// Whether to ask for a client certificate.
    pub client_cert: ClientCertRequest,
    /// At connection: the greeting. A non-2xx reply makes the peer answer every command but QUIT
    /// with `503 5.5.1`.
    pub on_connect: Behaviour,
    /// At EHLO and HELO.
    pub on_ehlo: Behaviour,
    /// At MAIL FROM.
    pub on_mail: Behaviour,
    /// At RCPT TO, for recipients without an entry in `on_rcpt_for`.
    pub on_rcpt: Behaviour,
    /// At RCPT TO, per recipient address (compared case-insensitively); each entry has its own
    /// sequence counter.
    pub on_rcpt_for: BTreeMap<String, Behaviour>,
    /// At the DATA command.
    pub on_data: Behaviour,
    /// After the final `.`: the default reply (or any 2xx) puts the message in the inbox.
    pub on_end_of_data: Behaviour,
    /// Message size limit, advertised with `SIZE`; larger messages get `552 5.3.4`.
    pub max_message_size: usize,
    /// Longest wait for the client's next bytes (milliseconds in serde form); then `421 4.4.2`
    /// and close.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
    /// Relay every accepted message on to this address, as a gateway relays inbound mail to the
    /// tenant: from the peer's own address, same envelope, a `Received:` header added (and the
    /// message still kept in the inbox). Bounded: at most [`MAX_FORWARD_HOPS`] `Received:` headers
    /// are passed on, so a misconfigured loop ends here too.
    #[serde(default)]
    pub forward_to: Option<std::net::SocketAddr>,
    /// What the relay adds to what it forwards: its `Received:` lines with declared addresses,
    /// scripted internal hops, a DKIM signature. Set by the world, not by scenario keys; `None`
    /// keeps the plain one-line relay.
    #[serde(skip)]
    pub relay: Option<super::forward::RelayOptions>,
}

/// A forwarding peer stops relaying a message that already carries this many `Received:` headers.
pub const MAX_FORWARD_HOPS: usize = 100;

impl Default for PeerScript {
    fn default() -> Self {
        Self::new("peer.mailsim.test")
    }
}

impl PeerScript {
    /// A peer named `host_name` that offers STARTTLS with a right-name certificate, asks for no
    /// client certificate and accepts everything.
    pub fn new(host_name: impl Into<String>) -> Self {
        Self {
            host_name: host_name.into(),
            starttls: StartTls::Offer,
            cert: PeerCert::RightName,
            client_cert: ClientCertRequest::Ignore,
            on_connect: Behaviour::Accept,
            on_ehlo: Behaviour::Accept,
            on_mail: Behaviour::Accept,
            on_rcpt: Behaviour::Accept,
            on_rcpt_for: BTreeMap::new(),
            on_data: Behaviour::Accept,
            on_end_of_data: Behaviour::Accept,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Duration::from_secs(60),
            forward_to: None,
            relay: None,
        }
    }
}

/// Picks the behaviour for the `n`-th arrival at a stage, looking through sequences.
pub(super) fn resolve(behaviour: &Behaviour, n: usize) -> &Behaviour {
    match behaviour {
        Behaviour::Sequence(seq) => match seq.get(n).or(seq.last()) {
            Some(b) => resolve(b, n),
            None => &Behaviour::Accept,
        },
        other => other,
    }
}

/// `Duration` as whole milliseconds in serde form.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
