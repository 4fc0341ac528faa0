//! Command line: one subcommand per job, one module per subcommand, and the clap definitions here.
//! Every flag can also come from a `MAILSIM_*` variable ([`command`] lists them all in `--help`;
//! boolean twins accept `1/0`, `true/false`, `yes/no`, `on/off`). Errors are `anyhow` here;
//! [`main`] prints them with their causes and exits 2 (subcommands return their own exit codes
//! otherwise). A closed standard output (`mailsim demo | head`) ends the program quietly.

pub mod bench;
pub mod certs;
pub mod completions;
pub mod demo;
pub mod explain;
pub mod explain_auth;
pub mod explain_cmd;
pub mod explain_outbound;
pub mod explain_sections;
pub mod graph;
pub mod headers;
pub mod import;
pub mod lint;
pub mod progress;
pub mod run;
pub mod send;
pub mod serve;
pub mod serve_http;
pub mod soak;
pub mod trace;
pub mod validate_outbound;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Explain a tenant's decisions for a message, for a tenant or scenario file: inbound
    /// (--source: which inbound connector applies, what the tenant replies) or outbound (--from: the
    /// mail flow rules, each outbound connector considered, the next hop and its TLS check).
    Explain(explain_cmd::ExplainCmd),
    /// Read a saved message's header like Message Header Analyzer: the Received hops and their
    /// delays, authentication verdicts, X-Forefront-Antispam-Report and X-MS-Exchange-* decoded.
    Headers(headers::HeadersArgs),
    /// Validate-OutboundConnector: send a test message through an outbound connector (in a
    /// scenario's world, or a running `serve` with --api) and report each smart host.
    ValidateOutbound(validate_outbound::ValidateOutboundArgs),
    /// Write a tenant file from Get-AcceptedDomain/-InboundConnector/-OutboundConnector/-TransportRule
    /// JSON exports (ConvertTo-Json -Depth 5).
    Import(import::ImportArgs),
    /// Check a tenant (or a scenario's tenant) against the recommended configuration (§15.5 L1-L17 and the seeds' L18-L20).
    Lint(lint::LintArgs),
    /// Run scenario files (default: scenarios/) in parallel, each in a world of its own.
    Run(run::RunArgs),
    /// N messages through a world with scripted faults, then the conservation check.
    Soak(soak::SoakArgs),
    /// Draw a scenario's or a tenant's mail flow (hosts, connectors, MX records, message paths) as SVG and DOT.
    Graph(graph::GraphArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand with --out DIR.
    Man(completions::ManArgs),
}

/// The variables read other than the flags' twins.
const OTHER_ENV: &[(&str, &str)] = &[
    (
        "MAILSIM_LOG",
        "log filter for stderr (tracing's EnvFilter: error, warn, info, debug, trace, or per module as \
         mailsim_io=debug); default info, warn for run and soak",
    ),
    (
        "MAILSIM_WORKERS",
        "threads that run a world (serve, run, soak, demo, graph --run); default one less than the CPUs, \
         at least one",
    ),
];

/// Every `MAILSIM_*` variable a flag of `cmd` reads, with the flags (`serve --listen`) it stands for.
pub fn flag_env_vars(cmd: &clap::Command) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut vars: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let flag = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => {
                    arg.get_value_names().and_then(|v| v.first()).map_or(arg.get_id().to_string(), |v| v.to_string())
                }
            };
            vars.entry(env.to_string_lossy().into_owned()).or_default().push(format!("{} {flag}", sub.get_name()));
        }
    }
    vars
}

fn env_help(cmd: &clap::Command) -> String {
    let mut out = String::from(
        "Environment variables (a flag on the command line wins over its variable; boolean ones accept 1/0, \
         true/false, yes/no, on/off):\n",
    );
    for (name, what) in OTHER_ENV {
        out.push_str(&format!("  {name:<36} {what}\n"));
    }
    for (name, flags) in flag_env_vars(cmd) {
        out.push_str(&format!("  {name:<36} {}\n", flags.join(", ")));
    }
    out.push_str(
        "\nExit status: 0 success; 1 the job ran and found a failure (a scenario, a send refused, a message \
         not delivered); 2 an error (bad flags or files, nothing to run, a world that could not start). \
         `mailsim run --help` details run's.",
    );
    out
}

/// The clap command with the conventions every subcommand shares: boolean flags read their
/// environment twin as `1/0/true/false/yes/no/on/off` (clap's default takes only `true`/`false`),
/// and `--help` lists every variable the program reads.
pub fn command() -> clap::Command {
    let boolish = |arg: clap::Arg| {
        if arg.get_env().is_some() && matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            arg.value_parser(clap::builder::BoolishValueParser::new())
        } else {
            arg
        }
    };
    let cmd = Cli::command().mut_subcommands(move |sub| sub.mut_args(boolish));
    let env = env_help(&cmd);
    cmd.after_long_help(env)
        .after_help("`mailsim --help` lists every MAILSIM_* environment variable and the exit statuses.")
}

/// A reader that went away (`mailsim demo | head`) ends the program quietly with status 0, as
/// it ends `cat`: `println!` panics on a closed pipe (Rust ignores SIGPIPE), so the panic hook
/// recognises that one panic and exits instead of printing it. Everything else panics as before.
/// (Restoring SIGPIPE's default instead would let a write to a closed socket kill a server.)
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    // `run` reports on stdout; the worlds' session logs would drown it.
    let default_log =
        if matches!(cli.command, Command::Run(_) | Command::Soak(_) | Command::Graph(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MAILSIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result: anyhow::Result<i32> = match cli.command {
        Command::Explain(args) => explain_cmd::run(&args),
        Command::Certs(args) => certs::run(&args).map(|_| 0),
        Command::Trace(args) => trace::run(&args),
        Command::Headers(args) => headers::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Lint(args) => lint::run(&args),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
        command => runtime(&command).and_then(|rt| {
            rt.block_on(async move {
                match command {
                    Command::Demo(args) => demo::run(args).await,
                    Command::Serve(args) => serve::run(args).await.map(|_| 0),
                    Command::Send(args) => send::run(args).await,
                    Command::Bench(args) => bench::run(args).await.map(|_| 0),
                    Command::Run(args) => run::run(args).await,
                    Command::Soak(args) => soak::run(args).await,
                    Command::ValidateOutbound(args) => validate_outbound::run(args).await,
                    Command::Graph(args) => graph::run(args).await,
                    Command::Explain(_)
                    | Command::Certs(_)
                    | Command::Trace(_)
                    | Command::Headers(_)
                    | Command::Import(_)
                    | Command::Lint(_)
                    | Command::Completions(_)
                    | Command::Man(_) => unreachable!("handled above"),
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

/// The runtime of a subcommand. A world (serve, run, soak, demo, graph) gets one thread less than
/// the machine has CPUs, at least one, or `MAILSIM_WORKERS`: everything that drives it (the admin's
/// Postfix, a CI client, `mailsim bench`) talks to it over loopback, so it runs on the same machine
/// and needs a CPU of its own; one thread fewer also means fewer wake-ups handed between threads.
/// The clients (send, bench, validate-outbound) keep tokio's default of one per CPU.
fn runtime(command: &Command) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(command, Command::Serve(_) | Command::Run(_) | Command::Soak(_) | Command::Demo(_) | Command::Graph(_))
    {
        builder.worker_threads(world_workers(std::env::var("MAILSIM_WORKERS").ok().as_deref())?);
    }
    Ok(builder.enable_all().build()?)
}

/// Worker threads of a world: `MAILSIM_WORKERS` when set (a positive number), else one less than
/// the CPUs, at least one.
fn world_workers(var: Option<&str>) -> anyhow::Result<usize> {
    match var {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => anyhow::bail!("MAILSIM_WORKERS={v:?}: expected a number of threads, at least 1"),
        },
        None => {
            let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            Ok(cpus.saturating_sub(1).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::world_workers;

    #[test]
    fn world_workers_leave_a_cpu_to_the_drivers_unless_told() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(world_workers(None).unwrap(), cpus.saturating_sub(1).max(1));
        assert_eq!(world_workers(Some("3")).unwrap(), 3);
        assert_eq!(world_workers(Some(" 1 ")).unwrap(), 1);
        for bad in ["0", "-1", "two", ""] {
            let e = world_workers(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("MAILSIM_WORKERS"), "{e}");
        }
    }
}
