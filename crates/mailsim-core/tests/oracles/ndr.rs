//! The NDR oracle shared by the stable property test (`tests/ndr_any_reply.rs`) and the cargo-fuzz
//! target (`fuzz/fuzz_targets/ndr_compose.rs`, which includes this file with `#[path]`): for any
//! remote reply, the composed NDR has legal lines and reads back (mail-parser) with the same
//! recipients and statuses.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use mail_parser::{MessageParser, MimeHeaders, PartType};
use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::{AcceptedMessage, Envelope, MailParams};
use mailsim_core::ndr::{FailedRecipient, NdrInput, compose, parse_delivery_status, status_of};
use mailsim_core::peer::PeerFacts;
use mailsim_core::reply::{EnhancedStatus, Reply, ReplyCode};
use mailsim_core::stage::inbound::{Direction, InboundVerdict};
use mailsim_core::time::Timestamp;

/// RFC 5322 §2.1.1.
pub const MAX_LINE: usize = 998;
/// RFC 5322 §2.1.1 "SHOULD".
pub const FOLD_AT: usize = 78;

const CODES: [u16; 8] = [421, 450, 451, 452, 500, 550, 552, 554];
const STATUSES: [Option<&str>; 5] = [None, Some("5.1.1"), Some("4.4.7"), Some("5.7.1"), Some("4.7.0")];

/// A remote reply as the client would hand it on: `lines` are the reply's text lines as raw
/// bytes (any bytes but CR LF, which end a line), decoded lossily as the client does.
pub fn remote_reply(pick: u8, lines: &[Vec<u8>]) -> Reply {
    let code = CODES[pick as usize % CODES.len()];
    let status = STATUSES[(pick as usize / CODES.len()) % STATUSES.len()].and_then(EnhancedStatus::parse);
    let mut text: Vec<Cow<'static, str>> =
        lines.iter().map(|l| Cow::Owned(String::from_utf8_lossy(l).replace(['\r', '\n'], " "))).collect();
    if text.is_empty() {
        text.push(Cow::Borrowed(""));
    }
    Reply { code: ReplyCode::new(code).expect("valid code"), status, lines: text }
}

/// Splits fuzz input into (pick, reply lines, second recipient's reply lines): the first byte picks
/// code and status, the rest is split at CRLF, and a NUL-NUL pair separates the two replies.
pub fn split_input(data: &[u8]) -> (u8, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let Some((&pick, rest)) = data.split_first() else { return (0, Vec::new(), Vec::new()) };
    let (a, b) = match rest.windows(2).position(|w| w == [0, 0]) {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &rest[..0]),
    };
    let lines = |s: &[u8]| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..s.len() {
            if s[i..].starts_with(b"\r\n") {
                out.push(s[start..i].to_vec());
                start = i + 2;
            }
        }
        if start <= s.len() {
            out.push(s[start.min(s.len())..].to_vec());
        }
        out
    };
    (pick, lines(a), lines(b))
}

fn addr(s: &str) -> EmailAddress {
    s.parse().expect("valid address")
}

const ORIGINAL: &[u8] = b"From: Alice <alice@contoso.test>\r\nTo: bob@fabrikam.test, carol@fabrikam.test\r\n\
Subject: Quarterly numbers\r\nMessage-ID: <orig-1@contoso.test>\r\n\r\nHello.\r\n";

/// Composes the NDR for two recipients failed with `first` and `second` and checks it. Returns the
/// NDR's bytes; panics with the reason when an oracle fails.
pub fn check(first: Reply, second: Reply) -> Vec<u8> {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    let received = Timestamp::from_millis(1_641_534_406_000);
    let original = AcceptedMessage {
        internal_id: 7,
        message_id: "<orig-1@contoso.test>".to_string(),
        envelope: Envelope {
            sender: Some(addr("alice@contoso.test")),
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
        data: ORIGINAL.to_vec(),
        received_at: received,
        auth: None,
    };
    let failures = [
        FailedRecipient {
            recipient: addr("bob@fabrikam.test"),
            reply: first,
            remote_mta: Some("mx.fabrikam.test".to_string()),
            last_attempt: Some(received),
        },
        FailedRecipient { recipient: addr("carol@fabrikam.test"), reply: second, remote_mta: None, last_attempt: None },
    ];
    let input = NdrInput {
        original: &original,
        failures: &failures,
        reporting_mta: "MAILSIM01.mail.protection.mailsim.test",
        postmaster: "postmaster@contoso.test",
        now: Timestamp::from_millis(received.as_millis() + 3_600_000),
        ndr_id: 0x1234,
    };
    let ndr = compose(&input).expect("an NDR for a non-null sender");
    let data = ndr.data;

    // Every line legal: CRLF only, at most 998 octets.
    for (i, w) in data.windows(2).enumerate() {
        assert!(!(w[1] == b'\n' && w[0] != b'\r'), "bare LF at {i}");
        assert!(!(w[0] == b'\r' && w[1] != b'\n'), "bare CR at {i}");
    }
    for line in data.split(|b| *b == b'\n') {
        assert!(line.len() <= MAX_LINE + 1, "line of {} octets", line.len() - 1);
    }

    // Read back: a multipart/report whose delivery-status has the two recipients and statuses.
    let msg = MessageParser::default().parse(&data).expect("mail-parser reads the NDR");
    let ct = msg.root_part().content_type().expect("root content type");
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    let PartType::Multipart(children) = &msg.root_part().body else { panic!("root is not multipart") };
    assert_eq!(children.len(), 3, "three parts");
    let ds = &msg.parts[children[1] as usize];
    assert!(ds.is_content_type("message", "delivery-status"));
    let text = std::str::from_utf8(ds.contents()).expect("the delivery-status part is ASCII");
    for line in text.split("\r\n") {
        assert!(line.is_empty() || !line.trim().is_empty(), "whitespace-only line {line:?}");
        let body = match line.strip_prefix([' ', '\t']) {
            Some(cont) => cont.trim_start(),
            None => line.split_once(": ").map_or(line, |(_, v)| v.trim_start()),
        };
        assert!(line.len() <= FOLD_AT || !body.trim_end().contains(' '), "line foldable to 78 octets: {line:?}");
    }
    let groups = parse_delivery_status(text);
    assert_eq!(groups.len(), 3, "per-message group and two recipient groups: {groups:?}");
    for (group, failure) in groups[1..].iter().zip(&failures) {
        let field = |name: &str| group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(field("Final-Recipient"), Some(format!("rfc822;{}", failure.recipient).as_str()));
        assert_eq!(field("Action"), Some("failed"));
        assert_eq!(field("Status"), Some(status_of(&failure.reply).to_string().as_str()));
        let diagnostic = field("Diagnostic-Code").expect("Diagnostic-Code");
        assert!(diagnostic.starts_with(&format!("smtp;{}", failure.reply.code)), "{diagnostic:?}");
    }
    data
}
