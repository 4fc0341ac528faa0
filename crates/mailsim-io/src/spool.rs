//! The durable queue: every accepted message and what became of each of its recipients, on disk
//! under `<state-dir>/spool/`, so that a `serve` restarted on the same state directory resumes the
//! queue (exo-behaviour §3.3: an accepted message is retried until it expires, whatever happens to
//! the process).
//!
//! Contract (the fsync policy):
//! - **Before the end-of-data `250`**, the message's `Accept` record (envelope, ids, times, content)
//!   is appended to `spool/journal` and the file is `fdatasync`ed: [`Spool::accept`] resolves only
//!   then. One writer thread appends everything queued while it was busy in one `write` and
//!   flushes it (group commit: many sessions ending their DATA while the last flush ran share the
//!   next one; nobody is woken per record).
//! - State changes (`Deferred` with attempts, next retry and last error; `Finished` for recipients
//!   delivered or failed) are appended by the same thread in the order they were made, after the
//!   awaited records of their batch (a session's `250` waits for no state change) and within
//!   [`LAZY_WRITE`] on an idle writer, and flushed with the next commit, without anyone waiting for
//!   them or waking the writer for them. A kill loses at most the last batches of them: those
//!   recipients are retried (at-least-once towards peers, never lost). An NDR's `Accept` record is
//!   queued before the `Finished` record of the recipients it reports, so it is never lost either.
//! - The same thread writes the pipeline's mailbox copies and trace lines
//!   ([`Spool::write_first`]), before the state changes that follow them: a kill finds a
//!   recipient's copy before its trace row, and its trace row before its `Finished` record, as when
//!   each was written at once, with one write per file per batch instead of one per copy or line.
//! - The journal is compacted (live records copied to `journal.new`, fsynced, renamed over
//!   `journal`, directory fsynced) when it is opened and whenever it has grown past
//!   [`COMPACT_AT`] bytes and twice its live size.
//! - The file is grown ahead of the records in [`PREALLOCATE`] steps of written zeros, and records
//!   are written in place over them: most flushes then change no file size and no block map, so
//!   `fdatasync` writes the data alone instead of the data and the inode (half the disk writes per
//!   acknowledged batch). Zeros after the last record read as the end of the journal.
//!
//! Recovery (`Spool::open`): records are read up to the first torn or corrupt one (its tail was
//! never acknowledged); recipients the trace already shows delivered or failed (with the NDR on
//! disk) are finished without another attempt, so no recipient is recorded delivered twice.
//!
//! Record format, version 2: the file starts with `MAILSIM-SPOOL 2\n`; then frames
//! `len: u32 LE | check: CRC-32 (IEEE) of body, u32 LE | body`, body = one kind byte (`A`, `D`,
//! `F`) and its payload: `A` = `u32 LE` length of a JSON [`MessageMeta`], the JSON, the content;
//! `D` = JSON [`DeferredRecord`]; `F` = JSON [`FinishedRecord`]. The check finds a torn or
//! half-written frame, not tampering, so a CRC (which `crc32fast` computes with the CPU's carry-less
//! multiply) serves where version 1's truncated SHA-256 cost more than the rest of the frame's
//! work. A version 1 journal (`MAILSIM-SPOOL 1\n`, check = first 8 bytes of SHA-256(body)) is still
//! read, and rewritten as version 2 when the spool opens.
//!
//! The spool decides nothing: what state a recipient is in is the core's outcome, recorded here by
//! the pipeline at the point it changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Body, Envelope, MailParams};
use mailsim_core::peer::PeerFacts;
use mailsim_core::reply::Reply;
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// The journal's first line: the format and its version.
pub const MAGIC: &[u8] = b"MAILSIM-SPOOL 2\n";
/// The first line of a version 1 journal (read, never written).
const MAGIC_V1: &[u8] = b"MAILSIM-SPOOL 1\n";
/// The journal is compacted once it is this large and twice its live content.
pub const COMPACT_AT: u64 = 64 << 20;
/// The journal file is grown by this many zero bytes at a time, ahead of the records.
pub const PREALLOCATE: u64 = 1 << 20;

const JOURNAL: &str = "journal";
/// Length and check before a frame's body.
const HEAD_LEN: usize = 8;

/// What the spool keeps of an accepted message besides its content: enough to route its
/// recipients again and to trace them as the first run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Record version (1).
    pub v: u32,
    /// The tenant's internal id.
    pub id: u64,
    /// The Message-ID.
    pub message_id: String,
    /// MAIL FROM; `None` for the null sender.
    pub sender: Option<String>,
    /// RCPT TO, in order.
    pub recipients: Vec<String>,
    /// SIZE=.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// BODY=: `7BIT`, `8BITMIME` or `BINARYMIME`.
    pub body: String,
    /// SMTPUTF8.
    #[serde(default)]
    pub smtputf8: bool,
    /// RET=FULL (true) or HDRS (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret_full: Option<bool>,
    /// ENVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// The peer's declared address (`FromIP`).
    pub peer_ip: std::net::IpAddr,
    /// The peer's loopback address.
    pub observed_ip: std::net::IpAddr,
    /// The EHLO name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helo: Option<String>,
    /// The inbound connector of record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Originating (true) or Incoming.
    pub originating: bool,
    /// `AuthAs Internal`.
    pub internal: bool,
    /// Relay granted.
    pub relay_allowed: bool,
    /// The connector of record's `CloudServicesMailEnabled`.
    pub cross_premises: bool,
    /// The route source the pipeline planned with (the message came from on-premises).
    pub from_on_premises: bool,
    /// Accepted at (simulated ms).
    pub received_at: i64,
    /// For an NDR: the internal id of the message it reports on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ndr_for: Option<u64>,
}

impl MessageMeta {
    /// The record of `message`, planned from on-premises or not, an NDR for `ndr_for` or not.
    pub fn of(message: &AcceptedMessage, from_on_premises: bool, ndr_for: Option<u64>) -> Self {
        let (connector, originating, internal, relay_allowed, cross_premises) = match &message.verdict {
            InboundVerdict::Accepted { connector, direction, internal, relay_allowed, cross_premises, .. } => {
                (connector.clone(), *direction == Direction::Originating, *internal, *relay_allowed, *cross_premises)
            }
            InboundVerdict::Rejected { .. } => {
                (message.verdict.connector().map(str::to_string), false, false, false, false)
            }
        };
        let p = &message.envelope.params;
        MessageMeta {
            v: 1,
            id: message.internal_id,
            message_id: message.message_id.clone(),
            sender: message.envelope.sender.as_ref().map(|s| s.to_string()),
            recipients: message.envelope.recipients.iter().map(|r| r.to_string()).collect(),
            size: p.size,
            body: match p.body {
                Body::SevenBit => "7BIT",
                Body::EightBitMime => "8BITMIME",
                Body::BinaryMime => "BINARYMIME",
            }
            .to_string(),
            smtputf8: p.smtputf8,
            ret_full: p.ret_full,
            envid: p.envid.clone(),
            peer_ip: message.peer.ip,
            observed_ip: message.peer.observed_ip,
            helo: message.peer.helo.clone(),
            connector,
            originating,
            internal,
            relay_allowed,
            cross_premises,
            from_on_premises,
            received_at: message.received_at.as_millis(),
            ndr_for,
        }
    }

    /// The message again, with `data` as its content. The inbound verdict's list of checks and the
    /// peer's TLS facts are not kept: routing uses [`MessageMeta::from_on_premises`] instead.
    pub fn message(&self, data: Vec<u8>) -> io::Result<AcceptedMessage> {
        let bad = |what: &str, e: String| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"));
        let sender = match &self.sender {
            Some(s) => Some(s.parse::<EmailAddress>().map_err(|e| bad("sender", e.to_string()))?),
            None => None,
        };
        let recipients = self
            .recipients
            .iter()
            .map(|r| r.parse::<EmailAddress>().map_err(|e| bad("recipient", e.to_string())))
            .collect::<io::Result<Vec<_>>>()?;
        let body = match self.body.as_str() {
            "8BITMIME" => Body::EightBitMime,
            "BINARYMIME" => Body::BinaryMime,
            _ => Body::SevenBit,
        };
        let mut peer = PeerFacts::new(self.observed_ip, 0, self.peer_ip);
        peer.helo = self.helo.clone();
        Ok(AcceptedMessage {
            internal_id: self.id,
            message_id: self.message_id.clone(),
            envelope: Envelope {
                sender,
                params: MailParams {
                    size: self.size,
                    body,
                    smtputf8: self.smtputf8,
                    ret_full: self.ret_full,
                    envid: self.envid.clone(),
                },
                recipients,
            },
            peer,
            verdict: InboundVerdict::Accepted {
                connector: self.connector.clone(),
                direction: if self.originating { Direction::Originating } else { Direction::Incoming },
                internal: self.internal,
                relay_allowed: self.relay_allowed,
                cross_premises: self.cross_premises,
                checks: Vec::new(),
            },
            data,
            received_at: Timestamp::from_millis(self.received_at),
            // Not journaled: a resumed message routes as if delivered (mailsim's choice).
            auth: None,
        })
    }
}

/// Recipients of a message deferred by an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredRecord {
    /// The message's internal id.
    pub id: u64,
    /// The recipients.
    pub recipients: Vec<String>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Next attempt (simulated ms).
    pub retry_at: i64,
    /// When this was recorded (simulated ms).
    pub at: i64,
    /// The last error, wire form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Recipients of a message that are done: delivered, or failed (their NDR queued before this).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedRecord {
    /// The message's internal id.
    pub id: u64,
    /// The recipients.
    pub recipients: Vec<String>,
}

/// Where a recovered recipient stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientState {
    /// Attempts made (0: never attempted, or in flight when the process stopped).
    pub attempts: u32,
    /// When the next attempt is due; `None`: at once.
    pub retry_at: Option<Timestamp>,
    /// The last error.
    pub last_error: Option<Reply>,
}

/// A message found in the spool with recipients still to deliver.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The message.
    pub message: AcceptedMessage,
    /// Whether it was planned from on-premises.
    pub from_on_premises: bool,
    /// Its unfinished recipients.
    pub pending: Vec<(EmailAddress, RecipientState)>,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Messages with unfinished recipients, in acceptance order.
    pub messages: Vec<Recovered>,
    /// Recipients the journal had unfinished but the trace shows done (finished now).
    pub reconciled: usize,
    /// Bytes at the end of the journal that did not form a whole record (a write cut short).
    pub torn_bytes: u64,
    /// The latest simulated time recorded: the clock should not restart before it.
    pub latest: Option<Timestamp>,
}

impl Recovery {
    /// Unfinished recipients.
    pub fn recipients(&self) -> usize {
        self.messages.iter().map(|m| m.pending.len()).sum()
    }
}

#[derive(Debug)]
enum Op {
    /// `frame`: where the record's frame is in the inbox's buffer.
    Record {
        id: u64,
        kind: Kind,
        frame: std::ops::Range<usize>,
        ack: Option<Ack>,
    },
    Close(oneshot::Sender<()>),
}

#[derive(Clone, Debug)]
enum Kind {
    Accept(Vec<String>),
    Deferred,
    Finished(Vec<String>),
}

/// The durable queue's writer. Cheap to share; records go to one writer thread.
#[derive(Debug)]
pub struct Spool {
    inbox: Arc<Inbox>,
    dir: PathBuf,
}

/// Records on their way to the writer thread. A record someone waits for (an `Accept` before its
/// `250`, the close) wakes the writer; the others (`Deferred`, `Finished`, an NDR's `Accept`) only
/// queue, and go out with the next awaited batch or after [`LAZY_WRITE`] at most: under load a
/// wake-up per state change cost the sessions' thread more than writing the record.
#[derive(Default)]
struct Inbox {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Writes the files whose lines must reach the disk before the journal's records
    /// ([`Spool::write_first`]).
    first: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("queue", &self.queue).finish_non_exhaustive()
    }
}

/// Tells a spool's writer thread that a buffer of [`Spool::write_first`] holds lines to write
/// (from [`Spool::write_behind`]).
#[derive(Clone, Debug)]
pub struct WriteBehind(std::sync::Weak<Inbox>);

impl WriteBehind {
    /// Asks the writer to write the buffers within [`LAZY_WRITE`]; `false` when it no longer
    /// writes them (the spool is closed): the caller writes its lines itself.
    pub fn pending(&self) -> bool {
        let Some(inbox) = self.0.upgrade() else { return false };
        let mut queue = inbox.queue.lock().expect("spool inbox lock");
        if queue.closed || inbox.first.get().is_none() {
            return false;
        }
        queue.dirty = true;
        if queue.sleeping == Some(false) {
            queue.sleeping = None;
            inbox.wake.notify_one();
        }
        true
    }
}

#[derive(Debug, Default)]
struct Queue {
    ops: Vec<Op>,
    /// The frames of `ops`, one after the other.
    bytes: Vec<u8>,
    /// Some op in `ops` is awaited.
    urgent: bool,
    /// The writer sleeps on `wake`: until notified (`Some(false)`) or for [`LAZY_WRITE`] at most
    /// (`Some(true)`).
    sleeping: Option<bool>,
    /// No more ops are taken.
    closed: bool,
    /// A buffer of [`Spool::write_first`] holds lines.
    dirty: bool,
}

/// How long a record nobody waits for may sit in the inbox of an idle writer.
pub const LAZY_WRITE: std::time::Duration = std::time::Duration::from_millis(5);

/// The spool could not take the message (disk full, I/O error, writer gone).
#[derive(Debug, thiserror::Error)]
#[error("spool: {0}")]
pub struct SpoolError(#[from] pub io::Error);

impl Spool {
    /// Opens (creating) `dir`, locks it against a second process, recovers what it holds
    /// (reconciled with `trace`, the trace's JSON-lines file, when given), compacts the journal and
    /// starts the writer.
    pub fn open(dir: &Path, trace: Option<&Path>) -> io::Result<(Spool, Recovery)> {
        Self::open_compacting_at(dir, trace, COMPACT_AT)
    }

    fn open_compacting_at(dir: &Path, trace: Option<&Path>, compact_at: u64) -> io::Result<(Spool, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        if let Err(e) = lock.try_lock() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another mailsim ({e})", dir.display()),
            ));
        }
        let path = dir.join(JOURNAL);
        let mut replay = Replay::default();
        let mut torn_bytes = 0;
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            torn_bytes = replay.read(&bytes)?;
        }
        let reconciled = match trace {
            Some(t) if t.exists() => replay.reconcile(t)?,
            _ => 0,
        };
        let (file, live) = replay.compact(dir)?;
        let recovery = replay.recovery(reconciled, torn_bytes)?;
        let inbox = Arc::new(Inbox::default());
        let writer = Writer::new(dir.to_path_buf(), file, live, compact_at, lock);
        let theirs = inbox.clone();
        std::thread::Builder::new().name("mailsim-spool".into()).spawn(move || writer.run(&theirs))?;
        Ok((Spool { inbox, dir: dir.to_path_buf() }, recovery))
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues a record for the writer, its frame appended by `frame` straight to the inbox's
    /// buffer (no buffer per record, none freed by another thread).
    fn send(&self, id: u64, kind: Kind, ack: Option<Ack>, frame: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut queue = self.inbox.queue.lock().expect("spool inbox lock");
        if queue.closed {
            return false;
        }
        let start = queue.bytes.len();
        frame(&mut queue.bytes);
        let frame = start..queue.bytes.len();
        let op = Op::Record { id, kind, frame, ack };
        self.enqueue(queue, op);
        true
    }

    fn enqueue(&self, mut queue: std::sync::MutexGuard<'_, Queue>, op: Op) {
        let awaited = matches!(op, Op::Record { ack: Some(_), .. } | Op::Close(_));
        queue.closed = matches!(op, Op::Close(_));
        queue.ops.push(op);
        queue.urgent |= awaited;
        // A writer asleep until notified hears of the first record; one asleep for a while hears
        // only of an awaited one.
        if queue.sleeping == Some(false) || (awaited && queue.sleeping.is_some()) {
            queue.sleeping = None;
            self.inbox.wake.notify_one();
        }
    }

    /// Makes the writer thread call `first` before it writes each batch of records, and within
    /// [`LAZY_WRITE`] of a [`WriteBehind::pending`]: the pipeline's mailbox copies and trace lines
    /// are written there, by one thread, in the order a kill must find them (a recipient's copy,
    /// then its trace row, then its `Finished` record). Set once; later calls are ignored.
    pub fn write_first(&self, first: impl Fn() + Send + Sync + 'static) {
        let _ = self.inbox.first.set(Box::new(first));
    }

    /// The handle buffers use to have their lines written by the writer thread.
    pub fn write_behind(&self) -> WriteBehind {
        WriteBehind(Arc::downgrade(&self.inbox))
    }

    /// Journals an accepted message; resolves once it is on disk (the `250` may then be sent).
    pub async fn accept(&self, meta: &MessageMeta, data: &[u8]) -> Result<(), SpoolError> {
        let (ack, done) = oneshot::channel();
        let kind = Kind::Accept(keys(&meta.recipients));
        if !self.send(meta.id, kind, Some(ack), |out| push_accept_frame(out, meta, data)) {
            return Err(io::Error::other("the spool is closed").into());
        }
        match done.await {
            Ok(r) => r.map_err(SpoolError),
            Err(_) => Err(io::Error::other("the spool writer stopped").into()),
        }
    }

    /// Journals a message without waiting for the disk (an NDR, generated inside).
    pub fn accept_nowait(&self, meta: &MessageMeta, data: &[u8]) {
        let kind = Kind::Accept(keys(&meta.recipients));
        self.send(meta.id, kind, None, |out| push_accept_frame(out, meta, data));
    }

    /// Journals recipients deferred after `attempts` attempts.
    pub fn deferred(
        &self,
        id: u64,
        recipients: &[EmailAddress],
        attempts: u32,
        retry_at: Timestamp,
        at: Timestamp,
        last_error: Option<&Reply>,
    ) {
        let record = DeferredRecord {
            id,
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            attempts,
            retry_at: retry_at.as_millis(),
            at: at.as_millis(),
            last_error: last_error.map(|r| r.to_wire()),
        };
        self.send(id, Kind::Deferred, None, |out| push_json_frame(out, b'D', &record));
    }

    /// Journals recipients done (delivered, or failed with their NDR already journaled).
    pub fn finished<'a>(&self, id: u64, recipients: impl IntoIterator<Item = &'a EmailAddress>) {
        let record = FinishedRecord { id, recipients: recipients.into_iter().map(|r| r.to_string()).collect() };
        if record.recipients.is_empty() {
            return;
        }
        let kind = Kind::Finished(keys(&record.recipients));
        self.send(id, kind, None, |out| push_json_frame(out, b'F', &record));
    }

    /// Stops taking records without waiting: the writer commits what it has and releases the
    /// directory shortly after (for `Drop`).
    pub fn close_now(&self) {
        let mut queue = self.inbox.queue.lock().expect("spool inbox lock");
        queue.closed = true;
        self.inbox.wake.notify_one();
    }

    /// Commits what is queued, stops the writer and releases the directory. Records sent afterwards
    /// are dropped (a stopped world's late attempts are retried by the next start).
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        {
            let queue = self.inbox.queue.lock().expect("spool inbox lock");
            if queue.closed {
                return;
            }
            self.enqueue(queue, Op::Close(done));
        }
        let _ = closed.await;
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.close_now();
    }
}

impl Inbox {
    /// Waits for ops to write (see [`Inbox`]) and takes them, their frames swapped into `bytes`
    /// (left empty by the caller: the inbox keeps its capacity for the next ones); `None` once the
    /// spool is closed and every op was taken.
    fn take(&self, bytes: &mut Vec<u8>) -> Option<Vec<Op>> {
        let mut queue = self.queue.lock().expect("spool inbox lock");
        loop {
            let lazy = !queue.ops.is_empty() || queue.dirty;
            if queue.urgent || (queue.closed && lazy) {
                break;
            }
            if queue.closed {
                return None;
            }
            queue.sleeping = Some(lazy);
            queue = if lazy {
                self.wake.wait_timeout(queue, LAZY_WRITE).expect("spool inbox lock").0
            } else {
                self.wake.wait(queue).expect("spool inbox lock")
            };
            queue.sleeping = None;
            if lazy {
                break;
            }
        }
        queue.urgent = false;
        queue.dirty = false;
        std::mem::swap(bytes, &mut queue.bytes);
        Some(std::mem::take(&mut queue.ops))
    }
}

fn keys(recipients: &[String]) -> Vec<String> {
    recipients.iter().map(|r| r.to_ascii_lowercase()).collect()
}

#[cfg(test)]
fn accept_frame(meta: &MessageMeta, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_accept_frame(&mut out, meta, data);
    out
}

/// Appends the `Accept` frame of `meta` and `data` to `out`.
fn push_accept_frame(out: &mut Vec<u8>, meta: &MessageMeta, data: &[u8]) {
    push_frame(out, b'A', |out| {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut *out, meta).expect("records serialize");
        let json_len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&json_len.to_le_bytes());
        out.extend_from_slice(data);
    });
}

/// Appends a frame of `kind` whose payload is `record` as JSON to `out`.
fn push_json_frame(out: &mut Vec<u8>, kind: u8, record: &impl Serialize) {
    push_frame(out, kind, |out| serde_json::to_writer(out, record).expect("records serialize"));
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN + 1 + payload.len());
    push_frame(&mut out, kind, |out| out.extend_from_slice(payload));
    out
}

/// Appends a frame of `kind` to `out`, its payload written in place by `payload` (no second copy),
/// then its length and check.
fn push_frame(out: &mut Vec<u8>, kind: u8, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.resize(start + HEAD_LEN, 0);
    out.push(kind);
    payload(out);
    let body = start + HEAD_LEN;
    let len = (out.len() - body) as u32;
    let check = crc32fast::hash(&out[body..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..body].copy_from_slice(&check.to_le_bytes());
}

/// The journal formats this spool reads: version 2 is written, version 1 read and rewritten.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    /// Length and check before a frame's body.
    fn head_len(self) -> usize {
        match self {
            Version::V1 => 12,
            Version::V2 => HEAD_LEN,
        }
    }

    /// Whether `check` is the check this version writes for `body`.
    fn checks(self, body: &[u8], check: &[u8]) -> bool {
        match self {
            Version::V1 => ring::digest::digest(&ring::digest::SHA256, body).as_ref()[..8] == *check,
            Version::V2 => crc32fast::hash(body).to_le_bytes() == *check,
        }
    }
}

/// One whole frame at the start of `bytes`: (kind, payload, frame length), or `None` when what is
/// there is cut short or does not check.
fn next_frame(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    next_frame_of(Version::V2, bytes)
}

fn next_frame_of(version: Version, bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    let head = version.head_len();
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let body = bytes.get(head..head.checked_add(len)?)?;
    if len == 0 || !version.checks(body, &bytes[4..head]) {
        return None;
    }
    Some((body[0], &body[1..], head + len))
}

/// One message's state, as replayed.
#[derive(Default)]
struct Entry {
    /// The `A` frame, whole.
    accept: Vec<u8>,
    /// Recipient keys not finished, each with its latest `D` record (index into `deferred`).
    pending: BTreeMap<String, Option<usize>>,
    /// Recipient keys finished.
    finished: BTreeSet<String>,
    deferred: Vec<DeferredRecord>,
    meta: Option<MessageMeta>,
}

#[derive(Default)]
struct Replay {
    order: Vec<u64>,
    entries: HashMap<u64, Entry>,
    /// Messages an NDR on disk reports on.
    ndr_for: HashSet<u64>,
    latest: i64,
}

impl Replay {
    /// Replays a journal; returns how many bytes at its end were not a whole record (the zeros the
    /// writer grows the file by are not counted).
    fn read(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let (mut rest, version) = if let Some(rest) = bytes.strip_prefix(MAGIC) {
            (rest, Version::V2)
        } else if let Some(rest) = bytes.strip_prefix(MAGIC_V1) {
            (rest, Version::V1)
        } else if bytes.is_empty() {
            return Ok(0);
        } else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a mailsim spool journal (or another version)"));
        };
        while let Some((kind, payload, used)) = next_frame_of(version, rest) {
            let bad = |e: serde_json::Error| io::Error::new(io::ErrorKind::InvalidData, e);
            match kind {
                b'A' => {
                    let meta_len = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
                    let meta: MessageMeta = serde_json::from_slice(&payload[4..4 + meta_len]).map_err(bad)?;
                    self.latest = self.latest.max(meta.received_at);
                    if let Some(of) = meta.ndr_for {
                        self.ndr_for.insert(of);
                    }
                    let entry = self.entries.entry(meta.id).or_insert_with(|| {
                        self.order.push(meta.id);
                        Entry::default()
                    });
                    // Kept as a version 2 frame: compaction copies it into the new journal.
                    entry.accept = match version {
                        Version::V2 => rest[..used].to_vec(),
                        Version::V1 => frame(b'A', payload),
                    };
                    entry.pending = keys(&meta.recipients).into_iter().map(|k| (k, None)).collect();
                    entry.finished.clear();
                    entry.meta = Some(meta);
                }
                b'D' => {
                    let d: DeferredRecord = serde_json::from_slice(payload).map_err(bad)?;
                    self.latest = self.latest.max(d.at);
                    if let Some(entry) = self.entries.get_mut(&d.id) {
                        let at = entry.deferred.len();
                        for k in keys(&d.recipients) {
                            if let Some(slot) = entry.pending.get_mut(&k) {
                                *slot = Some(at);
                            }
                        }
                        entry.deferred.push(d);
                    }
                }
                b'F' => {
                    let f: FinishedRecord = serde_json::from_slice(payload).map_err(bad)?;
                    if let Some(entry) = self.entries.get_mut(&f.id) {
                        for k in keys(&f.recipients) {
                            if entry.pending.remove(&k).is_some() {
                                entry.finished.insert(k);
                            }
                        }
                    }
                }
                _ => break,
            }
            rest = &rest[used..];
        }
        let zeros = rest.iter().rev().take_while(|&&b| b == 0).count();
        Ok((rest.len() - zeros) as u64)
    }

    /// Finishes recipients the trace shows delivered, or failed with their NDR journaled (or
    /// none due, the sender being null). Returns how many.
    fn reconcile(&mut self, trace: &Path) -> io::Result<usize> {
        use mailsim_core::trace::{Event, TraceEvent};
        let text = std::fs::read(trace)?;
        let mut done = 0;
        // A line cut short by a kill, or glued to the next, does not parse: skip it.
        for line in text.split(|b| *b == b'\n') {
            let Ok(ev) = serde_json::from_slice::<TraceEvent>(line) else { continue };
            let (Some(id), Some(rcpt)) = (ev.internal_id, ev.recipient.as_deref()) else { continue };
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            let null_sender = entry.meta.as_ref().is_some_and(|m| m.sender.is_none());
            let finished = match ev.event {
                Event::Deliver | Event::Send => true,
                Event::Fail => null_sender || self.ndr_for.contains(&id),
                _ => false,
            };
            let key = rcpt.to_ascii_lowercase();
            if finished && entry.pending.remove(&key).is_some() {
                entry.finished.insert(key);
                done += 1;
            }
        }
        Ok(done)
    }

    /// Writes the live records to a new journal that replaces the old one; returns it open for
    /// appending, and the live state the writer tracks.
    fn compact(&mut self, dir: &Path) -> io::Result<(File, Live)> {
        let mut live = Live::default();
        let tmp = dir.join("journal.new");
        let mut out = BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        let mut size = MAGIC.len() as u64;
        for id in &self.order {
            let entry = &self.entries[id];
            if entry.pending.is_empty() {
                continue;
            }
            let mut frames = vec![entry.accept.clone()];
            let mut written = BTreeSet::new();
            for slot in entry.pending.values().flatten() {
                if written.insert(*slot) {
                    let json = serde_json::to_vec(&entry.deferred[*slot]).expect("records serialize");
                    frames.push(frame(b'D', &json));
                }
            }
            if !entry.finished.is_empty() {
                let f = FinishedRecord { id: *id, recipients: entry.finished.iter().cloned().collect() };
                frames.push(frame(b'F', &serde_json::to_vec(&f).expect("records serialize")));
            }
            let mut state = LiveMessage { pending: entry.pending.keys().cloned().collect(), frames: Vec::new() };
            for f in frames {
                out.write_all(&f)?;
                state.frames.push((size, f.len()));
                live.live_bytes += f.len() as u64;
                size += f.len() as u64;
            }
            live.messages.insert(*id, state);
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(JOURNAL))?;
        File::open(dir)?.sync_all()?;
        live.size = size;
        let file = OpenOptions::new().write(true).read(true).open(dir.join(JOURNAL))?;
        Ok((file, live))
    }

    fn recovery(&self, reconciled: usize, torn_bytes: u64) -> io::Result<Recovery> {
        let mut messages = Vec::new();
        for id in &self.order {
            let entry = &self.entries[id];
            if entry.pending.is_empty() {
                continue;
            }
            let meta = entry.meta.as_ref().expect("accepted entries have their meta");
            let (_, payload, _) = next_frame(&entry.accept).expect("frames read back");
            let meta_len = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
            let message = meta.message(payload[4 + meta_len..].to_vec())?;
            let pending = message
                .envelope
                .recipients
                .iter()
                .filter_map(|r| {
                    let slot = entry.pending.get(&r.to_string().to_ascii_lowercase())?;
                    let state = match slot.map(|i| &entry.deferred[i]) {
                        Some(d) => RecipientState {
                            attempts: d.attempts,
                            retry_at: Some(Timestamp::from_millis(d.retry_at)),
                            last_error: d.last_error.as_deref().and_then(Reply::parse),
                        },
                        None => RecipientState { attempts: 0, retry_at: None, last_error: None },
                    };
                    Some((r.clone(), state))
                })
                .collect();
            messages.push(Recovered { message, from_on_premises: meta.from_on_premises, pending });
        }
        let latest = (self.latest > 0).then(|| Timestamp::from_millis(self.latest));
        Ok(Recovery { messages, reconciled, torn_bytes, latest })
    }
}

/// A live message as the writer tracks it: its unfinished recipients and where in the journal the
/// frames that say so are (offset, length): compaction copies them from there, so the writer keeps
/// no message content in memory.
struct LiveMessage {
    pending: BTreeSet<String>,
    frames: Vec<(u64, usize)>,
}

#[derive(Default)]
struct Live {
    messages: BTreeMap<u64, LiveMessage>,
    /// Bytes in the journal file.
    size: u64,
    /// Bytes of the live messages' frames.
    live_bytes: u64,
}

type Ack = oneshot::Sender<io::Result<()>>;

/// Answers the senders of a batch with what became of its flush.
fn answer(acks: &mut Vec<Ack>, flushed: &io::Result<()>) {
    for ack in acks.drain(..) {
        let _ = ack.send(flushed.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
    }
}

struct Writer {
    dir: PathBuf,
    file: Arc<File>,
    /// The file's length: `live.size` and the zeros grown ahead of it.
    allocated: u64,
    live: Live,
    compact_at: u64,
    _lock: File,
}

impl Writer {
    fn new(dir: PathBuf, file: File, live: Live, compact_at: u64, lock: File) -> Writer {
        let allocated = live.size;
        Writer { dir, file: Arc::new(file), allocated, live, compact_at, _lock: lock }
    }

    fn run(mut self, inbox: &Inbox) {
        let mut batch = Vec::new();
        let mut acks = Vec::new();
        let mut closing = None;
        let mut bytes = Vec::new();
        let mut lazy = Vec::new();
        while let Some(ops) = inbox.take(&mut bytes) {
            // Records someone waits for go out first, on their own (the commit's latency is the
            // sessions' `250`); the others, and the buffers written before them, follow.
            for op in ops {
                match op {
                    Op::Record { id, kind, frame, ack: Some(ack) } => {
                        self.track(id, kind, self.live.size + batch.len() as u64, frame.len());
                        batch.extend_from_slice(&bytes[frame]);
                        acks.push(ack);
                    }
                    Op::Record { id, kind, frame, ack: None } => lazy.push((id, kind, frame)),
                    Op::Close(done) => {
                        closing = Some(done);
                        break;
                    }
                }
            }
            match self.write(&batch) {
                Ok(()) => {
                    // Flushed here, by the thread that wrote: records sent meanwhile queue up
                    // without waking anyone and go out together in the next batch (group commit).
                    // Records nobody waits for (state changes) are not flushed on their own: the
                    // next acknowledged batch, or the close, flushes them (the contract above).
                    let flushed = if acks.is_empty() { Ok(()) } else { self.file.sync_data() };
                    if let Err(e) = &flushed {
                        tracing::error!(error = %e, dir = %self.dir.display(), "could not flush the spool journal");
                    }
                    answer(&mut acks, &flushed);
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %self.dir.display(), "could not write the spool journal");
                    answer(&mut acks, &Err(e));
                }
            }
            batch.clear();
            if let Some(first) = inbox.first.get() {
                first();
            }
            for (id, kind, frame) in lazy.drain(..) {
                self.track(id, kind, self.live.size + batch.len() as u64, frame.len());
                batch.extend_from_slice(&bytes[frame]);
            }
            bytes.clear();
            if let Err(e) = self.write(&batch) {
                tracing::error!(error = %e, dir = %self.dir.display(), "could not write the spool journal");
            }
            batch.clear();
            if let Some(done) = closing.take() {
                // A journal closed in good order ends at its last record: the zeros grown ahead go.
                if let Err(e) = self.file.set_len(self.live.size).and_then(|()| self.file.sync_data()) {
                    tracing::error!(error = %e, dir = %self.dir.display(), "could not close the spool journal");
                }
                // The journal and the directory lock are released before the closer hears of it,
                // so a new spool can open the directory at once.
                drop(self);
                let _ = done.send(());
                return;
            }
            let grown = self.live.size > self.compact_at && self.live.size > 2 * self.live.live_bytes;
            if grown && let Err(e) = self.compact() {
                tracing::error!(error = %e, dir = %self.dir.display(), "could not compact the spool journal")
            }
        }
    }

    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        let end = self.live.size + batch.len() as u64;
        let mut written = Ok(());
        if end > self.allocated {
            let grown = (end - self.allocated).div_ceil(PREALLOCATE) * PREALLOCATE;
            let zeros = vec![0u8; usize::try_from(grown).unwrap_or(usize::MAX)];
            written = self.file.write_all_at(&zeros, self.allocated);
            if written.is_ok() {
                self.allocated += grown;
            }
        }
        let written = written.and_then(|()| self.file.write_all_at(batch, self.live.size));
        if written.is_err() {
            // Whatever part of the batch reached the file was not acknowledged: cut it off, so the
            // offsets tracked stay true and the next batch starts on a frame boundary.
            let _ = self.file.set_len(self.live.size);
            self.allocated = self.live.size;
            return written;
        }
        self.live.size += batch.len() as u64;
        Ok(())
    }

    fn track(&mut self, id: u64, kind: Kind, offset: u64, len: usize) {
        let live = &mut self.live;
        match kind {
            Kind::Accept(rcpts) => {
                let m = LiveMessage { pending: rcpts.into_iter().collect(), frames: vec![(offset, len)] };
                live.live_bytes += len as u64;
                if let Some(old) = live.messages.insert(id, m) {
                    live.live_bytes -= old.frames.iter().map(|f| f.1 as u64).sum::<u64>();
                }
            }
            Kind::Deferred => {
                if let Some(m) = live.messages.get_mut(&id) {
                    m.frames.push((offset, len));
                    live.live_bytes += len as u64;
                }
            }
            Kind::Finished(rcpts) => {
                if let Some(m) = live.messages.get_mut(&id) {
                    for r in &rcpts {
                        m.pending.remove(r);
                    }
                    if m.pending.is_empty() {
                        let gone = live.messages.remove(&id).expect("just found");
                        live.live_bytes -= gone.frames.iter().map(|f| f.1 as u64).sum::<u64>();
                    } else {
                        m.frames.push((offset, len));
                        live.live_bytes += len as u64;
                    }
                }
            }
        }
    }

    /// Rewrites the journal with the live messages' frames only.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.dir.join("journal.new");
        let mut out = BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        let mut size = MAGIC.len() as u64;
        let mut moved = Vec::new();
        let mut buf = Vec::new();
        for (id, m) in &self.live.messages {
            let mut frames = Vec::with_capacity(m.frames.len());
            for &(offset, len) in &m.frames {
                buf.resize(len, 0);
                std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut buf, offset)?;
                out.write_all(&buf)?;
                frames.push((size, len));
                size += len as u64;
            }
            moved.push((*id, frames));
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(JOURNAL))?;
        File::open(&self.dir)?.sync_all()?;
        self.file = Arc::new(OpenOptions::new().write(true).read(true).open(self.dir.join(JOURNAL))?);
        self.allocated = size;
        for (id, frames) in moved {
            self.live.messages.get_mut(&id).expect("live").frames = frames;
        }
        self.live.size = size;
        Ok(())
    }
}

/// Reads a journal without opening it for writing: for tools and tests.
pub fn inspect(dir: &Path) -> io::Result<Recovery> {
    let mut replay = Replay::default();
    let mut bytes = Vec::new();
    match File::open(dir.join(JOURNAL)) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let torn = replay.read(&bytes)?;
    replay.recovery(0, torn)
}

#[cfg(test)]
mod tests;
