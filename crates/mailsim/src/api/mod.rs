//! The HTTP API of `mailsim serve` (issue 9): a live world seen and driven over loopback HTTP, JSON
//! in and out, on axum. Default `127.0.0.1:8025` (Mailpit's convention).
//!
//! Contract: the handlers decide nothing about mail. Each one translates a request into the calls
//! a scenario makes on the same world ([`Simulation`], [`RunningEndpoint`]): a tenant body goes
//! through the tenant loader, steps through the scenario loader and the runner
//! ([`crate::scenario::run::play_on`]), `clock/advance` is a scenario's `advance`. What it adds
//! is views: indexes over the mailboxes, the peers' inboxes and the trace ([`messages`],
//! [`trace`]), so a filtered page stays cheap with 100,000 messages in the world.
//!
//! Errors are RFC 9457 problem details ([`problem`]). The server binds loopback only and refuses a
//! request whose `Host` (421) or `Origin` (403) is not a loopback name or address, so a web page
//! cannot reach it through DNS rebinding ([`host_check`]). Bodies are limited to [`BODY_LIMIT`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /livez`, `GET /readyz` | liveness; readiness (the world is up) |
//! | `GET /api/v1/world` | address plan, tenant endpoint, DNS server, simulated time, tenant source |
//! | `GET /api/v1/messages` | tenant mailboxes and peers' inboxes; `where q sender recipient subject start limit` |
//! | `GET/DELETE /api/v1/messages/{id}`, `GET .../{id}/raw` | one message: summary, headers, `hops` (Received chain), `ndr`; raw source |
//! | `GET /api/v1/quarantine` | messages held in quarantine (mail flow rules, DMARC): recipient, ids, sender, authentication verdict, raw source |
//! | `GET /api/v1/trace`, `GET /api/v1/trace/{message_id}` | trace rows (`sender recipient status message_id start limit`); one message's events |
//! | `GET /api/v1/queue`, `POST /api/v1/queue/retry` | deferred recipients (`limit`); retry now |
//! | `POST /api/v1/clock/advance` | `{"by": "25h"}`: as a scenario's `advance` step |
//! | `GET/PUT /api/v1/tenant`, `POST /api/v1/tenant/reload` | the tenant; replace it (TOML body); re-read it from disk (as SIGHUP) |
//! | `POST /api/v1/steps` | play `[[step]]` tables (scenario syntax); each step's result |
//! | `PUT /api/v1/dns/{name}/fault` with `"type": "TXT"` | the fault for that record type only (SPF `temperror`, MX still answers); DELETE clears every fault of the name |
//! | `PUT/DELETE /api/v1/dns/{name}/fault` | `{"fault": "NXDOMAIN" \| "SERVFAIL" \| "silence" \| "REFUSED"}` |
//! | `GET /`, `/app.js`, `/app.css`; `GET /api/v1/events` | the web page ([`web`]); server-sent `change` events ([`events`]) |
//! | `GET /api/v1/graph.svg`, `GET /api/v1/graph.dot` | the mail-flow picture ([`crate::graph`]) |

pub mod events;
pub mod host_check;
pub mod messages;
pub mod problem;
pub mod trace;
mod validate;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use mailsim_core::diagnostics::ConfigError;
use mailsim_core::stage::route::Hop;
use mailsim_core::tenant::Tenant;
use mailsim_core::trace::TraceEvent;
use mailsim_testkit::dns::Fault;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::endpoint::RunningEndpoint;
use crate::scenario::load::parse_appended_steps;
use crate::scenario::run::{RunOptions, play_on};
use crate::scenario::{Action, Scenario, Step};
use crate::sim::Simulation;
use problem::Problem;

/// Where the API listens unless told otherwise (Mailpit's port).
pub const DEFAULT_HTTP: &str = "127.0.0.1:8025";
/// The largest request body accepted; larger ones get 413.
pub const BODY_LIMIT: usize = 1 << 20;

/// The world the API drives.
pub enum World {
    /// A scenario's world (`serve SCENARIO`): hosts, peers, DNS.
    Scenario(Arc<Simulation>),
    /// The tenant endpoint alone (`serve --tenant`).
    Tenant(Arc<RunningEndpoint>),
}

impl World {
    fn endpoint(&self) -> &RunningEndpoint {
        match self {
            World::Scenario(sim) => sim.endpoint(),
            World::Tenant(e) => e,
        }
    }

    fn sim(&self) -> Result<&Simulation, Problem> {
        match self {
            World::Scenario(sim) => Ok(sim),
            World::Tenant(_) => Err(Problem::conflict(
                "this world is the tenant endpoint alone (serve --tenant): it has no hosts, peers or DNS to drive; serve a scenario for that",
            )),
        }
    }
}

/// Why the tenant could not be re-read.
#[derive(Debug)]
pub enum ReloadError {
    /// The loader refused the file.
    Invalid(ConfigError),
    /// Anything else (an unreadable file, a bad flag), as text.
    Other(String),
}

/// Re-reads the tenant from where it came from; returns it and its source.
pub type Reload = Arc<dyn Fn() -> Result<(Tenant, String), ReloadError> + Send + Sync>;

/// The scenario file a world came from, and the steps played on it since.
pub struct ScenarioDoc {
    /// The file.
    pub path: PathBuf,
    /// Its text followed by the steps played over the API (new steps are checked against it).
    pub text: String,
}

/// The API's state: the world and the views over it.
pub struct Api {
    world: World,
    doc: Mutex<Option<ScenarioDoc>>,
    tenant_source: Mutex<String>,
    reload: Option<Reload>,
    messages: Mutex<messages::MessageIndex>,
    trace: Mutex<trace::TraceIndex>,
    driving: tokio::sync::Mutex<()>,
    run: RunOptions,
    /// Set when the server stops, so that endless responses (the web page's event stream) end
    /// and the graceful shutdown does not wait for them.
    closing: tokio::sync::watch::Sender<bool>,
}

/// One played step's result.
#[derive(Debug, Serialize)]
pub struct StepResult {
    /// `step[N]`, numbered after the steps played before it.
    pub step: String,
    /// `send`, `advance`, `change` or `check`.
    pub action: &'static str,
    /// Whether every expectation held.
    pub passed: bool,
    /// The first expectation that failed, as `mailsim run` reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Value>,
    /// The trace events the step produced.
    pub events: Vec<TraceEvent>,
}

impl Api {
    /// The API over `world`. `tenant_source` names where the tenant came from; `reload` re-reads
    /// it (`POST /api/v1/tenant/reload`, SIGHUP); `doc` is the scenario file, for steps.
    pub fn new(world: World, tenant_source: String, reload: Option<Reload>, doc: Option<ScenarioDoc>) -> Arc<Self> {
        Arc::new(Self {
            world,
            doc: Mutex::new(doc),
            tenant_source: Mutex::new(tenant_source),
            reload,
            messages: Mutex::default(),
            trace: Mutex::default(),
            driving: tokio::sync::Mutex::new(()),
            run: RunOptions::default(),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &RunningEndpoint {
        self.world.endpoint()
    }

    /// Applies a tenant atomically: new sessions use it, open ones keep theirs.
    fn apply_tenant(&self, tenant: Tenant, source: String) {
        self.endpoint().set_tenant(tenant);
        *self.tenant_source.lock().expect("source lock") = source;
    }

    /// Re-reads the tenant from disk (as SIGHUP does) and applies it; returns its source.
    pub fn reload_tenant(&self) -> Result<String, Problem> {
        let reload = self.reload.as_ref().ok_or_else(|| Problem::conflict("this tenant was not read from a file"))?;
        match reload() {
            Ok((tenant, source)) => {
                // The scenario as the file says now: later steps are checked against it.
                if let Some(doc) = self.doc.lock().expect("doc lock").as_mut()
                    && let Ok(text) = std::fs::read_to_string(&doc.path)
                {
                    doc.text = text;
                }
                self.apply_tenant(tenant, source.clone());
                Ok(source)
            }
            Err(ReloadError::Invalid(e)) => Err(Problem::invalid(&e)),
            Err(ReloadError::Other(e)) => Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e)),
        }
    }

    /// Checks `text` as `[[step]]` tables against the scenario and the steps played so far.
    pub fn parse_steps(&self, text: &str) -> Result<Vec<Step>, Problem> {
        let doc = self.doc.lock().expect("doc lock");
        let Some(doc) = doc.as_ref() else {
            return Err(Problem::conflict("steps need a scenario world: serve SCENARIO"));
        };
        let steps = parse_appended_steps(&doc.text, &doc.path, text, "request").map_err(|e| Problem::invalid(&e))?;
        Ok(steps)
    }

    /// Plays steps one after another (the first failure stops them), as `mailsim run` would.
    /// `text`, when given, is appended to the scenario so later steps see what these changed.
    pub async fn play(&self, steps: Vec<Step>, text: Option<&str>) -> Result<Vec<StepResult>, Problem> {
        let sim = self.world.sim()?;
        let _driving =
            self.driving.try_lock().map_err(|_| Problem::conflict("another step or clock advance is running"))?;
        if let Some(text) = text
            && let Some(doc) = self.doc.lock().expect("doc lock").as_mut()
        {
            if !doc.text.is_empty() && !doc.text.ends_with('\n') {
                doc.text.push('\n');
            }
            doc.text.push_str(text);
        }
        let file =
            self.doc.lock().expect("doc lock").as_ref().map(|d| d.path.display().to_string()).unwrap_or_default();
        let mut results = Vec::new();
        for step in steps {
            let before = sim.endpoint().trace().recorded();
            let action = match step.action {
                Action::Send(_) => "send",
                Action::Advance(_) => "advance",
                Action::Change(_) => "change",
                Action::Check => "check",
            };
            let label = step.label();
            let one = Scenario {
                name: "api".to_string(),
                description: None,
                file: file.clone(),
                world: crate::sim::WorldSpec::new(Tenant::default()),
                steps: vec![step],
                warnings: Vec::new(),
            };
            let outcome = play_on(sim, &one, &self.run).await;
            let events = sim.endpoint().trace().with_events(|first, e| {
                e.get(usize::try_from(before.saturating_sub(first)).unwrap_or(usize::MAX)..)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default()
            });
            let failure = outcome.err().map(|f| {
                json!({
                    "location": f.location, "field": f.field, "expected": f.expected, "actual": f.actual,
                    "transcript_title": f.transcript_title, "transcript": f.transcript,
                })
            });
            let passed = failure.is_none();
            results.push(StepResult { step: label, action, passed, failure, events });
            if !passed {
                break;
            }
        }
        Ok(results)
    }

    /// Serves the API on `addr` (loopback only) until [`RunningApi::stop`].
    pub async fn serve(self: &Arc<Self>, addr: SocketAddr) -> anyhow::Result<RunningApi> {
        anyhow::ensure!(addr.ip().is_loopback(), "the HTTP API listens on loopback addresses only, not {}", addr.ip());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the HTTP API on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let app = router(self.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let closing = self.closing.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    closing.send_replace(true);
                })
                .await;
        });
        Ok(RunningApi { addr, stop: Some(stop), task: Some(task) })
    }
}

/// A running API server.
pub struct RunningApi {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningApi {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits (at most 5 s) for requests in progress.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Every route, the host check and the body limit.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/livez", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/api/v1/world", get(world))
        .route("/api/v1/messages", get(list_messages))
        .route("/api/v1/messages/{id}", get(message).delete(delete_message))
        .route("/api/v1/messages/{id}/raw", get(raw_message))
        .route("/api/v1/trace", get(list_trace))
        .route("/api/v1/trace/{message_id}", get(message_trace))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/queue/retry", post(retry))
        .route("/api/v1/clock/advance", post(advance))
        .route("/api/v1/tenant", get(tenant).put(put_tenant))
        .route("/api/v1/tenant/reload", post(reload))
        .route("/api/v1/steps", post(steps))
        .route("/api/v1/dns/{name}/fault", put(set_fault).delete(clear_fault))
        .route("/api/v1/connectors/{name}/validate", post(validate::validate_connector))
        .merge(web::routes())
        .route("/api/v1/quarantine", get(quarantine))
        .fallback(|| async { Problem::not_found("no such route (see `mailsim serve --help`)") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(host_check::refuse_foreign))
        .with_state(api)
}

type ApiResult = Result<Response, Problem>;

/// JSON with `application/json`.
struct Json<T>(T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}

fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(Json(v).into_response())
}

/// The body, or 413 (too large) / 400.
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    b.map_err(|e| Problem::new(e.status(), e.body_text()))
}

/// A JSON body; an empty one is `{}`.
fn json_body<T: serde::de::DeserializeOwned>(b: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let b = body(b)?;
    let b: &[u8] = if b.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &b };
    serde_json::from_slice(b).map_err(|e| Problem::bad_request(format!("the body is not the JSON expected: {e}")))
}

fn text_body(b: Result<Bytes, BytesRejection>) -> Result<String, Problem> {
    String::from_utf8(body(b)?.to_vec()).map_err(|_| Problem::bad_request("the body is not UTF-8 text"))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q).map_err(|e| Problem::bad_request(e.body_text()))
}

async fn readyz(State(api): State<Arc<Api>>) -> ApiResult {
    let mode = match api.world {
        World::Scenario(_) => "scenario",
        World::Tenant(_) => "tenant",
    };
    ok(json!({ "ready": true, "mode": mode }))
}

async fn world(State(api): State<Arc<Api>>) -> ApiResult {
    let endpoint = api.endpoint();
    let tenant = endpoint.tenant();
    let mut hosts = Vec::new();
    let mut dns = Value::Null;
    match &api.world {
        World::Scenario(sim) => {
            for (name, declared, socket) in sim.plan_table() {
                let role = match name.as_str() {
                    "tenant" => "tenant",
                    "dns" => {
                        dns = json!(socket.to_string());
                        "dns"
                    }
                    _ if sim.peer(&name).is_ok() => "peer",
                    _ => "sender",
                };
                hosts.push(json!({
                    "name": name, "declared": declared.to_string(), "loopback": socket.ip().to_string(),
                    "port": socket.port(), "role": role,
                }));
            }
        }
        World::Tenant(e) => hosts.push(json!({
            "name": "tenant", "declared": e.addr().ip().to_string(), "loopback": e.addr().ip().to_string(),
            "port": e.addr().port(), "role": "tenant",
        })),
    }
    let domains: Vec<Value> = tenant
        .accepted_domains
        .iter()
        .map(|d| json!({ "name": d.name.to_string(), "type": format!("{:?}", d.domain_type) }))
        .collect();
    let mut mailboxes: Vec<&String> = tenant.mailboxes.iter().collect();
    mailboxes.sort();
    ok(json!({
        "mode": match api.world { World::Scenario(_) => "scenario", World::Tenant(_) => "tenant" },
        "scenario": api.doc.lock().expect("doc lock").as_ref().map(|d| d.path.display().to_string()),
        "tenant_endpoint": endpoint.addr().to_string(),
        "dns": dns,
        "time": endpoint.pipeline().clock().now().iso8601(),
        "hosts": hosts,
        "tenant": {
            "source": *api.tenant_source.lock().expect("source lock"),
            "server_name": tenant.settings.server_name,
            "accepted_domains": domains,
            "mailboxes": mailboxes,
            "inbound_connectors": tenant.inbound_connectors.iter().map(inbound_json).collect::<Vec<_>>(),
            "outbound_connectors": tenant.outbound_connectors.iter().map(outbound_json).collect::<Vec<_>>(),
        },
    }))
}

/// An inbound connector as the world view shows it: what it matches (exo-behaviour §2).
fn inbound_json(c: &mailsim_core::tenant::InboundConnector) -> Value {
    let strings = |v: &[String]| v.to_vec();
    json!({
        "name": c.name, "enabled": c.enabled, "type": format!("{:?}", c.connector_type),
        "sender_ip_addresses": c.sender_ip_addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "sender_domains": c.sender_domains.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "tls_sender_certificate_name": c.tls_sender_certificate_name.as_ref().map(ToString::to_string),
        "require_tls": c.require_tls,
        "restrict_domains_to_ip_addresses": c.restrict_domains_to_ip_addresses,
        "restrict_domains_to_certificate": c.restrict_domains_to_certificate,
        "client_host_names": strings(&c.client_host_names),
    })
}

/// An outbound connector as the world view shows it: recipient domains and where they go (§3).
fn outbound_json(c: &mailsim_core::tenant::OutboundConnector) -> Value {
    json!({
        "name": c.name, "enabled": c.enabled, "type": format!("{:?}", c.connector_type),
        "recipient_domains": c.recipient_domains.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "all_accepted_domains": c.all_accepted_domains,
        "smart_hosts": c.smart_hosts.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "use_mx_record": c.use_mx_record,
        "tls_settings": format!("{:?}", c.tls_settings),
        "tls_domain": c.tls_domain.as_ref().map(ToString::to_string),
        "is_transport_rule_scoped": c.is_transport_rule_scoped,
        "route_all_messages_via_on_premises": c.route_all_messages_via_on_premises,
    })
}

/// Brings the message index up to date with the mailboxes and every peer.
fn sync_messages(api: &Api) -> std::sync::MutexGuard<'_, messages::MessageIndex> {
    let mut index = api.messages.lock().expect("message index lock");
    let endpoint = api.endpoint();
    endpoint.store().with_delivered(|d| index.sync_mailboxes(d));
    if let World::Scenario(sim) = &api.world {
        let now = endpoint.pipeline().clock().now();
        for (host, peer) in sim.peers() {
            peer.with_inbox(|inbox| index.sync_peer(host, inbox, now));
        }
    }
    index
}

/// Every message of the world, newest first, filtered and paged (see [`messages::Filter`]).
pub fn message_page(api: &Api, filter: &messages::Filter) -> messages::Page {
    sync_messages(api).page(filter)
}

/// Trace rows, newest first, filtered and paged (see [`trace::Filter`]).
pub fn trace_page(api: &Api, filter: &trace::Filter) -> trace::Page {
    let mut index = api.trace.lock().expect("trace index lock");
    api.endpoint().trace().with_events(|first, e| index.sync(first, e));
    index.page(filter)
}

/// The quarantine store (exo-behaviour §13.5, §14.5), newest last.
async fn quarantine(State(api): State<Arc<Api>>) -> ApiResult {
    let held: Vec<Value> = api
        .endpoint()
        .store()
        .quarantined()
        .iter()
        .map(|d| {
            let m = &d.message;
            json!({
                "recipient": d.mailbox.to_string(),
                "internal_id": m.internal_id,
                "message_id": m.message_id,
                "sender": m.envelope.sender.as_ref().map_or("<>".to_string(), |s| s.to_string()),
                "received_at": m.received_at.iso8601(),
                "authentication": m.auth.as_ref().map(|a| a.summary()),
                "raw": String::from_utf8_lossy(&m.data),
            })
        })
        .collect();
    ok(json!({ "count": held.len(), "messages": held }))
}

async fn list_messages(State(api): State<Arc<Api>>, q: Result<Query<messages::Filter>, QueryRejection>) -> ApiResult {
    ok(message_page(&api, &query(q)?))
}

/// The raw bytes of a message, by id.
fn raw_of(api: &Api, id: &str) -> Result<Vec<u8>, Problem> {
    let missing = || Problem::not_found(format!("no message {id:?}"));
    match messages::Id::parse(id).ok_or_else(missing)? {
        messages::Id::Mailbox { internal_id, mailbox } => api
            .endpoint()
            .store()
            .with_delivered(|d| {
                d.iter()
                    .find(|d| d.message.internal_id == internal_id && d.mailbox.key() == mailbox)
                    .map(|d| d.message.data.clone())
            })
            .ok_or_else(missing),
        messages::Id::Peer { host, connection, digest } => {
            let peer = api.world.sim().ok().and_then(|s| s.peer(host).ok()).ok_or_else(missing)?;
            peer.with_inbox(|inbox| messages::peer_position(inbox, connection, digest).map(|at| inbox[at].data.clone()))
                .ok_or_else(missing)
        }
    }
}

async fn message(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult {
    let raw = raw_of(&api, &id)?;
    let summary = sync_messages(&api).get(&id);
    let parsed = mail_parser::MessageParser::default().parse_headers(&raw[..]);
    let headers: Vec<Value> = parsed
        .map(|m| {
            m.headers_raw()
                .map(|(name, value)| json!({ "name": name, "value": value.trim().replace("\r\n", "\n") }))
                .collect()
        })
        .unwrap_or_default();
    let extras = web::message_extras(&raw);
    ok(json!({ "summary": summary.as_deref(), "headers": headers, "hops": extras["hops"], "ndr": extras["ndr"] }))
}

async fn raw_message(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult {
    let raw = raw_of(&api, &id)?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

async fn delete_message(State(api): State<Arc<Api>>, Path(id): Path<String>) -> ApiResult {
    let missing = || Problem::not_found(format!("no message {id:?}"));
    let removed = match messages::Id::parse(&id).ok_or_else(missing)? {
        messages::Id::Mailbox { internal_id, mailbox } => {
            let mailbox = mailbox.parse().map_err(|_| missing())?;
            api.endpoint().store().remove(internal_id, &mailbox)
        }
        messages::Id::Peer { host, connection, digest } => {
            let peer = api.world.sim().ok().and_then(|s| s.peer(host).ok()).ok_or_else(missing)?;
            // Only the first match: the same message twice in one connection stays once.
            let once = std::cell::Cell::new(false);
            peer.remove_messages(|m| {
                m.connection == connection && !once.get() && messages::peer_digest(m) == digest && !once.replace(true)
            }) > 0
        }
    };
    if !removed {
        return Err(missing());
    }
    api.messages.lock().expect("message index lock").forget(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_trace(State(api): State<Arc<Api>>, q: Result<Query<trace::Filter>, QueryRejection>) -> ApiResult {
    ok(trace_page(&api, &query(q)?))
}

async fn message_trace(State(api): State<Arc<Api>>, Path(message_id): Path<String>) -> ApiResult {
    let mut index = api.trace.lock().expect("trace index lock");
    api.endpoint().trace().with_events(|first, e| index.sync(first, e));
    let rows = index.message(&message_id);
    if rows.is_empty() {
        return Err(Problem::not_found(format!("no message {message_id:?} in the trace")));
    }
    let out: Vec<Value> = api.endpoint().trace().with_events(|_, events| {
        rows.iter()
            .map(|(row, at)| {
                let evs: Vec<&TraceEvent> = at.iter().filter_map(|&i| events.get(i as usize)).collect();
                json!({ "row": row, "events": evs })
            })
            .collect()
    });
    ok(json!({ "message_id": message_id, "rows": out }))
}

fn hop_label(hop: &Hop) -> String {
    match hop {
        Hop::Mailbox => "mailbox".to_string(),
        Hop::SmartHost { connector, .. } => format!("smart hosts of connector {connector:?}"),
        Hop::Mx { domain, connector, .. } => match connector {
            Some(c) => format!("MX of {domain} (connector {c:?})"),
            None => format!("MX of {domain}"),
        },
        Hop::Unroutable(kind) => format!("unroutable ({kind:?})"),
    }
}

/// `GET /api/v1/queue` parameters.
#[derive(serde::Deserialize, Default)]
struct QueueQuery {
    /// At most this many entries (all when absent); `count` is always the whole queue's.
    limit: Option<usize>,
}

async fn queue(State(api): State<Arc<Api>>, q: Result<Query<QueueQuery>, QueryRejection>) -> ApiResult {
    let limit = query(q)?.limit.unwrap_or(usize::MAX);
    let queued = api.endpoint().pipeline().queued();
    let entries: Vec<Value> = queued
        .iter()
        .take(limit)
        .map(|e| {
            json!({
                "message_id": e.message.message_id,
                "internal_id": format!("{:016X}", e.message.internal_id),
                "sender": e.message.envelope.sender.as_ref().map(ToString::to_string).unwrap_or_default(),
                "recipients": e.recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "hop": hop_label(&e.hop),
                "attempts": e.attempts,
                "next_attempt": e.retry_at.iso8601(),
                "last_error": e.last_error.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    ok(json!({ "time": api.endpoint().pipeline().clock().now().iso8601(), "count": queued.len(), "entries": entries }))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    /// Only this message (Message-ID or 16-hex internal id); all when absent.
    message_id: Option<String>,
}

async fn retry(State(api): State<Arc<Api>>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: RetryBody = json_body(b)?;
    let _driving = api.driving.try_lock().map_err(|_| Problem::conflict("another step or clock advance is running"))?;
    let wanted = body.message_id.clone();
    let n = api.endpoint().pipeline().retry_now(|e| {
        wanted.as_ref().is_none_or(|w| {
            e.message.message_id == *w
                || e.message.message_id == format!("<{w}>")
                || format!("{:016X}", e.message.internal_id).eq_ignore_ascii_case(w)
        })
    });
    if n == 0 && wanted.is_some() {
        return Err(Problem::not_found(format!("no queued message {:?}", wanted.unwrap_or_default())));
    }
    let settled = api.endpoint().settled().await;
    ok(json!({ "retried": n, "settled": settled, "queued": api.endpoint().pipeline().queued().len() }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    /// `90s`, `5m`, `25h`, `1h30m`, `2d` (the scenario syntax).
    by: String,
}

async fn advance(State(api): State<Arc<Api>>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let body: AdvanceBody = json_body(b)?;
    let by = crate::scenario::load::parse_duration(&body.by).ok_or_else(|| {
        Problem::bad_request(format!("{:?} is not a duration (write 90s, 5m, 25h, 1h30m or 2d)", body.by))
    })?;
    let _driving = api.driving.try_lock().map_err(|_| Problem::conflict("another step or clock advance is running"))?;
    api.endpoint().advance(by).await;
    ok(
        json!({ "time": api.endpoint().pipeline().clock().now().iso8601(), "queued": api.endpoint().pipeline().queued().len() }),
    )
}

async fn tenant(State(api): State<Arc<Api>>) -> ApiResult {
    let source = api.tenant_source.lock().expect("source lock").clone();
    let t = api.endpoint().tenant();
    ok(json!({
        "source": source,
        "accepted_domains": t.accepted_domains.iter().map(|d| d.name.to_string()).collect::<Vec<_>>(),
        "inbound_connectors": t.inbound_connectors.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "outbound_connectors": t.outbound_connectors.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
    }))
}

/// The scenario document with its tenant tables replaced by `tenant` (a tenant file's text), so
/// that later steps name the new tenant's connectors and edit it. Steps played before are dropped
/// from the document: their tenant edits were made to the tenant being replaced.
fn with_tenant(doc: &ScenarioDoc, tenant: &str) -> Result<String, Problem> {
    let mut table: toml::Table =
        toml::from_str(&doc.text).map_err(|e| Problem::conflict(format!("the scenario no longer parses: {e}")))?;
    for key in crate::scenario::load::TENANT_TABLES.iter().chain(["step"].iter()) {
        table.remove(*key);
    }
    if let Some(toml::Value::Table(s)) = table.get_mut("scenario") {
        s.remove("tenant_file");
    }
    let rest =
        toml::to_string(&table).map_err(|e| Problem::conflict(format!("the scenario cannot be rewritten: {e}")))?;
    let text = format!("{tenant}\n{rest}");
    crate::scenario::load::parse(&text, &doc.path).map_err(|e| {
        Problem::conflict(format!("the tenant does not fit the scenario's world (hosts, DNS, steps): {e}"))
    })?;
    Ok(text)
}

async fn put_tenant(State(api): State<Arc<Api>>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let text = text_body(b)?;
    let loaded = mailsim_core::tenant::load::load_with_warnings(&text, "request").map_err(|e| Problem::invalid(&e))?;
    {
        let mut doc = api.doc.lock().expect("doc lock");
        if let Some(d) = doc.as_mut() {
            d.text = with_tenant(d, &text)?;
        }
    }
    api.apply_tenant(loaded.tenant, "request body (PUT /api/v1/tenant)".to_string());
    ok(json!({ "applied": true, "warnings": loaded.warnings.iter().map(ToString::to_string).collect::<Vec<_>>() }))
}

async fn reload(State(api): State<Arc<Api>>) -> ApiResult {
    let source = api.reload_tenant()?;
    ok(json!({ "applied": true, "source": source }))
}

async fn steps(State(api): State<Arc<Api>>, b: Result<Bytes, BytesRejection>) -> ApiResult {
    let text = text_body(b)?;
    api.world.sim()?;
    let steps = api.parse_steps(&text)?;
    let results = api.play(steps, Some(&text)).await?;
    let passed = results.iter().all(|r| r.passed);
    ok(json!({ "passed": passed, "steps": results }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    fault: String,
    /// Only queries of this record type (`TXT`, `MX`, ...) are faulty.
    #[serde(default, rename = "type")]
    record_type: Option<String>,
}

async fn set_fault(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body: FaultBody = json_body(b)?;
    let fault = match body.fault.to_ascii_lowercase().as_str() {
        "nxdomain" => Fault::NxDomain,
        "servfail" => Fault::ServFail,
        "silence" | "timeout" => Fault::Silence,
        "refused" => Fault::Refused,
        _ => {
            return Err(Problem::bad_request(format!(
                "unknown fault {:?} (NXDOMAIN, SERVFAIL, silence or REFUSED)",
                body.fault
            )));
        }
    };
    match &body.record_type {
        Some(t) => {
            api.world.sim()?.dns().set_fault_for(&name, t, fault).map_err(|e| Problem::bad_request(e.0))?;
            api.world.sim()?.dns_changed();
            ok(json!({ "name": name, "fault": body.fault, "type": t.to_ascii_uppercase() }))
        }
        None => {
            api.world.sim()?.dns().set_fault(&name, fault);
            api.world.sim()?.dns_changed();
            ok(json!({ "name": name, "fault": body.fault }))
        }
    }
}

async fn clear_fault(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult {
    api.world.sim()?.dns().clear_fault(&name);
    api.world.sim()?.dns_changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}
