//! `Validate-OutboundConnector` (exo-behaviour §8.6): a synthetic test message sent through one
//! outbound connector of a running world, once per smart host, reporting for each the connection,
//! the TLS facts, the certificate check and the remote replies, or EXO's deferral text
//! (`450 4.4.317 Cannot connect to remote server [Message=SubjectMismatch ...]`, §3.3) when it
//! fails.
//!
//! Contract: the attempts are the pipeline's own ([`mailsim_io::outbound::attempt`]) with the
//! world's outbound configuration (address plan, DNS, trust roots, simulated clock, the tenant's
//! client certificate), so a validation passes exactly when delivery through that host would. The
//! test message is really delivered to the recipients when the host accepts it (as EXO's is), is
//! not queued, and is written to the SEND protocol log. A disabled connector fails without an
//! attempt, with the EAC's text (§8.6). Recipients: the given ones (`--rcpt`), else the connector's
//! `ValidationRecipients` (§3.1, §15.3), else `validation@` its first exact `RecipientDomains` entry.

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::reply::ReplyContext;
use mailsim_core::stage::attempt::{AttemptResult, failure_reply};
use mailsim_core::stage::inbound::InboundVerdict;
use mailsim_core::stage::route::{Hop, TlsPolicy};
use mailsim_core::tenant::{OutboundConnector, TlsSettings};
use serde::Serialize;

use crate::endpoint::RunningEndpoint;

/// The text EXO's validation gives for a disabled connector (exo-behaviour §8.6).
pub const DISABLED_TEXT: &str = "The domain of the recipient is not configured as part of connector.";

/// One smart host (or MX domain) tried.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct HostResult {
    /// The `SmartHosts` entry, or `MX of <domain>`.
    pub target: String,
    /// Whether the test message was accepted for every recipient.
    pub passed: bool,
    /// The server connected to last, `name [ip:port]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// TLS version and cipher, when the session was encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The certificate check the connector's `TlsSettings` asks for, and its outcome.
    pub certificate: String,
    /// The remote replies: `MAIL: 250 ...`, `RCPT <a>: 250 ...`, `DATA: 354 ...`, `end of data: 250 ...`.
    pub replies: Vec<String>,
    /// When the attempt failed: EXO's deferral text for it (§3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The validation of one connector.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct ValidationReport {
    /// The connector's name.
    pub connector: String,
    /// The recipients of the test message.
    pub recipients: Vec<String>,
    /// One result per smart host (per recipient domain for a `UseMXRecord` connector).
    pub results: Vec<HostResult>,
    /// Every result passed (and the connector is enabled).
    pub passed: bool,
    /// Why the validation could not run, when it could not (a disabled connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An error before any attempt: no such connector, no recipient.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// No outbound connector of that name.
    #[error("no outbound connector named {0:?} (connectors: {1})")]
    NoSuchConnector(String, String),
    /// No recipient given and none derivable.
    #[error("connector {0:?} has no exact RecipientDomains entry to derive a test recipient from: give --rcpt")]
    NoRecipient(String),
}

fn certificate_text(settings: TlsSettings, tls_domain: Option<&str>, failed_cert: Option<&str>) -> String {
    let wanted = match (settings, tls_domain) {
        (TlsSettings::Opportunistic, _) => return "not checked (TlsSettings $null)".to_string(),
        (TlsSettings::EncryptionOnly, _) => return "not checked (TlsSettings EncryptionOnly)".to_string(),
        (TlsSettings::CertificateValidation, _) => "chain and validity (CertificateValidation)".to_string(),
        (TlsSettings::DomainValidation, Some(d)) => format!("chain, validity and name {d} (DomainValidation)"),
        (TlsSettings::DomainValidation, None) => {
            "chain, validity and the host's name (DomainValidation without TlsDomain)".to_string()
        }
    };
    match failed_cert {
        Some(why) => format!("{wanted}: failed ({why})"),
        None => format!("{wanted}: passed"),
    }
}

fn test_message(endpoint: &RunningEndpoint, rcpts: &[EmailAddress]) -> AcceptedMessage {
    let tenant = endpoint.tenant();
    let domain = tenant.accepted_domains.first().map_or("mailsim.test".to_string(), |d| d.name.to_string());
    let sender: Option<EmailAddress> = format!("postmaster@{domain}").parse().ok();
    let now = endpoint.pipeline().clock().now();
    let to: Vec<String> = rcpts.iter().map(ToString::to_string).collect();
    let data = format!(
        "From: postmaster@{domain}\r\nTo: {}\r\nSubject: Test message from Validate-OutboundConnector (mailsim)\r\n\
         Date: {}\r\nMessage-ID: <validate-outbound.{}@{domain}>\r\n\r\nThis is a test message sent to validate an \
         outbound connector.\r\n",
        to.join(", "),
        now.rfc5322(),
        now.as_millis()
    );
    let local = endpoint.pipeline().outbound().source_ip;
    AcceptedMessage {
        internal_id: now.as_millis() as u64,
        message_id: format!("<validate-outbound.{}@{domain}>", now.as_millis()),
        envelope: Envelope { sender, params: Default::default(), recipients: rcpts.to_vec() },
        peer: PeerFacts::new(local, 0, local),
        verdict: InboundVerdict::tenant_originated(),
        data: data.into_bytes(),
        received_at: now,
        auth: None,
    }
}

fn default_recipients(c: &OutboundConnector) -> Result<Vec<EmailAddress>, ValidateError> {
    if !c.validation_recipients.is_empty() {
        return Ok(c.validation_recipients.clone());
    }
    c.recipient_domains
        .iter()
        .find_map(|p| match p {
            mailsim_core::tenant::DomainPattern::Exact(d) | mailsim_core::tenant::DomainPattern::Subtree(d) => {
                format!("validation@{d}").parse::<EmailAddress>().ok()
            }
            mailsim_core::tenant::DomainPattern::Any => None,
        })
        .map(|a| vec![a])
        .ok_or_else(|| ValidateError::NoRecipient(c.name.clone()))
}

/// Validates connector `name` of the world behind `endpoint`, sending to `recipients` (or the
/// default, see the module header).
pub async fn validate(
    endpoint: &RunningEndpoint,
    name: &str,
    recipients: &[EmailAddress],
) -> Result<ValidationReport, ValidateError> {
    let tenant = endpoint.tenant();
    let Some(c) = tenant.outbound_connectors.iter().find(|c| c.name.trim().eq_ignore_ascii_case(name.trim())) else {
        let names: Vec<String> = tenant.outbound_connectors.iter().map(|c| format!("{:?}", c.name)).collect();
        return Err(ValidateError::NoSuchConnector(name.to_string(), names.join(", ")));
    };
    let rcpts = if recipients.is_empty() { default_recipients(c)? } else { recipients.to_vec() };
    let mut report = ValidationReport {
        connector: c.name.clone(),
        recipients: rcpts.iter().map(ToString::to_string).collect(),
        results: Vec::new(),
        passed: false,
        error: None,
    };
    if !c.enabled {
        report.error = Some(DISABLED_TEXT.to_string());
        return Ok(report);
    }
    let tls = TlsPolicy { settings: c.tls_settings, tls_domain: c.tls_domain.clone() };
    let cross_premises = c.cloud_services_mail_enabled;
    let mut hops: Vec<(String, Hop, Vec<EmailAddress>)> = Vec::new();
    if c.use_mx_record || c.smart_hosts.is_empty() {
        for r in &rcpts {
            match hops.iter_mut().find(|(_, h, _)| matches!(h, Hop::Mx { domain, .. } if domain == r.domain())) {
                Some((_, _, list)) => list.push(r.clone()),
                None => hops.push((
                    format!("MX of {}", r.domain()),
                    Hop::Mx {
                        domain: r.domain().clone(),
                        connector: Some(c.name.clone()),
                        tls: tls.clone(),
                        cross_premises,
                    },
                    vec![r.clone()],
                )),
            }
        }
    } else {
        for h in &c.smart_hosts {
            let hop =
                Hop::SmartHost { connector: c.name.clone(), hosts: vec![h.clone()], tls: tls.clone(), cross_premises };
            hops.push((h.to_string(), hop, rcpts.clone()));
        }
    }
    let message = test_message(endpoint, &rcpts);
    let cfg = endpoint.pipeline().outbound().clone();
    let ctx =
        ReplyContext { host: &tenant.settings.server_name, now: endpoint.pipeline().clock().now(), session_id: 0 };
    let tls_domain = c.tls_domain.as_ref().map(ToString::to_string);
    for (target, hop, rcpts) in hops {
        let attempt = mailsim_io::outbound::attempt(&cfg, &hop, &message, &rcpts, &mut None).await;
        let server = attempt.last.as_ref().map(|l| format!("{} [{}]", l.server, l.ip));
        let mut result = HostResult {
            target,
            passed: false,
            server,
            tls: attempt.tls.clone(),
            certificate: String::new(),
            replies: Vec::new(),
            error: None,
        };
        let mut cert_failure = None;
        match &attempt.result {
            AttemptResult::Transaction(t) => {
                result.replies.push(format!("MAIL FROM: {}", t.mail));
                for (r, reply) in rcpts.iter().zip(&t.rcpts) {
                    result.replies.push(format!("RCPT TO:<{r}>: {reply}"));
                }
                if let Some(d) = &t.data {
                    result.replies.push(format!("DATA: {d}"));
                }
                if let Some(d) = &t.dot {
                    result.replies.push(format!("end of data: {d}"));
                }
                let all = t.rcpts.len() == rcpts.len() && t.rcpts.iter().all(|r| r.code.get() / 100 == 2);
                result.passed = all && t.dot.as_ref().is_some_and(|d| d.code.get() / 100 == 2);
            }
            AttemptResult::Failed(f) => {
                let reply = failure_reply(f, attempt.last.as_ref()).reply(&ctx);
                if let mailsim_core::stage::attempt::AttemptFailure::Certificate(p) = f {
                    use mailsim_core::stage::attempt::CertificateProblem as P;
                    cert_failure = Some(match p {
                        P::Missing => "no certificate presented".to_string(),
                        P::UntrustedRoot => "UntrustedRoot".to_string(),
                        P::Expired => "expired".to_string(),
                        P::Invalid => "invalid".to_string(),
                        P::SubjectMismatch { expected, presented, .. } => {
                            format!("SubjectMismatch: expected {expected}, presented {presented}")
                        }
                    });
                }
                result.error = Some(reply.to_string());
            }
        }
        if cert_failure.is_some() && result.tls.is_none() {
            result.tls = Some("negotiated, then the session was ended: the certificate was refused".to_string());
        }
        let checked = attempt.tls.is_some() || cert_failure.is_some();
        result.certificate =
            if checked || matches!(c.tls_settings, TlsSettings::Opportunistic | TlsSettings::EncryptionOnly) {
                certificate_text(c.tls_settings, tls_domain.as_deref(), cert_failure.as_deref())
            } else {
                "not reached (no TLS session)".to_string()
            };
        report.results.push(result);
    }
    report.passed = !report.results.is_empty() && report.results.iter().all(|r| r.passed);
    Ok(report)
}

/// The text report.
pub fn render_text(r: &ValidationReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "Connector   {}", r.connector);
    let _ = writeln!(out, "Recipients  {}", r.recipients.join(", "));
    if let Some(e) = &r.error {
        let _ = writeln!(out, "Failed      {e}");
    }
    for h in &r.results {
        let _ = writeln!(out, "\nSmart host  {}  {}", h.target, if h.passed { "passed" } else { "FAILED" });
        if let Some(s) = &h.server {
            let _ = writeln!(out, "  server      {s}");
        }
        let _ = writeln!(out, "  TLS         {}", h.tls.as_deref().unwrap_or("none"));
        let _ = writeln!(out, "  certificate {}", h.certificate);
        for reply in &h.replies {
            let _ = writeln!(out, "  reply       {reply}");
        }
        if let Some(e) = &h.error {
            let _ = writeln!(out, "  error       {e}");
        }
    }
    let _ = writeln!(out, "\nResult      {}", if r.passed { "validation passed" } else { "validation FAILED" });
    out
}
