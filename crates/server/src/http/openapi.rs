//! The OpenAPI document of every JSON endpoint, served at `/api/openapi.json`.
//!
//! Each API module registers its handlers through `utoipa_axum`'s `OpenApiRouter` with
//! `routes!`, which takes the path and method from the handler's `#[utoipa::path]`: a handler
//! cannot be routed without being documented, and the document cannot name a route that is not
//! served. This module holds what the slices share: the error bodies, the refusals, the frame.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An error as every `/api/v1` endpoint returns it.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // The shape of `AppError`'s body, for the document only.
pub struct ErrorBody {
    error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The HTTP status again.
    status: u16,
    /// What was wrong, naming the field or parameter when there is one.
    message: String,
    /// A stable code for refusals a client may act on (`acl_denied`, `insufficient_aal`…).
    code: Option<String>,
    /// The request id, as in the `x-request-id` header and the server's log.
    request_id: String,
}

/// The refusals every authenticated endpoint may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // For the document only.
pub enum Refusals {
    /// A parameter or field is invalid; the message names it.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No credentials, or expired or revoked ones.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The role, the API key's scopes, the session's assurance level or an ACL does not allow it
    /// (`code` says which).
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// No such resource, or one the principal may not see (the two are not told apart).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Missing {
    /// Not found, or not visible to this principal.
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// An error of the `/auth/v1` endpoints, in the shape Supabase Auth clients read.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AuthErrorBody {
    /// The HTTP status again.
    code: u16,
    /// A stable code (`invalid_credentials`, `weak_password`, `over_request_rate_limit`…).
    error_code: String,
    /// What was wrong.
    msg: String,
}

/// The refusals of the `/auth/v1` endpoints.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AuthRefusals {
    /// Invalid input, or a grant that does not hold.
    #[response(status = 400)]
    BadRequest(AuthErrorBody),
    /// Missing or invalid credentials.
    #[response(status = 401)]
    Unauthenticated(AuthErrorBody),
    /// Too many attempts; `Retry-After` says when to try again.
    #[response(status = 429)]
    TooManyAttempts(AuthErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LeadGen API",
        description = "Leads, imports, search, scoring, segments, organizations and accounts. \
            Authenticate with `Authorization: Bearer <access token>` (from `/auth/v1/token`) or \
            with an API key (`Authorization: Bearer lg_…` or `X-API-Key`). Errors are JSON \
            (`ErrorBody`) and name the field at fault."
    ),
    components(schemas(ErrorBody, ErrorDetail, AuthErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = []))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Adds to every operation the answers the layers in front of its handler can give, so the
/// document lists every status a client can receive: the WAF's refusal (403), rate limits (429)
/// and overload (503) with `Retry-After`, a timeout (408), an over-long URI (414) or headers
/// (431), an unreadable parameter (400); with a body, its size (413), type (415) and shape (422);
/// with a path parameter, a miss (404); under `/api/v1`, missing credentials (401). Each in its
/// path's error shape. A handler's own description of a status is kept.
pub fn complete(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, header::HeaderBuilder};
    for (path, item) in &mut doc.paths.paths {
        let auth = path.starts_with("/auth/v1");
        let schema = if auth { "AuthErrorBody" } else { "ErrorBody" };
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let mut add: Vec<(&str, &str)> = vec![
                (
                    "400",
                    "A parameter could not be read; the message names it.",
                ),
                (
                    "403",
                    "Refused: by the web application firewall, or by a permission the message names.",
                ),
                ("408", "The request took longer than the server allows."),
                ("414", "The URI is longer than the server accepts."),
                (
                    "429",
                    "Too many requests; `Retry-After` says when to try again.",
                ),
                ("431", "The headers are larger than the server accepts."),
                (
                    "503",
                    "The server is at its limit of requests in flight; `Retry-After` says when to try again.",
                ),
            ];
            if op.request_body.is_some() {
                add.push(("413", "The body is larger than the route accepts."));
                add.push(("415", "The body is not in the documented media type."));
                add.push(("422", "The body is well-formed but not of the documented shape; the message names the field."));
            }
            if path.contains('{') {
                add.push((
                    "404",
                    "No such resource, or one this principal may not see.",
                ));
            }
            if !auth {
                add.push(("401", "No credentials, or expired or revoked ones."));
            }
            for (status, description) in add {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        let mut r = ResponseBuilder::new().description(description).content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(schema)))
                                .build(),
                        );
                        if matches!(status, "429" | "503") {
                            r = r.header(
                                "Retry-After",
                                HeaderBuilder::new()
                                    .schema(utoipa::openapi::schema::Object::with_type(
                                        utoipa::openapi::schema::Type::Integer,
                                    ))
                                    .description(Some("Seconds to wait before trying again."))
                                    .build(),
                            );
                        }
                        RefOr::T(r.build())
                    });
            }
        }
    }
}

/// The document's frame (title, description, shared schemas, security schemes); the assembler
/// merges every slice's documented routes into it.
#[must_use]
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/openapi.json`: the document, rendered once.
pub fn document_route<S: Clone + Send + Sync + 'static>(
    doc: &utoipa::openapi::OpenApi,
) -> Router<S> {
    let json: Arc<str> = doc.to_json().unwrap_or_default().into();
    Router::new().route(
        "/api/openapi.json",
        get(move || {
            let json = json.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    json.to_string(),
                )
                    .into_response()
            }
        }),
    )
}
