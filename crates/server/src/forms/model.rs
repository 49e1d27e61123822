//! A capture form as a client writes it, checked into values the database stores, and as a
//! client reads it back, with its embed snippet.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::AppError;

/// The lead fields a form may ask for (and `custom.<key>` for anything else).
pub const LEAD_FIELDS: [&str; 13] = [
    "email",
    "first_name",
    "last_name",
    "title",
    "phone",
    "company_name",
    "company_domain",
    "department",
    "seniority",
    "linkedin_url",
    "city",
    "region",
    "country",
];

/// How a submission whose email matches an existing lead (by the email's blind index) is
/// handled. The organization's unique address index allows one lead per address, so there is
/// no "always a new lead" mode.
pub const DEDUPE_MODES: [&str; 3] = ["create_only", "fill_empty", "update_existing"];

pub const DEFAULT_THANK_YOU: &str = "Thank you. We will be in touch soon.";

/// One field of the form.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// A lead field (`email`, `first_name`, `last_name`, `title`, `phone`, `company_name`,
    /// `company_domain`, `department`, `seniority`, `linkedin_url`, `city`, `region`, `country`)
    /// or `custom.<key>` (lower-case letters, digits and `_`).
    pub name: String,
    /// What the visitor reads; the field's name when absent.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub required: bool,
}

/// A form's definition, as created or replaced.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormBody {
    /// Unique in the organization; leads it creates get `source = form:<name>`.
    pub name: String,
    /// 1 to 30 fields; `email` is always one of them, and always required.
    pub fields: Vec<FieldSpec>,
    /// The consent a visitor must tick, and its version (both or neither).
    #[serde(default)]
    pub consent_text: Option<String>,
    #[serde(default)]
    pub consent_version: Option<String>,
    /// The CCPA notice at collection, shown above the submit button.
    #[serde(default)]
    pub ccpa_notice: Option<String>,
    /// Shown after a submission (when there is no redirect).
    #[serde(default)]
    pub thank_you: Option<String>,
    /// Where a visitor goes after a submission: an https URL on one of `allowed_origins`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// The origins (`https://www.example.com`) whose pages may post to the form: 1 to 20.
    /// Plain `http` only for loopback hosts (local development).
    pub allowed_origins: Vec<String>,
    /// `create_only` (an existing lead is left as it is), `fill_empty` (the default: fields the
    /// lead lacks are filled) or `update_existing` (submitted values overwrite).
    #[serde(default)]
    pub dedupe: Option<String>,
    /// Whether a post without a fill-time stamp is accepted (the plain snippet, without its
    /// script, cannot carry one); default true. A stamp that is present but forged, stale or
    /// too fresh is spam either way.
    #[serde(default)]
    pub accept_without_stamp: Option<bool>,
    /// Members mailed on each submission. When absent: on creation the creator (nobody for an
    /// API key), on replacement the current owners.
    #[serde(default)]
    pub owners: Option<Vec<Uuid>>,
    /// Submissions accepted per hour across every visitor (1 to 100,000; default 500).
    #[serde(default)]
    pub max_per_hour: Option<i32>,
}

/// A definition that holds.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub consent_text: Option<String>,
    pub consent_version: Option<String>,
    pub ccpa_notice: Option<String>,
    pub thank_you: String,
    pub redirect_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub dedupe: String,
    pub accept_without_stamp: bool,
    pub owners: Option<Vec<Uuid>>,
    pub max_per_hour: i32,
}

fn bad(m: impl Into<String>) -> AppError {
    AppError::BadRequest(m.into())
}

fn text(
    field: &str,
    v: Option<String>,
    max: usize,
    lines: bool,
) -> Result<Option<String>, AppError> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(bad(format!("{field}: at most {max} characters")));
    }
    if v.chars()
        .any(|c| c.is_control() && !(lines && (c == '\n' || c == '\r' || c == '\t')))
    {
        return Err(bad(format!("{field}: control characters are not allowed")));
    }
    Ok(Some(v.to_string()))
}

/// Whether `name` is a field a form may carry.
#[must_use]
pub fn known_field(name: &str) -> bool {
    if let Some(key) = name.strip_prefix("custom.") {
        return !key.is_empty()
            && key.len() <= 40
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    }
    LEAD_FIELDS.contains(&name)
}

/// An origin as browsers send it (`scheme://host[:port]`, default port dropped), if `raw` is
/// one a form may allow: https, or http on a loopback host.
#[must_use]
pub fn origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let host = url.host_str()?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return None;
    }
    let o = url.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

impl FormBody {
    /// Checks the definition, naming the first field that does not hold.
    pub fn check(self) -> Result<Checked, AppError> {
        let name =
            text("name", Some(self.name), 200, false)?.ok_or_else(|| bad("name: required"))?;
        if self.fields.is_empty() || self.fields.len() > 30 {
            return Err(bad("fields: from 1 to 30 fields"));
        }
        let mut fields: Vec<FieldSpec> = Vec::with_capacity(self.fields.len());
        for (i, f) in self.fields.into_iter().enumerate() {
            let n = f.name.trim().to_string();
            if !known_field(&n) {
                return Err(bad(format!(
                    "fields[{i}].name: {n:?} is not a lead field ({}) or custom.<key>",
                    LEAD_FIELDS.join(", ")
                )));
            }
            if fields.iter().any(|g| g.name == n) {
                return Err(bad(format!("fields[{i}].name: {n} appears twice")));
            }
            let label = text(&format!("fields[{i}].label"), f.label, 200, false)?;
            fields.push(FieldSpec {
                required: f.required || n == "email",
                name: n,
                label,
            });
        }
        if !fields.iter().any(|f| f.name == "email") {
            return Err(bad(
                "fields: a form needs an email field (leads are matched by their address)",
            ));
        }
        let consent_text = text("consent_text", self.consent_text, 4000, true)?;
        let consent_version = text("consent_version", self.consent_version, 50, false)?;
        if consent_text.is_some() != consent_version.is_some() {
            return Err(bad(
                "consent_version: a consent text needs a version, and a version a text",
            ));
        }
        let ccpa_notice = text("ccpa_notice", self.ccpa_notice, 4000, true)?;
        let thank_you = text("thank_you", self.thank_you, 2000, true)?
            .unwrap_or_else(|| DEFAULT_THANK_YOU.to_string());
        if self.allowed_origins.is_empty() || self.allowed_origins.len() > 20 {
            return Err(bad("allowed_origins: from 1 to 20 origins"));
        }
        let mut allowed_origins = Vec::with_capacity(self.allowed_origins.len());
        for (i, o) in self.allowed_origins.iter().enumerate() {
            let Some(o) = origin(o) else {
                return Err(bad(format!(
                    "allowed_origins[{i}]: an origin such as https://www.example.com \
                     (http only for localhost)"
                )));
            };
            if !allowed_origins.contains(&o) {
                allowed_origins.push(o);
            }
        }
        let redirect_url = match text("redirect_url", self.redirect_url, 2000, false)? {
            None => None,
            Some(r) => {
                let url = url::Url::parse(&r).map_err(|_| bad("redirect_url: not a URL"))?;
                let on_allowed = origin(&r).is_some_and(|o| allowed_origins.contains(&o));
                if url.scheme() != "https" || !on_allowed {
                    return Err(bad(
                        "redirect_url: an https URL on one of the allowed origins",
                    ));
                }
                Some(url.to_string())
            }
        };
        let dedupe = self.dedupe.unwrap_or_else(|| "fill_empty".into());
        if !DEDUPE_MODES.contains(&dedupe.as_str()) {
            return Err(bad(format!("dedupe: one of {}", DEDUPE_MODES.join(", "))));
        }
        let max_per_hour = self.max_per_hour.unwrap_or(500);
        if !(1..=100_000).contains(&max_per_hour) {
            return Err(bad("max_per_hour: from 1 to 100000"));
        }
        if self.owners.as_ref().is_some_and(|o| o.len() > 20) {
            return Err(bad("owners: at most 20 members"));
        }
        Ok(Checked {
            name,
            fields,
            consent_text,
            consent_version,
            ccpa_notice,
            thank_you,
            redirect_url,
            allowed_origins,
            dedupe,
            accept_without_stamp: self.accept_without_stamp.unwrap_or(true),
            owners: self.owners,
            max_per_hour,
        })
    }
}

/// How many times the form was served, posted, caught as spam, and turned into a new lead.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Counters {
    /// Stamps served to the form's script (each page view that ran it).
    pub views: i64,
    /// Accepted submissions (a lead created or matched).
    pub submissions: i64,
    /// Posts that tripped the honeypot or the fill-time stamp; nothing of them was stored.
    pub spam: i64,
    /// Submissions that created a new lead.
    pub conversions: i64,
}

/// A form as a client reads it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FormView {
    pub id: Uuid,
    /// The key in the form's public address, `/f/{public_key}`.
    pub public_key: String,
    pub name: String,
    pub fields: Vec<FieldSpec>,
    pub consent_text: Option<String>,
    pub consent_version: Option<String>,
    pub ccpa_notice: Option<String>,
    pub thank_you: String,
    pub redirect_url: Option<String>,
    pub allowed_origins: Vec<String>,
    pub dedupe: String,
    pub accept_without_stamp: bool,
    /// `active` or `paused`.
    pub status: String,
    pub owners: Vec<Uuid>,
    pub max_per_hour: i32,
    pub counters: Counters,
    /// The HTML to paste into a page: a plain form that works without JavaScript, and the
    /// optional script for inline validation and an in-page thank-you.
    pub embed: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// HTML-escapes text for the snippet.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn label_of(f: &FieldSpec) -> String {
    f.label.clone().unwrap_or_else(|| {
        let n = f.name.strip_prefix("custom.").unwrap_or(&f.name);
        let mut s = n.replace('_', " ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + &s[1..];
        }
        s
    })
}

fn input_type(name: &str) -> &'static str {
    match name {
        "email" => "email",
        "phone" => "tel",
        "linkedin_url" => "url",
        _ => "text",
    }
}

/// The embed snippet: a plain HTML form posting to `site/f/{key}`, the honeypot hidden by the
/// `.hp` rule the snippet brings along (a page's own stylesheet has none), and the optional
/// script, loaded with `crossorigin` so it is fetched with CORS (LeadGen answers it only for the
/// form's allowed origins).
#[must_use]
pub fn snippet(site: &str, key: &str, c: &FormParts<'_>) -> String {
    use std::fmt::Write as _;
    let action = format!("{site}/f/{key}");
    let mut s = String::new();
    s.push_str("<style>.leadgen-form .hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}</style>\n");
    let _ = writeln!(
        s,
        "<form class=\"leadgen-form\" method=\"post\" action=\"{}\" data-leadgen-form>",
        esc(&action)
    );
    for f in c.fields {
        let req = if f.required { " required" } else { "" };
        let _ = writeln!(
            s,
            "  <p><label>{}{} <input type=\"{}\" name=\"{}\"{req}></label></p>",
            esc(&label_of(f)),
            if f.required { " *" } else { "" },
            input_type(&f.name),
            esc(&f.name)
        );
    }
    let _ = writeln!(
        s,
        "  <p class=\"hp\" aria-hidden=\"true\"><label>Website <input type=\"text\" name=\"{}\" tabindex=\"-1\" autocomplete=\"off\"></label></p>",
        crate::web::trap::HONEYPOT_FIELD
    );
    let _ = writeln!(
        s,
        "  <input type=\"hidden\" name=\"{}\" value=\"\">",
        crate::web::trap::STAMP_FIELD
    );
    if let Some(text) = c.consent_text {
        let _ = writeln!(
            s,
            "  <p><label><input type=\"checkbox\" name=\"consent\" value=\"yes\" required> {}</label></p>",
            esc(text)
        );
    }
    if let Some(notice) = c.ccpa_notice {
        let _ = writeln!(s, "  <p class=\"leadgen-notice\">{}</p>", esc(notice));
    }
    s.push_str("  <p><button type=\"submit\">Send</button></p>\n</form>\n");
    let _ = writeln!(
        s,
        "<script src=\"{}/embed.js\" crossorigin=\"anonymous\" defer></script>",
        esc(&action)
    );
    s
}

/// What the snippet is made of.
pub struct FormParts<'a> {
    pub fields: &'a [FieldSpec],
    pub consent_text: Option<&'a str>,
    pub ccpa_notice: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> FormBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn origins_and_redirects_are_checked() {
        assert_eq!(
            origin("https://WWW.Example.com:443/path").as_deref(),
            Some("https://www.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("http://example.com"), None);
        assert_eq!(origin("javascript:alert(1)"), None);
        let ok = body(serde_json::json!({
            "name": "Demo", "fields": [{"name": "email"}, {"name": "custom.budget"}],
            "allowed_origins": ["https://acme.example"],
            "redirect_url": "https://acme.example/thanks"
        }))
        .check()
        .unwrap();
        assert!(ok.fields[0].required);
        for redirect in [
            "https://evil.example/x",
            "http://acme.example/x",
            "//evil.example",
        ] {
            let e = body(serde_json::json!({
                "name": "Demo", "fields": [{"name": "email"}],
                "allowed_origins": ["https://acme.example"], "redirect_url": redirect
            }))
            .check()
            .unwrap_err();
            assert!(e.to_string().starts_with("redirect_url"), "{redirect}: {e}");
        }
        let e = body(serde_json::json!({
            "name": "Demo", "fields": [{"name": "first_name"}],
            "allowed_origins": ["https://acme.example"]
        }))
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("email"), "{e}");
    }

    #[test]
    fn the_snippet_escapes_what_members_wrote() {
        let fields = vec![FieldSpec {
            name: "email".into(),
            label: Some("<b>Mail</b>".into()),
            required: true,
        }];
        let s = snippet(
            "https://leadgen.example",
            "k",
            &FormParts {
                fields: &fields,
                consent_text: Some("I agree & \"more\""),
                ccpa_notice: None,
            },
        );
        assert!(s.contains("&lt;b&gt;Mail&lt;/b&gt;"));
        assert!(s.contains("I agree &amp; &quot;more&quot;"));
        assert!(s.contains("action=\"https://leadgen.example/f/k\""));
        assert!(s.contains("name=\"homepage_url\""));
    }
}
