//! The `Received:` chain of a message (RFC 5321 §4.4, RFC 5322 §3.6.7) as hops in travel order:
//! what Message Header Analyzer shows (exo-behaviour §8.5, §14.7), and what `mailsim headers` and
//! the web page's message view print.
//!
//! Contract: [`parse_chain`] takes a message or its header section (bytes; anything after the
//! first empty line is ignored) and returns one [`Hop`] per `Received:` field, **oldest first**
//! (the bottom field is hop 1, the top field, stamped last, is hop N), each with the delay from the
//! hop before it. [`parse_received`] parses one field's value. Neither fails: a clause that cannot
//! be read is left `None` and the raw value is kept, so any header a user pastes gives a table.
//!
//! Forms read (table tests below): mailsim's own frontend stamp (`session.rs`,
//! `... with Microsoft SMTP Server (version=TLS1_3, cipher=...) id 15.20.0000.000 via Frontend
//! Transport; <date>`), the scripted peer's relay stamp, Exchange Online frontend and internal hops
//! (IPv6 addresses, no TLS comment), Postfix (`(using TLSv1.3 with cipher ...)`, `with ESMTPS`,
//! `for <addr>`, date with `(UTC)`), Gmail (`(Google Transport Security)`), Exim (`(helo=...)`,
//! `with esmtps (TLS1.3) tls CIPHER`).
//!
//! Hand-written rather than `mail_parser`'s `HeaderValue::Received`: that parser maps `with` to a
//! closed protocol enum (Exchange's `with Microsoft SMTP Server` is lost) and reads neither
//! Exchange's `(version=..., cipher=...)` TLS comment nor unknown clauses. Dates are read with
//! `mail_parser::DateTime::parse_rfc822`, which is lenient the way real headers need.

use serde::Serialize;

use crate::time::Timestamp;

/// One side of a hop: the `from` or the `by` clause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The name as written after `from`/`by`: the client's HELO for `from`, the server's name for
    /// `by` (an address literal such as `[127.0.0.1]` stays as written).
    pub name: String,
    /// The reverse-DNS or verified host name from the comment (`(mail.example.com [203.0.113.5])`),
    /// without a trailing dot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The IP address from the comment, or from an address-literal name; brackets removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Any other words of the comment (`Postfix`, `helo=...`), space-joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// TLS facts a hop recorded. Present when the hop says TLS was used: a TLS comment (Exchange's
/// `(version=TLS1_2, cipher=...)`, Postfix's `(using TLSv1.3 with cipher ...)`, Exim's
/// `(TLS1.3) tls CIPHER`) or a protocol with `S` (`ESMTPS`, `ESMTPSA`, `SMTPS`, `UTF8SMTPS`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tls {
    /// As written: `TLS1_2`, `TLSv1.3`, `TLS1.3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// As written: `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`, `TLS_AES_256_GCM_SHA384`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
}

/// One `Received:` field, read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// 1 for the oldest hop (the bottom `Received:`), counting up towards the top.
    pub hop: usize,
    /// The `from` clause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Endpoint>,
    /// The `by` clause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Endpoint>,
    /// The `with` clause as written: `ESMTPS`, `Microsoft SMTP Server`, `esmtps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// TLS, when the hop records it (see [`Tls`]); `None` is "not recorded", not "plaintext".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// The `id` clause (`15.20.4867.7` for Exchange, the queue id for Postfix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The `via` clause (`Frontend Transport`, `Mailbox Transport`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The `for` clause, angle brackets removed.
    #[serde(skip_serializing_if = "Option::is_none", rename = "for")]
    pub for_: Option<String>,
    /// The text after the last `;` (the date, as written), trimmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The date read as RFC 5322 (`None` when it is missing or unreadable).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_time")]
    pub time: Option<Timestamp>,
    /// Milliseconds since the previous hop's time (can be negative: clocks differ); `None` for the
    /// first hop or when either time is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i64>,
    /// The unfolded value, whitespace runs collapsed to one space.
    pub raw: String,
}

fn ser_time<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.iso8601()),
        None => s.serialize_none(),
    }
}

impl Hop {
    /// The delay as Message Header Analyzer writes it: `0s`, `4s`, `2m 5s`, `1h 0m 3s`, `-2s`.
    pub fn delay_text(&self) -> Option<String> {
        self.delay_ms.map(format_delay)
    }
}

/// `ms` as `[-]Hh Mm Ss` with leading zero units left out (`4s`, `2m 5s`, `26h 0m 0s`).
pub fn format_delay(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.unsigned_abs() / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, _) => format!("{sign}{m}m {s}s"),
        _ => format!("{sign}{h}h {m}m {s}s"),
    }
}

/// The Received chain of `message` (a whole message or its header section), oldest hop first,
/// each with the delay from the hop before it.
pub fn parse_chain(message: &[u8]) -> Vec<Hop> {
    let section = crate::header_section::section(message);
    let mut hops: Vec<Hop> = crate::header_section::fields(section)
        .filter(|f| f.is("Received"))
        .map(|f| parse_received(&String::from_utf8_lossy(&f.unfolded_value())))
        .collect();
    hops.reverse();
    let mut previous: Option<Timestamp> = None;
    for (i, hop) in hops.iter_mut().enumerate() {
        hop.hop = i + 1;
        hop.delay_ms = match (previous, hop.time) {
            (Some(p), Some(t)) => Some(t.as_millis() - p.as_millis()),
            _ => None,
        };
        if hop.time.is_some() {
            previous = hop.time;
        }
    }
    hops
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    /// A parenthesised comment, without its outer parentheses (nested ones kept).
    Comment(&'a str),
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'(' => {
                let start = i + 1;
                let mut depth = 0usize;
                let mut end = bytes.len();
                while i < bytes.len() {
                    match bytes[i] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i;
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Token::Comment(text[start..end.max(start)].trim()));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'(') {
                    i += 1;
                }
                out.push(Token::Word(&text[start..i]));
            }
        }
    }
    out
}

/// The byte index of the last `;` outside parentheses.
fn last_semicolon(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut last = None;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

#[derive(Clone, Copy, PartialEq)]
enum Clause {
    None,
    From,
    By,
    With,
    Id,
    Via,
    For,
}

fn clause_of(word: &str) -> Option<Clause> {
    Some(match word.to_ascii_lowercase().as_str() {
        "from" => Clause::From,
        "by" => Clause::By,
        "with" => Clause::With,
        "id" => Clause::Id,
        "via" => Clause::Via,
        "for" => Clause::For,
        _ => return None,
    })
}

/// One `Received:` value (unfolded). `hop` and `delay_ms` are left 0 / `None` ([`parse_chain`]
/// fills them).
pub fn parse_received(value: &str) -> Hop {
    let raw = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut hop = Hop { raw: raw.clone(), ..Hop::default() };
    let (clauses, date) = match last_semicolon(&raw) {
        Some(i) => (&raw[..i], Some(raw[i + 1..].trim())),
        None => (raw.as_str(), None),
    };
    if let Some(date) = date.filter(|d| !d.is_empty()) {
        hop.date = Some(date.to_string());
        hop.time = mail_parser::DateTime::parse_rfc822(date)
            .filter(|d| d.is_valid())
            .map(|d| Timestamp::from_secs(d.to_timestamp()));
    }
    let mut clause = Clause::None;
    // Words of the current clause after its first (the value of `with`, `via` may be several).
    let mut with_words: Vec<&str> = Vec::new();
    let mut via_words: Vec<&str> = Vec::new();
    let mut tls = Tls::default();
    let mut tls_seen = false;
    let mut next_is_cipher = false;
    for token in tokens(clauses) {
        match token {
            Token::Comment(c) => {
                if read_tls_comment(c, &mut tls) {
                    tls_seen = true;
                    continue;
                }
                match clause {
                    Clause::From => endpoint_comment(hop.from.get_or_insert_with(Endpoint::default), c),
                    Clause::By => endpoint_comment(hop.by.get_or_insert_with(Endpoint::default), c),
                    // Exim: `with esmtps (TLS1.3)`.
                    Clause::With if c.to_ascii_uppercase().starts_with("TLS") && !c.contains(' ') => {
                        tls.version = Some(c.to_string());
                        tls_seen = true;
                    }
                    _ => {}
                }
            }
            Token::Word(w) => {
                if next_is_cipher {
                    tls.cipher = Some(w.to_string());
                    tls_seen = true;
                    next_is_cipher = false;
                    continue;
                }
                if let Some(c) = clause_of(w) {
                    // `for` inside Exchange's "via Frontend Transport" never happens, but a word
                    // equal to a keyword right after `with`/`via` (e.g. `with id`) is still taken
                    // as the keyword: that is how every MTA writes them.
                    clause = c;
                    continue;
                }
                match clause {
                    Clause::From | Clause::By => {
                        let e = if clause == Clause::From { &mut hop.from } else { &mut hop.by };
                        match e {
                            None => {
                                let mut ep = Endpoint { name: w.to_string(), ..Endpoint::default() };
                                if let Some(ip) = ip_literal(w) {
                                    ep.address = Some(ip);
                                }
                                *e = Some(ep);
                            }
                            Some(ep) => push_note(ep, w),
                        }
                    }
                    Clause::With if w.eq_ignore_ascii_case("tls") => next_is_cipher = true,
                    Clause::With => with_words.push(w),
                    Clause::Via => via_words.push(w),
                    Clause::Id if hop.id.is_none() => hop.id = Some(w.to_string()),
                    Clause::For if hop.for_.is_none() => {
                        hop.for_ = Some(w.trim_start_matches('<').trim_end_matches('>').to_string())
                    }
                    _ => {}
                }
            }
        }
    }
    if !with_words.is_empty() {
        let with = with_words.join(" ");
        if protocol_has_tls(&with) {
            tls_seen = true;
        }
        hop.with = Some(with);
    }
    if !via_words.is_empty() {
        hop.via = Some(via_words.join(" "));
    }
    if tls_seen {
        hop.tls = Some(tls);
    }
    hop
}

/// RFC 3848 / RFC 8314 protocol types that mean TLS (`ESMTPS`, `ESMTPSA`, `UTF8SMTPS`, `SMTPS`,
/// `LMTPS`...).
fn protocol_has_tls(with: &str) -> bool {
    let p = with.to_ascii_uppercase();
    !p.contains(' ') && (p.ends_with("SMTPS") || p.ends_with("SMTPSA") || p.ends_with("LMTPS") || p.ends_with("LMTPSA"))
}

/// Reads a TLS comment into `tls`: Exchange's `version=TLS1_2, cipher=C` and Postfix's
/// `using TLSv1.3 with cipher C (256/256 bits) ...`. Returns whether it was one.
fn read_tls_comment(c: &str, tls: &mut Tls) -> bool {
    if c.contains("version=") || c.contains("cipher=") {
        for part in c.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("version=") {
                tls.version = Some(v.trim().to_string());
            } else if let Some(v) = part.strip_prefix("cipher=") {
                tls.cipher = Some(v.trim().to_string());
            }
        }
        return true;
    }
    if let Some(rest) = c.strip_prefix("using ") {
        let mut words = rest.split_whitespace();
        tls.version = words.next().map(str::to_string);
        let rest: Vec<&str> = words.collect();
        if let Some(i) = rest.iter().position(|w| *w == "cipher") {
            tls.cipher = rest.get(i + 1).map(|s| s.to_string());
        }
        return true;
    }
    false
}

fn ip_literal(word: &str) -> Option<String> {
    let w = word.trim_start_matches('[').trim_end_matches(']');
    let w = w.strip_prefix("IPv6:").or_else(|| w.strip_prefix("ipv6:")).unwrap_or(w);
    w.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

fn push_note(ep: &mut Endpoint, word: &str) {
    match &mut ep.note {
        Some(n) => {
            n.push(' ');
            n.push_str(word);
        }
        None => ep.note = Some(word.to_string()),
    }
}

/// `(mail.example.com [203.0.113.5])`, `(10.0.0.1)`, `(2603:10b6::25)`, `(helo=x)`, `(Postfix)`.
fn endpoint_comment(ep: &mut Endpoint, c: &str) {
    for word in c.split_whitespace() {
        if ep.address.is_none()
            && let Some(ip) = ip_literal(word)
        {
            ep.address = Some(ip);
        } else if ep.host.is_none() && word.contains('.') && !word.contains('=') && !word.starts_with('[') {
            ep.host = Some(word.trim_end_matches('.').to_string());
        } else {
            push_note(ep, word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, host: Option<&str>, address: Option<&str>, note: Option<&str>) -> Option<Endpoint> {
        Some(Endpoint {
            name: name.into(),
            host: host.map(Into::into),
            address: address.map(Into::into),
            note: note.map(Into::into),
        })
    }

    fn tls(version: Option<&str>, cipher: Option<&str>) -> Option<Tls> {
        Some(Tls { version: version.map(Into::into), cipher: cipher.map(Into::into) })
    }

    struct Case {
        name: &'static str,
        value: &'static str,
        from: Option<Endpoint>,
        by: Option<Endpoint>,
        with: Option<&'static str>,
        tls: Option<Tls>,
        id: Option<&'static str>,
        via: Option<&'static str>,
        for_: Option<&'static str>,
        /// The expected time as RFC 5322 UTC text (`None`: unreadable).
        time: Option<&'static str>,
    }

    #[test]
    fn received_forms_table() {
        let cases = [
            Case {
                name: "mailsim frontend stamp with TLS (session.rs)",
                value: " from gw.contoso.test (127.0.0.20) by MAILSIM01.mail.protection.mailsim.test (127.0.0.2) \
                        with Microsoft SMTP Server (version=TLS1_3, cipher=TLS13_AES_256_GCM_SHA384) id \
                        15.20.0000.000 via Frontend Transport; Mon, 7 Dec 2026 09:00:00 +0000",
                from: ep("gw.contoso.test", None, Some("127.0.0.20"), None),
                by: ep("MAILSIM01.mail.protection.mailsim.test", None, Some("127.0.0.2"), None),
                with: Some("Microsoft SMTP Server"),
                tls: tls(Some("TLS1_3"), Some("TLS13_AES_256_GCM_SHA384")),
                id: Some("15.20.0000.000"),
                via: Some("Frontend Transport"),
                for_: None,
                time: Some("Mon, 7 Dec 2026 09:00:00 +0000"),
            },
            Case {
                name: "mailsim frontend stamp, plaintext",
                value: " from client.test (127.0.0.10) by MAILSIM01 (127.0.0.1) with Microsoft SMTP Server id \
                        15.20.0000.000 via Frontend Transport; Thu, 1 Jan 1970 00:00:00 +0000",
                from: ep("client.test", None, Some("127.0.0.10"), None),
                by: ep("MAILSIM01", None, Some("127.0.0.1"), None),
                with: Some("Microsoft SMTP Server"),
                tls: None,
                id: Some("15.20.0000.000"),
                via: Some("Frontend Transport"),
                for_: None,
                time: Some("Thu, 1 Jan 1970 00:00:00 +0000"),
            },
            Case {
                name: "mailsim scripted peer relay stamp (no date)",
                value: " from MAILSIM01.mail.protection.mailsim.test (127.0.0.2) by gw.contoso.test with ESMTP; \
                        relayed by mailsim scripted peer",
                from: ep("MAILSIM01.mail.protection.mailsim.test", None, Some("127.0.0.2"), None),
                by: ep("gw.contoso.test", None, None, None),
                with: Some("ESMTP"),
                tls: None,
                id: None,
                via: None,
                for_: None,
                time: None,
            },
            Case {
                name: "EXO frontend (exo-behaviour §8.5)",
                value: "from mail.fabrikam.com (203.0.113.5) by BN8NAM12FT015.mail.protection.outlook.com \
                        (10.13.182.125) with Microsoft SMTP Server (version=TLS1_2, \
                        cipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) id 15.20.4867.7 via Frontend Transport; \
                        Fri, 7 Jan 2022 05:46:46 +0000",
                from: ep("mail.fabrikam.com", None, Some("203.0.113.5"), None),
                by: ep("BN8NAM12FT015.mail.protection.outlook.com", None, Some("10.13.182.125"), None),
                with: Some("Microsoft SMTP Server"),
                tls: tls(Some("TLS1_2"), Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")),
                id: Some("15.20.4867.7"),
                via: Some("Frontend Transport"),
                for_: None,
                time: Some("Fri, 7 Jan 2022 05:46:46 +0000"),
            },
            Case {
                name: "EXO internal hop, IPv6, no TLS comment",
                value: "from BN8NAM12FT015.eop-nam12.prod.protection.outlook.com (2603:10b6:408:60:cafe::a1) by \
                        BN8PR12CA0012.outlook.office365.com (2603:10b6:408:60::25) with Microsoft SMTP Server \
                        (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4867.9 via \
                        Frontend Transport; Fri, 7 Jan 2022 05:46:47 +0000",
                from: ep(
                    "BN8NAM12FT015.eop-nam12.prod.protection.outlook.com",
                    None,
                    Some("2603:10b6:408:60:cafe::a1"),
                    None,
                ),
                by: ep("BN8PR12CA0012.outlook.office365.com", None, Some("2603:10b6:408:60::25"), None),
                with: Some("Microsoft SMTP Server"),
                tls: tls(Some("TLS1_2"), Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")),
                id: Some("15.20.4867.9"),
                via: Some("Frontend Transport"),
                for_: None,
                time: Some("Fri, 7 Jan 2022 05:46:47 +0000"),
            },
            Case {
                name: "Exchange mailbox hop with HTTPS and no TLS",
                value: "from SN6PR04MB4094.namprd04.prod.outlook.com ([fe80::1d2c:5f3b:2d7e:9c1a]) by \
                        SN6PR04MB4094.namprd04.prod.outlook.com ([fe80::1d2c:5f3b:2d7e:9c1a%6]) with mapi id \
                        15.20.4867.011; Fri, 7 Jan 2022 05:46:45 +0000",
                from: ep("SN6PR04MB4094.namprd04.prod.outlook.com", None, Some("fe80::1d2c:5f3b:2d7e:9c1a"), None),
                by: ep("SN6PR04MB4094.namprd04.prod.outlook.com", None, None, Some("[fe80::1d2c:5f3b:2d7e:9c1a%6]")),
                with: Some("mapi"),
                tls: None,
                id: Some("15.20.4867.011"),
                via: None,
                for_: None,
                time: Some("Fri, 7 Jan 2022 05:46:45 +0000"),
            },
            Case {
                name: "Postfix with TLS comment, queue id, for, (UTC)",
                value: "from mail.example.com (mail.example.com [203.0.113.5]) (using TLSv1.3 with cipher \
                        TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 \
                        bits) server-digest SHA256) (No client certificate requested) by mx.example.org (Postfix) \
                        with ESMTPS id 4F3A21C0123 for <bob@example.org>; Mon,  7 Dec 2026 09:00:04 +0000 (UTC)",
                from: ep(
                    "mail.example.com",
                    Some("mail.example.com"),
                    Some("203.0.113.5"),
                    Some("No client certificate requested"),
                ),
                by: ep("mx.example.org", None, None, Some("Postfix")),
                with: Some("ESMTPS"),
                tls: tls(Some("TLSv1.3"), Some("TLS_AES_256_GCM_SHA384")),
                id: Some("4F3A21C0123"),
                via: None,
                for_: Some("bob@example.org"),
                time: Some("Mon, 7 Dec 2026 09:00:04 +0000"),
            },
            Case {
                name: "Postfix plaintext, unknown client, local time zone",
                value: "from unknown (HELO gw) ([198.51.100.7]) by relay.example.net (Postfix) with ESMTP id \
                        A1B2C3; Mon, 7 Dec 2026 10:00:05 +0100 (CET)",
                from: ep("unknown", None, Some("198.51.100.7"), Some("HELO gw")),
                by: ep("relay.example.net", None, None, Some("Postfix")),
                with: Some("ESMTP"),
                tls: None,
                id: Some("A1B2C3"),
                via: None,
                for_: None,
                time: Some("Mon, 7 Dec 2026 09:00:05 +0000"),
            },
            Case {
                name: "Gmail SMTPS",
                value: "from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41]) by mx.google.com \
                        with SMTPS id a1-20020a17.2026.12.07.01.00.00 for <bob@example.org> (Google Transport \
                        Security); Mon, 07 Dec 2026 01:00:00 -0800 (PST)",
                from: ep("mail-sor-f41.google.com", Some("mail-sor-f41.google.com"), Some("209.85.220.41"), None),
                by: ep("mx.google.com", None, None, None),
                with: Some("SMTPS"),
                tls: tls(None, None),
                id: Some("a1-20020a17.2026.12.07.01.00.00"),
                via: None,
                for_: Some("bob@example.org"),
                time: Some("Mon, 7 Dec 2026 09:00:00 +0000"),
            },
            Case {
                name: "Exim with helo= and tls cipher",
                value: "from [203.0.113.5] (helo=mail.example.com) by mx.example.net with esmtps (TLS1.3) tls \
                        TLS_AES_256_GCM_SHA384 (Exim 4.96) (envelope-from <a@example.com>) id 1abcDE-000123-AB \
                        for bob@example.net; Mon, 07 Dec 2026 09:00:00 +0000",
                from: ep("[203.0.113.5]", None, Some("203.0.113.5"), Some("helo=mail.example.com")),
                by: ep("mx.example.net", None, None, None),
                with: Some("esmtps"),
                tls: tls(Some("TLS1.3"), Some("TLS_AES_256_GCM_SHA384")),
                id: Some("1abcDE-000123-AB"),
                via: None,
                for_: Some("bob@example.net"),
                time: Some("Mon, 7 Dec 2026 09:00:00 +0000"),
            },
            Case {
                name: "by only (local delivery), no from",
                value: "by mx.example.org (Postfix, from userid 1000) id 5E6F; Mon, 7 Dec 2026 09:00:00 +0000",
                from: None,
                by: ep("mx.example.org", None, None, Some("Postfix, from userid 1000")),
                with: None,
                tls: None,
                id: Some("5E6F"),
                via: None,
                for_: None,
                time: Some("Mon, 7 Dec 2026 09:00:00 +0000"),
            },
            Case {
                name: "garbage keeps the raw value",
                value: "((( ;;; not a received header",
                from: None,
                by: None,
                with: None,
                tls: None,
                id: None,
                via: None,
                for_: None,
                time: None,
            },
        ];
        for c in cases {
            let hop = parse_received(c.value);
            assert_eq!(hop.from, c.from, "{}: from", c.name);
            assert_eq!(hop.by, c.by, "{}: by", c.name);
            assert_eq!(hop.with.as_deref(), c.with, "{}: with", c.name);
            assert_eq!(hop.tls, c.tls, "{}: tls", c.name);
            assert_eq!(hop.id.as_deref(), c.id, "{}: id", c.name);
            assert_eq!(hop.via.as_deref(), c.via, "{}: via", c.name);
            assert_eq!(hop.for_.as_deref(), c.for_, "{}: for", c.name);
            assert_eq!(hop.time.map(Timestamp::rfc5322).as_deref(), c.time, "{}: time", c.name);
            assert_eq!(hop.raw, c.value.split_whitespace().collect::<Vec<_>>().join(" "), "{}: raw", c.name);
        }
    }

    #[test]
    fn chain_is_oldest_first_with_delays() {
        let message = b"Received: from MAILSIM01.mail.protection.mailsim.test (127.0.0.2) by gw.contoso.test with ESMTP; relayed by mailsim scripted peer\r\n\
Received: from mx.gw.test (127.0.0.20) by MAILSIM01 (127.0.0.2) with Microsoft SMTP Server\r\n (version=TLS1_3, cipher=X) id 15.20.0000.000 via Frontend Transport; Mon, 7 Dec 2026 09:02:05 +0000\r\n\
Subject: hi\r\n\
Received: from a.test (a.test [203.0.113.5]) by mx.gw.test (Postfix) with ESMTPS id Q1;\r\n\tMon, 7 Dec 2026 09:00:00 +0000 (UTC)\r\n\
Received: from pc by a.test with ESMTP; Mon, 7 Dec 2026 10:00:04 +0100\r\n\
\r\n\
Received: from body (not a header)\r\n";
        let hops = parse_chain(message);
        let summary: Vec<(usize, String, Option<i64>)> = hops
            .iter()
            .map(|h| (h.hop, h.by.as_ref().map(|b| b.name.clone()).unwrap_or_default(), h.delay_ms))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "a.test".to_string(), None),
                (2, "mx.gw.test".to_string(), Some(-4000)),
                (3, "MAILSIM01".to_string(), Some(125_000)),
                (4, "gw.contoso.test".to_string(), None),
            ]
        );
        assert_eq!(hops[2].delay_text().as_deref(), Some("2m 5s"));
        assert_eq!(hops[1].delay_text().as_deref(), Some("-4s"));
        assert!(parse_chain(b"Subject: none\r\n\r\n").is_empty());
    }

    #[test]
    fn delay_text() {
        assert_eq!(format_delay(0), "0s");
        assert_eq!(format_delay(999), "0s");
        assert_eq!(format_delay(61_000), "1m 1s");
        assert_eq!(format_delay(26 * 3_600_000), "26h 0m 0s");
        assert_eq!(format_delay(-3_000), "-3s");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for v in
            ["", ";", "(", ")", "from", "from (", "by )(", "for <", "with tls", "\u{e9}(\u{e9};\u{e9}", "from [::1"]
        {
            let _ = parse_received(v);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any bytes give a chain (no panic), and every hop keeps its place.
        #[test]
        fn any_bytes_give_a_chain(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let hops = parse_chain(&data);
            for (i, h) in hops.iter().enumerate() {
                proptest::prop_assert_eq!(h.hop, i + 1);
            }
        }

        #[test]
        fn any_received_text_parses(v in "(from|by|with|id|for|via|\\(|\\)|;|<|>|\\[|\\]| |[a-z0-9.:]{1,6}){0,40}") {
            let _ = parse_chain(format!("Received: {v}\r\n").as_bytes());
        }
    }
}
