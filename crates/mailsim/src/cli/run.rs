//! `mailsim run [PATH...]`: runs scenario files (default `scenarios/`) in parallel, each in a world
//! of its own on loopback, and prints one line per scenario, the failures (step, expected vs
//! actual, SMTP transcript) and `N passed, N failed`. Exit status: 0 when all passed, 1 when one
//! failed, 2 when a file is malformed.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::scenario::report::{self, Summary};
use crate::scenario::{RunOptions, run_paths};

/// `mailsim run` flags.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scenario files or directories (a directory's `*.toml` files).
    #[arg(default_value = "scenarios", env = "MAILSIM_RUN_PATHS", value_delimiter = ',')]
    pub paths: Vec<PathBuf>,
    /// Only scenarios whose name contains this text.
    #[arg(long, env = "MAILSIM_RUN_FILTER", value_name = "NAME")]
    pub filter: Option<String>,
    /// One JSON object per scenario, then a summary object, instead of text.
    #[arg(long, env = "MAILSIM_RUN_JSON")]
    pub json: bool,
    /// Also write a JUnit XML report here.
    #[arg(long, env = "MAILSIM_RUN_JUNIT", value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Scenarios run at the same time.
    #[arg(long, env = "MAILSIM_RUN_JOBS", default_value_t = 4)]
    pub jobs: usize,
    /// Longest a scenario may take, in seconds.
    #[arg(long, env = "MAILSIM_RUN_TIMEOUT", default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
}

/// Runs the scenarios; returns the exit status.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let options = RunOptions { timeout: Duration::from_secs(args.timeout.max(1)), ..RunOptions::default() };
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
    let reports = run_paths(&args.paths, args.filter.as_deref(), args.jobs, &options, |r| {
        let mut out = std::io::stdout().lock();
        let _ = if json { writeln!(out, "{}", report::json(r)) } else { writeln!(out, "{}", report::status_line(r)) };
        let _ = out.flush();
        for w in &r.warnings {
            eprintln!("{w}");
        }
    })
    .await?;
    let wall = started.elapsed();
    let summary = Summary::of(&reports);
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&reports, wall)).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", report::json_summary(&reports, wall))?;
    } else {
        let failed: Vec<_> = reports.iter().filter(|r| !r.passed()).collect();
        if !failed.is_empty() {
            writeln!(out, "\nfailures:\n")?;
            for r in failed {
                writeln!(out, "{}", report::details(r))?;
            }
        }
        writeln!(out, "{}", summary.line())?;
    }
    Ok(summary.exit_code())
}
