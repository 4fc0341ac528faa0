//! The only sequencer: what happens to a message after the tenant accepted it.
//!
//! accept → loop check → mail flow rules (per fork: reject, delete, quarantine, or on) →
//! categorize → plan → per route: deliver locally, fail (unroutable), or
//! attempt over SMTP on the hop's lane → settle each recipient → queue the deferred ones, bounce
//! the failed ones with an NDR that travels the same pipeline. Every decision is a core call and
//! every trace event is built in the core from its result; this file records it and does the I/O
//! the result asks for. The retry queue is [`crate::queue`], the per-hop lanes [`crate::lanes`].
//! With a [`Spool`] (the durable queue), each point where a recipient's state changes (accepted,
//! deferred, finished) is journaled there, and [`Pipeline::resume`] takes back what a previous run
//! left unfinished.

use std::sync::{Arc, Mutex};

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::ids::IdSource;
use mailsim_core::ndr::{FailedRecipient, NdrInput, compose, postmaster};
use mailsim_core::reply::{Reply, ReplyContext};
use mailsim_core::session::Refusal;
use mailsim_core::stage::attempt::recipient_replies;
use mailsim_core::stage::categorize::categorize;
use mailsim_core::stage::outcome::{Outcome, RetryPolicy, check_loop, settle};
use mailsim_core::stage::route::{Hop, RuleRoute, Source, plan_routed};
use mailsim_core::stage::rules::{Fate, evaluate};
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;
use mailsim_core::trace::TraceEvent;

use crate::clock::SimClock;
use crate::lanes::Lanes;
pub use crate::lanes::MAX_CONNECTIONS_PER_HOP;
use crate::outbound::{Attempt, OutboundConfig, attempt};
use crate::queue::Queue;
pub use crate::queue::QueueEntry;
use crate::spool::{MessageMeta, Recovered, Spool, SpoolError};
use crate::store::MailStore;
use crate::trace_sink::TraceSink;

/// Takes accepted messages and session refusals from connections and sees each recipient through.
#[derive(Debug)]
pub struct Pipeline {
    tenant: Arc<crate::shared::Shared<Tenant>>,
    store: Arc<MailStore>,
    trace: Arc<TraceSink>,
    clock: Arc<SimClock>,
    outbound: Arc<OutboundConfig>,
    retry: RetryPolicy,
    queue: Queue,
    lanes: Lanes,
    ids: Arc<IdSource>,
    refusals: Mutex<Refusals>,
    spool: Option<Arc<Spool>>,
}

/// Session refusals held in memory: the latest [`Pipeline::MAX_REFUSALS`]; older ones are evicted
/// and counted (they stay in the trace and, under a state directory, in `trace.jsonl`).
#[derive(Debug, Default)]
struct Refusals {
    held: std::collections::VecDeque<Refusal>,
    evicted: u64,
}

impl Pipeline {
    /// Session refusals held in memory.
    pub const MAX_REFUSALS: usize = 1_000;

    /// A pipeline; call [`Pipeline::run_queue`] in a task to retry deferred recipients.
    pub fn new(
        tenant: Arc<crate::shared::Shared<Tenant>>,
        store: Arc<MailStore>,
        trace: Arc<TraceSink>,
        clock: Arc<SimClock>,
        outbound: Arc<OutboundConfig>,
        retry: RetryPolicy,
    ) -> Self {
        let ids = Arc::new(crate::ids::ephemeral(clock.now()));
        Self {
            tenant,
            store,
            trace,
            clock,
            outbound,
            retry,
            queue: Queue::new(),
            lanes: Lanes::new(),
            ids,
            refusals: Mutex::default(),
            spool: None,
        }
    }

    /// Journals every recipient's state in `spool` (the durable queue).
    pub fn with_spool(mut self, spool: Arc<Spool>) -> Self {
        // One thread writes, in this order, what a kill must find in this order: a recipient's
        // mailbox copy, then its trace row, then its `Finished` record (a restart then neither loses
        // a copy nor shows one twice in the trace).
        let (trace, store) = (Arc::downgrade(&self.trace), Arc::downgrade(&self.store));
        spool.write_first(move || {
            if let Some(store) = store.upgrade() {
                let _ = store.write_pending();
            }
            if let Some(trace) = trace.upgrade() {
                trace.write_pending();
            }
        });
        self.trace.write_behind(spool.write_behind());
        self.store.write_behind(spool.write_behind());
        self.spool = Some(spool);
        self
    }

    /// The durable queue, when there is one.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// Recipients waiting in the retry queue, and attempts queued or running on a lane: what a
    /// stop without a spool drops.
    pub fn unfinished(&self) -> (usize, u64) {
        (self.queue.recipients(), self.lanes.in_flight())
    }

    /// Takes ids from `ids` (the world's source, e.g. [`crate::ids::persistent`]) instead of the
    /// one made from the start time.
    pub fn with_ids(mut self, ids: Arc<IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// The world's id source: sessions, messages and NDRs take their ids from it.
    pub fn ids(&self) -> &Arc<IdSource> {
        &self.ids
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

    /// What outbound attempts use (`mailsim validate-outbound` makes its own attempts with it).
    pub fn outbound(&self) -> &Arc<OutboundConfig> {
        &self.outbound
    }

    /// Recipients waiting for a retry.
    pub fn queued(&self) -> Vec<QueueEntry> {
        self.queue.entries()
    }

    /// Puts recipients in the retry queue as they are (used by the queue benchmark and by tools that
    /// restore a queue).
    pub fn defer(&self, entry: QueueEntry) {
        self.queue.defer(entry);
    }

    /// Makes the queued entries `which` selects due now (the HTTP API's retry); returns how many.
    /// The queue then attempts them as it would any due entry.
    pub fn retry_now(&self, which: impl Fn(&QueueEntry) -> bool) -> usize {
        self.queue.retry_now(self.clock.now(), which)
    }

    /// Attempts running right now.
    pub fn in_flight(&self) -> u64 {
        self.lanes.in_flight()
    }

    fn ctx<'a>(&self, tenant: &'a Tenant, session_id: u64) -> ReplyContext<'a> {
        ReplyContext { host: &tenant.settings.server_name, now: self.clock.now(), session_id }
    }

    /// A message the session answered 250 for. With a spool, it is journaled without waiting for
    /// the disk; the listener uses [`Pipeline::accept_durable`].
    pub fn accept(self: &Arc<Self>, message: AcceptedMessage) {
        if let Some(spool) = &self.spool {
            spool.accept_nowait(
                &MessageMeta::of(&message, self.planned_from_on_premises(&message), None),
                &message.data,
            );
        }
        self.route_accepted(message);
    }

    /// A message the session is about to answer 250 for: on disk first when there is a spool (the
    /// `250` is sent once this returns `Ok`), then routed as [`Pipeline::accept`] does. On `Err`
    /// nothing happened to the message and the session must not answer 250.
    pub async fn accept_durable(self: &Arc<Self>, message: AcceptedMessage) -> Result<(), SpoolError> {
        if let Some(spool) = &self.spool {
            spool
                .accept(&MessageMeta::of(&message, self.planned_from_on_premises(&message), None), &message.data)
                .await?;
        }
        self.route_accepted(message);
        Ok(())
    }

    fn planned_from_on_premises(&self, message: &AcceptedMessage) -> bool {
        mailsim_core::stage::inbound::from_on_premises(&self.tenant.get(), &message.peer)
    }

    /// Journals recipients done (no-op without a spool).
    fn finished<'a>(&self, id: u64, recipients: impl IntoIterator<Item = &'a EmailAddress>) {
        if let Some(spool) = &self.spool {
            spool.finished(id, recipients);
        }
    }

    /// Takes back what a previous run left unfinished (from [`Spool::open`]): each recipient is
    /// routed again with the tenant as it is now and queued with its attempts, next retry and last
    /// error; one that was in flight is attempted at once. Mail flow rules are not run again: the
    /// journal holds the message as accepted, and its recipients route as if no rule chose.
    pub fn resume(self: &Arc<Self>, recovered: Vec<Recovered>) {
        let tenant = self.tenant.get();
        let now = self.clock.now();
        for r in recovered {
            let message = Arc::new(r.message);
            let source = if r.from_on_premises { Source::OnPremises } else { Source::Elsewhere };
            let recipients: Vec<_> = r.pending.iter().map(|(rcpt, _)| rcpt.clone()).collect();
            self.route(&tenant, &message, recipients, source, &RuleRoute::default(), |hop, recipients| {
                // Recipients of one route that share a state travel together, as they did before.
                let mut groups: Vec<QueueEntry> = Vec::new();
                for rcpt in recipients {
                    let Some((_, state)) = r.pending.iter().find(|(p, _)| p == &rcpt) else { continue };
                    let retry_at = state.retry_at.unwrap_or(now);
                    match groups.iter_mut().find(|g| {
                        g.attempts == state.attempts && g.retry_at == retry_at && g.last_error == state.last_error
                    }) {
                        Some(g) => g.recipients.push(rcpt),
                        None => groups.push(QueueEntry {
                            message: message.clone(),
                            hop: hop.clone(),
                            recipients: vec![rcpt],
                            attempts: state.attempts,
                            retry_at,
                            last_error: state.last_error.clone(),
                        }),
                    }
                }
                for entry in groups {
                    self.queue.defer(entry);
                }
            });
        }
    }

    fn route_accepted(self: &Arc<Self>, message: AcceptedMessage) {
        let tenant = self.tenant.get();
        let message = Arc::new(message);
        for rcpt in &message.envelope.recipients {
            self.trace.record(TraceEvent::received(&message, rcpt, &tenant.settings.server_name, self.clock.now()));
        }
        // §5.3: a message that has travelled too far is failed here, before any routing.
        if let Some(kind) = check_loop(&message.data, &self.retry) {
            let reply = kind.reply(&self.ctx(&tenant, message.internal_id));
            let failed = message.envelope.recipients.iter().map(|r| (r.clone(), reply.clone(), None)).collect();
            self.fail(&message, failed, None);
            return self.finished(message.internal_id, &message.envelope.recipients);
        }
        let source = if mailsim_core::stage::inbound::from_on_premises(&tenant, &message.peer) {
            Source::OnPremises
        } else {
            Source::Elsewhere
        };
        // §14.5: a DMARC failure the anti-phishing policy quarantines is held, not routed.
        if message.auth.as_ref().is_some_and(|a| a.disposition() == mailsim_core::auth::Disposition::Quarantine) {
            for rcpt in &message.envelope.recipients {
                if let Some(ev) = TraceEvent::auth_quarantined(&message, rcpt, self.clock.now()) {
                    self.trace.record(ev);
                }
                self.store.quarantine(rcpt.clone(), message.clone());
            }
            return self.finished(message.internal_id, &message.envelope.recipients);
        }
        // §13.1: mail flow rules between acceptance and categorize; the shell carries out each fork.
        let now = self.clock.now();
        let rules = evaluate(&message, &tenant, now);
        for ev in TraceEvent::rules_applied(&message, &rules, now) {
            self.trace.record(ev);
        }
        for fork in rules.forks {
            let copy = match fork.data {
                Some(data) => Arc::new(message.with_data(data)),
                None => message.clone(),
            };
            let ctx = self.ctx(&tenant, message.internal_id);
            for rcpt in &fork.recipients {
                if let Some(ev) = TraceEvent::rule_fate(&copy, rcpt, &fork.fate, &ctx) {
                    self.trace.record(ev);
                }
            }
            match fork.fate {
                Fate::Route { connector, require_tls } => {
                    let rule = RuleRoute { connector, require_tls };
                    self.route(&tenant, &copy, fork.recipients, source, &rule, |hop, recipients| {
                        let entry = QueueEntry {
                            message: copy.clone(),
                            hop,
                            recipients,
                            attempts: 0,
                            retry_at: self.clock.now(),
                            last_error: None,
                        };
                        self.spawn_attempt(entry);
                    })
                }
                // The sender's NDR returns the message as it was sent, not a rule's rewrite.
                Fate::Reject(kind) => {
                    let reply = kind.reply(&ctx);
                    let failed = fork.recipients.iter().map(|r| (r.clone(), reply.clone(), None)).collect();
                    self.fail(&message, failed, Some(now));
                    self.finished(message.internal_id, &fork.recipients);
                }
                Fate::Delete => self.finished(message.internal_id, &fork.recipients),
                Fate::Quarantine => {
                    for rcpt in &fork.recipients {
                        self.store.quarantine(rcpt.clone(), copy.clone());
                    }
                    self.finished(message.internal_id, &fork.recipients);
                }
            }
        }
    }

    /// Categorizes and routes `recipients` of `message` (one fork), as a rule asked (§3.2 step 0),
    /// and carries out the local routes (mailbox, unroutable); the routes that need an SMTP attempt
    /// go to `remote`.
    fn route(
        self: &Arc<Self>,
        tenant: &Tenant,
        message: &Arc<AcceptedMessage>,
        recipients: Vec<EmailAddress>,
        source: Source,
        rule: &RuleRoute,
        mut remote: impl FnMut(Hop, Vec<EmailAddress>),
    ) {
        let categorized: Vec<_> = recipients.iter().map(|r| (r.clone(), categorize(tenant, r))).collect();
        let plan = plan_routed(tenant, &categorized, source, rule);
        for warning in &plan.warnings {
            tracing::warn!(%warning, "transport rule routing");
            for rcpt in &recipients {
                self.trace.record(TraceEvent::rule_route_warning(message, rcpt, warning, self.clock.now()));
            }
        }
        for route in plan.routes {
            match route.hop {
                Hop::Mailbox => {
                    for rcpt in &route.recipients {
                        // A store error is logged and counted by the store; the copy stays in memory.
                        let _ = self.store.deliver(rcpt.clone(), message.clone());
                        self.trace.record(TraceEvent::delivered_to_mailbox(message, rcpt, self.clock.now()));
                    }
                    self.finished(message.internal_id, &route.recipients);
                }
                Hop::Unroutable(kind) => {
                    let reply = kind.reply(&self.ctx(tenant, message.internal_id));
                    let failed = route.recipients.iter().map(|r| (r.clone(), reply.clone(), None)).collect();
                    self.fail(message, failed, None);
                    self.finished(message.internal_id, &route.recipients);
                }
                hop => remote(hop, route.recipients),
            }
        }
    }

    /// Hands an entry to its hop's lane, starting a worker when the lane has room for one.
    fn spawn_attempt(self: &Arc<Self>, entry: QueueEntry) {
        let hop = entry.hop.clone();
        if self.lanes.push(entry) {
            let me = self.clone();
            tokio::spawn(async move { me.lane_worker(hop).await });
        }
    }

    /// Serves `hop`'s lane: attempt, settle, next, on one SMTP session kept open between messages.
    async fn lane_worker(self: Arc<Self>, hop: Hop) {
        let mut connection = None;
        while let Some(entry) = self.lanes.next(&hop) {
            let outgoing = outgoing(&entry);
            let result = attempt(&self.outbound, &entry.hop, &outgoing, &entry.recipients, &mut connection).await;
            self.settle_attempt(entry, result);
            self.lanes.done();
            self.queue.notify();
        }
        if let Some(open) = connection {
            open.close().await;
        }
        self.lanes.retire();
        self.queue.notify();
    }

    fn settle_attempt(self: &Arc<Self>, mut entry: QueueEntry, result: Attempt) {
        entry.attempts += 1;
        let now = self.clock.now();
        let message = entry.message.clone();
        let tenant = self.tenant.get();
        let ctx = self.ctx(&tenant, message.internal_id);
        let replies = recipient_replies(&result.result, result.last.as_ref(), entry.recipients.len(), &ctx);
        let mut deferred = Vec::new();
        let mut failed = Vec::new();
        let mut done = Vec::new();
        let mut last_error = None;
        for (rcpt, reply) in entry.recipients.iter().zip(replies) {
            let ctx = self.ctx(&tenant, message.internal_id);
            let outcome = settle(reply, entry.attempts, message.received_at, now, &self.retry, &ctx);
            self.trace.record(TraceEvent::settled(
                &message,
                rcpt,
                &outcome,
                result.last.as_ref(),
                result.tls.as_deref(),
                entry.hop.connector(),
                ctx.now,
            ));
            match outcome {
                Outcome::Delivered { .. } => done.push(rcpt.clone()),
                Outcome::Deferred { retry_at, reply } => {
                    entry.retry_at = retry_at;
                    last_error = Some(reply);
                    deferred.push(rcpt.clone());
                }
                Outcome::Failed { reply, .. } => {
                    done.push(rcpt.clone());
                    failed.push((rcpt.clone(), reply, result.last.as_ref().map(|l| l.server.clone())))
                }
            }
        }
        if let Some(t) = &result.transcript {
            tracing::debug!(transcript = %t, "outbound conversation");
        }
        if !deferred.is_empty() {
            entry.recipients = deferred;
            entry.last_error = last_error;
            if let Some(spool) = &self.spool {
                spool.deferred(
                    message.internal_id,
                    &entry.recipients,
                    entry.attempts,
                    entry.retry_at,
                    now,
                    entry.last_error.as_ref(),
                );
            }
            self.defer(entry);
        }
        if !failed.is_empty() {
            self.fail(&message, failed, Some(now));
        }
        // After the NDR was journaled (in `fail`), so that a kill in between loses neither.
        self.finished(message.internal_id, &done);
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
                self.trace.record(TraceEvent::failed(message, &rcpt, &reply, self.clock.now()));
            }
            failures.push(FailedRecipient { recipient: rcpt, reply, remote_mta, last_attempt: at });
        }
        let tenant = self.tenant.get();
        let ndr_id = self.ids.next_id();
        let postmaster = postmaster(&tenant);
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
        self.trace.record(TraceEvent::ndr_generated(message, &ndr.message_id, &ndr.recipient, self.clock.now()));
        let ndr = ndr.into_accepted(ndr_id, message, self.clock.now());
        if let Some(spool) = &self.spool {
            spool.accept_nowait(
                &MessageMeta::of(&ndr, self.planned_from_on_premises(&ndr), Some(message.internal_id)),
                &ndr.data,
            );
        }
        self.route_accepted(ndr);
    }

    /// A refusal during the session, recorded in the trace (exo-behaviour §8.1).
    pub fn refused(&self, refusal: Refusal) {
        for ev in TraceEvent::refused(&refusal) {
            self.trace.record(ev);
        }
        let mut refusals = self.refusals.lock().expect("refusals lock");
        refusals.held.push_back(refusal);
        if refusals.held.len() > Self::MAX_REFUSALS {
            refusals.held.pop_front();
            refusals.evicted += 1;
        }
    }

    /// Refusals held (the latest [`Pipeline::MAX_REFUSALS`]).
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusals lock").held.iter().cloned().collect()
    }

    /// Refusals evicted from memory so far.
    pub fn refusals_evicted(&self) -> u64 {
        self.refusals.lock().expect("refusals lock").evicted
    }

    /// Retries deferred recipients when they are due, in simulated time. Runs until the task is
    /// dropped.
    pub async fn run_queue(self: Arc<Self>) {
        let me = self.clone();
        self.queue.run(&self.clock, |entry| me.spawn_attempt(entry)).await;
    }

    /// Waits until nothing is in flight, every outbound session is closed and nothing queued is
    /// due, or `timeout` passes. Returns whether the pipeline went quiet.
    pub async fn settled(&self, timeout: std::time::Duration) -> bool {
        self.queue.settled(&self.clock, || self.lanes.idle(), timeout).await
    }
}

/// The message as it leaves the organization: the §8.5 header firewall strips the organization
/// headers, or (§3.1 CloudServicesMailEnabled, carried on the hop) keeps them across premises.
fn outgoing(entry: &QueueEntry) -> AcceptedMessage {
    entry.message.with_data(mailsim_core::headers::leaving(&entry.message.data, entry.hop.cross_premises()))
}
