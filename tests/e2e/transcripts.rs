//! Every golden transcript in tests/transcripts runs twice (docs/architecture.md habit 8): in process
//! against `core::Session` (no sockets), then over TCP from the transcript host's own 127/8
//! address. When the first passes and the second fails, the bug is in the shell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailsim_core::peer::{PeerFacts, TlsFacts};
use mailsim_core::session::{Action, Session};
use mailsim_core::time::Timestamp;
use mailsim_testkit::hosts::{Host, roles};
use mailsim_testkit::sender::ScriptedSender;
use mailsim_testkit::transcript::Transcript;

use crate::common::*;

fn transcripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

fn host(name: &str) -> Host {
    roles::ALL.into_iter().find(|h| h.name == name).unwrap_or_else(|| panic!("unknown host role {name}"))
}

fn lines_of(wire: &str) -> Vec<String> {
    wire.split_terminator("\r\n").map(str::to_string).collect()
}

/// Replays a transcript against the pure session (no sockets).
pub(crate) fn run_in_process(t: &Transcript) -> Vec<Vec<String>> {
    let ip = host(&t.host).loopback;
    let tls_available = true;
    let mut session =
        Session::new(Arc::new(tenant()), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().unwrap(), 1, tls_available);
    let mut actual = Vec::new();
    for (i, ex) in t.exchanges.iter().enumerate() {
        let mut wire = String::new();
        if i == 0 {
            wire.push_str(&session.greeting(Timestamp(0)).to_wire());
        }
        let input: String = ex.client.iter().map(|c| format!("{c}\r\n")).collect();
        let mut out = Vec::new();
        session.on_input(input.as_bytes(), Timestamp(0), &mut out);
        for a in out {
            match a {
                Action::Reply(r) => wire.push_str(&r.to_wire()),
                // A STARTTLS transcript (from `mailsim trace --transcript`) goes on inside TLS:
                // the handshake is taken as done.
                Action::StartTls => session.on_tls_established(TlsFacts {
                    version: "TLS1_3".into(),
                    cipher: "TLS13_AES_256_GCM_SHA384".into(),
                    sni: None,
                    client_cert: None,
                }),
                _ => {}
            }
        }
        actual.push(lines_of(&wire));
    }
    actual
}

async fn run_over_tcp(t: &Transcript) -> Vec<Vec<String>> {
    let ep = start_default().await;
    let (mut c, greeting) = ScriptedSender::connect(host(&t.host).loopback, ep.addr()).await.unwrap();
    let mut actual = vec![lines_of(&format!("{}\r\n", greeting.wire().replace('\n', "\r\n")))];
    for ex in &t.exchanges[1..] {
        let input: String = ex.client.iter().map(|c| format!("{c}\r\n")).collect();
        c.send_raw(input.as_bytes()).await.unwrap();
        let mut lines = Vec::new();
        while lines.len() < ex.server.len() {
            match c.read_reply().await {
                Ok(r) => lines.extend(lines_of(&format!("{}\r\n", r.wire().replace('\n', "\r\n")))),
                Err(_) => break,
            }
        }
        actual.push(lines);
    }
    actual
}

#[test]
fn transcripts_against_the_pure_session() {
    for path in transcripts() {
        let t = Transcript::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        t.check(&path, &run_in_process(&t)).unwrap_or_else(|e| panic!("in process: {e}"));
    }
}

#[tokio::test]
async fn transcripts_over_tcp() {
    for path in transcripts() {
        let t = Transcript::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        t.check(&path, &run_over_tcp(&t).await).unwrap_or_else(|e| panic!("over TCP: {e}"));
    }
}
