//! `mailsim headers` on a message mailsim itself delivered through a gateway: an internet sender
//! hands the message to the gateway (a scripted peer relaying to the tenant over real SMTP), the
//! tenant accepts it from the gateway's address and stores it in the mailbox. The stored message's
//! header is read back by `header_report::analyze` (exo-behaviour §8.5, §14.7): two hops in travel
//! order, the frontend hop naming the gateway's declared address, Incoming/Anonymous, and the note
//! that Enhanced Filtering did not apply.
//!
//! `MAILSIM_BLESS=1` also saves the stored message as `tests/headers/delivered-through-gateway.eml`,
//! the fixture of the `mailsim headers` golden output (`crates/mailsim/src/cli/headers.rs` tests).

use std::time::Duration;

use mailsim_core::header_report::analyze;
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::peer::PeerScript;
use mailsim_testkit::sender::ScriptedSender;

use crate::common::World;

#[tokio::test]
async fn headers_of_a_message_delivered_through_a_gateway() {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .build()
        .unwrap();
    let mut gateway = PeerScript::new("mail.gateway.test");
    gateway.forward_to = World::FORWARD_TO_TENANT;
    let w = World::start_with_sender(
        tenant,
        DnsZoneSet::new(),
        vec![("gateway", "198.51.100.7", gateway)],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    let (mut c, _) = ScriptedSender::connect(w.sender_loopback(), w.peer("gateway").addr()).await.unwrap();
    let content = "From: someone@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: through the gateway\r\n\
                   Message-ID: <gw-1@fabrikam.test>\r\n\r\nhello\r\n";
    let reply = c.send_message("sender.fabrikam.test", "someone@fabrikam.test", &["alice@contoso.test"], content).await;
    assert_eq!(reply.unwrap().code, 250);
    let _ = c.command("QUIT").await;
    let stored = w.endpoint().store().wait_for("alice@contoso.test", 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1);
    let data = stored[0].data.clone();

    let r = analyze(&data);
    assert_eq!(r.hops.len(), 2, "{:#?}", r.hops);
    let gw = &r.hops[0];
    assert_eq!(gw.by.as_ref().unwrap().name, "mail.gateway.test");
    assert_eq!(gw.from.as_ref().unwrap().name, "sender.fabrikam.test");
    let front = &r.hops[1];
    assert_eq!(front.from.as_ref().unwrap().name, "mail.gateway.test");
    assert_eq!(front.from.as_ref().unwrap().address.as_deref(), Some("198.51.100.7"), "the declared address");
    assert_eq!(front.with.as_deref(), Some("Microsoft SMTP Server"));
    assert_eq!(front.via.as_deref(), Some("Frontend Transport"));
    assert!(front.time.is_some());
    assert!(r.connector[0].contains("accepted it from 198.51.100.7 (HELO mail.gateway.test)"), "{:?}", r.connector);
    assert!(r.connector.iter().any(|s| s.starts_with("Incoming, AuthAs Anonymous")), "{:?}", r.connector);
    assert!(r.connector.iter().any(|s| s.contains("Enhanced Filtering did not apply")), "{:?}", r.connector);

    if std::env::var_os("MAILSIM_BLESS").is_some_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/headers/delivered-through-gateway.eml");
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &data).unwrap();
    }
    w.stop().await;
}
