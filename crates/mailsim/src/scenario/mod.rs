//! Scenario files (`scenarios/*.toml`, format in `scenarios/README.md`): a simulated world and
//! what must happen in it. One API, two front ends: a scenario compiles to the same
//! [`Simulation`](crate::sim::Simulation) calls a Rust test makes.
//!
//! - [`load`]: the format; [`load_file`] reads and validates a file completely (tenant, hosts,
//!   DNS, every step and every change) before any world starts, with `file:line:col: field:
//!   problem` errors and a hint. Split by what it reads: the walker, the world, the steps, the
//!   expectations.
//! - [`run`]: plays a [`Scenario`] against a fresh [`Simulation`](crate::sim::Simulation), and
//!   runs many files in parallel ([`run_paths`]).
//! - [`expect`]: the assertions (replies, connectors, mailboxes, peer inboxes, recipient status,
//!   NDRs, trace events, the queue), usable from Rust tests as they are.
//! - [`report`]: the verdicts as text, JSON lines and JUnit XML.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mailsim::scenario::{RunOptions, load_file, run_scenario};
//! let scenario = load_file(std::path::Path::new("scenarios/00-lockdown-5.7.51.toml"))?;
//! let report = run_scenario(&scenario, &RunOptions::default()).await;
//! assert!(report.passed(), "{}", mailsim::scenario::report::details(&report));
//! # Ok(()) }
//! ```

pub mod auth_expect;
pub mod expect;
pub mod load;
pub mod report;
pub mod run;
pub mod select;
pub mod verbose;

pub use load::{Action, Change, Scenario, Step, load_file, parse};
pub use report::{ScenarioReport, Summary, Verdict};
pub use run::{RunOptions, run_paths, run_scenario};
pub use select::Partition;
