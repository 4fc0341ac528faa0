//! The peer's own tests, through a `ScriptedSender` (which shares no code with it either).

use std::time::Instant;

use super::dialogue::parse_path;
use super::script::resolve;
use super::*;
use crate::hosts::roles;
use crate::sender::{ScriptedSender, TlsOptions};

const WAIT: Duration = Duration::from_secs(10);

async fn peer(script: PeerScript) -> ScriptedPeer {
    ScriptedPeer::start(roles::PARTNER.socket(0), script).await.expect("start peer")
}

async fn connect(peer: &ScriptedPeer) -> ScriptedSender {
    let (sender, greeting) = ScriptedSender::connect(roles::TENANT.loopback, peer.addr()).await.expect("connect");
    assert_eq!(greeting.code, 220, "{greeting:?}");
    sender
}

/// RFC 5321 §4.5.2: a line starting with `.` arrives with its stuffing removed.
#[tokio::test]
async fn plain_delivery_lands_in_the_inbox_dot_unstuffed() {
    let mut peer = peer(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).await;
    let mut s = connect(&peer).await;
    let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
    assert!(ehlo.lines.iter().any(|l| l == "PIPELINING"), "{ehlo:?}");
    assert!(ehlo.lines.iter().any(|l| l == "8BITMIME"), "{ehlo:?}");
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS" || l == "CHUNKING"), "{ehlo:?}");
    let reply = s.transaction("a@tenant.test", &["b@partner.test"], "Subject: hi\n\n.hidden\nbody\n").await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(s.command("QUIT").await.unwrap().code, 221);

    let inbox = peer.wait_for_messages(1, WAIT).await;
    assert_eq!(inbox.len(), 1);
    let m = &inbox[0];
    assert_eq!(m.mail_from, "a@tenant.test");
    assert_eq!(m.rcpt_to, ["b@partner.test"]);
    assert_eq!(m.data, b"Subject: hi\r\n\r\n.hidden\r\nbody\r\n");
    assert_eq!(m.tls, None);
    assert_eq!(m.client_ip, roles::TENANT.loopback);
    assert_eq!(m.helo.as_deref(), Some("tenant.mailsim.test"));
    assert_eq!(peer.connections(), 1);
    let t = &peer.transcripts()[0];
    assert!(t.contains(&"C: MAIL FROM:<a@tenant.test>".to_string()), "{t:#?}");
    assert!(t.contains(&"S: 221 2.0.0 Bye".to_string()), "{t:#?}");
    assert_eq!(peer.wait_for_idle(WAIT).await, 0);
    assert_eq!(peer.stop().await, 0);
}

/// RFC 2920: commands written in one go are answered in order.
#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let peer = peer(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).await;
    let mut s = connect(&peer).await;
    s.send_raw(b"EHLO a.test\r\nMAIL FROM:<>\r\nRCPT TO:<x@partner.test>\r\nDATA\r\n").await.unwrap();
    let codes = [
        s.read_reply().await.unwrap().code,
        s.read_reply().await.unwrap().code,
        s.read_reply().await.unwrap().code,
        s.read_reply().await.unwrap().code,
    ];
    assert_eq!(codes, [250, 250, 250, 354]);
    s.send_raw(b"x\r\n.\r\nBDAT 10\r\n").await.unwrap();
    assert_eq!(s.read_reply().await.unwrap().code, 250);
    assert_eq!(s.read_reply().await.unwrap().code, 500);
    assert_eq!(peer.inbox()[0].mail_from, "");
}

/// RFC 3207 §4: a server that requires TLS answers 530 before it; EHLO is forgotten after it.
#[tokio::test]
async fn require_starttls_refuses_plaintext_mail_then_records_tls_and_client_cert() {
    let pki = TestPki::default_shared();
    let peer = peer(PeerScript {
        starttls: StartTls::Require,
        client_cert: ClientCertRequest::Request,
        ..PeerScript::new("mx.partner.test")
    })
    .await;
    let mut s = connect(&peer).await;
    let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let refused = s.command("MAIL FROM:<a@tenant.test>").await.unwrap();
    assert_eq!(refused.last_line(), "530 5.7.0 Must issue a STARTTLS command first");
    assert_eq!(s.starttls(&TlsOptions::with_cert(&pki.gateway), "mx.partner.test").await.unwrap().code, 220);
    assert_eq!(s.command("MAIL FROM:<a@tenant.test>").await.unwrap().code, 503, "EHLO forgotten after TLS");
    let ehlo = s.command("EHLO tenant.mailsim.test").await.unwrap();
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let reply = s.transaction("a@tenant.test", &["b@partner.test"], "hello\n").await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");

    let inbox = peer.wait_for_messages(1, WAIT).await;
    let tls = inbox[0].tls.as_ref().expect("delivered over TLS");
    assert_eq!(tls.version, "TLS1_3");
    assert!(!tls.cipher.is_empty());
    assert_eq!(tls.client_cert_subject.as_deref(), Some("CN=mail.gateway.test"));
    assert_eq!(tls.sni.as_deref(), Some("mx.partner.test"));
}

/// The scripted certificates fail a verifying client for the reason their name says.
#[tokio::test]
async fn scripted_certificates_fail_verification_for_their_own_reason() {
    let pki = TestPki::default_shared();
    let roots = TlsOptions { roots: Some(vec![pki.ca.cert_der().clone()]), ..TlsOptions::default() };
    let peer = peer(PeerScript::new("mx.partner.test")).await;
    for (cert, expect) in [
        (PeerCert::RightName, None),
        (PeerCert::WrongName, Some("not valid for name")),
        (PeerCert::Expired, Some("expired")),
        (PeerCert::Untrusted, Some("UnknownIssuer")),
    ] {
        peer.set_script(PeerScript { cert: cert.clone(), ..PeerScript::new("mx.partner.test") }).unwrap();
        let mut s = connect(&peer).await;
        s.command("EHLO tenant.mailsim.test").await.unwrap();
        let result = s.starttls(&roots, "mx.partner.test").await;
        match (expect, result) {
            (None, Ok(r)) => assert_eq!(r.code, 220),
            (Some(word), Err(e)) => assert!(e.to_string().contains(word), "{cert:?}: {e}"),
            (expect, got) => panic!("{cert:?}: expected {expect:?}, got {got:?}"),
        }
    }
}

/// One refused recipient of two: the message is accepted for the other only.
#[tokio::test]
async fn per_recipient_550_refuses_only_that_recipient() {
    let mut script = PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") };
    script.on_rcpt_for.insert("Gone@partner.test".into(), Behaviour::reply(550, "5.1.1 User unknown"));
    let peer = peer(script).await;
    let mut s = connect(&peer).await;
    let reply = s
        .send_message("tenant.mailsim.test", "a@tenant.test", &["ok@partner.test", "gone@partner.test"], "x\n")
        .await
        .unwrap();
    assert_eq!(reply.code, 250);
    assert!(s.transcript().contains(&"S: 550 5.1.1 User unknown".to_string()), "{:#?}", s.transcript());
    assert_eq!(peer.wait_for_messages(1, WAIT).await[0].rcpt_to, ["ok@partner.test"]);
}

/// "4xx first, then accept": the sequence advances across connections.
#[tokio::test]
async fn rcpt_sequence_defers_first_connection_and_accepts_the_second() {
    let peer = peer(PeerScript {
        starttls: StartTls::None,
        on_rcpt: Behaviour::Sequence(vec![Behaviour::reply(451, "4.3.0 Try again later"), Behaviour::Accept]),
        ..PeerScript::new("mx.partner.test")
    })
    .await;
    let mut first = connect(&peer).await;
    let reply = first.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await.unwrap();
    assert_eq!(reply.last_line(), "451 4.3.0 Try again later");
    first.command("QUIT").await.unwrap();
    let mut second = connect(&peer).await;
    let reply = second.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await.unwrap();
    assert_eq!(reply.code, 250);
    assert_eq!(peer.wait_for_messages(1, WAIT).await.len(), 1);
    assert_eq!(peer.connections(), 2);
}

/// A connection dropped after the final dot delivers nothing.
#[tokio::test]
async fn drop_at_end_of_data_closes_without_reply_and_keeps_nothing() {
    let peer = peer(PeerScript {
        starttls: StartTls::None,
        on_end_of_data: Behaviour::Drop,
        ..PeerScript::new("mx.partner.test")
    })
    .await;
    let mut s = connect(&peer).await;
    let result = s.send_message("t.test", "a@tenant.test", &["b@partner.test"], "x\n").await;
    assert!(matches!(result, Err(crate::sender::SenderError::Closed)), "{result:?}");
    assert_eq!(peer.wait_for_idle(WAIT).await, 0);
    assert!(peer.inbox().is_empty());
    assert!(peer.transcripts()[0].contains(&"! drop".to_string()));
}

/// A delay holds the reply back at least that long, then the default reply follows.
#[tokio::test]
async fn delay_is_honoured_then_default_reply() {
    let peer = peer(PeerScript {
        starttls: StartTls::None,
        on_mail: Behaviour::Delay(Duration::from_millis(200)),
        ..PeerScript::new("mx.partner.test")
    })
    .await;
    let mut s = connect(&peer).await;
    s.command("EHLO t.test").await.unwrap();
    let started = Instant::now();
    let reply = s.command("MAIL FROM:<a@tenant.test>").await.unwrap();
    let took = started.elapsed();
    assert_eq!(reply.code, 250);
    assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(5), "{took:?}");
}

/// Scripts are data: a changed script applies to the next command, and stop reports leaks.
#[tokio::test]
async fn set_script_changes_behaviour_and_stop_reports_open_connections() {
    let mut peer = peer(PeerScript {
        starttls: StartTls::None,
        on_connect: Behaviour::reply(554, "5.7.1 Go away"),
        ..PeerScript::new("mx.partner.test")
    })
    .await;
    let (mut s, greeting) = ScriptedSender::connect(roles::TENANT.loopback, peer.addr()).await.unwrap();
    assert_eq!(greeting.last_line(), "554 5.7.1 Go away");
    assert_eq!(s.command("EHLO t.test").await.unwrap().code, 503);
    peer.set_script(PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") }).unwrap();
    let _open = connect(&peer).await;
    assert_eq!(peer.wait_for_connections(2, WAIT).await, 2);
    assert_eq!(peer.stop().await, 2);
    assert_eq!(peer.left_open_at_stop(), Some(2));
    assert_eq!(peer.open_connections(), 0);
    assert!(peer.transcripts()[1].contains(&"! aborted by stop".to_string()));
}

/// RFC 5321 §4.1.1.4: only CRLF.CRLF ends the data; bare LF and `\r.\r` are content.
/// Oversized messages get 552 and the session goes on.
#[tokio::test]
async fn data_end_needs_crlf_dot_crlf_and_size_is_capped() {
    let peer =
        peer(PeerScript { starttls: StartTls::None, max_message_size: 64, ..PeerScript::new("mx.p.test") }).await;
    let mut s = connect(&peer).await;
    s.command("EHLO t.test").await.unwrap();
    s.send_raw(b"MAIL FROM:<a@t.test>\r\nRCPT TO:<b@p.test>\r\nDATA\r\n").await.unwrap();
    for code in [250, 250, 354] {
        assert_eq!(s.read_reply().await.unwrap().code, code);
    }
    s.send_raw(b"one\n.\ntwo\r\n..dot\r\n\r.\r\n.\r\n").await.unwrap();
    assert_eq!(s.read_reply().await.unwrap().code, 250);
    assert_eq!(peer.inbox()[0].data, b"one\n.\ntwo\r\n.dot\r\n\r.\r\n");

    s.send_raw(b"MAIL FROM:<a@t.test> SIZE=65\r\n").await.unwrap();
    assert_eq!(s.read_reply().await.unwrap().code, 552);
    let big = "x".repeat(100);
    let reply = s.transaction("a@t.test", &["b@p.test"], &big).await.unwrap();
    assert_eq!(reply.last_line(), "552 5.3.4 Message size exceeds fixed maximum message size");
    s.send_raw(format!("NOOP {}\r\n", "y".repeat(MAX_COMMAND_LINE)).as_bytes()).await.unwrap();
    assert_eq!(s.read_reply().await.unwrap().code, 500);
    assert!(s.is_closed().await);
    assert_eq!(peer.inbox().len(), 1);
}

#[tokio::test]
async fn non_loopback_bind_is_refused() {
    let err = ScriptedPeer::start("0.0.0.0:0".parse().unwrap(), PeerScript::default()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn sequence_repeats_its_last_entry() {
    let seq = Behaviour::Sequence(vec![Behaviour::reply(451, "4.0.0 a"), Behaviour::Drop]);
    assert_eq!(resolve(&seq, 0), &Behaviour::reply(451, "4.0.0 a"));
    assert_eq!(resolve(&seq, 1), &Behaviour::Drop);
    assert_eq!(resolve(&seq, 7), &Behaviour::Drop);
    assert_eq!(resolve(&Behaviour::Sequence(vec![]), 3), &Behaviour::Accept);
}

#[test]
fn parse_path_rows() {
    assert_eq!(parse_path("FROM:<a@b> SIZE=10", "FROM:"), Some(("a@b".into(), "SIZE=10")));
    assert_eq!(parse_path("from: <>", "FROM:"), Some((String::new(), "")));
    assert_eq!(parse_path("TO:c@d", "TO:"), Some(("c@d".into(), "")));
    assert_eq!(parse_path("TO:<c@d", "TO:"), None);
    assert_eq!(parse_path("FROM <a@b>", "FROM:"), None);
    assert_eq!(parse_path("", "TO:"), None);
}

/// A long rehearsal does not grow the inbox without bound: the newest `cap` stay in memory, older
/// ones are dropped first and counted, and every one is on disk under the inbox directory.
#[tokio::test]
async fn the_inbox_keeps_the_newest_in_memory_and_every_message_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = InboxOptions { dir: Some(dir.path().join("peers").join("partner")), cap: 2 };
    let script = PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") };
    let peer = ScriptedPeer::start_with_inbox(roles::PARTNER.socket(0), script, TestPki::default_shared(), inbox)
        .await
        .unwrap();
    let mut s = connect(&peer).await;
    s.command("EHLO tenant.mailsim.test").await.unwrap();
    for n in 1..=5 {
        let reply = s.transaction("a@tenant.test", &["b@partner.test"], &format!("Subject: {n}\r\n\r\nbody\r\n")).await;
        assert_eq!(reply.unwrap().last_line(), format!("250 2.6.0 Message {n} accepted"));
    }
    assert_eq!(peer.wait_for_messages(5, WAIT).await.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
    assert_eq!((peer.received(), peer.dropped()), (5, 3));
    assert_eq!(peer.message(5).unwrap().rcpt_to, ["b@partner.test"]);
    assert_eq!(peer.message(1), None, "dropped from memory");
    assert_eq!(peer.stored(1).unwrap().unwrap(), b"Subject: 1\r\n\r\nbody\r\n");
    assert_eq!(peer.stored_ids().unwrap(), [1, 2, 3, 4, 5]);
    assert!(dir.path().join("peers/partner/0000000003.eml").exists());
    assert_eq!(peer.stored(9).unwrap(), None);
    drop(s);
    drop(peer);
    // A peer started again on the same directory numbers on from there.
    let inbox = InboxOptions { dir: Some(dir.path().join("peers").join("partner")), cap: 2 };
    let script = PeerScript { starttls: StartTls::None, ..PeerScript::new("mx.partner.test") };
    let peer = ScriptedPeer::start_with_inbox(roles::PARTNER.socket(0), script, TestPki::default_shared(), inbox)
        .await
        .unwrap();
    let mut s = connect(&peer).await;
    s.command("EHLO tenant.mailsim.test").await.unwrap();
    let reply = s.transaction("a@tenant.test", &["b@partner.test"], "Subject: 6\r\n\r\nbody\r\n").await.unwrap();
    assert_eq!(reply.last_line(), "250 2.6.0 Message 6 accepted");
    assert_eq!(peer.stored_ids().unwrap(), [1, 2, 3, 4, 5, 6]);
}
