//! # mailsim-io: the async shell around mailsim-core
//!
//! This crate owns sockets, TLS, timers and files, and decides nothing: every reply, verdict and
//! route comes from `mailsim-core`, and the code here carries it out. A branch on a reply code or a
//! connector field in this crate is a bug (docs/architecture.md "How a message moves through the code").
//!
//! - [`listener`]: accept loop with a connection cap and a shutdown future.
//! - [`smtp_conn`]: one inbound connection: bytes ↔ `core::session`, STARTTLS upgrade, timeouts.
//! - [`store`]: where accepted messages go: mailboxes in memory and as .eml files.
//! - [`pipeline`]: the only sequencer after acceptance: route, attempt, settle, queue, bounce;
//!   [`queue`]: deferred recipients and their schedule; [`lanes`]: per-next-hop workers.
//! - [`outbound`]: one delivery attempt over SMTP under the connector's TLS policy.
//! - [`spool`]: the durable queue under the state directory (journal, group commit, recovery).
//! - [`clock`]: simulated time the queue runs on; [`trace_sink`]: the message trace.

pub mod auth;
pub mod client;
pub mod clock;
pub mod dns;
pub mod ids;
pub mod lanes;
pub mod listener;
pub mod outbound;
pub mod pipeline;
pub mod protocol_log;
pub mod queue;
pub mod shared;
pub mod smtp_conn;
pub mod spool;
pub mod store;
pub mod tls;
pub mod trace_sink;

#[cfg(test)]
mod test_support;
