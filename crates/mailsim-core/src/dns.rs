//! DNS answers as data. The shell resolves (against the simulated world's DNS server only) and
//! hands the answers to the routing decisions here, which decide what MX preference, null MX
//! (RFC 7505), implicit MX (RFC 5321 §5.1) and each failure mean.

use std::net::IpAddr;

/// One MX record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MxRecord {
    /// Preference (lower first).
    pub preference: u16,
    /// Exchange host, lower-cased, without trailing dot. `""` is the null MX root (`MX 0 .`).
    pub exchange: String,
}

/// Why a lookup gave no records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// The name exists but has no record of the type asked (NODATA).
    NoData,
    /// SERVFAIL.
    ServFail,
    /// No answer in time.
    Timeout,
    /// REFUSED or any other failure, with the resolver's words.
    Other(String),
}

impl DnsError {
    /// Whether the failure may go away on retry (SERVFAIL, timeouts, other errors), as opposed to
    /// an authoritative "does not exist".
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::ServFail | DnsError::Timeout | DnsError::Other(_))
    }
}

/// The answer to an MX query.
pub type MxAnswer = Result<Vec<MxRecord>, DnsError>;
/// The answer to an A/AAAA query.
pub type AddressAnswer = Result<Vec<IpAddr>, DnsError>;
