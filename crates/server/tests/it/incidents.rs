//! Incident response: actions recorded on a timeline and taking effect on every instance within
//! a second; alerts routed by severity and repeated while a high one is unacknowledged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TEST_MASTER_KEY, TestApp, TestDb, run_leadgen, server_env};
use crate::orgs::{Api, PASSWORD};

const APP_KEY: &str = "incident test application key, shared by the instances";

fn cli(env: &[(String, String)], args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["incident"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, out, err) = run_leadgen(&all, env);
    let v = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, v, format!("{out}{err}"))
}

/// Polls `probe` every 20 ms until it returns true; how long that took, or `None` after 5 s.
async fn within<F, Fut>(mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if probe().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn status(client: &reqwest::Client, url: &str, token: Option<&str>) -> u16 {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn password_grant(client: &reqwest::Client, app: &TestApp, email: &str) -> (u16, Value) {
    let res = client
        .post(app.https_url("/auth/v1/token?grant_type=password"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn refresh_grant(client: &reqwest::Client, app: &TestApp, token: &str) -> (u16, Value) {
    let res = client
        .post(app.https_url("/auth/v1/token?grant_type=refresh_token"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

fn alerts_matching(
    got: &std::sync::Mutex<Vec<(String, Value)>>,
    kind: &str,
    needle: &str,
) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(k, body)| k == kind && body.to_string().contains(needle))
        .count()
}

#[tokio::test]
async fn incident_actions_reach_every_instance_within_a_second_and_stay_on_record() {
    let db = TestDb::new().await;
    let (hook, alerts) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut waf: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::helpers::workspace_root().join("config/waf-rules.json"))
            .unwrap(),
    )
    .unwrap();
    // The on-call pager hears only of high incidents; the team channel of the others.
    waf["monitoring"]["webhooks"] = json!([
        { "url": format!("{hook}/pager"), "format": "json", "severities": ["high"] },
        { "url": format!("{hook}/slack"), "format": "slack", "severities": ["low", "medium"] },
    ]);
    let waf_path = dir.path().join("waf-rules.json");
    std::fs::write(&waf_path, waf.to_string()).unwrap();
    let extra = [
        (
            "LEADGEN_PERIMETER__WAF_RULES_PATH",
            waf_path.to_str().unwrap(),
        ),
        ("LEADGEN_SECRETS__APP_KEY", APP_KEY),
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        // Instances of one installation share its address (the tokens' issuer).
        ("LEADGEN_AUTH__SITE_URL", "https://leadgen.test"),
    ];
    let clock = Arc::new(leadgen::clock::OffsetClock::default());
    let a = TestApp::spawn_on(db.clone(), &extra, clock.clone()).await;
    let b = TestApp::spawn_on(db.clone(), &extra, clock.clone()).await;
    let mut env = server_env(Some(&db), dir.path());
    env.push(("LEADGEN_SECRETS__APP_KEY".into(), APP_KEY.into()));
    env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));

    // Bad input is refused with the reason, and nothing is recorded.
    let (code, _, out) = cli(&env, &["open", "--severity", "critical", "--summary", "x"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("critical"), "{out}");
    let (code, opened, out) = cli(
        &env,
        &[
            "open",
            "--severity",
            "high",
            "--summary",
            "credential stuffing from 127.0.0.2",
            "--as",
            "alice",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let id = opened["id"].as_i64().unwrap().to_string();
    let (code, v, out) = cli(&env, &["block", &id, "--ip", "127.0.0.2/33"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not an IP address or CIDR"),
        "{out}"
    );
    let (code, v, out) = cli(&env, &["block", &id, "--ip", "127.0.0.2/24"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did you mean 127.0.0.0/24"),
        "{out}"
    );
    let (code, v, out) = cli(&env, &["block", "999999", "--ip", "127.0.0.2"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("incident 999999 does not exist"),
        "{out}"
    );
    let unknown_org = uuid::Uuid::new_v4().to_string();
    let (code, v, out) = cli(&env, &["revoke-sessions", &id, "--org", &unknown_org]);
    assert_eq!(code, 1, "{out}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no organization has the id"),
        "{out}"
    );

    // The high incident pages the on-call webhook only.
    let paged =
        within(|| async { alerts_matching(&alerts, "pager", "credential stuffing") == 1 }).await;
    assert!(paged.is_some(), "{:?}", alerts.lock().unwrap());
    assert_eq!(alerts_matching(&alerts, "slack", "credential stuffing"), 0);

    // Block: the address is refused by the other instance within a second; others are not.
    let attacker_b = b.client_from("127.0.0.2".parse().unwrap());
    let attacker_a = a.client_from("127.0.0.2".parse().unwrap());
    let page = b.https_url("/login");
    assert_eq!(status(&attacker_b, &page, None).await, 200);
    let (code, _, out) = cli(&env, &["block", &id, "--ip", "127.0.0.2", "--for", "10m"]);
    assert_eq!(code, 0, "{out}");
    let took = within(|| async { status(&attacker_b, &page, None).await == 403 }).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "blocked after {took:?}"
    );
    assert_eq!(status(&attacker_a, &a.https_url("/login"), None).await, 403);
    assert_eq!(status(&b.client(), &page, None).await, 200);
    let (code, _, out) = cli(&env, &["unblock", &id, "--ip", "127.0.0.2"]);
    assert_eq!(code, 0, "{out}");
    let took = within(|| async { status(&attacker_b, &page, None).await == 200 }).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "unblocked after {took:?}"
    );

    // Freeze: a valid access token fails on its next request, on the other instance too;
    // signing in and refreshing are refused until the thaw.
    let api = Api::new(&a);
    let email = "incident-user@example.com";
    api.sign_up(email).await;
    let client = a.client();
    let (s, session) = password_grant(&client, &a, email).await;
    assert_eq!(s, 200, "{session}");
    let access = session["access_token"].as_str().unwrap().to_string();
    let refresh = session["refresh_token"].as_str().unwrap().to_string();
    let me = b.https_url("/auth/v1/user");
    let b_client = b.client();
    assert_eq!(status(&b_client, &me, Some(&access)).await, 200);
    let (code, _, out) = cli(&env, &["freeze-auth", &id]);
    assert_eq!(code, 0, "{out}");
    let took = within(|| async { status(&b_client, &me, Some(&access)).await == 401 }).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "frozen after {took:?}"
    );
    let (s, v) = password_grant(&client, &a, email).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error_code"], "auth_frozen", "{v}");
    let (s, v) = refresh_grant(&client, &a, &refresh).await;
    assert_eq!(s, 503, "{v}");
    let (code, _, out) = cli(&env, &["thaw-auth", &id]);
    assert_eq!(code, 0, "{out}");
    let took = within(|| async { status(&b_client, &me, Some(&access)).await == 200 }).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "thawed after {took:?}"
    );

    // Rotating the JWT keys revokes the earlier ones: the old token fails everywhere within a
    // second, while the session lives on through its refresh token.
    let (code, rotated, out) = cli(&env, &["rotate", &id, "--jwt"]);
    assert_eq!(code, 0, "{out}");
    assert!(rotated["kid"].is_string(), "{out}");
    let took = within(|| async { status(&b_client, &me, Some(&access)).await == 401 }).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(1)),
        "revoked after {took:?}"
    );
    let (s, renewed) = refresh_grant(&client, &a, &refresh).await;
    assert_eq!(s, 200, "{renewed}");
    let access = renewed["access_token"].as_str().unwrap().to_string();
    assert_eq!(status(&b_client, &me, Some(&access)).await, 200);

    // Revoking the user's sessions ends the new token too.
    let (code, v, out) = cli(&env, &["revoke-sessions", &id, "--user", email]);
    assert_eq!(code, 0, "{out}");
    // Two: the session signing up opened, and the one signed in with the password.
    assert_eq!(v["revoked"], 2, "{out}");
    assert_eq!(status(&b_client, &me, Some(&access)).await, 401);

    // Unacknowledged, the high incident pages again after 15 minutes; acknowledged, it stops.
    clock.advance(16 * 60);
    let again = within(|| async { alerts_matching(&alerts, "pager", "reminder 1") == 1 }).await;
    assert!(again.is_some(), "{:?}", alerts.lock().unwrap());
    let (code, _, out) = cli(&env, &["ack", &id]);
    assert_eq!(code, 0, "{out}");
    clock.advance(16 * 60);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alerts_matching(&alerts, "pager", "reminder 2"), 0);

    // A medium incident goes to the team channel, not the pager.
    let (code, _, out) = cli(
        &env,
        &[
            "open",
            "--severity",
            "medium",
            "--summary",
            "odd export volume",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let posted =
        within(|| async { alerts_matching(&alerts, "slack", "odd export volume") == 1 }).await;
    assert!(posted.is_some(), "{:?}", alerts.lock().unwrap());
    assert_eq!(alerts_matching(&alerts, "pager", "odd export volume"), 0);

    // The timeline holds every action in order, and so does the platform's audit chain.
    let (code, _, out) = cli(
        &env,
        &[
            "resolve",
            &id,
            "--summary",
            "addresses blocked, keys rolled",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, v, out) = cli(&env, &["block", &id, "--ip", "127.0.0.3"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        v["error"].as_str().unwrap().contains("is resolved"),
        "{out}"
    );
    let (code, list, out) = cli(&env, &["list", "--all"]);
    assert_eq!(code, 0, "{out}");
    let incident = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"].as_i64().unwrap().to_string() == id)
        .unwrap();
    let actions: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "open",
            "block",
            "unblock",
            "freeze-auth",
            "thaw-auth",
            "rotate",
            "revoke-sessions",
            "acknowledge",
            "resolve"
        ],
        "{out}"
    );
    assert_eq!(incident["timeline"][0]["actor"], "alice");
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let pool = sqlx::PgPool::connect(&db.migrate_url()).await.unwrap();
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT action FROM app.platform_audit WHERE target = $1 ORDER BY seq")
            .bind(format!("incident:{id}"))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited.len(), actions.len(), "{audited:?}");
    assert!(
        audited.iter().all(|a| a.starts_with("incident.")),
        "{audited:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// The operator console's session cookie after signing in over plain HTTP forms (the CSRF
/// cookie and token from the sign-in page), or the status of a refused sign-in.
async fn operator_sign_in(
    client: &reqwest::Client,
    app: &TestApp,
    email: &str,
    password: &str,
    code: &str,
) -> Result<String, u16> {
    let page = client
        .get(app.https_url("/operator/login"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-csrf="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let res = client
        .post(app.https_url("/operator/login"))
        .header("cookie", format!("__Host-csrf={csrf_cookie}"))
        .header("origin", app.https_url("").trim_end_matches('/'))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", email),
            ("password", password),
            ("code", code),
        ])
        .send()
        .await
        .unwrap();
    if res.status() != 303 {
        return Err(res.status().as_u16());
    }
    Ok(res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("__Host-lg_operator="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap())
}

fn code_now(secret: &str, offset_steps: i64) -> String {
    use leadgen_crypto::totp;
    let secret = totp::parse_base32(secret).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    totp::code_at_step(&secret, totp::step_at(now) + offset_steps)
}

#[tokio::test]
async fn operators_stay_signed_in_through_a_freeze_and_a_jwt_rotation_and_only_from_allowed_addresses()
 {
    let app = TestApp::spawn().await;
    let env = server_env(Some(app.db()), app.data_dir.path());
    let password = "granite comet whistles over nine bays";
    let (code, added, out) = crate::e2e::add_operator(&env, "ops@leadgen.test", password, &[]);
    assert_eq!(code, 0, "{out}");
    let secret = added["secret_base32"].as_str().unwrap().to_string();
    let (code, fenced, out) = crate::e2e::add_operator(
        &env,
        "fenced@leadgen.test",
        password,
        &["--allow-ip", "127.0.0.5"],
    );
    assert_eq!(code, 0, "{out}");
    let fenced_secret = fenced["secret_base32"].as_str().unwrap().to_string();
    let client = app.client();

    // Wrong password, wrong code: 401, and no cookie.
    assert_eq!(
        operator_sign_in(
            &client,
            &app,
            "ops@leadgen.test",
            "not the password at all",
            &code_now(&secret, 0)
        )
        .await,
        Err(401)
    );
    // Outside the allow-list, the right password and code are refused too; inside, accepted.
    assert_eq!(
        operator_sign_in(
            &client,
            &app,
            "fenced@leadgen.test",
            password,
            &code_now(&fenced_secret, 0)
        )
        .await,
        Err(401)
    );
    let from_allowed = app.client_from("127.0.0.5".parse().unwrap());
    assert!(
        operator_sign_in(
            &from_allowed,
            &app,
            "fenced@leadgen.test",
            password,
            &code_now(&fenced_secret, 1)
        )
        .await
        .is_ok()
    );

    let first = code_now(&secret, 0);
    let session = operator_sign_in(&client, &app, "ops@leadgen.test", password, &first)
        .await
        .unwrap();
    // The same code a second time does not sign in again.
    assert_eq!(
        operator_sign_in(&client, &app, "ops@leadgen.test", password, &first).await,
        Err(401)
    );
    let console = |cookie: String| {
        let client = client.clone();
        let url = app.https_url("/operator");
        async move {
            let res = client
                .get(url)
                .header("cookie", format!("__Host-lg_operator={cookie}"))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(console(session.clone()).await.0, 200);
    // Nothing but a live session opens the console.
    assert_eq!(console("forged".into()).await.0, 303);

    // Members are frozen out and their JWT keys revoked; the operator works on.
    let (code, opened, out) = cli(
        &env,
        &["open", "--severity", "high", "--summary", "token leak"],
    );
    assert_eq!(code, 0, "{out}");
    let id = opened["id"].as_i64().unwrap().to_string();
    for action in [&["freeze-auth", id.as_str()][..], &["rotate", &id, "--jwt"]] {
        let (code, _, out) = cli(&env, action);
        assert_eq!(code, 0, "{out}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, page) = console(session).await;
    assert_eq!(status, 200);
    assert!(page.contains("frozen by an incident"), "{page}");
    assert!(page.contains("token leak"), "{page}");
    app.stop().await;
}
