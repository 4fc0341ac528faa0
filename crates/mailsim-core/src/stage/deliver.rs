//! Deliver: the pure decisions inside one outbound attempt (exo-behaviour §3.1 TlsSettings, §3.3).
//!
//! The shell's client asks [`tls_gate`] after EHLO, [`check_server_certificate`] after the
//! handshake, and [`classify_reply`] for every reply; each answer is data. Failures come back as
//! an [`AttemptFailure`]; [`crate::stage::attempt::failure_reply`] names the EXO deferral that
//! stands for it (`450 4.4.317 ... [Message=...]`).

use crate::peer::CertTrust;
use crate::reply::Reply;
use crate::stage::attempt::{AttemptFailure, CertificateProblem};
use crate::stage::route::TlsPolicy;
use crate::tenant::TlsSettings;

/// What to do after EHLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsStep {
    /// Go on in plaintext.
    Plain,
    /// Send STARTTLS.
    StartTls,
}

/// `$null` tries TLS and falls back to plaintext; every other setting requires it (§3.1).
pub fn tls_gate(policy: &TlsPolicy, starttls_offered: bool) -> Result<TlsStep, AttemptFailure> {
    match (starttls_offered, policy.settings) {
        (true, _) => Ok(TlsStep::StartTls),
        (false, TlsSettings::Opportunistic) => Ok(TlsStep::Plain),
        (false, _) => Err(AttemptFailure::StartTlsNotOffered),
    }
}

/// The facts of a server certificate, as the client saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertFacts {
    /// Full subject, e.g. `CN=mail.gateway.test`.
    pub subject: String,
    /// CNs and DNS SANs.
    pub names: Vec<String>,
    /// Chain and validity against the simulated world's CA.
    pub trust: CertTrust,
    /// SHA-256 thumbprint, upper-case hex.
    pub sha256: String,
}

fn name_matches(expected: &crate::tenant::DomainPattern, presented: &str) -> bool {
    let presented = presented.to_ascii_lowercase();
    match presented.strip_prefix("*.") {
        // A wildcard certificate covers one label under its parent (RFC 6125 §6.4.3).
        Some(parent) => match expected {
            crate::tenant::DomainPattern::Exact(d) => {
                d.as_str().split_once('.').is_some_and(|(_, rest)| rest == parent)
            }
            crate::tenant::DomainPattern::Subtree(d) => d.as_str() == parent,
            crate::tenant::DomainPattern::Any => true,
        },
        None => crate::addr::Domain::parse(&presented, true).is_ok_and(|d| expected.matches(&d)),
    }
}

/// Checks the server certificate after the handshake. `server_name` is the smart host or MX host
/// name, used for DomainValidation when the connector has no `TlsDomain` (§3.1 recommendation).
pub fn check_server_certificate(
    policy: &TlsPolicy,
    cert: Option<&ServerCertFacts>,
    server_name: &str,
) -> Result<(), AttemptFailure> {
    let needs_chain = matches!(policy.settings, TlsSettings::CertificateValidation | TlsSettings::DomainValidation);
    if !needs_chain {
        return Ok(());
    }
    let problem = |p| Err(AttemptFailure::Certificate(p));
    let Some(cert) = cert else {
        return problem(CertificateProblem::Missing);
    };
    match &cert.trust {
        CertTrust::Trusted => {}
        CertTrust::Expired => return problem(CertificateProblem::Expired),
        CertTrust::UntrustedRoot => return problem(CertificateProblem::UntrustedRoot),
        CertTrust::Invalid(_) => return problem(CertificateProblem::Invalid),
    }
    if policy.settings == TlsSettings::DomainValidation {
        let expected = policy
            .tls_domain
            .clone()
            .or_else(|| crate::tenant::DomainPattern::parse(server_name))
            .unwrap_or(crate::tenant::DomainPattern::Any);
        if !cert.names.iter().any(|n| name_matches(&expected, n)) {
            return problem(CertificateProblem::SubjectMismatch {
                expected: expected.to_string(),
                presented: cert.subject.clone(),
                thumbprint: cert.sha256.clone(),
            });
        }
    }
    Ok(())
}

/// How a reply counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyClass {
    /// 2xx/3xx.
    Positive,
    /// 4xx: retry later.
    Transient,
    /// 5xx: give up, NDR.
    Permanent,
}

/// Classifies a server reply (RFC 5321 §4.2.1). Exchange-style `550 4.4.7` counts by its code.
pub fn classify_reply(reply: &Reply) -> ReplyClass {
    if reply.code.is_positive() {
        ReplyClass::Positive
    } else if reply.code.is_transient() {
        ReplyClass::Transient
    } else {
        ReplyClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::catalogue::LastAttempt;
    use crate::stage::attempt::failure_reply;
    use crate::tenant::DomainPattern;

    fn last() -> LastAttempt {
        LastAttempt { server: "smart.gateway.test".into(), ip: "198.51.100.7:25".into() }
    }

    fn policy(settings: TlsSettings, domain: Option<&str>) -> TlsPolicy {
        TlsPolicy { settings, tls_domain: domain.and_then(DomainPattern::parse) }
    }

    fn cert(names: &[&str], trust: CertTrust) -> ServerCertFacts {
        ServerCertFacts {
            subject: format!("CN={}", names[0]),
            names: names.iter().map(|s| s.to_string()).collect(),
            trust,
            sha256: "AB".into(),
        }
    }

    #[test]
    fn gate_by_tls_settings() {
        use TlsSettings::*;
        for (settings, offered, ok) in [
            (Opportunistic, true, Some(TlsStep::StartTls)),
            (Opportunistic, false, Some(TlsStep::Plain)),
            (EncryptionOnly, false, None),
            (CertificateValidation, false, None),
            (DomainValidation, false, None),
            (DomainValidation, true, Some(TlsStep::StartTls)),
        ] {
            assert_eq!(tls_gate(&policy(settings, None), offered).ok(), ok, "{settings:?} {offered}");
        }
    }

    /// Each TlsSettings value against a good, wrong-name, untrusted and expired certificate.
    #[test]
    fn certificate_matrix() {
        use TlsSettings::*;
        let good = cert(&["smart.gateway.test"], CertTrust::Trusted);
        let wrong = cert(&["mail.wrong.test"], CertTrust::Trusted);
        let untrusted = cert(&["smart.gateway.test"], CertTrust::UntrustedRoot);
        let expired = cert(&["smart.gateway.test"], CertTrust::Expired);
        let wildcard = cert(&["*.gateway.test"], CertTrust::Trusted);
        let rows: [(TlsSettings, &ServerCertFacts, Option<&str>); 12] = [
            (EncryptionOnly, &wrong, None),
            (EncryptionOnly, &untrusted, None),
            (EncryptionOnly, &expired, None),
            (CertificateValidation, &good, None),
            (CertificateValidation, &wrong, None),
            (CertificateValidation, &untrusted, Some("4.4.317")),
            (CertificateValidation, &expired, Some("4.7.320")),
            (DomainValidation, &good, None),
            (DomainValidation, &wrong, Some("4.4.317")),
            (DomainValidation, &untrusted, Some("4.4.317")),
            (DomainValidation, &expired, Some("4.7.320")),
            (DomainValidation, &wildcard, None),
        ];
        let ctx = crate::reply::ReplyContext { host: "h", now: crate::time::Timestamp(0), session_id: 0 };
        for (settings, c, expected) in rows {
            let got = check_server_certificate(&policy(settings, Some("*.gateway.test")), Some(c), "x")
                .err()
                .map(|f| failure_reply(&f, Some(&last())).reply(&ctx).status.unwrap().to_string());
            assert_eq!(got.as_deref(), expected, "{settings:?} {:?}", c.names);
        }
        let mismatch = check_server_certificate(&policy(DomainValidation, Some("gateway.test")), Some(&wrong), "x");
        let text = failure_reply(&mismatch.unwrap_err(), Some(&last())).reply(&ctx).to_string();
        assert!(text.starts_with("450 4.4.317 Cannot connect to remote server [Message=SubjectMismatch Expected Subject: gateway.test. Presented Subject: CN=mail.wrong.test"), "{text}");
        assert!(text.ends_with("[LastAttemptedServerName=smart.gateway.test] [LastAttemptedIP=198.51.100.7:25]"));
    }
}
