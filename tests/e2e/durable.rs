//! The durable queue (issue 9 item 7): a world restarted on the same state directory resumes the
//! queue where the last one left it, delivers once, and its trace agrees; without a state
//! directory, stopping says what is dropped (exo-behaviour §3.3).

use std::path::Path;
use std::time::Duration;

use mailsim::sim::WorldSpec;
use mailsim_core::tenant::{
    ConnectorType, DomainPattern, DomainType, InboundConnector, OutboundConnector, SmartHost, Tenant, TlsSettings,
};
use mailsim_core::trace::{Event, TraceEvent};
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::peer::{Behaviour, PeerScript};

use crate::common::{WAIT, World};

const ONPREM: &str = "192.0.2.10";

/// relay.contoso.test (InternalRelay) goes to the on-premises server as smart host.
fn tenant() -> Tenant {
    let mut onprem = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    onprem.sender_domains = vec![DomainPattern::Any];
    onprem.sender_ip_addresses = vec![format!("{ONPREM}/32").parse().unwrap()];
    let mut out = OutboundConnector::new("Outbound to on-premises");
    out.connector_type = ConnectorType::OnPremises;
    out.recipient_domains = vec![DomainPattern::parse("relay.contoso.test").unwrap()];
    out.use_mx_record = false;
    out.smart_hosts = vec![SmartHost::parse(ONPREM).unwrap()];
    out.tls_settings = TlsSettings::Opportunistic;
    let mut t = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_domain("relay.contoso.test", DomainType::InternalRelay)
        .with_mailbox("alice@contoso.test")
        .with_inbound_connector(onprem);
    t.outbound_connectors = vec![out];
    t.build().unwrap()
}

async fn world(state: &Path, onprem: PeerScript) -> World {
    let dir = state.to_path_buf();
    World::start_with_sender(
        tenant(),
        DnsZoneSet::new(),
        vec![("onprem", ONPREM, onprem)],
        ("internet", "203.0.113.99"),
        move |spec: &mut WorldSpec| spec.state_dir = Some(dir),
    )
    .await
}

fn trace_file(state: &Path) -> Vec<TraceEvent> {
    let text = std::fs::read_to_string(state.join("trace.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Accept → defer → stop → start on the same directory → advance → delivered once; the trace
/// file tells the whole story across both runs, with one Send row.
#[tokio::test]
async fn a_restarted_world_resumes_the_queue_and_delivers_once() {
    let state = tempfile::tempdir().unwrap();
    let mut busy = PeerScript::new("onprem.contoso.test");
    busy.on_rcpt = Behaviour::reply(451, "4.3.2 Mailbox server busy");
    let first = world(state.path(), busy).await;
    let reply = first.send("someone@fabrikam.test", &["user@relay.contoso.test"], "Subject: once\r\n\r\nhi\r\n").await;
    assert_eq!(reply.code, 250);
    assert!(first.endpoint().settled().await);
    let queued = first.endpoint().pipeline().queued();
    assert_eq!(queued.len(), 1);
    let retry_at = queued[0].retry_at;
    first.stop().await;

    let second = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    let resumed = second.endpoint().resumed().cloned().unwrap();
    assert_eq!((resumed.messages, resumed.recipients, resumed.torn_bytes), (1, 1, 0));
    let queued = second.endpoint().pipeline().queued();
    assert_eq!(queued.len(), 1, "the deferred recipient is queued again");
    assert_eq!(queued[0].attempts, 1);
    assert_eq!(queued[0].retry_at, retry_at);
    assert_eq!(queued[0].last_error.as_ref().unwrap().to_string(), "451 4.3.2 Mailbox server busy");
    assert!(second.peer("onprem").inbox().is_empty(), "not before its retry time");
    second.endpoint().advance(Duration::from_secs(6 * 60)).await;
    let inbox = second.peer("onprem").wait_for_messages(1, WAIT).await;
    assert_eq!(inbox.len(), 1);
    assert!(second.endpoint().pipeline().queued().is_empty());
    second.stop().await;

    let events: Vec<Event> = trace_file(state.path())
        .into_iter()
        .filter(|e| e.recipient.as_deref() == Some("user@relay.contoso.test"))
        .map(|e| e.event)
        .collect();
    assert_eq!(events, [Event::Receive, Event::Defer, Event::Send]);
    // A third start finds nothing left to do.
    let third = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    assert_eq!(third.endpoint().resumed().unwrap().recipients, 0);
    assert!(third.endpoint().settled().await);
    assert_eq!(third.peer("onprem").inbox().len(), 0);
    third.stop().await;
}

/// Local deliveries are finished in the journal: a restart delivers nothing again.
#[tokio::test]
async fn delivered_messages_are_not_delivered_again_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let first = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    for _ in 0..3 {
        let reply = first.send("someone@fabrikam.test", &["alice@contoso.test"], "Subject: local\r\n\r\nhi\r\n").await;
        assert_eq!(reply.code, 250);
    }
    first.stop().await;
    let second = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    assert_eq!(second.endpoint().resumed().unwrap().recipients, 0);
    assert!(second.mailbox("alice@contoso.test").is_empty());
    second.stop().await;
    let delivered = trace_file(state.path()).into_iter().filter(|e| e.event == Event::Deliver).count();
    assert_eq!(delivered, 3);
    let mbox = std::fs::read_to_string(state.path().join("mailboxes").join("alice@contoso.test.mbox")).unwrap();
    assert_eq!(mbox.lines().filter(|l| l.starts_with("From ")).count(), 3);
}

/// Without a state directory the queue is in memory: stopping says how much it drops.
#[tokio::test]
async fn without_a_state_dir_stopping_says_how_many_recipients_are_dropped() {
    let mut busy = PeerScript::new("onprem.contoso.test");
    busy.on_rcpt = Behaviour::reply(451, "4.3.2 Mailbox server busy");
    let w = World::start_with_sender(
        tenant(),
        DnsZoneSet::new(),
        vec![("onprem", ONPREM, busy)],
        ("internet", "203.0.113.99"),
        |_| {},
    )
    .await;
    w.send("someone@fabrikam.test", &["a@relay.contoso.test", "b@relay.contoso.test"], "Subject: x\r\n\r\nhi\r\n")
        .await;
    assert!(w.endpoint().settled().await);
    assert_eq!(
        mailsim::cli::serve::stop_text(w.endpoint()),
        "queue: 2 queued recipient(s) and 0 attempt(s) in flight dropped (no --state-dir: the queue is in memory)"
    );
    w.stop().await;
}

/// Issue 9 item 8: a peer's inbox is bounded in memory and kept under the state directory
/// (`peers/<host>/<id>.eml`); a message dropped from memory is still read from disk.
#[tokio::test]
async fn peers_keep_what_they_received_on_disk_and_a_bounded_inbox_in_memory() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_path_buf();
    let w = World::start_with_sender(
        tenant(),
        DnsZoneSet::new(),
        vec![("onprem", ONPREM, PeerScript::new("onprem.contoso.test"))],
        ("internet", "203.0.113.99"),
        move |spec: &mut WorldSpec| {
            spec.state_dir = Some(dir);
            spec.peer_inbox_cap = 1;
        },
    )
    .await;
    for n in 1..=2 {
        let reply =
            w.send("someone@fabrikam.test", &["user@relay.contoso.test"], &format!("Subject: {n}\r\n\r\nhi\r\n")).await;
        assert_eq!(reply.code, 250);
        assert!(w.endpoint().settled().await);
    }
    w.peer("onprem").wait_for_messages(2, WAIT).await;
    let (in_memory, dropped) = w.peer_messages("onprem").unwrap();
    assert_eq!((in_memory.iter().map(|m| m.id).collect::<Vec<_>>(), dropped), (vec![2], 1));
    let first = w.peer_message("onprem", 1).unwrap().expect("on disk");
    assert_eq!(first.received, None, "no longer in memory");
    assert!(String::from_utf8_lossy(&first.data).contains("Subject: 1\r\n"));
    let second = w.peer_message("onprem", 2).unwrap().expect("in memory");
    assert_eq!(second.received.unwrap().rcpt_to, ["user@relay.contoso.test"]);
    assert!(state.path().join("peers/onprem/0000000002.eml").exists());
    assert_eq!(w.peer_message("onprem", 3).unwrap(), None);
    assert!(w.peer_message("nobody", 1).is_err());
    w.stop().await;
}

/// A message the durable queue cannot store is not accepted: the client gets the catalogue's
/// temporary failure instead of the `250`, and nothing is delivered (exo-behaviour §2.4 wording).
#[tokio::test]
async fn a_message_the_spool_cannot_store_gets_451_not_250() {
    let state = tempfile::tempdir().unwrap();
    let w = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    w.endpoint().pipeline().spool().expect("a state directory brings a spool").close().await;
    let reply = w.send("someone@fabrikam.test", &["alice@contoso.test"], "Subject: lost?\r\n\r\nhi\r\n").await;
    assert_eq!(reply.last_line(), "451 4.3.2 Temporary server error. Please try again later");
    assert!(w.mailbox("alice@contoso.test").is_empty());
    w.stop().await;
}

/// A recipient whose delivery was in flight when the process died (simulated: the spool stops
/// recording while the peer still holds the attempt) is attempted again at once by the next start,
/// and recorded sent once.
#[tokio::test]
async fn a_delivery_in_flight_when_the_process_died_is_retried_at_once() {
    let state = tempfile::tempdir().unwrap();
    let mut slow = PeerScript::new("onprem.contoso.test");
    slow.on_rcpt = Behaviour::Delay(Duration::from_secs(10));
    let first = world(state.path(), slow).await;
    let reply =
        first.send("someone@fabrikam.test", &["user@relay.contoso.test"], "Subject: flight\r\n\r\nhi\r\n").await;
    assert_eq!(reply.code, 250);
    assert_eq!(first.peer("onprem").wait_for_connections(1, WAIT).await, 1, "the attempt is under way");
    first.endpoint().pipeline().spool().unwrap().close().await;
    first.stop().await;

    let second = world(state.path(), PeerScript::new("onprem.contoso.test")).await;
    assert_eq!(second.endpoint().resumed().unwrap().recipients, 1);
    let inbox = second.peer("onprem").wait_for_messages(1, WAIT).await;
    assert_eq!(inbox.len(), 1, "attempted at once, without advancing the clock");
    assert!(second.endpoint().settled().await);
    assert!(second.endpoint().pipeline().queued().is_empty());
    second.stop().await;
    let sent = trace_file(state.path())
        .into_iter()
        .filter(|e| e.recipient.as_deref() == Some("user@relay.contoso.test") && e.event == Event::Send)
        .count();
    assert_eq!(sent, 1);
}
