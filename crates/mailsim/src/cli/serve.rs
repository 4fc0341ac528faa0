//! `mailsim serve`: a live world for rehearsal with real clients, until Ctrl-C.
//!
//! - `mailsim serve SCENARIO`: the world of a scenario file (tenant, hosts and their scripted peers,
//!   DNS), brought up as `mailsim run` would but without playing the steps, and kept running. The
//!   address plan is printed so that a real MTA (a Postfix as the gateway, say) can bind a host's
//!   loopback address to send as that host, or listen on it to receive as it.
//! - `mailsim serve` without a scenario: the tenant endpoint alone, from `--tenant` and the flags.
//!
//! Either way the message trace (`trace.jsonl`), the mailboxes (`mailboxes/`) and the protocol log
//! (`protocol/RECV*.log`, `SEND*.log`) are written under `--state-dir`; `mailsim trace` reads them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_io::smtp_conn::Timeouts;
use mailsim_testkit::certs::TestPki;

use crate::endpoint::{EndpointOptions, RunningEndpoint, TlsMaterial};
use crate::sim::{Simulation, WorldSpec};

/// The tenant's address without a scenario.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1025";

/// `mailsim serve` flags.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// A scenario file: bring up its world (tenant, hosts, DNS) and keep it running. Without one,
    /// the tenant endpoint alone is served, from --tenant and the flags.
    #[arg(value_name = "SCENARIO", env = "MAILSIM_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Address the tenant listens on (loopback only). Default 127.0.0.1:1025; with a scenario, a
    /// fresh 127/8 address and port unless given (every host of the world uses the same port).
    #[arg(long, env = "MAILSIM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Tenant configuration file (TOML, EXO parameter names). Flags below add to it.
    #[arg(long, env = "MAILSIM_TENANT", conflicts_with = "scenario")]
    pub tenant: Option<PathBuf>,
    /// Where the message trace, the mailboxes (.eml) and the protocol log are written. Without it
    /// they stay in memory; a scenario world defaults to `state`.
    #[arg(long, env = "MAILSIM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Accepted domain, `NAME[:Authoritative|InternalRelay]` (repeatable).
    #[arg(
        long = "accepted-domain",
        env = "MAILSIM_ACCEPTED_DOMAIN",
        value_delimiter = ',',
        conflicts_with = "scenario"
    )]
    pub accepted_domains: Vec<String>,
    /// Mailbox address (repeatable).
    #[arg(long = "mailbox", env = "MAILSIM_MAILBOX", value_delimiter = ',', conflicts_with = "scenario")]
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
    let tenant = match &args.tenant {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let loaded = mailsim_core::tenant::load::load_with_warnings(&text, &path.display().to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for warning in &loaded.warnings {
                eprintln!("mailsim: {warning}");
            }
            loaded.tenant
        }
        None => Tenant::default(),
    };
    if args.accepted_domains.is_empty() && args.mailboxes.is_empty() {
        return Ok(tenant);
    }
    let mut builder = tenant.to_builder();
    for spec in &args.accepted_domains {
        let (name, kind) = match spec.split_once(':') {
            None => (spec.as_str(), DomainType::Authoritative),
            Some((n, k)) if k.eq_ignore_ascii_case("Authoritative") => (n, DomainType::Authoritative),
            Some((n, k)) if k.eq_ignore_ascii_case("InternalRelay") => (n, DomainType::InternalRelay),
            Some((_, k)) => {
                anyhow::bail!("--accepted-domain {spec}: unknown DomainType {k:?} (Authoritative or InternalRelay)")
            }
        };
        let domain = mailsim_core::addr::Domain::parse(name, true)
            .map_err(|e| anyhow::anyhow!("--accepted-domain {spec}: {e}"))?;
        // A domain the file already accepts keeps the file's settings.
        if !builder.accepted_domains.iter().any(|d| d.name == domain) {
            builder = builder.with_domain(name, kind);
        }
    }
    for mailbox in &args.mailboxes {
        mailbox.parse::<mailsim_core::addr::EmailAddress>().map_err(|e| anyhow::anyhow!("--mailbox {mailbox}: {e}"))?;
        builder = builder.with_mailbox(mailbox);
    }
    builder.build().map_err(|e| anyhow::anyhow!("--accepted-domain/--mailbox: {e}"))
}

/// Runs `mailsim serve` until Ctrl-C (or SIGTERM).
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    run_until(args, shutdown_signal()).await
}

/// Runs `mailsim serve` until `shutdown` completes, then stops every server cleanly.
pub async fn run_until(args: ServeArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    match args.scenario.clone() {
        Some(path) => serve_world(&path, &args, shutdown).await,
        None => serve_tenant(args, shutdown).await,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The world a scenario file describes (tenant, hosts, DNS), without its steps.
pub fn scenario_world(path: &Path) -> anyhow::Result<(WorldSpec, usize)> {
    let scenario = crate::scenario::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    for warning in &scenario.warnings {
        eprintln!("mailsim: {}: {warning}", path.display());
    }
    Ok((scenario.world, scenario.steps.len()))
}

/// Serves a scenario's world.
async fn serve_world(path: &Path, args: &ServeArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (mut world, steps) = scenario_world(path)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| PathBuf::from("state"));
    world.state_dir = Some(state_dir.clone());
    if let Some(listen) = args.listen {
        anyhow::ensure!(listen.ip().is_loopback(), "mailsim listens on loopback addresses only, not {}", listen.ip());
        world.tenant_bind = Some(listen);
    }
    let sim = Simulation::start(world).await.with_context(|| format!("starting the world of {}", path.display()))?;
    print!("{}", plan_text(&sim, path, steps, &state_dir));
    if let Some(line) = resumed_text(sim.endpoint()) {
        println!("{line}");
    }
    shutdown.await;
    println!("stopping");
    let left = stop_text(sim.endpoint());
    sim.stop().await;
    println!("{left}");
    Ok(())
}

/// The address plan of a running world, as `serve` prints it.
pub fn plan_text(sim: &Simulation, path: &Path, steps: usize, state_dir: &Path) -> String {
    let rows = sim.plan_table();
    let mut out = format!("mailsim world of {} is up\n\n", path.display());
    out.push_str(&format!("{:<14} {:<18} {:<24} role\n", "host", "declared", "loopback socket"));
    let tenant = sim.tenant_addr();
    let mut bind_hint = None;
    for (name, declared, socket) in &rows {
        let role = match name.as_str() {
            "tenant" => "the tenant endpoint (SMTP, STARTTLS)".to_string(),
            "dns" => "the world's DNS server (UDP and TCP)".to_string(),
            _ if sim.peer(name).is_ok() => {
                "scripted peer: receives mail here; send as it from this address".to_string()
            }
            _ => {
                bind_hint.get_or_insert_with(|| (name.clone(), socket.ip()));
                "sender: bind this address to send as it; listen on this socket to receive as it".to_string()
            }
        };
        out.push_str(&format!("{name:<14} {:<18} {:<24} {role}\n", declared.to_string(), socket.to_string()));
    }
    out.push('\n');
    out.push_str(&format!(
        "state: {dir}/trace.jsonl, {dir}/mailboxes/, {dir}/protocol/RECV*.log and SEND*.log\n",
        dir = state_dir.display()
    ));
    out.push_str(&format!(
        "{steps} scenario step(s) not played: serve brings the world up for live clients (`mailsim run` plays them)\n"
    ));
    if let Some((name, ip)) = bind_hint {
        out.push_str(&format!(
            "e.g. Postfix as {name}: smtp_bind_address = {ip}, relayhost = [{}]:{}\n",
            tenant.ip(),
            tenant.port()
        ));
    }
    out.push_str("Ctrl-C stops the world.\n");
    out
}

/// Serves the tenant endpoint alone.
async fn serve_tenant(args: ServeArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
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
    let listen = args.listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid"));
    let endpoint = RunningEndpoint::bind(listen, options).await?;
    println!("mailsim tenant endpoint listening on {}", endpoint.addr());
    println!("accepted domains: {}", if domains.is_empty() { "(none)".to_string() } else { domains.join(", ") });
    match &args.state_dir {
        Some(dir) => println!(
            "state: {dir}/trace.jsonl, {dir}/mailboxes/, {dir}/protocol/RECV*.log and SEND*.log",
            dir = dir.display()
        ),
        None => println!("state: in memory (give --state-dir DIR to keep the trace, mailboxes and protocol log)"),
    }
    if let Some(line) = resumed_text(&endpoint) {
        println!("{line}");
    }
    shutdown.await;
    println!("stopping");
    let left = stop_text(&endpoint);
    endpoint.stop().await;
    println!("{left}");
    Ok(())
}

/// What the durable queue took back at start, when it took anything.
pub fn resumed_text(endpoint: &RunningEndpoint) -> Option<String> {
    let r = endpoint.resumed()?;
    let mut line = format!(
        "queue: resumed {} recipient(s) of {} message(s) from {}",
        r.recipients,
        r.messages,
        endpoint.pipeline().spool()?.dir().display()
    );
    if r.reconciled > 0 {
        line.push_str(&format!("; {} already done by the trace", r.reconciled));
    }
    if r.torn_bytes > 0 {
        line.push_str(&format!("; {} byte(s) of an unacknowledged record discarded", r.torn_bytes));
    }
    Some(line)
}

/// What stopping leaves behind: kept in the durable queue, or dropped without one.
pub fn stop_text(endpoint: &RunningEndpoint) -> String {
    let (queued, in_flight) = endpoint.pipeline().unfinished();
    match endpoint.pipeline().spool() {
        Some(spool) => format!(
            "queue: {queued} queued recipient(s) and {in_flight} attempt(s) in flight kept in {} for the next start",
            spool.dir().display()
        ),
        None => format!(
            "queue: {queued} queued recipient(s) and {in_flight} attempt(s) in flight dropped (no --state-dir: the queue is in memory)"
        ),
    }
}
