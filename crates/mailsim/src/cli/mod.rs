//! Command line: one subcommand per job, one module per subcommand, and the clap definitions here.
//! Every flag can also come from a `MAILSIM_*` variable. Errors are `anyhow` here; [`main`] prints
//! them with their causes and exits 2 (subcommands return their own exit codes otherwise).

pub mod bench;
pub mod certs;
pub mod demo;
pub mod explain;
pub mod explain_auth;
pub mod run;
pub mod send;
pub mod serve;
pub mod serve_http;
pub mod soak;
pub mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Simulate an Exchange Online tenant's SMTP transport and connectors on loopback.
#[derive(Parser, Debug)]
#[command(name = "mailsim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Built-in demo: tenant endpoint up, a client sends over STARTTLS with a client certificate,
    /// the message shows in the mailbox.
    Demo(demo::DemoArgs),
    /// Run the tenant endpoint (default 127.0.0.1:1025).
    Serve(serve::ServeArgs),
    /// Send one message, swaks-style, and print the transcript.
    Send(send::SendArgs),
    /// Load generator in the spirit of Postfix's smtp-source, with STARTTLS.
    Bench(bench::BenchArgs),
    /// Write the default test PKI (CA, tenant, gateway, partner and faulty certificates).
    Certs(certs::CertsArgs),
    /// Print the message trace written under --state-dir, like Get-MessageTraceV2.
    Trace(trace::TraceArgs),
    /// Explain which inbound connector applies to a connection and what the tenant would reply.
    Explain(explain::ExplainArgs),
    /// Run scenario files (default: scenarios/) in parallel, each in a world of its own.
    Run(run::RunArgs),
    /// N messages through a world with scripted faults, then the conservation check.
    Soak(soak::SoakArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` reports on stdout; the worlds' session logs would drown it.
    let default_log = if matches!(cli.command, Command::Run(_) | Command::Soak(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILSIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result: anyhow::Result<i32> = match cli.command {
        Command::Explain(args) => explain::run(&args),
        Command::Certs(args) => certs::run(&args).map(|_| 0),
        Command::Trace(args) => trace::run(&args),
        command => runtime().and_then(|rt| {
            rt.block_on(async move {
                match command {
                    Command::Demo(args) => demo::run(args).await,
                    Command::Serve(args) => serve::run(args).await.map(|_| 0),
                    Command::Send(args) => send::run(args).await,
                    Command::Bench(args) => bench::run(args).await.map(|_| 0),
                    Command::Run(args) => run::run(args).await,
                    Command::Soak(args) => soak::run(args).await,
                    Command::Explain(_) | Command::Certs(_) | Command::Trace(_) => unreachable!("handled above"),
                }
            })
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("mailsim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
