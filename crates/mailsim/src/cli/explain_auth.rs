//! `mailsim explain`'s authentication section (issue 11 item 6, exo-behaviour §14, §7): for the
//! connection explained (source IP, HELO, MAIL FROM), the message's `From` and its `Received`
//! chain (`--headers`), and the SPF/DKIM/DMARC results the world's DNS would give (stated with
//! `--spf`, `--dkim`, `--dmarc`: explain resolves nothing), it shows the Enhanced Filtering walk
//! hop by hop, the IP SPF is judged on, alignment, the DMARC result and the anti-phishing policy's
//! action, compauth, and the exact headers EXO would stamp. Every decision is the core's
//! (`mailsim_core::auth`), the same the endpoint makes.
//!
//! Kept apart from `explain.rs` (one flattened argument group and one call) so that the two evolve
//! independently.

use std::fmt::Write as _;

use mailsim_core::auth::{self, Alignment, AuthFacts, DkimVerdict, DmarcLookup, DmarcPolicy, SpfVerdict};
use mailsim_core::envelope::AcceptedMessage;
use mailsim_core::tenant::Tenant;
use mailsim_core::time::Timestamp;

/// The authentication results to assume (what the world's DNS would give).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthExplainArgs {
    /// Explain authentication too (implied by any of the options below).
    #[arg(long = "auth", env = "MAILSIM_EXPLAIN_AUTH")]
    pub auth: bool,
    /// SPF's result for the judged IP and MAIL FROM: pass, fail, softfail, neutral, none,
    /// temperror or permerror.
    #[arg(long = "spf", value_name = "RESULT", env = "MAILSIM_EXPLAIN_SPF")]
    pub spf: Option<String>,
    /// A DKIM signature: `d=DOMAIN` and its result (`partner.example=pass`, `=fail`); repeatable.
    #[arg(long = "dkim", value_name = "DOMAIN=RESULT", env = "MAILSIM_EXPLAIN_DKIM", value_delimiter = ',')]
    pub dkim: Vec<String>,
    /// The From domain's DMARC record: `none`, `quarantine`, `reject` (its p=, or sp= for a
    /// subdomain), `absent`, `temperror` or `permerror`; `strict` appended (`reject,strict`) makes
    /// both alignments strict. Default: absent.
    #[arg(long = "dmarc", value_name = "POLICY", env = "MAILSIM_EXPLAIN_DMARC")]
    pub dmarc: Option<String>,
    /// The recipient domain's MX does not point at the tenant (a gateway is in front, §14.5).
    #[arg(long = "mx-elsewhere", env = "MAILSIM_EXPLAIN_MX_ELSEWHERE")]
    pub mx_elsewhere: bool,
}

impl AuthExplainArgs {
    fn wanted(&self) -> bool {
        self.auth || self.spf.is_some() || !self.dkim.is_empty() || self.dmarc.is_some() || self.mx_elsewhere
    }

    fn facts(&self) -> anyhow::Result<AuthFacts> {
        let spf = match self.spf.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => SpfVerdict::None,
            Some("pass") => SpfVerdict::Pass,
            Some("fail") => SpfVerdict::Fail,
            Some("softfail") => SpfVerdict::SoftFail,
            Some("neutral") => SpfVerdict::Neutral,
            Some("temperror") => SpfVerdict::TempError,
            Some("permerror") => SpfVerdict::PermError,
            Some(other) => {
                anyhow::bail!("--spf {other:?}: one of pass, fail, softfail, neutral, none, temperror, permerror")
            }
        };
        let mut dkim = Vec::new();
        for d in &self.dkim {
            let (domain, result) = d
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--dkim {d:?}: write DOMAIN=RESULT, e.g. partner.example=pass"))?;
            let verdict = match result.trim().to_ascii_lowercase().as_str() {
                "pass" => DkimVerdict::Pass,
                "fail" => DkimVerdict::Fail("signature did not verify".into()),
                "temperror" => DkimVerdict::TempError,
                "permerror" => DkimVerdict::PermError("no key for signature".into()),
                other => anyhow::bail!("--dkim {d:?}: result {other:?} is not pass, fail, temperror or permerror"),
            };
            dkim.push((domain.trim().to_ascii_lowercase(), verdict));
        }
        let text = self.dmarc.as_deref().unwrap_or("absent").to_ascii_lowercase();
        let (policy, strict) = match text.split_once(',') {
            Some((p, "strict")) => (p.to_string(), true),
            Some(_) => anyhow::bail!("--dmarc {text:?}: write POLICY or POLICY,strict"),
            None => (text.clone(), false),
        };
        let align = if strict { Alignment::Strict } else { Alignment::Relaxed };
        let found = |policy| DmarcLookup::Found { policy, adkim: align, aspf: align };
        let dmarc = match policy.as_str() {
            "absent" => DmarcLookup::NotFound,
            "none" => found(DmarcPolicy::None),
            "quarantine" => found(DmarcPolicy::Quarantine),
            "reject" => found(DmarcPolicy::Reject),
            "temperror" => DmarcLookup::TempError,
            "permerror" => DmarcLookup::PermError,
            other => anyhow::bail!("--dmarc {other:?}: one of none, quarantine, reject, absent, temperror, permerror"),
        };
        Ok(AuthFacts { spf, dkim, dmarc, ptr: None, mx_at_eop: !self.mx_elsewhere })
    }
}

/// Appends the authentication section for a message the session accepted (`m.data` starts with
/// the tenant's own `Received` line, which is not part of the chain the sender handed on).
pub fn report(out: &mut String, tenant: &Tenant, args: &AuthExplainArgs, m: &AcceptedMessage) -> anyhow::Result<()> {
    if !args.wanted() {
        return Ok(());
    }
    let facts = args.facts()?;
    let content = match m.data.windows(2).position(|w| w == b"\r\n") {
        Some(i) => &m.data[i + 2..],
        None => &m.data[..],
    };
    let request = auth::plan(tenant, &m.verdict, &m.peer, m.envelope.sender.as_ref(), &m.envelope.recipients, content);
    let _ = writeln!(out, "\nAuthentication (exo-behaviour §14; results as given, not resolved)");
    let w = &request.walk;
    let mode = match w.mode {
        auth::walk::EfMode::Off => "off".to_string(),
        auth::walk::EfMode::SkipLastIp => "EFSkipLastIP".to_string(),
        auth::walk::EfMode::SkipIps => "EFSkipIPs".to_string(),
    };
    let _ = write!(out, "  Enhanced Filtering  {mode}");
    if let Some(c) = &w.connector {
        let _ = write!(out, " (connector {c})");
    }
    if let Some(why) = w.off_reason {
        let _ = write!(out, ": {why}");
    }
    let _ = writeln!(out);
    for (hop, why) in &w.skipped {
        let _ = writeln!(out, "    skip {} ({}): {why}", hop.ip, hop.helo);
    }
    match &w.original {
        Some(h) if w.users_match => {
            let _ = writeln!(out, "    original internet sender {} ({})", h.ip, h.helo);
        }
        Some(h) => {
            let _ = writeln!(
                out,
                "    original internet sender {} ({}), but EFUsers does not list every recipient: normal filtering",
                h.ip, h.helo
            );
        }
        None if w.mode != auth::walk::EfMode::Off => {
            let _ = writeln!(out, "    every hop skipped: the connecting IP is judged");
        }
        None => {}
    }
    let _ = writeln!(
        out,
        "  SPF judged on       {} (HELO {}), MAIL FROM domain {}",
        request.judged.ip, request.judged.helo, request.spf_domain
    );
    let _ = writeln!(out, "  From domain         {}", request.from_domain.as_deref().unwrap_or("(none or several)"));
    let verdict = auth::decide(tenant, request, facts);
    let _ = writeln!(
        out,
        "  Aligned passes      SPF {}, DKIM {}",
        if verdict.aligned.spf { "yes" } else { "no" },
        if verdict.aligned.dkim { "yes" } else { "no" }
    );
    let _ = writeln!(out, "  Verdict             {}", verdict.summary());
    let fate = match verdict.disposition() {
        auth::Disposition::Reject => {
            "refused at end of DATA: 550 5.7.509 Access denied, sending domain [...] does not pass DMARC verification and has a DMARC policy of reject."
        }
        auth::Disposition::Quarantine => "held in quarantine",
        auth::Disposition::Junk => "delivered to the Junk Email folder (MoveToJmf)",
        auth::Disposition::Deliver => "delivered",
    };
    let _ = writeln!(out, "  Anti-phishing       {fate}");
    let config = auth::AuthConfig::default();
    let cx = auth::stamps::StampContext {
        server_name: &tenant.settings.server_name,
        tenant_id: &config.tenant_id,
        internal_id: m.internal_id,
        now: Timestamp(0),
        filter: &config.filter,
    };
    for (name, value) in auth::stamps::stamps(&verdict, &m.verdict, tenant, &m.envelope.recipients, &cx) {
        let _ = writeln!(out, "  stamped {name}: {value}");
    }
    Ok(())
}
