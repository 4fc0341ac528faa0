//! Tenant settings that mailsim loads for `mailsim lint` only (exo-behaviour §15.5 L5, L16): they
//! have no behaviour in the simulated transport. Names are EXO's cmdlets' and parameters':
//! `Set-ArcConfig` (§14.6), `Set-HostedConnectionFilterPolicy` (the connection filter policy's IP
//! Allow List, §14.7 `IPV:CAL`) and `Set-HostedContentFilterPolicy` (the Advanced Spam Filter
//! options, §14.8; ORCA-102 lists them). Each table models the tenant's default policy.

/// `Get-ArcConfig` (exo-behaviour §14.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArcConfig {
    /// `ArcTrustedSealers`: the `d=` domains of intermediaries whose ARC seals are trusted.
    pub arc_trusted_sealers: Vec<String>,
}

/// `Get-HostedConnectionFilterPolicy` (the default policy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostedConnectionFilterPolicy {
    /// `IPAllowList`: IPs, CIDR ranges or `a-b` ranges whose mail skips spam filtering.
    pub ip_allow_list: Vec<String>,
}

/// An Advanced Spam Filter option's value (`Set-HostedContentFilterPolicy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsfSetting {
    /// The default.
    #[default]
    Off,
    /// The option acts on mail.
    On,
    /// Test mode: an X-header only.
    Test,
}

/// The Advanced Spam Filter options of `Set-HostedContentFilterPolicy`, as ORCA-102 checks them.
pub const ASF_OPTIONS: [&str; 15] = [
    "IncreaseScoreWithImageLinks",
    "IncreaseScoreWithNumericIps",
    "IncreaseScoreWithRedirectToOtherPort",
    "IncreaseScoreWithBizOrInfoUrls",
    "MarkAsSpamEmptyMessages",
    "MarkAsSpamJavaScriptInHtml",
    "MarkAsSpamFramesInHtml",
    "MarkAsSpamObjectTagsInHtml",
    "MarkAsSpamEmbedTagsInHtml",
    "MarkAsSpamFormTagsInHtml",
    "MarkAsSpamWebBugsInHtml",
    "MarkAsSpamSensitiveWordList",
    "MarkAsSpamFromAddressAuthFail",
    "MarkAsSpamNdrBackscatter",
    "MarkAsSpamSpfRecordHardFail",
];

/// `Get-HostedContentFilterPolicy` (the default policy), its ASF options only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostedContentFilterPolicy {
    /// The options set in the file, by [`ASF_OPTIONS`] name, in file order; an unset one is `Off`.
    pub asf: Vec<(&'static str, AsfSetting)>,
}

impl HostedContentFilterPolicy {
    /// An option's value (`Off` when not set).
    pub fn asf(&self, name: &str) -> AsfSetting {
        self.asf.iter().find(|(n, _)| *n == name).map_or(AsfSetting::Off, |(_, s)| *s)
    }
}
