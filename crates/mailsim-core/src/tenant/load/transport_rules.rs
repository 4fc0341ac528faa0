//! `[[TransportRule]]` tables and `[[Directory.DistributionGroup]]` (exo-behaviour §13.2–§13.5):
//! `New-TransportRule`'s parameter names, each condition with its `ExceptIf` twin, errors at the
//! value at fault (file:line:col, `TransportRule[2].SubjectMatchesPatterns`).
//!
//! ```toml
//! [[Directory.DistributionGroup]]
//! PrimarySmtpAddress = "NoSpecialRouting@contoso.test"
//! Members = ["carol@contoso.test"]
//!
//! [[TransportRule]]
//! Name = "Force Partner X via dedicated connector"
//! Priority = 0                          # unique; 0 first. Default: after the others
//! Mode = "Enforce"                      # or Audit, AuditAndNotify
//! State = "Enabled"                     # or Disabled (Enabled = true/false too)
//! ActivationDate = "2026-12-08T09:00:00Z"   # UTC; a date alone is midnight UTC
//! RecipientDomainIs = ["partner-x.test"]
//! ExceptIfSentToMemberOf = ["NoSpecialRouting@contoso.test"]
//! RouteMessageOutboundConnector = "Route to Partner X"
//! StopRuleProcessing = true
//! ```
//!
//! A rule's keys are read as a map (there are some sixty of them), so an unknown key is reported
//! at its value with the nearest known key as a hint.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{Cx, StrList, items};
use crate::addr::{Domain, EmailAddress};
use crate::diagnostics::{self, ConfigError};
use crate::tenant::TenantBuilder;
use crate::tenant::transport_rule::{
    Action, Condition, DisclaimerFallback, DisclaimerLocation, DistributionGroup, Importance, IpRange, Patterns,
    RuleErrorAction, RuleMode, Scope, SenderAddressLocation, TransportRule, Words, guid_for, parse_date,
};
use crate::time::Timestamp;

/// One `[[TransportRule]]` table: its keys and their spanned values.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct RawTransportRule(BTreeMap<String, Spanned<toml::Value>>);

/// One `[[Directory.DistributionGroup]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RawGroup {
    primary_smtp_address: Spanned<String>,
    members: Option<Spanned<StrList>>,
}

const RULE_KEYS: [&str; 13] = [
    "Name",
    "Guid",
    "Priority",
    "State",
    "Enabled",
    "Mode",
    "StopRuleProcessing",
    "ActivationDate",
    "ExpiryDate",
    "SenderAddressLocation",
    "RuleErrorAction",
    "Comments",
    "Comment",
];

const CONDITION_KEYS: [&str; 27] = [
    "FromScope",
    "SentToScope",
    "From",
    "SentTo",
    "FromMemberOf",
    "SentToMemberOf",
    "SenderDomainIs",
    "RecipientDomainIs",
    "FromAddressContainsWords",
    "FromAddressMatchesPatterns",
    "RecipientAddressContainsWords",
    "RecipientAddressMatchesPatterns",
    "SenderIpRanges",
    "HeaderContainsMessageHeader",
    "HeaderContainsWords",
    "HeaderMatchesMessageHeader",
    "HeaderMatchesPatterns",
    "SubjectContainsWords",
    "SubjectOrBodyContainsWords",
    "SubjectMatchesPatterns",
    "MessageSizeOver",
    "AttachmentSizeOver",
    "SCLOver",
    "AnyOfToHeader",
    "AnyOfCcHeader",
    "AnyOfToCcHeader",
    "WithImportance",
];

const ACTION_KEYS: [&str; 18] = [
    "RouteMessageOutboundConnector",
    "RouteMessageOutboundRequireTls",
    "SetHeaderName",
    "SetHeaderValue",
    "RemoveHeader",
    "PrependSubject",
    "ApplyHtmlDisclaimerText",
    "ApplyHtmlDisclaimerLocation",
    "ApplyHtmlDisclaimerFallbackAction",
    "RejectMessageReasonText",
    "RejectMessageEnhancedStatusCode",
    "DeleteMessage",
    "RedirectMessageTo",
    "BlindCopyTo",
    "AddToRecipients",
    "CopyTo",
    "SetSCL",
    "Quarantine",
];

/// Every key a rule may have.
pub(super) fn known_keys() -> Vec<String> {
    RULE_KEYS
        .iter()
        .chain(ACTION_KEYS.iter())
        .map(|s| s.to_string())
        .chain(CONDITION_KEYS.iter().flat_map(|k| [k.to_string(), format!("ExceptIf{k}")]))
        .collect()
}

/// Reads the groups into the builder.
pub(super) fn build_groups(
    cx: &Cx<'_>,
    raw: Vec<Spanned<RawGroup>>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    for (n, g) in raw.iter().enumerate() {
        let g = g.get_ref();
        let field = |k: &str| format!("Directory.DistributionGroup[{}].{k}", n + 1);
        let text = g.primary_smtp_address.get_ref().trim();
        let address = EmailAddress::parse(text, true).map_err(|e| {
            cx.error(
                &g.primary_smtp_address.span(),
                field("PrimarySmtpAddress"),
                format!("`{text}` is not an email address ({e})"),
            )
        })?;
        let mut members = Vec::new();
        for (text, span) in items(&g.members) {
            members.push(
                EmailAddress::parse(text, true).map_err(|e| {
                    cx.error(&span, field("Members"), format!("`{text}` is not an email address ({e})"))
                })?,
            );
        }
        tenant.distribution_groups.push(DistributionGroup { address, members });
        tenant.check_transport_rules().map_err(|e| cx.tenant_error(&g.primary_smtp_address.span(), e))?;
    }
    Ok(())
}

/// A value of a rule, with where it is and what it is called.
struct Val<'v, 'c, 't> {
    cx: &'c Cx<'t>,
    value: &'v toml::Value,
    span: Range<usize>,
    field: String,
}

impl Val<'_, '_, '_> {
    fn err(&self, message: impl Into<String>) -> ConfigError {
        self.cx.error(&self.span, &self.field, message)
    }

    fn string(&self) -> Result<String, ConfigError> {
        match self.value {
            toml::Value::String(s) => Ok(s.trim().to_string()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            other => Err(self.err(format!("expected a string, found {}", other.type_str()))),
        }
    }

    fn strings(&self) -> Result<Vec<String>, ConfigError> {
        let out: Vec<String> = match self.value {
            toml::Value::String(s) => {
                let s = s.trim();
                let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
                s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            }
            toml::Value::Array(a) => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(self.err(format!("expected strings, found {}", other.type_str()))),
                })
                .collect::<Result<_, _>>()?,
            other => Err(self.err(format!("expected an array of strings, found {}", other.type_str())))?,
        };
        if out.is_empty() {
            return Err(self.err("the list is empty"));
        }
        Ok(out)
    }

    /// Strings taken whole (patterns may hold commas).
    fn patterns(&self) -> Result<Patterns, ConfigError> {
        let list = match self.value {
            toml::Value::String(s) => vec![s.clone()],
            _ => self.strings()?,
        };
        Patterns::new(list).map_err(|e| {
            self.err(e).with_hint("patterns are regular expressions (Rust `regex` syntax, case-insensitive; no look-around or backreferences)")
        })
    }

    fn boolean(&self) -> Result<bool, ConfigError> {
        match self.value {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::String(s) => {
                let t = s.trim();
                let t = t.strip_prefix('$').unwrap_or(t);
                if t.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if t.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    Err(self.err(format!("`{s}` is not true, false, \"$true\" or \"$false\"")))
                }
            }
            other => Err(self.err(format!("expected a boolean, found {}", other.type_str()))),
        }
    }

    fn choice<T: Copy>(&self, options: &[(&str, T)]) -> Result<T, ConfigError> {
        let v = self.string()?;
        options.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v)).map(|(_, t)| *t).ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            self.err(format!("`{v}` is not one of {}", names.join(", ")))
        })
    }

    fn addresses(&self) -> Result<Vec<EmailAddress>, ConfigError> {
        self.strings()?
            .iter()
            .map(|s| EmailAddress::parse(s, true).map_err(|e| self.err(format!("`{s}` is not an email address ({e})"))))
            .collect()
    }

    fn domains(&self) -> Result<Vec<Domain>, ConfigError> {
        self.strings()?
            .iter()
            .map(|s| {
                Domain::parse(s, true).map_err(|e| {
                    self.err(format!("`{s}` is not a domain name ({e})"))
                        .with_hint("subdomains are included: write the parent domain, without `*.`")
                })
            })
            .collect()
    }

    fn integer(&self, range: std::ops::RangeInclusive<i64>) -> Result<i64, ConfigError> {
        let n = match self.value {
            toml::Value::Integer(i) => *i,
            toml::Value::String(s) => s.trim().parse().map_err(|_| self.err(format!("`{s}` is not a number")))?,
            other => return Err(self.err(format!("expected a number, found {}", other.type_str()))),
        };
        if !range.contains(&n) {
            return Err(self.err(format!("{n} is not between {} and {}", range.start(), range.end())));
        }
        Ok(n)
    }

    /// A `ByteQuantifiedSize`: a number of bytes, or a number with B, KB, MB, GB or TB.
    fn size(&self) -> Result<u64, ConfigError> {
        if let toml::Value::Integer(i) = self.value {
            return u64::try_from(*i).map_err(|_| self.err("a size is not negative"));
        }
        let text = self.string()?;
        let t = text.split('(').next().unwrap_or("").trim().replace(' ', "");
        let digits = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (num, unit) = t.split_at(digits);
        let mult: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" => 1 << 10,
            "MB" => 1 << 20,
            "GB" => 1 << 30,
            "TB" => 1 << 40,
            _ => return Err(self.err(format!("`{text}` is not a size")).with_hint("e.g. 10MB, 512KB or 1048576")),
        };
        let n: f64 = num.parse().map_err(|_| self.err(format!("`{text}` is not a size")))?;
        Ok((n * mult as f64) as u64)
    }

    /// A date as UTC (§13.2 recommendation): RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or a date alone.
    fn date(&self) -> Result<Timestamp, ConfigError> {
        let text = match self.value {
            toml::Value::Datetime(d) => d.to_string(),
            _ => self.string()?,
        };
        parse_date(&text).ok_or_else(|| {
            self.err(format!("`{text}` is not a date"))
                .with_hint("write \"2026-12-08T09:00:00Z\" or \"2026-12-08\" (UTC)")
        })
    }
}

/// Reads the rules into the builder, one at a time, each checked against the ones before it.
pub(super) fn build_rules(
    cx: &mut Cx<'_>,
    raw: Vec<Spanned<RawTransportRule>>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    let known = known_keys();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    for (n, spanned) in raw.iter().enumerate() {
        let table_span = spanned.span();
        let map = &spanned.get_ref().0;
        let object = format!("TransportRule[{}]", n + 1);
        let val = |key: &str| {
            map.get(key).map(|v| Val { cx, value: v.get_ref(), span: v.span(), field: format!("{object}.{key}") })
        };
        for (key, v) in map {
            if !known.iter().any(|k| k == key) {
                let hint = diagnostics::key_hint(key, &known_refs).unwrap_or_else(|| {
                    "conditions, exceptions (ExceptIf...) and actions are listed in scenarios/README.md".to_string()
                });
                return Err(cx
                    .error(&v.span(), format!("{object}.{key}"), format!("unknown key `{key}`"))
                    .with_hint(hint));
            }
        }
        let Some(name) = val("Name") else {
            return Err(cx.error(&table_span, format!("{object}.Name"), "missing key `Name`"));
        };
        let name_text = name.string()?;
        let default_priority = tenant.transport_rules.iter().map(|r| r.priority + 1).max().unwrap_or(0);
        let mut rule = TransportRule::new(&name_text, default_priority);
        if let Some(v) = val("Guid") {
            rule.guid = v.string()?;
        } else {
            rule.guid = guid_for(&name_text);
        }
        if let Some(v) = val("Priority") {
            rule.priority = v.integer(0..=i64::from(u32::MAX))? as u32;
        }
        if let Some(v) = val("State") {
            rule.enabled = v.choice(&[("Enabled", true), ("Disabled", false)])?;
        }
        if let Some(v) = val("Enabled") {
            rule.enabled = v.boolean()?;
        }
        if let Some(v) = val("Mode") {
            rule.mode = v.choice(&[
                ("Enforce", RuleMode::Enforce),
                ("Audit", RuleMode::Audit),
                ("AuditAndNotify", RuleMode::AuditAndNotify),
            ])?;
        }
        if let Some(v) = val("StopRuleProcessing") {
            rule.stop_rule_processing = v.boolean()?;
        }
        if let Some(v) = val("ActivationDate") {
            rule.activation_date = Some(v.date()?);
        }
        if let Some(v) = val("ExpiryDate") {
            rule.expiry_date = Some(v.date()?);
        }
        if let Some(v) = val("SenderAddressLocation") {
            rule.sender_address_location = v.choice(&[
                ("Header", SenderAddressLocation::Header),
                ("Envelope", SenderAddressLocation::Envelope),
                ("HeaderOrEnvelope", SenderAddressLocation::HeaderOrEnvelope),
            ])?;
        }
        if let Some(v) = val("RuleErrorAction") {
            rule.rule_error_action =
                v.choice(&[("Ignore", RuleErrorAction::Ignore), ("Defer", RuleErrorAction::Defer)])?;
        }
        if let Some(v) = val("Comments").or_else(|| val("Comment")) {
            rule.comments = Some(v.string()?);
        }
        for except in [false, true] {
            let prefix = if except { "ExceptIf" } else { "" };
            let get = |k: &str| val(&format!("{prefix}{k}"));
            let mut out = Vec::new();
            for key in CONDITION_KEYS {
                let Some(v) = get(key) else { continue };
                let c = match key {
                    "FromScope" | "SentToScope" => {
                        let s = v.choice(&[
                            ("InOrganization", Scope::InOrganization),
                            ("NotInOrganization", Scope::NotInOrganization),
                        ])?;
                        if key == "FromScope" { Condition::FromScope(s) } else { Condition::SentToScope(s) }
                    }
                    "From" => Condition::From(v.addresses()?),
                    "SentTo" => Condition::SentTo(v.addresses()?),
                    "FromMemberOf" | "SentToMemberOf" => {
                        let groups = v.addresses()?;
                        for g in &groups {
                            if tenant.distribution_group(g).is_none() {
                                let names: Vec<String> =
                                    tenant.distribution_groups.iter().map(|g| g.address.to_string()).collect();
                                let e = v.err(format!("no distribution group {g} in [Directory]"));
                                return Err(match diagnostics::closest(&g.to_string(), names.iter().map(String::as_str)) {
                                    Some(c) => e.with_hint(format!("did you mean {c:?}?")),
                                    None => e.with_hint("declare it as [[Directory.DistributionGroup]] with PrimarySmtpAddress and Members"),
                                });
                            }
                        }
                        if key == "FromMemberOf" {
                            Condition::FromMemberOf(groups)
                        } else {
                            Condition::SentToMemberOf(groups)
                        }
                    }
                    "SenderDomainIs" => Condition::SenderDomainIs(v.domains()?),
                    "RecipientDomainIs" => Condition::RecipientDomainIs(v.domains()?),
                    "FromAddressContainsWords" => Condition::FromAddressContainsWords(Words::new(v.strings()?)),
                    "FromAddressMatchesPatterns" => Condition::FromAddressMatchesPatterns(v.patterns()?),
                    "RecipientAddressContainsWords" => {
                        Condition::RecipientAddressContainsWords(Words::new(v.strings()?))
                    }
                    "RecipientAddressMatchesPatterns" => Condition::RecipientAddressMatchesPatterns(v.patterns()?),
                    "SenderIpRanges" => Condition::SenderIpRanges(
                        v.strings()?
                            .iter()
                            .map(|s| {
                                IpRange::parse(s).ok_or_else(|| {
                                    v.err(format!("`{s}` is not an IP address, range or CIDR block"))
                                        .with_hint("e.g. 192.0.2.1, 192.0.2.10-192.0.2.20 or 192.0.2.0/24")
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    "HeaderContainsMessageHeader" | "HeaderMatchesMessageHeader" => {
                        let header = v.string()?;
                        if key == "HeaderContainsMessageHeader" {
                            let Some(w) = get("HeaderContainsWords") else {
                                return Err(v.err(format!(
                                    "{prefix}HeaderContainsMessageHeader needs {prefix}HeaderContainsWords"
                                )));
                            };
                            Condition::HeaderContainsWords { header, words: Words::new(w.strings()?) }
                        } else {
                            let Some(p) = get("HeaderMatchesPatterns") else {
                                return Err(v.err(format!(
                                    "{prefix}HeaderMatchesMessageHeader needs {prefix}HeaderMatchesPatterns"
                                )));
                            };
                            Condition::HeaderMatchesPatterns { header, patterns: p.patterns()? }
                        }
                    }
                    "HeaderContainsWords" | "HeaderMatchesPatterns" => {
                        let needs = if key == "HeaderContainsWords" {
                            "HeaderContainsMessageHeader"
                        } else {
                            "HeaderMatchesMessageHeader"
                        };
                        if get(needs).is_none() {
                            return Err(v.err(format!("{prefix}{key} needs {prefix}{needs} (the header to look in)")));
                        }
                        continue;
                    }
                    "SubjectContainsWords" => Condition::SubjectContainsWords(Words::new(v.strings()?)),
                    "SubjectOrBodyContainsWords" => Condition::SubjectOrBodyContainsWords(Words::new(v.strings()?)),
                    "SubjectMatchesPatterns" => Condition::SubjectMatchesPatterns(v.patterns()?),
                    "MessageSizeOver" => Condition::MessageSizeOver(v.size()?),
                    "AttachmentSizeOver" => Condition::AttachmentSizeOver(v.size()?),
                    "SCLOver" => Condition::SclOver(v.integer(-1..=9)? as i8),
                    "AnyOfToHeader" => Condition::AnyOfToHeader(v.addresses()?),
                    "AnyOfCcHeader" => Condition::AnyOfCcHeader(v.addresses()?),
                    "AnyOfToCcHeader" => Condition::AnyOfToCcHeader(v.addresses()?),
                    "WithImportance" => Condition::WithImportance(v.choice(&[
                        ("Low", Importance::Low),
                        ("Normal", Importance::Normal),
                        ("High", Importance::High),
                    ])?),
                    _ => unreachable!("condition keys"),
                };
                out.push(c);
            }
            if except {
                rule.exceptions = out;
            } else {
                rule.conditions = out;
            }
        }
        build_actions(&val, &mut rule, tenant)?;
        tenant.transport_rules.push(rule);
        tenant.check_transport_rules().map_err(|e| {
            let span = val(e.error.at).map(|v| v.span).unwrap_or_else(|| table_span.clone());
            cx.tenant_error(&span, e)
        })?;
    }
    Ok(())
}

fn build_actions<'v, 'c, 't>(
    val: &dyn Fn(&str) -> Option<Val<'v, 'c, 't>>,
    rule: &mut TransportRule,
    tenant: &TenantBuilder,
) -> Result<(), ConfigError> {
    if let Some(v) = val("RouteMessageOutboundConnector") {
        let name = v.string()?;
        if !tenant.outbound_connectors.iter().any(|c| c.name.trim().eq_ignore_ascii_case(&name)) {
            let names: Vec<&str> = tenant.outbound_connectors.iter().map(|c| c.name.as_str()).collect();
            let e = v.err(format!("no outbound connector named `{name}`"));
            return Err(match diagnostics::closest(&name, names.iter().copied()) {
                Some(c) => e.with_hint(format!("did you mean {c:?}?")),
                None => e.with_hint("New-TransportRule resolves the connector: declare it as an [[OutboundConnector]] (IsTransportRuleScoped = true)"),
            });
        }
        rule.actions.push(Action::RouteMessageOutboundConnector(name));
    }
    if let Some(v) = val("RouteMessageOutboundRequireTls")
        && v.boolean()?
    {
        rule.actions.push(Action::RouteMessageOutboundRequireTls);
    }
    match (val("SetHeaderName"), val("SetHeaderValue")) {
        (Some(n), Some(v)) => rule.actions.push(Action::SetHeader { name: n.string()?, value: v.string()? }),
        (Some(n), None) => return Err(n.err("SetHeaderName needs SetHeaderValue")),
        (None, Some(v)) => return Err(v.err("SetHeaderValue needs SetHeaderName")),
        (None, None) => {}
    }
    if let Some(v) = val("RemoveHeader") {
        rule.actions.push(Action::RemoveHeader(v.string()?));
    }
    if let Some(v) = val("PrependSubject") {
        let text = match v.value {
            toml::Value::String(s) => s.clone(),
            _ => v.string()?,
        };
        rule.actions.push(Action::PrependSubject(text));
    }
    let location = val("ApplyHtmlDisclaimerLocation")
        .map(|v| v.choice(&[("Append", DisclaimerLocation::Append), ("Prepend", DisclaimerLocation::Prepend)]))
        .transpose()?;
    let fallback = val("ApplyHtmlDisclaimerFallbackAction")
        .map(|v| {
            v.choice(&[
                ("Wrap", DisclaimerFallback::Wrap),
                ("Ignore", DisclaimerFallback::Ignore),
                ("Reject", DisclaimerFallback::Reject),
            ])
        })
        .transpose()?;
    match val("ApplyHtmlDisclaimerText") {
        Some(v) => rule.actions.push(Action::ApplyHtmlDisclaimer {
            text: v.string()?,
            location: location.unwrap_or_default(),
            fallback: fallback.unwrap_or_default(),
        }),
        None => {
            if let Some(v) = val("ApplyHtmlDisclaimerLocation").or_else(|| val("ApplyHtmlDisclaimerFallbackAction")) {
                return Err(v.err("this needs ApplyHtmlDisclaimerText"));
            }
        }
    }
    let reject_text = val("RejectMessageReasonText").map(|v| v.string()).transpose()?;
    let reject_code = match val("RejectMessageEnhancedStatusCode") {
        Some(v) => {
            let text = v.string()?;
            let detail = text
                .strip_prefix("5.7.")
                .and_then(|d| d.parse::<u16>().ok())
                .filter(|d| *d == 1 || (900..=999).contains(d))
                .ok_or_else(|| {
                    v.err(format!("`{text}` is not allowed"))
                        .with_hint("use 5.7.1 or a code from 5.7.900 to 5.7.999 (exo-behaviour §13.5)")
                })?;
            Some(detail)
        }
        None => None,
    };
    if reject_text.is_some() || reject_code.is_some() {
        rule.actions.push(Action::Reject { text: reject_text, code: reject_code });
    }
    if let Some(v) = val("DeleteMessage")
        && v.boolean()?
    {
        rule.actions.push(Action::DeleteMessage);
    }
    for (key, make) in [
        ("RedirectMessageTo", Action::RedirectMessageTo as fn(Vec<EmailAddress>) -> Action),
        ("BlindCopyTo", Action::BlindCopyTo),
        ("AddToRecipients", Action::AddToRecipients),
        ("CopyTo", Action::CopyTo),
    ] {
        if let Some(v) = val(key) {
            let to = v.addresses()?;
            if let Some(g) = to.iter().find(|a| tenant.distribution_group(a).is_some()) {
                return Err(v
                    .err(format!("{g} is a distribution group"))
                    .with_hint("in Exchange Online these actions can't target groups (exo-behaviour §13.5)"));
            }
            rule.actions.push(make(to));
        }
    }
    if let Some(v) = val("SetSCL") {
        rule.actions.push(Action::SetScl(v.integer(-1..=9)? as i8));
    }
    if let Some(v) = val("Quarantine")
        && v.boolean()?
    {
        rule.actions.push(Action::Quarantine);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tenant::load::load;
    use crate::tenant::transport_rule::{Action, Condition, RuleMode};

    const HEAD: &str = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[Directory]\nMailboxes = [\"carol@contoso.test\"]\n[[Directory.DistributionGroup]]\nPrimarySmtpAddress = \"NoSpecialRouting@contoso.test\"\nMembers = [\"carol@contoso.test\"]\n[[OutboundConnector]]\nName = \"Route to Partner X\"\nRecipientDomains = [\"partner-x.test\"]\nUseMXRecord = false\nSmartHosts = [\"mx.partner-x.test\"]\nTlsSettings = \"DomainValidation\"\nTlsDomain = \"partner-x.test\"\nIsTransportRuleScoped = true\n";

    #[test]
    fn the_seed_rule_loads_with_exo_names() {
        let text = format!(
            "{HEAD}[[TransportRule]]\nName = \"Force Partner X via dedicated connector\"\nPriority = 0\nRecipientDomainIs = \"partner-x.test\"\nRouteMessageOutboundConnector = \"Route to Partner X\"\nExceptIfSentToMemberOf = \"NoSpecialRouting@contoso.test\"\nStopRuleProcessing = \"$true\"\n[[TransportRule]]\nName = \"External Sender Warning\"\nMode = \"audit\"\nFromScope = \"NotInOrganization\"\nSentToScope = \"InOrganization\"\nExceptIfHeaderContainsMessageHeader = \"X-Gateway-Verified\"\nExceptIfHeaderContainsWords = \"pass\"\nApplyHtmlDisclaimerLocation = \"Prepend\"\nApplyHtmlDisclaimerText = \"<div>External sender.</div>\"\nApplyHtmlDisclaimerFallbackAction = \"Wrap\"\nActivationDate = \"2026-12-08\"\nMessageSizeOver = \"10 MB\"\n"
        );
        let t = load(&text, "t.toml").unwrap();
        let rules: Vec<_> = t.rules().collect();
        assert_eq!(rules.len(), 2);
        assert!(rules[0].stop_rule_processing);
        assert_eq!(rules[0].actions, vec![Action::RouteMessageOutboundConnector("Route to Partner X".into())]);
        assert_eq!(rules[0].exceptions.len(), 1);
        assert_eq!(rules[1].priority, 1, "a rule without Priority goes last");
        assert_eq!(rules[1].mode, RuleMode::Audit);
        assert!(rules[1].conditions.contains(&Condition::MessageSizeOver(10 << 20)));
        assert_eq!(rules[1].activation_date.map(|t| t.iso8601()).as_deref(), Some("2026-12-08T00:00:00.000Z"));
    }

    /// Malformed rules: a load error with file:line:col and field, never a panic.
    #[test]
    fn malformed_rules_are_refused_where_they_are_written() {
        let rule = |body: &str| format!("{HEAD}[[TransportRule]]\nName = \"R\"\n{body}");
        let line = HEAD.lines().count() + 3;
        let rows: [(&str, String); 12] = [
            (
                "SubjectContainsWord = \"x\"\nPrependSubject = \"[x] \"\n",
                format!(
                    "t.toml:{line}:23: TransportRule[1].SubjectContainsWord: unknown key `SubjectContainsWord`\n  hint: did you mean `SubjectContainsWords`?"
                ),
            ),
            (
                "SubjectMatchesPatterns = \"(unclosed\"\nPrependSubject = \"x\"\n",
                format!(
                    "t.toml:{line}:26: TransportRule[1].SubjectMatchesPatterns: `(unclosed` is not a usable pattern: unclosed group\n  hint: patterns are regular expressions (Rust `regex` syntax, case-insensitive; no look-around or backreferences)"
                ),
            ),
            (
                "SubjectMatchesPatterns = '\\w{1000}{1000}'\nPrependSubject = \"x\"\n",
                format!(
                    "t.toml:{line}:26: TransportRule[1].SubjectMatchesPatterns: `\\w{{1000}}{{1000}}` is not a usable pattern: it would compile to more than 2097152 bytes (mailsim's bound in place of EXO's 0.3 s regex timeout)\n  hint: patterns are regular expressions (Rust `regex` syntax, case-insensitive; no look-around or backreferences)"
                ),
            ),
            (
                "Priority = 0\nDeleteMessage = true\n[[TransportRule]]\nName = \"S\"\nPriority = 0\nDeleteMessage = true\n",
                format!(
                    "t.toml:{}:12: TransportRule[2].Priority: priority 0 is already taken by `R` (TransportRule[1])\n  hint: priorities are unique; in PowerShell, Set-TransportRule -Priority on a taken value moves the others down (exo-behaviour §13.2)",
                    line + 4
                ),
            ),
            (
                "RouteMessageOutboundConnector = \"Route to Partner Y\"\n",
                format!(
                    "t.toml:{line}:33: TransportRule[1].RouteMessageOutboundConnector: no outbound connector named `Route to Partner Y`\n  hint: did you mean \"Route to Partner X\"?"
                ),
            ),
            (
                "SentToMemberOf = \"nospecial@contoso.test\"\nDeleteMessage = true\n",
                format!(
                    "t.toml:{line}:18: TransportRule[1].SentToMemberOf: no distribution group nospecial@contoso.test in [Directory]\n  hint: did you mean \"NoSpecialRouting@contoso.test\"?"
                ),
            ),
            (
                "RejectMessageEnhancedStatusCode = \"5.7.800\"\n",
                format!(
                    "t.toml:{line}:35: TransportRule[1].RejectMessageEnhancedStatusCode: `5.7.800` is not allowed\n  hint: use 5.7.1 or a code from 5.7.900 to 5.7.999 (exo-behaviour §13.5)"
                ),
            ),
            (
                "Mode = \"Test\"\nDeleteMessage = true\n",
                format!("t.toml:{line}:8: TransportRule[1].Mode: `Test` is not one of Enforce, Audit, AuditAndNotify"),
            ),
            (
                "SentToScope = \"InOrganization\"\n",
                format!(
                    "t.toml:{}:8: TransportRule[1].Name: the rule has no action\n  hint: give it an action (RouteMessageOutboundConnector, SetHeaderName, ...) or StopRuleProcessing",
                    line - 1
                ),
            ),
            (
                "ExceptIfHeaderContainsWords = \"pass\"\nDeleteMessage = true\n",
                format!(
                    "t.toml:{line}:31: TransportRule[1].ExceptIfHeaderContainsWords: ExceptIfHeaderContainsWords needs ExceptIfHeaderContainsMessageHeader (the header to look in)"
                ),
            ),
            (
                "ActivationDate = \"next week\"\nDeleteMessage = true\n",
                format!(
                    "t.toml:{line}:18: TransportRule[1].ActivationDate: `next week` is not a date\n  hint: write \"2026-12-08T09:00:00Z\" or \"2026-12-08\" (UTC)"
                ),
            ),
            (
                "SenderIpRanges = [\"10.0.0.300\"]\nDeleteMessage = true\n",
                format!(
                    "t.toml:{line}:18: TransportRule[1].SenderIpRanges: `10.0.0.300` is not an IP address, range or CIDR block\n  hint: e.g. 192.0.2.1, 192.0.2.10-192.0.2.20 or 192.0.2.0/24"
                ),
            ),
        ];
        for (body, expected) in rows {
            let e = load(&rule(body), "t.toml").unwrap_err();
            assert_eq!(e.to_string(), expected, "\n---\n{body}");
        }
    }
}
