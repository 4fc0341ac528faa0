//! The only sequencer: what happens to a message after the tenant accepted it. Calls the core
//! stages in order and carries out their results. Today: categorize each recipient, deliver local
//! mailboxes, and hold everything else in the relay queue for the outbound stage.

use std::sync::Arc;

use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::session::Refusal;
use mailsim_core::stage::categorize::{Category, categorize};
use mailsim_core::tenant::Tenant;

use crate::store::MailStore;

/// Takes accepted messages and session refusals from connections.
#[derive(Debug)]
pub struct Pipeline {
    tenant: Arc<Tenant>,
    store: Arc<MailStore>,
    refusals: std::sync::Mutex<Vec<Refusal>>,
}

impl Pipeline {
    /// A pipeline delivering into `store`.
    pub fn new(tenant: Arc<Tenant>, store: Arc<MailStore>) -> Self {
        Self { tenant, store, refusals: Default::default() }
    }

    /// The store.
    pub fn store(&self) -> &Arc<MailStore> {
        &self.store
    }

    /// A message the session answered 250 for.
    pub fn accept(&self, message: AcceptedMessage) {
        let message = Arc::new(message);
        for rcpt in &message.envelope.recipients {
            let category = categorize(&self.tenant, rcpt);
            tracing::info!(message_id = %message.message_id, %rcpt, ?category, "categorized");
            match category {
                Category::Mailbox => self.store.deliver(rcpt.clone(), message.clone()),
                Category::InternalRelay | Category::External | Category::UnknownInAuthoritative => {
                    self.store.queue_for_relay(rcpt.clone(), message.clone())
                }
            }
        }
    }

    /// A refusal during the session, kept for the trace.
    pub fn refused(&self, refusal: Refusal) {
        tracing::info!(reply = %refusal.reply, stage = refusal.stage, "refused");
        self.refusals.lock().expect("refusals lock").push(refusal);
    }

    /// Refusals so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().expect("refusals lock").clone()
    }
}
