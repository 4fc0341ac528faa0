//! One connection's SMTP conversation, server side: reads commands and content, answers as the
//! script says for each stage, upgrades to TLS on STARTTLS, and records a `C:`/`S:` transcript and
//! the messages it accepts. It only does what it is told; it decides nothing about EXO semantics.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::forward::forward;
use super::script::resolve;
use super::tls::tls_info;
use super::{
    Behaviour, MAX_COMMAND_LINE, MAX_RECIPIENTS, OpenGuard, PeerScript, PeerTlsInfo, ReceivedMessage, Shared, StartTls,
};

pub(super) async fn serve(mut guard: OpenGuard, tcp: TcpStream, client_ip: IpAddr) {
    // Replies to pipelined commands are written one by one; without this, Nagle's algorithm and
    // the client's delayed ACK stall every transaction by ~40 ms.
    let _ = tcp.set_nodelay(true);
    let local_ip = tcp.local_addr().map(|a| a.ip()).unwrap_or(client_ip);
    let mut conn = Conn {
        shared: guard.shared.clone(),
        id: guard.id,
        local_ip,
        io: Io::Plain(tcp),
        buf: Vec::new(),
        client_ip,
        tls: None,
        helo: None,
        greeted: false,
        txn: None,
    };
    let end = match conn.run().await {
        Ok(()) => "! closed".to_string(),
        Err(e) => format!("! closed: {e}"),
    };
    conn.log(end);
    guard.finished = true;
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Io {
    /// Appends what is available to `buf`.
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.reserve(16 * 1024);
        match self {
            Io::Plain(s) => s.read_buf(buf).await,
            Io::Tls(s) => s.read_buf(buf).await,
            Io::Gone => Ok(0),
        }
    }
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(bytes).await,
            Io::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Io::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// What the script says for one stage, after delays are served.
enum Staged {
    Default,
    Custom(u16, String),
    Drop,
}

/// Whether the connection goes on after a command.
enum Flow {
    Continue,
    Close,
}

struct Txn {
    mail_from: String,
    rcpt_to: Vec<String>,
}

struct Conn {
    shared: Arc<Shared>,
    id: usize,
    local_ip: IpAddr,
    io: Io,
    buf: Vec<u8>,
    client_ip: IpAddr,
    tls: Option<PeerTlsInfo>,
    helo: Option<String>,
    greeted: bool,
    txn: Option<Txn>,
}

fn is_positive(code: u16) -> bool {
    (200..300).contains(&code)
}

impl Conn {
    fn log(&self, line: String) {
        self.shared.log(self.id, line);
    }

    fn script(&self) -> Arc<PeerScript> {
        self.shared.lock().script.clone()
    }

    async fn send_lines(&mut self, code: u16, lines: &[String]) -> io::Result<()> {
        let mut wire = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let text = if line.is_empty() && sep == ' ' { format!("{code}") } else { format!("{code}{sep}{line}") };
            self.log(format!("S: {text}"));
            wire.push_str(&text);
            wire.push_str("\r\n");
        }
        let timeout = self.script().idle_timeout;
        match tokio::time::timeout(timeout, self.io.write_all(wire.as_bytes())).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    /// Sends `code text`; `\n` in `text` makes a multi-line reply.
    async fn send(&mut self, code: u16, text: &str) -> io::Result<()> {
        let lines: Vec<String> = text.split('\n').map(|l| l.trim_end_matches('\r').to_string()).collect();
        self.send_lines(code, &lines).await
    }

    /// Resolves the stage's behaviour (advancing its sequence counter) and serves any delay.
    async fn stage(&mut self, key: String, pick: impl Fn(&PeerScript) -> &Behaviour) -> Staged {
        let resolved = {
            let mut state = self.shared.lock();
            let script = state.script.clone();
            let counter = state.counters.entry(key).or_insert(0);
            let n = *counter;
            *counter += 1;
            resolve(pick(&script), n).clone()
        };
        match resolved {
            Behaviour::Accept | Behaviour::Sequence(_) => Staged::Default,
            Behaviour::Reply(code, text) => Staged::Custom(code, text),
            Behaviour::Delay(d) => {
                self.log(format!("! delay {} ms", d.as_millis()));
                tokio::time::sleep(d).await;
                Staged::Default
            }
            Behaviour::Drop => {
                self.log("! drop".into());
                Staged::Drop
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let timeout = self.script().idle_timeout;
        match tokio::time::timeout(timeout, self.io.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")),
        }
    }

    /// The next command line without its line ending; `None` at end of stream.
    async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                if lf + 1 > MAX_COMMAND_LINE {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                }
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_COMMAND_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads message content up to CRLF.CRLF, dot-unstuffing; `Ok(None)` if it exceeded `max`
    /// (the rest is read and discarded). Bare LF is content, not a line end (RFC 5321 §2.3.8).
    async fn read_data(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::new();
        let mut too_big = false;
        let mut at_line_start = true;
        loop {
            let crlf = self.buf.windows(2).position(|w| w == b"\r\n");
            let (take, consumed, ends_line) = match crlf {
                Some(pos) => (pos, pos + 2, true),
                // A long line without CRLF yet: pass it on in pieces, keeping a trailing CR.
                None if self.buf.len() > 64 * 1024 => (self.buf.len() - 1, self.buf.len() - 1, false),
                None => {
                    if self.fill().await? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed during DATA"));
                    }
                    continue;
                }
            };
            let line = &self.buf[..take];
            if at_line_start && ends_line && line == b"." {
                self.buf.drain(..consumed);
                return Ok((!too_big).then_some(data));
            }
            let line = if at_line_start && line.first() == Some(&b'.') { &line[1..] } else { line };
            if !too_big && data.len() + line.len() + 2 > max {
                too_big = true;
                data = Vec::new();
            }
            if !too_big {
                data.extend_from_slice(line);
                if ends_line {
                    data.extend_from_slice(b"\r\n");
                }
            }
            self.buf.drain(..consumed);
            at_line_start = ends_line;
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        let script = self.script();
        let refusing = match self.stage("connect".into(), |s| &s.on_connect).await {
            Staged::Drop => return Ok(()),
            Staged::Default => {
                self.send(220, &format!("{} ESMTP mailsim-testkit scripted peer", script.host_name)).await?;
                false
            }
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                !is_positive(code)
            }
        };
        loop {
            let line = match self.read_line().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.log("! client closed".into());
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.log("C: <line too long>".into());
                    return self.send(500, "5.5.2 Line too long").await;
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let host = self.script().host_name.clone();
                    return self.send(421, &format!("4.4.2 {host} Error: timeout exceeded")).await;
                }
                Err(e) => return Err(e),
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            self.log(format!("C: {line}"));
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            let flow = if refusing && verb != "QUIT" {
                self.send(503, "5.5.1 Bad sequence of commands").await?;
                Flow::Continue
            } else {
                match verb.as_str() {
                    "EHLO" | "HELO" => self.ehlo(verb == "EHLO", &arg).await?,
                    "STARTTLS" => self.starttls(&arg).await?,
                    "MAIL" => self.mail(&arg).await?,
                    "RCPT" => self.rcpt(&arg).await?,
                    "DATA" => self.data(&arg).await?,
                    "RSET" => {
                        self.txn = None;
                        self.send(250, "2.0.0 OK").await?;
                        Flow::Continue
                    }
                    "NOOP" => {
                        self.send(250, "2.0.0 OK").await?;
                        Flow::Continue
                    }
                    "QUIT" => {
                        self.send(221, "2.0.0 Bye").await?;
                        Flow::Close
                    }
                    _ => {
                        self.send(500, "5.5.2 Command not recognized").await?;
                        Flow::Continue
                    }
                }
            };
            if let Flow::Close = flow {
                return Ok(());
            }
        }
    }

    async fn ehlo(&mut self, extended: bool, arg: &str) -> io::Result<Flow> {
        if arg.is_empty() {
            self.send(501, "5.5.4 Syntax: EHLO hostname").await?;
            return Ok(Flow::Continue);
        }
        let script = self.script();
        match self.stage("ehlo".into(), |s| &s.on_ehlo).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default if extended => {
                let mut lines = vec![
                    format!("{} Hello {arg}", script.host_name),
                    "PIPELINING".into(),
                    "8BITMIME".into(),
                    format!("SIZE {}", script.max_message_size),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if script.starttls != StartTls::None && self.tls.is_none() {
                    lines.push("STARTTLS".into());
                }
                self.send_lines(250, &lines).await?;
            }
            Staged::Default => self.send(250, &script.host_name).await?,
        }
        self.greeted = true;
        self.helo = Some(arg.to_string());
        self.txn = None;
        Ok(Flow::Continue)
    }

    async fn starttls(&mut self, arg: &str) -> io::Result<Flow> {
        let (policy, config) = {
            let state = self.shared.lock();
            (state.script.starttls, state.tls.clone())
        };
        let config = match (policy, config) {
            (StartTls::None, _) | (_, None) => {
                self.send(502, "5.5.1 Command not implemented").await?;
                return Ok(Flow::Continue);
            }
            (_, Some(config)) => config,
        };
        if !arg.is_empty() {
            self.send(501, "5.5.4 Syntax: STARTTLS").await?;
            return Ok(Flow::Continue);
        }
        if self.tls.is_some() {
            self.send(503, "5.5.1 TLS already active").await?;
            return Ok(Flow::Continue);
        }
        if !self.greeted {
            self.send(503, "5.5.1 Send EHLO first").await?;
            return Ok(Flow::Continue);
        }
        // Plaintext pipelined after STARTTLS must not be read as if it came inside TLS
        // (CVE-2011-0411 class); it is discarded and noted.
        if !self.buf.is_empty() {
            self.log(format!("! discarded {} plaintext bytes pipelined after STARTTLS", self.buf.len()));
            self.buf.clear();
        }
        self.send(220, "2.0.0 Ready to start TLS").await?;
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Ok(Flow::Close);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let timeout = self.script().idle_timeout;
        let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.log(format!("! tls handshake failed: {e}"));
                return Ok(Flow::Close);
            }
            Err(_) => {
                self.log("! tls handshake timed out".into());
                return Ok(Flow::Close);
            }
        };
        let info = tls_info(tls.get_ref().1);
        self.log(format!(
            "! tls {} {} client-cert={} sni={}",
            info.version,
            info.cipher,
            info.client_cert_subject.as_deref().unwrap_or("-"),
            info.sni.as_deref().unwrap_or("-"),
        ));
        self.io = Io::Tls(Box::new(tls));
        self.tls = Some(info);
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.greeted = false;
        self.helo = None;
        self.txn = None;
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        let script = self.script();
        if !self.greeted {
            self.send(503, "5.5.1 Send EHLO/HELO first").await?;
            return Ok(Flow::Continue);
        }
        if script.starttls == StartTls::Require && self.tls.is_none() {
            self.send(530, "5.7.0 Must issue a STARTTLS command first").await?;
            return Ok(Flow::Continue);
        }
        if self.txn.is_some() {
            self.send(503, "5.5.1 Sender already specified").await?;
            return Ok(Flow::Continue);
        }
        let Some((from, params)) = parse_path(arg, "FROM:") else {
            self.send(501, "5.5.4 Syntax: MAIL FROM:<address>").await?;
            return Ok(Flow::Continue);
        };
        let size = params
            .split_whitespace()
            .find_map(|p| p.get(..5).filter(|k| k.eq_ignore_ascii_case("SIZE=")).map(|_| &p[5..]))
            .and_then(|v| v.parse::<u64>().ok());
        if size.is_some_and(|s| s > script.max_message_size as u64) {
            self.send(552, "5.3.4 Message size exceeds fixed maximum message size").await?;
            return Ok(Flow::Continue);
        }
        match self.stage("mail".into(), |s| &s.on_mail).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default => self.send(250, &format!("2.1.0 Sender <{from}> OK")).await?,
        }
        self.txn = Some(Txn { mail_from: from, rcpt_to: Vec::new() });
        Ok(Flow::Continue)
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        let Some(count) = self.txn.as_ref().map(|t| t.rcpt_to.len()) else {
            self.send(503, "5.5.1 Need MAIL command").await?;
            return Ok(Flow::Continue);
        };
        let Some((to, _)) = parse_path(arg, "TO:").filter(|(to, _)| !to.is_empty()) else {
            self.send(501, "5.5.4 Syntax: RCPT TO:<address>").await?;
            return Ok(Flow::Continue);
        };
        if count >= MAX_RECIPIENTS {
            self.send(452, "4.5.3 Too many recipients").await?;
            return Ok(Flow::Continue);
        }
        let script = self.script();
        let override_key = script.on_rcpt_for.keys().find(|k| k.eq_ignore_ascii_case(&to)).cloned();
        let staged = match override_key {
            Some(key) => {
                let counter = format!("rcpt:{}", key.to_ascii_lowercase());
                self.stage(counter, move |s| s.on_rcpt_for.get(&key).unwrap_or(&s.on_rcpt)).await
            }
            None => self.stage("rcpt".into(), |s| &s.on_rcpt).await,
        };
        match staged {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                if !is_positive(code) {
                    return Ok(Flow::Continue);
                }
            }
            Staged::Default => self.send(250, &format!("2.1.5 Recipient <{to}> OK")).await?,
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.rcpt_to.push(to);
        }
        Ok(Flow::Continue)
    }

    async fn data(&mut self, arg: &str) -> io::Result<Flow> {
        match &self.txn {
            None => {
                self.send(503, "5.5.1 Need MAIL command").await?;
                return Ok(Flow::Continue);
            }
            Some(txn) if txn.rcpt_to.is_empty() => {
                self.send(554, "5.5.1 No valid recipients").await?;
                return Ok(Flow::Continue);
            }
            Some(_) if !arg.is_empty() => {
                self.send(501, "5.5.4 Syntax: DATA").await?;
                return Ok(Flow::Continue);
            }
            Some(_) => {}
        }
        match self.stage("data".into(), |s| &s.on_data).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(354, text) => self.send(354, &text).await?,
            Staged::Custom(code, text) => {
                self.send(code, &text).await?;
                self.txn = None;
                return Ok(Flow::Continue);
            }
            Staged::Default => self.send(354, "End data with <CR><LF>.<CR><LF>").await?,
        }
        let script = self.script();
        let data = match self.read_data(script.max_message_size).await {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return self
                    .send(421, &format!("4.4.2 {} Error: timeout exceeded", script.host_name))
                    .await
                    .map(|()| Flow::Close);
            }
            Err(e) => return Err(e),
        };
        let txn = self.txn.take().expect("checked above");
        let Some(data) = data else {
            self.log("! data over the size limit".into());
            self.log("C: .".into());
            self.send(552, "5.3.4 Message size exceeds fixed maximum message size").await?;
            return Ok(Flow::Continue);
        };
        self.log(format!("! data {} bytes", data.len()));
        self.log("C: .".into());
        let reply = match self.stage("end_of_data".into(), |s| &s.on_end_of_data).await {
            Staged::Drop => return Ok(Flow::Close),
            Staged::Custom(code, text) => (code, text, is_positive(code)),
            Staged::Default => (250, String::new(), true),
        };
        if reply.2 {
            let message = ReceivedMessage {
                id: 0,
                mail_from: txn.mail_from,
                rcpt_to: txn.rcpt_to,
                data,
                tls: self.tls.clone(),
                client_ip: self.client_ip,
                helo: self.helo.clone(),
                connection: self.id,
            };
            if let Some(target) = self.script().forward_to {
                let host_name = self.script().host_name.clone();
                let relay = self.script().relay.clone();
                let source = self.local_ip;
                let copy = message.clone();
                let shared = self.shared.clone();
                let id = self.id;
                tokio::spawn(async move {
                    let outcome = forward(source, target, &host_name, relay.as_ref(), &copy).await;
                    shared.log(id, format!("! forwarded to {target}: {outcome}"));
                });
            }
            let (n, file) = self.shared.lock().receive(message);
            if let Some((path, data)) = file {
                // Written before the reply, so that a 250 means the file is there.
                if let Err(e) = tokio::fs::write(&path, &data).await {
                    self.log(format!("! could not write {}: {e}", path.display()));
                }
            }
            self.shared.changed.notify_waiters();
            if reply.1.is_empty() {
                self.send(250, &format!("2.6.0 Message {n} accepted")).await?;
                return Ok(Flow::Continue);
            }
        }
        self.send(reply.0, &reply.1).await?;
        Ok(Flow::Continue)
    }
}

/// Parses `FROM:<addr> params` (or `TO:`), keyword case-insensitive, brackets optional.
pub(super) fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some((inner[..end].to_string(), inner[end + 1..].trim()))
    } else {
        let (addr, params) = rest.split_once(' ').unwrap_or((rest, ""));
        (!addr.is_empty()).then(|| (addr.to_string(), params.trim()))
    }
}
