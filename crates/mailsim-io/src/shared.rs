//! A value every connection reads and a scenario may replace between steps (the tenant after an
//! admin edits a connector, the address plan after a host moves). Readers take a snapshot: a
//! session keeps the configuration it started with, as EXO keeps using the old settings until the
//! new ones are saved (exo-behaviour §2.2 "Changes").

use std::sync::{Arc, RwLock};

/// A replaceable, shared value.
#[derive(Debug, Default)]
pub struct Shared<T>(RwLock<Arc<T>>);

impl<T> Shared<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(RwLock::new(Arc::new(value)))
    }

    /// The current value.
    pub fn get(&self) -> Arc<T> {
        self.0.read().expect("shared value lock").clone()
    }

    /// Replaces the value; snapshots already taken keep the old one.
    pub fn set(&self, value: impl Into<Arc<T>>) {
        *self.0.write().expect("shared value lock") = value.into();
    }
}
