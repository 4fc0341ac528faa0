//! What the tenant knows about the connecting peer: source address, EHLO name and TLS facts.
//! Built by the shell from the socket and the TLS handshake; read by the session and the inbound
//! stage.

use std::net::IpAddr;

use crate::time::Timestamp;

/// How the client certificate fared against the tenant's trusted CAs. The handshake never aborts
/// for these: policy (the inbound stage) decides what they mean (exo-behaviour §2.3 step 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertTrust {
    /// Chains to a trusted CA and is within its validity period.
    Trusted,
    /// Chains to a trusted CA but is outside its validity period.
    Expired,
    /// Does not chain to a trusted CA (EXO's `UntrustedRoot`).
    UntrustedRoot,
    /// Any other verification failure, with the verifier's words.
    Invalid(String),
}

impl CertTrust {
    /// EXO's reason word for the `454 4.7.0 Failed to establish appropriate TLS channel` reply.
    pub fn exo_reason(&self) -> Option<&'static str> {
        match self {
            CertTrust::Trusted => None,
            CertTrust::Expired => Some("CertificateExpired"),
            CertTrust::UntrustedRoot => Some("UntrustedRoot"),
            CertTrust::Invalid(_) => Some("CertificateInvalid"),
        }
    }
}

/// The facts of a client certificate, as the tenant saw them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertFacts {
    /// Full subject, e.g. `CN=mail.gateway.test, O=Gateway`.
    pub subject: String,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// dNSName subject alternative names.
    pub dns_sans: Vec<String>,
    /// Full issuer.
    pub issuer: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// SHA-256 fingerprint, upper-case hex.
    pub sha256: String,
    /// Chain and validity verdict.
    pub trust: CertTrust,
}

impl ClientCertFacts {
    /// The names a connector's `TlsSenderCertificateName` is matched against: subject CN and every
    /// DNS SAN (exo-behaviour §2.3 step 3).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.common_names.iter().chain(self.dns_sans.iter()).map(String::as_str)
    }
}

/// The negotiated TLS session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLS1_2` or `TLS1_3`, as Exchange writes versions in Received headers.
    pub version: String,
    /// The IANA cipher suite name.
    pub cipher: String,
    /// SNI the client sent, if any.
    pub sni: Option<String>,
    /// The client certificate, if one was presented.
    pub client_cert: Option<ClientCertFacts>,
}

/// Everything known about the peer of one inbound connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerFacts {
    /// The source address on the socket (a 127/8 address in the simulation).
    pub observed_ip: IpAddr,
    /// The source port.
    pub port: u16,
    /// The address the peer stands for, after the address plan (`198.51.100.7`); equal to
    /// `observed_ip` when the plan has no entry.
    pub ip: IpAddr,
    /// The EHLO/HELO name, once given.
    pub helo: Option<String>,
    /// TLS facts, once STARTTLS completed.
    pub tls: Option<TlsFacts>,
}

impl PeerFacts {
    /// A peer without TLS or HELO yet.
    pub fn new(observed_ip: IpAddr, port: u16, ip: IpAddr) -> Self {
        Self { observed_ip, port, ip, helo: None, tls: None }
    }
}
