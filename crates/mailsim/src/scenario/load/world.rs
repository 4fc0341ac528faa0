//! The world of a scenario: the tenant (its own tables, or `tenant_file`), the hosts with their
//! certificates and peer scripts, the DNS records and the retry schedule. Checked in file order;
//! the state kept here (hosts, tenant names) is what later steps and expectations are checked
//! against.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mailsim_core::address_plan::{WORLD_SLOTS, stable_loopbacks};
use mailsim_core::diagnostics::{ConfigError, closest};
use mailsim_core::stage::outcome::RetryPolicy;
use mailsim_core::tenant::Tenant;
use mailsim_core::tenant::load::{load_with_other_tables, load_with_warnings};
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::peer::{Behaviour, PeerScript};
use toml::de::{DeTable, DeValue};

use super::walker::{Cx, DURATION_HINT, Node, Tbl, to_toml};
use super::{HostState, Loader, SCENARIO_TABLES, TENANT_TABLES, TEST_CERTS};
use crate::sim::{CertChoice, HostSpec};

/// The keys of a peer script (`[host.peer]`).
pub(super) const PEER_KEYS: [&str; 13] = [
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
pub(super) const BEHAVIOUR_HINT: &str = "a behaviour is \"Accept\", { Reply = [451, \"4.7.1 Try again later\"] }, { Delay = 200 } (ms), \"Drop\" or { Sequence = [...] }";

impl Cx<'_> {
    /// A certificate: a test-PKI name, `"none"` (when `none_ok`), or an inline table.
    pub(super) fn cert(&self, n: &Node<'_>, none_ok: bool) -> Result<Option<CertChoice>, ConfigError> {
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
                    Some(c) => e.with_hint(format!("did you mean {c:?}?")),
                    None => e.with_hint(if none_ok { format!("{shown}; or \"none\"") } else { shown.to_string() }),
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
            _ => Err(self.type_error(n, "a certificate name or table").with_hint(shown)),
        }
    }
}

/// The tenant's outbound side and the loopback addresses pinned in the file: the rest of the plan
/// is [`stable_loopbacks`] of the scenario's name, so every run of a scenario binds the same
/// addresses (issue 9 item 2).
pub(super) struct LivePlan {
    /// `[scenario] tenant_outbound_address`: the declared address the tenant sends from.
    pub(super) outbound_declared: IpAddr,
    /// (loopback, owner): `tenant`, `tenant-out`, `dns` or a host's name.
    pub(super) pinned: Vec<(IpAddr, String)>,
}

impl LivePlan {
    /// A pinned loopback address (`loopback = "127.0.0.10"`): a 127/8 address nobody else pinned.
    fn pin(&mut self, cx: &Cx<'_>, n: &Node<'_>, owner: &str) -> Result<IpAddr, ConfigError> {
        let ip = cx.ip(n)?;
        if !matches!(ip, IpAddr::V4(v4) if v4.is_loopback()) {
            return Err(cx
                .err(&n.span, &n.field, format!("{ip} is not a 127/8 address"))
                .with_hint("every simulated host binds an address of its own in 127.0.0.0/8, e.g. \"127.0.0.10\""));
        }
        if let Some((_, other)) = self.pinned.iter().find(|(p, _)| *p == ip) {
            return Err(cx
                .err(&n.span, &n.field, format!("{ip} is already {other}'s loopback address"))
                .with_hint("every host binds a loopback address of its own"));
        }
        self.pinned.push((ip, owner.to_string()));
        Ok(ip)
    }

    /// Fills in the world's loopback addresses: pinned ones as written, the others stable.
    pub(super) fn apply(&self, scenario: &str, world: &mut crate::sim::WorldSpec) {
        let pinned_of = |owner: &str| self.pinned.iter().find(|(_, o)| o == owner).map(|(ip, _)| *ip);
        let mut names: Vec<String> = WORLD_SLOTS.iter().map(|s| s.to_string()).collect();
        names.extend(world.hosts.iter().map(|h| h.name.clone()));
        let free: Vec<&str> = names.iter().map(String::as_str).filter(|n| pinned_of(n).is_none()).collect();
        let pins: Vec<IpAddr> = self.pinned.iter().map(|(ip, _)| *ip).collect();
        let planned = stable_loopbacks(scenario, &free, &pins);
        let address = |name: &str| pinned_of(name).or_else(|| free.iter().position(|n| *n == name).map(|i| planned[i]));
        world.tenant_loopback = address("tenant");
        world.tenant_outbound_loopback = address("tenant-out");
        world.tenant_outbound_declared = self.outbound_declared;
        world.dns_loopback = address("dns");
        for host in &mut world.hosts {
            host.loopback = address(&host.name);
        }
    }
}

impl<'t> Loader<'t> {
    pub(super) fn new(cx: Cx<'t>, root: &Tbl<'_>) -> Result<Self, ConfigError> {
        let scenario = match root.get("scenario") {
            Some(n) => Some(cx.table(&n)?),
            None => None,
        };
        if let Some(s) = &scenario {
            cx.keys(
                s,
                &[
                    "name",
                    "description",
                    "tenant_file",
                    "tenant_address",
                    "tenant_outbound_address",
                    "tenant_loopback",
                    "tenant_outbound_loopback",
                    "dns_loopback",
                    "authentication",
                ],
            )?;
        }
        let tenant_declared = match scenario.as_ref().and_then(|s| s.get("tenant_address")) {
            Some(n) => cx.ip(&n)?,
            None => IpAddr::from([192, 0, 2, 100]),
        };
        let mut live = LivePlan {
            outbound_declared: crate::sim::DEFAULT_TENANT_OUTBOUND.parse().expect("valid"),
            pinned: Vec::new(),
        };
        if let Some(s) = &scenario {
            if let Some(n) = s.get("tenant_outbound_address") {
                live.outbound_declared = cx.ip(&n)?;
                if live.outbound_declared == tenant_declared {
                    return Err(cx
                        .err(
                            &n.span,
                            &n.field,
                            format!("{} is the tenant's address (tenant_address)", live.outbound_declared),
                        )
                        .with_hint("the tenant sends from an address of its own"));
                }
            }
            for (key, slot) in
                [("tenant_loopback", "tenant"), ("tenant_outbound_loopback", "tenant-out"), ("dns_loopback", "dns")]
            {
                if let Some(n) = s.get(key) {
                    live.pin(&cx, &n, slot)?;
                }
            }
        }
        let (tenant, warnings, tenant_doc) = match scenario.as_ref().and_then(|s| s.get("tenant_file")) {
            Some(n) => {
                if let Some(k) = TENANT_TABLES.iter().find(|k| root.get(k).is_some()) {
                    return Err(cx
                        .err(
                            &root.key_span(k),
                            k,
                            "this scenario names a tenant_file, so it has no tenant tables of its own",
                        )
                        .with_hint("move the table into the tenant file, or remove tenant_file"));
                }
                let relative = cx.string(&n)?;
                let path = cx.dir.join(relative);
                let text = crate::config_file::read(&path)
                    .map_err(|e| cx.err(&n.span, &n.field, format!("cannot read {}: {}", path.display(), e.message)))?;
                let shown = path.display().to_string();
                let loaded = load_with_warnings(&text, &shown).map_err(|e| {
                    // The tenant loader knows only its own tables; name the scenario's for what they are.
                    if SCENARIO_TABLES.contains(&e.field.as_str()) && e.message.starts_with("unknown key") {
                        e.with_hint("scenario tables belong in scenario files (scenarios/*.toml), not in a tenant file")
                    } else {
                        e
                    }
                })?;
                let doc = DeTable::parse(&text).map_err(|e| cx.err(&n.span, &n.field, e.message().to_string()))?;
                let toml::Value::Table(doc) = to_toml(&DeValue::Table(doc.into_inner())) else {
                    unreachable!("a table converts to a table")
                };
                (loaded.tenant, loaded.warnings, doc)
            }
            None => {
                let loaded = load_with_other_tables(cx.text, &cx.file, &SCENARIO_TABLES)?;
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
            live,
            hosts: Vec::new(),
            initial_hosts: Vec::new(),
            tenant_doc,
            initial_tenant: tenant.clone(),
            warnings,
            inbound_names: BTreeSet::new(),
            all_connector_names: BTreeSet::new(),
            mailboxes: BTreeSet::new(),
            rule_names: BTreeSet::new(),
        };
        loader.note_tenant(&tenant);
        let own = [(tenant_declared, "tenant_address"), (loader.live.outbound_declared, "tenant_outbound_address")];
        loader.check_ef_skip_own(root, &tenant, &own)?;
        Ok(loader)
    }

    pub(super) fn note_tenant(&mut self, tenant: &Tenant) {
        for c in &tenant.inbound_connectors {
            self.inbound_names.insert(c.name.clone());
            self.all_connector_names.insert(c.name.clone());
        }
        for c in &tenant.outbound_connectors {
            self.all_connector_names.insert(c.name.clone());
        }
        self.mailboxes.extend(tenant.mailboxes.iter().map(|m| m.to_ascii_lowercase()));
        self.rule_names.extend(tenant.transport_rules.iter().map(|r| r.name.clone()));
    }

    pub(super) fn host_names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    pub(super) fn unknown_host(&self, n: &Node<'_>, name: &str) -> ConfigError {
        let e = self.cx.err(&n.span, &n.field, format!("no host named {name:?}"));
        let names = self.host_names();
        match closest(name, names.iter().copied()) {
            Some(c) => e.with_hint(format!("did you mean {c:?}?")),
            None if names.is_empty() => {
                e.with_hint("declare it: [[host]] with name = \"...\" and address = \"...\" (no host is declared)")
            }
            None => e.with_hint(format!("declared hosts: {}", names.join(", "))),
        }
    }

    pub(super) fn host_index(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        let name = self.cx.string(n)?;
        self.hosts.iter().position(|h| h.name == name).ok_or_else(|| self.unknown_host(n, name))
    }

    pub(super) fn host_with_peer(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        let i = self.host_index(n)?;
        if self.hosts[i].peer.is_none() {
            return Err(self
                .cx
                .err(&n.span, &n.field, format!("host {:?} receives no mail: it has no peer", self.hosts[i].name))
                .with_hint("add a [host.peer] table to its [[host]] (peers start with the world)"));
        }
        Ok(i)
    }

    pub(super) fn check_address_free(
        &self,
        n: &Node<'_>,
        address: IpAddr,
        except: Option<usize>,
    ) -> Result<(), ConfigError> {
        if address == self.tenant_declared {
            return Err(self.cx.err(&n.span, &n.field, format!("{address} is the tenant's address (tenant_address)")));
        }
        if address == self.live.outbound_declared {
            return Err(self
                .cx
                .err(&n.span, &n.field, format!("{address} is the tenant's outbound address (tenant_outbound_address)"))
                .with_hint("every host has an address of its own"));
        }
        if let Some((_, owner)) = self.live.pinned.iter().find(|(ip, _)| *ip == address) {
            return Err(self.cx.err(&n.span, &n.field, format!("{address} is {owner}'s loopback address")));
        }
        if let Some((_, h)) = self.hosts.iter().enumerate().find(|(i, h)| h.declared == address && Some(*i) != except) {
            return Err(self
                .cx
                .err(&n.span, &n.field, format!("{address} is already host {:?}'s address", h.name))
                .with_hint("every host has an address of its own"));
        }
        Ok(())
    }

    pub(super) fn hosts(&mut self, n: &Node<'_>) -> Result<(), ConfigError> {
        let DeValue::Array(items) = n.v else {
            return Err(self.cx.type_error(n, "an array of tables").with_hint("write each host as [[host]]"));
        };
        for (i, item) in items.iter().enumerate() {
            let node = Node { v: item.get_ref(), span: item.span(), field: format!("host[{}]", i + 1) };
            let t = self.cx.table(&node)?;
            self.cx
                .keys(&t, &["name", "address", "loopback", "cert", "relay_to_tenant", "peer", "dkim", "relay_hops"])?;
            let name_node = self.cx.req(&t, "name")?;
            let name = self.cx.string(&name_node)?.trim().to_string();
            if name.is_empty() || WORLD_SLOTS.iter().any(|w| name.eq_ignore_ascii_case(w)) {
                return Err(self.cx.err(&name_node.span, &name_node.field, format!("{name:?} cannot name a host")).with_hint("\"tenant\", \"tenant-out\" and \"dns\" are the world's own; pick a role name such as \"gateway\" or \"partner\""));
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
            let loopback = match t.get("loopback") {
                Some(n) => Some(self.live.pin(&self.cx, &n, &name)?),
                None => None,
            };
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
                        return Err(self
                            .cx
                            .err(&r.span, &r.field, "only a host that receives mail can relay it")
                            .with_hint("add a [host.peer] table for it"));
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
                loopback,
                dkim: self.host_dkim(&t)?,
                relay_hops: self.relay_hops(&t)?,
            });
            self.hosts.push(HostState { name, declared, peer, relay });
        }
        Ok(())
    }

    /// A peer script from `[host.peer]` keys over `base` (the script in force, for changes).
    pub(super) fn peer_script(
        &self,
        host: &str,
        t: &Tbl<'_>,
        base: Option<&toml::Table>,
    ) -> Result<(PeerScript, toml::Table), ConfigError> {
        if let Some((_, span, _)) = t.entries().into_iter().find(|(k, _, _)| *k == "forward_to") {
            return Err(self
                .cx
                .err(&span, &t.sub("forward_to"), "unknown key `forward_to`")
                .with_hint("write relay_to_tenant = true on the [[host]] instead"));
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
            let parsed = toml::Value::Table(single).try_into::<PeerScript>();
            if let Some(code) = parsed.as_ref().ok().and_then(bad_reply_code) {
                return Err(self
                    .cx
                    .err(&node.span, &node.field, format!("reply code {code} is outside 200-599"))
                    .with_hint(
                        "an SMTP reply code is 2yz to 5yz (RFC 5321 §4.2); to drop the connection write \"Drop\"",
                    ));
            }
            if let Err(e) = parsed {
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
                return Err(if hint.is_empty() { err } else { err.with_hint(hint) });
            }
            table.insert(key.to_string(), value);
        }
        let script = toml::Value::Table(table.clone())
            .try_into::<PeerScript>()
            .map_err(|e| self.cx.err(&t.span, &t.field, e.message().trim().to_string()))?;
        Ok((script, table))
    }

    pub(super) fn dns(&self, t: &Tbl<'_>) -> Result<DnsZoneSet, ConfigError> {
        self.cx.keys(t, &["records", "txt"])?;
        let zones = match t.get("records") {
            Some(n) => self.dns_records(&n)?,
            None => DnsZoneSet::new(),
        };
        match t.get("txt") {
            Some(n) => self.dns_txt(&n, zones),
            None => Ok(zones),
        }
    }

    /// `[dns] records`: zone-file lines.
    fn dns_records(&self, n: &Node<'_>) -> Result<DnsZoneSet, ConfigError> {
        let cx = &self.cx;
        let text = cx.string(n)?;
        let hint = "zone-file lines with absolute names: `partner.test. MX 10 mx.partner.test.` or `mx.partner.test. A 203.0.113.25`";
        let mut directives = String::new();
        let mut groups: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
        let mut last_origin: Option<String> = None;
        let mut search_from = n.span.start;
        let source_lines = string_line_starts(cx.text, &n.span);
        let decoded_lines = text.lines().count();
        for (k, raw) in text.lines().enumerate() {
            // Where this line is in the file (for errors): the same line of the string's source
            // when escapes changed no line count (issue 14: after an escape, a line was reported
            // at the string's start), else the next occurrence inside the string.
            let needle = raw.trim();
            let offset = if source_lines.len() == decoded_lines {
                let start = source_lines[k];
                let line = &cx.text[start..n.span.end.max(start)];
                start + (line.len() - line.trim_start_matches([' ', '\t']).len())
            } else {
                match cx.text.get(search_from..n.span.end).and_then(|s| s.find(needle)) {
                    Some(p) if !needle.is_empty() => {
                        search_from += p + needle.len();
                        search_from - needle.len()
                    }
                    _ => n.span.start,
                }
            };
            let at = offset..offset;
            let line = strip_zone_comment(raw);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(directive) = line.trim_start().strip_prefix('$') {
                if directive.to_ascii_uppercase().starts_with("TTL") {
                    // Checked on its own line (issue 14: a bad `$TTL` was reported at the record
                    // after it), with a record for the parser to apply it to.
                    if let Err(e) = DnsZoneSet::from_zone_text(
                        "mailsim.test",
                        &format!("{}\nmailsim.test. A 192.0.2.1\n", line.trim()),
                    ) {
                        let message = e.0.replace("zone text for mailsim.test: ", "");
                        return Err(cx.err(&at, &n.field, message).with_hint("`$TTL 3600` (seconds) or `$TTL 1h`"));
                    }
                    directives.push_str(line.trim());
                    directives.push('\n');
                    continue;
                }
                return Err(cx.err(&at, &n.field, format!("`{}` is not supported", line.trim())).with_hint(
                    "write absolute names (ending with a dot); records are grouped into zones by their last two labels",
                ));
            }
            if line.starts_with([' ', '\t']) {
                let Some(origin) = &last_origin else {
                    return Err(cx.err(&at, &n.field, "a record without a name").with_hint(hint));
                };
                groups.entry(origin.clone()).or_default().push((offset, line.to_string()));
                continue;
            }
            let owner = line.split_whitespace().next().unwrap_or_default();
            if owner == "@" || owner == "." || !owner.ends_with('.') {
                return Err(cx
                    .err(&at, &n.field, format!("`{owner}` is not an absolute name"))
                    .with_hint(format!("end it with a dot: `{}.`", owner.trim_end_matches('.'))));
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
                            return Err(cx.err(&(*offset..*offset), &n.field, e.0).with_hint(hint));
                        }
                    }
                    return Err(cx.err(&n.span, &n.field, e.0).with_hint(hint));
                }
            }
        }
        zones.check().map_err(|e| cx.err(&n.span, &n.field, e.0).with_hint(hint))?;
        Ok(zones)
    }

    pub(super) fn retry(&self, t: &Tbl<'_>) -> Result<RetryPolicy, ConfigError> {
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
}

/// The first reply code of a peer script outside 200-599 (RFC 5321 §4.2.1 defines 2yz to 5yz; a
/// `Reply = [999, ...]` once loaded and then acted as a dropped connection).
fn bad_reply_code(script: &PeerScript) -> Option<u16> {
    fn bad(b: &Behaviour) -> Option<u16> {
        match b {
            Behaviour::Reply(code, _) if !(200..=599).contains(code) => Some(*code),
            Behaviour::Sequence(items) => items.iter().find_map(bad),
            _ => None,
        }
    }
    [&script.on_connect, &script.on_ehlo, &script.on_mail, &script.on_rcpt, &script.on_data, &script.on_end_of_data]
        .into_iter()
        .chain(script.on_rcpt_for.values())
        .find_map(bad)
}

/// The byte offset in `file` where each line of the string value at `span` starts: after the
/// opening quotes (and the newline a multi-line string trims after them), then after each newline
/// inside the string. Empty when `span` is not a string.
fn string_line_starts(file: &str, span: &std::ops::Range<usize>) -> Vec<usize> {
    let Some(source) = file.get(span.clone()) else { return Vec::new() };
    let open = if source.starts_with("\"\"\"") || source.starts_with("'''") {
        let rest = &source[3..];
        3 + if rest.starts_with("\r\n") { 2 } else { usize::from(rest.starts_with('\n')) }
    } else if source.starts_with(['"', '\'']) {
        1
    } else {
        return Vec::new();
    };
    let body_end = source.len().saturating_sub(if open >= 3 { 3 } else { 1 }).max(open);
    let mut starts = vec![span.start + open];
    starts.extend(source[open..body_end].match_indices('\n').map(|(i, _)| span.start + open + i + 1));
    // `str::lines` yields no line after a final newline.
    if source[open..body_end].ends_with('\n') {
        starts.pop();
    }
    starts
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
