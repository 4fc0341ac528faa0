//! NDR composition (RFC 3464 delivery status notifications). Pure and deterministic.
//!
//! [`compose`] turns the failed recipients of one accepted message into the non-delivery report
//! the tenant sends back to the original sender from the null sender `<>`. The report is a
//! `multipart/report; report-type=delivery-status` (RFC 6522) with three parts:
//!
//! 1. `text/plain`: the human-readable part, modelled on Exchange Online's NDR (exo-behaviour §3.3,
//!    §5): "Your message to X couldn't be delivered.", a reason in the user's words per recipient,
//!    then "Diagnostic information for administrators:" with the generating server, each recipient
//!    with `Remote Server returned '<reply>'` (EXO's capitalisation) and, when known, the remote
//!    server, then "Original message headers:" and the original header section.
//! 2. `message/delivery-status` (RFC 3464 §2.2, §2.3): `Reporting-MTA`, `Original-Envelope-Id`
//!    when the sender gave ENVID, `Arrival-Date`; per recipient `Final-Recipient`, `Action: failed`,
//!    `Status` ([`status_of`]), `Diagnostic-Code: smtp;<reply>`, `Remote-MTA` and
//!    `Last-Attempt-Date` when known. Fields are US-ASCII and folded at 78 columns.
//! 3. `text/rfc822-headers` with the original header section, or `message/rfc822` with the whole
//!    original when its envelope asked `RET=FULL` and the original can travel as 7bit or 8bit.
//!
//! The "original header section" of parts 1 and 3 is [`crate::header_section::well_formed`]: the
//! original's fields up to its blank line or first line that is not a field, read with the header
//! section module's line rule, every line end written as CRLF so that no bare line end reaches the
//! NDR's bytes. The Subject comes from the same fields.
//!
//! Everything in the output comes from the input: the Date is `now`, the Message-ID and the MIME
//! boundary derive from `ndr_id`, so composing twice gives the same bytes. No NDR is ever composed
//! for a message from the null sender (RFC 3461 §6.2, RFC 5321 §3.6.3).
//!
//! mail-builder notes (crate-stack.md (c)): the non-text parts are built from `MimePart`'s public
//! fields so that no `charset` is added, with an explicit Content-Transfer-Encoding so the body is
//! written as it is.

use std::borrow::Cow;
use std::time::Duration;

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::addr::EmailAddress;
use crate::envelope::{AcceptedMessage, Body, Envelope};
use crate::header_section;
use crate::reply::{EnhancedStatus, Reply, StatusClass};
use crate::stage::inbound::InboundVerdict;
use crate::time::Timestamp;

/// One recipient the NDR reports as failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecipient {
    /// The recipient.
    pub recipient: EmailAddress,
    /// The reply that decided the failure, e.g. `550 5.1.1 User unknown` from the remote server,
    /// or the tenant's own `550 4.4.7 QUEUE.Expired; message expired`.
    pub reply: Reply,
    /// The remote server that gave the reply, if a remote server did (`Remote-MTA`).
    pub remote_mta: Option<String>,
    /// When the last attempt was made.
    pub last_attempt: Option<Timestamp>,
}

/// Everything [`compose`] needs. All of it is data: the caller supplies the time and the id.
#[derive(Clone, Copy, Debug)]
pub struct NdrInput<'a> {
    /// The message that could not be delivered (to some or all of its recipients).
    pub original: &'a AcceptedMessage,
    /// The recipients to report, in the order they appear in the report. Successful recipients
    /// are not listed (EXO reports only the failed ones).
    pub failures: &'a [FailedRecipient],
    /// The tenant's server name (`Generating server`, `Reporting-MTA`, the Message-ID's domain).
    pub reporting_mta: &'a str,
    /// The address the NDR comes from, shown as `Microsoft Outlook <postmaster>`. mailsim uses
    /// `postmaster@<the tenant's default domain>` (e.g. `postmaster@contoso.test`): RFC 5321 §4.5.1
    /// requires that mailbox to exist. Real EXO uses a per-tenant system mailbox such as
    /// `MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.onmicrosoft.com`; either works.
    pub postmaster: &'a str,
    /// When the NDR is generated (its Date header).
    pub now: Timestamp,
    /// The NDR's id: its Message-ID is `<ndr-{ndr_id:016X}@{reporting_mta}>` and its MIME boundary
    /// derives from it.
    pub ndr_id: u64,
}

/// A composed NDR, to be sent from the null sender `<>` to [`NdrMessage::recipient`] through the
/// normal routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdrMessage {
    /// The envelope recipient: the original message's sender.
    pub recipient: EmailAddress,
    /// The NDR's Message-ID, with angle brackets.
    pub message_id: String,
    /// The complete message (header section and body), CRLF line endings.
    pub data: Vec<u8>,
}

impl NdrMessage {
    /// The NDR as a message the tenant accepted from itself, to travel the normal pipeline: from
    /// the null sender `<>` (RFC 3461 §6.2) to the original sender, Originating and internal, with
    /// the original's peer; `internal_id` is the NDR's id.
    pub fn into_accepted(self, internal_id: u64, original: &AcceptedMessage, now: Timestamp) -> AcceptedMessage {
        AcceptedMessage {
            internal_id,
            message_id: self.message_id,
            envelope: Envelope { sender: None, recipients: vec![self.recipient], ..Envelope::default() },
            peer: original.peer.clone(),
            verdict: InboundVerdict::tenant_originated(),
            data: self.data,
            received_at: now,
            auth: None,
        }
    }
}

/// The address NDRs come from: `postmaster@` the tenant's first accepted domain (see
/// [`NdrInput::postmaster`]), `postmaster@mailsim.test` for a tenant without one.
pub fn postmaster(tenant: &crate::tenant::Tenant) -> String {
    format!("postmaster@{}", tenant.accepted_domains.first().map_or("mailsim.test".to_string(), |d| d.name.to_string()))
}

/// The display name EXO puts on NDRs.
const FROM_NAME: &str = "Microsoft Outlook";
/// RFC 5322 §2.1.1: a line must not exceed 998 characters.
const MAX_LINE: usize = 998;
/// RFC 5322 §2.1.1: a line should not exceed 78 characters (DSN fields are folded to this).
const FOLD_AT: usize = 78;

/// The enhanced status a failure reports: the reply's own (EXO's `550 4.4.7` reports
/// `Status: 4.4.7`, as Exchange does), or `X.0.0` derived from the reply code's class when the
/// reply carries none (RFC 3463 §3.1; 2xx and 3xx give `2.0.0`).
pub fn status_of(reply: &Reply) -> EnhancedStatus {
    if let Some(status) = reply.status {
        return status;
    }
    let class = if reply.code.is_permanent() {
        StatusClass::Permanent
    } else if reply.code.is_transient() {
        StatusClass::Transient
    } else {
        StatusClass::Success
    };
    EnhancedStatus::new(class, 0, 0)
}

/// Reads the body of a `message/delivery-status` part back into field groups (RFC 3464 §2.1):
/// groups are separated by blank lines, each line is `Name: value`, and continuation lines (those
/// starting with a space or tab) are unfolded onto the field before them (RFC 5322 §2.2.3). Values
/// are trimmed. Lines that are neither a field nor a continuation are skipped. The first group is
/// the per-message one; each further group is one recipient.
pub fn parse_delivery_status(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_string(), value.to_string()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    for (_, value) in groups.iter_mut().flatten() {
        *value = value.trim().to_string();
    }
    groups
}

/// Composes the NDR for `input`, or `None` when none may be sent: the original came from the null
/// sender (never an NDR for an NDR, RFC 3461 §6.2, RFC 5321 §3.6.3), or nothing failed.
pub fn compose(input: &NdrInput<'_>) -> Option<NdrMessage> {
    let original = input.original;
    let sender = original.envelope.sender.as_ref()?;
    if input.failures.is_empty() {
        return None;
    }
    let mta = clean_token(input.reporting_mta);
    let mta = if mta.is_empty() { "localhost".to_string() } else { mta };
    let postmaster = clean_token(input.postmaster);
    let message_id = format!("ndr-{:016X}@{mta}", input.ndr_id);

    let section = header_section::well_formed(&original.data);
    let headers = header_section::normalize_line_ends(section);
    let subject = match original_subject(section) {
        s if s.is_empty() => "Undeliverable:".to_string(),
        s => format!("Undeliverable: {s}"),
    };

    let human = human_text(input, &mta, &headers);
    let status = delivery_status(input, &mta);
    let third = returned_part(original, &headers);

    let contents: [&[u8]; 3] = [human.as_bytes(), status.as_bytes(), third.1.as_ref()];
    let boundary = boundary_for(input.ndr_id, &contents);

    let parts = vec![human_part(&human), delivery_status_part(status), third.0];
    let report = MimePart {
        headers: vec![(
            "Content-Type".into(),
            ContentType::new("multipart/report")
                .attribute("report-type", "delivery-status")
                .attribute("boundary", boundary)
                .into(),
        )],
        contents: BodyPart::Multipart(parts),
    };

    let mut builder = MessageBuilder::new()
        .from(Address::new_address(Some(FROM_NAME), postmaster))
        .to(Address::new_address(None::<&str>, sender.to_string()))
        .header("Subject", subject_header(&subject))
        .header("Date", Raw::new(input.now.rfc5322()))
        .message_id(message_id.as_str());
    if let Some(id) = bare_message_id(&original.message_id) {
        builder = builder.in_reply_to(id).references(id);
    }
    let builder = builder.header("Auto-Submitted", Raw::new("auto-replied")).body(report);
    let mut data = Vec::new();
    builder.serialize(&mut data);

    Some(NdrMessage { recipient: sender.clone(), message_id: format!("<{message_id}>"), data })
}

/// The Subject header value: written as it is when it is plain printable ASCII that folds within
/// the line limit (so encoded words from the original survive), RFC 2047-encoded otherwise.
fn subject_header(subject: &str) -> HeaderType<'_> {
    let plain = subject.bytes().all(|b| (b' '..=b'~').contains(&b))
        && subject.split(' ').all(|word| word.len() < MAX_LINE - 100);
    if plain { Raw::new(subject).into() } else { Text::new(subject).into() }
}

/// The human-readable part, modelled on EXO's NDR.
fn human_text(input: &NdrInput<'_>, mta: &str, headers: &[u8]) -> String {
    let mut out = String::new();
    for failure in input.failures {
        let rcpt = failure.recipient.to_string();
        out.push_str(&format!("Your message to {rcpt} couldn't be delivered.\r\n"));
        out.push_str(&reason(failure, input));
        out.push_str("\r\n\r\n");
    }
    out.push_str("Diagnostic information for administrators:\r\n\r\n");
    out.push_str(&format!("Generating server: {mta}\r\n"));
    for failure in input.failures {
        out.push_str(&format!("\r\n{}\r\n", failure.recipient));
        out.push_str(&format!("Remote Server returned '{}'\r\n", one_line(&failure.reply.to_string())));
        if let Some(remote) = failure.remote_mta.as_deref().map(clean_token).filter(|r| !r.is_empty()) {
            out.push_str(&format!("Remote server: {remote}\r\n"));
        }
    }
    out.push_str("\r\nOriginal message headers:\r\n\r\n");
    out.push_str(&String::from_utf8_lossy(headers));
    out
}

/// The reason for one failure, in the user's words, chosen by the enhanced status.
fn reason(failure: &FailedRecipient, input: &NdrInput<'_>) -> String {
    let rcpt = &failure.recipient;
    let domain = rcpt.domain();
    let status = status_of(&failure.reply);
    match (status.subject, status.detail) {
        (4, 7) | (4, 300) => format!(
            "Microsoft 365 tried to deliver this message for {} but gave up: the recipient's email \
             server didn't accept it in time.",
            span(input.now - input.original.received_at)
        ),
        (1, 1) | (1, 6) | (1, 10) => format!("{} wasn't found at {domain}.", rcpt.local()),
        (1, _) => format!("The address {rcpt} isn't valid or isn't known to its email system."),
        (4, 1) => format!(
            "The email server for {domain} didn't accept the message: it doesn't accept or relay \
             mail for this address. The domain's MX records or connectors may be set up wrongly."
        ),
        (4, 6) | (4, 14) => "The message was stopped because it was going round in a mail loop \
                             (too many hops)."
            .to_string(),
        (4, 4) | (4, 312) => format!("{domain} couldn't be found in DNS, or it has no email server."),
        (4, _) => format!("Your message couldn't be routed to the email server for {domain}."),
        (2, 2) => "The recipient's mailbox is full.".to_string(),
        (2, 3) | (2, 11) | (2, 12) | (3, 4) => "Your message is too large to be delivered.".to_string(),
        (7, _) => "The recipient's email system rejected your message for security or policy reasons.".to_string(),
        _ => "The recipient's email server rejected your message.".to_string(),
    }
}

/// "24 hours", "1 hour", "5 minutes", "less than a minute".
fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    match secs {
        s if s >= 3600 => plural(s / 3600, "hour"),
        s if s >= 60 => plural(s / 60, "minute"),
        _ => "less than a minute".to_string(),
    }
}

/// The `message/delivery-status` body: US-ASCII fields, folded, CRLF.
fn delivery_status(input: &NdrInput<'_>, mta: &str) -> String {
    let original = input.original;
    let mut out = String::new();
    push_field(&mut out, "Reporting-MTA", &format!("dns;{mta}"));
    if let Some(envid) = original.envelope.params.envid.as_deref().map(ascii_text).filter(|e| !e.is_empty()) {
        push_field(&mut out, "Original-Envelope-Id", &envid);
    }
    push_field(&mut out, "Arrival-Date", &original.received_at.rfc5322());
    for failure in input.failures {
        out.push_str("\r\n");
        push_field(&mut out, "Final-Recipient", &final_recipient(&failure.recipient));
        push_field(&mut out, "Action", "failed");
        push_field(&mut out, "Status", &status_of(&failure.reply).to_string());
        push_field(&mut out, "Diagnostic-Code", &format!("smtp;{}", ascii_text(&failure.reply.to_string())));
        if let Some(remote) = failure.remote_mta.as_deref().map(clean_token).filter(|r| !r.is_empty()) {
            push_field(&mut out, "Remote-MTA", &format!("dns;{}", ascii_text(&remote)));
        }
        if let Some(at) = failure.last_attempt {
            push_field(&mut out, "Last-Attempt-Date", &at.rfc5322());
        }
    }
    out
}

/// `rfc822;addr`, or for an internationalised address RFC 6533's `utf-8;` type with the non-ASCII
/// characters written as `\x{HEX}`.
fn final_recipient(addr: &EmailAddress) -> String {
    let text = addr.to_string();
    if text.is_ascii() {
        return format!("rfc822;{text}");
    }
    let mut out = String::from("utf-8;");
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out
}

/// Writes `Name: value` CRLF, folded so that every line is legal whatever the value holds (a
/// remote server's reply text is anything up to 2,000 octets, `client.rs`):
///
/// - the value is cut into chunks, each a run of spaces followed by a run of other characters, and
///   lines are filled greedily with whole chunks up to 78 octets (RFC 5322 §2.1.1 "SHOULD"); a fold
///   goes before a chunk's spaces, so every continuation line starts with white space and holds
///   something else too: never a whitespace-only line, which a reader takes for the blank line
///   that ends the field group (RFC 3464 §2.1, RFC 5322 §2.2.3);
/// - a chunk longer than the 998-octet limit (RFC 5322 §2.1.1 "MUST") is hard-wrapped into pieces
///   of at most 997 octets plus the continuation's space, a run of spaces that long is squeezed to
///   one space and its trailing spaces are dropped: unfolding such a value gives it back with those
///   changes only;
/// - the first value chunk stays on the `Name:` line.
///
/// Values are US-ASCII (the callers pass [`ascii_text`] or tokens); anything else is written as
/// `?` so that octets and characters coincide. Otherwise unfolding gives the value back unchanged.
fn push_field(out: &mut String, name: &str, value: &str) {
    let line = ascii_text(&format!("{name}: {}", value.trim_start()));
    let bytes = line.as_bytes();
    // A chunk starts at each run of spaces that follows a non-space and is followed by one, after
    // the first value word (so `Name: word` is one chunk and trailing spaces end the last chunk).
    let after_colon = name.len() + 1;
    let word_start = bytes[after_colon..].iter().position(|b| *b != b' ').map_or(bytes.len(), |p| after_colon + p);
    let mut cuts = vec![0];
    let mut last_non_space = bytes.iter().rposition(|b| *b != b' ').unwrap_or(0);
    last_non_space = last_non_space.max(word_start);
    for i in word_start + 1..last_non_space {
        if bytes[i] == b' ' && bytes[i - 1] != b' ' {
            cuts.push(i);
        }
    }
    cuts.push(bytes.len());
    let chunks: Vec<&str> = cuts.windows(2).map(|w| &line[w[0]..w[1]]).collect();
    let mut current = String::new();
    for chunk in chunks {
        if !current.is_empty() && current.len() + chunk.len() > FOLD_AT {
            out.push_str(&current);
            out.push_str("\r\n");
            current.clear();
        }
        if current.len() + chunk.len() <= MAX_LINE {
            current.push_str(chunk);
            continue;
        }
        // Longer than a line may be: drop trailing spaces (readers trim them), squeeze an overlong
        // run of leading spaces, then hard-wrap the word, which holds no space.
        let chunk = chunk.trim_end_matches(' ');
        let word = chunk.trim_start_matches(' ');
        let spaces = chunk.len() - word.len();
        let mut rest = if spaces + word.len().min(1) >= MAX_LINE { format!(" {word}") } else { chunk.to_string() };
        while !rest.is_empty() {
            let room = if current.is_empty() { MAX_LINE } else { MAX_LINE - current.len() };
            if rest.len() <= room {
                current.push_str(&rest);
                break;
            }
            current.push_str(&rest[..room]);
            out.push_str(&current);
            out.push_str("\r\n");
            current = String::from(" ");
            rest = rest[room..].to_string();
        }
    }
    out.push_str(&current);
    out.push_str("\r\n");
}

/// The third part: `text/rfc822-headers`, or `message/rfc822` for RET=FULL when the original can be
/// returned as 7bit or 8bit (never base64, crate-stack pitfall 2). Also returns the part's content,
/// for the boundary check.
fn returned_part<'x>(original: &'x AcceptedMessage, headers: &'x [u8]) -> (MimePart<'x>, Cow<'x, [u8]>) {
    if original.envelope.params.ret_full == Some(true)
        && original.envelope.params.body != Body::BinaryMime
        && let Some(cte) = raw_encoding(&original.data)
    {
        let part = MimePart {
            headers: vec![
                ("Content-Type".into(), ContentType::new("message/rfc822").into()),
                ("Content-Transfer-Encoding".into(), Raw::new(cte).into()),
            ],
            contents: BodyPart::Binary(Cow::Borrowed(&original.data)),
        };
        return (part, Cow::Borrowed(&original.data));
    }
    let mut part_headers: Vec<(Cow<'x, str>, HeaderType<'x>)> =
        vec![("Content-Type".into(), ContentType::new("text/rfc822-headers").into())];
    // Headers too long or with bytes 7bit/8bit cannot carry are left to mail-builder, which picks
    // quoted-printable or base64 (allowed for text/*).
    if let Some(cte) = raw_encoding(headers) {
        part_headers.push(("Content-Transfer-Encoding".into(), Raw::new(cte).into()));
    }
    let part = MimePart { headers: part_headers, contents: BodyPart::Binary(Cow::Borrowed(headers)) };
    (part, Cow::Borrowed(headers))
}

/// The human-readable part: written as it is (7bit) when it is ASCII with short lines, otherwise
/// mail-builder encodes it (quoted-printable).
fn human_part(text: &str) -> MimePart<'_> {
    let part = MimePart::new("text/plain", text);
    if raw_encoding(text.as_bytes()) == Some("7bit") { part.transfer_encoding("7bit") } else { part }
}

/// The `message/delivery-status` part, from public fields (no charset), 7bit.
fn delivery_status_part<'x>(status: String) -> MimePart<'x> {
    MimePart {
        headers: vec![
            ("Content-Type".into(), ContentType::new("message/delivery-status").into()),
            ("Content-Transfer-Encoding".into(), Raw::new("7bit").into()),
        ],
        contents: BodyPart::Text(status.into()),
    }
}

/// `7bit` or `8bit` when `data` may travel unencoded under that label (RFC 2045 §2.7, §2.8): CRLF
/// line endings only, no NUL, lines of at most 998 octets. `None` otherwise.
fn raw_encoding(data: &[u8]) -> Option<&'static str> {
    let mut line = 0;
    for (i, &b) in data.iter().enumerate() {
        match b {
            0 => return None,
            b'\r' if data.get(i + 1) != Some(&b'\n') => return None,
            b'\n' if i == 0 || data[i - 1] != b'\r' => return None,
            b'\n' => line = 0,
            b'\r' => {}
            _ => {
                line += 1;
                if line > MAX_LINE {
                    return None;
                }
            }
        }
    }
    Some(if data.is_ascii() { "7bit" } else { "8bit" })
}

/// A boundary derived from the NDR id, changed deterministically in the (hostile) case where a part
/// already contains it.
fn boundary_for(ndr_id: u64, contents: &[&[u8]]) -> String {
    let base = format!("=_NDR_{ndr_id:016X}");
    let mut n = 0u32;
    loop {
        let candidate = if n == 0 { base.clone() } else { format!("{base}_{n}") };
        let delimiter = format!("--{candidate}");
        if !contents.iter().any(|c| contains(c, delimiter.as_bytes())) {
            return candidate;
        }
        n += 1;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The original's first Subject field, unfolded, with control characters replaced by spaces and
/// surrounding white space trimmed. Invalid UTF-8 is replaced (U+FFFD).
fn original_subject(section: &[u8]) -> String {
    let Some(field) = header_section::fields(section).find(|f| f.is("Subject")) else { return String::new() };
    let value = field.unfolded_value();
    let text: String = String::from_utf8_lossy(&value).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    text.trim().to_string()
}

/// The original Message-ID without angle brackets, when it is a plausible msg-id (no white space,
/// controls, brackets or non-ASCII); `None` otherwise, and then In-Reply-To/References are left out.
fn bare_message_id(id: &str) -> Option<&str> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    let ok =
        !id.is_empty() && id.len() <= 900 && id.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'<' && b != b'>');
    ok.then_some(id)
}

/// A host or address from configuration, with anything that is not printable non-space dropped.
fn clean_token(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && !c.is_whitespace()).collect()
}

/// Text for a DSN field: controls become spaces, non-ASCII becomes `?`, lines are joined.
fn ascii_text(s: &str) -> String {
    one_line(s).chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
}

/// A reply's wire text on one line: multi-line replies are joined with a space, controls become
/// spaces.
fn one_line(s: &str) -> String {
    s.replace("\r\n", " ").chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use mail_parser::{MessageParser, MimeHeaders, PartType};

    use super::*;
    use crate::envelope::{Envelope, MailParams};
    use crate::peer::PeerFacts;
    use crate::stage::inbound::{Direction, InboundVerdict};

    /// One field group of a delivery-status report.
    type Fields = Vec<(String, String)>;
    /// (name, original data, expected NDR subject (None: derived), expected returned headers).
    type HostileCase<'a> = (&'a str, Vec<u8>, Option<&'a str>, &'a [u8]);

    const MTA: &str = "MAILSIM01.mail.protection.mailsim.test";
    const POSTMASTER: &str = "postmaster@contoso.test";
    /// 2022-01-07 05:46:46 UTC.
    const RECEIVED: Timestamp = Timestamp::from_millis(1_641_534_406_000);
    const HOUR: i64 = 3_600_000;

    const ORIGINAL: &str = "Received: from CONTOSO-PC (192.0.2.10) by MAILSIM01.mail.protection.mailsim.test \
(127.0.0.1) with Microsoft SMTP Server id 15.20.0000.000 via Frontend Transport; Fri, 7 Jan 2022 05:46:46 +0000\r\n\
From: Alice <alice@contoso.test>\r\n\
To: bob@fabrikam.test, carol@fabrikam.test\r\n\
Subject: Quarterly numbers\r\n\
Date: Fri, 7 Jan 2022 05:46:40 +0000\r\n\
Message-ID: <orig-1@contoso.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Hello Bob and Carol.\r\n";

    fn addr(s: &str) -> EmailAddress {
        s.parse().unwrap()
    }

    fn accepted(sender: Option<&str>, data: &[u8]) -> AcceptedMessage {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        AcceptedMessage {
            internal_id: 7,
            message_id: "<orig-1@contoso.test>".to_string(),
            envelope: Envelope {
                sender: sender.map(addr),
                params: MailParams::default(),
                recipients: vec![addr("bob@fabrikam.test"), addr("carol@fabrikam.test")],
            },
            peer: PeerFacts::new(ip, 25, ip),
            verdict: InboundVerdict::Accepted {
                connector: None,
                direction: Direction::Originating,
                internal: true,
                relay_allowed: true,
                cross_premises: false,
                checks: vec![],
            },
            data: data.to_vec(),
            received_at: RECEIVED,
            auth: None,
        }
    }

    fn reply(wire: &str) -> Reply {
        Reply::parse(&format!("{wire}\r\n")).unwrap()
    }

    fn expired() -> Vec<FailedRecipient> {
        vec![FailedRecipient {
            recipient: addr("bob@fabrikam.test"),
            reply: reply("550 4.4.7 QUEUE.Expired; message expired"),
            remote_mta: None,
            last_attempt: Some(Timestamp::from_millis(RECEIVED.as_millis() + 24 * HOUR - 600_000)),
        }]
    }

    fn user_unknown() -> Vec<FailedRecipient> {
        vec![FailedRecipient {
            recipient: addr("carol@fabrikam.test"),
            reply: reply("550 5.1.1 <carol@fabrikam.test>: Recipient address rejected: User unknown"),
            remote_mta: Some("mx.fabrikam.test".to_string()),
            last_attempt: Some(Timestamp::from_millis(RECEIVED.as_millis() + 2_000)),
        }]
    }

    fn input<'a>(original: &'a AcceptedMessage, failures: &'a [FailedRecipient], now: Timestamp) -> NdrInput<'a> {
        NdrInput { original, failures, reporting_mta: MTA, postmaster: POSTMASTER, now, ndr_id: 0x2A }
    }

    /// The NDR's own header section, as (name, raw value) with folds kept.
    fn top_headers(data: &[u8]) -> Vec<(String, String)> {
        let end = data.windows(4).position(|w| w == b"\r\n\r\n").expect("header section ends");
        let head = std::str::from_utf8(&data[..end]).expect("NDR header section is ASCII");
        assert!(head.is_ascii(), "{head}");
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                out.last_mut().expect("continuation after a field").1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("field line");
                out.push((name.to_string(), value.trim().to_string()));
            }
        }
        out
    }

    fn assert_lines_within_limit(data: &[u8]) {
        for line in data.split(|b| *b == b'\n') {
            assert!(line.len() <= MAX_LINE + 1, "line of {} octets", line.len());
        }
        assert!(!data.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "bare LF in the NDR");
    }

    /// Parses an NDR and checks the report structure; returns (text, delivery-status groups,
    /// returned part bytes after transfer decoding, returned part's raw body bytes).
    fn read_back(data: &[u8]) -> (String, Vec<Fields>, Vec<u8>, Vec<u8>) {
        let msg = MessageParser::default().parse(data).expect("mail-parser reads the NDR");
        let ct = msg.root_part().content_type().expect("root content type");
        assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let PartType::Multipart(children) = &msg.root_part().body else { panic!("root is multipart") };
        assert_eq!(children.len(), 3, "three parts");
        let part = |i: usize| &msg.parts[children[i] as usize];
        assert!(part(0).is_content_type("text", "plain"));
        let text = part(0).text_contents().expect("text part").to_string();
        let ds = part(1);
        assert!(ds.is_content_type("message", "delivery-status"));
        assert!(matches!(ds.body, PartType::Binary(_)), "pitfall 4: delivery-status is Binary");
        assert_eq!(ds.content_type().unwrap().attribute("charset"), None, "pitfall 1: no charset");
        let groups = parse_delivery_status(std::str::from_utf8(ds.contents()).expect("ASCII report"));
        let third = part(2);
        let raw = data[third.offset_body as usize..third.offset_end as usize].to_vec();
        let returned = match &third.body {
            PartType::Message(m) => m.raw_message().to_vec(),
            _ => {
                assert!(third.is_content_type("text", "rfc822-headers"));
                assert_eq!(third.content_type().unwrap().attribute("charset"), None);
                third.contents().to_vec()
            }
        };
        (text, groups, returned, raw)
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reports_read_back_with_mail_parser() {
        struct Case {
            name: &'static str,
            failures: Vec<FailedRecipient>,
            now: Timestamp,
            recipients: Vec<Fields>,
            text: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "expiry 4.4.7 after 24 hours",
                failures: expired(),
                now: Timestamp::from_millis(RECEIVED.as_millis() + 24 * HOUR),
                recipients: vec![fields(&[
                    ("Final-Recipient", "rfc822;bob@fabrikam.test"),
                    ("Action", "failed"),
                    ("Status", "4.4.7"),
                    ("Diagnostic-Code", "smtp;550 4.4.7 QUEUE.Expired; message expired"),
                    ("Last-Attempt-Date", "Sat, 8 Jan 2022 05:36:46 +0000"),
                ])],
                text: vec![
                    "Your message to bob@fabrikam.test couldn't be delivered.\r\n",
                    "tried to deliver this message for 24 hours but gave up",
                    "Remote Server returned '550 4.4.7 QUEUE.Expired; message expired'\r\n",
                ],
            },
            Case {
                name: "partial 5.1.1 from the remote server",
                failures: user_unknown(),
                now: Timestamp::from_millis(RECEIVED.as_millis() + 3_000),
                recipients: vec![fields(&[
                    ("Final-Recipient", "rfc822;carol@fabrikam.test"),
                    ("Action", "failed"),
                    ("Status", "5.1.1"),
                    (
                        "Diagnostic-Code",
                        "smtp;550 5.1.1 <carol@fabrikam.test>: Recipient address rejected: User unknown",
                    ),
                    ("Remote-MTA", "dns;mx.fabrikam.test"),
                    ("Last-Attempt-Date", "Fri, 7 Jan 2022 05:46:48 +0000"),
                ])],
                text: vec![
                    "Your message to carol@fabrikam.test couldn't be delivered.\r\ncarol wasn't found at fabrikam.test.",
                    "Remote Server returned '550 5.1.1 <carol@fabrikam.test>: Recipient address rejected: User unknown'\r\n",
                    "Remote server: mx.fabrikam.test\r\n",
                ],
            },
            Case {
                name: "two recipients, loop and relay denial",
                failures: vec![
                    FailedRecipient {
                        recipient: addr("bob@fabrikam.test"),
                        reply: reply("554 5.4.14 Hop count exceeded - possible mail loop ATTR34 [MAILSIM01]"),
                        remote_mta: None,
                        last_attempt: None,
                    },
                    FailedRecipient {
                        recipient: addr("carol@fabrikam.test"),
                        reply: reply("550 5.4.1 Relay Access Denied"),
                        remote_mta: Some("mx.fabrikam.test".to_string()),
                        last_attempt: None,
                    },
                ],
                now: RECEIVED,
                recipients: vec![
                    fields(&[
                        ("Final-Recipient", "rfc822;bob@fabrikam.test"),
                        ("Action", "failed"),
                        ("Status", "5.4.14"),
                        (
                            "Diagnostic-Code",
                            "smtp;554 5.4.14 Hop count exceeded - possible mail loop ATTR34 [MAILSIM01]",
                        ),
                    ]),
                    fields(&[
                        ("Final-Recipient", "rfc822;carol@fabrikam.test"),
                        ("Action", "failed"),
                        ("Status", "5.4.1"),
                        ("Diagnostic-Code", "smtp;550 5.4.1 Relay Access Denied"),
                        ("Remote-MTA", "dns;mx.fabrikam.test"),
                    ]),
                ],
                text: vec!["mail loop", "doesn't accept or relay mail"],
            },
        ];
        let original = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        let section = header_section::well_formed(&original.data).to_vec();
        assert!(section.ends_with(b"Content-Type: text/plain; charset=us-ascii\r\n"));
        for case in cases {
            let ndr = compose(&input(&original, &case.failures, case.now)).expect(case.name);
            assert_eq!(ndr.recipient, addr("alice@contoso.test"), "{}", case.name);
            assert_eq!(ndr.message_id, format!("<ndr-000000000000002A@{MTA}>"), "{}", case.name);
            assert_lines_within_limit(&ndr.data);

            let (text, groups, returned, _) = read_back(&ndr.data);
            assert_eq!(
                groups[0],
                fields(&[("Reporting-MTA", &format!("dns;{MTA}")), ("Arrival-Date", "Fri, 7 Jan 2022 05:46:46 +0000")]),
                "{}",
                case.name
            );
            assert_eq!(groups[1..], case.recipients[..], "{}", case.name);
            assert_eq!(returned, section, "{}: rfc822-headers part", case.name);
            for needle in case.text.iter().copied().chain([
                "Diagnostic information for administrators:\r\n",
                "Generating server: MAILSIM01.mail.protection.mailsim.test\r\n",
                "Original message headers:\r\n\r\nReceived: from CONTOSO-PC",
            ]) {
                assert!(text.contains(needle), "{}: {needle:?} not in\n{text}", case.name);
            }

            let msg = MessageParser::default().parse(&ndr.data).unwrap();
            assert_eq!(msg.subject(), Some("Undeliverable: Quarterly numbers"), "{}", case.name);
            assert_eq!(msg.message_id(), Some(&ndr.message_id[1..ndr.message_id.len() - 1]));
            assert_eq!(msg.in_reply_to().as_text(), Some("orig-1@contoso.test"), "{}", case.name);
            assert_eq!(msg.references().as_text(), Some("orig-1@contoso.test"), "{}", case.name);
            assert_eq!(msg.header_raw("Auto-Submitted"), Some(" auto-replied\r\n"), "pitfall 5");
            let from = msg.from().and_then(|a| a.first()).unwrap();
            assert_eq!((from.name(), from.address()), (Some("Microsoft Outlook"), Some(POSTMASTER)));
            assert_eq!(msg.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("alice@contoso.test"));
            assert_eq!(msg.date().map(|d| d.to_timestamp()), Some(case.now.as_millis() / 1000));
        }
    }

    #[test]
    fn composing_is_deterministic() {
        let original = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        let failures = [expired(), user_unknown()].concat();
        let now = Timestamp::from_millis(RECEIVED.as_millis() + 24 * HOUR);
        let a = compose(&input(&original, &failures, now)).unwrap();
        let b = compose(&input(&original, &failures, now)).unwrap();
        assert_eq!(a, b);
        let other = compose(&NdrInput { ndr_id: 0x2B, ..input(&original, &failures, now) }).unwrap();
        assert_ne!(a.data, other.data);
        assert!(String::from_utf8_lossy(&other.data).contains("boundary=\"=_NDR_000000000000002B\""));
    }

    #[test]
    fn no_ndr_for_the_null_sender_or_without_failures() {
        let null = accepted(None, ORIGINAL.as_bytes());
        assert_eq!(compose(&input(&null, &expired(), RECEIVED)), None);
        let normal = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        assert_eq!(compose(&input(&normal, &[], RECEIVED)), None);
    }

    #[test]
    fn hostile_originals_stay_contained() {
        let long_words = ["numbers"; 400].join(" ");
        let long_atom = "x".repeat(3000);
        let eight_bit: &[u8] = b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\nX-Legacy: caf\xe9\r\n\r\nbody\r\n";
        let boundary_bait = "Subject: bait\r\n--=_NDR_000000000000002A: x\r\n\r\n".to_string();
        let cases: Vec<HostileCase> = vec![
            // (name, original data, expected NDR subject (None: not checked), expected returned headers)
            ("empty message", b"".to_vec(), Some("Undeliverable:"), b""),
            ("body only", b"just a body line\r\n".to_vec(), Some("Undeliverable:"), b""),
            ("blank line first", b"\r\nSubject: not a header\r\n".to_vec(), Some("Undeliverable:"), b""),
            (
                "8-bit headers",
                eight_bit.to_vec(),
                Some("Undeliverable: Grüße aus Köln"),
                b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\nX-Legacy: caf\xe9\r\n",
            ),
            (
                "folded subject hiding a header",
                b"Subject: hi\r\n Bcc: evil@x.test\r\n\r\nb\r\n".to_vec(),
                Some("Undeliverable: hi Bcc: evil@x.test"),
                b"Subject: hi\r\n Bcc: evil@x.test\r\n",
            ),
            (
                "bare LF in subject",
                b"Subject: hi\nBcc: evil@x.test\r\n\r\nb\r\n".to_vec(),
                Some("Undeliverable: hi"),
                b"Subject: hi\r\nBcc: evil@x.test\r\n",
            ),
            (
                "bare CR in subject",
                b"Subject: hi\rBcc: evil@x.test\r\n\r\nb\r\n".to_vec(),
                Some("Undeliverable: hi"),
                b"Subject: hi\r\nBcc: evil@x.test\r\n",
            ),
            (
                "control characters",
                b"Subject: a\x00b\x1bc\r\n\r\n".to_vec(),
                Some("Undeliverable: a b c"),
                b"Subject: a\x00b\x1bc\r\n",
            ),
            (
                "boundary in headers",
                boundary_bait.clone().into_bytes(),
                Some("Undeliverable: bait"),
                b"Subject: bait\r\n--=_NDR_000000000000002A: x\r\n",
            ),
        ];
        let long_subject = format!("Subject: {long_words}\r\n\r\n").into_bytes();
        let long_atom_subject = format!("Subject: {long_atom}\r\n\r\n").into_bytes();
        let mut cases = cases;
        cases.push(("very long subject", long_subject.clone(), None, &long_subject[..long_subject.len() - 2]));
        cases.push((
            "very long unbroken subject",
            long_atom_subject.clone(),
            None,
            &long_atom_subject[..long_atom_subject.len() - 2],
        ));

        let failures = user_unknown();
        for (name, data, subject, headers) in cases {
            let original = accepted(Some("alice@contoso.test"), &data);
            let ndr = compose(&input(&original, &failures, RECEIVED)).expect(name);
            assert_lines_within_limit(&ndr.data);
            let names: Vec<String> = top_headers(&ndr.data).into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names,
                [
                    "From",
                    "To",
                    "Subject",
                    "Date",
                    "Message-ID",
                    "In-Reply-To",
                    "References",
                    "Auto-Submitted",
                    "MIME-Version",
                    "Content-Type"
                ],
                "{name}: no injected header"
            );
            let (_, groups, returned, raw) = read_back(&ndr.data);
            assert_eq!(groups.len(), 2, "{name}");
            let msg = MessageParser::default().parse(&ndr.data).unwrap();
            match subject {
                Some(s) => assert_eq!(msg.subject(), Some(s), "{name}"),
                None => {
                    let expected = String::from_utf8_lossy(&data[9..data.len() - 4]).to_string();
                    assert_eq!(msg.subject(), Some(format!("Undeliverable: {expected}").as_str()), "{name}");
                }
            }
            if headers.is_ascii() {
                assert_eq!(String::from_utf8_lossy(&returned), String::from_utf8_lossy(headers), "{name}");
            } else {
                assert_eq!(raw, headers, "{name}: 8-bit headers returned as they are");
            }
        }

        // The 8-bit section travels as 8bit, unencoded.
        let original = accepted(Some("alice@contoso.test"), eight_bit);
        let ndr = compose(&input(&original, &failures, RECEIVED)).unwrap();
        assert!(contains(&ndr.data, b"Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n"));
        // A boundary found in the content is changed, deterministically.
        let original = accepted(Some("alice@contoso.test"), boundary_bait.as_bytes());
        let ndr = compose(&input(&original, &failures, RECEIVED)).unwrap();
        assert!(contains(&ndr.data, b"boundary=\"=_NDR_000000000000002A_1\""));
    }

    #[test]
    fn hostile_message_id_is_left_out() {
        let mut original = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        original.message_id = "<a\r\nBcc: evil@x.test>".to_string();
        let ndr = compose(&input(&original, &user_unknown(), RECEIVED)).unwrap();
        let names: Vec<String> = top_headers(&ndr.data).into_iter().map(|(n, _)| n).collect();
        assert!(!names.iter().any(|n| n == "In-Reply-To" || n == "References" || n == "Bcc"), "{names:?}");
    }

    #[test]
    fn ret_full_returns_the_whole_message() {
        let mut original = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        original.envelope.params.ret_full = Some(true);
        original.envelope.params.envid = Some("QQ314159".to_string());
        let ndr = compose(&input(&original, &user_unknown(), RECEIVED)).unwrap();
        assert!(contains(&ndr.data, b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"));
        let (_, groups, returned, _) = read_back(&ndr.data);
        assert_eq!(groups[0][1], ("Original-Envelope-Id".to_string(), "QQ314159".to_string()));
        assert_eq!(returned, ORIGINAL.as_bytes());

        // A message that cannot travel as 7bit/8bit comes back as headers only.
        original.data = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(2000)).into_bytes();
        let ndr = compose(&input(&original, &user_unknown(), RECEIVED)).unwrap();
        let (_, _, returned, _) = read_back(&ndr.data);
        assert_eq!(returned, b"Subject: x\r\n");
    }

    #[test]
    fn status_comes_from_the_reply_or_its_code() {
        for (wire, status) in [
            ("550 5.1.1 User unknown", "5.1.1"),
            ("550 4.4.7 QUEUE.Expired; message expired", "4.4.7"),
            ("450 4.4.316 Connection refused", "4.4.316"),
            ("550 User unknown", "5.0.0"),
            ("451 Try later", "4.0.0"),
            ("250 OK", "2.0.0"),
        ] {
            assert_eq!(status_of(&reply(wire)).to_string(), status, "{wire}");
        }
    }

    #[test]
    fn delivery_status_text_parses_into_groups() {
        let cases: [(&str, Vec<Fields>); 4] = [
            ("", vec![]),
            (
                "Reporting-MTA: dns;a.test\r\n\r\nFinal-Recipient: rfc822;b@c.test\r\nAction: failed\r\n",
                vec![
                    fields(&[("Reporting-MTA", "dns;a.test")]),
                    fields(&[("Final-Recipient", "rfc822;b@c.test"), ("Action", "failed")]),
                ],
            ),
            (
                "A: 1\n \t\nDiagnostic-Code: smtp;550 5.1.1\n  long\n\ttext\nnot a field\n\n\nB:2",
                vec![
                    fields(&[("A", "1")]),
                    fields(&[("Diagnostic-Code", "smtp;550 5.1.1  long\ttext")]),
                    fields(&[("B", "2")]),
                ],
            ),
            (" orphan continuation\r\nX: y\r\n", vec![fields(&[("X", "y")])]),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_delivery_status(text), expected, "{text:?}");
        }
    }

    #[test]
    fn long_fields_fold_and_unfold_unchanged() {
        let long = "550 5.7.606 Access denied, banned sending IP [203.0.113.9]. To request removal from this \
                    list please visit https://sender.office.com/ and follow the directions. (AS16012609)";
        for value in [long.to_string(), format!("smtp;{}", "z".repeat(200)), "short".to_string()] {
            let mut out = String::new();
            push_field(&mut out, "Diagnostic-Code", &value);
            for line in out.trim_end().split("\r\n") {
                let body = line.strip_prefix("Diagnostic-Code: ").unwrap_or(line.trim_start());
                assert!(line.len() <= FOLD_AT || !body.contains(' '), "{line:?}");
            }
            assert_eq!(parse_delivery_status(&out), vec![fields(&[("Diagnostic-Code", &value)])]);
        }
    }

    /// Golden file: `tests/ndr/expired-4.4.7.eml` (nothing volatile: every field comes from the
    /// input). `MAILSIM_BLESS=1 cargo test -p mailsim-core ndr` rewrites it; on a mismatch the
    /// composed NDR is written beside it as `.actual`.
    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a golden-file test: it reads the golden NDR, and MAILSIM_BLESS or a mismatch writes one; the library never does"
    )]
    fn golden_expired_ndr() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/ndr/expired-4.4.7.eml");
        let original = accepted(Some("alice@contoso.test"), ORIGINAL.as_bytes());
        let now = Timestamp::from_millis(RECEIVED.as_millis() + 24 * HOUR);
        let ndr = compose(&input(&original, &expired(), now)).unwrap();
        if std::env::var_os("MAILSIM_BLESS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            std::fs::write(path, &ndr.data).unwrap();
            return;
        }
        let expected = std::fs::read(path).unwrap_or_default();
        let actual_path = format!("{path}.actual");
        if expected != ndr.data {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            std::fs::write(&actual_path, &ndr.data).unwrap();
            panic!("NDR differs from {path}; see {actual_path}, bless with MAILSIM_BLESS=1");
        }
        let _ = std::fs::remove_file(actual_path);
    }
}
