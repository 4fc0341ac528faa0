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

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::api::{get, live, post};

/// How long any one browser step (start, page load, a condition on the page) may take.
const BOUND: Duration = Duration::from_secs(30);

/// The Chromium binary: `MAILSIM_CHROMIUM`, else the first of the usual names on `PATH`.
pub(crate) fn chromium_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAILSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Whether a browser test can run; panics when it cannot but `MAILSIM_REQUIRE_CHROMIUM` is set.
pub(crate) fn chromium_usable(test: &str) -> Option<PathBuf> {
    match chromium_binary() {
        Some(p) => Some(p),
        None if std::env::var_os("MAILSIM_REQUIRE_CHROMIUM").is_some() => {
            panic!(
                "{test}: MAILSIM_REQUIRE_CHROMIUM is set but no chromium was found (apt-get install chromium; .ci/run does)"
            )
        }
        None => {
            eprintln!("skipping {test}: no chromium on PATH (apt-get install chromium, or set MAILSIM_CHROMIUM)");
            None
        }
    }
}

/// One headless Chromium with one page, driven over CDP. Killed on drop.
pub(crate) struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Chromium {
    /// Starts Chromium (`--headless --no-sandbox`: tests run as root in CI) and attaches to its
    /// first page.
    pub(crate) fn launch(binary: &Path, width: u32, height: u32) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                &format!("--window-size={width},{height}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        // Chromium writes the port it chose to DevToolsActivePort in the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + BOUND;
        let port: u16 = loop {
            if let Some(port) =
                std::fs::read_to_string(&port_file).ok().and_then(|s| s.lines().next().and_then(|l| l.parse().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        // The page target shows up in the list shortly after the port opens.
        let url = loop {
            let targets = http_get(SocketAddr::from(([127, 0, 0, 1], port)), "/json/list");
            let page = serde_json::from_str::<Value>(&targets).ok().and_then(|t| {
                t.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"].as_str().map(str::to_string)
            });
            if let Some(url) = page {
                break url;
            }
            assert!(Instant::now() < deadline, "chromium listed no page target within {BOUND:?}: {targets}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("the DevTools WebSocket handshake");
        let mut c = Chromium { child, _profile: profile, ws, next_id: 0 };
        c.call("Page.enable", json!({}));
        c.call("Runtime.enable", json!({}));
        c
    }

    /// One CDP command; its `result` (events in between are skipped).
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        tokio::task::block_in_place(|| {
            self.next_id += 1;
            let id = self.next_id;
            let text = json!({ "id": id, "method": method, "params": params }).to_string();
            self.ws.send(Message::text(text)).unwrap();
            loop {
                let msg = self.ws.read().unwrap_or_else(|e| panic!("{method}: reading from chromium: {e}"));
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        })
    }

    /// Evaluates `expr` in the page (promises awaited); its value.
    pub(crate) fn eval(&mut self, expr: &str) -> Value {
        let r =
            self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r:#}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy (checked every 50 ms, at most [`BOUND`]); its value.
    pub(crate) fn wait(&mut self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + BOUND;
        loop {
            let v = self.eval(expr);
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.getElementById('main').innerText");
                panic!("the page never showed {what} within {BOUND:?}; it shows:\n{}", text.as_str().unwrap_or(""));
            }
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(50)));
        }
    }

    /// Navigates and waits for the page to have rendered its view.
    pub(crate) fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait("the page loaded", "document.readyState === 'complete' && document.body.dataset.ready === 'true'");
    }

    /// A left click at the middle of the first element `selector` selects, as a mouse would.
    pub(crate) fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const el = document.querySelector({s}); if (!el) return null; el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            s = json!(selector)
        ));
        let (x, y) =
            (at[0].as_f64().unwrap_or_else(|| panic!("nothing to click at {selector}")), at[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Focuses the element and presses Enter on it, as a keyboard user would.
    pub(crate) fn press_enter(&mut self, selector: &str) {
        let focused = self.eval(&format!(
            "(() => {{ const el = document.querySelector({s}); el.focus(); return document.activeElement === el; }})()",
            s = json!(selector)
        ));
        assert_eq!(focused, true, "{selector} takes focus");
        let key = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13 });
        let mut down = key.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        let mut up = key;
        up["type"] = json!("keyUp");
        self.call("Input.dispatchKeyEvent", down);
        self.call("Input.dispatchKeyEvent", up);
    }

    /// Writes a PNG of the page to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET on a fresh connection; the body (empty when there is none yet). Chromium's DevTools
/// server keeps connections open, so the body is read by its Content-Length.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else { return String::new() };
    s.set_read_timeout(Some(BOUND)).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length
                && raw.len() >= end + 4 + length
            {
                return String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |e| e + 4);
                return String::from_utf8_lossy(&raw[end..]).to_string();
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// Where a test's screenshots go: `target/tmp/web-screenshots/<test>/`.
pub(crate) fn artifacts(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots").join(test);
    std::fs::create_dir_all(&dir).unwrap();
    println!("screenshots of {test} in {}", dir.display());
    dir
}

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

/// A message from the on-premises host; its NDRs, if any, go to alice's mailbox.
fn send(to: &str, subject: &str) -> String {
    format!(
        "[[step]]\nsend = {{ from = \"onprem\", mail_from = \"alice@contoso.test\", rcpt_to = [\"{to}\"], subject = \"{subject}\" }}\nexpect = {{ accepted = true }}\n"
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

    let svg = get(a, "/api/v1/graph.svg").await;
    assert_eq!(svg.status, 200);
    assert!(svg.text().contains("<svg") && svg.text().contains("On-premises relay"), "{}", svg.text());
    let dot = get(a, "/api/v1/graph.dot").await.text();
    assert!(dot.contains("\"host:onprem\" -> \"in:On-premises relay\""), "{dot}");
    assert!(dot.contains("1 Delivered"), "the message's path is drawn: {dot}");
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
    browser.open(&format!("http://{a}/#/trace"));
    browser.wait(
        "carol Failed in the trace",
        "[...document.querySelectorAll('#trace-list tr.row')].some(r => r.innerText.includes('carol@failing.test') && r.querySelector('.status-Failed'))",
    );
    // Its events open in place.
    browser.eval(
        "[...document.querySelectorAll('#trace-list tr.row')].find(r => r.innerText.includes('carol@failing.test')).querySelector('button').setAttribute('id', 'carol-events')",
    );
    browser.press_enter("#carol-events");
    browser.wait(
        "carol's events",
        "document.querySelector('tr.events') && document.querySelector('tr.events').innerText.includes('FAIL')",
    );
    browser.screenshot(&shots.join("06-trace-failed.png"));

    // The NDR to the sender is listed; opened, it shows the failed recipient and its status.
    browser.open(&format!("http://{a}/#/messages"));
    browser.wait(
        "the NDR in the list",
        "[...document.querySelectorAll('#message-list tbody tr')].some(r => r.children[2].textContent === '<>')",
    );
    browser.eval(
        "[...document.querySelectorAll('#message-list tbody tr')].find(r => r.children[2].textContent === '<>').querySelector('a').setAttribute('id', 'the-ndr')",
    );
    browser.click("#the-ndr");
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
