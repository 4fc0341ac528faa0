//! Outbound connectors (`New-OutboundConnector`), exo-behaviour §3.1, and the rules the cmdlet
//! enforces on one connector ([`OutboundConnector::validate`]), shared by the loader and the tenant
//! builder.

use std::fmt;
use std::net::IpAddr;

use super::ParameterError;
use super::inbound_connector::ConnectorType;
use super::pattern::DomainPattern;

/// `TlsSettings` (exo-behaviour §3.1, §0 item 9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum TlsSettings {
    /// `$null`: opportunistic TLS; sends in clear when the peer does not offer STARTTLS.
    #[default]
    #[serde(alias = "$null", alias = "Opportunistic")]
    Opportunistic,
    /// TLS required, no certificate checks.
    EncryptionOnly,
    /// TLS required, the certificate must chain to a trusted root and be valid.
    CertificateValidation,
    /// As CertificateValidation, and the certificate name must match `TlsDomain`.
    DomainValidation,
}

/// One `SmartHosts` entry: an FQDN (resolved as MX, then A) or an IP address, with a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmartHost {
    /// The host.
    pub host: SmartHostAddr,
    /// TCP port (25 unless written `host:port`).
    pub port: u16,
}

/// The host part of a smart host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmartHostAddr {
    /// A name to resolve.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

impl SmartHost {
    /// Parses `host`, `host:port`, `192.0.2.1`, `192.0.2.1:2525` or `[2001:db8::1]:25`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(Self { host: SmartHostAddr::Ip(ip), port: 25 });
        }
        if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
            return Some(Self { host: SmartHostAddr::Ip(sock.ip()), port: sock.port() });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, p)) => (n, p.parse().ok()?),
            None => (s, 25),
        };
        let domain = crate::addr::Domain::parse(name, false).ok()?;
        Some(Self { host: SmartHostAddr::Name(domain.as_str().to_string()), port })
    }
}

impl fmt::Display for SmartHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            SmartHostAddr::Name(n) => write!(f, "{n}")?,
            SmartHostAddr::Ip(ip) => write!(f, "{ip}")?,
        }
        if self.port != 25 { write!(f, ":{}", self.port) } else { Ok(()) }
    }
}

/// One outbound connector with EXO's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundConnector {
    /// `Name`.
    pub name: String,
    /// `Enabled`.
    pub enabled: bool,
    /// `ConnectorType`.
    pub connector_type: ConnectorType,
    /// `RecipientDomains`.
    pub recipient_domains: Vec<DomainPattern>,
    /// `SmartHosts`.
    pub smart_hosts: Vec<SmartHost>,
    /// `UseMXRecord`.
    pub use_mx_record: bool,
    /// `TlsSettings`.
    pub tls_settings: TlsSettings,
    /// `TlsDomain`.
    pub tls_domain: Option<DomainPattern>,
    /// `IsTransportRuleScoped`: inert until a mail flow rule selects it.
    pub is_transport_rule_scoped: bool,
    /// `RouteAllMessagesViaOnPremises` (centralized mail transport).
    pub route_all_messages_via_on_premises: bool,
    /// `AllAcceptedDomains`.
    pub all_accepted_domains: bool,
    /// `TestMode` (semantics undocumented, §3.1: kept, no effect on routing).
    pub test_mode: bool,
    /// `CloudServicesMailEnabled`.
    pub cloud_services_mail_enabled: bool,
    /// `Comment`.
    pub comment: Option<String>,
}

impl OutboundConnector {
    /// A connector with EXO's defaults (`UseMXRecord $true`, opportunistic TLS).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            enabled: true,
            connector_type: ConnectorType::Partner,
            recipient_domains: Vec::new(),
            smart_hosts: Vec::new(),
            use_mx_record: true,
            tls_settings: TlsSettings::Opportunistic,
            tls_domain: None,
            is_transport_rule_scoped: false,
            route_all_messages_via_on_premises: false,
            all_accepted_domains: false,
            test_mode: false,
            cloud_services_mail_enabled: false,
            comment: None,
        }
    }
}

impl OutboundConnector {
    /// The rules `New-OutboundConnector` enforces on one connector (exo-behaviour §3.1), checked in
    /// this order: a name of 1 to 64 characters; `UseMXRecord $false` needs `SmartHosts` and
    /// `SmartHosts` need `UseMXRecord $false`; `AllAcceptedDomains` and
    /// `RouteAllMessagesViaOnPremises` need `OnPremises`; the connector must cover some recipients.
    /// Unique names are the tenant builder's rule.
    pub fn validate(&self) -> Result<(), ParameterError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ParameterError::new("Name", "Name must be 1 to 64 characters (New-OutboundConnector)"));
        }
        if !self.use_mx_record && self.smart_hosts.is_empty() {
            return Err(ParameterError::new("SmartHosts", "UseMXRecord is $false but no SmartHosts are given")
                .at("UseMXRecord")
                .hint("add `SmartHosts = [\"smtp.gateway.test\"]` or set UseMXRecord = true"));
        }
        if self.use_mx_record && !self.smart_hosts.is_empty() {
            return Err(ParameterError::new("UseMXRecord", "SmartHosts are only used with UseMXRecord = $false")
                .hint("set `UseMXRecord = false`"));
        }
        for (on, key) in [
            (self.all_accepted_domains, "AllAcceptedDomains"),
            (self.route_all_messages_via_on_premises, "RouteAllMessagesViaOnPremises"),
        ] {
            if on && self.connector_type != ConnectorType::OnPremises {
                return Err(ParameterError::new(key, format!("{key} requires ConnectorType OnPremises"))
                    .hint("set ConnectorType = \"OnPremises\""));
            }
        }
        if self.recipient_domains.is_empty() && !self.all_accepted_domains && !self.is_transport_rule_scoped {
            return Err(ParameterError::new("RecipientDomains", "the connector covers no recipients")
                .hint("write `RecipientDomains = [\"*\"]` to route every external recipient"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_host_forms() {
        let rows = [
            ("mail.gateway.test", Some("mail.gateway.test")),
            ("Mail.Gateway.TEST:2525", Some("mail.gateway.test:2525")),
            ("198.51.100.7", Some("198.51.100.7")),
            ("198.51.100.7:587", Some("198.51.100.7:587")),
            ("bad host", None),
            ("host:notaport", None),
        ];
        for (input, expected) in rows {
            assert_eq!(SmartHost::parse(input).map(|h| h.to_string()).as_deref(), expected, "{input}");
        }
    }
}
