//! The browser side of single sign-on:
//!
//! - `GET /login/sso/{provider}` starts a sign-in: a sealed `__Host-lg-sso` cookie keeps state,
//!   nonce and PKCE verifier for ten minutes, and the browser goes to the provider;
//! - `GET /login/sso/{provider}/callback` checks the state against that cookie, exchanges the code,
//!   verifies the ID token and signs in (or creates the account);
//! - `GET /auth/v1/authorize?provider=…` starts the same sign-in for a Supabase client in the
//!   PKCE flow: the callback then sends the browser back to the client's `redirect_to` with an
//!   authorization code instead of signing the browser in;
//! - `GET|POST /login/link` asks the owner of an existing account to confirm a link with the
//!   account's password; the pending identity waits in a sealed `__Host-lg-sso-link` cookie.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::service::{self, Outcome, PendingLink};
use super::{ProviderKind, SsoError};
use crate::auth::AuthState;
use crate::auth::pages::signed_in;
use crate::auth::service::Origin;
use crate::web::assets::{self, Assets};
use crate::web::cookies::{cookie_value as cookie, set_cookie, with_cookies};
use crate::web::{CsrfForm, csrf, render};

pub const FLOW_COOKIE: &str = "__Host-lg-sso";
pub const LINK_COOKIE: &str = "__Host-lg-sso-link";
/// Seconds a started sign-in, and a pending link, stay valid.
const FLOW_TTL_SECS: i64 = 600;
const FLOW_AAD: &[u8] = b"leadgen sso flow v1";
const LINK_AAD: &[u8] = b"leadgen sso link v1";

pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/login/sso/{provider}", get(start))
        .route("/login/sso/{provider}/callback", get(callback))
        .route("/login/link", get(link_page).post(link))
        .route("/auth/v1/authorize", get(authorize))
}

#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    at: i64,
    /// Set when a Supabase client started the flow with PKCE: where its code goes.
    #[serde(default)]
    client: Option<ClientFlow>,
}

#[derive(Serialize, Deserialize)]
struct ClientFlow {
    challenge: String,
    redirect_to: String,
}

fn seal_cookie<T: Serialize>(state: &AuthState, value: &T, aad: &[u8]) -> Option<String> {
    let json = serde_json::to_vec(value).ok()?;
    let sealed = leadgen_crypto::seal::seal(state.auth.seal_key(), &json, aad).ok()?;
    Some(B64.encode(sealed))
}

fn open_cookie<T: serde::de::DeserializeOwned>(
    state: &AuthState,
    headers: &HeaderMap,
    name: &str,
    aad: &[u8],
) -> Option<T> {
    let raw = B64.decode(cookie(headers, name)?).ok()?;
    let json = leadgen_crypto::seal::open(state.auth.seal_key(), &raw, aad).ok()?;
    serde_json::from_slice(&json).ok()
}

fn clear(name: &str) -> Vec<HeaderValue> {
    set_cookie(name, "", 0).into_iter().collect()
}

#[derive(Template)]
#[template(path = "auth/notice.html")]
struct NoticePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    heading: &'a str,
    message: &'a str,
}

/// The failure page: what went wrong in plain words, counted and audited by reason.
/// Counts and audits a refused sign-in, whichever way its answer goes back.
fn record_failure(kind: ProviderKind, e: &SsoError) {
    let reason = e.reason();
    metrics::counter!("auth_sso_failures_total", "provider" => kind.slug(), "reason" => reason)
        .increment(1);
    tracing::info!(target: "leadgen::audit", action = "sso_failed", provider = kind.slug(), reason, detail = %e, "single sign-on refused");
}

fn failed(state: &AuthState, headers: &HeaderMap, kind: ProviderKind, e: &SsoError) -> Response {
    record_failure(kind, e);
    let status = match e {
        SsoError::Provider(..) => StatusCode::BAD_GATEWAY,
        SsoError::Auth(a) => crate::auth::pages::error_status(a),
        _ => StatusCode::BAD_REQUEST,
    };
    let message = e.to_string();
    let heading = format!("Sign-in with {} failed", kind.label());
    let page = NoticePage {
        assets: assets::get(),
        version: state.version,
        heading: &heading,
        message: &message,
    };
    with_cookies(
        render(&page, status, &csrf(state, headers)),
        clear(FLOW_COOKIE),
    )
}

async fn start(
    State(state): State<AuthState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let Some(provider) = state.sso.get(&slug) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let auth = match provider.authorize().await {
        Ok(a) => a,
        Err(e) => return failed(&state, &headers, provider.kind, &e),
    };
    let flow = Flow {
        provider: slug,
        state: auth.state,
        nonce: auth.nonce,
        verifier: auth.verifier,
        at: state.clock.now().unix_timestamp(),
        client: None,
    };
    to_provider(&state, &flow, &auth.url)
}

fn to_provider(state: &AuthState, flow: &Flow, url: &str) -> Response {
    let cookie =
        seal_cookie(state, flow, FLOW_AAD).and_then(|v| set_cookie(FLOW_COOKIE, &v, FLOW_TTL_SECS));
    let mut res = Redirect::to(url).into_response();
    if let Some(c) = cookie {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    provider: Option<String>,
    redirect_to: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `signInWithOAuth` of a Supabase client. Only the PKCE flow: the implicit flow would put the
/// session in a URL.
async fn authorize(
    State(state): State<AuthState>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    use crate::auth::AuthError;
    use crate::auth::passwordless::{Pkce, redirect_target};
    let slug = match q.provider.as_deref() {
        Some("linkedin_oidc") => "linkedin",
        Some(p) => p,
        None => return AuthError::BadRequest("provider is required".into()).into_response(),
    };
    let Some(provider) = state.sso.get(slug) else {
        return AuthError::BadRequest(format!(
            "Unsupported provider: {slug:?} is not enabled on this server"
        ))
        .into_response();
    };
    let challenge = match Pkce::parse(
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return AuthError::BadRequest(
                "code_challenge is required: LeadGen supports the PKCE flow only (flowType: 'pkce')"
                    .into(),
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let auth = match provider.authorize().await {
        Ok(a) => a,
        Err(e) => return failed(&state, &headers, provider.kind, &e),
    };
    let flow = Flow {
        provider: provider.kind.slug().to_string(),
        state: auth.state,
        nonce: auth.nonce,
        verifier: auth.verifier,
        at: state.clock.now().unix_timestamp(),
        client: Some(ClientFlow {
            challenge: challenge.as_str().to_string(),
            redirect_to: redirect_target(&state, q.redirect_to.as_deref()),
        }),
    };
    to_provider(&state, &flow, &auth.url)
}

/// The end of a client's PKCE flow: back to its redirect URL with a code (or the reason not).
async fn to_client(
    state: &AuthState,
    kind: ProviderKind,
    client: &ClientFlow,
    outcome: Result<Outcome, SsoError>,
) -> Response {
    use crate::auth::passwordless::{issue_auth_code, with_query};
    let params: Vec<(&str, String)> = match outcome {
        Ok(Outcome::SignedIn(session)) => {
            match issue_auth_code(
                state,
                session.user.id,
                session.claims.session_id,
                &client.challenge,
                &crate::auth::api::session_json(&session),
            )
            .await
            {
                Ok(code) => vec![("code", code)],
                Err(e) => return e.into_response(),
            }
        }
        // Linking to an existing password account needs that password, on LeadGen's own page.
        Ok(Outcome::NeedsLink(_)) => vec![
            ("error", "access_denied".into()),
            ("error_code", "identity_not_linked".into()),
            (
                "error_description",
                "An account with this email exists: sign in with its password, then link the provider on the account page".into(),
            ),
        ],
        Err(e) => {
            record_failure(kind, &e);
            vec![
            ("error", "access_denied".into()),
            ("error_code", e.reason().into()),
            ("error_description", e.to_string()),
        ]
        }
    };
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    with_cookies(
        Redirect::to(&with_query(&client.redirect_to, &pairs)).into_response(),
        clear(FLOW_COOKIE),
    )
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    Path(slug): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(provider) = state.sso.get(&slug) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let kind = provider.kind;
    let now = state.clock.now().unix_timestamp();
    // The flow must have started in this browser, for this provider, minutes ago, with this state.
    let flow: Option<Flow> = open_cookie(&state, &headers, FLOW_COOKIE, FLOW_AAD);
    let Some(flow) = flow.filter(|f| {
        f.provider == slug
            && now - f.at <= FLOW_TTL_SECS
            && q.state
                .as_deref()
                .is_some_and(|s| bool::from(s.as_bytes().ct_eq(f.state.as_bytes())))
    }) else {
        return failed(&state, &headers, kind, &SsoError::State);
    };
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or(error);
        return failed(
            &state,
            &headers,
            kind,
            &SsoError::Denied(kind.label(), why.chars().take(200).collect()),
        );
    }
    let Some(code) = q.code else {
        return failed(&state, &headers, kind, &SsoError::State);
    };
    let claims = match provider
        .finish(&code, q.iss.as_deref(), &flow.verifier, &flow.nonce, now)
        .await
    {
        Ok(c) => c,
        Err(e) => return failed(&state, &headers, kind, &e),
    };
    if let Some(client) = &flow.client {
        let outcome = service::sign_in(&state, kind, claims, &origin).await;
        return to_client(&state, kind, client, outcome).await;
    }
    match service::sign_in(&state, kind, claims, &origin).await {
        Ok(Outcome::SignedIn(session)) => {
            with_cookies(signed_in(&state, &session), clear(FLOW_COOKIE))
        }
        Ok(Outcome::NeedsLink(pending)) => {
            let mut cookies = clear(FLOW_COOKIE);
            cookies.extend(
                seal_cookie(&state, &pending, LINK_AAD)
                    .and_then(|v| set_cookie(LINK_COOKIE, &v, FLOW_TTL_SECS)),
            );
            with_cookies(Redirect::to("/login/link").into_response(), cookies)
        }
        Err(e) => failed(&state, &headers, kind, &e),
    }
}

#[derive(Template)]
#[template(path = "auth/link.html")]
struct LinkPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    provider: &'static str,
    email: String,
    error: Option<String>,
}

fn pending(state: &AuthState, headers: &HeaderMap) -> Option<(PendingLink, ProviderKind)> {
    let p: PendingLink = open_cookie(state, headers, LINK_COOKIE, LINK_AAD)?;
    let kind = ProviderKind::from_slug(&p.provider)?;
    (state.clock.now().unix_timestamp() - p.at <= FLOW_TTL_SECS).then_some((p, kind))
}

fn link_form(
    state: &AuthState,
    headers: &HeaderMap,
    p: &PendingLink,
    kind: ProviderKind,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let token = csrf(state, headers);
    let page = LinkPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        provider: kind.label(),
        email: p.email.clone(),
        error,
    };
    render(&page, status, &token)
}

async fn link_page(State(state): State<AuthState>, headers: HeaderMap) -> Response {
    match pending(&state, &headers) {
        Some((p, kind)) => link_form(&state, &headers, &p, kind, None, StatusCode::OK),
        None => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    password: String,
}

async fn link(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    CsrfForm(form): CsrfForm<LinkForm>,
) -> Response {
    let Some((p, kind)) = pending(&state, &headers) else {
        // Nothing pending (expired or never started): nothing to link.
        return Redirect::to("/login").into_response();
    };
    match service::link(&state, &p, form.password, &origin).await {
        Ok(session) => with_cookies(signed_in(&state, &session), clear(LINK_COOKIE)),
        Err(e) => {
            let status = match &e {
                SsoError::Auth(a) => crate::auth::pages::error_status(a),
                _ => StatusCode::BAD_REQUEST,
            };
            link_form(&state, &headers, &p, kind, Some(e.to_string()), status)
        }
    }
}
