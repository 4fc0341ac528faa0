//! The rules stage with 50 mail flow rules (issue 12 "Speed"), pure evaluation: messages per
//! second through `stage::rules::evaluate` with the 50-rule tenant of
//! `tests/tenants/bench-50-rules.toml` and with no rules, reported by criterion as elements/s.
//! The message is a 1 KiB internet message to one mailbox; two rules match it (a disclaimer and a
//! header stamp, so its MIME body is rebuilt) and 48 are checked without matching.
//!
//! Run: `cargo bench -p mailsim-core --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::stage::rules::evaluate;
use mailsim_core::tenant::load::load;
use mailsim_core::time::Timestamp;

const TENANT: &str = include_str!("../../../tests/tenants/bench-50-rules.toml");

fn message() -> AcceptedMessage {
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    let body = format!("{}\r\n", "x".repeat(70)).repeat(14);
    let data = format!(
        "X-MS-Exchange-Organization-AuthAs: Anonymous\r\nFrom: Eve <eve@fabrikam.test>\r\nTo: bench@contoso.test\r\nSubject: Quarterly figures\r\nMessage-ID: <bench@fabrikam.test>\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\n\r\n{body}"
    );
    AcceptedMessage {
        internal_id: 1,
        message_id: "<bench@fabrikam.test>".into(),
        envelope: Envelope {
            sender: Some("eve@fabrikam.test".parse().unwrap()),
            recipients: vec!["bench@contoso.test".parse().unwrap()],
            ..Envelope::default()
        },
        peer: PeerFacts::new(ip, 25, ip),
        verdict: InboundVerdict::Accepted {
            connector: None,
            direction: Direction::Incoming,
            internal: false,
            relay_allowed: false,
            cross_premises: false,
            checks: vec![],
        },
        data: data.into_bytes(),
        received_at: Timestamp::from_secs(1_800_000_000),
        auth: None,
    }
}

fn bench(c: &mut Criterion) {
    let with = load(TENANT, "bench-50-rules.toml").expect("the bench tenant loads");
    assert_eq!(with.transport_rules.len(), 50);
    let mut b = with.to_builder();
    b.transport_rules.clear();
    let without = b.build().unwrap();
    let m = message();
    let now = Timestamp::from_secs(1_800_000_000);
    assert_eq!(evaluate(&m, &with, now).hits.len(), 2, "two rules match the bench message");
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(1));
    g.bench_function("no rules", |b| b.iter(|| black_box(evaluate(black_box(&m), &without, now))));
    g.bench_function("50 rules", |b| b.iter(|| black_box(evaluate(black_box(&m), &with, now))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
