//! The SMTP protocol log in the Exchange layout (exo-behaviour §8.3): one CSV line per event of a
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
//! content is not logged line by line: a `*` event summarises it (`71 bytes received` in RECV,
//! `sending message; 71 bytes` in SEND). mailsim keeps the content beside the log, appended to one
//! file, `protocol/content.dat` (bounded per message; in SEND when the client's transcript holds
//! all of it), so that `mailsim trace --transcript` can rebuild a session exactly. Each record is a
//! line `<session>-<sequence> <length>\n`, the content, and `\n`: one append per message instead of
//! one file per message (creating a file per message cost more than the rest of the durable path).
//!
//! The log frames nothing and parses no prose: the session reports what it framed
//! (`core::session::Action::Framed`: command lines, content blocks) in order with its replies, and
//! the outbound client keeps a typed transcript (`client::Event`); this module only writes those
//! events in the Exchange layout, with the wording of the contexts typed in [`Context`]. Reading a
//! session back ([`read_session`], [`SessionRecord::events`]) gives typed events again, for
//! `mailsim trace --transcript`.
//!
//! Recording decides nothing and never fails a session: with files, each line is formatted once,
//! straight into its CSV form, and the lines of one input are appended together to the outbox of
//! their file, which a writer thread empties into the file every 2 ms (one `write` per file,
//! however many sessions wrote); what does not fit the outbox is dropped and counted; file errors
//! are logged. Nothing is kept in memory then: [`ProtocolLog::session`] reads a session back from
//! the files. A log without files ([`ProtocolLog::in_memory`]) keeps the latest sessions in memory
//! instead.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mailsim_core::peer::TlsFacts;
use mailsim_core::reply::Reply;
use mailsim_core::session::{Action, ContentVerb, Framed};
use mailsim_core::time::Timestamp;
use rustls_pki_types::CertificateDer;

use crate::client::Event;
use crate::clock::SimClock;

/// The `#Fields:` header.
pub const FIELDS: &str =
    "date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context";
/// Line bytes waiting for the writer thread before new lines are dropped.
const OUTBOX_LINE_BYTES: usize = 8 << 20;
/// Content bytes waiting for the writer thread before new content is not saved.
const OUTBOX_CONTENT_BYTES: usize = 64 << 20;
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
/// The context of the `*` events that `trace --transcript` reads back, typed: the one place their
/// wording lives, written by [`SessionLog`] and parsed by [`SessionRecord::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Context {
    /// RECV: a content block was read (`N bytes received`); data is the verb, `DATA` or `BDAT`.
    ContentReceived {
        /// Octets of content in wire form.
        bytes: usize,
    },
    /// SEND: the message content was sent (`sending message; N bytes`); data is the Message-ID.
    ContentSent {
        /// Octets of content in wire form.
        bytes: usize,
    },
    /// RECV: the peer is this address-plan host (`Declared address of host NAME`); data is its
    /// declared address.
    DeclaredHost {
        /// The host's name in the address plan.
        name: String,
    },
    /// SEND: the server tried (`Next hop (declared address)`); data is `name [declared ip:port]`.
    NextHop,
    /// SEND: a connection is being opened.
    AttemptingToConnect,
    /// TLS was negotiated (`TLS protocol SP_PROT_TLS1_3_SERVER negotiated; cipher C`).
    TlsNegotiated {
        /// The SSPI protocol name, e.g. `SP_PROT_TLS1_3_SERVER`.
        protocol: String,
        /// The cipher suite.
        cipher: String,
    },
    /// The TLS handshake failed; data is the error.
    TlsFailed,
    /// Any other context (certificates, attribution, acceptance, refusal), as written.
    Other(String),
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Context::ContentReceived { bytes } => write!(f, "{bytes} bytes received"),
            Context::ContentSent { bytes } => write!(f, "sending message; {bytes} bytes"),
            Context::DeclaredHost { name } => write!(f, "Declared address of host {name}"),
            Context::NextHop => f.write_str("Next hop (declared address)"),
            Context::AttemptingToConnect => f.write_str("attempting to connect"),
            Context::TlsNegotiated { protocol, cipher } => {
                write!(f, "TLS protocol {protocol} negotiated; cipher {cipher}")
            }
            Context::TlsFailed => f.write_str("TLS negotiation failed"),
            Context::Other(text) => f.write_str(text),
        }
    }
}

impl Context {
    /// Reads a context field back (anything not written by one of the typed variants is
    /// [`Context::Other`]).
    pub fn parse(text: &str) -> Self {
        let bytes = |n: &str| n.parse::<usize>().ok();
        if let Some(n) = text.strip_suffix(" bytes received").and_then(bytes) {
            return Context::ContentReceived { bytes: n };
        }
        if let Some(n) = text.strip_prefix("sending message; ").and_then(|t| t.strip_suffix(" bytes")).and_then(bytes) {
            return Context::ContentSent { bytes: n };
        }
        if let Some(name) = text.strip_prefix("Declared address of host ") {
            return Context::DeclaredHost { name: name.to_string() };
        }
        if let Some(rest) = text.strip_prefix("TLS protocol ")
            && let Some((protocol, cipher)) = rest.split_once(" negotiated; cipher ")
        {
            return Context::TlsNegotiated { protocol: protocol.to_string(), cipher: cipher.to_string() };
        }
        match text {
            "Next hop (declared address)" => Context::NextHop,
            "attempting to connect" => Context::AttemptingToConnect,
            "TLS negotiation failed" => Context::TlsFailed,
            _ => Context::Other(text.to_string()),
        }
    }
}

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
        push_csv_field(&mut out, &self.date_time);
        push_csv_tail(
            &mut out,
            &self.connector,
            self.session_id,
            self.sequence,
            &self.local,
            &self.remote,
            self.event,
            &self.data,
            &self.context,
        );
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

/// Every field after the date-time, each preceded by its comma; `data` and `context` are cleaned
/// ([`clean`]) on the way.
#[allow(clippy::too_many_arguments)]
fn push_csv_tail(
    out: &mut String,
    connector: &str,
    session_id: u64,
    sequence: u64,
    local: &str,
    remote: &str,
    event: EventKind,
    data: &str,
    context: &str,
) {
    push_session_fields(out, connector, session_id);
    push_decimal(out, sequence);
    push_endpoint_fields(out, local, remote);
    push_event_fields(out, event, data, context);
}

/// `,connector,session-id,` (a session's lines share it).
fn push_session_fields(out: &mut String, connector: &str, session_id: u64) {
    use std::fmt::Write as _;
    out.push(',');
    push_csv_field(out, connector);
    let _ = write!(out, ",{session_id:016X},");
}

/// `,local,remote,` (a session's lines share it).
fn push_endpoint_fields(out: &mut String, local: &str, remote: &str) {
    out.push(',');
    push_csv_field(out, local);
    out.push(',');
    push_csv_field(out, remote);
    out.push(',');
}

/// `event,data,context`, data and context cleaned.
fn push_event_fields(out: &mut String, event: EventKind, data: &str, context: &str) {
    out.push_str(event.symbol());
    for field in [data, context] {
        out.push(',');
        // Printable ASCII within the length limit is already clean: no copy.
        if field.len() <= MAX_DATA && field.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            push_csv_field(out, field);
        } else {
            push_csv_field(out, &clean(field));
        }
    }
}

fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Quotes a field when it holds a comma, a quote or leading/trailing spaces (quotes doubled), as
/// Exchange's CSV writer does. Line breaks never reach a field.
fn push_csv_field(out: &mut String, field: &str) {
    // A loop, not memchr: fields are short, and memchr's set-up costs more than the scan.
    let quote = field.bytes().any(|b| b == b',' || b == b'"') || field.starts_with(' ') || field.ends_with(' ');
    if !quote {
        out.push_str(field);
        return;
    }
    out.push('"');
    let mut rest = field;
    while let Some(at) = rest.find('"') {
        out.push_str(&rest[..=at]);
        out.push('"');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
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

    /// The lines read as typed events, once: who wrote each protocol line (the session's client
    /// or server, whichever side the tenant was), content blocks with their kept content, TLS.
    pub fn events(&self) -> Vec<(&LogLine, SessionEvent<'_>)> {
        self.lines
            .iter()
            .map(|line| {
                // In RECV the peer is the client; in SEND the tenant is.
                let from_client = match line.kind {
                    LogKind::Receive => EventKind::Receive,
                    LogKind::Send => EventKind::Send,
                };
                let event = match line.event {
                    EventKind::Connect => SessionEvent::Connect,
                    EventKind::Disconnect => SessionEvent::Disconnect,
                    e if e == from_client => SessionEvent::ClientLine(&line.data),
                    EventKind::Send | EventKind::Receive => SessionEvent::ServerLine(&line.data),
                    EventKind::Info => match Context::parse(&line.context) {
                        Context::ContentReceived { bytes } if line.kind == LogKind::Receive => {
                            let verb = if line.data.eq_ignore_ascii_case("BDAT") {
                                ContentVerb::Bdat
                            } else {
                                ContentVerb::Data
                            };
                            let content = self.content.get(&line.sequence).map(Vec::as_slice);
                            SessionEvent::Content { verb, bytes, content }
                        }
                        Context::ContentSent { bytes } if line.kind == LogKind::Send => {
                            let content = self.content.get(&line.sequence).map(Vec::as_slice);
                            SessionEvent::Content { verb: ContentVerb::Data, bytes, content }
                        }
                        context => SessionEvent::Info { data: &line.data, context },
                    },
                };
                (line, event)
            })
            .collect()
    }
}

/// One line of a recorded session, typed (see [`SessionRecord::events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent<'a> {
    /// `+`.
    Connect,
    /// `-`.
    Disconnect,
    /// A line the session's client wrote: a command (the peer's in RECV, the tenant's in SEND).
    ClientLine(&'a str),
    /// A line the session's server wrote: a reply line.
    ServerLine(&'a str),
    /// A content block the client sent.
    Content {
        /// DATA or BDAT.
        verb: ContentVerb,
        /// Octets in wire form.
        bytes: usize,
        /// The content (wire form) when it was kept beside the log.
        content: Option<&'a [u8]>,
    },
    /// Any other `*` event.
    Info {
        /// The data field.
        data: &'a str,
        /// The context, typed.
        context: Context,
    },
}

/// What the sessions handed to the writer thread and it has not written yet.
#[derive(Debug, Default)]
struct Outbox {
    /// CSV lines, each ending in CRLF, in the order they were handed over, per file: its kind and
    /// day (`yyyy-mm-dd`).
    lines: Vec<(LogKind, String, String)>,
    line_bytes: usize,
    /// Content records in the order they were handed over: `<session:016X>-<sequence> <len>\n`,
    /// the content, `\n`.
    content: Vec<u8>,
    /// Flushes asked for, and how many of them the writer has done (everything handed over before
    /// the flush was asked for is in the files).
    flushes_asked: u64,
    flushes_done: u64,
    /// The writer waits for the first hand-off: the next one wakes it. Under load it sleeps
    /// [`COALESCE`] between writes instead, and nobody wakes it.
    parked: bool,
    /// The log is gone: the writer writes what is left and ends.
    closed: bool,
}

/// The outbox and the writer thread's two signals.
#[derive(Debug, Default)]
struct Handoff {
    outbox: Mutex<Outbox>,
    /// Something for a parked writer.
    work: Condvar,
    /// A flush was done.
    flushed: Condvar,
}

impl Handoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes the writer if it waits for work (called with the outbox locked).
    fn wake(&self, outbox: &mut Outbox) {
        if std::mem::take(&mut outbox.parked) {
            self.work.notify_one();
        }
    }
}

#[derive(Debug, Default)]
struct Memory {
    order: VecDeque<u64>,
    sessions: HashMap<u64, SessionRecord>,
    /// Content octets held per session (kept here, not summed per message: a long session holds
    /// hundreds of blocks).
    content_bytes: HashMap<u64, usize>,
}

impl Memory {
    fn entry(&mut self, id: u64) -> &mut SessionRecord {
        if !self.sessions.contains_key(&id) {
            if self.order.len() >= MEMORY_SESSIONS
                && let Some(old) = self.order.pop_front()
            {
                self.sessions.remove(&old);
                self.content_bytes.remove(&old);
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
    writer: Option<Arc<Handoff>>,
    dir: Option<PathBuf>,
    dropped: AtomicU64,
    send_ids: AtomicU64,
    open_sends: Mutex<HashMap<SocketAddr, OpenSend>>,
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
            dropped: AtomicU64::new(0),
            // Outbound session ids: bit 59 set, so they never meet the listener's ids.
            send_ids: AtomicU64::new(0x0800_0000_0000_0000 | (secs << 12)),
            open_sends: Mutex::default(),
        }
    }

    /// A log that records nothing, for endpoints without a state directory.
    pub fn disabled(clock: Arc<SimClock>) -> Self {
        let mut log = Self::in_memory(clock);
        log.enabled = false;
        log
    }

    /// Also appended to files under `dir` (`<state-dir>/protocol`). A directory that cannot be
    /// created is logged and the log stays in memory.
    pub fn with_dir(dir: PathBuf, clock: Arc<SimClock>) -> Self {
        let mut log = Self::in_memory(clock);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the protocol log directory; keeping it in memory only");
            return log;
        }
        let handoff = Arc::new(Handoff::default());
        let (thread_dir, thread_handoff) = (dir.clone(), handoff.clone());
        match std::thread::Builder::new()
            .name("protocol-log".into())
            .spawn(move || writer(&thread_dir, &thread_handoff))
        {
            Ok(_) => {
                log.writer = Some(handoff);
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

    /// Hand-offs to the writer dropped because it could not keep up (each the lines of one input,
    /// or one line, or one message's content).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// One session as recorded: read back from the files when the log has a directory (after a
    /// [`ProtocolLog::flush`]), else the in-memory copy (the latest sessions only).
    pub fn session(&self, id: u64) -> Option<SessionRecord> {
        if let Some(dir) = &self.dir {
            self.flush();
            return read_session(dir, id).ok().flatten();
        }
        self.memory.lock().expect("protocol log lock").sessions.get(&id).cloned()
    }

    /// Ids of the sessions kept in memory, oldest first (none when the log has a directory).
    pub fn session_ids(&self) -> Vec<u64> {
        self.memory.lock().expect("protocol log lock").order.iter().copied().collect()
    }

    /// Waits (at most five seconds) until everything recorded so far is in the files.
    pub fn flush(&self) {
        let Some(handoff) = &self.writer else { return };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut outbox = handoff.lock();
        outbox.flushes_asked += 1;
        let asked = outbox.flushes_asked;
        handoff.wake(&mut outbox);
        while outbox.flushes_done < asked {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else { return };
            outbox = handoff.flushed.wait_timeout(outbox, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Appends CSV lines (of one day, each starting with its date-time) to the outbox of their
    /// file; an outbox the writer has not emptied in time drops them, counted.
    fn hand_lines(&self, kind: LogKind, text: &str) {
        let Some(handoff) = &self.writer else { return };
        let day = &text[..10];
        let mut outbox = handoff.lock();
        if outbox.line_bytes + text.len() > OUTBOX_LINE_BYTES {
            drop(outbox);
            return self.dropped_one();
        }
        outbox.line_bytes += text.len();
        match outbox.lines.iter_mut().find(|(k, d, _)| *k == kind && d == day) {
            Some((_, _, lines)) => lines.push_str(text),
            None => outbox.lines.push((kind, day.to_string(), text.to_string())),
        }
        handoff.wake(&mut outbox);
    }

    fn dropped_one(&self) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(dropped = n, "protocol log writer is behind; lines dropped (counted per hand-off)");
        }
    }

    /// Keeps a line in memory (a log without files).
    fn record(&self, line: LogLine) {
        if !self.enabled {
            return;
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
        if let Some(handoff) = &self.writer {
            let mut outbox = handoff.lock();
            if outbox.content.len() + content.len() > OUTBOX_CONTENT_BYTES {
                drop(outbox);
                return self.dropped_one();
            }
            let _ = writeln!(outbox.content, "{id:016X}-{seq} {}", content.len());
            outbox.content.extend_from_slice(&content);
            outbox.content.push(b'\n');
            handoff.wake(&mut outbox);
            return;
        }
        let mut memory = self.memory.lock().expect("protocol log lock");
        let held = memory.content_bytes.get(&id).copied().unwrap_or(0);
        if held + content.len() <= MEMORY_CONTENT * 4 {
            let len = content.len();
            let replaced = memory.entry(id).content.insert(seq, content).map_or(0, |old| old.len());
            memory.content_bytes.insert(id, held + len - replaced);
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
        let fresh = attempt.transcript.lines.first().is_some_and(|l| matches!(l.event, Event::Connecting { .. }));
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
        let mut connected = resumed.is_some();
        let mut disconnected = false;
        let mut last_at = attempt.started;
        // The content lines of the message being sent, while all of them are in the transcript.
        let mut content: Option<Vec<u8>> = Some(Vec::new());
        for line in &attempt.transcript.lines {
            let now = at(line.at).max(last_at);
            last_at = now;
            match &line.event {
                Event::Connecting { .. } => {
                    log.event_at(now, EventKind::Info, "", &Context::AttemptingToConnect.to_string());
                    let next_hop = format!("{} [{}]", attempt.server_name, attempt.declared);
                    log.event_at(now, EventKind::Info, &next_hop, &Context::NextHop.to_string());
                }
                Event::Connected { .. } => {
                    connected = true;
                    log.event_at(now, EventKind::Connect, "", "");
                }
                Event::TlsStarted { .. } => {
                    if let Some(tls) = attempt.tls {
                        tls_logged = true;
                        log.send_tls_events(now, tls);
                    }
                }
                Event::Closed => {
                    disconnected = true;
                    log.event_at(now, EventKind::Disconnect, "", "Local");
                }
                Event::ContentLine(text) => {
                    if let Some(c) = &mut content {
                        c.extend_from_slice(text.as_bytes());
                        c.extend_from_slice(b"\r\n");
                    }
                }
                Event::ContentElided { .. } => content = None,
                Event::ContentEnd { bytes } => {
                    let context = Context::ContentSent { bytes: *bytes };
                    let seq = log.event_at(now, EventKind::Info, attempt.message_id, &context.to_string());
                    if let Some(c) = content.replace(Vec::new())
                        && c.len() == *bytes
                        && c.len() <= log.content_limit()
                    {
                        self.record_content(log.id, seq, c);
                    }
                }
                Event::Command(text) => {
                    if line.tls
                        && !tls_logged
                        && let Some(tls) = attempt.tls
                    {
                        tls_logged = true;
                        log.send_tls_events(now, tls);
                    }
                    log.event_at(now, EventKind::Send, text, "");
                }
                Event::Reply(text) => {
                    log.event_at(now, EventKind::Receive, text, "");
                }
                Event::TlsPeerSubject(_) | Event::Note(_) => {}
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

impl Drop for ProtocolLog {
    fn drop(&mut self) {
        if let Some(handoff) = &self.writer {
            let mut outbox = handoff.lock();
            outbox.closed = true;
            handoff.wake(&mut outbox);
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
    /// The command line being reported in parts (a line too long to hold).
    partial: Vec<u8>,
    /// Content of the current DATA or BDAT block, kept beside the log.
    content: Vec<u8>,
    /// The current block is over the limit and is not kept.
    content_dropped: bool,
    closed: bool,
    /// Lines written (with files) but not yet handed to the writer; all of one day (each starts
    /// with its date-time).
    pending: String,
    /// Inside [`SessionLog::input`]: its lines go to the writer together, once.
    batching: bool,
    /// A reply's wire form, split into lines (kept: one buffer per session, not per reply).
    wire: String,
    /// The last date-time written and its text (the events of one input share it).
    stamp_at: Option<Timestamp>,
    stamp: String,
    /// `,connector,session-id,` and `,local,remote,` as CSV, for every line of the session.
    session_fields: String,
    endpoint_fields: String,
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
            partial: Vec::new(),
            content: Vec::new(),
            content_dropped: false,
            closed: false,
            pending: String::new(),
            batching: false,
            wire: String::new(),
            stamp_at: None,
            stamp: String::new(),
            session_fields: String::new(),
            endpoint_fields: String::new(),
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
        if self.log.writer.is_some() {
            // With files the line is written once, straight to its CSV form: no `LogLine` and no
            // copy in memory (the files are read back on demand, see [`ProtocolLog::session`]).
            if self.stamp_at != Some(at) {
                self.stamp_at = Some(at);
                self.stamp = at.iso8601();
            }
            // A day's lines go to that day's file.
            if self.pending.get(..10).is_some_and(|day| day != &self.stamp[..10]) {
                self.flush_pending();
            }
            self.pending.push_str(&self.stamp);
            if self.session_fields.is_empty() {
                push_session_fields(&mut self.session_fields, &self.connector, self.id);
                push_endpoint_fields(&mut self.endpoint_fields, &self.local, &self.remote);
            }
            self.pending.push_str(&self.session_fields);
            push_decimal(&mut self.pending, seq);
            self.pending.push_str(&self.endpoint_fields);
            push_event_fields(&mut self.pending, event, data, context);
            self.pending.push_str("\r\n");
            if !self.batching {
                self.flush_pending();
            }
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

    /// Hands the lines written so far to the file writer.
    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.log.hand_lines(self.kind, &self.pending);
            self.pending.clear();
        }
    }

    /// `+`, and a `*` with the peer's address-plan name and declared address when known.
    pub fn connected(&mut self, plan_host: Option<(&str, std::net::IpAddr)>) {
        self.event(EventKind::Connect, "", "");
        if let Some((name, declared)) = plan_host {
            let context = Context::DeclaredHost { name: name.to_string() };
            self.event(EventKind::Info, &declared.to_string(), &context.to_string());
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
        let now = self.log.now();
        self.replied_at(now, reply);
    }

    fn replied_at(&mut self, at: Timestamp, reply: &Reply) {
        let mut wire = std::mem::take(&mut self.wire);
        wire.clear();
        reply.write_wire(&mut wire);
        for line in wire.split_terminator("\r\n") {
            self.event_at(at, EventKind::Send, line, "");
        }
        self.wire = wire;
    }

    /// The actions the session returned for the bytes it consumed, in order: `<` per command line
    /// it framed, `>` per reply line, one `*` summary per content block (its content kept beside
    /// the log), acceptance and refusal as `*` events. The session did the framing; this only
    /// writes it down.
    pub fn input(&mut self, consumed: &[u8], actions: &[Action]) {
        if !self.log.enabled {
            return;
        }
        self.batching = true;
        // The events of one input share its time (one clock read, one date-time written).
        let now = self.log.now();
        self.log_actions(now, consumed, actions);
        self.batching = false;
        self.flush_pending();
    }

    fn log_actions(&mut self, at: Timestamp, consumed: &[u8], actions: &[Action]) {
        for action in actions {
            match action {
                Action::Framed(Framed::Command { range, ends }) => {
                    let bytes = &consumed[range.clone()];
                    let room = (MAX_DATA + 2).saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    if *ends {
                        let mut partial = std::mem::take(&mut self.partial);
                        let text = String::from_utf8_lossy(&partial);
                        self.event_at(at, EventKind::Receive, text.trim_end_matches(['\r', '\n']), "");
                        drop(text);
                        partial.clear();
                        self.partial = partial;
                    }
                }
                Action::Framed(Framed::Content { range }) => self.push_content(&consumed[range.clone()]),
                Action::Framed(Framed::ContentEnd { verb, bytes }) => {
                    let seq = self.event_at(
                        at,
                        EventKind::Info,
                        verb.as_str(),
                        &Context::ContentReceived { bytes: *bytes }.to_string(),
                    );
                    let content = std::mem::take(&mut self.content);
                    if !std::mem::take(&mut self.content_dropped) {
                        self.log.record_content(self.id, seq, content);
                    }
                }
                Action::Reply(reply) => self.replied_at(at, reply),
                Action::Accept(message) => {
                    if let Some(connector) = message.verdict.connector() {
                        self.attributed(connector);
                    }
                    self.event_at(
                        at,
                        EventKind::Info,
                        &message.message_id,
                        &format!("receiving message; InternalId={} queued", message.internal_id),
                    );
                }
                Action::Refused(refusal) => {
                    if let Some(connector) = refusal.rejection.as_ref().and_then(|r| r.connector.as_deref()) {
                        self.attributed(connector);
                    }
                    let reason = refusal.rejection.as_ref().map_or("", |r| r.reason.as_str());
                    self.event_at(at, EventKind::Info, reason, &format!("Rejected at {}", refusal.stage.command()));
                }
                Action::StartTls | Action::Close | Action::Authenticate(_) => {}
            }
        }
    }

    /// Content kept beside the log: up to [`MAX_CONTENT`] with a directory, less in memory only.
    fn content_limit(&self) -> usize {
        if self.log.dir.is_some() { MAX_CONTENT } else { MEMORY_CONTENT }
    }

    /// Keeps content bytes; content over the limit is not kept at all (never a truncated copy).
    fn push_content(&mut self, bytes: &[u8]) {
        if !self.log.enabled || self.content_dropped {
            return;
        }
        if self.content.len() + bytes.len() <= self.content_limit() {
            if self.content.capacity() == 0 {
                self.content.reserve(bytes.len().max(4 << 10));
            }
            self.content.extend_from_slice(bytes);
        } else {
            self.content = Vec::new();
            self.content_dropped = true;
        }
    }

    fn attributed(&mut self, connector: &str) {
        if self.connector != connector {
            self.connector = connector.to_string();
            self.session_fields.clear();
            self.endpoint_fields.clear();
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
        let protocol = format!("SP_PROT_{}_SERVER", facts.version);
        self.info("", &Context::TlsNegotiated { protocol, cipher: facts.cipher.clone() }.to_string());
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
        self.info(error, &Context::TlsFailed.to_string());
    }

    fn send_tls_events(&mut self, at: Timestamp, tls: &crate::client::TlsInfo) {
        // rustls names versions `TLSv1.3`; Exchange's SSPI names are SP_PROT_TLS1_3_CLIENT.
        let version = tls.version.replace("TLSv", "TLS").replace('.', "_");
        let context =
            Context::TlsNegotiated { protocol: format!("SP_PROT_{version}_CLIENT"), cipher: tls.cipher.clone() };
        self.event_at(at, EventKind::Info, "", &context.to_string());
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

/// Field text: no line breaks or other control characters, bounded length.
fn clean(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DATA).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MAX_DATA).is_some() {
        out.push_str("...");
    }
    out
}

/// The file message content is appended to, in `<state-dir>/protocol`.
const CONTENT_FILE: &str = "content.dat";

fn writer(dir: &Path, handoff: &Handoff) {
    let mut files: HashMap<LogKind, (String, File)> = HashMap::new();
    let mut content_file: Option<File> = None;
    let mut spare = Vec::new();
    let mut failed = false;
    let mut report = |what: &str, path: &Path, e: std::io::Error| {
        if !std::mem::replace(&mut failed, true) {
            tracing::error!(path = %path.display(), error = %e, "{what}");
        }
    };
    loop {
        let (lines, content, flushes, closed) = {
            let mut outbox = handoff.lock();
            while outbox.lines.is_empty()
                && outbox.content.is_empty()
                && outbox.flushes_done == outbox.flushes_asked
                && !outbox.closed
            {
                outbox.parked = true;
                outbox = handoff.work.wait(outbox).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            outbox.line_bytes = 0;
            let content = std::mem::replace(&mut outbox.content, std::mem::take(&mut spare));
            (std::mem::take(&mut outbox.lines), content, outbox.flushes_asked, outbox.closed)
        };
        for (kind, day, text) in lines {
            if files.get(&kind).is_none_or(|(d, _)| *d != day) {
                files.remove(&kind);
                let path = dir.join(format!("{}{}-1.log", kind.prefix(), day.replace('-', "")));
                let opened = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| {
                    if f.metadata()?.len() == 0 {
                        let date_time = text.split(',').next().unwrap_or_default();
                        f.write_all(header(kind, date_time).as_bytes())?;
                    }
                    Ok(f)
                });
                match opened {
                    Ok(f) => {
                        files.insert(kind, (day, f));
                    }
                    Err(e) => {
                        report("cannot write the protocol log", &path, e);
                        continue;
                    }
                }
            }
            if let Some((_, f)) = files.get_mut(&kind)
                && let Err(e) = f.write_all(text.as_bytes())
            {
                report("cannot append to the protocol log", dir, e);
            }
        }
        if !content.is_empty() {
            let path = dir.join(CONTENT_FILE);
            if content_file.is_none() {
                match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                    Ok(f) => content_file = Some(f),
                    Err(e) => report("cannot write message content beside the protocol log", &path, e),
                }
            }
            if let Some(f) = &mut content_file
                && let Err(e) = f.write_all(&content)
            {
                report("cannot write message content beside the protocol log", &path, e);
            }
        }
        // The emptied buffer is the next outbox's, unless a burst left it large.
        spare = content;
        spare.clear();
        if spare.capacity() > SPARE_CONTENT_BYTES {
            spare = Vec::new();
        }
        {
            let mut outbox = handoff.lock();
            outbox.flushes_done = flushes;
        }
        handoff.flushed.notify_all();
        if closed {
            return;
        }
        // Lines handed over while this thread sleeps wait in the outbox without waking it: under
        // load it then wakes once per pause instead of once per input (a wake-up per input cost
        // more than writing its lines).
        std::thread::sleep(COALESCE);
    }
}

/// The largest emptied content buffer the writer keeps for the next outbox.
const SPARE_CONTENT_BYTES: usize = 1 << 20;

/// The writer's pause after each burst of lines.
const COALESCE: Duration = Duration::from_millis(2);

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
    let with_content: Vec<u64> = record
        .lines
        .iter()
        .filter(|line| {
            line.event == EventKind::Info
                && matches!(
                    Context::parse(&line.context),
                    Context::ContentReceived { .. } | Context::ContentSent { .. }
                )
        })
        .map(|line| line.sequence)
        .collect();
    if !with_content.is_empty() {
        record.content = read_content(&dir.join(CONTENT_FILE), session_id, &with_content)?;
    }
    Ok(Some(record))
}

/// The content records of one session in `content.dat`, by sequence number: a scan of the
/// record heads, skipping every other session's content unread. A torn last record (the process
/// stopped while writing it) ends the scan.
fn read_content(path: &Path, session_id: u64, sequences: &[u64]) -> std::io::Result<BTreeMap<u64, Vec<u8>>> {
    use std::io::{BufRead, Read};
    let mut found = BTreeMap::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut head = String::new();
    loop {
        head.clear();
        if reader.read_line(&mut head)? == 0 {
            return Ok(found);
        }
        let parsed = head.trim_end().split_once(' ').and_then(|(key, len)| {
            let (session, sequence) = key.split_once('-')?;
            Some((u64::from_str_radix(session, 16).ok()?, sequence.parse::<u64>().ok()?, len.parse::<u64>().ok()?))
        });
        let Some((session, sequence, len)) = parsed else { return Ok(found) };
        if session == session_id && sequences.contains(&sequence) {
            let mut bytes = Vec::new();
            (&mut reader).take(len).read_to_end(&mut bytes)?;
            if (bytes.len() as u64) < len {
                return Ok(found);
            }
            found.insert(sequence, bytes);
            reader.seek_relative(1)?;
        } else {
            reader.seek_relative(i64::try_from(len + 1).unwrap_or(i64::MAX))?;
        }
    }
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

    /// The RECV lines of a scripted session fed in pieces as a socket would deliver them:
    /// pipelined commands, a refusal, DATA split mid-line with dot-stuffing, a refused BDAT whose
    /// chunk arrives later, BDAT chunks, an over-long command line in two reads.
    #[test]
    fn receive_log_of_a_scripted_session() {
        use mailsim_core::peer::PeerFacts;
        use mailsim_core::session::Session;
        use mailsim_core::tenant::{DomainType, Tenant};
        let log = Arc::new(ProtocolLog::in_memory(Arc::new(SimClock::new())));
        let tenant = Arc::new(
            Tenant::builder()
                .with_domain("contoso.test", DomainType::Authoritative)
                .with_mailbox("alice@contoso.test")
                .build()
                .unwrap(),
        );
        let ip: std::net::IpAddr = "127.0.0.10".parse().unwrap();
        let mut session =
            Session::new(tenant.clone(), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().unwrap(), 7, true);
        let mut slog = log.receive_session(
            7,
            &tenant.settings.server_name,
            "127.0.0.1:25".parse().unwrap(),
            "127.0.0.10:40000".parse().unwrap(),
        );
        slog.connected(None);
        slog.replied(&session.greeting(Timestamp(0)));
        let long = "A".repeat(600);
        let pieces: Vec<Vec<u8>> = vec![
            b"EHLO a.test\r\nMAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<bob@contoso.test>\r\nDATA\r\n".to_vec(),
            b"Subject: x\r\n\r\n..dot\r\nbo".to_vec(),
            b"dy\r\n.\r\n".to_vec(),
            b"NOOP\r\nBDAT 4\r\n".to_vec(),
            b"ab\r\n".to_vec(),
            b"MAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nBDAT 5\r\nhel".to_vec(),
            b"lo".to_vec(),
            b"BDAT 0 LAST\r\n".to_vec(),
            long.as_bytes()[..520].to_vec(),
            [&long.as_bytes()[520..], b"\r\nQUIT\r\n"].concat(),
        ];
        let mut buf = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(&piece);
            let mut out = Vec::new();
            let used = session.on_input(&buf, Timestamp(0), &mut out);
            slog.input(&buf[..used], &out);
            buf.drain(..used);
        }
        slog.disconnected("Local");
        drop(slog);
        let record = log.session(7).unwrap();
        let mut text = String::new();
        for l in &record.lines {
            let data =
                if l.data.starts_with("220 ") || l.data.starts_with("250 2.6.0") { &l.data[..9] } else { &l.data };
            let data = data.split(" [").next().unwrap();
            text.push_str(&format!(
                "{} {} | {}\n",
                l.event.symbol(),
                data,
                l.context.split("InternalId=").next().unwrap()
            ));
        }
        for (seq, c) in &record.content {
            text.push_str(&format!("content {seq}: {:?}\n", String::from_utf8_lossy(c)));
        }
        assert_eq!(text, EXPECTED_RECV);
    }

    const EXPECTED_RECV: &str = "\
+  | \n\
> 220 MAILS | \n\
< EHLO a.test | \n\
> 250-MAILSIM01.mail.protection.mailsim.test Hello | \n\
> 250-SIZE 157286400 | \n\
> 250-PIPELINING | \n\
> 250-DSN | \n\
> 250-ENHANCEDSTATUSCODES | \n\
> 250-STARTTLS | \n\
> 250-8BITMIME | \n\
> 250-BINARYMIME | \n\
> 250-CHUNKING | \n\
> 250 SMTPUTF8 | \n\
< MAIL FROM:<a@fabrikam.test> | \n\
> 250 2.1.0 Sender OK | \n\
< RCPT TO:<alice@contoso.test> | \n\
> 250 2.1.5 Recipient OK | \n\
< RCPT TO:<bob@contoso.test> | \n\
*  | Rejected at RCPT\n\
> 550 5.4.1 Recipient address rejected: Access denied. AS(201806281) | \n\
< DATA | \n\
> 354 Start mail input; end with <CRLF>.<CRLF> | \n\
* DATA | 27 bytes received\n\
* <0000000000070001@MAILSIM01.mail.protection.mailsim.test> | receiving message; \n\
> 250 2.6.0 | \n\
< NOOP | \n\
> 250 2.0.0 OK | \n\
< BDAT 4 | \n\
> 503 5.5.2 Need mail command | \n\
* BDAT | 4 bytes received\n\
< MAIL FROM:<a@fabrikam.test> | \n\
> 250 2.1.0 Sender OK | \n\
< RCPT TO:<alice@contoso.test> | \n\
> 250 2.1.5 Recipient OK | \n\
< BDAT 5 | \n\
* BDAT | 5 bytes received\n\
> 250 2.0.0 5 octets received | \n\
< BDAT 0 LAST | \n\
* BDAT | 0 bytes received\n\
* <0000000000070002@MAILSIM01.mail.protection.mailsim.test> | receiving message; \n\
> 250 2.6.0 | \n\
< AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | \n\
> 500 5.5.2 Command too long | \n\
< QUIT | \n\
> 221 2.0.0 Service closing transmission channel | \n\
-  | Local\n\
content 22: \"Subject: x\\r\\n\\r\\n..dot\\r\\nbody\\r\\n\"\n\
content 29: \"ab\\r\\n\"\n\
content 35: \"hello\"\n\
content 38: \"\"\n\
";

    /// With files, the lines of sessions writing at once reach their day's file in the order each
    /// session wrote them, with one header per file; a day change opens the next day's file;
    /// nothing is dropped, and the lines reach the files without a flush.
    #[test]
    fn sessions_writing_at_once_read_back_whole_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(SimClock::new());
        let log = Arc::new(ProtocolLog::with_dir(dir.path().to_path_buf(), clock.clone()));
        let local: SocketAddr = "127.0.0.1:25".parse().unwrap();
        let mut sessions: Vec<SessionLog> = (0..3)
            .map(|i| {
                log.receive_session(i, "mailsim01.test", local, format!("127.0.0.{}:4000", 10 + i).parse().unwrap())
            })
            .collect();
        for round in 0..200 {
            for s in &mut sessions {
                s.info(&format!("round {round}"), "");
            }
        }
        let first_day = clock.now().iso8601()[..10].replace('-', "");
        let file = dir.path().join(format!("RECV{first_day}-1.log"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&file).map_or(0, |m| m.len()) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(std::fs::metadata(&file).unwrap().len() > 0, "the writer wrote without a flush");
        clock.advance(Duration::from_secs(86_400));
        sessions[1].info("the next day", "");
        drop(sessions);
        for id in 0..3u64 {
            let record = log.session(id).unwrap();
            let data: Vec<&str> = record.lines.iter().map(|l| l.data.as_str()).collect();
            let mut expected: Vec<String> = (0..200).map(|r| format!("round {r}")).collect();
            if id == 1 {
                expected.push("the next day".into());
            }
            // Dropping a session logs its disconnect last.
            expected.push(String::new());
            assert_eq!(data, expected, "session {id}");
            assert_eq!(record.lines.last().unwrap().event, EventKind::Disconnect);
            let sequences: Vec<u64> = record.lines.iter().map(|l| l.sequence).collect();
            assert_eq!(sequences, (0..record.lines.len() as u64).collect::<Vec<_>>());
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.matches("#Fields:").count(), 1);
        let next_day = clock.now().iso8601()[..10].replace('-', "");
        assert!(
            std::fs::read_to_string(dir.path().join(format!("RECV{next_day}-1.log"))).unwrap().contains("the next day")
        );
        assert_eq!(log.dropped(), 0);
    }
}
