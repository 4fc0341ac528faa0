//! Issue 14 item 3: ids unique per world, message files never overwritten; item 4: the mailbox
//! store and the trace stay within their caps.

use std::net::IpAddr;
use std::sync::Arc;

use mailsim_core::addr::EmailAddress;
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::ids::IdSource;
use mailsim_core::peer::PeerFacts;
use mailsim_core::session::{Action, Session};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_core::time::Timestamp;
use mailsim_io::store::{MailStore, StoreError, StoreLimits};

fn tenant() -> Arc<Tenant> {
    Arc::new(
        Tenant::builder()
            .with_domain("contoso.test", DomainType::Authoritative)
            .with_mailbox("alice@contoso.test")
            .build()
            .unwrap(),
    )
}

fn session(ids: &Arc<IdSource>) -> Session {
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    Session::new(tenant(), PeerFacts::new(ip, 40000, ip), "127.0.0.1".parse().unwrap(), ids.next_id(), false)
        .with_ids(ids.clone())
}

/// Feeds `count` pipelined transactions and returns the accepted messages.
fn carry(s: &mut Session, count: usize) -> Vec<AcceptedMessage> {
    let one = b"MAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nDATA\r\nSubject: n\r\n\r\nhi\r\n.\r\n";
    let mut accepted = Vec::with_capacity(count);
    let mut out = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(1000);
        let input = one.repeat(n);
        let used = s.on_input(&input, Timestamp::from_millis(1_700_000_000_000), &mut out);
        assert_eq!(used, input.len());
        for a in out.drain(..) {
            if let Action::Accept(m) = a {
                accepted.push(*m);
            }
        }
        left -= n;
    }
    accepted
}

/// The regression: one connection carrying 65,600 messages left 65,536 `.eml` files (64
/// overwritten) and 64 InternalIds twice, from `(session_id << 16) | (messages & 0xFFFF)`: message
/// `k` and message `k + 65,536` shared an id. Every id is checked distinct; the first and the last
/// 128 messages (the pairs that clashed) are stored, each its own record in the mailbox file.
#[test]
fn one_session_with_65_600_messages_leaves_65_600_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Arc::new(IdSource::new(5));
    let mut s = session(&ids);
    let mut out = Vec::new();
    s.on_input(b"EHLO client.test\r\n", Timestamp::from_millis(0), &mut out);
    let store = MailStore::with_dir(dir.path().to_path_buf());
    let mut distinct = std::collections::HashSet::new();
    let mut n = 0;
    for _ in 0..656 {
        for m in carry(&mut s, 100) {
            assert!(distinct.insert(m.internal_id), "InternalId {:016X} twice", m.internal_id);
            if !(128..65_600 - 128).contains(&n) {
                let rcpt = m.envelope.recipients[0].clone();
                store.deliver(rcpt, Arc::new(m)).unwrap();
            }
            n += 1;
        }
    }
    assert_eq!(distinct.len(), 65_600, "65,600 messages accepted on one connection, each its own id");
    let mbox = std::fs::read(dir.path().join("mailboxes").join("alice@contoso.test.mbox")).unwrap();
    let records = mbox.split(|&b| b == b'\n').filter(|l| l.starts_with(b"From ")).count();
    assert_eq!(records, 256);
    let stats = store.stats();
    assert_eq!((stats.delivered, stats.write_errors), (256, 0));
    assert_eq!(stats.held_bytes, 0, "under a state directory content stays on disk");
    // Held copies read their content back from disk.
    let last = store.mailbox("Alice@contoso.test").pop().unwrap();
    assert!(last.data.ends_with(b"hi\r\n"), "{:?}", String::from_utf8_lossy(&last.data));
}

/// Two sessions of one world never share an id, whatever the order of their messages.
#[test]
fn sessions_of_one_world_share_no_id() {
    let ids = Arc::new(IdSource::new(9));
    let (mut a, mut b) = (session(&ids), session(&ids));
    let mut out = Vec::new();
    a.on_input(b"EHLO a.test\r\n", Timestamp::from_millis(0), &mut out);
    b.on_input(b"EHLO b.test\r\n", Timestamp::from_millis(0), &mut out);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        for m in carry(&mut a, 50).into_iter().chain(carry(&mut b, 50)) {
            assert!(seen.insert(m.internal_id));
        }
    }
    assert_eq!(seen.len(), 300);
}

/// An id used twice fails loudly and the copy already there is left as it was.
#[test]
fn the_store_never_overwrites_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Arc::new(IdSource::new(1));
    let mut s = session(&ids);
    let mut out = Vec::new();
    s.on_input(b"EHLO client.test\r\n", Timestamp::from_millis(0), &mut out);
    let first = carry(&mut s, 1).remove(0);
    let mut second = carry(&mut s, 1).remove(0);
    second.internal_id = first.internal_id;
    second.data = b"Subject: impostor\r\n\r\nx\r\n".to_vec();
    let store = MailStore::with_dir(dir.path().to_path_buf());
    let rcpt: EmailAddress = "alice@contoso.test".parse().unwrap();
    store.deliver(rcpt.clone(), Arc::new(first.clone())).unwrap();
    let err = store.deliver(rcpt, Arc::new(second)).unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    assert_eq!(store.mailbox("alice@contoso.test").iter().map(|m| m.data.clone()).collect::<Vec<_>>(), [first.data]);
    let mbox = std::fs::read_to_string(dir.path().join("mailboxes/alice@contoso.test.mbox")).unwrap();
    assert!(!mbox.contains("impostor"), "{mbox}");
    assert_eq!(store.stats().write_errors, 1);
}

/// In memory, the caps hold and the oldest copies go first, counted.
#[test]
fn the_in_memory_store_evicts_oldest_first() {
    let ids = Arc::new(IdSource::new(2));
    let mut s = session(&ids);
    let mut out = Vec::new();
    s.on_input(b"EHLO client.test\r\n", Timestamp::from_millis(0), &mut out);
    let store = MailStore::in_memory().with_limits(StoreLimits { max_messages: 100, max_bytes: 1 << 20 });
    let accepted = carry(&mut s, 250);
    let last_ids: Vec<u64> = accepted[150..].iter().map(|m| m.internal_id).collect();
    for m in accepted {
        store.deliver(m.envelope.recipients[0].clone(), Arc::new(m)).unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.held, stats.evicted, stats.delivered), (100, 150, 250));
    let held: Vec<u64> = store.delivered().iter().map(|d| d.message.internal_id).collect();
    assert_eq!(held, last_ids);
    // Paging: 40 at a time, in order, to the end.
    let (mut after, mut paged) = (None, Vec::new());
    loop {
        let page = store.list(Some("alice@contoso.test"), after, 40);
        paged.extend(page.items.iter().map(|(_, d)| d.message.internal_id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, last_ids);
    // The byte cap.
    let small = MailStore::in_memory().with_limits(StoreLimits { max_messages: 1000, max_bytes: 2_000 });
    for m in carry(&mut s, 100) {
        small.deliver(m.envelope.recipients[0].clone(), Arc::new(m)).unwrap();
    }
    assert!(small.stats().held_bytes <= 2_000 && small.stats().evicted > 0, "{:?}", small.stats());
}

/// The trace holds its cap, evicts the oldest first and, under a state directory, reads every
/// event back from `trace.jsonl`.
#[test]
fn the_trace_is_bounded_and_read_back_from_disk() {
    use mailsim_core::trace::TraceEvent;
    use mailsim_io::trace_sink::TraceSink;
    let dir = tempfile::tempdir().unwrap();
    let sink = TraceSink::with_dir(dir.path().to_path_buf()).unwrap().with_max_events(10);
    let ids = Arc::new(IdSource::new(3));
    let mut s = session(&ids);
    let mut out = Vec::new();
    s.on_input(b"EHLO client.test\r\n", Timestamp::from_millis(0), &mut out);
    let accepted = carry(&mut s, 25);
    for m in &accepted {
        let rcpt = &m.envelope.recipients[0];
        sink.record(TraceEvent::received(m, rcpt, "MAILSIM01", Timestamp::from_millis(0)));
    }
    assert_eq!((sink.events().len(), sink.evicted(), sink.recorded()), (10, 15, 25));
    assert_eq!(sink.events()[0].internal_id, Some(accepted[15].internal_id));
    let (page, next) = sink.page(Some(20), 3, |_| true);
    assert_eq!(page.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![21, 22, 23]);
    assert_eq!(next, Some(23));
    assert_eq!(sink.read_back().unwrap().len(), 25);
}
