//! One inbound connection of the tenant endpoint: moves bytes between the socket and
//! `core::session::Session`, upgrades to TLS on STARTTLS, applies the timeouts, and hands accepted
//! messages to the pipeline. Every reply it writes comes from the session or the catalogue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mailsim_core::address_plan::AddressPlan;
use mailsim_core::peer::PeerFacts;
use mailsim_core::reply::ReplyKind;
use mailsim_core::session::{Action, Session, Waiting};
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::pipeline::Pipeline;
use crate::protocol_log::{ProtocolLog, SessionLog};

/// Timeouts of a connection (Exchange receive connector defaults, exo-behaviour §6).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Waiting for a command (`ConnectionInactivityTimeout`, 5 min).
    pub idle: Duration,
    /// Waiting for more message content.
    pub data: Duration,
    /// The whole connection (`ConnectionTimeout`, 10 min).
    pub connection: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(300),
            data: Duration::from_secs(300),
            connection: Duration::from_secs(600),
            handshake: Duration::from_secs(30),
        }
    }
}

/// The endpoint's STARTTLS material: the rustls config (optional client certificate, any
/// certificate captured) and the trusted client CAs the certificate is judged against afterwards.
pub struct EndpointTls {
    /// Server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// Client-certificate trust.
    pub trust: crate::tls::ClientTrust,
    /// The endpoint's own certificate, for the protocol log.
    pub leaf: Option<rustls_pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointTls")
    }
}

impl EndpointTls {
    fn facts(&self, conn: &rustls::ServerConnection, now: SystemTime) -> mailsim_core::peer::TlsFacts {
        crate::tls::tls_facts(conn, &self.trust, now)
    }
}

/// What every connection of one endpoint shares.
#[derive(Debug)]
pub struct Endpoint {
    /// The tenant (replaceable between sessions).
    pub tenant: Arc<crate::shared::Shared<Tenant>>,
    /// Declared ↔ loopback addresses (replaceable between sessions).
    pub plan: Arc<crate::shared::Shared<AddressPlan>>,
    /// STARTTLS material; `None` means STARTTLS is not offered.
    pub tls: Option<EndpointTls>,
    /// Where accepted messages go.
    pub pipeline: Arc<Pipeline>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// The protocol log (RECV).
    pub protocol_log: Arc<ProtocolLog>,
    /// Email authentication (exo-behaviour §14); `None`: not evaluated, no authentication stamps.
    pub auth: Option<Arc<crate::auth::Authenticator>>,
}

/// Real time (the machine's clock), for callers outside a world. Everything inside one, sessions,
/// the listener's own replies and certificate validity, uses the pipeline's simulated clock.
pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(ms)
}

enum PhaseEnd {
    StartTls,
    Closed,
}

const READ_CHUNK: usize = 4096;

/// Serves one accepted TCP connection until it closes, times out or the endpoint shuts down.
pub async fn handle(
    endpoint: Arc<Endpoint>,
    stream: TcpStream,
    peer_addr: SocketAddr,
    session_id: u64,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer_addr);
    let plan = endpoint.plan.get();
    let declared = plan.declared_for(peer_addr.ip());
    let peer = PeerFacts::new(peer_addr.ip(), peer_addr.port(), declared);
    let tenant = endpoint.tenant.get();
    let mut log = endpoint.protocol_log.receive_session(session_id, &tenant.settings.server_name, local, peer_addr);
    log.connected(plan.entries().iter().find(|e| e.loopback == peer_addr.ip()).map(|e| (e.name.as_str(), e.declared)));
    // Everything the tenant writes shows declared addresses (exo-behaviour §8.5, the address
    // plan): its own Received header names the tenant's declared address, not its loopback one.
    let mut session = Session::new(tenant, peer, plan.declared_for(local.ip()), session_id, endpoint.tls.is_some())
        .with_ids(endpoint.pipeline.ids().clone());
    if let Some(auth) = &endpoint.auth {
        session = session.with_authentication(auth.config().clone());
    }
    let span =
        tracing::info_span!("session", id = format_args!("{session_id:016X}"), peer = %peer_addr, declared = %declared);
    tracing::Instrument::instrument(run_session(endpoint, stream, session, log, shutdown), span).await;
}

async fn run_session(
    endpoint: Arc<Endpoint>,
    stream: TcpStream,
    mut session: Session,
    mut log: SessionLog,
    mut shutdown: watch::Receiver<bool>,
) {
    tracing::info!("connected");
    let deadline = tokio::time::Instant::now() + endpoint.timeouts.connection;

    let mut plain = stream;
    let clock = endpoint.pipeline.clock().clone();
    let greeting = session.greeting(clock.now());
    log.replied(&greeting);
    if plain.write_all(greeting.to_wire().as_bytes()).await.is_err() {
        return log.disconnected("Remote");
    }
    let mut buf = Vec::new();
    let end = run_phase(&endpoint, &mut session, &mut plain, &mut buf, &mut log, deadline, &mut shutdown).await;
    let Some(PhaseEnd::StartTls) = end else {
        log.disconnected(if end.is_some() { "Local" } else { "Remote" });
        tracing::info!("disconnected");
        return;
    };
    // The TLS half lives in a box of its own: a connection's task is as large as its largest
    // state, and the handshake and TLS stream would otherwise make every plain connection pay for
    // them (the idle-connection memory budget of issue 2).
    Box::pin(run_tls(&endpoint, plain, &mut session, buf, &mut log, deadline, &mut shutdown)).await;
}

/// STARTTLS accepted: the handshake, then the dialogue inside TLS until the end.
async fn run_tls(
    endpoint: &Endpoint,
    plain: TcpStream,
    session: &mut Session,
    mut buf: Vec<u8>,
    log: &mut SessionLog,
    deadline: tokio::time::Instant,
    shutdown: &mut watch::Receiver<bool>,
) {
    let Some(tls) = &endpoint.tls else { return };
    // RFC 3207 §5 / CVE-2011-0411: plaintext pipelined after STARTTLS is discarded, never
    // executed inside the TLS session.
    if !buf.is_empty() {
        tracing::warn!(bytes = buf.len(), "discarded input pipelined after STARTTLS");
        buf.clear();
    }
    let accept = tokio_rustls::TlsAcceptor::from(tls.config.clone()).accept(plain);
    let mut stream = match tokio::time::timeout(endpoint.timeouts.handshake, accept).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "TLS handshake failed");
            return log.tls_failed(&e.to_string());
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            return log.tls_failed("handshake timed out");
        }
    };
    // Client certificates are judged at the world's simulated time (one clock).
    let facts = tls.facts(stream.get_ref().1, endpoint.pipeline.clock().system_time());
    tracing::info!(version = %facts.version, cipher = %facts.cipher, client_cert = ?facts.client_cert.as_ref().map(|c| &c.subject), "TLS established");
    log.tls_established(&facts, tls.leaf.as_ref(), stream.get_ref().1.peer_certificates());
    session.on_tls_established(facts);
    let end = run_phase(endpoint, session, &mut stream, &mut buf, log, deadline, shutdown).await;
    let _ = stream.shutdown().await;
    log.disconnected(if end.is_some() { "Local" } else { "Remote" });
    tracing::info!("disconnected");
}

/// A stream that can wait for input without a buffer.
trait Ready {
    /// Resolves when a read would not block (or at once when the stream cannot tell).
    fn ready(&mut self) -> impl std::future::Future<Output = std::io::Result<()>>;
}

impl Ready for TcpStream {
    async fn ready(&mut self) -> std::io::Result<()> {
        self.readable().await
    }
}

impl Ready for tokio_rustls::server::TlsStream<TcpStream> {
    // rustls keeps its own buffers; the TCP socket underneath may be readable while no plaintext
    // is, so just read.
    async fn ready(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the dialogue on one stream (plain, then TLS) until STARTTLS or the end.
async fn run_phase<S: AsyncRead + AsyncWrite + Unpin + Ready>(
    endpoint: &Endpoint,
    session: &mut Session,
    stream: &mut S,
    buf: &mut Vec<u8>,
    log: &mut SessionLog,
    deadline: tokio::time::Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<PhaseEnd> {
    let mut out = Vec::new();
    let mut wire = String::new();
    loop {
        let used = session.on_input(buf, endpoint.pipeline.clock().now(), &mut out);
        log.input(&buf[..used], &out);
        buf.drain(..used);
        let mut end = None;
        // Set when the durable queue could not store a message: its 250 (the next reply) is not
        // sent, the catalogue's temporary failure is.
        let mut not_stored = false;
        // Whether a message waited for authentication: input left in the buffer (pipelined after
        // the message) is read before waiting for more.
        let mut authenticated = false;
        loop {
            let mut request = None;
            for action in out.drain(..) {
                match action {
                    Action::Reply(_) if std::mem::take(&mut not_stored) => {
                        let reply =
                            session.shell_reply(ReplyKind::TemporaryServerError, endpoint.pipeline.clock().now());
                        log.replied(&reply);
                        reply.write_wire(&mut wire);
                    }
                    Action::Reply(r) => r.write_wire(&mut wire),
                    Action::Accept(message) => {
                        // Boxed, like the other per-message futures below: the connection's task
                        // would otherwise hold room for them while it idles.
                        if let Err(e) = Box::pin(endpoint.pipeline.accept_durable(*message)).await {
                            tracing::error!(error = %e, "message not stored");
                            not_stored = true;
                        }
                    }
                    Action::Refused(refusal) => endpoint.pipeline.refused(*refusal),
                    Action::StartTls => end = Some(PhaseEnd::StartTls),
                    Action::Close => end = Some(PhaseEnd::Closed),
                    // Recorded by `log.input` above.
                    Action::Framed(_) => {}
                    Action::Authenticate(r) => request = Some(r),
                }
            }
            let Some(request) = request else { break };
            // The core decides on the facts; the shell only looks them up (exo-behaviour §14).
            let facts = match (&endpoint.auth, session.pending_content()) {
                (Some(auth), Some(content)) => Box::pin(auth.evaluate(&request, content)).await,
                _ => mailsim_core::auth::AuthFacts::not_evaluated(),
            };
            session.on_authenticated(facts, endpoint.pipeline.clock().now(), &mut out);
            log.input(&[], &out);
            authenticated = true;
        }
        if !wire.is_empty() {
            if stream.write_all(wire.as_bytes()).await.is_err() || stream.flush().await.is_err() {
                return None;
            }
            wire.clear();
        }
        if end.is_some() {
            return end;
        }
        if authenticated && !buf.is_empty() {
            continue;
        }
        let wait = match session.waiting() {
            Waiting::Content => endpoint.timeouts.data,
            _ => endpoint.timeouts.idle,
        };
        let read_deadline = (tokio::time::Instant::now() + wait).min(deadline);
        // An idle connection holds no read buffer: wait for readability first, then allocate
        // (the 8 KiB-per-idle-connection budget of issue 2).
        if buf.is_empty() {
            *buf = Vec::new();
        }
        let read = async {
            if buf.is_empty() {
                stream.ready().await?;
            }
            buf.reserve(READ_CHUNK);
            stream.read_buf(buf).await
        };
        tokio::select! {
            read = tokio::time::timeout_at(read_deadline, read) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => {
                    let reply = session.shell_reply(ReplyKind::Timeout, endpoint.pipeline.clock().now());
                    log.replied(&reply);
                    let _ = stream.write_all(reply.to_wire().as_bytes()).await;
                    let _ = stream.flush().await;
                    return Some(PhaseEnd::Closed);
                }
            },
            _ = shutdown.changed() => {
                let reply = session.shell_reply(ReplyKind::ShuttingDown, endpoint.pipeline.clock().now());
                log.replied(&reply);
                let _ = stream.write_all(reply.to_wire().as_bytes()).await;
                let _ = stream.flush().await;
                return Some(PhaseEnd::Closed);
            }
        }
    }
}
