//! NDR composition (RFC 3464 delivery status notifications). Pure and deterministic.
//!
//! Being written; the public input types below are fixed.

use crate::addr::EmailAddress;
use crate::reply::Reply;
use crate::time::Timestamp;

/// One recipient the NDR reports as failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecipient {
    /// The recipient.
    pub recipient: EmailAddress,
    /// The reply that decided the failure, e.g. `550 5.1.1 User unknown` from the remote server,
    /// or the tenant's own `550 4.4.7 QUEUE.Expired; message expired`.
    pub reply: Reply,
    /// The remote server that gave the reply, if a remote server did (`Remote-MTA`).
    pub remote_mta: Option<String>,
    /// When the last attempt was made.
    pub last_attempt: Option<Timestamp>,
}
