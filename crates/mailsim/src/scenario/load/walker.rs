//! The walker: positions and values over the TOML tree of a scenario file. A `Node` is a value
//! with its byte span and its dotted field (`step[2].send.from`), a `Tbl` a table the same way;
//! `Cx` reads typed values out of them and turns every refusal into a `ConfigError` at the
//! value's position (`mailsim_core::diagnostics`). Nothing here knows what a host or a step is.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use mailsim_core::diagnostics::{ConfigError, key_hint, position};
use mailsim_core::time::MAX_CONFIG_DURATION;
use toml::de::{DeTable, DeValue};

/// How a duration is written, for hints.
pub(super) const DURATION_HINT: &str = "write a number and a unit: 250ms, 30s, 5m, 25h or 2d (or a sum such as 1h30m)";

/// Parses a duration: `250ms`, `30s`, `5m`, `25h`, `2d`, or a sum of those (`1h30m`). `None` for
/// a malformed text or one longer than `MAX_CONFIG_DURATION` (100 years).
pub fn parse_duration(text: &str) -> Option<Duration> {
    parse_duration_checked(text).ok()
}

/// Why a duration text was refused.
#[derive(Debug, PartialEq, Eq)]
enum DurationError {
    Malformed,
    OutOfRange,
}

/// [`parse_duration`] with the reason; every step is checked arithmetic (issue 14: a sum of
/// ~1,100 large terms overflowed `Duration`).
fn parse_duration_checked(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Malformed);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::Malformed);
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DurationError::Malformed),
        };
        // Digits only: a parse failure is a number too large for u64.
        let n: u64 = number.parse().map_err(|_| DurationError::OutOfRange)?;
        let term = n.checked_mul(millis).map(Duration::from_millis).ok_or(DurationError::OutOfRange)?;
        total = total.checked_add(term).ok_or(DurationError::OutOfRange)?;
        if total > MAX_CONFIG_DURATION {
            return Err(DurationError::OutOfRange);
        }
    }
    Ok(total)
}

/// The file being read: its name for errors, its text for positions, its folder for the paths
/// it names.
pub(super) struct Cx<'t> {
    pub(super) file: String,
    pub(super) text: &'t str,
    pub(super) dir: PathBuf,
}

/// A value, where it is written, and its dotted field.
#[derive(Clone)]
pub(super) struct Node<'a> {
    pub(super) v: &'a DeValue<'a>,
    pub(super) span: Range<usize>,
    pub(super) field: String,
}

/// A table, where it is written, and its dotted field.
#[derive(Clone)]
pub(super) struct Tbl<'a> {
    pub(super) t: &'a DeTable<'a>,
    pub(super) span: Range<usize>,
    pub(super) field: String,
}

impl<'a> Tbl<'a> {
    pub(super) fn sub(&self, key: &str) -> String {
        if self.field.is_empty() { key.to_string() } else { format!("{}.{key}", self.field) }
    }

    pub(super) fn get(&self, key: &str) -> Option<Node<'a>> {
        self.t.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| Node {
            v: v.get_ref(),
            span: v.span(),
            field: self.sub(key),
        })
    }

    pub(super) fn key_span(&self, key: &str) -> Range<usize> {
        self.t.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(k, _)| k.span()).unwrap_or(self.span.clone())
    }

    /// Entries in the order they were written.
    pub(super) fn entries(&self) -> Vec<(&'a str, Range<usize>, Node<'a>)> {
        let mut out: Vec<_> = self
            .t
            .iter()
            .map(|(k, v)| {
                let key: &'a str = k.get_ref().as_ref();
                (key, k.span(), Node { v: v.get_ref(), span: v.span(), field: self.sub(key) })
            })
            .collect();
        out.sort_by_key(|(_, span, _)| span.start);
        out
    }

    /// The keys present out of `keys`, in the order they were written.
    pub(super) fn present(&self, keys: &[&str]) -> Vec<&'a str> {
        self.entries().into_iter().map(|(k, _, _)| k).filter(|k| keys.contains(k)).collect()
    }
}

/// The plain TOML value of a node (for the tenant document and peer scripts, which serde reads).
pub(super) fn to_toml(v: &DeValue<'_>) -> toml::Value {
    match v {
        DeValue::String(s) => toml::Value::String(s.to_string()),
        DeValue::Integer(i) => toml::Value::Integer(i64::from_str_radix(i.as_str(), i.radix()).unwrap_or(i64::MAX)),
        DeValue::Float(f) => toml::Value::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => toml::Value::Boolean(*b),
        DeValue::Datetime(d) => toml::Value::Datetime(*d),
        DeValue::Array(a) => toml::Value::Array(a.iter().map(|x| to_toml(x.get_ref())).collect()),
        DeValue::Table(t) => {
            toml::Value::Table(t.iter().map(|(k, v)| (k.get_ref().to_string(), to_toml(v.get_ref()))).collect())
        }
    }
}

impl Cx<'_> {
    pub(super) fn err(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.text, &self.file, span, field, message)
    }

    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        position(self.text, span.start).0
    }

    /// A TOML syntax error, at its position and naming the field it is in (as the tenant loader does).
    pub(super) fn syntax(&self, e: &toml::de::Error) -> ConfigError {
        let (span, message) = mailsim_core::diagnostics::syntax_error_at(self.text, e.span(), e.message());
        let field = mailsim_core::tenant::load::field_at(self.text, span.start);
        // A broken table header (`[[step]`) names no field yet.
        let field = if field.starts_with('[') { "" } else { field.as_str() };
        self.err(&span, field, message)
    }

    pub(super) fn keys(&self, t: &Tbl<'_>, allowed: &[&str]) -> Result<(), ConfigError> {
        for (key, span, _) in t.entries() {
            if allowed.contains(&key) {
                continue;
            }
            let hint = key_hint(key, allowed).unwrap_or_else(|| format!("known keys here: {}", allowed.join(", ")));
            return Err(self.err(&span, &t.sub(key), format!("unknown key `{key}`")).with_hint(hint));
        }
        Ok(())
    }

    pub(super) fn type_error(&self, n: &Node<'_>, expected: &str) -> ConfigError {
        self.err(&n.span, &n.field, format!("expected {expected}, found {}", n.v.type_str()))
    }

    pub(super) fn table<'a>(&self, n: &Node<'a>) -> Result<Tbl<'a>, ConfigError> {
        match n.v {
            DeValue::Table(t) => Ok(Tbl { t, span: n.span.clone(), field: n.field.clone() }),
            _ => Err(self.type_error(n, "a table")),
        }
    }

    pub(super) fn string<'a>(&self, n: &Node<'a>) -> Result<&'a str, ConfigError> {
        match n.v {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.type_error(n, "a string")),
        }
    }

    pub(super) fn boolean(&self, n: &Node<'_>) -> Result<bool, ConfigError> {
        n.v.as_bool().ok_or_else(|| self.type_error(n, "true or false"))
    }

    pub(super) fn count(&self, n: &Node<'_>) -> Result<usize, ConfigError> {
        match n.v {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| self.err(&n.span, &n.field, "expected a whole number of 0 or more")),
            _ => Err(self.type_error(n, "a whole number")),
        }
    }

    /// A string, or an array of strings.
    pub(super) fn strings(&self, n: &Node<'_>) -> Result<Vec<String>, ConfigError> {
        match n.v {
            DeValue::String(s) => Ok(vec![s.to_string()]),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let node = Node { v: item.get_ref(), span: item.span(), field: format!("{}[{}]", n.field, i + 1) };
                    self.string(&node).map(str::to_string)
                })
                .collect(),
            _ => Err(self.type_error(n, "a string or an array of strings")),
        }
    }

    pub(super) fn duration(&self, n: &Node<'_>) -> Result<Duration, ConfigError> {
        let text = self.string(n)?;
        // A refused text is quoted, but not 20 KB of it.
        let shown: String =
            if text.chars().count() > 40 { text.chars().take(40).chain(['…']).collect() } else { text.to_string() };
        let text = shown.as_str();
        parse_duration_checked(self.string(n)?).map_err(|e| match e {
            DurationError::Malformed => {
                self.err(&n.span, &n.field, format!("bad duration {text:?}")).with_hint(DURATION_HINT)
            }
            DurationError::OutOfRange => self
                .err(&n.span, &n.field, format!("duration {text:?} is out of range"))
                .with_hint("at most 100 years (36500d)"),
        })
    }

    /// A DNS name (`mx.partner.test`, a trailing dot allowed; `_` allowed as in service names;
    /// U-labels become A-labels, UTS #46): refused here rather than when the step runs.
    pub(super) fn dns_name(&self, n: &Node<'_>) -> Result<String, ConfigError> {
        let text = self.string(n)?.trim();
        let bare = text.strip_suffix('.').unwrap_or(text);
        let ascii = if bare.is_ascii() {
            Some(bare.to_ascii_lowercase())
        } else {
            mailsim_core::addr::Domain::parse(bare, true).ok().map(|d| d.as_str().to_string())
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        match ascii {
            Some(a) if a.len() <= 253 && a.split('.').all(label_ok) => Ok(a),
            _ => Err(self
                .err(&n.span, &n.field, format!("{text:?} is not a DNS name"))
                .with_hint("labels of letters, digits, `-` (not first or last) and `_`, 63 characters at most, separated by single dots")),
        }
    }

    pub(super) fn ip(&self, n: &Node<'_>) -> Result<IpAddr, ConfigError> {
        let text = self.string(n)?;
        text.trim().parse().map_err(|_| {
            self.err(&n.span, &n.field, format!("{text:?} is not an IP address")).with_hint("e.g. \"198.51.100.7\"")
        })
    }

    pub(super) fn req<'a>(&self, t: &Tbl<'a>, key: &str) -> Result<Node<'a>, ConfigError> {
        t.get(key).ok_or_else(|| self.err(&t.span, &t.sub(key), format!("missing key `{key}`")))
    }
}
