//! The campaign pages in a signed-in browser session (cookies and CSRF tokens, as a browser
//! sends them): the template editor refusing an unknown merge field with the entered values
//! kept, saving sanitized HTML and previewing it with a lead, a campaign created from its form,
//! its audience after suppression, scheduled from its page and sent, and the 404 of a campaign
//! out of reach.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::campaigns::{admin, dkim_key, new_lead, verified_sender};
use crate::helpers::TestApp;
use crate::orgs::{Api, invite_and_accept};

const NO_CONFIRM: (&str, &str) = ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false");
const PASSWORD: &str = "violet tractor hums at dawn";

/// A browser: its cookies, and the CSRF token of the last page it was shown.
struct Browser {
    http: reqwest::Client,
    base: String,
    jar: BTreeMap<String, String>,
    token: String,
}

struct Shown {
    status: u16,
    location: String,
    html: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: app.client(),
            base: app.https_url(""),
            jar: BTreeMap::new(),
            token: String::new(),
        }
    }

    fn cookie(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn shown(&mut self, res: reqwest::Response) -> Shown {
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
        Shown {
            status,
            location,
            html,
        }
    }

    async fn get(&mut self, path: &str) -> Shown {
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

    /// Posts a form with the token of the last page.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Shown {
        let mut fields = vec![("csrf_token", self.token.clone())];
        fields.extend(form.iter().map(|(k, v)| (*k, (*v).to_string())));
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header("origin", self.base.trim_end_matches('/'))
            .header("cookie", self.cookie())
            .form(&fields)
            .send()
            .await
            .unwrap();
        self.shown(res).await
    }

    /// Signs in on the sign-in page and works in `org`.
    async fn sign_in(&mut self, email: &str, org: Uuid) {
        self.get("/login").await;
        let s = self
            .post("/login", &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(s.status, 303, "{}", s.html);
        self.get("/account").await;
        let org = org.to_string();
        let s = self
            .post("/org/switch", &[("org_id", &org), ("back", "/campaigns")])
            .await;
        assert_eq!(s.status, 303, "{}", s.html);
    }
}

/// `s` as the pages' templates escape it in text and attributes.
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn id_in(location: &str, prefix: &str) -> String {
    location
        .strip_prefix(prefix)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn campaigns_are_written_previewed_created_and_sent_from_their_pages() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, org) = admin(&api, "pages").await;
    dkim_key(app.db(), "acme.test", "rsa");
    verified_sender(
        &api,
        &app.client(),
        &app.https_url(""),
        &sink,
        &t,
        "news@acme.test",
    )
    .await;
    let mut leads = vec![];
    for (first, email, dnc) in [
        ("Ada", "ada@lovelace.test", false),
        ("Grace", "grace@hopper.test", false),
        ("Dnc", "dnc@example.test", true),
    ] {
        leads.push(
            new_lead(
                &api,
                &t,
                json!({ "first_name": first, "email": email, "company_name": "Analytical Engines",
                        "tags": ["launch"], "do_not_contact": dnc }),
            )
            .await,
        );
    }

    // A Manager signs in with the browser.
    let (w, _) = api.sign_up("writer@pages.test").await;
    invite_and_accept(&app, &api, &t, "writer@pages.test", "manager", &w).await;
    let mut b = Browser::new(&app);
    b.sign_in("writer@pages.test", org).await;

    let page = b.get("/campaigns").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.html
            .contains(r#"<a href="/campaigns" class="current" aria-current="page">Campaigns</a>"#),
        "Campaigns is the current section"
    );
    assert!(page.html.contains("news@acme.test"));
    assert!(page.html.contains(">verified<"), "{}", page.html);
    assert!(page.html.contains(r#"href="/campaigns/templates""#));

    // A form without its token is refused.
    let csrf = std::mem::take(&mut b.token);
    let refused = b.post("/campaigns/templates", &[("name", "X")]).await;
    assert_eq!(refused.status, 403);
    b.token = csrf;

    // An unknown merge field: the form comes back, 400, naming it and where, values kept.
    b.get("/campaigns/templates").await;
    let bad = b
        .post(
            "/campaigns/templates",
            &[
                ("name", "Launch"),
                ("subject", "Hi {{ frist_name }}"),
                ("html", "<p>Kept body</p>"),
                ("text", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert!(
        bad.html.contains("frist_name")
            && bad.html.contains("line 1, column 4")
            && bad.html.contains("role=\"alert\""),
        "{}",
        bad.html
    );
    assert!(bad.html.contains(r#"value="Hi {{ frist_name }}""#));
    assert!(
        bad.html
            .contains(&format!("{}</textarea>", escaped("<p>Kept body</p>"))),
        "{}",
        bad.html
    );

    // A valid one: its script is removed when saved, and the editor shows what is stored.
    let saved = b
        .post(
            "/campaigns/templates",
            &[
                ("name", "Launch"),
                ("subject", "Hello {{ first_name | default: \"there\" }}"),
                (
                    "html",
                    "<p>Dear {{ first_name }} at {{ company_name }}</p><script>alert(1)</script>",
                ),
                ("text", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let template = id_in(&saved.location, "/campaigns/templates/");
    let editor = b.get(&saved.location).await;
    assert_eq!(editor.status, 200);
    assert!(editor.html.contains("Template created."));
    assert!(
        editor.html.contains(&escaped(
            "<p>Dear {{ first_name }} at {{ company_name }}</p>"
        )),
        "{}",
        editor.html
    );
    assert!(
        !editor.html.contains("alert(1)") && !editor.html.contains(&escaped("<script")),
        "the script is gone: {}",
        editor.html
    );
    assert!(
        editor.html.contains("Ada, Analytical Engines"),
        "leads to preview with"
    );

    // The preview: the merged subject, the HTML in a sandboxed frame, the text part.
    let preview = b
        .get(&format!(
            "/campaigns/templates/{template}?lead={}",
            leads[0]
        ))
        .await;
    assert_eq!(preview.status, 200);
    assert!(
        preview.html.contains("Subject: <strong>Hello Ada</strong>"),
        "{}",
        preview.html
    );
    assert!(
        preview.html.contains(&format!(
            r#"<iframe class="preview-html" sandbox srcdoc="{}""#,
            escaped("<p>Dear Ada at Analytical Engines</p>")
        )),
        "{}",
        preview.html
    );
    assert!(preview.html.contains("ada@lovelace.test"));

    // "Mail this to me as a test": to the signed-in writer, merged with the lead, never to it.
    assert!(
        preview
            .html
            .contains(&format!("action=\"/campaigns/templates/{template}/test\""))
    );
    let sent = b
        .post(
            &format!("/campaigns/templates/{template}/test"),
            &[("lead", &leads[0])],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    let back = b.get(&sent.location).await;
    assert!(
        back.html.contains("A test was mailed to you"),
        "{}",
        back.html
    );
    let test = sink
        .mails()
        .into_iter()
        .find(|m| {
            m["to"] == "writer@pages.test"
                && m["subject"] != "You are invited to Org pages on LeadGen"
        })
        .expect("the test reached its writer");
    assert_eq!(test["subject"], "[Test] Hello Ada");
    assert!(!sink.mails().iter().any(|m| m["to"] == "ada@lovelace.test"));
    let refused = b
        .post(
            &format!("/campaigns/templates/{template}/test"),
            &[("lead", "nobody")],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.html.contains("choose a lead"), "{}", refused.html);

    // The suppression list: counts by reason, and a form that adds an address.
    let list = b.get("/campaigns/suppressions").await;
    assert_eq!(list.status, 200);
    assert!(
        list.html.contains("No address is suppressed yet"),
        "{}",
        list.html
    );
    let added = b
        .post(
            "/campaigns/suppressions",
            &[
                ("email", "Someone@Elsewhere.test"),
                ("reason", "ccpa_opt_out"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.html);
    let list = b.get(&added.location).await;
    assert!(
        list.html.contains("Suppressed: no campaign"),
        "{}",
        list.html
    );
    assert!(list.html.contains("CCPA opt-out"), "{}", list.html);
    let bad = b
        .post(
            "/campaigns/suppressions",
            &[("email", "not an address"), ("reason", "do_not_contact")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.html);
    assert!(
        bad.html.contains("email: not an email address"),
        "{}",
        bad.html
    );
    assert!(
        bad.html.contains("value=\"not an address\""),
        "the entry is kept"
    );
    let other = b
        .get(&format!(
            "/campaigns/templates/{template}?lead_id={}",
            Uuid::now_v7()
        ))
        .await;
    assert_eq!(other.status, 200);
    assert!(other.html.contains("no lead you can read has this id"));

    // Saving with an unknown field keeps the stored template and shows the entered values.
    let bad = b
        .post(
            &format!("/campaigns/templates/{template}"),
            &[
                ("name", "Launch"),
                ("subject", "Hey"),
                ("html", ""),
                ("text", "Hi {{ nickname }}"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("nickname") && bad.html.contains("Hi {{ nickname }}</textarea>"));

    // A campaign from the form: a draft, listed, with its audience after suppression.
    let page = b.get("/campaigns").await;
    let sender = page
        .html
        .split("<option value=\"")
        .find(|o| o.contains("news@acme.test"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let created = b
        .post(
            "/campaigns",
            &[
                ("name", "Spring launch"),
                ("template_id", &template),
                ("sender_id", &sender),
                ("audience", "query"),
                ("query", "tags=launch"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    let id = id_in(&created.location, "/campaigns/");
    let list = b.get("/campaigns").await;
    assert!(list.html.contains("Spring launch") && list.html.contains(">draft<"));
    let detail = b.get(&created.location).await;
    assert_eq!(detail.status, 200);
    assert!(
        detail.html.contains(
            "<strong>2</strong> (3 leads you can read with an address, 1 of them suppressed"
        ),
        "{}",
        detail.html
    );
    assert!(detail.html.contains("tags=launch"));
    assert!(!detail.html.contains("http-equiv=\"refresh\""));

    // A bad audience comes back with the form as it was filled in.
    let bad = b
        .post(
            "/campaigns",
            &[
                ("name", "Nobody"),
                ("template_id", &template),
                ("sender_id", &sender),
                ("audience", "list"),
                ("list_id", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.html.contains("list: choose one") && bad.html.contains(r#"value="Nobody""#));

    // Scheduled from its page (a Manager needs no approval), then sent.
    b.get(&format!("/campaigns/{id}")).await;
    let sent = b
        .post(&format!("/campaigns/{id}/send"), &[("when", "now")])
        .await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    assert_eq!(sent.location, format!("/campaigns/{id}?done=scheduled"));
    let start = Instant::now();
    let done = loop {
        let page = b.get(&format!("/campaigns/{id}")).await;
        if page.html.contains(">sent</span>") {
            break page;
        }
        assert!(
            page.html.contains("http-equiv=\"refresh\" content=\"3\"")
                || page.html.contains(">scheduled</span>"),
            "refreshes while it sends: {}",
            page.html
        );
        assert!(start.elapsed() < Duration::from_secs(30), "{}", page.html);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        done.html
            .contains("<tr><th>Sent</th><td class=\"num\">2</td></tr>")
    );
    assert!(
        done.html
            .contains("<progress class=\"campaign-progress\" value=\"3\" max=\"3\">")
    );
    assert!(!done.html.contains("http-equiv=\"refresh\""));
    // Nothing left to pause.
    let paused = b.post(&format!("/campaigns/{id}/pause"), &[]).await;
    assert_eq!(paused.status, 409);
    assert!(paused.html.contains("state: the campaign is sent"));

    // A campaign out of reach is a 404 page.
    let missing = b.get(&format!("/campaigns/{}", Uuid::now_v7())).await;
    assert_eq!(missing.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_users_campaign_waits_for_a_managers_approval_on_its_page() {
    let app = TestApp::spawn_with_sink(&[NO_CONFIRM]).await;
    let sink = app.sink.clone().unwrap();
    let api = Api::new(&app);
    let (t, org) = admin(&api, "approve").await;
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
        json!({ "first_name": "Ada", "email": "ada@lovelace.test", "tags": ["launch"] }),
    )
    .await;
    let (s, tpl) = api
        .call(
            Method::POST,
            "/api/v1/campaigns/templates",
            &t,
            Some(json!({ "name": "T", "subject": "Hi", "text": "Hello" })),
        )
        .await;
    assert_eq!(s, 201, "{tpl}");
    let template = tpl["id"].as_str().unwrap().to_string();

    let (u, _) = api.sign_up("user@approve.test").await;
    invite_and_accept(&app, &api, &t, "user@approve.test", "user", &u).await;
    let (m, _) = api.sign_up("manager@approve.test").await;
    invite_and_accept(&app, &api, &t, "manager@approve.test", "manager", &m).await;

    let mut user = Browser::new(&app);
    user.sign_in("user@approve.test", org).await;
    let page = user.get("/campaigns").await;
    assert!(
        !page.html.contains("action=\"/campaigns/senders\""),
        "only admins add senders"
    );
    let created = user
        .post(
            "/campaigns",
            &[
                ("name", "Users launch"),
                ("template_id", &template),
                ("sender_id", &sender),
                ("audience", "query"),
                ("query", "tags=launch"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    let id = id_in(&created.location, "/campaigns/");
    user.get(&created.location).await;
    let asked = user
        .post(
            &format!("/campaigns/{id}/send"),
            &[
                ("when", "later"),
                ("at", "2099-01-01T09:00"),
                ("time_zone", "Europe/Paris"),
            ],
        )
        .await;
    assert_eq!(asked.status, 400, "more than a year ahead: {}", asked.html);
    assert!(asked.html.contains("at most a year ahead"));
    let asked = user
        .post(&format!("/campaigns/{id}/send"), &[("when", "now")])
        .await;
    assert_eq!(asked.status, 303, "{}", asked.html);
    assert_eq!(
        asked.location,
        format!("/campaigns/{id}?done=awaiting_approval")
    );
    let page = user.get(&asked.location).await;
    assert!(page.html.contains(">awaiting approval</span>"));
    assert!(
        !page.html.contains("/approve\""),
        "a User is not offered approval"
    );
    let refused = user.post(&format!("/campaigns/{id}/approve"), &[]).await;
    assert_eq!(refused.status, 403);

    let mut manager = Browser::new(&app);
    manager.sign_in("manager@approve.test", org).await;
    let page = manager.get(&format!("/campaigns/{id}")).await;
    assert!(
        page.html
            .contains(&format!("action=\"/campaigns/{id}/approve\""))
    );
    let approved = manager.post(&format!("/campaigns/{id}/approve"), &[]).await;
    assert_eq!(approved.status, 303, "{}", approved.html);
    assert_eq!(approved.location, format!("/campaigns/{id}?done=approved"));
    let start = Instant::now();
    loop {
        let page = manager.get(&format!("/campaigns/{id}")).await;
        if page.html.contains(">sent</span>") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{}", page.html);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/campaigns/{id}"), &t, None)
        .await;
    assert_eq!(v["stats"]["sent"], 1, "{v}");
    app.stop().await;
}
