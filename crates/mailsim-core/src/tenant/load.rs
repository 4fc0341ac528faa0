//! Tenant configuration text (TOML, EXO parameter names) → [`Tenant`]. Reading the file is the
//! caller's job: [`load`] takes the text and the path to name in errors. A document that holds a
//! tenant beside tables of its own (a scenario file) names those tables to
//! [`load_with_other_tables`]; this loader knows no table but the tenant's ([`TABLES`]).
//!
//! The loader reads text into the tenant's parts and hands them to [`TenantBuilder`], whose rules
//! (the EXO cmdlets', beside the connector types) it applies object by object so that each error
//! points at the value at fault. Errors, warnings, positions and "did you mean" hints are
//! [`crate::diagnostics`]'s.
//!
//! Format (every table optional except what a connector requires):
//!
//! ```toml
//! [Transport]                       # defaults: TransportSettings::default()
//! ServerName = "MAILSIM01.mail.protection.mailsim.test"
//! MaxMessageSize = 157286400
//! MaxRecipientsPerMessage = 200
//! RejectionStage = "EndOfData"      # or "RcptTo"
//! RelayDenialText = "TenantAttribution"   # or "UnableToRelay"
//! RejectDirectSend = false
//!
//! [[AcceptedDomain]]
//! DomainName = "contoso.test"
//! DomainType = "Authoritative"      # or "InternalRelay"
//! MatchSubDomains = false           # InternalRelay only
//!
//! [Directory]
//! Mailboxes = ["alice@contoso.test"]
//!
//! [[InboundConnector]]
//! Name = "From gateway"
//! ConnectorType = "Partner"         # or "OnPremises"
//! SenderDomains = ["*"]             # required, as for New-InboundConnector
//! SenderIPAddresses = ["198.51.100.0/24"]
//! RestrictDomainsToIPAddresses = true
//! ```
//!
//! Conventions, chosen so that an admin can paste what PowerShell shows:
//! - Booleans are TOML booleans or the strings `"$true"`/`"$false"` (and `"True"`/`"False"`, as
//!   `Get-InboundConnector | Format-List` prints them).
//! - Lists are TOML arrays or one comma-separated string (`"a,b"`, `"{a, b}"`).
//! - Enumerations (`ConnectorType`, `DomainType`, ...) are case-insensitive, as in PowerShell.
//! - Keys are case-sensitive (TOML); an unknown key is an error whose hint names the key meant.
//! - Every settable parameter of the four `New-*`/`Set-*` cmdlets loads: those mailsim gives no
//!   behaviour (`ConnectorSource`, `MtaStsMode`, ...) are listed in [`inert`] and warned once each.
//!
//! Validation follows what `New-InboundConnector` and `New-AcceptedDomain` refuse (exo-behaviour
//! §2.1, §4.1). Where EXO's behaviour is unconfirmed, the choice is stated at the check.
//!
//! Errors carry file, 1-based line and column, and the field: `InboundConnector[2].SenderDomains`
//! is the `SenderDomains` key of the second `[[InboundConnector]]` table (tables count from 1, like
//! lines).
//!
//! ```toml
//! [[OutboundConnector]]
//! Name = "To gateway"
//! ConnectorType = "Partner"         # or "OnPremises"
//! RecipientDomains = ["*"]
//! UseMXRecord = false
//! SmartHosts = ["smtp.gateway.test", "198.51.100.7:2525"]
//! TlsSettings = "DomainValidation"  # "$null" (opportunistic), EncryptionOnly, CertificateValidation
//! TlsDomain = "*.gateway.test"
//! ```
//!
//! `[ArcConfig]`, `[HostedConnectionFilterPolicy]` and `[HostedContentFilterPolicy]` are read for
//! `mailsim lint` only (L5, L16; [`crate::tenant::lint_only`]).
//!
//! Adding a table: its name in [`TABLES`], a field on `RawTenant`, a `Raw*` struct with
//! `deny_unknown_fields`, and a `build_*` function called from `load_inner`.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use super::inbound_connector::{ConnectorType, InboundConnector, check_ef_skip_ip, parse_sender_ip};
use super::outbound_connector::{OutboundConnector, SmartHost, TlsSettings};
use super::pattern::DomainPattern;
use super::{
    AcceptedDomain, DomainType, RejectionStage, RelayDenialText, Tenant, TenantBuilder, TenantError, TransportSettings,
};
use crate::addr::{Domain, EmailAddress};
use crate::diagnostics;

pub use crate::diagnostics::{ConfigError, ConfigWarning};

/// The tenant's top-level tables, in the order an admin writes them.
pub const TABLES: [&str; 10] = [
    "Transport",
    "AcceptedDomain",
    "Directory",
    "InboundConnector",
    "OutboundConnector",
    "TransportRule",
    "AntiPhishPolicy",
    "ArcConfig",
    "HostedConnectionFilterPolicy",
    "HostedContentFilterPolicy",
];

pub mod inert;
mod lint_only;
mod transport_rules;

/// A loaded tenant and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The tenant.
    pub tenant: Tenant,
    /// Warnings, in file order.
    pub warnings: Vec<ConfigWarning>,
}

/// Every key a `[[TransportRule]]` table may have with behaviour (conditions, their `ExceptIf`
/// twins, actions and the rule's own properties); [`inert::RULE`] lists the others.
pub fn transport_rule_keys() -> Vec<String> {
    transport_rules::known_keys()
}

/// Parses and validates a tenant file. `path` only names the file in errors.
pub fn load(text: &str, path: &str) -> Result<Tenant, ConfigError> {
    load_with_warnings(text, path).map(|l| l.tenant)
}

/// [`load`], also returning the warnings (assumed defaults, ignored keys, anti-patterns).
pub fn load_with_warnings(text: &str, path: &str) -> Result<Loaded, ConfigError> {
    load_inner(text, path, &[])
}

/// The tenant tables of a larger document (a scenario file is a tenant file with tables of its
/// own, scenarios/README.md): `other_tables` are the caller's top-level tables, skipped here; any
/// other key is refused as in a tenant file. Line numbers stay those of the whole document.
pub fn load_with_other_tables(text: &str, path: &str, other_tables: &[&str]) -> Result<Loaded, ConfigError> {
    load_inner(text, path, other_tables)
}

fn load_inner(text: &str, path: &str, other_tables: &[&str]) -> Result<Loaded, ConfigError> {
    let mut cx = Cx { text, path, warnings: Vec::new() };
    if other_tables.is_empty() {
        diagnostics::refuse_empty(text, path, "tenant file")?;
    }
    check_top_level(&cx, other_tables)?;
    let mut raw: RawTenant = inert::parse(&mut cx)?;
    let mut tenant = Tenant::builder().with_settings(build_transport(&cx, raw.transport)?);
    build_accepted_domains(&cx, raw.accepted_domain, &mut tenant)?;
    let groups = raw.directory.as_mut().map(|d| std::mem::take(&mut d.distribution_group)).unwrap_or_default();
    build_directory(&cx, raw.directory, &mut tenant)?;
    transport_rules::build_groups(&cx, groups, &mut tenant)?;
    build_inbound_connectors(&mut cx, raw.inbound_connector, &mut tenant)?;
    build_outbound_connectors(&mut cx, raw.outbound_connector, &mut tenant)?;
    transport_rules::build_rules(&mut cx, raw.transport_rule, &mut tenant)?;
    build_anti_phish(&cx, raw.anti_phish_policy, &mut tenant)?;
    lint_only::build(&cx, raw.arc_config, raw.connection_filter, raw.content_filter, &mut tenant)?;
    // Every object was checked as it was read, where its text is known; `build` checks them again
    // (cheaply) and builds the lookup index.
    let tenant = tenant.build().map_err(|e| cx.tenant_error(&(0..0), e))?;
    Ok(Loaded { tenant, warnings: cx.warnings })
}

/// Refuses a top-level key that is neither a tenant table nor one of `other_tables`, pointing at
/// the start of its line (the `[table]` header or `key =`). A syntax error is left to serde.
fn check_top_level(cx: &Cx<'_>, other_tables: &[&str]) -> Result<(), ConfigError> {
    let Ok(doc) = toml::de::DeTable::parse(cx.text) else { return Ok(()) };
    let mut keys: Vec<(&str, usize)> =
        doc.get_ref().iter().map(|(k, _)| (k.get_ref().as_ref(), k.span().start)).collect();
    keys.sort_by_key(|(_, at)| *at);
    let Some((key, at)) = keys.into_iter().find(|(k, _)| !TABLES.contains(k) && !other_tables.contains(k)) else {
        return Ok(());
    };
    let line_start = cx.text[..at].rfind('\n').map_or(0, |i| i + 1);
    let hint = diagnostics::key_hint(key, &TABLES).unwrap_or_else(|| format!("known tables: {}", TABLES.join(", ")));
    Err(cx.error(&(line_start..line_start), key, format!("unknown key `{key}`")).with_hint(hint))
}

// ---------------------------------------------------------------------------------------------
// Raw (serde) shapes. Every key keeps EXO's spelling; spans locate semantic errors.

/// The tenant tables; other top-level keys were checked by `check_top_level`.
#[derive(Deserialize)]
struct RawTenant {
    #[serde(rename = "Transport")]
    transport: Option<RawTransport>,
    #[serde(rename = "AcceptedDomain", default)]
    accepted_domain: Vec<Spanned<RawAcceptedDomain>>,
    #[serde(rename = "Directory")]
    directory: Option<RawDirectory>,
    #[serde(rename = "InboundConnector", default)]
    inbound_connector: Vec<Spanned<RawInboundConnector>>,
    #[serde(rename = "OutboundConnector", default)]
    outbound_connector: Vec<Spanned<RawOutboundConnector>>,
    #[serde(rename = "TransportRule", default)]
    transport_rule: Vec<Spanned<transport_rules::RawTransportRule>>,
    #[serde(rename = "AntiPhishPolicy")]
    anti_phish_policy: Option<RawAntiPhishPolicy>,
    #[serde(rename = "ArcConfig")]
    arc_config: Option<lint_only::RawArcConfig>,
    #[serde(rename = "HostedConnectionFilterPolicy")]
    connection_filter: Option<lint_only::RawConnectionFilter>,
    #[serde(rename = "HostedContentFilterPolicy")]
    content_filter: Option<lint_only::RawContentFilter>,
}

/// `[AntiPhishPolicy]` (exo-behaviour §14.5), the DMARC-related parameters of the default policy.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawAntiPhishPolicy {
    honor_dmarc_policy: Option<Spanned<PsBool>>,
    dmarc_reject_action: Option<Spanned<String>>,
    dmarc_quarantine_action: Option<Spanned<String>>,
    authentication_fail_action: Option<Spanned<String>>,
    enable_spoof_intelligence: Option<Spanned<PsBool>>,
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawOutboundConnector {
    name: Spanned<String>,
    enabled: Option<Spanned<PsBool>>,
    connector_type: Option<Spanned<String>>,
    recipient_domains: Option<Spanned<StrList>>,
    smart_hosts: Option<Spanned<StrList>>,
    #[serde(rename = "UseMXRecord")]
    use_mx_record: Option<Spanned<PsBool>>,
    tls_settings: Option<Spanned<String>>,
    tls_domain: Option<Spanned<String>>,
    is_transport_rule_scoped: Option<Spanned<PsBool>>,
    route_all_messages_via_on_premises: Option<Spanned<PsBool>>,
    all_accepted_domains: Option<Spanned<PsBool>>,
    test_mode: Option<Spanned<PsBool>>,
    cloud_services_mail_enabled: Option<Spanned<PsBool>>,
    validation_recipients: Option<Spanned<StrList>>,
    comment: Option<String>,
}

impl RawOutboundConnector {
    /// Where a parameter's value is written, for the builder's errors (`TenantError::at`).
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        match key {
            "Name" => Some(self.name.span()),
            "RecipientDomains" => self.recipient_domains.as_ref().map(Spanned::span),
            "SmartHosts" => self.smart_hosts.as_ref().map(Spanned::span),
            "UseMXRecord" => self.use_mx_record.as_ref().map(Spanned::span),
            "AllAcceptedDomains" => self.all_accepted_domains.as_ref().map(Spanned::span),
            "RouteAllMessagesViaOnPremises" => self.route_all_messages_via_on_premises.as_ref().map(Spanned::span),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawTransport {
    server_name: Option<Spanned<String>>,
    max_message_size: Option<Spanned<i64>>,
    max_recipients_per_message: Option<Spanned<i64>>,
    max_header_size: Option<Spanned<i64>>,
    max_protocol_errors: Option<Spanned<i64>>,
    rejection_stage: Option<Spanned<String>>,
    relay_denial_text: Option<Spanned<String>>,
    reject_direct_send: Option<Spanned<PsBool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawAcceptedDomain {
    domain_name: Spanned<String>,
    domain_type: Option<Spanned<String>>,
    match_sub_domains: Option<Spanned<PsBool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawDirectory {
    mailboxes: Option<Spanned<StrList>>,
    #[serde(default)]
    distribution_group: Vec<Spanned<transport_rules::RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawInboundConnector {
    name: Spanned<String>,
    enabled: Option<Spanned<PsBool>>,
    connector_type: Option<Spanned<String>>,
    sender_domains: Option<Spanned<StrList>>,
    #[serde(rename = "SenderIPAddresses")]
    sender_ip_addresses: Option<Spanned<StrList>>,
    tls_sender_certificate_name: Option<Spanned<String>>,
    require_tls: Option<Spanned<PsBool>>,
    #[serde(rename = "RestrictDomainsToIPAddresses")]
    restrict_domains_to_ip_addresses: Option<Spanned<PsBool>>,
    restrict_domains_to_certificate: Option<Spanned<PsBool>>,
    treat_messages_as_internal: Option<Spanned<PsBool>>,
    cloud_services_mail_enabled: Option<Spanned<PsBool>>,
    associated_accepted_domains: Option<Spanned<StrList>>,
    #[serde(rename = "EFSkipIPs")]
    ef_skip_ips: Option<Spanned<StrList>>,
    #[serde(rename = "EFSkipLastIP")]
    ef_skip_last_ip: Option<Spanned<PsBool>>,
    #[serde(rename = "EFUsers")]
    ef_users: Option<Spanned<StrList>>,
    client_host_names: Option<Spanned<StrList>>,
    comment: Option<String>,
}

impl RawInboundConnector {
    /// Where a parameter's value is written, for the builder's errors (`TenantError::at`).
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        match key {
            "Name" => Some(self.name.span()),
            "SenderDomains" => self.sender_domains.as_ref().map(Spanned::span),
            "SenderIPAddresses" => self.sender_ip_addresses.as_ref().map(Spanned::span),
            "TlsSenderCertificateName" => self.tls_sender_certificate_name.as_ref().map(Spanned::span),
            "RestrictDomainsToIPAddresses" => self.restrict_domains_to_ip_addresses.as_ref().map(Spanned::span),
            "RestrictDomainsToCertificate" => self.restrict_domains_to_certificate.as_ref().map(Spanned::span),
            "TreatMessagesAsInternal" => self.treat_messages_as_internal.as_ref().map(Spanned::span),
            "AssociatedAcceptedDomains" => self.associated_accepted_domains.as_ref().map(Spanned::span),
            "EFSkipIPs" => self.ef_skip_ips.as_ref().map(Spanned::span),
            _ => None,
        }
    }
}

/// A boolean as TOML writes it or as PowerShell does (`"$true"`, `"$false"`, `"True"`, `"False"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PsBool(bool);

impl<'de> Deserialize<'de> for PsBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PsBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, \"$true\" or \"$false\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PsBool, E> {
                Ok(PsBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PsBool, E> {
                let t = v.trim();
                let t = t.strip_prefix('$').unwrap_or(t);
                if t.eq_ignore_ascii_case("true") {
                    Ok(PsBool(true))
                } else if t.eq_ignore_ascii_case("false") {
                    Ok(PsBool(false))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One list item and where it was written (`None` when it came from a comma-separated string; the
/// list's own span is used then).
struct Item {
    text: String,
    span: Option<Range<usize>>,
}

/// A list as a TOML array of strings or as one comma-separated string (PowerShell's `a,b` and the
/// `{a, b}` that `Format-List` prints).
struct StrList(Vec<Item>);

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings or a comma-separated string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrList, E> {
                let v = v.trim();
                let v = v.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(v);
                let items = v.split(',').map(str::trim).filter(|s| !s.is_empty());
                Ok(StrList(items.map(|s| Item { text: s.to_string(), span: None }).collect()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Spanned<String>>()? {
                    let span = s.span();
                    out.push(Item { text: s.into_inner(), span: Some(span) });
                }
                Ok(StrList(out))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Positions and errors.

struct Cx<'a> {
    text: &'a str,
    path: &'a str,
    warnings: Vec<ConfigWarning>,
}

impl Cx<'_> {
    fn error(&self, span: &Range<usize>, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.text, self.path, span, field, message)
    }

    /// A rule the tenant builder enforces, pointed at `span`.
    fn tenant_error(&self, span: &Range<usize>, e: TenantError) -> ConfigError {
        let mut err = self.error(span, e.field(), e.error.message);
        err.hint = e.error.hint;
        err
    }

    fn warn(&mut self, span: &Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let (line, _) = diagnostics::position(self.text, span.start);
        self.warnings.push(ConfigWarning {
            file: self.path.to_string(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    /// A TOML syntax or shape error, with the field found from the text around it.
    fn syntax_error(&self, e: &toml::de::Error) -> ConfigError {
        let (span, message) = diagnostics::syntax_error_at(self.text, e.span(), e.message());
        let mut err = self.error(&span, field_at(self.text, span.start), message.clone());
        err.hint = unknown_key_hint(&message);
        // serde lists every known key; the hint names the one meant, so keep the message short.
        if let Some((head, known)) = message.split_once(", expected one of ")
            && head.starts_with("unknown field")
        {
            err.message = head.replacen("unknown field", "unknown key", 1);
            if err.hint.is_none() {
                err.hint = Some(format!("known keys here: {}", known.replace('`', "")));
            }
        }
        if err.hint.is_none() && message.starts_with("missing field `SenderDomains`") {
            err.hint = Some("write `SenderDomains = [\"*\"]` to cover every sender domain".to_string());
        }
        err
    }
}

/// The dotted field an offset falls in, from the nearest table header and `Key =` line above it:
/// `InboundConnector[2].SenderIPAddresses`.
/// The scenario loader names the field of a TOML syntax error with it too.
pub fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > offset {
            break;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split_once("]]")).map(|(n, _)| n.trim()) {
            let n = match counts.iter_mut().find(|(k, _)| k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.to_string(), 1));
                    1
                }
            };
            table = format!("{name}[{n}]");
            key.clear();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(n, _)| n.trim()) {
            table = name.to_string();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=')
            && !t.starts_with('#')
        {
            let k = k.trim().trim_matches('"');
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                key = k.to_string();
            }
        }
        pos += line.len();
    }
    let field = match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    // A field is for reading: a key of hundreds of dotted parts is shown by its start.
    if field.chars().count() > 80 { field.chars().take(80).chain(['…']).collect() } else { field }
}

/// For serde's "unknown field `X`, expected one of `A`, `B`": the key probably meant.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    if unknown == "ConnectorSource" || unknown == "TrustedOrganizations" {
        return Some(format!("{unknown} has no effect in mailsim; remove it"));
    }
    let mut expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    // The keys accepted without behaviour are candidates too (`ConectorSource`).
    for key in inert::all_keys() {
        expected.push(key);
    }
    diagnostics::key_hint(unknown, &expected)
}

/// A case-insensitive enumeration value.
fn choice<T: Copy>(cx: &Cx<'_>, value: &Spanned<String>, field: &str, options: &[(&str, T)]) -> Result<T, ConfigError> {
    let v = value.get_ref().trim();
    options.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        cx.error(&value.span(), field, format!("`{v}` is not one of {}", names.join(", ")))
    })
}

fn flag(v: &Option<Spanned<PsBool>>) -> bool {
    v.as_ref().is_some_and(|b| b.get_ref().0)
}

fn items(list: &Option<Spanned<StrList>>) -> impl Iterator<Item = (&str, Range<usize>)> {
    list.iter().flat_map(|l| {
        let outer = l.span();
        l.get_ref().0.iter().map(move |i| (i.text.as_str(), i.span.clone().unwrap_or_else(|| outer.clone())))
    })
}

// ---------------------------------------------------------------------------------------------
// Tables.

/// `[AntiPhishPolicy]`: EXO's names and values, case-insensitive (exo-behaviour §14.5).
fn build_anti_phish(
    cx: &Cx<'_>,
    raw: Option<RawAntiPhishPolicy>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    use super::anti_phish::{AuthenticationFailAction as F, DmarcQuarantineAction as Q, DmarcRejectAction as R};
    let Some(raw) = raw else { return Ok(()) };
    let p = &mut tenant.anti_phish;
    if let Some(v) = &raw.honor_dmarc_policy {
        p.honor_dmarc_policy = v.get_ref().0;
    }
    if let Some(v) = &raw.enable_spoof_intelligence {
        p.enable_spoof_intelligence = v.get_ref().0;
    }
    if let Some(v) = &raw.dmarc_reject_action {
        p.dmarc_reject_action = choice(
            cx,
            v,
            "AntiPhishPolicy.DmarcRejectAction",
            &[("Reject", R::Reject), ("Quarantine", R::Quarantine)],
        )?;
    }
    if let Some(v) = &raw.dmarc_quarantine_action {
        p.dmarc_quarantine_action = choice(
            cx,
            v,
            "AntiPhishPolicy.DmarcQuarantineAction",
            &[("Quarantine", Q::Quarantine), ("MoveToJmf", Q::MoveToJmf)],
        )?;
    }
    if let Some(v) = &raw.authentication_fail_action {
        p.authentication_fail_action = choice(
            cx,
            v,
            "AntiPhishPolicy.AuthenticationFailAction",
            &[("MoveToJmf", F::MoveToJmf), ("Quarantine", F::Quarantine)],
        )?;
    }
    let _ = raw.comment;
    Ok(())
}

fn build_transport(cx: &Cx<'_>, raw: Option<RawTransport>) -> Result<TransportSettings, ConfigError> {
    let mut s = TransportSettings::default();
    let Some(raw) = raw else { return Ok(s) };
    if let Some(name) = &raw.server_name {
        Domain::parse(name.get_ref().trim(), false).map_err(|e| {
            cx.error(&name.span(), "Transport.ServerName", format!("`{}` is not a host name ({e})", name.get_ref()))
        })?;
        s.server_name = name.get_ref().trim().to_string();
    }
    let positive = |v: &Spanned<i64>, field: &str| -> Result<u64, ConfigError> {
        u64::try_from(*v.get_ref())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| cx.error(&v.span(), field, format!("{} must be a positive number", v.get_ref())))
    };
    if let Some(v) = &raw.max_message_size {
        s.max_message_size = positive(v, "Transport.MaxMessageSize")?;
    }
    if let Some(v) = &raw.max_recipients_per_message {
        s.max_recipients = positive(v, "Transport.MaxRecipientsPerMessage")? as usize;
    }
    if let Some(v) = &raw.max_header_size {
        s.max_header_size = positive(v, "Transport.MaxHeaderSize")? as usize;
    }
    if let Some(v) = &raw.max_protocol_errors {
        s.max_protocol_errors = u32::try_from(positive(v, "Transport.MaxProtocolErrors")?).unwrap_or(u32::MAX);
    }
    if let Some(v) = &raw.rejection_stage {
        s.rejection_stage = choice(
            cx,
            v,
            "Transport.RejectionStage",
            &[("EndOfData", RejectionStage::EndOfData), ("RcptTo", RejectionStage::RcptTo)],
        )?;
    }
    if let Some(v) = &raw.relay_denial_text {
        s.relay_denial_text = choice(
            cx,
            v,
            "Transport.RelayDenialText",
            &[
                ("TenantAttribution", RelayDenialText::TenantAttribution),
                ("UnableToRelay", RelayDenialText::UnableToRelay),
            ],
        )?;
    }
    s.reject_direct_send = flag(&raw.reject_direct_send);
    Ok(s)
}

fn build_accepted_domains(
    cx: &Cx<'_>,
    raw: Vec<Spanned<RawAcceptedDomain>>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    for (n, spanned) in raw.iter().enumerate() {
        let field = |k: &str| format!("AcceptedDomain[{}].{k}", n + 1);
        let d = spanned.get_ref();
        let name_text = d.domain_name.get_ref().trim();
        if name_text.contains('*') {
            return Err(cx
                .error(
                    &d.domain_name.span(),
                    field("DomainName"),
                    format!("`{name_text}`: accepted domains are not wildcards"),
                )
                .with_hint("use DomainType = \"InternalRelay\" with MatchSubDomains = true to accept subdomains"));
        }
        let name = Domain::parse(name_text, true).map_err(|e| {
            cx.error(&d.domain_name.span(), field("DomainName"), format!("`{name_text}` is not a domain name ({e})"))
        })?;
        if name_text.starts_with('[') {
            return Err(cx.error(&d.domain_name.span(), field("DomainName"), "an address literal is not a domain"));
        }
        let domain_type = match &d.domain_type {
            None => DomainType::Authoritative,
            Some(v) if v.get_ref().trim().eq_ignore_ascii_case("ExternalRelay") => {
                return Err(cx
                    .error(
                        &v.span(),
                        field("DomainType"),
                        "ExternalRelay exists only in Exchange Server, not in Exchange Online",
                    )
                    .with_hint("use InternalRelay (exo-behaviour §4.1)"));
            }
            Some(v) => choice(
                cx,
                v,
                &field("DomainType"),
                &[("Authoritative", DomainType::Authoritative), ("InternalRelay", DomainType::InternalRelay)],
            )?,
        };
        let match_subdomains = flag(&d.match_sub_domains);
        tenant.accepted_domains.push(AcceptedDomain { name, domain_type, match_subdomains });
        tenant.check_accepted_domain(n).map_err(|e| {
            let span = match e.error.at {
                "MatchSubDomains" => d.match_sub_domains.as_ref().map(Spanned::span),
                _ => Some(d.domain_name.span()),
            };
            cx.tenant_error(&span.unwrap_or_else(|| spanned.span()), e)
        })?;
    }
    Ok(())
}

fn build_directory(cx: &Cx<'_>, raw: Option<RawDirectory>, tenant: &mut TenantBuilder) -> Result<(), ConfigError> {
    let Some(raw) = raw else { return Ok(()) };
    for (text, span) in items(&raw.mailboxes) {
        let address = EmailAddress::parse(text, true)
            .map_err(|e| cx.error(&span, "Directory.Mailboxes", format!("`{text}` is not an email address ({e})")))?;
        tenant.check_mailbox(&address).map_err(|e| cx.tenant_error(&span, e))?;
        tenant.mailboxes.insert(address.key());
    }
    Ok(())
}

/// `[[OutboundConnector]]` tables, validated as `New-OutboundConnector` validates them (§3.1).
fn build_outbound_connectors(
    cx: &mut Cx<'_>,
    raw: Vec<Spanned<RawOutboundConnector>>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    for (n, spanned) in raw.iter().enumerate() {
        let table_span = spanned.span();
        let r = spanned.get_ref();
        let field = |k: &str| format!("OutboundConnector[{}].{k}", n + 1);
        let name = r.name.get_ref().trim().to_string();
        let mut c = OutboundConnector::new(&name);
        c.enabled = r.enabled.as_ref().is_none_or(|b| b.get_ref().0);
        if let Some(v) = &r.connector_type {
            c.connector_type = choice(
                cx,
                v,
                &field("ConnectorType"),
                &[("Partner", ConnectorType::Partner), ("OnPremises", ConnectorType::OnPremises)],
            )?;
        }
        for (text, span) in items(&r.recipient_domains) {
            let p = DomainPattern::parse_detailed(text)
                .map_err(|e| cx.error(&span, field("RecipientDomains"), format!("`{text}`: {e}")))?;
            c.recipient_domains.push(p);
        }
        for (text, span) in items(&r.smart_hosts) {
            let host = SmartHost::parse_detailed(text).map_err(|e| {
                cx.error(&span, field("SmartHosts"), format!("`{text}`: {e}")).with_hint(
                    "write `host`, `host:port`, `IP`, `IP:port`, or `[host]:port` for a next hop without MX lookup",
                )
            })?;
            c.smart_hosts.push(host);
        }
        c.use_mx_record = r.use_mx_record.as_ref().is_none_or(|b| b.get_ref().0);
        if let Some(v) = &r.tls_settings {
            let text = v.get_ref().trim();
            c.tls_settings = if text.is_empty() || text.eq_ignore_ascii_case("$null") {
                TlsSettings::Opportunistic
            } else {
                choice(
                    cx,
                    v,
                    &field("TlsSettings"),
                    &[
                        ("EncryptionOnly", TlsSettings::EncryptionOnly),
                        ("CertificateValidation", TlsSettings::CertificateValidation),
                        ("DomainValidation", TlsSettings::DomainValidation),
                    ],
                )?
            };
        }
        if let Some(v) = &r.tls_domain {
            let text = v.get_ref().trim();
            if !text.is_empty() && !text.eq_ignore_ascii_case("$null") {
                c.tls_domain = Some(
                    DomainPattern::parse_detailed(text)
                        .map_err(|e| cx.error(&v.span(), field("TlsDomain"), format!("`{text}`: {e}")))?,
                );
            }
        }
        c.is_transport_rule_scoped = flag(&r.is_transport_rule_scoped);
        c.route_all_messages_via_on_premises = flag(&r.route_all_messages_via_on_premises);
        c.all_accepted_domains = flag(&r.all_accepted_domains);
        c.test_mode = flag(&r.test_mode);
        if c.test_mode {
            // §12: TestMode is accepted and stored, with no behaviour (its semantics are undocumented).
            let span = r.test_mode.as_ref().map_or_else(|| table_span.clone(), Spanned::span);
            cx.warn(
                &span,
                field("TestMode"),
                "accepted and stored; it has no effect in mailsim (undocumented in Exchange Online)",
            );
        }
        c.cloud_services_mail_enabled = flag(&r.cloud_services_mail_enabled);
        for (text, span) in items(&r.validation_recipients) {
            let address = EmailAddress::parse(text.trim(), true).map_err(|e| {
                cx.error(&span, field("ValidationRecipients"), format!("`{text}` is not an email address ({e})"))
            })?;
            c.validation_recipients.push(address);
        }
        c.comment = r.comment.clone();
        tenant.outbound_connectors.push(c);
        tenant
            .check_outbound_connector(n)
            .map_err(|e| cx.tenant_error(&r.span_of(e.error.at).unwrap_or(table_span), e))?;
    }
    Ok(())
}

fn build_inbound_connectors(
    cx: &mut Cx<'_>,
    raw: Vec<Spanned<RawInboundConnector>>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    for (n, spanned) in raw.iter().enumerate() {
        let table_span = spanned.span();
        let r = spanned.get_ref();
        let field = |k: &str| format!("InboundConnector[{}].{k}", n + 1);

        let name = r.name.get_ref().trim().to_string();
        let mut c = InboundConnector::new(&name, ConnectorType::Partner);
        c.enabled = r.enabled.as_ref().is_none_or(|b| b.get_ref().0);
        // ConnectorType: Partner when absent (the EAC default; the cmdlet lists none, §2.1).
        if let Some(v) = &r.connector_type {
            c.connector_type = choice(
                cx,
                v,
                &field("ConnectorType"),
                &[("Partner", ConnectorType::Partner), ("OnPremises", ConnectorType::OnPremises)],
            )?;
        }

        // SenderDomains is mandatory for New-InboundConnector (§2.1, §11: there is no "any" default).
        c.sender_domains.clear();
        for (text, span) in items(&r.sender_domains) {
            let p = DomainPattern::parse_detailed(text)
                .map_err(|e| cx.error(&span, field("SenderDomains"), format!("`{text}`: {e}")))?;
            c.sender_domains.push(p);
        }

        for (text, span) in items(&r.sender_ip_addresses) {
            let net = parse_sender_ip(text).map_err(|e| {
                let err = cx.error(&span, field("SenderIPAddresses"), e.to_string());
                match e.hint() {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            })?;
            if !c.sender_ip_addresses.contains(&net) {
                c.sender_ip_addresses.push(net);
            }
        }

        if let Some(v) = &r.tls_sender_certificate_name {
            let text = v.get_ref().trim();
            // An empty value or `$null` is how PowerShell output shows "not set".
            if !text.is_empty() && !text.eq_ignore_ascii_case("$null") {
                let p = DomainPattern::parse_detailed(text)
                    .map_err(|e| cx.error(&v.span(), field("TlsSenderCertificateName"), format!("`{text}`: {e}")))?;
                c.tls_sender_certificate_name = Some(p);
            }
        }

        // RequireTls: the current reference says $true by default, the older one and Microsoft365DSC
        // say $false (§2.1 conflict). mailsim assumes $false when absent, as §12 recommends, and warns.
        match &r.require_tls {
            Some(b) => c.require_tls = b.get_ref().0,
            None => cx.warn(
                &r.name.span(),
                field("RequireTls"),
                "not set; mailsim assumes $false (Microsoft's documentation disagrees on the default)",
            ),
        }
        c.restrict_domains_to_ip_addresses = flag(&r.restrict_domains_to_ip_addresses);
        c.restrict_domains_to_certificate = flag(&r.restrict_domains_to_certificate);
        c.treat_messages_as_internal = flag(&r.treat_messages_as_internal);
        c.cloud_services_mail_enabled = flag(&r.cloud_services_mail_enabled);
        c.ef_skip_last_ip = flag(&r.ef_skip_last_ip);
        c.comment = r.comment.clone();
        for (text, span) in items(&r.associated_accepted_domains) {
            let d =
                Domain::parse(text.trim(), true).ok().filter(|d| tenant.accepted_domains.iter().any(|a| a.name == *d));
            let Some(d) = d else {
                let names: Vec<String> = tenant.accepted_domains.iter().map(|a| a.name.to_string()).collect();
                return Err(cx
                    .error(&span, field("AssociatedAcceptedDomains"), format!("`{text}` is not an accepted domain"))
                    .with_hint(format!(
                        "accepted domains: {}",
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    )));
            };
            c.associated_accepted_domains.push(d);
        }

        for (text, span) in items(&r.ef_skip_ips) {
            check_ef_skip_ip(text).map_err(|m| cx.error(&span, field("EFSkipIPs"), m))?;
            c.ef_skip_ips.push(text.trim().to_string());
        }
        for (text, span) in items(&r.ef_users) {
            let a = EmailAddress::parse(text.trim(), true)
                .map_err(|e| cx.error(&span, field("EFUsers"), format!("`{text}` is not an address ({e})")))?;
            c.ef_users.push(a);
        }
        for (text, _) in items(&r.client_host_names) {
            c.client_host_names.push(text.to_string());
        }
        if let Some(v) = &r.client_host_names {
            cx.warn(&v.span(), field("ClientHostNames"), "accepted and ignored (undocumented in Exchange Online)");
        }

        // Anti-patterns EXO accepts but Microsoft warns about (§1.3, §2.2).
        if c.connector_type == ConnectorType::Partner
            && !c.sender_ip_addresses.is_empty()
            && c.tls_sender_certificate_name.is_some()
        {
            cx.warn(
                &r.name.span(),
                field("SenderIPAddresses"),
                "a Partner connector should be keyed by IP or by certificate, not both; use two connectors",
            );
        }
        if c.connector_type == ConnectorType::OnPremises
            && let Some(d) = c.tls_sender_certificate_name.as_ref().and_then(DomainPattern::domain)
            && !tenant.accepted_domains.iter().any(|a| d.is_within(&a.name))
        {
            cx.warn(
                &r.tls_sender_certificate_name.as_ref().map_or_else(|| table_span.clone(), Spanned::span),
                field("TlsSenderCertificateName"),
                format!("{d} is not an accepted domain: relaying foreign senders will be refused (5.7.64 ATTR36)"),
            );
        }
        // §1.3 (hybrid): a non-wildcard certificate name must itself be an accepted domain, or mail
        // from on-premises attributed by it is refused with 5.7.51.
        if c.connector_type == ConnectorType::OnPremises
            && let Some(DomainPattern::Exact(d)) = &c.tls_sender_certificate_name
            && !tenant.accepted_domains.iter().any(|a| a.name == *d)
        {
            let parent = d.as_str().split_once('.').map_or(d.as_str(), |(_, p)| p);
            cx.warn(
                &r.tls_sender_certificate_name.as_ref().map_or_else(|| table_span.clone(), Spanned::span),
                field("TlsSenderCertificateName"),
                format!(
                    "{d} is not itself an accepted domain: mail from on-premises matched by this certificate is refused with 5.7.51 (exo-behaviour §1.3); write `*.{parent}` or add {d} as an accepted domain"
                ),
            );
        }
        tenant.inbound_connectors.push(c);
        tenant
            .check_inbound_connector(n)
            .map_err(|e| cx.tenant_error(&r.span_of(e.error.at).unwrap_or(table_span), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match load(text, "t.toml") {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    const DOMAINS: &str = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n";

    fn connector(body: &str) -> String {
        format!("{DOMAINS}[[InboundConnector]]\nName = \"c\"\n{body}\n")
    }

    #[test]
    fn full_example_loads_with_every_field() {
        let text = r#"
[Transport]
ServerName = "MAILSIM02.mail.protection.mailsim.test"
MaxMessageSize = 1048576
MaxRecipientsPerMessage = 10
RejectionStage = "rcptto"
RelayDenialText = "UnableToRelay"
RejectDirectSend = "$true"

[[AcceptedDomain]]
DomainName = "Contoso.test"
DomainType = "Authoritative"

[[AcceptedDomain]]
DomainName = "relay.test"
DomainType = "internalrelay"
MatchSubDomains = "$true"

[Directory]
Mailboxes = ["Alice@contoso.test", "bob@relay.test"]

[[InboundConnector]]
Name = "From gateway"
Enabled = "$true"
ConnectorType = "Partner"
SenderDomains = "smtp:*;1"
SenderIPAddresses = "{198.51.100.0/24, 203.0.113.7}"
RequireTls = "True"
RestrictDomainsToIPAddresses = true
AssociatedAcceptedDomains = ["contoso.test"]
EFSkipIPs = ["198.51.100.0/24", "203.0.113.1-203.0.113.9"]
EFSkipLastIP = false
Comment = "gateway lock-down"

[[InboundConnector]]
Name = "Inbound from on-premises"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
TlsSenderCertificateName = "*.contoso.test"
RequireTls = true
CloudServicesMailEnabled = true
ClientHostNames = ["mail.contoso.test"]
"#;
        let loaded = load_with_warnings(text, "t.toml").unwrap();
        let t = &loaded.tenant;
        assert_eq!(t.settings.server_name, "MAILSIM02.mail.protection.mailsim.test");
        assert_eq!(t.settings.max_message_size, 1_048_576);
        assert_eq!(t.settings.max_recipients, 10);
        assert_eq!(t.settings.rejection_stage, RejectionStage::RcptTo);
        assert_eq!(t.settings.relay_denial_text, RelayDenialText::UnableToRelay);
        assert!(t.settings.reject_direct_send);
        assert_eq!(t.accepted_domains[0].name.as_str(), "contoso.test");
        assert!(t.accepted_domains[1].match_subdomains);
        assert!(t.has_mailbox(&"alice@Contoso.test".parse().unwrap()));
        let gw = &t.inbound_connectors[0];
        assert_eq!(gw.sender_domains, vec![DomainPattern::Any]);
        assert_eq!(gw.sender_ip_addresses, vec!["198.51.100.0/24".parse().unwrap(), "203.0.113.7/32".parse().unwrap()]);
        assert!(gw.require_tls && gw.restrict_domains_to_ip_addresses && gw.enabled);
        assert_eq!(gw.ef_skip_ips.len(), 2);
        assert_eq!(gw.comment.as_deref(), Some("gateway lock-down"));
        let onprem = &t.inbound_connectors[1];
        assert_eq!(onprem.connector_type, ConnectorType::OnPremises);
        assert_eq!(onprem.tls_sender_certificate_name, DomainPattern::parse("*.contoso.test"));
        assert!(onprem.cloud_services_mail_enabled);
        assert_eq!(onprem.client_host_names, vec!["mail.contoso.test"]);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert_eq!(
            loaded.warnings[0].to_string(),
            "t.toml:42: warning: InboundConnector[2].ClientHostNames: accepted and ignored (undocumented in Exchange Online)"
        );
    }

    #[test]
    fn empty_file_is_refused_and_a_minimal_file_has_defaults() {
        // Issue 14: an empty or comment-only tenant file is a mistake, not a tenant of defaults.
        for empty in ["", "# only a comment\n\n"] {
            let e = load(empty, "t.toml").unwrap_err();
            assert_eq!(
                e.to_string(),
                "t.toml:1:1: the tenant file is empty: it has no tables and no keys\n  hint: a tenant file names at least one table, e.g. `[[AcceptedDomain]]`"
            );
        }
        let t = load("[Transport]\n", "t.toml").unwrap();
        assert_eq!(t.settings, TransportSettings::default());
        assert!(t.inbound_connectors.is_empty());
    }

    #[test]
    fn missing_require_tls_defaults_to_false_with_a_warning() {
        let text = format!("{DOMAINS}[[InboundConnector]]\nName = \"c\"\nSenderDomains = [\"*\"]\n");
        let loaded = load_with_warnings(&text, "t.toml").unwrap();
        assert!(!loaded.tenant.inbound_connectors[0].require_tls);
        assert_eq!(
            loaded.warnings[0].to_string(),
            "t.toml:5: warning: InboundConnector[1].RequireTls: not set; mailsim assumes $false (Microsoft's documentation disagrees on the default)"
        );
    }

    /// Hostile rows: every refusal names the line, the field and, where it can, the fix.
    #[test]
    fn refusals_table() {
        // (file text, "line:col", field, message fragment, hint fragment)
        let rows: Vec<(String, &str, &str, &str, &str)> = vec![
            (
                connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\", \"2001:db8::/32\"]"),
                "7:41",
                "InboundConnector[1].SenderIPAddresses",
                "IPv6",
                "certificate",
            ),
            (
                connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.1-198.51.100.20\"]"),
                "7:22",
                "InboundConnector[1].SenderIPAddresses",
                "dash range",
                "CIDR blocks: 198.51.100.1/32, 198.51.100.2/31",
            ),
            (
                connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"10.1.0.0/16\"]"),
                "7:22",
                "InboundConnector[1].SenderIPAddresses",
                "/24 to /32",
                "(256 blocks)",
            ),
            (
                connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.300\"]"),
                "7:22",
                "InboundConnector[1].SenderIPAddresses",
                "not an IPv4 address",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.9/24\"]"),
                "7:22",
                "InboundConnector[1].SenderIPAddresses",
                "host bits",
                "198.51.100.0/24",
            ),
            (
                connector("SenderDomains = [\"a.*.contoso.com\"]"),
                "6:18",
                "InboundConnector[1].SenderDomains",
                "wildcard may only be",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nTlsSenderCertificateName = \"mail.*.contoso.com\""),
                "7:28",
                "InboundConnector[1].TlsSenderCertificateName",
                "wildcard",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nTlsSenderCertificateName = \"*\""),
                "7:28",
                "InboundConnector[1].TlsSenderCertificateName",
                "names no certificate",
                "*.contoso.com",
            ),
            (connector(""), "4:1", "InboundConnector[1].SenderDomains", "SenderDomains is required", "[\"*\"]"),
            (connector("SenderDomains = []"), "6:17", "InboundConnector[1].SenderDomains", "required", "[\"*\"]"),
            (
                connector("SenderDomains = [\"*\"]\nConnectorType = \"OnPremises\"\nRestrictDomainsToIPAddresses = true\nSenderIPAddresses = [\"198.51.100.7\"]"),
                "8:32",
                "InboundConnector[1].RestrictDomainsToIPAddresses",
                "only works on Partner",
                "separate Partner connector",
            ),
            (
                connector("SenderDomains = [\"*\"]\nRestrictDomainsToCertificate = true"),
                "7:32",
                "InboundConnector[1].RestrictDomainsToCertificate",
                "needs TlsSenderCertificateName",
                "TlsSenderCertificateName =",
            ),
            (
                connector("SenderDomains = [\"*\"]\nRestrictDomainsToIPAddresses = \"$true\""),
                "7:32",
                "InboundConnector[1].RestrictDomainsToIPAddresses",
                "needs SenderIPAddresses",
                "SenderIPAddresses =",
            ),
            (
                connector("SenderDomains = [\"*\"]\nTreatMessagesAsInternal = true"),
                "7:27",
                "InboundConnector[1].TreatMessagesAsInternal",
                "only allowed on OnPremises",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nConnectorType = \"OnPremises\"\nTreatMessagesAsInternal = true\nCloudServicesMailEnabled = true"),
                "8:27",
                "InboundConnector[1].TreatMessagesAsInternal",
                "CloudServicesMailEnabled",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nConnectorType = \"Gateway\""),
                "7:17",
                "InboundConnector[1].ConnectorType",
                "`Gateway` is not one of Partner, OnPremises",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nAssociatedAcceptedDomains = [\"fabrikam.test\"]"),
                "7:30",
                "InboundConnector[1].AssociatedAcceptedDomains",
                "`fabrikam.test` is not an accepted domain",
                "accepted domains: contoso.test",
            ),
            (
                connector("SenderDomains = [\"*\"]\nSenderIpAddresses = [\"198.51.100.7\"]"),
                "7:1",
                "InboundConnector[1].SenderIpAddresses",
                "unknown key `SenderIpAddresses`",
                "keys are case-sensitive: write `SenderIPAddresses`",
            ),
            (
                connector("SenderDomains = [\"*\"]\nRestrictDomainToIPAddresses = true"),
                "7:1",
                "InboundConnector[1].RestrictDomainToIPAddresses",
                "unknown key",
                "did you mean `RestrictDomainsToIPAddresses`?",
            ),
            (
                connector("SenderDomains = [\"*\"]\nEnabled = \"yes\""),
                "7:11",
                "InboundConnector[1].Enabled",
                "invalid value: string \"yes\"",
                "",
            ),
            (
                connector("SenderDomains = [\"*\"]\nEFSkipIPs = [\"10.0.0.1\"]"),
                "7:14",
                "InboundConnector[1].EFSkipIPs",
                "RFC 1918",
                "",
            ),
            (
                format!("{}[[InboundConnector]]\nName = \"C\"\nSenderDomains = [\"*\"]", connector("SenderDomains = [\"*\"]")),
                "8:8",
                "InboundConnector[2].Name",
                "a connector named `C` already exists (InboundConnector[1])",
                "",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\n".to_string(),
                "1:1",
                "OutboundConnector[1].RecipientDomains",
                "covers no recipients",
                "RecipientDomains = [\"*\"]",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\n".to_string(),
                "4:15",
                "OutboundConnector[1].SmartHosts",
                "no SmartHosts",
                "SmartHosts",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"a.*.test\"]\n".to_string(),
                "3:21",
                "OutboundConnector[1].RecipientDomains",
                "a.*.test",
                "",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\nSmartHosts = [\"bad host\"]\n".to_string(),
                "5:15",
                "OutboundConnector[1].SmartHosts",
                "not a host name",
                "",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nTlsSettings = \"Required\"\n".to_string(),
                "4:15",
                "OutboundConnector[1].TlsSettings",
                "Required",
                "",
            ),
            (
                "[[OutboundConnector]]\nName = \"x\"\nAllAcceptedDomains = true\n".to_string(),
                "3:22",
                "OutboundConnector[1].AllAcceptedDomains",
                "requires ConnectorType OnPremises",
                "OnPremises",
            ),
            (
                "[[AcceptedDomain]]\nDomainName = \"*.contoso.test\"\n".to_string(),
                "2:14",
                "AcceptedDomain[1].DomainName",
                "not wildcards",
                "MatchSubDomains",
            ),
            (
                "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nMatchSubDomains = true\n".to_string(),
                "3:19",
                "AcceptedDomain[1].MatchSubDomains",
                "only allowed on InternalRelay",
                "InternalRelay",
            ),
            (
                "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"ExternalRelay\"\n".to_string(),
                "3:14",
                "AcceptedDomain[1].DomainType",
                "only in Exchange Server",
                "InternalRelay",
            ),
            (
                "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[[AcceptedDomain]]\nDomainName = \"CONTOSO.test\"\n".to_string(),
                "4:14",
                "AcceptedDomain[2].DomainName",
                "listed twice",
                "",
            ),
            (
                format!("{DOMAINS}[Directory]\nMailboxes = [\"a@contoso.test\", \"b@fabrikam.test\"]\n"),
                "5:32",
                "Directory.Mailboxes",
                "fabrikam.test is not an accepted domain",
                "[[AcceptedDomain]]",
            ),
            (
                format!("{DOMAINS}[Directory]\nMailboxes = [\"not an address\"]\n"),
                "5:14",
                "Directory.Mailboxes",
                "not an email address",
                "",
            ),
            (
                "[Transport]\nRejectionStage = \"Data\"\n".to_string(),
                "2:18",
                "Transport.RejectionStage",
                "`Data` is not one of EndOfData, RcptTo",
                "",
            ),
            (
                "[Transport]\nMaxMessageSize = -1\n".to_string(),
                "2:18",
                "Transport.MaxMessageSize",
                "positive",
                "",
            ),
            ("[Transport\n".to_string(), "1:11", "", "", ""),
        ];
        for (text, at, field, message, hint) in rows {
            let e = err(&text);
            let shown = e.to_string();
            assert_eq!(format!("{}:{}", e.line, e.column), at, "{shown}\n---\n{text}");
            assert_eq!(e.field, field, "{shown}");
            assert!(e.message.contains(message), "{shown}");
            assert!(e.hint.as_deref().unwrap_or("").contains(hint), "{shown}");
            assert!(shown.starts_with(&format!("t.toml:{}:{}: ", e.line, e.column)), "{shown}");
        }
    }

    #[test]
    fn display_has_path_line_column_field_message_and_hint() {
        let e = err(&connector("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/23\"]"));
        assert_eq!(
            e.to_string(),
            "t.toml:7:22: InboundConnector[1].SenderIPAddresses: `198.51.100.0/23` is broader than EXO allows: prefixes must be /24 to /32\n  hint: split it into /24 blocks: 198.51.100.0/24, 198.51.101.0/24"
        );
    }

    #[test]
    fn booleans_in_every_spelling() {
        for (value, expected) in [
            ("true", true),
            ("false", false),
            ("\"$true\"", true),
            ("\"$FALSE\"", false),
            ("\"True\"", true),
            ("\" $false \"", false),
        ] {
            let t = load(&connector(&format!("SenderDomains = [\"*\"]\nEnabled = {value}")), "t.toml").unwrap();
            assert_eq!(t.inbound_connectors[0].enabled, expected, "{value}");
        }
    }

    #[test]
    fn lists_as_arrays_or_comma_separated_strings() {
        for value in ["[\"a.test\", \"*.b.test\"]", "\"a.test,*.b.test\"", "\"{a.test, *.b.test}\""] {
            let t = load(&connector(&format!("SenderDomains = {value}")), "t.toml").unwrap();
            assert_eq!(
                t.inbound_connectors[0].sender_domains,
                vec![DomainPattern::parse("a.test").unwrap(), DomainPattern::parse("*.b.test").unwrap()],
                "{value}"
            );
        }
    }

    /// The example tenants in `tests/tenants/` all load (and stay loadable).
    #[test]
    fn example_tenants_load() {
        let files = [
            ("no-connectors.toml", include_str!("../../../../tests/tenants/no-connectors.toml")),
            ("gateway-lockdown-ip.toml", include_str!("../../../../tests/tenants/gateway-lockdown-ip.toml")),
            ("gateway-lockdown-cert.toml", include_str!("../../../../tests/tenants/gateway-lockdown-cert.toml")),
            ("hybrid-onprem.toml", include_str!("../../../../tests/tenants/hybrid-onprem.toml")),
        ];
        for (name, text) in files {
            let loaded = load_with_warnings(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            assert!(!loaded.tenant.accepted_domains.is_empty(), "{name}");
        }
    }

    #[test]
    fn outbound_connectors_load_with_exo_names() {
        let text = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[[OutboundConnector]]\nName = \"To gateway\"\nRecipientDomains = \"*\"\nUseMXRecord = \"$false\"\nSmartHosts = [\"smtp.gateway.test\", \"198.51.100.7:2525\"]\nTlsSettings = \"DomainValidation\"\nTlsDomain = \"*.gateway.test\"\n\n[[OutboundConnector]]\nName = \"Hybrid\"\nConnectorType = \"OnPremises\"\nAllAcceptedDomains = true\nTlsSettings = \"$null\"\nIsTransportRuleScoped = false\n";
        let t = load(text, "t.toml").unwrap();
        assert_eq!(t.outbound_connectors.len(), 2);
        let g = &t.outbound_connectors[0];
        assert!(!g.use_mx_record);
        assert_eq!(
            g.smart_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            ["smtp.gateway.test", "198.51.100.7:2525"]
        );
        assert_eq!(g.tls_settings, TlsSettings::DomainValidation);
        assert_eq!(g.tls_domain.as_ref().map(|d| d.to_string()).as_deref(), Some("*.gateway.test"));
        assert_eq!(g.recipient_domains, vec![DomainPattern::Any]);
        let h = &t.outbound_connectors[1];
        assert!(h.all_accepted_domains && h.use_mx_record);
        assert_eq!(h.tls_settings, TlsSettings::Opportunistic);
    }

    /// `ValidationRecipients` (exo-behaviour §3.1, §15.3): a list of addresses, as an array or a
    /// comma-separated string; a bad one is refused at its own line and column.
    #[test]
    fn outbound_validation_recipients() {
        let base = "[[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"partner.test\"]\n";
        let t = load(&format!("{base}ValidationRecipients = [\"ops@partner.test\", \"noc@partner.test\"]\n"), "t.toml")
            .unwrap();
        let got: Vec<String> = t.outbound_connectors[0].validation_recipients.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["ops@partner.test", "noc@partner.test"]);
        let t =
            load(&format!("{base}ValidationRecipients = \"ops@partner.test, noc@partner.test\"\n"), "t.toml").unwrap();
        assert_eq!(t.outbound_connectors[0].validation_recipients.len(), 2);
        let e =
            load(&format!("{base}ValidationRecipients = [\"ops@partner.test\", \"nobody\"]\n"), "t.toml").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "t.toml:4:45: OutboundConnector[1].ValidationRecipients: `nobody` is not an email address"
            ),
            "{e}"
        );
    }

    #[test]
    fn other_tables_only_where_the_caller_accepts_them() {
        let text = "[scenario]\nname = \"x\"\n\n[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[[step]]\nadvance = \"1h\"\n";
        let err = load(text, "t.toml").unwrap_err().to_string();
        assert!(err.starts_with("t.toml:1:1: scenario: unknown key `scenario`"), "{err}");
        let loaded = load_with_other_tables(text, "s.toml", &["scenario", "step"]).unwrap();
        assert_eq!(loaded.tenant.accepted_domains.len(), 1);
        let err = load_with_other_tables("Bogus = 1\n", "s.toml", &["scenario", "step"]).unwrap_err().to_string();
        assert!(err.contains("unknown key `Bogus`"), "{err}");
    }
    /// One row per message the tenant loader can give: the file text and the whole error as shown
    /// (`file:line:col: field: message`, then `  hint: ...`).
    fn message_rows() -> Vec<(String, &'static str)> {
        let c = connector;
        let s = |x: &str| x.to_string();
        vec![
            // Syntax and shape (serde and the walker of spans).
            (s("[Transport\n"), "t.toml:1:11: unclosed table, expected `]`"),
            (s("[Transprt]\n"), "t.toml:1:1: Transprt: unknown key `Transprt`\n  hint: did you mean `Transport`?"),
            (
                s("Bogus = 1\n"),
                "t.toml:1:1: Bogus: unknown key `Bogus`\n  hint: known tables: Transport, AcceptedDomain, Directory, InboundConnector, OutboundConnector, TransportRule, AntiPhishPolicy, ArcConfig, HostedConnectionFilterPolicy, HostedContentFilterPolicy",
            ),
            (
                s("[scenario]\nname = \"x\"\n"),
                "t.toml:1:1: scenario: unknown key `scenario`\n  hint: known tables: Transport, AcceptedDomain, Directory, InboundConnector, OutboundConnector, TransportRule, AntiPhishPolicy, ArcConfig, HostedConnectionFilterPolicy, HostedContentFilterPolicy",
            ),
            (
                s("[[step]]\nadvance = \"1h\"\n"),
                "t.toml:1:1: step: unknown key `step`\n  hint: known tables: Transport, AcceptedDomain, Directory, InboundConnector, OutboundConnector, TransportRule, AntiPhishPolicy, ArcConfig, HostedConnectionFilterPolicy, HostedContentFilterPolicy",
            ),
            (
                c("SenderDomains = [\"*\"]\nSenderIpAddresses = [\"198.51.100.7\"]"),
                "t.toml:7:1: InboundConnector[1].SenderIpAddresses: unknown key `SenderIpAddresses`\n  hint: keys are case-sensitive: write `SenderIPAddresses`",
            ),
            (
                c("SenderDomains = [\"*\"]\nRestrictDomainToIPAddresses = true"),
                "t.toml:7:1: InboundConnector[1].RestrictDomainToIPAddresses: unknown key `RestrictDomainToIPAddresses`\n  hint: did you mean `RestrictDomainsToIPAddresses`?",
            ),
            (
                c("SenderDomains = [\"*\"]\nConectorSource = \"Default\""),
                "t.toml:7:1: InboundConnector[1].ConectorSource: unknown key `ConectorSource`\n  hint: did you mean `ConnectorSource`?",
            ),
            (
                c("SenderDomains = [\"*\"]\nFoo = 1"),
                "t.toml:7:1: InboundConnector[1].Foo: unknown key `Foo`\n  hint: known keys here: Name, Enabled, ConnectorType, SenderDomains, SenderIPAddresses, TlsSenderCertificateName, RequireTls, RestrictDomainsToIPAddresses, RestrictDomainsToCertificate, TreatMessagesAsInternal, CloudServicesMailEnabled, AssociatedAcceptedDomains, EFSkipIPs, EFSkipLastIP, EFUsers, ClientHostNames, Comment",
            ),
            (
                c("SenderDomains = [\"*\"]\nEnabled = \"yes\""),
                "t.toml:7:11: InboundConnector[1].Enabled: invalid value: string \"yes\", expected true, false, \"$true\" or \"$false\"",
            ),
            (
                s("[Transport]\nMaxMessageSize = \"big\"\n"),
                "t.toml:2:18: Transport.MaxMessageSize: invalid type: string \"big\", expected i64",
            ),
            (
                s("[[AcceptedDomain]]\nDomainType = \"Authoritative\"\n"),
                "t.toml:1:1: AcceptedDomain[1]: missing field `DomainName`",
            ),
            // Values.
            (
                c("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/23\"]"),
                "t.toml:7:22: InboundConnector[1].SenderIPAddresses: `198.51.100.0/23` is broader than EXO allows: prefixes must be /24 to /32\n  hint: split it into /24 blocks: 198.51.100.0/24, 198.51.101.0/24",
            ),
            (
                c("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"2001:db8::/32\"]"),
                "t.toml:7:22: InboundConnector[1].SenderIPAddresses: `2001:db8::/32` is IPv6; EXO inbound connectors accept IPv4 addresses only\n  hint: IPv6 senders cannot be keyed by IP; use a certificate connector",
            ),
            (
                c("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.1-198.51.100.20\"]"),
                "t.toml:7:22: InboundConnector[1].SenderIPAddresses: `198.51.100.1-198.51.100.20` is a dash range; SenderIPAddresses accepts a single IPv4 address or a CIDR block /24 to /32\n  hint: write the range as CIDR blocks: 198.51.100.1/32, 198.51.100.2/31, 198.51.100.4/30, 198.51.100.8/29, … (6 blocks)",
            ),
            (
                c("SenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.9/24\"]"),
                "t.toml:7:22: InboundConnector[1].SenderIPAddresses: `198.51.100.9/24` has host bits set below the /24 prefix\n  hint: did you mean `198.51.100.0/24`?",
            ),
            (
                c("SenderDomains = [\"*\"]\nSenderIPAddresses = \"198.51.100.0/255.255.255.0\""),
                "t.toml:7:21: InboundConnector[1].SenderIPAddresses: `198.51.100.0/255.255.255.0` gives the mask as an address; write it as a prefix length\n  hint: write `198.51.100.0/24`",
            ),
            (
                c("SenderDomains = [\"a.*.contoso.com\"]"),
                "t.toml:6:18: InboundConnector[1].SenderDomains: `a.*.contoso.com`: a wildcard may only be the whole value (`*`) or the first label (`*.contoso.com`)",
            ),
            (
                c("SenderDomains = [\"*\"]\nTlsSenderCertificateName = \"*\""),
                "t.toml:7:28: InboundConnector[1].TlsSenderCertificateName: `*` names no certificate\n  hint: write the certificate's domain: `contoso.com` or `*.contoso.com`",
            ),
            (
                c("SenderDomains = [\"*\"]\nConnectorType = \"Gateway\""),
                "t.toml:7:17: InboundConnector[1].ConnectorType: `Gateway` is not one of Partner, OnPremises",
            ),
            (
                c("SenderDomains = [\"*\"]\nEFSkipIPs = [\"10.0.0.1\"]"),
                "t.toml:7:14: InboundConnector[1].EFSkipIPs: `10.0.0.1` is an RFC 1918 private address, which EXO skips on its own",
            ),
            (
                c("SenderDomains = [\"*\"]\nAssociatedAcceptedDomains = [\"fabrikam.test\"]"),
                "t.toml:7:30: InboundConnector[1].AssociatedAcceptedDomains: `fabrikam.test` is not an accepted domain\n  hint: accepted domains: contoso.test",
            ),
            (
                s("[Transport]\nServerName = \"not a name\"\n"),
                "t.toml:2:14: Transport.ServerName: `not a name` is not a host name (invalid address syntax)",
            ),
            (
                s("[Transport]\nMaxMessageSize = -1\n"),
                "t.toml:2:18: Transport.MaxMessageSize: -1 must be a positive number",
            ),
            (
                s("[Transport]\nRelayDenialText = \"Old\"\n"),
                "t.toml:2:19: Transport.RelayDenialText: `Old` is not one of TenantAttribution, UnableToRelay",
            ),
            (
                s("[[AcceptedDomain]]\nDomainName = \"*.contoso.test\"\n"),
                "t.toml:2:14: AcceptedDomain[1].DomainName: `*.contoso.test`: accepted domains are not wildcards\n  hint: use DomainType = \"InternalRelay\" with MatchSubDomains = true to accept subdomains",
            ),
            (
                s("[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"ExternalRelay\"\n"),
                "t.toml:3:14: AcceptedDomain[1].DomainType: ExternalRelay exists only in Exchange Server, not in Exchange Online\n  hint: use InternalRelay (exo-behaviour §4.1)",
            ),
            (
                format!("{DOMAINS}[Directory]\nMailboxes = [\"not an address\"]\n"),
                "t.toml:5:14: Directory.Mailboxes: `not an address` is not an email address (invalid address syntax)",
            ),
            (
                format!("{DOMAINS}[Directory]\nMailboxes = \"a@contoso.test, b@fabrikam.test\"\n"),
                "t.toml:5:13: Directory.Mailboxes: b@fabrikam.test: fabrikam.test is not an accepted domain\n  hint: add it as an [[AcceptedDomain]]; a mailbox's addresses must be in accepted domains",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\nSmartHosts = [\"bad host\"]\n",
                ),
                "t.toml:5:15: OutboundConnector[1].SmartHosts: `bad host`: not a host name or IP address\n  hint: write `host`, `host:port`, `IP`, `IP:port`, or `[host]:port` for a next hop without MX lookup",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\nSmartHosts = [\"[127.0.0.20:2602\"]\n",
                ),
                "t.toml:5:15: OutboundConnector[1].SmartHosts: `[127.0.0.20:2602`: a bracketed next hop is written `[host]` or `[host]:port`\n  hint: write `host`, `host:port`, `IP`, `IP:port`, or `[host]:port` for a next hop without MX lookup",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\nSmartHosts = [\"[127.0.0.20]:0\"]\n",
                ),
                "t.toml:5:15: OutboundConnector[1].SmartHosts: `[127.0.0.20]:0`: `0` is not a port (1 to 65535)\n  hint: write `host`, `host:port`, `IP`, `IP:port`, or `[host]:port` for a next hop without MX lookup",
            ),
            (
                s("[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nTlsSettings = \"Required\"\n"),
                "t.toml:4:15: OutboundConnector[1].TlsSettings: `Required` is not one of EncryptionOnly, CertificateValidation, DomainValidation",
            ),
            // The builder's rules (TenantBuilder::build), pointed at the value at fault.
            (
                c(""),
                "t.toml:4:1: InboundConnector[1].SenderDomains: SenderDomains is required (New-InboundConnector has no default)\n  hint: write `SenderDomains = [\"*\"]` to cover every sender domain",
            ),
            (
                c("SenderDomains = []"),
                "t.toml:6:17: InboundConnector[1].SenderDomains: SenderDomains is required (New-InboundConnector has no default)\n  hint: write `SenderDomains = [\"*\"]` to cover every sender domain",
            ),
            (
                s("[[InboundConnector]]\nName = \" \"\nSenderDomains = [\"*\"]\n"),
                "t.toml:2:8: InboundConnector[1].Name: Name must not be empty",
            ),
            (
                format!("{}[[InboundConnector]]\nName = \"C\"\nSenderDomains = [\"*\"]", c("SenderDomains = [\"*\"]")),
                "t.toml:8:8: InboundConnector[2].Name: a connector named `C` already exists (InboundConnector[1])",
            ),
            (
                c(
                    "SenderDomains = [\"*\"]\nConnectorType = \"OnPremises\"\nRestrictDomainsToIPAddresses = true\nSenderIPAddresses = [\"198.51.100.7\"]",
                ),
                "t.toml:8:32: InboundConnector[1].RestrictDomainsToIPAddresses: RestrictDomainsToIPAddresses only works on Partner connectors\n  hint: lock down with a separate Partner connector (SenderDomains [\"*\"]) beside this one (exo-behaviour §2.2)",
            ),
            (
                c("SenderDomains = [\"*\"]\nRestrictDomainsToCertificate = true"),
                "t.toml:7:32: InboundConnector[1].RestrictDomainsToCertificate: RestrictDomainsToCertificate needs TlsSenderCertificateName\n  hint: add TlsSenderCertificateName = \"*.gateway.example\" (the certificate's domain)",
            ),
            (
                c("SenderDomains = [\"*\"]\nRestrictDomainsToIPAddresses = \"$true\""),
                "t.toml:7:32: InboundConnector[1].RestrictDomainsToIPAddresses: RestrictDomainsToIPAddresses needs SenderIPAddresses\n  hint: add SenderIPAddresses = [\"198.51.100.0/24\"] (the gateway's ranges)",
            ),
            (
                c("SenderDomains = [\"*\"]\nTreatMessagesAsInternal = true"),
                "t.toml:7:27: InboundConnector[1].TreatMessagesAsInternal: TreatMessagesAsInternal is only allowed on OnPremises connectors\n  hint: set ConnectorType = \"OnPremises\" or remove TreatMessagesAsInternal",
            ),
            (
                c(
                    "SenderDomains = [\"*\"]\nConnectorType = \"OnPremises\"\nTreatMessagesAsInternal = true\nCloudServicesMailEnabled = true",
                ),
                "t.toml:8:27: InboundConnector[1].TreatMessagesAsInternal: TreatMessagesAsInternal is not allowed together with CloudServicesMailEnabled\n  hint: keep CloudServicesMailEnabled for Exchange hybrid, TreatMessagesAsInternal for other servers",
            ),
            (
                s("[[OutboundConnector]]\nName = \"x\"\n"),
                "t.toml:1:1: OutboundConnector[1].RecipientDomains: the connector covers no recipients\n  hint: write `RecipientDomains = [\"*\"]` to route every external recipient",
            ),
            (
                s("[[OutboundConnector]]\nName = \"\"\nRecipientDomains = [\"*\"]\n"),
                "t.toml:2:8: OutboundConnector[1].Name: Name must be 1 to 64 characters (New-OutboundConnector)",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\n[[OutboundConnector]]\nName = \"X\"\nRecipientDomains = [\"*\"]\n",
                ),
                "t.toml:5:8: OutboundConnector[2].Name: an outbound connector named `X` already exists",
            ),
            (
                s("[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nUseMXRecord = false\n"),
                "t.toml:4:15: OutboundConnector[1].SmartHosts: UseMXRecord is $false but no SmartHosts are given\n  hint: add `SmartHosts = [\"smtp.gateway.test\"]` or set UseMXRecord = true",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nSmartHosts = [\"smtp.gateway.test\"]\n",
                ),
                "t.toml:1:1: OutboundConnector[1].UseMXRecord: SmartHosts are only used with UseMXRecord = $false\n  hint: set `UseMXRecord = false`",
            ),
            (
                s("[[OutboundConnector]]\nName = \"x\"\nAllAcceptedDomains = true\n"),
                "t.toml:3:22: OutboundConnector[1].AllAcceptedDomains: AllAcceptedDomains requires ConnectorType OnPremises\n  hint: set ConnectorType = \"OnPremises\"",
            ),
            (
                s(
                    "[[OutboundConnector]]\nName = \"x\"\nRecipientDomains = [\"*\"]\nRouteAllMessagesViaOnPremises = true\n",
                ),
                "t.toml:4:33: OutboundConnector[1].RouteAllMessagesViaOnPremises: RouteAllMessagesViaOnPremises requires ConnectorType OnPremises\n  hint: set ConnectorType = \"OnPremises\"",
            ),
            (
                s(
                    "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[[AcceptedDomain]]\nDomainName = \"CONTOSO.test\"\n",
                ),
                "t.toml:4:14: AcceptedDomain[2].DomainName: contoso.test is listed twice",
            ),
            (
                s("[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nMatchSubDomains = true\n"),
                "t.toml:3:19: AcceptedDomain[1].MatchSubDomains: MatchSubDomains is only allowed on InternalRelay domains\n  hint: set DomainType = \"InternalRelay\" (exo-behaviour §4.1)",
            ),
            (
                format!("{DOMAINS}[Directory]\nMailboxes = [\"a@contoso.test\", \"b@fabrikam.test\"]\n"),
                "t.toml:5:32: Directory.Mailboxes: b@fabrikam.test: fabrikam.test is not an accepted domain\n  hint: add it as an [[AcceptedDomain]]; a mailbox's addresses must be in accepted domains",
            ),
        ]
    }

    /// Every message the tenant loader gives, whole, so that a change of wording or position is a
    /// deliberate edit of this table.
    #[test]
    fn error_messages_table() {
        for (text, expected) in message_rows() {
            match load(&text, "t.toml") {
                Ok(_) => panic!("expected an error for:\n{text}"),
                Err(e) => assert_eq!(e.to_string(), expected, "\n---\n{text}"),
            }
        }
    }

    /// `[AntiPhishPolicy]` and `EFUsers` (exo-behaviour §14.5, §2.1).
    #[test]
    fn anti_phish_policy_and_ef_users() {
        use crate::tenant::anti_phish::{AuthenticationFailAction, DmarcQuarantineAction, DmarcRejectAction};
        let text = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"

[[InboundConnector]]
Name = "From gateway"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RequireTls = false
EFSkipIPs = ["198.51.100.0/24"]
EFUsers = ["alice@contoso.test", "Bob@contoso.test"]

[AntiPhishPolicy]
HonorDmarcPolicy = "$false"
DmarcRejectAction = "quarantine"
DmarcQuarantineAction = "MoveToJmf"
AuthenticationFailAction = "Quarantine"
"#;
        let t = load(text, "t.toml").unwrap();
        assert_eq!(t.inbound_connectors[0].ef_users.len(), 2);
        let p = &t.anti_phish;
        assert!(!p.honor_dmarc_policy && p.enable_spoof_intelligence);
        assert_eq!(p.dmarc_reject_action, DmarcRejectAction::Quarantine);
        assert_eq!(p.dmarc_quarantine_action, DmarcQuarantineAction::MoveToJmf);
        assert_eq!(p.authentication_fail_action, AuthenticationFailAction::Quarantine);
        let defaults = load("[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n", "t.toml").unwrap();
        assert_eq!(defaults.anti_phish, crate::tenant::AntiPhishPolicy::default());

        let bad = load("[AntiPhishPolicy]\nDmarcRejectAction = \"Bounce\"\n", "t.toml").unwrap_err().to_string();
        assert!(
            bad.starts_with(
                "t.toml:2:21: AntiPhishPolicy.DmarcRejectAction: `Bounce` is not one of Reject, Quarantine"
            ),
            "{bad}"
        );
        let bad = load(
            "[[InboundConnector]]\nName = \"c\"\nSenderDomains = [\"*\"]\nRequireTls = false\nEFUsers = [\"not an address\"]\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.starts_with("t.toml:5:12: InboundConnector[1].EFUsers: `not an address` is not an address"),
            "{bad}"
        );
    }
}
