//! The tenant endpoint's accept loop: takes a bound listener and a shutdown future (mini-redis
//! `server::run`), caps concurrent connections, and spawns one task per connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mailsim_core::reply::{ReplyContext, ReplyKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::smtp_conn::{Endpoint, handle};

/// How many connections run at once before new ones get `421 4.3.2`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 2000;

/// Accepts connections on `listener` until `shutdown` completes, then tells open sessions
/// `421 4.3.2` and waits (at most five seconds) for them to end.
pub async fn serve(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Session ids come from the world's id source, like message ids: unique for the world's life.
    let ids = endpoint.pipeline.ids().clone();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let id = ids.next_id();
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let endpoint = endpoint.clone();
                        let stop = stop_rx.clone();
                        tasks.spawn(async move {
                            handle(endpoint, stream, peer, id, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let tenant = endpoint.tenant.get();
                        let now = endpoint.pipeline.clock().now();
                        let ctx = ReplyContext { host: &tenant.settings.server_name, now, session_id: id };
                        let reply = ReplyKind::TooManyConnections.reply(&ctx).to_wire();
                        tasks.spawn(async move {
                            let mut stream = stream;
                            let _ = stream.write_all(reply.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        });
                    }
                }
                while tasks.try_join_next().is_some() {}
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async { while tasks.join_next().await.is_some() {} }).await;
    tasks.abort_all();
    Ok(())
}
