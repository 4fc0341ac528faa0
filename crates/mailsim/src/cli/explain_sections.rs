//! Extra sections of `mailsim explain`, the hook for what later work adds to every explanation
//! (inbound and outbound), e.g. authentication verdicts (exo-behaviour §14).
//!
//! To add a section: write `fn my_section(input: &Input<'_>) -> Option<Section>` in a module of its
//! own and add one line to [`all`]. It appears in the text report (title, then its lines,
//! indented) after the mail flow rules, and in `--json` under `"sections"`, in the order of
//! [`all`].

use std::fmt::Write as _;

use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;
use serde::Serialize;

/// What a section may read.
pub struct Input<'a> {
    /// The tenant explained.
    pub tenant: &'a Tenant,
    /// The message as the tenant accepted it (with its stamps), when it would be accepted.
    pub message: Option<&'a AcceptedMessage>,
    /// The time the explanation is judged at.
    pub at: Timestamp,
}

/// One section of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Section {
    /// Title, one word or a few (`Authentication`), printed in the report's left column.
    pub title: String,
    /// Lines of text.
    pub lines: Vec<String>,
    /// The same as data, for `--json`.
    pub data: serde_json::Value,
}

/// Every extra section that has something to say, in order.
pub fn all(input: &Input<'_>) -> Vec<Section> {
    // One line per section: `my_section(input),`
    let sections: [Option<Section>; 0] = [];
    let _ = input;
    sections.into_iter().flatten().collect()
}

/// Appends the sections to a text report.
pub fn write_text(out: &mut String, sections: &[Section]) {
    for s in sections {
        let _ = writeln!(out, "\n{:<11} ", s.title);
        for line in &s.lines {
            let _ = writeln!(out, "  {line}");
        }
    }
}
