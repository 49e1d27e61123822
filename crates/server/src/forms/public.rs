//! The routes anyone may call: `POST /f/{key}` (a submission), `GET /f/{key}/stamp` (a fresh
//! fill-time stamp for the form's script, counting a view) and `GET /f/{key}/embed.js` (the
//! script).
//!
//! A submission is posted from the organization's own site, so it is cross-origin by design and
//! the edge's same-origin check leaves `/f/` to this module: the `Origin` (else `Referer`) must
//! be one of the form's allowed origins, or the post is refused with 403. No cookie is read
//! here, so a forged cross-site post can do nothing an anonymous visitor of the site could not.
//!
//! Order of the checks, each answering the same way for every visitor: body size (413), body
//! parse (400/415), the form's key (404; the lookup and the stamp's HMAC run for every key, known
//! or not, so the time to a 404 tells nothing), the origin (403), paused (409), the traps, the
//! form's hourly limit (429), the values (400 naming each field). A post that trips a trap gets
//! exactly the answer an accepted one gets and stores nothing but the form's spam counter.
//!
//! **Without JavaScript** the plain snippet carries no stamp (it is static HTML on the
//! organization's page). A post with no stamp at all is accepted when the form allows it
//! (`accept_without_stamp`, the default) and is spam otherwise; a stamp that is present but
//! forged, stale or younger than the minimum fill time is always spam. The honeypot, the origin
//! check and the rate limits apply to every post.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::FormsState;
use super::model::{FieldSpec, origin};
use super::submit::{self, FieldError, PublicForm, Visitor};
use crate::audit::Meta;
use crate::http::error::ErrorBody;
use crate::web::assets::{self, Assets};
use crate::web::trap::{self, HONEYPOT_FIELD, STAMP_FIELD};

/// The largest submission taken: a form has at most 30 fields of modest size.
pub const MAX_BODY: usize = 64 * 1024;

/// The first-party script (`/f/{key}/embed.js`): fetches a stamp, validates inline, posts with
/// `fetch` and shows the thank-you in the page. Generic; it reads the form it enhances from the
/// page.
const SCRIPT: &str = include_str!("embed.js");

pub fn routes() -> Router<FormsState> {
    Router::new()
        .route("/f/{key}", post(submission).options(preflight))
        .route("/f/{key}/stamp", get(stamp).options(preflight))
        .route("/f/{key}/embed.js", get(script))
}

/// The stamp's purpose: one form's stamp never passes another's.
fn purpose(key: &str) -> String {
    format!("capture-form:{key}")
}

/// A key as the lookup takes it: anything that cannot be a key is looked up as one that
/// matches nothing, so the lookup runs for every request.
fn lookup_key(key: &str) -> &str {
    if key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        key
    } else {
        "-"
    }
}

/// The form `key` names, through the definer function (no tenant context exists yet).
pub async fn lookup(state: &FormsState, key: &str) -> Result<Option<PublicForm>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", name AS "name!", fields AS "fields!",
                  consent_text, consent_version, thank_you AS "thank_you!", redirect_url,
                  allowed_origins AS "allowed_origins!", dedupe AS "dedupe!",
                  accept_without_stamp AS "accept_without_stamp!", status AS "status!",
                  owners AS "owners!", created_by AS "created_by!"
           FROM app.capture_form_public($1)"#,
        lookup_key(key)
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.map(|r| PublicForm {
        id: r.id,
        org_id: r.org_id,
        name: r.name,
        fields: serde_json::from_value::<Vec<FieldSpec>>(r.fields).unwrap_or_default(),
        consent_text: r.consent_text,
        consent_version: r.consent_version,
        thank_you: r.thank_you,
        redirect_url: r.redirect_url,
        allowed_origins: r.allowed_origins,
        dedupe: r.dedupe,
        accept_without_stamp: r.accept_without_stamp,
        status: r.status,
        owners: r.owners,
        created_by: r.created_by,
    }))
}

/// The origin a browser says the request came from: `Origin`, else the `Referer`'s origin.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    let read = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    match read(header::ORIGIN) {
        Some(o) if o != "null" => origin(o),
        Some(_) => None,
        None => read(header::REFERER).and_then(origin),
    }
}

/// The request's origin when the form allows it.
fn allowed(form: &PublicForm, headers: &HeaderMap) -> Option<String> {
    request_origin(headers).filter(|o| form.allowed_origins.iter().any(|a| a == o))
}

/// Lets the allowed origin's script read the answer.
fn with_cors(mut res: Response, origin: Option<&str>) -> Response {
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    res
}

/// A refusal: LeadGen's JSON error for the script, else the styled error page (rendered by the
/// error-page layer from the message left in the response).
fn refuse(status: StatusCode, code: &'static str, message: &str, json: bool) -> Response {
    if json {
        return (
            status,
            axum::Json(
                json!({ "error": { "status": status.as_u16(), "code": code, "message": message } }),
            ),
        )
            .into_response();
    }
    let mut res = status.into_response();
    res.extensions_mut()
        .insert(ErrorBody(message.to_string(), Some(code)));
    res
}

#[derive(askama::Template)]
#[template(path = "form_result.html")]
struct ResultPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    form: &'a str,
    message: &'a str,
    errors: &'a [FieldError],
}

fn page(
    state: &FormsState,
    form: &PublicForm,
    errors: &[FieldError],
    status: StatusCode,
) -> Response {
    let page = ResultPage {
        assets: assets::get(),
        version: state.version,
        form: &form.name,
        message: &form.thank_you,
        errors,
    };
    match askama::Template::render(&page) {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(e) => crate::http::AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

/// The answer to an accepted post, and to one that tripped a trap.
fn success(state: &FormsState, form: &PublicForm, json: bool) -> Response {
    if json {
        return axum::Json(json!({
            "ok": true, "message": form.thank_you, "redirect": form.redirect_url
        }))
        .into_response();
    }
    match &form.redirect_url {
        Some(url) => Redirect::to(url).into_response(),
        None => page(state, form, &[], StatusCode::OK),
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    let has = |h, what: &str| {
        headers
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains(what))
    };
    has(header::CONTENT_TYPE, "application/json") || has(header::ACCEPT, "application/json")
}

/// The posted fields: form-urlencoded (a plain form, or the script) or a JSON object of values.
/// The first value of a repeated name counts.
fn parse(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, (StatusCode, String)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut out = HashMap::new();
    if ct.starts_with("application/x-www-form-urlencoded") {
        for (k, v) in url::form_urlencoded::parse(body) {
            out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    } else if ct.starts_with("application/json") {
        let v: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("body: not a JSON object of field values ({e})"),
            )
        })?;
        for (k, v) in v {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            out.insert(k, s);
        }
    } else {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a form submission is application/x-www-form-urlencoded or application/json".into(),
        ));
    }
    if let Some(k) = out
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k.clone())
    {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{k}: contains a NUL character, which LeadGen cannot store"),
        ));
    }
    Ok(out)
}

async fn submission(
    State(state): State<FormsState>,
    Path(key): Path<String>,
    meta: Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match submit_inner(&state, &key, &meta, &headers, &body).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(
    state: &FormsState,
    key: &str,
    meta: &Meta,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, crate::http::AppError> {
    let json = wants_json(headers);
    if body.len() > MAX_BODY {
        return Ok(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "a form submission is at most 64 KiB",
            json,
        ));
    }
    let values = match parse(headers, body) {
        Ok(v) => v,
        Err((status, message)) => return Ok(refuse(status, "bad_request", &message, json)),
    };
    let form = lookup(state, key).await?;
    let now = state.clock.now();
    // Judged before the key is known to exist, so every key costs the same.
    let verdict = trap::check(
        &state.app_key,
        &purpose(key),
        values.get(STAMP_FIELD).map(String::as_str),
        values.get(HONEYPOT_FIELD).map(String::as_str),
        now,
        trap::Rules::default(),
    );
    let Some(form) = form else {
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such form",
            json,
        ));
    };
    let Some(from) = allowed(&form, headers) else {
        metrics::counter!("capture_form_refusals_total", "reason" => "origin").increment(1);
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this site may not post to the form (its origin is not on the form's list)",
            json,
        ));
    };
    let cors = |res| with_cors(res, Some(&from));
    if form.status != "active" {
        return Ok(cors(refuse(
            StatusCode::CONFLICT,
            "form_paused",
            "this form is not accepting submissions",
            json,
        )));
    }
    let no_stamp = values.get(STAMP_FIELD).is_none_or(|s| s.trim().is_empty());
    let verdict = match verdict {
        trap::Verdict::BadStamp if no_stamp && form.accept_without_stamp => trap::Verdict::Passed,
        v => v,
    };
    if let Some(reason) = verdict.spam_reason() {
        submit::count(&state.pool, form.id, "spam").await?;
        metrics::counter!("capture_form_spam_total", "reason" => reason).increment(1);
        return Ok(cors(success(state, &form, json)));
    }
    // The hourly window is a limit, not a record: like the counters, its row is updated in a
    // transaction that does not wait for the disk, so posts to one form do not queue on it.
    let mut tx = state.pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    let wait = sqlx::query_scalar!(
        r#"SELECT app.capture_form_admit($1, $2) AS "wait!""#,
        form.id,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if wait > 0 {
        let mut res = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "this form has taken all the submissions it accepts this hour; try again later",
            json,
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(cors(res));
    }
    let accepted = match submit::validate(&form, &values) {
        Ok(a) => a,
        Err(errors) => {
            let res = if json {
                let summary = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({
                        "error": { "status": 400, "code": "invalid_fields", "message": summary },
                        "fields": errors,
                    })),
                )
                    .into_response()
            } else {
                page(state, &form, &errors, StatusCode::BAD_REQUEST)
            };
            return Ok(cors(res));
        }
    };
    let visitor = Visitor {
        ip: meta.ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    submit::store(state, &form, accepted, &visitor, now).await?;
    metrics::counter!("capture_form_submissions_total").increment(1);
    Ok(cors(success(state, &form, json)))
}

/// A fresh stamp for the form's script, counting a view. Only for the form's allowed origins.
async fn stamp(
    State(state): State<FormsState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, crate::http::AppError> {
    let form = lookup(&state, &key).await?;
    let now = state.clock.now();
    let stamp = trap::stamp(&state.app_key, &purpose(&key), now);
    let Some(form) = form else {
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such form",
            true,
        ));
    };
    let Some(from) = allowed(&form, &headers) else {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this site may not use the form (its origin is not on the form's list)",
            true,
        ));
    };
    submit::count(&state.pool, form.id, "view").await?;
    let min_fill = trap::Rules::default().min_fill.whole_seconds();
    let res = axum::Json(json!({ "stamp": stamp, "min_fill_secs": min_fill })).into_response();
    Ok(with_cors(res, Some(&from)))
}

/// The script, readable (CORS) only by pages of the form's allowed origins: the snippet loads it
/// with `crossorigin`, so another site cannot run it against the form.
async fn script(
    State(state): State<FormsState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, crate::http::AppError> {
    let Some(form) = lookup(&state, &key).await? else {
        return Err(crate::http::AppError::NotFound);
    };
    let from = allowed(&form, &headers);
    let res = (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response();
    Ok(with_cors(res, from.as_deref()))
}

/// CORS preflight of the script's requests (a JSON post needs one; the script itself posts
/// form-urlencoded, which does not).
async fn preflight(
    State(state): State<FormsState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, crate::http::AppError> {
    let form = lookup(&state, &key).await?;
    let Some(from) = form.as_ref().and_then(|f| allowed(f, &headers)) else {
        return Ok(StatusCode::FORBIDDEN.into_response());
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, accept"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    Ok(with_cors(res, Some(&from)))
}
