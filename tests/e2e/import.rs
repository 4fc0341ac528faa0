//! `mailsim import` end to end (issue 13 item 1, exo-behaviour §15): the JSON fixtures under
//! tests/fixtures/import/ are written to §15's documented shapes (an object, an array, an empty
//! file, PS 5.1 `\/Date()\/` and ISO dates, integer enums, an HCW pair, a Mimecast-style lock-down,
//! a rule-scoped connector with its rule, a `-Depth 2` collapse, another cmdlet's export). The
//! round trip: a shipped scenario run with its hand-written tenant and run again with the tenant
//! imported from the JSON of the same configuration gives the same results (both pass their
//! expectations, step for step).

use std::path::{Path, PathBuf};

use mailsim::import::{self, Cmdlet};
use mailsim::scenario::{RunOptions, Verdict, load_file, run_scenario};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/import")
}

fn import_dir(name: &str) -> import::Imported {
    let files = import::expand_paths(&[fixtures().join(name)]).unwrap();
    let inputs: Vec<(String, String)> =
        files.iter().map(|f| (f.display().to_string(), import::read_input(f).unwrap())).collect();
    import::import(&inputs).unwrap_or_else(|e| panic!("{e}"))
}

/// The scenario `shipped` with its tenant tables moved out to the imported tenant: the scenario's
/// own `[Directory]` (mailboxes and groups are not in the four exports) replaces the import's.
fn with_imported_tenant(shipped: &str, imported: &str, dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(shipped);
    let mut scenario: toml::Table = toml::from_str(&std::fs::read_to_string(&root).unwrap()).unwrap();
    let mut tenant: toml::Table = toml::from_str(imported).unwrap();
    for table in mailsim_core::tenant::load::TABLES {
        let own = scenario.remove(table);
        if table == "Directory" {
            tenant.remove("Directory");
            if let Some(d) = own {
                tenant.insert("Directory".into(), d);
            }
        }
    }
    let tenant_path = dir.join("tenant.toml");
    std::fs::write(&tenant_path, toml::to_string(&tenant).unwrap()).unwrap();
    scenario["scenario"].as_table_mut().unwrap().insert("tenant_file".into(), "tenant.toml".into());
    let path = dir.join(shipped);
    std::fs::write(&path, toml::to_string(&scenario).unwrap()).unwrap();
    path
}

async fn same_results(shipped: &str, fixture: &str) {
    let imported = import_dir(fixture);
    let dir = tempfile::tempdir().unwrap();
    let original = load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(shipped)).unwrap();
    let rewritten =
        load_file(&with_imported_tenant(shipped, &imported.toml, dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(original.steps.len(), rewritten.steps.len());
    for scenario in [&original, &rewritten] {
        let report = run_scenario(scenario, &RunOptions::default()).await;
        assert!(
            matches!(report.verdict, Verdict::Passed),
            "{}: {:?}\n{}",
            scenario.file,
            report.verdict,
            imported.toml
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_mimecast_style_lockdown() {
    same_results("00-lockdown-5.7.51.toml", "lockdown").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_hcw_pair() {
    same_results("26-hybrid-onpremises-connectors.toml", "hcw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_rule_scoped_connector_with_its_rule() {
    same_results("37-rules-conditional-routing-partner-x.toml", "rule-scoped").await;
}

/// What the HCW export becomes: integer enums named (§15.4), SmartHost objects read, address
/// spaces stripped, provenance kept as a comment, read-only properties gone, the empty rule file
/// nothing, and each table commented with its source.
#[test]
fn hcw_export_is_written_with_exo_names_and_sources() {
    let imported = import_dir("hcw");
    let t = &imported.toml;
    for expected in [
        "DomainType = \"InternalRelay\"",
        "ConnectorType = \"OnPremises\"",
        "SenderDomains = [\"*\"]",
        "RecipientDomains = [\"contoso.test\"]",
        "SmartHosts = [\"mail.contoso.test\"]",
        "TlsSettings = \"DomainValidation\"",
        "#   ConnectorSource = \"HybridWizard\"",
        "# From ",
        "Guid 2f0c5b1e-8d3a-4c6f-9b7e-1a2b3c4d5e6f",
    ] {
        assert!(t.contains(expected), "{expected} missing from\n{t}");
    }
    for dropped in ["WhenChanged", "ObjectClass", "PSComputerName", "LinkForModifiedConnector", "Guid ="] {
        assert!(!t.contains(dropped), "{dropped} should be dropped:\n{t}");
    }
    assert_eq!(imported.counts.get(&Cmdlet::TransportRule), None, "the empty export holds no rule");
    assert_eq!(imported.counts[&Cmdlet::OutboundConnector], 1);
    let w = &imported.warnings[0];
    assert!(
        w.starts_with("kept as comments (no behaviour in mailsim): ") && w.contains("OutboundConnector.MtaStsMode"),
        "{w}"
    );
}

/// PS 5.1 dates on a rule become UTC ISO dates the loader reads.
#[test]
fn ps51_and_iso_dates_are_read() {
    let rule = r#"{"Priority":0,"Mode":"Enforce","State":"Enabled","Name":"Dated","Identity":"Dated","ActivationDate":"\/Date(1772500523000)\/","ExpiryDate":"2027-07-23T22:55:13.0000000Z","SetSCL":-1,"SenderIpRanges":["198.51.100.7"],"Conditions":[]}"#;
    let imported = import::import(&[("rule.json".into(), rule.into())]).unwrap_or_else(|e| panic!("{e}"));
    assert!(imported.toml.contains("ActivationDate = \"2026-03-03T01:15:23.000Z\""), "{}", imported.toml);
    assert!(imported.toml.contains("ExpiryDate = \"2027-07-23T22:55:13.000Z\""), "{}", imported.toml);
}

/// Refusals name the file, the object and the property; none panics.
#[test]
fn refusals_name_file_object_and_pointer() {
    let one = |name: &str| {
        let path = fixtures().join("refused").join(name);
        import::import(&[(name.to_string(), import::read_input(&path).unwrap())]).unwrap_err().to_string()
    };
    assert_eq!(
        one("depth2-collapsed.json"),
        "depth2-collapsed.json: /0/SmartHosts/0 (Identity \"To gateway\"): `@{Domain=smtp.gateway.test; Address=; IsIPAddress=False}` is an object collapsed to text by ConvertTo-Json's default -Depth 2\n  hint: export again with `ConvertTo-Json -Depth 5`"
    );
    assert!(
        one("connection-filter-policy.json").starts_with("connection-filter-policy.json: / (Identity \"Default\"): not an export of Get-AcceptedDomain, Get-InboundConnector, Get-OutboundConnector or Get-TransportRule: its objects are `msExchHostedConnectionFilterPolicy`"),
    );
    // Malformed JSON: file and position.
    let e = import::import(&[("bad.json".into(), "[{\"DomainName\": \"a.test\",}]".into())]).unwrap_err();
    assert_eq!(e.at.as_deref(), Some("1:26"), "{e}");
    assert!(e.message.ends_with("trailing comma"), "{e}");
    // A value the loader refuses is reported against its JSON object.
    let e = import::import(&[(
        "in.json".into(),
        r#"[{"Name":"ok","SenderDomains":["smtp:*;1"],"RestrictDomainsToIPAddresses":false,"RequireTls":false},{"Name":"Bad","Identity":"Bad","SenderDomains":["smtp:*;1"],"RestrictDomainsToIPAddresses":true,"SenderIPAddresses":["2001:db8::1"],"RequireTls":false}]"#.into(),
    )])
    .unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.identity.as_deref(), e.at.as_deref()),
        ("in.json", Some("Bad"), Some("/1/SenderIPAddresses")),
        "{e}"
    );
    // Two cmdlets in one file.
    let e = import::import(&[(
        "mixed.json".into(),
        r#"[{"DomainName":"a.test","DomainType":"Authoritative"},{"Name":"c","SenderDomains":["*"],"RestrictDomainsToIPAddresses":false}]"#.into(),
    )])
    .unwrap_err();
    assert!(e.to_string().contains("an object of Get-InboundConnector in a file of Get-AcceptedDomain"), "{e}");
}

/// Huge input: the read stops at the cap (bounded memory) and says so; invalid UTF-8 is named by
/// position; UTF-16 (Windows PowerShell 5.1's `>`) is read.
#[test]
fn huge_and_badly_encoded_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.json");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(100 << 20).unwrap(); // 100 MB, sparse
    let e = import::read_input(&huge).unwrap_err();
    assert!(e.message.starts_with("is larger than 64 MiB"), "{e}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\n  \"DomainName\": \"caf\xe9.test\"}").unwrap();
    let e = import::read_input(&bad).unwrap_err();
    assert_eq!(e.at.as_deref(), Some("2:21"), "{e}");
    let utf16 = dir.path().join("utf16.json");
    let text = r#"{"DomainName":"contoso.test","DomainType":"Authoritative"}"#;
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&utf16, bytes).unwrap();
    let imported = import::import(&[("utf16.json".into(), import::read_input(&utf16).unwrap())]).unwrap();
    assert!(imported.toml.contains("DomainName = \"contoso.test\""));
}

/// A rule naming a connector the export left out is refused with the export fix (§15.1, L17).
#[test]
fn a_rule_naming_a_connector_the_export_lacks_points_at_the_export_switches() {
    let rule = r#"{"Priority":0,"Mode":"Enforce","State":"Enabled","Name":"R","Identity":"R","RecipientDomainIs":["x.test"],"RouteMessageOutboundConnector":"Route to X","Conditions":[]}"#;
    let e = import::import(&[("rule.json".into(), rule.into())]).unwrap_err();
    assert_eq!(e.at.as_deref(), Some("/RouteMessageOutboundConnector"), "{e}");
    assert!(e.hint.unwrap().contains("-IsTransportRuleScoped:$true"));
}

/// `mailsim lint` on a scenario and on a tenant file: exit status by the highest severity and
/// `--deny`; a file that does not load is an error, not a finding.
#[test]
fn lint_exit_status_follows_severity_and_deny() {
    use mailsim::cli::lint::{DenyLevel, LintArgs, run};
    let args = |path: PathBuf, deny| LintArgs { path, json: true, sarif: false, deny };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/00-lockdown-5.7.51.toml");
    // The lock-down connector has Enhanced Filtering off: L1, a warning.
    assert_eq!(run(&args(scenario.clone(), DenyLevel::Error)).unwrap(), 0);
    assert_eq!(run(&args(scenario, DenyLevel::Warn)).unwrap(), 1);
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n[[TransportRule]]\nName = \"Trust contoso\"\nSenderDomainIs = \"contoso.test\"\nSetSCL = -1\n",
    )
    .unwrap();
    assert_eq!(run(&args(tenant.clone(), DenyLevel::Error)).unwrap(), 1, "L7 is an error");
    let findings = mailsim::lint::lint(&mailsim::lint::Input {
        tenant: &mailsim::lint::load_any(&tenant).unwrap(),
        now: mailsim_core::time::Timestamp::from_millis(0),
    });
    assert_eq!(findings[0].id, "L7");
    assert!(findings[0].message.contains("critical"), "{findings:#?}");
    assert!(findings[0].fix.starts_with("Set-TransportRule -Identity 'Trust contoso' "), "{findings:#?}");
    std::fs::write(&tenant, "[[AcceptedDomain]]\nDomainNam = \"contoso.test\"\n").unwrap();
    assert!(run(&args(tenant, DenyLevel::Error)).is_err());
}

/// An endless or huge stream that is not a regular file (a pipe, a device) is read only up to the
/// cap: /dev/zero stops at 64 MiB and is refused, it does not run the machine out of memory.
#[test]
fn an_endless_input_is_cut_at_the_cap() {
    let e = import::read_input(Path::new("/dev/zero")).unwrap_err();
    assert!(e.message.starts_with("is larger than 64 MiB"), "{e}");
}
