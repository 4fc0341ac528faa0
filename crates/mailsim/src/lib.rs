//! # mailsim: simulate an Exchange Online tenant's SMTP transport and connectors on loopback
//!
//! The facade crate: the command line (`mailsim serve`, `send`, `bench`, `certs`, `explain`,
//! `demo`) and the pieces a Rust test uses to bring a tenant endpoint up on a loopback address.

pub mod cli;
pub mod endpoint;
pub mod scenario;
pub mod sim;
