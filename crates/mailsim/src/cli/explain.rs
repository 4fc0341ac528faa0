//! `mailsim explain`: given a tenant file and the facts of one connection, run the tenant's own
//! SMTP session ([`Session`], the one the endpoint runs for every connection) through a synthetic
//! dialogue, without any network, and print what it decided: each recipient's category, the
//! inbound connector and every rule checked, and the exact reply at each step.
//!
//! The dialogue: EHLO (the `--helo` name, or `explain.invalid`); with TLS, STARTTLS, a handshake
//! that yields the facts given (TLS 1.2, the client certificate described by `--cert-*`) and EHLO
//! again; MAIL FROM; one RCPT TO per recipient; DATA with a minimal message; QUIT. Nothing here
//! knows at which step a rule applies (DBEB and, with `RejectionStage = "RcptTo"`, the connector
//! verdict at RCPT TO; the verdict at end of DATA, exo-behaviour §1.2): the session decides, so a
//! scenario, a Rust test and `explain` run the same code. The clock stands at 0 and the session id
//! is 0, so diagnostic suffixes read `1970-01-01T00:00:00.000Z 0000000000000000`.
//!
//! Where the verdict comes from: an accepted message carries the session's verdict. A refusal
//! carries its rejection (connector, reason, reply) but not the list of rules checked, so that list
//! is read back from [`attribute`] (pure) with exactly the inputs the session judged: its peer,
//! the sender and the recipients of the refused transaction.
//!
//! Mail flow rules (exo-behaviour §13): when the message would be queued and the tenant has rules,
//! the accepted message (with `--headers`' content, and the tenant's stamps) goes through the same
//! pure rules stage the pipeline runs ([`mailsim_core::stage::rules::evaluate`]) at `--at`; the
//! report lists every rule in priority order with the recipients it matches, what each action
//! would do, where processing stops, and the forks that result.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::header_section;
use mailsim_core::peer::{CertTrust, ClientCertFacts, PeerFacts, TlsFacts};
use mailsim_core::reply::Reply;
use mailsim_core::session::{Action, Refusal, Session};
use mailsim_core::stage::categorize::{Category, categorize};
use mailsim_core::stage::inbound::{InboundVerdict, attribute};
use mailsim_core::tenant::{RejectionStage, Tenant};
use mailsim_core::time::Timestamp;

use super::explain_sections as sections;

/// Facts of one connection and envelope to explain.
#[derive(Debug, Clone)]
pub struct ExplainArgs {
    /// Tenant configuration file (named in the report).
    pub tenant: PathBuf,
    /// The sending server's address as connectors see it (the declared address, e.g. 198.51.100.7).
    pub source: IpAddr,
    /// P1 MAIL FROM address, or "<>" for the null sender.
    pub mail_from: String,
    /// RCPT TO addresses.
    pub rcpt_to: Vec<String>,
    /// What the client showed besides: TLS, certificate, EHLO, content, time, authentication.
    pub facts: MessageFacts,
}

/// What a client showed besides its address and envelope, the same flags for both directions of
/// `mailsim explain`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MessageFacts {
    /// The client used STARTTLS.
    #[arg(long, env = "MAILSIM_EXPLAIN_TLS")]
    pub tls: bool,
    /// Subject CN of the client certificate (implies --tls).
    #[arg(long = "cert-subject", env = "MAILSIM_EXPLAIN_CERT_SUBJECT", value_name = "CN")]
    pub cert_subject: Option<String>,
    /// A DNS subject alternative name of the client certificate (repeatable; implies --tls).
    #[arg(long = "cert-san", value_name = "NAME", env = "MAILSIM_EXPLAIN_CERT_SAN", value_delimiter = ',')]
    pub cert_san: Vec<String>,
    /// The client certificate does not chain to a trusted root.
    #[arg(long = "cert-untrusted", env = "MAILSIM_EXPLAIN_CERT_UNTRUSTED")]
    pub cert_untrusted: bool,
    /// The client certificate is outside its validity period.
    #[arg(long = "cert-expired", env = "MAILSIM_EXPLAIN_CERT_EXPIRED")]
    pub cert_expired: bool,
    /// The EHLO name the client gives.
    #[arg(long, env = "MAILSIM_EXPLAIN_HELO", value_name = "NAME")]
    pub helo: Option<String>,
    /// A file with the message's header section (a whole message may follow it): sent as the
    /// message content, and read by the mail flow rules.
    #[arg(long, env = "MAILSIM_EXPLAIN_HEADERS", value_name = "FILE")]
    pub headers: Option<PathBuf>,
    /// The time the mail flow rules are judged at (ActivationDate/ExpiryDate), UTC:
    /// `2026-12-08T09:00:00Z` or `2026-12-08`; default: now.
    #[arg(long, env = "MAILSIM_EXPLAIN_AT", value_name = "TIME")]
    pub at: Option<String>,
    /// Authentication (issue 11): see `explain_auth`.
    #[command(flatten)]
    pub auth: super::explain_auth::AuthExplainArgs,
}

/// The facts a client certificate stands for, from the arguments; `None` when no certificate
/// argument is given.
fn client_cert(args: &ExplainArgs) -> Option<ClientCertFacts> {
    let given = args.facts.cert_subject.is_some()
        || !args.facts.cert_san.is_empty()
        || args.facts.cert_untrusted
        || args.facts.cert_expired;
    if !given {
        return None;
    }
    // A certificate that fails chain building is reported as UntrustedRoot even when also expired,
    // as chain building comes first.
    let trust = match (args.facts.cert_untrusted, args.facts.cert_expired) {
        (true, _) => CertTrust::UntrustedRoot,
        (false, true) => CertTrust::Expired,
        (false, false) => CertTrust::Trusted,
    };
    Some(ClientCertFacts {
        subject: args.facts.cert_subject.as_ref().map(|cn| format!("CN={cn}")).unwrap_or_default(),
        common_names: args.facts.cert_subject.iter().cloned().collect(),
        dns_sans: args.facts.cert_san.clone(),
        issuer: "CN=mailsim explain".to_string(),
        not_before: Timestamp(0),
        not_after: Timestamp(0),
        sha256: String::new(),
        trust,
    })
}

fn parse_sender(s: &str) -> anyhow::Result<Option<EmailAddress>> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')).unwrap_or(t);
    if t.is_empty() {
        return Ok(None);
    }
    Ok(Some(EmailAddress::parse(t, true).map_err(|e| anyhow::anyhow!("--mail-from {s:?}: {e}"))?))
}

fn parse_rcpt(s: &str) -> anyhow::Result<EmailAddress> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')).unwrap_or(t);
    EmailAddress::parse(t, true).map_err(|e| anyhow::anyhow!("--rcpt-to {s:?}: {e}"))
}

fn category_text(c: Category) -> &'static str {
    match c {
        Category::Mailbox => "Mailbox (deliver in the tenant)",
        Category::InternalRelay => "InternalRelay (accepted, relayed to the outbound connector)",
        Category::UnknownInAuthoritative => "UnknownInAuthoritative (Directory-Based Edge Blocking)",
        Category::External => "External (not an accepted domain: needs relay rights)",
    }
}

/// What the session did with one input: its replies and what it handed on.
#[derive(Default)]
struct Step {
    replies: Vec<Reply>,
    accepted: Option<AcceptedMessage>,
    refusal: Option<Refusal>,
    start_tls: bool,
}

impl Step {
    /// The reply that answered the command (the last one written).
    fn reply(&self) -> Option<&Reply> {
        self.replies.last()
    }

    fn positive(&self) -> bool {
        self.reply().is_some_and(|r| r.code.is_positive())
    }
}

/// The session and the time it runs at; `say` feeds it one command (or the message content).
struct Dialogue {
    session: Session,
    now: Timestamp,
}

impl Dialogue {
    fn say(&mut self, input: &[u8]) -> Step {
        let mut out = Vec::new();
        self.session.on_input(input, self.now, &mut out);
        let mut step = Step::default();
        for action in out {
            match action {
                Action::Reply(r) => step.replies.push(r),
                Action::Accept(m) => step.accepted = Some(*m),
                Action::Refused(r) => step.refusal = Some(*r),
                Action::StartTls => step.start_tls = true,
                Action::Close | Action::Framed(_) | Action::Authenticate(_) => {}
            }
        }
        step
    }
}

/// A reply on one line: the first line of a multi-line reply, with how many follow.
fn one_line(reply: Option<&Reply>) -> String {
    let Some(reply) = reply else { return "(no reply)".to_string() };
    let wire = reply.to_wire();
    let mut lines = wire.lines();
    let first = lines.next().unwrap_or_default().to_string();
    match lines.count() {
        0 => first,
        n => format!("{first}  (+{n} line(s))"),
    }
}

/// The minimal message sent after DATA.
const MESSAGE: &[u8] =
    b"Message-ID: <explain@mailsim.test>\r\nSubject: mailsim explain\r\n\r\nmailsim explain\r\n.\r\n";

/// How the dialogue ended, for the Result line.
enum Ending {
    Queued(Box<AcceptedMessage>),
    RefusedAtEndOfData,
    NoRecipient,
    RefusedAt(&'static str),
}

/// The report and whether the message would be queued. Runs the session; no network, no clock.
pub fn explain(tenant: &Tenant, tenant_path: &str, args: &ExplainArgs) -> anyhow::Result<(String, bool)> {
    explain_with(tenant, tenant_path, args, None, Timestamp(0))
}

/// The message content sent after DATA: the given headers file (line ends made CRLF, dot-stuffed,
/// a body added when it has none), or a minimal message.
fn content_bytes(content: Option<&[u8]>) -> Vec<u8> {
    let Some(raw) = content else { return MESSAGE.to_vec() };
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let has_body = text.contains("\n\n");
    for line in text.trim_end_matches('\n').split('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !has_body {
        out.push_str("\r\nmailsim explain\r\n");
    }
    out.push_str(".\r\n");
    out.into_bytes()
}

/// [`explain`] with a message content (`--headers`) and the time the mail flow rules are judged
/// at: after the session, the rules section lists, in priority order, which rules match which
/// recipients, what each action would do, where processing stops, and the resulting forks.
pub fn explain_with(
    tenant: &Tenant,
    tenant_path: &str,
    args: &ExplainArgs,
    content: Option<&[u8]>,
    at: Timestamp,
) -> anyhow::Result<(String, bool)> {
    let e = explain_dialogue(tenant, tenant_path, args, content, at)?;
    Ok((e.text, e.queued.is_some()))
}

/// What [`explain_dialogue`] found, as text and as data.
pub struct Explained {
    /// The text report.
    pub text: String,
    /// The message the session queued, if it would be queued.
    pub queued: Option<AcceptedMessage>,
    /// Each command sent and the reply it got (first line, with how many follow).
    pub replies: Vec<(String, String)>,
    /// The inbound verdict, when the dialogue reached it.
    pub verdict: Option<InboundVerdict>,
    /// The `Result` line's text (`queued for 1 recipient(s)`, `refused at end of DATA`).
    pub result: String,
}

/// [`explain_with`], returning the message the session queued (with its verdict and stamps), if
/// it would be queued: the outbound explanation (`--from` a source) routes it.
pub fn explain_dialogue(
    tenant: &Tenant,
    tenant_path: &str,
    args: &ExplainArgs,
    content: Option<&[u8]>,
    at: Timestamp,
) -> anyhow::Result<Explained> {
    let message_content = content_bytes(content);
    let sender = parse_sender(&args.mail_from)?;
    let rcpts = args.rcpt_to.iter().map(|r| parse_rcpt(r)).collect::<anyhow::Result<Vec<_>>>()?;
    let cert = client_cert(args);
    let tls = args.facts.tls || cert.is_some();
    let stage = tenant.settings.rejection_stage;
    let mut out = String::new();

    let enabled = tenant.inbound_connectors.iter().filter(|c| c.enabled).count();
    let _ = writeln!(
        out,
        "Tenant      {tenant_path}: {} accepted domain(s), {} inbound connector(s) ({enabled} enabled)",
        tenant.accepted_domains.len(),
        tenant.inbound_connectors.len()
    );
    let tls_text = match (&cert, tls) {
        (_, false) => "no TLS".to_string(),
        (None, true) => "TLS, no client certificate".to_string(),
        (Some(c), true) => {
            let trust = match c.trust {
                CertTrust::Trusted => "trusted",
                CertTrust::Expired => "expired",
                CertTrust::UntrustedRoot => "untrusted root",
                CertTrust::Invalid(_) => "invalid",
            };
            let names: Vec<&str> = c.names().collect();
            let implied = if args.facts.tls { "" } else { " (a client certificate implies TLS)" };
            format!("TLS, client certificate [{}] ({trust}){implied}", names.join(", "))
        }
    };
    let _ = writeln!(out, "Connection  from {}, {tls_text}", args.source);
    if let Some(h) = &args.facts.helo {
        let _ = writeln!(out, "            EHLO {h}");
    }
    let from_text = sender.as_ref().map_or_else(String::new, ToString::to_string);
    let _ = writeln!(out, "Envelope    MAIL FROM:<{from_text}>");
    for r in &rcpts {
        let _ = writeln!(out, "            RCPT TO:<{r}>  {}", category_text(categorize(tenant, r)));
    }

    // The dialogue. The address plan is not involved: --source is the declared address already.
    let peer = PeerFacts::new(args.source, 0, args.source);
    let local_ip: IpAddr = "127.0.0.1".parse().expect("a literal address");
    let session = Session::new(Arc::new(tenant.clone()), peer, local_ip, 0, tls);
    let mut d = Dialogue { session, now: Timestamp(0) };
    let helo = args.facts.helo.as_deref().unwrap_or("explain.invalid");
    let mut replies: Vec<(String, Option<Reply>)> = Vec::new();
    let ehlo = d.say(format!("EHLO {helo}\r\n").as_bytes());
    replies.push((format!("EHLO {helo}"), ehlo.reply().cloned()));
    let mut ending = if ehlo.positive() { None } else { Some(Ending::RefusedAt("EHLO")) };
    if tls && ending.is_none() {
        let starttls = d.say(b"STARTTLS\r\n");
        replies.push(("STARTTLS".to_string(), starttls.reply().cloned()));
        if starttls.start_tls {
            d.session.on_tls_established(TlsFacts {
                version: "TLS1_2".to_string(),
                cipher: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string(),
                sni: None,
                client_cert: cert.clone(),
            });
            let ehlo = d.say(format!("EHLO {helo}\r\n").as_bytes());
            replies.push((format!("EHLO {helo}"), ehlo.reply().cloned()));
            if !ehlo.positive() {
                ending = Some(Ending::RefusedAt("EHLO"));
            }
        } else {
            ending = Some(Ending::RefusedAt("STARTTLS"));
        }
    }

    // The verdict the session reached, with the inputs it judged (see the module header).
    let mut judged: Option<(Refusal, Vec<EmailAddress>)> = None;
    if ending.is_none() {
        let utf8 = if from_text.is_ascii() { "" } else { " SMTPUTF8" };
        let mail = d.say(format!("MAIL FROM:<{from_text}>{utf8}\r\n").as_bytes());
        replies.push((format!("MAIL FROM:<{from_text}>"), mail.reply().cloned()));
        if !mail.positive() {
            ending = Some(Ending::RefusedAt("MAIL FROM"));
        }
    }
    if ending.is_none() {
        let mut accepted: Vec<EmailAddress> = Vec::new();
        for r in &rcpts {
            let step = d.say(format!("RCPT TO:<{r}>\r\n").as_bytes());
            replies.push((format!("RCPT TO:<{r}>"), step.reply().cloned()));
            if step.positive() {
                accepted.push(r.clone());
            } else if let Some(refusal) = step.refusal.filter(|f| f.rejection.is_some()) {
                let mut recipients = accepted.clone();
                recipients.push(r.clone());
                judged = Some((refusal, recipients));
            }
        }
        let data = d.say(b"DATA\r\n");
        replies.push(("DATA".to_string(), data.reply().cloned()));
        if data.reply().is_some_and(|r| r.code.get() == 354) {
            let end = d.say(&message_content);
            replies.push(("end of DATA".to_string(), end.reply().cloned()));
            ending = Some(match (end.accepted, end.refusal) {
                (Some(m), _) => Ending::Queued(Box::new(m)),
                (None, Some(refusal)) if refusal.rejection.is_some() => {
                    let recipients = refusal.envelope.recipients.clone();
                    judged = Some((refusal, recipients));
                    Ending::RefusedAtEndOfData
                }
                (None, _) => Ending::RefusedAtEndOfData,
            });
        } else {
            ending = Some(if accepted.is_empty() { Ending::NoRecipient } else { Ending::RefusedAt("DATA") });
        }
    }
    let _ = d.say(b"QUIT\r\n");
    let ending = ending.unwrap_or(Ending::RefusedAt("EHLO"));

    let verdict = match (&ending, judged) {
        (Ending::Queued(m), _) => Some(m.verdict.clone()),
        (_, Some((refusal, recipients))) => {
            let verdict = attribute(tenant, d.session.peer(), refusal.envelope.sender.as_ref(), &recipients);
            debug_assert_eq!(verdict.rejection(), refusal.rejection.as_ref(), "the session's verdict, read back");
            Some(verdict)
        }
        _ => None,
    };
    let _ = writeln!(out, "\nChecks");
    match &verdict {
        None => {
            let _ = writeln!(out, "  (not evaluated: the dialogue ended before the connector verdict)");
        }
        Some(v) if v.checks().is_empty() => {
            let _ = writeln!(out, "  (no connector rule applies)");
        }
        Some(v) => {
            for check in v.checks() {
                let _ = writeln!(out, "  {check}");
            }
        }
    }
    let _ = writeln!(out);
    match &verdict {
        Some(InboundVerdict::Accepted { connector, direction, internal, relay_allowed, .. }) => {
            let via = match connector {
                Some(c) => format!("connector \"{c}\""),
                None => "no connector (default internet path)".to_string(),
            };
            let _ = writeln!(
                out,
                "Verdict     accepted: {} via {via}, AuthAs {}, relay {}",
                direction.as_str(),
                if *internal { "Internal" } else { "Anonymous" },
                if *relay_allowed { "allowed" } else { "not allowed" }
            );
        }
        Some(InboundVerdict::Rejected { rejection, .. }) => {
            let by = match &rejection.connector {
                Some(c) => format!(" (connector \"{c}\")"),
                None => String::new(),
            };
            let _ = writeln!(out, "Verdict     rejected{by}: {}", rejection.reason);
        }
        None => {
            let _ = writeln!(out, "Verdict     not reached");
        }
    }

    let stage_text = match stage {
        RejectionStage::RcptTo => "RCPT TO",
        RejectionStage::EndOfData => "end of DATA",
    };
    let _ = writeln!(out, "\nReplies     (connector and relay refusals are sent at {stage_text}: RejectionStage)");
    for (command, reply) in &replies {
        let _ = writeln!(out, "  {command}  →  {}", one_line(reply.as_ref()));
    }
    let queued = match &ending {
        Ending::Queued(m) => {
            let section = header_section::section(&m.data);
            for field in header_section::fields(section) {
                if let Some(name) = field.name().filter(|n| n.starts_with(b"X-MS-Exchange-Organization-")) {
                    let value = String::from_utf8_lossy(field.first_value());
                    let _ = writeln!(out, "  stamped {}: {}", String::from_utf8_lossy(name), value.trim());
                }
            }
            rules_report(&mut out, tenant, m, at);
            sections::write_text(&mut out, &sections::all(&sections::Input { tenant, message: Some(m), at }));
            super::explain_auth::report(&mut out, tenant, &args.facts.auth, m)?;
            let _ = writeln!(out, "\nResult      queued for {} recipient(s)", m.envelope.recipients.len());
            true
        }
        Ending::RefusedAtEndOfData => {
            let _ = writeln!(out, "\nResult      refused at end of DATA");
            false
        }
        Ending::NoRecipient => {
            let _ = writeln!(out, "\nResult      refused: no recipient accepted");
            false
        }
        Ending::RefusedAt(command) => {
            let _ = writeln!(out, "\nResult      refused at {command}");
            false
        }
    };
    let queued = match (queued, ending) {
        (true, Ending::Queued(m)) => Some(*m),
        _ => None,
    };
    let result = out.lines().rev().find_map(|l| l.strip_prefix("Result      ")).unwrap_or_default().to_string();
    let replies = replies.iter().map(|(c, r)| (c.clone(), one_line(r.as_ref()))).collect();
    Ok(Explained { text: out, queued, replies, verdict, result })
}

/// The mail flow rules section (exo-behaviour §13): every rule in priority order with what it
/// matched and did, then the forks.
pub(crate) fn rules_report(out: &mut String, tenant: &Tenant, m: &AcceptedMessage, at: Timestamp) {
    use mailsim_core::stage::route::rule_connector;
    use mailsim_core::stage::rules::{Fate, evaluate};
    if tenant.transport_rules.is_empty() {
        return;
    }
    let outcome = evaluate(m, tenant, at);
    let _ = writeln!(out, "\nRules       in priority order, judged at {}", at.iso8601());
    for rule in tenant.rules() {
        let _ = writeln!(out, "  {} \"{}\"  ({})", rule.priority, rule.name, rule.mode);
        let hits: Vec<_> = outcome.hits.iter().filter(|h| h.rule == rule.name).collect();
        if hits.is_empty() {
            let why = if !rule.enabled {
                "disabled".to_string()
            } else if !rule.active_at(at) {
                match (rule.activation_date, rule.expiry_date) {
                    (Some(a), _) if at < a => format!("not in force before ActivationDate {}", a.iso8601()),
                    (_, Some(e)) => format!("not in force since ExpiryDate {}", e.iso8601()),
                    _ => "not in force".to_string(),
                }
            } else if m.envelope.sender.is_none() {
                "not evaluated: messages from the null sender (NDRs) skip rules".to_string()
            } else {
                "no match (or every recipient's processing stopped earlier)".to_string()
            };
            let _ = writeln!(out, "      {why}");
        }
        for hit in hits {
            let who: Vec<String> = hit.recipients.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "      matches {}", who.join(", "));
            let test = if hit.mode.enforces() { "" } else { " (test mode: would)" };
            for a in &hit.actions {
                let _ = writeln!(out, "      {}{test}: {}", a.action, a.effect);
            }
            if hit.stops {
                let _ = writeln!(out, "      stop: later rules are skipped for these recipients");
            }
        }
    }
    let _ = writeln!(out, "Forks");
    for fork in &outcome.forks {
        let who: Vec<String> = fork.recipients.iter().map(ToString::to_string).collect();
        let what = match &fork.fate {
            Fate::Route { connector: None, require_tls } => {
                format!("routed normally{}", if *require_tls { ", TLS required" } else { "" })
            }
            Fate::Route { connector: Some(c), require_tls } => {
                let tls = if *require_tls { ", TLS required" } else { "" };
                match rule_connector(tenant, c) {
                    Ok(_) => format!("routed through outbound connector \"{c}\"{tls}"),
                    Err(warning) => format!("{warning}{tls}"),
                }
            }
            Fate::Reject(kind) => {
                let ctx =
                    mailsim_core::reply::ReplyContext { host: &tenant.settings.server_name, now: at, session_id: 0 };
                format!("rejected: the sender gets an NDR with {}", kind.reply(&ctx))
            }
            Fate::Delete => "deleted silently".to_string(),
            Fate::Quarantine => "held in quarantine".to_string(),
        };
        let added = match &fork.added_by {
            Some((rule, action)) => format!(" (added by \"{rule}\", {action})"),
            None => String::new(),
        };
        let edited = if fork.data.is_some() { ", content changed" } else { "" };
        let _ = writeln!(out, "  {}{added}: {what}{edited}", who.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKDOWN: &str = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "From gateway"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true
RequireTls = false
"#;

    fn args(source: &str, rcpts: &[&str]) -> ExplainArgs {
        ExplainArgs {
            tenant: PathBuf::from("t.toml"),
            source: source.parse().unwrap(),
            mail_from: "x@fabrikam.test".to_string(),
            rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
            facts: MessageFacts::default(),
        }
    }

    #[test]
    fn bypassing_the_gateway_is_explained_with_the_exact_reply() {
        let tenant = mailsim_core::tenant::load::load(LOCKDOWN, "t.toml").unwrap();
        let (report, accepted) = explain(&tenant, "t.toml", &args("203.0.113.5", &["alice@contoso.test"])).unwrap();
        assert!(!accepted, "{report}");
        assert!(
            report.contains("FAIL [From gateway] SenderIPAddresses: 203.0.113.5 is not in 198.51.100.0/24"),
            "{report}"
        );
        assert!(report.contains("RCPT TO:<alice@contoso.test>  →  250 2.1.5 Recipient OK"), "{report}");
        assert!(
            report.contains(
                "end of DATA  →  550 5.7.51 TenantInboundAttribution; There is a partner connector configured"
            ),
            "{report}"
        );
    }

    #[test]
    fn gateway_is_accepted_and_unknown_recipients_meet_dbeb() {
        let tenant = mailsim_core::tenant::load::load(LOCKDOWN, "t.toml").unwrap();
        let a = args("198.51.100.7", &["alice@contoso.test", "nobody@contoso.test"]);
        let (report, accepted) = explain(&tenant, "t.toml", &a).unwrap();
        assert!(accepted, "{report}");
        assert!(report.contains("accepted: Incoming via connector \"From gateway\""), "{report}");
        assert!(report.contains("RCPT TO:<nobody@contoso.test>  →  550 5.4.1 Recipient address rejected"), "{report}");
        assert!(report.contains("end of DATA  →  250 2.6.0 <explain@mailsim.test>"), "{report}");
        assert!(report.contains("Result      queued for 1 recipient(s)"), "{report}");
    }

    /// The dialogue goes through STARTTLS when TLS facts are given, and the stamps reported are
    /// the ones the session wrote into the accepted message.
    #[test]
    fn tls_dialogue_and_the_session_s_own_stamps() {
        let tenant = mailsim_core::tenant::load::load(LOCKDOWN, "t.toml").unwrap();
        let mut a = args("198.51.100.7", &["alice@contoso.test"]);
        a.facts.tls = true;
        a.facts.helo = Some("gw.fabrikam.test".to_string());
        let (report, accepted) = explain(&tenant, "t.toml", &a).unwrap();
        assert!(accepted, "{report}");
        assert!(
            report.contains("  STARTTLS  →  220 2.0.0 SMTP server ready\n  EHLO gw.fabrikam.test  →  250-"),
            "{report}"
        );
        assert!(report.contains("  stamped X-MS-Exchange-Organization-MessageDirectionality: Incoming\n"), "{report}");
        assert!(report.contains("  stamped X-MS-Exchange-Organization-AuthAs: Anonymous\n"), "{report}");
    }

    /// Only unknown recipients: DBEB refuses them at RCPT TO and no connector verdict is reached.
    #[test]
    fn dbeb_alone_reaches_no_verdict() {
        let tenant = mailsim_core::tenant::load::load(LOCKDOWN, "t.toml").unwrap();
        let (report, accepted) = explain(&tenant, "t.toml", &args("198.51.100.7", &["nobody@contoso.test"])).unwrap();
        assert!(!accepted, "{report}");
        assert!(report.contains("Verdict     not reached"), "{report}");
        assert!(report.contains("DATA  →  503 5.5.2 Need rcpt command"), "{report}");
        assert!(report.contains("Result      refused: no recipient accepted"), "{report}");
    }

    #[test]
    fn rcpt_stage_refuses_at_rcpt_to_and_exits_as_refused() {
        let text = format!("[Transport]\nRejectionStage = \"RcptTo\"\n{LOCKDOWN}");
        let tenant = mailsim_core::tenant::load::load(&text, "t.toml").unwrap();
        let mut a = args("203.0.113.5", &["alice@contoso.test"]);
        a.mail_from = "<>".to_string();
        a.facts.cert_subject = Some("mx.example.test".to_string());
        let (report, accepted) = explain(&tenant, "t.toml", &a).unwrap();
        assert!(!accepted, "{report}");
        assert!(report.contains("MAIL FROM:<>"), "{report}");
        assert!(report.contains("(a client certificate implies TLS)"), "{report}");
        assert!(report.contains("RCPT TO:<alice@contoso.test>  →  550 5.7.51"), "{report}");
        assert!(report.contains("DATA  →  503 5.5.2 Need rcpt command"), "{report}");
    }

    /// The rules section: priority order, matched recipients, effects, stop points, forks.
    #[test]
    fn rules_are_explained_in_priority_order_with_stop_points() {
        let tenant_text = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[Directory.DistributionGroup]]
PrimarySmtpAddress = "NoSpecialRouting@contoso.test"
Members = ["exempt@partner-x.test"]

[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false

[[OutboundConnector]]
Name = "Route to Partner X"
UseMXRecord = false
SmartHosts = ["mx.partner-x.test"]
IsTransportRuleScoped = true

[[TransportRule]]
Name = "Force Partner X via dedicated connector"
Priority = 0
RecipientDomainIs = "partner-x.test"
ExceptIfSentToMemberOf = "NoSpecialRouting@contoso.test"
RouteMessageOutboundConnector = "Route to Partner X"
StopRuleProcessing = true

[[TransportRule]]
Name = "Tag confidential"
Priority = 1
SubjectContainsWords = "confidential"
PrependSubject = "[Confidential] "

[[TransportRule]]
Name = "Later"
Priority = 2
ActivationDate = "2100-01-01"
DeleteMessage = true
"#;
        let tenant = mailsim_core::tenant::load::load(tenant_text, "t.toml").unwrap();
        let mut a = args("192.0.2.10", &["a@partner-x.test", "c@other.test", "exempt@partner-x.test"]);
        a.mail_from = "alice@contoso.test".into();
        let headers = b"From: alice@contoso.test\nSubject: Confidential plans\n";
        let at = Timestamp::from_secs(1_800_000_000);
        let (report, accepted) = explain_with(&tenant, "t.toml", &a, Some(headers), at).unwrap();
        assert!(accepted, "{report}");
        let rules = &report[report.find("Rules").expect("a rules section")..];
        let expected = "Rules       in priority order, judged at 2027-01-15T08:00:00.000Z
  0 \"Force Partner X via dedicated connector\"  (Enforce)
      matches a@partner-x.test
      RouteMessageOutboundConnector: route through outbound connector `Route to Partner X`
      StopRuleProcessing: stop processing more rules
      stop: later rules are skipped for these recipients
  1 \"Tag confidential\"  (Enforce)
      matches c@other.test, exempt@partner-x.test
      PrependSubject: prepend \"[Confidential] \" to the subject
  2 \"Later\"  (Enforce)
      not in force before ActivationDate 2100-01-01T00:00:00.000Z
Forks
  a@partner-x.test: routed through outbound connector \"Route to Partner X\"
  c@other.test, exempt@partner-x.test: routed normally, content changed
";
        assert!(rules.starts_with(expected), "{rules}");
    }
}
