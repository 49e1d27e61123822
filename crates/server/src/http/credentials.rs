//! The one reading of a request's credentials, shared by the edge (WAF, rate limits) and the
//! extractors behind it, so both judge the same request by the same rules.
//!
//! A request presents at most one credential, in this order of precedence:
//!
//! 1. an API key: `Authorization: Bearer lg_…`, else `X-API-Key: lg_…`;
//! 2. an access token: `Authorization: Bearer <jwt>`;
//! 3. the browser's access cookie (`__Host-lg-access`), for the pages and their scripts.
//!
//! The scheme name is case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer` and `BEARER` are
//! the same. An `Authorization` header with another scheme presents nothing.
//!
//! The identity layer checks what is presented once, at the edge, and leaves its verdict in the
//! request's extensions as a [`Credential`]; nothing behind it parses or verifies again.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use secrecy::SecretString;
use uuid::Uuid;

/// The browser session's access-token cookie.
pub const ACCESS_COOKIE: &str = "__Host-lg-access";
/// The browser session's refresh-token cookie.
pub const REFRESH_COOKIE: &str = "__Host-lg-refresh";

/// What a request presents, read from its headers without checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    ApiKey(&'a str),
    Token(&'a str),
    None,
}

impl<'a> Presented<'a> {
    #[must_use]
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        if let Some(k) = bearer.filter(|t| t.starts_with("lg_")).or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty())
        }) {
            return Self::ApiKey(k);
        }
        match bearer.or_else(|| cookie_value(headers, ACCESS_COOKIE)) {
            Some(t) if !t.is_empty() => Self::Token(t),
            _ => Self::None,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value, whatever the scheme's case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` in a request's `Cookie` headers.
#[must_use]
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The edge's verdict on a request's credential, in its extensions for every layer and extractor
/// behind the identity layer.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An API key, not yet looked up: `digest` names it without the secret (for rate limits and
    /// logs), `well_formed` is its checksum verdict. The extractor looks the key up.
    ApiKey {
        key: Arc<SecretString>,
        digest: String,
        well_formed: bool,
    },
    /// An access token whose signature and claims are valid. The extractor still asks the
    /// database whether its session is live.
    Token {
        user_id: Uuid,
        session_id: Uuid,
        lifetime_secs: i64,
    },
    /// A token that failed verification, with the reason.
    Rejected { reason: String },
    /// Nothing presented.
    None,
}

impl Credential {
    /// Who the request counts against at the edge: `key:<digest>` for a well-formed API key,
    /// `user:<id>` for a valid token.
    #[must_use]
    pub fn principal(&self) -> Option<String> {
        match self {
            Self::ApiKey {
                digest,
                well_formed: true,
                ..
            } => Some(format!("key:{digest}")),
            Self::Token { user_id, .. } => Some(format!("user:{user_id}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let h = headers(&[("authorization", &format!("{scheme} abc.def.ghi"))]);
            assert_eq!(
                Presented::from_headers(&h),
                Presented::Token("abc.def.ghi"),
                "{scheme}"
            );
            let h = headers(&[("authorization", &format!("{scheme} lg_live_x"))]);
            assert_eq!(Presented::from_headers(&h), Presented::ApiKey("lg_live_x"));
        }
    }

    #[test]
    fn api_keys_win_and_other_schemes_present_nothing() {
        let h = headers(&[
            ("authorization", "Bearer abc.def.ghi"),
            ("x-api-key", "lg_live_k"),
        ]);
        assert_eq!(Presented::from_headers(&h), Presented::ApiKey("lg_live_k"));
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(Presented::from_headers(&h), Presented::None);
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(Presented::from_headers(&h), Presented::None);
        let h = headers(&[("cookie", "a=b; __Host-lg-access=tok; c=d")]);
        assert_eq!(Presented::from_headers(&h), Presented::Token("tok"));
        let h = headers(&[
            ("authorization", "Bearer header.token.x"),
            ("cookie", "__Host-lg-access=cookie"),
        ]);
        assert_eq!(
            Presented::from_headers(&h),
            Presented::Token("header.token.x"),
            "the header wins over the cookie"
        );
    }
}
