//! The server-session oracle shared by the stable property test (`tests/session_any_input.rs`)
//! and the cargo-fuzz target (`fuzz/fuzz_targets/session.rs`, which includes this file with
//! `#[path]`). Any bytes, in any chunking, plain, after STARTTLS, inside DATA or a BDAT chunk:
//!
//! - **progress**: no panic, and what the session leaves unconsumed is at most one partial line
//!   (it needs more bytes only to finish a line);
//! - **well-formed replies**: every reply parses back with its code, in 200..=599, each line at most
//!   512 octets with its CRLF (RFC 5321 §4.5.3.1.5);
//! - **no smuggling**: DATA content ends only at CRLF `.` CRLF (RFC 5321 §4.1.1.4), a BDAT chunk
//!   ends after exactly its declared size, and no message accepted after DATA holds a bare CR or
//!   LF.

use std::net::IpAddr;
use std::sync::Arc;

use mailsim_core::ids::IdSource;
use mailsim_core::peer::{PeerFacts, TlsFacts};
use mailsim_core::reply::Reply;
use mailsim_core::session::{Action, ContentVerb, Framed, MAX_TEXT_LINE, Session, Waiting};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_core::time::Timestamp;

const EHLO: &[u8] = b"EHLO client.test\r\n";
const ENVELOPE: &[u8] = b"EHLO client.test\r\nMAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\n";

fn session() -> Session {
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .build()
        .expect("a valid tenant");
    let ip: IpAddr = "127.0.0.10".parse().expect("ip");
    Session::new(Arc::new(tenant), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().expect("ip"), 1, true)
        .with_ids(Arc::new(IdSource::new(1)))
}

/// The bytes the session has consumed, and what the oracle remembers of the framing.
#[derive(Default)]
struct Stream {
    consumed: Vec<u8>,
    /// Global end of the last framed command or content range.
    last_framed_end: usize,
    /// Content octets since the last command line (a BDAT chunk's size).
    chunk: usize,
    /// The verb of the last content read.
    last_verb: Option<ContentVerb>,
}

impl Stream {
    fn check(&mut self, pending: &[u8], used: usize, out: &mut Vec<Action>, s: &mut Session) -> bool {
        let base = self.consumed.len();
        self.consumed.extend_from_slice(&pending[..used]);
        let mut tls = false;
        for action in out.drain(..) {
            match action {
                Action::Reply(r) => well_formed(&r),
                Action::Framed(Framed::Command { range, .. }) => {
                    assert!(range.end <= used, "framed beyond what was consumed");
                    self.last_framed_end = base + range.end;
                    self.chunk = 0;
                }
                Action::Framed(Framed::Content { range }) => {
                    assert!(range.end <= used, "framed beyond what was consumed");
                    self.last_framed_end = base + range.end;
                    self.chunk += range.len();
                }
                Action::Framed(Framed::ContentEnd { verb: ContentVerb::Data, .. }) => {
                    let end = self.last_framed_end;
                    let c = &self.consumed;
                    assert!(end >= 2 && &c[end - 2..end] == b"\r\n", "DATA ended without CRLF before the dot");
                    assert_eq!(c.get(end..end + 3), Some(&b".\r\n"[..]), "DATA ended elsewhere than at CRLF.CRLF");
                    self.last_verb = Some(ContentVerb::Data);
                }
                Action::Framed(Framed::ContentEnd { verb: ContentVerb::Bdat, bytes }) => {
                    assert_eq!(self.chunk, bytes, "a BDAT chunk of another size than the content read");
                    self.last_verb = Some(ContentVerb::Bdat);
                }
                // BDAT carries octets by count (RFC 3030 §2, BINARYMIME): a bare LF there cannot end
                // anything; after DATA the session refuses it (`554 5.6.0`).
                Action::Accept(m) if self.last_verb == Some(ContentVerb::Data) => {
                    let d = &m.data;
                    for (i, b) in d.iter().enumerate() {
                        match b {
                            b'\n' => assert!(i > 0 && d[i - 1] == b'\r', "bare LF in an accepted message"),
                            b'\r' => assert_eq!(d.get(i + 1), Some(&b'\n'), "bare CR in an accepted message"),
                            _ => {}
                        }
                    }
                }
                Action::StartTls => tls = true,
                Action::Accept(_) | Action::Refused(_) | Action::Close | Action::Authenticate(_) => {}
            }
        }
        if tls {
            s.on_tls_established(TlsFacts {
                version: "TLS1_3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                sni: None,
                client_cert: None,
            });
        }
        tls
    }
}

fn well_formed(r: &Reply) {
    let wire = r.to_wire();
    let back = Reply::parse(&wire).unwrap_or_else(|| panic!("reply does not parse back: {wire:?}"));
    assert_eq!(back.code, r.code);
    assert!((200..=599).contains(&r.code.get()), "{wire:?}");
    for line in wire.split_inclusive("\r\n") {
        assert!(line.ends_with("\r\n") && line.len() <= 512, "reply line {line:?}");
    }
}

/// Runs `data` through a session: the first byte picks the mode (plain, after STARTTLS, in DATA,
/// in a BDAT chunk) and the second the chunk sizes the input arrives in.
pub fn check(data: &[u8]) {
    let (mode, seed, rest) = match data {
        [m, s, rest @ ..] => (*m, *s, rest),
        _ => (0, 0, data),
    };
    let prefix: Vec<u8> = match mode % 4 {
        0 => Vec::new(),
        1 => [EHLO, b"STARTTLS\r\n"].concat(),
        2 => [ENVELOPE, b"DATA\r\n"].concat(),
        _ => [ENVELOPE, format!("BDAT {}\r\n", rest.len().min(usize::from(seed) * 8)).as_bytes()].concat(),
    };
    let mut s = session();
    let mut stream = Stream::default();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let now = Timestamp::from_millis(1_700_000_000_000);
    let chunks = std::iter::once(&prefix[..]).chain(rest.chunks(usize::from(seed % 97) + 1));
    for chunk in chunks {
        if matches!(s.waiting(), Waiting::Closed) {
            return;
        }
        pending.extend_from_slice(chunk);
        let used = s.on_input(&pending, now, &mut out);
        assert!(used <= pending.len());
        if stream.check(&pending, used, &mut out, &mut s) {
            // RFC 3207 §5: what was pipelined after STARTTLS is discarded.
            pending.clear();
        } else {
            pending.drain(..used);
        }
        if !matches!(s.waiting(), Waiting::Closed | Waiting::TlsHandshake) {
            assert!(pending.len() <= MAX_TEXT_LINE + 2, "{} octets left unconsumed", pending.len());
            assert!(!pending.contains(&b'\n') || matches!(s.waiting(), Waiting::Content), "a whole line left");
        }
    }
}
