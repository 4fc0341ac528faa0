//! The mail-flow picture (issue 10 item 2): a world's hosts, its tenant, the tenant's connectors,
//! the DNS MX records and, once mail has flowed, each message's path coloured by its outcome, as
//! pure data ([`Graph`]) written as DOT ([`Graph::to_dot`]) and SVG ([`Graph::to_svg`]).
//!
//! Contract: [`build`] is a function of [`Facts`] (what a world is made of) and trace events; it
//! decides nothing about mail. What it draws follows the tenant's configuration as the pipeline
//! reads it: an inbound connector is drawn from the hosts whose declared address its
//! `SenderIPAddresses` cover (exo-behaviour §2.2) and labelled with what else it matches (sender
//! domains, certificate name); an outbound connector from the tenant to its smart hosts, or to the
//! MX records of its recipient domains when it uses MX (§3.1); MX records to the hosts their
//! exchanges' A records name. Paths come from the trace (§8): one per message and recipient, from
//! the address the tenant received it from, through the connectors the events name, to the next
//! hop's address or a mailbox, coloured by the row's status (its last event). Paths sharing the
//! same edge and status are drawn once with a count, so 10,000 messages stay a readable picture.
//!
//! SVG: laid out by `layout-rs` (pure Rust, no Graphviz needed on the machine) from the same DOT
//! text, so the two outputs never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use mailsim_core::tenant::Tenant;
use mailsim_core::trace::{Event, Status, TraceEvent};

/// One host of a world.
#[derive(Clone, Debug)]
pub struct HostFacts {
    /// Role name.
    pub name: String,
    /// Declared address.
    pub declared: IpAddr,
    /// Where it listens or binds on loopback, when the world is up.
    pub loopback: Option<SocketAddr>,
    /// The name it greets with, when it receives mail (a scripted peer).
    pub peer: Option<String>,
}

/// What a world is made of, as the picture needs it.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// The tenant's declared address.
    pub tenant_declared: Option<IpAddr>,
    /// The tenant's listener on loopback.
    pub tenant_loopback: Option<SocketAddr>,
    /// The hosts.
    pub hosts: Vec<HostFacts>,
    /// MX records: (domain, preference, exchange; `.` for a null MX).
    pub mx: Vec<(String, u16, String)>,
    /// A and AAAA records: (name, address).
    pub addresses: Vec<(String, IpAddr)>,
}

/// What a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A host that only sends.
    Sender,
    /// A scripted peer (receives mail).
    Peer,
    /// The tenant.
    Tenant,
    /// The tenant's mailboxes.
    Mailboxes,
    /// An inbound connector.
    Inbound,
    /// An outbound connector.
    Outbound,
    /// A domain's MX records.
    Mx,
    /// An address the world does not declare (a path's end that is no host).
    Unknown,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Stable id (`host:NAME`, `in:NAME`, ...).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Lines of its label.
    pub label: Vec<String>,
}

/// What an edge stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// Configuration: where mail may go.
    Config,
    /// Messages that took this edge and ended with this status.
    Path(Status),
}

/// One edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    /// From node id.
    pub from: String,
    /// To node id.
    pub to: String,
    /// What it is.
    pub kind: EdgeKind,
    /// Label.
    pub label: String,
}

/// The picture as data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Nodes, in a stable order.
    pub nodes: Vec<Node>,
    /// Edges, in a stable order.
    pub edges: Vec<Edge>,
}

/// The colour of a status (DOT and SVG).
pub fn status_colour(status: Status) -> &'static str {
    match status {
        Status::Delivered => "#1a7f37",
        Status::Pending => "#bf8700",
        Status::Failed => "#cf222e",
        Status::GettingStatus => "#57606a",
        Status::Quarantined => "#8250df",
    }
}

const TENANT: &str = "tenant";
const MAILBOXES: &str = "mailboxes";

/// Builds the picture of `facts`, with the paths of the messages in `trace`.
pub fn build(facts: &Facts<'_>, trace: &[TraceEvent]) -> Graph {
    let mut g = Graph::default();
    let t = facts.tenant;
    let mut tenant_label = vec![format!("tenant {}", t.settings.server_name)];
    if let Some(ip) = facts.tenant_declared {
        tenant_label.push(address_line(ip, facts.tenant_loopback));
    }
    let domains: Vec<String> = t.accepted_domains.iter().map(|d| d.name.to_string()).collect();
    if !domains.is_empty() {
        tenant_label.push(format!("accepted: {}", shorten(&domains, 4)));
    }
    g.node(TENANT, NodeKind::Tenant, tenant_label);
    let mut mailboxes: Vec<&String> = t.mailboxes.iter().collect();
    mailboxes.sort();
    let mailboxes: Vec<String> = mailboxes.into_iter().cloned().collect();
    g.node(MAILBOXES, NodeKind::Mailboxes, vec![format!("{} mailboxes", mailboxes.len()), shorten(&mailboxes, 3)]);
    g.edge(TENANT, MAILBOXES, EdgeKind::Config, "deliver");

    for h in &facts.hosts {
        let kind = if h.peer.is_some() { NodeKind::Peer } else { NodeKind::Sender };
        let mut label = vec![match &h.peer {
            Some(greets) => format!("{} (peer {greets})", h.name),
            None => h.name.clone(),
        }];
        label.push(address_line(h.declared, h.loopback));
        g.node(&host_id(&h.name), kind, label);
    }

    for c in &t.inbound_connectors {
        let id = format!("in:{}", c.name);
        let mut label = vec![format!("inbound {}{}", c.name, if c.enabled { "" } else { " (disabled)" })];
        label.push(format!("{:?}", c.connector_type));
        if !c.sender_ip_addresses.is_empty() {
            label.push(format!(
                "IPs {}",
                shorten(&c.sender_ip_addresses.iter().map(ToString::to_string).collect::<Vec<_>>(), 3)
            ));
        }
        if let Some(cert) = &c.tls_sender_certificate_name {
            label.push(format!("cert {cert}"));
        }
        if !c.sender_domains.is_empty() {
            label.push(format!(
                "senders {}",
                shorten(&c.sender_domains.iter().map(ToString::to_string).collect::<Vec<_>>(), 3)
            ));
        }
        if c.require_tls {
            label.push("RequireTls".to_string());
        }
        g.node(&id, NodeKind::Inbound, label);
        for h in &facts.hosts {
            if let IpAddr::V4(ip) = h.declared
                && c.sender_ip_addresses.iter().any(|net| net.contains(&ip))
            {
                g.edge(&host_id(&h.name), &id, EdgeKind::Config, "IP matches");
            }
        }
        g.edge(&id, TENANT, EdgeKind::Config, "");
    }

    let mut mx_drawn: Vec<String> = Vec::new();
    let mut mx_node = |g: &mut Graph, domain: &str| -> Option<String> {
        let records: Vec<&(String, u16, String)> =
            facts.mx.iter().filter(|(d, _, _)| d.eq_ignore_ascii_case(domain)).collect();
        if records.is_empty() {
            return None;
        }
        let id = format!("mx:{}", domain.to_ascii_lowercase());
        if !mx_drawn.contains(&id) {
            mx_drawn.push(id.clone());
            let mut label = vec![format!("MX {domain}")];
            label.extend(
                records.iter().map(|(_, p, x)| if x == "." { "null MX".to_string() } else { format!("{p} {x}") }),
            );
            g.node(&id, NodeKind::Mx, label);
            for (_, _, exchange) in &records {
                for target in hosts_named(facts, exchange) {
                    g.edge(&id, &target, EdgeKind::Config, exchange);
                }
            }
        }
        Some(id)
    };
    for d in &domains {
        mx_node(&mut g, d);
    }
    for c in &t.outbound_connectors {
        let id = format!("out:{}", c.name);
        let recipients = if c.all_accepted_domains {
            "all accepted domains".to_string()
        } else {
            shorten(&c.recipient_domains.iter().map(ToString::to_string).collect::<Vec<_>>(), 3)
        };
        let mut label = vec![format!("outbound {}{}", c.name, if c.enabled { "" } else { " (disabled)" })];
        label.push(format!("to {recipients}"));
        label.push(if c.use_mx_record {
            "via MX".to_string()
        } else {
            format!("smart hosts {}", shorten(&c.smart_hosts.iter().map(ToString::to_string).collect::<Vec<_>>(), 3))
        });
        label.push(format!("TLS {:?}", c.tls_settings));
        g.node(&id, NodeKind::Outbound, label);
        g.edge(TENANT, &id, EdgeKind::Config, "");
        if c.use_mx_record {
            for d in &c.recipient_domains {
                let d = d.to_string();
                if let Some(mx) = mx_node(&mut g, &d) {
                    g.edge(&id, &mx, EdgeKind::Config, "MX");
                }
            }
        } else {
            for sh in &c.smart_hosts {
                let text = sh.to_string();
                let name = text.trim_start_matches('[').split([']', ':']).next().unwrap_or_default().to_string();
                let targets: Vec<String> = match name.parse::<IpAddr>() {
                    Ok(ip) => hosts_at(facts, ip),
                    Err(_) => match mx_node(&mut g, &name) {
                        Some(mx) if !text.starts_with('[') => vec![mx],
                        _ => hosts_named(facts, &name),
                    },
                };
                for target in targets {
                    g.edge(&id, &target, EdgeKind::Config, "smart host");
                }
            }
        }
    }
    // MX records of other domains the world serves (partners reached without a connector).
    let mut others: Vec<&String> = facts.mx.iter().map(|(d, _, _)| d).collect();
    others.dedup();
    for d in others {
        mx_node(&mut g, d);
    }

    paths(&mut g, facts, trace);
    g
}

/// Adds the trace's paths, one edge per (leg, status) with a count.
fn paths(g: &mut Graph, facts: &Facts<'_>, trace: &[TraceEvent]) {
    #[derive(Default)]
    struct Row {
        /// Where the tenant received it from (RECEIVE), or the client it refused (a FAIL first);
        /// `None`: the tenant made it (an NDR).
        from_ip: Option<IpAddr>,
        seen: bool,
        inbound: Option<String>,
        outbound: Option<String>,
        to: Option<String>,
        mailbox: bool,
        status: Option<Status>,
    }
    // NDRs the tenant generated (DSN events, `NDR <id> generated for ...`, trace.rs): their
    // RECEIVE carries the original's client, but their path starts at the tenant.
    let made_here: std::collections::HashSet<&str> = trace
        .iter()
        .filter(|e| e.event == Event::Dsn)
        .filter_map(|e| e.detail.strip_prefix("NDR ")?.split(" generated").next())
        .collect();
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    for e in trace {
        let Some(recipient) = &e.recipient else { continue };
        let id = if e.message_id.is_empty() { format!("refused@{}", e.at) } else { e.message_id.clone() };
        let row = rows.entry((id, recipient.to_ascii_lowercase())).or_default();
        if !row.seen || e.event == Event::Receive {
            if matches!(e.event, Event::Receive | Event::Fail) && !made_here.contains(e.message_id.as_str()) {
                row.from_ip = e.from_ip;
            }
            row.seen = true;
        }
        let named = |kind: &str, name: &Option<String>| {
            name.as_ref().map(|n| format!("{kind}:{n}")).filter(|id| g.nodes.iter().any(|x| &x.id == id))
        };
        match e.event {
            Event::Receive => row.inbound = named("in", &e.connector).or(row.inbound.take()),
            Event::Deliver => row.mailbox = true,
            Event::Send | Event::Defer => {
                if let Some(out) = named("out", &e.connector) {
                    row.outbound = Some(out);
                }
                row.to = e.to_ip.clone().or(row.to.take());
            }
            Event::Fail if e.to_ip.is_some() => row.to = e.to_ip.clone(),
            _ => {}
        }
        row.status = Some(row.status.map_or(e.event.status(), |s| mailsim_core::trace::next_status(s, e.event)));
    }
    let mut legs: BTreeMap<(String, String, u8), (Status, usize)> = BTreeMap::new();
    for row in rows.values() {
        let Some(status) = row.status else { continue };
        let mut hops: Vec<String> = Vec::new();
        if let Some(ip) = row.from_ip {
            hops.push(hosts_at(facts, ip).into_iter().next().unwrap_or_else(|| g.unknown(&ip.to_string())));
            hops.extend(row.inbound.clone());
        }
        hops.push(TENANT.to_string());
        if row.mailbox {
            hops.push(MAILBOXES.to_string());
        } else if let Some(to) = &row.to {
            hops.extend(row.outbound.clone());
            let ip = to.parse::<SocketAddr>().map(|s| s.ip()).or_else(|_| to.parse::<IpAddr>());
            match ip {
                Ok(ip) => hops.push(hosts_at(facts, ip).into_iter().next().unwrap_or_else(|| g.unknown(to))),
                Err(_) => hops.push(hosts_named(facts, to).into_iter().next().unwrap_or_else(|| g.unknown(to))),
            }
        }
        for pair in hops.windows(2) {
            let key = (pair[0].clone(), pair[1].clone(), status as u8);
            legs.entry(key).or_insert((status, 0)).1 += 1;
        }
    }
    for ((from, to, _), (status, n)) in legs {
        let label = format!("{n} {status:?}");
        g.edge(&from, &to, EdgeKind::Path(status), &label);
    }
}

impl Graph {
    fn node(&mut self, id: &str, kind: NodeKind, label: Vec<String>) {
        if !self.nodes.iter().any(|n| n.id == id) {
            self.nodes.push(Node { id: id.to_string(), kind, label });
        }
    }

    fn edge(&mut self, from: &str, to: &str, kind: EdgeKind, label: &str) {
        let e = Edge { from: from.to_string(), to: to.to_string(), kind, label: label.to_string() };
        if !self.edges.contains(&e) {
            self.edges.push(e);
        }
    }

    fn unknown(&mut self, addr: &str) -> String {
        let id = format!("addr:{addr}");
        self.node(&id, NodeKind::Unknown, vec![addr.to_string(), "(not a host of the world)".to_string()]);
        id
    }

    /// The picture in Graphviz's DOT language (`dot -Tsvg` draws it too).
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph \"mail flow\" {\n  node [shape=box, fontsize=12];\n  edge [fontsize=10];\n");
        for n in &self.nodes {
            let fill = match n.kind {
                NodeKind::Sender => "#ddf4ff",
                NodeKind::Peer => "#dafbe1",
                NodeKind::Tenant => "#fff8c5",
                NodeKind::Mailboxes => "#fff8c5",
                NodeKind::Inbound | NodeKind::Outbound => "#f6f8fa",
                NodeKind::Mx => "#fbefff",
                NodeKind::Unknown => "#ffebe9",
            };
            let _ = writeln!(
                out,
                "  {} [label={}, style=filled, fillcolor=\"{fill}\"];",
                quote(&n.id),
                quote(&n.label.join("\n"))
            );
        }
        for e in &self.edges {
            let style = match e.kind {
                EdgeKind::Config => "color=\"#8c959f\", style=dashed".to_string(),
                EdgeKind::Path(s) => format!("color=\"{}\", penwidth=2", status_colour(s)),
            };
            let _ = writeln!(out, "  {} -> {} [label={}, {style}];", quote(&e.from), quote(&e.to), quote(&e.label));
        }
        out.push_str("}\n");
        out
    }

    /// The picture as SVG, laid out by `layout-rs` from [`Graph::to_dot`].
    pub fn to_svg(&self) -> String {
        use layout::backends::svg::SVGWriter;
        use layout::gv::{DotParser, GraphBuilder};
        let dot = self.to_dot();
        let mut parser = DotParser::new(&dot);
        let Ok(tree) = parser.process() else {
            // Our own DOT always parses (labels are quoted with `quote`); say so rather than panic.
            return "<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">the picture could not be laid out</text></svg>".to_string();
        };
        let mut builder = GraphBuilder::new();
        builder.visit_graph(&tree);
        let mut visual = builder.get();
        let mut svg = SVGWriter::new();
        if visual.num_nodes() == 0 {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_string();
        }
        visual.do_it(false, false, false, &mut svg);
        stable_styles(svg.finalize())
    }
}

/// The SVG with its `<style>` rules sorted: layout-rs writes them from a `HashMap` (one rule per
/// font size), in an order that changes from run to run; the layout itself is deterministic.
fn stable_styles(svg: String) -> String {
    let (Some(start), Some(end)) = (svg.find("<style>\n"), svg.find("</style>")) else { return svg };
    let start = start + "<style>\n".len();
    if end < start {
        return svg;
    }
    let mut rules: Vec<&str> = svg[start..end].lines().collect();
    rules.sort_unstable();
    let mut out = String::with_capacity(svg.len());
    out.push_str(&svg[..start]);
    for r in rules {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str(&svg[end..]);
    out
}

fn host_id(name: &str) -> String {
    format!("host:{name}")
}

fn address_line(declared: IpAddr, loopback: Option<SocketAddr>) -> String {
    match loopback {
        Some(l) => format!("{declared} = {l}"),
        None => declared.to_string(),
    }
}

/// The first `n` items, then how many more.
fn shorten(items: &[String], n: usize) -> String {
    if items.len() <= n { items.join(", ") } else { format!("{} +{} more", items[..n].join(", "), items.len() - n) }
}

/// Hosts (or the tenant) declared at `ip`.
fn hosts_at(facts: &Facts<'_>, ip: IpAddr) -> Vec<String> {
    if facts.tenant_declared == Some(ip) {
        return vec![TENANT.to_string()];
    }
    facts.hosts.iter().filter(|h| h.declared == ip).map(|h| host_id(&h.name)).collect()
}

/// Hosts a name's A/AAAA records (or a peer's greeting name) point at.
fn hosts_named(facts: &Facts<'_>, name: &str) -> Vec<String> {
    let mut out: Vec<String> = facts
        .addresses
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, ip)| hosts_at(facts, *ip))
        .collect();
    if out.is_empty() {
        out = facts
            .hosts
            .iter()
            .filter(|h| h.peer.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(name)))
            .map(|h| host_id(&h.name))
            .collect();
    }
    out.dedup();
    out
}

/// A DOT string literal; characters the layout parser does not take are replaced.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push('\''),
            '\\' => out.push('/'),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The picture of a running world, with the paths of the messages in `trace` (its own trace when
/// `None`).
pub fn of_simulation(sim: &crate::sim::Simulation, trace: Option<&[TraceEvent]>) -> Graph {
    use crate::sim::PlanRole;
    let tenant = sim.tenant();
    let (mut hosts, mut tenant_declared, mut tenant_loopback) = (Vec::new(), None, None);
    for row in sim.plan() {
        let loopback = row.port.map(|p| SocketAddr::new(row.loopback, p));
        match row.role {
            PlanRole::Tenant => (tenant_declared, tenant_loopback) = (Some(row.declared), loopback),
            PlanRole::Peer | PlanRole::Sender => {
                let peer = sim.peer(&row.name).ok().map(|p| p.script().host_name);
                hosts.push(HostFacts { name: row.name, declared: row.declared, loopback, peer });
            }
            PlanRole::TenantOutbound | PlanRole::Dns => {}
        }
    }
    let zones = sim.dns().zones();
    let facts = Facts {
        tenant: &tenant,
        tenant_declared,
        tenant_loopback,
        hosts,
        mx: zones.mx_records(),
        addresses: zones.address_records(),
    };
    match trace {
        Some(events) => build(&facts, events),
        None => sim.endpoint().trace().with_events(|_, events| build(&facts, events)),
    }
}

/// The picture of a tenant alone (no world: its connectors and accepted domains).
pub fn of_tenant(tenant: &Tenant, trace: &[TraceEvent]) -> Graph {
    let facts = Facts {
        tenant,
        tenant_declared: None,
        tenant_loopback: None,
        hosts: Vec::new(),
        mx: Vec::new(),
        addresses: Vec::new(),
    };
    build(&facts, trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        mailsim_core::tenant::load::load(
            r#"
[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "Gateway"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.7"]
RestrictDomainsToIPAddresses = true

[[OutboundConnector]]
Name = "To partner"
RecipientDomains = ["partner.test"]
UseMXRecord = true
"#,
            "t.toml",
        )
        .unwrap()
    }

    fn facts(t: &Tenant) -> Facts<'_> {
        Facts {
            tenant: t,
            tenant_declared: Some("192.0.2.100".parse().unwrap()),
            tenant_loopback: None,
            hosts: vec![
                HostFacts {
                    name: "gateway".into(),
                    declared: "198.51.100.7".parse().unwrap(),
                    loopback: None,
                    peer: None,
                },
                HostFacts {
                    name: "partner".into(),
                    declared: "203.0.113.25".parse().unwrap(),
                    loopback: None,
                    peer: Some("mx.partner.test".into()),
                },
            ],
            mx: vec![("partner.test".into(), 10, "mx.partner.test".into())],
            addresses: vec![("mx.partner.test".into(), "203.0.113.25".parse().unwrap())],
        }
    }

    fn has(g: &Graph, from: &str, to: &str) -> bool {
        g.edges.iter().any(|e| e.from == from && e.to == to)
    }

    #[test]
    fn configuration_edges_follow_the_connectors_and_mx_records() {
        let t = tenant();
        let g = build(&facts(&t), &[]);
        assert!(has(&g, "host:gateway", "in:Gateway"), "{g:#?}");
        assert!(has(&g, "in:Gateway", "tenant"));
        assert!(has(&g, "tenant", "out:To partner"));
        assert!(has(&g, "out:To partner", "mx:partner.test"));
        assert!(has(&g, "mx:partner.test", "host:partner"));
        assert!(!has(&g, "host:partner", "in:Gateway"), "the partner's address is not the connector's");
        let gw = g.nodes.iter().find(|n| n.id == "in:Gateway").unwrap();
        assert!(gw.label.iter().any(|l| l.contains("198.51.100.7/32")), "{gw:?}");
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph") && dot.contains("\"host:gateway\" -> \"in:Gateway\""), "{dot}");
        let svg = g.to_svg();
        assert!(svg.contains("<svg") && svg.contains("gateway"), "{svg}");
        for _ in 0..4 {
            assert_eq!(svg, build(&facts(&t), &[]).to_svg(), "the picture is the same every time");
        }
    }

    #[test]
    fn paths_are_coloured_by_the_rows_last_status_and_counted() {
        let t = tenant();
        let ev = |event: Event, id: &str, connector: Option<&str>, to: Option<&str>| TraceEvent {
            at: mailsim_core::time::Timestamp(0),
            event,
            message_id: id.to_string(),
            internal_id: None,
            sender: "a@contoso.test".into(),
            recipient: Some("bob@partner.test".into()),
            from_ip: Some("198.51.100.7".parse().unwrap()),
            to_ip: to.map(str::to_string),
            connector: connector.map(str::to_string),
            detail: String::new(),
            data: None,
        };
        let trace = vec![
            ev(Event::Receive, "<1@x>", Some("Gateway"), None),
            ev(Event::Send, "<1@x>", Some("To partner"), Some("203.0.113.25:25")),
            ev(Event::Receive, "<2@x>", Some("Gateway"), None),
            ev(Event::Send, "<2@x>", Some("To partner"), Some("203.0.113.25:25")),
            ev(Event::Receive, "<3@x>", Some("Gateway"), None),
            ev(Event::Defer, "<3@x>", Some("To partner"), Some("203.0.113.25:25")),
            ev(Event::Fail, "<3@x>", None, None),
            // The NDR the tenant made for <3@x>: its RECEIVE names the original's client.
            TraceEvent {
                detail: "NDR <ndr-3@x> generated for a@contoso.test".into(),
                recipient: None,
                ..ev(Event::Dsn, "<3@x>", None, None)
            },
            TraceEvent {
                recipient: Some("a@contoso.test".into()),
                sender: String::new(),
                ..ev(Event::Receive, "<ndr-3@x>", None, None)
            },
            TraceEvent {
                recipient: Some("a@contoso.test".into()),
                sender: String::new(),
                ..ev(Event::Deliver, "<ndr-3@x>", None, None)
            },
        ];
        let g = build(&facts(&t), &trace);
        let path = |from: &str, to: &str, s: Status| {
            g.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == EdgeKind::Path(s))
                .map(|e| e.label.clone())
        };
        assert_eq!(path("host:gateway", "in:Gateway", Status::Delivered).as_deref(), Some("2 Delivered"));
        assert_eq!(path("out:To partner", "host:partner", Status::Delivered).as_deref(), Some("2 Delivered"));
        assert_eq!(path("out:To partner", "host:partner", Status::Failed).as_deref(), Some("1 Failed"));
        assert!(g.to_dot().contains(status_colour(Status::Failed)));
        assert_eq!(path("tenant", "mailboxes", Status::Delivered).as_deref(), Some("1 Delivered"), "the NDR");
        assert_eq!(path("host:gateway", "tenant", Status::Delivered), None, "the NDR starts at the tenant");
    }
}
