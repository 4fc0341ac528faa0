//! The web page of `mailsim serve` (issue 10 item 1), tested in a real browser: headless Chromium
//! (Debian's `chromium`, installed by `.ci/install-chromium`) driven over the DevTools protocol
//! (CDP) on a WebSocket. It loads the page of a live world; a message sent over SMTP appears in the
//! list without a reload (server-sent events); opening it shows its hops; pressing "Advance 25 h"
//! with the keyboard turns a deferred recipient into Failed and its NDR is listed with its status.
//! A screenshot of each state is written under `target/tmp/web-screenshots/` (the path is printed).
//!
//! The browser tests skip with a message when no Chromium is found, unless
//! `MAILSIM_REQUIRE_CHROMIUM` is set (as `.ci/run` does), in which case they fail. The page's routes
//! (assets, events, picture) are also checked over plain HTTP, browser or not.

use crate::api::{get, live, post};
use crate::cdp::{BOUND, Chromium, artifacts, chromium_usable};

/// A tenant with an on-premises relay connector; a peer that defers every recipient for ever.
const WORLD: &str = r#"[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false

[[host]]
name = "onprem"
address = "192.0.2.10"

[[host]]
name = "failing"
address = "203.0.113.26"

[host.peer]
host_name = "mx.failing.test"
on_rcpt = { Reply = [450, "4.2.0 Still busy"] }

[dns]
records = """
failing.test.     MX 10 mx.failing.test.
mx.failing.test.  A  203.0.113.26
"""
"#;

/// A message from the on-premises host over STARTTLS; its NDRs, if any, go to alice's mailbox.
fn send(to: &str, subject: &str) -> String {
    format!(
        "[[step]]\nsend = {{ from = \"onprem\", tls = true, mail_from = \"alice@contoso.test\", rcpt_to = [\"{to}\"], subject = \"{subject}\" }}\nexpect = {{ accepted = true }}\n"
    )
}

/// The page's routes over plain HTTP: the page and its assets (embedded, no CDN), the event
/// stream's first event, the picture, and a message's hops and NDR fields.
#[tokio::test]
async fn the_page_its_assets_events_and_picture_are_served() {
    let w = live(WORLD).await;
    let a = w.api.addr();
    let page = get(a, "/").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<script src=\"/app.js\">") && !html.contains("http"), "no CDN: {html}");
    let js = get(a, "/app.js").await;
    assert!(js.text().contains("EventSource('/api/v1/events')"));
    assert_eq!(get(a, "/app.css").await.status, 200);

    // The event stream starts with the world's version.
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0; 4096];
    let mut got = String::new();
    while !got.contains("\n\n") || !got.contains("data:") {
        let n = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "{got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("text/event-stream") && got.contains("event: change") && got.contains("\"trace\":0"), "{got}");

    assert_eq!(post(a, "/api/v1/steps", &send("alice@contoso.test", "over HTTP")).await.json()["passed"], true);
    let list = get(a, "/api/v1/messages").await.json();
    let id = list["messages"][0]["id"].as_str().unwrap().to_string();
    let one = get(a, &format!("/api/v1/messages/{id}")).await.json();
    let hops = one["hops"].as_array().unwrap();
    assert!(!hops.is_empty(), "{one:#}");
    assert_eq!(hops[0]["hop"], 1);
    assert!(one["ndr"].is_null(), "not an NDR: {one:#}");

    // The queue view asks for a page of the queue; `count` stays the whole queue's.
    assert_eq!(post(a, "/api/v1/steps", &send("carol@failing.test", "deferred")).await.json()["passed"], true);
    let page = get(a, "/api/v1/queue?limit=0").await.json();
    assert_eq!((page["count"].as_u64(), page["entries"].as_array().map(Vec::len)), (Some(1), Some(0)), "{page:#}");
    assert_eq!(get(a, "/api/v1/queue").await.json()["entries"].as_array().map(Vec::len), Some(1));

    let svg = get(a, "/api/v1/graph.svg").await;
    assert_eq!(svg.status, 200);
    assert!(svg.text().contains("<svg") && svg.text().contains("On-premises relay"), "{}", svg.text());
    let dot = get(a, "/api/v1/graph.dot").await.text();
    assert!(dot.contains("\"host:onprem\" -> \"in:On-premises relay\""), "{dot}");
    assert!(dot.contains("1 Delivered"), "the message's path is drawn: {dot}");

    // Stopping the server ends the open event stream instead of waiting for it (regression: a
    // page left open made `serve` take the whole shutdown timeout to stop).
    let crate::api::Live { api, .. } = w;
    let started = std::time::Instant::now();
    api.stop().await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "stopped in {:?}", started.elapsed());
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(BOUND, s.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the event stream ended with the server");
}

/// The walk-through of issue 10 in headless Chromium, a screenshot at each state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_message_arrives_shows_its_hops_and_a_deferred_one_fails_into_an_ndr() {
    let test = "in_a_browser";
    let Some(binary) = chromium_usable(test) else { return };
    let w = live(WORLD).await;
    let a = w.api.addr();
    let shots = artifacts(test);
    let mut browser = Chromium::launch(&binary, 1280, 900);

    browser.open(&format!("http://{a}/#/messages"));
    browser.wait("the live badge", "document.getElementById('live').textContent === 'live'");
    browser.wait("an empty list", "document.querySelector('#message-list table') !== null");
    browser.screenshot(&shots.join("01-messages-empty.png"));
    // Keyboard: Tab walks the skip link, the views, then the view's controls, in reading order.
    let order: Vec<String> = (0..8).map(|_| browser.tab()).collect();
    assert_eq!(
        order,
        [
            "a:Skip to content",
            "a:Messages",
            "a:Trace",
            "a:Queue",
            "a:World",
            "input[q]",
            "select[where]",
            "button:Filter"
        ],
        "the focus order"
    );

    // A message over SMTP: it appears without a reload.
    assert_eq!(
        post(a, "/api/v1/steps", &send("alice@contoso.test", "Hello from the browser test")).await.json()["passed"],
        true
    );
    browser.wait(
        "the new message in the list",
        "[...document.querySelectorAll('#message-list a')].some(a => a.textContent === 'Hello from the browser test')",
    );
    browser.screenshot(&shots.join("02-message-arrived.png"));

    // Opened with the mouse: the envelope, the TLS facts and the hops.
    browser.click("#message-list tbody a");
    let hops = browser.wait("the hops table", "document.querySelectorAll('tr.hop').length");
    assert!(hops.as_u64().unwrap() >= 1);
    let text = browser.eval("document.getElementById('main').innerText");
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Hello from the browser test") && text.contains("Envelope") && text.contains("Hops"),
        "{text}"
    );
    assert!(text.contains("MAIL FROM") && text.contains("192.0.2.10"), "{text}");
    assert!(text.contains("TLS1_3") || text.contains("TLS1_2"), "the TLS facts: {text}");
    let hop = browser.eval("document.querySelector('tr.hop').innerText");
    assert!(hop.as_str().unwrap().contains("MAILSIM01"), "the tenant's hop: {hop}");
    browser.screenshot(&shots.join("03-message-hops.png"));

    // A recipient the peer defers: the queue shows it.
    assert_eq!(
        post(a, "/api/v1/steps", &send("carol@failing.test", "Deferred then failed")).await.json()["passed"],
        true
    );
    browser.click("nav a[data-view=queue]");
    browser.wait(
        "carol deferred in the queue",
        "[...document.querySelectorAll('#queue-list td')].some(td => td.textContent === 'carol@failing.test')",
    );
    browser.screenshot(&shots.join("04-queue-deferred.png"));

    // "Advance 25 h" pressed with the keyboard: the queue empties, the trace says Failed.
    browser.press_enter("#advance-25h");
    browser.wait(
        "the advance done and the queue empty",
        "document.getElementById('queue-status').textContent.includes('done') && document.getElementById('queue-list').textContent.startsWith('0 deferred')",
    );
    browser.screenshot(&shots.join("05-queue-after-25h.png"));
    // The trace, filtered as a user would: type a recipient, press Enter.
    browser.open(&format!("http://{a}/#/trace"));
    browser.eval("document.querySelector('form.filters input[name=recipient]').value = 'carol'");
    browser.press_enter("form.filters input[name=recipient]");
    browser.wait("only carol's row", "document.querySelectorAll('#trace-list tr.row').length === 1");
    browser.wait(
        "carol Failed in the trace",
        "[...document.querySelectorAll('#trace-list tr.row')].some(r => r.innerText.includes('carol@failing.test') && r.querySelector('.status-Failed'))",
    );
    // Its events open in place. The row is found and focused in one step, retried: a live update
    // may render the list again in between (the page keeps focus across it).
    browser.wait(
        "carol's events button takes focus",
        "(() => { const r = [...document.querySelectorAll('#trace-list tr.row')].find(r => r.innerText.includes('carol@failing.test')); const b = r && r.querySelector('button'); if (!b) return false; b.focus(); return document.activeElement === b; })()",
    );
    browser.enter();
    browser.wait(
        "carol's events",
        "document.querySelector('tr.events') && document.querySelector('tr.events').innerText.includes('FAIL')",
    );
    browser.screenshot(&shots.join("06-trace-failed.png"));

    // The NDR to the sender is listed; opened, it shows the failed recipient and its status.
    browser.open(&format!("http://{a}/#/messages"));
    browser.click_found(
        "the NDR in the list",
        "[...document.querySelectorAll('#message-list tbody tr')].find(r => r.children[2].textContent === '<>')?.querySelector('a')",
    );
    let ndr = browser
        .wait("the NDR's recipients", "document.querySelector('tr.ndr') && document.querySelector('tr.ndr').innerText");
    let ndr = ndr.as_str().unwrap();
    assert!(ndr.contains("carol@failing.test") && ndr.contains("failed") && ndr.contains("4.4.7"), "{ndr}");
    browser.screenshot(&shots.join("07-ndr.png"));

    // The world view draws the picture.
    browser.open(&format!("http://{a}/#/world"));
    browser.wait("the picture", "document.querySelector('.graph img') && document.querySelector('.graph img').complete && document.querySelector('.graph img').naturalWidth > 0");
    browser.screenshot(&shots.join("08-world.png"));
}
