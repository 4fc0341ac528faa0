//! Addresses and domains, parsed per RFC 5321 §4.1.2 and §4.5.3.1 (local part ≤ 64 octets, domain
//! ≤ 255 octets, IP literals) and RFC 6531 (UTF-8 when SMTPUTF8 is in force).
//!
//! Domains compare case-insensitively; they are stored lower-cased. Local parts keep their case
//! (RFC 5321 §2.4) but mailbox lookups fold it, as Exchange does.

use std::fmt;
use std::net::IpAddr;

/// A domain name without a trailing dot, or an address literal (`[192.0.2.1]`).
///
/// Names are IDNA names (UTS #46 non-transitional processing, the `idna` crate): `straße.de`,
/// `Straße.DE` and `xn--strae-oqa.de` are one domain. Equality, hashing, ordering and
/// [`Self::as_str`] use the ASCII (A-label) form, so every comparison (accepted domains,
/// `SenderDomains`, certificate names, mailbox keys) is on normalized labels; [`fmt::Display`]
/// shows the name as it was written (lower-cased; U-labels stay U-labels for SMTPUTF8).
#[derive(Clone)]
pub struct Domain {
    ascii: String,
    text: String,
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.ascii == other.ascii
    }
}
impl Eq for Domain {}
impl std::hash::Hash for Domain {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ascii.hash(state);
    }
}
impl PartialOrd for Domain {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Domain {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.ascii.cmp(&other.ascii)
    }
}

/// Why an address or domain did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not RFC 5321 syntax.
    #[error("invalid address syntax")]
    Syntax,
    /// Local part longer than 64 octets (RFC 5321 §4.5.3.1.1).
    #[error("local part longer than 64 octets")]
    LocalPartTooLong,
    /// Domain longer than 255 octets (RFC 5321 §4.5.3.1.2).
    #[error("domain longer than 255 octets")]
    DomainTooLong,
    /// Non-ASCII without SMTPUTF8 (RFC 6531 §3.3).
    #[error("non-ASCII address without SMTPUTF8")]
    NonAscii,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

impl Domain {
    /// Parses a domain or address literal. `utf8` allows U-labels (RFC 6531).
    pub fn parse(s: &str, utf8: bool) -> Result<Self, AddressError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.len() > 255 {
            return Err(AddressError::DomainTooLong);
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let ip = inner.strip_prefix("IPv6:").unwrap_or(inner);
            let parsed: IpAddr = ip.parse().map_err(|_| AddressError::Syntax)?;
            if parsed.is_ipv6() != inner.starts_with("IPv6:") {
                return Err(AddressError::Syntax);
            }
            let text = s.to_ascii_lowercase().replace("ipv6:", "IPv6:");
            return Ok(Self { ascii: text.clone(), text });
        }
        if s.is_empty() {
            return Err(AddressError::Syntax);
        }
        let label_chars = |label: &str| label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
        if s.split('.').any(|label| label.is_empty() || !label_chars(label)) {
            return Err(AddressError::Syntax);
        }
        if !s.is_ascii() && !utf8 {
            return Err(AddressError::NonAscii);
        }
        // UTS #46 mapping (case folding, width and compatibility forms) and Punycode; refuses
        // invalid A-labels (`xn--` that does not decode) and disallowed code points.
        let ascii = idna::domain_to_ascii(s).map_err(|_| AddressError::Syntax)?;
        if ascii.len() > 255 {
            return Err(AddressError::DomainTooLong);
        }
        for label in ascii.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(AddressError::Syntax);
            }
        }
        let text = if s.is_ascii() { ascii.clone() } else { idna::domain_to_unicode(&ascii).0 };
        Ok(Self { ascii, text })
    }

    /// The ASCII (A-label) form, lower-cased: the form every comparison uses.
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// True when `self` is `parent` or a subdomain of it (label-wise, on A-labels).
    pub fn is_within(&self, parent: &Domain) -> bool {
        let (d, p) = (&self.ascii, &parent.ascii);
        d == p || (d.len() > p.len() && d.ends_with(p.as_str()) && d.as_bytes()[d.len() - p.len() - 1] == b'.')
    }

    /// Number of labels (`a.b.c` has 3).
    pub fn label_count(&self) -> usize {
        self.ascii.split('.').count()
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A mailbox address `local@domain`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    local: String,
    domain: Domain,
}

impl EmailAddress {
    /// Parses `local@domain` (no angle brackets). `utf8` allows UTF-8 (SMTPUTF8 in force).
    pub fn parse(s: &str, utf8: bool) -> Result<Self, AddressError> {
        let at = s.rfind('@').ok_or(AddressError::Syntax)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() {
            return Err(AddressError::Syntax);
        }
        if local.len() > 64 {
            return Err(AddressError::LocalPartTooLong);
        }
        if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
            // RFC 5321 §4.1.2 Quoted-string: qtextSMTP or a quoted pair of printable ASCII.
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(e) if (' '..='~').contains(&e) => {}
                        _ => return Err(AddressError::Syntax),
                    },
                    '"' => return Err(AddressError::Syntax),
                    c if (' '..='~').contains(&c) || (!c.is_ascii() && !c.is_control()) => {}
                    _ => return Err(AddressError::Syntax),
                }
            }
        } else if local.split('.').any(|atom| atom.is_empty() || !atom.chars().all(is_atext)) {
            return Err(AddressError::Syntax);
        }
        if !local.is_ascii() && !utf8 {
            return Err(AddressError::NonAscii);
        }
        Ok(Self { local: local.to_string(), domain: Domain::parse(domain, utf8)? })
    }

    /// The local part as sent.
    pub fn local(&self) -> &str {
        &self.local
    }
    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
    /// The lookup key Exchange uses for a recipient: case-folded, the domain as its A-label form
    /// (so `alice@straße.de` and `alice@xn--strae-oqa.de` are one mailbox).
    pub fn key(&self) -> String {
        // Built by hand: it runs for every recipient of every message (hot path, issue 14).
        let domain = self.domain.as_str();
        let mut key = String::with_capacity(self.local.len() + 1 + domain.len());
        if self.local.is_ascii() {
            key.extend(self.local.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            key.push_str(&self.local.to_lowercase());
        }
        key.push('@');
        key.push_str(domain);
        key
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, true)
    }
}

// Debug shows what an admin wrote (`Domain("straße.de")`), not the two normalized forms: rule
// sizes are estimated from it (`tenant::transport_rule`, the §13.2 8 KB limit).
impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Domain").field(&self.text).finish()
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EmailAddress").field(&format_args!("{self}")).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_case_of_ascii_and_utf8_local_parts() {
        let key = |a: &str| EmailAddress::parse(a, true).unwrap().key();
        assert_eq!(key("Alice.Smith@Contoso.TEST"), "alice.smith@contoso.test");
        assert_eq!(key("ÄNNE@straße.de"), "änne@xn--strae-oqa.de");
        assert_eq!(key("änne@XN--STRAE-OQA.de"), key("ÄNNE@straße.de"));
    }

    #[test]
    fn address_table() {
        let long_local = "a".repeat(65);
        let long_domain = format!("{}.test", ["abcdefghij"; 25].join("."));
        let rows: Vec<(&str, bool, Result<&str, AddressError>)> = vec![
            ("User@Contoso.COM", false, Ok("User@contoso.com")),
            ("first.last@sub.contoso.com", false, Ok("first.last@sub.contoso.com")),
            ("\"john doe\"@contoso.com", false, Ok("\"john doe\"@contoso.com")),
            ("postmaster@[192.0.2.1]", false, Ok("postmaster@[192.0.2.1]")),
            ("x@[IPv6:2001:db8::1]", false, Ok("x@[IPv6:2001:db8::1]")),
            ("x@[2001:db8::1]", false, Err(AddressError::Syntax)),
            ("x@[999.1.1.1]", false, Err(AddressError::Syntax)),
            ("no-at-sign", false, Err(AddressError::Syntax)),
            ("@contoso.com", false, Err(AddressError::Syntax)),
            ("a..b@contoso.com", false, Err(AddressError::Syntax)),
            (".a@contoso.com", false, Err(AddressError::Syntax)),
            ("a@-contoso.com", false, Err(AddressError::Syntax)),
            ("a@contoso..com", false, Err(AddressError::Syntax)),
            ("a b@contoso.com", false, Err(AddressError::Syntax)),
            ("a@contoso.com\0", false, Err(AddressError::Syntax)),
            ("a\r\n@contoso.com", false, Err(AddressError::Syntax)),
            (&long_local, false, Err(AddressError::Syntax)),
            ("用户@例子.测试", false, Err(AddressError::NonAscii)),
            ("用户@例子.测试", true, Ok("用户@例子.测试")),
            ("a@Bücher.test", false, Err(AddressError::NonAscii)),
        ];
        for (input, utf8, expected) in rows {
            let got = EmailAddress::parse(input, utf8).map(|a| a.to_string());
            assert_eq!(got.as_deref().map_err(|e| *e), expected, "{input:?}");
        }
        assert_eq!(EmailAddress::parse(&format!("{long_local}@x.test"), false), Err(AddressError::LocalPartTooLong));
        assert_eq!(EmailAddress::parse(&format!("a@{long_domain}"), false), Err(AddressError::DomainTooLong));
    }

    #[test]
    fn subdomains() {
        let d = |s| Domain::parse(s, false).unwrap();
        assert!(d("a.contoso.com").is_within(&d("contoso.com")));
        assert!(d("contoso.com").is_within(&d("contoso.com")));
        assert!(!d("notcontoso.com").is_within(&d("contoso.com")));
    }
}
