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
    assert_eq!(
        body["error_code"], "rate_limit_unavailable",
        "GoTrue's shape: {body}"
    );

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

fn waf_file(dir: &std::path::Path) -> String {
    let path = dir.join("waf-rules.json");
    std::fs::write(
        &path,
        r#"{
          "ip_reputation": { "enabled": false },
          "ip_rules": {
            "allow": ["127.0.0.2/32"],
            "block": ["127.0.0.3/32", "203.0.113.0/24"],
            "trusted_proxies": ["127.0.0.4/32"]
          },
          "request_rules": {
            "max_uri_length": 2048,
            "max_header_count": 40,
            "max_header_bytes": 8192,
            "allowed_content_types": ["application/json", "application/x-www-form-urlencoded"],
            "routes": [{ "path": "/auth/v1/signup", "max_body_bytes": 2048 }]
          },
          "attack_protection": {
            "exclusions": [{ "route": "/api/v1/campaigns*", "field": "body.html", "classes": ["xss"] }]
          }
        }"#,
    )
    .unwrap();
    path.display().to_string()
}

/// A WAF refusal in its path's error contract: LeadGen's (`{"error": {"code", "request_id"}}`)
/// or, under `/auth/v1/`, GoTrue's (`{"error_code", "request_id"}`).
async fn blocked(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 403, "{what}");
    let gotrue = res.url().path().starts_with("/auth/v1/");
    let body: Value = res.json().await.unwrap();
    let (code, id) = if gotrue {
        (&body["error_code"], &body["request_id"])
    } else {
        (&body["error"]["code"], &body["error"]["request_id"])
    };
    assert_eq!(code, "waf_blocked", "{what}: {body}");
    assert!(id.as_str().is_some_and(|r| !r.is_empty()), "{what}: {body}");
}

#[tokio::test]
async fn the_waf_blocks_attacks_wherever_they_hide_and_lets_business_text_through() {
    let dir = tempfile::tempdir().unwrap();
    let rules = waf_file(dir.path());
    let app = TestApp::spawn_with(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", rules.as_str())]).await;
    let c = app.client();
    let json_req = |path: &str, body: Value| {
        c.post(app.https_url(path))
            .header("accept", "application/json")
            .json(&body)
    };

    // Attacks in the query, a JSON body, a form body, a header and a cookie.
    let res = c
        .get(app.https_url("/healthz?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    blocked(res, "SQL injection in the query").await;
    let res = json_req(
        "/auth/v1/signup",
        json!({ "email": "a@b.test", "password": "<script>alert(document.cookie)</script>" }),
    )
    .send()
    .await
    .unwrap();
    blocked(res, "XSS in JSON").await;
    let res = c
        .post(app.https_url("/login"))
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=x%40y.test&password=..%2F..%2F..%2Fetc%2Fpasswd")
        .send()
        .await
        .unwrap();
    blocked(res, "traversal in a form").await;
    let res = c
        .get(app.https_url("/healthz"))
        .header("accept", "application/json")
        .header("user-agent", "() { :; }; /bin/bash -c 'cat /etc/passwd'")
        .send()
        .await
        .unwrap();
    blocked(res, "command injection in a header").await;
    let res = c
        .get(app.https_url("/healthz"))
        .header("accept", "application/json")
        .header("cookie", "theme=' OR '1'='1")
        .send()
        .await
        .unwrap();
    blocked(res, "SQL injection in a cookie").await;

    // Ordinary business text passes: names, companies, notes.
    let res = json_req(
        "/auth/v1/signup",
        json!({ "email": "liam.obrien@att.test", "password": "O'Brien & Sons, AT&T; Select Medical, drop by Tuesday",
                "data": { "company": "AT&T", "notes": "Select the best option; update the order -- or delete the old one" } }),
    )
    .send()
    .await
    .unwrap();
    assert_ne!(res.status(), 403, "business text is not an attack");
    // HTML in the excluded campaign field reaches the application (404: no such route yet).
    let res = json_req(
        "/api/v1/campaigns",
        json!({ "name": "Spring", "html": "<p>Hello <b>{{first_name}}</b></p><a href=\"https://acme.test\">Visit</a>" }),
    )
    .send()
    .await
    .unwrap();
    assert_ne!(res.status(), 403, "campaign templates may carry HTML");
    let res = json_req(
        "/api/v1/campaigns",
        json!({ "name": "<script>alert(1)</script>" }),
    )
    .send()
    .await
    .unwrap();
    blocked(res, "only the html field is excluded").await;

    // Request rules.
    let long = format!("/healthz?pad={}", "a".repeat(3000));
    assert_eq!(
        c.get(app.https_url(&long)).send().await.unwrap().status(),
        414
    );
    let mut many = c.get(app.https_url("/healthz"));
    for i in 0..45 {
        many = many.header(format!("x-pad-{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    let res = c
        .post(app.https_url("/auth/v1/signup"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"email\":\"big@b.test\",\"password\":\"{}\"}}",
            "x".repeat(4000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413, "the route's body limit");
    let res = c
        .post(app.https_url("/auth/v1/signup"))
        .header("content-type", "application/xml")
        .body("<signup/>")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = c
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            app.https_url("/"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    // IP rules: a blocked address; a blocked client behind a trusted proxy; an allow-listed
    // address skips attack inspection but still has to authenticate.
    let res = app
        .client_from([127, 0, 0, 3].into())
        .get(app.https_url("/healthz"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    blocked(res, "blocked address").await;
    let proxy = app.client_from([127, 0, 0, 4].into());
    let res = proxy
        .get(app.https_url("/healthz"))
        .header("accept", "application/json")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    blocked(res, "blocked client behind a trusted proxy").await;
    let res = c
        .get(app.https_url("/healthz"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "an untrusted peer cannot claim another address"
    );
    let allowed = app.client_from([127, 0, 0, 2].into());
    let res = allowed
        .get(app.https_url("/auth/v1/user?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "not inspected, but still not authenticated"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("blocked_requests_count"), "{metrics}");
    assert!(metrics.contains("waf_inspection_seconds"), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn a_broken_waf_file_stops_the_server_with_its_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    for (text, want) in [
        (
            r#"{"request_rules": {"max_uri_length": 10, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "request_rules.max_uri_length",
        ),
        (
            r#"{"request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {"sqli": {"mode": "block", "paranoia": 9}}}"#,
            "attack_protection.sqli.paranoia",
        ),
        (
            r#"{"ip_rules": {"block": ["10.0.0.0/99"]}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "ip_rules.block",
        ),
        (
            r#"{"request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": [], "colour": 1}, "attack_protection": {}}"#,
            "request_rules",
        ),
        (
            r#"{"content_security_policy": {"directives": {"default-src": "'self'", "scirpt-src": "'self'", "frame-ancestors": "'none'"}}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "content_security_policy.directives.scirpt-src",
        ),
        (
            r#"{"content_security_policy": {"directives": {"default-src": "'self'", "script-src": "'self' 'unsafe-inline'", "frame-ancestors": "'none'"}}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "content_security_policy.directives",
        ),
        (
            r#"{"content_security_policy": {"directives": {"default-src": "'self'; frame-ancestors *"}}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "content_security_policy.directives.default-src",
        ),
        (
            r#"{"content_security_policy": {"directives": {"default-src": "'self'", "frame-ancestors": "'none'"}, "report_uri": "http://x.example/r"}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "content_security_policy.report_uri",
        ),
        (
            r#"{"security_headers": {"referrer_policy": "unsafe-url"}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "security_headers.referrer_policy",
        ),
        (
            r#"{"rate_limiting": {"ddos": {"requests": 0, "window_secs": 10, "block_secs": 60}}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "rate_limiting.ddos",
        ),
        (
            r#"{"rate_limiting": {"ddos": {"requests": 100, "window": 10, "block_secs": 60}}, "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 8192, "allowed_content_types": []}, "attack_protection": {}}"#,
            "rate_limiting.ddos",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let data = tempfile::tempdir().unwrap();
        let mut env = crate::helpers::server_env(None, data.path());
        env.push((
            "LEADGEN_PERIMETER__WAF_RULES_PATH".into(),
            path.display().to_string(),
        ));
        let (code, out, err) = crate::helpers::run_leadgen(&["configtest", "--json"], &env);
        assert_eq!(code, 2, "{out}{err}");
        assert!(out.contains(want), "{want}: {out}");
    }
}

#[tokio::test]
async fn changed_waf_rules_apply_without_a_restart_and_broken_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    let rules = |mode: &str| {
        format!(
            r#"{{"ip_reputation": {{"enabled": false}},
                "request_rules": {{"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                 "allowed_content_types": ["application/json"]}},
                "attack_protection": {{"sqli": {{"mode": "{mode}", "paranoia": 1}}}}}}"#
        )
    };
    std::fs::write(&path, rules("block")).unwrap();
    let app = TestApp::spawn_with(&[
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap()),
        ("LEADGEN_TLS__RELOAD_INTERVAL_SECS", "1"),
    ])
    .await;
    let c = app.client();
    let attack = app.https_url("/healthz?id=1%20UNION%20SELECT%20password%20FROM%20users");
    let until = |want: u16| {
        let (c, attack) = (c.clone(), attack.clone());
        async move {
            for _ in 0..50 {
                if status(&c, attack.clone()).await == want {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert_eq!(status(&c, attack.clone()).await, 403);
    // A file's mtime has one-second resolution on some filesystems: let a second pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&path, rules("off")).unwrap();
    assert!(until(200).await, "the new rules apply without a restart");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&path, r#"{"request_rules": {"max_uri_length": 1}}"#).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        status(&c, attack.clone()).await,
        200,
        "a broken file is refused and the last good rules stay"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("waf_rules_reloads_total{result=\"refused\"}"),
        "{metrics}"
    );
    std::fs::write(&path, rules("block")).unwrap();
    assert!(until(403).await);
    app.stop().await;
}

#[tokio::test]
async fn an_address_that_keeps_attacking_is_blocked_for_a_while_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    std::fs::write(
        &path,
        r#"{"ip_reputation": {"block_below": 30, "cooloff_secs": 600, "penalties": {"waf_block": 40}},
            "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                              "allowed_content_types": ["application/json"]},
            "attack_protection": {}}"#,
    )
    .unwrap();
    let app =
        TestApp::spawn_with(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap())]).await;
    let attacker = app.client_from([127, 0, 0, 5].into());
    let bystander = app.client_from([127, 0, 0, 6].into());
    let attack = app.https_url("/healthz?id=1%20UNION%20SELECT%20password%20FROM%20users");
    // 100 → 60 → 20: the second block drops the address below 30.
    for _ in 0..2 {
        assert_eq!(status(&attacker, attack.clone()).await, 403);
    }
    let res = attacker
        .get(app.https_url("/healthz"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "even harmless requests are refused during the cool-off"
    );
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((500..=600).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ip_reputation");
    assert_eq!(status(&bystander, app.https_url("/healthz")).await, 200);
    let metrics = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ip_reputation_blocks_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ip_reputation_scores"), "{metrics}");
    app.stop().await;
}

/// A webhook receiver on localhost: records what it gets; the JSON endpoint fails its first call.
pub(crate) async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let got: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let (g, c) = (got.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/{kind}",
        axum::routing::post(
            move |axum::extract::Path(kind): axum::extract::Path<String>,
                  axum::Json(body): axum::Json<Value>| {
                let (g, c) = (g.clone(), c.clone());
                async move {
                    if kind == "json" && c.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    g.lock().unwrap().push((kind, body));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

/// The shipped `waf-rules.json`, its alerts delivered to `{hook}/slack` in Slack's format;
/// returns the file's path in `dir`.
pub(crate) fn shipped_rules_alerting(dir: &std::path::Path, hook: &str) -> std::path::PathBuf {
    let mut waf: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::helpers::workspace_root().join("config/waf-rules.json"))
            .unwrap(),
    )
    .unwrap();
    waf["monitoring"]["webhooks"] =
        serde_json::json!([{ "url": format!("{hook}/slack"), "format": "slack" }]);
    let path = dir.join("waf-rules.json");
    std::fs::write(&path, waf.to_string()).unwrap();
    path
}

#[tokio::test]
async fn a_burst_of_blocked_requests_raises_one_alert_on_each_webhook() {
    let (hook, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"ip_reputation": {{"enabled": false}},
                "monitoring": {{
                  "alerts": [{{"name": "attack-burst", "event": "blocked_request", "threshold": 3,
                               "window_secs": 60, "cooldown_secs": 600}}],
                  "webhooks": [{{"url": "{hook}/slack", "format": "slack"}}, {{"url": "{hook}/json"}}]
                }},
                "request_rules": {{"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                                  "allowed_content_types": ["application/json"]}},
                "attack_protection": {{}}}}"#
        ),
    )
    .unwrap();
    let app =
        TestApp::spawn_with(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap())]).await;
    let c = app.client();
    let attack = app.https_url("/healthz?id=1%20UNION%20SELECT%20password%20FROM%20users");
    for _ in 0..2 {
        assert_eq!(status(&c, attack.clone()).await, 403);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        got.lock().unwrap().is_empty(),
        "below the threshold: no alert"
    );
    for _ in 0..4 {
        assert_eq!(status(&c, attack.clone()).await, 403);
    }
    // The JSON webhook fails once and is retried a second later.
    for _ in 0..60 {
        if got.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        2,
        "one alert per webhook, no duplicates: {got:?}"
    );
    let slack = &got.iter().find(|(k, _)| k == "slack").unwrap().1;
    assert!(
        slack["text"].as_str().unwrap().contains("attack-burst"),
        "{slack}"
    );
    let json = &got.iter().find(|(k, _)| k == "json").unwrap().1;
    assert_eq!(json["alert"], "attack-burst");
    assert_eq!(json["event"], "blocked_request");
    assert!(json["count"].as_u64().unwrap() >= 3);
    app.stop().await;
}

#[tokio::test]
async fn the_api_needs_credentials_before_any_handler_runs() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let get = |token: Option<&'static str>| {
        let mut r = c
            .get(app.https_url("/api/v1/org"))
            .header("accept", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    for token in [None, Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")] {
        let res = get(token).await.unwrap();
        assert_eq!(res.status(), 401, "{token:?}");
        assert!(res.headers().contains_key("www-authenticate"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "authentication_required",
            "{token:?}"
        );
    }
    // A malformed API key is answered precisely by the key check (from its checksum alone).
    let res = get(Some("lg_live_00000000000000000000000000000000_00000000")) // secret-scan: allow (malformed key: its checksum is wrong)
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "api_key_invalid");
    // Pages and the auth API stay reachable without credentials.
    assert_eq!(status(&c, app.https_url("/login")).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn the_csp_and_security_headers_come_from_the_rules_file_and_follow_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    let rules = |img: &str, script: &str| {
        format!(
            r#"{{"ip_reputation": {{"enabled": false}},
                "content_security_policy": {{
                  "directives": {{"default-src": "'self'", "script-src": "{script}", "img-src": "{img}",
                                  "object-src": "'none'", "frame-ancestors": "'none'"}},
                  "report_uri": "/csp-report"}},
                "security_headers": {{"referrer_policy": "no-referrer", "permissions_policy": "camera=()"}},
                "request_rules": {{"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                 "allowed_content_types": ["application/json"]}},
                "attack_protection": {{}}}}"#
        )
    };
    std::fs::write(&path, rules("'self' https://cdn.example.com", "'self'")).unwrap();
    let app = TestApp::spawn_with(&[
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap()),
        ("LEADGEN_TLS__RELOAD_INTERVAL_SECS", "1"),
    ])
    .await;
    let c = app.client();
    let headers = |c: reqwest::Client, url: String| async move {
        let r = c.get(url).send().await.unwrap();
        let h = r.headers().clone();
        let get = |n: &str| {
            h.get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        (
            get("content-security-policy"),
            get("referrer-policy"),
            get("permissions-policy"),
        )
    };
    // Pages, API answers and errors all carry the file's policy.
    for p in ["/healthz", "/login", "/api/v1/leads", "/no-such-page"] {
        let (csp, referrer, permissions) = headers(c.clone(), app.https_url(p)).await;
        assert_eq!(
            csp,
            "default-src 'self'; frame-ancestors 'none'; img-src 'self' https://cdn.example.com; \
             object-src 'none'; script-src 'self'; report-uri /csp-report",
            "{p}"
        );
        assert_eq!(referrer, "no-referrer", "{p}");
        assert_eq!(permissions, "camera=()", "{p}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&path, rules("'self'", "'self'")).unwrap();
    let mut changed = false;
    for _ in 0..50 {
        let (csp, _, _) = headers(c.clone(), app.https_url("/healthz")).await;
        if csp.contains("img-src 'self';") {
            changed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(changed, "a changed policy applies without a restart");
    // A policy that allows inline script is refused; the last good one stays.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&path, rules("*", "'self' 'unsafe-inline'")).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (csp, _, _) = headers(c.clone(), app.https_url("/healthz")).await;
    assert!(
        csp.contains("img-src 'self';") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_address_is_refused_for_a_while_and_raises_an_alert() {
    let (hook, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"ip_reputation": {{"enabled": false}},
                "rate_limiting": {{"ddos": {{"requests": 40, "window_secs": 60, "block_secs": 120}}}},
                "monitoring": {{
                  "alerts": [{{"name": "flood", "event": "ddos_attempt", "threshold": 1, "window_secs": 60, "cooldown_secs": 600}}],
                  "webhooks": [{{"url": "{hook}/slack", "format": "slack"}}]
                }},
                "request_rules": {{"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                                  "allowed_content_types": ["application/json"]}},
                "attack_protection": {{}}}}"#
        ),
    )
    .unwrap();
    let app =
        TestApp::spawn_with(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap())]).await;
    let c = app.client();
    let mut first_refusal = None;
    for i in 0..60 {
        let r = c
            .get(app.https_url("/healthz"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((100..=120).contains(&retry), "{retry}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "flood_blocked", "{body}");
            first_refusal = Some(i);
            break;
        }
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(
        first_refusal,
        Some(40),
        "the 41st request within the window is refused"
    );
    // Still refused, whatever is asked for.
    assert_eq!(status(&c, app.https_url("/login")).await, 429);
    let metrics = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ddos_attempts_total") && l.ends_with(" 1")),
        "{metrics}"
    );
    for _ in 0..60 {
        if !got.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].1["text"].as_str().unwrap().contains("\"flood\""),
        "{got:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn past_the_in_flight_ceiling_requests_are_refused_at_once_and_health_probes_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    std::fs::write(
        &path,
        r#"{"ip_reputation": {"enabled": false},
            "rate_limiting": {"queue": {"max_in_flight": 8, "retry_after_secs": 2}},
            "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                              "allowed_content_types": ["application/json"]},
            "attack_protection": {}}"#,
    )
    .unwrap();
    let app =
        TestApp::spawn_with(&[("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap())]).await;
    let c = app.client();
    // Eight sign-ins whose bodies arrive slowly hold every slot.
    let slow = (0..8)
        .map(|_| {
            let chunks = futures_util::stream::unfold(0u8, |n| async move {
                match n {
                    0 => Some((
                        Ok::<_, std::io::Error>(b"{\"email\": \"a@example.com\",".to_vec()),
                        1,
                    )),
                    1 => {
                        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        Some((Ok(b" \"password\": \"x\"}".to_vec()), 2))
                    }
                    _ => None,
                }
            });
            c.post(app.https_url("/auth/v1/token?grant_type=password"))
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(chunks))
                .send()
        })
        .map(tokio::spawn)
        .collect::<Vec<_>>();
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let r = c
        .get(app.https_url("/login"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(
        status(&c, app.https_url("/healthz")).await,
        200,
        "probes pass"
    );
    for s in slow {
        let r = s.await.unwrap().unwrap();
        assert_ne!(r.status(), 503, "the slow requests themselves were served");
    }
    assert_eq!(
        status(&c, app.https_url("/login")).await,
        200,
        "slots are given back"
    );
    app.stop().await;
}

#[tokio::test]
async fn instances_sharing_redis_share_ip_reputation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("waf-rules.json");
    std::fs::write(
        &path,
        r#"{"ip_reputation": {"block_below": 30, "cooloff_secs": 600, "penalties": {"waf_block": 40}},
            "request_rules": {"max_uri_length": 4096, "max_header_count": 50, "max_header_bytes": 16384,
                              "allowed_content_types": ["application/json"]},
            "attack_protection": {}}"#,
    )
    .unwrap();
    let prefix = format!("leadgen-test-{}", uuid::Uuid::now_v7());
    let env = [
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap()),
        ("LEADGEN_PERIMETER__REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("LEADGEN_PERIMETER__REDIS_PREFIX", prefix.as_str()),
    ];
    let a = TestApp::spawn_with(&env).await;
    let b = TestApp::spawn_with(&env).await;
    let attack =
        |app: &TestApp| app.https_url("/healthz?id=1%20UNION%20SELECT%20password%20FROM%20users");
    let attacker_a = a.client_from([127, 0, 0, 7].into());
    let attacker_b = b.client_from([127, 0, 0, 7].into());
    let bystander_b = b.client_from([127, 0, 0, 8].into());
    // One attack on each instance: 100 → 60 → 20, below 30 only when both count.
    assert_eq!(status(&attacker_a, attack(&a)).await, 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(status(&attacker_b, attack(&b)).await, 403);
    // Both instances refuse the address within a second or two, whatever it asks for.
    let refused = |c: reqwest::Client, url: String| async move {
        for _ in 0..40 {
            let r = c
                .get(url.clone())
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            if r.status() == 403 {
                let body: Value = r.json().await.unwrap();
                return body["error"]["code"] == "ip_reputation";
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        refused(attacker_a.clone(), a.https_url("/healthz")).await,
        "instance A"
    );
    assert!(
        refused(attacker_b.clone(), b.https_url("/healthz")).await,
        "instance B"
    );
    assert_eq!(status(&bystander_b, b.https_url("/healthz")).await, 200);
    a.stop().await;
    b.stop().await;
}

/// The shipped rules treat a lead's fields as data and every query string as untrusted: B2B words
/// that read like SQL, shell or paths are stored, the same text in a query string is refused, and
/// in a lead's fields the attacks that need their grammar (a quote breakout, markup) still are.
#[tokio::test]
async fn lead_fields_are_data_and_query_strings_keep_the_full_inspection() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = crate::orgs::Api::new(&app);
    let (_, t, _) = crate::orgs::org_with_every_role(&app, &api, "datafields").await;
    let user = &t[2];
    let create = |lead: Value| {
        let api = &api;
        async move {
            api.call(reqwest::Method::POST, "/api/v1/leads", user, Some(lead))
                .await
        }
    };
    for (i, (company, title, notes)) in [
        (
            "Exec Systems",
            "Union Organizer",
            "Budget >= $50k; timeline < 3 months",
        ),
        (
            "Script Ventures",
            "Scripting Lead",
            "Asked: where 1=1 in their BI tool?",
        ),
        (
            "Select Medical",
            "Database Administrator (SQL Server)",
            "Uses PowerShell: Get-ChildItem -Recurse | Remove-Item for cleanups",
        ),
        (
            "Drop Zone Inc",
            "Head of Data: SQL Server & /var/log pipelines",
            "Keeps configs in /etc/passwd-style files; cat /etc/hosts",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, v) = create(json!({
            "email": format!("p{i}@datafields.example"),
            "first_name": "Ann", "last_name": "O'Brien",
            "company_name": company, "title": title, "custom": { "notes": notes },
        }))
        .await;
        assert_eq!(s, 201, "{company} / {title} / {notes}: {v}");
    }
    // The same kind of text where a query is built from it keeps every rule.
    let (s, v) = api
        .call(
            reqwest::Method::GET,
            "/api/v1/leads?q=select%20*%20from%20users",
            user,
            None,
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "waf_blocked");
    // Attack grammar in a lead's field is still an attack.
    for title in [
        "x' union select password from users--",
        "<img src=x onerror=alert(document.cookie)>",
        "'; drop table leads;--",
    ] {
        let (s, v) = create(json!({ "email": "z@datafields.example", "title": title })).await;
        assert_eq!(s, 403, "{title}: {v}");
        assert_eq!(v["error"]["code"], "waf_blocked", "{title}");
    }
    app.stop().await;
}

/// A Redis server of the test's own on a free port, so the test can kill it and bring it back.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { port, child }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_redis_outage_opens_the_circuit_alerts_once_and_shared_limits_come_back_alone() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = OwnRedis::start(port);
    let (hook, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let waf = shipped_rules_alerting(dir.path(), &hook);
    let rules = rules_file(
        dir.path(),
        r#"{"rules": [
            {"name": "sign-in", "path": "/auth/v1/token", "methods": ["POST"], "key": "ip",
             "algorithm": "token_bucket", "limit": 1000, "period_secs": 60, "on_backend_failure": "closed"},
            {"name": "health", "path": "/healthz", "methods": ["GET"], "key": "ip",
             "algorithm": "sliding_window", "limit": 1000, "period_secs": 60}
        ]}"#,
    );
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let app = TestApp::spawn_with(&[
        ("LEADGEN_PERIMETER__RATE_LIMITS_PATH", rules.as_str()),
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", waf.to_str().unwrap()),
        ("LEADGEN_PERIMETER__REDIS_URL", url.as_str()),
    ])
    .await;
    let c = app.client();
    let sign_in = || {
        c.post(app.https_url("/auth/v1/token?grant_type=password"))
            .header("accept", "application/json")
            .json(&json!({ "email": "a@b.test", "password": "whatever it is" }))
            .send()
    };
    let metrics = || async {
        reqwest::get(format!("http://{}/metrics", app.bound.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // With Redis up, sign-in is limited in Redis and answers for itself (wrong password).
    assert_eq!(sign_in().await.unwrap().status(), 400);

    redis.kill();
    // The first call finds Redis gone; from then on calls are refused by the open circuit
    // without trying Redis: the fail-closed rule answers 503 and the fail-open one passes.
    for _ in 0..30 {
        assert_eq!(status(&c, app.https_url("/healthz")).await, 200);
    }
    let res = sign_in().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    let m = metrics().await;
    assert_eq!(metric(&m, "redis_circuit_open"), 1.0, "{m}");
    assert_eq!(metric(&m, "redis_circuit_trips_total"), 1.0, "{m}");
    assert!(
        metric(&m, "redis_circuit_short_circuits_total") >= 20.0,
        "most calls never waited for Redis: {m}"
    );
    // One alert for the outage.
    let alerted = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| {
                b["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("redis-unavailable")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alerted() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(alerted(), 1, "{:?}", got.lock().unwrap());

    // Redis comes back: the circuit closes by itself (the server probes it each second) and
    // sign-in is limited in Redis again.
    let _redis = OwnRedis::start(port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric(&metrics().await, "redis_circuit_open") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the circuit stayed open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(sign_in().await.unwrap().status(), 400);
    assert_eq!(alerted(), 1, "no second alert for the same outage");
    app.stop().await;
}
