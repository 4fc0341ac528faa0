//! DKIM signing for scripted hosts (issue 11 item 5; what EXO verifies: exo-behaviour §14.1).
//!
//! A host that declares a signing identity ([`DkimIdentity`]: domain and selector) signs what it
//! sends with mail-auth's signer: `rsa-sha256`, `c=relaxed/relaxed` (what Microsoft 365 and the
//! big senders use; EXO's `Authentication-Results` reports one `dkim=` entry per signature), over
//! the usual originator headers. The keys are the fixed RSA-2048 test pairs shipped in
//! `keys/dkim/` (why they are not generated: `keys/dkim/README.md`); a [`DkimKeyring`] gives each
//! distinct (domain, selector) of a world its own pair, and [`DkimSigning::txt_record`] is the
//! `selector._domainkey.domain` record the world publishes for it.
//!
//! ```no_run
//! use mailsim_testkit::dkim::{DkimIdentity, DkimKeyring};
//! let mut keys = DkimKeyring::new();
//! let signer = keys.signer(&DkimIdentity::new("fabrikam.test", "s1")).unwrap();
//! let (name, text) = signer.txt_record(); // s1._domainkey.fabrikam.test, v=DKIM1; k=rsa; p=...
//! let signed = signer.sign(b"From: a@fabrikam.test\r\nSubject: hi\r\n\r\nbody\r\n").unwrap();
//! ```

use std::sync::Arc;

use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// The headers a scripted host signs (those present in the message; RFC 6376 §5.4.1).
pub const SIGNED_HEADERS: [&str; 10] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// The shipped key pairs: PKCS#8 PEM private key, base64 SubjectPublicKeyInfo.
const KEYS: [(&str, &str); 6] = [
    (include_str!("../keys/dkim/key1.pem"), include_str!("../keys/dkim/key1.pub")),
    (include_str!("../keys/dkim/key2.pem"), include_str!("../keys/dkim/key2.pub")),
    (include_str!("../keys/dkim/key3.pem"), include_str!("../keys/dkim/key3.pub")),
    (include_str!("../keys/dkim/key4.pem"), include_str!("../keys/dkim/key4.pub")),
    (include_str!("../keys/dkim/key5.pem"), include_str!("../keys/dkim/key5.pub")),
    (include_str!("../keys/dkim/key6.pem"), include_str!("../keys/dkim/key6.pub")),
];

/// How many distinct signing identities one world can hold.
pub const KEY_COUNT: usize = KEYS.len();

/// A DKIM signing identity: the `d=` domain and the `s=` selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimIdentity {
    /// `d=`, lower-case.
    pub domain: String,
    /// `s=`, lower-case.
    pub selector: String,
}

impl DkimIdentity {
    /// `d=domain`, `s=selector` (lower-cased, without a trailing dot).
    pub fn new(domain: &str, selector: &str) -> Self {
        Self {
            domain: domain.trim().trim_end_matches('.').to_ascii_lowercase(),
            selector: selector.trim().to_ascii_lowercase(),
        }
    }

    /// `selector._domainkey.domain`, where the public key is published.
    pub fn key_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// Why a host cannot sign.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// More distinct identities than shipped key pairs.
    #[error("a world can give at most {KEY_COUNT} DKIM signing identities a key each; {0} is one too many")]
    TooManyIdentities(String),
    /// The key or the message could not be used.
    #[error("DKIM signing: {0}")]
    Sign(String),
}

/// One identity with its key: signs messages, and says what DNS must publish.
#[derive(Clone)]
pub struct DkimSigning {
    identity: DkimIdentity,
    key: usize,
    signer: Arc<DkimSigner<RsaKey<Sha256>, mail_auth::dkim::Done>>,
}

impl std::fmt::Debug for DkimSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigning").field("identity", &self.identity).field("key", &self.key).finish()
    }
}

impl DkimSigning {
    /// The identity with the shipped key pair number `key` (0-based, below [`KEY_COUNT`]).
    pub fn with_key(identity: DkimIdentity, key: usize) -> Result<Self, DkimError> {
        let (pem, _) = KEYS.get(key).ok_or_else(|| DkimError::TooManyIdentities(identity.key_name()))?;
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| DkimError::Sign(e.to_string()))?;
        let rsa = RsaKey::<Sha256>::from_key_der(der).map_err(|e| DkimError::Sign(e.to_string()))?;
        let signer = DkimSigner::from_key(rsa)
            .domain(identity.domain.clone())
            .selector(identity.selector.clone())
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Self { identity, key, signer: Arc::new(signer) })
    }

    /// The identity.
    pub fn identity(&self) -> &DkimIdentity {
        &self.identity
    }

    /// The TXT record the world publishes: (`selector._domainkey.domain`, `v=DKIM1; k=rsa; p=…`).
    pub fn txt_record(&self) -> (String, String) {
        (self.identity.key_name(), format!("v=DKIM1; k=rsa; p={}", KEYS[self.key].1.trim()))
    }

    /// The `DKIM-Signature:` header field for `message` (folded, ending in CRLF), to put on top.
    pub fn signature_header(&self, message: &[u8]) -> Result<String, DkimError> {
        let signature = self.signer.sign(message).map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }

    /// `message` with its `DKIM-Signature:` header on top.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let header = self.signature_header(message)?;
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// A world's keys: each distinct identity gets the next shipped pair, in the order asked; asking
/// again for an identity gives the same pair (two hosts of one sender share its key).
#[derive(Clone, Debug, Default)]
pub struct DkimKeyring {
    given: Vec<DkimIdentity>,
}

impl DkimKeyring {
    /// No identity yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The signer for `identity`.
    pub fn signer(&mut self, identity: &DkimIdentity) -> Result<DkimSigning, DkimError> {
        let key = match self.given.iter().position(|g| g == identity) {
            Some(i) => i,
            None => {
                if self.given.len() >= KEY_COUNT {
                    return Err(DkimError::TooManyIdentities(identity.key_name()));
                }
                self.given.push(identity.clone());
                self.given.len() - 1
            }
        };
        DkimSigning::with_key(identity.clone(), key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_key_loads_and_identities_share_or_get_their_own() {
        let mut ring = DkimKeyring::new();
        let a = ring.signer(&DkimIdentity::new("Fabrikam.Test.", "S1")).unwrap();
        assert_eq!(a.identity(), &DkimIdentity::new("fabrikam.test", "s1"));
        assert_eq!(a.txt_record().0, "s1._domainkey.fabrikam.test");
        assert!(a.txt_record().1.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
        assert!(a.txt_record().1.len() > 255, "a 2048-bit key needs more than one TXT string");
        let again = ring.signer(&DkimIdentity::new("fabrikam.test", "s1")).unwrap();
        assert_eq!(again.txt_record(), a.txt_record());
        for i in 1..KEY_COUNT {
            let s = ring.signer(&DkimIdentity::new("fabrikam.test", &format!("k{i}"))).unwrap();
            assert_ne!(s.txt_record().1, a.txt_record().1);
        }
        assert!(matches!(
            ring.signer(&DkimIdentity::new("one.test", "too-many")),
            Err(DkimError::TooManyIdentities(n)) if n == "too-many._domainkey.one.test"
        ));
    }

    #[test]
    fn a_signature_names_its_identity_and_the_signed_headers() {
        let signer = DkimSigning::with_key(DkimIdentity::new("fabrikam.test", "s1"), 0).unwrap();
        let header = signer
            .signature_header(b"From: <a@fabrikam.test>\r\nTo: <b@contoso.test>\r\nSubject: hi\r\n\r\nHello.\r\n")
            .unwrap();
        assert!(
            header.starts_with("DKIM-Signature: v=1; a=rsa-sha256; s=s1; d=fabrikam.test; c=relaxed/relaxed;"),
            "{header}"
        );
        // Every listed header is signed, absent ones too, so none can be added later unnoticed
        // (mail-auth does not keep the list's order in `h=`).
        let h = header.split("h=").nth(1).and_then(|r| r.split(';').next()).unwrap().replace(['\r', '\n', '\t'], "");
        let mut h: Vec<&str> = h.split(':').collect();
        h.sort_unstable();
        let mut want = SIGNED_HEADERS.to_vec();
        want.sort_unstable();
        assert_eq!(h, want, "{header}");
        assert!(header.ends_with("\r\n"));
    }

    #[tokio::test]
    async fn mail_auth_verifies_against_the_published_key_and_a_changed_body_fails() {
        use crate::dns::{DnsZoneSet, ScriptedDns};
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
        };
        use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

        let mut ring = DkimKeyring::new();
        let signer = ring.signer(&DkimIdentity::new("fabrikam.test", "s1")).unwrap();
        let other = ring.signer(&DkimIdentity::new("fabrikam.test", "s2")).unwrap();
        let (name, text) = signer.txt_record();
        let dns = ScriptedDns::start("127.0.60.7".parse().unwrap(), DnsZoneSet::new().txt(&name, &text)).await.unwrap();
        let mut udp = ConnectionConfig::udp();
        udp.port = dns.addr().port();
        let config =
            ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(dns.addr().ip(), true, vec![udp])]);
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.timeout = std::time::Duration::from_millis(300);
        let auth = MessageAuthenticator::new(config, opts).unwrap();
        let verify = |data: Vec<u8>| {
            let auth = &auth;
            async move {
                let message = AuthenticatedMessage::parse(&data).unwrap();
                auth.verify_dkim(&message).await.iter().map(|o| o.result().clone()).collect::<Vec<_>>()
            }
        };
        let message = b"From: <a@fabrikam.test>\r\nTo: <b@contoso.test>\r\nSubject: hi\r\n\r\nHello.\r\n";
        let signed = signer.sign(message).unwrap();
        assert_eq!(verify(signed.clone()).await, vec![DkimResult::Pass]);
        // Relaxed canonicalization: a header refolded or a trailing space on a line still passes.
        let refolded = String::from_utf8(signed.clone()).unwrap().replace("Subject: hi", "Subject:   hi");
        assert_eq!(verify(refolded.into_bytes()).await, vec![DkimResult::Pass]);
        // A body changed after signing (a gateway's disclaimer) does not verify. mail-auth reports
        // a body hash mismatch as Neutral(FailedBodyHashMatch); EXO writes it as
        // `dkim=fail (body hash did not verify)` (exo-behaviour §14.1).
        let altered = String::from_utf8(signed.clone()).unwrap().replace("Hello.", "Hello. [External]");
        let r = verify(altered.into_bytes()).await;
        assert_eq!(
            r,
            vec![DkimResult::Neutral(mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch))]
        );
        // A signed header changed: the signature itself fails.
        let resubject = String::from_utf8(signed.clone()).unwrap().replace("Subject: hi", "Subject: re");
        let r = verify(resubject.into_bytes()).await;
        assert!(matches!(r.as_slice(), [DkimResult::Fail(_)]), "{r:?}");
        // A selector the world does not publish: no key, a permanent error.
        let unpublished = other.sign(message).unwrap();
        assert!(matches!(verify(unpublished).await.as_slice(), [DkimResult::PermError(_) | DkimResult::TempError(_)]));
        assert_eq!(verify(message.to_vec()).await, Vec::<DkimResult>::new());
        dns.stop().await;
    }
}
