//! `mailsim certs`: test-only certificate material as files.
//!
//! - `mailsim certs [--out DIR]`: a fresh default test PKI (CA, rogue CA, tenant, gateway,
//!   partner and faulty leaves). Existing files are never replaced without `--force`.
//! - `mailsim certs --cn NAME --san NAME... [--expired] [--ca DIR] [--out DIR]`: one certificate
//!   for a chosen subject (client and server use, as real MTA certificates), signed by the CA in
//!   `--ca DIR` (an admin's: `ca.crt` and `ca.key`, PEM) or by the test CA in `--out DIR`; what an
//!   admin gives a real gateway so that the simulated tenant (trusting that CA) attributes it.
//!
//! mailsim itself needs none of these files: its built-in test PKI is minted in memory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mailsim_testkit::certs::{LeafSpec, TestCa, TestPki, Validity};

/// Arguments of `mailsim certs`.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory to write the PEM files into (created if missing).
    #[arg(long, env = "MAILSIM_CERTS_OUT", default_value = "certs")]
    pub out: PathBuf,
    /// Replace files that exist already (without it, nothing is written when one would be
    /// replaced).
    #[arg(long, env = "MAILSIM_CERTS_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    /// Mint one certificate with this subject common name instead of the default PKI; files
    /// `<NAME>.crt`, `<NAME>.chain.crt` (leaf + CA) and `<NAME>.key` (`*` written as `wildcard`).
    #[arg(long, env = "MAILSIM_CERTS_CN", value_name = "NAME")]
    pub cn: Option<String>,
    /// A subject alternative name of the --cn certificate: a DNS name or an IP address
    /// (repeatable). Without one, the common name is the only DNS SAN.
    #[arg(long = "san", env = "MAILSIM_CERTS_SAN", value_name = "NAME", value_delimiter = ',', requires = "cn")]
    pub sans: Vec<String>,
    /// Make the --cn certificate expired (valid 2020-01-01 to 2021-01-01).
    #[arg(long, env = "MAILSIM_CERTS_EXPIRED", requires = "cn", value_parser = clap::builder::BoolishValueParser::new())]
    pub expired: bool,
    /// The CA that signs the --cn certificate: a directory with `ca.crt` and `ca.key` (PEM).
    /// Default: the test CA in --out (written by `mailsim certs --out DIR`).
    #[arg(long, env = "MAILSIM_CERTS_CA", value_name = "DIR", requires = "cn")]
    pub ca: Option<PathBuf>,
}

/// Writes what was asked; refuses (an error, exit 2) to replace files without `--force`.
pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    match &args.cn {
        Some(cn) => mint_one(args, cn),
        None => default_pki(args),
    }
}

fn refuse_existing(paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let existing: Vec<String> = paths.iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
    anyhow::ensure!(
        existing.is_empty(),
        "{} exist already: nothing was written (give --force to replace them, or --out DIR for another directory)",
        existing.join(", ")
    );
    Ok(())
}

fn default_pki(args: &CertsArgs) -> anyhow::Result<()> {
    let mut names = vec!["ca.crt".to_string(), "ca.key".into(), "rogue-ca.crt".into(), "rogue-ca.key".into()];
    for (stem, _) in TestPki::leaf_specs() {
        names.extend([format!("{stem}.crt"), format!("{stem}.chain.crt"), format!("{stem}.key")]);
    }
    refuse_existing(&names.iter().map(|n| args.out.join(n)).collect::<Vec<_>>(), args.force)?;
    let pki = TestPki::generate();
    let written = pki.write_to(&args.out).with_context(|| format!("writing the test PKI to {}", args.out.display()))?;
    println!("wrote {} files to {} (test-only material, never use in production):", written.len(), args.out.display());
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn mint_one(args: &CertsArgs, cn: &str) -> anyhow::Result<()> {
    anyhow::ensure!(!cn.trim().is_empty(), "--cn: the common name is empty");
    let ca_dir = args.ca.as_deref().unwrap_or(&args.out);
    let (ca_crt, ca_key) = (ca_dir.join("ca.crt"), ca_dir.join("ca.key"));
    if !ca_crt.exists() && args.ca.is_none() {
        anyhow::bail!(
            "{}: no CA to sign with; write the test PKI first (`mailsim certs --out {}`) or give an admin's CA with --ca DIR \
             (ca.crt and ca.key)",
            ca_crt.display(),
            args.out.display()
        );
    }
    let ca = TestCa::from_pem(&read(&ca_crt)?, &read(&ca_key)?).with_context(|| {
        format!("{} and {} are not a usable CA certificate and key", ca_crt.display(), ca_key.display())
    })?;
    let mut spec = LeafSpec::both(cn);
    let sans: Vec<String> = if args.sans.is_empty() { vec![cn.to_string()] } else { args.sans.clone() };
    for san in &sans {
        spec = match san.parse::<IpAddr>() {
            Ok(ip) => spec.ip(ip),
            Err(_) => spec.dns(san.as_str()),
        };
    }
    if args.expired {
        spec = spec.validity(Validity::Expired);
    }
    let stem = cn.replace('*', "wildcard").replace(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)), "_");
    let files = [
        args.out.join(format!("{stem}.crt")),
        args.out.join(format!("{stem}.chain.crt")),
        args.out.join(format!("{stem}.key")),
    ];
    refuse_existing(&files, args.force)?;
    let leaf = ca.try_issue(&spec).with_context(|| format!("minting CN={cn}"))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (path, text) in files.iter().zip([&leaf.cert_pem, &leaf.chain_pem, &leaf.key_pem]) {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "CN={cn}, SANs {}, {}, signed by {:?} ({}); test material:",
        sans.join(", "),
        if args.expired { "expired (2020-01-01 to 2021-01-01)" } else { "valid 2000-01-01 to 2100-01-01" },
        ca.name(),
        ca_crt.display()
    );
    for path in &files {
        println!("  {}", path.display());
    }
    Ok(())
}
