//! One outbound delivery attempt for one route: resolve the next hop through the simulated DNS,
//! translate declared addresses through the address plan, connect from the tenant's own address,
//! and run the SMTP conversation. At each step the core decides (`route::mx_targets`,
//! `deliver::tls_gate`, `deliver::check_server_certificate`); this module only carries it out and
//! returns, per recipient, the reply that settles it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::plan::AddressPlan;
use mailsim_core::reply::{LastAttempt, Reply, ReplyContext, ReplyKind};
use mailsim_core::stage::deliver::{TlsStep, check_server_certificate, tls_gate};
use mailsim_core::stage::route::{Hop, MxDecision, TlsPolicy, address_targets, mx_targets};
use mailsim_core::tenant::SmartHost;
use mailsim_core::tenant::outbound_connector::SmartHostAddr;

use crate::client::{ClientError, ClientOptions, SmtpClient, Stage, TlsMode};
use crate::dns::Resolver;
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
}

/// The result of one attempt.
#[derive(Debug)]
pub struct Attempt {
    /// The reply that settles each recipient this time.
    pub replies: Vec<(EmailAddress, Reply)>,
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
    port: u16,
}

impl Target {
    fn last(&self) -> LastAttempt {
        LastAttempt { server: self.name.clone(), ip: SocketAddr::new(self.declared, self.port).to_string() }
    }
}

enum Targets {
    List(Vec<Target>),
    Settled(ReplyKind),
}

/// Runs one attempt of `route` for `recipients` of `message`.
pub async fn attempt(
    cfg: &OutboundConfig,
    hop: &Hop,
    message: &AcceptedMessage,
    recipients: &[EmailAddress],
) -> Attempt {
    let ctx = ReplyContext { host: &cfg.server_name, now: crate::smtp_conn::now(), session_id: message.internal_id };
    let all = |reply: Reply| recipients.iter().map(|r| (r.clone(), reply.clone())).collect::<Vec<_>>();
    let (targets, tls) = match hop {
        Hop::SmartHost { hosts, tls, .. } => (smart_host_targets(cfg, hosts).await, tls),
        Hop::Mx { domain, tls, .. } => (mx_hop_targets(cfg, domain.as_str()).await, tls),
        Hop::Mailbox | Hop::Unroutable(_) => {
            unreachable!("the pipeline settles local and unroutable hops without an attempt")
        }
    };
    let targets = match targets {
        Targets::Settled(kind) => {
            return Attempt { replies: all(kind.reply(&ctx)), last: None, tls: None, transcript: None };
        }
        Targets::List(t) => t,
    };
    let mut last_failure = ReplyKind::UnableToRoute;
    let mut last = None;
    let mut transcript = None;
    for target in &targets {
        last = Some(target.last());
        match converse(cfg, target, tls, message, recipients).await {
            Conversation::Done { replies, tls, transcript } => {
                return Attempt { replies, last, tls, transcript };
            }
            Conversation::TryNext { failure, transcript: t } => {
                last_failure = failure;
                transcript = t.or(transcript);
            }
        }
    }
    Attempt { replies: all(last_failure.reply(&ctx)), last, tls: None, transcript }
}

async fn smart_host_targets(cfg: &OutboundConfig, hosts: &[SmartHost]) -> Targets {
    let mut out = Vec::new();
    let mut failure = ReplyKind::UnableToRoute;
    for host in hosts {
        match &host.host {
            SmartHostAddr::Ip(ip) => out.push(Target { name: ip.to_string(), declared: *ip, port: port_of(cfg, host) }),
            SmartHostAddr::Name(name) => match resolve_host(cfg, name).await {
                Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                    name: name.clone(),
                    declared: ip,
                    port: port_of(cfg, host),
                })),
                Err(kind) => failure = kind,
            },
        }
    }
    if out.is_empty() { Targets::Settled(failure) } else { Targets::List(out) }
}

/// A smart host's port: as written, with the default 25 meaning the world's SMTP port.
fn port_of(cfg: &OutboundConfig, host: &SmartHost) -> u16 {
    if host.port == 25 { cfg.smtp_port } else { host.port }
}

async fn mx_hop_targets(cfg: &OutboundConfig, domain: &str) -> Targets {
    let Some(resolver) = &cfg.resolver else {
        return Targets::Settled(ReplyKind::DnsQueryFailed { server: domain.to_string() });
    };
    let domain = mailsim_core::addr::Domain::parse(domain, true).expect("routed domains are valid");
    let answer = resolver.mx(domain.as_str()).await;
    match mx_targets(&domain, &answer) {
        MxDecision::Fail(kind) => Targets::Settled(kind),
        MxDecision::Defer(kind) => Targets::Settled(kind),
        MxDecision::Hosts(hosts) => {
            let mut out = Vec::new();
            let mut failure = ReplyKind::UnableToRoute;
            for host in hosts {
                match resolve_host(cfg, &host).await {
                    Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                        name: host.clone(),
                        declared: ip,
                        port: cfg.smtp_port,
                    })),
                    Err(kind) => failure = kind,
                }
            }
            if out.is_empty() { Targets::Settled(failure) } else { Targets::List(out) }
        }
    }
}

async fn resolve_host(cfg: &OutboundConfig, name: &str) -> Result<Vec<IpAddr>, ReplyKind> {
    let Some(resolver) = &cfg.resolver else {
        return Err(ReplyKind::DnsQueryFailed { server: name.to_string() });
    };
    address_targets(name, &resolver.ipv4(name).await)
}

enum Conversation {
    /// The transaction ran: these replies settle the recipients.
    Done { replies: Vec<(EmailAddress, Reply)>, tls: Option<String>, transcript: Option<String> },
    /// This server could not take the message; try the next one.
    TryNext { failure: ReplyKind, transcript: Option<String> },
}

async fn converse(
    cfg: &OutboundConfig,
    target: &Target,
    policy: &TlsPolicy,
    message: &AcceptedMessage,
    recipients: &[EmailAddress],
) -> Conversation {
    let last = target.last();
    let loopback = cfg.plan.get().loopback_for(target.declared);
    let mut opts = ClientOptions::new(SocketAddr::new(loopback, target.port));
    opts.local_addr = Some(cfg.source_ip);
    opts.ehlo = cfg.ehlo.clone();
    opts.tls = TlsMode::None;
    opts.server_name = target.name.clone();
    opts.timeout = cfg.timeout;
    let mut client = SmtpClient::new(opts);
    let try_next = |failure: ReplyKind, client: &mut SmtpClient| Conversation::TryNext {
        failure,
        transcript: client.take_transcript().map(|t| t.render(true)),
    };

    match client.connect().await {
        Ok(_) => {}
        Err(ClientError::Connect(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return try_next(ReplyKind::ConnectionRefused { last }, &mut client);
        }
        Err(ClientError::Connect(_) | ClientError::Timeout(_)) => {
            return try_next(ReplyKind::ConnectionTimedOut { last }, &mut client);
        }
        Err(ClientError::Rejected { reply, .. }) => {
            return try_next(ReplyKind::CannotConnect { message: reply.to_string(), last }, &mut client);
        }
        Err(_) => return try_next(ReplyKind::ConnectionClosedAbruptly { last }, &mut client),
    }
    let caps = match client.ehlo().await {
        Ok(c) => c,
        Err(ClientError::Rejected { reply, .. }) => {
            return try_next(ReplyKind::CannotConnect { message: reply.to_string(), last }, &mut client);
        }
        Err(_) => return try_next(ReplyKind::ConnectionClosedAbruptly { last }, &mut client),
    };
    let mut tls_text = None;
    match tls_gate(policy, caps.starttls, &last) {
        Err(kind) => {
            let _ = client.quit().await;
            return try_next(kind, &mut client);
        }
        Ok(TlsStep::Plain) => {}
        Ok(TlsStep::StartTls) => {
            let info = match client.starttls().await {
                Ok(info) => info,
                Err(ClientError::Rejected { reply, .. }) => {
                    return try_next(ReplyKind::CannotConnect { message: reply.to_string(), last }, &mut client);
                }
                Err(e) => {
                    return try_next(
                        ReplyKind::CannotConnect { message: format!("TLS negotiation failed: {e}"), last },
                        &mut client,
                    );
                }
            };
            let facts = (!info.peer_certificates.is_empty())
                .then(|| cfg.server_trust.facts(&info.peer_certificates, SystemTime::now()));
            if let Err(kind) = check_server_certificate(policy, facts.as_ref(), &target.name, &last) {
                let _ = client.quit().await;
                return try_next(kind, &mut client);
            }
            tls_text = Some(format!("{} {}", info.version, info.cipher));
            if let Err(e) = client.ehlo().await {
                let kind = match e {
                    ClientError::Rejected { reply, .. } => {
                        ReplyKind::CannotConnect { message: reply.to_string(), last }
                    }
                    _ => ReplyKind::ConnectionClosedAbruptly { last },
                };
                return try_next(kind, &mut client);
            }
        }
    }
    let from = message.envelope.sender.as_ref().map(|s| s.to_string()).unwrap_or_default();
    let rcpts: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let rcpt_refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let ctx_now = crate::smtp_conn::now();
    let ctx = ReplyContext { host: &cfg.server_name, now: ctx_now, session_id: message.internal_id };
    let replies = match client.send_transaction(&from, &rcpt_refs, &message.data, true).await {
        Ok(t) => settle_transaction(recipients, &t),
        Err(e) => {
            // A failure mid-transaction (dropped connection, timeout) decides every recipient alike.
            let kind = match e {
                ClientError::Timeout(Stage::Connect) => ReplyKind::ConnectionTimedOut { last },
                _ => ReplyKind::ConnectionClosedAbruptly { last },
            };
            let reply = kind.reply(&ctx);
            recipients.iter().map(|r| (r.clone(), reply.clone())).collect()
        }
    };
    let _ = client.quit().await;
    Conversation::Done { replies, tls: tls_text, transcript: client.take_transcript().map(|t| t.render(true)) }
}

/// Per recipient: MAIL's refusal decides all; otherwise its RCPT reply when refused; the accepted
/// ones share the DATA or end-of-data reply.
fn settle_transaction(
    recipients: &[EmailAddress],
    t: &crate::client::TransactionReplies,
) -> Vec<(EmailAddress, Reply)> {
    recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let reply = if !t.mail.code.is_positive() {
                t.mail.clone()
            } else {
                match t.rcpts.get(i) {
                    Some(rcpt) if !rcpt.code.is_positive() => rcpt.clone(),
                    Some(_) => match (&t.data, &t.dot) {
                        (Some(data), _) if !data.code.is_positive() => data.clone(),
                        (_, Some(dot)) => dot.clone(),
                        _ => t.mail.clone(),
                    },
                    None => t.mail.clone(),
                }
            };
            (r.clone(), reply)
        })
        .collect()
}
