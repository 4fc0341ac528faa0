//! Outbound SMTP client: one conversation with one server, from a chosen 127/8 source address.
//!
//! Stage: deliver (the shell side of it), and the engine of `mailsim send` and `mailsim bench`.
//! Contract: it carries out commands and reports what the peer said (replies, capabilities, TLS
//! facts, a transcript of every line). It decides nothing: whether STARTTLS is required, what a
//! 4xx means for a recipient, when to retry, all belong to the caller (`core::stage::deliver` and
//! `outcome` for the outbound stage). It only connects to loopback addresses (docs/architecture.md "The
//! address plan"): mailsim never sends traffic anywhere else.
//!
//! RFC 5321 (commands, replies, dot-stuffing), RFC 3207 (STARTTLS), RFC 2920 (PIPELINING).
//! Replies are capped as Exchange caps them: 2,000 characters a line and 50 lines a reply.
//!
//! Rooms (after rustls' `client/` and Stalwart's `outbound/`):
//! - [`dialogue`]: the conversation itself, [`SmtpClient`] (connect, EHLO, STARTTLS, a
//!   transaction, QUIT) and what it learns ([`Capabilities`], [`TlsInfo`], [`TransactionReplies`]);
//! - [`transcript`]: the typed record of what was said ([`Event`], [`Transcript`]), which the SEND
//!   protocol log is written from and swaks-style output is rendered from;
//! - [`error`]: [`Stage`] and [`ClientError`];
//! - the TLS client configuration lives with the rest of TLS in `crate::tls`
//!   ([`client_config`], [`opportunistic_config`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

pub mod dialogue;
pub mod error;
pub mod transcript;

pub use crate::tls::{client_config, opportunistic_config};
pub use dialogue::{Capabilities, SmtpClient, TlsInfo, TransactionReplies, encode_data};
pub use error::{ClientError, Stage};
pub use transcript::{Direction, Event, Transcript, TranscriptLine};

/// Longest reply line accepted, without CRLF (Exchange's limit).
pub const MAX_REPLY_LINE: usize = 2000;
/// Most lines accepted in one reply (Exchange's limit).
pub const MAX_REPLY_LINES: usize = 50;

/// Whether [`SmtpClient::open`] negotiates STARTTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Never.
    #[default]
    None,
    /// When the server offers it; go on in plain text when it does not or refuses the command.
    Optional,
    /// Always; fail with [`ClientError::TlsNotOffered`] when the server does not offer it.
    Required,
}

/// How to reach the server and what to say.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The server; must be a loopback address.
    pub server: SocketAddr,
    /// Source address to bind before connecting (a host's 127/8 address), or the system's choice.
    pub local_addr: Option<IpAddr>,
    /// The EHLO argument.
    pub ehlo: String,
    /// STARTTLS policy for [`SmtpClient::open`]; the single-step methods ignore it.
    pub tls: TlsMode,
    /// TLS configuration for STARTTLS; `None` uses [`opportunistic_config`] (any server certificate).
    pub tls_config: Option<Arc<ClientConfig>>,
    /// The name sent as SNI and checked against the certificate when verifying; an IP literal is
    /// allowed. Empty means the server's IP address.
    pub server_name: String,
    /// Limit for each step: connect, each reply, each write, the TLS handshake.
    pub timeout: Duration,
    /// Record a [`Transcript`]; load generators turn it off.
    pub record_transcript: bool,
}

impl ClientOptions {
    /// Options with defaults: EHLO `mailsim.local`, no TLS, 30 s per step, transcript on.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            local_addr: None,
            ehlo: "mailsim.local".into(),
            tls: TlsMode::None,
            tls_config: None,
            server_name: String::new(),
            timeout: Duration::from_secs(30),
            record_transcript: true,
        }
    }
}
