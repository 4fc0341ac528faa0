//! Assertions on a running world: the reply to a send, the connector it was attributed to, what
//! reached a mailbox or a peer, a recipient's trace status, NDRs, trace events and the queue.
//!
//! Scenario files compile their `expect` tables to these values; a Rust test can build them as
//! well and call [`SendCheck::check`] / [`WorldCheck::check`], or use the helpers
//! ([`parse_ndr`], [`recipient_status`]) directly. World checks wait (bounded) for what they
//! expect instead of failing at once: mail to a peer or a relayed message may still be on its way
//! when the tenant has settled.
//!
//! ```no_run
//! # async fn demo(sim: &mailsim::sim::Simulation) {
//! use mailsim::scenario::expect::{DEFAULT_WAIT, WorldCheck};
//! let check = WorldCheck::Mailbox { address: "alice@contoso.test".into(), count: Some(1), contains: None };
//! if let Err(mismatch) = check.check(sim, DEFAULT_WAIT).await {
//!     panic!("{mismatch}");
//! }
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mailsim_core::ndr::parse_delivery_status;
use mailsim_core::trace::{Event, Status, TraceEvent};
use tokio::time::Instant;

use crate::sim::{SendOutcome, Simulation};

/// How long a world expectation waits for what it expects by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The peer connections shown when a peer expectation fails (the most recent ones).
const PEER_TRANSCRIPTS_SHOWN: usize = 3;
/// Trace events shown when a trace-based expectation fails (the most recent ones).
const TRACE_EVENTS_SHOWN: usize = 20;

/// One expectation of a step, and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// The field it came from, e.g. `step[2].expect.reply`.
    pub field: String,
    /// 1-based line of its value in the scenario file.
    pub line: usize,
    /// What is checked.
    pub check: Check,
}

/// An expectation about the step's own send, or about the world.
#[derive(Clone, Debug, PartialEq)]
pub enum Check {
    /// About the send of the same step.
    Send(SendCheck),
    /// About the world, after it settled.
    World(WorldCheck),
}

/// Expectations about one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendCheck {
    /// The final reply starts with this (code, enhanced code, text): `"550 5.7.51"`.
    Reply(String),
    /// The final reply (every line) contains this text.
    ReplyContains(String),
    /// The command the final reply answered: `CONNECT`, `EHLO`, `STARTTLS`, `MAIL`, `RCPT`, `DATA`
    /// or `END-OF-DATA`.
    Stage(String),
    /// The inbound connector the trace attributes the message (or the refusal) to; `None`: none.
    Connector(Option<String>),
    /// Whether the message was accepted (250 at end of data).
    Accepted(bool),
    /// The RCPT replies, in order, each a prefix: `["250", "550 5.4.1"]`.
    RcptReplies(Vec<String>),
}

/// Where an NDR is looked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdrPlace {
    /// A tenant mailbox.
    Mailbox(String),
    /// A host's receiving peer.
    Peer(String),
}

impl fmt::Display for NdrPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NdrPlace::Mailbox(a) => write!(f, "mailbox {a}"),
            NdrPlace::Peer(h) => write!(f, "peer {h}"),
        }
    }
}

/// Expectations about the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorldCheck {
    /// Messages in a tenant mailbox. `count`: exactly this many matching (default: at least one);
    /// `contains`: only messages containing this text count.
    Mailbox {
        /// The mailbox address.
        address: String,
        /// Exact number of matching messages; `None`: at least one.
        count: Option<usize>,
        /// Text the stored message must contain.
        contains: Option<String>,
    },
    /// Messages a host's peer received.
    Peer {
        /// The host's name.
        host: String,
        /// Exact number of matching messages; `None`: at least one.
        count: Option<usize>,
        /// Only messages with this envelope recipient count.
        rcpt: Option<String>,
        /// Only messages that arrived over TLS (`true`) or in plaintext (`false`) count.
        tls: Option<bool>,
        /// Text the message must contain.
        contains: Option<String>,
    },
    /// The trace status of a recipient: the last event of its latest message.
    Recipient {
        /// The recipient address.
        address: String,
        /// Expected status.
        status: Status,
        /// Text the last event's data (or, without data, its detail) contains.
        data_contains: Option<String>,
    },
    /// An RFC 3464 report arrived at a mailbox or peer.
    Ndr {
        /// Where.
        at: NdrPlace,
        /// A recipient group's `Status:` (e.g. `4.4.7`).
        status: Option<String>,
        /// The failed recipient the group names (`Final-Recipient` or `Original-Recipient`).
        recipient: Option<String>,
        /// Text anywhere in the NDR.
        contains: Option<String>,
    },
    /// Trace events.
    Trace {
        /// The event kind.
        event: Option<Event>,
        /// Its recipient.
        recipient: Option<String>,
        /// Its connector.
        connector: Option<String>,
        /// Text anywhere in the event as [`trace_line`] shows it (detail, data, connector, next hop).
        contains: Option<String>,
        /// Exact number of such events; `None`: at least one.
        count: Option<usize>,
        /// A `TRANSPORT RULE` event of this rule (by name, exo-behaviour §13.6).
        rule: Option<String>,
        /// The rule's mode in the event's `S:TRA=ETR|...|mode=` data (`Enforce`, `Audit`,
        /// `AuditAndNotify`).
        rule_mode: Option<String>,
    },
    /// Recipients waiting for a retry.
    Queued(usize),
    /// Authentication verdicts and stamped headers of the latest message for a recipient
    /// (exo-behaviour §14, [`super::auth_expect`]).
    Auth(super::auth_expect::AuthCheck),
}

/// A failed expectation: what was expected, what was found, and the SMTP lines that show why.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// What the expectation asked for.
    pub expected: String,
    /// What the world showed.
    pub actual: String,
    /// What [`Mismatch::transcript`] is (e.g. `SMTP transcript of the send from internet`).
    pub transcript_title: String,
    /// Transcript or trace lines.
    pub transcript: Vec<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "expected: {}", self.expected)?;
        write!(f, "actual:   {}", self.actual.replace('\n', "\n          "))?;
        if !self.transcript.is_empty() {
            write!(f, "\n{}:", self.transcript_title)?;
            for line in &self.transcript {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// What a send produced, for the expectations of its step.
#[derive(Clone, Debug)]
pub struct SendRecord {
    /// The sending host.
    pub host: String,
    /// The outcome, or why the conversation broke off (connection or TLS failure).
    pub outcome: Result<SendOutcome, String>,
    /// The trace events of this message (or of its refusal), once the world settled.
    pub events: Vec<TraceEvent>,
}

impl SendRecord {
    fn mismatch(&self, expected: String, actual: String) -> Mismatch {
        let transcript = match &self.outcome {
            Ok(o) => o.transcript.clone(),
            Err(_) => Vec::new(),
        };
        Mismatch {
            expected,
            actual,
            transcript_title: format!("SMTP transcript of the send from {}", self.host),
            transcript,
        }
    }
}

/// Whether a reply starts with `prefix` (its last line, or its first).
pub fn reply_matches(reply: &mailsim_testkit::sender::RawReply, prefix: &str) -> bool {
    reply.last_line().starts_with(prefix)
        || reply.lines.first().is_some_and(|l| format!("{} {l}", reply.code).starts_with(prefix))
}

impl SendCheck {
    /// Checks the send of the step.
    pub fn check(&self, send: &SendRecord) -> Result<(), Mismatch> {
        let outcome = match &send.outcome {
            Ok(o) => o,
            Err(e) => return Err(send.mismatch(self.describe(), format!("the send failed: {e}"))),
        };
        let fail = |actual: String| Err(send.mismatch(self.describe(), actual));
        match self {
            SendCheck::Reply(prefix) => {
                if !reply_matches(&outcome.final_reply, prefix) {
                    return fail(format!("{} (at {})", outcome.final_reply.wire(), outcome.stage));
                }
            }
            SendCheck::ReplyContains(text) => {
                if !outcome.final_reply.wire().contains(text.as_str()) {
                    return fail(format!("{} (at {})", outcome.final_reply.wire(), outcome.stage));
                }
            }
            SendCheck::Stage(stage) => {
                if !outcome.stage.eq_ignore_ascii_case(stage) {
                    return fail(format!("{} answered {}", outcome.stage, outcome.final_reply.last_line()));
                }
            }
            SendCheck::Accepted(accepted) => {
                if outcome.accepted() != *accepted {
                    let what = if outcome.accepted() { "accepted" } else { "not accepted" };
                    return fail(format!("{what}: {} (at {})", outcome.final_reply.last_line(), outcome.stage));
                }
            }
            SendCheck::RcptReplies(prefixes) => {
                let ok = prefixes.len() == outcome.rcpt_replies.len()
                    && prefixes.iter().zip(&outcome.rcpt_replies).all(|(p, r)| reply_matches(r, p));
                if !ok {
                    let got: Vec<String> = outcome.rcpt_replies.iter().map(|r| r.last_line()).collect();
                    return fail(format!("{got:?}"));
                }
            }
            SendCheck::Connector(expected) => {
                let actual = send.events.iter().find_map(|e| e.connector.clone());
                let same = match (expected, &actual) {
                    (Some(e), Some(a)) => e.eq_ignore_ascii_case(a),
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    let mut m = send.mismatch(
                        self.describe(),
                        match &actual {
                            Some(a) => format!("attributed to connector {a:?}"),
                            None if send.events.is_empty() => "no trace event for this message".to_string(),
                            None => "attributed to no connector".to_string(),
                        },
                    );
                    m.actual.push_str(&format!("\n{}", outcome.final_reply.last_line()));
                    for e in &send.events {
                        m.actual.push_str(&format!("\ntrace: {}", trace_line(e)));
                    }
                    return Err(m);
                }
            }
        }
        Ok(())
    }

    /// What the check asks for, in words.
    pub fn describe(&self) -> String {
        match self {
            SendCheck::Reply(p) => format!("final reply starting with {p:?}"),
            SendCheck::ReplyContains(t) => format!("final reply containing {t:?}"),
            SendCheck::Stage(s) => format!("final reply at {}", s.to_ascii_uppercase()),
            SendCheck::Connector(Some(c)) => format!("attributed to inbound connector {c:?}"),
            SendCheck::Connector(None) => "attributed to no inbound connector".to_string(),
            SendCheck::Accepted(true) => "the message is accepted".to_string(),
            SendCheck::Accepted(false) => "the message is not accepted".to_string(),
            SendCheck::RcptReplies(r) => format!("RCPT replies {r:?}"),
        }
    }
}

/// One recipient of an RFC 3464 report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdrRecipient {
    /// `Final-Recipient` without its address type.
    pub final_recipient: String,
    /// `Original-Recipient` without its address type, if present.
    pub original_recipient: Option<String>,
    /// `Action`.
    pub action: String,
    /// `Status`, e.g. `5.4.1`.
    pub status: String,
    /// `Diagnostic-Code`, if present.
    pub diagnostic: Option<String>,
}

/// An NDR read back: its recipient groups and its human-readable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdrReport {
    /// The Subject header.
    pub subject: String,
    /// The text part the end user reads.
    pub text: String,
    /// One entry per recipient group.
    pub recipients: Vec<NdrRecipient>,
}

/// Reads a message as an RFC 3464 delivery status notification; `None` when it is not one.
pub fn parse_ndr(data: &[u8]) -> Option<NdrReport> {
    let message = MessageParser::default().parse(data)?;
    let ct = message.root_part().content_type()?;
    if !(ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report")))
    {
        return None;
    }
    let status = message.parts.iter().find(|p| p.is_content_type("message", "delivery-status"))?;
    let groups = parse_delivery_status(&String::from_utf8_lossy(status.contents()));
    let field = |group: &[(String, String)], name: &str| {
        group.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let strip_type = |v: String| match v.split_once(';') {
        Some((_, addr)) => addr.trim().to_string(),
        None => v,
    };
    let recipients = groups
        .iter()
        .skip(1)
        .map(|g| NdrRecipient {
            final_recipient: field(g, "Final-Recipient").map(strip_type).unwrap_or_default(),
            original_recipient: field(g, "Original-Recipient").map(strip_type),
            action: field(g, "Action").unwrap_or_default(),
            status: field(g, "Status").unwrap_or_default(),
            diagnostic: field(g, "Diagnostic-Code"),
        })
        .collect();
    let text = message
        .parts
        .iter()
        .find(|p| p.is_content_type("text", "plain"))
        .and_then(|p| p.text_contents())
        .unwrap_or_default()
        .to_string();
    Some(NdrReport { subject: message.subject().unwrap_or_default().to_string(), text, recipients })
}

/// The trace status of `address`: that of its latest message (the one whose receipt or refusal
/// came last), with the event that decides it ([`mailsim_core::trace::deciding_event`]).
pub fn recipient_status<'a>(events: &'a [TraceEvent], address: &str) -> Option<(Status, &'a TraceEvent)> {
    let mine: Vec<&TraceEvent> =
        events.iter().filter(|e| e.recipient.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(address))).collect();
    let latest = mine.iter().rev().find(|e| e.event == Event::Receive || e.message_id.is_empty())?;
    let last = mailsim_core::trace::deciding_event(mine.iter().copied().filter(|e| e.message_id == latest.message_id))?;
    Some((last.event.status(), last))
}

/// One trace event on one line, as failure reports show it.
pub fn trace_line(e: &TraceEvent) -> String {
    let event = format!("{:?}", e.event).to_ascii_uppercase();
    let id = if e.message_id.is_empty() { "(refused in the session)" } else { e.message_id.as_str() };
    let mut line = format!("{event} {id}");
    if let Some(r) = &e.recipient {
        line.push_str(&format!(" rcpt={r}"));
    }
    if let Some(c) = &e.connector {
        line.push_str(&format!(" connector={c:?}"));
    }
    if let Some(ip) = &e.to_ip {
        line.push_str(&format!(" to={ip}"));
    }
    line.push_str(&format!(": {}", e.detail));
    if let Some(d) = &e.data {
        line.push_str(&format!(" [{d}]"));
    }
    line
}

/// The rule a `TRANSPORT RULE` event names (`Transport rule: '<name>', ID: ...`, §13.6).
pub fn rule_of(e: &TraceEvent) -> Option<&str> {
    e.detail.strip_prefix("Transport rule: '")?.split_once("', ID: (").map(|(name, _)| name)
}

fn last_events(events: &[TraceEvent], filter: impl Fn(&TraceEvent) -> bool) -> Vec<String> {
    let mine: Vec<&TraceEvent> = events.iter().filter(|e| filter(e)).collect();
    let skip = mine.len().saturating_sub(TRACE_EVENTS_SHOWN);
    mine[skip..].iter().map(|e| trace_line(e)).collect()
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

fn count_words(count: Option<usize>) -> String {
    match count {
        Some(n) => format!("exactly {n}"),
        None => "at least 1".to_string(),
    }
}

/// Whether `n` satisfies the count, and whether waiting could still change that (counts only grow).
fn count_state(count: Option<usize>, n: usize) -> (bool, bool) {
    match count {
        Some(c) => (n == c, n < c),
        None => (n >= 1, true),
    }
}

fn queue_lines(sim: &Simulation) -> Vec<String> {
    sim.endpoint()
        .pipeline()
        .queued()
        .iter()
        .map(|q| {
            let rcpts: Vec<String> = q.recipients.iter().map(|r| r.to_string()).collect();
            format!(
                "queued: {} after {} attempt(s), last error: {}",
                rcpts.join(", "),
                q.attempts,
                q.last_error.as_ref().map(|r| r.to_string()).unwrap_or_else(|| "none".to_string())
            )
        })
        .collect()
}

/// The result of one evaluation: passed, or the mismatch and whether waiting could help.
type Evaluation = Result<(), (Mismatch, bool)>;

impl WorldCheck {
    /// Checks the world, waiting up to `wait` for the expected state.
    pub async fn check(&self, sim: &Simulation, wait: Duration) -> Result<(), Mismatch> {
        let deadline = Instant::now() + wait;
        loop {
            let marker = self.marker(sim);
            match self.evaluate(sim) {
                Ok(()) => return Ok(()),
                Err((m, false)) => return Err(m),
                Err((m, true)) => {
                    if Instant::now() >= deadline {
                        return Err(m);
                    }
                    self.wait_for_change(sim, marker, deadline).await;
                    if Instant::now() >= deadline {
                        return self.evaluate(sim).map_err(|(m, _)| m);
                    }
                }
            }
        }
    }

    /// How much of what this check watches exists now (messages or trace events).
    fn marker(&self, sim: &Simulation) -> usize {
        match self {
            WorldCheck::Mailbox { address, .. } | WorldCheck::Ndr { at: NdrPlace::Mailbox(address), .. } => {
                sim.mailbox(address).len()
            }
            WorldCheck::Peer { host, .. } | WorldCheck::Ndr { at: NdrPlace::Peer(host), .. } => {
                sim.peer(host).map(|p| p.inbox().len()).unwrap_or(0)
            }
            WorldCheck::Recipient { .. } | WorldCheck::Trace { .. } | WorldCheck::Queued(_) | WorldCheck::Auth(_) => {
                sim.endpoint().trace().events().len()
            }
        }
    }

    async fn wait_for_change(&self, sim: &Simulation, marker: usize, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self {
            WorldCheck::Mailbox { address, .. } | WorldCheck::Ndr { at: NdrPlace::Mailbox(address), .. } => {
                sim.endpoint().store().wait_for(address, marker + 1, left).await;
            }
            WorldCheck::Peer { host, .. } | WorldCheck::Ndr { at: NdrPlace::Peer(host), .. } => match sim.peer(host) {
                Ok(peer) => {
                    peer.wait_for_messages(marker + 1, left).await;
                }
                Err(_) => tokio::time::sleep_until(deadline).await,
            },
            WorldCheck::Recipient { .. } | WorldCheck::Trace { .. } | WorldCheck::Queued(_) | WorldCheck::Auth(_) => {
                sim.endpoint().trace().wait_until(left, |events| events.len() > marker).await;
            }
        }
        // A new trace event or message may come with more work; let the tenant finish it.
        sim.settled().await;
    }

    /// Checks the world as it is now, without waiting.
    pub fn check_now(&self, sim: &Simulation) -> Result<(), Mismatch> {
        self.evaluate(sim).map_err(|(m, _)| m)
    }

    /// What the check asks for, in words.
    pub fn describe(&self) -> String {
        match self {
            WorldCheck::Mailbox { address, count, contains } => {
                let mut s = format!("mailbox {address} holds {} message(s)", count_words(*count));
                if let Some(t) = contains {
                    s.push_str(&format!(" containing {t:?}"));
                }
                s
            }
            WorldCheck::Peer { host, count, rcpt, tls, contains } => {
                let mut s = format!("peer {host} received {} message(s)", count_words(*count));
                if let Some(r) = rcpt {
                    s.push_str(&format!(" for {r}"));
                }
                match tls {
                    Some(true) => s.push_str(" over TLS"),
                    Some(false) => s.push_str(" in plaintext"),
                    None => {}
                }
                if let Some(t) = contains {
                    s.push_str(&format!(" containing {t:?}"));
                }
                s
            }
            WorldCheck::Recipient { address, status, data_contains } => {
                let mut s = format!("recipient {address} has trace status {status:?}");
                if let Some(t) = data_contains {
                    s.push_str(&format!(" with data containing {t:?}"));
                }
                s
            }
            WorldCheck::Ndr { at, status, recipient, contains } => {
                let mut s = format!("an NDR at {at}");
                if let Some(st) = status {
                    s.push_str(&format!(" with status {st}"));
                }
                if let Some(r) = recipient {
                    s.push_str(&format!(" for {r}"));
                }
                if let Some(t) = contains {
                    s.push_str(&format!(" containing {t:?}"));
                }
                s
            }
            WorldCheck::Trace { event, recipient, connector, contains, count, rule, rule_mode } => {
                let event = match (event, rule.is_some() || rule_mode.is_some()) {
                    (None, true) => &Some(Event::TransportRule),
                    _ => event,
                };
                let mut s = format!(
                    "{} trace event(s) {}",
                    count_words(*count),
                    event.map(|e| format!("{e:?}").to_ascii_uppercase()).unwrap_or_else(|| "of any kind".to_string())
                );
                if let Some(r) = recipient {
                    s.push_str(&format!(" for {r}"));
                }
                if let Some(c) = connector {
                    s.push_str(&format!(" via connector {c:?}"));
                }
                if let Some(r) = rule {
                    s.push_str(&format!(" of rule {r:?}"));
                }
                if let Some(m) = rule_mode {
                    s.push_str(&format!(" in mode {m}"));
                }
                if let Some(t) = contains {
                    s.push_str(&format!(" containing {t:?}"));
                }
                s
            }
            WorldCheck::Queued(n) => format!("{} waiting in the queue", plural(*n, "recipient")),
            WorldCheck::Auth(check) => check.describe(),
        }
    }

    fn evaluate(&self, sim: &Simulation) -> Evaluation {
        let expected = self.describe();
        let mismatch = |actual: String, title: &str, transcript: Vec<String>| Mismatch {
            expected: expected.clone(),
            actual,
            transcript_title: title.to_string(),
            transcript,
        };
        if let WorldCheck::Auth(check) = self {
            return check.evaluate(sim);
        }
        let trace = sim.endpoint().trace().events();
        match self {
            WorldCheck::Mailbox { address, count, contains } => {
                let all = sim.mailbox(address);
                let n = all
                    .iter()
                    .filter(|m| contains.as_ref().is_none_or(|t| String::from_utf8_lossy(&m.data).contains(t.as_str())))
                    .count();
                let (ok, may_change) = count_state(*count, n);
                if ok {
                    return Ok(());
                }
                let mut actual = format!("{} in the mailbox", plural(all.len(), "message"));
                if contains.is_some() {
                    actual.push_str(&format!(", {n} containing the text"));
                }
                for m in &all {
                    actual.push_str(&format!(
                        "\n{} from <{}>",
                        m.message_id,
                        m.envelope.sender.as_ref().map(|s| s.to_string()).unwrap_or_default()
                    ));
                }
                let events =
                    last_events(&trace, |e| e.recipient.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(address)));
                Err((mismatch(actual, &format!("message trace for {address}"), events), may_change))
            }
            WorldCheck::Peer { host, count, rcpt, tls, contains } => {
                let peer = match sim.peer(host) {
                    Ok(p) => p,
                    Err(e) => return Err((mismatch(format!("{e:#}"), "", Vec::new()), false)),
                };
                let inbox = peer.inbox();
                let n = inbox
                    .iter()
                    .filter(|m| rcpt.as_ref().is_none_or(|r| m.rcpt_to.iter().any(|x| x.eq_ignore_ascii_case(r))))
                    .filter(|m| tls.is_none_or(|t| m.tls.is_some() == t))
                    .filter(|m| contains.as_ref().is_none_or(|t| String::from_utf8_lossy(&m.data).contains(t.as_str())))
                    .count();
                let (ok, may_change) = count_state(*count, n);
                if ok {
                    return Ok(());
                }
                let mut actual = format!("{} in the inbox, {n} matching", plural(inbox.len(), "message"));
                for m in &inbox {
                    actual.push_str(&format!(
                        "\nfrom <{}> to {:?}{}",
                        m.mail_from,
                        m.rcpt_to,
                        m.tls
                            .as_ref()
                            .map(|t| format!(" over {}", t.version))
                            .unwrap_or_else(|| " in plaintext".into())
                    ));
                }
                for q in queue_lines(sim) {
                    actual.push_str(&format!("\n{q}"));
                }
                Err((peer_mismatch(mismatch(actual, "", Vec::new()), host, peer), may_change))
            }
            WorldCheck::Recipient { address, status, data_contains } => {
                let found = recipient_status(&trace, address);
                let ok = found.as_ref().is_some_and(|(s, e)| {
                    s == status
                        && data_contains
                            .as_ref()
                            .is_none_or(|t| e.data.as_deref().unwrap_or(e.detail.as_str()).contains(t.as_str()))
                });
                if ok {
                    return Ok(());
                }
                let actual = match &found {
                    Some((s, e)) => format!("{s:?}: {}", trace_line(e)),
                    None => format!("no trace event for {address}"),
                };
                let events =
                    last_events(&trace, |e| e.recipient.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(address)));
                Err((mismatch(actual, &format!("message trace for {address}"), events), true))
            }
            WorldCheck::Ndr { at, status, recipient, contains } => {
                let (messages, peer) = match at {
                    NdrPlace::Mailbox(a) => (sim.mailbox(a).iter().map(|m| m.data.clone()).collect::<Vec<_>>(), None),
                    NdrPlace::Peer(h) => match sim.peer(h) {
                        Ok(p) => (p.inbox().into_iter().map(|m| m.data).collect(), Some((h, p))),
                        Err(e) => return Err((mismatch(format!("{e:#}"), "", Vec::new()), false)),
                    },
                };
                let mut found = Vec::new();
                for data in &messages {
                    let Some(ndr) = parse_ndr(data) else { continue };
                    let group_ok = |r: &NdrRecipient| {
                        status.as_ref().is_none_or(|s| r.status == *s)
                            && recipient.as_ref().is_none_or(|want| {
                                r.final_recipient.eq_ignore_ascii_case(want)
                                    || r.original_recipient.as_ref().is_some_and(|o| o.eq_ignore_ascii_case(want))
                            })
                    };
                    let groups_ok = (status.is_none() && recipient.is_none()) || ndr.recipients.iter().any(group_ok);
                    let text_ok = contains.as_ref().is_none_or(|t| String::from_utf8_lossy(data).contains(t.as_str()));
                    if groups_ok && text_ok {
                        return Ok(());
                    }
                    found.push(ndr);
                }
                let mut actual = format!(
                    "{} there, {}",
                    plural(messages.len(), "message"),
                    if found.is_empty() { "none of them an NDR".to_string() } else { plural(found.len(), "NDR") }
                );
                for ndr in &found {
                    actual.push_str(&format!("\nNDR {:?}:", ndr.subject));
                    for r in &ndr.recipients {
                        actual.push_str(&format!(
                            " {} {} {}",
                            r.final_recipient,
                            r.status,
                            r.diagnostic.as_deref().unwrap_or("")
                        ));
                    }
                }
                let m = mismatch(actual, "message trace (DSN events)", last_events(&trace, |e| e.event == Event::Dsn));
                let m = match peer {
                    Some((h, p)) => peer_mismatch(m, h, p),
                    None => m,
                };
                Err((m, true))
            }
            WorldCheck::Trace { event, recipient, connector, contains, count, rule, rule_mode } => {
                let event = match (event, rule.is_some() || rule_mode.is_some()) {
                    (None, true) => Some(Event::TransportRule),
                    _ => *event,
                };
                let n = trace
                    .iter()
                    .filter(|e| event.is_none_or(|ev| e.event == ev))
                    .filter(|e| rule.as_ref().is_none_or(|r| rule_of(e).is_some_and(|n| n.eq_ignore_ascii_case(r))))
                    .filter(|e| {
                        rule_mode.as_ref().is_none_or(|m| {
                            e.data.as_deref().and_then(|d| d.rsplit_once("|mode=")).is_some_and(|(_, x)| x == m)
                        })
                    })
                    .filter(|e| {
                        recipient
                            .as_ref()
                            .is_none_or(|r| e.recipient.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(r)))
                    })
                    .filter(|e| {
                        connector
                            .as_ref()
                            .is_none_or(|c| e.connector.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(c)))
                    })
                    .filter(|e| contains.as_ref().is_none_or(|t| trace_line(e).contains(t.as_str())))
                    .count();
                let (ok, may_change) = count_state(*count, n);
                if ok {
                    return Ok(());
                }
                let actual = format!("{} matching, of {} in the trace", plural(n, "event"), trace.len());
                Err((mismatch(actual, "message trace", last_events(&trace, |_| true)), may_change))
            }
            WorldCheck::Queued(n) => {
                let queued = sim.endpoint().pipeline().queued();
                let got: usize = queued.iter().map(|q| q.recipients.len()).sum();
                if got == *n {
                    return Ok(());
                }
                let mut actual = format!("{} waiting", plural(got, "recipient"));
                for q in queue_lines(sim) {
                    actual.push_str(&format!("\n{q}"));
                }
                Err((mismatch(actual, "message trace", last_events(&trace, |_| true)), true))
            }
            WorldCheck::Auth(check) => check.evaluate(sim),
        }
    }
}

fn peer_mismatch(mut m: Mismatch, host: &str, peer: &mailsim_testkit::peer::ScriptedPeer) -> Mismatch {
    let transcripts = peer.transcripts();
    m.transcript_title = format!("SMTP transcript at peer {host}");
    if transcripts.is_empty() {
        m.transcript = vec!["(no connection reached the peer)".to_string()];
        return m;
    }
    let skip = transcripts.len().saturating_sub(PEER_TRANSCRIPTS_SHOWN);
    m.transcript.clear();
    for (i, t) in transcripts.iter().enumerate().skip(skip) {
        m.transcript.push(format!("-- connection {} of {}", i + 1, transcripts.len()));
        m.transcript.extend(t.iter().cloned());
    }
    m
}
