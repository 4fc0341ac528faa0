//! A scripted SMTP sender: connects from a host's own loopback address, optionally upgrades with
//! STARTTLS presenting a chosen certificate, writes exactly the bytes a test gives it, and records
//! the transcript (`C:`/`S:` lines). Written independently of `mailsim-io` so that a bug in
//! mailsim's own client or server code cannot hide in the double that checks it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::certs::LeafCert;

/// A reply as the sender read it: code and the text of each line (after `NNN-`/`NNN `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawReply {
    /// The reply code.
    pub code: u16,
    /// Line texts, without code and separator.
    pub lines: Vec<String>,
}

impl RawReply {
    /// The last line in wire form without CRLF, e.g. `550 5.7.51 TenantInboundAttribution; ...`.
    pub fn last_line(&self) -> String {
        format!("{} {}", self.code, self.lines.last().map(String::as_str).unwrap_or(""))
    }
    /// All lines in wire form, joined by `\n`.
    pub fn wire(&self) -> String {
        let last = self.lines.len().saturating_sub(1);
        let sep = |i| if i == last { ' ' } else { '-' };
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}{}{}", self.code, sep(i), l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Errors of the scripted sender.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// TLS error.
    #[error("tls: {0}")]
    Tls(String),
    /// The server closed the connection.
    #[error("connection closed by server")]
    Closed,
    /// No reply in time.
    #[error("timed out waiting for a reply")]
    Timeout,
    /// Not an SMTP reply.
    #[error("malformed reply line {0:?}")]
    Malformed(String),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// A certificate chain and key a sender presents.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

impl From<&LeafCert> for ClientIdentity {
    fn from(cert: &LeafCert) -> Self {
        Self { chain: cert.chain(), key_pkcs8: cert.key_der.secret_pkcs8_der().to_vec() }
    }
}

/// How the sender does TLS.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Certificate (and key) to present, if any.
    pub client_cert: Option<ClientIdentity>,
    /// Roots to verify the server against; `None` accepts any server certificate.
    pub roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// Offer only TLS 1.2.
    pub tls12_only: bool,
}

/// One scripted SMTP client connection.
pub struct ScriptedSender {
    stream: Stream,
    buf: Vec<u8>,
    transcript: Vec<String>,
    timeout: Duration,
}

impl ScriptedSender {
    /// Connects from `source` (bound before connecting) to `server` and reads the greeting.
    pub async fn connect(source: IpAddr, server: SocketAddr) -> Result<(Self, RawReply), SenderError> {
        let socket = if source.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(server).await?;
        let mut me = Self {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            transcript: Vec::new(),
            timeout: Duration::from_secs(10),
        };
        let greeting = me.read_reply().await?;
        Ok((me, greeting))
    }

    /// The transcript so far: `C: ` lines sent, `S: ` lines received, `! ` events.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// Sets the reply timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Writes raw bytes (no CRLF added). Recorded per line.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SenderError> {
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            self.transcript.push(format!("C: {}", line.trim_end_matches(['\r', '\n'])));
        }
        match &mut self.stream {
            Stream::Plain(s) => write_all(s, bytes).await,
            Stream::Tls(s) => write_all(s.as_mut(), bytes).await,
            Stream::Gone => Err(SenderError::Closed),
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<RawReply, SenderError> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    /// Reads one complete (possibly multi-line) reply.
    pub async fn read_reply(&mut self) -> Result<RawReply, SenderError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            self.transcript.push(format!("S: {line}"));
            let code: u16 =
                line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| SenderError::Malformed(line.clone()))?;
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep == b' ' {
                return Ok(RawReply { code, lines });
            }
            if sep != b'-' {
                return Err(SenderError::Malformed(line));
            }
        }
    }

    async fn read_line(&mut self) -> Result<String, SenderError> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=lf).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string());
            }
            let mut chunk = [0u8; 4096];
            let read = match &mut self.stream {
                Stream::Plain(s) => tokio::time::timeout(self.timeout, s.read(&mut chunk)).await,
                Stream::Tls(s) => tokio::time::timeout(self.timeout, s.read(&mut chunk)).await,
                Stream::Gone => return Err(SenderError::Closed),
            };
            match read {
                Err(_) => return Err(SenderError::Timeout),
                Ok(Ok(0)) => return Err(SenderError::Closed),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Whether the server has closed the connection (reads until EOF or timeout).
    pub async fn is_closed(&mut self) -> bool {
        matches!(self.read_line().await, Err(SenderError::Closed | SenderError::Io(_)))
    }

    /// Sends STARTTLS and, on a 220, runs the handshake with `options`. Returns the STARTTLS reply.
    pub async fn starttls(&mut self, options: &TlsOptions, sni: &str) -> Result<RawReply, SenderError> {
        let reply = self.command("STARTTLS").await?;
        if reply.code != 220 {
            return Ok(reply);
        }
        self.handshake(options, sni).await?;
        Ok(reply)
    }

    /// Runs the TLS handshake now (for tests that pipeline bytes before it).
    pub async fn handshake(&mut self, options: &TlsOptions, sni: &str) -> Result<(), SenderError> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(SenderError::Tls("already TLS".into()));
        };
        let connector = tokio_rustls::TlsConnector::from(client_config(options)?);
        let name = ServerName::try_from(sni.to_string()).map_err(|e| SenderError::Tls(e.to_string()))?;
        let tls = connector.connect(name, tcp).await.map_err(|e| SenderError::Tls(e.to_string()))?;
        let (_, conn) = tls.get_ref();
        self.transcript.push(format!(
            "! tls {:?} {:?}",
            conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
            conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default()
        ));
        self.stream = Stream::Tls(Box::new(tls));
        // Anything the server sent in plaintext after its 220 must not be read inside TLS.
        self.buf.clear();
        Ok(())
    }

    /// Drops the connection without QUIT (abrupt disconnect).
    pub fn abort(mut self) {
        self.stream = Stream::Gone;
    }

    /// Convenience: EHLO, MAIL, RCPTs, DATA, content, and the final reply of whichever step
    /// refused first (or the end-of-data reply).
    pub async fn send_message(
        &mut self,
        ehlo: &str,
        from: &str,
        to: &[&str],
        content: &str,
    ) -> Result<RawReply, SenderError> {
        let reply = self.command(&format!("EHLO {ehlo}")).await?;
        if reply.code != 250 {
            return Ok(reply);
        }
        self.transaction(from, to, content).await
    }

    /// MAIL, RCPTs, DATA and content on an already greeted session.
    pub async fn transaction(&mut self, from: &str, to: &[&str], content: &str) -> Result<RawReply, SenderError> {
        let reply = self.command(&format!("MAIL FROM:<{from}>")).await?;
        if reply.code != 250 {
            return Ok(reply);
        }
        let mut last_refusal = None;
        let mut accepted = 0;
        for rcpt in to {
            let reply = self.command(&format!("RCPT TO:<{rcpt}>")).await?;
            if reply.code == 250 {
                accepted += 1;
            } else {
                last_refusal = Some(reply);
            }
        }
        if accepted == 0 {
            let _ = self.command("RSET").await;
            return Ok(last_refusal.expect("at least one recipient"));
        }
        let reply = self.command("DATA").await?;
        if reply.code != 354 {
            return Ok(reply);
        }
        self.content(content).await
    }

    /// After a 354: sends `content` (lines normalised to CRLF, dot-stuffed, RFC 5321 §4.5.2) and
    /// the final dot, and reads the end-of-data reply.
    pub async fn content(&mut self, content: &str) -> Result<RawReply, SenderError> {
        let mut body = String::new();
        for line in content.split_inclusive('\n') {
            let line = line.trim_end_matches(['\r', '\n']);
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        self.send_raw(body.as_bytes()).await?;
        self.read_reply().await
    }
}

async fn write_all<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<(), SenderError> {
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(())
}

fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, SenderError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| SenderError::Tls(e.to_string()))?;
    let builder = match &options.roots {
        Some(roots) => {
            let mut store = RootCertStore::empty();
            for r in roots {
                store.add(r.clone()).map_err(|e| SenderError::Tls(e.to_string()))?;
            }
            builder.with_root_certificates(store)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
    };
    let config = match &options.client_cert {
        Some(id) => {
            let key = rustls::pki_types::PrivatePkcs8KeyDer::from(id.key_pkcs8.clone()).into();
            builder.with_client_auth_cert(id.chain.clone(), key).map_err(|e| SenderError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (a sender that does not verify, like swaks without
/// `--tls-verify`), still checking the handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl TlsOptions {
    /// Present `cert`, accept any server certificate.
    pub fn with_cert(cert: &LeafCert) -> Self {
        Self { client_cert: Some(cert.into()), ..Self::default() }
    }
}
