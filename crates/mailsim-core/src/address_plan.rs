//! The address plan (docs/architecture.md "The address plan"): every simulated host has a declared address
//! (what connectors and DNS use, e.g. `198.51.100.7`) and a distinct loopback address it really
//! binds. The tenant translates an observed source address back to the declared one before
//! connector matching; the outbound side translates declared addresses to loopback before it
//! connects. Addresses outside the plan map to themselves.

use std::net::IpAddr;

/// Declared ↔ loopback address pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPlan {
    entries: Vec<PlanEntry>,
}

/// One simulated host in the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// The host's name (role), for traces and the printed plan.
    pub name: String,
    /// The address the configuration uses.
    pub declared: IpAddr,
    /// The 127/8 (or ::1) address the host binds.
    pub loopback: IpAddr,
}

/// Why an entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The loopback side is not a loopback address.
    #[error("{0} is not a loopback address")]
    NotLoopback(IpAddr),
    /// Two hosts would share an address.
    #[error("address {0} is already in the plan")]
    Duplicate(IpAddr),
}

impl AddressPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host. Both addresses must be unused, and the loopback one must be loopback.
    pub fn add(&mut self, name: &str, declared: IpAddr, loopback: IpAddr) -> Result<(), PlanError> {
        if !loopback.is_loopback() {
            return Err(PlanError::NotLoopback(loopback));
        }
        for e in &self.entries {
            if e.declared == declared || e.loopback == declared {
                return Err(PlanError::Duplicate(declared));
            }
            if e.loopback == loopback || e.declared == loopback {
                return Err(PlanError::Duplicate(loopback));
            }
        }
        self.entries.push(PlanEntry { name: name.to_string(), declared, loopback });
        Ok(())
    }

    /// The declared address for an observed source; the address itself when not in the plan.
    pub fn declared_for(&self, observed: IpAddr) -> IpAddr {
        self.entries.iter().find(|e| e.loopback == observed).map_or(observed, |e| e.declared)
    }

    /// The loopback address to reach a declared address; the address itself when not in the plan.
    pub fn loopback_for(&self, declared: IpAddr) -> IpAddr {
        self.entries.iter().find(|e| e.declared == declared).map_or(declared, |e| e.loopback)
    }

    /// All entries, in insertion order.
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }
}

/// The world's own entries besides its hosts: the tenant's listener, the tenant's outbound
/// source address, and the DNS server.
pub const WORLD_SLOTS: [&str; 3] = ["tenant", "tenant-out", "dns"];

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Stable loopback addresses for a world (issue 9 item 2): a pure function of the scenario's name
/// and its entries' names, identical on every run and on every machine, so a Postfix
/// `relayhost`/`mynetworks` written against one run holds for the next.
///
/// The scenario's name picks a /24 block in `127.129.0.0`–`127.254.255.0` (away from 127.0.0.x,
/// where the fixed test roles live, and from the blocks tests allocate per process); each name
/// then takes `.10`–`.249` of the block by its own hash, probing upwards past taken or pinned
/// addresses in the order given. `pinned` entries keep their address.
pub fn stable_loopbacks(scope: &str, names: &[&str], pinned: &[IpAddr]) -> Vec<IpAddr> {
    let h = fnv1a(scope);
    let (b, c) = (129 + (h % 126) as u8, ((h >> 8) & 0xff) as u8);
    let mut taken: Vec<IpAddr> = pinned.to_vec();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let mut slot = fnv1a(name) % 240;
        let ip = loop {
            let candidate = IpAddr::from([127, b, c, 10 + slot as u8]);
            if !taken.contains(&candidate) {
                break candidate;
            }
            slot = (slot + 1) % 240;
        };
        taken.push(ip);
        out.push(ip);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_loopbacks_are_a_function_of_the_names() {
        let a = stable_loopbacks("cutover", &["tenant", "tenant-out", "dns", "gateway", "partner"], &[]);
        assert_eq!(a, stable_loopbacks("cutover", &["tenant", "tenant-out", "dns", "gateway", "partner"], &[]));
        let mut unique = a.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), a.len());
        assert!(a.iter().all(|ip| ip.is_loopback() && !matches!(ip, IpAddr::V4(v) if v.octets()[1] < 129)));
        // Another scenario, another block.
        assert_ne!(stable_loopbacks("other", &["tenant"], &[])[0], a[0]);
        // A pinned address is never handed out.
        let pinned = stable_loopbacks("cutover", &["gateway"], &[a[3]]);
        assert_ne!(pinned[0], a[3]);
    }

    #[test]
    fn translates_both_ways_and_passes_unknown_addresses_through() {
        let mut plan = AddressPlan::new();
        plan.add("gateway", "198.51.100.7".parse().unwrap(), "127.0.0.20".parse().unwrap()).unwrap();
        assert_eq!(plan.declared_for("127.0.0.20".parse().unwrap()), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(plan.loopback_for("198.51.100.7".parse().unwrap()), "127.0.0.20".parse::<IpAddr>().unwrap());
        assert_eq!(plan.declared_for("127.0.0.99".parse().unwrap()), "127.0.0.99".parse::<IpAddr>().unwrap());
        assert!(plan.add("x", "203.0.113.1".parse().unwrap(), "10.0.0.1".parse().unwrap()).is_err());
        assert!(plan.add("y", "198.51.100.7".parse().unwrap(), "127.0.0.21".parse().unwrap()).is_err());
    }
}
