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
        tls: false,
        cert_subject: None,
        cert_san: Vec::new(),
        cert_untrusted: false,
        cert_expired: false,
        mail_from: "a@fabrikam.test".to_string(),
        rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
        helo: None,
        headers: None,
        at: None,
        auth: Default::default(),
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
