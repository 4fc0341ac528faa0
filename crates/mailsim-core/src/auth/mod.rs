//! Email authentication as EXO applies it to inbound mail (exo-behaviour §14, §7, §8.5): which
//! hop and identities are judged, what the tenant does with a DMARC failure, and the headers it
//! stamps.
//!
//! Contract, in three steps around the one thing the core cannot do (DNS):
//! 1. [`plan`] (pure): from the tenant, the inbound verdict, the connection and the message as it
//!    arrived, an [`AuthRequest`]: the Enhanced Filtering walk ([`walk`]) and so the IP, HELO and
//!    MAIL FROM SPF is judged on, and the 5322.From domain DMARC needs.
//! 2. The shell evaluates SPF, DKIM and looks up the DMARC record with a library (mail-auth),
//!    through the world's DNS only, and reports raw results as [`AuthFacts`].
//! 3. [`decide`] (pure): alignment, the DMARC result, the anti-phishing policy's action
//!    ([`dmarc`], §14.5) and compauth (§14.4), as an [`AuthVerdict`]; [`stamps`] renders the
//!    headers in EXO's exact forms (§14.3, §14.7, §8.5).
//!
//! Mail attributed as Originating (from the tenant's own servers through an OnPremises connector)
//! is not authenticated (mailsim's choice: EXO treats it as the organization's own); it still gets
//! the attribution and cross-tenant stamps.

pub mod dmarc;
pub mod stamps;
pub mod walk;

use std::net::IpAddr;

use crate::addr::EmailAddress;
use crate::peer::PeerFacts;
use crate::stage::inbound::{Direction, InboundVerdict};
use crate::tenant::Tenant;
pub use dmarc::{CompAuth, Disposition, DmarcAction, DmarcResult};
pub use walk::{Hop, WalkOutcome};

/// SPF's result (§14.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpfVerdict {
    /// `pass`.
    Pass,
    /// `fail`.
    Fail,
    /// `softfail`.
    SoftFail,
    /// `neutral`.
    Neutral,
    /// `none`: no record.
    None,
    /// `temperror`: a DNS failure.
    TempError,
    /// `permerror`: a malformed record.
    PermError,
}

impl SpfVerdict {
    /// The `Authentication-Results` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::SoftFail => "softfail",
            Self::Neutral => "neutral",
            Self::None => "none",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

/// One DKIM signature's result (§14.1: each verified on its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DkimVerdict {
    /// Verified.
    Pass,
    /// Did not verify, with EXO's reason text (`body hash did not verify`).
    Fail(String),
    /// The key could not be fetched (DNS failure).
    TempError,
    /// No usable key or a malformed signature, with the reason.
    PermError(String),
}

/// DMARC `adkim=`/`aspf=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Alignment {
    /// `r` (the default).
    #[default]
    Relaxed,
    /// `s`.
    Strict,
}

/// The policy a DMARC record sets for the From domain (`p=`, or `sp=` for a subdomain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// `p=none`.
    None,
    /// `p=quarantine`.
    Quarantine,
    /// `p=reject`.
    Reject,
}

impl DmarcPolicy {
    /// The tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
        }
    }
}

/// The DMARC record lookup for the From domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmarcLookup {
    /// A record applies.
    Found {
        /// The policy for this domain.
        policy: DmarcPolicy,
        /// `adkim=`.
        adkim: Alignment,
        /// `aspf=`.
        aspf: Alignment,
    },
    /// No record.
    NotFound,
    /// DNS failure.
    TempError,
    /// Malformed record.
    PermError,
}

/// What the shell must evaluate (step 1's result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRequest {
    /// The connecting hop (`CIP:`).
    pub connecting: Hop,
    /// The Enhanced Filtering walk.
    pub walk: WalkOutcome,
    /// The hop SPF is judged on (the restored one with EF, else the connecting one).
    pub judged: Hop,
    /// P1 MAIL FROM, `None` for `<>` (SPF then checks the HELO identity, RFC 7208 §2.3).
    pub mail_from: Option<String>,
    /// The domain SPF reports (`smtp.mailfrom=`, or the HELO name for `<>`).
    pub spf_domain: String,
    /// The 5322.From domain, when the message has exactly one.
    pub from_domain: Option<String>,
    /// The first recipient's domain (whose MX tells whether mail reaches EOP directly, §14.5).
    pub recipient_domain: Option<String>,
    /// Whether SPF/DKIM/DMARC are evaluated at all (not for Originating mail).
    pub evaluate: bool,
}

/// The library's raw results (step 2's result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFacts {
    /// SPF for the judged hop and MAIL FROM.
    pub spf: SpfVerdict,
    /// Each DKIM signature: its `d=` and result.
    pub dkim: Vec<(String, DkimVerdict)>,
    /// The DMARC record.
    pub dmarc: DmarcLookup,
    /// The judged hop's reverse DNS name (`PTR:`), when it has one.
    pub ptr: Option<String>,
    /// The recipient domain's MX points at the tenant (`true` when unknown).
    pub mx_at_eop: bool,
}

impl AuthFacts {
    /// Facts for a message that is not evaluated (Originating mail).
    pub fn not_evaluated() -> Self {
        Self { spf: SpfVerdict::None, dkim: Vec::new(), dmarc: DmarcLookup::NotFound, ptr: None, mx_at_eop: true }
    }
}

/// The verdict fields of `X-Forefront-Antispam-Report` that are not deterministic (§14.7): taken
/// from the scenario, with placeholders of a clean message by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterVerdict {
    /// `CTRY:` (mailsim has no geo table).
    pub country: String,
    /// `LANG:`.
    pub lang: String,
    /// `SCL:`.
    pub scl: i8,
    /// `SFV:`.
    pub sfv: String,
    /// `CAT:`.
    pub cat: String,
    /// `SRV:`.
    pub srv: String,
    /// `SFS:` (opaque rule ids).
    pub sfs: String,
    /// `IPV:` (`NLI` without a connection filter allow list).
    pub ipv: String,
}

impl Default for FilterVerdict {
    fn default() -> Self {
        Self {
            country: "US".to_string(),
            lang: "en".to_string(),
            scl: 1,
            sfv: "NSPM".to_string(),
            cat: "NONE".to_string(),
            srv: String::new(),
            sfs: "(13230040)".to_string(),
            ipv: "NLI".to_string(),
        }
    }
}

/// The world's authentication settings, shared by every session of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// `X-MS-Exchange-CrossTenant-Id`.
    pub tenant_id: String,
    /// The verdict fields of `X-Forefront-Antispam-Report`.
    pub filter: FilterVerdict,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { tenant_id: stamps::DEFAULT_TENANT_ID.to_string(), filter: FilterVerdict::default() }
    }
}

/// Step 3's result: every verdict, for the stamps, the session's reply and the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthVerdict {
    /// Whether the checks ran (not for Originating mail).
    pub evaluated: bool,
    /// The request it answers.
    pub request: AuthRequest,
    /// SPF.
    pub spf: SpfVerdict,
    /// DKIM, per signature.
    pub dkim: Vec<(String, DkimVerdict)>,
    /// DMARC.
    pub dmarc: DmarcResult,
    /// The policy of the record, if one was found.
    pub policy: Option<DmarcPolicy>,
    /// Which passes aligned.
    pub aligned: dmarc::AlignedPasses,
    /// The anti-phishing policy's action.
    pub action: DmarcAction,
    /// compauth.
    pub compauth: CompAuth,
    /// The judged hop's PTR.
    pub ptr: Option<String>,
}

impl AuthVerdict {
    /// The message's fate.
    pub fn disposition(&self) -> Disposition {
        self.action.disposition
    }

    /// One line for the trace and `mailsim explain`:
    /// `spf=softfail (sender IP is 198.51.100.20) dkim=pass (partner.example) dmarc=pass action=none compauth=pass reason=100`.
    pub fn summary(&self) -> String {
        if !self.evaluated {
            return "not evaluated (Originating)".to_string();
        }
        let dkim = if self.dkim.is_empty() {
            "dkim=none".to_string()
        } else {
            self.dkim.iter().map(|(d, v)| format!("dkim={} ({d})", stamps::dkim_word(v))).collect::<Vec<_>>().join(" ")
        };
        let mut s = format!(
            "spf={} (sender IP is {}) {dkim} dmarc={} action={} compauth={}",
            self.spf.as_str(),
            self.request.judged.ip,
            self.dmarc.as_str(),
            self.action.action,
            self.compauth.text()
        );
        if let Some(h) = &self.request.walk.original {
            s.push_str(&format!(" ef-original={}", h.ip));
        }
        s
    }
}

/// The domain of the one address in the 5322.From header; `None` with no From, several addresses
/// or no domain (DMARC then does not apply).
pub fn from_domain(content: &[u8]) -> Option<String> {
    let section = crate::header_section::section(content);
    let mut froms = crate::header_section::fields(section).filter(|f| f.is("From"));
    let field = froms.next()?;
    if froms.next().is_some() {
        return None;
    }
    let raw = String::from_utf8_lossy(field.raw);
    let value = raw.split_once(':').map_or("", |(_, v)| v);
    let value: String = value.split(['\r', '\n']).collect::<Vec<_>>().join(" ");
    // Drop comments and display names: the address is in <...> or the whole value.
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].to_string(),
        _ => value.trim().to_string(),
    };
    if addr.contains(',') {
        return None;
    }
    let domain = addr.rsplit_once('@')?.1.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty() && !domain.contains(char::is_whitespace)).then_some(domain)
}

/// Whether centralized mail transport is configured (§7: EF is not supported with it).
fn centralized_transport(tenant: &Tenant) -> bool {
    tenant.outbound_connectors.iter().any(|c| c.enabled && c.route_all_messages_via_on_premises)
}

/// Step 1: what to evaluate. `content` is the message as it arrived (before EXO's own lines).
pub fn plan(
    tenant: &Tenant,
    verdict: &InboundVerdict,
    peer: &PeerFacts,
    mail_from: Option<&EmailAddress>,
    recipients: &[EmailAddress],
    content: &[u8],
) -> AuthRequest {
    let connecting = Hop { ip: peer.ip, helo: peer.helo.clone().unwrap_or_else(|| "unknown".to_string()) };
    let connector = verdict.connector().and_then(|name| tenant.inbound_connectors.iter().find(|c| c.name == name));
    let chain = walk::hops(connecting.clone(), content);
    let outcome = walk::walk(connector, centralized_transport(tenant), &chain, recipients);
    let judged = outcome.judged(&connecting).clone();
    let evaluate = matches!(verdict, InboundVerdict::Accepted { direction: Direction::Incoming, .. });
    AuthRequest {
        spf_domain: mail_from.map_or_else(|| judged.helo.clone(), |m| m.domain().as_str().to_ascii_lowercase()),
        mail_from: mail_from.map(|m| m.to_string()),
        from_domain: from_domain(content),
        recipient_domain: recipients.first().map(|r| r.domain().as_str().to_ascii_lowercase()),
        connecting,
        walk: outcome,
        judged,
        evaluate,
    }
}

/// Step 3: the verdicts and the tenant's action.
pub fn decide(tenant: &Tenant, request: AuthRequest, facts: AuthFacts) -> AuthVerdict {
    if !request.evaluate {
        return AuthVerdict {
            evaluated: false,
            request,
            spf: SpfVerdict::None,
            dkim: Vec::new(),
            dmarc: DmarcResult::None,
            policy: None,
            aligned: dmarc::AlignedPasses::default(),
            action: DmarcAction { action: "none", disposition: Disposition::Deliver, honoured: false },
            compauth: CompAuth { result: "none", reason: "451" },
            ptr: facts.ptr,
        };
    }
    let from = request.from_domain.as_deref();
    let (result, aligned) = dmarc::dmarc_result(from, facts.spf, &request.spf_domain, &facts.dkim, &facts.dmarc);
    let policy = match &facts.dmarc {
        DmarcLookup::Found { policy, .. } => Some(*policy),
        _ => None,
    };
    let action = dmarc::dmarc_action(result, policy, &tenant.anti_phish, facts.mx_at_eop, request.walk.active());
    let own = from.is_some_and(|d| {
        crate::addr::Domain::parse(d, true).ok().is_some_and(|d| tenant.accepted_domain(&d).is_some())
    });
    AuthVerdict {
        evaluated: true,
        compauth: dmarc::compauth(result, policy, own),
        spf: facts.spf,
        dkim: facts.dkim,
        dmarc: result,
        policy,
        aligned,
        action,
        ptr: facts.ptr,
        request,
    }
}

/// The address EF and the stamps judge, as text (for `mailsim explain`).
pub fn judged_ip(request: &AuthRequest) -> IpAddr {
    request.judged.ip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_forms() {
        let f = |h: &str| from_domain(format!("{h}\r\nSubject: x\r\n\r\nbody").as_bytes());
        assert_eq!(f("From: Alice <alice@Partner.Example>").as_deref(), Some("partner.example"));
        assert_eq!(f("From: bob@partner.example").as_deref(), Some("partner.example"));
        assert_eq!(f("From: \"x\"\r\n <c@d.example>").as_deref(), Some("d.example"));
        assert_eq!(f("From: a@x.example, b@y.example"), None);
        assert_eq!(f("From: a@x.example\r\nFrom: b@x.example"), None);
        assert_eq!(f("Sender: a@x.example"), None);
    }
}
