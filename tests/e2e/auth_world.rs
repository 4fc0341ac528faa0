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
        (
            "[[host]]\nname = \"p\"\naddress = \"203.0.113.5\"\ndkim = { domain = \"fabrikam.test\" }\n",
            "auth.toml:7:8: host[1].dkim.selector: missing key `selector`",
        ),
        (
            "[[host]]\nname = \"p\"\naddress = \"203.0.113.5\"\ndkim = { domain = \"fabrikam.test\", selector = \"s1\", key = \"x\" }\n",
            "auth.toml:7:53: host[1].dkim.key: unknown key `key`",
        ),
        (
            "[[host]]\nname = \"p\"\naddress = \"203.0.113.5\"\nrelay_hops = [{ name = \"lb.gw.test\", address = \"10.0.0.5\" }]\n",
            "auth.toml:7:14: host[1].relay_hops: only a host that receives and relays mail writes relay hops",
        ),
        (
            "[[host]]\nname = \"g\"\naddress = \"203.0.113.5\"\nrelay_hops = [{ name = \"lb.gw.test\", address = \"10.0.0\" }]\n[host.peer]\n",
            "auth.toml:7:48: host[1].relay_hops[1].address: \"10.0.0\" is not an IP address",
        ),
        (
            "[[host]]\nname = \"p\"\naddress = \"203.0.113.5\"\n[[step]]\nsend = { from = \"p\", to = \"p\", mail_from = \"a@x.test\", rcpt_to = [\"b@contoso.test\"] }\n",
            "auth.toml:8:27: step[1].send.to: host \"p\" receives no mail",
        ),
    ] {
        let e = mailsim::scenario::parse(&format!("{base}{text}"), Path::new("auth.toml")).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}\nwanted: {want}");
    }
}

/// A partner that signs, a cloud gateway the tenant's MX points at (receiving node, private load
/// balancer, egress node: the seed's Mimecast chain) that signs too, and a direct sender.
const CHAIN: &str = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[host]]
name = "partner"
address = "203.0.113.25"
dkim = { domain = "fabrikam.test", selector = "s1" }

[[host]]
name = "gateway"
address = "207.211.30.10"
relay_to_tenant = true
dkim = { domain = "gw.test", selector = "gw1" }
relay_hops = [{ name = "rx.gw.test", address = "207.211.40.5" }, { name = "lb.gw.test", address = "10.0.0.5" }]
[host.peer]
host_name = "tx.gw.test"

[dns]
txt = { "fabrikam.test" = "v=spf1 ip4:203.0.113.0/24 -all" }

[[step]]
send = { from = "partner", to = "gateway", mail_from = "bob@fabrikam.test", rcpt_to = ["alice@contoso.test"] }
expect = { reply = "250", accepted = true }

[[step]]
expect = { mailbox = "alice@contoso.test", count = 1, contains = "by rx.gw.test ([207.211.40.5]) with ESMTP id" }
"#;

async fn verify_dkim(auth: &MessageAuthenticator, data: &[u8]) -> Vec<mail_auth::DkimResult> {
    let message = mail_auth::AuthenticatedMessage::parse(data).expect("a message");
    auth.verify_dkim(&message).await.iter().map(|o| o.result().clone()).collect()
}

fn received_lines(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n\t", " ").replace("\r\n ", " ");
    head.lines().filter(|l| l.starts_with("Received:")).map(str::to_string).collect()
}

#[tokio::test]
async fn a_signing_sender_is_verified_against_the_published_key_and_a_changed_body_fails() {
    let s = scenario(CHAIN);
    let sim = s.start().await.unwrap();
    // The world published the key of every signing identity.
    let published = sim.dns().zones().txt_of("s1._domainkey.fabrikam.test");
    assert!(published[0].starts_with("v=DKIM1; k=rsa; p=MIIB"), "{published:?}");
    assert_eq!(sim.dkim_signer("partner").unwrap().unwrap().txt_record().1, published[0]);
    assert!(sim.dkim_signer("gateway").unwrap().is_some());

    let auth = authenticator(sim.dns().addr());
    let send = mailsim::sim::SendSpec::new("partner", "bob@fabrikam.test", &["alice@contoso.test"]);
    assert!(sim.send(&send).await.unwrap().accepted());
    let copy = sim.wait_for_mailbox("alice@contoso.test", 1, Duration::from_secs(10)).await;
    let data = copy[0].data.clone();
    assert!(String::from_utf8_lossy(&data).contains("d=fabrikam.test"));
    // The tenant's own stamps (Received, X-MS-Exchange-*) do not break the signature.
    assert_eq!(verify_dkim(&auth, &data).await, vec![mail_auth::DkimResult::Pass]);
    let altered = String::from_utf8_lossy(&data).replace("Hello from mailsim.", "Hello from mailsim. [EXTERNAL]");
    assert_eq!(
        verify_dkim(&auth, altered.as_bytes()).await,
        vec![mail_auth::DkimResult::Neutral(mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch))]
    );

    // dkim = false on a send: not signed.
    let mut unsigned = mailsim::sim::SendSpec::new("partner", "bob@fabrikam.test", &["alice@contoso.test"]);
    unsigned.dkim_sign = false;
    assert!(sim.send(&unsigned).await.unwrap().accepted());
    let copies = sim.wait_for_mailbox("alice@contoso.test", 2, Duration::from_secs(10)).await;
    assert!(verify_dkim(&auth, &copies[1].data).await.is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn a_relaying_gateway_writes_its_hops_in_order_and_signs() {
    let s = scenario(CHAIN);
    // The scenario's own steps: the partner sends to the gateway, the tenant's copy shows the chain.
    let report = mailsim::scenario::run_scenario(&s, &mailsim::scenario::RunOptions::default()).await;
    assert!(report.passed(), "{report:?}");

    let sim = s.start().await.unwrap();
    let mut send = mailsim::sim::SendSpec::new("partner", "bob@fabrikam.test", &["alice@contoso.test"]);
    send.to_host = Some("gateway".into());
    send.ehlo = Some("mx.fabrikam.test".into());
    send.tls = mailsim::sim::TlsUse::StartTls;
    assert!(sim.send(&send).await.unwrap().accepted());
    let copy = sim.wait_for_mailbox("alice@contoso.test", 1, Duration::from_secs(10)).await;
    let data = &copy[0].data;
    let received = received_lines(data);
    assert_eq!(received.len(), 4, "{received:#?}");
    // Newest first: the tenant's frontend, the gateway's egress node, its load balancer, its
    // receiving node (the one leg over TLS). Every address is the declared one, none a loopback.
    assert!(received[0].starts_with("Received: from tx.gw.test (207.211.30.10) by "), "{}", received[0]);
    assert!(
        received[1]
            .starts_with("Received: from lb.gw.test ([10.0.0.5]) by tx.gw.test ([207.211.30.10]) with ESMTP id MS"),
        "{}",
        received[1]
    );
    assert!(
        received[2]
            .starts_with("Received: from rx.gw.test ([207.211.40.5]) by lb.gw.test ([10.0.0.5]) with ESMTP id MS"),
        "{}",
        received[2]
    );
    assert!(
        received[3].starts_with(
            "Received: from mx.fabrikam.test ([203.0.113.25]) by rx.gw.test ([207.211.40.5]) with ESMTPS id MS"
        ),
        "{}",
        received[3]
    );
    // Both signatures hold: the partner's and the gateway's own.
    let auth = authenticator(sim.dns().addr());
    let results = verify_dkim(&auth, data).await;
    assert_eq!(results, vec![mail_auth::DkimResult::Pass, mail_auth::DkimResult::Pass]);
    let text = String::from_utf8_lossy(data);
    assert!(text.find("d=gw.test").unwrap() < text.find("d=fabrikam.test").unwrap(), "the relay's signature is on top");

    // A host that moves is named by its new address in the next relayed message.
    sim.move_host("partner", "203.0.113.26".parse().unwrap()).unwrap();
    assert!(sim.send(&send).await.unwrap().accepted());
    let copies = sim.wait_for_mailbox("alice@contoso.test", 2, Duration::from_secs(10)).await;
    assert!(received_lines(&copies[1].data)[3].contains("([203.0.113.26]) by rx.gw.test"));
    sim.stop().await;
}
