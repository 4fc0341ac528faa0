//! TLS for the tenant endpoint: the rustls server configuration, certificate loading, and the
//! [`TlsFacts`] the core reads after a handshake.
//!
//! The handshake never fails because of *what* client certificate was presented: the server asks
//! for one, accepts any (the client must still prove it holds the key), and afterwards
//! [`tls_facts`] records whether the chain is trusted, expired or from an unknown CA. Deciding what
//! that means for the message is the inbound stage's job (exo-behaviour §2.3), not this module's.
//!
//! The outbound client's side is here too: [`client_config`] (roots to verify the server against,
//! an optional client certificate) and [`opportunistic_config`] with its verifier that accepts any
//! server certificate, as opportunistic SMTP TLS does.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3 only (rustls cannot speak older versions).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mailsim_core::peer::{CertTrust, ClientCertFacts, TlsFacts};
use mailsim_core::stage::deliver::ServerCertFacts;
use mailsim_core::time::Timestamp;
use rustls::ClientConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ProtocolVersion, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

/// The TLS versions mailsim speaks, newest first.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why TLS material could not be loaded or a configuration built. Each message carries its cause
/// in its own text and links no `source()`, so that a chain printed with `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file did not hold the PEM it should.
    #[error("{}: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A trusted root could not be used as a trust anchor.
    #[error("client root certificate #{index} is unusable: {error}")]
    BadRoot {
        /// Position in the list given.
        index: usize,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Config(e)
    }
}

impl From<rustls::server::VerifierBuilderError> for TlsError {
    fn from(e: rustls::server::VerifierBuilderError) -> Self {
        TlsError::Verifier(e)
    }
}

/// The crypto provider every mailsim TLS configuration uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tenant's server configuration: presents `chain` (leaf first) with `key`, speaks TLS 1.2 and
/// 1.3, and asks for an **optional** client certificate that it accepts whoever issued it, so an
/// untrusted or expired certificate never aborts the handshake. Trust is judged afterwards by
/// [`tls_facts`] with a [`ClientTrust`] built from the same `client_roots`.
///
/// `client_roots` are checked here, so a bad trust store fails at start-up; the server sends no CA
/// hints (clients send their certificate regardless).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    root_store(client_roots)?;
    let provider = provider();
    let verifier = Arc::new(AcceptAnyClientCert { algorithms: provider.signature_verification_algorithms });
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

fn root_store(roots: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for (index, root) in roots.into_iter().enumerate() {
        store.add(root).map_err(|error| TlsError::BadRoot { index, error })?;
    }
    Ok(store)
}

/// Asks for a client certificate, never requires one, and accepts any certificate; the client
/// must still sign the handshake with the certificate's key.
#[derive(Debug)]
struct AcceptAnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The CAs the tenant trusts for client certificates, prepared once per server and used after
/// each handshake to judge the presented chain.
#[derive(Clone)]
pub struct ClientTrust {
    /// `None` when no roots were given: then nothing is trusted.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl fmt::Debug for ClientTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTrust").field("has_roots", &self.verifier.is_some()).finish()
    }
}

impl ClientTrust {
    /// Trusts chains that end at one of `roots`. An empty list trusts nothing (every presented
    /// certificate is then [`CertTrust::UntrustedRoot`]).
    pub fn new(roots: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        if roots.is_empty() {
            return Ok(Self { verifier: None });
        }
        let store = root_store(roots)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider()).allow_unauthenticated().build()?;
        Ok(Self { verifier: Some(verifier) })
    }

    /// Judges a presented chain (end entity first) at time `now`: chain to a trusted root, validity
    /// period, and `clientAuth` usage.
    pub fn verify(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> CertTrust {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return CertTrust::Invalid("no certificate presented".into());
        };
        let Some(verifier) = &self.verifier else {
            return CertTrust::UntrustedRoot;
        };
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        trust_of(
            verifier.verify_client_cert(end_entity, intermediates, UnixTime::since_unix_epoch(since_epoch)).map(drop),
        )
    }
}

/// What the completed handshake on `conn` tells the core: version (`TLS1_2`/`TLS1_3`), IANA cipher
/// suite name, SNI, and the client certificate's facts with its trust judged by `roots` at `now`.
///
/// Call it once the handshake is complete (after `TlsAcceptor::accept` returned); before that the
/// version and cipher are empty strings.
pub fn tls_facts(conn: &ServerConnection, roots: &ClientTrust, now: SystemTime) -> TlsFacts {
    let version = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLS1_3".to_owned(),
        Some(ProtocolVersion::TLSv1_2) => "TLS1_2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|suite| {
            let id = suite.suite();
            id.as_str().map_or_else(|| format!("{id:?}"), str::to_owned)
        })
        .unwrap_or_default();
    let client_cert =
        conn.peer_certificates().filter(|chain| !chain.is_empty()).map(|chain| client_cert_facts(chain, roots, now));
    TlsFacts { version, cipher, sni: conn.server_name().map(str::to_owned), client_cert }
}

/// The facts of a presented client certificate chain (end entity first, non-empty).
pub fn client_cert_facts(chain: &[CertificateDer<'_>], roots: &ClientTrust, now: SystemTime) -> ClientCertFacts {
    let der = &chain[0];
    let sha256 = ring::digest::digest(&ring::digest::SHA256, der).as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let trust = roots.verify(chain, now);
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let validity = cert.validity();
            ClientCertFacts {
                subject: cert.subject().to_string(),
                common_names: cert
                    .subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(str::to_owned)
                    .collect(),
                dns_sans: match cert.subject_alternative_name() {
                    Ok(Some(ext)) => ext
                        .value
                        .general_names
                        .iter()
                        .filter_map(|name| match name {
                            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                },
                issuer: cert.issuer().to_string(),
                not_before: Timestamp::from_secs(validity.not_before.timestamp()),
                not_after: Timestamp::from_secs(validity.not_after.timestamp()),
                sha256,
                trust,
            }
        }
        Err(e) => ClientCertFacts {
            subject: String::new(),
            common_names: Vec::new(),
            dns_sans: Vec::new(),
            issuer: String::new(),
            not_before: Timestamp::default(),
            not_after: Timestamp::default(),
            sha256,
            trust: match trust {
                CertTrust::Trusted => CertTrust::Invalid(format!("unparseable certificate: {e}")),
                other => other,
            },
        },
    }
}

/// A verifier's answer as the core's trust verdict.
fn trust_of(result: Result<(), rustls::Error>) -> CertTrust {
    match result {
        Ok(()) => CertTrust::Trusted,
        Err(rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            CertTrust::Expired
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => CertTrust::UntrustedRoot,
        Err(other) => CertTrust::Invalid(other.to_string()),
    }
}

/// The CAs the simulated world trusts for *server* certificates, used by the outbound stage to judge
/// a smart host's or MX's certificate for `CertificateValidation`/`DomainValidation`.
#[derive(Clone)]
pub struct ServerTrust {
    verifier: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl fmt::Debug for ServerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTrust").field("has_roots", &self.verifier.is_some()).finish()
    }
}

impl ServerTrust {
    /// Trusts server chains ending at one of `roots`; an empty list trusts nothing.
    pub fn new(roots: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        if roots.is_empty() {
            return Ok(Self { verifier: None });
        }
        let store = root_store(roots)?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
        Ok(Self { verifier: Some(verifier) })
    }

    /// The facts of a server's chain (end entity first): subject, names (CNs and DNS SANs),
    /// thumbprint, and trust (chain and validity only; the name is the core's decision).
    pub fn facts(&self, chain: &[CertificateDer<'_>], now: SystemTime) -> ServerCertFacts {
        let parsed = client_cert_facts(chain, &ClientTrust { verifier: None }, now);
        let names: Vec<String> = parsed.common_names.iter().chain(parsed.dns_sans.iter()).cloned().collect();
        let trust = match (&self.verifier, chain.split_first()) {
            (None, _) | (_, None) => CertTrust::UntrustedRoot,
            (Some(verifier), Some((end_entity, intermediates))) => {
                // Verify against one of the certificate's own names, so that only the chain and the
                // validity period are judged here.
                let own_name = parsed.dns_sans.first().or(parsed.common_names.first()).cloned().unwrap_or_default();
                let name = rustls::pki_types::ServerName::try_from(own_name.trim_start_matches("*.").to_string())
                    .unwrap_or_else(|_| {
                        rustls::pki_types::ServerName::try_from("invalid.invalid").expect("valid name")
                    });
                let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
                use rustls::client::danger::ServerCertVerifier;
                trust_of(
                    verifier
                        .verify_server_cert(
                            end_entity,
                            intermediates,
                            &name,
                            &[],
                            UnixTime::since_unix_epoch(since_epoch),
                        )
                        .map(drop),
                )
            }
        };
        ServerCertFacts { subject: parsed.subject, names, trust, sha256: parsed.sha256 }
    }
}

/// Reads a PEM file holding one or more certificates (leaf first for a chain).
pub fn load_pem_chain(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { path: path.to_owned(), detail: format!("bad certificate PEM: {e}") })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: path.to_owned(), detail: "no CERTIFICATE block found".into() });
    }
    Ok(chain)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_pem_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), error })?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| TlsError::Pem { path: path.to_owned(), detail: format!("no usable private key: {e}") })
}

// The outbound client's side (`crate::client`).

/// A client TLS configuration (ring, TLS 1.2 and 1.3). With `roots`, the server's certificate must
/// chain to one of them and match the server name; with `None`, any certificate is accepted, as
/// opportunistic SMTP TLS does (swaks without `--tls-verify`), though the server must still prove
/// it holds the key. `client_cert` is a chain (leaf first) and its key.
pub fn client_config(
    roots: Option<Vec<CertificateDer<'static>>>,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(PROTOCOL_VERSIONS)?;
    let builder = match roots {
        Some(roots) => {
            let mut store = RootCertStore::empty();
            for root in roots {
                store.add(root)?;
            }
            builder.with_root_certificates(store)
        }
        None => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider })),
    };
    let config = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The shared configuration used when [`ClientOptions::tls_config`](crate::client::ClientOptions::tls_config) is `None`: any server
/// certificate, no client certificate.
pub fn opportunistic_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| client_config(None, None).expect("the default client configuration is valid")).clone()
}

/// Accepts any server certificate, but still checks the handshake signatures with the provider's
/// algorithms, so the server must hold the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use mailsim_testkit::certs::{LeafCert, LeafSpec, TestPki, Validity};
    use rustls::ClientConfig;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpSocket};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    fn pki() -> &'static TestPki {
        TestPki::default_shared()
    }

    fn trust() -> ClientTrust {
        ClientTrust::new(vec![pki().ca.cert_der().clone()]).unwrap()
    }

    fn tenant_config() -> Arc<ServerConfig> {
        server_config(pki().tenant.chain(), pki().tenant.key(), vec![pki().ca.cert_der().clone()]).unwrap()
    }

    fn client_config(version: &'static rustls::SupportedProtocolVersion, cert: Option<&LeafCert>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(pki().ca.cert_der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match cert {
            Some(leaf) => builder.with_client_auth_cert(leaf.chain(), leaf.key()).unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// One connection: the client binds `source`, handshakes, sends a line and reads the echo (in
    /// TLS 1.3 a rejected client certificate would only show up on that read); returns what the
    /// server saw.
    async fn handshake(
        source: &str,
        version: &'static rustls::SupportedProtocolVersion,
        cert: Option<&LeafCert>,
    ) -> (SocketAddr, TlsFacts) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(tenant_config());
        let server = tokio::spawn(async move {
            let (tcp, peer) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.expect("server handshake");
            let facts = tls_facts(tls.get_ref().1, &trust(), SystemTime::now());
            let mut tls = BufReader::new(tls);
            let mut line = String::new();
            tls.read_line(&mut line).await.unwrap();
            tls.get_mut().write_all(format!("250 {line}").as_bytes()).await.unwrap();
            tls.get_mut().shutdown().await.unwrap();
            (peer, facts)
        });

        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let connector = TlsConnector::from(client_config(version, cert));
        let name = ServerName::try_from("tenant.mailsim.test").unwrap();
        let tls = connector.connect(name, tcp).await.expect("client handshake");
        let mut tls = BufReader::new(tls);
        tls.get_mut().write_all(b"NOOP\r\n").await.unwrap();
        let mut reply = String::new();
        tls.read_line(&mut reply).await.expect("first read after the handshake");
        assert_eq!(reply, "250 NOOP\r\n");

        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap()
    }

    const VERSIONS: [(&rustls::SupportedProtocolVersion, &str); 2] =
        [(&rustls::version::TLS12, "TLS1_2"), (&rustls::version::TLS13, "TLS1_3")];

    #[tokio::test]
    async fn anonymous_client_completes_without_a_certificate() {
        for (version, name) in VERSIONS {
            let (peer, facts) = handshake("127.0.0.10", version, None).await;
            assert_eq!(peer.ip().to_string(), "127.0.0.10");
            assert_eq!(facts.version, name);
            assert_eq!(facts.sni.as_deref(), Some("tenant.mailsim.test"));
            assert!(facts.client_cert.is_none());
            let expected_cipher = if name == "TLS1_3" { "TLS13_" } else { "TLS_ECDHE_ECDSA_WITH_" };
            assert!(facts.cipher.starts_with(expected_cipher), "{}", facts.cipher);
        }
    }

    #[tokio::test]
    async fn trusted_gateway_certificate_is_captured_and_trusted() {
        for (version, name) in VERSIONS {
            let (peer, facts) = handshake("127.0.0.11", version, Some(&pki().gateway)).await;
            assert_eq!(peer.ip().to_string(), "127.0.0.11");
            assert_eq!(facts.version, name);
            let cert = facts.client_cert.expect("client cert");
            assert_eq!(cert.subject, "CN=mail.gateway.test");
            assert_eq!(cert.common_names, ["mail.gateway.test"]);
            assert_eq!(cert.dns_sans, ["mail.gateway.test"]);
            assert_eq!(cert.issuer, "CN=mailsim Test CA, O=mailsim");
            assert_eq!(cert.trust, CertTrust::Trusted);
            assert_eq!(cert.not_before, Timestamp::from_secs(946_684_800)); // 2000-01-01
            assert_eq!(cert.sha256.len(), 64);
            assert!(cert.sha256.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
            let expected = ring::digest::digest(&ring::digest::SHA256, &pki().gateway.cert_der);
            assert_eq!(cert.sha256[..2], format!("{:02X}", expected.as_ref()[0]));
        }
    }

    #[tokio::test]
    async fn rogue_certificate_completes_and_is_untrusted_root() {
        for (version, _) in VERSIONS {
            let (_, facts) = handshake("127.0.0.12", version, Some(&pki().untrusted)).await;
            let cert = facts.client_cert.expect("client cert");
            assert_eq!(cert.common_names, ["mail.gateway.test"]);
            assert_eq!(cert.issuer, "CN=mailsim Rogue CA, O=mailsim");
            assert_eq!(cert.trust, CertTrust::UntrustedRoot);
            assert_eq!(cert.trust.exo_reason(), Some("UntrustedRoot"));
        }
    }

    #[tokio::test]
    async fn expired_certificate_completes_and_is_expired() {
        for (version, _) in VERSIONS {
            let (_, facts) = handshake("127.0.0.13", version, Some(&pki().expired)).await;
            let cert = facts.client_cert.expect("client cert");
            assert_eq!(cert.dns_sans, ["mail.gateway.test"]);
            assert_eq!(cert.not_after, Timestamp::from_secs(1_609_459_200)); // 2021-01-01
            assert_eq!(cert.trust, CertTrust::Expired);
        }
    }

    #[test]
    fn trust_verdicts_for_the_default_pki() {
        let trust = trust();
        let now = SystemTime::now();
        let verdict = |leaf: &LeafCert| trust.verify(&leaf.chain(), now);
        assert_eq!(verdict(&pki().gateway), CertTrust::Trusted);
        assert_eq!(verdict(&pki().partner), CertTrust::Trusted);
        assert_eq!(verdict(&pki().wrong_subject), CertTrust::Trusted);
        assert_eq!(verdict(&pki().wildcard), CertTrust::Trusted);
        assert_eq!(verdict(&pki().san_only), CertTrust::Trusted);
        assert_eq!(verdict(&pki().expired), CertTrust::Expired);
        assert_eq!(verdict(&pki().untrusted), CertTrust::UntrustedRoot);
        // Leaf alone (no CA sent) still chains to the trusted root.
        assert_eq!(trust.verify(&pki().gateway.chain()[..1], now), CertTrust::Trusted);
        // A server-only certificate is not good for client authentication.
        assert!(matches!(verdict(&pki().tenant), CertTrust::Invalid(_)), "{:?}", verdict(&pki().tenant));
        let future = pki().ca.issue(&LeafSpec::client("soon.gateway.test").validity(Validity::NotYetValid));
        assert!(matches!(verdict(&future), CertTrust::Invalid(_)));
        // The expired certificate was fine in 2020.
        let in_2020 = UNIX_EPOCH + Duration::from_secs(1_590_000_000);
        assert_eq!(trust.verify(&pki().expired.chain(), in_2020), CertTrust::Trusted);
        // No roots: nothing is trusted.
        let none = ClientTrust::new(Vec::new()).unwrap();
        assert_eq!(none.verify(&pki().gateway.chain(), now), CertTrust::UntrustedRoot);
    }

    #[test]
    fn san_only_and_wildcard_facts() {
        let facts = client_cert_facts(&pki().san_only.chain(), &trust(), SystemTime::now());
        assert_eq!(facts.common_names, ["Gateway Appliance"]);
        assert_eq!(facts.names().collect::<Vec<_>>(), ["Gateway Appliance", "relay.gateway.test"]);
        let facts = client_cert_facts(&pki().wildcard.chain(), &trust(), SystemTime::now());
        assert_eq!(facts.subject, "CN=*.gateway.test");
        assert_eq!(facts.dns_sans, ["*.gateway.test"]);
    }

    #[test]
    fn pem_loaders_name_the_file() {
        let dir = std::env::temp_dir().join(format!("mailsim-io-tls-{}", std::process::id()));
        pki().write_to(&dir).unwrap();
        let chain = load_pem_chain(dir.join("gateway.chain.crt")).unwrap();
        assert_eq!(chain, pki().gateway.chain());
        let key = load_pem_key(dir.join("gateway.key")).unwrap();
        assert_eq!(key.secret_der(), pki().gateway.key().secret_der());

        let err = load_pem_chain(dir.join("gateway.key")).unwrap_err();
        assert!(err.to_string().contains("gateway.key"), "{err}");
        let err = load_pem_key(dir.join("gateway.crt")).unwrap_err();
        assert!(err.to_string().contains("gateway.crt"), "{err}");
        let err = load_pem_chain(dir.join("nope.crt")).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }) && err.to_string().contains("nope.crt"), "{err}");
        // Said once (issue 10): the cause is in the message, not repeated as a source.
        assert!(std::error::Error::source(&err).is_none(), "the cause is in the message only: {err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mismatched_key_or_bad_root_is_an_error() {
        let err = server_config(pki().tenant.chain(), pki().gateway.key(), Vec::new()).unwrap_err();
        assert!(matches!(err, TlsError::Config(_)), "{err}");
        let bad_root = || vec![CertificateDer::from(vec![1, 2, 3])];
        let err = server_config(pki().tenant.chain(), pki().tenant.key(), bad_root()).unwrap_err();
        assert!(matches!(err, TlsError::BadRoot { index: 0, .. }), "{err}");
        let err = ClientTrust::new(bad_root()).unwrap_err();
        assert!(matches!(err, TlsError::BadRoot { index: 0, .. }), "{err}");
    }
}
