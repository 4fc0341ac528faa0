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

use mailsim::sim::{HostSpec, Simulation, WorldSpec};
use mailsim_core::tenant::Tenant;
use mailsim_core::tenant::load::load;

const TENANT: &str = include_str!("../../../tests/tenants/bench-50-rules.toml");
const INTERNET: &str = "203.0.113.9";

#[path = "support/inbound.rs"]
mod inbound;
mod support;

use support::env;

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
    let body = Arc::new(format!(
        "From: Eve <eve@fabrikam.test>\r\nTo: bench@contoso.test\r\nSubject: Quarterly figures\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(14)
    ));
    let (mut best_none, mut best_fifty) = (0f64, 0f64);
    for round in 1..=rounds {
        let a = inbound::drive(&none, &body, messages, sessions).await;
        let b = inbound::drive(&fifty, &body, messages, sessions).await;
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
