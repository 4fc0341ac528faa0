//! Route: which next hop each recipient takes (exo-behaviour §3.2, §4.2). Pure.
//!
//! `plan` groups recipients by next hop before any I/O (Postfix's qmgr queues per destination):
//! local mailboxes, a smart-host connector, or the recipient domain's MX with the TLS policy that
//! applies. The DNS answers for an MX hop are judged by [`mx_targets`] and [`address_targets`],
//! also here, so the shell only resolves and connects.

use std::net::IpAddr;

use crate::addr::{Domain, EmailAddress};
use crate::dns::{AddressAnswer, DnsError, MxAnswer};
use crate::reply::ReplyKind;
use crate::stage::categorize::Category;
use crate::tenant::pattern::DomainPattern;
use crate::tenant::{OutboundConnector, SmartHost, Tenant, TlsSettings};

/// The TLS requirements of a hop: the connector's `TlsSettings` and `TlsDomain`, or opportunistic
/// TLS for direct MX delivery without a connector (§3.2 last row).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsPolicy {
    /// `TlsSettings`.
    pub settings: TlsSettings,
    /// `TlsDomain`.
    pub tls_domain: Option<DomainPattern>,
}

/// The next hop of a group of recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Deliver to the tenant's mailboxes.
    Mailbox,
    /// Through an outbound connector's smart hosts (`UseMXRecord $false`).
    SmartHost {
        /// The connector chosen.
        connector: String,
        /// Its smart hosts, tried in the listed order (§3.1 recommendation).
        hosts: Vec<SmartHost>,
        /// TLS policy.
        tls: TlsPolicy,
        /// The connector's `CloudServicesMailEnabled`: organization headers cross premises
        /// (§3.1, §8.5).
        cross_premises: bool,
    },
    /// The recipient domain's MX, through a `UseMXRecord` connector or directly.
    Mx {
        /// Recipient domain.
        domain: Domain,
        /// The connector chosen, if any.
        connector: Option<String>,
        /// TLS policy.
        tls: TlsPolicy,
        /// The connector's `CloudServicesMailEnabled` (§3.1, §8.5); `false` without a connector.
        cross_premises: bool,
    },
    /// No route: fail these recipients with this reply.
    Unroutable(ReplyKind),
}

impl Hop {
    /// The connector named by the hop.
    pub fn connector(&self) -> Option<&str> {
        match self {
            Hop::SmartHost { connector, .. } => Some(connector),
            Hop::Mx { connector, .. } => connector.as_deref(),
            _ => None,
        }
    }

    /// Whether the message keeps its organization headers on this hop: the §8.5 header firewall
    /// strips them unless the hop's connector is `CloudServicesMailEnabled` (§3.1).
    pub fn cross_premises(&self) -> bool {
        match self {
            Hop::SmartHost { cross_premises, .. } | Hop::Mx { cross_premises, .. } => *cross_premises,
            Hop::Mailbox | Hop::Unroutable(_) => false,
        }
    }
}

/// Recipients sharing a next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Where to.
    pub hop: Hop,
    /// Who.
    pub recipients: Vec<EmailAddress>,
}

/// The routes for one message, in the order recipients first appear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPlan {
    /// Routes.
    pub routes: Vec<Route>,
    /// Why a mail flow rule's connector was not used (disabled or missing, §13.5), for the trace.
    pub warnings: Vec<String>,
}

/// What a mail flow rule asked of routing for a fork (exo-behaviour §3.2 step 0, §13.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleRoute {
    /// `RouteMessageOutboundConnector`: the connector's name.
    pub connector: Option<String>,
    /// `RouteMessageOutboundRequireTls`.
    pub require_tls: bool,
}

/// The connector a rule names, if it can be used: enabled and present. Its `RecipientDomains`
/// are not checked, and `IsTransportRuleScoped` connectors are used exactly this way (§13.5
/// recommendation; unconfirmed in EXO). Otherwise the reason, and routing goes on as if no rule
/// had chosen (§13.5 recommendation: route normally and log a warning).
pub fn rule_connector<'t>(tenant: &'t Tenant, name: &str) -> Result<&'t OutboundConnector, String> {
    match tenant.outbound_connectors.iter().find(|c| c.name.trim().eq_ignore_ascii_case(name.trim())) {
        Some(c) if c.enabled => Ok(c),
        Some(c) => {
            Err(format!("Transport rule chose outbound connector '{}', which is disabled; routed normally", c.name))
        }
        None => Err(format!("Transport rule chose outbound connector '{name}', which does not exist; routed normally")),
    }
}

/// Connector selection, most specific match wins (§3.2 recommendation, which also satisfies
/// \[S21]'s worked example): exact `RecipientDomains` > `*.domain` by label count >
/// `AllAcceptedDomains` (for accepted domains) > `*`. Disabled and transport-rule-scoped
/// connectors are never chosen here (§3.2 row 0: the latter only by a mail flow rule).
pub fn select_connector<'t>(tenant: &'t Tenant, domain: &Domain, accepted: bool) -> Option<&'t OutboundConnector> {
    let mut best: Option<(&OutboundConnector, (u8, usize))> = None;
    for c in tenant.outbound_connectors.iter().filter(|c| c.enabled && !c.is_transport_rule_scoped) {
        if let Some(m) = connector_match(c, domain, accepted) {
            // Ties keep the first in configuration order.
            if best.is_none_or(|(_, b)| m.rank > b) {
                best = Some((c, m.rank));
            }
        }
    }
    best.map(|(c, _)| c)
}

/// Why a connector covers a recipient domain (§3.2), most specific reason first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchedBy {
    /// A `RecipientDomains` entry equal to the domain.
    Exact(DomainPattern),
    /// A `*.domain` entry, ranked by its label count.
    Wildcard(DomainPattern),
    /// `AllAcceptedDomains $true`, and the recipient domain is accepted.
    AllAcceptedDomains,
    /// The `*` entry.
    Any,
}

impl std::fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchedBy::Exact(p) => write!(f, "RecipientDomains {p} (exact)"),
            MatchedBy::Wildcard(p) => write!(f, "RecipientDomains {p} (wildcard, {} labels)", p.specificity().1),
            MatchedBy::AllAcceptedDomains => f.write_str("AllAcceptedDomains (an accepted domain)"),
            MatchedBy::Any => f.write_str("RecipientDomains * (every domain)"),
        }
    }
}

/// How connector `c` covers `domain`, and its rank in [`select_connector`]'s order (higher wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorMatch {
    /// The best reason.
    pub by: MatchedBy,
    /// exact (4, labels) > wildcard (3, labels) > all accepted domains (1, 0) > `*` (0, 0).
    pub rank: (u8, usize),
}

/// Whether connector `c` covers `domain` (`accepted`: the domain is an accepted domain), and how;
/// `Enabled` and `IsTransportRuleScoped` are not looked at here. The one ranking
/// [`select_connector`] uses, exposed so `explain` reports each candidate with the same verdict.
pub fn connector_match(c: &OutboundConnector, domain: &Domain, accepted: bool) -> Option<ConnectorMatch> {
    let by_domain = c
        .recipient_domains
        .iter()
        .filter(|p| p.matches(domain))
        .map(|p| match p.specificity() {
            (2, n) => ConnectorMatch { by: MatchedBy::Exact(p.clone()), rank: (4, n) },
            (1, n) => ConnectorMatch { by: MatchedBy::Wildcard(p.clone()), rank: (3, n) },
            _ => ConnectorMatch { by: MatchedBy::Any, rank: (0, 0) },
        })
        .max_by_key(|m| m.rank);
    let all_accepted = (accepted && c.all_accepted_domains)
        .then_some(ConnectorMatch { by: MatchedBy::AllAcceptedDomains, rank: (1, 0) });
    by_domain.into_iter().chain(all_accepted).max_by_key(|m| m.rank)
}

/// The connector of centralized mail transport, if one is on ([`plan`] routes through it).
pub fn centralized_transport_connector(tenant: &Tenant) -> Option<&OutboundConnector> {
    centralized_transport(tenant)
}

fn hop_for(tenant: &Tenant, rcpt: &EmailAddress, category: Category) -> Hop {
    let accepted = match category {
        Category::Mailbox => return Hop::Mailbox,
        // DBEB refuses these at RCPT; a generated message (NDR) to one ends here.
        Category::UnknownInAuthoritative => return Hop::Unroutable(ReplyKind::RecipientNotFound),
        Category::InternalRelay => true,
        Category::External => false,
    };
    let domain = rcpt.domain().clone();
    match select_connector(tenant, &domain, accepted) {
        Some(c) => connector_hop(c, rcpt),
        // §4.2: an InternalRelay recipient with no connector falls back to the domain's MX, which
        // usually points back at the tenant: the loop check ends it with 5.4.14.
        None => Hop::Mx { domain, connector: None, tls: TlsPolicy::default(), cross_premises: false },
    }
}

/// Where a message came from, as far as routing cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// From the internet, a partner, or generated by the tenant.
    #[default]
    Elsewhere,
    /// From the tenant's own on-premises servers (attributed through an OnPremises connector).
    OnPremises,
}

/// The connector of centralized mail transport, if one is on: an enabled OnPremises connector
/// with `RouteAllMessagesViaOnPremises` (§3.1, §9.2).
fn centralized_transport(tenant: &Tenant) -> Option<&OutboundConnector> {
    tenant.outbound_connectors.iter().find(|c| {
        c.enabled
            && c.route_all_messages_via_on_premises
            && c.connector_type == crate::tenant::ConnectorType::OnPremises
    })
}

/// The hop through connector `c`: its smart hosts, or the recipient domain's MX.
fn connector_hop(c: &OutboundConnector, rcpt: &EmailAddress) -> Hop {
    let tls = TlsPolicy { settings: c.tls_settings, tls_domain: c.tls_domain.clone() };
    let cross_premises = c.cloud_services_mail_enabled;
    if c.use_mx_record || c.smart_hosts.is_empty() {
        Hop::Mx { domain: rcpt.domain().clone(), connector: Some(c.name.clone()), tls, cross_premises }
    } else {
        Hop::SmartHost { connector: c.name.clone(), hosts: c.smart_hosts.clone(), tls, cross_premises }
    }
}

/// Groups recipients by next hop. With centralized mail transport (§9.2), everything that did not
/// come from on-premises goes to on-premises first, mailboxes included; what comes back from
/// on-premises is routed normally.
pub fn plan(tenant: &Tenant, recipients: &[(EmailAddress, Category)], source: Source) -> DeliveryPlan {
    plan_routed(tenant, recipients, source, &RuleRoute::default())
}

/// [`plan`] for a fork a mail flow rule routed (§3.2 step 0): the rule's connector, when usable
/// ([`rule_connector`]), takes every recipient a route exists for, before centralized transport
/// and domain-based selection; `require_tls` turns opportunistic TLS into required TLS
/// (`EncryptionOnly`) on hops outside the organization.
pub fn plan_routed(
    tenant: &Tenant,
    recipients: &[(EmailAddress, Category)],
    source: Source,
    rule: &RuleRoute,
) -> DeliveryPlan {
    let mut plan = DeliveryPlan::default();
    let chosen = match rule.connector.as_deref().map(|name| rule_connector(tenant, name)) {
        Some(Ok(c)) => Some(c),
        Some(Err(warning)) => {
            plan.warnings.push(warning);
            None
        }
        None => None,
    };
    let cmt = centralized_transport(tenant).filter(|_| source == Source::Elsewhere);
    for (rcpt, category) in recipients {
        let mut hop = match (chosen, cmt) {
            (Some(c), _) if *category != Category::UnknownInAuthoritative => connector_hop(c, rcpt),
            (_, Some(c)) => connector_hop(c, rcpt),
            _ => hop_for(tenant, rcpt, *category),
        };
        if rule.require_tls
            && let Hop::SmartHost { tls, .. } | Hop::Mx { tls, .. } = &mut hop
            && tls.settings == TlsSettings::Opportunistic
        {
            tls.settings = TlsSettings::EncryptionOnly;
        }
        match plan.routes.iter_mut().find(|r| r.hop == hop) {
            Some(route) => route.recipients.push(rcpt.clone()),
            None => plan.routes.push(Route { hop, recipients: vec![rcpt.clone()] }),
        }
    }
    plan
}

/// What to do with an MX answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxDecision {
    /// Try these hosts in order (MX preference, then record order).
    Hosts(Vec<String>),
    /// Fail the recipients now with this reply.
    Fail(ReplyKind),
    /// Defer with this reply.
    Defer(ReplyKind),
}

/// Judges the MX answer for `domain`: preference order; null MX (RFC 7505) fails; no MX falls
/// back to the domain's own address records (RFC 5321 §5.1); NXDOMAIN fails (§5.3 5.4.4);
/// SERVFAIL and time-outs defer (§3.3 4.4.312).
pub fn mx_targets(domain: &Domain, answer: &MxAnswer) -> MxDecision {
    match answer {
        Ok(records) if records.is_empty() => MxDecision::Hosts(vec![domain.to_string()]),
        Ok(records) => {
            if records.iter().any(|r| r.exchange.is_empty() || r.exchange == ".") {
                return MxDecision::Fail(ReplyKind::NullMx);
            }
            let mut sorted = records.clone();
            sorted.sort_by_key(|r| r.preference);
            MxDecision::Hosts(sorted.into_iter().map(|r| r.exchange).collect())
        }
        Err(DnsError::NoData) => MxDecision::Hosts(vec![domain.to_string()]),
        Err(DnsError::NxDomain) => MxDecision::Fail(ReplyKind::NonExistentDomain),
        Err(_) => MxDecision::Defer(ReplyKind::DnsQueryFailed { server: domain.to_string() }),
    }
}

/// How a smart host is looked up before delivery (§3.1, §12; issue 9 item 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmartHostLookup {
    /// A literal address: no DNS at all.
    Literal(IpAddr),
    /// A bracketed name: its own addresses only, no MX lookup (Postfix's `[name]`).
    AddressOnly(String),
    /// A plain FQDN: MX first, then its own addresses ([`smart_host_names`]).
    MxThenAddress(String),
}

/// The lookup a smart host entry calls for.
pub fn smart_host_lookup(host: &SmartHost) -> SmartHostLookup {
    use crate::tenant::outbound_connector::SmartHostAddr;
    match &host.host {
        SmartHostAddr::Ip(ip) => SmartHostLookup::Literal(*ip),
        SmartHostAddr::Exact(name) => SmartHostLookup::AddressOnly(name.clone()),
        SmartHostAddr::Name(name) => SmartHostLookup::MxThenAddress(name.clone()),
    }
}

/// Judges the MX answer for a smart host written as an FQDN: resolved MX-then-A (§3.1, §12), so
/// its MX hosts in preference order, or the name itself when it has no MX. Anything that leaves
/// no host to try defers with `450 4.4.312 DNS query failed` (§3.3): a smart host is not a
/// recipient domain, so NXDOMAIN or a null MX do not fail the message outright.
pub fn smart_host_names(name: &str, answer: &MxAnswer) -> Result<Vec<String>, ReplyKind> {
    let defer = || ReplyKind::DnsQueryFailed { server: name.to_string() };
    let domain = Domain::parse(name, true).map_err(|_| defer())?;
    match mx_targets(&domain, answer) {
        MxDecision::Hosts(hosts) => Ok(hosts),
        MxDecision::Fail(_) | MxDecision::Defer(_) => Err(defer()),
    }
}

/// Judges an address lookup for one host: the addresses, or the deferral if none.
pub fn address_targets(host: &str, answer: &AddressAnswer) -> Result<Vec<IpAddr>, ReplyKind> {
    match answer {
        Ok(ips) if !ips.is_empty() => Ok(ips.clone()),
        _ => Err(ReplyKind::DnsQueryFailed { server: host.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::MxRecord;
    use crate::tenant::{DomainType, TenantBuilder};

    fn connector(name: &str, domains: &[&str]) -> OutboundConnector {
        let mut c = OutboundConnector::new(name);
        c.recipient_domains = domains.iter().map(|d| DomainPattern::parse(d).unwrap()).collect();
        c.use_mx_record = false;
        c.smart_hosts = vec![SmartHost::parse("smart.gateway.test").unwrap()];
        c
    }

    fn tenant() -> Tenant {
        spec().build().unwrap()
    }

    fn spec() -> TenantBuilder {
        let mut t = Tenant::builder().with_domain("contoso.test", DomainType::Authoritative);
        let mut all = connector("all-accepted", &[]);
        all.all_accepted_domains = true;
        // New-OutboundConnector refuses AllAcceptedDomains on a Partner connector (§3.1).
        all.connector_type = crate::tenant::ConnectorType::OnPremises;
        let mut disabled = connector("disabled", &["fabrikam.test"]);
        disabled.enabled = false;
        let mut scoped = connector("rule-scoped", &["fabrikam.test"]);
        scoped.is_transport_rule_scoped = true;
        t.outbound_connectors = vec![
            connector("star", &["*"]),
            connector("sub", &["*.fabrikam.test"]),
            connector("subsub", &["*.eu.fabrikam.test"]),
            connector("exact", &["partner.test"]),
            all,
            disabled,
            scoped,
        ];
        t
    }

    /// §3.2: exact > longer wildcard > shorter wildcard > all accepted domains > `*`.
    #[test]
    fn most_specific_connector_wins() {
        let t = tenant();
        let rows = [
            ("partner.test", false, Some("exact")),
            ("x.eu.fabrikam.test", false, Some("subsub")),
            ("eu.fabrikam.test", false, Some("subsub")),
            ("fabrikam.test", false, Some("sub")),
            ("other.test", false, Some("star")),
            ("contoso.test", true, Some("all-accepted")),
        ];
        for (domain, accepted, expected) in rows {
            let d = Domain::parse(domain, false).unwrap();
            assert_eq!(select_connector(&t, &d, accepted).map(|c| c.name.as_str()), expected, "{domain}");
        }
        let none = Tenant::default();
        assert!(select_connector(&none, &Domain::parse("x.test", false).unwrap(), false).is_none());
    }

    #[test]
    fn plan_groups_by_hop() {
        let t = tenant();
        let r = |s: &str| s.parse::<EmailAddress>().unwrap();
        let plan = plan(
            &t,
            &[
                (r("a@partner.test"), Category::External),
                (r("alice@contoso.test"), Category::Mailbox),
                (r("b@partner.test"), Category::External),
                (r("c@other.test"), Category::External),
            ],
            Source::Elsewhere,
        );
        assert_eq!(plan.routes.len(), 3);
        assert_eq!(plan.routes[0].hop.connector(), Some("exact"));
        assert_eq!(plan.routes[0].recipients.len(), 2);
        assert_eq!(plan.routes[1].hop, Hop::Mailbox);
        assert_eq!(plan.routes[2].hop.connector(), Some("star"));
    }

    #[test]
    fn mx_answers() {
        let d = Domain::parse("partner.test", false).unwrap();
        let mx = |p, e: &str| MxRecord { preference: p, exchange: e.to_string() };
        assert_eq!(
            mx_targets(&d, &Ok(vec![mx(20, "mx2.partner.test"), mx(10, "mx1.partner.test")])),
            MxDecision::Hosts(vec!["mx1.partner.test".into(), "mx2.partner.test".into()])
        );
        assert_eq!(mx_targets(&d, &Ok(vec![mx(0, "")])), MxDecision::Fail(ReplyKind::NullMx));
        assert_eq!(mx_targets(&d, &Err(DnsError::NoData)), MxDecision::Hosts(vec!["partner.test".into()]));
        assert_eq!(mx_targets(&d, &Err(DnsError::NxDomain)), MxDecision::Fail(ReplyKind::NonExistentDomain));
        assert!(matches!(mx_targets(&d, &Err(DnsError::ServFail)), MxDecision::Defer(_)));
        assert!(matches!(mx_targets(&d, &Err(DnsError::Timeout)), MxDecision::Defer(_)));
    }

    /// §9.2 centralized mail transport: mail that did not come from on-premises goes there first,
    /// mailboxes included; mail coming back from on-premises is routed normally.
    #[test]
    fn centralized_transport_routes_through_on_premises_first() {
        let mut cmt = connector("Outbound to on-premises", &["contoso.test"]);
        cmt.connector_type = crate::tenant::ConnectorType::OnPremises;
        cmt.route_all_messages_via_on_premises = true;
        let t = spec().with_outbound_connector(cmt).build().unwrap();
        let r = |s: &str| s.parse::<EmailAddress>().unwrap();
        let rcpts = [(r("alice@contoso.test"), Category::Mailbox), (r("x@other.test"), Category::External)];
        let inbound = plan(&t, &rcpts, Source::Elsewhere);
        assert_eq!(inbound.routes.len(), 1);
        assert_eq!(inbound.routes[0].hop.connector(), Some("Outbound to on-premises"));
        assert_eq!(inbound.routes[0].recipients.len(), 2);
        let back = plan(&t, &rcpts, Source::OnPremises);
        assert_eq!(back.routes[0].hop, Hop::Mailbox);
        assert_eq!(back.routes[1].hop.connector(), Some("star"));
    }

    /// Issue 9 item 5: a bracketed next hop is never looked up as MX (`[127.0.0.20]:2602` used
    /// to load and then defer with 4.4.312 naming `[127.0.0.20]`).
    #[test]
    fn bracketed_smart_hosts_are_literal_next_hops() {
        let rows = [
            ("[127.0.0.20]:2602", SmartHostLookup::Literal("127.0.0.20".parse().unwrap()), 2602),
            ("127.0.0.20", SmartHostLookup::Literal("127.0.0.20".parse().unwrap()), 25),
            ("[smtp.gateway.test]:587", SmartHostLookup::AddressOnly("smtp.gateway.test".into()), 587),
            ("smtp.gateway.test", SmartHostLookup::MxThenAddress("smtp.gateway.test".into()), 25),
        ];
        for (text, lookup, port) in rows {
            let host = SmartHost::parse(text).unwrap();
            assert_eq!(smart_host_lookup(&host), lookup, "{text}");
            assert_eq!(host.port, port, "{text}");
        }
    }

    #[test]
    fn smart_host_fqdn_is_resolved_mx_then_a() {
        let mx = |p, e: &str| MxRecord { preference: p, exchange: e.to_string() };
        let name = "smtp.gateway.test";
        assert_eq!(
            smart_host_names(name, &Ok(vec![mx(20, "b.gateway.test"), mx(10, "a.gateway.test")])),
            Ok(vec!["a.gateway.test".to_string(), "b.gateway.test".to_string()])
        );
        assert_eq!(smart_host_names(name, &Err(DnsError::NoData)), Ok(vec![name.to_string()]));
        for answer in [Err(DnsError::NxDomain), Err(DnsError::ServFail), Ok(vec![mx(0, "")])] {
            assert_eq!(smart_host_names(name, &answer), Err(ReplyKind::DnsQueryFailed { server: name.to_string() }));
        }
    }
}
