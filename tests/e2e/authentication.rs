//! Email authentication and Enhanced Filtering over real sockets (issue 11, exo-behaviour §14,
//! §7, §8.5): SPF, DKIM and DMARC judged against the world's scripted DNS, the skip-listing walk
//! over the `Received` chain a gateway hands on, the tenant's DMARC action (5.7.509, quarantine,
//! `oreject`) and the exact stamped header blocks (goldens in `tests/auth-headers/`, written when
//! missing with `MAILSIM_BLESS=1`).

use std::path::Path;
use std::time::Duration;

use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
use mailsim_core::auth::AuthConfig;
use mailsim_core::tenant::{ConnectorType, DomainType, InboundConnector, Tenant, TenantBuilder};
use mailsim_testkit::dns::{DnsZoneSet, Fault};

const PARTNER: &str = "203.0.113.5";
const GW_OUT: &str = "198.51.100.20";
const GW_RX: &str = "198.51.100.10";
const TENANT: &str = "192.0.2.100";

fn base() -> TenantBuilder {
    Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .with_mailbox("bob@contoso.test")
}

fn gateway_connector(skip_last: bool, skip_ips: &[&str], users: &[&str]) -> InboundConnector {
    let mut c = InboundConnector::new("From gateway", ConnectorType::Partner);
    c.sender_ip_addresses = vec!["198.51.100.0/24".parse().unwrap()];
    c.ef_skip_last_ip = skip_last;
    c.ef_skip_ips = skip_ips.iter().map(|s| s.to_string()).collect();
    c.ef_users = users.iter().map(|u| u.parse().unwrap()).collect();
    c
}

/// The partner publishes SPF for its own server and DMARC `p`; the tenant's MX is at the tenant
/// (`mx_at_gateway` false) or at the gateway.
fn zones(dmarc: &str, mx_at_gateway: bool) -> DnsZoneSet {
    let mx = if mx_at_gateway { "mx.gw.example" } else { "contoso.mail.protection.mailsim.test" };
    DnsZoneSet::new()
        .txt("partner.example", &format!("v=spf1 ip4:{PARTNER} -all"))
        .txt("_dmarc.partner.example", &format!("v=DMARC1; p={dmarc}"))
        .txt("contoso.test", "v=spf1 ip4:192.0.2.0/24 -all")
        .txt("_dmarc.contoso.test", "v=DMARC1; p=reject")
        .txt("quarantine.example", &format!("v=spf1 ip4:{PARTNER} -all"))
        .txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine")
        .txt("broken.example", "v=spf1 ip4:not-an-address -all")
        .txt("flaky.example", "v=spf1 -all")
        .mx("contoso.test", 10, mx)
        .a("mx.gw.example", GW_OUT.parse().unwrap())
        .a("contoso.mail.protection.mailsim.test", TENANT.parse().unwrap())
}

async fn world(tenant: Tenant, zones: DnsZoneSet) -> Simulation {
    let mut spec = WorldSpec::new(tenant);
    spec.tenant_declared = TENANT.parse().unwrap();
    spec.dns = zones;
    spec.outbound_timeout = Duration::from_secs(5);
    spec.hosts.push(HostSpec::new("partner", PARTNER));
    spec.hosts.push(HostSpec::new("gateway", GW_OUT));
    spec.hosts.push(HostSpec::new("onprem", "192.0.2.25"));
    spec.authentication = Some(AuthConfig::default());
    Simulation::start(spec).await.expect("world starts")
}

/// What the partner's message looks like once the gateway hands it on: the gateway's receiving
/// node, optionally a private load balancer, and the outbound node each added a `Received` line.
fn via_gateway(from: &str, lb: bool) -> String {
    let mut s = String::new();
    if lb {
        s.push_str(&format!("Received: from lb1.gw.internal (10.0.0.5) by out.gw.example ({GW_OUT}) with ESMTP id 3; Mon, 7 Dec 2026 08:00:02 +0000\r\n"));
        s.push_str(&format!("Received: from rx.gw.example (rx.gw.example [{GW_RX}]) by lb1.gw.internal (10.0.0.5) with ESMTP id 2; Mon, 7 Dec 2026 08:00:01 +0000\r\n"));
    } else {
        s.push_str(&format!("Received: from rx.gw.example (rx.gw.example [{GW_RX}]) by out.gw.example ({GW_OUT}) with ESMTP id 2; Mon, 7 Dec 2026 08:00:01 +0000\r\n"));
    }
    s.push_str(&format!("Received: from mail.partner.example (mail.partner.example [{PARTNER}]) by rx.gw.example ({GW_RX}) with ESMTPS id 1; Mon, 7 Dec 2026 08:00:00 +0000\r\n"));
    s.push_str(&message(from));
    s
}

fn message(from: &str) -> String {
    format!(
        "From: Sender <{from}>\r\nTo: alice@contoso.test\r\nSubject: quarterly figures\r\nMessage-ID: <auth-test@partner.example>\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n\r\nHello.\r\n"
    )
}

async fn send(
    sim: &Simulation,
    host: &str,
    ehlo: &str,
    from: &str,
    to: &[&str],
    data: String,
) -> mailsim::sim::SendOutcome {
    let mut spec = SendSpec::new(host, from, to);
    spec.ehlo = Some(ehlo.to_string());
    spec.data = Some(data);
    sim.send(&spec).await.expect("send runs")
}

/// The value of header `name` of the delivered copy.
fn header(stored: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(stored);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_string()))
}

/// The tenant's own header block (everything above the first header the sender wrote), with the
/// time-dependent values replaced.
fn stamped_block(stored: &[u8], first_sent: &str) -> String {
    let text = String::from_utf8_lossy(stored);
    let end = text.find(first_sent).expect("the sender's headers are kept");
    text[..end]
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with("Received: ") {
                let cut = l.find(" id 15.20").unwrap_or(l.len());
                let (by, _) = l[..cut].split_once(" by ").unwrap_or((l, ""));
                format!("{by} by <tenant> ... (date)")
            } else if l.starts_with("X-MS-Exchange-CrossTenant-OriginalArrivalTime: ") {
                "X-MS-Exchange-CrossTenant-OriginalArrivalTime: <time>".to_string()
            } else if l.starts_with("X-MS-Exchange-CrossTenant-Network-Message-Id: ") {
                "X-MS-Exchange-CrossTenant-Network-Message-Id: <guid>".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("auth-headers").join(format!("{name}.txt"));
    if std::env::var_os("MAILSIM_BLESS").is_some() && !path.exists() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing golden {}", path.display()));
    assert_eq!(actual, expected, "golden {name}");
}

/// The partner's newsletter to alice, handed on by the gateway ([`via_gateway`]).
async fn send_via_gateway(sim: &Simulation, lb: bool) -> mailsim::sim::SendOutcome {
    let from = "news@partner.example";
    send(sim, "gateway", "out.gw.example", from, &["alice@contoso.test"], via_gateway(from, lb)).await
}

async fn delivered(sim: &Simulation, to: &str) -> Vec<u8> {
    let got = sim.wait_for_mailbox(to, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "one copy in {to}");
    got[0].data.clone()
}

/// Internet mail straight to the tenant: SPF passes on the partner's IP, DMARC passes aligned.
#[tokio::test]
async fn internet_mail_passes_and_carries_exo_stamps() {
    let sim = world(base().build().unwrap(), zones("reject", false)).await;
    let out = send(
        &sim,
        "partner",
        "mail.partner.example",
        "news@partner.example",
        &["alice@contoso.test"],
        message("news@partner.example"),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "alice@contoso.test").await;
    assert_eq!(
        header(&stored, "Authentication-Results").unwrap(),
        "spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=partner.example; dkim=none (message not signed) header.d=none;dmarc=pass action=none header.from=partner.example;compauth=pass reason=100"
    );
    assert_eq!(header(&stored, "X-MS-Exchange-SkipListedInternetSender"), None);
    golden("internet", &stamped_block(&stored, "From: Sender"));
    let receive = sim.trace().into_iter().find(|e| e.event == mailsim_core::trace::Event::Receive).unwrap();
    assert!(receive.detail.contains("spf=pass (sender IP is 203.0.113.5)"), "{}", receive.detail);
    sim.stop().await;
}

/// Gateway in front, no Enhanced Filtering: SPF is judged on the gateway and fails; without a
/// DKIM signature DMARC fails too; the MX is at the gateway and EF is off, so `p=reject` is not
/// honoured (§14.5): delivered (Junk) with `action=oreject`.
#[tokio::test]
async fn gateway_without_ef_judges_the_gateway() {
    let tenant = base().with_inbound_connector(gateway_connector(false, &[], &[])).build().unwrap();
    let sim = world(tenant, zones("reject", true)).await;
    let out = send_via_gateway(&sim, false).await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "alice@contoso.test").await;
    assert_eq!(
        header(&stored, "Authentication-Results").unwrap(),
        "spf=fail (sender IP is 198.51.100.20) smtp.mailfrom=partner.example; dkim=none (message not signed) header.d=none;dmarc=fail action=oreject header.from=partner.example;compauth=fail reason=000"
    );
    golden("gateway-without-ef", &stamped_block(&stored, "Received: from rx.gw.example"));
    sim.stop().await;
}

/// EFSkipIPs lists the gateway's ranges: the partner's own IP is judged, SPF passes, and the
/// skip-listed header carries it; `CIP:` stays the gateway.
#[tokio::test]
async fn gateway_with_ef_skip_ips_reaches_the_partner() {
    let tenant = base().with_inbound_connector(gateway_connector(false, &["198.51.100.0/24"], &[])).build().unwrap();
    let sim = world(tenant, zones("reject", true)).await;
    let out = send_via_gateway(&sim, true).await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "alice@contoso.test").await;
    assert_eq!(
        header(&stored, "X-MS-Exchange-SkipListedInternetSender").unwrap(),
        "ip=[203.0.113.5];domain=mail.partner.example"
    );
    assert_eq!(
        header(&stored, "X-MS-Exchange-ExternalOriginalInternetSender").unwrap(),
        "ip=[203.0.113.5];domain=mail.partner.example"
    );
    assert!(header(&stored, "Authentication-Results").unwrap().starts_with("spf=pass (sender IP is 203.0.113.5)"));
    assert!(header(&stored, "X-Forefront-Antispam-Report").unwrap().starts_with("CIP:198.51.100.20;"));
    golden("gateway-with-ef", &stamped_block(&stored, "Received: from lb1.gw.internal"));
    sim.stop().await;
}

/// Seed 004's trap: EFSkipLastIP skips the outbound node, the load balancer is private, and the
/// walk stops at the gateway's receiving node: SPF fails against a gateway IP.
#[tokio::test]
async fn ef_skip_last_ip_stops_at_the_gateway_receiving_node() {
    let tenant = base().with_inbound_connector(gateway_connector(true, &[], &[])).build().unwrap();
    let sim = world(tenant, zones("reject", true)).await;
    let out = send_via_gateway(&sim, true).await;
    // EF is on, so the partner's p=reject is honoured even with the MX at the gateway.
    assert_eq!(out.final_reply.code, 550, "{:?}", out.final_reply);
    assert!(out.final_reply.lines.join(" ").contains("5.7.509 Access denied, sending domain [partner.example] does not pass DMARC verification and has a DMARC policy of reject."), "{:?}", out.final_reply);
    let refusal = sim.endpoint().pipeline().refusals().pop().unwrap();
    assert!(refusal.rejection.unwrap().reason.contains("sender IP is 198.51.100.10"));
    sim.stop().await;
}

/// EFUsers listing only some recipients: the original sender is shown, but normal filtering
/// (the gateway's IP) for all.
#[tokio::test]
async fn ef_users_listing_some_recipients_means_normal_filtering() {
    let tenant = base()
        .with_inbound_connector(gateway_connector(false, &["198.51.100.0/24"], &["alice@contoso.test"]))
        .build()
        .unwrap();
    let sim = world(tenant, zones("none", true)).await;
    let out = send(
        &sim,
        "gateway",
        "out.gw.example",
        "news@partner.example",
        &["alice@contoso.test", "bob@contoso.test"],
        via_gateway("news@partner.example", false),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "bob@contoso.test").await;
    assert!(header(&stored, "X-MS-Exchange-SkipListedInternetSender").is_some());
    assert_eq!(header(&stored, "X-MS-Exchange-ExternalOriginalInternetSender"), None);
    assert!(header(&stored, "Authentication-Results").unwrap().starts_with("spf=fail (sender IP is 198.51.100.20)"));
    sim.stop().await;
}

/// A spoof of the tenant's own domain from the internet: p=reject honoured → 5.7.509 at end of
/// data; with HonorDmarcPolicy $false delivered with `action=oreject`; p=quarantine quarantined.
#[tokio::test]
async fn dmarc_reject_quarantine_and_not_honoured() {
    let sim = world(base().build().unwrap(), zones("reject", false)).await;
    let out = send(
        &sim,
        "partner",
        "mail.partner.example",
        "ceo@contoso.test",
        &["alice@contoso.test"],
        message("ceo@contoso.test"),
    )
    .await;
    assert_eq!((out.final_reply.code, out.stage), (550, "END-OF-DATA"), "{:?}", out.final_reply);
    assert!(
        out.final_reply.lines[0].starts_with("5.7.509 Access denied, sending domain [contoso.test]"),
        "{:?}",
        out.final_reply
    );

    let out = send(
        &sim,
        "partner",
        "mail.partner.example",
        "news@quarantine.example",
        &["alice@contoso.test"],
        message("other@quarantine.example"),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    assert!(sim.settled().await);
    // An aligned SPF pass under p=quarantine is delivered, not held.
    assert!(sim.quarantine("alice@contoso.test").is_empty());
    let stored = delivered(&sim, "alice@contoso.test").await;
    assert!(header(&stored, "Authentication-Results").unwrap().contains("dmarc=pass action=none"));
    sim.stop().await;

    let mut t = base().build().unwrap().to_builder();
    t.anti_phish.honor_dmarc_policy = false;
    let sim = world(t.build().unwrap(), zones("reject", false)).await;
    let out = send(
        &sim,
        "partner",
        "mail.partner.example",
        "ceo@contoso.test",
        &["alice@contoso.test"],
        message("ceo@contoso.test"),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "alice@contoso.test").await;
    assert!(
        header(&stored, "Authentication-Results")
            .unwrap()
            .ends_with("dmarc=fail action=oreject header.from=contoso.test;compauth=fail reason=010"),
        "{:?}",
        header(&stored, "Authentication-Results")
    );
    sim.stop().await;
}

/// p=quarantine failing (not aligned): held in quarantine, recorded as QUARANTINE in the trace.
#[tokio::test]
async fn dmarc_quarantine_failure_is_held() {
    let sim = world(base().build().unwrap(), zones("reject", false)).await;
    // The gateway's IP is not in quarantine.example's SPF: fail, nothing aligned.
    let out = send(
        &sim,
        "gateway",
        "out.gw.example",
        "news@quarantine.example",
        &["alice@contoso.test"],
        message("news@quarantine.example"),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    assert!(sim.settled().await);
    assert_eq!(sim.mailbox("alice@contoso.test").len(), 0);
    assert_eq!(sim.quarantine("alice@contoso.test").len(), 1);
    let ev = sim.trace().into_iter().find(|e| e.event == mailsim_core::trace::Event::Quarantine).unwrap();
    assert!(ev.detail.contains("p=quarantine"), "{}", ev.detail);
    sim.stop().await;
}

/// Hybrid: on-premises relays through an OnPremises connector with CloudServicesMailEnabled;
/// `FromEntityHeader: HybridOnPrem`, `DIR:OUT` to the internet, and the promoted cross-premises
/// headers replace the tenant's own stamps (§2.1) instead of sitting beside them.
#[tokio::test]
async fn hybrid_on_premises_stamps_and_promotion() {
    let mut c = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    c.sender_ip_addresses = vec!["192.0.2.25/32".parse().unwrap()];
    c.cloud_services_mail_enabled = true;
    let tenant = base().with_inbound_connector(c).build().unwrap();
    let sim = world(tenant, zones("reject", false)).await;
    let data = format!(
        "X-MS-Exchange-CrossPremises-AuthAs: Internal\r\nX-MS-Exchange-CrossPremises-AuthSource: EX01.contoso.test\r\n{}",
        message("alice@contoso.test")
    );
    let out = send(&sim, "onprem", "ex01.contoso.test", "alice@contoso.test", &["bob@contoso.test"], data).await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let stored = delivered(&sim, "bob@contoso.test").await;
    let text = String::from_utf8_lossy(&stored);
    assert_eq!(text.matches("X-MS-Exchange-Organization-AuthAs:").count(), 1, "{text}");
    assert_eq!(text.matches("X-MS-Exchange-Organization-AuthSource:").count(), 1, "{text}");
    assert_eq!(header(&stored, "X-MS-Exchange-Organization-AuthSource").unwrap(), "EX01.contoso.test");
    assert_eq!(header(&stored, "X-MS-Exchange-CrossTenant-FromEntityHeader").unwrap(), "HybridOnPrem");
    assert_eq!(header(&stored, "Authentication-Results"), None, "Originating mail is not authenticated");
    golden("hybrid", &stamped_block(&stored, "From: Sender"));
    sim.stop().await;
}

/// DNS failures and malformed records give temperror and permerror, never a stuck session: the
/// same connection carries the next message.
#[tokio::test]
async fn temperror_and_permerror_keep_the_session_going() {
    let sim = world(base().build().unwrap(), zones("reject", false)).await;
    sim.dns().set_fault("flaky.example", Fault::ServFail);
    sim.dns_changed();
    let (mut c, _) =
        mailsim_testkit::sender::ScriptedSender::connect(sim.host_loopback("partner").unwrap(), sim.tenant_addr())
            .await
            .unwrap();
    let r = c
        .send_message("mail.partner.example", "a@flaky.example", &["alice@contoso.test"], &message("a@flaky.example"))
        .await
        .unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    let r = c
        .send_message("mail.partner.example", "a@broken.example", &["alice@contoso.test"], &message("a@broken.example"))
        .await
        .unwrap();
    assert_eq!(r.code, 250, "{r:?}");
    let _ = c.command("QUIT").await;
    let got = sim.wait_for_mailbox("alice@contoso.test", 2, Duration::from_secs(5)).await;
    let results: Vec<String> = got.iter().map(|m| header(&m.data, "Authentication-Results").unwrap()).collect();
    assert!(
        results.iter().any(|r| r.starts_with("spf=temperror (sender IP is 203.0.113.5) smtp.mailfrom=flaky.example;")),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("spf=permerror (sender IP is 203.0.113.5) smtp.mailfrom=broken.example;")),
        "{results:?}"
    );
    let spf: Vec<String> = got.iter().map(|m| header(&m.data, "Received-SPF").unwrap()).collect();
    assert!(
        spf.iter()
            .any(|s| s
                .starts_with("TempError (protection.outlook.com: error in processing during lookup of flaky.example")),
        "{spf:?}"
    );
    sim.stop().await;
}

/// §8.5's combination for mail relayed from on-premises to the internet through an OnPremises
/// connector without CloudServicesMailEnabled: `FromEntityHeader: HybridOnPrem`,
/// `CrossTenant-AuthAs: Anonymous`, `DIR:OUT` (Originating for routing, not Internal).
#[tokio::test]
async fn on_premises_relay_to_the_internet_carries_the_85_combination() {
    let mut c = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    c.sender_ip_addresses = vec!["192.0.2.25/32".parse().unwrap()];
    let tenant = base().with_inbound_connector(c).build().unwrap();
    let mut spec = WorldSpec::new(tenant);
    spec.tenant_declared = TENANT.parse().unwrap();
    spec.dns = zones("reject", false)
        .mx("fabrikam.test", 10, "mx.fabrikam.test")
        .a("mx.fabrikam.test", "203.0.113.80".parse().unwrap());
    spec.outbound_timeout = Duration::from_secs(5);
    spec.hosts.push(HostSpec::new("onprem", "192.0.2.25"));
    let mut mx = HostSpec::new("fabrikam-mx", "203.0.113.80");
    mx.peer = Some(mailsim_testkit::peer::PeerScript::new("mx.fabrikam.test"));
    spec.hosts.push(mx);
    spec.authentication = Some(AuthConfig::default());
    let sim = Simulation::start(spec).await.expect("world starts");
    let out = send(
        &sim,
        "onprem",
        "ex01.contoso.test",
        "alice@contoso.test",
        &["carol@fabrikam.test"],
        message("alice@contoso.test"),
    )
    .await;
    assert!(out.accepted(), "{:?}", out.final_reply);
    let got = sim.wait_for_peer("fabrikam-mx", 1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    let data = &got[0].data;
    assert_eq!(header(data, "X-MS-Exchange-CrossTenant-FromEntityHeader").unwrap(), "HybridOnPrem");
    assert_eq!(header(data, "X-MS-Exchange-CrossTenant-AuthAs").unwrap(), "Anonymous");
    assert!(header(data, "X-Forefront-Antispam-Report").unwrap().ends_with(";DIR:OUT;"));
    assert_eq!(header(data, "X-MS-Exchange-Organization-AuthAs"), None, "organization headers never leave");
    sim.stop().await;
}

/// The scenario vocabulary refuses what it cannot check, with file:line:col and a hint.
#[test]
fn scenario_vocabulary_errors() {
    use mailsim::scenario::load::parse;
    let head = "[scenario]\nauthentication = true\n\n[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[Directory]\nMailboxes = [\"alice@contoso.test\"]\n\n";
    let cases = [
        (
            "[[step]]\nexpect = { auth = \"alice@contoso.test\", spf = \"maybe\" }\n",
            "s.toml:11:47: step[1].expect.spf: unknown spf result \"maybe\"",
        ),
        (
            "[[step]]\nexpect = { auth = \"alice@contoso.test\", compauth = \"fail reason=1\" }\n",
            "s.toml:11:52: step[1].expect.compauth: \"fail reason=1\" is not a compauth result",
        ),
        ("[[step]]\nexpect = { auth = \"alice@contoso.test\", equals = \"x\" }\n", "`equals` needs `header`"),
        ("[[step]]\nexpect = { mailbox = \"alice@contoso.test\", spf = \"pass\" }\n", "`spf` has no world expectation"),
    ];
    for (steps, want) in cases {
        let err = parse(&format!("{head}{steps}"), Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains(want), "{err}\n  wanted: {want}");
    }
    let own = "[scenario]\nauthentication = true\n\n[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[[InboundConnector]]\nName = \"gw\"\nSenderDomains = [\"*\"]\nRequireTls = false\nEFSkipIPs = [\"192.0.2.0/24\"]\n";
    let err = parse(own, Path::new("s.toml")).unwrap_err().to_string();
    assert!(
        err.starts_with("s.toml:11:13: InboundConnector[1].EFSkipIPs: `192.0.2.0/24` covers 192.0.2.100, the tenant's own address (tenant_address)"),
        "{err}"
    );
    let table = "[scenario]\nauthentication = { scl = 12 }\n\n[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n";
    let err = parse(table, Path::new("s.toml")).unwrap_err().to_string();
    assert!(err.contains("authentication.scl: SCL is a number from -1 to 9"), "{err}");
}

/// `mailsim explain` walks the chain and shows the verdicts and stamps for given results.
#[test]
fn explain_shows_the_walk_and_the_verdicts() {
    use mailsim::cli::explain::{ExplainArgs, MessageFacts, explain_with};
    use mailsim::cli::explain_auth::AuthExplainArgs;
    let tenant = base().with_inbound_connector(gateway_connector(true, &[], &[])).build().unwrap();
    let args = ExplainArgs {
        tenant: "t.toml".into(),
        source: GW_OUT.parse().unwrap(),
        mail_from: "news@partner.example".to_string(),
        rcpt_to: vec!["alice@contoso.test".to_string()],
        facts: MessageFacts {
            helo: Some("out.gw.example".to_string()),
            auth: AuthExplainArgs {
                spf: Some("fail".into()),
                dmarc: Some("reject".into()),
                mx_elsewhere: true,
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let content = via_gateway("news@partner.example", true);
    let (report, _) =
        explain_with(&tenant, "t.toml", &args, Some(content.as_bytes()), mailsim_core::time::Timestamp(0)).unwrap();
    for want in [
        "Enhanced Filtering  EFSkipLastIP (connector From gateway)",
        "skip 198.51.100.20 (out.gw.example): the connecting hop (EFSkipLastIP)",
        "skip 10.0.0.5 (lb1.gw.internal): an RFC 1918 address (skipped automatically)",
        "original internet sender 198.51.100.10 (rx.gw.example)",
        "SPF judged on       198.51.100.10 (HELO rx.gw.example), MAIL FROM domain partner.example",
        "Anti-phishing       refused at end of DATA: 550 5.7.509",
        "stamped X-MS-Exchange-SkipListedInternetSender: ip=[198.51.100.10];domain=rx.gw.example",
        "stamped Authentication-Results: spf=fail (sender IP is 198.51.100.10) smtp.mailfrom=partner.example; dkim=none (message not signed) header.d=none;dmarc=fail action=reject header.from=partner.example;compauth=fail reason=000",
    ] {
        assert!(report.contains(want), "missing {want:?} in\n{report}");
    }
}
