//! What a scenario run found, and its three forms: text for people (one line per scenario, then
//! the failures, then `N passed, N failed`), JSON lines for tools (versioned: [`JSON_VERSION`],
//! documented in `docs/run-report.md`), and JUnit XML for CI.
//!
//! The JUnit XML validates against the common JUnit schema (the Apache Ant schema that Jenkins'
//! xUnit plugin, pytest's `xunit2` and most readers follow; vendored as
//! `docs/schemas/JUnit.xsd` and checked in a test): one `<testsuite>` per scenario file, because
//! the schema has no `file` or `line` attribute on `<testcase>` and a suite's `<properties>` is the
//! place where it allows them. The failure text starts with `file:line`, which GitHub's JUnit
//! reporters and GitLab read from a failure's text when there is no attribute.
//!
//! Names as Jenkins shows them: Jenkins splits `classname` at its last dot into package and class,
//! so the classname is the scenario's directory with dots replaced (`scenarios`), and the test
//! name is the scenario's name as written (`00-lockdown-5.7.51`), which Jenkins keeps whole.

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
    /// What each step did (`--verbose`): empty unless [`RunOptions::verbose`](super::RunOptions).
    pub log: Vec<String>,
}

/// The version of the `--json` report's objects; raised when a field changes meaning or goes.
pub const JSON_VERSION: u32 = 1;

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

    /// Whether the scenario could not be run as written (a malformed file, a world that did not
    /// start, a runner that broke) rather than ran and found a difference: a JUnit `<error>`.
    pub fn errored(&self) -> bool {
        match &self.verdict {
            Verdict::Passed => false,
            Verdict::Malformed(_) => true,
            Verdict::Failed(f) => f.is_error(),
        }
    }
}

impl Failure {
    /// The world did not start or the runner broke: nothing was checked.
    pub fn is_error(&self) -> bool {
        self.step.is_none() && (self.field == "world" || self.field == "runner")
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
        Verdict::Failed(f) if f.is_error() => {
            ("error", serde_json::to_value(f).unwrap_or_default(), serde_json::Value::Null)
        }
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
        "version": JSON_VERSION,
        "name": r.name,
        "file": r.file,
        "status": status,
        "duration_ms": r.duration.as_millis() as u64,
        "failure": failure,
        "error": error,
        "warnings": r.warnings,
        "log": r.log,
    })
}

/// The summary object that ends `--json` output.
pub fn json_summary(reports: &[ScenarioReport], wall: Duration) -> serde_json::Value {
    let s = Summary::of(reports);
    let errors = reports.iter().filter(|r| r.errored()).count();
    json!({ "version": JSON_VERSION, "summary": { "passed": s.passed, "failed": s.failed, "malformed": s.malformed, "errors": errors, "duration_ms": wall.as_millis() as u64 } })
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

/// The JUnit classname of a scenario file: its directory's last component with dots replaced, so
/// that Jenkins (which splits a classname at its last dot) shows it whole; `scenarios` otherwise.
pub fn junit_classname(file: &str) -> String {
    let dir = std::path::Path::new(file)
        .parent()
        .and_then(|p| p.components().rfind(|c| matches!(c, std::path::Component::Normal(_))))
        .map(|c| c.as_os_str().to_string_lossy().replace('.', "_"))
        .unwrap_or_default();
    if dir.trim().is_empty() { "scenarios".to_string() } else { dir }
}

/// The `file:line` a report points at: the failed expectation's, the malformed value's, or the
/// file's first line.
pub fn location(r: &ScenarioReport) -> (String, usize) {
    match &r.verdict {
        Verdict::Passed => (r.file.clone(), 1),
        Verdict::Malformed(e) => (r.file.clone(), e.line.max(1)),
        Verdict::Failed(f) => {
            let line = f.location.rsplit_once(':').and_then(|(_, l)| l.parse().ok()).unwrap_or(1);
            (r.file.clone(), line)
        }
    }
}

/// UTC now as the schema's timestamp (`YYYY-MM-DDThh:mm:ss`, no zone).
fn timestamp_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "localhost".to_string())
}

/// The run as JUnit XML, valid against the common JUnit schema (`docs/schemas/JUnit.xsd`): a
/// `<testsuite>` per scenario file with its `file` and `line` as properties, one `<testcase>`
/// (classname [`junit_classname`], name the scenario's), a `<failure>` when an expectation did not
/// hold and an `<error>` when the scenario could not run (malformed file, world start-up, runner),
/// and the scenario's `--verbose` log and details in `<system-out>`.
pub fn junit(reports: &[ScenarioReport], _wall: Duration) -> String {
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let timestamp = timestamp_now();
    let hostname = xml_escape(&hostname());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (id, r) in reports.iter().enumerate() {
        let classname = junit_classname(&r.file);
        let (errors, failures) = match (r.passed(), r.errored()) {
            (true, _) => (0, 0),
            (false, true) => (1, 0),
            (false, false) => (0, 1),
        };
        let _ = writeln!(
            out,
            "  <testsuite name=\"{name}\" package=\"{package}\" id=\"{id}\" timestamp=\"{timestamp}\" hostname=\"{hostname}\" tests=\"1\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time}\">",
            name = xml_escape(&r.name),
            package = xml_escape(&classname),
            time = secs(r.duration),
        );
        let (file, line) = location(r);
        let _ = writeln!(
            out,
            "    <properties>\n      <property name=\"file\" value=\"{}\"/>\n      <property name=\"line\" value=\"{line}\"/>\n    </properties>",
            xml_escape(&file)
        );
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
            xml_escape(&r.name),
            xml_escape(&classname),
            secs(r.duration)
        );
        let (element, kind, message) = match &r.verdict {
            Verdict::Passed => ("", "", String::new()),
            Verdict::Failed(f) => (
                if f.is_error() { "error" } else { "failure" },
                if f.is_error() { f.field.as_str() } else { "expectation" },
                if f.step_label == f.field {
                    format!("{}: expected {}, got {}", f.field, f.expected, f.actual)
                } else {
                    format!("{}: {}: expected {}, got {}", f.step_label, f.field, f.expected, f.actual)
                },
            ),
            Verdict::Malformed(e) => ("error", "malformed", e.to_string()),
        };
        if element.is_empty() {
            out.push_str("/>\n");
        } else {
            let message = message.lines().next().unwrap_or_default().to_string();
            let _ = writeln!(
                out,
                ">\n      <{element} message=\"{}\" type=\"{kind}\">{}</{element}>\n    </testcase>",
                xml_escape(&message),
                xml_escape(&format!("{file}:{line}\n{}", details(r)))
            );
        }
        let mut system_out = r.log.join("\n");
        if !r.log.is_empty() {
            system_out.push('\n');
        }
        for w in &r.warnings {
            system_out.push_str(w);
            system_out.push('\n');
        }
        let _ = writeln!(
            out,
            "    <system-out>{}</system-out>\n    <system-err></system-err>\n  </testsuite>",
            xml_escape(&system_out)
        );
    }
    out.push_str("</testsuites>\n");
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
