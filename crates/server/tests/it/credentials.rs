//! One credential path: the edge (rate limits) and the handlers read a request's credential by
//! the same rules, and its access token is verified once per request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::orgs::Api;

/// Every request counted by principal, with room enough to watch the count go down.
const PER_PRINCIPAL: &str = r#"{"rules": [
    {"name": "user", "path": "/auth/v1/user", "methods": ["GET"], "key": "principal",
     "algorithm": "sliding_window", "limit": 50, "period_secs": 3600},
    {"name": "org", "path": "/api/v1/org", "methods": ["GET"], "key": "principal",
     "algorithm": "sliding_window", "limit": 50, "period_secs": 3600}
], "role_multipliers": {"api": 1}}"#;

async fn spawn() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rate-limits.json");
    std::fs::write(&rules, PER_PRINCIPAL).unwrap();
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        (
            "LEADGEN_PERIMETER__RATE_LIMITS_PATH",
            rules.to_str().unwrap(),
        ),
    ])
    .await;
    // The server has read the file; the folder may go.
    drop(dir);
    app
}

/// An admin at aal2 in a new organization, and an API key of it: (token, org, key).
async fn admin_and_key(api: &Api) -> (String, uuid::Uuid, String) {
    let (t, _) = api.sign_up("creds@one-path.test").await;
    let org = api.create_org(&t, "One Path Ltd").await;
    let admin = api.switch(&api.raise_to_aal2(&t).await, org).await;
    let (s, created) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "etl" })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    (admin, org, created["key"].as_str().unwrap().to_string())
}

/// GET `path` with one header; returns (status, RateLimit-Remaining, body).
async fn get(app: &TestApp, path: &str, header: (&str, &str)) -> (u16, Option<u32>, Value) {
    let res = app
        .client()
        .get(app.https_url(path))
        .header("accept", "application/json")
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    let remaining = res
        .headers()
        .get("ratelimit-remaining")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        res.status().as_u16(),
        remaining,
        res.json().await.unwrap_or(Value::Null),
    )
}

/// The same token as `Bearer`, `bearer` and `BEARER`, and the same API key as
/// `Authorization: Bearer`, `bearer` and `X-API-Key`: each time the handler sees the same
/// principal, and the edge counts the request against that principal's one bucket (a request
/// without credentials has a bucket of its own).
#[tokio::test]
async fn every_accepted_form_of_a_credential_is_one_principal_at_the_edge_and_in_the_handler() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (token, org, key) = admin_and_key(&api).await;

    let mut users = Vec::new();
    let mut remaining = Vec::new();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (s, left, body) = get(
            &app,
            "/auth/v1/user",
            ("authorization", &format!("{scheme} {token}")),
        )
        .await;
        assert_eq!(s, 200, "{scheme}: {body}");
        users.push(body["id"].as_str().unwrap().to_string());
        remaining.push(left.unwrap());
    }
    assert!(users.iter().all(|u| *u == users[0]), "{users:?}");
    assert_eq!(remaining, [49, 48, 47], "one bucket for the user");
    let (s, left, _) = get(&app, "/auth/v1/user", ("x-trace", "none")).await;
    assert_eq!(s, 401);
    assert_eq!(left, Some(49), "no credential: the address's own bucket");

    let mut remaining = Vec::new();
    for header in [
        ("authorization", format!("Bearer {key}")),
        ("authorization", format!("bearer {key}")),
        ("x-api-key", key.clone()),
    ] {
        let (s, left, body) = get(&app, "/api/v1/org", (header.0, &header.1)).await;
        assert_eq!(s, 200, "{}: {body}", header.0);
        assert_eq!(body["id"], json!(org), "{body}");
        assert_eq!(body["role"], "api", "the handler sees the key, not a user");
        remaining.push(left.unwrap());
    }
    assert_eq!(remaining, [49, 48, 47], "one bucket for the key");

    // A key's principal is never a user's, whatever the scheme: the user endpoint refuses it.
    let (s, _, body) = get(
        &app,
        "/auth/v1/user",
        ("authorization", &format!("bearer {key}")),
    )
    .await;
    assert_eq!((s, body["error_code"].as_str()), (401, Some("bad_jwt")));
    app.stop().await;
}

async fn verifications(app: &TestApp) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("access_token_verifications_total"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Each request's token is verified once, at the edge, whatever reads it behind (WAF rules,
/// rate limits, the user and member extractors, the page's session renewal).
#[tokio::test]
async fn an_access_token_is_verified_once_per_request() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (token, _, key) = admin_and_key(&api).await;
    let bearer = format!("Bearer {token}");
    let cookie = format!("__Host-lg-access={token}");

    let cases: [(&str, (&str, &str), f64); 6] = [
        // The user extractor.
        ("/auth/v1/user", ("authorization", &bearer), 1.0),
        // `api_security.require_authentication`, the per-principal limit, the member extractor.
        ("/api/v1/org", ("authorization", &bearer), 1.0),
        ("/api/v1/leads?limit=1", ("authorization", &bearer), 1.0),
        // A page: the session renewal layer and the page's extractor.
        ("/leads", ("cookie", &cookie), 1.0),
        // An API key is looked up, not verified as a token; no credential, nothing to verify.
        ("/api/v1/org", ("x-api-key", &key), 0.0),
        ("/healthz", ("x-trace", "none"), 0.0),
    ];
    for (path, header, expected) in cases {
        let before = verifications(&app).await;
        let (s, _, _) = get(&app, path, header).await;
        assert!(s == 200 || s == 401, "{path}: {s}");
        let after = verifications(&app).await;
        assert_eq!(after - before, expected, "{path} with {}", header.0);
    }
    app.stop().await;
}
