//! EXO's header firewall (exo-behaviour §8.5, \[S37]\[B2]): `X-MS-Exchange-Organization-*` headers
//! belong to the organization. They are removed when a message enters from outside, so a sender
//! cannot forge the tenant's own stamps, and removed when it leaves, so they never reach another
//! organization. A connector trusted for cross-premises headers (`CloudServicesMailEnabled`,
//! §2.1, §3.1) carries them across instead, renamed `X-MS-Exchange-CrossPremises-*` on the way out
//! and promoted back to `X-MS-Exchange-Organization-*` on the way in.
//!
//! Lines, fields, folding and the end of the section are [`crate::header_section`]'s: a header
//! behind a lone LF or CR is a header here too, and the bytes of every kept line are copied as they
//! came.

use crate::header_section;

const ORG: &str = "X-MS-Exchange-Organization-";
const CROSS: &str = "X-MS-Exchange-CrossPremises-";

/// What to do with one header, given its name.
enum Action {
    Keep,
    Drop,
    Rename(&'static str, usize),
}

/// Rewrites the header section field by field; folded continuation lines follow their header.
fn rewrite(content: &[u8], decide: impl Fn(&[u8]) -> Action) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    rewrite_into(content, decide, &mut out);
    out
}

/// [`rewrite`], appending to `out` (the session builds the stored message in one buffer).
fn rewrite_into(content: &[u8], decide: impl Fn(&[u8]) -> Action, out: &mut Vec<u8>) {
    let end = header_section::section_len(content);
    for field in header_section::fields(&content[..end]) {
        match decide(field.first.text) {
            Action::Keep => out.extend_from_slice(field.raw),
            Action::Drop => {}
            Action::Rename(prefix, cut) => {
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&field.raw[cut..]);
            }
        }
    }
    out.extend_from_slice(&content[end..]);
}

fn starts_with(line: &[u8], prefix: &str) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// A message entering the organization: organization headers removed; cross-premises headers
/// promoted when the inbound connector is trusted for them, removed otherwise.
pub fn entering(content: &[u8], cross_premises: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    entering_into(content, cross_premises, &mut out);
    out
}

/// [`entering`], appending the rewritten message to `out`.
pub fn entering_into(content: &[u8], cross_premises: bool, out: &mut Vec<u8>) {
    rewrite_into(
        content,
        |line| {
            if starts_with(line, ORG) {
                Action::Drop
            } else if starts_with(line, CROSS) {
                if cross_premises { Action::Rename(ORG, CROSS.len()) } else { Action::Drop }
            } else {
                Action::Keep
            }
        },
        out,
    )
}

/// The names (after `X-MS-Exchange-CrossPremises-`, lower-case) of the cross-premises headers in
/// `content`: what promotion will turn into organization headers (§2.1).
pub fn promoted_names(content: &[u8]) -> Vec<String> {
    let end = header_section::section_len(content);
    header_section::fields(&content[..end])
        .filter(|f| starts_with(f.first.text, CROSS))
        .filter_map(|f| {
            let line = &f.first.text[CROSS.len()..];
            let colon = memchr::memchr(b':', line)?;
            Some(String::from_utf8_lossy(&line[..colon]).trim().to_ascii_lowercase())
        })
        .collect()
}

/// Whether the tenant's own stamp `name` gives way to a promoted header of the same name.
pub fn is_replaced_by_promotion(name: &str, promoted: &[String]) -> bool {
    name.len() > ORG.len()
        && name[..ORG.len()].eq_ignore_ascii_case(ORG)
        && promoted.iter().any(|p| p.eq_ignore_ascii_case(&name[ORG.len()..]))
}

/// A message leaving the organization: organization headers removed, or renamed to
/// cross-premises headers when the outbound connector is trusted for them.
pub fn leaving(content: &[u8], cross_premises: bool) -> Vec<u8> {
    rewrite(content, |line| {
        if starts_with(line, ORG) {
            if cross_premises { Action::Rename(CROSS, ORG.len()) } else { Action::Drop }
        } else {
            Action::Keep
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &[u8] = b"X-MS-Exchange-Organization-AuthAs: Internal\r\nSubject: x\r\nx-ms-exchange-organization-authsource: evil\r\n folded\r\nX-MS-Exchange-CrossPremises-AuthAs: Internal\r\n\r\nX-MS-Exchange-Organization-InBody: kept\r\n";

    /// §8.5: forged organization headers never survive entry.
    #[test]
    fn entering_strips_forged_stamps_and_promotes_cross_premises_only_when_trusted() {
        let out = String::from_utf8(entering(CONTENT, false)).unwrap();
        assert_eq!(out, "Subject: x\r\n\r\nX-MS-Exchange-Organization-InBody: kept\r\n");
        let out = String::from_utf8(entering(CONTENT, true)).unwrap();
        assert_eq!(
            out,
            "Subject: x\r\nX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nX-MS-Exchange-Organization-InBody: kept\r\n"
        );
    }

    /// A stamp hidden behind a lone LF or CR (BDAT content is not refused for them) is a header
    /// line to the firewall too (`header_section`'s line rule); kept lines keep their own endings.
    #[test]
    fn stamps_behind_lone_line_ends_are_stripped() {
        for content in [
            &b"Subject: x\nX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nbody\r\n"[..],
            b"Subject: x\rX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nbody\r\n",
        ] {
            let out = entering(content, false);
            assert_eq!(out, [&content[..11], b"\r\nbody\r\n"].concat(), "{:?}", String::from_utf8_lossy(content));
        }
    }

    /// §3.1 CloudServicesMailEnabled: kept across premises, stripped towards anyone else.
    #[test]
    fn leaving_strips_or_carries_across_premises() {
        let out = String::from_utf8(leaving(CONTENT, false)).unwrap();
        assert_eq!(
            out,
            "Subject: x\r\nX-MS-Exchange-CrossPremises-AuthAs: Internal\r\n\r\nX-MS-Exchange-Organization-InBody: kept\r\n"
        );
        let out = String::from_utf8(leaving(CONTENT, true)).unwrap();
        assert!(out.starts_with("X-MS-Exchange-CrossPremises-AuthAs: Internal\r\nSubject: x\r\nX-MS-Exchange-CrossPremises-authsource: evil\r\n folded\r\n"), "{out}");
    }
}
