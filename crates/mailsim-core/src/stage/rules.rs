//! Rules: the tenant's mail flow rules applied to one accepted message (exo-behaviour §13). Pure:
//! the message, the tenant and the simulated time in; the forks of recipients with their actions
//! applied, and the evidence the trace records, out ([`evaluate`]).
//!
//! Semantics, written down once:
//! - **Where** (§13.1): after inbound acceptance (connector checks, DBEB and the loop check have
//!   run; a rule cannot rescue a refusal) and before categorize and routing. Messages from the
//!   null sender (NDRs) are system messages and skip rules. Changes apply at once (§13.1
//!   recommendation, no 30-minute delay).
//! - **Which rules** (§13.2): enabled rules whose `ActivationDate`/`ExpiryDate` window holds `now`
//!   (UTC), in priority order, 0 first.
//! - **Conditions** (§13.3): all conditions must match (AND); the values of one condition are
//!   alternatives (OR); any exception cancels the rule (OR). A rule with no condition matches
//!   every message. Per-recipient conditions (`SentTo`, `SentToMemberOf`, `SentToScope`,
//!   `RecipientDomainIs`, `RecipientAddress*`) select recipients; the message **forks**: the
//!   matched recipients get the actions, the others are untouched and go on to the next rule. A
//!   per-recipient exception exempts only the recipient it matches (§13.7 (2), inferred); every
//!   other exception (`AnyOf*` included) exempts every recipient of the fork.
//! - **Sender** (§13.2 `SenderAddressLocation`): `Header` is the `From:` field only (the
//!   recommendation where sources conflict; MAIL FROM when there is no `From:`), `Envelope` is MAIL
//!   FROM, `HeaderOrEnvelope` either; it applies to `From`, `FromMemberOf`, `FromAddress*` and
//!   `SenderDomainIs`; other sender conditions read the header.
//! - **Scopes** (§13.4 recommendations): `FromScope InOrganization` = the connection is
//!   authenticated (`AuthAs Internal`, the inbound verdict's `internal`) and the sender is a
//!   mailbox or group of the tenant or in an accepted domain; `NotInOrganization` = the sender's
//!   domain is not accepted. So an anonymous internet message spoofing an accepted domain matches
//!   neither (the inferred note of §13.4). `SentToScope InOrganization` = a mailbox or group of the
//!   tenant, or an accepted domain; `NotInOrganization` = not an accepted domain. Recipient
//!   conditions read the primary address only (§13.2 `RecipientAddressType` recommendation).
//! - **SCL** (§13.1 recommendation): `SCLOver` sees only an SCL set by a higher-priority rule's
//!   `SetSCL`; without one the condition is false.
//! - **Actions** (§13.5), in the order the rule lists them: routing (`RouteMessageOutboundConnector`,
//!   `RouteMessageOutboundRequireTls`) is recorded on the fork for [`crate::stage::route`];
//!   content actions rewrite the fork's copy (`stage/rules/content.rs`); `RejectMessage*` ends the
//!   fork with an NDR after acceptance (`550 5.7.1` or the rule's code, the default text
//!   `Delivery not authorized, message refused`); `DeleteMessage` ends it silently; `Quarantine`
//!   ends it in quarantine; both stop later rules. `RedirectMessageTo` replaces the fork's
//!   recipients; `BlindCopyTo`/`AddToRecipients`/`CopyTo` add a fork with the new recipients
//!   (`AddToRecipients`/`CopyTo` also write them into `To:`/`Cc:`); forks made by a rule continue
//!   with the rules after it and carry the rules-loop mark.
//! - **Loop** (§13.5): a message already redirected or expanded once by rules (it arrived with
//!   `X-MS-Exchange-Transport-Rules-Loop`, or an earlier rule in this pass redirected or expanded
//!   it) and redirected or expanded again fails with `550 5.7.128`.
//! - **Stop** (§13.2): `StopRuleProcessing`, `DeleteMessage` and `Quarantine` skip the later
//!   rules for that fork.
//! - **Test modes** (§13.2, §13.6): an `Audit` or `AuditAndNotify` rule changes nothing (not even
//!   `StopRuleProcessing`); its match is evidence all the same, with `mode=Audit`.
//! - **Disclaimer fallback** (§13.5): for a signed or encrypted body, `Wrap` wraps the original in
//!   a new message with the disclaimer (later rules see the wrapper), `Ignore` leaves it,
//!   `Reject` ends the fork with the rule-reject NDR.
//! - **Errors** (§13.2 `RuleErrorAction`): no rule can fail at run time in mailsim (patterns are
//!   linear-time and bounded at load), so `Ignore` and `Defer` behave alike.

use std::rc::Rc;

use crate::addr::{Domain, EmailAddress};
use crate::envelope::AcceptedMessage;
use crate::header_section;
use crate::reply::ReplyKind;
use crate::stage::inbound::InboundVerdict;
use crate::tenant::transport_rule::{
    Action, Condition, DisclaimerFallback, LOOP_HEADER, RuleMode, Scope, SenderAddressLocation, TransportRule,
};
use crate::tenant::{DomainType, Tenant};
use crate::time::Timestamp;

pub mod content;

use content::View;

/// What happens to a fork after the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Categorize and route it; `connector` is the outbound connector a rule chose (§3.2 step 0),
    /// `require_tls` asks for TLS outside the organization.
    Route {
        /// `RouteMessageOutboundConnector`.
        connector: Option<String>,
        /// `RouteMessageOutboundRequireTls`.
        require_tls: bool,
    },
    /// Fail the recipients with an NDR quoting this reply (a reject, the rules loop).
    Reject(ReplyKind),
    /// Dropped silently (`DeleteMessage`).
    Delete,
    /// Held in quarantine (`Quarantine`).
    Quarantine,
}

/// Recipients that leave the rules stage together, with one copy of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// Who.
    pub recipients: Vec<EmailAddress>,
    /// The rule (and action) that added these recipients, if a rule did.
    pub added_by: Option<(String, &'static str)>,
    /// The rewritten message, or `None` when the content is as received.
    pub data: Option<Vec<u8>>,
    /// What happens next.
    pub fate: Fate,
}

/// One action as a rule took it (or, in a test mode, would have).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionTaken {
    /// The action's `AGENTINFO` name (`ApplyHtmlDisclaimer`, `RouteMessageOutboundConnector`).
    pub action: &'static str,
    /// What it did, in words.
    pub effect: String,
}

/// A rule that matched some recipients: the evidence of §13.6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHit {
    /// The rule's name.
    pub rule: String,
    /// Its GUID.
    pub guid: String,
    /// Its priority.
    pub priority: u32,
    /// Its mode.
    pub mode: RuleMode,
    /// The recipients it matched.
    pub recipients: Vec<EmailAddress>,
    /// What its actions did (or would do, in a test mode).
    pub actions: Vec<ActionTaken>,
    /// Whether later rules are skipped for these recipients from here on.
    pub stops: bool,
}

/// The result of the rules stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesOutcome {
    /// Every recipient of the message in exactly one fork (original recipients, or those that
    /// replaced them), plus forks of added recipients.
    pub forks: Vec<Fork>,
    /// The rules that matched, in the order they were applied.
    pub hits: Vec<RuleHit>,
}

impl RulesOutcome {
    /// The outcome when no rule applies: one fork, everyone, routed normally.
    pub fn untouched(message: &AcceptedMessage) -> Self {
        RulesOutcome {
            forks: vec![Fork {
                recipients: message.envelope.recipients.clone(),
                added_by: None,
                data: None,
                fate: Fate::Route { connector: None, require_tls: false },
            }],
            hits: Vec::new(),
        }
    }
}

/// The content of a fork and what its conditions read, computed when first needed.
#[derive(Debug)]
struct Content {
    data: Option<Vec<u8>>,
    view: std::cell::OnceCell<View>,
}

impl Content {
    fn bytes<'a>(&'a self, original: &'a [u8]) -> &'a [u8] {
        self.data.as_deref().unwrap_or(original)
    }
}

/// A fork while rules are applied to it.
#[derive(Clone, Debug)]
struct Work {
    recipients: Vec<EmailAddress>,
    added_by: Option<(String, &'static str)>,
    content: Rc<Content>,
    scl: Option<i8>,
    connector: Option<String>,
    require_tls: bool,
    looped: bool,
    end: Option<Fate>,
    stopped: bool,
    next_rule: usize,
}

/// Everything a condition reads about the message (not the fork).
struct Facts<'a> {
    message: &'a AcceptedMessage,
    tenant: &'a Tenant,
    needs_body: bool,
    /// The received message as mail-parser reads it, shared by the view of the unchanged content
    /// and a disclaimer applied to it (one parse, not one each).
    parsed: std::cell::OnceCell<Option<mail_parser::Message<'a>>>,
}

impl<'a> Facts<'a> {
    fn parsed(&self) -> Option<&mail_parser::Message<'a>> {
        self.parsed.get_or_init(|| content::parse(&self.message.data)).as_ref()
    }
}

/// Applies the tenant's rules to `message` at simulated time `now` (see the module header).
pub fn evaluate(message: &AcceptedMessage, tenant: &Tenant, now: Timestamp) -> RulesOutcome {
    let rules: Vec<&TransportRule> = tenant.rules().filter(|r| r.active_at(now)).collect();
    if rules.is_empty() || message.envelope.sender.is_none() {
        return RulesOutcome::untouched(message);
    }
    let needs_body = rules
        .iter()
        .flat_map(|r| r.conditions.iter().chain(&r.exceptions))
        .any(|c| matches!(c, Condition::SubjectOrBodyContainsWords(_)));
    let facts = Facts { message, tenant, needs_body, parsed: std::cell::OnceCell::new() };
    let looped = header_section::count(&message.data, LOOP_HEADER) > 0;
    let mut queue = std::collections::VecDeque::from([Work {
        recipients: message.envelope.recipients.clone(),
        added_by: None,
        content: Rc::new(Content { data: None, view: std::cell::OnceCell::new() }),
        scl: None,
        connector: None,
        require_tls: false,
        looped,
        end: None,
        stopped: false,
        next_rule: 0,
    }]);
    let mut out = RulesOutcome::default();
    while let Some(mut work) = queue.pop_front() {
        while work.next_rule < rules.len() && work.end.is_none() && !work.stopped {
            let index = work.next_rule;
            work.next_rule += 1;
            let rule = rules[index];
            let matched = matched_recipients(rule, &work, &facts);
            if matched.is_empty() {
                continue;
            }
            if matched.len() < work.recipients.len() {
                let mut rest = work.clone();
                rest.recipients.retain(|r| !matched.contains(r));
                queue.push_back(rest);
                work.recipients = matched;
            }
            let hit = apply(rule, &mut work, &facts, &mut queue);
            out.hits.push(hit);
        }
        out.forks.push(Fork {
            recipients: work.recipients,
            added_by: work.added_by,
            data: work.content.data.clone(),
            fate: work.end.unwrap_or(Fate::Route { connector: work.connector, require_tls: work.require_tls }),
        });
    }
    out
}

fn view<'w>(work: &'w Work, facts: &Facts<'_>) -> &'w View {
    work.content.view.get_or_init(|| match &work.content.data {
        Some(data) => content::view(data, facts.needs_body),
        None => content::view_of(facts.parsed(), &facts.message.data, facts.needs_body),
    })
}

/// The fork's recipients the rule applies to: all or none for message-level conditions and
/// exceptions, some for per-recipient ones.
fn matched_recipients(rule: &TransportRule, work: &Work, facts: &Facts<'_>) -> Vec<EmailAddress> {
    for c in rule.conditions.iter().filter(|c| !c.per_recipient()) {
        if !message_condition(c, rule.sender_address_location, work, facts) {
            return Vec::new();
        }
    }
    for c in rule.exceptions.iter().filter(|c| !c.per_recipient()) {
        if message_condition(c, rule.sender_address_location, work, facts) {
            return Vec::new();
        }
    }
    work.recipients
        .iter()
        .filter(|r| rule.conditions.iter().filter(|c| c.per_recipient()).all(|c| recipient_condition(c, r, facts)))
        .filter(|r| !rule.exceptions.iter().filter(|c| c.per_recipient()).any(|c| recipient_condition(c, r, facts)))
        .cloned()
        .collect()
}

fn domain_in(domain: &Domain, list: &[Domain]) -> bool {
    list.iter().any(|d| domain == d || domain.is_within(d))
}

fn in_organization(tenant: &Tenant, address: &EmailAddress) -> bool {
    tenant.has_mailbox(address)
        || tenant.distribution_group(address).is_some()
        || tenant
            .accepted_domain(address.domain())
            .is_some_and(|d| matches!(d.domain_type, DomainType::Authoritative | DomainType::InternalRelay))
}

fn recipient_condition(c: &Condition, rcpt: &EmailAddress, facts: &Facts<'_>) -> bool {
    let tenant = facts.tenant;
    match c {
        Condition::SentToScope(Scope::InOrganization) => in_organization(tenant, rcpt),
        Condition::SentToScope(Scope::NotInOrganization) => tenant.accepted_domain(rcpt.domain()).is_none(),
        Condition::SentTo(list) => list.iter().any(|a| a.key() == rcpt.key()),
        Condition::SentToMemberOf(groups) => groups.iter().any(|g| tenant.is_member_of(rcpt, g)),
        Condition::RecipientDomainIs(list) => domain_in(rcpt.domain(), list),
        Condition::RecipientAddressContainsWords(w) => w.find(&rcpt.to_string()).is_some(),
        Condition::RecipientAddressMatchesPatterns(p) => p.find(&rcpt.to_string()).is_some(),
        _ => false,
    }
}

/// The sender addresses a condition looks at, per `SenderAddressLocation` (borrowed: this runs
/// for every sender condition of every rule).
fn senders<'x>(location: SenderAddressLocation, work: &'x Work, facts: &'x Facts<'_>) -> [Option<&'x EmailAddress>; 2] {
    let envelope = facts.message.envelope.sender.as_ref();
    match location {
        SenderAddressLocation::Header => [view(work, facts).from.as_ref().or(envelope), None],
        SenderAddressLocation::Envelope => [envelope, None],
        SenderAddressLocation::HeaderOrEnvelope => [view(work, facts).from.as_ref(), envelope],
    }
}

fn message_condition(c: &Condition, location: SenderAddressLocation, work: &Work, facts: &Facts<'_>) -> bool {
    let tenant = facts.tenant;
    let sender_any = |f: &dyn Fn(&EmailAddress) -> bool| senders(location, work, facts).into_iter().flatten().any(f);
    match c {
        Condition::FromScope(scope) => {
            let [Some(sender), _] = senders(SenderAddressLocation::Header, work, facts) else { return false };
            match scope {
                Scope::InOrganization => {
                    let authenticated =
                        matches!(&facts.message.verdict, InboundVerdict::Accepted { internal: true, .. });
                    authenticated && in_organization(tenant, sender)
                }
                Scope::NotInOrganization => tenant.accepted_domain(sender.domain()).is_none(),
            }
        }
        Condition::From(list) => sender_any(&|s| list.iter().any(|a| a.key() == s.key())),
        Condition::FromMemberOf(groups) => sender_any(&|s| groups.iter().any(|g| tenant.is_member_of(s, g))),
        Condition::SenderDomainIs(list) => sender_any(&|s| domain_in(s.domain(), list)),
        Condition::FromAddressContainsWords(w) => sender_any(&|s| w.find(&s.to_string()).is_some()),
        Condition::FromAddressMatchesPatterns(p) => sender_any(&|s| p.find(&s.to_string()).is_some()),
        Condition::SenderIpRanges(ranges) => ranges.iter().any(|r| r.contains(facts.message.peer.ip)),
        Condition::HeaderContainsWords { header, words } => {
            view(work, facts).headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(header) && words.find(v).is_some())
        }
        Condition::HeaderMatchesPatterns { header, patterns } => {
            view(work, facts).headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(header) && patterns.find(v).is_some())
        }
        Condition::SubjectContainsWords(w) => w.find(&view(work, facts).subject).is_some(),
        Condition::SubjectOrBodyContainsWords(w) => {
            let v = view(work, facts);
            w.find(&v.subject).is_some() || w.find(&v.body).is_some()
        }
        Condition::SubjectMatchesPatterns(p) => p.find(&view(work, facts).subject).is_some(),
        Condition::MessageSizeOver(n) => work.content.bytes(&facts.message.data).len() as u64 >= *n,
        Condition::AttachmentSizeOver(n) => view(work, facts).attachment_sizes.iter().any(|s| s >= n),
        Condition::SclOver(n) => work.scl.is_some_and(|s| s >= *n),
        Condition::AnyOfToHeader(list) => view(work, facts).to.iter().any(|a| list.iter().any(|l| l.key() == a.key())),
        Condition::AnyOfCcHeader(list) => view(work, facts).cc.iter().any(|a| list.iter().any(|l| l.key() == a.key())),
        Condition::AnyOfToCcHeader(list) => {
            let v = view(work, facts);
            v.to.iter().chain(&v.cc).any(|a| list.iter().any(|l| l.key() == a.key()))
        }
        Condition::WithImportance(i) => view(work, facts).importance == *i,
        // Per-recipient conditions are judged in `recipient_condition`.
        Condition::SentToScope(_)
        | Condition::SentTo(_)
        | Condition::SentToMemberOf(_)
        | Condition::RecipientDomainIs(_)
        | Condition::RecipientAddressContainsWords(_)
        | Condition::RecipientAddressMatchesPatterns(_) => true,
    }
}

fn list(addresses: &[EmailAddress]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn rewrite(work: &mut Work, data: Vec<u8>) {
    work.content = Rc::new(Content { data: Some(data), view: std::cell::OnceCell::new() });
}

/// [`rewrite`] for an edit whose effect on the view is known: the view is patched, not re-read
/// from the new bytes (a rule set with many content conditions parses the message once).
fn rewrite_with(work: &mut Work, data: Vec<u8>, patch: impl FnOnce(&View) -> View) {
    let view = work.content.view.get().map(patch);
    let cell = std::cell::OnceCell::new();
    if let Some(v) = view {
        let _ = cell.set(v);
    }
    work.content = Rc::new(Content { data: Some(data), view: cell });
}

/// Applies `rule`'s actions to `work` (already narrowed to the matched recipients); forks of added
/// recipients go to `queue`.
fn apply(
    rule: &TransportRule,
    work: &mut Work,
    facts: &Facts<'_>,
    queue: &mut std::collections::VecDeque<Work>,
) -> RuleHit {
    let enforce = rule.mode.enforces();
    let mut hit = RuleHit {
        rule: rule.name.clone(),
        guid: rule.guid.clone(),
        priority: rule.priority,
        mode: rule.mode,
        recipients: work.recipients.clone(),
        actions: Vec::new(),
        stops: false,
    };
    let loop_reject = |work: &mut Work| {
        work.end = Some(Fate::Reject(ReplyKind::TransportRulesLoop));
    };
    for action in &rule.actions {
        let effect = match action {
            Action::RouteMessageOutboundConnector(name) => {
                if enforce {
                    work.connector = Some(name.clone());
                }
                format!("route through outbound connector `{name}`")
            }
            Action::RouteMessageOutboundRequireTls => {
                if enforce {
                    work.require_tls = true;
                }
                "require TLS for delivery outside the organization".to_string()
            }
            Action::SetHeader { name, value } => {
                if enforce {
                    let data = content::set_header(work.content.bytes(&facts.message.data), name, value);
                    rewrite_with(work, data, |v| v.with_header_set(name, value));
                }
                format!("set header {name}: {value}")
            }
            Action::RemoveHeader(name) => {
                if enforce {
                    let data = content::remove_header(work.content.bytes(&facts.message.data), name);
                    rewrite_with(work, data, |v| v.with_header_removed(name));
                }
                format!("remove header {name}")
            }
            Action::PrependSubject(prefix) => {
                if enforce {
                    let subject = view(work, facts).subject.clone();
                    let data = content::prepend_subject(work.content.bytes(&facts.message.data), &subject, prefix);
                    let new = format!("{prefix}{subject}");
                    rewrite_with(work, data, |v| v.with_header_set("Subject", &new));
                }
                format!("prepend {prefix:?} to the subject")
            }
            Action::ApplyHtmlDisclaimer { text, location, fallback } => {
                let bytes = work.content.bytes(&facts.message.data);
                let added = match &work.content.data {
                    Some(data) => content::add_disclaimer(data, text, *location),
                    None => content::add_disclaimer_to(facts.parsed(), bytes, text, *location),
                };
                match added {
                    Ok(data) => {
                        if enforce {
                            rewrite_with(work, data, |v| v.with_disclaimer(text, *location));
                        }
                        format!("{location:?} the disclaimer")
                    }
                    Err(content::Unchangeable) => match fallback {
                        DisclaimerFallback::Wrap => {
                            if enforce {
                                let data = content::wrap(bytes, text);
                                rewrite(work, data);
                            }
                            "the body cannot be changed (signed or encrypted): wrap it in a message with the disclaimer"
                                .to_string()
                        }
                        DisclaimerFallback::Ignore => {
                            "the body cannot be changed (signed or encrypted): deliver without the disclaimer"
                                .to_string()
                        }
                        DisclaimerFallback::Reject => {
                            if enforce {
                                work.end = Some(Fate::Reject(ReplyKind::TransportRuleRejected { code: 1, text: None }));
                            }
                            "the body cannot be changed (signed or encrypted): reject (NDR)".to_string()
                        }
                    },
                }
            }
            Action::Reject { text, code } => {
                let kind = ReplyKind::TransportRuleRejected { code: code.unwrap_or(1), text: text.clone() };
                let effect = format!("reject with an NDR: 550 5.7.{} {}", code.unwrap_or(1), kind.rule_reject_text());
                if enforce {
                    work.end = Some(Fate::Reject(kind));
                }
                effect
            }
            Action::DeleteMessage => {
                if enforce {
                    work.end = Some(Fate::Delete);
                }
                "delete the message silently".to_string()
            }
            Action::Quarantine => {
                if enforce {
                    work.end = Some(Fate::Quarantine);
                }
                "hold the message in quarantine".to_string()
            }
            Action::SetScl(n) => {
                if enforce {
                    work.scl = Some(*n);
                }
                format!("set SCL {n}")
            }
            Action::RedirectMessageTo(to) => {
                if enforce {
                    if work.looped {
                        loop_reject(work);
                    } else {
                        work.recipients = to.clone();
                        work.added_by = Some((rule.name.clone(), action.name()));
                        work.looped = true;
                        let data = content::set_header(work.content.bytes(&facts.message.data), LOOP_HEADER, "1");
                        rewrite(work, data);
                    }
                }
                format!("redirect to {}", list(to))
            }
            Action::BlindCopyTo(to) | Action::AddToRecipients(to) | Action::CopyTo(to) => {
                if enforce {
                    if work.looped {
                        loop_reject(work);
                    } else {
                        let mut added = work.clone();
                        added.recipients = to.clone();
                        added.added_by = Some((rule.name.clone(), action.name()));
                        let original = work.content.bytes(&facts.message.data);
                        let header = match action {
                            Action::AddToRecipients(_) => Some(("To", view(work, facts).to.clone())),
                            Action::CopyTo(_) => Some(("Cc", view(work, facts).cc.clone())),
                            _ => None,
                        };
                        let mut data = content::set_header(original, LOOP_HEADER, "1");
                        if let Some((name, existing)) = header {
                            data = content::add_addresses(&data, name, &existing, to);
                            // The original fork shows the new recipients in its header too.
                            let mine = content::add_addresses(original, name, &existing, to);
                            rewrite(work, mine);
                        }
                        rewrite(&mut added, data);
                        added.looped = true;
                        queue.push_back(added);
                    }
                }
                let verb = match action {
                    Action::BlindCopyTo(_) => "Bcc",
                    Action::AddToRecipients(_) => "add to To:",
                    _ => "add to Cc:",
                };
                format!("{verb} {}", list(to))
            }
        };
        let effect = match (&work.end, enforce) {
            (Some(Fate::Reject(ReplyKind::TransportRulesLoop)), true) => {
                format!("{effect}: the message was already redirected or expanded by a rule; rejected with 550 5.7.128")
            }
            _ => effect,
        };
        hit.actions.push(ActionTaken { action: action.name(), effect });
        if work.end.is_some() {
            break;
        }
    }
    if rule.stop_rule_processing {
        hit.actions
            .push(ActionTaken { action: "StopRuleProcessing", effect: "stop processing more rules".to_string() });
    }
    if enforce && (rule.stop_rule_processing || matches!(work.end, Some(Fate::Delete | Fate::Quarantine))) {
        work.stopped = true;
    }
    hit.stops = enforce && (work.stopped || work.end.is_some());
    hit
}

#[cfg(test)]
mod tests;
