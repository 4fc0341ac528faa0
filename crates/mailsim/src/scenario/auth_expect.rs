//! Scenario expectations on email authentication (issue 11 item 6, exo-behaviour §14):
//! `expect = { auth = "alice@contoso.test", spf = "fail", dmarc = "pass", compauth = "fail reason=000" }`
//! and header checks `{ auth = "alice@contoso.test", header = "X-MS-Exchange-SkipListedInternetSender", equals = "ip=[203.0.113.5];domain=mail.partner.example" }`
//! (`present = false` for an absent header).
//!
//! The message checked is the latest copy for the address, delivered or quarantined; verdicts are
//! read from the message's authentication verdict (the same one its `Authentication-Results`
//! shows).

use std::sync::Arc;

use mailsim_core::envelope::AcceptedMessage;

use super::expect::Mismatch;
use crate::sim::Simulation;

/// One authentication expectation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthCheck {
    /// The recipient whose latest copy is checked.
    pub address: String,
    /// `spf=` word.
    pub spf: Option<String>,
    /// `dkim=` word of the first signature (`none` when unsigned).
    pub dkim: Option<String>,
    /// `dmarc=` word.
    pub dmarc: Option<String>,
    /// `action=` of the DMARC entry.
    pub action: Option<String>,
    /// `compauth=<result> reason=<nnn>` (or just the result).
    pub compauth: Option<String>,
    /// A header of the stored copy.
    pub header: Option<String>,
    /// Its exact value.
    pub equals: Option<String>,
    /// Whether it must be present (default: present when `header` is given).
    pub present: Option<bool>,
}

/// The keys of an `auth` expectation besides `auth`.
pub const AUTH_COMPANIONS: [&str; 8] = ["spf", "dkim", "dmarc", "action", "compauth", "header", "equals", "present"];

fn latest(sim: &Simulation, address: &str) -> Option<Arc<AcceptedMessage>> {
    let mut all = sim.mailbox(address);
    all.extend(sim.quarantine(address));
    all.into_iter().max_by_key(|m| (m.received_at, m.internal_id))
}

/// The value of header `name` in the stored message's header section (first line only).
pub fn header_value(data: &[u8], name: &str) -> Option<String> {
    let section = mailsim_core::header_section::section(data);
    mailsim_core::header_section::fields(section)
        .find(|f| f.is(name))
        .map(|f| String::from_utf8_lossy(f.first_value()).trim().to_string())
}

impl AuthCheck {
    /// In words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("spf", &self.spf),
            ("dkim", &self.dkim),
            ("dmarc", &self.dmarc),
            ("action", &self.action),
            ("compauth", &self.compauth),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        if let Some(h) = &self.header {
            match (&self.equals, self.present) {
                (_, Some(false)) => parts.push(format!("no {h} header")),
                (Some(v), _) => parts.push(format!("{h}: {v}")),
                (None, _) => parts.push(format!("a {h} header")),
            }
        }
        format!("the latest message for {} shows {}", self.address, parts.join(", "))
    }

    /// Checks now; `Err((mismatch, true))` when a message may still arrive.
    pub fn evaluate(&self, sim: &Simulation) -> Result<(), (Mismatch, bool)> {
        let mismatch = |actual: String| Mismatch { expected: self.describe(), actual, ..Mismatch::default() };
        let Some(message) = latest(sim, &self.address) else {
            return Err((mismatch(format!("no message for {} (mailbox or quarantine)", self.address)), true));
        };
        let mut wrong = Vec::new();
        let verdict = message.auth.as_deref();
        let summary =
            verdict.map_or_else(|| "no authentication verdict (authentication is off)".to_string(), |v| v.summary());
        let words = verdict.map(|v| {
            let dkim = v.dkim.first().map_or("none", |(_, d)| mailsim_core::auth::stamps::dkim_word(d));
            (v.spf.as_str(), dkim, v.dmarc.as_str(), v.action.action, v.compauth)
        });
        let check = |want: &Option<String>, got: Option<String>, wrong: &mut Vec<String>, what: &str| {
            if let Some(want) = want
                && got.as_deref().is_none_or(|g| !g.eq_ignore_ascii_case(want.trim()))
            {
                wrong.push(format!("{what}={}", got.unwrap_or_else(|| "?".into())));
            }
        };
        check(&self.spf, words.map(|w| w.0.to_string()), &mut wrong, "spf");
        check(&self.dkim, words.map(|w| w.1.to_string()), &mut wrong, "dkim");
        check(&self.dmarc, words.map(|w| w.2.to_string()), &mut wrong, "dmarc");
        check(&self.action, words.map(|w| w.3.to_string()), &mut wrong, "action");
        if let Some(want) = &self.compauth {
            let got = words.map(|w| if want.contains("reason=") { w.4.text() } else { w.4.result.to_string() });
            check(&self.compauth, got, &mut wrong, "compauth");
        }
        if let Some(name) = &self.header {
            let value = header_value(&message.data, name);
            match (self.present, &self.equals, &value) {
                (Some(false), _, Some(v)) => wrong.push(format!("{name}: {v}")),
                (Some(false), _, None) => {}
                (_, _, None) => wrong.push(format!("no {name} header")),
                (_, Some(want), Some(v)) if v != want => wrong.push(format!("{name}: {v}")),
                _ => {}
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err((mismatch(format!("{} ({summary})", wrong.join(", "))), false)) }
    }
}
