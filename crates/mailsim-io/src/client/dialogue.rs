//! The dialogue: one SMTP conversation with one server ([`SmtpClient`]), from connect to QUIT,
//! and what it learns on the way ([`Capabilities`], [`TlsInfo`], [`TransactionReplies`]).
//!
//! Contract: it carries out commands and reports replies and facts; a reply that does not let a
//! single-command step go on is [`ClientError::Rejected`]. It records every line it writes and
//! reads as a typed [`Event`] in the [`Transcript`] when recording is on. It decides nothing about
//! what a reply means for a message.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mailsim_core::reply::Reply;
use rustls::ProtocolVersion;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{
    ClientError, ClientOptions, Direction, Event, MAX_REPLY_LINE, MAX_REPLY_LINES, Stage, TlsMode, Transcript,
    TranscriptLine, opportunistic_config,
};

/// A message body of more lines than this is summarised in the transcript.
const DATA_LINES_SHOWN: usize = 40;
/// Lines shown at the start of a summarised body.
const DATA_HEAD_LINES: usize = 10;

/// What the last EHLO reply offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The first line: the server's name and greeting text.
    pub greeting: String,
    /// Each extension line as sent, e.g. `SIZE 36700160`, `PIPELINING`.
    pub keywords: Vec<String>,
    /// The SIZE limit, when one is given (RFC 1870; 0 means no limit).
    pub size: Option<u64>,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
}

impl Capabilities {
    /// Reads the capabilities from an EHLO reply.
    pub fn from_reply(reply: &Reply) -> Self {
        let mut caps = Capabilities {
            greeting: reply.lines.first().map(|l| l.to_string()).unwrap_or_default(),
            ..Default::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else { continue };
            match keyword.to_ascii_uppercase().as_str() {
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()),
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "CHUNKING" => caps.chunking = true,
                _ => {}
            }
            caps.keywords.push(line.to_string());
        }
        caps
    }

    /// Whether `keyword` (case-insensitive, without parameters) was offered.
    pub fn has(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|line| line.split_ascii_whitespace().next().is_some_and(|k| k.eq_ignore_ascii_case(keyword)))
    }
}

/// What the TLS handshake settled.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server's certificate chain, leaf first.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

/// Every reply of one mail transaction, as data (the core judges them:
/// `mailsim_core::stage::attempt::settle_transaction`).
pub use mailsim_core::stage::attempt::TransactionReplies;

fn is_2xx(reply: &Reply) -> bool {
    reply.code.get() / 100 == 2
}

fn is_3xx(reply: &Reply) -> bool {
    reply.code.get() / 100 == 3
}

enum Stream {
    Closed,
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Closed => Err(io::ErrorKind::NotConnected.into()),
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
        }
    }
}

/// One SMTP conversation. Create it with [`SmtpClient::new`], then [`connect`](Self::connect)
/// (or [`open`](Self::open) for greeting, EHLO and STARTTLS in one call).
///
/// Single-command methods turn a reply that does not let the step go on into
/// [`ClientError::Rejected`]; the connection stays usable. Any other error drops the connection.
pub struct SmtpClient {
    opts: ClientOptions,
    stream: Stream,
    rbuf: Vec<u8>,
    rpos: usize,
    started: Instant,
    transcript: Option<Transcript>,
    capabilities: Option<Capabilities>,
    tls: Option<TlsInfo>,
    local_addr: Option<SocketAddr>,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("server", &self.opts.server)
            .field("local_addr", &self.local_addr)
            .field("connected", &self.is_connected())
            .field("tls", &self.tls.as_ref().map(|t| &t.version))
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// A client that has not connected yet.
    pub fn new(opts: ClientOptions) -> Self {
        let transcript = opts.record_transcript.then(Transcript::default);
        Self {
            opts,
            stream: Stream::Closed,
            rbuf: Vec::new(),
            rpos: 0,
            started: Instant::now(),
            transcript,
            capabilities: None,
            tls: None,
            local_addr: None,
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Capabilities from the last EHLO (forgotten after STARTTLS, RFC 3207 §4.2).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.capabilities.as_ref()
    }

    /// TLS facts once STARTTLS has succeeded.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The bound source address once connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        !matches!(self.stream, Stream::Closed)
    }

    /// The transcript so far (`None` when recording is off).
    pub fn transcript(&self) -> Option<&Transcript> {
        self.transcript.as_ref()
    }

    /// Takes the transcript, leaving an empty one.
    pub fn take_transcript(&mut self) -> Option<Transcript> {
        self.transcript.as_mut().map(std::mem::take)
    }

    /// Adds a note to the transcript.
    pub fn note(&mut self, text: impl Into<String>) {
        self.record(Event::Note(text.into()));
    }

    fn record(&mut self, event: Event) {
        if let Some(t) = &mut self.transcript {
            let tls = matches!(self.stream, Stream::Tls(_)) && event.direction() != Direction::Info;
            t.lines.push(TranscriptLine { at: self.started.elapsed(), tls, event });
        }
    }

    /// Binds the source address, connects and reads the greeting; a greeting other than 2xx is
    /// [`ClientError::Rejected`] at [`Stage::Connect`].
    pub async fn connect(&mut self) -> Result<Reply, ClientError> {
        let server = self.opts.server;
        if !server.ip().is_loopback() {
            return Err(ClientError::NotLoopback(server));
        }
        self.started = Instant::now();
        self.rbuf.clear();
        self.rpos = 0;
        self.capabilities = None;
        self.tls = None;
        self.record(Event::Connecting { server });
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(ClientError::Connect)?;
        if let Some(ip) = self.opts.local_addr {
            socket.bind(SocketAddr::new(ip, 0)).map_err(ClientError::Connect)?;
        }
        let tcp = tokio::time::timeout(self.opts.timeout, socket.connect(server))
            .await
            .map_err(|_| ClientError::Timeout(Stage::Connect))?
            .map_err(ClientError::Connect)?;
        // Commands and bodies go out in whole writes; Nagle would only add delayed-ACK stalls.
        tcp.set_nodelay(true).map_err(ClientError::Connect)?;
        let local = tcp.local_addr().map_err(ClientError::Connect)?;
        self.local_addr = Some(local);
        self.stream = Stream::Plain(tcp);
        self.record(Event::Connected { server, local });
        let greeting = self.reply_step(Stage::Connect).await?;
        if !is_2xx(&greeting) {
            return Err(ClientError::Rejected { stage: Stage::Connect, reply: greeting });
        }
        Ok(greeting)
    }

    /// Sends EHLO with the configured name and returns what the server offers.
    pub async fn ehlo(&mut self) -> Result<Capabilities, ClientError> {
        let line = format!("EHLO {}", self.opts.ehlo);
        let reply = self.command(&line, Stage::Ehlo).await?;
        if !is_2xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::Ehlo, reply });
        }
        let caps = Capabilities::from_reply(&reply);
        self.capabilities = Some(caps.clone());
        Ok(caps)
    }

    /// Sends STARTTLS and, on 2xx, performs the handshake with the configured TLS settings and
    /// server name. Sending EHLO again is the caller's job.
    pub async fn starttls(&mut self) -> Result<TlsInfo, ClientError> {
        if matches!(self.stream, Stream::Tls(_)) {
            return Err(ClientError::Tls("TLS is already active".into()));
        }
        let reply = self.command("STARTTLS", Stage::StartTls).await?;
        if !is_2xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::StartTls, reply });
        }
        if self.rpos < self.rbuf.len() {
            // Anything after the 220 was sent before TLS and must not be read as if inside it
            // (the response side of the CVE-2011-0411 STARTTLS injection).
            self.drop_connection();
            return Err(ClientError::ProtocolViolation {
                stage: Stage::StartTls,
                detail: "the server sent data after its STARTTLS reply".into(),
            });
        }
        let name = if self.opts.server_name.is_empty() {
            ServerName::IpAddress(self.opts.server.ip().into())
        } else {
            ServerName::try_from(self.opts.server_name.clone())
                .map_err(|e| ClientError::Tls(format!("invalid server name {:?}: {e}", self.opts.server_name)))?
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
            return Err(ClientError::NotConnected(Stage::StartTls));
        };
        let config = self.opts.tls_config.clone().unwrap_or_else(opportunistic_config);
        let handshake = TlsConnector::from(config).connect(name, tcp);
        let tls = tokio::time::timeout(self.opts.timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout(Stage::StartTls))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let (_, conn) = tls.get_ref();
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_string(),
        };
        let cipher = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
        let peer_certificates =
            conn.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect()).unwrap_or_default();
        let info = TlsInfo { version, cipher, peer_certificates };
        self.stream = Stream::Tls(Box::new(tls));
        self.capabilities = None;
        self.record(Event::TlsStarted { version: info.version.clone(), cipher: info.cipher.clone() });
        if let Some(subject) = info.peer_certificates.first().and_then(|c| cert_subject(c)) {
            self.record(Event::TlsPeerSubject(subject));
        }
        self.tls = Some(info.clone());
        Ok(info)
    }

    /// Greeting, EHLO and, as [`ClientOptions::tls`] asks, STARTTLS and EHLO again. Returns the
    /// capabilities in force for the rest of the session.
    pub async fn open(&mut self) -> Result<Capabilities, ClientError> {
        self.connect().await?;
        let caps = self.ehlo().await?;
        match self.opts.tls {
            TlsMode::None => Ok(caps),
            TlsMode::Required if !caps.starttls => Err(ClientError::TlsNotOffered),
            TlsMode::Optional if !caps.starttls => Ok(caps),
            TlsMode::Optional => match self.starttls().await {
                Ok(_) => self.ehlo().await,
                Err(ClientError::Rejected { .. }) => Ok(caps),
                Err(e) => Err(e),
            },
            TlsMode::Required => {
                self.starttls().await?;
                self.ehlo().await
            }
        }
    }

    /// `MAIL FROM:<from>`; `from` may already carry angle brackets and parameters.
    pub async fn mail_from(&mut self, from: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("MAIL FROM:{}", bracket(from)), Stage::Mail).await?;
        if !is_2xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::Mail, reply });
        }
        Ok(reply)
    }

    /// `RCPT TO:<to>`; `to` may already carry angle brackets and parameters.
    pub async fn rcpt_to(&mut self, to: &str) -> Result<Reply, ClientError> {
        let reply = self.command(&format!("RCPT TO:{}", bracket(to)), Stage::Rcpt).await?;
        if !is_2xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::Rcpt, reply });
        }
        Ok(reply)
    }

    /// DATA, then the message (line ends made CRLF, dot-stuffed, a final CRLF added if missing)
    /// and the final dot. Returns the reply after the dot.
    pub async fn data(&mut self, message: &[u8]) -> Result<Reply, ClientError> {
        let reply = self.command("DATA", Stage::Data).await?;
        if !is_3xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::Data, reply });
        }
        let reply = self.send_body(&encode_data(message)).await?;
        if !is_2xx(&reply) {
            return Err(ClientError::Rejected { stage: Stage::Dot, reply });
        }
        Ok(reply)
    }

    /// One mail transaction. With `pipelining` and PIPELINING offered by the last EHLO, MAIL, every
    /// RCPT and DATA go out in one write (RFC 2920 §3.1); otherwise one command at a time, stopping
    /// after a refused MAIL or when no recipient was accepted. The body is sent only when the
    /// server accepted MAIL, at least one recipient and DATA; if it answered DATA with 354 although
    /// nothing was accepted, a lone dot ends the empty transaction (RFC 2920 §3.1).
    /// Refusals are returned as replies; after one, send RSET before the next transaction.
    pub async fn send_transaction(
        &mut self,
        from: &str,
        rcpts: &[&str],
        message: &[u8],
        pipelining: bool,
    ) -> Result<TransactionReplies, ClientError> {
        let body = encode_data(message);
        let pipelining = pipelining && self.capabilities.as_ref().is_some_and(|c| c.pipelining);
        if pipelining {
            let mut batch = Vec::with_capacity(64 + 48 * rcpts.len());
            let mut lines = Vec::with_capacity(2 + rcpts.len());
            lines.push(format!("MAIL FROM:{}", bracket(from)));
            for rcpt in rcpts {
                lines.push(format!("RCPT TO:{}", bracket(rcpt)));
            }
            lines.push("DATA".to_string());
            for line in lines {
                batch.extend_from_slice(line.as_bytes());
                batch.extend_from_slice(b"\r\n");
                self.record(Event::Command(line));
            }
            self.write_step(Stage::Mail, &batch).await?;
            let mail = self.reply_step(Stage::Mail).await?;
            let mut replies = Vec::with_capacity(rcpts.len());
            for _ in rcpts {
                replies.push(self.reply_step(Stage::Rcpt).await?);
            }
            let data = self.reply_step(Stage::Data).await?;
            let go = is_2xx(&mail) && replies.iter().any(is_2xx);
            let dot = match (is_3xx(&data), go) {
                (false, _) => None,
                (true, true) => Some(self.send_body(&body).await?),
                (true, false) => Some(self.send_body(b".\r\n").await?),
            };
            return Ok(TransactionReplies { mail, rcpts: replies, data: Some(data), dot });
        }
        let mail = self.command(&format!("MAIL FROM:{}", bracket(from)), Stage::Mail).await?;
        let mut out = TransactionReplies { mail, rcpts: Vec::new(), data: None, dot: None };
        if !is_2xx(&out.mail) {
            return Ok(out);
        }
        for rcpt in rcpts {
            let reply = self.command(&format!("RCPT TO:{}", bracket(rcpt)), Stage::Rcpt).await?;
            out.rcpts.push(reply);
        }
        if out.accepted_rcpts() == 0 {
            return Ok(out);
        }
        let data = self.command("DATA", Stage::Data).await?;
        if is_3xx(&data) {
            out.dot = Some(self.send_body(&body).await?);
        }
        out.data = Some(data);
        Ok(out)
    }

    /// RSET; the reply is returned whatever its code.
    pub async fn rset(&mut self) -> Result<Reply, ClientError> {
        self.command("RSET", Stage::Rset).await
    }

    /// QUIT, then closes the connection (with a TLS close_notify inside TLS).
    pub async fn quit(&mut self) -> Result<Reply, ClientError> {
        let result = self.command("QUIT", Stage::Quit).await;
        if let Stream::Tls(s) = &mut self.stream {
            let _ = tokio::time::timeout(self.opts.timeout, s.shutdown()).await;
        }
        if self.is_connected() {
            self.stream = Stream::Closed;
            self.record(Event::Closed);
        }
        result
    }

    /// Sends one command line (without CRLF) and returns the reply, whatever its code.
    pub async fn command(&mut self, line: &str, stage: Stage) -> Result<Reply, ClientError> {
        self.record(Event::Command(line.to_string()));
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        self.write_step(stage, &wire).await?;
        self.reply_step(stage).await
    }

    /// Writes bytes as they are (recorded as one line per CRLF-terminated piece). For tests and
    /// hostile peers; ordinary commands go through [`command`](Self::command).
    pub async fn send_raw(&mut self, bytes: &[u8], stage: Stage) -> Result<(), ClientError> {
        if self.transcript.is_some() {
            for line in String::from_utf8_lossy(bytes).split_terminator("\r\n") {
                self.record(Event::Command(line.to_string()));
            }
        }
        self.write_step(stage, bytes).await
    }

    /// Reads one complete reply.
    pub async fn read_reply(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        self.reply_step(stage).await
    }

    /// Writes an already encoded body (ending in CRLF.CRLF) and reads the reply after the dot.
    async fn send_body(&mut self, wire: &[u8]) -> Result<Reply, ClientError> {
        if self.transcript.is_some() {
            self.record_body(wire);
        }
        self.write_step(Stage::Dot, wire).await?;
        self.reply_step(Stage::Dot).await
    }

    /// Content lines as sent (up to [`DATA_LINES_SHOWN`], else the first [`DATA_HEAD_LINES`] and
    /// a count), then the final dot. `wire` ends with the `.` line.
    fn record_body(&mut self, wire: &[u8]) {
        let text = String::from_utf8_lossy(wire);
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        let content = &lines[..lines.len().saturating_sub(1)];
        let bytes = wire.len().saturating_sub(3);
        if lines.len() <= DATA_LINES_SHOWN {
            for line in content {
                self.record(Event::ContentLine(line.to_string()));
            }
        } else {
            for line in &lines[..DATA_HEAD_LINES] {
                self.record(Event::ContentLine(line.to_string()));
            }
            let hidden = lines.len() - DATA_HEAD_LINES - 1;
            self.record(Event::ContentElided { lines: hidden, total_bytes: wire.len() });
        }
        self.record(Event::ContentEnd { bytes });
    }

    async fn write_step(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), ClientError> {
        let result = match tokio::time::timeout(self.opts.timeout, self.stream.write_all(bytes)).await {
            Err(_) => Err(ClientError::Timeout(stage)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error(stage, e)),
        };
        if result.is_err() {
            self.drop_connection();
        }
        result
    }

    async fn reply_step(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        let result = match tokio::time::timeout(self.opts.timeout, self.read_reply_inner(stage)).await {
            Err(_) => Err(ClientError::Timeout(stage)),
            Ok(r) => r,
        };
        if result.is_err() {
            self.drop_connection();
        }
        result
    }

    fn drop_connection(&mut self) {
        if self.is_connected() {
            self.stream = Stream::Closed;
        }
    }

    async fn read_reply_inner(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        let mut lines: Vec<String> = Vec::new();
        loop {
            let line = self.read_line(stage).await?;
            self.record(Event::Reply(line.clone()));
            let bytes = line.as_bytes();
            let well_formed = bytes.len() >= 3
                && bytes[..3].iter().all(u8::is_ascii_digit)
                && matches!(bytes.get(3), None | Some(b' ' | b'-'));
            if !well_formed {
                return Err(violation(stage, format!("malformed reply line {line:?}")));
            }
            if lines.first().is_some_and(|first| first.as_bytes()[..3] != bytes[..3]) {
                return Err(violation(stage, format!("reply code changed inside a multi-line reply: {line:?}")));
            }
            let last = bytes.get(3) != Some(&b'-');
            lines.push(line);
            if lines.len() > MAX_REPLY_LINES {
                return Err(violation(stage, format!("reply longer than {MAX_REPLY_LINES} lines")));
            }
            if last {
                break;
            }
        }
        let mut wire = lines.join("\r\n");
        wire.push_str("\r\n");
        Reply::parse(&wire).ok_or_else(|| violation(stage, format!("unparseable reply {:?}", lines[0])))
    }

    /// One line without its line end; CRLF and bare LF both end a line.
    async fn read_line(&mut self, stage: Stage) -> Result<String, ClientError> {
        loop {
            if let Some(i) = self.rbuf[self.rpos..].iter().position(|&b| b == b'\n') {
                let raw = &self.rbuf[self.rpos..self.rpos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                if raw.len() > MAX_REPLY_LINE {
                    return Err(violation(stage, format!("reply line longer than {MAX_REPLY_LINE} characters")));
                }
                let line = String::from_utf8_lossy(raw).into_owned();
                self.rpos += i + 1;
                if self.rpos == self.rbuf.len() {
                    self.rbuf.clear();
                    self.rpos = 0;
                }
                return Ok(line);
            }
            if self.rbuf.len() - self.rpos > MAX_REPLY_LINE + 1 {
                return Err(violation(stage, format!("reply line longer than {MAX_REPLY_LINE} characters")));
            }
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(|e| io_error(stage, e))?;
            if n == 0 {
                return Err(ClientError::Closed(stage));
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn violation(stage: Stage, detail: String) -> ClientError {
    ClientError::ProtocolViolation { stage, detail }
}

fn io_error(stage: Stage, e: io::Error) -> ClientError {
    if e.kind() == io::ErrorKind::NotConnected {
        return ClientError::NotConnected(stage);
    }
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return ClientError::Tls(tls.to_string());
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
            ClientError::Closed(stage)
        }
        _ => ClientError::Io { stage, error: e },
    }
}

fn bracket(addr: &str) -> String {
    if addr.starts_with('<') { addr.to_string() } else { format!("<{addr}>") }
}

fn cert_subject(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.subject().to_string())
}

/// The message as it goes on the wire after DATA: every line end made CRLF, a dot doubled at the
/// start of a line (RFC 5321 §4.5.2), a final CRLF added when missing, and `.` CRLF appended.
/// Bare CR is sent as it is.
pub fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut rest = message;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::client::client_config;
    use std::net::{IpAddr, Ipv4Addr};

    use mailsim_testkit::certs::TestPki;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{RootCertStore, ServerConfig};
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A raw peer: reads lines, writes fixed bytes. Shares no code with the client.
    struct Peer<S> {
        io: BufReader<S>,
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
        fn new(s: S) -> Self {
            Self { io: BufReader::new(s) }
        }
        async fn line(&mut self) -> String {
            let mut line = String::new();
            self.io.read_line(&mut line).await.expect("peer read");
            line
        }
        async fn expect(&mut self, prefix: &str) -> String {
            let line = self.line().await;
            assert!(line.starts_with(prefix), "expected {prefix:?}, got {line:?}");
            line
        }
        async fn send(&mut self, text: &str) {
            self.io.get_mut().write_all(text.as_bytes()).await.expect("peer write");
            self.io.get_mut().flush().await.expect("peer flush");
        }
        /// Reads a DATA body up to and including CRLF.CRLF.
        async fn body(&mut self) -> Vec<u8> {
            let mut body = Vec::new();
            while !(body.ends_with(b"\r\n.\r\n") || body == b".\r\n") {
                let n = self.io.read_until(b'\n', &mut body).await.expect("peer read body");
                assert!(n > 0, "client closed during DATA");
            }
            body
        }
    }

    /// Binds 127.0.0.1:0 and runs `script` on the first connection, handing it the peer address.
    async fn serve<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<T>)
    where
        F: FnOnce(Peer<TcpStream>, SocketAddr) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send,
        T: Send + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            tokio::time::timeout(LIMIT, script(Peer::new(tcp), peer)).await.expect("scripted peer timed out")
        });
        (addr, task)
    }

    fn options(addr: SocketAddr) -> ClientOptions {
        ClientOptions { timeout: Duration::from_secs(5), ..ClientOptions::new(addr) }
    }

    #[test]
    fn encode_data_stuffs_dots_and_ends_with_crlf_dot_crlf() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
            (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"..x\r\n", b"...x\r\n.\r\n"),
            (b"a\r.\rb", b"a\r.\rb\r\n.\r\n"),
            (b"x.\r\n", b"x.\r\n.\r\n"),
            (b"\n", b"\r\n.\r\n"),
        ];
        for (input, wire) in rows {
            assert_eq!(encode_data(input), *wire, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn capabilities_are_read_from_ehlo_lines() {
        let reply = Reply::parse(
            "250-mx.contoso.test Hello [127.0.0.10]\r\n250-SIZE 36700160\r\n250-pipelining\r\n\
             250-STARTTLS\r\n250-8BITMIME\r\n250 CHUNKING\r\n",
        )
        .unwrap();
        let caps = Capabilities::from_reply(&reply);
        assert_eq!(caps.greeting, "mx.contoso.test Hello [127.0.0.10]");
        assert_eq!(caps.size, Some(36_700_160));
        assert!(caps.pipelining && caps.starttls && caps.chunking);
        assert!(caps.has("8bitmime") && caps.has("SIZE") && !caps.has("SMTPUTF8"));
        assert_eq!(caps.keywords.len(), 5);
    }

    #[tokio::test]
    async fn multi_line_replies_split_across_reads_are_one_reply() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220-first line\r\n22").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            p.send("0 second line\r\n").await;
            p.expect("EHLO client.test\r\n").await;
            p.send("250-sim.test Hello\r\n250-SIZE 1000\r\n250-PIPE").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            p.send("LINING\r\n250-STARTTLS\r").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            p.send("\n250 CHUNKING\r\n").await;
            p.expect("QUIT").await;
            p.send("221 2.0.0 Bye\r\n").await;
        })
        .await;
        let mut client = SmtpClient::new(ClientOptions { ehlo: "client.test".into(), ..options(addr) });
        let greeting = client.connect().await.unwrap();
        assert_eq!(greeting.lines, ["first line", "second line"]);
        let caps = client.ehlo().await.unwrap();
        assert_eq!((caps.size, caps.pipelining, caps.starttls, caps.chunking), (Some(1000), true, true, true));
        let bye = client.quit().await.unwrap();
        assert_eq!(bye.status.map(|s| s.to_string()).as_deref(), Some("2.0.0"));
        server.await.unwrap();
        let text = client.transcript().unwrap().to_string();
        assert!(text.starts_with(&format!("=== Trying {addr}...\n=== Connected to {addr} from 127.0.0.1:")), "{text}");
        assert!(text.contains("<-  220-first line\n<-  220 second line\n -> EHLO client.test\n"), "{text}");
        assert!(text.ends_with(" -> QUIT\n<-  221 2.0.0 Bye\n=== Connection closed with remote host.\n"), "{text}");
    }

    #[tokio::test]
    async fn pipelined_transaction_sends_mail_rcpt_and_data_in_one_flight() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220 sim.test ESMTP\r\n").await;
            p.expect("EHLO").await;
            p.send("250-sim.test\r\n250 PIPELINING\r\n").await;
            // No reply until the whole batch is in: a client waiting for the MAIL reply would hang.
            let batch = [p.line().await, p.line().await, p.line().await, p.line().await];
            p.send("250 2.1.0 Sender OK\r\n550 5.1.1 unknown\r\n250 2.1.5 Recipient OK\r\n354 go ahead\r\n").await;
            let body = p.body().await;
            p.send("250 2.6.0 Queued mail for delivery\r\n").await;
            (batch, body)
        })
        .await;
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        client.ehlo().await.unwrap();
        let replies = client
            .send_transaction("a@fabrikam.test", &["x@contoso.test", "<y@contoso.test>"], b"Subject: t\n\nhi\n", true)
            .await
            .unwrap();
        let (batch, body) = server.await.unwrap();
        assert_eq!(
            batch,
            [
                "MAIL FROM:<a@fabrikam.test>\r\n",
                "RCPT TO:<x@contoso.test>\r\n",
                "RCPT TO:<y@contoso.test>\r\n",
                "DATA\r\n"
            ]
        );
        assert_eq!(body, b"Subject: t\r\n\r\nhi\r\n.\r\n");
        let codes: Vec<u16> = replies.rcpts.iter().map(|r| r.code.get()).collect();
        assert_eq!((replies.mail.code.get(), codes), (250, vec![550, 250]));
        assert_eq!(replies.data.as_ref().map(|r| r.code.get()), Some(354));
        assert_eq!(replies.dot.as_ref().map(|r| r.code.get()), Some(250));
        assert!(replies.accepted());
    }

    #[tokio::test]
    async fn without_pipelining_each_command_waits_for_its_reply() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220 sim.test ESMTP\r\n").await;
            p.expect("EHLO").await;
            p.send("250-sim.test\r\n250 SIZE 1000\r\n").await;
            for (cmd, reply) in [("MAIL", "250 ok\r\n"), ("RCPT", "250 ok\r\n"), ("DATA", "354 go\r\n")] {
                p.expect(cmd).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
                assert!(p.io.buffer().is_empty(), "the client sent ahead of the {cmd} reply");
                p.send(reply).await;
            }
            let body = p.body().await;
            p.send("250 queued\r\n").await;
            body
        })
        .await;
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        client.ehlo().await.unwrap();
        let replies = client.send_transaction("a@b.test", &["c@d.test"], b".hidden\r\n.", true).await.unwrap();
        assert!(replies.accepted());
        assert_eq!(server.await.unwrap(), b"..hidden\r\n..\r\n.\r\n");
    }

    #[tokio::test]
    async fn all_recipients_refused_ends_a_pipelined_transaction_with_a_lone_dot() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220 sim.test ESMTP\r\n").await;
            p.expect("EHLO").await;
            p.send("250-sim.test\r\n250 PIPELINING\r\n").await;
            for _ in 0..3 {
                p.line().await;
            }
            p.send("250 ok\r\n550 5.4.1 Recipient address rejected: Access denied\r\n354 go\r\n").await;
            let body = p.body().await;
            p.send("554 5.5.1 no valid recipients\r\n").await;
            body
        })
        .await;
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        client.ehlo().await.unwrap();
        let replies = client.send_transaction("a@b.test", &["c@d.test"], b"secret body", true).await.unwrap();
        assert_eq!(server.await.unwrap(), b".\r\n");
        assert!(!replies.accepted());
        assert_eq!(replies.accepted_rcpts(), 0);
    }

    #[tokio::test]
    async fn source_address_is_bound_before_connecting() {
        let (addr, server) = serve(|mut p, peer| async move {
            p.send("220 sim.test\r\n").await;
            peer
        })
        .await;
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 23));
        let mut client = SmtpClient::new(ClientOptions { local_addr: Some(source), ..options(addr) });
        client.connect().await.unwrap();
        assert_eq!(server.await.unwrap().ip(), source);
        assert_eq!(client.local_addr().map(|a| a.ip()), Some(source));
    }

    #[tokio::test]
    async fn a_refused_command_names_its_stage_and_keeps_the_connection() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220 sim.test\r\n").await;
            p.expect("EHLO").await;
            p.send("250 sim.test\r\n").await;
            p.expect("MAIL FROM:<a@b.test>").await;
            p.send("250 2.1.0 ok\r\n").await;
            p.expect("RCPT TO:<nobody@contoso.test>").await;
            p.send("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)\r\n").await;
            p.expect("RSET").await;
            p.send("250 2.0.0 reset\r\n").await;
        })
        .await;
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        client.ehlo().await.unwrap();
        client.mail_from("a@b.test").await.unwrap();
        let err = client.rcpt_to("nobody@contoso.test").await.unwrap_err();
        assert_eq!(err.stage(), Some(Stage::Rcpt));
        let reply = err.reply().unwrap();
        assert_eq!((reply.code.get(), reply.status.unwrap().to_string()), (550, "5.4.1".into()));
        assert!(client.is_connected());
        assert_eq!(client.rset().await.unwrap().code.get(), 250);
        server.await.unwrap();
        assert!(client.transcript().unwrap().to_string().contains("<** 550 5.4.1 Recipient"));
    }

    #[tokio::test]
    async fn a_554_greeting_is_a_rejection_at_connect() {
        let (addr, _server) = serve(|mut p, _| async move {
            p.send("554 5.7.1 go away\r\n").await;
        })
        .await;
        let err = SmtpClient::new(options(addr)).connect().await.unwrap_err();
        assert!(matches!(err, ClientError::Rejected { stage: Stage::Connect, .. }), "{err}");
    }

    #[tokio::test]
    async fn hostile_replies_are_protocol_violations() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_REPLY_LINE));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES) + "250 x\r\n";
        for wire in [long, many, "250-a\r\n251 b\r\n".into(), "hello\r\n".into(), "199 early\r\n".into()] {
            let script = wire.clone();
            let (addr, _server) = serve(|mut p, _| async move {
                p.send(&script).await;
                let _ = p.line().await;
            })
            .await;
            let mut client = SmtpClient::new(options(addr));
            let err = client.connect().await.unwrap_err();
            assert!(
                matches!(err, ClientError::ProtocolViolation { stage: Stage::Connect, .. }),
                "{:?}: {err}",
                &wire[..wire.len().min(40)]
            );
            assert!(!client.is_connected());
        }
    }

    #[tokio::test]
    async fn a_close_is_reported_with_its_stage() {
        let (addr, _server) = serve(|mut p, _| async move {
            p.send("220 sim.test\r\n").await;
            p.expect("EHLO").await;
        })
        .await;
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        let err = client.ehlo().await.unwrap_err();
        assert!(matches!(err, ClientError::Closed(Stage::Ehlo)), "{err}");
        let err = client.mail_from("a@b.test").await.unwrap_err();
        assert!(matches!(err, ClientError::NotConnected(Stage::Mail)), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_at_the_greeting() {
        let (tx, rx) = oneshot::channel::<()>();
        let (addr, _server) = serve(|p, _| async move {
            let _open = p;
            let _ = rx.await;
        })
        .await;
        let mut client = SmtpClient::new(ClientOptions { timeout: Duration::from_millis(200), ..options(addr) });
        let err = client.connect().await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout(Stage::Connect)), "{err}");
        drop(tx);
    }

    #[tokio::test]
    async fn only_loopback_servers_are_contacted() {
        let err = SmtpClient::new(options("192.0.2.1:25".parse().unwrap())).connect().await.unwrap_err();
        assert!(matches!(err, ClientError::NotLoopback(_)), "{err}");
    }

    fn tls_acceptor() -> TlsAcceptor {
        let pki = TestPki::default_shared();
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.cert_der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.tenant.chain(), pki.tenant.key())
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }

    /// Greeting, EHLO with STARTTLS, the handshake, then EHLO and QUIT inside TLS. Returns whether
    /// the client presented a certificate, or `None` when the handshake failed.
    async fn tls_peer(mut p: Peer<TcpStream>) -> Option<bool> {
        p.send("220 sim.test ESMTP\r\n").await;
        p.expect("EHLO").await;
        p.send("250-sim.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n").await;
        p.expect("STARTTLS").await;
        p.send("220 2.0.0 SMTP server ready\r\n").await;
        let tls = tls_acceptor().accept(p.io.into_inner()).await.ok()?;
        let presented = tls.get_ref().1.peer_certificates().is_some();
        let mut p = Peer::new(tls);
        p.expect("EHLO").await;
        p.send("250-sim.test\r\n250 PIPELINING\r\n").await;
        p.expect("QUIT").await;
        p.send("221 2.0.0 Bye\r\n").await;
        Some(presented)
    }

    #[tokio::test]
    async fn starttls_upgrades_verifies_and_marks_tls_lines() {
        let pki = TestPki::default_shared();
        let (addr, server) = serve(|p, _| tls_peer(p)).await;
        let config =
            client_config(Some(vec![pki.ca.cert_der().clone()]), Some((pki.gateway.chain(), pki.gateway.key())))
                .unwrap();
        let mut client = SmtpClient::new(ClientOptions {
            tls: TlsMode::Required,
            tls_config: Some(config),
            server_name: "tenant.mailsim.test".into(),
            ..options(addr)
        });
        let caps = client.open().await.unwrap();
        assert!(caps.pipelining && !caps.starttls, "capabilities must come from the EHLO inside TLS");
        let tls = client.tls().unwrap().clone();
        assert!(tls.version.starts_with("TLSv1."), "{}", tls.version);
        client.quit().await.unwrap();
        assert_eq!(server.await.unwrap(), Some(true), "the server saw the client certificate");
        let text = client.transcript().unwrap().to_string();
        assert!(text.contains(" -> STARTTLS\n<-  220 2.0.0 SMTP server ready\n=== TLS started with cipher TLSv1."));
        assert!(text.contains("CN=tenant.mailsim.test"), "{text}");
        assert!(text.contains(" ~> EHLO mailsim.local\n<~  250-sim.test\n<~  250 PIPELINING\n ~> QUIT\n"), "{text}");
    }

    #[tokio::test]
    async fn starttls_with_roots_refuses_a_name_mismatch() {
        let pki = TestPki::default_shared();
        let (addr, _server) = serve(|p, _| tls_peer(p)).await;
        let config = client_config(Some(vec![pki.ca.cert_der().clone()]), None).unwrap();
        let mut client = SmtpClient::new(ClientOptions {
            tls: TlsMode::Required,
            tls_config: Some(config),
            server_name: "mx.elsewhere.test".into(),
            ..options(addr)
        });
        let err = client.open().await.unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)), "{err}");
    }

    #[tokio::test]
    async fn opportunistic_tls_accepts_any_certificate() {
        let (addr, server) = serve(|p, _| tls_peer(p)).await;
        let mut client = SmtpClient::new(ClientOptions {
            tls: TlsMode::Optional,
            server_name: "mx.elsewhere.test".into(),
            ..options(addr)
        });
        client.open().await.unwrap();
        assert!(client.tls().is_some());
        client.quit().await.unwrap();
        assert_eq!(server.await.unwrap(), Some(false));
    }

    #[tokio::test]
    async fn required_tls_fails_when_not_offered_and_optional_goes_on() {
        for mode in [TlsMode::Required, TlsMode::Optional] {
            let (addr, _server) = serve(|mut p, _| async move {
                p.send("220 sim.test\r\n").await;
                p.expect("EHLO").await;
                p.send("250 sim.test\r\n").await;
                let _ = p.line().await;
            })
            .await;
            let result = SmtpClient::new(ClientOptions { tls: mode, ..options(addr) }).open().await;
            match mode {
                TlsMode::Required => assert!(matches!(result, Err(ClientError::TlsNotOffered))),
                _ => assert!(result.is_ok()),
            }
        }
    }

    #[tokio::test]
    async fn data_after_the_starttls_reply_is_refused() {
        let (addr, _server) = serve(|mut p, _| async move {
            p.send("220 sim.test\r\n").await;
            p.expect("EHLO").await;
            p.send("250-sim.test\r\n250 STARTTLS\r\n").await;
            p.expect("STARTTLS").await;
            p.send("220 ready\r\n250 injected\r\n").await;
            let _ = p.line().await;
        })
        .await;
        let mut client = SmtpClient::new(ClientOptions { tls: TlsMode::Required, ..options(addr) });
        let err = client.open().await.unwrap_err();
        assert!(matches!(err, ClientError::ProtocolViolation { stage: Stage::StartTls, .. }), "{err}");
    }

    #[tokio::test]
    async fn large_bodies_are_summarised_in_the_transcript() {
        let (addr, server) = serve(|mut p, _| async move {
            p.send("220 sim.test\r\n").await;
            p.expect("EHLO").await;
            p.send("250 sim.test\r\n").await;
            p.expect("DATA").await;
            p.send("354 go\r\n").await;
            let body = p.body().await;
            p.send("250 ok\r\n").await;
            body.len()
        })
        .await;
        let message: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let mut client = SmtpClient::new(options(addr));
        client.connect().await.unwrap();
        client.ehlo().await.unwrap();
        client.data(message.as_bytes()).await.unwrap();
        let wire_len = server.await.unwrap();
        let text = client.transcript().unwrap().to_string();
        assert!(text.contains(" -> line 9\n=== [90 more lines of data not shown;"), "{text}");
        assert!(text.contains(&format!("{wire_len} bytes in all]\n -> .\n<-  250 ok")), "{text}");
        assert!(!text.contains("line 10\n"));
    }
}
