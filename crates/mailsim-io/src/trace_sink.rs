//! Where trace events go: appended as JSON lines to `<state-dir>/trace.jsonl` when a state
//! directory is given, and the latest ones kept in memory for tests, `mailsim trace` and listings.
//!
//! Memory is bounded (issue 14 item 4): at most [`TraceSink::DEFAULT_MAX_EVENTS`] events (or the
//! cap given to [`TraceSink::with_max_events`]) are held; past it the oldest are evicted first and
//! counted ([`TraceSink::evicted`]). Under a state directory every event stays in the file and
//! [`TraceSink::read_back`] reads them all back on demand. Each event gets a sequence number that
//! never repeats, for paging ([`TraceSink::page`]).
//!
//! Under a durable queue the lines are written by the queue's writer thread
//! ([`TraceSink::write_behind`]), after the mailbox copies and before the journal records of the
//! same batch; [`TraceSink::read_back`] reads the lines not written yet from memory.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use mailsim_core::trace::{Status, TraceEvent};
use tokio::sync::Notify;

use crate::spool::WriteBehind;

#[derive(Debug, Default)]
struct Window {
    events: VecDeque<TraceEvent>,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    evicted: u64,
}

/// Observes every event as it is recorded (a soak's tally; an exporter).
pub type Tap = Box<dyn Fn(&TraceEvent) + Send + Sync>;

/// `trace.jsonl` and the lines not written to it yet.
#[derive(Debug)]
struct TraceFile {
    /// Held while lines are written: lines taken from `pending` reach the file in order. With
    /// the file, the buffer last written, emptied: the next `pending` (no allocation per batch).
    file: Mutex<(std::fs::File, Vec<u8>)>,
    pending: Mutex<Vec<u8>>,
    /// Who writes `pending` when it is not written at once (the durable queue's writer thread).
    behind: std::sync::OnceLock<WriteBehind>,
}

/// The message trace.
pub struct TraceSink {
    window: Mutex<Window>,
    max_events: usize,
    file: Option<TraceFile>,
    path: Option<PathBuf>,
    tap: Mutex<Option<Tap>>,
    changed: Notify,
}

impl std::fmt::Debug for TraceSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceSink").field("max_events", &self.max_events).field("path", &self.path).finish()
    }
}

impl Default for TraceSink {
    fn default() -> Self {
        Self {
            window: Mutex::default(),
            max_events: Self::DEFAULT_MAX_EVENTS,
            file: None,
            path: None,
            tap: Mutex::new(None),
            changed: Notify::new(),
        }
    }
}

impl TraceSink {
    /// Events held in memory by default (an event takes about 0.5 KiB: 5 MiB at most).
    pub const DEFAULT_MAX_EVENTS: usize = 10_000;

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
        let file =
            TraceFile { file: Mutex::new((file, Vec::new())), pending: Mutex::default(), behind: Default::default() };
        Ok(Self { file: Some(file), path: Some(path), ..Self::default() })
    }

    /// Leaves writing the file's lines to `behind` (the durable queue's writer, which writes them
    /// before the journal records that follow them) instead of one write per event.
    pub fn write_behind(&self, behind: WriteBehind) {
        if let Some(file) = &self.file {
            let _ = file.behind.set(behind);
        }
    }

    /// Writes the lines recorded so far to `trace.jsonl`.
    pub fn write_pending(&self) {
        if let Some(file) = &self.file {
            file.write_pending();
        }
    }

    /// The same sink holding at most `max` events in memory (at least one).
    pub fn with_max_events(mut self, max: usize) -> Self {
        self.max_events = max.max(1);
        self
    }

    /// Calls `tap` with every event recorded from now on.
    pub fn set_tap(&self, tap: Tap) {
        *self.tap.lock().expect("trace tap lock") = Some(tap);
    }

    /// Records one event.
    pub fn record(&self, event: TraceEvent) {
        tracing::info!(event = ?event.event, message_id = %event.message_id, recipient = ?event.recipient, detail = %event.detail, "trace");
        if let Some(file) = &self.file {
            let first = {
                let mut pending = file.pending.lock().expect("trace lines lock");
                let first = pending.is_empty();
                serde_json::to_writer(&mut *pending, &event).expect("trace events serialize");
                pending.push(b'\n');
                first
            };
            // Whole lines in one write each time: a kill leaves whole lines and at most one torn
            // last line.
            if first && !file.behind.get().is_some_and(WriteBehind::pending) {
                file.write_pending();
            }
        }
        if let Some(tap) = self.tap.lock().expect("trace tap lock").as_ref() {
            tap(&event);
        }
        {
            let mut w = self.window.lock().expect("trace lock");
            w.events.push_back(event);
            while w.events.len() > self.max_events {
                w.events.pop_front();
                w.first_seq += 1;
                w.evicted += 1;
            }
        }
        self.changed.notify_waiters();
    }

    /// The events held (the latest ones; all of them unless some were evicted).
    pub fn events(&self) -> Vec<TraceEvent> {
        self.window.lock().expect("trace lock").events.iter().cloned().collect()
    }

    /// Events evicted from memory so far.
    pub fn evicted(&self) -> u64 {
        self.window.lock().expect("trace lock").evicted
    }

    /// Events recorded since the start.
    pub fn recorded(&self) -> u64 {
        let w = self.window.lock().expect("trace lock");
        w.first_seq + w.events.len() as u64
    }

    /// Up to `limit` held events after sequence number `after` (from the oldest held when `None`)
    /// for which `filter` holds, as `(sequence number, event)`, and the `after` of the next page.
    pub fn page(
        &self,
        after: Option<u64>,
        limit: usize,
        filter: impl Fn(&TraceEvent) -> bool,
    ) -> (Vec<(u64, TraceEvent)>, Option<u64>) {
        let w = self.window.lock().expect("trace lock");
        let skip = after.map_or(0, |a| (a + 1).saturating_sub(w.first_seq) as usize);
        let mut items: Vec<(u64, TraceEvent)> = w
            .events
            .iter()
            .enumerate()
            .skip(skip)
            .filter(|(_, e)| filter(e))
            .take(limit.saturating_add(1))
            .map(|(i, e)| (w.first_seq + i as u64, e.clone()))
            .collect();
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(|(s, _)| *s) } else { None };
        (items, next)
    }

    /// Every event recorded under the state directory (all of `trace.jsonl`, also what memory
    /// evicted); the held events when there is none.
    pub fn read_back(&self) -> std::io::Result<Vec<TraceEvent>> {
        let (Some(path), Some(file)) = (&self.path, &self.file) else { return Ok(self.events()) };
        // The lines not written yet are read from memory: writing them here could put them in the
        // file before the mailbox copies they report (see `write_behind`).
        let text = {
            let _writing = file.file.lock().expect("trace file lock");
            let mut text = std::fs::read_to_string(path)?;
            text.push_str(&String::from_utf8_lossy(&file.pending.lock().expect("trace lines lock")));
            text
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
            .collect()
    }

    /// Reads the held events in place, in order, with the sequence number of the first one (the
    /// HTTP API indexes them without copying the trace; a first number that moved means older
    /// events were evicted).
    pub fn with_events<R>(&self, read: impl FnOnce(u64, &[TraceEvent]) -> R) -> R {
        let mut w = self.window.lock().expect("trace lock");
        let first = w.first_seq;
        read(first, w.events.make_contiguous())
    }

    /// The status of one recipient of one message ([`mailsim_core::trace::deciding_event`]).
    pub fn status(&self, message_id: &str, recipient: &str) -> Option<Status> {
        let w = self.window.lock().expect("trace lock");
        let mine = w.events.iter().filter(|e| {
            e.message_id == message_id && e.recipient.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(recipient))
        });
        mailsim_core::trace::deciding_event(mine).map(|e| e.event.status())
    }

    /// Waits until `pred` holds for the events, or `timeout` passes. Returns whether it held.
    pub async fn wait_until(&self, timeout: std::time::Duration, pred: impl Fn(&[TraceEvent]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let holds = || pred(self.window.lock().expect("trace lock").events.make_contiguous());
        loop {
            let notified = self.changed.notified();
            if holds() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return holds();
            }
        }
    }
}

impl TraceFile {
    fn write_pending(&self) {
        let mut guard = self.file.lock().expect("trace file lock");
        let (file, lines) = &mut *guard;
        std::mem::swap(lines, &mut *self.pending.lock().expect("trace lines lock"));
        if !lines.is_empty()
            && let Err(e) = file.write_all(lines)
        {
            tracing::error!(error = %e, "could not append to trace.jsonl");
        }
        lines.clear();
    }
}

impl Drop for TraceFile {
    fn drop(&mut self) {
        self.write_pending();
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
