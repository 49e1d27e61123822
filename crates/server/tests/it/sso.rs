//! Single sign-on against a real OpenID Connect provider process (`e2e/oidc-provider.mjs`, the
//! `oidc-provider` package) playing Google and LinkedIn on localhost. A cookie-keeping HTTP client
//! plays the browser: LeadGen's sign-in link, the provider's authorization endpoint and login
//! interaction, and back to LeadGen's callback.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{Proc, TestApp, TestDb, server_env, workspace_root};

const PASSWORD: &str = "violet tractor hums at dawn";
const GOOGLE_SECRET: &str = "sso-google-client-secret-3b9f1c0e7a";
const LINKEDIN_SECRET: &str = "sso-linkedin-client-secret-77d2e4a1";

/// A provider process on 127.0.0.1; it exits when dropped.
pub(crate) struct OidcProvider {
    _child: Child,
    pub(crate) issuer: String,
    http: reqwest::Client,
}

impl OidcProvider {
    pub(crate) async fn start() -> Self {
        let mut child = Command::new("node")
            .arg("e2e/oidc-provider.mjs")
            .current_dir(workspace_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node is needed for the SSO tests (scripts/test.sh installs it)");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), out.read_line(&mut line))
            .await
            .expect("the OIDC provider starts")
            .unwrap();
        let port = serde_json::from_str::<Value>(&line).unwrap()["port"]
            .as_u64()
            .unwrap_or_else(|| panic!("provider did not announce its port: {line:?}"));
        // Keep reading, so the provider never writes into a closed pipe.
        tokio::spawn(async move { tokio::io::copy(&mut out, &mut tokio::io::sink()).await });
        Self {
            _child: child,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// Registers LeadGen's clients: (client id, secret, redirect URI). `post_only` plays
    /// LinkedIn, which takes client credentials in the form body only.
    pub(crate) async fn register(&self, clients: &[(&str, &str, String)], post_only: bool) {
        let method = if post_only {
            "client_secret_post"
        } else {
            "client_secret_basic"
        };
        let clients: Vec<Value> = clients
            .iter()
            .map(|(id, secret, redirect)| {
                json!({
                    "client_id": id, "client_secret": secret, "redirect_uris": [redirect],
                    "token_endpoint_auth_method": method,
                })
            })
            .collect();
        let mut body = json!({ "clients": clients });
        if post_only {
            body["clientAuthMethods"] = json!(["client_secret_post"]);
        }
        let res = self
            .http
            .post(format!("{}/test/clients", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    /// The account the provider's login page signs in as next.
    pub(crate) async fn login_as(&self, sub: &str, email: &str, verified: bool, name: &str) {
        let res = self
            .http
            .post(format!("{}/test/next-login", self.issuer))
            .json(&json!({ "sub": sub, "email": email, "email_verified": verified, "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

pub(crate) fn redirect_uri(https_port: u16, slug: &str) -> String {
    format!("https://localhost:{https_port}/login/sso/{slug}/callback")
}

pub(crate) fn sso_env(slug: &str, issuer: &str, secret: &str) -> Vec<(String, String)> {
    let up = slug.to_ascii_uppercase();
    vec![
        (format!("LEADGEN_SSO__{up}__ISSUER"), issuer.to_string()),
        (
            format!("LEADGEN_SSO__{up}__CLIENT_ID"),
            format!("leadgen-{slug}"),
        ),
        (
            format!("LEADGEN_SSO__{up}__CLIENT_SECRET"),
            secret.to_string(),
        ),
    ]
}

async fn spawn_app(env: &[(String, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestApp::spawn_with(&pairs).await
}

/// A browser: keeps cookies for LeadGen and the provider, trusts LeadGen's development CA and
/// follows no redirect on its own.
fn browser(cert: &std::path::Path, https: std::net::SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("localhost", https)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in a {} response", res.status()))
        .to_str()
        .unwrap()
        .to_string()
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Whether a response hands the browser a session.
fn signs_in(res: &reqwest::Response) -> bool {
    set_cookies(res)
        .iter()
        .any(|c| c.starts_with("__Host-lg-access=") && !c.starts_with("__Host-lg-access=;"))
}

/// Starts a sign-in at LeadGen; returns the provider URL the browser is sent to.
async fn start(b: &reqwest::Client, base: &str, slug: &str) -> reqwest::Response {
    b.get(format!("{base}/login/sso/{slug}"))
        .send()
        .await
        .unwrap()
}

/// Follows the provider's redirects from `url` until it sends the browser to `callback`.
/// Err: the provider stopped with this status and body.
async fn through_provider(
    b: &reqwest::Client,
    url: &str,
    callback: &str,
) -> Result<String, (u16, String)> {
    let mut url = reqwest::Url::parse(url).unwrap();
    for _ in 0..10 {
        let res = b.get(url.clone()).send().await.unwrap();
        if !res.status().is_redirection() {
            return Err((res.status().as_u16(), res.text().await.unwrap()));
        }
        let next = url.join(&location(&res)).unwrap();
        if next.as_str().starts_with(callback) {
            return Ok(next.into());
        }
        url = next;
    }
    panic!("the provider kept redirecting");
}

/// A whole sign-in: LeadGen → provider → LeadGen's callback; returns the callback's response.
async fn sign_in(b: &reqwest::Client, base: &str, slug: &str) -> reqwest::Response {
    let res = start(b, base, slug).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let auth = location(&res);
    let callback = through_provider(b, &auth, &format!("{base}/login/sso/{slug}/callback"))
        .await
        .unwrap();
    b.get(callback).send().await.unwrap()
}

fn query_param(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} missing in {url}"))
}

fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut u = reqwest::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.into()
}

/// The signed-in user as `/auth/v1/user` shows it, read with the browser's access cookie.
async fn current_user(app: &TestApp, res: &reqwest::Response) -> Value {
    let access = set_cookies(res)
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("__Host-lg-access=")
                .map(|v| v.split(';').next().unwrap().to_string())
        })
        .expect("an access cookie");
    app.client()
        .get(app.https_url("/auth/v1/user"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let pool = app.db().superuser_pool().await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn google_and_linkedin_sign_in_create_an_account_once_and_find_it_again() {
    let (google, linkedin) = tokio::join!(OidcProvider::start(), OidcProvider::start());
    let mut env = sso_env("google", &google.issuer, GOOGLE_SECRET);
    env.extend(sso_env("linkedin", &linkedin.issuer, LINKEDIN_SECRET));
    let app = spawn_app(&env).await;
    let port = app.bound.https.port();
    let base = format!("https://localhost:{port}");
    google
        .register(
            &[(
                "leadgen-google",
                GOOGLE_SECRET,
                redirect_uri(port, "google"),
            )],
            false,
        )
        .await;
    linkedin
        .register(
            &[(
                "leadgen-linkedin",
                LINKEDIN_SECRET,
                redirect_uri(port, "linkedin"),
            )],
            true,
        )
        .await;

    // The sign-in page offers both providers.
    let page = app
        .client()
        .get(app.https_url("/login"))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/login/sso/google\"") && html.contains("Continue with Google"));
    assert!(
        html.contains("href=\"/login/sso/linkedin\"") && html.contains("Continue with LinkedIn")
    );

    // The authorization request: code flow, exact redirect URI, PKCE S256, state and nonce, and
    // the secrets in a sealed host-only cookie.
    let b = browser(&app.cert_path(), app.bound.https);
    let res = start(&b, &base, "google").await;
    assert_eq!(res.status(), 303);
    let auth = location(&res);
    assert!(
        auth.starts_with(&format!("{}/auth?", google.issuer)),
        "{auth}"
    );
    assert_eq!(query_param(&auth, "response_type"), "code");
    assert_eq!(query_param(&auth, "client_id"), "leadgen-google");
    assert_eq!(
        query_param(&auth, "redirect_uri"),
        redirect_uri(port, "google")
    );
    assert_eq!(query_param(&auth, "code_challenge_method"), "S256");
    assert_eq!(query_param(&auth, "scope"), "openid email profile");
    for p in ["state", "nonce", "code_challenge"] {
        assert!(query_param(&auth, p).len() >= 43, "{p} carries 256 bits");
    }
    let flow = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("__Host-lg-sso="))
        .unwrap();
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(flow.contains(attr), "{flow} lacks {attr}");
    }
    assert!(
        !flow.contains(&query_param(&auth, "nonce")),
        "the flow cookie is sealed"
    );

    // First sign-in: a new account, confirmed by Google, signed in.
    google
        .login_as("google-sub-ann", "Ann@Acme.test", true, "Ann Example")
        .await;
    let callback = through_provider(&b, &auth, &format!("{base}/login/sso/google/callback"))
        .await
        .unwrap();
    let res = b.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    assert!(signs_in(&res));
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("__Host-lg-sso=;") && c.contains("Max-Age=0")),
        "the flow cookie is cleared"
    );
    let ann = current_user(&app, &res).await;
    assert_eq!(ann["email"], "ann@acme.test");
    assert!(ann["email_confirmed_at"].is_string(), "{ann}");
    assert_eq!(ann["user_metadata"]["full_name"], "Ann Example");
    // The session remembers how it began: a refreshed access token still says `oauth`.
    let refresh = set_cookies(&res)
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("__Host-lg-refresh=")
                .map(|v| v.split(';').next().unwrap().to_string())
        })
        .expect("a refresh cookie");
    let refreshed: Value = app
        .client()
        .post(app.https_url("/auth/v1/token?grant_type=refresh_token"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims: Value = {
        use base64::Engine;
        let payload = refreshed["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["amr"][0]["method"], "oauth", "{claims}");
    let page = b.get(format!("{base}/account")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("ann@acme.test"));
    // The callback cannot be replayed: its flow is used up.
    let replay = b.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert!(!signs_in(&replay));

    // Again, from another browser, after Ann changed her address at Google: the same account,
    // found by Google's subject, not by email.
    google
        .login_as("google-sub-ann", "ann@elsewhere.test", true, "Ann Example")
        .await;
    let b2 = browser(&app.cert_path(), app.bound.https);
    let res = sign_in(&b2, &base, "google").await;
    assert_eq!(res.status(), 303);
    let again = current_user(&app, &res).await;
    assert_eq!(again["id"], ann["id"]);
    assert_eq!(again["email"], "ann@acme.test");

    // LinkedIn, which takes client credentials in the form body.
    linkedin
        .login_as("linkedin-sub-bob", "bob@acme.test", true, "Bob Example")
        .await;
    let res = sign_in(&b2, &base, "linkedin").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(current_user(&app, &res).await["email"], "bob@acme.test");

    assert_eq!(count(&app, "SELECT count(*) FROM app.identities").await, 2);
    assert_eq!(count(&app, "SELECT count(*) FROM app.users").await, 2);
    assert_eq!(
        count(&app, "SELECT count(*) FROM app.credentials").await,
        0,
        "SSO accounts have no password"
    );
    // A provider that is not configured does not exist.
    assert_eq!(start(&b2, &base, "github").await.status(), 404);
    app.stop().await;
}

/// Signs up `email` through the API and confirms it with the mailed token.
async fn confirmed_account(app: &TestApp, email: &str) {
    let c = app.client();
    let res = c
        .post(app.https_url("/auth/v1/signup"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mail = app
        .mailbox()
        .into_iter()
        .rev()
        .find(|m| m["to"] == email)
        .expect("confirmation mail");
    let token = mail["text"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let res = c
        .post(app.https_url("/auth/v1/verify"))
        .json(&json!({ "type": "signup", "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Posts the link confirmation form with the page's CSRF token.
async fn confirm_link(b: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    let page = b.get(format!("{base}/login/link")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    b.post(format!("{base}/login/link"))
        .header("origin", base)
        .form(&[("csrf_token", token.as_str()), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_existing_account_is_linked_only_when_its_owner_confirms() {
    let google = OidcProvider::start().await;
    let app = spawn_app(&sso_env("google", &google.issuer, GOOGLE_SECRET)).await;
    let port = app.bound.https.port();
    let base = format!("https://localhost:{port}");
    google
        .register(
            &[(
                "leadgen-google",
                GOOGLE_SECRET,
                redirect_uri(port, "google"),
            )],
            false,
        )
        .await;
    confirmed_account(&app, "carol@acme.test").await;

    // Google vouches for carol@acme.test, but the LeadGen account is Carol's: she must confirm.
    google
        .login_as("google-sub-carol", "carol@acme.test", true, "Carol")
        .await;
    let b = browser(&app.cert_path(), app.bound.https);
    let res = sign_in(&b, &base, "google").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login/link");
    assert!(!signs_in(&res), "no session before the owner confirms");
    let page = b.get(format!("{base}/login/link")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("carol@acme.test") && html.contains("Link your Google account"));

    let wrong = confirm_link(&b, &base, "not carol's password at all").await;
    assert_eq!(wrong.status(), 400);
    assert!(!signs_in(&wrong));
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Invalid login credentials")
    );
    assert_eq!(count(&app, "SELECT count(*) FROM app.identities").await, 0);

    let ok = confirm_link(&b, &base, PASSWORD).await;
    assert_eq!(ok.status(), 303);
    assert_eq!(location(&ok), "/account");
    assert!(signs_in(&ok));
    assert_eq!(count(&app, "SELECT count(*) FROM app.identities").await, 1);

    // From now on Google signs Carol in directly.
    let b2 = browser(&app.cert_path(), app.bound.https);
    let res = sign_in(&b2, &base, "google").await;
    assert_eq!(location(&res), "/account");
    assert!(signs_in(&res));

    // An address Google has not verified creates nothing.
    google
        .login_as("google-sub-dave", "dave@acme.test", false, "Dave")
        .await;
    // (A new browser: the provider remembers who signed in to it in the last one.)
    let b3 = browser(&app.cert_path(), app.bound.https);
    let res = sign_in(&b3, &base, "google").await;
    assert_eq!(res.status(), 400);
    assert!(!signs_in(&res));
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("has not verified the email address")
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM app.users WHERE email = 'dave@acme.test'"
        )
        .await,
        0
    );

    // An unconfirmed account (perhaps registered by someone squatting the address) is neither
    // linked nor taken over.
    let res = app
        .client()
        .post(app.https_url("/auth/v1/signup"))
        .json(&json!({ "email": "erin@acme.test", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    google
        .login_as("google-sub-erin", "erin@acme.test", true, "Erin")
        .await;
    let b4 = browser(&app.cert_path(), app.bound.https);
    let res = sign_in(&b4, &base, "google").await;
    assert_eq!(res.status(), 400);
    assert!(!signs_in(&res));
    assert!(res.text().await.unwrap().contains("not confirmed yet"));
    assert_eq!(count(&app, "SELECT count(*) FROM app.identities").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn tampered_state_nonce_pkce_and_redirect_uri_are_refused() {
    let google = OidcProvider::start().await;
    let app = spawn_app(&sso_env("google", &google.issuer, GOOGLE_SECRET)).await;
    let port = app.bound.https.port();
    let base = format!("https://localhost:{port}");
    let callback = format!("{base}/login/sso/google/callback");
    google
        .register(
            &[(
                "leadgen-google",
                GOOGLE_SECRET,
                redirect_uri(port, "google"),
            )],
            false,
        )
        .await;
    google
        .login_as("google-sub-mallory", "mallory@acme.test", true, "Mallory")
        .await;

    let refused = |res: reqwest::Response, why: &'static str| async move {
        assert_eq!(res.status(), 400, "{why}");
        assert!(!signs_in(&res), "{why}: no session");
        let body = res.text().await.unwrap();
        assert!(body.contains(why), "expected {why:?} in:\n{body}");
    };

    // A state that is not the one this browser started with.
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    let forged = with_param(&back, "state", Some("forged-state"));
    refused(b.get(forged).send().await.unwrap(), "another browser").await;

    // The right state, but in a browser that never started the sign-in (login CSRF).
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    let other = browser(&app.cert_path(), app.bound.https);
    refused(other.get(&back).send().await.unwrap(), "another browser").await;

    // An ID token minted for another nonce.
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    let auth = with_param(&auth, "nonce", Some("a-nonce-of-the-attacker"));
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    refused(b.get(back).send().await.unwrap(), "nonce does not match").await;

    // A code issued for someone else's PKCE challenge: the provider refuses our verifier.
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    let auth = with_param(
        &auth,
        "code_challenge",
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    );
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    refused(
        b.get(back).send().await.unwrap(),
        "refused the sign-in code",
    )
    .await;

    // The provider only sends codes to the exact registered redirect URI.
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    for evil in [
        "https://evil.test/login/sso/google/callback".to_string(),
        format!("{}/x", redirect_uri(port, "google")),
        redirect_uri(port, "google").replace("localhost", "127.0.0.1"),
    ] {
        let (status, body) = through_provider(
            &b,
            &with_param(&auth, "redirect_uri", Some(&evil)),
            &callback,
        )
        .await
        .expect_err("the provider refuses");
        assert_eq!(status, 400, "{evil}: {body}");
        assert!(body.contains("redirect_uri"), "{body}");
    }

    // The user declines at the provider.
    let b = browser(&app.cert_path(), app.bound.https);
    let auth = location(&start(&b, &base, "google").await);
    let denied = format!(
        "{callback}?error=access_denied&error_description=the+user+said+no&state={}",
        query_param(&auth, "state")
    );
    refused(b.get(denied).send().await.unwrap(), "the user said no").await;

    assert_eq!(count(&app, "SELECT count(*) FROM app.users").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn metadata_and_tokens_from_another_issuer_are_refused() {
    let provider = OidcProvider::start().await;
    // Google is configured with an issuer whose metadata points at the real provider (so its ID
    // tokens name the real issuer); LinkedIn with an issuer whose metadata names another issuer.
    let mut env = sso_env(
        "google",
        &format!("{}/impostor", provider.issuer),
        GOOGLE_SECRET,
    );
    env.extend(sso_env(
        "linkedin",
        &format!("{}/verbatim", provider.issuer),
        LINKEDIN_SECRET,
    ));
    let app = spawn_app(&env).await;
    let port = app.bound.https.port();
    let base = format!("https://localhost:{port}");
    provider
        .register(
            &[
                (
                    "leadgen-google",
                    GOOGLE_SECRET,
                    redirect_uri(port, "google"),
                ),
                (
                    "leadgen-linkedin",
                    LINKEDIN_SECRET,
                    redirect_uri(port, "linkedin"),
                ),
            ],
            false,
        )
        .await;
    provider
        .login_as("sub-oscar", "oscar@acme.test", true, "Oscar")
        .await;
    let b = browser(&app.cert_path(), app.bound.https);

    let res = start(&b, &base, "linkedin").await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("answered for another issuer")
    );

    let callback = format!("{base}/login/sso/google/callback");
    let auth = location(&start(&b, &base, "google").await);
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    // The provider names itself in the response (RFC 9207): not the issuer we asked.
    assert_eq!(query_param(&back, "iss"), provider.issuer);
    let res = b.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(!signs_in(&res));
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("answered for another issuer")
    );
    // Without that hint the ID token's own `iss` gives it away.
    let auth = location(&start(&b, &base, "google").await);
    let back = through_provider(&b, &auth, &callback).await.unwrap();
    let res = b.get(with_param(&back, "iss", None)).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(!signs_in(&res));
    let body = res.text().await.unwrap();
    assert!(
        body.contains("cannot trust") && body.contains("issued by"),
        "{body}"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM app.users").await, 0);
    app.stop().await;
}

/// The client secret is configured from a file, used against the provider, and never written to
/// the server's log, even at debug level and when the provider refuses a code.
#[tokio::test]
async fn client_secrets_never_reach_the_log() {
    let google = OidcProvider::start().await;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("google-secret");
    std::fs::write(&secret_file, GOOGLE_SECRET).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let mut env = server_env(Some(&db), &dir.path().join("data"));
    env.push(("LEADGEN_TELEMETRY__LOG_FILTER".into(), "debug".into()));
    env.push(("LEADGEN_SSO__GOOGLE__ISSUER".into(), google.issuer.clone()));
    env.push((
        "LEADGEN_SSO__GOOGLE__CLIENT_ID".into(),
        "leadgen-google".into(),
    ));
    env.push((
        "LEADGEN_SSO__GOOGLE__CLIENT_SECRET_FILE".into(),
        secret_file.display().to_string(),
    ));
    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(30));
    let base = format!("https://localhost:{}", https.port());
    google
        .register(
            &[(
                "leadgen-google",
                GOOGLE_SECRET,
                redirect_uri(https.port(), "google"),
            )],
            false,
        )
        .await;
    google
        .login_as("google-sub-pat", "pat@acme.test", true, "Pat")
        .await;
    let b = browser(&dir.path().join("data/tls/dev-cert.pem"), https);
    let res = sign_in(&b, &base, "google").await;
    assert_eq!(res.status(), 303, "the secret from the file works");
    // A refused exchange, whose error path must not print the request either.
    let auth = location(&start(&b, &base, "google").await);
    let auth = with_param(
        &auth,
        "code_challenge",
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
    );
    let back = through_provider(&b, &auth, &format!("{base}/login/sso/google/callback"))
        .await
        .unwrap();
    assert_eq!(b.get(back).send().await.unwrap().status(), 400);

    proc.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).success());
    let logs = format!("{}\n{}", proc.stdout(), proc.stderr.lock().unwrap());
    assert!(
        logs.contains("sso_login") || logs.contains("sso_signup"),
        "{logs}"
    );
    assert!(logs.contains("sso_failed"), "{logs}");
    assert!(
        !logs.contains(GOOGLE_SECRET),
        "the client secret leaked:\n{logs}"
    );
    // Nor its Basic-auth form.
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("leadgen-google:{GOOGLE_SECRET}"));
    assert!(!logs.contains(&basic), "the Basic credentials leaked");
}
