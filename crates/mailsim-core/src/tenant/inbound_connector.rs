//! Inbound connectors (`New-InboundConnector`), exo-semantics §2.1.

use ipnet::Ipv4Net;

use super::pattern::DomainPattern;
use crate::addr::Domain;

/// `ConnectorType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum ConnectorType {
    /// A partner organisation or service (the EAC default).
    #[default]
    Partner,
    /// The tenant's own servers.
    OnPremises,
}

/// One inbound connector with EXO's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundConnector {
    /// `Name`.
    pub name: String,
    /// `Enabled`.
    pub enabled: bool,
    /// `ConnectorType`.
    pub connector_type: ConnectorType,
    /// `SenderIPAddresses` (IPv4, /24 to /32).
    pub sender_ip_addresses: Vec<Ipv4Net>,
    /// `SenderDomains`.
    pub sender_domains: Vec<DomainPattern>,
    /// `TlsSenderCertificateName`.
    pub tls_sender_certificate_name: Option<DomainPattern>,
    /// `RequireTls`.
    pub require_tls: bool,
    /// `RestrictDomainsToIPAddresses`.
    pub restrict_domains_to_ip_addresses: bool,
    /// `RestrictDomainsToCertificate`.
    pub restrict_domains_to_certificate: bool,
    /// `TreatMessagesAsInternal`.
    pub treat_messages_as_internal: bool,
    /// `CloudServicesMailEnabled`.
    pub cloud_services_mail_enabled: bool,
    /// `AssociatedAcceptedDomains`.
    pub associated_accepted_domains: Vec<Domain>,
    /// `EFSkipIPs`, kept as written for the enhanced-filtering work.
    pub ef_skip_ips: Vec<String>,
    /// `EFSkipLastIP`.
    pub ef_skip_last_ip: bool,
    /// `Comment`.
    pub comment: Option<String>,
}
