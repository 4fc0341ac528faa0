//! The SMTP protocol log in the Exchange layout (exo-semantics §8.3): one CSV line per event of a
//! connection, in `<state-dir>/protocol/RECVyyyymmdd-1.log` (sessions of the tenant endpoint) and
//! `SENDyyyymmdd-1.log` (outbound attempts), with the Exchange header lines once per file.
//!
//! ```text
//! #Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
//! 2026-01-05T10:00:00.123Z,MAILSIM01\Default Frontend,08000C1A2B3C4000,0,127.0.0.1:25,127.0.0.50:40312,+,,
//! 2026-01-05T10:00:00.124Z,MAILSIM01\Default Frontend,08000C1A2B3C4000,1,127.0.0.1:25,127.0.0.50:40312,>,"220 MAILSIM01... ready at Mon, 5 Jan 2026 10:00:00 +0000 [08000C1A2B3C4000]",
//! ```
//!
//! Events: `+` connect, `-` disconnect, `>` sent by the tenant, `<` received by the tenant, `*`
//! information (TLS, certificates, attribution, the address plan). As Exchange does, message
//! content is not logged line by line: a `*` event summarises it (`71 bytes received`). mailsim
//! keeps the content beside the log (`protocol/data/<session>-<sequence>.dat`, bounded) so that
//! `mailsim trace --transcript` can rebuild a session exactly.
//!
//! Recording decides nothing and never fails a session: lines go to a writer thread through a
//! bounded channel (dropped and counted when it is full), file errors are logged, and an
//! in-memory copy of the latest sessions serves tests ([`ProtocolLog::session`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_core::peer::TlsFacts;
use mailsim_core::reply::Reply;
use mailsim_core::session::Action;
use mailsim_core::time::Timestamp;
use rustls_pki_types::CertificateDer;

use crate::clock::SimClock;

/// The `#Fields:` header.
pub const FIELDS: &str =
    "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context";
/// Lines waiting for the writer thread before new ones are dropped.
const CHANNEL_LINES: usize = 8192;
/// Content bytes waiting for the writer thread before new content is not saved.
const CHANNEL_CONTENT_BYTES: usize = 64 << 20;
/// The largest message content kept in `data/`; larger content is summarised only.
pub const MAX_CONTENT: usize = 1 << 20;
/// The largest message content kept in memory (without a directory, content is kept for tests).
const MEMORY_CONTENT: usize = 64 << 10;
/// Sessions kept in memory.
const MEMORY_SESSIONS: usize = 256;
/// Events kept in memory per session.
const MEMORY_LINES: usize = 4096;
/// A logged line (command, reply) is cut after this many characters.
const MAX_DATA: usize = 2000;

/// Which log a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    /// `RECV…log`: sessions of the tenant endpoint.
    Receive,
    /// `SEND…log`: outbound attempts.
    Send,
}

impl LogKind {
    /// File name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            LogKind::Receive => "RECV",
            LogKind::Send => "SEND",
        }
    }

    /// The `#Log-Type:` header value.
    pub fn log_type(self) -> &'static str {
        match self {
            LogKind::Receive => "SMTP Receive Protocol Log",
            LogKind::Send => "SMTP Send Protocol Log",
        }
    }
}

/// The `event` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `+`
    Connect,
    /// `-`
    Disconnect,
    /// `>`: written to the peer (a reply in RECV, a command in SEND).
    Send,
    /// `<`: read from the peer (a command in RECV, a reply in SEND).
    Receive,
    /// `*`
    Info,
}

impl EventKind {
    /// The one-character symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            EventKind::Connect => "+",
            EventKind::Disconnect => "-",
            EventKind::Send => ">",
            EventKind::Receive => "<",
            EventKind::Info => "*",
        }
    }

    fn from_symbol(s: &str) -> Option<Self> {
        Some(match s {
            "+" => EventKind::Connect,
            "-" => EventKind::Disconnect,
            ">" => EventKind::Send,
            "<" => EventKind::Receive,
            "*" => EventKind::Info,
            _ => return None,
        })
    }
}

/// The SEND connector-id of MX delivery without an outbound connector.
pub const NO_CONNECTOR: &str = "Outbound to Internet (no connector)";
/// Context of the `*` event that summarises message content; its data is `DATA` or `BDAT`.
pub const CONTENT_SUFFIX: &str = " bytes received";
/// Context of the `*` event naming the address-plan host of the peer; data is the declared address.
pub const DECLARED_CONTEXT: &str = "Declared address of host ";
/// Context of the SEND `*` event naming the server tried; data is `name [declared ip:port]`.
pub const NEXT_HOP_CONTEXT: &str = "Next hop (declared address)";
/// Context prefix of the `*` event with the negotiated TLS protocol.
pub const TLS_CONTEXT: &str = "TLS protocol ";

/// One line of a protocol log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Which log.
    pub kind: LogKind,
    /// `yyyy-mm-ddThh:mm:ss.fffZ`, simulated time.
    pub date_time: String,
    /// `SERVER\Connector` or the connector's name.
    pub connector: String,
    /// The session id.
    pub session_id: u64,
    /// From 0, +1 per event of the session.
    pub sequence: u64,
    /// `ip:port` of the tenant's side.
    pub local: String,
    /// `ip:port` of the peer.
    pub remote: String,
    /// The event.
    pub event: EventKind,
    /// Protocol text.
    pub data: String,
    /// Extra context.
    pub context: String,
}

impl LogLine {
    /// The CSV line (without line ending).
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(96 + self.data.len() + self.context.len());
        for (i, field) in [
            self.date_time.as_str(),
            self.connector.as_str(),
            &format!("{:016X}", self.session_id),
            &self.sequence.to_string(),
            self.local.as_str(),
            self.remote.as_str(),
            self.event.symbol(),
            self.data.as_str(),
            self.context.as_str(),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            push_csv_field(&mut out, field);
        }
        out
    }

    /// Parses one CSV line of a `kind` log (header lines are not log lines).
    pub fn parse(kind: LogKind, line: &str) -> Result<Self, String> {
        let fields = split_csv(line)?;
        if fields.len() != 9 {
            return Err(format!("expected 9 fields, found {}", fields.len()));
        }
        let mut f = fields.into_iter();
        let mut next = || f.next().unwrap_or_default();
        let date_time = next();
        let connector = next();
        let session = next();
        let session_id = u64::from_str_radix(&session, 16).map_err(|_| format!("bad session-id {session:?}"))?;
        let seq = next();
        let sequence = seq.parse().map_err(|_| format!("bad sequence-number {seq:?}"))?;
        let local = next();
        let remote = next();
        let ev = next();
        let event = EventKind::from_symbol(&ev).ok_or_else(|| format!("bad event {ev:?}"))?;
        Ok(Self {
            kind,
            date_time,
            connector,
            session_id,
            sequence,
            local,
            remote,
            event,
            data: next(),
            context: next(),
        })
    }
}

/// Quotes a field when it holds a comma, a quote or leading/trailing spaces (quotes doubled), as
/// Exchange's CSV writer does. Line breaks never reach a field.
fn push_csv_field(out: &mut String, field: &str) {
    let quote = field.contains([',', '"']) || field.starts_with(' ') || field.ends_with(' ');
    if !quote {
        out.push_str(field);
        return;
    }
    out.push('"');
    for c in field.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Splits one CSV line into fields.
pub fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}

/// The header lines of a new log file.
pub fn header(kind: LogKind, date_time: &str) -> String {
    format!(
        "#Software: Microsoft Exchange Server\r\n#Version: 15.20.0000.000\r\n#Log-Type: {}\r\n#Date: {date_time}\r\n#Fields: {FIELDS}\r\n",
        kind.log_type()
    )
}

/// One session as recorded: its lines in order and the content summarised by its `*` events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lines in sequence order.
    pub lines: Vec<LogLine>,
    /// Message content (wire form, without the final `.` line), by the sequence number of the `*`
    /// event that summarises it.
    pub content: BTreeMap<u64, Vec<u8>>,
}

impl SessionRecord {
    /// RECV or SEND (from the first line).
    pub fn kind(&self) -> Option<LogKind> {
        self.lines.first().map(|l| l.kind)
    }
}

enum Msg {
    Line { kind: LogKind, day: String, date_time: String, csv: String },
    Content { name: String, bytes: Vec<u8> },
    Flush(std::sync::mpsc::Sender<()>),
}

#[derive(Debug, Default)]
struct Memory {
    order: VecDeque<u64>,
    sessions: HashMap<u64, SessionRecord>,
}

impl Memory {
    fn entry(&mut self, id: u64) -> &mut SessionRecord {
        if !self.sessions.contains_key(&id) {
            if self.order.len() >= MEMORY_SESSIONS
                && let Some(old) = self.order.pop_front()
            {
                self.sessions.remove(&old);
            }
            self.order.push_back(id);
        }
        self.sessions.entry(id).or_default()
    }
}

/// The protocol log of one endpoint: the in-memory copy and, with a directory, the writer thread.
#[derive(Debug)]
pub struct ProtocolLog {
    /// A disabled log records nothing (no state directory: the hot path stays free of it).
    enabled: bool,
    clock: Arc<SimClock>,
    memory: Mutex<Memory>,
    writer: Option<SyncSender<Msg>>,
    dir: Option<PathBuf>,
    queued_content: Arc<AtomicUsize>,
    dropped: AtomicU64,
    send_ids: AtomicU64,
    open_sends: Mutex<HashMap<SocketAddr, OpenSend>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl ProtocolLog {
    /// Kept in memory only (the latest sessions).
    pub fn in_memory(clock: Arc<SimClock>) -> Self {
        let secs = (clock.now().as_millis() / 1000) as u64 & 0xFFFF_FFFF;
        Self {
            enabled: true,
            clock,
            memory: Mutex::default(),
            writer: None,
            dir: None,
            queued_content: Arc::default(),
            dropped: AtomicU64::new(0),
            // Outbound session ids: bit 59 set, so they never meet the listener's ids.
            send_ids: AtomicU64::new(0x0800_0000_0000_0000 | (secs << 12)),
            open_sends: Mutex::default(),
        }
    }

    /// A log that records nothing, for endpoints without a state directory.
    pub fn disabled(clock: Arc<SimClock>) -> Self {
        Self { enabled: false, ..Self::in_memory(clock) }
    }

    /// Also appended to files under `dir` (`<state-dir>/protocol`). A directory that cannot be
    /// created is logged and the log stays in memory.
    pub fn with_dir(dir: PathBuf, clock: Arc<SimClock>) -> Self {
        let mut log = Self::in_memory(clock);
        if let Err(e) = std::fs::create_dir_all(dir.join("data")) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the protocol log directory; keeping it in memory only");
            return log;
        }
        let (tx, rx) = sync_channel(CHANNEL_LINES);
        let thread_dir = dir.clone();
        let queued = log.queued_content.clone();
        match std::thread::Builder::new().name("protocol-log".into()).spawn(move || writer(thread_dir, rx, queued)) {
            Ok(_) => {
                log.writer = Some(tx);
                log.dir = Some(dir);
            }
            Err(e) => tracing::error!(error = %e, "cannot start the protocol log writer; keeping it in memory only"),
        }
        log
    }

    /// Whether anything is recorded.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The directory the files go to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Now, in simulated time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A fresh session id for an outbound connection.
    pub fn next_send_id(&self) -> u64 {
        self.send_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The in-memory copy of one session (the latest sessions only).
    pub fn session(&self, id: u64) -> Option<SessionRecord> {
        self.memory.lock().expect("protocol log lock").sessions.get(&id).cloned()
    }

    /// Ids of the sessions kept in memory, oldest first.
    pub fn session_ids(&self) -> Vec<u64> {
        self.memory.lock().expect("protocol log lock").order.iter().copied().collect()
    }

    /// Waits (at most five seconds) until everything recorded so far is in the files.
    pub fn flush(&self) {
        let Some(writer) = &self.writer else { return };
        let (tx, rx) = std::sync::mpsc::channel();
        if writer.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }

    fn record(&self, line: LogLine) {
        if !self.enabled {
            return;
        }
        if let Some(writer) = &self.writer {
            let day = line.date_time.get(..10).unwrap_or("1970-01-01").replace('-', "");
            let msg = Msg::Line { kind: line.kind, day, date_time: line.date_time.clone(), csv: line.to_csv() };
            if let Err(TrySendError::Full(_)) = writer.try_send(msg) {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "protocol log writer is behind; lines dropped");
                }
            }
        }
        let mut memory = self.memory.lock().expect("protocol log lock");
        let session = memory.entry(line.session_id);
        if session.lines.len() < MEMORY_LINES {
            session.lines.push(line);
        }
    }

    fn record_content(&self, id: u64, seq: u64, content: Vec<u8>) {
        if !self.enabled {
            return;
        }
        if let Some(writer) = &self.writer {
            let len = content.len();
            if self.queued_content.fetch_add(len, Ordering::Relaxed) + len <= CHANNEL_CONTENT_BYTES {
                let msg = Msg::Content { name: format!("{id:016X}-{seq}.dat"), bytes: content.clone() };
                if writer.try_send(msg).is_err() {
                    self.queued_content.fetch_sub(len, Ordering::Relaxed);
                }
            } else {
                self.queued_content.fetch_sub(len, Ordering::Relaxed);
            }
        }
        let mut memory = self.memory.lock().expect("protocol log lock");
        let session = memory.entry(id);
        if session.content.values().map(Vec::len).sum::<usize>() + content.len() <= MEMORY_CONTENT * 4 {
            session.content.insert(seq, content);
        }
    }

    /// A session of the tenant endpoint `server_name`; its connector-id starts as
    /// `SERVER\Default Frontend` and becomes the inbound connector's name once one is attributed.
    pub fn receive_session(
        self: &Arc<Self>,
        session_id: u64,
        server_name: &str,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> SessionLog {
        let server = server_name.split('.').next().unwrap_or_default();
        let connector = format!("{server}\\Default Frontend");
        SessionLog::new(self.clone(), LogKind::Receive, session_id, connector, local.to_string(), remote.to_string())
    }

    /// Records the part of an outbound conversation the client's transcript holds (see
    /// [`SendAttempt`]). A connection left open for the next message keeps its session id: the
    /// next part recorded for the same local socket continues the session.
    pub fn send_attempt(self: &Arc<Self>, attempt: SendAttempt<'_>) {
        let fresh = attempt.transcript.lines.first().is_some_and(|l| l.text.starts_with("Trying "));
        let resumed = attempt
            .local
            .and_then(|local| self.open_sends.lock().expect("protocol log lock").remove(&local))
            .filter(|_| !fresh);
        let remote = attempt.remote.to_string();
        let local = attempt.local.map_or_else(|| format!("{}:0", attempt.source_ip), |l| l.to_string());
        let connector = attempt.connector.unwrap_or(NO_CONNECTOR).to_string();
        let (id, started) = resumed.as_ref().map_or((self.next_send_id(), attempt.started), |r| (r.id, r.started));
        let mut log = SessionLog::new(self.clone(), LogKind::Send, id, connector, local, remote);
        log.closed = true; // the disconnect comes from the transcript, not from dropping `log`
        let mut tls_logged = resumed.as_ref().is_some_and(|r| r.tls_logged);
        if let Some(r) = &resumed {
            log.seq = r.next_seq;
        }
        let at = |d: Duration| started + d;
        let mut in_body = false;
        let mut body_bytes = 0usize;
        let mut connected = resumed.is_some();
        let mut disconnected = false;
        let mut last_at = attempt.started;
        for line in &attempt.transcript.lines {
            let now = at(line.at).max(last_at);
            last_at = now;
            match line.dir {
                crate::client::Direction::Info => {
                    let text = line.text.as_str();
                    if text.starts_with("Trying ") {
                        log.event_at(now, EventKind::Info, "", "attempting to connect");
                        log.event_at(
                            now,
                            EventKind::Info,
                            &format!("{} [{}]", attempt.server_name, attempt.declared),
                            NEXT_HOP_CONTEXT,
                        );
                    } else if text.starts_with("Connected to ") {
                        connected = true;
                        log.event_at(now, EventKind::Connect, "", "");
                    } else if text.starts_with("TLS started") {
                        if let Some(tls) = attempt.tls {
                            tls_logged = true;
                            log.send_tls_events(now, tls);
                        }
                    } else if text.starts_with("Connection closed") {
                        disconnected = true;
                        log.event_at(now, EventKind::Disconnect, "", "Local");
                    } else if let Some(rest) = text.strip_prefix('[')
                        && let Some((_, bytes)) = rest.split_once("; ")
                        && let Some(n) = bytes.strip_suffix(" bytes in all]")
                    {
                        body_bytes = n.parse().unwrap_or(body_bytes);
                    }
                }
                crate::client::Direction::Sent if in_body => {
                    if line.text == "." {
                        in_body = false;
                        log.event_at(
                            now,
                            EventKind::Info,
                            attempt.message_id,
                            &format!("sending message; {body_bytes} bytes"),
                        );
                    } else {
                        body_bytes += line.text.len() + 2;
                    }
                }
                crate::client::Direction::Sent => {
                    if line.tls
                        && !tls_logged
                        && let Some(tls) = attempt.tls
                    {
                        tls_logged = true;
                        log.send_tls_events(now, tls);
                    }
                    log.event_at(now, EventKind::Send, &line.text, "");
                }
                crate::client::Direction::Received => {
                    log.event_at(now, EventKind::Receive, &line.text, "");
                    if line.text.starts_with("354") {
                        in_body = true;
                        body_bytes = 0;
                    }
                }
            }
        }
        if let Some(outcome) = attempt.outcome {
            log.event_at(last_at, EventKind::Info, outcome, "Attempt failed");
        }
        if connected && !disconnected && !attempt.still_open {
            disconnected = true;
            log.event_at(last_at, EventKind::Disconnect, "", "Local");
        }
        if let Some(local) = attempt.local
            && connected
            && !disconnected
        {
            let mut open = self.open_sends.lock().expect("protocol log lock");
            if open.len() >= MAX_OPEN_SENDS
                && let Some(k) = open.keys().next().copied()
            {
                open.remove(&k);
            }
            open.insert(local, OpenSend { id, started, next_seq: log.seq, tls_logged });
        }
    }
}

/// An outbound connection left open between transactions.
#[derive(Clone, Copy, Debug)]
struct OpenSend {
    id: u64,
    started: Timestamp,
    next_seq: u64,
    tls_logged: bool,
}

/// Outbound connections remembered as open.
const MAX_OPEN_SENDS: usize = 4096;

/// One outbound attempt (one connection), for [`ProtocolLog::send_attempt`].
#[derive(Debug)]
pub struct SendAttempt<'a> {
    /// The outbound connector's name; `None` for MX delivery without a connector.
    pub connector: Option<&'a str>,
    /// Simulated time when the attempt started; transcript offsets are added to it.
    pub started: Timestamp,
    /// The client's transcript.
    pub transcript: &'a crate::client::Transcript,
    /// The bound local socket, once connected.
    pub local: Option<SocketAddr>,
    /// The tenant's source address (used when the connection never opened).
    pub source_ip: std::net::IpAddr,
    /// The socket connected to (loopback).
    pub remote: SocketAddr,
    /// The server name tried.
    pub server_name: &'a str,
    /// The declared `ip:port` of the server tried.
    pub declared: &'a str,
    /// TLS facts, when STARTTLS succeeded.
    pub tls: Option<&'a crate::client::TlsInfo>,
    /// The message's Message-ID.
    pub message_id: &'a str,
    /// Why the attempt ended without a transaction, when it did.
    pub outcome: Option<&'a str>,
    /// The connection stays open for another transaction.
    pub still_open: bool,
}

/// Where content is going while the client sends it.
#[derive(Debug)]
enum Framing {
    Command,
    /// After a 354: lines up to `.`.
    Data {
        bytes: usize,
        line_start: bool,
        prev_crlf: bool,
        last: u8,
        line: Vec<u8>,
    },
    /// A BDAT chunk.
    Bdat {
        remaining: usize,
        bytes: usize,
    },
}

/// The protocol log of one connection. Logs `-` on drop if the disconnect was not logged.
#[derive(Debug)]
pub struct SessionLog {
    log: Arc<ProtocolLog>,
    kind: LogKind,
    id: u64,
    seq: u64,
    connector: String,
    local: String,
    remote: String,
    framing: Framing,
    partial: Vec<u8>,
    content: Option<Vec<u8>>,
    limit: usize,
    closed: bool,
}

impl SessionLog {
    fn new(log: Arc<ProtocolLog>, kind: LogKind, id: u64, connector: String, local: String, remote: String) -> Self {
        Self {
            log,
            kind,
            id,
            seq: 0,
            connector,
            local,
            remote,
            framing: Framing::Command,
            partial: Vec::new(),
            content: None,
            limit: 0,
            closed: false,
        }
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records one event now; returns its sequence number.
    pub fn event(&mut self, event: EventKind, data: &str, context: &str) -> u64 {
        let now = self.log.now();
        self.event_at(now, event, data, context)
    }

    fn event_at(&mut self, at: Timestamp, event: EventKind, data: &str, context: &str) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        if !self.log.enabled {
            return seq;
        }
        self.log.record(LogLine {
            kind: self.kind,
            date_time: at.iso8601(),
            connector: self.connector.clone(),
            session_id: self.id,
            sequence: seq,
            local: self.local.clone(),
            remote: self.remote.clone(),
            event,
            data: clean(data),
            context: clean(context),
        });
        seq
    }

    /// `+`, and a `*` with the peer's address-plan name and declared address when known.
    pub fn connected(&mut self, plan_host: Option<(&str, std::net::IpAddr)>) {
        self.event(EventKind::Connect, "", "");
        if let Some((name, declared)) = plan_host {
            self.event(EventKind::Info, &declared.to_string(), &format!("{DECLARED_CONTEXT}{name}"));
        }
    }

    /// `-` with `Local` (the tenant closed) or `Remote` (the peer did); only once.
    pub fn disconnected(&mut self, context: &str) {
        if !self.closed {
            self.closed = true;
            self.event(EventKind::Disconnect, "", context);
        }
    }

    /// Any `*` line.
    pub fn info(&mut self, data: &str, context: &str) {
        self.event(EventKind::Info, data, context);
    }

    /// A reply the tenant wrote on its own (greeting, timeout, shutdown): `>` per line.
    pub fn replied(&mut self, reply: &Reply) {
        for line in reply.to_wire().split_terminator("\r\n") {
            self.event(EventKind::Send, line, "");
        }
    }

    /// Bytes the session consumed and the actions it returned for them: `<` per command line,
    /// each followed by its reply; content summarised by one `*` event; acceptance and refusal as
    /// `*` events. Replies left over (a second reply, a refusal before a BDAT chunk) follow.
    pub fn input(&mut self, consumed: &[u8], actions: &[Action]) {
        let mut actions = actions.iter();
        let mut rest = consumed;
        while !rest.is_empty() {
            match &mut self.framing {
                Framing::Command => {
                    let (line, done) = match rest.iter().position(|&b| b == b'\n') {
                        Some(lf) => (&rest[..=lf], true),
                        None => (rest, false),
                    };
                    rest = &rest[line.len()..];
                    let room = (MAX_DATA + 2).saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(&line[..line.len().min(room)]);
                    if !done {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&self.partial).trim_end_matches(['\r', '\n']).to_string();
                    self.partial.clear();
                    self.event(EventKind::Receive, &text, "");
                    if let Some(size) = bdat_size(&text) {
                        self.framing = Framing::Bdat { remaining: size, bytes: size };
                        self.limit = self.content_limit();
                        self.content = (size <= self.limit).then(|| Vec::with_capacity(size.min(64 << 10)));
                        if size == 0 {
                            self.end_content("BDAT", 0, &mut actions);
                        }
                        continue;
                    }
                    self.next_reply(&mut actions);
                }
                Framing::Data { bytes, line_start, prev_crlf, last, line } => {
                    let (chunk, done) = match rest.iter().position(|&b| b == b'\n') {
                        Some(lf) => (&rest[..=lf], true),
                        None => (rest, false),
                    };
                    rest = &rest[chunk.len()..];
                    // The end is a line "." after a line that ended in CRLF (RFC 5321 §4.1.1.4);
                    // remember just enough of the current line to tell.
                    if line.len() < 3 {
                        line.extend_from_slice(&chunk[..chunk.len().min(3 - line.len())]);
                    }
                    let ends_crlf = chunk.ends_with(b"\r\n") || (chunk == b"\n" && *last == b'\r');
                    *last = chunk[chunk.len() - 1];
                    if !done {
                        *line_start = false;
                        *bytes += chunk.len();
                        self.push_content(chunk);
                        continue;
                    }
                    let whole_line_is_dot = *line_start && line.as_slice() == b".\r\n" && *prev_crlf;
                    if whole_line_is_dot {
                        let n = *bytes;
                        self.end_content("DATA", n, &mut actions);
                        continue;
                    }
                    *bytes += chunk.len();
                    *prev_crlf = ends_crlf;
                    *line_start = true;
                    line.clear();
                    self.push_content(chunk);
                }
                Framing::Bdat { remaining, bytes } => {
                    let take = (*remaining).min(rest.len());
                    *remaining -= take;
                    let (done, n) = (*remaining == 0, *bytes);
                    self.push_content(&rest[..take]);
                    rest = &rest[take..];
                    if done {
                        self.end_content("BDAT", n, &mut actions);
                    }
                }
            }
        }
        for action in actions {
            self.action(action);
        }
    }

    /// Content kept beside the log: up to [`MAX_CONTENT`] with a directory, less in memory only.
    fn content_limit(&self) -> usize {
        if self.log.dir.is_some() { MAX_CONTENT } else { MEMORY_CONTENT }
    }

    /// Keeps content bytes; content over the limit is not kept at all (never a truncated copy).
    fn push_content(&mut self, bytes: &[u8]) {
        if !self.log.enabled {
            self.content = None;
            return;
        }
        if let Some(c) = &mut self.content {
            if c.len() + bytes.len() <= self.limit {
                c.extend_from_slice(bytes);
            } else {
                self.content = None;
            }
        }
    }

    fn end_content(&mut self, verb: &str, bytes: usize, actions: &mut std::slice::Iter<'_, Action>) {
        self.framing = Framing::Command;
        let seq = self.event(EventKind::Info, verb, &format!("{bytes}{CONTENT_SUFFIX}"));
        if let Some(content) = self.content.take() {
            self.log.record_content(self.id, seq, content);
        }
        self.next_reply(actions);
    }

    /// Logs actions up to and including the next reply.
    fn next_reply(&mut self, actions: &mut std::slice::Iter<'_, Action>) {
        for action in actions.by_ref() {
            if self.action(action) {
                return;
            }
        }
    }

    /// Logs one action; true when it was a reply.
    fn action(&mut self, action: &Action) -> bool {
        match action {
            Action::Reply(reply) => {
                for line in reply.to_wire().split_terminator("\r\n") {
                    self.event(EventKind::Send, line, "");
                }
                if reply.code.get() == 354 {
                    self.framing =
                        Framing::Data { bytes: 0, line_start: true, prev_crlf: true, last: b'\n', line: Vec::new() };
                    self.content = Some(Vec::new());
                    self.limit = self.content_limit();
                }
                true
            }
            Action::Accept(message) => {
                if let Some(connector) = message.verdict.connector() {
                    self.attributed(connector);
                }
                self.event(
                    EventKind::Info,
                    &message.message_id,
                    &format!("receiving message; InternalId={} queued", message.internal_id),
                );
                false
            }
            Action::Refused(refusal) => {
                if let Some(connector) = refusal.rejection.as_ref().and_then(|r| r.connector.as_deref()) {
                    self.attributed(connector);
                }
                let reason = refusal.rejection.as_ref().map_or("", |r| r.reason.as_str());
                self.event(EventKind::Info, reason, &format!("Rejected at {}", refusal.stage.command()));
                false
            }
            Action::StartTls | Action::Close => false,
        }
    }

    fn attributed(&mut self, connector: &str) {
        if self.connector != connector {
            self.connector = connector.to_string();
            self.event(EventKind::Info, connector, "Inbound connector attributed");
        }
    }

    /// The STARTTLS handshake of the tenant endpoint succeeded: the certificate it sent, the
    /// protocol and cipher, and the client's certificate if one was presented.
    pub fn tls_established(
        &mut self,
        facts: &TlsFacts,
        own: Option<&CertificateDer<'_>>,
        peer_chain: Option<&[CertificateDer<'_>]>,
    ) {
        if let Some(cert) = own {
            self.info("", "Sending certificate");
            self.cert_events(cert);
        }
        self.info("", &format!("{TLS_CONTEXT}SP_PROT_{}_SERVER negotiated; cipher {}", facts.version, facts.cipher));
        if let Some(cert) = peer_chain.and_then(|c| c.first()) {
            self.info("", "Received certificate");
            self.cert_events(cert);
            if let Some(client) = &facts.client_cert {
                self.info(&format!("{:?}", client.trust), "Certificate validation");
            }
        }
    }

    /// The handshake failed.
    pub fn tls_failed(&mut self, error: &str) {
        self.info(error, "TLS negotiation failed");
    }

    fn send_tls_events(&mut self, at: Timestamp, tls: &crate::client::TlsInfo) {
        // rustls names versions `TLSv1.3`; Exchange's SSPI names are SP_PROT_TLS1_3_CLIENT.
        let version = tls.version.replace("TLSv", "TLS").replace('.', "_");
        self.event_at(
            at,
            EventKind::Info,
            "",
            &format!("{TLS_CONTEXT}SP_PROT_{version}_CLIENT negotiated; cipher {}", tls.cipher),
        );
        if let Some(cert) = tls.peer_certificates.first() {
            self.event_at(at, EventKind::Info, "", "Remote certificate");
            for (data, context) in cert_fields(cert) {
                self.event_at(at, EventKind::Info, &data, context);
            }
        }
    }

    fn cert_events(&mut self, cert: &CertificateDer<'_>) {
        for (data, context) in cert_fields(cert) {
            self.info(&data, context);
        }
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        if !self.closed && self.kind == LogKind::Receive {
            self.disconnected("Local");
        }
    }
}

/// Subject, issuer, serial number, SHA-1 thumbprint (as Exchange shows certificates) and
/// alternate names of a DER certificate.
pub fn cert_fields(cert: &CertificateDer<'_>) -> Vec<(String, &'static str)> {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let thumbprint = hex(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert).as_ref());
    let mut out = Vec::new();
    match x509_parser::parse_x509_certificate(cert) {
        Ok((_, parsed)) => {
            out.push((parsed.subject().to_string(), "Certificate subject"));
            out.push((parsed.issuer().to_string(), "Certificate issuer name"));
            out.push((hex(parsed.raw_serial()), "Certificate serial number"));
            out.push((thumbprint, "Certificate thumbprint"));
            if let Ok(Some(san)) = parsed.subject_alternative_name() {
                let names: Vec<String> = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_string()),
                        _ => None,
                    })
                    .collect();
                if !names.is_empty() {
                    out.push((names.join(";"), "Certificate alternate names"));
                }
            }
        }
        Err(_) => out.push((thumbprint, "Certificate thumbprint")),
    }
    out
}

/// `BDAT <size> [LAST]` → size.
fn bdat_size(line: &str) -> Option<usize> {
    let mut words = line.split_ascii_whitespace();
    let verb = words.next()?;
    if !verb.eq_ignore_ascii_case("BDAT") {
        return None;
    }
    let size = words.next()?.parse().ok()?;
    match words.next() {
        None => Some(size),
        Some(w) if w.eq_ignore_ascii_case("LAST") && words.next().is_none() => Some(size),
        _ => None,
    }
}

/// Field text: no line breaks or other control characters, bounded length.
fn clean(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DATA).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MAX_DATA).is_some() {
        out.push_str("...");
    }
    out
}

fn writer(dir: PathBuf, rx: Receiver<Msg>, queued: Arc<AtomicUsize>) {
    let mut files: HashMap<LogKind, (String, BufWriter<File>)> = HashMap::new();
    let mut failed = false;
    let mut handle = |msg: Msg, files: &mut HashMap<LogKind, (String, BufWriter<File>)>| match msg {
        Msg::Line { kind, day, date_time, csv } => {
            if files.get(&kind).is_none_or(|(d, _)| *d != day) {
                files.remove(&kind);
                let path = dir.join(format!("{}{day}-1.log", kind.prefix()));
                let opened = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|f| {
                    let fresh = f.metadata()?.len() == 0;
                    let mut w = BufWriter::new(f);
                    if fresh {
                        w.write_all(header(kind, &date_time).as_bytes())?;
                    }
                    Ok(w)
                });
                match opened {
                    Ok(w) => {
                        files.insert(kind, (day, w));
                    }
                    Err(e) => {
                        if !failed {
                            tracing::error!(path = %path.display(), error = %e, "cannot write the protocol log");
                            failed = true;
                        }
                        return;
                    }
                }
            }
            if let Some((_, w)) = files.get_mut(&kind)
                && let Err(e) = w.write_all(csv.as_bytes()).and_then(|_| w.write_all(b"\r\n"))
                && !failed
            {
                tracing::error!(error = %e, "cannot append to the protocol log");
                failed = true;
            }
        }
        Msg::Content { name, bytes } => {
            queued.fetch_sub(bytes.len(), Ordering::Relaxed);
            let path = dir.join("data").join(name);
            if let Err(e) = std::fs::write(&path, &bytes) {
                tracing::error!(path = %path.display(), error = %e, "cannot write message content beside the protocol log");
            }
        }
        Msg::Flush(done) => {
            for (_, w) in files.values_mut() {
                let _ = w.flush();
            }
            let _ = done.send(());
        }
    };
    while let Ok(msg) = rx.recv() {
        handle(msg, &mut files);
        while let Ok(msg) = rx.try_recv() {
            handle(msg, &mut files);
        }
        for (_, w) in files.values_mut() {
            if let Err(e) = w.flush() {
                tracing::error!(error = %e, "cannot flush the protocol log");
            }
        }
    }
}

/// Reads one session back from `<dir>` (the `protocol` directory): its lines from every RECV and
/// SEND file, and the content saved beside them.
pub fn read_session(dir: &Path, session_id: u64) -> std::io::Result<Option<SessionRecord>> {
    let mut record = SessionRecord::default();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    let id = format!("{session_id:016X}");
    for name in names {
        let kind = if name.starts_with("RECV") {
            LogKind::Receive
        } else if name.starts_with("SEND") {
            LogKind::Send
        } else {
            continue;
        };
        let text = std::fs::read_to_string(dir.join(&name))?;
        for line in text.lines().filter(|l| !l.starts_with('#') && l.contains(&id)) {
            if let Ok(parsed) = LogLine::parse(kind, line)
                && parsed.session_id == session_id
            {
                record.lines.push(parsed);
            }
        }
    }
    if record.lines.is_empty() {
        return Ok(None);
    }
    record.lines.sort_by_key(|l| l.sequence);
    for line in &record.lines {
        if line.event == EventKind::Info && line.context.ends_with(CONTENT_SUFFIX) {
            let path = dir.join("data").join(format!("{id}-{}.dat", line.sequence));
            if let Ok(bytes) = std::fs::read(path) {
                record.content.insert(line.sequence, bytes);
            }
        }
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let line = LogLine {
            kind: LogKind::Receive,
            date_time: "2026-01-05T10:00:00.123Z".into(),
            connector: "MAILSIM01\\Default Frontend".into(),
            session_id: 0x08DD34FA3086278D,
            sequence: 3,
            local: "127.0.0.1:25".into(),
            remote: "127.0.0.50:40000".into(),
            event: EventKind::Send,
            data: "220 host ready at Mon, 5 Jan 2026 \"x\"".into(),
            context: String::new(),
        };
        let csv = line.to_csv();
        assert!(csv.contains(",08DD34FA3086278D,3,"));
        assert!(csv.contains("\"220 host ready at Mon, 5 Jan 2026 \"\"x\"\"\""));
        assert_eq!(LogLine::parse(LogKind::Receive, &csv).unwrap(), line);
    }

    #[test]
    fn bdat_sizes() {
        assert_eq!(bdat_size("BDAT 12 LAST"), Some(12));
        assert_eq!(bdat_size("bdat 0"), Some(0));
        assert_eq!(bdat_size("BDAT x"), None);
        assert_eq!(bdat_size("DATA"), None);
    }
}
