//! Attempt: what one outbound attempt ended with, and the reply that settles each recipient
//! (exo-behaviour §3.3, §3.1 TlsSettings, §5.6). Pure; Postfix's `smtp_trouble.c` is the model.
//!
//! Contract: the shell runs the conversation and reports, without judging it, either the replies
//! of a completed transaction ([`TransactionReplies`]) or the one thing that stopped the attempt
//! ([`AttemptFailure`], mapped one-to-one from its client's errors). [`failure_reply`] is the only
//! place that turns a failure into a reply; [`settle_transaction`] the only place that picks each
//! recipient's reply from a transaction. [`crate::stage::outcome::settle`] then decides
//! delivered, deferred or failed from that reply.
//!
//! Semantics, written down once:
//! - Before a server was reached: DNS decides (§3.3 4.4.312 deferral, §5.3 non-existent domain
//!   and null MX failures, `Unable to route` when no host is left).
//! - TCP refused: 4.4.316. No answer (connect or greeting timeout): 4.4.315.
//! - The peer refused the greeting, EHLO or STARTTLS: 4.4.317 quoting the peer's reply. TLS is
//!   required and STARTTLS is not offered, the handshake fails, or the certificate is missing,
//!   untrusted or for another name: 4.4.317 with the reason. An expired or otherwise invalid
//!   certificate: 4.7.320 (§3.3).
//! - Anything else that ends the session before the transaction completes (closed, timed out
//!   after the greeting, a refusal at a later step that leaves no transaction): 4.4.318.
//! - In a completed transaction (RFC 5321 §3.3): a refused MAIL decides every recipient; a
//!   refused RCPT decides its recipient; the accepted ones share the DATA reply when DATA was
//!   refused, otherwise the reply after the final dot.

use crate::phase::SmtpPhase;
use crate::reply::catalogue::{CannotConnectReason, LastAttempt};
use crate::reply::{Reply, ReplyContext, ReplyKind};

/// Why resolving the next hop ended the attempt before any connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsFailure {
    /// The lookup of `name` got no usable answer (or the world has no DNS server).
    QueryFailed {
        /// The name that was to be looked up.
        name: String,
    },
    /// The answer decided, as judged by [`crate::stage::route::mx_targets`],
    /// [`crate::stage::route::smart_host_names`] or [`crate::stage::route::address_targets`].
    Answered(ReplyKind),
    /// No host was left to try.
    NoHosts,
}

/// What was wrong with the server's certificate (§3.1 TlsSettings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateProblem {
    /// None was presented.
    Missing,
    /// It does not chain to a trusted root.
    UntrustedRoot,
    /// It is outside its validity period.
    Expired,
    /// Otherwise invalid (bad signature, wrong usage, ...).
    Invalid,
    /// No name on it matches the expected domain (DomainValidation).
    SubjectMismatch {
        /// The TlsDomain (or host name) expected.
        expected: String,
        /// The certificate's subject.
        presented: String,
        /// Its SHA-256 thumbprint.
        thumbprint: String,
    },
}

/// The one thing that stopped an attempt, as the shell saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptFailure {
    /// Resolving the next hop failed.
    Dns(DnsFailure),
    /// TCP connection refused.
    Refused,
    /// The TCP connection could not be made otherwise (no route, reset, ...).
    Unreachable,
    /// No reply (or write) in time at this phase.
    TimedOut(SmtpPhase),
    /// The session ended at this phase: closed by the peer, an I/O error, a protocol violation.
    Closed(SmtpPhase),
    /// The peer refused this phase's command, and no transaction went on.
    Rejected {
        /// Where.
        phase: SmtpPhase,
        /// The peer's reply.
        reply: Reply,
    },
    /// TLS is required and the peer does not offer STARTTLS.
    StartTlsNotOffered,
    /// STARTTLS was accepted but the handshake failed; `detail` describes what broke.
    TlsHandshake {
        /// What broke.
        detail: String,
    },
    /// The server's certificate does not satisfy the connector.
    Certificate(CertificateProblem),
}

/// Every reply of one mail transaction, as data: a refusal here is an answer, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionReplies {
    /// Reply to MAIL FROM.
    pub mail: Reply,
    /// Replies to RCPT TO, one per recipient, in order (fewer when MAIL was refused without pipelining).
    pub rcpts: Vec<Reply>,
    /// Reply to DATA, when it was sent.
    pub data: Option<Reply>,
    /// Reply after the final dot, when the body (or, RFC 2920 §3.1, a lone dot) was sent.
    pub dot: Option<Reply>,
}

impl TransactionReplies {
    /// Recipients the server accepted.
    pub fn accepted_rcpts(&self) -> usize {
        self.rcpts.iter().filter(|r| r.code.get() / 100 == 2).count()
    }

    /// The server took the message for at least one recipient.
    pub fn accepted(&self) -> bool {
        self.mail.code.get() / 100 == 2
            && self.accepted_rcpts() > 0
            && self.dot.as_ref().is_some_and(|r| r.code.get() / 100 == 2)
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The transaction ran to its end (accepted or refused): these replies.
    Transaction(TransactionReplies),
    /// The attempt stopped before or during the transaction.
    Failed(AttemptFailure),
}

/// The reply a failure stands for (§3.3), naming `last`, the server tried last.
/// Connection-level failures always have one; without it they read as `Unable to route`.
pub fn failure_reply(failure: &AttemptFailure, last: Option<&LastAttempt>) -> ReplyKind {
    let cannot_connect = |reason| match last {
        Some(last) => ReplyKind::CannotConnect { reason, last: last.clone() },
        None => ReplyKind::UnableToRoute,
    };
    let with_last = |kind: fn(LastAttempt) -> ReplyKind| last.cloned().map_or(ReplyKind::UnableToRoute, kind);
    match failure {
        AttemptFailure::Dns(DnsFailure::QueryFailed { name }) => ReplyKind::DnsQueryFailed { server: name.clone() },
        AttemptFailure::Dns(DnsFailure::Answered(kind)) => kind.clone(),
        AttemptFailure::Dns(DnsFailure::NoHosts) => ReplyKind::UnableToRoute,
        AttemptFailure::Refused => with_last(|last| ReplyKind::ConnectionRefused { last }),
        AttemptFailure::Unreachable | AttemptFailure::TimedOut(SmtpPhase::Connect) => {
            with_last(|last| ReplyKind::ConnectionTimedOut { last })
        }
        AttemptFailure::Rejected { phase: SmtpPhase::Connect | SmtpPhase::Ehlo | SmtpPhase::StartTls, reply } => {
            cannot_connect(CannotConnectReason::PeerRefused(reply.clone()))
        }
        AttemptFailure::StartTlsNotOffered => cannot_connect(CannotConnectReason::StartTlsNotOffered),
        AttemptFailure::TlsHandshake { detail } => {
            cannot_connect(CannotConnectReason::TlsNegotiationFailed { detail: detail.clone() })
        }
        AttemptFailure::Certificate(problem) => match problem {
            CertificateProblem::Missing => cannot_connect(CannotConnectReason::NoCertificate),
            CertificateProblem::UntrustedRoot => cannot_connect(CannotConnectReason::UntrustedRoot),
            CertificateProblem::Expired | CertificateProblem::Invalid => {
                with_last(|last| ReplyKind::CertificateValidationFailed { last })
            }
            CertificateProblem::SubjectMismatch { expected, presented, thumbprint } => {
                cannot_connect(CannotConnectReason::SubjectMismatch {
                    expected: expected.clone(),
                    presented: presented.clone(),
                    thumbprint: thumbprint.clone(),
                })
            }
        },
        AttemptFailure::TimedOut(_) | AttemptFailure::Closed(_) | AttemptFailure::Rejected { .. } => {
            with_last(|last| ReplyKind::ConnectionClosedAbruptly { last })
        }
    }
}

/// The reply that settles each of `recipients` recipients in a completed transaction.
pub fn settle_transaction(t: &TransactionReplies, recipients: usize) -> Vec<Reply> {
    (0..recipients)
        .map(|i| {
            if !t.mail.code.is_positive() {
                return t.mail.clone();
            }
            match t.rcpts.get(i) {
                Some(rcpt) if !rcpt.code.is_positive() => rcpt.clone(),
                Some(_) => match (&t.data, &t.dot) {
                    (Some(data), _) if !data.code.is_positive() => data.clone(),
                    (_, Some(dot)) => dot.clone(),
                    _ => t.mail.clone(),
                },
                None => t.mail.clone(),
            }
        })
        .collect()
}

/// The reply that settles each of `recipients` recipients after an attempt: the transaction's,
/// or the failure's for all of them alike.
pub fn recipient_replies(
    result: &AttemptResult,
    last: Option<&LastAttempt>,
    recipients: usize,
    ctx: &ReplyContext<'_>,
) -> Vec<Reply> {
    match result {
        AttemptResult::Transaction(t) => settle_transaction(t, recipients),
        AttemptResult::Failed(failure) => vec![failure_reply(failure, last).reply(ctx); recipients],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn ctx() -> ReplyContext<'static> {
        ReplyContext { host: "MAILSIM01", now: Timestamp(0), session_id: 0 }
    }

    fn last() -> LastAttempt {
        LastAttempt { server: "smart.gateway.test".into(), ip: "198.51.100.7:25".into() }
    }

    fn r(code: u16, text: &'static str) -> Reply {
        Reply::parse(&format!("{code} {text}\r\n")).expect("reply")
    }

    /// One row per rule of the module header: failure → the reply's wire text.
    #[test]
    fn failure_reply_table() {
        use AttemptFailure as F;
        let suffix = "[LastAttemptedServerName=smart.gateway.test] [LastAttemptedIP=198.51.100.7:25]";
        let rows: Vec<(F, String)> = vec![
            (
                F::Dns(DnsFailure::QueryFailed { name: "partner.test".into() }),
                "450 4.4.312 DNS query failed [LastAttemptedServerName=partner.test]".into(),
            ),
            (
                F::Dns(DnsFailure::Answered(ReplyKind::NonExistentDomain)),
                "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain".into(),
            ),
            (F::Dns(DnsFailure::NoHosts), "554 5.4.4 Unable to route".into()),
            (F::Refused, format!("450 4.4.316 Connection refused [Message=Socket error code 10061] {suffix}")),
            (F::Unreachable, format!("450 4.4.315 Connection timed out {suffix}")),
            (F::TimedOut(SmtpPhase::Connect), format!("450 4.4.315 Connection timed out {suffix}")),
            (
                F::Rejected { phase: SmtpPhase::Connect, reply: r(554, "5.7.1 go away") },
                format!("450 4.4.317 Cannot connect to remote server [Message=554 5.7.1 go away] {suffix}"),
            ),
            (
                F::Rejected { phase: SmtpPhase::Ehlo, reply: r(451, "5.7.3 STARTTLS is required to send mail") },
                format!(
                    "450 4.4.317 Cannot connect to remote server [Message=451 5.7.3 STARTTLS is required to send mail] {suffix}"
                ),
            ),
            (
                F::Rejected { phase: SmtpPhase::StartTls, reply: r(454, "4.7.0 TLS not available") },
                format!("450 4.4.317 Cannot connect to remote server [Message=454 4.7.0 TLS not available] {suffix}"),
            ),
            (
                F::StartTlsNotOffered,
                format!(
                    "450 4.4.317 Cannot connect to remote server [Message=STARTTLS is not offered by the remote server and TLS is required by the connector] {suffix}"
                ),
            ),
            (
                F::TlsHandshake { detail: "TLS failure: alert".into() },
                format!(
                    "450 4.4.317 Cannot connect to remote server [Message=TLS negotiation failed: TLS failure: alert] {suffix}"
                ),
            ),
            (
                F::Certificate(CertificateProblem::Missing),
                format!("450 4.4.317 Cannot connect to remote server [Message=NoCertificate] {suffix}"),
            ),
            (
                F::Certificate(CertificateProblem::UntrustedRoot),
                format!("450 4.4.317 Cannot connect to remote server [Message=UntrustedRoot] {suffix}"),
            ),
            (
                F::Certificate(CertificateProblem::Expired),
                format!("450 4.7.320 Certificate validation failed {suffix}"),
            ),
            (
                F::Certificate(CertificateProblem::Invalid),
                format!("450 4.7.320 Certificate validation failed {suffix}"),
            ),
            (
                F::Certificate(CertificateProblem::SubjectMismatch {
                    expected: "gateway.test".into(),
                    presented: "CN=mail.wrong.test".into(),
                    thumbprint: "AB".into(),
                }),
                format!(
                    "450 4.4.317 Cannot connect to remote server [Message=SubjectMismatch Expected Subject: gateway.test. Presented Subject: CN=mail.wrong.test Thumbprint: AB] {suffix}"
                ),
            ),
            (F::TimedOut(SmtpPhase::Ehlo), format!("450 4.4.318 Connection was closed abruptly {suffix}")),
            (F::TimedOut(SmtpPhase::Dot), format!("450 4.4.318 Connection was closed abruptly {suffix}")),
            (F::Closed(SmtpPhase::Mail), format!("450 4.4.318 Connection was closed abruptly {suffix}")),
            (
                F::Rejected { phase: SmtpPhase::Data, reply: r(554, "5.0.0 no") },
                format!("450 4.4.318 Connection was closed abruptly {suffix}"),
            ),
        ];
        for (failure, text) in rows {
            assert_eq!(failure_reply(&failure, Some(&last())).reply(&ctx()).to_string(), text, "{failure:?}");
        }
        assert_eq!(failure_reply(&F::Refused, None), ReplyKind::UnableToRoute);
    }

    /// One row per rule of per-recipient settlement: (MAIL, RCPTs, DATA, dot) → each recipient's code.
    #[test]
    fn settle_transaction_table() {
        type Row = (u16, &'static [u16], Option<u16>, Option<u16>, usize, &'static [u16]);
        let rows: [Row; 7] = [
            // Everything accepted: the end-of-data reply for everyone.
            (250, &[250, 250], Some(354), Some(251), 2, &[251, 251]),
            // MAIL refused: its reply for everyone.
            (550, &[], None, None, 2, &[550, 550]),
            // MAIL refused after pipelined RCPTs: still MAIL's reply.
            (451, &[250, 250], None, None, 2, &[451, 451]),
            // One RCPT refused: that recipient its RCPT reply, the other the dot's.
            (250, &[550, 250], Some(354), Some(251), 2, &[550, 251]),
            // DATA refused: the accepted recipients get DATA's reply.
            (250, &[250, 452], Some(554), None, 2, &[554, 452]),
            // Refused after the final dot.
            (250, &[250], Some(354), Some(552), 1, &[552]),
            // Fewer RCPT replies than recipients (no dot): MAIL's reply.
            (250, &[250], Some(354), None, 2, &[250, 250]),
        ];
        let reply = |code: u16| r(code, "x");
        for (mail, rcpts, data, dot, n, expected) in rows {
            let t = TransactionReplies {
                mail: reply(mail),
                rcpts: rcpts.iter().map(|c| reply(*c)).collect(),
                data: data.map(reply),
                dot: dot.map(reply),
            };
            let got: Vec<u16> = settle_transaction(&t, n).iter().map(|r| r.code.get()).collect();
            assert_eq!(got, expected, "{t:?}");
        }
    }
}
