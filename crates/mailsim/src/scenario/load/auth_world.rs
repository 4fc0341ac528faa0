//! What the world publishes and does for email authentication (issue 11 item 5,
//! exo-behaviour §14): TXT records in `[dns]` (SPF at the domain, DMARC at `_dmarc.domain`, DKIM
//! keys at `selector._domainkey.domain`), TXT changes and record-type faults in steps; on a
//! `[[host]]`, the DKIM identity it signs with (`dkim = { domain, selector }`) and the internal
//! hops a relaying gateway writes before its own `Received:` line (`relay_hops`); on a `send`,
//! the host it goes to (`to`, a gateway that relays it) and whether it is signed (`dkim`).
//!
//! `[dns] txt` is a table of name = text (or an array of texts, one TXT record each), so a policy
//! needs no zone-file quoting; zone-file `TXT` lines in `[dns] records` work as well. Long texts
//! are split into 255-byte strings when served (the scripted DNS server does it).

use std::collections::BTreeSet;

use mailsim_core::diagnostics::ConfigError;
use mailsim_testkit::dkim::{DkimIdentity, KEY_COUNT};
use mailsim_testkit::dns::{DnsZoneSet, parse_record_type};
use mailsim_testkit::peer::RelayHop;
use toml::de::DeValue;

use super::walker::{Node, Tbl};
use super::{Change, Loader};
use crate::sim::SendSpec;

const DKIM_HINT: &str = "dkim = { domain = \"fabrikam.test\", selector = \"s1\" }: the host signs what it sends and relays, and the world publishes s1._domainkey.fabrikam.test";
const HOPS_HINT: &str = "relay_hops = [{ name = \"rx.gateway.test\", address = \"198.51.101.5\" }, { name = \"lb.gateway.test\", address = \"10.0.0.5\" }] (in the order a message passes them, before the host's own line)";

/// The hint every TXT error carries.
pub(super) const TXT_HINT: &str = "txt = { \"fabrikam.test\" = \"v=spf1 ip4:203.0.113.0/24 -all\", \"_dmarc.fabrikam.test\" = \"v=DMARC1; p=reject\" } (a text, or an array of texts for several records)";

impl Loader<'_> {
    /// `[dns] txt`: adds its records to `zones`.
    pub(super) fn dns_txt(&self, n: &Node<'_>, mut zones: DnsZoneSet) -> Result<DnsZoneSet, ConfigError> {
        let t = self.cx.table(n).map_err(|e| e.with_hint(TXT_HINT))?;
        for (key, span, value) in t.entries() {
            let name = self.txt_name(key, &span, &value.field)?;
            for text in self.txt_texts(&value)? {
                zones = zones.txt(&name, &text);
            }
        }
        zones.check().map_err(|e| self.cx.err(&n.span, &n.field, e.0).with_hint(TXT_HINT))?;
        Ok(zones)
    }

    /// A change `{ txt = "fabrikam.test", records = ["v=spf1 -all"] }`: the name's TXT records
    /// replaced (an empty array removes them).
    pub(super) fn change_txt(&self, t: &Tbl<'_>, node: &Node<'_>) -> Result<Vec<Change>, ConfigError> {
        let name = self.cx.dns_name(node)?;
        let records_node = self.cx.req(t, "records")?;
        let records = match records_node.v {
            DeValue::Array(_) => self.txt_texts(&records_node)?,
            _ => {
                return Err(self
                    .cx
                    .type_error(&records_node, "an array of texts")
                    .with_hint("records = [\"v=spf1 ip4:203.0.113.0/24 -all\"]"));
            }
        };
        Ok(vec![Change::Txt { name, records }])
    }

    /// `type = "TXT"` beside a `dns_fault`: the fault for that record type only.
    pub(super) fn fault_type(&self, t: &Tbl<'_>) -> Result<Option<String>, ConfigError> {
        let Some(n) = t.get("type") else { return Ok(None) };
        let text = self.cx.string(&n)?;
        parse_record_type(text).map_err(|e| {
            self.cx.err(&n.span, &n.field, e.0).with_hint("a record type: TXT (SPF, DKIM, DMARC), MX, A, AAAA")
        })?;
        Ok(Some(text.trim().to_ascii_uppercase()))
    }

    fn txt_name(&self, key: &str, span: &std::ops::Range<usize>, field: &str) -> Result<String, ConfigError> {
        let v = DeValue::String(key.into());
        let n = Node { v: &v, span: span.clone(), field: field.to_string() };
        self.cx.dns_name(&n)
    }

    fn txt_texts(&self, n: &Node<'_>) -> Result<Vec<String>, ConfigError> {
        let texts = match n.v {
            DeValue::String(s) => vec![s.to_string()],
            DeValue::Array(_) => self.cx.strings(n)?,
            _ => return Err(self.cx.type_error(n, "a text or an array of texts").with_hint(TXT_HINT)),
        };
        if let Some(bad) = texts.iter().find(|t| !t.is_ascii() || t.contains(['\r', '\n'])) {
            return Err(self
                .cx
                .err(&n.span, &n.field, format!("{bad:?} is not a TXT text of printable ASCII on one line"))
                .with_hint(TXT_HINT));
        }
        Ok(texts)
    }

    /// `[[host]] dkim = { domain, selector }`.
    pub(super) fn host_dkim(&self, host: &Tbl<'_>) -> Result<Option<DkimIdentity>, ConfigError> {
        let Some(n) = host.get("dkim") else { return Ok(None) };
        let t = self.cx.table(&n).map_err(|e| e.with_hint(DKIM_HINT))?;
        self.cx.keys(&t, &["domain", "selector"]).map_err(|e| e.with_hint(DKIM_HINT))?;
        let domain = self.cx.dns_name(&self.cx.req(&t, "domain").map_err(|e| e.with_hint(DKIM_HINT))?)?;
        let selector = self.cx.dns_name(&self.cx.req(&t, "selector").map_err(|e| e.with_hint(DKIM_HINT))?)?;
        let identity = DkimIdentity::new(&domain, &selector);
        let mut distinct: BTreeSet<&DkimIdentity> = self.initial_hosts.iter().filter_map(|h| h.dkim.as_ref()).collect();
        distinct.insert(&identity);
        if distinct.len() > KEY_COUNT {
            return Err(self
                .cx
                .err(
                    &n.span,
                    &n.field,
                    format!("a world has key pairs for {KEY_COUNT} DKIM identities, and this is one more"),
                )
                .with_hint("hosts of one sender can share an identity (same domain and selector)"));
        }
        Ok(Some(identity))
    }

    /// `[[host]] relay_hops = [{ name, address }, ...]`.
    pub(super) fn relay_hops(&self, host: &Tbl<'_>) -> Result<Vec<RelayHop>, ConfigError> {
        let Some(n) = host.get("relay_hops") else { return Ok(Vec::new()) };
        let DeValue::Array(items) = n.v else {
            return Err(self.cx.type_error(&n, "an array of tables").with_hint(HOPS_HINT));
        };
        if host.get("peer").is_none() {
            return Err(self
                .cx
                .err(&n.span, &n.field, "only a host that receives and relays mail writes relay hops")
                .with_hint("add a [host.peer] table and relay_to_tenant = true"));
        }
        let mut hops = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let node = Node { v: item.get_ref(), span: item.span(), field: format!("{}[{}]", n.field, i + 1) };
            let t = self.cx.table(&node).map_err(|e| e.with_hint(HOPS_HINT))?;
            self.cx.keys(&t, &["name", "address"]).map_err(|e| e.with_hint(HOPS_HINT))?;
            let name = self.cx.dns_name(&self.cx.req(&t, "name").map_err(|e| e.with_hint(HOPS_HINT))?)?;
            let address = self.cx.ip(&self.cx.req(&t, "address").map_err(|e| e.with_hint(HOPS_HINT))?)?;
            hops.push(RelayHop { name, address });
        }
        Ok(hops)
    }

    /// A send's `to = "gateway"` (a host with a peer) and `dkim = false` (do not sign).
    pub(super) fn send_auth(&self, t: &Tbl<'_>, spec: &mut SendSpec) -> Result<(), ConfigError> {
        if let Some(n) = t.get("to") {
            let to = self.cx.string(&n)?.trim().to_string();
            match self.hosts.iter().find(|h| h.name == to) {
                Some(h) if h.peer.is_some() => spec.to_host = Some(to),
                Some(_) => {
                    return Err(self
                        .cx
                        .err(&n.span, &n.field, format!("host {to:?} receives no mail"))
                        .with_hint("give it a [host.peer] table (and relay_to_tenant = true to pass mail on)"));
                }
                None => return Err(self.unknown_host(&n, &to)),
            }
        }
        if let Some(n) = t.get("dkim") {
            spec.dkim_sign = self.cx.boolean(&n)?;
        }
        Ok(())
    }
}
