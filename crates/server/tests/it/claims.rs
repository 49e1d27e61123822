//! The Security page's and Policy's claims, checked the way a user or an attacker meets them:
//! every operation of the published API without credentials, with a revoked and an expired key,
//! a real API key against a restricted lead, the claims inside an access token, the perimeter's
//! metrics, and one alert per IP-reputation incident.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Proc, TestApp, TestDb, client_for, generous_rate_limits, server_env, workspace_root,
};
use crate::orgs::{
    Api, admin_of_new_org, invite_and_accept, org_with_every_role, spawn, spawn_clocked,
};

/// One operation of the OpenAPI document, its path parameters filled in.
struct Operation {
    method: Method,
    template: String,
    path: String,
    /// The document says it needs no credentials (`security: [{}]` or `[]`).
    public: bool,
}

/// A plausible value for a path parameter, from its schema.
fn sample(param: Option<&Value>) -> String {
    let schema = param.map(|p| &p["schema"]).unwrap_or(&Value::Null);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first
            .as_str()
            .map_or_else(|| first.to_string(), str::to_owned);
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("integer" | "number"), _) => "1".into(),
        (Some("string"), Some(f)) if f != "uuid" => "sample".into(),
        _ => Uuid::new_v4().to_string(),
    }
}

/// Whether a `security` requirement list lets a caller in without credentials.
fn is_public(security: &Value) -> bool {
    security
        .as_array()
        .is_some_and(|reqs| reqs.is_empty() || reqs.iter().any(|r| r == &json!({})))
}

/// Every operation under `/api/v1` in the server's own OpenAPI document.
async fn api_operations(app: &TestApp) -> Vec<Operation> {
    let res = app
        .client()
        .get(app.https_url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.starts_with("/api/v1/") && template != "/api/v1" {
            continue;
        }
        for (name, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .into_iter()
                .chain(item["parameters"].as_array())
                .flatten()
                .filter(|p| p["in"] == "path")
                .collect();
            let mut path = String::new();
            for (i, segment) in template.split('{').enumerate() {
                if i == 0 {
                    path.push_str(segment);
                    continue;
                }
                let (name, rest) = segment.split_once('}').unwrap();
                let param = params.iter().copied().find(|p| p["name"] == name);
                path.push_str(&sample(param));
                path.push_str(rest);
            }
            let security = if op.get("security").is_some() {
                &op["security"]
            } else {
                &doc["security"]
            };
            ops.push(Operation {
                method,
                template: template.clone(),
                path,
                public: is_public(security),
            });
        }
    }
    ops
}

/// Sends `op` with an optional credential (a bearer access token or API key); JSON `{}` for
/// methods that take a body. Returns (status, content type, body).
async fn send(app: &TestApp, op: &Operation, bearer: Option<&str>) -> (u16, String, Value) {
    let mut req = app
        .client()
        .request(op.method.clone(), app.https_url(&op.path))
        .header("accept", "application/json");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if matches!(op.method, Method::POST | Method::PUT | Method::PATCH) {
        req = req.json(&json!({}));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        status,
        content_type,
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_api_operation_answers_401_without_credentials() {
    let app = TestApp::spawn().await;
    let ops = api_operations(&app).await;
    let mut tried = 0;
    let mut wrong = Vec::new();
    for op in ops.iter().filter(|o| !o.public) {
        tried += 1;
        let (status, content_type, body) = send(&app, op, None).await;
        let shaped = content_type.starts_with("application/json")
            && body["error"]["code"] == "authentication_required"
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
            && body["error"]["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty());
        if status != 401 || !shaped {
            wrong.push(format!(
                "{} {} ({}): {status} {content_type} {body}",
                op.method, op.template, op.path
            ));
        }
    }
    println!(
        "{tried} operations tried without credentials, {} documented as public",
        ops.len() - tried
    );
    assert!(
        wrong.is_empty(),
        "operations that did not answer 401 in LeadGen's error shape:\n{}",
        wrong.join("\n")
    );
    assert!(
        tried > 40,
        "only {tried} operations tried: the document lost its paths?"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_and_revoked_api_keys_are_refused_on_every_route_a_key_can_reach() {
    let (app, clock) = spawn_clocked().await;
    let api = Api::new(&app);
    let (admin, _, _, _) = admin_of_new_org(&api, "keyroutes").await;
    let mut keys = Vec::new();
    for (name, days) in [("valid", 90), ("revoked", 90), ("expiring", 1)] {
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/api-keys",
                &admin,
                Some(json!({ "name": name, "expires_in_days": days })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let key = v["key"].as_str().unwrap().to_owned();
        // Each key works before it is revoked or expires.
        assert_eq!(
            api.call(Method::GET, "/api/v1/org", &key, None).await.0,
            200
        );
        keys.push((v["id"].as_str().unwrap().to_owned(), key));
    }
    let (valid, revoked, expired) = (&keys[0].1, &keys[1].1, &keys[2].1);
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", keys[1].0),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    clock.advance(86_400 + 60);

    let ops = api_operations(&app).await;
    let mut reachable = Vec::new();
    // Operations documented as public (the vulnerability report API) take no credential: what
    // a caller presents there is not looked at.
    for op in ops.iter().filter(|o| !o.public) {
        let (status, _, _) = send(&app, op, Some(valid)).await;
        if status != 401 && status != 403 {
            reachable.push(op);
        }
    }
    println!(
        "{} of {} operations reachable with a valid key",
        reachable.len(),
        ops.len()
    );
    let mut wrong = Vec::new();
    for op in &reachable {
        for (key, code) in [(revoked, "api_key_revoked"), (expired, "api_key_expired")] {
            let (status, _, body) = send(&app, op, Some(key)).await;
            if status != 401 || body["error"]["code"] != code {
                wrong.push(format!(
                    "{} {} with the {code} key: {status} {body}",
                    op.method, op.template
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a dead key got through:\n{}",
        wrong.join("\n")
    );
    assert!(
        reachable.len() > 10,
        "a valid key reached only {} of {} operations",
        reachable.len(),
        ops.len()
    );
    app.stop().await;
}

/// The ids in a lead list or search answer.
fn item_ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list of leads: {v}"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_real_api_key_searches_and_reads_but_never_sees_a_restricted_lead_nor_exports() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (admin, _, _, _) = admin_of_new_org(&api, "keyacl").await;
    let (s, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            &admin,
            Some(json!({ "name": "Board desk" })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let group = g["id"].as_str().unwrap().to_owned();
    let mut leads = Vec::new();
    for (first, email) in [
        ("Ada", "ada@restricted.example"),
        ("Bob", "bob@open.example"),
        ("Cyd", "cyd@open.example"),
    ] {
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/leads",
                &admin,
                Some(
                    json!({ "first_name": first, "email": email, "title": "Quartermaster",
                             "company_name": "Zephyrine Freight" }),
                ),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        leads.push(v["id"].as_str().unwrap().to_owned());
    }
    let (secret, open) = (&leads[0], &leads[1..]);
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{secret}/acl"),
            &admin,
            Some(json!({ "read_groups": [group], "write_groups": [group],
                         "sensitivity": "restricted" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The admin still sees it: it exists, and a search would find it.
    let (s, v) = api
        .call(Method::GET, "/api/v1/leads?q=Quartermaster", &admin, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(item_ids(&v).contains(secret), "{v}");

    // Keys take only the API role's permissions as scopes: exporting is not one of them.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "exporter", "scopes": ["data_export"] })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let key = api
        .create_key(
            &admin,
            json!({ "name": "CRM sync",
                    "scopes": ["lead_search_and_management", "campaign_creation"] }),
        )
        .await;

    let mut want: Vec<String> = open.to_vec();
    want.sort();
    for query in [
        "",
        "?q=Quartermaster",
        "?q=Zephyrine",
        "?title=Quartermaster",
        "?has_email=true",
        "?sort=created",
    ] {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/leads{query}"), &key, None)
            .await;
        assert_eq!(s, 200, "{query}: {v}");
        let mut got = item_ids(&v);
        got.sort();
        assert_eq!(got, want, "{query}: {v}");
    }
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/leads/count?q=Quartermaster",
            &key,
            None,
        )
        .await;
    assert_eq!((s, v["count"].as_i64()), (200, Some(2)), "{v}");
    // Its email is not found either, through the blind index.
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/leads?email=ada@restricted.example",
            &key,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(item_ids(&v).is_empty(), "{v}");
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{}", open[0]),
            &key,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["email"], "bob@open.example");
    for (method, path) in [
        (Method::GET, format!("/api/v1/leads/{secret}")),
        (Method::PATCH, format!("/api/v1/leads/{secret}")),
        (Method::DELETE, format!("/api/v1/leads/{secret}")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({ "title": "Leaked" }));
        let (s, v) = api.call(method.clone(), &path, &key, body).await;
        assert_eq!(
            s, 404,
            "{method} {path}: its existence is not confirmed: {v}"
        );
        assert!(!v.to_string().contains("restricted.example"), "{v}");
    }
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (s, v["title"].as_str()),
        (200, Some("Quartermaster")),
        "untouched: {v}"
    );

    // Exports are for Admins and Managers: the key is refused, streamed or as a job.
    let (s, v) = api
        .call(Method::GET, "/api/v1/leads/export", &key, None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (s, v) = api.call(Method::POST, "/api/v1/exports", &key, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );

    // Scopes narrow the API role: a key without lead search cannot list leads at all.
    let narrow = api
        .create_key(
            &admin,
            json!({ "name": "campaigns only", "scopes": ["campaign_creation"] }),
        )
        .await;
    let (s, v) = api.call(Method::GET, "/api/v1/leads", &narrow, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    app.stop().await;
}

/// The claims of an access token, read without verifying, as a client would.
fn claims_of(access: &str) -> Value {
    use base64::Engine;
    let payload = access.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_decoded_access_token_carries_the_organization_and_role() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org, tokens, ids) = org_with_every_role(&app, &api, "claims").await;
    for (i, role) in ["admin", "manager", "user", "api"].iter().enumerate() {
        let c = claims_of(&tokens[i]);
        assert_eq!(c["org_id"], org.to_string(), "{role}: {c}");
        assert_eq!(c["org_role"], *role, "{role}: {c}");
        assert_eq!(c["sub"], ids[i].to_string(), "{role}: {c}");
        // Nothing beyond who, where, in which role, how strongly, and for how long.
        let mut names: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "aal",
                "amr",
                "aud",
                "email",
                "exp",
                "iat",
                "is_anonymous",
                "iss",
                "org_id",
                "org_role",
                "role",
                "session_id",
                "sub"
            ],
            "{role}: {c}"
        );
        assert_eq!(c["aal"], "aal2", "{role}: {c}");
        let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
        assert!(lifetime <= 900, "{role}: a short-lived token: {lifetime} s");
        // The server agrees with what the token says.
        let (s, v) = api.call(Method::GET, "/api/v1/org", &tokens[i], None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!((&v["id"], &v["role"]), (&c["org_id"], &c["org_role"]));
    }

    // The User's admin opens a second organization and makes the User a Manager there: after
    // switching, the token names the new organization and the role held in it.
    let (admin, user) = (&tokens[0], &tokens[2]);
    let second = api.create_org(admin, "Claims Two").await;
    let admin2 = api.switch(admin, second).await;
    let c = claims_of(&admin2);
    assert_eq!(
        (c["org_id"].as_str(), c["org_role"].as_str()),
        (Some(second.to_string().as_str()), Some("admin")),
        "{c}"
    );
    invite_and_accept(&app, &api, &admin2, "user@claims.test", "manager", user).await;
    let user2 = api.switch(user, second).await;
    let c = claims_of(&user2);
    assert_eq!(
        (c["org_id"].as_str(), c["org_role"].as_str()),
        (Some(second.to_string().as_str()), Some("manager")),
        "{c}"
    );
    let back = api.switch(&user2, org).await;
    let c = claims_of(&back);
    assert_eq!(
        (c["org_id"].as_str(), c["org_role"].as_str()),
        (Some(org.to_string().as_str()), Some("user")),
        "{c}"
    );
    app.stop().await;
}

/// The sum of a metric's samples whose labels include every `labels` pair, from the admin
/// listener's Prometheus text.
async fn metric_sum(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

/// The shipped rate limits, roomy for the API, with `extra` rules first.
fn rate_limits_with(dir: &std::path::Path, extra: Value) -> String {
    let path = generous_rate_limits(dir);
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let rules = file["rules"].as_array_mut().unwrap();
    for (i, r) in extra.as_array().unwrap().iter().enumerate() {
        rules.insert(i, r.clone());
    }
    std::fs::write(&path, file.to_string()).unwrap();
    path.display().to_string()
}

const ATTACK: &str = "/healthz?id=1%20UNION%20SELECT%20password%20FROM%20users";

#[tokio::test]
async fn metric_values_rise_when_requests_are_blocked_limited_and_match_rules() {
    let dir = tempfile::tempdir().unwrap();
    let limits = rate_limits_with(
        dir.path(),
        json!([{ "name": "tiny", "path": "/readyz", "methods": ["GET"], "key": "ip",
                 "algorithm": "sliding_window", "limit": 2, "period_secs": 3600 }]),
    );
    // The shipped WAF rules.
    let app =
        TestApp::spawn_with(&[("LEADGEN_PERIMETER__RATE_LIMITS_PATH", limits.as_str())]).await;
    let blocks = || metric_sum(&app, "blocked_requests_count", &[("action", "block")]);
    let hits = || metric_sum(&app, "waf_rule_hits_total", &[("action", "block")]);
    let limited = || metric_sum(&app, "rate_limited_requests_total", &[("rule", "tiny")]);
    let (b0, h0, l0) = (blocks().await, hits().await, limited().await);

    // Harmless traffic moves none of them.
    let bystander = app.client_from([127, 0, 0, 11].into());
    for _ in 0..3 {
        let s = bystander
            .get(app.https_url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(s.status(), 200);
    }
    assert_eq!(
        (blocks().await, hits().await, limited().await),
        (b0, h0, l0)
    );

    let attacker = app.client_from([127, 0, 0, 12].into());
    for _ in 0..3 {
        let res = attacker
            .get(app.https_url(ATTACK))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "waf_blocked", "{body}");
    }
    assert_eq!(blocks().await - b0, 3.0, "one blocked request per attack");
    let rule_hits = hits().await - h0;
    assert!(rule_hits >= 3.0, "each attack matched a rule: {rule_hits}");
    assert_eq!(limited().await, l0, "no rate limit yet");

    let busy = app.client_from([127, 0, 0, 13].into());
    let mut refused = 0;
    for _ in 0..5 {
        let s = busy
            .get(app.https_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if s == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 3, "2 in the hour, then 429");
    assert_eq!(limited().await - l0, 3.0, "one count per refusal");
    assert_eq!(blocks().await - b0, 3.0, "rate limits are not WAF blocks");
    app.stop().await;
}

#[tokio::test]
async fn an_ip_reputation_block_raises_one_alert() {
    let (hook, got) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules (reputation, thresholds), delivering to a receiver, with sentinel alerts
    // on rate-limit refusals: when a sentinel arrives, the alert loop has judged every event
    // recorded before it.
    let mut waf: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/waf-rules.json")).unwrap(),
    )
    .unwrap();
    let shipped = waf["monitoring"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["event"] == "ip_reputation_block")
        .cloned()
        .expect("the shipped rules alert on IP-reputation blocks");
    let threshold = shipped["threshold"].as_u64().unwrap();
    let name = shipped["name"].as_str().unwrap().to_owned();
    assert!(threshold >= 2, "{shipped}");
    let alerts = waf["monitoring"]["alerts"].as_array_mut().unwrap();
    for n in 1..=2 {
        alerts.push(
            json!({ "name": format!("sentinel-{n}"), "event": "rate_limited",
                            "threshold": n, "window_secs": 3600, "cooldown_secs": 3600 }),
        );
    }
    waf["monitoring"]["webhooks"] = json!([{ "url": format!("{hook}/alerts") }]);
    let waf_path = dir.path().join("waf-rules.json");
    std::fs::write(&waf_path, waf.to_string()).unwrap();
    let limits = rate_limits_with(
        dir.path(),
        json!([{ "name": "sentinel", "path": "/readyz", "methods": ["GET"], "key": "ip",
                 "algorithm": "sliding_window", "limit": 1, "period_secs": 3600 }]),
    );
    let app = TestApp::spawn_with(&[
        (
            "LEADGEN_PERIMETER__WAF_RULES_PATH",
            waf_path.to_str().unwrap(),
        ),
        ("LEADGEN_PERIMETER__RATE_LIMITS_PATH", limits.as_str()),
    ])
    .await;

    let received = |alert: &str| {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["alert"] == alert)
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()
    };
    let wait_for = |alert: String| {
        let received = &received;
        async move {
            for _ in 0..300 {
                if !received(&alert).is_empty() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no {alert} alert arrived");
        }
    };
    let prober = app.client_from([127, 0, 0, 40].into());
    // The first probe passes; each later one is refused and fires the next sentinel.
    assert_eq!(status_of(&prober, app.https_url("/readyz")).await, 200);
    let sentinel = |n: u32| {
        let (prober, url) = (&prober, app.https_url("/readyz"));
        async move {
            assert_eq!(status_of(prober, url).await, 429);
            wait_for(format!("sentinel-{n}")).await;
        }
    };

    // Attacks until the address is blocked for its reputation, then more requests that the block
    // refuses.
    let block = |last: u8| {
        let app = &app;
        async move {
            let c = app.client_from([127, 0, 0, last].into());
            let mut attacks = 0;
            loop {
                attacks += 1;
                assert!(attacks <= 10, "127.0.0.{last} was never blocked");
                assert_eq!(status_of(&c, app.https_url(ATTACK)).await, 403);
                let res = c
                    .get(app.https_url("/healthz"))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .unwrap();
                if res.status() == 403 {
                    let body: Value = res.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "ip_reputation", "{body}");
                    break;
                }
                assert_eq!(res.status(), 200);
            }
            for _ in 0..3 {
                assert_eq!(status_of(&c, app.https_url("/healthz")).await, 403);
            }
        }
    };

    let below = u8::try_from(threshold - 1).unwrap();
    for i in 0..below {
        block(20 + i).await;
    }
    sentinel(1).await;
    assert!(
        received(&name).is_empty(),
        "{below} reputation blocks stay below the threshold of {threshold}"
    );
    assert_eq!(
        metric_sum(&app, "ip_reputation_blocks_total", &[]).await,
        f64::from(below)
    );

    block(20 + below).await;
    wait_for(name.clone()).await;
    // Two more addresses blocked and every blocked address still knocking: the same incident.
    block(21 + below).await;
    block(22 + below).await;
    for i in 0..below + 3 {
        let c = app.client_from([127, 0, 0, 20 + i].into());
        assert_eq!(status_of(&c, app.https_url(ATTACK)).await, 403);
    }
    sentinel(2).await;
    let raised = received(&name);
    assert_eq!(raised.len(), 1, "one alert per incident: {raised:?}");
    assert_eq!(raised[0]["event"], "ip_reputation_block");
    assert_eq!(raised[0]["count"], threshold, "{raised:?}");
    assert_eq!(
        metric_sum(&app, "ip_reputation_blocks_total", &[]).await,
        f64::from(below + 3)
    );
    app.stop().await;
}

async fn status_of(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_refusal_is_logged_with_the_error_code_its_client_got() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(&["serve"], &server_env(Some(&db), dir.path()));
    let (https, _) = proc.wait_serving(std::time::Duration::from_secs(30));
    let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
    let url = |p: &str| format!("https://localhost:{}{p}", https.port());
    let malformed_key = "lg_live_00000000000000000000000000000000_00000000"; // secret-scan: allow (malformed key: its checksum is wrong)
    let mut seen = Vec::new();
    for (path, key) in [
        ("/api/v1/org", None),
        ("/api/v1/org", Some(malformed_key)),
        (ATTACK, None),
        ("/api/v1/no-such-route", None),
        ("/healthz", None),
    ] {
        let mut req = client.get(url(path)).header("accept", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        seen.push((path, status, id, body["error"]["code"].clone()));
    }
    let codes: Vec<&Value> = seen.iter().map(|s| &s.3).collect();
    assert_eq!(
        codes[..3],
        [
            &json!("authentication_required"),
            &json!("api_key_invalid"),
            &json!("waf_blocked")
        ],
        "{seen:?}"
    );
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(proc.wait_exit(std::time::Duration::from_secs(15)).success());
    let lines: Vec<Value> = proc
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["target"] == "leadgen::access")
        .collect();
    for (path, status, id, code) in &seen {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no access line for {path} ({id})"));
        assert_eq!(line["status"], *status, "{line}");
        if *status < 400 {
            assert!(
                line["error_code"].is_null(),
                "a success has no code: {line}"
            );
        } else {
            assert!(code.is_string(), "{path}: the client got a code");
            assert_eq!(line["error_code"], *code, "{path}: {line}");
        }
    }
}

#[tokio::test]
async fn a_detector_in_warn_mode_logs_a_warning_and_one_in_block_mode_refuses_at_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped rules with SQL injection in warn mode; XSS stays in block mode.
    let mut waf: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/waf-rules.json")).unwrap(),
    )
    .unwrap();
    waf["attack_protection"]["sqli"]["mode"] = json!("warn");
    let path = dir.path().join("waf-rules.json");
    std::fs::write(&path, waf.to_string()).unwrap();
    let mut env = server_env(Some(&db), dir.path());
    env.push((
        "LEADGEN_PERIMETER__WAF_RULES_PATH".into(),
        path.display().to_string(),
    ));
    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(std::time::Duration::from_secs(30));
    let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
    let url = |p: &str| format!("https://localhost:{}{p}", https.port());

    let res = client.get(url(ATTACK)).send().await.unwrap();
    assert_eq!(res.status(), 200, "warn mode lets the request through");
    let suspicious = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let res = client
        .get(url(
            "/healthz?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        ))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "block mode refuses the first attack");
    let attack = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "waf_blocked", "{body}");

    proc.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(proc.wait_exit(std::time::Duration::from_secs(15)).success());
    let lines: Vec<Value> = proc
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["target"] == "leadgen::waf")
        .collect();
    let about = |id: &str| {
        lines
            .iter()
            .find(|l| l.to_string().contains(id))
            .cloned()
            .unwrap_or_else(|| panic!("no WAF line for {id}: {lines:?}"))
    };
    let warned = about(&suspicious);
    assert_eq!(warned["level"], "WARN", "{warned}");
    assert!(warned.to_string().contains("warn mode"), "{warned}");
    let blocked = about(&attack);
    assert_eq!(blocked["level"], "WARN", "{blocked}");
    assert!(blocked.to_string().contains("request blocked"), "{blocked}");
}
