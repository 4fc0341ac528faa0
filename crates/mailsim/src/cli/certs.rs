//! `mailsim certs`: write the default test PKI (test-only material) to a directory.

use std::path::PathBuf;

use anyhow::Context;
use mailsim_testkit::certs::TestPki;

/// Arguments of `mailsim certs`.
#[derive(clap::Args, Debug)]
pub struct CertsArgs {
    /// Directory to write the PEM files into (created if missing; files of the same names are
    /// replaced, other files are left alone).
    #[arg(long, env = "MAILSIM_CERTS_OUT", default_value = "certs")]
    pub out: PathBuf,
}

/// Generates a fresh default test PKI (new keys, fixed names) and writes it to `args.out`:
/// `ca.crt`/`ca.key`, `rogue-ca.crt`/`rogue-ca.key`, and `<name>.crt`, `<name>.chain.crt`,
/// `<name>.key` for each leaf (tenant, gateway, partner, wrong-subject, expired, untrusted,
/// wildcard, san-only).
pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let pki = TestPki::generate();
    let written = pki.write_to(&args.out).with_context(|| format!("writing the test PKI to {}", args.out.display()))?;
    println!("wrote {} files to {} (test-only material, never use in production):", written.len(), args.out.display());
    for path in &written {
        println!("  {}", path.display());
    }
    Ok(())
}
