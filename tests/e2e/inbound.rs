//! Inbound connectors end to end (issue 3, "Tests that must exist" 2 and 3): a real tenant endpoint
//! on loopback with the roles' address plan, scripted senders connecting from their own 127/8
//! addresses with or without STARTTLS and a chosen client certificate, and the exact replies of
//! exo-behaviour §2.4 / §5.1. Every §5.1 reply the tenant can produce is pinned by one test here:
//! 5.7.51, 5.7.64 TenantAttribution, 5.7.64 ATTR36, 5.7.68, 5.7.1 Unable to relay, and 454 4.7.0
//! (without a reason, with `CertificateExpired`, with `UntrustedRoot`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::address_plan::AddressPlan;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::tenant::load::load;
use mailsim_core::tenant::{RejectionStage, Tenant};
use mailsim_core::trace::{Event, TraceEvent};
use mailsim_testkit::certs::{LeafCert, LeafSpec, TestPki};
use mailsim_testkit::hosts::{Host, roles};
use mailsim_testkit::sender::{RawReply, ScriptedSender, TlsOptions};

use crate::common::*;

const HOST: &str = "MAILSIM01.mail.protection.mailsim.test";

const TEXT_5_7_51: &str = "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set";
const TEXT_5_7_64: &str = "550 5.7.64 TenantAttribution; Relay Access Denied [MAILSIM01.mail.protection.mailsim.test]";
const TEXT_ATTR36: &str = "550 5.7.64 Relay Access Denied ATTR36. For more details please refer to KB 3169958.";
const TEXT_5_7_68: &str =
    "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources";
const TEXT_UNABLE_TO_RELAY: &str = "550 5.7.1 Unable to relay";
const TEXT_454_NO_TLS: &str = "454 4.7.0 Failed to establish appropriate TLS channel: Access Denied";
const TEXT_454_EXPIRED: &str =
    "454 4.7.0 Failed to establish appropriate TLS channel: CertificateExpired: Access Denied";
const TEXT_454_UNTRUSTED: &str = "454 4.7.0 Failed to establish appropriate TLS channel: UntrustedRoot: Access Denied";

const MAIL: &str = "From: a@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: inbound\r\n\r\nhello\r\n";

// ---------------------------------------------------------------------------------------------
// Local fixtures.

/// The standard roles in the address plan: each host's declared address ↔ its loopback address.
fn role_plan() -> AddressPlan {
    let mut plan = AddressPlan::new();
    for h in [roles::GATEWAY, roles::GATEWAY_2, roles::PARTNER, roles::ON_PREMISES, roles::INTERNET] {
        plan.add(h.name, h.declared, h.loopback).unwrap();
    }
    plan
}

/// A tenant file from tests/tenants/.
fn tenant_file(name: &str) -> Tenant {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tenants").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    load(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// A tenant written inline.
fn tenant_toml(text: &str) -> Tenant {
    load(text, "tests/e2e/inbound.rs").unwrap_or_else(|e| panic!("{e}"))
}

/// Serves `tenant` with the role plan and STARTTLS from the shared test PKI.
async fn serve(tenant: Tenant) -> RunningEndpoint {
    let mut options = EndpointOptions::new(tenant);
    options.plan = role_plan();
    start(options).await
}

/// An open session from `host`: greeted, EHLO done, and, with `tls`, upgraded and greeted again.
/// Returns the session id from the banner (it appears in the diagnostic suffix of refusals).
async fn open(ep: &RunningEndpoint, host: Host, tls: Option<TlsOptions>) -> (ScriptedSender, String) {
    open_from(ep, host.loopback, tls).await
}

async fn open_from(
    ep: &RunningEndpoint,
    source: std::net::IpAddr,
    tls: Option<TlsOptions>,
) -> (ScriptedSender, String) {
    let (mut c, greeting) = ScriptedSender::connect(source, ep.addr()).await.expect("connects");
    assert_eq!(greeting.code, 220, "{greeting:?}");
    let banner = greeting.last_line();
    let id = banner.rsplit_once('[').and_then(|(_, r)| r.strip_suffix(']')).expect("session id in banner").to_string();
    assert_eq!(c.command("EHLO mail.sender.test").await.unwrap().code, 250);
    if let Some(options) = tls {
        let reply = c.starttls(&options, "tenant.mailsim.test").await.unwrap();
        assert_eq!(reply.last_line(), "220 2.0.0 SMTP server ready");
        assert_eq!(c.command("EHLO mail.sender.test").await.unwrap().code, 250);
    }
    (c, id)
}

fn with_cert(cert: &LeafCert) -> Option<TlsOptions> {
    Some(TlsOptions::with_cert(cert))
}

/// Real time as the endpoint writes it in suffixes (ISO-8601, milliseconds, sortable as text).
fn iso_now() -> String {
    mailsim_io::smtp_conn::now().iso8601()
}

/// `line` is `<text> [<HOST> <ISO time> <session id>]`, the time within [`before`, `after`] (§1.1
/// "rejection suffix").
fn assert_suffixed(line: &str, text: &str, session_id: &str, before: &str, after: &str) {
    let rest = line
        .strip_prefix(text)
        .and_then(|r| r.strip_prefix(" ["))
        .and_then(|r| r.strip_prefix(HOST))
        .and_then(|r| r.strip_prefix(' '))
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not `{text} [{HOST} <time> <id>]`:\n{line}"));
    let (time, id) = rest.split_once(' ').unwrap_or_else(|| panic!("no time and id in {line}"));
    assert_eq!(id, session_id, "{line}");
    assert_eq!(time.len(), "2024-10-10T21:13:00.303Z".len(), "{line}");
    assert!(before <= time && time <= after, "{time} not within {before}..{after}: {line}");
}

/// The `X-MS-Exchange-Organization-*` header lines of a stored message, in order.
fn org_headers(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_string();
    head.split("\r\n").filter(|l| l.starts_with("X-MS-Exchange-Organization-")).map(str::to_string).collect()
}

fn stamps(auth_as: &str, direction: &str) -> Vec<String> {
    vec![
        format!("X-MS-Exchange-Organization-AuthAs: {auth_as}"),
        format!("X-MS-Exchange-Organization-AuthSource: {HOST}"),
        format!("X-MS-Exchange-Organization-MessageDirectionality: {direction}"),
    ]
}

/// The single message in `mailbox`.
async fn delivered(ep: &RunningEndpoint, mailbox: &str) -> Arc<AcceptedMessage> {
    let got = ep.store().wait_for(mailbox, 1, WAIT).await;
    assert_eq!(got.len(), 1, "one message in {mailbox}");
    got.into_iter().next().unwrap()
}

fn events(ep: &RunningEndpoint, event: Event) -> Vec<TraceEvent> {
    ep.trace().events().into_iter().filter(|e| e.event == event).collect()
}

/// An accepted reply at end of data (§1.1).
fn assert_queued(reply: &RawReply) {
    let line = reply.last_line();
    assert!(line.starts_with("250 2.6.0 <") && line.ends_with("Queued mail for delivery"), "{line}");
}

fn assert_accepted_by(m: &AcceptedMessage, connector: Option<&str>, direction: Direction, internal: bool) {
    match &m.verdict {
        InboundVerdict::Accepted { connector: c, direction: d, internal: i, .. } => {
            assert_eq!((c.as_deref(), *d, *i), (connector, direction, internal), "{:?}", m.verdict);
        }
        v => panic!("not accepted: {v:?}"),
    }
}

/// Sends MAIL, RCPT (both 250) and DATA, then the content; returns the end-of-data reply.
async fn send_to_end_of_data(c: &mut ScriptedSender, from: &str, to: &str) -> RawReply {
    assert_eq!(c.command(&format!("MAIL FROM:<{from}>")).await.unwrap().last_line(), "250 2.1.0 Sender OK");
    assert_eq!(c.command(&format!("RCPT TO:<{to}>")).await.unwrap().last_line(), "250 2.1.5 Recipient OK");
    c.transaction_data(MAIL).await
}

trait DataOnly {
    async fn transaction_data(&mut self, content: &str) -> RawReply;
}

impl DataOnly for ScriptedSender {
    /// DATA and the content on a transaction whose recipients are in.
    async fn transaction_data(&mut self, content: &str) -> RawReply {
        assert_eq!(self.command("DATA").await.unwrap().code, 354);
        let mut body = content.to_string();
        body.push_str(".\r\n");
        self.send_raw(body.as_bytes()).await.unwrap();
        self.read_reply().await.unwrap()
    }
}

/// A session refusal's trace: one FAIL per recipient with the reply, the connector and FromIP =
/// the sender's declared address (§8.1).
fn assert_refusal_traced(ep: &RunningEndpoint, rcpt: &str, reply: &str, connector: Option<&str>, from: Host) {
    let fails = events(ep, Event::Fail);
    let ev = fails.iter().find(|e| e.recipient.as_deref() == Some(rcpt)).unwrap_or_else(|| panic!("{fails:?}"));
    assert_eq!(ev.data.as_deref(), Some(reply), "{ev:?}");
    assert_eq!(ev.connector.as_deref(), connector, "{ev:?}");
    assert_eq!(ev.from_ip, Some(from.declared), "{ev:?}");
    assert!(events(ep, Event::Receive).is_empty(), "nothing received");
    assert!(ep.store().delivered().is_empty(), "nothing delivered");
}

const CERT_LOCKDOWN: &str = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "From gateway (certificate)"
ConnectorType = "Partner"
SenderDomains = ["*"]
TlsSenderCertificateName = "mail.gateway.test"
RestrictDomainsToCertificate = true
RequireTls = true
"#;

// ---------------------------------------------------------------------------------------------
// Gateway lock-down by IP (§0 item 3, §2.2 lock-down pattern, §2.4, §5.1 5.7.51).

/// §0 item 3, §2.2: mail from the gateway's published range passes the lock-down connector, which
/// becomes the connector of record; it is Incoming and stamped Anonymous (§1.3 item 4, §8.5).
#[tokio::test]
async fn ip_lockdown_accepts_the_gateway_from_its_plan_address_and_stamps_incoming() {
    let ep = serve(tenant_file("gateway-lockdown-ip.toml")).await;
    for gateway in [roles::GATEWAY, roles::GATEWAY_2] {
        let (mut c, _) = open(&ep, gateway, None).await;
        let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap();
        assert_queued(&reply);
    }
    let got = ep.store().wait_for("alice@contoso.test", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    for (m, gateway) in got.iter().zip([roles::GATEWAY, roles::GATEWAY_2]) {
        assert_accepted_by(m, Some("From gateway"), Direction::Incoming, false);
        assert_eq!((m.peer.ip, m.peer.observed_ip), (gateway.declared, gateway.loopback));
        let text = String::from_utf8_lossy(&m.data);
        assert!(
            text.starts_with(&format!("Received: from mail.sender.test ({}) by {HOST} (", gateway.declared)),
            "{text}"
        );
        assert_eq!(org_headers(&m.data), stamps("Anonymous", "Incoming"));
    }
    let received = events(&ep, Event::Receive);
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|e| e.connector.as_deref() == Some("From gateway")), "{received:?}");
    assert_eq!(
        received.iter().map(|e| e.from_ip.unwrap()).collect::<Vec<_>>(),
        [roles::GATEWAY.declared, roles::GATEWAY_2.declared]
    );
}

/// §0 item 3, §2.4, §5.1: a sender bypassing the gateway is refused with 5.7.51 and EXO's
/// diagnostic suffix; the default stage is the end of DATA (§1.2, §12), so RCPT is accepted.
#[tokio::test]
async fn ip_lockdown_refuses_the_internet_role_with_exact_5_7_51_at_end_of_data() {
    let ep = serve(tenant_file("gateway-lockdown-ip.toml")).await;
    let (mut c, id) = open(&ep, roles::INTERNET, None).await;
    let before = iso_now();
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    let after = iso_now();
    assert_suffixed(&reply.last_line(), TEXT_5_7_51, &id, &before, &after);
    let refusals = ep.pipeline().refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].stage, "DATA");
    assert_eq!(refusals[0].rejection.as_ref().unwrap().connector.as_deref(), Some("From gateway"));
    assert_refusal_traced(&ep, "alice@contoso.test", &reply.last_line(), Some("From gateway"), roles::INTERNET);
    // The session goes on: the next transaction gets the same answer.
    let again = send_to_end_of_data(&mut c, "b@fabrikam.test", "bob@contoso.test").await;
    assert!(again.last_line().starts_with(TEXT_5_7_51), "{again:?}");
}

/// §1.2, §12: with `RejectionStage = RcptTo` the same lock-down answers RCPT TO, and no
/// recipient is left for DATA.
#[tokio::test]
async fn ip_lockdown_with_rejection_stage_rcpt_to_refuses_at_rcpt() {
    let mut tenant = tenant_file("gateway-lockdown-ip.toml").to_builder();
    tenant.settings.rejection_stage = RejectionStage::RcptTo;
    let tenant = tenant.build().unwrap();
    let ep = serve(tenant).await;
    let (mut c, id) = open(&ep, roles::INTERNET, None).await;
    assert_eq!(c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap().code, 250);
    let before = iso_now();
    let reply = c.command("RCPT TO:<alice@contoso.test>").await.unwrap();
    let after = iso_now();
    assert_suffixed(&reply.last_line(), TEXT_5_7_51, &id, &before, &after);
    assert_eq!(c.command("DATA").await.unwrap().last_line(), "503 5.5.2 Need rcpt command");
    let refusals = ep.pipeline().refusals();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].stage, "RCPT");
    assert_refusal_traced(&ep, "alice@contoso.test", &reply.last_line(), Some("From gateway"), roles::INTERNET);
    // The gateway itself still passes at RCPT and at the end of DATA.
    let (mut gw, _) = open(&ep, roles::GATEWAY, None).await;
    assert_queued(&send_to_end_of_data(&mut gw, "a@fabrikam.test", "alice@contoso.test").await);
}

// ---------------------------------------------------------------------------------------------
// Gateway lock-down by certificate (§2.2 certificate variant, §2.3, §2.4).

/// §2.2, §2.3: the gateway's trusted certificate whose CN/SAN is the connector's
/// TlsSenderCertificateName satisfies RestrictDomainsToCertificate and RequireTls; the Received
/// header records the TLS version and cipher (§8.5).
#[tokio::test]
async fn cert_lockdown_accepts_the_gateway_certificate() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(&pki.gateway)).await;
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    let m = delivered(&ep, "alice@contoso.test").await;
    assert_accepted_by(&m, Some("From gateway (certificate)"), Direction::Incoming, false);
    let text = String::from_utf8_lossy(&m.data);
    assert!(text.contains("with Microsoft SMTP Server (version=TLS1_3, cipher=TLS13_"), "{text}");
    assert_eq!(org_headers(&m.data), stamps("Anonymous", "Incoming"));
    let received = events(&ep, Event::Receive);
    assert_eq!(received[0].connector.as_deref(), Some("From gateway (certificate)"));
}

/// §2.4, §12: RequireTls on the lock-down connector and a plaintext session: mailsim's choice,
/// as the reference recommends, is `454 4.7.0 ... Access Denied` with no reason word.
#[tokio::test]
async fn cert_lockdown_without_tls_is_refused_with_exact_454_4_7_0() {
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, _) = open(&ep, roles::GATEWAY, None).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_eq!(reply.last_line(), TEXT_454_NO_TLS);
    assert_refusal_traced(
        &ep,
        "alice@contoso.test",
        TEXT_454_NO_TLS,
        Some("From gateway (certificate)"),
        roles::GATEWAY,
    );
}

/// §2.3 step 1, §2.4: TLS but no client certificate: the restriction is not satisfied (5.7.51).
#[tokio::test]
async fn cert_lockdown_tls_without_client_certificate_is_refused_with_5_7_51() {
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, id) = open(&ep, roles::GATEWAY, Some(TlsOptions::default())).await;
    let before = iso_now();
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_suffixed(&reply.last_line(), TEXT_5_7_51, &id, &before, &iso_now());
}

/// §2.3 steps 3-4, §2.4: a trusted certificate with another name does not satisfy the connector.
#[tokio::test]
async fn cert_lockdown_wrong_subject_is_refused_with_exact_5_7_51() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, id) = open(&ep, roles::GATEWAY, with_cert(&pki.wrong_subject)).await;
    let before = iso_now();
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_suffixed(&reply.last_line(), TEXT_5_7_51, &id, &before, &iso_now());
    assert_refusal_traced(
        &ep,
        "alice@contoso.test",
        &reply.last_line(),
        Some("From gateway (certificate)"),
        roles::GATEWAY,
    );
}

/// §2.3 step 2, §2.4 [S53]: the right name but expired: `454 4.7.0 ... CertificateExpired`.
#[tokio::test]
async fn cert_lockdown_expired_certificate_is_refused_with_exact_454_certificate_expired() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(&pki.expired)).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_eq!(reply.last_line(), TEXT_454_EXPIRED);
    assert_refusal_traced(
        &ep,
        "alice@contoso.test",
        TEXT_454_EXPIRED,
        Some("From gateway (certificate)"),
        roles::GATEWAY,
    );
}

/// §2.3 step 2, §2.4 [S53]: the right name from a CA nobody trusts: `454 4.7.0 ... UntrustedRoot`.
#[tokio::test]
async fn cert_lockdown_untrusted_certificate_is_refused_with_exact_454_untrusted_root() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_toml(CERT_LOCKDOWN)).await;
    let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(&pki.untrusted)).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_eq!(reply.last_line(), TEXT_454_UNTRUSTED);
    assert_refusal_traced(
        &ep,
        "alice@contoso.test",
        TEXT_454_UNTRUSTED,
        Some("From gateway (certificate)"),
        roles::GATEWAY,
    );
}

/// §2.1 TlsSenderCertificateName, §2.3 step 4: connector value `*.gateway.test` covers the domain
/// and all subdomains, so the gateway's `mail.gateway.test` is accepted; a certificate that is
/// itself `*.gateway.test` is accepted too (§2.3 step 4, mailsim's recommended choice).
#[tokio::test]
async fn wildcard_connector_value_accepts_a_subdomain_certificate() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_file("gateway-lockdown-cert.toml")).await;
    for cert in [&pki.gateway, &pki.wildcard] {
        let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(cert)).await;
        assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    }
    let got = ep.store().wait_for("alice@contoso.test", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    for m in &got {
        assert_accepted_by(m, Some("From gateway (certificate)"), Direction::Incoming, false);
    }
}

/// §2.1, §2.3 step 3 [S51][S32]: the match is against the CN *or* any DNS SAN; a certificate
/// whose CN is not a host name (`Gateway Appliance`) matches by its SAN, against an exact and a
/// wildcard connector value.
#[tokio::test]
async fn san_only_certificate_is_matched_by_its_san() {
    let pki = TestPki::default_shared();
    let exact = CERT_LOCKDOWN.replace("\"mail.gateway.test\"", "\"relay.gateway.test\"");
    for tenant in [tenant_toml(&exact), tenant_file("gateway-lockdown-cert.toml")] {
        let ep = serve(tenant).await;
        let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(&pki.san_only)).await;
        assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
        let m = delivered(&ep, "alice@contoso.test").await;
        assert_accepted_by(&m, Some("From gateway (certificate)"), Direction::Incoming, false);
        let cert = m.peer.tls.as_ref().unwrap().client_cert.as_ref().unwrap();
        assert_eq!(cert.common_names, ["Gateway Appliance"]);
    }
}

// ---------------------------------------------------------------------------------------------
// No connectors, disabled connectors, precedence.

/// §0 item 1, §11: connectors are optional; a tenant with none accepts internet mail anonymously,
/// plain or over TLS (even with a certificate nobody trusts: no connector asks for one), and never
/// answers the seeds' 550 5.7.1.
#[tokio::test]
async fn tenant_without_connectors_accepts_internet_mail() {
    let pki = TestPki::default_shared();
    let ep = serve(tenant_file("no-connectors.toml")).await;
    for tls in [None, Some(TlsOptions::default()), with_cert(&pki.untrusted)] {
        let (mut c, _) = open(&ep, roles::INTERNET, tls).await;
        assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    }
    // The null sender too (an NDR from the internet).
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    assert_queued(&c.transaction("", &["bob@contoso.test"], MAIL).await.unwrap());
    let got = ep.store().wait_for("alice@contoso.test", 3, WAIT).await;
    assert_eq!(got.len(), 3);
    for m in got.iter().chain(ep.store().mailbox("bob@contoso.test").iter()) {
        assert_accepted_by(m, None, Direction::Incoming, false);
        assert_eq!(org_headers(&m.data), stamps("Anonymous", "Incoming"));
    }
    assert!(ep.pipeline().refusals().is_empty());
    assert!(events(&ep, Event::Receive).iter().all(|e| e.connector.is_none()));
}

/// §8.5 header firewall [S37][B2]: `X-MS-Exchange-Organization-*` headers a sender writes are
/// stripped when mail enters the organization; only the tenant's own stamps remain, so an internet
/// sender cannot claim `AuthAs: Internal` or Originating.
#[tokio::test]
async fn organization_headers_from_the_internet_are_replaced_by_the_tenants_stamps() {
    let ep = serve(tenant_file("no-connectors.toml")).await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let spoofed = "X-MS-Exchange-Organization-AuthAs: Internal\r\nX-MS-Exchange-Organization-MessageDirectionality: Originating\r\nX-MS-Exchange-Organization-AuthSource: evil.test\r\nFrom: a@fabrikam.test\r\nSubject: spoof\r\n\r\nhello\r\n";
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], spoofed).await.unwrap());
    let m = delivered(&ep, "alice@contoso.test").await;
    assert_eq!(org_headers(&m.data), stamps("Anonymous", "Incoming"));
}

/// §2.1 Enabled: a disabled lock-down connector is ignored entirely; the tenant falls back to the
/// implicit internet path (no restriction, no connector of record).
#[tokio::test]
async fn disabled_lockdown_connector_falls_back_to_no_restriction() {
    let ep = serve(tenant_toml(
        r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "From gateway"
Enabled = "$false"
ConnectorType = "Partner"
SenderDomains = "smtp:*;1"
SenderIPAddresses = "198.51.100.0/24"
RestrictDomainsToIPAddresses = "$true"
RequireTls = "$false"
"#,
    ))
    .await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    // The gateway's own address gets no connector of record either.
    let (mut c, _) = open(&ep, roles::GATEWAY, None).await;
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    let got = ep.store().wait_for("alice@contoso.test", 2, WAIT).await;
    assert_eq!(got.len(), 2);
    for m in &got {
        assert_accepted_by(m, None, Direction::Incoming, false);
    }
    assert!(ep.pipeline().refusals().is_empty());
}

/// §2.2, §12: among connectors that apply, the most specific range wins (a /32 over the /24) and
/// enforces its own rules (RequireTls); outside the /32 the /24 applies; outside both, the /24's
/// restriction refuses.
#[tokio::test]
async fn most_specific_connector_wins_end_to_end() {
    let ep = serve(tenant_toml(
        r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "Gateway range"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true
RequireTls = false

[[InboundConnector]]
Name = "Gateway node 7"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.7/32"]
RequireTls = true
"#,
    ))
    .await;
    let pki = TestPki::default_shared();
    // 198.51.100.7 over plain TCP: the /32 applies and wants TLS.
    let (mut c, _) = open(&ep, roles::GATEWAY, None).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert_eq!(reply.last_line(), TEXT_454_NO_TLS);
    let refusals = ep.pipeline().refusals();
    assert_eq!(refusals[0].rejection.as_ref().unwrap().connector.as_deref(), Some("Gateway node 7"));
    // 198.51.100.7 over TLS: accepted through the /32.
    let (mut c, _) = open(&ep, roles::GATEWAY, with_cert(&pki.gateway)).await;
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    let m = delivered(&ep, "alice@contoso.test").await;
    assert_accepted_by(&m, Some("Gateway node 7"), Direction::Incoming, false);
    // 198.51.100.8: only the /24 applies, and it does not want TLS.
    let (mut c, _) = open(&ep, roles::GATEWAY_2, None).await;
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    let got = ep.store().wait_for("alice@contoso.test", 2, WAIT).await;
    assert_accepted_by(&got[1], Some("Gateway range"), Direction::Incoming, false);
    // Outside both: the /24's restriction.
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await;
    assert!(reply.last_line().starts_with(TEXT_5_7_51), "{reply:?}");
    let connectors: Vec<Option<String>> = events(&ep, Event::Receive).into_iter().map(|e| e.connector).collect();
    assert_eq!(connectors, [Some("Gateway node 7".to_string()), Some("Gateway range".to_string())]);
}

// ---------------------------------------------------------------------------------------------
// OnPremises connectors and relay (§1.3 item 2, §4.2, §5.1 5.7.64).

/// §1.3 item 2b, §4.2, §8.5: from the on-premises server's address with an accepted-domain MAIL
/// FROM, mail to the internet is Originating and relayed: handed to the outbound stage, which
/// (with no DNS in this world) defers it with 4.4.312 and keeps it queued. AuthAs stays Anonymous
/// (no CloudServicesMailEnabled / TreatMessagesAsInternal: Originating but not Internal).
#[tokio::test]
async fn onprem_ip_connector_relays_accepted_domain_senders_to_the_internet() {
    let ep = serve(tenant_file("onprem-ip-relay.toml")).await;
    let (mut c, _) = open(&ep, roles::ON_PREMISES, None).await;
    let reply = send_to_end_of_data(&mut c, "app@contoso.test", "someone@fabrikam.test").await;
    assert_queued(&reply);
    assert!(ep.settled().await);
    let queue = ep.pipeline().queued();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let entry = &queue[0];
    assert_eq!(entry.recipients.iter().map(ToString::to_string).collect::<Vec<_>>(), ["someone@fabrikam.test"]);
    assert_eq!(
        entry.last_error.as_ref().unwrap().to_string(),
        "450 4.4.312 DNS query failed [LastAttemptedServerName=fabrikam.test]"
    );
    let m = &entry.message;
    assert_accepted_by(m, Some("On-premises relay"), Direction::Originating, false);
    assert!(matches!(m.verdict, InboundVerdict::Accepted { relay_allowed: true, .. }));
    assert_eq!(org_headers(&m.data), stamps("Anonymous", "Originating"));
    assert!(ep.store().delivered().is_empty());
    let received = events(&ep, Event::Receive);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].connector.as_deref(), Some("On-premises relay"));
    assert_eq!(received[0].from_ip, Some(roles::ON_PREMISES.declared));
    assert!(received[0].detail.contains("(Originating)"), "{}", received[0].detail);
    let deferred = events(&ep, Event::Defer);
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].recipient.as_deref(), Some("someone@fabrikam.test"));
    // Internal recipients from the same server are Originating too and delivered.
    let (mut c, _) = open(&ep, roles::ON_PREMISES, None).await;
    assert_queued(&send_to_end_of_data(&mut c, "app@contoso.test", "alice@contoso.test").await);
    let m = delivered(&ep, "alice@contoso.test").await;
    assert_accepted_by(&m, Some("On-premises relay"), Direction::Originating, false);
}

/// §4.2, §5.1 [S51]: the on-premises address with a foreign MAIL FROM relaying to the internet:
/// only a certificate connector whose domain is the tenant's may do that:
/// `550 5.7.64 Relay Access Denied ATTR36. ...` (end of DATA by default).
#[tokio::test]
async fn onprem_ip_connector_refuses_foreign_sender_relay_with_exact_attr36() {
    let ep = serve(tenant_file("onprem-ip-relay.toml")).await;
    let (mut c, _) = open(&ep, roles::ON_PREMISES, None).await;
    let reply = send_to_end_of_data(&mut c, "list@fabrikam.test", "someone@example.test").await;
    assert_eq!(reply.last_line(), TEXT_ATTR36);
    assert_refusal_traced(&ep, "someone@example.test", TEXT_ATTR36, Some("On-premises relay"), roles::ON_PREMISES);
    assert!(ep.pipeline().queued().is_empty());
}

/// The hybrid wizard's certificate connector (§1.3 item 2a, §9): a trusted certificate for
/// mail.contoso.test is Originating and Internal (CloudServicesMailEnabled, §8.5) and relays even
/// for a foreign sender, since the certificate's domain is the tenant's (§4.2).
#[tokio::test]
async fn hybrid_certificate_connector_relays_as_internal() {
    static CERT: OnceLock<LeafCert> = OnceLock::new();
    let cert = CERT.get_or_init(|| {
        TestPki::default_shared().ca.issue(&LeafSpec::client("mail.contoso.test").dns("mail.contoso.test"))
    });
    let ep = serve(tenant_file("hybrid-onprem.toml")).await;
    let (mut c, _) = open(&ep, roles::ON_PREMISES, with_cert(cert)).await;
    assert_queued(&send_to_end_of_data(&mut c, "list@lists.example.test", "someone@fabrikam.test").await);
    assert!(ep.settled().await);
    let queue = ep.pipeline().queued();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let m = &queue[0].message;
    assert_accepted_by(m, Some("Inbound from 2f0c5b1e-8d3a-4c6f-9b7e-1a2b3c4d5e6f"), Direction::Originating, true);
    assert_eq!(org_headers(&m.data), stamps("Internal", "Originating"));
}

/// §4.2, §5.1: relay to a domain the tenant does not host, from a source no OnPremises connector
/// attributes: `550 5.7.64 TenantAttribution; Relay Access Denied [<HOST>]`, at the end of DATA by
/// default, and at RCPT TO with `RejectionStage = RcptTo`. An accepted-domain MAIL FROM does not
/// help from an unattributed address.
#[tokio::test]
async fn unattributed_relay_is_refused_with_exact_5_7_64_tenant_attribution() {
    let ep = serve(tenant_file("onprem-ip-relay.toml")).await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let reply = send_to_end_of_data(&mut c, "ceo@contoso.test", "someone@elsewhere.test").await;
    assert_eq!(reply.last_line(), TEXT_5_7_64);
    assert_refusal_traced(&ep, "someone@elsewhere.test", TEXT_5_7_64, None, roles::INTERNET);
    assert!(ep.pipeline().queued().is_empty());

    let mut tenant = tenant_file("no-connectors.toml").to_builder();
    tenant.settings.rejection_stage = RejectionStage::RcptTo;
    let tenant = tenant.build().unwrap();
    let ep = serve(tenant).await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    assert_eq!(c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap().code, 250);
    assert_eq!(c.command("RCPT TO:<someone@elsewhere.test>").await.unwrap().last_line(), TEXT_5_7_64);
    assert_eq!(ep.pipeline().refusals()[0].stage, "RCPT");
    // A local recipient in the same transaction is still fine.
    assert_eq!(c.command("RCPT TO:<alice@contoso.test>").await.unwrap().code, 250);
    assert_queued(&c.transaction_data(MAIL).await);
    assert_eq!(delivered(&ep, "alice@contoso.test").await.envelope.recipients.len(), 1);
}

/// §5.1 [S40]: `RelayDenialText = UnableToRelay` selects the classic `550 5.7.1 Unable to relay`.
#[tokio::test]
async fn relay_denial_text_unable_to_relay_gives_exact_5_7_1() {
    let ep = serve(tenant_toml(
        r#"
[Transport]
RelayDenialText = "UnableToRelay"

[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]
"#,
    ))
    .await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "someone@elsewhere.test").await;
    assert_eq!(reply.last_line(), TEXT_UNABLE_TO_RELAY);
    assert_refusal_traced(&ep, "someone@elsewhere.test", TEXT_UNABLE_TO_RELAY, None, roles::INTERNET);
}

const DIRECT_SEND: &str = r#"
[Transport]
RejectDirectSend = true

[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "Printer"
ConnectorType = "Partner"
SenderDomains = ["contoso.test"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false
"#;

/// §5.1 [B5][S14]: RejectDirectSend on, anonymous mail with an accepted-domain MAIL FROM that no
/// IP or certificate connector matches: exact 5.7.68.
#[tokio::test]
async fn reject_direct_send_gives_exact_5_7_68() {
    let ep = serve(tenant_toml(DIRECT_SEND)).await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let reply = send_to_end_of_data(&mut c, "printer@contoso.test", "alice@contoso.test").await;
    assert_eq!(reply.last_line(), TEXT_5_7_68);
    assert_refusal_traced(&ep, "alice@contoso.test", TEXT_5_7_68, None, roles::INTERNET);
    // A foreign sender is not direct send.
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    assert_queued(&send_to_end_of_data(&mut c, "a@fabrikam.test", "alice@contoso.test").await);
}

/// §5.1 [S14]: the device a Partner connector matches by IP may send as the tenant's domain.
#[tokio::test]
async fn reject_direct_send_lets_a_connector_matched_device_through() {
    let ep = serve(tenant_toml(DIRECT_SEND)).await;
    let (mut c, _) = open(&ep, roles::ON_PREMISES, None).await;
    assert_queued(&send_to_end_of_data(&mut c, "printer@contoso.test", "alice@contoso.test").await);
    let m = delivered(&ep, "alice@contoso.test").await;
    assert_accepted_by(&m, Some("Printer"), Direction::Incoming, false);
}

// ---------------------------------------------------------------------------------------------
// The address plan (docs/architecture.md "The address plan").

/// Replies, Received headers and the trace show the declared address, not the loopback one; an
/// address outside the plan is shown as it is.
#[tokio::test]
async fn replies_and_trace_show_the_declared_address() {
    let ep = serve(tenant_file("gateway-lockdown-ip.toml")).await;
    let (mut c, _) = ScriptedSender::connect(roles::GATEWAY.loopback, ep.addr()).await.unwrap();
    let ehlo = c.command("EHLO mail.gateway.test").await.unwrap();
    assert_eq!(ehlo.lines[0], format!("{HOST} Hello [198.51.100.7]"));
    let helo = c.command("HELO mail.gateway.test").await.unwrap();
    assert_eq!(helo.last_line(), format!("250 {HOST} Hello [198.51.100.7]"));
    assert_queued(&c.transaction("a@fabrikam.test", &["alice@contoso.test"], MAIL).await.unwrap());
    let m = delivered(&ep, "alice@contoso.test").await;
    assert!(String::from_utf8_lossy(&m.data).starts_with("Received: from mail.gateway.test (198.51.100.7) by "));
    assert_eq!(events(&ep, Event::Receive)[0].from_ip, Some(roles::GATEWAY.declared));

    // The session refusal: FromIP is the declared address, the socket's address is kept apart.
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "bob@contoso.test").await;
    assert!(reply.last_line().starts_with(TEXT_5_7_51));
    let fail = events(&ep, Event::Fail).into_iter().next().expect("a FAIL event");
    assert_eq!(fail.from_ip, Some("203.0.113.99".parse().unwrap()));
    let refusal = &ep.pipeline().refusals()[0];
    assert_eq!((refusal.peer.ip, refusal.peer.observed_ip), (roles::INTERNET.declared, roles::INTERNET.loopback));

    // Outside the plan: matched and shown as observed (and refused by the lock-down).
    let outsider = fresh_loopback();
    let (mut c, _) = ScriptedSender::connect(outsider, ep.addr()).await.unwrap();
    let ehlo = c.command("EHLO x.test").await.unwrap();
    assert_eq!(ehlo.lines[0], format!("{HOST} Hello [{outsider}]"));
    let reply = send_to_end_of_data(&mut c, "a@fabrikam.test", "bob@contoso.test").await;
    assert!(reply.last_line().starts_with(TEXT_5_7_51));
    assert!(events(&ep, Event::Fail).iter().any(|e| e.from_ip == Some(outsider)));
}

/// §8.1: a refusal at RCPT TO concerns the refused recipient only; recipients already accepted
/// in the transaction get no FAIL event (their message is received and delivered afterwards).
#[tokio::test]
async fn rcpt_stage_refusal_traces_only_the_refused_recipient() {
    let mut tenant = tenant_file("no-connectors.toml").to_builder();
    tenant.settings.rejection_stage = RejectionStage::RcptTo;
    let tenant = tenant.build().unwrap();
    let ep = serve(tenant).await;
    let (mut c, _) = open(&ep, roles::INTERNET, None).await;
    assert_eq!(c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap().code, 250);
    assert_eq!(c.command("RCPT TO:<alice@contoso.test>").await.unwrap().code, 250);
    assert_eq!(c.command("RCPT TO:<someone@elsewhere.test>").await.unwrap().last_line(), TEXT_5_7_64);
    assert_queued(&c.transaction_data(MAIL).await);
    delivered(&ep, "alice@contoso.test").await;
    let fails: Vec<Option<String>> = events(&ep, Event::Fail).into_iter().map(|e| e.recipient).collect();
    assert_eq!(fails, [Some("someone@elsewhere.test".to_string())]);
}

/// The benchmark tenant (tests/tenants/bench-20-connectors.toml) loads and accepts the bench
/// workload's envelope from the lab range through its lock-down connector, so the connector
/// benchmark measures accepted mail, not refusals.
#[tokio::test]
async fn bench_tenant_accepts_the_bench_envelope_through_its_lockdown() {
    let tenant = tenant_file("bench-20-connectors.toml");
    assert_eq!(tenant.inbound_connectors.len(), 20);
    let ep = start(EndpointOptions::new(tenant)).await;
    let source: std::net::IpAddr = "127.0.0.71".parse().unwrap();
    let (mut c, _) = open_from(&ep, source, None).await;
    assert_queued(&c.transaction("bench@fabrikam.test", &["bench@contoso.test"], MAIL).await.unwrap());
    let m = delivered(&ep, "bench@contoso.test").await;
    assert_accepted_by(&m, Some("Fabrikam lab lock-down"), Direction::Incoming, false);
}
