//! The `mailsim explain` command line: any input (a tenant file or a scenario file, whose tenant,
//! hosts and DNS zone are used), either direction.
//!
//! - Inbound (`--source IP|HOST`): which inbound connector applies and what the tenant replies
//!   ([`super::explain`]).
//! - Outbound (`--from MAILBOX|HOST|IP`): a mailbox of the tenant sends, or a source relays
//!   through the tenant (the inbound dialogue runs first); each recipient's route is explained
//!   ([`super::explain_outbound`]).
//!
//! `--json` prints the same as JSON. Exit status 0 when the message is accepted (inbound) or every
//! recipient has a route (outbound), 1 otherwise, 2 on bad input.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mailsim_core::addr::EmailAddress;
use mailsim_core::tenant::Tenant;
use mailsim_core::tenant::load::load_with_warnings;
use mailsim_core::time::Timestamp;
use mailsim_testkit::dns::DnsZoneSet;

use super::explain::{ExplainArgs, MessageFacts, explain_dialogue};
use super::explain_outbound::{Origin, explain_outbound, render_text};

/// `mailsim explain` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ExplainCmd {
    /// A tenant file or a scenario file (its tenant, hosts and DNS zone are used).
    #[arg(value_name = "TENANT|SCENARIO")]
    pub input: Option<PathBuf>,
    /// Tenant configuration file (TOML, EXO parameter names); the same as giving it as INPUT.
    #[arg(long, env = "MAILSIM_TENANT", value_name = "FILE")]
    pub tenant: Option<PathBuf>,
    /// Inbound: the sending server's address as connectors see it (the declared address, e.g.
    /// 198.51.100.7), or a scenario host's name.
    #[arg(long, env = "MAILSIM_EXPLAIN_SOURCE", value_name = "IP|HOST")]
    pub source: Option<String>,
    /// Outbound: a tenant mailbox that sends (alice@contoso.test), or the source that relays
    /// through the tenant (an address or a scenario host's name; --mail-from is then the sender).
    #[arg(long, env = "MAILSIM_EXPLAIN_FROM", value_name = "MAILBOX|HOST|IP", conflicts_with = "source")]
    pub from: Option<String>,
    /// P1 MAIL FROM address, or "<>" for the null sender (inbound, and outbound from a source).
    #[arg(long = "mail-from", env = "MAILSIM_EXPLAIN_MAIL_FROM", value_name = "ADDR")]
    pub mail_from: Option<String>,
    /// A RCPT TO address (repeatable).
    #[arg(
        long = "rcpt-to",
        value_name = "ADDR",
        required = true,
        env = "MAILSIM_EXPLAIN_RCPT_TO",
        value_delimiter = ','
    )]
    pub rcpt_to: Vec<String>,
    /// TLS, certificate, EHLO, content, time and authentication verdicts.
    #[command(flatten)]
    pub facts: MessageFacts,
    /// Print JSON instead of text.
    #[arg(long, env = "MAILSIM_EXPLAIN_JSON")]
    pub json: bool,
}

/// A loaded input: the tenant, and for a scenario its hosts and DNS zone.
pub struct Loaded {
    /// The tenant.
    pub tenant: Tenant,
    /// Host name → declared address (scenario hosts).
    pub hosts: Vec<(String, IpAddr)>,
    /// The scenario's DNS zone.
    pub dns: Option<DnsZoneSet>,
    /// How the input is named in reports.
    pub name: String,
}

/// Whether TOML text is a scenario (has a `[scenario]` table) rather than a tenant.
fn is_scenario(text: &str) -> bool {
    text.parse::<toml::Table>().is_ok_and(|t| t.contains_key("scenario"))
}

/// Loads a tenant file or a scenario file.
pub fn load_input(path: &Path) -> anyhow::Result<Loaded> {
    let text = crate::config_file::read(path)?;
    if is_scenario(&text) {
        let scenario = crate::scenario::parse(&text, path)?;
        for w in &scenario.warnings {
            eprintln!("{w}");
        }
        return Ok(Loaded {
            hosts: scenario.world.hosts.iter().map(|h| (h.name.clone(), h.declared)).collect(),
            dns: Some(scenario.world.dns.clone()),
            name: format!("{} (scenario \"{}\")", path.display(), scenario.name),
            tenant: scenario.world.tenant,
        });
    }
    let loaded = load_with_warnings(&text, &path.display().to_string())?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(Loaded { tenant: loaded.tenant, hosts: Vec::new(), dns: None, name: path.display().to_string() })
}

impl Loaded {
    /// An address, or a scenario host's declared address.
    fn address(&self, flag: &str, text: &str) -> anyhow::Result<(IpAddr, String)> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok((ip, ip.to_string()));
        }
        match self.hosts.iter().find(|(n, _)| n.eq_ignore_ascii_case(text)) {
            Some((n, ip)) => Ok((*ip, format!("{n} ({ip})"))),
            None if self.hosts.is_empty() => {
                anyhow::bail!("{flag} {text:?}: not an IP address (host names need a scenario file)")
            }
            None => {
                let names: Vec<&str> = self.hosts.iter().map(|(n, _)| n.as_str()).collect();
                anyhow::bail!("{flag} {text:?}: no host of that name (hosts: {})", names.join(", "))
            }
        }
    }
}

fn parse_at(at: Option<&str>) -> anyhow::Result<Timestamp> {
    Ok(match at {
        Some(text) => mailsim_core::tenant::transport_rule::parse_date(text)
            .ok_or_else(|| anyhow::anyhow!("--at {text:?}: write 2026-12-08T09:00:00Z or 2026-12-08 (UTC)"))?,
        None => Timestamp::from_millis(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
        ),
    })
}

fn inbound_args(cmd: &ExplainCmd, path: &Path, source: IpAddr, mail_from: String) -> ExplainArgs {
    ExplainArgs {
        tenant: path.to_path_buf(),
        source,
        mail_from,
        rcpt_to: cmd.rcpt_to.clone(),
        facts: cmd.facts.clone(),
    }
}

fn parse_rcpt(s: &str) -> anyhow::Result<EmailAddress> {
    let t = s.trim();
    let t = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')).unwrap_or(t);
    EmailAddress::parse(t, true).map_err(|e| anyhow::anyhow!("--rcpt-to {s:?}: {e}"))
}

/// The report (text or JSON) and the exit code. Pure but for reading the input files.
pub fn explain_cmd(cmd: &ExplainCmd) -> anyhow::Result<(String, i32)> {
    let path = match (&cmd.input, &cmd.tenant) {
        (Some(p), None) | (None, Some(p)) => p.clone(),
        (Some(_), Some(_)) => {
            anyhow::bail!("give the tenant or scenario file once: as INPUT or as --tenant (is MAILSIM_TENANT set?)")
        }
        (None, None) => anyhow::bail!("give a tenant or scenario file (INPUT or --tenant)"),
    };
    let loaded = load_input(&path)?;
    let content = match &cmd.facts.headers {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read headers file {}: {e}", p.display()))?)
        }
        None => None,
    };
    let at = parse_at(cmd.facts.at.as_deref())?;
    match (&cmd.from, &cmd.source) {
        (None, None) => anyhow::bail!(
            "say which direction: --source IP|HOST (inbound: who connects to the tenant) or --from MAILBOX|HOST|IP \
             (outbound: who sends through it)"
        ),
        (None, Some(source)) => {
            let (ip, _) = loaded.address("--source", source)?;
            let mail_from =
                cmd.mail_from.clone().ok_or_else(|| anyhow::anyhow!("--mail-from is required with --source"))?;
            let args = inbound_args(cmd, &path, ip, mail_from);
            let e = explain_dialogue(&loaded.tenant, &loaded.name, &args, content.as_deref(), at)?;
            let code = if e.queued.is_some() { 0 } else { 1 };
            if cmd.json {
                let json = inbound_json(&loaded, &args, &e, at);
                return Ok((format!("{}\n", serde_json::to_string_pretty(&json)?), code));
            }
            Ok((e.text, code))
        }
        (Some(from), _) => {
            let rcpts = cmd.rcpt_to.iter().map(|r| parse_rcpt(r)).collect::<anyhow::Result<Vec<_>>>()?;
            let origin = if from.contains('@') {
                if cmd.mail_from.is_some() {
                    anyhow::bail!("--mail-from goes with --from HOST|IP; --from {from} is already the sender");
                }
                Origin::Mailbox(parse_rcpt(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?)
            } else {
                let (ip, named) = loaded.address("--from", from)?;
                let mail_from = cmd
                    .mail_from
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--mail-from is required with --from {from} (a source)"))?;
                let args = inbound_args(cmd, &path, ip, mail_from);
                let e = explain_dialogue(&loaded.tenant, &loaded.name, &args, content.as_deref(), at)?;
                let inbound = e.text;
                match e.queued {
                    Some(m) => Origin::Relayed(Box::new(m), named),
                    None => {
                        let text =
                            format!("{inbound}\nOutbound    not reached: the tenant does not accept the message\n");
                        if cmd.json {
                            let json = serde_json::json!({
                                "direction": "outbound",
                                "input": loaded.name,
                                "accepted": false,
                                "report": text.lines().collect::<Vec<_>>(),
                            });
                            return Ok((format!("{}\n", serde_json::to_string_pretty(&json)?), 1));
                        }
                        return Ok((text, 1));
                    }
                }
            };
            let report = explain_outbound(
                &loaded.tenant,
                &loaded.name,
                origin,
                &rcpts,
                content.as_deref(),
                loaded.dns.as_ref(),
                at,
            );
            let code = if report.routed { 0 } else { 1 };
            if cmd.json {
                return Ok((format!("{}\n", serde_json::to_string_pretty(&report)?), code));
            }
            Ok((render_text(&report), code))
        }
    }
}

/// The inbound explanation as data.
fn inbound_json(
    loaded: &Loaded,
    args: &ExplainArgs,
    e: &super::explain::Explained,
    at: Timestamp,
) -> serde_json::Value {
    use mailsim_core::stage::inbound::InboundVerdict;
    use serde_json::json;
    let tenant = &loaded.tenant;
    let verdict = match &e.verdict {
        Some(InboundVerdict::Accepted { connector, direction, internal, relay_allowed, .. }) => json!({
            "accepted": true,
            "connector": connector,
            "direction": direction.as_str(),
            "auth_as": if *internal { "Internal" } else { "Anonymous" },
            "relay_allowed": relay_allowed,
        }),
        Some(InboundVerdict::Rejected { rejection, .. }) => json!({
            "accepted": false,
            "connector": rejection.connector,
            "reason": rejection.reason.to_string(),
        }),
        None => serde_json::Value::Null,
    };
    let checks: Vec<String> = e.verdict.iter().flat_map(|v| v.checks()).map(ToString::to_string).collect();
    let recipients: Vec<serde_json::Value> = args
        .rcpt_to
        .iter()
        .filter_map(|r| parse_rcpt(r).ok())
        .map(|r| {
            let c = mailsim_core::stage::categorize::categorize(tenant, &r);
            json!({ "address": r.to_string(), "category": mailsim_core::stage::route_explain::category_name(c) })
        })
        .collect();
    let stamps: Vec<(String, String)> = e.queued.as_ref().map_or_else(Vec::new, |m| {
        mailsim_core::header_section::fields(mailsim_core::header_section::section(&m.data))
            .filter_map(|f| {
                let name = String::from_utf8_lossy(f.name()?).to_string();
                name.starts_with("X-MS-Exchange-Organization-")
                    .then(|| (name, String::from_utf8_lossy(f.first_value()).trim().to_string()))
            })
            .collect()
    });
    let rules = e.queued.as_ref().map_or_else(Vec::new, |m| super::explain_outbound::rule_reports(tenant, m, at));
    let sections =
        super::explain_sections::all(&super::explain_sections::Input { tenant, message: e.queued.as_ref(), at });
    json!({
        "direction": "inbound",
        "input": loaded.name,
        "connection": {
            "source": args.source.to_string(),
            "tls": args.facts.tls || args.facts.cert_subject.is_some() || !args.facts.cert_san.is_empty(),
            "helo": args.facts.helo,
        },
        "sender": args.mail_from,
        "recipients": recipients,
        "checks": checks,
        "verdict": verdict,
        "replies": e.replies.iter().map(|(c, r)| json!({ "command": c, "reply": r })).collect::<Vec<_>>(),
        "stamps": stamps,
        "rules": rules,
        "sections": sections,
        "accepted": e.queued.is_some(),
        "result": e.result,
    })
}

/// Runs `mailsim explain`: prints the report, returns the exit code.
pub fn run(cmd: &ExplainCmd) -> anyhow::Result<i32> {
    let (out, code) = explain_cmd(cmd)?;
    print!("{out}");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
    }

    fn cmd(input: &str, from: &str, rcpts: &[&str]) -> ExplainCmd {
        ExplainCmd {
            input: Some(root().join(input)),
            tenant: None,
            source: None,
            from: Some(from.to_string()),
            mail_from: None,
            rcpt_to: rcpts.iter().map(|s| s.to_string()).collect(),
            facts: MessageFacts { at: Some("2026-12-07T09:00:00Z".to_string()), ..Default::default() },
            json: false,
        }
    }

    /// The report with the repository root removed from paths.
    fn report(c: &ExplainCmd) -> (String, i32) {
        let (out, code) = explain_cmd(c).unwrap();
        (out.replace(&format!("{}/", root().display()), ""), code)
    }

    /// Golden file `tests/explain/NAME`; `MAILSIM_BLESS=1` rewrites it, a mismatch writes
    /// `NAME.actual` beside it.
    fn golden(name: &str, actual: &str) {
        let path = root().join("tests/explain").join(name);
        if std::env::var_os("MAILSIM_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        let actual_path =
            path.with_extension(format!("{}.actual", path.extension().and_then(|e| e.to_str()).unwrap_or_default()));
        if expected != actual {
            std::fs::write(&actual_path, actual).unwrap();
            panic!("{} differs; see {}, bless with MAILSIM_BLESS=1", path.display(), actual_path.display());
        }
        let _ = std::fs::remove_file(actual_path);
    }

    const PRECEDENCE: &str = "tests/explain/outbound-precedence.toml";

    /// exo-behaviour §3.2, one golden output per step of the selection order.
    #[test]
    fn golden_outbound_precedence_cases() {
        let cases = [
            ("precedence-0-mail-flow-rule.txt", "p@partner-x.test"),
            ("precedence-1-exact-beats-wildcard-and-disabled.txt", "bob@partner.test"),
            ("precedence-3-longer-wildcard-wins.txt", "y@a.eu.fabrikam.test"),
            ("precedence-3-wildcard-by-mx.txt", "x@sales.fabrikam.test"),
            ("precedence-2-all-accepted-domains.txt", "onprem@hybrid.contoso.test"),
            ("precedence-3-star-is-broadest.txt", "z@other.test"),
        ];
        for (name, rcpt) in cases {
            let (out, code) = report(&cmd(PRECEDENCE, "alice@contoso.test", &[rcpt]));
            assert_eq!(code, 0, "{out}");
            golden(name, &out);
        }
    }

    #[test]
    fn golden_mx_lookup_with_null_mx() {
        let rcpts = ["a@partner.test", "b@nomail.test", "c@gone.partner.test", "d@implicit.test", "e@broken.test"];
        let (out, code) = report(&cmd("tests/explain/outbound-mx.toml", "alice@contoso.test", &rcpts));
        assert_eq!(code, 1, "the null MX fails a recipient: {out}");
        assert!(out.contains("→ failed (NDR): 556 5.1.10 Recipient address has null MX"), "{out}");
        golden("mx-null-mx-and-failures.txt", &out);
    }

    #[test]
    fn golden_json() {
        let mut c = cmd(PRECEDENCE, "alice@contoso.test", &["bob@partner.test", "alice@contoso.test"]);
        c.json = true;
        let (out, code) = report(&c);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["forks"][0]["routes"][0]["next_hop"]["connector"], "Partner HQ");
        assert_eq!(v["forks"][0]["routes"][1]["next_hop"]["kind"], "mailbox");
        golden("precedence-json.json", &out);
    }

    /// `--from HOST`: the inbound dialogue runs first; the relayed message is routed.
    #[test]
    fn relayed_from_a_scenario_host_or_refused() {
        let mut c = cmd(PRECEDENCE, "onprem", &["z@other.test"]);
        c.mail_from = Some("alice@contoso.test".into());
        let (out, code) = report(&c);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("relayed from onprem (192.0.2.10), accepted via connector \"On-premises relay\""),
            "{out}"
        );
        assert!(out.contains("wins           \"All via gateway\""), "{out}");

        let mut c = cmd(PRECEDENCE, "internet", &["z@other.test"]);
        c.mail_from = Some("someone@fabrikam.test".into());
        let (out, code) = report(&c);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("550 5.7.64 TenantAttribution; Relay Access Denied"), "{out}");
        assert!(out.contains("Outbound    not reached"), "{out}");
    }

    /// Issue 10: `explain` accepts a scenario file (it used to refuse `unknown key 'scenario'`);
    /// `--source` takes a scenario host's name.
    #[test]
    fn inbound_from_a_scenario_file_and_host_name() {
        let mut c = cmd(PRECEDENCE, "x", &["alice@contoso.test"]);
        c.from = None;
        c.source = Some("onprem".into());
        c.mail_from = Some("app@contoso.test".into());
        let (out, code) = report(&c);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("accepted: Originating via connector \"On-premises relay\""), "{out}");
        c.source = Some("nowhere".into());
        let err = explain_cmd(&c).unwrap_err().to_string();
        assert!(err.contains("no host of that name (hosts: onprem, internet)"), "{err}");
    }

    #[test]
    fn bad_invocations_say_what_is_missing() {
        let mut c = cmd(PRECEDENCE, "x", &["a@b.test"]);
        c.from = None;
        assert!(explain_cmd(&c).unwrap_err().to_string().contains("say which direction"));
        let mut c = cmd(PRECEDENCE, "onprem", &["a@b.test"]);
        c.mail_from = None;
        assert!(explain_cmd(&c).unwrap_err().to_string().contains("--mail-from is required"));
        let mut c = cmd(PRECEDENCE, "alice@contoso.test", &["a@b.test"]);
        c.input = None;
        assert!(explain_cmd(&c).unwrap_err().to_string().contains("give a tenant or scenario file"));
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    /// `--json` for the inbound direction: the verdict, checks, replies and stamps as data.
    #[test]
    fn inbound_json_has_the_verdict_and_replies() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/explain/outbound-precedence.toml");
        let c = ExplainCmd {
            input: Some(root),
            tenant: None,
            source: Some("onprem".into()),
            from: None,
            mail_from: Some("app@contoso.test".into()),
            rcpt_to: vec!["alice@contoso.test".into(), "nobody@contoso.test".into()],
            facts: MessageFacts { at: Some("2026-12-07".into()), ..Default::default() },
            json: true,
        };
        let (out, code) = explain_cmd(&c).unwrap();
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["direction"], "inbound");
        assert_eq!(v["verdict"]["connector"], "On-premises relay");
        assert_eq!(v["verdict"]["direction"], "Originating");
        assert_eq!(v["recipients"][1]["category"], "UnknownInAuthoritative");
        let replies = v["replies"].as_array().unwrap();
        let nobody = replies.iter().find(|r| r["command"] == "RCPT TO:<nobody@contoso.test>").unwrap();
        assert!(nobody["reply"].as_str().unwrap().starts_with("550 5.4.1"), "{nobody}");
        assert_eq!(v["result"], "queued for 1 recipient(s)");
        assert!(v["stamps"].as_array().unwrap().iter().any(|s| s[0] == "X-MS-Exchange-Organization-AuthAs"), "{v:#}");
    }
}
