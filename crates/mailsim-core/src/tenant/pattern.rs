//! Domain patterns as EXO writes them in `SenderDomains`, `RecipientDomains`,
//! `TlsSenderCertificateName` and `TlsDomain`: `contoso.com`, `*.contoso.com` (the domain and all
//! subdomains) and `*` (everything). Embedded wildcards (`a.*.contoso.com`) are refused
//! (exo-behaviour §2.1).
//!
//! Certificate names follow exo-behaviour §2.3: a connector value matches a certificate name (subject
//! CN or DNS SAN) case-insensitively; `*.contoso.com` covers contoso.com and every subdomain; a
//! certificate that itself carries `*.contoso.com` matches the connector values `*.contoso.com` and
//! `<one-label>.contoso.com` (the reference's recommendation, step 4; unconfirmed for EXO).

use std::fmt;

use crate::addr::{AddressError, Domain};

/// A parsed domain pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `*`
    Any,
    /// `*.contoso.com`: contoso.com and every subdomain.
    Subtree(Domain),
    /// `contoso.com`
    Exact(Domain),
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Nothing but whitespace.
    #[error("empty domain pattern")]
    Empty,
    /// A `*` anywhere but as the whole value or the first label (`a.*.contoso.com`, `*contoso.com`).
    #[error("a wildcard may only be the whole value (`*`) or the first label (`*.contoso.com`)")]
    MisplacedWildcard,
    /// An address literal (`[192.0.2.1]`) where a domain name is expected.
    #[error("an address literal is not a domain")]
    AddressLiteral,
    /// The domain part is not a domain name.
    #[error("not a domain name ({0})")]
    InvalidDomain(AddressError),
}

impl DomainPattern {
    /// Parses a pattern; `None` for forms EXO refuses. See [`Self::parse_detailed`] for the reason.
    pub fn parse(s: &str) -> Option<Self> {
        Self::parse_detailed(s).ok()
    }

    /// Parses a pattern, saying why a form is refused. Accepts the address-space form EXO stores and
    /// `Get-InboundConnector` displays (`smtp:*;1`, `SMTP:contoso.com;1`, exo-behaviour §2.1).
    pub fn parse_detailed(s: &str) -> Result<Self, PatternError> {
        let mut s = s.trim();
        // `get`, not slicing: a value may start with a multi-byte character (`straße.de`).
        if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("smtp:")) {
            s = &s[5..];
            // The address-space cost (`;1`) carries no meaning for matching.
            if let Some((value, cost)) = s.rsplit_once(';')
                && !cost.is_empty()
                && cost.bytes().all(|b| b.is_ascii_digit())
            {
                s = value;
            }
        } else if let Some(value) = s.strip_suffix(";1") {
            s = value;
        }
        let s = s.trim();
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s == "*" {
            return Ok(Self::Any);
        }
        let (subtree, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if rest.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        if rest.starts_with('[') {
            return Err(PatternError::AddressLiteral);
        }
        let domain = Domain::parse(rest, true).map_err(PatternError::InvalidDomain)?;
        Ok(if subtree { Self::Subtree(domain) } else { Self::Exact(domain) })
    }

    /// Whether `domain` falls under the pattern.
    pub fn matches(&self, domain: &Domain) -> bool {
        match self {
            Self::Any => true,
            Self::Subtree(d) => domain.is_within(d),
            Self::Exact(d) => d == domain,
        }
    }

    /// Whether a certificate name (subject CN or DNS SAN, as presented) satisfies this pattern used
    /// as a `TlsSenderCertificateName` (exo-behaviour §2.3 steps 4 and 5). Case-insensitive; a
    /// trailing dot is ignored; names with a wildcard anywhere but the first label never match.
    pub fn matches_cert_name(&self, name: &str) -> bool {
        let name = name.trim();
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return false;
        }
        // Compare A-labels with A-labels: a certificate may carry a U-label name.
        let ascii;
        let name = if name.is_ascii() {
            name
        } else {
            match idna::domain_to_ascii(name) {
                Ok(a) => {
                    ascii = a;
                    ascii.as_str()
                }
                Err(_) => return false,
            }
        };
        if let Some(base) = name.strip_prefix("*.") {
            if base.is_empty() || base.contains('*') {
                return false;
            }
            // §2.3 step 4, recommendation: a wildcard certificate `*.b` matches `*.b` and `x.b`.
            return match self {
                Self::Any => true,
                Self::Subtree(d) => d.as_str().eq_ignore_ascii_case(base),
                Self::Exact(d) => match d.as_str().split_once('.') {
                    Some((_, parent)) => parent.eq_ignore_ascii_case(base),
                    None => false,
                },
            };
        }
        if name.contains('*') {
            return false;
        }
        match self {
            Self::Any => true,
            Self::Exact(d) => d.as_str().eq_ignore_ascii_case(name),
            Self::Subtree(d) => ends_with_domain(name, d.as_str()),
        }
    }

    /// A rank for "most specific wins": exact beats subtree, longer subtrees beat shorter, `*` last.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            Self::Exact(d) => (2, d.label_count()),
            Self::Subtree(d) => (1, d.label_count()),
            Self::Any => (0, 0),
        }
    }

    /// The domain named by the pattern (`contoso.com` for `*.contoso.com`), `None` for `*`.
    pub fn domain(&self) -> Option<&Domain> {
        match self {
            Self::Any => None,
            Self::Subtree(d) | Self::Exact(d) => Some(d),
        }
    }
}

/// `name` equals `parent` or ends with `.parent`, ASCII case-insensitively.
pub(crate) fn ends_with_domain(name: &str, parent: &str) -> bool {
    let (n, p) = (name.as_bytes(), parent.as_bytes());
    if n.len() == p.len() {
        return n.eq_ignore_ascii_case(p);
    }
    n.len() > p.len() && n[n.len() - p.len() - 1] == b'.' && n[n.len() - p.len()..].eq_ignore_ascii_case(p)
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Subtree(d) => write!(f, "*.{d}"),
            Self::Exact(d) => write!(f, "{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s, true).unwrap()
    }

    /// exo-behaviour §2.1: the forms `SenderDomains` and `TlsSenderCertificateName` accept, and the
    /// ones EXO refuses.
    #[test]
    fn parse_table() {
        use DomainPattern::*;
        let rows: Vec<(&str, Result<DomainPattern, PatternError>)> = vec![
            ("*", Ok(Any)),
            ("smtp:*;1", Ok(Any)),
            ("SMTP:Contoso.COM;1", Ok(Exact(d("contoso.com")))),
            ("smtp:*.contoso.com;2", Ok(Subtree(d("contoso.com")))),
            ("contoso.com;1", Ok(Exact(d("contoso.com")))),
            (" *.Contoso.Com ", Ok(Subtree(d("contoso.com")))),
            ("contoso.com.", Ok(Exact(d("contoso.com")))),
            ("a.*.contoso.com", Err(PatternError::MisplacedWildcard)),
            ("*.*.contoso.com", Err(PatternError::MisplacedWildcard)),
            ("*contoso.com", Err(PatternError::MisplacedWildcard)),
            ("contoso.*", Err(PatternError::MisplacedWildcard)),
            ("**", Err(PatternError::MisplacedWildcard)),
            ("", Err(PatternError::Empty)),
            ("smtp:;1", Err(PatternError::Empty)),
            ("[192.0.2.1]", Err(PatternError::AddressLiteral)),
            ("*.", Err(PatternError::InvalidDomain(AddressError::Syntax))),
            ("contoso..com", Err(PatternError::InvalidDomain(AddressError::Syntax))),
            ("-contoso.com", Err(PatternError::InvalidDomain(AddressError::Syntax))),
            ("conto so.com", Err(PatternError::InvalidDomain(AddressError::Syntax))),
        ];
        for (input, expected) in rows {
            assert_eq!(DomainPattern::parse_detailed(input), expected, "{input:?}");
        }
    }

    /// Issue 14: a value starting with a multi-byte character panicked (`end byte index 5 is not a
    /// char boundary`); IDNA makes the U-label, its A-label and any case of either one domain.
    #[test]
    fn idna_values_parse_and_match_their_a_labels() {
        for value in ["straße.de", "Straße.DE", "xn--strae-oqa.de", "smtp:straße.de;1", "*.straße.de", "ß", "ßß.de"]
        {
            assert!(DomainPattern::parse_detailed(value).is_ok(), "{value}");
        }
        let p = DomainPattern::parse("straße.de").unwrap();
        assert_eq!(p, DomainPattern::parse("xn--strae-oqa.de").unwrap());
        assert!(p.matches(&Domain::parse("XN--STRAE-OQA.de", false).unwrap()));
        assert!(p.matches(&Domain::parse("STRAßE.de", true).unwrap()));
        assert!(!p.matches(&Domain::parse("strasse.de", false).unwrap()));
        let sub = DomainPattern::parse("*.straße.de").unwrap();
        assert!(sub.matches(&Domain::parse("mail.xn--strae-oqa.de", false).unwrap()));
        assert!(p.matches_cert_name("xn--strae-oqa.de"));
        assert!(p.matches_cert_name("Straße.de"));
        assert!(sub.matches_cert_name("mx.straße.de"));
        assert_eq!(p.to_string(), "straße.de");
        for bad in ["xn--zz-.de", "a\u{0}.de", "straße..de"] {
            assert!(DomainPattern::parse_detailed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domain_matching_table() {
        let rows = [
            ("*", "anything.test", true),
            ("*.contoso.com", "contoso.com", true),
            ("*.contoso.com", "a.b.contoso.com", true),
            ("*.contoso.com", "notcontoso.com", false),
            ("*.contoso.com", "contoso.com.evil.test", false),
            ("contoso.com", "contoso.com", true),
            ("contoso.com", "a.contoso.com", false),
            ("Contoso.com", "CONTOSO.com", true),
        ];
        for (pattern, domain, expected) in rows {
            let p = DomainPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(&d(domain)), expected, "{pattern} vs {domain}");
        }
    }

    /// exo-behaviour §2.3 steps 4 and 5.
    #[test]
    fn cert_name_table() {
        let rows = [
            ("*.contoso.com", "contoso.com", true),
            ("*.contoso.com", "mail.contoso.com", true),
            ("*.contoso.com", "a.b.contoso.com", true),
            ("*.contoso.com", "MAIL.Contoso.COM", true),
            ("*.contoso.com", "mail.contoso.com.", true),
            ("*.contoso.com", "xcontoso.com", false),
            ("*.contoso.com", "contoso.com.evil.test", false),
            ("mail.contoso.com", "mail.contoso.com", true),
            ("mail.contoso.com", "Mail.Contoso.Com", true),
            ("mail.contoso.com", "contoso.com", false),
            ("mail.contoso.com", "x.mail.contoso.com", false),
            // A wildcard certificate: matches `*.b` and one-label `x.b` connector values only.
            ("*.contoso.com", "*.contoso.com", true),
            ("mail.contoso.com", "*.contoso.com", true),
            ("mail.contoso.com", "*.CONTOSO.com", true),
            ("a.mail.contoso.com", "*.contoso.com", false),
            ("contoso.com", "*.contoso.com", false),
            ("*.mail.contoso.com", "*.contoso.com", false),
            ("*.com", "*.contoso.com", false),
            // Hostile names.
            ("*.contoso.com", "", false),
            ("*.contoso.com", "*", false),
            ("*.contoso.com", "a.*.contoso.com", false),
            ("*.contoso.com", "*.", false),
            ("contoso.com", "CN=contoso.com", false),
        ];
        for (pattern, name, expected) in rows {
            let p = DomainPattern::parse(pattern).unwrap();
            assert_eq!(p.matches_cert_name(name), expected, "{pattern} vs {name:?}");
        }
    }
}
