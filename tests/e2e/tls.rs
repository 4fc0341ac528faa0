//! STARTTLS at the tenant endpoint: facts recorded for every kind of client certificate, the
//! handshake never aborted by an untrusted one, and no STARTTLS injection (RFC 3207 §4.2, §5;
//! exo-behaviour §1.1, §2.3).

use mailsim_core::peer::CertTrust;
use mailsim_testkit::certs::TestPki;
use mailsim_testkit::hosts::roles;
use mailsim_testkit::sender::{ScriptedSender, TlsOptions};

use crate::common::*;

async fn send_over_tls(options: TlsOptions) -> std::sync::Arc<mailsim_core::envelope::AcceptedMessage> {
    let ep = start_default().await;
    let mut c = connect(roles::GATEWAY, &ep).await;
    c.command("EHLO mail.gateway.test").await.unwrap();
    let reply = c.starttls(&options, "tenant.mailsim.test").await.unwrap();
    assert_eq!(reply.last_line(), "220 2.0.0 SMTP server ready");
    let reply = c.send_message("mail.gateway.test", "a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = ep.store().wait_for("alice@contoso.test", 1, WAIT).await;
    got.into_iter().next().expect("delivered")
}

#[tokio::test]
async fn starttls_without_client_certificate() {
    let m = send_over_tls(TlsOptions::default()).await;
    let tls = m.peer.tls.as_ref().expect("tls facts");
    assert_eq!(tls.version, "TLS1_3");
    assert!(tls.client_cert.is_none());
    let text = String::from_utf8_lossy(&m.data);
    assert!(text.contains("with Microsoft SMTP Server (version=TLS1_3, cipher=TLS13_"), "{text}");
}

#[tokio::test]
async fn trusted_client_certificate_facts_are_recorded() {
    let pki = TestPki::default_shared();
    let m = send_over_tls(TlsOptions::with_cert(&pki.gateway)).await;
    let cert = m.peer.tls.as_ref().unwrap().client_cert.as_ref().expect("client cert");
    assert_eq!(cert.trust, CertTrust::Trusted);
    assert_eq!(cert.common_names, ["mail.gateway.test"]);
    assert!(cert.dns_sans.contains(&"mail.gateway.test".to_string()));
    assert!(cert.issuer.contains("mailsim Test CA"), "{}", cert.issuer);
    assert_eq!(m.peer.observed_ip, roles::GATEWAY.loopback);
}

#[tokio::test]
async fn untrusted_client_certificate_does_not_abort_the_handshake() {
    let pki = TestPki::default_shared();
    let m = send_over_tls(TlsOptions::with_cert(&pki.untrusted)).await;
    let cert = m.peer.tls.as_ref().unwrap().client_cert.as_ref().unwrap();
    assert_eq!(cert.trust, CertTrust::UntrustedRoot);
}

#[tokio::test]
async fn expired_client_certificate_is_recorded_as_expired() {
    let pki = TestPki::default_shared();
    let m = send_over_tls(TlsOptions::with_cert(&pki.expired)).await;
    let cert = m.peer.tls.as_ref().unwrap().client_cert.as_ref().unwrap();
    assert_eq!(cert.trust, CertTrust::Expired);
}

#[tokio::test]
async fn tls_1_2_with_client_certificate() {
    let pki = TestPki::default_shared();
    let options = TlsOptions { tls12_only: true, ..TlsOptions::with_cert(&pki.gateway) };
    let m = send_over_tls(options).await;
    let tls = m.peer.tls.as_ref().unwrap();
    assert_eq!(tls.version, "TLS1_2");
    assert_eq!(tls.client_cert.as_ref().unwrap().trust, CertTrust::Trusted);
}

/// CVE-2011-0411 class: commands pipelined after STARTTLS in plaintext are discarded, and EHLO
/// state is forgotten after the handshake.
#[tokio::test]
async fn starttls_injection_is_discarded_and_ehlo_is_forgotten() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().code, 220);
    c.handshake(&TlsOptions::default(), "tenant.mailsim.test").await.unwrap();
    assert_eq!(c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap().last_line(), "503 5.5.2 Send hello first");
    let ehlo = c.command("EHLO x.test").await.unwrap();
    assert!(!ehlo.lines.contains(&"STARTTLS".to_string()), "not offered twice");
    assert_eq!(c.command("RCPT TO:<alice@contoso.test>").await.unwrap().last_line(), "503 5.5.2 Need mail command");
    assert_eq!(
        c.command("STARTTLS").await.unwrap().last_line(),
        "503 5.5.2 Only one STARTTLS command can be issued per session"
    );
}

#[tokio::test]
async fn starttls_not_offered_without_certificate() {
    let mut options = mailsim::endpoint::EndpointOptions::new(tenant());
    options.tls = None;
    let ep = start(options).await;
    let (mut c, _) = ScriptedSender::connect(roles::INTERNET.loopback, ep.addr()).await.unwrap();
    let ehlo = c.command("EHLO x.test").await.unwrap();
    assert!(!ehlo.lines.contains(&"STARTTLS".to_string()));
    assert_eq!(c.command("STARTTLS").await.unwrap().last_line(), "454 4.7.0 TLS not available due to temporary reason");
}
