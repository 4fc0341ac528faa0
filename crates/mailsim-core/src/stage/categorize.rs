//! Categorize: what the tenant does with one recipient (exo-behaviour §4.2). Pure.

use crate::addr::EmailAddress;
use crate::tenant::{DomainType, Tenant};

/// Where a recipient belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A mailbox of the tenant: deliver locally.
    Mailbox,
    /// An InternalRelay domain without a local mailbox: relay through an outbound connector.
    InternalRelay,
    /// An Authoritative domain without such a recipient: Directory-Based Edge Blocking refuses it
    /// at RCPT TO (§4.2).
    UnknownInAuthoritative,
    /// Not an accepted domain: external, needs relay rights.
    External,
}

/// Categorizes one recipient.
pub fn categorize(tenant: &Tenant, rcpt: &EmailAddress) -> Category {
    match tenant.accepted_domain(rcpt.domain()) {
        Some(_) if tenant.has_mailbox(rcpt) => Category::Mailbox,
        Some(d) => match d.domain_type {
            DomainType::Authoritative => Category::UnknownInAuthoritative,
            DomainType::InternalRelay => Category::InternalRelay,
        },
        None => Category::External,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table_of_section_4_2() {
        let tenant = Tenant::builder()
            .with_domain("contoso.test", DomainType::Authoritative)
            .with_domain("relay.test", DomainType::InternalRelay)
            .with_mailbox("alice@contoso.test")
            .with_mailbox("bob@relay.test")
            .build()
            .unwrap();
        let rows = [
            ("Alice@Contoso.TEST", Category::Mailbox),
            ("nobody@contoso.test", Category::UnknownInAuthoritative),
            ("bob@relay.test", Category::Mailbox),
            ("onprem@relay.test", Category::InternalRelay),
            ("someone@fabrikam.test", Category::External),
            ("x@sub.contoso.test", Category::External),
        ];
        for (rcpt, expected) in rows {
            assert_eq!(categorize(&tenant, &rcpt.parse().unwrap()), expected, "{rcpt}");
        }
    }
}
