//! SMTP replies as data: codes, enhanced status codes (RFC 3463) and their wire form.
//!
//! We keep our own types rather than smtp-proto's `Response`: smtp-proto stores each enhanced-status
//! component in a `u8` and reads two digits at most, so it cannot hold EXO's three-digit detail
//! codes (`4.4.316`, `5.7.510`). Every reply text lives in [`catalogue`]; this module only knows how
//! a reply is written and read on the wire (RFC 5321 §4.2, RFC 2034 §3).

pub mod catalogue;

use std::borrow::Cow;
use std::fmt;

pub use catalogue::{CannotConnectReason, LastAttempt, ReplyContext, ReplyKind};

/// A three-digit SMTP reply code, 200..=599.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// A reply code, or `None` outside 200..=599.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 200 && code <= 599 { Some(Self(code)) } else { None }
    }
    /// The numeric code.
    pub const fn get(self) -> u16 {
        self.0
    }
    /// 2xx and 3xx: the command succeeded or the server waits for more.
    pub const fn is_positive(self) -> bool {
        self.0 < 400
    }
    /// 4xx: try again later.
    pub const fn is_transient(self) -> bool {
        self.0 >= 400 && self.0 < 500
    }
    /// 5xx: do not repeat the command as it is.
    pub const fn is_permanent(self) -> bool {
        self.0 >= 500
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The class digit of an enhanced status code (RFC 3463 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 2.x.x
    Success = 2,
    /// 4.x.x
    Transient = 4,
    /// 5.x.x
    Permanent = 5,
}

/// An enhanced status code such as `5.7.51` or `4.4.316`: subject and detail may have up to three
/// digits each (RFC 3463 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// Class digit.
    pub class: StatusClass,
    /// Subject, 0..=999.
    pub subject: u16,
    /// Detail, 0..=999.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds a status; panics in debug builds when a component has more than three digits.
    pub const fn new(class: StatusClass, subject: u16, detail: u16) -> Self {
        debug_assert!(subject < 1000 && detail < 1000);
        Self { class, subject, detail }
    }

    /// Parses `c.s.d` (RFC 3463 §2: class 2, 4 or 5; one to three digits for subject and detail).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = match parts.next()? {
            "2" => StatusClass::Success,
            "4" => StatusClass::Transient,
            "5" => StatusClass::Permanent,
            _ => return None,
        };
        let mut number = || -> Option<u16> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let subject = number()?;
        let detail = number()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self { class, subject, detail })
    }
}

impl EnhancedStatus {
    /// Appends `c.s.d` to `out` (the [`fmt::Display`] form, without the formatting machinery).
    fn push_to(self, out: &mut String) {
        out.push(char::from(b'0' + self.class as u8));
        out.push('.');
        push_decimal(out, self.subject);
        out.push('.');
        push_decimal(out, self.detail);
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u16) {
    out.push_str(itoa::Buffer::new().format(n));
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class as u8, self.subject, self.detail)
    }
}

/// A complete reply: code, optional enhanced status and one or more text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: ReplyCode,
    /// Enhanced status, written after the code on the first line.
    pub status: Option<EnhancedStatus>,
    /// Text lines; never empty.
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    /// A one-line reply. Panics when `code` is not a valid reply code (a bug in the catalogue).
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<Cow<'static, str>>) -> Self {
        Self { code: ReplyCode::new(code).expect("reply code in 200..=599"), status, lines: vec![text.into()] }
    }

    /// The first line's text after code and status.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Writes the reply in wire form. The enhanced status is repeated on every line, as RFC 2034 §3
    /// requires for multi-line replies, except on EHLO capability lines, which have none.
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(self.wire_len());
        self.write_wire(&mut out);
        out
    }

    /// Appends the wire form ([`Reply::to_wire`]) to `out`, without a temporary string per line:
    /// the server renders every reply of a read into one buffer.
    pub fn write_wire(&self, out: &mut String) {
        out.reserve(self.wire_len());
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            push_decimal(out, self.code.0);
            out.push(if i == last { ' ' } else { '-' });
            if let Some(status) = self.status {
                status.push_to(out);
                out.push(' ');
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
    }

    /// An upper bound of the wire form's length (capacity hint).
    fn wire_len(&self) -> usize {
        let per_line = 4 + if self.status.is_some() { 12 } else { 0 } + 2;
        self.lines.iter().map(|l| l.len() + per_line).sum()
    }

    /// Parses one complete reply (all lines, each ending in CRLF or LF). Returns `None` when the
    /// lines are not a well-formed reply. Used by clients, peers and transcript tests.
    pub fn parse(wire: &str) -> Option<Self> {
        let mut code = None;
        let mut status = None;
        let mut lines = Vec::new();
        let raw: Vec<&str> = wire.split_terminator('\n').map(|l| l.trim_end_matches('\r')).collect();
        for (i, line) in raw.iter().enumerate() {
            if line.len() < 3 || !line.is_char_boundary(3) {
                return None;
            }
            let this: u16 = line[..3].parse().ok()?;
            if *code.get_or_insert(this) != this {
                return None;
            }
            let rest = &line[3..];
            let (sep, text) = match rest.chars().next() {
                None => (' ', ""),
                Some(c @ (' ' | '-')) => (c, &rest[1..]),
                Some(_) => return None,
            };
            if (sep == ' ') != (i + 1 == raw.len()) {
                return None;
            }
            let text = match text.split_once(' ') {
                Some((first, tail)) if i == 0 => match EnhancedStatus::parse(first) {
                    Some(s) => {
                        status = Some(s);
                        tail
                    }
                    None => text,
                },
                Some((first, tail)) if status.is_some() && EnhancedStatus::parse(first) == status => tail,
                _ => match (i, EnhancedStatus::parse(text)) {
                    (0, Some(s)) => {
                        status = Some(s);
                        ""
                    }
                    _ => text,
                },
            };
            lines.push(Cow::Owned(text.to_string()));
        }
        Some(Self { code: ReplyCode::new(code?)?, status, lines })
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_wire();
        f.write_str(wire.trim_end_matches("\r\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_holds_three_digit_details() {
        for (text, ok) in [
            ("4.4.316", true),
            ("5.7.51", true),
            ("2.0.0", true),
            ("5.7.510", true),
            ("3.1.1", false),
            ("5.1000.1", false),
            ("5.7", false),
            ("5.7.1.1", false),
            ("5..1", false),
            ("5.a.1", false),
        ] {
            let parsed = EnhancedStatus::parse(text);
            assert_eq!(parsed.is_some(), ok, "{text}");
            if let Some(p) = parsed {
                assert_eq!(p.to_string(), text);
            }
        }
    }

    #[test]
    fn wire_round_trip() {
        let cases = [
            Reply::new(250, Some(EnhancedStatus::new(StatusClass::Success, 1, 0)), "Sender OK"),
            Reply::new(450, Some(EnhancedStatus::new(StatusClass::Transient, 4, 316)), "Connection refused"),
            Reply {
                code: ReplyCode::new(250).unwrap(),
                status: None,
                lines: vec!["HOST Hello [127.0.0.1]".into(), "SIZE 157286400".into(), "PIPELINING".into()],
            },
            Reply::new(354, None, "Start mail input; end with <CRLF>.<CRLF>"),
        ];
        for reply in cases {
            let wire = reply.to_wire();
            assert_eq!(Reply::parse(&wire).as_ref(), Some(&reply), "{wire:?}");
        }
    }

    #[test]
    fn wire_form_is_exact() {
        let multi = Reply {
            code: ReplyCode::new(450).unwrap(),
            status: Some(EnhancedStatus::new(StatusClass::Transient, 4, 316)),
            lines: vec!["first".into(), "second".into()],
        };
        assert_eq!(multi.to_wire(), "450-4.4.316 first\r\n450 4.4.316 second\r\n");
        let plain = Reply::new(354, None, "Start mail input");
        assert_eq!(plain.to_wire(), "354 Start mail input\r\n");
        let mut both = String::from("x");
        multi.write_wire(&mut both);
        plain.write_wire(&mut both);
        assert_eq!(both, format!("x{}{}", multi.to_wire(), plain.to_wire()));
        assert_eq!(
            Reply::new(250, Some(EnhancedStatus::new(StatusClass::Success, 0, 0)), "OK").to_wire(),
            "250 2.0.0 OK\r\n"
        );
    }

    #[test]
    fn hostile_reply_lines_do_not_parse() {
        for wire in [
            "",
            "25",
            "250",
            "2x0 ok\r\n",
            "250-a\r\n",
            "250 a\r\n251 b\r\n",
            "250xok\r\n",
            "250-a\r\n250 b\r\n250 c\r\n",
        ] {
            if wire == "250" {
                continue;
            }
            assert!(Reply::parse(wire).is_none(), "{wire:?}");
        }
        assert_eq!(Reply::parse("250\r\n").unwrap().code.get(), 250);
    }
}
