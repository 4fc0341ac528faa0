//! `mailsim serve`'s HTTP API flags and start-up: where the API listens (`--http`, `--no-http`,
//! `MAILSIM_HTTP`), `--play` (play the scenario's own steps once the world is up), and `SIGHUP`
//! (re-read the tenant, as `POST /api/v1/tenant/reload`). The API itself is [`crate::api`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::api::{Api, DEFAULT_HTTP, Reload, ReloadError, RunningApi, ScenarioDoc, World};
use crate::endpoint::RunningEndpoint;
use crate::sim::Simulation;

/// The routes, for `mailsim serve --help`.
pub const HTTP_HELP: &str = "\
HTTP API (JSON; loopback only; a Host or Origin that is not loopback is refused; errors are
RFC 9457 application/problem+json):
  GET    /livez, /readyz
  GET    /api/v1/world                       address plan, tenant endpoint, DNS server, simulated time, tenant source
  GET    /api/v1/messages                    mailboxes and peers' inboxes, newest first
                                             ?where=ADDRESS|HOST|mailbox|peer &q= &sender= &recipient= &subject= &start= &limit=
  GET    /api/v1/messages/ID[/raw]           one message: summary and headers; raw source
  DELETE /api/v1/messages/ID
  GET    /api/v1/trace                       rows as `mailsim trace`: ?sender= &recipient= &status= &message_id= &start= &limit=
  GET    /api/v1/trace/MESSAGE-ID            one message's events (Message-ID or 16-hex internal id)
  GET    /api/v1/queue                       deferred recipients, next attempt, last error
  POST   /api/v1/queue/retry                 retry now: {} or {\"message_id\": \"...\"}
  POST   /api/v1/clock/advance               {\"by\": \"25h\"}: as a scenario's advance step
  GET    /api/v1/tenant
  PUT    /api/v1/tenant                      a tenant file as the body (TOML); 422 with file:line:col if invalid
  POST   /api/v1/tenant/reload               re-read the tenant from disk (SIGHUP does the same)
  POST   /api/v1/steps                       [[step]] tables (send, expect, change, advance) played in order
  PUT    /api/v1/dns/NAME/fault              {\"fault\": \"NXDOMAIN\"|\"SERVFAIL\"|\"silence\"|\"REFUSED\"}; DELETE clears
  POST   /api/v1/connectors/NAME/validate    Validate-OutboundConnector: {} or {\"recipients\": [...]} (`mailsim validate-outbound --api`)
Example: curl -s 127.0.0.1:8025/api/v1/trace?status=Pending";

/// The HTTP API's flags.
#[derive(clap::Args, Debug, Clone)]
#[command(after_long_help = HTTP_HELP)]
pub struct HttpArgs {
    /// Address of the HTTP API (loopback only): JSON views of the world (address plan, messages,
    /// trace, queue) and live control (tenant, clock, steps, DNS faults). See README, "The HTTP
    /// API", e.g. `curl 127.0.0.1:8025/api/v1/world`.
    #[arg(long = "http", value_name = "ADDR", env = "MAILSIM_HTTP", default_value = DEFAULT_HTTP)]
    pub http: SocketAddr,
    /// Do not serve the HTTP API.
    #[arg(long = "no-http", env = "MAILSIM_NO_HTTP")]
    pub no_http: bool,
    /// With a scenario: play its steps once the world is up (each step's result is printed), then
    /// keep the world running.
    #[arg(long, env = "MAILSIM_PLAY", requires = "scenario")]
    pub play: bool,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self { http: DEFAULT_HTTP.parse().expect("valid"), no_http: false, play: false }
    }
}

/// The API of a running `serve`, and its SIGHUP watcher.
pub struct LiveApi {
    api: Arc<Api>,
    server: Option<RunningApi>,
    hup: Option<tokio::task::JoinHandle<()>>,
}

impl LiveApi {
    /// Where the API listens, if it does.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(RunningApi::addr)
    }

    /// Stops the API and the SIGHUP watcher (the world keeps running until its owner stops it).
    pub async fn stop(mut self) {
        if let Some(hup) = self.hup.take() {
            hup.abort();
            // Its reference to the world goes only once the task is gone.
            let _ = hup.await;
        }
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        drop(self.api);
    }
}

async fn start(api: Arc<Api>, args: &HttpArgs) -> anyhow::Result<LiveApi> {
    let server = if args.no_http {
        None
    } else {
        let server = api.serve(args.http).await?;
        println!(
            "web page and HTTP API on http://{}/ (open it in a browser; GET /api/v1/world; see `mailsim serve --help`)",
            server.addr()
        );
        Some(server)
    };
    let hup = watch_hup(api.clone());
    Ok(LiveApi { api, server, hup })
}

#[cfg(unix)]
fn watch_hup(api: Arc<Api>) -> Option<tokio::task::JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()?;
    Some(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match api.reload_tenant() {
                Ok(source) => println!("SIGHUP: tenant re-read from {source} and applied to new sessions"),
                Err(p) => eprintln!("mailsim: SIGHUP: tenant not changed: {}", p.detail),
            }
        }
    }))
}

#[cfg(not(unix))]
fn watch_hup(_: Arc<Api>) -> Option<tokio::task::JoinHandle<()>> {
    None
}

/// The API over a scenario's world; plays its steps first with `--play`.
pub async fn start_scenario(args: &HttpArgs, path: &Path, sim: Arc<Simulation>) -> anyhow::Result<LiveApi> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PathBuf = path.to_path_buf();
    let reload: Reload = Arc::new(move || {
        let scenario = crate::scenario::load_file(&file).map_err(ReloadError::Invalid)?;
        Ok((scenario.world.tenant, file.display().to_string()))
    });
    let doc = ScenarioDoc { path: path.to_path_buf(), text };
    let api = Api::new(World::Scenario(sim), path.display().to_string(), Some(reload), Some(doc));
    let live = start(api.clone(), args).await?;
    if args.play {
        let scenario = crate::scenario::load_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("playing {} step(s) of {}", scenario.steps.len(), path.display());
        match api.play(scenario.steps, None).await {
            Ok(results) => {
                for r in &results {
                    let verdict = if r.passed { "ok" } else { "FAILED" };
                    println!("  {} {} {verdict}", r.step, r.action);
                    if let Some(f) = &r.failure {
                        println!("    {}", serde_json::to_string(f).unwrap_or_default());
                    }
                }
                println!("played; the world keeps running");
            }
            Err(p) => eprintln!("mailsim: --play: {}", p.detail),
        }
    }
    Ok(live)
}

/// The API over the tenant endpoint alone; `reload` re-reads `--tenant` with the flags.
pub async fn start_tenant(
    args: &HttpArgs,
    endpoint: Arc<RunningEndpoint>,
    source: String,
    reload: Option<Reload>,
) -> anyhow::Result<LiveApi> {
    start(Api::new(World::Tenant(endpoint), source, reload, None), args).await
}
