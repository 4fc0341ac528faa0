//! Outbound benchmark (issue 4 "Speed"): delivery throughput from the tenant through an outbound
//! connector to a receiving peer, with and without TLS, as a ratio to the inbound figure of the
//! same run; and how many deferred recipients the queue holds per GiB.
//!
//! `cargo bench -p mailsim --bench outbound` (env: `MESSAGES`, default 4000; `SESSIONS`, 20;
//! `QUEUED`, 1000000). Loopback only; every server is started here and stopped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailsim::sim::{HostSpec, Simulation, WorldSpec};
use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::stage::route::{Hop, TlsPolicy};
use mailsim_core::tenant::{
    ConnectorType, DomainPattern, DomainType, InboundConnector, OutboundConnector, SmartHost, Tenant,
};
use mailsim_core::time::Timestamp;
use mailsim_io::pipeline::QueueEntry;
use mailsim_testkit::peer::{PeerScript, StartTls};
use mailsim_testkit::sender::ScriptedSender;

mod support;

use support::env;

const ONPREM: &str = "192.0.2.10";
const SMART_HOST: &str = "198.51.100.7";

fn tenant(outbound: bool) -> Tenant {
    let mut onprem = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    onprem.sender_domains = vec![DomainPattern::Any];
    onprem.sender_ip_addresses = vec![format!("{ONPREM}/32").parse().unwrap()];
    let mut t = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("bench@contoso.test")
        .with_inbound_connector(onprem);
    if outbound {
        let mut c = OutboundConnector::new("To smart host");
        c.recipient_domains = vec![DomainPattern::Any];
        c.use_mx_record = false;
        c.smart_hosts = vec![SmartHost::parse(SMART_HOST).unwrap()];
        t.outbound_connectors = vec![c];
    }
    t.build().expect("the bench tenant is valid")
}

/// Sends `messages` over `sessions` parallel connections from the on-premises host; returns the
/// time until the last 250.
async fn drive(sim: &Arc<Simulation>, messages: usize, sessions: usize, rcpt: &str) -> Duration {
    let source = sim.plan_table().into_iter().find(|(n, ..)| n == "onprem").unwrap().2.ip();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..sessions {
        let sim = sim.clone();
        let rcpt = rcpt.to_string();
        let count = messages / sessions + usize::from(s < messages % sessions);
        tasks.push(tokio::spawn(async move {
            let (mut c, _) = ScriptedSender::connect(source, sim.tenant_addr()).await.unwrap();
            c.command("EHLO onprem.contoso.test").await.unwrap();
            let body = format!("Subject: bench\r\n\r\n{}", format!("{}\r\n", "x".repeat(70)).repeat(14));
            for _ in 0..count {
                let r = c.transaction("bench-sender@contoso.test", &[&rcpt], &body).await.unwrap();
                assert_eq!(r.code, 250, "{r:?}");
            }
            let _ = c.command("QUIT").await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

async fn world(outbound: bool, tls: bool) -> Arc<Simulation> {
    let mut spec = WorldSpec::new(tenant(outbound));
    spec.hosts.push(HostSpec::new("onprem", ONPREM));
    let mut smart = HostSpec::new("smarthost", SMART_HOST);
    let mut script = PeerScript::new("smart.gateway.test");
    if !tls {
        script.starttls = StartTls::None;
    }
    smart.peer = Some(script);
    spec.hosts.push(smart);
    Arc::new(Simulation::start(spec).await.unwrap())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; this benchmark has no test cases.
    }
    let messages = env("MESSAGES", 4000);
    let sessions = env("SESSIONS", 20);

    let inbound = world(false, false).await;
    let took = drive(&inbound, messages, sessions, "bench@contoso.test").await;
    let inbound_rate = messages as f64 / took.as_secs_f64();
    println!(
        "inbound to a mailbox:                 {inbound_rate:>9.0} msgs/s ({messages} messages, {sessions} sessions)"
    );

    for tls in [false, true] {
        let sim = world(true, tls).await;
        let start = Instant::now();
        drive(&sim, messages, sessions, "someone@fabrikam.test").await;
        let got = sim.peer("smarthost").unwrap().wait_for_messages(messages, Duration::from_secs(300)).await.len();
        let rate = got as f64 / start.elapsed().as_secs_f64();
        println!(
            "outbound via connector, {}: {rate:>9.0} msgs/s delivered ({got} of {messages}); ratio to inbound {:.2} (target >= 0.5)",
            if tls { "STARTTLS " } else { "plain    " },
            rate / inbound_rate
        );
        assert!(sim.settled().await);
    }

    // The same through Postfix's smtp-sink as the smart host (a receiver outside this process),
    // when it is installed (benches/compare.sh installs it).
    let sink = std::path::Path::new("/usr/sbin/smtp-sink");
    if sink.exists() {
        let mut spec = WorldSpec::new(tenant(true));
        spec.hosts.push(HostSpec::new("onprem", ONPREM));
        spec.hosts.push(HostSpec::new("smarthost", SMART_HOST));
        let sim = Arc::new(Simulation::start(spec).await.unwrap());
        let (_, _, addr) = sim.plan_table().into_iter().find(|(n, ..)| n == "smarthost").unwrap();
        let mut child = std::process::Command::new(sink)
            .args(["-u", "nobody", "-m", "200", &addr.to_string(), "1024"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("smtp-sink starts");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        drive(&sim, messages, sessions, "someone@fabrikam.test").await;
        assert!(sim.settled().await);
        let sent = sim.trace().iter().filter(|e| e.event == mailsim_core::trace::Event::Send).count();
        let rate = sent as f64 / start.elapsed().as_secs_f64();
        println!(
            "outbound via connector to smtp-sink:  {rate:>9.0} msgs/s delivered ({sent} of {messages}); ratio to inbound {:.2} (target >= 0.5)",
            rate / inbound_rate
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    // Queue capacity: deferred recipients held per GiB.
    let queued = env("QUEUED", 1_000_000);
    let sim = world(false, false).await;
    let pipeline = sim.endpoint().pipeline().clone();
    let ip = "192.0.2.10".parse().unwrap();
    let message = Arc::new(AcceptedMessage {
        internal_id: 1,
        message_id: "<queued@contoso.test>".into(),
        envelope: Envelope { sender: Some("a@contoso.test".parse().unwrap()), ..Envelope::default() },
        peer: PeerFacts::new(ip, 25, ip),
        verdict: InboundVerdict::Accepted {
            connector: None,
            direction: Direction::Originating,
            internal: false,
            relay_allowed: true,
            cross_premises: false,
            checks: vec![],
        },
        data: vec![b'x'; 1024],
        received_at: Timestamp::from_secs(0),
        auth: None,
    });
    let per_entry = 100;
    let far = sim.endpoint().pipeline().clock().now() + Duration::from_secs(3600 * 24 * 365);
    let before = rss_bytes();
    for e in 0..queued / per_entry {
        let recipients: Vec<EmailAddress> =
            (0..per_entry).map(|r| format!("user{r}.{e}@fabrikam{}.test", e % 97).parse().unwrap()).collect();
        pipeline.defer(QueueEntry {
            message: message.clone(),
            hop: Hop::Mx {
                domain: recipients[0].domain().clone(),
                connector: None,
                tls: TlsPolicy::default(),
                cross_premises: false,
            },
            recipients,
            attempts: 1,
            retry_at: far,
            last_error: None,
        });
    }
    let after = rss_bytes();
    let per_rcpt = (after.saturating_sub(before)) as f64 / queued as f64;
    println!(
        "deferred recipients: {queued} held in {:.0} MiB ({per_rcpt:.0} bytes each) = {:.1} million per GiB (target >= 1)",
        (after - before) as f64 / 1048576.0,
        (1u64 << 30) as f64 / per_rcpt / 1e6
    );
}
