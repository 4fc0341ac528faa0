//! The client's errors: the [`Stage`] of the conversation a failure belongs to and the
//! [`ClientError`] facts. Each is a fact about the conversation; what it means for a message is the
//! caller's decision (the outbound stage of the core).

use std::io;
use std::net::SocketAddr;

use mailsim_core::reply::Reply;

/// The step of the conversation an error or rejection belongs to: the core's one SMTP phase enum
/// (its lower-case `as_str` names it in the messages below).
pub use mailsim_core::phase::SmtpPhase as Stage;

/// What went wrong in a conversation. Each variant is a fact; what it means for a message is the
/// caller's decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server address is not a loopback address; mailsim talks to nothing else.
    #[error("{0} is not a loopback address: mailsim only connects to 127.0.0.0/8 and ::1")]
    NotLoopback(SocketAddr),
    /// Binding the source address or the TCP connect failed.
    #[error("connection failed: {0}")]
    Connect(io::Error),
    /// No complete reply (or write) within the timeout.
    #[error("timed out waiting at {}", .0.as_str())]
    Timeout(Stage),
    /// The TLS handshake failed, or the server sent a TLS alert afterwards (TLS 1.3 reports a
    /// refused client certificate only on the first read after the handshake).
    #[error("TLS failure: {0}")]
    Tls(String),
    /// STARTTLS was required but the last EHLO did not offer it.
    #[error("STARTTLS required but not offered by the server")]
    TlsNotOffered,
    /// The server broke the protocol (malformed or overlong reply, data after a STARTTLS reply).
    #[error("protocol violation at {}: {detail}", .stage.as_str())]
    ProtocolViolation {
        /// Where.
        stage: Stage,
        /// What.
        detail: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server at {}", .0.as_str())]
    Closed(Stage),
    /// There is no open connection (never connected, or an earlier error dropped it).
    #[error("not connected (at {})", .0.as_str())]
    NotConnected(Stage),
    /// A read or write failed.
    #[error("I/O error at {}: {error}", .stage.as_str())]
    Io {
        /// Where.
        stage: Stage,
        /// The error (in the message, not linked as a source: said once).
        error: io::Error,
    },
    /// The server's reply does not let this step go on (the connection is still usable).
    #[error("{} rejected: {reply}", .stage.as_str())]
    Rejected {
        /// The command that was refused.
        stage: Stage,
        /// The reply.
        reply: Reply,
    },
}

impl ClientError {
    /// The stage the error belongs to, when it has one.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            ClientError::NotLoopback(_) | ClientError::Connect(_) => Some(Stage::Connect),
            ClientError::Tls(_) | ClientError::TlsNotOffered => Some(Stage::StartTls),
            ClientError::Timeout(stage)
            | ClientError::Closed(stage)
            | ClientError::NotConnected(stage)
            | ClientError::ProtocolViolation { stage, .. }
            | ClientError::Io { stage, .. }
            | ClientError::Rejected { stage, .. } => Some(*stage),
        }
    }

    /// The server's reply, for a rejection.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Rejected { reply, .. } => Some(reply),
            _ => None,
        }
    }
}
