//! The configured tenant: accepted domains, mailboxes, connectors and transport settings.
//!
//! Contract: a [`Tenant`] is built once, by [`TenantBuilder::build`] (which the loader, [`load`],
//! calls too), and is read-only afterwards: its parts are readable through `Deref` to
//! [`TenantConfig`], nothing can change them, and the connector lookup index is built with it.
//! `build` enforces what the EXO cmdlets refuse, the per-connector rules living next to the
//! connector types ([`InboundConnector::validate`], [`OutboundConnector::validate`]), so a tenant
//! built in Rust passes the same checks as one loaded from a file. A change (an admin editing a
//! connector between scenario steps) builds a new tenant: [`Tenant::to_builder`], edit, `build`.
//!
//! Names follow EXO's parameters (exo-behaviour §2, §3, §4) so that an admin can paste what
//! `Get-AcceptedDomain` and `Get-InboundConnector` show.

pub mod accepted_domain;
pub mod anti_phish;
pub mod inbound_connector;
pub mod lint_only;
pub mod load;
pub mod outbound_connector;
pub mod pattern;
pub mod transport_rule;

use std::collections::HashSet;
use std::fmt;
use std::ops::{Deref, DerefMut};

pub use accepted_domain::{AcceptedDomain, DomainType};
pub use anti_phish::AntiPhishPolicy;
pub use inbound_connector::{ConnectorType, InboundConnector, InboundIndex};
pub use outbound_connector::{OutboundConnector, SmartHost, TlsSettings};
pub use pattern::DomainPattern;
pub use transport_rule::{DistributionGroup, TransportRule};

use crate::addr::{Domain, EmailAddress};

/// At which SMTP stage the connector and relay rejections (5.7.51, 5.7.64, 5.7.68, 454 4.7.0) are
/// sent. EXO's stage is unconfirmed (exo-behaviour §1.2, §12); the default follows the reference's
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
    /// `550 5.7.64 TenantAttribution; Relay Access Denied` (exo-behaviour §5.1).
    #[default]
    TenantAttribution,
    /// `550 5.7.1 Unable to relay` (Exchange Server and older EXO builds).
    UnableToRelay,
}

/// Transport settings of the tenant endpoint, with EXO's values as defaults (exo-behaviour §6).
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
    /// Protocol errors a connection may make; the next one is answered with `421 4.7.0` and
    /// closes it (Exchange `MaxProtocolErrors` 5: five answered, the sixth closes).
    pub max_protocol_errors: u32,
    /// Stage of connector and relay rejections.
    pub rejection_stage: RejectionStage,
    /// Relay denial wording.
    pub relay_denial_text: RelayDenialText,
    /// Set-OrganizationConfig RejectDirectSend (exo-behaviour §5.1, 5.7.68).
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

/// What a tenant is made of, as an admin configures it: the parts of a [`Tenant`] (read through
/// `Deref`) and of a [`TenantBuilder`] (edited through `DerefMut`). Holding one proves nothing;
/// holding a `Tenant` proves it was validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantConfig {
    /// Endpoint settings.
    pub settings: TransportSettings,
    /// Accepted domains.
    pub accepted_domains: Vec<AcceptedDomain>,
    /// Mailbox addresses, case-folded (`EmailAddress::key`).
    pub mailboxes: HashSet<String>,
    /// Inbound connectors, in configuration order.
    pub inbound_connectors: Vec<InboundConnector>,
    /// Outbound connectors, in configuration order.
    pub outbound_connectors: Vec<OutboundConnector>,
    /// Distribution groups of `[Directory]` (for `FromMemberOf`/`SentToMemberOf`, §13.4).
    pub distribution_groups: Vec<DistributionGroup>,
    /// Mail flow rules, in configuration order (evaluated by priority, [`Tenant::rules`]).
    pub transport_rules: Vec<TransportRule>,
    /// The anti-phishing policy's DMARC settings (`[AntiPhishPolicy]`, exo-behaviour §14.5).
    pub anti_phish: AntiPhishPolicy,
    /// `[ArcConfig]`, read by lint only ([`lint_only`]).
    pub arc_config: lint_only::ArcConfig,
    /// `[HostedConnectionFilterPolicy]`, read by lint only.
    pub connection_filter: lint_only::HostedConnectionFilterPolicy,
    /// `[HostedContentFilterPolicy]`, read by lint only.
    pub content_filter: lint_only::HostedContentFilterPolicy,
}

impl TenantConfig {
    /// The accepted domain covering `domain`: an exact match, or a parent domain with
    /// `MatchSubDomains` (InternalRelay only, exo-behaviour §4.1).
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

    /// `New-AcceptedDomain`'s rules for the accepted domain at position `i` (0-based), against
    /// the ones before it (exo-behaviour §4.1).
    pub(crate) fn check_accepted_domain(&self, i: usize) -> Result<(), TenantError> {
        let d = &self.accepted_domains[i];
        let object = || format!("AcceptedDomain[{}]", i + 1);
        if self.accepted_domains[..i].iter().any(|a| a.name == d.name) {
            return Err(TenantError::new(
                object(),
                ParameterError::new("DomainName", format!("{} is listed twice", d.name)),
            ));
        }
        if d.match_subdomains && d.domain_type != DomainType::InternalRelay {
            return Err(TenantError::new(
                object(),
                ParameterError::new("MatchSubDomains", "MatchSubDomains is only allowed on InternalRelay domains")
                    .hint("set DomainType = \"InternalRelay\" (exo-behaviour §4.1)"),
            ));
        }
        Ok(())
    }

    /// A mailbox's address must be in an accepted domain.
    pub(crate) fn check_mailbox(&self, address: &EmailAddress) -> Result<(), TenantError> {
        if self.accepted_domain(address.domain()).is_none() {
            return Err(TenantError::new(
                "Directory",
                ParameterError::new("Mailboxes", format!("{address}: {} is not an accepted domain", address.domain()))
                    .hint("add it as an [[AcceptedDomain]]; a mailbox's addresses must be in accepted domains"),
            ));
        }
        Ok(())
    }

    /// The inbound connector at position `i` (0-based): its own rules
    /// ([`InboundConnector::validate`]), a name no connector before it has (EXO compares names
    /// case-insensitively), and `AssociatedAcceptedDomains` among the accepted domains.
    pub(crate) fn check_inbound_connector(&self, i: usize) -> Result<(), TenantError> {
        let c = &self.inbound_connectors[i];
        let object = || format!("InboundConnector[{}]", i + 1);
        let name = c.name.trim();
        let folded = name.to_lowercase();
        let same = |o: &InboundConnector| o.name.trim().chars().flat_map(char::to_lowercase).eq(folded.chars());
        if !name.is_empty()
            && let Some(first) = self.inbound_connectors[..i].iter().position(same)
        {
            return Err(TenantError::new(
                object(),
                ParameterError::new(
                    "Name",
                    format!("a connector named `{name}` already exists (InboundConnector[{}])", first + 1),
                ),
            ));
        }
        c.validate().map_err(|e| TenantError::new(object(), e))?;
        for d in &c.associated_accepted_domains {
            if !self.accepted_domains.iter().any(|a| a.name == *d) {
                let names: Vec<String> = self.accepted_domains.iter().map(|a| a.name.to_string()).collect();
                return Err(TenantError::new(
                    object(),
                    ParameterError::new("AssociatedAcceptedDomains", format!("`{d}` is not an accepted domain")).hint(
                        format!(
                            "accepted domains: {}",
                            if names.is_empty() { "none".to_string() } else { names.join(", ") }
                        ),
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The outbound connector at position `i` (0-based): its own rules
    /// ([`OutboundConnector::validate`]) and a name no connector before it has.
    pub(crate) fn check_outbound_connector(&self, i: usize) -> Result<(), TenantError> {
        let c = &self.outbound_connectors[i];
        let object = || format!("OutboundConnector[{}]", i + 1);
        let name = c.name.trim();
        if self.outbound_connectors[..i].iter().any(|o| o.name.trim().eq_ignore_ascii_case(name)) && !name.is_empty() {
            return Err(TenantError::new(
                object(),
                ParameterError::new("Name", format!("an outbound connector named `{name}` already exists")),
            ));
        }
        c.validate().map_err(|e| TenantError::new(object(), e))
    }

    /// Every check, in file order: accepted domains, mailboxes, inbound then outbound connectors.
    fn check(&self) -> Result<(), TenantError> {
        for i in 0..self.accepted_domains.len() {
            self.check_accepted_domain(i)?;
        }
        let mut mailboxes: Vec<&String> = self.mailboxes.iter().collect();
        mailboxes.sort();
        for key in mailboxes {
            let address = EmailAddress::parse(key, true).map_err(|e| {
                TenantError::new(
                    "Directory",
                    ParameterError::new("Mailboxes", format!("`{key}` is not an email address ({e})")),
                )
            })?;
            self.check_mailbox(&address)?;
        }
        for i in 0..self.inbound_connectors.len() {
            self.check_inbound_connector(i)?;
        }
        for i in 0..self.outbound_connectors.len() {
            self.check_outbound_connector(i)?;
        }
        self.check_transport_rules()
    }

    /// The group whose address is `address`, if any.
    pub fn distribution_group(&self, address: &EmailAddress) -> Option<&DistributionGroup> {
        let key = address.key();
        self.distribution_groups.iter().find(|g| g.address.key() == key)
    }

    /// Whether `address` is a member of `group`, directly or through nested groups (§13.4).
    pub fn is_member_of(&self, address: &EmailAddress, group: &EmailAddress) -> bool {
        let key = address.key();
        let mut seen: Vec<String> = Vec::new();
        let mut todo = vec![group.key()];
        while let Some(g) = todo.pop() {
            if seen.contains(&g) {
                continue;
            }
            let Some(found) = self.distribution_groups.iter().find(|d| d.address.key() == g) else { continue };
            for m in &found.members {
                let k = m.key();
                if k == key {
                    return true;
                }
                todo.push(k);
            }
            seen.push(g);
        }
        false
    }

    /// The rules across the set (§13.2: limits, unique names and priorities) and the groups
    /// (addresses unique, members well-formed).
    pub(crate) fn check_transport_rules(&self) -> Result<(), TenantError> {
        for (i, g) in self.distribution_groups.iter().enumerate() {
            if self.distribution_groups[..i].iter().any(|o| o.address.key() == g.address.key()) {
                return Err(TenantError::new(
                    format!("Directory.DistributionGroup[{}]", i + 1),
                    ParameterError::new("PrimarySmtpAddress", format!("{} is listed twice", g.address)),
                ));
            }
        }
        transport_rule::check_rules(&self.transport_rules)
            .map_err(|(i, e)| TenantError::new(format!("TransportRule[{}]", i + 1), e))
    }
}

/// A rule one object breaks, before it is placed in a tenant: the parameter named, the parameter
/// whose value is at fault (usually the same), what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterError {
    /// The parameter the message is about: `SmartHosts`.
    pub parameter: &'static str,
    /// The parameter whose value a loader points at: `UseMXRecord` for "UseMXRecord is $false but
    /// no SmartHosts are given".
    pub at: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to write instead, where that can be said.
    pub hint: Option<String>,
}

impl ParameterError {
    /// An error about `parameter`, pointing at it.
    pub fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        Self { parameter, at: parameter, message: message.into(), hint: None }
    }

    /// Points at another parameter's value.
    pub fn at(mut self, at: &'static str) -> Self {
        self.at = at;
        self
    }

    /// Adds what to write instead.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A tenant [`TenantBuilder::build`] refuses: the object (`InboundConnector[2]`, counting from 1 in
/// configuration order, as the loader's fields do) and the rule it breaks. The loader turns it into
/// a `ConfigError` at the offending value, with the same message and hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TenantError {
    /// `InboundConnector[2]`, `AcceptedDomain[1]`, `Directory`.
    pub object: String,
    /// The rule broken.
    pub error: ParameterError,
}

impl TenantError {
    fn new(object: impl Into<String>, error: ParameterError) -> Self {
        Self { object: object.into(), error }
    }

    /// The field, as the loader names it: `InboundConnector[2].SenderDomains`.
    pub fn field(&self) -> String {
        format!("{}.{}", self.object, self.error.parameter)
    }
}

impl fmt::Display for TenantError {
    /// `InboundConnector[2].SenderDomains: ...`, then `  hint: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.error.message)?;
        if let Some(hint) = &self.error.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Builds a [`Tenant`]: start from [`Tenant::builder`] (or [`Tenant::to_builder`]), add parts with
/// the `with_*` methods or edit them through `DerefMut`, then [`build`](Self::build).
#[derive(Clone, Debug, Default)]
pub struct TenantBuilder(TenantConfig);

impl TenantBuilder {
    /// Sets the transport settings.
    pub fn with_settings(mut self, settings: TransportSettings) -> Self {
        self.0.settings = settings;
        self
    }

    /// Adds an accepted domain without `MatchSubDomains`. Panics on a malformed name (for tests
    /// and literals; a loader parses names itself).
    pub fn with_domain(mut self, name: &str, kind: DomainType) -> Self {
        let name = Domain::parse(name, true).expect("valid domain");
        self.0.accepted_domains.push(AcceptedDomain { name, domain_type: kind, match_subdomains: false });
        self
    }

    /// Adds a mailbox. Panics on a malformed address.
    pub fn with_mailbox(mut self, address: &str) -> Self {
        let a: EmailAddress = address.parse().expect("valid address");
        self.0.mailboxes.insert(a.key());
        self
    }

    /// Adds an inbound connector.
    pub fn with_inbound_connector(mut self, connector: InboundConnector) -> Self {
        self.0.inbound_connectors.push(connector);
        self
    }

    /// Adds an outbound connector.
    pub fn with_outbound_connector(mut self, connector: OutboundConnector) -> Self {
        self.0.outbound_connectors.push(connector);
        self
    }

    /// Adds a mail flow rule.
    pub fn with_transport_rule(mut self, rule: TransportRule) -> Self {
        self.0.transport_rules.push(rule);
        self
    }

    /// Adds a distribution group. Panics on a malformed address.
    pub fn with_group(mut self, address: &str, members: &[&str]) -> Self {
        let address = address.parse().expect("valid address");
        let members = members.iter().map(|m| m.parse().expect("valid address")).collect();
        self.0.distribution_groups.push(DistributionGroup { address, members });
        self
    }

    /// Validates every part (the loader's rules, [`TenantError`] on the first broken one) and
    /// builds the connector lookup index.
    pub fn build(self) -> Result<Tenant, TenantError> {
        self.0.check()?;
        let inbound_index = InboundIndex::build(&self.0.inbound_connectors);
        let mut rule_order: Vec<usize> = (0..self.0.transport_rules.len()).collect();
        rule_order.sort_by_key(|&i| self.0.transport_rules[i].priority);
        Ok(Tenant { config: self.0, inbound_index, rule_order })
    }
}

impl Deref for TenantBuilder {
    type Target = TenantConfig;
    fn deref(&self) -> &TenantConfig {
        &self.0
    }
}

impl DerefMut for TenantBuilder {
    fn deref_mut(&mut self) -> &mut TenantConfig {
        &mut self.0
    }
}

/// The whole configured tenant, validated and indexed; shared read-only (`Arc<Tenant>`) by every
/// session. Its parts are read through `Deref` to [`TenantConfig`].
#[derive(Clone, Debug, Default)]
pub struct Tenant {
    config: TenantConfig,
    /// Built from `config.inbound_connectors` by `build`, never out of date since neither changes.
    inbound_index: InboundIndex,
    /// Indexes of `config.transport_rules` by priority, 0 first.
    rule_order: Vec<usize>,
}

impl Tenant {
    /// An empty builder.
    pub fn builder() -> TenantBuilder {
        TenantBuilder::default()
    }

    /// A builder holding a copy of this tenant's parts: how a changed tenant is made.
    pub fn to_builder(&self) -> TenantBuilder {
        TenantBuilder(self.config.clone())
    }

    /// The mail flow rules in priority order, 0 first (§13.2).
    pub fn rules(&self) -> impl Iterator<Item = &TransportRule> {
        self.rule_order.iter().map(|&i| &self.config.transport_rules[i])
    }

    /// The connector lookup index.
    pub fn inbound_index(&self) -> &InboundIndex {
        &self.inbound_index
    }
}

impl Deref for Tenant {
    type Target = TenantConfig;
    fn deref(&self) -> &TenantConfig {
        &self.config
    }
}

impl PartialEq for Tenant {
    /// Tenants are equal when their parts are (the index follows from them).
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for Tenant {}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> TenantBuilder {
        Tenant::builder().with_domain("contoso.test", DomainType::Authoritative).with_mailbox("alice@contoso.test")
    }

    /// A tenant built in Rust passes the loader's checks, with the loader's words.
    #[test]
    fn the_builder_refuses_what_the_loader_refuses() {
        let mut onprem = InboundConnector::new("Lock", ConnectorType::OnPremises);
        onprem.sender_ip_addresses = vec!["198.51.100.0/24".parse().unwrap()];
        onprem.restrict_domains_to_ip_addresses = true;
        let e = base().with_inbound_connector(onprem).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "InboundConnector[1].RestrictDomainsToIPAddresses: RestrictDomainsToIPAddresses only works on Partner connectors\n  hint: lock down with a separate Partner connector (SenderDomains [\"*\"]) beside this one (exo-behaviour §2.2)"
        );
        let text = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[[InboundConnector]]\nName = \"Lock\"\nConnectorType = \"OnPremises\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\"]\nRestrictDomainsToIPAddresses = true\n";
        let loaded = load::load(text, "t.toml").unwrap_err();
        assert_eq!((loaded.field, loaded.message, loaded.hint), (e.field(), e.error.message, e.error.hint));

        let mut wide = InboundConnector::new("Wide", ConnectorType::Partner);
        wide.sender_ip_addresses = vec!["10.0.0.0/16".parse().unwrap()];
        let e = base().with_inbound_connector(wide).build().unwrap_err();
        assert_eq!(e.field(), "InboundConnector[1].SenderIPAddresses");
        assert!(e.error.message.contains("/24 to /32"), "{e}");

        let mut out = OutboundConnector::new("To gateway");
        out.recipient_domains = vec![DomainPattern::Any];
        out.use_mx_record = false;
        let e = base().with_outbound_connector(out).build().unwrap_err();
        assert_eq!(e.field(), "OutboundConnector[1].SmartHosts");
        assert_eq!(e.error.at, "UseMXRecord");

        let e = Tenant::builder().with_mailbox("bob@fabrikam.test").build().unwrap_err();
        assert_eq!(e.field(), "Directory.Mailboxes");

        let twice = base().with_inbound_connector(InboundConnector::new("A", ConnectorType::Partner));
        let e = twice.clone().with_inbound_connector(InboundConnector::new("a", ConnectorType::Partner)).build();
        assert_eq!(e.unwrap_err().error.message, "a connector named `a` already exists (InboundConnector[1])");
    }

    /// The same tenant, loaded or built, is the same value with the same index.
    #[test]
    fn loaded_and_built_tenants_agree() {
        let text = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[Directory]\nMailboxes = [\"alice@contoso.test\"]\n[[InboundConnector]]\nName = \"Gateway\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\"]\nRequireTls = false\n";
        let loaded = load::load(text, "t.toml").unwrap();
        let mut gw = InboundConnector::new("Gateway", ConnectorType::Partner);
        gw.sender_ip_addresses = vec!["198.51.100.0/24".parse().unwrap()];
        let built = base().with_inbound_connector(gw).build().unwrap();
        assert_eq!(loaded, built);
        assert_eq!(loaded.inbound_index(), built.inbound_index());
        // A change is a new tenant; the old one is untouched.
        let mut b = built.to_builder();
        b.inbound_connectors[0].enabled = false;
        let changed = b.build().unwrap();
        assert_ne!(changed, built);
        assert!(built.inbound_connectors[0].enabled);
    }
}
