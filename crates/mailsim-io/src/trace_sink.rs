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
        let path = dir.join("trace.jsonl");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        // A line cut short by a kill (the durable queue resumes after one) is ended, so that the
        // next event starts a line of its own.
        if ends_torn(&mut file)? {
            file.write_all(b"\n")?;
        }
        Ok(Self { file: Some(Mutex::new(file)), ..Self::default() })
    }

    /// Records one event.
    pub fn record(&self, event: TraceEvent) {
        tracing::info!(event = ?event.event, message_id = %event.message_id, recipient = ?event.recipient, detail = %event.detail, "trace");
        if let Some(file) = &self.file {
            let mut line = serde_json::to_string(&event).expect("trace events serialize");
            line.push('\n');
            let mut f = file.lock().expect("trace file lock");
            // One write per line: a kill leaves whole lines and at most one torn last line.
            if let Err(e) = f.write_all(line.as_bytes()) {
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

/// Whether `file` is non-empty and does not end with a newline.
fn ends_torn(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}
