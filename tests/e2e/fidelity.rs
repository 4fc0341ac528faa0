//! Issue 14 item 7: what the tenant writes shows declared addresses (exo-behaviour §8.5, the
//! address plan in docs/architecture.md), and the §1.3 hybrid certificate-name rule.

use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
use mailsim_core::tenant::{DomainType, Tenant};

use crate::common::WAIT;

/// The tenant's own `Received:` header showed `by MAILSIM01… (127.70.x.1)`, its loopback address.
#[tokio::test]
async fn the_tenants_received_header_shows_declared_addresses() {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .build()
        .unwrap();
    let mut world = WorldSpec::new(tenant);
    world.hosts.push(HostSpec::new("internet", "203.0.113.99"));
    let declared = world.tenant_declared;
    let sim = Simulation::start(world).await.unwrap();
    let sent = sim.send(&SendSpec::new("internet", "a@fabrikam.test", &["alice@contoso.test"])).await.unwrap();
    assert!(sent.accepted(), "{:?}", sent.final_reply);
    let delivered = sim.wait_for_mailbox("alice@contoso.test", 1, WAIT).await;
    let text = String::from_utf8_lossy(&delivered[0].data).to_string();
    let received = text.lines().find(|l| l.starts_with("Received: from")).unwrap();
    assert!(received.contains("(203.0.113.99) by MAILSIM01"), "{received}");
    assert!(received.contains(&format!("({declared}) with Microsoft SMTP Server")), "{received}");
    assert!(!received.contains("(127."), "a loopback address in {received}");
    sim.stop().await;
}

/// §1.3: a non-wildcard `TlsSenderCertificateName` on an OnPremises connector that is not itself an
/// accepted domain loads with a warning saying why mail from on-premises will be refused (the
/// refusal itself, 5.7.51, is in the core's attribution table).
#[test]
fn hybrid_certificate_name_rule_warns_at_load() {
    let text = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"Authoritative\"\n\n\
        [[InboundConnector]]\nName = \"hcw\"\nConnectorType = \"OnPremises\"\nSenderDomains = [\"*\"]\n\
        TlsSenderCertificateName = \"mail.contoso.test\"\nRequireTls = true\n";
    let loaded = mailsim_core::tenant::load::load_with_warnings(text, "t.toml").unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "t.toml:9: warning: InboundConnector[1].TlsSenderCertificateName: mail.contoso.test is not itself an accepted domain: mail from on-premises matched by this certificate is refused with 5.7.51 (exo-behaviour §1.3); write `*.contoso.test` or add mail.contoso.test as an accepted domain"
        ]
    );
    for fixed in ["*.contoso.test", "contoso.test"] {
        let text = text.replace("\"mail.contoso.test\"", &format!("\"{fixed}\""));
        assert!(
            mailsim_core::tenant::load::load_with_warnings(&text, "t.toml").unwrap().warnings.is_empty(),
            "{fixed}"
        );
    }
    let accepted = text.replace(
        "\n\n[[InboundConnector]]",
        "\n\n[[AcceptedDomain]]\nDomainName = \"mail.contoso.test\"\nDomainType = \"Authoritative\"\n\n[[InboundConnector]]",
    );
    assert!(mailsim_core::tenant::load::load_with_warnings(&accepted, "t.toml").unwrap().warnings.is_empty());
}

/// Item 1 on the wire: with SMTPUTF8 the U-label address, and without it the A-label address (any
/// case), reach the one mailbox declared as `alice@straße.test` (`strasse.test` is another domain).
#[tokio::test]
async fn idna_addresses_on_the_wire_reach_one_mailbox() {
    use crate::common::{connect, start};
    use mailsim::endpoint::EndpointOptions;
    use mailsim_testkit::hosts::roles;
    let tenant = Tenant::builder()
        .with_domain("straße.test", DomainType::Authoritative)
        .with_mailbox("alice@straße.test")
        .build()
        .unwrap();
    let ep = start(EndpointOptions::new(tenant)).await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO client.test").await.unwrap();
    let body = "Subject: x\r\n\r\nhello\r\n";
    for (mail, rcpt) in [
        ("MAIL FROM:<a@bücher.test> SMTPUTF8", "RCPT TO:<alice@Straße.test>"),
        ("MAIL FROM:<a@fabrikam.test>", "RCPT TO:<Alice@XN--STRAE-OQA.test>"),
    ] {
        assert_eq!(c.command(mail).await.unwrap().code, 250, "{mail}");
        assert_eq!(c.command(rcpt).await.unwrap().code, 250, "{rcpt}");
        assert_eq!(c.command("DATA").await.unwrap().code, 354);
        c.send_raw(format!("{body}.\r\n").as_bytes()).await.unwrap();
        assert_eq!(c.read_reply().await.unwrap().code, 250, "{rcpt}");
    }
    let store = ep.store();
    assert!(store.mailbox("alice@strasse.test").is_empty());
    assert_eq!(store.mailbox("alice@xn--strae-oqa.test").len(), 2);
    assert_eq!(store.mailbox("ALICE@straße.test").len(), 2);
}
