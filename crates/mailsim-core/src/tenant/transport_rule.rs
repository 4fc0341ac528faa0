//! Mail flow rules (`New-TransportRule`), exo-behaviour §13.2–§13.5: the rule, its conditions,
//! exceptions and actions, and the checks the cmdlet makes on them ([`TransportRule::validate`],
//! [`check_rules`]), shared by the loader and the tenant builder. Evaluation is
//! [`crate::stage::rules`]'s.
//!
//! Text matching (§13.3):
//! - **Words** ([`Words`]) are case-insensitive whole words or phrases: the match must not be
//!   preceded or followed by a letter or digit, so `contoso` matches ` Contoso,` but not
//!   `Acontoso`; `*` is an ordinary character.
//! - **Patterns** ([`Patterns`]) are regular expressions, case-insensitive, matching anywhere. EXO
//!   runs .NET regexes with a 0.3 s timeout (§13.2 limits). mailsim compiles them with the `regex`
//!   crate, which guarantees time linear in the input, so no pattern can run away: what bounds a
//!   pattern is the size of its compiled program and of its lazy DFA
//!   ([`REGEX_SIZE_LIMIT`], [`REGEX_DFA_SIZE_LIMIT`]). A pattern that would exceed them (the
//!   classic `(a+)+` stays small and linear here, but `\w{1000}{1000}` does not) is refused at load
//!   with the regex engine's reason. .NET-only syntax (look-around, backreferences, atomic groups)
//!   is refused at load too, with the same kind of error, rather than matched differently.
//!
//! Limits enforced at load (§13.2, the service description): 300 rules, 8 KB per rule (the
//! length of its parameter values), 20 KB of regex text across all rules, 100 recipients added by
//! all rules together, a disclaimer of at most 5000 characters, `RejectMessageReasonText` at most
//! 1024 characters, `SubjectContainsWords` at most 128 characters, and unique priorities.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::ParameterError;
use crate::addr::{Domain, EmailAddress};
use crate::time::Timestamp;

/// Most rules a tenant may have (§13.2).
pub const MAX_RULES: usize = 300;
/// Most bytes of parameter values in one rule (§13.2: 8 KB).
pub const MAX_RULE_BYTES: usize = 8 * 1024;
/// Most characters of regular expressions across all rules (§13.2: 20 KB).
pub const MAX_REGEX_CHARS: usize = 20 * 1024;
/// Most recipients all rules together may add (§13.2).
pub const MAX_ADDED_RECIPIENTS: usize = 100;
/// Longest disclaimer (§13.2, §13.5).
pub const MAX_DISCLAIMER_CHARS: usize = 5000;
/// Longest `RejectMessageReasonText` (§13.2, cloud).
pub const MAX_REJECT_TEXT_CHARS: usize = 1024;
/// Longest `SubjectContainsWords` value (§13.2).
pub const MAX_SUBJECT_WORDS_CHARS: usize = 128;
/// Size limit of one compiled pattern (`RegexBuilder::size_limit`): stands in for EXO's 0.3 s
/// regex timeout, since the `regex` crate's matching time is linear and only size can run away.
pub const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;
/// Lazy-DFA cache limit of one pattern (`RegexBuilder::dfa_size_limit`).
pub const REGEX_DFA_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// `Mode` (§13.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleMode {
    /// All actions run.
    #[default]
    Enforce,
    /// "Test without Policy Tips": nothing changes in delivery; the match is in the trace.
    Audit,
    /// "Test with Policy Tips": as Audit (mailsim has no Policy Tips).
    AuditAndNotify,
}

impl RuleMode {
    /// Whether actions run.
    pub fn enforces(self) -> bool {
        self == RuleMode::Enforce
    }
}

impl fmt::Display for RuleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleMode::Enforce => "Enforce",
            RuleMode::Audit => "Audit",
            RuleMode::AuditAndNotify => "AuditAndNotify",
        })
    }
}

/// `SenderAddressLocation` (§13.2; `Header` means the `From:` field only, the recommendation
/// where the sources conflict).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SenderAddressLocation {
    /// The `From:` header.
    #[default]
    Header,
    /// MAIL FROM.
    Envelope,
    /// Either.
    HeaderOrEnvelope,
}

/// `RuleErrorAction` (§13.2): what happens when a rule cannot be evaluated or applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleErrorAction {
    /// Deliver as if the rule had not matched.
    #[default]
    Ignore,
    /// Retry rule processing later. mailsim has no failure that a retry would cure (patterns
    /// cannot time out, see the module header), so it is stored and behaves as `Ignore`.
    Defer,
}

/// `FromScope` / `SentToScope` (§13.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Inside the organization.
    InOrganization,
    /// Outside it.
    NotInOrganization,
}

/// `WithImportance`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Importance {
    /// Low.
    Low,
    /// Normal (also a message without an `Importance:` header).
    #[default]
    Normal,
    /// High.
    High,
}

/// `ApplyHtmlDisclaimerLocation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisclaimerLocation {
    /// After the body (the default).
    #[default]
    Append,
    /// Before it.
    Prepend,
}

/// `ApplyHtmlDisclaimerFallbackAction` (§13.5): for a body that cannot be changed (signed or
/// encrypted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisclaimerFallback {
    /// Wrap the original as an attachment of a new message carrying the disclaimer (the default).
    #[default]
    Wrap,
    /// Deliver without the disclaimer.
    Ignore,
    /// Reject (an NDR).
    Reject,
}

/// Whole words or phrases, case-insensitive (§13.3 "Words"). ASCII words are searched all at
/// once with an Aho-Corasick automaton (ASCII case-insensitive) built at load, so a rule set
/// reads a message body once per condition rather than once per word; words with other
/// characters are compared after Unicode lower-casing.
#[derive(Clone)]
pub struct Words {
    words: Vec<String>,
    ascii: Option<aho_corasick::AhoCorasick>,
    ascii_index: Vec<usize>,
    unicode: Vec<usize>,
}

impl Words {
    /// The words, as written; empty entries are dropped.
    pub fn new<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> =
            words.into_iter().map(|w| w.as_ref().trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
        let (ascii_index, unicode): (Vec<usize>, Vec<usize>) = (0..words.len()).partition(|&i| words[i].is_ascii());
        let ascii = (!ascii_index.is_empty())
            .then(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(ascii_index.iter().map(|&i| words[i].as_bytes()))
                    .ok()
            })
            .flatten();
        Words { words, ascii, ascii_index, unicode }
    }

    /// The words (lower-cased).
    pub fn list(&self) -> &[String] {
        &self.words
    }

    /// The first word found in `text` as a whole word, if any.
    pub fn find(&self, text: &str) -> Option<&str> {
        if let Some(ac) = &self.ascii {
            let bytes = text.as_bytes();
            for m in ac.find_overlapping_iter(bytes) {
                // An ASCII match starts and ends on character boundaries (UTF-8 continuation
                // bytes are never ASCII).
                let before = text[..m.start()].chars().next_back();
                let after = text[m.end()..].chars().next();
                if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
                    return Some(self.words[self.ascii_index[m.pattern().as_usize()]].as_str());
                }
            }
        }
        if self.unicode.is_empty() {
            return None;
        }
        let lower = text.to_lowercase();
        self.unicode.iter().map(|&i| self.words[i].as_str()).find(|w| contains_word(&lower, w))
    }
}

impl fmt::Debug for Words {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Words").field(&self.words).finish()
    }
}

impl PartialEq for Words {
    fn eq(&self, other: &Self) -> bool {
        self.words == other.words
    }
}

impl Eq for Words {}

/// Whether `word` occurs in `text` (both lower-cased) with no letter or digit on either side.
fn contains_word(text: &str, word: &str) -> bool {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let start = from + i;
        let end = start + word.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return true;
        }
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Regular expressions, case-insensitive, matching anywhere (§13.3 "Patterns"), compiled with the
/// size limits that bound them (module header).
#[derive(Clone)]
pub struct Patterns {
    sources: Vec<String>,
    compiled: Vec<regex::Regex>,
}

impl Patterns {
    /// Compiles every pattern; the error names the pattern and the engine's reason.
    pub fn new<S: AsRef<str>>(sources: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = Patterns { sources: Vec::new(), compiled: Vec::new() };
        for s in sources {
            let s = s.as_ref();
            let re = compile(s).map_err(|e| format!("`{s}` is not a usable pattern: {e}"))?;
            out.sources.push(s.to_string());
            out.compiled.push(re);
        }
        Ok(out)
    }

    /// The patterns as written.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The first pattern that matches `text`, if any.
    pub fn find(&self, text: &str) -> Option<&str> {
        self.compiled.iter().position(|re| re.is_match(text)).map(|i| self.sources[i].as_str())
    }

    /// Characters of pattern text (the §13.2 20 KB budget).
    pub fn chars(&self) -> usize {
        self.sources.iter().map(|s| s.chars().count()).sum()
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, String> {
    let re = regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "it would compile to more than {limit} bytes (mailsim's bound in place of EXO's 0.3 s regex timeout)"
            ),
            other => {
                let text = other.to_string();
                let last = text.lines().last().unwrap_or("syntax error").trim();
                last.strip_prefix("error: ").unwrap_or(last).to_string()
            }
        })?;
    Ok(re)
}

impl fmt::Debug for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.sources).finish()
    }
}

impl PartialEq for Patterns {
    fn eq(&self, other: &Self) -> bool {
        self.sources == other.sources
    }
}

impl Eq for Patterns {}

/// One `SenderIpRanges` entry: an address, `a-b`, or CIDR (§13.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpRange {
    /// An address or a CIDR block.
    Net(IpNet),
    /// `first-last`, inclusive.
    Span(IpAddr, IpAddr),
}

impl IpRange {
    /// Parses `192.0.2.1`, `192.0.2.0/24` or `192.0.2.1-192.0.2.9`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            return (a.is_ipv4() == b.is_ipv4() && a <= b).then_some(IpRange::Span(a, b));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(IpRange::Net(IpNet::from(ip)));
        }
        s.parse::<IpNet>().ok().map(IpRange::Net)
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            IpRange::Net(n) => n.contains(&ip),
            IpRange::Span(a, b) => *a <= ip && ip <= *b,
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpRange::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            IpRange::Net(n) => write!(f, "{n}"),
            IpRange::Span(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// A condition or, in [`TransportRule::exceptions`], its `ExceptIf` twin (§13.4). Each variant is
/// named after its parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `FromScope`.
    FromScope(Scope),
    /// `SentToScope` (per recipient).
    SentToScope(Scope),
    /// `From`.
    From(Vec<EmailAddress>),
    /// `SentTo` (per recipient).
    SentTo(Vec<EmailAddress>),
    /// `FromMemberOf`: groups of `[Directory]`.
    FromMemberOf(Vec<EmailAddress>),
    /// `SentToMemberOf` (per recipient).
    SentToMemberOf(Vec<EmailAddress>),
    /// `SenderDomainIs`: the domains and their subdomains (§13.4 recommendation).
    SenderDomainIs(Vec<Domain>),
    /// `RecipientDomainIs` (per recipient), subdomains included.
    RecipientDomainIs(Vec<Domain>),
    /// `FromAddressContainsWords`.
    FromAddressContainsWords(Words),
    /// `FromAddressMatchesPatterns`.
    FromAddressMatchesPatterns(Patterns),
    /// `RecipientAddressContainsWords` (per recipient).
    RecipientAddressContainsWords(Words),
    /// `RecipientAddressMatchesPatterns` (per recipient).
    RecipientAddressMatchesPatterns(Patterns),
    /// `SenderIpRanges`: the connecting IP (the declared address of the last hop, §13.4).
    SenderIpRanges(Vec<IpRange>),
    /// `HeaderContainsMessageHeader` + `HeaderContainsWords`.
    HeaderContainsWords {
        /// The header name.
        header: String,
        /// The words.
        words: Words,
    },
    /// `HeaderMatchesMessageHeader` + `HeaderMatchesPatterns`.
    HeaderMatchesPatterns {
        /// The header name.
        header: String,
        /// The patterns.
        patterns: Patterns,
    },
    /// `SubjectContainsWords`.
    SubjectContainsWords(Words),
    /// `SubjectOrBodyContainsWords`.
    SubjectOrBodyContainsWords(Words),
    /// `SubjectMatchesPatterns`.
    SubjectMatchesPatterns(Patterns),
    /// `MessageSizeOver` (bytes; the message is at least this big).
    MessageSizeOver(u64),
    /// `AttachmentSizeOver` (bytes; any attachment at least this big).
    AttachmentSizeOver(u64),
    /// `SCLOver` (SCL at least this; §13.1 recommendation: only an SCL set earlier counts).
    SclOver(i8),
    /// `AnyOfToHeader` (all recipients of the fork).
    AnyOfToHeader(Vec<EmailAddress>),
    /// `AnyOfCcHeader`.
    AnyOfCcHeader(Vec<EmailAddress>),
    /// `AnyOfToCcHeader`.
    AnyOfToCcHeader(Vec<EmailAddress>),
    /// `WithImportance`.
    WithImportance(Importance),
}

impl Condition {
    /// The parameter name (`ExceptIf` is prefixed by callers for exceptions).
    pub fn parameter(&self) -> &'static str {
        match self {
            Condition::FromScope(_) => "FromScope",
            Condition::SentToScope(_) => "SentToScope",
            Condition::From(_) => "From",
            Condition::SentTo(_) => "SentTo",
            Condition::FromMemberOf(_) => "FromMemberOf",
            Condition::SentToMemberOf(_) => "SentToMemberOf",
            Condition::SenderDomainIs(_) => "SenderDomainIs",
            Condition::RecipientDomainIs(_) => "RecipientDomainIs",
            Condition::FromAddressContainsWords(_) => "FromAddressContainsWords",
            Condition::FromAddressMatchesPatterns(_) => "FromAddressMatchesPatterns",
            Condition::RecipientAddressContainsWords(_) => "RecipientAddressContainsWords",
            Condition::RecipientAddressMatchesPatterns(_) => "RecipientAddressMatchesPatterns",
            Condition::SenderIpRanges(_) => "SenderIpRanges",
            Condition::HeaderContainsWords { .. } => "HeaderContainsMessageHeader",
            Condition::HeaderMatchesPatterns { .. } => "HeaderMatchesMessageHeader",
            Condition::SubjectContainsWords(_) => "SubjectContainsWords",
            Condition::SubjectOrBodyContainsWords(_) => "SubjectOrBodyContainsWords",
            Condition::SubjectMatchesPatterns(_) => "SubjectMatchesPatterns",
            Condition::MessageSizeOver(_) => "MessageSizeOver",
            Condition::AttachmentSizeOver(_) => "AttachmentSizeOver",
            Condition::SclOver(_) => "SCLOver",
            Condition::AnyOfToHeader(_) => "AnyOfToHeader",
            Condition::AnyOfCcHeader(_) => "AnyOfCcHeader",
            Condition::AnyOfToCcHeader(_) => "AnyOfToCcHeader",
            Condition::WithImportance(_) => "WithImportance",
        }
    }

    /// Whether the condition is judged per recipient, forking the message (§13.3).
    pub fn per_recipient(&self) -> bool {
        matches!(
            self,
            Condition::SentToScope(_)
                | Condition::SentTo(_)
                | Condition::SentToMemberOf(_)
                | Condition::RecipientDomainIs(_)
                | Condition::RecipientAddressContainsWords(_)
                | Condition::RecipientAddressMatchesPatterns(_)
        )
    }

    /// The patterns it holds, for the §13.2 budget.
    fn patterns(&self) -> Option<&Patterns> {
        match self {
            Condition::FromAddressMatchesPatterns(p)
            | Condition::RecipientAddressMatchesPatterns(p)
            | Condition::SubjectMatchesPatterns(p)
            | Condition::HeaderMatchesPatterns { patterns: p, .. } => Some(p),
            _ => None,
        }
    }
}

/// An action (§13.5), named after its parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `RouteMessageOutboundConnector`: the connector's name.
    RouteMessageOutboundConnector(String),
    /// `RouteMessageOutboundRequireTls $true`.
    RouteMessageOutboundRequireTls,
    /// `SetHeaderName` + `SetHeaderValue`.
    SetHeader {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
    /// `RemoveHeader`.
    RemoveHeader(String),
    /// `PrependSubject`.
    PrependSubject(String),
    /// `ApplyHtmlDisclaimerText` with its location and fallback.
    ApplyHtmlDisclaimer {
        /// The disclaimer (HTML).
        text: String,
        /// `ApplyHtmlDisclaimerLocation`.
        location: DisclaimerLocation,
        /// `ApplyHtmlDisclaimerFallbackAction`.
        fallback: DisclaimerFallback,
    },
    /// `RejectMessageReasonText` / `RejectMessageEnhancedStatusCode`.
    Reject {
        /// The text, if given.
        text: Option<String>,
        /// The code (`5.7.1`, `5.7.900`–`5.7.999`), if given, as its detail number.
        code: Option<u16>,
    },
    /// `DeleteMessage $true`.
    DeleteMessage,
    /// `RedirectMessageTo`.
    RedirectMessageTo(Vec<EmailAddress>),
    /// `BlindCopyTo`.
    BlindCopyTo(Vec<EmailAddress>),
    /// `AddToRecipients`.
    AddToRecipients(Vec<EmailAddress>),
    /// `CopyTo`.
    CopyTo(Vec<EmailAddress>),
    /// `SetSCL`.
    SetScl(i8),
    /// `Quarantine $true`.
    Quarantine,
}

impl Action {
    /// The action's name as `AGENTINFO` shows it (`action=` of §13.6).
    pub fn name(&self) -> &'static str {
        match self {
            Action::RouteMessageOutboundConnector(_) => "RouteMessageOutboundConnector",
            Action::RouteMessageOutboundRequireTls => "RouteMessageOutboundRequireTls",
            Action::SetHeader { .. } => "SetHeader",
            Action::RemoveHeader(_) => "RemoveHeader",
            Action::PrependSubject(_) => "PrependSubject",
            Action::ApplyHtmlDisclaimer { .. } => "ApplyHtmlDisclaimer",
            Action::Reject { .. } => "RejectMessage",
            Action::DeleteMessage => "DeleteMessage",
            Action::RedirectMessageTo(_) => "RedirectMessage",
            Action::BlindCopyTo(_) => "BlindCopyTo",
            Action::AddToRecipients(_) => "AddToRecipients",
            Action::CopyTo(_) => "CopyTo",
            Action::SetScl(_) => "SetSCL",
            Action::Quarantine => "Quarantine",
        }
    }

    /// Recipients the action adds (the §13.2 budget of 100).
    pub fn added_recipients(&self) -> usize {
        match self {
            Action::RedirectMessageTo(a) | Action::BlindCopyTo(a) | Action::AddToRecipients(a) | Action::CopyTo(a) => {
                a.len()
            }
            _ => 0,
        }
    }
}

/// One mail flow rule with EXO's parameters (§13.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportRule {
    /// `Name`.
    pub name: String,
    /// The rule's GUID as `Get-TransportRule` shows it (`Guid`); derived from the name when the
    /// file gives none, so it is the same on every run.
    pub guid: String,
    /// `Priority`: 0 first.
    pub priority: u32,
    /// `State` / `Enabled`.
    pub enabled: bool,
    /// `Mode`.
    pub mode: RuleMode,
    /// `StopRuleProcessing`.
    pub stop_rule_processing: bool,
    /// `ActivationDate` (UTC, §13.2 recommendation).
    pub activation_date: Option<Timestamp>,
    /// `ExpiryDate` (UTC).
    pub expiry_date: Option<Timestamp>,
    /// `SenderAddressLocation`.
    pub sender_address_location: SenderAddressLocation,
    /// `RuleErrorAction`.
    pub rule_error_action: RuleErrorAction,
    /// Conditions (AND).
    pub conditions: Vec<Condition>,
    /// Exceptions (OR).
    pub exceptions: Vec<Condition>,
    /// Actions, in the order they apply.
    pub actions: Vec<Action>,
    /// `Comments`.
    pub comments: Option<String>,
}

impl TransportRule {
    /// A rule with `New-TransportRule`'s defaults: enabled, Enforce, no condition, no action.
    pub fn new(name: &str, priority: u32) -> Self {
        Self {
            name: name.to_string(),
            guid: guid_for(name),
            priority,
            enabled: true,
            mode: RuleMode::Enforce,
            stop_rule_processing: false,
            activation_date: None,
            expiry_date: None,
            sender_address_location: SenderAddressLocation::Header,
            rule_error_action: RuleErrorAction::Ignore,
            conditions: Vec::new(),
            exceptions: Vec::new(),
            actions: Vec::new(),
            comments: None,
        }
    }

    /// Whether the rule is in force at `now`: enabled, and inside its activation window.
    pub fn active_at(&self, now: Timestamp) -> bool {
        self.enabled && self.activation_date.is_none_or(|a| now >= a) && self.expiry_date.is_none_or(|e| now < e)
    }

    /// What `New-TransportRule` refuses in one rule (§13.2, §13.5).
    pub fn validate(&self) -> Result<(), ParameterError> {
        if self.name.trim().is_empty() {
            return Err(ParameterError::new("Name", "a rule needs a name"));
        }
        if self.name.chars().count() > 64 {
            return Err(ParameterError::new("Name", "a rule name has at most 64 characters"));
        }
        if self.actions.is_empty() && !self.stop_rule_processing {
            return Err(ParameterError::new("Name", "the rule has no action")
                .hint("give it an action (RouteMessageOutboundConnector, SetHeaderName, ...) or StopRuleProcessing"));
        }
        if let (Some(a), Some(e)) = (self.activation_date, self.expiry_date)
            && e <= a
        {
            return Err(ParameterError::new("ExpiryDate", "ExpiryDate must be later than ActivationDate"));
        }
        let rejecting = self.actions.iter().any(|a| matches!(a, Action::Reject { .. } | Action::DeleteMessage));
        let redirecting = self.actions.iter().any(|a| matches!(a, Action::RedirectMessageTo(_)));
        if rejecting && redirecting {
            return Err(ParameterError::new("RedirectMessageTo", "a rule cannot both reject or delete and redirect")
                .hint("§13.3: some actions exclude others; make two rules"));
        }
        for a in &self.actions {
            match a {
                Action::Reject { text, code } => {
                    if let Some(t) = text
                        && t.chars().count() > MAX_REJECT_TEXT_CHARS
                    {
                        return Err(ParameterError::new(
                            "RejectMessageReasonText",
                            format!("at most {MAX_REJECT_TEXT_CHARS} characters"),
                        ));
                    }
                    if let Some(c) = code
                        && !(*c == 1 || (900..=999).contains(c))
                    {
                        return Err(ParameterError::new(
                            "RejectMessageEnhancedStatusCode",
                            format!("5.7.{c} is not allowed"),
                        )
                        .hint("use 5.7.1 or a code from 5.7.900 to 5.7.999"));
                    }
                }
                Action::ApplyHtmlDisclaimer { text, .. } if text.chars().count() > MAX_DISCLAIMER_CHARS => {
                    return Err(ParameterError::new(
                        "ApplyHtmlDisclaimerText",
                        format!("a disclaimer has at most {MAX_DISCLAIMER_CHARS} characters"),
                    ));
                }
                Action::SetHeader { name, .. } if !is_header_name(name) => {
                    return Err(ParameterError::new("SetHeaderName", format!("`{name}` is not a header name")));
                }
                Action::RemoveHeader(name) if !is_header_name(name) => {
                    return Err(ParameterError::new("RemoveHeader", format!("`{name}` is not a header name")));
                }
                Action::RemoveHeader(name) if name.eq_ignore_ascii_case(LOOP_HEADER) => {
                    return Err(ParameterError::new("RemoveHeader", format!("{LOOP_HEADER} cannot be removed"))
                        .hint("§13.5: the loop header protects against rule loops"));
                }
                Action::SetScl(n) if !(-1..=9).contains(n) => {
                    return Err(ParameterError::new("SetSCL", "SCL is -1 to 9"));
                }
                _ => {}
            }
        }
        for (c, parameter) in
            self.conditions.iter().map(|c| (c, c.parameter())).chain(self.exceptions.iter().map(|c| (c, c.parameter())))
        {
            match c {
                Condition::SubjectContainsWords(w)
                    if w.list().iter().map(|w| w.chars().count()).sum::<usize>() > MAX_SUBJECT_WORDS_CHARS =>
                {
                    return Err(ParameterError::new(
                        "SubjectContainsWords",
                        format!("at most {MAX_SUBJECT_WORDS_CHARS} characters"),
                    ));
                }
                Condition::HeaderContainsWords { header, .. } | Condition::HeaderMatchesPatterns { header, .. }
                    if !is_header_name(header) =>
                {
                    return Err(ParameterError::new(parameter, format!("`{header}` is not a header name")));
                }
                Condition::SclOver(n) if !(-1..=9).contains(n) => {
                    return Err(ParameterError::new("SCLOver", "SCL is -1 to 9"));
                }
                _ => {}
            }
        }
        let bytes = self.approximate_bytes();
        if bytes > MAX_RULE_BYTES {
            return Err(ParameterError::new(
                "Name",
                format!("the rule is {bytes} bytes; a rule may be at most {MAX_RULE_BYTES} bytes (§13.2)"),
            ));
        }
        Ok(())
    }

    /// The size of the rule's parameter values, for the 8 KB limit.
    fn approximate_bytes(&self) -> usize {
        format!("{:?}{:?}{:?}", self.conditions, self.exceptions, self.actions).len() + self.name.len()
    }

    /// Characters of patterns in the rule.
    pub fn regex_chars(&self) -> usize {
        self.conditions.iter().chain(&self.exceptions).filter_map(Condition::patterns).map(Patterns::chars).sum()
    }
}

/// The rules-loop header (§13.5, \[B6]).
pub const LOOP_HEADER: &str = "X-MS-Exchange-Transport-Rules-Loop";

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// A stable GUID-shaped id for a rule without one: FNV-1a of the name, spread over 128 bits.
pub fn guid_for(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut g: u64 = 0x8422_2325_cbf2_9ce4;
    for b in name.to_lowercase().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        g = (g ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(7);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (g >> 52) & 0xfff,
        g & 0xffff_ffff_ffff
    )
}

/// A rule the set of rules breaks: the index (0-based, configuration order) and the error.
pub type RuleSetError = (usize, ParameterError);

/// The checks across rules (§13.2): at most 300 rules, unique priorities, 20 KB of patterns, 100
/// added recipients. Priorities are unique in a file; [`insert_at_priority`] is how a change
/// that takes an occupied priority shifts the others.
pub fn check_rules(rules: &[TransportRule]) -> Result<(), RuleSetError> {
    if rules.len() > MAX_RULES {
        return Err((MAX_RULES, ParameterError::new("Name", format!("a tenant has at most {MAX_RULES} rules"))));
    }
    let mut regex = 0;
    let mut added = 0;
    for (i, r) in rules.iter().enumerate() {
        r.validate().map_err(|e| (i, e))?;
        if let Some(first) = rules[..i].iter().position(|o| o.name.trim().eq_ignore_ascii_case(r.name.trim())) {
            return Err((
                i,
                ParameterError::new(
                    "Name",
                    format!("a rule named `{}` already exists (TransportRule[{}])", r.name, first + 1),
                ),
            ));
        }
        if let Some(first) = rules[..i].iter().position(|o| o.priority == r.priority) {
            return Err((
                i,
                ParameterError::new(
                    "Priority",
                    format!("priority {} is already taken by `{}` (TransportRule[{}])", r.priority, rules[first].name, first + 1),
                )
                .hint("priorities are unique; in PowerShell, Set-TransportRule -Priority on a taken value moves the others down (exo-behaviour §13.2)"),
            ));
        }
        regex += r.regex_chars();
        if regex > MAX_REGEX_CHARS {
            return Err((
                i,
                ParameterError::new(
                    "Name",
                    format!("more than {MAX_REGEX_CHARS} characters of patterns across all rules (§13.2)"),
                ),
            ));
        }
        added += r.actions.iter().map(Action::added_recipients).sum::<usize>();
        if added > MAX_ADDED_RECIPIENTS {
            return Err((
                i,
                ParameterError::new(
                    "Name",
                    format!("rules add more than {MAX_ADDED_RECIPIENTS} recipients together (§13.2)"),
                ),
            ));
        }
    }
    Ok(())
}

/// Places `rule` at its priority as `Set-TransportRule -Priority` does (§13.2): a rule already at
/// that priority and every later one move down by one; priorities past the end become the last.
/// The result is renumbered 0..N-1 in order.
pub fn insert_at_priority(rules: &mut Vec<TransportRule>, mut rule: TransportRule) {
    rules.retain(|r| !r.name.eq_ignore_ascii_case(&rule.name));
    rules.sort_by_key(|r| r.priority);
    let at = (rule.priority as usize).min(rules.len());
    rule.priority = at as u32;
    rules.insert(at, rule);
    for (i, r) in rules.iter_mut().enumerate() {
        r.priority = i as u32;
    }
}

/// `2026-12-08T09:00:00Z`, `2026-12-08 09:00`, `2026-12-08T09:00:00` or `2026-12-08`, as UTC.
pub fn parse_date(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    let rfc3339 = time::format_description::well_known::Rfc3339;
    if let Ok(d) = time::OffsetDateTime::parse(t, &rfc3339) {
        return Some(Timestamp::from_millis((d.unix_timestamp_nanos() / 1_000_000) as i64));
    }
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, c.trim_end_matches('Z')),
        None => (t, "00:00:00"),
    };
    let fd = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(date, &fd).ok()?;
    let parts: Vec<&str> = clock.split(':').collect();
    let num = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u8>().ok());
    let clock = time::Time::from_hms(num(0)?, num(1)?, num(2)?).ok()?;
    let at = time::PrimitiveDateTime::new(date, clock).assume_utc();
    Some(Timestamp::from_millis((at.unix_timestamp_nanos() / 1_000_000) as i64))
}

/// A distribution group of `[Directory]` (`New-DistributionGroup -PrimarySmtpAddress`, members
/// by `Add-DistributionGroupMember`); members may be groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributionGroup {
    /// `PrimarySmtpAddress`.
    pub address: EmailAddress,
    /// Members' addresses.
    pub members: Vec<EmailAddress>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §13.3 Words: case-insensitive whole words, `*` literal, phrases.
    #[test]
    fn words_are_whole_words() {
        let rows = [
            ("contoso", " Contoso,", true),
            ("contoso", "Acontoso", false),
            ("contoso", "contosos", false),
            ("pass", "pass", true),
            ("pass", "compass", false),
            ("pass", "spf=pass;", true),
            ("do not click", "Please DO NOT CLICK here", true),
            ("do not click", "do not clicks", false),
            ("*urgent*", "an *URGENT* note", true),
            ("*urgent*", "an urgent note", false),
            ("contoso", "a@contoso.test", true),
            ("straße", "STRASSE", false),
            ("straße", "Die Straße", true),
        ];
        for (word, text, expected) in rows {
            assert_eq!(Words::new([word]).find(text).is_some(), expected, "{word:?} in {text:?}");
        }
        assert!(Words::new(["a", "b"]).find("x b y").is_some(), "values OR");
        assert!(Words::new(Vec::<String>::new()).find("anything").is_none());
    }

    /// §13.3 Patterns: case-insensitive, anywhere; what the engine cannot bound is refused.
    #[test]
    fn patterns_match_anywhere_and_are_bounded() {
        let p = Patterns::new([r"^invoice\s+\d+"]).unwrap();
        assert!(p.find("INVOICE 42 attached").is_some());
        assert!(p.find("re: invoice 42").is_none());
        assert!(Patterns::new(["partner"]).unwrap().find("mx.PARTNER-x.example").is_some());
        // (a+)+ stays linear with this engine: it compiles and answers at once.
        let evil = Patterns::new([r"^(a+)+$"]).unwrap();
        assert!(evil.find(&format!("{}!", "a".repeat(10_000))).is_none());
        let e = Patterns::new([r"\w{1000}{1000}"]).unwrap_err();
        assert!(e.contains("would compile to more than"), "{e}");
        let e = Patterns::new([r"(?<=x)y"]).unwrap_err();
        assert!(e.contains("not a usable pattern"), "{e}");
        assert!(Patterns::new(["(unclosed"]).is_err());
    }

    #[test]
    fn ip_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let rows = [
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.0/24", "192.0.2.77", true),
            ("192.0.2.0/24", "192.0.3.1", false),
            ("192.0.2.10-192.0.2.20", "192.0.2.15", true),
            ("192.0.2.10-192.0.2.20", "192.0.2.21", false),
        ];
        for (range, addr, expected) in rows {
            assert_eq!(IpRange::parse(range).unwrap().contains(ip(addr)), expected, "{addr} in {range}");
        }
        assert!(IpRange::parse("192.0.2.20-192.0.2.10").is_none());
        assert!(IpRange::parse("nope").is_none());
    }

    fn rule(name: &str, priority: u32) -> TransportRule {
        let mut r = TransportRule::new(name, priority);
        r.actions.push(Action::SetScl(-1));
        r
    }

    #[test]
    fn rule_set_limits() {
        assert!(check_rules(&[rule("a", 0), rule("b", 1)]).is_ok());
        let (i, e) = check_rules(&[rule("a", 0), rule("b", 0)]).unwrap_err();
        assert_eq!((i, e.parameter), (1, "Priority"));
        let (i, e) = check_rules(&[rule("a", 0), rule("A", 1)]).unwrap_err();
        assert_eq!((i, e.parameter), (1, "Name"));
        let mut r = rule("c", 0);
        r.actions = vec![Action::Reject { text: None, code: Some(850) }];
        assert_eq!(r.validate().unwrap_err().parameter, "RejectMessageEnhancedStatusCode");
        let mut r = rule("d", 0);
        r.actions = vec![];
        assert!(r.validate().is_err(), "no action");
        let mut r = rule("e", 0);
        r.actions = vec![Action::RemoveHeader(LOOP_HEADER.to_string())];
        assert!(r.validate().is_err());
        let many: Vec<TransportRule> = (0..301).map(|i| rule(&format!("r{i}"), i)).collect();
        assert!(check_rules(&many).is_err());
        let mut r = rule("f", 0);
        let to: Vec<EmailAddress> = (0..101).map(|i| format!("u{i}@contoso.test").parse().unwrap()).collect();
        r.actions = vec![Action::BlindCopyTo(to)];
        assert!(check_rules(&[r]).unwrap_err().1.message.contains("100 recipients"));
        let big = "a".repeat(3500);
        let heavy: Vec<TransportRule> = (0..3)
            .map(|i| {
                let mut r = rule(&format!("g{i}"), i);
                r.conditions =
                    (0..2).map(|_| Condition::SubjectMatchesPatterns(Patterns::new([big.as_str()]).unwrap())).collect();
                r
            })
            .collect();
        assert!(check_rules(&heavy[..2]).is_ok());
        assert!(check_rules(&heavy).unwrap_err().1.message.contains("characters of patterns"));
        let mut r = rule("h", 0);
        r.conditions =
            (0..3).map(|_| Condition::SubjectMatchesPatterns(Patterns::new([big.as_str()]).unwrap())).collect();
        assert!(check_rules(&[r]).unwrap_err().1.message.contains("8192 bytes"), "8 KB per rule");
    }

    /// §13.2: an occupied priority moves that rule and later ones down.
    #[test]
    fn insertion_at_an_occupied_priority_shifts_the_rest() {
        let mut rules = vec![rule("a", 0), rule("b", 1), rule("c", 2)];
        insert_at_priority(&mut rules, rule("new", 1));
        let order: Vec<(&str, u32)> = rules.iter().map(|r| (r.name.as_str(), r.priority)).collect();
        assert_eq!(order, [("a", 0), ("new", 1), ("b", 2), ("c", 3)]);
        insert_at_priority(&mut rules, rule("c", 0));
        let order: Vec<(&str, u32)> = rules.iter().map(|r| (r.name.as_str(), r.priority)).collect();
        assert_eq!(order, [("c", 0), ("a", 1), ("new", 2), ("b", 3)]);
        insert_at_priority(&mut rules, rule("last", 99));
        assert_eq!(rules.last().map(|r| r.priority), Some(4));
    }

    #[test]
    fn activation_window_and_guid() {
        let mut r = rule("a", 0);
        r.activation_date = Some(Timestamp::from_secs(100));
        r.expiry_date = Some(Timestamp::from_secs(200));
        assert!(!r.active_at(Timestamp::from_secs(99)));
        assert!(r.active_at(Timestamp::from_secs(100)));
        assert!(!r.active_at(Timestamp::from_secs(200)));
        r.enabled = false;
        assert!(!r.active_at(Timestamp::from_secs(150)));
        let g = guid_for("Force Partner X via dedicated connector");
        assert_eq!(g.len(), 36);
        assert_eq!(g, guid_for("force partner x via dedicated connector"));
        assert_ne!(g, guid_for("other"));
    }
}
