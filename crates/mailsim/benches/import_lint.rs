//! `mailsim import` and `mailsim lint` of a large tenant (issue 13 "Speed": 1,000 connectors and
//! 300 rules, each under 1 s). The exports are generated here in the shapes of exo-behaviour §15
//! (500 `Get-InboundConnector` and 500 `Get-OutboundConnector` objects with their read-only
//! properties, 20 accepted domains, 300 `Get-TransportRule` objects listing unset predicates as
//! `null`); import is timed from the JSON texts to the checked tenant text (the loader's pass
//! included), lint from the tenant text to the findings (load included). Best of `ROUNDS`.
//!
//! `cargo bench -p mailsim --bench import_lint` (env: `CONNECTORS`, default 1000; `RULES`, 300;
//! `ROUNDS`, 5). No network; bounded in count.

use std::time::{Duration, Instant};

use mailsim::import;
use mailsim::lint::{self, Input};
use mailsim_core::time::Timestamp;
use serde_json::{Value, json};

mod support;

use support::env;

fn common(name: &str, class: &str, n: usize) -> Value {
    json!({
        "AdminDisplayName": "", "ExchangeVersion": "0.1 (8.0.535.0)", "Name": name, "Identity": name,
        "DistinguishedName": format!("CN={name},CN=Transport Settings,CN=Configuration,CN=contoso.onmicrosoft.com,CN=ConfigurationUnits,DC=NAMPR01A001,DC=PROD,DC=OUTLOOK,DC=COM"),
        "ObjectCategory": "NAMPR01A001.PROD.OUTLOOK.COM/Configuration/Schema/ms-Exch-SMTP-Connector",
        "ObjectClass": ["top", class], "WhenChanged": "/Date(1772500523000)/", "WhenCreated": "/Date(1772400000000)/",
        "WhenChangedUTC": "/Date(1772500523000)/", "WhenCreatedUTC": "/Date(1772400000000)/",
        "Guid": format!("00000000-0000-4000-8000-{n:012}"), "IsValid": true, "ObjectState": "Unchanged",
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    a.as_object_mut().unwrap().extend(b.as_object().unwrap().clone());
    a
}

fn exports(connectors: usize, rules: usize) -> Vec<(String, String)> {
    let domains: Vec<Value> = (0..20)
        .map(|d| merge(common(&format!("d{d}.test"), "msExchAcceptedDomain", 900_000 + d), json!({"DomainName": format!("d{d}.test"), "DomainType": "Authoritative", "MatchSubDomains": false, "Default": d == 0})))
        .collect();
    let inbound: Vec<Value> = (0..connectors / 2)
        .map(|i| merge(common(&format!("From partner {i}"), "msExchSMTPInboundConnector", i), json!({
            "Enabled": true, "ConnectorType": "Partner", "ConnectorSource": "AdminUI", "Comment": null,
            "SenderIPAddresses": [format!("198.18.{}.{}", i / 250, i % 250 + 1)], "SenderDomains": [format!("smtp:partner{i}.test;1")],
            "TrustedOrganizations": [], "AssociatedAcceptedDomains": [], "RequireTls": true,
            "RestrictDomainsToIPAddresses": true, "RestrictDomainsToCertificate": false, "CloudServicesMailEnabled": false,
            "TreatMessagesAsInternal": false, "TlsSenderCertificateName": null, "EFTestMode": false, "EFSkipLastIP": false,
            "EFSkipIPs": [], "EFSkipMailGateway": [], "EFUsers": [], "NameHashGuid": format!("{i}"),
        })))
        .collect();
    let outbound: Vec<Value> = (0..connectors - connectors / 2)
        .map(|i| merge(common(&format!("To partner {i}"), "msExchSMTPOutboundConnector", 500_000 + i), json!({
            "Enabled": true, "UseMXRecord": false, "Comment": null, "ConnectorType": "Partner", "ConnectorSource": "Default",
            "RecipientDomains": [format!("partner{i}.test")], "SmartHosts": [format!("mx{i}.partner.test")], "TlsDomain": null,
            "TlsSettings": null, "IsTransportRuleScoped": i < rules, "RouteAllMessagesViaOnPremises": false,
            "CloudServicesMailEnabled": false, "AllAcceptedDomains": false, "SenderRewritingEnabled": false,
            "MtaStsMode": "Opportunistic", "SmtpDaneMode": "Opportunistic", "TestMode": false, "ValidationRecipients": [],
            "IsValidated": false, "LastValidationTimestamp": null, "LinkForModifiedConnector": null,
        })))
        .collect();
    let transport_rules: Vec<Value> = (0..rules)
        .map(|r| merge(common(&format!("Route partner {r}"), "msExchTransportRule", 800_000 + r), json!({
            "Priority": r, "Mode": "Enforce", "State": "Enabled", "Conditions": ["Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RecipientDomainIsPredicate"],
            "Actions": ["Microsoft.Exchange.MessagingPolicies.Rules.Tasks.RouteMessageOutboundConnectorAction"],
            "Description": "If the message:\r\n\t...", "RuleVersion": {"Major": 15, "Minor": 0, "Build": 5, "Revision": 2},
            "From": null, "FromScope": null, "SentTo": null, "SubjectContainsWords": null, "HeaderContainsMessageHeader": null,
            "AttachmentHasExecutableContent": false, "StopRuleProcessing": false, "DeleteMessage": false, "SetSCL": null,
            "RecipientDomainIs": [format!("partner{r}.test")], "RouteMessageOutboundConnector": format!("To partner {r}"),
            "SetHeaderName": "X-Partner", "SetHeaderValue": format!("{r}"), "RuleErrorAction": "Ignore", "SenderAddressLocation": "Header",
        })))
        .collect();
    [
        ("accepted-domain.json", domains),
        ("inbound.json", inbound),
        ("outbound.json", outbound),
        ("transport-rule.json", transport_rules),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), serde_json::to_string_pretty(&Value::Array(v)).unwrap()))
    .collect()
}

fn main() {
    let connectors = env("CONNECTORS", 1000);
    let rules = env("RULES", 300).min(connectors - connectors / 2);
    let rounds = env("ROUNDS", 5).max(1);
    let inputs = exports(connectors, rules);
    let bytes: usize = inputs.iter().map(|(_, t)| t.len()).sum();
    let (mut import_best, mut lint_best) = (Duration::MAX, Duration::MAX);
    let mut findings = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let imported = import::import(&inputs).unwrap_or_else(|e| panic!("{e}"));
        import_best = import_best.min(start.elapsed());
        let start = Instant::now();
        let tenant = mailsim_core::tenant::load::load(&imported.toml, "imported.toml").unwrap();
        let f = lint::lint(&Input { tenant: &tenant, now: Timestamp::from_millis(1_800_000_000_000) });
        lint_best = lint_best.min(start.elapsed());
        findings = f.len();
    }
    println!(
        "import: {connectors} connectors + {rules} rules + 20 domains ({:.1} MB of JSON): {:.1} ms (best of {rounds})",
        bytes as f64 / 1e6,
        import_best.as_secs_f64() * 1e3
    );
    println!(
        "lint (load + {} rules): {:.1} ms, {findings} findings (best of {rounds})",
        lint::RULES.len(),
        lint_best.as_secs_f64() * 1e3
    );
}
