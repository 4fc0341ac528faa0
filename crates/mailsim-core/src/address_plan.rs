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

#[cfg(test)]
mod tests {
    use super::*;

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
