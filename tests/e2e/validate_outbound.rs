//! `Validate-OutboundConnector` (exo-behaviour §8.6) over real sockets: a test message through a
//! connector to a scripted peer whose certificate passes DomainValidation, one whose certificate
//! fails it (EXO's `450 4.4.317 ... SubjectMismatch` deferral), a disabled connector, in a
//! scenario's world and through a live world's HTTP API (`mailsim validate-outbound --api`).

use std::path::Path;
use std::sync::Arc;

use mailsim::api::{Api, World};
use mailsim::sim::Simulation;
use mailsim::validate_outbound::{DISABLED_TEXT, validate};
use mailsim_core::addr::EmailAddress;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/validate/two-gateways.toml");

#[tokio::test]
async fn validate_outbound_in_a_scenario_world() {
    let scenario = mailsim::scenario::load_file(Path::new(FIXTURE)).unwrap();
    let sim = Simulation::start(scenario.world).await.unwrap();

    let good = validate(sim.endpoint(), "To gateway", &[]).await.unwrap();
    assert!(good.passed, "{good:#?}");
    assert_eq!(good.recipients, ["validation@partner.test"]);
    let r = &good.results[0];
    assert_eq!(r.target, "smtp.gateway.test");
    assert_eq!(r.server.as_deref(), Some("smtp.gateway.test [198.51.100.7:25]"));
    assert!(r.tls.as_deref().is_some_and(|t| t.starts_with("TLS")), "{r:?}");
    assert_eq!(r.certificate, "chain, validity and name *.gateway.test (DomainValidation): passed");
    assert!(r.replies.iter().any(|x| x.starts_with("end of data: 250")), "{:?}", r.replies);
    let inbox = sim.peer("gateway").unwrap().inbox();
    assert_eq!(inbox.len(), 1, "the test message was delivered");
    assert_eq!(inbox[0].rcpt_to, ["validation@partner.test"]);

    let rcpt: EmailAddress = "bob@fabrikam.test".parse().unwrap();
    let bad = validate(sim.endpoint(), "to other gateway", &[rcpt]).await.unwrap();
    assert!(!bad.passed, "{bad:#?}");
    let r = &bad.results[0];
    let error = r.error.as_deref().unwrap();
    assert!(
        error.starts_with(
            "450 4.4.317 Cannot connect to remote server [Message=SubjectMismatch Expected Subject: *.othergw.test. \
             Presented Subject: CN=outbound.gatewaycloud.test"
        ),
        "{error}"
    );
    assert!(
        error.ends_with("[LastAttemptedServerName=smtp.othergw.test] [LastAttemptedIP=198.51.100.8:25]"),
        "{error}"
    );
    assert!(r.certificate.contains("failed (SubjectMismatch: expected *.othergw.test"), "{}", r.certificate);
    assert!(sim.peer("othergw").unwrap().inbox().is_empty());
    assert!(sim.endpoint().pipeline().queued().is_empty(), "a validation queues nothing");

    let off = validate(sim.endpoint(), "Old route", &[]).await.unwrap();
    assert!(!off.passed);
    assert_eq!(off.error.as_deref(), Some(DISABLED_TEXT));
    assert!(validate(sim.endpoint(), "Nope", &[]).await.unwrap_err().to_string().contains("\"To gateway\""));
    sim.stop().await;
}

#[tokio::test]
async fn validate_outbound_through_the_live_api() {
    let scenario = mailsim::scenario::load_file(Path::new(FIXTURE)).unwrap();
    let sim = Arc::new(Simulation::start(scenario.world).await.unwrap());
    let state = Api::new(World::Scenario(sim.clone()), FIXTURE.to_string(), None, None);
    let api = state.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let via = mailsim::cli::validate_outbound::via_api;
    let good = via(api.addr(), "To gateway", &["carol@partner.test".to_string()]).await.unwrap();
    assert!(good.passed, "{good:#?}");
    assert_eq!(sim.peer("gateway").unwrap().inbox()[0].rcpt_to, ["carol@partner.test"]);
    let bad = via(api.addr(), "To other gateway", &[]).await.unwrap();
    assert!(!bad.passed);
    assert!(bad.results[0].error.as_deref().unwrap().contains("SubjectMismatch"));
    let missing = via(api.addr(), "Nope", &[]).await.unwrap_err().to_string();
    assert!(missing.starts_with("the API answered 404: no outbound connector named \"Nope\""), "{missing}");
    api.stop().await;
}

/// `ValidationRecipients` (`Set-OutboundConnector`, exo-behaviour §3.1, §15.3) is where the test
/// message goes by default; recipients given on the command line still win.
#[tokio::test]
async fn validate_outbound_sends_to_the_connectors_validation_recipients() {
    let text = std::fs::read_to_string(FIXTURE).unwrap()
        + "\n[[OutboundConnector]]\nName = \"Validated route\"\nRecipientDomains = [\"partner2.test\"]\n\
           UseMXRecord = false\nSmartHosts = [\"smtp.gateway.test\"]\nTlsSettings = \"DomainValidation\"\n\
           TlsDomain = \"*.gateway.test\"\nValidationRecipients = [\"ops@partner2.test\", \"noc@partner2.test\"]\n";
    let scenario = mailsim::scenario::parse(&text, Path::new(FIXTURE)).unwrap();
    let sim = Simulation::start(scenario.world).await.unwrap();

    let report = validate(sim.endpoint(), "Validated route", &[]).await.unwrap();
    assert!(report.passed, "{report:#?}");
    assert_eq!(report.recipients, ["ops@partner2.test", "noc@partner2.test"]);
    let inbox = sim.peer("gateway").unwrap().inbox();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].rcpt_to, ["ops@partner2.test", "noc@partner2.test"]);

    let rcpt: EmailAddress = "dave@partner2.test".parse().unwrap();
    let given = validate(sim.endpoint(), "Validated route", &[rcpt]).await.unwrap();
    assert_eq!(given.recipients, ["dave@partner2.test"], "--rcpt wins over ValidationRecipients");
    sim.stop().await;
}
