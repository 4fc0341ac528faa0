//! `mailsim validate-outbound CONNECTOR [SCENARIO | --api ADDR]`: the `Validate-OutboundConnector`
//! counterpart (exo-behaviour §8.6). With a scenario file, its world is started, the connector
//! validated ([`crate::validate_outbound`]) and the world stopped; with `--api`, a running
//! `mailsim serve` does it (`POST /api/v1/connectors/{name}/validate`). Exit 0 when the validation
//! passed, 1 when it failed, 2 on bad input.

use std::net::SocketAddr;
use std::path::PathBuf;

use mailsim_core::addr::EmailAddress;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::validate_outbound::{ValidationReport, render_text, validate};

/// `mailsim validate-outbound` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ValidateOutboundArgs {
    /// The outbound connector's Name.
    #[arg(value_name = "CONNECTOR")]
    pub connector: String,
    /// A scenario file: its world is started for the validation and stopped after.
    #[arg(value_name = "SCENARIO", required_unless_present = "api", conflicts_with = "api")]
    pub scenario: Option<PathBuf>,
    /// Validate in a running `mailsim serve` through its HTTP API (e.g. 127.0.0.1:8025).
    #[arg(long, env = "MAILSIM_VALIDATE_API", value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// A recipient of the test message (repeatable; default: the connector's ValidationRecipients,
    /// else validation@ its first RecipientDomains entry).
    #[arg(long = "rcpt", value_name = "ADDR", value_delimiter = ',', env = "MAILSIM_VALIDATE_RCPT")]
    pub rcpt: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long, env = "MAILSIM_VALIDATE_JSON")]
    pub json: bool,
}

/// Runs the validation and prints the report.
pub async fn run(args: ValidateOutboundArgs) -> anyhow::Result<i32> {
    let rcpts = args
        .rcpt
        .iter()
        .map(|r| r.parse::<EmailAddress>().map_err(|e| anyhow::anyhow!("--rcpt {r:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = match (&args.scenario, args.api) {
        (Some(path), _) => {
            let scenario = crate::scenario::load_file(path)?;
            let sim = crate::sim::Simulation::start(scenario.world)
                .await
                .map_err(|e| anyhow::anyhow!("starting the world of {}: {e}", path.display()))?;
            let report = validate(sim.endpoint(), &args.connector, &rcpts).await;
            sim.stop().await;
            report?
        }
        (None, Some(addr)) => via_api(addr, &args.connector, &args.rcpt).await?,
        (None, None) => anyhow::bail!("give a scenario file or --api ADDR"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(if report.passed { 0 } else { 1 })
}

/// One `POST` to the live world's API. Hand-written HTTP/1.1 (one request, `Connection: close`,
/// loopback only): the workspace has no HTTP client crate, and this needs none of one's features.
pub async fn via_api(addr: SocketAddr, connector: &str, rcpts: &[String]) -> anyhow::Result<ValidationReport> {
    let body = serde_json::json!({ "recipients": rcpts }).to_string();
    let path = format!("/api/v1/connectors/{}/validate", percent_encode(connector));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the mailsim API at {addr}: {e} (is `mailsim serve` running?)"))?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(16 * 1024 * 1024).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("the API answered {status}: {detail}");
    }
    serde_json::from_str(body).map_err(|e| anyhow::anyhow!("the API's answer is not a validation report: {e}"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
