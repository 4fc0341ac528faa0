//! The `mailsim` binary: parse arguments, run the subcommand, map the result to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    mailsim::cli::main()
}
