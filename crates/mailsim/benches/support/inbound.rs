//! The inbound load the tenant-side benchmarks (`rules`, `auth`) drive: internet mail from the
//! world's `internet` host to one mailbox, over loopback SMTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailsim::sim::Simulation;
use mailsim_testkit::sender::ScriptedSender;

/// Sends `messages` copies of `body` from eve@fabrikam.test to bench@contoso.test over `sessions`
/// connections from the `internet` host and waits until every one is in the mailbox; returns
/// messages/s.
pub async fn drive(sim: &Arc<Simulation>, body: &Arc<String>, messages: usize, sessions: usize) -> f64 {
    let source = sim.plan_table().into_iter().find(|(n, ..)| n == "internet").unwrap().2.ip();
    // Delivered since the start, not held: the store keeps only the latest copies (its caps).
    let before = sim.endpoint().store().stats().delivered;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let (sim, body) = (sim.clone(), body.clone());
        let count = messages / sessions + usize::from(s < messages % sessions);
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = ScriptedSender::connect(source, sim.tenant_addr()).await.unwrap();
            c.command("EHLO mail.fabrikam.test").await.unwrap();
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
