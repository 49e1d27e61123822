//! The HTTP edge: redirects, security headers, request ids, limits and error pages.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

#[tokio::test]
async fn plain_http_redirects_with_308_to_https() {
    let app = TestApp::spawn().await;
    let http = app.bound.http.unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let https_port = app.bound.https.port();
    for (method, path) in [
        (Method::GET, "/anything?x=1&y=2"),
        (Method::POST, "/leads/import"),
        (Method::GET, "/"),
    ] {
        let res = client
            .request(
                method.clone(),
                format!("http://127.0.0.1:{}{path}", http.port()),
            )
            .header("host", "localhost:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 308, "{method} {path}");
        assert_eq!(
            res.headers()["location"],
            format!("https://localhost:{https_port}{path}").as_str(),
            "{method} {path}"
        );
        // Nothing from the application leaks over plain HTTP.
        assert!(res.text().await.unwrap().is_empty());
    }
    // A Host header that is not a host name gets no redirect to an attacker-chosen place.
    let res = client
        .get(format!("http://127.0.0.1:{}/", http.port()))
        .header("host", "evil.example/@x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    app.stop().await;
}

fn assert_security_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    let get = |name: &str| {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
    };
    let hsts = get("strict-transport-security");
    let max_age: u64 = hsts
        .split(';')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age >= 31_536_000, "{what}: HSTS max-age {max_age}");
    assert!(hsts.contains("includeSubDomains"), "{what}: {hsts}");
    let csp = get("content-security-policy");
    let script = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .or_else(|| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.starts_with("default-src"))
        })
        .unwrap();
    assert!(
        !script.contains("unsafe-inline") && !script.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert!(!get("referrer-policy").is_empty());
    assert!(get("permissions-policy").contains("camera=()"), "{what}");
    let id = get("x-request-id");
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "{what}: request id {id}"
    );
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let landing = client.get(app.https_url("/")).send().await.unwrap();
    assert_security_headers(&landing, "landing");
    let html = landing.text().await.unwrap();
    assert!(
        !html.contains("<script"),
        "the landing page must not carry script"
    );
    assert!(!html.contains("style="), "no inline styles");
    let css = html
        .split('"')
        .find(|s| s.starts_with("/static/app.") && s.ends_with(".css"))
        .expect("hashed stylesheet link")
        .to_string();

    let mut ids = HashSet::new();
    type Case = (&'static str, Method, String, Option<Vec<u8>>, u16);
    let cases: Vec<Case> = vec![
        ("healthz", Method::GET, "/healthz".into(), None, 200),
        ("readyz", Method::GET, "/readyz".into(), None, 200),
        ("stylesheet", Method::GET, css.clone(), None, 200),
        (
            "unknown asset",
            Method::GET,
            "/static/app.0000000000000000.css".into(),
            None,
            404,
        ),
        ("not found", Method::GET, "/no/such/page".into(), None, 404),
        ("wrong method", Method::DELETE, "/healthz".into(), None, 405),
        ("TRACE", Method::TRACE, "/".into(), None, 405),
        (
            "bad csp report",
            Method::POST,
            "/csp-report".into(),
            Some(b"{not json".to_vec()),
            400,
        ),
        (
            "huge body",
            Method::POST,
            "/csp-report".into(),
            Some(vec![b'a'; 2 * 1024 * 1024]),
            413,
        ),
    ];
    for (what, method, path, body, status) in cases {
        let mut req = client.request(method, app.https_url(&path));
        if let Some(b) = body {
            req = req.header("content-type", "application/csp-report").body(b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{what}");
        assert_security_headers(&res, what);
        assert!(
            ids.insert(res.headers()["x-request-id"].to_str().unwrap().to_string()),
            "request ids must be unique"
        );
        if what == "stylesheet" {
            assert_eq!(
                res.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/css")
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn error_pages_show_the_request_id() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let res = client
        .get(app.https_url("/missing"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let html = res.text().await.unwrap();
    assert!(html.contains("404") && html.contains(&id), "{html}");
    assert!(
        html.contains("/static/app."),
        "styled with the shared stylesheet"
    );
    let res = client
        .get(app.https_url("/missing"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["status"], 404);
    assert_eq!(body["error"]["request_id"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn oversized_body_is_rejected_with_413() {
    let app = TestApp::spawn_with(&[("LEADGEN_SERVER__MAX_BODY_BYTES", "4096")]).await;
    let client = app.client();
    let report = serde_json::json!({ "csp-report": { "document-uri": "https://localhost/", "violated-directive": "script-src", "blocked-uri": "inline", "pad": "x".repeat(5000) } });
    let res = client
        .post(app.https_url("/csp-report"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let small = serde_json::json!({ "csp-report": { "document-uri": "https://localhost/", "violated-directive": "script-src", "blocked-uri": "inline" } });
    let res = client
        .post(app.https_url("/csp-report"))
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        204,
        "the server keeps serving after a refusal"
    );
    app.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::spawn_with(&[("LEADGEN_SERVER__HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut tls = crate::helpers::tls_connect(
        &app.cert_path(),
        app.bound.https,
        &[&rustls::version::TLS13],
    )
    .await
    .unwrap();
    // Headers that never end (slowloris).
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nx-slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), tls.read_to_end(&mut buf)).await;
    let closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
    assert!(
        closed,
        "the server must close a connection whose headers do not arrive in time"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("200 OK"), "{text}");
    // A well-behaved client is still served.
    let res = app
        .client()
        .get(app.https_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let own = format!("https://localhost:{}", app.bound.https.port());
    let report = r#"{"csp-report":{"document-uri":"https://localhost/","violated-directive":"script-src","blocked-uri":"inline"}}"#;
    let post = |origin: Option<&str>, ct: &str, cookie: bool| {
        let mut r = client
            .post(app.https_url("/csp-report"))
            .header("content-type", ct)
            .body(report);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if cookie {
            r = r.header("cookie", "__Host-session=abc");
        }
        r.send()
    };
    // A form post from another site, and one hiding its origin, are refused before any handler.
    let res = post(
        Some("https://evil.example"),
        "application/x-www-form-urlencoded",
        false,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(Some("null"), "text/plain", false).await.unwrap();
    assert_eq!(res.status(), 403);
    let res = post(None, "application/json", true).await.unwrap();
    assert_eq!(
        res.status(),
        403,
        "cookie-carrying state change without Origin"
    );
    let res = post(Some("http://localhost"), "application/json", true)
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "same host over plain HTTP is another origin"
    );
    // The same requests from our own origin reach the handler.
    let res = post(Some(&own), "application/json", true).await.unwrap();
    assert_eq!(res.status(), 204);
    let res = post(Some(&own), "text/plain", false).await.unwrap();
    assert_eq!(res.status(), 204);
    // Non-browser API calls (no cookies, JSON) need no Origin.
    let res = post(None, "application/json", false).await.unwrap();
    assert_eq!(res.status(), 204);
    app.stop().await;
}

/// Every error under `/api/` is LeadGen's JSON error and every error under `/auth/v1/` GoTrue's,
/// whatever the `Accept` header: credentials, permissions, route and method misses, path, query and
/// body parse errors, content types, body limits; text PostgreSQL cannot store (NUL) is a 400
/// that names the parameter.
#[tokio::test]
async fn api_errors_are_json_in_their_shape_whatever_the_accept_header() {
    use serde_json::{Value, json};
    let app = crate::orgs::spawn().await;
    let api = crate::orgs::Api::new(&app);
    let (_, t, _) = crate::orgs::org_with_every_role(&app, &api, "contract").await;
    let (admin, user) = (&t[0], &t[2]);
    let c = app.client();
    for accept in [
        "*/*",
        "text/html",
        "text/html,application/xhtml+xml,*/*;q=0.8",
    ] {
        let send =
            |method: Method, path: &str, token: Option<&str>, ct: Option<&str>, body: Vec<u8>| {
                let mut r = c
                    .request(method, app.https_url(path))
                    .header("accept", accept);
                if let Some(t) = token {
                    r = r.bearer_auth(t);
                }
                if let Some(ct) = ct {
                    r = r.header("content-type", ct);
                }
                async move {
                    let res = r.body(body).send().await.unwrap();
                    let status = res.status().as_u16();
                    let ct = res
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let allow = res.headers().get("allow").is_some();
                    let body = res.text().await.unwrap();
                    (status, ct, allow, body)
                }
            };
        let huge = vec![b'x'; 2 << 20];
        // (expected status, method, path, bearer, content type, body, text the message names)
        type Case<'a> = (
            u16,
            Method,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Vec<u8>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (401, Method::GET, "/api/v1/leads", None, None, vec![], ""),
            (
                403,
                Method::PATCH,
                "/api/v1/org",
                Some(user),
                Some("application/json"),
                br#"{"name":"x"}"#.to_vec(),
                "",
            ),
            (
                404,
                Method::GET,
                "/api/v1/no-such-thing",
                Some(admin),
                None,
                vec![],
                "",
            ),
            (
                405,
                Method::DELETE,
                "/api/v1/leads",
                Some(admin),
                None,
                vec![],
                "",
            ),
            (
                400,
                Method::GET,
                "/api/v1/leads/not-a-uuid",
                Some(admin),
                None,
                vec![],
                "",
            ),
            (
                400,
                Method::GET,
                "/api/v1/leads?limit=many",
                Some(admin),
                None,
                vec![],
                "limit",
            ),
            (
                400,
                Method::POST,
                "/api/v1/leads",
                Some(admin),
                Some("application/json"),
                b"{\"title\": ".to_vec(),
                "",
            ),
            (
                415,
                Method::POST,
                "/api/v1/leads",
                Some(admin),
                Some("application/xml"),
                br#"{"title":"x"}"#.to_vec(),
                "",
            ),
            (
                413,
                Method::POST,
                "/api/v1/leads",
                Some(admin),
                Some("application/json"),
                huge.clone(),
                "",
            ),
            (
                400,
                Method::GET,
                "/api/v1/leads?q=a%00b",
                Some(admin),
                None,
                vec![],
                "q: contains a NUL",
            ),
            (
                400,
                Method::POST,
                "/api/v1/leads",
                Some(admin),
                Some("application/json"),
                br#"{"email":"n@contract.test","custom":{"notes":"a\u0000b"}}"#.to_vec(),
                "custom.notes: contains a NUL",
            ),
        ];
        for (want, method, path, token, ct, body, says) in cases {
            let (status, ctype, allow, text) = send(method.clone(), path, token, ct, body).await;
            assert_eq!(status, want, "{accept} {method} {path}: {text}");
            assert!(
                ctype.starts_with("application/json"),
                "{accept} {method} {path}: {ctype} {text}"
            );
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"));
            assert_eq!(v["error"]["status"], json!(want), "{path}: {v}");
            assert!(
                v["error"]["request_id"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{path}: {v}"
            );
            assert!(
                v["error"]["message"].as_str().unwrap().contains(says),
                "{path}: {v}"
            );
            if want == 405 {
                assert!(allow, "405 names the allowed methods");
            }
        }
        // GoTrue's shape under /auth/v1, for misses no handler shaped too.
        for (want, method, path, token) in [
            (404, Method::GET, "/auth/v1/no-such-thing", None),
            (401, Method::GET, "/auth/v1/user", None),
            (405, Method::DELETE, "/auth/v1/token", None),
        ] {
            let (status, ctype, _, text) = send(method.clone(), path, token, None, vec![]).await;
            assert_eq!(status, want, "{accept} {method} {path}: {text}");
            assert!(
                ctype.starts_with("application/json"),
                "{path}: {ctype} {text}"
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["code"], json!(want), "{path}: {v}");
            assert!(
                v["error_code"].as_str().is_some() && v["msg"].as_str().is_some(),
                "{path}: {v}"
            );
        }
    }
    // A signed-in browser still gets pages for pages.
    let res = c
        .get(app.https_url("/no-such-page"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    app.stop().await;
}
