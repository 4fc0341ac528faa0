//! Where trace events go: kept in memory for tests and `mailsim trace`, and appended as JSON lines
//! to `<state-dir>/trace.jsonl` when a state directory is given.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use mailsim_core::trace::{Status, TraceEvent};
use tokio::sync::Notify;

/// The message trace.
#[derive(Debug, Default)]
pub struct TraceSink {
    events: Mutex<Vec<TraceEvent>>,
    file: Option<Mutex<std::fs::File>>,
    changed: Notify,
}

impl TraceSink {
    /// In memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Also appending to `dir/trace.jsonl`.
    pub fn with_dir(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("trace.jsonl"))?;
        Ok(Self { file: Some(Mutex::new(file)), ..Self::default() })
    }

    /// Records one event.
    pub fn record(&self, event: TraceEvent) {
        tracing::info!(event = ?event.event, message_id = %event.message_id, recipient = ?event.recipient, detail = %event.detail, "trace");
        if let Some(file) = &self.file {
            let line = serde_json::to_string(&event).expect("trace events serialize");
            let mut f = file.lock().expect("trace file lock");
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!(error = %e, "could not append to trace.jsonl");
            }
        }
        self.events.lock().expect("trace lock").push(event);
        self.changed.notify_waiters();
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.events.lock().expect("trace lock").clone()
    }

    /// Reads the events in place, in order (the HTTP API indexes them without copying the trace).
    pub fn with_events<R>(&self, read: impl FnOnce(&[TraceEvent]) -> R) -> R {
        read(&self.events.lock().expect("trace lock"))
    }

    /// The status of one recipient of one message: its last event's.
    pub fn status(&self, message_id: &str, recipient: &str) -> Option<Status> {
        let recipient = recipient.to_ascii_lowercase();
        self.events()
            .iter()
            .rev()
            .find(|e| {
                e.message_id == message_id
                    && e.recipient.as_deref().map(str::to_ascii_lowercase) == Some(recipient.clone())
            })
            .map(|e| e.event.status())
    }

    /// Waits until `pred` holds for the events, or `timeout` passes. Returns whether it held.
    pub async fn wait_until(&self, timeout: std::time::Duration, pred: impl Fn(&[TraceEvent]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if pred(&self.events.lock().expect("trace lock")) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(&self.events.lock().expect("trace lock"));
            }
        }
    }
}
