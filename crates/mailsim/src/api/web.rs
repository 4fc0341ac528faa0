//! The web page of a live world (issue 10 item 1): `GET /` and its two assets, for a person
//! rehearsing a cutover who wants to watch mail arrive, read a message as Message Header Analyzer
//! shows it, follow the trace, drive the queue and see the world's mail flow.
//!
//! Contract: the page is a client of the same JSON API as every other caller (`/api/v1/…`); it
//! adds no policy and no view of its own beyond what [`message_extras`] reads out of a message
//! (its NDR's delivery-status fields). Assets are embedded in the binary (`include_str!`), with no
//! CDN and no build step: the machines it runs on may be offline. The page re-reads only the page
//! of a listing it shows (the API's `start`/`limit`), so a world of 10,000 messages costs it one
//! page of 50; live updates come from [`super::events`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::Api;

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

/// The page, its assets and the event stream.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/api/v1/events", get(super::events::events))
        .route("/api/v1/graph.svg", get(graph_svg))
        .route("/api/v1/graph.dot", get(graph_dot))
}

/// The mail-flow picture of the world as it is now ([`crate::graph`]).
pub fn graph(api: &Api) -> crate::graph::Graph {
    match &api.world {
        super::World::Scenario(sim) => crate::graph::of_simulation(sim, None),
        super::World::Tenant(e) => e.trace().with_events(|_, events| crate::graph::of_tenant(&e.tenant(), events)),
    }
}

async fn graph_svg(State(api): State<Arc<Api>>) -> impl IntoResponse {
    // Laying out is CPU work (milliseconds for a world's few dozen nodes): off the async workers.
    let svg = tokio::task::spawn_blocking(move || graph(&api).to_svg()).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg)
}

async fn graph_dot(State(api): State<Arc<Api>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")], graph(&api).to_dot())
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self'"),
        ],
        body,
    )
}

/// What the message view shows beyond headers: the Received chain as hops, oldest first, each
/// with the delay from the one before as Message Header Analyzer writes it (`delay`, from
/// [`mailsim_core::received_chain`], exo-behaviour §8.5); for an NDR (RFC 3464), its recipients
/// with action, status and diagnostic (as `mailsim run`'s `ndr` expectation reads them).
pub fn message_extras(raw: &[u8]) -> Value {
    let hops: Vec<Value> = mailsim_core::received_chain::parse_chain(raw)
        .into_iter()
        .map(|hop| {
            let delay = hop.delay_text();
            let mut v = serde_json::to_value(&hop).unwrap_or(Value::Null);
            if let (Some(o), Some(d)) = (v.as_object_mut(), delay) {
                o.insert("delay".to_string(), Value::String(d));
            }
            v
        })
        .collect();
    let ndr = crate::scenario::expect::parse_ndr(raw).map(|r| {
        json!({
            "recipients": r.recipients.iter().map(|x| json!({
                "final_recipient": x.final_recipient,
                "action": x.action,
                "status": x.status,
                "diagnostic": x.diagnostic,
            })).collect::<Vec<_>>(),
        })
    });
    json!({ "hops": hops, "ndr": ndr })
}
