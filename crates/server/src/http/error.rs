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
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client may read: the message, or "internal error" for a 500 (whose cause is
    /// logged, never shown).
    #[must_use]
    pub fn public_message(&self) -> String {
        match self {
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
        let code = match &self {
            Self::Denied { code, .. } | Self::Unauthenticated { code, .. } => Some(*code),
            _ => None,
        };
        res.extensions_mut()
            .insert(ErrorBody(self.public_message(), code));
        res
    }
}

/// The client-facing message of an error response, rendered by the error-page middleware.
#[derive(Debug, Clone)]
pub struct ErrorBody(pub String, pub Option<&'static str>);

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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => {
                let status = e.status();
                let mut res = status.into_response();
                res.extensions_mut().insert(ErrorBody(e.body_text(), None));
                Err(res)
            }
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
