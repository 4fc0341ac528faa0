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
