//! What a live rehearsal with real MTAs needs besides the world itself (issue 9 items 3 and 4):
//! the admin's trust anchors for outbound certificate checks (`--tls-trust-ca`), DNS records for
//! a plain `serve --tenant` (`[dns]` in the tenant file or `--dns-zone FILE`), and clear words
//! when a chosen DNS port needs privileges the process lacks.
//!
//! The DNS records use the scenario format (`scenarios/README.md`, `[dns] records`): zone-file
//! lines with absolute names, grouped into zones by their last two labels.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use mailsim_core::diagnostics::{ConfigError, ConfigWarning};
use mailsim_core::tenant::Tenant;
use mailsim_testkit::dns::DnsZoneSet;
use rustls_pki_types::CertificateDer;

/// What to add to a bind error for `addr`: ports below 1024 need root (or
/// `CAP_NET_BIND_SERVICE`), which a process without them is told, with the ways out.
pub fn bind_hint(addr: SocketAddr) -> String {
    if addr.port() == 0 || addr.port() >= 1024 || is_root() {
        return String::new();
    }
    format!(
        " (port {} is privileged: run as root, give the binary CAP_NET_BIND_SERVICE \
         (`setcap cap_net_bind_service=+ep mailsim`), or pick a port of 1024 or above)",
        addr.port()
    )
}

/// Whether the process runs with effective uid 0 (read from `/proc`, so no `libc` call).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The CA certificates of a PEM bundle (`--tls-trust-ca`): the roots the tenant's outbound side
/// trusts for `CertificateValidation` and `DomainValidation` (exo-behaviour §3.1).
pub fn trust_roots(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let roots = mailsim_io::tls::load_pem_chain(path)
        .with_context(|| format!("--tls-trust-ca {}: reading the CA bundle", path.display()))?;
    anyhow::ensure!(!roots.is_empty(), "--tls-trust-ca {}: no certificate in the file", path.display());
    mailsim_io::tls::ServerTrust::new(roots.clone())
        .map_err(|e| anyhow::anyhow!("--tls-trust-ca {}: {e}", path.display()))?;
    Ok(roots)
}

/// A tenant file for `serve --tenant`, with its optional `[dns]` table: the tenant (through the
/// tenant loader, which skips `[dns]` by its extra-tables hook `load_with_other_tables`) and the
/// zones, read with the scenario loader's rules so errors name file, line, column and field.
pub fn tenant_file(path: &Path) -> Result<(Tenant, DnsZoneSet, Vec<ConfigWarning>), ConfigError> {
    let file = path.display().to_string();
    let text = crate::config_file::read(path)?;
    let doc = toml::de::DeTable::parse(&text);
    let has_dns = doc.as_ref().is_ok_and(|d| d.get_ref().contains_key("dns"));
    if !has_dns {
        let loaded = mailsim_core::tenant::load::load_with_warnings(&text, &file)?;
        return Ok((loaded.tenant, DnsZoneSet::new(), loaded.warnings));
    }
    // Only the tenant's tables and [dns]: the other scenario tables belong in scenario files.
    let loaded = mailsim_core::tenant::load::load_with_other_tables(&text, &file, &["dns"])?;
    let scenario = crate::scenario::load::parse(&text, path)?;
    Ok((loaded.tenant, scenario.world.dns, loaded.warnings))
}

/// A zone file for `--dns-zone FILE`: the lines a scenario's `[dns] records` holds, read by the
/// same loader (one set of rules and messages), with errors pointing into the zone file.
pub fn zone_file(path: &Path) -> Result<DnsZoneSet, ConfigError> {
    let file = path.display().to_string();
    let text = crate::config_file::read(path)?;
    if text.contains("'''") {
        return Err(ConfigError::at(&text, &file, &(0..0), "", "a zone file cannot contain `'''`"));
    }
    // A TOML literal string keeps every character of the file; the wrapping adds two lines.
    let wrapped = format!("[dns]\nrecords = '''\n{text}'''\n");
    crate::scenario::load::parse(&wrapped, path).map(|s| s.world.dns).map_err(|e| ConfigError {
        file,
        line: e.line.saturating_sub(2).max(1),
        column: e.column,
        field: String::new(),
        message: e.message,
        hint: e.hint,
    })
}
