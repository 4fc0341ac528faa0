//! The peer's TLS: the server configuration for its script (the certificate it presents, issued by
//! its own copy of the test CAs, and whether it asks for a client certificate), a verifier that
//! accepts any client certificate while still checking the client holds its key, and the facts a
//! message records about the session.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use super::{ClientCertRequest, PeerCert, PeerScript, PeerTlsInfo, StartTls, WRONG_NAME};
use crate::certs::{LeafCert, LeafSpec, TestCa, TestPki, Validity};

pub(super) fn tls_info(conn: &rustls::ServerConnection) -> PeerTlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1_3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1_2".to_string(),
        other => format!("{other:?}"),
    };
    let cipher = conn.negotiated_cipher_suite().map(|c| format!("{:?}", c.suite())).unwrap_or_default();
    let client_cert_subject = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok().map(|(_, c)| c.subject().to_string()));
    PeerTlsInfo { version, cipher, client_cert_subject, sni: conn.server_name().map(str::to_string) }
}

/// The peer's own copy of the CAs, and the leaves it has issued, by kind and name.
pub(super) struct PeerPki {
    ca: TestCa,
    rogue_ca: TestCa,
    issued: HashMap<(&'static str, String), LeafCert>,
}

impl PeerPki {
    pub(super) fn new(pki: &TestPki) -> io::Result<Self> {
        let copy = |ca: &TestCa| TestCa::from_pem(ca.cert_pem(), ca.key_pem()).map_err(io::Error::other);
        let mut issued = HashMap::new();
        for leaf in [&pki.tenant, &pki.gateway, &pki.partner] {
            if let Some(name) = common_name(leaf) {
                issued.insert(("right", name), leaf.clone());
            }
        }
        Ok(Self { ca: copy(&pki.ca)?, rogue_ca: copy(&pki.rogue_ca)?, issued })
    }

    fn leaf_for(&mut self, cert: &PeerCert, host: &str) -> io::Result<LeafCert> {
        let (kind, name) = match cert {
            PeerCert::Leaf(leaf) => return Ok((**leaf).clone()),
            PeerCert::RightName => ("right", host),
            PeerCert::Named(name) => ("right", name.as_str()),
            PeerCert::WrongName => ("right", WRONG_NAME),
            PeerCert::Expired => ("expired", host),
            PeerCert::Untrusted => ("untrusted", host),
        };
        if let Some(leaf) = self.issued.get(&(kind, name.to_string())) {
            return Ok(leaf.clone());
        }
        let mut spec = LeafSpec::both(name).dns(name);
        if kind == "expired" {
            spec = spec.validity(Validity::Expired);
        }
        let ca = if kind == "untrusted" { &self.rogue_ca } else { &self.ca };
        let leaf = ca.try_issue(&spec).map_err(io::Error::other)?;
        self.issued.insert((kind, name.to_string()), leaf.clone());
        Ok(leaf)
    }
}

fn common_name(leaf: &LeafCert) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).ok()?;
    cert.subject().iter_common_name().find_map(|cn| cn.as_str().ok()).map(str::to_string)
}

pub(super) fn server_config(script: &PeerScript, certs: &mut PeerPki) -> io::Result<Option<Arc<ServerConfig>>> {
    if script.starttls == StartTls::None {
        return Ok(None);
    }
    let leaf = certs.leaf_for(&script.cert, &script.host_name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match script.client_cert {
        ClientCertRequest::Ignore => builder.with_no_client_auth(),
        request => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            provider,
            mandatory: request == ClientCertRequest::Require,
        })),
    };
    let config = builder.with_single_cert(leaf.chain(), leaf.key()).map_err(io::Error::other)?;
    Ok(Some(Arc::new(config)))
}

/// Asks for a client certificate and accepts any, still checking that the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
