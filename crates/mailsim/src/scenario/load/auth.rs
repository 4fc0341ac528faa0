//! The scenario file's email-authentication vocabulary (issue 11 items 2 and 6,
//! exo-behaviour §14, §7): `[scenario] authentication = true` (or a table with the stamps'
//! settings), the `auth` expectation, and the check that `EFSkipIPs` lists none of the tenant's
//! own addresses (§2.1, §7: "no Microsoft 365 IPs").

use std::net::IpAddr;

use mailsim_core::auth::AuthConfig;
use mailsim_core::auth::walk::SkipEntry;
use mailsim_core::diagnostics::ConfigError;
use mailsim_core::tenant::Tenant;

use super::Loader;
use super::walker::{Node, Tbl};
use crate::scenario::auth_expect::AuthCheck;
use crate::scenario::expect::WorldCheck;

const SPF: [&str; 7] = ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"];
const DKIM: [&str; 5] = ["pass", "fail", "none", "temperror", "permerror"];
const DMARC: [&str; 6] = ["pass", "fail", "bestguesspass", "none", "temperror", "permerror"];
const ACTION: [&str; 6] = ["none", "quarantine", "reject", "oreject", "temperror", "permerror"];
const COMPAUTH: [&str; 4] = ["pass", "fail", "softpass", "none"];
/// Keys of `[scenario.authentication]`.
const AUTH_KEYS: [&str; 9] = ["tenant_id", "country", "lang", "scl", "sfv", "cat", "srv", "sfs", "ipv"];

impl Loader<'_> {
    /// `[scenario] authentication`: `true`/`false`, or a table of the stamps' settings (which
    /// turns it on): `tenant_id`, and the `X-Forefront-Antispam-Report` verdict fields `country`,
    /// `lang`, `scl`, `sfv`, `cat`, `srv`, `sfs`, `ipv` (exo-behaviour §14.7).
    pub(super) fn authentication(&self, n: &Node<'_>) -> Result<Option<AuthConfig>, ConfigError> {
        let cx = &self.cx;
        if let toml::de::DeValue::Boolean(b) = n.v {
            return Ok(b.then(AuthConfig::default));
        }
        let t = cx.table(n).map_err(|e| {
            e.with_hint(
                "authentication = true, or a table: authentication = { scl = 5, sfv = \"SPM\", cat = \"SPOOF\" }",
            )
        })?;
        cx.keys(&t, &AUTH_KEYS)?;
        let mut config = AuthConfig::default();
        let f = &mut config.filter;
        for (key, _, v) in t.entries() {
            match key {
                "scl" => {
                    let scl = match v.v {
                        toml::de::DeValue::Integer(i) => {
                            i.to_string().parse::<i8>().ok().filter(|s| (-1..=9).contains(s))
                        }
                        _ => None,
                    };
                    f.scl = scl.ok_or_else(|| {
                        cx.err(&v.span, &v.field, "SCL is a number from -1 to 9").with_hint("scl = 5")
                    })?;
                }
                _ => {
                    let text = cx.string(&v)?.trim().to_string();
                    if text.contains([';', '\r', '\n']) {
                        return Err(cx.err(&v.span, &v.field, format!("{text:?} may not contain ';' or a line break")));
                    }
                    match key {
                        "tenant_id" => config.tenant_id = text,
                        "country" => f.country = text,
                        "lang" => f.lang = text,
                        "sfv" => f.sfv = text,
                        "cat" => f.cat = text,
                        "srv" => f.srv = text,
                        "sfs" => f.sfs = text,
                        _ => f.ipv = text,
                    }
                }
            }
        }
        Ok(Some(config))
    }

    /// `expect = { auth = "alice@contoso.test", spf = "fail", ... }`.
    pub(super) fn auth_expect(&self, t: &Tbl<'_>, n: &Node<'_>) -> Result<WorldCheck, ConfigError> {
        let cx = &self.cx;
        let address = cx.string(n)?.trim().to_string();
        self.check_mailbox(n, &address)?;
        let word = |key: &str, allowed: &[&str]| -> Result<Option<String>, ConfigError> {
            let Some(v) = t.get(key) else { return Ok(None) };
            let text = cx.string(&v)?.trim().to_ascii_lowercase();
            if !allowed.contains(&text.as_str()) {
                return Err(cx
                    .err(&v.span, &v.field, format!("unknown {key} result {text:?}"))
                    .with_hint(allowed.join(", ")));
            }
            Ok(Some(text))
        };
        let compauth = match t.get("compauth") {
            None => None,
            Some(v) => {
                let text = cx.string(&v)?.trim().to_ascii_lowercase();
                let (result, reason) = match text.split_once(" reason=") {
                    Some((r, n)) => (r, Some(n)),
                    None => (text.as_str(), None),
                };
                let reason_ok = reason.is_none_or(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()));
                if !COMPAUTH.contains(&result) || !reason_ok {
                    return Err(cx.err(&v.span, &v.field, format!("{text:?} is not a compauth result")).with_hint(
                        "compauth = \"fail reason=000\" (pass, fail, softpass or none, and a 3-digit reason)",
                    ));
                }
                Some(text)
            }
        };
        let header = t.get("header").map(|v| cx.string(&v).map(|s| s.trim().to_string())).transpose()?;
        let equals = t.get("equals").map(|v| cx.string(&v).map(str::to_string)).transpose()?;
        let present = t.get("present").map(|v| cx.boolean(&v)).transpose()?;
        if header.is_none()
            && let Some(k) = ["equals", "present"].into_iter().find(|k| t.get(k).is_some())
        {
            return Err(cx
                .err(&t.key_span(k), &t.sub(k), format!("`{k}` needs `header`"))
                .with_hint("header = \"X-MS-Exchange-SkipListedInternetSender\", equals = \"ip=[203.0.113.5];domain=mail.partner.example\""));
        }
        Ok(WorldCheck::Auth(AuthCheck {
            address,
            spf: word("spf", &SPF)?,
            dkim: word("dkim", &DKIM)?,
            dmarc: word("dmarc", &DMARC)?,
            action: word("action", &ACTION)?,
            compauth,
            header,
            equals,
            present,
        }))
    }

    /// §2.1/§7: `EFSkipIPs` may not list the tenant's own addresses (EXO refuses Microsoft 365
    /// IPs). The error points at the connector's `EFSkipIPs` when the tenant is written in the
    /// scenario, at `tenant_file` otherwise.
    pub(super) fn check_ef_skip_own(
        &self,
        root: &Tbl<'_>,
        tenant: &Tenant,
        own: &[(IpAddr, &str)],
    ) -> Result<(), ConfigError> {
        for (i, c) in tenant.inbound_connectors.iter().enumerate() {
            for text in &c.ef_skip_ips {
                let Some(entry) = SkipEntry::parse(text) else { continue };
                let Some((ip, what)) = own.iter().find(|(ip, _)| entry.contains(*ip)) else { continue };
                let (span, field) = self.ef_skip_location(root, i);
                return Err(self
                    .cx
                    .err(&span, &field, format!("`{text}` covers {ip}, the tenant's own address ({what})"))
                    .with_hint("EFSkipIPs lists the gateway's addresses; EXO refuses its own (Microsoft 365) IPs"));
            }
        }
        Ok(())
    }

    fn ef_skip_location(&self, root: &Tbl<'_>, i: usize) -> (std::ops::Range<usize>, String) {
        let field = format!("InboundConnector[{}].EFSkipIPs", i + 1);
        if let Some(n) = root.get("InboundConnector")
            && let toml::de::DeValue::Array(items) = n.v
            && let Some(item) = items.get(i)
            && let toml::de::DeValue::Table(t) = item.get_ref()
            && let Some((_, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == "EFSkipIPs")
        {
            return (v.span(), field);
        }
        let span = root
            .get("scenario")
            .and_then(|s| self.cx.table(&s).ok())
            .and_then(|s| s.get("tenant_file"))
            .map_or(root.span.clone(), |n| n.span);
        (span, field)
    }
}
