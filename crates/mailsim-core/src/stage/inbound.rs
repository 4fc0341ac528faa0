//! Inbound: tenant attribution and inbound-connector matching (exo-behaviour §0, §1.3, §2.2, §2.3,
//! §2.4, §4.2, §5.1).
//!
//! Contract: [`attribute`] takes the tenant, the peer's facts (with `ip` already translated through
//! the address plan), the P1 MAIL FROM (`None` for the null sender `<>`) and the recipients so far,
//! and returns an [`InboundVerdict`]. The verdict names the connector of record and lists every rule
//! it checked ([`Check`]), so the trace and `mailsim explain` never reconstruct the reasoning. It
//! never chooses the SMTP stage (the session does, from `TransportSettings::rejection_stage`) and
//! never renders text (the reply catalogue does). Pure: no I/O, no clock.
//!
//! Order of evaluation:
//! 1. **Originating** (§1.3 item 2), through enabled OnPremises connectors only: (a) a trusted
//!    client certificate whose CN or DNS SAN matches `TlsSenderCertificateName`; (b) otherwise the
//!    source IP in `SenderIPAddresses` and a MAIL FROM domain that is an accepted domain. An IP match
//!    with a foreign sender and external recipients is `5.7.64 ... ATTR36` (§4.2).
//! 2. **Relay** (§4.2): a recipient outside the accepted domains without Originating attribution is
//!    refused (`5.7.64 TenantAttribution` or the classic `5.7.1 Unable to relay`).
//! 3. **Incoming** (§1.3 item 3): enabled Partner connectors whose `SenderDomains` cover the MAIL
//!    FROM domain. One *applies* when the connection matches it by IP or trusted certificate; the
//!    most specific applies (§2.2, see [`precedence`]). A restricting connector (§0 item 3) that
//!    covers the sender and that the connection does not satisfy refuses with `5.7.51`, unless some
//!    connector covering the sender applies: a connector matching by sender domain alone never
//!    bypasses a restriction (§2.2 "restrict beats allow").
//! 4. **RejectDirectSend** (§5.1): no connector applied and MAIL FROM is an accepted domain.
//! 5. Otherwise the implicit internet path: accepted with no connector (§0 item 1, §11).
//!
//! Disabled connectors take no part at all (§2.1 `Enabled`).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use crate::addr::{Domain, EmailAddress};
use crate::peer::{CertTrust, ClientCertFacts, PeerFacts};
use crate::reply::ReplyKind;
use crate::tenant::{
    AcceptedDomain, ConnectorType, InboundConnector, RejectionStage, RelayDenialText, Tenant, TransportSettings,
};

/// EXO's attribution result (`X-MS-Exchange-Organization-MessageDirectionality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Mail from the internet or a partner to the tenant's recipients.
    Incoming,
    /// Mail from the tenant's own servers, attributed through an OnPremises connector.
    Originating,
}

impl Direction {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "Incoming",
            Direction::Originating => "Originating",
        }
    }
}

/// One rule checked on the way to a verdict, for the trace and `mailsim explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The connector the rule belongs to, if any.
    pub connector: Option<String>,
    /// The rule, in EXO's words (`SenderIPAddresses`, `RequireTls`, ...).
    pub rule: String,
    /// Whether it held.
    pub passed: bool,
    /// What was compared.
    pub detail: String,
}

impl fmt::Display for Check {
    /// `PASS [From gateway] SenderIPAddresses: 198.51.100.7 is in 198.51.100.0/24`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.passed { "PASS " } else { "FAIL " })?;
        if let Some(c) = &self.connector {
            write!(f, "[{c}] ")?;
        }
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// A refusal, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The connector whose condition failed, if a connector was involved.
    pub connector: Option<String>,
    /// The reply to send (from the catalogue).
    pub reply: ReplyKind,
    /// The failed condition in plain words, for the trace.
    pub reason: String,
}

/// The inbound stage's decision for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundVerdict {
    /// Accepted; `connector` is the connector of record, `None` for the implicit internet path
    /// (a tenant needs no connector to receive internet mail, §0 item 1).
    Accepted {
        /// The connector of record.
        connector: Option<String>,
        /// Incoming or Originating.
        direction: Direction,
        /// Whether EXO treats the message as internal (`AuthAs Internal`).
        internal: bool,
        /// Whether the connector grants relay to non-accepted domains.
        relay_allowed: bool,
        /// The connector of record's `CloudServicesMailEnabled`: the organization headers the
        /// sender stamped are kept (§2.1, §8.5); `false` without a connector.
        cross_premises: bool,
        /// The rules checked.
        checks: Vec<Check>,
    },
    /// Refused.
    Rejected {
        /// Why.
        rejection: Rejection,
        /// The rules checked.
        checks: Vec<Check>,
    },
}

impl InboundVerdict {
    /// Mail the tenant itself originates (an NDR, a test message from a mailbox): Originating,
    /// internal, no connector of record, nothing checked.
    pub fn tenant_originated() -> Self {
        InboundVerdict::Accepted {
            connector: None,
            direction: Direction::Originating,
            internal: true,
            relay_allowed: true,
            cross_premises: false,
            checks: Vec::new(),
        }
    }

    /// The connector named by the verdict, if any.
    pub fn connector(&self) -> Option<&str> {
        match self {
            Self::Accepted { connector, .. } => connector.as_deref(),
            Self::Rejected { rejection, .. } => rejection.connector.as_deref(),
        }
    }

    /// Whether the message is accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }

    /// Whether the organization headers the sender stamped are kept (§2.1 CloudServicesMailEnabled,
    /// §8.5): only on an accepted message whose connector of record says so.
    pub fn cross_premises(&self) -> bool {
        matches!(self, Self::Accepted { cross_premises: true, .. })
    }

    /// The rules checked, in order.
    pub fn checks(&self) -> &[Check] {
        match self {
            Self::Accepted { checks, .. } | Self::Rejected { checks, .. } => checks,
        }
    }

    /// The refusal, if refused.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Accepted { .. } => None,
            Self::Rejected { rejection, .. } => Some(rejection),
        }
    }

    /// The SMTP stage at which a refusal is sent: every refusal this stage produces (5.7.51,
    /// 5.7.64, 5.7.1, 5.7.68, 454 4.7.0) follows the tenant's `RejectionStage` (§1.2, §12).
    pub fn rejection_stage(&self, settings: &TransportSettings) -> Option<RejectionStage> {
        self.rejection().map(|_| settings.rejection_stage)
    }

    /// The headers EXO stamps for this attribution (exo-behaviour §8.5).
    pub fn stamp(&self, auth_source: &str) -> Vec<(&'static str, String)> {
        match self {
            Self::Accepted { direction, internal, .. } => vec![
                ("X-MS-Exchange-Organization-AuthAs", if *internal { "Internal" } else { "Anonymous" }.to_string()),
                ("X-MS-Exchange-Organization-AuthSource", auth_source.to_string()),
                ("X-MS-Exchange-Organization-MessageDirectionality", direction.as_str().to_string()),
            ],
            Self::Rejected { .. } => Vec::new(),
        }
    }
}

/// Attributes a message and checks the inbound connectors. See the module documentation for the
/// order of evaluation. Uses the tenant's connector index to visit only the connectors the
/// connection can concern.
pub fn attribute(
    tenant: &Tenant,
    peer: &PeerFacts,
    sender: Option<&EmailAddress>,
    recipients: &[EmailAddress],
) -> InboundVerdict {
    let ip = ipv4(peer.ip);
    let cert = client_cert(peer);
    let index = tenant.inbound_index();
    let candidates = index.candidates(ip, cert, sender.map(EmailAddress::domain));
    evaluate(tenant, candidates.into_iter().map(|i| i as usize), index.has_onprem(), peer, sender, recipients)
}

/// [`attribute`] without the index: every enabled connector is visited. The reference the index is
/// tested against; same answer, slower.
pub fn attribute_unindexed(
    tenant: &Tenant,
    peer: &PeerFacts,
    sender: Option<&EmailAddress>,
    recipients: &[EmailAddress],
) -> InboundVerdict {
    let onprem = tenant.inbound_connectors.iter().any(|c| c.enabled && c.connector_type == ConnectorType::OnPremises);
    evaluate(tenant, 0..tenant.inbound_connectors.len(), onprem, peer, sender, recipients)
}

/// The ordering key of §2.2's precedence among connectors that apply: the most specific match wins,
/// a certificate match counting as a /32 (it names one host); ties go to the certificate match, then
/// to the connector defined first. mailsim's choice: the reference recommends "longest prefix wins,
/// ties broken by certificate over IP" (§2.2) and "certificate > longest prefix > first defined"
/// (§12); counting a certificate as /32 satisfies both. Larger keys win.
pub fn precedence(ip_prefix: Option<u8>, cert_match: bool, position: usize) -> (u8, bool, std::cmp::Reverse<usize>) {
    let specificity = match (ip_prefix, cert_match) {
        (_, true) => 32,
        (Some(p), false) => p,
        (None, false) => 0,
    };
    (specificity, cert_match, std::cmp::Reverse(position))
}

/// The source as IPv4 (IPv4-mapped IPv6 included); `SenderIPAddresses` holds IPv4 only (§2.1).
fn ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    }
}

fn client_cert(peer: &PeerFacts) -> Option<&ClientCertFacts> {
    peer.tls.as_ref().and_then(|t| t.client_cert.as_ref())
}

/// The facts of the connection and envelope every rule reads.
struct Facts<'a> {
    tenant: &'a Tenant,
    source: IpAddr,
    ip: Option<Ipv4Addr>,
    tls: Option<&'a str>,
    cert: Option<&'a ClientCertFacts>,
    sender_domain: Option<&'a Domain>,
    sender_accepted: Option<&'a AcceptedDomain>,
    recipients: &'a [EmailAddress],
    /// The first recipient outside the accepted domains (§4.2, `Category::External`).
    external: Option<&'a EmailAddress>,
    any_onprem: bool,
}

impl Facts<'_> {
    fn trusted(&self) -> bool {
        self.cert.is_some_and(|c| c.trust == CertTrust::Trusted)
    }

    fn trust_reason(&self) -> Option<Cow<'static, str>> {
        self.cert.and_then(|c| c.trust.exo_reason()).map(Cow::Borrowed)
    }

    fn sender_text(&self) -> String {
        match self.sender_domain {
            Some(d) => format!("MAIL FROM domain {d}"),
            None => "the null sender <>".to_string(),
        }
    }
}

/// One connector seen from this connection.
struct Conn<'a> {
    pos: usize,
    c: &'a InboundConnector,
    /// The longest `SenderIPAddresses` range containing the source.
    ip: Option<Ipv4Net>,
    /// The certificate name matching `TlsSenderCertificateName`, trusted or not.
    cert_name: Option<&'a str>,
}

impl<'a> Conn<'a> {
    fn new(pos: usize, c: &'a InboundConnector, f: &Facts<'a>) -> Self {
        Self {
            pos,
            c,
            ip: f.ip.and_then(|ip| c.ip_match(ip)),
            cert_name: f.cert.and_then(|cert| c.cert_name_match(cert)),
        }
    }

    /// §2.3 step 2: only a trusted certificate satisfies a connector.
    fn cert_ok(&self, f: &Facts<'_>) -> bool {
        self.cert_name.is_some() && f.trusted()
    }

    fn key(&self, f: &Facts<'_>) -> (u8, bool, std::cmp::Reverse<usize>) {
        precedence(self.ip.map(|n| n.prefix_len()), self.cert_ok(f), self.pos)
    }

    fn name(&self) -> Option<String> {
        Some(self.c.name.clone())
    }
}

/// The checks recorded so far.
struct Log(Vec<Check>);

impl Log {
    fn add(&mut self, conn: Option<&Conn<'_>>, rule: &str, passed: bool, detail: String) {
        self.0.push(Check { connector: conn.and_then(Conn::name), rule: rule.to_string(), passed, detail });
    }

    fn reject(self, conn: Option<&Conn<'_>>, reply: ReplyKind, reason: String) -> InboundVerdict {
        InboundVerdict::Rejected {
            rejection: Rejection { connector: conn.and_then(Conn::name), reply, reason },
            checks: self.0,
        }
    }

    fn accept(self, conn: Option<&Conn<'_>>, direction: Direction, internal: bool) -> InboundVerdict {
        InboundVerdict::Accepted {
            connector: conn.and_then(Conn::name),
            direction,
            internal,
            relay_allowed: direction == Direction::Originating,
            cross_premises: conn.is_some_and(|c| c.c.cloud_services_mail_enabled),
            checks: self.0,
        }
    }

    /// `SenderIPAddresses` against the source.
    fn ip_check(&mut self, conn: &Conn<'_>, f: &Facts<'_>) {
        if conn.c.sender_ip_addresses.is_empty() {
            return;
        }
        let detail = match (conn.ip, f.ip) {
            (Some(net), _) => {
                let mut d = String::with_capacity(48);
                push_ip(&mut d, f.source);
                d.push_str(" is in ");
                push_net(&mut d, net);
                d
            }
            (None, Some(_)) => {
                let mut d = String::with_capacity(96);
                push_ip(&mut d, f.source);
                d.push_str(" is not in ");
                net_list(&mut d, &conn.c.sender_ip_addresses);
                d
            }
            (None, None) => format!("{} is IPv6; SenderIPAddresses holds IPv4 only", f.source),
        };
        self.add(Some(conn), "SenderIPAddresses", conn.ip.is_some(), detail);
    }

    /// `TlsSenderCertificateName` against the client certificate (§2.3).
    fn cert_check(&mut self, conn: &Conn<'_>, f: &Facts<'_>) {
        let Some(pattern) = &conn.c.tls_sender_certificate_name else { return };
        let detail = match (f.tls, f.cert, conn.cert_name) {
            (None, _, _) => "the session is not encrypted, so there is no client certificate".to_string(),
            (Some(_), None, _) => "no client certificate was presented".to_string(),
            (Some(_), Some(cert), None) => {
                let names: Vec<&str> = cert.names().collect();
                format!("certificate names [{}] do not match `{pattern}`", names.join(", "))
            }
            (Some(_), Some(cert), Some(name)) if cert.trust == CertTrust::Trusted => {
                format!("certificate name `{name}` matches `{pattern}` and the certificate is trusted")
            }
            (Some(_), Some(cert), Some(name)) => format!(
                "certificate name `{name}` matches `{pattern}` but the certificate is not acceptable ({})",
                cert.trust.exo_reason().unwrap_or("invalid")
            ),
        };
        self.add(Some(conn), "TlsSenderCertificateName", conn.cert_ok(f), detail);
    }

    /// `RequireTls`; returns whether it held.
    fn tls_check(&mut self, conn: &Conn<'_>, f: &Facts<'_>) -> bool {
        if !conn.c.require_tls {
            return true;
        }
        let detail = match f.tls {
            Some(v) => format!("the session is encrypted ({v})"),
            None => "the session is not encrypted".to_string(),
        };
        self.add(Some(conn), "RequireTls", f.tls.is_some(), detail);
        f.tls.is_some()
    }
}

// Addresses are written by hand: `Ipv4Addr`'s Display goes through the padding machinery and
// dominated the cost of a refusal in the benchmark.

fn push_u8(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u8(out, octet);
            }
        }
        IpAddr::V6(a) => {
            use fmt::Write as _;
            let _ = write!(out, "{a}");
        }
    }
}

fn push_net(out: &mut String, net: Ipv4Net) {
    push_ip(out, IpAddr::V4(net.addr()));
    out.push('/');
    push_u8(out, net.prefix_len());
}

/// [`list`] for ranges.
fn net_list(out: &mut String, nets: &[Ipv4Net]) {
    for (i, net) in nets.iter().take(3).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_net(out, *net);
    }
    if nets.len() > 3 {
        out.push_str(" … (");
        out.push_str(&nets.len().to_string());
        out.push_str(" entries)");
    }
}

/// The first three items, comma-separated, and how many there are when more.
fn list<T: fmt::Display>(items: &[T]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(64);
    for (i, item) in items.iter().take(3).enumerate() {
        let _ = write!(out, "{}{item}", if i == 0 { "" } else { ", " });
    }
    if items.len() > 3 {
        let _ = write!(out, " … ({} entries)", items.len());
    }
    out
}

fn require_tls_rejection(log: Log, conn: &Conn<'_>) -> InboundVerdict {
    // §2.4, §12: the reply for a RequireTls violation is unconfirmed; the reference recommends 454
    // 4.7.0 "Failed to establish appropriate TLS channel: Access Denied".
    let reason = format!("connector {} requires TLS (RequireTls) and the session is not encrypted", conn.c.name);
    log.reject(Some(conn), ReplyKind::TlsChannelNotAcceptable { reason: None }, reason)
}

/// `any_onprem`: whether the tenant has an enabled OnPremises connector (for the record only).
fn evaluate(
    tenant: &Tenant,
    candidates: impl Iterator<Item = usize>,
    any_onprem: bool,
    peer: &PeerFacts,
    sender: Option<&EmailAddress>,
    recipients: &[EmailAddress],
) -> InboundVerdict {
    let sender_domain = sender.map(EmailAddress::domain);
    let f = Facts {
        tenant,
        source: peer.ip,
        ip: ipv4(peer.ip),
        tls: peer.tls.as_ref().map(|t| t.version.as_str()),
        cert: client_cert(peer),
        sender_domain,
        sender_accepted: sender_domain.and_then(|d| tenant.accepted_domain(d)),
        recipients,
        // Same as `categorize(..) == Category::External`, without the mailbox lookup.
        external: recipients.iter().find(|r| tenant.accepted_domain(r.domain()).is_none()),
        any_onprem,
    };
    let mut onprem: Vec<Conn<'_>> = Vec::new();
    let mut partners: Vec<Conn<'_>> = Vec::new();
    for pos in candidates {
        let Some(c) = tenant.inbound_connectors.get(pos) else { continue };
        // §2.1 Enabled: disabled connectors are ignored entirely.
        if !c.enabled {
            continue;
        }
        let conn = Conn::new(pos, c, &f);
        match c.connector_type {
            ConnectorType::OnPremises if conn.ip.is_some() || conn.cert_name.is_some() => onprem.push(conn),
            ConnectorType::OnPremises => {}
            ConnectorType::Partner => partners.push(conn),
        }
    }
    let mut log = Log(Vec::new());
    match originating(&f, &onprem, &mut log) {
        Some(Decision::Accept(conn, internal)) => return log.accept(Some(conn), Direction::Originating, internal),
        Some(Decision::Reject(conn, reply, reason)) => return log.reject(conn, reply, reason),
        None => {}
    }
    if let Some(conn) = onprem.iter().find(|c| c.cert_name.is_some() && !f.trusted()) {
        // §2.3 step 2, [S53]: the certificate names an OnPremises connector but does not chain to a
        // trusted root or has expired: EXO refuses the TLS channel.
        let reason = format!(
            "the client certificate names OnPremises connector {} but is not acceptable ({})",
            conn.c.name,
            f.trust_reason().as_deref().unwrap_or("invalid")
        );
        return log.reject(Some(conn), ReplyKind::TlsChannelNotAcceptable { reason: f.trust_reason() }, reason);
    }
    // §4.2: a recipient outside the accepted domains needs Originating attribution.
    if let Some(rcpt) = f.external {
        log.add(
            None,
            "Relay",
            false,
            format!("{} is not an accepted domain and the message is not Originating", rcpt.domain()),
        );
        let reply = match tenant.settings.relay_denial_text {
            RelayDenialText::TenantAttribution => ReplyKind::RelayDenied,
            RelayDenialText::UnableToRelay => ReplyKind::UnableToRelay,
        };
        let reason = format!("{rcpt} is not in an accepted domain and no OnPremises connector attributes the sender");
        return log.reject(None, reply, reason);
    }
    incoming(&f, &partners, log)
}

/// The outcome of Originating attribution.
enum Decision<'c, 'a> {
    /// Originating through this connector; whether internal.
    Accept(&'c Conn<'a>, bool),
    /// Refused.
    Reject(Option<&'c Conn<'a>>, ReplyKind, String),
}

/// §1.3 item 2: Originating attribution through OnPremises connectors. `None` when the message is
/// not Originating and Incoming attribution should be tried.
fn originating<'c, 'a>(f: &Facts<'a>, onprem: &'c [Conn<'a>], log: &mut Log) -> Option<Decision<'c, 'a>> {
    if onprem.is_empty() {
        if f.any_onprem {
            log.add(None, "OnPremises attribution", false, {
                let mut d = String::with_capacity(96);
                d.push_str("no enabled OnPremises connector matches source ");
                push_ip(&mut d, f.source);
                d.push_str(" or the client certificate");
                d
            });
        }
        return None;
    }
    // §2.1 AssociatedAcceptedDomains narrows an OnPremises connector to senders in the listed
    // accepted domains (which field is compared is unconfirmed; the reference recommends the sender).
    let aad_ok = |conn: &Conn<'_>| {
        let aad = &conn.c.associated_accepted_domains;
        aad.is_empty() || f.sender_accepted.is_some_and(|a| aad.contains(&a.name))
    };
    for conn in onprem {
        log.cert_check(conn, f);
        log.ip_check(conn, f);
        if !conn.c.associated_accepted_domains.is_empty() {
            let detail = format!(
                "{} {} one of {}",
                f.sender_text(),
                if aad_ok(conn) { "is in" } else { "is not in" },
                list(&conn.c.associated_accepted_domains)
            );
            log.add(Some(conn), "AssociatedAcceptedDomains", aad_ok(conn), detail);
        }
    }
    let accepted_sender = f.sender_accepted.is_some();
    let has_external = f.external.is_some();
    let internal = |conn: &Conn<'_>| {
        // §2.1: CloudServicesMailEnabled promotes cross-premises headers (hybrid: internal);
        // TreatMessagesAsInternal makes mail internal when the sender domain is the tenant's.
        conn.c.cloud_services_mail_enabled || (conn.c.treat_messages_as_internal && accepted_sender)
    };

    // (a) Certificate first (§1.3 item 2a); the most specific TlsSenderCertificateName wins, then the
    // first defined.
    let by_cert = onprem
        .iter()
        .filter(|c| c.cert_ok(f) && aad_ok(c))
        .max_by_key(|c| (c.c.tls_sender_certificate_name.as_ref().map(|p| p.specificity()), std::cmp::Reverse(c.pos)));
    if let Some(conn) = by_cert {
        let tls_ok = log.tls_check(conn, f);
        // §1.3 (hybrid): a non-wildcard TlsSenderCertificateName must itself be an accepted domain
        // (a subdomain of one is not enough), otherwise mail from on-premises is refused (5.7.51).
        // A certificate the TLS gate refuses keeps its 454 (checked first, as certificate
        // validation comes before attribution).
        if tls_ok && let Some(crate::tenant::DomainPattern::Exact(d)) = &conn.c.tls_sender_certificate_name {
            let accepted = f.tenant.accepted_domains.iter().any(|a| a.name == *d);
            log.add(
                Some(conn),
                "Certificate name is an accepted domain",
                accepted,
                format!(
                    "TlsSenderCertificateName {d} {} itself an accepted domain",
                    if accepted { "is" } else { "is not" }
                ),
            );
            if !accepted {
                let reason = format!(
                    "connector {}'s TlsSenderCertificateName {d} is not itself an accepted domain: hybrid mail from on-premises is refused (exo-behaviour §1.3)",
                    conn.c.name
                );
                return Some(Decision::Reject(Some(conn), ReplyKind::OnPremisesCertificateNameNotAccepted, reason));
            }
        }
        if !accepted_sender && has_external {
            // §4.2 [S51]: relaying for a foreign sender needs a certificate connector whose
            // certificate domain is a domain of the tenant; otherwise 5.7.64 ATTR36.
            let cert_domain = conn.c.tls_sender_certificate_name.as_ref().and_then(|p| p.domain());
            let ours = cert_domain.is_some_and(|d| f.tenant.accepted_domains.iter().any(|a| d.is_within(&a.name)));
            let detail = match cert_domain {
                Some(d) => format!(
                    "certificate domain {d} {} an accepted domain",
                    if ours { "is within" } else { "is not within" }
                ),
                None => "the certificate name names no domain".to_string(),
            };
            log.add(Some(conn), "Relay for a foreign sender", ours, detail);
            if !ours {
                let reason = format!(
                    "{} is not an accepted domain, and connector {}'s certificate domain is not one either: relay denied (ATTR36)",
                    f.sender_text(),
                    conn.c.name
                );
                return Some(Decision::Reject(Some(conn), ReplyKind::RelayDeniedAttr36, reason));
            }
        }
        log.add(Some(conn), "Attribution", true, "Originating, by client certificate".to_string());
        return Some(Decision::Accept(conn, internal(conn)));
    }

    // (b) Source IP plus an accepted-domain MAIL FROM (§1.3 item 2b); the longest prefix wins.
    let by_ip = onprem.iter().filter(|c| c.ip.is_some() && aad_ok(c)).max_by_key(|c| c.key(f));
    let detail = match (f.sender_domain, f.sender_accepted) {
        (_, Some(a)) => format!("{} is within accepted domain {}", f.sender_text(), a.name),
        (Some(_), None) => format!("{} is not an accepted domain", f.sender_text()),
        (None, None) => "the null sender <> has no domain to be an accepted one".to_string(),
    };
    if let Some(conn) = by_ip {
        log.add(Some(conn), "AcceptedDomain (MAIL FROM)", accepted_sender, detail);
        if accepted_sender {
            if !log.tls_check(conn, f) {
                let reason =
                    format!("connector {} requires TLS (RequireTls) and the session is not encrypted", conn.c.name);
                return Some(Decision::Reject(Some(conn), ReplyKind::TlsChannelNotAcceptable { reason: None }, reason));
            }
            log.add(
                Some(conn),
                "Attribution",
                true,
                "Originating, by source IP and accepted sender domain".to_string(),
            );
            return Some(Decision::Accept(conn, internal(conn)));
        }
    }
    // §4.2 [S51]: the IP identifies the tenant's own server, but the sender is foreign and the
    // message leaves the tenant: only the certificate variant may relay it.
    if !accepted_sender
        && has_external
        && let Some(conn) = onprem.iter().filter(|c| c.ip.is_some()).max_by_key(|c| c.key(f))
    {
        let reason = format!(
            "source {} matches OnPremises connector {}, but {} is not an accepted domain and relaying a foreign sender needs a certificate connector (ATTR36)",
            f.source,
            conn.c.name,
            f.sender_text()
        );
        return Some(Decision::Reject(Some(conn), ReplyKind::RelayDeniedAttr36, reason));
    }
    None
}

/// §1.3 item 3: Incoming attribution and Partner connector rules (§2.2, §2.4).
fn incoming(f: &Facts<'_>, partners: &[Conn<'_>], mut log: Log) -> InboundVerdict {
    // §2.1 AssociatedAcceptedDomains narrows a Partner connector to the listed recipient domains
    // (unconfirmed; the reference's recommendation). With no recipient yet the connector is in scope.
    let aad_ok = |conn: &Conn<'_>| {
        let aad = &conn.c.associated_accepted_domains;
        aad.is_empty()
            || f.recipients.is_empty()
            || f.recipients.iter().any(|r| f.tenant.accepted_domain(r.domain()).is_some_and(|a| aad.contains(&a.name)))
    };
    let mut in_scope: Vec<&Conn<'_>> = Vec::new();
    for conn in partners {
        let covers = conn.c.sender_domain_match(f.sender_domain);
        let keyed = conn.ip.is_some() || conn.cert_name.is_some();
        if covers.is_none() {
            // A connector matched by IP or certificate but not covering the sender is worth a line.
            if keyed {
                let detail = format!("{} is not covered by {}", f.sender_text(), list(&conn.c.sender_domains));
                log.add(Some(conn), "SenderDomains", false, detail);
            }
            continue;
        }
        if !aad_ok(conn) {
            let detail = format!("no recipient is in {}", list(&conn.c.associated_accepted_domains));
            log.add(Some(conn), "AssociatedAcceptedDomains", false, detail);
            continue;
        }
        let pattern = covers.map(ToString::to_string).unwrap_or_default();
        log.add(Some(conn), "SenderDomains", true, format!("{} is covered by `{pattern}`", f.sender_text()));
        log.ip_check(conn, f);
        log.cert_check(conn, f);
        in_scope.push(conn);
    }

    // §2.2: a restricting connector applies only when each of its restrictions holds; any other
    // Partner connector applies when the connection matches it by IP or by trusted certificate.
    let satisfied = |conn: &Conn<'_>| {
        if conn.c.is_restricting() {
            (!conn.c.restrict_domains_to_ip_addresses || conn.ip.is_some())
                && (!conn.c.restrict_domains_to_certificate || conn.cert_ok(f))
        } else {
            conn.ip.is_some() || conn.cert_ok(f)
        }
    };
    for conn in in_scope.iter().filter(|c| c.c.is_restricting()) {
        if conn.c.restrict_domains_to_ip_addresses {
            let detail =
                if conn.ip.is_some() { "source is in SenderIPAddresses" } else { "source is not in SenderIPAddresses" };
            log.add(Some(conn), "RestrictDomainsToIPAddresses", conn.ip.is_some(), detail.to_string());
        }
        if conn.c.restrict_domains_to_certificate {
            let detail = if conn.cert_ok(f) {
                "a trusted client certificate matches TlsSenderCertificateName"
            } else {
                "no trusted client certificate matches TlsSenderCertificateName"
            };
            log.add(Some(conn), "RestrictDomainsToCertificate", conn.cert_ok(f), detail.to_string());
        }
    }
    let applying: Vec<&Conn<'_>> = in_scope.iter().copied().filter(|c| satisfied(c)).collect();
    if let Some(best) = applying.iter().copied().max_by_key(|c| c.key(f)) {
        if applying.len() > 1 {
            let others: Vec<&str> = applying.iter().filter(|c| c.pos != best.pos).map(|c| c.c.name.as_str()).collect();
            let how = match (best.cert_ok(f), best.ip) {
                (true, _) => "certificate match".to_string(),
                (false, Some(net)) => format!("/{} match", net.prefix_len()),
                (false, None) => "match".to_string(),
            };
            log.add(Some(best), "Precedence", true, format!("most specific ({how}) over {}", others.join(", ")));
        }
        if !log.tls_check(best, f) {
            return require_tls_rejection(log, best);
        }
        let how = if best.cert_ok(f) { "client certificate" } else { "source IP" };
        log.add(Some(best), "Attribution", true, format!("Incoming, Partner connector matched by {how}"));
        return log.accept(Some(best), Direction::Incoming, false);
    }

    // §0 item 3, §2.2 "restrict beats allow": no connector covering the sender matches the
    // connection, so any restricting one refuses. When the only thing missing is TLS or a trusted
    // certificate, the TLS refusal (§2.4) says more than 5.7.51.
    let restricting: Vec<&Conn<'_>> = in_scope.iter().copied().filter(|c| c.c.is_restricting()).collect();
    for conn in &restricting {
        let ip_ok = !conn.c.restrict_domains_to_ip_addresses || conn.ip.is_some();
        if !(ip_ok && conn.c.restrict_domains_to_certificate) {
            continue;
        }
        if conn.cert_name.is_some() && !f.trusted() {
            let reason = format!(
                "the client certificate matches connector {}'s TlsSenderCertificateName but is not acceptable ({})",
                conn.c.name,
                f.trust_reason().as_deref().unwrap_or("invalid")
            );
            return log.reject(Some(conn), ReplyKind::TlsChannelNotAcceptable { reason: f.trust_reason() }, reason);
        }
        if f.tls.is_none() && !log.tls_check(conn, f) {
            return require_tls_rejection(log, conn);
        }
    }
    if let Some(conn) = restricting.first() {
        let mut failed = Vec::new();
        if conn.c.restrict_domains_to_ip_addresses && conn.ip.is_none() {
            let mut d = String::with_capacity(48);
            d.push_str("source ");
            push_ip(&mut d, f.source);
            d.push_str(" is not in its SenderIPAddresses");
            failed.push(d);
        }
        if conn.c.restrict_domains_to_certificate && !conn.cert_ok(f) {
            failed.push("no trusted client certificate matches its TlsSenderCertificateName".to_string());
        }
        let reason =
            format!("Partner connector {} restricts {} and {}", conn.c.name, f.sender_text(), failed.join(" and "));
        return log.reject(Some(conn), ReplyKind::PartnerConnectorRestricted, reason);
    }

    // §2.3 step 2: a certificate that names a Partner connector but is untrusted or expired.
    if let Some(conn) = in_scope.iter().find(|c| c.cert_name.is_some() && !f.trusted()) {
        let reason = format!(
            "the client certificate matches connector {}'s TlsSenderCertificateName but is not acceptable ({})",
            conn.c.name,
            f.trust_reason().as_deref().unwrap_or("invalid")
        );
        return log.reject(Some(conn), ReplyKind::TlsChannelNotAcceptable { reason: f.trust_reason() }, reason);
    }

    // §5.1 [B5]: RejectDirectSend refuses anonymous mail claiming an accepted domain.
    if f.tenant.settings.reject_direct_send {
        let claims = f.sender_accepted.is_some();
        let detail = format!(
            "{} {} an accepted domain and no connector matched the connection",
            f.sender_text(),
            if claims { "is" } else { "is not" }
        );
        log.add(None, "RejectDirectSend", !claims, detail);
        if claims {
            let reason = format!(
                "RejectDirectSend is on and {} is an accepted domain of an unauthenticated sender",
                f.sender_text()
            );
            return log.reject(None, ReplyKind::DirectSendNotAllowed, reason);
        }
    }
    log.add(None, "Attribution", true, "Incoming, no connector applies (default internet path)".to_string());
    log.accept(None, Direction::Incoming, false)
}

/// Whether the connection comes from the tenant's own on-premises servers: its (declared) address
/// is in an enabled OnPremises connector's `SenderIPAddresses`, or it presented a trusted
/// certificate matching one's `TlsSenderCertificateName`. Centralized mail transport (§9.2) uses
/// this to send mail that came back from on-premises on, instead of round again; unlike
/// attribution, it does not depend on the sender's domain.
pub fn from_on_premises(tenant: &Tenant, peer: &PeerFacts) -> bool {
    let cert =
        peer.tls.as_ref().and_then(|t| t.client_cert.as_ref()).filter(|c| c.trust == crate::peer::CertTrust::Trusted);
    let ip = match peer.ip {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    tenant
        .inbound_connectors
        .iter()
        .filter(|c| c.enabled && c.connector_type == crate::tenant::ConnectorType::OnPremises)
        .any(|c| {
            ip.is_some_and(|ip| c.ip_match(ip).is_some()) || cert.is_some_and(|cert| c.cert_name_match(cert).is_some())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::TlsFacts;
    use crate::tenant::{DomainPattern, DomainType, TenantBuilder};
    use crate::time::Timestamp;

    fn cert(cn: &str, sans: &[&str], trust: CertTrust) -> ClientCertFacts {
        ClientCertFacts {
            subject: format!("CN={cn}"),
            common_names: vec![cn.to_string()],
            dns_sans: sans.iter().map(|s| s.to_string()).collect(),
            issuer: "CN=Test CA".to_string(),
            not_before: Timestamp(0),
            not_after: Timestamp(0),
            sha256: String::new(),
            trust,
        }
    }

    /// A peer from `ip`; `tls` on or off; an optional client certificate (implies TLS).
    fn peer(ip: &str, tls: bool, cert: Option<ClientCertFacts>) -> PeerFacts {
        let ip: IpAddr = ip.parse().unwrap();
        let mut p = PeerFacts::new("127.0.0.20".parse().unwrap(), 40000, ip);
        if tls || cert.is_some() {
            p.tls = Some(TlsFacts {
                version: "TLS1_3".to_string(),
                cipher: "TLS13_AES_256_GCM_SHA384".to_string(),
                sni: None,
                client_cert: cert,
            });
        }
        p
    }

    fn conn(name: &str, kind: ConnectorType, f: impl FnOnce(&mut InboundConnector)) -> InboundConnector {
        let mut c = InboundConnector::new(name, kind);
        c.require_tls = false;
        f(&mut c);
        c
    }

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn base() -> TenantBuilder {
        Tenant::builder()
            .with_domain("contoso.test", DomainType::Authoritative)
            .with_domain("relay.test", DomainType::InternalRelay)
            .with_mailbox("alice@contoso.test")
    }

    fn tenant(name: &str) -> Tenant {
        spec(name).build().unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn spec(name: &str) -> TenantBuilder {
        use ConnectorType::*;
        let t = base();
        match name {
            "none" => t,
            "lock-ip" => t.with_inbound_connector(conn("gw", Partner, |c| {
                c.sender_ip_addresses = nets(&["198.51.100.0/24"]);
                c.restrict_domains_to_ip_addresses = true;
            })),
            "lock-cert" => t.with_inbound_connector(conn("gwcert", Partner, |c| {
                c.tls_sender_certificate_name = DomainPattern::parse("*.gateway.test");
                c.restrict_domains_to_certificate = true;
                c.require_tls = true;
            })),
            "lock-ip+partner" => spec("lock-ip").with_inbound_connector(conn("fabrikam", Partner, |c| {
                c.sender_domains = vec![DomainPattern::parse("fabrikam.test").unwrap()];
                c.sender_ip_addresses = nets(&["192.0.2.25/32"]);
                c.require_tls = true;
            })),
            "lock-ip+allow-by-domain" => spec("lock-ip").with_inbound_connector(conn("allow", Partner, |c| {
                c.sender_domains = vec![DomainPattern::parse("fabrikam.test").unwrap()];
            })),
            "lock-ip-disabled" => {
                let mut t = spec("lock-ip");
                t.inbound_connectors[0].enabled = false;
                t
            }
            "nested" => t
                .with_inbound_connector(conn("wide", Partner, |c| c.sender_ip_addresses = nets(&["198.51.100.0/24"])))
                .with_inbound_connector(conn("narrow", Partner, |c| {
                    c.sender_ip_addresses = nets(&["198.51.100.0/28"]);
                    c.require_tls = true;
                }))
                .with_inbound_connector(conn("cert", Partner, |c| {
                    c.tls_sender_certificate_name = DomainPattern::parse("*.gateway.test")
                })),
            // §1.3: a wildcard certificate name (or one that is itself an accepted domain).
            "hybrid" => t
                .with_inbound_connector(conn("hcw", OnPremises, |c| {
                    c.tls_sender_certificate_name = DomainPattern::parse("*.contoso.test");
                    c.require_tls = true;
                    c.cloud_services_mail_enabled = true;
                }))
                .with_inbound_connector(conn("app", OnPremises, |c| {
                    c.sender_ip_addresses = nets(&["203.0.113.25/32"]);
                    c.treat_messages_as_internal = true;
                }))
                .with_inbound_connector(conn("app-tls", OnPremises, |c| {
                    c.sender_ip_addresses = nets(&["203.0.113.26/32"]);
                    c.require_tls = true;
                }))
                .with_inbound_connector(conn("foreign-cert", OnPremises, |c| {
                    c.tls_sender_certificate_name = DomainPattern::parse("*.hoster.test");
                })),
            "hybrid-exact" => t.with_inbound_connector(conn("hcw", OnPremises, |c| {
                c.tls_sender_certificate_name = DomainPattern::parse("mail.contoso.test");
                c.require_tls = true;
                c.cloud_services_mail_enabled = true;
            })),
            "hybrid-exact-accepted" => spec("hybrid-exact").with_domain("mail.contoso.test", DomainType::Authoritative),
            "aad" => t
                .with_inbound_connector(conn("lock-contoso", Partner, |c| {
                    c.sender_ip_addresses = nets(&["198.51.100.0/24"]);
                    c.restrict_domains_to_ip_addresses = true;
                    c.associated_accepted_domains = vec![crate::addr::Domain::parse("contoso.test", false).unwrap()];
                }))
                .with_inbound_connector(conn("app", OnPremises, |c| {
                    c.sender_ip_addresses = nets(&["203.0.113.25/32"]);
                    c.associated_accepted_domains = vec![crate::addr::Domain::parse("relay.test", false).unwrap()];
                })),
            "direct-send" => {
                let mut t = spec("lock-cert-partner-only");
                t.settings.reject_direct_send = true;
                t
            }
            "lock-cert-partner-only" => t.with_inbound_connector(conn("printer", Partner, |c| {
                c.sender_domains = vec![DomainPattern::parse("contoso.test").unwrap()];
                c.sender_ip_addresses = nets(&["192.0.2.80/32"]);
            })),
            "unable-to-relay" => {
                let mut t = base();
                t.settings.relay_denial_text = RelayDenialText::UnableToRelay;
                t
            }
            other => panic!("no tenant {other}"),
        }
    }

    #[derive(Debug)]
    enum Want {
        Accept(Option<&'static str>, Direction, bool),
        Reject(Option<&'static str>, ReplyKind),
    }
    use Want::*;

    type Row = (&'static str, &'static str, PeerFacts, &'static str, &'static [&'static str], Want);

    const IN: Direction = Direction::Incoming;
    const ORIG: Direction = Direction::Originating;

    fn tls454(reason: Option<&'static str>) -> ReplyKind {
        ReplyKind::TlsChannelNotAcceptable { reason: reason.map(Cow::Borrowed) }
    }

    /// exo-behaviour §0, §1.3, §2.2–§2.4, §4.2, §5.1, one row per rule, hostile rows included.
    #[test]
    fn attribution_table() {
        use CertTrust::*;
        let gw_cert = || Some(cert("mx1.gateway.test", &[], Trusted));
        let onprem_cert =
            |t: CertTrust| Some(cert("Exchange Server", &["autodiscover.contoso.test", "MAIL.Contoso.Test"], t));
        #[rustfmt::skip]
        // (what, tenant, peer, MAIL FROM, RCPT TO, expected)
        let rows: Vec<Row> = vec![
            // §0 item 1, §11: no connectors, internet mail is accepted.
            ("no connectors accept internet mail", "none", peer("203.0.113.99", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(None, IN, false)),
            ("null sender accepted", "none", peer("203.0.113.99", false, None), "<>", &["alice@contoso.test"], Accept(None, IN, false)),
            ("IPv6 source accepted without connectors", "none", peer("2001:db8::25", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(None, IN, false)),
            ("InternalRelay recipient is not relay", "none", peer("203.0.113.99", false, None), "x@fabrikam.test", &["anyone@relay.test"], Accept(None, IN, false)),
            ("subdomain of accepted domain is external", "none", peer("203.0.113.99", false, None), "x@fabrikam.test", &["a@sub.contoso.test"], Reject(None, ReplyKind::RelayDenied)),
            ("open relay attempt", "none", peer("203.0.113.99", false, None), "x@fabrikam.test", &["y@example.test"], Reject(None, ReplyKind::RelayDenied)),
            ("mixed recipients: one external is relay", "none", peer("203.0.113.99", false, None), "x@fabrikam.test", &["alice@contoso.test", "y@example.test"], Reject(None, ReplyKind::RelayDenied)),
            ("classic relay text", "unable-to-relay", peer("203.0.113.99", false, None), "x@fabrikam.test", &["y@example.test"], Reject(None, ReplyKind::UnableToRelay)),
            ("no recipients yet", "lock-ip", peer("198.51.100.7", false, None), "x@fabrikam.test", &[], Accept(Some("gw"), IN, false)),
            // §0 item 3: IP lock-down.
            ("gateway range accepted", "lock-ip", peer("198.51.100.7", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gw"), IN, false)),
            ("gateway range, null sender", "lock-ip", peer("198.51.100.254", false, None), "<>", &["alice@contoso.test"], Accept(Some("gw"), IN, false)),
            ("bypassing the gateway", "lock-ip", peer("198.51.101.7", true, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            ("bypassing with null sender", "lock-ip", peer("203.0.113.5", false, None), "<>", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            ("bypassing with an accepted-domain sender", "lock-ip", peer("203.0.113.5", false, None), "ceo@contoso.test", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            ("IPv6 source cannot satisfy an IP lock-down", "lock-ip", peer("2001:db8::7", true, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            ("IPv4-mapped IPv6 source matches", "lock-ip", peer("::ffff:198.51.100.7", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gw"), IN, false)),
            ("relay from the gateway is still relay", "lock-ip", peer("198.51.100.7", false, None), "x@fabrikam.test", &["y@example.test"], Reject(None, ReplyKind::RelayDenied)),
            ("disabled lock-down is ignored", "lock-ip-disabled", peer("203.0.113.5", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(None, IN, false)),
            // §2.2: restrict beats allow-by-domain; a keyed partner connector is not bypass.
            ("partner connector matching by IP", "lock-ip+partner", peer("192.0.2.25", true, None), "x@Fabrikam.TEST", &["alice@contoso.test"], Accept(Some("fabrikam"), IN, false)),
            ("partner connector needs TLS", "lock-ip+partner", peer("192.0.2.25", false, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("fabrikam"), tls454(None))),
            ("partner IP but another sender domain", "lock-ip+partner", peer("192.0.2.25", true, None), "x@other.test", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            ("allow-by-domain never bypasses", "lock-ip+allow-by-domain", peer("192.0.2.99", true, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gw"), ReplyKind::PartnerConnectorRestricted)),
            // §2.3: certificate lock-down.
            ("gateway certificate accepted", "lock-cert", peer("203.0.113.5", true, gw_cert()), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gwcert"), IN, false)),
            ("SAN-only match accepted", "lock-cert", peer("203.0.113.5", true, Some(cert("Gateway Appliance", &["relay.GATEWAY.test"], Trusted))), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gwcert"), IN, false)),
            ("wildcard certificate accepted", "lock-cert", peer("203.0.113.5", true, Some(cert("*.gateway.test", &[], Trusted))), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gwcert"), IN, false)),
            ("bare parent name matches *.gateway.test", "lock-cert", peer("203.0.113.5", true, Some(cert("gateway.test", &[], Trusted))), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("gwcert"), IN, false)),
            ("look-alike name refused", "lock-cert", peer("203.0.113.5", true, Some(cert("xgateway.test", &["gateway.test.evil.test"], Trusted))), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), ReplyKind::PartnerConnectorRestricted)),
            ("wrong subject refused", "lock-cert", peer("203.0.113.5", true, Some(cert("mx.other.test", &[], Trusted))), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), ReplyKind::PartnerConnectorRestricted)),
            ("TLS without client certificate", "lock-cert", peer("203.0.113.5", true, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), ReplyKind::PartnerConnectorRestricted)),
            ("no TLS at all", "lock-cert", peer("203.0.113.5", false, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), tls454(None))),
            ("untrusted certificate", "lock-cert", peer("203.0.113.5", true, Some(cert("mx1.gateway.test", &[], UntrustedRoot))), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), tls454(Some("UntrustedRoot")))),
            ("expired certificate", "lock-cert", peer("203.0.113.5", true, Some(cert("mx1.gateway.test", &[], Expired))), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("gwcert"), tls454(Some("CertificateExpired")))),
            // §2.2 precedence: longest prefix, certificate counts as /32.
            ("narrowest range wins", "nested", peer("198.51.100.7", true, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("narrow"), IN, false)),
            ("narrowest range enforces its RequireTls", "nested", peer("198.51.100.7", false, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("narrow"), tls454(None))),
            ("outside the narrow range", "nested", peer("198.51.100.77", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("wide"), IN, false)),
            ("certificate beats any range", "nested", peer("198.51.100.7", true, gw_cert()), "x@fabrikam.test", &["alice@contoso.test"], Accept(Some("cert"), IN, false)),
            ("untrusted cert on a non-restricting connector", "nested", peer("203.0.113.5", true, Some(cert("mx1.gateway.test", &[], UntrustedRoot))), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("cert"), tls454(Some("UntrustedRoot")))),
            // §1.3 item 2, §4.2: Originating through OnPremises connectors.
            ("hybrid certificate relays", "hybrid", peer("203.0.113.9", true, onprem_cert(Trusted)), "user@contoso.test", &["y@example.test"], Accept(Some("hcw"), ORIG, true)),
            ("hybrid certificate relays a foreign sender", "hybrid", peer("203.0.113.9", true, onprem_cert(Trusted)), "list@lists.example.test", &["y@example.test"], Accept(Some("hcw"), ORIG, true)),
            ("hybrid certificate relays an NDR", "hybrid", peer("203.0.113.9", true, onprem_cert(Trusted)), "<>", &["y@example.test"], Accept(Some("hcw"), ORIG, true)),
            // §1.3 hybrid rule (issue 14): a non-wildcard certificate name must itself be accepted.
            ("non-wildcard certificate name not an accepted domain: 5.7.51", "hybrid-exact", peer("203.0.113.9", true, onprem_cert(Trusted)), "user@contoso.test", &["y@example.test"], Reject(Some("hcw"), ReplyKind::OnPremisesCertificateNameNotAccepted)),
            ("non-wildcard certificate name not accepted, internal recipient: 5.7.51", "hybrid-exact", peer("203.0.113.9", true, onprem_cert(Trusted)), "user@contoso.test", &["alice@contoso.test"], Reject(Some("hcw"), ReplyKind::OnPremisesCertificateNameNotAccepted)),
            ("non-wildcard certificate name that is an accepted domain relays", "hybrid-exact-accepted", peer("203.0.113.9", true, onprem_cert(Trusted)), "user@contoso.test", &["y@example.test"], Accept(Some("hcw"), ORIG, true)),
            ("non-wildcard certificate name not accepted, untrusted: 454 first", "hybrid-exact", peer("203.0.113.9", true, onprem_cert(UntrustedRoot)), "user@contoso.test", &["y@example.test"], Reject(Some("hcw"), tls454(Some("UntrustedRoot")))),
            ("hybrid certificate untrusted", "hybrid", peer("203.0.113.9", true, onprem_cert(UntrustedRoot)), "user@contoso.test", &["y@example.test"], Reject(Some("hcw"), tls454(Some("UntrustedRoot")))),
            ("hybrid certificate expired, internal recipient", "hybrid", peer("203.0.113.9", true, onprem_cert(Expired)), "user@contoso.test", &["alice@contoso.test"], Reject(Some("hcw"), tls454(Some("CertificateExpired")))),
            ("foreign certificate domain cannot relay foreign senders", "hybrid", peer("203.0.113.9", true, Some(cert("smtp.hoster.test", &[], Trusted))), "x@fabrikam.test", &["y@example.test"], Reject(Some("foreign-cert"), ReplyKind::RelayDeniedAttr36)),
            ("foreign certificate domain relays accepted senders", "hybrid", peer("203.0.113.9", true, Some(cert("smtp.hoster.test", &[], Trusted))), "user@contoso.test", &["y@example.test"], Accept(Some("foreign-cert"), ORIG, false)),
            ("app relay with accepted sender", "hybrid", peer("203.0.113.25", false, None), "scanner@CONTOSO.test", &["y@example.test"], Accept(Some("app"), ORIG, true)),
            ("app relay with foreign sender: ATTR36", "hybrid", peer("203.0.113.25", false, None), "x@fabrikam.test", &["y@example.test"], Reject(Some("app"), ReplyKind::RelayDeniedAttr36)),
            ("app relay with null sender: ATTR36", "hybrid", peer("203.0.113.25", false, None), "<>", &["y@example.test"], Reject(Some("app"), ReplyKind::RelayDeniedAttr36)),
            ("app relay, foreign sender, internal recipient: Incoming", "hybrid", peer("203.0.113.25", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(None, IN, false)),
            ("OnPremises RequireTls without TLS", "hybrid", peer("203.0.113.26", false, None), "scanner@contoso.test", &["y@example.test"], Reject(Some("app-tls"), tls454(None))),
            ("OnPremises RequireTls with TLS", "hybrid", peer("203.0.113.26", true, None), "scanner@contoso.test", &["y@example.test"], Accept(Some("app-tls"), ORIG, false)),
            ("unknown server cannot relay", "hybrid", peer("203.0.113.99", true, None), "user@contoso.test", &["y@example.test"], Reject(None, ReplyKind::RelayDenied)),
            // §2.1 AssociatedAcceptedDomains (recipient for Partner, sender for OnPremises).
            ("restriction scoped to other recipient domain", "aad", peer("203.0.113.5", false, None), "x@fabrikam.test", &["someone@relay.test"], Accept(None, IN, false)),
            ("restriction scoped to this recipient domain", "aad", peer("203.0.113.5", false, None), "x@fabrikam.test", &["alice@contoso.test"], Reject(Some("lock-contoso"), ReplyKind::PartnerConnectorRestricted)),
            ("OnPremises scoped to another sender domain", "aad", peer("203.0.113.25", false, None), "x@contoso.test", &["y@example.test"], Reject(None, ReplyKind::RelayDenied)),
            ("OnPremises scoped to this sender domain", "aad", peer("203.0.113.25", false, None), "x@relay.test", &["y@example.test"], Accept(Some("app"), ORIG, false)),
            // §5.1 RejectDirectSend.
            ("direct send refused", "direct-send", peer("203.0.113.5", false, None), "printer@contoso.test", &["alice@contoso.test"], Reject(None, ReplyKind::DirectSendNotAllowed)),
            ("direct send through a partner connector", "direct-send", peer("192.0.2.80", false, None), "printer@contoso.test", &["alice@contoso.test"], Accept(Some("printer"), IN, false)),
            ("foreign sender is not direct send", "direct-send", peer("203.0.113.5", false, None), "x@fabrikam.test", &["alice@contoso.test"], Accept(None, IN, false)),
            ("null sender is not direct send", "direct-send", peer("203.0.113.5", false, None), "<>", &["alice@contoso.test"], Accept(None, IN, false)),
        ];
        for (what, tenant_name, peer, sender, rcpts, want) in rows {
            let t = tenant(tenant_name);
            let sender: Option<EmailAddress> = (sender != "<>").then(|| sender.parse().unwrap());
            let rcpts: Vec<EmailAddress> = rcpts.iter().map(|r| r.parse().unwrap()).collect();
            let got = attribute(&t, &peer, sender.as_ref(), &rcpts);
            let checks: Vec<String> = got.checks().iter().map(ToString::to_string).collect();
            let ctx = format!("{what}: {got:?}\n  {}", checks.join("\n  "));
            match (&want, &got) {
                (Accept(c, d, i), InboundVerdict::Accepted { connector, direction, internal, relay_allowed, .. }) => {
                    assert_eq!(connector.as_deref(), *c, "{ctx}");
                    assert_eq!((direction, internal), (d, i), "{ctx}");
                    assert_eq!(*relay_allowed, *d == ORIG, "{ctx}");
                }
                (Reject(c, reply), InboundVerdict::Rejected { rejection, .. }) => {
                    assert_eq!(rejection.connector.as_deref(), *c, "{ctx}");
                    assert_eq!(&rejection.reply, reply, "{ctx}");
                    assert!(!rejection.reason.is_empty(), "{ctx}");
                }
                _ => panic!("wanted {want:?}\n{ctx}"),
            }
            assert_eq!(got, attribute_unindexed(&t, &peer, sender.as_ref(), &rcpts), "index differs: {what}");
        }
    }

    #[test]
    fn verdict_explains_itself() {
        let t = tenant("lock-ip");
        let p = peer("203.0.113.5", false, None);
        let v = attribute(&t, &p, Some(&"x@fabrikam.test".parse().unwrap()), &["alice@contoso.test".parse().unwrap()]);
        let lines: Vec<String> = v.checks().iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "PASS [gw] SenderDomains: MAIL FROM domain fabrikam.test is covered by `*`",
                "FAIL [gw] SenderIPAddresses: 203.0.113.5 is not in 198.51.100.0/24",
                "FAIL [gw] RestrictDomainsToIPAddresses: source is not in SenderIPAddresses",
            ]
        );
        assert_eq!(
            v.rejection().unwrap().reason,
            "Partner connector gw restricts MAIL FROM domain fabrikam.test and source 203.0.113.5 is not in its SenderIPAddresses"
        );
        assert_eq!(v.connector(), Some("gw"));
        assert_eq!(v.rejection_stage(&t.settings), Some(RejectionStage::EndOfData));
        assert!(v.stamp("host").is_empty());
    }

    /// §8.5: Originating through a hybrid connector is stamped Internal; internet mail Anonymous.
    #[test]
    fn stamps() {
        let t = tenant("hybrid");
        let p = peer("203.0.113.9", true, Some(cert("mail.contoso.test", &[], CertTrust::Trusted)));
        let v = attribute(&t, &p, Some(&"a@contoso.test".parse().unwrap()), &["y@example.test".parse().unwrap()]);
        assert_eq!(
            v.stamp("EX01.test"),
            vec![
                ("X-MS-Exchange-Organization-AuthAs", "Internal".to_string()),
                ("X-MS-Exchange-Organization-AuthSource", "EX01.test".to_string()),
                ("X-MS-Exchange-Organization-MessageDirectionality", "Originating".to_string()),
            ]
        );
        let v = attribute(&t, &peer("192.0.2.1", false, None), None, &["alice@contoso.test".parse().unwrap()]);
        assert_eq!(v.stamp("h")[0].1, "Anonymous");
        assert_eq!(v.stamp("h")[2].1, "Incoming");
    }

    #[test]
    fn precedence_counts_a_certificate_as_a_32() {
        assert!(precedence(Some(28), false, 0) > precedence(Some(24), false, 0));
        assert!(precedence(None, true, 5) > precedence(Some(31), false, 0));
        assert!(precedence(Some(32), true, 5) > precedence(Some(32), false, 0));
        assert!(precedence(Some(24), false, 0) > precedence(Some(24), false, 1));
    }

    /// A tenant cannot be edited in place (the index could go stale); a changed tenant is built
    /// anew from `to_builder`, with an index of its own.
    #[test]
    fn a_changed_tenant_is_built_anew_with_its_own_index() {
        let t = tenant("lock-ip");
        let p = peer("203.0.113.5", false, None);
        let before = attribute(&t, &p, None, &[]);
        let mut b = t.to_builder();
        b.inbound_connectors[0].sender_ip_addresses = nets(&["203.0.113.0/24"]);
        let changed = b.build().unwrap();
        let after = attribute(&changed, &p, None, &[]);
        assert_ne!(before, after);
        assert_eq!(after, attribute_unindexed(&changed, &p, None, &[]));
        assert_eq!(before, attribute(&t, &p, None, &[]));
    }
}
