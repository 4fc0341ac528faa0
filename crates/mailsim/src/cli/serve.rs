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
use crate::sim::{PlanRole, Simulation, WorldSpec};
use mailsim_testkit::dns::{DnsZoneSet, ScriptedDns};

/// The tenant's address without a scenario.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1025";
/// The port of every host of a served scenario world unless `--listen` names one: stable, so a
/// real MTA's configuration written for one run holds for the next.
pub const DEFAULT_WORLD_PORT: u16 = 2525;
/// The tenant's outbound address without a scenario: not its listener's, so peers and
/// source-IP rules see the tenant's outbound side apart from local clients.
pub const DEFAULT_OUTBOUND: &str = "127.0.0.2";

/// `mailsim serve` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// A scenario file: bring up its world (tenant, hosts, DNS) and keep it running. Without one,
    /// the tenant endpoint alone is served, from --tenant and the flags.
    #[arg(value_name = "SCENARIO", env = "MAILSIM_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Address the tenant listens on (loopback only). Default 127.0.0.1:1025; with a scenario, the
    /// tenant's planned (stable) address and port 2525 (every host of the world uses the same port).
    #[arg(long, env = "MAILSIM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Tenant configuration file (TOML, EXO parameter names). Flags below add to it.
    #[arg(long, env = "MAILSIM_TENANT", conflicts_with = "scenario")]
    pub tenant: Option<PathBuf>,
    /// Where the message trace, the mailboxes (one .mbox file each) and the protocol log are written. Without it
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
    /// Server certificate chain (PEM), with --tls-key. Default: the built-in test PKI's tenant
    /// certificate (minted in memory; with a scenario, the world's test PKI).
    #[arg(long, env = "MAILSIM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Server key (PEM), with --tls-cert.
    #[arg(long, env = "MAILSIM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle that client certificates must chain to, to be trusted. Default: the built-in test
    /// CA (or the world's test CA). `mailsim certs --out DIR` writes a test PKI to files.
    #[arg(long, env = "MAILSIM_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// CA bundle the tenant trusts for server certificates when it sends through a connector with
    /// CertificateValidation or DomainValidation (default: the world's test CA).
    #[arg(long, env = "MAILSIM_TLS_TRUST_CA")]
    pub tls_trust_ca: Option<PathBuf>,
    /// Bind the world's DNS server here (UDP and TCP, loopback only), e.g. 127.0.0.153:53 for a
    /// real MTA's resolv.conf. Ports below 1024 need root or CAP_NET_BIND_SERVICE.
    #[arg(long = "dns", env = "MAILSIM_DNS", value_name = "ADDR")]
    pub dns: Option<SocketAddr>,
    /// DNS records for `serve --tenant` (zone-file lines with absolute names, as a scenario's
    /// `[dns] records`); a tenant file may hold them in a `[dns]` table instead.
    #[arg(long = "dns-zone", env = "MAILSIM_DNS_ZONE", value_name = "FILE", conflicts_with = "scenario")]
    pub dns_zone: Option<PathBuf>,
    /// The loopback address the tenant sends from (every outbound connection binds it). Default:
    /// 127.0.0.2 for `serve --tenant`, the planned `tenant-out` address with a scenario.
    #[arg(long = "outbound-address", env = "MAILSIM_OUTBOUND_ADDRESS", value_name = "IP")]
    pub outbound_address: Option<std::net::IpAddr>,
    /// Evaluate SPF, DKIM and DMARC on inbound mail against the world's DNS and stamp EXO's
    /// authentication headers (exo-behaviour §14, docs/authentication.md). Needs the world's DNS
    /// (`[dns]` in the tenant file, --dns-zone or --dns); a scenario sets it in `[scenario]`.
    #[arg(long, env = "MAILSIM_AUTHENTICATION", conflicts_with = "scenario")]
    pub authentication: bool,
    /// Do not offer STARTTLS.
    #[arg(long, env = "MAILSIM_NO_TLS")]
    pub no_tls: bool,
    /// Concurrent connections before `421 4.3.2`.
    #[arg(long, env = "MAILSIM_MAX_CONNECTIONS", default_value_t = mailsim_io::listener::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds without a command before `451 4.7.0 Timeout waiting for client input`.
    #[arg(long, env = "MAILSIM_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout: u64,
    /// The HTTP API (`--http`, `--no-http`) and `--play`.
    #[command(flatten)]
    pub http: super::serve_http::HttpArgs,
}

/// Builds the tenant from the file (if any) and the flags.
pub fn tenant_from(args: &ServeArgs) -> anyhow::Result<Tenant> {
    Ok(tenant_and_dns(args)?.0)
}

/// The tenant and the DNS records of `serve --tenant`: the tenant file's `[dns]` table or
/// `--dns-zone` (not both).
pub fn tenant_and_dns(args: &ServeArgs) -> anyhow::Result<(Tenant, DnsZoneSet)> {
    let (tenant, mut zones) = match &args.tenant {
        Some(path) => {
            let (tenant, zones, warnings) = crate::live::tenant_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            for line in crate::lint::startup_lines(&path.display().to_string(), &tenant, crate::lint::now()) {
                eprintln!("{line}");
            }
            for warning in &warnings {
                eprintln!("mailsim: {warning}");
            }
            (tenant, zones)
        }
        None => (Tenant::default(), DnsZoneSet::new()),
    };
    if let Some(zone) = &args.dns_zone {
        anyhow::ensure!(
            zones.zone_names().is_empty(),
            "--dns-zone {}: the tenant file has a [dns] table already; give the records in one place",
            zone.display()
        );
        zones = crate::live::zone_file(zone).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok((with_flags(tenant, args)?, zones))
}

fn with_flags(tenant: Tenant, args: &ServeArgs) -> anyhow::Result<Tenant> {
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
    for line in crate::lint::startup_lines(&path.display().to_string(), &scenario.world.tenant, crate::lint::now()) {
        eprintln!("{line}");
    }
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
    apply_live_flags(&mut world, args)?;
    let sim = Simulation::start(world).await.with_context(|| format!("starting the world of {}", path.display()))?;
    print!("{}", plan_text(&sim, path, if args.http.play { 0 } else { steps }, &state_dir));
    if let Some(line) = resumed_text(sim.endpoint()) {
        println!("{line}");
    }
    let sim = std::sync::Arc::new(sim);
    let live = super::serve_http::start_scenario(&args.http, path, sim.clone()).await?;
    shutdown.await;
    println!("stopping");
    live.stop().await;
    let left = stop_text(sim.endpoint());
    match std::sync::Arc::try_unwrap(sim) {
        Ok(sim) => sim.stop().await,
        Err(sim) => sim.endpoint().protocol_log().flush(),
    }
    println!("{left}");
    Ok(())
}

/// The flags of a live rehearsal applied to a scenario's world (issue 9 items 2-4, 6): the
/// tenant's socket (stable: its planned address and port 2525 unless `--listen`), the DNS
/// server's, the tenant's outbound address, its certificate and client CAs, the outbound trust
/// anchors, STARTTLS and the session limits. Every flag `serve` accepts applies here or is refused
/// by clap (`--tenant`, `--accepted-domain`, `--mailbox`, `--dns-zone`): none is ignored.
pub fn apply_live_flags(world: &mut WorldSpec, args: &ServeArgs) -> anyhow::Result<()> {
    let listen = match args.listen {
        Some(listen) => listen,
        None => {
            SocketAddr::new(world.tenant_loopback.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()), DEFAULT_WORLD_PORT)
        }
    };
    anyhow::ensure!(listen.ip().is_loopback(), "mailsim listens on loopback addresses only, not {}", listen.ip());
    world.tenant_bind = Some(listen);
    if let Some(dns) = args.dns {
        anyhow::ensure!(dns.ip().is_loopback(), "--dns {dns}: the world's DNS binds loopback addresses only");
        world.dns_bind = Some(dns);
    } else if let Some(ip) = world.dns_loopback {
        world.dns_bind = Some(SocketAddr::new(ip, listen.port()));
    }
    if let Some(ip) = args.outbound_address {
        anyhow::ensure!(ip.is_loopback(), "--outbound-address {ip}: the tenant sends from loopback addresses only");
        world.tenant_outbound_loopback = Some(ip);
    }
    if args.no_tls {
        anyhow::ensure!(
            args.tls_cert.is_none() && args.tls_key.is_none() && args.tls_client_ca.is_none(),
            "--no-tls: no STARTTLS is offered, so --tls-cert, --tls-key and --tls-client-ca do not apply"
        );
        world.starttls = false;
    } else if args.tls_cert.is_some() || args.tls_key.is_some() || args.tls_client_ca.is_some() {
        let pki = TestPki::default_shared();
        let mut material = TlsMaterial::from_pki(pki);
        match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                material.chain =
                    mailsim_io::tls::load_pem_chain(cert).with_context(|| format!("--tls-cert {}", cert.display()))?;
                material.key =
                    mailsim_io::tls::load_pem_key(key).with_context(|| format!("--tls-key {}", key.display()))?;
            }
            (None, None) => {}
            (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key (the certificate's private key)"),
            (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert (the certificate it belongs to)"),
        }
        if let Some(ca) = &args.tls_client_ca {
            material.client_roots =
                mailsim_io::tls::load_pem_chain(ca).with_context(|| format!("--tls-client-ca {}", ca.display()))?;
        }
        world.tls = Some(material);
    }
    if let Some(ca) = &args.tls_trust_ca {
        world.server_roots = Some(crate::live::trust_roots(ca)?);
    }
    world.max_connections = Some(args.max_connections);
    world.idle_timeout = Some(Duration::from_secs(args.idle_timeout));
    Ok(())
}

/// The address plan of a running world, as `serve` prints it.
pub fn plan_text(sim: &Simulation, path: &Path, steps: usize, state_dir: &Path) -> String {
    let rows = sim.plan();
    let mut out = format!("mailsim world of {} is up\n\n", path.display());
    out.push_str(&format!("{:<14} {:<18} {:<24} role\n", "host", "declared", "loopback socket"));
    let tenant = sim.tenant_addr();
    let mut bind_hint = None;
    for row in &rows {
        let role = match row.role {
            PlanRole::Tenant => "the tenant endpoint (SMTP, STARTTLS)",
            PlanRole::TenantOutbound => "the tenant's outbound source address (every connection it makes)",
            PlanRole::Dns => "the world's DNS server (UDP and TCP)",
            PlanRole::Peer => "scripted peer: receives mail here; send as it from this address",
            PlanRole::Sender => {
                bind_hint.get_or_insert_with(|| (row.name.clone(), row.loopback));
                "sender: bind this address to send as it; listen on this socket to receive as it"
            }
        };
        let socket = match row.port {
            Some(port) => SocketAddr::new(row.loopback, port).to_string(),
            None => row.loopback.to_string(),
        };
        out.push_str(&format!("{:<14} {:<18} {socket:<24} {role}\n", row.name, row.declared.to_string()));
    }
    out.push('\n');
    out.push_str(&format!(
        "state: {dir}/trace.jsonl, {dir}/mailboxes/, {dir}/protocol/RECV*.log and SEND*.log\n",
        dir = state_dir.display()
    ));
    if steps > 0 {
        out.push_str(&format!(
        "{steps} scenario step(s) not played: serve brings the world up for live clients (`--play` plays them, as does POST /api/v1/steps)\n"
    ));
    }
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

/// The tenant's STARTTLS material: the built-in test PKI (minted in memory, the same in every
/// directory and after `cargo install`), with each part replaced by a file only when one is given:
/// `--tls-cert` with `--tls-key` for the server certificate, `--tls-client-ca` for the CAs client
/// certificates are trusted by.
pub fn tls_material(args: &ServeArgs) -> anyhow::Result<TlsMaterial> {
    let mut material = TlsMaterial::from_pki(TestPki::default_shared());
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            material.chain = mailsim_io::tls::load_pem_chain(cert)?;
            material.key = mailsim_io::tls::load_pem_key(key)?;
        }
        (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key (the certificate's private key)"),
        (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert (the certificate chain it belongs to)"),
        (None, None) => {}
    }
    if let Some(ca) = &args.tls_client_ca {
        material.client_roots = mailsim_io::tls::load_pem_chain(ca)?;
    }
    Ok(material)
}

/// Serves the tenant endpoint alone.
async fn serve_tenant(args: ServeArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (tenant, zones) = tenant_and_dns(&args)?;
    let tls = if args.no_tls {
        anyhow::ensure!(
            args.tls_cert.is_none() && args.tls_key.is_none() && args.tls_client_ca.is_none(),
            "--no-tls: no STARTTLS is offered, so --tls-cert, --tls-key and --tls-client-ca do not apply"
        );
        None
    } else {
        Some(tls_material(&args)?)
    };
    // The world's DNS for a tenant alone: the tenant file's [dns] or --dns-zone, on --dns (or a
    // free port on 127.0.0.1 when only records are given).
    let dns = match (args.dns, zones.zone_names().is_empty()) {
        (None, true) => None,
        (bind, _) => {
            let addr = bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            anyhow::ensure!(addr.ip().is_loopback(), "--dns {addr}: the DNS server binds loopback addresses only");
            Some(
                ScriptedDns::start_on(addr, zones)
                    .await
                    .with_context(|| format!("starting the DNS server on {addr}{}", crate::live::bind_hint(addr)))?,
            )
        }
    };
    let outbound = args.outbound_address.unwrap_or_else(|| DEFAULT_OUTBOUND.parse().expect("valid"));
    anyhow::ensure!(
        outbound.is_loopback(),
        "--outbound-address {outbound}: the tenant sends from loopback addresses only"
    );
    let mut options = EndpointOptions::new(tenant);
    options.tls = tls;
    options.state_dir = args.state_dir.clone();
    options.max_connections = args.max_connections;
    options.timeouts = Timeouts { idle: Duration::from_secs(args.idle_timeout), ..Timeouts::default() };
    options.outbound_source = outbound;
    options.dns = dns.as_ref().map(ScriptedDns::addr);
    if args.authentication {
        anyhow::ensure!(
            dns.is_some(),
            "--authentication: SPF, DKIM and DMARC are judged against the world's DNS, and this world has none (give [dns] records in the tenant file, --dns-zone FILE or --dns ADDR)"
        );
        options.authentication = Some(mailsim_core::auth::AuthConfig::default());
    }
    if let Some(ca) = &args.tls_trust_ca {
        options.server_roots = crate::live::trust_roots(ca)?;
    }
    let domains: Vec<String> =
        options.tenant.accepted_domains.iter().map(|d| format!("{} ({:?})", d.name, d.domain_type)).collect();
    let listen = args.listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid"));
    let endpoint = std::sync::Arc::new(RunningEndpoint::bind(listen, options).await?);
    println!("mailsim tenant endpoint listening on {}", endpoint.addr());
    println!("outbound connections from {outbound}");
    match &dns {
        Some(dns) => println!("DNS: {} (UDP and TCP), records: {}", dns.addr(), dns.zones().zone_names().join(", ")),
        None => println!("DNS: none (give [dns] records in the tenant file or --dns-zone FILE for MX delivery)"),
    }
    println!("accepted domains: {}", if domains.is_empty() { "(none)".to_string() } else { domains.join(", ") });
    if args.authentication {
        println!("email authentication: SPF, DKIM and DMARC judged on inbound mail, EXO's headers stamped");
    }
    match &args.state_dir {
        Some(dir) => println!(
            "state: {dir}/trace.jsonl, {dir}/mailboxes/, {dir}/protocol/RECV*.log and SEND*.log",
            dir = dir.display()
        ),
        None => println!("state: in memory (give --state-dir DIR to keep the trace, mailboxes and protocol log)"),
    }
    let source = args.tenant.as_ref().map_or_else(|| "flags".to_string(), |p| p.display().to_string());
    let reload: Option<crate::api::Reload> = args.tenant.as_ref().map(|_| {
        let (args, source) = (args.clone(), source.clone());
        std::sync::Arc::new(move || {
            tenant_from(&args)
                .map(|t| (t, source.clone()))
                .map_err(|e| crate::api::ReloadError::Other(format!("{e:#}")))
        }) as crate::api::Reload
    });
    let live = super::serve_http::start_tenant(&args.http, endpoint.clone(), source, reload).await?;
    if let Some(line) = resumed_text(&endpoint) {
        println!("{line}");
    }
    shutdown.await;
    println!("stopping");
    live.stop().await;
    let left = stop_text(&endpoint);
    match std::sync::Arc::try_unwrap(endpoint) {
        Ok(endpoint) => endpoint.stop().await,
        Err(endpoint) => endpoint.protocol_log().flush(),
    }
    println!("{left}");
    if let Some(dns) = dns {
        dns.stop().await;
    }
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
