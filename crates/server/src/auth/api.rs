//! `/auth/v1`: Supabase Auth's endpoints, request and response shapes.

use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::passwordless::{self, Pkce};
use super::service::{self, LogoutScope, OneTimePurpose, Origin, Session, SignupOutcome, User};
use super::{AuthError, AuthUser};
use crate::auth::AuthState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(token))
        .routes(routes!(verify_link, verify))
        .routes(routes!(user, update_user, delete_user))
        .routes(routes!(recover))
        .routes(routes!(otp))
        .routes(routes!(resend))
        .routes(routes!(reauthenticate))
        .routes(routes!(settings))
        .routes(routes!(health))
        .routes(routes!(logout))
        .merge(super::mfa::routes())
        .route_layer(axum::middleware::from_fn(super::error::api_version))
}

/// JSON body whose rejection speaks the Supabase error shape.
pub struct AuthJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AuthJson<T> {
    type Rejection = AuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !crate::http::error::is_json_media(req.headers()) {
            return Err(AuthError::BadRequest(
                "send the body as JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| AuthError::BadRequest(e.body_text()))?;
        // NUL is valid JSON and invalid in PostgreSQL text: name the field.
        if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(path) = crate::http::error::nul_path(&v, "")
        {
            return Err(AuthError::BadRequest(format!(
                "{path}: contains a NUL character, which LeadGen cannot store"
            )));
        }
        match Json::<T>::from_bytes(&bytes) {
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
    // Supabase's identity shape: the password account is the `email` identity.
    let mut identities = Vec::new();
    if u.has_password {
        identities.push(json!({
            "identity_id": u.id,
            "id": u.id,
            "user_id": u.id,
            "provider": "email",
            "identity_data": { "sub": u.id, "email": u.email, "email_verified": u.email_confirmed_at.is_some() },
            "email": u.email,
            "created_at": ts(Some(u.created_at)),
            "updated_at": ts(Some(u.updated_at)),
            "last_sign_in_at": ts(u.last_sign_in_at),
        }));
    }
    for i in &u.identities {
        // Supabase calls LinkedIn's OpenID Connect provider `linkedin_oidc`.
        let provider = if i.provider == "linkedin" {
            "linkedin_oidc"
        } else {
            i.provider.as_str()
        };
        identities.push(json!({
            "identity_id": format!("{}:{}", i.provider, i.subject),
            "id": i.subject,
            "user_id": u.id,
            "provider": provider,
            "identity_data": { "sub": i.subject, "email": i.email },
            "email": i.email,
            "created_at": ts(Some(i.created_at)),
            "updated_at": ts(Some(i.last_sign_in_at)),
            "last_sign_in_at": ts(Some(i.last_sign_in_at)),
        }));
    }
    let providers: Vec<Value> = identities.iter().map(|i| i["provider"].clone()).collect();
    let provider = providers.first().cloned().unwrap_or_else(|| json!("email"));
    json!({
        "id": u.id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": u.email,
        "email_confirmed_at": ts(u.email_confirmed_at),
        "confirmed_at": ts(u.email_confirmed_at),
        "phone": "",
        "last_sign_in_at": ts(u.last_sign_in_at),
        "app_metadata": { "provider": provider, "providers": providers },
        "user_metadata": u.user_metadata,
        "identities": identities,
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

#[derive(Deserialize, utoipa::ToSchema)]
struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    data: Option<Value>,
}

#[utoipa::path(post, path = "/auth/v1/signup", tag = "auth", request_body = SignupBody, security(()),
    responses((status = 200, description = "The user (Supabase Auth shape); a confirmation link is mailed", body = Object), crate::http::openapi::AuthRefusals))]
async fn signup(
    State(state): State<AuthState>,
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[derive(Deserialize)]
struct PkceBody {
    auth_code: String,
    code_verifier: String,
}

#[utoipa::path(post, path = "/auth/v1/token", tag = "auth", params(GrantQuery), security(()),
    request_body(content = Object, description = "`grant_type=password`: `email` and `password`; `grant_type=refresh_token`: `refresh_token` (single use, rotated); `grant_type=pkce`: `auth_code` and `code_verifier` (the code works once, for five minutes)"),
    responses((status = 200, description = "A session: `access_token` (JWT), `refresh_token`, `expires_in`, `user`", body = Object), crate::http::openapi::AuthRefusals))]
async fn token(
    State(state): State<AuthState>,
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
        "pkce" => {
            let b: PkceBody = serde_json::from_value(parse("body")?)
                .map_err(|e| AuthError::BadRequest(e.to_string()))?;
            return Ok(Json(
                passwordless::exchange(&state, &b.auth_code, &b.code_verifier).await?,
            ));
        }
        other => {
            return Err(AuthError::BadRequest(format!(
                "unsupported grant_type {other:?}"
            )));
        }
    };
    Ok(Json(session_json(&session)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = EmailVerify)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    token_hash: Option<String>,
    /// With `token`: the address a six-digit code was mailed to.
    email: Option<String>,
}

/// The purposes a mailed token of this `type` may have, in the order they are tried.
fn purposes(kind: &str) -> Result<&'static [OneTimePurpose], AuthError> {
    use OneTimePurpose as P;
    match kind {
        "signup" => Ok(&[P::Confirmation]),
        "email" => Ok(&[P::MagicLink, P::Confirmation]),
        "magiclink" => Ok(&[P::MagicLink]),
        "recovery" => Ok(&[P::Recovery]),
        other => Err(AuthError::BadRequest(format!(
            "unsupported verification type {other:?}"
        ))),
    }
}

/// A mailed link's token, its hex hash, or (with `email`) the six-digit code from the same mail.
#[utoipa::path(post, path = "/auth/v1/verify", tag = "auth", request_body = VerifyBody, security(()),
    responses((status = 200, description = "A session, after a confirmation, sign-in or recovery token or a mailed code", body = Object), crate::http::openapi::AuthRefusals))]
async fn verify(
    State(state): State<AuthState>,
    origin: Origin,
    AuthJson(body): AuthJson<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    let purposes = purposes(&body.kind)?;
    if let (Some(email), Some(code)) = (body.email.as_deref(), body.token.as_deref())
        && matches!(body.kind.as_str(), "email" | "magiclink")
    {
        if !passwordless::is_code(code) {
            return Err(AuthError::OtpExpired);
        }
        let (hash, keys) = passwordless::code_lookup(&state, email, code, &origin).await?;
        return match service::redeem_one_time(&state, &[OneTimePurpose::EmailCode], hash, &origin)
            .await
        {
            Ok(r) => {
                super::throttle::clear(&state.pool, &keys).await?;
                Ok(Json(session_json(&r.session)))
            }
            Err(AuthError::OtpExpired) => {
                super::throttle::record_failure(&state.pool, &keys, state.clock.now()).await?;
                Err(AuthError::OtpExpired)
            }
            Err(e) => Err(e),
        };
    }
    let hash = service::mailed_token_hash(body.token.as_deref(), body.token_hash.as_deref())?;
    let r = service::redeem_one_time(&state, purposes, hash, &origin).await?;
    Ok(Json(session_json(&r.session)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct VerifyLink {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The mailed link, opened in a browser. A link from a flow a PKCE client started goes back to
/// that client's `redirect_to` with an authorization code. Otherwise the browser is signed in with
/// `__Host-` cookies and goes to the account page (after a reset link, to its new-password form).
/// The session never appears in a URL.
#[utoipa::path(get, path = "/auth/v1/verify", tag = "auth", params(VerifyLink), security(()),
    responses((status = 303, description = "The mailed link: verified, then redirected to the site or, for a PKCE client, to its redirect URL with `?code=`"), crate::http::openapi::AuthRefusals))]
async fn verify_link(
    State(state): State<AuthState>,
    origin: Origin,
    Query(q): Query<VerifyLink>,
) -> Response {
    let result = async {
        let purposes = purposes(&q.kind)?;
        service::redeem_one_time(
            &state,
            purposes,
            super::tokens::token_hash(&q.token),
            &origin,
        )
        .await
    }
    .await;
    let r = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Some((challenge, redirect_to)) = &r.pkce {
        let code = match passwordless::issue_auth_code(
            &state,
            r.session.user.id,
            r.session.claims.session_id,
            challenge,
            &session_json(&r.session),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
        let target = passwordless::redirect_target(&state, redirect_to.as_deref());
        return Redirect::to(&passwordless::with_query(&target, &[("code", &code)]))
            .into_response();
    }
    let to = if r.purpose == OneTimePurpose::Recovery {
        "/account?reset=1"
    } else {
        "/account"
    };
    crate::web::cookies::with_cookies(
        Redirect::to(to).into_response(),
        super::pages::session_cookies(&state, &r.session),
    )
}

/// `redirect_to` as Supabase clients send it, in the query string.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RedirectQuery {
    redirect_to: Option<String>,
}

impl RedirectQuery {
    /// Checked when the flow starts; where it may lead is decided when the link is used.
    fn checked(self) -> Result<Option<String>, AuthError> {
        match self.redirect_to {
            Some(r) if r.len() > 2048 => Err(AuthError::BadRequest(
                "redirect_to: longer than 2048 characters".into(),
            )),
            r => Ok(r.filter(|r| !r.is_empty())),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RecoverBody {
    email: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Always `{}`: whether the address has an account is not disclosed.
#[utoipa::path(post, path = "/auth/v1/recover", tag = "auth", request_body = RecoverBody, params(RedirectQuery), security(()),
    responses((status = 200, description = "Always the same answer whether or not the address has an account", body = Object), crate::http::openapi::AuthRefusals))]
async fn recover(
    State(state): State<AuthState>,
    Query(q): Query<RedirectQuery>,
    AuthJson(body): AuthJson<RecoverBody>,
) -> Result<Json<Value>, AuthError> {
    let pkce = Pkce::parse(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    service::request_recovery(&state, &body.email, pkce, q.checked()?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct OtpBody {
    email: Option<String>,
    phone: Option<String>,
    /// Accepted for the client's sake: accounts are created by sign-up, with a password.
    #[allow(dead_code)]
    create_user: Option<bool>,
    #[allow(dead_code)]
    data: Option<Value>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// Mails a sign-in link and a six-digit code to an existing account. Always `{}`: whether the
/// address has an account is not disclosed, and one address gets at most one mail a minute.
#[utoipa::path(post, path = "/auth/v1/otp", tag = "auth", request_body = OtpBody, params(RedirectQuery), security(()),
    responses((status = 200, description = "Always the same answer whether or not the address has an account", body = Object), crate::http::openapi::AuthRefusals))]
async fn otp(
    State(state): State<AuthState>,
    Query(q): Query<RedirectQuery>,
    AuthJson(body): AuthJson<OtpBody>,
) -> Result<Json<Value>, AuthError> {
    if body.phone.is_some() {
        return Err(AuthError::PhoneUnsupported);
    }
    let email = body
        .email
        .ok_or_else(|| AuthError::BadRequest("email is required".into()))?;
    let pkce = Pkce::parse(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    passwordless::request_otp(&state, &email, pkce, q.checked()?).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct ResendBody {
    #[serde(rename = "type")]
    kind: String,
    email: Option<String>,
    phone: Option<String>,
}

/// A new confirmation mail for an account not confirmed yet (`type: signup`). Always `{}`.
#[utoipa::path(post, path = "/auth/v1/resend", tag = "auth", request_body = ResendBody, security(()),
    responses((status = 200, description = "Always the same answer whether or not the address has an account waiting for confirmation", body = Object), crate::http::openapi::AuthRefusals))]
async fn resend(
    State(state): State<AuthState>,
    AuthJson(body): AuthJson<ResendBody>,
) -> Result<Json<Value>, AuthError> {
    if body.phone.is_some() || matches!(body.kind.as_str(), "sms" | "phone_change") {
        return Err(AuthError::PhoneUnsupported);
    }
    if body.kind != "signup" {
        return Err(AuthError::BadRequest(format!(
            "type: {:?} cannot be resent; only signup confirmations can",
            body.kind
        )));
    }
    let email = body
        .email
        .ok_or_else(|| AuthError::BadRequest("email is required".into()))?;
    passwordless::resend_confirmation(&state, &email).await?;
    Ok(Json(json!({})))
}

/// Mails the signed-in user a six-digit nonce that `PUT /user` accepts instead of the current
/// password. One a minute.
#[utoipa::path(get, path = "/auth/v1/reauthenticate", tag = "auth",
    responses((status = 200, description = "The nonce was mailed", body = Object), crate::http::openapi::AuthRefusals))]
async fn reauthenticate(
    State(state): State<AuthState>,
    who: AuthUser,
) -> Result<Json<Value>, AuthError> {
    passwordless::reauthenticate(&state, &who).await?;
    Ok(Json(json!({})))
}

/// What this server offers, in the shape Supabase clients read.
#[utoipa::path(get, path = "/auth/v1/settings", tag = "auth", security(()),
    responses((status = 200, description = "Enabled sign-in methods", body = Object), crate::http::openapi::AuthRefusals))]
async fn settings(State(state): State<AuthState>) -> Json<Value> {
    let google = state.sso.get("google").is_some();
    let linkedin = state.sso.get("linkedin").is_some();
    Json(json!({
        "external": {
            "email": true,
            "phone": false,
            "anonymous_users": false,
            "google": google,
            "linkedin_oidc": linkedin,
        },
        "disable_signup": false,
        "mailer_autoconfirm": !state.config.auth.require_email_confirmation,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
    }))
}

#[utoipa::path(get, path = "/auth/v1/health", tag = "auth", security(()),
    responses((status = 200, description = "The authentication API answers", body = Object), crate::http::openapi::AuthRefusals))]
async fn health(State(state): State<AuthState>) -> Json<Value> {
    Json(json!({
        "version": state.version,
        "name": "LeadGen",
        "description": "LeadGen's authentication API, compatible with Supabase Auth clients",
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    password: Option<String>,
    current_password: Option<String>,
    data: Option<Value>,
    email: Option<String>,
    nonce: Option<String>,
    /// Sent by Supabase clients with every update; used only by email changes.
    #[allow(dead_code)]
    code_challenge: Option<String>,
    #[allow(dead_code)]
    code_challenge_method: Option<String>,
}

#[utoipa::path(put, path = "/auth/v1/user", tag = "auth", request_body = UpdateUserBody,
    responses((status = 200, description = "The user after the change (a new password ends the other sessions)", body = Object), crate::http::openapi::AuthRefusals))]
async fn update_user(
    State(state): State<AuthState>,
    who: AuthUser,
    origin: Origin,
    AuthJson(body): AuthJson<UpdateUserBody>,
) -> Result<Json<Value>, AuthError> {
    if body.email.is_some() {
        return Err(AuthError::BadRequest(
            "changing the email address is not available yet".into(),
        ));
    }
    if body.nonce.is_some() && body.password.is_none() {
        return Err(AuthError::BadRequest(
            "nonce: only a password change needs a reauthentication nonce".into(),
        ));
    }
    if let Some(data) = &body.data {
        service::update_metadata(&state, who.user_id, data).await?;
    }
    let user = match body.password {
        Some(p) => {
            let reauthenticated = match body.nonce.as_deref() {
                Some(n) => {
                    passwordless::check_nonce(&state, &who, n, &origin).await?;
                    true
                }
                None => false,
            };
            service::change_password(
                &state,
                &who,
                p,
                body.current_password,
                reauthenticated,
                &origin,
            )
            .await?
        }
        None => service::current_user(&state.pool, who.user_id).await?,
    };
    Ok(Json(user_json(&user)))
}

#[utoipa::path(get, path = "/auth/v1/user", tag = "auth",
    responses((status = 200, description = "The signed-in user", body = Object), crate::http::openapi::AuthRefusals))]
async fn user(State(state): State<AuthState>, who: AuthUser) -> Result<Json<Value>, AuthError> {
    let u = service::current_user(&state.pool, who.user_id).await?;
    Ok(Json(user_json(&u)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteUserBody {
    /// The account's password.
    password: String,
    /// A current code from the authenticator app, when the account has one.
    code: Option<String>,
}

#[utoipa::path(delete, path = "/auth/v1/user", tag = "auth", request_body = DeleteUserBody,
    responses((status = 202, description = "The account will be deleted after the grace period (`auth.account_deletion_grace_days`), with the organizations only its owner belongs to; every session is signed out, a mail says when, and signing in before then cancels it", body = Object),
        (status = 409, description = "The account is the last admin of an organization with other members", body = Object),
        crate::http::openapi::AuthRefusals))]
async fn delete_user(
    State(state): State<AuthState>,
    who: AuthUser,
    origin: Origin,
    AuthJson(body): AuthJson<DeleteUserBody>,
) -> Result<Response, AuthError> {
    let scheduled =
        super::deletion::request(&state, &who, body.password, body.code.as_deref(), &origin)
            .await?;
    Ok((StatusCode::ACCEPTED, Json(scheduled)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogoutQuery {
    scope: Option<String>,
}

#[utoipa::path(post, path = "/auth/v1/logout", tag = "auth", params(LogoutQuery),
    responses((status = 204, description = "Signed out (`scope`: this session, others, or all); refresh tokens revoked"), crate::http::openapi::AuthRefusals))]
async fn logout(
    State(state): State<AuthState>,
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
