//! HTTP API benchmark (issue 9 "Speed"): time to list the trace and the messages over HTTP with
//! 100,000 messages in the world, for a filtered page of 100 (target: under 50 ms).
//!
//! `cargo bench -p mailsim --bench api` (env: `MESSAGES`, default 100000; `ROUNDS`, 30). The
//! world is a tenant endpoint on loopback whose store and trace are filled the way the pipeline
//! fills them (a delivered copy, a RECEIVE and a DELIVER event per message, 100 mailboxes, 1,000
//! senders); the API is then asked over real HTTP. The first request of each kind builds the
//! API's index and is reported apart ("cold"); the rounds after it report the median and the
//! worst, with 100 new messages delivered between rounds so that each request also catches up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailsim::api::{Api, World};
use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_core::time::Timestamp;
use mailsim_core::trace::TraceEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::env;

fn deliver(endpoint: &RunningEndpoint, n: usize) {
    let ip = "203.0.113.9".parse().unwrap();
    let sender: EmailAddress = format!("sender{}@fabrikam.test", n % 1000).parse().unwrap();
    let rcpt: EmailAddress = format!("user{}@contoso.test", n % 100).parse().unwrap();
    let data = format!(
        "From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: message {n}\r\nMessage-ID: <{n}@fabrikam.test>\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(70)).repeat(12)
    );
    let message = Arc::new(AcceptedMessage {
        internal_id: n as u64 + 1,
        message_id: format!("<{n}@fabrikam.test>"),
        envelope: Envelope { sender: Some(sender), recipients: vec![rcpt.clone()], ..Envelope::default() },
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
        received_at: Timestamp::from_secs(1_800_000_000 + n as i64),
        auth: None,
    });
    let at = message.received_at;
    endpoint.trace().record(TraceEvent::received(&message, &rcpt, "MAILSIM01", at));
    endpoint.trace().record(TraceEvent::delivered_to_mailbox(&message, &rcpt, at));
    let _ = endpoint.store().deliver(rcpt, message);
}

async fn get(addr: SocketAddr, path: &str) -> (Duration, usize, String) {
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{}", &text[..text.len().min(300)]);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (took, raw.len(), body)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let messages = env("MESSAGES", 100_000);
    let rounds = env("ROUNDS", 30);
    let mut tenant = Tenant::builder().with_domain("contoso.test", DomainType::Authoritative);
    for i in 0..100 {
        tenant = tenant.with_mailbox(&format!("user{i}@contoso.test"));
    }
    let options = EndpointOptions::new(tenant.build().unwrap());
    let endpoint = Arc::new(RunningEndpoint::bind("127.0.0.1:0".parse().unwrap(), options).await.unwrap());
    let start = Instant::now();
    for n in 0..messages {
        deliver(&endpoint, n);
    }
    println!("mailsim api bench: {messages} messages in the world (filled in {:.1} s)", start.elapsed().as_secs_f64());
    let api = Api::new(World::Tenant(endpoint.clone()), "bench".into(), None, None);
    let server = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.addr();

    let queries = [
        ("trace, filtered page of 100", "/api/v1/trace?recipient=user7@&status=Delivered&limit=100"),
        ("trace, first page of 100", "/api/v1/trace?limit=100"),
        ("messages, filtered page of 100", "/api/v1/messages?where=user7@contoso.test&limit=100"),
        ("messages, text search page of 100", "/api/v1/messages?q=sender42@&limit=100"),
        ("messages, first page of 100", "/api/v1/messages?limit=100"),
    ];
    let mut next = messages;
    for (name, path) in queries {
        let (cold, _, body) = get(addr, path).await;
        let total: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            for _ in 0..100 {
                deliver(&endpoint, next);
                next += 1;
            }
            let (t, b, _) = get(addr, path).await;
            times.push(t);
            bytes = b;
        }
        times.sort();
        println!(
            "  {name:<36} cold {:>7.1} ms   median {:>6.2} ms   worst {:>6.2} ms   ({} matches, {} bytes)",
            ms(cold),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            total["total"],
            bytes
        );
    }
    server.stop().await;
}
