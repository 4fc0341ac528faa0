//! Relay mode (`PeerScript::forward_to`): a received message is passed on to another server over
//! plain SMTP from the peer's own address, as a gateway relays mail, stopping at
//! [`MAX_FORWARD_HOPS`] `Received:` headers so a loop ends.
//!
//! What the relay adds ([`RelayOptions`], set by the world): its own `Received:` line in RFC 5321
//! §4.4 form, naming the client by its HELO and *declared* address and itself by its host name and
//! declared address; before it, one line per scripted internal hop (a receiving node, a private
//! load balancer, as a cloud gateway's chain shows: exo-behaviour §14.2 walks these); and, when the
//! relay signs, a `DKIM-Signature:` on top. Newest first, as each MTA prepends its line:
//!
//! ```text
//! DKIM-Signature: v=1; a=rsa-sha256; s=s1; d=gateway.test; c=relaxed/relaxed; ...
//! Received: from lb.gw.test ([10.0.0.5]) by mail.gateway.test ([198.51.100.7]) with ESMTP id MS...; <date>
//! Received: from rx.gw.test ([198.51.101.5]) by lb.gw.test ([10.0.0.5]) with ESMTP id MS...; <date>
//! Received: from mx.partner.test ([203.0.113.25]) by rx.gw.test ([198.51.101.5]) with ESMTPS id MS...; <date>
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::{MAX_FORWARD_HOPS, ReceivedMessage};
use crate::dkim::DkimSigning;

/// The declared address of each loopback address (the world's address plan), shared with the
/// world so that a host that moves is named by its new address. An address not listed stands
/// for itself.
#[derive(Clone, Debug, Default)]
pub struct AddressBook(Arc<RwLock<HashMap<IpAddr, IpAddr>>>);

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// `loopback` is known as `declared` from now on.
    pub fn set(&self, loopback: IpAddr, declared: IpAddr) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(loopback, declared);
    }

    /// The declared address of `loopback` (itself when unknown).
    pub fn declared(&self, loopback: IpAddr) -> IpAddr {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(&loopback).copied().unwrap_or(loopback)
    }
}

/// One internal hop a relayed message passes before the relay's own egress node: a receiving
/// node, a load balancer (an RFC 1918 address, as in the seed's Mimecast story).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayHop {
    /// The node's host name (its `by` name, and the `from` name of the next line).
    pub name: String,
    /// The node's address.
    pub address: IpAddr,
}

/// What a relaying peer adds to what it passes on.
#[derive(Clone, Debug, Default)]
pub struct RelayOptions {
    /// Declared addresses of the client and of the relay itself.
    pub addresses: AddressBook,
    /// Internal hops, in the order the message passes them (receiving node first).
    pub hops: Vec<RelayHop>,
    /// Sign what is passed on.
    pub dkim: Option<DkimSigning>,
}

static RELAY_IDS: AtomicU64 = AtomicU64::new(1);

impl RelayOptions {
    /// The header lines the relay prepends to `message`, newest first, each ending in CRLF.
    /// `own` is the relay's loopback address, `host_name` its name.
    pub fn received_lines(&self, message: &ReceivedMessage, own: IpAddr, host_name: &str, date: &str) -> String {
        let mut nodes: Vec<(String, IpAddr)> = self.hops.iter().map(|h| (h.name.clone(), h.address)).collect();
        nodes.push((host_name.to_string(), self.addresses.declared(own)));
        let mut from =
            (message.helo.clone().unwrap_or_else(|| "unknown".to_string()), self.addresses.declared(message.client_ip));
        let mut lines = Vec::with_capacity(nodes.len());
        for (i, (name, address)) in nodes.into_iter().enumerate() {
            // RFC 3848: ESMTPS for the leg that came over TLS.
            let with = if i == 0 && message.tls.is_some() { "ESMTPS" } else { "ESMTP" };
            let id = RELAY_IDS.fetch_add(1, Ordering::Relaxed);
            lines.push(format!(
                "Received: from {} ({}) by {name} ({}) with {with} id MS{id:010X}; {date}\r\n",
                from.0,
                address_literal(from.1),
                address_literal(address)
            ));
            from = (name, address);
        }
        lines.reverse();
        lines.concat()
    }
}

/// RFC 5321 §4.1.3 address literal: `[203.0.113.25]`, `[IPv6:2001:db8::1]`.
fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// Relays one received message to `target` from `source`, as a plain-SMTP relay would. Returns the
/// final reply (or error) for the transcript.
pub(super) async fn forward(
    source: IpAddr,
    target: std::net::SocketAddr,
    host_name: &str,
    relay: Option<&RelayOptions>,
    message: &ReceivedMessage,
) -> String {
    let hops = message
        .data
        .split(|&b| b == b'\n')
        .take_while(|l| l.len() > 2)
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count();
    if hops >= MAX_FORWARD_HOPS {
        return format!("not forwarded: {hops} Received headers");
    }
    let mut content = match relay {
        Some(relay) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let date = mailsim_core::time::Timestamp::from_millis(now).rfc5322();
            let mut content = relay.received_lines(message, source, host_name, &date).into_bytes();
            content.extend_from_slice(&message.data);
            content
        }
        None => {
            let received = format!(
                "Received: from {} ({}) by {host_name} with ESMTP; relayed by mailsim scripted peer\r\n",
                message.helo.as_deref().unwrap_or("unknown"),
                message.client_ip
            );
            [received.as_bytes(), &message.data].concat()
        }
    };
    if let Some(signer) = relay.and_then(|r| r.dkim.as_ref()) {
        match signer.sign(&content) {
            Ok(signed) => content = signed,
            Err(e) => return format!("not forwarded: {e}"),
        }
    }
    let (mut client, greeting) = match crate::sender::ScriptedSender::connect(source, target).await {
        Ok(c) => c,
        Err(e) => return format!("connect failed: {e}"),
    };
    if greeting.code != 220 {
        return greeting.last_line();
    }
    let content = String::from_utf8_lossy(&content);
    let rcpts: Vec<&str> = message.rcpt_to.iter().map(String::as_str).collect();
    let result = client.send_message(host_name, &message.mail_from, &rcpts, &content).await;
    let _ = client.command("QUIT").await;
    match result {
        Ok(reply) => reply.last_line(),
        Err(e) => format!("failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(helo: Option<&str>, client: &str, tls: bool) -> ReceivedMessage {
        ReceivedMessage {
            id: 1,
            mail_from: "a@fabrikam.test".into(),
            rcpt_to: vec!["b@contoso.test".into()],
            data: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            tls: tls.then(|| super::super::PeerTlsInfo {
                version: "TLS1_3".into(),
                cipher: "TLS13_AES_256_GCM_SHA384".into(),
                client_cert_subject: None,
                sni: None,
            }),
            client_ip: client.parse().unwrap(),
            helo: helo.map(str::to_string),
            connection: 0,
        }
    }

    /// Each line without its `id` and date, which change per message.
    fn shapes(lines: &str) -> Vec<String> {
        lines.lines().map(|l| l.split(" id MS").next().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn received_lines_name_declared_addresses_newest_first() {
        let relay = RelayOptions::default();
        relay.addresses.set("127.0.0.30".parse().unwrap(), "203.0.113.25".parse().unwrap());
        relay.addresses.set("127.0.0.20".parse().unwrap(), "198.51.100.7".parse().unwrap());
        let own = "127.0.0.20".parse().unwrap();
        let date = "Mon, 7 Dec 2026 10:00:00 +0000";
        // No hops: one line, the client and the relay by their declared addresses.
        let text = relay.received_lines(&message(Some("mx.fabrikam.test"), "127.0.0.30", true), own, "gw.test", date);
        assert_eq!(
            shapes(&text),
            ["Received: from mx.fabrikam.test ([203.0.113.25]) by gw.test ([198.51.100.7]) with ESMTPS"]
        );
        assert!(text.ends_with(&format!("; {date}\r\n")), "{text}");

        // Hops, an IPv6 client without a HELO, an address the book does not know (itself).
        let relay = RelayOptions {
            hops: vec![
                RelayHop { name: "rx.gw.test".into(), address: "2001:db8::5".parse().unwrap() },
                RelayHop { name: "lb.gw.test".into(), address: "10.0.0.5".parse().unwrap() },
            ],
            ..relay
        };
        let text = relay.received_lines(&message(None, "2001:db8::25", false), own, "gw.test", date);
        assert_eq!(
            shapes(&text),
            [
                "Received: from lb.gw.test ([10.0.0.5]) by gw.test ([198.51.100.7]) with ESMTP",
                "Received: from rx.gw.test ([IPv6:2001:db8::5]) by lb.gw.test ([10.0.0.5]) with ESMTP",
                "Received: from unknown ([IPv6:2001:db8::25]) by rx.gw.test ([IPv6:2001:db8::5]) with ESMTP",
            ]
        );
        let ids: std::collections::BTreeSet<&str> =
            text.lines().map(|l| l.split(" id ").nth(1).unwrap().split(';').next().unwrap()).collect();
        assert_eq!(ids.len(), 3, "every line has its own id");
    }
}
