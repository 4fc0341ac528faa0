//! # mailsim: simulate an Exchange Online tenant's SMTP transport and connectors on loopback
//!
//! The facade crate: the command line (`mailsim serve`, `send`, `bench`, `certs`, `explain`,
//! `demo`) and the pieces a Rust test uses to bring a tenant endpoint up on a loopback address.

pub mod bench;
pub mod certs_cmd;
pub mod cli;
pub mod demo;
pub mod endpoint;
pub mod explain;
pub mod run_cmd;
pub mod scenario;
pub mod send;
pub mod serve;
pub mod sim;
pub mod trace_cmd;
