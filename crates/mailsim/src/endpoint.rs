//! A running tenant endpoint, for the CLI and for Rust tests: bind (or take) a loopback listener,
//! serve the tenant on it, read the mailboxes, stop on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mailsim_core::address_plan::AddressPlan;
use mailsim_core::stage::outcome::RetryPolicy;
use mailsim_core::tenant::Tenant;
use mailsim_io::clock::SimClock;
use mailsim_io::dns::Resolver;
use mailsim_io::outbound::OutboundConfig;
use mailsim_io::pipeline::Pipeline;
use mailsim_io::protocol_log::ProtocolLog;
use mailsim_io::shared::Shared;
use mailsim_io::smtp_conn::{Endpoint, EndpointTls, Timeouts};
use mailsim_io::store::MailStore;
use mailsim_io::tls;
use mailsim_io::trace_sink::TraceSink;
use mailsim_testkit::certs::TestPki;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Certificate material for STARTTLS.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Server chain (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
    /// Server key.
    pub key: PrivateKeyDer<'static>,
    /// CAs a client certificate must chain to, to count as trusted.
    pub client_roots: Vec<CertificateDer<'static>>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key(), client_roots: self.client_roots.clone() }
    }
}

impl TlsMaterial {
    /// The tenant certificate of a test PKI, trusting that PKI's CA for client certificates.
    pub fn from_pki(pki: &TestPki) -> Self {
        Self { chain: pki.tenant.chain(), key: pki.tenant.key(), client_roots: vec![pki.ca.cert_der().clone()] }
    }

    /// PEM files: a chain, its key and a CA bundle for client certificates.
    pub fn from_files(chain: &Path, key: &Path, client_ca: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            chain: tls::load_pem_chain(chain)?,
            key: tls::load_pem_key(key)?,
            client_roots: tls::load_pem_chain(client_ca)?,
        })
    }
}

/// How to run an endpoint.
pub struct EndpointOptions {
    /// The tenant.
    pub tenant: Tenant,
    /// Address plan.
    pub plan: AddressPlan,
    /// STARTTLS material, or none to not offer STARTTLS.
    pub tls: Option<TlsMaterial>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Connection cap.
    pub max_connections: usize,
    /// Write delivered messages, the trace and the protocol log (`protocol/`) under this directory too.
    pub state_dir: Option<PathBuf>,
    /// The simulated world's DNS server; without one every outbound lookup defers (4.4.312).
    pub dns: Option<SocketAddr>,
    /// DNS timeout.
    pub dns_timeout: std::time::Duration,
    /// The tenant's source address for outbound connections.
    pub outbound_source: std::net::IpAddr,
    /// CAs the outbound stage trusts for server certificates (CertificateValidation).
    pub server_roots: Vec<CertificateDer<'static>>,
    /// Retry schedule, expiry and hop limit.
    pub retry: RetryPolicy,
    /// Per-step timeout of outbound conversations.
    pub outbound_timeout: std::time::Duration,
    /// The simulated clock (shared with the caller to advance time).
    pub clock: Arc<SimClock>,
    /// The port the simulated world's SMTP hosts listen on (MX delivery, smart hosts without a
    /// port).
    pub smtp_port: u16,
    /// Evaluate SPF, DKIM and DMARC on inbound mail and stamp EXO's authentication headers
    /// (exo-behaviour §14), through `dns`; `None`: off (no authentication stamps).
    pub authentication: Option<mailsim_core::auth::AuthConfig>,
}

impl EndpointOptions {
    /// A tenant with defaults: STARTTLS from the shared test PKI, default timeouts.
    pub fn new(tenant: Tenant) -> Self {
        Self {
            tenant,
            plan: AddressPlan::new(),
            tls: Some(TlsMaterial::from_pki(TestPki::default_shared())),
            timeouts: Timeouts::default(),
            max_connections: mailsim_io::listener::DEFAULT_MAX_CONNECTIONS,
            state_dir: None,
            dns: None,
            dns_timeout: std::time::Duration::from_secs(2),
            outbound_source: "127.0.0.1".parse().expect("valid"),
            server_roots: vec![TestPki::default_shared().ca.cert_der().clone()],
            retry: RetryPolicy::default(),
            outbound_timeout: std::time::Duration::from_secs(30),
            clock: Arc::new(SimClock::new()),
            smtp_port: 25,
            authentication: None,
        }
    }
}

/// A tenant endpoint serving on a loopback address. Stops when dropped.
pub struct RunningEndpoint {
    addr: SocketAddr,
    pipeline: Arc<Pipeline>,
    tenant: Arc<Shared<Tenant>>,
    plan: Arc<Shared<AddressPlan>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    queue: tokio::task::JoinHandle<()>,
    protocol_log: Arc<ProtocolLog>,
    resumed: Option<Resumed>,
    auth: Option<Arc<mailsim_io::auth::Authenticator>>,
}

/// What an endpoint started on a state directory took back from the durable queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Messages with unfinished recipients.
    pub messages: usize,
    /// Their unfinished recipients, queued again.
    pub recipients: usize,
    /// Recipients the journal had unfinished but the trace showed done.
    pub reconciled: usize,
    /// Bytes at the journal's end that were not a whole record (a write cut short by a kill; never
    /// acknowledged).
    pub torn_bytes: u64,
}

impl RunningEndpoint {
    /// Binds `addr` (must be loopback; port 0 picks a free one) and serves.
    pub async fn bind(addr: SocketAddr, options: EndpointOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(addr.ip().is_loopback(), "mailsim listens on loopback addresses only, not {}", addr.ip());
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        Self::serve(listener, options)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: TcpListener, options: EndpointOptions) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let server_name = options.tenant.settings.server_name.clone();
        let tenant = Arc::new(Shared::new(options.tenant));
        let (store, trace) = match &options.state_dir {
            Some(dir) => (MailStore::with_dir(dir.clone()), TraceSink::with_dir(dir.clone())?),
            None => (MailStore::in_memory(), TraceSink::in_memory()),
        };
        let resolver = match options.dns {
            Some(ns) => Some(Arc::new(Resolver::new(ns, options.dns_timeout).map_err(|e| anyhow::anyhow!("{e}"))?)),
            None => None,
        };
        // One evaluator (and answer cache) per world, resolving through the world's DNS only.
        let auth = match (&options.authentication, &resolver) {
            (Some(config), Some(resolver)) => {
                let tenant_ips = options.plan.entries().iter().filter(|e| e.name == "tenant").map(|e| e.declared);
                Some(Arc::new(mailsim_io::auth::Authenticator::new(
                    (**resolver).clone(),
                    tenant_ips.collect(),
                    config.clone(),
                )))
            }
            _ => None,
        };
        let plan = Arc::new(Shared::new(options.plan));
        let protocol_log = Arc::new(match &options.state_dir {
            Some(dir) => ProtocolLog::with_dir(dir.join("protocol"), options.clock.clone()),
            None => ProtocolLog::disabled(options.clock.clone()),
        });
        // EXO presents its own certificate when it sends (exo-behaviour §9.1: on-premises servers
        // check it); the tenant presents the certificate it serves STARTTLS with.
        let client_tls = match &options.tls {
            Some(m) => Some(mailsim_io::client::client_config(None, Some((m.chain.clone(), m.key.clone_key())))?),
            None => None,
        };
        let outbound = Arc::new(OutboundConfig {
            client_tls,
            plan: plan.clone(),
            resolver,
            server_trust: tls::ServerTrust::new(options.server_roots)?,
            clock: options.clock.clone(),
            source_ip: options.outbound_source,
            ehlo: server_name.clone(),
            timeout: options.outbound_timeout,
            server_name,
            smtp_port: options.smtp_port,
            protocol_log: protocol_log.clone(),
        });
        let ids = match &options.state_dir {
            Some(dir) => mailsim_io::ids::persistent(dir, options.clock.now())
                .with_context(|| format!("reading the id epoch under {}", dir.display()))?,
            None => mailsim_io::ids::ephemeral(options.clock.now()),
        };
        // The durable queue (mailsim_io::spool): with a state directory, every accepted message is
        // on disk before its 250, and what a previous run left unfinished is taken back.
        let spool = match &options.state_dir {
            Some(dir) => Some(
                mailsim_io::spool::Spool::open(&dir.join("spool"), Some(&dir.join("trace.jsonl")))
                    .with_context(|| format!("opening the durable queue in {}", dir.join("spool").display()))?,
            ),
            None => None,
        };
        let clock = options.clock.clone();
        let mut pipeline =
            Pipeline::new(tenant.clone(), Arc::new(store), Arc::new(trace), options.clock, outbound, options.retry)
                .with_ids(Arc::new(ids));
        let mut recovered = None;
        if let Some((spool, recovery)) = spool {
            pipeline = pipeline.with_spool(Arc::new(spool));
            recovered = Some(recovery);
        }
        let pipeline = Arc::new(pipeline);
        let resumed = recovered.map(|recovery| {
            // Simulated time does not run backwards across a restart: retry times and expiry stay
            // where the last run put them.
            if let Some(latest) = recovery.latest {
                let now = clock.now();
                if latest > now {
                    clock.advance(latest - now);
                }
            }
            let resumed = Resumed {
                messages: recovery.messages.len(),
                recipients: recovery.recipients(),
                reconciled: recovery.reconciled,
                torn_bytes: recovery.torn_bytes,
            };
            pipeline.resume(recovery.messages);
            resumed
        });
        let queue = tokio::spawn(pipeline.clone().run_queue());
        let tls = match options.tls {
            Some(m) => Some(EndpointTls {
                leaf: m.chain.first().cloned(),
                config: tls::server_config(m.chain, m.key, m.client_roots.clone())?,
                trust: tls::ClientTrust::new(m.client_roots)?,
            }),
            None => None,
        };
        let endpoint = Arc::new(Endpoint {
            tenant: tenant.clone(),
            plan: plan.clone(),
            tls,
            pipeline: pipeline.clone(),
            timeouts: options.timeouts,
            protocol_log: protocol_log.clone(),
            auth: auth.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mailsim_io::listener::serve(listener, endpoint, options.max_connections, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            pipeline,
            tenant,
            plan,
            stop: Some(stop),
            task: Some(task),
            queue,
            protocol_log,
            resumed,
            auth,
        })
    }

    /// The world's authentication evaluator, when authentication is on.
    pub fn authenticator(&self) -> Option<&Arc<mailsim_io::auth::Authenticator>> {
        self.auth.as_ref()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pipeline: mailboxes, relay queue, refusals.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The mailbox store.
    pub fn store(&self) -> &Arc<MailStore> {
        self.pipeline.store()
    }

    /// The tenant as configured now.
    pub fn tenant(&self) -> Arc<Tenant> {
        self.tenant.get()
    }

    /// Replaces the tenant configuration; sessions already open keep the old one.
    pub fn set_tenant(&self, tenant: impl Into<Arc<Tenant>>) {
        self.tenant.set(tenant);
    }

    /// The address plan as configured now.
    pub fn plan(&self) -> Arc<AddressPlan> {
        self.plan.get()
    }

    /// Replaces the address plan (a host moved).
    pub fn set_plan(&self, plan: AddressPlan) {
        self.plan.set(plan);
    }

    /// What was taken back from the durable queue at start (`None` without a state directory).
    pub fn resumed(&self) -> Option<&Resumed> {
        self.resumed.as_ref()
    }

    /// The protocol log (RECV and SEND).
    pub fn protocol_log(&self) -> &Arc<ProtocolLog> {
        &self.protocol_log
    }

    /// The message trace.
    pub fn trace(&self) -> &Arc<TraceSink> {
        self.pipeline.trace()
    }

    /// Moves simulated time forward (the queue retries and expires accordingly) and waits until
    /// the pipeline has acted on it.
    pub async fn advance(&self, by: std::time::Duration) {
        self.pipeline.clock().advance(by);
        self.settled().await;
    }

    /// Waits (at most 30 s) until no attempt is running and nothing queued is due.
    pub async fn settled(&self) -> bool {
        self.pipeline.settled(std::time::Duration::from_secs(30)).await
    }

    /// Stops accepting, tells open sessions 421, and waits for them.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.queue.abort();
        self.protocol_log.flush();
        if let Some(spool) = self.pipeline.spool() {
            spool.close().await;
        }
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        self.queue.abort();
        if let Some(spool) = self.pipeline.spool() {
            spool.close_now();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
