//! Web page benchmark (issue 10 "Speed"): the page of a world with 10,000 messages loads and
//! becomes usable in headless Chromium in under one second.
//!
//! `cargo bench -p mailsim-e2e --bench web_page` (env: `MESSAGES`, default 10000; `ROUNDS`, 10;
//! `MAILSIM_CHROMIUM` for the browser); `--profile dev` measures a debug build of the server
//! without building the workspace in release. The world is a tenant endpoint on loopback filled the way
//! the pipeline fills it (a delivered copy, a RECEIVE and a DELIVER event per message, 100
//! mailboxes, 1,000 senders; the store holds its newest 2,000 copies and the trace its newest
//! 10,000 events, as a live world does), served by the HTTP API. Each round navigates a fresh
//! document to a view and waits until it is usable: its rows rendered and its controls live. The
//! figure is the page's own `performance.now()` at that moment (`window.mailsimReadyMs`: from
//! the start of navigation, network, parsing, script, API page and render included), and the wall
//! time seen from the driver. The first load of each view (the API builds its index then) is
//! reported apart as "cold".

#[path = "../e2e/cdp.rs"]
mod cdp;

use std::sync::Arc;
use std::time::Instant;

use mailsim::api::{Api, World};
use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope};
use mailsim_core::peer::PeerFacts;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_core::time::Timestamp;
use mailsim_core::trace::TraceEvent;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn deliver(endpoint: &RunningEndpoint, n: usize) {
    let ip = "203.0.113.9".parse().unwrap();
    let sender: EmailAddress = format!("sender{}@fabrikam.test", n % 1000).parse().unwrap();
    let rcpt: EmailAddress = format!("user{}@contoso.test", n % 100).parse().unwrap();
    let data = format!(
        "Received: from mx.fabrikam.test ([203.0.113.9]) by MAILSIM01.mail.protection.mailsim.test with ESMTPS; Mon, 7 Dec 2026 09:00:00 +0000\r\nFrom: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: message {n}\r\nMessage-ID: <{n}@fabrikam.test>\r\n\r\n{}",
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test` runs benches once with --bench absent; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(binary) = cdp::chromium_usable("web_page bench") else { return };
    let messages = env("MESSAGES", 10_000);
    let rounds = env("ROUNDS", 10);
    let mut tenant = Tenant::builder().with_domain("contoso.test", DomainType::Authoritative);
    for i in 0..100 {
        tenant = tenant.with_mailbox(&format!("user{i}@contoso.test"));
    }
    let endpoint = Arc::new(
        RunningEndpoint::bind("127.0.0.1:0".parse().unwrap(), EndpointOptions::new(tenant.build().unwrap()))
            .await
            .unwrap(),
    );
    for n in 0..messages {
        deliver(&endpoint, n);
    }
    let api = Api::new(World::Tenant(endpoint.clone()), "bench".into(), None, None);
    let server = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.addr();
    println!(
        "mailsim web page bench: {messages} messages delivered (held: {} copies, {} trace events); API on http://{addr}/; chromium {}",
        endpoint.store().stats().held,
        endpoint.trace().with_events(|_, e| e.len()),
        binary.display()
    );
    let mut browser = cdp::Chromium::launch(&binary, 1280, 900);
    let views = [
        (
            "messages list (page of 50)",
            "#/messages",
            "document.querySelectorAll('#message-list tbody tr').length >= 50",
        ),
        ("trace (page of 50)", "#/trace", "document.querySelectorAll('#trace-list tbody tr.row').length >= 50"),
        ("one message (hops, headers, raw)", "#/message/", "document.querySelectorAll('tr.hop').length >= 1"),
        ("world", "#/world", "document.querySelector('.graph img') !== null"),
    ];
    let mut round = 0;
    for (name, hash, usable) in views {
        let hash = if hash == "#/message/" {
            let id = browser.eval("fetch('/api/v1/messages?limit=1').then(r => r.json()).then(p => p.messages[0].id)");
            format!("#/message/{}", urlencode(id.as_str().unwrap()))
        } else {
            hash.to_string()
        };
        let mut page_ms = Vec::new();
        let mut wall_ms = Vec::new();
        for _ in 0..=rounds {
            round += 1;
            let started = Instant::now();
            // A new URL each round: a fresh document, not a hash change.
            browser.call("Page.navigate", serde_json::json!({ "url": format!("http://{addr}/?round={round}{hash}") }));
            browser.wait(name, &format!("window.mailsimReadyMs !== undefined && ({usable})"));
            wall_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            page_ms.push(browser.eval("window.mailsimReadyMs").as_f64().unwrap());
        }
        let (cold_page, cold_wall) = (page_ms.remove(0), wall_ms.remove(0));
        page_ms.sort_by(f64::total_cmp);
        wall_ms.sort_by(f64::total_cmp);
        println!(
            "  {name:<34} usable after {:>6.1} ms median, {:>6.1} ms worst (page clock); driver wall {:>6.1} ms median; cold {:>6.1} ms / {:>6.1} ms",
            page_ms[page_ms.len() / 2],
            page_ms[page_ms.len() - 1],
            wall_ms[wall_ms.len() / 2],
            cold_page,
            cold_wall
        );
    }
    drop(browser);
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}
