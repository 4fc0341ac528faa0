//! End-to-end tests: a real tenant endpoint on loopback, real SMTP and TLS from scripted senders
//! bound to their own 127/8 addresses. One test binary (one link step).

mod common;
mod durable;
mod endpoint;
mod explain;
mod inbound;
mod malformed;
mod outbound;
mod protocol_log;
mod scenarios;
mod tls;
mod transcripts;
