//! Campaigns through the front door and a real SMTP server: templates and merge fields, sender
//! verification, audience and suppression, delivery signed with DKIM (checked by dkimpy, an
//! independent verifier), RFC 8058 one-click unsubscribe, approval, ACLs, relay failures,
//! bounce reports, and exactly-once delivery across a `kill -9`.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    MailSink, Proc, TEST_MASTER_KEY, TestApp, TestDb, client_for, run_leadgen, server_env,
};
use crate::orgs::{Api, invite_and_accept};

const NO_CONFIRM: (&str, &str) = ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false");

/// Runs `leadgen dkim generate` against `db` (the operator's command); the TXT record.
pub(crate) fn dkim_key(db: &TestDb, domain: &str, algorithm: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(Some(db), dir.path());
    env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    let (code, out, err) = run_leadgen(
        &[
            "dkim",
            "generate",
            "--domain",
            domain,
            "--selector",
            "s2026",
            "--algorithm",
            algorithm,
            "--json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["name"], format!("s2026._domainkey.{domain}"));
    v["record"].as_str().unwrap().to_string()
}

/// Whether dkimpy verifies `message` with `record` published for its signature.
fn dkim_verifies(message: &[u8], record: &str) -> bool {
    let python =
        std::env::var("LEADGEN_MAIL_PYTHON").expect("LEADGEN_MAIL_PYTHON (scripts/test.sh)");
    let script = "import sys, dkim\n\
        rec = sys.argv[1].encode()\n\
        msg = sys.stdin.buffer.read()\n\
        print('ok' if dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec) else 'bad')\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script, record])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

/// A header's value in a raw message (unfolded), if present.
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Adds and verifies `address` as a sender (through the link mailed to it); its id.
pub(crate) async fn verified_sender(
    api: &Api,
    http: &reqwest::Client,
    base: &str,
    sink: &MailSink,
    admin: &str,
    address: &str,
) -> String {
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/senders",
            admin,
            Some(json!({ "address": address, "display_name": "Acme News" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["verified"], false);
    let id = v["id"].as_str().unwrap().to_string();
    let mail = wait_for(Duration::from_secs(10), || {
        sink.mails().into_iter().find(|m| m["to"] == address)
    })
    .await;
    let link = mail["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/senders/verify/"))
        .unwrap()
        .to_string();
    let path = &link[link.find("/senders/").unwrap()..];
    // Opening the link changes nothing; the button does.
    let page = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (_, v) = api
        .call(Method::GET, "/api/v1/campaigns/senders", admin, None)
        .await;
    assert_eq!(
        v["items"][0]["verified"], false,
        "a GET verified the sender"
    );
    let done = http.post(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains(address));
    id
}

async fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the campaign until its state is `state`.
pub(crate) async fn wait_state(
    api: &Api,
    token: &str,
    id: &str,
    state: &str,
    within: Duration,
) -> Value {
    let start = Instant::now();
    loop {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/campaigns/{id}"), token, None)
            .await;
        assert_eq!(s, 200, "{v}");
        if v["state"] == state {
            return v;
        }
        assert!(start.elapsed() < within, "campaign not {state}: {v}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

pub(crate) async fn new_lead(api: &Api, token: &str, body: Value) -> String {
    let (s, v) = api
        .call(Method::POST, "/api/v1/leads", token, Some(body))
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// An admin at aal2 of a new organization; (token, org).
pub(crate) async fn admin(api: &Api, tag: &str) -> (String, Uuid) {
    let (t, _) = api.sign_up(&format!("admin@{tag}.test")).await;
    let org = api.create_org(&t, &format!("Org {tag}")).await;
    let t = api.raise_to_aal2(&t).await;
    (api.switch(&t, org).await, org)
}

fn campaign_mails(sink: &MailSink, campaign: &str) -> Vec<Vec<u8>> {
    sink.raw()
        .into_iter()
        .filter(|r| header(r, "X-LeadGen-Campaign").as_deref() == Some(campaign))
        .collect()
}

#[tokio::test]
async fn a_campaign_is_merged_signed_sent_once_and_one_click_unsubscribes() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "launch").await;
    let record = dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;

    // Five leads tagged for the launch: one do-not-contact, one on the suppression list.
    let people = [
        ("Ada", "ada@lovelace.test", false),
        ("", "noname@example.test", false),
        ("Grace", "grace@hopper.test", false),
        ("Dnc", "dnc@example.test", true),
        ("Sup", "suppressed@example.test", false),
    ];
    let mut lead_ids = vec![];
    for (first, email, dnc) in people {
        lead_ids.push(
            new_lead(
                &api,
                &t,
                json!({ "first_name": first, "email": email, "company_name": "Analytical Engines",
                        "tags": ["launch"], "do_not_contact": dnc }),
            )
            .await,
        );
    }
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/suppressions",
            &t,
            Some(json!({ "email": "Suppressed@Example.test " })),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // An unknown merge field is refused, naming it and where it is.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({ "name": "Launch", "subject": "Hi {{ frist_name }}", "text": "x" })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("frist_name") && msg.contains("subject") && msg.contains("column"),
        "{msg}"
    );

    // Script and javascript: links are removed when saved; the text part is generated.
    let (s, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({
                "name": "Launch",
                "subject": "Hello {{ first_name | default: \"there\" }}",
                "html": "<p>Dear {{ first_name | default: \"there\" }} at {{ company_name }},</p>\
                         <p>We <b>launched</b>.</p><script>alert(1)</script>\
                         <a href=\"javascript:alert(1)\">click</a><img src=x onerror=alert(1)>",
            })),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    let html = tpl["html"].as_str().unwrap();
    assert!(
        !html.contains("<script") && !html.contains("javascript:") && !html.contains("onerror"),
        "{html}"
    );
    assert!(tpl["text_generated"].as_bool().unwrap());
    assert!(
        tpl["text"].as_str().unwrap().contains("Dear {{ first_name"),
        "{tpl}"
    );
    let template = tpl["id"].as_str().unwrap().to_string();

    // The preview is what will be sent, with a real lead's values.
    let (s, p) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/templates/{template}/preview"),
            &t,
            Some(json!({ "lead_id": lead_ids[0] })),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["subject"], "Hello Ada");
    assert!(
        p["html"]
            .as_str()
            .unwrap()
            .contains("Dear Ada at Analytical Engines"),
        "{p}"
    );

    let create = |name: &str| {
        json!({ "name": name, "template_id": template, "sender_id": sender,
                "audience": { "query": "tags=launch" } })
    };
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(create("Launch")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["state"], "draft");
    let id = c["id"].as_str().unwrap().to_string();
    let (_, a) = api
        .call(
            Method::GET,
            &format!("/api/v1/campaigns/{id}/audience"),
            &t,
            None,
        )
        .await;
    assert_eq!(a, json!({ "leads": 5, "suppressed": 2, "recipients": 3 }));

    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/send"),
            &t,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The worker may already have picked it up by the time the answer is read back.
    assert!(v["state"] == "scheduled" || v["state"] == "sending", "{v}");
    let done = wait_state(&api, &t, &id, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 3, "{done}");
    assert_eq!(done["stats"]["suppressed"], 2, "{done}");

    let sent = campaign_mails(&sink, &id);
    let mut to: Vec<String> = sent.iter().map(|r| header(r, "To").unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "ada@lovelace.test",
            "grace@hopper.test",
            "noname@example.test"
        ],
        "each recipient once, no suppressed or do-not-contact address"
    );
    let mut ids = std::collections::HashSet::new();
    for raw in &sent {
        assert!(
            dkim_verifies(raw, &record),
            "DKIM does not verify:\n{}",
            String::from_utf8_lossy(raw)
        );
        let lu = header(raw, "List-Unsubscribe").unwrap();
        assert!(
            lu.contains("<https://") && lu.contains("<mailto:unsubscribe+"),
            "{lu}"
        );
        assert_eq!(
            header(raw, "List-Unsubscribe-Post").unwrap(),
            "List-Unsubscribe=One-Click"
        );
        assert!(
            ids.insert(header(raw, "Message-ID").unwrap()),
            "Message-IDs are distinct"
        );
        let m = mail_parser::MessageParser::default().parse(raw).unwrap();
        let text = m.body_text(0).unwrap();
        let html = m.body_html(0).unwrap();
        let who = header(raw, "To").unwrap();
        let name = if who.starts_with("noname") {
            "there"
        } else if who.starts_with("ada") {
            "Ada"
        } else {
            "Grace"
        };
        assert_eq!(m.subject().unwrap(), format!("Hello {name}"));
        assert!(
            text.contains(&format!("Dear {name} at Analytical Engines")),
            "{text}"
        );
        assert!(
            html.contains(&format!("Dear {name} at Analytical Engines")),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(
            !html.contains("/t/o/") && !html.contains("/t/c/"),
            "tracking is off by default"
        );
    }

    // RFC 8058: the receiver POSTs only `List-Unsubscribe=One-Click`, from its own origin and
    // without any cookie; the address is off the list at once.
    let ada = sent
        .iter()
        .find(|r| header(r, "To").unwrap() == "ada@lovelace.test")
        .unwrap();
    let lu = header(ada, "List-Unsubscribe").unwrap();
    let url = lu
        .split('<')
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .to_string();
    let path = &url[url.find("/u/").unwrap()..];
    let provider = client_for(&app.cert_path(), app.bound.https);
    let res = provider
        .post(app.https_url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://mail.provider.test")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/campaigns/{id}"), &t, None)
        .await;
    assert_eq!(v["stats"]["unsubscribed"], 1, "{v}");
    let page = provider
        .get(app.https_url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("You are unsubscribed"), "{page}");
    // A forged token is nobody's.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let res = provider
        .post(app.https_url(&forged))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // The next campaign to the same audience skips the address; re-importing it does not bring
    // it back.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            &t,
            Some(json!({ "first_name": "Ada2", "email": "ADA@lovelace.test", "tags": ["launch"] })),
        )
        .await;
    assert!(s == 409 || s == 201, "{s} {v}");
    let (s, c2) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(create("Launch, again")),
        )
        .await;
    assert_eq!(s, 201, "{c2}");
    let id2 = c2["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id2}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    let done = wait_state(&api, &t, &id2, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 2, "{done}");
    let again = campaign_mails(&sink, &id2);
    assert!(
        again
            .iter()
            .all(|r| header(r, "To").unwrap() != "ada@lovelace.test"),
        "an unsubscribed address was mailed again"
    );

    // What was sent, to whom and by whom, is in the audit trail.
    let (_, audit) = api.call(Method::GET, "/api/v1/org/audit", &t, None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "campaign.template.create",
        "campaign.sender.create",
        "campaign.create",
        "campaign.send",
        "suppression.add",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_users_campaign_waits_for_approval_and_acls_hide_campaigns() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "approval").await;
    dkim_key(app.db(), "acme.test", "ed25519");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    let mut tokens = vec![t.clone()];
    for role in ["manager", "user"] {
        let email = format!("{role}@approval.test");
        let (rt, _) = api.sign_up(&email).await;
        invite_and_accept(&app, &api, &t, &email, role, &rt).await;
        let org = {
            let (_, v) = api.call(Method::GET, "/api/v1/org", &t, None).await;
            Uuid::parse_str(v["id"].as_str().unwrap()).unwrap()
        };
        tokens.push(api.switch(&rt, org).await);
    }
    let (manager, user) = (&tokens[1], &tokens[2]);
    new_lead(
        &api,
        &t,
        json!({ "first_name": "Lin", "email": "lin@example.test", "tags": ["q4"] }),
    )
    .await;
    let (s, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            user,
            Some(json!({ "name": "Q4", "subject": "Hi {{ first_name }}", "text": "Hello {{ first_name }}" })),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    assert!(tpl["text_generated"] == false);
    // A test send goes to its author, merged with a lead's values, never to the lead.
    let (_, leads) = api.call(Method::GET, "/api/v1/leads", user, None).await;
    let lead = leads["items"][0]["id"].clone();
    let (s, v) = api
        .call(
            Method::POST,
            &format!(
                "/api/v1/campaigns/templates/{}/test",
                tpl["id"].as_str().unwrap()
            ),
            user,
            Some(json!({ "lead_id": lead })),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["sent_to"], "user@approval.test");
    let test = wait_for(Duration::from_secs(10), || {
        sink.mails()
            .into_iter()
            .find(|m| m["to"] == "user@approval.test" && m["subject"] == "[Test] Hi Lin")
    })
    .await;
    assert!(
        test["text"].as_str().unwrap().contains("Hello Lin"),
        "{test}"
    );
    assert!(!sink.mails().iter().any(|m| m["to"] == "lin@example.test"));
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            user,
            Some(
                json!({ "name": "Q4", "template_id": tpl["id"], "sender_id": sender,
                         "audience": { "query": "tags=q4" } }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();

    // A User may create and ask, not send: the campaign waits for a Manager or an Admin.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/send"),
            user,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "awaiting_approval");
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/approve"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 403, "a User approved a campaign");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        campaign_mails(&sink, &id).is_empty(),
        "sent before approval"
    );
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/approve"),
            manager,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let done = wait_state(&api, user, &id, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 1, "{done}");
    assert!(done["approved_by"].is_string());

    // A campaign restricted to a group the User is not in is a 404 for them, on every path.
    let (s, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            &t,
            Some(json!({ "name": "Board" })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let (s, secret) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(
                json!({ "name": "Board letter", "template_id": tpl["id"], "sender_id": sender,
                         "audience": { "query": "tags=q4" }, "read_groups": [g["id"]],
                         "sensitivity": "restricted" }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{secret}");
    let sid = secret["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/v1/campaigns/{sid}")),
        (Method::GET, format!("/api/v1/campaigns/{sid}/audience")),
        (Method::POST, format!("/api/v1/campaigns/{sid}/cancel")),
    ] {
        let (s, v) = api.call(method, &path, user, None).await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    let (_, list) = api.call(Method::GET, "/api/v1/campaigns", user, None).await;
    assert!(
        !list.to_string().contains(sid),
        "listed to a member outside its groups"
    );
    // Only an admin at aal2 sets a campaign's ACL.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            manager,
            Some(
                json!({ "name": "Mine", "template_id": tpl["id"], "sender_id": sender,
                         "audience": { "query": "tags=q4" }, "sensitivity": "restricted" }),
            ),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    app.stop().await;
}

#[tokio::test]
async fn a_relay_that_defers_is_retried_and_one_that_refuses_fails_nothing_lost() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "relay").await;
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    for i in 0..4 {
        new_lead(&api, &t, json!({ "first_name": format!("P{i}"), "email": format!("p{i}@example.test"), "tags": ["r"] })).await;
    }
    let (_, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({ "name": "R", "subject": "Hi", "text": "Hello {{ first_name }}" })),
        )
        .await;
    let campaign = |name: &str| json!({ "name": name, "template_id": tpl["id"], "sender_id": sender, "audience": { "query": "tags=r" } });

    // The relay defers: messages wait and are retried; none is lost, none doubled.
    sink.reply(Some("451"));
    let (_, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(campaign("Deferred")),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    let start = Instant::now();
    loop {
        let (_, v) = api
            .call(Method::GET, &format!("/api/v1/campaigns/{id}"), &t, None)
            .await;
        if v["stats"]["deferred"].as_i64().unwrap_or(0) == 4 {
            assert_eq!(v["state"], "sending");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not deferred: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(campaign_mails(&sink, &id).is_empty());
    sink.reply(None);
    let done = wait_state(&api, &t, &id, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 4, "{done}");
    assert_eq!(
        campaign_mails(&sink, &id).len(),
        4,
        "each deferred message arrives once"
    );

    // The relay refuses for good: failed, with the relay's reply kept; not retried.
    sink.reply(Some("550"));
    let (_, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(campaign("Refused")),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    let done = wait_state(&api, &t, &id, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["failed"], 4, "{done}");
    sink.reply(None);
    app.stop().await;
}

#[tokio::test]
async fn bounce_and_complaint_reports_suppress_the_address() {
    let secret = "a-report-secret-of-32-characters!";
    let maildir = tempfile::tempdir().unwrap();
    let maildir_path = maildir.path().display().to_string();
    let app = TestApp::spawn_with_sink(&[
        NO_CONFIRM,
        ("LEADGEN_CAMPAIGNS__REPORT_SECRET", secret),
        ("LEADGEN_CAMPAIGNS__REPORT_MAILDIR", &maildir_path),
        ("LEADGEN_CAMPAIGNS__SOFT_BOUNCE_LIMIT", "2"),
    ])
    .await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "bounce").await;
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    for who in ["gone", "angry", "fine"] {
        new_lead(
            &api,
            &t,
            json!({ "first_name": who, "email": format!("{who}@example.test"), "tags": ["b"] }),
        )
        .await;
    }
    let (_, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({ "name": "B", "subject": "Hi", "text": "Hello" })),
        )
        .await;
    let campaign = |name: &str| json!({ "name": name, "template_id": tpl["id"], "sender_id": sender, "audience": { "query": "tags=b" } });
    let (_, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(campaign("First")),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    wait_state(&api, &t, &id, "sent", Duration::from_secs(30)).await;
    let sent = campaign_mails(&sink, &id);
    let mid = |who: &str| {
        let raw = sent
            .iter()
            .find(|r| header(r, "To").unwrap().starts_with(who))
            .unwrap();
        header(raw, "Message-ID").unwrap()
    };
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: news@acme.test\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered: <p onclick=x>Hello</p><script>x</script>\r\n\
         --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
         Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n\
         --b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {}\r\nTo: gone@example.test\r\n\r\n--b1--\r\n",
        mid("gone")
    );
    let arf = format!(
        "From: fbl@isp.test\r\nTo: news@acme.test\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n\
         --b2\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
         --b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: angry@example.test\r\n\r\n\
         --b2\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {}\r\nTo: angry@example.test\r\n\r\n--b2--\r\n",
        mid("angry")
    );
    let hook = |body: String, auth: &str| {
        app.client()
            .post(app.https_url("/hooks/mail/reports"))
            .header("authorization", format!("Bearer {auth}"))
            .header("content-type", "message/rfc822")
            .body(body)
            .send()
    };
    assert_eq!(
        hook(dsn.clone(), "wrong-secret-wrong-secret-wrong")
            .await
            .unwrap()
            .status(),
        401
    );
    for (body, kind) in [(dsn, "hard_bounce"), (arf, "complaint")] {
        let res = hook(body, secret).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["handled"], kind);
    }
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/campaigns/{id}"), &t, None)
        .await;
    assert_eq!(v["stats"]["hard_bounce"], 1, "{v}");
    assert_eq!(v["stats"]["complaint"], 1, "{v}");
    let (_, s) = api
        .call(Method::GET, "/api/v1/suppressions", &t, None)
        .await;
    assert_eq!(s["reasons"], json!({ "hard_bounce": 1, "complaint": 1 }));
    // The next campaign reaches only the address that neither bounced nor complained.
    let (_, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(campaign("Second")),
        )
        .await;
    let id2 = c["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id2}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    wait_state(&api, &t, &id2, "sent", Duration::from_secs(30)).await;
    let to: Vec<String> = campaign_mails(&sink, &id2)
        .iter()
        .map(|r| header(r, "To").unwrap())
        .collect();
    assert_eq!(to, ["fine@example.test"]);

    // Soft bounces (a full mailbox) count across campaigns; the second suppresses here.
    new_lead(
        &api,
        &t,
        json!({ "first_name": "Soft", "email": "soft@example.test", "tags": ["soft"] }),
    )
    .await;
    for round in 1..=2 {
        let (_, c) = api
            .call(Method::POST, "/api/v1/campaigns", &t,
                  Some(json!({ "name": format!("Soft {round}"), "template_id": tpl["id"], "sender_id": sender,
                               "audience": { "query": "tags=soft" } })))
            .await;
        let cid = c["id"].as_str().unwrap().to_string();
        api.call(
            Method::POST,
            &format!("/api/v1/campaigns/{cid}/send"),
            &t,
            Some(json!({})),
        )
        .await;
        wait_state(&api, &t, &cid, "sent", Duration::from_secs(30)).await;
        let raw = campaign_mails(&sink, &cid)
            .pop()
            .expect("sent to the soft-bouncing address");
        let report = format!(
            "From: MAILER-DAEMON@mx.example.test\r\nTo: news@acme.test\r\nSubject: Undelivered Mail\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b3\"\r\n\r\n\
             --b3\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n\
             --b3\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
             Final-Recipient: rfc822; soft@example.test\r\nAction: failed\r\nStatus: 4.2.2\r\n\
             Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n\r\n\
             --b3\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {}\r\nTo: soft@example.test\r\n\r\n--b3--\r\n",
            header(&raw, "Message-ID").unwrap()
        );
        let res = hook(report, secret).await.unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["handled"], "soft_bounce");
        let (_, s) = api
            .call(Method::GET, "/api/v1/suppressions", &t, None)
            .await;
        assert_eq!(
            s["reasons"].get("soft_bounces").is_some(),
            round == 2,
            "after {round} soft bounce(s): {s}"
        );
    }

    // A bounce mailbox delivering into a maildir works like the webhook, and so does a mailed
    // unsubscribe (the `mailto:` of List-Unsubscribe).
    let fine = campaign_mails(&sink, &id2).pop().unwrap();
    let lu = header(&fine, "List-Unsubscribe").unwrap();
    let address = lu
        .split("<mailto:")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(maildir.path().join("new")).unwrap();
    std::fs::write(
        maildir.path().join("new/1.unsub"),
        format!("From: fine@example.test\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"),
    )
    .unwrap();
    wait_for(Duration::from_secs(10), || {
        std::fs::read_dir(maildir.path().join("cur"))
            .ok()?
            .next()
            .map(|_| ())
    })
    .await;
    assert!(
        !maildir.path().join("new/1.unsub").exists(),
        "the message left new/"
    );
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/campaigns/{id2}"), &t, None)
        .await;
    assert_eq!(v["stats"]["unsubscribed"], 1, "{v}");
    let (_, s) = api
        .call(Method::GET, "/api/v1/suppressions", &t, None)
        .await;
    assert_eq!(
        s["reasons"],
        json!({ "hard_bounce": 1, "complaint": 1, "soft_bounces": 1, "unsubscribed": 1 })
    );
    app.stop().await;
}

/// The leads of the exactly-once test, as a CSV import.
fn csv(n: usize) -> Vec<u8> {
    let mut s = String::from("first_name,last_name,email,company_name,tags\n");
    for i in 0..n {
        s.push_str(&format!(
            "Person{i},Test,person{i}@example{}.test,Company {i},bulk\n",
            i % 50
        ));
    }
    s.into_bytes()
}

async fn import_csv(http: &reqwest::Client, api: &Api, base: &str, token: &str, body: Vec<u8>) {
    let res = http
        .post(format!("{base}/api/v1/imports?name=bulk.csv"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/imports/{id}/start"),
            token,
            Some(json!({ "mode": "create_only" })),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let start = Instant::now();
    loop {
        let (_, v) = api
            .call(Method::GET, &format!("/api/v1/imports/{id}"), token, None)
            .await;
        if v["status"] == "done" {
            return;
        }
        assert!(
            !matches!(v["status"].as_str(), Some("failed" | "cancelled")),
            "{v}"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn serve(db: &TestDb, data: &Path, sink: &MailSink) -> (Proc, Api, reqwest::Client, String) {
    let mut env = server_env(Some(db), data);
    env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    env.push(("LEADGEN_AUTH__BCRYPT_COST".into(), "10".into()));
    env.push((NO_CONFIRM.0.into(), NO_CONFIRM.1.into()));
    env.extend(sink.env());
    env.push(("LEADGEN_CAMPAIGNS__LEASE_SECS".into(), "5".into()));
    // Tokens name the site as their issuer; the restarted server listens on another port.
    env.push((
        "LEADGEN_AUTH__SITE_URL".into(),
        "https://leadgen.test".into(),
    ));
    env.push((
        "LEADGEN_PERIMETER__RATE_LIMITS_PATH".into(),
        crate::helpers::generous_rate_limits(data)
            .display()
            .to_string(),
    ));
    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(60));
    let http = client_for(&data.join("tls/dev-cert.pem"), https);
    let base = format!("https://localhost:{}", https.port());
    (
        proc,
        Api::with_client(http.clone(), base.clone()),
        http,
        base,
    )
}

#[tokio::test]
async fn kill_9_half_way_through_a_campaign_still_delivers_every_recipient_once() {
    const N: usize = 5_000;
    let sink = MailSink::start(Some(true));
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (mut server, api, http, base) = serve(&db, data.path(), &sink);
    let (t, _) = admin(&api, "crash").await;
    dkim_key(&db, "acme.test", "rsa");
    let sender = {
        // The sink keeps no bodies here, so the sender is verified by the test's own hand: the
        // verification flow has its own test.
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/campaigns/senders",
                &t,
                Some(json!({ "address": "news@acme.test" })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let su = sqlx::PgPool::connect(&db.migrate_url()).await.unwrap();
        sqlx::query("UPDATE app.sender_identities SET verified_at = now()")
            .execute(&su)
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    import_csv(&http, &api, &base, &t, csv(N)).await;
    let (_, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(
                json!({ "name": "Bulk", "subject": "News for {{ company_name }}",
                           "html": "<p>Hello {{ first_name }},</p><p>news.</p>" }),
            ),
        )
        .await;
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(
                json!({ "name": "Bulk", "template_id": tpl["id"], "sender_id": sender,
                           "audience": { "query": "tags=bulk" } }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/send"),
            &t,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // kill -9 about half-way.
    wait_for(Duration::from_secs(300), || {
        (sink.index().len() >= N / 2).then_some(())
    })
    .await;
    server.signal(nix::sys::signal::Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    let at_kill = sink.index().len();
    drop(server);

    let (_server, api, _, _) = serve(&db, data.path(), &sink);
    let done = wait_state(&api, &t, &id, "sent", Duration::from_secs(600)).await;
    assert_eq!(done["stats"]["sent"], N, "{done}");

    // The campaign's messages (not the sender-verification mail).
    let index: Vec<(String, String)> = sink
        .index()
        .into_iter()
        .filter(|(_, rcpt)| rcpt.starts_with("person"))
        .collect();
    let mut per_recipient: std::collections::HashMap<&str, std::collections::HashSet<&str>> =
        std::collections::HashMap::new();
    for (mid, rcpt) in &index {
        per_recipient
            .entry(rcpt.as_str())
            .or_default()
            .insert(mid.as_str());
    }
    assert_eq!(
        per_recipient.len(),
        N,
        "every recipient received the campaign"
    );
    assert!(
        per_recipient.values().all(|m| m.len() == 1),
        "a recipient got two different messages"
    );
    let distinct: std::collections::HashSet<&str> = index.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(distinct.len(), N, "one Message-ID per recipient");
    // Only a message whose acceptance was on the wire at the instant of the kill (the relay had
    // taken it, the server had not yet read its reply) goes out again, under the same
    // Message-ID; the journal records every reply the server did read.
    let repeated = index.len() - N;
    eprintln!("killed after {at_kill} deliveries; {repeated} delivered again after the restart");
    assert!(repeated <= 64, "{repeated} messages delivered twice");
}

#[tokio::test]
async fn an_api_key_with_the_campaign_scope_creates_and_sends_when_its_organization_allows() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "apikey").await;
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    new_lead(
        &api,
        &t,
        json!({ "first_name": "Kim", "email": "kim@example.test", "tags": ["k"] }),
    )
    .await;
    let key = api
        .create_key(
            &t,
            json!({ "name": "automation", "scopes": ["campaign_creation"] }),
        )
        .await;
    let other = api
        .create_key(
            &t,
            json!({ "name": "crm sync", "scopes": ["lead_search_and_management"] }),
        )
        .await;
    let body = json!({ "name": "By key", "subject": "Hi {{ first_name }}", "text": "Hello" });
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &other,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 403, "a key without the campaign scope: {v}");
    let (s, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &key,
            Some(body),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &key,
            Some(
                json!({ "name": "By key", "template_id": tpl["id"], "sender_id": sender,
                           "audience": { "query": "tags=k" } }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    // By default a key's campaign waits for approval; an organization may let keys send.
    let (_, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/send"),
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(v["state"], "awaiting_approval", "{v}");
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/cancel"),
        &key,
        None,
    )
    .await;
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/org/settings",
            &t,
            Some(json!({ "campaign_approval": false })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &key,
            Some(
                json!({ "name": "By key, now", "template_id": tpl["id"], "sender_id": sender,
                           "audience": { "query": "tags=k" } }),
            ),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let (_, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{id}/send"),
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(v["state"], "scheduled", "{v}");
    let done = wait_state(&api, &key, &id, "sent", Duration::from_secs(30)).await;
    assert_eq!(done["stats"]["sent"], 1, "{done}");
    app.stop().await;
}

#[tokio::test]
async fn tracking_is_first_party_signed_and_counted_once_when_a_campaign_turns_it_on() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "tracking").await;
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    new_lead(
        &api,
        &t,
        json!({ "first_name": "Tess", "email": "tess@example.test", "tags": ["tr"] }),
    )
    .await;
    let (_, tpl) = api
        .call(Method::POST, "/api/v1/campaigns/templates", &t,
              Some(json!({ "name": "T", "subject": "Hi",
                           "html": "<p>Read <a href=\"https://blog.example.test/post?a=1&amp;b=2\">the post</a>.</p>" })))
        .await;
    let (s, c) = api
        .call(
            Method::POST,
            "/api/v1/campaigns",
            &t,
            Some(
                json!({ "name": "Tracked", "template_id": tpl["id"], "sender_id": sender,
                           "audience": { "query": "tags=tr" }, "tracking": true }),
            ),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    wait_state(&api, &t, &id, "sent", Duration::from_secs(30)).await;
    let raw = campaign_mails(&sink, &id).pop().unwrap();
    let html = mail_parser::MessageParser::default()
        .parse(&raw)
        .unwrap()
        .body_html(0)
        .unwrap()
        .into_owned();
    assert!(
        !html.contains("blog.example.test"),
        "the link is not counted: {html}"
    );
    let path_of = |marker: &str| {
        let i = html.find(marker).unwrap();
        html[i..].split('"').next().unwrap().to_string()
    };
    let (pixel, click) = (path_of("/t/o/"), path_of("/t/c/"));
    let reader = client_for(&app.cert_path(), app.bound.https);
    for _ in 0..2 {
        let res = reader.get(app.https_url(&pixel)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{pixel}: {:?}", res.text().await);
        assert_eq!(res.headers()["content-type"], "image/gif");
        let res = reader.get(app.https_url(&click)).send().await.unwrap();
        assert_eq!(res.status(), 302);
        assert_eq!(
            res.headers()["location"],
            "https://blog.example.test/post?a=1&b=2"
        );
    }
    // A link the campaign did not contain is no redirect at all.
    let forged = click.replacen(
        click.split('.').nth(1).unwrap(),
        &base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            "https://evil.test/",
        ),
        1,
    );
    assert_eq!(
        reader
            .get(app.https_url(&forged))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/campaigns/{id}"), &t, None)
        .await;
    assert_eq!(v["stats"]["opened"], 1, "{v}");
    assert_eq!(v["stats"]["clicked"], 1, "{v}");
    assert_eq!(
        v["stats"]["links"],
        json!([{ "url": "https://blog.example.test/post?a=1&b=2", "clicks": 1 }])
    );
    app.stop().await;
}

#[tokio::test]
async fn pause_resume_cancel_schedules_in_a_time_zone_and_send_caps_hold() {
    let app = TestApp::spawn_with_sink(&[
        NO_CONFIRM,
        ("LEADGEN_CAMPAIGNS__MAX_PER_HOUR", "7"),
        ("LEADGEN_CAMPAIGNS__MAX_PER_DOMAIN_MINUTE", "5"),
    ])
    .await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, _) = admin(&api, "caps").await;
    dkim_key(app.db(), "acme.test", "rsa");
    let sender = verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    for i in 0..8 {
        new_lead(&api, &t, json!({ "first_name": format!("S{i}"), "email": format!("s{i}@same.test"), "tags": ["same"] })).await;
        new_lead(&api, &t, json!({ "first_name": format!("M{i}"), "email": format!("m{i}@d{i}.test"), "tags": ["many"] })).await;
    }
    let (_, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({ "name": "C", "subject": "Hi", "text": "Hello" })),
        )
        .await;
    let campaign = |name: &str, query: &str| json!({ "name": name, "template_id": tpl["id"], "sender_id": sender, "audience": { "query": query } });
    let new = |body: Value| {
        let api = &api;
        let t = &t;
        async move {
            let (s, c) = api
                .call(Method::POST, "/api/v1/campaigns", t, Some(body))
                .await;
            assert_eq!(s, 201, "{c}");
            c["id"].as_str().unwrap().to_string()
        }
    };
    let stats = |id: String| {
        let api = &api;
        let t = &t;
        async move {
            api.call(Method::GET, &format!("/api/v1/campaigns/{id}"), t, None)
                .await
                .1
        }
    };

    // A local time in a named zone is stored as the instant it means; nothing leaves before it.
    let later = new(campaign("Later", "tags=many")).await;
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{later}/send"),
            &t,
            Some(json!({ "at": "2027-07-01T09:00", "time_zone": "Europe/Paris" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "scheduled");
    assert_eq!(
        v["scheduled_at"], "2027-07-01T07:00:00Z",
        "09:00 in Paris in summer is 07:00 UTC"
    );
    for (body, field) in [
        (
            json!({ "at": "2027-07-01T09:00", "time_zone": "Mars/Olympus" }),
            "time_zone",
        ),
        (json!({ "at": "2001-01-01T00:00:00Z" }), "at"),
    ] {
        let draft = new(campaign("Bad time", "tags=many")).await;
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/api/v1/campaigns/{draft}/send"),
                &t,
                Some(body),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{later}/cancel"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200);

    // Per recipient domain: 5 a minute to same.test; the rest wait for the next minute. The cap
    // counts per clock minute, so the send starts well inside one: a start a second before the
    // minute turns would rightly send five more at once.
    let same = new(campaign("Same domain", "tags=same")).await;
    let second = time::OffsetDateTime::now_utc().second();
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - second))).await;
    }
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{same}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    wait_for(Duration::from_secs(20), || {
        (campaign_mails(&sink, &same).len() == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = stats(same.clone()).await;
    assert_eq!(campaign_mails(&sink, &same).len(), 5, "{v}");
    assert_eq!(v["stats"]["deferred"], 3, "{v}");

    // Pause stops the campaign where it is.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{same}/pause"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "paused");
    // Cancel ends it for good; resume is refused.
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{same}/cancel"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/campaigns/{same}/resume"),
            &t,
            None,
        )
        .await;
    assert_eq!(s, 409);

    // Per organization per rolling hour: 7 in all, so 2 more after the 5 above.
    let many = new(campaign("Many domains", "tags=many")).await;
    api.call(
        Method::POST,
        &format!("/api/v1/campaigns/{many}/send"),
        &t,
        Some(json!({})),
    )
    .await;
    wait_for(Duration::from_secs(20), || {
        (campaign_mails(&sink, &many).len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = stats(many.clone()).await;
    assert_eq!(campaign_mails(&sink, &many).len(), 2, "{v}");
    assert_eq!(v["state"], "sending", "{v}");
    assert_eq!(v["stats"]["queued"], 6, "{v}");
    app.stop().await;
}
