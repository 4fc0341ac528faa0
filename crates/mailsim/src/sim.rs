//! `Simulation`: a whole simulated world on loopback, the one API behind both front ends (Rust tests
//! and scenario files). The tenant endpoint, the scripted DNS server and every host (gateway,
//! partner, on-premises server, internet sender) get loopback addresses of their own, so worlds run
//! side by side; the address plan maps each host's declared address (what connectors and DNS say)
//! to its loopback address.
//!
//! Errors are [`SimError`]: what went wrong, with the underlying error as its source.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mailsim::sim::{HostSpec, SendSpec, Simulation, WorldSpec};
//! use mailsim_core::tenant::{DomainType, Tenant};
//! let tenant = Tenant::builder()
//!     .with_domain("contoso.test", DomainType::Authoritative)
//!     .with_mailbox("alice@contoso.test")
//!     .build()?;
//! let mut world = WorldSpec::new(tenant);
//! world.hosts.push(HostSpec::new("internet", "203.0.113.99"));
//! let sim = Simulation::start(world).await?;
//! let sent = sim.send(&SendSpec::new("internet", "a@fabrikam.test", &["alice@contoso.test"])).await?;
//! assert_eq!(sent.final_reply.code, 250);
//! assert_eq!(sim.mailbox("alice@contoso.test").len(), 1);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailsim_core::address_plan::{AddressPlan, PlanError};
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::stage::outcome::RetryPolicy;
use mailsim_core::tenant::Tenant;
use mailsim_core::trace::TraceEvent;
use mailsim_testkit::certs::{CertError, LeafCert, LeafSpec, TestPki};
use mailsim_testkit::dkim::{DkimError, DkimIdentity, DkimKeyring, DkimSigning};
use mailsim_testkit::dns::{DnsZoneSet, ScriptedDns};
use mailsim_testkit::hosts::allocate_loopback;
use mailsim_testkit::peer::{AddressBook, PeerScript, ReceivedMessage, RelayHop, RelayOptions, ScriptedPeer};
use mailsim_testkit::sender::{ClientIdentity, RawReply, ScriptedSender, SenderError, TlsOptions};
use rustls_pki_types::CertificateDer;

use crate::endpoint::{EndpointOptions, RunningEndpoint, TlsMaterial};

/// Why a world could not be brought up, changed or sent into. The message says what was being
/// done; the source, when there is one, says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A socket of the world could not be bound or set up.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A declared address does not fit the address plan.
    #[error("{what}")]
    Plan {
        /// The host whose address was being added.
        what: String,
        /// The plan's objection.
        #[source]
        source: PlanError,
    },
    /// Two hosts have the same name.
    #[error("host {0:?} is declared twice")]
    DuplicateHost(String),
    /// No host of that name.
    #[error("no host named {0:?}")]
    NoHost(String),
    /// A send names a host that does not exist.
    #[error("no host named {0:?} to send from")]
    NoSendingHost(String),
    /// The host has no receiving peer.
    #[error("host {0:?} receives no mail (it has no peer)")]
    NoPeer(String),
    /// The test PKI has no leaf of that name.
    #[error("no test certificate named {name:?} (known: {known})")]
    UnknownCert {
        /// The name asked for.
        name: String,
        /// The names the test PKI has, comma-separated.
        known: String,
    },
    /// A certificate could not be minted.
    #[error("minting {common_name}")]
    Cert {
        /// Its subject CN.
        common_name: String,
        /// Why.
        #[source]
        source: CertError,
    },
    /// The tenant endpoint could not be started.
    #[error("starting the tenant endpoint")]
    Endpoint(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A host's DKIM signing identity could not be given a key, or a message not be signed.
    #[error("DKIM signing for host {host:?}")]
    Dkim {
        /// The host.
        host: String,
        /// Why.
        #[source]
        source: DkimError,
    },
    /// The SMTP conversation of a send failed below SMTP (connection, TLS, timeout).
    #[error("sending from host {host:?}")]
    Send {
        /// The sending host.
        host: String,
        /// The sender's error.
        #[source]
        source: SenderError,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SimError {
    let what = what.into();
    move |source| SimError::Io { what, source }
}

fn plan_err(what: impl Into<String>) -> impl FnOnce(PlanError) -> SimError {
    let what = what.into();
    move |source| SimError::Plan { what, source }
}

/// Which client certificate a host presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertChoice {
    /// One of the test PKI's leaves by name: `gateway`, `partner`, `wrong-subject`, `expired`,
    /// `untrusted`, `wildcard`, `san-only`, `tenant`.
    Pki(String),
    /// A certificate minted for this world: CN, DNS SANs, and whether it is expired or issued by
    /// the untrusted CA.
    Minted {
        /// Subject CN.
        common_name: String,
        /// DNS SANs.
        dns_sans: Vec<String>,
        /// Outside its validity period.
        expired: bool,
        /// Issued by the CA nobody trusts.
        untrusted: bool,
    },
}

impl CertChoice {
    /// The certificate, from the shared test PKI (minted ones are issued now).
    pub fn leaf(&self) -> Result<LeafCert, SimError> {
        let pki = TestPki::default_shared();
        match self {
            CertChoice::Pki(name) => pki
                .leaves()
                .into_iter()
                .find(|(n, _)| {
                    n.eq_ignore_ascii_case(name) || n.replace('-', "_").eq_ignore_ascii_case(&name.replace('-', "_"))
                })
                .map(|(_, leaf)| leaf.clone())
                .ok_or_else(|| {
                    let names: Vec<&str> = pki.leaves().iter().map(|(n, _)| *n).collect();
                    SimError::UnknownCert { name: name.clone(), known: names.join(", ") }
                }),
            CertChoice::Minted { common_name, dns_sans, expired, untrusted } => {
                let mut spec = LeafSpec::both(common_name.clone());
                for san in dns_sans {
                    spec = spec.dns(san.clone());
                }
                if *expired {
                    spec = spec.validity(mailsim_testkit::certs::Validity::Expired);
                }
                let ca = if *untrusted { &pki.rogue_ca } else { &pki.ca };
                ca.try_issue(&spec).map_err(|source| SimError::Cert { common_name: common_name.clone(), source })
            }
        }
    }
}

/// One simulated host.
#[derive(Clone, Debug)]
pub struct HostSpec {
    /// Role name (`gateway`, `partner`, `internet`, ...).
    pub name: String,
    /// The address connectors and DNS know it by.
    pub declared: IpAddr,
    /// The client certificate it presents when it sends with STARTTLS.
    pub cert: Option<CertChoice>,
    /// When set, the host also receives mail: a scripted peer on its address.
    pub peer: Option<PeerScript>,
    /// The peer relays what it receives to the tenant (a gateway in front of the tenant).
    pub relays_to_tenant: bool,
    /// The loopback address it binds: pinned in the scenario (`loopback = "127.0.0.10"`) or
    /// planned by the loader (stable across runs); `None` takes a fresh one.
    pub loopback: Option<IpAddr>,
    /// It DKIM-signs what it sends and relays (`d=`, `s=`); the world gives it a key and publishes
    /// `selector._domainkey.domain` (exo-behaviour §14.1).
    pub dkim: Option<DkimIdentity>,
    /// When it relays, the internal hops (receiving node, load balancer) whose `Received:` lines
    /// come before its own, in the order a message passes them (exo-behaviour §14.2).
    pub relay_hops: Vec<RelayHop>,
}

impl HostSpec {
    /// A sending-only host.
    pub fn new(name: &str, declared: &str) -> Self {
        Self {
            name: name.to_string(),
            declared: declared.parse().expect("a literal IP address"),
            cert: None,
            peer: None,
            relays_to_tenant: false,
            loopback: None,
            dkim: None,
            relay_hops: Vec::new(),
        }
    }
}

/// The tenant's declared outbound address unless a scenario names one
/// (`[scenario] tenant_outbound_address`).
pub const DEFAULT_TENANT_OUTBOUND: &str = "192.0.2.101";

/// One row of a running world's address plan (printed by `serve`, served by the API).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanRow {
    /// `tenant`, `tenant-out`, `dns` or a host's name.
    pub name: String,
    /// The address configurations and DNS use.
    pub declared: IpAddr,
    /// The loopback address it binds.
    pub loopback: IpAddr,
    /// The port it listens on (`None` for `tenant-out`, which only connects).
    pub port: Option<u16>,
    /// What it is.
    pub role: PlanRole,
}

/// What a plan row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanRole {
    /// The tenant endpoint (SMTP, STARTTLS).
    Tenant,
    /// The tenant's outbound source address.
    TenantOutbound,
    /// The world's DNS server (UDP and TCP).
    Dns,
    /// A host with a scripted peer: receives mail on its socket.
    Peer,
    /// A host that only sends (a real MTA may take its place).
    Sender,
}

/// A message a scripted peer received, as [`Simulation::peer_message`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMessage {
    /// The peer's id for it (1, 2, ...).
    pub id: u64,
    /// The content as received.
    pub data: Vec<u8>,
    /// Envelope, TLS and client facts, while the message is still in memory.
    pub received: Option<ReceivedMessage>,
}

/// Everything a world is made of.
#[derive(Clone, Debug)]
pub struct WorldSpec {
    /// The tenant.
    pub tenant: Tenant,
    /// The tenant endpoint's declared address (what MX records for the tenant's domains point at).
    pub tenant_declared: IpAddr,
    /// Hosts.
    pub hosts: Vec<HostSpec>,
    /// DNS zones.
    pub dns: DnsZoneSet,
    /// Retry schedule, expiry, hop limit.
    pub retry: RetryPolicy,
    /// Write mailboxes and the trace here.
    pub state_dir: Option<PathBuf>,
    /// Bind the tenant here instead of a fresh loopback address and port (live rehearsal).
    pub tenant_bind: Option<SocketAddr>,
    /// Per-step timeout of the tenant's outbound conversations (10 s by default).
    pub outbound_timeout: Duration,
    /// The tenant listener's loopback address (stable across runs when the loader plans it);
    /// `None` takes a fresh one. `tenant_bind` wins over it.
    pub tenant_loopback: Option<IpAddr>,
    /// The declared address the tenant sends from (what partners' connectors and logs see).
    pub tenant_outbound_declared: IpAddr,
    /// The loopback address outbound connections bind (issue 9 item 6); `None` takes a fresh one.
    pub tenant_outbound_loopback: Option<IpAddr>,
    /// The DNS server's loopback address (port: a free one); `None` takes a fresh one.
    pub dns_loopback: Option<IpAddr>,
    /// Bind the DNS server exactly here (`serve --dns 127.0.0.53:53`); wins over `dns_loopback`.
    pub dns_bind: Option<SocketAddr>,
    /// The tenant's STARTTLS certificate and the CAs client certificates are judged against;
    /// `None`: the shared test PKI.
    pub tls: Option<TlsMaterial>,
    /// Roots the outbound side trusts for `CertificateValidation`/`DomainValidation`
    /// (`--tls-trust-ca`); `None`: the test PKI's CA.
    pub server_roots: Option<Vec<CertificateDer<'static>>>,
    /// Offer STARTTLS (`serve --no-tls` turns it off).
    pub starttls: bool,
    /// Concurrent connections before `421 4.3.2` (`None`: the endpoint's default).
    pub max_connections: Option<usize>,
    /// Idle time before `451 4.7.0` (`None`: the endpoint's default).
    pub idle_timeout: Option<Duration>,
    /// Messages each scripted peer keeps in memory (oldest dropped first, counted); with a state
    /// directory every message is also written to `peers/<host>/<id>.eml`.
    pub peer_inbox_cap: usize,
    /// Email authentication (exo-behaviour §14, issue 11): SPF, DKIM and DMARC evaluated on
    /// inbound mail against the world's DNS, with EXO's stamps; `None`: off.
    pub authentication: Option<mailsim_core::auth::AuthConfig>,
}

impl WorldSpec {
    /// A world with just this tenant.
    pub fn new(tenant: Tenant) -> Self {
        Self {
            tenant,
            tenant_declared: "192.0.2.100".parse().expect("valid"),
            hosts: Vec::new(),
            dns: DnsZoneSet::new(),
            retry: RetryPolicy::default(),
            state_dir: None,
            tenant_bind: None,
            outbound_timeout: Duration::from_secs(10),
            tenant_loopback: None,
            tenant_outbound_declared: DEFAULT_TENANT_OUTBOUND.parse().expect("valid"),
            tenant_outbound_loopback: None,
            dns_loopback: None,
            dns_bind: None,
            tls: None,
            server_roots: None,
            starttls: true,
            max_connections: None,
            idle_timeout: None,
            peer_inbox_cap: mailsim_testkit::peer::DEFAULT_INBOX_CAP,
            authentication: None,
        }
    }
}

/// How a `send` step uses TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsUse {
    /// Plaintext.
    #[default]
    None,
    /// STARTTLS, presenting the host's certificate (if it has one).
    StartTls,
}

/// One message to send into the tenant.
#[derive(Clone, Debug)]
pub struct SendSpec {
    /// The sending host's name.
    pub from_host: String,
    /// EHLO name; the host's name plus `.test` by default.
    pub ehlo: Option<String>,
    /// TLS.
    pub tls: TlsUse,
    /// Certificate to present instead of the host's (`Some(None)`: present none).
    pub cert: Option<Option<CertChoice>>,
    /// MAIL FROM (empty for `<>`).
    pub mail_from: String,
    /// RCPT TO.
    pub rcpt_to: Vec<String>,
    /// Extra header lines.
    pub headers: Vec<(String, String)>,
    /// Subject.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// A complete message instead of headers, subject and body.
    pub data: Option<String>,
    /// Send to this host's scripted peer instead of the tenant (a partner sending to the gateway
    /// the tenant's MX points at, which relays it on).
    pub to_host: Option<String>,
    /// Sign with the host's DKIM identity, when it has one (`true` by default).
    pub dkim_sign: bool,
}

impl SendSpec {
    /// A plain message from `host`.
    pub fn new(host: &str, from: &str, to: &[&str]) -> Self {
        Self {
            from_host: host.to_string(),
            ehlo: None,
            tls: TlsUse::None,
            cert: None,
            mail_from: from.to_string(),
            rcpt_to: to.iter().map(|s| s.to_string()).collect(),
            headers: Vec::new(),
            subject: "mailsim".to_string(),
            body: "Hello from mailsim.".to_string(),
            data: None,
            to_host: None,
            dkim_sign: true,
        }
    }
}

/// What happened to a `send`.
#[derive(Clone, Debug)]
pub struct SendOutcome {
    /// The reply that decided the transaction: end of data, or the first refusal.
    pub final_reply: RawReply,
    /// The command the final reply answered: `CONNECT`, `EHLO`, `STARTTLS`, `MAIL`, `RCPT`,
    /// `DATA` or `END-OF-DATA`.
    pub stage: &'static str,
    /// RCPT replies, per recipient.
    pub rcpt_replies: Vec<RawReply>,
    /// The Message-ID sent.
    pub message_id: String,
    /// The SMTP transcript (`C:`/`S:` lines).
    pub transcript: Vec<String>,
}

impl SendOutcome {
    /// The message was accepted (250 at end of data).
    pub fn accepted(&self) -> bool {
        self.stage == "END-OF-DATA" && self.final_reply.code / 100 == 2
    }
}

struct Host {
    spec: HostSpec,
    loopback: IpAddr,
    dkim: Option<DkimSigning>,
}

/// A running world. Stops when dropped.
pub struct Simulation {
    endpoint: RunningEndpoint,
    dns: ScriptedDns,
    peers: BTreeMap<String, ScriptedPeer>,
    hosts: Mutex<Vec<Host>>,
    tenant_loopback: IpAddr,
    tenant_declared: IpAddr,
    outbound: (IpAddr, IpAddr),
    port: u16,
    sent: std::sync::atomic::AtomicU64,
    /// Declared address of each loopback address, for the Received lines relays write.
    addresses: AddressBook,
}

impl Simulation {
    /// The messages host `host`'s scripted peer received and still keeps in memory, oldest first,
    /// and how many older ones it dropped from memory (those are on disk under a state directory:
    /// [`Simulation::peer_message`] reads them).
    pub fn peer_messages(&self, host: &str) -> Result<(Vec<ReceivedMessage>, u64), SimError> {
        let peer = self.peer(host)?;
        Ok((peer.inbox(), peer.dropped()))
    }

    /// One message host `host`'s peer received, by its id: from memory (envelope and content), or
    /// from `peers/<host>/<id>.eml` under the state directory (content only). `Ok(None)`: no such
    /// message.
    pub fn peer_message(&self, host: &str, id: u64) -> Result<Option<PeerMessage>, SimError> {
        let peer = self.peer(host)?;
        if let Some(m) = peer.message(id) {
            return Ok(Some(PeerMessage { id, data: m.data.clone(), received: Some(m) }));
        }
        let data = peer.stored(id).map_err(io(format!("reading message {id} of host {host:?}")))?;
        Ok(data.map(|data| PeerMessage { id, data, received: None }))
    }

    /// Brings the world up: certificates, DNS, peers, tenant.
    pub async fn start(spec: WorldSpec) -> Result<Self, SimError> {
        let listener = match spec.tenant_bind {
            Some(addr) => {
                tokio::net::TcpListener::bind(addr).await.map_err(io(format!("binding the tenant on {addr}")))?
            }
            None => {
                let addr = SocketAddr::new(spec.tenant_loopback.unwrap_or_else(allocate_loopback), 0);
                tokio::net::TcpListener::bind(addr).await.map_err(io(format!("binding the tenant on {addr}")))?
            }
        };
        let tenant_addr = listener.local_addr().map_err(io("reading the tenant's address"))?;
        let (tenant_loopback, port) = (tenant_addr.ip(), tenant_addr.port());
        let outbound = (spec.tenant_outbound_declared, spec.tenant_outbound_loopback.unwrap_or_else(allocate_loopback));
        let mut plan = AddressPlan::new();
        plan.add("tenant", spec.tenant_declared, tenant_loopback).map_err(plan_err("the tenant's address"))?;
        plan.add("tenant-out", outbound.0, outbound.1).map_err(plan_err("the tenant's outbound address"))?;
        let mut hosts = Vec::new();
        let mut peers = BTreeMap::new();
        let addresses = AddressBook::new();
        addresses.set(outbound.1, outbound.0);
        addresses.set(tenant_loopback, spec.tenant_declared);
        let mut keyring = DkimKeyring::new();
        let mut dns_zones = spec.dns;
        for host in spec.hosts {
            if hosts.iter().any(|h: &Host| h.spec.name == host.name) {
                return Err(SimError::DuplicateHost(host.name));
            }
            let loopback = host.loopback.unwrap_or_else(allocate_loopback);
            plan.add(&host.name, host.declared, loopback).map_err(plan_err(format!("host {:?}", host.name)))?;
            addresses.set(loopback, host.declared);
            let dkim = crate::auth_world::host_signer(&mut keyring, &host, &mut dns_zones)?;
            if let Some(script) = &host.peer {
                let mut script = script.clone();
                if host.relays_to_tenant {
                    script.forward_to = Some(tenant_addr);
                    script.relay = Some(RelayOptions {
                        addresses: addresses.clone(),
                        hops: host.relay_hops.clone(),
                        dkim: dkim.clone(),
                    });
                }
                let inbox = mailsim_testkit::peer::InboxOptions {
                    dir: spec.state_dir.as_ref().map(|d| d.join("peers").join(&host.name)),
                    cap: spec.peer_inbox_cap,
                };
                let pki = TestPki::default_shared();
                let peer = ScriptedPeer::start_with_inbox(SocketAddr::new(loopback, port), script, pki, inbox)
                    .await
                    .map_err(io(format!("starting the peer of host {:?}", host.name)))?;
                peers.insert(host.name.clone(), peer);
            }
            hosts.push(Host { spec: host, loopback, dkim });
        }
        let dns_addr =
            spec.dns_bind.unwrap_or_else(|| SocketAddr::new(spec.dns_loopback.unwrap_or_else(allocate_loopback), 0));
        let dns = ScriptedDns::start_on(dns_addr, dns_zones)
            .await
            .map_err(io(format!("starting the DNS server on {dns_addr}{}", crate::live::bind_hint(dns_addr))))?;
        let mut options = EndpointOptions::new(spec.tenant);
        options.plan = plan;
        options.dns = Some(dns.addr());
        options.dns_timeout = Duration::from_millis(500);
        options.smtp_port = port;
        options.outbound_source = outbound.1;
        if let Some(tls) = spec.tls {
            options.tls = Some(tls);
        }
        if let Some(roots) = spec.server_roots {
            options.server_roots = roots;
        }
        if !spec.starttls {
            options.tls = None;
        }
        if let Some(max) = spec.max_connections {
            options.max_connections = max;
        }
        if let Some(idle) = spec.idle_timeout {
            options.timeouts.idle = idle;
        }
        options.outbound_timeout = spec.outbound_timeout;
        options.authentication = spec.authentication;
        options.retry = spec.retry;
        options.state_dir = spec.state_dir;
        let endpoint = RunningEndpoint::serve(listener, options).map_err(|e| SimError::Endpoint(e.into()))?;
        Ok(Self {
            endpoint,
            dns,
            peers,
            hosts: Mutex::new(hosts),
            tenant_loopback,
            tenant_declared: spec.tenant_declared,
            outbound,
            port,
            sent: std::sync::atomic::AtomicU64::new(0),
            addresses,
        })
    }

    /// Tells the world its DNS changed: authentication forgets the answers it cached.
    pub fn dns_changed(&self) {
        if let Some(auth) = self.endpoint.authenticator() {
            auth.clear_cache();
        }
    }

    /// The tenant endpoint.
    pub fn endpoint(&self) -> &RunningEndpoint {
        &self.endpoint
    }

    /// The tenant's socket address.
    pub fn tenant_addr(&self) -> SocketAddr {
        self.endpoint.addr()
    }

    /// The DNS server.
    pub fn dns(&self) -> &ScriptedDns {
        &self.dns
    }

    /// The DKIM signer of host `host`, if it declares a signing identity (`Ok(None)` if not).
    pub fn dkim_signer(&self, host: &str) -> Result<Option<DkimSigning>, SimError> {
        let hosts = self.hosts.lock().expect("hosts lock");
        let host = hosts.iter().find(|h| h.spec.name == host).ok_or_else(|| SimError::NoHost(host.to_string()))?;
        Ok(host.dkim.clone())
    }

    /// What host `host`'s peer adds when it relays to the tenant (its Received lines with declared
    /// addresses, its internal hops, its DKIM signature): for a script set later
    /// ([`ScriptedPeer::set_script`]) with `forward_to` the tenant.
    pub fn relay_options(&self, host: &str) -> Result<RelayOptions, SimError> {
        let hosts = self.hosts.lock().expect("hosts lock");
        let host = hosts.iter().find(|h| h.spec.name == host).ok_or_else(|| SimError::NoHost(host.to_string()))?;
        Ok(RelayOptions {
            addresses: self.addresses.clone(),
            hops: host.spec.relay_hops.clone(),
            dkim: host.dkim.clone(),
        })
    }

    /// A host's receiving peer.
    pub fn peer(&self, host: &str) -> Result<&ScriptedPeer, SimError> {
        self.peers.get(host).ok_or_else(|| SimError::NoPeer(host.to_string()))
    }

    /// The hosts that receive mail, with their peers, by name.
    pub fn peers(&self) -> impl Iterator<Item = (&str, &ScriptedPeer)> {
        self.peers.iter().map(|(name, peer)| (name.as_str(), peer))
    }

    /// A host's loopback address (where its sessions come from and its peer listens).
    pub fn host_loopback(&self, host: &str) -> Result<IpAddr, SimError> {
        let hosts = self.hosts.lock().expect("hosts lock");
        hosts.iter().find(|h| h.spec.name == host).map(|h| h.loopback).ok_or_else(|| SimError::NoHost(host.to_string()))
    }

    /// The address plan as a table: (host, declared, loopback socket). The tenant's outbound
    /// address is in [`Simulation::plan`], which also says each row's role.
    pub fn plan_table(&self) -> Vec<(String, IpAddr, SocketAddr)> {
        self.plan()
            .into_iter()
            .filter(|r| r.port.is_some())
            .map(|r| (r.name, r.declared, SocketAddr::new(r.loopback, r.port.unwrap_or_default())))
            .collect()
    }

    /// The address plan: the tenant, its outbound address, every host, the DNS server.
    pub fn plan(&self) -> Vec<PlanRow> {
        let row = |name: &str, declared, loopback, port, role| PlanRow {
            name: name.to_string(),
            declared,
            loopback,
            port,
            role,
        };
        let mut rows = vec![
            row("tenant", self.tenant_declared, self.tenant_loopback, Some(self.port), PlanRole::Tenant),
            row("tenant-out", self.outbound.0, self.outbound.1, None, PlanRole::TenantOutbound),
        ];
        for h in self.hosts.lock().expect("hosts lock").iter() {
            let role = if self.peers.contains_key(&h.spec.name) { PlanRole::Peer } else { PlanRole::Sender };
            rows.push(row(&h.spec.name, h.spec.declared, h.loopback, Some(self.port), role));
        }
        let dns = self.dns.addr();
        rows.push(row("dns", dns.ip(), dns.ip(), Some(dns.port()), PlanRole::Dns));
        rows
    }

    /// The tenant as configured now.
    pub fn tenant(&self) -> Arc<Tenant> {
        self.endpoint.tenant()
    }

    /// Replaces the tenant configuration (an admin saved a change, which builds a new tenant); new
    /// sessions use it, sessions already open keep the one they started with.
    pub fn set_tenant(&self, tenant: impl Into<Arc<Tenant>>) {
        self.endpoint.set_tenant(tenant);
    }

    /// Moves a host to another declared address (its loopback address stays).
    pub fn move_host(&self, name: &str, declared: IpAddr) -> Result<(), SimError> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        let host = hosts.iter_mut().find(|h| h.spec.name == name).ok_or_else(|| SimError::NoHost(name.to_string()))?;
        host.spec.declared = declared;
        self.addresses.set(host.loopback, declared);
        let mut plan = AddressPlan::new();
        plan.add("tenant", self.tenant_declared, self.tenant_loopback).map_err(plan_err("the tenant's address"))?;
        plan.add("tenant-out", self.outbound.0, self.outbound.1).map_err(plan_err("the tenant's outbound address"))?;
        for h in hosts.iter() {
            plan.add(&h.spec.name, h.spec.declared, h.loopback).map_err(plan_err(format!("host {:?}", h.spec.name)))?;
        }
        self.endpoint.set_plan(plan);
        Ok(())
    }

    /// Gives a host another client certificate (rotation).
    pub fn set_host_cert(&self, name: &str, cert: Option<CertChoice>) -> Result<(), SimError> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        let host = hosts.iter_mut().find(|h| h.spec.name == name).ok_or_else(|| SimError::NoHost(name.to_string()))?;
        host.spec.cert = cert;
        Ok(())
    }

    /// Sends one message into the tenant from a host, over STARTTLS if asked.
    pub async fn send(&self, spec: &SendSpec) -> Result<SendOutcome, SimError> {
        let (source, host_cert, signer) = {
            let hosts = self.hosts.lock().expect("hosts lock");
            let host = hosts
                .iter()
                .find(|h| h.spec.name == spec.from_host)
                .ok_or_else(|| SimError::NoSendingHost(spec.from_host.clone()))?;
            (host.loopback, host.spec.cert.clone(), host.dkim.clone().filter(|_| spec.dkim_sign))
        };
        let target = match &spec.to_host {
            Some(to) => self.peer(to)?.addr(),
            None => self.tenant_addr(),
        };
        let smtp = |source: SenderError| SimError::Send { host: spec.from_host.clone(), source };
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let message_id = format!("<sim-{n}.{}@{}.test>", std::process::id(), spec.from_host);
        let ehlo = spec.ehlo.clone().unwrap_or_else(|| format!("{}.test", spec.from_host));
        let (mut client, greeting) = ScriptedSender::connect(source, target).await.map_err(smtp)?;
        let done = |client: &ScriptedSender, reply: RawReply, stage, rcpts: Vec<RawReply>| SendOutcome {
            final_reply: reply,
            stage,
            rcpt_replies: rcpts,
            message_id: message_id.clone(),
            transcript: client.transcript().to_vec(),
        };
        if greeting.code != 220 {
            return Ok(done(&client, greeting, "CONNECT", Vec::new()));
        }
        let reply = client.command(&format!("EHLO {ehlo}")).await.map_err(smtp)?;
        if reply.code != 250 {
            return Ok(done(&client, reply, "EHLO", Vec::new()));
        }
        if spec.tls == TlsUse::StartTls {
            let cert = match &spec.cert {
                Some(choice) => choice.clone(),
                None => host_cert,
            };
            let options = match cert {
                Some(c) => TlsOptions { client_cert: Some(ClientIdentity::from(&c.leaf()?)), ..TlsOptions::default() },
                None => TlsOptions::default(),
            };
            let reply = client.starttls(&options, "tenant.mailsim.test").await.map_err(smtp)?;
            if reply.code != 220 {
                return Ok(done(&client, reply, "STARTTLS", Vec::new()));
            }
            let reply = client.command(&format!("EHLO {ehlo}")).await.map_err(smtp)?;
            if reply.code != 250 {
                return Ok(done(&client, reply, "EHLO", Vec::new()));
            }
        }
        let reply = client.command(&format!("MAIL FROM:<{}>", spec.mail_from)).await.map_err(smtp)?;
        if reply.code != 250 {
            return Ok(done(&client, reply, "MAIL", Vec::new()));
        }
        let mut rcpts = Vec::new();
        for rcpt in &spec.rcpt_to {
            rcpts.push(client.command(&format!("RCPT TO:<{rcpt}>")).await.map_err(smtp)?);
        }
        if let Some(refused) = rcpts.iter().find(|r| r.code / 100 != 2).cloned()
            && rcpts.iter().all(|r| r.code / 100 != 2)
        {
            let _ = client.command("QUIT").await;
            return Ok(done(&client, refused, "RCPT", rcpts));
        }
        let reply = client.command("DATA").await.map_err(smtp)?;
        if reply.code != 354 {
            return Ok(done(&client, reply, "DATA", rcpts));
        }
        let content = match &spec.data {
            Some(data) => data.clone(),
            None => {
                let mut text = format!(
                    "From: <{}>\r\nTo: {}\r\nSubject: {}\r\nMessage-ID: {message_id}\r\n",
                    if spec.mail_from.is_empty() { "mailer-daemon@invalid" } else { &spec.mail_from },
                    spec.rcpt_to.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(", "),
                    spec.subject
                );
                for (name, value) in &spec.headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                text.push_str("\r\n");
                text.push_str(&spec.body);
                text.push_str("\r\n");
                text
            }
        };
        let content = match signer {
            Some(signer) => crate::auth_world::sign_text(&signer, &content)
                .map_err(|source| SimError::Dkim { host: spec.from_host.clone(), source })?,
            None => content,
        };
        let reply = client.content(&content).await.map_err(smtp)?;
        let _ = client.command("QUIT").await;
        Ok(done(&client, reply, "END-OF-DATA", rcpts))
    }

    /// Moves simulated time forward and waits until the queue has acted.
    pub async fn advance(&self, by: Duration) {
        self.endpoint.advance(by).await;
    }

    /// Waits until nothing is in flight and nothing queued is due.
    pub async fn settled(&self) -> bool {
        self.endpoint.settled().await
    }

    /// The message trace so far.
    pub fn trace(&self) -> Vec<TraceEvent> {
        self.endpoint.trace().events()
    }

    /// The copies held in quarantine for `address` (a rule's or the anti-phishing policy's,
    /// exo-behaviour §13.5, §14.5).
    pub fn quarantine(&self, address: &str) -> Vec<Arc<AcceptedMessage>> {
        let key = address.to_ascii_lowercase();
        self.endpoint.store().quarantined().into_iter().filter(|d| d.mailbox.key() == key).map(|d| d.message).collect()
    }

    /// A mailbox's messages.
    pub fn mailbox(&self, address: &str) -> Vec<Arc<AcceptedMessage>> {
        self.endpoint.store().mailbox(address)
    }

    /// Waits until `address` holds at least `count` messages or `timeout` passes; returns them.
    pub async fn wait_for_mailbox(&self, address: &str, count: usize, timeout: Duration) -> Vec<Arc<AcceptedMessage>> {
        self.endpoint.store().wait_for(address, count, timeout).await
    }

    /// Waits until host `host`'s peer holds at least `count` messages or `timeout` passes.
    pub async fn wait_for_peer(
        &self,
        host: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<mailsim_testkit::peer::ReceivedMessage>, SimError> {
        Ok(self.peer(host)?.wait_for_messages(count, timeout).await)
    }

    /// Stops every server of the world.
    pub async fn stop(mut self) {
        for peer in self.peers.values_mut() {
            peer.stop().await;
        }
        self.endpoint.stop().await;
        self.dns.stop().await;
    }
}
