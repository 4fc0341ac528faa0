//! The loopback plan for tests: fixed 127/8 addresses per role, so tests name hosts by role and
//! never by literal address (maddy's `Conn4`). Linux routes all of 127/8 to `lo` with no set-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A simulated host: its role, the address configurations use, and the loopback address it binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// Role name.
    pub name: &'static str,
    /// The address connectors and DNS know it by.
    pub declared: IpAddr,
    /// The 127/8 address it really binds.
    pub loopback: IpAddr,
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The standard roles. Declared addresses come from the documentation ranges (RFC 5737) admins
/// would see in a production connector.
pub mod roles {
    use super::{Host, v4};
    /// The tenant endpoint (EXO front door).
    pub const TENANT: Host = Host { name: "tenant", declared: v4(127, 0, 0, 1), loopback: v4(127, 0, 0, 1) };
    /// The security gateway in front of the tenant.
    pub const GATEWAY: Host = Host { name: "gateway", declared: v4(198, 51, 100, 7), loopback: v4(127, 0, 0, 20) };
    /// A second gateway node in the same range.
    pub const GATEWAY_2: Host = Host { name: "gateway-2", declared: v4(198, 51, 100, 8), loopback: v4(127, 0, 0, 21) };
    /// A partner organisation's MTA.
    pub const PARTNER: Host = Host { name: "partner", declared: v4(203, 0, 113, 25), loopback: v4(127, 0, 0, 30) };
    /// The tenant's on-premises Exchange server.
    pub const ON_PREMISES: Host = Host { name: "onprem", declared: v4(192, 0, 2, 10), loopback: v4(127, 0, 0, 40) };
    /// An internet sender that goes straight to the tenant, bypassing the gateway.
    pub const INTERNET: Host = Host { name: "internet", declared: v4(203, 0, 113, 99), loopback: v4(127, 0, 0, 50) };
    /// The scripted DNS server.
    pub const DNS: Host = Host { name: "dns", declared: v4(127, 0, 0, 53), loopback: v4(127, 0, 0, 53) };
    /// Every role above.
    pub const ALL: [Host; 7] = [TENANT, GATEWAY, GATEWAY_2, PARTNER, ON_PREMISES, INTERNET, DNS];
}

impl Host {
    /// A socket address on the host's loopback address.
    pub fn socket(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.loopback, port)
    }
}

/// A loopback address of its own for each test that needs one: `127.<a>.<b>.<c>` from an index,
/// away from the fixed roles (which live in 127.0.0.x).
pub fn unique_loopback(index: u32) -> IpAddr {
    let n = index + 1;
    v4(127, 1 + ((n >> 16) & 0x7f) as u8, (n >> 8) as u8, n as u8)
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A loopback address no other caller in this process has been given, for one simulated host of
/// one world. Processes start in different blocks (by process id), so two test runs side by side
/// rarely meet; the fixed roles (127.0.0.x) are never handed out.
pub fn allocate_loopback() -> IpAddr {
    let base = (std::process::id() & 0x3FF) << 12;
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4096;
    unique_loopback(base + n)
}
