//! The tenant's mailbox store: every message delivered to a local mailbox.
//!
//! Contract (issue 14 items 3 and 4):
//! - **Bounded memory.** The store holds at most [`StoreLimits::max_messages`] copies and
//!   [`StoreLimits::max_bytes`] of message content; past either cap it evicts the oldest copies
//!   first and counts them ([`StoreStats::evicted`]). A long-running `serve` therefore stays within
//!   a fixed budget however much mail it takes.
//! - **On disk, read back on demand.** With a state directory every copy is written to
//!   `<dir>/mailboxes/<address>/<internal-id>.eml` and memory keeps only its envelope and facts
//!   (no content); reading ([`MailStore::delivered`], [`MailStore::mailbox`], [`MailStore::read`])
//!   loads the content back from the file. Copies evicted from memory stay on disk.
//! - **Never overwritten.** Files are created with create-new semantics: an id that was already
//!   used is an error ([`StoreError::Exists`]), logged and counted ([`StoreStats::write_errors`]),
//!   and the file already there is left untouched. Internal ids are unique per world and across
//!   restarts on one state directory (`mailsim_core::ids`), so this never happens in a sound run.
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
    /// A file of that name exists: the id was used before. Nothing was overwritten.
    #[error("{0}: message file exists; refusing to overwrite it (internal id used twice)")]
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

/// One held copy. Under a state directory `message.data` is empty and `path` says where it is.
#[derive(Debug)]
struct Held {
    seq: u64,
    mailbox: EmailAddress,
    message: Arc<AcceptedMessage>,
    path: Option<PathBuf>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    held: VecDeque<Held>,
    stats: StoreStats,
    next_seq: u64,
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
    changed: Notify,
}

impl MailStore {
    /// An in-memory store with the default caps.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store that writes `<dir>/mailboxes/<address>/<internal-id>.eml` and reads content back
    /// from there.
    pub fn with_dir(dir: PathBuf) -> Self {
        Self { dir: Some(dir), ..Self::default() }
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

    /// Delivers one copy to a mailbox. Under a state directory the file is created new; when that
    /// fails (an existing file is never overwritten) the error is logged, counted and returned, and
    /// the copy is still held in memory so that it is not lost while the process runs.
    pub fn deliver(&self, mailbox: EmailAddress, message: Arc<AcceptedMessage>) -> Result<(), StoreError> {
        let mut result = Ok(());
        let (message, path, bytes) = match &self.dir {
            None => {
                let bytes = message.data.len();
                (message, None, bytes)
            }
            Some(dir) => {
                let folder = dir.join("mailboxes").join(mailbox.key());
                let path = folder.join(format!("{:016X}.eml", message.internal_id));
                match write_new(&folder, &path, &message.data) {
                    Ok(()) => (Arc::new(message.with_data(Vec::new())), Some(path), 0),
                    Err(e) => {
                        tracing::error!(error = %e, "could not store a delivered message");
                        result = Err(e);
                        let bytes = message.data.len();
                        (message, None, bytes)
                    }
                }
            }
        };
        {
            let mut inner = self.inner.lock().expect("store lock");
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.stats.delivered += 1;
            inner.stats.write_errors += u64::from(result.is_err());
            inner.stats.held_bytes += bytes;
            inner.held.push_back(Held { seq, mailbox, message, path, bytes });
            while inner.held.len() > self.limits.max_messages
                || (inner.stats.held_bytes > self.limits.max_bytes && inner.held.len() > 1)
            {
                let Some(old) = inner.held.pop_front() else { break };
                inner.stats.held_bytes -= old.bytes;
                inner.stats.evicted += 1;
            }
            inner.stats.held = inner.held.len();
        }
        self.changed.notify_waiters();
        result
    }

    /// Holds one copy in the hosted quarantine (a mail flow rule's `Quarantine`, exo-behaviour
    /// §13.5), written under `<dir>/quarantine/<address>/` (created new, never overwritten) when the
    /// store has a directory.
    pub fn quarantine(&self, recipient: EmailAddress, message: Arc<AcceptedMessage>) {
        if let Some(dir) = &self.dir {
            let folder = dir.join("quarantine").join(recipient.key());
            let path = folder.join(format!("{:016X}.eml", message.internal_id));
            if let Err(e) = write_new(&folder, &path, &message.data) {
                tracing::error!(error = %e, "could not store a quarantined message");
            }
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
        let key = mailbox.map(mailbox_key);
        let picked: Vec<(u64, EmailAddress, Arc<AcceptedMessage>, Option<PathBuf>)> = {
            let inner = self.inner.lock().expect("store lock");
            inner
                .held
                .iter()
                .filter(|h| after.is_none_or(|a| h.seq > a))
                .filter(|h| key.as_ref().is_none_or(|k| h.mailbox.key() == *k))
                .take(limit.saturating_add(1))
                .map(|h| (h.seq, h.mailbox.clone(), h.message.clone(), h.path.clone()))
                .collect()
        };
        let more = picked.len() > limit;
        let items: Vec<(u64, Delivered)> = picked
            .into_iter()
            .take(limit)
            .map(|(seq, mailbox, message, path)| (seq, Delivered { mailbox, message: read_back(message, path) }))
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

    /// Deletes the held copy of message `internal_id` in `mailbox` (and its `.eml` file); returns
    /// whether there was one.
    pub fn remove(&self, internal_id: u64, mailbox: &EmailAddress) -> bool {
        let key = mailbox.key();
        let removed = {
            let mut inner = self.inner.lock().expect("store lock");
            let at = inner.held.iter().position(|h| h.message.internal_id == internal_id && h.mailbox.key() == key);
            let removed = at.and_then(|i| inner.held.remove(i));
            if let Some(h) = &removed {
                inner.stats.held_bytes -= h.bytes;
                inner.stats.held = inner.held.len();
            }
            removed
        };
        match removed {
            Some(h) => {
                if let Some(path) = h.path {
                    let _ = std::fs::remove_file(path);
                }
                self.changed.notify_waiters();
                true
            }
            None => false,
        }
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

/// Creates `path` (never replacing a file) and writes `data` to it.
fn write_new(folder: &std::path::Path, path: &std::path::Path, data: &[u8]) -> Result<(), StoreError> {
    let io = |error| StoreError::Io { path: path.to_path_buf(), error };
    std::fs::create_dir_all(folder).map_err(io)?;
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(StoreError::Exists(path.to_path_buf())),
        Err(e) => return Err(io(e)),
    };
    file.write_all(data).map_err(io)
}

/// The held copy with its content: from the file when it is on disk (empty if the file is gone).
fn read_back(message: Arc<AcceptedMessage>, path: Option<PathBuf>) -> Arc<AcceptedMessage> {
    match path {
        None => message,
        Some(path) => {
            let data = std::fs::read(&path).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "could not read a stored message back");
                Vec::new()
            });
            Arc::new(AcceptedMessage { data, ..(*message).clone() })
        }
    }
}
