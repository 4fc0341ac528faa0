//! `GET /api/v1/events`: server-sent events telling the web page ([`super::web`]) that the world
//! changed, so it re-reads the page it shows instead of polling every view.
//!
//! Contract: one `change` event whenever the world's version moved, at most one per
//! [`TICK`], with the version as JSON (`trace` events recorded so far, messages `peers` hold,
//! the clock's `offset_s` ahead of real time, and the simulated `time`); a first `change` at once, so a page that connects late is never stale;
//! comments as keep-alives; the stream ends when the server stops (so that stopping does not
//! wait for open pages). The version is read, not pushed: the trace sink, the peers' inboxes
//! and the clock are read each tick (three locks and a few counters), which costs nothing with
//! 100,000 messages in the world and needs no hook in the pipeline. Every tenant delivery,
//! deferral and NDR records a trace event, so `trace` covers the mailboxes and the queue; a peer
//! receiving is counted by its inbox.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Serialize;

use super::{Api, World};

/// How often the version is read.
pub const TICK: Duration = Duration::from_millis(200);

/// What a page compares to know it is stale.
#[derive(Clone, Debug, Serialize)]
pub struct Version {
    /// Trace events recorded since the world started.
    pub trace: u64,
    /// Messages the scripted peers have received (and still hold), with the newest one's id.
    pub peers: (usize, u64),
    /// How far the simulated clock is ahead of real time, in whole seconds (it moves when the
    /// clock is advanced, not as time passes).
    pub offset_s: i64,
    /// Simulated time (not compared: it moves every millisecond).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub time: String,
}

impl Version {
    fn same(&self, other: &Version) -> bool {
        (self.trace, self.peers, self.offset_s) == (other.trace, other.peers, other.offset_s)
    }
}

/// The world's version now.
pub fn version(api: &Api) -> Version {
    let endpoint = api.endpoint();
    let mut peers = (0, 0);
    if let World::Scenario(sim) = &api.world {
        for (_, peer) in sim.peers() {
            let (n, last) = peer.with_inbox(|inbox| (inbox.len(), inbox.last().map_or(0, |m| m.id)));
            peers = (peers.0 + n, peers.1.max(last));
        }
    }
    let now = endpoint.pipeline().clock().now();
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Version {
        trace: endpoint.trace().recorded(),
        peers,
        offset_s: (now.as_millis().saturating_sub(real) + 500).div_euclid(1000),
        time: now.iso8601(),
    }
}

/// The event stream.
pub async fn events(State(api): State<Arc<Api>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let closing = api.closing.subscribe();
    let stream = stream::unfold((api, None::<Version>, closing), |(api, last, mut closing)| async move {
        loop {
            if *closing.borrow() {
                return None;
            }
            if last.is_some() {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    _ = closing.wait_for(|c| *c) => return None,
                }
            }
            let now = version(&api);
            if !last.as_ref().is_some_and(|l| l.same(&now)) {
                let data = serde_json::to_string(&now).unwrap_or_default();
                return Some((Ok(Event::default().event("change").data(data)), (api, Some(now), closing)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
