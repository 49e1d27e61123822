//! The perimeter across instances: rate limits shared through a real Redis, and what happens
//! when Redis is gone.

use serde_json::{Value, json};

use crate::helpers::TestApp;

fn rules_file(dir: &std::path::Path, json: &str) -> String {
    let path = dir.join("rate-limits.json");
    std::fs::write(&path, json).unwrap();
    path.display().to_string()
}

async fn status(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(
        dir.path(),
        r#"{"rules": [
            {"name": "health", "path": "/healthz", "methods": ["GET"], "key": "ip",
             "algorithm": "sliding_window", "limit": 4, "period_secs": 3600},
            {"name": "ready", "path": "/readyz", "methods": ["GET"], "key": "ip",
             "algorithm": "token_bucket", "limit": 3, "period_secs": 3600}
        ]}"#,
    );
    // A prefix of this test's own, so parallel tests never share counters.
    let prefix = format!("leadgen-test-{}", uuid::Uuid::now_v7());
    let env = [
        ("LEADGEN_PERIMETER__RATE_LIMITS_PATH", rules.as_str()),
        ("LEADGEN_PERIMETER__REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("LEADGEN_PERIMETER__REDIS_PREFIX", prefix.as_str()),
    ];
    let a = TestApp::spawn_with(&env).await;
    let b = TestApp::spawn_with(&env).await;
    let (ca, cb) = (a.client(), b.client());

    // Sliding window: 4 in the hour, whichever instance counts them.
    for (c, app) in [(&ca, &a), (&cb, &b), (&ca, &a), (&cb, &b)] {
        assert_eq!(status(c, app.https_url("/healthz")).await, 200);
    }
    let res = ca.get(a.https_url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 429, "the 5th, on either instance");
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(status(&cb, b.https_url("/healthz")).await, 429);

    // Token bucket: a burst of 3 across both.
    for (c, app) in [(&ca, &a), (&cb, &b), (&cb, &b)] {
        assert_eq!(status(c, app.https_url("/readyz")).await, 200);
    }
    assert_eq!(status(&ca, a.https_url("/readyz")).await, 429);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn without_redis_sign_in_fails_closed_and_the_rest_counts_locally() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(
        dir.path(),
        r#"{"rules": [
            {"name": "sign-in", "path": "/auth/v1/token", "methods": ["POST"], "key": "ip",
             "algorithm": "token_bucket", "limit": 100, "period_secs": 60, "on_backend_failure": "closed"},
            {"name": "health", "path": "/healthz", "methods": ["GET"], "key": "ip",
             "algorithm": "sliding_window", "limit": 2, "period_secs": 3600}
        ]}"#,
    );
    // Nothing listens on port 1.
    let app = TestApp::spawn_with(&[
        ("LEADGEN_PERIMETER__RATE_LIMITS_PATH", rules.as_str()),
        ("LEADGEN_PERIMETER__REDIS_URL", "redis://127.0.0.1:1/0"),
    ])
    .await;
    let c = app.client();
    let res = c
        .post(app.https_url("/auth/v1/token?grant_type=password"))
        .header("accept", "application/json")
        .json(&json!({ "email": "a@b.test", "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "sign-in is not left unlimited");
    assert_eq!(res.headers()["retry-after"], "5");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_unavailable");

    assert_eq!(status(&c, app.https_url("/healthz")).await, 200);
    assert_eq!(status(&c, app.https_url("/healthz")).await, 200);
    assert_eq!(
        status(&c, app.https_url("/healthz")).await,
        429,
        "local limits still hold"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rate_limit_backend_errors_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    app.stop().await;
}
