//! The header section of a message (RFC 5322 §2.1, §2.2): the one scanner every reader in the core
//! uses. The session (header size at end of data, the Message-ID), the loop check (`Received:`
//! count, [`crate::stage::outcome::check_loop`]), the header firewall ([`crate::headers`]) and the
//! NDR composer (returned headers, the original Subject, [`crate::ndr`]) all see the same lines, the
//! same fields and the same end of section.
//!
//! Decisions, made once here:
//! - **Line ends.** CRLF ends a line, and so does a lone LF or a lone CR. Content the session
//!   accepts with DATA holds neither (a message with a bare CR or LF is refused whole, `554 5.6.0`),
//!   so for it the rule is simply "CRLF is the line end". Content can still carry them: BDAT chunks
//!   are taken as sent (RFC 3030 §2) and tests and tools build messages in Rust. For such content
//!   every break some reader might see is a break here too, so a header hidden behind a lone LF or
//!   CR is still a header to the firewall (which strips it), to the loop check (which counts it)
//!   and to the NDR (which never copies a bare line end into its own bytes). Rewriters keep each
//!   line's own ending ([`Line::raw`]); only [`normalize_line_ends`] changes them.
//! - **End of section.** The first empty line ends the section and is not part of it; content
//!   without one is all header section. Content that starts with an empty line has an empty section.
//! - **Folding** (§2.2.3). A line starting with SP or HT continues the field before it; a section
//!   that starts with one makes that line a field of its own with no name.
//! - **Names.** A field's name is the bytes of its first line before the first colon, compared
//!   without regard to ASCII case and not trimmed (`Subject :` is not `Subject`).
//! - **Well-formed prefix.** A writer that copies header text into a message of its own (the NDR)
//!   takes [`well_formed`]: the section up to the first line that is neither a field (a non-empty
//!   name of printable ASCII, then a colon) nor a continuation.
//!
//! Pure: slices in, slices out; only unfolding and normalising allocate.

/// One line: its text without the line end, and its raw bytes with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its line end.
    pub text: &'a [u8],
    /// The line with its line end (CRLF, LF or CR; none for a last line without one).
    pub raw: &'a [u8],
}

/// The lines of `data`, each ended by CRLF, a lone LF or a lone CR (see the module header).
pub fn lines(data: &[u8]) -> Lines<'_> {
    Lines { data, pos: 0 }
}

/// Iterator of [`lines`].
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let (text_len, raw_len) = match memchr::memchr2(b'\r', b'\n', rest) {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (i, i + 2),
            Some(i) => (i, i + 1),
            None => (rest.len(), rest.len()),
        };
        self.pos += raw_len;
        Some(Line { text: &rest[..text_len], raw: &rest[..raw_len] })
    }
}

/// Whether a line continues the field before it (starts with SP or HT).
pub fn is_continuation(text: &[u8]) -> bool {
    matches!(text.first(), Some(b' ' | b'\t'))
}

/// The length of the header section: up to and including the line end of its last line, before
/// the empty line that ends it; all of `data` when there is no empty line.
pub fn section_len(data: &[u8]) -> usize {
    let mut len = 0;
    for line in lines(data) {
        if line.text.is_empty() {
            return len;
        }
        len += line.raw.len();
    }
    len
}

/// The header section (see [`section_len`]).
pub fn section(data: &[u8]) -> &[u8] {
    &data[..section_len(data)]
}

/// The well-formed prefix of the header section: up to the first empty line, or the first line that
/// is neither a field nor a continuation (a continuation cannot come first). A message without
/// headers gives an empty slice.
pub fn well_formed(data: &[u8]) -> &[u8] {
    let mut len = 0;
    for line in lines(data) {
        let ok = if is_continuation(line.text) { len > 0 } else { name_of(line.text).is_some_and(is_field_name) };
        if line.text.is_empty() || !ok {
            break;
        }
        len += line.raw.len();
    }
    &data[..len]
}

fn name_of(text: &[u8]) -> Option<&[u8]> {
    memchr::memchr(b':', text).map(|colon| &text[..colon])
}

/// RFC 5322 §2.2: a field name is one or more printable ASCII characters other than the colon.
fn is_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| (33..=126).contains(b))
}

/// One header field: its first line and any continuation lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The first line.
    pub first: Line<'a>,
    /// The whole field, continuation lines and line ends included.
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The name (the bytes before the first colon), `None` for a line without a colon.
    pub fn name(&self) -> Option<&'a [u8]> {
        name_of(self.first.text)
    }

    /// Whether the field is named `name` (ASCII case ignored).
    pub fn is(&self, name: &str) -> bool {
        self.name().is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The value on the first line (after the colon), untrimmed; empty without a colon.
    pub fn first_value(&self) -> &'a [u8] {
        self.name().map_or(&[], |n| &self.first.text[n.len() + 1..])
    }

    /// The value unfolded (RFC 5322 §2.2.3): the first line's value followed by each continuation
    /// line without its line end. Untrimmed.
    pub fn unfolded_value(&self) -> Vec<u8> {
        let mut value = self.first_value().to_vec();
        for line in lines(&self.raw[self.first.raw.len()..]) {
            value.extend_from_slice(line.text);
        }
        value
    }
}

/// The fields of a header section (pass [`section`] or [`well_formed`]; an empty line in `section`
/// is taken as a field line like any other).
pub fn fields(section: &[u8]) -> Fields<'_> {
    Fields { section, pos: 0 }
}

/// Iterator of [`fields`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    section: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let start = self.pos;
        let mut rest = lines(&self.section[start..]);
        let first = rest.next()?;
        let mut end = start + first.raw.len();
        for line in rest {
            if !is_continuation(line.text) {
                break;
            }
            end += line.raw.len();
        }
        self.pos = end;
        Some(Field { first, raw: &self.section[start..end] })
    }
}

/// How many fields of the header section of `data` are named `name`.
pub fn count(data: &[u8], name: &str) -> usize {
    // One pass: the fields of `data` up to the empty line are the fields of its section.
    fields(data).take_while(|f| !f.first.text.is_empty()).filter(|f| f.is(name)).count()
}

/// `section` with every line ending in CRLF (a lone LF or CR becomes CRLF, a last line without an
/// end gets one).
pub fn normalize_line_ends(section: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(section.len() + 16);
    for line in lines(section) {
        out.extend_from_slice(line.text);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (row, data, section, field names in the section, well-formed prefix, Received count)
    type Row = (&'static str, &'static [u8], &'static [u8], &'static [&'static str], &'static [u8], usize);

    /// Every reader's view of hostile header sections, in one table.
    #[test]
    fn hostile_sections() {
        let rows: &[Row] = &[
            (
                "plain",
                b"Received: a\r\nSubject: x\r\n\r\nbody\r\n",
                b"Received: a\r\nSubject: x\r\n",
                &["Received", "Subject"],
                b"Received: a\r\nSubject: x\r\n",
                1,
            ),
            (
                "lone LF ends a line",
                b"Subject: hi\nReceived: evil\r\n\r\nb\r\n",
                b"Subject: hi\nReceived: evil\r\n",
                &["Subject", "Received"],
                b"Subject: hi\nReceived: evil\r\n",
                1,
            ),
            (
                "lone CR ends a line",
                b"Subject: hi\rReceived: evil\r\n\r\nb\r\n",
                b"Subject: hi\rReceived: evil\r\n",
                &["Subject", "Received"],
                b"Subject: hi\rReceived: evil\r\n",
                1,
            ),
            (
                "LF LF ends the section",
                b"Subject: a\n\nReceived: body\r\n",
                b"Subject: a\n",
                &["Subject"],
                b"Subject: a\n",
                0,
            ),
            (
                "CR CR ends the section",
                b"Subject: a\r\rReceived: body\r\n",
                b"Subject: a\r",
                &["Subject"],
                b"Subject: a\r",
                0,
            ),
            (
                "folded lines follow their field",
                b"Subject: hi\r\n Received: folded\r\n\tmore\r\nReceived: b\r\n\r\n",
                b"Subject: hi\r\n Received: folded\r\n\tmore\r\nReceived: b\r\n",
                &["Subject", "Received"],
                b"Subject: hi\r\n Received: folded\r\n\tmore\r\nReceived: b\r\n",
                1,
            ),
            (
                "continuation first",
                b" Received: x\r\nSubject: y\r\n\r\n",
                b" Received: x\r\nSubject: y\r\n",
                &[" Received", "Subject"],
                b"",
                0,
            ),
            (
                "no blank line: all header section",
                b"Received: a\r\nSubject: x\r\n",
                b"Received: a\r\nSubject: x\r\n",
                &["Received", "Subject"],
                b"Received: a\r\nSubject: x\r\n",
                1,
            ),
            ("no line end at all", b"Subject: x", b"Subject: x", &["Subject"], b"Subject: x", 0),
            ("empty section", b"\r\nReceived: body\r\n", b"", &[], b"", 0),
            ("empty message", b"", b"", &[], b"", 0),
            (
                "a body line stops the well-formed prefix",
                b"Subject: a\r\njust text\r\nReceived: b\r\n\r\n",
                b"Subject: a\r\njust text\r\nReceived: b\r\n",
                &["Subject", "", "Received"],
                b"Subject: a\r\n",
                1,
            ),
            (
                "names are not trimmed",
                b"Received : a\r\nreceived:b\r\n\r\n",
                b"Received : a\r\nreceived:b\r\n",
                &["Received ", "received"],
                b"",
                1,
            ),
        ];
        for &(row, data, want_section, want_names, want_prefix, want_received) in rows {
            assert_eq!(section(data), want_section, "{row}: section");
            let names: Vec<String> = fields(section(data))
                .map(|f| String::from_utf8_lossy(f.name().unwrap_or_default()).into_owned())
                .collect();
            assert_eq!(names, want_names, "{row}: fields");
            assert_eq!(well_formed(data), want_prefix, "{row}: well-formed prefix");
            assert_eq!(count(data, "received"), want_received, "{row}: Received count");
            let raw: Vec<u8> = fields(section(data)).flat_map(|f| f.raw.to_vec()).collect();
            assert_eq!(raw, want_section, "{row}: fields cover the section byte for byte");
            let normalized = normalize_line_ends(section(data));
            assert!(lines(&normalized).all(|l| l.raw.ends_with(b"\r\n") && !l.text.contains(&b'\r')), "{row}");
        }
    }

    #[test]
    fn unfolding() {
        let data = b"Subject: a\r\n b\r\n\tc\r\nTo: x\r\n\r\n";
        let subject = fields(section(data)).find(|f| f.is("subject")).unwrap();
        assert_eq!(subject.unfolded_value(), b" a b\tc");
        assert_eq!(subject.first_value(), b" a");
        assert_eq!(normalize_line_ends(b"A: 1\nB: 2\rC: 3"), b"A: 1\r\nB: 2\r\nC: 3\r\n");
    }
}
