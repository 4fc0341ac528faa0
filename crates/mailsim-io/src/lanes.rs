//! Per-next-hop lanes: entries waiting for one hop, served by at most
//! [`MAX_CONNECTIONS_PER_HOP`] workers, each keeping its SMTP session open between messages
//! (Postfix's per-destination concurrency and connection cache). Only bookkeeping: which entry a
//! worker takes next, how many attempts are in flight, how many workers are alive.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mailsim_core::stage::route::Hop;

use crate::queue::QueueEntry;

/// Sessions one next hop gets at once. Exchange and Postfix default to 20 per destination; on the
/// 2-core machine the simulator targets, 8 delivered more messages per second than 20 (measured
/// with `cargo bench -p mailsim --bench outbound`), since every peer shares the same cores.
pub const MAX_CONNECTIONS_PER_HOP: usize = 8;

/// Entries waiting for one next hop, and how many workers serve it.
#[derive(Debug)]
struct Lane {
    hop: Hop,
    pending: VecDeque<QueueEntry>,
    workers: usize,
}

/// Every hop's lane.
#[derive(Debug, Default)]
pub struct Lanes {
    lanes: Mutex<Vec<Lane>>,
    in_flight: AtomicU64,
    /// Workers alive, including one still closing its session.
    workers: AtomicU64,
}

impl Lanes {
    /// No lanes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `entry` on its hop's lane. Returns whether a new worker must be started for the hop
    /// (it then counts as alive until [`Lanes::retire`]).
    pub fn push(&self, entry: QueueEntry) -> bool {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut lanes = self.lanes.lock().expect("lanes lock");
        let lane = match lanes.iter_mut().position(|l| l.hop == entry.hop) {
            Some(i) => &mut lanes[i],
            None => {
                lanes.push(Lane { hop: entry.hop.clone(), pending: VecDeque::new(), workers: 0 });
                lanes.last_mut().expect("just pushed")
            }
        };
        lane.pending.push_back(entry);
        let start = lane.workers < MAX_CONNECTIONS_PER_HOP;
        if start {
            lane.workers += 1;
            self.workers.fetch_add(1, Ordering::Relaxed);
        }
        start
    }

    /// The next entry for a worker of `hop`; `None` when the lane is empty, and the worker leaves
    /// it (then closes its session and calls [`Lanes::retire`]).
    pub fn next(&self, hop: &Hop) -> Option<QueueEntry> {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        let i = lanes.iter().position(|l| &l.hop == hop).expect("a worker's lane exists");
        let entry = lanes[i].pending.pop_front();
        if entry.is_none() {
            lanes[i].workers -= 1;
            if lanes[i].workers == 0 {
                lanes.swap_remove(i);
            }
        }
        entry
    }

    /// An entry taken with [`Lanes::next`] has been attempted and settled.
    pub fn done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A worker has closed its session and stopped.
    pub fn retire(&self) {
        self.workers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Attempts queued on a lane or running.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Nothing in flight and every worker gone (its session closed).
    pub fn idle(&self) -> bool {
        self.in_flight() == 0 && self.workers.load(Ordering::Relaxed) == 0
    }
}
