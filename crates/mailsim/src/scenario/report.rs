//! What a scenario run found, and its three forms: text for people (one line per scenario, then
//! the failures, then `N passed, N failed`), JSON lines for tools, and JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use mailsim_core::diagnostics::ConfigError;
use serde_json::json;

/// The result of one scenario file.
#[derive(Clone, Debug)]
pub struct ScenarioReport {
    /// The scenario's name (the file stem when the file did not load).
    pub name: String,
    /// The file, as given.
    pub file: String,
    /// Wall time of the run.
    pub duration: Duration,
    /// Passed, failed, or malformed.
    pub verdict: Verdict,
    /// The tenant loader's warnings.
    pub warnings: Vec<String>,
}

/// How a scenario ended.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Every expectation held.
    Passed,
    /// An expectation failed, or the world could not do what a step asked.
    Failed(Box<Failure>),
    /// The file did not load; nothing ran.
    Malformed(ConfigError),
}

/// The first thing that went wrong in a scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The 1-based step, if the failure belongs to one.
    pub step: Option<usize>,
    /// `step[3]` or `step[3] "name"`; `world` for start-up problems.
    pub step_label: String,
    /// `file:line` of the failed expectation (or of the step).
    pub location: String,
    /// The field, e.g. `step[3].expect.reply`.
    pub field: String,
    /// What was expected.
    pub expected: String,
    /// What happened.
    pub actual: String,
    /// What the transcript lines are.
    pub transcript_title: String,
    /// The SMTP transcript of the hop concerned (or trace lines).
    pub transcript: Vec<String>,
}

impl ScenarioReport {
    /// Whether the scenario passed.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Passed)
    }
}

/// Counts over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed, malformed ones included.
    pub failed: usize,
    /// Of the failed, those whose file did not load.
    pub malformed: usize,
}

impl Summary {
    /// Counts `reports`.
    pub fn of(reports: &[ScenarioReport]) -> Self {
        let mut s = Summary::default();
        for r in reports {
            match r.verdict {
                Verdict::Passed => s.passed += 1,
                Verdict::Failed(_) => s.failed += 1,
                Verdict::Malformed(_) => {
                    s.failed += 1;
                    s.malformed += 1;
                }
            }
        }
        s
    }

    /// 0 when everything passed, 2 when a file was malformed, 1 for other failures.
    pub fn exit_code(&self) -> i32 {
        if self.malformed > 0 {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }

    /// `N passed, N failed`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// `ok   name (123 ms)` or `FAIL name (123 ms)`.
pub fn status_line(r: &ScenarioReport) -> String {
    let word = if r.passed() { "ok  " } else { "FAIL" };
    let extra = match &r.verdict {
        Verdict::Malformed(_) => ", malformed".to_string(),
        Verdict::Failed(f) if f.step.is_some() => format!(", {}", f.step_label),
        _ => String::new(),
    };
    format!("{word} {} ({} ms{extra})", r.name, r.duration.as_millis())
}

/// The explanation of a failed scenario (empty for a passed one).
pub fn details(r: &ScenarioReport) -> String {
    let mut out = String::new();
    match &r.verdict {
        Verdict::Passed => {}
        Verdict::Malformed(e) => {
            let _ = writeln!(out, "---- {} ({}) ----", r.name, r.file);
            let _ = writeln!(out, "{e}");
        }
        Verdict::Failed(f) => {
            let _ = writeln!(out, "---- {} ({}) ----", r.name, r.file);
            let _ = writeln!(out, "{} at {}: {}", f.step_label, f.location, f.field);
            let _ = writeln!(out, "  expected: {}", f.expected);
            let _ = writeln!(out, "  actual:   {}", f.actual.replace('\n', "\n            "));
            if !f.transcript.is_empty() {
                let _ = writeln!(out, "  {}:", f.transcript_title);
                for line in &f.transcript {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
    out
}

/// The whole text report: status lines, the failures, and `N passed, N failed` last.
pub fn text(reports: &[ScenarioReport]) -> String {
    let mut out = String::new();
    for r in reports {
        out.push_str(&status_line(r));
        out.push('\n');
    }
    let failures: Vec<String> = reports.iter().filter(|r| !r.passed()).map(details).collect();
    if !failures.is_empty() {
        out.push_str("\nfailures:\n\n");
        for f in failures {
            out.push_str(&f);
            out.push('\n');
        }
    }
    out.push_str(&Summary::of(reports).line());
    out.push('\n');
    out
}

/// One scenario as a JSON object.
pub fn json(r: &ScenarioReport) -> serde_json::Value {
    let (status, failure, error) = match &r.verdict {
        Verdict::Passed => ("passed", serde_json::Value::Null, serde_json::Value::Null),
        Verdict::Failed(f) => ("failed", serde_json::to_value(f).unwrap_or_default(), serde_json::Value::Null),
        Verdict::Malformed(e) => (
            "malformed",
            serde_json::Value::Null,
            json!({
                "file": e.file, "line": e.line, "column": e.column, "field": e.field,
                "message": e.message, "hint": e.hint, "text": e.to_string(),
            }),
        ),
    };
    json!({
        "name": r.name,
        "file": r.file,
        "status": status,
        "duration_ms": r.duration.as_millis() as u64,
        "failure": failure,
        "error": error,
        "warnings": r.warnings,
    })
}

/// The summary object that ends `--json` output.
pub fn json_summary(reports: &[ScenarioReport], wall: Duration) -> serde_json::Value {
    let s = Summary::of(reports);
    json!({ "summary": { "passed": s.passed, "failed": s.failed, "malformed": s.malformed, "duration_ms": wall.as_millis() as u64 } })
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The run as JUnit XML: one `<testsuite>` with a `<testcase>` per scenario and a `<failure>` in
/// each failed one (malformed files too, with `type="malformed"`).
pub fn junit(reports: &[ScenarioReport], wall: Duration) -> String {
    let s = Summary::of(reports);
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"mailsim\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{}\">",
        reports.len(),
        s.failed,
        secs(wall)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"mailsim scenarios\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{}\">",
        reports.len(),
        s.failed,
        secs(wall)
    );
    for r in reports {
        let stem =
            std::path::Path::new(&r.file).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"scenarios.{}\" file=\"{}\" time=\"{}\"",
            xml_escape(&r.name),
            xml_escape(&stem),
            xml_escape(&r.file),
            secs(r.duration)
        );
        let (kind, message) = match &r.verdict {
            Verdict::Passed => {
                out.push_str("/>\n");
                continue;
            }
            Verdict::Failed(f) => {
                ("expectation", format!("{}: {}: expected {}, got {}", f.step_label, f.field, f.expected, f.actual))
            }
            Verdict::Malformed(e) => ("malformed", e.to_string()),
        };
        let message = message.lines().next().unwrap_or_default().to_string();
        let _ = writeln!(out, ">");
        let _ = writeln!(
            out,
            "      <failure message=\"{}\" type=\"{kind}\">{}</failure>",
            xml_escape(&message),
            xml_escape(&details(r))
        );
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}"), "a&lt;b&gt;&amp;&quot;&apos;\u{FFFD}");
    }
}
