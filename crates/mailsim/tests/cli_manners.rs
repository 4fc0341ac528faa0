//! CLI manners (issue 10 item 5): works from any directory with the built-in test PKI, errors say
//! each thing once, boolean environment twins accept 1/0/yes/no, `certs` never replaces files
//! without `--force` and mints a chosen subject that `openssl verify` accepts against the CA,
//! completions and man pages come from the clap definitions, and every environment variable is in
//! `--help` and the README.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mailsim_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailsim"));
    cmd.args(args).current_dir(dir).env("MAILSIM_LOG", "off").stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("mailsim runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `mailsim serve` from a directory without `certs/` starts, with STARTTLS from the built-in PKI.
#[test]
fn serve_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["serve", "--no-http", "--accepted-domain", "contoso.test", "--listen", &addr])
        .current_dir(dir.path())
        .env("MAILSIM_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with("mailsim tenant endpoint listening on"), "{first:?} {}", text(&out.stderr));
    // The STARTTLS offer is checked by `mailsim send` against the same kind of server elsewhere;
    // here: it started without any file.
}

/// A missing file is named once with its cause once.
#[test]
fn errors_say_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let out = mailsim_in(dir.path(), &["serve", "--no-http", "--listen", &addr, "--tls-client-ca", "nope/ca.crt"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim(), "mailsim: nope/ca.crt: No such file or directory (os error 2)", "{stderr}");
    let out = mailsim_in(dir.path(), &["serve", "--no-http", "--tls-cert", "x.crt"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--tls-cert needs --tls-key"), "{out:?}");
}

/// Boolean twins accept what people write; anything else is refused.
#[test]
fn boolean_environment_twins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trace.jsonl"), "").unwrap();
    let state = dir.path().to_str().unwrap();
    for value in ["1", "0", "true", "false", "yes", "no", "on", "off", "YES"] {
        let out = mailsim_in(dir.path(), &["trace", "--state-dir", state], &[("MAILSIM_TRACE_DETAIL", value)]);
        assert_eq!(out.status.code(), Some(0), "MAILSIM_TRACE_DETAIL={value}: {out:?}");
    }
    let out = mailsim_in(dir.path(), &["trace", "--state-dir", state], &[("MAILSIM_TRACE_DETAIL", "maybe")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The case: MAILSIM_NO_TLS=1 with a flag that conflicts with it is refused *because of*
    // the conflict, so the 1 was read as true.
    let out = mailsim_in(
        dir.path(),
        &["serve", "--no-http", "--tls-cert", "a", "--tls-key", "b"],
        &[("MAILSIM_NO_TLS", "1")],
    );
    assert!(text(&out.stderr).contains("--no-tls: no STARTTLS is offered"), "{out:?}");
}

fn openssl_verify(ca: &Path, cert: &Path) -> Output {
    Command::new("openssl").arg("verify").arg("-CAfile").arg(ca).arg(cert).output().expect("openssl runs")
}

#[test]
fn certs_refuses_to_overwrite_and_mints_a_chosen_subject() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = mailsim_in(d, &["certs", "--out", "pki"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let ca = d.join("pki/ca.crt");
    let before = std::fs::read(&ca).unwrap();
    let out = mailsim_in(d, &["certs", "--out", "pki"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("exist already: nothing was written (give --force"), "{out:?}");
    assert_eq!(std::fs::read(&ca).unwrap(), before, "nothing replaced");

    // A chosen subject from the test CA: openssl accepts it against the CA, with its SANs.
    let out = mailsim_in(
        d,
        &["certs", "--out", "pki", "--cn", "mail.example.test", "--san", "mail.example.test", "--san", "192.0.2.25"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let leaf = d.join("pki/mail.example.test.crt");
    let verify = openssl_verify(&ca, &leaf);
    assert!(verify.status.success(), "{verify:?}");
    assert!(text(&verify.stdout).contains(": OK"), "{verify:?}");
    let shown = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-ext", "subjectAltName", "-in"])
        .arg(&leaf)
        .output()
        .unwrap();
    let shown = text(&shown.stdout);
    assert!(shown.contains("CN=mail.example.test") || shown.contains("CN = mail.example.test"), "{shown}");
    assert!(shown.contains("DNS:mail.example.test") && shown.contains("IP Address:192.0.2.25"), "{shown}");
    // Minting it again refuses; --force replaces.
    let again = ["certs", "--out", "pki", "--cn", "mail.example.test"];
    assert_eq!(mailsim_in(d, &again, &[]).status.code(), Some(2));
    assert_eq!(mailsim_in(d, &[&again[..], &["--force"]].concat(), &[]).status.code(), Some(0));

    // Expired: openssl says so.
    let out = mailsim_in(d, &["certs", "--out", "pki", "--cn", "old.example.test", "--expired"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verify = openssl_verify(&ca, &d.join("pki/old.example.test.crt"));
    assert!(!verify.status.success() && text(&verify.stderr).contains("certificate has expired"), "{verify:?}");

    // An admin's CA made with openssl signs it instead.
    let admin = d.join("admin");
    std::fs::create_dir(&admin).unwrap();
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
        .args(["-subj", "/CN=Admin Test CA", "-keyout"])
        .arg(admin.join("ca.key"))
        .arg("-out")
        .arg(admin.join("ca.crt"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let out = mailsim_in(d, &["certs", "--out", "gw", "--cn", "gw.example.test", "--ca", "admin"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let verify = openssl_verify(&admin.join("ca.crt"), &d.join("gw/gw.example.test.crt"));
    assert!(verify.status.success(), "{verify:?}");
    assert!(!openssl_verify(&ca, &d.join("gw/gw.example.test.crt")).status.success());

    // No CA at all: said so, with the way out.
    let out = mailsim_in(d, &["certs", "--out", "empty", "--cn", "x.example.test"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("no CA to sign with"), "{out:?}");
}

#[test]
fn completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = mailsim_in(dir.path(), &["completions", shell], &[]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        assert!(text(&out.stdout).contains("partition"), "{shell}: the run flags are in it");
    }
    let out = mailsim_in(dir.path(), &["man"], &[]);
    assert!(text(&out.stdout).starts_with(".ie") && text(&out.stdout).contains(".TH mailsim 1"), "{out:?}");
    let out = mailsim_in(dir.path(), &["man", "--out", "man"], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(dir.path().join("man/mailsim-run.1").is_file());
}

/// Every variable a flag reads, and MAILSIM_LOG, is in `mailsim --help` and in the README.
#[test]
fn every_environment_variable_is_documented() {
    let vars = mailsim::cli::flag_env_vars(&mailsim::cli::command());
    assert!(vars.len() > 40, "{vars:?}");
    let help = text(&mailsim_in(&repo(), &["--help"], &[]).stdout);
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for var in vars.keys().map(String::as_str).chain(["MAILSIM_LOG"]) {
        assert!(help.contains(var), "{var} is not in mailsim --help");
        assert!(readme.contains(&format!("`{var}`")), "{var} is not in the README");
    }
}
