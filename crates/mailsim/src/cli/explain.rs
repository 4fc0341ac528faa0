//! `mailsim explain`: given a tenant file and the facts of one connection, print which inbound
//! connector applies, every rule checked, each recipient's category and the exact replies the tenant
//! would send, without any network. The decisions are `mailsim-core`'s (`categorize`, `attribute`),
//! replayed in the order the session applies them: DBEB and (with `RejectionStage = "RcptTo"`) the
//! connector verdict at RCPT TO, the connector verdict again at end of DATA.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use mailsim_core::addr::EmailAddress;
use mailsim_core::peer::{CertTrust, ClientCertFacts, PeerFacts, TlsFacts};
use mailsim_core::reply::{ReplyContext, ReplyKind};
use mailsim_core::stage::categorize::{Category, categorize};
use mailsim_core::stage::inbound::{InboundVerdict, attribute};
use mailsim_core::tenant::load::load_with_warnings;
use mailsim_core::tenant::{RejectionStage, Tenant};
use mailsim_core::time::Timestamp;

/// Facts of one connection and envelope to explain.
#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// Tenant configuration file (TOML, EXO parameter names).
    #[arg(long, env = "MAILSIM_TENANT", value_name = "FILE")]
    pub tenant: PathBuf,
    /// The sending server's address as connectors see it (the declared address, e.g. 198.51.100.7).
    #[arg(long, env = "MAILSIM_EXPLAIN_SOURCE", value_name = "IP")]
    pub source: IpAddr,
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
    /// P1 MAIL FROM address, or "<>" for the null sender.
    #[arg(long = "mail-from", env = "MAILSIM_EXPLAIN_MAIL_FROM", value_name = "ADDR")]
    pub mail_from: String,
    /// A RCPT TO address (repeatable).
    #[arg(
        long = "rcpt-to",
        value_name = "ADDR",
        required = true,
        env = "MAILSIM_EXPLAIN_RCPT_TO",
        value_delimiter = ','
    )]
    pub rcpt_to: Vec<String>,
    /// The EHLO name the client gives.
    #[arg(long, env = "MAILSIM_EXPLAIN_HELO", value_name = "NAME")]
    pub helo: Option<String>,
}

/// Loads the tenant, explains, prints. Exit code 0 when the message would be queued, 1 when the
/// tenant would refuse it (or every recipient).
pub fn run(args: &ExplainArgs) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(&args.tenant)
        .with_context(|| format!("cannot read tenant file {}", args.tenant.display()))?;
    let loaded = load_with_warnings(&text, &args.tenant.display().to_string())?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let (report, accepted) = explain(&loaded.tenant, &args.tenant.display().to_string(), args)?;
    print!("{report}");
    Ok(if accepted { 0 } else { 1 })
}

/// The facts a client certificate stands for, from the arguments; `None` when no certificate
/// argument is given.
fn client_cert(args: &ExplainArgs) -> Option<ClientCertFacts> {
    let given = args.cert_subject.is_some() || !args.cert_san.is_empty() || args.cert_untrusted || args.cert_expired;
    if !given {
        return None;
    }
    // A certificate that fails chain building is reported as UntrustedRoot even when also expired,
    // as chain building comes first.
    let trust = match (args.cert_untrusted, args.cert_expired) {
        (true, _) => CertTrust::UntrustedRoot,
        (false, true) => CertTrust::Expired,
        (false, false) => CertTrust::Trusted,
    };
    Some(ClientCertFacts {
        subject: args.cert_subject.as_ref().map(|cn| format!("CN={cn}")).unwrap_or_default(),
        common_names: args.cert_subject.iter().cloned().collect(),
        dns_sans: args.cert_san.clone(),
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

/// The report and whether the message would be queued. Pure apart from formatting.
pub fn explain(tenant: &Tenant, tenant_path: &str, args: &ExplainArgs) -> anyhow::Result<(String, bool)> {
    let sender = parse_sender(&args.mail_from)?;
    let rcpts = args.rcpt_to.iter().map(|r| parse_rcpt(r)).collect::<anyhow::Result<Vec<_>>>()?;
    let cert = client_cert(args);
    let tls = args.tls || cert.is_some();
    let mut peer = PeerFacts::new(args.source, 0, args.source);
    peer.helo = args.helo.clone();
    if tls {
        peer.tls = Some(TlsFacts {
            version: "TLS1_2".to_string(),
            cipher: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string(),
            sni: None,
            client_cert: cert.clone(),
        });
    }
    let ctx = ReplyContext { host: &tenant.settings.server_name, now: Timestamp(0), session_id: 0 };
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
            let implied = if args.tls { "" } else { " (a client certificate implies TLS)" };
            format!("TLS, client certificate [{}] ({trust}){implied}", names.join(", "))
        }
    };
    let _ = writeln!(out, "Connection  from {}, {tls_text}", args.source);
    if let Some(h) = &args.helo {
        let _ = writeln!(out, "            EHLO {h}");
    }
    let from_text = sender.as_ref().map_or_else(String::new, ToString::to_string);
    let _ = writeln!(out, "Envelope    MAIL FROM:<{from_text}>");
    for r in &rcpts {
        let _ = writeln!(out, "            RCPT TO:<{r}>  {}", category_text(categorize(tenant, r)));
    }

    // The verdict for the whole envelope: what the trace would record.
    let verdict = attribute(tenant, &peer, sender.as_ref(), &rcpts);
    let _ = writeln!(out, "\nChecks");
    if verdict.checks().is_empty() {
        let _ = writeln!(out, "  (no connector rule applies)");
    }
    for check in verdict.checks() {
        let _ = writeln!(out, "  {check}");
    }
    let _ = writeln!(out);
    match &verdict {
        InboundVerdict::Accepted { connector, direction, internal, relay_allowed, .. } => {
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
        InboundVerdict::Rejected { rejection, .. } => {
            let by = match &rejection.connector {
                Some(c) => format!(" (connector \"{c}\")"),
                None => String::new(),
            };
            let _ = writeln!(out, "Verdict     rejected{by}: {}", rejection.reason);
        }
    }

    // The dialogue, as the session runs it (exo-semantics §1.2): DBEB at RCPT TO, the connector
    // verdict at RCPT TO or end of DATA per RejectionStage, and again at end of DATA.
    let stage_text = match stage {
        RejectionStage::RcptTo => "RCPT TO",
        RejectionStage::EndOfData => "end of DATA",
    };
    let _ = writeln!(out, "\nReplies     (connector and relay refusals are sent at {stage_text}: RejectionStage)");
    let _ = writeln!(out, "  MAIL FROM:<{from_text}>  →  {}", ReplyKind::SenderOk.reply(&ctx));
    let mut accepted: Vec<EmailAddress> = Vec::new();
    for r in &rcpts {
        let reply = if categorize(tenant, r) == Category::UnknownInAuthoritative {
            ReplyKind::RecipientNotFoundDbeb
        } else {
            let mut so_far = accepted.clone();
            so_far.push(r.clone());
            match (stage, attribute(tenant, &peer, sender.as_ref(), &so_far)) {
                (RejectionStage::RcptTo, InboundVerdict::Rejected { rejection, .. }) => rejection.reply,
                _ => {
                    accepted.push(r.clone());
                    ReplyKind::RecipientOk
                }
            }
        };
        let _ = writeln!(out, "  RCPT TO:<{r}>  →  {}", reply.reply(&ctx));
    }
    if accepted.is_empty() {
        let _ = writeln!(out, "  DATA  →  {}", ReplyKind::NeedRcpt.reply(&ctx));
        let _ = writeln!(out, "\nResult      refused: no recipient accepted");
        return Ok((out, false));
    }
    let _ = writeln!(out, "  DATA  →  {}", ReplyKind::StartMailInput.reply(&ctx));
    let final_verdict = attribute(tenant, &peer, sender.as_ref(), &accepted);
    let (reply, queued) = match &final_verdict {
        InboundVerdict::Rejected { rejection, .. } => (rejection.reply.clone(), false),
        InboundVerdict::Accepted { .. } => {
            let queued = ReplyKind::Queued {
                message_id: "<explain@mailsim.test>".to_string(),
                internal_id: 0,
                bytes: 0,
                millis: 0,
            };
            (queued, true)
        }
    };
    let _ = writeln!(out, "  end of DATA  →  {}", reply.reply(&ctx));
    if queued {
        for (name, value) in final_verdict.stamp(&tenant.settings.server_name) {
            let _ = writeln!(out, "  stamped {name}: {value}");
        }
        let _ = writeln!(out, "\nResult      queued for {} recipient(s)", accepted.len());
    } else {
        let _ = writeln!(out, "\nResult      refused at end of DATA");
    }
    Ok((out, queued))
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
            tls: false,
            cert_subject: None,
            cert_san: Vec::new(),
            cert_untrusted: false,
            cert_expired: false,
            helo: None,
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

    #[test]
    fn rcpt_stage_refuses_at_rcpt_to_and_exits_as_refused() {
        let text = format!("[Transport]\nRejectionStage = \"RcptTo\"\n{LOCKDOWN}");
        let tenant = mailsim_core::tenant::load::load(&text, "t.toml").unwrap();
        let mut a = args("203.0.113.5", &["alice@contoso.test"]);
        a.mail_from = "<>".to_string();
        a.cert_subject = Some("mx.example.test".to_string());
        let (report, accepted) = explain(&tenant, "t.toml", &a).unwrap();
        assert!(!accepted, "{report}");
        assert!(report.contains("MAIL FROM:<>"), "{report}");
        assert!(report.contains("(a client certificate implies TLS)"), "{report}");
        assert!(report.contains("RCPT TO:<alice@contoso.test>  →  550 5.7.51"), "{report}");
        assert!(report.contains("DATA  →  503 5.5.2 Need rcpt command"), "{report}");
    }
}
