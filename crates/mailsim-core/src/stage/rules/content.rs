//! What mail flow rules read from a message and how their actions rewrite it (exo-behaviour
//! §13.3–§13.5). Reading is mail-parser's (header values after RFC 2047 decoding, addresses,
//! body parts, attachment sizes); header fields are edited field by field with
//! [`crate::header_section`] (the same scanner as the header firewall) and new values are written
//! by mail-builder (which folds and encodes them); a body is rebuilt part by part with mail-builder
//! from mail-parser's tree, so the MIME structure stays valid. No byte-level surgery on MIME.

use std::borrow::Cow;

use mail_builder::headers::Header as _;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use crate::addr::EmailAddress;
use crate::header_section;
use crate::tenant::transport_rule::{DisclaimerLocation, Importance};

/// What the conditions read, extracted once per version of the content.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The `From:` address.
    pub from: Option<EmailAddress>,
    /// `To:` addresses.
    pub to: Vec<EmailAddress>,
    /// `Cc:` addresses.
    pub cc: Vec<EmailAddress>,
    /// The decoded Subject.
    pub subject: String,
    /// Every header, name and decoded value, in order (repeated headers repeat).
    pub headers: Vec<(String, String)>,
    /// `Importance:` (Normal when absent or unknown).
    pub importance: Importance,
    /// Size of every attachment (inline ones included).
    pub attachment_sizes: Vec<u64>,
    /// The text of the body parts (plain and HTML), for `SubjectOrBodyContainsWords`.
    pub body: String,
}

impl View {
    /// The view of the message after [`set_header`]: the first instance replaced, or one added.
    pub fn with_header_set(&self, name: &str, value: &str) -> View {
        let mut v = self.clone();
        match v.headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(i) => v.headers[i].1 = value.to_string(),
            None => v.headers.push((name.to_string(), value.to_string())),
        }
        if name.eq_ignore_ascii_case("Subject") {
            v.subject = value.to_string();
        }
        v
    }

    /// The view after [`remove_header`].
    pub fn with_header_removed(&self, name: &str) -> View {
        let mut v = self.clone();
        v.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if name.eq_ignore_ascii_case("Subject") {
            v.subject.clear();
        }
        v
    }

    /// The view after [`add_disclaimer`]: the disclaimer's text in the body.
    pub fn with_disclaimer(&self, html: &str, location: DisclaimerLocation) -> View {
        let mut v = self.clone();
        v.body = join_text(&v.body, &strip_tags(html), location);
        v
    }
}

/// The parser, configured once (its header table is a hash map built on each `new`).
fn parser() -> &'static MessageParser {
    static PARSER: std::sync::OnceLock<MessageParser> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| MessageParser::new().with_mime_headers().with_address_headers().default_header_text())
}

fn addresses(v: Option<&mail_parser::Address<'_>>) -> Vec<EmailAddress> {
    v.map(|a| a.iter().filter_map(|a| a.address()).filter_map(|s| EmailAddress::parse(s, true).ok()).collect())
        .unwrap_or_default()
}

/// `data` as mail-parser reads it (`None` when it cannot), to share one parse between [`view_of`]
/// and [`add_disclaimer_to`].
pub fn parse(data: &[u8]) -> Option<Message<'_>> {
    parser().parse(data)
}

/// Reads `data`; `with_body` also collects the body text (only rules that look at it need it).
pub fn view(data: &[u8], with_body: bool) -> View {
    view_of(parse(data).as_ref(), data, with_body)
}

/// [`view`] of `data` already parsed (`msg` is [`parse`]`(data)`).
pub fn view_of(msg: Option<&Message<'_>>, data: &[u8], with_body: bool) -> View {
    let Some(msg) = msg else { return View::default() };
    let headers = msg
        .headers()
        .iter()
        .map(|h| {
            let value = match &h.value {
                HeaderValue::Text(t) => t.to_string(),
                HeaderValue::TextList(l) => l.join(", "),
                _ => raw_value(data, h.offset_start, h.offset_end),
            };
            (h.name.as_str().to_string(), value)
        })
        .collect();
    let importance = msg
        .header_as("Importance", mail_parser::HeaderForm::Text)
        .first()
        .and_then(|v| v.as_text().map(str::trim).map(str::to_ascii_lowercase))
        .map_or(Importance::Normal, |v| match v.as_str() {
            "high" => Importance::High,
            "low" => Importance::Low,
            _ => Importance::Normal,
        });
    let attachment_sizes = msg.attachments().map(|p| p.contents().len() as u64).collect();
    let body = if with_body { body_text(msg) } else { String::new() };
    View {
        from: addresses(msg.from()).into_iter().next(),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        subject: msg.subject().unwrap_or("").to_string(),
        headers,
        importance,
        attachment_sizes,
        body,
    }
}

fn raw_value(data: &[u8], start: u32, end: u32) -> String {
    let bytes = data.get(start as usize..end as usize).unwrap_or_default();
    let unfolded: Vec<u8> = bytes.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect();
    String::from_utf8_lossy(&unfolded).trim().to_string()
}

fn body_text(msg: &Message<'_>) -> String {
    let mut out = String::new();
    for id in msg.text_body.iter().chain(&msg.html_body) {
        if let Some(part) = msg.parts.get(*id as usize) {
            match &part.body {
                PartType::Text(t) => out.push_str(t),
                PartType::Html(h) => out.push_str(&strip_tags(h)),
                _ => {}
            }
            out.push('\n');
        }
    }
    out
}

/// The text of an HTML fragment: tags dropped, the common entities decoded. Used for the plain
/// text version of a disclaimer (§13.5: plain-text messages get the text with the HTML ignored).
pub fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    // Every entity starts with `&`: without one the five passes below would copy the text as is.
    if !out.contains('&') {
        return out;
    }
    out.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

/// `name: value` as mail-builder writes it (folded, RFC 2047-encoded when not ASCII).
fn field(name: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    Text::new(value.to_string()).write_header(&mut out, name.len() + 2);
    out
}

/// Rewrites the header section: `replace` decides per field (by name) whether to keep it, drop
/// it, or put other bytes in its place; `append` goes at the end of the section. The body is
/// copied as it came.
fn edit_headers(data: &[u8], mut replace: impl FnMut(&[u8]) -> Edit, append: Option<Vec<u8>>) -> Vec<u8> {
    let end = header_section::section_len(data);
    let mut out = Vec::with_capacity(data.len() + 128);
    for f in header_section::fields(&data[..end]) {
        match replace(f.first.text) {
            Edit::Keep => out.extend_from_slice(f.raw),
            Edit::Drop => {}
            Edit::Replace(bytes) => out.extend_from_slice(&bytes),
        }
    }
    if let Some(bytes) = append {
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&data[end..]);
    out
}

enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

fn field_is(line: &[u8], name: &str) -> bool {
    line.len() > name.len() && line[name.len()] == b':' && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
}

/// `SetHeaderName`/`SetHeaderValue`: replaces the first instance, or adds the header (§13.5
/// recommendation: replace the first instance).
pub fn set_header(data: &[u8], name: &str, value: &str) -> Vec<u8> {
    // One pass over the header section: the first instance replaced in place, or the field added
    // at the end of the section when there was none.
    let end = header_section::section_len(data);
    let mut new = Some(field(name, value));
    let mut out = Vec::with_capacity(data.len() + 128);
    for f in header_section::fields(&data[..end]) {
        match new.take_if(|_| field_is(f.first.text, name)) {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(f.raw),
        }
    }
    if let Some(bytes) = new {
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(&data[end..]);
    out
}

/// `RemoveHeader`: every instance.
pub fn remove_header(data: &[u8], name: &str) -> Vec<u8> {
    edit_headers(data, |line| if field_is(line, name) { Edit::Drop } else { Edit::Keep }, None)
}

/// `PrependSubject`: the decoded subject with the prefix, written anew.
pub fn prepend_subject(data: &[u8], subject: &str, prefix: &str) -> Vec<u8> {
    set_header(data, "Subject", &format!("{prefix}{subject}"))
}

/// `AddToRecipients` / `CopyTo`: the addresses appended to `To:` or `Cc:`.
pub fn add_addresses(data: &[u8], header: &str, existing: &[EmailAddress], added: &[EmailAddress]) -> Vec<u8> {
    let all: Vec<String> = existing.iter().chain(added).map(ToString::to_string).collect();
    let mut out = Vec::new();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(all.join(", ").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut done = false;
    let replaced = edit_headers(
        data,
        |line| {
            if !done && field_is(line, header) {
                done = true;
                Edit::Replace(out.clone())
            } else {
                Edit::Keep
            }
        },
        None,
    );
    if done { replaced } else { edit_headers(data, |_| Edit::Keep, Some(out)) }
}

/// A body the disclaimer cannot change (§13.5): signed or encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unchangeable;

/// `ApplyHtmlDisclaimerText`: the disclaimer added to every body part (HTML as written, plain
/// text with the HTML ignored), the rest of the MIME tree rebuilt as it was.
pub fn add_disclaimer(data: &[u8], html: &str, location: DisclaimerLocation) -> Result<Vec<u8>, Unchangeable> {
    add_disclaimer_to(parse(data).as_ref(), data, html, location)
}

/// [`add_disclaimer`] of `data` already parsed (`msg` is [`parse`]`(data)`).
pub fn add_disclaimer_to(
    msg: Option<&Message<'_>>,
    data: &[u8],
    html: &str,
    location: DisclaimerLocation,
) -> Result<Vec<u8>, Unchangeable> {
    let msg = msg.ok_or(Unchangeable)?;
    let root = msg.parts.first().ok_or(Unchangeable)?;
    if let Some(ct) = root.content_type() {
        let full = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase();
        if matches!(
            full.as_str(),
            "multipart/signed" | "multipart/encrypted" | "application/pkcs7-mime" | "application/x-pkcs7-mime"
        ) {
            return Err(Unchangeable);
        }
    }
    let plain = strip_tags(html);
    let bodies: Vec<u32> = msg.text_body.iter().chain(&msg.html_body).copied().collect();
    let part = rebuild(msg, 0, &|id, body| {
        if !bodies.contains(&id) {
            return None;
        }
        Some(match body {
            PartType::Html(h) => (true, insert_html(h, html, location)),
            PartType::Text(t) => (false, join_text(t, &plain, location)),
            _ => return None,
        })
    });
    Ok(with_body(data, part))
}

/// The `Wrap` fallback (§13.5): a new message with the same headers whose body is the disclaimer
/// and the original message as an attachment.
pub fn wrap(data: &[u8], html: &str) -> Vec<u8> {
    let original = MimePart::new("message/rfc822", BodyPart::Binary(Cow::Borrowed(data))).transfer_encoding("8bit");
    let body = MimePart::new(
        "multipart/mixed",
        vec![MimePart::new(ContentType::new("text/html").attribute("charset", "utf-8"), html.to_string()), original],
    );
    with_body(data, body)
}

/// The original header section minus its MIME body headers, then `body` as mail-builder writes it.
fn with_body(data: &[u8], body: MimePart<'_>) -> Vec<u8> {
    let mut has_version = false;
    let mut out = edit_headers(
        data,
        |line| {
            if field_is(line, "MIME-Version") {
                has_version = true;
                Edit::Keep
            } else if field_is(line, "Content-Type") || field_is(line, "Content-Transfer-Encoding") {
                Edit::Drop
            } else {
                Edit::Keep
            }
        },
        None,
    );
    // Keep only the header section; the new body follows.
    let end = header_section::section_len(&out);
    out.truncate(end);
    if !has_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    body.write_part(&mut out);
    out
}

type BodyEdit<'f> = dyn Fn(u32, &PartType<'_>) -> Option<(bool, String)> + 'f;

/// Part `id` of `msg` as a mail-builder part, with `edit` applied to the body parts it picks.
fn rebuild<'m>(msg: &'m Message<'m>, id: u32, edit: &BodyEdit<'_>) -> MimePart<'m> {
    let part = &msg.parts[id as usize];
    let ct = part.content_type();
    let mut content_type = ContentType::new(match ct {
        Some(ct) => format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("octet-stream")).to_ascii_lowercase(),
        None => "text/plain".to_string(),
    });
    if let Some(attrs) = ct.and_then(|c| c.attributes()) {
        for a in attrs {
            // The boundary and charset are mail-builder's to write.
            if !a.name.eq_ignore_ascii_case("boundary") && !a.name.eq_ignore_ascii_case("charset") {
                content_type = content_type.attribute(a.name.to_string(), a.value.to_string());
            }
        }
    }
    let mut out = match &part.body {
        PartType::Multipart(children) => {
            MimePart::new(content_type, children.iter().map(|c| rebuild(msg, *c, edit)).collect::<Vec<_>>())
        }
        PartType::Text(t) | PartType::Html(t) => {
            let text = match edit(id, &part.body) {
                Some((_, new)) => new,
                None => t.to_string(),
            };
            MimePart::new(content_type.attribute("charset", "utf-8"), text)
        }
        PartType::Binary(b) | PartType::InlineBinary(b) => MimePart::new(content_type, BodyPart::Binary(b.clone())),
        PartType::Message(m) => {
            MimePart::new(content_type, BodyPart::Binary(Cow::Borrowed(m.raw_message()))).transfer_encoding("8bit")
        }
    };
    if let Some(d) = part.content_disposition() {
        let mut cd = ContentType::new(d.ctype().to_string());
        for a in d.attributes().unwrap_or_default() {
            cd = cd.attribute(a.name.to_string(), a.value.to_string());
        }
        out = out.header("Content-Disposition", cd);
    }
    if let Some(cid) = part.content_id() {
        out = out.cid(cid.to_string());
    }
    out
}

fn insert_html(body: &str, disclaimer: &str, location: DisclaimerLocation) -> String {
    let lower = body.to_ascii_lowercase();
    match location {
        DisclaimerLocation::Prepend => {
            match lower.find("<body").and_then(|i| lower[i..].find('>').map(|j| i + j + 1)) {
                Some(at) => format!("{}{disclaimer}{}", &body[..at], &body[at..]),
                None => format!("{disclaimer}{body}"),
            }
        }
        DisclaimerLocation::Append => match lower.rfind("</body>") {
            Some(at) => format!("{}{disclaimer}{}", &body[..at], &body[at..]),
            None => format!("{body}{disclaimer}"),
        },
    }
}

fn join_text(body: &str, disclaimer: &str, location: DisclaimerLocation) -> String {
    match location {
        DisclaimerLocation::Prepend => format!("{disclaimer}\r\n\r\n{body}"),
        DisclaimerLocation::Append => format!("{}\r\n\r\n{disclaimer}\r\n", body.trim_end_matches(['\r', '\n'])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = b"From: Eve <eve@fabrikam.test>\r\nTo: alice@contoso.test, Bob <bob@contoso.test>\r\nCc: carol@contoso.test\r\nSubject: =?utf-8?q?Caf=C3=A9?= invoice\r\nX-Gateway-Verified: =?utf-8?b?cGFzcw==?=\r\nImportance: High\r\nMessage-ID: <1@fabrikam.test>\r\n\r\nHello there.\r\n";

    const HTML_ALT: &[u8] = b"From: eve@fabrikam.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>html body</p></body></html>\r\n--b1--\r\n";

    const WITH_ATTACHMENT: &[u8] = b"From: eve@fabrikam.test\r\nSubject: report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--m--\r\n";

    const SIGNED: &[u8] = b"From: eve@fabrikam.test\r\nSubject: signed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--s--\r\n";

    #[test]
    fn view_reads_decoded_values() {
        let v = view(PLAIN, true);
        assert_eq!(v.from.as_ref().map(ToString::to_string).as_deref(), Some("eve@fabrikam.test"));
        assert_eq!(v.to.len(), 2);
        assert_eq!(v.cc.len(), 1);
        assert_eq!(v.subject, "Café invoice");
        assert!(v.headers.iter().any(|(n, val)| n == "X-Gateway-Verified" && val == "pass"), "{:?}", v.headers);
        assert_eq!(v.importance, Importance::High);
        assert!(v.body.contains("Hello there."));
        let v = view(WITH_ATTACHMENT, false);
        assert_eq!(v.attachment_sizes, vec![10]);
    }

    #[test]
    fn header_edits() {
        let out = set_header(PLAIN, "X-Tag", "yes");
        assert_eq!(view(&out, false).headers.iter().filter(|(n, v)| n == "X-Tag" && v == "yes").count(), 1);
        assert!(out.ends_with(b"\r\n\r\nHello there.\r\n"));
        let twice = set_header(&out, "x-tag", "no");
        let tags: Vec<String> = view(&twice, false)
            .headers
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-tag"))
            .map(|(_, v)| v)
            .collect();
        assert_eq!(tags, vec!["no".to_string()], "the first instance is replaced");
        let gone = remove_header(PLAIN, "x-gateway-verified");
        assert!(!view(&gone, false).headers.iter().any(|(n, _)| n == "X-Gateway-Verified"));
        let s = prepend_subject(PLAIN, "Café invoice", "[EXTERNAL] ");
        assert_eq!(view(&s, false).subject, "[EXTERNAL] Café invoice");
        let added = add_addresses(PLAIN, "Cc", &view(PLAIN, false).cc, &["dave@contoso.test".parse().unwrap()]);
        assert_eq!(view(&added, false).cc.len(), 2);
    }

    #[test]
    fn disclaimers_keep_mime_valid() {
        let out = add_disclaimer(PLAIN, "<b>External</b> sender", DisclaimerLocation::Prepend).unwrap();
        let v = view(&out, true);
        assert!(v.body.starts_with("External sender"), "{:?}", v.body);
        assert_eq!(v.subject, "Café invoice", "headers kept");

        let out = add_disclaimer(HTML_ALT, "<p>DISCLAIMER</p>", DisclaimerLocation::Append).unwrap();
        let msg = MessageParser::default().parse(&out).unwrap();
        assert_eq!(msg.body_html(0).unwrap(), "<html><body><p>html body</p><p>DISCLAIMER</p></body></html>");
        assert!(msg.body_text(0).unwrap().contains("plain body\r\n\r\nDISCLAIMER"));

        let out = add_disclaimer(WITH_ATTACHMENT, "NOTE", DisclaimerLocation::Append).unwrap();
        let msg = MessageParser::default().parse(&out).unwrap();
        assert_eq!(msg.attachment_count(), 1);
        assert_eq!(msg.attachment(0).unwrap().contents(), &[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(msg.attachment(0).unwrap().attachment_name(), Some("r.pdf"));
        assert!(msg.body_text(0).unwrap().contains("NOTE"));

        assert_eq!(add_disclaimer(SIGNED, "x", DisclaimerLocation::Append), Err(Unchangeable));
        let wrapped = wrap(SIGNED, "<p>External</p>");
        let msg = MessageParser::default().parse(&wrapped).unwrap();
        assert_eq!(msg.subject(), Some("signed"));
        assert!(msg.attachments().any(|a| matches!(a.body, PartType::Message(_))));
    }
}
