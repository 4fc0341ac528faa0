//! One outbound delivery attempt for one route: resolve the next hop through the simulated DNS,
//! translate declared addresses through the address plan, connect from the tenant's own address,
//! and run the SMTP conversation. At each step the core decides (`route::mx_targets`,
//! `deliver::tls_gate`, `deliver::check_server_certificate`); this module only carries it out and
//! returns what happened: the transaction's replies, or the client's error mapped one-to-one to an
//! [`AttemptFailure`]. Which reply that stands for, and which reply settles each recipient, is the
//! core's (`stage::attempt`). Certificates are judged at the world's simulated time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mailsim_core::addr::EmailAddress;
use mailsim_core::address_plan::AddressPlan;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::reply::{LastAttempt, ReplyContext};
use mailsim_core::stage::attempt::{AttemptFailure, AttemptResult, DnsFailure, failure_reply};
use mailsim_core::stage::deliver::{TlsStep, check_server_certificate, tls_gate};
use mailsim_core::stage::route::{
    Hop, MxDecision, SmartHostLookup, TlsPolicy, address_targets, mx_targets, smart_host_lookup,
};
use mailsim_core::tenant::SmartHost;

use crate::client::{ClientError, ClientOptions, SmtpClient, Stage, TlsMode};
use crate::clock::SimClock;
use crate::dns::Resolver;
use crate::protocol_log::{ProtocolLog, SendAttempt};
use crate::tls::ServerTrust;

/// What every attempt needs from the world.
#[derive(Debug)]
pub struct OutboundConfig {
    /// Declared ↔ loopback addresses.
    pub plan: Arc<crate::shared::Shared<AddressPlan>>,
    /// The simulated world's DNS; `None` makes every lookup fail (deferral 4.4.312).
    pub resolver: Option<Arc<Resolver>>,
    /// Roots for `CertificateValidation`/`DomainValidation`.
    pub server_trust: ServerTrust,
    /// The world's clock: server certificates are judged at its time.
    pub clock: Arc<SimClock>,
    /// The tenant's own source address for outbound connections.
    pub source_ip: IpAddr,
    /// EHLO name.
    pub ehlo: String,
    /// Per-step timeout.
    pub timeout: Duration,
    /// Host name in the tenant's own replies.
    pub server_name: String,
    /// The port the simulated world's SMTP hosts listen on: used for MX hosts and for smart hosts
    /// written without a port (25 in production; tests pick a free port for the whole world).
    pub smtp_port: u16,
    /// TLS configuration for STARTTLS, with the tenant's client certificate; `None` sends none.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    /// The protocol log (SEND).
    pub protocol_log: Arc<ProtocolLog>,
}

/// The result of one attempt.
#[derive(Debug)]
pub struct Attempt {
    /// The transaction's replies, or what stopped the attempt.
    pub result: AttemptResult,
    /// The server talked to last (name, declared `ip:port`).
    pub last: Option<LastAttempt>,
    /// TLS version and cipher, when the conversation was encrypted.
    pub tls: Option<String>,
    /// The conversation, for the protocol log.
    pub transcript: Option<String>,
}

/// A place to connect to.
struct Target {
    name: String,
    declared: IpAddr,
    /// The port as configured (25 unless a smart host names another): what EXO's texts show.
    declared_port: u16,
    /// The port actually connected to (the world's SMTP port stands in for 25).
    port: u16,
}

impl Target {
    fn new(cfg: &OutboundConfig, name: String, declared: IpAddr, declared_port: u16) -> Self {
        let port = if declared_port == 25 { cfg.smtp_port } else { declared_port };
        Self { name, declared, declared_port, port }
    }

    fn last(&self) -> LastAttempt {
        LastAttempt { server: self.name.clone(), ip: SocketAddr::new(self.declared, self.declared_port).to_string() }
    }
}

/// The client's error at `step`, as the attempt's failure: one to one, no judgement. During
/// STARTTLS anything but a refusal is the handshake's failure, in the client's words.
fn failure(step: Stage, e: ClientError) -> AttemptFailure {
    match e {
        ClientError::Rejected { stage, reply } => AttemptFailure::Rejected { phase: stage, reply },
        e if step == Stage::StartTls => AttemptFailure::TlsHandshake { detail: e.to_string() },
        ClientError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => AttemptFailure::Refused,
        ClientError::Connect(_) => AttemptFailure::Unreachable,
        ClientError::Timeout(phase) => AttemptFailure::TimedOut(phase),
        _ => AttemptFailure::Closed(step),
    }
}

/// An SMTP session to a next hop left open after a completed transaction, so the next message for
/// the same hop skips DNS, connect, EHLO and TLS (as MTAs cache connections per destination).
pub struct OpenConnection {
    hop: Hop,
    last: LastAttempt,
    tls: Option<String>,
    client: SmtpClient,
    protocol_log: Arc<ProtocolLog>,
}

impl std::fmt::Debug for OpenConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenConnection").field("server", &self.last.server).finish()
    }
}

impl OpenConnection {
    /// Ends the session politely.
    pub async fn close(mut self) {
        let _ = self.client.quit().await;
        let log = LogCtx::new(&self.protocol_log, &self.hop, &self.last, "");
        log.record(&mut self.client, None, false);
    }
}

/// Runs one attempt of `route` for `recipients` of `message`. `cache` may hold a session to the
/// same hop from an earlier attempt; a session that completed this transaction is left there.
pub async fn attempt(
    cfg: &OutboundConfig,
    hop: &Hop,
    message: &AcceptedMessage,
    recipients: &[EmailAddress],
    cache: &mut Option<OpenConnection>,
) -> Attempt {
    if let Some(mut open) = cache.take() {
        if &open.hop == hop {
            let result = transact(&mut open.client, message, recipients).await;
            let log = LogCtx::new(&cfg.protocol_log, hop, &open.last, &message.message_id);
            let reusable = result.as_ref().is_some_and(|(_, reusable)| *reusable);
            log.record(&mut open.client, None, reusable);
            // `None`: the cached session had gone away before MAIL was answered: nothing was
            // sent, so open a new one.
            if let Some((result, reusable)) = result {
                let attempt =
                    Attempt { result, last: Some(open.last.clone()), tls: open.tls.clone(), transcript: None };
                if reusable {
                    *cache = Some(open);
                }
                return attempt;
            }
        } else {
            open.close().await;
        }
    }
    let (targets, tls) = match hop {
        Hop::SmartHost { hosts, tls, .. } => (smart_host_targets(cfg, hosts).await, tls),
        Hop::Mx { domain, tls, .. } => (mx_hop_targets(cfg, domain.as_str()).await, tls),
        Hop::Mailbox | Hop::Unroutable(_) => {
            unreachable!("the pipeline settles local and unroutable hops without an attempt")
        }
    };
    let targets = match targets {
        Err(dns) => {
            return Attempt {
                result: AttemptResult::Failed(AttemptFailure::Dns(dns)),
                last: None,
                tls: None,
                transcript: None,
            };
        }
        Ok(t) => t,
    };
    let mut last_failure = AttemptFailure::Dns(DnsFailure::NoHosts);
    let mut last = None;
    let mut transcript = None;
    for target in &targets {
        last = Some(target.last());
        match converse(cfg, target, hop, tls, message, recipients).await {
            Conversation::Done { result, tls, transcript, client } => {
                if let Some(client) = client {
                    *cache = Some(OpenConnection {
                        hop: hop.clone(),
                        last: target.last(),
                        tls: tls.clone(),
                        client: *client,
                        protocol_log: cfg.protocol_log.clone(),
                    });
                }
                return Attempt { result, last, tls, transcript };
            }
            Conversation::TryNext { failure, transcript: t } => {
                last_failure = failure;
                transcript = t.or(transcript);
            }
        }
    }
    Attempt { result: AttemptResult::Failed(last_failure), last, tls: None, transcript }
}

/// One mail transaction on an open session. `None` when the session turned out to be closed
/// before the server answered MAIL (safe to retry elsewhere); otherwise what happened and whether
/// the session can carry another transaction.
async fn transact(
    client: &mut SmtpClient,
    message: &AcceptedMessage,
    recipients: &[EmailAddress],
) -> Option<(AttemptResult, bool)> {
    let from = message.envelope.sender.as_ref().map(|s| s.to_string()).unwrap_or_default();
    let rcpts: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    match client.send_transaction(&from, &rcpt_refs, &message.data, true).await {
        Ok(t) => {
            let completed = t.accepted();
            let mut reusable = client.is_connected();
            if reusable && !completed {
                // RFC 5321 §4.1.1.5: a refused transaction is reset before the next one.
                reusable = client.rset().await.is_ok();
            }
            Some((AttemptResult::Transaction(t), reusable))
        }
        Err(
            ClientError::Closed(Stage::Mail)
            | ClientError::Io { stage: Stage::Mail, .. }
            | ClientError::NotConnected(_),
        ) => None,
        // A failure mid-transaction (dropped connection, timeout) decides every recipient alike.
        Err(e) => {
            let step = e.stage().unwrap_or(Stage::Mail);
            Some((AttemptResult::Failed(failure(step, e)), false))
        }
    }
}

async fn smart_host_targets(cfg: &OutboundConfig, hosts: &[SmartHost]) -> Result<Vec<Target>, DnsFailure> {
    let mut out = Vec::new();
    let mut failure = DnsFailure::NoHosts;
    for host in hosts {
        let (name, found) = match smart_host_lookup(host) {
            SmartHostLookup::Literal(ip) => (ip.to_string(), Ok(vec![ip])),
            SmartHostLookup::AddressOnly(name) => {
                let found = resolve_host(cfg, &name).await;
                (name, found)
            }
            SmartHostLookup::MxThenAddress(name) => {
                let found = resolve_smart_host(cfg, &name).await;
                (name, found)
            }
        };
        match found {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| Target::new(cfg, name.clone(), ip, host.port))),
            Err(f) => failure = f,
        }
    }
    if out.is_empty() { Err(failure) } else { Ok(out) }
}

async fn mx_hop_targets(cfg: &OutboundConfig, domain: &str) -> Result<Vec<Target>, DnsFailure> {
    let Some(resolver) = &cfg.resolver else {
        return Err(DnsFailure::QueryFailed { name: domain.to_string() });
    };
    let domain = mailsim_core::addr::Domain::parse(domain, true).expect("routed domains are valid");
    let answer = resolver.mx(domain.as_str()).await;
    match mx_targets(&domain, &answer) {
        MxDecision::Fail(kind) | MxDecision::Defer(kind) => Err(DnsFailure::Answered(kind)),
        MxDecision::Hosts(hosts) => {
            let mut out = Vec::new();
            let mut failure = DnsFailure::NoHosts;
            for host in hosts {
                match resolve_host(cfg, &host).await {
                    Ok(ips) => out.extend(ips.into_iter().map(|ip| Target::new(cfg, host.clone(), ip, 25))),
                    Err(f) => failure = f,
                }
            }
            if out.is_empty() { Err(failure) } else { Ok(out) }
        }
    }
}

/// A smart host FQDN: its MX hosts (or itself), each resolved to addresses, in order.
async fn resolve_smart_host(cfg: &OutboundConfig, name: &str) -> Result<Vec<IpAddr>, DnsFailure> {
    let Some(resolver) = &cfg.resolver else {
        return Err(DnsFailure::QueryFailed { name: name.to_string() });
    };
    let mut ips = Vec::new();
    let mut failure = DnsFailure::QueryFailed { name: name.to_string() };
    let hosts =
        mailsim_core::stage::route::smart_host_names(name, &resolver.mx(name).await).map_err(DnsFailure::Answered)?;
    for host in hosts {
        match resolve_host(cfg, &host).await {
            Ok(found) => ips.extend(found),
            Err(f) => failure = f,
        }
    }
    if ips.is_empty() { Err(failure) } else { Ok(ips) }
}

async fn resolve_host(cfg: &OutboundConfig, name: &str) -> Result<Vec<IpAddr>, DnsFailure> {
    let Some(resolver) = &cfg.resolver else {
        return Err(DnsFailure::QueryFailed { name: name.to_string() });
    };
    address_targets(name, &resolver.ipv4(name).await).map_err(DnsFailure::Answered)
}

enum Conversation {
    /// The transaction ran (or broke off mid-way): this settles the recipients; the session, when
    /// it can carry another transaction.
    Done { result: AttemptResult, tls: Option<String>, transcript: Option<String>, client: Option<Box<SmtpClient>> },
    /// This server could not take the message; try the next one.
    TryNext { failure: AttemptFailure, transcript: Option<String> },
}

async fn converse(
    cfg: &OutboundConfig,
    target: &Target,
    hop: &Hop,
    policy: &TlsPolicy,
    message: &AcceptedMessage,
    recipients: &[EmailAddress],
) -> Conversation {
    let last = target.last();
    let log = LogCtx::new(&cfg.protocol_log, hop, &last, &message.message_id);
    let loopback = cfg.plan.get().loopback_for(target.declared);
    let mut opts = ClientOptions::new(SocketAddr::new(loopback, target.port));
    opts.local_addr = Some(cfg.source_ip);
    opts.ehlo = cfg.ehlo.clone();
    opts.tls = TlsMode::None;
    opts.server_name = target.name.clone();
    opts.tls_config = cfg.client_tls.clone();
    // The transcript feeds the SEND protocol log (taken after every transaction); without a log
    // there is no point recording it.
    opts.record_transcript = cfg.protocol_log.is_enabled();
    opts.timeout = cfg.timeout;
    let mut client = SmtpClient::new(opts);
    let try_next = |failure: AttemptFailure, client: &mut SmtpClient| {
        let ctx = ReplyContext { host: &cfg.server_name, now: log.started, session_id: message.internal_id };
        let outcome = failure_reply(&failure, Some(&last)).reply(&ctx).to_string();
        let transcript = log.record(client, Some(outcome), false);
        Conversation::TryNext { failure, transcript }
    };

    if let Err(e) = client.connect().await {
        return try_next(failure(Stage::Connect, e), &mut client);
    }
    let caps = match client.ehlo().await {
        Ok(c) => c,
        Err(e) => return try_next(failure(Stage::Ehlo, e), &mut client),
    };
    let mut tls_text = None;
    match tls_gate(policy, caps.starttls) {
        Err(f) => {
            let _ = client.quit().await;
            return try_next(f, &mut client);
        }
        Ok(TlsStep::Plain) => {}
        Ok(TlsStep::StartTls) => {
            let info = match client.starttls().await {
                Ok(info) => info,
                Err(e) => return try_next(failure(Stage::StartTls, e), &mut client),
            };
            let facts = (!info.peer_certificates.is_empty())
                .then(|| cfg.server_trust.facts(&info.peer_certificates, cfg.clock.system_time()));
            if let Err(f) = check_server_certificate(policy, facts.as_ref(), &target.name) {
                let _ = client.quit().await;
                return try_next(f, &mut client);
            }
            tls_text = Some(format!("{} {}", info.version, info.cipher));
            if let Err(e) = client.ehlo().await {
                return try_next(failure(Stage::Ehlo, e), &mut client);
            }
        }
    }
    match transact(&mut client, message, recipients).await {
        Some((result, reusable)) => {
            if !reusable {
                let _ = client.quit().await;
            }
            let transcript = log.record(&mut client, None, reusable);
            Conversation::Done { result, tls: tls_text, transcript, client: reusable.then(|| Box::new(client)) }
        }
        None => try_next(AttemptFailure::Closed(Stage::Mail), &mut client),
    }
}

/// What the SEND protocol log needs besides a connection's transcript.
struct LogCtx<'a> {
    log: &'a Arc<ProtocolLog>,
    connector: Option<&'a str>,
    last: &'a LastAttempt,
    message_id: &'a str,
    started: mailsim_core::time::Timestamp,
}

impl<'a> LogCtx<'a> {
    fn new(log: &'a Arc<ProtocolLog>, hop: &'a Hop, last: &'a LastAttempt, message_id: &'a str) -> Self {
        Self { log, connector: hop.connector(), last, message_id, started: log.now() }
    }

    /// Writes what the client's transcript holds to the protocol log and returns it rendered.
    fn record(&self, client: &mut SmtpClient, outcome: Option<String>, still_open: bool) -> Option<String> {
        let transcript = client.take_transcript()?;
        let remote = client.options().server;
        self.log.send_attempt(SendAttempt {
            connector: self.connector,
            started: self.started,
            transcript: &transcript,
            local: client.local_addr(),
            source_ip: client.options().local_addr.unwrap_or(remote.ip()),
            remote,
            server_name: &self.last.server,
            declared: &self.last.ip,
            tls: client.tls(),
            message_id: self.message_id,
            outcome: outcome.as_deref(),
            still_open,
        });
        Some(transcript.render(true))
    }
}
