//! The oracles of the configuration fuzz targets (`fuzz/fuzz_targets/{tenant_loader,
//! scenario_loader,zone_parser}.rs`, run with cargo-fuzz on nightly) and of the same targets'
//! bounded property tests on stable (`tests/e2e/loader_fuzz.rs`): one function per target, taking
//! any bytes, that panics only when an oracle fails.
//!
//! Oracles (issue 14, items 6 and 8):
//! - no input panics a loader (the fuzzer catches the panic);
//! - a refused input gets a [`ConfigError`] naming the file given, with a line and column inside
//!   the text (1-based, the column at most one past the line's last character) and a message;
//! - a zone-file error inside `[dns] records` points at a line of that string, not elsewhere.
//!
//! Nothing here reads the network; the scenario loader may read files a scenario names
//! (`tenant_file`, `eml`), which `config_file::read` bounds (regular files of at most 16 MiB).

use std::path::Path;

use mailsim_core::diagnostics::{ConfigError, utf8_text};

/// The file name the targets give the loaders.
pub const TENANT_FILE: &str = "fuzz-input/tenant.toml";
/// The file name the scenario targets give the loader (its folder does not exist, so relative
/// `tenant_file` and `eml` paths name nothing).
pub const SCENARIO_FILE: &str = "fuzz-input/scenario.toml";

/// The tenant loader: any bytes load or are refused with a positioned error.
pub fn tenant_file(bytes: &[u8]) {
    let Some(text) = text_or_positioned_error(bytes, TENANT_FILE) else { return };
    if let Err(e) = mailsim_core::tenant::load::load_with_warnings(text, TENANT_FILE) {
        assert_positioned(&e, text, TENANT_FILE);
    }
}

/// The scenario loader: any bytes load or are refused with a positioned error.
pub fn scenario_file(bytes: &[u8]) {
    let Some(text) = text_or_positioned_error(bytes, SCENARIO_FILE) else { return };
    if let Err(e) = crate::scenario::parse(text, Path::new(SCENARIO_FILE)) {
        assert_positioned(&e, text, SCENARIO_FILE);
    }
}

/// The zone parser: any text parses or is refused by the zone reader alone, and inside a scenario
/// an error in `[dns] records` points at one of the records' lines.
pub fn zone_records(bytes: &[u8]) {
    let Ok(records) = std::str::from_utf8(bytes) else { return };
    let _ = mailsim_testkit::dns::DnsZoneSet::from_zone_text("fuzz.test", records);
    // A TOML literal string holds no `'''` and no control character but tab.
    if records.contains("'''") || records.chars().any(|c| c.is_control() && c != '\t' && c != '\n') {
        return;
    }
    let head =
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\nDomainType = \"Authoritative\"\n\n[dns]\nrecords = '''\n";
    let text = format!("{head}{records}\n'''\n");
    if let Err(e) = crate::scenario::parse(&text, Path::new(SCENARIO_FILE)) {
        assert_positioned(&e, &text, SCENARIO_FILE);
        if e.field == "dns.records" {
            let first = head.lines().count();
            let last = first + records.split('\n').count() + 1;
            assert!(
                (first..=last).contains(&e.line),
                "a records error outside the records (lines {first}..={last}): {e}"
            );
        }
    }
}

/// The text of `bytes`, or `None` after checking the UTF-8 error's position.
fn text_or_positioned_error<'b>(bytes: &'b [u8], file: &str) -> Option<&'b str> {
    match utf8_text(bytes, file) {
        Ok(text) => Some(text),
        Err(e) => {
            let valid = &bytes[..std::str::from_utf8(bytes).unwrap_err().valid_up_to()];
            assert_positioned(&e, std::str::from_utf8(valid).expect("valid prefix"), file);
            None
        }
    }
}

/// The oracle on a refusal: the file given, a line and column inside `text`, a message.
pub fn assert_positioned(e: &ConfigError, text: &str, file: &str) {
    assert_eq!(e.file, file, "{e}");
    assert!(!e.message.trim().is_empty(), "an error without a message: {e:?}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(e.line >= 1 && e.line <= lines.len(), "line {} outside 1..={}: {e}", e.line, lines.len());
    let width = lines[e.line - 1].chars().count();
    assert!(e.column >= 1 && e.column <= width + 1, "column {} outside 1..={}: {e}", e.column, width + 1);
}
