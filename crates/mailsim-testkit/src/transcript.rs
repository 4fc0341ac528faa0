//! Golden SMTP transcripts (docs/architecture.md "Transcript format"; Postfix `.in`/`.ref`).
//!
//! ```text
//! # host: internet              the sending host's role (its loopback address is the source)
//! C: EHLO client.test           a line the client sends (CRLF added)
//! S: 250-... Hello [127.0.0.50] a server line that must match exactly
//! S~ 220 <*> ready at <*>       a server line matched with `<*>` wildcards (volatile text)
//! ```
//! Consecutive `C:` lines are written in one go (pipelined); the `S` lines after them are the
//! replies expected, in order. On a mismatch the runner writes `<name>.actual` next to the golden
//! file; `MAILSIM_BLESS=1` rewrites the golden file from the actual run instead.

use std::path::Path;

/// An expected server line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Must be equal.
    Exact(String),
    /// `<*>` matches any run of characters.
    Pattern(String),
}

impl Expect {
    /// Whether `line` satisfies the expectation.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Expect::Exact(e) => e == line,
            Expect::Pattern(p) => wildcard_match(p, line),
        }
    }
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("<*>").collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// One exchange: lines the client writes together, then the server lines expected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Client lines (without CRLF).
    pub client: Vec<String>,
    /// Expected server lines.
    pub server: Vec<Expect>,
}

/// A parsed transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The `# host:` role.
    pub host: String,
    /// Exchanges in order. The first has no client lines: it expects the greeting.
    pub exchanges: Vec<Exchange>,
}

impl Transcript {
    /// Parses transcript text; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut t = Transcript { host: "internet".into(), exchanges: vec![Exchange::default()] };
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if let Some(h) = line.strip_prefix("# host:") {
                t.host = h.trim().to_string();
            } else if line.starts_with('#') || line.trim().is_empty() {
                continue;
            } else if let Some(c) = line.strip_prefix("C: ").or_else(|| (line == "C:").then_some("")) {
                let last = t.exchanges.last_mut().expect("one exchange");
                if !last.server.is_empty() {
                    t.exchanges.push(Exchange::default());
                }
                t.exchanges.last_mut().expect("one exchange").client.push(c.to_string());
            } else if let Some(s) = line.strip_prefix("S: ") {
                t.exchanges.last_mut().expect("one exchange").server.push(Expect::Exact(s.to_string()));
            } else if let Some(s) = line.strip_prefix("S~ ") {
                t.exchanges.last_mut().expect("one exchange").server.push(Expect::Pattern(s.to_string()));
            } else {
                return Err(format!("line {n}: expected `C: `, `S: `, `S~ ` or `#`, found {line:?}"));
            }
        }
        Ok(t)
    }

    /// Renders the transcript with `actual` server lines in place of the expected ones (keeping a
    /// pattern where it still matches), for `.actual` files and blessing.
    pub fn render_with(&self, actual: &[Vec<String>]) -> String {
        let mut out = format!("# host: {}\n", self.host);
        for (i, ex) in self.exchanges.iter().enumerate() {
            for c in &ex.client {
                out.push_str(&format!("C: {c}\n"));
            }
            let lines = actual.get(i).cloned().unwrap_or_default();
            for (j, line) in lines.iter().enumerate() {
                match ex.server.get(j) {
                    Some(e @ Expect::Pattern(p)) if e.matches(line) => out.push_str(&format!("S~ {p}\n")),
                    _ => out.push_str(&format!("S: {line}\n")),
                }
            }
        }
        out
    }

    /// Compares actual server lines (one vector per exchange) with the expectations. On mismatch
    /// writes `<golden>.actual` (or rewrites the golden file when `MAILSIM_BLESS=1`) and returns a
    /// description of the first difference.
    pub fn check(&self, golden: &Path, actual: &[Vec<String>]) -> Result<(), String> {
        let mut problem = None;
        for (i, ex) in self.exchanges.iter().enumerate() {
            let got = actual.get(i).cloned().unwrap_or_default();
            if got.len() != ex.server.len() || ex.server.iter().zip(&got).any(|(e, g)| !e.matches(g)) {
                problem = Some(format!(
                    "exchange {} (after {:?}):\n  expected {:?}\n  actual   {:?}",
                    i, ex.client, ex.server, got
                ));
                break;
            }
        }
        let Some(problem) = problem else { return Ok(()) };
        let rendered = self.render_with(actual);
        if std::env::var("MAILSIM_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(golden, rendered).map_err(|e| e.to_string())?;
            return Ok(());
        }
        let actual_path = golden.with_extension("actual");
        let _ = std::fs::write(&actual_path, rendered);
        Err(format!("{}: {problem}\n(actual run written to {})", golden.display(), actual_path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let p = Expect::Pattern("220 <*> ready at <*> [<*>]".into());
        assert!(p.matches("220 host ready at Mon, 1 Jan [0001]"));
        assert!(!p.matches("220 host ready"));
        assert!(Expect::Pattern("a<*>".into()).matches("a"));
    }

    #[test]
    fn parse_groups_exchanges() {
        let t =
            Transcript::parse("# host: gateway\nS~ 220 <*>\nC: EHLO x\nS: 250 ok\nC: A\nC: B\nS: 1\nS: 2\n").unwrap();
        assert_eq!(t.host, "gateway");
        assert_eq!(t.exchanges.len(), 3);
        assert_eq!(t.exchanges[2].client, ["A", "B"]);
        assert!(Transcript::parse("X: nope").is_err());
    }
}
