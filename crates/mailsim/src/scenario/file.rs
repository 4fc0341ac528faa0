//! The scenario file format (`scenarios/README.md`): a tenant file extended with `[scenario]`,
//! `[[host]]`, `[dns]`, `[retry]` and `[[step]]`. [`load_file`] reads a file and validates all of
//! it before any world starts: the tenant (with the tenant loader, so its errors are the loader's),
//! every host, the DNS records, and every step, including the tenant each `change` produces.
//!
//! Errors are [`ConfigError`]s, shown as `path:line:col: field: problem` and `  hint: ...`. Fields
//! count tables from 1, as the tenant loader does: `step[2].send.from` is the `from` key of the
//! second `[[step]]`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailsim_core::stage::outcome::RetryPolicy;
use mailsim_core::tenant::Tenant;
use mailsim_core::tenant::load::{ConfigError, ConfigWarning, load, load_scenario_tenant, load_with_warnings};
use mailsim_core::trace::{Event, Status};
use mailsim_testkit::dns::{DnsZoneSet, Fault};
use mailsim_testkit::peer::PeerScript;
use toml::de::{DeTable, DeValue};

use super::expect::{Check, Expect, NdrPlace, SendCheck, WorldCheck};
use crate::sim::{CertChoice, HostSpec, SendSpec, TlsUse, WorldSpec};

/// The tenant tables (the tenant file format).
pub const TENANT_TABLES: [&str; 5] =
    ["Transport", "AcceptedDomain", "Directory", "InboundConnector", "OutboundConnector"];
/// The tables a scenario adds.
pub const SCENARIO_TABLES: [&str; 5] = ["scenario", "host", "dns", "retry", "step"];
/// The test PKI's leaf certificates, by the names scenarios use.
pub const TEST_CERTS: [&str; 8] =
    ["gateway", "partner", "wrong-subject", "expired", "untrusted", "wildcard", "san-only", "tenant"];
/// The keys of a peer script (`[host.peer]`).
const PEER_KEYS: [&str; 13] = [
    "host_name",
    "starttls",
    "cert",
    "client_cert",
    "on_connect",
    "on_ehlo",
    "on_mail",
    "on_rcpt",
    "on_rcpt_for",
    "on_data",
    "on_end_of_data",
    "max_message_size",
    "idle_timeout",
];
const BEHAVIOUR_HINT: &str = "a behaviour is \"Accept\", { Reply = [451, \"4.7.1 Try again later\"] }, { Delay = 200 } (ms), \"Drop\" or { Sequence = [...] }";
const SEND_KEYS: [&str; 6] = ["reply", "reply_contains", "stage", "connector", "accepted", "rcpt_replies"];
const WORLD_KINDS: [&str; 6] = ["mailbox", "peer", "recipient", "ndr", "trace", "queued"];
const EXPECT_COMPANIONS: [&str; 7] = ["count", "contains", "rcpt", "tls", "status", "data_contains", "for"];
const STAGES: [&str; 7] = ["CONNECT", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA", "END-OF-DATA"];
const CHANGE_KINDS: [&str; 11] = [
    "inbound_connector",
    "outbound_connector",
    "add_inbound_connector",
    "add_outbound_connector",
    "remove_connector",
    "accepted_domain",
    "transport",
    "host",
    "mx",
    "a",
    "dns_fault",
];
const CHANGE_COMPANIONS: [&str; 8] =
    ["set", "cert", "address", "peer", "relay_to_tenant", "records", "addresses", "fault"];
const DURATION_HINT: &str = "write a number and a unit: 250ms, 30s, 5m, 25h or 2d (or a sum such as 1h30m)";

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
    pub async fn start(&self) -> anyhow::Result<crate::sim::Simulation> {
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
        tenant: Box<Tenant>,
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
}

/// Parses a duration: `250ms`, `30s`, `5m`, `25h`, `2d`, or a sum of those (`1h30m`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total += Duration::from_millis(n.checked_mul(millis)?);
    }
    Some(total)
}

/// Reads and validates a scenario file (and the tenant file and `.eml` files it names).
pub fn load_file(path: &Path) -> Result<Scenario, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: 1,
        column: 1,
        field: String::new(),
        message: format!("cannot read the file: {e}"),
        hint: None,
    })?;
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
    let parsed = DeTable::parse(text).map_err(|e| cx.syntax(&e))?;
    let root = Tbl { t: parsed.get_ref(), span: parsed.span(), field: String::new() };
    let allowed: Vec<&str> = TENANT_TABLES.iter().chain(SCENARIO_TABLES.iter()).copied().collect();
    cx.keys(&root, &allowed)?;
    let mut loader = Loader::new(cx, &root)?;
    loader.scenario(&root)
}

// ---------------------------------------------------------------------------------------------
// Spans and values.

struct Cx<'t> {
    file: String,
    text: &'t str,
    dir: PathBuf,
}

#[derive(Clone)]
struct Node<'a> {
    v: &'a DeValue<'a>,
    span: Range<usize>,
    field: String,
}

#[derive(Clone)]
struct Tbl<'a> {
    t: &'a DeTable<'a>,
    span: Range<usize>,
    field: String,
}

impl<'a> Tbl<'a> {
    fn sub(&self, key: &str) -> String {
        if self.field.is_empty() { key.to_string() } else { format!("{}.{key}", self.field) }
    }

    fn get(&self, key: &str) -> Option<Node<'a>> {
        self.t.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| Node {
            v: v.get_ref(),
            span: v.span(),
            field: self.sub(key),
        })
    }

    fn key_span(&self, key: &str) -> Range<usize> {
        self.t.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(k, _)| k.span()).unwrap_or(self.span.clone())
    }

    /// Entries in the order they were written.
    fn entries(&self) -> Vec<(&'a str, Range<usize>, Node<'a>)> {
        let mut out: Vec<_> = self
            .t
            .iter()
            .map(|(k, v)| {
                let key: &'a str = k.get_ref().as_ref();
                (key, k.span(), Node { v: v.get_ref(), span: v.span(), field: self.sub(key) })
            })
            .collect();
        out.sort_by_key(|(_, span, _)| span.start);
        out
    }

    /// The keys present out of `keys`, in the order they were written.
    fn present(&self, keys: &[&str]) -> Vec<&'a str> {
        self.entries().into_iter().map(|(k, _, _)| k).filter(|k| keys.contains(k)).collect()
    }
}

fn with_hint(mut e: ConfigError, hint: impl Into<String>) -> ConfigError {
    e.hint = Some(hint.into());
    e
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo.
fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let (best, d) = candidates.into_iter().map(|c| (c, edit_distance(word, c))).min_by_key(|(_, d)| *d)?;
    (d <= (word.chars().count() / 3).max(2)).then_some(best)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

fn to_toml(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(i64::MAX)),
        DeValue::Float(f) => toml::Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_toml(x.get_ref())).collect()),
        DeValue::Table(t) => {
            toml::Value::Table(t.iter().map(|(k, v)| (k.get_ref().to_string(), to_toml(v.get_ref()))).collect())
        }
    }
}

impl Cx<'_> {
    fn err(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.clone(),
            line,
            column,
            field: field.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn syntax(&self, e: &toml::de::Error) -> ConfigError {
        self.err(&e.span().unwrap_or(0..0), "", e.message().trim().to_string())
    }

    fn keys(&self, t: &Tbl<'_>, allowed: &[&str]) -> Result<(), ConfigError> {
        for (key, span, _) in t.entries() {
            if allowed.contains(&key) {
                continue;
            }
            let e = self.err(&span, &t.sub(key), format!("unknown key `{key}`"));
            return Err(match allowed.iter().find(|a| a.eq_ignore_ascii_case(key)) {
                Some(k) => with_hint(e, format!("keys are case-sensitive: write `{k}`")),
                None => match closest(key, allowed.iter().copied()) {
                    Some(k) => with_hint(e, format!("did you mean `{k}`?")),
                    None => with_hint(e, format!("known keys here: {}", allowed.join(", "))),
                },
            });
        }
        Ok(())
    }

    fn type_error(&self, n: &Node<'_>, expected: &str) -> ConfigError {
        self.err(&n.span, &n.field, format!("expected {expected}, found {}", n.v.type_str()))
    }

    fn table<'a>(&self, n: &Node<'a>) -> Result<Tbl<'a>, ConfigError> {
        match n.v {
            DeValue::Table(t) => Ok(Tbl { t, span: n.span.clone(), field: n.field.clone() }),
            _ => Err(self.type_error(n, "a table")),
        }
    }

    fn string<'a>(&self, n: &Node<'a>) -> Result<&'a str, ConfigError> {
        match n.v {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.type_error(n, "a string")),
        }
    }

    fn boolean(&self, n: &Node<'_>) -> Result<bool, ConfigError> {
        n.v.as_bool().ok_or_else(|| self.type_error(n, "true or false"))
    }

    fn count(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        match n.v {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| self.err(&n.span, &n.field, "expected a whole number of 0 or more")),
            _ => Err(self.type_error(n, "a whole number")),
        }
    }

    /// A string, or an array of strings.
    fn strings(&self, n: &Node<'_>) -> Result<Vec<String>, ConfigError> {
        match n.v {
            DeValue::String(s) => Ok(vec![s.to_string()]),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let node = Node { v: item.get_ref(), span: item.span(), field: format!("{}[{}]", n.field, i + 1) };
                    self.string(&node).map(str::to_string)
                })
                .collect(),
            _ => Err(self.type_error(n, "a string or an array of strings")),
        }
    }

    fn duration(&self, n: &Node<'_>) -> Result<Duration, ConfigError> {
        let text = self.string(n)?;
        parse_duration(text)
            .ok_or_else(|| with_hint(self.err(&n.span, &n.field, format!("bad duration {text:?}")), DURATION_HINT))
    }

    fn ip(&self, n: &Node<'_>) -> Result<IpAddr, ConfigError> {
        let text = self.string(n)?;
        text.trim().parse().map_err(|_| {
            with_hint(self.err(&n.span, &n.field, format!("{text:?} is not an IP address")), "e.g. \"198.51.100.7\"")
        })
    }

    fn req<'a>(&self, t: &Tbl<'a>, key: &str) -> Result<Node<'a>, ConfigError> {
        t.get(key).ok_or_else(|| self.err(&t.span, &t.sub(key), format!("missing key `{key}`")))
    }

    /// A certificate: a test-PKI name, `"none"` (when `none_ok`), or an inline table.
    fn cert(&self, n: &Node<'_>, none_ok: bool) -> Result<Option<CertChoice>, ConfigError> {
        let shown = "test certificates: gateway, partner, wrong-subject, expired, untrusted, wildcard, san-only, tenant; or { cn = \"mail.x.test\", sans = [\"mail.x.test\"], expired = false, untrusted = false }";
        match n.v {
            DeValue::String(s) if none_ok && s.eq_ignore_ascii_case("none") => Ok(None),
            DeValue::String(s) => {
                let wanted = s.to_ascii_lowercase().replace('_', "-");
                if TEST_CERTS.contains(&wanted.as_str()) {
                    return Ok(Some(CertChoice::Pki(wanted)));
                }
                let e = self.err(&n.span, &n.field, format!("no test certificate named {s:?}"));
                Err(match closest(&wanted, TEST_CERTS) {
                    Some(c) => with_hint(e, format!("did you mean {c:?}?")),
                    None => with_hint(e, if none_ok { format!("{shown}; or \"none\"") } else { shown.to_string() }),
                })
            }
            DeValue::Table(_) => {
                let t = self.table(n)?;
                self.keys(&t, &["cn", "sans", "expired", "untrusted"])?;
                let common_name = self.string(&self.req(&t, "cn")?)?.to_string();
                let dns_sans = match t.get("sans") {
                    Some(s) => self.strings(&s)?,
                    None => Vec::new(),
                };
                let flag = |k: &str| t.get(k).map(|n| self.boolean(&n)).transpose().map(|b| b.unwrap_or(false));
                Ok(Some(CertChoice::Minted {
                    common_name,
                    dns_sans,
                    expired: flag("expired")?,
                    untrusted: flag("untrusted")?,
                }))
            }
            _ => Err(with_hint(self.type_error(n, "a certificate name or table"), shown)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loader: state that steps change as they are validated in order.

struct HostState {
    name: String,
    declared: IpAddr,
    peer: Option<toml::Table>,
    relay: bool,
}

struct Loader<'t> {
    cx: Cx<'t>,
    tenant_declared: IpAddr,
    hosts: Vec<HostState>,
    initial_hosts: Vec<HostSpec>,
    tenant_doc: toml::Table,
    initial_tenant: Tenant,
    warnings: Vec<ConfigWarning>,
    inbound_names: BTreeSet<String>,
    all_connector_names: BTreeSet<String>,
    mailboxes: BTreeSet<String>,
}

impl<'t> Loader<'t> {
    fn new(cx: Cx<'t>, root: &Tbl<'_>) -> Result<Self, ConfigError> {
        let scenario = match root.get("scenario") {
            Some(n) => Some(cx.table(&n)?),
            None => None,
        };
        if let Some(s) = &scenario {
            cx.keys(s, &["name", "description", "tenant_file", "tenant_address"])?;
        }
        let tenant_declared = match scenario.as_ref().and_then(|s| s.get("tenant_address")) {
            Some(n) => cx.ip(&n)?,
            None => IpAddr::from([192, 0, 2, 100]),
        };
        let (tenant, warnings, tenant_doc) = match scenario.as_ref().and_then(|s| s.get("tenant_file")) {
            Some(n) => {
                if let Some(k) = TENANT_TABLES.iter().find(|k| root.get(k).is_some()) {
                    return Err(with_hint(
                        cx.err(
                            &root.key_span(k),
                            k,
                            "this scenario names a tenant_file, so it has no tenant tables of its own",
                        ),
                        "move the table into the tenant file, or remove tenant_file",
                    ));
                }
                let relative = cx.string(&n)?;
                let path = cx.dir.join(relative);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| cx.err(&n.span, &n.field, format!("cannot read {}: {e}", path.display())))?;
                let shown = path.display().to_string();
                let loaded = load_with_warnings(&text, &shown)?;
                let doc = DeTable::parse(&text).map_err(|e| cx.err(&n.span, &n.field, e.message().to_string()))?;
                let toml::Value::Table(doc) = to_toml(&DeValue::Table(doc.into_inner())) else {
                    unreachable!("a table converts to a table")
                };
                (loaded.tenant, loaded.warnings, doc)
            }
            None => {
                let loaded = load_scenario_tenant(cx.text, &cx.file)?;
                let mut doc = toml::Table::new();
                for k in TENANT_TABLES {
                    if let Some(n) = root.get(k) {
                        doc.insert(k.to_string(), to_toml(n.v));
                    }
                }
                (loaded.tenant, loaded.warnings, doc)
            }
        };
        let mut loader = Loader {
            cx,
            tenant_declared,
            hosts: Vec::new(),
            initial_hosts: Vec::new(),
            tenant_doc,
            initial_tenant: tenant.clone(),
            warnings,
            inbound_names: BTreeSet::new(),
            all_connector_names: BTreeSet::new(),
            mailboxes: BTreeSet::new(),
        };
        loader.note_tenant(&tenant);
        Ok(loader)
    }

    fn note_tenant(&mut self, tenant: &Tenant) {
        for c in &tenant.inbound_connectors {
            self.inbound_names.insert(c.name.clone());
            self.all_connector_names.insert(c.name.clone());
        }
        for c in &tenant.outbound_connectors {
            self.all_connector_names.insert(c.name.clone());
        }
        self.mailboxes.extend(tenant.mailboxes.iter().map(|m| m.to_ascii_lowercase()));
    }

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
                return Err(with_hint(self.cx.type_error(&n, "an array of tables"), "write each step as [[step]]"));
            };
            for (i, item) in items.iter().enumerate() {
                let node = Node { v: item.get_ref(), span: item.span(), field: format!("step[{}]", i + 1) };
                steps.push(self.step(&node, i + 1)?);
            }
        }
        let mut world = WorldSpec::new(self.initial_tenant.clone());
        world.tenant_declared = self.tenant_declared;
        world.hosts = self.initial_hosts.clone();
        world.dns = dns;
        world.retry = retry;
        Ok(Scenario {
            name,
            description,
            file: self.cx.file.clone(),
            world,
            steps,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    fn unknown_host(&self, n: &Node<'_>, name: &str) -> ConfigError {
        let e = self.cx.err(&n.span, &n.field, format!("no host named {name:?}"));
        let names = self.host_names();
        match closest(name, names.iter().copied()) {
            Some(c) => with_hint(e, format!("did you mean {c:?}?")),
            None if names.is_empty() => {
                with_hint(e, "declare it: [[host]] with name = \"...\" and address = \"...\" (no host is declared)")
            }
            None => with_hint(e, format!("declared hosts: {}", names.join(", "))),
        }
    }

    fn host_index(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        let name = self.cx.string(n)?;
        self.hosts.iter().position(|h| h.name == name).ok_or_else(|| self.unknown_host(n, name))
    }

    fn host_with_peer(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        let i = self.host_index(n)?;
        if self.hosts[i].peer.is_none() {
            return Err(with_hint(
                self.cx.err(
                    &n.span,
                    &n.field,
                    format!("host {:?} receives no mail: it has no peer", self.hosts[i].name),
                ),
                "add a [host.peer] table to its [[host]] (peers start with the world)",
            ));
        }
        Ok(i)
    }

    fn check_address_free(&self, n: &Node<'_>, address: IpAddr, except: Option<usize>) -> Result<(), ConfigError> {
        if address == self.tenant_declared {
            return Err(self.cx.err(&n.span, &n.field, format!("{address} is the tenant's address (tenant_address)")));
        }
        if let Some((_, h)) = self.hosts.iter().enumerate().find(|(i, h)| h.declared == address && Some(*i) != except) {
            return Err(with_hint(
                self.cx.err(&n.span, &n.field, format!("{address} is already host {:?}'s address", h.name)),
                "every host has an address of its own",
            ));
        }
        Ok(())
    }

    fn hosts(&mut self, n: &Node<'_>) -> Result<(), ConfigError> {
        let DeValue::Array(items) = n.v else {
            return Err(with_hint(self.cx.type_error(n, "an array of tables"), "write each host as [[host]]"));
        };
        for (i, item) in items.iter().enumerate() {
            let node = Node { v: item.get_ref(), span: item.span(), field: format!("host[{}]", i + 1) };
            let t = self.cx.table(&node)?;
            self.cx.keys(&t, &["name", "address", "cert", "relay_to_tenant", "peer"])?;
            let name_node = self.cx.req(&t, "name")?;
            let name = self.cx.string(&name_node)?.trim().to_string();
            if name.is_empty() || name.eq_ignore_ascii_case("tenant") || name.eq_ignore_ascii_case("dns") {
                return Err(with_hint(
                    self.cx.err(&name_node.span, &name_node.field, format!("{name:?} cannot name a host")),
                    "\"tenant\" and \"dns\" are the world's own; pick a role name such as \"gateway\" or \"partner\"",
                ));
            }
            if self.hosts.iter().any(|h| h.name == name) {
                return Err(self.cx.err(
                    &name_node.span,
                    &name_node.field,
                    format!("a host named {name:?} is already declared"),
                ));
            }
            let address_node = self.cx.req(&t, "address")?;
            let declared = self.cx.ip(&address_node)?;
            self.check_address_free(&address_node, declared, None)?;
            let cert = match t.get("cert") {
                Some(c) => self.cx.cert(&c, true)?,
                None => None,
            };
            let (script, peer) = match t.get("peer") {
                Some(p) => {
                    let (script, table) = self.peer_script(&name, &self.cx.table(&p)?, None)?;
                    (Some(script), Some(table))
                }
                None => (None, None),
            };
            let relay = match t.get("relay_to_tenant") {
                Some(r) => {
                    let relay = self.cx.boolean(&r)?;
                    if relay && peer.is_none() {
                        return Err(with_hint(
                            self.cx.err(&r.span, &r.field, "only a host that receives mail can relay it"),
                            "add a [host.peer] table for it",
                        ));
                    }
                    relay
                }
                None => false,
            };
            self.initial_hosts.push(HostSpec {
                name: name.clone(),
                declared,
                cert,
                peer: script,
                relays_to_tenant: relay,
            });
            self.hosts.push(HostState { name, declared, peer, relay });
        }
        Ok(())
    }

    /// A peer script from `[host.peer]` keys over `base` (the script in force, for changes).
    fn peer_script(
        &self,
        host: &str,
        t: &Tbl<'_>,
        base: Option<&toml::Table>,
    ) -> Result<(PeerScript, toml::Table), ConfigError> {
        if let Some((_, span, _)) = t.entries().into_iter().find(|(k, _, _)| *k == "forward_to") {
            return Err(with_hint(
                self.cx.err(&span, &t.sub("forward_to"), "unknown key `forward_to`"),
                "write relay_to_tenant = true on the [[host]] instead",
            ));
        }
        self.cx.keys(t, &PEER_KEYS)?;
        let mut table = base.cloned().unwrap_or_else(|| {
            let mut m = toml::Table::new();
            m.insert("host_name".to_string(), toml::Value::String(format!("{host}.test")));
            m
        });
        for (key, _, node) in t.entries() {
            let value = if key == "idle_timeout" && node.v.is_str() {
                toml::Value::Integer(self.cx.duration(&node)?.as_millis().min(i64::MAX as u128) as i64)
            } else {
                to_toml(node.v)
            };
            let mut single = toml::Table::new();
            single.insert(key.to_string(), value.clone());
            if let Err(e) = toml::Value::Table(single).try_into::<PeerScript>() {
                let hint = match key {
                    "starttls" => "Offer, Require or None".to_string(),
                    "cert" => "RightName, WrongName, Expired, Untrusted or { Named = \"mail.x.test\" }".to_string(),
                    "client_cert" => "Ignore, Request or Require".to_string(),
                    "idle_timeout" => DURATION_HINT.to_string(),
                    "on_rcpt_for" => format!("a table of address = behaviour; {BEHAVIOUR_HINT}"),
                    k if k.starts_with("on_") => BEHAVIOUR_HINT.to_string(),
                    _ => String::new(),
                };
                let err = self.cx.err(&node.span, &node.field, e.message().trim().to_string());
                return Err(if hint.is_empty() { err } else { with_hint(err, hint) });
            }
            table.insert(key.to_string(), value);
        }
        let script = toml::Value::Table(table.clone())
            .try_into::<PeerScript>()
            .map_err(|e| self.cx.err(&t.span, &t.field, e.message().trim().to_string()))?;
        Ok((script, table))
    }

    fn dns(&self, t: &Tbl<'_>) -> Result<DnsZoneSet, ConfigError> {
        let cx = &self.cx;
        cx.keys(t, &["records"])?;
        let Some(n) = t.get("records") else { return Ok(DnsZoneSet::new()) };
        let text = cx.string(&n)?;
        let hint = "zone-file lines with absolute names: `partner.test. MX 10 mx.partner.test.` or `mx.partner.test. A 203.0.113.25`";
        let mut directives = String::new();
        let mut groups: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        let mut last_origin: Option<String> = None;
        let mut search_from = n.span.start;
        for raw in text.lines() {
            // Where this line is in the file (for errors): the next occurrence inside the string.
            let needle = raw.trim();
            let offset = match cx.text.get(search_from..n.span.end).and_then(|s| s.find(needle)) {
                Some(p) if !needle.is_empty() => {
                    search_from += p + needle.len();
                    search_from - needle.len()
                }
                _ => n.span.start,
            };
            let at = offset..offset;
            let line = strip_zone_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(directive) = line.trim_start().strip_prefix('$') {
                if directive.to_ascii_uppercase().starts_with("TTL") {
                    directives.push_str(line.trim());
                    directives.push('\n');
                    continue;
                }
                return Err(with_hint(
                    cx.err(&at, &n.field, format!("`{}` is not supported", line.trim())),
                    "write absolute names (ending with a dot); records are grouped into zones by their last two labels",
                ));
            }
            if line.starts_with([' ', '\t']) {
                let Some(origin) = &last_origin else {
                    return Err(with_hint(cx.err(&at, &n.field, "a record without a name"), hint));
                };
                groups.entry(origin.clone()).or_default().push((offset, line.to_string()));
                continue;
            }
            let owner = line.split_whitespace().next().unwrap_or_default();
            if owner == "@" || owner == "." || !owner.ends_with('.') {
                return Err(with_hint(
                    cx.err(&at, &n.field, format!("`{owner}` is not an absolute name")),
                    format!("end it with a dot: `{}.`", owner.trim_end_matches('.')),
                ));
            }
            let labels: Vec<&str> = owner.trim_end_matches('.').split('.').collect();
            let origin = labels[labels.len().saturating_sub(2)..].join(".").to_ascii_lowercase();
            groups.entry(origin.clone()).or_default().push((offset, line.to_string()));
            last_origin = Some(origin);
        }
        let mut zones = DnsZoneSet::new();
        for (origin, lines) in &groups {
            let body: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
            match zones.clone().with_zone_text(origin, &format!("{directives}{body}")) {
                Ok(z) => zones = z,
                Err(e) => {
                    for (offset, l) in lines {
                        if let Err(e) = DnsZoneSet::from_zone_text(origin, &format!("{directives}{l}\n")) {
                            return Err(with_hint(cx.err(&(*offset..*offset), &n.field, e.0), hint));
                        }
                    }
                    return Err(with_hint(cx.err(&n.span, &n.field, e.0), hint));
                }
            }
        }
        zones.check().map_err(|e| with_hint(cx.err(&n.span, &n.field, e.0), hint))?;
        Ok(zones)
    }

    fn retry(&self, t: &Tbl<'_>) -> Result<RetryPolicy, ConfigError> {
        let cx = &self.cx;
        cx.keys(t, &["first_interval", "first_count", "later_interval", "expiry", "max_hop_count"])?;
        let mut policy = RetryPolicy::default();
        if let Some(n) = t.get("first_interval") {
            policy.first_interval = cx.duration(&n)?;
        }
        if let Some(n) = t.get("first_count") {
            policy.first_count = u32::try_from(cx.count(&n)?).unwrap_or(u32::MAX);
        }
        if let Some(n) = t.get("later_interval") {
            policy.later_interval = cx.duration(&n)?;
        }
        if let Some(n) = t.get("expiry") {
            policy.expiry = cx.duration(&n)?;
        }
        if let Some(n) = t.get("max_hop_count") {
            policy.max_hop_count = cx.count(&n)?;
        }
        for (key, d) in [("first_interval", policy.first_interval), ("later_interval", policy.later_interval)] {
            if d.is_zero()
                && let Some(n) = t.get(key)
            {
                return Err(cx.err(&n.span, &n.field, "a retry interval must be longer than zero"));
            }
        }
        Ok(policy)
    }

    fn step(&mut self, n: &Node<'_>, number: usize) -> Result<Step, ConfigError> {
        let t = self.cx.table(n)?;
        self.cx.keys(&t, &["name", "send", "advance", "change", "expect"])?;
        let actions = t.present(&["send", "advance", "change"]);
        if actions.len() > 1 {
            return Err(with_hint(
                self.cx.err(
                    &t.key_span(actions[1]),
                    &t.sub(actions[1]),
                    format!("a step has exactly one action, and this one already has `{}`", actions[0]),
                ),
                "split it into two [[step]] tables",
            ));
        }
        if actions.is_empty() && t.get("expect").is_none() {
            return Err(with_hint(
                self.cx.err(&t.span, &t.field, "this step does nothing"),
                "give it one of send, advance or change, or an expect",
            ));
        }
        let name = t.get("name").map(|n| self.cx.string(&n).map(str::to_string)).transpose()?;
        let action = match actions.first().copied() {
            Some("send") => Action::Send(Box::new(self.send(&t.get("send").expect("present"))?)),
            Some("advance") => Action::Advance(self.cx.duration(&t.get("advance").expect("present"))?),
            Some("change") => Action::Change(self.change(&t.get("change").expect("present"), number)?),
            _ => Action::Check,
        };
        let expect = match t.get("expect") {
            Some(e) => self.expectations(&e, matches!(action, Action::Send(_)))?,
            None => Vec::new(),
        };
        Ok(Step { number, line: self.cx.line(&t.span), name, action, expect })
    }

    fn send(&mut self, n: &Node<'_>) -> Result<SendSpec, ConfigError> {
        let t = self.cx.table(n)?;
        self.cx
            .keys(&t, &["from", "tls", "cert", "ehlo", "mail_from", "rcpt_to", "subject", "body", "headers", "eml"])?;
        let from_node = self.cx.req(&t, "from")?;
        let from = self.cx.string(&from_node)?.to_string();
        let host = if self.hosts.iter().any(|h| h.name == from) {
            from
        } else if let Ok(ip) = from.parse::<IpAddr>() {
            // An undeclared sender at a literal address: an implicit host of that name.
            match self.hosts.iter().find(|h| h.declared == ip) {
                Some(h) => h.name.clone(),
                None => {
                    self.check_address_free(&from_node, ip, None)?;
                    self.initial_hosts.push(HostSpec::new(&from, &from));
                    self.hosts.push(HostState { name: from.clone(), declared: ip, peer: None, relay: false });
                    from
                }
            }
        } else {
            return Err(self.unknown_host(&from_node, &from));
        };
        let mail_from = self.cx.string(&self.cx.req(&t, "mail_from")?)?.trim().to_string();
        let rcpt_node = self.cx.req(&t, "rcpt_to")?;
        let rcpt_to = self.cx.strings(&rcpt_node)?;
        if rcpt_to.is_empty() {
            return Err(self.cx.err(&rcpt_node.span, &rcpt_node.field, "no recipients"));
        }
        let mut spec = SendSpec::new(&host, &mail_from, &[]);
        spec.rcpt_to = rcpt_to;
        if let Some(tls) = t.get("tls") {
            spec.tls = if self.cx.boolean(&tls)? { TlsUse::StartTls } else { TlsUse::None };
        }
        if let Some(c) = t.get("cert") {
            if spec.tls != TlsUse::StartTls {
                return Err(with_hint(
                    self.cx.err(&c.span, &c.field, "a certificate is only presented over TLS"),
                    "add tls = true to the send",
                ));
            }
            spec.cert = Some(self.cx.cert(&c, true)?);
        }
        if let Some(e) = t.get("ehlo") {
            spec.ehlo = Some(self.cx.string(&e)?.to_string());
        }
        if let Some(s) = t.get("subject") {
            spec.subject = self.cx.string(&s)?.to_string();
        }
        if let Some(b) = t.get("body") {
            spec.body = self.cx.string(&b)?.to_string();
        }
        if let Some(h) = t.get("headers") {
            let ht = self.cx.table(&h)?;
            for (key, _, value) in ht.entries() {
                spec.headers.push((key.to_string(), self.cx.string(&value)?.to_string()));
            }
        }
        if let Some(e) = t.get("eml") {
            if let Some(k) = t.present(&["subject", "body", "headers"]).first() {
                return Err(with_hint(
                    self.cx.err(&t.key_span(k), &t.sub(k), format!("`{k}` and `eml` do not go together")),
                    "the .eml file is the whole message: put the header or text in it",
                ));
            }
            let relative = self.cx.string(&e)?;
            let path = self.cx.dir.join(relative);
            let data = std::fs::read_to_string(&path)
                .map_err(|err| self.cx.err(&e.span, &e.field, format!("cannot read {}: {err}", path.display())))?;
            spec.data = Some(data);
        }
        Ok(spec)
    }

    /// A table, or an array of tables (`expect = [{...}, {...}]`), each named by its index.
    fn tables<'n>(&self, n: &Node<'n>) -> Result<Vec<Tbl<'n>>, ConfigError> {
        match n.v {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    self.cx.table(&Node {
                        v: item.get_ref(),
                        span: item.span(),
                        field: format!("{}[{}]", n.field, i + 1),
                    })
                })
                .collect(),
            _ => Ok(vec![self.cx.table(n)?]),
        }
    }

    fn change(&mut self, n: &Node<'_>, step: usize) -> Result<Vec<Change>, ConfigError> {
        let tables = self.tables(n)?;
        let mut out = Vec::new();
        for t in tables {
            out.extend(self.change_one(&t, step)?);
        }
        Ok(out)
    }

    fn change_one(&mut self, t: &Tbl<'_>, step: usize) -> Result<Vec<Change>, ConfigError> {
        let all: Vec<&str> = CHANGE_KINDS.iter().chain(CHANGE_COMPANIONS.iter()).copied().collect();
        self.cx.keys(t, &all)?;
        let kinds = t.present(&CHANGE_KINDS);
        let Some(&kind) = kinds.first() else {
            return Err(with_hint(
                self.cx.err(&t.span, &t.field, "this change names nothing to change"),
                format!("a change has one of: {}", CHANGE_KINDS.join(", ")),
            ));
        };
        if let Some(second) = kinds.get(1) {
            return Err(with_hint(
                self.cx.err(
                    &t.key_span(second),
                    &t.sub(second),
                    format!("one change per table, and this one already has `{kind}`"),
                ),
                "write change = [{ ... }, { ... }] to make several changes in one step",
            ));
        }
        let companions: &[&str] = match kind {
            "inbound_connector" | "outbound_connector" | "accepted_domain" => &["set"],
            "host" => &["cert", "address", "peer", "relay_to_tenant"],
            "mx" => &["records"],
            "a" => &["addresses"],
            "dns_fault" => &["fault"],
            _ => &[],
        };
        for key in t.present(&CHANGE_COMPANIONS) {
            if !companions.contains(&key) {
                let e = self.cx.err(&t.key_span(key), &t.sub(key), format!("`{key}` does not go with `{kind}`"));
                return Err(with_hint(
                    e,
                    if companions.is_empty() {
                        format!("`{kind}` takes nothing else")
                    } else {
                        format!("with `{kind}` write {}", companions.join(" or "))
                    },
                ));
            }
        }
        let required: Option<&str> = match kind {
            "inbound_connector" | "outbound_connector" | "accepted_domain" => Some("set"),
            "mx" => Some("records"),
            "a" => Some("addresses"),
            "dns_fault" => Some("fault"),
            _ => None,
        };
        if let Some(r) = required {
            self.cx.req(t, r)?;
        }
        let node = t.get(kind).expect("present");
        match kind {
            "host" => self.change_host(t, &node),
            "mx" => {
                let domain = self.cx.string(&node)?.trim().to_string();
                let records_node = t.get("records").expect("required");
                let DeValue::Array(items) = records_node.v else {
                    return Err(with_hint(
                        self.cx.type_error(&records_node, "an array"),
                        "records = [[10, \"mx.gateway.test\"]]",
                    ));
                };
                let mut records = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let rn = Node {
                        v: item.get_ref(),
                        span: item.span(),
                        field: format!("{}[{}]", records_node.field, i + 1),
                    };
                    let pair = match rn.v {
                        DeValue::Array(p) if p.len() == 2 => p,
                        _ => {
                            return Err(with_hint(
                                self.cx.type_error(&rn, "a [preference, exchange] pair"),
                                "records = [[10, \"mx.gateway.test\"]]",
                            ));
                        }
                    };
                    let pref_node = Node { v: pair[0].get_ref(), span: pair[0].span(), field: rn.field.clone() };
                    let preference = u16::try_from(self.cx.count(&pref_node)?)
                        .map_err(|_| self.cx.err(&pref_node.span, &rn.field, "a preference is 0 to 65535"))?;
                    let exchange_node = Node { v: pair[1].get_ref(), span: pair[1].span(), field: rn.field.clone() };
                    records.push((preference, self.cx.string(&exchange_node)?.to_string()));
                }
                let mut check = DnsZoneSet::new();
                check.set_mx(&domain, records.iter().map(|(p, e)| (*p, e.as_str())));
                check.check().map_err(|e| self.cx.err(&records_node.span, &records_node.field, e.0))?;
                Ok(vec![Change::Mx { domain, records }])
            }
            "a" => {
                let name = self.cx.string(&node)?.trim().to_string();
                let addresses_node = t.get("addresses").expect("required");
                let mut addresses = Vec::new();
                for text in self.cx.strings(&addresses_node)? {
                    addresses.push(text.trim().parse::<Ipv4Addr>().map_err(|_| {
                        self.cx.err(
                            &addresses_node.span,
                            &addresses_node.field,
                            format!("{text:?} is not an IPv4 address"),
                        )
                    })?);
                }
                Ok(vec![Change::A { name, addresses }])
            }
            "dns_fault" => {
                let name = self.cx.string(&node)?.trim().to_string();
                let fault_node = t.get("fault").expect("required");
                let text = self.cx.string(&fault_node)?;
                let fault = match text.to_ascii_lowercase().as_str() {
                    "servfail" => Some(Fault::ServFail),
                    "nxdomain" => Some(Fault::NxDomain),
                    "silence" => Some(Fault::Silence),
                    "refused" => Some(Fault::Refused),
                    "none" => None,
                    _ => {
                        return Err(with_hint(
                            self.cx.err(&fault_node.span, &fault_node.field, format!("unknown fault {text:?}")),
                            "ServFail, NxDomain, Silence, Refused or None",
                        ));
                    }
                };
                Ok(vec![Change::DnsFault { name, fault }])
            }
            _ => self.change_tenant(t, kind, &node, step).map(|c| vec![c]),
        }
    }

    fn change_host(&mut self, t: &Tbl<'_>, node: &Node<'_>) -> Result<Vec<Change>, ConfigError> {
        let i = self.host_index(node)?;
        let host = self.hosts[i].name.clone();
        let mut out = Vec::new();
        if t.present(&["cert", "address", "peer", "relay_to_tenant"]).is_empty() {
            return Err(with_hint(
                self.cx.err(&t.span, &t.field, format!("nothing to change on host {host:?}")),
                "write address = \"...\", cert = \"...\", peer = { ... } or relay_to_tenant = true|false",
            ));
        }
        if let Some(a) = t.get("address") {
            let address = self.cx.ip(&a)?;
            self.check_address_free(&a, address, Some(i))?;
            self.hosts[i].declared = address;
            out.push(Change::MoveHost { host: host.clone(), address });
        }
        if let Some(c) = t.get("cert") {
            out.push(Change::HostCert { host: host.clone(), cert: self.cx.cert(&c, true)? });
        }
        let peer = t.get("peer");
        let relay = t.get("relay_to_tenant");
        if peer.is_some() || relay.is_some() {
            self.host_with_peer(node)?;
            let base = self.hosts[i].peer.clone();
            let (script, table) = match &peer {
                Some(p) => self.peer_script(&host, &self.cx.table(p)?, base.as_ref())?,
                None => {
                    let table = base.expect("a peer");
                    let script = toml::Value::Table(table.clone())
                        .try_into::<PeerScript>()
                        .map_err(|e| self.cx.err(&t.span, &t.field, e.message().to_string()))?;
                    (script, table)
                }
            };
            let relay = match relay {
                Some(r) => self.cx.boolean(&r)?,
                None => self.hosts[i].relay,
            };
            self.hosts[i].peer = Some(table);
            self.hosts[i].relay = relay;
            out.push(Change::Peer { host, script: Box::new(script), relay_to_tenant: relay });
        }
        Ok(out)
    }

    fn change_tenant(&mut self, t: &Tbl<'_>, kind: &str, node: &Node<'_>, step: usize) -> Result<Change, ConfigError> {
        let cx = &self.cx;
        let mut doc = self.tenant_doc.clone();
        let mut edited: Option<Tbl<'_>> = None;
        let what;
        let merge = |target: &mut toml::Table, set: &Tbl<'_>| {
            for (k, _, v) in set.entries() {
                target.insert(k.to_string(), to_toml(v.v));
            }
        };
        match kind {
            "inbound_connector" | "outbound_connector" | "accepted_domain" => {
                let name = cx.string(node)?;
                let (array_key, name_key, noun) = match kind {
                    "inbound_connector" => ("InboundConnector", "Name", "inbound connector"),
                    "outbound_connector" => ("OutboundConnector", "Name", "outbound connector"),
                    _ => ("AcceptedDomain", "DomainName", "accepted domain"),
                };
                let items = doc.get_mut(array_key).and_then(toml::Value::as_array_mut);
                let names: Vec<String> = items
                    .as_ref()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.get(name_key).and_then(toml::Value::as_str).map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let Some(target) = items.and_then(|a| {
                    a.iter_mut().find(|c| {
                        c.get(name_key).and_then(toml::Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                }) else {
                    let e = cx.err(&node.span, &node.field, format!("no {noun} named {name:?}"));
                    return Err(match closest(name, names.iter().map(String::as_str)) {
                        Some(c) => with_hint(e, format!("did you mean {c:?}?")),
                        None if names.is_empty() => with_hint(e, format!("the tenant has no {noun}s at this step")),
                        None => with_hint(e, format!("{noun}s at this step: {}", names.join(", "))),
                    });
                };
                let set = cx.table(&t.get("set").expect("required"))?;
                let toml::Value::Table(target) = target else { unreachable!("array of tables") };
                merge(target, &set);
                let keys: Vec<&str> = set.entries().into_iter().map(|(k, _, _)| k).collect();
                what = format!("{noun} {name:?}: set {}", keys.join(", "));
                edited = Some(set);
            }
            "add_inbound_connector" | "add_outbound_connector" => {
                let table = cx.table(node)?;
                let array_key = if kind == "add_inbound_connector" { "InboundConnector" } else { "OutboundConnector" };
                let toml::Value::Table(added) = to_toml(node.v) else { unreachable!("checked to be a table") };
                let entry = doc.entry(array_key.to_string()).or_insert_with(|| toml::Value::Array(Vec::new()));
                let Some(array) = entry.as_array_mut() else { unreachable!("the loader accepted it as an array") };
                array.push(toml::Value::Table(added));
                what = format!(
                    "added {} {:?}",
                    if kind == "add_inbound_connector" { "inbound connector" } else { "outbound connector" },
                    table.get("Name").and_then(|n| cx.string(&n).ok()).unwrap_or("?")
                );
                edited = Some(table);
            }
            "remove_connector" => {
                let name = cx.string(node)?;
                let mut removed = false;
                for key in ["InboundConnector", "OutboundConnector"] {
                    if let Some(a) = doc.get_mut(key).and_then(toml::Value::as_array_mut) {
                        let before = a.len();
                        a.retain(|c| {
                            !c.get("Name").and_then(toml::Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name))
                        });
                        removed |= a.len() != before;
                    }
                }
                if !removed {
                    let e = cx.err(&node.span, &node.field, format!("no connector named {name:?}"));
                    return Err(match closest(name, self.all_connector_names.iter().map(String::as_str)) {
                        Some(c) => with_hint(e, format!("did you mean {c:?}?")),
                        None => with_hint(e, "the tenant has no connector of that name at this step"),
                    });
                }
                what = format!("removed connector {name:?}");
            }
            "transport" => {
                let table = cx.table(node)?;
                let entry =
                    doc.entry("Transport".to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(target) = entry.as_table_mut() else { unreachable!("the loader accepted it as a table") };
                merge(target, &table);
                what = "transport settings".to_string();
                edited = Some(table);
            }
            _ => unreachable!("change kinds are checked"),
        }
        let text = toml::to_string(&doc).map_err(|e| cx.err(&t.span, &t.field, e.to_string()))?;
        let tenant = load(&text, &format!("{} (after step[{step}])", cx.file)).map_err(|e| {
            let key = e.field.rsplit('.').next().unwrap_or_default().to_string();
            if let Some(ed) = &edited
                && let Some(value) = ed.get(&key)
            {
                let span = if e.message.starts_with("unknown key") { ed.key_span(&key) } else { value.span.clone() };
                let mut out = cx.err(&span, &value.field, e.message.clone());
                out.hint = e.hint.clone();
                return out;
            }
            let mut out = cx.err(
                &t.span,
                &t.field,
                format!("after this change the tenant does not load: {}: {}", e.field, e.message),
            );
            out.hint = e.hint;
            out
        })?;
        self.tenant_doc = doc;
        self.note_tenant(&tenant);
        Ok(Change::Tenant { tenant: Box::new(tenant), what })
    }

    fn expectations(&self, n: &Node<'_>, has_send: bool) -> Result<Vec<Expect>, ConfigError> {
        let tables = self.tables(n)?;
        let mut out = Vec::new();
        for t in tables {
            self.expect_table(&t, has_send, &mut out)?;
        }
        Ok(out)
    }

    fn expect_table(&self, t: &Tbl<'_>, has_send: bool, out: &mut Vec<Expect>) -> Result<(), ConfigError> {
        let cx = &self.cx;
        let all: Vec<&str> =
            SEND_KEYS.iter().chain(WORLD_KINDS.iter()).chain(EXPECT_COMPANIONS.iter()).copied().collect();
        cx.keys(t, &all)?;
        let push = |out: &mut Vec<Expect>, n: &Node<'_>, check: Check| {
            out.push(Expect { field: n.field.clone(), line: cx.line(&n.span), check });
        };
        for (key, span, n) in t.entries() {
            if !SEND_KEYS.contains(&key) {
                continue;
            }
            if !has_send {
                return Err(with_hint(
                    cx.err(&span, &n.field, format!("`{key}` checks the reply to a send, and this step sends nothing")),
                    "put it in the expect of the [[step]] that has the send",
                ));
            }
            let check = match key {
                "reply" => SendCheck::Reply(cx.string(&n)?.to_string()),
                "reply_contains" => SendCheck::ReplyContains(cx.string(&n)?.to_string()),
                "stage" => {
                    let s = cx.string(&n)?.to_ascii_uppercase();
                    if !STAGES.contains(&s.as_str()) {
                        return Err(with_hint(
                            cx.err(&n.span, &n.field, format!("unknown stage {s:?}")),
                            STAGES.join(", "),
                        ));
                    }
                    SendCheck::Stage(s)
                }
                "connector" => {
                    let c = cx.string(&n)?;
                    if c.is_empty() {
                        SendCheck::Connector(None)
                    } else {
                        self.check_connector(&n, c, true)?;
                        SendCheck::Connector(Some(c.to_string()))
                    }
                }
                "accepted" => SendCheck::Accepted(cx.boolean(&n)?),
                "rcpt_replies" => SendCheck::RcptReplies(cx.strings(&n)?),
                _ => unreachable!("send keys"),
            };
            push(out, &n, Check::Send(check));
        }
        let kinds = t.present(&WORLD_KINDS);
        if let Some(second) = kinds.get(1) {
            return Err(with_hint(
                cx.err(
                    &t.key_span(second),
                    &t.sub(second),
                    format!("one world expectation per table, and this one already has `{}`", kinds[0]),
                ),
                format!("write expect = [{{ {} = ... }}, {{ {second} = ... }}]", kinds[0]),
            ));
        }
        let kind = kinds.first().copied();
        let companions: &[&str] = match kind {
            Some("mailbox") => &["count", "contains"],
            Some("peer") => &["count", "rcpt", "tls", "contains"],
            Some("recipient") => &["status", "data_contains"],
            Some("ndr") => &["status", "for", "contains"],
            _ => &[],
        };
        for key in t.present(&EXPECT_COMPANIONS) {
            if !companions.contains(&key) {
                let goes_with = match key {
                    "count" => "mailbox or peer (and inside trace = { ... })",
                    "contains" => "mailbox, peer or ndr (and inside trace = { ... })",
                    "rcpt" | "tls" => "peer",
                    "status" => "recipient or ndr",
                    "data_contains" => "recipient",
                    _ => "ndr",
                };
                return Err(with_hint(
                    cx.err(&t.key_span(key), &t.sub(key), format!("`{key}` has no world expectation to qualify here")),
                    format!("`{key}` goes with {goes_with}"),
                ));
            }
        }
        let opt_str = |key: &str| t.get(key).map(|n| cx.string(&n).map(str::to_string)).transpose();
        let opt_count = |key: &str| t.get(key).map(|n| cx.count(&n)).transpose();
        let Some(kind) = kind else {
            if t.present(&SEND_KEYS).is_empty() {
                return Err(with_hint(
                    cx.err(&t.span, &t.field, "this expect checks nothing"),
                    "check the send (reply, stage, connector, accepted, ...) or the world (mailbox, peer, recipient, ndr, trace, queued)",
                ));
            }
            return Ok(());
        };
        let n = t.get(kind).expect("present");
        let check = match kind {
            "mailbox" => {
                let address = cx.string(&n)?.trim().to_string();
                self.check_mailbox(&n, &address)?;
                WorldCheck::Mailbox { address, count: opt_count("count")?, contains: opt_str("contains")? }
            }
            "peer" => {
                let i = self.host_with_peer(&n)?;
                WorldCheck::Peer {
                    host: self.hosts[i].name.clone(),
                    count: opt_count("count")?,
                    rcpt: opt_str("rcpt")?,
                    tls: t.get("tls").map(|n| cx.boolean(&n)).transpose()?,
                    contains: opt_str("contains")?,
                }
            }
            "recipient" => {
                let status_node = cx.req(t, "status")?;
                let text = cx.string(&status_node)?;
                let status = match text.to_ascii_lowercase().as_str() {
                    "delivered" => Status::Delivered,
                    "pending" => Status::Pending,
                    "failed" => Status::Failed,
                    "gettingstatus" => Status::GettingStatus,
                    _ => {
                        return Err(with_hint(
                            cx.err(&status_node.span, &status_node.field, format!("unknown status {text:?}")),
                            "Delivered, Pending, Failed or GettingStatus",
                        ));
                    }
                };
                WorldCheck::Recipient {
                    address: cx.string(&n)?.trim().to_string(),
                    status,
                    data_contains: opt_str("data_contains")?,
                }
            }
            "ndr" => {
                let text = cx.string(&n)?;
                let at = match text.split_once(':') {
                    Some(("mailbox", address)) => {
                        let address = address.trim().to_string();
                        self.check_mailbox(&n, &address)?;
                        NdrPlace::Mailbox(address)
                    }
                    Some(("peer", host)) => {
                        let host = host.trim();
                        let i = self
                            .hosts
                            .iter()
                            .position(|h| h.name == host)
                            .ok_or_else(|| self.unknown_host(&n, host))?;
                        if self.hosts[i].peer.is_none() {
                            return Err(with_hint(
                                cx.err(&n.span, &n.field, format!("host {host:?} receives no mail: it has no peer")),
                                "add a [host.peer] table to its [[host]]",
                            ));
                        }
                        NdrPlace::Peer(host.to_string())
                    }
                    _ => {
                        return Err(with_hint(
                            cx.err(&n.span, &n.field, format!("{text:?} names no place")),
                            "write \"mailbox:alice@contoso.test\" or \"peer:gateway\"",
                        ));
                    }
                };
                let status = match t.get("status") {
                    Some(s) => {
                        let text = cx.string(&s)?.trim().to_string();
                        let parts: Vec<&str> = text.split('.').collect();
                        let ok = parts.len() == 3
                            && ["2", "4", "5"].contains(&parts[0])
                            && parts[1..]
                                .iter()
                                .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()));
                        if !ok {
                            return Err(with_hint(
                                cx.err(&s.span, &s.field, format!("{text:?} is not an enhanced status code")),
                                "e.g. \"5.4.1\" or \"4.4.7\"",
                            ));
                        }
                        Some(text)
                    }
                    None => None,
                };
                WorldCheck::Ndr { at, status, recipient: opt_str("for")?, contains: opt_str("contains")? }
            }
            "trace" => {
                let tt = cx.table(&n)?;
                cx.keys(&tt, &["event", "recipient", "connector", "contains", "count"])?;
                let event = match tt.get("event") {
                    Some(e) => {
                        let text = cx.string(&e)?;
                        let event = match text.to_ascii_uppercase().as_str() {
                            "RECEIVE" => Event::Receive,
                            "DELIVER" => Event::Deliver,
                            "SEND" => Event::Send,
                            "DEFER" => Event::Defer,
                            "FAIL" => Event::Fail,
                            "DSN" => Event::Dsn,
                            "TRANSFER" => Event::Transfer,
                            _ => {
                                return Err(with_hint(
                                    cx.err(&e.span, &e.field, format!("unknown trace event {text:?}")),
                                    "RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN or TRANSFER",
                                ));
                            }
                        };
                        Some(event)
                    }
                    None => None,
                };
                let connector = match tt.get("connector") {
                    Some(c) => {
                        let name = cx.string(&c)?;
                        self.check_connector(&c, name, false)?;
                        Some(name.to_string())
                    }
                    None => None,
                };
                let get = |k: &str| tt.get(k).map(|n| cx.string(&n).map(|s| s.trim().to_string())).transpose();
                WorldCheck::Trace {
                    event,
                    recipient: get("recipient")?,
                    connector,
                    contains: tt.get("contains").map(|n| cx.string(&n).map(str::to_string)).transpose()?,
                    count: tt.get("count").map(|n| cx.count(&n)).transpose()?,
                }
            }
            "queued" => WorldCheck::Queued(cx.count(&n)?),
            _ => unreachable!("world kinds"),
        };
        push(out, &n, Check::World(check));
        Ok(())
    }

    fn check_mailbox(&self, n: &Node<'_>, address: &str) -> Result<(), ConfigError> {
        if self.mailboxes.contains(&address.to_ascii_lowercase()) {
            return Ok(());
        }
        let e = self.cx.err(&n.span, &n.field, format!("{address} is not a mailbox of the tenant"));
        Err(match closest(address, self.mailboxes.iter().map(String::as_str)) {
            Some(c) => with_hint(e, format!("did you mean {c:?}?")),
            None => with_hint(e, "add it to [Directory] Mailboxes"),
        })
    }

    fn check_connector(&self, n: &Node<'_>, name: &str, inbound: bool) -> Result<(), ConfigError> {
        let names = if inbound { &self.inbound_names } else { &self.all_connector_names };
        if names.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return Ok(());
        }
        let noun = if inbound { "inbound connector" } else { "connector" };
        let e = self.cx.err(&n.span, &n.field, format!("no {noun} named {name:?}"));
        Err(match closest(name, names.iter().map(String::as_str)) {
            Some(c) => with_hint(e, format!("did you mean {c:?}?")),
            None if names.is_empty() => with_hint(e, format!("the tenant has no {noun}s")),
            None => with_hint(e, format!("{noun}s: {}", names.iter().cloned().collect::<Vec<_>>().join(", "))),
        })
    }
}

/// A zone-file line without its `;` comment (quotes respected).
fn strip_zone_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
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

    #[test]
    fn closest_names() {
        assert_eq!(closest("gatway", ["gateway", "internet"]), Some("gateway"));
        assert_eq!(closest("zzz", ["gateway", "internet"]), None);
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
                "s.toml:22:8: host[2].name: \"tenant\" cannot name a host\n  hint: \"tenant\" and \"dns\" are the world's own; pick a role name such as \"gateway\" or \"partner\"",
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
                "s.toml:22:10: step[1].change: this change names nothing to change\n  hint: a change has one of: inbound_connector, outbound_connector, add_inbound_connector, add_outbound_connector, remove_connector, accepted_domain, transport, host, mx, a, dns_fault",
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
                "s.toml:22:10: step[1].change: after this change the tenant does not load: InboundConnector[1].RestrictDomainsToIPAddresses: RestrictDomainsToIPAddresses only works on Partner connectors\n  hint: lock down with a separate Partner connector (SenderDomains [\"*\"]) beside this one (exo-semantics §2.2)",
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
                "s.toml:23:55: step[1].expect.status: unknown status \"Sent\"\n  hint: Delivered, Pending, Failed or GettingStatus",
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
                "s.toml:23:30: step[1].expect.trace.event: unknown trace event \"BOUNCE\"\n  hint: RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN or TRANSFER",
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
}
