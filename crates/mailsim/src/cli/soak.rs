//! `mailsim soak`: N messages through a world of its own (local mailboxes, an outbound connector to
//! scripted peers answering 4xx, 5xx, drops and delays), simulated time advanced until the queue
//! is empty, then the conservation check ([`crate::soak`]). Exits 1 when a check fails.

use std::path::PathBuf;
use std::time::Duration;

use crate::soak::{SoakReport, SoakSpec};

/// `mailsim soak` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Messages in all.
    #[arg(long, env = "MAILSIM_MESSAGES", default_value_t = 100_000)]
    pub messages: u64,
    /// Messages per batch; simulated time advances and the queue drains between batches.
    #[arg(long, env = "MAILSIM_BATCH", default_value_t = 10_000)]
    pub batch: u64,
    /// Parallel SMTP sessions into the tenant.
    #[arg(long, env = "MAILSIM_SESSIONS", default_value_t = 8)]
    pub sessions: usize,
    /// Write mailboxes, the trace and protocol logs here (memory then holds no message content).
    #[arg(long, env = "MAILSIM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Stop sending after this many seconds.
    #[arg(long, env = "MAILSIM_TIMEOUT", default_value_t = 1800)]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long, env = "MAILSIM_JSON")]
    pub json: bool,
}

/// Runs the soak; returns the exit code (0 when every check passed).
pub async fn run(args: SoakArgs) -> anyhow::Result<i32> {
    let spec = SoakSpec {
        messages: args.messages,
        batch: args.batch,
        sessions: args.sessions,
        state_dir: args.state_dir,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = crate::soak::run(&spec).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(if report.ok() { 0 } else { 1 })
}

fn mib(b: Option<u64>) -> String {
    b.map_or("n/a".to_string(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
}

/// The report in words.
pub fn text(r: &SoakReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "accepted {} messages ({} recipients) in {:.1} s: {:.0} messages/s; not accepted {}, unsent {}\n",
        r.accepted_messages, r.accepted_recipients, r.elapsed_s, r.messages_per_s, r.not_accepted, r.unsent
    ));
    out.push_str(&format!(
        "delivered {} locally, sent {} to peers, failed {} (NDRs {} generated, {} delivered), still queued {}; \
         {} deferrals on the way\n",
        r.delivered_local, r.sent_remote, r.failed, r.ndrs_generated, r.ndrs_delivered, r.still_queued, r.deferrals
    ));
    out.push_str(&format!("lost {}, duplicated {}\n", r.lost, r.duplicated));
    out.push_str(&format!(
        "store: {} copies, {} evicted from memory, {} write errors; trace: {} events evicted from memory\n",
        r.store_delivered, r.store_evicted, r.store_write_errors, r.trace_evicted
    ));
    out.push_str(&format!(
        "RSS: {} at start, {} after the first batch, {} at the end\n",
        mib(r.rss_start),
        mib(r.rss_first_batch),
        mib(r.rss_end)
    ));
    for p in &r.problems {
        out.push_str(&format!("PROBLEM: {p}\n"));
    }
    out.push_str(if r.ok() { "conservation: ok\n" } else { "conservation: FAILED\n" });
    out
}
