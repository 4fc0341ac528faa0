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
use mailsim_core::tenant::{DomainType, Tenant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/stored.rs"]
mod stored;
mod support;

use support::env;

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
        stored::deliver(&endpoint, n, "");
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
                stored::deliver(&endpoint, next, "");
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
