//! End-to-end tests: a real tenant endpoint on loopback, real SMTP and TLS from scripted senders
//! bound to their own 127/8 addresses. One test binary (one link step).

mod api;
mod auth_world;
mod authentication;
mod cdp;
mod common;
mod config_hardening;
mod durable;
mod endpoint;
mod explain;
mod fidelity;
mod headers;
mod import;
mod inbound;
mod interop_postfix;
mod live;
mod loader_fuzz;
mod malformed;
mod outbound;
mod protocol_log;
mod rules;
mod scenarios;
mod tls;
mod transcripts;
mod validate_outbound;
mod web;
