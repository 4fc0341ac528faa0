//! `mailsim lint TENANT|SCENARIO`: the §15.5 checks ([`crate::lint`]) on a tenant file or on a
//! scenario's tenant. Output as text (default), `--json` or `--sarif` (SARIF 2.1.0, for CI code
//! scanning). Exit status: 0 when no finding reaches `--deny` (default `error`), 1 when one does,
//! 2 when the file cannot be loaded.

use std::path::PathBuf;

use crate::lint::{self, Input, Severity};

/// What to lint and how to report.
#[derive(clap::Args, Debug, Clone)]
pub struct LintArgs {
    /// A tenant file or a scenario file.
    #[arg(value_name = "TENANT|SCENARIO")]
    pub path: PathBuf,
    /// Print the findings as JSON.
    #[arg(long, conflicts_with = "sarif")]
    pub json: bool,
    /// Print the findings as SARIF 2.1.0.
    #[arg(long)]
    pub sarif: bool,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value = "error", env = "MAILSIM_LINT_DENY")]
    pub deny: DenyLevel,
}

/// `--deny`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DenyLevel {
    /// Any finding.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// Runs the lint; returns the exit status.
pub fn run(args: &LintArgs) -> anyhow::Result<i32> {
    let tenant = lint::load_any(&args.path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = lint::now();
    let findings = lint::lint(&Input { tenant: &tenant, now });
    let file = args.path.display().to_string();
    if args.sarif {
        println!("{}", serde_json::to_string_pretty(&lint::sarif::log(&file, &findings))?);
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&lint::to_json(&file, &findings))?);
    } else {
        print!("{}", lint::text(&file, &findings));
    }
    let deny = match args.deny {
        DenyLevel::Info => Severity::Info,
        DenyLevel::Warn => Severity::Warn,
        DenyLevel::Error => Severity::Error,
    };
    Ok(i32::from(lint::highest(&findings).is_some_and(|h| h >= deny)))
}
