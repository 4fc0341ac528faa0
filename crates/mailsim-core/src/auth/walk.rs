//! Enhanced Filtering for Connectors: which hop of the `Received` chain EOP judges as the sender
//! (exo-behaviour §7, §14.2).
//!
//! Contract: [`hops`] lists the chain (the connecting IP first, then the IP of each `Received:`
//! line of the message as it arrived, newest first); [`walk`] applies the connector of record's
//! `EFSkipLastIP`/`EFSkipIPs`/`EFUsers` to it and returns a [`WalkOutcome`]: the restored original
//! internet sender (if any), whether it drives SPF (`EFUsers`), and every hop it stepped over and
//! why, for the trace and `mailsim explain`. Pure.
//!
//! The walk is §14.2's recommended algorithm (itself **unconfirmed**): skip the connecting hop
//! with `EFSkipLastIP`, any hop in an `EFSkipIPs` entry (only when `EFSkipLastIP` is `$false`), and
//! every RFC 1918 hop; the first hop left is the original sender. None left: no EF headers, the
//! connecting IP is judged (§14.2 step 4 recommendation). EF is off under centralized mail
//! transport (§7) and when neither parameter is set (§2.1).

use std::fmt;
use std::net::IpAddr;

use crate::addr::EmailAddress;
use crate::tenant::InboundConnector;

/// One hop of the chain: the address a server received the message from, and the HELO it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The sending server's address.
    pub ip: IpAddr,
    /// Its HELO/EHLO name as the receiving server recorded it (`unknown` when none was recorded).
    pub helo: String,
}

/// One `EFSkipIPs` entry: an IP, a dash range `a-b` or a CIDR block (§2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipEntry {
    /// A single address.
    One(IpAddr),
    /// `a-b`, inclusive.
    Range(IpAddr, IpAddr),
    /// A CIDR block.
    Net(ipnet::IpNet),
}

impl SkipEntry {
    /// Parses one entry as the loader accepted it (`check_ef_skip_ip`); `None` if it is none of the
    /// three forms.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if let Some((a, b)) = t.split_once('-') {
            let (a, b) = (a.trim().parse::<IpAddr>().ok()?, b.trim().parse::<IpAddr>().ok()?);
            (a.is_ipv4() == b.is_ipv4() && a <= b).then_some(Self::Range(a, b))
        } else if t.contains('/') {
            t.parse::<ipnet::IpNet>().ok().map(|n| Self::Net(n.trunc()))
        } else {
            t.parse().ok().map(Self::One)
        }
    }

    /// Whether `ip` falls in the entry (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match *self {
            Self::One(a) => canonical(a) == ip,
            Self::Range(a, b) => ip.is_ipv4() == a.is_ipv4() && canonical(a) <= ip && ip <= canonical(b),
            Self::Net(n) => n.contains(&ip),
        }
    }
}

impl fmt::Display for SkipEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(a) => write!(f, "{a}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
            Self::Net(n) => write!(f, "{n}"),
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// RFC 1918 (skipped automatically, §14.2 item 2c).
pub fn is_rfc1918(ip: IpAddr) -> bool {
    matches!(canonical(ip), IpAddr::V4(a) if a.is_private())
}

/// The hop a `Received:` field's `from` clause names: the HELO (first word after `from`) and the
/// first address in brackets (`[203.0.113.5]`, `[IPv6:2001:db8::1]`) or parentheses
/// (`(203.0.113.5)`, EXO's own form) before `by`. `None` when the line names no address.
pub fn received_hop(value: &str) -> Option<Hop> {
    let value = value.trim_start();
    let rest = value.get(..5).filter(|p| p.eq_ignore_ascii_case("from "))?;
    let rest = &value[rest.len()..];
    let clause = match find_word(rest, "by") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let helo = clause.split_whitespace().next().unwrap_or("unknown").to_string();
    let mut ip = None;
    for (i, c) in clause.char_indices() {
        if c == '[' || c == '(' {
            let close = if c == '[' { ']' } else { ')' };
            let inner = &clause[i + 1..];
            let end = inner.find(close).unwrap_or(inner.len());
            for token in inner[..end].split(|ch: char| ch.is_whitespace() || ch == '[' || ch == ']') {
                let token = token.strip_prefix("IPv6:").or_else(|| token.strip_prefix("ipv6:")).unwrap_or(token);
                if let Ok(a) = token.parse::<IpAddr>() {
                    ip = Some(a);
                    break;
                }
            }
            if ip.is_some() {
                break;
            }
        }
    }
    ip.map(|ip| Hop { ip, helo })
}

/// The position of `word` as a whole word in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(word).map(|i| i + from) {
        let before = i == 0 || bytes[i - 1].is_ascii_whitespace() || bytes[i - 1] == b')';
        let after = bytes.get(i + word.len()).is_none_or(|b| b.is_ascii_whitespace());
        if before && after {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

/// The chain EXO walks (§14.2 item 1): the connecting hop, then the hop named by each `Received:`
/// line of `content` (the message as it arrived, before EXO's own line), newest first. Lines that
/// name no address are left out.
pub fn hops(connecting: Hop, content: &[u8]) -> Vec<Hop> {
    let mut out = vec![connecting];
    for field in crate::header_section::fields(crate::header_section::section(content)) {
        if field.is("Received") {
            let value = String::from_utf8_lossy(field.raw);
            let value = value.split_once(':').map_or("", |(_, v)| v);
            let unfolded: String = value.split(['\r', '\n']).collect::<Vec<_>>().join(" ");
            if let Some(hop) = received_hop(&unfolded) {
                out.push(hop);
            }
        }
    }
    out
}

/// Which EF mode the connector of record sets (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EfMode {
    /// No connector, no EF parameters, or centralized mail transport.
    Off,
    /// `EFSkipLastIP $true`.
    SkipLastIp,
    /// `EFSkipIPs` listed.
    SkipIps,
}

/// Why a hop was stepped over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The connecting hop under `EFSkipLastIP`.
    LastIp,
    /// In an `EFSkipIPs` entry.
    Listed(SkipEntry),
    /// RFC 1918.
    Private,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LastIp => f.write_str("the connecting hop (EFSkipLastIP)"),
            Self::Listed(e) => write!(f, "in EFSkipIPs entry {e}"),
            Self::Private => f.write_str("an RFC 1918 address (skipped automatically)"),
        }
    }
}

/// The result of the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkOutcome {
    /// The connector whose parameters applied.
    pub connector: Option<String>,
    /// The mode.
    pub mode: EfMode,
    /// Why EF is off, when it is and a connector was involved.
    pub off_reason: Option<&'static str>,
    /// Each hop stepped over, with the reason.
    pub skipped: Vec<(Hop, SkipReason)>,
    /// The original internet sender (`X-MS-Exchange-SkipListedInternetSender`), when EF is on and
    /// a hop was left.
    pub original: Option<Hop>,
    /// `EFUsers` held: every recipient listed, or the list empty
    /// (`X-MS-Exchange-ExternalOriginalInternetSender`; the restored hop drives SPF only then).
    pub users_match: bool,
}

impl WalkOutcome {
    /// The hop SPF, `H:`, `PTR:` and `CTRY:` are judged on: the original sender when EF applies to
    /// every recipient, else the connecting hop (§14.2 item 3, §7 `EFUsers`).
    pub fn judged<'a>(&'a self, connecting: &'a Hop) -> &'a Hop {
        match &self.original {
            Some(h) if self.users_match => h,
            _ => connecting,
        }
    }

    /// `ip=[<ip>];domain=<helo>` (§7).
    pub fn header_value(hop: &Hop) -> String {
        format!("ip=[{}];domain={}", hop.ip, hop.helo)
    }

    /// Whether EF took effect (a restored hop that drives SPF).
    pub fn active(&self) -> bool {
        self.original.is_some() && self.users_match
    }
}

/// Walks `hops` (from [`hops`]) with the connector of record's parameters. `cmt` is centralized
/// mail transport (an outbound connector with `RouteAllMessagesViaOnPremises`).
pub fn walk(connector: Option<&InboundConnector>, cmt: bool, hops: &[Hop], recipients: &[EmailAddress]) -> WalkOutcome {
    let mut out = WalkOutcome {
        connector: connector.map(|c| c.name.clone()),
        mode: EfMode::Off,
        off_reason: None,
        skipped: Vec::new(),
        original: None,
        users_match: false,
    };
    let Some(c) = connector else { return out };
    let entries: Vec<SkipEntry> = c.ef_skip_ips.iter().filter_map(|t| SkipEntry::parse(t)).collect();
    out.mode = if c.ef_skip_last_ip {
        EfMode::SkipLastIp
    } else if !entries.is_empty() {
        EfMode::SkipIps
    } else {
        out.off_reason = Some("neither EFSkipLastIP nor EFSkipIPs is set");
        return out;
    };
    if cmt {
        out.mode = EfMode::Off;
        out.off_reason = Some("Enhanced Filtering is not supported with centralized mail transport");
        return out;
    }
    out.users_match = c.ef_users.is_empty() || recipients.iter().all(|r| c.ef_users.iter().any(|u| u.key() == r.key()));
    for (i, hop) in hops.iter().enumerate() {
        let reason = if i == 0 && out.mode == EfMode::SkipLastIp {
            Some(SkipReason::LastIp)
        } else if let Some(e) = entries.iter().find(|e| out.mode == EfMode::SkipIps && e.contains(hop.ip)) {
            Some(SkipReason::Listed(*e))
        } else if is_rfc1918(hop.ip) {
            Some(SkipReason::Private)
        } else {
            None
        };
        match reason {
            Some(r) => out.skipped.push((hop.clone(), r)),
            None => {
                out.original = Some(hop.clone());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::ConnectorType;

    fn hop(ip: &str, helo: &str) -> Hop {
        Hop { ip: ip.parse().unwrap(), helo: helo.to_string() }
    }

    fn conn(skip_last: bool, ips: &[&str], users: &[&str]) -> InboundConnector {
        let mut c = InboundConnector::new("From gateway", ConnectorType::Partner);
        c.ef_skip_last_ip = skip_last;
        c.ef_skip_ips = ips.iter().map(|s| s.to_string()).collect();
        c.ef_users = users.iter().map(|u| EmailAddress::parse(u, false).unwrap()).collect();
        c
    }

    fn rcpts(list: &[&str]) -> Vec<EmailAddress> {
        list.iter().map(|u| EmailAddress::parse(u, false).unwrap()).collect()
    }

    /// The seed 004 chain: gateway outbound node, private load balancer, gateway receiving node,
    /// the partner.
    fn chain() -> Vec<Hop> {
        vec![
            hop("198.51.100.20", "out.gw.example"),
            hop("10.0.0.5", "lb.gw.internal"),
            hop("198.51.100.10", "rx.gw.example"),
            hop("203.0.113.5", "mail.partner.example"),
        ]
    }

    #[test]
    fn skip_entries_parse_and_match_the_three_forms() {
        let one = SkipEntry::parse("198.51.100.7").unwrap();
        let range = SkipEntry::parse("198.51.100.1 - 198.51.100.9").unwrap();
        let net = SkipEntry::parse("198.51.100.0/24").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(one.contains(ip("198.51.100.7")) && !one.contains(ip("198.51.100.8")));
        assert!(range.contains(ip("198.51.100.9")) && !range.contains(ip("198.51.100.10")));
        assert!(net.contains(ip("198.51.100.255")) && !net.contains(ip("198.51.101.0")));
        assert!(net.contains(ip("::ffff:198.51.100.3")));
        assert_eq!(SkipEntry::parse("198.51.100.9-198.51.100.1"), None);
        assert_eq!(SkipEntry::parse("nope"), None);
    }

    /// Table: (EFSkipLastIP, EFSkipIPs, EFUsers, recipients, cmt) → original sender, SPF hop.
    #[test]
    #[allow(clippy::type_complexity)]
    fn walk_table() {
        let c = chain();
        let rows: Vec<(InboundConnector, &[&str], bool, Option<&str>, &str)> = vec![
            // EF off: nothing restored, the gateway is judged (§14.2 [O26]).
            (conn(false, &[], &[]), &["a@contoso.test"], false, None, "198.51.100.20"),
            // The seed's trap: EFSkipLastIP skips one hop, the LB is private, the walk stops at
            // the gateway's receiving node.
            (conn(true, &[], &[]), &["a@contoso.test"], false, Some("198.51.100.10"), "198.51.100.10"),
            // The fix: every gateway range listed reaches the partner.
            (conn(false, &["198.51.100.0/24"], &[]), &["a@contoso.test"], false, Some("203.0.113.5"), "203.0.113.5"),
            // A dash range and a single IP work the same way.
            (
                conn(false, &["198.51.100.20", "198.51.100.10-198.51.100.11"], &[]),
                &["a@contoso.test"],
                false,
                Some("203.0.113.5"),
                "203.0.113.5",
            ),
            // EFSkipIPs is ignored while EFSkipLastIP is $true (§2.1).
            (conn(true, &["198.51.100.0/24"], &[]), &["a@contoso.test"], false, Some("198.51.100.10"), "198.51.100.10"),
            // EFUsers listing every recipient: EF applies.
            (
                conn(false, &["198.51.100.0/24"], &["a@contoso.test", "b@contoso.test"]),
                &["A@contoso.test"],
                false,
                Some("203.0.113.5"),
                "203.0.113.5",
            ),
            // EFUsers listing only some: the original is found and shown, but normal filtering
            // (the connecting IP) for all.
            (
                conn(false, &["198.51.100.0/24"], &["a@contoso.test"]),
                &["a@contoso.test", "b@contoso.test"],
                false,
                Some("203.0.113.5"),
                "198.51.100.20",
            ),
            // Centralized mail transport: EF off.
            (conn(false, &["198.51.100.0/24"], &[]), &["a@contoso.test"], true, None, "198.51.100.20"),
        ];
        for (i, (connector, to, cmt, original, judged)) in rows.into_iter().enumerate() {
            let w = walk(Some(&connector), cmt, &c, &rcpts(to));
            assert_eq!(w.original.as_ref().map(|h| h.ip.to_string()).as_deref(), original, "row {i}: {w:?}");
            assert_eq!(w.judged(&c[0]).ip.to_string(), judged, "row {i}");
        }
    }

    #[test]
    fn every_hop_skipped_restores_nothing_and_no_connector_means_off() {
        let c = vec![hop("198.51.100.20", "gw"), hop("10.1.2.3", "inside")];
        let w = walk(Some(&conn(false, &["198.51.100.0/24"], &[])), false, &c, &rcpts(&["a@contoso.test"]));
        assert_eq!(w.original, None);
        assert_eq!(w.skipped.len(), 2);
        assert_eq!(w.skipped[1].1, SkipReason::Private);
        let w = walk(None, false, &c, &rcpts(&["a@contoso.test"]));
        assert_eq!((w.mode, w.original), (EfMode::Off, None));
    }

    #[test]
    fn received_lines_in_common_forms() {
        let cases = [
            (
                "from mail.partner.example (mail.partner.example [203.0.113.5]) by rx.gw.example with ESMTPS id 1",
                "203.0.113.5",
                "mail.partner.example",
            ),
            (
                "from lb.gw.internal (10.0.0.5) by out.gw.example (198.51.100.20) with SMTP",
                "10.0.0.5",
                "lb.gw.internal",
            ),
            ("from [IPv6:2001:db8::1] (unknown [IPv6:2001:db8::1]) by x", "2001:db8::1", "[IPv6:2001:db8::1]"),
            ("  FROM h.example ([192.0.2.1]) by y", "192.0.2.1", "h.example"),
        ];
        for (line, ip, helo) in cases {
            let h = received_hop(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!((h.ip.to_string().as_str(), h.helo.as_str()), (ip, helo), "{line}");
        }
        assert_eq!(received_hop("by x.example with SMTP"), None);
        assert_eq!(received_hop("from x.example by y.example (192.0.2.9)"), None);
        let content = b"Received: from lb (10.0.0.5)\r\n by out.gw (198.51.100.20); Mon, 1 Jan 2024\r\nReceived: from rx.gw (rx.gw [198.51.100.10])\r\n\tby lb; Mon\r\nSubject: x\r\n\r\nReceived: from body (1.2.3.4)\r\n";
        let chain = hops(hop("198.51.100.20", "out.gw"), content);
        let ips: Vec<String> = chain.iter().map(|h| h.ip.to_string()).collect();
        assert_eq!(ips, ["198.51.100.20", "10.0.0.5", "198.51.100.10"]);
    }
}
