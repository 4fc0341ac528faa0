//! Outbound routing, explained (exo-behaviour §3.2, §3.1, §3.3, §4.2, §9.2, §13.5): for one
//! recipient, each outbound connector considered and why it wins or loses, the next hop the
//! routing stage chose, how that hop resolves in a given DNS zone, and the TLS requirement and
//! certificate-name check delivery will apply. What `mailsim explain --from` prints.
//!
//! Contract: this is not a second router. The hop is the one [`route::plan_routed`] returns for
//! the recipient (the function the pipeline calls); candidates are ranked with
//! [`route::connector_match`], the ranking [`route::select_connector`] uses; the DNS answers are
//! judged with [`route::mx_targets`], [`route::smart_host_names`] and [`route::address_targets`],
//! the functions the shell's delivery uses. A test checks that the candidate reported as winning
//! is the hop's connector. DNS answers come from a [`Resolver`] the caller gives (a scenario's
//! zone, read as data): pure.

use serde::Serialize;

use crate::addr::EmailAddress;
use crate::dns::{AddressAnswer, DnsError, MxAnswer};
use crate::reply::{ReplyContext, ReplyKind};
use crate::stage::categorize::Category;
use crate::stage::route::{
    self, Hop, MxDecision, RuleRoute, SmartHostLookup, Source, TlsPolicy, connector_match, rule_connector,
};
use crate::tenant::{Tenant, TlsSettings};

/// DNS answers as data: what a scenario's zone says for a name.
pub trait Resolver {
    /// The MX answer for `name`.
    fn mx(&self, name: &str) -> MxAnswer;
    /// The A/AAAA answer for `name`.
    fn addresses(&self, name: &str) -> AddressAnswer;
}

/// How a connector fared for this recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The connector the recipient is routed through.
    Wins,
    /// It covers the recipient, but another connector takes precedence.
    Loses,
    /// It does not cover the recipient domain.
    NoMatch,
    /// Never considered for this recipient (disabled, transport-rule-scoped, local recipient).
    NotConsidered,
}

/// One outbound connector as routing saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// `Name`.
    pub connector: String,
    /// How it covers the recipient domain (`RecipientDomains *.contoso.com (wildcard, 2 labels)`),
    /// if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in words, citing the §3.2 step.
    pub why: String,
}

/// One name the next hop resolves to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The host name (an MX exchange, a smart host, or the literal address).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Its addresses (empty when not resolved or when the lookup failed).
    pub addresses: Vec<String>,
    /// The lookup's failure, as the deferral delivery would give.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The certificate names delivery accepts from this host (DomainValidation), else `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_certificate_name: Option<String>,
}

/// The next hop, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextHop {
    /// `mailbox`, `smart_host`, `mx` or `unroutable`.
    pub kind: &'static str,
    /// The connector used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// In words: `smart hosts [127.0.0.20]:2525`, `MX of fabrikam.test`.
    pub description: String,
    /// The hosts tried in order, when resolved (empty without a DNS zone, or when the lookup ends
    /// the route).
    pub targets: Vec<Target>,
    /// What the lookup means for the message when it ends the route: the reply of a failure
    /// (`556 5.1.10 Recipient address has null MX`) or a deferral (`450 4.4.312 DNS query failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Whether DNS was consulted (a zone was given).
    pub resolved: bool,
}

/// The TLS requirement of the hop (§3.1 `TlsSettings`, `TlsDomain`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsRequirement {
    /// `TlsSettings` as EXO names it (`$null` for opportunistic).
    pub settings: String,
    /// `TlsDomain`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_domain: Option<String>,
    /// What delivery requires, in words.
    pub requirement: String,
    /// The certificate check, in words.
    pub certificate_check: String,
}

/// One recipient's route, explained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteExplanation {
    /// The recipient.
    pub recipient: String,
    /// §4.2 category.
    pub category: &'static str,
    /// What decided the route: `mailbox`, `mail flow rule`, `centralized mail transport`,
    /// `RecipientDomains`, `no connector (MX)`, `unroutable`.
    pub decided_by: String,
    /// Every outbound connector in configuration order.
    pub candidates: Vec<Candidate>,
    /// The next hop.
    pub next_hop: NextHop,
    /// The TLS requirement (none for local delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsRequirement>,
    /// Routing warnings (a rule naming a missing or disabled connector, §13.5).
    pub warnings: Vec<String>,
}

/// The name of a category as `explain` prints it.
pub fn category_name(c: Category) -> &'static str {
    match c {
        Category::Mailbox => "Mailbox",
        Category::InternalRelay => "InternalRelay",
        Category::UnknownInAuthoritative => "UnknownInAuthoritative",
        Category::External => "External",
    }
}

/// Explains the route of `rcpt` (of category `category`) for a message from `source`, in a fork a
/// mail flow rule may have routed (`rule`). `resolver`: the DNS to resolve the next hop in, if any.
/// `ctx` renders the replies (host name, time) as delivery would.
pub fn explain_route(
    tenant: &Tenant,
    rcpt: &EmailAddress,
    category: Category,
    source: Source,
    rule: &RuleRoute,
    resolver: Option<&dyn Resolver>,
    ctx: &ReplyContext<'_>,
) -> RouteExplanation {
    let plan = route::plan_routed(tenant, &[(rcpt.clone(), category)], source, rule);
    let hop = plan.routes.first().map(|r| r.hop.clone()).unwrap_or(Hop::Unroutable(ReplyKind::UnableToRoute));
    let domain = rcpt.domain();
    let accepted = category == Category::InternalRelay;
    let rule_chosen = rule.connector.as_deref().and_then(|n| rule_connector(tenant, n).ok()).map(|c| c.name.clone());
    let cmt =
        route::centralized_transport_connector(tenant).filter(|_| source == Source::Elsewhere).map(|c| c.name.clone());
    let local = matches!(category, Category::Mailbox | Category::UnknownInAuthoritative);
    let decided_by = match (&hop, &rule_chosen, &cmt) {
        (Hop::Unroutable(_), _, _) => "unroutable".to_string(),
        (_, Some(c), _) if hop.connector() == Some(c.as_str()) => "mail flow rule".to_string(),
        (_, _, Some(c)) if hop.connector() == Some(c.as_str()) => "centralized mail transport".to_string(),
        (Hop::Mailbox, _, _) => "mailbox".to_string(),
        (Hop::Mx { connector: None, .. }, _, _) => "no connector (MX)".to_string(),
        _ => "RecipientDomains".to_string(),
    };
    let domain_winner = route::select_connector(tenant, domain, accepted).map(|c| c.name.clone());
    let winner_match = domain_winner
        .as_deref()
        .and_then(|n| tenant.outbound_connectors.iter().find(|c| c.name == n))
        .and_then(|c| connector_match(c, domain, accepted));
    let mut candidates = Vec::new();
    for c in &tenant.outbound_connectors {
        let m = connector_match(c, domain, accepted);
        let matched_by = m.as_ref().map(|m| m.by.to_string());
        let wins = hop.connector() == Some(c.name.as_str());
        let (verdict, why) = if wins {
            let why = match decided_by.as_str() {
                "mail flow rule" => {
                    "chosen by a mail flow rule (RouteMessageOutboundConnector; §3.2 step 0)".to_string()
                }
                "centralized mail transport" => "RouteAllMessagesViaOnPremises: everything not from on-premises goes \
                                                 there first (centralized mail transport, §9.2)"
                    .to_string(),
                _ => "the most specific match (§3.2: exact > wildcard by labels > AllAcceptedDomains > *)".to_string(),
            };
            (Verdict::Wins, why)
        } else if !c.enabled {
            (Verdict::NotConsidered, "Enabled $false: disabled connectors are never used (§3.1)".to_string())
        } else if c.is_transport_rule_scoped && rule_chosen.as_deref() != Some(c.name.as_str()) {
            (
                Verdict::NotConsidered,
                "IsTransportRuleScoped $true: used only when a mail flow rule routes to it (§3.2 step 0)".to_string(),
            )
        } else if local && cmt.is_none() && rule_chosen.is_none() {
            (Verdict::NotConsidered, "the recipient is in the tenant: no outbound connector (§4.2)".to_string())
        } else if let Some(m) = &m {
            let why = match (&rule_chosen, &cmt, &domain_winner) {
                (Some(r), _, _) => format!("a mail flow rule routes this recipient through \"{r}\" (§3.2 step 0)"),
                (_, Some(cm), _) => format!("centralized mail transport routes everything through \"{cm}\" (§9.2)"),
                (_, _, Some(w)) => match &winner_match {
                    Some(wm) if wm.rank == m.rank => {
                        format!("as specific as \"{w}\", which comes first in configuration order")
                    }
                    Some(wm) => format!("less specific than \"{w}\" ({})", wm.by),
                    None => format!("\"{w}\" is chosen"),
                },
                _ => "not chosen".to_string(),
            };
            (Verdict::Loses, why)
        } else {
            let why = if c.all_accepted_domains && !accepted {
                format!("{domain} is not in its RecipientDomains, and AllAcceptedDomains covers accepted domains only")
            } else if c.recipient_domains.is_empty() {
                "no RecipientDomains".to_string()
            } else {
                let list: Vec<String> = c.recipient_domains.iter().map(ToString::to_string).collect();
                format!("{domain} is not in RecipientDomains [{}]", list.join(", "))
            };
            (Verdict::NoMatch, why)
        };
        candidates.push(Candidate { connector: c.name.clone(), matched_by, verdict, why });
    }
    let (next_hop, tls) = next_hop(&hop, resolver, ctx);
    RouteExplanation {
        recipient: rcpt.to_string(),
        category: category_name(category),
        decided_by,
        candidates,
        next_hop,
        tls,
        warnings: plan.warnings,
    }
}

fn tls_requirement(policy: &TlsPolicy, connector: bool) -> TlsRequirement {
    let tls_domain = policy.tls_domain.as_ref().map(ToString::to_string);
    let (settings, requirement, check) = match policy.settings {
        TlsSettings::Opportunistic => (
            "$null",
            if connector {
                "opportunistic: STARTTLS when the server offers it, else plaintext"
            } else {
                "opportunistic (no connector: direct MX delivery, §3.2): STARTTLS when offered, else plaintext"
            },
            "none".to_string(),
        ),
        TlsSettings::EncryptionOnly => (
            "EncryptionOnly",
            "TLS required: a server without STARTTLS defers with 450 4.4.317",
            "none (any certificate)".to_string(),
        ),
        TlsSettings::CertificateValidation => (
            "CertificateValidation",
            "TLS required",
            "chain to a trusted root and within validity; else 450 4.4.317 [Message=UntrustedRoot] / 4.7.320"
                .to_string(),
        ),
        TlsSettings::DomainValidation => (
            "DomainValidation",
            "TLS required",
            match &tls_domain {
                Some(d) => format!(
                    "as CertificateValidation, and a CN or DNS SAN must match TlsDomain {d}; else 450 4.4.317 \
                     [Message=SubjectMismatch ...]"
                ),
                None => "as CertificateValidation, and a CN or DNS SAN must match the host name connected to \
                         (no TlsDomain: §3.1 recommendation); else 450 4.4.317 [Message=SubjectMismatch ...]"
                    .to_string(),
            },
        ),
    };
    TlsRequirement {
        settings: settings.to_string(),
        tls_domain,
        requirement: requirement.to_string(),
        certificate_check: check,
    }
}

fn expected_name(policy: &TlsPolicy, host: &str) -> Option<String> {
    (policy.settings == TlsSettings::DomainValidation)
        .then(|| policy.tls_domain.as_ref().map_or_else(|| host.to_string(), ToString::to_string))
}

fn dns_error_text(e: &DnsError) -> &'static str {
    match e {
        DnsError::NxDomain => "NXDOMAIN",
        DnsError::NoData => "no records",
        DnsError::ServFail => "SERVFAIL",
        DnsError::Timeout => "timed out",
        DnsError::Other(_) => "refused",
    }
}

fn resolve_host(host: &str, port: u16, policy: &TlsPolicy, resolver: &dyn Resolver, ctx: &ReplyContext<'_>) -> Target {
    let answer = resolver.addresses(host);
    let (addresses, error) = match route::address_targets(host, &answer) {
        Ok(ips) => (ips.iter().map(ToString::to_string).collect(), None),
        Err(kind) => {
            let why = answer.as_ref().err().map_or("no records", dns_error_text);
            (Vec::new(), Some(format!("{why}: {}", kind.reply(ctx))))
        }
    };
    Target { host: host.to_string(), port, addresses, error, expected_certificate_name: expected_name(policy, host) }
}

fn next_hop(hop: &Hop, resolver: Option<&dyn Resolver>, ctx: &ReplyContext<'_>) -> (NextHop, Option<TlsRequirement>) {
    let mut out = NextHop {
        kind: "mailbox",
        connector: hop.connector().map(str::to_string),
        description: String::new(),
        targets: Vec::new(),
        outcome: None,
        resolved: resolver.is_some(),
    };
    match hop {
        Hop::Mailbox => {
            out.description = "delivered to the tenant's mailbox".to_string();
            (out, None)
        }
        Hop::Unroutable(kind) => {
            out.kind = "unroutable";
            out.description = "no route".to_string();
            out.outcome = Some(kind.reply(ctx).to_string());
            (out, None)
        }
        Hop::SmartHost { hosts, tls, .. } => {
            out.kind = "smart_host";
            let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
            out.description = format!("smart hosts {} (tried in listed order, §3.1)", list.join(", "));
            if let Some(r) = resolver {
                for h in hosts {
                    match route::smart_host_lookup(h) {
                        SmartHostLookup::Literal(ip) => out.targets.push(Target {
                            host: ip.to_string(),
                            port: h.port,
                            addresses: vec![ip.to_string()],
                            error: None,
                            expected_certificate_name: expected_name(tls, &ip.to_string()),
                        }),
                        SmartHostLookup::AddressOnly(name) => {
                            out.targets.push(resolve_host(&name, h.port, tls, r, ctx))
                        }
                        SmartHostLookup::MxThenAddress(name) => match route::smart_host_names(&name, &r.mx(&name)) {
                            Ok(names) => {
                                for n in names {
                                    out.targets.push(resolve_host(&n, h.port, tls, r, ctx));
                                }
                            }
                            Err(kind) => out.targets.push(Target {
                                host: name.clone(),
                                port: h.port,
                                addresses: Vec::new(),
                                error: Some(kind.reply(ctx).to_string()),
                                expected_certificate_name: None,
                            }),
                        },
                    }
                }
                if out.targets.iter().all(|t| t.addresses.is_empty()) {
                    let name = out.targets.first().map_or(String::new(), |t| t.host.clone());
                    out.outcome = Some(format!(
                        "deferred: {}",
                        ReplyKind::DnsQueryFailed { server: name }.reply(ctx).to_string().trim_end()
                    ));
                }
            }
            (out, Some(tls_requirement(tls, true)))
        }
        Hop::Mx { domain, connector, tls, .. } => {
            out.kind = "mx";
            out.description = format!("MX of {domain}");
            if let Some(r) = resolver {
                match route::mx_targets(domain, &r.mx(domain.as_str())) {
                    MxDecision::Hosts(hosts) => {
                        for h in hosts {
                            out.targets.push(resolve_host(&h, 25, tls, r, ctx));
                        }
                        if out.targets.iter().all(|t| t.addresses.is_empty()) {
                            let name = out.targets.first().map_or(String::new(), |t| t.host.clone());
                            out.outcome = Some(format!(
                                "deferred: {}",
                                ReplyKind::DnsQueryFailed { server: name }.reply(ctx).to_string().trim_end()
                            ));
                        }
                    }
                    MxDecision::Fail(kind) => {
                        out.outcome = Some(format!("failed (NDR): {}", kind.reply(ctx).to_string().trim_end()))
                    }
                    MxDecision::Defer(kind) => {
                        out.outcome = Some(format!("deferred: {}", kind.reply(ctx).to_string().trim_end()))
                    }
                }
            }
            (out, Some(tls_requirement(tls, connector.is_some())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::pattern::DomainPattern;
    use crate::tenant::{ConnectorType, DomainType, OutboundConnector, SmartHost};

    fn connector(name: &str, domains: &[&str]) -> OutboundConnector {
        let mut c = OutboundConnector::new(name);
        c.recipient_domains = domains.iter().map(|d| DomainPattern::parse(d).unwrap()).collect();
        c.use_mx_record = false;
        c.smart_hosts = vec![SmartHost::parse("smart.gateway.test").unwrap()];
        c
    }

    /// The candidate reported as winning is the connector the routing stage chose, for every
    /// precedence case; exactly one wins when a connector is used.
    #[test]
    fn the_winner_is_the_routed_connector() {
        let mut t = Tenant::builder()
            .with_domain("contoso.test", DomainType::Authoritative)
            .with_domain("relay.contoso.test", DomainType::InternalRelay)
            .with_mailbox("alice@contoso.test");
        let mut all = connector("all-accepted", &[]);
        all.all_accepted_domains = true;
        all.connector_type = ConnectorType::OnPremises;
        let mut disabled = connector("disabled", &["partner.test"]);
        disabled.enabled = false;
        let mut scoped = connector("rule-scoped", &["fabrikam.test"]);
        scoped.is_transport_rule_scoped = true;
        t.outbound_connectors = vec![
            connector("star", &["*"]),
            connector("sub", &["*.fabrikam.test"]),
            connector("subsub", &["*.eu.fabrikam.test"]),
            connector("exact", &["partner.test"]),
            connector("exact-too", &["partner.test"]),
            all,
            disabled,
            scoped,
        ];
        let t = t.build().unwrap();
        let ctx = ReplyContext { host: "MAILSIM01", now: crate::time::Timestamp(0), session_id: 0 };
        let rows: [(&str, Option<&str>, Option<&str>); 7] = [
            ("a@partner.test", None, Some("exact")),
            ("a@x.eu.fabrikam.test", None, Some("subsub")),
            ("a@fabrikam.test", None, Some("sub")),
            ("a@fabrikam.test", Some("rule-scoped"), Some("rule-scoped")),
            ("x@relay.contoso.test", None, Some("all-accepted")),
            ("a@other.test", None, Some("star")),
            ("alice@contoso.test", None, None),
        ];
        for (rcpt, rule, expected) in rows {
            let r: EmailAddress = rcpt.parse().unwrap();
            let category = crate::stage::categorize::categorize(&t, &r);
            let rule = RuleRoute { connector: rule.map(str::to_string), require_tls: false };
            let e = explain_route(&t, &r, category, Source::Elsewhere, &rule, None, &ctx);
            let winners: Vec<&str> =
                e.candidates.iter().filter(|c| c.verdict == Verdict::Wins).map(|c| c.connector.as_str()).collect();
            let routed = route::plan_routed(&t, &[(r.clone(), category)], Source::Elsewhere, &rule);
            assert_eq!(winners, expected.into_iter().collect::<Vec<_>>(), "{rcpt}");
            assert_eq!(e.next_hop.connector.as_deref(), routed.routes[0].hop.connector(), "{rcpt}");
            let tie = e.candidates.iter().find(|c| c.connector == "exact-too").unwrap();
            if rcpt == "a@partner.test" {
                assert_eq!(tie.verdict, Verdict::Loses);
                assert!(tie.why.contains("comes first in configuration order"), "{}", tie.why);
            }
            let off = e.candidates.iter().find(|c| c.connector == "disabled").unwrap();
            assert_eq!(off.verdict, Verdict::NotConsidered, "{rcpt}");
        }
    }
}
