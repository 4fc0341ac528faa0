//! The steps of a scenario: each `[[step]]` with its one action (a send, an advance of the clock,
//! changes of the world) and its expectations (read by `expect.rs`). Changes are resolved here,
//! in step order: a tenant change edits the tenant document and reloads it with the tenant
//! loader, so its errors are the loader's, pointed at the `set` key.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use mailsim_core::diagnostics::{ConfigError, closest};
use mailsim_core::tenant::load::load;
use mailsim_testkit::dns::{DnsZoneSet, Fault};
use mailsim_testkit::peer::PeerScript;
use toml::de::DeValue;

use super::walker::{Node, Tbl, to_toml};
use super::{Action, Change, HostState, Loader, Step};
use crate::sim::{HostSpec, SendSpec, TlsUse};

pub(super) const CHANGE_KINDS: [&str; 13] = [
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
    "transport_rule",
    "txt",
];
pub(super) const CHANGE_COMPANIONS: [&str; 9] =
    ["set", "cert", "address", "peer", "relay_to_tenant", "records", "addresses", "fault", "type"];

impl<'t> Loader<'t> {
    pub(super) fn step(&mut self, n: &Node<'_>, number: usize) -> Result<Step, ConfigError> {
        let t = self.cx.table(n)?;
        self.cx.keys(&t, &["name", "send", "advance", "change", "expect"])?;
        let actions = t.present(&["send", "advance", "change"]);
        if actions.len() > 1 {
            return Err(self
                .cx
                .err(
                    &t.key_span(actions[1]),
                    &t.sub(actions[1]),
                    format!("a step has exactly one action, and this one already has `{}`", actions[0]),
                )
                .with_hint("split it into two [[step]] tables"));
        }
        if actions.is_empty() && t.get("expect").is_none() {
            return Err(self
                .cx
                .err(&t.span, &t.field, "this step does nothing")
                .with_hint("give it one of send, advance or change, or an expect"));
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

    pub(super) fn send(&mut self, n: &Node<'_>) -> Result<SendSpec, ConfigError> {
        let t = self.cx.table(n)?;
        self.cx.keys(
            &t,
            &["from", "tls", "cert", "ehlo", "mail_from", "rcpt_to", "subject", "body", "headers", "eml", "to", "dkim"],
        )?;
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
                return Err(self
                    .cx
                    .err(&c.span, &c.field, "a certificate is only presented over TLS")
                    .with_hint("add tls = true to the send"));
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
                return Err(self
                    .cx
                    .err(&t.key_span(k), &t.sub(k), format!("`{k}` and `eml` do not go together"))
                    .with_hint("the .eml file is the whole message: put the header or text in it"));
            }
            let relative = self.cx.string(&e)?;
            let path = self.cx.dir.join(relative);
            let data = crate::config_file::read(&path).map_err(|err| {
                self.cx.err(&e.span, &e.field, format!("cannot read {}: {}", path.display(), err.message))
            })?;
            spec.data = Some(data);
        }
        self.send_auth(&t, &mut spec)?;
        Ok(spec)
    }

    /// A table, or an array of tables (`expect = [{...}, {...}]`), each named by its index.
    pub(super) fn tables<'n>(&self, n: &Node<'n>) -> Result<Vec<Tbl<'n>>, ConfigError> {
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

    pub(super) fn change(&mut self, n: &Node<'_>, step: usize) -> Result<Vec<Change>, ConfigError> {
        let tables = self.tables(n)?;
        let mut out = Vec::new();
        for t in tables {
            out.extend(self.change_one(&t, step)?);
        }
        Ok(out)
    }

    pub(super) fn change_one(&mut self, t: &Tbl<'_>, step: usize) -> Result<Vec<Change>, ConfigError> {
        let all: Vec<&str> = CHANGE_KINDS.iter().chain(CHANGE_COMPANIONS.iter()).copied().collect();
        self.cx.keys(t, &all)?;
        let kinds = t.present(&CHANGE_KINDS);
        let Some(&kind) = kinds.first() else {
            return Err(self
                .cx
                .err(&t.span, &t.field, "this change names nothing to change")
                .with_hint(format!("a change has one of: {}", CHANGE_KINDS.join(", "))));
        };
        if let Some(second) = kinds.get(1) {
            return Err(self
                .cx
                .err(
                    &t.key_span(second),
                    &t.sub(second),
                    format!("one change per table, and this one already has `{kind}`"),
                )
                .with_hint("write change = [{ ... }, { ... }] to make several changes in one step"));
        }
        let companions: &[&str] = match kind {
            "inbound_connector" | "outbound_connector" | "accepted_domain" | "transport_rule" => &["set"],
            "host" => &["cert", "address", "peer", "relay_to_tenant"],
            "mx" => &["records"],
            "a" => &["addresses"],
            "dns_fault" => &["fault", "type"],
            "txt" => &["records"],
            _ => &[],
        };
        for key in t.present(&CHANGE_COMPANIONS) {
            if !companions.contains(&key) {
                let e = self.cx.err(&t.key_span(key), &t.sub(key), format!("`{key}` does not go with `{kind}`"));
                return Err(e.with_hint(if companions.is_empty() {
                    format!("`{kind}` takes nothing else")
                } else {
                    format!("with `{kind}` write {}", companions.join(" or "))
                }));
            }
        }
        let required: Option<&str> = match kind {
            "inbound_connector" | "outbound_connector" | "accepted_domain" | "transport_rule" => Some("set"),
            "mx" => Some("records"),
            "a" => Some("addresses"),
            "dns_fault" => Some("fault"),
            "txt" => Some("records"),
            _ => None,
        };
        if let Some(r) = required {
            self.cx.req(t, r)?;
        }
        let node = t.get(kind).expect("present");
        match kind {
            "host" => self.change_host(t, &node),
            "mx" => {
                let domain = self.cx.dns_name(&node)?;
                let records_node = t.get("records").expect("required");
                let DeValue::Array(items) = records_node.v else {
                    return Err(self
                        .cx
                        .type_error(&records_node, "an array")
                        .with_hint("records = [[10, \"mx.gateway.test\"]]"));
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
                            return Err(self
                                .cx
                                .type_error(&rn, "a [preference, exchange] pair")
                                .with_hint("records = [[10, \"mx.gateway.test\"]]"));
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
                let name = self.cx.dns_name(&node)?;
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
                let name = self.cx.dns_name(&node)?;
                let fault_node = t.get("fault").expect("required");
                let text = self.cx.string(&fault_node)?;
                let fault = match text.to_ascii_lowercase().as_str() {
                    "servfail" => Some(Fault::ServFail),
                    "nxdomain" => Some(Fault::NxDomain),
                    "silence" => Some(Fault::Silence),
                    "refused" => Some(Fault::Refused),
                    "none" => None,
                    _ => {
                        return Err(self
                            .cx
                            .err(&fault_node.span, &fault_node.field, format!("unknown fault {text:?}"))
                            .with_hint("ServFail, NxDomain, Silence, Refused or None"));
                    }
                };
                match self.fault_type(t)? {
                    Some(record_type) => Ok(vec![Change::DnsFaultFor { name, record_type, fault }]),
                    None => Ok(vec![Change::DnsFault { name, fault }]),
                }
            }
            "txt" => self.change_txt(t, &node),
            _ => self.change_tenant(t, kind, &node, step).map(|c| vec![c]),
        }
    }

    pub(super) fn change_host(&mut self, t: &Tbl<'_>, node: &Node<'_>) -> Result<Vec<Change>, ConfigError> {
        let i = self.host_index(node)?;
        let host = self.hosts[i].name.clone();
        let mut out = Vec::new();
        if t.present(&["cert", "address", "peer", "relay_to_tenant"]).is_empty() {
            return Err(self
                .cx
                .err(&t.span, &t.field, format!("nothing to change on host {host:?}"))
                .with_hint("write address = \"...\", cert = \"...\", peer = { ... } or relay_to_tenant = true|false"));
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

    pub(super) fn change_tenant(
        &mut self,
        t: &Tbl<'_>,
        kind: &str,
        node: &Node<'_>,
        step: usize,
    ) -> Result<Change, ConfigError> {
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
            "inbound_connector" | "outbound_connector" | "accepted_domain" | "transport_rule" => {
                let name = cx.string(node)?;
                let (array_key, name_key, noun) = match kind {
                    "inbound_connector" => ("InboundConnector", "Name", "inbound connector"),
                    "transport_rule" => ("TransportRule", "Name", "transport rule"),
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
                        Some(c) => e.with_hint(format!("did you mean {c:?}?")),
                        None if names.is_empty() => e.with_hint(format!("the tenant has no {noun}s at this step")),
                        None => e.with_hint(format!("{noun}s at this step: {}", names.join(", "))),
                    });
                };
                let set = cx.table(&t.get("set").expect("required"))?;
                let toml::Value::Table(target) = target else { unreachable!("array of tables") };
                merge(target, &set);
                if kind == "transport_rule" && set.get("Priority").is_some() {
                    shift_priorities(&mut doc, name);
                }
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
                        Some(c) => e.with_hint(format!("did you mean {c:?}?")),
                        None => e.with_hint("the tenant has no connector of that name at this step"),
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
        Ok(Change::Tenant { tenant: Arc::new(tenant), what })
    }
}

/// `Set-TransportRule -Priority` on a taken value (exo-behaviour §13.2): the rule named `name`
/// goes to its new priority, the rule there and every later one move down by one, and the rules
/// are renumbered 0..N-1 (a priority past the end makes it the last).
fn shift_priorities(doc: &mut toml::Table, name: &str) {
    let Some(rules) = doc.get_mut("TransportRule").and_then(toml::Value::as_array_mut) else { return };
    let priority = |v: &toml::Value| v.get("Priority").and_then(toml::Value::as_integer);
    let is_it =
        |v: &toml::Value| v.get("Name").and_then(toml::Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(name));
    let Some(at) = rules.iter().position(is_it) else { return };
    let moved = rules.remove(at);
    let wanted = priority(&moved).unwrap_or(i64::MAX).max(0);
    // The others in their current order: by priority, unnumbered ones after, file order on ties.
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| (priority(&rules[i]).unwrap_or(i64::MAX), i));
    let mut ranked: Vec<toml::Value> = order.into_iter().map(|i| rules[i].clone()).collect();
    let index = usize::try_from(wanted).unwrap_or(usize::MAX).min(ranked.len());
    ranked.insert(index, moved);
    for (i, r) in ranked.iter_mut().enumerate() {
        if let Some(t) = r.as_table_mut() {
            t.insert("Priority".to_string(), toml::Value::Integer(i as i64));
        }
    }
    // File order is kept; only the priorities change.
    let by_name = |v: &toml::Value| v.get("Name").and_then(toml::Value::as_str).map(str::to_ascii_lowercase);
    rules.insert(at, ranked.iter().find(|r| is_it(r)).cloned().expect("the moved rule"));
    for r in rules.iter_mut() {
        if let Some(new) = ranked.iter().find(|x| by_name(x) == by_name(r)).and_then(priority)
            && let Some(t) = r.as_table_mut()
        {
            t.insert("Priority".to_string(), toml::Value::Integer(new));
        }
    }
}
