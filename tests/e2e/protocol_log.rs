//! The protocol log (issue 5 item 5, exo-behaviour §8.3): RECV and SEND files in the Exchange CSV
//! layout under the state directory, and `mailsim trace --transcript` turning one session into a
//! golden transcript that replays against the pure session.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mailsim::endpoint::EndpointOptions;
use mailsim_core::tenant::{DomainPattern, OutboundConnector, SmartHost, TlsSettings};
use mailsim_io::protocol_log::{EventKind, FIELDS, LogKind, LogLine, split_csv};
use mailsim_testkit::certs::TestPki;
use mailsim_testkit::dns::DnsZoneSet;
use mailsim_testkit::hosts::roles;
use mailsim_testkit::peer::{PeerScript, ScriptedPeer};
use mailsim_testkit::sender::{RawReply, ScriptedSender, TlsOptions};
use mailsim_testkit::transcript::Transcript;

use crate::common::*;

/// The one `<prefix>yyyymmdd-1.log` file in `<state>/protocol`, checked line by line: the five
/// header lines first, then nine CSV fields per line. Returns the parsed lines.
fn read_log(state: &Path, kind: LogKind) -> Vec<LogLine> {
    let dir = state.join("protocol");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(kind.prefix()))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let date = &name[4..12];
    assert!(date.chars().all(|c| c.is_ascii_digit()) && name.ends_with("-1.log"), "{name}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "#Software: Microsoft Exchange Server");
    assert!(lines[1].starts_with("#Version: 15."), "{}", lines[1]);
    assert_eq!(lines[2], format!("#Log-Type: {}", kind.log_type()));
    assert!(lines[3].starts_with("#Date: ") && lines[3].ends_with('Z'), "{}", lines[3]);
    assert_eq!(lines[4], format!("#Fields: {FIELDS}"));
    assert!(lines[5..].iter().all(|l| !l.starts_with('#')), "header lines once per file");
    lines[5..]
        .iter()
        .map(|l| {
            assert_eq!(split_csv(l).unwrap().len(), 9, "{l}");
            let line = LogLine::parse(kind, l).unwrap();
            let t = &line.date_time;
            assert!(t.len() == 24 && &t[10..11] == "T" && t.ends_with('Z'), "{t}");
            assert_eq!(t[..10].replace('-', ""), date, "file named after the day of its lines");
            line
        })
        .collect()
}

/// Per session: sequence numbers 0, 1, 2, ... in file order, `+` first and `-` last.
fn sessions(lines: &[LogLine]) -> Vec<Vec<LogLine>> {
    let mut ids: Vec<u64> = Vec::new();
    for l in lines {
        if !ids.contains(&l.session_id) {
            ids.push(l.session_id);
        }
    }
    ids.iter()
        .map(|id| {
            let s: Vec<LogLine> = lines.iter().filter(|l| l.session_id == *id).cloned().collect();
            for (i, l) in s.iter().enumerate() {
                assert_eq!(l.sequence, i as u64, "{s:#?}");
            }
            s
        })
        .collect()
}

fn has(lines: &[LogLine], event: EventKind, data: &str, context: &str) -> bool {
    lines.iter().any(|l| l.event == event && l.data.starts_with(data) && l.context.starts_with(context))
}

fn banner_id(greeting: &str) -> u64 {
    let hex = greeting.rsplit('[').next().unwrap().trim_end_matches(']');
    u64::from_str_radix(hex, 16).unwrap()
}

#[tokio::test]
async fn inbound_session_is_logged_in_the_receive_log() {
    let state = tempfile::tempdir().unwrap();
    let mut options = EndpointOptions::new(tenant());
    options.state_dir = Some(state.path().to_path_buf());
    let ep = start(options).await;
    let local = ep.addr().to_string();
    let (mut c, greeting) =
        mailsim_testkit::sender::ScriptedSender::connect(roles::GATEWAY.loopback, ep.addr()).await.unwrap();
    let id = banner_id(&greeting.last_line());
    c.command("EHLO mail.gateway.test").await.unwrap();
    let pki = TestPki::default_shared();
    let reply = c.starttls(&TlsOptions::with_cert(&pki.gateway), "tenant.mailsim.test").await.unwrap();
    assert_eq!(reply.code, 220);
    let reply = c.send_message("mail.gateway.test", "a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    c.command("QUIT").await.unwrap();
    assert_eq!(ep.store().wait_for("alice@contoso.test", 1, WAIT).await.len(), 1);
    let recorded = ep.protocol_log().session(id).expect("read back from the files");
    ep.stop().await;

    let all = sessions(&read_log(state.path(), LogKind::Receive));
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(s[0].session_id, id, "the session id is the banner's");
    assert_eq!(format!("{:016X}", s[0].session_id).len(), 16);
    assert_eq!(s[0].connector, "MAILSIM01\\Default Frontend");
    assert!(s.iter().all(|l| l.local == local));
    assert!(s[0].remote.starts_with("127.0.0.20:"), "{}", s[0].remote);
    assert_eq!(s[0].event, EventKind::Connect);
    assert_eq!(s.last().unwrap().event, EventKind::Disconnect);
    assert!(has(
        s,
        EventKind::Send,
        "220 MAILSIM01.mail.protection.mailsim.test Microsoft ESMTP MAIL Service ready at",
        ""
    ));
    assert!(has(s, EventKind::Receive, "EHLO mail.gateway.test", ""));
    assert!(has(s, EventKind::Send, "250-SIZE 157286400", ""), "each reply line is an event");
    assert!(has(s, EventKind::Receive, "STARTTLS", ""));
    assert!(has(s, EventKind::Send, "220 2.0.0 SMTP server ready", ""));
    assert!(has(s, EventKind::Info, "", "Sending certificate"));
    assert!(has(s, EventKind::Info, "", "TLS protocol SP_PROT_TLS1_3_SERVER negotiated; cipher TLS13_"));
    assert!(has(s, EventKind::Info, "", "Received certificate"));
    assert!(has(s, EventKind::Info, "CN=mail.gateway.test", "Certificate subject"));
    let thumbprints: Vec<&LogLine> = s.iter().filter(|l| l.context == "Certificate thumbprint").collect();
    assert_eq!(thumbprints.len(), 2, "the tenant's and the client's");
    assert!(thumbprints.iter().all(|l| l.data.len() == 40 && l.data.chars().all(|c| c.is_ascii_hexdigit())));
    assert!(has(s, EventKind::Info, "Trusted", "Certificate validation"));
    assert!(has(s, EventKind::Receive, "MAIL FROM:<a@fabrikam.test>", ""));
    assert!(has(s, EventKind::Send, "354 Start mail input", ""));
    assert!(has(s, EventKind::Info, "DATA", &format!("{} bytes received", MESSAGE.len())));
    assert!(has(s, EventKind::Send, "250 2.6.0", ""));
    assert!(!s.iter().any(|l| l.data.contains("Subject: test")), "content is summarised, not logged line by line");
    assert!(has(s, EventKind::Receive, "QUIT", ""));
    // The TLS lines come after the 220 and before the second EHLO.
    let pos = |pred: &dyn Fn(&LogLine) -> bool| s.iter().position(pred).unwrap();
    let ready = pos(&|l| l.data == "220 2.0.0 SMTP server ready");
    let proto = pos(&|l| l.context.starts_with("TLS protocol"));
    let second_ehlo = s.iter().rposition(|l| l.data.starts_with("EHLO")).unwrap();
    assert!(ready < proto && proto < second_ehlo);
    // `ProtocolLog::session` (read back from the files under a state directory) is the same session.
    assert_eq!(recorded.lines, *s);
}

#[tokio::test]
async fn outbound_attempt_is_logged_in_the_send_log() {
    let state = tempfile::tempdir().unwrap();
    let mut connector = OutboundConnector::new("To gateway");
    connector.recipient_domains = vec![DomainPattern::parse("relay.contoso.test").unwrap()];
    connector.use_mx_record = false;
    connector.smart_hosts = vec![SmartHost::parse("smart.gateway.test").unwrap()];
    connector.tls_settings = TlsSettings::CertificateValidation;
    let mut t = tenant().to_builder();
    t.outbound_connectors = vec![connector];
    let t = t.build().unwrap();
    let zones = DnsZoneSet::new().a("smart.gateway.test", "198.51.100.7".parse().unwrap());
    let dir = state.path().to_path_buf();
    let w = World::start_with_sender(
        t,
        zones,
        vec![("gateway", "198.51.100.7", PeerScript::new("smart.gateway.test"))],
        ("sender", "203.0.113.99"),
        move |o| o.state_dir = Some(dir),
    )
    .await;
    // An unknown recipient of the InternalRelay domain leaves through the connector.
    let reply = w.send("someone@fabrikam.test", &["x@relay.contoso.test"], MESSAGE).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = w.peer("gateway").wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert!(w.endpoint().settled().await);
    w.stop().await;

    let all = sessions(&read_log(state.path(), LogKind::Send));
    assert_eq!(all.len(), 1, "{all:#?}");
    let s = &all[0];
    assert!(s.iter().all(|l| l.connector == "To gateway"), "the outbound connector is the connector-id");
    assert!(has(s, EventKind::Info, "", "attempting to connect"));
    assert!(has(s, EventKind::Info, "smart.gateway.test [198.51.100.7:", "Next hop (declared address)"));
    assert!(has(s, EventKind::Connect, "", ""));
    assert!(has(s, EventKind::Receive, "220 ", ""));
    assert!(has(s, EventKind::Send, "EHLO MAILSIM01.mail.protection.mailsim.test", ""));
    assert!(has(s, EventKind::Send, "STARTTLS", ""));
    assert!(has(s, EventKind::Info, "", "TLS protocol SP_PROT_TLS1_3_CLIENT negotiated; cipher TLS13_"));
    assert!(has(s, EventKind::Info, "", "Remote certificate"));
    assert!(has(s, EventKind::Info, "CN=smart.gateway.test", "Certificate subject"));
    assert!(s.iter().any(|l| l.context == "Certificate thumbprint" && l.data.len() == 40));
    assert!(has(s, EventKind::Send, "MAIL FROM:<someone@fabrikam.test>", ""));
    assert!(has(s, EventKind::Receive, "354", ""));
    assert!(has(s, EventKind::Info, "", "sending message;"));
    assert!(!s.iter().any(|l| l.data.contains("Subject: test")), "content is summarised, not logged line by line");
    assert!(has(s, EventKind::Send, "QUIT", ""));
    assert_eq!(s.last().unwrap().event, EventKind::Disconnect);
    // SEND session ids are 16 hex digits and never the same as the RECV ones.
    let recv = sessions(&read_log(state.path(), LogKind::Receive));
    assert!(recv.iter().all(|r| r[0].session_id != s[0].session_id));
}

#[tokio::test]
async fn transcript_of_a_logged_session_replays() {
    let state = tempfile::tempdir().unwrap();
    let mut options = EndpointOptions::new(tenant());
    options.state_dir = Some(state.path().to_path_buf());
    let ep = start(options).await;
    let (mut c, greeting) =
        mailsim_testkit::sender::ScriptedSender::connect(roles::INTERNET.loopback, ep.addr()).await.unwrap();
    let id = banner_id(&greeting.last_line());
    c.command("EHLO sender.fabrikam.test").await.unwrap();
    // Pipelined: every command still gets its reply in order.
    c.send_raw(b"MAIL FROM:<someone@fabrikam.test>\r\nRCPT TO:<alice@contoso.test>\r\nRCPT TO:<nobody@contoso.test>\r\nDATA\r\n")
        .await
        .unwrap();
    for code in [250, 250, 550, 354] {
        assert_eq!(c.read_reply().await.unwrap().code, code);
    }
    c.send_raw(
        b"Message-ID: <log-1@fabrikam.test>\r\nSubject: logged\r\n\r\n..leading dot\r\nbody, with a comma\r\n.\r\n",
    )
    .await
    .unwrap();
    let queued = c.read_reply().await.unwrap().last_line();
    let bytes = queued.split("] ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    assert_eq!(c.command("NOOP").await.unwrap().code, 250);
    assert_eq!(c.command("BDAT 4").await.unwrap().code, 503, "BDAT without MAIL: refused, chunk still read");
    c.send_raw(b"ab\r\n").await.unwrap();
    assert_eq!(c.command("QUIT").await.unwrap().code, 221);
    assert_eq!(ep.store().wait_for("alice@contoso.test", 1, WAIT).await.len(), 1);
    let recorded = ep.protocol_log().session(id).expect("read back from the files");
    ep.stop().await;

    let (text, warnings) = mailsim::cli::trace::transcript(state.path(), &format!("{id:016x}")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(t.host, "internet");
    for expected in [
        "S~ 220 MAILSIM01.mail.protection.mailsim.test Microsoft ESMTP MAIL Service ready at <*> [<*>]",
        "C: ..leading dot",
        "C: body, with a comma",
        "S~ 550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [MAILSIM01.mail.protection.mailsim.test <*>]",
        &format!(
            "S~ 250 2.6.0 <*> [InternalId=<*>, Hostname=MAILSIM01.mail.protection.mailsim.test] {bytes} bytes in <*> KB/sec Queued mail for delivery"
        ),
        "C: BDAT 4",
        "C: ab",
        "S: 221 2.0.0 Service closing transmission channel",
    ] {
        assert!(text.lines().any(|l| l == expected), "missing {expected:?} in\n{text}");
    }
    let golden = state.path().join("logged.txt");
    std::fs::write(&golden, &text).unwrap();
    t.check(&golden, &crate::transcripts::run_in_process(&t)).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // `ProtocolLog::session` gives the same transcript as `mailsim trace` reading the files.
    assert_eq!(mailsim::cli::trace::transcript_of(&recorded).0, text);
    assert!(mailsim::cli::trace::transcript(state.path(), "0123456789ABCDEF").is_err());
    assert!(mailsim::cli::trace::parse_session_id("not-hex").is_err());
}

/// `trace --transcript` of a STARTTLS session: the dialogue goes on after the handshake (a comment
/// marks it), without warnings, and replays in process with the handshake taken as done.
#[tokio::test]
async fn transcript_of_a_starttls_session_replays() {
    let state = tempfile::tempdir().unwrap();
    let mut options = EndpointOptions::new(tenant());
    options.state_dir = Some(state.path().to_path_buf());
    let ep = start(options).await;
    let (mut c, greeting) =
        mailsim_testkit::sender::ScriptedSender::connect(roles::INTERNET.loopback, ep.addr()).await.unwrap();
    let id = banner_id(&greeting.last_line());
    c.command("EHLO sender.fabrikam.test").await.unwrap();
    assert_eq!(c.starttls(&TlsOptions::default(), "tenant.mailsim.test").await.unwrap().code, 220);
    let reply = c
        .send_message("sender.fabrikam.test", "someone@fabrikam.test", &["alice@contoso.test"], MESSAGE)
        .await
        .unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(c.command("QUIT").await.unwrap().code, 221);
    assert_eq!(ep.store().wait_for("alice@contoso.test", 1, WAIT).await.len(), 1);
    ep.stop().await;

    let (text, warnings) = mailsim::cli::trace::transcript(state.path(), &format!("{id:016X}")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}\n{text}");
    let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let lines: Vec<&str> = text.lines().collect();
    let pos = |wanted: &str| {
        lines.iter().position(|l| l.starts_with(wanted)).unwrap_or_else(|| panic!("missing {wanted:?} in\n{text}"))
    };
    let starttls = pos("C: STARTTLS");
    let ready = pos("S: 220 2.0.0 SMTP server ready");
    let tls = pos("# TLS protocol SP_PROT_TLS1_3_SERVER negotiated; cipher TLS13_");
    let mail = pos("C: MAIL FROM:<someone@fabrikam.test>");
    assert!(starttls < ready && ready < tls && tls < mail, "{text}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("C: EHLO sender.fabrikam.test")).count(), 2, "{text}");
    for expected in ["C: Subject: test", "C: hello", "C: .", "S: 221 2.0.0 Service closing transmission channel"] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    let golden = state.path().join("starttls.txt");
    std::fs::write(&golden, &text).unwrap();
    t.check(&golden, &crate::transcripts::run_in_process(&t)).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

/// `trace --transcript` of an outbound (SEND) session: the tenant's commands as `C:` lines, the
/// peer's replies as `S:` lines, the TLS it negotiated and the content it sent, without warnings.
#[tokio::test]
async fn transcript_of_a_send_session() {
    let state = tempfile::tempdir().unwrap();
    let mut connector = OutboundConnector::new("To gateway");
    connector.recipient_domains = vec![DomainPattern::parse("relay.contoso.test").unwrap()];
    connector.use_mx_record = false;
    connector.smart_hosts = vec![SmartHost::parse("smart.gateway.test").unwrap()];
    connector.tls_settings = TlsSettings::CertificateValidation;
    let mut t = tenant().to_builder();
    t.outbound_connectors = vec![connector];
    let t = t.build().unwrap();
    let zones = DnsZoneSet::new().a("smart.gateway.test", "198.51.100.7".parse().unwrap());
    let dir = state.path().to_path_buf();
    let w = World::start_with_sender(
        t,
        zones,
        vec![("gateway", "198.51.100.7", PeerScript::new("smart.gateway.test"))],
        ("sender", "203.0.113.99"),
        move |o| o.state_dir = Some(dir),
    )
    .await;
    let reply = w.send("someone@fabrikam.test", &["x@relay.contoso.test"], MESSAGE).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(w.peer("gateway").wait_for_messages(1, WAIT).await.len(), 1);
    assert!(w.endpoint().settled().await);
    w.stop().await;

    let send = sessions(&read_log(state.path(), LogKind::Send));
    assert_eq!(send.len(), 1, "{send:#?}");
    let id = send[0][0].session_id;
    let (text, warnings) = mailsim::cli::trace::transcript(state.path(), &format!("{id:016X}")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}\n{text}");
    let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(t.host, "smart.gateway.test");
    assert!(text.starts_with(&format!("# SMTP Send session {id:016X}, ")), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let pos = |wanted: &str| {
        lines.iter().position(|l| l.starts_with(wanted)).unwrap_or_else(|| panic!("missing {wanted:?} in\n{text}"))
    };
    let order = [
        pos("S: 220 "),
        pos("C: EHLO MAILSIM01.mail.protection.mailsim.test"),
        pos("C: STARTTLS"),
        pos("# TLS protocol SP_PROT_TLS1_3_CLIENT negotiated; cipher TLS13_"),
        pos("C: MAIL FROM:<someone@fabrikam.test>"),
        pos("C: RCPT TO:<x@relay.contoso.test>"),
        pos("C: DATA"),
        pos("S: 354"),
        pos("C: Subject: test"),
        pos("C: hello"),
        pos("C: ."),
        pos("C: QUIT"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{text}");

    // Replayed from the tenant's source address against a fresh peer with the same script (the
    // tenant's part sent, the peer's replies compared), the transcript holds.
    let peer =
        ScriptedPeer::start(SocketAddr::new(fresh_loopback(), 0), PeerScript::new("smart.gateway.test")).await.unwrap();
    let source = send[0][0].local.parse::<SocketAddr>().unwrap().ip();
    let (mut c, greeting) = ScriptedSender::connect(source, peer.addr()).await.unwrap();
    let lines_of = |r: &RawReply| r.wire().split('\n').map(str::to_string).collect::<Vec<_>>();
    let mut actual = vec![lines_of(&greeting)];
    for ex in &t.exchanges[1..] {
        let mut lines = Vec::new();
        if ex.client == ["STARTTLS"] {
            lines.extend(lines_of(&c.starttls(&TlsOptions::default(), &t.host).await.unwrap()));
        } else {
            let input: String = ex.client.iter().map(|l| format!("{l}\r\n")).collect();
            c.send_raw(input.as_bytes()).await.unwrap();
            while lines.len() < ex.server.len() {
                match c.read_reply().await {
                    Ok(r) => lines.extend(lines_of(&r)),
                    Err(_) => break,
                }
            }
        }
        actual.push(lines);
    }
    let golden = state.path().join("send.txt");
    std::fs::write(&golden, &text).unwrap();
    t.check(&golden, &actual).unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn volatile_reply_parts_become_patterns() {
    use mailsim::cli::trace::normalise;
    assert_eq!(normalise("250 2.1.5 Recipient OK", true), None);
    assert_eq!(
        normalise("421 4.4.2 Timeout [MAILSIM01.x 2024-10-10T21:13:00.303Z 08DCE5A0132C0518] (x)", true).as_deref(),
        Some("421 4.4.2 Timeout [MAILSIM01.x <*>] (x)")
    );
    assert_eq!(
        normalise(
            "250 2.6.0 <a@b> [InternalId=42, Hostname=H] 71 bytes in 0.003, 23.112 KB/sec Queued mail for delivery",
            false
        )
        .as_deref(),
        Some("250 2.6.0 <*> [InternalId=<*>, Hostname=H] <*> bytes in <*> KB/sec Queued mail for delivery")
    );
}

/// `mailsim serve SCENARIO`: the scenario's world stays up for live clients, with the trace,
/// mailboxes and protocol log under the state directory, until the shutdown future completes.
#[tokio::test]
async fn serve_keeps_a_scenario_world_running_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("live.toml");
    std::fs::write(
        &scenario,
        r#"# A live world: one mailbox, a gateway host (sender only).
[scenario]
name = "live"

[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[host]]
name = "gateway"
address = "198.51.100.7"

[[step]]
send = { from = "gateway", mail_from = "a@fabrikam.test", rcpt_to = ["alice@contoso.test"] }
"#,
    )
    .unwrap();
    let ip = fresh_loopback();
    let port = std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
    let listen = std::net::SocketAddr::new(ip, port);
    let state = dir.path().join("state");
    let args = mailsim::cli::serve::ServeArgs {
        scenario: Some(scenario),
        listen: Some(listen),
        tenant: None,
        state_dir: Some(state.clone()),
        accepted_domains: Vec::new(),
        mailboxes: Vec::new(),
        // The world's test PKI (given files are honoured in scenario mode, relative to the cwd).
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_trust_ca: None,
        dns: None,
        dns_zone: None,
        outbound_address: None,
        authentication: false,
        no_tls: false,
        max_connections: 10,
        idle_timeout: 300,
        http: mailsim::cli::serve_http::HttpArgs { no_http: true, ..Default::default() },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mailsim::cli::serve::run_until(args, async {
        let _ = stopped.await;
    }));
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = mailsim_testkit::sender::ScriptedSender::connect(roles::INTERNET.loopback, listen).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (mut c, greeting) = client.expect("the tenant of the served world accepts connections");
    let id = banner_id(&greeting.last_line());
    let reply = c.send_message("sender.test", "a@fabrikam.test", &["alice@contoso.test"], MESSAGE).await.unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
    c.command("QUIT").await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    assert!(std::fs::read_to_string(state.join("trace.jsonl")).unwrap().contains("alice@contoso.test"));
    let mbox = std::fs::read_to_string(state.join("mailboxes").join("alice@contoso.test.mbox")).unwrap();
    assert_eq!(mbox.lines().filter(|l| l.starts_with("From ")).count(), 1);
    let recv = sessions(&read_log(&state, LogKind::Receive));
    assert_eq!(recv.len(), 1);
    assert_eq!(recv[0][0].session_id, id);
    assert_eq!(recv[0][0].local, listen.to_string());
    let (text, _) = mailsim::cli::trace::transcript(&state, &format!("{id:016X}")).unwrap();
    assert!(text.contains("C: RCPT TO:<alice@contoso.test>"), "{text}");
}
