//! `mailsim explain --from`: the outbound side (exo-behaviour §3.2, §3.1, §4.2, §9.2, §13).
//!
//! A message from a tenant mailbox (`--from alice@contoso.test`) or relayed from a source
//! (`--from onprem` / an address: the inbound dialogue of [`super::explain`] runs first, and its
//! accepted message is what is routed) goes through the stages the pipeline runs, as pure calls:
//! mail flow rules ([`evaluate`]), then for each fork each recipient's category and route,
//! explained by [`explain_route`] (every outbound connector and why it wins or loses, the next hop
//! resolved in the scenario's DNS zone when there is one, the TLS requirement and certificate-name
//! check). Text and JSON from one [`OutboundReport`].

use std::fmt::Write as _;
use std::net::IpAddr;

use mailsim_core::addr::EmailAddress;
use mailsim_core::dns::{AddressAnswer, MxAnswer};
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::reply::ReplyContext;
use mailsim_core::stage::categorize::categorize;
use mailsim_core::stage::inbound::{InboundVerdict, from_on_premises};
use mailsim_core::stage::route::{RuleRoute, Source};
use mailsim_core::stage::route_explain::{Resolver, RouteExplanation, Verdict, explain_route};
use mailsim_core::stage::rules::{Fate, evaluate};
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;
use mailsim_testkit::dns::DnsZoneSet;
use serde::Serialize;

use super::explain_sections::{self as sections, Section};

/// A scenario's DNS zone as a [`Resolver`]: the records read as data, no socket.
pub struct ZoneResolver<'a>(pub &'a DnsZoneSet);

impl Resolver for ZoneResolver<'_> {
    fn mx(&self, name: &str) -> MxAnswer {
        self.0.lookup_mx(name)
    }
    fn addresses(&self, name: &str) -> AddressAnswer {
        self.0.lookup_addresses(name)
    }
}

/// Where the message comes from.
pub enum Origin {
    /// Sent by this address, as a mailbox of the tenant (Originating, AuthAs Internal).
    Mailbox(EmailAddress),
    /// Relayed from a source: the message the inbound dialogue accepted, and how the source was
    /// named (`onprem (192.0.2.10)`).
    Relayed(Box<AcceptedMessage>, String),
}

/// One fork of the mail flow rules with its recipients' routes.
#[derive(Debug, Serialize)]
pub struct ForkReport {
    /// Who.
    pub recipients: Vec<String>,
    /// What the rules made of them: `routed normally`, `routed through "X"`, `rejected: ...`.
    pub fate: String,
    /// The rule that added these recipients, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added_by: Option<String>,
    /// Each recipient's route (only for forks that are routed).
    pub routes: Vec<RouteExplanation>,
}

/// A mail flow rule that matched.
#[derive(Debug, Serialize)]
pub struct RuleReport {
    /// Priority.
    pub priority: u32,
    /// Name.
    pub name: String,
    /// Mode.
    pub mode: String,
    /// Recipients it matched.
    pub recipients: Vec<String>,
    /// `Action: effect` lines.
    pub actions: Vec<String>,
    /// Whether later rules are skipped for these recipients.
    pub stops: bool,
}

/// The outbound explanation.
#[derive(Debug, Serialize)]
pub struct OutboundReport {
    /// Always `outbound`.
    pub direction: &'static str,
    /// The tenant or scenario file.
    pub input: String,
    /// P1 sender.
    pub sender: String,
    /// How the message entered the tenant, in words.
    pub entered: String,
    /// `on_premises` when it came from the tenant's on-premises servers (centralized mail
    /// transport sends it on rather than back), else `elsewhere`.
    pub source: &'static str,
    /// Whether the next hops were resolved in a DNS zone (a scenario's).
    pub dns: bool,
    /// The time the rules were judged at.
    pub at: String,
    /// The mail flow rules that matched, in the order they applied.
    pub rules: Vec<RuleReport>,
    /// The forks and their routes.
    pub forks: Vec<ForkReport>,
    /// Extra sections ([`sections::all`]).
    pub sections: Vec<Section>,
    /// Whether every recipient has a route that does not end in a failure now.
    pub routed: bool,
    /// The text of the rules section (as the inbound explanation prints it), for the text report.
    #[serde(skip)]
    pub rules_text: String,
}

fn minimal_content(sender: &EmailAddress, rcpts: &[EmailAddress]) -> Vec<u8> {
    let to: Vec<String> = rcpts.iter().map(ToString::to_string).collect();
    format!(
        "From: {sender}\r\nTo: {}\r\nSubject: mailsim explain\r\nMessage-ID: <explain@mailsim.test>\r\n\r\nmailsim explain\r\n",
        to.join(", ")
    )
    .into_bytes()
}

/// Builds the outbound explanation. `content`: the message's headers (whole message) if given.
pub fn explain_outbound(
    tenant: &Tenant,
    input: &str,
    origin: Origin,
    rcpts: &[EmailAddress],
    content: Option<&[u8]>,
    zone: Option<&DnsZoneSet>,
    at: Timestamp,
) -> OutboundReport {
    let (message, entered) = match origin {
        Origin::Mailbox(sender) => {
            let data = content.map(<[u8]>::to_vec).unwrap_or_else(|| minimal_content(&sender, rcpts));
            let local: IpAddr = "127.0.0.1".parse().expect("literal");
            let known = if tenant.has_mailbox(&sender) {
                "a mailbox of the tenant"
            } else {
                "NOT a mailbox of the tenant (taken as one)"
            };
            let entered = format!("sent by {sender}, {known}: Originating, AuthAs Internal, no inbound connector");
            let message = AcceptedMessage {
                internal_id: 0,
                message_id: "<explain@mailsim.test>".to_string(),
                envelope: Envelope { sender: Some(sender), params: Default::default(), recipients: rcpts.to_vec() },
                peer: PeerFacts::new(local, 0, local),
                verdict: InboundVerdict::tenant_originated(),
                data,
                received_at: at,
                auth: None,
            };
            (message, entered)
        }
        Origin::Relayed(m, named) => {
            let entered = match &m.verdict {
                InboundVerdict::Accepted { connector, direction, internal, relay_allowed, .. } => format!(
                    "relayed from {named}, accepted via {}: {}, AuthAs {}, relay {}",
                    connector
                        .as_ref()
                        .map_or("no connector (default internet path)".to_string(), |c| format!("connector \"{c}\"")),
                    direction.as_str(),
                    if *internal { "Internal" } else { "Anonymous" },
                    if *relay_allowed { "allowed" } else { "not allowed" }
                ),
                InboundVerdict::Rejected { .. } => format!("relayed from {named}"),
            };
            (*m, entered)
        }
    };
    let source = if from_on_premises(tenant, &message.peer) { Source::OnPremises } else { Source::Elsewhere };
    let ctx = ReplyContext { host: &tenant.settings.server_name, now: at, session_id: 0 };
    let resolver = zone.map(ZoneResolver);
    let resolver_ref: Option<&dyn Resolver> = resolver.as_ref().map(|r| r as &dyn Resolver);
    let outcome = evaluate(&message, tenant, at);
    let mut rules_text = String::new();
    super::explain::rules_report(&mut rules_text, tenant, &message, at);
    let rules = rule_reports_of(&outcome);
    let mut routed = true;
    let mut forks = Vec::new();
    for fork in &outcome.forks {
        let mut routes = Vec::new();
        let fate = match &fork.fate {
            Fate::Route { connector, require_tls } => {
                let rule = RuleRoute { connector: connector.clone(), require_tls: *require_tls };
                for r in &fork.recipients {
                    let e = explain_route(tenant, r, categorize(tenant, r), source, &rule, resolver_ref, &ctx);
                    if e.next_hop.kind == "unroutable" || e.next_hop.outcome.is_some() {
                        routed = false;
                    }
                    routes.push(e);
                }
                let tls = if *require_tls { ", TLS required (RouteMessageOutboundRequireTls)" } else { "" };
                match connector {
                    Some(c) => format!("a mail flow rule routes it through \"{c}\"{tls}"),
                    None => format!("routed normally{tls}"),
                }
            }
            Fate::Reject(kind) => {
                routed = false;
                format!("rejected by a mail flow rule: the sender gets an NDR with {}", kind.reply(&ctx))
            }
            Fate::Delete => {
                routed = false;
                "deleted silently by a mail flow rule".to_string()
            }
            Fate::Quarantine => {
                routed = false;
                "held in quarantine by a mail flow rule".to_string()
            }
        };
        forks.push(ForkReport {
            recipients: fork.recipients.iter().map(ToString::to_string).collect(),
            fate,
            added_by: fork.added_by.as_ref().map(|(rule, action)| format!("\"{rule}\" ({action})")),
            routes,
        });
    }
    let sections = sections::all(&sections::Input { tenant, message: Some(&message), at });
    OutboundReport {
        direction: "outbound",
        input: input.to_string(),
        sender: message.envelope.sender.as_ref().map_or_else(|| "<>".to_string(), ToString::to_string),
        entered,
        source: if source == Source::OnPremises { "on_premises" } else { "elsewhere" },
        dns: zone.is_some(),
        at: at.iso8601(),
        rules,
        forks,
        sections,
        routed,
        rules_text,
    }
}

/// The mail flow rules that match `message`, as reported (§13.6).
pub fn rule_reports(tenant: &Tenant, message: &AcceptedMessage, at: Timestamp) -> Vec<RuleReport> {
    rule_reports_of(&evaluate(message, tenant, at))
}

fn rule_reports_of(outcome: &mailsim_core::stage::rules::RulesOutcome) -> Vec<RuleReport> {
    outcome
        .hits
        .iter()
        .map(|h| RuleReport {
            priority: h.priority,
            name: h.rule.clone(),
            mode: h.mode.to_string(),
            recipients: h.recipients.iter().map(ToString::to_string).collect(),
            actions: h.actions.iter().map(|a| format!("{}: {}", a.action, a.effect)).collect(),
            stops: h.stops,
        })
        .collect()
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Wins => "wins",
        Verdict::Loses => "loses",
        Verdict::NoMatch => "no match",
        Verdict::NotConsidered => "not considered",
    }
}

/// The text report.
pub fn render_text(r: &OutboundReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Input       {}", r.input);
    let _ = writeln!(out, "Message     MAIL FROM:<{}>, {}", r.sender, r.entered);
    if r.source == "on_premises" {
        let _ = writeln!(
            out,
            "Source      the tenant's on-premises servers (an enabled OnPremises connector matches them, §9.2)"
        );
    }
    out.push_str(&r.rules_text);
    for fork in &r.forks {
        if r.forks.len() > 1 || fork.added_by.is_some() || !fork.fate.starts_with("routed normally") {
            let added = fork.added_by.as_ref().map_or(String::new(), |a| format!(" (added by {a})"));
            let _ = writeln!(out, "\nFork        {}{added}: {}", fork.recipients.join(", "), fork.fate);
        }
        for route in &fork.routes {
            let _ = writeln!(out, "\nRecipient   {}  {}", route.recipient, route.category);
            let _ = writeln!(out, "  Decided by  {}", route.decided_by);
            let local =
                route.candidates.iter().all(|c| c.verdict == Verdict::NotConsidered) && route.category == "Mailbox";
            if !route.candidates.is_empty() && !local {
                let _ = writeln!(
                    out,
                    "  Connectors  (§3.2: mail flow rule > exact > wildcard by labels > AllAcceptedDomains > *)"
                );
                for c in &route.candidates {
                    let by = c.matched_by.as_ref().map_or(String::new(), |m| format!(" [{m}]"));
                    let _ = writeln!(out, "    {:<15}\"{}\"{by}: {}", verdict_text(c.verdict), c.connector, c.why);
                }
            }
            for w in &route.warnings {
                let _ = writeln!(out, "  Warning     {w}");
            }
            let hop = &route.next_hop;
            let via = hop.connector.as_ref().map_or(String::new(), |c| format!(" via \"{c}\""));
            let _ = writeln!(out, "  Next hop    {}{via}", hop.description);
            if hop.kind == "smart_host" || hop.kind == "mx" {
                if !hop.resolved {
                    let _ =
                        writeln!(out, "    (not resolved: give a scenario file to resolve it in the scenario's DNS)");
                }
                for t in &hop.targets {
                    let addrs = if t.addresses.is_empty() { "-".to_string() } else { t.addresses.join(", ") };
                    let _ = write!(out, "    {}:{} → {addrs}", t.host, t.port);
                    if let Some(e) = &t.error {
                        let _ = write!(out, "  ({e})");
                    }
                    if let Some(n) = &t.expected_certificate_name {
                        let _ = write!(out, "  certificate must match {n}");
                    }
                    out.push('\n');
                }
            }
            if let Some(o) = &hop.outcome {
                let _ = writeln!(out, "    → {o}");
            }
            if let Some(tls) = &route.tls {
                let domain = tls.tls_domain.as_ref().map_or(String::new(), |d| format!(", TlsDomain {d}"));
                let _ = writeln!(out, "  TLS         TlsSettings {}{domain}: {}", tls.settings, tls.requirement);
                let _ = writeln!(out, "  Certificate {}", tls.certificate_check);
            }
        }
    }
    sections::write_text(&mut out, &r.sections);
    let _ = writeln!(
        out,
        "\nResult      {}",
        if r.routed { "every recipient has a route" } else { "some recipients fail or are held (see above)" }
    );
    out
}
