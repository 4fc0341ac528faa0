//! What the world publishes and does for email authentication (issue 11 item 5,
//! exo-behaviour §14): TXT records in `[dns]` (SPF at the domain, DMARC at `_dmarc.domain`, DKIM
//! keys at `selector._domainkey.domain`), TXT changes and record-type faults in steps.
//!
//! `[dns] txt` is a table of name = text (or an array of texts, one TXT record each), so a policy
//! needs no zone-file quoting; zone-file `TXT` lines in `[dns] records` work as well. Long texts
//! are split into 255-byte strings when served (the scripted DNS server does it).

use mailsim_testkit::dns::{DnsZoneSet, parse_record_type};
use toml::de::DeValue;

use super::walker::{Node, Tbl};
use super::{Change, Loader};
use mailsim_core::diagnostics::ConfigError;

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
}
