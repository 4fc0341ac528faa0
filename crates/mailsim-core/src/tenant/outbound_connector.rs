//! Outbound connectors (`New-OutboundConnector`), exo-behaviour §3.1, and the rules the cmdlet
//! enforces on one connector ([`OutboundConnector::validate`]), shared by the loader and the tenant
//! builder.

use std::fmt;
use std::net::IpAddr;

use super::ParameterError;
use super::inbound_connector::ConnectorType;
use super::pattern::DomainPattern;
use crate::addr::EmailAddress;

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

/// One `SmartHosts` entry: an FQDN (resolved as MX, then A), a bracketed name or address (a
/// literal next hop, no MX lookup: Postfix's `relayhost = [host]:port`), or an IP address, with a
/// port. Every form the loader accepts is one delivery can use (issue 9 item 5).
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
    /// A name to resolve: its MX hosts, or its own addresses when it has no MX (§3.1, §12).
    Name(String),
    /// A literal address.
    Ip(IpAddr),
    /// A bracketed name (`[smtp.gateway.test]`): resolved to its own addresses only, never
    /// through MX records (the meaning brackets have in Postfix's `relayhost`).
    Exact(String),
}

/// Why a `SmartHosts` entry is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmartHostError {
    /// Nothing written.
    #[error("an empty smart host")]
    Empty,
    /// The port is not 1 to 65535.
    #[error("`{0}` is not a port (1 to 65535)")]
    Port(String),
    /// The host is neither an address nor a host name.
    #[error("not a host name or IP address")]
    Host(String),
    /// `[` without its `]`, or text after `]` that is not `:port`.
    #[error("a bracketed next hop is written `[host]` or `[host]:port`")]
    Brackets,
    /// An IPv6 address with a port but without brackets.
    #[error("an IPv6 address with a port is written `[2001:db8::1]:25`")]
    BareIpv6Port,
}

fn parse_port(p: &str) -> Result<u16, SmartHostError> {
    match p.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(SmartHostError::Port(p.to_string())),
    }
}

impl SmartHost {
    /// Parses `host`, `host:port`, `192.0.2.1`, `192.0.2.1:2525`, `[192.0.2.1]:2525`,
    /// `[smtp.gateway.test]:587` or `[2001:db8::1]:25`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::parse_detailed(s).ok()
    }

    /// As [`SmartHost::parse`], saying what is wrong.
    pub fn parse_detailed(s: &str) -> Result<Self, SmartHostError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SmartHostError::Empty);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or(SmartHostError::Brackets)?;
            let port = match after {
                "" => 25,
                _ => parse_port(after.strip_prefix(':').ok_or(SmartHostError::Brackets)?)?,
            };
            let inner = inner.trim();
            let ip_text = inner.strip_prefix("IPv6:").or_else(|| inner.strip_prefix("ipv6:")).unwrap_or(inner);
            if let Ok(ip) = ip_text.parse::<IpAddr>() {
                return Ok(Self { host: SmartHostAddr::Ip(ip), port });
            }
            let domain = crate::addr::Domain::parse(inner, false)
                .ok()
                .filter(|d| !d.as_str().starts_with('['))
                .ok_or_else(|| SmartHostError::Host(inner.to_string()))?;
            return Ok(Self { host: SmartHostAddr::Exact(domain.as_str().to_string()), port });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self { host: SmartHostAddr::Ip(ip), port: 25 });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((n, _)) if n.contains(':') => return Err(SmartHostError::BareIpv6Port),
            Some((n, p)) => (n, parse_port(p)?),
            None => (s, 25),
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Self { host: SmartHostAddr::Ip(ip), port });
        }
        let domain = crate::addr::Domain::parse(name, false)
            .ok()
            .filter(|d| !d.as_str().starts_with('['))
            .ok_or_else(|| SmartHostError::Host(name.to_string()))?;
        Ok(Self { host: SmartHostAddr::Name(domain.as_str().to_string()), port })
    }
}

impl fmt::Display for SmartHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port != 25;
        match &self.host {
            SmartHostAddr::Name(n) => write!(f, "{n}")?,
            SmartHostAddr::Exact(n) => write!(f, "[{n}]")?,
            SmartHostAddr::Ip(IpAddr::V6(ip)) if port => write!(f, "[{ip}]")?,
            SmartHostAddr::Ip(ip) => write!(f, "{ip}")?,
        }
        if port { write!(f, ":{}", self.port) } else { Ok(()) }
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
    /// `ValidationRecipients` (`Set-OutboundConnector`, exo-behaviour §3.1, §15.3): where
    /// `Validate-OutboundConnector` (`mailsim validate-outbound`) sends its test message.
    pub validation_recipients: Vec<EmailAddress>,
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
            validation_recipients: Vec::new(),
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
            ("[198.51.100.7]:2602", Some("198.51.100.7:2602")),
            ("[198.51.100.7]", Some("198.51.100.7")),
            ("[Smtp.Gateway.test]:587", Some("[smtp.gateway.test]:587")),
            ("[smtp.gateway.test]", Some("[smtp.gateway.test]")),
            ("[2001:db8::1]:2525", Some("[2001:db8::1]:2525")),
            ("[IPv6:2001:db8::1]", Some("2001:db8::1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("bad host", None),
            ("host:notaport", None),
            ("host:0", None),
            ("host:70000", None),
            ("[198.51.100.7", None),
            ("[198.51.100.7]x", None),
            ("[bad host]:25", None),
            ("2001:db8::1:25x", None),
            ("", None),
        ];
        for (input, expected) in rows {
            assert_eq!(SmartHost::parse(input).map(|h| h.to_string()).as_deref(), expected, "{input}");
        }
    }

    /// Every written form reads back as itself (what the loader shows is what delivery uses).
    #[test]
    fn smart_host_display_round_trips() {
        for text in ["a.test", "a.test:2525", "[a.test]", "[a.test]:2602", "192.0.2.1:26", "[2001:db8::1]:26"] {
            let parsed = SmartHost::parse(text).unwrap();
            assert_eq!(SmartHost::parse(&parsed.to_string()), Some(parsed), "{text}");
        }
    }
}
