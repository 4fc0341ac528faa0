//! `mailsim run [PATH...]`: runs scenario files (default `scenarios/`) in parallel, each in a world
//! of its own on loopback. A line per scenario as it finishes (with `--verbose`, what each step
//! did), then the summary in file order, the failures (step, expected vs actual, SMTP transcript)
//! and `N passed, N failed`. A progress line on stderr while it runs, when stderr is a terminal.
//! Exit status in [`EXIT_CODES`].

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::scenario::report::{self, ScenarioReport, Summary};
use crate::scenario::{Partition, RunOptions, run_paths};

/// The exit codes of `mailsim run`, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit status:
  0  every selected scenario passed
  1  a scenario failed: an expectation did not hold, a step could not be carried out, the world
     did not start, or a scenario timed out
  2  nothing was run as asked: a malformed scenario file, a file without steps, an empty selection
     (--filter or --partition matching no file, a directory without *.toml), a path that does not
     exist, bad flags, or a report that could not be written

Reports: --json prints one JSON object per scenario as it finishes, then a summary object (format
\"version\": 1, documented in docs/run-report.md); --junit writes JUnit XML that validates against
the common JUnit schema (docs/schemas/JUnit.xsd): a <failure> for an expectation, an <error> for a
file or world that could not run.";

/// `mailsim run` flags.
#[derive(clap::Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct RunArgs {
    /// Scenario files or directories (a directory's `*.toml` files).
    #[arg(default_value = "scenarios", env = "MAILSIM_RUN_PATHS", value_delimiter = ',')]
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose name contains this text (none matching is an error, exit 2).
    #[arg(long, env = "MAILSIM_RUN_FILTER", value_name = "NAME")]
    pub filter: Option<String>,
    /// Only the K-th of N partitions of the selected files, by count as cargo-nextest's
    /// `count:K/N`: file i (0-based, in file order) goes to partition i % N + 1, so N CI jobs
    /// with 1/N .. N/N run every file exactly once.
    #[arg(long, env = "MAILSIM_RUN_PARTITION", value_name = "K/N")]
    pub partition: Option<Partition>,
    /// One JSON object per scenario, then a summary object, instead of text.
    #[arg(long, env = "MAILSIM_RUN_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Also write a JUnit XML report here.
    #[arg(long, env = "MAILSIM_RUN_JUNIT", value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print each step: what was sent with its SMTP transcript, the trace rows it wrote (who
    /// received what) and each expectation checked.
    #[arg(short, long, env = "MAILSIM_RUN_VERBOSE", value_parser = clap::builder::BoolishValueParser::new())]
    pub verbose: bool,
    /// Keep each world's state under `DIR/<file stem>/` (e.g. `DIR/00-lockdown-5.7.51/`):
    /// `trace.jsonl`, `mailboxes/` (NDRs included), `peers/<host>/`, `protocol/` (the layout of
    /// `serve --state-dir`; `mailsim trace --state-dir DIR/<stem>` reads it). A scenario's
    /// directory is emptied before it runs.
    #[arg(long, env = "MAILSIM_RUN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Scenarios run at the same time.
    #[arg(long, env = "MAILSIM_RUN_JOBS", default_value_t = 4)]
    pub jobs: usize,
    /// Longest a scenario may take, in seconds.
    #[arg(long, env = "MAILSIM_RUN_TIMEOUT", default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
}

/// Standard output that stops writing once its reader has gone (`mailsim run | head`): the run
/// goes on, reports are written, and the exit status is the run's.
struct Out {
    closed: bool,
}

impl Out {
    fn line(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("mailsim: writing the report: {e}");
            }
            self.closed = true;
        }
    }
}

/// Runs the scenarios; returns the exit status.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let options = RunOptions {
        timeout: Duration::from_secs(args.timeout.max(1)),
        verbose: args.verbose,
        state_dir: args.state_dir.clone(),
        partition: args.partition,
        ..RunOptions::default()
    };
    if let Some(dir) = &args.state_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    let json = args.json;
    // The world's lint warnings, once per file, before the reports (exo-behaviour §15.5).
    if let Ok(files) = crate::scenario::run::collect_files(&args.paths) {
        for f in files {
            if let Ok(tenant) = crate::lint::load_any(&f) {
                for line in crate::lint::startup_lines(&f.display().to_string(), &tenant, crate::lint::now()) {
                    eprintln!("{line}");
                }
            }
        }
    }
    let bar = super::progress::bar(None, json);
    let mut out = Out { closed: false };
    let (mut passed, mut failed) = (0, 0);
    let reports = run_paths(&args.paths, args.filter.as_deref(), args.jobs, &options, |r| {
        if r.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
        let mut print = || {
            if json {
                out.line(&report::json(r).to_string());
            } else {
                out.line(&report::status_line(r));
                for line in &r.log {
                    out.line(&format!("    {line}"));
                }
            }
            for w in &r.warnings {
                eprintln!("{w}");
            }
        };
        match &bar {
            Some(bar) => {
                bar.suspend(print);
                bar.inc(1);
                bar.set_message(format!("({passed} passed, {failed} failed)"));
            }
            None => print(),
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let reports = reports?;
    let wall = started.elapsed();
    let summary = Summary::of(&reports);
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&reports, wall)).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        out.line(&report::json_summary(&reports, wall).to_string());
    } else {
        text_ending(&mut out, &reports, summary);
    }
    Ok(summary.exit_code())
}

/// After the streamed lines: the summary in file order (when more than one scenario ran), the
/// failures, and `N passed, N failed` last.
fn text_ending(out: &mut Out, reports: &[ScenarioReport], summary: Summary) {
    if reports.len() > 1 {
        out.line("\nsummary (file order):");
        for r in reports {
            out.line(&report::status_line(r));
        }
    }
    let failed: Vec<_> = reports.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        out.line("\nfailures:\n");
        for r in failed {
            out.line(&report::details(r));
        }
    }
    out.line(&summary.line());
}
