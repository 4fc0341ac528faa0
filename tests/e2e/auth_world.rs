//! What the world publishes for email authentication (issue 11 item 5, exo-behaviour §14): TXT
//! records from scenario files, tenant files and zone files, served by the world's DNS server and
//! read by a real resolver and by mail-auth's SPF evaluation; DNS faults per record type (SPF
//! `temperror`) from scenario steps.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfResult};
use mailsim::scenario::{Action, Scenario};
use mailsim::sim::Simulation;

/// mail-auth over hickory, asking only the world's DNS server (never the system's configuration).
pub(crate) fn authenticator(dns: SocketAddr) -> MessageAuthenticator {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let config = ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(dns.ip(), true, vec![udp, tcp])]);
    let mut opts = ResolverOpts::default();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.cache_size = 0;
    opts.timeout = Duration::from_millis(300);
    opts.attempts = 1;
    opts.ndots = 0;
    MessageAuthenticator::new(config, opts).expect("resolver")
}

pub(crate) async fn spf(auth: &MessageAuthenticator, ip: &str, mail_from: &str) -> SpfResult {
    let ip: IpAddr = ip.parse().unwrap();
    let domain = mail_from.rsplit_once('@').map(|(_, d)| d).unwrap_or(mail_from);
    auth.verify_spf(SpfParameters::verify_mail_from(ip, domain, "tenant.mailsim.test", mail_from)).await.result()
}

const SCENARIO: &str = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[host]]
name = "partner"
address = "203.0.113.25"

[dns]
records = """
fabrikam.test.          MX  10 mx.fabrikam.test.
mx.fabrikam.test.       A   203.0.113.25
northwind.test.         TXT "v=spf1 ip4:192.0.2.0/24 ~all"
"""
txt = { "fabrikam.test" = "v=spf1 ip4:203.0.113.0/24 -all", "_dmarc.fabrikam.test" = ["v=DMARC1; p=reject; rua=mailto:d@fabrikam.test"] }

[[step]]
change = { dns_fault = "fabrikam.test", type = "TXT", fault = "ServFail" }

[[step]]
change = { dns_fault = "fabrikam.test", type = "txt", fault = "None" }

[[step]]
change = { txt = "fabrikam.test", records = ["v=spf1 ip4:198.51.100.0/24 ~all"] }
"#;

fn scenario(text: &str) -> Scenario {
    mailsim::scenario::parse(text, Path::new("auth.toml")).unwrap_or_else(|e| panic!("{e}"))
}

async fn play(sim: &Simulation, s: &Scenario, step: usize) {
    let Action::Change(changes) = &s.steps[step].action else { panic!("step {step} is a change") };
    for c in changes {
        mailsim::scenario::run::apply(sim, c).await.unwrap();
    }
}

#[tokio::test]
async fn scenario_txt_records_serve_spf_and_dmarc_and_txt_faults_give_temperror() {
    let s = scenario(SCENARIO);
    assert_eq!(s.world.dns.txt_of("_dmarc.fabrikam.test"), ["v=DMARC1; p=reject; rua=mailto:d@fabrikam.test"]);
    let sim = s.start().await.unwrap();
    let auth = authenticator(sim.dns().addr());
    assert_eq!(spf(&auth, "203.0.113.25", "a@fabrikam.test").await, SpfResult::Pass);
    assert_eq!(spf(&auth, "198.51.100.7", "a@fabrikam.test").await, SpfResult::Fail);
    assert_eq!(spf(&auth, "198.51.100.7", "a@northwind.test").await, SpfResult::SoftFail);
    let dmarc = auth.txt_raw_lookup("_dmarc.fabrikam.test.").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&dmarc), "v=DMARC1; p=reject; rua=mailto:d@fabrikam.test");

    // step 1: SERVFAIL for fabrikam.test's TXT only: SPF gives temperror, MX still answers.
    play(&sim, &s, 0).await;
    assert_eq!(spf(&auth, "203.0.113.25", "a@fabrikam.test").await, SpfResult::TempError);
    let mx = auth.resolver().mx_lookup("fabrikam.test.").await.expect("MX is not faulted");
    assert_eq!(mx.answers().len(), 1);
    // step 2: cleared; step 3: the domain's SPF policy changed.
    play(&sim, &s, 1).await;
    assert_eq!(spf(&auth, "203.0.113.25", "a@fabrikam.test").await, SpfResult::Pass);
    play(&sim, &s, 2).await;
    assert_eq!(spf(&auth, "203.0.113.25", "a@fabrikam.test").await, SpfResult::SoftFail);
    assert_eq!(spf(&auth, "198.51.100.7", "a@fabrikam.test").await, SpfResult::Pass);
    sim.stop().await;
}

#[tokio::test]
async fn tenant_files_and_zone_files_carry_txt_records() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"Authoritative\"\n\n\
         [dns]\ntxt = { \"contoso.test\" = \"v=spf1 include:spf.protection.outlook.com -all\" }\n",
    )
    .unwrap();
    let (_, zones, _) = mailsim::live::tenant_file(&tenant).unwrap();
    assert_eq!(zones.txt_of("contoso.test"), ["v=spf1 include:spf.protection.outlook.com -all"]);

    // A DKIM key longer than 255 bytes in one quoted string of a zone file.
    let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
    let zone = dir.path().join("zone.txt");
    std::fs::write(&zone, format!("s1._domainkey.fabrikam.test. TXT \"{key}\"\n")).unwrap();
    let zones = mailsim::live::zone_file(&zone).unwrap();
    assert_eq!(zones.txt_of("s1._domainkey.fabrikam.test"), vec![key.clone()]);
    let dns =
        mailsim_testkit::dns::ScriptedDns::start(mailsim_testkit::hosts::allocate_loopback(), zones).await.unwrap();
    let auth = authenticator(dns.addr());
    let raw = auth.txt_raw_lookup("s1._domainkey.fabrikam.test.").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&raw), key);
    dns.stop().await;
}

#[test]
fn txt_errors_name_file_line_and_field() {
    let base = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"Authoritative\"\n";
    for (text, want) in [
        (
            "[dns]\ntxt = { \"bad..name\" = \"v=spf1 -all\" }\n",
            "auth.toml:5:9: dns.txt.bad..name: \"bad..name\" is not a DNS name",
        ),
        (
            "[dns]\ntxt = { \"x.test\" = 5 }\n",
            "auth.toml:5:20: dns.txt.x.test: expected a text or an array of texts, found integer",
        ),
        ("[dns]\ntxt = \"v=spf1 -all\"\n", "auth.toml:5:7: dns.txt: expected a table, found string"),
        ("[[step]]\nchange = { txt = \"x.test\" }\n", "auth.toml:5:10: step[1].change.records: missing key `records`"),
        (
            "[[step]]\nchange = { dns_fault = \"x.test\", type = \"TEXT\", fault = \"ServFail\" }\n",
            "auth.toml:5:41: step[1].change.type: unknown record type \"TEXT\"",
        ),
    ] {
        let e = mailsim::scenario::parse(&format!("{base}{text}"), Path::new("auth.toml")).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
    }
}
