//! `mailsim lint --sarif`: SARIF 2.1.0 (OASIS), the format GitHub code scanning and other CI
//! tools read. One run, the tool `mailsim` with [`super::RULES`] as its rules; one result per
//! finding, located at the linted file (line 1: findings are about objects, which the loaded tenant
//! no longer places) with the object and field in the message.

use serde_json::{Value, json};

use super::{Finding, RULES, Severity};

/// The SARIF 2.1.0 schema's `$id`.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Info => "note",
        Severity::Warn => "warning",
        Severity::Error => "error",
    }
}

/// The SARIF log for `findings` in `file` (a path relative to the repository, as CI expects).
pub fn log(file: &str, findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.title },
                "fullDescription": { "text": format!("{} ({})", r.title, r.section) },
                "defaultConfiguration": { "level": level(r.severity) },
                "helpUri": "https://github.com/mailsim/mailsim/blob/main/docs/import-and-lint.md",
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.id,
                "ruleIndex": RULES.iter().position(|r| r.id == f.id).unwrap_or(0),
                "level": level(f.severity),
                "message": { "text": format!("{}.{}: {} ({}). Fix: {}", f.object, f.field, f.message, f.section, f.fix) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": file },
                        "region": { "startLine": 1 }
                    },
                    "logicalLocations": [{ "fullyQualifiedName": format!("{}.{}", f.object, f.field), "kind": "member" }]
                }],
                "properties": { "fix": f.fix },
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "mailsim",
                "informationUri": "https://github.com/mailsim/mailsim",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }]
    })
}
