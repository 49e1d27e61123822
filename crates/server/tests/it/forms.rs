//! Capture forms through the front door: a form designed through the API, posted to as a
//! visitor's browser would (from the organization's own site), becoming a lead with its consent
//! recorded; the traps, the origin check, the limits, pausing and tenant isolation.

use std::sync::Arc;

use leadgen::clock::OffsetClock;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestDb};
use crate::orgs::Api;

const SITE: &str = "https://shop.example";

struct Setup {
    app: TestApp,
    clock: Arc<OffsetClock>,
    api: Api,
    token: String,
    org: Uuid,
}

async fn setup(tag: &str) -> Setup {
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(
        TestDb::new().await,
        &[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")],
        clock.clone(),
    )
    .await;
    let api = Api::new(&app);
    let (t, _) = api.sign_up(&format!("owner@{tag}.test")).await;
    let org = api.create_org(&t, &format!("Org {tag}")).await;
    let token = api.switch(&t, org).await;
    Setup {
        app,
        clock,
        api,
        token,
        org,
    }
}

fn definition(name: &str, extra: Value) -> Value {
    let mut v = json!({
        "name": name,
        "fields": [
            {"name": "email", "label": "Work email"},
            {"name": "first_name", "required": true},
            {"name": "company_name"},
            {"name": "custom.budget", "label": "Budget"}
        ],
        "consent_text": "I agree that Shop may contact me about its products.",
        "consent_version": "2026-12",
        "ccpa_notice": "We collect your name and address to answer you.",
        "allowed_origins": [SITE],
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

async fn create_form(s: &Setup, name: &str, extra: Value) -> (Uuid, String) {
    let (status, v) = s
        .api
        .call(
            Method::POST,
            "/api/v1/forms",
            &s.token,
            Some(definition(name, extra)),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let embed = v["embed"].as_str().unwrap();
    let key = v["public_key"].as_str().unwrap().to_string();
    assert!(embed.contains(&format!("/f/{key}\"")), "{embed}");
    assert!(embed.contains("name=\"homepage_url\"") && embed.contains("class=\"hp\""));
    (v["id"].as_str().unwrap().parse().unwrap(), key)
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn post(
    c: &reqwest::Client,
    app: &TestApp,
    key: &str,
    origin: Option<&str>,
    body: String,
    json: bool,
) -> Answer {
    let mut req = c
        .post(app.https_url(&format!("/f/{key}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Mozilla/5.0 (FormTest)")
        .body(body);
    req = if json {
        req.header("accept", "application/json")
    } else {
        req.header("accept", "text/html")
    };
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let res = req.send().await.unwrap();
    Answer {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    }
}

async fn fresh_stamp(c: &reqwest::Client, app: &TestApp, key: &str) -> String {
    let res = c
        .get(app.https_url(&format!("/f/{key}/stamp")))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], SITE);
    let v: Value = res.json().await.unwrap();
    v["stamp"].as_str().unwrap().to_string()
}

async fn leads_with(s: &Setup, email: &str) -> Vec<Value> {
    let (status, v) = s
        .api
        .call(
            Method::GET,
            &format!("/api/v1/leads?email={email}"),
            &s.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

async fn counters(s: &Setup, id: Uuid) -> Value {
    let (status, v) = s
        .api
        .call(
            Method::GET,
            &format!("/api/v1/forms/{id}/stats"),
            &s.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test]
async fn forms_a_visitor_becomes_a_lead_with_consent_and_the_owner_hears() {
    let s = setup("visit").await;
    let (id, key) = create_form(&s, "Demo request", json!({})).await;
    let c = s.app.client();

    // The script's flow: a stamp when the page loads, a post some seconds later.
    let stamp = fresh_stamp(&c, &s.app, &key).await;
    s.clock.advance(8);
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[
            ("email", "Ada@Visitor.example"),
            ("first_name", "Ada"),
            ("custom.budget", "10k"),
            ("consent", "yes"),
            ("homepage_url", ""),
            ("lg_stamp", &stamp),
        ]),
        false,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("Thank you. We will be in touch soon."),
        "{}",
        a.body
    );
    assert_eq!(a.headers["access-control-allow-origin"], SITE);

    let leads = leads_with(&s, "ada@visitor.example").await;
    assert_eq!(leads.len(), 1, "{leads:?}");
    let lead = &leads[0];
    assert_eq!(lead["source"], "form:Demo request");
    assert_eq!(lead["first_name"], "Ada");
    assert_eq!(lead["custom"]["budget"], "10k");
    assert_eq!(
        lead["sensitivity"], "confidential",
        "the organization's ACL defaults"
    );
    let lead_id: Uuid = lead["id"].as_str().unwrap().parse().unwrap();

    // The consent record: version, the text's hash, time, IP and user agent.
    let pool = s.app.db().superuser_pool().await;
    let row: (String, Vec<u8>, String, String) = sqlx::query_as(
        "SELECT consent_version, text_sha256, host(ip), user_agent FROM app.consent_records
         WHERE lead_id = $1 AND form_id = $2",
    )
    .bind(lead_id)
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row.0, "2026-12");
    use sha2::Digest as _;
    assert_eq!(
        row.1,
        sha2::Sha256::digest(b"I agree that Shop may contact me about its products.").to_vec()
    );
    assert_eq!(row.2, "127.0.0.1");
    assert_eq!(row.3, "Mozilla/5.0 (FormTest)");
    // Members read it with the lead, through the API.
    let (status, v) = s
        .api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{lead_id}/consents"),
            &s.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let consent = &v["items"][0];
    assert_eq!(consent["form_name"], "Demo request");
    assert_eq!(consent["consent_version"], "2026-12");
    assert_eq!(consent["ip"], "127.0.0.1");
    assert_eq!(consent["text_sha256"], hex::encode(&row.1));

    // The owner (the creator) is mailed, without the visitor's data; the notice goes out after
    // the visitor's answer.
    let mut notice = None;
    for _ in 0..50 {
        notice = s
            .app
            .mailbox()
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains("Demo request"));
        if notice.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let notice = notice.expect("the owner's notice");
    assert_eq!(notice["to"], "owner@visit.test");
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .contains(&lead_id.to_string())
    );
    assert!(!notice["text"].as_str().unwrap().contains("ada@visitor"));

    // The same address again (the script's JSON answer): dedupe by the blind index, fill_empty
    // fills what the lead lacked and keeps what it had.
    let stamp = fresh_stamp(&c, &s.app, &key).await;
    s.clock.advance(8);
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[
            ("email", "ada@visitor.example"),
            ("first_name", "Adeline"),
            ("company_name", "Analytical Engines"),
            ("consent", "on"),
            ("lg_stamp", &stamp),
        ]),
        true,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["ok"], true);
    let leads = leads_with(&s, "ada@visitor.example").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["first_name"], "Ada");
    assert_eq!(leads[0]["company_name"], "Analytical Engines");

    // A JSON post, after its CORS preflight (only the form's origins pass it).
    let preflight = |origin: &'static str| {
        c.request(Method::OPTIONS, s.app.https_url(&format!("/f/{key}")))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight(SITE).await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], SITE);
    assert_eq!(
        preflight("https://evil.example").await.unwrap().status(),
        403
    );
    s.clock.advance(8);
    let res = c
        .post(s.app.https_url(&format!("/f/{key}")))
        .header("origin", SITE)
        .json(&json!({ "email": "cy@visitor.example", "first_name": "Cy", "consent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["ok"], true);

    // A plain HTML post (no script, so no stamp) is accepted by default.
    s.clock.advance(8);
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[
            ("email", "bob@visitor.example"),
            ("first_name", "Bob"),
            ("consent", "yes"),
            ("homepage_url", ""),
        ]),
        false,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(leads_with(&s, "bob@visitor.example").await.len(), 1);

    let n = counters(&s, id).await;
    assert_eq!(
        n,
        json!({"views": 2, "submissions": 4, "spam": 0, "conversions": 3})
    );
    s.app.stop().await;
}

#[tokio::test]
async fn forms_traps_answer_like_a_success_and_store_nothing() {
    let s = setup("traps").await;
    let (id, key) = create_form(&s, "Newsletter", json!({})).await;
    let (strict_id, strict_key) =
        create_form(&s, "Strict", json!({ "accept_without_stamp": false })).await;
    let c = s.app.client();
    let person = |stamp: &str, email: &str, hp: &str| {
        encode(&[
            ("email", email),
            ("first_name", "Eve"),
            ("consent", "yes"),
            ("homepage_url", hp),
            ("lg_stamp", stamp),
        ])
    };
    // What a person gets, for comparison.
    let stamp = fresh_stamp(&c, &s.app, &key).await;
    s.clock.advance(10);
    let good = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        person(&stamp, "real@people.example", ""),
        false,
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.body);

    // Honeypot filled, posted too fast, a forged stamp: the same answer, nothing stored.
    let stamp = fresh_stamp(&c, &s.app, &key).await;
    s.clock.advance(10);
    let honeypot = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        person(&stamp, "bot1@spam.example", "http://spam.example"),
        false,
    )
    .await;
    let stamp = fresh_stamp(&c, &s.app, &key).await;
    let too_fast = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        person(&stamp, "bot2@spam.example", ""),
        false,
    )
    .await;
    let forged = format!(
        "{}.AAAAAAAAAAAAAAAAAAAAAA",
        stamp.split('.').next().unwrap().parse::<i64>().unwrap() - 60
    );
    s.clock.advance(10);
    let bad = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        person(&forged, "bot3@spam.example", ""),
        false,
    )
    .await;
    for a in [&honeypot, &too_fast, &bad] {
        assert_eq!(a.status, good.status);
        assert_eq!(a.body, good.body);
    }
    // The script's JSON answer is the same for a bot too.
    let good_json = {
        let stamp = fresh_stamp(&c, &s.app, &key).await;
        s.clock.advance(10);
        post(
            &c,
            &s.app,
            &key,
            Some(SITE),
            person(&stamp, "real2@people.example", ""),
            true,
        )
        .await
    };
    let bot_json = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        person("", "bot4@spam.example", "x"),
        true,
    )
    .await;
    assert_eq!(
        (bot_json.status, &bot_json.body),
        (good_json.status, &good_json.body)
    );
    for bot in ["bot1", "bot2", "bot3", "bot4"] {
        assert!(
            leads_with(&s, &format!("{bot}@spam.example"))
                .await
                .is_empty(),
            "{bot}"
        );
    }
    let n = counters(&s, id).await;
    assert_eq!(n["spam"], 4);
    assert_eq!(n["submissions"], 2);

    // A form that refuses posts without a stamp counts them as spam, silently.
    let a = post(
        &c,
        &s.app,
        &strict_key,
        Some(SITE),
        person("", "nostamp@people.example", ""),
        false,
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(leads_with(&s, "nostamp@people.example").await.is_empty());
    assert_eq!(counters(&s, strict_id).await["spam"], 1);
    s.app.stop().await;
}

#[tokio::test]
async fn forms_refuse_foreign_origins_unknown_keys_paused_forms_and_bad_input() {
    let s = setup("refuse").await;
    let (id, key) = create_form(
        &s,
        "Contact",
        json!({ "redirect_url": "https://shop.example/thanks" }),
    )
    .await;
    let c = s.app.client();
    let body = || {
        encode(&[
            ("email", "kim@visitor.example"),
            ("first_name", "Kim"),
            ("consent", "yes"),
        ])
    };

    // Another site, or none: refused, nothing stored.
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let a = post(&c, &s.app, &key, origin, body(), false).await;
        assert_eq!(a.status, 403, "{origin:?}: {}", a.body);
        assert!(a.headers.get("access-control-allow-origin").is_none());
    }
    // The Referer stands in for a missing Origin.
    let a = c
        .post(s.app.https_url(&format!("/f/{key}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("referer", "https://evil.example/page")
        .body(body())
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 403);
    let stamp = c
        .get(s.app.https_url(&format!("/f/{key}/stamp")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(stamp.status(), 403);
    assert!(leads_with(&s, "kim@visitor.example").await.is_empty());

    // An unknown key, well formed or not: 404.
    for k in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nope", "x%20y"] {
        let a = post(&c, &s.app, k, Some(SITE), body(), true).await;
        assert_eq!(a.status, 404, "{k}: {}", a.body);
    }

    // The rest from another address, under the per-IP limit.
    let c = s.app.client_from("127.0.0.31".parse().unwrap());

    // Bad values: 400 naming each field and why.
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[("email", "not-an-address"), ("first_name", "")]),
        true,
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    let fields: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "first_name", "consent"], "{v}");
    assert!(v["fields"][0]["reason"].as_str().unwrap().contains("email"));
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[("email", "x")]),
        false,
    )
    .await;
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("first_name") && a.body.contains("required"),
        "{}",
        a.body
    );

    // Accepted: to the configured https page on the site, never elsewhere.
    let a = post(&c, &s.app, &key, Some(SITE), body(), false).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.headers["location"], "https://shop.example/thanks");
    let (status, v) = s
        .api
        .call(
            Method::PUT,
            &format!("/api/v1/forms/{id}"),
            &s.token,
            Some(definition(
                "Contact",
                json!({ "redirect_url": "https://evil.example/x" }),
            )),
        )
        .await;
    assert_eq!(status, 400, "{v}");

    // Paused: a clear 409 until it is resumed.
    let (status, v) = s
        .api
        .call(
            Method::POST,
            &format!("/api/v1/forms/{id}/pause"),
            &s.token,
            None,
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("paused")), "{v}");
    let a = post(&c, &s.app, &key, Some(SITE), body(), true).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body.contains("not accepting submissions"));
    let (status, _) = s
        .api
        .call(
            Method::POST,
            &format!("/api/v1/forms/{id}/resume"),
            &s.token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let a = post(&c, &s.app, &key, Some(SITE), body(), true).await;
    assert_eq!(a.status, 200, "{}", a.body);

    // Too large: 413.
    let big = "a".repeat(100 * 1024);
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[("email", "big@visitor.example"), ("custom.x", &big)]),
        true,
    )
    .await;
    assert_eq!(a.status, 413, "{}", a.body);

    // The script: served to the allowed origin with CORS, to others without.
    let js = c
        .get(s.app.https_url(&format!("/f/{key}/embed.js")))
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(js.headers()["access-control-allow-origin"], SITE);
    let js = c
        .get(s.app.https_url(&format!("/f/{key}/embed.js")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(js.headers().get("access-control-allow-origin").is_none());
    s.app.stop().await;
}

#[tokio::test]
async fn forms_limits_per_ip_and_per_form() {
    let s = setup("limits").await;
    let (_, key) = create_form(&s, "Busy", json!({})).await;
    let (_, small) = create_form(&s, "Small", json!({ "max_per_hour": 2 })).await;
    let body = |n: usize| {
        encode(&[
            ("email", &format!("p{n}@visitor.example")),
            ("first_name", "P"),
            ("consent", "yes"),
        ])
    };
    // Per IP: 10 posts in ten minutes, then 429 with Retry-After.
    let c = s.app.client_from("127.0.0.21".parse().unwrap());
    for n in 0..10 {
        let a = post(&c, &s.app, &key, Some(SITE), body(n), true).await;
        assert_eq!(a.status, 200, "post {n}: {}", a.body);
    }
    let a = post(&c, &s.app, &key, Some(SITE), body(10), true).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));

    // Per form: its hourly allowance, across visitors.
    for (n, ip) in ["127.0.0.22", "127.0.0.23", "127.0.0.24"]
        .iter()
        .enumerate()
    {
        let c = s.app.client_from(ip.parse().unwrap());
        let a = post(&c, &s.app, &small, Some(SITE), body(100 + n), true).await;
        let want = if n < 2 { 200 } else { 429 };
        assert_eq!(a.status, want, "visitor {n}: {}", a.body);
        if want == 429 {
            assert!(a.headers.contains_key("retry-after"));
        }
    }
    // An hour later it takes posts again.
    s.clock.advance(3601);
    let c = s.app.client_from("127.0.0.25".parse().unwrap());
    let a = post(&c, &s.app, &small, Some(SITE), body(200), true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    s.app.stop().await;
}

#[tokio::test]
async fn forms_and_their_leads_stay_in_their_organization() {
    let s = setup("tenant").await;
    let (id, key) = create_form(&s, "Mine", json!({})).await;
    let c = s.app.client();
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[
            ("email", "zoe@visitor.example"),
            ("first_name", "Zoe"),
            ("consent", "yes"),
        ]),
        true,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    let (t, _) = s.api.sign_up("other@tenant2.test").await;
    let other = s.api.create_org(&t, "Org other").await;
    let t = s.api.switch(&t, other).await;
    assert_ne!(other, s.org);
    let (status, v) = s.api.call(Method::GET, "/api/v1/forms", &t, None).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(0)), "{v}");
    for path in [
        format!("/api/v1/forms/{id}"),
        format!("/api/v1/forms/{id}/stats"),
    ] {
        let (status, _) = s.api.call(Method::GET, &path, &t, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = s
        .api
        .call(Method::POST, &format!("/api/v1/forms/{id}/pause"), &t, None)
        .await;
    assert_eq!(status, 404);
    let (status, v) = s
        .api
        .call(
            Method::GET,
            "/api/v1/leads?email=zoe@visitor.example",
            &t,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(v["items"].as_array().unwrap().is_empty(), "{v}");
    // The owner organization still has it, with its consent.
    assert_eq!(leads_with(&s, "zoe@visitor.example").await.len(), 1);

    // Deleting the form keeps the lead.
    let (status, _) = s
        .api
        .call(
            Method::DELETE,
            &format!("/api/v1/forms/{id}"),
            &s.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(leads_with(&s, "zoe@visitor.example").await.len(), 1);
    // The proof of consent stays with the lead; only its link to the form goes.
    let pool = s.app.db().superuser_pool().await;
    let (n, linked): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(form_id) FROM app.consent_records")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((n, linked), (1, 0));
    let a = post(
        &c,
        &s.app,
        &key,
        Some(SITE),
        encode(&[("email", "a@b.example")]),
        true,
    )
    .await;
    assert_eq!(a.status, 404);
    s.app.stop().await;
}

/// A browser: its cookies, and the CSRF token of the last page it was shown.
struct Browser {
    http: reqwest::Client,
    base: String,
    jar: std::collections::BTreeMap<String, String>,
    token: String,
}

impl Browser {
    fn cookie(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn shown(&mut self, res: reqwest::Response) -> (u16, String, String) {
        for c in res.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.jar.insert(k.to_string(), v.to_string());
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        let html = res.text().await.unwrap();
        if let Some(t) = html.split("name=\"csrf_token\" value=\"").nth(1) {
            self.token = t.split('"').next().unwrap().to_string();
        }
        (status, location, html)
    }

    async fn get(&mut self, path: &str) -> (u16, String, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("cookie", self.cookie())
            .send()
            .await
            .unwrap();
        self.shown(res).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut fields = vec![("csrf_token", self.token.as_str())];
        fields.extend(form.iter().copied());
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("origin", self.base.trim_end_matches('/'))
            .header("cookie", self.cookie())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&fields))
            .send()
            .await
            .unwrap();
        self.shown(res).await
    }
}

#[tokio::test]
async fn forms_are_designed_embedded_and_paused_from_their_pages() {
    let s = setup("pages").await;
    let mut b = Browser {
        http: s.app.client(),
        base: s.app.https_url(""),
        jar: std::collections::BTreeMap::new(),
        token: String::new(),
    };
    b.get("/login").await;
    let (status, _, html) = b
        .post(
            "/login",
            &[
                ("email", "owner@pages.test"),
                ("password", "violet tractor hums at dawn"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{html}");
    b.get("/account").await;
    let org = s.org.to_string();
    let (status, _, html) = b
        .post("/org/switch", &[("org_id", &org), ("back", "/forms")])
        .await;
    assert_eq!(status, 303, "{html}");

    let (status, _, html) = b.get("/forms").await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("href=\"/forms\" class=\"current\" aria-current=\"page\""),
        "{html}"
    );
    assert!(html.contains("No forms yet."));

    // A mistake keeps what was typed and says what is wrong.
    let fields = "email | Work email | required\nfirst_name | First name";
    let (status, _, html) = b
        .post(
            "/forms",
            &[
                ("name", "Webinar"),
                ("fields", fields),
                ("allowed_origins", "http://insecure.example"),
                ("dedupe", "fill_empty"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("allowed_origins[0]"), "{html}");
    assert!(html.contains("value=\"Webinar\""), "{html}");

    let (status, location, html) = b
        .post(
            "/forms",
            &[
                ("name", "Webinar"),
                ("fields", fields),
                ("allowed_origins", SITE),
                ("consent_text", "You may mail me about the webinar."),
                ("consent_version", "v1"),
                ("dedupe", "fill_empty"),
                ("accept_without_stamp", "on"),
                ("max_per_hour", "50"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{html}");
    let id = location
        .strip_prefix("/forms/")
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let (status, _, html) = b.get(&location).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Form created."), "{html}");
    // The snippet, escaped inside its textarea, posting to the form's public address.
    let (_, v) = s
        .api
        .call(Method::GET, &format!("/api/v1/forms/{id}"), &s.token, None)
        .await;
    let key = v["public_key"].as_str().unwrap();
    assert!(html.contains(&format!("/f/{key}&#34;")), "{html}");
    assert!(html.contains("<textarea class=\"embed\""), "{html}");
    assert_eq!(v["max_per_hour"], 50);
    assert_eq!(v["consent_version"], "v1");

    let (status, location, _) = b.post(&format!("/forms/{id}/pause"), &[]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/forms/{id}?done=paused").as_str())
    );
    let (_, _, html) = b.get(&location).await;
    assert!(html.contains("Resume"), "{html}");
    let (_, v) = s
        .api
        .call(Method::GET, &format!("/api/v1/forms/{id}"), &s.token, None)
        .await;
    assert_eq!(v["status"], "paused");

    let (status, location, _) = b.post(&format!("/forms/{id}/delete"), &[]).await;
    assert_eq!((status, location.as_str()), (303, "/forms?done=deleted"));
    s.app.stop().await;
}

#[tokio::test]
async fn forms_dedupe_modes_leave_or_overwrite_an_existing_lead() {
    let s = setup("dedupe").await;
    let (status, v) = s
        .api
        .call(
            Method::POST,
            "/api/v1/leads",
            &s.token,
            Some(
                json!({ "email": "max@visitor.example", "first_name": "Max", "source": "import" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (_, keep) = create_form(&s, "Keep", json!({ "dedupe": "create_only" })).await;
    let (_, overwrite) = create_form(&s, "Overwrite", json!({ "dedupe": "update_existing" })).await;
    let (status, v) = s
        .api
        .call(
            Method::POST,
            "/api/v1/forms",
            &s.token,
            Some(definition("Keep", json!({}))),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    let c = s.app.client();
    let body = |first: &str| {
        encode(&[
            ("email", "MAX@visitor.example"),
            ("first_name", first),
            ("company_name", "Maxwell Ltd"),
            ("consent", "yes"),
        ])
    };
    let a = post(&c, &s.app, &keep, Some(SITE), body("Maximilian"), true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let lead = &leads_with(&s, "max@visitor.example").await[0];
    assert_eq!(lead["first_name"], "Max");
    assert!(lead["company_name"].is_null(), "{lead}");
    assert_eq!(lead["source"], "import");

    let a = post(&c, &s.app, &overwrite, Some(SITE), body("Maximilian"), true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let leads = leads_with(&s, "max@visitor.example").await;
    assert_eq!(leads.len(), 1);
    assert_eq!(leads[0]["first_name"], "Maximilian");
    assert_eq!(leads[0]["company_name"], "Maxwell Ltd");
    // Both submissions left a consent record on the one lead.
    let pool = s.app.db().superuser_pool().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.consent_records WHERE lead_id = $1")
        .bind(leads[0]["id"].as_str().unwrap().parse::<Uuid>().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    s.app.stop().await;
}

#[tokio::test]
async fn forms_owners_default_to_the_creator_and_stay_on_replacement() {
    let s = setup("owners").await;
    let (id, _) = create_form(&s, "Owned", json!({})).await;
    let (_, v) = s
        .api
        .call(Method::GET, &format!("/api/v1/forms/{id}"), &s.token, None)
        .await;
    let owners = v["owners"].clone();
    assert_eq!(owners.as_array().map(Vec::len), Some(1), "{v}");
    // A replacement that does not name owners keeps them; a non-member is refused.
    let (status, v) = s
        .api
        .call(
            Method::PUT,
            &format!("/api/v1/forms/{id}"),
            &s.token,
            Some(definition("Owned", json!({ "thank_you": "Thanks!" }))),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["owners"].clone(), v["thank_you"].as_str()),
        (owners, Some("Thanks!"))
    );
    let (status, v) = s
        .api
        .call(
            Method::PUT,
            &format!("/api/v1/forms/{id}"),
            &s.token,
            Some(definition("Owned", json!({ "owners": [Uuid::now_v7()] }))),
        )
        .await;
    assert_eq!(status, 400, "{v}");

    // An API key's form notifies nobody unless it names owners.
    let admin = s.api.raise_to_aal2(&s.token).await;
    let admin = s.api.switch(&admin, s.org).await;
    let key = s
        .api
        .create_key(
            &admin,
            json!({ "name": "site", "scopes": ["lead_search_and_management"] }),
        )
        .await;
    let (status, v) = s
        .api
        .call(
            Method::POST,
            "/api/v1/forms",
            &key,
            Some(definition("By key", json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["owners"], json!([]));
    // Every change is in the audit trail.
    let pool = s.app.db().superuser_pool().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM app.audit_log WHERE action LIKE 'form.%' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actions, ["form.create", "form.update", "form.create"]);
    s.app.stop().await;
}
