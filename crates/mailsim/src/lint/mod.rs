//! `mailsim lint`: the recommended-configuration checks of exo-behaviour §15.5 over a loaded
//! tenant, as data ([`RULES`]): each rule has a stable id (`L1`…), a severity, the section that
//! says why, and a check that returns findings naming the object, the field, why it matters and
//! the PowerShell that fixes it. Pure: no clock (the caller gives `now`), no I/O.
//!
//! L18–L20 come from the seeds' pitfalls (seed 004), grounded in the sections they cite.
//!
//! L6 reads `[AntiPhishPolicy]` (the default policy, the one the tenant file models).
//!
//! L5 reads `[ArcConfig]` and L16 `[HostedConnectionFilterPolicy]`/`[HostedContentFilterPolicy]`,
//! tables the loader accepts for lint only (`mailsim_core::tenant::lint_only`).
//!
//! L17 (an export missing rule-scoped or test-mode connectors, §15.1) is judged from what the file
//! shows: a rule routing to a connector the file lacks does not load (`mailsim import` names the
//! export switch then), so L17 flags the other half, a rule-scoped connector that no rule uses.
//! L1's premise "the MX is not EOP" is read from the tenant: a Partner lock-down
//! connector (`SenderDomains *` with a `Restrict*` flag) means mail arrives through a gateway.

use std::fmt::Write as _;
use std::net::IpAddr;

use mailsim_core::tenant::inbound_connector::InboundConnector;
use mailsim_core::tenant::outbound_connector::{SmartHostAddr, TlsSettings};
use mailsim_core::tenant::transport_rule::{Action, Condition, DisclaimerFallback, RuleMode, Scope};
use mailsim_core::tenant::{ConnectorType, DomainPattern, Tenant};
use mailsim_core::time::Timestamp;
use serde_json::json;

pub mod sarif;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely wrong.
    Warn,
    /// Mail is lost, refused or exposed.
    Error,
}

impl Severity {
    /// `info`, `warn`, `error`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule's id (`L13`).
    pub id: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// The object: `InboundConnector "From gateway"`.
    pub object: String,
    /// The field at fault.
    pub field: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// The exo-behaviour section that says so.
    pub section: &'static str,
    /// The PowerShell that fixes it.
    pub fix: String,
}

/// What a check sees.
pub struct Input<'t> {
    /// The tenant.
    pub tenant: &'t Tenant,
    /// Now, for dates (rules' `ExpiryDate`).
    pub now: Timestamp,
}

/// A lint rule: the data, and its check.
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One line: what it checks.
    pub title: &'static str,
    /// exo-behaviour section.
    pub section: &'static str,
    check: fn(&Input<'_>, &Rule, &mut Vec<Finding>),
}

impl Rule {
    fn finding(&self, object: String, field: &str, message: String, fix: String) -> Finding {
        Finding {
            id: self.id,
            severity: self.severity,
            object,
            field: field.to_string(),
            message,
            section: self.section,
            fix,
        }
    }
}

/// The rules, in id order.
pub const RULES: &[Rule] = &[
    Rule {
        id: "L1",
        severity: Severity::Warn,
        title: "mail arrives through a gateway but Enhanced Filtering is off on its connector",
        section: "exo-behaviour §15.5, §7, §14.2",
        check: l1,
    },
    Rule {
        id: "L2",
        severity: Severity::Warn,
        title: "EFSkipLastIP on a connector whose gateway sends from several networks",
        section: "exo-behaviour §15.5, §14.2",
        check: l2,
    },
    Rule {
        id: "L3",
        severity: Severity::Error,
        title: "EFSkipIPs lists Microsoft 365 ranges, or Enhanced Filtering with centralized transport",
        section: "exo-behaviour §15.5, §7",
        check: l3,
    },
    Rule {
        id: "L4",
        severity: Severity::Warn,
        title: "Enhanced Filtering on while a rule sets SCL -1",
        section: "exo-behaviour §15.5, §7",
        check: l4,
    },
    Rule {
        id: "L5",
        severity: Severity::Info,
        title: "mail arrives through a gateway and no ARC sealer is trusted",
        section: "exo-behaviour §15.5, §14.6 (ORCA-243)",
        check: l5,
    },
    Rule {
        id: "L6",
        severity: Severity::Warn,
        title: "anti-phishing policy does not honour the sender's DMARC policy",
        section: "exo-behaviour §15.5, §14.5 (ORCA-244)",
        check: l6,
    },
    Rule {
        id: "L7",
        severity: Severity::Error,
        title: "SCL -1 keyed on the sender's domain alone (spoofable)",
        section: "exo-behaviour §15.5, §13.4",
        check: l7,
    },
    Rule {
        id: "L8",
        severity: Severity::Error,
        title: "rule routing to an unusable connector, or a rule-scoped connector no rule uses",
        section: "exo-behaviour §15.5, §3.1, §13.5",
        check: l8,
    },
    Rule {
        id: "L9",
        severity: Severity::Error,
        title: "rule priorities not 0..N-1, more than 300 rules, over 100 added recipients",
        section: "exo-behaviour §15.5, §13.2",
        check: l9,
    },
    Rule {
        id: "L10",
        severity: Severity::Info,
        title: "rule expired or never active; test mode with delivery-changing actions",
        section: "exo-behaviour §15.5, §13.2",
        check: l10,
    },
    Rule {
        id: "L11",
        severity: Severity::Warn,
        title: "subject tag without an exception for its own text; disclaimer Wrap on external mail",
        section: "exo-behaviour §15.5, §13.5",
        check: l11,
    },
    Rule {
        id: "L12",
        severity: Severity::Info,
        title: "external tagging by FromScope NotInOrganization alone misses spoofed own-domain mail",
        section: "exo-behaviour §15.5, §13.4",
        check: l12,
    },
    Rule {
        id: "L13",
        severity: Severity::Warn,
        title: "Partner connector keyed by IP and certificate, or SenderDomains * without restriction",
        section: "exo-behaviour §15.5, §2.2",
        check: l13,
    },
    Rule {
        id: "L14",
        severity: Severity::Error,
        title: "OnPremises connector for a gateway that the * outbound connector sends to (loop); certificate name not an accepted domain",
        section: "exo-behaviour §15.5, §1.3, §9.2",
        check: l14,
    },
    Rule {
        id: "L15",
        severity: Severity::Warn,
        title: "DomainValidation without TlsDomain",
        section: "exo-behaviour §15.5, §3.1",
        check: l15,
    },
    Rule {
        id: "L16",
        severity: Severity::Warn,
        title: "IP Allow List entries in the connection filter policy; an Advanced Spam Filter option On",
        section: "exo-behaviour §15.5, §14.7, §14.8 (ORCA-114, ORCA-102)",
        check: l16,
    },
    Rule {
        id: "L17",
        severity: Severity::Warn,
        title: "rule-scoped outbound connector that no rule references: the export is likely partial",
        section: "exo-behaviour §15.5, §15.1",
        check: l17,
    },
    // Added from the seeds' pitfalls (seed 004), with the sections that ground them.
    Rule {
        id: "L18",
        severity: Severity::Warn,
        title: "InternalRelay domain routed out through a Partner connector (gateway loop)",
        section: "exo-behaviour §4.1, §4.2, §3.2 (seed 004 pitfall: mail loops)",
        check: l18,
    },
    Rule {
        id: "L19",
        severity: Severity::Warn,
        title: "EFSkipLastIP $true together with EFSkipIPs (the list is not used)",
        section: "exo-behaviour §2.1, §14.2 (seed 004: the gotcha that cost a day)",
        check: l19,
    },
    Rule {
        id: "L20",
        severity: Severity::Warn,
        title: "Partner inbound connector with neither sender IPs nor a certificate",
        section: "exo-behaviour §2.2 (seed 004 pitfall: connector type confusion)",
        check: l20,
    },
];

/// Every finding for the tenant, by rule id then object.
pub fn lint(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in RULES {
        (rule.check)(input, rule, &mut out);
    }
    out
}

/// The highest severity among `findings`.
pub fn highest(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

fn inbound(c: &InboundConnector) -> String {
    format!("InboundConnector \"{}\"", c.name)
}

fn ps(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ef_on(c: &InboundConnector) -> bool {
    c.ef_skip_last_ip || !c.ef_skip_ips.is_empty()
}

fn is_lockdown(c: &InboundConnector) -> bool {
    c.enabled
        && c.connector_type == ConnectorType::Partner
        && c.sender_domains.contains(&DomainPattern::Any)
        && (c.restrict_domains_to_ip_addresses || c.restrict_domains_to_certificate)
}

fn l1(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| is_lockdown(c) && !ef_on(c)) {
        let ips: Vec<String> = c.sender_ip_addresses.iter().map(ToString::to_string).collect();
        let fix = if ips.is_empty() {
            format!("Set-InboundConnector -Identity {} -EFSkipLastIP $true", ps(&c.name))
        } else {
            format!("Set-InboundConnector -Identity {} -EFSkipIPs {}", ps(&c.name), ips.join(","))
        };
        out.push(r.finding(
            inbound(c),
            "EFSkipIPs",
            "mail arrives through a gateway (this lock-down connector) and Enhanced Filtering is off: SPF, DKIM, DMARC and anti-spam judge the gateway's IP, not the sender's".into(),
            fix,
        ));
    }
}

fn l2(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| c.enabled && c.ef_skip_last_ip) {
        let mut nets: Vec<[u8; 3]> = c
            .sender_ip_addresses
            .iter()
            .map(|n| {
                let o = n.addr().octets();
                [o[0], o[1], o[2]]
            })
            .collect();
        nets.sort();
        nets.dedup();
        if nets.len() > 1 {
            let ips: Vec<String> = c.sender_ip_addresses.iter().map(ToString::to_string).collect();
            out.push(r.finding(
                inbound(c),
                "EFSkipLastIP",
                format!("the gateway sends from {} networks: when mail crosses more than one of its public hops, skipping only the last one leaves a gateway IP as the \"sender\"", nets.len()),
                format!("Set-InboundConnector -Identity {} -EFSkipLastIP $false -EFSkipIPs {}", ps(&c.name), ips.join(",")),
            ));
        }
    }
}

/// Exchange Online Protection's published sending ranges (exo-behaviour §7: EFSkipIPs refuses them).
const MICROSOFT_RANGES: &[([u8; 4], u32)] =
    &[([40, 92, 0, 0], 15), ([40, 107, 0, 0], 16), ([52, 100, 0, 0], 14), ([104, 47, 0, 0], 17)];

fn microsoft(ip: IpAddr) -> bool {
    let IpAddr::V4(v4) = ip else { return false };
    MICROSOFT_RANGES.iter().any(|(base, len)| {
        let mask = u32::MAX << (32 - len);
        u32::from(v4) & mask == u32::from_be_bytes(*base) & mask
    })
}

fn l3(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| c.enabled) {
        for entry in &c.ef_skip_ips {
            let first = entry.split(['-', '/']).next().unwrap_or("").trim();
            if let Ok(ip) = first.parse::<IpAddr>()
                && microsoft(ip)
            {
                out.push(r.finding(
                    inbound(c),
                    "EFSkipIPs",
                    format!("`{entry}` is a Microsoft 365 range: EXO does not accept it, and skipping Microsoft's own hops hides the real sender"),
                    format!("Set-InboundConnector -Identity {} -EFSkipIPs @{{Remove={}}}", ps(&c.name), ps(entry)),
                ));
            }
        }
    }
    if let Some(o) = i.tenant.outbound_connectors.iter().find(|o| o.enabled && o.route_all_messages_via_on_premises) {
        for c in i.tenant.inbound_connectors.iter().filter(|c| c.enabled && ef_on(c)) {
            out.push(r.finding(
                inbound(c),
                "EFSkipIPs",
                format!("Enhanced Filtering is on while OutboundConnector \"{}\" routes all mail via on-premises (centralized transport): Microsoft does not support the combination", o.name),
                format!("Set-InboundConnector -Identity {} -EFSkipLastIP $false -EFSkipIPs $null", ps(&c.name)),
            ));
        }
    }
}

fn sets_scl_minus_one(rule: &mailsim_core::tenant::TransportRule) -> bool {
    rule.enabled && rule.actions.iter().any(|a| matches!(a, Action::SetScl(-1)))
}

fn l4(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    if !i.tenant.inbound_connectors.iter().any(|c| c.enabled && ef_on(c)) {
        return;
    }
    for rule in i.tenant.transport_rules.iter().filter(|r| sets_scl_minus_one(r)) {
        out.push(r.finding(
            format!("TransportRule \"{}\"", rule.name),
            "SetSCL",
            "Enhanced Filtering already judges the real sender; a rule that sets SCL -1 for the same gateway traffic bypasses that verdict".into(),
            format!("Remove-TransportRule -Identity {}", ps(&rule.name)),
        ));
    }
}

fn l5(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    if !i.tenant.arc_config.arc_trusted_sealers.is_empty() {
        return;
    }
    // "MX not at EOP" is judged as L1 judges it: a Partner lock-down connector exists.
    if let Some(c) = i.tenant.inbound_connectors.iter().find(|c| is_lockdown(c)) {
        out.push(r.finding(
            "ArcConfig \"Default\"".into(),
            "ArcTrustedSealers",
            format!("mail arrives through a gateway ({} locks the tenant to it) and no ARC sealer is trusted: when the gateway or a list server modifies a message, its DKIM breaks and DMARC fails, and EXO ignores the gateway's ARC seal (ORCA-243)", inbound(c)),
            "Set-ArcConfig -Identity Default -ArcTrustedSealers <the d= domain of the gateway's ARC-Seal>".into(),
        ));
    }
}

/// The name `Get-AntiPhishPolicy` gives the default policy (`[AntiPhishPolicy]` models that one).
const DEFAULT_ANTI_PHISH: &str = "Office365 AntiPhish Default";

fn l6(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    if !i.tenant.anti_phish.honor_dmarc_policy {
        out.push(r.finding(
            format!("AntiPhishPolicy \"{DEFAULT_ANTI_PHISH}\""),
            "HonorDmarcPolicy",
            "HonorDmarcPolicy $false: mail failing DMARC from a domain that publishes p=reject or p=quarantine is not rejected or quarantined as its owner asks, only given AuthenticationFailAction (Junk by default), so spoofed mail reaches users".into(),
            format!("Set-AntiPhishPolicy -Identity {} -HonorDmarcPolicy $true", ps(DEFAULT_ANTI_PHISH)),
        ));
    }
}

fn l7(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for rule in i.tenant.transport_rules.iter().filter(|r| sets_scl_minus_one(r)) {
        let domain_keyed = rule.conditions.iter().find_map(|c| match c {
            Condition::SenderDomainIs(d) => Some(d.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Condition::FromAddressContainsWords(w) => Some(w.list().to_vec()),
            _ => None,
        });
        let Some(domains) = domain_keyed else { continue };
        let anchored = rule.conditions.iter().any(|c| {
            matches!(c, Condition::SenderIpRanges(_))
                || matches!(c, Condition::HeaderContainsWords { header, .. } | Condition::HeaderMatchesPatterns { header, .. } if header.eq_ignore_ascii_case("Authentication-Results"))
        });
        if anchored {
            continue;
        }
        let own = domains.iter().any(|d| {
            i.tenant.accepted_domains.iter().any(|a| a.name.as_str().eq_ignore_ascii_case(d.trim_start_matches('@')))
        });
        let critical = if own {
            " (critical: an accepted domain, so anyone spoofing your own domain skips filtering)"
        } else {
            ""
        };
        out.push(r.finding(
            format!("TransportRule \"{}\"", rule.name),
            "SenderDomainIs",
            format!("SCL -1 for mail that merely claims to come from {}: the sender's domain is trivially spoofed{critical}", domains.join(", ")),
            format!("Set-TransportRule -Identity {} -HeaderContainsMessageHeader 'Authentication-Results' -HeaderContainsWords 'dmarc=pass'", ps(&rule.name)),
        ));
    }
}

fn l8(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    let t = i.tenant;
    let mut used: Vec<&str> = Vec::new();
    for rule in &t.transport_rules {
        for a in &rule.actions {
            let Action::RouteMessageOutboundConnector(name) = a else { continue };
            used.push(name);
            let object = format!("TransportRule \"{}\"", rule.name);
            match t.outbound_connectors.iter().find(|o| o.name.eq_ignore_ascii_case(name)) {
                None => out.push(r.finding(object, "RouteMessageOutboundConnector", format!("connector \"{name}\" does not exist (was the export made without `Get-OutboundConnector -IsTransportRuleScoped $true`? exo-behaviour §15.1)"), format!("New-OutboundConnector -Name {} -IsTransportRuleScoped $true ...", ps(name)))),
                Some(o) if !o.enabled => out.push(r.finding(object, "RouteMessageOutboundConnector", format!("connector \"{name}\" is disabled: the rule's messages are not delivered through it"), format!("Set-OutboundConnector -Identity {} -Enabled $true", ps(name)))),
                Some(o) if !o.is_transport_rule_scoped => out.push(r.finding(object, "RouteMessageOutboundConnector", format!("connector \"{name}\" is not rule-scoped (IsTransportRuleScoped $false)"), format!("Set-OutboundConnector -Identity {} -IsTransportRuleScoped $true", ps(name)))),
                Some(_) => {}
            }
        }
    }
    for o in t.outbound_connectors.iter().filter(|o| o.enabled && o.is_transport_rule_scoped) {
        if !used.iter().any(|u| u.eq_ignore_ascii_case(&o.name)) {
            let mut f = r.finding(
                format!("OutboundConnector \"{}\"", o.name),
                "IsTransportRuleScoped",
                "rule-scoped, but no rule routes to it: it is inert".into(),
                format!(
                    "New-TransportRule -Name 'Route via {}' -RecipientDomainIs ... -RouteMessageOutboundConnector {}",
                    o.name,
                    ps(&o.name)
                ),
            );
            f.severity = Severity::Warn;
            out.push(f);
        }
    }
}

fn l9(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    let rules = &i.tenant.transport_rules;
    let mut prios: Vec<u32> = rules.iter().map(|r| r.priority).collect();
    prios.sort_unstable();
    if prios.iter().enumerate().any(|(n, p)| *p as usize != n) {
        out.push(r.finding(
            "TransportRule (all)".into(),
            "Priority",
            format!("priorities are {prios:?}; EXO numbers rules 0..{} without gaps or duplicates", rules.len().saturating_sub(1)),
            "Get-TransportRule | Sort-Object Priority | ForEach-Object -Begin {$p=0} -Process {Set-TransportRule -Identity $_.Identity -Priority ($p++)}".into(),
        ));
    }
    if rules.len() > 300 {
        out.push(r.finding(
            "TransportRule (all)".into(),
            "Priority",
            format!("{} rules: EXO allows 300", rules.len()),
            "Remove-TransportRule -Identity ...".into(),
        ));
    }
    let added: usize = rules
        .iter()
        .flat_map(|r| &r.actions)
        .map(|a| match a {
            Action::AddToRecipients(v) | Action::BlindCopyTo(v) | Action::CopyTo(v) | Action::RedirectMessageTo(v) => {
                v.len()
            }
            _ => 0,
        })
        .sum();
    if added > 100 {
        out.push(r.finding(
            "TransportRule (all)".into(),
            "AddToRecipients",
            format!("the rules add {added} recipients in total: EXO allows 100"),
            "Set-TransportRule -Identity ... -AddToRecipients ...".into(),
        ));
    }
}

fn l10(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for rule in i.tenant.transport_rules.iter().filter(|r| r.enabled) {
        let object = format!("TransportRule \"{}\"", rule.name);
        if let Some(exp) = rule.expiry_date {
            if exp <= i.now {
                out.push(r.finding(
                    object.clone(),
                    "ExpiryDate",
                    format!("expired at {}: the rule never applies", exp.iso8601()),
                    format!("Set-TransportRule -Identity {} -ExpiryDate $null", ps(&rule.name)),
                ));
            } else if rule.activation_date.is_some_and(|a| exp <= a) {
                out.push(r.finding(
                    object.clone(),
                    "ExpiryDate",
                    "expires before it activates: the rule never applies".into(),
                    format!("Set-TransportRule -Identity {} -ExpiryDate $null", ps(&rule.name)),
                ));
            }
        }
        let changes = rule.actions.iter().any(|a| !matches!(a, Action::SetHeader { .. } | Action::RemoveHeader(_)));
        if rule.mode != RuleMode::Enforce && changes {
            out.push(r.finding(
                object,
                "Mode",
                "in test mode (Audit): its delivery-changing actions never run".into(),
                format!("Set-TransportRule -Identity {} -Mode Enforce", ps(&rule.name)),
            ));
        }
    }
}

fn l11(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for rule in i.tenant.transport_rules.iter().filter(|r| r.enabled) {
        let object = format!("TransportRule \"{}\"", rule.name);
        let subject_exempt = rule
            .exceptions
            .iter()
            .any(|c| matches!(c, Condition::SubjectContainsWords(_) | Condition::SubjectMatchesPatterns(_)));
        for a in &rule.actions {
            match a {
                Action::PrependSubject(text) if !subject_exempt => out.push(r.finding(
                    object.clone(),
                    "PrependSubject",
                    format!("no exception for its own text: replies and forwards get `{}` once more each time", text.trim()),
                    format!("Set-TransportRule -Identity {} -ExceptIfSubjectContainsWords {}", ps(&rule.name), ps(text.trim())),
                )),
                Action::ApplyHtmlDisclaimer { fallback: DisclaimerFallback::Wrap, .. }
                    if rule.conditions.contains(&Condition::FromScope(Scope::NotInOrganization)) =>
                {
                    out.push(r.finding(
                        object.clone(),
                        "ApplyHtmlDisclaimerFallbackAction",
                        "Wrap on inbound external mail wraps signed or encrypted messages into a new one: recipients lose the original signature".into(),
                        format!("Set-TransportRule -Identity {} -ApplyHtmlDisclaimerFallbackAction Ignore", ps(&rule.name)),
                    ))
                }
                _ => {}
            }
        }
    }
}

fn l12(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for rule in i.tenant.transport_rules.iter().filter(|r| r.enabled) {
        let tags = rule.actions.iter().any(|a| {
            matches!(a, Action::PrependSubject(_) | Action::ApplyHtmlDisclaimer { .. } | Action::SetHeader { .. })
        });
        if tags && rule.conditions == [Condition::FromScope(Scope::NotInOrganization)] {
            out.push(r.finding(
                format!("TransportRule \"{}\"", rule.name),
                "FromScope",
                "mail that spoofs your own domain counts as \"in the organization\" and is not tagged".into(),
                "Set-ExternalInOutlook -Enabled $true   # or add a condition on Authentication-Results".into(),
            ));
        }
    }
}

fn l13(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| c.enabled && c.connector_type == ConnectorType::Partner) {
        if !c.sender_ip_addresses.is_empty() && c.tls_sender_certificate_name.is_some() {
            out.push(r.finding(
                inbound(c),
                "SenderIPAddresses",
                "keyed by IP and by certificate: Microsoft asks for one key per Partner connector; use two connectors".into(),
                format!("Set-InboundConnector -Identity {} -SenderIPAddresses $null; New-InboundConnector -Name '{} (IP)' -ConnectorType Partner -SenderDomains * -SenderIPAddresses ... -RestrictDomainsToIPAddresses $true", ps(&c.name), c.name),
            ));
        }
        if c.sender_domains.contains(&DomainPattern::Any)
            && !c.restrict_domains_to_ip_addresses
            && !c.restrict_domains_to_certificate
        {
            out.push(r.finding(
                inbound(c),
                "RestrictDomainsToIPAddresses",
                "covers every sender domain but restricts nothing: it neither locks mail to a gateway nor identifies a partner".into(),
                format!("Set-InboundConnector -Identity {} -RestrictDomainsToIPAddresses $true", ps(&c.name)),
            ));
        }
    }
}

fn l14(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    let t = i.tenant;
    let all_out: Vec<_> = t
        .outbound_connectors
        .iter()
        .filter(|o| o.enabled && o.recipient_domains.contains(&DomainPattern::Any))
        .collect();
    for c in t.inbound_connectors.iter().filter(|c| c.enabled && c.connector_type == ConnectorType::OnPremises) {
        for o in &all_out {
            let loops = o.smart_hosts.iter().any(|h| match &h.host {
                SmartHostAddr::Ip(IpAddr::V4(ip)) => c.sender_ip_addresses.iter().any(|n| n.contains(ip)),
                SmartHostAddr::Ip(IpAddr::V6(_)) => false,
                SmartHostAddr::Name(_) | SmartHostAddr::Exact(_) => false,
            });
            if loops {
                out.push(r.finding(
                    inbound(c),
                    "ConnectorType",
                    format!("OnPremises connector for the gateway that OutboundConnector \"{}\" sends all mail to: the gateway's mail is relayed back out to it (loop)", o.name),
                    format!("Set-InboundConnector -Identity {} -ConnectorType Partner", ps(&c.name)),
                ));
            }
        }
        if let Some(d) = c.tls_sender_certificate_name.as_ref().and_then(DomainPattern::domain)
            && !t.accepted_domains.iter().any(|a| d.is_within(&a.name))
        {
            out.push(r.finding(
                inbound(c),
                "TlsSenderCertificateName",
                format!("{d} is not an accepted domain: relaying is refused with 5.7.64 ATTR36"),
                format!("New-AcceptedDomain -Name {d} -DomainName {d}   # or use a certificate of an accepted domain"),
            ));
        }
    }
}

fn l15(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for o in i.tenant.outbound_connectors.iter().filter(|o| o.enabled) {
        if o.tls_settings == TlsSettings::DomainValidation && o.tls_domain.is_none() {
            out.push(r.finding(
                format!("OutboundConnector \"{}\"", o.name),
                "TlsDomain",
                "DomainValidation without TlsDomain: which name the certificate must carry is unconfirmed in EXO; mailsim checks the smart host's name".into(),
                format!("Set-OutboundConnector -Identity {} -TlsDomain <the certificate's domain>", ps(&o.name)),
            ));
        }
    }
}

fn l16(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    use mailsim_core::tenant::lint_only::AsfSetting;
    let allow = &i.tenant.connection_filter.ip_allow_list;
    if !allow.is_empty() {
        out.push(r.finding(
            "HostedConnectionFilterPolicy \"Default\"".into(),
            "IPAllowList",
            format!("{} IP Allow List entries ({}): mail from them skips spam filtering (IPV:CAL), whoever sends it from there (ORCA-114)", allow.len(), allow.join(", ")),
            "Set-HostedConnectionFilterPolicy -Identity Default -IPAllowList $null".into(),
        ));
    }
    for (name, _) in i.tenant.content_filter.asf.iter().filter(|(_, s)| *s == AsfSetting::On) {
        let why = if *name == "MarkAsSpamSpfRecordHardFail" {
            "an SPF hard fail alone sets SCL 9 (X-CustomSpam: SPF Record Fail), so mail that DKIM and DMARC would pass, such as forwarded mail or mail relayed through a gateway, goes to Junk"
        } else {
            "Advanced Spam Filter options are being deprecated and cause false positives; Microsoft recommends them Off"
        };
        out.push(r.finding(
            "HostedContentFilterPolicy \"Default\"".into(),
            name,
            format!("{name} On: {why} (ORCA-102)"),
            format!("Set-HostedContentFilterPolicy -Identity Default -{name} Off"),
        ));
    }
}

/// What lint can see of a partial export (§15.1): a tenant whose rules route to a connector the file
/// does not define does not load, so the visible trace is the other half, a rule-scoped connector
/// whose rules are missing. L8 reports the same connector as inert; L17 says how to re-export.
fn l17(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    let t = i.tenant;
    let routed = |name: &str| {
        t.transport_rules.iter().any(|rule| {
            rule.actions
                .iter()
                .any(|a| matches!(a, Action::RouteMessageOutboundConnector(n) if n.eq_ignore_ascii_case(name)))
        })
    };
    for o in t.outbound_connectors.iter().filter(|o| o.is_transport_rule_scoped && !routed(&o.name)) {
        out.push(r.finding(
            format!("OutboundConnector \"{}\"", o.name),
            "IsTransportRuleScoped",
            "rule-scoped, and no rule in this file routes to it: the export is likely partial (Get-OutboundConnector and Get-TransportRule omit rule-scoped and test-mode connectors, and stop at 1000 objects, by default); what this file simulates may differ from the tenant".into(),
            "Get-OutboundConnector -IncludeTestModeConnectors $true -IsTransportRuleScoped $true | ConvertTo-Json -Depth 5   # and again with $false; merge on Guid. Get-TransportRule -ResultSize Unlimited | ConvertTo-Json -Depth 5".into(),
        ));
    }
}

fn l18(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    use mailsim_core::tenant::DomainType;
    for d in i.tenant.accepted_domains.iter().filter(|d| d.domain_type == DomainType::InternalRelay) {
        let via = i.tenant.outbound_connectors.iter().find(|o| {
            o.enabled
                && !o.is_transport_rule_scoped
                && o.connector_type == ConnectorType::Partner
                && o.recipient_domains.iter().any(|p| p.matches(&d.name))
        });
        if let Some(o) = via {
            out.push(r.finding(
                format!("AcceptedDomain \"{}\"", d.name),
                "DomainType",
                format!("InternalRelay: recipients of {} that have no mailbox go out through Partner connector \"{}\"; if that gateway routes the domain back to the tenant, the message loops until 5.4.14", d.name, o.name),
                format!("Set-AcceptedDomain -Identity {} -DomainType Authoritative", ps(d.name.as_str())),
            ));
        }
    }
}

fn l19(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| c.enabled && c.ef_skip_last_ip && !c.ef_skip_ips.is_empty())
    {
        out.push(r.finding(
            inbound(c),
            "EFSkipLastIP",
            format!(
                "EFSkipLastIP $true skips only the connecting hop; the {} EFSkipIPs entries are not used",
                c.ef_skip_ips.len()
            ),
            format!("Set-InboundConnector -Identity {} -EFSkipLastIP $false", ps(&c.name)),
        ));
    }
}

fn l20(i: &Input<'_>, r: &Rule, out: &mut Vec<Finding>) {
    for c in i.tenant.inbound_connectors.iter().filter(|c| {
        c.enabled
            && c.connector_type == ConnectorType::Partner
            && c.sender_ip_addresses.is_empty()
            && c.tls_sender_certificate_name.is_none()
    }) {
        out.push(r.finding(
            inbound(c),
            "SenderIPAddresses",
            "identifies its partner by neither IP nor certificate: anyone can claim its sender domains".into(),
            format!("Set-InboundConnector -Identity {} -SenderIPAddresses <partner IPs> -RestrictDomainsToIPAddresses $true", ps(&c.name)),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Output.

/// Human-readable: one block per finding, then a count.
pub fn text(file: &str, findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let _ = writeln!(s, "{file}: {} {} {}.{}: {}", f.severity.name(), f.id, f.object, f.field, f.message);
        let _ = writeln!(s, "  why: {}", f.section);
        let _ = writeln!(s, "  fix: {}", f.fix);
    }
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    let _ = writeln!(
        s,
        "{file}: {} error(s), {} warning(s), {} note(s)",
        count(Severity::Error),
        count(Severity::Warn),
        count(Severity::Info)
    );
    s
}

/// `--json`: the file and the findings.
pub fn to_json(file: &str, findings: &[Finding]) -> serde_json::Value {
    json!({ "file": file, "findings": findings })
}

/// The tenant of a tenant file or of a scenario file (its own tables or its `tenant_file`).
pub fn load_any(path: &std::path::Path) -> Result<Tenant, mailsim_core::diagnostics::ConfigError> {
    let text = crate::config_file::read(path)?;
    let is_scenario = toml::from_str::<toml::Table>(&text).is_ok_and(|t| t.contains_key("scenario"));
    if is_scenario {
        Ok(crate::scenario::parse(&text, path)?.world.tenant)
    } else {
        mailsim_core::tenant::load::load(&text, &path.display().to_string())
    }
}

/// What `serve` and `run` print at start: the tenant's warn and error findings, one line each.
pub fn startup_lines(file: &str, tenant: &Tenant, now: Timestamp) -> Vec<String> {
    lint(&Input { tenant, now })
        .iter()
        .filter(|f| f.severity >= Severity::Warn)
        .map(|f| {
            format!(
                "mailsim: lint: {file}: {} {} {}.{}: {} (fix: {})",
                f.severity.name(),
                f.id,
                f.object,
                f.field,
                f.message,
                f.fix
            )
        })
        .collect()
}

/// The system clock as a [`Timestamp`] (for the command line; [`lint`] itself takes `now`).
pub fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n";
    const LOCK: &str = "[[InboundConnector]]\nName = \"gw\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\"]\nRestrictDomainsToIPAddresses = true\nRequireTls = false\n";
    const PX: &str = "[[OutboundConnector]]\nName = \"px\"\nRecipientDomains = [\"partner-x.test\"]\nUseMXRecord = false\nSmartHosts = [\"mx.partner-x.test\"]\nIsTransportRuleScoped = true\n";

    fn ids(body: &str) -> Vec<&'static str> {
        let text = format!("{D}{body}");
        let tenant = mailsim_core::tenant::load::load(&text, "t.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        lint(&Input { tenant: &tenant, now: Timestamp::from_millis(1_800_000_000_000) }).iter().map(|f| f.id).collect()
    }

    /// One tenant that triggers each rule and one, closest to it, that does not.
    #[test]
    fn each_rule_triggers_and_its_fixed_twin_does_not() {
        let ef = |c: &str| c.replace("RequireTls = false\n", "RequireTls = false\nEFSkipIPs = [\"198.51.100.0/24\"]\n");
        let rule = |body: &str| format!("[[TransportRule]]\nName = \"r\"\n{body}\n");
        let rows: Vec<(&str, String, String)> = vec![
            ("L1", LOCK.into(), ef(LOCK)),
            (
                "L2",
                LOCK.replace("[\"198.51.100.0/24\"]", "[\"198.51.100.0/24\", \"203.0.113.0/24\"]").replace("RequireTls = false\n", "RequireTls = false\nEFSkipLastIP = true\n"),
                LOCK.replace("RequireTls = false\n", "RequireTls = false\nEFSkipLastIP = true\n"),
            ),
            ("L3", LOCK.replace("RequireTls = false\n", "RequireTls = false\nEFSkipIPs = [\"40.107.1.1\"]\n"), ef(LOCK)),
            (
                "L4",
                format!("{}{}", ef(LOCK), rule("SenderIpRanges = [\"198.51.100.0/24\"]\nSetSCL = -1")),
                format!("{}{}", LOCK, rule("SenderIpRanges = [\"198.51.100.0/24\"]\nSetSCL = -1")),
            ),
            ("L5", LOCK.into(), format!("{LOCK}[ArcConfig]\nArcTrustedSealers = [\"gateway.test\"]\n")),
            ("L6", "[AntiPhishPolicy]\nHonorDmarcPolicy = \"$false\"\n".into(), "[AntiPhishPolicy]\nHonorDmarcPolicy = \"$true\"\n".into()),
            ("L7", rule("SenderDomainIs = [\"contoso.test\"]\nSetSCL = -1"), rule("SenderDomainIs = [\"contoso.test\"]\nSenderIpRanges = [\"198.51.100.7\"]\nSetSCL = -1")),
            ("L8", PX.into(), format!("{PX}{}", rule("RecipientDomainIs = [\"partner-x.test\"]\nRouteMessageOutboundConnector = \"px\""))),
            ("L9", rule("Priority = 3\nSetSCL = 5"), rule("Priority = 0\nSetSCL = 5")),
            ("L10", rule("ExpiryDate = \"2020-01-01\"\nSetSCL = 5"), rule("ExpiryDate = \"2099-01-01\"\nSetSCL = 5")),
            ("L11", rule("PrependSubject = \"[EXT] \""), rule("PrependSubject = \"[EXT] \"\nExceptIfSubjectContainsWords = \"[EXT]\"")),
            ("L12", rule("FromScope = \"NotInOrganization\"\nSetHeaderName = \"X-Ext\"\nSetHeaderValue = \"1\""), rule("FromScope = \"NotInOrganization\"\nHeaderContainsMessageHeader = \"Authentication-Results\"\nHeaderContainsWords = \"dmarc=fail\"\nSetHeaderName = \"X-Ext\"\nSetHeaderValue = \"1\"")),
            ("L13", LOCK.replace("RestrictDomainsToIPAddresses = true\n", ""), LOCK.into()),
            (
                "L14",
                "[[InboundConnector]]\nName = \"op\"\nConnectorType = \"OnPremises\"\nSenderDomains = [\"*\"]\nTlsSenderCertificateName = \"mail.fabrikam.test\"\nRequireTls = true\n".into(),
                "[[InboundConnector]]\nName = \"op\"\nConnectorType = \"OnPremises\"\nSenderDomains = [\"*\"]\nTlsSenderCertificateName = \"*.contoso.test\"\nRequireTls = true\n".into(),
            ),
            ("L16", "[HostedConnectionFilterPolicy]\nIPAllowList = [\"198.51.100.7\"]\n".into(), "[HostedConnectionFilterPolicy]\nIPAllowList = []\n".into()),
            ("L16", "[HostedContentFilterPolicy]\nMarkAsSpamSpfRecordHardFail = \"On\"\n".into(), "[HostedContentFilterPolicy]\nMarkAsSpamSpfRecordHardFail = \"Test\"\nMarkAsSpamEmptyMessages = \"Off\"\n".into()),
            ("L17", PX.into(), format!("{PX}{}", rule("RecipientDomainIs = [\"partner-x.test\"]\nRouteMessageOutboundConnector = \"px\""))),
            (
                "L18",
                "[[AcceptedDomain]]\nDomainName = \"relay.test\"\nDomainType = \"InternalRelay\"\n[[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\nSmartHosts = [\"gw.test\"]\n".into(),
                "[[AcceptedDomain]]\nDomainName = \"relay.test\"\nDomainType = \"InternalRelay\"\n[[OutboundConnector]]\nName = \"o\"\nConnectorType = \"OnPremises\"\nRecipientDomains = [\"relay.test\"]\nUseMXRecord = false\nSmartHosts = [\"onprem.test\"]\n".into(),
            ),
            (
                "L19",
                ef(LOCK).replace("RequireTls = false\n", "RequireTls = false\nEFSkipLastIP = true\n"),
                ef(LOCK),
            ),
            ("L20", "[[InboundConnector]]\nName = \"p\"\nSenderDomains = [\"partner.test\"]\nRequireTls = true\n".into(), "[[InboundConnector]]\nName = \"p\"\nSenderDomains = [\"partner.test\"]\nTlsSenderCertificateName = \"mail.partner.test\"\nRequireTls = true\n".into()),
            (
                "L15",
                "[[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"*\"]\nTlsSettings = \"DomainValidation\"\n".into(),
                "[[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"*\"]\nTlsSettings = \"DomainValidation\"\nTlsDomain = \"x.test\"\n".into(),
            ),
        ];
        for (id, bad, good) in &rows {
            assert!(ids(bad).contains(id), "{id} should fire on\n{bad}\nfound {:?}", ids(bad));
            assert!(!ids(good).contains(id), "{id} should not fire on\n{good}\nfound {:?}", ids(good));
        }
        let covered: Vec<&str> = rows.iter().map(|r| r.0).collect();
        for r in RULES {
            assert!(covered.contains(&r.id), "{} has no test row", r.id);
        }
    }

    /// The SARIF log validates against the SARIF 2.1.0 schema (OASIS; vendored beside this file
    /// from the `serde-sarif` 0.8.0 crate, which ships it), with findings of every severity; and the
    /// validator does refuse a log the schema refuses.
    #[test]
    fn sarif_validates_against_the_sarif_2_1_0_schema() {
        // The schema's `run.language` pattern has a stray `]` that a strict regex check of the
        // schema refuses; it is corrected here (the file stays as published).
        let text = include_str!("sarif-schema-2.1.0.json")
            .replace("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$", "^[a-zA-Z]{2}(-[a-zA-Z]{2})?$");
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let text = format!(
            "{D}{}{PX}[[TransportRule]]\nName = \"r\"\nPriority = 2\nExpiryDate = \"2020-01-01\"\nPrependSubject = \"[EXT] \"\n",
            LOCK.replace("RestrictDomainsToIPAddresses = true\n", "")
        );
        let tenant = mailsim_core::tenant::load::load(&text, "t.toml").unwrap();
        let findings = lint(&Input { tenant: &tenant, now: Timestamp::from_millis(1_800_000_000_000) });
        for sev in [Severity::Info, Severity::Warn, Severity::Error] {
            assert!(findings.iter().any(|f| f.severity == sev), "{sev:?} missing: {findings:#?}");
        }
        let log = sarif::log("tenants/contoso.toml", &findings);
        let errors: Vec<String> =
            validator.iter_errors(&log).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let mut broken = log.clone();
        broken["runs"][0]["results"][0]["level"] = "fatal".into();
        assert!(!validator.is_valid(&broken));
    }

    /// The SARIF log carries what SARIF 2.1.0 requires of a log, a run, a rule and a result.
    #[test]
    fn sarif_has_the_required_shape() {
        let text = format!("{D}{LOCK}");
        let tenant = mailsim_core::tenant::load::load(&text, "t.toml").unwrap();
        let findings = lint(&Input { tenant: &tenant, now: Timestamp::from_millis(0) });
        let log = sarif::log("tenant.toml", &findings);
        assert_eq!(log["version"], "2.1.0");
        let run = &log["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "mailsim");
        assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), RULES.len());
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), findings.len());
        for r in results {
            assert!(r["message"]["text"].is_string());
            assert!(["note", "warning", "error"].contains(&r["level"].as_str().unwrap()));
            let idx = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(run["tool"]["driver"]["rules"][idx]["id"], r["ruleId"]);
            assert_eq!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "tenant.toml");
        }
    }
}
