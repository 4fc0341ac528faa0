//! `mailsim demo`: the built-in default job. Brings a tenant endpoint up on loopback, sends one
//! message from the gateway's own 127/8 address over STARTTLS with the gateway's client
//! certificate, and shows the transcript and the message as it landed in the mailbox (with the
//! Received header carrying the TLS facts and EXO's attribution headers).

use std::time::Duration;

use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_testkit::certs::TestPki;
use mailsim_testkit::hosts::roles;
use mailsim_testkit::sender::{ScriptedSender, TlsOptions};

use crate::endpoint::{EndpointOptions, RunningEndpoint};

/// `mailsim demo` flags.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Loopback address for the tenant endpoint (port 0 picks a free port).
    #[arg(long, env = "MAILSIM_DEMO_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

/// Runs the demo; exit code 0 when the message reached the mailbox.
pub async fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let pki = TestPki::default_shared();
    let tenant = Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .build()?;
    let endpoint = RunningEndpoint::bind(args.listen, EndpointOptions::new(tenant)).await?;
    println!("tenant endpoint: {} (accepted domain contoso.test, mailbox alice@contoso.test)", endpoint.addr());
    println!("sender: the gateway, from {} presenting CN=mail.gateway.test\n", roles::GATEWAY.loopback);

    let (mut client, _) = ScriptedSender::connect(roles::GATEWAY.loopback, endpoint.addr()).await?;
    client.command("EHLO mail.gateway.test").await?;
    client.starttls(&TlsOptions::with_cert(&pki.gateway), "tenant.mailsim.test").await?;
    let content = "From: Gateway Demo <demo@fabrikam.test>\r\nTo: Alice <alice@contoso.test>\r\nSubject: mailsim demo\r\nMessage-ID: <demo-1@fabrikam.test>\r\n\r\nHello from the gateway, over STARTTLS with a client certificate.\r\n";
    let reply =
        client.send_message("mail.gateway.test", "demo@fabrikam.test", &["alice@contoso.test"], content).await?;
    client.command("QUIT").await?;
    for line in client.transcript() {
        println!("{line}");
    }
    let delivered = endpoint.store().wait_for("alice@contoso.test", 1, Duration::from_secs(5)).await;
    endpoint.stop().await;
    let Some(message) = delivered.first() else {
        println!("\nFAILED: nothing reached alice@contoso.test (final reply: {})", reply.last_line());
        return Ok(1);
    };
    if let Some(tls) = &message.peer.tls {
        println!("\nTLS facts the tenant recorded: {} {}", tls.version, tls.cipher);
        if let Some(cert) = &tls.client_cert {
            println!(
                "client certificate: subject {:?}, DNS SANs {:?}, issuer {:?}, trust {:?}",
                cert.subject, cert.dns_sans, cert.issuer, cert.trust
            );
        }
    }
    println!("\nmailbox alice@contoso.test now holds {} ({} bytes):\n", message.message_id, message.data.len());
    println!("{}", String::from_utf8_lossy(&message.data));
    Ok(0)
}
