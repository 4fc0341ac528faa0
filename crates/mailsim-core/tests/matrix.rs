//! Matrix (docs/architecture.md habit 10, rustls `MultiTest` style): every combination of one inbound
//! connector's attributes × the facts of a connection × a few envelopes, checked against a small
//! oracle written from exo-behaviour §1.3, §2.2–§2.4 and §4.2 independently of `stage::inbound`.

use std::borrow::Cow;
use std::net::IpAddr;

use mailsim_core::addr::EmailAddress;
use mailsim_core::peer::{CertTrust, ClientCertFacts, PeerFacts, TlsFacts};
use mailsim_core::reply::ReplyKind;
use mailsim_core::stage::inbound::{Direction, InboundVerdict, attribute, attribute_unindexed};
use mailsim_core::tenant::{ConnectorType, DomainPattern, DomainType, InboundConnector, Tenant};
use mailsim_core::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Attrs {
    onprem: bool,
    enabled: bool,
    restrict_ip: bool,
    restrict_cert: bool,
    require_tls: bool,
    has_ip: bool,
    has_cert: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cert {
    None,
    Right,
    Wrong,
    Untrusted,
    Expired,
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    ip_in: bool,
    tls: bool,
    cert: Cert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    Accepted,
    Foreign,
    Null,
}

#[derive(Clone, Copy, Debug)]
struct Env {
    sender: Sender,
    external: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Accept { by_connector: bool, direction: Direction },
    Reject(ReplyKind),
}

fn tls454(reason: Option<&'static str>) -> Outcome {
    Outcome::Reject(ReplyKind::TlsChannelNotAcceptable { reason: reason.map(Cow::Borrowed) })
}

/// The oracle: what EXO does with one connector, in the words of the reference.
fn oracle(a: Attrs, c: Conn, e: Env) -> Outcome {
    use Outcome::*;
    let ip_match = a.enabled && a.has_ip && c.ip_in;
    let names_match = a.enabled && a.has_cert && matches!(c.cert, Cert::Right | Cert::Untrusted | Cert::Expired);
    let cert_ok = names_match && c.cert == Cert::Right;
    let bad_cert = || match c.cert {
        Cert::Untrusted => tls454(Some("UntrustedRoot")),
        _ => tls454(Some("CertificateExpired")),
    };
    let sender_accepted = e.sender == Sender::Accepted;
    if a.onprem {
        // §1.3 item 2 (a): trusted certificate → Originating; its domain (contoso.test) is accepted,
        // so it relays foreign senders too (§4.2).
        if cert_ok {
            return Accept { by_connector: true, direction: Direction::Originating };
        }
        // (b): IP and an accepted-domain MAIL FROM; RequireTls enforced.
        if ip_match && sender_accepted {
            if a.require_tls && !c.tls {
                return tls454(None);
            }
            return Accept { by_connector: true, direction: Direction::Originating };
        }
        // §4.2: IP attribution with a foreign sender cannot relay (ATTR36).
        if ip_match && e.external {
            return Reject(ReplyKind::RelayDeniedAttr36);
        }
        // §2.3 step 2: the certificate names the connector but is not acceptable.
        if names_match {
            return bad_cert();
        }
        if e.external {
            return Reject(ReplyKind::RelayDenied);
        }
        return Accept { by_connector: false, direction: Direction::Incoming };
    }
    // Partner. §4.2: relay needs Originating, which Partner connectors never give.
    if e.external {
        return Reject(ReplyKind::RelayDenied);
    }
    let restricting = a.enabled && (a.restrict_ip || a.restrict_cert);
    let applies =
        if restricting { (!a.restrict_ip || ip_match) && (!a.restrict_cert || cert_ok) } else { ip_match || cert_ok };
    if applies {
        if a.require_tls && !c.tls {
            return tls454(None);
        }
        return Accept { by_connector: true, direction: Direction::Incoming };
    }
    if restricting {
        // Only TLS or the certificate's trust is missing: the TLS refusal (§2.4); otherwise 5.7.51.
        if a.restrict_cert && (!a.restrict_ip || ip_match) {
            if names_match {
                return bad_cert();
            }
            if !c.tls && a.require_tls {
                return tls454(None);
            }
        }
        return Reject(ReplyKind::PartnerConnectorRestricted);
    }
    if names_match {
        return bad_cert();
    }
    Accept { by_connector: false, direction: Direction::Incoming }
}

fn bools() -> [bool; 2] {
    [false, true]
}

fn all_attrs() -> Vec<Attrs> {
    let mut out = Vec::new();
    for onprem in bools() {
        for enabled in bools() {
            for restrict_ip in bools() {
                for restrict_cert in bools() {
                    for require_tls in bools() {
                        for has_ip in bools() {
                            for has_cert in bools() {
                                // Combinations the loader refuses (§2.1, §2.2).
                                if onprem && (restrict_ip || restrict_cert) {
                                    continue;
                                }
                                if (restrict_ip && !has_ip) || (restrict_cert && !has_cert) {
                                    continue;
                                }
                                out.push(Attrs {
                                    onprem,
                                    enabled,
                                    restrict_ip,
                                    restrict_cert,
                                    require_tls,
                                    has_ip,
                                    has_cert,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn all_conns() -> Vec<Conn> {
    let mut out = Vec::new();
    for ip_in in bools() {
        out.push(Conn { ip_in, tls: false, cert: Cert::None });
        for cert in [Cert::None, Cert::Right, Cert::Wrong, Cert::Untrusted, Cert::Expired] {
            out.push(Conn { ip_in, tls: true, cert });
        }
    }
    out
}

fn tenant(a: Attrs) -> Tenant {
    let kind = if a.onprem { ConnectorType::OnPremises } else { ConnectorType::Partner };
    let mut c = InboundConnector::new("X", kind);
    c.enabled = a.enabled;
    c.restrict_domains_to_ip_addresses = a.restrict_ip;
    c.restrict_domains_to_certificate = a.restrict_cert;
    c.require_tls = a.require_tls;
    if a.has_ip {
        c.sender_ip_addresses = vec!["198.51.100.0/24".parse().unwrap()];
    }
    if a.has_cert {
        c.tls_sender_certificate_name = DomainPattern::parse("*.contoso.test");
    }
    Tenant::builder()
        .with_domain("contoso.test", DomainType::Authoritative)
        .with_mailbox("alice@contoso.test")
        .with_inbound_connector(c)
        .build()
        .unwrap()
}

fn peer(c: Conn) -> PeerFacts {
    let ip: IpAddr = if c.ip_in { "198.51.100.40" } else { "203.0.113.40" }.parse().unwrap();
    let mut p = PeerFacts::new("127.0.0.30".parse().unwrap(), 25, ip);
    if c.tls {
        let (name, trust) = match c.cert {
            Cert::None => ("", CertTrust::Trusted),
            Cert::Right => ("mail.contoso.test", CertTrust::Trusted),
            Cert::Wrong => ("mail.other.test", CertTrust::Trusted),
            Cert::Untrusted => ("mail.contoso.test", CertTrust::UntrustedRoot),
            Cert::Expired => ("mail.contoso.test", CertTrust::Expired),
        };
        let client_cert = (c.cert != Cert::None).then(|| ClientCertFacts {
            subject: format!("CN={name}"),
            common_names: vec![name.to_string()],
            dns_sans: Vec::new(),
            issuer: "CN=CA".to_string(),
            not_before: Timestamp(0),
            not_after: Timestamp(0),
            sha256: String::new(),
            trust,
        });
        p.tls = Some(TlsFacts { version: "TLS1_2".into(), cipher: "x".into(), sni: None, client_cert });
    }
    p
}

#[test]
fn one_connector_matrix_agrees_with_the_oracle() {
    let mut cases = 0;
    let mut failures = Vec::new();
    for a in all_attrs() {
        let t = tenant(a);
        for c in all_conns() {
            let p = peer(c);
            for sender in [Sender::Accepted, Sender::Foreign, Sender::Null] {
                for external in bools() {
                    let e = Env { sender, external };
                    let from: Option<EmailAddress> = match sender {
                        Sender::Accepted => Some("app@contoso.test".parse().unwrap()),
                        Sender::Foreign => Some("x@fabrikam.test".parse().unwrap()),
                        Sender::Null => None,
                    };
                    let rcpt: EmailAddress =
                        if external { "y@example.test" } else { "alice@contoso.test" }.parse().unwrap();
                    let rcpts = [rcpt];
                    let verdict = attribute(&t, &p, from.as_ref(), &rcpts);
                    assert_eq!(verdict, attribute_unindexed(&t, &p, from.as_ref(), &rcpts));
                    let got = match &verdict {
                        InboundVerdict::Accepted { connector, direction, .. } => {
                            Outcome::Accept { by_connector: connector.is_some(), direction: *direction }
                        }
                        InboundVerdict::Rejected { rejection, .. } => Outcome::Reject(rejection.reply.clone()),
                    };
                    let want = oracle(a, c, e);
                    cases += 1;
                    if got != want {
                        failures.push(format!("{a:?} {c:?} {e:?}\n  want {want:?}\n  got  {got:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases differ:\n{}", failures.len(), failures.join("\n"));
    assert!(cases > 3000, "{cases}");
}
