//! Mail flow rules over real sockets, for what the shipped scenarios (37-41) do not show:
//! quarantine, a Bcc copy with the rules-loop mark, a rule whose connector was disabled, and a
//! 50-rule tenant loading from its file.

use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
use mailsim_core::tenant::transport_rule::{Action, Condition};
use mailsim_core::tenant::{DomainType, OutboundConnector, SmartHost, Tenant, TransportRule};
use mailsim_core::trace::{Event, Status};

fn rule(name: &str, priority: u32, conditions: Vec<Condition>, actions: Vec<Action>) -> TransportRule {
    let mut r = TransportRule::new(name, priority);
    r.conditions = conditions;
    r.actions = actions;
    r
}

async fn world(tenant: Tenant) -> Simulation {
    let mut spec = WorldSpec::new(tenant);
    spec.hosts.push(HostSpec::new("internet", "203.0.113.99"));
    Simulation::start(spec).await.unwrap()
}

#[tokio::test]
async fn quarantine_and_bcc_are_carried_out_by_the_pipeline() {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .with_mailbox("bob@contoso.test")
        .with_mailbox("archive@contoso.test")
        .with_transport_rule(rule(
            "Quarantine invoices to bob",
            0,
            vec![
                Condition::SentTo(vec!["bob@contoso.test".parse().unwrap()]),
                Condition::SubjectContainsWords(mailsim_core::tenant::transport_rule::Words::new(["invoice"])),
            ],
            vec![Action::Quarantine],
        ))
        .with_transport_rule(rule(
            "Archive",
            1,
            vec![],
            vec![Action::BlindCopyTo(vec!["archive@contoso.test".parse().unwrap()])],
        ))
        .build()
        .unwrap();
    let sim = world(tenant).await;
    let mut send = SendSpec::new("internet", "eve@fabrikam.test", &["alice@contoso.test", "bob@contoso.test"]);
    send.subject = "Invoice 42".into();
    let sent = sim.send(&send).await.unwrap();
    assert!(sent.final_reply.last_line().starts_with("250 2.6.0"), "{:?}", sent.final_reply);
    assert!(sim.settled().await);
    let store = sim.endpoint().store();
    let held = store.quarantined();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].mailbox.to_string(), "bob@contoso.test");
    assert!(store.mailbox("bob@contoso.test").is_empty(), "quarantine stops the later Bcc rule for bob");
    assert_eq!(store.mailbox("alice@contoso.test").len(), 1);
    let archived = store.mailbox("archive@contoso.test");
    assert_eq!(archived.len(), 1, "the Bcc copy of alice's fork");
    assert!(String::from_utf8_lossy(&archived[0].data).contains("X-MS-Exchange-Transport-Rules-Loop: 1"));
    let trace = sim.trace();
    let status = mailsim::scenario::expect::recipient_status(&trace, "bob@contoso.test").unwrap().0;
    assert_eq!(status, Status::Quarantined);
    assert!(
        trace
            .iter()
            .any(|e| e.event == Event::Receive && e.detail == "Added by transport rule 'Archive' (BlindCopyTo)")
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_disabled_rule_connector_routes_normally_with_a_warning() {
    let mut c = OutboundConnector::new("Dedicated");
    c.use_mx_record = false;
    c.smart_hosts = vec![SmartHost::parse("198.51.100.77").unwrap()];
    c.is_transport_rule_scoped = true;
    c.enabled = false;
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .with_outbound_connector(c)
        .with_transport_rule(rule("Route", 0, vec![], vec![Action::RouteMessageOutboundConnector("Dedicated".into())]))
        .build()
        .unwrap();
    let sim = world(tenant).await;
    let sent = sim.send(&SendSpec::new("internet", "eve@fabrikam.test", &["alice@contoso.test"])).await.unwrap();
    assert!(sent.final_reply.last_line().starts_with("250"));
    assert!(sim.settled().await);
    assert_eq!(sim.endpoint().store().mailbox("alice@contoso.test").len(), 1);
    let trace = sim.trace();
    assert!(
        trace.iter().any(|e| e.event == Event::Transfer
            && e.detail == "Transport rule chose outbound connector 'Dedicated', which is disabled; routed normally"),
        "{trace:#?}"
    );
    sim.stop().await;
}

#[test]
fn the_fifty_rule_bench_tenant_loads() {
    let text = include_str!("../tenants/bench-50-rules.toml");
    let t = mailsim_core::tenant::load::load(text, "tests/tenants/bench-50-rules.toml").unwrap();
    assert_eq!(t.rules().count(), 50);
    assert!(t.rules().zip(0..).all(|(r, i)| r.priority == i));
}
