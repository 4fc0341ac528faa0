//! What the world does for email authentication (issue 11 item 5, exo-behaviour §14): the DKIM
//! keys of the hosts that sign, and the `selector._domainkey` records published for them.
//!
//! A host that declares a signing identity (`dkim = { domain, selector }`) gets a key pair of the
//! world's [`DkimKeyring`] (distinct identities get distinct pairs), signs what it sends
//! ([`crate::sim::Simulation::send`]) and, as a relaying gateway, what it relays; the world's DNS
//! publishes `v=DKIM1; k=rsa; p=…` at `selector._domainkey.domain`, unless the scenario's `[dns]`
//! already has a TXT record there (so a scenario can publish a wrong or revoked key on purpose).

use mailsim_testkit::dkim::{DkimError, DkimKeyring, DkimSigning};
use mailsim_testkit::dns::DnsZoneSet;

use crate::sim::{HostSpec, SimError};

/// The signer of `host` (if it declares an identity), with its key published in `zones`.
pub(crate) fn host_signer(
    keyring: &mut DkimKeyring,
    host: &HostSpec,
    zones: &mut DnsZoneSet,
) -> Result<Option<DkimSigning>, SimError> {
    let Some(identity) = &host.dkim else { return Ok(None) };
    let signer = keyring.signer(identity).map_err(|source| SimError::Dkim { host: host.name.clone(), source })?;
    let (name, text) = signer.txt_record();
    if zones.txt_of(&name).is_empty() {
        *zones = std::mem::take(zones).txt(&name, &text);
    }
    Ok(Some(signer))
}

/// `content` (CRLF lines) with the host's `DKIM-Signature:` on top.
pub(crate) fn sign_text(signer: &DkimSigning, content: &str) -> Result<String, DkimError> {
    let header = signer.signature_header(content.as_bytes())?;
    Ok(format!("{header}{content}"))
}
