//! `mailsim headers FILE|-`: a saved message (or only its header block) read the way Message
//! Header Analyzer shows it (exo-behaviour §8.5, §14.3, §14.4, §14.7, §7): the Received chain as a
//! table of hops with the delay between them, the authentication verdicts, the
//! `X-Forefront-Antispam-Report` and `X-MS-Exchange-*` fields decoded, and what they say about the
//! connector that accepted the message. The reading is [`mailsim_core::header_report::analyze`]
//! (pure); this module reads the input and prints text or `--json`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use mailsim_core::header_report::{HeaderReport, analyze};
use mailsim_core::received_chain::format_delay;

/// The largest input read (a header block is small; a whole message may carry attachments).
const MAX_INPUT: u64 = 64 * 1024 * 1024;

/// `mailsim headers` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct HeadersArgs {
    /// A saved message (.eml) or a header block copied from a mail client; `-` reads stdin.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, env = "MAILSIM_HEADERS_JSON")]
    pub json: bool,
}

/// Reads the input: at most [`MAX_INPUT`] bytes, only the header section is kept.
fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().take(MAX_INPUT).read_to_end(&mut data)?;
    } else {
        std::fs::File::open(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?
            .take(MAX_INPUT)
            .read_to_end(&mut data)?;
    }
    // Copied from a mail client's "view source" with a leading blank line or indentation: trim the
    // start so the header section is found.
    let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
    let len = mailsim_core::header_section::section_len(&data[start..]);
    Ok(data[start..start + len].to_vec())
}

/// Runs `mailsim headers`: prints the report; exit code 0, or 1 when the input has no header field.
pub fn run(args: &HeadersArgs) -> anyhow::Result<i32> {
    let data = read_input(&args.input)?;
    let report = analyze(&data);
    let empty = report.hops.is_empty() && report.summary.is_empty() && report.exchange.is_empty();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    if empty {
        eprintln!("mailsim headers: no Received, Subject, From or X-MS-Exchange-* field in {}", args.input.display());
        return Ok(1);
    }
    Ok(0)
}

fn cell(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// The text report.
pub fn render_text(r: &HeaderReport) -> String {
    let mut out = String::new();
    for (name, value) in &r.summary {
        let _ = writeln!(out, "{name:<11} {value}");
    }
    let total = r.total_delay_ms.map_or(String::new(), |d| format!(", {} in total", format_delay(d)));
    let _ = writeln!(out, "\nHops        {} Received header(s), oldest first{total}", r.hops.len());
    let rows: Vec<[String; 7]> = r
        .hops
        .iter()
        .map(|h| {
            let from = h.from.as_ref().map(|f| match &f.address {
                Some(a) if a != &f.name => format!("{} ({a})", f.name),
                _ => f.name.clone(),
            });
            let tls = h.tls.as_ref().map(|t| {
                let parts: Vec<&str> = [t.version.as_deref(), t.cipher.as_deref()].into_iter().flatten().collect();
                if parts.is_empty() { "yes".to_string() } else { parts.join(" ") }
            });
            [
                h.hop.to_string(),
                h.delay_text().unwrap_or_else(|| "-".to_string()),
                cell(from.as_deref()),
                cell(h.by.as_ref().map(|b| b.name.as_str())),
                cell(h.with.as_deref()),
                cell(tls.as_deref()),
                h.time.map_or_else(|| "-".to_string(), |t| t.iso8601()),
            ]
        })
        .collect();
    let header = ["#", "delay", "from", "by", "with", "TLS", "time (UTC)"].map(str::to_string);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::from("  ");
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !r.authentication.is_empty() || !r.received_spf.is_empty() {
        let _ = writeln!(out, "\nAuthentication");
        for a in &r.authentication {
            let id = a.authserv_id.as_ref().map_or(String::new(), |i| format!(" ({i})"));
            let _ = writeln!(out, "  {}{id}", a.header);
            for x in &a.results {
                let props: Vec<String> = x.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let comment = x.comment.as_ref().map_or(String::new(), |c| format!(" ({c})"));
                let _ = writeln!(out, "    {:<9} {}{comment} {}", x.method, x.result, props.join(" "));
                if let Some(m) = &x.meaning {
                    let _ = writeln!(out, "              {m}");
                }
            }
        }
        for s in &r.received_spf {
            let props: Vec<String> = s.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  Received-SPF {} {}", s.result, props.join(" "));
        }
    }
    if !r.antispam.is_empty() {
        let _ = writeln!(out, "\nX-Forefront-Antispam-Report");
        for d in &r.antispam {
            let meaning = d.meaning.as_ref().map_or(String::new(), |m| format!("  {m}"));
            let line = format!("  {:<5} {}{meaning}", d.name, d.value);
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if !r.exchange.is_empty() {
        let _ = writeln!(out, "\nX-MS-Exchange-*");
        for d in &r.exchange {
            let _ = writeln!(out, "  {}: {}", d.name, d.value);
            if let Some(m) = &d.meaning {
                let _ = writeln!(out, "      {m}");
            }
        }
    }
    if !r.connector.is_empty() {
        let _ = writeln!(out, "\nConnector");
        for s in &r.connector {
            let _ = writeln!(out, "  {s}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/headers"))
    }

    /// Golden file `tests/headers/NAME`; `MAILSIM_BLESS=1` rewrites it, a mismatch writes
    /// `NAME.actual` beside it.
    fn golden(name: &str, actual: &str) {
        let path = dir().join(name);
        if std::env::var_os("MAILSIM_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        let actual_path = dir().join(format!("{name}.actual"));
        if expected != actual {
            std::fs::write(&actual_path, actual).unwrap();
            panic!("{} differs; see {}, bless with MAILSIM_BLESS=1", path.display(), actual_path.display());
        }
        let _ = std::fs::remove_file(actual_path);
    }

    /// A message mailsim delivered through a gateway (saved by the e2e test
    /// `headers::headers_of_a_message_delivered_through_a_gateway`).
    #[test]
    fn golden_message_mailsim_delivered_through_a_gateway() {
        let data = read_input(&dir().join("delivered-through-gateway.eml")).unwrap();
        golden("delivered-through-gateway.txt", &render_text(&analyze(&data)));
    }

    /// EXO's documented forms (exo-behaviour §8.5, §14.3, §14.7): a gateway in front with Enhanced
    /// Filtering, a mailbox hop, Authentication-Results with compauth, Received-SPF, the antispam
    /// report. Text and JSON.
    #[test]
    fn golden_exo_header_with_enhanced_filtering() {
        let data = read_input(&dir().join("exo-gateway-enhanced-filtering.eml")).unwrap();
        let r = analyze(&data);
        golden("exo-gateway-enhanced-filtering.txt", &render_text(&r));
        golden("exo-gateway-enhanced-filtering.json", &format!("{}\n", serde_json::to_string_pretty(&r).unwrap()));
    }

    #[test]
    fn a_header_block_pasted_with_leading_blank_lines_and_lf_ends() {
        let path = std::env::temp_dir().join(format!("mailsim-headers-{}.txt", std::process::id()));
        std::fs::write(
            &path,
            "\n\n  Received: from a (1.2.3.4) by b with ESMTP; Mon, 7 Dec 2026 09:00:00 +0000\nSubject: x\n",
        )
        .unwrap();
        let data = read_input(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let r = analyze(&data);
        assert_eq!(r.hops.len(), 1);
        assert_eq!(r.summary, vec![("Subject".to_string(), "x".to_string())]);
    }
}
