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
#[path = "../../crates/mailsim/benches/support/stored.rs"]
mod stored;
#[path = "../../crates/mailsim/benches/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use mailsim::api::{Api, World};
use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::tenant::{DomainType, Tenant};
use support::env;

/// The header line each sample message starts with (the message view shows its hop).
const RECEIVED: &str = "Received: from mx.fabrikam.test ([203.0.113.9]) by MAILSIM01.mail.protection.mailsim.test with ESMTPS; Mon, 7 Dec 2026 09:00:00 +0000\r\n";

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
        stored::deliver(&endpoint, n, RECEIVED);
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
