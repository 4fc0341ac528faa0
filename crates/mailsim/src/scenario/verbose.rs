//! `mailsim run --verbose`: what each step did, in words an admin reads. For every step: what it
//! did (the message sent, with its SMTP transcript and the replies; the clock advance; the
//! changes), the trace rows the world wrote during the step (which show who received what: RECEIVE,
//! DELIVER to a mailbox, SEND to a next hop, DEFER, FAIL, DSN), and each expectation it checked.
//!
//! The log is collected per scenario (scenarios run in parallel) and printed with its result.

use std::sync::Mutex;

use mailsim_core::trace::TraceEvent;

use super::expect::{Expect, SendRecord};
use super::load::{Action, Change, Scenario, Step};
use crate::sim::{Simulation, TlsUse};

/// The lines of one scenario's verbose log (nothing is kept when disabled).
#[derive(Debug, Default)]
pub struct StepLog {
    enabled: bool,
    lines: Mutex<Vec<String>>,
}

impl StepLog {
    /// A log that records when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, lines: Mutex::new(Vec::new()) }
    }

    /// Whether it records.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The lines so far.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    /// The world's address plan, once it is up.
    pub fn world(&self, sim: &Simulation) {
        if !self.enabled {
            return;
        }
        self.push("world:".to_string());
        for row in sim.plan() {
            let port = row.port.map_or(String::new(), |p| format!(":{p}"));
            self.push(format!("  {:<12} {:<16} on {}{port}", row.name, row.declared.to_string(), row.loopback));
        }
    }

    /// A step begins: what it does.
    pub fn step(&self, scenario: &Scenario, step: &Step) {
        if !self.enabled {
            return;
        }
        let what = match &step.action {
            Action::Send(spec) => {
                let tls = match spec.tls {
                    TlsUse::StartTls => ", STARTTLS",
                    _ => "",
                };
                let from = if spec.mail_from.is_empty() { "<>".to_string() } else { spec.mail_from.clone() };
                format!("send from {}{tls}: MAIL FROM {from}, RCPT TO {}", spec.from_host, spec.rcpt_to.join(", "))
            }
            Action::Advance(by) => format!("advance the clock by {}", humanize(*by)),
            Action::Change(changes) => {
                format!("change: {}", changes.iter().map(describe_change).collect::<Vec<_>>().join("; "))
            }
            Action::Check => "check".to_string(),
        };
        self.push(format!("{} ({}:{}): {what}", step.label(), scenario.file, step.line));
    }

    /// The send of a step: its transcript (every command and reply) or why it could not be made.
    pub fn send(&self, record: &SendRecord) {
        if !self.enabled {
            return;
        }
        match &record.outcome {
            Ok(outcome) => {
                self.push(format!("  SMTP from {}:", record.host));
                for line in &outcome.transcript {
                    self.push(format!("    {line}"));
                }
            }
            Err(e) => self.push(format!("  the send did not complete: {e}")),
        }
    }

    /// The trace rows the world wrote during the step: who received what.
    pub fn trace(&self, events: &[TraceEvent]) {
        if !self.enabled {
            return;
        }
        if events.is_empty() {
            self.push("  trace: no new rows".to_string());
            return;
        }
        self.push("  trace:".to_string());
        for e in events {
            self.push(format!("    {}", trace_row(e)));
        }
    }

    /// An expectation and whether it held.
    pub fn expect(&self, expect: &Expect, failed: Option<&str>) {
        if !self.enabled {
            return;
        }
        match failed {
            None => self.push(format!("  expect {} (line {}): ok", expect.field, expect.line)),
            Some(actual) => self.push(format!(
                "  expect {} (line {}): FAILED, {}",
                expect.field,
                expect.line,
                actual.lines().next().unwrap_or_default()
            )),
        }
    }
}

/// One trace event on a line: event, sender → recipient, connector, detail, data.
pub fn trace_row(e: &TraceEvent) -> String {
    let event = serde_json::to_value(e.event).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut line = format!("{event:<9} {} -> {}", e.sender, e.recipient.as_deref().unwrap_or("-"));
    if let Some(c) = &e.connector {
        line.push_str(&format!("  connector {c:?}"));
    }
    if let Some(to) = &e.to_ip {
        line.push_str(&format!("  to {to}"));
    }
    if !e.detail.is_empty() {
        line.push_str(&format!("  {}", e.detail));
    }
    if let Some(d) = &e.data {
        line.push_str(&format!("  [{d}]"));
    }
    line
}

fn describe_change(change: &Change) -> String {
    match change {
        Change::Tenant { what, .. } => format!("tenant: {what}"),
        Change::MoveHost { host, address } => format!("host {host} moves to {address}"),
        Change::HostCert { host, cert } => match cert {
            Some(c) => format!("host {host} presents {c:?}"),
            None => format!("host {host} presents no certificate"),
        },
        Change::Peer { host, .. } => format!("host {host} follows a new script"),
        Change::Mx { domain, records } => format!(
            "MX of {domain}: {}",
            if records.is_empty() {
                "none".to_string()
            } else {
                records.iter().map(|(p, e)| format!("{p} {e}")).collect::<Vec<_>>().join(", ")
            }
        ),
        Change::A { name, addresses } => format!(
            "A of {name}: {}",
            if addresses.is_empty() {
                "none".to_string()
            } else {
                addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            }
        ),
        Change::DnsFault { name, fault } => match fault {
            Some(f) => format!("DNS for {name}: {f:?}"),
            None => format!("DNS for {name}: normal"),
        },
        Change::DnsFaultFor { name, record_type, fault } => match fault {
            Some(f) => format!("DNS {record_type} for {name}: {f:?}"),
            None => format!("DNS {record_type} for {name}: normal"),
        },
        Change::Txt { name, records } => {
            format!("TXT of {name}: {}", if records.is_empty() { "none".to_string() } else { records.join(" | ") })
        }
    }
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}
