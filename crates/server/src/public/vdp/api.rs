//! `POST /api/v1/vdp/reports` (anyone, no sign-in: the report form as JSON), and the operators'
//! API under `/operator/api/vdp` (a bearer token from `operators.api_token`; an organization's
//! admin is not an operator). The operators' routes stay out of the public API document.

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::PublicState;
use super::{Receipt, ReportBody, Triage, Upload};
use crate::audit::Meta;
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::ErrorBody;

pub fn routes() -> OpenApiRouter<PublicState> {
    // Attachments travel as base64: the WAF's route rule for this path holds the real limit.
    OpenApiRouter::new()
        .routes(routes!(submit_report))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
}

/// The operators' routes.
pub fn operator_routes() -> Router<PublicState> {
    Router::new()
        .route("/operator/api/vdp/reports", get(list_reports))
        .route(
            "/operator/api/vdp/reports/{tracking}",
            get(show_report).post(triage_report),
        )
        .route(
            "/operator/api/vdp/reports/{tracking}/attachments/{n}",
            get(download),
        )
}

#[utoipa::path(post, path = "/api/v1/vdp/reports", tag = "vdp", request_body = ReportBody,
    security(()),
    responses((status = 201, description = "Received: the tracking id, the secret status link (also mailed with the acknowledgement), and the deadlines", body = Receipt),
        (status = 400, description = "A field is missing or invalid; the message names it", body = ErrorBody),
        (status = 413, description = "An attachment or the body is too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "Too many reports from this address; `Retry-After` says when", body = ErrorBody)))]
async fn submit_report(
    State(state): State<PublicState>,
    meta: Meta,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReportBody>,
) -> Result<Response, AppError> {
    let report = body.parse()?;
    if body.attachments.len() > state.config.vdp.max_attachments {
        return Err(AppError::BadRequest(format!(
            "attachments: at most {} files",
            state.config.vdp.max_attachments
        )));
    }
    let mut uploads = Vec::new();
    for (i, a) in body.attachments.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(a.content_base64.trim())
            .map_err(|_| {
                AppError::BadRequest(format!("attachments[{i}].content_base64: not base64"))
            })?;
        uploads.push(Upload {
            filename: a.filename.clone(),
            content_type: a
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            bytes,
        });
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    let receipt = super::submit(&state, &meta, user_agent, report, uploads).await?;
    let mut res = (StatusCode::CREATED, axum::Json(receipt)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// A request from a platform operator: the bearer token of `operators.api_token`.
pub struct Operator;

impl FromRequestParts<PublicState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &PublicState,
    ) -> Result<Self, Self::Rejection> {
        let configured = state.config.operators.api_token.expose_secret();
        if configured.is_empty() {
            return Err(AppError::Denied {
                code: "operator_api_disabled",
                message: "the operators' API is off (operators.api_token is not set); use the leadgen vdp commands".into(),
            });
        }
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared as digests, in constant time, so neither length nor content leaks.
        let genuine: bool = subtle::ConstantTimeEq::ct_eq(
            Sha256::digest(given.as_bytes()).as_slice(),
            Sha256::digest(configured.as_bytes()).as_slice(),
        )
        .into();
        if !genuine {
            if let Some(ip) = parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
            {
                crate::perimeter::penalize_ip(
                    &state.perimeter,
                    ip,
                    crate::perimeter::reputation::Offence::AuthFailure,
                );
            }
            return Err(AppError::Unauthenticated {
                code: "invalid_operator_token",
                message: "this path needs the operators' bearer token".into(),
            });
        }
        Ok(Self)
    }
}

async fn list_reports(_: Operator, State(state): State<PublicState>) -> Result<Response, AppError> {
    Ok(axum::Json(super::list(&state.pool).await?).into_response())
}

async fn show_report(
    _: Operator,
    State(state): State<PublicState>,
    Path(tracking): Path<String>,
) -> Result<Response, AppError> {
    let report = super::get(&state.pool, &tracking)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(axum::Json(report).into_response())
}

async fn triage_report(
    _: Operator,
    State(state): State<PublicState>,
    Path(tracking): Path<String>,
    meta: Meta,
    ApiJson(body): ApiJson<Triage>,
) -> Result<Response, AppError> {
    let report = super::triage(
        &state.pool,
        &state.mailer,
        &state.config.site_url(),
        state.clock.now(),
        "operator:api",
        &meta,
        &tracking,
        body,
    )
    .await?;
    Ok(axum::Json(report).into_response())
}

async fn download(
    _: Operator,
    State(state): State<PublicState>,
    Path((tracking, n)): Path<(String, i32)>,
) -> Result<Response, AppError> {
    let file = super::attachment(&state.pool, &state.fields, &tracking, n)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut res = (StatusCode::OK, file.bytes).into_response();
    let h = res.headers_mut();
    // Never rendered by a browser: a download, whatever type the reporter claimed.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        file.filename
            .replace(|c: char| !c.is_ascii_graphic() && c != ' ', "_")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
