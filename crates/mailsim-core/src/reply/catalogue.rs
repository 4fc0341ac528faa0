//! Every reply mailsim can send, in one place.
//!
//! Tests assert on the [`ReplyKind`]; golden transcripts assert on the exact text produced here.
//! Texts follow `docs/exo-behaviour.md` §1.1 (the EXO front door's wire surface) and §5
//! (the reply catalogue). Where that reference marks a text or code **unconfirmed**, or has none, the
//! variant's doc says "mailsim's choice" and why.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{EnhancedStatus, Reply, ReplyCode, StatusClass};
use crate::time::Timestamp;

/// What a reply needs from the session to fill its volatile parts: the server's name and the
/// diagnostic suffix EXO appends to rejections (`[HOST 2024-10-10T21:13:00.303Z 08DCE5A0132C0518]`).
#[derive(Clone, Debug)]
pub struct ReplyContext<'a> {
    /// The tenant endpoint's host name, as in the banner.
    pub host: &'a str,
    /// The moment the reply is sent.
    pub now: Timestamp,
    /// The session id, shown as 16 hex digits.
    pub session_id: u64,
}

impl ReplyContext<'_> {
    /// EXO's current rejection suffix: host, ISO-8601 UTC time with milliseconds, 16-hex session id
    /// (§1.1 "rejection suffix").
    fn suffix(&self) -> String {
        format!("[{} {} {:016X}]", self.host, self.now.iso8601(), self.session_id)
    }
}

/// `[LastAttemptedServerName=...] [LastAttemptedIP=...]` of EXO's deferral texts (§3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastAttempt {
    /// The server name tried (smart host or MX host).
    pub server: String,
    /// `ip:port` tried, as declared (after the address plan).
    pub ip: String,
}

impl LastAttempt {
    fn suffix(&self) -> String {
        format!("[LastAttemptedServerName={}] [LastAttemptedIP={}]", self.server, self.ip)
    }
}

/// Which ESMTP extensions an EHLO reply lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The client's address, as EXO echoes it (`Hello [203.0.113.5]`).
    pub client_ip: IpAddr,
    /// The advertised SIZE limit in bytes.
    pub max_size: u64,
    /// STARTTLS is listed only before TLS is up and when the endpoint has a certificate.
    pub starttls: bool,
}

/// Why an outbound connection could not be used: the `[Message=...]` detail of EXO's 4.4.317
/// deferral (§3.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CannotConnectReason {
    /// The peer answered the greeting, EHLO or STARTTLS with a refusal; EXO quotes it
    /// (`451 5.7.3 STARTTLS is required to send mail`).
    PeerRefused(Reply),
    /// TLS is required by the connector and the peer offers no STARTTLS. mailsim's choice of
    /// detail text: EXO's is unpublished for this case (§3.3 4.4.317 row).
    StartTlsNotOffered,
    /// The STARTTLS handshake failed; `detail` is the client's description of what broke.
    /// mailsim's choice of text.
    TlsNegotiationFailed {
        /// What broke.
        detail: String,
    },
    /// The connector validates certificates and the peer presented none (§3.1).
    NoCertificate,
    /// The peer's certificate does not chain to a trusted root (§3.1, §3.3).
    UntrustedRoot,
    /// DomainValidation: no name on the certificate matches (§3.1, §3.3 `SubjectMismatch`).
    SubjectMismatch {
        /// The TlsDomain (or host name) expected.
        expected: String,
        /// The certificate's subject.
        presented: String,
        /// Its SHA-256 thumbprint.
        thumbprint: String,
    },
}

impl CannotConnectReason {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Self::PeerRefused(reply) => reply.to_string().into(),
            Self::StartTlsNotOffered => {
                "STARTTLS is not offered by the remote server and TLS is required by the connector".into()
            }
            Self::TlsNegotiationFailed { detail } => format!("TLS negotiation failed: {detail}").into(),
            Self::NoCertificate => "NoCertificate".into(),
            Self::UntrustedRoot => "UntrustedRoot".into(),
            Self::SubjectMismatch { expected, presented, thumbprint } => format!(
                "SubjectMismatch Expected Subject: {expected}. Presented Subject: {presented} Thumbprint: {thumbprint}"
            )
            .into(),
        }
    }
}

/// Every reply and its situation. Named after the situation, not the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// The banner (§1.1).
    Greeting,
    /// EHLO (§1.1): the capability list EXO advertises.
    EhloCapabilities(Capabilities),
    /// HELO: a one-line hello.
    HeloOk {
        /// The client's address.
        client_ip: IpAddr,
    },
    /// STARTTLS accepted (§1.1).
    StartTlsReady,
    /// MAIL FROM accepted (§1.1).
    SenderOk,
    /// RCPT TO accepted (§1.1).
    RecipientOk,
    /// DATA accepted, send the message (§1.1).
    StartMailInput,
    /// End of data, message queued (§1.1, \[O3] format).
    Queued {
        /// The message's Message-ID, angle brackets included.
        message_id: String,
        /// The tenant's internal id for it.
        internal_id: u64,
        /// Message size in bytes.
        bytes: u64,
        /// Transfer time in milliseconds.
        millis: u64,
    },
    /// A BDAT chunk other than the last was received. mailsim's choice: EXO's text is not in the
    /// reference.
    ChunkOk {
        /// Size of the chunk.
        bytes: u64,
    },
    /// QUIT (§1.1).
    Closing,
    /// RSET.
    Resetting,
    /// NOOP.
    Ok,
    /// VRFY never reveals whether an address exists (RFC 5321 §3.5.3, 252).
    CannotVerify,
    /// HELP: the command list, never addresses.
    Help,
    /// An unknown verb (§5.5).
    UnrecognizedCommand,
    /// A known verb with bad arguments (§5.5).
    InvalidArguments,
    /// An ESMTP parameter we do not support (§5.5).
    UnrecognizedParameter,
    /// An address that is not RFC 5321 syntax (Exchange `501 5.1.3 Invalid address`).
    InvalidAddress,
    /// Non-ASCII address without SMTPUTF8 (RFC 6531 §3.5).
    NonAsciiAddress,
    /// Commands out of order (§5.5): MAIL before EHLO/HELO.
    SendHelloFirst,
    /// RCPT before MAIL.
    NeedMail,
    /// DATA/BDAT before a successful RCPT.
    NeedRcpt,
    /// A second MAIL in one transaction.
    SenderAlreadySpecified,
    /// STARTTLS a second time (§5.5).
    OnlyOneStartTls,
    /// BDAT and DATA mixed in one transaction (RFC 3030 §3). mailsim's choice of text.
    BdatSequence,
    /// STARTTLS while the endpoint has no certificate (RFC 3207 §4).
    TlsNotAvailable,
    /// A command line over 512 octets (RFC 5321 §4.5.3.1.4; §5.5 text).
    CommandTooLong,
    /// A text line over 1000 octets in DATA (RFC 5321 §4.5.3.1.6, whose example text this is).
    TextLineTooLong,
    /// Bare CR or LF inside DATA (§5.5, Exchange's constant). mailsim rejects the whole message
    /// rather than repairing it, so SMTP smuggling can never split one message into two.
    BareLineFeed,
    /// NUL in message content. mailsim's choice of text (same family as [`Self::BareLineFeed`]).
    NulInContent,
    /// Too many protocol errors (§5.5; Exchange `MaxProtocolErrors`).
    TooManyErrors,
    /// Idle timeout (§5.5).
    Timeout,
    /// Connection cap reached (§5.5).
    TooManyConnections,
    /// The endpoint is shutting down (RFC 5321 §3.8).
    ShuttingDown,
    /// The message could not be stored (the durable queue failed to write it): nothing was
    /// accepted, the client should retry. exo-behaviour §2.4 gives EXO's wording for a transient
    /// server-side failure; mailsim uses it for its own storage failure.
    TemporaryServerError,
    /// SIZE at MAIL or the real size at end of data exceeds the limit (§5.5).
    MessageTooLarge,
    /// Header section over the limit (§5.5).
    HeaderTooLarge,
    /// More recipients than allowed in one transaction (§5.5, §6).
    TooManyRecipients,
    /// Directory-Based Edge Blocking: unknown recipient of an Authoritative domain (§5.2).
    RecipientNotFoundDbeb,
    /// Relay that no connector attributes (§5.1, 5.7.64).
    RelayDenied,
    /// OnPremises relay of a foreign-domain sender without a certificate connector (§5.1, ATTR36).
    RelayDeniedAttr36,
    /// The seeds' and Exchange Server's classic relay denial (§5.1, `550 5.7.1 Unable to relay`),
    /// used when the tenant selects the legacy relay text.
    UnableToRelay,
    /// A restricting Partner connector was not satisfied (§2.4, §5.1, 5.7.51).
    PartnerConnectorRestricted,
    /// Hybrid (§1.3): mail from on-premises attributed by an OnPremises connector whose
    /// non-wildcard `TlsSenderCertificateName` is not itself an accepted domain (5.7.51). The text
    /// is the short form seen in tests (§4, `5.7.51 TenantInboundAttribution; Rejecting`); the
    /// long form EXO sends here is unconfirmed.
    OnPremisesCertificateNameNotAccepted,
    /// RejectDirectSend (§5.1, 5.7.68).
    DirectSendNotAllowed,
    /// An honoured DMARC `p=reject` failure (exo-behaviour §14.5, §14.8, 5.7.509), at end of data
    /// (stage inferred, §14.5). `domain` is the 5322.From domain, shown in brackets as EXO does.
    DmarcReject {
        /// The sending (From) domain.
        domain: String,
    },
    /// Outbound: the smart host or MX name did not resolve (§3.3, deferral).
    DnsQueryFailed {
        /// The name looked up.
        server: String,
    },
    /// Outbound: no TCP answer in time (§3.3, deferral).
    ConnectionTimedOut {
        /// Last attempted server and address.
        last: LastAttempt,
    },
    /// Outbound: TCP refused (§3.3, deferral; EXO's catalogue text).
    ConnectionRefused {
        /// Last attempted server and address.
        last: LastAttempt,
    },
    /// Outbound: connected, but requirements unmet: the peer refused us, offers no STARTTLS while
    /// TLS is required, or its certificate does not fit (§3.3, deferral). `reason` is rendered as
    /// EXO's `[Message=...]` detail.
    CannotConnect {
        /// Why.
        reason: CannotConnectReason,
        /// Last attempted server and address.
        last: LastAttempt,
    },
    /// Outbound: the peer closed the session mid-transaction (§3.3, deferral).
    ConnectionClosedAbruptly {
        /// Last attempted server and address.
        last: LastAttempt,
    },
    /// Outbound: the peer's certificate is expired or otherwise invalid (§3.3, deferral).
    CertificateValidationFailed {
        /// Last attempted server and address.
        last: LastAttempt,
    },
    /// A generated message (an NDR) for an address nothing knows (§5.2, 5.1.10).
    RecipientNotFound,
    /// The retry window (24 h) ran out (§3.3, §5.3; the NDR's diagnostic).
    QueueExpired,
    /// Hop count over the limit (§5.3: loop).
    HopCountExceeded,
    /// DNS says the recipient domain does not exist (§5.3, Exchange's text).
    NonExistentDomain,
    /// The recipient domain publishes a null MX (RFC 7505 §3.2; EXO's text unconfirmed, this is
    /// the RFC's).
    NullMx,
    /// Neither MX nor address records, or no usable route (§5.3, `Unable to route`).
    UnableToRoute,
    /// A mail flow rule rejected the message (`RejectMessageReasonText` /
    /// `RejectMessageEnhancedStatusCode`, exo-behaviour §13.5): an NDR after acceptance, never an
    /// SMTP reply. `code` is the detail of `5.7.x` (1 or 900–999); without text the default is
    /// `Delivery not authorized, message refused` (§13.5, confirmed by \[S72]). The NDR's exact
    /// diagnostic line is **unconfirmed**; mailsim's choice is the recommended `550 <code> <text>`.
    TransportRuleRejected {
        /// The detail number of `5.7.<code>`.
        code: u16,
        /// The rule's text, if it has one.
        text: Option<String>,
    },
    /// A message already redirected or expanded once by rules was redirected or expanded again
    /// (exo-behaviour §13.5, \[B6]): `550 5.7.128 TRANSPORT.RULES.RejectMessage; Transport rules loop
    /// count exceeded and message rejected.`
    TransportRulesLoop,
    /// The connector that applies needs a TLS channel this session does not have (§2.4). `reason`
    /// is EXO's reason word (`UntrustedRoot`, `CertificateExpired`, ...), or `None` when the
    /// session is not encrypted at all (mailsim's choice for RequireTls, as §2.4 recommends).
    TlsChannelNotAcceptable {
        /// Why the certificate was not acceptable.
        reason: Option<Cow<'static, str>>,
    },
}

const fn status(class: StatusClass, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus::new(class, subject, detail))
}

use StatusClass::{Permanent as P, Success as S, Transient as T};

impl ReplyKind {
    /// The reply for this situation, with the context's host, time and session id filled in.
    pub fn reply(&self, ctx: &ReplyContext<'_>) -> Reply {
        let host = ctx.host;
        let one = |code, st, text: String| Reply::new(code, st, text);
        let fixed = |code, st, text: &'static str| Reply::new(code, st, text);
        match self {
            Self::Greeting => one(
                220,
                None,
                format!("{host} Microsoft ESMTP MAIL Service ready at {} [{:016X}]", ctx.now.rfc5322(), ctx.session_id),
            ),
            Self::EhloCapabilities(caps) => {
                let mut lines: Vec<Cow<'static, str>> = vec![
                    format!("{host} Hello [{}]", caps.client_ip).into(),
                    format!("SIZE {}", caps.max_size).into(),
                    "PIPELINING".into(),
                    "DSN".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if caps.starttls {
                    lines.push("STARTTLS".into());
                }
                lines.extend(["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"].map(Cow::Borrowed));
                Reply { code: ReplyCode::new(250).expect("valid"), status: None, lines }
            }
            Self::HeloOk { client_ip } => one(250, None, format!("{host} Hello [{client_ip}]")),
            Self::StartTlsReady => fixed(220, status(S, 0, 0), "SMTP server ready"),
            Self::SenderOk => fixed(250, status(S, 1, 0), "Sender OK"),
            Self::RecipientOk => fixed(250, status(S, 1, 5), "Recipient OK"),
            Self::StartMailInput => fixed(354, None, "Start mail input; end with <CRLF>.<CRLF>"),
            Self::Queued { message_id, internal_id, bytes, millis } => {
                let seconds = *millis as f64 / 1000.0;
                let kb_per_sec = if seconds > 0.0 { *bytes as f64 / 1024.0 / seconds } else { 0.0 };
                one(
                    250,
                    status(S, 6, 0),
                    format!(
                        "{message_id} [InternalId={internal_id}, Hostname={host}] {bytes} bytes in {seconds:.3}, {kb_per_sec:.3} KB/sec Queued mail for delivery"
                    ),
                )
            }
            Self::ChunkOk { bytes } => one(250, status(S, 0, 0), format!("{bytes} octets received")),
            Self::Closing => fixed(221, status(S, 0, 0), "Service closing transmission channel"),
            Self::Resetting => fixed(250, status(S, 0, 0), "Resetting"),
            Self::Ok => fixed(250, status(S, 0, 0), "OK"),
            Self::CannotVerify => fixed(252, status(S, 1, 5), "Cannot VRFY user"),
            Self::Help => Reply {
                code: ReplyCode::new(214).expect("valid"),
                status: None,
                lines: vec![
                    "This server supports the following commands:".into(),
                    "HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP BDAT NOOP VRFY".into(),
                ],
            },
            Self::UnrecognizedCommand => fixed(500, status(P, 3, 3), "Unrecognized command"),
            Self::InvalidArguments => fixed(501, status(P, 5, 4), "Invalid arguments"),
            Self::UnrecognizedParameter => fixed(501, status(P, 5, 4), "Unrecognized parameter"),
            Self::InvalidAddress => fixed(501, status(P, 1, 3), "Invalid address"),
            Self::NonAsciiAddress => fixed(553, status(P, 6, 7), "Non-ASCII addresses not permitted without SMTPUTF8"),
            Self::SendHelloFirst => fixed(503, status(P, 5, 2), "Send hello first"),
            Self::NeedMail => fixed(503, status(P, 5, 2), "Need mail command"),
            Self::NeedRcpt => fixed(503, status(P, 5, 2), "Need rcpt command"),
            Self::SenderAlreadySpecified => fixed(503, status(P, 5, 2), "Sender already specified"),
            Self::OnlyOneStartTls => fixed(503, status(P, 5, 2), "Only one STARTTLS command can be issued per session"),
            Self::BdatSequence => fixed(503, status(P, 5, 1), "BDAT and DATA cannot be mixed in one transaction"),
            Self::TlsNotAvailable => fixed(454, status(T, 7, 0), "TLS not available due to temporary reason"),
            Self::CommandTooLong => fixed(500, status(P, 5, 2), "Command too long"),
            Self::TextLineTooLong => fixed(500, status(P, 5, 2), "Line too long"),
            Self::BareLineFeed => fixed(554, status(P, 6, 0), "Invalid message content, contains bare linefeeds"),
            Self::NulInContent => fixed(554, status(P, 6, 0), "Invalid message content, contains NUL characters"),
            Self::TooManyErrors => {
                fixed(421, status(T, 7, 0), "Too many errors on this connection, closing transmission channel")
            }
            Self::Timeout => fixed(451, status(T, 7, 0), "Timeout waiting for client input"),
            Self::TooManyConnections => fixed(
                421,
                status(T, 3, 2),
                "The maximum number of concurrent connections has exceeded a limit, closing transmission channel",
            ),
            Self::ShuttingDown => fixed(421, status(T, 3, 2), "Service not available, closing transmission channel"),
            Self::TemporaryServerError => fixed(451, status(T, 3, 2), "Temporary server error. Please try again later"),
            Self::MessageTooLarge => fixed(552, status(P, 3, 4), "Message size exceeds fixed maximum message size"),
            Self::HeaderTooLarge => fixed(552, status(P, 3, 4), "Header size exceeds fixed maximum size"),
            Self::TooManyRecipients => fixed(452, status(T, 5, 3), "Too many recipients"),
            Self::RecipientNotFoundDbeb => one(
                550,
                status(P, 4, 1),
                format!("Recipient address rejected: Access denied. AS(201806281) {}", ctx.suffix()),
            ),
            Self::RelayDenied => one(550, status(P, 7, 64), format!("TenantAttribution; Relay Access Denied [{host}]")),
            Self::RelayDeniedAttr36 => {
                fixed(550, status(P, 7, 64), "Relay Access Denied ATTR36. For more details please refer to KB 3169958.")
            }
            Self::UnableToRelay => fixed(550, status(P, 7, 1), "Unable to relay"),
            Self::PartnerConnectorRestricted => one(
                550,
                status(P, 7, 51),
                format!(
                    "TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set {}",
                    ctx.suffix()
                ),
            ),
            Self::OnPremisesCertificateNameNotAccepted => {
                one(550, status(P, 7, 51), format!("TenantInboundAttribution; Rejecting {}", ctx.suffix()))
            }
            Self::DmarcReject { domain } => one(
                550,
                status(P, 7, 509),
                format!(
                    "Access denied, sending domain [{domain}] does not pass DMARC verification and has a DMARC policy of reject."
                ),
            ),
            Self::DirectSendNotAllowed => fixed(
                550,
                status(P, 7, 68),
                "TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources",
            ),
            Self::DnsQueryFailed { server } => {
                one(450, status(T, 4, 312), format!("DNS query failed [LastAttemptedServerName={server}]"))
            }
            Self::ConnectionTimedOut { last } => {
                one(450, status(T, 4, 315), format!("Connection timed out {}", last.suffix()))
            }
            Self::ConnectionRefused { last } => one(
                450,
                status(T, 4, 316),
                format!("Connection refused [Message=Socket error code 10061] {}", last.suffix()),
            ),
            Self::CannotConnect { reason, last } => one(
                450,
                status(T, 4, 317),
                format!("Cannot connect to remote server [Message={}] {}", reason.text(), last.suffix()),
            ),
            Self::ConnectionClosedAbruptly { last } => {
                one(450, status(T, 4, 318), format!("Connection was closed abruptly {}", last.suffix()))
            }
            Self::CertificateValidationFailed { last } => {
                one(450, status(T, 7, 320), format!("Certificate validation failed {}", last.suffix()))
            }
            Self::RecipientNotFound => fixed(
                550,
                status(P, 1, 10),
                "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            ),
            Self::QueueExpired => fixed(550, status(T, 4, 7), "QUEUE.Expired; message expired"),
            Self::HopCountExceeded => {
                one(554, status(P, 4, 14), format!("Hop count exceeded - possible mail loop ATTR34 [{host}]"))
            }
            Self::NonExistentDomain => {
                fixed(554, status(P, 4, 4), "SMTPSEND.DNS.NonExistentDomain; nonexistent domain")
            }
            Self::NullMx => fixed(556, status(P, 1, 10), "Recipient address has null MX"),
            Self::UnableToRoute => fixed(554, status(P, 4, 4), "Unable to route"),
            Self::TransportRuleRejected { code, .. } => one(550, status(P, 7, *code), self.rule_reject_text()),
            Self::TransportRulesLoop => fixed(
                550,
                status(P, 7, 128),
                "TRANSPORT.RULES.RejectMessage; Transport rules loop count exceeded and message rejected.",
            ),
            Self::TlsChannelNotAcceptable { reason } => one(
                454,
                status(T, 7, 0),
                match reason {
                    Some(reason) => format!("Failed to establish appropriate TLS channel: {reason}: Access Denied"),
                    None => "Failed to establish appropriate TLS channel: Access Denied".to_string(),
                },
            ),
        }
    }

    /// The text of a rule reject: the rule's own, or EXO's default (§13.5).
    pub fn rule_reject_text(&self) -> String {
        match self {
            Self::TransportRuleRejected { text: Some(t), .. } => t.clone(),
            _ => "Delivery not authorized, message refused".to_string(),
        }
    }

    /// What message trace shows for a rule reject whatever the rule's text (§13.6, \[O32] obs):
    /// `550 5.7.1 TRANSPORT.RULES.RejectMessage; the message was rejected by organization policy`.
    pub fn rule_reject_trace_text() -> &'static str {
        "550 5.7.1 TRANSPORT.RULES.RejectMessage; the message was rejected by organization policy"
    }

    /// Whether the server closes the connection after sending this reply.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::Closing | Self::TooManyErrors | Self::Timeout | Self::TooManyConnections | Self::ShuttingDown
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ReplyContext<'static> {
        ReplyContext {
            host: "MAILSIM01.mail.protection.mailsim.test",
            now: Timestamp(1_728_594_780_303),
            session_id: 0x08DC_E5A0_132C_0518,
        }
    }

    /// exo-behaviour §5.1, §5.2: the texts admins search for, pinned exactly.
    #[test]
    fn policy_replies_have_exo_texts() {
        let c = ctx();
        let rows: [(ReplyKind, &str); 6] = [
            (
                ReplyKind::RecipientNotFoundDbeb,
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [MAILSIM01.mail.protection.mailsim.test 2024-10-10T21:13:00.303Z 08DCE5A0132C0518]",
            ),
            (
                ReplyKind::RelayDenied,
                "550 5.7.64 TenantAttribution; Relay Access Denied [MAILSIM01.mail.protection.mailsim.test]",
            ),
            (
                ReplyKind::PartnerConnectorRestricted,
                "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set [MAILSIM01.mail.protection.mailsim.test 2024-10-10T21:13:00.303Z 08DCE5A0132C0518]",
            ),
            (
                ReplyKind::TlsChannelNotAcceptable { reason: Some("UntrustedRoot".into()) },
                "454 4.7.0 Failed to establish appropriate TLS channel: UntrustedRoot: Access Denied",
            ),
            (ReplyKind::UnableToRelay, "550 5.7.1 Unable to relay"),
            (ReplyKind::TooManyRecipients, "452 4.5.3 Too many recipients"),
        ];
        for (kind, text) in rows {
            assert_eq!(kind.reply(&c).to_string(), text);
        }
    }

    #[test]
    fn ehlo_lists_what_exo_lists() {
        let caps = Capabilities { client_ip: "127.0.0.10".parse().unwrap(), max_size: 157_286_400, starttls: true };
        let wire = ReplyKind::EhloCapabilities(caps).reply(&ctx()).to_wire();
        assert_eq!(
            wire,
            "250-MAILSIM01.mail.protection.mailsim.test Hello [127.0.0.10]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"
        );
    }
}
