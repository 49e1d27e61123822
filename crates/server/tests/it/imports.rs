//! Lead imports through the front door: the three CRM dialects with their faulty rows, the dedupe
//! modes, and a server killed with SIGKILL mid-import that finishes on restart with exactly the
//! expected leads.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Proc, TEST_MASTER_KEY, TestApp, TestDb, client_for, server_env};
use crate::orgs::{Api, org_with_every_role, spawn};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        crate::helpers::workspace_root()
            .join("../shared/data/import")
            .join(name),
    )
    .unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&fixture("expected.json")).unwrap()
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    csv: Vec<u8>,
) -> (u16, Value) {
    let res = http
        .post(format!("{base}/api/v1/imports?name={name}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .header("accept", "application/json")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls the job until it leaves `queued`/`running`.
async fn wait_done(api: &Api, token: &str, id: &str, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/imports/{id}"), token, None)
            .await;
        assert_eq!(s, 200, "{v}");
        if !matches!(v["status"].as_str(), Some("queued" | "running")) {
            return v;
        }
        assert!(start.elapsed() < within, "import still {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn import(
    app: &TestApp,
    api: &Api,
    token: &str,
    name: &str,
    csv: Vec<u8>,
    mode: &str,
) -> Value {
    let (s, up) = upload(&app.client(), &app.https_url(""), token, name, csv).await;
    assert_eq!(s, 201, "{up}");
    let id = up["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/imports/{id}/start"),
            token,
            Some(json!({ "mode": mode })),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let done = wait_done(api, token, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "done", "{done}");
    done
}

#[tokio::test]
async fn hubspot_apollo_and_salesforce_exports_import_with_precise_reports() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "dialects").await;
    let user = &t[2];
    let expected = expected();
    let su = app.db().superuser_pool().await;
    let mut total_created = 0i64;
    let dnc_count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM app.leads WHERE org_id = $1 AND do_not_contact",
        )
        .bind(org)
        .fetch_one(&su)
        .await
        .unwrap()
    };
    for (file, dialect) in [
        ("hubspot-contacts.csv", "hub_spot"),
        ("apollo-contacts.csv", "apollo"),
        ("salesforce-contacts.csv", "salesforce"),
    ] {
        let e = &expected[file];
        let dnc_before = dnc_count().await;
        let (s, up) = upload(&app.client(), &app.https_url(""), user, file, fixture(file)).await;
        assert_eq!(s, 201, "{file}: {up}");
        assert_eq!(up["rows"], 200, "{file}");
        assert_eq!(
            up["dialect"]
                .as_str()
                .unwrap()
                .replace('_', "")
                .to_lowercase(),
            dialect.replace('_', ""),
            "{file}: {up}"
        );
        let columns = up["columns"].as_array().unwrap();
        assert!(
            columns.iter().any(|c| c["field"] == "email"),
            "{file}: email mapped: {columns:?}"
        );
        assert!(!up["preview"].as_array().unwrap().is_empty());
        let id = up["id"].as_str().unwrap().to_string();
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/api/v1/imports/{id}/start"),
                user,
                Some(json!({ "mode": "create_only" })),
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let done = wait_done(&api, user, &id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "done", "{done}");

        let rejects: Vec<u64> = e["faulty_rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["severity"] == "reject")
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        let warns: Vec<u64> = e["faulty_rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["severity"] == "warn")
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        let dups: Vec<u64> = e["duplicate_rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["line"].as_u64().unwrap())
            .collect();
        assert!(
            dups.iter().all(|d| !rejects.contains(d)),
            "fixture rows are disjoint"
        );
        assert_eq!(done["rows_done"], 200, "{done}");
        assert_eq!(done["rejected"], rejects.len(), "{file}: {done}");
        assert_eq!(done["duplicates"], dups.len(), "{file}: {done}");
        let created = 200 - rejects.len() as i64 - dups.len() as i64;
        assert_eq!(done["created"], created, "{file}: {done}");
        assert_eq!(done["percent"], 100.0);
        total_created += created;

        // The report names line, column and reason for each faulty row, and nothing else.
        let res = app
            .client()
            .get(app.https_url(&format!("/api/v1/imports/{id}/issues")))
            .bearer_auth(user)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let report = res.text().await.unwrap();
        let mut rdr = csv::Reader::from_reader(report.as_bytes());
        let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        for line in &rejects {
            let r = rows
                .iter()
                .find(|r| r[0] == line.to_string() && &r[2] == "reject")
                .unwrap_or_else(|| panic!("{file}: line {line} not reported: {report}"));
            assert!(!r[3].is_empty());
        }
        for line in &warns {
            let r = rows
                .iter()
                .find(|r| r[0] == line.to_string() && &r[2] == "warn")
                .unwrap_or_else(|| panic!("{file}: line {line} not warned: {report}"));
            assert!(!r[1].is_empty(), "{file}: warn names its column");
        }
        for r in &rows {
            let line: u64 = r[0].parse().unwrap();
            assert!(
                rejects.contains(&line) || warns.contains(&line),
                "{file}: unexpected issue {r:?}"
            );
        }
        // Opted-out people are do-not-contact, and nobody else.
        let opted: Vec<u64> = e["opted_out_rows"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_u64().unwrap()).collect())
            .unwrap_or_default();
        let plain = opted
            .iter()
            .filter(|l| !rejects.contains(l) && !dups.contains(l))
            .count() as i64;
        let dnc = dnc_count().await - dnc_before;
        assert!(
            dnc >= plain && dnc <= opted.len() as i64,
            "{file}: {dnc} do-not-contact for {} opted-out rows",
            opted.len()
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM app.leads WHERE org_id = $1")
        .bind(org)
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(stored, total_created);
    // No address stored twice, however it was typed.
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT email_bidx) FROM app.leads WHERE org_id = $1 AND email_bidx IS NOT NULL",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    let with_email: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app.leads WHERE org_id = $1 AND email_bidx IS NOT NULL",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    assert_eq!(distinct, with_email);
    // Audited: upload, start and finish.
    let (_, trail) = api
        .call(Method::GET, "/api/v1/org/audit?limit=200", &t[0], None)
        .await;
    for action in ["import.upload", "import.start", "import.finish"] {
        assert_eq!(
            trail
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == action)
                .count(),
            3,
            "{action}"
        );
    }
    app.stop().await;
}

fn template(rows: &[[&str; 5]]) -> Vec<u8> {
    let mut out = String::from("first_name,last_name,email,title,do_not_contact\n");
    for r in rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

#[tokio::test]
async fn dedupe_modes_create_update_and_fill_and_opt_outs_stick() {
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::helpers::generous_rate_limits(dir.path());
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        (
            "LEADGEN_PERIMETER__RATE_LIMITS_PATH",
            rules.to_str().unwrap(),
        ),
    ])
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "modes").await;
    let user = &t[2];
    let first = template(&[
        ["Ann", "Lee", "ann@modes.example", "", "false"],
        ["Bo", "Chen", "bo@modes.example", "CTO", "false"],
    ]);
    let d = import(&app, &api, user, "first.csv", first, "create_only").await;
    assert_eq!(d["created"], 2);
    // Same people, addresses typed differently.
    let second = || {
        template(&[
            ["Anne", "Lee", " ANN@Modes.Example", "VP Sales", "false"],
            ["Bo", "", "Bo@modes.example", "CEO", "true"],
        ])
    };
    let get = |email: &'static str| {
        let api = &api;
        async move {
            let (_, v) = api
                .call(
                    Method::GET,
                    &format!("/api/v1/leads?email={email}"),
                    user,
                    None,
                )
                .await;
            v["items"][0].clone()
        }
    };
    let d = import(&app, &api, user, "again.csv", second(), "create_only").await;
    assert_eq!(d["created"], 0, "{d}");
    assert_eq!(get("ann@modes.example").await["first_name"], "Ann");
    assert_eq!(get("ann@modes.example").await["title"], Value::Null);
    // The opt-out applies even in create-only.
    assert_eq!(get("bo@modes.example").await["do_not_contact"], true);

    let d = import(&app, &api, user, "fill.csv", second(), "fill_empty").await;
    assert_eq!(d["created"], 0);
    let ann = get("ann@modes.example").await;
    assert_eq!(ann["first_name"], "Ann", "never overwritten");
    assert_eq!(ann["title"], "VP Sales", "empty filled");
    assert_eq!(get("bo@modes.example").await["title"], "CTO");

    let d = import(&app, &api, user, "update.csv", second(), "update_existing").await;
    assert_eq!(d["created"], 0);
    let ann = get("ann@modes.example").await;
    assert_eq!(ann["first_name"], "Anne");
    assert_eq!(ann["email"], "ann@modes.example");
    let bo = get("bo@modes.example").await;
    assert_eq!(bo["title"], "CEO");
    assert_eq!(
        bo["last_name"], "Chen",
        "an empty cell does not clear a field"
    );
    // Importing an opt-in never undoes an opt-out.
    let opt_in = template(&[["Bo", "Chen", "bo@modes.example", "CEO", "false"]]);
    import(&app, &api, user, "optin.csv", opt_in, "update_existing").await;
    assert_eq!(get("bo@modes.example").await["do_not_contact"], true);
    let (_, n) = api
        .call(Method::GET, "/api/v1/leads/count", user, None)
        .await;
    assert_eq!(n["count"], 2);

    // Bad input: a precise 4xx and no job.
    let (s, v) = upload(&app.client(), &app.https_url(""), user, "x", Vec::new()).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = upload(
        &app.client(),
        &app.https_url(""),
        user,
        "broken.csv",
        [
            b"first_name,email\nAnn,\"ann@x.example\n".to_vec(),
            vec![b'x'; 70_000],
        ]
        .concat(),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("line 2"),
        "{v}"
    );
    let res = app
        .client()
        .post(app.https_url("/api/v1/imports"))
        .bearer_auth(user)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let (s, up) = upload(
        &app.client(),
        &app.https_url(""),
        user,
        "m.csv",
        template(&[["A", "B", "a@b.example", "", ""]]),
    )
    .await;
    assert_eq!(s, 201);
    let id = up["id"].as_str().unwrap();
    for (body, field) in [
        (json!({ "mode": "merge_all" }), "mode"),
        (
            json!({ "mode": "create_only", "mapping": ["email"] }),
            "mapping",
        ),
        (
            json!({ "mode": "create_only", "mapping": ["email", "email", null, null, null] }),
            "mapping",
        ),
        (
            json!({ "mode": "create_only", "mapping": ["shoe_size", null, "email", null, null] }),
            "mapping[0]",
        ),
    ] {
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/api/v1/imports/{id}/start"),
                user,
                Some(body),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    // Another organization cannot see or start it.
    let (_, tb, _) = org_with_every_role(&app, &api, "modes-b").await;
    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/imports/{id}"), &tb[0], None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/imports/{id}/start"),
            &tb[0],
            Some(json!({ "mode": "create_only" })),
        )
        .await;
    assert_eq!(s, 404);
    app.stop().await;
}

/// `total` rows for imports that get interrupted: every tenth without an email (a name only),
/// every fifteenth repeating an earlier address in other case. Returns the CSV and how many
/// leads it makes.
fn interrupted_import_csv(total: usize) -> (Vec<u8>, usize) {
    let mut csv = String::from("first_name,last_name,email,title\n");
    let mut expected = 0usize;
    for i in 0..total {
        if i % 10 == 9 {
            csv.push_str(&format!("Name{i},Only,,Engineer\n"));
            expected += 1;
        } else if i % 15 == 14 {
            csv.push_str(&format!(
                "Dup{i},Person,PERSON{}@KILL.example,Engineer\n",
                i - 1
            ));
        } else {
            csv.push_str(&format!("P{i},Person,person{i}@kill.example,Engineer\n"));
            expected += 1;
        }
    }
    // A duplicate must point at a row with an address.
    assert!(
        (0..total)
            .filter(|i| i % 15 == 14)
            .all(|i| (i - 1) % 10 != 9)
    );
    (csv.into_bytes(), expected)
}

/// A `serve` whose imports get interrupted: small batches, short leases, generous API limits.
fn interrupted_import_env(db: Option<&TestDb>, dir: &std::path::Path) -> Vec<(String, String)> {
    let rules = crate::helpers::generous_rate_limits(dir);
    let mut env = server_env(db, dir);
    env.push((
        "LEADGEN_PERIMETER__RATE_LIMITS_PATH".into(),
        rules.display().to_string(),
    ));
    for (k, v) in [
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        ("LEADGEN_AUTH__BCRYPT_COST", "10"),
        ("LEADGEN_IMPORTS__BATCH_ROWS", "500"),
        ("LEADGEN_IMPORTS__LEASE_SECS", "2"),
        ("LEADGEN_IMPORTS__POLL_MS", "100"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

/// Uploads and starts `csv` (`total` rows) and returns its id once 5,000 rows are in and the
/// rest is not.
async fn import_past_5000(
    api: &Api,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    csv: Vec<u8>,
    total: usize,
) -> String {
    let (s, up) = upload(http, base, token, "big.csv", csv).await;
    assert_eq!(s, 201, "{up}");
    assert_eq!(up["rows"], total);
    let id = up["id"].as_str().unwrap().to_string();
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
        let done = v["rows_done"].as_u64().unwrap_or(0);
        assert_ne!(
            v["status"], "done",
            "the import ended before it could be interrupted"
        );
        if done >= 5_000 {
            assert!(done < total as u64);
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_import_cut_off_by_a_database_crash_finishes_exactly_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let env = interrupted_import_env(None, dir.path());
    let total = 60_000usize;
    let (csv, expected) = interrupted_import_csv(total);
    // The embedded cluster: the test may kill it.
    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(90));
    let cert = dir.path().join("tls/dev-cert.pem");
    let base = format!("https://localhost:{}", https.port());
    let api = Api::with_client(client_for(&cert, https), base.clone());
    let (token, _) = api.sign_up("importer@crash.test").await;
    let org = api.create_org(&token, "Crash Co").await;
    let token = api.switch(&token, org).await;
    let http = client_for(&cert, https);
    let id = import_past_5000(&api, &http, &base, &token, csv, total).await;
    // PostgreSQL dies mid-import and cannot come back for a few seconds.
    let cluster = dir.path().join("postgres");
    let pid: i32 = std::fs::read_to_string(cluster.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::set_permissions(
        &cluster,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::fs::set_permissions(
        &cluster,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // The server brings the cluster back and the import finishes by itself, exactly.
    let start = Instant::now();
    let done = loop {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/imports/{id}"), &token, None)
            .await;
        assert!(s == 200 || s == 503, "{s} {v}");
        if v["status"] == "done" || v["status"] == "failed" {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["rows_done"], total);
    assert_eq!(done["created"], expected, "{done}");
    assert_eq!(done["duplicates"], total - expected);
    let (s, v) = api
        .call(Method::GET, "/api/v1/leads/count?exact=true", &token, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["count"].as_u64(),
        Some(expected as u64),
        "exactly the expected leads, none twice"
    );
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(30)).success());
}

#[tokio::test]
async fn a_server_killed_mid_import_finishes_it_on_restart_without_duplicates() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = interrupted_import_env(Some(&db), dir.path());
    env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    // Tokens name the site; the restarted server binds another port.
    env.push((
        "LEADGEN_AUTH__SITE_URL".into(),
        "https://localhost:1".into(),
    ));
    let total = 60_000usize;
    let (csv, expected) = interrupted_import_csv(total);

    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(60));
    let cert = dir.path().join("tls/dev-cert.pem");
    let base = format!("https://localhost:{}", https.port());
    let api = Api::with_client(client_for(&cert, https), base.clone());
    let (token, _) = api.sign_up("importer@kill.test").await;
    let org = api.create_org(&token, "Kill Co").await;
    let token = api.switch(&token, org).await;
    let http = client_for(&cert, https);
    // Kill it once some batches have committed and before the end.
    let id = import_past_5000(&api, &http, &base, &token, csv, total).await;
    proc.signal(nix::sys::signal::Signal::SIGKILL);
    proc.wait_exit(Duration::from_secs(10));
    let su = db.superuser_pool().await;
    let mid: i64 = sqlx::query_scalar("SELECT count(*) FROM app.leads")
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(
        mid > 0 && (mid as usize) < expected,
        "{mid} leads when killed"
    );

    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(60));
    let base = format!("https://localhost:{}", https.port());
    let api = Api::with_client(client_for(&cert, https), base);
    let done = wait_done(&api, &token, &id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["rows_done"], total);
    assert_eq!(done["created"], expected, "{done}");
    assert_eq!(done["duplicates"], total - expected);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM app.leads")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(
        stored as usize, expected,
        "exactly the expected leads, no duplicates"
    );
    let names: i64 = sqlx::query_scalar("SELECT count(DISTINCT first_name) FROM app.leads")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(names as usize, expected, "no row written twice");
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    proc.wait_exit(Duration::from_secs(30));
}

#[tokio::test]
async fn demo_seed_queues_synthetic_leads_that_the_server_imports() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(Some(&db), dir.path());
    env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
    env.push(("LEADGEN_AUTH__BCRYPT_COST".into(), "10".into()));
    let (code, out, err) = crate::helpers::run_leadgen(
        &[
            "demo",
            "seed",
            "--leads",
            "300",
            "--json",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["rows"], 300, "{out}");
    let mut proc = Proc::spawn(&["serve"], &env);
    proc.wait_serving(Duration::from_secs(60));
    let su = db.superuser_pool().await;
    let start = Instant::now();
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM app.import_jobs")
            .fetch_one(&su)
            .await
            .unwrap();
        if status == "done" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "import still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let demo: i64 = sqlx::query_scalar("SELECT count(*) FROM app.leads WHERE org_id = $1")
        .bind(leadgen::demo::DEMO_ORG_ID)
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(demo, 300);
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    proc.wait_exit(Duration::from_secs(30));
}

/// Scores through the front door: the model is checked and saved by admins and managers, new,
/// changed and imported leads are scored with it at once, and changing it rescores every lead in
/// the background, batch by batch.
#[tokio::test]
async fn leads_are_scored_by_the_org_model_and_rescored_in_bulk_when_it_changes() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "scoring").await;
    let (manager, user) = (&t[1], &t[2]);
    let model = |vp: i64| {
        json!({"rules": [
            {"name": "Decision maker", "field": "seniority", "values": ["vp", "c_level"], "points": vp},
            {"name": "Germany", "field": "country", "values": ["DE"], "points": 30},
            {"name": "Reachable", "field": "has_email", "points": 10}
        ]})
    };
    let (s, v) = api
        .call(Method::PUT, "/api/v1/scoring", user, Some(model(50)))
        .await;
    assert_eq!(s, 403, "users do not change the model: {v}");
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/scoring",
            manager,
            Some(json!({"rules": [{"name": "x", "field": "seniority", "values": ["boss"], "points": 5}]})),
        )
        .await;
    assert_eq!(s, 400);
    assert!(v.to_string().contains("rules[0].values[0]"), "{v}");
    let (s, v) = api
        .call(Method::PUT, "/api/v1/scoring", manager, Some(model(50)))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);

    // A lead written through the API is scored at once, and the score explains itself.
    let (s, lead) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            user,
            Some(json!({"first_name": "Vera", "seniority": "vp", "country": "DE", "email": "vera@example.de"})),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    assert_eq!(lead["score"], 90);
    let id = lead["id"].as_str().unwrap();
    let (s, why) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{id}/score"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 200, "{why}");
    assert_eq!(why["score"], 90);
    let rules: Vec<&str> = why["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["Decision maker", "Germany", "Reachable"]);

    // Imported leads too: 2,500 rows, more than one rescoring batch.
    let mut csv = String::from("first_name,email,seniority,country\n");
    for i in 0..2500 {
        let seniority = if i % 2 == 0 { "vp" } else { "manager" };
        csv.push_str(&format!(
            "Lead {i},lead{i}@scoring.example,{seniority},DE\n"
        ));
    }
    import(
        &app,
        &api,
        user,
        "scored.csv",
        csv.into_bytes(),
        "create_only",
    )
    .await;
    let su = app.db().superuser_pool().await;
    let scores = |su: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i16, i64)>(
            "SELECT score, count(*) FROM app.leads WHERE org_id = $1 GROUP BY score ORDER BY score",
        )
        .bind(org)
        .fetch_all(&su)
        .await
        .unwrap()
    };
    assert_eq!(scores(su.clone()).await, [(40, 1250), (90, 1251)]);

    // A new model rescored every lead in the background; the API says when it is done.
    let (s, v) = api
        .call(Method::PUT, "/api/v1/scoring", manager, Some(model(20)))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    let start = std::time::Instant::now();
    loop {
        let (_, v) = api.call(Method::GET, "/api/v1/scoring", user, None).await;
        if v["rescoring"]["done"] == true {
            assert_eq!(v["rescoring"]["rescored_rows"], 2501, "{v}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scores(su.clone()).await, [(40, 1250), (60, 1251)]);
    // Sorting by score follows.
    let (s, page) = api
        .call(Method::GET, "/api/v1/leads?sort=-score&limit=1", user, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(page["items"][0]["score"], 60);
    // Audited.
    let (s, trail) = api
        .call(Method::GET, "/api/v1/org/audit?limit=200", &t[0], None)
        .await;
    assert_eq!(s, 200);
    let n = trail.to_string().matches("\"scoring.update\"").count();
    assert_eq!(n, 2, "{trail}");
}

/// A streamed import never passes the request inspection, so its cells are checked one by one for
/// what can still hurt in a stored value: script a browser would run. The cell is left out with a
/// warning naming its line, column and rule; rich-text formatting from a CRM's notes is kept.
#[tokio::test]
async fn script_in_a_cell_is_left_out_with_a_warning_and_formatting_kept() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "markup").await;
    let user = &t[2];
    let csv = "first_name,last_name,email,title,notes\n\
        Ann,Lee,ann@markup.example,\"<img src=x onerror=alert(document.cookie)>\",\"<p>Met at <b>booth 4</b></p>\"\n\
        Bo,Chen,bo@markup.example,CTO,\"Tom & Jerry's <EMEA> team; budget >= $50k\"\n\
        Cy,Diaz,cy@markup.example,VP Sales,\"<a href=\"\"javascript:alert(1)\"\">site</a>\"\n";
    let done = import(
        &app,
        &api,
        user,
        "markup.csv",
        csv.as_bytes().to_vec(),
        "create_only",
    )
    .await;
    assert_eq!(
        done["created"], 3,
        "rows are imported, only the cells are left out: {done}"
    );

    let lead = |email: &'static str| {
        let api = &api;
        async move {
            let (_, v) = api
                .call(
                    Method::GET,
                    &format!("/api/v1/leads?email={email}"),
                    user,
                    None,
                )
                .await;
            v["items"][0].clone()
        }
    };
    let ann = lead("ann@markup.example").await;
    assert_eq!(ann["title"], Value::Null, "{ann}");
    assert_eq!(
        ann["custom"]["notes"], "<p>Met at <b>booth 4</b></p>",
        "{ann}"
    );
    let bo = lead("bo@markup.example").await;
    assert_eq!(
        bo["custom"]["notes"], "Tom & Jerry's <EMEA> team; budget >= $50k",
        "{bo}"
    );
    let cy = lead("cy@markup.example").await;
    assert_eq!(cy["custom"]["notes"], Value::Null, "{cy}");
    assert_eq!(cy["title"], "VP Sales");

    let id = done["id"].as_str().unwrap();
    let report = app
        .client()
        .get(app.https_url(&format!("/api/v1/imports/{id}/issues")))
        .bearer_auth(user)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rdr = csv::Reader::from_reader(report.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{report}");
    for (line, column) in [("2", "title"), ("4", "notes")] {
        let r = rows
            .iter()
            .find(|r| &r[0] == line)
            .unwrap_or_else(|| panic!("line {line} not warned: {report}"));
        assert_eq!(&r[2], "warn", "{report}");
        assert!(r[1].contains(column), "{report}");
        assert!(r[3].contains("markup that runs script (xss."), "{report}");
    }
    app.stop().await;
}

/// The fixture as Excel's plain "CSV" saves it on a Western Windows: Windows-1252, `;` between
/// fields, CRLF line ends, no byte-order mark.
fn as_excel_csv(utf8: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(utf8)
        .unwrap()
        .trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(Vec::new());
    for r in rdr.records() {
        out.write_record(&r.unwrap()).unwrap();
    }
    let semi = String::from_utf8(out.into_inner().unwrap()).unwrap();
    let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(&semi);
    assert!(
        !lossy,
        "the fixture has characters Windows-1252 cannot hold"
    );
    bytes.into_owned()
}

/// The fixture as "Unicode text" (UTF-16 with a byte-order mark).
fn as_utf16(utf8: &[u8], big_endian: bool) -> Vec<u8> {
    let text = std::str::from_utf8(utf8)
        .unwrap()
        .trim_start_matches('\u{feff}');
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for u in text.encode_utf16() {
        out.extend(if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

/// Every lead of the caller's organization, without what differs between two imports of the
/// same file (ids, times).
async fn leads_as_data(api: &Api, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/leads?limit=100&cursor={c}"),
            None => "/api/v1/leads?limit=100".to_owned(),
        };
        let (s, v) = api.call(Method::GET, &q, token, None).await;
        assert_eq!(s, 200, "{v}");
        for mut lead in v["items"].as_array().unwrap().clone() {
            let obj = lead.as_object_mut().unwrap();
            obj.retain(|k, _| !(k == "id" || k.ends_with("_id") || k.ends_with("_at")));
            all.push(lead);
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    all.sort_by_key(|l| l["email"].to_string());
    all
}

async fn report_of(app: &TestApp, token: &str, id: &str) -> String {
    app.client()
        .get(app.https_url(&format!("/api/v1/imports/{id}/issues")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Excel's Windows-1252 `;` CSV and UTF-16 "Unicode text" of the three CRM exports give the same
/// leads and the same error report as the UTF-8 files; the detected encoding is shown, and a wrong
/// one can be corrected before the start.
#[tokio::test]
async fn exports_in_windows_1252_and_utf16_import_exactly_as_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let rules = crate::helpers::generous_rate_limits(dir.path());
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        (
            "LEADGEN_PERIMETER__RATE_LIMITS_PATH",
            rules.to_str().unwrap(),
        ),
    ])
    .await;
    let api = Api::new(&app);
    for (n, file) in [
        "hubspot-contacts.csv",
        "apollo-contacts.csv",
        "salesforce-contacts.csv",
    ]
    .into_iter()
    .enumerate()
    {
        let utf8 = fixture(file);
        let variants: [(&str, Vec<u8>, &str); 4] = [
            ("utf8", utf8.clone(), "UTF-8"),
            ("excel", as_excel_csv(&utf8), "windows-1252"),
            ("utf16le", as_utf16(&utf8, false), "UTF-16LE"),
            ("utf16be", as_utf16(&utf8, true), "UTF-16BE"),
        ];
        let mut reference: Option<(Vec<Value>, String, Value)> = None;
        for (variant, bytes, encoding) in variants {
            // Each variant in its own organization, so the leads compare whole.
            let (_, t, _) = org_with_every_role(&app, &api, &format!("enc{n}{variant}")).await;
            let user = &t[2];
            let (s, up) = upload(&app.client(), &app.https_url(""), user, file, bytes).await;
            assert_eq!(s, 201, "{file} {variant}: {up}");
            assert_eq!(up["encoding"], encoding, "{file} {variant}");
            let id = up["id"].as_str().unwrap().to_owned();
            let (s, v) = api
                .call(
                    Method::POST,
                    &format!("/api/v1/imports/{id}/start"),
                    user,
                    Some(json!({ "mode": "create_only" })),
                )
                .await;
            assert_eq!(s, 202, "{v}");
            let done = wait_done(&api, user, &id, Duration::from_secs(60)).await;
            assert_eq!(done["status"], "done", "{done}");
            assert_eq!(done["percent"], 100.0, "{file} {variant}: {done}");
            let leads = leads_as_data(&api, user).await;
            let report = report_of(&app, user, &id).await;
            let counts = json!([
                done["created"],
                done["duplicates"],
                done["rejected"],
                done["warnings"]
            ]);
            match &reference {
                None => reference = Some((leads, report, counts)),
                Some((l, r, c)) => {
                    assert_eq!(&counts, c, "{file} {variant}: {done}");
                    assert_eq!(&report, r, "{file} {variant}: the error report differs");
                    assert_eq!(leads.len(), l.len(), "{file} {variant}");
                    for (a, b) in leads.iter().zip(l) {
                        assert_eq!(a, b, "{file} {variant}: a lead differs");
                    }
                }
            }
        }
    }

    // A short Western file the detector cannot be sure of is corrected by the user; the preview
    // follows, and a label LeadGen does not read is refused with the list it does.
    let (_, t, _) = org_with_every_role(&app, &api, "encfix").await;
    let user = &t[2];
    let (latin, _, _) = encoding_rs::WINDOWS_1252
        .encode("first_name,last_name,email\nRenée,Müller,renee@fix.example\n");
    let (s, up) = upload(
        &app.client(),
        &app.https_url(""),
        user,
        "short.csv",
        latin.to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{up}");
    let id = up["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/imports/{id}/encoding"),
            user,
            Some(json!({ "encoding": "ISO-8859-15" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["encoding"], "ISO-8859-15");
    assert_eq!(v["preview"][0]["record"]["first_name"], "Renée", "{v}");
    assert_eq!(v["preview"][0]["record"]["last_name"], "Müller", "{v}");
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/imports/{id}/encoding"),
            user,
            Some(json!({ "encoding": "ebcdic" })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("windows-1252"),
        "{v}"
    );
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/imports/{id}"), user, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["encoding"], "ISO-8859-15", "{v}");
    app.stop().await;
}
