//! The scenario loader (format in `scenarios/README.md`): a tenant file extended with
//! `[scenario]`, `[[host]]`, `[dns]`, `[retry]` and `[[step]]`. [`load_file`] reads a file and
//! validates all of it before any world starts: the tenant (with the tenant loader, so its errors
//! are the loader's), every host, the DNS records, and every step, including the tenant each
//! `change` produces.
//!
//! Errors are [`ConfigError`]s from `mailsim_core::diagnostics`, shown as
//! `path:line:col: field: problem` and `  hint: ...`. Fields count tables from 1, as the tenant
//! loader does: `step[2].send.from` is the `from` key of the second `[[step]]`.
//!
//! The loader is split by what it reads:
//! - `walker.rs`: positions, fields and typed values over the TOML tree;
//! - `world.rs`: the tenant, hosts and peers, DNS, retry;
//! - `steps.rs`: steps, sends and changes;
//! - `expect.rs`: the expectations of a step.
//!
//! This file holds what a loaded scenario is ([`Scenario`], [`Step`], [`Action`], [`Change`]), the
//! state the rooms share while they check a file in order (`Loader`), and the table test of
//! every error message.

mod auth;
mod auth_world;
mod expect;
mod steps;
mod walker;
mod world;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mailsim_core::diagnostics::{ConfigError, ConfigWarning};
use mailsim_core::stage::outcome::RetryPolicy;
use mailsim_core::tenant::Tenant;
use mailsim_testkit::dns::{DnsZoneSet, Fault};
use mailsim_testkit::peer::PeerScript;
use toml::de::{DeTable, DeValue};

use crate::scenario::expect::Expect;
use crate::sim::{CertChoice, HostSpec, SendSpec, WorldSpec};
pub use walker::parse_duration;
use walker::{Cx, Node, Tbl};

/// The tenant tables (the tenant file format), as the tenant loader knows them.
pub const TENANT_TABLES: &[&str] = &mailsim_core::tenant::load::TABLES;
/// The tables a scenario adds; the tenant loader skips them (`load_with_other_tables`).
pub const SCENARIO_TABLES: [&str; 5] = ["scenario", "host", "dns", "retry", "step"];
/// The test PKI's leaf certificates, by the names scenarios use.
pub const TEST_CERTS: [&str; 8] =
    ["gateway", "partner", "wrong-subject", "expired", "untrusted", "wildcard", "san-only", "tenant"];

/// A scenario, validated and ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// `[scenario] name`, or the file stem.
    pub name: String,
    /// `[scenario] description`.
    pub description: Option<String>,
    /// The path as given, for messages.
    pub file: String,
    /// The world as it starts.
    pub world: WorldSpec,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The tenant loader's warnings.
    pub warnings: Vec<ConfigWarning>,
}

impl Scenario {
    /// Starts the scenario's world as it is before the first step (for Rust tests that drive it
    /// themselves).
    pub async fn start(&self) -> Result<crate::sim::Simulation, crate::sim::SimError> {
        crate::sim::Simulation::start(self.world.clone()).await
    }
}

/// One `[[step]]`.
#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based position among the steps.
    pub number: usize,
    /// 1-based line where the step starts.
    pub line: usize,
    /// Its optional `name`.
    pub name: Option<String>,
    /// What it does.
    pub action: Action,
    /// What must hold afterwards.
    pub expect: Vec<Expect>,
}

impl Step {
    /// `step[3]`, or `step[3] "name"`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("step[{}] {n:?}", self.number),
            None => format!("step[{}]", self.number),
        }
    }
}

/// The action of a step.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send one message into the tenant.
    Send(Box<SendSpec>),
    /// Move the simulated clock.
    Advance(Duration),
    /// Change the world.
    Change(Vec<Change>),
    /// Only check expectations.
    Check,
}

/// One change of the world, resolved at load time.
#[derive(Clone, Debug)]
pub enum Change {
    /// The tenant after an admin's edit (already validated by the tenant loader).
    Tenant {
        /// The new configuration.
        tenant: Arc<Tenant>,
        /// What was changed, for reports.
        what: String,
    },
    /// A host moves to another declared address.
    MoveHost {
        /// The host.
        host: String,
        /// Its new declared address.
        address: IpAddr,
    },
    /// A host presents another client certificate.
    HostCert {
        /// The host.
        host: String,
        /// The certificate (`None`: none).
        cert: Option<CertChoice>,
    },
    /// A host's peer follows another script.
    Peer {
        /// The host.
        host: String,
        /// The whole new script.
        script: Box<PeerScript>,
        /// Whether it relays what it receives to the tenant.
        relay_to_tenant: bool,
    },
    /// A domain's MX records are replaced.
    Mx {
        /// The domain.
        domain: String,
        /// (preference, exchange); empty removes them.
        records: Vec<(u16, String)>,
    },
    /// A name's A records are replaced.
    A {
        /// The name.
        name: String,
        /// The addresses; empty removes them.
        addresses: Vec<Ipv4Addr>,
    },
    /// DNS answers for a name are faulty (or normal again).
    DnsFault {
        /// The queried name.
        name: String,
        /// The fault; `None` clears it.
        fault: Option<Fault>,
    },
    /// DNS answers for a name and one record type are faulty (or normal again): `type = "TXT"`.
    DnsFaultFor {
        /// The queried name.
        name: String,
        /// The record type, upper-case (`TXT`).
        record_type: String,
        /// The fault; `None` clears it.
        fault: Option<Fault>,
    },
    /// A name's TXT records are replaced (SPF, DMARC, DKIM keys).
    Txt {
        /// The name.
        name: String,
        /// One text per record; empty removes them.
        records: Vec<String>,
    },
}

/// Reads and validates a scenario file (and the tenant file and `.eml` files it names).
pub fn load_file(path: &Path) -> Result<Scenario, ConfigError> {
    let text = crate::config_file::read(path)?;
    parse(&text, path)
}

/// Validates scenario text. `path` names the file in errors and anchors relative paths
/// (`tenant_file`, `eml`); nothing else is read from it.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ConfigError> {
    let cx = Cx {
        file: path.display().to_string(),
        text,
        dir: path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
    };
    mailsim_core::diagnostics::refuse_empty(text, &cx.file, "scenario file")?;
    let parsed = DeTable::parse(text).map_err(|e| cx.syntax(&e))?;
    let root = Tbl { t: parsed.get_ref(), span: parsed.span(), field: String::new() };
    let allowed: Vec<&str> = TENANT_TABLES.iter().chain(SCENARIO_TABLES.iter()).copied().collect();
    cx.keys(&root, &allowed)?;
    let mut loader = Loader::new(cx, &root)?;
    loader.scenario(&root)
}

/// Steps written apart from their scenario (the HTTP API's `POST /api/v1/steps`): `steps` holds
/// only `[[step]]` tables, checked as if they followed `world_text` (the scenario file, and the
/// steps already played after it), so they name its hosts and edit the tenant as those steps left
/// it. Errors inside `steps` name `steps_name` and the line in `steps`; the steps keep their
/// numbers after the world's own (`step[8]` follows seven).
pub fn parse_appended_steps(
    world_text: &str,
    path: &Path,
    steps: &str,
    steps_name: &str,
) -> Result<Vec<Step>, ConfigError> {
    let alone = Cx { file: steps_name.to_string(), text: steps, dir: PathBuf::new() };
    let parsed = DeTable::parse(steps).map_err(|e| alone.syntax(&e))?;
    let root = Tbl { t: parsed.get_ref(), span: parsed.span(), field: String::new() };
    if let Some((key, span, _)) = root.entries().into_iter().find(|(k, _, _)| *k != "step") {
        return Err(alone
            .err(&span, key, format!("only steps can be played here, not `{key}`"))
            .with_hint("send [[step]] tables with send, advance, change or expect"));
    }
    let played = parse(world_text, path)?.steps.len();
    let sep = if world_text.is_empty() || world_text.ends_with('\n') { "" } else { "\n" };
    let offset = world_text.matches('\n').count() + sep.len();
    let whole = format!("{world_text}{sep}{steps}");
    match parse(&whole, path) {
        Ok(scenario) => Ok(scenario.steps.into_iter().skip(played).collect()),
        Err(mut e) if e.line > offset => {
            e.line -= offset;
            e.file = steps_name.to_string();
            Err(e)
        }
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------------------------
// The state the rooms share.

/// A host as the steps so far left it.
struct HostState {
    name: String,
    declared: IpAddr,
    peer: Option<toml::Table>,
    relay: bool,
}

/// What the rooms share while they check a file in order: the file, the world as the steps so far
/// left it, and what expectations may name.
struct Loader<'t> {
    cx: Cx<'t>,
    tenant_declared: IpAddr,
    /// The tenant's outbound side and the loopback addresses pinned in the file (issue 9 items 2
    /// and 6): see `world.rs`.
    live: world::LivePlan,
    hosts: Vec<HostState>,
    initial_hosts: Vec<HostSpec>,
    tenant_doc: toml::Table,
    initial_tenant: Tenant,
    warnings: Vec<ConfigWarning>,
    inbound_names: BTreeSet<String>,
    all_connector_names: BTreeSet<String>,
    mailboxes: BTreeSet<String>,
    /// Mail flow rule names, for `trace = { rule = ... }`.
    rule_names: BTreeSet<String>,
}

impl<'t> Loader<'t> {
    /// The whole file, in the order an admin reads it: `[scenario]`, hosts, DNS, retry, then each
    /// step against the world the steps before it left.
    fn scenario(&mut self, root: &Tbl<'_>) -> Result<Scenario, ConfigError> {
        let cx = &self.cx;
        let scenario = root.get("scenario").map(|n| cx.table(&n)).transpose()?;
        let stem = Path::new(&cx.file).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let name = match scenario.as_ref().and_then(|s| s.get("name")) {
            Some(n) => {
                let name = cx.string(&n)?.trim().to_string();
                if name.is_empty() {
                    return Err(cx.err(&n.span, &n.field, "the name is empty"));
                }
                name
            }
            None => stem,
        };
        let description = scenario
            .as_ref()
            .and_then(|s| s.get("description"))
            .map(|n| cx.string(&n).map(str::to_string))
            .transpose()?;
        if let Some(n) = root.get("host") {
            self.hosts(&n)?;
        }
        let dns = match root.get("dns") {
            Some(n) => self.dns(&self.cx.table(&n)?)?,
            None => DnsZoneSet::new(),
        };
        let retry = match root.get("retry") {
            Some(n) => self.retry(&self.cx.table(&n)?)?,
            None => RetryPolicy::default(),
        };
        let mut steps = Vec::new();
        if let Some(n) = root.get("step") {
            let DeValue::Array(items) = n.v else {
                return Err(self.cx.type_error(&n, "an array of tables").with_hint("write each step as [[step]]"));
            };
            for (i, item) in items.iter().enumerate() {
                let node = Node { v: item.get_ref(), span: item.span(), field: format!("step[{}]", i + 1) };
                steps.push(self.step(&node, i + 1)?);
            }
        }
        let mut world = WorldSpec::new(self.initial_tenant.clone());
        world.tenant_declared = self.tenant_declared;
        world.hosts = self.initial_hosts.clone();
        self.live.apply(&name, &mut world);
        world.dns = dns;
        world.retry = retry;
        if let Some(n) = scenario.as_ref().and_then(|s| s.get("authentication")) {
            world.authentication = self.authentication(&n)?;
        }
        Ok(Scenario {
            name,
            description,
            file: self.cx.file.clone(),
            world,
            steps,
            warnings: std::mem::take(&mut self.warnings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("25h"), Some(Duration::from_secs(25 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * 86400)));
        for bad in ["", "5", "h", "5x", "1.5h", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    /// The base of every row below: lines 1-20; a row's snippet starts at line 21.
    const BASE: &str = r#"[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "Lock to gateway"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true
RequireTls = false

[[host]]
name = "gateway"
address = "198.51.100.7"

[host.peer]
starttls = "Offer"

"#;

    const SEND: &str = "[[step]]\nsend = { from = \"gateway\", mail_from = \"a@fabrikam.test\", rcpt_to = [\"alice@contoso.test\"] }\n";

    fn rows() -> Vec<(String, &'static str)> {
        let s = |x: &str| x.to_string();
        vec![
            // The walker: syntax, unknown keys, value types.
            (s("[[step]\n"), "s.toml:21:8: unclosed array table, expected `]`"),
            (s("[hots]\n"), "s.toml:21:2: hots: unknown key `hots`\n  hint: did you mean `host`?"),
            (
                s("[[Step]]\nadvance = \"1h\"\n"),
                "s.toml:21:3: Step: unknown key `Step`\n  hint: keys are case-sensitive: write `step`",
            ),
            (s("[[step]]\nadvance = 5\n"), "s.toml:22:11: step[1].advance: expected a string, found integer"),
            (
                s("[[step]]\nname = 1\nadvance = \"1h\"\n"),
                "s.toml:22:8: step[1].name: expected a string, found integer",
            ),
            (
                s("[[step]]\nadvance = \"1h\"\nexpect = { queued = -1 }\n"),
                "s.toml:23:21: step[1].expect.queued: expected a whole number of 0 or more",
            ),
            (
                s("[[step]]\nadvance = \"1h\"\nexpect = { queued = \"none\" }\n"),
                "s.toml:23:21: step[1].expect.queued: expected a whole number, found string",
            ),
            (
                s("step = 3\n"),
                "s.toml:21:1: host[1].peer.step: unknown key `step`\n  hint: known keys here: host_name, starttls, cert, client_cert, on_connect, on_ehlo, on_mail, on_rcpt, on_rcpt_for, on_data, on_end_of_data, max_message_size, idle_timeout",
            ),
            // The world: [scenario], hosts, peers, certificates, DNS, retry.
            (
                s("[scenario]\nnam = \"x\"\n"),
                "s.toml:22:1: scenario.nam: unknown key `nam`\n  hint: did you mean `name`?",
            ),
            (s("[scenario]\nname = \" \"\n"), "s.toml:22:8: scenario.name: the name is empty"),
            (
                s("[scenario]\ntenant_address = \"nope\"\n"),
                "s.toml:22:18: scenario.tenant_address: \"nope\" is not an IP address\n  hint: e.g. \"198.51.100.7\"",
            ),
            (
                s("[scenario]\ntenant_file = \"t.toml\"\n"),
                "s.toml:1:3: AcceptedDomain: this scenario names a tenant_file, so it has no tenant tables of its own\n  hint: move the table into the tenant file, or remove tenant_file",
            ),
            (
                s("[[host]]\nname = \"tenant\"\naddress = \"198.51.100.9\"\n"),
                "s.toml:22:8: host[2].name: \"tenant\" cannot name a host\n  hint: \"tenant\", \"tenant-out\" and \"dns\" are the world's own; pick a role name such as \"gateway\" or \"partner\"",
            ),
            (
                s("[[host]]\nname = \"gateway\"\naddress = \"198.51.100.9\"\n"),
                "s.toml:22:8: host[2].name: a host named \"gateway\" is already declared",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"198.51.100.7\"\n"),
                "s.toml:23:11: host[2].address: 198.51.100.7 is already host \"gateway\"'s address\n  hint: every host has an address of its own",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"192.0.2.100\"\n"),
                "s.toml:23:11: host[2].address: 192.0.2.100 is the tenant's address (tenant_address)",
            ),
            (s("[[host]]\nname = \"other\"\n"), "s.toml:21:1: host[2].address: missing key `address`"),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\ncert = \"gatewy\"\n"),
                "s.toml:24:8: host[2].cert: no test certificate named \"gatewy\"\n  hint: did you mean \"gateway\"?",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\ncert = \"mine\"\n"),
                "s.toml:24:8: host[2].cert: no test certificate named \"mine\"\n  hint: test certificates: gateway, partner, wrong-subject, expired, untrusted, wildcard, san-only, tenant; or { cn = \"mail.x.test\", sans = [\"mail.x.test\"], expired = false, untrusted = false }; or \"none\"",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\ncert = { cn = \"x.test\", sna = [] }\n"),
                "s.toml:24:25: host[2].cert.sna: unknown key `sna`\n  hint: did you mean `cn`?",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\nrelay_to_tenant = true\n"),
                "s.toml:24:19: host[2].relay_to_tenant: only a host that receives mail can relay it\n  hint: add a [host.peer] table for it",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\n[host.peer]\nforward_to = \"x\"\n"),
                "s.toml:25:1: host[2].peer.forward_to: unknown key `forward_to`\n  hint: write relay_to_tenant = true on the [[host]] instead",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\n[host.peer]\nstarttls = \"Always\"\n"),
                "s.toml:25:12: host[2].peer.starttls: unknown variant `Always`, expected one of `Offer`, `Require`, `None`\n  hint: Offer, Require or None",
            ),
            (
                s("[[host]]\nname = \"other\"\naddress = \"203.0.113.5\"\n[host.peer]\nidle_timeout = \"soon\"\n"),
                "s.toml:25:16: host[2].peer.idle_timeout: bad duration \"soon\"\n  hint: write a number and a unit: 250ms, 30s, 5m, 25h or 2d (or a sum such as 1h30m)",
            ),
            (
                s("[dns]\nrecords = \"\"\"\n$ORIGIN partner.test.\n\"\"\"\n"),
                "s.toml:23:1: dns.records: `$ORIGIN partner.test.` is not supported\n  hint: write absolute names (ending with a dot); records are grouped into zones by their last two labels",
            ),
            (
                s("[dns]\nrecords = \"\"\"\n  MX 10 mx.partner.test.\n\"\"\"\n"),
                "s.toml:23:3: dns.records: a record without a name\n  hint: zone-file lines with absolute names: `partner.test. MX 10 mx.partner.test.` or `mx.partner.test. A 203.0.113.25`",
            ),
            (
                s("[dns]\nrecord = \"\"\n"),
                "s.toml:22:1: dns.record: unknown key `record`\n  hint: did you mean `records`?",
            ),
            (
                s("[retry]\nfirst_interval = \"0s\"\n"),
                "s.toml:22:18: retry.first_interval: a retry interval must be longer than zero",
            ),
            (
                s("[retry]\nexpiry = \"1 day\"\n"),
                "s.toml:22:10: retry.expiry: bad duration \"1 day\"\n  hint: write a number and a unit: 250ms, 30s, 5m, 25h or 2d (or a sum such as 1h30m)",
            ),
            (
                s("[retry]\nmax_hops = 3\n"),
                "s.toml:22:1: retry.max_hops: unknown key `max_hops`\n  hint: known keys here: first_interval, first_count, later_interval, expiry, max_hop_count",
            ),
            // The tenant tables, checked by the tenant loader with the scenario's lines.
            (
                s("[[InboundConnector]]\nName = \"lock to gateway\"\nSenderDomains = [\"*\"]\n"),
                "s.toml:22:8: InboundConnector[2].Name: a connector named `lock to gateway` already exists (InboundConnector[1])",
            ),
            (
                s("[Transport]\nRejectionStage = \"Data\"\n"),
                "s.toml:22:18: Transport.RejectionStage: `Data` is not one of EndOfData, RcptTo",
            ),
            // Steps: send.
            (
                s("[[step]]\nsend = { from = \"gateway\", rcpt_to = \"alice@contoso.test\" }\n"),
                "s.toml:22:8: step[1].send.mail_from: missing key `mail_from`",
            ),
            (
                s("[[step]]\nsend = { from = \"gateway\", mail_from = \"a@b.test\", rcpt_to = [] }\n"),
                "s.toml:22:62: step[1].send.rcpt_to: no recipients",
            ),
            (
                s(
                    "[[step]]\nsend = { from = \"gateway\", cert = \"gateway\", mail_from = \"a@b.test\", rcpt_to = \"alice@contoso.test\" }\n",
                ),
                "s.toml:22:35: step[1].send.cert: a certificate is only presented over TLS\n  hint: add tls = true to the send",
            ),
            (
                s(
                    "[[step]]\nsend = { from = \"gateway\", eml = \"m.eml\", subject = \"x\", mail_from = \"a@b.test\", rcpt_to = \"alice@contoso.test\" }\n",
                ),
                "s.toml:22:43: step[1].send.subject: `subject` and `eml` do not go together\n  hint: the .eml file is the whole message: put the header or text in it",
            ),
            (
                s(
                    "[[step]]\nsend = { from = \"partner\", mail_from = \"a@b.test\", rcpt_to = \"alice@contoso.test\" }\n",
                ),
                "s.toml:22:17: step[1].send.from: no host named \"partner\"\n  hint: declared hosts: gateway",
            ),
            (
                s(
                    "[[step]]\nsend = { from = \"192.0.2.100\", mail_from = \"a@b.test\", rcpt_to = \"alice@contoso.test\" }\n",
                ),
                "s.toml:22:17: step[1].send.from: 192.0.2.100 is the tenant's address (tenant_address)",
            ),
            // Steps: change.
            (
                s("[[step]]\nchange = { }\n"),
                "s.toml:22:10: step[1].change: this change names nothing to change\n  hint: a change has one of: inbound_connector, outbound_connector, add_inbound_connector, add_outbound_connector, remove_connector, accepted_domain, transport, host, mx, a, dns_fault, transport_rule, txt",
            ),
            (
                s("[[step]]\nchange = { mx = \"partner.test\", a = \"x.test\" }\n"),
                "s.toml:22:33: step[1].change.a: one change per table, and this one already has `mx`\n  hint: write change = [{ ... }, { ... }] to make several changes in one step",
            ),
            (
                s("[[step]]\nchange = { mx = \"partner.test\", set = {} }\n"),
                "s.toml:22:33: step[1].change.set: `set` does not go with `mx`\n  hint: with `mx` write records",
            ),
            (
                s("[[step]]\nchange = { mx = \"partner.test\" }\n"),
                "s.toml:22:10: step[1].change.records: missing key `records`",
            ),
            (
                s("[[step]]\nchange = { mx = \"partner.test\", records = [[10]] }\n"),
                "s.toml:22:44: step[1].change.records[1]: expected a [preference, exchange] pair, found array\n  hint: records = [[10, \"mx.gateway.test\"]]",
            ),
            (
                s("[[step]]\nchange = { a = \"x.test\", addresses = [\"::1\"] }\n"),
                "s.toml:22:38: step[1].change.addresses: \"::1\" is not an IPv4 address",
            ),
            (
                s("[[step]]\nchange = { dns_fault = \"x.test\", fault = \"Timeout\" }\n"),
                "s.toml:22:42: step[1].change.fault: unknown fault \"Timeout\"\n  hint: ServFail, NxDomain, Silence, Refused or None",
            ),
            (
                s("[[step]]\nchange = { host = \"gateway\" }\n"),
                "s.toml:22:10: step[1].change: nothing to change on host \"gateway\"\n  hint: write address = \"...\", cert = \"...\", peer = { ... } or relay_to_tenant = true|false",
            ),
            (
                s("[[step]]\nchange = { host = \"gateway\", address = \"192.0.2.100\" }\n"),
                "s.toml:22:40: step[1].change.address: 192.0.2.100 is the tenant's address (tenant_address)",
            ),
            (
                s(
                    "[[step]]\nchange = { accepted_domain = \"contoso.tst\", set = { DomainType = \"InternalRelay\" } }\n",
                ),
                "s.toml:22:30: step[1].change.accepted_domain: no accepted domain named \"contoso.tst\"\n  hint: did you mean \"contoso.test\"?",
            ),
            (
                s(
                    "[[step]]\nchange = { inbound_connector = \"Lock to gateway\", set = { ConnectorType = \"OnPremises\" } }\n",
                ),
                "s.toml:22:10: step[1].change: after this change the tenant does not load: InboundConnector[1].RestrictDomainsToIPAddresses: RestrictDomainsToIPAddresses only works on Partner connectors\n  hint: lock down with a separate Partner connector (SenderDomains [\"*\"]) beside this one (exo-behaviour §2.2)",
            ),
            (
                s(
                    "[[step]]\nchange = { inbound_connector = \"Lock to gateway\", set = { SenderIPAddresses = [\"10.0.0.0/8\"] } }\n",
                ),
                "s.toml:22:79: step[1].change.set.SenderIPAddresses: `10.0.0.0/8` is broader than EXO allows: prefixes must be /24 to /32\n  hint: split it into /24 blocks: 10.0.0.0/24, 10.0.1.0/24, 10.0.2.0/24, 10.0.3.0/24, … (65536 blocks)",
            ),
            (
                s("[[step]]\nchange = { add_outbound_connector = { Name = \"Out\" } }\n"),
                "s.toml:22:10: step[1].change: after this change the tenant does not load: OutboundConnector[1].RecipientDomains: the connector covers no recipients\n  hint: write `RecipientDomains = [\"*\"]` to route every external recipient",
            ),
            (
                s("[[step]]\nchange = { transport = { MaxMessageSize = 0 } }\n"),
                "s.toml:22:43: step[1].change.transport.MaxMessageSize: 0 must be a positive number",
            ),
            // Expectations.
            (
                format!("{SEND}expect = {{ stage = \"QUIT\" }}\n"),
                "s.toml:23:20: step[1].expect.stage: unknown stage \"QUIT\"\n  hint: CONNECT, EHLO, STARTTLS, MAIL, RCPT, DATA, END-OF-DATA",
            ),
            (
                format!("{SEND}expect = {{ connector = \"Lock to gatway\" }}\n"),
                "s.toml:23:24: step[1].expect.connector: no inbound connector named \"Lock to gatway\"\n  hint: did you mean \"Lock to gateway\"?",
            ),
            (
                format!("{SEND}expect = {{ mailbox = \"alice@contoso.tst\" }}\n"),
                "s.toml:23:22: step[1].expect.mailbox: alice@contoso.tst is not a mailbox of the tenant\n  hint: did you mean \"alice@contoso.test\"?",
            ),
            (
                format!("{SEND}expect = {{ mailbox = \"nobody@fabrikam.test\" }}\n"),
                "s.toml:23:22: step[1].expect.mailbox: nobody@fabrikam.test is not a mailbox of the tenant\n  hint: add it to [Directory] Mailboxes",
            ),
            (
                format!("{SEND}expect = {{ mailbox = \"alice@contoso.test\", peer = \"gateway\" }}\n"),
                "s.toml:23:44: step[1].expect.peer: one world expectation per table, and this one already has `mailbox`\n  hint: write expect = [{ mailbox = ... }, { peer = ... }]",
            ),
            (
                format!("{SEND}expect = {{ rcpt = \"x\" }}\n"),
                "s.toml:23:12: step[1].expect.rcpt: `rcpt` has no world expectation to qualify here\n  hint: `rcpt` goes with peer",
            ),
            (
                format!("{SEND}expect = {{ recipient = \"alice@contoso.test\", status = \"Sent\" }}\n"),
                "s.toml:23:55: step[1].expect.status: unknown status \"Sent\"\n  hint: Delivered, Pending, Failed, Quarantined or GettingStatus",
            ),
            (
                format!("{SEND}expect = {{ ndr = \"inbox:alice@contoso.test\" }}\n"),
                "s.toml:23:18: step[1].expect.ndr: \"inbox:alice@contoso.test\" names no place\n  hint: write \"mailbox:alice@contoso.test\" or \"peer:gateway\"",
            ),
            (
                format!("{SEND}expect = {{ ndr = \"mailbox:alice@contoso.test\", status = \"5.7\" }}\n"),
                "s.toml:23:57: step[1].expect.status: \"5.7\" is not an enhanced status code\n  hint: e.g. \"5.4.1\" or \"4.4.7\"",
            ),
            (
                format!("{SEND}expect = {{ trace = {{ event = \"BOUNCE\" }} }}\n"),
                "s.toml:23:30: step[1].expect.trace.event: unknown trace event \"BOUNCE\"\n  hint: RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN, TRANSFER, TRANSPORT RULE, DROP, QUARANTINE or REDIRECT",
            ),
            (
                format!("{SEND}expect = {{ trace = {{ connector = \"Nope\" }} }}\n"),
                "s.toml:23:34: step[1].expect.trace.connector: no connector named \"Nope\"\n  hint: connectors: Lock to gateway",
            ),
            (
                format!("{SEND}expect = {{ }}\n"),
                "s.toml:23:10: step[1].expect: this expect checks nothing\n  hint: check the send (reply, stage, connector, accepted, ...) or the world (mailbox, peer, recipient, ndr, trace, queued)",
            ),
        ]
    }

    /// Every message the scenario loader gives, whole: `file:line:col: field: message` and the
    /// hint, one row per snippet (appended to [`BASE`]).
    #[test]
    fn error_messages_table() {
        for (snippet, expected) in rows() {
            let text = format!("{BASE}{snippet}");
            match parse(&text, Path::new("s.toml")) {
                Ok(_) => panic!("expected an error for:\n{snippet}"),
                Err(e) => assert_eq!(e.to_string(), expected, "\n---\n{snippet}"),
            }
        }
    }

    /// The tenant loader knows only the tenant's tables; a `tenant_file` that is a scenario file
    /// is named for what it is here.
    #[test]
    fn a_tenant_file_with_scenario_tables_is_refused_with_the_scenario_hint() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("s.toml");
        let text = "[scenario]\ntenant_file = \"../../scenarios/00-lockdown-5.7.51.toml\"\n";
        let shown = parse(text, &here).expect_err("a scenario is not a tenant file").to_string();
        assert!(
            shown.ends_with("00-lockdown-5.7.51.toml:8:1: scenario: unknown key `scenario`\n  hint: scenario tables belong in scenario files (scenarios/*.toml), not in a tenant file"),
            "{shown}"
        );
    }
}
