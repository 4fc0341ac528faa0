//! Domain patterns as EXO writes them in `SenderDomains`, `RecipientDomains`,
//! `TlsSenderCertificateName` and `TlsDomain`: `contoso.com`, `*.contoso.com` (the domain and all
//! subdomains) and `*` (everything). Embedded wildcards (`a.*.contoso.com`) are refused.

use std::fmt;

use crate::addr::Domain;

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

impl DomainPattern {
    /// Parses a pattern; `None` for forms EXO refuses.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        // Exported values look like `smtp:*;1` (exo-semantics §2.1 storage form).
        let s = s.strip_prefix("smtp:").or_else(|| s.strip_prefix("SMTP:")).unwrap_or(s);
        let s = s.strip_suffix(";1").unwrap_or(s);
        if s == "*" {
            return Some(Self::Any);
        }
        if let Some(rest) = s.strip_prefix("*.") {
            if rest.contains('*') {
                return None;
            }
            return Domain::parse(rest, true).ok().map(Self::Subtree);
        }
        if s.contains('*') {
            return None;
        }
        Domain::parse(s, true).ok().map(Self::Exact)
    }

    /// Whether `domain` falls under the pattern.
    pub fn matches(&self, domain: &Domain) -> bool {
        match self {
            Self::Any => true,
            Self::Subtree(d) => domain.is_within(d),
            Self::Exact(d) => d == domain,
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
