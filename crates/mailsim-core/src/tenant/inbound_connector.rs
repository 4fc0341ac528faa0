//! Inbound connectors (`New-InboundConnector`), exo-behaviour §2.1: the parameters, the rules the
//! cmdlets enforce on one connector ([`InboundConnector::validate`], shared by the loader and the
//! tenant builder), and the lookup index the inbound stage uses to find the few connectors a
//! connection can concern (§2.2: Partner connectors are found by IP or certificate, and by sender
//! domain for restrictions). The tenant builds the index once, with the tenant.
//!
//! The index is a candidate filter only: every decision is recomputed from the connector's own
//! fields, so the index can make `attribute` fast but never changes its answer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv4Subnets};

use super::ParameterError;
use super::pattern::DomainPattern;
use crate::addr::Domain;
use crate::peer::ClientCertFacts;

/// `ConnectorType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum ConnectorType {
    /// A partner organisation or service (the EAC default).
    #[default]
    Partner,
    /// The tenant's own servers.
    OnPremises,
}

impl ConnectorType {
    /// EXO's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Partner => "Partner",
            Self::OnPremises => "OnPremises",
        }
    }
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
    /// `EFUsers`: Enhanced Filtering only for messages whose every recipient is listed
    /// (exo-behaviour §2.1, §7); empty = all recipients.
    pub ef_users: Vec<crate::addr::EmailAddress>,
    /// `ClientHostNames`: undocumented in EXO (§2.1, §12), stored and otherwise ignored.
    pub client_host_names: Vec<String>,
    /// `Comment`.
    pub comment: Option<String>,
}

impl InboundConnector {
    /// An enabled connector of the given type covering every sender domain (`SenderDomains *`), with
    /// no keys and every flag off: the starting point for builders and tests.
    pub fn new(name: &str, connector_type: ConnectorType) -> Self {
        Self {
            name: name.to_string(),
            enabled: true,
            connector_type,
            sender_ip_addresses: Vec::new(),
            sender_domains: vec![DomainPattern::Any],
            tls_sender_certificate_name: None,
            require_tls: false,
            restrict_domains_to_ip_addresses: false,
            restrict_domains_to_certificate: false,
            treat_messages_as_internal: false,
            cloud_services_mail_enabled: false,
            associated_accepted_domains: Vec::new(),
            ef_skip_ips: Vec::new(),
            ef_skip_last_ip: false,
            ef_users: Vec::new(),
            client_host_names: Vec::new(),
            comment: None,
        }
    }

    /// Whether this is a "lock-down" Partner connector (exo-behaviour §0 item 3, §2.2).
    pub fn is_restricting(&self) -> bool {
        self.connector_type == ConnectorType::Partner
            && (self.restrict_domains_to_ip_addresses || self.restrict_domains_to_certificate)
    }

    /// The longest `SenderIPAddresses` prefix containing `ip`, with the range.
    pub fn ip_match(&self, ip: Ipv4Addr) -> Option<Ipv4Net> {
        let ip = u32::from(ip);
        let mut best: Option<Ipv4Net> = None;
        for net in &self.sender_ip_addresses {
            // Mask arithmetic rather than `Ipv4Net::contains`: this loop is the hot path of
            // attribution (50 ranges per connector in the benchmark).
            let mask = u32::MAX.checked_shl(32 - u32::from(net.prefix_len())).unwrap_or(0);
            if (ip ^ u32::from(net.addr())) & mask == 0 && best.is_none_or(|b| net.prefix_len() > b.prefix_len()) {
                best = Some(*net);
            }
        }
        best
    }

    /// The first certificate name (CN, then DNS SANs) that satisfies `TlsSenderCertificateName`,
    /// whatever the certificate's trust (the caller decides what an untrusted match means).
    pub fn cert_name_match<'c>(&self, cert: &'c ClientCertFacts) -> Option<&'c str> {
        let pattern = self.tls_sender_certificate_name.as_ref()?;
        cert.names().find(|n| pattern.matches_cert_name(n))
    }

    /// The `SenderDomains` entry covering the P1 MAIL FROM domain; `sender` is `None` for the null
    /// sender `<>`, which only `*` covers (mailsim's choice: the null sender has no domain to match).
    pub fn sender_domain_match(&self, sender: Option<&Domain>) -> Option<&DomainPattern> {
        match sender {
            Some(d) => self.sender_domains.iter().find(|p| p.matches(d)),
            None => self.sender_domains.iter().find(|p| **p == DomainPattern::Any),
        }
    }
}

impl InboundConnector {
    /// The rules `New-InboundConnector` and `Set-InboundConnector` enforce on one connector
    /// (exo-behaviour §2.1, §2.2), checked in this order. The tenant builder calls it for every
    /// connector, so a connector built in Rust passes the same checks as one loaded from a file;
    /// rules that need the rest of the tenant (unique names, `AssociatedAcceptedDomains`) are the
    /// builder's.
    pub fn validate(&self) -> Result<(), ParameterError> {
        if self.name.trim().is_empty() {
            return Err(ParameterError::new("Name", "Name must not be empty"));
        }
        // SenderDomains is mandatory for New-InboundConnector (§2.1, §11: there is no "any" default).
        if self.sender_domains.is_empty() {
            return Err(ParameterError::new(
                "SenderDomains",
                "SenderDomains is required (New-InboundConnector has no default)",
            )
            .hint("write `SenderDomains = [\"*\"]` to cover every sender domain"));
        }
        for net in &self.sender_ip_addresses {
            let refused = if net.prefix_len() < 24 {
                Some(IpRangeError::PrefixTooShort(net.trunc()))
            } else if net.network() != net.addr() {
                Some(IpRangeError::HostBitsSet {
                    given: net.to_string(),
                    prefix: net.prefix_len(),
                    network: net.trunc(),
                })
            } else {
                None
            };
            if let Some(e) = refused {
                let err = ParameterError::new("SenderIPAddresses", e.to_string());
                return Err(match e.hint() {
                    Some(h) => err.hint(h),
                    None => err,
                });
            }
        }
        if self.tls_sender_certificate_name == Some(DomainPattern::Any) {
            return Err(ParameterError::new("TlsSenderCertificateName", "`*` names no certificate")
                .hint("write the certificate's domain: `contoso.com` or `*.contoso.com`"));
        }
        // Contradictions Set-InboundConnector refuses (§2.1, §2.2).
        if self.treat_messages_as_internal && self.connector_type != ConnectorType::OnPremises {
            return Err(ParameterError::new(
                "TreatMessagesAsInternal",
                "TreatMessagesAsInternal is only allowed on OnPremises connectors",
            )
            .hint("set ConnectorType = \"OnPremises\" or remove TreatMessagesAsInternal"));
        }
        if self.treat_messages_as_internal && self.cloud_services_mail_enabled {
            return Err(ParameterError::new(
                "TreatMessagesAsInternal",
                "TreatMessagesAsInternal is not allowed together with CloudServicesMailEnabled",
            )
            .hint("keep CloudServicesMailEnabled for Exchange hybrid, TreatMessagesAsInternal for other servers"));
        }
        for (on, key) in [
            (self.restrict_domains_to_ip_addresses, "RestrictDomainsToIPAddresses"),
            (self.restrict_domains_to_certificate, "RestrictDomainsToCertificate"),
        ] {
            if on && self.connector_type == ConnectorType::OnPremises {
                return Err(ParameterError::new(key, format!("{key} only works on Partner connectors")).hint(
                    "lock down with a separate Partner connector (SenderDomains [\"*\"]) beside this one (exo-behaviour §2.2)",
                ));
            }
        }
        if self.restrict_domains_to_certificate && self.tls_sender_certificate_name.is_none() {
            return Err(ParameterError::new(
                "RestrictDomainsToCertificate",
                "RestrictDomainsToCertificate needs TlsSenderCertificateName",
            )
            .hint("add TlsSenderCertificateName = \"*.gateway.example\" (the certificate's domain)"));
        }
        if self.restrict_domains_to_ip_addresses && self.sender_ip_addresses.is_empty() {
            return Err(ParameterError::new(
                "RestrictDomainsToIPAddresses",
                "RestrictDomainsToIPAddresses needs SenderIPAddresses",
            )
            .hint("add SenderIPAddresses = [\"198.51.100.0/24\"] (the gateway's ranges)"));
        }
        for text in &self.ef_skip_ips {
            check_ef_skip_ip(text).map_err(|m| ParameterError::new("EFSkipIPs", m))?;
        }
        Ok(())
    }
}

/// `EFSkipIPs` (§2.1, §7): a single IP, a dash range or a CIDR block; RFC 1918 addresses are
/// refused (EXO skips them on its own).
pub fn check_ef_skip_ip(text: &str) -> Result<(), String> {
    use std::net::IpAddr;
    let t = text.trim();
    let private = |ip: IpAddr| matches!(ip, IpAddr::V4(a) if a.is_private());
    let first: IpAddr = if let Some((a, b)) = t.split_once('-') {
        let (a, b): (IpAddr, IpAddr) = match (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            (Ok(a), Ok(b)) if a.is_ipv4() == b.is_ipv4() && a <= b => (a, b),
            _ => return Err(format!("`{t}` is not a valid address range")),
        };
        if private(b) {
            return Err(format!("`{t}` includes RFC 1918 private addresses, which EXO skips on its own"));
        }
        a
    } else if t.contains('/') {
        t.parse::<ipnet::IpNet>().map_err(|_| format!("`{t}` is not a valid CIDR block"))?.network()
    } else {
        t.parse::<IpAddr>().map_err(|_| format!("`{t}` is not an IP address"))?
    };
    if private(first) {
        return Err(format!("`{t}` is an RFC 1918 private address, which EXO skips on its own"));
    }
    Ok(())
}

/// Why a `SenderIPAddresses` entry was refused (exo-behaviour §2.1: single IPv4 address or IPv4
/// CIDR /24 to /32; IPv6 not supported; no dash ranges).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpRangeError {
    /// Nothing but whitespace.
    #[error("empty address")]
    Empty,
    /// An IPv6 address or network.
    #[error("`{0}` is IPv6; EXO inbound connectors accept IPv4 addresses only")]
    Ipv6(String),
    /// A dash range `a-b`.
    #[error("`{0}` is a dash range; SenderIPAddresses accepts a single IPv4 address or a CIDR block /24 to /32")]
    DashRange(String),
    /// A mask written as an address (`/255.255.255.0`).
    #[error("`{0}` gives the mask as an address; write it as a prefix length")]
    DottedMask(String),
    /// A prefix shorter than /24.
    #[error("`{0}` is broader than EXO allows: prefixes must be /24 to /32")]
    PrefixTooShort(Ipv4Net),
    /// A prefix that is not a number from 0 to 32.
    #[error("`{0}` has an invalid prefix length")]
    BadPrefix(String),
    /// Address bits set below the prefix (`198.51.100.7/24`). mailsim's choice: refused, as the
    /// intent is ambiguous (one host or the whole block?).
    #[error("`{given}` has host bits set below the /{prefix} prefix")]
    HostBitsSet {
        /// The value as written.
        given: String,
        /// Its prefix length.
        prefix: u8,
        /// The network it would denote.
        network: Ipv4Net,
    },
    /// Not an IPv4 address at all.
    #[error("`{0}` is not an IPv4 address")]
    NotAnAddress(String),
}

impl IpRangeError {
    /// What to write instead, where that can be said.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::DashRange(s) => {
                let (a, b) = s.split_once('-')?;
                let (a, b) = (a.trim().parse::<Ipv4Addr>().ok()?, b.trim().parse::<Ipv4Addr>().ok()?);
                if a > b {
                    return Some("the range's start is above its end".to_string());
                }
                Some(format!("write the range as CIDR blocks: {}", cidr_list(Ipv4Subnets::new(a, b, 24))))
            }
            Self::DottedMask(s) => {
                let (addr, mask) = s.split_once('/')?;
                let mask: u32 = mask.trim().parse::<Ipv4Addr>().ok()?.into();
                (mask.leading_ones() + mask.trailing_zeros() == 32)
                    .then(|| format!("write `{}/{}`", addr.trim(), mask.leading_ones()))
            }
            Self::PrefixTooShort(net) => {
                let blocks = Ipv4Subnets::new(net.network(), net.broadcast(), 24);
                Some(format!("split it into /24 blocks: {}", cidr_list(blocks)))
            }
            Self::HostBitsSet { network, .. } => Some(format!("did you mean `{network}`?")),
            Self::Ipv6(_) => Some("IPv6 senders cannot be keyed by IP; use a certificate connector".to_string()),
            _ => None,
        }
    }
}

fn cidr_list(nets: impl Iterator<Item = Ipv4Net>) -> String {
    let nets: Vec<Ipv4Net> = nets.collect();
    let shown: Vec<String> = nets.iter().take(4).map(Ipv4Net::to_string).collect();
    match nets.len() {
        n if n > 4 => format!("{}, … ({n} blocks)", shown.join(", ")),
        _ => shown.join(", "),
    }
}

/// Parses one `SenderIPAddresses` entry as EXO accepts it (exo-behaviour §2.1). A single address
/// becomes a /32.
pub fn parse_sender_ip(s: &str) -> Result<Ipv4Net, IpRangeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(IpRangeError::Empty);
    }
    if s.contains(':') {
        return Err(IpRangeError::Ipv6(s.to_string()));
    }
    if s.contains('-') {
        return Err(IpRangeError::DashRange(s.to_string()));
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a.trim(), Some(p.trim())),
        None => (s, None),
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| IpRangeError::NotAnAddress(s.to_string()))?;
    let prefix = match prefix {
        None => 32,
        Some(p) if p.contains('.') => return Err(IpRangeError::DottedMask(s.to_string())),
        Some(p) if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().map_err(|_| IpRangeError::BadPrefix(s.to_string()))?
        }
        Some(_) => return Err(IpRangeError::BadPrefix(s.to_string())),
    };
    let net = Ipv4Net::new(addr, prefix).map_err(|_| IpRangeError::BadPrefix(s.to_string()))?;
    if prefix < 24 {
        return Err(IpRangeError::PrefixTooShort(net.trunc()));
    }
    if net.network() != addr {
        return Err(IpRangeError::HostBitsSet { given: s.to_string(), prefix, network: net.trunc() });
    }
    Ok(net)
}

/// FNV-1a: the index's keys are short and not attacker-chosen in a way that matters (the tenant's
/// own configuration), and SipHash would cost more than the rest of a lookup.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map<K> = HashMap<K, Vec<u32>, BuildHasherDefault<Fnv>>;

/// Connector positions (indices into `Tenant::inbound_connectors`) per lookup key, enabled
/// connectors only. Built from the connector list; answers "which connectors could concern this
/// connection", a superset of the connectors whose IP, certificate name or sender domains match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundIndex {
    /// Whether any enabled OnPremises connector exists.
    onprem: bool,
    /// `SenderIPAddresses`: every range (/24 to /32) lies in exactly one /24 block.
    by_block: Map<u32>,
    /// `TlsSenderCertificateName` by form.
    cert_exact: Map<String>,
    cert_exact_by_parent: Map<String>,
    cert_subtree: Map<String>,
    cert_any: Vec<u32>,
    /// `SenderDomains` of Partner connectors by form.
    sender_exact: Map<String>,
    sender_subtree: Map<String>,
    sender_any: Vec<u32>,
}

fn push(map: &mut Map<String>, key: &str, i: u32) {
    let v = map.entry(key.to_string()).or_default();
    if v.last() != Some(&i) {
        v.push(i);
    }
}

/// The domain itself and each parent: `a.b.c`, `b.c`, `c`.
fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |s| s.split_once('.').map(|(_, rest)| rest))
}

impl InboundIndex {
    /// Builds the index of `connectors`.
    pub fn build(connectors: &[InboundConnector]) -> Self {
        let mut ix = Self::default();
        for (i, c) in connectors.iter().enumerate().filter(|(_, c)| c.enabled) {
            let i = i as u32;
            ix.onprem |= c.connector_type == ConnectorType::OnPremises;
            for net in &c.sender_ip_addresses {
                // Prefixes shorter than /24 are refused by `validate`; the loop is kept general.
                let first = u32::from(net.network()) >> 8;
                let last = u32::from(net.broadcast()) >> 8;
                for block in first..=last {
                    let v = ix.by_block.entry(block).or_default();
                    if v.last() != Some(&i) {
                        v.push(i);
                    }
                }
            }
            match &c.tls_sender_certificate_name {
                None => {}
                Some(DomainPattern::Any) => ix.cert_any.push(i),
                Some(DomainPattern::Subtree(d)) => push(&mut ix.cert_subtree, d.as_str(), i),
                Some(DomainPattern::Exact(d)) => {
                    push(&mut ix.cert_exact, d.as_str(), i);
                    if let Some((_, parent)) = d.as_str().split_once('.') {
                        push(&mut ix.cert_exact_by_parent, parent, i);
                    }
                }
            }
            if c.connector_type == ConnectorType::Partner {
                for p in &c.sender_domains {
                    match p {
                        DomainPattern::Any => {
                            if ix.sender_any.last() != Some(&i) {
                                ix.sender_any.push(i);
                            }
                        }
                        DomainPattern::Subtree(d) => push(&mut ix.sender_subtree, d.as_str(), i),
                        DomainPattern::Exact(d) => push(&mut ix.sender_exact, d.as_str(), i),
                    }
                }
            }
        }
        ix
    }

    /// Whether the tenant has an enabled OnPremises connector.
    pub fn has_onprem(&self) -> bool {
        self.onprem
    }

    /// Sorted, deduplicated positions of the enabled connectors that could concern a connection
    /// from `ip` presenting `cert` with MAIL FROM domain `sender`: a range contains `ip`, the
    /// certificate name pattern matches a name of `cert`, or (Partner) `SenderDomains` covers
    /// `sender`.
    pub fn candidates(
        &self,
        ip: Option<Ipv4Addr>,
        cert: Option<&ClientCertFacts>,
        sender: Option<&Domain>,
    ) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        if let Some(ip) = ip
            && !self.by_block.is_empty()
            && let Some(v) = self.by_block.get(&(u32::from(ip) >> 8))
        {
            out.extend_from_slice(v);
        }
        if let Some(cert) = cert
            && !(self.cert_exact.is_empty() && self.cert_subtree.is_empty() && self.cert_any.is_empty())
        {
            out.extend_from_slice(&self.cert_any);
            for name in cert.names() {
                let name = name.trim();
                let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
                if let Some(base) = name.strip_prefix("*.") {
                    for map in [&self.cert_subtree, &self.cert_exact_by_parent] {
                        if let Some(v) = map.get(base) {
                            out.extend_from_slice(v);
                        }
                    }
                } else {
                    if let Some(v) = self.cert_exact.get(&name) {
                        out.extend_from_slice(v);
                    }
                    for s in suffixes(&name) {
                        if let Some(v) = self.cert_subtree.get(s) {
                            out.extend_from_slice(v);
                        }
                    }
                }
            }
        }
        out.extend_from_slice(&self.sender_any);
        if let Some(d) = sender {
            if !self.sender_exact.is_empty()
                && let Some(v) = self.sender_exact.get(d.as_str())
            {
                out.extend_from_slice(v);
            }
            if !self.sender_subtree.is_empty() {
                for s in suffixes(d.as_str()) {
                    if let Some(v) = self.sender_subtree.get(s) {
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// exo-behaviour §2.1: SenderIPAddresses takes a single IPv4 address or an IPv4 CIDR /24 to /32;
    /// IPv6 and dash ranges are refused.
    #[test]
    fn sender_ip_table() {
        let ok = |s: &str| Ok::<Ipv4Net, IpRangeError>(s.parse().unwrap());
        let rows: Vec<(&str, Result<Ipv4Net, IpRangeError>)> = vec![
            ("198.51.100.7", ok("198.51.100.7/32")),
            (" 198.51.100.0/24 ", ok("198.51.100.0/24")),
            ("198.51.100.128/25", ok("198.51.100.128/25")),
            ("198.51.100.7/32", ok("198.51.100.7/32")),
            ("198.51.100.0 / 24", ok("198.51.100.0/24")),
            ("", Err(IpRangeError::Empty)),
            ("2001:db8::1", Err(IpRangeError::Ipv6("2001:db8::1".into()))),
            ("2001:db8::/48", Err(IpRangeError::Ipv6("2001:db8::/48".into()))),
            ("::ffff:198.51.100.7", Err(IpRangeError::Ipv6("::ffff:198.51.100.7".into()))),
            ("198.51.100.1-198.51.100.20", Err(IpRangeError::DashRange("198.51.100.1-198.51.100.20".into()))),
            ("198.51.100.0/255.255.255.0", Err(IpRangeError::DottedMask("198.51.100.0/255.255.255.0".into()))),
            ("10.0.0.0/8", Err(IpRangeError::PrefixTooShort("10.0.0.0/8".parse().unwrap()))),
            ("198.51.100.0/23", Err(IpRangeError::PrefixTooShort("198.51.100.0/23".parse().unwrap()))),
            ("0.0.0.0/0", Err(IpRangeError::PrefixTooShort("0.0.0.0/0".parse().unwrap()))),
            ("198.51.100.0/33", Err(IpRangeError::BadPrefix("198.51.100.0/33".into()))),
            ("198.51.100.0/", Err(IpRangeError::BadPrefix("198.51.100.0/".into()))),
            ("198.51.100.0/+24", Err(IpRangeError::BadPrefix("198.51.100.0/+24".into()))),
            ("198.51.100.0/024", Err(IpRangeError::BadPrefix("198.51.100.0/024".into()))),
            (
                "198.51.100.7/24",
                Err(IpRangeError::HostBitsSet {
                    given: "198.51.100.7/24".into(),
                    prefix: 24,
                    network: "198.51.100.0/24".parse().unwrap(),
                }),
            ),
            ("198.51.100", Err(IpRangeError::NotAnAddress("198.51.100".into()))),
            ("198.51.100.256", Err(IpRangeError::NotAnAddress("198.51.100.256".into()))),
            ("010.1.1.1", Err(IpRangeError::NotAnAddress("010.1.1.1".into()))),
            ("gateway.test", Err(IpRangeError::NotAnAddress("gateway.test".into()))),
            ("198.51.100.7\n", ok("198.51.100.7/32")),
        ];
        for (input, expected) in rows {
            assert_eq!(parse_sender_ip(input), expected, "{input:?}");
        }
    }

    #[test]
    fn hints_say_what_to_write() {
        let hint = |s: &str| parse_sender_ip(s).unwrap_err().hint().unwrap_or_default();
        assert_eq!(hint("198.51.100.0-198.51.100.255"), "write the range as CIDR blocks: 198.51.100.0/24");
        assert_eq!(
            hint("198.51.100.0-198.51.101.127"),
            "write the range as CIDR blocks: 198.51.100.0/24, 198.51.101.0/25"
        );
        assert_eq!(hint("198.51.100.0/255.255.255.0"), "write `198.51.100.0/24`");
        assert_eq!(hint("198.51.100.0/23"), "split it into /24 blocks: 198.51.100.0/24, 198.51.101.0/24");
        assert!(hint("10.0.0.0/16").ends_with("(256 blocks)"));
        assert_eq!(hint("198.51.100.7/24"), "did you mean `198.51.100.0/24`?");
    }
}
