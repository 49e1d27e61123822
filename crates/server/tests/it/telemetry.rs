//! Request logs: one JSON line per request with the fields operators need, and no personal data
//! or secrets in any field.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::helpers::{Proc, TestDb, client_for, server_env};

#[tokio::test]
async fn request_logs_are_redacted() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(&["serve"], &server_env(Some(&db), dir.path()));
    let (https, _) = proc.wait_serving(Duration::from_secs(30));
    let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
    let url = |p: &str| format!("https://localhost:{}{p}", https.port());

    // Attacker- or browser-controlled text that ends up in a log field.
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiZW1haWwiOiJqYW5lQGFjbWUuaW8ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"; // secret-scan: allow (the public example token of the JWT specification's tutorials)
    let report = serde_json::json!({ "csp-report": {
        "document-uri": format!("https://localhost/leads?email=jane.doe@acme.io&access_token={jwt}&password=hunter2hunter2"),
        "violated-directive": "script-src 'self'",
        "blocked-uri": "https://evil.example/collect?card=4111 1111 1111 1111&phone=+1-415-555-0100&key=lg_live_4eC39HqLyjWDarjtT1zdp7dc_1a2b3c4d",
    }});
    let res = client
        .post(url("/csp-report"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client
        .get(url("/healthz"))
        .header("authorization", format!("Bearer {jwt}"))
        .send()
        .await
        .unwrap();
    let health_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(res.status(), 200);

    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).success());
    let logs = proc.stdout();

    for secret in [
        "jane.doe@acme.io",
        jwt,
        "hunter2hunter2",
        "4111 1111 1111 1111",
        "415-555-0100",
        "4eC39HqLyjWDarjtT1zdp7dc",
    ] {
        assert!(!logs.contains(secret), "log leaks {secret:?}:\n{logs}");
    }
    assert!(logs.contains("[email]"), "email masked:\n{logs}");
    assert!(
        logs.contains("411111******1111"),
        "card masked to first 6 / last 4:\n{logs}"
    );

    // Every line is JSON; every request line carries the operator's fields.
    let mut access = 0;
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["target"] == "leadgen::access" {
            access += 1;
            for field in [
                "method",
                "route",
                "status",
                "latency_ms",
                "request_id",
                "principal",
            ] {
                assert!(!v[field].is_null(), "{field} missing in {line}");
            }
        }
    }
    assert!(access >= 2, "one line per request expected:\n{logs}");
    assert!(
        logs.lines().any(|l| l.contains(&health_id)
            && l.contains("\"route\":\"/healthz\"")
            && l.contains("\"status\":200")),
        "the healthz request is logged with its id, route and status:\n{logs}"
    );
}

#[tokio::test]
async fn metrics_are_served_on_the_loopback_admin_listener() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(&["serve"], &server_env(Some(&db), dir.path()));
    let (https, _) = proc.wait_serving(Duration::from_secs(30));
    let admin: std::net::SocketAddr = proc
        .stdout()
        .lines()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["admin"].as_str()?.parse().ok()
        })
        .unwrap();
    assert!(
        admin.ip().is_loopback(),
        "admin listener must bind to loopback, got {admin}"
    );
    let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
    for _ in 0..3 {
        client
            .get(format!("https://localhost:{}/healthz", https.port()))
            .send()
            .await
            .unwrap();
    }
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/healthz\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no healthz counter:\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3.0, "{line}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "latency histogram:\n{text}"
    );
    // Metrics are not on the public listener.
    let res = client
        .get(format!("https://localhost:{}/metrics", https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).success());
}
