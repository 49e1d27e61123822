//! Card numbers in the organizations' data (PCI): typed into a note, a lead's fields and custom
//! values, or an import row, each is masked before it is stored, audited and alerted; and
//! `leadgen pci scan` finds what reached a table another way (the organizations' tables, the
//! platform's own, log files) and masks it with `--fix`, as the shipped nightly unit runs it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, run_leadgen, server_env};
use crate::orgs::{Api, org_with_every_role};

const VISA: &str = "4242 4242 4242 4242";
const MASTERCARD: &str = "5555555555554444";
const AMEX: &str = "378282246310005";
const VISA_DASHED: &str = "4111-1111-1111-1111";

#[tokio::test]
async fn card_numbers_are_masked_where_people_type_them_and_the_scan_finds_the_rest() {
    let (hook, got) = crate::perimeter::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let waf_path = crate::perimeter::shipped_rules_alerting(dir.path(), &hook);
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        (
            "LEADGEN_PERIMETER__WAF_RULES_PATH",
            waf_path.to_str().unwrap(),
        ),
    ])
    .await;
    let api = Api::new(&app);
    let (_, tokens, _) = org_with_every_role(&app, &api, "pci").await;
    let user = &tokens[2];

    // A lead whose title and custom value carry card numbers.
    let (s, lead) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            user,
            Some(json!({
                "email": "payer@pci.test", "first_name": "Pat",
                "title": format!("Buyer (pays with {MASTERCARD})"),
                "custom": { "card_on_file": VISA, "plan": "Pro" },
            })),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    let id = lead["id"].as_str().unwrap().to_string();
    let (_, read) = api
        .call(Method::GET, &format!("/api/v1/leads/{id}"), user, None)
        .await;
    assert_eq!(
        read["title"], "Buyer (pays with 555555******4444)",
        "{read}"
    );
    assert_eq!(read["custom"]["card_on_file"], "4242 42** **** 4242");
    assert_eq!(read["custom"]["plan"], "Pro");

    // A note.
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{id}/notes"),
            user,
            Some(json!({ "body": format!("Card on the phone: {AMEX}, exp 09/28") })),
        )
        .await;
    assert_eq!(s, 201);
    let (_, notes) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{id}/notes"),
            user,
            None,
        )
        .await;
    assert_eq!(
        notes["items"][0]["body"],
        "Card on the phone: 378282*****0005, exp 09/28"
    );

    // An import row; its report names the masked field.
    let csv = format!(
        "Email,First Name,Job Title\nivy@pci.test,Ivy,\"Buyer, card {VISA_DASHED}\"\nkim@pci.test,Kim,Buyer\n"
    );
    let done = crate::imports::import(
        &app,
        &api,
        user,
        "cards.csv",
        csv.into_bytes(),
        "create_only",
    )
    .await;
    assert_eq!(done["created"], 2, "{done}");
    let report = app
        .client()
        .get(app.https_url(&format!(
            "/api/v1/imports/{}/issues",
            done["id"].as_str().unwrap()
        )))
        .bearer_auth(user)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        report.contains("2,title,warn,title: a card number was masked"),
        "line 2, the column, the reason: {report}"
    );
    let (_, ivy) = api
        .call(Method::GET, "/api/v1/leads?email=ivy@pci.test", user, None)
        .await;
    assert_eq!(ivy["items"][0]["title"], "Buyer, card 4111-11**-****-1111");

    // No digit of a card reached a table; each masking is in the audit trail and alerted.
    let su = app.db().superuser_pool().await;
    for pan in [
        "5555555555554444",
        "4242424242424242",
        "378282246310005",
        "4111111111111111",
    ] {
        let (hits,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM app.leads l
             WHERE regexp_replace(concat_ws(' ', l.title, l.custom::text, l.notes_text), '[^0-9]', '', 'g') LIKE '%' || $1 || '%'",
        )
        .bind(pan)
        .fetch_one(&su)
        .await
        .unwrap();
        assert_eq!(hits, 0, "{pan} stored");
    }
    let (audited,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM app.audit_log WHERE action = 'pci.pan_masked'")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(audited, 3, "the lead, the note and the import batch");
    let mut alerted = false;
    for _ in 0..60 {
        alerted = got.lock().unwrap().iter().any(|(_, b)| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.contains("card-number-masked"))
        });
        if alerted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        alerted,
        "the card-number-masked alert: {:?}",
        got.lock().unwrap()
    );

    // The scan finds nothing left; a number written past the application is found and fixed.
    let env = server_env(Some(app.db()), app.data_dir.path());
    let (code, out, err) = run_leadgen(&["pci", "scan", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["found"], json!([]), "{report}");
    sqlx::query("UPDATE app.leads SET department = 'Billing 6011 1111 1111 1117' WHERE email_bidx IS NOT NULL")
        .execute(&su)
        .await
        .unwrap();
    let (code, out, _) = run_leadgen(&["pci", "scan", "--json"], &env);
    assert_eq!(code, 1, "something found: {out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["found"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["found"][0]["column"], "department");
    assert_eq!(report["found"][0]["masked"][0], "6011 11** **** 1117");
    let (code, out, err) = run_leadgen(&["pci", "scan", "--fix", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run_leadgen(&["pci", "scan", "--json"], &env);
    assert_eq!(code, 0, "nothing left: {out}");
    let (department,): (String,) =
        sqlx::query_as("SELECT department FROM app.leads WHERE email_bidx IS NOT NULL LIMIT 1")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(department, "Billing 6011 11** **** 1117");

    // The platform's own text: a vulnerability report quoting a card is stored masked, and one
    // written past the application, like a waitlist entry, is found by the scan.
    let res = app
        .client()
        .post(app.https_url("/api/v1/vdp/reports"))
        .json(&json!({
            "title": "Card data echoed", "email": "r@example.net",
            "endpoints": "POST /api/v1/leads/{id}/notes",
            "steps": format!("Post a note with {VISA_DASHED} and read it back"),
            "impact": "Card numbers at rest",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (steps,): (String,) = sqlx::query_as("SELECT steps FROM app.vdp_reports")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(
        steps,
        "Post a note with 4111-11**-****-1111 and read it back"
    );
    sqlx::query(&format!(
        "UPDATE app.vdp_reports SET impact = 'Paid with {AMEX}'"
    ))
    .execute(&su)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO app.early_access (id, email, company, created_at, confirm_sent_at)
         VALUES (gen_random_uuid(), 'w@example.net', 'Acme 5555-5555-5555-4444', now(), now())",
    )
    .execute(&su)
    .await
    .unwrap();

    // A log file: a card on line 2 (in a line that is not UTF-8) and on line 4; look-alikes left.
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("leadgen.log");
    let mut text = b"ts=1 order 12345 phone +1 415 555 0100\n".to_vec();
    text.extend_from_slice(b"ts=2 caf\xe9 paid 4242424242424242 ok\n");
    text.extend_from_slice(b"ts=3 id 0190a7b2-55e4-7c1d-8a3e-4f2b9c6d1e70\n");
    text.extend_from_slice(format!("ts=4 card {VISA} end\n").as_bytes());
    std::fs::write(&log, &text).unwrap();
    let logs_arg = logs.to_str().unwrap();
    let (code, out, _) = run_leadgen(&["pci", "scan", "--json", "--log", logs_arg], &env);
    assert_eq!(code, 1, "something found: {out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    let places: Vec<(Value, Value, Value)> = report["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["table"].clone(), f["column"].clone(), f["org_id"].clone()))
        .collect();
    assert_eq!(
        places,
        [
            (json!("vdp_reports"), json!("impact"), Value::Null),
            (json!("early_access"), json!("company"), Value::Null),
        ],
        "{report}"
    );
    let lines: Vec<(Value, Value)> = report["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["line"].clone(), f["masked"].clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (json!(2), json!("424242******4242")),
            (json!(4), json!("4242 42** **** 4242")),
        ],
        "{report}"
    );

    // The nightly unit's own command masks all of it; the log keeps its length and its other
    // bytes, and the alert webhooks hear of it.
    let unit = std::fs::read_to_string(
        crate::helpers::workspace_root().join("config/systemd/leadgen-pci-scan.service"),
    )
    .unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert!(args.starts_with(&["pci", "scan", "--fix"]), "{exec}");
    let timer = std::fs::read_to_string(
        crate::helpers::workspace_root().join("config/systemd/leadgen-pci-scan.timer"),
    )
    .unwrap();
    assert!(timer.contains("\nOnCalendar=") && timer.contains("\nPersistent=true"));
    args.extend(["--log", logs_arg]);
    let alerts_before = got.lock().unwrap().len();
    let mut unit_env = env.clone();
    unit_env.push((
        "LEADGEN_PERIMETER__WAF_RULES_PATH".into(),
        waf_path.display().to_string(),
    ));
    let (code, out, err) = run_leadgen(&args, &unit_env);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run_leadgen(&["pci", "scan", "--json", "--log", logs_arg], &env);
    assert_eq!(code, 0, "nothing left: {out}");
    let after = std::fs::read(&log).unwrap();
    assert_eq!(after.len(), text.len());
    let mut expected = text.clone();
    for (from, to) in [
        ("4242424242424242".as_bytes(), "424242******4242".as_bytes()),
        (VISA.as_bytes(), "4242 42** **** 4242".as_bytes()),
    ] {
        let at = expected
            .windows(from.len())
            .position(|w| w == from)
            .unwrap();
        expected[at..at + from.len()].copy_from_slice(to);
    }
    assert_eq!(after, expected);
    let (impact, company): (String, String) =
        sqlx::query_as("SELECT r.impact, a.company FROM app.vdp_reports r, app.early_access a")
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(
        (impact.as_str(), company.as_str()),
        ("Paid with 378282*****0005", "Acme 5555-55**-****-4444")
    );
    let mut alerted = false;
    for _ in 0..50 {
        alerted = got.lock().unwrap()[alerts_before..].iter().any(|(_, b)| {
            b.to_string().contains("card-number-masked") && b.to_string().contains("log files")
        });
        if alerted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(alerted, "the scan's alert: {:?}", got.lock().unwrap());
    app.stop().await;
}
