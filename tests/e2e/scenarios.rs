//! Scenario files end to end: every shipped `scenarios/*.toml` runs through the same runner as
//! `mailsim run` (in process, in parallel), malformed files are refused with `file:line:col:
//! field: problem` and a hint before any world starts, and the JSON and JUnit reports have the
//! shape CI tools read. Also the Rust harness: a scenario's world driven from a test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailsim::scenario::expect::{DEFAULT_WAIT, SendCheck, SendRecord, WorldCheck};
use mailsim::scenario::report::{self, Summary};
use mailsim::scenario::{RunOptions, Verdict, load_file, run_paths};
use mailsim::sim::{SendSpec, TlsUse};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every shipped scenario passes, so none can go stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_passes() {
    let reports = run_paths(&[shipped()], None, 4, &RunOptions::default(), |_| {}).await.expect("scenarios/ is there");
    assert!(reports.len() >= 3, "{} scenarios found", reports.len());
    let summary = Summary::of(&reports);
    assert_eq!(summary.failed, 0, "\n{}", report::text(&reports));
}

const TENANT: &str = r#"[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "Lock to gateway"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true

[[host]]
name = "gateway"
address = "198.51.100.7"
"#;

/// Lines 1-17 are [`TENANT`]; the text given starts at line 18.
fn write(dir: &Path, name: &str, rest: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{TENANT}{rest}")).unwrap();
    path
}

fn load_error(dir: &Path, rest: &str) -> String {
    let path = write(dir, "bad.toml", rest);
    let err = load_file(&path).expect_err("malformed").to_string();
    let prefix = format!("{}:", path.display());
    assert!(err.starts_with(&prefix), "{err}");
    err[prefix.len()..].to_string()
}

#[test]
fn malformed_scenarios_name_file_line_field_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let send = |from: &str| {
        format!(
            "[[step]]\nsend = {{ from = \"{from}\", mail_from = \"a@fabrikam.test\", rcpt_to = [\"alice@contoso.test\"] }}\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            format!("[[step]]\nadvance = \"1h\"\n\n{}", send("gatway")),
            "22:17: step[2].send.from: no host named \"gatway\"\n  hint: did you mean \"gateway\"?",
        ),
        (
            format!("{}advance = \"1h\"\n", send("gateway")),
            "20:1: step[1].advance: a step has exactly one action, and this one already has `send`\n  hint: split it into two [[step]] tables",
        ),
        (
            "[[step]]\n".to_string(),
            "18:1: step[1]: this step does nothing\n  hint: give it one of send, advance or change, or an expect",
        ),
        (
            "[[step]]\nadvance = \"25 hours\"\n".to_string(),
            "19:11: step[1].advance: bad duration \"25 hours\"\n  hint: write a number and a unit: 250ms, 30s, 5m, 25h or 2d (or a sum such as 1h30m)",
        ),
        (
            "[[step]]\nsend = { from = \"gateway\", tls = true, cert = \"expird\", mail_from = \"a@b.test\", rcpt_to = \"alice@contoso.test\" }\n".to_string(),
            "19:47: step[1].send.cert: no test certificate named \"expird\"\n  hint: did you mean \"expired\"?",
        ),
        (
            "[[step]]\nchange = { inbound_connector = \"Lock to gatway\", set = { RequireTls = true } }\n".to_string(),
            "19:32: step[1].change.inbound_connector: no inbound connector named \"Lock to gatway\"\n  hint: did you mean \"Lock to gateway\"?",
        ),
        (
            "[[step]]\nchange = { inbound_connector = \"Lock to gateway\", set = { SenderIpAddresses = [\"203.0.113.0/24\"] } }\n".to_string(),
            "19:59: step[1].change.set.SenderIpAddresses: unknown key `SenderIpAddresses`\n  hint: keys are case-sensitive: write `SenderIPAddresses`",
        ),
        (
            "[[step]]\nchange = { remove_connector = \"Lock to gatway\" }\n".to_string(),
            "19:31: step[1].change.remove_connector: no connector named \"Lock to gatway\"\n  hint: did you mean \"Lock to gateway\"?",
        ),
        (
            "[[step]]\nadvance = \"1h\"\nexpct = { queued = 0 }\n".to_string(),
            "20:1: step[1].expct: unknown key `expct`\n  hint: did you mean `expect`?",
        ),
        (
            "[[step]]\nexpect = { peer = \"gateway\" }\n".to_string(),
            "19:19: step[1].expect.peer: host \"gateway\" receives no mail: it has no peer\n  hint: add a [host.peer] table to its [[host]] (peers start with the world)",
        ),
        (
            "[[step]]\nexpect = { reply = \"250\" }\n".to_string(),
            "19:12: step[1].expect.reply: `reply` checks the reply to a send, and this step sends nothing\n  hint: put it in the expect of the [[step]] that has the send",
        ),
        (
            "[dns]\nrecords = \"\"\"\npartner.test. MX 10 mx.partner.test.\nmx.partner.test A 203.0.113.25\n\"\"\"\n".to_string(),
            "21:1: dns.records: `mx.partner.test` is not an absolute name\n  hint: end it with a dot: `mx.partner.test.`",
        ),
        (
            "[host.peer]\non_rcpt = { Reply = [451] }\n".to_string(),
            "19:11: host[1].peer.on_rcpt: expected tuple with length 2\n  hint: a behaviour is \"Accept\", { Reply = [451, \"4.7.1 Try again later\"] }, { Delay = 200 } (ms), \"Drop\" or { Sequence = [...] }",
        ),
        ("[hosts]\n".to_string(), "18:2: hosts: unknown key `hosts`\n  hint: did you mean `host`?"),
    ];
    for (rest, expected) in cases {
        assert_eq!(load_error(d, &rest), expected, "\n---\n{rest}");
    }
    // The tenant tables are checked by the tenant loader, with the scenario's line numbers.
    let e = load_error(
        d,
        "\n[[InboundConnector]]\nName = \"x\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"10.0.0.0/8\"]\n",
    );
    assert!(e.starts_with("22:22: InboundConnector[2].SenderIPAddresses: "), "{e}");
}

/// A malformed file is reported as a failure with its message, and nothing else is held up.
#[tokio::test]
async fn json_and_junit_reports_have_the_expected_shape() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let send = "[[step]]\nsend = { from = \"gateway\", mail_from = \"a@fabrikam.test\", rcpt_to = [\"alice@contoso.test\"] }\n";
    write(d, "a-pass.toml", &format!("{send}expect = {{ reply = \"250 2.6.0\", connector = \"Lock to gateway\" }}\n"));
    write(d, "b-fail.toml", &format!("{send}expect = {{ reply = \"550 5.7.51\" }}\n"));
    write(d, "c-bad.toml", "[[step]]\nadvance = \"soon\"\n");
    std::fs::write(d.join("notes.txt"), "not a scenario").unwrap();
    let options =
        RunOptions { timeout: Duration::from_secs(30), wait: Duration::from_millis(200), ..RunOptions::default() };
    let mut seen = Vec::new();
    let reports = run_paths(&[d.to_path_buf()], None, 2, &options, |r| seen.push(r.name.clone())).await.unwrap();
    // Streamed as they finish (the malformed file first: nothing runs for it); returned in file order.
    assert_eq!(seen[0], "c-bad");
    seen.sort();
    assert_eq!(seen, ["a-pass", "b-fail", "c-bad"]);
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a-pass", "b-fail", "c-bad"], "reports in file order");
    let summary = Summary::of(&reports);
    assert_eq!((summary.passed, summary.failed, summary.malformed, summary.exit_code()), (1, 2, 1, 2));

    // Text: one line per scenario, the failure with expected, actual and transcript, the summary last.
    let text = report::text(&reports);
    assert!(text.starts_with("ok   a-pass ("), "{text}");
    assert!(text.contains("\nFAIL b-fail ("), "{text}");
    assert!(text.contains("step[1] at "), "{text}");
    assert!(text.contains("b-fail.toml:20: step[1].expect.reply\n"), "{text}");
    assert!(text.contains("  expected: final reply starting with \"550 5.7.51\"\n  actual:   250 2.6.0 "), "{text}");
    assert!(text.contains("  SMTP transcript of the send from gateway:\n    S: 220 "), "{text}");
    assert!(text.contains("c-bad.toml:19:11: step[1].advance: bad duration \"soon\"\n  hint: "), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 2 failed"));

    // JSON: one object per scenario.
    let objects: Vec<serde_json::Value> = reports.iter().map(report::json).collect();
    let statuses: Vec<&str> = objects.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["passed", "failed", "malformed"]);
    assert!(objects.iter().all(|o| o["version"] == 1), "versioned objects");
    for o in &objects {
        let line = o.to_string();
        assert!(!line.contains('\n'));
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(back["name"].is_string() && back["file"].is_string() && back["duration_ms"].is_u64(), "{line}");
    }
    let failure = &objects[1]["failure"];
    assert_eq!(failure["step"], 1);
    assert_eq!(failure["field"], "step[1].expect.reply");
    assert!(failure["actual"].as_str().unwrap().starts_with("250 2.6.0"));
    assert!(failure["transcript"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("C: MAIL FROM:")));
    assert_eq!(objects[2]["error"]["line"], 19);
    assert_eq!(objects[2]["error"]["field"], "step[1].advance");
    let summary = report::json_summary(&reports, Duration::from_millis(5));
    assert_eq!(summary["summary"]["passed"], 1);
    assert_eq!(summary["summary"]["failed"], 2);
    assert_eq!(summary["version"], 1);

    // JUnit (issue 10 changed its shape on purpose): a testsuite per file with the file and line as
    // properties, classname the directory (Jenkins shows the name whole), a failure for the failed
    // expectation and an error for the malformed file. Schema validation: tests/cli.rs.
    let xml = report::junit(&reports, Duration::from_millis(1234));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>"), "{xml}");
    check_well_formed(&xml);
    assert_eq!(xml.matches("<testsuite ").count(), 3);
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert_eq!(xml.matches("<error ").count(), 1);
    let classname = report::junit_classname(&reports[0].file);
    assert!(!classname.contains('.'), "{classname}");
    assert!(xml.contains(&format!("<testcase name=\"a-pass\" classname=\"{classname}\"")), "{xml}");
    assert!(xml.contains("<property name=\"line\" value=\"20\"/>"), "{xml}");
    assert!(xml.contains("<error message=\"") && xml.contains("type=\"malformed\""), "{xml}");
    assert!(xml.contains("expected final reply starting with &quot;550 5.7.51&quot;"), "{xml}");
}

/// Tags balance, attributes are quoted, and text holds no raw `<` or `&` (enough to catch what a
/// hand-written writer gets wrong).
fn check_well_formed(xml: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        assert!(!text.contains('>'), "stray > in {text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map(|e| i + e + 1).unwrap_or(text.len())];
            assert!(["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity), "bad entity {entity:?}");
        }
        let end = rest[start..].find('>').expect("tag closes") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "< inside a tag: {tag:?}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
        if tag.starts_with('?') {
        } else if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "closing {name}");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
}

/// The Rust harness: a scenario file's world, driven from a test with the same assertions the
/// runner uses. Copy this to start a test of your own.
#[tokio::test]
async fn a_scenario_world_driven_from_rust() {
    let scenario = load_file(&shipped().join("00-lockdown-5.7.51.toml")).unwrap();
    let sim = scenario.start().await.unwrap();

    let mut spec = SendSpec::new("gateway", "someone@fabrikam.test", &["alice@contoso.test"]);
    spec.tls = TlsUse::StartTls;
    let outcome = sim.send(&spec).await.unwrap();
    assert!(sim.settled().await);
    let events = sim.trace().into_iter().filter(|e| e.message_id == outcome.message_id).collect();
    let record = SendRecord { host: "gateway".into(), outcome: Ok(outcome), events };
    SendCheck::Reply("250 2.6.0".into()).check(&record).unwrap();
    SendCheck::Connector(Some("Lock to gateway".into())).check(&record).unwrap();
    let mismatch = SendCheck::Reply("550".into()).check(&record).unwrap_err();
    assert!(mismatch.to_string().contains("S: 250 2.6.0"), "{mismatch}");

    let delivered = WorldCheck::Mailbox { address: "alice@contoso.test".into(), count: Some(1), contains: None };
    delivered.check(&sim, DEFAULT_WAIT).await.unwrap();
    let none_queued = WorldCheck::Queued(0);
    none_queued.check_now(&sim).unwrap();
    let wrong = WorldCheck::Mailbox { address: "alice@contoso.test".into(), count: Some(2), contains: None };
    let m = wrong.check(&sim, Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(m.actual.lines().next(), Some("1 message in the mailbox"), "{m}");
    sim.stop().await;

    // The same file through the runner.
    let report = mailsim::scenario::run_scenario(&scenario, &RunOptions::default()).await;
    assert!(matches!(report.verdict, Verdict::Passed), "{}", report::details(&report));
}
