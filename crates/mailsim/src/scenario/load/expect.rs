//! The expectations of a step (`expect = { ... }`): checks of the send's reply and checks of the
//! world (mailboxes, peers, recipients, NDRs, trace events, the queue), each validated against the
//! world as it is at that step (declared hosts, the tenant's connectors and mailboxes).

use mailsim_core::diagnostics::{ConfigError, closest};
use mailsim_core::trace::{Event, Status};

use super::Loader;
use super::walker::{Node, Tbl};
use crate::scenario::expect::{Check, Expect, NdrPlace, SendCheck, WorldCheck};

const SEND_KEYS: [&str; 6] = ["reply", "reply_contains", "stage", "connector", "accepted", "rcpt_replies"];
const WORLD_KINDS: [&str; 7] = ["mailbox", "peer", "recipient", "ndr", "trace", "queued", "auth"];
const EXPECT_COMPANIONS: [&str; 15] = [
    "count",
    "contains",
    "rcpt",
    "tls",
    "status",
    "data_contains",
    "for",
    // `auth` (crate::scenario::auth_expect::AUTH_COMPANIONS).
    "spf",
    "dkim",
    "dmarc",
    "action",
    "compauth",
    "header",
    "equals",
    "present",
];
const STAGES: [&str; 7] = ["CONNECT", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA", "END-OF-DATA"];

impl<'t> Loader<'t> {
    pub(super) fn expectations(&self, n: &Node<'_>, has_send: bool) -> Result<Vec<Expect>, ConfigError> {
        let tables = self.tables(n)?;
        let mut out = Vec::new();
        for t in tables {
            self.expect_table(&t, has_send, &mut out)?;
        }
        Ok(out)
    }

    pub(super) fn expect_table(&self, t: &Tbl<'_>, has_send: bool, out: &mut Vec<Expect>) -> Result<(), ConfigError> {
        let cx = &self.cx;
        let all: Vec<&str> =
            SEND_KEYS.iter().chain(WORLD_KINDS.iter()).chain(EXPECT_COMPANIONS.iter()).copied().collect();
        cx.keys(t, &all)?;
        let push = |out: &mut Vec<Expect>, n: &Node<'_>, check: Check| {
            out.push(Expect { field: n.field.clone(), line: cx.line(&n.span), check });
        };
        for (key, span, n) in t.entries() {
            if !SEND_KEYS.contains(&key) {
                continue;
            }
            if !has_send {
                return Err(cx
                    .err(&span, &n.field, format!("`{key}` checks the reply to a send, and this step sends nothing"))
                    .with_hint("put it in the expect of the [[step]] that has the send"));
            }
            let check = match key {
                "reply" => SendCheck::Reply(cx.string(&n)?.to_string()),
                "reply_contains" => SendCheck::ReplyContains(cx.string(&n)?.to_string()),
                "stage" => {
                    let s = cx.string(&n)?.to_ascii_uppercase();
                    if !STAGES.contains(&s.as_str()) {
                        return Err(cx
                            .err(&n.span, &n.field, format!("unknown stage {s:?}"))
                            .with_hint(STAGES.join(", ")));
                    }
                    SendCheck::Stage(s)
                }
                "connector" => {
                    let c = cx.string(&n)?;
                    if c.is_empty() {
                        SendCheck::Connector(None)
                    } else {
                        self.check_connector(&n, c, true)?;
                        SendCheck::Connector(Some(c.to_string()))
                    }
                }
                "accepted" => SendCheck::Accepted(cx.boolean(&n)?),
                "rcpt_replies" => SendCheck::RcptReplies(cx.strings(&n)?),
                _ => unreachable!("send keys"),
            };
            push(out, &n, Check::Send(check));
        }
        let kinds = t.present(&WORLD_KINDS);
        if let Some(second) = kinds.get(1) {
            return Err(cx
                .err(
                    &t.key_span(second),
                    &t.sub(second),
                    format!("one world expectation per table, and this one already has `{}`", kinds[0]),
                )
                .with_hint(format!("write expect = [{{ {} = ... }}, {{ {second} = ... }}]", kinds[0])));
        }
        let kind = kinds.first().copied();
        let companions: &[&str] = match kind {
            Some("mailbox") => &["count", "contains"],
            Some("peer") => &["count", "rcpt", "tls", "contains"],
            Some("recipient") => &["status", "data_contains"],
            Some("ndr") => &["status", "for", "contains"],
            Some("auth") => &crate::scenario::auth_expect::AUTH_COMPANIONS,
            _ => &[],
        };
        for key in t.present(&EXPECT_COMPANIONS) {
            if !companions.contains(&key) {
                let goes_with = match key {
                    "count" => "mailbox or peer (and inside trace = { ... })",
                    "contains" => "mailbox, peer or ndr (and inside trace = { ... })",
                    "rcpt" | "tls" => "peer",
                    "status" => "recipient or ndr",
                    "data_contains" => "recipient",
                    "for" => "ndr",
                    _ => "auth (authentication verdicts of the latest message for a recipient)",
                };
                return Err(cx
                    .err(&t.key_span(key), &t.sub(key), format!("`{key}` has no world expectation to qualify here"))
                    .with_hint(format!("`{key}` goes with {goes_with}")));
            }
        }
        let opt_str = |key: &str| t.get(key).map(|n| cx.string(&n).map(str::to_string)).transpose();
        let opt_count = |key: &str| t.get(key).map(|n| cx.count(&n)).transpose();
        let Some(kind) = kind else {
            if t.present(&SEND_KEYS).is_empty() {
                return Err(cx.err(&t.span, &t.field, "this expect checks nothing").with_hint("check the send (reply, stage, connector, accepted, ...) or the world (mailbox, peer, recipient, ndr, trace, queued)"));
            }
            return Ok(());
        };
        let n = t.get(kind).expect("present");
        let check = match kind {
            "mailbox" => {
                let address = cx.string(&n)?.trim().to_string();
                self.check_mailbox(&n, &address)?;
                WorldCheck::Mailbox { address, count: opt_count("count")?, contains: opt_str("contains")? }
            }
            "peer" => {
                let i = self.host_with_peer(&n)?;
                WorldCheck::Peer {
                    host: self.hosts[i].name.clone(),
                    count: opt_count("count")?,
                    rcpt: opt_str("rcpt")?,
                    tls: t.get("tls").map(|n| cx.boolean(&n)).transpose()?,
                    contains: opt_str("contains")?,
                }
            }
            "recipient" => {
                let status_node = cx.req(t, "status")?;
                let text = cx.string(&status_node)?;
                let status = match text.to_ascii_lowercase().as_str() {
                    "delivered" => Status::Delivered,
                    "pending" => Status::Pending,
                    "failed" => Status::Failed,
                    "gettingstatus" => Status::GettingStatus,
                    "quarantined" => Status::Quarantined,
                    _ => {
                        return Err(cx
                            .err(&status_node.span, &status_node.field, format!("unknown status {text:?}"))
                            .with_hint("Delivered, Pending, Failed, Quarantined or GettingStatus"));
                    }
                };
                WorldCheck::Recipient {
                    address: cx.string(&n)?.trim().to_string(),
                    status,
                    data_contains: opt_str("data_contains")?,
                }
            }
            "ndr" => {
                let text = cx.string(&n)?;
                let at = match text.split_once(':') {
                    Some(("mailbox", address)) => {
                        let address = address.trim().to_string();
                        self.check_mailbox(&n, &address)?;
                        NdrPlace::Mailbox(address)
                    }
                    Some(("peer", host)) => {
                        let host = host.trim();
                        let i = self
                            .hosts
                            .iter()
                            .position(|h| h.name == host)
                            .ok_or_else(|| self.unknown_host(&n, host))?;
                        if self.hosts[i].peer.is_none() {
                            return Err(cx
                                .err(&n.span, &n.field, format!("host {host:?} receives no mail: it has no peer"))
                                .with_hint("add a [host.peer] table to its [[host]]"));
                        }
                        NdrPlace::Peer(host.to_string())
                    }
                    _ => {
                        return Err(cx
                            .err(&n.span, &n.field, format!("{text:?} names no place"))
                            .with_hint("write \"mailbox:alice@contoso.test\" or \"peer:gateway\""));
                    }
                };
                let status = match t.get("status") {
                    Some(s) => {
                        let text = cx.string(&s)?.trim().to_string();
                        let parts: Vec<&str> = text.split('.').collect();
                        let ok = parts.len() == 3
                            && ["2", "4", "5"].contains(&parts[0])
                            && parts[1..]
                                .iter()
                                .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()));
                        if !ok {
                            return Err(cx
                                .err(&s.span, &s.field, format!("{text:?} is not an enhanced status code"))
                                .with_hint("e.g. \"5.4.1\" or \"4.4.7\""));
                        }
                        Some(text)
                    }
                    None => None,
                };
                WorldCheck::Ndr { at, status, recipient: opt_str("for")?, contains: opt_str("contains")? }
            }
            "auth" => self.auth_expect(t, &n)?,
            "trace" => {
                let tt = cx.table(&n)?;
                cx.keys(&tt, &["event", "recipient", "connector", "contains", "count", "rule", "rule_mode"])?;
                let event = match tt.get("event") {
                    Some(e) => {
                        let text = cx.string(&e)?;
                        let event = match text.to_ascii_uppercase().as_str() {
                            "RECEIVE" => Event::Receive,
                            "DELIVER" => Event::Deliver,
                            "SEND" => Event::Send,
                            "DEFER" => Event::Defer,
                            "FAIL" => Event::Fail,
                            "DSN" => Event::Dsn,
                            "TRANSFER" => Event::Transfer,
                            "TRANSPORT RULE" | "TRANSPORTRULE" => Event::TransportRule,
                            "DROP" => Event::Drop,
                            "QUARANTINE" => Event::Quarantine,
                            "REDIRECT" => Event::Redirect,
                            _ => {
                                return Err(cx
                                    .err(&e.span, &e.field, format!("unknown trace event {text:?}"))
                                    .with_hint("RECEIVE, DELIVER, SEND, DEFER, FAIL, DSN, TRANSFER, TRANSPORT RULE, DROP, QUARANTINE or REDIRECT"));
                            }
                        };
                        Some(event)
                    }
                    None => None,
                };
                let connector = match tt.get("connector") {
                    Some(c) => {
                        let name = cx.string(&c)?;
                        self.check_connector(&c, name, false)?;
                        Some(name.to_string())
                    }
                    None => None,
                };
                let get = |k: &str| tt.get(k).map(|n| cx.string(&n).map(|s| s.trim().to_string())).transpose();
                let rule = match tt.get("rule") {
                    Some(r) => {
                        let name = cx.string(&r)?.trim().to_string();
                        self.check_rule(&r, &name)?;
                        Some(name)
                    }
                    None => None,
                };
                let rule_mode = match tt.get("rule_mode") {
                    Some(m) => {
                        let text = cx.string(&m)?.trim();
                        let mode = ["Enforce", "Audit", "AuditAndNotify"]
                            .into_iter()
                            .find(|k| k.eq_ignore_ascii_case(text))
                            .ok_or_else(|| {
                                cx.err(&m.span, &m.field, format!("unknown rule mode {text:?}"))
                                    .with_hint("Enforce, Audit or AuditAndNotify")
                            })?;
                        Some(mode.to_string())
                    }
                    None => None,
                };
                if (rule.is_some() || rule_mode.is_some()) && event.is_some_and(|e| e != Event::TransportRule) {
                    let n = tt.get("event").expect("present");
                    return Err(cx
                        .err(&n.span, &n.field, "`rule` and `rule_mode` qualify TRANSPORT RULE events")
                        .with_hint("leave `event` out, or write event = \"TRANSPORT RULE\""));
                }
                WorldCheck::Trace {
                    rule,
                    rule_mode,
                    event,
                    recipient: get("recipient")?,
                    connector,
                    contains: tt.get("contains").map(|n| cx.string(&n).map(str::to_string)).transpose()?,
                    count: tt.get("count").map(|n| cx.count(&n)).transpose()?,
                }
            }
            "queued" => WorldCheck::Queued(cx.count(&n)?),
            _ => unreachable!("world kinds"),
        };
        push(out, &n, Check::World(check));
        Ok(())
    }

    pub(super) fn check_mailbox(&self, n: &Node<'_>, address: &str) -> Result<(), ConfigError> {
        if self.mailboxes.contains(&address.to_ascii_lowercase()) {
            return Ok(());
        }
        let e = self.cx.err(&n.span, &n.field, format!("{address} is not a mailbox of the tenant"));
        Err(match closest(address, self.mailboxes.iter().map(String::as_str)) {
            Some(c) => e.with_hint(format!("did you mean {c:?}?")),
            None => e.with_hint("add it to [Directory] Mailboxes"),
        })
    }

    pub(super) fn check_rule(&self, n: &Node<'_>, name: &str) -> Result<(), ConfigError> {
        if self.rule_names.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Ok(());
        }
        let e = self.cx.err(&n.span, &n.field, format!("no transport rule named {name:?}"));
        Err(match closest(name, self.rule_names.iter().map(String::as_str)) {
            Some(c) => e.with_hint(format!("did you mean {c:?}?")),
            None if self.rule_names.is_empty() => e.with_hint("the tenant has no [[TransportRule]]"),
            None => e.with_hint(format!("rules: {}", self.rule_names.iter().cloned().collect::<Vec<_>>().join(", "))),
        })
    }

    pub(super) fn check_connector(&self, n: &Node<'_>, name: &str, inbound: bool) -> Result<(), ConfigError> {
        let names = if inbound { &self.inbound_names } else { &self.all_connector_names };
        if names.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return Ok(());
        }
        let noun = if inbound { "inbound connector" } else { "connector" };
        let e = self.cx.err(&n.span, &n.field, format!("no {noun} named {name:?}"));
        Err(match closest(name, names.iter().map(String::as_str)) {
            Some(c) => e.with_hint(format!("did you mean {c:?}?")),
            None if names.is_empty() => e.with_hint(format!("the tenant has no {noun}s")),
            None => e.with_hint(format!("{noun}s: {}", names.iter().cloned().collect::<Vec<_>>().join(", "))),
        })
    }
}
