//! MX and address lookups against the simulated world's DNS server, returned as core types.
//!
//! The resolver talks to one nameserver only: no system configuration, no hosts file, no cache
//! (scripted DNS changes between steps, and a change must be visible at the next lookup). It
//! reports answers and failures as data ([`MxAnswer`], [`AddressAnswer`]); what a null MX, an
//! NXDOMAIN or a SERVFAIL means for delivery is decided in `mailsim-core`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use mailsim_core::dns::{AddressAnswer, DnsError, MxAnswer, MxRecord};

/// The resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver setup: {0}")]
pub struct ResolverSetupError(String);

/// A stub resolver pointed only at one nameserver (UDP, with TCP for truncated answers).
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    nameserver: SocketAddr,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("nameserver", &self.nameserver).finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver asking only `nameserver`, giving up on a query after `timeout` (one attempt).
    pub fn new(nameserver: SocketAddr, timeout: Duration) -> Result<Self, ResolverSetupError> {
        Self::with_attempts(nameserver, timeout, 1)
    }

    /// Like [`Resolver::new`], with `attempts` tries per query (at least 1).
    pub fn with_attempts(
        nameserver: SocketAddr,
        timeout: Duration,
        attempts: usize,
    ) -> Result<Self, ResolverSetupError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = nameserver.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = nameserver.port();
        let ns = NameServerConfig::new(nameserver.ip(), true, vec![udp, tcp]);
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);

        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.timeout = timeout;
        opts.attempts = attempts.max(1);
        opts.ndots = 0;

        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self { inner, nameserver })
    }

    /// The hickory resolver itself (for mail-auth, which resolves through it: world DNS only).
    pub fn hickory(&self) -> &TokioResolver {
        &self.inner
    }

    /// The nameserver this resolver asks.
    pub fn nameserver(&self) -> SocketAddr {
        self.nameserver
    }

    /// The MX records of `domain`, by preference (then exchange name, for determinism).
    /// A null MX (`MX 0 .`) comes back as one record with exchange `""`.
    pub async fn mx(&self, domain: &str) -> MxAnswer {
        let lookup = self.inner.lookup(fqdn(domain)?, RecordType::MX).await.map_err(map_error)?;
        let mut records: Vec<MxRecord> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some(MxRecord { preference: mx.preference, exchange: host_name(&mx.exchange) }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return Err(DnsError::NoData);
        }
        records.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
        Ok(records)
    }

    /// The IPv4 addresses (A records) of `name`, in the order served.
    pub async fn ipv4(&self, name: &str) -> AddressAnswer {
        self.addresses(name, RecordType::A).await
    }

    /// The IPv6 addresses (AAAA records) of `name`, in the order served.
    pub async fn ipv6(&self, name: &str) -> AddressAnswer {
        self.addresses(name, RecordType::AAAA).await
    }

    async fn addresses(&self, name: &str, rtype: RecordType) -> AddressAnswer {
        let lookup = self.inner.lookup(fqdn(name)?, rtype).await.map_err(map_error)?;
        let addrs: Vec<IpAddr> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) if rtype == RecordType::A => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) if rtype == RecordType::AAAA => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect();
        if addrs.is_empty() {
            return Err(DnsError::NoData);
        }
        Ok(addrs)
    }
}

/// `name` as an absolute DNS name, so no search list or ndots rule applies.
fn fqdn(name: &str) -> Result<Name, DnsError> {
    let mut n = Name::from_ascii(name.trim_end_matches('.'))
        .map_err(|e| DnsError::Other(format!("invalid DNS name {name:?}: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

/// A host name as core expects it: lower-case, no trailing dot; the root is `""`.
fn host_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

/// hickory's failure, as the data core decides on.
fn map_error(e: NetError) -> DnsError {
    // `is_no_records_found` is true for NXDOMAIN too: test `is_nx_domain` first.
    if e.is_nx_domain() {
        return DnsError::NxDomain;
    }
    if e.is_no_records_found() {
        return DnsError::NoData;
    }
    match &e {
        NetError::Timeout => DnsError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => DnsError::Timeout,
        NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::ServFail)) => DnsError::ServFail,
        _ => DnsError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailsim_testkit::dns::{DnsZoneSet, Fault, ScriptedDns};
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_millis(300);

    fn mx(preference: u16, exchange: &str) -> MxRecord {
        MxRecord { preference, exchange: exchange.to_string() }
    }

    fn world() -> DnsZoneSet {
        DnsZoneSet::new()
            .mx("contoso.test", 20, "mx2.contoso.test")
            .mx("contoso.test", 5, "mx0.contoso.test")
            .mx("contoso.test", 10, "MX1.contoso.test")
            .a("mx1.contoso.test", Ipv4Addr::new(203, 0, 113, 25))
            .a("mx1.contoso.test", Ipv4Addr::new(203, 0, 113, 26))
            .aaaa("mx1.contoso.test", "2001:db8::25".parse().unwrap())
            .a("www.contoso.test", Ipv4Addr::new(203, 0, 113, 80))
            .null_mx("nomail.test")
    }

    /// A server on its own 127/8 address, and a resolver pointed at it.
    async fn setup(last_octet: u8) -> (ScriptedDns, Resolver) {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 61, last_octet));
        let dns = ScriptedDns::start(ip, world()).await.unwrap();
        let resolver = Resolver::new(dns.addr(), TIMEOUT).unwrap();
        (dns, resolver)
    }

    #[tokio::test]
    async fn dns_mx_sorted_by_preference() {
        let (dns, r) = setup(1).await;
        assert_eq!(
            r.mx("contoso.test").await,
            Ok(vec![mx(5, "mx0.contoso.test"), mx(10, "mx1.contoso.test"), mx(20, "mx2.contoso.test")])
        );
        assert_eq!(r.mx("CONTOSO.TEST.").await.map(|v| v.len()), Ok(3));
        assert!(dns.queries_for("contoso.test") >= 2);
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_address_records() {
        let (dns, r) = setup(2).await;
        let mut v4 = r.ipv4("mx1.contoso.test").await.unwrap();
        v4.sort();
        assert_eq!(v4, vec![IpAddr::from([203, 0, 113, 25]), IpAddr::from([203, 0, 113, 26])]);
        assert_eq!(r.ipv6("mx1.contoso.test").await, Ok(vec!["2001:db8::25".parse::<IpAddr>().unwrap()]));
        assert_eq!(r.ipv6("www.contoso.test").await, Err(DnsError::NoData));
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_null_mx() {
        let (dns, r) = setup(3).await;
        assert_eq!(r.mx("nomail.test").await, Ok(vec![mx(0, "")]));
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_nxdomain_and_nodata() {
        let (dns, r) = setup(4).await;
        assert_eq!(r.mx("nosuch.contoso.test").await, Err(DnsError::NxDomain));
        assert_eq!(r.ipv4("nosuch.contoso.test").await, Err(DnsError::NxDomain));
        // The name exists (it has an A record) but has no MX.
        assert_eq!(r.mx("www.contoso.test").await, Err(DnsError::NoData));
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_injected_faults() {
        let (dns, r) = setup(5).await;
        dns.set_fault("contoso.test", Fault::ServFail);
        assert_eq!(r.mx("contoso.test").await, Err(DnsError::ServFail));
        dns.set_fault("contoso.test", Fault::NxDomain);
        assert_eq!(r.mx("contoso.test").await, Err(DnsError::NxDomain));
        dns.set_fault("contoso.test", Fault::Refused);
        assert!(matches!(r.mx("contoso.test").await, Err(DnsError::Other(_))));
        // Faults are per name: the A lookup still answers.
        assert!(r.ipv4("mx1.contoso.test").await.is_ok());
        dns.clear_fault("contoso.test");
        assert!(r.mx("contoso.test").await.is_ok());
        // A zone that is not served is answered REFUSED.
        assert!(matches!(r.mx("fabrikam.test").await, Err(DnsError::Other(_))));
        // (The resolver may ask again over TCP after REFUSED, so the name can appear twice.)
        let unexpected = dns.unexpected();
        assert!(!unexpected.is_empty() && unexpected.iter().all(|n| n == "fabrikam.test"), "{unexpected:?}");
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_silence_times_out() {
        let (dns, r) = setup(6).await;
        dns.set_fault("contoso.test", Fault::Silence);
        let started = Instant::now();
        assert_eq!(r.mx("contoso.test").await, Err(DnsError::Timeout));
        let elapsed = started.elapsed();
        assert!(elapsed >= TIMEOUT, "gave up after {elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
        dns.stop().await;
    }

    #[tokio::test]
    async fn dns_changes_are_seen_at_the_next_lookup() {
        let (dns, r) = setup(7).await;
        assert_eq!(r.mx("contoso.test").await.unwrap()[0], mx(5, "mx0.contoso.test"));
        // An admin points MX at the gateway during a cutover.
        dns.set_mx("contoso.test", vec![(10, "gw.contoso.test")]).unwrap();
        assert_eq!(r.mx("contoso.test").await, Ok(vec![mx(10, "gw.contoso.test")]));
        dns.update(|z| z.set_a("www.contoso.test", &[Ipv4Addr::new(203, 0, 113, 81)])).unwrap();
        assert_eq!(r.ipv4("www.contoso.test").await, Ok(vec![IpAddr::from([203, 0, 113, 81])]));
        // Negative answers are not cached either.
        dns.set_mx("contoso.test", Vec::<(u16, String)>::new()).unwrap();
        assert_eq!(r.mx("contoso.test").await, Err(DnsError::NoData));
        dns.set_mx("contoso.test", vec![(1, "back.contoso.test")]).unwrap();
        assert_eq!(r.mx("contoso.test").await, Ok(vec![mx(1, "back.contoso.test")]));
        dns.stop().await;
    }
}
