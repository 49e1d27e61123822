//! The account pages: sign-up, sign-in (with the TOTP step), account settings with active
//! sessions, authenticator enrolment, sign-out.
//!
//! Browsers hold the session in two `__Host-` cookies (Secure, HttpOnly, SameSite=Lax): the access
//! token and the refresh token. [`refresh_cookies`] renews an expired access token from the
//! refresh token before a page handler runs (the assembler puts it in front of every page), so
//! pages never see an expired session. Every form carries a CSRF token ([`CsrfForm`]) and state
//! changes must come from our own origin.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use uuid::Uuid;

use super::service::{self, LogoutScope, Origin, Session};
use super::{AuthError, AuthState, AuthUser, BrowserUser, Verified, mfa};
use crate::http::credentials::Credential;
use crate::web::assets::{self, Assets};
use crate::web::cookies::{
    ACCESS_COOKIE, REFRESH_COOKIE, clear_session, cookie_value as cookie, set_cookie, with_cookies,
};
use crate::web::shell::{Section, Shell};
use crate::web::{CsrfForm, SignedIn, When, csrf, render};

pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/login/mfa", get(mfa_page).post(mfa_login))
        .route("/signup", get(signup_page).post(signup))
        .route("/account", get(account))
        .route("/account/mfa", get(enroll_page).post(enroll))
        .route("/account/sessions/others", post(sign_out_others))
        .route("/account/password", post(change_password))
        .route("/account/delete", post(delete_account))
        .route("/logout", post(logout))
        .merge(super::sso::pages::routes())
}

/// `Set-Cookie` headers that carry a session to the browser.
pub(crate) fn session_cookies(state: &AuthState, s: &Session) -> Vec<HeaderValue> {
    [
        set_cookie(ACCESS_COOKIE, &s.access_token, s.expires_in),
        set_cookie(
            REFRESH_COOKIE,
            &s.refresh_token,
            state.config.auth.session_lifetime_secs,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Where a browser goes once signed in: the second-factor step when the account has one.
/// An admin without a second factor is sent to set one up: admin actions need `aal2`.
pub(crate) fn signed_in(state: &AuthState, session: &Session) -> Response {
    let has_factor = session
        .user
        .factors
        .iter()
        .any(|f| f.status == "verified" && f.factor_type == "totp");
    let admin = session
        .org
        .as_ref()
        .is_some_and(|(_, role)| role == "admin");
    let next = if has_factor {
        "/login/mfa"
    } else if admin {
        "/account/mfa?required=admin"
    } else {
        "/account"
    };
    with_cookies(
        Redirect::to(next).into_response(),
        session_cookies(state, session),
    )
}

/// Renews an expired or missing access cookie from the refresh cookie before a page handler
/// runs, so pages never see an expired session. The renewed token is handed to this request as
/// the identity layer would have (its claims are the ones just signed, not verified again), and
/// both tokens to the browser.
pub async fn refresh_cookies(
    State(state): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    if matches!(
        req.extensions().get::<Credential>(),
        Some(Credential::Token { .. } | Credential::ApiKey { .. })
    ) {
        return next.run(req).await;
    }
    let Some(refresh) = cookie(req.headers(), REFRESH_COOKIE).map(str::to_string) else {
        return next.run(req).await;
    };
    match service::refresh_grant(&state, &refresh).await {
        Ok(session) => {
            let claims = session.claims.clone();
            let ext = req.extensions_mut();
            ext.insert(Credential::Token {
                user_id: claims.sub,
                session_id: claims.session_id,
                lifetime_secs: claims.exp - claims.iat,
            });
            ext.insert(Verified(claims));
            let res = next.run(req).await;
            with_cookies(res, session_cookies(&state, &session))
        }
        Err(_) => with_cookies(next.run(req).await, clear_session()),
    }
}

pub(crate) fn error_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
    /// (slug, label) of the single sign-on providers configured.
    sso: Vec<(&'static str, &'static str)>,
}

#[derive(Deserialize)]
struct LoginQuery {
    notice: Option<String>,
}

async fn login_page(
    State(state): State<AuthState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let token = csrf(&state, &headers);
    let notice = match q.notice.as_deref() {
        Some("signed-out") => Some("You are signed out.".to_string()),
        _ => None,
    };
    let page = LoginPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        email: String::new(),
        error: None,
        notice,
        sso: state.sso.offered(),
    };
    render(&page, StatusCode::OK, &token)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    match service::password_grant(&state, &form.email, form.password, &origin).await {
        Ok(session) => signed_in(&state, &session),
        Err(e) => {
            let token = csrf(&state, &headers);
            let page = LoginPage {
                assets: assets::get(),
                version: state.version,
                csrf: token.token.clone(),
                email: form.email,
                error: Some(e.to_string()),
                notice: None,
                sso: state.sso.offered(),
            };
            render(&page, error_status(&e), &token)
        }
    }
}

#[derive(Template)]
#[template(path = "auth/signup.html")]
struct SignupPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/notice.html")]
struct NoticePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    heading: &'a str,
    message: &'a str,
}

async fn signup_page(State(state): State<AuthState>, headers: HeaderMap) -> Response {
    let token = csrf(&state, &headers);
    let page = SignupPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        email: String::new(),
        error: None,
    };
    render(&page, StatusCode::OK, &token)
}

async fn signup(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    match service::signup(
        &state,
        &form.email,
        form.password,
        serde_json::json!({}),
        &origin,
    )
    .await
    {
        Ok(service::SignupOutcome::AwaitingConfirmation(_)) => {
            let token = csrf(&state, &headers);
            let page = NoticePage {
                assets: assets::get(),
                version: state.version,
                heading: "Check your email",
                message: "We sent a confirmation link to your address. Open it to finish creating your account.",
            };
            render(&page, StatusCode::OK, &token)
        }
        Ok(service::SignupOutcome::Session(session)) => with_cookies(
            Redirect::to("/account").into_response(),
            session_cookies(&state, &session),
        ),
        Err(e) => {
            let token = csrf(&state, &headers);
            let page = SignupPage {
                assets: assets::get(),
                version: state.version,
                csrf: token.token.clone(),
                email: form.email,
                error: Some(e.to_string()),
            };
            render(&page, error_status(&e), &token)
        }
    }
}

struct SessionRow {
    started: When,
    ip: String,
    user_agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "auth/account.html")]
struct AccountPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    email: String,
    aal: String,
    mfa_enabled: bool,
    sessions: Vec<SessionRow>,
    notice: Option<String>,
    /// Opened from a reset link: the new-password form needs no current password.
    resetting: bool,
    error: Option<String>,
    /// Why asking to delete the account failed.
    delete_error: Option<String>,
}

#[derive(Deserialize)]
struct AccountQuery {
    changed: Option<String>,
}

async fn account(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<AccountQuery>,
) -> Response {
    let notice = q
        .changed
        .map(|_| "Your password is changed; your other sessions are signed out.".to_string());
    let resetting = service::is_recovering(&who, state.clock.now());
    account_page(
        &state,
        &headers,
        &who,
        resetting,
        notice,
        PageError::None,
        StatusCode::OK,
    )
    .await
}

/// What went wrong on the account page, and in which of its forms.
enum PageError {
    None,
    Password(String),
    Deletion(String),
}

async fn account_page(
    state: &AuthState,
    headers: &HeaderMap,
    who: &AuthUser,
    resetting: bool,
    notice: Option<String>,
    error: PageError,
    status: StatusCode,
) -> Response {
    let (error, delete_error) = match error {
        PageError::None => (None, None),
        PageError::Password(e) => (Some(e), None),
        PageError::Deletion(e) => (None, Some(e)),
    };
    let user = match service::current_user(&state.pool, who.user_id).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let mfa_enabled = user.factors.iter().any(|f| f.status == "verified");
    // A signed-in user with a second factor must pass it before seeing the account.
    if mfa_enabled && who.aal != "aal2" {
        return Redirect::to("/login/mfa").into_response();
    }
    let sessions = match service::list_sessions(state, who.user_id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let token = csrf(state, headers);
    let shell = match super::shell(state, who, Section::Account, &token.token).await {
        Ok(s) => s,
        Err(e) => return AuthError::from(e).into_response(),
    };
    let page = AccountPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        email: user.email,
        aal: who.aal.clone(),
        mfa_enabled,
        sessions: sessions
            .into_iter()
            .map(|s| SessionRow {
                started: shell.when(s.created_at),
                ip: s.ip.unwrap_or_default(),
                user_agent: s.user_agent.unwrap_or_default().chars().take(80).collect(),
                current: s.id == who.session_id,
            })
            .collect(),
        notice,
        resetting,
        error,
        delete_error,
        shell,
    };
    render(&page, status, &token)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let current = (!form.current_password.is_empty()).then_some(form.current_password);
    match service::change_password(&state, &who, form.new_password, current, false, &origin).await {
        Ok(_) => Redirect::to("/account?changed=1").into_response(),
        Err(e) => {
            let status = error_status(&e);
            let resetting = service::is_recovering(&who, state.clock.now());
            account_page(
                &state,
                &headers,
                &who,
                resetting,
                None,
                PageError::Password(e.to_string()),
                status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct DeleteForm {
    password: String,
    #[serde(default)]
    code: String,
}

/// Asks for the account's deletion; on success the browser is signed out and told when.
async fn delete_account(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<DeleteForm>,
) -> Response {
    match super::deletion::request(&state, &who, form.password, Some(&form.code), &origin).await {
        Ok(scheduled) => {
            let token = csrf(&state, &headers);
            let when = scheduled
                .deletion_due_at
                .format(&time::macros::format_description!(
                    "[day] [month repr:long] [year] at [hour]:[minute] UTC"
                ))
                .unwrap_or_default();
            let mut message = format!(
                "Your account will be deleted on {when}. Every session is signed out, and a mail \
                 confirms it. Sign in before then to cancel."
            );
            if !scheduled.organizations_deleted_with_it.is_empty() {
                message.push_str(&format!(
                    " The organizations only you belong to go with it: {}.",
                    scheduled.organizations_deleted_with_it.join(", ")
                ));
            }
            let page = NoticePage {
                assets: assets::get(),
                version: state.version,
                heading: "Your account will be deleted",
                message: &message,
            };
            with_cookies(render(&page, StatusCode::OK, &token), clear_session())
        }
        Err(e) => {
            let status = match &e {
                AuthError::AccountDeletionBlocked(_) => StatusCode::CONFLICT,
                other => error_status(other),
            };
            let resetting = service::is_recovering(&who, state.clock.now());
            account_page(
                &state,
                &headers,
                &who,
                resetting,
                None,
                PageError::Deletion(e.to_string()),
                status,
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "auth/mfa_enroll.html")]
struct EnrollPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    factor_id: Uuid,
    secret: String,
    qr_data_uri: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct EnrollQuery {
    required: Option<String>,
}

async fn enroll_page(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<EnrollQuery>,
) -> Response {
    let enrolled = match mfa::enroll_factor(&state, &who, None, None).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let token = csrf(&state, &headers);
    let shell = match super::shell(&state, &who, Section::Account, &token.token).await {
        Ok(s) => s,
        Err(e) => return AuthError::from(e).into_response(),
    };
    let page = EnrollPage {
        assets: assets::get(),
        version: state.version,
        shell,
        csrf: token.token.clone(),
        factor_id: enrolled.id,
        secret: enrolled.secret_base32,
        qr_data_uri: format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(enrolled.qr_svg.as_bytes())
        ),
        error: None,
        notice: (q.required.as_deref() == Some("admin")).then_some(
            "You are an admin of your organization. Admin actions need two-factor authentication: \
             set it up now.",
        ),
    };
    render(&page, StatusCode::OK, &token)
}

#[derive(Deserialize)]
struct EnrollForm {
    factor_id: Uuid,
    code: String,
}

async fn enroll(
    State(state): State<AuthState>,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<EnrollForm>,
) -> Response {
    let result = async {
        let (challenge, _) = mfa::create_challenge(&state, &who, form.factor_id).await?;
        mfa::verify_code(&state, &who, form.factor_id, challenge, &form.code).await
    }
    .await;
    match result {
        Ok(session) => with_cookies(
            Redirect::to("/account").into_response(),
            session_cookies(&state, &session),
        ),
        Err(e) => notice(
            &state,
            error_status(&e),
            "That code did not work",
            &format!("{e}. Start again to get a new key."),
        ),
    }
}

fn notice(state: &AuthState, status: StatusCode, heading: &str, message: &str) -> Response {
    let page = NoticePage {
        assets: assets::get(),
        version: state.version,
        heading,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => AuthError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "auth/mfa_challenge.html")]
struct ChallengePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    error: Option<String>,
}

async fn mfa_page(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(_who): BrowserUser,
) -> Response {
    let token = csrf(&state, &headers);
    let page = ChallengePage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        error: None,
    };
    render(&page, StatusCode::OK, &token)
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn mfa_login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Response {
    let result = async {
        let user = service::current_user(&state.pool, who.user_id).await?;
        let factor = user
            .factors
            .iter()
            .find(|f| f.status == "verified")
            .ok_or(AuthError::FactorNotFound)?;
        let (challenge, _) = mfa::create_challenge(&state, &who, factor.id).await?;
        mfa::verify_code(&state, &who, factor.id, challenge, &form.code).await
    }
    .await;
    match result {
        Ok(session) => with_cookies(
            Redirect::to("/account").into_response(),
            session_cookies(&state, &session),
        ),
        Err(e) => {
            let token = csrf(&state, &headers);
            let page = ChallengePage {
                assets: assets::get(),
                version: state.version,
                csrf: token.token.clone(),
                error: Some(e.to_string()),
            };
            render(&page, error_status(&e), &token)
        }
    }
}

async fn logout(
    State(state): State<AuthState>,
    SignedIn(who): BrowserUser,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> Response {
    let _ = service::logout(&state, who.user_id, who.session_id, LogoutScope::Local).await;
    with_cookies(
        Redirect::to("/login?notice=signed-out").into_response(),
        clear_session(),
    )
}

async fn sign_out_others(
    State(state): State<AuthState>,
    SignedIn(who): BrowserUser,
    CsrfForm(_): CsrfForm<HashMap<String, String>>,
) -> Response {
    match service::logout(&state, who.user_id, who.session_id, LogoutScope::Others).await {
        Ok(_) => Redirect::to("/account").into_response(),
        Err(e) => e.into_response(),
    }
}
