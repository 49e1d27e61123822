//! `/.well-known/security.txt` (RFC 9116): generated from the `[vdp]` settings on every request,
//! so its `Expires` moves forward by itself, or an operator's signed file served as given.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::PublicState;
use crate::config::{Config, ConfigError};

/// How far ahead the generated `Expires` lies (RFC 9116 asks for less than a year).
pub const EXPIRES_DAYS: i64 = 180;

/// The generated file for `now`.
#[must_use]
pub fn generate(config: &Config, now: OffsetDateTime) -> String {
    let site = config.site_url();
    // Midnight UTC, so the file is the same all day and caches agree.
    let expires = (now + time::Duration::days(EXPIRES_DAYS))
        .replace_time(time::Time::MIDNIGHT)
        .to_offset(time::UtcOffset::UTC);
    let mut out = String::new();
    out.push_str("# Security contact of this LeadGen service (RFC 9116).\n");
    for c in &config.vdp.contacts {
        out.push_str(&format!("Contact: {c}\n"));
    }
    out.push_str(&format!("Contact: {site}/security/disclosure\n"));
    out.push_str(&format!(
        "Expires: {}\n",
        expires.format(&Rfc3339).unwrap_or_default()
    ));
    out.push_str(&format!(
        "Acknowledgments: {site}/security/disclosure#acknowledgments\n"
    ));
    out.push_str(&format!(
        "Preferred-Languages: {}\n",
        config.vdp.languages.trim()
    ));
    out.push_str(&format!("Canonical: {site}/.well-known/security.txt\n"));
    out.push_str(&format!("Policy: {site}/security/disclosure\n"));
    out
}

/// Checks a signed file's content: at least one `Contact`, exactly one `Expires` in the future.
pub fn check_text(text: &str, now: OffsetDateTime) -> Result<(), String> {
    let field = |name: &str| {
        text.lines()
            .filter_map(move |l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
            .collect::<Vec<_>>()
    };
    if field("Contact").is_empty() {
        return Err("has no Contact field".into());
    }
    match field("Expires").as_slice() {
        [one] => {
            let at = OffsetDateTime::parse(one, &Rfc3339)
                .map_err(|_| format!("Expires {one:?} is not an RFC 3339 time"))?;
            if at <= now {
                return Err(format!("expired at {one}"));
            }
            Ok(())
        }
        [] => Err("has no Expires field".into()),
        _ => Err("has more than one Expires field".into()),
    }
}

/// For `configtest` and the start: a configured signed file is readable and valid now.
pub fn check(config: &Config, now: OffsetDateTime) -> Result<(), ConfigError> {
    let path = &config.vdp.signed_path;
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Rule {
        path: "vdp.signed_path".into(),
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    check_text(&text, now).map_err(|reason| ConfigError::Rule {
        path: "vdp.signed_path".into(),
        reason: format!("{}: {reason}", path.display()),
    })
}

/// `GET /.well-known/security.txt`.
pub async fn serve(State(state): State<PublicState>) -> Response {
    let now = state.clock.now();
    let path = &state.config.vdp.signed_path;
    let body = if path.as_os_str().is_empty() {
        generate(&state.config, now)
    } else {
        // Re-read each time: the operator replaces the file before it expires.
        match std::fs::read_to_string(path) {
            Ok(t) => {
                if let Err(reason) = check_text(&t, now) {
                    tracing::error!(target: "leadgen::vdp", %reason, "the signed security.txt is no longer valid; replace it");
                }
                t
            }
            Err(e) => {
                tracing::error!(target: "leadgen::vdp", error = %e, "cannot read the signed security.txt; serving the generated one");
                generate(&state.config, now)
            }
        }
    };
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// `GET /security.txt`: the legacy place, sent on to the registered one.
pub async fn legacy() -> Redirect {
    Redirect::permanent("/.well-known/security.txt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_file_has_every_required_field_and_a_future_expiry() {
        let config = Config::load(&crate::config::Sources::default()).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let text = generate(&config, now);
        assert!(check_text(&text, now).is_ok(), "{text}");
        assert!(text.contains("Canonical: https://"), "{text}");
        // Checked a year later, the same text has expired.
        let later = now + time::Duration::days(366);
        assert!(check_text(&text, later).unwrap_err().contains("expired"));
        assert!(check_text("Expires: 2030-01-01T00:00:00Z\n", now).is_err());
    }
}
