//! The headers EXO stamps on inbound mail, in its exact forms (exo-behaviour §14.3, §14.7, §8.5,
//! §7): `X-MS-Exchange-SkipListedInternetSender`/`…ExternalOriginalInternetSender`,
//! `Authentication-Results` (current form: no authserv-id, `; ` only after `smtp.mailfrom`),
//! `Received-SPF`, `X-MS-Exchange-Organization-AuthMechanism`, `X-Forefront-Antispam-Report`, and
//! the `X-MS-Exchange-CrossTenant-*` set. The attribution stamps (`…-Organization-AuthAs`,
//! `-AuthSource`, `-MessageDirectionality`) stay with `InboundVerdict::stamp`.
//!
//! Pure: the time and the ids arrive in [`StampContext`].

use super::{AuthVerdict, DkimVerdict, SpfVerdict, WalkOutcome};
use crate::addr::EmailAddress;
use crate::stage::inbound::{Direction, InboundVerdict};
use crate::tenant::Tenant;
use crate::time::Timestamp;

/// The tenant id mailsim stamps (`X-MS-Exchange-CrossTenant-Id`) unless the world sets one.
pub const DEFAULT_TENANT_ID: &str = "6d1f5c2e-0000-4000-8000-6d61696c73696d";

/// What the stamps need besides the verdicts.
#[derive(Clone, Debug)]
pub struct StampContext<'a> {
    /// The frontend server (`AuthSource`).
    pub server_name: &'a str,
    /// The tenant's GUID.
    pub tenant_id: &'a str,
    /// The message's internal id (`Network-Message-Id` is derived from it).
    pub internal_id: u64,
    /// The arrival time.
    pub now: Timestamp,
    /// The filtering verdicts (§14.7, scenario-set).
    pub filter: &'a super::FilterVerdict,
}

/// `X-MS-Exchange-CrossTenant-FromEntityHeader` (§8.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FromEntity {
    /// From the internet (or a partner).
    Internet,
    /// From on-premises through an OnPremises connector.
    HybridOnPrem,
    /// From an EXO mailbox (mailsim has no mailbox submission; kept for completeness).
    Hosted,
}

impl FromEntity {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internet => "Internet",
            Self::HybridOnPrem => "HybridOnPrem",
            Self::Hosted => "Hosted",
        }
    }

    /// From the attribution: Originating through an OnPremises connector is `HybridOnPrem`.
    pub fn of(verdict: &InboundVerdict) -> Self {
        match verdict {
            InboundVerdict::Accepted { direction: Direction::Originating, .. } => Self::HybridOnPrem,
            _ => Self::Internet,
        }
    }
}

/// `DIR:` (§14.7): `INB` for Incoming; for Originating `OUT` when a recipient is outside the
/// accepted domains, else `INT`.
pub fn direction(verdict: &InboundVerdict, tenant: &Tenant, recipients: &[EmailAddress]) -> &'static str {
    match verdict {
        InboundVerdict::Accepted { direction: Direction::Originating, .. } => {
            if recipients.iter().any(|r| tenant.accepted_domain(r.domain()).is_none()) { "OUT" } else { "INT" }
        }
        _ => "INB",
    }
}

/// `dkim=` word of one signature.
pub fn dkim_word(v: &DkimVerdict) -> &'static str {
    match v {
        DkimVerdict::Pass => "pass",
        DkimVerdict::Fail(_) => "fail",
        DkimVerdict::TempError => "temperror",
        DkimVerdict::PermError(_) => "permerror",
    }
}

/// `Authentication-Results` value (§14.3 current form).
pub fn authentication_results(v: &AuthVerdict) -> String {
    let r = &v.request;
    let mut s = format!("spf={} (sender IP is {}) ", v.spf.as_str(), r.judged.ip);
    match &r.mail_from {
        Some(_) => s.push_str(&format!("smtp.mailfrom={}; ", r.spf_domain)),
        // RFC 7208 default for a null reverse path; EXO's form is unconfirmed (§14.1).
        None => s.push_str(&format!("smtp.helo={}; ", r.spf_domain)),
    }
    if v.dkim.is_empty() {
        s.push_str("dkim=none (message not signed) header.d=none;");
    }
    for (d, verdict) in &v.dkim {
        let comment = match verdict {
            DkimVerdict::Pass => "signature was verified".to_string(),
            DkimVerdict::Fail(reason) | DkimVerdict::PermError(reason) => reason.clone(),
            DkimVerdict::TempError => "key query timeout".to_string(),
        };
        s.push_str(&format!("dkim={} ({comment}) header.d={d};", dkim_word(verdict)));
    }
    s.push_str(&format!(
        "dmarc={} action={} header.from={};compauth={} reason={}",
        v.dmarc.as_str(),
        v.action.action,
        r.from_domain.as_deref().unwrap_or("none"),
        v.compauth.result,
        v.compauth.reason
    ));
    s
}

/// `Received-SPF` value (§14.3). The Neutral, TempError and PermError wordings are mailsim's
/// choice in EXO's style (the reference quotes Pass, Fail, SoftFail and None).
pub fn received_spf(v: &AuthVerdict) -> String {
    let r = &v.request;
    let (d, ip) = (&r.spf_domain, r.judged.ip);
    let head = match v.spf {
        SpfVerdict::Pass => format!("Pass (protection.outlook.com: domain of {d} designates {ip} as permitted sender)"),
        SpfVerdict::Fail => {
            format!("Fail (protection.outlook.com: domain of {d} does not designate {ip} as permitted sender)")
        }
        SpfVerdict::SoftFail => {
            format!(
                "SoftFail (protection.outlook.com: domain of transitioning {d} discourages use of {ip} as permitted sender)"
            )
        }
        SpfVerdict::Neutral => {
            format!("Neutral (protection.outlook.com: {ip} is neither permitted nor denied by domain of {d})")
        }
        SpfVerdict::None => format!("None (protection.outlook.com: {d} does not designate permitted sender hosts)"),
        SpfVerdict::TempError => {
            format!("TempError (protection.outlook.com: error in processing during lookup of {d}: DNS Timeout)")
        }
        SpfVerdict::PermError => {
            format!("PermError (protection.outlook.com: domain of {d} used an invalid SPF mechanism)")
        }
    };
    format!("{head} receiver=protection.outlook.com; client-ip={ip}; helo={};", r.judged.helo)
}

/// `X-Forefront-Antispam-Report` (§8.5, §14.7): `CIP` the connecting IP; `CTRY`, `H`, `PTR` of the
/// judged hop; `DIR` from the attribution; the verdict fields from the scenario.
pub fn antispam_report(v: &AuthVerdict, dir: &str, f: &super::FilterVerdict) -> String {
    let r = &v.request;
    format!(
        "CIP:{};CTRY:{};LANG:{};SCL:{};SRV:{};IPV:{};SFV:{};H:{};PTR:{};CAT:{};SFS:{};DIR:{};",
        r.connecting.ip,
        f.country,
        f.lang,
        f.scl,
        f.srv,
        f.ipv,
        f.sfv,
        r.judged.helo,
        v.ptr.as_deref().unwrap_or(""),
        f.cat,
        f.sfs,
        dir
    )
}

/// `Network-Message-Id`: a GUID derived from the internal id (deterministic per run).
pub fn network_message_id(internal_id: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (internal_id >> 32) as u32,
        (internal_id >> 16) as u16,
        (internal_id >> 4) & 0xfff,
        internal_id & 0xf,
        internal_id & 0xffff_ffff_ffff
    )
}

/// `OriginalArrivalTime`: `07 Jan 2022 05:46:46.6420 (UTC)`.
pub fn arrival_time(now: Timestamp) -> String {
    let ms = now.as_millis();
    let dt = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:04} (UTC)",
        dt.day(),
        MONTHS[usize::from(u8::from(dt.month())) - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        ms.rem_euclid(1000) * 10
    )
}

/// Every stamp of this module, in the order they go into the header (after EXO's `Received:`
/// line and the attribution stamps).
pub fn stamps(
    v: &AuthVerdict,
    inbound: &InboundVerdict,
    tenant: &Tenant,
    recipients: &[EmailAddress],
    cx: &StampContext<'_>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(14);
    if let Some(hop) = &v.request.walk.original {
        out.push(("X-MS-Exchange-SkipListedInternetSender", WalkOutcome::header_value(hop)));
        if v.request.walk.users_match {
            out.push(("X-MS-Exchange-ExternalOriginalInternetSender", WalkOutcome::header_value(hop)));
        }
    }
    if v.evaluated {
        out.push(("Authentication-Results", authentication_results(v)));
        out.push(("Received-SPF", received_spf(v)));
    }
    let internal = matches!(inbound, InboundVerdict::Accepted { internal: true, .. });
    if internal {
        // §14.7: `10` for hybrid cross-premises mail (the codes' meaning is unconfirmed).
        out.push(("X-MS-Exchange-Organization-AuthMechanism", "10".to_string()));
    }
    out.push(("X-Forefront-Antispam-Report", antispam_report(v, direction(inbound, tenant, recipients), cx.filter)));
    let auth_as = if internal { "Internal" } else { "Anonymous" };
    let r = &v.request;
    out.push(("X-MS-Exchange-CrossTenant-OriginalArrivalTime", arrival_time(cx.now)));
    out.push(("X-MS-Exchange-CrossTenant-Network-Message-Id", network_message_id(cx.internal_id)));
    out.push(("X-MS-Exchange-CrossTenant-Id", cx.tenant_id.to_string()));
    out.push(("X-MS-Exchange-CrossTenant-AuthAs", auth_as.to_string()));
    out.push(("X-MS-Exchange-CrossTenant-AuthSource", cx.server_name.to_string()));
    out.push(("X-MS-Exchange-CrossTenant-FromEntityHeader", FromEntity::of(inbound).as_str().to_string()));
    out.push((
        "X-MS-Exchange-CrossTenant-OriginalAttributedTenantConnectingIp",
        format!("TenantId={}; Ip=[{}]; Helo=[{}]", cx.tenant_id, r.connecting.ip, r.connecting.helo),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_time_and_network_id_forms() {
        // 2022-01-07T05:46:46.642Z
        assert_eq!(arrival_time(Timestamp::from_millis(1_641_534_406_642)), "07 Jan 2022 05:46:46.6420 (UTC)");
        assert_eq!(network_message_id(0x0001_0002_0003_0004), "00010002-0003-4000-8004-000200030004");
    }
}
