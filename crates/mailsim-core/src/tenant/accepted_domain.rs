//! Accepted domains (exo-behaviour §4.1).

use crate::addr::Domain;

/// `DomainType` of an accepted domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum DomainType {
    /// The tenant owns every recipient; unknown recipients are refused by DBEB (§4.2).
    Authoritative,
    /// Unknown recipients are relayed through an outbound connector (§4.1).
    InternalRelay,
}

/// One accepted domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedDomain {
    /// `DomainName`.
    pub name: Domain,
    /// `DomainType`.
    pub domain_type: DomainType,
    /// `MatchSubDomains` (InternalRelay only).
    pub match_subdomains: bool,
}
