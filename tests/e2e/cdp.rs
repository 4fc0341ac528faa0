//! A headless Chromium driven over the DevTools protocol (CDP) on a WebSocket, for the web page's
//! browser tests (`web.rs`) and its speed benchmark (`tests/benches/web_page.rs`, which includes
//! this file by path). Hand-written over `tungstenite` rather than a CDP crate: the tests need
//! six commands (navigate, evaluate, mouse, key, screenshot, enable), and the CDP crates bring a
//! large async stack to build on a shared 2-core machine.
//!
//! Calls block (inside `tokio::task::block_in_place`, so a multi-threaded runtime keeps serving the
//! world the page talks to); every wait is bounded by [`BOUND`].

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long any one browser step (start, page load, a condition on the page) may take.
pub const BOUND: Duration = Duration::from_secs(30);

/// The Chromium binary: `MAILSIM_CHROMIUM`, else the first of the usual names on `PATH`.
pub fn chromium_binary() -> Option<PathBuf> {
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
pub fn chromium_usable(test: &str) -> Option<PathBuf> {
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

/// One headless Chromium with one page, driven over CDP. Stopped on drop.
pub struct Chromium {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    // Dropped in this order: the browser stops before its profile directory is removed.
    _process: Process,
    _profile: tempfile::TempDir,
}

/// The browser process, stopped on drop, also when a test panics while starting it: SIGTERM so
/// that Chromium takes its helper processes (zygote, GPU, network) down with it, then SIGKILL if
/// it has not exited within 5 s.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Chromium {
    /// Starts Chromium (`--headless --no-sandbox`: tests run as root in CI) and attaches to its
    /// first page.
    pub fn launch(binary: &Path, width: u32, height: u32) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let process = Process(
            Command::new(binary)
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
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display())),
        );
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
        stream.set_read_timeout(Some(BOUND * 2)).unwrap();
        let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("the DevTools WebSocket handshake");
        let mut c = Chromium { ws, next_id: 0, _process: process, _profile: profile };
        c.call("Page.enable", json!({}));
        c.call("Runtime.enable", json!({}));
        c
    }

    /// One CDP command; its `result` (events in between are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expr: &str) -> Value {
        let r =
            self.call("Runtime.evaluate", json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }));
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r:#}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy (checked in the page every 20 ms, at most [`BOUND`]); its
    /// value. One evaluation that the page resolves itself, not a command per check.
    pub fn wait(&mut self, what: &str, expr: &str) -> Value {
        let waiting = format!(
            "new Promise(done => {{ const until = Date.now() + {ms}; const check = () => {{ let v = null; try {{ v = ({expr}); }} catch (e) {{}} if (v) done(v); else if (Date.now() > until) done(null); else setTimeout(check, 20); }}; check(); }})",
            ms = BOUND.as_millis()
        );
        let v = self.eval(&waiting);
        if v.is_null() {
            let text = self.eval("document.getElementById('main').innerText");
            let loads = self.eval(
                "performance.getEntriesByType('resource').map(e => `${e.name} ${Math.round(e.duration)} ms`).join('\\n')",
            );
            panic!(
                "the page never showed {what} within {BOUND:?}; it shows:\n{}\nits requests:\n{}",
                text.as_str().unwrap_or(""),
                loads.as_str().unwrap_or("")
            );
        }
        v
    }

    /// Navigates and waits for the page to have rendered its view.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait("the page loaded", "document.readyState === 'complete' && document.body.dataset.ready === 'true'");
    }

    /// Clicks the element `element` (a JavaScript expression) gives, waiting until it gives one:
    /// found and measured in one step, so that a live re-render cannot take it away in between.
    pub fn click_found(&mut self, what: &str, element: &str) {
        let at = self.wait(what, &center_of(element));
        self.click_at(at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    }

    /// A left click at the middle of the first element `selector` selects, as a mouse would.
    pub fn click(&mut self, selector: &str) {
        let at = self.eval(&center_of(&format!("document.querySelector({})", json!(selector))));
        let (x, y) =
            (at[0].as_f64().unwrap_or_else(|| panic!("nothing to click at {selector}")), at[1].as_f64().unwrap());
        self.click_at(x, y);
    }

    fn click_at(&mut self, x: f64, y: f64) {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Focuses the element and presses Enter on it, as a keyboard user would.
    pub fn press_enter(&mut self, selector: &str) {
        let focused = self.eval(&format!(
            "(() => {{ const el = document.querySelector({s}); el.focus(); return document.activeElement === el; }})()",
            s = json!(selector)
        ));
        assert_eq!(focused, true, "{selector} takes focus");
        self.enter();
    }

    /// Presses Enter on whatever has focus.
    pub fn enter(&mut self) {
        let key = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13 });
        let mut down = key.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        let mut up = key;
        up["type"] = json!("keyUp");
        self.call("Input.dispatchKeyEvent", down);
        self.call("Input.dispatchKeyEvent", up);
    }

    /// Presses Tab; returns what has focus then (`tag#id` or `tag:text`).
    pub fn tab(&mut self) -> String {
        let key = json!({ "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9, "nativeVirtualKeyCode": 9 });
        for kind in ["keyDown", "keyUp"] {
            let mut k = key.clone();
            k["type"] = json!(kind);
            self.call("Input.dispatchKeyEvent", k);
        }
        self.eval(
            "(() => { const e = document.activeElement; const t = e.tagName.toLowerCase(); return e.id ? `${t}#${e.id}` : e.name ? `${t}[${e.name}]` : `${t}:${e.textContent.trim()}`; })()",
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Writes a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png", "captureBeyondViewport": true }));
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        println!("screenshot: {}", path.display());
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
pub fn artifacts(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots").join(test);
    std::fs::create_dir_all(&dir).unwrap();
    println!("screenshots of {test} in {}", dir.display());
    dir
}

/// JavaScript giving the middle of the element `element` gives, scrolled into view, as `[x, y]`;
/// `null` when there is none.
fn center_of(element: &str) -> String {
    format!(
        "(() => {{ const el = {element}; if (!el) return null; el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    )
}
