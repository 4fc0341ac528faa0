//! Internal ids: one source per world, so that every message id, NDR id and session id the world
//! hands out is unique for the world's whole life (issue 14 item 3).
//!
//! An id is `epoch << 44 | n`: `n` counts up from 1 in this run and the epoch tells runs apart.
//! The shell picks the epoch: with a state directory it is a counter persisted there, one more at
//! every start (`mailsim_io::ids`), so ids never repeat across restarts on the same state; without
//! one it derives from the start time, so that logs of different runs rarely share ids. 2^44 ids
//! per run (a million a second for half a year) and 2^20 epochs; past 2^44 ids the count carries
//! into the epoch bits, still unique within the run.
//!
//! Ids are what `.eml` files, trace rows and the `InternalId=` of the 250 reply are keyed by: the
//! former `(session_id << 16) | (messages & 0xFFFF)` repeated after 65,536 messages on one
//! connection and overwrote message files.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the per-run counter.
pub const COUNTER_BITS: u32 = 44;
/// Epochs wrap at this (20 bits).
pub const EPOCHS: u64 = 1 << (64 - COUNTER_BITS);

/// Hands out ids, shared by every session and the pipeline of one world.
#[derive(Debug)]
pub struct IdSource {
    epoch: u64,
    next: AtomicU64,
}

impl IdSource {
    /// A source for run `epoch` (taken modulo [`EPOCHS`]).
    pub fn new(epoch: u64) -> Self {
        Self { epoch: epoch % EPOCHS, next: AtomicU64::new(1) }
    }

    /// The epoch for a run without persisted state, from its start time in seconds.
    pub fn epoch_from_time(seconds: i64) -> u64 {
        seconds.unsigned_abs() % EPOCHS
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The next id: never the same twice from one source.
    pub fn next_id(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (self.epoch << COUNTER_BITS).wrapping_add(n)
    }

    /// How many ids were handed out.
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_within_and_across_epochs() {
        let a = IdSource::new(7);
        let b = IdSource::new(8);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..70_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
        assert_eq!(a.issued(), 70_000);
        assert_eq!(IdSource::new(EPOCHS + 3).epoch(), 3);
        assert_eq!(IdSource::new(1).next_id(), (1 << COUNTER_BITS) + 1);
    }
}
