//! Issue 14 item 3 across restarts: a world restarted on the same state directory hands out new
//! ids, so the second run's copy sits beside the first run's in the mailbox instead of replacing it.

use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
use mailsim_core::tenant::{DomainType, Tenant};

async fn run_once(dir: &std::path::Path) -> String {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .build()
        .unwrap();
    let mut world = WorldSpec::new(tenant);
    world.hosts.push(HostSpec::new("internet", "203.0.113.99"));
    world.state_dir = Some(dir.to_path_buf());
    let sim = Simulation::start(world).await.unwrap();
    let mut send = SendSpec::new("internet", "a@fabrikam.test", &["alice@contoso.test"]);
    // The same Message-ID both times: copies are told apart by the internal id, not by it.
    send.data = Some("Message-ID: <same@fabrikam.test>\r\nSubject: x\r\n\r\nhello\r\n".into());
    let sent = sim.send(&send).await.unwrap();
    assert_eq!(sent.final_reply.code, 250);
    let text = sent.final_reply.last_line();
    sim.stop().await;
    text
}

#[tokio::test]
async fn a_restart_on_the_same_state_dir_overwrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_once(dir.path()).await;
    let second = run_once(dir.path()).await;
    let id = |reply: &str| reply.split("InternalId=").nth(1).and_then(|s| s.split(',').next()).unwrap().to_string();
    assert_ne!(id(&first), id(&second), "{first} / {second}");
    let mbox = std::fs::read_to_string(dir.path().join("mailboxes").join("alice@contoso.test.mbox")).unwrap();
    assert_eq!(mbox.lines().filter(|l| l.starts_with("From ")).count(), 2, "both copies kept: {mbox}");
    let epoch: u64 = std::fs::read_to_string(dir.path().join("id-epoch")).unwrap().trim().parse().unwrap();
    assert!(epoch > 0);
}
