//! Inbound with email authentication (issue 11 "Speed"): messages/s accepted and delivered over
//! loopback SMTP with SPF + DKIM + DMARC evaluated against the world's DNS and EXO's stamps, as a
//! ratio to the same world without authentication, in the same run (target: at least 0.5). DNS
//! answers are cached per world, so after the first message each one costs the verification
//! itself (an RSA-2048 DKIM signature, the SPF and DMARC policies from the cache) plus the
//! lookups that are not cached (negative answers: the PTR of the sender). The per-message cost is
//! printed as the difference of the two per-message times.
//!
//! `cargo bench -p mailsim --bench auth` (env: `MESSAGES`, default 2000; `SESSIONS`, 20; `ROUNDS`,
//! 3: the two worlds alternate and each figure is the best round). Loopback only; every server is
//! started here and stopped at the end.

use std::sync::Arc;

use mailsim::sim::{HostSpec, Simulation, WorldSpec};
use mailsim_core::auth::AuthConfig;
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_testkit::dkim::DkimIdentity;
use mailsim_testkit::dns::DnsZoneSet;

const INTERNET: &str = "203.0.113.9";

#[path = "support/inbound.rs"]
mod inbound;
mod support;

use support::env;

async fn world(auth: bool) -> Arc<Simulation> {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("bench@contoso.test")
        .build()
        .unwrap();
    let mut spec = WorldSpec::new(tenant);
    let mut host = HostSpec::new("internet", INTERNET);
    host.dkim = Some(DkimIdentity::new("fabrikam.test", "s1"));
    spec.hosts.push(host);
    spec.dns = DnsZoneSet::new()
        .txt("fabrikam.test", "v=spf1 ip4:203.0.113.0/24 -all")
        .txt("_dmarc.fabrikam.test", "v=DMARC1; p=reject")
        .mx("contoso.test", 10, "contoso.mail.protection.mailsim.test")
        .a("contoso.mail.protection.mailsim.test", "192.0.2.100".parse().unwrap());
    if auth {
        spec.authentication = Some(AuthConfig::default());
    }
    Arc::new(Simulation::start(spec).await.unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; this benchmark has no test cases.
    }
    let messages = env("MESSAGES", 2000);
    let sessions = env("SESSIONS", 20);
    let rounds = env("ROUNDS", 3);
    let off = world(false).await;
    let on = world(true).await;
    // One signed message, sent again and again: each copy is verified on its own.
    let plain = format!(
        "From: Eve <eve@fabrikam.test>\r\nTo: bench@contoso.test\r\nSubject: Quarterly figures\r\nMessage-ID: <bench@fabrikam.test>\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(14)
    );
    let signer = on.dkim_signer("internet").unwrap().expect("the host signs");
    let body = Arc::new(String::from_utf8(signer.sign(plain.as_bytes()).unwrap()).unwrap());
    let (mut best_off, mut best_on) = (0f64, 0f64);
    for round in 1..=rounds {
        let a = inbound::drive(&off, &body, messages, sessions).await;
        let b = inbound::drive(&on, &body, messages, sessions).await;
        if std::env::var("VERBOSE").is_ok() {
            println!("round {round}: authentication off {a:.0} msgs/s, on {b:.0} msgs/s");
        }
        best_off = best_off.max(a);
        best_on = best_on.max(b);
    }
    let stored = on.endpoint().store().mailbox("bench@contoso.test");
    let sample = String::from_utf8_lossy(&stored[0].data);
    assert!(
        sample.contains("spf=pass (sender IP is 203.0.113.9) smtp.mailfrom=fabrikam.test; dkim=pass (signature was verified) header.d=fabrikam.test;dmarc=pass action=none"),
        "authentication evaluated: {sample}"
    );
    println!(
        "inbound, authentication off: {best_off:>8.0} msgs/s ({messages} messages, {sessions} sessions, best of {rounds})"
    );
    println!(
        "inbound, SPF+DKIM+DMARC on:  {best_on:>8.0} msgs/s; ratio to off {:.2} (target >= 0.5)",
        best_on / best_off
    );
    println!(
        "verification cost per message: {:.0} µs of wall time at this concurrency",
        (1.0 / best_on - 1.0 / best_off) * 1e6
    );
}
