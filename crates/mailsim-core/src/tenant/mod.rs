//! The configured tenant: accepted domains, mailboxes, connectors and transport settings. Loaded
//! once (from TOML text by [`load`], or built in code) and shared read-only by every session.
//!
//! Names follow EXO's parameters (exo-semantics §2, §3, §4) so that an admin can paste what
//! `Get-AcceptedDomain` and `Get-InboundConnector` show.

pub mod accepted_domain;
pub mod inbound_connector;
pub mod load;
pub mod outbound_connector;
pub mod pattern;

use std::collections::HashSet;

pub use accepted_domain::{AcceptedDomain, DomainType};
pub use inbound_connector::{ConnectorType, InboundConnector, InboundIndex, InboundIndexCache};
pub use outbound_connector::{OutboundConnector, SmartHost, TlsSettings};
pub use pattern::DomainPattern;

use crate::addr::{Domain, EmailAddress};

/// At which SMTP stage the connector and relay rejections (5.7.51, 5.7.64, 5.7.68, 454 4.7.0) are
/// sent. EXO's stage is unconfirmed (exo-semantics §1.2, §12); the default follows the reference's
/// recommendation, end of DATA, and a scenario can move it to RCPT TO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum RejectionStage {
    /// Answer the RCPT TO command.
    RcptTo,
    /// Accept the recipients and refuse the message after its data.
    #[default]
    EndOfData,
}

/// Which text relay denial uses: EXO's current 5.7.64 or the classic `550 5.7.1 Unable to relay`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum RelayDenialText {
    /// `550 5.7.64 TenantAttribution; Relay Access Denied` (exo-semantics §5.1).
    #[default]
    TenantAttribution,
    /// `550 5.7.1 Unable to relay` (Exchange Server and older EXO builds).
    UnableToRelay,
}

/// Transport settings of the tenant endpoint, with EXO's values as defaults (exo-semantics §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportSettings {
    /// The host name in the banner, EHLO reply and diagnostic suffixes.
    pub server_name: String,
    /// The SIZE advertised and enforced, in bytes (EXO MX: 157286400).
    pub max_message_size: u64,
    /// Recipients per message before `452 4.5.3` (Exchange `MaxRecipientsPerMessage` 200).
    pub max_recipients: usize,
    /// Header section limit in bytes (Exchange `MaxHeaderSize` 256 KB).
    pub max_header_size: usize,
    /// Protocol errors before `421 4.7.0` (Exchange `MaxProtocolErrors` 5).
    pub max_protocol_errors: u32,
    /// Stage of connector and relay rejections.
    pub rejection_stage: RejectionStage,
    /// Relay denial wording.
    pub relay_denial_text: RelayDenialText,
    /// Set-OrganizationConfig RejectDirectSend (exo-semantics §5.1, 5.7.68).
    pub reject_direct_send: bool,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            server_name: "MAILSIM01.mail.protection.mailsim.test".to_string(),
            max_message_size: 157_286_400,
            max_recipients: 200,
            max_header_size: 262_144,
            max_protocol_errors: 5,
            rejection_stage: RejectionStage::default(),
            relay_denial_text: RelayDenialText::default(),
            reject_direct_send: false,
        }
    }
}

/// The whole configured tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tenant {
    /// Endpoint settings.
    pub settings: TransportSettings,
    /// Accepted domains.
    pub accepted_domains: Vec<AcceptedDomain>,
    /// Mailbox addresses, case-folded (`EmailAddress::key`).
    pub mailboxes: HashSet<String>,
    /// Inbound connectors, in configuration order. After editing this list *in place* (a field of
    /// a connector) once the tenant has been used, call [`Tenant::reindex`]; pushing, removing or
    /// replacing the list is detected on its own.
    pub inbound_connectors: Vec<InboundConnector>,
    /// The connector lookup index, built on first use from `inbound_connectors`. Leave it
    /// `Default::default()` when building a tenant by hand.
    pub inbound_index: InboundIndexCache,
    /// Outbound connectors, in configuration order.
    pub outbound_connectors: Vec<OutboundConnector>,
}

impl Tenant {
    /// The accepted domain covering `domain`: an exact match, or a parent domain with
    /// `MatchSubDomains` (InternalRelay only, exo-semantics §4.1).
    pub fn accepted_domain(&self, domain: &Domain) -> Option<&AcceptedDomain> {
        self.accepted_domains
            .iter()
            .find(|d| &d.name == domain)
            .or_else(|| self.accepted_domains.iter().find(|d| d.match_subdomains && domain.is_within(&d.name)))
    }

    /// Whether `address` is a mailbox of the tenant.
    pub fn has_mailbox(&self, address: &EmailAddress) -> bool {
        self.mailboxes.contains(&address.key())
    }

    /// Adds an accepted domain (builder style, for tests and the CLI).
    pub fn with_domain(mut self, name: &str, kind: DomainType) -> Self {
        let name = Domain::parse(name, true).expect("valid domain");
        self.accepted_domains.push(AcceptedDomain { name, domain_type: kind, match_subdomains: false });
        self
    }

    /// Adds an inbound connector (builder style).
    pub fn with_inbound_connector(mut self, connector: InboundConnector) -> Self {
        self.inbound_connectors.push(connector);
        self.reindex();
        self
    }

    /// Drops the connector lookup index so that the next use rebuilds it. Needed only after editing
    /// a connector in place once the tenant has been used.
    pub fn reindex(&mut self) {
        self.inbound_index = InboundIndexCache::default();
    }

    /// The connector lookup index for the current connector list: the cached one, or a fresh one
    /// when the list changed since the cache was built. Debug builds also check that the cache
    /// agrees with the connectors field for field, and panic if a connector was edited in place
    /// without [`Tenant::reindex`].
    pub fn inbound_index(&self) -> std::borrow::Cow<'_, InboundIndex> {
        let cached = self.inbound_index.get_or_build(&self.inbound_connectors);
        if !cached.built_from(&self.inbound_connectors) {
            return std::borrow::Cow::Owned(InboundIndex::build(&self.inbound_connectors));
        }
        debug_assert!(
            *cached == InboundIndex::build(&self.inbound_connectors),
            "Tenant::inbound_connectors was edited in place after use; call Tenant::reindex()"
        );
        std::borrow::Cow::Borrowed(cached)
    }

    /// Adds a mailbox (builder style).
    pub fn with_mailbox(mut self, address: &str) -> Self {
        let a: EmailAddress = address.parse().expect("valid address");
        self.mailboxes.insert(a.key());
        self
    }
}
