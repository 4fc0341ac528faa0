//! The tenant endpoint over plain TCP: delivery, source addresses, policy refusals with EXO's exact
//! texts, limits and pipelining (issue 2; exo-behaviour §1.1, §4.2, §5).

use std::time::Duration;

use mailsim::endpoint::EndpointOptions;
use mailsim_io::smtp_conn::Timeouts;
use mailsim_testkit::hosts::roles;
use mailsim_testkit::sender::ScriptedSender;

use crate::common::*;

#[tokio::test]
async fn plain_message_reaches_the_mailbox_and_the_source_address_is_the_senders_own() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply =
        c.send_message("sender.fabrikam.test", "a@fabrikam.test", &["Alice@Contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(reply.last_line().starts_with("250 2.6.0 <"), "{}", reply.last_line());
    assert!(reply.last_line().ends_with("Queued mail for delivery"));
    let got = ep.store().wait_for("alice@contoso.test", 1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].peer.observed_ip, roles::INTERNET.loopback);
    let text = String::from_utf8_lossy(&got[0].data);
    assert!(
        text.starts_with(&format!("Received: from sender.fabrikam.test ({}) by MAILSIM01", roles::INTERNET.loopback)),
        "{text}"
    );
    assert!(text.contains("X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"));
    assert!(text.contains("X-MS-Exchange-Organization-MessageDirectionality: Incoming\r\n"));
}

#[tokio::test]
async fn ehlo_advertises_what_exo_advertises() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.command("EHLO x.test").await.unwrap();
    assert_eq!(
        reply.lines[1..],
        [
            "SIZE 157286400",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "SMTPUTF8"
        ]
    );
    assert_eq!(reply.lines[0], format!("MAILSIM01.mail.protection.mailsim.test Hello [{}]", roles::INTERNET.loopback));
}

/// exo-behaviour §4.2 / §5.2: DBEB refuses an unknown recipient of an Authoritative domain at RCPT.
#[tokio::test]
async fn unknown_recipient_of_authoritative_domain_is_refused_at_rcpt_with_dbeb_text() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap();
    let reply = c.command("RCPT TO:<nobody@contoso.test>").await.unwrap();
    let line = reply.last_line();
    assert!(line.starts_with("550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [MAILSIM01.mail.protection.mailsim.test "), "{line}");
    assert!(ep.pipeline().refusals().iter().any(|r| r.stage == "RCPT"));
}

/// exo-behaviour §5.1 and §1.2: relay that nothing attributes is refused with 5.7.64, by default
/// at the end of DATA.
#[tokio::test]
async fn unattributed_relay_is_refused_with_5_7_64_at_end_of_data() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.send_message("x.test", "a@fabrikam.test", &["someone@elsewhere.test"], MESSAGE).await.unwrap();
    assert_eq!(
        reply.last_line(),
        "550 5.7.64 TenantAttribution; Relay Access Denied [MAILSIM01.mail.protection.mailsim.test]"
    );
    assert!(ep.store().delivered().is_empty());
    assert!(ep.pipeline().queued().is_empty());
}

/// Without a DNS server the outbound stage cannot resolve the InternalRelay domain: the recipient
/// is deferred with 4.4.312 and stays visible in the queue (nothing accepted is lost).
#[tokio::test]
async fn internal_relay_recipient_without_dns_is_deferred_and_stays_queued() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.send_message("x.test", "a@fabrikam.test", &["onprem@relay.contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250);
    assert!(ep.settled().await);
    let queue = ep.pipeline().queued();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].recipients[0].to_string(), "onprem@relay.contoso.test");
    assert_eq!(
        queue[0].last_error.as_ref().unwrap().to_string(),
        "450 4.4.312 DNS query failed [LastAttemptedServerName=relay.contoso.test]"
    );
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.send_raw(b"MAIL FROM:<a@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<nobody@contoso.test>\r\nRCPT TO:<bob@contoso.test>\r\nDATA\r\n").await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(c.read_reply().await.unwrap().code);
    }
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    c.send_raw(b"Subject: p\r\n\r\nx\r\n.\r\nQUIT\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap().code, 250);
    assert_eq!(c.read_reply().await.unwrap().code, 221);
    assert_eq!(ep.store().wait_for("bob@contoso.test", 1, WAIT).await.len(), 1);
    assert_eq!(ep.store().mailbox("alice@contoso.test").len(), 1);
}

#[tokio::test]
async fn size_limit_is_enforced_at_mail_and_at_end_of_data() {
    let mut tenant = tenant().to_builder();
    tenant.settings.max_message_size = 2000;
    let tenant = tenant.build().unwrap();
    let ep = start(EndpointOptions::new(tenant)).await;
    let mut c = connect(roles::INTERNET, &ep).await;
    let reply = c.command("EHLO x.test").await.unwrap();
    assert!(reply.lines.contains(&"SIZE 2000".to_string()));
    let reply = c.command("MAIL FROM:<a@fabrikam.test> SIZE=5000").await.unwrap();
    assert_eq!(reply.last_line(), "552 5.3.4 Message size exceeds fixed maximum message size");
    let big = format!("Subject: big\r\n\r\n{}", "0123456789abcdef\r\n".repeat(200));
    let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], &big).await.unwrap();
    assert_eq!(reply.last_line(), "552 5.3.4 Message size exceeds fixed maximum message size");
    // The session goes on.
    let reply = c.transaction("a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250);
}

/// exo-behaviour §6: more than MaxRecipientsPerMessage → 452 4.5.3.
#[tokio::test]
async fn recipient_limit_answers_452_4_5_3() {
    let mut tenant = tenant().to_builder();
    tenant.settings.max_recipients = 2;
    let tenant = tenant.build().unwrap();
    let ep = start(EndpointOptions::new(tenant)).await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    c.command("MAIL FROM:<a@fabrikam.test>").await.unwrap();
    assert_eq!(c.command("RCPT TO:<alice@contoso.test>").await.unwrap().code, 250);
    assert_eq!(c.command("RCPT TO:<bob@contoso.test>").await.unwrap().code, 250);
    assert_eq!(c.command("RCPT TO:<alice@contoso.test>").await.unwrap().last_line(), "452 4.5.3 Too many recipients");
}

#[tokio::test]
async fn idle_client_gets_the_timeout_reply_and_is_disconnected() {
    let mut options = EndpointOptions::new(tenant());
    options.timeouts = Timeouts { idle: Duration::from_millis(300), ..Timeouts::default() };
    let ep = start(options).await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    let reply = c.read_reply().await.unwrap();
    assert_eq!(reply.last_line(), "451 4.7.0 Timeout waiting for client input");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn connection_cap_answers_421_4_3_2_and_the_server_stays_up() {
    let mut options = EndpointOptions::new(tenant());
    options.max_connections = 2;
    let ep = start(options).await;
    let first = connect(roles::INTERNET, &ep).await;
    let second = connect(roles::GATEWAY, &ep).await;
    let (mut third, reply) = ScriptedSender::connect(roles::PARTNER.loopback, ep.addr()).await.unwrap();
    assert_eq!(
        reply.last_line(),
        "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel"
    );
    assert!(third.is_closed().await);
    drop(first);
    drop(second);
    // Slots free up once the others leave.
    let mut ok = false;
    for _ in 0..50 {
        let (_, reply) = ScriptedSender::connect(roles::PARTNER.loopback, ep.addr()).await.unwrap();
        if reply.code == 220 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a slot became free");
}

#[tokio::test]
async fn shutdown_tells_open_sessions_421() {
    let ep = start_default().await;
    let mut c = connect(roles::INTERNET, &ep).await;
    c.command("EHLO x.test").await.unwrap();
    let stopping = tokio::spawn(ep.stop());
    let reply = c.read_reply().await.unwrap();
    assert_eq!(reply.last_line(), "421 4.3.2 Service not available, closing transmission channel");
    stopping.await.unwrap();
}
