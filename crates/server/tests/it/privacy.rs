//! Data-subject requests and the CCPA flags through the front door: an access package holds
//! every item about a person (the lead, notes, activities, lists, campaign messages, consent
//! records, audit entries), an erasure removes them and keeps the address from coming back by
//! import, form or hand; California residents are flagged on every path in, opt-outs stay out
//! of exports and campaigns, and deadlines follow the law with reminders, then an alert.

use std::sync::Arc;
use std::time::Duration;

use leadgen::clock::OffsetClock;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::campaigns::{dkim_key, new_lead, verified_sender, wait_state};
use crate::helpers::{TestApp, TestDb, pg_base, run_leadgen, server_env};
use crate::orgs::{Api, org_with_every_role};

const NO_CONFIRM: (&str, &str) = ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false");
const SITE: &str = "https://shop.example";

async fn lead_by_email(api: &Api, token: &str, email: &str) -> Vec<Value> {
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads?email={email}"),
            token,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

async fn post_form(app: &TestApp, key: &str, email: &str, name: &str) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("email", email),
            ("first_name", name),
            ("consent", "yes"),
            ("homepage_url", ""),
        ])
        .finish();
    let res = app
        .client()
        .post(app.https_url(&format!("/f/{key}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Mozilla/5.0 (PrivacyTest)")
        .header("origin", SITE)
        .header("accept", "text/html")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

async fn request(api: &Api, token: &str, body: Value) -> Value {
    let (s, v) = api
        .call(Method::POST, "/api/v1/privacy/requests", token, Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn complete(api: &Api, token: &str, id: &str) -> Value {
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/privacy/requests/{id}/complete"),
            token,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn days_between(a: &Value, b: &Value) -> i64 {
    let p = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    (p(b) - p(a)).whole_days()
}

#[tokio::test]
async fn an_access_package_holds_every_item_and_an_erasure_removes_them_for_good() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "dsr").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    let su = app.db().superuser_pool().await;

    // Ada comes in through a capture form, with her consent recorded.
    let (s, form) = api
        .call(
            Method::POST,
            "/api/v1/forms",
            admin,
            Some(json!({
                "name": "Contact",
                "fields": [{"name": "email"}, {"name": "first_name", "required": true}],
                "consent_text": "Shop may contact me.",
                "consent_version": "v7",
                "allowed_origins": [SITE],
            })),
        )
        .await;
    assert_eq!(s, 201, "{form}");
    let key = form["public_key"].as_str().unwrap().to_string();
    post_form(&app, &key, "ada@person.test", "Ada").await;
    let found = lead_by_email(&api, admin, "ada@person.test").await;
    assert_eq!(found.len(), 1);
    let ada = found[0]["id"].as_str().unwrap().to_string();

    // A salesperson works with her: a note, a call, a private list.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{ada}/notes"),
            user,
            Some(json!({ "body": "Met Ada at the fair; wants a demo" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{ada}/activities"),
            user,
            Some(json!({ "kind": "call", "summary": "Intro call with Ada" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, list) = api
        .call(
            Method::POST,
            "/api/v1/lists",
            user,
            Some(json!({ "name": "My fair contacts" })),
        )
        .await;
    assert_eq!(s, 201, "{list}");
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/lists/{}/leads", list["id"].as_str().unwrap()),
            user,
            Some(json!({ "leads": [ada] })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{ada}"),
            user,
            Some(json!({ "tags": ["launch"] })),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // A campaign goes to her and to Grace; Sam opted out of the sale of his data, so not to him.
    let grace = new_lead(
        &api,
        admin,
        json!({ "first_name": "Grace", "email": "grace@other.test", "tags": ["launch"] }),
    )
    .await;
    let sam = new_lead(
        &api,
        admin,
        json!({ "first_name": "Sam", "email": "sam@other.test", "tags": ["launch"] }),
    )
    .await;
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{sam}/ccpa"),
            user,
            Some(json!({ "do_not_sell": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        admin,
        "news@acme.test",
    )
    .await;
    let (s, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            admin,
            Some(json!({ "name": "Launch", "subject": "Hello", "text": "We launched." })),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            admin,
            Some(
                json!({ "name": "Launch", "template_id": tpl["id"], "sender_id": sender,
                         "audience": { "query": "tags=launch" } }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let campaign = c["id"].as_str().unwrap().to_string();
    let (_, a) = api
        .call(
            Method::GET,
            &format!("/api/v1/campaigns/{campaign}/audience"),
            admin,
            None,
        )
        .await;
    assert_eq!(a, json!({ "leads": 3, "suppressed": 1, "recipients": 2 }));
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{campaign}/send"),
            admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let done = wait_state(&api, admin, &campaign, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 2, "{done}");
    assert_eq!(done["stats"]["suppressed"], 1, "{done}");

    // Only admins take requests; others are refused whatever the address.
    for token in [manager, user] {
        let (s, _) = api
            .call(
                Method::POST,
                "/api/v1/privacy/requests",
                token,
                Some(json!({ "kind": "access", "email": "ada@person.test" })),
            )
            .await;
        assert_eq!(s, 403);
    }
    for (body, field) in [
        (
            json!({ "kind": "delete", "email": "ada@person.test" }),
            "kind",
        ),
        (json!({ "kind": "access", "email": "ada" }), "email"),
        (
            json!({ "kind": "access", "email": "ada@person.test", "law": "pipeda" }),
            "law",
        ),
        (
            json!({ "kind": "access", "email": "ada@person.test", "received_at": "2999-01-01T00:00:00Z" }),
            "received_at",
        ),
    ] {
        let (s, v) = api
            .call(Method::POST, "/api/v1/privacy/requests", admin, Some(body))
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }

    // Access: a GDPR request (Ada is not in California), due in 30 days, and its package.
    let access = request(
        &api,
        admin,
        json!({ "kind": "access", "email": " Ada@Person.test " }),
    )
    .await;
    assert_eq!(access["law"], "gdpr");
    assert_eq!(access["leads"], 1);
    assert_eq!(access["status"], "open");
    assert_eq!(access["email"], "ada@person.test");
    assert_eq!(days_between(&access["received_at"], &access["due_at"]), 30);
    let access_id = access["id"].as_str().unwrap().to_string();
    let (s, p) = api
        .call(
            Method::GET,
            &format!("/api/v1/privacy/requests/{access_id}/package"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["email"], "ada@person.test");
    let item = &p["leads"][0];
    assert_eq!(item["lead"]["id"], ada);
    assert_eq!(item["lead"]["email"], "ada@person.test");
    assert_eq!(item["lead"]["first_name"], "Ada");
    assert_eq!(item["lead"]["source"], "form:Contact");
    assert_eq!(
        item["notes"][0]["body"],
        "Met Ada at the fair; wants a demo"
    );
    assert_eq!(item["activities"][0]["summary"], "Intro call with Ada");
    // The salesperson's private list too: the person has a right to know of it.
    assert_eq!(item["lists"][0]["name"], "My fair contacts");
    assert_eq!(item["consent_records"][0]["consent_version"], "v7");
    assert_eq!(item["consent_records"][0]["form"], "Contact");
    assert_eq!(item["consent_records"][0]["ip"], "127.0.0.1");
    assert_eq!(
        item["consent_records"][0]["user_agent"],
        "Mozilla/5.0 (PrivacyTest)"
    );
    let actions: Vec<&str> = item["audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"lead.note.add") && actions.contains(&"lead.update"),
        "{actions:?}"
    );
    assert_eq!(p["campaign_messages"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["campaign_messages"][0]["campaign"], "Launch");
    assert_eq!(p["campaign_messages"][0]["state"], "sent");
    assert_eq!(p["requests"][0]["kind"], "access");
    // Nothing about anyone else.
    let text = p.to_string();
    assert!(
        !text.contains("grace@other.test") && !text.contains("Grace") && !text.contains(&grace),
        "{text}"
    );
    let v = complete(&api, admin, &access_id).await;
    assert_eq!(v["status"], "completed");

    // Erasure: every copy goes, and the address is suppressed as erased.
    let erasure = request(
        &api,
        admin,
        json!({ "kind": "erasure", "email": "ada@person.test", "note": "by email" }),
    )
    .await;
    let erasure_id = erasure["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/privacy/requests/{erasure_id}/package"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 409, "an erasure has no package: {v}");
    let v = complete(&api, admin, &erasure_id).await;
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(
        v["outcome"],
        json!({ "leads_deleted": 1, "notes_deleted": 1, "activities_deleted": 1,
                "consent_records_deleted": 1, "list_entries_deleted": 1,
                "campaign_events_scrubbed": 0, "suppressed": "erased" })
    );
    assert_eq!(v["email"], Value::Null, "the request forgets the address");
    assert_eq!(v["leads"], 0);
    // Done twice, it does nothing more.
    let again = complete(&api, admin, &erasure_id).await;
    assert_eq!(again["outcome"], v["outcome"]);
    assert_eq!(again["completed_at"], v["completed_at"]);

    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/leads/{ada}"), admin, None)
        .await;
    assert_eq!(s, 404);
    let ada_id: Uuid = ada.parse().unwrap();
    let left: (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM app.leads WHERE id = $1),
                (SELECT count(*) FROM app.lead_notes WHERE lead_id = $1),
                (SELECT count(*) FROM app.lead_activities WHERE lead_id = $1),
                (SELECT count(*) FROM app.consent_records WHERE lead_id = $1),
                (SELECT count(*) FROM app.lead_list_entries WHERE lead_id = $1)",
    )
    .bind(ada_id)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(left, (0, 0, 0, 0, 0));
    let (reason, ct): (String, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT s.reason, r.email_ct FROM app.suppressions s
         JOIN app.subject_requests r ON r.org_id = s.org_id AND r.email_bidx = s.email_bidx
         WHERE s.org_id = $1 AND r.kind = 'erasure'",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!((reason.as_str(), ct), ("erased", None));
    // The name is nowhere in the organization's lead data any more.
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM app.leads WHERE org_id = $1 AND (first_name = 'Ada' OR notes_text LIKE '%Ada%')",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(n, 0);

    // The address does not come back: an import row is refused with the reason...
    let done = crate::imports::import(
        &app,
        &api,
        user,
        "again.csv",
        b"first_name,email\nAda,ADA@person.test\nLin,lin@new.test\n".to_vec(),
        "create_only",
    )
    .await;
    assert_eq!(done["created"], 1, "{done}");
    assert_eq!(done["rejected"], 1, "{done}");
    let res = app
        .client()
        .get(app.https_url(&format!(
            "/api/v1/imports/{}/issues",
            done["id"].as_str().unwrap()
        )))
        .bearer_auth(user)
        .send()
        .await
        .unwrap();
    let issues = res.text().await.unwrap();
    assert!(
        issues.contains("erased on request") && issues.contains("email") && issues.contains('2'),
        "{issues}"
    );
    // ...a lead made by hand is refused with it...
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            user,
            Some(json!({ "first_name": "Ada", "email": "ada@person.test" })),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("erased on request"), "{v}");
    // ...and a capture form answers as usual but stores nothing.
    let page = post_form(&app, &key, "ada@person.test", "Ada").await;
    assert!(page.contains("Thank you"), "{page}");
    assert!(
        lead_by_email(&api, admin, "ada@person.test")
            .await
            .is_empty()
    );
    assert_eq!(
        lead_by_email(&api, admin, "grace@other.test").await.len(),
        1
    );

    // Each step is in the audit trail, which still verifies.
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM app.audit_log WHERE org_id = $1 AND action LIKE 'privacy.request.%'",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(n, 5, "two creations, a package, two completions");
    let env = server_env(Some(app.db()), app.data_dir.path());
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    app.stop().await;
}

#[tokio::test]
async fn california_leads_are_flagged_on_the_way_in_and_opt_outs_stay_out_of_exports() {
    let app = TestApp::spawn_with(&[NO_CONFIRM]).await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "ccpa").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);

    // Derived from region and country on every write path.
    let mut ids = Vec::new();
    for (email, region, country, want) in [
        ("a@ccpa.test", "CA", "US", true),
        ("b@ccpa.test", "California", "", true),
        ("c@ccpa.test", "CA", "Canada", false),
        ("d@ccpa.test", "Ontario", "CA", false),
    ] {
        let mut body = json!({ "email": email, "region": region });
        if !country.is_empty() {
            body["country"] = json!(country);
        }
        let (s, v) = api
            .call(Method::POST, "/api/v1/leads", user, Some(body))
            .await;
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["california"], want, "{email}: {v}");
        assert_eq!(v["do_not_sell"], false);
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let done = crate::imports::import(
        &app,
        &api,
        user,
        "west.csv",
        b"email,region,country\ne@ccpa.test,us-ca,United States\nf@ccpa.test,Nevada,US\n".to_vec(),
        "create_only",
    )
    .await;
    assert_eq!(done["created"], 2, "{done}");
    let (s, v) = api
        .call(Method::GET, "/api/v1/leads?california=true", user, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let mut emails: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["a@ccpa.test", "b@ccpa.test", "e@ccpa.test"]);
    // A capture form gives the CCPA notice at the point of collection, in its snippet.
    let (s, form) = api
        .call(
            Method::POST,
            "/api/v1/forms",
            admin,
            Some(json!({
                "name": "West coast",
                "fields": [{"name": "email"}, {"name": "region"}],
                "ccpa_notice": "We collect your address & region to answer you; we never sell it.",
                "allowed_origins": [SITE],
            })),
        )
        .await;
    assert_eq!(s, 201, "{form}");
    assert!(
        form["embed"].as_str().unwrap().contains(
            "<p class=\"leadgen-notice\">We collect your address &amp; region to answer you; we never sell it.</p>"
        ),
        "{form}"
    );

    // Moving the lead moves the flag.
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{}", ids[0]),
            user,
            Some(json!({ "country": "Mexico" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["california"], false, "{v}");

    // Set explicitly when region and country do not tell, and back to derived with null.
    let ccpa = |i: usize| format!("/api/v1/leads/{}/ccpa", ids[i]);
    let (s, v) = api
        .call(
            Method::PUT,
            &ccpa(2),
            user,
            Some(json!({ "california": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({ "california": true, "california_explicit": true, "do_not_sell": false })
    );
    let (s, v) = api
        .call(
            Method::PUT,
            &ccpa(2),
            user,
            Some(json!({ "california": null })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["california"], false);
    for body in [
        json!({}),
        json!({ "california": "yes" }),
        json!({ "dns": true }),
    ] {
        let (s, v) = api.call(Method::PUT, &ccpa(2), user, Some(body)).await;
        assert!(s == 400 || s == 422, "{s} {v}");
    }
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{}/ccpa", Uuid::now_v7()),
            user,
            Some(json!({ "do_not_sell": true })),
        )
        .await;
    assert_eq!(s, 404);

    // Anyone who edits the lead records an opt-out; only an admin withdraws it.
    let (s, v) = api
        .call(
            Method::PUT,
            &ccpa(1),
            user,
            Some(json!({ "do_not_sell": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for token in [user, manager] {
        let (s, v) = api
            .call(
                Method::PUT,
                &ccpa(1),
                token,
                Some(json!({ "do_not_sell": false })),
            )
            .await;
        assert_eq!(s, 403, "{v}");
    }

    // Exports leave the opted-out lead out unless asked, then flag it.
    let export = |query: &str| {
        let url = app.https_url(&format!("/api/v1/leads/export?format=csv{query}"));
        let c = app.client();
        let token = manager.clone();
        async move {
            let res = c.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };
    let csv = export("").await;
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[header.len() - 2..], ["california", "do_not_sell"]);
    assert!(!csv.contains("b@ccpa.test"), "{csv}");
    assert!(csv.contains("e@ccpa.test"), "{csv}");
    let csv = export("&include_do_not_sell=true").await;
    let row = csv
        .lines()
        .find(|l| l.contains("b@ccpa.test"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(row.ends_with(",true,true"), "{row}");

    // The admin withdraws it, on the person's word; audited both ways.
    let (s, v) = api
        .call(
            Method::PUT,
            &ccpa(1),
            admin,
            Some(json!({ "do_not_sell": false })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(export("").await.contains("b@ccpa.test"));
    let su = app.db().superuser_pool().await;
    let changes: Vec<(Value, Value)> = sqlx::query_as(
        "SELECT before, after FROM app.audit_log WHERE org_id = $1 AND action = 'lead.ccpa' ORDER BY seq",
    )
    .bind(org)
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(changes[3].0["do_not_sell"], true);
    assert_eq!(changes[3].1["do_not_sell"], false);
    app.stop().await;
}

#[tokio::test]
async fn request_deadlines_follow_the_law_with_reminders_then_one_alert() {
    let (hook, got) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let waf_path = crate::perimeter::shipped_rules_alerting(dir.path(), &hook);
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(
        TestDb::new().await,
        &[
            NO_CONFIRM,
            (
                "LEADGEN_PERIMETER__WAF_RULES_PATH",
                waf_path.to_str().unwrap(),
            ),
            ("LEADGEN_PRIVACY__REQUEST_CHECK_SECS", "1"),
        ],
        clock.clone(),
    )
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "deadline").await;
    let admin = &t[0];
    new_lead(
        &api,
        admin,
        json!({ "email": "cal@resident.test", "region": "California", "country": "US" }),
    )
    .await;
    new_lead(
        &api,
        admin,
        json!({ "email": "eu@resident.test", "country": "DE" }),
    )
    .await;

    // A California resident's request follows the CCPA: 45 days.
    let cal = request(
        &api,
        admin,
        json!({ "kind": "access", "email": "cal@resident.test" }),
    )
    .await;
    assert_eq!(cal["law"], "ccpa");
    assert_eq!(days_between(&cal["received_at"], &cal["due_at"]), 45);
    let opt = request(
        &api,
        admin,
        json!({ "kind": "ccpa_opt_out", "email": "cal@resident.test" }),
    )
    .await;
    assert_eq!(opt["law"], "ccpa");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/privacy/requests",
            admin,
            Some(json!({ "kind": "ccpa_know", "email": "eu@resident.test", "law": "gdpr" })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // Anyone else's: the GDPR, 30 days.
    let eu = request(
        &api,
        admin,
        json!({ "kind": "erasure", "email": "eu@resident.test" }),
    )
    .await;
    assert_eq!(eu["law"], "gdpr");
    assert_eq!(days_between(&eu["received_at"], &eu["due_at"]), 30);
    let eu_id = eu["id"].as_str().unwrap().to_string();
    // An address no lead has is recorded all the same (the person may still be asked about).
    let unknown = request(
        &api,
        admin,
        json!({ "kind": "access", "email": "nobody@resident.test" }),
    )
    .await;
    assert_eq!(unknown["leads"], 0);
    let (s, v) = api
        .call(
            Method::POST,
            &format!(
                "/api/v1/privacy/requests/{}/reject",
                unknown["id"].as_str().unwrap()
            ),
            admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 400, "a rejection says why: {v}");
    let (s, v) = api
        .call(
            Method::POST,
            &format!(
                "/api/v1/privacy/requests/{}/reject",
                unknown["id"].as_str().unwrap()
            ),
            admin,
            Some(json!({ "note": "identity not verified" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "rejected");

    // The opt-out flags the lead and keeps campaigns away.
    let v = complete(&api, admin, opt["id"].as_str().unwrap()).await;
    assert_eq!(v["outcome"]["leads_flagged_do_not_sell"], 1, "{v}");
    let lead = lead_by_email(&api, admin, "cal@resident.test").await;
    assert_eq!(lead[0]["do_not_sell"], true);
    let (_, v) = api
        .call(Method::GET, "/api/v1/suppressions", admin, None)
        .await;
    assert_eq!(v["reasons"]["ccpa_opt_out"], 1, "{v}");
    let (s, v) = api
        .call(
            Method::GET,
            "/api/v1/privacy/requests?status=open",
            admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let open: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(open, ["erasure", "access"], "nearest deadline first");

    let reminders = || {
        app.mailbox()
            .into_iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("data-subject request is due"))
            })
            .collect::<Vec<_>>()
    };
    let alerts = || {
        got.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.to_string())
            .filter(|t| t.contains("subject-request-due"))
            .collect::<Vec<_>>()
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(reminders().is_empty() && alerts().is_empty());

    // A week before the GDPR deadline the admins hear of it; three days before, the alert.
    clock.advance(23 * 86_400 + 3600);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = reminders();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0]["to"].as_str().unwrap().starts_with("admin@"), "{r:?}");
    assert!(r[0]["text"].as_str().unwrap().contains(&eu_id), "{r:?}");
    assert!(alerts().is_empty());
    clock.advance(4 * 86_400);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let a = alerts();
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0].contains(&eu_id), "{a:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(alerts().len(), 1, "raised once");
    assert_eq!(reminders().len(), 1, "the 2-day reminder is not due yet");
    app.stop().await;
}

/// Every place in the database a value could hide: (table, column, type) of schema `app`.
async fn columns(su: &sqlx::PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.udt_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
         WHERE c.table_schema = 'app'
           AND c.udt_name IN ('text', 'varchar', 'bpchar', 'citext', 'json', 'jsonb', '_text', 'inet', 'uuid', '_uuid')
         ORDER BY 1, 2",
    )
    .fetch_all(su)
    .await
    .unwrap()
}

/// The columns (`table.column`) where any of `needles` is found: as text, case-insensitive, in
/// every text-like column; as a value in every uuid column.
pub(crate) async fn where_found(su: &sqlx::PgPool, needles: &[&str], id: Uuid) -> Vec<String> {
    let mut found = Vec::new();
    for (table, column, kind) in columns(su).await {
        let sql = match kind.as_str() {
            "uuid" => format!("SELECT count(*) FROM app.\"{table}\" WHERE \"{column}\" = $1"),
            "_uuid" => {
                format!("SELECT count(*) FROM app.\"{table}\" WHERE $1 = ANY (\"{column}\")")
            }
            _ => format!(
                "SELECT count(*) FROM app.\"{table}\" WHERE \"{column}\"::text ILIKE ANY ($2)"
            ),
        };
        let patterns: Vec<String> = needles
            .iter()
            .map(|n| format!("%{n}%"))
            .chain(std::iter::once(format!("%{id}%")))
            .collect();
        let (n,): (i64,) = sqlx::query_as(&sql)
            .bind(id)
            .bind(&patterns)
            .fetch_one(su)
            .await
            .unwrap_or_else(|e| panic!("{table}.{column}: {e}"));
        if n > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

#[tokio::test]
async fn a_deleted_account_leaves_no_personal_field_and_a_trail_that_still_verifies() {
    use leadgen_crypto::totp;
    let app = TestApp::spawn_with(&[NO_CONFIRM]).await;
    let api = Api::new(&app);
    let su = app.db().superuser_pool().await;
    let (org, t, _) = org_with_every_role(&app, &api, "leaving").await;
    let admin = &t[0];
    const UA: &str = "QuillBrowser/7.3 (deletion test)";

    // Zelda joins as a user, names herself and protects her account with an authenticator app.
    let email = "zelda.quillfeather@leaving.test";
    let (zt, zid) = api.sign_up(email).await;
    crate::orgs::invite_and_accept(&app, &api, admin, email, "user", &zt).await;
    let (s, v) = api
        .call(
            Method::PUT,
            "/auth/v1/user",
            &zt,
            Some(json!({ "data": { "full_name": "Zelda Quillfeather" } })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, f) = api
        .call(
            Method::POST,
            "/auth/v1/factors",
            &zt,
            Some(json!({ "factor_type": "totp" })),
        )
        .await;
    assert_eq!(s, 200, "{f}");
    let factor = f["id"].as_str().unwrap().to_string();
    let secret = totp::parse_base32(f["totp"]["secret"].as_str().unwrap()).unwrap();
    let (_, ch) = api
        .call(
            Method::POST,
            &format!("/auth/v1/factors/{factor}/challenge"),
            &zt,
            Some(json!({})),
        )
        .await;
    let step = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/auth/v1/factors/{factor}/verify"),
            &zt,
            Some(json!({ "challenge_id": ch["id"], "code": totp::code_at_step(&secret, step) })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let z = api.switch(v["access_token"].as_str().unwrap(), org).await;

    // Her own organization, which only she belongs to.
    let solo = api.create_org(&z, "Quillfeather Consulting").await;
    let zs = api.switch(&z, solo).await;
    new_lead(
        &api,
        &zs,
        json!({ "email": "client@solo.test", "first_name": "Solo" }),
    )
    .await;

    // In the shared organization: a lead she owns, a note, a private and a shared list.
    let z = api.switch(&zs, org).await;
    let pat = new_lead(
        &api,
        &z,
        json!({ "first_name": "Pat", "email": "pat@customer.test", "owner_id": zid }),
    )
    .await;
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{pat}/notes"),
            &z,
            Some(json!({ "body": "Called Pat; follow up in May" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let mut lists = Vec::new();
    for (name, shared) in [("Zelda's picks", false), ("Q3 targets", true)] {
        let (s, l) = api
            .call(
                Method::POST,
                "/api/v1/lists",
                &z,
                Some(json!({ "name": name, "shared": shared })),
            )
            .await;
        assert_eq!(s, 201, "{l}");
        let id = l["id"].as_str().unwrap().to_string();
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/api/v1/lists/{id}/leads"),
                &z,
                Some(json!({ "leads": [pat] })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        lists.push(id);
    }
    // A session from a browser of her own.
    let signed_in = app
        .client()
        .post(app.https_url("/auth/v1/token?grant_type=password"))
        .header("user-agent", UA)
        .json(&json!({ "email": email, "password": crate::orgs::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);

    // Asking: the password, and the second factor since she has one.
    let delete = |body: Value| {
        let (api, z) = (&api, z.clone());
        async move {
            api.call(Method::DELETE, "/auth/v1/user", &z, Some(body))
                .await
        }
    };
    let (s, v) = delete(json!({ "password": "not my password" })).await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (400, Some("invalid_credentials")),
        "{v}"
    );
    let (s, v) = delete(json!({ "password": crate::orgs::PASSWORD })).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("code"), "{v}");
    let (s, v) = delete(json!({
        "password": crate::orgs::PASSWORD,
        "code": totp::code_at_step(&secret, step + 1),
    }))
    .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        v["organizations_deleted_with_it"],
        json!(["Quillfeather Consulting"])
    );
    let due = time::OffsetDateTime::parse(
        v["deletion_due_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (due - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((7 * 24 - 1..=7 * 24).contains(&days), "{v}");
    // Every session is over; a mail says when.
    let (s, _) = api.call(Method::GET, "/auth/v1/user", &z, None).await;
    assert_eq!(s, 401);
    let mails = |subject: &str| {
        app.mailbox()
            .into_iter()
            .filter(|m| m["to"] == email && m["subject"].as_str() == Some(subject))
            .count()
    };
    assert_eq!(mails("Your LeadGen account will be deleted"), 1);

    // Nothing happens before the grace period ends.
    let env = server_env(Some(app.db()), app.data_dir.path());
    let as_of = |days: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (code, out, err) =
        run_leadgen(&["accounts", "purge", "--json", "--as-of", &as_of(6)], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["deleted"],
        json!([])
    );

    // Signing in cancels it, and says so.
    let again = app
        .client()
        .post(app.https_url("/auth/v1/token?grant_type=password"))
        .json(&json!({ "email": email, "password": crate::orgs::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(mails("Your LeadGen account will not be deleted"), 1);
    let (code, out, err) =
        run_leadgen(&["accounts", "purge", "--json", "--as-of", &as_of(8)], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["deleted"],
        json!([])
    );

    // An operator may delete it at once, and must say so.
    let (code, _, err) = run_leadgen(&["accounts", "delete", email], &env);
    assert_ne!(code, 0);
    assert!(err.contains("--now"), "{err}");
    let (code, out, err) = run_leadgen(&["accounts", "delete", email, "--now", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"][0]["organizations_deleted"], 1, "{report}");
    assert!(
        report["deleted"][0]["audit_rows_pseudonymised"]
            .as_u64()
            .unwrap()
            > 5
    );
    let pseudonym: Uuid = report["deleted"][0]["pseudonym"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !out.contains(email) && !out.contains(&zid.to_string()),
        "{out}"
    );
    assert_eq!(mails("Your LeadGen account is deleted"), 1);

    // The trail still verifies, and nothing of hers is left anywhere.
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let left = where_found(&su, &[email, "Zelda", "Quillfeather", UA], zid).await;
    assert!(left.is_empty(), "personal data left in {left:?}");
    // Her organization is gone, every row of it.
    let org_columns: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.columns
         WHERE table_schema = 'app' AND column_name = 'org_id' AND data_type = 'uuid'",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    // Its data keys are destroyed; only their record stays (see the organization deletion).
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.org_keys WHERE org_id = $1 AND destroyed_at IS NULL",
    )
    .bind(solo)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(live, 0);
    for (table,) in org_columns.into_iter().filter(|(t,)| t != "org_keys") {
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM app.\"{table}\" WHERE org_id = $1"
        ))
        .bind(solo)
        .fetch_one(&su)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} keeps rows of the deleted organization");
    }
    // The shared organization keeps its data: the lead (unassigned), the note (by the
    // pseudonym), the shared list; her private list is gone.
    let (owner, author): (Option<Uuid>, Uuid) = sqlx::query_as(
        "SELECT l.owner_id, n.author_id FROM app.leads l JOIN app.lead_notes n ON n.lead_id = l.id
         WHERE l.id = $1",
    )
    .bind(pat.parse::<Uuid>().unwrap())
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!((owner, author), (None, pseudonym));
    let kept: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM app.lead_lists WHERE org_id = $1 ORDER BY name")
            .bind(org)
            .fetch_all(&su)
            .await
            .unwrap();
    assert_eq!(kept, [("Q3 targets".to_string(),)]);
    // Her entries in the trail carry the pseudonym and no address; a row says which changed.
    let (by_her, with_ip): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(ip) FROM app.audit_log WHERE actor_id = $1")
            .bind(pseudonym)
            .fetch_one(&su)
            .await
            .unwrap();
    assert!(by_her > 3, "{by_her}");
    assert_eq!(with_ip, 0);
    let (declared,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM app.audit_log WHERE org_id = $1 AND action = 'account.pseudonymised'",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(declared, 1);

    // Any other row's personal fields are still held to their digest.
    sqlx::query(
        "UPDATE app.audit_log SET after = '{\"fields\": [\"tampered\"]}'
         WHERE id = (SELECT min(id) FROM app.audit_log WHERE org_id = $1 AND personal_salt IS NOT NULL)",
    )
    .bind(org)
    .execute(&su)
    .await
    .unwrap();
    let (code, out, _) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("personal fields do not match"), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn a_restricted_leads_contact_details_need_a_reason_and_every_read_is_on_record() {
    let app = TestApp::spawn_with(&[NO_CONFIRM]).await;
    let api = Api::new(&app);
    let (_, t, ids) = org_with_every_role(&app, &api, "guarded").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    let (s, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            admin,
            Some(json!({ "name": "Board desk" })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let group = g["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/v1/org/groups/{group}/members/{}", ids[2]),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    let vera = new_lead(
        &api,
        admin,
        json!({ "first_name": "Vera", "last_name": "Quorum", "email": "vera@board.test",
                "phone": "+14155550142", "company_name": "Quorum Holdings", "title": "Chair" }),
    )
    .await;
    let open = new_lead(
        &api,
        admin,
        json!({ "first_name": "Otto", "email": "otto@open.test" }),
    )
    .await;
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{vera}/acl"),
            admin,
            Some(
                json!({ "read_groups": [group], "write_groups": [], "sensitivity": "restricted" }),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Read without a reason: the record, not the person's contact details.
    let get = |token: &str, why: Option<&str>| {
        let mut req = app
            .client()
            .get(app.https_url(&format!("/api/v1/leads/{vera}")))
            .bearer_auth(token);
        if let Some(w) = why {
            req = req.header("x-leadgen-justification", w);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = get(user, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["contact_details_hidden"], true);
    for field in ["first_name", "last_name", "email", "phone", "linkedin_url"] {
        assert_eq!(v[field], Value::Null, "{field}: {v}");
    }
    assert_eq!(v["company_name"], "Quorum Holdings");
    assert_eq!(v["title"], "Chair");
    // A reason too short to be one is refused, naming the field.
    let (s, v) = get(user, Some("need it")).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("justification"), "{v}");
    const WHY: &str = "Preparing the renewal call with the Quorum board";
    let (s, v) = get(user, Some(WHY)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["contact_details_hidden"], false);
    assert_eq!(v["email"], "vera@board.test");
    assert_eq!(v["phone"], "+14155550142");
    // Outside the group, no reason opens it.
    let (s, _) = get(manager, Some(WHY)).await;
    assert_eq!(s, 404);

    // Searches, lists and exports never carry them.
    let (s, v) = api
        .call(Method::GET, "/api/v1/leads?q=Quorum", user, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["id"], vera);
    assert_eq!(v["items"][0]["email"], Value::Null);
    assert!(!v.to_string().contains("vera@board.test"));
    let res = app
        .client()
        .get(app.https_url("/api/v1/leads/export?format=csv"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csv = res.text().await.unwrap();
    assert!(
        csv.contains(&vera) && csv.contains("Quorum Holdings"),
        "{csv}"
    );
    assert!(
        !csv.contains("vera@board.test") && !csv.contains("Vera"),
        "{csv}"
    );
    assert!(csv.contains("otto@open.test"), "{csv}");

    // Every read is on record, with who, what and why; only admins see the record.
    let (s, _) = api
        .call(Method::GET, "/api/v1/lead-reads", manager, None)
        .await;
    assert_eq!(s, 403);
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/lead-reads?lead={vera}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(
        ["read", "reveal", "search", "export"]
            .iter()
            .all(|k| kinds.contains(k)),
        "{kinds:?}"
    );
    let reveal = items.iter().find(|i| i["kind"] == "reveal").unwrap();
    assert_eq!(reveal["justification"], WHY);
    assert_eq!(reveal["actor_email"], "user@guarded.test");
    assert_eq!(reveal["restricted"], 1);
    let plain = items
        .iter()
        .find(|i| i["kind"] == "read" && i["actor_email"] == "user@guarded.test")
        .unwrap();
    assert_eq!(plain["justification"], Value::Null);
    // Confidential leads' reads too.
    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/leads/{open}"), manager, None)
        .await;
    assert_eq!(s, 200);
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/lead-reads?lead={open}&kind=read"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["actor_email"], "manager@guarded.test", "{v}");
    assert_eq!(v["items"][0]["restricted"], 0);
    let (s, v) = api
        .call(Method::GET, "/api/v1/lead-reads?kind=peek", admin, None)
        .await;
    assert_eq!(s, 400, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn chains_from_before_erasable_rows_are_upgraded_and_then_pseudonymised() {
    let app = TestApp::spawn_with(&[NO_CONFIRM]).await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "oldchain").await;
    new_lead(&api, &t[2], json!({ "first_name": "Kept" })).await;
    let su = app.db().superuser_pool().await;

    // The chain as it was written before migration 39: version 1, fields hashed directly.
    type Old = (
        i64,
        i64,
        time::OffsetDateTime,
        Option<Uuid>,
        String,
        Option<String>,
        Option<Value>,
        Option<Value>,
        Option<sqlx::types::ipnetwork::IpNetwork>,
        Option<String>,
    );
    let rows: Vec<Old> = sqlx::query_as(
        "SELECT id, seq, at, actor_id, action, target, before, after, ip, request_id
         FROM app.audit_log WHERE org_id = $1 ORDER BY seq",
    )
    .bind(org)
    .fetch_all(&su)
    .await
    .unwrap();
    let mut prev = vec![0u8; 32];
    for (id, seq, at, actor_id, action, target, before, after, ip, request_id) in &rows {
        let hash = leadgen::audit::row_hash(
            &prev,
            &leadgen::audit::Row {
                org_id: org,
                seq: *seq,
                at: *at,
                actor_id: *actor_id,
                action,
                target: target.as_deref(),
                before: before.as_ref(),
                after: after.as_ref(),
                ip: ip.map(|n| n.ip()),
                request_id: request_id.as_deref(),
            },
        );
        sqlx::query(
            "UPDATE app.audit_log SET hash_version = 1, personal_sha256 = NULL, personal_salt = NULL,
                pseudonymised_at = NULL, prev_hash = $2, hash = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(&prev)
        .bind(&hash)
        .execute(&su)
        .await
        .unwrap();
        prev = hash;
    }
    let env = server_env(Some(app.db()), app.data_dir.path());
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "an old chain verifies as it is: {out}{err}");

    // Such rows cannot be pseudonymised: the deletion stops, changing nothing, and says why.
    let (code, out, err) =
        run_leadgen(&["accounts", "delete", "user@oldchain.test", "--now"], &env);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("leadgen audit upgrade"), "{err}");
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM app.users WHERE email = 'user@oldchain.test'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(n, 1);

    // The upgrade verifies, re-hashes and records the old head; then the deletion goes through.
    let (code, out, err) = run_leadgen(&["audit", "upgrade", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["upgraded"][0]["rows"], rows.len(), "{report}");
    assert_eq!(report["upgraded"][0]["old_head"], hex::encode(&prev));
    let (old,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM app.audit_log WHERE hash_version = 1")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(old, 0);
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) =
        run_leadgen(&["accounts", "delete", "user@oldchain.test", "--now"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    app.stop().await;
}

#[tokio::test]
async fn an_organization_is_deleted_with_all_its_data_after_its_grace_period() {
    // A fixed site, so a copy of the database served elsewhere accepts the same sessions.
    const SITE_URL: (&str, &str) = ("LEADGEN_AUTH__SITE_URL", "https://leadgen.example");
    let app = TestApp::spawn_with(&[NO_CONFIRM, SITE_URL]).await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "closing").await;
    let (admin, manager) = (&t[0], &t[1]);
    let (_, other_t, _) = org_with_every_role(&app, &api, "staying").await;
    let kept = new_lead(&api, &other_t[0], json!({ "email": "kept@staying.test" })).await;
    let lead = new_lead(&api, admin, json!({ "email": "gone@closing.test" })).await;
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{lead}/notes"),
            admin,
            Some(json!({ "body": "Quarterly review" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    crate::imports::import(
        &app,
        &api,
        admin,
        "closing.csv",
        b"first_name,email\nLin,lin@closing.test\n".to_vec(),
        "create_only",
    )
    .await;
    let su = app.db().superuser_pool().await;
    let env = server_env(Some(app.db()), app.data_dir.path());
    let purge = |days: i64| {
        let at = (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let (code, out, err) = run_leadgen(&["accounts", "purge", "--json", "--as-of", &at], &env);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap()["organizations_deleted"].clone()
    };

    // Only an admin, and only by typing the name.
    let delete = |token: &str, confirm: &str| {
        let (api, token, confirm) = (&api, token.to_string(), confirm.to_string());
        async move {
            api.call(
                Method::DELETE,
                "/api/v1/org",
                &token,
                Some(json!({ "confirm": confirm })),
            )
            .await
        }
    };
    let (s, _) = delete(manager, "Org closing").await;
    assert_eq!(s, 403);
    let (s, v) = delete(admin, "org closing").await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("confirm"), "{v}");
    let (s, v) = delete(admin, "Org closing").await;
    assert_eq!(s, 202, "{v}");
    let (_, current) = api.call(Method::GET, "/api/v1/org", manager, None).await;
    assert_eq!(
        current["deletion_due_at"], v["deletion_due_at"],
        "{current}"
    );
    assert!(app.mailbox().iter().any(|m| m["to"] == "admin@closing.test"
        && m["subject"] == "LeadGen: \"Org closing\" will be deleted"));
    // Not before the grace period ends, and not once an admin cancelled.
    assert_eq!(purge(6), json!([]));
    let cancel = || async {
        api.call(Method::POST, "/api/v1/org/deletion/cancel", admin, None)
            .await
            .0
    };
    assert_eq!(cancel().await, 200);
    assert_eq!(cancel().await, 409);
    assert_eq!(purge(8), json!([]));
    let (s, v) = delete(admin, "Org closing").await;
    assert_eq!(s, 202, "{v}");

    // A copy of the database taken before the deletion (a dump, as a backup would hold it)
    // reads fine on a server with the installation's secrets and key store...
    let key_dir = app.db().key_dir();
    let dump = tempfile::tempdir().unwrap();
    let dump_file = dump.path().join("before.sql");
    pg(&[
        "pg_dump",
        "--file",
        dump_file.to_str().unwrap(),
        &app.db().migrate_url(),
    ]);
    let copy = restored(&dump_file).await;
    let key = app_key(&app);
    let secrets = [
        NO_CONFIRM,
        SITE_URL,
        ("LEADGEN_SECRETS__ORG_KEY_DIR", key_dir.to_str().unwrap()),
        ("LEADGEN_SECRETS__APP_KEY", key.as_str()),
    ];
    let read = |copy: &TestDb| {
        let copy = copy.clone();
        let (admin, other) = (admin.clone(), other_t[0].clone());
        let (lead, kept) = (lead.clone(), kept.clone());
        async move {
            let server =
                TestApp::spawn_on(copy, &secrets, Arc::new(leadgen::clock::SystemClock)).await;
            let api = Api::new(&server);
            let closing = api
                .call(Method::GET, &format!("/api/v1/leads/{lead}"), &admin, None)
                .await;
            let staying = api
                .call(Method::GET, &format!("/api/v1/leads/{kept}"), &other, None)
                .await;
            server.stop().await;
            (closing, staying)
        }
    };
    let ((s, v), (_, k)) = read(&copy).await;
    assert_eq!(
        (s, v["email"].as_str()),
        (200, Some("gone@closing.test")),
        "{v}"
    );
    assert_eq!(k["email"], "kept@staying.test");
    let keys_before: Vec<i32> = sqlx::query_scalar("SELECT id FROM app.org_keys WHERE org_id = $1")
        .bind(org)
        .fetch_all(&su)
        .await
        .unwrap();
    assert!(!keys_before.is_empty());
    for id in &keys_before {
        assert!(key_dir.join(format!("{id}.key")).exists());
    }

    let (code, out, err) = run_leadgen(
        &[
            "accounts",
            "purge",
            "--json",
            "--as-of",
            &(time::OffsetDateTime::now_utc() + time::Duration::days(8))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["organizations_deleted"], json!([org]));
    assert_eq!(report["keys_destroyed"], json!(keys_before), "{report}");

    // ...and after it, the same copy holds nothing readable of the deleted organization: its
    // key is gone from the key store, while the other organization's data still reads.
    for id in &keys_before {
        assert!(!key_dir.join(format!("{id}.key")).exists());
    }
    let ((s, v), (ks, k)) = read(&copy).await;
    assert_eq!(s, 500, "{v}");
    assert!(!v.to_string().contains("gone@closing"), "{v}");
    assert_eq!(
        (ks, k["email"].as_str()),
        (200, Some("kept@staying.test")),
        "{k}"
    );
    let copy_su = copy.superuser_pool().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT l::text FROM app.leads l WHERE org_id = $1")
        .bind(org)
        .fetch_all(&copy_su)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "the copy still has the rows, as ciphertext");
    for r in &rows {
        assert!(!r.contains("gone@") && !r.contains("lin@"), "{r}");
    }
    // Running the purge again has nothing left to destroy.
    assert_eq!(purge(8), json!([]));

    // Every row that carried the organization is gone; its members' accounts and the other
    // organization stay.
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
         WHERE c.table_schema = 'app' AND c.column_name = 'org_id' AND c.data_type = 'uuid'",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    // The record of the organization's keys stays, marked destroyed: it is how a rerun knows
    // which key files to remove.
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.org_keys WHERE org_id = $1 AND destroyed_at IS NULL",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(live, 0);
    for (table,) in tables.into_iter().filter(|(t,)| t != "org_keys") {
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM app.\"{table}\" WHERE org_id = $1"
        ))
        .bind(org)
        .fetch_one(&su)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} keeps rows of the deleted organization");
    }
    let (users,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM app.users WHERE email LIKE '%@closing.test'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(users, 4, "the members keep their accounts");
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{kept}"),
            &other_t[0],
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    app.stop().await;
}

/// Runs a PostgreSQL client program; panics with its output when it fails.
fn pg(args: &[&str]) {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh database restored from a plain `pg_dump` file.
async fn restored(dump: &std::path::Path) -> TestDb {
    use sqlx::Connection as _;
    let name = format!("lg_test_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let db = TestDb { name };
    pg(&[
        "psql",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--file",
        dump.to_str().unwrap(),
        &db.migrate_url(),
    ]);
    db
}

/// The application key a test server generated for itself (a copy of its database needs it to
/// accept the sessions in it).
fn app_key(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.path().join("secrets/dev-app-key")).unwrap()
}
