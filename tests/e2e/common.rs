//! Shared fixtures.

use std::time::Duration;

use mailsim::endpoint::{EndpointOptions, RunningEndpoint};
use mailsim_core::tenant::{DomainType, Tenant};
use mailsim_testkit::hosts::Host;
use mailsim_testkit::sender::ScriptedSender;

/// contoso.test (Authoritative, mailboxes alice and bob), relay.contoso.test (InternalRelay).
pub fn tenant() -> Tenant {
    Tenant::default()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_domain("relay.contoso.test", DomainType::InternalRelay)
        .with_mailbox("alice@contoso.test")
        .with_mailbox("bob@contoso.test")
}

pub async fn start(options: EndpointOptions) -> RunningEndpoint {
    RunningEndpoint::bind("127.0.0.1:0".parse().unwrap(), options).await.expect("endpoint starts")
}

pub async fn start_default() -> RunningEndpoint {
    start(EndpointOptions::new(tenant())).await
}

pub async fn connect(host: Host, endpoint: &RunningEndpoint) -> ScriptedSender {
    let (client, greeting) = ScriptedSender::connect(host.loopback, endpoint.addr()).await.expect("connects");
    assert_eq!(greeting.code, 220, "{greeting:?}");
    client
}

pub const MESSAGE: &str = "From: a@fabrikam.test\r\nTo: alice@contoso.test\r\nSubject: test\r\n\r\nhello\r\n";

pub const WAIT: Duration = Duration::from_secs(5);
