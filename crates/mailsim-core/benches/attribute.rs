//! `attribute` with 100 inbound connectors of 50 ranges each (issue 3 "Speed"): decisions per
//! second, reported by criterion as elements/s (target: above 1 million/s on one core).
//!
//! The tenant: connector 0 is a gateway lock-down (Partner, `SenderDomains *`,
//! RestrictDomainsToIPAddresses, 50 ranges); connectors 1..50 are Partner connectors for one partner
//! domain each; connectors 50..100 are OnPremises connectors; every connector has 50 ranges of /24 to
//! /32. Each workload cycles through 1024 different connections so that no single lookup stays hot.
//!
//! Run: `cargo bench -p mailsim-core --bench attribute -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::Ipv4Net;
use mailsim_core::addr::EmailAddress;
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{attribute, attribute_unindexed};
use mailsim_core::tenant::{ConnectorType, DomainPattern, DomainType, InboundConnector, Tenant};

const CONNECTORS: usize = 100;
const RANGES: usize = 50;

/// A fixed pseudo-random sequence (no rand dependency, same tenant every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 32) as u32
    }
}

fn build() -> (Tenant, Vec<Vec<Ipv4Net>>) {
    let mut rng = Lcg(7);
    let mut tenant =
        Tenant::builder().with_domain("contoso.test", DomainType::Authoritative).with_mailbox("alice@contoso.test");
    let mut all = Vec::new();
    for i in 0..CONNECTORS {
        let kind = if i < CONNECTORS / 2 { ConnectorType::Partner } else { ConnectorType::OnPremises };
        let mut c = InboundConnector::new(&format!("connector {i}"), kind);
        // Ranges in 10.0.0.0/8 and 172.16.0.0/12 style space, prefixes /24 to /32.
        c.sender_ip_addresses = (0..RANGES)
            .map(|_| {
                let ip = Ipv4Addr::from(0x0A00_0000 | (rng.next() & 0x00FF_FFFF));
                Ipv4Net::new(ip, 24 + (rng.next() % 9) as u8).unwrap().trunc()
            })
            .collect();
        match i {
            0 => c.restrict_domains_to_ip_addresses = true,
            i if i < CONNECTORS / 2 => {
                c.sender_domains = vec![DomainPattern::parse(&format!("partner{i}.test")).unwrap()];
                c.require_tls = i % 2 == 0;
            }
            _ => c.cloud_services_mail_enabled = i % 3 == 0,
        }
        all.push(c.sender_ip_addresses.clone());
        tenant = tenant.with_inbound_connector(c);
    }
    (tenant.build().expect("the bench tenant is valid"), all)
}

fn peer(ip: Ipv4Addr) -> PeerFacts {
    PeerFacts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 25, IpAddr::V4(ip))
}

/// An address inside `net`.
fn inside(net: &Ipv4Net, rng: &mut Lcg) -> Ipv4Addr {
    let host = u32::MAX >> net.prefix_len().min(31);
    Ipv4Addr::from(u32::from(net.network()) | (rng.next() & host))
}

fn bench(c: &mut Criterion) {
    let (tenant, ranges) = build();
    let mut rng = Lcg(42);
    let mailbox: Vec<EmailAddress> = vec!["alice@contoso.test".parse().unwrap()];
    let external: Vec<EmailAddress> = vec!["y@example.test".parse().unwrap()];
    let internet_sender: EmailAddress = "x@fabrikam.test".parse().unwrap();
    let own_sender: EmailAddress = "app@contoso.test".parse().unwrap();

    // Internet hosts outside every range (192.0.2.0/24 style space): refused by the lock-down.
    let internet: Vec<PeerFacts> =
        (0..1024).map(|_| peer(Ipv4Addr::from(0xC000_0000 | (rng.next() & 0x00FF_FFFF)))).collect();
    // The gateway's ranges: accepted through connector 0.
    let gateway: Vec<PeerFacts> =
        (0..1024).map(|_| peer(inside(&ranges[0][rng.next() as usize % RANGES], &mut rng))).collect();
    // A partner's own range with its own sender domain (even-numbered partners require TLS and
    // refuse these plaintext connections with 454 4.7.0).
    let partners: Vec<(PeerFacts, EmailAddress)> = (0..1024)
        .map(|_| {
            let i = 1 + rng.next() as usize % (CONNECTORS / 2 - 1);
            let p = peer(inside(&ranges[i][rng.next() as usize % RANGES], &mut rng));
            (p, format!("x@partner{i}.test").parse().unwrap())
        })
        .collect();
    // On-premises servers relaying to the internet.
    let onprem: Vec<PeerFacts> = (0..1024)
        .map(|_| {
            let i = CONNECTORS / 2 + rng.next() as usize % (CONNECTORS / 2);
            peer(inside(&ranges[i][rng.next() as usize % RANGES], &mut rng))
        })
        .collect();

    // Sanity: the workloads decide what their names say.
    assert!(!attribute(&tenant, &internet[0], Some(&internet_sender), &mailbox).is_accepted());
    assert_eq!(attribute(&tenant, &gateway[0], Some(&internet_sender), &mailbox).connector(), Some("connector 0"));
    assert!(attribute(&tenant, &onprem[0], Some(&own_sender), &external).is_accepted());

    let mut g = c.benchmark_group("attribute_100x50");
    g.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    let mut next = move || {
        n = (n + 1) & 1023;
        n
    };
    g.bench_function("internet_refused_by_lockdown", |b| {
        b.iter(|| attribute(&tenant, black_box(&internet[next()]), Some(&internet_sender), &mailbox))
    });
    g.bench_function("gateway_accepted", |b| {
        b.iter(|| attribute(&tenant, black_box(&gateway[next()]), Some(&internet_sender), &mailbox))
    });
    g.bench_function("partner_by_ip", |b| {
        b.iter(|| {
            let (p, s) = &partners[next()];
            attribute(&tenant, black_box(p), Some(s), &mailbox)
        })
    });
    g.bench_function("onprem_relay", |b| {
        b.iter(|| attribute(&tenant, black_box(&onprem[next()]), Some(&own_sender), &external))
    });
    g.bench_function("unindexed_internet_refused", |b| {
        b.iter(|| attribute_unindexed(&tenant, black_box(&internet[next()]), Some(&internet_sender), &mailbox))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
