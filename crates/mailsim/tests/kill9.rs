//! `kill -9` in the middle of a load against a real `mailsim serve` process (issue 9 item 7): every
//! recipient of every message that got a `250` is delivered after a restart on the same state
//! directory, and none twice (one `.eml` per mailbox, one Deliver row in `trace.jsonl`). Bounded:
//! at most a few hundred messages and 60 s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailsim_core::trace::{Event, TraceEvent};
use mailsim_testkit::sender::ScriptedSender;

const RCPTS: [&str; 2] = ["alice@contoso.test", "bob@contoso.test"];
const CLIENTS: usize = 8;
/// Kill once this many messages have been acknowledged.
const KILL_AFTER: usize = 150;

fn serve(addr: SocketAddr, state: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailsim"))
        .args(["serve", "--no-tls", "--accepted-domain", "contoso.test"])
        .args(RCPTS.iter().flat_map(|r| ["--mailbox", r]))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--state-dir")
        .arg(state)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailsim serve starts")
}

async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "mailsim serve did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn internal_id(reply: &str) -> u64 {
    let start = reply.find("InternalId=").expect("the 250 names the internal id") + "InternalId=".len();
    reply[start..].split(',').next().unwrap().parse().unwrap()
}

/// Sends until the connection breaks; returns the internal ids acknowledged with 250.
async fn client(source: IpAddr, addr: SocketAddr, acked: Arc<Mutex<Vec<u64>>>) {
    let Ok((mut c, _)) = ScriptedSender::connect(source, addr).await else { return };
    c.set_timeout(Duration::from_secs(5));
    if c.command("EHLO load.test").await.is_err() {
        return;
    }
    for n in 0..1000 {
        let content = format!("Subject: load {n}\r\n\r\n{}\r\n", "x".repeat(200));
        match c.transaction("sender@fabrikam.test", &RCPTS, &content).await {
            Ok(r) if r.code == 250 => acked.lock().unwrap().push(internal_id(&r.last_line())),
            _ => return,
        }
    }
}

fn deliver_rows(state: &Path) -> BTreeMap<(u64, String), usize> {
    let mut rows = BTreeMap::new();
    let text = std::fs::read(state.join("trace.jsonl")).unwrap_or_default();
    for line in text.split(|b| *b == b'\n') {
        let Ok(ev) = serde_json::from_slice::<TraceEvent>(line) else { continue };
        if ev.event == Event::Deliver {
            *rows.entry((ev.internal_id.unwrap(), ev.recipient.unwrap())).or_default() += 1;
        }
    }
    rows
}

fn eml_files(state: &Path) -> BTreeSet<(u64, String)> {
    let mut files = BTreeSet::new();
    for rcpt in RCPTS {
        let Ok(dir) = std::fs::read_dir(state.join("mailboxes").join(rcpt)) else { continue };
        for f in dir {
            let name = f.unwrap().file_name().into_string().unwrap();
            let id = u64::from_str_radix(name.trim_end_matches(".eml"), 16).unwrap();
            files.insert((id, rcpt.to_string()));
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_load_loses_and_duplicates_nothing_acknowledged() {
    let state = tempfile::tempdir().unwrap();
    let ip = mailsim_testkit::hosts::allocate_loopback();
    let port = std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
    let addr = SocketAddr::new(ip, port);
    let source = mailsim_testkit::hosts::allocate_loopback();

    let mut first = serve(addr, state.path());
    wait_listening(addr).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(client(source, addr, acked.clone()))).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < KILL_AFTER && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    first.wait().unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acked: BTreeSet<u64> = acked.lock().unwrap().iter().copied().collect();
    assert!(acked.len() >= KILL_AFTER.min(50), "the load ran: {} acknowledged", acked.len());

    let mut second = serve(addr, state.path());
    wait_listening(addr).await;
    let wanted: BTreeSet<(u64, String)> =
        acked.iter().flat_map(|id| RCPTS.iter().map(move |r| (*id, r.to_string()))).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = deliver_rows(state.path());
        if wanted.iter().all(|k| rows.contains_key(k)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let rows = deliver_rows(state.path());
    let files = eml_files(state.path());
    eprintln!(
        "{} message(s) acknowledged before the kill; {} delivered copies, {} .eml files after the restart",
        acked.len(),
        rows.len(),
        files.len()
    );
    let missing: Vec<_> = wanted.iter().filter(|k| !rows.contains_key(k)).collect();
    assert!(missing.is_empty(), "acknowledged but not delivered per the trace: {missing:?}");
    let missing_files: Vec<_> = wanted.iter().filter(|k| !files.contains(k)).collect();
    assert!(missing_files.is_empty(), "acknowledged but no .eml: {missing_files:?}");
    let twice: Vec<_> = rows.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded delivered more than once: {twice:?}");
    // Every message file belongs to a Deliver row (unacknowledged messages may be delivered too).
    assert!(files.iter().all(|k| rows.contains_key(k)), "an .eml without its trace row");
}
