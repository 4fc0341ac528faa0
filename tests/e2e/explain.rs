//! `mailsim explain` and a running world give the same answers: both run the core's `Session`, one
//! through a synthetic dialogue, the other over TCP from a host on its own loopback address.

use mailsim::cli::explain::{ExplainArgs, explain};
use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
use mailsim_core::tenant::Tenant;

const TENANT: &str = include_str!("../tenants/gateway-lockdown-ip.toml");
const PATH: &str = "tests/tenants/gateway-lockdown-ip.toml";

fn args(source: &str, rcpts: &[&str]) -> ExplainArgs {
    ExplainArgs {
        tenant: PATH.into(),
        source: source.parse().unwrap(),
        mail_from: "a@fabrikam.test".to_string(),
        rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
        facts: Default::default(),
    }
}

/// A reply without what differs from session to session: the diagnostic suffix (time, session
/// id) and, for the 250 at end of data, everything after the enhanced status (message id, size).
fn comparable(reply: &str) -> String {
    let reply = reply.split(" [").next().unwrap_or(reply).trim();
    if reply.starts_with("250 2.6.0") { "250 2.6.0".to_string() } else { reply.to_string() }
}

/// The replies `explain` reports for RCPT TO (in order) and for end of DATA (if it got there).
fn explained(report: &str) -> (Vec<String>, Option<String>) {
    let reply_of = |line: &str| line.split_once("  →  ").map(|(_, r)| comparable(r));
    let rcpts = report.lines().filter(|l| l.starts_with("  RCPT TO:<")).filter_map(reply_of).collect();
    let end = report.lines().find(|l| l.starts_with("  end of DATA  →  ")).and_then(reply_of);
    (rcpts, end)
}

#[tokio::test]
async fn explain_and_a_running_world_agree() {
    for stage in ["EndOfData", "RcptTo"] {
        let text = TENANT.replace("RejectionStage = \"EndOfData\"", &format!("RejectionStage = \"{stage}\""));
        let tenant: Tenant = mailsim_core::tenant::load::load(&text, PATH).unwrap();
        let mut world = WorldSpec::new(tenant.clone());
        world.hosts.push(HostSpec::new("bypass", "203.0.113.9"));
        world.hosts.push(HostSpec::new("gateway", "198.51.100.7"));
        let sim = Simulation::start(world).await.unwrap();
        let cases: [(&str, &str, &[&str]); 4] = [
            ("bypass", "203.0.113.9", &["alice@contoso.test"]),
            ("bypass", "203.0.113.9", &["alice@contoso.test", "nobody@contoso.test"]),
            ("gateway", "198.51.100.7", &["alice@contoso.test", "nobody@contoso.test"]),
            ("gateway", "198.51.100.7", &["nobody@contoso.test"]),
        ];
        for (host, source, rcpts) in cases {
            let (report, queued) = explain(&tenant, PATH, &args(source, rcpts)).unwrap();
            let sent = sim.send(&SendSpec::new(host, "a@fabrikam.test", rcpts)).await.unwrap();
            let (rcpt_replies, end) = explained(&report);
            let over_tcp: Vec<String> = sent.rcpt_replies.iter().map(|r| comparable(&r.last_line())).collect();
            assert_eq!(rcpt_replies, over_tcp, "{stage} {source} {rcpts:?}: RCPT TO\n{report}");
            let end_over_tcp = (sent.stage == "END-OF-DATA").then(|| comparable(&sent.final_reply.last_line()));
            assert_eq!(end, end_over_tcp, "{stage} {source} {rcpts:?}: end of DATA\n{report}");
            assert_eq!(queued, sent.accepted(), "{stage} {source} {rcpts:?}\n{report}");
        }
        sim.stop().await;
    }
}

/// Outbound: the connector `explain --from` says wins for each recipient is the one a running
/// world delivers through (exo-behaviour §3.2), for the shipped most-specific-connector scenario.
#[tokio::test]
async fn explain_outbound_and_a_running_world_agree() {
    use mailsim::cli::explain_outbound::{Origin, explain_outbound};
    use mailsim_core::stage::route_explain::Verdict;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/28-most-specific-outbound-connector.toml");
    let scenario = mailsim::scenario::load_file(std::path::Path::new(path)).unwrap();
    let rcpts = ["bob@partner.test", "carol@eu.partner.test", "dave@fabrikam.test"];
    let parsed: Vec<_> = rcpts.iter().map(|r| r.parse().unwrap()).collect();
    let report = explain_outbound(
        &scenario.world.tenant,
        "28",
        Origin::Mailbox("alice@contoso.test".parse().unwrap()),
        &parsed,
        None,
        Some(&scenario.world.dns),
        mailsim_core::time::Timestamp(0),
    );
    let explained: Vec<(String, String)> = report.forks[0]
        .routes
        .iter()
        .map(|r| {
            let winner = r.candidates.iter().find(|c| c.verdict == Verdict::Wins).unwrap();
            (r.recipient.clone(), r.next_hop.targets[0].addresses[0].clone() + " via " + &winner.connector)
        })
        .collect();

    let sim = Simulation::start(scenario.world.clone()).await.unwrap();
    let sent = sim.send(&SendSpec::new("onprem", "alice@contoso.test", &rcpts)).await.unwrap();
    assert!(sent.final_reply.last_line().starts_with("250"));
    assert!(sim.endpoint().settled().await);
    for (rcpt, hop) in explained {
        let (ip, connector) = hop.split_once(" via ").unwrap();
        let host = scenario.world.hosts.iter().find(|h| h.declared.to_string() == ip).unwrap();
        let inbox = sim.peer(&host.name).unwrap().inbox();
        assert!(
            inbox.iter().any(|m| m.rcpt_to.iter().any(|r| r == &rcpt)),
            "{rcpt}: explain says {connector} ({ip}, host {}), the world delivered elsewhere",
            host.name
        );
    }
    sim.stop().await;
}
