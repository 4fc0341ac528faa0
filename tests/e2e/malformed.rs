//! Hostile input over real sockets: every variant gets its reply and the server stays up
//! (issue 2 item 5; RFC 5321 §4.1.1.4, §4.5.3.1).

use mailsim_testkit::hosts::roles;

use crate::common::*;

/// SMTP smuggling: a message ends only at CRLF.CRLF; each bare-CR/LF variant refuses the whole
/// message with `554 5.6.0`, and the smuggled second message is never accepted.
#[tokio::test]
async fn smuggling_variants_are_refused_whole() {
    let ep = start_default().await;
    for variant in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n"] {
        let mut c = connect(roles::INTERNET, &ep).await;
        c.command("EHLO x.test").await.unwrap();
        c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap();
        c.command("RCPT TO:<alice@contoso.test>").await.unwrap();
        assert_eq!(c.command("DATA").await.unwrap().code, 354);
        let smuggled = [
            b"Subject: first\r\n\r\nhello".as_slice(),
            variant,
            b"MAIL FROM:<evil@fabrikam.test>\r\nRCPT TO:<bob@contoso.test>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n",
        ]
        .concat();
        c.send_raw(&smuggled).await.unwrap();
        let reply = c.read_reply().await.unwrap();
        assert!(reply.code == 554, "{variant:?}: {reply:?}");
        // The server is still there and the connection still works.
        assert_eq!(c.command("NOOP").await.unwrap().code, 250, "{variant:?}");
    }
    assert!(ep.store().delivered().is_empty(), "nothing accepted, nothing smuggled");
}

#[tokio::test]
async fn bare_lf_reply_text_is_exchanges() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.send_message("x.test", "a@fabrikam.test", &["alice@contoso.test"], "").await.unwrap();
    assert_eq!(reply.code, 250, "empty message is fine");
    c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap();
    c.command("RCPT TO:<alice@contoso.test>").await.unwrap();
    c.command("DATA").await.unwrap();
    c.send_raw(b"Subject: x\n\nbody\r\n.\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().last_line(), "554 5.6.0 Invalid message content, contains bare linefeeds");
}

#[tokio::test]
async fn over_long_command_and_text_lines() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.command(&format!("EHLO {}", "a".repeat(600))).await.unwrap();
    assert_eq!(reply.last_line(), "500 5.5.2 Command too long");
    c.command("EHLO x.test").await.unwrap();
    let long = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(1200));
    let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], &long).await.unwrap();
    assert_eq!(reply.last_line(), "500 5.5.2 Line too long");
    let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250);
}

#[tokio::test]
async fn nul_and_eight_bit_where_not_allowed() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.send_raw(b"NOOP \x00\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().last_line(), "501 5.5.4 Invalid arguments");
    let reply = c.command("MAIL FROM:<jörg@fabrikam.test>").await.unwrap();
    assert_eq!(reply.last_line(), "553 5.6.7 Non-ASCII addresses not permitted without SMTPUTF8");
    let reply = c.command("MAIL FROM:<jörg@fabrikam.test> SMTPUTF8").await.unwrap();
    assert_eq!(reply.code, 250);
    c.command("RCPT TO:<alice@contoso.test>").await.unwrap();
    c.command("DATA").await.unwrap();
    c.send_raw(b"Subject: x\r\n\r\nnul\x00here\r\n.\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().last_line(), "554 5.6.0 Invalid message content, contains NUL characters");
}

#[tokio::test]
async fn unknown_commands_and_too_many_errors_close_the_connection() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    // MaxProtocolErrors 5 (exo-behaviour §5.5): five errors are answered, the sixth closes.
    for _ in 0..5 {
        assert_eq!(c.command("XYZZY").await.unwrap().last_line(), "500 5.3.3 Unrecognized command");
    }
    c.send_raw(b"XYZZY\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().code, 500);
    assert_eq!(
        c.read_reply().await.unwrap().last_line(),
        "421 4.7.0 Too many errors on this connection, closing transmission channel"
    );
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn abrupt_disconnect_mid_data_loses_nothing_accepted_and_the_server_stays_up() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap();
    c.command("RCPT TO:<alice@contoso.test>").await.unwrap();
    c.command("DATA").await.unwrap();
    c.send_raw(b"Subject: half\r\n\r\nhalf a mess").await.unwrap();
    c.abort();
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.send_message("x.test", "a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250);
    let got = ep.store().wait_for("alice@contoso.test", 1, WAIT).await;
    assert_eq!(got.len(), 1, "only the complete message");
}

#[tokio::test]
async fn abrupt_disconnect_mid_handshake_then_a_good_transaction() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    assert_eq!(c.command("STARTTLS").await.unwrap().code, 220);
    c.send_raw(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello").await.unwrap();
    c.abort();
    let mut c = connect(roles::INTERNET, &ep).await;
    assert_eq!(c.command("EHLO x.test").await.unwrap().code, 250);
    let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250);
}
