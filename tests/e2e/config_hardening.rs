//! Issue 14's malformed configurations, each a load error naming file, line, column and field
//! before any world starts (items 1, 2 and 6), through the loaders and the commands that use them.

use std::path::Path;

use mailsim::scenario::parse;

const BASE: &str = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"Authoritative\"\n\n";

fn scenario_error(extra: &str) -> String {
    parse(&format!("{BASE}{extra}"), Path::new("s.toml")).unwrap_err().to_string()
}

fn tenant_error(text: &str) -> String {
    mailsim_core::tenant::load::load(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn scenario_refusals_table() {
    let long_key = vec!["a"; 300].join(".");
    let rows: Vec<(String, &str)> = vec![
        // Item 2: a sum of ~1,100 large terms overflowed `Duration` and panicked run/serve.
        (
            format!("[[step]]\nadvance = \"{}\"\n", "18446744073709551d".repeat(1100)),
            "s.toml:6:11: step[1].advance: duration \"",
        ),
        // Item 2: `200000000000d` wrapped the clock to 1970.
        (
            "[[step]]\nadvance = \"200000000000d\"\n".to_string(),
            "s.toml:6:11: step[1].advance: duration \"200000000000d\" is out of range\n  hint: at most 100 years (36500d)",
        ),
        ("[retry]\nexpiry = \"36501d\"\n".to_string(), "s.toml:6:10: retry.expiry: duration \"36501d\" is out of range"),
        // Item 6: reply codes outside 200-599 (a `999` later acted as a dropped connection).
        (
            "[[host]]\nname = \"partner\"\naddress = \"203.0.113.7\"\n[host.peer]\non_rcpt = { Reply = [999, \"x\"] }\n".to_string(),
            "s.toml:9:11: host[1].peer.on_rcpt: reply code 999 is outside 200-599",
        ),
        (
            "[[host]]\nname = \"partner\"\naddress = \"203.0.113.7\"\n[host.peer]\non_data = { Sequence = [\"Accept\", { Reply = [199, \"x\"] }] }\n".to_string(),
            "s.toml:9:11: host[1].peer.on_data: reply code 199 is outside 200-599",
        ),
        // Item 6: invalid DNS names in changes, refused at load, not when the step runs.
        (
            "[[step]]\nchange = { dns_fault = \"bad..name\", fault = \"ServFail\" }\n".to_string(),
            "s.toml:6:24: step[1].change.dns_fault: \"bad..name\" is not a DNS name",
        ),
        (
            "[[step]]\nchange = { a = \"bad..name\", addresses = [\"192.0.2.1\"] }\n".to_string(),
            "s.toml:6:16: step[1].change.a: \"bad..name\" is not a DNS name",
        ),
        (
            "[[step]]\nchange = { mx = \"-x.test\", records = [[10, \"mx.x.test\"]] }\n".to_string(),
            "s.toml:6:17: step[1].change.mx: \"-x.test\" is not a DNS name",
        ),
        // Item 6: a bad `$TTL` is reported on its own line, not the next.
        (
            "[dns]\nrecords = \"\"\"\n$TTL forever\npartner.test. MX 10 mx.partner.test.\n\"\"\"\n".to_string(),
            "s.toml:7:1: dns.records: invalid time string: forever\n  hint: `$TTL 3600` (seconds) or `$TTL 1h`",
        ),
        // Item 6: a zone line after TOML escapes is reported at its own line.
        (
            "[dns]\nrecords = \"\"\"\nmx.partner.test. TXT \\\"a\\\\tb\\\"\nmx.partner.test. A 300.1.1.1\n\"\"\"\n".to_string(),
            "s.toml:8:1: dns.records: ",
        ),
        // Item 6: TOML syntax errors name the field, as the tenant loader's do.
        ("[[step]]\nadvance = \"1s\nname = \"x\"\n".to_string(), "s.toml:6:"),
        // Item 6: a very long dotted key reported `1:1: recursion limit`.
        (format!("[retry]\n{long_key} = 1\n"), "s.toml:6:1: "),
    ];
    for (extra, expected) in rows {
        let got = scenario_error(&extra);
        assert!(got.starts_with(expected), "{extra:?}\n got: {got}\nwant: {expected}");
    }
    // Syntax errors name their field.
    let got = scenario_error("[[step]]\nadvance = 1s\n");
    assert!(got.starts_with("s.toml:6:11: step[1].advance: string values must be quoted"), "{got}");
}

#[test]
fn empty_files_are_refused_by_every_loader() {
    for text in ["", "\n", "# a comment only\n# and another\n"] {
        let e = parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(e.starts_with("s.toml:1:1: the scenario file is empty"), "{e}");
        assert!(tenant_error(text).starts_with("t.toml:1:1: the tenant file is empty"));
    }
}

#[test]
fn tenant_syntax_errors_have_real_positions() {
    let long_key = vec!["a"; 300].join(".");
    let got = tenant_error(&format!("[Transport]\nMaxMessageSize = 1\n{long_key} = 1\n"));
    assert!(got.starts_with("t.toml:3:1: Transport.a.a.a"), "{got}");
    assert!(got.contains("recursion limit (a key of 300 dotted parts is nested too deeply)"), "{got}");
}

/// Item 1: IDNA values in every domain list load, and the A-label and U-label are one domain.
#[test]
fn idna_domains_load_everywhere() {
    let text = "[[AcceptedDomain]]\nDomainName = \"straße.de\"\nDomainType = \"Authoritative\"\n\n\
        [Directory]\nMailboxes = [\"alice@xn--strae-oqa.de\"]\n\n\
        [[InboundConnector]]\nName = \"p\"\nConnectorType = \"Partner\"\nSenderDomains = [\"straße.de\", \"*.bücher.test\"]\nRequireTls = true\nTlsSenderCertificateName = \"ßß.de\"\n\n\
        [[OutboundConnector]]\nName = \"o\"\nRecipientDomains = [\"ß.de\"]\nSmartHosts = [\"192.0.2.1\"]\nUseMXRecord = false\n";
    let t = mailsim_core::tenant::load::load(text, "t.toml").unwrap();
    let alice = mailsim_core::addr::EmailAddress::parse("Alice@STRASSE.de", true).unwrap();
    assert!(!t.has_mailbox(&alice), "ß is not ss under UTS #46 non-transitional processing");
    let alice = mailsim_core::addr::EmailAddress::parse("Alice@Straße.DE", true).unwrap();
    assert!(t.has_mailbox(&alice));
}

/// Item 6: `mailsim run some-dir.toml/` printed `0 passed, 0 failed` and exited 0.
#[test]
fn directories_given_as_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let as_file = dir.path().join("some-dir.toml");
    std::fs::create_dir(&as_file).unwrap();
    let e = mailsim::scenario::run::collect_files(std::slice::from_ref(&as_file)).unwrap_err().to_string();
    assert!(e.ends_with("some-dir.toml: is a directory, not a scenario file"), "{e}");
    let e = mailsim::scenario::run::collect_files(&[dir.path().to_path_buf()]).unwrap_err().to_string();
    assert!(e.ends_with("no scenario files (*.toml) in this directory"), "{e}");
    let e = mailsim::scenario::load_file(&as_file).unwrap_err().to_string();
    assert!(e.ends_with("some-dir.toml:1:1: is a directory, not a file\n  hint: name a file; `mailsim run DIR` (without a file extension) runs every .toml in a folder"), "{e}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[[AcceptedDomain]]\nDomainName = \"caf\xe9.test\"\n").unwrap();
    let e = mailsim::scenario::load_file(&bad).unwrap_err();
    assert_eq!((e.line, e.column), (2, 18), "{e}");
}
