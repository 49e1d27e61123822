//! `/auth/v1`: Supabase Auth's endpoints, request and response shapes.

use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::service::{self, LogoutScope, Origin, Session, SignupOutcome, User};
use super::{AuthError, AuthUser};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/v1/signup", post(signup))
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/verify", get(verify_link).post(verify))
        .route("/auth/v1/user", get(user))
        .route("/auth/v1/logout", post(logout))
        .merge(super::mfa::routes())
        .route_layer(axum::middleware::from_fn(super::error::api_version))
}

/// JSON body whose rejection speaks the Supabase error shape.
pub struct AuthJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AuthJson<T> {
    type Rejection = AuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(e) => Err(AuthError::BadRequest(e.body_text())),
        }
    }
}

/// The client's address (from the connection, never from a header a client can set) and user agent.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Origin {
            ip: parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }
}

fn ts(t: Option<time::OffsetDateTime>) -> Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": u.email,
        "email_confirmed_at": ts(u.email_confirmed_at),
        "confirmed_at": ts(u.email_confirmed_at),
        "phone": "",
        "last_sign_in_at": ts(u.last_sign_in_at),
        "app_metadata": { "provider": "email", "providers": ["email"] },
        "user_metadata": u.user_metadata,
        "identities": [],
        "factors": u.factors.iter().map(|f| json!({
            "id": f.id,
            "factor_type": f.factor_type,
            "status": f.status,
            "friendly_name": f.friendly_name,
            "created_at": ts(Some(f.created_at)),
            "updated_at": ts(Some(f.updated_at)),
        })).collect::<Vec<_>>(),
        "created_at": ts(Some(u.created_at)),
        "updated_at": ts(Some(u.updated_at)),
        "is_anonymous": false,
    })
}

pub fn session_json(s: &Session) -> Value {
    json!({
        "access_token": s.access_token,
        "token_type": "bearer",
        "expires_in": s.expires_in,
        "expires_at": s.expires_at,
        "refresh_token": s.refresh_token,
        "user": user_json(&s.user),
    })
}

#[derive(Deserialize)]
struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    data: Option<Value>,
}

async fn signup(
    State(state): State<AppState>,
    origin: Origin,
    AuthJson(body): AuthJson<SignupBody>,
) -> Result<Json<Value>, AuthError> {
    let metadata = body.data.unwrap_or_else(|| json!({}));
    let outcome = service::signup(&state, &body.email, body.password, metadata, &origin).await?;
    Ok(Json(match outcome {
        SignupOutcome::AwaitingConfirmation(user) => user_json(&user),
        SignupOutcome::Session(s) => session_json(&s),
    }))
}

#[derive(Deserialize)]
struct GrantQuery {
    grant_type: String,
}

#[derive(Deserialize)]
struct PasswordBody {
    email: Option<String>,
    password: String,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn token(
    State(state): State<AppState>,
    Query(q): Query<GrantQuery>,
    origin: Origin,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AuthError> {
    let parse = |what: &str| -> Result<Value, AuthError> {
        serde_json::from_slice(&body).map_err(|e| AuthError::BadRequest(format!("{what}: {e}")))
    };
    let session = match q.grant_type.as_str() {
        "password" => {
            let b: PasswordBody = serde_json::from_value(parse("body")?)
                .map_err(|e| AuthError::BadRequest(e.to_string()))?;
            let email = b
                .email
                .ok_or_else(|| AuthError::BadRequest("email is required".into()))?;
            service::password_grant(&state, &email, b.password, &origin).await?
        }
        "refresh_token" => {
            let b: RefreshBody = serde_json::from_value(parse("body")?)
                .map_err(|e| AuthError::BadRequest(e.to_string()))?;
            service::refresh_grant(&state, &b.refresh_token).await?
        }
        other => {
            return Err(AuthError::BadRequest(format!(
                "unsupported grant_type {other:?}"
            )));
        }
    };
    Ok(Json(session_json(&session)))
}

#[derive(Deserialize)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    token_hash: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
    origin: Origin,
    AuthJson(body): AuthJson<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    if !matches!(body.kind.as_str(), "signup" | "email") {
        return Err(AuthError::BadRequest(format!(
            "unsupported verification type {:?}",
            body.kind
        )));
    }
    let s = service::confirm_email(
        &state,
        body.token.as_deref(),
        body.token_hash.as_deref(),
        &origin,
    )
    .await?;
    Ok(Json(session_json(&s)))
}

#[derive(Deserialize)]
struct VerifyLink {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The mailed link: confirms, then sends the browser to the site with a plain confirmation notice.
/// Tokens are not put in the URL; the browser signs in normally afterwards.
async fn verify_link(
    State(state): State<AppState>,
    origin: Origin,
    Query(q): Query<VerifyLink>,
) -> Response {
    if q.kind != "signup" {
        return AuthError::BadRequest("unsupported verification type".into()).into_response();
    }
    match service::confirm_email(&state, Some(&q.token), None, &origin).await {
        Ok(_) => Redirect::to("/?confirmed=1").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn user(State(state): State<AppState>, who: AuthUser) -> Result<Json<Value>, AuthError> {
    let u = service::current_user(&state.pool, who.user_id).await?;
    Ok(Json(user_json(&u)))
}

#[derive(Deserialize)]
struct LogoutQuery {
    scope: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    who: AuthUser,
    Query(q): Query<LogoutQuery>,
) -> Result<StatusCode, AuthError> {
    let scope = match q.scope.as_deref().unwrap_or("global") {
        "local" => LogoutScope::Local,
        "global" => LogoutScope::Global,
        "others" => LogoutScope::Others,
        other => return Err(AuthError::BadRequest(format!("unknown scope {other:?}"))),
    };
    service::logout(&state, who.user_id, who.session_id, scope).await?;
    Ok(StatusCode::NO_CONTENT)
}
