//! The tenant's mailbox store: every message delivered to a local mailbox.
//!
//! Contract (issue 14 items 3 and 4):
//! - **Bounded memory.** The store holds at most [`StoreLimits::max_messages`] copies and
//!   [`StoreLimits::max_bytes`] of message content; past either cap it evicts the oldest copies
//!   first and counts them ([`StoreStats::evicted`]). A long-running `serve` therefore stays within
//!   a fixed budget however much mail it takes.
//! - **On disk, read back on demand.** With a state directory every copy is appended to its
//!   mailbox's file, `<dir>/mailboxes/<address>.mbox` (mboxrd: a `From <sender> <date>` line, the
//!   message with its `>From ` lines quoted, a blank line; any mail client or `mutt -f` opens it),
//!   and memory keeps only its envelope, facts and where it is in the file (no content); reading
//!   ([`MailStore::delivered`], [`MailStore::mailbox`], [`MailStore::read`]) loads the content back
//!   from there, unquoted, byte for byte as delivered. Copies evicted from memory stay on disk.
//!   One append per copy rather than one file per copy: creating a file per message cost more
//!   than the whole durable queue (issue 9's speed figures).
//! - **Written behind, in order.** Under a durable queue the copies are appended to memory and
//!   written by the queue's writer thread ([`MailStore::write_behind`], one write per mailbox per
//!   batch), before the trace rows and journal records that report them; reads write what is
//!   pending first. A write that fails then is logged and counted, and the copies it held read back
//!   as zeros (their place in the file is kept, so every later copy still reads back).
//! - **Never overwritten.** Mailbox files are only ever appended to. A copy whose internal id the
//!   mailbox already holds is refused ([`StoreError::Exists`]), logged and counted
//!   ([`StoreStats::write_errors`]), and the copy already there is left as it is. Internal ids are
//!   unique per world and across restarts on one state directory (`mailsim_core::ids`), so this
//!   never happens in a sound run.
//! - **Listing.** [`MailStore::list`] pages through the copies held, oldest first, by a sequence
//!   number that never repeats, optionally for one mailbox: what an HTTP listing builds on.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use tokio::sync::Notify;

use crate::spool::WriteBehind;

/// One delivered copy: the message and the mailbox it reached.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The mailbox.
    pub mailbox: EmailAddress,
    /// The message as stored (tenant headers included).
    pub message: Arc<AcceptedMessage>,
}

/// Caps on what the store holds in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Copies held (default 2,000).
    pub max_messages: usize,
    /// Octets of message content held (default 8 MiB); under a state directory content is on
    /// disk and this counts nothing.
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self { max_messages: 2_000, max_bytes: 8 << 20 }
    }
}

/// What the store did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Copies delivered since the start.
    pub delivered: u64,
    /// Copies held in memory now.
    pub held: usize,
    /// Octets of content held in memory now.
    pub held_bytes: usize,
    /// Copies dropped from memory to stay within the caps (still on disk under a state directory).
    pub evicted: u64,
    /// Copies whose file could not be written (see [`StoreError`]).
    pub write_errors: u64,
}

/// A copy that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The mailbox holds a copy with this internal id: the id was used twice. Nothing was written.
    #[error(
        "{0}: the mailbox holds a message with this internal id already; refusing a second copy (internal id used twice)"
    )]
    Exists(PathBuf),
    /// Any other file error.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why (in the message, not linked as a source: said once).
        error: std::io::Error,
    },
}

/// One held copy. Under a state directory `message.data` is empty and `on_disk` says where it is.
#[derive(Debug)]
struct Held {
    seq: u64,
    mailbox: EmailAddress,
    message: Arc<AcceptedMessage>,
    on_disk: Option<Record>,
    bytes: usize,
}

/// Where a copy's quoted content is in its mailbox file.
#[derive(Clone, Debug)]
struct Record {
    path: Arc<PathBuf>,
    offset: u64,
    len: u64,
}

#[derive(Debug, Default)]
struct Inner {
    held: VecDeque<Held>,
    /// `(internal id, mailbox key)` of every held copy: a second copy of one id is refused.
    held_ids: std::collections::HashSet<(u64, String)>,
    stats: StoreStats,
    next_seq: u64,
}

/// The mailbox files open for appending.
#[derive(Debug, Default)]
struct Appenders {
    open: std::collections::HashMap<PathBuf, Appender>,
    /// Some appender holds records not written yet.
    pending: bool,
    /// Records taken from the appenders are being written (the files' lengths on disk are behind).
    in_flight: bool,
}

#[derive(Debug)]
struct Appender {
    path: Arc<PathBuf>,
    file: Arc<std::fs::File>,
    /// The file's length with `pending` written: the offset of the next record.
    len: u64,
    /// The file's length once the records taken from `pending` are written.
    written: u64,
    /// Records not written yet (see [`MailStore::write_behind`]).
    pending: Vec<u8>,
    /// The buffer last written, emptied: the next `pending` (no allocation per batch).
    spare: Vec<u8>,
}

/// Open mailbox files kept at most; past it they are all closed and reopened on demand.
const OPEN_MAILBOX_FILES: usize = 256;

impl Drop for Appenders {
    fn drop(&mut self) {
        for a in self.open.values().filter(|a| !a.pending.is_empty()) {
            if let Err(e) = (&*a.file).write_all(&a.pending) {
                tracing::error!(path = %a.path.display(), error = %e, "could not store delivered messages");
            }
        }
    }
}

/// One page of [`MailStore::list`].
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// `(sequence number, copy)`, oldest first; under a state directory the content is read back.
    pub items: Vec<(u64, Delivered)>,
    /// Pass as `after` for the next page; `None` when this was the last.
    pub next: Option<u64>,
}

/// Mailboxes.
#[derive(Debug, Default)]
pub struct MailStore {
    inner: Mutex<Inner>,
    limits: StoreLimits,
    quarantined: Mutex<Vec<Delivered>>,
    dir: Option<PathBuf>,
    appenders: Mutex<Appenders>,
    /// Held while records taken from the appenders are written: a file's records go out in order.
    writing: Mutex<()>,
    /// Who writes the records when they are not written at once (the durable queue's writer).
    behind: std::sync::OnceLock<WriteBehind>,
    changed: Notify,
}

impl MailStore {
    /// An in-memory store with the default caps.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store that appends to `<dir>/mailboxes/<address>.mbox` and reads content back from
    /// there.
    pub fn with_dir(dir: PathBuf) -> Self {
        Self { dir: Some(dir), ..Self::default() }
    }

    /// Leaves writing the mailbox files to `behind` (the durable queue's writer, which writes a
    /// copy before the trace row and the journal record that report it) instead of one write per
    /// copy. A file error is then logged and counted when the records are written; the copies
    /// lost read back as zeros.
    pub fn write_behind(&self, behind: WriteBehind) {
        let _ = self.behind.set(behind);
    }

    /// Writes the mailbox records appended so far; returns the first file that could not be
    /// written.
    pub fn write_pending(&self) -> Result<(), StoreError> {
        let _writing = self.writing.lock().expect("store writing lock");
        let chunks: Vec<_> = {
            let mut appenders = self.appenders.lock().expect("store files lock");
            if !std::mem::take(&mut appenders.pending) {
                return Ok(());
            }
            appenders.in_flight = true;
            let pending = appenders.open.values_mut().filter(|a| !a.pending.is_empty());
            pending
                .map(|a| {
                    let start = a.written;
                    a.written = a.len;
                    let spare = std::mem::take(&mut a.spare);
                    (a.path.clone(), a.file.clone(), start, std::mem::replace(&mut a.pending, spare))
                })
                .collect()
        };
        let mut result = Ok(());
        let mut written = Vec::with_capacity(chunks.len());
        for (path, file, start, mut records) in chunks {
            if let Err(error) = (&*file).write_all(&records) {
                // The records after these were given offsets past them: the lost ones become a
                // gap of zeros (a hole needs no free space), so that every later offset holds.
                let _ = file.set_len(start + records.len() as u64);
                let e = StoreError::Io { path: path.to_path_buf(), error };
                tracing::error!(error = %e, lost = records.len(), "could not store delivered messages; their place in the mailbox file is left as zeros");
                self.inner.lock().expect("store lock").stats.write_errors += 1;
                result = result.and(Err(e));
            }
            records.clear();
            written.push((path, records));
        }
        let mut appenders = self.appenders.lock().expect("store files lock");
        appenders.in_flight = false;
        for (path, spare) in written {
            if let Some(a) = appenders.open.get_mut(&*path) {
                a.spare = spare;
            }
        }
        result
    }

    /// The same store with other caps.
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The caps.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        self.inner.lock().expect("store lock").stats
    }

    /// Delivers one copy to a mailbox. Under a state directory it is appended to the mailbox's
    /// file; a copy of an internal id the mailbox already holds is refused, and a file error is
    /// logged, counted and returned, the copy then held in memory so that it is not lost while the
    /// process runs.
    pub fn deliver(&self, mailbox: EmailAddress, message: Arc<AcceptedMessage>) -> Result<(), StoreError> {
        let key = mailbox.key();
        let twice = self.inner.lock().expect("store lock").held_ids.contains(&(message.internal_id, key.clone()));
        if twice {
            let path = self.dir.as_ref().map_or_else(|| PathBuf::from(&key), |d| mailbox_file(d, "mailboxes", &key));
            let e = StoreError::Exists(path);
            tracing::error!(error = %e, "could not store a delivered message");
            self.inner.lock().expect("store lock").stats.write_errors += 1;
            return Err(e);
        }
        let mut result = Ok(());
        let (message, on_disk, bytes) = match &self.dir {
            None => {
                let bytes = message.data.len();
                (message, None, bytes)
            }
            Some(dir) => match self.append(&mailbox_file(dir, "mailboxes", &key), &message) {
                Ok(record) => (Arc::new(message.with_data(Vec::new())), Some(record), 0),
                Err(e) => {
                    tracing::error!(error = %e, "could not store a delivered message");
                    result = Err(e);
                    let bytes = message.data.len();
                    (message, None, bytes)
                }
            },
        };
        {
            let mut inner = self.inner.lock().expect("store lock");
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.stats.delivered += 1;
            inner.stats.write_errors += u64::from(result.is_err());
            inner.stats.held_bytes += bytes;
            inner.held_ids.insert((message.internal_id, key));
            inner.held.push_back(Held { seq, mailbox, message, on_disk, bytes });
            while inner.held.len() > self.limits.max_messages
                || (inner.stats.held_bytes > self.limits.max_bytes && inner.held.len() > 1)
            {
                let Some(old) = inner.held.pop_front() else { break };
                inner.held_ids.remove(&(old.message.internal_id, old.mailbox.key()));
                inner.stats.held_bytes -= old.bytes;
                inner.stats.evicted += 1;
            }
            inner.stats.held = inner.held.len();
        }
        self.changed.notify_waiters();
        result
    }

    /// Appends one copy to `path` as an mboxrd record; returns where its quoted content is.
    fn append(&self, path: &std::path::Path, message: &AcceptedMessage) -> Result<Record, StoreError> {
        let io = |error| StoreError::Io { path: path.to_path_buf(), error };
        let sender = message.envelope.sender.as_ref().map_or_else(|| "MAILER-DAEMON".to_owned(), ToString::to_string);
        let head = format!("From {sender} {}\n", message.received_at.asctime());
        let mut appenders = self.appenders.lock().expect("store files lock");
        if !appenders.open.contains_key(path) {
            // Files with records still to write stay open (a file reopened takes its length from
            // the disk): past the cap for the few milliseconds until they are written.
            if appenders.open.len() >= OPEN_MAILBOX_FILES && !appenders.pending && !appenders.in_flight {
                appenders.open.clear();
            }
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(io)?;
            }
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let shared = Arc::new(path.to_path_buf());
            let file = Arc::new(file);
            let appender = Appender { path: shared, file, len, written: len, pending: Vec::new(), spare: Vec::new() };
            appenders.open.insert(path.to_path_buf(), appender);
        }
        let a = appenders.open.get_mut(path).expect("opened above");
        let start = a.pending.len();
        a.pending.extend_from_slice(head.as_bytes());
        mboxrd_quote_into(&message.data, &mut a.pending);
        let quoted_len = a.pending.len() - start - head.len();
        if !a.pending.ends_with(b"\n") {
            a.pending.push(b'\n');
        }
        a.pending.push(b'\n');
        let at = Record { path: a.path.clone(), offset: a.len + head.len() as u64, len: quoted_len as u64 };
        a.len += (a.pending.len() - start) as u64;
        // Records already pending are written by whoever made them pending, this one with them.
        let written_behind =
            std::mem::replace(&mut appenders.pending, true) || self.behind.get().is_some_and(WriteBehind::pending);
        drop(appenders);
        // (A failure of another file's records is that file's, logged and counted.)
        if !written_behind
            && let Err(e) = self.write_pending()
            && matches!(&e, StoreError::Io { path: failed, .. } if failed == path)
        {
            return Err(e);
        }
        Ok(at)
    }

    /// Holds one copy in the hosted quarantine (a mail flow rule's `Quarantine`, exo-behaviour
    /// §13.5), appended to `<dir>/quarantine/<address>.mbox` when the store has a directory.
    pub fn quarantine(&self, recipient: EmailAddress, message: Arc<AcceptedMessage>) {
        if let Some(dir) = &self.dir
            && let Err(e) = self.append(&mailbox_file(dir, "quarantine", &recipient.key()), &message)
        {
            tracing::error!(error = %e, "could not store a quarantined message");
        }
        self.quarantined.lock().expect("store lock").push(Delivered { mailbox: recipient, message });
        self.changed.notify_waiters();
    }

    /// Every quarantined copy, with the recipient it was for.
    pub fn quarantined(&self) -> Vec<Delivered> {
        self.quarantined.lock().expect("store lock").clone()
    }

    /// Every copy held, in delivery order, content included (read back from disk under a state
    /// directory).
    pub fn delivered(&self) -> Vec<Delivered> {
        self.list(None, None, usize::MAX).items.into_iter().map(|(_, d)| d).collect()
    }

    /// Up to `limit` copies held after sequence number `after` (from the oldest when `None`), in
    /// delivery order, for one mailbox (case-insensitive) or all.
    pub fn list(&self, mailbox: Option<&str>, after: Option<u64>, limit: usize) -> Page {
        // Copies are read back from their files (a mailbox copy may always be written early).
        let _ = self.write_pending();
        let key = mailbox.map(mailbox_key);
        let picked: Vec<(u64, EmailAddress, Arc<AcceptedMessage>, Option<Record>)> = {
            let inner = self.inner.lock().expect("store lock");
            inner
                .held
                .iter()
                .filter(|h| after.is_none_or(|a| h.seq > a))
                .filter(|h| key.as_ref().is_none_or(|k| h.mailbox.key() == *k))
                .take(limit.saturating_add(1))
                .map(|h| (h.seq, h.mailbox.clone(), h.message.clone(), h.on_disk.clone()))
                .collect()
        };
        let more = picked.len() > limit;
        let items: Vec<(u64, Delivered)> = picked
            .into_iter()
            .take(limit)
            .map(|(seq, mailbox, message, on_disk)| (seq, Delivered { mailbox, message: read_back(message, on_disk) }))
            .collect();
        let next = if more { items.last().map(|(seq, _)| *seq) } else { None };
        Page { items, next }
    }

    /// One copy by sequence number, while it is held.
    pub fn read(&self, seq: u64) -> Option<Delivered> {
        self.list(None, seq.checked_sub(1), 1).items.into_iter().find(|(s, _)| *s == seq).map(|(_, d)| d)
    }

    /// Reads the copies held, in delivery order, content included (the HTTP API's listing). Under a
    /// state directory the held copies' content is read back from disk for the call; the caps
    /// bound how much that is.
    pub fn with_delivered<R>(&self, read: impl FnOnce(&[Delivered]) -> R) -> R {
        read(&self.delivered())
    }

    /// Deletes the held copy of message `internal_id` in `mailbox` from the store's listing (the
    /// mailbox file is append-only and keeps it); returns whether there was one.
    pub fn remove(&self, internal_id: u64, mailbox: &EmailAddress) -> bool {
        let key = mailbox.key();
        let removed = {
            let mut inner = self.inner.lock().expect("store lock");
            let at = inner.held.iter().position(|h| h.message.internal_id == internal_id && h.mailbox.key() == key);
            let removed = at.and_then(|i| inner.held.remove(i));
            if let Some(h) = &removed {
                inner.held_ids.remove(&(h.message.internal_id, key.clone()));
                inner.stats.held_bytes -= h.bytes;
                inner.stats.held = inner.held.len();
            }
            removed
        };
        if removed.is_some() {
            self.changed.notify_waiters();
        }
        removed.is_some()
    }

    /// The copies held for one mailbox (case-insensitive), content included.
    pub fn mailbox(&self, address: &str) -> Vec<Arc<AcceptedMessage>> {
        self.list(Some(address), None, usize::MAX).items.into_iter().map(|(_, d)| d.message).collect()
    }

    /// Waits until `address` holds at least `count` messages, or `timeout` passes; returns them.
    pub async fn wait_for(&self, address: &str, count: usize, timeout: Duration) -> Vec<Arc<AcceptedMessage>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let found = self.mailbox(address);
            if found.len() >= count || tokio::time::Instant::now() >= deadline {
                return found;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

fn mailbox_key(address: &str) -> String {
    address.parse::<EmailAddress>().map(|a| a.key()).unwrap_or_default()
}

/// `<dir>/<folder>/<mailbox key>.mbox`.
fn mailbox_file(dir: &std::path::Path, folder: &str, key: &str) -> PathBuf {
    dir.join(folder).join(format!("{key}.mbox"))
}

// mboxrd by hand: the quoting is two loops over lines, and the mbox crates on crates.io read
// mailboxes but do not write them with offsets we can seek back to.
/// mboxrd quoting: one more `>` before every line that is `>*From ` (so no line of the message can
/// be taken for the next record's `From ` line, and unquoting gives the bytes back exactly).
fn mboxrd_quote_into(data: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for line_start in std::iter::once(0).chain(memchr::memchr_iter(b'\n', data).map(|lf| lf + 1)) {
        if line_start >= data.len() {
            break;
        }
        let line = &data[line_start..];
        let quoted = line.iter().skip_while(|&&b| b == b'>').take(5).eq(b"From ".iter());
        if quoted {
            out.extend_from_slice(&data[start..line_start]);
            out.push(b'>');
            start = line_start;
        }
    }
    out.extend_from_slice(&data[start..]);
}

/// The inverse of [`mboxrd_quote_into`]: one `>` less before every line that is `>+From `.
fn mboxrd_unquote(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        let quoted = line.first() == Some(&b'>') && line.iter().skip_while(|&&b| b == b'>').take(5).eq(b"From ".iter());
        out.extend_from_slice(if quoted { &line[1..] } else { line });
    }
    out
}

/// The held copy with its content: from its mailbox file when it is on disk (empty if that cannot
/// be read).
fn read_back(message: Arc<AcceptedMessage>, on_disk: Option<Record>) -> Arc<AcceptedMessage> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(record) = on_disk else { return message };
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&*record.path)?;
        file.seek(SeekFrom::Start(record.offset))?;
        let mut quoted = Vec::with_capacity(usize::try_from(record.len).unwrap_or(0));
        file.take(record.len).read_to_end(&mut quoted)?;
        Ok(mboxrd_unquote(&quoted))
    };
    let data = read().unwrap_or_else(|e| {
        tracing::warn!(path = %record.path.display(), error = %e, "could not read a stored message back");
        Vec::new()
    });
    Arc::new(AcceptedMessage { data, ..(*message).clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mboxrd_quoting_round_trips() {
        let cases: [&[u8]; 6] = [
            b"",
            b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nFromage\r\n",
            b"From the first line\n",
            b">From \n>>From x",
            b"no newline at the end",
            b"\n\nFrom \nFrom",
        ];
        // The plain reading of the rule, line by line, that the memchr version must equal.
        let by_lines = |data: &[u8]| {
            let mut out = Vec::new();
            for line in data.split_inclusive(|&b| b == b'\n') {
                if line.iter().skip_while(|&&b| b == b'>').take(5).eq(b"From ".iter()) {
                    out.push(b'>');
                }
                out.extend_from_slice(line);
            }
            out
        };
        for data in cases {
            let mut quoted = Vec::new();
            mboxrd_quote_into(data, &mut quoted);
            assert_eq!(quoted, by_lines(data), "{data:?}");
            assert!(!quoted.split(|&b| b == b'\n').any(|l| l.starts_with(b"From ")), "{quoted:?}");
            assert_eq!(mboxrd_unquote(&quoted), data);
        }
    }
}
