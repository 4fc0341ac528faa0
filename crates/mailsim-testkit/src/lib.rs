//! Test doubles for mailsim and for users' own tests: scripted SMTP peers, a scripted DNS server,
//! rcgen certificates, loopback hosts and golden transcripts.
//!
//! The rule of this crate: it shares no protocol code with `mailsim-io` and does not depend on it,
//! so that a bug in mailsim's SMTP or TLS code cannot also hide in the double that checks it. It
//! uses `mailsim-core` for data types only.

#![warn(missing_docs)]

pub mod certs;
pub mod dkim;
pub mod dns;
pub mod hosts;
pub mod peer;
pub mod sender;
pub mod transcript;
