//! One error type for handlers, mapped to a response in one place.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::RequestId;

/// What can go wrong in a handler. Each variant has one status; a 500's cause is logged with the
/// request id and never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(&'static str),
    /// Refused for a reason the client can act on, named by a stable code.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    /// Was there and is no more (an expired link).
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Missing or unusable credentials, named by a stable code.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if unstorable_text(e) => StatusCode::BAD_REQUEST,
            Self::Database(e) if database_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(e)
                if e.chain()
                    .any(|c| c.downcast_ref().is_some_and(database_unavailable)) =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client may read: the message, or "internal error" for a 500 (whose cause is
    /// logged, never shown).
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(e) if unstorable_text(e) => {
                "the request holds text the database cannot store (a NUL character)".into()
            }
            Self::Database(_) | Self::Internal(_)
                if self.status() == StatusCode::SERVICE_UNAVAILABLE =>
            {
                "the database is unavailable; try again shortly".into()
            }
            Self::Database(_) | Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        // The page renderer fills in the request id and picks HTML or JSON (see `web::errors`).
        let mut res = status.into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Unavailable for now (the database, a dependency): when to try again.
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        let code = match &self {
            Self::Denied { code, .. } | Self::Unauthenticated { code, .. } => Some(*code),
            _ => None,
        };
        res.extensions_mut()
            .insert(ErrorBody(self.public_message(), code));
        res
    }
}

/// The API version Supabase clients announce in `X-Supabase-Api-Version`. From this version on,
/// error bodies are `{"code": "<error code>", "message": "..."}`; older clients get
/// `{"code": <status>, "error_code": "...", "msg": "..."}`.
pub const API_VERSION_2024: &str = "2024-01-01";

/// Whether the client asked for the 2024 error shape.
pub fn modern_api_version(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-supabase-api-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() >= API_VERSION_2024 && v.trim().len() == API_VERSION_2024.len())
}

/// An error under `/auth/v1/` that no handler shaped (a route or method miss, a body limit, a
/// rate limit, a timeout), in GoTrue's shape (with the request id beside it): `{"code": 404, "error_code": "not_found", "msg": …}`,
/// or `{"code": "not_found", "message": …}` for clients of the 2024 API version.
pub fn gotrue_error(
    status: StatusCode,
    code: Option<&str>,
    message: &str,
    modern: bool,
    id: &RequestId,
) -> Response {
    let error_code = code.unwrap_or(match status.as_u16() {
        400 | 422 => "validation_failed",
        401 => "no_authorization",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "request_too_large",
        415 => "bad_content_type",
        429 => "over_request_rate_limit",
        _ => "unexpected_failure",
    });
    let body = if modern {
        serde_json::json!({ "code": error_code, "message": message, "request_id": id.0 })
    } else {
        serde_json::json!({ "code": status.as_u16(), "error_code": error_code, "msg": message,
                            "request_id": id.0 })
    };
    let mut res = (status, axum::Json(body)).into_response();
    if modern {
        res.headers_mut().insert(
            "x-supabase-api-version",
            http::HeaderValue::from_static(API_VERSION_2024),
        );
    }
    res
}

/// PostgreSQL refused a value's characters (`invalid byte sequence`, `untranslatable character`):
/// the client sent text no column can hold. The extractors refuse NUL with the parameter's name
/// first; this keeps any path they miss a 400 rather than a 500.
/// The database is down or unreachable (not a fault of the request): the pool found no
/// connection, a connection broke, or the server is shutting down, starting or recovering from a
/// crash (SQLSTATE class 08 and 57P01–57P03).
pub fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

fn unstorable_text(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|c| c == "22021" || c == "22P05")
}

/// The message for a value holding NUL, which PostgreSQL's text cannot store.
fn nul_refusal(name: &str) -> Response {
    let mut res = StatusCode::BAD_REQUEST.into_response();
    res.extensions_mut().insert(ErrorBody(
        format!("{name}: contains a NUL character, which LeadGen cannot store"),
        None,
    ));
    res
}

/// The JSON path (`title`, `custom.notes`, `tags[2]`) of the first string or key holding NUL.
pub(crate) fn nul_path(v: &serde_json::Value, path: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_path(x, &format!("{path}[{i}]"))),
        serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(x, &here)
            }
        }),
        _ => None,
    }
}

pub(crate) fn is_json_media(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// The client-facing message of an error response, rendered by the error-page middleware.
#[derive(Debug, Clone)]
pub struct ErrorBody(pub String, pub Option<&'static str>);

/// The error code an error response told its client, left for the access log line so operators
/// can triage by code (`authentication_required`, `waf_blocked`, `api_key_expired`, …).
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// Whether the client prefers JSON to HTML.
#[must_use]
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

/// JSON error body: `{"error": {"status": 403, "code": "insufficient_aal", "message": "...",
/// "request_id": "..."}}` (`code` only where the client can act on it).
#[must_use]
pub fn json_error(
    status: StatusCode,
    code: Option<&str>,
    message: &str,
    id: &RequestId,
) -> Response {
    let mut body = serde_json::json!({
        "error": { "status": status.as_u16(), "message": message, "request_id": id.0 }
    });
    if let Some(c) = code {
        body["error"]["code"] = c.into();
    }
    (status, axum::Json(body)).into_response()
}

/// A JSON request body whose rejection (malformed JSON, wrong type, unknown field, wrong content
/// type) is a 4xx naming the problem, in LeadGen's error shape.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let reject = |status: StatusCode, text: String| {
            let mut res = status.into_response();
            res.extensions_mut().insert(ErrorBody(text, None));
            res
        };
        if !is_json_media(req.headers()) {
            return Err(reject(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| reject(e.status(), e.body_text()))?;
        // NUL is valid JSON (`\u0000`) and invalid in PostgreSQL text: name the field.
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(path) = nul_path(&v, "")
        {
            return Err(nul_refusal(if path.is_empty() { "body" } else { &path }));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(reject(e.status(), e.body_text())),
        }
    }
}

/// A query string whose rejection (unknown parameter, wrong type) is a 400 naming the parameter,
/// in LeadGen's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        if let Some(q) = parts.uri.query()
            && q.contains("%00")
            && let Some((name, _)) = url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(nul_refusal(&name.replace('\0', "\\0")));
        }
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => {
                let mut res = StatusCode::BAD_REQUEST.into_response();
                res.extensions_mut().insert(ErrorBody(e.body_text(), None));
                Err(res)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_a_503_with_retry_after_and_no_detail() {
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for e in [
            AppError::Database(sqlx::Error::PoolTimedOut),
            AppError::Database(io()),
            AppError::Internal(anyhow::Error::from(io()).context("loading the lead")),
        ] {
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE, "{e:?}");
            assert!(e.public_message().contains("database is unavailable"));
            let res = e.into_response();
            assert_eq!(res.headers()[http::header::RETRY_AFTER], "5");
        }
        // Anything else from the database stays an internal error, with nothing said.
        let e = AppError::Database(sqlx::Error::RowNotFound);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.public_message(), "internal error");
    }
}
