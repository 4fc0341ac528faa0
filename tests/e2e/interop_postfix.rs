//! Interop with real Postfix (issue 9): private Postfix instances (Debian's `postfix` package) as
//! the admin's security gateway and as a partner's MTA, against a running world on loopback.
//!
//! Each instance has its own config, queue and data directories under a temporary directory, binds
//! only its own loopback address and port, logs to its own `maillog`, and is stopped with
//! `postfix -c DIR stop` (then by its master's PID) when the test ends; every wait is bounded.
//! Postfix needs root to start its master; the tests skip with a message when the binary is absent
//! or the process is not root, unless `MAILSIM_REQUIRE_POSTFIX` is set (as `.ci/run` does), in which
//! case they fail.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mailsim::sim::{SendSpec, Simulation};
use mailsim_testkit::certs::{LeafCert, LeafSpec, TestCa, TestPki};
use mailsim_testkit::sender::ScriptedSender;

use crate::api::{call, get as api_get, live, post as api_post};
use crate::common::fresh_loopback;

const POSTFIX: &str = "/usr/sbin/postfix";
/// How long any one Postfix step (start, relay, log line) may take.
const BOUND: Duration = Duration::from_secs(40);

/// Whether Postfix can run here; panics when it cannot but `MAILSIM_REQUIRE_POSTFIX` is set.
fn postfix_usable(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    let why = if !Path::new(POSTFIX).exists() {
        Some(format!("{POSTFIX} is not installed (apt-get install postfix; .ci/run does)"))
    } else if !root {
        Some("Postfix's master must start as root".to_string())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var_os("MAILSIM_REQUIRE_POSTFIX").is_some() => {
            panic!("{test}: MAILSIM_REQUIRE_POSTFIX is set but {why}")
        }
        Some(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

/// One private Postfix instance.
struct Postfix {
    dir: tempfile::TempDir,
    listen: SocketAddr,
}

/// The daemons a relay needs (Debian's master.cf, chroot off: the instance's paths are its own).
const SERVICES: &str = "\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

fn run(cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("{cmd:?}: {e}"),
    }
}

impl Postfix {
    /// Starts an instance whose smtpd listens on `listen`, with `extra` lines appended to main.cf
    /// (`{dir}` stands for the instance's directory). Waits until it answers.
    async fn start(name: &str, listen: SocketAddr, extra: &str) -> Postfix {
        Self::start_with(name, listen, extra, None).await
    }

    /// As [`Postfix::start`], in a mount namespace of its own where `/etc/resolv.conf` is
    /// `resolv` (Postfix's resolver cannot be pointed at a nameserver any other way).
    async fn start_in_namespace(name: &str, listen: SocketAddr, extra: &str, resolv: &Path) -> Postfix {
        Self::start_with(name, listen, extra, Some(resolv.to_path_buf())).await
    }

    async fn start_with(name: &str, listen: SocketAddr, extra: &str, resolv: Option<PathBuf>) -> Postfix {
        let dir = tempfile::Builder::new().prefix(&format!("mailsim-postfix-{name}-")).tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let instance = Postfix { dir, listen };
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        run(Command::new("chmod").arg("755").arg(&d));
        run(Command::new("chown").arg("postfix:postfix").arg(d.join("data")).arg(d.join("mail")));
        let main = format!(
            "compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = {name}.postfix.test
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
smtpd_peername_lookup = no
smtp_connect_timeout = 5s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
{extra}
",
            dir = d.display(),
            extra = extra.replace("{dir}", &d.display().to_string()),
        );
        std::fs::write(d.join("etc/main.cf"), main).unwrap();
        std::fs::write(d.join("etc/master.cf"), format!("{listen} inet n - n - - smtpd\n{SERVICES}")).unwrap();
        let etc = d.join("etc");
        let out = tokio::task::spawn_blocking(move || match resolv {
            None => run(Command::new(POSTFIX).arg("-c").arg(&etc).arg("start")),
            Some(resolv) => run(Command::new("unshare").arg("-m").arg("sh").arg("-c").arg(format!(
                "mount --bind '{}' /etc/resolv.conf && exec {POSTFIX} -c '{}' start",
                resolv.display(),
                etc.display()
            ))),
        })
        .await
        .unwrap();
        let deadline = Instant::now() + BOUND;
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(Instant::now() < deadline, "Postfix {name} did not listen on {listen}: {out}\n{}", instance.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        instance
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file of the instance's directory with `text` (certificates, keys), readable by Postfix.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("maillog")).unwrap_or_default()
    }

    /// Waits until the maillog has a line containing `needle`; returns that line.
    async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "no {needle:?} in Postfix's log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one message into the instance's smtpd from `source`.
    async fn submit(&self, source: IpAddr, from: &str, to: &str, subject: &str) {
        let (mut c, greeting) = ScriptedSender::connect(source, self.listen).await.unwrap();
        assert_eq!(greeting.code, 220, "{greeting:?}");
        let data = format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nthrough Postfix\r\n");
        let reply = c.send_message("client.test", from, &[to], &data).await.unwrap();
        assert_eq!(reply.code, 250, "Postfix refused the submission: {reply:?}");
        let _ = c.command("QUIT").await;
    }

    /// Files delivered by the virtual agent under `mail/<box>/new`.
    async fn wait_maildir(&self, mailbox: &str) -> String {
        let dir = self.path().join("mail").join(mailbox).join("new");
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(Ok(e)) = std::fs::read_dir(&dir).ok().and_then(|mut r| r.next()) {
                return std::fs::read_to_string(e.path()).unwrap();
            }
            assert!(Instant::now() < deadline, "nothing delivered to {}:\n{}", dir.display(), self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let etc = self.path().join("etc");
        let _ = Command::new(POSTFIX).arg("-c").arg(&etc).arg("stop").output();
        // Whatever is left of the master after `stop`, by its PID.
        if let Ok(pid) = std::fs::read_to_string(self.path().join("queue/pid/master.pid")) {
            let pid = pid.trim();
            if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").arg("-9").arg(pid).output();
            }
        }
    }
}

/// The TLS client lines of a gateway presenting `cert`.
fn client_tls(pf: &Postfix, cert: &LeafCert) -> String {
    let chain = pf.write("client.pem", &cert.chain_pem);
    let key = pf.write("client.key", &cert.key_pem);
    format!(
        "smtp_tls_security_level = encrypt\nsmtp_tls_cert_file = {}\nsmtp_tls_key_file = {}\n",
        chain.display(),
        key.display()
    )
}

const TENANT_BASE: &str = r#"
[[AcceptedDomain]]
DomainName = "contoso.test"
DomainType = "Authoritative"

[Directory]
Mailboxes = ["alice@contoso.test", "bob@contoso.test"]
"#;

async fn world(name: &str, tables: &str) -> Simulation {
    let text = format!("[scenario]\nname = \"{name}\"\n{TENANT_BASE}{tables}");
    let scenario = mailsim::scenario::parse(&text, Path::new(&format!("{name}.toml"))).unwrap();
    scenario.start().await.unwrap()
}

const LOCKDOWN_BY_CERT: &str = r#"
[[InboundConnector]]
Name = "From gateway (certificate)"
ConnectorType = "Partner"
SenderDomains = ["*"]
TlsSenderCertificateName = "mail.gateway.test"
RestrictDomainsToCertificate = true
RequireTls = true

[[host]]
name = "gateway"
address = "198.51.100.7"
"#;

const LOCKDOWN_BY_IP: &str = r#"
[[InboundConnector]]
Name = "From gateway (IP)"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true
RequireTls = false

[[host]]
name = "gateway"
address = "198.51.100.7"
"#;

/// A Postfix gateway in front of the world's tenant: smtpd on the gateway's loopback address,
/// relaying everything to the tenant from `source` with `cert`.
async fn gateway(sim: &Simulation, name: &str, source: IpAddr, cert: &LeafCert) -> Postfix {
    gateway_to(sim.tenant_addr(), sim.host_loopback("gateway").unwrap(), name, source, cert).await
}

/// As [`gateway`], for a tenant at `tenant` with the gateway's smtpd on `listen_ip`.
async fn gateway_to(tenant: SocketAddr, listen_ip: IpAddr, name: &str, source: IpAddr, cert: &LeafCert) -> Postfix {
    let listen = SocketAddr::new(listen_ip, tenant.port());
    let pf = Postfix::start(
        name,
        listen,
        &format!(
            "smtp_dns_support_level = disabled\nrelayhost = [{}]:{}\nsmtp_bind_address = {source}\n",
            tenant.ip(),
            tenant.port()
        ),
    )
    .await;
    let tls = client_tls(&pf, cert);
    let main = pf.path().join("etc/main.cf");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str(&tls);
    std::fs::write(&main, text).unwrap();
    run(Command::new(POSTFIX).arg("-c").arg(pf.path().join("etc")).arg("reload"));
    pf
}

const REFUSED_5751: &str = "550 5.7.51 TenantInboundAttribution";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_gateway_with_its_certificate_is_accepted_through_the_lockdown_connector() {
    if !postfix_usable("postfix_gateway_with_its_certificate_is_accepted_through_the_lockdown_connector") {
        return;
    }
    let sim = world("interop-postfix-cert-ok", LOCKDOWN_BY_CERT).await;
    let gw = sim.host_loopback("gateway").unwrap();
    let pf = gateway(&sim, "gw-cert", gw, &TestPki::default_shared().gateway).await;
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "via the gateway").await;
    let got = sim.wait_for_mailbox("alice@contoso.test", 1, BOUND).await;
    assert_eq!(got.len(), 1, "{}", pf.log());
    let sent = pf.wait_log("status=sent").await;
    assert!(sent.contains("250 2.6.0"), "{sent}");
    let trace = sim.trace();
    let received = trace.iter().find(|e| e.recipient.as_deref() == Some("alice@contoso.test")).unwrap();
    assert_eq!(received.connector.as_deref(), Some("From gateway (certificate)"));
    assert_eq!(received.from_ip, Some("198.51.100.7".parse().unwrap()), "the plan's gateway address");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_gateway_with_a_wrong_subject_certificate_gets_5_7_51() {
    if !postfix_usable("postfix_gateway_with_a_wrong_subject_certificate_gets_5_7_51") {
        return;
    }
    let sim = world("interop-postfix-cert-wrong", LOCKDOWN_BY_CERT).await;
    let gw = sim.host_loopback("gateway").unwrap();
    let pf = gateway(&sim, "gw-wrong", gw, &TestPki::default_shared().wrong_subject).await;
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "wrong certificate").await;
    let line = pf.wait_log(REFUSED_5751).await;
    assert!(line.contains("status=bounced"), "{line}");
    assert!(sim.mailbox("alice@contoso.test").is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_gateway_from_its_plan_address_is_accepted_and_from_another_gets_5_7_51() {
    if !postfix_usable("postfix_gateway_from_its_plan_address_is_accepted_and_from_another_gets_5_7_51") {
        return;
    }
    let sim = world("interop-postfix-ip", LOCKDOWN_BY_IP).await;
    let gw = sim.host_loopback("gateway").unwrap();
    {
        let pf = gateway(&sim, "gw-ip", gw, &TestPki::default_shared().gateway).await;
        pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "from the gateway").await;
        assert_eq!(sim.wait_for_mailbox("alice@contoso.test", 1, BOUND).await.len(), 1, "{}", pf.log());
    }
    // The same gateway sending from an address outside the plan (a new node nobody told EXO about).
    let pf = gateway(&sim, "gw-other", fresh_loopback(), &TestPki::default_shared().gateway).await;
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "bob@contoso.test", "from elsewhere").await;
    let line = pf.wait_log(REFUSED_5751).await;
    assert!(line.contains("status=bounced"), "{line}");
    assert!(sim.mailbox("bob@contoso.test").is_empty());
    sim.stop().await;
}

/// The tenant's outbound side to a Postfix partner as a smart host, checked with DomainValidation
/// against the admin's own CA (`--tls-trust-ca`). Returns the world, the partner and the admin CA.
async fn partner_world(name: &str, tls_domain: &str) -> (Simulation, Postfix) {
    let partner_ip = fresh_loopback();
    let port = std::net::TcpListener::bind((partner_ip, 0)).unwrap().local_addr().unwrap().port();
    let tables = format!(
        r#"
[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false

[[OutboundConnector]]
Name = "To partner (forced TLS)"
ConnectorType = "Partner"
RecipientDomains = ["fabrikam.test"]
UseMXRecord = false
SmartHosts = ["[203.0.113.25]:{port}"]
TlsSettings = "DomainValidation"
TlsDomain = "{tls_domain}"

[[host]]
name = "onprem"
address = "192.0.2.10"

[[host]]
name = "partner"
address = "203.0.113.25"
loopback = "{partner_ip}"
"#
    );
    let text = format!("[scenario]\nname = \"{name}\"\n{TENANT_BASE}{tables}");
    let scenario = mailsim::scenario::parse(&text, Path::new(&format!("{name}.toml"))).unwrap();
    // The admin's lab PKI: its CA signs the partner's certificate; the tenant trusts only it.
    let admin_ca = TestCa::new("Admin Lab CA");
    let partner_cert = admin_ca.issue(&LeafSpec::server("mx.fabrikam.test").dns("mx.fabrikam.test"));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("admin-ca.pem");
    std::fs::write(&ca_file, admin_ca.cert_pem()).unwrap();
    let mut world = scenario.world.clone();
    world.server_roots = Some(mailsim::live::trust_roots(&ca_file).unwrap());
    let sim = Simulation::start(world).await.unwrap();
    assert_eq!(sim.host_loopback("partner").unwrap(), partner_ip, "the pinned loopback address");
    let uid = run(Command::new("id").arg("-u").arg("postfix")).trim().to_string();
    let gid = run(Command::new("id").arg("-g").arg("postfix")).trim().to_string();
    let pf = Postfix::start(
        name,
        SocketAddr::new(partner_ip, port),
        &format!(
            "smtp_dns_support_level = disabled
smtpd_tls_security_level = may
smtpd_tls_cert_file = {{dir}}/server.pem
smtpd_tls_key_file = {{dir}}/server.key
smtpd_tls_received_header = yes
virtual_mailbox_domains = fabrikam.test
virtual_mailbox_base = {{dir}}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
"
        ),
    )
    .await;
    pf.write("server.pem", &partner_cert.chain_pem);
    pf.write("server.key", &partner_cert.key_pem);
    run(Command::new(POSTFIX).arg("-c").arg(pf.path().join("etc")).arg("reload"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    (sim, pf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_partner_receives_over_tls_with_domain_validation_against_the_admins_ca() {
    if !postfix_usable("postfix_partner_receives_over_tls_with_domain_validation_against_the_admins_ca") {
        return;
    }
    let (sim, pf) = partner_world("interop-postfix-partner-ok", "mx.fabrikam.test").await;
    let sent = sim.send(&SendSpec::new("onprem", "bob@contoso.test", &["carol@fabrikam.test"])).await.unwrap();
    assert!(sent.accepted(), "{:?}", sent.final_reply);
    let message = pf.wait_maildir("inbox").await;
    // Postfix's Received header: the tenant's own outbound address, over TLS.
    let outbound = sim.plan().into_iter().find(|r| r.name == "tenant-out").unwrap().loopback;
    let received = message.lines().find(|l| l.starts_with("Received:")).unwrap_or_default().to_string();
    assert!(message.contains(&format!("[{outbound}]")), "the tenant's outbound address {outbound}:\n{message}");
    assert_ne!(outbound, sim.tenant_addr().ip(), "outbound connections do not come from the listener");
    assert!(message.contains("(using TLS"), "{received}\n{message}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_partner_with_a_tls_domain_mismatch_defers_with_4_4_317() {
    if !postfix_usable("postfix_partner_with_a_tls_domain_mismatch_defers_with_4_4_317") {
        return;
    }
    let (sim, pf) = partner_world("interop-postfix-partner-mismatch", "mx.other.test").await;
    let sent = sim.send(&SendSpec::new("onprem", "bob@contoso.test", &["carol@fabrikam.test"])).await.unwrap();
    assert!(sent.accepted(), "{:?}", sent.final_reply);
    let deadline = Instant::now() + BOUND;
    let deferral = loop {
        if let Some(e) = sim.trace().into_iter().find(|e| e.data.as_deref().is_some_and(|d| d.contains("4.4.317"))) {
            break e;
        }
        assert!(Instant::now() < deadline, "no 4.4.317 deferral: {:#?}", sim.trace());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let data = deferral.data.unwrap();
    assert!(data.contains("SubjectMismatch"), "{data}");
    assert!(std::fs::read_dir(pf.path().join("mail/inbox/new")).map(|r| r.count()).unwrap_or(0) == 0);
    sim.stop().await;
}

/// The whole cutover (exo-behaviour §10 P2 + P3) through two Postfix hops: the gateway relays
/// internet mail in (lock-down by IP), and the tenant sends out through the same gateway as its
/// smart host with DomainValidation; the partner (a scripted peer) sees every hop in its Received
/// chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_through_a_postfix_gateway_in_and_out() {
    if !postfix_usable("cutover_through_a_postfix_gateway_in_and_out") {
        return;
    }
    let tables = r#"
[[InboundConnector]]
Name = "From gateway (IP)"
ConnectorType = "Partner"
SenderDomains = ["*"]
SenderIPAddresses = ["198.51.100.0/24"]
RestrictDomainsToIPAddresses = true
RequireTls = false

[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false

[[OutboundConnector]]
Name = "Outbound via gateway"
ConnectorType = "Partner"
RecipientDomains = ["*"]
UseMXRecord = false
SmartHosts = ["[198.51.100.7]"]
TlsSettings = "DomainValidation"
TlsDomain = "mail.gateway.test"

[[host]]
name = "gateway"
address = "198.51.100.7"

[[host]]
name = "onprem"
address = "192.0.2.10"

[[host]]
name = "partner"
address = "203.0.113.25"

[host.peer]
starttls = "Offer"
"#;
    let sim = world("interop-postfix-cutover", tables).await;
    let tenant = sim.tenant_addr();
    let gw = sim.host_loopback("gateway").unwrap();
    let partner = sim.host_loopback("partner").unwrap();
    let port = tenant.port();
    let pki = TestPki::default_shared();
    let pf = Postfix::start(
        "gw-cutover",
        SocketAddr::new(gw, port),
        &format!(
            "smtp_dns_support_level = disabled
smtp_bind_address = {gw}
smtp_tls_security_level = may
smtpd_tls_security_level = may
smtpd_tls_cert_file = {{dir}}/server.pem
smtpd_tls_key_file = {{dir}}/server.key
transport_maps = inline:{{ {{contoso.test = smtp:[{}]:{port}}}, {{fabrikam.test = smtp:[{partner}]:{port}}} }}
",
            tenant.ip()
        ),
    )
    .await;
    pf.write("server.pem", &pki.gateway.chain_pem);
    pf.write("server.key", &pki.gateway.key_pem);
    run(Command::new(POSTFIX).arg("-c").arg(pf.path().join("etc")).arg("reload"));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // In: internet -> Postfix gateway -> tenant.
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "inbound via gateway").await;
    let inbox = sim.wait_for_mailbox("alice@contoso.test", 1, BOUND).await;
    assert_eq!(inbox.len(), 1, "{}", pf.log());
    let text = String::from_utf8_lossy(&inbox[0].data).to_string();
    assert!(text.contains("gw-cutover.postfix.test"), "the gateway's hop:\n{text}");

    // Out: on-premises -> tenant -> Postfix gateway (DomainValidation) -> partner.
    let sent = sim.send(&SendSpec::new("onprem", "bob@contoso.test", &["carol@fabrikam.test"])).await.unwrap();
    assert!(sent.accepted(), "{:?}", sent.final_reply);
    let got = sim.wait_for_peer("partner", 1, BOUND).await.unwrap();
    assert_eq!(got.len(), 1, "{}\n{:#?}", pf.log(), sim.trace());
    let text = String::from_utf8_lossy(&got[0].data).replace("\r\n\t", " ").replace("\r\n ", " ");
    let received: Vec<&str> = text.lines().filter(|l| l.starts_with("Received:")).collect();
    assert!(received.len() >= 2, "a Received line per hop:\n{text}");
    assert!(received[0].contains("by gw-cutover.postfix.test"), "the gateway's hop on top:\n{text}");
    assert!(received[1].contains("MAILSIM01"), "the tenant's hop below it:\n{text}");
    let outbound = sim.plan().into_iter().find(|r| r.name == "tenant-out").unwrap().loopback;
    assert!(text.contains(&format!("[{outbound}]")), "the gateway saw the tenant's outbound address:\n{text}");
    assert_eq!(got[0].client_ip, gw, "the partner got it from the gateway");
    sim.stop().await;
}

/// MX delivery by a real MTA through the world's DNS: Postfix resolves the tenant's domain's MX
/// against the world's DNS server bound on port 53 (its resolv.conf, in a mount namespace of its
/// own, names that server) and delivers to the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_delivers_by_mx_through_the_worlds_dns() {
    if !postfix_usable("postfix_delivers_by_mx_through_the_worlds_dns") {
        return;
    }
    let tenant_ip = fresh_loopback();
    let tables = format!(
        r#"
[[host]]
name = "gateway"
address = "198.51.100.7"

[dns]
records = """
contoso.test. MX 10 mx.contoso.test.
mx.contoso.test. A {tenant_ip}
"""
"#
    );
    let text =
        format!("[scenario]\nname = \"interop-postfix-mx\"\ntenant_loopback = \"{tenant_ip}\"\n{TENANT_BASE}{tables}");
    let scenario = mailsim::scenario::parse(&text, Path::new("interop-postfix-mx.toml")).unwrap();
    let mut world = scenario.world.clone();
    let dns_ip = fresh_loopback();
    world.dns_bind = Some(SocketAddr::new(dns_ip, 53));
    let sim = Simulation::start(world).await.unwrap();
    assert_eq!(sim.tenant_addr().ip(), tenant_ip);
    assert_eq!(sim.dns().addr(), SocketAddr::new(dns_ip, 53));
    let port = sim.tenant_addr().port();
    let gw = sim.host_loopback("gateway").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {dns_ip}\noptions timeout:1 attempts:2\n")).unwrap();
    let pf = Postfix::start_in_namespace(
        "gw-mx",
        SocketAddr::new(gw, port),
        &format!("smtp_bind_address = {gw}\nrelayhost = contoso.test:{port}\nsmtp_host_lookup = dns\n"),
        &resolv,
    )
    .await;
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "by MX").await;
    assert_eq!(sim.wait_for_mailbox("alice@contoso.test", 1, BOUND).await.len(), 1, "{}", pf.log());
    assert!(sim.dns().queries_for("contoso.test") >= 1, "Postfix asked the world's DNS");
    let sent = pf.wait_log("status=sent").await;
    assert!(sent.contains("mx.contoso.test"), "{sent}");
    sim.stop().await;
}

/// Issue 9 item 4: a scenario world honours `--tls-client-ca` (and `--tls-cert`/`--tls-key`): a
/// Postfix gateway presenting a certificate from the admin's own CA is trusted and accepted through
/// the certificate lock-down; before, `serve SCENARIO` ignored the flags and judged it untrusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_gateway_with_a_certificate_from_the_admins_ca_is_trusted_in_scenario_mode() {
    if !postfix_usable("postfix_gateway_with_a_certificate_from_the_admins_ca_is_trusted_in_scenario_mode") {
        return;
    }
    let text = format!("[scenario]\nname = \"interop-postfix-admin-ca\"\n{TENANT_BASE}{LOCKDOWN_BY_CERT}");
    let scenario = mailsim::scenario::parse(&text, Path::new("interop-postfix-admin-ca.toml")).unwrap();
    let files = tempfile::tempdir().unwrap();
    let admin_ca = TestCa::new("Admin Lab CA");
    let tenant_cert = admin_ca.issue(&LeafSpec::server("tenant.lab.test").dns("tenant.lab.test"));
    let gateway_cert = admin_ca.issue(&LeafSpec::both("mail.gateway.test").dns("mail.gateway.test"));
    let write = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut args = mailsim::cli::serve::ServeArgs {
        scenario: None,
        listen: None,
        tenant: None,
        state_dir: None,
        accepted_domains: Vec::new(),
        mailboxes: Vec::new(),
        tls_cert: Some(write("tenant.pem", &tenant_cert.chain_pem)),
        tls_key: Some(write("tenant.key", &tenant_cert.key_pem)),
        tls_client_ca: Some(write("ca.pem", admin_ca.cert_pem())),
        tls_trust_ca: None,
        dns: None,
        dns_zone: None,
        outbound_address: None,
        authentication: false,
        no_tls: false,
        max_connections: 100,
        idle_timeout: 300,
        http: mailsim::cli::serve_http::HttpArgs { no_http: true, ..Default::default() },
    };
    let ip = scenario.world.tenant_loopback.unwrap();
    args.listen = Some(SocketAddr::new(ip, std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()));
    let mut world = scenario.world.clone();
    mailsim::cli::serve::apply_live_flags(&mut world, &args).unwrap();
    let sim = Simulation::start(world).await.unwrap();
    let gw = sim.host_loopback("gateway").unwrap();
    let pf = gateway(&sim, "gw-admin-ca", gw, &gateway_cert).await;
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "admin CA").await;
    assert_eq!(sim.wait_for_mailbox("alice@contoso.test", 1, BOUND).await.len(), 1, "{}", pf.log());
    let trace = sim.trace();
    let received = trace.iter().find(|e| e.recipient.as_deref() == Some("alice@contoso.test")).unwrap();
    assert_eq!(received.connector.as_deref(), Some("From gateway (certificate)"));
    sim.stop().await;
}

// ---- Issue 9: the API driving a live world against real Postfix ----

/// The loopback address of `host` and the tenant's endpoint, as `GET /api/v1/world` serves them.
async fn world_addrs(api: SocketAddr, host: &str) -> (IpAddr, SocketAddr) {
    let world = api_get(api, "/api/v1/world").await.json();
    let hosts = world["hosts"].as_array().unwrap();
    let h = hosts.iter().find(|h| h["name"] == host).unwrap_or_else(|| panic!("no host {host}: {world:#}"));
    let ip = h["loopback"].as_str().unwrap().parse().unwrap();
    (ip, world["tenant_endpoint"].as_str().unwrap().parse().unwrap())
}

/// Waits until `GET /api/v1/messages?where=WHERE` lists `n` messages; returns the page.
async fn wait_messages(api: SocketAddr, wh: &str, n: u64, log: impl Fn() -> String) -> serde_json::Value {
    let deadline = Instant::now() + BOUND;
    loop {
        let page = api_get(api, &format!("/api/v1/messages?where={wh}")).await.json();
        if page["total"].as_u64().unwrap_or(0) >= n {
            return page;
        }
        assert!(Instant::now() < deadline, "{n} message(s) never reached {wh}: {page:#}\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const API_TENANT: &str = r#"[[AcceptedDomain]]
DomainName = "contoso.test"

[Directory]
Mailboxes = ["alice@contoso.test"]
"#;

const API_GATEWAY_HOSTS: &str = r#"
[[host]]
name = "gateway"
address = "198.51.100.7"

[[host]]
name = "internet"
address = "203.0.113.99"
"#;

/// A tenant change over the API (P1 → P2 lock-down, exo-behaviour §10) flips the outcome for the
/// next message: a host that is not the gateway gets EXO's 5.7.51 while the Postfix gateway is
/// still accepted, now through the lock-down connector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tenant_change_p1_to_p2_refuses_others_and_keeps_the_postfix_gateway() {
    if !postfix_usable("api_tenant_change_p1_to_p2_refuses_others_and_keeps_the_postfix_gateway") {
        return;
    }
    let w = live(&format!("{API_TENANT}{API_GATEWAY_HOSTS}")).await;
    let a = w.api.addr();
    let (gw, tenant) = world_addrs(a, "gateway").await;
    let pf = gateway_to(tenant, gw, "gw-api", gw, &TestPki::default_shared().gateway).await;
    let internet = |expect: &str| {
        format!(
            "[[step]]\nsend = {{ from = \"internet\", mail_from = \"spam@bulk.example.test\", rcpt_to = [\"alice@contoso.test\"] }}\nexpect = {expect}\n"
        )
    };

    // P1: no lock-down; the gateway and the internet are both accepted.
    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "P1 via gateway").await;
    wait_messages(a, "alice@contoso.test", 1, || pf.log()).await;
    let p1 = api_post(a, "/api/v1/steps", &internet("{ accepted = true }")).await.json();
    assert_eq!(p1["passed"], true, "{p1:#}");

    // P2: the admin locks the tenant down to the gateway's range over the API.
    let p2 = format!(
        "{API_TENANT}\n[[InboundConnector]]\nName = \"From gateway\"\nConnectorType = \"Partner\"\nSenderDomains = [\"*\"]\nSenderIPAddresses = [\"198.51.100.0/24\"]\nRestrictDomainsToIPAddresses = true\nRequireTls = false\n"
    );
    let applied = call(a, "PUT", "/api/v1/tenant", None, &[], p2.as_bytes()).await;
    assert_eq!(applied.status, 200, "{}", applied.text());

    let refused =
        api_post(a, "/api/v1/steps", &internet(&format!("{{ reply = \"{REFUSED_5751}\", accepted = false }}"))).await;
    assert_eq!(refused.json()["passed"], true, "{}", refused.text());

    pf.submit(fresh_loopback(), "someone@fabrikam.test", "alice@contoso.test", "P2 via gateway").await;
    let page = wait_messages(a, "alice@contoso.test", 3, || pf.log()).await;
    assert_eq!(page["total"], 3, "P1 gateway, P1 internet, P2 gateway: {page:#}");
    let rows = api_get(a, "/api/v1/trace?recipient=alice&status=Delivered").await.json();
    // Newest first: the P2 gateway message, from the plan's gateway address, through the lock-down.
    assert_eq!(rows["rows"][0]["from_ip"], "198.51.100.7", "{rows:#}");
    let id = rows["rows"][0]["internal_id"].as_str().unwrap();
    let events = api_get(a, &format!("/api/v1/trace/{id}")).await.json();
    assert!(events.to_string().contains("From gateway"), "the lock-down connector: {events:#}");
    let sent: Vec<String> = pf.log().lines().filter(|l| l.contains("status=sent")).map(str::to_string).collect();
    assert_eq!(sent.len(), 2, "both gateway messages relayed:\n{}", pf.log());
    let failed = api_get(a, "/api/v1/trace?sender=bulk.example&status=Failed").await.json();
    assert_eq!(failed["total"], 1, "{failed:#}");
}

/// The tenant's outbound side through a connector to a Postfix partner as smart host; the partner
/// refuses recipients with `450 4.2.0` while its access map says so (`check_recipient_access`).
async fn refusing_partner(name: &str) -> (crate::api::Live, Postfix) {
    let partner_ip = fresh_loopback();
    let port = std::net::TcpListener::bind((partner_ip, 0)).unwrap().local_addr().unwrap().port();
    let scenario = format!(
        r#"{API_TENANT}
[[InboundConnector]]
Name = "On-premises relay"
ConnectorType = "OnPremises"
SenderDomains = ["*"]
SenderIPAddresses = ["192.0.2.10"]
RequireTls = false

[[OutboundConnector]]
Name = "To partner"
ConnectorType = "Partner"
RecipientDomains = ["fabrikam.test"]
UseMXRecord = false
SmartHosts = ["[203.0.113.25]:{port}"]

[[host]]
name = "onprem"
address = "192.0.2.10"

[[host]]
name = "partner"
address = "203.0.113.25"
loopback = "{partner_ip}"
"#
    );
    let w = live(&scenario).await;
    let uid = run(Command::new("id").arg("-u").arg("postfix")).trim().to_string();
    let gid = run(Command::new("id").arg("-g").arg("postfix")).trim().to_string();
    let pf = Postfix::start(
        name,
        SocketAddr::new(partner_ip, port),
        &format!(
            "smtp_dns_support_level = disabled
smtpd_recipient_restrictions = check_recipient_access texthash:{{dir}}/etc/access
virtual_mailbox_domains = fabrikam.test
virtual_mailbox_base = {{dir}}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
"
        ),
    )
    .await;
    set_access(&pf, "fabrikam.test 450 4.2.0 try later\n").await;
    (w, pf)
}

/// Rewrites the partner's access map and reloads it.
async fn set_access(pf: &Postfix, map: &str) {
    pf.write("etc/access", map);
    let out = run(Command::new(POSTFIX).arg("-c").arg(pf.path().join("etc")).arg("reload"));
    assert!(!out.contains("fatal"), "{out}");
    // Postfix's smtpd processes pick the reload up when they are next started.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

const SEND_TO_CAROL: &str = "[[step]]\nsend = { from = \"onprem\", mail_from = \"alice@contoso.test\", rcpt_to = [\"carol@fabrikam.test\"], subject = \"to the partner\" }\nexpect = { accepted = true }\n";

/// A Postfix partner answering 450 defers the recipient (Pending, 4xx in the trace and the queue);
/// once the partner accepts, `POST /api/v1/clock/advance` by 6 minutes retries and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clock_advance_retries_a_message_a_postfix_partner_deferred() {
    if !postfix_usable("api_clock_advance_retries_a_message_a_postfix_partner_deferred") {
        return;
    }
    let (w, pf) = refusing_partner("partner-retry").await;
    let a = w.api.addr();
    let sent = api_post(a, "/api/v1/steps", SEND_TO_CAROL).await;
    assert_eq!(sent.json()["passed"], true, "{}", sent.text());
    pf.wait_log("450 4.2.0 <carol@fabrikam.test>: Recipient address rejected: try later").await;
    let pending = api_get(a, "/api/v1/trace?recipient=carol&status=Pending").await.json();
    assert_eq!(pending["total"], 1, "{pending:#}\n{}", pf.log());
    let queue = api_get(a, "/api/v1/queue").await.json();
    assert_eq!(queue["count"], 1, "{queue:#}");
    assert!(queue["entries"][0]["last_error"].as_str().unwrap().contains("450 4.2.0"), "{queue:#}");

    set_access(&pf, "").await;
    let advanced = api_post(a, "/api/v1/clock/advance", r#"{"by": "6m"}"#).await;
    assert_eq!(advanced.status, 200, "{}", advanced.text());
    let message = pf.wait_maildir("inbox").await;
    assert!(message.contains("Subject: to the partner"), "{message}");
    let delivered = api_get(a, "/api/v1/trace?recipient=carol&status=Delivered").await.json();
    assert_eq!(delivered["total"], 1, "{delivered:#}");
    assert_eq!(api_get(a, "/api/v1/queue").await.json()["count"], 0);
}

/// A Postfix partner that keeps answering 450: advancing the clock 25 hours expires the message
/// (exo-behaviour: `550 4.4.7 QUEUE.Expired`) and the NDR lands in the sender's tenant mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clock_advance_25h_expires_a_message_a_postfix_partner_keeps_deferring() {
    if !postfix_usable("api_clock_advance_25h_expires_a_message_a_postfix_partner_keeps_deferring") {
        return;
    }
    let (w, pf) = refusing_partner("partner-expire").await;
    let a = w.api.addr();
    let sent = api_post(a, "/api/v1/steps", SEND_TO_CAROL).await;
    assert_eq!(sent.json()["passed"], true, "{}", sent.text());
    pf.wait_log("450 4.2.0 <carol@fabrikam.test>: Recipient address rejected: try later").await;
    assert_eq!(api_get(a, "/api/v1/queue").await.json()["count"], 1);

    let advanced = api_post(a, "/api/v1/clock/advance", r#"{"by": "25h"}"#).await;
    assert_eq!(advanced.status, 200, "{}", advanced.text());
    let failed = api_get(a, "/api/v1/trace?recipient=carol&status=Failed").await.json();
    assert_eq!(failed["total"], 1, "{failed:#}\n{}", pf.log());
    assert_eq!(api_get(a, "/api/v1/queue").await.json()["count"], 0);
    let ndr = wait_messages(a, "alice@contoso.test", 1, || pf.log()).await;
    assert_eq!(ndr["messages"][0]["mail_from"], "", "{ndr:#}");
    let id = ndr["messages"][0]["id"].as_str().unwrap();
    let raw = api_get(a, &format!("/api/v1/messages/{id}/raw")).await.text();
    assert!(raw.contains("550 4.4.7 QUEUE.Expired"), "{raw}");
    assert!(std::fs::read_dir(pf.path().join("mail/inbox/new")).map(|r| r.count()).unwrap_or(0) == 0);
}
