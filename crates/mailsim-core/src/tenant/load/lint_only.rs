//! `[ArcConfig]`, `[HostedConnectionFilterPolicy]` and `[HostedContentFilterPolicy]`: tables used
//! by `mailsim lint` only (exo-behaviour §15.5 L5, L16; [`crate::tenant::lint_only`]). Values are
//! checked like every other table's, so a bad one names file, line, column and field.

use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{Cx, StrList, TenantBuilder, choice, items};
use crate::addr::Domain;
use crate::diagnostics::ConfigError;
use crate::tenant::lint_only::{ASF_OPTIONS, AsfSetting};

/// `Set-ArcConfig` (exo-behaviour §14.6).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RawArcConfig {
    arc_trusted_sealers: Option<Spanned<StrList>>,
    identity: Option<String>,
}

/// `Set-HostedConnectionFilterPolicy`, the IP Allow List.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RawConnectionFilter {
    #[serde(rename = "IPAllowList")]
    ip_allow_list: Option<Spanned<StrList>>,
    identity: Option<String>,
}

/// `Set-HostedContentFilterPolicy`, the ASF options ([`ASF_OPTIONS`], in that order).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct RawContentFilter {
    increase_score_with_image_links: Option<Spanned<String>>,
    increase_score_with_numeric_ips: Option<Spanned<String>>,
    increase_score_with_redirect_to_other_port: Option<Spanned<String>>,
    increase_score_with_biz_or_info_urls: Option<Spanned<String>>,
    mark_as_spam_empty_messages: Option<Spanned<String>>,
    mark_as_spam_java_script_in_html: Option<Spanned<String>>,
    mark_as_spam_frames_in_html: Option<Spanned<String>>,
    mark_as_spam_object_tags_in_html: Option<Spanned<String>>,
    mark_as_spam_embed_tags_in_html: Option<Spanned<String>>,
    mark_as_spam_form_tags_in_html: Option<Spanned<String>>,
    mark_as_spam_web_bugs_in_html: Option<Spanned<String>>,
    mark_as_spam_sensitive_word_list: Option<Spanned<String>>,
    mark_as_spam_from_address_auth_fail: Option<Spanned<String>>,
    mark_as_spam_ndr_backscatter: Option<Spanned<String>>,
    mark_as_spam_spf_record_hard_fail: Option<Spanned<String>>,
    identity: Option<String>,
}

impl RawContentFilter {
    fn options(&self) -> [&Option<Spanned<String>>; 15] {
        [
            &self.increase_score_with_image_links,
            &self.increase_score_with_numeric_ips,
            &self.increase_score_with_redirect_to_other_port,
            &self.increase_score_with_biz_or_info_urls,
            &self.mark_as_spam_empty_messages,
            &self.mark_as_spam_java_script_in_html,
            &self.mark_as_spam_frames_in_html,
            &self.mark_as_spam_object_tags_in_html,
            &self.mark_as_spam_embed_tags_in_html,
            &self.mark_as_spam_form_tags_in_html,
            &self.mark_as_spam_web_bugs_in_html,
            &self.mark_as_spam_sensitive_word_list,
            &self.mark_as_spam_from_address_auth_fail,
            &self.mark_as_spam_ndr_backscatter,
            &self.mark_as_spam_spf_record_hard_fail,
        ]
    }
}

/// An `IPAllowList` entry: an IP, `ip/len` or `ip-ip`.
fn ip_entry(text: &str) -> bool {
    let t = text.trim();
    if let Some((ip, len)) = t.split_once('/') {
        let max = if ip.contains(':') { 128 } else { 32 };
        ip.parse::<IpAddr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= max)
    } else if let Some((a, b)) = t.split_once('-') {
        a.trim().parse::<IpAddr>().is_ok() && b.trim().parse::<IpAddr>().is_ok()
    } else {
        t.parse::<IpAddr>().is_ok()
    }
}

pub(super) fn build(
    cx: &Cx<'_>,
    arc: Option<RawArcConfig>,
    connection: Option<RawConnectionFilter>,
    content: Option<RawContentFilter>,
    tenant: &mut TenantBuilder,
) -> Result<(), ConfigError> {
    if let Some(raw) = arc {
        for (text, span) in items(&raw.arc_trusted_sealers) {
            let t = text.trim();
            Domain::parse(t, false).map_err(|e| {
                cx.error(&span, "ArcConfig.ArcTrustedSealers", format!("`{text}` is not a domain ({e})"))
            })?;
            tenant.arc_config.arc_trusted_sealers.push(t.to_string());
        }
        let _ = raw.identity;
    }
    if let Some(raw) = connection {
        for (text, span) in items(&raw.ip_allow_list) {
            if !ip_entry(text) {
                return Err(cx
                    .error(
                        &span,
                        "HostedConnectionFilterPolicy.IPAllowList",
                        format!("`{text}` is not an IP address or range"),
                    )
                    .with_hint("write `192.0.2.1`, `192.0.2.0/24` or `192.0.2.1-192.0.2.9`"));
            }
            tenant.connection_filter.ip_allow_list.push(text.trim().to_string());
        }
        let _ = raw.identity;
    }
    if let Some(raw) = content {
        for (name, value) in ASF_OPTIONS.iter().zip(raw.options()) {
            let Some(v) = value else { continue };
            let setting = choice(
                cx,
                v,
                &format!("HostedContentFilterPolicy.{name}"),
                &[("Off", AsfSetting::Off), ("On", AsfSetting::On), ("Test", AsfSetting::Test)],
            )?;
            tenant.content_filter.asf.push((name, setting));
        }
        let _ = raw.identity;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::tenant::lint_only::AsfSetting;
    use crate::tenant::load::load;

    #[test]
    fn lint_only_tables_load_with_exo_names() {
        let t = load(
            "[ArcConfig]\nIdentity = \"Default\"\nArcTrustedSealers = \"gateway.test, lists.test\"\n\n\
             [HostedConnectionFilterPolicy]\nIPAllowList = [\"192.0.2.1\", \"198.51.100.0/24\", \"203.0.113.1-203.0.113.9\"]\n\n\
             [HostedContentFilterPolicy]\nMarkAsSpamSpfRecordHardFail = \"on\"\nIncreaseScoreWithImageLinks = \"Test\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(t.arc_config.arc_trusted_sealers, ["gateway.test", "lists.test"]);
        assert_eq!(t.connection_filter.ip_allow_list.len(), 3);
        assert_eq!(t.content_filter.asf("MarkAsSpamSpfRecordHardFail"), AsfSetting::On);
        assert_eq!(t.content_filter.asf("IncreaseScoreWithImageLinks"), AsfSetting::Test);
        assert_eq!(t.content_filter.asf("MarkAsSpamEmptyMessages"), AsfSetting::Off);
    }

    #[test]
    fn lint_only_tables_refuse_bad_values_at_the_value() {
        let rows = [
            (
                "[HostedConnectionFilterPolicy]\nIPAllowList = [\"192.0.2.1\", \"not-an-ip\"]\n",
                "t.toml:2:29: HostedConnectionFilterPolicy.IPAllowList: `not-an-ip` is not an IP address or range",
            ),
            (
                "[HostedContentFilterPolicy]\nMarkAsSpamSpfRecordHardFail = \"Yes\"\n",
                "t.toml:2:31: HostedContentFilterPolicy.MarkAsSpamSpfRecordHardFail: `Yes` is not one of Off, On, Test",
            ),
            (
                "[ArcConfig]\nArcTrustedSealers = [\"bad domain\"]\n",
                "t.toml:2:22: ArcConfig.ArcTrustedSealers: `bad domain` is not a domain",
            ),
        ];
        for (text, want) in rows {
            let e = load(text, "t.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}\nwant {want}");
        }
        let e = load("[HostedContentFilterPolicy]\nMarkAsSpamSpfHardFail = \"On\"\n", "t.toml").unwrap_err();
        assert!(e.hint.unwrap_or_default().contains("MarkAsSpamSpfRecordHardFail"));
    }
}
