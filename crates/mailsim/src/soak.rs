//! The soak (issue 14 item 9): N messages through one world, then the conservation check.
//!
//! The world: tenant `contoso.test` with 16 mailboxes and `sender@contoso.test`; an on-premises
//! server (`192.0.2.10`, an OnPremises inbound connector gives it relay) sends every message; an
//! outbound connector sends `fabrikam.test` to a scripted peer as smart host, and `flaky.test` goes
//! by MX to a second peer. Message `n` goes, by `n % 10`:
//!
//! | `n % 10` | recipients                                  | what happens                             |
//! |----------|---------------------------------------------|------------------------------------------|
//! | 0–5      | `user{n%16}@contoso.test`                   | delivered to a local mailbox             |
//! | 6        | a local mailbox and `ok@fabrikam.test`      | delivered locally and sent on            |
//! | 7        | `bounce@fabrikam.test`                      | `550 5.1.1` + a long text with a run of spaces: failed, NDR |
//! | 8        | `defer@fabrikam.test`                       | `451 4.3.0` always: deferred, expires after 24 h, NDR 4.4.7 |
//! | 9        | `x{n}@flaky.test`                           | each batch opens with a dropped connection, a `451` and a delay, then accepted |
//!
//! NDRs go to `sender@contoso.test`, a local mailbox. Messages are sent in batches of
//! `batch` (10,000) over `sessions` persistent, pipelined sessions; after each batch simulated time
//! advances 25 hours at a time until the queue is empty (every deferral retried or expired), the
//! peers' inboxes are counted and the peers restarted (the peers' inboxes are test doubles that
//! keep everything; restarting them keeps the soak's own memory flat).
//!
//! The check, from a tap on the message trace (every event, whatever the trace keeps in memory):
//! every recipient the tenant answered 250 for is delivered once (DELIVER or SEND), failed once
//! (FAIL, with one NDR generated and delivered), or still queued, and none twice. The client's
//! count of accepted recipients must equal the RECEIVE events, the peers' inboxes the SEND events,
//! the mailbox store's count the DELIVER events. RSS is read from `/proc/self/status` at the start,
//! after the first batch and at the end. Bounded: N messages, a wall-clock limit, loopback only.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailsim_core::tenant::{
    ConnectorType, DomainPattern, DomainType, InboundConnector, OutboundConnector, SmartHost, Tenant,
};
use mailsim_core::trace::{Event, TraceEvent};
use mailsim_io::client::{ClientOptions, SmtpClient};
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::peer::{Behaviour, PeerScript, ScriptedPeer, StartTls};

use crate::sim::{HostSpec, SimError, Simulation, WorldSpec};

const ONPREM: &str = "192.0.2.10";
const FABRIKAM: &str = "203.0.113.40";
const FLAKY: &str = "203.0.113.50";
const SENDER: &str = "sender@contoso.test";

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakSpec {
    /// Messages in all.
    pub messages: u64,
    /// Messages per batch (time advances and the queue drains between batches).
    pub batch: u64,
    /// Parallel SMTP sessions into the tenant.
    pub sessions: usize,
    /// Write mailboxes and the trace here.
    pub state_dir: Option<PathBuf>,
    /// Stop sending after this long (the report then says how many were not sent).
    pub timeout: Duration,
}

impl Default for SoakSpec {
    fn default() -> Self {
        Self { messages: 100_000, batch: 10_000, sessions: 8, state_dir: None, timeout: Duration::from_secs(1800) }
    }
}

/// What the soak found. `lost` and `duplicated` must be 0.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SoakReport {
    /// Messages the tenant answered 250 for.
    pub accepted_messages: u64,
    /// Recipients of those messages (RCPT answered 250, message accepted).
    pub accepted_recipients: u64,
    /// Transactions the tenant refused or that failed below SMTP.
    pub not_accepted: u64,
    /// Messages not sent because the time limit passed.
    pub unsent: u64,
    /// RECEIVE events of the messages sent (should equal `accepted_recipients`).
    pub received: u64,
    /// DELIVER events (local mailboxes), the soak's messages only.
    pub delivered_local: u64,
    /// SEND events (handed to a peer with a 2xx).
    pub sent_remote: u64,
    /// FAIL events after acceptance.
    pub failed: u64,
    /// DEFER events (each a retry to come).
    pub deferrals: u64,
    /// NDRs generated (DSN events).
    pub ndrs_generated: u64,
    /// NDRs delivered to the sender's mailbox.
    pub ndrs_delivered: u64,
    /// Recipients still in the retry queue at the end.
    pub still_queued: u64,
    /// Recipients accepted and neither delivered, failed nor queued.
    pub lost: u64,
    /// Recipients delivered or failed more than once (or received twice).
    pub duplicated: u64,
    /// Recipients the peers' inboxes hold, summed over batches (should equal `sent_remote`).
    pub peer_recipients: u64,
    /// The mailbox store's delivered count (should equal the DELIVER events, NDRs included).
    pub store_delivered: u64,
    /// Copies the mailbox store evicted from memory.
    pub store_evicted: u64,
    /// Message files that could not be written (must be 0).
    pub store_write_errors: u64,
    /// Trace events evicted from memory.
    pub trace_evicted: u64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Accepted messages per second of wall time.
    pub messages_per_s: f64,
    /// RSS when the world was up, bytes (Linux).
    pub rss_start: Option<u64>,
    /// RSS after the first batch.
    pub rss_first_batch: Option<u64>,
    /// RSS at the end.
    pub rss_end: Option<u64>,
    /// Problems found by the cross-checks, in words.
    pub problems: Vec<String>,
}

impl SoakReport {
    /// Whether the conservation check and every cross-check passed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Per-recipient tally from the trace tap: only recipients in flight are held, so it stays small.
#[derive(Debug, Default)]
struct Tally {
    open: HashSet<(u64, Box<str>)>,
    ndr_open: HashSet<(u64, Box<str>)>,
    report: SoakReport,
}

impl Tally {
    fn see(&mut self, e: &TraceEvent) {
        if e.event == Event::Dsn {
            self.report.ndrs_generated += 1;
            return;
        }
        let (Some(id), Some(rcpt)) = (e.internal_id, e.recipient.as_deref()) else { return };
        let is_ndr = e.sender == "<>";
        let key = (id, Box::<str>::from(rcpt.to_ascii_lowercase()));
        let r = &mut self.report;
        let open = if is_ndr { &mut self.ndr_open } else { &mut self.open };
        match e.event {
            Event::Receive => {
                if !is_ndr {
                    r.received += 1;
                }
                if !open.insert(key) {
                    r.duplicated += 1;
                }
            }
            Event::Deliver | Event::Send | Event::Fail => {
                if !open.remove(&key) {
                    r.duplicated += 1;
                    return;
                }
                match (e.event, is_ndr) {
                    (Event::Deliver, true) => r.ndrs_delivered += 1,
                    (Event::Deliver, false) => r.delivered_local += 1,
                    (Event::Send, _) => r.sent_remote += 1,
                    (_, false) => r.failed += 1,
                    (_, true) => r.problems.push(format!("an NDR failed: {}", e.detail)),
                }
            }
            Event::Defer => r.deferrals += 1,
            // A mail flow rule ended the recipient here (the soak's tenant has no rules).
            Event::Drop | Event::Quarantine | Event::Redirect => {
                open.remove(&key);
            }
            Event::Dsn | Event::Transfer | Event::TransportRule => {}
        }
    }
}

fn tenant() -> Tenant {
    let mut onprem = InboundConnector::new("From on-premises", ConnectorType::OnPremises);
    onprem.sender_domains = vec![DomainPattern::Any];
    onprem.sender_ip_addresses = vec![format!("{ONPREM}/32").parse().expect("a range")];
    let mut out = OutboundConnector::new("To Fabrikam");
    out.recipient_domains = vec![DomainPattern::parse("fabrikam.test").expect("a domain")];
    out.use_mx_record = false;
    out.smart_hosts = vec![SmartHost::parse(FABRIKAM).expect("a smart host")];
    let mut b = Tenant::builder().with_domain("contoso.test", DomainType::Authoritative).with_mailbox(SENDER);
    for i in 0..16 {
        b = b.with_mailbox(&format!("user{i}@contoso.test"));
    }
    b.with_inbound_connector(onprem).with_outbound_connector(out).build().expect("the soak tenant is valid")
}

fn fabrikam_script() -> PeerScript {
    let mut s = PeerScript::new("mx.fabrikam.test");
    s.starttls = StartTls::None;
    let long = format!("5.1.1 <bounce@fabrikam.test>: user unknown{}see https://fabrikam.test/ndr", " ".repeat(120));
    s.on_rcpt_for.insert("bounce@fabrikam.test".into(), Behaviour::reply(550, long));
    s.on_rcpt_for.insert("defer@fabrikam.test".into(), Behaviour::reply(451, "4.3.0 Mailbox busy, try later"));
    s
}

fn flaky_script() -> PeerScript {
    let mut s = PeerScript::new("mx.flaky.test");
    s.starttls = StartTls::None;
    s.on_end_of_data = Behaviour::Sequence(vec![
        Behaviour::Drop,
        Behaviour::reply(451, "4.7.0 Temporary server error"),
        Behaviour::Delay(Duration::from_millis(20)),
        Behaviour::Accept,
    ]);
    s
}

fn recipients(n: u64) -> Vec<String> {
    let local = format!("user{}@contoso.test", n % 16);
    match n % 10 {
        6 => vec![local, "ok@fabrikam.test".into()],
        7 => vec!["bounce@fabrikam.test".into()],
        8 => vec!["defer@fabrikam.test".into()],
        9 => vec![format!("x{n}@flaky.test")],
        _ => vec![local],
    }
}

fn message(n: u64) -> Vec<u8> {
    format!(
        "From: <{SENDER}>\r\nTo: soak\r\nSubject: soak {n}\r\nMessage-ID: <soak-{n}@contoso.test>\r\n\r\n\
         Soak message {n}.\r\n{}\r\n",
        "The quick brown fox jumps over the lazy dog. ".repeat(6)
    )
    .into_bytes()
}

/// VmRSS of this process in bytes (Linux; `None` elsewhere).
pub fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Counters of one batch's senders.
#[derive(Default)]
struct Sent {
    messages: AtomicU64,
    recipients: AtomicU64,
    not_accepted: AtomicU64,
}

async fn send_batch(
    tenant: SocketAddr,
    source: std::net::IpAddr,
    range: std::ops::Range<u64>,
    sessions: usize,
    deadline: Instant,
    sent: &Arc<Sent>,
) {
    let next = Arc::new(AtomicU64::new(range.start));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions.max(1) {
        let (next, sent, end) = (next.clone(), sent.clone(), range.end);
        tasks.spawn(async move {
            let mut opts = ClientOptions::new(tenant);
            opts.local_addr = Some(source);
            opts.ehlo = "onprem.contoso.test".into();
            opts.record_transcript = false;
            opts.timeout = Duration::from_secs(30);
            let mut client: Option<SmtpClient> = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end || Instant::now() >= deadline {
                    break;
                }
                if client.is_none() {
                    let mut c = SmtpClient::new(opts.clone());
                    if c.open().await.is_err() {
                        sent.not_accepted.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    client = Some(c);
                }
                let c = client.as_mut().expect("open");
                let rcpts = recipients(n);
                let rcpts: Vec<&str> = rcpts.iter().map(String::as_str).collect();
                match c.send_transaction(SENDER, &rcpts, &message(n), true).await {
                    Ok(r) if r.accepted() => {
                        sent.messages.fetch_add(1, Ordering::Relaxed);
                        sent.recipients.fetch_add(r.accepted_rcpts() as u64, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        sent.not_accepted.fetch_add(1, Ordering::Relaxed);
                        if !c.rset().await.is_ok_and(|r| r.code.get() / 100 == 2) {
                            client = None;
                        }
                    }
                    Err(_) => {
                        sent.not_accepted.fetch_add(1, Ordering::Relaxed);
                        client = None;
                    }
                }
            }
            if let Some(mut c) = client {
                let _ = c.quit().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs the soak and checks conservation.
pub async fn run(spec: &SoakSpec) -> Result<SoakReport, SimError> {
    let started = Instant::now();
    let deadline = started + spec.timeout;
    let mut world = WorldSpec::new(tenant());
    world.hosts.push(HostSpec::new("onprem", ONPREM));
    world.hosts.push(HostSpec::new("fabrikam", FABRIKAM));
    world.hosts.push(HostSpec::new("flaky", FLAKY));
    world.dns = DnsZoneSet::new().mx("flaky.test", 10, "mx.flaky.test").a("mx.flaky.test", FLAKY.parse().expect("ip"));
    world.state_dir = spec.state_dir.clone();
    let sim = Simulation::start(world).await?;
    let port = sim.tenant_addr().port();
    let peer_addr =
        |host: &str| -> Result<SocketAddr, SimError> { Ok(SocketAddr::new(sim.host_loopback(host)?, port)) };
    let start_peer = |addr: SocketAddr, script: PeerScript| async move {
        ScriptedPeer::start(addr, script)
            .await
            .map_err(|source| SimError::Io { what: format!("starting a soak peer on {addr}"), source })
    };
    let (fabrikam_addr, flaky_addr) = (peer_addr("fabrikam")?, peer_addr("flaky")?);
    let mut fabrikam = start_peer(fabrikam_addr, fabrikam_script()).await?;
    let mut flaky = start_peer(flaky_addr, flaky_script()).await?;

    let tally = Arc::new(Mutex::new(Tally::default()));
    let tap = tally.clone();
    let pipeline = sim.endpoint().pipeline().clone();
    pipeline.trace().set_tap(Box::new(move |e| tap.lock().expect("tally lock").see(e)));

    let source = sim.host_loopback("onprem")?;
    let sent = Arc::new(Sent::default());
    let mut report = SoakReport { rss_start: rss(), ..SoakReport::default() };
    let mut peer_recipients = 0u64;
    let mut first = 0;
    while first < spec.messages && Instant::now() < deadline {
        let end = (first + spec.batch.max(1)).min(spec.messages);
        send_batch(sim.tenant_addr(), source, first..end, spec.sessions, deadline, &sent).await;
        // Let every attempt finish, then move time on until every deferral is retried or expired.
        sim.settled().await;
        for _ in 0..4 {
            if pipeline.queued().is_empty() {
                break;
            }
            sim.advance(Duration::from_secs(25 * 3600)).await;
        }
        // Count what the peers hold, then start them afresh (their inboxes keep everything).
        for peer in [&mut fabrikam, &mut flaky] {
            peer.stop().await;
            peer_recipients += peer.inbox().iter().map(|m| m.rcpt_to.len() as u64).sum::<u64>();
        }
        fabrikam = start_peer(fabrikam_addr, fabrikam_script()).await?;
        flaky = start_peer(flaky_addr, flaky_script()).await?;
        if first == 0 {
            report.rss_first_batch = rss();
        }
        first = end;
    }
    report.rss_end = rss();
    report.elapsed_s = started.elapsed().as_secs_f64();

    let still_queued: u64 = pipeline.queued().iter().map(|e| e.recipients.len() as u64).sum();
    let store = sim.endpoint().store().stats();
    let trace_evicted = pipeline.trace().evicted();
    fabrikam.stop().await;
    flaky.stop().await;
    sim.stop().await;

    let t = std::mem::take(&mut *tally.lock().expect("tally lock"));
    let mut r = SoakReport { rss_start: report.rss_start, rss_first_batch: report.rss_first_batch, ..t.report };
    r.rss_end = report.rss_end;
    r.elapsed_s = report.elapsed_s;
    r.accepted_messages = sent.messages.load(Ordering::Relaxed);
    r.accepted_recipients = sent.recipients.load(Ordering::Relaxed);
    r.not_accepted = sent.not_accepted.load(Ordering::Relaxed);
    r.unsent = spec.messages.saturating_sub(r.accepted_messages + r.not_accepted);
    r.still_queued = still_queued;
    let open = t.open.len() as u64;
    r.lost = open.saturating_sub(still_queued) + r.accepted_recipients.saturating_sub(r.received);
    r.peer_recipients = peer_recipients;
    r.store_delivered = store.delivered;
    r.store_evicted = store.evicted;
    r.store_write_errors = store.write_errors;
    r.trace_evicted = trace_evicted;
    r.messages_per_s = r.accepted_messages as f64 / r.elapsed_s.max(1e-9);
    let mut problems = std::mem::take(&mut r.problems);
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    check(r.lost == 0, format!("{} recipients lost", r.lost));
    check(r.duplicated == 0, format!("{} recipients delivered, failed or received twice", r.duplicated));
    check(
        r.received == r.accepted_recipients,
        format!("{} RECEIVE events for {} recipients answered 250", r.received, r.accepted_recipients),
    );
    check(
        r.delivered_local + r.sent_remote + r.failed + r.still_queued == r.accepted_recipients,
        format!(
            "{} delivered + {} sent + {} failed + {} queued != {} accepted",
            r.delivered_local, r.sent_remote, r.failed, r.still_queued, r.accepted_recipients
        ),
    );
    check(r.ndrs_generated == r.failed, format!("{} NDRs for {} failed recipients", r.ndrs_generated, r.failed));
    check(
        r.ndrs_delivered == r.ndrs_generated && t.ndr_open.is_empty(),
        format!("{} of {} NDRs delivered", r.ndrs_delivered, r.ndrs_generated),
    );
    check(
        r.peer_recipients == r.sent_remote,
        format!("peers hold {} recipients, {} SENT", r.peer_recipients, r.sent_remote),
    );
    check(
        r.store_delivered == r.delivered_local + r.ndrs_delivered,
        format!(
            "the store has {} copies for {} DELIVER events",
            r.store_delivered,
            r.delivered_local + r.ndrs_delivered
        ),
    );
    check(r.store_write_errors == 0, format!("{} message files not written", r.store_write_errors));
    r.problems = problems;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short soak of issue 14: 10,000 messages, nothing lost or duplicated, every cross-check
    /// holds; the store and the trace stay within their caps.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_messages_are_conserved() {
        let spec = SoakSpec { messages: 10_000, batch: 5_000, sessions: 4, ..SoakSpec::default() };
        let r = run(&spec).await.unwrap();
        assert!(r.ok(), "{}", crate::cli::soak::text(&r));
        assert_eq!((r.accepted_messages, r.accepted_recipients), (10_000, 11_000));
        assert_eq!((r.lost, r.duplicated, r.still_queued), (0, 0, 0));
        assert_eq!(r.failed, 2_000, "bounce@ and defer@ fail, each with an NDR");
        assert!(r.deferrals >= 1_000, "defer@ deferred before it expired");
    }
}
