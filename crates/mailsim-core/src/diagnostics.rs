//! What the configuration loaders say when they refuse a file: the tenant loader
//! ([`crate::tenant::load`]) and the scenario loader (`mailsim::scenario::load`) share this module,
//! so both speak the same way.
//!
//! Contract:
//! - An error names the file, the 1-based line and column (in characters) of the offending value,
//!   the dotted field (`InboundConnector[2].SenderIPAddresses`, tables counting from 1) and the
//!   problem, then, where it can be said, what to write instead: [`ConfigError`], shown as
//!   `file:line:col: field: message` and `  hint: ...`.
//! - Positions come from byte spans of the TOML text ([`position`]); a loader never counts lines
//!   itself.
//! - "Did you mean" is one policy for every name a file can misspell (keys, tables, hosts,
//!   connectors, mailboxes, certificates): the candidate nearest by Levenshtein distance (the
//!   `strsim` crate), ignoring case, when at most a third of the word (and at least 2 edits) away
//!   ([`closest`]). An unknown key that differs only in case gets the case-sensitivity hint instead
//!   ([`key_hint`]).

use std::fmt;
use std::ops::Range;

/// A configuration a loader refuses: where, which field, what is wrong, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The path given to the loader.
    pub file: String,
    /// 1-based line of the offending value (or of its table when the value is missing).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The field, e.g. `InboundConnector[2].SenderIPAddresses`; empty for a syntax error outside
    /// any key.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead, where that can be said.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error at byte offset `span.start` of `text` (the file named `file`).
    pub fn at(
        text: &str,
        file: &str,
        span: &Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = position(text, span.start);
        Self { file: file.to_string(), line, column, field: field.into(), message: message.into(), hint: None }
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    /// `tenant.toml:14:21: InboundConnector[2].SenderIPAddresses: ...`, then `  hint: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Something a loader accepted but an admin should know (an assumed default, an ignored key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The path given to the loader.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The field.
    pub field: String,
    /// What was assumed or ignored.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    /// `tenant.toml:14: warning: InboundConnector[2].RequireTls: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: warning: {}: {}", self.file, self.line, self.field, self.message)
    }
}

/// The text of a configuration file's bytes, or an error at the line and column of the first byte
/// that is not UTF-8 (TOML files are UTF-8, TOML 1.0 §"Spec").
pub fn utf8_text<'b>(bytes: &'b [u8], file: &str) -> Result<&'b str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        let mut err = ConfigError::at(valid, file, &(valid.len()..valid.len()), "", "");
        err.message =
            format!("invalid UTF-8 (byte 0x{:02X}); a configuration file is UTF-8 text", bytes[e.valid_up_to()]);
        err
    })
}

/// Where a TOML syntax error is, and what to say: the parser's span and message, except that its
/// nesting limit comes without a span (`recursion limit`), which would point at 1:1. That is a key
/// of too many dotted parts (or a header of too many): point at the line with the most dots.
pub fn syntax_error_at(text: &str, span: Option<Range<usize>>, message: &str) -> (Range<usize>, String) {
    if let Some(span) = span {
        return (span, message.trim().to_string());
    }
    let mut best = (0, 0);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let key = line.split('=').next().unwrap_or_default();
        let dots = key.matches('.').count();
        if dots > best.1 {
            best = (offset + (line.len() - line.trim_start().len()), dots);
        }
        offset += line.len();
    }
    if best.1 == 0 {
        return (0..0, message.trim().to_string());
    }
    (best.0..best.0, format!("{} (a key of {} dotted parts is nested too deeply)", message.trim(), best.1 + 1))
}

/// Refuses a document with nothing in it (empty, or only comments and blank lines): a file given
/// to a loader that configures nothing is a mistake (a wrong path, an unsaved editor buffer), not a
/// request for defaults. `what` names the kind of file for the message.
pub fn refuse_empty(text: &str, file: &str, what: &str) -> Result<(), ConfigError> {
    let has_content = text.lines().any(|l| {
        let l = l.trim_start_matches('\u{feff}').trim();
        !l.is_empty() && !l.starts_with('#')
    });
    if has_content {
        return Ok(());
    }
    Err(ConfigError::at(text, file, &(0..0), "", format!("the {what} is empty: it has no tables and no keys"))
        .with_hint(format!("a {what} names at least one table, e.g. `[[AcceptedDomain]]`")))
}

/// 1-based line and column (in characters) of byte `offset` in `text`; an offset inside a
/// character counts as that character, one past the end as the end.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The candidate nearest to `word`, ignoring case, if it is close enough to be a typo: at most a
/// third of the word's characters away, and always within 2 edits. Ties go to the first candidate.
pub fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let folded = word.to_lowercase();
    let (best, distance) =
        candidates.into_iter().map(|c| (c, strsim::levenshtein(&folded, &c.to_lowercase()))).min_by_key(|(_, d)| *d)?;
    (distance <= (word.chars().count() / 3).max(2)).then_some(best)
}

/// The hint for an unknown key among `known`: the key written with other case, or the key
/// probably meant. `None` when neither can be said (callers then list what is known).
pub fn key_hint(key: &str, known: &[&str]) -> Option<String> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(format!("keys are case-sensitive: write `{k}`"));
    }
    closest(key, known.iter().copied()).map(|k| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 6), (2, 1));
        // `=` after the two-byte é is the 4th character of line 2.
        assert_eq!(position(text, 10), (2, 4));
        // Inside é: the character itself; past the end: the end.
        assert_eq!(position(text, 8), (2, 2));
        assert_eq!(position(text, 999), (3, 1));
    }

    /// Issue 14: invalid UTF-8 gets its line and column; empty and comment-only files are refused.
    #[test]
    fn invalid_utf8_and_empty_files() {
        let e = utf8_text(b"a = 1\nb = \"x\xff\"\n", "f.toml").unwrap_err();
        assert_eq!(e.to_string(), "f.toml:2:7: invalid UTF-8 (byte 0xFF); a configuration file is UTF-8 text");
        assert_eq!(utf8_text("é = 1".as_bytes(), "f.toml"), Ok("é = 1"));
        for empty in ["", "\n\n", "# nothing\n  # here\n", "\u{feff}"] {
            let e = refuse_empty(empty, "t.toml", "tenant file").unwrap_err();
            assert!(e.to_string().starts_with("t.toml:1:1: the tenant file is empty"), "{e}");
        }
        assert!(refuse_empty("# c\n[Transport]\n", "t.toml", "tenant file").is_ok());
    }

    /// Issue 14: a very long dotted key reported `1:1: recursion limit`.
    #[test]
    fn nesting_limit_points_at_the_key() {
        let key = vec!["a"; 200].join(".");
        let text = format!("[Transport]\nx = 1\n  {key} = 1\n");
        let (span, message) = syntax_error_at(&text, None, "recursion limit");
        assert_eq!(position(&text, span.start), (3, 3));
        assert_eq!(message, "recursion limit (a key of 200 dotted parts is nested too deeply)");
        assert_eq!(syntax_error_at(&text, Some(4..5), " bad "), (4..5, "bad".to_string()));
    }

    #[test]
    fn typos_are_a_third_of_the_word_at_most() {
        assert_eq!(closest("gatway", ["gateway", "internet"]), Some("gateway"));
        assert_eq!(closest("GATWAY", ["gateway"]), Some("gateway"));
        assert_eq!(closest("zzz", ["gateway", "internet"]), None);
        assert_eq!(
            closest("RestrictDomainToIPAddresses", ["RestrictDomainsToIPAddresses"]),
            Some("RestrictDomainsToIPAddresses")
        );
        assert_eq!(closest("abc", std::iter::empty()), None);
    }

    #[test]
    fn key_hints() {
        let known = ["SenderIPAddresses", "SenderDomains"];
        assert_eq!(
            key_hint("SenderIpAddresses", &known).as_deref(),
            Some("keys are case-sensitive: write `SenderIPAddresses`")
        );
        assert_eq!(key_hint("SenderDomain", &known).as_deref(), Some("did you mean `SenderDomains`?"));
        assert_eq!(key_hint("Foo", &known), None);
    }

    #[test]
    fn display_has_path_line_column_field_message_and_hint() {
        let e = ConfigError::at("x\ny = 1\n", "f.toml", &(6..7), "T.y", "bad").with_hint("write 2");
        assert_eq!(e.to_string(), "f.toml:2:5: T.y: bad\n  hint: write 2");
        let e = ConfigError::at("", "f.toml", &(0..0), "", "syntax");
        assert_eq!(e.to_string(), "f.toml:1:1: syntax");
    }
}
