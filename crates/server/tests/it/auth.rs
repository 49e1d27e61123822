//! Identity through the front door: `/auth/v1` as a Supabase client uses it.

use std::sync::Arc;

use leadgen::clock::OffsetClock;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// A server on its own database whose clock the test moves forward.
async fn spawn_clocked(extra: &[(&str, &str)]) -> (TestApp, Arc<OffsetClock>) {
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(crate::helpers::TestDb::new().await, extra, clock.clone()).await;
    (app, clock)
}

const PASSWORD: &str = "violet tractor hums at dawn";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Signs up `email` with [`PASSWORD`], expecting success.
    async fn sign_up(&self, email: &str) {
        let (status, body) = self
            .post("/signup", json!({ "email": email, "password": PASSWORD }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Signs in and returns the access token.
    async fn access(&self, email: &str, password: &str) -> String {
        let (status, s) = self.login(email, password).await;
        assert_eq!(status, 200, "{s}");
        s["access_token"].as_str().unwrap().to_string()
    }

    fn from_ip(app: &TestApp, ip: [u8; 4]) -> Self {
        Self {
            http: app.client_from(std::net::IpAddr::from(ip)),
            base: app.https_url("/auth/v1"),
        }
    }

    /// Status, body and Retry-After of a password sign-in.
    async fn login_full(&self, email: &str, password: &str) -> (u16, Value, Option<u64>) {
        let res = self
            .http
            .post(format!("{}/token?grant_type=password", self.base))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (status, res.json().await.unwrap_or(Value::Null), retry)
    }

    fn new(app: &TestApp) -> Self {
        Self {
            http: app.client(),
            base: app.https_url("/auth/v1"),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get_user(&self, access: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}/user", self.base))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/token?grant_type=password",
            json!({ "email": email, "password": password }),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.post(
            "/token?grant_type=refresh_token",
            json!({ "refresh_token": token }),
        )
        .await
    }

    async fn logout(&self, access: &str, scope: &str) -> u16 {
        let res = self
            .http
            .post(format!("{}/logout?scope={scope}", self.base))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        res.status().as_u16()
    }
}

/// Signs up, confirms through the mailed token, and returns the session from confirmation.
async fn confirmed_account(app: &TestApp, c: &Client, email: &str) -> Value {
    let (status, user) = c
        .post("/signup", json!({ "email": email, "password": PASSWORD }))
        .await;
    assert_eq!(status, 200, "{user}");
    let mail = app
        .mailbox()
        .into_iter()
        .rev()
        .find(|m| m["to"] == email)
        .expect("confirmation mail");
    let text = mail["text"].as_str().unwrap();
    let token = text
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let (status, session) = c
        .post("/verify", json!({ "type": "signup", "token": token }))
        .await;
    assert_eq!(status, 200, "{session}");
    session
}

#[tokio::test]
async fn signup_confirm_sign_in_refresh_and_sign_out() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    let (status, user) = c
        .post(
            "/signup",
            json!({ "email": "Jane.Doe@Acme.io", "password": PASSWORD, "data": {"name": "Jane"} }),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "jane.doe@acme.io");
    assert!(user["email_confirmed_at"].is_null());
    assert!(
        user.get("access_token").is_none(),
        "no session before the address is confirmed"
    );
    assert_eq!(user["user_metadata"]["name"], "Jane");

    // Not confirmed yet.
    let (status, err) = c.login("jane.doe@acme.io", PASSWORD).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("email_not_confirmed"))
    );

    // The mail carries a single-use token; its hash confirms too (Supabase's verifyOtp).
    let mails = app.mailbox();
    assert_eq!(mails.len(), 1);
    let text = mails[0]["text"].as_str().unwrap();
    assert!(text.contains("/auth/v1/verify?token="), "{text}");
    let hash = text
        .split("token hash for API clients): ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim();
    let (status, session) = c
        .post("/verify", json!({ "type": "signup", "token_hash": hash }))
        .await;
    assert_eq!(status, 200, "{session}");
    assert!(session["user"]["email_confirmed_at"].is_string());
    let (status, again) = c
        .post("/verify", json!({ "type": "signup", "token_hash": hash }))
        .await;
    assert_eq!(
        (status, again["error_code"].as_str()),
        (403, Some("otp_expired")),
        "the token works once"
    );

    let (status, s) = c.login("JANE.DOE@acme.io", PASSWORD).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["token_type"], "bearer");
    assert_eq!(s["expires_in"], 900);
    let access = s["access_token"].as_str().unwrap().to_string();
    let refresh = s["refresh_token"].as_str().unwrap().to_string();
    let (status, me) = c.get_user(&access).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "jane.doe@acme.io");
    assert_eq!(me["aud"], "authenticated");

    let (status, r) = c.refresh(&refresh).await;
    assert_eq!(status, 200, "{r}");
    let refresh2 = r["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh, "refresh tokens rotate");
    assert_eq!(c.get_user(r["access_token"].as_str().unwrap()).await.0, 200);

    // Logout ends the session: its tokens stop working at once.
    assert_eq!(c.logout(&access, "local").await, 204);
    let (status, err) = c.get_user(&access).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("session_not_found"))
    );
    let (status, err) = c.refresh(refresh2).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("refresh_token_already_used"))
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let c = Client::new(&app);
    let (status, _) = c
        .post(
            "/signup",
            json!({ "email": "sam@acme.io", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200);
    let wrong = c.login("sam@acme.io", "not the password at all").await;
    let unknown = c.login("nobody@acme.io", PASSWORD).await;
    let malformed = c.login("not-an-email", PASSWORD).await;
    assert_eq!(wrong.0, 400);
    assert_eq!(
        wrong, unknown,
        "an unknown email must be indistinguishable from a wrong password"
    );
    assert_eq!(wrong, malformed);
    assert_eq!(wrong.1["error_code"], "invalid_credentials");
    assert_eq!(c.login("sam@acme.io", PASSWORD).await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn signup_refuses_weak_passwords_and_bad_input_without_enumeration() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app);
    for (password, why) in [
        ("short", "at least 8"),
        ("password123", "common"),
        (&"x".repeat(80) as &str, "72 bytes"),
    ] {
        let (status, err) = c
            .post(
                "/signup",
                json!({ "email": "kim@acme.io", "password": password }),
            )
            .await;
        assert_eq!(
            (status, err["error_code"].as_str()),
            (422, Some("weak_password")),
            "{password}"
        );
        assert!(err["msg"].as_str().unwrap().contains(why), "{err}");
    }
    let (status, err) = c
        .post(
            "/signup",
            json!({ "email": "kim at acme", "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("validation_failed"))
    );
    let res = app
        .client()
        .post(app.https_url("/auth/v1/signup"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error_code"], "validation_failed");
    assert!(
        app.mailbox().is_empty(),
        "nothing was created by refused sign-ups"
    );

    // Signing up twice with one address looks exactly like a first sign-up.
    let (s1, first) = c
        .post(
            "/signup",
            json!({ "email": "kim@acme.io", "password": PASSWORD }),
        )
        .await;
    let (s2, second) = c
        .post(
            "/signup",
            json!({ "email": "kim@acme.io", "password": "another long passphrase 77" }),
        )
        .await;
    assert_eq!((s1, s2), (200, 200));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&first), keys(&second));
    assert_ne!(
        first["id"], second["id"],
        "no stable id leaks for the existing account"
    );
    // And the existing password was not replaced.
    confirmed_account_check(&app, &c).await;
    app.stop().await;
}

async fn confirmed_account_check(app: &TestApp, c: &Client) {
    let mail = app
        .mailbox()
        .into_iter()
        .find(|m| m["to"] == "kim@acme.io")
        .unwrap();
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
    assert_eq!(
        c.post("/verify", json!({ "type": "signup", "token": token }))
            .await
            .0,
        200
    );
    assert_eq!(c.login("kim@acme.io", PASSWORD).await.0, 200);
    assert_eq!(
        c.login("kim@acme.io", "another long passphrase 77").await.0,
        400
    );
}

#[tokio::test]
async fn refresh_reuse_inside_grace_returns_current_and_after_kills_the_session() {
    let (app, clock) = spawn_clocked(&[]).await;
    let c = Client::new(&app);
    let s = confirmed_account(&app, &c, "tab@acme.io").await;
    let t0 = s["refresh_token"].as_str().unwrap().to_string();

    // Two tabs refresh with the same token at once: both get the same current token.
    let (a, b) = tokio::join!(c.refresh(&t0), c.refresh(&t0));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(
        a.1["refresh_token"], b.1["refresh_token"],
        "both tabs continue with one token"
    );
    let t1 = a.1["refresh_token"].as_str().unwrap().to_string();
    let access = a.1["access_token"].as_str().unwrap().to_string();

    // Later, t1 is used normally; then the long-rotated t0 shows up again: theft or replay.
    let (status, r2) = c.refresh(&t1).await;
    assert_eq!(status, 200);
    clock.advance(11);
    let (status, err) = c.refresh(&t0).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (400, Some("refresh_token_already_used"))
    );
    // The whole session is gone: the newest refresh token and the access token too.
    let (status, _) = c.refresh(r2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(c.get_user(&access).await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn forged_and_expired_access_tokens_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let key = "an application key for tests that is long enough";
    let (app, clock) = spawn_clocked(&[("LEADGEN_SECRETS__APP_KEY", key)]).await;
    let c = Client::new(&app);
    let s = confirmed_account(&app, &c, "forge@acme.io").await;
    let access = s["access_token"].as_str().unwrap().to_string();
    assert_eq!(c.get_user(&access).await.0, 200);

    let parts: Vec<&str> = access.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let enc = |v: &Value| B64.encode(serde_json::to_vec(v).unwrap());
    let hmac = |alg512: bool, secret: &[u8], input: &str| {
        use hmac::Mac;
        if alg512 {
            let mut m = <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            B64.encode(m.finalize().into_bytes())
        } else {
            let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            B64.encode(m.finalize().into_bytes())
        }
    };
    let mut admin = claims.clone();
    admin["role"] = "service_role".into();
    let forged = [
        (
            "alg none",
            format!("{}.{}.", enc(&json!({"alg":"none","kid":kid})), enc(&admin)),
        ),
        ("HS512", {
            let input = format!("{}.{}", enc(&json!({"alg":"HS512","kid":kid})), enc(&admin));
            let sig = hmac(true, key.as_bytes(), &input);
            format!("{input}.{sig}")
        }),
        ("RS256 with the certificate as HMAC secret", {
            let input = format!("{}.{}", enc(&json!({"alg":"RS256","kid":kid})), enc(&admin));
            let sig = hmac(false, &std::fs::read(app.cert_path()).unwrap(), &input);
            format!("{input}.{sig}")
        }),
        (
            "tampered claims",
            format!("{}.{}.{}", parts[0], enc(&admin), parts[2]),
        ),
        ("unknown kid", {
            let input = format!(
                "{}.{}",
                enc(&json!({"alg":"HS256","kid":"0000000000000000"})),
                enc(&claims)
            );
            let sig = hmac(false, key.as_bytes(), &input);
            format!("{input}.{sig}")
        }),
    ];
    for (what, token) in &forged {
        let (status, err) = c.get_user(token).await;
        assert_eq!(
            (status, err["error_code"].as_str()),
            (401, Some("bad_jwt")),
            "{what}: {err}"
        );
    }

    // Correctly signed by the server's own key, but for another issuer or audience.
    let config = leadgen::config::Config::load(&leadgen::config::Sources {
        env: vec![
            ("LEADGEN_SECRETS__APP_KEY".into(), key.into()),
            (
                "LEADGEN_AUTH__SITE_URL".into(),
                "https://elsewhere.example".into(),
            ),
        ],
        ..Default::default()
    })
    .unwrap();
    let keys = leadgen::auth::AuthKeys::new(&secrecy::SecretString::from(key), &config).unwrap();
    let mut other_iss = claims.clone();
    other_iss["iss"] = "https://elsewhere.example/auth/v1".into();
    let mut other_aud = claims.clone();
    other_aud["aud"] = "service_role".into();
    for (what, c2) in [("issuer", other_iss), ("audience", other_aud)] {
        let token = leadgen_crypto::jwt::sign(&keys.ring(), &c2).unwrap();
        assert_eq!(c.get_user(&token).await.0, 401, "wrong {what}");
    }
    // The genuine token, once expired.
    clock.advance(16 * 60);
    let (status, err) = c.get_user(&access).await;
    assert_eq!((status, err["error_code"].as_str()), (401, Some("bad_jwt")));
    assert!(err["msg"].as_str().unwrap().contains("expired"), "{err}");
    let res = app
        .client()
        .get(app.https_url("/auth/v1/user"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no token at all");
    assert!(res.headers().contains_key("www-authenticate"));
    app.stop().await;
}

#[tokio::test]
async fn revoked_session_is_refused_by_a_second_instance() {
    let key = "shared application key for both instances, long enough";
    let db = crate::helpers::TestDb::new().await;
    let clock: leadgen::clock::SharedClock = Arc::new(leadgen::clock::SystemClock);
    // Instances of one deployment share its key and its public URL (the tokens' issuer).
    let extra = [
        ("LEADGEN_SECRETS__APP_KEY", key),
        ("LEADGEN_AUTH__SITE_URL", "https://leadgen.test"),
    ];
    let a = TestApp::spawn_on(db.clone(), &extra, clock.clone()).await;
    let b = TestApp::spawn_on(db, &extra, clock).await;
    let ca = Client::new(&a);
    let cb = Client::new(&b);
    let s = confirmed_account(&a, &ca, "two@acme.io").await;
    let access = s["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        cb.get_user(&access).await.0,
        200,
        "instance B accepts A's token"
    );
    // Sign out everywhere on A, then use the token on B right away.
    assert_eq!(ca.logout(&access, "global").await, 204);
    let started = std::time::Instant::now();
    let (status, err) = cb.get_user(&access).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("session_not_found"))
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn logout_scopes_end_the_right_sessions() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let c = Client::new(&app);
    c.sign_up("multi@acme.io").await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (_, s) = c.login("multi@acme.io", PASSWORD).await;
        tokens.push(s["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(c.logout(&tokens[0], "others").await, 204);
    assert_eq!(
        c.get_user(&tokens[0]).await.0,
        200,
        "the caller's session stays"
    );
    assert_eq!(c.get_user(&tokens[1]).await.0, 401);
    assert_eq!(c.get_user(&tokens[2]).await.0, 401);
    assert_eq!(c.logout(&tokens[0], "everything").await, 400);
    assert_eq!(c.logout(&tokens[0], "global").await, 204);
    assert_eq!(c.get_user(&tokens[0]).await.0, 401);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_without_locking_the_owner_out() {
    let (app, clock) =
        spawn_clocked(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let owner = Client::from_ip(&app, [127, 0, 0, 3]);
    owner.sign_up("victim@acme.io").await;
    let attacker = Client::from_ip(&app, [127, 0, 0, 2]);

    for _ in 0..5 {
        let (status, err, _) = attacker
            .login_full("victim@acme.io", "guess guess guess")
            .await;
        assert_eq!(
            (status, err["error_code"].as_str()),
            (400, Some("invalid_credentials"))
        );
    }
    // The sixth try waits, even with the right password.
    let (status, err, retry) = attacker.login_full("victim@acme.io", PASSWORD).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (429, Some("over_request_rate_limit"))
    );
    assert_eq!(retry, Some(1));
    // The owner, elsewhere, is not affected.
    assert_eq!(owner.login_full("victim@acme.io", PASSWORD).await.0, 200);

    // Each further failure doubles the wait.
    clock.advance(2);
    assert_eq!(
        attacker.login_full("victim@acme.io", "guess again").await.0,
        400
    );
    let (status, _, retry) = attacker.login_full("victim@acme.io", PASSWORD).await;
    assert_eq!((status, retry), (429, Some(2)));
    clock.advance(3);
    assert_eq!(
        attacker.login_full("victim@acme.io", "and again").await.0,
        400
    );
    assert_eq!(
        attacker.login_full("victim@acme.io", PASSWORD).await.2,
        Some(4)
    );

    // An address nobody has is throttled exactly the same way: no account enumeration.
    let prober = Client::from_ip(&app, [127, 0, 0, 4]);
    for _ in 0..5 {
        assert_eq!(
            prober
                .login_full("nobody@acme.io", "guess guess guess")
                .await
                .0,
            400
        );
    }
    let (status, _, retry) = prober
        .login_full("nobody@acme.io", "guess guess guess")
        .await;
    assert_eq!((status, retry), (429, Some(1)));

    // Failures spread over many addresses lock the account, but never for more than a minute.
    clock.advance(3600);
    for i in 0..40u8 {
        let c = Client::from_ip(&app, [127, 0, 1, i + 1]);
        let (status, _, retry) = c.login_full("victim@acme.io", "distributed guess").await;
        assert!(status == 400 || status == 429, "{status}");
        if let Some(r) = retry {
            assert!(r <= 60, "an account lock must stay short, got {r}s");
        }
    }
    let (status, _, retry) = owner.login_full("victim@acme.io", PASSWORD).await;
    assert_eq!(status, 429, "the account is under attack");
    assert!(retry.unwrap() <= 60);
    clock.advance(61);
    assert_eq!(
        owner.login_full("victim@acme.io", PASSWORD).await.0,
        200,
        "the owner gets in after at most a minute"
    );
    app.stop().await;
}

/// The `aal` claim of an access token (read without verifying, as a client would).
fn aal_of(access: &str) -> String {
    use base64::Engine;
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["aal"].as_str().unwrap().to_string()
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        access: &str,
        body: Value,
    ) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn totp_raises_the_session_to_aal2_and_each_code_works_once() {
    use leadgen::clock::Clock;
    use leadgen_crypto::totp;
    use reqwest::Method;
    let (app, clock) = spawn_clocked(&[]).await;
    let c = Client::new(&app);
    let s = confirmed_account(&app, &c, "mfa@acme.io").await;
    let access = s["access_token"].as_str().unwrap().to_string();
    assert_eq!(aal_of(&access), "aal1");

    let (status, f) = c
        .call(
            Method::POST,
            "/factors",
            &access,
            json!({ "factor_type": "totp", "friendly_name": "phone" }),
        )
        .await;
    assert_eq!(status, 200, "{f}");
    assert!(
        f["totp"]["qr_code"].as_str().unwrap().starts_with("<?xml")
            || f["totp"]["qr_code"].as_str().unwrap().contains("<svg")
    );
    assert!(
        f["totp"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/LeadGen:mfa%40acme.io")
            || f["totp"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/LeadGen:mfa@acme.io")
    );
    let factor = f["id"].as_str().unwrap().to_string();
    let secret = totp::parse_base32(f["totp"]["secret"].as_str().unwrap()).unwrap();
    // The secret is sealed at rest: the stored bytes are not the secret.
    let su = app_superuser(&app).await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM app.mfa_factors")
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));

    let code_now = || totp::code_at_step(&secret, totp::step_at(clock.now().unix_timestamp()));
    let challenge = |access: String| {
        let c = &c;
        let factor = factor.clone();
        async move {
            c.call(
                Method::POST,
                &format!("/factors/{factor}/challenge"),
                &access,
                json!({}),
            )
            .await
            .1["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };

    // A wrong code fails, and locks the factor for the rest of the time step. Start early in a
    // step, so both tries below fall in the same one.
    let into_step = clock.now().unix_timestamp().rem_euclid(30);
    if into_step > 20 {
        clock.advance(31 - into_step);
    }
    let ch = challenge(access.clone()).await;
    let wrong = if code_now() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, err) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/verify"),
            &access,
            json!({ "challenge_id": ch, "code": wrong }),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (422, Some("mfa_verification_failed"))
    );
    let (status, err) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/verify"),
            &access,
            json!({ "challenge_id": ch, "code": code_now() }),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (429, Some("over_request_rate_limit")),
        "locked until the step ends"
    );

    clock.advance(30);
    let ch = challenge(access.clone()).await;
    let code = code_now();
    let (status, s2) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/verify"),
            &access,
            json!({ "challenge_id": ch, "code": code }),
        )
        .await;
    assert_eq!(status, 200, "{s2}");
    let access2 = s2["access_token"].as_str().unwrap().to_string();
    assert_eq!(aal_of(&access2), "aal2");
    assert_eq!(s2["user"]["factors"][0]["status"], "verified");

    // The same code again (replay) is refused, on a fresh challenge.
    let ch = challenge(access2.clone()).await;
    let (status, _) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/verify"),
            &access2,
            json!({ "challenge_id": ch, "code": code }),
        )
        .await;
    assert_eq!(status, 422, "a TOTP code works once");

    // Refreshing keeps the level.
    let (status, r) = c.refresh(s2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(aal_of(r["access_token"].as_str().unwrap()), "aal2");

    // Removing a factor needs aal2: a fresh password session (aal1) may not.
    let (_, fresh) = c.login("mfa@acme.io", PASSWORD).await;
    let aal1 = fresh["access_token"].as_str().unwrap();
    assert_eq!(aal_of(aal1), "aal1");
    let (status, err) = c
        .call(
            Method::DELETE,
            &format!("/factors/{factor}"),
            aal1,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (403, Some("insufficient_aal"))
    );
    let (status, _) = c
        .call(
            Method::DELETE,
            &format!("/factors/{factor}"),
            r["access_token"].as_str().unwrap(),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

async fn app_superuser(app: &TestApp) -> sqlx::PgPool {
    app.db().superuser_pool().await
}

/// Waits for the background mailer to deliver a message to `to` whose subject contains `subject`.
async fn wait_for_mail(app: &TestApp, to: &str, subject: &str) -> Value {
    for _ in 0..100 {
        if let Some(m) = app
            .mailbox()
            .into_iter()
            .rev()
            .find(|m| m["to"] == to && m["subject"].as_str().unwrap().contains(subject))
        {
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {subject:?} mail for {to}");
}

fn link_token(mail: &Value) -> String {
    mail["text"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn password_reset_and_change_end_other_sessions() {
    use reqwest::Method;
    let (app, clock) =
        spawn_clocked(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let c = Client::new(&app);
    c.sign_up("reset@acme.io").await;
    let a = c.access("reset@acme.io", PASSWORD).await;
    let b = c.access("reset@acme.io", PASSWORD).await;

    // Same answer for an address with and without an account.
    let known = c
        .post("/recover", json!({ "email": "reset@acme.io" }))
        .await;
    let unknown = c
        .post("/recover", json!({ "email": "ghost@acme.io" }))
        .await;
    assert_eq!(known, (200, json!({})));
    assert_eq!(known, unknown);
    let mail = wait_for_mail(&app, "reset@acme.io", "Reset").await;
    assert!(app.mailbox().iter().all(|m| m["to"] != "ghost@acme.io"));

    // The browser link signs the browser in with cookies (never a token in a URL), once.
    let token = link_token(&mail);
    let res = app
        .client()
        .get(app.https_url(&format!("/auth/v1/verify?token={token}&type=recovery")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account?reset=1");
    let recovered = set_cookies(&res)
        .into_iter()
        .find_map(|c| c.strip_prefix("__Host-lg-access=").map(str::to_string))
        .expect("access cookie");
    let (status, err) = c
        .post("/verify", json!({ "type": "recovery", "token": token }))
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (403, Some("otp_expired")),
        "reset links work once"
    );

    // From the reset session, a new password needs no old one, and ends every other session.
    let new_password = "copper lantern drifts eastward 9";
    let (status, _) = c
        .call(
            Method::PUT,
            "/user",
            &recovered,
            json!({ "password": "password123" }),
        )
        .await;
    assert_eq!(status, 422, "the policy applies to new passwords too");
    let (status, user) = c
        .call(
            Method::PUT,
            "/user",
            &recovered,
            json!({ "password": new_password }),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(c.get_user(&a).await.0, 401);
    assert_eq!(c.get_user(&b).await.0, 401);
    assert_eq!(
        c.get_user(&recovered).await.0,
        200,
        "the session that changed it stays"
    );
    assert_eq!(c.login("reset@acme.io", PASSWORD).await.0, 400);
    let fresh = c.access("reset@acme.io", new_password).await;

    // An ordinary session must prove the current password.
    let third = "quiet harbor owls 314 gleam";
    let (status, err) = c
        .call(Method::PUT, "/user", &fresh, json!({ "password": third }))
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (401, Some("reauthentication_needed"))
    );
    let (status, _) = c
        .call(
            Method::PUT,
            "/user",
            &fresh,
            json!({ "password": third, "current_password": "wrong wrong wrong" }),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = c.call(Method::PUT, "/user", &fresh, json!({ "password": third, "current_password": new_password, "data": {"title": "VP Sales"} })).await;
    assert_eq!(status, 200);
    assert_eq!(
        c.get_user(&fresh).await.1["user_metadata"]["title"],
        "VP Sales"
    );
    assert_eq!(c.login("reset@acme.io", third).await.0, 200);

    // Reset links expire.
    assert_eq!(
        c.post("/recover", json!({ "email": "reset@acme.io" }))
            .await
            .0,
        200
    );
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = app
            .mailbox()
            .into_iter()
            .filter(|m| m["to"] == "reset@acme.io")
            .collect();
        if mails.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(mails.len(), 2);
    clock.advance(3601);
    let (status, _) = c
        .post(
            "/verify",
            json!({ "type": "recovery", "token": link_token(&mails[1]) }),
        )
        .await;
    assert_eq!(status, 403, "an hour-old reset link is refused");
    app.stop().await;
}

fn kid_of(access: &str) -> String {
    use base64::Engine;
    let header = access.split('.').next().unwrap();
    let h: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    h["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rotated_jwt_key_signs_new_tokens_and_old_tokens_stay_valid_everywhere() {
    let key = "application key shared by the instances of this test";
    let db = crate::helpers::TestDb::new().await;
    let clock: leadgen::clock::SharedClock = Arc::new(leadgen::clock::SystemClock);
    let extra = [
        ("LEADGEN_SECRETS__APP_KEY", key),
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        ("LEADGEN_AUTH__SITE_URL", "https://leadgen.test"),
    ];
    let a = TestApp::spawn_on(db.clone(), &extra, clock.clone()).await;
    let ca = Client::new(&a);
    ca.sign_up("keys@acme.io").await;
    let old = ca.access("keys@acme.io", PASSWORD).await;

    // The operator rotates with the command line, against the same database.
    let (code, out, err) = crate::helpers::run_leadgen(
        &["keys", "rotate-jwt", "--json"],
        &[
            ("DATABASE_URL".into(), db.app_url()),
            ("LEADGEN_SECRETS__APP_KEY".into(), key.into()),
            (
                "LEADGEN_DATA_DIR".into(),
                a.data_dir.path().display().to_string(),
            ),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let kid = serde_json::from_str::<Value>(out.trim()).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(kid, kid_of(&old));

    // An instance started now signs with the new key and still accepts the old token.
    let b = TestApp::spawn_on(db, &extra, clock).await;
    let cb = Client::new(&b);
    let new = cb.access("keys@acme.io", PASSWORD).await;
    assert_eq!(kid_of(&new), kid);
    assert_eq!(
        cb.get_user(&old).await.0,
        200,
        "tokens signed before the rotation stay valid"
    );
    // The first instance has never seen the new key: it reloads on the unknown kid.
    assert_eq!(
        ca.get_user(&new).await.0,
        200,
        "a new-key token is accepted everywhere at once"
    );
    // A made-up kid still fails after the reload.
    let parts: Vec<&str> = new.split('.').collect();
    let forged_header = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"HS256","typ":"JWT","kid":"ffffffffffffffff"}"#)
    };
    assert_eq!(
        ca.get_user(&format!("{forged_header}.{}.{}", parts[1], parts[2]))
            .await
            .0,
        401
    );
    a.stop().await;
    b.stop().await;
}

/// `name=value` of each `Set-Cookie` in a response.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn browser_sessions_use_host_cookies_renew_silently_and_need_csrf_tokens() {
    let (app, clock) =
        spawn_clocked(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let c = Client::new(&app);
    c.sign_up("cookie@acme.io").await;
    let http = app.client();
    let origin = format!("https://localhost:{}", app.bound.https.port());

    // The sign-in page hands out a CSRF cookie and the matching form token.
    let page = http.get(app.https_url("/login")).send().await.unwrap();
    let csrf_cookie = set_cookies(&page)
        .into_iter()
        .find(|c| c.starts_with("__Host-csrf="))
        .unwrap();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let form = |t: &str| {
        format!(
            "csrf_token={t}&email=cookie%40acme.io&password={}",
            PASSWORD.replace(' ', "+")
        )
    };
    let post = |body: String| {
        http.post(app.https_url("/login"))
            .header("origin", &origin)
            .header("cookie", &csrf_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(
        post(form("0".repeat(64).as_str())).await.unwrap().status(),
        403,
        "a wrong CSRF token is refused"
    );
    let res = post(form(&token)).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/account");
    let raw: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    for c in &raw {
        assert!(
            c.contains("Secure")
                && c.contains("HttpOnly")
                && c.contains("SameSite=Lax")
                && c.contains("Path=/"),
            "{c}"
        );
    }
    let cookies = set_cookies(&res);
    assert!(cookies.iter().any(|c| c.starts_with("__Host-lg-access=")));
    assert!(cookies.iter().any(|c| c.starts_with("__Host-lg-refresh=")));
    let jar = cookies.join("; ");

    let account = http
        .get(app.https_url("/account"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200);
    assert!(account.text().await.unwrap().contains("cookie@acme.io"));

    // Sixteen minutes later the access cookie has expired; the refresh cookie renews it.
    clock.advance(16 * 60);
    let renewed = http
        .get(app.https_url("/account"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), 200);
    let fresh = set_cookies(&renewed);
    assert!(
        fresh.iter().any(|c| c.starts_with("__Host-lg-access=")),
        "a new access cookie: {fresh:?}"
    );
    assert!(
        fresh.iter().any(|c| c.starts_with("__Host-lg-refresh=")),
        "the refresh token rotated"
    );

    // The account page's password form: a wrong current password is refused, the right one works.
    let renewed_jar = fresh.join("; ");
    let page = http
        .get(app.https_url("/account"))
        .header("cookie", &renewed_jar)
        .send()
        .await
        .unwrap();
    let csrf2 = set_cookies(&page)
        .into_iter()
        .find(|c| c.starts_with("__Host-csrf="))
        .unwrap_or(csrf_cookie.clone());
    let html = page.text().await.unwrap();
    assert!(
        html.contains("name=\"current_password\""),
        "an ordinary session must give the current password"
    );
    let form_token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let change = |current: &str| {
        http.post(app.https_url("/account/password"))
            .header("origin", &origin)
            .header("cookie", format!("{renewed_jar}; {csrf2}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf_token={form_token}&current_password={}&new_password=granite+meadow+whistles+at+noon",
                current.replace(' ', "+")
            ))
            .send()
    };
    let refused = change("not my password").await.unwrap();
    assert_eq!(refused.status(), 400, "the form comes back with the error");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("requires the current password")
    );
    let ok = change(PASSWORD).await.unwrap();
    assert_eq!(
        (
            ok.status().as_u16(),
            ok.headers()["location"].to_str().unwrap()
        ),
        (303, "/account?changed=1")
    );
    assert_eq!(
        c.login("cookie@acme.io", "granite meadow whistles at noon")
            .await
            .0,
        200
    );

    // Without cookies, the account page sends the browser to sign in.
    let anon = http.get(app.https_url("/account")).send().await.unwrap();
    assert_eq!(
        (
            anon.status().as_u16(),
            anon.headers()["location"].to_str().unwrap()
        ),
        (303, "/login")
    );
    app.stop().await;
}

#[tokio::test]
async fn recovery_codes_stand_in_for_the_authenticator_once_each() {
    use leadgen::clock::Clock;
    use leadgen_crypto::totp;
    use reqwest::Method;
    let (app, clock) =
        spawn_clocked(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let c = Client::new(&app);
    c.sign_up("codes@acme.io").await;
    let aal1 = c.access("codes@acme.io", PASSWORD).await;

    // Not without an authenticator, and not at aal1.
    let (status, err) = c
        .call(Method::POST, "/factors/recovery-codes", &aal1, json!({}))
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (403, Some("insufficient_aal"))
    );

    let (_, f) = c
        .call(
            Method::POST,
            "/factors",
            &aal1,
            json!({ "factor_type": "totp" }),
        )
        .await;
    let factor = f["id"].as_str().unwrap().to_string();
    let secret = totp::parse_base32(f["totp"]["secret"].as_str().unwrap()).unwrap();
    let (_, ch) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/challenge"),
            &aal1,
            json!({}),
        )
        .await;
    let code = totp::code_at_step(&secret, totp::step_at(clock.now().unix_timestamp()));
    let (status, s) = c
        .call(
            Method::POST,
            &format!("/factors/{factor}/verify"),
            &aal1,
            json!({ "challenge_id": ch["id"], "code": code }),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    let aal2 = s["access_token"].as_str().unwrap().to_string();

    let (status, set) = c
        .call(Method::POST, "/factors/recovery-codes", &aal2, json!({}))
        .await;
    assert_eq!(status, 200, "{set}");
    let codes: Vec<String> = set["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    let (status, err) = c
        .call(Method::POST, "/factors/recovery-codes", &aal2, json!({}))
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (422, Some("mfa_verified_factor_exists"))
    );
    // Only hashes are stored.
    let su = app.db().superuser_pool().await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT code_hash FROM app.recovery_codes")
        .fetch_all(&su)
        .await
        .unwrap();
    assert_eq!(stored.len(), 10);
    assert!(
        stored
            .iter()
            .all(|h| !codes.iter().any(|c| h.as_slice() == c.as_bytes()))
    );

    // A new password session (aal1) reaches aal2 with one code, as typed by a person.
    let other = c.access("codes@acme.io", PASSWORD).await;
    let typed = format!("{}-{}", codes[3][..8].to_uppercase(), &codes[3][8..]);
    let (status, s2) = c
        .call(
            Method::POST,
            "/factors/recovery-codes/verify",
            &other,
            json!({ "code": typed }),
        )
        .await;
    assert_eq!(status, 200, "{s2}");
    assert_eq!(aal_of(s2["access_token"].as_str().unwrap()), "aal2");
    let (status, err) = c
        .call(
            Method::POST,
            "/factors/recovery-codes/verify",
            &other,
            json!({ "code": codes[3] }),
        )
        .await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (422, Some("mfa_verification_failed")),
        "each code works once"
    );
    let (_, st) = c
        .call(Method::GET, "/factors/recovery-codes", &aal2, json!(null))
        .await;
    assert_eq!(
        (st["total"].as_i64(), st["remaining"].as_i64()),
        (Some(10), Some(9))
    );

    // Guessing is throttled.
    let guesser = c.access("codes@acme.io", PASSWORD).await;
    let mut locked = false;
    for _ in 0..8 {
        let (status, err) = c
            .call(
                Method::POST,
                "/factors/recovery-codes/verify",
                &guesser,
                json!({ "code": "aaaabbbbccccdddd" }),
            )
            .await;
        if status == 429 {
            assert_eq!(err["error_code"], "mfa_recovery_codes_locked");
            locked = true;
            break;
        }
        assert_eq!(status, 422);
    }
    assert!(locked, "wrong recovery codes must be throttled");
    app.stop().await;
}

/// The value of `auth_mfa_failures_total{factor="…"}` on the admin listener (0 before the first).
async fn mfa_failures(app: &TestApp, factor: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("auth_mfa_failures_total{") && l.contains(&format!("factor=\"{factor}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Wrong TOTP codes beyond the first few lock the factor for longer each time (past the 30-second
/// step lock), each is counted in a metric, and a burst of them raises the shipped kind of alert.
#[tokio::test]
async fn repeated_wrong_totp_codes_lock_longer_each_time_and_raise_an_alert() {
    use leadgen::clock::Clock;
    use leadgen_crypto::totp;
    use reqwest::Method;
    let (hook, got) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("waf-rules.json");
    std::fs::write(
        &rules,
        format!(
            r#"{{"ip_reputation": {{"enabled": false}},
                "monitoring": {{
                  "alerts": [{{"name": "second-factor-failures", "event": "mfa_failure", "threshold": 5,
                               "window_secs": 600, "cooldown_secs": 900}}],
                  "webhooks": [{{"url": "{hook}/slack", "format": "slack"}}]
                }},
                "request_rules": {{"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                                  "allowed_content_types": ["application/json"]}},
                "attack_protection": {{}}}}"#
        ),
    )
    .unwrap();
    let (app, clock) =
        spawn_clocked(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", rules.to_str().unwrap())]).await;
    let c = Client::new(&app);
    let s = confirmed_account(&app, &c, "guess@acme.io").await;
    let access = s["access_token"].as_str().unwrap().to_string();
    let (status, f) = c
        .call(
            Method::POST,
            "/factors",
            &access,
            json!({ "factor_type": "totp" }),
        )
        .await;
    assert_eq!(status, 200, "{f}");
    let factor = f["id"].as_str().unwrap().to_string();
    let secret = totp::parse_base32(f["totp"]["secret"].as_str().unwrap()).unwrap();
    let code_now = || totp::code_at_step(&secret, totp::step_at(clock.now().unix_timestamp()));
    let verify = |code: String| {
        let (c, access, factor) = (&c, access.clone(), factor.clone());
        async move {
            let (_, ch) = c
                .call(
                    Method::POST,
                    &format!("/factors/{factor}/challenge"),
                    &access,
                    json!({}),
                )
                .await;
            let ch = ch["id"].as_str().unwrap().to_string();
            c.call(
                Method::POST,
                &format!("/factors/{factor}/verify"),
                &access,
                json!({ "challenge_id": ch, "code": code }),
            )
            .await
        }
    };
    let before = mfa_failures(&app, "totp").await;

    // Start each try at the beginning of a fresh time step, so the step lock is never the reason.
    let next_step = || clock.advance(30 - clock.now().unix_timestamp().rem_euclid(30));
    next_step();
    for i in 0..8 {
        let wrong = if code_now() == "000000" {
            "111111"
        } else {
            "000000"
        };
        let (status, err) = verify(wrong.to_owned()).await;
        assert_eq!(
            (status, err["error_code"].as_str()),
            (422, Some("mfa_verification_failed")),
            "try {i}: {err}"
        );
        next_step();
    }
    // After eight wrong codes the lock (2^5 = 32 s) outlasts the 30-second step: even the right
    // code is refused until it ends.
    let (status, err) = verify(code_now()).await;
    assert_eq!(
        (status, err["error_code"].as_str()),
        (429, Some("over_request_rate_limit")),
        "{err}"
    );
    clock.advance(3);
    let (status, ok) = verify(code_now()).await;
    assert_eq!(status, 200, "the lock ended: {ok}");
    assert_eq!(aal_of(ok["access_token"].as_str().unwrap()), "aal2");

    assert_eq!(mfa_failures(&app, "totp").await - before, 8.0);
    for _ in 0..50 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "one alert for the burst: {got:?}");
    assert!(
        got[0].1["text"]
            .as_str()
            .unwrap()
            .contains("second-factor-failures"),
        "{got:?}"
    );
    app.stop().await;
}
