//! The message trace as the HTTP API lists it: the rows of `mailsim trace` (one per message and
//! recipient, status from the last event, exo-behaviour §8.1) with its filters, newest first, and
//! one message's events. The index groups events into rows as they are appended (a hash of
//! message and recipient, not a scan per event), so a page costs a pass over the rows, not over
//! every event.

use std::collections::HashMap;

use mailsim_core::trace::{Status, TraceEvent};
use serde::Serialize;

/// One row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// First event time.
    pub received: String,
    /// Sender.
    pub sender: String,
    /// Recipient.
    pub recipient: String,
    /// Status from the last event.
    pub status: Status,
    /// Next hop of the last event that had one.
    pub to_ip: String,
    /// Sending server.
    pub from_ip: String,
    /// Message-ID (refusals during the session: `refused@<time>`).
    pub message_id: String,
    /// The tenant's internal id, once accepted (16 hex digits).
    pub internal_id: Option<String>,
    /// How many events the row has (`/api/v1/trace/{message_id}` lists them).
    pub events: usize,
    #[serde(skip)]
    event_at: Vec<u32>,
}

/// `mailsim trace`'s filters, plus paging.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Sender contains (case-insensitive).
    pub sender: Option<String>,
    /// Recipient contains (case-insensitive).
    pub recipient: Option<String>,
    /// Delivered, Pending, Failed, GettingStatus.
    pub status: Option<String>,
    /// This Message-ID exactly.
    pub message_id: Option<String>,
    /// Skip this many rows (default 0).
    pub start: Option<usize>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of rows.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Rows matching the filters.
    pub total: usize,
    /// Offset of this page.
    pub start: usize,
    /// Rows in this page.
    pub count: usize,
    /// The page, newest first.
    pub rows: Vec<Row>,
}

/// Rows so far, and how many events they were built from.
#[derive(Default)]
pub struct TraceIndex {
    rows: Vec<Row>,
    lower: Vec<(String, String)>,
    by_key: HashMap<(String, String), usize>,
    seen: usize,
    /// Sequence number of the first event the rows point into.
    first: u64,
}

impl TraceIndex {
    /// Takes in the events appended since the last call. `first` is the sequence number of
    /// `events[0]`: when older events were evicted (it moved) or the trace got shorter, the index
    /// starts over, since rows point at positions in `events`.
    pub fn sync(&mut self, first: u64, events: &[TraceEvent]) {
        if events.len() < self.seen || first != self.first {
            *self = Self { first, ..Self::default() };
        }
        for (i, e) in events.iter().enumerate().skip(self.seen) {
            let Some(recipient) = &e.recipient else { continue };
            let id = if e.message_id.is_empty() { format!("refused@{}", e.at) } else { e.message_id.clone() };
            let key = (id, recipient.to_ascii_lowercase());
            match self.by_key.get(&key) {
                Some(&r) => {
                    let row = &mut self.rows[r];
                    row.status = mailsim_core::trace::next_status(row.status, e.event);
                    if let Some(to) = &e.to_ip {
                        row.to_ip = to.clone();
                    }
                    if row.internal_id.is_none() {
                        row.internal_id = e.internal_id.map(|n| format!("{n:016X}"));
                    }
                    row.event_at.push(i as u32);
                    row.events += 1;
                }
                None => {
                    self.lower.push((e.sender.to_ascii_lowercase(), key.1.clone()));
                    self.rows.push(Row {
                        received: e.at.iso8601(),
                        sender: e.sender.clone(),
                        recipient: recipient.clone(),
                        status: e.event.status(),
                        to_ip: e.to_ip.clone().unwrap_or_default(),
                        from_ip: e.from_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                        message_id: key.0.clone(),
                        internal_id: e.internal_id.map(|n| format!("{n:016X}")),
                        events: 1,
                        event_at: vec![i as u32],
                    });
                    self.by_key.insert(key, self.rows.len() - 1);
                }
            }
        }
        self.seen = events.len();
    }

    /// A page of the rows `f` selects, newest first.
    pub fn page(&self, f: &Filter) -> Page {
        let finder =
            |o: &Option<String>| o.as_ref().map(|s| memchr::memmem::Finder::new(&s.to_ascii_lowercase()).into_owned());
        let (sender, recipient) = (finder(&f.sender), finder(&f.recipient));
        let start = f.start.unwrap_or(0);
        let limit = f.limit.unwrap_or(100).min(1000);
        let wanted = |status: Status| f.status.as_ref().is_none_or(|x| format!("{status:?}").eq_ignore_ascii_case(x));
        // The status filter once per status, not once per row.
        let (delivered, pending, failed, getting, quarantined) = (
            wanted(Status::Delivered),
            wanted(Status::Pending),
            wanted(Status::Failed),
            wanted(Status::GettingStatus),
            wanted(Status::Quarantined),
        );
        let status_hit = |s: Status| match s {
            Status::Delivered => delivered,
            Status::Pending => pending,
            Status::Failed => failed,
            Status::GettingStatus => getting,
            Status::Quarantined => quarantined,
        };
        let (mut total, mut rows) = (0, Vec::new());
        for (row, (s, r)) in self.rows.iter().zip(&self.lower).rev() {
            let hit = status_hit(row.status)
                && sender.as_ref().is_none_or(|x| x.find(s.as_bytes()).is_some())
                && recipient.as_ref().is_none_or(|x| x.find(r.as_bytes()).is_some())
                && f.message_id.as_ref().is_none_or(|m| &row.message_id == m);
            if hit {
                if total >= start && rows.len() < limit {
                    rows.push(row.clone());
                }
                total += 1;
            }
        }
        Page { total, start, count: rows.len(), rows }
    }

    /// The rows of one message (by Message-ID, with or without angle brackets, or by internal id),
    /// with the indexes of their events in the trace.
    pub fn message(&self, id: &str) -> Vec<(&Row, &[u32])> {
        let bracketed = if id.starts_with('<') { id.to_string() } else { format!("<{id}>") };
        let internal = id.to_ascii_uppercase();
        self.rows
            .iter()
            .filter(|r| r.message_id == id || r.message_id == bracketed || r.internal_id.as_deref() == Some(&internal))
            .map(|r| (r, r.event_at.as_slice()))
            .collect()
    }
}
