//! `mailsim serve`: the tenant endpoint on a loopback address until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_io::smtp_conn::Timeouts;
use mailsim_testkit::certs::TestPki;

use crate::endpoint::{EndpointOptions, RunningEndpoint, TlsMaterial};

/// `mailsim serve` flags.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback only).
    #[arg(long, env = "MAILSIM_LISTEN", default_value = "127.0.0.1:1025")]
    pub listen: SocketAddr,
    /// Tenant configuration file (TOML, EXO parameter names). Flags below add to it.
    #[arg(long, env = "MAILSIM_TENANT")]
    pub tenant: Option<PathBuf>,
    /// Write delivered messages as .eml files under this directory.
    #[arg(long, env = "MAILSIM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Accepted domain, `NAME[:Authoritative|InternalRelay]` (repeatable).
    #[arg(long = "accepted-domain", env = "MAILSIM_ACCEPTED_DOMAIN", value_delimiter = ',')]
    pub accepted_domains: Vec<String>,
    /// Mailbox address (repeatable).
    #[arg(long = "mailbox", env = "MAILSIM_MAILBOX", value_delimiter = ',')]
    pub mailboxes: Vec<String>,
    /// Server certificate chain (PEM).
    #[arg(long, env = "MAILSIM_TLS_CERT", default_value = "certs/tenant.chain.crt")]
    pub tls_cert: PathBuf,
    /// Server key (PEM).
    #[arg(long, env = "MAILSIM_TLS_KEY", default_value = "certs/tenant.key")]
    pub tls_key: PathBuf,
    /// CA bundle that client certificates must chain to, to be trusted.
    #[arg(long, env = "MAILSIM_TLS_CLIENT_CA", default_value = "certs/ca.crt")]
    pub tls_client_ca: PathBuf,
    /// Do not offer STARTTLS.
    #[arg(long, env = "MAILSIM_NO_TLS")]
    pub no_tls: bool,
    /// Concurrent connections before `421 4.3.2`.
    #[arg(long, env = "MAILSIM_MAX_CONNECTIONS", default_value_t = mailsim_io::listener::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds without a command before `451 4.7.0 Timeout waiting for client input`.
    #[arg(long, env = "MAILSIM_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout: u64,
}

/// Builds the tenant from the file (if any) and the flags.
pub fn tenant_from(args: &ServeArgs) -> anyhow::Result<Tenant> {
    let mut tenant = match &args.tenant {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            mailsim_core::tenant::load::load(&text, &path.display().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?
        }
        None => Tenant::default(),
    };
    for spec in &args.accepted_domains {
        let (name, kind) = match spec.split_once(':') {
            None => (spec.as_str(), DomainType::Authoritative),
            Some((n, k)) if k.eq_ignore_ascii_case("Authoritative") => (n, DomainType::Authoritative),
            Some((n, k)) if k.eq_ignore_ascii_case("InternalRelay") => (n, DomainType::InternalRelay),
            Some((_, k)) => {
                anyhow::bail!("--accepted-domain {spec}: unknown DomainType {k:?} (Authoritative or InternalRelay)")
            }
        };
        mailsim_core::addr::Domain::parse(name, true).map_err(|e| anyhow::anyhow!("--accepted-domain {spec}: {e}"))?;
        tenant = tenant.with_domain(name, kind);
    }
    for mailbox in &args.mailboxes {
        mailbox.parse::<mailsim_core::addr::EmailAddress>().map_err(|e| anyhow::anyhow!("--mailbox {mailbox}: {e}"))?;
        tenant = tenant.with_mailbox(mailbox);
    }
    Ok(tenant)
}

/// Runs `mailsim serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let tenant = tenant_from(&args)?;
    let tls = if args.no_tls {
        None
    } else if args.tls_cert.exists() {
        Some(TlsMaterial::from_files(&args.tls_cert, &args.tls_key, &args.tls_client_ca)?)
    } else {
        tracing::warn!(cert = %args.tls_cert.display(), "certificate not found; using a test PKI generated in memory (run `mailsim certs` to write one)");
        Some(TlsMaterial::from_pki(TestPki::default_shared()))
    };
    let mut options = EndpointOptions::new(tenant);
    options.tls = tls;
    options.state_dir = args.state_dir.clone();
    options.max_connections = args.max_connections;
    options.timeouts = Timeouts { idle: Duration::from_secs(args.idle_timeout), ..Timeouts::default() };
    let domains: Vec<String> =
        options.tenant.accepted_domains.iter().map(|d| format!("{} ({:?})", d.name, d.domain_type)).collect();
    let endpoint = RunningEndpoint::bind(args.listen, options).await?;
    println!("mailsim tenant endpoint listening on {}", endpoint.addr());
    println!("accepted domains: {}", if domains.is_empty() { "(none)".to_string() } else { domains.join(", ") });
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    endpoint.stop().await;
    Ok(())
}
