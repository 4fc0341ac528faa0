//! The stages a message goes through, in order: receive (in [`crate::session`]) → [`inbound`] →
//! [`rules`] (mail flow rules, exo-behaviour §13.1) →
//! [`categorize`] → route → deliver ([`attempt`]) → outcome.

pub mod attempt;
pub mod categorize;
pub mod deliver;
pub mod inbound;
pub mod outcome;
pub mod route;
pub mod route_explain;
pub mod rules;
