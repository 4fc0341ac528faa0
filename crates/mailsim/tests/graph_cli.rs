//! `mailsim graph` as a user runs it: a shipped scenario played (`--run`) and drawn, each message's
//! path coloured by outcome; a tenant file alone; a mistake answered with exit 2 and the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn graph(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mailsim")).arg("graph").args(args).output().expect("mailsim runs")
}

#[test]
fn a_played_scenario_is_drawn_with_its_message_paths_as_svg_and_dot() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p3.svg");
    let scenario = repo("scenarios/05-cutover-p3-outbound-via-gateway.toml");
    let out = graph(&[scenario.to_str().unwrap(), "--run", "-o", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("p3.dot"));
    let dot = std::fs::read_to_string(dir.path().join("p3.dot")).unwrap();
    // Configuration: the on-premises host matches the inbound connector by IP; the outbound
    // connector sends to the gateway's smart host.
    assert!(dot.contains("\"host:onprem\" -> \"in:On-premises relay\" [label=\"IP matches\""), "{dot}");
    assert!(dot.contains("\"out:To gateway\" -> \"host:gateway\" [label=\"smart host\""), "{dot}");
    assert!(dot.contains("192.0.2.10 = 127."), "declared and loopback addresses: {dot}");
    // Paths, coloured by outcome.
    assert!(dot.contains("\"out:To gateway\" -> \"host:gateway\" [label=\"2 Delivered\", color=\"#1a7f37\""), "{dot}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.contains("<svg") && picture.contains("On-premises relay"), "{picture}");
}

#[test]
fn a_tenant_file_is_drawn_and_run_on_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("t.svg");
    let tenant = repo("tests/tenants/gateway-lockdown-ip.toml");
    let out = graph(&[tenant.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dot = std::fs::read_to_string(dir.path().join("t.dot")).unwrap();
    assert!(dot.contains("\"in:") && dot.contains("\"tenant\""), "{dot}");
    let refused = graph(&[tenant.to_str().unwrap(), "--run", "-o", svg.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--run needs a scenario file"));
}
