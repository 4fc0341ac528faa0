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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use mailsim_core::plan::AddressPlan;
use mailsim_testkit::dns::{DnsZoneSet, ScriptedDns};
use mailsim_testkit::peer::{PeerScript, ScriptedPeer};

/// A fresh loopback address no other test (or world) in this process uses.
pub fn fresh_loopback() -> IpAddr {
    mailsim_testkit::hosts::allocate_loopback()
}

/// A simulated world of its own per test: the tenant, a DNS server and receiving peers, each on a
/// fresh loopback address, all SMTP hosts on one free port.
pub struct World {
    pub tenant: RunningEndpoint,
    pub dns: ScriptedDns,
    pub peers: HashMap<&'static str, ScriptedPeer>,
    /// The loopback address of the world's sending host (on-premises server or internet sender).
    pub onprem_loopback: Option<IpAddr>,
}

/// Declared address of the tenant endpoint in test worlds (as a partner's DNS would list it).
pub const TENANT_DECLARED: &str = "192.0.2.100";

impl World {
    /// `peers`: (name, declared address, script); a script whose `forward_to` is set relays to
    /// this world's tenant ([`World::FORWARD_TO_TENANT`]). `sender`: the sending host's name and
    /// declared address, added to the address plan.
    pub async fn start_with_sender(
        tenant: mailsim_core::tenant::Tenant,
        zones: DnsZoneSet,
        peers: Vec<(&'static str, &str, PeerScript)>,
        sender: (&'static str, &str),
        tweak: impl FnOnce(&mut EndpointOptions),
    ) -> World {
        let tenant_ip = fresh_loopback();
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(tenant_ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tenant_declared: IpAddr = TENANT_DECLARED.parse().unwrap();
        let mut plan = AddressPlan::new();
        plan.add("tenant", tenant_declared, tenant_ip).unwrap();
        let sender_ip = fresh_loopback();
        plan.add(sender.0, sender.1.parse().unwrap(), sender_ip).unwrap();
        let mut started = HashMap::new();
        for (name, addr, mut script) in peers {
            let ip = fresh_loopback();
            let addr: IpAddr = addr.parse().unwrap();
            plan.add(name, addr, ip).unwrap();
            if script.forward_to.is_some() {
                script.forward_to = Some(SocketAddr::new(tenant_ip, port));
            }
            let peer = ScriptedPeer::start(SocketAddr::new(ip, port), script).await.expect("peer starts");
            started.insert(name, peer);
        }
        let dns = ScriptedDns::start(fresh_loopback(), zones).await.expect("dns starts");
        let mut options = EndpointOptions::new(tenant);
        options.plan = plan;
        options.dns = Some(dns.addr());
        options.dns_timeout = Duration::from_millis(500);
        options.smtp_port = port;
        options.outbound_source = tenant_ip;
        options.outbound_timeout = Duration::from_secs(5);
        tweak(&mut options);
        let endpoint = RunningEndpoint::serve(listener, options).unwrap();
        World { tenant: endpoint, dns, peers: started, onprem_loopback: Some(sender_ip) }
    }

    /// Marker for `PeerScript::forward_to`: relay to this world's tenant.
    pub const FORWARD_TO_TENANT: Option<SocketAddr> =
        Some(SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0));

    pub fn peer(&self, name: &str) -> &ScriptedPeer {
        &self.peers[name]
    }

    /// Sends one message into the tenant from the world's sending host; returns the final reply.
    pub async fn send(&self, from: &str, to: &[&str], content: &str) -> mailsim_testkit::sender::RawReply {
        let source = self.onprem_loopback.unwrap_or_else(fresh_loopback);
        let (mut c, _) = ScriptedSender::connect(source, self.tenant.addr()).await.unwrap();
        let reply = c.send_message("sender.test", from, to, content).await.unwrap();
        let _ = c.command("QUIT").await;
        reply
    }
}
