//! The envelope and the accepted message handed from the session to the rest of the pipeline.

use crate::addr::EmailAddress;
use crate::peer::PeerFacts;
use crate::stage::inbound::InboundVerdict;
use crate::time::Timestamp;

/// MAIL FROM parameters the session honoured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// SIZE= (RFC 1870).
    pub size: Option<u64>,
    /// BODY=8BITMIME or BINARYMIME (RFC 6152, RFC 3030).
    pub body: Body,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// RET=FULL|HDRS (RFC 3461).
    pub ret_full: Option<bool>,
    /// ENVID (RFC 3461).
    pub envid: Option<String>,
}

/// The BODY= parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// 7BIT or absent.
    #[default]
    SevenBit,
    /// 8BITMIME.
    EightBitMime,
    /// BINARYMIME (BDAT only).
    BinaryMime,
}

/// The SMTP envelope of one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse path; `None` is the null sender `<>`.
    pub sender: Option<EmailAddress>,
    /// MAIL parameters.
    pub params: MailParams,
    /// Accepted forward paths, in RCPT order.
    pub recipients: Vec<EmailAddress>,
}

/// A message the tenant answered 250 for. From here on it must end delivered, deferred or bounced.
#[derive(Clone, Debug)]
pub struct AcceptedMessage {
    /// The tenant's internal id (also in the 250 reply).
    pub internal_id: u64,
    /// The Message-ID header (or one the tenant assigned), with angle brackets.
    pub message_id: String,
    /// The envelope.
    pub envelope: Envelope,
    /// The peer, as it was at end of data.
    pub peer: PeerFacts,
    /// The inbound stage's verdict for this message.
    pub verdict: InboundVerdict,
    /// The full message as stored: the tenant's own headers first, then the received bytes.
    pub data: Vec<u8>,
    /// When the tenant accepted it.
    pub received_at: Timestamp,
    /// The authentication verdicts (exo-behaviour §14), when the world evaluates them.
    pub auth: Option<Box<crate::auth::AuthVerdict>>,
}

impl AcceptedMessage {
    /// The same message with other content (a rule's rewrite, the header firewall's output, or
    /// nothing when the content lives on disk), field by field so the old content is not copied.
    pub fn with_data(&self, data: Vec<u8>) -> Self {
        Self {
            internal_id: self.internal_id,
            message_id: self.message_id.clone(),
            envelope: self.envelope.clone(),
            peer: self.peer.clone(),
            verdict: self.verdict.clone(),
            data,
            received_at: self.received_at,
            auth: self.auth.clone(),
        }
    }
}
