//! The tenant's mailbox store: every message delivered to a local mailbox, kept in memory for tests
//! and the CLI, and written as `.eml` files under the state directory when one is given.

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

/// Mailboxes and the relay queue.
#[derive(Debug, Default)]
pub struct MailStore {
    delivered: Mutex<Vec<Delivered>>,
    dir: Option<PathBuf>,
    changed: Notify,
}

impl MailStore {
    /// An in-memory store.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// A store that also writes `<dir>/mailboxes/<address>/<internal-id>.eml`.
    pub fn with_dir(dir: PathBuf) -> Self {
        Self { dir: Some(dir), ..Self::default() }
    }

    /// Delivers one copy to a mailbox.
    pub fn deliver(&self, mailbox: EmailAddress, message: Arc<AcceptedMessage>) {
        if let Some(dir) = &self.dir {
            let folder = dir.join("mailboxes").join(mailbox.key());
            let path = folder.join(format!("{:016X}.eml", message.internal_id));
            // The in-memory copy is authoritative; a failed file write is logged, not lost mail.
            if let Err(e) = std::fs::create_dir_all(&folder).and_then(|_| std::fs::write(&path, &message.data)) {
                tracing::error!(path = %path.display(), error = %e, "could not write message file");
            }
        }
        self.delivered.lock().expect("store lock").push(Delivered { mailbox, message });
        self.changed.notify_waiters();
    }

    /// Every delivered copy, in delivery order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.delivered.lock().expect("store lock").clone()
    }

    /// Reads the delivered copies in place, in delivery order (the HTTP API's listing: no copy of
    /// the whole store per request).
    pub fn with_delivered<R>(&self, read: impl FnOnce(&[Delivered]) -> R) -> R {
        read(&self.delivered.lock().expect("store lock"))
    }

    /// Deletes the copy of message `internal_id` in `mailbox` (and its `.eml` file); returns
    /// whether there was one.
    pub fn remove(&self, internal_id: u64, mailbox: &EmailAddress) -> bool {
        let key = mailbox.key();
        let mut delivered = self.delivered.lock().expect("store lock");
        let before = delivered.len();
        delivered.retain(|d| !(d.message.internal_id == internal_id && d.mailbox.key() == key));
        let removed = delivered.len() != before;
        drop(delivered);
        if removed && let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join("mailboxes").join(&key).join(format!("{internal_id:016X}.eml")));
        }
        removed
    }

    /// The copies in one mailbox (case-insensitive).
    pub fn mailbox(&self, address: &str) -> Vec<Arc<AcceptedMessage>> {
        let key = address.parse::<EmailAddress>().map(|a| a.key()).unwrap_or_default();
        self.delivered().into_iter().filter(|d| d.mailbox.key() == key).map(|d| d.message).collect()
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
