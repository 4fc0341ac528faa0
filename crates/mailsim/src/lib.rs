//! # mailsim: simulate an Exchange Online tenant's SMTP transport and connectors on loopback
//!
//! The facade crate. The library: [`sim`] (a whole simulated world, the one API behind Rust tests,
//! scenario files and `mailsim serve --scenario`), [`endpoint`] (one tenant endpoint on a loopback
//! address) and [`scenario`] (scenario files run against [`sim`]). The command line lives apart in
//! [`cli`], one module per subcommand (`run`, `serve`, `send`, `bench`, `certs`, `trace`,
//! `explain`, `demo`); it uses the library and the core, and the library never uses it.

pub mod api;
pub mod auth_world;
pub mod cli;
pub mod config_file;
pub mod endpoint;
pub mod fuzz_oracle;
pub mod live;
pub mod scenario;
pub mod sim;
pub mod soak;
