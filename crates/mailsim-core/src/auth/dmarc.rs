//! DMARC as EXO applies it: alignment (§14.1), the DMARC result, the tenant's anti-phishing
//! policy (§14.5) and composite authentication (§14.4). Pure functions over the evaluator's
//! results ([`super::AuthFacts`]); table-tested row by row.

use super::{Alignment, DkimVerdict, DmarcLookup, DmarcPolicy, SpfVerdict};
use crate::tenant::AntiPhishPolicy;
use crate::tenant::anti_phish::{AuthenticationFailAction, DmarcQuarantineAction, DmarcRejectAction};

/// Second-level labels under which registrations happen (`example.co.uk`): the organizational
/// domain keeps three labels there. mailsim's choice: a short built-in list instead of the Public
/// Suffix List, enough for the simulated worlds (`.test`, `.example`, common ccTLD forms).
const TWO_LABEL_SUFFIXES: [&str; 12] =
    ["co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "co.jp", "co.nz", "com.br", "co.za", "com.cn", "co.in"];

/// The organizational domain of `domain` (RFC 7489 §3.2, approximated with a
/// built-in list of two-label suffixes), lower-case, without a trailing dot.
pub fn organizational_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = d.split('.').collect();
    let keep = if labels.len() >= 3 && TWO_LABEL_SUFFIXES.contains(&labels[labels.len() - 2..].join(".").as_str()) {
        3
    } else {
        2
    };
    labels[labels.len().saturating_sub(keep)..].join(".")
}

/// Whether `authenticated` (the SPF domain or a DKIM `d=`) aligns with the From domain (§14.1:
/// relaxed = same organizational domain, `email.dropbox.com` aligns with `dropbox.com`; strict =
/// the same name).
pub fn aligned(authenticated: &str, from: &str, mode: Alignment) -> bool {
    let (a, f) = (authenticated.trim_end_matches('.'), from.trim_end_matches('.'));
    match mode {
        Alignment::Strict => a.eq_ignore_ascii_case(f),
        Alignment::Relaxed => organizational_domain(a) == organizational_domain(f),
    }
}

/// The DMARC result (`dmarc=` of §14.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarcResult {
    /// An aligned SPF or DKIM pass, with a record.
    Pass,
    /// A record and nothing aligned passed.
    Fail,
    /// No record, but an aligned pass (would have passed).
    BestGuessPass,
    /// No record (or no From domain).
    None,
    /// The record lookup failed temporarily.
    TempError,
    /// The record is malformed.
    PermError,
}

impl DmarcResult {
    /// The header's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::BestGuessPass => "bestguesspass",
            Self::None => "none",
            Self::TempError => "temperror",
            Self::PermError => "permerror",
        }
    }
}

/// Which checks aligned, for the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlignedPasses {
    /// An SPF pass whose domain aligns.
    pub spf: bool,
    /// A DKIM pass whose `d=` aligns.
    pub dkim: bool,
}

/// The DMARC result for the From domain given SPF (result and domain), DKIM and the record.
pub fn dmarc_result(
    from: Option<&str>,
    spf: SpfVerdict,
    spf_domain: &str,
    dkim: &[(String, DkimVerdict)],
    record: &DmarcLookup,
) -> (DmarcResult, AlignedPasses) {
    let Some(from) = from else { return (DmarcResult::None, AlignedPasses::default()) };
    let (aspf, adkim) = match record {
        DmarcLookup::Found { aspf, adkim, .. } => (*aspf, *adkim),
        _ => (Alignment::Relaxed, Alignment::Relaxed),
    };
    let passes = AlignedPasses {
        spf: spf == SpfVerdict::Pass && aligned(spf_domain, from, aspf),
        dkim: dkim.iter().any(|(d, v)| *v == DkimVerdict::Pass && aligned(d, from, adkim)),
    };
    let any = passes.spf || passes.dkim;
    let result = match record {
        DmarcLookup::Found { .. } if any => DmarcResult::Pass,
        DmarcLookup::Found { .. } => DmarcResult::Fail,
        DmarcLookup::NotFound if any => DmarcResult::BestGuessPass,
        DmarcLookup::NotFound => DmarcResult::None,
        DmarcLookup::TempError => DmarcResult::TempError,
        DmarcLookup::PermError => DmarcResult::PermError,
    };
    (result, passes)
}

/// What happens to the message (§14.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Delivered as usual.
    Deliver,
    /// Delivered to the Junk Email folder (`MoveToJmf`).
    Junk,
    /// Held in quarantine.
    Quarantine,
    /// Refused in the session with `550 5.7.509`.
    Reject,
}

impl Disposition {
    /// The trace's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deliver => "Deliver",
            Self::Junk => "MoveToJmf",
            Self::Quarantine => "Quarantine",
            Self::Reject => "Reject",
        }
    }
}

/// The DMARC outcome: `action=` of the header and the disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmarcAction {
    /// `action=` (§14.3: `none`, `quarantine`, `oreject`, `reject`, `temperror`, `permerror`).
    pub action: &'static str,
    /// What happens to the message.
    pub disposition: Disposition,
    /// Whether the sender's policy was honoured (`HonorDmarcPolicy` and, with the MX elsewhere,
    /// Enhanced Filtering on).
    pub honoured: bool,
}

/// §14.5's table. `mx_at_eop`: the recipient domain's MX points at the tenant; `ef_active`:
/// Enhanced Filtering restored the sender on the receiving connector (honouring applies with the
/// MX elsewhere only then).
pub fn dmarc_action(
    result: DmarcResult,
    policy: Option<DmarcPolicy>,
    anti_phish: &AntiPhishPolicy,
    mx_at_eop: bool,
    ef_active: bool,
) -> DmarcAction {
    let deliver = |action| DmarcAction { action, disposition: Disposition::Deliver, honoured: false };
    match result {
        DmarcResult::TempError => return deliver("temperror"),
        DmarcResult::PermError => return deliver("permerror"),
        DmarcResult::Fail => {}
        _ => return deliver("none"),
    }
    let policy = match policy {
        Some(p @ (DmarcPolicy::Quarantine | DmarcPolicy::Reject)) => p,
        _ => return deliver("none"),
    };
    let honoured = anti_phish.honor_dmarc_policy && (mx_at_eop || ef_active);
    // Not honoured: spoof intelligence's AuthenticationFailAction; with spoof intelligence off
    // too, quarantined (§14.5 rows 2 and 3).
    let fallback = if !anti_phish.honor_dmarc_policy && !anti_phish.enable_spoof_intelligence {
        Disposition::Quarantine
    } else {
        match anti_phish.authentication_fail_action {
            AuthenticationFailAction::MoveToJmf => Disposition::Junk,
            AuthenticationFailAction::Quarantine => Disposition::Quarantine,
        }
    };
    let disposition = match (policy, honoured) {
        (DmarcPolicy::Reject, true) => match anti_phish.dmarc_reject_action {
            DmarcRejectAction::Reject => Disposition::Reject,
            DmarcRejectAction::Quarantine => Disposition::Quarantine,
        },
        (_, true) => match anti_phish.dmarc_quarantine_action {
            DmarcQuarantineAction::Quarantine => Disposition::Quarantine,
            DmarcQuarantineAction::MoveToJmf => Disposition::Junk,
        },
        (_, false) => fallback,
    };
    // §14.3: `oreject` whenever a p=reject failure was not rejected.
    let action = match (policy, disposition) {
        (DmarcPolicy::Reject, Disposition::Reject) => "reject",
        (DmarcPolicy::Reject, _) => "oreject",
        _ => "quarantine",
    };
    DmarcAction { action, disposition, honoured }
}

/// Composite authentication (§14.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompAuth {
    /// `pass`, `fail`, `softpass` or `none`.
    pub result: &'static str,
    /// The three-digit reason.
    pub reason: &'static str,
}

impl CompAuth {
    /// `fail reason=000`, the scenario vocabulary's form.
    pub fn text(&self) -> String {
        format!("{} reason={}", self.result, self.reason)
    }
}

/// §14.4's recommended table over (DMARC result, policy, own domain). mailsim's choices where the
/// reference has no code: temperror/permerror give `none reason=300` ("not checked"); ARC (130) is
/// not evaluated.
pub fn compauth(result: DmarcResult, policy: Option<DmarcPolicy>, own_domain: bool) -> CompAuth {
    let c = |result, reason| CompAuth { result, reason };
    let strong = matches!(policy, Some(DmarcPolicy::Quarantine | DmarcPolicy::Reject));
    match result {
        DmarcResult::Pass => c("pass", "100"),
        DmarcResult::BestGuessPass => c("pass", "109"),
        DmarcResult::Fail if strong && own_domain => c("fail", "010"),
        DmarcResult::Fail if strong => c("fail", "000"),
        DmarcResult::Fail | DmarcResult::None if own_domain => c("fail", "601"),
        DmarcResult::Fail | DmarcResult::None => c("fail", "001"),
        DmarcResult::TempError | DmarcResult::PermError => c("none", "300"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DmarcResult as R;

    #[test]
    fn alignment_table() {
        let rows = [
            ("email.dropbox.com", "dropbox.com", Alignment::Relaxed, true),
            ("email.dropbox.com", "dropbox.com", Alignment::Strict, false),
            ("dropbox.com", "DROPBOX.com.", Alignment::Strict, true),
            ("mail.example.co.uk", "example.co.uk", Alignment::Relaxed, true),
            ("other.co.uk", "example.co.uk", Alignment::Relaxed, false),
            ("gateway.example", "partner.example", Alignment::Relaxed, false),
            ("a.b.partner.test", "x.partner.test", Alignment::Relaxed, true),
        ];
        for (a, f, mode, want) in rows {
            assert_eq!(aligned(a, f, mode), want, "{a} vs {f} {mode:?}");
        }
    }

    fn found(policy: DmarcPolicy) -> DmarcLookup {
        DmarcLookup::Found { policy, adkim: Alignment::Relaxed, aspf: Alignment::Relaxed }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn dmarc_result_table() {
        let pass = |d: &str| vec![(d.to_string(), DkimVerdict::Pass)];
        let rows: Vec<(Option<&str>, SpfVerdict, &str, Vec<(String, DkimVerdict)>, DmarcLookup, R)> = vec![
            // Gateway without EF: SPF fails on the gateway IP, the aligned signature passes ([O26]).
            (
                Some("partner.example"),
                SpfVerdict::SoftFail,
                "partner.example",
                pass("partner.example"),
                found(DmarcPolicy::Reject),
                R::Pass,
            ),
            (Some("partner.example"), SpfVerdict::Fail, "partner.example", vec![], found(DmarcPolicy::Reject), R::Fail),
            // An unaligned signature does not help.
            (
                Some("partner.example"),
                SpfVerdict::Fail,
                "partner.example",
                pass("esp.example"),
                found(DmarcPolicy::None),
                R::Fail,
            ),
            // A failing aligned signature does not either.
            (
                Some("partner.example"),
                SpfVerdict::None,
                "partner.example",
                vec![("partner.example".into(), DkimVerdict::Fail("body hash did not verify".into()))],
                found(DmarcPolicy::Quarantine),
                R::Fail,
            ),
            (
                Some("partner.example"),
                SpfVerdict::Pass,
                "bounce.partner.example",
                vec![],
                found(DmarcPolicy::Reject),
                R::Pass,
            ),
            (
                Some("partner.example"),
                SpfVerdict::Pass,
                "partner.example",
                vec![],
                DmarcLookup::NotFound,
                R::BestGuessPass,
            ),
            (Some("partner.example"), SpfVerdict::Fail, "partner.example", vec![], DmarcLookup::NotFound, R::None),
            (
                Some("partner.example"),
                SpfVerdict::Pass,
                "partner.example",
                vec![],
                DmarcLookup::TempError,
                R::TempError,
            ),
            (
                Some("partner.example"),
                SpfVerdict::Pass,
                "partner.example",
                vec![],
                DmarcLookup::PermError,
                R::PermError,
            ),
            (None, SpfVerdict::Pass, "partner.example", vec![], found(DmarcPolicy::Reject), R::None),
        ];
        for (i, (from, spf, spf_domain, dkim, record, want)) in rows.into_iter().enumerate() {
            assert_eq!(dmarc_result(from, spf, spf_domain, &dkim, &record).0, want, "row {i}");
        }
        // Strict SPF alignment: a subdomain MAIL FROM no longer aligns.
        let strict =
            DmarcLookup::Found { policy: DmarcPolicy::Reject, adkim: Alignment::Relaxed, aspf: Alignment::Strict };
        assert_eq!(dmarc_result(Some("p.example"), SpfVerdict::Pass, "b.p.example", &[], &strict).0, R::Fail);
    }

    /// §14.5, one row per cell.
    #[test]
    #[allow(clippy::type_complexity)]
    fn dmarc_action_table() {
        use DmarcPolicy::{None as PNone, Quarantine as PQ, Reject as PR};
        let default = AntiPhishPolicy::default();
        let off = AntiPhishPolicy { honor_dmarc_policy: false, ..AntiPhishPolicy::default() };
        let off_quarantine = AntiPhishPolicy {
            honor_dmarc_policy: false,
            authentication_fail_action: AuthenticationFailAction::Quarantine,
            ..AntiPhishPolicy::default()
        };
        let off_no_spoof = AntiPhishPolicy {
            honor_dmarc_policy: false,
            enable_spoof_intelligence: false,
            ..AntiPhishPolicy::default()
        };
        let reject_to_quarantine =
            AntiPhishPolicy { dmarc_reject_action: DmarcRejectAction::Quarantine, ..AntiPhishPolicy::default() };
        let quarantine_to_junk =
            AntiPhishPolicy { dmarc_quarantine_action: DmarcQuarantineAction::MoveToJmf, ..AntiPhishPolicy::default() };
        let rows: Vec<(R, Option<DmarcPolicy>, &AntiPhishPolicy, bool, bool, &str, Disposition)> = vec![
            // HonorDmarcPolicy $true (default).
            (R::Fail, Some(PR), &default, true, false, "reject", Disposition::Reject),
            (R::Fail, Some(PR), &reject_to_quarantine, true, false, "oreject", Disposition::Quarantine),
            (R::Fail, Some(PQ), &default, true, false, "quarantine", Disposition::Quarantine),
            (R::Fail, Some(PQ), &quarantine_to_junk, true, false, "quarantine", Disposition::Junk),
            (R::Fail, Some(PNone), &default, true, false, "none", Disposition::Deliver),
            // HonorDmarcPolicy $false: AuthenticationFailAction, header oreject.
            (R::Fail, Some(PR), &off, true, false, "oreject", Disposition::Junk),
            (R::Fail, Some(PR), &off_quarantine, true, false, "oreject", Disposition::Quarantine),
            (R::Fail, Some(PQ), &off, true, false, "quarantine", Disposition::Junk),
            // Spoof intelligence off + honour off: quarantined.
            (R::Fail, Some(PR), &off_no_spoof, true, false, "oreject", Disposition::Quarantine),
            (R::Fail, Some(PQ), &off_no_spoof, true, false, "quarantine", Disposition::Quarantine),
            // MX not pointing at EOP: honoured only with EF on.
            (R::Fail, Some(PR), &default, false, false, "oreject", Disposition::Junk),
            (R::Fail, Some(PR), &default, false, true, "reject", Disposition::Reject),
            // Not failures.
            (R::Pass, Some(PR), &default, true, false, "none", Disposition::Deliver),
            (R::None, None, &default, true, false, "none", Disposition::Deliver),
            (R::TempError, None, &default, true, false, "temperror", Disposition::Deliver),
            (R::PermError, None, &default, true, false, "permerror", Disposition::Deliver),
        ];
        for (i, (result, policy, ap, mx, ef, action, disposition)) in rows.into_iter().enumerate() {
            let a = dmarc_action(result, policy, ap, mx, ef);
            assert_eq!((a.action, a.disposition), (action, disposition), "row {i}");
        }
    }

    /// §14.4, one row per code mailsim emits.
    #[test]
    fn compauth_table() {
        use DmarcPolicy::{None as PNone, Quarantine as PQ, Reject as PR};
        let rows = [
            (R::Pass, Some(PR), false, "pass reason=100"),
            (R::BestGuessPass, None, false, "pass reason=109"),
            (R::Fail, Some(PR), false, "fail reason=000"),
            (R::Fail, Some(PQ), false, "fail reason=000"),
            (R::Fail, Some(PR), true, "fail reason=010"),
            (R::Fail, Some(PNone), false, "fail reason=001"),
            (R::None, None, false, "fail reason=001"),
            (R::None, None, true, "fail reason=601"),
            (R::TempError, None, false, "none reason=300"),
            (R::PermError, None, false, "none reason=300"),
        ];
        for (result, policy, own, want) in rows {
            assert_eq!(compauth(result, policy, own).text(), want, "{result:?} {policy:?} own={own}");
        }
    }
}
