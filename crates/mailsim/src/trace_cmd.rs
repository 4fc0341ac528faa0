//! `mailsim trace`: the message trace written under `--state-dir`, as a table in the spirit of
//! `Get-MessageTraceV2` (exo-semantics §8.1: one row per message and recipient, status from the
//! last event) or, with `--detail`, the events of each row as `Get-MessageTraceDetailV2` lists them.

use std::path::PathBuf;

use anyhow::Context;
use mailsim_core::trace::{Status, TraceEvent};

/// `mailsim trace` flags.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// The state directory `mailsim serve --state-dir` wrote (reads `trace.jsonl` in it).
    #[arg(long, env = "MAILSIM_STATE_DIR", default_value = "state")]
    pub state_dir: PathBuf,
    /// Only rows whose sender contains this text (case-insensitive).
    #[arg(long)]
    pub sender: Option<String>,
    /// Only rows whose recipient contains this text (case-insensitive).
    #[arg(long)]
    pub recipient: Option<String>,
    /// Only rows with this status: Delivered, Pending, Failed, GettingStatus.
    #[arg(long)]
    pub status: Option<String>,
    /// Only this Message-ID.
    #[arg(long)]
    pub message_id: Option<String>,
    /// Print each row's events (Date, Event, Detail, Data).
    #[arg(long)]
    pub detail: bool,
}

/// One row of the table: a message and one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Message-ID.
    pub message_id: String,
    /// Every event of the row, in order.
    pub events: Vec<TraceEvent>,
}

/// Groups events into rows (message id + recipient; refusals during the session have no id and
/// group by sender and time instead).
pub fn rows(events: &[TraceEvent]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for e in events {
        let Some(recipient) = e.recipient.clone() else { continue };
        let key_id = if e.message_id.is_empty() { format!("refused@{}", e.at) } else { e.message_id.clone() };
        match rows.iter_mut().find(|r| r.message_id == key_id && r.recipient.eq_ignore_ascii_case(&recipient)) {
            Some(row) => {
                row.status = e.event.status();
                if let Some(to) = &e.to_ip {
                    row.to_ip = to.clone();
                }
                row.events.push(e.clone());
            }
            None => rows.push(Row {
                received: e.at.iso8601(),
                sender: e.sender.clone(),
                recipient,
                status: e.event.status(),
                to_ip: e.to_ip.clone().unwrap_or_default(),
                from_ip: e.from_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                message_id: key_id,
                events: vec![e.clone()],
            }),
        }
    }
    rows
}

/// Runs `mailsim trace`.
pub fn run(args: &TraceArgs) -> anyhow::Result<i32> {
    let path = args.state_dir.join("trace.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        events.push(
            serde_json::from_str::<TraceEvent>(line)
                .with_context(|| format!("{}:{}: not a trace event", path.display(), n + 1))?,
        );
    }
    let contains = |hay: &str, needle: &Option<String>| {
        needle.as_ref().is_none_or(|n| hay.to_ascii_lowercase().contains(&n.to_ascii_lowercase()))
    };
    let selected: Vec<Row> = rows(&events)
        .into_iter()
        .filter(|r| contains(&r.sender, &args.sender) && contains(&r.recipient, &args.recipient))
        .filter(|r| args.status.as_ref().is_none_or(|s| format!("{:?}", r.status).eq_ignore_ascii_case(s)))
        .filter(|r| args.message_id.as_ref().is_none_or(|m| &r.message_id == m))
        .collect();
    println!(
        "{:<24} {:<28} {:<28} {:<13} {:<22} {:<15} MessageId",
        "Received", "SenderAddress", "RecipientAddress", "Status", "ToIP", "FromIP"
    );
    for r in &selected {
        println!(
            "{:<24} {:<28} {:<28} {:<13} {:<22} {:<15} {}",
            r.received,
            r.sender,
            r.recipient,
            format!("{:?}", r.status),
            r.to_ip,
            r.from_ip,
            r.message_id
        );
        if args.detail {
            for e in &r.events {
                println!(
                    "    {}  {:<8} {}{}",
                    e.at.iso8601(),
                    format!("{:?}", e.event).to_uppercase(),
                    e.detail,
                    e.data.as_ref().map_or(String::new(), |d| format!("  [{d}]"))
                );
            }
        }
    }
    println!("{} row(s)", selected.len());
    Ok(0)
}
