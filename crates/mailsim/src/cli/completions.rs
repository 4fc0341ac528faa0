//! `mailsim completions SHELL` and `mailsim man`: shell completion and man pages generated from the
//! clap definitions ([`super::command`]), so they never drift from the flags.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;

/// `mailsim completions` arguments.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. E.g. `mailsim completions bash >
    /// /etc/bash_completion.d/mailsim`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `mailsim man` arguments.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write `mailsim.1` and a page per subcommand (`mailsim-run.1`, ...) into this directory
    /// instead of printing `mailsim.1`.
    #[arg(long, env = "MAILSIM_MAN_OUT", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "mailsim", &mut buf);
    print_quietly(&buf)
}

/// Prints the man page, or writes every page to `--out`.
pub fn man(args: &ManArgs) -> anyhow::Result<i32> {
    let cmd = super::command();
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
            println!("wrote man pages to {} (man -l {}/mailsim.1)", dir.display(), dir.display());
            Ok(0)
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            print_quietly(&buf)
        }
    }
}

fn print_quietly(bytes: &[u8]) -> anyhow::Result<i32> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}
