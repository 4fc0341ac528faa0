//! The tenant's anti-phishing policy as far as DMARC is concerned (`Set-AntiPhishPolicy`,
//! exo-behaviour §14.5): whether a failing sender's published DMARC policy is honoured and what
//! happens to the message instead of the policy's own action. Names and defaults are EXO's.

/// What to do with a message whose DMARC `p=reject` failure is honoured (`DmarcRejectAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DmarcRejectAction {
    /// Refuse it in the session with `550 5.7.509` (the default).
    #[default]
    Reject,
    /// Hold it in quarantine.
    Quarantine,
}

/// What to do with a message whose DMARC `p=quarantine` failure is honoured
/// (`DmarcQuarantineAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DmarcQuarantineAction {
    /// Hold it in quarantine (the default).
    #[default]
    Quarantine,
    /// Deliver it to the Junk Email folder.
    MoveToJmf,
}

/// What spoof intelligence does with a failing message when the policy is not honoured
/// (`AuthenticationFailAction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthenticationFailAction {
    /// Deliver it to the Junk Email folder (the default).
    #[default]
    MoveToJmf,
    /// Hold it in quarantine.
    Quarantine,
}

/// `Get-AntiPhishPolicy` (the default policy), the DMARC-related parameters only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AntiPhishPolicy {
    /// `HonorDmarcPolicy` (default `$true` since 2023).
    pub honor_dmarc_policy: bool,
    /// `DmarcRejectAction`.
    pub dmarc_reject_action: DmarcRejectAction,
    /// `DmarcQuarantineAction`.
    pub dmarc_quarantine_action: DmarcQuarantineAction,
    /// `AuthenticationFailAction`.
    pub authentication_fail_action: AuthenticationFailAction,
    /// `EnableSpoofIntelligence` (default `$true`).
    pub enable_spoof_intelligence: bool,
}

impl Default for AntiPhishPolicy {
    fn default() -> Self {
        Self {
            honor_dmarc_policy: true,
            dmarc_reject_action: DmarcRejectAction::Reject,
            dmarc_quarantine_action: DmarcQuarantineAction::Quarantine,
            authentication_fail_action: AuthenticationFailAction::MoveToJmf,
            enable_spoof_intelligence: true,
        }
    }
}
