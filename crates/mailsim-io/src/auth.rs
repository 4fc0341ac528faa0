//! Email authentication's I/O half (exo-behaviour §14): SPF, DKIM and the DMARC record evaluated
//! by mail-auth (Stalwart's library) against the simulated world's DNS only, reported to the core
//! as [`AuthFacts`]. Every decision on them (alignment, DMARC result, the anti-phishing policy,
//! compauth, the stamps) is `mailsim_core::auth`'s.
//!
//! The resolver is the world's ([`crate::dns::Resolver`]: one nameserver, no system
//! configuration). Answers are cached per world (one [`Authenticator`] per endpoint), until
//! [`Authenticator::clear_cache`] (a scenario step changed DNS). A DNS failure gives
//! `temperror`, a malformed record `permerror` (mail-auth's mapping, RFC 7208 §2.6); neither can
//! stop the session: the evaluation is bounded by the resolver's timeout per lookup and by
//! [`EVALUATION_LIMIT`] as a whole.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use mail_auth::dmarc::{Alignment as MaAlignment, Dmarc, Policy};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache, SpfResult, Txt,
};
use mailsim_core::auth::{Alignment, AuthFacts, AuthRequest, DkimVerdict, DmarcLookup, DmarcPolicy, SpfVerdict};

use crate::dns::Resolver;

/// The longest one message's evaluation may take; past it, what is missing counts as a DNS
/// failure (`temperror`).
pub const EVALUATION_LIMIT: Duration = Duration::from_secs(5);

/// A world-lifetime cache for one record type (mail-auth's `ResolverCache`). Expiry is ignored:
/// the world's DNS only changes when a scenario says so, and then the cache is cleared.
struct Cache<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().expect("cache lock").get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().expect("cache lock").remove(name)
    }

    fn insert(&self, key: K, value: V, _valid_until: std::time::Instant) {
        self.0.lock().expect("cache lock").insert(key, value);
    }
}

impl<K, V> Cache<K, V> {
    fn clear(&self) {
        self.0.lock().expect("cache lock").clear();
    }
}

/// mail-auth's parameters with this world's caches.
type Cached<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

/// The evaluator of one world.
pub struct Authenticator {
    config: std::sync::Arc<mailsim_core::auth::AuthConfig>,
    inner: MessageAuthenticator,
    resolver: Resolver,
    /// The tenant's declared addresses: an MX resolving to one of them points at EOP (§14.5).
    tenant_addresses: Vec<IpAddr>,
    txt: Cache<Box<str>, Txt>,
    mx: Cache<Box<str>, RecordSet<MX>>,
    ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Cache<IpAddr, RecordSet<Box<str>>>,
    mx_at_eop: Mutex<HashMap<String, bool>>,
    /// Reverse names and DMARC records by what was asked, negative answers included (mail-auth
    /// caches only records it found; a world without PTR records would ask for every message).
    ptr_names: Mutex<HashMap<IpAddr, Option<String>>>,
    dmarc_records: Mutex<HashMap<String, DmarcLookup>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("resolver", &self.resolver).finish_non_exhaustive()
    }
}

fn spf_verdict(r: SpfResult) -> SpfVerdict {
    match r {
        SpfResult::Pass => SpfVerdict::Pass,
        SpfResult::Fail => SpfVerdict::Fail,
        SpfResult::SoftFail => SpfVerdict::SoftFail,
        SpfResult::Neutral => SpfVerdict::Neutral,
        SpfResult::TempError => SpfVerdict::TempError,
        SpfResult::PermError => SpfVerdict::PermError,
        SpfResult::None => SpfVerdict::None,
    }
}

/// EXO's comment for a DKIM failure (§14.1: `(body hash did not verify)`); other wordings are
/// mailsim's choice in the same style.
fn dkim_verdict(r: &DkimResult) -> DkimVerdict {
    use mail_auth::Error as E;
    let reason = |e: &E| -> String {
        match e {
            E::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch) => "body hash did not verify".into(),
            E::Crypto(_) => "signature did not verify".into(),
            E::Dkim(mail_auth::dkim::DkimError::SignatureExpired) => "signature expired".into(),
            E::Dns(_) => "no key for signature".into(),
            E::Dkim(mail_auth::dkim::DkimError::RevokedPublicKey) => "key revoked".into(),
            E::ParseError => "invalid key or signature".into(),
            other => other.to_string().to_ascii_lowercase(),
        }
    };
    match r {
        DkimResult::Pass => DkimVerdict::Pass,
        DkimResult::Fail(e) | DkimResult::Neutral(e) => DkimVerdict::Fail(reason(e)),
        DkimResult::TempError(_) => DkimVerdict::TempError,
        DkimResult::PermError(e) => DkimVerdict::PermError(reason(e)),
        DkimResult::None => DkimVerdict::PermError("no signature".into()),
    }
}

fn policy(p: Policy) -> DmarcPolicy {
    match p {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    }
}

fn alignment(a: MaAlignment) -> Alignment {
    match a {
        MaAlignment::Strict => Alignment::Strict,
        MaAlignment::Relaxed => Alignment::Relaxed,
    }
}

impl Authenticator {
    /// An evaluator resolving through `resolver` (the world's DNS server only).
    pub fn new(resolver: Resolver, tenant_addresses: Vec<IpAddr>, config: mailsim_core::auth::AuthConfig) -> Self {
        Self {
            config: std::sync::Arc::new(config),
            inner: MessageAuthenticator(resolver.hickory().clone()),
            resolver,
            tenant_addresses,
            txt: Cache::default(),
            mx: Cache::default(),
            ipv4: Cache::default(),
            ipv6: Cache::default(),
            ptr: Cache::default(),
            mx_at_eop: Mutex::new(HashMap::new()),
            ptr_names: Mutex::new(HashMap::new()),
            dmarc_records: Mutex::new(HashMap::new()),
        }
    }

    /// The stamps' settings (tenant id, filter verdicts), for the sessions.
    pub fn config(&self) -> &std::sync::Arc<mailsim_core::auth::AuthConfig> {
        &self.config
    }

    /// Forgets every cached answer (the world's DNS changed).
    pub fn clear_cache(&self) {
        self.txt.clear();
        self.mx.clear();
        self.ipv4.clear();
        self.ipv6.clear();
        self.ptr.clear();
        self.mx_at_eop.lock().expect("cache lock").clear();
        self.ptr_names.lock().expect("cache lock").clear();
        self.dmarc_records.lock().expect("cache lock").clear();
    }

    fn params<P>(&self, p: P) -> Cached<'_, P> {
        Parameters {
            params: p,
            cache_txt: Some(&self.txt),
            cache_mx: Some(&self.mx),
            cache_ptr: Some(&self.ptr),
            cache_ipv4: Some(&self.ipv4),
            cache_ipv6: Some(&self.ipv6),
        }
    }

    /// Evaluates what `request` asks over `content` (the message as received). Never fails:
    /// a DNS failure is a `temperror` in the facts, and past [`EVALUATION_LIMIT`] everything is.
    pub async fn evaluate(&self, request: &AuthRequest, content: &[u8]) -> AuthFacts {
        if !request.evaluate {
            return AuthFacts::not_evaluated();
        }
        match tokio::time::timeout(EVALUATION_LIMIT, self.evaluate_inner(request, content)).await {
            Ok(facts) => facts,
            Err(_) => AuthFacts {
                spf: SpfVerdict::TempError,
                dkim: Vec::new(),
                dmarc: DmarcLookup::TempError,
                ptr: None,
                mx_at_eop: true,
            },
        }
    }

    async fn evaluate_inner(&self, request: &AuthRequest, content: &[u8]) -> AuthFacts {
        let ip = request.judged.ip;
        let helo = request.judged.helo.as_str();
        let spf_params = match &request.mail_from {
            Some(from) => SpfParameters::verify_mail_from(ip, helo, "protection.outlook.com", from),
            None => SpfParameters::verify_ehlo(ip, helo, "protection.outlook.com"),
        };
        let spf_output = self.inner.check_host(self.params(spf_params)).await;
        let spf = spf_verdict(spf_output.result());

        let parsed = AuthenticatedMessage::parse(content);
        let (dkim, dmarc) = match &parsed {
            None => (Vec::new(), DmarcLookup::NotFound),
            Some(message) => {
                let outputs = self.inner.verify_dkim(self.params(message)).await;
                let dkim: Vec<(String, DkimVerdict)> = outputs
                    .iter()
                    .map(|o| {
                        let d = o.signature().map_or_else(|| "none".to_string(), |s| s.d.to_ascii_lowercase());
                        (d, dkim_verdict(o.result()))
                    })
                    .collect();
                let dmarc = match &request.from_domain {
                    None => DmarcLookup::NotFound,
                    Some(from) => self.dmarc_record(from).await,
                };
                (dkim, dmarc)
            }
        };
        let ptr = self.ptr_name(ip).await;
        let mx_at_eop = match &request.recipient_domain {
            Some(d) => self.mx_at_eop(d).await,
            None => true,
        };
        AuthFacts { spf, dkim, dmarc, ptr, mx_at_eop }
    }

    /// The judged hop's reverse name (`PTR:`), cached with its absence; a DNS failure is not
    /// cached.
    async fn ptr_name(&self, ip: IpAddr) -> Option<String> {
        if let Some(known) = self.ptr_names.lock().expect("cache lock").get(&ip) {
            return known.clone();
        }
        let answer = match self.inner.ptr_lookup(ip, Some(&self.ptr)).await {
            Ok(set) => Some(set.rrset.first().map(|n| n.trim_end_matches('.').to_ascii_lowercase())),
            // A timeout may be a scripted fault that is lifted later; any other failure (NXDOMAIN,
            // REFUSED for a reverse zone the world does not serve) is the answer.
            Err(e) if e.to_string().to_ascii_lowercase().contains("time") => None,
            Err(_) => Some(None),
        };
        match answer {
            Some(name) => {
                self.ptr_names.lock().expect("cache lock").insert(ip, name.clone());
                name
            }
            None => None,
        }
    }

    /// The DMARC record for the From domain (RFC 7489 §6.6.3): `_dmarc.<from>`, else the
    /// organizational domain's record with its `sp=`. mailsim's choice over mail-auth's RFC 9989
    /// tree walk: the walk also asks names above the organizational domain (`_dmarc.example`),
    /// which a world's DNS does not serve, and mail-auth reads their refusal as a temperror.
    async fn dmarc_record(&self, from: &str) -> DmarcLookup {
        if let Some(known) = self.dmarc_records.lock().expect("cache lock").get(from) {
            return known.clone();
        }
        let answer = self.dmarc_lookup(from).await;
        if answer != DmarcLookup::TempError {
            self.dmarc_records.lock().expect("cache lock").insert(from.to_string(), answer.clone());
        }
        answer
    }

    async fn dmarc_lookup(&self, from: &str) -> DmarcLookup {
        let org = mailsim_core::auth::dmarc::organizational_domain(from);
        let mut names = vec![(format!("_dmarc.{from}"), false)];
        if org != from {
            names.push((format!("_dmarc.{org}"), true));
        }
        for (name, inherited) in names {
            match self.inner.txt_lookup::<Dmarc>(name, Some(&self.txt)).await {
                Ok(record) => {
                    let p = if inherited && record.sp != Policy::Unspecified { record.sp } else { record.p };
                    return DmarcLookup::Found {
                        policy: policy(p),
                        adkim: alignment(record.adkim),
                        aspf: alignment(record.aspf),
                    };
                }
                Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_)))
                | Err(mail_auth::Error::Dns(mail_auth::DnsError::InvalidRecordType)) => continue,
                Err(mail_auth::Error::ParseError) => return DmarcLookup::PermError,
                Err(_) => return DmarcLookup::TempError,
            }
        }
        DmarcLookup::NotFound
    }

    /// Whether `domain`'s MX resolves to the tenant (§14.5's "MX not pointing at EOP" row);
    /// `true` when it cannot be told (no MX, a DNS failure).
    async fn mx_at_eop(&self, domain: &str) -> bool {
        if let Some(known) = self.mx_at_eop.lock().expect("cache lock").get(domain) {
            return *known;
        }
        let answer = match self.resolver.mx(domain).await {
            Ok(records) => {
                let mut any = false;
                let mut at_tenant = false;
                for r in records.iter().filter(|r| !r.exchange.is_empty()) {
                    if let Ok(addrs) = self.resolver.ipv4(&r.exchange).await {
                        any = true;
                        at_tenant |= addrs.iter().any(|a| self.tenant_addresses.contains(a));
                    }
                }
                !any || at_tenant
            }
            Err(_) => true,
        };
        self.mx_at_eop.lock().expect("cache lock").insert(domain.to_string(), answer);
        answer
    }
}
