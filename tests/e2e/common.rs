//! Shared fixtures.

use std::time::Duration;

use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_testkit::hosts::Host;
use mailsim_testkit::sender::ScriptedSender;

/// contoso.test (Authoritative, mailboxes alice and bob), relay.contoso.test (InternalRelay).
pub fn tenant() -> Tenant {
    Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_domain("relay.contoso.test", DomainType::InternalRelay)
        .with_mailbox("alice@contoso.test")
        .with_mailbox("bob@contoso.test")
        .build()
        .expect("a valid tenant")
}

pub async fn start(options: EndpointOptions) -> RunningEndpoint {
    RunningEndpoint::bind("127.0.0.1:0".parse().unwrap(), options).await.expect("endpoint starts")
}

pub async fn start_default() -> RunningEndpoint {
    start(EndpointOptions::new(tenant())).await
}

pub async fn connect(host: Host, endpoint: &RunningEndpoint) -> ScriptedSender {
    let (client, greeting) = ScriptedSender::connect(host.loopback, endpoint.addr()).await.expect("connects");
    assert_eq!(greeting.code, 220, "{greeting:?}");
    client
}

pub const MESSAGE: &str = "From: a@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: test\r\n\r\nhello\r\n";

pub const WAIT: Duration = Duration::from_secs(5);

use std::net::{IpAddr, SocketAddr};

use mailsim::sim::{HostSpec, Simulation, WorldSpec};
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::peer::{PeerScript, ScriptedPeer};

/// A fresh loopback address no other test (or world) in this process uses.
pub fn fresh_loopback() -> IpAddr {
    mailsim_testkit::hosts::allocate_loopback()
}

/// A simulated world of its own per test: a thin wrapper over [`Simulation`], the world scenarios
/// and `mailsim serve --scenario` run in, with these tests' conventions (the tenant declared at
/// [`TENANT_DECLARED`], one sending host, outbound conversations timing out after 5 s). Everything
/// else is `Simulation`'s, reached through `Deref`.
pub struct World {
    sim: Simulation,
    /// The sending host's name.
    sender: &'static str,
}

/// Declared address of the tenant endpoint in test worlds (as a partner's DNS would list it).
pub const TENANT_DECLARED: &str = "192.0.2.100";

impl std::ops::Deref for World {
    type Target = Simulation;

    fn deref(&self) -> &Simulation {
        &self.sim
    }
}

impl World {
    /// `peers`: (name, declared address, script); a script whose `forward_to` is set relays to
    /// this world's tenant ([`World::FORWARD_TO_TENANT`]). `sender`: the sending host's name and
    /// declared address. `tweak` adjusts the world before it starts.
    pub async fn start_with_sender(
        tenant: mailsim_core::tenant::Tenant,
        zones: DnsZoneSet,
        peers: Vec<(&'static str, &str, PeerScript)>,
        sender: (&'static str, &str),
        tweak: impl FnOnce(&mut WorldSpec),
    ) -> World {
        let mut spec = WorldSpec::new(tenant);
        spec.tenant_declared = TENANT_DECLARED.parse().unwrap();
        spec.dns = zones;
        spec.outbound_timeout = Duration::from_secs(5);
        spec.hosts.push(HostSpec::new(sender.0, sender.1));
        for (name, declared, script) in peers {
            let mut host = HostSpec::new(name, declared);
            host.relays_to_tenant = script.forward_to.is_some();
            host.peer = Some(script);
            spec.hosts.push(host);
        }
        tweak(&mut spec);
        World { sim: Simulation::start(spec).await.expect("world starts"), sender: sender.0 }
    }

    /// Marker for `PeerScript::forward_to`: relay to this world's tenant.
    pub const FORWARD_TO_TENANT: Option<SocketAddr> =
        Some(SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0));

    /// A host's receiving peer (the host must have one).
    pub fn peer(&self, name: &str) -> &ScriptedPeer {
        self.sim.peer(name).expect("the host has a peer")
    }

    /// The loopback address the world's sending host connects from.
    pub fn sender_loopback(&self) -> IpAddr {
        self.sim.host_loopback(self.sender).expect("the sending host exists")
    }

    /// Sends one message into the tenant from the world's sending host; returns the final reply.
    pub async fn send(&self, from: &str, to: &[&str], content: &str) -> mailsim_testkit::sender::RawReply {
        let (mut c, _) = ScriptedSender::connect(self.sender_loopback(), self.tenant_addr()).await.unwrap();
        let reply = c.send_message("sender.test", from, to, content).await.unwrap();
        let _ = c.command("QUIT").await;
        reply
    }

    /// Stops every server of the world.
    pub async fn stop(self) {
        self.sim.stop().await;
    }
}
