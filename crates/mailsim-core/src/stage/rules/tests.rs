//! Table tests of the rules stage: one row per condition (Words vs Patterns, case, subdomains,
//! AND/OR, exceptions), per action, and the forking property.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::envelope::Envelope;
use crate::peer::PeerFacts;
use crate::stage::inbound::Direction;
use crate::tenant::transport_rule::{DisclaimerLocation, Importance, IpRange, Patterns, RuleMode, Words};
use crate::tenant::{OutboundConnector, SmartHost, TenantBuilder};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn a(s: &str) -> EmailAddress {
    s.parse().unwrap()
}

fn d(s: &str) -> Domain {
    Domain::parse(s, false).unwrap()
}

fn base() -> TenantBuilder {
    let mut scoped = OutboundConnector::new("Route to Partner X");
    scoped.use_mx_record = false;
    scoped.smart_hosts = vec![SmartHost::parse("mx.partner-x.test").unwrap()];
    scoped.recipient_domains = vec![crate::tenant::DomainPattern::parse("partner-x.test").unwrap()];
    scoped.is_transport_rule_scoped = true;
    Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .with_mailbox("bob@contoso.test")
        .with_mailbox("carol@contoso.test")
        .with_group("NoSpecialRouting@contoso.test", &["carol@contoso.test", "nested@contoso.test"])
        .with_group("nested@contoso.test", &["dave@partner-x.test"])
        .with_outbound_connector(scoped)
}

const HEADERS: &str = "From: Eve <eve@fabrikam.test>\r\nTo: alice@contoso.test\r\nCc: bob@contoso.test\r\nSubject: =?utf-8?q?Urgent=3A?= Invoice 42 for Contoso\r\nX-Gateway-Verified: pass\r\nImportance: high\r\nMessage-ID: <m1@fabrikam.test>\r\n\r\nPlease pay the invoice today.\r\n";

fn message(from: &str, rcpts: &[&str], internal: bool) -> AcceptedMessage {
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    AcceptedMessage {
        internal_id: 1,
        message_id: "<m1@fabrikam.test>".into(),
        envelope: Envelope {
            sender: Some(a(from)),
            recipients: rcpts.iter().map(|r| a(r)).collect(),
            ..Envelope::default()
        },
        peer: PeerFacts::new(ip, 25, ip),
        verdict: InboundVerdict::Accepted {
            connector: None,
            direction: if internal { Direction::Originating } else { Direction::Incoming },
            internal,
            relay_allowed: internal,
            cross_premises: false,
            checks: vec![],
        },
        // The header From: is the envelope sender, except for a bounce address (header vs envelope rows).
        data: if from.starts_with("bounce@") {
            HEADERS.as_bytes().to_vec()
        } else {
            HEADERS.replace("Eve <eve@fabrikam.test>", from).into_bytes()
        },
        received_at: NOW,
        auth: None,
    }
}

fn tag_rule(conditions: Vec<Condition>, exceptions: Vec<Condition>) -> TransportRule {
    let mut r = TransportRule::new("tag", 0);
    r.conditions = conditions;
    r.exceptions = exceptions;
    r.actions = vec![Action::SetScl(5)];
    r
}

/// Which recipients a rule matched (sorted), for `message(from, rcpts)`.
fn matched(rule: TransportRule, from: &str, rcpts: &[&str], internal: bool) -> Vec<String> {
    let tenant = base().with_transport_rule(rule).build().unwrap();
    let out = evaluate(&message(from, rcpts, internal), &tenant, NOW);
    let mut m: Vec<String> = out.hits.iter().flat_map(|h| h.recipients.iter().map(|r| r.to_string())).collect();
    m.sort();
    m
}

/// One row per condition: the rule's conditions/exceptions and who it matches.
#[test]
fn conditions_table() {
    use Condition as C;
    let ext = "eve@fabrikam.test";
    let all = ["alice@contoso.test", "x@partner-x.test", "y@sub.partner-x.test", "carol@contoso.test"];
    let w = |s: &[&str]| Words::new(s.iter().copied());
    let p = |s: &[&str]| Patterns::new(s.iter().copied()).unwrap();
    type Row = (&'static str, Vec<Condition>, Vec<Condition>, &'static str, bool, Vec<&'static str>);
    let rows: Vec<Row> = vec![
        ("no condition: everyone", vec![], vec![], ext, false, all.to_vec()),
        (
            "RecipientDomainIs with subdomains",
            vec![C::RecipientDomainIs(vec![d("partner-x.test")])],
            vec![],
            ext,
            false,
            vec!["x@partner-x.test", "y@sub.partner-x.test"],
        ),
        (
            "RecipientDomainIs is not a suffix match",
            vec![C::RecipientDomainIs(vec![d("artner-x.test")])],
            vec![],
            ext,
            false,
            vec![],
        ),
        (
            "per-recipient exception exempts only that recipient",
            vec![],
            vec![C::SentToMemberOf(vec![a("NoSpecialRouting@contoso.test")])],
            ext,
            false,
            vec!["alice@contoso.test", "x@partner-x.test", "y@sub.partner-x.test"],
        ),
        ("SentTo", vec![C::SentTo(vec![a("ALICE@contoso.test")])], vec![], ext, false, vec!["alice@contoso.test"]),
        (
            "SentToScope InOrganization",
            vec![C::SentToScope(Scope::InOrganization)],
            vec![],
            ext,
            false,
            vec!["alice@contoso.test", "carol@contoso.test"],
        ),
        (
            "SentToScope NotInOrganization",
            vec![C::SentToScope(Scope::NotInOrganization)],
            vec![],
            ext,
            false,
            vec!["x@partner-x.test", "y@sub.partner-x.test"],
        ),
        (
            "SentToMemberOf nested group",
            vec![C::SentToMemberOf(vec![a("nospecialrouting@contoso.test")])],
            vec![],
            ext,
            false,
            vec!["carol@contoso.test"],
        ),
        (
            "RecipientAddressContainsWords: a hyphen delimits",
            vec![C::RecipientAddressContainsWords(w(&["partner"]))],
            vec![],
            ext,
            false,
            vec!["x@partner-x.test", "y@sub.partner-x.test"],
        ),
        (
            "RecipientAddressContainsWords no partial",
            vec![C::RecipientAddressContainsWords(w(&["artner"]))],
            vec![],
            ext,
            false,
            vec![],
        ),
        (
            "RecipientAddressContainsWords word between dots",
            vec![C::RecipientAddressContainsWords(w(&["SUB"]))],
            vec![],
            ext,
            false,
            vec!["y@sub.partner-x.test"],
        ),
        (
            "RecipientAddressMatchesPatterns anywhere",
            vec![C::RecipientAddressMatchesPatterns(p(&["PARTNER"]))],
            vec![],
            ext,
            false,
            vec!["x@partner-x.test", "y@sub.partner-x.test"],
        ),
        ("FromScope NotInOrganization", vec![C::FromScope(Scope::NotInOrganization)], vec![], ext, false, all.to_vec()),
        (
            "FromScope NotInOrganization: a spoof of an accepted domain matches neither (1)",
            vec![C::FromScope(Scope::NotInOrganization)],
            vec![],
            "ceo@contoso.test",
            false,
            vec![],
        ),
        (
            "FromScope InOrganization needs authentication",
            vec![C::FromScope(Scope::InOrganization)],
            vec![],
            "alice@contoso.test",
            false,
            vec![],
        ),
        (
            "FromScope InOrganization when AuthAs Internal",
            vec![C::FromScope(Scope::InOrganization)],
            vec![],
            "alice@contoso.test",
            true,
            all.to_vec(),
        ),
        (
            "From (header From: is eve)",
            vec![C::From(vec![a("eve@fabrikam.test")])],
            vec![],
            "bounce@other.test",
            false,
            all.to_vec(),
        ),
        (
            "SenderDomainIs subdomain of header From",
            vec![C::SenderDomainIs(vec![d("test")])],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        ("SenderDomainIs other", vec![C::SenderDomainIs(vec![d("contoso.test")])], vec![], ext, false, vec![]),
        (
            "FromAddressContainsWords",
            vec![C::FromAddressContainsWords(w(&["Fabrikam"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "FromAddressMatchesPatterns",
            vec![C::FromAddressMatchesPatterns(p(&["^eve@"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "SenderIpRanges CIDR",
            vec![C::SenderIpRanges(vec![IpRange::parse("203.0.113.0/24").unwrap()])],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "SenderIpRanges miss",
            vec![C::SenderIpRanges(vec![IpRange::parse("198.51.100.1-198.51.100.9").unwrap()])],
            vec![],
            ext,
            false,
            vec![],
        ),
        (
            "HeaderContainsWords",
            vec![C::HeaderContainsWords { header: "x-gateway-verified".into(), words: w(&["PASS"]) }],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "HeaderContainsWords exception cancels for all",
            vec![],
            vec![C::HeaderContainsWords { header: "X-Gateway-Verified".into(), words: w(&["pass", "ok"]) }],
            ext,
            false,
            vec![],
        ),
        (
            "HeaderContainsWords no partial",
            vec![C::HeaderContainsWords { header: "X-Gateway-Verified".into(), words: w(&["pas"]) }],
            vec![],
            ext,
            false,
            vec![],
        ),
        (
            "HeaderMatchesPatterns decoded subject",
            vec![C::HeaderMatchesPatterns { header: "Subject".into(), patterns: p(&[r"^urgent:"]) }],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "SubjectContainsWords after RFC 2047 decoding",
            vec![C::SubjectContainsWords(w(&["urgent"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "SubjectContainsWords phrase",
            vec![C::SubjectContainsWords(w(&["invoice 42"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        ("SubjectContainsWords no partial", vec![C::SubjectContainsWords(w(&["voice"]))], vec![], ext, false, vec![]),
        (
            "SubjectOrBodyContainsWords body",
            vec![C::SubjectOrBodyContainsWords(w(&["today"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "SubjectMatchesPatterns",
            vec![C::SubjectMatchesPatterns(p(&[r"invoice\s+\d+"]))],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        ("MessageSizeOver small", vec![C::MessageSizeOver(10)], vec![], ext, false, all.to_vec()),
        ("MessageSizeOver big", vec![C::MessageSizeOver(10 << 20)], vec![], ext, false, vec![]),
        ("AttachmentSizeOver without attachments", vec![C::AttachmentSizeOver(1)], vec![], ext, false, vec![]),
        ("SCLOver without an SCL is false", vec![C::SclOver(-1)], vec![], ext, false, vec![]),
        (
            "AnyOfToHeader affects every recipient",
            vec![C::AnyOfToHeader(vec![a("alice@contoso.test")])],
            vec![],
            ext,
            false,
            all.to_vec(),
        ),
        (
            "AnyOfCcHeader exception exempts every recipient",
            vec![],
            vec![C::AnyOfCcHeader(vec![a("bob@contoso.test")])],
            ext,
            false,
            vec![],
        ),
        ("AnyOfToCcHeader", vec![C::AnyOfToCcHeader(vec![a("bob@contoso.test")])], vec![], ext, false, all.to_vec()),
        ("WithImportance High", vec![C::WithImportance(Importance::High)], vec![], ext, false, all.to_vec()),
        ("WithImportance Low", vec![C::WithImportance(Importance::Low)], vec![], ext, false, vec![]),
        (
            "AND across conditions",
            vec![C::RecipientDomainIs(vec![d("partner-x.test")]), C::SubjectContainsWords(w(&["nothing"]))],
            vec![],
            ext,
            false,
            vec![],
        ),
        (
            "OR across values",
            vec![C::SentTo(vec![a("alice@contoso.test"), a("carol@contoso.test")])],
            vec![],
            ext,
            false,
            vec!["alice@contoso.test", "carol@contoso.test"],
        ),
        (
            "two per-recipient conditions AND per recipient",
            vec![C::RecipientDomainIs(vec![d("partner-x.test")]), C::RecipientAddressContainsWords(w(&["sub"]))],
            vec![],
            ext,
            false,
            vec!["y@sub.partner-x.test"],
        ),
    ];
    for (name, conditions, exceptions, from, internal, expected) in rows {
        let mut exp: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        exp.sort();
        assert_eq!(matched(tag_rule(conditions, exceptions), from, &all, internal), exp, "{name}");
    }
}

fn run(rules: Vec<TransportRule>, rcpts: &[&str]) -> RulesOutcome {
    let mut b = base();
    for r in rules {
        b = b.with_transport_rule(r);
    }
    evaluate(&message("eve@fabrikam.test", rcpts, false), &b.build().unwrap(), NOW)
}

fn rule(name: &str, priority: u32, conditions: Vec<Condition>, actions: Vec<Action>) -> TransportRule {
    let mut r = TransportRule::new(name, priority);
    r.conditions = conditions;
    r.actions = actions;
    r
}

fn fork_of<'o>(out: &'o RulesOutcome, rcpt: &str) -> &'o Fork {
    out.forks.iter().find(|f| f.recipients.iter().any(|r| r.to_string() == rcpt)).expect("a fork")
}

/// §13.7: the seed's routing rule, worked through.
#[test]
fn seed_routing_example_forks_the_matched_recipients() {
    let mut r = rule(
        "Force Partner X via dedicated connector",
        0,
        vec![Condition::RecipientDomainIs(vec![d("partner-x.test")])],
        vec![Action::RouteMessageOutboundConnector("Route to Partner X".into())],
    );
    r.exceptions = vec![Condition::SentToMemberOf(vec![a("NoSpecialRouting@contoso.test")])];
    let out = run(vec![r], &["a@partner-x.test", "b@sub.partner-x.test", "c@other.test", "dave@partner-x.test"]);
    let routed = fork_of(&out, "a@partner-x.test");
    assert_eq!(routed.recipients, vec![a("a@partner-x.test"), a("b@sub.partner-x.test")]);
    assert_eq!(routed.fate, Fate::Route { connector: Some("Route to Partner X".into()), require_tls: false });
    assert_eq!(fork_of(&out, "c@other.test").fate, Fate::Route { connector: None, require_tls: false });
    assert_eq!(
        fork_of(&out, "dave@partner-x.test").fate,
        Fate::Route { connector: None, require_tls: false },
        "nested group member exempted"
    );
    assert_eq!(out.hits.len(), 1);
    assert_eq!(out.hits[0].actions[0].action, "RouteMessageOutboundConnector");
}

/// One row per action: what the fork looks like after it.
#[test]
fn actions_table() {
    let all = ["alice@contoso.test", "x@partner-x.test"];
    let partner = || vec![Condition::RecipientDomainIs(vec![d("partner-x.test")])];
    // Reject: only the matched recipients fail, with the rule's code and text.
    let out = run(
        vec![rule("r", 0, partner(), vec![Action::Reject { text: Some("No partner mail".into()), code: Some(950) }])],
        &all,
    );
    assert_eq!(
        fork_of(&out, "x@partner-x.test").fate,
        Fate::Reject(ReplyKind::TransportRuleRejected { code: 950, text: Some("No partner mail".into()) })
    );
    assert_eq!(fork_of(&out, "alice@contoso.test").fate, Fate::Route { connector: None, require_tls: false });
    // Reject defaults (§13.5): text alone → 5.7.1; code alone → the default text.
    let ctx = crate::reply::ReplyContext { host: "h", now: NOW, session_id: 1 };
    assert_eq!(
        ReplyKind::TransportRuleRejected { code: 1, text: Some("t".into()) }.reply(&ctx).to_string(),
        "550 5.7.1 t"
    );
    assert_eq!(
        ReplyKind::TransportRuleRejected { code: 901, text: None }.reply(&ctx).to_string(),
        "550 5.7.901 Delivery not authorized, message refused"
    );
    // Delete stops later rules.
    let out = run(
        vec![rule("del", 0, vec![], vec![Action::DeleteMessage]), rule("later", 1, vec![], vec![Action::SetScl(1)])],
        &all,
    );
    assert!(out.forks.iter().all(|f| f.fate == Fate::Delete));
    assert_eq!(out.hits.len(), 1, "nothing after a delete");
    // Quarantine.
    let out = run(vec![rule("q", 0, partner(), vec![Action::Quarantine])], &all);
    assert_eq!(fork_of(&out, "x@partner-x.test").fate, Fate::Quarantine);
    // Redirect replaces the recipients and marks the loop.
    let out =
        run(vec![rule("redir", 0, partner(), vec![Action::RedirectMessageTo(vec![a("bob@contoso.test")])])], &all);
    let f = fork_of(&out, "bob@contoso.test");
    assert_eq!(f.added_by, Some(("redir".to_string(), "RedirectMessage")));
    assert!(out.forks.iter().all(|f| !f.recipients.contains(&a("x@partner-x.test"))));
    assert_eq!(header_section::count(f.data.as_deref().unwrap(), LOOP_HEADER), 1);
    // Bcc adds a fork; the original recipients keep theirs.
    let out = run(vec![rule("bcc", 0, vec![], vec![Action::BlindCopyTo(vec![a("bob@contoso.test")])])], &all);
    assert_eq!(out.forks.len(), 2);
    assert_eq!(fork_of(&out, "alice@contoso.test").recipients.len(), 2);
    // AddToRecipients writes To:.
    let out = run(vec![rule("add", 0, vec![], vec![Action::AddToRecipients(vec![a("bob@contoso.test")])])], &all);
    let added = fork_of(&out, "bob@contoso.test");
    assert!(content::view(added.data.as_deref().unwrap(), false).to.contains(&a("bob@contoso.test")));
    // Header actions and subject.
    let out = run(
        vec![rule(
            "hdr",
            0,
            vec![],
            vec![
                Action::SetHeader { name: "X-Tag".into(), value: "External".into() },
                Action::RemoveHeader("X-Gateway-Verified".into()),
                Action::PrependSubject("[EXT] ".into()),
            ],
        )],
        &all,
    );
    let v = content::view(out.forks[0].data.as_deref().unwrap(), false);
    assert!(v.headers.iter().any(|(n, val)| n == "X-Tag" && val == "External"));
    assert!(!v.headers.iter().any(|(n, _)| n == "X-Gateway-Verified"));
    assert_eq!(v.subject, "[EXT] Urgent: Invoice 42 for Contoso");
    // Disclaimer.
    let out = run(
        vec![rule(
            "disc",
            0,
            vec![],
            vec![Action::ApplyHtmlDisclaimer {
                text: "<div>External sender.</div>".into(),
                location: DisclaimerLocation::Prepend,
                fallback: DisclaimerFallback::Wrap,
            }],
        )],
        &all,
    );
    assert!(content::view(out.forks[0].data.as_deref().unwrap(), true).body.starts_with("External sender."));
    // SetSCL feeds SCLOver of a later rule; RequireTls is recorded.
    let out = run(
        vec![
            rule("scl", 0, vec![], vec![Action::SetScl(6)]),
            rule("tls", 1, vec![Condition::SclOver(5)], vec![Action::RouteMessageOutboundRequireTls]),
        ],
        &all,
    );
    assert!(out.forks.iter().all(|f| f.fate == Fate::Route { connector: None, require_tls: true }));
}

/// Priority order, StopRuleProcessing, test modes, activation dates, the rules loop.
#[test]
fn order_stop_modes_dates_and_loops() {
    let all = ["x@partner-x.test"];
    let route =
        |name: &str, p| rule(name, p, vec![], vec![Action::RouteMessageOutboundConnector("Route to Partner X".into())]);
    let mut stop = rule("stop", 0, vec![], vec![Action::SetHeader { name: "X-Routed".into(), value: "1".into() }]);
    stop.stop_rule_processing = true;
    let out = run(vec![route("reroute", 1), stop.clone()], &all);
    assert_eq!(out.hits.iter().map(|h| h.rule.as_str()).collect::<Vec<_>>(), ["stop"]);
    assert!(out.hits[0].stops);
    assert_eq!(out.forks[0].fate, Fate::Route { connector: None, require_tls: false });

    let mut audit = rule("audit", 0, vec![], vec![Action::DeleteMessage]);
    audit.mode = RuleMode::Audit;
    audit.stop_rule_processing = true;
    let out = run(vec![audit, route("after", 1)], &all);
    assert_eq!(out.hits.len(), 2, "an Audit rule neither acts nor stops");
    assert_eq!(out.hits[0].mode, RuleMode::Audit);
    assert!(!out.hits[0].stops);
    assert_eq!(out.forks[0].fate, Fate::Route { connector: Some("Route to Partner X".into()), require_tls: false });
    assert!(out.forks[0].data.is_none(), "content untouched");

    let mut later = rule("later", 0, vec![], vec![Action::DeleteMessage]);
    later.activation_date = Some(Timestamp(NOW.0 + 1));
    let out = run(vec![later.clone()], &all);
    assert!(out.hits.is_empty());
    let tenant = base().with_transport_rule(later).build().unwrap();
    let m = message("eve@fabrikam.test", &all, false);
    assert_eq!(evaluate(&m, &tenant, Timestamp(NOW.0 + 1)).forks[0].fate, Fate::Delete);

    // alice → bob, then bob → alice: the second redirect is a loop.
    let out = run(
        vec![
            rule(
                "a2b",
                0,
                vec![Condition::SentTo(vec![a("alice@contoso.test")])],
                vec![Action::RedirectMessageTo(vec![a("bob@contoso.test")])],
            ),
            rule(
                "b2a",
                1,
                vec![Condition::SentTo(vec![a("bob@contoso.test")])],
                vec![Action::RedirectMessageTo(vec![a("alice@contoso.test")])],
            ),
        ],
        &["alice@contoso.test"],
    );
    assert_eq!(out.forks.len(), 1);
    assert_eq!(out.forks[0].fate, Fate::Reject(ReplyKind::TransportRulesLoop));
    // A message that arrives with the loop header and is redirected again.
    let tenant = base()
        .with_transport_rule(rule("r", 0, vec![], vec![Action::RedirectMessageTo(vec![a("bob@contoso.test")])]))
        .build()
        .unwrap();
    let mut m = message("eve@fabrikam.test", &all, false);
    m.data = format!("{LOOP_HEADER}: 1\r\n{HEADERS}").into_bytes();
    assert_eq!(evaluate(&m, &tenant, NOW).forks[0].fate, Fate::Reject(ReplyKind::TransportRulesLoop));
    // NDRs (null sender) skip rules.
    let mut ndr = message("eve@fabrikam.test", &all, false);
    ndr.envelope.sender = None;
    assert!(evaluate(&ndr, &tenant, NOW).hits.is_empty());
}

/// The disclaimer fallback for a signed message.
#[test]
fn disclaimer_fallbacks() {
    let signed = "From: eve@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nx\r\n--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--s--\r\n";
    for (fallback, expect) in [
        (DisclaimerFallback::Ignore, "unchanged"),
        (DisclaimerFallback::Reject, "reject"),
        (DisclaimerFallback::Wrap, "wrapped"),
    ] {
        let r = rule(
            "d",
            0,
            vec![],
            vec![Action::ApplyHtmlDisclaimer {
                text: "<p>x</p>".into(),
                location: DisclaimerLocation::Append,
                fallback,
            }],
        );
        let tenant = base().with_transport_rule(r).build().unwrap();
        let mut m = message("eve@fabrikam.test", &["alice@contoso.test"], false);
        m.data = signed.as_bytes().to_vec();
        let out = evaluate(&m, &tenant, NOW);
        let f = &out.forks[0];
        match expect {
            "unchanged" => assert!(f.data.is_none()),
            "reject" => assert!(matches!(f.fate, Fate::Reject(ReplyKind::TransportRuleRejected { code: 1, .. }))),
            _ => assert!(f.data.as_deref().unwrap().windows(14).any(|w| w == b"message/rfc822")),
        }
    }
}

proptest! {
    /// Forking partitions the recipients: with no rule adding or redirecting, every recipient is
    /// in exactly one fork, whatever the per-recipient conditions and exceptions select.
    #[test]
    fn forks_partition_the_recipients(
        rcpts in proptest::sample::subsequence(vec![
            "alice@contoso.test", "bob@contoso.test", "carol@contoso.test", "x@partner-x.test",
            "y@sub.partner-x.test", "z@other.test", "dave@partner-x.test",
        ], 1..7),
        picks in proptest::collection::vec((0usize..5, any::<bool>(), 0usize..4), 0..6),
    ) {
        let conditions = [
            Condition::RecipientDomainIs(vec![d("partner-x.test")]),
            Condition::SentToScope(Scope::InOrganization),
            Condition::SentToMemberOf(vec![a("NoSpecialRouting@contoso.test")]),
            Condition::RecipientAddressContainsWords(Words::new(["bob", "z"])),
            Condition::SentTo(vec![a("alice@contoso.test")]),
        ];
        let actions = [
            Action::RouteMessageOutboundConnector("Route to Partner X".into()),
            Action::Reject { text: None, code: None },
            Action::SetHeader { name: "X-A".into(), value: "1".into() },
            Action::Quarantine,
        ];
        let mut b = base();
        for (i, (c, except, act)) in picks.iter().enumerate() {
            let mut r = TransportRule::new(&format!("r{i}"), i as u32);
            if *except { r.exceptions.push(conditions[*c].clone()) } else { r.conditions.push(conditions[*c].clone()) }
            r.actions.push(actions[*act].clone());
            b = b.with_transport_rule(r);
        }
        let out = evaluate(&message("eve@fabrikam.test", &rcpts, false), &b.build().unwrap(), NOW);
        let mut seen: Vec<String> = out.forks.iter().flat_map(|f| f.recipients.iter().map(|r| r.to_string())).collect();
        seen.sort();
        let mut want: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
        want.sort();
        prop_assert_eq!(seen, want);
        prop_assert!(out.forks.iter().all(|f| !f.recipients.is_empty()));
    }
}
