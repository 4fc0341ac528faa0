//! The `mailsim` binary as CI and a shell use it (issue 10): exit codes and reasons for an empty
//! selection, a file without steps and a malformed file; the JUnit report valid against the
//! vendored schema (`docs/schemas/JUnit.xsd`, with `xmllint`); `--partition` covering every file
//! exactly once; `run --verbose` goldens; `--state-dir`; broken pipes that end quietly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mailsim(args: &[&str]) -> Output {
    mailsim_in(&repo(), args)
}

fn mailsim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(args)
        .current_dir(dir)
        .env_remove("MAILSIM_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("mailsim runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const SEND_STEP: &str = "[[step]]\nsend = { from = \"gateway\", mail_from = \"a@fabrikam.test\", rcpt_to = [\"alice@contoso.test\"] }\nexpect = { reply = \"250 2.6.0\" }\n";

/// A scenario file around the lockdown scenario's world, with `steps` appended.
fn scenario(steps: &str) -> String {
    let world = std::fs::read_to_string(repo().join("scenarios/00-lockdown-5.7.51.toml")).unwrap();
    let world = &world[..world.find("[[step]]").expect("the scenario has steps")];
    format!("{world}{steps}")
}

#[test]
fn empty_selection_is_an_error() {
    let out = mailsim(&["run", "--filter", "no-such-scenario-anywhere"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("no scenario to run: --filter \"no-such-scenario-anywhere\" matches none"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");

    let empty = tempfile::tempdir().unwrap();
    let out = mailsim(&["run", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("no scenario files (*.toml) in this directory"), "{out:?}");
}

#[test]
fn a_file_without_steps_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("idle.toml"), scenario("")).unwrap();
    let junit = dir.path().join("junit.xml");
    let out = mailsim(&["run", dir.path().to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("idle.toml:1:1: step: no steps: the scenario has nothing to run"), "{stdout}");
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error message=") && !xml.contains("<failure"), "{xml}");
}

#[test]
fn malformed_file_is_exit_2_and_a_junit_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), scenario("[[step]]\nadvance = \"soon\"\n")).unwrap();
    std::fs::write(dir.path().join("good.toml"), scenario(SEND_STEP)).unwrap();
    let junit = dir.path().join("junit.xml");
    let out = mailsim(&["run", dir.path().to_str().unwrap(), "--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("step[1].advance: bad duration \"soon\""), "{stdout}");
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<error ").count(), 1, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 0, "{xml}");
    validate_junit(&junit);
}

/// xmllint, installed by `.ci/install-xmllint` (called from `.ci/run`).
fn validate_junit(path: &Path) {
    let schema = repo().join("docs/schemas/JUnit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(path)
        .output()
        .expect("xmllint runs (Debian's libxml2-utils: .ci/install-xmllint installs it)");
    assert!(
        out.status.success(),
        "{} does not validate against {}:\n{}\n{}",
        path.display(),
        schema.display(),
        text(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// Passed, failed (an expectation), errored (a world that cannot start) and malformed scenarios,
/// with characters XML must escape: the report validates against the common JUnit schema, keeps
/// file and line, and names tests as Jenkins shows them.
#[test]
fn junit_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("00-pass-5.7.51.toml"), scenario(SEND_STEP)).unwrap();
    std::fs::write(d.join("01-fail.toml"), scenario(&SEND_STEP.replace("250 2.6.0", "550 <&'>"))).unwrap();
    std::fs::write(d.join("02-bad.toml"), scenario("[[step]]\nadvance = \"soon\"\n")).unwrap();
    let junit = d.join("junit.xml");
    let out = mailsim(&["run", d.to_str().unwrap(), "--junit", junit.to_str().unwrap(), "--verbose"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    validate_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let classname = d.file_name().unwrap().to_str().unwrap().replace('.', "_");
    assert!(xml.contains(&format!("<testcase name=\"lockdown-5.7.51\" classname=\"{classname}\"")), "{xml}");
    assert!(xml.contains("<property name=\"file\" value=\""), "{xml}");
    assert!(xml.contains("01-fail.toml:38\n"), "the failure text starts with file:line\n{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert_eq!(xml.matches("<error ").count(), 1, "{xml}");
    assert!(xml.contains("<system-out>world:"), "the verbose log in system-out\n{xml}");

    // A world that cannot start (here: its state directory cannot be emptied) is an <error>, not
    // a <failure>, and still valid.
    let state = d.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("00-pass-5.7.51"), "a file where the world's directory goes").unwrap();
    let pass = d.join("00-pass-5.7.51.toml");
    let out = mailsim(&[
        "run",
        pass.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    validate_junit(&junit);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<error message=\"world: expected ") && xml.contains("type=\"world\""), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}

/// `--partition K/N` over a library of 7 small files: every file in exactly one of the 3
/// partitions, the same files on every run, and a partition with no file is an error.
#[test]
fn partitions_run_every_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..7 {
        let named = scenario(SEND_STEP).replacen("name = \"lockdown-5.7.51\"", &format!("name = \"s{i}\""), 1);
        std::fs::write(dir.path().join(format!("{i:02}.toml")), named).unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let all = names(&mailsim(&["run", d, "--json"]));
    assert_eq!(all, ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);
    let mut seen = Vec::new();
    for k in 1..=3 {
        let out = mailsim(&["run", d, "--json", "--partition", &format!("{k}/3")]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let part = names(&out);
        // By count, as nextest's count:K/N: file i goes to partition i % N + 1.
        let expected: Vec<String> = (0..7).filter(|i| i % 3 + 1 == k).map(|i| format!("s{i}")).collect();
        assert_eq!(part, expected, "{k}/3");
        seen.extend(part);
    }
    seen.sort();
    assert_eq!(seen, all, "every file exactly once");
    assert_eq!(names(&mailsim(&["run", d, "--json", "--partition", "count:2/3"])), ["s1", "s4"]);
    let out = mailsim(&["run", d, "--partition", "4/3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = mailsim(&["run", d, "--partition", "8/8"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("partition 8/8 takes none of the 7 selected scenario file(s)"), "{out:?}");
}

/// The scenario names of a `--json` run, sorted (results stream in completion order).
fn names(out: &Output) -> Vec<String> {
    let mut names: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// `mailsim run | head -1`: the reader goes away after one line; the run ends quietly with the
/// run's own status (its scenarios pass: 0), no panic, no error message. Also `mailsim demo`.
#[test]
fn broken_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(dir.path().join(format!("{i}.toml")), scenario(SEND_STEP)).unwrap();
    }
    let d = dir.path().to_str().unwrap();
    for args in [&["run", d][..], &["run", d, "--json"], &["run", d, "--verbose"], &["demo"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailsim"))
            .args(args)
            .current_dir(repo())
            .env("MAILSIM_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?}");
        // The reader is dropped here: the pipe is closed.
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// `--state-dir DIR` keeps each world under `DIR/<scenario>/` in the layout `mailsim trace` reads.
#[test]
fn state_dir_keeps_each_world() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = mailsim(&[
        "run",
        "scenarios/00-lockdown-5.7.51.toml",
        "scenarios/24-ndr-null-mx.toml",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let world = state.join("00-lockdown-5.7.51");
    assert!(world.join("trace.jsonl").is_file(), "{:?}", std::fs::read_dir(&state).map(|d| d.count()));
    assert!(world.join("mailboxes").is_dir());
    assert!(world.join("protocol").is_dir());
    let trace = mailsim(&["trace", "--state-dir", world.to_str().unwrap()]);
    assert_eq!(trace.status.code(), Some(0), "{trace:?}");
    assert!(text(&trace.stdout).contains("alice@contoso.test"), "{}", text(&trace.stdout));
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 2);

    // Trace rows as admins read them (issue 10 item 6), from the null-MX scenario's state: the
    // failed recipient's row has no connector (nothing left the tenant), the NDR is its own row from
    // `<>` to the original sender, and there is no "sender to sender, Failed" row.
    let ndr_world = state.join("24-ndr-null-mx");
    let out = mailsim(&["trace", "--state-dir", ndr_world.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |sender: &str, rcpt: &str| {
        rows.iter().find(|r| r["SenderAddress"] == sender && r["RecipientAddress"] == rcpt).cloned()
    };
    let failed = row("alice@contoso.test", "info@nomail.test").expect("the failed recipient's row");
    assert_eq!((failed["Status"].as_str(), failed["Connector"].as_str()), (Some("Failed"), None), "{failed}");
    let ndr = row("<>", "alice@contoso.test").expect("the NDR's row");
    assert_eq!(ndr["Status"], "Delivered", "{ndr}");
    let events: Vec<&str> = ndr["Events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["DSN", "RECEIVE", "DELIVER"], "{ndr}");
    assert!(ndr["MessageId"].as_str().unwrap().starts_with("<ndr-"), "{ndr}");
    assert!(row("alice@contoso.test", "alice@contoso.test").is_none(), "{rows:?}");
}

/// `run --verbose` for two scenarios, compared with `tests/run-verbose/*.txt` after the volatile
/// parts are masked (loopback addresses and ports, banner dates, ids, timings). Bless with
/// `MAILSIM_BLESS=1`.
#[test]
fn verbose_goldens() {
    for file in ["00-lockdown-5.7.51", "24-ndr-null-mx"] {
        let out = mailsim(&["run", "--verbose", &format!("scenarios/{file}.toml")]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let actual = mask(&text(&out.stdout));
        let golden = repo().join(format!("tests/run-verbose/{file}.txt"));
        if std::env::var_os("MAILSIM_BLESS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        assert!(expected == actual, "{} differs (bless with MAILSIM_BLESS=1):\n{actual}", golden.display());
    }
}

/// Masks what changes from run to run.
fn mask(output: &str) -> String {
    let mut out = String::new();
    for line in output.lines() {
        let line = match line.trim_start().strip_prefix("S: ") {
            Some(server) => match mailsim::cli::trace::normalise(server, false) {
                Some(pattern) => format!("{}S~ {pattern}", &line[..line.len() - line.trim_start().len()]),
                None => line.to_string(),
            },
            None => mailsim::cli::trace::normalise(line, false).unwrap_or_else(|| line.to_string()),
        };
        // Padding follows the length of the masked addresses.
        let line = mask_words(&line);
        let indent = line.len() - line.trim_start().len();
        let words: Vec<&str> = line.split("  ").filter(|w| !w.is_empty()).collect();
        out.push_str(&format!("{}{}", " ".repeat(indent), words.join("  ").trim_start()));
        out.push('\n');
    }
    out
}

fn mask_words(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        // Loopback addresses (each world takes its own), with a port when one follows.
        if let Some(tail) = rest.strip_prefix("127.")
            && out.chars().last().is_none_or(|c| !c.is_ascii_digit())
        {
            let len = tail.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':')).unwrap_or(tail.len());
            let has_port = tail[..len].contains(':');
            out.push_str(if has_port { "127.x:PORT" } else { "127.x" });
            rest = &tail[len..];
            continue;
        }
        // Message ids `sim-N.PID@` and timings `(N ms`.
        if let Some(tail) = rest.strip_prefix("sim-")
            && let Some(at) = tail.find('@')
        {
            let (n, _) = tail[..at].split_once('.').unwrap_or((&tail[..at], ""));
            out.push_str(&format!("sim-{n}.PID"));
            rest = &tail[at..];
            continue;
        }
        if let Some(tail) = rest.strip_prefix(" (")
            && let Some(ms) = tail.find(" ms")
            && tail[..ms].chars().all(|c| c.is_ascii_digit())
        {
            out.push_str(" (N");
            rest = &tail[ms..];
            continue;
        }
        // ISO times (the simulated clock starts at the wall clock): 2026-12-07T09:32:14.199Z.
        if rest.len() >= 20
            && rest.as_bytes()[4] == b'-'
            && rest.as_bytes()[10] == b'T'
            && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && let Some(z) = rest[..rest.len().min(30)].find('Z')
        {
            out.push_str("<time>");
            rest = &rest[z + 1..];
            continue;
        }
        // Ids of 16 hex digits (NDR Message-IDs carry the session id).
        if out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric())
            && rest.len() >= 16
            && rest.as_bytes()[..16].iter().all(|b| b.is_ascii_hexdigit())
            && rest.as_bytes().get(16).is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            out.push_str("<id>");
            rest = &rest[16..];
            continue;
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}
