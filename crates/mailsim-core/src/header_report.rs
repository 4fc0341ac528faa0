//! A saved message's header, read the way an admin reads it in Message Header Analyzer (exo-behaviour
//! §8.5, §14.3, §14.4, §14.7, §7): the Received chain ([`crate::received_chain`]), the
//! authentication verdicts (`Authentication-Results`, `X-MS-Exchange-Authentication-Results`,
//! `ARC-Authentication-Results`, `Received-SPF`), the `X-Forefront-Antispam-Report` fields and the
//! `X-MS-Exchange-*` fields decoded, and what they say about the connector that accepted the
//! message. What `mailsim headers` prints.
//!
//! Contract: [`analyze`] takes a message or a bare header block (bytes, any line ends) and never
//! fails; unknown fields and values are listed as written, with no meaning. Pure.

use serde::Serialize;

use crate::header_section;
use crate::received_chain::{self, Hop};

/// One `method=result` of an authentication-results header (RFC 8601, EXO's form of §14.3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthResult {
    /// `spf`, `dkim`, `dmarc`, `compauth`, `arc`, ...
    pub method: String,
    /// `pass`, `fail`, `none`, `bestguesspass`, ...
    pub result: String,
    /// The comment, e.g. `sender IP is 203.0.113.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `smtp.mailfrom=…`, `header.d=…`, `header.from=…`, `action=…`, `reason=…`, in order.
    pub properties: Vec<(String, String)>,
    /// What the result means (§14.3, §14.4), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
}

/// One authentication-results header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    /// The header's name as written.
    pub header: String,
    /// The authserv-id, when the header starts with one (EXO's own form has none, §14.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authserv_id: Option<String>,
    /// The results.
    pub results: Vec<AuthResult>,
}

/// `Received-SPF`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReceivedSpf {
    /// `Pass`, `Fail`, `SoftFail`, `None`, ...
    pub result: String,
    /// The comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `receiver`, `client-ip`, `helo`, ...
    pub properties: Vec<(String, String)>,
}

/// One decoded field (of `X-Forefront-Antispam-Report`, or an `X-MS-Exchange-*` header).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Decoded {
    /// The key (`SFV`) or header name.
    pub name: String,
    /// The value as written.
    pub value: String,
    /// What it means, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meaning: Option<String>,
}

/// The whole reading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderReport {
    /// `Subject`, `From`, `To`, `Date`, `Message-ID`, as written.
    pub summary: Vec<(String, String)>,
    /// The Received chain, oldest hop first.
    pub hops: Vec<Hop>,
    /// Milliseconds from the first to the last dated hop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_delay_ms: Option<i64>,
    /// Authentication-results headers, top first.
    pub authentication: Vec<AuthResults>,
    /// `Received-SPF` headers, top first.
    pub received_spf: Vec<ReceivedSpf>,
    /// `X-Forefront-Antispam-Report` (the first one), field by field.
    pub antispam: Vec<Decoded>,
    /// Every `X-MS-Exchange-*` field, in order.
    pub exchange: Vec<Decoded>,
    /// What the fields say about the connector that accepted the message, in sentences.
    pub connector: Vec<String>,
}

/// Reads a message or header block.
pub fn analyze(message: &[u8]) -> HeaderReport {
    let section = header_section::section(message);
    let mut report = HeaderReport { hops: received_chain::parse_chain(section), ..HeaderReport::default() };
    let dated: Vec<_> = report.hops.iter().filter_map(|h| h.time).collect();
    if let (Some(first), Some(last)) = (dated.first(), dated.last())
        && dated.len() > 1
    {
        report.total_delay_ms = Some(last.as_millis() - first.as_millis());
    }
    for field in header_section::fields(section) {
        let Some(name) = field.name() else { continue };
        let name = String::from_utf8_lossy(name).trim().to_string();
        let value = String::from_utf8_lossy(&field.unfolded_value()).split_whitespace().collect::<Vec<_>>().join(" ");
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "subject" | "from" | "to" | "date" | "message-id" => report.summary.push((name, value)),
            "authentication-results" | "x-ms-exchange-authentication-results" | "arc-authentication-results" => {
                report.authentication.push(auth_results(&name, &value))
            }
            "received-spf" => report.received_spf.push(received_spf(&value)),
            "x-forefront-antispam-report" if report.antispam.is_empty() => report.antispam = antispam(&value),
            _ if lower.starts_with("x-ms-exchange-") => {
                let meaning = exchange_meaning(&lower, &value);
                report.exchange.push(Decoded { name, value, meaning });
            }
            _ => {}
        }
    }
    report.connector = connector_reading(&report);
    report
}

/// Splits at `;` outside parentheses.
fn split_semicolons(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b';' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Words and `(comments)` of a piece, in order: `(words, comments)`.
fn words_and_comments(piece: &str) -> (Vec<String>, Vec<String>) {
    let (mut words, mut comments) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    let mut cur = String::new();
    for ch in piece.chars() {
        match ch {
            '(' => {
                if depth == 0 && !cur.trim().is_empty() {
                    words.extend(cur.split_whitespace().map(str::to_string));
                    cur.clear();
                } else if depth > 0 {
                    cur.push(ch);
                }
                depth += 1;
            }
            ')' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    comments.push(cur.trim().to_string());
                    cur.clear();
                } else {
                    cur.push(ch);
                }
            }
            _ => cur.push(ch),
        }
    }
    if depth == 0 {
        words.extend(cur.split_whitespace().map(str::to_string));
    } else if !cur.trim().is_empty() {
        comments.push(cur.trim().to_string());
    }
    (words, comments)
}

const METHODS: [&str; 9] = ["spf", "dkim", "dmarc", "compauth", "arc", "auth", "iprev", "bimi", "dkim-atps"];

fn auth_results(header: &str, value: &str) -> AuthResults {
    let mut out = AuthResults { header: header.to_string(), ..AuthResults::default() };
    for (i, piece) in split_semicolons(value).into_iter().enumerate() {
        let (words, comments) = words_and_comments(piece);
        let Some(first) = words.first() else { continue };
        let method_result = first.split_once('=').filter(|(m, _)| METHODS.contains(&m.to_ascii_lowercase().as_str()));
        let Some((method, result)) = method_result else {
            // The authserv-id (RFC 8601), `i=1; mx.microsoft.com 1` in ARC, or the older EXO
            // form's bare receiving-domain token (§14.3): not a result.
            if i == 0 || (out.authserv_id.is_none() && !first.contains('=')) {
                out.authserv_id.get_or_insert_with(|| words.join(" "));
            }
            continue;
        };
        let properties: Vec<(String, String)> =
            words[1..].iter().filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        let mut r = AuthResult {
            method: method.to_ascii_lowercase(),
            result: result.to_ascii_lowercase(),
            comment: (!comments.is_empty()).then(|| comments.join(" ")),
            properties,
            meaning: None,
        };
        r.meaning = auth_meaning(&r);
        out.results.push(r);
    }
    out
}

fn prop<'a>(r: &'a AuthResult, key: &str) -> Option<&'a str> {
    r.properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

/// §14.3 actions and §14.4 composite-authentication reasons.
fn auth_meaning(r: &AuthResult) -> Option<String> {
    match r.method.as_str() {
        "compauth" => {
            let reason = prop(r, "reason")?;
            let m = match reason {
                "000" => "explicit fail: DMARC fail with p=quarantine/reject",
                "001" => "implicit fail: no or weak SPF/DKIM/DMARC records",
                "002" => "an admin-configured sender/domain pair prohibited from spoofing",
                "010" => "DMARC fail with p=reject/quarantine for one of your accepted domains",
                "100" => "pass (DMARC pass)",
                "109" => "pass (SPF- or DKIM-aligned bestguesspass)",
                "130" => "pass: a trusted ARC sealer's result overrode a DMARC failure",
                "451" => "authentication bypassed (relayed or bypass path)",
                r if r.starts_with('1') || r.starts_with('7') => "pass",
                r if r.starts_with('2') => "softpass (implicit)",
                r if r.starts_with('3') => "not checked",
                r if r.starts_with('4') || r.starts_with('9') => "authentication bypassed",
                r if r.starts_with('6') => {
                    "implicit fail: the From domain is one of your accepted domains (intra-org spoof)"
                }
                _ => return None,
            };
            Some(format!("reason {reason}: {m} (§14.4)"))
        }
        "dmarc" => {
            let action = prop(r, "action")?;
            let m = match action {
                "none" => "no action",
                "quarantine" => "the policy's quarantine was applied",
                "reject" => "the policy's reject was applied",
                "oreject" => "a p=reject failure was not rejected (relayed or bypass path; override reject)",
                "pct.quarantine" | "pct.reject" => "spared by the policy's pct < 100",
                "permerror" | "temperror" => "DMARC could not be evaluated",
                _ => return None,
            };
            Some(format!("action={action}: {m} (§14.3)"))
        }
        _ => None,
    }
}

fn received_spf(value: &str) -> ReceivedSpf {
    let (words, comments) = words_and_comments(value);
    let result = words.first().cloned().unwrap_or_default();
    let properties = words[words.len().min(1)..]
        .iter()
        .filter_map(|w| {
            w.trim_end_matches(';').split_once('=').map(|(k, v)| (k.to_string(), v.trim_end_matches(';').to_string()))
        })
        .collect();
    ReceivedSpf { result, comment: comments.first().cloned(), properties }
}

fn antispam(value: &str) -> Vec<Decoded> {
    value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once(':').unwrap_or((p, ""));
            Decoded { name: k.to_string(), value: v.to_string(), meaning: antispam_meaning(k, v) }
        })
        .collect()
}

/// §14.7 and §8.5.
fn antispam_meaning(key: &str, v: &str) -> Option<String> {
    let m = match (key.to_ascii_uppercase().as_str(), v.to_ascii_uppercase().as_str()) {
        ("CIP", _) => "connecting IP address as EOP judged it (with Enhanced Filtering: unchanged, §14.2)".to_string(),
        ("CTRY", _) => "country of the source IP".to_string(),
        ("LANG", _) => "language of the message".to_string(),
        ("H", _) => "HELO/EHLO name of the source".to_string(),
        ("PTR", _) => "reverse DNS of the source IP".to_string(),
        ("SCL", "-1") => "spam confidence -1: filtering skipped (a rule or an allow list)".to_string(),
        ("SCL", "0" | "1") => "spam confidence low: not spam".to_string(),
        ("SCL", "5" | "6") => "spam".to_string(),
        ("SCL", "9") => "high confidence spam".to_string(),
        ("SCL", _) => "spam confidence level".to_string(),
        ("IPV", "NLI") => "the IP is on no list".to_string(),
        ("IPV", "CAL") => "the IP is on the connection filter's IP Allow List (filtering skipped)".to_string(),
        ("SFV", "NSPM") => "not spam".to_string(),
        ("SFV", "SPM") => "spam".to_string(),
        ("SFV", "SKN") => "marked not spam before filtering (e.g. a mail flow rule set SCL -1)".to_string(),
        ("SFV", "SKS") => "marked spam before filtering (e.g. a mail flow rule)".to_string(),
        ("SFV", "SKA") => "skipped: sender on an anti-spam allow list".to_string(),
        ("SFV", "SKB") => "marked spam: sender on an anti-spam block list".to_string(),
        ("SFV", "SKI") => "skipped: intra-organization mail".to_string(),
        ("SFV", "SKQ") => "released from quarantine".to_string(),
        ("SFV", "BLK") => "blocked: sender on a user's Blocked Senders list".to_string(),
        ("SFV", "SFE") => "skipped: sender on a user's Safe Senders list".to_string(),
        ("CAT", "NONE") => "no category".to_string(),
        ("CAT", "SPM") => "spam".to_string(),
        ("CAT", "HSPM") => "high confidence spam".to_string(),
        ("CAT", "PHSH") => "phishing".to_string(),
        ("CAT", "HPHSH" | "HPHISH") => "high confidence phishing".to_string(),
        ("CAT", "SPOOF") => "spoofing".to_string(),
        ("CAT", "BULK") => "bulk".to_string(),
        ("CAT", "MALW") => "malware".to_string(),
        ("CAT", "OSPM") => "outbound spam".to_string(),
        ("DIR", "INB") => "inbound: from outside the organization".to_string(),
        ("DIR", "OUT") => "outbound: originating in the organization".to_string(),
        ("DIR", "INT") => "intra-organization".to_string(),
        ("SRV", "BULK") => "bulk sender".to_string(),
        ("SFS" | "SFP", _) => "filter rule ids (opaque)".to_string(),
        _ => return None,
    };
    Some(m)
}

/// §8.5, §14.7, §7.
fn exchange_meaning(lower: &str, value: &str) -> Option<String> {
    let v = value.trim();
    let m = match lower {
        "x-ms-exchange-organization-authas" | "x-ms-exchange-crosstenant-authas" => match v {
            "Anonymous" => "unauthenticated: internet mail, or a Partner connector",
            "Internal" => "internal: a mailbox's submission, or on-premises mail trusted as internal",
            "External" => "authenticated, but outside the organization",
            "Partner" => "a partner organization",
            _ => return None,
        }
        .to_string(),
        "x-ms-exchange-organization-authsource" | "x-ms-exchange-crosstenant-authsource" => {
            "the server that evaluated the authentication".to_string()
        }
        "x-ms-exchange-organization-authmechanism" => "submission authentication mechanism (2 hex digits)".to_string(),
        "x-ms-exchange-organization-messagedirectionality" => match v {
            "Incoming" => "attributed as Incoming: from the internet or a partner",
            "Originating" => {
                "attributed as Originating: from the tenant's own servers (an OnPremises connector) or mailboxes"
            }
            _ => return None,
        }
        .to_string(),
        "x-ms-exchange-crosstenant-fromentityheader" => match v {
            "Internet" => "entered from the internet",
            "HybridOnPrem" => "entered from on-premises through an OnPremises connector",
            "Hosted" => "sent by a mailbox in Exchange Online",
            _ => return None,
        }
        .to_string(),
        "x-ms-exchange-crosstenant-id" => "the tenant's GUID".to_string(),
        "x-ms-exchange-crosstenant-originalattributedtenantconnectingip" => {
            "the tenant attribution record (tenant, connecting IP, HELO)".to_string()
        }
        "x-ms-exchange-skiplistedinternetsender" => {
            "Enhanced Filtering restored this original sender IP (the accepting connector skips its gateway hops, §7)"
                .to_string()
        }
        "x-ms-exchange-externaloriginalinternetsender" => {
            "Enhanced Filtering: the original internet sender before the gateway (§7)".to_string()
        }
        "x-ms-exchange-authentication-results" => "authentication results of an internal hop (§14.3)".to_string(),
        _ if lower.starts_with("x-ms-exchange-crosspremises-") => {
            "cross-premises copy of an organization header (CloudServicesMailEnabled connectors, §8.5)".to_string()
        }
        _ => return None,
    };
    Some(m)
}

fn field<'a>(r: &'a HeaderReport, name: &str) -> Option<&'a str> {
    r.exchange.iter().find(|d| d.name.eq_ignore_ascii_case(name)).map(|d| d.value.as_str())
}

/// The hop where the tenant's frontend received the message: the newest `via Frontend Transport`
/// hop, else the newest `with Microsoft SMTP Server` hop.
fn frontend_hop(r: &HeaderReport) -> Option<&Hop> {
    r.hops
        .iter()
        .rev()
        .find(|h| h.via.as_deref().is_some_and(|v| v.eq_ignore_ascii_case("Frontend Transport")))
        .or_else(|| {
            r.hops.iter().rev().find(|h| h.with.as_deref().is_some_and(|w| w.starts_with("Microsoft SMTP Server")))
        })
}

/// What the fields say about the accepting connector (§1.3, §2.1, §7, §8.5, §14.2, §14.7).
fn connector_reading(r: &HeaderReport) -> Vec<String> {
    let mut out = Vec::new();
    let front = frontend_hop(r);
    if let Some(h) = front {
        let from = h.from.as_ref();
        let ip = from.and_then(|f| f.address.clone()).unwrap_or_else(|| "?".to_string());
        let helo = from.map_or("?", |f| f.name.as_str());
        let by = h.by.as_ref().map_or("?", |b| b.name.as_str());
        let tls = match &h.tls {
            Some(t) => format!("over TLS ({})", t.version.as_deref().unwrap_or("version not recorded")),
            None => "without TLS recorded (a connector with RequireTls would have refused it)".to_string(),
        };
        out.push(format!(
            "The tenant's frontend {by} accepted it from {ip} (HELO {helo}) {tls}: inbound connectors keyed on \
             SenderIPAddresses saw {ip} (§2.1)."
        ));
    }
    let auth_as = field(r, "X-MS-Exchange-Organization-AuthAs");
    let direction = field(r, "X-MS-Exchange-Organization-MessageDirectionality");
    match (direction, auth_as) {
        (Some("Originating"), Some("Internal")) => out.push(
            "Originating and AuthAs Internal: an OnPremises connector attributed it to the tenant's own servers \
             (relay to the internet allowed; §1.3)."
                .to_string(),
        ),
        (Some("Originating"), _) => out.push(
            "Originating: attributed to the tenant (an OnPremises connector or a mailbox), not trusted as internal."
                .to_string(),
        ),
        (Some("Incoming"), _) => out.push(
            "Incoming, AuthAs Anonymous: the internet path or a Partner connector (a Partner connector that restricts \
             by IP or certificate would have refused a non-matching source with 5.7.51; §2.4)."
                .to_string(),
        ),
        _ => {}
    }
    let skip = field(r, "X-MS-Exchange-SkipListedInternetSender");
    let cip = r.antispam.iter().find(|d| d.name.eq_ignore_ascii_case("CIP")).map(|d| d.value.clone());
    match (skip, front) {
        (Some(s), _) => out.push(format!(
            "Enhanced Filtering is on for the accepting connector: EOP judged the original sender {s} rather than \
             the gateway (§7, §14.2)."
        )),
        (None, Some(h)) if r.hops.len() > 1 && direction == Some("Incoming") => {
            let ip = h.from.as_ref().and_then(|f| f.address.clone()).unwrap_or_default();
            out.push(format!(
                "No X-MS-Exchange-SkipListedInternetSender: Enhanced Filtering did not apply, so if {ip} is a gateway \
                 in front of the tenant, SPF and spam filtering judged the gateway's IP (EFSkipIPs/EFSkipLastIP; §7)."
            ));
        }
        _ => {}
    }
    if let (Some(cip), Some(h)) = (cip, front)
        && let Some(ip) = h.from.as_ref().and_then(|f| f.address.as_ref())
        && &cip != ip
    {
        out.push(format!("X-Forefront-Antispam-Report CIP {cip} differs from the frontend's client {ip}."));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXO: &str = "Received: from BN8NAM12HT123.eop-nam12.prod.protection.outlook.com (2603:10b6:408:60::1) by\r
 SN6PR04MB4094.namprd04.prod.outlook.com (2603:10b6:805:a1::21) with Microsoft SMTP Server\r
 (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4867.9; Fri, 7 Jan 2022 05:46:48 +0000\r
Received: from mail.gateway.test (198.51.100.7) by BN8NAM12FT015.mail.protection.outlook.com (10.13.182.125)\r
 with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) id 15.20.4867.7 via\r
 Frontend Transport; Fri, 7 Jan 2022 05:46:46 +0000\r
Received: from sender.fabrikam.test (203.0.113.5) by mail.gateway.test with ESMTPS id 1; Fri, 7 Jan 2022 05:46:40 +0000\r
Authentication-Results: spf=pass (sender IP is 203.0.113.5) smtp.mailfrom=fabrikam.test; dkim=none (message not\r
 signed) header.d=none;dmarc=fail action=oreject header.from=fabrikam.test;compauth=none reason=451\r
Received-SPF: Pass (protection.outlook.com: domain of fabrikam.test designates 203.0.113.5 as permitted sender)\r
 receiver=protection.outlook.com; client-ip=203.0.113.5; helo=sender.fabrikam.test;\r
X-MS-Exchange-SkipListedInternetSender: ip=[203.0.113.5];domain=sender.fabrikam.test\r
X-Forefront-Antispam-Report: CIP:198.51.100.7;CTRY:US;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:mail.gateway.test;PTR:mail.gateway.test;CAT:NONE;SFS:(13230031);DIR:INB;\r
X-MS-Exchange-Organization-AuthAs: Anonymous\r
X-MS-Exchange-Organization-MessageDirectionality: Incoming\r
X-MS-Exchange-CrossTenant-FromEntityHeader: Internet\r
Subject: hello\r
\r
body\r
";

    #[test]
    fn reads_an_exo_header_with_enhanced_filtering() {
        let r = analyze(EXO.as_bytes());
        assert_eq!(r.hops.len(), 3);
        assert_eq!(r.total_delay_ms, Some(8000));
        let auth = &r.authentication[0];
        assert_eq!(auth.authserv_id, None);
        let methods: Vec<(&str, &str)> = auth.results.iter().map(|x| (x.method.as_str(), x.result.as_str())).collect();
        assert_eq!(methods, vec![("spf", "pass"), ("dkim", "none"), ("dmarc", "fail"), ("compauth", "none")]);
        assert_eq!(auth.results[0].comment.as_deref(), Some("sender IP is 203.0.113.5"));
        assert_eq!(prop(&auth.results[2], "header.from"), Some("fabrikam.test"));
        assert!(auth.results[2].meaning.as_deref().unwrap().contains("override reject"));
        assert!(auth.results[3].meaning.as_deref().unwrap().contains("451"));
        let spf = &r.received_spf[0];
        assert_eq!(spf.result, "Pass");
        assert!(spf.properties.contains(&("client-ip".to_string(), "203.0.113.5".to_string())));
        let sfv = r.antispam.iter().find(|d| d.name == "SFV").unwrap();
        assert_eq!(sfv.meaning.as_deref(), Some("not spam"));
        assert!(r.connector[0].contains("accepted it from 198.51.100.7 (HELO mail.gateway.test) over TLS (TLS1_2)"));
        assert!(r.connector.iter().any(|s| s.contains("Enhanced Filtering is on")), "{:?}", r.connector);
    }

    #[test]
    fn rfc8601_with_authserv_id_and_older_exo_form() {
        let a = auth_results(
            "Authentication-Results",
            "mx.example.org; spf=pass smtp.mailfrom=a.test; dkim=pass header.d=a.test",
        );
        assert_eq!(a.authserv_id.as_deref(), Some("mx.example.org"));
        assert_eq!(a.results.len(), 2);
        let old = auth_results(
            "Authentication-Results",
            "spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=gmail.com; wisetechglobal.com; dkim=pass (signature was \
             verified) header.d=gmail.com;wisetechglobal.com; dmarc=pass action=none header.from=gmail.com;",
        );
        let methods: Vec<&str> = old.results.iter().map(|x| x.method.as_str()).collect();
        assert_eq!(methods, vec!["spf", "dkim", "dmarc"]);
    }

    #[test]
    fn never_panics() {
        for v in ["", "Authentication-Results: ((;\r\n", "X-Forefront-Antispam-Report: ::;;:\r\n", "Received-SPF:\r\n"]
        {
            let _ = analyze(v.as_bytes());
        }
    }
}
