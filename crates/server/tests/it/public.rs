//! The public site through the front door: `/security` shows exactly the proven claims,
//! `/privacy` and `/terms` render the operator's Markdown as inert HTML, and the early-access
//! list works end to end (bot traps, double opt-in through a real SMTP server, unsubscribe, the
//! operator's commands) within its three posts an hour per address.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use leadgen::clock::OffsetClock;
use serde_json::Value;

use crate::helpers::{
    MailSink, TEST_MASTER_KEY, TestApp, TestDb, run_leadgen, server_env, workspace_root,
};

/// The ids of `docs/security-claims.md`'s rows, split into proven and the rest, read here
/// independently of the server's own parser.
fn claim_ids() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = std::fs::read_to_string(workspace_root().join("docs/security-claims.md")).unwrap();
    let (mut proven, mut rest) = (BTreeSet::new(), BTreeSet::new());
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| S-") || l.starts_with("| P-"))
    {
        let cols: Vec<&str> = line.split(" | ").collect();
        let id = cols[0].trim_start_matches("| ").trim().to_string();
        if cols[2].trim() == "proven" {
            proven.insert(id);
        } else {
            rest.insert(id);
        }
    }
    (proven, rest)
}

/// The values of `attr="…"` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[tokio::test]
async fn the_security_page_promises_exactly_the_proven_claims() {
    let app = TestApp::spawn().await;
    let res = app
        .client()
        .get(app.https_url("/security"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let (proven, rest) = claim_ids();
    assert!(proven.len() > 50 && !rest.is_empty());
    let shown: Vec<String> = attr_values(&html, "data-claim");
    let shown_set: BTreeSet<String> = shown.iter().cloned().collect();
    assert_eq!(shown.len(), shown_set.len(), "a claim shown twice");
    assert_eq!(
        shown_set, proven,
        "the promises are exactly the proven rows"
    );
    // Every other row is listed apart, under "not promised yet", with its status.
    let not_yet: BTreeSet<String> = attr_values(&html, "data-not-yet").into_iter().collect();
    assert_eq!(not_yet, rest);
    assert_eq!(
        attr_values(&html, "data-status")
            .iter()
            .filter(|s| *s != "proven")
            .count(),
        0
    );
    // Each promise names the test that proves it: the encryption-at-rest row, say.
    let doc = std::fs::read_to_string(workspace_root().join("docs/security-claims.md")).unwrap();
    let first = doc.lines().find(|l| l.contains("| proven |")).unwrap();
    let proof = first.rsplit(" | ").next().unwrap();
    let test_name = proof
        .split('`')
        .nth(1)
        .expect("a proven row names a test in backticks");
    assert!(html.contains(test_name), "{test_name} shown");
    app.stop().await;
}

#[tokio::test]
async fn legal_pages_show_the_operators_markdown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let privacy = dir.path().join("privacy.md");
    std::fs::write(
        &privacy,
        "# Privacy at Example Ltd\n\nWrite to [our DPO](mailto:dpo@example.com).\n\n\
         <script>alert('x')</script>\n\n[tap](javascript:alert(1))\n",
    )
    .unwrap();
    let app =
        TestApp::spawn_with(&[("LEADGEN_PUBLIC__PRIVACY_PATH", privacy.to_str().unwrap())]).await;
    let client = app.client();
    let html = client
        .get(app.https_url("/privacy"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<h1>Privacy at Example Ltd</h1>"), "{html}");
    assert!(html.contains(r#"href="mailto:dpo@example.com""#));
    assert!(
        html.contains("&lt;script&gt;alert"),
        "raw HTML shown as text"
    );
    assert!(!html.contains("<script>alert") && !html.contains("javascript:"));
    // The terms were not replaced: the shipped default, which says what LeadGen does.
    let terms = client.get(app.https_url("/terms")).send().await.unwrap();
    assert_eq!(terms.status(), 200);
    assert!(terms.text().await.unwrap().contains("Terms of service"));
    app.stop().await;
    // A configured file that cannot be read stops `configtest`, naming the key.
    let (code, _, err) = run_leadgen(
        &["configtest"],
        &[(
            "LEADGEN_PUBLIC__TERMS_PATH".into(),
            "/nonexistent/terms.md".into(),
        )],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("public.terms_path"), "{err}");
}

/// A visitor of the landing page: its form's stamp, and posts with the page's origin.
struct Visitor {
    http: reqwest::Client,
    origin: String,
    base: String,
}

impl Visitor {
    fn new(app: &TestApp, ip: Ipv4Addr) -> Self {
        Self {
            http: app.client_from(IpAddr::V4(ip)),
            origin: app.https_url(""),
            base: app.https_url(""),
        }
    }

    /// The stamp of the landing page's early-access form.
    async fn stamp(&self) -> String {
        let html = self
            .http
            .get(&self.base)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = html
            .find("name=\"lg_stamp\" value=\"")
            .expect("the form's stamp")
            + 23;
        html[at..at + html[at..].find('"').unwrap()].to_string()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", &self.origin)
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }
}

async fn rows(app: &TestApp) -> Vec<(String, String)> {
    let su = app.db().superuser_pool().await;
    sqlx::query_as("SELECT email, status FROM app.early_access ORDER BY created_at")
        .fetch_all(&su)
        .await
        .unwrap()
}

fn link(text: &str, prefix: &str) -> String {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn early_access_double_opt_in_through_the_mail_path() {
    let sink = Arc::new(MailSink::start(None));
    let clock = Arc::new(OffsetClock::default());
    let env: Vec<(String, String)> = sink.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_on(TestDb::new().await, &pairs, clock.clone()).await;
    let site = app.https_url("");
    let v = Visitor::new(&app, Ipv4Addr::new(127, 0, 0, 21));
    let thanks = "Check your inbox";

    // Bots: too fast, the honeypot filled, a forged stamp. Each gets the page a person gets.
    let stamp = v.stamp().await;
    let bot = [("email", "bot@example.com"), ("lg_stamp", stamp.as_str())];
    let (status, page) = v.post("/early-access", &bot).await;
    assert_eq!((status, page.contains(thanks)), (200, true), "too fast");
    clock.advance(5);
    let honeypot = [
        ("email", "bot@example.com"),
        ("lg_stamp", stamp.as_str()),
        ("homepage_url", "http://spam.example"),
    ];
    let (status, page) = v.post("/early-access", &honeypot).await;
    assert_eq!((status, page.contains(thanks)), (200, true), "honeypot");
    assert!(
        rows(&app).await.is_empty(),
        "a trapped post is stored nowhere"
    );

    // A person: a typing mistake is shown, with what they typed kept.
    let v2 = Visitor::new(&app, Ipv4Addr::new(127, 0, 0, 22));
    let stamp = v2.stamp().await;
    clock.advance(5);
    let (status, page) = v2
        .post(
            "/early-access",
            &[
                ("email", "ada(at)example.com"),
                ("name", "Ada"),
                ("lg_stamp", &stamp),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("Enter an email address") && page.contains("value=\"Ada\""));
    let form = [
        ("email", "Ada@Example.com"),
        ("name", "Ada Lovelace"),
        ("company", "Analytical Engines"),
        ("lg_stamp", stamp.as_str()),
        ("homepage_url", ""),
    ];
    let (status, page) = v2.post("/early-access", &form).await;
    assert_eq!((status, page.contains(thanks)), (200, true));
    // The same post again: the same answer, one row, and no second mail within the wait.
    let (status, again) = v2.post("/early-access", &form).await;
    assert_eq!((status, again), (200, page.clone()));
    assert_eq!(
        rows(&app).await,
        vec![("ada@example.com".into(), "pending".into())]
    );

    let mail = wait_for_mails(&sink, 1).await.remove(0);
    assert_eq!(mail["to"], "ada@example.com");
    let text = mail["text"].as_str().unwrap();
    let confirm = link(text, &format!("{site}/early-access/confirm/"));
    let unsubscribe = link(text, &format!("{site}/early-access/unsubscribe/"));
    let path = |url: &str| url.trim_start_matches(&site).to_string();

    // Opening the link changes nothing (mail scanners open links); the button confirms.
    let page = v2.http.get(&confirm).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Confirm your address"));
    assert_eq!(rows(&app).await[0].1, "pending");
    let (status, page) = v2.post(&path(&confirm), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("You are on the list"));
    assert_eq!(rows(&app).await[0].1, "confirmed");
    // A forged or cut link leads nowhere.
    let (status, _) = v2
        .post(&path(&confirm)[..path(&confirm).len() - 3], &[])
        .await;
    assert_eq!(status, 404);

    // The operator lists, exports and invites.
    let mut cli_env = server_env(Some(app.db()), app.data_dir.path());
    cli_env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    cli_env.push(("LEADGEN_AUTH__SITE_URL".into(), site.clone()));
    cli_env.extend(sink.env());
    let (code, out, err) = run_leadgen(&["waitlist", "list", "--json"], &cli_env);
    assert_eq!(code, 0, "{out}{err}");
    let listed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed["entries"][0]["email"], "ada@example.com");
    assert_eq!(listed["entries"][0]["status"], "confirmed");
    assert_eq!(listed["spam"]["too_fast"], 1);
    assert_eq!(listed["spam"]["honeypot"], 1);
    let (code, csv, err) = run_leadgen(&["waitlist", "export"], &cli_env);
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("email,name,company,status"), "{csv}");
    assert!(
        csv.contains("ada@example.com,Ada Lovelace,Analytical Engines,confirmed"),
        "{csv}"
    );
    let (code, out, err) = run_leadgen(&["waitlist", "invite", "--json"], &cli_env);
    assert_eq!(code, 0, "{out}{err}");
    let invited: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(invited["invited"], serde_json::json!(["ada@example.com"]));
    let invitation = wait_for_mails(&sink, 2).await.remove(1);
    let text = invitation["text"].as_str().unwrap();
    assert!(text.contains(&format!("{site}/signup")), "{text}");
    assert!(
        text.contains(&unsubscribe),
        "every mail carries the unsubscribe link"
    );
    // Invited once: a second run invites nobody.
    let (_, out, _) = run_leadgen(&["waitlist", "invite", "--json"], &cli_env);
    assert!(out.contains("\"invited\":[]"), "{out}");

    // Unsubscribe: the page's button, at once; an old confirmation link does not undo it.
    let (status, page) = v2.post(&path(&unsubscribe), &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("You are off the list"));
    assert_eq!(rows(&app).await[0].1, "unsubscribed");
    let (_, page) = v2.post(&path(&confirm), &[]).await;
    assert!(page.contains("You are off the list"));
    assert_eq!(rows(&app).await[0].1, "unsubscribed");
    app.stop().await;
}

pub(crate) async fn wait_for_mails(sink: &MailSink, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let mails = sink.mails();
        if mails.len() >= n {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("expected {n} mail(s), got {:?}", sink.mails());
}

/// The shipped `early-access` rule: three posts an hour from one address, whatever they carry;
/// other addresses keep passing.
#[tokio::test]
async fn early_access_takes_three_posts_an_hour_per_address() {
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(TestDb::new().await, &[], clock.clone()).await;
    let v = Visitor::new(&app, Ipv4Addr::new(127, 0, 0, 31));
    let stamp = v.stamp().await;
    clock.advance(5);
    for i in 0..3 {
        let email = format!("person{i}@example.com");
        let (status, _) = v
            .post("/early-access", &[("email", &email), ("lg_stamp", &stamp)])
            .await;
        assert_eq!(status, 200, "post {i}");
    }
    let (status, _) = v
        .post(
            "/early-access",
            &[("email", "fourth@example.com"), ("lg_stamp", &stamp)],
        )
        .await;
    assert_eq!(status, 429, "the fourth post in the hour");
    let other = Visitor::new(&app, Ipv4Addr::new(127, 0, 0, 32));
    let (status, _) = other
        .post(
            "/early-access",
            &[("email", "other@example.com"), ("lg_stamp", &stamp)],
        )
        .await;
    assert_eq!(status, 200, "another address is not held back");
    let stored: BTreeSet<String> = rows(&app).await.into_iter().map(|(e, _)| e).collect();
    let expected: BTreeSet<String> = ["person0", "person1", "person2", "other"]
        .iter()
        .map(|p| format!("{p}@example.com"))
        .collect();
    assert_eq!(stored, expected);
    app.stop().await;
}
