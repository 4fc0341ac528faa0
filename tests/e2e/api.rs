//! The HTTP API of `mailsim serve` over real sockets: a scenario's world on loopback, the API on
//! 127.0.0.1, requests written by hand on a TCP stream (so a test controls every header: a foreign
//! `Host`, an `Origin`, a body past the limit) and answers read whole. Every endpoint, the problem
//! JSON of bad input, a tenant change that flips the next message's outcome (P1 → P2 lock-down),
//! and `clock/advance` retrying a deferred message and expiring a failing one into an NDR.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailsim::api::{Api, Reload, ReloadError, RunningApi, ScenarioDoc, World};
use mailsim::sim::Simulation;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection; `host` overrides the Host header.
pub(crate) async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the API accepts connections");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        host.map_or_else(|| addr.to_string(), str::to_string),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server that refuses a body early may close before it is all written.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("the API answers in time")
        .ok();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk size");
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = rest[eol + 4 + size..].to_vec();
        }
        rest = body;
    }
    Answer { status, content_type: header("content-type").unwrap_or_default(), body: rest }
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Answer {
    call(addr, "GET", path, None, &[], b"").await
}

pub(crate) async fn post(addr: SocketAddr, path: &str, body: &str) -> Answer {
    call(addr, "POST", path, None, &[], body.as_bytes()).await
}

fn assert_problem(a: &Answer, status: u16, contains: &str) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.content_type, "application/problem+json", "{}", a.text());
    let p = a.json();
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().unwrap().contains(contains), "{p:#}");
}

/// A scenario's world with the API over it.
pub(crate) struct Live {
    pub(crate) api: RunningApi,
    _state: Arc<Api>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn live(scenario: &str) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.toml");
    std::fs::write(&path, scenario).unwrap();
    let loaded = mailsim::scenario::load_file(&path).unwrap();
    let sim = Arc::new(Simulation::start(loaded.world.clone()).await.unwrap());
    let file = path.clone();
    let reload: Reload = Arc::new(move || {
        let s = mailsim::scenario::load_file(&file).map_err(ReloadError::Invalid)?;
        Ok((s.world.tenant, file.display().to_string()))
    });
    let doc = ScenarioDoc { path: path.clone(), text: scenario.to_string() };
    let state = Api::new(World::Scenario(sim), path.display().to_string(), Some(reload), Some(doc));
    let api = state.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Live { api, _state: state, _dir: dir }
}

const WORLD: &str = r#"[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[host]]
name = "gateway"
address = "198.51.100.7"

[[host]]
name = "internet"
address = "203.0.113.99"
"#;

const SEND_INTERNET: &str = r#"[[step]]
send = { from = "internet", mail_from = "spam@bulk.example.test", rcpt_to = ["alice@contoso.test"], subject = "hello over the API" }
"#;

#[tokio::test]
async fn every_view_of_a_live_world() {
    let w = live(WORLD).await;
    let a = w.api.addr();

    assert_eq!(get(a, "/livez").await.json()["status"], "ok");
    let ready = get(a, "/readyz").await;
    assert_eq!((ready.status, ready.json()["mode"].clone()), (200, "scenario".into()));

    let world = get(a, "/api/v1/world").await.json();
    let hosts = world["hosts"].as_array().unwrap();
    let gateway = hosts.iter().find(|h| h["name"] == "gateway").unwrap();
    assert_eq!(gateway["declared"], "198.51.100.7");
    assert_eq!(gateway["role"], "sender");
    assert!(gateway["loopback"].as_str().unwrap().starts_with("127."));
    assert!(hosts.iter().any(|h| h["role"] == "tenant") && hosts.iter().any(|h| h["role"] == "dns"));
    assert!(world["dns"].as_str().unwrap().starts_with("127."), "{world:#}");
    assert!(world["tenant"]["source"].as_str().unwrap().ends_with("world.toml"));
    assert_eq!(world["tenant"]["mailboxes"][0], "alice@contoso.test");
    assert!(world["time"].as_str().unwrap().contains('T'));

    // A step in the scenario syntax, with its result and the trace events it caused.
    let played =
        post(a, "/api/v1/steps", &format!("{SEND_INTERNET}expect = {{ reply = \"250 2.6.0\", accepted = true }}\n"))
            .await;
    assert_eq!(played.status, 200, "{}", played.text());
    let played = played.json();
    assert_eq!(played["passed"], true, "{played:#}");
    assert_eq!(played["steps"][0]["action"], "send");
    assert!(played["steps"][0]["events"].as_array().unwrap().iter().any(|e| e["event"] == "DELIVER"), "{played:#}");

    // Messages.
    let page = get(a, "/api/v1/messages").await.json();
    assert_eq!(page["total"], 1, "{page:#}");
    let m = &page["messages"][0];
    assert_eq!((m["where"].as_str(), m["kind"].as_str()), (Some("alice@contoso.test"), Some("mailbox")));
    assert_eq!(m["subject"], "hello over the API");
    assert_eq!(m["mail_from"], "spam@bulk.example.test");
    assert_eq!(m["client_ip"], "203.0.113.99");
    assert_eq!(get(a, "/api/v1/messages?where=nobody@contoso.test").await.json()["total"], 0);
    assert_eq!(get(a, "/api/v1/messages?q=HELLO%20over&limit=1").await.json()["count"], 1);
    let id = m["id"].as_str().unwrap().to_string();
    let one = get(a, &format!("/api/v1/messages/{id}")).await.json();
    assert!(
        one["headers"].as_array().unwrap().iter().any(|h| h["name"] == "Subject" && h["value"] == "hello over the API"),
        "{one:#}"
    );
    let raw = get(a, &format!("/api/v1/messages/{id}/raw")).await;
    assert_eq!(raw.content_type, "message/rfc822");
    assert!(raw.text().contains("Subject: hello over the API\r\n"));

    // The trace: rows and one message's events.
    let rows = get(a, "/api/v1/trace?recipient=ALICE&status=Delivered").await.json();
    assert_eq!(rows["total"], 1, "{rows:#}");
    let message_id = rows["rows"][0]["message_id"].as_str().unwrap().to_string();
    assert_eq!(get(a, "/api/v1/trace?status=Failed").await.json()["total"], 0);
    let encoded = message_id.replace('<', "%3C").replace('>', "%3E").replace('@', "%40");
    let events = get(a, &format!("/api/v1/trace/{encoded}")).await.json();
    let names: Vec<&str> =
        events["rows"][0]["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["RECEIVE", "DELIVER"], "{events:#}");
    let by_internal = rows["rows"][0]["internal_id"].as_str().unwrap();
    assert_eq!(get(a, &format!("/api/v1/trace/{by_internal}")).await.status, 200);

    // The queue is empty; a retry of everything retries nothing.
    let queue = get(a, "/api/v1/queue").await.json();
    assert_eq!(queue["count"], 0);
    assert_eq!(post(a, "/api/v1/queue/retry", "").await.json()["retried"], 0);

    // The tenant: what it is, re-read from disk.
    assert!(get(a, "/api/v1/tenant").await.json()["source"].as_str().unwrap().ends_with("world.toml"));
    assert_eq!(post(a, "/api/v1/tenant/reload", "").await.json()["applied"], true);

    // DNS faults per name.
    let fault = call(a, "PUT", "/api/v1/dns/partner.test/fault", None, &[], br#"{"fault":"SERVFAIL"}"#).await;
    assert_eq!(fault.status, 200, "{}", fault.text());
    assert_eq!(call(a, "DELETE", "/api/v1/dns/partner.test/fault", None, &[], b"").await.status, 204);
    // ... and per record type (TXT: SPF temperror while MX still answers).
    let fault =
        call(a, "PUT", "/api/v1/dns/partner.test/fault", None, &[], br#"{"fault":"SERVFAIL","type":"txt"}"#).await;
    assert_eq!(fault.json()["type"], "TXT", "{}", fault.text());
    assert_eq!(call(a, "DELETE", "/api/v1/dns/partner.test/fault", None, &[], b"").await.status, 204);

    // Delete, then it is gone.
    assert_eq!(call(a, "DELETE", &format!("/api/v1/messages/{id}"), None, &[], b"").await.status, 204);
    assert_problem(&get(a, &format!("/api/v1/messages/{id}")).await, 404, "no message");
    assert_eq!(get(a, "/api/v1/messages").await.json()["total"], 0);
}

#[tokio::test]
async fn bad_input_gets_problem_json() {
    let w = live(WORLD).await;
    let a = w.api.addr();
    assert_problem(&post(a, "/api/v1/clock/advance", "{\"by\": ").await, 400, "not the JSON expected");
    assert_problem(&post(a, "/api/v1/clock/advance", r#"{"by": "soon"}"#).await, 400, "not a duration");
    assert_problem(&post(a, "/api/v1/clock/advance", r#"{"bye": "1h"}"#).await, 400, "unknown field");
    assert_problem(&get(a, "/api/v1/messages?limit=many").await, 400, "limit");
    let fault = call(a, "PUT", "/api/v1/dns/x.test/fault", None, &[], br#"{"fault":"flaky"}"#).await;
    assert_problem(&fault, 400, "unknown fault");
    let fault = call(a, "PUT", "/api/v1/dns/x.test/fault", None, &[], br#"{"fault":"SERVFAIL","type":"TEXT"}"#).await;
    assert_problem(&fault, 400, "unknown record type");

    // An invalid tenant: the loader's own message, with file:line:col and field.
    let bad = "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[[InboundConnector]]\nName = \"x\"\nSenderIPAddresses = [\"300.1.1.1\"]\n";
    let answer = call(a, "PUT", "/api/v1/tenant", None, &[], bad.as_bytes()).await;
    assert_problem(&answer, 422, "request:6:");
    let p = answer.json();
    assert_eq!(p["error"]["line"], 6);
    assert_eq!(p["error"]["field"], "InboundConnector[1].SenderIPAddresses", "{p:#}");
    let expected = mailsim_core::tenant::load::load(bad, "request").unwrap_err().to_string();
    assert_eq!(p["detail"], expected.as_str());

    // Steps: a host that does not exist, a table that is not a step, TOML that does not parse.
    let answer = post(
        a,
        "/api/v1/steps",
        "[[step]]\nsend = { from = \"gatway\", mail_from = \"a@b.test\", rcpt_to = [\"alice@contoso.test\"] }\n",
    )
    .await;
    assert_problem(&answer, 422, "request:2:");
    assert!(answer.json()["detail"].as_str().unwrap().contains("gatway"), "{}", answer.text());
    assert_problem(&post(a, "/api/v1/steps", "[host]\nname = \"x\"\n").await, 422, "only steps can be played");
    assert_problem(&post(a, "/api/v1/steps", "[[step]\n").await, 422, "request:1:");

    // Unknown ids, hosts, routes.
    assert_problem(&get(a, "/api/v1/messages/mbx:0000000000000001:nobody@contoso.test").await, 404, "no message");
    assert_problem(&get(a, "/api/v1/messages/peer:nohost:0:0/raw").await, 404, "no message");
    assert_problem(&get(a, "/api/v1/messages/garbage").await, 404, "no message");
    assert_problem(&get(a, "/api/v1/trace/%3Cnone@x%3E").await, 404, "no message");
    assert_problem(&post(a, "/api/v1/queue/retry", r#"{"message_id":"<none@x>"}"#).await, 404, "no queued message");
    assert_problem(&get(a, "/api/v1/nothing").await, 404, "no such route");
    assert_problem(&call(a, "DELETE", "/api/v1/world", None, &[], b"").await, 405, "method");

    // A body past the limit.
    let huge = vec![b'#'; mailsim::api::BODY_LIMIT + 4096];
    assert_problem(&call(a, "PUT", "/api/v1/tenant", None, &[], &huge).await, 413, "");

    // DNS rebinding: a foreign Host or Origin is refused.
    assert_problem(&call(a, "GET", "/api/v1/world", Some("evil.example:8025"), &[], b"").await, 421, "evil.example");
    let origin = call(a, "GET", "/api/v1/world", None, &[("Origin", "http://evil.example")], b"").await;
    assert_problem(&origin, 403, "evil.example");
    assert_eq!(
        call(a, "GET", "/livez", Some("localhost:8025"), &[("Origin", "http://127.0.0.1:8025")], b"").await.status,
        200
    );

    // Nothing of it changed the world.
    assert_eq!(
        get(a, "/api/v1/world").await.json()["tenant"]["source"].as_str().map(|s| s.ends_with("world.toml")),
        Some(true)
    );
}

#[tokio::test]
async fn a_tenant_change_over_the_api_flips_the_next_message() {
    let w = live(WORLD).await;
    let a = w.api.addr();
    let step = |expect: &str| format!("{SEND_INTERNET}expect = {expect}\n");
    // P1: no connector, internet mail is accepted.
    let p1 = post(a, "/api/v1/steps", &step("{ reply = \"250 2.6.0\", accepted = true }")).await.json();
    assert_eq!(p1["passed"], true, "{p1:#}");
    // P2: the admin locks the tenant down to the gateway's range.
    let p2 = format!(
        "{}\n[[InboundConnector]]\nName = \"From gateway\"\nConnectorType = \"Partner\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\"]\nRestrictDomainsToIPAddresses = true\nRequireTls = false\n",
        WORLD.split("[[host]]").next().unwrap()
    );
    let applied = call(a, "PUT", "/api/v1/tenant", None, &[], p2.as_bytes()).await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(get(a, "/api/v1/world").await.json()["tenant"]["inbound_connectors"][0]["name"], "From gateway");
    let refused = post(
        a,
        "/api/v1/steps",
        &step("{ reply = \"550 5.7.51 TenantInboundAttribution\", accepted = false, connector = \"From gateway\" }"),
    )
    .await
    .json();
    assert_eq!(refused["passed"], true, "{refused:#}");
    let gateway = "[[step]]\nsend = { from = \"gateway\", mail_from = \"a@fabrikam.test\", rcpt_to = [\"alice@contoso.test\"] }\nexpect = { accepted = true, connector = \"From gateway\" }\n";
    assert_eq!(post(a, "/api/v1/steps", gateway).await.json()["passed"], true);
    // Steps edit the tenant as the API left it.
    let edit = "[[step]]\nchange = { inbound_connector = \"From gateway\", set = { Enabled = false } }\n";
    assert_eq!(post(a, "/api/v1/steps", edit).await.json()["passed"], true);
    assert_eq!(post(a, "/api/v1/steps", &step("{ accepted = true }")).await.json()["passed"], true);
    // Re-reading the file goes back to P1 (as SIGHUP would).
    assert_eq!(post(a, "/api/v1/tenant/reload", "").await.status, 200);
    assert_eq!(post(a, "/api/v1/steps", &step("{ accepted = true }")).await.json()["passed"], true);
    // The trace shows both outcomes.
    let rows = get(a, "/api/v1/trace?sender=bulk.example").await.json();
    let statuses: Vec<&str> = rows["rows"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Delivered", "Delivered", "Failed", "Delivered"], "{rows:#}");
}

const RETRY_WORLD: &str = r#"[[AcceptedDomain]]
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
name = "partner"
address = "203.0.113.25"

[host.peer]
host_name = "mx.partner.test"
on_rcpt = { Sequence = [{ Reply = [450, "4.2.0 Try again later"] }, "Accept"] }

[[host]]
name = "failing"
address = "203.0.113.26"

[host.peer]
host_name = "mx.failing.test"
on_rcpt = { Reply = [450, "4.2.0 Still busy"] }

[dns]
records = """
partner.test.     MX 10 mx.partner.test.
mx.partner.test.  A  203.0.113.25
failing.test.     MX 10 mx.failing.test.
mx.failing.test.  A  203.0.113.26
"""
"#;

#[tokio::test]
async fn clock_advance_retries_a_deferred_message_and_expires_a_failing_one() {
    let w = live(RETRY_WORLD).await;
    let a = w.api.addr();
    let send = |to: &str| {
        format!(
            "[[step]]\nsend = {{ from = \"onprem\", mail_from = \"alice@contoso.test\", rcpt_to = [\"{to}\"] }}\nexpect = {{ accepted = true }}\n"
        )
    };
    assert_eq!(post(a, "/api/v1/steps", &send("bob@partner.test")).await.json()["passed"], true);
    assert_eq!(post(a, "/api/v1/steps", &send("carol@failing.test")).await.json()["passed"], true);
    let queue = get(a, "/api/v1/queue").await.json();
    assert_eq!(queue["count"], 2, "{queue:#}");
    let bob = queue["entries"].as_array().unwrap().iter().find(|e| e["recipients"][0] == "bob@partner.test").unwrap();
    assert!(bob["last_error"].as_str().unwrap().contains("450 4.2.0 Try again later"), "{bob:#}");
    assert!(bob["next_attempt"].as_str().unwrap() > queue["time"].as_str().unwrap());
    assert_eq!(get(a, "/api/v1/trace?recipient=bob&status=Pending").await.json()["total"], 1);

    // Six simulated minutes: bob's retry is due and the partner now accepts.
    let advanced = post(a, "/api/v1/clock/advance", r#"{"by": "6m"}"#).await;
    assert_eq!(advanced.status, 200, "{}", advanced.text());
    assert_eq!(get(a, "/api/v1/trace?recipient=bob&status=Delivered").await.json()["total"], 1);
    let at_peer = get(a, "/api/v1/messages?where=partner").await.json();
    assert_eq!(at_peer["total"], 1, "{at_peer:#}");
    assert_eq!(at_peer["messages"][0]["rcpt_to"][0], "bob@partner.test");
    let peer_id = at_peer["messages"][0]["id"].as_str().unwrap();
    assert!(get(a, &format!("/api/v1/messages/{peer_id}/raw")).await.text().contains("Received:"));
    assert_eq!(get(a, "/api/v1/queue").await.json()["count"], 1);

    // Retry now: the failing one is attempted at once, and fails again.
    let retried = post(a, "/api/v1/queue/retry", "{}").await.json();
    assert_eq!(retried["retried"], 1, "{retried:#}");
    assert_eq!(get(a, "/api/v1/queue").await.json()["entries"][0]["attempts"].as_u64().map(|n| n >= 2), Some(true));

    // 25 hours: carol's message expires into an NDR to alice.
    assert_eq!(post(a, "/api/v1/clock/advance", r#"{"by": "25h"}"#).await.status, 200);
    let failed = get(a, "/api/v1/trace?recipient=carol&status=Failed").await.json();
    assert_eq!(failed["total"], 1, "{failed:#}");
    let id =
        failed["rows"][0]["message_id"].as_str().unwrap().replace('<', "%3C").replace('>', "%3E").replace('@', "%40");
    let events = get(a, &format!("/api/v1/trace/{id}")).await.json().to_string();
    assert!(events.contains("4.4.7 QUEUE.Expired"), "{events}");
    assert_eq!(get(a, "/api/v1/queue").await.json()["count"], 0);
    let ndr = get(a, "/api/v1/messages?where=alice@contoso.test").await.json();
    assert_eq!(ndr["total"], 1, "{ndr:#}");
    assert_eq!(ndr["messages"][0]["mail_from"], "");

    // A peer re-scripted live (a change step): the failing host now accepts.
    let rescript =
        "[[step]]\nchange = { host = \"failing\", peer = { host_name = \"mx.failing.test\", on_rcpt = \"Accept\" } }\n";
    assert_eq!(post(a, "/api/v1/steps", rescript).await.json()["passed"], true);
    assert_eq!(post(a, "/api/v1/steps", &send("dave@failing.test")).await.json()["passed"], true);
    assert_eq!(get(a, "/api/v1/messages?where=failing").await.json()["total"], 1);

    // A DNS fault per name: NXDOMAIN for the partner's domain fails the next message at once.
    let nx = call(a, "PUT", "/api/v1/dns/partner.test/fault", None, &[], br#"{"fault":"NXDOMAIN"}"#).await;
    assert_eq!(nx.status, 200, "{}", nx.text());
    assert_eq!(post(a, "/api/v1/steps", &send("erin@partner.test")).await.json()["passed"], true);
    let erin = get(a, "/api/v1/trace?recipient=erin@partner.test").await.json();
    assert_eq!(erin["rows"][0]["status"], "Failed", "{erin:#}");
    assert_eq!(get(a, "/api/v1/messages?where=partner").await.json()["total"], 1);
}

#[tokio::test]
async fn the_tenant_endpoint_alone_has_the_api_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenant.toml");
    std::fs::write(
        &file,
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[Directory]\nMailboxes = [\"alice@contoso.test\"]\n",
    )
    .unwrap();
    let tenant = mailsim_core::tenant::load::load(&std::fs::read_to_string(&file).unwrap(), "t").unwrap();
    let endpoint = Arc::new(
        mailsim::endpoint::RunningEndpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            mailsim::endpoint::EndpointOptions::new(tenant),
        )
        .await
        .unwrap(),
    );
    let path = file.clone();
    let reload: Reload = Arc::new(move || {
        let text = std::fs::read_to_string(&path).map_err(|e| ReloadError::Other(e.to_string()))?;
        let t = mailsim_core::tenant::load::load(&text, &path.display().to_string()).map_err(ReloadError::Invalid)?;
        Ok((t, path.display().to_string()))
    });
    let args = mailsim::cli::serve_http::HttpArgs { http: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let live =
        mailsim::cli::serve_http::start_tenant(&args, endpoint.clone(), file.display().to_string(), Some(reload))
            .await
            .unwrap();
    let a = live.addr().unwrap();
    assert_eq!(get(a, "/readyz").await.json()["mode"], "tenant");
    let world = get(a, "/api/v1/world").await.json();
    assert_eq!(world["tenant_endpoint"], endpoint.addr().to_string());
    assert_eq!(world["hosts"].as_array().unwrap().len(), 1);

    // Mail from a real client shows in the API.
    let (mut c, _) = mailsim_testkit::sender::ScriptedSender::connect(crate::common::fresh_loopback(), endpoint.addr())
        .await
        .unwrap();
    c.command("EHLO client.test").await.unwrap();
    assert_eq!(
        c.transaction("a@fabrikam.test", &["alice@contoso.test"], "Subject: live\r\n\r\nhi\r\n").await.unwrap().code,
        250
    );
    let _ = c.command("QUIT").await;
    assert!(endpoint.settled().await);
    assert_eq!(get(a, "/api/v1/messages?subject=live").await.json()["total"], 1);

    // Steps and DNS need a scenario world.
    assert_problem(&post(a, "/api/v1/steps", SEND_INTERNET).await, 409, "scenario");
    assert_problem(
        &call(a, "PUT", "/api/v1/dns/x.test/fault", None, &[], br#"{"fault":"SERVFAIL"}"#).await,
        409,
        "no hosts",
    );

    // The file is edited on disk, then re-read (as SIGHUP does); a broken file is refused whole.
    std::fs::write(&file, "[[AcceptedDomain]]\nDomainName = \"fabrikam.test\"\n").unwrap();
    assert_eq!(post(a, "/api/v1/tenant/reload", "").await.status, 200);
    assert_eq!(get(a, "/api/v1/world").await.json()["tenant"]["accepted_domains"][0]["name"], "fabrikam.test");
    std::fs::write(&file, "[[AcceptedDomain]]\nDomainNme = \"x.test\"\n").unwrap();
    let refused = post(a, "/api/v1/tenant/reload", "").await;
    assert_problem(&refused, 422, "tenant.toml:2:1: AcceptedDomain[1].DomainNme");
    assert_eq!(get(a, "/api/v1/world").await.json()["tenant"]["accepted_domains"][0]["name"], "fabrikam.test");
    live.stop().await;
}

#[tokio::test]
async fn serve_play_plays_the_files_steps_and_keeps_the_world() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("played.toml");
    std::fs::write(&path, format!("{WORLD}\n{SEND_INTERNET}")).unwrap();
    let loaded = mailsim::scenario::load_file(&path).unwrap();
    let sim = Arc::new(Simulation::start(loaded.world.clone()).await.unwrap());
    let args = mailsim::cli::serve_http::HttpArgs { http: "127.0.0.1:0".parse().unwrap(), no_http: false, play: true };
    let live = mailsim::cli::serve_http::start_scenario(&args, Path::new(&path), sim.clone()).await.unwrap();
    let a = live.addr().unwrap();
    assert_eq!(get(a, "/api/v1/messages").await.json()["total"], 1);
    // The world keeps running: more steps play after the file's own.
    let more = post(a, "/api/v1/steps", SEND_INTERNET).await.json();
    assert_eq!(more["steps"][0]["step"], "step[2]", "{more:#}");
    assert_eq!(get(a, "/api/v1/messages").await.json()["total"], 2);
    live.stop().await;
}
