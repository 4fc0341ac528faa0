//! `mailsim import`: Exchange Online exports (`Get-* | ConvertTo-Json -Depth 5`) → a tenant file.
//! The logic is [`crate::import`]'s; this module reads the files, writes the result and prints the
//! warnings. Exit status: 0 written (warnings on stderr), 1 an input refused (the error names the
//! file, the object's Identity and the JSON pointer of the value), 2 a usage or output error.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::import::{self, EXIT_REFUSED};

/// Where the exports are and where the tenant goes.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// JSON exports of Get-AcceptedDomain, Get-InboundConnector, Get-OutboundConnector and
    /// Get-TransportRule (each optional), or folders of `.json` files. Which cmdlet wrote a file is
    /// read from its content.
    #[arg(required = true, value_name = "JSON|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Write the tenant file here (default: standard output).
    #[arg(long, short = 'o', env = "MAILSIM_IMPORT_OUTPUT", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Runs the import; returns the exit status.
pub fn run(args: &ImportArgs) -> anyhow::Result<i32> {
    let outcome = import::expand_paths(&args.inputs).and_then(|files| {
        let mut inputs = Vec::with_capacity(files.len());
        for f in &files {
            inputs.push((f.display().to_string(), import::read_input(f)?));
        }
        import::import(&inputs)
    });
    let imported = match outcome {
        Ok(i) => i,
        Err(e) => {
            eprintln!("mailsim import: {e}");
            return Ok(EXIT_REFUSED);
        }
    };
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let counts: Vec<String> = imported.counts.iter().map(|(c, n)| format!("{n} from {}", c.name())).collect();
    match &args.output {
        Some(path) => {
            std::fs::write(path, &imported.toml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} ({})",
                path.display(),
                if counts.is_empty() { "no objects".into() } else { counts.join(", ") }
            );
        }
        None => print!("{}", imported.toml),
    }
    Ok(0)
}
