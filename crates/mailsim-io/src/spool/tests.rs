//! The journal's contract: what was acknowledged comes back, state changes replay in order, a torn
//! tail is dropped, the trace finishes what it shows done, a second process is refused.

use super::*;
use crate::test_support::message;

fn addr(s: &str) -> EmailAddress {
    s.parse().unwrap()
}

async fn accept(spool: &Spool, m: &AcceptedMessage) {
    spool.accept(&MessageMeta::of(m, false, None), &m.data).await.unwrap();
}

#[tokio::test]
async fn accepted_deferred_and_finished_recipients_come_back_as_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    assert_eq!(recovery.recipients(), 0);
    let m1 = message(1, Some("a@fabrikam.test"), &["x@partner.test", "y@partner.test", "z@partner.test"]);
    let m2 = message(2, Some("a@fabrikam.test"), &["done@partner.test"]);
    accept(&spool, &m1).await;
    accept(&spool, &m2).await;
    let err = Reply::parse("451 4.3.0 Try again later\r\n").unwrap();
    spool.deferred(
        1,
        &[addr("y@partner.test")],
        3,
        Timestamp::from_millis(1_700_000_900_000),
        Timestamp::from_millis(1_700_000_100_000),
        Some(&err),
    );
    spool.finished(1, &[addr("X@partner.test")]);
    spool.finished(2, &[addr("done@partner.test")]);
    spool.close().await;

    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    assert_eq!(recovery.messages.len(), 1, "message 2 is finished");
    let r = &recovery.messages[0];
    assert_eq!(r.message.internal_id, 1);
    assert_eq!(r.message.data, m1.data);
    assert_eq!(r.message.envelope, m1.envelope);
    assert_eq!(r.message.peer.ip, m1.peer.ip);
    assert_eq!(r.message.verdict.connector(), Some("Partner"));
    let pending: Vec<_> = r.pending.iter().map(|(a, s)| (a.to_string(), s.clone())).collect();
    assert_eq!(
        pending,
        vec![
            (
                "y@partner.test".to_string(),
                RecipientState {
                    attempts: 3,
                    retry_at: Some(Timestamp::from_millis(1_700_000_900_000)),
                    last_error: Some(err.clone())
                }
            ),
            ("z@partner.test".to_string(), RecipientState { attempts: 0, retry_at: None, last_error: None }),
        ]
    );
    assert_eq!(recovery.latest, Some(Timestamp::from_millis(1_700_000_100_000)));
    spool.close().await;
    // Compaction kept exactly the live state.
    let again = inspect(dir.path()).unwrap();
    assert_eq!(again.recipients(), 2);
    assert_eq!(again.torn_bytes, 0);
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_everything_before_it_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), None).unwrap();
    accept(&spool, &message(7, Some("a@fabrikam.test"), &["x@partner.test"])).await;
    spool.close().await;
    let journal = dir.path().join(JOURNAL);
    let whole = std::fs::read(&journal).unwrap();
    // A second record cut short, as a kill in the middle of a write leaves it.
    let second = accept_frame(&MessageMeta::of(&message(8, None, &["y@partner.test"]), false, None), b"data");
    let mut torn = whole.clone();
    torn.extend_from_slice(&second[..second.len() - 3]);
    std::fs::write(&journal, &torn).unwrap();
    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    assert_eq!(recovery.messages.len(), 1);
    assert_eq!(recovery.messages[0].message.internal_id, 7);
    assert_eq!(recovery.torn_bytes, (second.len() - 3) as u64);
    spool.close().await;
    // A corrupted byte inside a record stops the replay there too.
    let mut corrupt = whole;
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    std::fs::write(&journal, &corrupt).unwrap();
    assert_eq!(inspect(dir.path()).unwrap().recipients(), 0);
}

#[tokio::test]
async fn the_trace_finishes_recipients_it_shows_delivered_and_failed_with_their_ndr() {
    use mailsim_core::trace::TraceEvent;
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (spool, _) = Spool::open(&spool_dir, None).unwrap();
    let m = message(5, Some("a@fabrikam.test"), &["d@partner.test", "f@partner.test", "g@partner.test"]);
    accept(&spool, &m).await;
    // f failed and its NDR reached the journal; g failed but the NDR did not.
    let ndr = message(6, None, &["a@fabrikam.test"]);
    spool.accept_nowait(&MessageMeta::of(&ndr, false, Some(5)), &ndr.data);
    spool.close().await;
    let at = Timestamp::from_millis(1_700_000_000_500);
    let delivered = TraceEvent::delivered_to_mailbox(&m, &addr("D@partner.test"), at);
    let reply = Reply::parse("550 5.4.1 no\r\n").unwrap();
    let failed = TraceEvent::failed(&m, &addr("f@partner.test"), &reply, at);
    let mut text = String::new();
    for ev in [&delivered, &failed] {
        text.push_str(&serde_json::to_string(ev).unwrap());
        text.push('\n');
    }
    text.push_str("{\"cut short");
    std::fs::write(dir.path().join("trace.jsonl"), text).unwrap();
    let (spool, recovery) = Spool::open(&spool_dir, Some(&dir.path().join("trace.jsonl"))).unwrap();
    assert_eq!(recovery.reconciled, 2);
    let original = recovery.messages.iter().find(|r| r.message.internal_id == 5).unwrap();
    let left: Vec<String> = original.pending.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(left, vec!["g@partner.test"]);
    spool.close().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), None).unwrap();
    let err = Spool::open(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("in use by another mailsim"), "{err}");
    spool.close().await;
    Spool::open(dir.path(), None).unwrap().0.close().await;
}

#[test]
fn a_journal_of_another_format_is_an_error_not_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(JOURNAL), b"MAILSIM-SPOOL 9\n...").unwrap();
    let err = Spool::open(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("not a mailsim spool journal"), "{err}");
}

/// A long run does not grow the journal without bound: past the threshold, finished messages are
/// compacted away while the writer runs, and what is live survives it (and a restart).
#[tokio::test]
async fn the_journal_is_compacted_while_running_and_keeps_the_live_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open_compacting_at(dir.path(), None, 4096).unwrap();
    let err = Reply::parse("451 4.3.0 later\r\n").unwrap();
    let t = Timestamp::from_millis(1_700_000_000_000);
    for id in 1..=60u64 {
        let m = message(id, Some("a@fabrikam.test"), &["x@partner.test"]);
        accept(&spool, &m).await;
        if id % 20 == 0 {
            spool.deferred(id, &[addr("x@partner.test")], 1, t, t, Some(&err));
        } else {
            spool.finished(id, &[addr("x@partner.test")]);
        }
    }
    // One more acknowledged record: everything above has been committed (and compacted) by then.
    accept(&spool, &message(61, None, &["y@partner.test"])).await;
    // The records' end: the file itself runs on with the zeros the writer grows it by.
    let journal = std::fs::read(dir.path().join(JOURNAL)).unwrap();
    let size = journal.len() - journal.iter().rev().take_while(|&&b| b == 0).count();
    assert!(size < 8192, "compacted, {size} bytes");
    spool.close().await;
    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    let ids: Vec<u64> = recovery.messages.iter().map(|m| m.message.internal_id).collect();
    assert_eq!(ids, [20, 40, 60, 61]);
    assert_eq!(recovery.messages[0].pending[0].1.attempts, 1);
    assert_eq!(recovery.messages[0].message.data, message(20, None, &[]).data);
    spool.close().await;
}

/// A version 1 frame: the check was the first 8 bytes of SHA-256(body).
fn frame_v1(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(payload);
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&ring::digest::digest(&ring::digest::SHA256, &body).as_ref()[..8]);
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn a_version_1_journal_is_read_and_rewritten_as_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let m = message(7, Some("a@fabrikam.test"), &["x@partner.test", "y@partner.test"]);
    let json = serde_json::to_vec(&MessageMeta::of(&m, false, None)).unwrap();
    let mut accept_payload = (json.len() as u32).to_le_bytes().to_vec();
    accept_payload.extend_from_slice(&json);
    accept_payload.extend_from_slice(&m.data);
    let finished = serde_json::to_vec(&FinishedRecord { id: 7, recipients: vec!["x@partner.test".into()] }).unwrap();
    let mut journal = MAGIC_V1.to_vec();
    journal.extend(frame_v1(b'A', &accept_payload));
    journal.extend(frame_v1(b'F', &finished));
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join(JOURNAL), journal).unwrap();

    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    assert_eq!(recovery.messages.len(), 1);
    assert_eq!(recovery.messages[0].message.data, m.data);
    let pending: Vec<_> = recovery.messages[0].pending.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(pending, ["y@partner.test"]);
    spool.close().await;
    let rewritten = std::fs::read(dir.path().join(JOURNAL)).unwrap();
    assert!(rewritten.starts_with(MAGIC), "compacted into the current version");

    let (spool, recovery) = Spool::open(dir.path(), None).unwrap();
    assert_eq!(recovery.recipients(), 1, "the same queue comes back from version 2");
    spool.close().await;
}

/// Polls `done` every few milliseconds for at most five seconds; whether it came true.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    done()
}

#[tokio::test]
async fn a_state_change_nobody_waits_for_reaches_the_journal_without_another_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), None).unwrap();
    let m = message(1, Some("a@fabrikam.test"), &["x@partner.test"]);
    accept(&spool, &m).await;
    assert_eq!(inspect(dir.path()).unwrap().recipients(), 1);
    spool.finished(1, &[addr("x@partner.test")]);
    // No accept follows and the spool stays open: the writer writes the record on its own.
    assert!(eventually(|| inspect(dir.path()).unwrap().recipients() == 0), "the Finished record was not written");
    spool.close().await;
}

/// Mailbox copies and trace lines left to the spool's writer: every copy reads back byte for byte
/// (also past the cap on open mailbox files, and before the writer wrote it), the trace reads
/// back whole, and both files are written without anyone reading them.
#[tokio::test]
async fn copies_and_trace_lines_written_behind_read_back_exactly_and_reach_their_files() {
    use crate::store::MailStore;
    use crate::trace_sink::TraceSink;
    use mailsim_core::trace::TraceEvent;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MailStore::with_dir(dir.path().to_path_buf()));
    let trace = Arc::new(TraceSink::with_dir(dir.path().to_path_buf()).unwrap());
    let (spool, _) = Spool::open(&dir.path().join("spool"), None).unwrap();
    let (s, t) = (store.clone(), trace.clone());
    spool.write_first(move || {
        let _ = s.write_pending();
        t.write_pending();
    });
    store.write_behind(spool.write_behind());
    trace.write_behind(spool.write_behind());
    let mailboxes = 300;
    let mut sent = Vec::new();
    for i in 0..mailboxes {
        let rcpt = format!("user{i}@contoso.test");
        let mut m = message(i, Some("a@fabrikam.test"), &[&rcpt]);
        m.data = format!("Subject: {i}\r\n\r\nFrom here on, line {i}\r\n>From quoted\r\n").into_bytes();
        store.deliver(addr(&rcpt), Arc::new(m.clone())).unwrap();
        trace.record(TraceEvent::delivered_to_mailbox(&m, &addr(&rcpt), m.received_at));
        sent.push(m);
    }
    let read: Vec<_> = store.delivered().into_iter().map(|d| d.message.data.clone()).collect();
    assert_eq!(read, sent.iter().map(|m| m.data.clone()).collect::<Vec<_>>());
    assert_eq!(trace.read_back().unwrap().len(), sent.len());
    let trace_file = dir.path().join("trace.jsonl");
    let lines = || std::fs::read_to_string(&trace_file).unwrap_or_default().lines().count();
    assert!(eventually(|| lines() == sent.len()), "trace.jsonl holds {} of {} lines", lines(), sent.len());
    let mbox = std::fs::read_to_string(dir.path().join("mailboxes/user299@contoso.test.mbox")).unwrap();
    assert!(mbox.contains(">>From quoted") && mbox.contains("\n>From here on, line 299"), "{mbox}");
    assert_eq!(store.stats().write_errors, 0);
    spool.close().await;
}
