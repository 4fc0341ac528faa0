//! The outbound stage end to end (issue 4): the tenant routes by outbound connector or MX through
//! the scripted DNS server to scripted receiving peers on their own 127/8 addresses, under each
//! TlsSettings, with retries in simulated time, NDRs and loop detection (exo-behaviour §3, §5.3,
//! §5.6, §10).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mailsim_core::ndr::parse_delivery_status;
use mailsim_core::tenant::{
    ConnectorType, DomainPattern, DomainType, InboundConnector, OutboundConnector, SmartHost, Tenant, TenantBuilder,
    TlsSettings,
};
use mailsim_core::trace::Event;
use mailsim_testkit::dns::{DnsZoneSet, Fault};
use mailsim_testkit::peer::{Behaviour, ClientCertRequest, PeerCert, PeerScript, StartTls};
use mailsim_testkit::sender::ScriptedSender;

use crate::common::*;

const ONPREM: &str = "192.0.2.10";
const GATEWAY: &str = "198.51.100.7";
const PARTNER_MX: &str = "203.0.113.25";
const FABRIKAM_MX: &str = "203.0.113.40";

/// contoso.test (Authoritative, alice), relay.contoso.test (InternalRelay), and an OnPremises
/// inbound connector for the on-premises server, which gives its accepted-domain senders relay
/// (exo-behaviour §4.2 last rows).
fn tenant(outbound: Vec<OutboundConnector>) -> Tenant {
    spec(outbound).build().expect("a valid tenant")
}

fn spec(outbound: Vec<OutboundConnector>) -> TenantBuilder {
    let mut onprem = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    onprem.sender_domains = vec![DomainPattern::Any];
    onprem.sender_ip_addresses = vec![format!("{ONPREM}/32").parse().unwrap()];
    let mut t = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_domain("relay.contoso.test", DomainType::InternalRelay)
        .with_mailbox("alice@contoso.test")
        .with_inbound_connector(onprem);
    t.outbound_connectors = outbound;
    t
}

fn smart_host_connector(
    name: &str,
    domains: &[&str],
    host: &str,
    tls: TlsSettings,
    tls_domain: Option<&str>,
) -> OutboundConnector {
    let mut c = OutboundConnector::new(name);
    c.recipient_domains = domains.iter().map(|d| DomainPattern::parse(d).unwrap()).collect();
    c.use_mx_record = false;
    c.smart_hosts = vec![SmartHost::parse(host).unwrap()];
    c.tls_settings = tls;
    c.tls_domain = tls_domain.and_then(DomainPattern::parse);
    c
}

/// The hybrid wizard's outbound connector: OnPremises, to the on-premises server as smart host.
fn to_on_premises(domains: &[&str]) -> OutboundConnector {
    let mut c = smart_host_connector("Outbound to on-premises", domains, ONPREM, TlsSettings::Opportunistic, None);
    c.connector_type = ConnectorType::OnPremises;
    c
}

fn zones() -> DnsZoneSet {
    DnsZoneSet::new()
        .mx("partner.test", 10, "mx.partner.test")
        .a("mx.partner.test", PARTNER_MX.parse().unwrap())
        .mx("fabrikam.test", 10, "mx.fabrikam.test")
        .a("mx.fabrikam.test", FABRIKAM_MX.parse().unwrap())
        .a("smart.gateway.test", GATEWAY.parse().unwrap())
}

const BODY: &str = "From: alice@contoso.test\r\nSubject: outbound\r\nMessage-ID: <out-1@contoso.test>\r\n\r\nhello\r\n";

impl World {
    /// Sends from the on-premises server's declared address (Originating, relay allowed).
    async fn send_from_onprem(&self, from: &str, to: &[&str], content: &str) -> mailsim_testkit::sender::RawReply {
        let (mut c, _) = ScriptedSender::connect(self.sender_loopback(), self.tenant_addr()).await.unwrap();
        let reply = c.send_message("onprem.contoso.test", from, to, content).await.unwrap();
        let _ = c.command("QUIT").await;
        reply
    }
}

async fn world(outbound: Vec<OutboundConnector>, peers: Vec<(&'static str, &str, PeerScript)>) -> World {
    World::start_with_sender(tenant(outbound), zones(), peers, ("onprem", ONPREM), |_| {}).await
}

fn events_for(w: &World, rcpt: &str) -> Vec<Event> {
    w.endpoint()
        .trace()
        .events()
        .into_iter()
        .filter(|e| e.recipient.as_deref() == Some(rcpt))
        .map(|e| e.event)
        .collect()
}

/// §3.2: exact RecipientDomains beats `*`; recipients are split per connector.
#[tokio::test]
async fn smart_host_routing_by_most_specific_recipient_domains() {
    let w = world(
        vec![
            smart_host_connector("To gateway", &["*"], GATEWAY, TlsSettings::Opportunistic, None),
            smart_host_connector("To partner", &["partner.test"], PARTNER_MX, TlsSettings::Opportunistic, None),
        ],
        vec![
            ("gateway", GATEWAY, PeerScript::new("smart.gateway.test")),
            ("partner", PARTNER_MX, PeerScript::new("mx.partner.test")),
        ],
    )
    .await;
    let reply = w.send_from_onprem("alice@contoso.test", &["bob@partner.test", "carol@other.test"], BODY).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(w.endpoint().settled().await);
    let partner = w.peer("partner").wait_for_messages(1, WAIT).await;
    let gateway = w.peer("gateway").wait_for_messages(1, WAIT).await;
    assert_eq!(partner[0].rcpt_to, ["bob@partner.test"]);
    assert_eq!(gateway[0].rcpt_to, ["carol@other.test"]);
    assert_eq!(partner[0].mail_from, "alice@contoso.test");
    let sends: Vec<_> = w.endpoint().trace().events().into_iter().filter(|e| e.event == Event::Send).collect();
    assert!(sends.iter().any(|e| e.connector.as_deref() == Some("To partner") && e.recipient.as_deref() == Some("bob@partner.test")));
    assert!(
        sends
            .iter()
            .any(|e| e.connector.as_deref() == Some("To gateway")
                && e.to_ip.as_deref() == Some(&format!("{GATEWAY}:25")))
    );
}

/// RFC 5321 §5.1: MX preference order, failover to the next MX, and the A record when there is no
/// MX (implicit MX).
#[tokio::test]
async fn mx_routing_with_preference_failover_and_a_fallback() {
    let zones = zones()
        .mx("multi.test", 20, "mx2.multi.test")
        .mx("multi.test", 10, "mx1.multi.test")
        .a("mx1.multi.test", Ipv4Addr::new(203, 0, 113, 51))
        .a("mx2.multi.test", Ipv4Addr::new(203, 0, 113, 52))
        .mx("dead.test", 10, "mx1.dead.test")
        .mx("dead.test", 20, "mx2.dead.test")
        .a("mx1.dead.test", Ipv4Addr::new(203, 0, 113, 61))
        .a("mx2.dead.test", Ipv4Addr::new(203, 0, 113, 62))
        .a("bare.test", Ipv4Addr::new(203, 0, 113, 71));
    let w = World::start_with_sender(
        tenant(vec![]),
        zones,
        vec![
            ("mx1", "203.0.113.51", PeerScript::new("mx1.multi.test")),
            ("mx2", "203.0.113.52", PeerScript::new("mx2.multi.test")),
            // 203.0.113.61 has no listener: connection refused, so mx2.dead.test takes it.
            ("dead2", "203.0.113.62", PeerScript::new("mx2.dead.test")),
            ("bare", "203.0.113.71", PeerScript::new("bare.test")),
        ],
        ("onprem", ONPREM),
        |_| {},
    )
    .await;
    let reply = w.send_from_onprem("alice@contoso.test", &["a@multi.test", "b@dead.test", "c@bare.test"], BODY).await;
    assert_eq!(reply.code, 250);
    assert!(w.endpoint().settled().await);
    assert_eq!(w.peer("mx1").inbox().len(), 1, "lowest preference first");
    assert!(w.peer("mx2").inbox().is_empty());
    assert_eq!(w.peer("dead2").inbox().len(), 1, "failover to the next MX");
    assert_eq!(w.peer("bare").inbox().len(), 1, "A fallback without MX");
}

/// §3.1 TlsSettings against a peer without STARTTLS, with a wrong-name, an untrusted, an expired
/// and a good certificate: delivered, or deferred with EXO's 4.4.317 / 4.7.320.
#[tokio::test]
async fn each_tls_setting_against_each_peer_certificate() {
    use TlsSettings::*;
    #[derive(Clone, Copy, Debug)]
    enum PeerTls {
        NoStartTls,
        WrongName,
        Untrusted,
        Expired,
        Good,
    }
    let expected = |s: TlsSettings, p: PeerTls| -> &'static str {
        match (s, p) {
            (Opportunistic, _) => "delivered",
            (_, PeerTls::NoStartTls) => "4.4.317",
            (EncryptionOnly, _) => "delivered",
            (_, PeerTls::Untrusted) => "4.4.317",
            (_, PeerTls::Expired) => "4.7.320",
            (DomainValidation, PeerTls::WrongName) => "4.4.317",
            _ => "delivered",
        }
    };
    for settings in [Opportunistic, EncryptionOnly, CertificateValidation, DomainValidation] {
        for peer_tls in [PeerTls::NoStartTls, PeerTls::WrongName, PeerTls::Untrusted, PeerTls::Expired, PeerTls::Good] {
            let mut script = PeerScript::new("smart.gateway.test");
            match peer_tls {
                PeerTls::NoStartTls => script.starttls = StartTls::None,
                PeerTls::WrongName => script.cert = PeerCert::WrongName,
                PeerTls::Untrusted => script.cert = PeerCert::Untrusted,
                PeerTls::Expired => script.cert = PeerCert::Expired,
                PeerTls::Good => {}
            }
            let connector =
                smart_host_connector("To gateway", &["*"], "smart.gateway.test", settings, Some("smart.gateway.test"));
            let w = world(vec![connector], vec![("gateway", GATEWAY, script)]).await;
            let reply = w.send_from_onprem("alice@contoso.test", &["bob@partner.test"], BODY).await;
            assert_eq!(reply.code, 250);
            assert!(w.endpoint().settled().await);
            let got = if w.peer("gateway").inbox().len() == 1 {
                "delivered".to_string()
            } else {
                let q = w.endpoint().pipeline().queued();
                let led = q[0].last_error.as_ref().unwrap();
                let text = led.to_string();
                assert!(
                    text.ends_with(&format!(
                        "[LastAttemptedServerName=smart.gateway.test] [LastAttemptedIP={GATEWAY}:25]"
                    )),
                    "{text}"
                );
                led.status.unwrap().to_string()
            };
            assert_eq!(got, expected(settings, peer_tls), "{settings:?} against {peer_tls:?}");
        }
    }
}

/// DomainValidation with a TlsDomain the certificate does not carry: EXO's SubjectMismatch text.
#[tokio::test]
async fn domain_validation_mismatch_reads_like_exo() {
    let connector =
        smart_host_connector("To gateway", &["*"], GATEWAY, TlsSettings::DomainValidation, Some("*.gateway.test"));
    let mut script = PeerScript::new("smart.gateway.test");
    script.cert = PeerCert::WrongName;
    let w = world(vec![connector], vec![("gateway", GATEWAY, script)]).await;
    w.send_from_onprem("alice@contoso.test", &["bob@partner.test"], BODY).await;
    assert!(w.endpoint().settled().await);
    let led = w.endpoint().pipeline().queued()[0].last_error.clone().unwrap().to_string();
    assert!(
        led.starts_with("450 4.4.317 Cannot connect to remote server [Message=SubjectMismatch Expected Subject: *.gateway.test. Presented Subject: CN=mail.wrong.test Thumbprint: "),
        "{led}"
    );
}

/// §3.3: a 4xx is retried on schedule; the second attempt, five simulated minutes later, delivers.
#[tokio::test]
async fn transient_failure_then_delivered_after_a_retry() {
    let mut script = PeerScript::new("mx.partner.test");
    script.on_rcpt = Behaviour::Sequence(vec![Behaviour::reply(451, "4.7.1 Try again later"), Behaviour::Accept]);
    let w = world(vec![], vec![("partner", PARTNER_MX, script)]).await;
    w.send_from_onprem("alice@contoso.test", &["bob@partner.test"], BODY).await;
    assert!(w.endpoint().settled().await);
    assert!(w.peer("partner").inbox().is_empty());
    let queued = w.endpoint().pipeline().queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].last_error.as_ref().unwrap().to_string(), "451 4.7.1 Try again later");
    w.endpoint().advance(Duration::from_secs(6 * 60)).await;
    assert_eq!(w.peer("partner").wait_for_messages(1, WAIT).await.len(), 1);
    assert_eq!(events_for(&w, "bob@partner.test"), [Event::Receive, Event::Defer, Event::Send]);
    assert!(w.endpoint().pipeline().queued().is_empty());
}

/// §3.3, §5.3: 4xx for 24 simulated hours ends in `550 4.4.7 QUEUE.Expired; message expired`,
/// and the NDR reaches the sender's MX peer, where it parses back as RFC 3464.
#[tokio::test]
async fn transient_forever_expires_after_24_hours_with_an_ndr_to_the_senders_mx() {
    let mut onprem = PeerScript::new("onprem.contoso.test");
    onprem.on_rcpt = Behaviour::reply(451, "4.3.2 Mailbox server busy");
    let hybrid = to_on_premises(&["relay.contoso.test"]);
    let w = World::start_with_sender(
        tenant(vec![hybrid]),
        zones(),
        vec![("onprem-mx", ONPREM, onprem), ("fabrikam", FABRIKAM_MX, PeerScript::new("mx.fabrikam.test"))],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    let reply =
        w.send("someone@fabrikam.test", &["user@relay.contoso.test"], "Subject: to on-prem\r\n\r\nhi\r\n").await;
    assert_eq!(reply.code, 250);
    assert!(w.endpoint().settled().await);
    for hours in [6, 6, 6, 5] {
        w.endpoint().advance(Duration::from_secs(hours * 3600)).await;
        assert!(w.peer("fabrikam").inbox().is_empty(), "not expired before 24 h");
    }
    w.endpoint().advance(Duration::from_secs(3600 + 60)).await;
    let ndrs = w.peer("fabrikam").wait_for_messages(1, WAIT).await;
    assert_eq!(ndrs.len(), 1);
    assert_eq!(ndrs[0].mail_from, "", "NDRs come from the null sender");
    assert_eq!(ndrs[0].rcpt_to, ["someone@fabrikam.test"]);
    let parsed = MessageParser::default().parse(&ndrs[0].data).expect("NDR parses");
    let ct = parsed.root_part().content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let status_part =
        parsed.parts.iter().find(|p| p.is_content_type("message", "delivery-status")).expect("delivery-status part");
    let groups = parse_delivery_status(&String::from_utf8_lossy(status_part.contents()));
    let rcpt = &groups[1];
    let field = |name: &str| rcpt.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    assert_eq!(field("Final-Recipient"), Some("rfc822;user@relay.contoso.test"));
    assert_eq!(field("Action"), Some("failed"));
    assert_eq!(field("Status"), Some("4.4.7"));
    assert_eq!(field("Diagnostic-Code"), Some("smtp;550 4.4.7 QUEUE.Expired; message expired"));
    let events = events_for(&w, "user@relay.contoso.test");
    assert_eq!(events.first(), Some(&Event::Receive));
    assert_eq!(events.last(), Some(&Event::Fail));
    assert!(events.iter().filter(|e| **e == Event::Defer).count() >= 5);
}

/// A 5xx at RCPT for one of two recipients: partial delivery, and an NDR for the refused one only.
#[tokio::test]
async fn permanent_refusal_of_one_recipient_gives_partial_delivery_and_one_ndr() {
    let mut script = PeerScript::new("mx.partner.test");
    script.on_rcpt_for =
        BTreeMap::from([("nobody@partner.test".to_string(), Behaviour::reply(550, "5.1.1 User unknown"))]);
    let w = world(vec![], vec![("partner", PARTNER_MX, script)]).await;
    w.send_from_onprem("alice@contoso.test", &["bob@partner.test", "nobody@partner.test"], BODY).await;
    assert!(w.endpoint().settled().await);
    let inbox = w.peer("partner").inbox();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].rcpt_to, ["bob@partner.test"]);
    let ndrs = w.endpoint().store().wait_for("alice@contoso.test", 1, WAIT).await;
    assert_eq!(ndrs.len(), 1, "one NDR, to the sender's mailbox");
    let text = String::from_utf8_lossy(&ndrs[0].data);
    assert!(text.contains("Final-Recipient: rfc822;nobody@partner.test"), "{text}");
    assert!(text.contains("Diagnostic-Code: smtp;550 5.1.1 User unknown"));
    assert!(!text.contains("Final-Recipient: rfc822;bob@partner.test"));
}

/// §5.3 / RFC 7505: NXDOMAIN and null MX fail at once with an NDR; SERVFAIL defers (4.4.312).
#[tokio::test]
async fn nxdomain_null_mx_and_servfail() {
    let zones = zones().null_mx("nomail.test").mx("flaky.test", 10, "mx.flaky.test");
    let w = World::start_with_sender(tenant(vec![]), zones, vec![], ("onprem", ONPREM), |_| {}).await;
    w.dns().set_fault("flaky.test", Fault::ServFail);
    w.send_from_onprem("alice@contoso.test", &["a@nowhere.partner.test", "b@nomail.test", "c@flaky.test"], BODY).await;
    assert!(w.endpoint().settled().await);
    let fails: Vec<_> = w.endpoint().trace().events().into_iter().filter(|e| e.event == Event::Fail).collect();
    let data_of = |rcpt: &str| fails.iter().find(|e| e.recipient.as_deref() == Some(rcpt)).and_then(|e| e.data.clone());
    assert_eq!(
        data_of("a@nowhere.partner.test").as_deref(),
        Some("554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain")
    );
    assert_eq!(data_of("b@nomail.test").as_deref(), Some("556 5.1.10 Recipient address has null MX"));
    let queued = w.endpoint().pipeline().queued();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].last_error.as_ref().unwrap().to_string(),
        "450 4.4.312 DNS query failed [LastAttemptedServerName=flaky.test]"
    );
    // Each next hop is attempted separately (bifurcation, §3.2), so each failing hop bounces on its own.
    let ndrs = w.endpoint().store().wait_for("alice@contoso.test", 2, WAIT).await;
    assert_eq!(ndrs.len(), 2, "one NDR per failed hop");
}

/// §0 item 10, §10 pitfall: the gateway registered on an OnPremises inbound connector plus a `*`
/// outbound connector back to the gateway. The gateway relays everything to the tenant, the
/// tenant sends the InternalRelay recipient back out: the loop ends in 554 5.4.14, not a spin.
#[tokio::test]
async fn gateway_cutover_loop_ends_in_hop_count_exceeded() {
    let mut gateway_as_onprem = InboundConnector::new("Gateway (wrongly OnPremises)", ConnectorType::OnPremises);
    gateway_as_onprem.sender_domains = vec![DomainPattern::Any];
    gateway_as_onprem.sender_ip_addresses = vec!["198.51.100.0/24".parse().unwrap()];
    let t = spec(vec![smart_host_connector("To gateway", &["*"], GATEWAY, TlsSettings::Opportunistic, None)])
        .with_inbound_connector(gateway_as_onprem)
        .build()
        .unwrap();
    let mut gateway = PeerScript::new("smart.gateway.test");
    gateway.forward_to = World::FORWARD_TO_TENANT;
    let w =
        World::start_with_sender(t, zones(), vec![("gateway", GATEWAY, gateway)], ("internet", "203.0.113.99"), |_| {})
            .await;
    let reply =
        w.send("someone@fabrikam.test", &["user@relay.contoso.test"], "Subject: loop\r\n\r\nround and round\r\n").await;
    assert_eq!(reply.code, 250);
    let looped = w
        .endpoint()
        .trace()
        .wait_until(Duration::from_secs(30), |events| {
            events.iter().any(|e| {
                e.data
                    .as_deref()
                    .is_some_and(|d| d.starts_with("554 5.4.14 Hop count exceeded - possible mail loop ATTR34"))
            })
        })
        .await;
    assert!(looped, "the loop was detected");
    assert!(w.endpoint().settled().await);
    let passes = w.peer("gateway").inbox().len();
    assert!((14..=17).contains(&passes), "the loop stopped after about 30 hops: {passes} passes through the gateway");
    let dsn = w.endpoint().trace().events().into_iter().filter(|e| e.event == Event::Dsn).count();
    assert_eq!(dsn, 1, "one NDR, never an NDR for the NDR");
}

/// §4.1: unknown recipients of an InternalRelay domain go to the on-premises server through the
/// OnPremises outbound connector.
#[tokio::test]
async fn internal_relay_recipient_reaches_the_on_premises_peer() {
    let hybrid = to_on_premises(&["relay.contoso.test"]);
    let w = World::start_with_sender(
        tenant(vec![hybrid]),
        zones(),
        vec![("onprem-mx", ONPREM, {
            // An on-premises receive connector checks the certificate EXO presents (§9.1).
            let mut script = PeerScript::new("onprem.contoso.test");
            script.client_cert = ClientCertRequest::Require;
            script
        })],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    let reply = w.send("someone@fabrikam.test", &["user@relay.contoso.test"], "Subject: hybrid\r\n\r\nhi\r\n").await;
    assert_eq!(reply.code, 250);
    let inbox = w.peer("onprem-mx").wait_for_messages(1, WAIT).await;
    assert_eq!(inbox[0].rcpt_to, ["user@relay.contoso.test"]);
    let tls = inbox[0].tls.as_ref().expect("opportunistic TLS used when offered");
    assert_eq!(
        tls.client_cert_subject.as_deref(),
        Some("CN=tenant.mailsim.test"),
        "the tenant presents its certificate"
    );
}

/// RFC 3461 §6.2: a message from the null sender that fails gets no NDR.
#[tokio::test]
async fn no_ndr_for_a_null_sender_message() {
    let mut script = PeerScript::new("mx.partner.test");
    script.on_rcpt = Behaviour::reply(550, "5.1.1 User unknown");
    let w = world(vec![], vec![("partner", PARTNER_MX, script)]).await;
    let reply = w.send_from_onprem("", &["x@partner.test"], BODY).await;
    // A null sender on an IP-only OnPremises connector counts as a foreign sender: ATTR36.
    if reply.code == 250 {
        assert!(w.endpoint().settled().await);
        assert!(w.endpoint().trace().events().iter().all(|e| e.event != Event::Dsn));
    } else {
        assert_eq!(
            reply.last_line(),
            "550 5.7.64 Relay Access Denied ATTR36. For more details please refer to KB 3169958."
        );
    }
    // From a relayed InternalRelay path the null sender is accepted, fails, and gets no NDR.
    let hybrid = to_on_premises(&["relay.contoso.test"]);
    let mut onprem = PeerScript::new("onprem.contoso.test");
    onprem.on_rcpt = Behaviour::reply(550, "5.1.1 User unknown");
    let w = World::start_with_sender(
        tenant(vec![hybrid]),
        zones(),
        vec![("onprem-mx", ONPREM, onprem)],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    let reply = w.send("", &["user@relay.contoso.test"], "Subject: bounce\r\n\r\nx\r\n").await;
    assert_eq!(reply.code, 250);
    assert!(w.endpoint().settled().await);
    let events = w.endpoint().trace().events();
    assert!(events.iter().any(|e| e.event == Event::Fail));
    assert!(events.iter().all(|e| e.event != Event::Dsn), "no NDR for an NDR");
}

/// §9.2 centralized mail transport (`RouteAllMessagesViaOnPremises`): internet mail for a cloud
/// mailbox goes to on-premises first; when on-premises sends it back through its OnPremises
/// connector, it is delivered to the mailbox (and not sent round again).
#[tokio::test]
async fn centralized_mail_transport_goes_through_on_premises_first() {
    let mut cmt = to_on_premises(&["contoso.test"]);
    cmt.route_all_messages_via_on_premises = true;
    let mut onprem = PeerScript::new("onprem.contoso.test");
    onprem.forward_to = World::FORWARD_TO_TENANT;
    let w = World::start_with_sender(
        tenant(vec![cmt]),
        zones(),
        vec![("onprem-mx", ONPREM, onprem)],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    let reply =
        w.send("someone@fabrikam.test", &["alice@contoso.test"], "Subject: via on-premises\r\n\r\nhi\r\n").await;
    assert_eq!(reply.code, 250);
    assert_eq!(w.peer("onprem-mx").wait_for_messages(1, WAIT).await.len(), 1, "on-premises saw it first");
    let delivered = w.endpoint().store().wait_for("alice@contoso.test", 1, WAIT).await;
    assert_eq!(delivered.len(), 1, "then the mailbox");
    assert!(w.endpoint().settled().await);
    assert_eq!(w.peer("onprem-mx").inbox().len(), 1, "and only once");
}

/// Issue 9 item 5 (regression): `SmartHosts = ["[198.51.100.7]:PORT"]`, Postfix's bracket form, used
/// to load and then defer with `4.4.312 DNS query failed [LastAttemptedServerName=[198.51.100.7]]`.
/// Bracketed addresses and names are literal next hops: delivered, the name through its A record
/// only (no MX query).
#[tokio::test]
async fn bracketed_smart_hosts_deliver_as_literal_next_hops() {
    let w = world(Vec::new(), vec![("gateway", GATEWAY, PeerScript::new("smart.gateway.test"))]).await;
    let port = w.tenant_addr().port();
    let rows = [
        (format!("[{GATEWAY}]:{port}"), format!("{GATEWAY}:{port}")),
        (format!("[smart.gateway.test]:{port}"), format!("[smart.gateway.test]:{port}")),
    ];
    for (n, (host, shown)) in rows.into_iter().enumerate() {
        let connector = smart_host_connector("To gateway", &["*"], &host, TlsSettings::Opportunistic, None);
        assert_eq!(connector.smart_hosts[0].to_string(), shown);
        w.set_tenant(tenant(vec![connector]));
        let reply = w.send_from_onprem("alice@contoso.test", &["carol@other.test"], BODY).await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert!(w.endpoint().settled().await);
        let got = w.peer("gateway").wait_for_messages(n + 1, WAIT).await;
        assert_eq!(got.len(), n + 1, "{host}: {:#?}", w.trace());
    }
    assert_eq!(w.dns().queries_for("smart.gateway.test"), 1, "one A query, no MX query: {:?}", w.dns().queries());
}
