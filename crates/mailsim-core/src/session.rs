//! Receive: the sans-I/O SMTP server dialogue of the tenant endpoint (RFC 5321, 3207, 2920, 3030,
//! 6531, 1870).
//!
//! Contract: the shell owns the socket and the input buffer. It feeds whatever bytes it has to
//! [`Session::on_input`], which consumes every complete command or data line it can and reports how
//! many bytes it used; "need more bytes" is the ordinary result of consuming less than everything.
//! The session answers with [`Action`]s (replies to write, a message to hand on, STARTTLS to start,
//! the connection to close) and reports, in order with them, what it framed ([`Framed`]: each
//! command line, message content, the end of each DATA or BDAT block), so the protocol log writes
//! down the session's own framing instead of framing the bytes again. It never blocks, reads a clock or touches a socket: time arrives as a
//! [`Timestamp`] argument.
//!
//! Policy enters at the stages where EXO applies it (exo-behaviour §1.2): Directory-Based Edge
//! Blocking and the recipient limit at RCPT TO, the connector and relay verdict of
//! [`crate::stage::inbound::attribute`] at RCPT TO or end of data as the tenant's
//! [`RejectionStage`] says.
//!
//! Message content is read by our own line scanner rather than smtp-proto's `DataReceiver`: we need
//! the 1000-octet line limit, NUL and bare CR/LF detection, and the empty message (`.` right after
//! 354), which smtp-proto's receiver does not end. A message ends only at CRLF.CRLF (RFC 5321
//! §4.1.1.4); a message containing a bare CR or LF is refused whole (`554 5.6.0`), so no SMTP
//! smuggling variant can split one message into two.

use std::sync::Arc;

use smtp_proto::{Error as ParseError, Request};

use crate::addr::{AddressError, EmailAddress};
use crate::envelope::{AcceptedMessage, Body, Envelope, MailParams};
use crate::peer::{PeerFacts, TlsFacts};
use crate::phase::SmtpPhase;
use crate::reply::catalogue::Capabilities;
use crate::reply::{Reply, ReplyContext, ReplyKind};
use crate::stage::categorize::{Category, categorize};
use crate::stage::inbound::{InboundVerdict, Rejection, attribute};
use crate::tenant::{RejectionStage, Tenant};
use crate::time::Timestamp;

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;
/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
pub const MAX_TEXT_LINE: usize = 1000;
/// Content buffer reserved at DATA when the client announced no SIZE.
const CONTENT_START: usize = 4 << 10;
/// The most reserved ahead from an announced SIZE (a larger message grows as it arrives).
const CONTENT_RESERVE_MAX: usize = 1 << 20;

/// What the shell must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Write this reply.
    Reply(Reply),
    /// The STARTTLS reply has been queued: flush it, discard any bytes already buffered (RFC 3207
    /// §5: pipelined plaintext after STARTTLS must not be processed), run the handshake and call
    /// [`Session::on_tls_established`].
    StartTls,
    /// The message was accepted: store and route it. Its 250 reply follows as the next action.
    Accept(Box<AcceptedMessage>),
    /// A transaction or recipient was refused by policy; for the message trace.
    Refused(Box<Refusal>),
    /// Flush the replies and close the connection.
    Close,
    /// What the session framed from the input, in order with its replies, for the protocol log
    /// (exo-behaviour §8.3). The shell records it and decides nothing on it.
    Framed(Framed),
    /// Authentication is on and the message's content is complete: evaluate SPF, DKIM and DMARC
    /// as the request says (content: [`Session::pending_content`]) and call
    /// [`Session::on_authenticated`]. The session reads no input until then (exo-behaviour §14).
    Authenticate(Box<crate::auth::AuthRequest>),
}

/// A piece of input as the session framed it. Ranges index the `input` slice of the
/// [`Session::on_input`] call that returned the action, so recording costs no copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    /// Bytes of a command line (line end included). `ends` is false for the leading parts of a
    /// line too long to hold (it is consumed as it arrives); the part with the line end is `ends`.
    Command {
        /// Where in the input.
        range: std::ops::Range<usize>,
        /// The line ends with these bytes.
        ends: bool,
    },
    /// Message content in wire form (dot-stuffed as sent; the final `.` line of DATA is not
    /// content), whether the transaction keeps it or not.
    Content {
        /// Where in the input.
        range: std::ops::Range<usize>,
    },
    /// The content after DATA, or one BDAT chunk, has been read: `bytes` octets in wire form. The
    /// reply to it (if any) follows.
    ContentEnd {
        /// DATA or BDAT.
        verb: ContentVerb,
        /// Octets of content.
        bytes: usize,
    },
}

/// The command that carried message content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentVerb {
    /// RFC 5321 DATA (content ends at CRLF.CRLF).
    Data,
    /// RFC 3030 BDAT (a chunk of a stated size).
    Bdat,
}

impl ContentVerb {
    /// The verb as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentVerb::Data => "DATA",
            ContentVerb::Bdat => "BDAT",
        }
    }
}

/// A policy refusal during the session, for the message trace (exo-behaviour §8.1: SMTP-time
/// rejections are recorded as a FAIL with the reply text).
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The envelope at the time of the refusal (the refused recipient included).
    pub envelope: Envelope,
    /// The peer.
    pub peer: PeerFacts,
    /// The phase answered: RCPT, the end of DATA, or the last BDAT chunk.
    pub stage: SmtpPhase,
    /// The reply sent.
    pub reply: Reply,
    /// The inbound verdict's rejection, when a connector or relay rule decided.
    pub rejection: Option<Rejection>,
    /// When.
    pub at: Timestamp,
}

/// What the session is waiting for, so the shell can pick the right timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A command line.
    Command,
    /// Message content after DATA or BDAT.
    Content,
    /// The TLS handshake.
    TlsHandshake,
    /// Nothing: the session is over.
    Closed,
}

#[derive(Debug)]
enum State {
    Command,
    /// Skipping an over-long command line up to its LF.
    SkippingLongLine,
    Data(ContentScan),
    Bdat {
        size: usize,
        remaining: usize,
        last: bool,
        discard: bool,
    },
    TlsHandshake,
    /// Waiting for the shell's authentication facts ([`Action::Authenticate`]).
    Authenticating(Box<PendingAuth>),
    Closed,
}

/// A message whose 250 (or 5.7.509) waits for authentication.
#[derive(Debug)]
struct PendingAuth {
    tx: Transaction,
    verdict: InboundVerdict,
    stage: SmtpPhase,
    request: crate::auth::AuthRequest,
}

/// Flags raised while scanning message content; any of them refuses the message at its end.
#[derive(Debug, Default)]
struct ContentScan {
    /// The previous line ended in CRLF (true at the start: DATA's own CRLF).
    prev_crlf: bool,
    /// Octets of the current, unfinished line already consumed.
    partial_line: usize,
    /// Octets of content so far, in wire form.
    wire_bytes: usize,
    bare_line_ending: bool,
    nul: bool,
    long_line: bool,
}

#[derive(Debug, Default)]
struct Transaction {
    envelope: Envelope,
    content: Vec<u8>,
    too_large: bool,
    started_at: Timestamp,
    used_bdat: bool,
    used_data: bool,
}

/// One inbound SMTP session of the tenant endpoint.
#[derive(Debug)]
pub struct Session {
    tenant: Arc<Tenant>,
    peer: PeerFacts,
    local_ip: std::net::IpAddr,
    session_id: u64,
    tls_available: bool,
    state: State,
    greeted: bool,
    esmtp: bool,
    errors: u32,
    messages: u64,
    tx: Option<Transaction>,
    ids: Option<Arc<crate::ids::IdSource>>,
    auth: Option<Arc<crate::auth::AuthConfig>>,
}

impl Session {
    /// A new session. `session_id` must be unique per connection; it appears in the banner and
    /// diagnostic suffixes and seeds message ids. `tls_available` says whether the endpoint has a
    /// certificate to offer STARTTLS with.
    pub fn new(
        tenant: Arc<Tenant>,
        peer: PeerFacts,
        local_ip: std::net::IpAddr,
        session_id: u64,
        tls_available: bool,
    ) -> Self {
        Self {
            tenant,
            peer,
            local_ip,
            session_id,
            tls_available,
            state: State::Command,
            greeted: false,
            esmtp: false,
            errors: 0,
            messages: 0,
            tx: None,
            ids: None,
            auth: None,
        }
    }

    /// Evaluates email authentication on every accepted message (exo-behaviour §14): at the end
    /// of content the session asks the shell ([`Action::Authenticate`]) before it answers.
    pub fn with_authentication(mut self, config: Arc<crate::auth::AuthConfig>) -> Self {
        self.auth = Some(config);
        self
    }

    /// The content of the message waiting for authentication (as received, without EXO's
    /// stamps), if one is.
    pub fn pending_content(&self) -> Option<&[u8]> {
        match &self.state {
            State::Authenticating(p) => Some(&p.tx.content),
            _ => None,
        }
    }

    /// The shell's answer to [`Action::Authenticate`]: decides (core `auth::decide`), then refuses
    /// with `550 5.7.509` or accepts with the stamps, as at the end of content. Ignored when no
    /// message is waiting.
    pub fn on_authenticated(&mut self, facts: crate::auth::AuthFacts, now: Timestamp, out: &mut Vec<Action>) {
        let State::Authenticating(pending) = std::mem::replace(&mut self.state, State::Command) else { return };
        let PendingAuth { tx, verdict, stage, request } = *pending;
        let auth = crate::auth::decide(&self.tenant, request, facts);
        if auth.disposition() == crate::auth::Disposition::Reject {
            let domain = auth.request.from_domain.clone().unwrap_or_default();
            let kind = ReplyKind::DmarcReject { domain };
            let reply = self.reply(&kind, now);
            out.push(Action::Refused(Box::new(Refusal {
                envelope: tx.envelope,
                peer: self.peer.clone(),
                stage,
                reply: reply.clone(),
                rejection: Some(Rejection {
                    connector: verdict.connector().map(str::to_string),
                    reply: kind,
                    reason: format!("DMARC policy of reject (exo-behaviour §14.5): {}", auth.summary()),
                }),
                at: now,
            })));
            out.push(Action::Reply(reply));
            return;
        }
        self.accept_message(tx, verdict, Some(Box::new(auth)), now, out);
    }

    /// Takes internal ids from the world's source (issue 14 item 3), so that they are unique
    /// across sessions and however many messages one session carries. Without one (a pure
    /// session in `explain` or a test), ids are `session_id << 16` plus the message count: unique
    /// within the session only.
    pub fn with_ids(mut self, ids: Arc<crate::ids::IdSource>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The peer as known so far.
    pub fn peer(&self) -> &PeerFacts {
        &self.peer
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.session_id
    }

    /// What the session waits for.
    pub fn waiting(&self) -> Waiting {
        match self.state {
            State::Command | State::SkippingLongLine => Waiting::Command,
            State::Data(_) | State::Bdat { .. } => Waiting::Content,
            State::TlsHandshake => Waiting::TlsHandshake,
            State::Authenticating(_) => Waiting::Content,
            State::Closed => Waiting::Closed,
        }
    }

    fn ctx(&self, now: Timestamp) -> ReplyContext<'_> {
        ReplyContext { host: &self.tenant.settings.server_name, now, session_id: self.session_id }
    }

    fn reply(&self, kind: &ReplyKind, now: Timestamp) -> Reply {
        kind.reply(&self.ctx(now))
    }

    /// The banner.
    pub fn greeting(&self, now: Timestamp) -> Reply {
        self.reply(&ReplyKind::Greeting, now)
    }

    /// A reply the shell sends on its own (timeout, shutdown, connection cap), from the catalogue.
    /// Closes the session when the reply does.
    pub fn shell_reply(&mut self, kind: ReplyKind, now: Timestamp) -> Reply {
        if kind.closes_connection() {
            self.state = State::Closed;
        }
        self.reply(&kind, now)
    }

    /// The TLS handshake finished. RFC 3207 §4.2: the server discards all knowledge obtained from
    /// the client before TLS (EHLO, transaction), so the client must say EHLO again.
    pub fn on_tls_established(&mut self, tls: TlsFacts) {
        self.peer.tls = Some(tls);
        self.peer.helo = None;
        self.greeted = false;
        self.esmtp = false;
        self.tx = None;
        self.state = State::Command;
    }

    /// Feeds input. Returns the number of bytes consumed; the shell keeps the rest and calls again
    /// when more has arrived. Stops early after STARTTLS and after closing.
    pub fn on_input(&mut self, input: &[u8], now: Timestamp, out: &mut Vec<Action>) -> usize {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            let used = match &mut self.state {
                State::Closed | State::TlsHandshake | State::Authenticating(_) => return pos,
                State::Command => match memchr(b'\n', rest) {
                    Some(lf) if lf < MAX_COMMAND_LINE => {
                        framed_command(out, pos..pos + lf + 1, true);
                        self.on_command_line(&rest[..=lf], now, out);
                        lf + 1
                    }
                    Some(lf) => {
                        framed_command(out, pos..pos + lf + 1, true);
                        self.protocol_error(ReplyKind::CommandTooLong, now, out);
                        lf + 1
                    }
                    None if rest.len() >= MAX_COMMAND_LINE => {
                        framed_command(out, pos..input.len(), false);
                        self.state = State::SkippingLongLine;
                        rest.len()
                    }
                    None => 0,
                },
                State::SkippingLongLine => match memchr(b'\n', rest) {
                    Some(lf) => {
                        framed_command(out, pos..pos + lf + 1, true);
                        self.state = State::Command;
                        self.protocol_error(ReplyKind::CommandTooLong, now, out);
                        lf + 1
                    }
                    None => {
                        framed_command(out, pos..input.len(), false);
                        rest.len()
                    }
                },
                State::Data(_) => self.on_data(rest, pos, now, out),
                State::Bdat { .. } => self.on_bdat(rest, pos, now, out),
            };
            if used == 0 {
                return pos;
            }
            pos += used;
        }
    }

    fn push(&self, kind: ReplyKind, now: Timestamp, out: &mut Vec<Action>) {
        out.push(Action::Reply(self.reply(&kind, now)));
    }

    /// Replies with a 5xx syntax or sequence error and counts it; past the tenant's limit the
    /// connection is closed (Exchange `MaxProtocolErrors`, exo-behaviour §5.5 and §6): the limit
    /// is how many errors a connection may make, so with 5 the fifth is answered and the sixth
    /// closes it (issue 14: the fifth closed it).
    fn protocol_error(&mut self, kind: ReplyKind, now: Timestamp, out: &mut Vec<Action>) {
        self.errors = self.errors.saturating_add(1);
        self.push(kind, now, out);
        if self.errors > self.tenant.settings.max_protocol_errors {
            self.push(ReplyKind::TooManyErrors, now, out);
            out.push(Action::Close);
            self.state = State::Closed;
        }
    }

    fn on_command_line(&mut self, line: &[u8], now: Timestamp, out: &mut Vec<Action>) {
        if line.contains(&0) {
            return self.protocol_error(ReplyKind::InvalidArguments, now, out);
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                let kind = match e {
                    ParseError::UnknownCommand => ReplyKind::UnrecognizedCommand,
                    ParseError::UnsupportedParameter { .. } | ParseError::InvalidParameter { .. } => {
                        ReplyKind::UnrecognizedParameter
                    }
                    ParseError::InvalidSenderAddress | ParseError::InvalidRecipientAddress => ReplyKind::InvalidAddress,
                    _ => ReplyKind::InvalidArguments,
                };
                return self.protocol_error(kind, now, out);
            }
        };
        // Non-ASCII is allowed only inside MAIL and RCPT addresses under SMTPUTF8 (RFC 6531 §3.3).
        if !line.is_ascii() && !matches!(request, Request::Mail { .. } | Request::Rcpt { .. }) {
            return self.protocol_error(ReplyKind::InvalidArguments, now, out);
        }
        match request {
            Request::Ehlo { host } | Request::Lhlo { host } => self.on_hello(&host, true, now, out),
            Request::Helo { host } => self.on_hello(&host, false, now, out),
            Request::StartTls => self.on_starttls(line, now, out),
            Request::Mail { from } => self.on_mail(from, now, out),
            Request::Rcpt { to } => self.on_rcpt(&to.address, now, out),
            Request::Data => self.on_data_command(now, out),
            Request::Bdat { chunk_size, is_last } => self.on_bdat_command(chunk_size, is_last, now, out),
            Request::Rset => {
                self.tx = None;
                self.push(ReplyKind::Resetting, now, out);
            }
            Request::Noop { .. } => self.push(ReplyKind::Ok, now, out),
            Request::Quit => {
                self.push(ReplyKind::Closing, now, out);
                out.push(Action::Close);
                self.state = State::Closed;
            }
            Request::Vrfy { .. } | Request::Expn { .. } => self.push(ReplyKind::CannotVerify, now, out),
            Request::Help { .. } => self.push(ReplyKind::Help, now, out),
            Request::Auth { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.protocol_error(ReplyKind::UnrecognizedCommand, now, out)
            }
        }
    }

    fn on_hello(&mut self, host: &str, esmtp: bool, now: Timestamp, out: &mut Vec<Action>) {
        if host.is_empty() {
            return self.protocol_error(ReplyKind::InvalidArguments, now, out);
        }
        // RFC 5321 §4.1.4: EHLO/HELO resets any transaction in progress.
        self.tx = None;
        self.greeted = true;
        self.esmtp = esmtp;
        self.peer.helo = Some(host.to_string());
        let client_ip = self.peer.ip;
        let kind = if esmtp {
            ReplyKind::EhloCapabilities(Capabilities {
                client_ip,
                max_size: self.tenant.settings.max_message_size,
                starttls: self.tls_available && self.peer.tls.is_none(),
            })
        } else {
            ReplyKind::HeloOk { client_ip }
        };
        self.push(kind, now, out);
    }

    fn on_starttls(&mut self, line: &[u8], now: Timestamp, out: &mut Vec<Action>) {
        if self.peer.tls.is_some() {
            return self.protocol_error(ReplyKind::OnlyOneStartTls, now, out);
        }
        if !line.trim_ascii().eq_ignore_ascii_case(b"STARTTLS") {
            return self.protocol_error(ReplyKind::InvalidArguments, now, out);
        }
        if !self.tls_available {
            return self.push(ReplyKind::TlsNotAvailable, now, out);
        }
        self.push(ReplyKind::StartTlsReady, now, out);
        out.push(Action::StartTls);
        self.state = State::TlsHandshake;
    }

    fn on_mail(
        &mut self,
        from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        if !self.greeted {
            return self.protocol_error(ReplyKind::SendHelloFirst, now, out);
        }
        if self.tx.is_some() {
            return self.protocol_error(ReplyKind::SenderAlreadySpecified, now, out);
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = if from.address.is_empty() {
            None
        } else {
            match EmailAddress::parse(&from.address, smtputf8) {
                Ok(a) => Some(a),
                Err(e) => return self.address_error(e, now, out),
            }
        };
        let size = (from.size > 0).then_some(from.size as u64);
        // RFC 1870 §6.2: a declared SIZE over the limit is refused at MAIL.
        if size.is_some_and(|s| s > self.tenant.settings.max_message_size) {
            return self.push(ReplyKind::MessageTooLarge, now, out);
        }
        let body = if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            Body::BinaryMime
        } else if from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            Body::EightBitMime
        } else {
            Body::SevenBit
        };
        let ret_full = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(true)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(false)
        } else {
            None
        };
        let params = MailParams { size, body, smtputf8, ret_full, envid: from.env_id.map(|e| e.into_owned()) };
        self.tx = Some(Transaction {
            envelope: Envelope { sender, params, recipients: Vec::new() },
            ..Transaction::default()
        });
        self.push(ReplyKind::SenderOk, now, out);
    }

    fn address_error(&mut self, e: AddressError, now: Timestamp, out: &mut Vec<Action>) {
        let kind = match e {
            AddressError::NonAscii => ReplyKind::NonAsciiAddress,
            _ => ReplyKind::InvalidAddress,
        };
        self.protocol_error(kind, now, out)
    }

    fn on_rcpt(&mut self, address: &str, now: Timestamp, out: &mut Vec<Action>) {
        let Some(tx) = &self.tx else {
            return self.protocol_error(ReplyKind::NeedMail, now, out);
        };
        let rcpt = match EmailAddress::parse(address, tx.envelope.params.smtputf8) {
            Ok(a) => a,
            Err(e) => return self.address_error(e, now, out),
        };
        if tx.envelope.recipients.len() >= self.tenant.settings.max_recipients {
            return self.push(ReplyKind::TooManyRecipients, now, out);
        }
        // exo-behaviour §4.2: DBEB refuses unknown recipients of Authoritative domains at RCPT TO.
        if categorize(&self.tenant, &rcpt) == Category::UnknownInAuthoritative {
            return self.refuse_recipient(rcpt, ReplyKind::RecipientNotFoundDbeb, None, now, out);
        }
        if self.tenant.settings.rejection_stage == RejectionStage::RcptTo {
            let mut recipients = tx.envelope.recipients.clone();
            recipients.push(rcpt.clone());
            if let InboundVerdict::Rejected { rejection, .. } =
                attribute(&self.tenant, &self.peer, tx.envelope.sender.as_ref(), &recipients)
            {
                let kind = rejection.reply.clone();
                return self.refuse_recipient(rcpt, kind, Some(rejection), now, out);
            }
        }
        if let Some(tx) = &mut self.tx {
            tx.envelope.recipients.push(rcpt);
        }
        self.push(ReplyKind::RecipientOk, now, out);
    }

    fn refuse_recipient(
        &mut self,
        rcpt: EmailAddress,
        kind: ReplyKind,
        rejection: Option<Rejection>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        let reply = self.reply(&kind, now);
        // The refusal concerns this recipient only; those accepted before it go on (§8.1).
        let mut envelope = self.tx.as_ref().map(|t| t.envelope.clone()).unwrap_or_default();
        envelope.recipients = vec![rcpt];
        out.push(Action::Refused(Box::new(Refusal {
            envelope,
            peer: self.peer.clone(),
            stage: SmtpPhase::Rcpt,
            reply: reply.clone(),
            rejection,
            at: now,
        })));
        out.push(Action::Reply(reply));
    }

    /// Checks shared by DATA and BDAT; returns false (after replying) when the content must not be
    /// read as a message.
    fn ready_for_content(&mut self, bdat: bool, now: Timestamp, out: &mut Vec<Action>) -> bool {
        let Some(tx) = &self.tx else {
            self.protocol_error(ReplyKind::NeedMail, now, out);
            return false;
        };
        if tx.envelope.recipients.is_empty() {
            self.protocol_error(ReplyKind::NeedRcpt, now, out);
            return false;
        }
        // RFC 3030 §3: BDAT and DATA do not mix in one transaction; BINARYMIME requires BDAT.
        let mixed = if bdat { tx.used_data } else { tx.used_bdat || tx.envelope.params.body == Body::BinaryMime };
        if mixed {
            self.protocol_error(ReplyKind::BdatSequence, now, out);
            return false;
        }
        true
    }

    fn on_data_command(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        if !self.ready_for_content(false, now, out) {
            return;
        }
        if let Some(tx) = &mut self.tx {
            tx.used_data = true;
            tx.started_at = now;
            // Room for the content the client announced (RFC 1870 SIZE), within the tenant's limit,
            // so that a message is not copied at every doubling while it arrives.
            let limit = self.tenant.settings.max_message_size as usize;
            let announced = tx.envelope.params.size.map_or(CONTENT_START, |s| usize::try_from(s).unwrap_or(limit));
            tx.content.reserve(announced.min(limit).min(CONTENT_RESERVE_MAX));
        }
        self.state = State::Data(ContentScan { prev_crlf: true, ..ContentScan::default() });
        self.push(ReplyKind::StartMailInput, now, out);
    }

    fn on_bdat_command(&mut self, size: usize, last: bool, now: Timestamp, out: &mut Vec<Action>) {
        // RFC 3030 §2: the chunk is always read, even when the command is refused.
        let accept = self.ready_for_content(true, now, out);
        if let Some(tx) = self.tx.as_mut().filter(|_| accept) {
            if !tx.used_bdat {
                tx.started_at = now;
            }
            tx.used_bdat = true;
        }
        self.state = State::Bdat { size, remaining: size, last, discard: !accept };
        if size == 0 {
            self.finish_bdat_chunk(0, now, out);
        }
    }

    /// Appends content to the transaction, enforcing the size limit without storing past it.
    fn append_content(&mut self, bytes: &[u8]) {
        let limit = self.tenant.settings.max_message_size as usize;
        if let Some(tx) = &mut self.tx {
            if tx.content.len() + bytes.len() > limit {
                tx.too_large = true;
            }
            if !tx.too_large {
                tx.content.extend_from_slice(bytes);
            }
        }
    }

    /// `at` is where `input` starts in the input of [`Session::on_input`] (for [`Framed`]).
    fn on_data(&mut self, input: &[u8], at: usize, now: Timestamp, out: &mut Vec<Action>) -> usize {
        let State::Data(scan) = &mut self.state else { return 0 };
        match memchr(b'\n', input) {
            None => {
                // An unfinished line: keep it unless it is already over the text-line limit, in
                // which case it can be consumed now (it is flagged and can never be "." anyway).
                if scan.partial_line + input.len() < MAX_TEXT_LINE {
                    return 0;
                }
                scan.long_line = true;
                scan.bare_line_ending |= has_bare_cr(input);
                scan.nul |= input.contains(&0);
                let line_start = scan.partial_line == 0;
                scan.partial_line += input.len();
                scan.wire_bytes += input.len();
                framed_content(out, at..at + input.len());
                let body = if line_start && input.first() == Some(&b'.') { &input[1..] } else { input };
                self.append_content(body);
                input.len()
            }
            Some(lf) => {
                let line = &input[..=lf];
                let crlf = lf > 0 && line[lf - 1] == b'\r';
                let line_start = scan.partial_line == 0;
                // RFC 5321 §4.1.1.4: the end is CRLF "." CRLF; the preceding line must have ended
                // in CRLF too, so `\n.\r\n` does not end the message.
                if line_start && line == b".\r\n" && scan.prev_crlf {
                    self.finish_data(now, out);
                    return line.len();
                }
                if !crlf {
                    scan.bare_line_ending = true;
                }
                let content_end = if crlf { lf - 1 } else { lf };
                scan.bare_line_ending |= has_bare_cr(&line[..content_end]);
                scan.nul |= line.contains(&0);
                if scan.partial_line + line.len() > MAX_TEXT_LINE {
                    scan.long_line = true;
                }
                scan.prev_crlf = crlf;
                scan.partial_line = 0;
                scan.wire_bytes += line.len();
                framed_content(out, at..at + line.len());
                // RFC 5321 §4.5.2: remove one leading dot.
                let body = if line_start && line.first() == Some(&b'.') { &line[1..] } else { line };
                self.append_content(body);
                line.len()
            }
        }
    }

    fn finish_data(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let State::Data(scan) = std::mem::replace(&mut self.state, State::Command) else { return };
        out.push(Action::Framed(Framed::ContentEnd { verb: ContentVerb::Data, bytes: scan.wire_bytes }));
        let too_large = self.tx.as_ref().is_some_and(|t| t.too_large);
        let refusal = if too_large {
            Some(ReplyKind::MessageTooLarge)
        } else if scan.bare_line_ending {
            Some(ReplyKind::BareLineFeed)
        } else if scan.nul {
            Some(ReplyKind::NulInContent)
        } else if scan.long_line {
            Some(ReplyKind::TextLineTooLong)
        } else {
            None
        };
        match refusal {
            Some(kind) => {
                self.tx = None;
                self.push(kind, now, out);
            }
            None => self.complete_message(SmtpPhase::Dot, now, out),
        }
    }

    /// `at` is where `input` starts in the input of [`Session::on_input`] (for [`Framed`]).
    fn on_bdat(&mut self, input: &[u8], at: usize, now: Timestamp, out: &mut Vec<Action>) -> usize {
        let State::Bdat { remaining, discard, .. } = &mut self.state else { return 0 };
        let take = (*remaining).min(input.len());
        if take == 0 {
            return 0;
        }
        framed_content(out, at..at + take);
        *remaining -= take;
        let (discard, done) = (*discard, *remaining == 0);
        if !discard {
            self.append_content(&input[..take]);
        }
        if done {
            self.finish_bdat_chunk(take, now, out);
        }
        take
    }

    fn finish_bdat_chunk(&mut self, _last_read: usize, now: Timestamp, out: &mut Vec<Action>) {
        let State::Bdat { size, last, discard, .. } = std::mem::replace(&mut self.state, State::Command) else {
            return;
        };
        out.push(Action::Framed(Framed::ContentEnd { verb: ContentVerb::Bdat, bytes: size }));
        if discard {
            return;
        }
        let Some(tx) = &self.tx else { return };
        if tx.too_large {
            // RFC 3030 §3: after a refused chunk the transaction is void.
            self.tx = None;
            return self.push(ReplyKind::MessageTooLarge, now, out);
        }
        if last {
            self.complete_message(SmtpPhase::Bdat, now, out);
        } else {
            let bytes = tx.content.len() as u64;
            self.push(ReplyKind::ChunkOk { bytes }, now, out);
        }
    }

    /// End of content: header-size check, the inbound verdict, stamping, and the 250.
    fn complete_message(&mut self, stage: SmtpPhase, now: Timestamp, out: &mut Vec<Action>) {
        let Some(tx) = self.tx.take() else { return };
        if header_section_len(&tx.content) > self.tenant.settings.max_header_size {
            return self.push(ReplyKind::HeaderTooLarge, now, out);
        }
        let verdict = attribute(&self.tenant, &self.peer, tx.envelope.sender.as_ref(), &tx.envelope.recipients);
        if let InboundVerdict::Rejected { rejection, .. } = &verdict {
            let reply = self.reply(&rejection.reply, now);
            out.push(Action::Refused(Box::new(Refusal {
                envelope: tx.envelope,
                peer: self.peer.clone(),
                stage,
                reply: reply.clone(),
                rejection: Some(rejection.clone()),
                at: now,
            })));
            out.push(Action::Reply(reply));
            return;
        }
        if self.auth.is_some() {
            let (sender, rcpts) = (tx.envelope.sender.as_ref(), &tx.envelope.recipients);
            let request = crate::auth::plan(&self.tenant, &verdict, &self.peer, sender, rcpts, &tx.content);
            out.push(Action::Authenticate(Box::new(request.clone())));
            self.state = State::Authenticating(Box::new(PendingAuth { tx, verdict, stage, request }));
            return;
        }
        self.accept_message(tx, verdict, None, now, out);
    }

    /// The 250: ids, EXO's Received line and stamps, the header firewall, the accepted message.
    fn accept_message(
        &mut self,
        tx: Transaction,
        verdict: InboundVerdict,
        auth: Option<Box<crate::auth::AuthVerdict>>,
        now: Timestamp,
        out: &mut Vec<Action>,
    ) {
        self.messages += 1;
        let internal_id = match &self.ids {
            Some(ids) => ids.next_id(),
            None => (self.session_id << 16).wrapping_add(self.messages),
        };
        let server = &self.tenant.settings.server_name;
        let message_id = find_message_id(&tx.content).unwrap_or_else(|| format!("<{internal_id:016X}@{server}>"));
        // One buffer for the tenant's headers and the received bytes: no temporary per header.
        let mut data = Vec::with_capacity(tx.content.len() + 512);
        self.write_received_header(now, &mut data);
        let mut stamps = verdict.stamp(server);
        if let (Some(a), Some(config)) = (&auth, &self.auth) {
            let cx = crate::auth::stamps::StampContext {
                server_name: server,
                tenant_id: &config.tenant_id,
                internal_id,
                now,
                filter: &config.filter,
            };
            stamps.extend(crate::auth::stamps::stamps(a, &verdict, &self.tenant, &tx.envelope.recipients, &cx));
        }
        // §2.1 CloudServicesMailEnabled: the promoted cross-premises headers replace the tenant's
        // own stamps of the same name rather than sitting beside them.
        let promoted = if verdict.cross_premises() { crate::headers::promoted_names(&tx.content) } else { Vec::new() };
        for (name, value) in stamps {
            if crate::headers::is_replaced_by_promotion(name, &promoted) {
                continue;
            }
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                data.extend_from_slice(part);
            }
        }
        crate::headers::entering_into(&tx.content, verdict.cross_premises(), &mut data);
        let bytes = tx.content.len() as u64;
        let millis = (now - tx.started_at).as_millis() as u64;
        let reply = self.reply(&ReplyKind::Queued { message_id: message_id.clone(), internal_id, bytes, millis }, now);
        out.push(Action::Accept(Box::new(AcceptedMessage {
            internal_id,
            message_id,
            envelope: tx.envelope,
            peer: self.peer.clone(),
            verdict,
            data,
            received_at: now,
            auth,
        })));
        out.push(Action::Reply(reply));
    }

    /// EXO's frontend Received header (exo-behaviour §8.5), with the TLS facts when encrypted.
    /// Appended to `out`, the buffer of the stored message.
    fn write_received_header(&self, now: Timestamp, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let helo = self.peer.helo.as_deref().unwrap_or("unknown");
        let _ = write!(
            out,
            "Received: from {helo} ({}) by {} ({}) with Microsoft SMTP Server",
            self.peer.ip, self.tenant.settings.server_name, self.local_ip,
        );
        if let Some(t) = &self.peer.tls {
            let _ = write!(out, " (version={}, cipher={})", t.version, t.cipher);
        }
        let _ = write!(out, " id 15.20.0000.000 via Frontend Transport; {}\r\n", now.rfc5322());
    }
}

/// Reports command bytes; the continuation of a long line extends the part before it.
fn framed_command(out: &mut Vec<Action>, range: std::ops::Range<usize>, ends: bool) {
    if let Some(Action::Framed(Framed::Command { range: last, ends: false })) = out.last_mut()
        && last.end == range.start
    {
        *out.last_mut().expect("checked") = Action::Framed(Framed::Command { range: last.start..range.end, ends });
        return;
    }
    out.push(Action::Framed(Framed::Command { range, ends }));
}

/// Reports content bytes; adjacent pieces become one (one action per read, not per line).
fn framed_content(out: &mut Vec<Action>, range: std::ops::Range<usize>) {
    if let Some(Action::Framed(Framed::Content { range: last })) = out.last_mut()
        && last.end == range.start
    {
        last.end = range.end;
        return;
    }
    out.push(Action::Framed(Framed::Content { range }));
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr(needle, haystack)
}

/// A CR not followed by LF. `line` excludes the final CRLF or LF.
fn has_bare_cr(line: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', line).any(|i| line.get(i + 1) != Some(&b'\n'))
}

/// Length of the header section ([`crate::header_section::section_len`]).
fn header_section_len(content: &[u8]) -> usize {
    crate::header_section::section_len(content)
}

/// The first non-empty Message-ID value of the header section (its first line, trimmed), if any.
fn find_message_id(content: &[u8]) -> Option<String> {
    crate::header_section::fields(crate::header_section::section(content))
        .filter(|f| f.is("Message-ID"))
        .map(|f| String::from_utf8_lossy(f.first_value()).trim().to_string())
        .find(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::DomainType;

    fn tenant() -> Arc<Tenant> {
        let mut t =
            Tenant::builder().with_domain("contoso.test", DomainType::Authoritative).with_mailbox("alice@contoso.test");
        t.settings.max_message_size = 10_000;
        t.settings.max_recipients = 3;
        Arc::new(t.build().unwrap())
    }

    fn session() -> Session {
        let ip = "127.0.0.10".parse().unwrap();
        Session::new(tenant(), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().unwrap(), 1, true)
    }

    /// Feeds `input` whole and returns the wire text of all replies and whether a message was
    /// accepted (with its stored content).
    fn run(s: &mut Session, input: &[u8]) -> (String, Vec<AcceptedMessage>) {
        let mut out = Vec::new();
        let used = s.on_input(input, Timestamp(0), &mut out);
        let mut wire = String::new();
        let mut accepted = Vec::new();
        for a in out {
            match a {
                Action::Reply(r) => wire.push_str(&r.to_wire()),
                Action::Accept(m) => accepted.push(*m),
                Action::StartTls => wire.push_str("<starttls>\r\n"),
                Action::Close => wire.push_str("<close>\r\n"),
                Action::Authenticate(_) => wire.push_str("<authenticate>\r\n"),
                Action::Refused(_) | Action::Framed(_) => {}
            }
        }
        if s.waiting() != Waiting::Closed
            && s.waiting() != Waiting::TlsHandshake
            && !wire.ends_with("<authenticate>\r\n")
        {
            assert_eq!(used, input.len(), "all complete input consumed");
        }
        (wire, accepted)
    }

    fn codes(wire: &str) -> Vec<&str> {
        wire.lines().filter(|l| l.len() >= 4 && &l[3..4] == " ").map(|l| &l[..3]).collect()
    }

    const HEAD: &[u8] = b"EHLO client.test\r\nMAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\n";

    fn message(body: &[u8]) -> Vec<u8> {
        [HEAD, body].concat()
    }

    /// What the session reports as framed: each command line, content in wire form (one piece
    /// per read), the end of each block with its size, in order with the replies.
    #[test]
    fn framed_input_is_reported_in_order_with_replies() {
        let mut s = session();
        let input = message(b"Subject: hi\r\n\r\n..dot\r\n.\r\nBDAT 3 LAST\r\nabcNOOP\r\n");
        let mut out = Vec::new();
        assert_eq!(s.on_input(&input, Timestamp(0), &mut out), input.len());
        let seen: Vec<String> = out
            .iter()
            .filter_map(|a| match a {
                Action::Framed(Framed::Command { range, ends }) => {
                    Some(format!("C {:?} {ends}", String::from_utf8_lossy(&input[range.clone()])))
                }
                Action::Framed(Framed::Content { range }) => {
                    Some(format!("D {:?}", String::from_utf8_lossy(&input[range.clone()])))
                }
                Action::Framed(Framed::ContentEnd { verb, bytes }) => Some(format!("E {} {bytes}", verb.as_str())),
                Action::Reply(r) => Some(format!("R {}", r.code.get())),
                _ => None,
            })
            .collect();
        assert_eq!(
            seen,
            [
                "C \"EHLO client.test\\r\\n\" true",
                "R 250",
                "C \"MAIL FROM:<a@fabrikam.test>\\r\\n\" true",
                "R 250",
                "C \"RCPT TO:<alice@contoso.test>\\r\\n\" true",
                "R 250",
                "C \"DATA\\r\\n\" true",
                "R 354",
                "D \"Subject: hi\\r\\n\\r\\n..dot\\r\\n\"",
                "E DATA 22",
                "R 250",
                "C \"BDAT 3 LAST\\r\\n\" true",
                "R 503",
                "D \"abc\"",
                "E BDAT 3",
                "C \"NOOP\\r\\n\" true",
                "R 250",
            ]
        );
    }

    /// A command line too long to hold is reported in parts as it is consumed.
    #[test]
    fn an_over_long_command_line_is_reported_in_parts() {
        let mut s = session();
        let long = vec![b'A'; MAX_COMMAND_LINE + 10];
        let mut out = Vec::new();
        assert_eq!(s.on_input(&long, Timestamp(0), &mut out), long.len());
        assert!(matches!(&out[..], [Action::Framed(Framed::Command { ends: false, .. })]), "{out:?}");
        out.clear();
        assert_eq!(s.on_input(b"AA\r\n", Timestamp(0), &mut out), 4);
        assert!(
            matches!(&out[0], Action::Framed(Framed::Command { range, ends: true }) if *range == (0..4)),
            "{out:?}"
        );
        assert!(matches!(&out[1], Action::Reply(r) if r.code.get() == 500), "{out:?}");
    }

    #[test]
    fn pipelined_transaction_is_accepted() {
        let mut s = session();
        let (wire, acc) = run(&mut s, &message(b"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"));
        assert_eq!(codes(&wire), ["250", "250", "250", "354", "250", "221"]);
        assert_eq!(acc.len(), 1);
        let stored = String::from_utf8(acc[0].data.clone()).unwrap();
        assert!(stored.starts_with("Received: from client.test (127.0.0.10) by MAILSIM01"));
        assert!(stored.ends_with("Subject: hi\r\n\r\n.dot\r\nbody\r\n"), "{stored}");
    }

    #[test]
    fn empty_message_ends_at_first_dot() {
        let mut s = session();
        let (wire, acc) = run(&mut s, &message(b".\r\n"));
        assert_eq!(codes(&wire).last(), Some(&"250"));
        assert_eq!(acc.len(), 1);
    }

    /// SMTP smuggling (RFC 5321 §4.1.1.4): only CRLF.CRLF ends a message; every bare-CR/LF variant
    /// is refused whole and the smuggled command is never executed.
    #[test]
    fn smuggling_variants_never_split_a_message() {
        for variant in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n"] {
            let mut s = session();
            let body =
                [b"Subject: x\r\n\r\nhello".as_slice(), variant, b"MAIL FROM:<evil@x.test>\r\n\r\n.\r\n"].concat();
            let (wire, acc) = run(&mut s, &message(&body));
            assert!(acc.is_empty(), "{variant:?} accepted");
            let last = codes(&wire).last().copied();
            assert_eq!(last, Some("554"), "{variant:?}: {wire}");
            // The session is usable afterwards.
            let (wire, acc) = run(&mut s, &message(b"ok\r\n.\r\n")[b"EHLO client.test\r\n".len()..]);
            assert_eq!(acc.len(), 1, "{variant:?}: {wire}");
        }
    }

    #[test]
    fn over_long_lines() {
        let mut s = session();
        let long_cmd = [b"NOOP ".as_slice(), &[b'a'; 600], b"\r\n"].concat();
        let (wire, _) = run(&mut s, &long_cmd);
        assert_eq!(wire, "500 5.5.2 Command too long\r\n");
        let long_text = [&[b'x'; 1200][..], b"\r\n.\r\n"].concat();
        let (wire, acc) = run(&mut s, &message(&long_text));
        assert!(acc.is_empty());
        assert!(wire.ends_with("500 5.5.2 Line too long\r\n"), "{wire}");
    }

    #[test]
    fn size_limits_at_mail_and_end_of_data() {
        let mut s = session();
        let (wire, _) = run(&mut s, b"EHLO c\r\nMAIL FROM:<a@b.test> SIZE=20000\r\n");
        assert!(wire.ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"));
        let big = [&b"x\r\n".repeat(4000)[..], b".\r\n"].concat();
        let (wire, acc) = run(&mut s, &message(&big));
        assert!(acc.is_empty());
        assert!(wire.ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"), "{wire}");
    }

    #[test]
    fn recipient_limit_and_dbeb() {
        let mut s = session();
        let (wire, _) = run(
            &mut s,
            b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<nobody@contoso.test>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<Alice@contoso.test>\r\nRCPT TO:<alice@CONTOSO.test>\r\nRCPT TO:<alice@contoso.test>\r\n",
        );
        assert!(wire.contains("550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [MAILSIM01"));
        assert!(wire.ends_with("452 4.5.3 Too many recipients\r\n"), "{wire}");
    }

    #[test]
    fn sequence_errors_and_error_limit() {
        let mut s = session();
        let (wire, _) =
            run(&mut s, b"MAIL FROM:<a@b.test>\r\nEHLO c\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\nFOO\r\n");
        assert_eq!(codes(&wire), ["503", "250", "503", "503", "500"]);
        // MaxProtocolErrors 5: the fifth error is answered and the connection stays; the sixth
        // closes it.
        let (wire, _) = run(&mut s, b"BAR\r\n");
        assert_eq!(codes(&wire), ["500"], "{wire}");
        let (wire, _) = run(&mut s, b"BAZ\r\n");
        assert!(
            wire.ends_with("421 4.7.0 Too many errors on this connection, closing transmission channel\r\n<close>\r\n")
        );
    }

    #[test]
    fn starttls_stops_consuming_and_forgets_ehlo() {
        let mut s = session();
        let mut out = Vec::new();
        let input = b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<injected@x.test>\r\n";
        let used = s.on_input(input, Timestamp(0), &mut out);
        assert_eq!(used, b"EHLO c\r\nSTARTTLS\r\n".len());
        assert!(matches!(out.last(), Some(Action::StartTls)));
        s.on_tls_established(TlsFacts { version: "TLS1_3".into(), cipher: "X".into(), sni: None, client_cert: None });
        let (wire, _) = run(&mut s, b"MAIL FROM:<a@b.test>\r\n");
        assert_eq!(wire, "503 5.5.2 Send hello first\r\n");
        let (wire, _) = run(&mut s, b"EHLO c\r\nSTARTTLS\r\n");
        assert!(!wire.contains("STARTTLS\r\n250"), "STARTTLS not offered again");
        assert!(wire.ends_with("503 5.5.2 Only one STARTTLS command can be issued per session\r\n"));
    }

    #[test]
    fn bdat_chunks() {
        let mut s = session();
        let (wire, acc) = run(
            &mut s,
            b"EHLO c\r\nMAIL FROM:<a@b.test> BODY=BINARYMIME\r\nRCPT TO:<alice@contoso.test>\r\nBDAT 5\r\nab\r\ncBDAT 3 LAST\r\nd\r\n",
        );
        assert_eq!(codes(&wire), ["250", "250", "250", "250", "250"]);
        assert!(acc[0].data.ends_with(b"ab\r\ncd\r\n"));
        // BDAT without a transaction: the chunk is consumed, not executed as commands.
        let (wire, acc) = run(&mut s, b"BDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n");
        assert!(acc.is_empty());
        assert_eq!(codes(&wire), ["503", "250"]);
    }

    #[test]
    fn partial_input_is_left_for_later() {
        let mut s = session();
        let mut out = Vec::new();
        assert_eq!(s.on_input(b"EHLO cli", Timestamp(0), &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn eight_bit_and_nul_in_commands() {
        let mut s = session();
        let (wire, _) =
            run(&mut s, "EHLO c\r\nMAIL FROM:<jö@b.test>\r\nMAIL FROM:<jö@b.test> SMTPUTF8\r\nNOOP\0\r\n".as_bytes());
        assert_eq!(codes(&wire), ["250", "553", "250", "501"]);
    }

    #[test]
    fn vrfy_and_help_leak_nothing() {
        let mut s = session();
        let (wire, _) = run(&mut s, b"VRFY alice@contoso.test\r\nVRFY nobody@contoso.test\r\nHELP\r\n");
        assert!(!wire.contains("alice"));
        assert_eq!(codes(&wire), ["252", "252", "214"]);
    }

    /// Authentication on (exo-behaviour §14): the session asks before answering, reads nothing
    /// pipelined meanwhile, then answers 5.7.509 for an honoured p=reject failure and goes on.
    #[test]
    fn authentication_waits_for_facts_then_refuses_with_5_7_509() {
        use crate::auth::{AuthConfig, AuthFacts, DmarcLookup, DmarcPolicy, SpfVerdict};
        let ip = "127.0.0.10".parse().unwrap();
        let mut s = Session::new(tenant(), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().unwrap(), 1, true)
            .with_authentication(Arc::new(AuthConfig::default()));
        let input = b"EHLO mail.partner.example\r\nMAIL FROM:<a@partner.example>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\nFrom: a@partner.example\r\n\r\nhi\r\n.\r\nQUIT\r\n";
        let mut out = Vec::new();
        let used = s.on_input(input, Timestamp(0), &mut out);
        assert_eq!(&input[used..], b"QUIT\r\n", "nothing after the message is read yet");
        assert!(matches!(out.last(), Some(Action::Authenticate(_))));
        assert_eq!(s.pending_content(), Some(&b"From: a@partner.example\r\n\r\nhi\r\n"[..]));
        let facts = AuthFacts {
            spf: SpfVerdict::Fail,
            dkim: Vec::new(),
            dmarc: DmarcLookup::Found {
                policy: DmarcPolicy::Reject,
                adkim: crate::auth::Alignment::Relaxed,
                aspf: crate::auth::Alignment::Relaxed,
            },
            ptr: None,
            mx_at_eop: true,
        };
        let mut out = Vec::new();
        s.on_authenticated(facts, Timestamp(0), &mut out);
        let reply = out.iter().find_map(|a| if let Action::Reply(r) = a { Some(r.to_wire()) } else { None }).unwrap();
        assert!(reply.starts_with("550 5.7.509 Access denied, sending domain [partner.example] does not pass DMARC verification and has a DMARC policy of reject."), "{reply}");
        assert!(out.iter().any(|a| matches!(a, Action::Refused(_))));
        let (wire, _) = run(&mut s, b"QUIT\r\n");
        assert!(wire.starts_with("221"), "{wire}");
    }
}
