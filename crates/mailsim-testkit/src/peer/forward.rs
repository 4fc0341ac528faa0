//! Relay mode (`PeerScript::forward_to`): a received message is passed on to another server over
//! plain SMTP from the peer's own address, as a gateway relays mail, stopping at
//! [`MAX_FORWARD_HOPS`] `Received:` headers so a loop ends.

use std::net::IpAddr;

use super::{MAX_FORWARD_HOPS, ReceivedMessage};

/// Relays one received message to `target` from `source`, as a plain-SMTP relay would. Returns the
/// final reply (or error) for the transcript.
pub(super) async fn forward(
    source: IpAddr,
    target: std::net::SocketAddr,
    host_name: &str,
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
    let (mut client, greeting) = match crate::sender::ScriptedSender::connect(source, target).await {
        Ok(c) => c,
        Err(e) => return format!("connect failed: {e}"),
    };
    if greeting.code != 220 {
        return greeting.last_line();
    }
    let received = format!(
        "Received: from {} ({}) by {host_name} with ESMTP; relayed by mailsim scripted peer\r\n",
        message.helo.as_deref().unwrap_or("unknown"),
        message.client_ip
    );
    let content = format!("{received}{}", String::from_utf8_lossy(&message.data));
    let rcpts: Vec<&str> = message.rcpt_to.iter().map(String::as_str).collect();
    let result = client.send_message(host_name, &message.mail_from, &rcpts, &content).await;
    let _ = client.command("QUIT").await;
    match result {
        Ok(reply) => reply.last_line(),
        Err(e) => format!("failed: {e}"),
    }
}
