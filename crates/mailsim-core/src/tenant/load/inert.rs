//! Settable EXO parameters that mailsim accepts without behaviour (exo-behaviour §15.3, §2.1,
//! §3.1, §4.1, §13.2): a file exported from a real tenant or written from `New-*`/`Set-*` command
//! lines loads, and each such parameter is named in one warning (the first place it is set, with
//! the number of objects that set it).
//!
//! Contract:
//! - `take` runs on the parsed document before the typed tables are read: it checks each inert
//!   value's shape (a boolean, a string, a list, one of an enumeration), removes the key and records
//!   the warning. The typed loader never sees these keys, so a key listed here must not be one the
//!   loader reads (a test checks the two lists are disjoint: giving a key behaviour means removing
//!   it from [`INBOUND`]/[`OUTBOUND`]/[`ACCEPTED_DOMAIN`]/[`RULE`]).
//! - A mail flow rule whose *condition, exception or delivery-changing action* mailsim does not
//!   evaluate is loaded disabled (`State = "Disabled"`), with a warning naming the rule and the key:
//!   ignoring a condition would make the rule match more mail than in EXO, and ignoring an action
//!   would deliver what EXO holds or rejects. Disabled is the conservative reading.
//! - Unknown keys are not this module's: they stay errors, with a "did you mean" hint.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Cx;
use crate::diagnostics::ConfigError;

/// What an inert value must look like (it is checked, though it does nothing).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `true`/`false` or PowerShell's `"$true"`/`"$false"`.
    Bool,
    /// A string.
    Text,
    /// An array of strings or one comma-separated string.
    List,
    /// One of these names, case-insensitive.
    Choice(&'static [&'static str]),
    /// Anything (internal parameters whose form varies by export).
    Any,
}

/// How the loader treats a rule key it does not evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Stored nowhere, warned once: mail flows as it would in EXO.
    Ignored,
    /// The rule is loaded disabled (see the module header).
    DisablesRule,
}

/// One parameter accepted without behaviour.
#[derive(Clone, Copy, Debug)]
pub struct Inert {
    /// EXO's name.
    pub key: &'static str,
    /// Its form.
    pub shape: Shape,
    /// What it does in EXO, and why mailsim can ignore it.
    pub why: &'static str,
    /// For rules: whether its absence would change what the rule does.
    pub effect: Effect,
}

const fn inert(key: &'static str, shape: Shape, why: &'static str) -> Inert {
    Inert { key, shape, why, effect: Effect::Ignored }
}

const fn disables(key: &'static str, shape: Shape) -> Inert {
    Inert { key, shape, why: "mailsim does not evaluate it", effect: Effect::DisablesRule }
}

const SOURCE: Shape = Shape::Choice(&["Default", "HybridWizard", "Migrated", "AdminUI"]);
const IDENTITY: &str = "names the object for Set-* cmdlets; mailsim identifies it by Name";

/// `New-/Set-InboundConnector` parameters without behaviour (§2.1, §15.3).
pub const INBOUND: &[Inert] = &[
    inert("Identity", Shape::Text, IDENTITY),
    inert("ConnectorSource", SOURCE, "provenance only, exo-behaviour §2.1"),
    inert("TrustedOrganizations", Shape::List, "tenant-to-tenant trust is not simulated, exo-behaviour §2.1"),
    inert("EFTestMode", Shape::Bool, "reserved for Microsoft internal use, exo-behaviour §2.1"),
    inert("ScanAndDropRecipients", Shape::Any, "reserved for Microsoft internal use, exo-behaviour §2.1"),
    inert("EFSkipMailGateway", Shape::Any, "reserved for Microsoft internal use, exo-behaviour §2.1"),
];

/// `New-/Set-OutboundConnector` parameters without behaviour (§3.1, §15.3).
pub const OUTBOUND: &[Inert] = &[
    inert("Identity", Shape::Text, IDENTITY),
    inert("ConnectorSource", SOURCE, "provenance only, exo-behaviour §2.1"),
    inert("SenderRewritingEnabled", Shape::Bool, "SRS is not simulated, exo-behaviour §3.1"),
    inert("MtaStsMode", Shape::Choice(&["Opportunistic", "None"]), "MTA-STS is not simulated, exo-behaviour §3.1"),
    inert(
        "SmtpDaneMode",
        Shape::Choice(&["Opportunistic", "Mandatory", "None"]),
        "DANE is not simulated, exo-behaviour §3.1",
    ),
    inert("IsValidated", Shape::Bool, "bookkeeping of Validate-OutboundConnector, exo-behaviour §3.1"),
    inert("LastValidationTimestamp", Shape::Any, "bookkeeping of Validate-OutboundConnector, exo-behaviour §3.1"),
];

/// `New-/Set-AcceptedDomain` parameters without behaviour (§4.1, §15.3).
pub const ACCEPTED_DOMAIN: &[Inert] = &[
    inert("Name", Shape::Text, "display name; mailsim identifies the domain by DomainName"),
    inert("Identity", Shape::Text, IDENTITY),
    inert("AddressBookEnabled", Shape::Bool, "address book filtering is not simulated"),
    inert("AuthenticationType", Shape::Choice(&["Managed", "Federated"]), "sign-in, not mail flow"),
    inert("LiveIdInstanceType", Shape::Any, "sign-in, not mail flow"),
    inert("CanHaveCloudCache", Shape::Bool, "not mail flow"),
    inert("EnableNego2Authentication", Shape::Bool, "sign-in, not mail flow"),
    inert("InitialDomain", Shape::Bool, "the tenant's onmicrosoft.com domain; no routing effect"),
    inert("IsCoexistenceDomain", Shape::Bool, "hybrid coexistence marker; no routing effect in mailsim"),
    inert("MakeDefault", Shape::Bool, "the default domain for new addresses; no routing effect"),
    inert("OutboundOnly", Shape::Bool, "not simulated"),
    inert("PendingCompletion", Shape::Bool, "domain provisioning state"),
    inert("PendingRemoval", Shape::Bool, "domain provisioning state"),
    inert("SendingFromDomainDisabled", Shape::Bool, "not simulated"),
    inert("SendingToDomainDisabled", Shape::Bool, "not simulated"),
];

/// `New-/Set-TransportRule` parameters without behaviour (§13.2–§13.5). Conditions are listed
/// once; their `ExceptIf` twins follow the same entry.
pub const RULE: &[Inert] = &[
    inert("Identity", Shape::Text, IDENTITY),
    inert("DlpPolicy", Shape::Any, "DLP policies are not simulated"),
    inert("RuleSubType", Shape::Any, "rule bookkeeping"),
    inert("UseLegacyRegex", Shape::Bool, "mailsim uses one regex engine"),
    inert("RecipientAddressType", Shape::Any, "mailsim compares the address as written"),
    inert("SetAuditSeverity", Shape::Any, "audit reports are not simulated"),
    inert("ApplyClassification", Shape::Any, "message classifications are not simulated"),
    inert("GenerateNotification", Shape::Any, "notifications are not simulated"),
    inert("GenerateIncidentReport", Shape::Any, "incident reports are not simulated"),
    inert("IncidentReportContent", Shape::Any, "incident reports are not simulated"),
    inert("LogEventText", Shape::Any, "event logs are not simulated"),
    inert("ApplyOME", Shape::Bool, "encryption is not simulated"),
    inert("RemoveOME", Shape::Bool, "encryption is not simulated"),
    inert("RemoveOMEv2", Shape::Bool, "encryption is not simulated"),
    inert("ApplyRightsProtectionTemplate", Shape::Any, "encryption is not simulated"),
    inert("ApplyRightsProtectionCustomizationTemplate", Shape::Any, "encryption is not simulated"),
    inert("RemoveRMSAttachmentEncryption", Shape::Bool, "encryption is not simulated"),
    // Delivery-changing actions.
    disables("NotifySender", Shape::Any),
    disables("ModerateMessageByUser", Shape::Any),
    disables("ModerateMessageByManager", Shape::Bool),
    disables("AddManagerAsRecipientType", Shape::Any),
    disables("SmtpRejectMessageRejectStatusCode", Shape::Any),
    disables("SmtpRejectMessageRejectText", Shape::Any),
    // Conditions (and, by name, their ExceptIf twins).
    disables("ADComparisonAttribute", Shape::Any),
    disables("ADComparisonOperator", Shape::Any),
    disables("AnyOfCcHeaderMemberOf", Shape::Any),
    disables("AnyOfToHeaderMemberOf", Shape::Any),
    disables("AnyOfToCcHeaderMemberOf", Shape::Any),
    disables("AnyOfRecipientAddressContainsWords", Shape::Any),
    disables("AnyOfRecipientAddressMatchesPatterns", Shape::Any),
    disables("AttachmentContainsWords", Shape::Any),
    disables("AttachmentExtensionMatchesWords", Shape::Any),
    disables("AttachmentHasExecutableContent", Shape::Bool),
    disables("AttachmentIsPasswordProtected", Shape::Bool),
    disables("AttachmentIsUnsupported", Shape::Bool),
    disables("AttachmentMatchesPatterns", Shape::Any),
    disables("AttachmentNameMatchesPatterns", Shape::Any),
    disables("AttachmentProcessingLimitExceeded", Shape::Bool),
    disables("AttachmentPropertyContainsWords", Shape::Any),
    disables("BetweenMemberOf1", Shape::Any),
    disables("BetweenMemberOf2", Shape::Any),
    disables("ContentCharacterSetContainsWords", Shape::Any),
    disables("HasClassification", Shape::Any),
    disables("HasNoClassification", Shape::Bool),
    disables("HasSenderOverride", Shape::Bool),
    disables("ManagerAddresses", Shape::Any),
    disables("ManagerForEvaluatedUser", Shape::Any),
    disables("MessageContainsDataClassifications", Shape::Any),
    disables("MessageTypeMatches", Shape::Any),
    disables("RecipientADAttributeContainsWords", Shape::Any),
    disables("RecipientADAttributeMatchesPatterns", Shape::Any),
    disables("RecipientInSenderList", Shape::Any),
    disables("SenderADAttributeContainsWords", Shape::Any),
    disables("SenderADAttributeMatchesPatterns", Shape::Any),
    disables("SenderInRecipientList", Shape::Any),
    disables("SenderManagementRelationship", Shape::Any),
    disables("SubjectOrBodyMatchesPatterns", Shape::Any),
];

/// Every key of the connector and accepted-domain lists (for "did you mean" hints).
pub fn all_keys() -> impl Iterator<Item = &'static str> {
    INBOUND.iter().chain(OUTBOUND).chain(ACCEPTED_DOMAIN).map(|i| i.key)
}

/// The inert entry for `key` in `list`; a rule condition also answers for its `ExceptIf` twin.
pub fn find(list: &'static [Inert], key: &str) -> Option<&'static Inert> {
    list.iter().find(|i| i.key == key).or_else(|| {
        let base = key.strip_prefix("ExceptIf")?;
        list.iter().find(|i| i.key == base && i.effect == Effect::DisablesRule && !is_action(i.key))
    })
}

fn is_action(key: &str) -> bool {
    matches!(
        key,
        "NotifySender"
            | "ModerateMessageByUser"
            | "ModerateMessageByManager"
            | "AddManagerAsRecipientType"
            | "SmtpRejectMessageRejectStatusCode"
            | "SmtpRejectMessageRejectText"
    )
}

/// Where each inert key was first set, and on how many objects.
struct Seen {
    field: String,
    span: Range<usize>,
    why: &'static str,
    count: usize,
}

/// Parses the document, takes the inert keys out ([`take`]) and reads the rest into `T`.
pub(super) fn parse<T: serde::de::DeserializeOwned>(cx: &mut Cx<'_>) -> Result<T, ConfigError> {
    let text = cx.text;
    let mut doc = DeTable::parse(text).map_err(|e| cx.syntax_error(&e))?;
    take(cx, doc.get_mut())?;
    T::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| cx.syntax_error(&e))
}

/// Removes the inert keys from the document's tenant tables, checking each value's shape; records
/// one warning per key name in `cx` (in file order) and disables rules per the module header.
pub(super) fn take(cx: &mut Cx<'_>, doc: &mut DeTable<'_>) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for (table, list) in
        [("InboundConnector", INBOUND), ("OutboundConnector", OUTBOUND), ("AcceptedDomain", ACCEPTED_DOMAIN)]
    {
        let Some(array) = doc.get_mut(table).and_then(|v| match v.get_mut() {
            DeValue::Array(a) => Some(a),
            _ => None,
        }) else {
            continue;
        };
        for (n, item) in array.iter_mut().enumerate() {
            let DeValue::Table(t) = item.get_mut() else { continue };
            let object = format!("{table}[{}]", n + 1);
            take_from(cx, t, list, &object, &mut seen)?;
        }
    }
    if let Some(DeValue::Array(rules)) = doc.get_mut("TransportRule").map(Spanned::get_mut) {
        for (n, item) in rules.iter_mut().enumerate() {
            let DeValue::Table(t) = item.get_mut() else { continue };
            let object = format!("TransportRule[{}]", n + 1);
            let disabling = take_from(cx, t, RULE, &object, &mut seen)?;
            if let Some((key, span)) = disabling {
                disable_rule(t, &span);
                let name = t.get("Name").and_then(|v| v.get_ref().as_str()).unwrap_or("").to_string();
                cx.warn(
                    &span,
                    format!("{object}.{key}"),
                    format!(
                        "rule `{name}` is loaded disabled: mailsim does not evaluate `{key}`, and ignoring it would change what the rule does (exo-behaviour §13)"
                    ),
                );
            }
        }
    }
    let mut seen: Vec<Seen> = seen.into_values().collect();
    seen.sort_by_key(|s| s.span.start);
    for s in seen {
        let more = match s.count {
            1 => String::new(),
            n => format!(" (set on {n} objects; warned once)"),
        };
        cx.warn(&s.span, s.field, format!("accepted without effect in mailsim: {}{more}", s.why));
    }
    Ok(())
}

/// Takes `list`'s keys out of one table. Returns the first key that disables a rule.
fn take_from(
    cx: &Cx<'_>,
    t: &mut DeTable<'_>,
    list: &'static [Inert],
    object: &str,
    seen: &mut BTreeMap<String, Seen>,
) -> Result<Option<(String, Range<usize>)>, ConfigError> {
    let keys: Vec<String> =
        t.iter().map(|(k, _)| k.get_ref().to_string()).filter(|k| find(list, k).is_some()).collect();
    let mut disabling = None;
    for key in keys {
        let Some(entry) = find(list, &key) else { continue };
        let Some(value) = t.remove(key.as_str()) else { continue };
        let field = format!("{object}.{key}");
        check_shape(cx, &value, entry.shape, &field)?;
        if entry.effect == Effect::DisablesRule {
            disabling.get_or_insert((key.clone(), value.span()));
            continue;
        }
        seen.entry(format!("{}.{key}", object.split('[').next().unwrap_or(object)))
            .and_modify(|s| s.count += 1)
            .or_insert(Seen { field, span: value.span(), why: entry.why, count: 1 });
    }
    Ok(disabling)
}

fn check_shape(cx: &Cx<'_>, value: &Spanned<DeValue<'_>>, shape: Shape, field: &str) -> Result<(), ConfigError> {
    let v = value.get_ref();
    let ok = match shape {
        Shape::Any => true,
        Shape::Text => v.is_str(),
        Shape::Bool => {
            v.is_bool()
                || v.as_str().is_some_and(|s| {
                    let s = s.trim();
                    let s = s.strip_prefix('$').unwrap_or(s);
                    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
                })
        }
        Shape::List => v.is_str() || v.as_array().is_some_and(|a| a.iter().all(|i| i.get_ref().is_str())),
        Shape::Choice(names) => v.as_str().is_some_and(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s.trim()))),
    };
    if ok {
        return Ok(());
    }
    let expected = match shape {
        Shape::Bool => "true, false, \"$true\" or \"$false\"".to_string(),
        Shape::Text => "a string".to_string(),
        Shape::List => "an array of strings or a comma-separated string".to_string(),
        Shape::Choice(names) => format!("one of {}", names.join(", ")),
        Shape::Any => unreachable!("Any accepts every value"),
    };
    Err(cx.error(&value.span(), field, format!("expected {expected}, found {}", describe(v))))
}

fn describe(v: &DeValue<'_>) -> String {
    match v.as_str() {
        Some(s) => format!("`{s}`"),
        None => v.type_str().to_string(),
    }
}

/// `State = "Disabled"` (replacing `Enabled`/`State`), and `StopRuleProcessing` when no action is
/// left, so the disabled rule still passes `New-TransportRule`'s own checks.
fn disable_rule<'i>(t: &mut DeTable<'i>, span: &Range<usize>) {
    t.remove("Enabled");
    t.insert(
        Spanned::new(span.clone(), Cow::Borrowed("State")),
        Spanned::new(span.clone(), DeValue::String(Cow::Borrowed("Disabled"))),
    );
    t.insert(
        Spanned::new(span.clone(), Cow::Borrowed("StopRuleProcessing")),
        Spanned::new(span.clone(), DeValue::Boolean(true)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::load::{load, load_with_warnings};

    const DOMAIN: &str = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nName = \"contoso.test\"\nIsCoexistenceDomain = false\nMakeDefault = \"$true\"\n\n";

    #[test]
    fn every_inert_parameter_loads_and_warns_once_by_name() {
        let text = format!(
            r#"{DOMAIN}[[InboundConnector]]
Name = "Inbound from on-premises"
Identity = "Inbound from on-premises"
ConnectorType = "OnPremises"
ConnectorSource = "HybridWizard"
SenderDomains = ["*"]
RequireTls = true
TrustedOrganizations = []
EFTestMode = false
ScanAndDropRecipients = []
EFSkipMailGateway = []

[[InboundConnector]]
Name = "second"
ConnectorSource = "AdminUI"
SenderDomains = ["*"]
RequireTls = false

[[OutboundConnector]]
Name = "Outbound to on-premises"
Identity = "Outbound to on-premises"
ConnectorSource = "hybridwizard"
ConnectorType = "OnPremises"
RecipientDomains = ["contoso.test"]
UseMXRecord = false
SmartHosts = ["mail.contoso.test"]
SenderRewritingEnabled = false
MtaStsMode = "Opportunistic"
SmtpDaneMode = "None"
ValidationRecipients = ["postmaster@contoso.test"]
IsValidated = false
LastValidationTimestamp = "2026-01-01T00:00:00Z"
"#
        );
        let loaded = load_with_warnings(&text, "t.toml").unwrap();
        assert_eq!(loaded.tenant.inbound_connectors.len(), 2);
        let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        let inert: Vec<&String> = w.iter().filter(|w| w.contains("accepted without effect")).collect();
        assert_eq!(inert.len(), 3 + 6 + 7, "{w:#?}");
        assert!(w.contains(&"t.toml:11: warning: InboundConnector[1].ConnectorSource: accepted without effect in mailsim: provenance only, exo-behaviour §2.1 (set on 2 objects; warned once)".to_string()), "{w:#?}");
        assert!(w.iter().any(|w| w.contains("OutboundConnector[1].MtaStsMode")));
        assert!(w.iter().any(|w| w.contains("AcceptedDomain[1].Name")));
    }

    #[test]
    fn an_inert_value_of_the_wrong_shape_is_refused_at_the_value() {
        let text = format!(
            "{DOMAIN}[[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"*\"]\nMtaStsMode = \"Strict\"\n"
        );
        assert_eq!(
            load(&text, "t.toml").unwrap_err().to_string(),
            "t.toml:10:14: OutboundConnector[1].MtaStsMode: expected one of Opportunistic, None, found `Strict`"
        );
        let text = format!("{DOMAIN}[[InboundConnector]]\nName = \"i\"\nSenderDomains = [\"*\"]\nEFTestMode = 3\n");
        assert_eq!(
            load(&text, "t.toml").unwrap_err().to_string(),
            "t.toml:10:14: InboundConnector[1].EFTestMode: expected true, false, \"$true\" or \"$false\", found integer"
        );
    }

    #[test]
    fn a_rule_with_an_unevaluated_condition_loads_disabled() {
        let text = format!(
            r#"{DOMAIN}[[TransportRule]]
Name = "Block executables"
Identity = "Block executables"
SetAuditSeverity = "Low"
ExceptIfAttachmentHasExecutableContent = false
AttachmentHasExecutableContent = true
RejectMessageReasonText = "no"

[[TransportRule]]
Name = "Tag"
SetAuditSeverity = "High"
SetHeaderName = "X-Tag"
SetHeaderValue = "1"
"#
        );
        let loaded = load_with_warnings(&text, "t.toml").unwrap();
        let rules = &loaded.tenant.transport_rules;
        assert!(!rules[0].enabled, "disabled: its condition is not evaluated");
        assert!(rules[1].enabled);
        let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter().any(|w| w.contains(
                "TransportRule[1].AttachmentHasExecutableContent: rule `Block executables` is loaded disabled"
            )),
            "{w:#?}"
        );
        assert!(w.iter().any(|w| w.contains("TransportRule[1].SetAuditSeverity: accepted without effect")
            && w.contains("set on 2 objects")));
    }

    /// Moderation is a settable action mailsim does not simulate: the rule loads disabled (it was
    /// refused before issue 13); an incident report changes no delivery: ignored with a warning.
    #[test]
    fn moderation_disables_the_rule_and_incident_reports_are_ignored() {
        let text = format!(
            "{DOMAIN}[[TransportRule]]\nName = \"Moderate\"\nSentTo = \"ceo@contoso.test\"\nModerateMessageByUser = \"boss@contoso.test\"\n\n[[TransportRule]]\nName = \"Report\"\nGenerateIncidentReport = \"sec@contoso.test\"\nSetHeaderName = \"X-R\"\nSetHeaderValue = \"1\"\n"
        );
        let loaded = load_with_warnings(&text, "t.toml").unwrap();
        assert!(!loaded.tenant.transport_rules[0].enabled);
        assert!(loaded.tenant.transport_rules[1].enabled);
        let w: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter().any(|w| w.contains("TransportRule[1].ModerateMessageByUser: rule `Moderate` is loaded disabled")),
            "{w:#?}"
        );
        assert!(
            w.iter().any(|w| w.contains("TransportRule[2].GenerateIncidentReport: accepted without effect")),
            "{w:#?}"
        );
    }

    /// A key listed here is one the typed loader never sees: giving a key behaviour means removing
    /// it from these lists (this test fails after a merge that forgets).
    #[test]
    fn inert_keys_are_not_keys_the_loader_reads() {
        for (table, list, extra) in [
            ("InboundConnector", INBOUND, "SenderDomains = [\"*\"]\n"),
            ("OutboundConnector", OUTBOUND, ""),
            ("AcceptedDomain", ACCEPTED_DOMAIN, ""),
        ] {
            let name = if table == "AcceptedDomain" { "DomainName = \"x.test\"" } else { "Name = \"n\"" };
            let text = format!("[[{table}]]\n{name}\n{extra}Zzz = 1\n");
            let e = load(&text, "t.toml").unwrap_err();
            let known = e.hint.unwrap_or_default();
            let known: Vec<&str> = known.trim_start_matches("known keys here: ").split(", ").collect();
            assert!(known.len() > 1, "{table}: {known:?}");
            for i in list {
                assert!(!known.contains(&i.key), "{table}.{} is read by the loader and listed as inert", i.key);
            }
        }
        let rule_keys = crate::tenant::load::transport_rule_keys();
        for i in RULE {
            assert!(
                !rule_keys.iter().any(|k| k == i.key || *k == format!("ExceptIf{}", i.key)),
                "TransportRule.{}",
                i.key
            );
        }
    }
}
