//! Inbound with 50 mail flow rules (issue 12 "Speed"): messages/s accepted and delivered to a
//! mailbox over loopback SMTP, with the 50-rule tenant of `tests/tenants/bench-50-rules.toml` and
//! with the same tenant without its rules, in the same run; the ratio is the figure (target: at
//! least 0.7). Each message is an internet message to one mailbox that two rules rewrite (a
//! disclaimer and a header stamp) and 48 more are checked against; `NO_REWRITE=1` keeps only the
//! 48 rules that do not match, to separate the cost of checking from the cost of rewriting.
//!
//! `cargo bench -p mailsim --bench rules` (env: `MESSAGES`, default 4000; `SESSIONS`, 20; `ROUNDS`,
//! 3: the two worlds alternate and each figure is the best round). Loopback only; every server is
//! started here and stopped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailsim::sim::{HostSpec, Simulation, WorldSpec};
use mailsim_core::tenant::Tenant;
use mailsim_core::tenant::load::load;
use mailsim_testkit::sender::ScriptedSender;

const TENANT: &str = include_str!("../../../tests/tenants/bench-50-rules.toml");
const INTERNET: &str = "203.0.113.9";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tenant(rules: bool) -> Tenant {
    let t = load(TENANT, "bench-50-rules.toml").expect("the bench tenant loads");
    let mut b = t.to_builder();
    if !rules {
        b.transport_rules.clear();
    } else if std::env::var("NO_REWRITE").is_ok() {
        // Diagnosis: only the 48 rules that do not match (no content rewrite).
        b.transport_rules.drain(..2);
    }
    b.build().unwrap()
}

async fn world(rules: bool) -> Arc<Simulation> {
    let mut spec = WorldSpec::new(tenant(rules));
    spec.hosts.push(HostSpec::new("internet", INTERNET));
    Arc::new(Simulation::start(spec).await.unwrap())
}

/// Sends `messages` over `sessions` connections and waits until every one is in the mailbox;
/// returns messages/s.
async fn drive(sim: &Arc<Simulation>, messages: usize, sessions: usize) -> f64 {
    let source = sim.plan_table().into_iter().find(|(n, ..)| n == "internet").unwrap().2.ip();
    // Delivered since the start, not held: the store keeps only the latest copies (its caps).
    let before = sim.endpoint().store().stats().delivered;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let sim = sim.clone();
        let count = messages / sessions + usize::from(s < messages % sessions);
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = ScriptedSender::connect(source, sim.tenant_addr()).await.unwrap();
            c.command("EHLO mail.fabrikam.test").await.unwrap();
            let body = format!(
                "From: Eve <eve@fabrikam.test>\r\nTo: bench@contoso.test\r\nSubject: Quarterly figures\r\n\r\n{}",
                format!("{}\r\n", "x".repeat(70)).repeat(14)
            );
            for _ in 0..count {
                let r = c.transaction("eve@fabrikam.test", &["bench@contoso.test"], &body).await.unwrap();
                assert_eq!(r.code, 250, "{r:?}");
            }
            let _ = c.command("QUIT").await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while sim.endpoint().store().stats().delivered < before + messages as u64 {
        assert!(Instant::now() < deadline, "every message delivered within 300 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    messages as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; this benchmark has no test cases.
    }
    let messages = env("MESSAGES", 4000);
    let sessions = env("SESSIONS", 20);
    let rounds = env("ROUNDS", 3);
    let none = world(false).await;
    let fifty = world(true).await;
    let (mut best_none, mut best_fifty) = (0f64, 0f64);
    for round in 1..=rounds {
        let a = drive(&none, messages, sessions).await;
        let b = drive(&fifty, messages, sessions).await;
        if std::env::var("VERBOSE").is_ok() {
            println!("round {round}: no rules {a:.0} msgs/s, 50 rules {b:.0} msgs/s");
        }
        best_none = best_none.max(a);
        best_fifty = best_fifty.max(b);
    }
    let stored = fifty.endpoint().store().mailbox("bench@contoso.test");
    let sample = String::from_utf8_lossy(&stored[0].data);
    if std::env::var("NO_REWRITE").is_err() {
        assert!(sample.contains("X-Contoso-External: true") && sample.contains("External sender."), "rules applied");
    }
    println!(
        "inbound, no rules:  {best_none:>9.0} msgs/s ({messages} messages, {sessions} sessions, best of {rounds})"
    );
    println!(
        "inbound, 50 rules:  {best_fifty:>9.0} msgs/s; ratio to no rules {:.2} (target >= 0.7)",
        best_fifty / best_none
    );
}
