//! `mailsim graph SCENARIO|TENANT`: the mail-flow picture ([`crate::graph`]) written as SVG and
//! DOT. A scenario's world is brought up on loopback (so the picture shows the loopback address of
//! each host next to its declared one) and, with `--run`, its steps are played first so that each
//! message's path is drawn coloured by its outcome; `--trace` draws the paths of a trace written
//! earlier (`<state-dir>/trace.jsonl` of `mailsim serve` or `run`). A tenant file alone gives its
//! connectors and accepted domains.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mailsim_core::trace::TraceEvent;

use crate::scenario::run::{RunOptions, play_on};

/// `mailsim graph` flags.
#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// A scenario file or a tenant file (TOML).
    pub file: PathBuf,
    /// The SVG to write; the DOT goes next to it with `.dot`. Default: the file's stem, in the
    /// current directory.
    #[arg(short, long, env = "MAILSIM_GRAPH_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Play the scenario's steps first and draw each message's path, coloured by outcome.
    #[arg(long, env = "MAILSIM_GRAPH_RUN")]
    pub run: bool,
    /// Draw the paths of the messages in this trace (a `trace.jsonl`).
    #[arg(long, value_name = "TRACE_JSONL", env = "MAILSIM_GRAPH_TRACE")]
    pub trace: Option<PathBuf>,
}

/// Whether `text` is a scenario (it has a scenario's tables) rather than a tenant file.
pub fn is_scenario(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .map(|t| ["scenario", "host", "step", "dns", "retry"].iter().any(|k| t.contains_key(*k)))
        .unwrap_or(false)
}

fn read_trace(path: &Path) -> anyhow::Result<Vec<TraceEvent>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}: not a trace event", path.display(), n + 1))
        })
        .collect()
}

/// Runs `mailsim graph`; returns the exit code.
pub async fn run(args: GraphArgs) -> anyhow::Result<i32> {
    let text = crate::config_file::read(&args.file)?;
    let trace = args.trace.as_deref().map(read_trace).transpose()?;
    let graph = if is_scenario(&text) {
        let scenario = crate::scenario::parse(&text, &args.file)?;
        let sim = scenario.start().await.with_context(|| format!("starting the world of {}", args.file.display()))?;
        if args.run
            && let Err(failure) = play_on(&sim, &scenario, &RunOptions::default()).await
        {
            eprintln!(
                "note: {}: {} (expected {}, got {}); the picture shows the world as it is",
                failure.location, failure.field, failure.expected, failure.actual
            );
        }
        let graph = crate::graph::of_simulation(&sim, trace.as_deref());
        sim.stop().await;
        graph
    } else {
        anyhow::ensure!(!args.run, "--run needs a scenario file; {} is a tenant file", args.file.display());
        let tenant = mailsim_core::tenant::load::load(&text, &args.file.display().to_string())?;
        crate::graph::of_tenant(&tenant, trace.as_deref().unwrap_or_default())
    };
    let svg_path = args.output.clone().unwrap_or_else(|| {
        let stem = args.file.file_stem().map_or_else(|| "graph".into(), |s| s.to_string_lossy().to_string());
        PathBuf::from(format!("{stem}.svg"))
    });
    let dot_path = svg_path.with_extension("dot");
    std::fs::write(&dot_path, graph.to_dot()).with_context(|| format!("writing {}", dot_path.display()))?;
    std::fs::write(&svg_path, graph.to_svg()).with_context(|| format!("writing {}", svg_path.display()))?;
    println!("wrote {} and {}", svg_path.display(), dot_path.display());
    Ok(0)
}
