//! The only sequencer: what happens to a message after the tenant accepted it.
//!
//! accept → loop check → categorize → plan → per route: deliver locally, fail (unroutable), or
//! attempt over SMTP → settle each recipient → trace → queue the deferred ones, bounce the failed
//! ones with an NDR that travels the same pipeline. Every decision is a core call; this file
//! records the trace event built from each result and does the I/O the result asks for.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::ndr::{FailedRecipient, NdrInput, compose};
use mailsim_core::reply::{Reply, ReplyContext};
use mailsim_core::session::Refusal;
use mailsim_core::stage::categorize::categorize;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::stage::outcome::{Outcome, RetryPolicy, check_loop, settle};
use mailsim_core::stage::route::{Hop, Source, plan};
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;
use mailsim_core::trace::{Event, TraceEvent};
use tokio::sync::Notify;

use crate::clock::SimClock;
use crate::outbound::{Attempt, OutboundConfig, attempt};
use crate::store::MailStore;
use crate::trace_sink::TraceSink;

/// Recipients of one message waiting for their next attempt on one hop.
#[derive(Clone, Debug)]
pub struct QueueEntry {
    /// The message.
    pub message: Arc<AcceptedMessage>,
    /// Where to.
    pub hop: Hop,
    /// Who.
    pub recipients: Vec<EmailAddress>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (simulated time).
    pub retry_at: Timestamp,
    /// The last error (EXO's `LED=`).
    pub last_error: Option<Reply>,
}

/// Sessions one next hop gets at once. Exchange and Postfix default to 20 per destination; on the
/// 2-core machine the simulator targets, 8 delivered more messages per second than 20 (measured
/// with `cargo bench -p mailsim --bench outbound`), since every peer shares the same cores.
pub const MAX_CONNECTIONS_PER_HOP: usize = 8;

/// Entries waiting for one next hop, and how many workers serve it.
#[derive(Debug)]
struct Lane {
    hop: Hop,
    pending: VecDeque<QueueEntry>,
    workers: usize,
}

/// Takes accepted messages and session refusals from connections and sees each recipient through.
#[derive(Debug)]
pub struct Pipeline {
    tenant: Arc<crate::shared::Shared<Tenant>>,
    store: Arc<MailStore>,
    trace: Arc<TraceSink>,
    clock: Arc<SimClock>,
    outbound: Arc<OutboundConfig>,
    retry: RetryPolicy,
    queue: Mutex<Vec<QueueEntry>>,
    lanes: Mutex<Vec<Lane>>,
    queue_changed: Notify,
    in_flight: AtomicU64,
    /// Lane workers alive, including one still closing its session.
    workers: AtomicU64,
    ndr_ids: AtomicU64,
    refusals: Mutex<Vec<Refusal>>,
}

impl Pipeline {
    /// A pipeline; call [`Pipeline::run_queue`] in a task to retry deferred recipients.
    pub fn new(
        tenant: Arc<crate::shared::Shared<Tenant>>,
        store: Arc<MailStore>,
        trace: Arc<TraceSink>,
        clock: Arc<SimClock>,
        outbound: Arc<OutboundConfig>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            tenant,
            store,
            trace,
            clock,
            outbound,
            retry,
            queue: Mutex::new(Vec::new()),
            lanes: Mutex::new(Vec::new()),
            queue_changed: Notify::new(),
            in_flight: AtomicU64::new(0),
            workers: AtomicU64::new(0),
            ndr_ids: AtomicU64::new(1),
            refusals: Mutex::new(Vec::new()),
        }
    }

    /// The mailbox store.
    pub fn store(&self) -> &Arc<MailStore> {
        &self.store
    }

    /// The message trace.
    pub fn trace(&self) -> &Arc<TraceSink> {
        &self.trace
    }

    /// The simulated clock.
    pub fn clock(&self) -> &Arc<SimClock> {
        &self.clock
    }

    /// Recipients waiting for a retry.
    pub fn queued(&self) -> Vec<QueueEntry> {
        self.queue.lock().expect("queue lock").clone()
    }

    /// Puts recipients in the retry queue as they are (used by the queue benchmark and by tools that
    /// restore a queue).
    pub fn defer(&self, entry: QueueEntry) {
        self.queue.lock().expect("queue lock").push(entry);
        self.queue_changed.notify_waiters();
    }

    /// Attempts running right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn ctx<'a>(&self, tenant: &'a Tenant, session_id: u64) -> ReplyContext<'a> {
        ReplyContext { host: &tenant.settings.server_name, now: self.clock.now(), session_id }
    }

    fn event(
        &self,
        message: &AcceptedMessage,
        event: Event,
        recipient: Option<&EmailAddress>,
        detail: String,
    ) -> TraceEvent {
        TraceEvent {
            at: self.clock.now(),
            event,
            message_id: message.message_id.clone(),
            internal_id: Some(message.internal_id),
            sender: message.envelope.sender.as_ref().map_or("<>".to_string(), |s| s.to_string()),
            recipient: recipient.map(|r| r.to_string()),
            from_ip: Some(message.peer.ip),
            to_ip: None,
            connector: message.verdict.connector().map(str::to_string),
            detail,
            data: None,
        }
    }

    /// A message the session answered 250 for.
    pub fn accept(self: &Arc<Self>, message: AcceptedMessage) {
        let tenant = self.tenant.get();
        let message = Arc::new(message);
        let direction = match &message.verdict {
            InboundVerdict::Accepted { direction: Direction::Originating, .. } => "Originating",
            _ => "Incoming",
        };
        for rcpt in &message.envelope.recipients {
            let detail = format!("Received by {} ({direction})", tenant.settings.server_name);
            self.trace.record(self.event(&message, Event::Receive, Some(rcpt), detail));
        }
        // §5.3: a message that has travelled too far is failed here, before any routing.
        if let Some(kind) = check_loop(&message.data, &self.retry) {
            let reply = kind.reply(&self.ctx(&tenant, message.internal_id));
            let failed = message.envelope.recipients.iter().map(|r| (r.clone(), reply.clone(), None)).collect();
            return self.fail(&message, failed, None);
        }
        let categorized: Vec<_> =
            message.envelope.recipients.iter().map(|r| (r.clone(), categorize(&tenant, r))).collect();
        let from_on_premises = mailsim_core::stage::inbound::from_on_premises(&tenant, &message.peer);
        let source = if from_on_premises { Source::OnPremises } else { Source::Elsewhere };
        for route in plan(&tenant, &categorized, source).routes {
            match route.hop {
                Hop::Mailbox => {
                    for rcpt in route.recipients {
                        self.store.deliver(rcpt.clone(), message.clone());
                        self.trace.record(self.event(
                            &message,
                            Event::Deliver,
                            Some(&rcpt),
                            "Delivered to mailbox".into(),
                        ));
                    }
                }
                Hop::Unroutable(kind) => {
                    let reply = kind.reply(&self.ctx(&tenant, message.internal_id));
                    let failed = route.recipients.into_iter().map(|r| (r, reply.clone(), None)).collect();
                    self.fail(&message, failed, None);
                }
                hop => {
                    let entry = QueueEntry {
                        message: message.clone(),
                        hop,
                        recipients: route.recipients,
                        attempts: 0,
                        retry_at: self.clock.now(),
                        last_error: None,
                    };
                    self.spawn_attempt(entry);
                }
            }
        }
    }

    /// Hands an entry to its hop's lane. Each next hop has a lane of pending entries served by at
    /// most [`MAX_CONNECTIONS_PER_HOP`] workers, each keeping its SMTP session open between
    /// messages (Postfix's per-destination concurrency and connection cache).
    fn spawn_attempt(self: &Arc<Self>, entry: QueueEntry) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let hop = entry.hop.clone();
        let start_worker = {
            let mut lanes = self.lanes.lock().expect("lanes lock");
            let lane = match lanes.iter_mut().position(|l| l.hop == hop) {
                Some(i) => &mut lanes[i],
                None => {
                    lanes.push(Lane { hop: hop.clone(), pending: VecDeque::new(), workers: 0 });
                    lanes.last_mut().expect("just pushed")
                }
            };
            lane.pending.push_back(entry);
            let start = lane.workers < MAX_CONNECTIONS_PER_HOP;
            if start {
                lane.workers += 1;
            }
            start
        };
        if start_worker {
            self.workers.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            tokio::spawn(async move { me.lane_worker(hop).await });
        }
    }

    async fn lane_worker(self: Arc<Self>, hop: Hop) {
        let mut connection = None;
        loop {
            let next = {
                let mut lanes = self.lanes.lock().expect("lanes lock");
                let i = lanes.iter().position(|l| l.hop == hop).expect("a worker's lane exists");
                match lanes[i].pending.pop_front() {
                    Some(entry) => Some(entry),
                    None => {
                        lanes[i].workers -= 1;
                        if lanes[i].workers == 0 {
                            lanes.swap_remove(i);
                        }
                        None
                    }
                }
            };
            let Some(entry) = next else { break };
            let outgoing = self.outgoing(&entry);
            let result = attempt(&self.outbound, &entry.hop, &outgoing, &entry.recipients, &mut connection).await;
            self.settle_attempt(entry, result);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.trace_changed();
        }
        if let Some(open) = connection {
            open.close().await;
        }
        self.workers.fetch_sub(1, Ordering::Relaxed);
        self.trace_changed();
    }

    /// The message as it leaves the organization: the §8.5 header firewall strips the
    /// organization headers, or (§3.1 CloudServicesMailEnabled) carries them across premises.
    fn outgoing(&self, entry: &QueueEntry) -> AcceptedMessage {
        let tenant = self.tenant.get();
        let cross_premises = entry
            .hop
            .connector()
            .and_then(|name| tenant.outbound_connectors.iter().find(|c| c.name == name))
            .is_some_and(|c| c.cloud_services_mail_enabled);
        let m = &entry.message;
        // Field by field, so the content is not copied once more before it is rewritten.
        AcceptedMessage {
            internal_id: m.internal_id,
            message_id: m.message_id.clone(),
            envelope: m.envelope.clone(),
            peer: m.peer.clone(),
            verdict: m.verdict.clone(),
            data: mailsim_core::headers::leaving(&m.data, cross_premises),
            received_at: m.received_at,
        }
    }

    fn trace_changed(&self) {
        self.queue_changed.notify_waiters();
    }

    fn settle_attempt(self: &Arc<Self>, mut entry: QueueEntry, result: Attempt) {
        entry.attempts += 1;
        let now = self.clock.now();
        let message = entry.message.clone();
        let to_ip = result.last.as_ref().map(|l| l.ip.clone());
        let connector = entry.hop.connector().map(str::to_string);
        let mut deferred = Vec::new();
        let mut failed = Vec::new();
        let mut last_error = None;
        let tenant = self.tenant.get();
        for (rcpt, reply) in result.replies {
            let ctx = self.ctx(&tenant, message.internal_id);
            let outcome = settle(reply, entry.attempts, message.received_at, now, &self.retry, &ctx);
            let (event, detail, data) = match &outcome {
                Outcome::Delivered { reply } => {
                    let via = result.last.as_ref().map_or(String::new(), |l| l.server.clone());
                    let tls = result.tls.as_deref().map_or("without TLS".to_string(), |t| format!("over {t}"));
                    (Event::Send, format!("Sent to {via} {tls}"), Some(reply.to_string()))
                }
                Outcome::Deferred { retry_at, reply } => (
                    Event::Defer,
                    format!("The last attempt to deliver the message encountered an error; next attempt at {retry_at}"),
                    Some(format!("LED={reply}")),
                ),
                Outcome::Failed { reply, last_error } => (
                    Event::Fail,
                    match last_error {
                        Some(led) => format!("Message expired; last error: {led}"),
                        None => "Delivery failed".to_string(),
                    },
                    Some(reply.to_string()),
                ),
            };
            let mut ev = self.event(&message, event, Some(&rcpt), detail);
            ev.to_ip = to_ip.clone();
            ev.connector = connector.clone().or(ev.connector);
            ev.data = data;
            self.trace.record(ev);
            match outcome {
                Outcome::Delivered { .. } => {}
                Outcome::Deferred { retry_at, reply } => {
                    entry.retry_at = retry_at;
                    last_error = Some(reply);
                    deferred.push(rcpt);
                }
                Outcome::Failed { reply, .. } => {
                    failed.push((rcpt, reply, result.last.as_ref().map(|l| l.server.clone())))
                }
            }
        }
        if let Some(t) = &result.transcript {
            tracing::debug!(transcript = %t, "outbound conversation");
        }
        if !deferred.is_empty() {
            entry.recipients = deferred;
            entry.last_error = last_error;
            self.defer(entry);
        }
        if !failed.is_empty() {
            self.fail(&message, failed, Some(now));
        }
    }

    /// Fails recipients (already traced or not) and sends the sender an NDR through the pipeline.
    fn fail(
        self: &Arc<Self>,
        message: &Arc<AcceptedMessage>,
        failed: Vec<(EmailAddress, Reply, Option<String>)>,
        at: Option<Timestamp>,
    ) {
        let mut failures = Vec::new();
        for (rcpt, reply, remote_mta) in failed {
            if at.is_none() {
                let mut ev = self.event(message, Event::Fail, Some(&rcpt), "Delivery failed".into());
                ev.data = Some(reply.to_string());
                self.trace.record(ev);
            }
            failures.push(FailedRecipient { recipient: rcpt, reply, remote_mta, last_attempt: at });
        }
        let tenant = self.tenant.get();
        let ndr_id = self.ndr_ids.fetch_add(1, Ordering::Relaxed) | (message.internal_id << 16);
        let postmaster = format!(
            "postmaster@{}",
            tenant.accepted_domains.first().map_or("mailsim.test".to_string(), |d| d.name.to_string())
        );
        let input = NdrInput {
            original: message,
            failures: &failures,
            reporting_mta: &tenant.settings.server_name,
            postmaster: &postmaster,
            now: self.clock.now(),
            ndr_id,
        };
        // RFC 3461 §6.2: never an NDR for a message from the null sender (compose returns None).
        let Some(ndr) = compose(&input) else { return };
        let mut ev =
            self.event(message, Event::Dsn, None, format!("NDR {} generated for {}", ndr.message_id, ndr.recipient));
        ev.recipient = message.envelope.sender.as_ref().map(|s| s.to_string());
        self.trace.record(ev);
        let ndr_message = AcceptedMessage {
            internal_id: ndr_id,
            message_id: ndr.message_id,
            envelope: Envelope { sender: None, recipients: vec![ndr.recipient], ..Envelope::default() },
            peer: message.peer.clone(),
            verdict: InboundVerdict::Accepted {
                connector: None,
                direction: Direction::Originating,
                internal: true,
                relay_allowed: true,
                checks: Vec::new(),
            },
            data: ndr.data,
            received_at: self.clock.now(),
        };
        self.accept(ndr_message);
    }

    /// A refusal during the session, recorded in the trace (exo-semantics §8.1 recommendation:
    /// status Failed, one FAIL event with the reply text, FromIP set, ToIP blank).
    pub fn refused(&self, refusal: Refusal) {
        let reply = refusal.reply.to_string();
        let sender = refusal.envelope.sender.as_ref().map_or("<>".to_string(), |s| s.to_string());
        for rcpt in &refusal.envelope.recipients {
            self.trace.record(TraceEvent {
                at: refusal.at,
                event: Event::Fail,
                message_id: String::new(),
                internal_id: None,
                sender: sender.clone(),
                recipient: Some(rcpt.to_string()),
                from_ip: Some(refusal.peer.ip),
                to_ip: None,
                connector: refusal.rejection.as_ref().and_then(|r| r.connector.clone()),
                detail: match &refusal.rejection {
                    Some(r) => format!("Rejected at {}: {}", refusal.stage, r.reason),
                    None => format!("Rejected at {}", refusal.stage),
                },
                data: Some(reply.clone()),
            });
        }
        self.refusals.lock().expect("refusals lock").push(refusal);
    }

    /// Refusals so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusals lock").clone()
    }

    /// Retries deferred recipients when they are due, in simulated time. Runs until the task is
    /// dropped.
    pub async fn run_queue(self: Arc<Self>) {
        loop {
            let changed = self.queue_changed.notified();
            let now = self.clock.now();
            let (due, next) = {
                let mut queue = self.queue.lock().expect("queue lock");
                let (due, wait): (Vec<_>, Vec<_>) = queue.drain(..).partition(|e| e.retry_at <= now);
                *queue = wait;
                (due, queue.iter().map(|e| e.retry_at).min())
            };
            for entry in due {
                self.spawn_attempt(entry);
            }
            let next = next.unwrap_or(now + std::time::Duration::from_secs(3600));
            tokio::select! {
                _ = self.clock.sleep_until(next) => {}
                _ = changed => {}
            }
        }
    }

    /// Waits until nothing is in flight, every outbound session is closed and nothing queued is
    /// due, or `timeout` passes. Returns whether the pipeline went quiet.
    pub async fn settled(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.queue_changed.notified();
            let now = self.clock.now();
            let due = self.queue.lock().expect("queue lock").iter().any(|e| e.retry_at <= now);
            if self.in_flight() == 0 && self.workers.load(Ordering::Relaxed) == 0 && !due {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}
