//! Vulnerability disclosure through the front door: security.txt per RFC 9116, a report with
//! hostile payloads and an attachment through the form (tracking id, acknowledgement mail through
//! a real SMTP server, the reporter's status link following the operators' triage), the JSON
//! API, the operators' API and commands, the per-address limit, and the untriaged alert at 40
//! hours under an injected clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use leadgen::clock::OffsetClock;
use serde_json::{Value, json};

use crate::helpers::{MailSink, TEST_MASTER_KEY, TestApp, TestDb, run_leadgen, server_env};
use crate::public::wait_for_mails;

const OPERATOR_TOKEN: &str = "op-token-0123456789abcdef0123456789abcdef";

/// The value of each `Field: value` line of a security.txt, by field name (lower case).
fn fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not a field: {l}"));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

#[tokio::test]
async fn security_txt_carries_rfc_9116_fields_and_renews_itself() {
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(
        TestDb::new().await,
        &[("LEADGEN_VDP__CONTACTS", "[\"mailto:security@example.com\"]")],
        clock.clone(),
    )
    .await;
    let c = app.client();
    let fetch = || async {
        let res = c
            .get(app.https_url("/.well-known/security.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain") && ct.contains("utf-8"), "{ct}");
        fields(&res.text().await.unwrap())
    };
    let expires_of = |f: &[(String, String)]| {
        let e: Vec<&String> = f
            .iter()
            .filter(|(k, _)| k == "expires")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(e.len(), 1, "exactly one Expires (RFC 9116 2.5.5)");
        time::OffsetDateTime::parse(e[0], &time::format_description::well_known::Rfc3339).unwrap()
    };
    let f = fetch().await;
    let get = |name: &str| -> Vec<String> {
        f.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let contacts = get("contact");
    assert!(contacts.contains(&"mailto:security@example.com".to_string()));
    assert!(
        contacts.contains(&app.https_url("/security/disclosure")),
        "{contacts:?}"
    );
    assert_eq!(
        get("canonical"),
        vec![app.https_url("/.well-known/security.txt")]
    );
    assert_eq!(get("policy"), vec![app.https_url("/security/disclosure")]);
    assert_eq!(get("preferred-languages"), vec!["en".to_string()]);
    assert_eq!(get("acknowledgments").len(), 1);
    let now = time::OffsetDateTime::now_utc();
    let expires = expires_of(&f);
    assert!(
        expires > now + time::Duration::days(30) && expires < now + time::Duration::days(365),
        "Expires within a year, not about to lapse: {expires}"
    );
    // The policy and the acknowledgements it points to exist.
    let policy = c
        .get(app.https_url("/security/disclosure"))
        .send()
        .await
        .unwrap();
    assert_eq!(policy.status(), 200);
    let html = policy.text().await.unwrap();
    assert!(html.contains("id=\"acknowledgments\"") && html.contains("Steps to reproduce"));
    // Two hundred days on, the file has renewed itself.
    clock.advance(200 * 86_400);
    let later = expires_of(&fetch().await);
    assert!(later > expires + time::Duration::days(190), "{later}");
    // The legacy place sends clients on.
    let legacy = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(app.cert_path()).unwrap()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.https_url("/security.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 308);
    assert_eq!(legacy.headers()["location"], "/.well-known/security.txt");
    app.stop().await;

    // An operator's signed file: served as given; one that has expired stops configtest.
    let dir = tempfile::tempdir().unwrap();
    let signed = dir.path().join("security.txt");
    std::fs::write(
        &signed,
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nContact: mailto:sec@example.com\n\
         Expires: 2020-01-01T00:00:00Z\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n",
    )
    .unwrap();
    let (code, _, err) = run_leadgen(
        &["configtest"],
        &[(
            "LEADGEN_VDP__SIGNED_PATH".into(),
            signed.to_str().unwrap().into(),
        )],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("vdp.signed_path") && err.contains("expired"),
        "{err}"
    );
    let text = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nContact: mailto:sec@example.com\n\
         Expires: {}-01-01T00:00:00Z\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n",
        now.year() + 1
    );
    std::fs::write(&signed, &text).unwrap();
    let app = TestApp::spawn_with(&[("LEADGEN_VDP__SIGNED_PATH", signed.to_str().unwrap())]).await;
    let served = app
        .client()
        .get(app.https_url("/.well-known/security.txt"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served, text);
    app.stop().await;
}

/// A researcher's payloads, as they would paste them.
const XSS: &str = "<script>alert(document.cookie)</script>";
const SQLI: &str = "' UNION SELECT password_hash FROM app.users--";
const TRAVERSAL: &str = "GET /static/..%2f..%2f..%2fetc/passwd";

fn between<'a>(text: &'a str, start: &str, end: char) -> &'a str {
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let rest = &text[at..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[tokio::test]
async fn a_report_gets_its_id_an_acknowledgement_and_a_status_link_that_follows_triage() {
    let sink = Arc::new(MailSink::start(None));
    let clock = Arc::new(OffsetClock::default());
    let mut env: Vec<(String, String)> = sink.env();
    env.push(("LEADGEN_OPERATORS__API_TOKEN".into(), OPERATOR_TOKEN.into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_on(TestDb::new().await, &pairs, clock.clone()).await;
    let site = app.https_url("");
    let http = app.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41)));
    let year = time::OffsetDateTime::now_utc().year();

    // The form, as a browser posts it: multipart, with an attachment, from the policy page.
    let page = http
        .get(app.https_url("/security/disclosure"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stamp = between(&page, "name=\"lg_stamp\" value=\"", '"').to_string();
    clock.advance(30);
    let shot = b"\x89PNG\r\n\x1a\nscreenshot-bytes-that-must-not-be-stored-in-clear".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("lg_stamp", stamp.clone())
        .text("homepage_url", "")
        .text("title", format!("Stored XSS in lead notes {XSS}"))
        .text("email", "Researcher@Example.org")
        .text("name", "Rae Searcher")
        .text("credit_name", "Rae S.")
        .text("endpoints", format!("POST /api/v1/leads\n{TRAVERSAL}"))
        .text(
            "steps",
            format!("1. Create a lead whose note is {XSS}\n2. Search with {SQLI}"),
        )
        .text("impact", "Session theft of any member who opens the lead.")
        .text("cvss", "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:H/I:H/A:N")
        .part(
            "attachments",
            reqwest::multipart::Part::bytes(shot.clone())
                .file_name("../../shot.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let res = http
        .post(app.https_url("/security/disclosure"))
        .header("origin", &site)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the WAF lets payloads through as data");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    let tracking = format!("LG-VDP-{year}-0001");
    assert!(page.contains(&tracking), "{page}");
    let status_url = between(&page, "data-status-link>", '<').to_string();
    assert!(status_url.starts_with(&format!("{site}/security/reports/")));

    // The acknowledgement, through the mail path, with the id and the same link.
    let ack = wait_for_mails(&sink, 1).await.remove(0);
    assert_eq!(ack["to"], "researcher@example.org");
    assert!(ack["subject"].as_str().unwrap().contains(&tracking));
    let text = ack["text"].as_str().unwrap();
    assert!(text.contains(&status_url), "{text}");

    // The status page: received and acknowledged; the payload shown as text.
    let status_page = || async {
        let res = http.get(&status_url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["referrer-policy"], "no-referrer");
        res.text().await.unwrap()
    };
    let mut shown = String::new();
    for _ in 0..50 {
        shown = status_page().await;
        if shown.contains("Acknowledgement mailed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown.contains("Report received") && shown.contains("Acknowledgement mailed"));
    assert!(
        shown.contains("alert(document.cookie)") && !shown.contains(XSS),
        "shown as text: {shown}"
    );
    assert!(shown.contains(">received<"), "{shown}");
    // A guessed link shows nothing.
    let wrong = http
        .get(app.https_url(&format!("/security/reports/{}", "A".repeat(43))))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);

    // The operators' commands: list, triage with a note to the reporter.
    let mut cli = server_env(Some(app.db()), app.data_dir.path());
    cli.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    cli.push(("LEADGEN_AUTH__SITE_URL".into(), site.clone()));
    cli.extend(sink.env());
    let (code, out, err) = run_leadgen(&["vdp", "list", "--json"], &cli);
    assert_eq!(code, 0, "{out}{err}");
    let listed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed["reports"][0]["tracking_id"], tracking.as_str());
    assert_eq!(listed["reports"][0]["status"], "received");
    let (code, out, err) = run_leadgen(
        &["vdp", "triage", &tracking, "--status", "fixed", "--json"],
        &cli,
    );
    assert_ne!(code, 0, "a received report is not fixed yet: {out}");
    assert!(out.contains("can become"), "the reason: {out}{err}");
    let (code, out, err) = run_leadgen(
        &[
            "vdp",
            "triage",
            &tracking,
            "--status",
            "triaged",
            "--severity",
            "high",
            "--note",
            "Reproduced on 2.3; a fix is in review.",
            "--to-reporter",
            "--json",
        ],
        &cli,
    );
    assert_eq!(code, 0, "{out}{err}");
    let shown = status_page().await;
    assert!(shown.contains("Status: triaged"), "{shown}");
    assert!(shown.contains("Severity: high"));
    assert!(shown.contains("Reproduced on 2.3; a fix is in review."));
    let update = wait_for_mails(&sink, 2).await.remove(1);
    assert!(update["text"].as_str().unwrap().contains("Status: triaged"));

    // The operators' API: a bearer token, not a member's session.
    let op = |req: reqwest::RequestBuilder| req.bearer_auth(OPERATOR_TOKEN);
    let c = app.client();
    let res = c
        .get(app.https_url("/operator/api/vdp/reports"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .get(app.https_url("/operator/api/vdp/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let one: Value = op(c.get(app.https_url(&format!("/operator/api/vdp/reports/{tracking}"))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(one["steps"].as_str().unwrap().contains(SQLI));
    assert!(
        one["cvss_score"].as_f64().unwrap() > 7.0,
        "{}",
        one["cvss_score"]
    );
    assert_eq!(one["attachments"][0]["filename"], "shot.png");
    assert_eq!(one["reporter_email"], "researcher@example.org");
    let res = op(c.post(app.https_url(&format!("/operator/api/vdp/reports/{tracking}"))))
        .json(&json!({ "status": "accepted", "reward": "eligible" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = op(c.post(app.https_url(&format!("/operator/api/vdp/reports/{tracking}"))))
        .json(&json!({ "status": "disclosed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        409,
        "accepted reports are fixed before disclosure"
    );
    let file = op(c.get(app.https_url(&format!(
        "/operator/api/vdp/reports/{tracking}/attachments/1"
    ))))
    .send()
    .await
    .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/octet-stream");
    assert_eq!(file.bytes().await.unwrap().to_vec(), shot);
    let shown = status_page().await;
    assert!(shown.contains("Status: accepted") && shown.contains("Reward: eligible"));

    // Stored sealed; the reporter's link only as a hash; every step in the platform's chain.
    let su = app.db().superuser_pool().await;
    let (content,): (Vec<u8>,) = sqlx::query_as("SELECT content FROM app.vdp_attachments")
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(!content.windows(16).any(|w| w == &shot[8..24]));
    let token = status_url.rsplit('/').next().unwrap();
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT status_token_hash FROM app.vdp_reports")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(
        stored,
        <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).to_vec(),
        "the link is kept only as its hash"
    );
    let actions: Vec<(String,)> =
        sqlx::query_as("SELECT action FROM app.platform_audit ORDER BY seq")
            .fetch_all(&su)
            .await
            .unwrap();
    let actions: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(actions, ["vdp.report_received", "vdp.triage", "vdp.triage"]);
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &cli);
    assert_eq!(code, 0, "{out}{err}");
    // Tampering with the platform's chain is found like an organization's.
    sqlx::query("UPDATE app.platform_audit SET target = 'LG-VDP-0000-9999' WHERE seq = 2")
        .execute(&su)
        .await
        .unwrap();
    let (code, _, err) = run_leadgen(&["audit", "verify"], &cli);
    assert_ne!(code, 0);
    assert!(
        err.contains("00000000-0000-0000-0000-000000000000"),
        "{err}"
    );
    app.stop().await;
}

fn api_report(title: &str) -> Value {
    json!({
        "title": title,
        "email": "r@example.net",
        "endpoints": "GET /api/v1/leads?q=",
        "steps": format!("curl -k 'https://host/api/v1/leads?q={SQLI}'"),
        "impact": "Reads other organizations' leads.",
        "cvss": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
    })
}

#[tokio::test]
async fn the_report_api_names_bad_fields_and_holds_ten_reports_an_hour_per_address() {
    let app = TestApp::spawn().await;
    let http = app.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 42)));
    let url = app.https_url("/api/v1/vdp/reports");
    // No sign-in needed; the receipt carries the id, the link and the deadlines.
    let res = http
        .post(&url)
        .json(&api_report("IDOR"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let receipt: Value = res.json().await.unwrap();
    assert!(receipt["tracking_id"].as_str().unwrap().ends_with("-0001"));
    assert_eq!(receipt["cvss_severity"], "critical");
    assert!(
        receipt["status_url"]
            .as_str()
            .unwrap()
            .contains("/security/reports/")
    );
    // Each problem named by its field; nothing stored.
    for (body, field) in [
        (
            {
                let mut b = api_report("x");
                b["steps"] = json!("");
                b
            },
            "steps",
        ),
        (
            {
                let mut b = api_report("x");
                b["cvss"] = json!("CVSS:3.1/AV:Q");
                b
            },
            "cvss",
        ),
        (
            {
                let mut b = api_report("x");
                b["email"] = json!("nobody");
                b
            },
            "email",
        ),
        (
            {
                let mut b = api_report("x");
                b["attachments"] = json!([{"filename": "a", "content_base64": "***"}]);
                b
            },
            "attachments[0]",
        ),
        (
            {
                let mut b = api_report("x");
                b["extra"] = json!(1);
                b
            },
            "extra",
        ),
    ] {
        let res = http.post(&url).json(&body).send().await.unwrap();
        // A field of the wrong shape is 422 like every JSON route; a value that is not
        // acceptable, 400.
        let expected = if field == "extra" { 422 } else { 400 };
        assert_eq!(res.status(), expected, "{field}");
        let text = res.text().await.unwrap();
        assert!(text.contains(field), "{field}: {text}");
    }
    // An attachment over the size limit: 413.
    let mut big = api_report("big");
    big["attachments"] = json!([{ "filename": "log.txt", "content_base64":
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, vec![b'a'; 5_300_000]) }]);
    let res = http.post(&url).json(&big).send().await.unwrap();
    assert_eq!(res.status(), 413);
    let su = app.db().superuser_pool().await;
    let count = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM app.vdp_reports")
            .fetch_one(&su)
            .await
            .unwrap();
        n
    };
    assert_eq!(count().await, 1);
    // The `vdp-report-api` rule: ten posts an hour per address, whatever they carry.
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            http.post(&url)
                .json(&api_report(&format!("r{i}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [201, 201, 201, 429],
        "posts 7 to 10 of the hour, then refused"
    );
    let other = app.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 43)));
    let res = other
        .post(&url)
        .json(&api_report("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "another address is not held back");
    assert_eq!(count().await, 5);
    // Without a configured token the operators' API is off, whatever is presented.
    let res = app
        .client()
        .get(app.https_url("/operator/api/vdp/reports"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("operator_api_disabled"));
    app.stop().await;
}

#[tokio::test]
async fn an_untriaged_report_raises_the_alert_at_forty_hours() {
    let (hook, got) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let waf_path = crate::perimeter::shipped_rules_alerting(dir.path(), &hook);
    let clock = Arc::new(OffsetClock::default());
    let app = TestApp::spawn_on(
        TestDb::new().await,
        &[
            (
                "LEADGEN_PERIMETER__WAF_RULES_PATH",
                waf_path.to_str().unwrap(),
            ),
            ("LEADGEN_VDP__CHECK_SECS", "1"),
        ],
        clock.clone(),
    )
    .await;
    let http = app.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 44)));
    let post = |title: &'static str| {
        let (http, url) = (http.clone(), app.https_url("/api/v1/vdp/reports"));
        async move {
            let r: Value = http
                .post(url)
                .json(&api_report(title))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["tracking_id"].as_str().unwrap().to_string()
        }
    };
    let untriaged = post("left alone").await;
    let triaged = post("looked at").await;
    let su = app.db().superuser_pool().await;
    sqlx::query("UPDATE app.vdp_reports SET status = 'triaged' WHERE tracking_id = $1")
        .bind(&triaged)
        .execute(&su)
        .await
        .unwrap();
    let alerts = || {
        got.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b["text"].as_str().unwrap_or("").to_string())
            .filter(|t| t.contains("vdp-untriaged"))
            .collect::<Vec<_>>()
    };
    clock.advance(39 * 3600);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(alerts().is_empty(), "39 hours: not yet");
    clock.advance(3600 + 60);
    for _ in 0..100 {
        if !alerts().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let fired = alerts();
    assert_eq!(fired.len(), 1, "one alert, once: {fired:?}");
    assert!(
        fired[0].contains(&untriaged) && !fired[0].contains(&triaged),
        "{}",
        fired[0]
    );
    assert!(fired[0].contains("48-hour"), "{}", fired[0]);
    let (events,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM app.vdp_events WHERE kind = 'alerted'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(events, 1);
    app.stop().await;
}
