//! `mailsim trace`: the message trace written under `--state-dir`, as a table in the spirit of
//! `Get-MessageTraceV2` (exo-behaviour §8.1: one row per message and recipient, status from the
//! last event) or, with `--detail`, the events of each row as `Get-MessageTraceDetailV2` lists them.
//!
//! `--json` prints the rows as one JSON array instead, with `Get-MessageTraceV2`'s field names and
//! each row's `Events` (every field of the trace events, the connector included).
//!
//! `--transcript SESSION` instead turns one session of the protocol log (`<state-dir>/protocol`,
//! the 16-hex session id of the banner and the log) into a golden-transcript fixture
//! (`mailsim_testkit::transcript` format) from the typed events the log module reads back
//! (`SessionRecord::events`), volatile text replaced by `<*>` patterns. Inbound (RECV) and outbound
//! (SEND) sessions alike; a STARTTLS session goes on after a `# TLS protocol ...` comment.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mailsim_core::session::ContentVerb;
use mailsim_core::trace::{Status, TraceEvent};
use mailsim_io::protocol_log::{self, Context, LogKind, SessionEvent, SessionRecord};

/// `mailsim trace` flags.
#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// The state directory `mailsim serve --state-dir` wrote (reads `trace.jsonl` in it).
    #[arg(long, env = "MAILSIM_STATE_DIR", default_value = "state")]
    pub state_dir: PathBuf,
    /// Only rows whose sender contains this text (case-insensitive).
    #[arg(long, env = "MAILSIM_TRACE_SENDER")]
    pub sender: Option<String>,
    /// Only rows whose recipient contains this text (case-insensitive).
    #[arg(long, env = "MAILSIM_TRACE_RECIPIENT")]
    pub recipient: Option<String>,
    /// Only rows with this status: Delivered, Pending, Failed, GettingStatus.
    #[arg(long, env = "MAILSIM_TRACE_STATUS")]
    pub status: Option<String>,
    /// Only this Message-ID.
    #[arg(long, env = "MAILSIM_TRACE_MESSAGE_ID")]
    pub message_id: Option<String>,
    /// Print each row's events (Date, Event, Connector, Detail, Data).
    #[arg(long, env = "MAILSIM_TRACE_DETAIL")]
    pub detail: bool,
    /// The rows as a JSON array (fields Received, SenderAddress, RecipientAddress, Status, ToIP,
    /// FromIP, MessageId, Connector, Events) instead of the table.
    #[arg(long, env = "MAILSIM_TRACE_JSON")]
    pub json: bool,
    /// Print one session of the protocol log (16-hex session id, as in the banner and the log) as
    /// a golden transcript for tests/transcripts/.
    #[arg(long, value_name = "SESSION", env = "MAILSIM_TRACE_TRANSCRIPT")]
    pub transcript: Option<String>,
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

impl Row {
    /// The connector of the row's last event (the one its status comes from): the outbound
    /// connector a SEND, DEFER or FAIL used (none for MX delivery without one, or a failure before
    /// any attempt), the inbound connector for mail received and delivered in the tenant.
    pub fn connector(&self) -> Option<&str> {
        self.events.last().and_then(|e| e.connector.as_deref())
    }

    /// The row as `mailsim trace --json` prints it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "Received": self.received,
            "SenderAddress": self.sender,
            "RecipientAddress": self.recipient,
            "Status": format!("{:?}", self.status),
            "ToIP": self.to_ip,
            "FromIP": self.from_ip,
            "MessageId": self.message_id,
            "Connector": self.connector(),
            "Events": self.events,
        })
    }
}

/// Groups events into rows (message id + recipient; refusals during the session have no id and
/// group by sender and time instead).
pub fn rows(events: &[TraceEvent]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    // Rows by (message, recipient): a trace of 100,000 messages groups in one pass.
    let mut index: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for e in events {
        let Some(recipient) = e.recipient.clone() else { continue };
        let key_id = if e.message_id.is_empty() { format!("refused@{}", e.at) } else { e.message_id.clone() };
        let key = (key_id.clone(), recipient.to_ascii_lowercase());
        match index.get(&key).map(|&i| &mut rows[i]) {
            Some(row) => {
                row.status = mailsim_core::trace::next_status(row.status, e.event);
                if let Some(to) = &e.to_ip {
                    row.to_ip = to.clone();
                }
                row.events.push(e.clone());
            }
            None => {
                index.insert(key, rows.len());
                rows.push(Row {
                    received: e.at.iso8601(),
                    sender: e.sender.clone(),
                    recipient,
                    status: e.event.status(),
                    to_ip: e.to_ip.clone().unwrap_or_default(),
                    from_ip: e.from_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    message_id: key_id,
                    events: vec![e.clone()],
                })
            }
        }
    }
    rows
}

/// Runs `mailsim trace`.
pub fn run(args: &TraceArgs) -> anyhow::Result<i32> {
    if let Some(session) = &args.transcript {
        let (text, warnings) = transcript(&args.state_dir, session)?;
        for w in warnings {
            eprintln!("mailsim: {w}");
        }
        print!("{text}");
        return Ok(0);
    }
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
    if args.json {
        let rows: Vec<serde_json::Value> = selected.iter().map(Row::json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
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
                    "    {}  {:<8} {}{}{}",
                    e.at.iso8601(),
                    format!("{:?}", e.event).to_uppercase(),
                    e.connector.as_ref().map_or(String::new(), |c| format!("[{c}] ")),
                    e.detail,
                    e.data.as_ref().map_or(String::new(), |d| format!("  [{d}]"))
                );
            }
        }
    }
    println!("{} row(s)", selected.len());
    Ok(0)
}

/// One session of the protocol log under `state_dir` as a golden transcript, and warnings about
/// what it cannot hold exactly (content not recorded, a BDAT chunk not ending in CRLF).
pub fn transcript(state_dir: &Path, session: &str) -> anyhow::Result<(String, Vec<String>)> {
    let id = parse_session_id(session)?;
    let dir = state_dir.join("protocol");
    let record = protocol_log::read_session(&dir, id)
        .with_context(|| format!("reading the protocol log in {}", dir.display()))?
        .with_context(|| format!("no session {id:016X} in the protocol log in {}", dir.display()))?;
    Ok(transcript_of(&record))
}

/// A session id as printed (16 hex digits; case and a leading `0x` do not matter).
pub fn parse_session_id(text: &str) -> anyhow::Result<u64> {
    let hex = text.trim().trim_start_matches("0x").trim_start_matches("0X");
    anyhow::ensure!(
        !hex.is_empty() && hex.len() <= 16 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{text:?} is not a session id (16 hex digits, as in the banner `[08DD34FA3086278D]` and the protocol log)"
    );
    Ok(u64::from_str_radix(hex, 16)?)
}

/// The host role for `# host:`: the address-plan name the log recorded (the next hop of a SEND
/// session, the declared host of a RECV one), else the test role whose loopback address the peer
/// used, else the peer's address.
fn host_role(record: &SessionRecord, events: &[(&protocol_log::LogLine, SessionEvent<'_>)]) -> String {
    for (_, event) in events {
        match event {
            SessionEvent::Info { data, context: Context::NextHop } => {
                if let Some((name, _)) = data.split_once(" [") {
                    return name.to_string();
                }
            }
            SessionEvent::Info { context: Context::DeclaredHost { name }, .. } => return name.clone(),
            _ => {}
        }
    }
    let remote = record.lines.first().map(|l| l.remote.clone()).unwrap_or_default();
    let ip = remote.parse::<std::net::SocketAddr>().map(|a| a.ip()).ok();
    match mailsim_testkit::hosts::roles::ALL.iter().find(|h| Some(h.loopback) == ip) {
        Some(h) => h.name.to_string(),
        None => ip.map_or(remote, |ip| ip.to_string()),
    }
}

/// Turns a recorded session into transcript text (see [`transcript`]), from its typed events:
/// the client's lines as `C:`, the server's as `S:`/`S~`, content blocks as their lines, TLS as a
/// comment where the dialogue continued inside TLS.
pub fn transcript_of(record: &SessionRecord) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    let Some(first) = record.lines.first() else { return (String::new(), warnings) };
    let events = record.events();
    let receive = first.kind == LogKind::Receive;
    let mut out = format!(
        "# {} session {:016X}, {} {} {}, {} ({})\n",
        if receive { "SMTP Receive" } else { "SMTP Send" },
        first.session_id,
        first.remote,
        if receive { "->" } else { "<-" },
        first.local,
        first.date_time,
        first.connector,
    );
    if !receive {
        out.push_str("# The tenant was the client here: `C:` lines are its commands, `S:` lines the peer's replies.\n");
    }
    out.push_str(&format!("# host: {}\n", host_role(record, &events)));
    let mut content_exact = true;
    for (line, event) in &events {
        match event {
            SessionEvent::ClientLine(text) => out.push_str(&client_line(text)),
            SessionEvent::ServerLine(text) => match normalise(text, content_exact) {
                Some(pattern) => out.push_str(&format!("S~ {pattern}\n")),
                None => out.push_str(&format!("S: {text}\n")),
            },
            SessionEvent::Content { verb, content, .. } => {
                let bdat = *verb == ContentVerb::Bdat;
                match content {
                    Some(bytes) => {
                        let text = String::from_utf8_lossy(bytes);
                        if bdat && !text.is_empty() && !text.ends_with("\r\n") {
                            warnings.push(format!(
                                "the BDAT chunk at sequence {} does not end in CRLF; its lines are approximate",
                                line.sequence
                            ));
                            content_exact = false;
                        }
                        for l in text.split_terminator('\n') {
                            out.push_str(&client_line(l.strip_suffix('\r').unwrap_or(l)));
                        }
                    }
                    None => {
                        warnings.push(format!(
                            "the content at sequence {} was not recorded (too large, or the log was written without \
                             its data/ directory); a placeholder stands in for it",
                            line.sequence
                        ));
                        content_exact = false;
                        out.push_str("# content not recorded; placeholder:\n");
                        out.push_str("C: Subject: content not recorded\nC:\nC: (placeholder)\n");
                    }
                }
                if !bdat {
                    out.push_str("C: .\n");
                }
            }
            SessionEvent::Info { context: context @ Context::TlsNegotiated { .. }, .. } => {
                out.push_str(&format!("# {context}\n"));
            }
            SessionEvent::Info { data, context: Context::TlsFailed } => {
                out.push_str(&format!("# TLS negotiation failed: {data}\n"));
            }
            _ => {}
        }
    }
    warnings.dedup();
    (out, warnings)
}

fn client_line(text: &str) -> String {
    if text.is_empty() { "C:\n".to_string() } else { format!("C: {text}\n") }
}

/// The pattern for a server line with volatile parts (banner date and id, message id, InternalId,
/// timing, the diagnostic suffix's time and id); `None` when the line is stable. `bytes_exact`
/// keeps the byte count of a queued-mail reply (the content was replayed as it was).
pub fn normalise(line: &str, bytes_exact: bool) -> Option<String> {
    // 220 HOST Microsoft ESMTP MAIL Service ready at <date> [<session>]
    if line.starts_with("220")
        && line.ends_with(']')
        && let Some(i) = line.find(" ready at ")
    {
        return Some(format!("{} ready at <*> [<*>]", &line[..i]));
    }
    // 250 2.6.0 <message-id> [InternalId=N, Hostname=H] B bytes in S, K KB/sec Queued mail for delivery
    if let Some(rest) = line.strip_prefix("250 2.6.0 ")
        && rest.ends_with(" KB/sec Queued mail for delivery")
        && let Some(h) = rest.find("Hostname=")
        && let Some(end) = rest[h..].find(']')
        && let Some(b) = rest.find(" bytes in ")
    {
        let host = &rest[h + "Hostname=".len()..h + end];
        let bytes = rest[h + end + 1..b].trim();
        let bytes = if bytes_exact { bytes } else { "<*>" };
        return Some(format!(
            "250 2.6.0 <*> [InternalId=<*>, Hostname={host}] {bytes} bytes in <*> KB/sec Queued mail for delivery"
        ));
    }
    // EXO's rejection suffix: [HOST 2024-10-10T21:13:00.303Z 08DCE5A0132C0518]
    let mut out = String::new();
    let mut rest = line;
    let mut changed = false;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let inner = &rest[open + 1..open + close];
        let words: Vec<&str> = inner.split(' ').collect();
        out.push_str(&rest[..open]);
        if words.len() == 3
            && looks_like_iso(words[1])
            && words[2].len() == 16
            && words[2].chars().all(|c| c.is_ascii_hexdigit())
        {
            out.push_str(&format!("[{} <*>]", words[0]));
            changed = true;
        } else {
            out.push_str(&rest[open..=open + close]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

fn looks_like_iso(s: &str) -> bool {
    s.len() == 24 && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}
