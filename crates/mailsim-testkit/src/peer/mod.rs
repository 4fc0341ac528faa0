//! A scripted receiving SMTP server: a gateway's smart host, a partner's MX, an on-premises server.
//!
//! Contract: a [`ScriptedPeer`] listens on one loopback address and answers the mail the tenant
//! delivers as its [`PeerScript`] says: STARTTLS offered, required or absent, the certificate it
//! presents (right name, wrong name, expired, untrusted), whether it asks for a client certificate,
//! and for every stage (connect, EHLO, MAIL, RCPT, DATA, end of data) a [`Behaviour`]: the default
//! reply, a scripted reply, a delay, a dropped connection, or a sequence of those that advances
//! each time the stage is reached, across connections. Accepted messages land in an inbox, numbered
//! from 1, that keeps the newest [`InboxOptions::cap`] in memory (older ones are dropped from memory
//! and counted) and, with [`InboxOptions::dir`], writes each one as `<dir>/<id>.eml`; every
//! connection keeps a `C:`/`S:` transcript. The script is data (serde), so scenario files can
//! build it.
//!
//! Written from scratch on tokio and tokio-rustls: it shares no protocol code with `mailsim-io`
//! (docs/architecture.md habit 11), so a bug in mailsim's SMTP client cannot also hide here. It never
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
//!
//! Rooms: [`script`] (what the peer is told to do, as data), `dialogue` (one connection's SMTP
//! conversation), `tls` (the certificates it presents and the client certificates it accepts),
//! `forward` (relay mode: passing a received message on). This file holds the running peer
//! ([`ScriptedPeer`]), what it shares between connections, and what it records.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::certs::TestPki;

mod dialogue;
pub mod forward;
pub mod script;
mod tls;

pub use forward::{AddressBook, RelayHop, RelayOptions};
pub use script::{Behaviour, ClientCertRequest, MAX_FORWARD_HOPS, PeerCert, PeerScript, StartTls};

use dialogue::serve;
use tls::{PeerPki, server_config};

/// Default message size limit (advertised with `SIZE`): 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Longest command line accepted, CRLF included; longer lines get `500 5.5.2` and a close.
pub const MAX_COMMAND_LINE: usize = 4096;
/// Most recipients accepted in one transaction; more get `452 4.5.3`.
pub const MAX_RECIPIENTS: usize = 1000;
/// The trusted name [`PeerCert::WrongName`] certificates carry.
pub const WRONG_NAME: &str = "mail.wrong.test";
/// Messages a peer keeps in memory unless told otherwise ([`InboxOptions::cap`]).
pub const DEFAULT_INBOX_CAP: usize = 10_000;

/// Where a peer keeps what it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxOptions {
    /// Write every accepted message's content to `<dir>/<id>.eml` (`id` zero-padded to 10 digits).
    pub dir: Option<PathBuf>,
    /// Messages kept in memory; the oldest is dropped (and counted) when a new one would exceed it.
    /// At least 1.
    pub cap: usize,
}

impl Default for InboxOptions {
    fn default() -> Self {
        Self { dir: None, cap: DEFAULT_INBOX_CAP }
    }
}

impl InboxOptions {
    /// The file of message `id` under `dir`.
    pub fn path(dir: &std::path::Path, id: u64) -> PathBuf {
        dir.join(format!("{id:010}.eml"))
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
    /// The peer's number for it: 1 for the first message accepted, then 2, ... (also in its `250`).
    pub id: u64,
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
        Self::start_with_inbox(bind, script, pki, InboxOptions::default()).await
    }

    /// Like [`ScriptedPeer::start_with_pki`], keeping what it receives as `inbox` says (the
    /// directory is created; numbering continues after the messages already in it, so a restarted
    /// world never overwrites what its peers received before).
    pub async fn start_with_inbox(
        bind: SocketAddr,
        script: PeerScript,
        pki: &TestPki,
        inbox: InboxOptions,
    ) -> io::Result<ScriptedPeer> {
        let mut received = 0;
        if let Some(dir) = &inbox.dir {
            std::fs::create_dir_all(dir)?;
            received = stored_ids(dir)?.last().copied().unwrap_or(0);
        }
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
                inbox: VecDeque::new(),
                received,
                dropped: 0,
                inbox_options: InboxOptions { cap: inbox.cap.max(1), ..inbox },
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

    /// Messages accepted so far and still in memory (the newest [`InboxOptions::cap`]), in order.
    pub fn inbox(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().inbox.iter().cloned().collect()
    }

    /// Reads the inbox in place (no copy of every message), in order.
    pub fn with_inbox<R>(&self, read: impl FnOnce(&[ReceivedMessage]) -> R) -> R {
        read(self.shared.lock().inbox.make_contiguous())
    }

    /// Deletes the messages `which` selects from the inbox; returns how many.
    pub fn remove_messages(&self, which: impl Fn(&ReceivedMessage) -> bool) -> usize {
        let mut state = self.shared.lock();
        let before = state.inbox.len();
        state.inbox.retain(|m| !which(m));
        before - state.inbox.len()
    }

    /// Messages accepted since the start (in memory or not).
    pub fn received(&self) -> u64 {
        self.shared.lock().received
    }

    /// Messages dropped from memory to stay within [`InboxOptions::cap`] (still on disk when the
    /// inbox has a directory).
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Where messages are written, if anywhere.
    pub fn inbox_dir(&self) -> Option<PathBuf> {
        self.shared.lock().inbox_options.dir.clone()
    }

    /// Message `id`, if still in memory.
    pub fn message(&self, id: u64) -> Option<ReceivedMessage> {
        self.shared.lock().inbox.iter().find(|m| m.id == id).cloned()
    }

    /// Message `id`'s content as written to the inbox directory (`None` without a directory or
    /// such a file).
    pub fn stored(&self, id: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(dir) = self.inbox_dir() else { return Ok(None) };
        match std::fs::read(InboxOptions::path(&dir, id)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of the messages in the inbox directory, ascending (empty without one).
    pub fn stored_ids(&self) -> io::Result<Vec<u64>> {
        match self.inbox_dir() {
            Some(dir) => stored_ids(&dir),
            None => Ok(Vec::new()),
        }
    }

    /// Waits until at least `n` messages have been accepted or `timeout` passes, and returns the
    /// inbox as it is then (the caller asserts on its length).
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        self.wait_until(timeout, |s| s.lock().received >= n as u64).await;
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
    inbox: VecDeque<ReceivedMessage>,
    /// Messages accepted since the start: the last id given.
    received: u64,
    /// Messages dropped from memory for the cap.
    dropped: u64,
    inbox_options: InboxOptions,
    transcripts: Vec<Vec<String>>,
}

impl State {
    /// Numbers `message`, keeps it within the cap, and says where to write it (if anywhere).
    fn receive(&mut self, mut message: ReceivedMessage) -> (u64, Option<(PathBuf, Vec<u8>)>) {
        self.received += 1;
        message.id = self.received;
        let file = self.inbox_options.dir.as_ref().map(|d| (InboxOptions::path(d, message.id), message.data.clone()));
        while self.inbox.len() >= self.inbox_options.cap {
            self.inbox.pop_front();
            self.dropped += 1;
        }
        self.inbox.push_back(message);
        (self.received, file)
    }
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

/// The ids of the `.eml` files in `dir`, ascending.
fn stored_ids(dir: &std::path::Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".eml")).and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
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

#[cfg(test)]
mod tests;
