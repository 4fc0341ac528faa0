//! The live world for real MTAs (issue 9 items 2-4, 6): stable addresses, DNS for `serve --tenant`,
//! the tenant's own outbound address, and flags that apply or are refused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mailsim::cli::serve::ServeArgs;
use mailsim::sim::PlanRole;
use mailsim_testkit::peer::{PeerScript, ScriptedPeer};
use mailsim_testkit::sender::ScriptedSender;

use crate::common::{MESSAGE, fresh_loopback};

const SCENARIO: &str = r#"
[scenario]
name = "live-stable-plan"

[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[host]]
name = "gateway"
address = "198.51.100.7"

[[host]]
name = "partner"
address = "203.0.113.25"
loopback = "127.0.0.230"

[host.peer]
starttls = "Offer"
"#;

/// The plan is a function of the scenario: two loads agree, two worlds of the same scenario run
/// side by side on the same addresses (each its own port), pinned addresses are kept, and the
/// tenant sends from an address that is not its listener's.
#[tokio::test]
async fn addresses_are_stable_across_loads_and_worlds() {
    let path = Path::new("live-stable-plan.toml");
    let a = mailsim::scenario::parse(SCENARIO, path).unwrap();
    let b = mailsim::scenario::parse(SCENARIO, path).unwrap();
    assert_eq!(a.world.tenant_loopback, b.world.tenant_loopback);
    assert_eq!(a.world.dns_loopback, b.world.dns_loopback);
    assert_eq!(a.world.tenant_outbound_loopback, b.world.tenant_outbound_loopback);
    let hosts = |s: &mailsim::scenario::Scenario| s.world.hosts.iter().map(|h| h.loopback).collect::<Vec<_>>();
    assert_eq!(hosts(&a), hosts(&b));
    assert_eq!(a.world.hosts[1].loopback, Some("127.0.0.230".parse().unwrap()), "pinned");

    let one = a.start().await.unwrap();
    let two = b.start().await.unwrap();
    let strip = |rows: Vec<mailsim::sim::PlanRow>| {
        rows.into_iter().map(|r| (r.name, r.declared, r.loopback, r.role)).collect::<Vec<_>>()
    };
    assert_eq!(strip(one.plan()), strip(two.plan()));
    assert_ne!(one.tenant_addr(), two.tenant_addr());
    let plan = one.plan();
    let out = plan.iter().find(|r| r.role == PlanRole::TenantOutbound).unwrap();
    assert_eq!(out.declared, "192.0.2.101".parse::<std::net::IpAddr>().unwrap());
    assert_ne!(out.loopback, one.tenant_addr().ip());
    assert_eq!(Some(out.loopback), a.world.tenant_outbound_loopback);
    one.stop().await;
    two.stop().await;
}

/// Collisions are load errors naming the field.
#[test]
fn pinned_loopback_collisions_are_load_errors() {
    let text = SCENARIO.replace("address = \"198.51.100.7\"", "address = \"198.51.100.7\"\nloopback = \"127.0.0.230\"");
    let e = mailsim::scenario::parse(&text, Path::new("s.toml")).unwrap_err().to_string();
    assert_eq!(
        e,
        "s.toml:19:12: host[2].loopback: 127.0.0.230 is already gateway's loopback address\n  hint: every host binds a loopback address of its own"
    );
    let text = SCENARIO.replace("loopback = \"127.0.0.230\"", "loopback = \"10.0.0.1\"");
    let e = mailsim::scenario::parse(&text, Path::new("s.toml")).unwrap_err().to_string();
    assert!(e.starts_with("s.toml:18:12: host[2].loopback: 10.0.0.1 is not a 127/8 address"), "{e}");
}

fn serve_args(tenant: &Path, listen: SocketAddr) -> ServeArgs {
    ServeArgs {
        scenario: None,
        listen: Some(listen),
        tenant: Some(tenant.to_path_buf()),
        state_dir: None,
        accepted_domains: Vec::new(),
        mailboxes: Vec::new(),
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_trust_ca: None,
        dns: None,
        dns_zone: None,
        outbound_address: None,
        authentication: false,
        no_tls: true,
        max_connections: 10,
        idle_timeout: 300,
        http: mailsim::cli::serve_http::HttpArgs { no_http: true, ..Default::default() },
    }
}

/// `serve --tenant` with a `[dns]` table: a smart host given by name resolves through the tenant's
/// own DNS, and the tenant connects from `--outbound-address`.
#[tokio::test]
async fn serve_tenant_resolves_smart_hosts_through_its_dns_table() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, peer_ip, outbound) = (fresh_loopback(), fresh_loopback(), fresh_loopback());
    let peer_port = std::net::TcpListener::bind((peer_ip, 0)).unwrap().local_addr().unwrap().port();
    let peer =
        ScriptedPeer::start(SocketAddr::new(peer_ip, peer_port), PeerScript::new("smart.fabrikam.test")).await.unwrap();
    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        format!(
            r#"[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]

[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["{sender}"]
RequireTls = false

[[OutboundConnector]]
Name = "To partner"
RecipientDomains = ["fabrikam.test"]
UseMXRecord = false
SmartHosts = ["smart.fabrikam.test:{peer_port}"]

[dns]
records = """
smart.fabrikam.test. A {peer_ip}
"""
"#
        ),
    )
    .unwrap();
    let ip = fresh_loopback();
    let port = std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
    let listen = SocketAddr::new(ip, port);
    let mut args = serve_args(&tenant, listen);
    args.outbound_address = Some(outbound);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mailsim::cli::serve::run_until(args, async {
        let _ = stopped.await;
    }));
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ScriptedSender::connect(sender, listen).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut c, _) = client.expect("serve --tenant accepts connections");
    let reply = c.send_message("onprem.contoso.test", "alice@contoso.test", &["carol@fabrikam.test"], MESSAGE).await;
    assert_eq!(reply.unwrap().code, 250);
    let got = peer.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "delivered through the smart host found in the tenant's [dns]");
    assert_eq!(got[0].client_ip, outbound, "from --outbound-address");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// `serve --tenant --authentication` (issue 11 in the live world): SPF is judged against the
/// tenant file's `[dns]` TXT records and EXO's `Authentication-Results` is stamped on the mailbox
/// copy; without any DNS the flag is refused rather than ignored.
#[tokio::test]
async fn serve_tenant_with_authentication_stamps_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let sender = fresh_loopback();
    let tenant = dir.path().join("tenant.toml");
    let head =
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[Directory]\nMailboxes = [\"alice@contoso.test\"]\n";
    std::fs::write(&tenant, head).unwrap();
    let mut args = serve_args(&tenant, SocketAddr::new(fresh_loopback(), 2525));
    args.authentication = true;
    let e = mailsim::cli::serve::run_until(args, async {}).await.unwrap_err().to_string();
    assert!(e.starts_with("--authentication: SPF, DKIM and DMARC are judged against the world's DNS"), "{e}");

    std::fs::write(&tenant, format!("{head}\n[dns]\ntxt = {{ \"fabrikam.test\" = \"v=spf1 ip4:{sender} -all\" }}\n"))
        .unwrap();
    let ip = fresh_loopback();
    let port = std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
    let listen = SocketAddr::new(ip, port);
    let mut args = serve_args(&tenant, listen);
    args.authentication = true;
    args.state_dir = Some(dir.path().join("state"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mailsim::cli::serve::run_until(args, async {
        let _ = stopped.await;
    }));
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ScriptedSender::connect(sender, listen).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut c, _) = client.expect("serve --tenant accepts connections");
    let content = "From: a@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: spf\r\n\r\nhello\r\n";
    let reply = c.send_message("mail.fabrikam.test", "a@fabrikam.test", &["alice@contoso.test"], content).await;
    assert_eq!(reply.unwrap().code, 250);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let mbox = std::fs::read_to_string(dir.path().join("state/mailboxes/alice@contoso.test.mbox")).unwrap();
    assert!(mbox.contains("Authentication-Results: spf=pass"), "{mbox}");
    assert!(
        mbox.contains(&format!(
            "Received-SPF: Pass (protection.outlook.com: domain of fabrikam.test designates {sender}"
        )),
        "{mbox}"
    );
}

/// `--dns-zone` and a `[dns]` table are one place too many; a zone file's errors point into it.
#[tokio::test]
async fn dns_zone_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone.txt");
    std::fs::write(&zone, "fabrikam.test. MX 10 mx.fabrikam.test.\nmx.fabrikam.test A 203.0.113.25\n").unwrap();
    let e = mailsim::live::zone_file(&zone).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().contains("`mx.fabrikam.test` is not an absolute name"), "{e}");
    std::fs::write(&zone, "fabrikam.test. MX 10 mx.fabrikam.test.\nmx.fabrikam.test. A 203.0.113.25\n").unwrap();
    assert_eq!(mailsim::live::zone_file(&zone).unwrap().zone_names(), ["fabrikam.test"]);

    let tenant = dir.path().join("tenant.toml");
    std::fs::write(
        &tenant,
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[dns]\nrecords = \"x.test. A 192.0.2.1\"\n",
    )
    .unwrap();
    let mut args = serve_args(&tenant, "127.0.0.1:0".parse().unwrap());
    args.dns_zone = Some(zone);
    let e = mailsim::cli::serve::tenant_and_dns(&args).unwrap_err().to_string();
    assert!(e.contains("the tenant file has a [dns] table already"), "{e}");
    // Scenario tables other than [dns] stay out of tenant files.
    std::fs::write(
        &tenant,
        "[[AcceptedDomain]]\nDomainName = \"contoso.test\"\n\n[dns]\nrecords = \"\"\n\n[[host]]\nname = \"x\"\n",
    )
    .unwrap();
    args.dns_zone = None;
    let e = mailsim::cli::serve::tenant_and_dns(&args).unwrap_err().to_string();
    assert!(e.contains("host"), "{e}");
}

/// No flag is silently ignored: with a scenario, TLS flags apply (or are refused when they cannot).
#[test]
fn tls_flags_apply_in_scenario_mode_or_are_refused() {
    let path = Path::new("live.toml");
    let mut world = mailsim::scenario::parse(SCENARIO, path).unwrap().world;
    let mut args = serve_args(Path::new("unused"), "127.0.0.1:0".parse().unwrap());
    args.tenant = None;
    args.no_tls = false;
    args.tls_cert = Some("x.crt".into());
    let e = mailsim::cli::serve::apply_live_flags(&mut world, &args).unwrap_err().to_string();
    assert_eq!(e, "--tls-cert needs --tls-key (the certificate's private key)");
    args.no_tls = true;
    let e = mailsim::cli::serve::apply_live_flags(&mut world, &args).unwrap_err().to_string();
    assert!(e.starts_with("--no-tls: no STARTTLS is offered"), "{e}");
    args.tls_cert = None;
    args.tls_trust_ca = Some("/nonexistent/ca.pem".into());
    args.no_tls = false;
    let e = format!("{:#}", mailsim::cli::serve::apply_live_flags(&mut world, &args).unwrap_err());
    assert!(e.starts_with("--tls-trust-ca /nonexistent/ca.pem"), "{e}");
    args.tls_trust_ca = None;
    mailsim::cli::serve::apply_live_flags(&mut world, &args).unwrap();
    assert_eq!(world.tenant_bind, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(world.dns_bind.map(|d| d.ip()), world.dns_loopback);
}

/// A privileged DNS port says how to get it.
#[test]
fn privileged_port_hint() {
    let hint = mailsim::live::bind_hint("127.0.0.153:53".parse().unwrap());
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    assert_eq!(hint.is_empty(), root, "{hint}");
    assert!(mailsim::live::bind_hint("127.0.0.153:5353".parse().unwrap()).is_empty());
}
