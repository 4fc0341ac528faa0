//! # mailsim-core: every decision the simulator makes, as pure functions over data
//!
//! ```text
//!   bytes ──► session (receive) ──► stage::inbound (attribute) ──► AcceptedMessage
//!                                                                       │
//!            categorize ◄───────────────────────────────────────────────┘
//!                 │
//!               route ──► deliver (tls_gate, attempt::failure_reply) ──► outcome (settle) ──► ndr
//! ```
//!
//! The purity rule: this crate has no async runtime, no sockets, no clock, no randomness, no file
//! reads or writes and no environment reads. Time enters as a [`time::Timestamp`] argument and identifiers enter as arguments. The
//! dependency list and `clippy.toml` enforce it. The shell (`mailsim-io`) calls these functions and
//! carries out what they return.
#![warn(missing_docs)]

pub mod addr;
pub mod address_plan;
pub mod auth;
pub mod diagnostics;
pub mod dns;
pub mod envelope;
pub mod header_report;
pub mod header_section;
pub mod headers;
pub mod ids;
pub mod ndr;
pub mod peer;
pub mod phase;
pub mod received_chain;
pub mod reply;
pub mod session;
pub mod stage;
pub mod tenant;
pub mod time;
pub mod trace;
