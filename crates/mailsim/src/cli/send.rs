//! `mailsim send`: one message, swaks-style. Prints the conversation as it happens, with swaks'
//! markers, and exits with swaks' stage-specific status, so scripts written for swaks keep working.
//!
//! Only loopback servers are contacted (docs/architecture.md "The address plan").

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use mailsim_core::reply::Reply;
use mailsim_core::time::Timestamp;
use mailsim_io::client::{ClientError, ClientOptions, SmtpClient, Stage, TlsMode, client_config};
use rustls::ClientConfig;

/// `println!` that ignores a closed stdout (`mailsim ... | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// swaks' exit statuses, as `mailsim send` uses them.
const EXIT_CODES: &str = "\
Exit status (swaks' codes):
   0  the message was accepted (or --quit-after was reached)
   2  could not connect (or the server is not a loopback address)
   6  the server closed the connection unexpectedly
  21  error reading the greeting (banner)
  22  error in EHLO
  23  error in MAIL FROM
  24  no RCPT TO accepted
  25  the server refused DATA
  26  the server did not accept the message after the final dot
  27  the server returned an error to QUIT
  29  error in TLS (STARTTLS refused or not offered with --tls, handshake failed)
  32  error in EHLO after STARTTLS";

/// Where `--quit-after` stops (swaks' names).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuitAfter {
    /// After the greeting.
    #[value(alias = "banner")]
    Connect,
    /// After the first EHLO.
    FirstEhlo,
    /// After the TLS handshake.
    Tls,
    /// After the last EHLO.
    #[value(alias = "helo")]
    Ehlo,
    /// After MAIL FROM.
    #[value(alias = "from")]
    Mail,
    /// After the RCPT TOs.
    #[value(alias = "to")]
    Rcpt,
}

/// `mailsim send` flags.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXIT_CODES)]
pub struct SendArgs {
    /// Server as `HOST[:PORT]` (port 1025 when omitted); loopback addresses only.
    #[arg(long, env = "MAILSIM_SERVER", default_value = "127.0.0.1:1025")]
    pub server: String,
    /// Envelope sender (MAIL FROM); also the From: header of a built message. `<>` for the null sender.
    #[arg(long, env = "MAILSIM_FROM", default_value = "sender@fabrikam.test")]
    pub from: String,
    /// Envelope recipient (RCPT TO); repeat the flag, or separate with commas.
    #[arg(long, env = "MAILSIM_TO", required = true, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Source address to bind before connecting, e.g. a host's 127/8 address such as 127.0.0.10.
    #[arg(long, env = "MAILSIM_LOCAL_INTERFACE")]
    pub local_interface: Option<IpAddr>,
    /// EHLO name.
    #[arg(long, env = "MAILSIM_EHLO", default_value = "mailsim.local")]
    pub ehlo: String,
    /// Require STARTTLS (exit 29 when it is not offered or fails).
    #[arg(long, env = "MAILSIM_TLS", conflicts_with = "tls_optional")]
    pub tls: bool,
    /// Use STARTTLS when offered; go on in plain text otherwise.
    #[arg(long, env = "MAILSIM_TLS_OPTIONAL")]
    pub tls_optional: bool,
    /// Client certificate, CA and SNI.
    #[command(flatten)]
    pub tls_client: TlsClientArgs,
    /// Extra header "Name: value"; replaces a header of that name, in a built message or in --data.
    #[arg(long = "header", env = "MAILSIM_HEADER", value_delimiter = '\n')]
    pub headers: Vec<String>,
    /// Body text of the built message.
    #[arg(long, env = "MAILSIM_BODY", conflicts_with = "data")]
    pub body: Option<String>,
    /// Send this file (a complete message, e.g. an .eml) instead of building one; `-` reads stdin.
    #[arg(long, env = "MAILSIM_DATA")]
    pub data: Option<PathBuf>,
    /// Send MAIL, RCPT and DATA in one flight when the server offers PIPELINING (RFC 2920).
    #[arg(long, env = "MAILSIM_PIPELINE")]
    pub pipeline: bool,
    /// Stop (with QUIT, exit 0) after this stage.
    #[arg(long, env = "MAILSIM_QUIT_AFTER", value_enum)]
    pub quit_after: Option<QuitAfter>,
    /// Seconds to wait for each reply, write or handshake.
    #[arg(long, env = "MAILSIM_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,
    /// Prefix each transcript line with the seconds since the start.
    #[arg(long, env = "MAILSIM_SHOW_TIME")]
    pub show_time: bool,
}

/// Sends one message and prints the transcript; returns swaks' exit status.
pub async fn run(args: SendArgs) -> anyhow::Result<i32> {
    let (server, host) = resolve_server(&args.server).await?;
    let tls_config = args.tls_client.config()?;
    let message = message(&args)?;
    let opts = ClientOptions {
        local_addr: args.local_interface,
        ehlo: args.ehlo.clone(),
        tls: if args.tls {
            TlsMode::Required
        } else if args.tls_optional {
            TlsMode::Optional
        } else {
            TlsMode::None
        },
        tls_config,
        server_name: args.tls_client.tls_sni.clone().unwrap_or(host),
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..ClientOptions::new(server)
    };
    let mut session = Session { client: SmtpClient::new(opts), printed: 0, show_time: args.show_time };
    let code = session.converse(&args, &message).await;
    session.print();
    Ok(code)
}

/// A client plus how much of its transcript is already on the screen.
struct Session {
    client: SmtpClient,
    printed: usize,
    show_time: bool,
}

impl Session {
    fn print(&mut self) {
        let Some(t) = self.client.transcript() else { return };
        for line in &t.lines[self.printed..] {
            if self.show_time {
                say!("[{:>8.3}] {line}", line.at.as_secs_f64());
            } else {
                say!("{line}");
            }
        }
        self.printed = t.lines.len();
    }

    /// Prints the error, says goodbye if the connection is still up, and returns `code` (6 when
    /// the server simply went away, as swaks does).
    async fn fail(&mut self, code: i32, err: &ClientError) -> i32 {
        let code = match err {
            ClientError::Closed(_) => 6,
            _ => code,
        };
        self.fail_with(code, &err.to_string()).await
    }

    async fn fail_with(&mut self, code: i32, why: &str) -> i32 {
        self.print();
        say!("*** {why}");
        if self.client.is_connected() {
            let _ = self.client.quit().await;
            self.print();
        }
        code
    }

    async fn quit(&mut self) -> i32 {
        let result = self.client.quit().await;
        self.print();
        match result {
            Ok(reply) if !is_2xx(&reply) => 27,
            _ => 0,
        }
    }

    async fn converse(&mut self, args: &SendArgs, message: &[u8]) -> i32 {
        let stop = |at: QuitAfter| args.quit_after == Some(at);
        if let Err(e) = self.client.connect().await {
            let code = if self.client.local_addr().is_some() { 21 } else { 2 };
            return self.fail(code, &e).await;
        }
        self.print();
        if stop(QuitAfter::Connect) {
            return self.quit().await;
        }
        let caps = match self.client.ehlo().await {
            Ok(caps) => caps,
            Err(e) => return self.fail(22, &e).await,
        };
        self.print();
        if stop(QuitAfter::FirstEhlo) {
            return self.quit().await;
        }
        let want_tls = args.tls || args.tls_optional;
        if want_tls && !caps.starttls {
            if args.tls {
                return self.fail(29, &ClientError::TlsNotOffered).await;
            }
            self.client.note("STARTTLS not offered; going on without TLS");
        } else if want_tls {
            match self.client.starttls().await {
                Ok(_) => {}
                Err(e @ ClientError::Rejected { .. }) if !args.tls => {
                    self.client.note(format!("STARTTLS refused ({e}); going on without TLS"));
                }
                Err(e) => return self.fail(29, &e).await,
            }
            self.print();
            if self.client.tls().is_some() {
                if stop(QuitAfter::Tls) {
                    return self.quit().await;
                }
                if let Err(e) = self.client.ehlo().await {
                    return self.fail(32, &e).await;
                }
                self.print();
            }
        }
        if stop(QuitAfter::Ehlo) || stop(QuitAfter::Tls) {
            return self.quit().await;
        }
        if args.pipeline && args.quit_after.is_none() {
            return self.pipelined(args, message).await;
        }
        if let Err(e) = self.client.mail_from(&args.from).await {
            return self.fail(23, &e).await;
        }
        self.print();
        if stop(QuitAfter::Mail) {
            return self.quit().await;
        }
        let mut accepted = 0;
        for rcpt in &args.to {
            match self.client.rcpt_to(rcpt).await {
                Ok(_) => accepted += 1,
                Err(ClientError::Rejected { .. }) => {}
                Err(e) => return self.fail(24, &e).await,
            }
            self.print();
        }
        if accepted == 0 {
            return self.fail_with(24, "No recipients were accepted").await;
        }
        if stop(QuitAfter::Rcpt) {
            return self.quit().await;
        }
        match self.client.data(message).await {
            Ok(_) => {}
            Err(e) if e.stage() == Some(Stage::Data) => return self.fail(25, &e).await,
            Err(e) => return self.fail(26, &e).await,
        }
        self.print();
        self.quit().await
    }

    async fn pipelined(&mut self, args: &SendArgs, message: &[u8]) -> i32 {
        let rcpts: Vec<&str> = args.to.iter().map(String::as_str).collect();
        let replies = match self.client.send_transaction(&args.from, &rcpts, message, true).await {
            Ok(replies) => replies,
            Err(e) => {
                let code = match e.stage() {
                    Some(Stage::Mail) => 23,
                    Some(Stage::Rcpt) => 24,
                    Some(Stage::Data) => 25,
                    _ => 26,
                };
                return self.fail(code, &e).await;
            }
        };
        self.print();
        let failure = if !is_2xx(&replies.mail) {
            Some((23, Stage::Mail, replies.mail.clone()))
        } else if replies.accepted_rcpts() == 0 {
            return self.fail_with(24, "No recipients were accepted").await;
        } else if let Some(data) = replies.data.as_ref().filter(|r| r.code.get() / 100 != 3) {
            Some((25, Stage::Data, data.clone()))
        } else {
            replies.dot.as_ref().filter(|r| !is_2xx(r)).map(|dot| (26, Stage::Dot, dot.clone()))
        };
        match failure {
            Some((code, stage, reply)) => self.fail(code, &ClientError::Rejected { stage, reply }).await,
            None => self.quit().await,
        }
    }
}

fn is_2xx(reply: &Reply) -> bool {
    reply.code.get() / 100 == 2
}

/// `HOST[:PORT]` (port 1025 when omitted; `[::1]:PORT` for IPv6) to a loopback socket address,
/// plus the host part (the default TLS server name). Anything that is not loopback is refused:
/// mailsim never sends traffic elsewhere.
pub(crate) async fn resolve_server(spec: &str) -> anyhow::Result<(SocketAddr, String)> {
    let spec = spec.trim();
    let (host, port) = match spec.parse::<SocketAddr>() {
        Ok(addr) => (addr.ip().to_string(), addr.port()),
        Err(_) => match spec.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => {
                let port = port.parse::<u16>().with_context(|| format!("bad port in --server {spec:?}"))?;
                (host.trim_start_matches('[').trim_end_matches(']').to_string(), port)
            }
            _ => (spec.trim_start_matches('[').trim_end_matches(']').to_string(), 1025),
        },
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("cannot resolve --server {spec:?}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(addr) => Ok((*addr, host)),
        None if addrs.is_empty() => bail!("--server {spec:?} resolves to no address"),
        None => bail!(
            "--server {spec:?} is not a loopback address ({}): mailsim only talks to 127.0.0.0/8 and ::1",
            addrs[0].ip()
        ),
    }
}

/// The TLS configuration the flags ask for, or `None` for the default (any server certificate,
/// no client certificate).
/// The TLS client flags `send` and `bench` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Client certificate to present with STARTTLS, PEM (leaf first; a chain is allowed).
    #[arg(long, env = "MAILSIM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM.
    #[arg(long, env = "MAILSIM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Verify the server's certificate against these CA certificates (PEM); without it any
    /// certificate is accepted, as swaks does without --tls-verify.
    #[arg(long, env = "MAILSIM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Name sent as SNI and verified with --tls-ca (default: the host part of --server).
    #[arg(long, env = "MAILSIM_TLS_SNI")]
    pub tls_sni: Option<String>,
}

impl TlsClientArgs {
    /// The client configuration the flags ask for; `None` when they ask for nothing special.
    pub(crate) fn config(&self) -> anyhow::Result<Option<Arc<ClientConfig>>> {
        if self.tls_ca.is_none() && self.tls_cert.is_none() {
            return Ok(None);
        }
        let roots = self.tls_ca.as_deref().map(mailsim_io::tls::load_pem_chain).transpose()?;
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some((mailsim_io::tls::load_pem_chain(cert)?, mailsim_io::tls::load_pem_key(key)?))
            }
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        Ok(Some(client_config(roots, identity).context("building the TLS client configuration")?))
    }
}

/// The message to send: --data as it is, or a small message built from the flags; --header
/// lines replace or add headers in either.
fn message(args: &SendArgs) -> anyhow::Result<Vec<u8>> {
    let base = match &args.data {
        Some(path) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading the message from stdin")?;
            buf
        }
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => build_message(args, now()),
    };
    let mut message = base;
    for header in &args.headers {
        let Some((name, _)) = header.split_once(':') else {
            bail!("--header {header:?} is not \"Name: value\"");
        };
        message = set_header(&message, name.trim(), header.trim_end());
    }
    Ok(message)
}

fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp::from_millis(ms)
}

/// swaks' default message: Date, To, From, Subject, Message-Id, X-Mailer and a one-line body.
fn build_message(args: &SendArgs, now: Timestamp) -> Vec<u8> {
    let date = now.rfc5322();
    let from = args.from.trim_start_matches('<').trim_end_matches('>');
    let domain = args.ehlo.trim_start_matches('[').trim_end_matches(']');
    let body = args.body.clone().unwrap_or_else(|| "This is a test mailing".into());
    let mut text = format!(
        "Date: {date}\r\nTo: {}\r\nFrom: {}\r\nSubject: test {date}\r\nMessage-Id: <{}.{}@{domain}>\r\nX-Mailer: mailsim send\r\n\r\n",
        args.to.join(", "),
        if from.is_empty() { "<>" } else { from },
        now.as_millis(),
        std::process::id(),
    );
    text.push_str(&body.replace("\\n", "\r\n"));
    text.push_str("\r\n");
    text.into_bytes()
}

/// Replaces the first header called `name` (with its continuation lines) by `line`, or adds
/// `line` at the end of the header section.
fn set_header(message: &[u8], name: &str, line: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let (head, sep, body) = match text.find("\r\n\r\n") {
        Some(i) if !text[..i].contains("\n\n") => (&text[..i], "\r\n\r\n", &text[i + 4..]),
        _ => match text.find("\n\n") {
            Some(i) => (&text[..i], "\n\n", &text[i + 2..]),
            None => (&text[..], "\r\n\r\n", ""),
        },
    };
    let nl = if sep == "\n\n" { "\n" } else { "\r\n" };
    let mut out: Vec<String> = Vec::new();
    let mut replaced = false;
    let mut skipping = false;
    for l in head.split(nl).filter(|l| !l.is_empty()) {
        if skipping && l.starts_with([' ', '\t']) {
            continue;
        }
        skipping = false;
        let is_it = l.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name));
        if is_it && !replaced {
            out.push(line.to_string());
            replaced = true;
            skipping = true;
        } else {
            out.push(l.to_string());
        }
    }
    if !replaced {
        out.push(line.to_string());
    }
    let mut result = out.join(nl);
    result.push_str(sep);
    result.push_str(body);
    result.into_bytes()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use clap::Parser;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SendArgs,
    }

    fn parse(argv: &[&str]) -> SendArgs {
        Cli::try_parse_from(std::iter::once("send").chain(argv.iter().copied())).unwrap().args
    }

    #[test]
    fn headers_are_replaced_or_added() {
        let crlf = b"Subject: old\r\nX-A: 1\r\n  folded\r\nTo: b\r\n\r\nbody\r\n";
        let out = set_header(crlf, "x-a", "X-A: 2");
        assert_eq!(out, b"Subject: old\r\nX-A: 2\r\nTo: b\r\n\r\nbody\r\n");
        let out = set_header(crlf, "X-New", "X-New: yes");
        assert_eq!(out, b"Subject: old\r\nX-A: 1\r\n  folded\r\nTo: b\r\nX-New: yes\r\n\r\nbody\r\n");
        let lf = b"Subject: old\nTo: b\n\nbody\n";
        assert_eq!(set_header(lf, "Subject", "Subject: new"), b"Subject: new\nTo: b\n\nbody\n");
    }

    #[test]
    fn the_built_message_has_swaks_headers() {
        let args = parse(&["--to", "a@contoso.test,b@contoso.test", "--body", "hello\\nworld"]);
        let text = String::from_utf8(build_message(&args, Timestamp::from_secs(1_700_000_000))).unwrap();
        assert!(text.starts_with("Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nTo: a@contoso.test, b@contoso.test\r\n"));
        assert!(text.contains("\r\nFrom: sender@fabrikam.test\r\nSubject: test Tue, 14 Nov 2023"));
        assert!(text.contains("\r\nMessage-Id: <1700000000000."));
        assert!(text.ends_with("\r\n\r\nhello\r\nworld\r\n"));
    }

    #[tokio::test]
    async fn only_loopback_servers_are_accepted() {
        assert_eq!(resolve_server("127.0.0.5:25").await.unwrap().0, "127.0.0.5:25".parse().unwrap());
        assert_eq!(resolve_server("127.0.0.5").await.unwrap().0, "127.0.0.5:1025".parse().unwrap());
        assert_eq!(resolve_server("[::1]:26").await.unwrap().0, "[::1]:26".parse().unwrap());
        let (addr, host) = resolve_server("localhost:2525").await.unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 2525 && host == "localhost");
        for bad in ["192.0.2.1:25", "10.0.0.1", "[2001:db8::1]:25"] {
            assert!(resolve_server(bad).await.is_err(), "{bad}");
        }
    }

    /// A one-connection peer that answers each command from `replies` (keyed by command prefix).
    async fn peer(replies: &'static [(&'static str, &'static str)]) -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut io = BufReader::new(tcp);
            io.get_mut().write_all(b"220 peer.test ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                let key = if in_data {
                    if line != ".\r\n" {
                        continue;
                    }
                    "."
                } else {
                    line.as_str()
                };
                let reply = replies
                    .iter()
                    .find(|(k, _)| key.starts_with(k))
                    .map(|(_, r)| *r)
                    .unwrap_or(if key.starts_with("DATA") { "354 go\r\n" } else { "250 ok\r\n" });
                in_data = key.starts_with("DATA") && reply.starts_with('3');
                io.get_mut().write_all(reply.as_bytes()).await.unwrap();
                if key.starts_with("QUIT") {
                    return;
                }
            }
        });
        addr
    }

    async fn exit_code(replies: &'static [(&'static str, &'static str)], extra: &[&str]) -> i32 {
        let addr = peer(replies).await.to_string();
        let mut argv = vec!["--server", &addr, "--to", "a@contoso.test", "--timeout", "5"];
        argv.extend_from_slice(extra);
        run(parse(&argv)).await.unwrap()
    }

    #[tokio::test]
    async fn exit_status_follows_swaks_per_stage() {
        const EHLO: (&str, &str) = ("EHLO", "250-peer.test\r\n250 PIPELINING\r\n");
        assert_eq!(exit_code(&[EHLO], &[]).await, 0);
        assert_eq!(exit_code(&[("EHLO", "550 no\r\n")], &[]).await, 22);
        assert_eq!(exit_code(&[EHLO, ("MAIL", "550 5.7.1 no\r\n")], &[]).await, 23);
        assert_eq!(exit_code(&[EHLO, ("RCPT", "550 5.4.1 no\r\n")], &[]).await, 24);
        assert_eq!(exit_code(&[EHLO, ("DATA", "554 no\r\n")], &[]).await, 25);
        assert_eq!(exit_code(&[EHLO, ("DATA", "354 go\r\n"), (".", "552 5.3.4 too big\r\n")], &[]).await, 26);
        assert_eq!(exit_code(&[EHLO], &["--tls"]).await, 29);
        assert_eq!(exit_code(&[EHLO], &["--tls-optional"]).await, 0);
        assert_eq!(exit_code(&[EHLO, ("RCPT", "550 5.4.1 no\r\n")], &["--pipeline"]).await, 24);
        assert_eq!(exit_code(&[EHLO], &["--pipeline"]).await, 0);
        assert_eq!(exit_code(&[EHLO, ("MAIL", "550 no\r\n")], &["--quit-after", "ehlo"]).await, 0);
        assert_eq!(exit_code(&[EHLO, ("QUIT", "500 what\r\n")], &[]).await, 27);
        // Nothing listens on port 1 of 127.0.0.1.
        let refused = parse(&["--server", "127.0.0.1:1", "--to", "a@contoso.test"]);
        assert_eq!(run(refused).await.unwrap(), 2);
    }
}
