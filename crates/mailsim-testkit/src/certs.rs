//! Test certificates: a CA, a rogue CA and the leaves the simulated hosts present.
//!
//! Everything here is **test-only material**. Keys are ECDSA P-256 made by rcgen with the ring
//! provider. [`TestPki`] is the default world (the tenant's server certificate, a gateway's client
//! certificate, an expired one, one from an untrusted CA, ...); [`TestCa`] and [`LeafSpec`] make
//! any other certificate a test needs.
//!
//! The same PKI is checked in under `certs/` at the repository root (written by
//! `mailsim certs --out certs`, which calls [`TestPki::write_to`]). Tests that do not care about
//! files use [`TestPki::default_shared`], generated once per process.
//!
//! ```
//! use mailsim_testkit::certs::{LeafSpec, TestCa, TestPki};
//!
//! let pki = TestPki::default_shared();
//! assert_eq!(pki.gateway.chain().len(), 2); // leaf + CA, as EXO wants it
//!
//! let ca = TestCa::new("Example CA");
//! let leaf = ca.issue(&LeafSpec::client("mail.example.test").dns("mail.example.test"));
//! assert!(leaf.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! ```

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, date_time_ymd,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why certificate material could not be made, written or read. Each message carries its cause in
/// its own text and links no `source()`, so that a chain printed with `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or the key (e.g. a SAN that is not IA5).
    #[error("certificate generation failed: {0}")]
    Generate(rcgen::Error),
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
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
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError::Generate(e)
    }
}

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// `serverAuth` only: a receiving MTA (the tenant endpoint).
    Server,
    /// `clientAuth` only: a sending MTA presenting a certificate.
    Client,
    /// Both `serverAuth` and `clientAuth`, as most real MTA certificates.
    Both,
}

/// The validity window of a leaf certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// 2000-01-01 to 2100-01-01: valid at any date a test is likely to simulate.
    Valid,
    /// 2020-01-01 to 2021-01-01: expired.
    Expired,
    /// 2090-01-01 to 2100-01-01: not valid yet.
    NotYetValid,
}

impl Validity {
    fn window(self) -> (i32, i32) {
        match self {
            Validity::Valid => (2000, 2100),
            Validity::Expired => (2020, 2021),
            Validity::NotYetValid => (2090, 2100),
        }
    }
}

/// What to put in a leaf certificate. The subject is `CN=<common_name>` only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// The subject common name (may be a wildcard or not a host name at all).
    pub common_name: String,
    /// dNSName subject alternative names.
    pub dns_sans: Vec<String>,
    /// iPAddress subject alternative names.
    pub ip_sans: Vec<IpAddr>,
    /// Extended key usage.
    pub usage: Usage,
    /// Validity window.
    pub validity: Validity,
}

impl LeafSpec {
    /// A valid certificate with `usage`, subject `CN=<common_name>` and no SANs.
    pub fn new(common_name: impl Into<String>, usage: Usage) -> Self {
        Self {
            common_name: common_name.into(),
            dns_sans: Vec::new(),
            ip_sans: Vec::new(),
            usage,
            validity: Validity::Valid,
        }
    }
    /// A valid server certificate (`serverAuth`) with no SANs.
    pub fn server(common_name: impl Into<String>) -> Self {
        Self::new(common_name, Usage::Server)
    }
    /// A valid client certificate (`clientAuth`) with no SANs.
    pub fn client(common_name: impl Into<String>) -> Self {
        Self::new(common_name, Usage::Client)
    }
    /// A valid certificate for both `serverAuth` and `clientAuth`, with no SANs.
    pub fn both(common_name: impl Into<String>) -> Self {
        Self::new(common_name, Usage::Both)
    }
    /// Adds a dNSName SAN.
    pub fn dns(mut self, name: impl Into<String>) -> Self {
        self.dns_sans.push(name.into());
        self
    }
    /// Adds an iPAddress SAN.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip_sans.push(ip);
        self
    }
    /// Sets the validity window.
    pub fn validity(mut self, validity: Validity) -> Self {
        self.validity = validity;
        self
    }
}

/// A certificate with its key and full chain, in PEM and DER.
#[derive(Debug)]
pub struct LeafCert {
    /// The leaf certificate alone, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// Leaf followed by the issuing CA, PEM: the full chain EXO requires a sender to present.
    pub chain_pem: String,
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The issuing CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    /// The private key, PKCS#8 DER.
    pub key_der: PrivatePkcs8KeyDer<'static>,
}

impl Clone for LeafCert {
    fn clone(&self) -> Self {
        Self {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            chain_pem: self.chain_pem.clone(),
            cert_der: self.cert_der.clone(),
            ca_der: self.ca_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl LeafCert {
    /// Leaf then CA, ready for `with_single_cert` / `with_client_auth_cert`.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone(), self.ca_der.clone()]
    }
    /// The private key, ready for rustls.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
    /// Parses a leaf back from its PEM texts (`chain_pem` must hold the leaf then the CA).
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad certificate PEM: {e}"))?;
        let [cert_der, ca_der] =
            <[_; 2]>::try_from(chain).map_err(|c| format!("expected leaf + CA, found {} certificates", c.len()))?;
        let key_der =
            PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("bad PKCS#8 key PEM: {e}"))?;
        Ok(Self {
            cert_pem: first_pem_block(chain_pem).unwrap_or_default().to_owned(),
            key_pem: key_pem.to_owned(),
            chain_pem: chain_pem.to_owned(),
            cert_der,
            ca_der,
            key_der,
        })
    }
}

/// A certificate authority that signs leaves.
pub struct TestCa {
    name: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new self-signed CA with subject `CN=<name>, O=mailsim`, valid 2000–2100.
    ///
    /// # Panics
    /// Only if rcgen cannot generate a P-256 key or sign (it does not fail for such parameters).
    pub fn new(name: &str) -> Self {
        Self::try_new(name).expect("generate test CA")
    }

    /// Like [`TestCa::new`], returning rcgen's error instead of panicking.
    pub fn try_new(name: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.distinguished_name.push(DnType::OrganizationName, "mailsim");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            name: name.to_owned(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Reloads a persisted CA from its certificate and key PEM (rcgen `Issuer::from_ca_cert_pem`).
    /// The name is the certificate's subject common name.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let name = parsed.subject().iter_common_name().find_map(|cn| cn.as_str().ok()).unwrap_or_default().to_owned();
        Ok(Self { name, cert_pem: cert_pem.to_owned(), cert_der, key_pem: key_pem.to_owned(), issuer })
    }

    /// The CA's common name, e.g. `mailsim Test CA`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
    /// The CA certificate, DER: what a trust store (the tenant's client roots) holds.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }
    /// The CA's private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a leaf certificate as `spec` says.
    ///
    /// # Panics
    /// If rcgen rejects the spec (a SAN that is not an IA5 string); see [`TestCa::try_issue`].
    pub fn issue(&self, spec: &LeafSpec) -> LeafCert {
        self.try_issue(spec).unwrap_or_else(|e| panic!("issue test certificate {:?}: {e}", spec.common_name))
    }

    /// Issues a leaf certificate as `spec` says, returning rcgen's error on a bad spec.
    pub fn try_issue(&self, spec: &LeafSpec) -> Result<LeafCert, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, spec.common_name.as_str());
        for name in &spec.dns_sans {
            params.subject_alt_names.push(SanType::DnsName(name.as_str().try_into()?));
        }
        for ip in &spec.ip_sans {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Both => {
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
            }
        };
        params.use_authority_key_identifier_extension = true;
        let (from, to) = spec.validity.window();
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(to, 1, 1);

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_pem = cert.pem();
        Ok(LeafCert {
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            ca_der: self.cert_der.clone(),
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        })
    }
}

/// The default test PKI: the tenant's server certificate and the certificates senders present.
///
/// Every leaf except `untrusted` is signed by `ca`; `untrusted` is signed by `rogue_ca`, which no
/// tenant trusts. All client certificates carry `clientAuth`; `gateway` and `partner` also carry
/// `serverAuth` so the scripted receivers can use them.
#[derive(Debug)]
pub struct TestPki {
    /// `mailsim Test CA`: the CA the tenant trusts for client certificates and that signs the
    /// tenant's own certificate.
    pub ca: TestCa,
    /// `mailsim Rogue CA`: trusted by nobody.
    pub rogue_ca: TestCa,
    /// The tenant endpoint: server, CN `tenant.mailsim.test`, SANs `tenant.mailsim.test`,
    /// `localhost`, IP `127.0.0.1`.
    pub tenant: LeafCert,
    /// The on-premises gateway: client + server, CN and SAN `mail.gateway.test`.
    pub gateway: LeafCert,
    /// A partner organisation's MX: client + server, CN and SAN `mx.partner.test`.
    pub partner: LeafCert,
    /// Trusted but with the wrong name: client, CN and SAN `mail.wrong.test`.
    pub wrong_subject: LeafCert,
    /// The gateway's name, expired (2020–2021): client, CN and SAN `mail.gateway.test`.
    pub expired: LeafCert,
    /// The gateway's name from `rogue_ca`: client, CN and SAN `mail.gateway.test`.
    pub untrusted: LeafCert,
    /// A wildcard: client, CN and SAN `*.gateway.test`.
    pub wildcard: LeafCert,
    /// The name only in a SAN: client, CN `Gateway Appliance`, SAN `relay.gateway.test`.
    pub san_only: LeafCert,
}

/// Common name of [`TestPki::ca`].
pub const TEST_CA_NAME: &str = "mailsim Test CA";
/// Common name of [`TestPki::rogue_ca`].
pub const ROGUE_CA_NAME: &str = "mailsim Rogue CA";

/// File stems of the CA files written by [`TestPki::write_to`] (`<stem>.crt`, `<stem>.key`).
const CA_FILE: &str = "ca";
const ROGUE_CA_FILE: &str = "rogue-ca";

impl TestPki {
    /// The leaf specs of the default PKI, with their file stems; `untrusted` is the one signed by
    /// the rogue CA.
    pub fn leaf_specs() -> Vec<(&'static str, LeafSpec)> {
        vec![
            (
                "tenant",
                LeafSpec::server("tenant.mailsim.test")
                    .dns("tenant.mailsim.test")
                    .dns("localhost")
                    .ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ),
            ("gateway", LeafSpec::both("mail.gateway.test").dns("mail.gateway.test")),
            ("partner", LeafSpec::both("mx.partner.test").dns("mx.partner.test")),
            ("wrong-subject", LeafSpec::client("mail.wrong.test").dns("mail.wrong.test")),
            ("expired", LeafSpec::client("mail.gateway.test").dns("mail.gateway.test").validity(Validity::Expired)),
            ("untrusted", LeafSpec::client("mail.gateway.test").dns("mail.gateway.test")),
            ("wildcard", LeafSpec::client("*.gateway.test").dns("*.gateway.test")),
            ("san-only", LeafSpec::client("Gateway Appliance").dns("relay.gateway.test")),
        ]
    }

    /// Generates a fresh default PKI (new keys every time; the names are fixed).
    pub fn generate() -> Self {
        let ca = TestCa::new(TEST_CA_NAME);
        let rogue_ca = TestCa::new(ROGUE_CA_NAME);
        let mut leaves = Self::leaf_specs().into_iter().map(|(stem, spec)| {
            let signer = if stem == "untrusted" { &rogue_ca } else { &ca };
            signer.issue(&spec)
        });
        let mut next = || leaves.next().expect("leaf_specs has eight entries");
        let (tenant, gateway, partner, wrong_subject) = (next(), next(), next(), next());
        let (expired, untrusted, wildcard, san_only) = (next(), next(), next(), next());
        drop(leaves);
        Self { ca, rogue_ca, tenant, gateway, partner, wrong_subject, expired, untrusted, wildcard, san_only }
    }

    /// A process-wide PKI, generated on first use, so tests do not each pay for key generation.
    pub fn default_shared() -> &'static TestPki {
        static SHARED: OnceLock<TestPki> = OnceLock::new();
        SHARED.get_or_init(TestPki::generate)
    }

    /// The leaves with their file stems, in [`TestPki::leaf_specs`] order.
    pub fn leaves(&self) -> [(&'static str, &LeafCert); 8] {
        [
            ("tenant", &self.tenant),
            ("gateway", &self.gateway),
            ("partner", &self.partner),
            ("wrong-subject", &self.wrong_subject),
            ("expired", &self.expired),
            ("untrusted", &self.untrusted),
            ("wildcard", &self.wildcard),
            ("san-only", &self.san_only),
        ]
    }

    /// Writes the PKI into `dir` (created if missing): `ca.crt`, `ca.key`, `rogue-ca.crt`,
    /// `rogue-ca.key`, and for each leaf `<stem>.crt` (leaf alone), `<stem>.chain.crt` (leaf + CA)
    /// and `<stem>.key` (PKCS#8). Existing files of those names are replaced; others are left alone.
    /// Returns the paths written.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, CertError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|error| CertError::Io { path: dir.to_owned(), error })?;
        let mut written = Vec::new();
        let mut put = |name: String, text: &str| -> Result<(), CertError> {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|error| CertError::Io { path: path.clone(), error })?;
            written.push(path);
            Ok(())
        };
        for (stem, ca) in [(CA_FILE, &self.ca), (ROGUE_CA_FILE, &self.rogue_ca)] {
            put(format!("{stem}.crt"), ca.cert_pem())?;
            put(format!("{stem}.key"), ca.key_pem())?;
        }
        for (stem, leaf) in self.leaves() {
            put(format!("{stem}.crt"), &leaf.cert_pem)?;
            put(format!("{stem}.chain.crt"), &leaf.chain_pem)?;
            put(format!("{stem}.key"), &leaf.key_pem)?;
        }
        Ok(written)
    }

    /// Loads a PKI written by [`TestPki::write_to`] (for instance the checked-in `certs/`).
    pub fn load_from(dir: impl AsRef<Path>) -> Result<Self, CertError> {
        let dir = dir.as_ref();
        let read = |name: String| -> Result<(PathBuf, String), CertError> {
            let path = dir.join(name);
            let text = fs::read_to_string(&path).map_err(|error| CertError::Io { path: path.clone(), error })?;
            Ok((path, text))
        };
        let load_ca = |stem: &str| -> Result<TestCa, CertError> {
            let (path, cert) = read(format!("{stem}.crt"))?;
            let (_, key) = read(format!("{stem}.key"))?;
            TestCa::from_pem(&cert, &key).map_err(|e| CertError::Pem { path, detail: e.to_string() })
        };
        let load_leaf = |stem: &str| -> Result<LeafCert, CertError> {
            let (path, chain) = read(format!("{stem}.chain.crt"))?;
            let (_, key) = read(format!("{stem}.key"))?;
            LeafCert::from_pem(&chain, &key).map_err(|detail| CertError::Pem { path, detail })
        };
        Ok(Self {
            ca: load_ca(CA_FILE)?,
            rogue_ca: load_ca(ROGUE_CA_FILE)?,
            tenant: load_leaf("tenant")?,
            gateway: load_leaf("gateway")?,
            partner: load_leaf("partner")?,
            wrong_subject: load_leaf("wrong-subject")?,
            expired: load_leaf("expired")?,
            untrusted: load_leaf("untrusted")?,
            wildcard: load_leaf("wildcard")?,
            san_only: load_leaf("san-only")?,
        })
    }
}

/// The first PEM block of `text`, through its END line and line ending.
fn first_pem_block(text: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = text.find(END)? + END.len();
    let eol = text[end..].find('\n').map_or(text.len(), |i| end + i + 1);
    Some(&text[..eol])
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;

    fn names(der: &CertificateDer<'_>) -> (String, Vec<String>, String, i64, i64) {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        let sans = c
            .subject_alternative_name()
            .unwrap()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|g| match g {
                        GeneralName::DNSName(s) => s.to_string(),
                        GeneralName::IPAddress(b) => format!("ip:{b:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (
            c.subject().to_string(),
            sans,
            c.issuer().to_string(),
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    #[test]
    fn default_pki_has_the_documented_names() {
        let pki = TestPki::default_shared();
        assert_eq!(pki.ca.name(), TEST_CA_NAME);
        assert_eq!(pki.rogue_ca.name(), ROGUE_CA_NAME);

        let (subject, sans, issuer, _, _) = names(&pki.tenant.cert_der);
        assert_eq!(subject, "CN=tenant.mailsim.test");
        assert_eq!(sans, ["tenant.mailsim.test", "localhost", "ip:[127, 0, 0, 1]"]);
        assert_eq!(issuer, "CN=mailsim Test CA, O=mailsim");

        let (subject, sans, _, _, _) = names(&pki.san_only.cert_der);
        assert_eq!(subject, "CN=Gateway Appliance");
        assert_eq!(sans, ["relay.gateway.test"]);

        let (subject, _, issuer, _, not_after) = names(&pki.untrusted.cert_der);
        assert_eq!(subject, "CN=mail.gateway.test");
        assert_eq!(issuer, "CN=mailsim Rogue CA, O=mailsim");
        assert!(not_after > 4_000_000_000);

        let (_, _, _, not_before, not_after) = names(&pki.expired.cert_der);
        assert_eq!((not_before, not_after), (1_577_836_800, 1_609_459_200)); // 2020-01-01, 2021-01-01

        assert_eq!(names(&pki.wildcard.cert_der).0, "CN=*.gateway.test");
        assert_eq!(&pki.untrusted.ca_der, pki.rogue_ca.cert_der());
        assert_eq!(pki.gateway.chain(), [pki.gateway.cert_der.clone(), pki.ca.cert_der().clone()]);
    }

    #[test]
    fn pem_and_der_agree() {
        let pki = TestPki::default_shared();
        for (stem, leaf) in pki.leaves() {
            let chain: Vec<_> =
                CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
            assert_eq!(chain, leaf.chain(), "{stem}");
            assert_eq!(first_pem_block(&leaf.chain_pem), Some(leaf.cert_pem.as_str()), "{stem}");
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            assert_eq!(key.secret_der(), leaf.key().secret_der(), "{stem}");
        }
    }

    #[test]
    fn write_then_load_round_trips_and_reloaded_ca_still_signs() {
        let dir = std::env::temp_dir().join(format!("mailsim-certs-{}", std::process::id()));
        let pki = TestPki::generate();
        let written = pki.write_to(&dir).unwrap();
        assert_eq!(written.len(), 4 + 3 * 8);
        assert!(dir.join("gateway.chain.crt").is_file() && dir.join("rogue-ca.key").is_file());

        let back = TestPki::load_from(&dir).unwrap();
        assert_eq!(back.ca.name(), TEST_CA_NAME);
        assert_eq!(back.ca.cert_der(), pki.ca.cert_der());
        for ((stem, a), (_, b)) in pki.leaves().into_iter().zip(back.leaves()) {
            assert_eq!(a.chain(), b.chain(), "{stem}");
            assert_eq!(a.key_pem, b.key_pem, "{stem}");
            assert_eq!(a.cert_pem, b.cert_pem, "{stem}");
        }

        // A CA reloaded from PEM issues leaves under the same issuer name.
        let leaf = back.ca.issue(&LeafSpec::client("x.example.test").dns("x.example.test"));
        assert_eq!(names(&leaf.cert_der).2, "CN=mailsim Test CA, O=mailsim");

        let err = TestPki::load_from(dir.join("missing")).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checked_in_certs_load_and_match_the_specs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs");
        if !dir.join("ca.crt").exists() {
            return; // a packaged crate has no repository certs/
        }
        let pki = TestPki::load_from(&dir).unwrap();
        assert_eq!(pki.ca.name(), TEST_CA_NAME);
        assert_eq!(pki.rogue_ca.name(), ROGUE_CA_NAME);
        assert_eq!(&pki.gateway.ca_der, pki.ca.cert_der());
        assert_eq!(&pki.untrusted.ca_der, pki.rogue_ca.cert_der());
        for ((stem, leaf), (spec_stem, spec)) in pki.leaves().into_iter().zip(TestPki::leaf_specs()) {
            assert_eq!(stem, spec_stem);
            let (subject, sans, _, _, _) = names(&leaf.cert_der);
            assert_eq!(subject, format!("CN={}", spec.common_name), "{stem}");
            assert_eq!(sans[..spec.dns_sans.len()], spec.dns_sans[..], "{stem}");
        }
    }

    #[test]
    fn bad_san_is_an_error_not_a_panic() {
        let ca = TestCa::new("t");
        assert!(ca.try_issue(&LeafSpec::client("x").dns("bücher.test")).is_err());
    }
}
