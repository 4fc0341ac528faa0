//! A scripted receiving SMTP server: a gateway's smart host, a partner's MX, an on-premises server.
//!
//! Contract: a [`ScriptedPeer`] listens on one loopback address and answers the mail the tenant
//! delivers as its [`PeerScript`] says: STARTTLS offered, required or absent, the certificate it
//! presents (right name, wrong name, expired, untrusted), whether it asks for a client certificate,
//! and for every stage (connect, EHLO, MAIL, RCPT, DATA, end of data) a [`Behaviour`]: the default
//! reply, a scripted reply, a delay, a dropped connection, or a sequence of those that advances
//! each time the stage is reached, across connections. Accepted messages land in an inbox; every
//! connection keeps a `C:`/`S:` transcript. The script is data (serde), so scenario files can
//! build it.
//!
//! Written from scratch on tokio and tokio-rustls: it shares no protocol code with `mailsim-io`
//! (ARCHITECTURE habit 11), so a bug in mailsim's SMTP client cannot also hide here. It never
//! decides anything about EXO semantics; it only does what it is told, deterministically.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mailsim_testkit::hosts::roles;
//! use mailsim_testkit::peer::{Behaviour, PeerScript, ScriptedPeer, StartTls};
//!
//! let script = PeerScript {
//!     starttls: StartTls::Require,
//!     on_rcpt: Behaviour::Sequence(vec![Behaviour::reply(451, "4.3.0 Try again later"), Behaviour::Accept]),
//!     ..PeerScript::new("mx.partner.test")
//! };
//! let peer = ScriptedPeer::start(roles::PARTNER.socket(0), script).await?;
//! // ... point the tenant at peer.addr(), send, then:
//! let inbox = peer.wait_for_messages(1, std::time::Duration::from_secs(10)).await;
//! # let _ = inbox; Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::server::TlsStream;

use crate::certs::{LeafCert, LeafSpec, TestCa, TestPki, Validity};

/// Default message size limit (advertised with `SIZE`): 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Longest command line accepted, CRLF included; longer lines get `500 5.5.2` and a close.
pub const MAX_COMMAND_LINE: usize = 4096;
/// Most recipients accepted in one transaction; more get `452 4.5.3`.
pub const MAX_RECIPIENTS: usize = 1000;
/// The trusted name [`PeerCert::WrongName`] certificates carry.
pub const WRONG_NAME: &str = "mail.wrong.test";

/// Whether and how the peer offers STARTTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartTls {
    /// Advertise STARTTLS; plaintext mail is accepted too.
    #[default]
    Offer,
    /// Advertise STARTTLS and refuse MAIL before it with
    /// `530 5.7.0 Must issue a STARTTLS command first`.
    Require,
    /// Neither advertise nor accept STARTTLS (`502 5.5.1`).
    None,
}

/// Whether the peer asks the client for a certificate during the handshake. Any certificate is
/// accepted (its subject is recorded); judging it is the test's business.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientCertRequest {
    /// Do not ask.
    #[default]
    Ignore,
    /// Ask; a client without one still completes the handshake.
    Request,
    /// Ask, and fail the handshake if the client presents none.
    Require,
}

/// The certificate the peer presents after STARTTLS.
///
/// Every generated certificate carries both `serverAuth` and `clientAuth`, so a client that
/// rejects it does so for the reason the variant names (name, expiry, issuer) and not for its key
/// usage. (`TestPki::wrong_subject`, `expired` and `untrusted` are client-only certificates, which
/// is why they are not used here as they are.) Certificates are issued by the peer's [`TestPki`]
/// (or its rogue CA) when the script is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub enum PeerCert {
    /// Trusted (test CA), valid, CN and dNSName SAN = the script's `host_name`. For
    /// `mx.partner.test`, `mail.gateway.test` and `tenant.mailsim.test` this is the PKI's own leaf.
    #[default]
    RightName,
    /// Trusted and valid, but for [`WRONG_NAME`] (`mail.wrong.test`).
    WrongName,
    /// Trusted and for the host's name, but expired (2020–2021).
    Expired,
    /// For the host's name and valid, but issued by the rogue CA nobody trusts.
    Untrusted,
    /// Trusted and valid, for the given name (CN and dNSName SAN).
    Named(String),
    /// A certificate made elsewhere (not serialisable).
    #[serde(skip)]
    Leaf(Box<LeafCert>),
}

/// What the peer does when a stage is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behaviour {
    /// The stage's default (accepting) reply.
    #[default]
    Accept,
    /// This reply instead: code and text, e.g. `(451, "4.3.0 Try again later")`. A text with
    /// `\n` becomes a multi-line reply. A 2xx code (354 for DATA) still counts as acceptance.
    Reply(u16, String),
    /// Wait this long (milliseconds in serde form), then the default reply.
    Delay(#[serde(with = "millis")] Duration),
    /// Close the TCP connection without replying.
    Drop,
    /// The n-th time this stage is reached (counted across connections since the script was set)
    /// use the n-th behaviour; the last one repeats. Empty means [`Behaviour::Accept`].
    Sequence(Vec<Behaviour>),
}

impl Behaviour {
    /// `Behaviour::Reply(code, text.into())`.
    pub fn reply(code: u16, text: impl Into<String>) -> Self {
        Behaviour::Reply(code, text.into())
    }
}

/// Everything a [`ScriptedPeer`] does, as plain data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerScript {
    /// The name in the greeting and the EHLO reply, e.g. `mx.partner.test`.
    pub host_name: String,
    /// STARTTLS policy.
    pub starttls: StartTls,
    /// Certificate presented after STARTTLS.
    pub cert: PeerCert,
    /// Whether to ask for a client certificate.
    pub client_cert: ClientCertRequest,
    /// At connection: the greeting. A non-2xx reply makes the peer answer every command but QUIT
    /// with `503 5.5.1`.
    pub on_connect: Behaviour,
    /// At EHLO and HELO.
    pub on_ehlo: Behaviour,
    /// At MAIL FROM.
    pub on_mail: Behaviour,
    /// At RCPT TO, for recipients without an entry in `on_rcpt_for`.
    pub on_rcpt: Behaviour,
    /// At RCPT TO, per recipient address (compared case-insensitively); each entry has its own
    /// sequence counter.
    pub on_rcpt_for: BTreeMap<String, Behaviour>,
    /// At the DATA command.
    pub on_data: Behaviour,
    /// After the final `.`: the default reply (or any 2xx) puts the message in the inbox.
    pub on_end_of_data: Behaviour,
    /// Message size limit, advertised with `SIZE`; larger messages get `552 5.3.4`.
    pub max_message_size: usize,
    /// Longest wait for the client's next bytes (milliseconds in serde form); then `421 4.4.2`
    /// and close.
    #[serde(with = "millis")]
    pub idle_timeout: Duration,
    /// Relay every accepted message on to this address, as a gateway relays inbound mail to the
    /// tenant: from the peer's own address, same envelope, a `Received:` header added (and the
    /// message still kept in the inbox). Bounded: at most [`MAX_FORWARD_HOPS`] `Received:` headers
    /// are passed on, so a misconfigured loop ends here too.
    #[serde(default)]
    pub forward_to: Option<std::net::SocketAddr>,
}

/// A forwarding peer stops relaying a message that already carries this many `Received:` headers.
pub const MAX_FORWARD_HOPS: usize = 100;

impl Default for PeerScript {
    fn default() -> Self {
        Self::new("peer.mailsim.test")
    }
}

impl PeerScript {
    /// A peer named `host_name` that offers STARTTLS with a right-name certificate, asks for no
    /// client certificate and accepts everything.
    pub fn new(host_name: impl Into<String>) -> Self {
        Self {
            host_name: host_name.into(),
            starttls: StartTls::Offer,
            cert: PeerCert::RightName,
            client_cert: ClientCertRequest::Ignore,
            on_connect: Behaviour::Accept,
            on_ehlo: Behaviour::Accept,
            on_mail: Behaviour::Accept,
            on_rcpt: Behaviour::Accept,
            on_rcpt_for: BTreeMap::new(),
            on_data: Behaviour::Accept,
            on_end_of_data: Behaviour::Accept,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            idle_timeout: Duration::from_secs(60),
            forward_to: None,
        }
    }
}

/// The TLS session a message arrived over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTlsInfo {
    /// `TLS1_2` or `TLS1_3` (the spelling of `mailsim_core::peer::TlsFacts`).
    pub version: String,
    /// rustls' name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// Subject of the client certificate, e.g. `CN=mail.gateway.test`, if one was presented.
    pub client_cert_subject: Option<String>,
    /// The SNI the client sent.
    pub sni: Option<String>,
}

/// A message the peer accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The MAIL FROM address, without brackets (empty for the null sender).
    pub mail_from: String,
    /// Accepted RCPT TO addresses, in order, without brackets.
    pub rcpt_to: Vec<String>,
    /// The content, dot-unstuffed, lines ending in CRLF, without the final `.`.
    pub data: Vec<u8>,
    /// The TLS session, if the message came over TLS.
    pub tls: Option<PeerTlsInfo>,
    /// The client's source address.
    pub client_ip: IpAddr,
    /// The EHLO/HELO name of the session.
    pub helo: Option<String>,
    /// Index of the connection (into [`ScriptedPeer::transcripts`]).
    pub connection: usize,
}

/// A running scripted peer. Dropping it aborts the server and all its connections; [`stop`]
/// does the same and waits, and the inbox and transcripts stay readable afterwards.
///
/// [`stop`]: ScriptedPeer::stop
pub struct ScriptedPeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    left_open: Option<usize>,
}

impl std::fmt::Debug for ScriptedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedPeer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ScriptedPeer {
    /// Binds `bind` (a loopback address; port 0 picks one) and serves `script`, with certificates
    /// from [`TestPki::default_shared`].
    pub async fn start(bind: SocketAddr, script: PeerScript) -> io::Result<ScriptedPeer> {
        Self::start_with_pki(bind, script, TestPki::default_shared()).await
    }

    /// Like [`ScriptedPeer::start`], issuing certificates from `pki` (e.g. the checked-in one).
    /// Refuses a non-loopback `bind` with `InvalidInput`.
    pub async fn start_with_pki(bind: SocketAddr, script: PeerScript, pki: &TestPki) -> io::Result<ScriptedPeer> {
        if !bind.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("scripted peers bind loopback addresses only, not {bind}"),
            ));
        }
        let mut certs = PeerPki::new(pki)?;
        let tls = server_config(&script, &mut certs)?;
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                script: Arc::new(script),
                tls,
                certs,
                counters: HashMap::new(),
                inbox: Vec::new(),
                transcripts: Vec::new(),
            }),
            changed: Notify::new(),
            open: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(ScriptedPeer { addr, shared, stop_tx, task: Some(task), left_open: None })
    }

    /// The address the peer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The script in force.
    pub fn script(&self) -> PeerScript {
        (*self.shared.lock().script).clone()
    }

    /// Replaces the script for new commands (connections already open see it from their next
    /// command; a TLS certificate change applies to the next STARTTLS) and restarts every
    /// [`Behaviour::Sequence`] from its first entry.
    pub fn set_script(&self, script: PeerScript) -> io::Result<()> {
        let mut state = self.shared.lock();
        state.tls = server_config(&script, &mut state.certs)?;
        state.script = Arc::new(script);
        state.counters.clear();
        Ok(())
    }

    /// Messages accepted so far, in order.
    pub fn inbox(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().inbox.clone()
    }

    /// Waits until at least `n` messages are in the inbox or `timeout` passes, and returns the
    /// inbox as it is then (the caller asserts on its length).
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        self.wait_until(timeout, |s| s.lock().inbox.len() >= n).await;
        self.inbox()
    }

    /// Waits until at least `n` connections have been accepted or `timeout` passes; returns the
    /// count then.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> usize {
        self.wait_until(timeout, |s| s.lock().transcripts.len() >= n).await;
        self.connections()
    }

    /// Waits until no connection is open or `timeout` passes; returns the number still open.
    pub async fn wait_for_idle(&self, timeout: Duration) -> usize {
        self.wait_until(timeout, |s| s.open.load(Ordering::SeqCst) == 0).await;
        self.open_connections()
    }

    async fn wait_until(&self, timeout: Duration, done: impl Fn(&Shared) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.shared) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().transcripts.len()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections that were still open when [`ScriptedPeer::stop`] ran (`None` before it ran):
    /// a client that never closed its connection leaked it.
    pub fn left_open_at_stop(&self) -> Option<usize> {
        self.left_open
    }

    /// Per connection, in accept order: `C: ` lines received, `S: ` lines sent, and `! ` events
    /// (connect, TLS, message data size, delay, drop, close).
    pub fn transcripts(&self) -> Vec<Vec<String>> {
        self.shared.lock().transcripts.clone()
    }

    /// Stops listening, aborts open connections and waits for them to go. Returns how many were
    /// still open (also kept in [`ScriptedPeer::left_open_at_stop`]). Calling it again returns 0.
    pub async fn stop(&mut self) -> usize {
        let Some(task) = self.task.take() else {
            return 0;
        };
        let open = self.open_connections();
        self.left_open = Some(open);
        let _ = self.stop_tx.send(true);
        let _ = task.await;
        open
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled on every inbox, connection or open-count change.
    changed: Notify,
    open: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn log(&self, conn: usize, line: String) {
        if let Some(t) = self.lock().transcripts.get_mut(conn) {
            t.push(line);
        }
    }
}

struct State {
    script: Arc<PeerScript>,
    tls: Option<Arc<ServerConfig>>,
    certs: PeerPki,
    counters: HashMap<String, usize>,
    inbox: Vec<ReceivedMessage>,
    transcripts: Vec<Vec<String>>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, from)) = accepted else {
                    // Out of descriptors or similar: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let id = {
                    let mut state = shared.lock();
                    state.transcripts.push(vec![format!("! connect from {from}")]);
                    state.transcripts.len() - 1
                };
                shared.open.fetch_add(1, Ordering::SeqCst);
                shared.changed.notify_waiters();
                let guard = OpenGuard { shared: shared.clone(), id, finished: false };
                tasks.spawn(serve(guard, tcp, from.ip()));
            }
        }
    }
    drop(listener);
    tasks.shutdown().await;
}

/// Counts a connection as open until its task ends or is aborted.
struct OpenGuard {
    shared: Arc<Shared>,
    id: usize,
    finished: bool,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.log(self.id, "! aborted by stop".into());
        }
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.shared.changed.notify_waiters();
    }
}

async fn serve(mut guard: OpenGuard, tcp: TcpStream, client_ip: IpAddr) {
    // Replies to pipelined commands are written one by one; without this, Nagle's algorithm and
    // the client's delayed ACK stall every transaction by ~40 ms.
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp.local_addr().map(|a| a.ip()).unwrap_or(client_ip);
    let mut conn = Conn {
        shared: guard.shared.clone(),
        id: guard.id,
        local_ip,
        io: Io::Plain(tcp),
        buf: Vec::new(),
        client_ip,
        tls: None,
        helo: None,
        greeted: false,
        txn: None,
    };
    let end = match conn.run().await {
        Ok(()) => "! closed".to_string(),
        Err(e) => format!("! closed: {e}"),
    };
    conn.log(end);
    guard.finished = true;
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Io {
    /// Appends what is available to `buf`.
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.reserve(16 * 1024);
        match self {
            Io::Plain(s) => s.read_buf(buf).await,
            Io::Tls(s) => s.read_buf(buf).await,
            Io::Gone => Ok(0),
        }
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(bytes).await,
            Io::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Io::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// What the script says for one stage, after delays are served.
enum Staged {
    Default,
    Custom(u16, String),
    Drop,
}

/// Whether the connection goes on after a command.
enum Flow {
    Continue,
    Close,
}

struct Txn {
    mail_from: String,
    rcpt_to: Vec<String>,
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    local_ip: IpAddr,
    io: Io,
    buf: Vec<u8>,
    client_ip: IpAddr,
    tls: Option<PeerTlsInfo>,
    helo: Option<String>,
    greeted: bool,
    txn: Option<Txn>,
}

fn is_positive(code: u16) -> bool {
    (200..300).contains(&code)
}

impl Conn {
    fn log(&self, line: String) {
        self.shared.log(self.id, line);
    }

    fn script(&self) -> Arc<PeerScript> {
        self.shared.lock().script.clone()
    }

    async fn send_lines(&mut self, code: u16, lines: &[String]) -> io::Result<()> {
        let mut wire = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let text = if line.is_empty() && sep == ' ' { format!("{code}") } else { format!("{code}{sep}{line}") };
            self.log(format!("S: {text}"));
            wire.push_str(&text);
            wire.push_str("\r\n");
        }
        let timeout = self.script().idle_timeout;
        match tokio::time::timeout(timeout, self.io.write_all(wire.as_bytes())).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    /// Sends `code text`; `\n` in `text` makes a multi-line reply.
    async fn send(&mut self, code: u16, text: &str) -> io::Result<()> {
        let lines: Vec<String> = text.split('\n').map(|l| l.trim_end_matches('\r').to_string()).collect();
        self.send_lines(code, &lines).await
    }

    /// Resolves the stage's behaviour (advancing its sequence counter) and serves any delay.
    async fn stage(&mut self, key: String, pick: impl Fn(&PeerScript) -> &Behaviour) -> Staged {
        let resolved = {
            let mut state = self.shared.lock();
            let script = state.script.clone();
            let counter = state.counters.entry(key).or_insert(0);
            let n = *counter;
            *counter += 1;
            resolve(pick(&script), n).clone()
        };
        match resolved {
            Behaviour::Accept | Behaviour::Sequence(_) => Staged::Default,
            Behaviour::Reply(code, text) => Staged::Custom(code, text),
            Behaviour::Delay(d) => {
                self.log(format!("! delay {} ms", d.as_millis()));
                tokio::time::sleep(d).await;
                Staged::Default
            }
            Behaviour::Drop => {
                self.log("! drop".into());
                Staged::Drop
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let timeout = self.script().idle_timeout;
        match tokio::time::timeout(timeout, self.io.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")),
        }
    }

    /// The next command line without its line ending; `None` at end of stream.
    async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                if lf + 1 > MAX_COMMAND_LINE {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_COMMAND_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads message content up to CRLF.CRLF, dot-unstuffing; `Ok(None)` if it exceeded `max`
    /// (the rest is read and discarded). Bare LF is content, not a line end (RFC 5321 §2.3.8).
    async fn read_data(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        let mut too_big = false;
        let mut at_line_start = true;
        loop {
            let crlf = self.buf.windows(2).position(|w| w == b"\r\n");
            let (take, consumed, ends_line) = match crlf {
                Some(pos) => (pos, pos + 2, true),
                // A long line without CRLF yet: pass it on in pieces, keeping a trailing CR.
                None if self.buf.len() > 64 * 1024 => (self.buf.len() - 1, self.buf.len() - 1, false),
                None => {
                    if self.fill().await? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during DATA"));
                    }
                    continue;
                }
            };
            let line = &self.buf[..take];
            if at_line_start && ends_line && line == b"." {
                self.buf.drain(..consumed);
                return Ok((!too_big).then_some(data));
            }
            let line = if at_line_start && line.first() == Some(&b'.') { &line[1..] } else { line };
            if !too_big && data.len() + line.len() + 2 > max {
                too_big = true;
                data = Vec::new();
            }
            if !too_big {
                data.extend_from_slice(line);
                if ends_line {
                    data.extend_from_slice(b"\r\n");
                }
            }
            self.buf.drain(..consumed);
            at_line_start = ends_line;
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        let script = self.script();
        let refusing = match self.stage("connect".into(), |s| &s.on_connect).await {
            Staged::Drop => return Ok(()),
            Staged::Default => {
                self.send(220, &format!("{} ESMTP mailsim-testkit scripted peer", script.host_name)).await?;
                false
            }
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                !is_positive(code)
            }
        };
        loop {
            let line = match self.read_line().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.log("! client closed".into());
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.log("C: <line too long>".into());
                    return self.send(500, "5.5.2 Line too long").await;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let host = self.script().host_name.clone();
                    return self.send(421, &format!("4.4.2 {host} Error: timeout exceeded")).await;
                }
                Err(e) => return Err(e),
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            self.log(format!("C: {line}"));
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            let flow = if refusing && verb != "QUIT" {
                self.send(503, "5.5.1 Bad sequence of commands").await?;
                Flow::Continue
            } else {
                match verb.as_str() {
                    "EHLO" | "HELO" => self.ehlo(verb == "EHLO", &arg).await?,
                    "STARTTLS" => self.starttls(&arg).await?,
                    "MAIL" => self.mail(&arg).await?,
                    "RCPT" => self.rcpt(&arg).await?,
                    "DATA" => self.data(&arg).await?,
                    "RSET" => {
                        self.txn = None;
                        self.send(250, "2.0.0 OK").await?;
                        Flow::Continue
                    }
                    "NOOP" => {
                        self.send(250, "2.0.0 OK").await?;
                        Flow::Continue
                    }
                    "QUIT" => {
                        self.send(221, "2.0.0 Bye").await?;
                        Flow::Close
                    }
                    _ => {
                        self.send(500, "5.5.2 Command not recognized").await?;
                        Flow::Continue
                    }
                }
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    async fn ehlo(&mut self, extended: bool, arg: &str) -> io::Result<Flow> {
        if arg.is_empty() {
            self.send(501, "5.5.4 Syntax: EHLO hostname").await?;
            return Ok(Flow::Continue);
        }
        let script = self.script();
        match self.stage("ehlo".into(), |s| &s.on_ehlo).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default if extended => {
                let mut lines = vec![
                    format!("{} Hello {arg}", script.host_name),
                    "PIPELINING".into(),
                    "8BITMIME".into(),
                    format!("SIZE {}", script.max_message_size),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if script.starttls != StartTls::None && self.tls.is_none() {
                    lines.push("STARTTLS".into());
                }
                self.send_lines(250, &lines).await?;
            }
            Staged::Default => self.send(250, &script.host_name).await?,
        }
        self.greeted = true;
        self.helo = Some(arg.to_string());
        self.txn = None;
        Ok(Flow::Continue)
    }

    async fn starttls(&mut self, arg: &str) -> io::Result<Flow> {
        let (policy, config) = {
            let state = self.shared.lock();
            (state.script.starttls, state.tls.clone())
        };
        let config = match (policy, config) {
            (StartTls::None, _) | (_, None) => {
                self.send(502, "5.5.1 Command not implemented").await?;
                return Ok(Flow::Continue);
            }
            (_, Some(config)) => config,
        };
        if !arg.is_empty() {
            self.send(501, "5.5.4 Syntax: STARTTLS").await?;
            return Ok(Flow::Continue);
        }
        if self.tls.is_some() {
            self.send(503, "5.5.1 TLS already active").await?;
            return Ok(Flow::Continue);
        }
        if !self.greeted {
            self.send(503, "5.5.1 Send EHLO first").await?;
            return Ok(Flow::Continue);
        }
        // Plaintext pipelined after STARTTLS must not be read as if it came inside TLS
        // (CVE-2011-0411 class); it is discarded and noted.
        if !self.buf.is_empty() {
            self.log(format!("! discarded {} plaintext bytes pipelined after STARTTLS", self.buf.len()));
            self.buf.clear();
        }
        self.send(220, "2.0.0 Ready to start TLS").await?;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Ok(Flow::Close);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let timeout = self.script().idle_timeout;
        let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.log(format!("! tls handshake failed: {e}"));
                return Ok(Flow::Close);
            }
            Err(_) => {
                self.log("! tls handshake timed out".into());
                return Ok(Flow::Close);
            }
        };
        let info = tls_info(tls.get_ref().1);
        self.log(format!(
            "! tls {} {} client-cert={} sni={}",
            info.version,
            info.cipher,
            info.client_cert_subject.as_deref().unwrap_or("-"),
            info.sni.as_deref().unwrap_or("-"),
        ));
        self.io = Io::Tls(Box::new(tls));
        self.tls = Some(info);
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.greeted = false;
        self.helo = None;
        self.txn = None;
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        let script = self.script();
        if !self.greeted {
            self.send(503, "5.5.1 Send EHLO/HELO first").await?;
            return Ok(Flow::Continue);
        }
        if script.starttls == StartTls::Require && self.tls.is_none() {
            self.send(530, "5.7.0 Must issue a STARTTLS command first").await?;
            return Ok(Flow::Continue);
        }
        if self.txn.is_some() {
            self.send(503, "5.5.1 Sender already specified").await?;
            return Ok(Flow::Continue);
        }
        let Some((from, params)) = parse_path(arg, "FROM:") else {
            self.send(501, "5.5.4 Syntax: MAIL FROM:<address>").await?;
            return Ok(Flow::Continue);
        };
        let size = params
            .split_whitespace()
            .find_map(|p| p.get(..5).filter(|k| k.eq_ignore_ascii_case("SIZE=")).map(|_| &p[5..]))
            .and_then(|v| v.parse::<u64>().ok());
        if size.is_some_and(|s| s > script.max_message_size as u64) {
            self.send(552, "5.3.4 Message size exceeds fixed maximum message size").await?;
            return Ok(Flow::Continue);
        }
        match self.stage("mail".into(), |s| &s.on_mail).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default => self.send(250, &format!("2.1.0 Sender <{from}> OK")).await?,
        }
        self.txn = Some(Txn { mail_from: from, rcpt_to: Vec::new() });
        Ok(Flow::Continue)
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        let Some(count) = self.txn.as_ref().map(|t| t.rcpt_to.len()) else {
            self.send(503, "5.5.1 Need MAIL command").await?;
            return Ok(Flow::Continue);
        };
        let Some((to, _)) = parse_path(arg, "TO:").filter(|(to, _)| !to.is_empty()) else {
            self.send(501, "5.5.4 Syntax: RCPT TO:<address>").await?;
            return Ok(Flow::Continue);
        };
        if count >= MAX_RECIPIENTS {
            self.send(452, "4.5.3 Too many recipients").await?;
            return Ok(Flow::Continue);
        }
        let script = self.script();
        let override_key = script.on_rcpt_for.keys().find(|k| k.eq_ignore_ascii_case(&to)).cloned();
        let staged = match override_key {
            Some(key) => {
                let counter = format!("rcpt:{}", key.to_ascii_lowercase());
                self.stage(counter, move |s| s.on_rcpt_for.get(&key).unwrap_or(&s.on_rcpt)).await
            }
            None => self.stage("rcpt".into(), |s| &s.on_rcpt).await,
        };
        match staged {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default => self.send(250, &format!("2.1.5 Recipient <{to}> OK")).await?,
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.rcpt_to.push(to);
        }
        Ok(Flow::Continue)
    }

    async fn data(&mut self, arg: &str) -> io::Result<Flow> {
        match &self.txn {
            None => {
                self.send(503, "5.5.1 Need MAIL command").await?;
                return Ok(Flow::Continue);
            }
            Some(txn) if txn.rcpt_to.is_empty() => {
                self.send(554, "5.5.1 No valid recipients").await?;
                return Ok(Flow::Continue);
            }
            Some(_) if !arg.is_empty() => {
                self.send(501, "5.5.4 Syntax: DATA").await?;
                return Ok(Flow::Continue);
            }
            Some(_) => {}
        }
        match self.stage("data".into(), |s| &s.on_data).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(354, text) => self.send(354, &text).await?,
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                self.txn = None;
                return Ok(Flow::Continue);
            }
            Staged::Default => self.send(354, "End data with <CR><LF>.<CR><LF>").await?,
        }
        let script = self.script();
        let data = match self.read_data(script.max_message_size).await {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return self
                    .send(421, &format!("4.4.2 {} Error: timeout exceeded", script.host_name))
                    .await
                    .map(|()| Flow::Close);
            }
            Err(e) => return Err(e),
        };
        let txn = self.txn.take().expect("checked above");
        let Some(data) = data else {
            self.log("! data over the size limit".into());
            self.log("C: .".into());
            self.send(552, "5.3.4 Message size exceeds fixed maximum message size").await?;
            return Ok(Flow::Continue);
        };
        self.log(format!("! data {} bytes", data.len()));
        self.log("C: .".into());
        let reply = match self.stage("end_of_data".into(), |s| &s.on_end_of_data).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => (code, text, is_positive(code)),
            Staged::Default => (250, String::new(), true),
        };
        if reply.2 {
            let message = ReceivedMessage {
                mail_from: txn.mail_from,
                rcpt_to: txn.rcpt_to,
                data,
                tls: self.tls.clone(),
                client_ip: self.client_ip,
                helo: self.helo.clone(),
                connection: self.id,
            };
            if let Some(target) = self.script().forward_to {
                let host_name = self.script().host_name.clone();
                let source = self.local_ip;
                let copy = message.clone();
                let shared = self.shared.clone();
                let id = self.id;
                tokio::spawn(async move {
                    let outcome = forward(source, target, &host_name, &copy).await;
                    shared.log(id, format!("! forwarded to {target}: {outcome}"));
                });
            }
            let n = {
                let mut state = self.shared.lock();
                state.inbox.push(message);
                state.inbox.len()
            };
            self.shared.changed.notify_waiters();
            if reply.1.is_empty() {
                self.send(250, &format!("2.6.0 Message {n} accepted")).await?;
                return Ok(Flow::Continue);
            }
        }
        self.send(reply.0, &reply.1).await?;
        Ok(Flow::Continue)
    }
}

/// Relays one received message to `target` from `source`, as a plain-SMTP relay would. Returns the
/// final reply (or error) for the transcript.
async fn forward(source: IpAddr, target: std::net::SocketAddr, host_name: &str, message: &ReceivedMessage) -> String {
    let hops = message
        .data
        .split(|&b| b == b'\n')
        .take_while(|l| l.len() > 2)
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count();
    if hops >= MAX_FORWARD_HOPS {
        return format!("not forwarded: {hops} Received headers");
    }
    let (mut client, greeting) = match crate::sender::ScriptedSender::connect(source, target).await {
        Ok(c) => c,
        Err(e) => return format!("connect failed: {e}"),
    };
    if greeting.code != 220 {
        return greeting.last_line();
    }
    let received = format!(
        "Received: from {} ({}) by {host_name} with ESMTP; relayed by mailsim scripted peer\r\n",
        message.helo.as_deref().unwrap_or("unknown"),
        message.client_ip
    );
    let content = format!("{received}{}", String::from_utf8_lossy(&message.data));
    let rcpts: Vec<&str> = message.rcpt_to.iter().map(String::as_str).collect();
    let result = client.send_message(host_name, &message.mail_from, &rcpts, &content).await;
    let _ = client.command("QUIT").await;
    match result {
        Ok(reply) => reply.last_line(),
        Err(e) => format!("failed: {e}"),
    }
}

/// Picks the behaviour for the `n`-th arrival at a stage, looking through sequences.
fn resolve(behaviour: &Behaviour, n: usize) -> &Behaviour {
    match behaviour {
        Behaviour::Sequence(seq) => match seq.get(n).or(seq.last()) {
            Some(b) => resolve(b, n),
            None => &Behaviour::Accept,
        },
        other => other,
    }
}

/// Parses `FROM:<addr> params` (or `TO:`), keyword case-insensitive, brackets optional.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some((inner[..end].to_string(), inner[end + 1..].trim()))
    } else {
        let (addr, params) = rest.split_once(' ').unwrap_or((rest, ""));
        (!addr.is_empty()).then(|| (addr.to_string(), params.trim()))
    }
}

fn tls_info(conn: &rustls::ServerConnection) -> PeerTlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1_3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1_2".to_string(),
        other => format!("{other:?}"),
    };
    let cipher = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
    let client_cert_subject = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c.subject().to_string()));
    PeerTlsInfo { version, cipher, client_cert_subject, sni: conn.server_name().map(str::to_string) }
}

/// The peer's own copy of the CAs, and the leaves it has issued, by kind and name.
struct PeerPki {
    ca: TestCa,
    rogue_ca: TestCa,
    issued: HashMap<(&'static str, String), LeafCert>,
}

impl PeerPki {
    fn new(pki: &TestPki) -> io::Result<Self> {
        let copy = |ca: &TestCa| TestCa::from_pem(ca.cert_pem(), ca.key_pem()).map_err(io::Error::other);
        let mut issued = HashMap::new();
        for leaf in [&pki.tenant, &pki.gateway, &pki.partner] {
            if let Some(name) = common_name(leaf) {
                issued.insert(("right", name), leaf.clone());
            }
        }
        Ok(Self { ca: copy(&pki.ca)?, rogue_ca: copy(&pki.rogue_ca)?, issued })
    }

    fn leaf_for(&mut self, cert: &PeerCert, host: &str) -> io::Result<LeafCert> {
        let (kind, name) = match cert {
            PeerCert::Leaf(leaf) => return Ok((**leaf).clone()),
            PeerCert::RightName => ("right", host),
            PeerCert::Named(name) => ("right", name.as_str()),
            PeerCert::WrongName => ("right", WRONG_NAME),
            PeerCert::Expired => ("expired", host),
            PeerCert::Untrusted => ("untrusted", host),
        };
        if let Some(leaf) = self.issued.get(&(kind, name.to_string())) {
            return Ok(leaf.clone());
        }
        let mut spec = LeafSpec::both(name).dns(name);
        if kind == "expired" {
            spec = spec.validity(Validity::Expired);
        }
        let ca = if kind == "untrusted" { &self.rogue_ca } else { &self.ca };
        let leaf = ca.try_issue(&spec).map_err(io::Error::other)?;
        self.issued.insert((kind, name.to_string()), leaf.clone());
        Ok(leaf)
    }
}

fn common_name(leaf: &LeafCert) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).ok()?;
    cert.subject().iter_common_name().find_map(|cn| cn.as_str().ok()).map(str::to_string)
}

fn server_config(script: &PeerScript, certs: &mut PeerPki) -> io::Result<Option<Arc<ServerConfig>>> {
    if script.starttls == StartTls::None {
        return Ok(None);
    }
    let leaf = certs.leaf_for(&script.cert, &script.host_name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match script.client_cert {
        ClientCertRequest::Ignore => builder.with_no_client_auth(),
        request => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            provider,
            mandatory: request == ClientCertRequest::Require,
        })),
    };
    let config = builder.with_single_cert(leaf.chain(), leaf.key()).map_err(io::Error::other)?;
    Ok(Some(Arc::new(config)))
}

/// Asks for a client certificate and accepts any, still checking that the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `Duration` as whole milliseconds in serde form.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::hosts::roles;
    use crate::sender::{ScriptedSender, TlsOptions};

    const WAIT: Duration = Duration::from_secs(10);

    async fn peer(script: PeerScript) -> ScriptedPeer {
        ScriptedPeer::start(roles::PARTNER.socket(0), script).await.expect("start peer")
    }

    async fn connect(peer: &ScriptedPeer) -> ScriptedSender {
        let (sender, greeting) = ScriptedSender::connect(roles::TENANT.loopback, peer.addr()).await.expect("connect");
        assert_eq!(greeting.code, 220, "{greeting:?}");
        sender
    }

    /// RFC 5321 §4.5.2: a line starting with `.` arrives with its stuffing removed.
    #[tokio::test]
    async fn plain_delivery_lands_in_the_inbox_dot_unstuffed() {
        let mut peer = peer(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).await;
        let mut s = connect(&peer).await;
        let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
        assert!(ehlo.lines.iter().any(|l| l == "PIPELINING"), "{ehlo:?}");
        assert!(ehlo.lines.iter().any(|l| l == "8BITMIME"), "{ehlo:?}");
        assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS" || l == "CHUNKING"), "{ehlo:?}");
        let reply =
            s.transaction("a@tenant.test", &["b@partner.test"], "Subject: hi\n\n.hidden\nbody\n").await.unwrap();
        assert_eq!(reply.code, 250, "{reply:?}");
        assert_eq!(s.command("QUIT").await.unwrap().code, 221);

        let inbox = peer.wait_for_messages(1, WAIT).await;
        assert_eq!(inbox.len(), 1);
        let m = &inbox[0];
        assert_eq!(m.mail_from, "a@tenant.test");
        assert_eq!(m.rcpt_to, ["b@partner.test"]);
        assert_eq!(m.data, b"Subject: hi\r\n\r\n.hidden\r\nbody\r\n");
        assert_eq!(m.tls, None);
        assert_eq!(m.client_ip, roles::TENANT.loopback);
        assert_eq!(m.helo.as_deref(), Some("tenant.mailsim.test"));
        assert_eq!(peer.connections(), 1);
        let t = &peer.transcripts()[0];
        assert!(t.contains(&"C: MAIL FROM:<a@tenant.test>".to_string()), "{t:#?}");
        assert!(t.contains(&"S: 221 2.0.0 Bye".to_string()), "{t:#?}");
        assert_eq!(peer.wait_for_idle(WAIT).await, 0);
        assert_eq!(peer.stop().await, 0);
    }

    /// RFC 2920: commands written in one go are answered in order.
    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order() {
        let peer = peer(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).await;
        let mut s = connect(&peer).await;
        s.send_raw(b"EHLO a.test\r\nMAIL FROM:<>\r\nRCPT TO:<x@partner.test>\r\nDATA\r\n").await.unwrap();
        let codes = [
            s.read_reply().await.unwrap().code,
            s.read_reply().await.unwrap().code,
            s.read_reply().await.unwrap().code,
            s.read_reply().await.unwrap().code,
        ];
        assert_eq!(codes, [250, 250, 250, 354]);
        s.send_raw(b"x\r\n.\r\nBDAT 10\r\n").await.unwrap();
        assert_eq!(s.read_reply().await.unwrap().code, 250);
        assert_eq!(s.read_reply().await.unwrap().code, 500);
        assert_eq!(peer.inbox()[0].mail_from, "");
    }

    /// RFC 3207 §4: a server that requires TLS answers 530 before it; EHLO is forgotten after it.
    #[tokio::test]
    async fn require_starttls_refuses_plaintext_mail_then_records_tls_and_client_cert() {
        let pki = TestPki::default_shared();
        let peer = peer(PeerScript {
            starttls: StartTls::Require,
            client_cert: ClientCertRequest::Request,
            ..PeerScript::new("mx.partner.test")
        })
        .await;
        let mut s = connect(&peer).await;
        let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
        assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
        let refused = s.command("MAIL FROM:<a@tenant.test>").await.unwrap();
        assert_eq!(refused.last_line(), "530 5.7.0 Must issue a STARTTLS command first");
        assert_eq!(s.starttls(&TlsOptions::with_cert(&pki.gateway), "mx.partner.test").await.unwrap().code, 220);
        assert_eq!(s.command("MAIL FROM:<a@tenant.test>").await.unwrap().code, 503, "EHLO forgotten after TLS");
        let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
        assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
        let reply = s.transaction("a@tenant.test", &["b@partner.test"], "hello\n").await.unwrap();
        assert_eq!(reply.code, 250, "{reply:?}");

        let inbox = peer.wait_for_messages(1, WAIT).await;
        let tls = inbox[0].tls.as_ref().expect("delivered over TLS");
        assert_eq!(tls.version, "TLS1_3");
        assert!(!tls.cipher.is_empty());
        assert_eq!(tls.client_cert_subject.as_deref(), Some("CN=mail.gateway.test"));
        assert_eq!(tls.sni.as_deref(), Some("mx.partner.test"));
    }

    /// The scripted certificates fail a verifying client for the reason their name says.
    #[tokio::test]
    async fn scripted_certificates_fail_verification_for_their_own_reason() {
        let pki = TestPki::default_shared();
        let roots = TlsOptions { roots: Some(vec![pki.ca.cert_der().clone()]), ..TlsOptions::default() };
        let peer = peer(PeerScript::new("mx.partner.test")).await;
        for (cert, expect) in [
            (PeerCert::RightName, None),
            (PeerCert::WrongName, Some("not valid for name")),
            (PeerCert::Expired, Some("expired")),
            (PeerCert::Untrusted, Some("UnknownIssuer")),
        ] {
            peer.set_script(PeerScript { cert: cert.clone(), ..PeerScript::new("mx.partner.test") }).unwrap();
            let mut s = connect(&peer).await;
            s.command("EHLO tenant.mailsim.test").await.unwrap();
            let result = s.starttls(&roots, "mx.partner.test").await;
            match (expect, result) {
                (None, Ok(r)) => assert_eq!(r.code, 220),
                (Some(word), Err(e)) => assert!(e.to_string().contains(word), "{cert:?}: {e}"),
                (expect, got) => panic!("{cert:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    /// One refused recipient of two: the message is accepted for the other only.
    #[tokio::test]
    async fn per_recipient_550_refuses_only_that_recipient() {
        let mut script = PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") };
        script.on_rcpt_for.insert("Gone@partner.test".into(), Behaviour::reply(550, "5.1.1 User unknown"));
        let peer = peer(script).await;
        let mut s = connect(&peer).await;
        let reply = s
            .send_message("tenant.mailsim.test", "a@tenant.test", &["ok@partner.test", "gone@partner.test"], "x\n")
            .await
            .unwrap();
        assert_eq!(reply.code, 250);
        assert!(s.transcript().contains(&"S: 550 5.1.1 User unknown".to_string()), "{:#?}", s.transcript());
        assert_eq!(peer.wait_for_messages(1, WAIT).await[0].rcpt_to, ["ok@partner.test"]);
    }

    /// "4xx first, then accept": the sequence advances across connections.
    #[tokio::test]
    async fn rcpt_sequence_defers_first_connection_and_accepts_the_second() {
        let peer = peer(PeerScript {
            starttls: StartTls::None,
            on_rcpt: Behaviour::Sequence(vec![Behaviour::reply(451, "4.3.0 Try again later"), Behaviour::Accept]),
            ..PeerScript::new("mx.partner.test")
        })
        .await;
        let mut first = connect(&peer).await;
        let reply = first.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await.unwrap();
        assert_eq!(reply.last_line(), "451 4.3.0 Try again later");
        first.command("QUIT").await.unwrap();
        let mut second = connect(&peer).await;
        let reply = second.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await.unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(peer.wait_for_messages(1, WAIT).await.len(), 1);
        assert_eq!(peer.connections(), 2);
    }

    /// A connection dropped after the final dot delivers nothing.
    #[tokio::test]
    async fn drop_at_end_of_data_closes_without_reply_and_keeps_nothing() {
        let peer = peer(PeerScript {
            starttls: StartTls::None,
            on_end_of_data: Behaviour::Drop,
            ..PeerScript::new("mx.partner.test")
        })
        .await;
        let mut s = connect(&peer).await;
        let result = s.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await;
        assert!(matches!(result, Err(crate::sender::SenderError::Closed)), "{result:?}");
        assert_eq!(peer.wait_for_idle(WAIT).await, 0);
        assert!(peer.inbox().is_empty());
        assert!(peer.transcripts()[0].contains(&"! drop".to_string()));
    }

    /// A delay holds the reply back at least that long, then the default reply follows.
    #[tokio::test]
    async fn delay_is_honoured_then_default_reply() {
        let peer = peer(PeerScript {
            starttls: StartTls::None,
            on_mail: Behaviour::Delay(Duration::from_millis(200)),
            ..PeerScript::new("mx.partner.test")
        })
        .await;
        let mut s = connect(&peer).await;
        s.command("EHLO t.test").await.unwrap();
        let started = Instant::now();
        let reply = s.command("MAIL FROM:<a@tenant.test>").await.unwrap();
        let took = started.elapsed();
        assert_eq!(reply.code, 250);
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(5), "{took:?}");
    }

    /// Scripts are data: a changed script applies to the next command, and stop reports leaks.
    #[tokio::test]
    async fn set_script_changes_behaviour_and_stop_reports_open_connections() {
        let mut peer = peer(PeerScript {
            starttls: StartTls::None,
            on_connect: Behaviour::reply(554, "5.7.1 Go away"),
            ..PeerScript::new("mx.partner.test")
        })
        .await;
        let (mut s, greeting) = ScriptedSender::connect(roles::TENANT.loopback, peer.addr()).await.unwrap();
        assert_eq!(greeting.last_line(), "554 5.7.1 Go away");
        assert_eq!(s.command("EHLO t.test").await.unwrap().code, 503);
        peer.set_script(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).unwrap();
        let _open = connect(&peer).await;
        assert_eq!(peer.wait_for_connections(2, WAIT).await, 2);
        assert_eq!(peer.stop().await, 2);
        assert_eq!(peer.left_open_at_stop(), Some(2));
        assert_eq!(peer.open_connections(), 0);
        assert!(peer.transcripts()[1].contains(&"! aborted by stop".to_string()));
    }

    /// RFC 5321 §4.1.1.4: only CRLF.CRLF ends the data; bare LF and `\r.\r` are content.
    /// Oversized messages get 552 and the session goes on.
    #[tokio::test]
    async fn data_end_needs_crlf_dot_crlf_and_size_is_capped() {
        let peer =
            peer(PeerScript { starttls: StartTls::None, max_message_size: 64, ..PeerScript::new("mx.p.test") }).await;
        let mut s = connect(&peer).await;
        s.command("EHLO t.test").await.unwrap();
        s.send_raw(b"MAIL FROM:<a@t.test>\r\nRCPT TO:<b@p.test>\r\nDATA\r\n").await.unwrap();
        for code in [250, 250, 354] {
            assert_eq!(s.read_reply().await.unwrap().code, code);
        }
        s.send_raw(b"one\n.\ntwo\r\n..dot\r\n\r.\r\n.\r\n").await.unwrap();
        assert_eq!(s.read_reply().await.unwrap().code, 250);
        assert_eq!(peer.inbox()[0].data, b"one\n.\ntwo\r\n.dot\r\n\r.\r\n");

        s.send_raw(b"MAIL FROM:<a@t.test> SIZE=65\r\n").await.unwrap();
        assert_eq!(s.read_reply().await.unwrap().code, 552);
        let big = "x".repeat(100);
        let reply = s.transaction("a@t.test", &["b@p.test"], &big).await.unwrap();
        assert_eq!(reply.last_line(), "552 5.3.4 Message size exceeds fixed maximum message size");
        s.send_raw(format!("NOOP {}\r\n", "y".repeat(MAX_COMMAND_LINE)).as_bytes()).await.unwrap();
        assert_eq!(s.read_reply().await.unwrap().code, 500);
        assert!(s.is_closed().await);
        assert_eq!(peer.inbox().len(), 1);
    }

    #[tokio::test]
    async fn non_loopback_bind_is_refused() {
        let err = ScriptedPeer::start("0.0.0.0:0".parse().unwrap(), PeerScript::default()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn sequence_repeats_its_last_entry() {
        let seq = Behaviour::Sequence(vec![Behaviour::reply(451, "4.0.0 a"), Behaviour::Drop]);
        assert_eq!(resolve(&seq, 0), &Behaviour::reply(451, "4.0.0 a"));
        assert_eq!(resolve(&seq, 1), &Behaviour::Drop);
        assert_eq!(resolve(&seq, 7), &Behaviour::Drop);
        assert_eq!(resolve(&Behaviour::Sequence(vec![]), 3), &Behaviour::Accept);
    }

    #[test]
    fn parse_path_rows() {
        assert_eq!(parse_path("FROM:<a@b> SIZE=10", "FROM:"), Some(("a@b".into(), "SIZE=10")));
        assert_eq!(parse_path("from: <>", "FROM:"), Some((String::new(), "")));
        assert_eq!(parse_path("TO:c@d", "TO:"), Some(("c@d".into(), "")));
        assert_eq!(parse_path("TO:<c@d", "TO:"), None);
        assert_eq!(parse_path("FROM <a@b>", "FROM:"), None);
        assert_eq!(parse_path("", "TO:"), None);
    }
}
