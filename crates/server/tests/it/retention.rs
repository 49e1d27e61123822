//! Retention: leads without a change, note or activity for longer than their organization's
//! period are anonymised by `leadgen retention run` (exactly those, under an injected time),
//! statistics stay as they were, the audit trail still verifies, and a later run purges them.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, run_leadgen, server_env};
use crate::orgs::{Api, org_with_every_role};

type Aggregate = (String, Option<String>, Option<String>, i64, i64);

/// A lead's personal fields, its tags and custom values, and its status.
type Anonymised = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<String>,
    Value,
    Option<String>,
);

async fn aggregates(su: &sqlx::PgPool, org: Uuid) -> Vec<Aggregate> {
    sqlx::query_as(
        "SELECT status, country, source, count(*), sum(score)::bigint FROM app.leads
         WHERE org_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(org)
    .fetch_all(su)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_retention_job_anonymises_exactly_the_expired_leads_and_purges_them_later() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "retention").await;
    let su = app.db().superuser_pool().await;

    // The period is the organization's, never longer than 24 months.
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/org/settings",
            &t[0],
            Some(json!({ "retention_months": 36 })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("retention_months"), "{v}");
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/org/settings",
            &t[0],
            Some(json!({ "retention_months": 24 })),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let mut ids = Vec::new();
    for (i, (status, country)) in [
        ("qualified", "DE"),
        ("new", "DE"),
        ("qualified", "US"),
        ("lost", "FR"),
        ("new", "US"),
        ("customer", "DE"),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, lead) = api
            .call(
                Method::POST,
                "/api/v1/leads",
                &t[2],
                Some(json!({
                    "email": format!("person{i}@retention.example"), "first_name": format!("Person{i}"),
                    "last_name": "Doe", "title": "Buyer", "city": "Berlin", "status": status,
                    "country": country, "company_name": "Acme", "tags": ["fair"],
                    "custom": { "hobby": "sailing" },
                })),
            )
            .await;
        assert_eq!(s, 201, "{lead}");
        ids.push(Uuid::parse_str(lead["id"].as_str().unwrap()).unwrap());
    }
    let org: Uuid = sqlx::query_scalar("SELECT org_id FROM app.leads WHERE id = $1")
        .bind(ids[0])
        .fetch_one(&su)
        .await
        .unwrap();
    let note = |id: Uuid, body: &'static str| {
        let (api, t) = (&api, t[2].clone());
        async move {
            let (s, v) = api
                .call(
                    Method::POST,
                    &format!("/api/v1/leads/{id}/notes"),
                    &t,
                    Some(json!({ "body": body })),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
    };
    note(ids[1], "Met at the 2024 fair").await;
    note(ids[2], "Called back last week").await;
    let a_month_ago = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{}/activities", ids[3]),
            &t[2],
            Some(json!({
                "kind": "call", "summary": "Asked for a quote",
                "occurred_at": a_month_ago.format(&time::format_description::well_known::Rfc3339).unwrap(),
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // Leads 0 to 3 last changed 25 months ago (lead 1's note too), lead 4 22 months ago, lead 5
    // now. Lead 2 has a recent note and lead 3 a recent call: only 0 and 1 have expired.
    for (i, months) in [(0, 25), (1, 25), (2, 25), (3, 25), (4, 22)] {
        sqlx::query(
            "UPDATE app.leads SET updated_at = now() - make_interval(months => $2) WHERE id = $1",
        )
        .bind(ids[i])
        .bind(months)
        .execute(&su)
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE app.lead_notes SET created_at = now() - interval '25 months' WHERE lead_id = $1",
    )
    .bind(ids[1])
    .execute(&su)
    .await
    .unwrap();
    // An import, whose uploaded file stays for a while after it ended.
    let csv = b"email,first_name\nimported@retention.example,Imp\n".to_vec();
    let job = crate::imports::import(&app, &api, &t[2], "people.csv", csv, "create_only").await;
    let upload = app
        .data_dir
        .path()
        .join(format!("imports/{}.csv", job["id"].as_str().unwrap()));
    assert!(upload.exists(), "{}", upload.display());
    let imported: Uuid = sqlx::query_scalar("SELECT id FROM app.leads WHERE first_name = 'Imp'")
        .fetch_one(&su)
        .await
        .unwrap();
    let before = aggregates(&su, org).await;

    let mut env = server_env(Some(app.db()), app.data_dir.path());
    // One lead per transaction: the run goes through several batches.
    env.push(("LEADGEN_RETENTION__BATCH_SIZE".into(), "1".into()));
    let ours = |out: &str| -> Value {
        let report: Value = serde_json::from_str(out.trim()).unwrap();
        report["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["org_id"] == json!(org))
            .cloned()
            .unwrap_or_else(|| panic!("{report}"))
    };
    let first_name = |id: Uuid| {
        let su = su.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT first_name FROM app.leads WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&su)
            .await
            .unwrap()
        }
    };

    // The dry run names exactly the expired leads and changes nothing.
    let (code, out, err) = run_leadgen(&["retention", "run", "--dry-run", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let mut expired = vec![json!(ids[0]), json!(ids[1])];
    expired.sort_by_key(|v| v.as_str().unwrap().to_string());
    let dry = ours(&out);
    assert_eq!(dry["anonymised"], 2, "{dry}");
    assert_eq!(dry["lead_ids"], json!(expired), "{dry}");
    assert_eq!(dry["months"], 24);
    assert_eq!(first_name(ids[0]).await.as_deref(), Some("Person0"));

    // The run anonymises those two and nothing else.
    let (code, out, err) = run_leadgen(&["retention", "run", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ours(&out)["anonymised"], 2, "{out}");
    assert!(upload.exists(), "a recent import keeps its file");
    for i in [0, 1] {
        let row: Anonymised = sqlx::query_as(
            "SELECT first_name, last_name, city, email_ct, email_bidx, tags, custom, status
                 FROM app.leads WHERE id = $1 AND anonymized_at IS NOT NULL",
        )
        .bind(ids[i])
        .fetch_one(&su)
        .await
        .unwrap();
        assert_eq!(
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6),
            (None, None, None, None, None, vec![], json!({})),
            "lead {i}"
        );
        assert!(row.7.is_some(), "the status stays for statistics");
    }
    let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM app.lead_notes WHERE lead_id = $1")
        .bind(ids[1])
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(notes, 0, "the expired lead's note is gone");
    for (i, id) in ids.iter().enumerate().skip(2) {
        assert_eq!(
            first_name(*id).await,
            Some(format!("Person{i}")),
            "lead {i} kept"
        );
    }
    assert_eq!(aggregates(&su, org).await, before, "statistics unchanged");
    // The lead is still there for the organization's numbers, without the person.
    let (s, lead) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{}", ids[0]),
            &t[2],
            None,
        )
        .await;
    assert_eq!(s, 200, "{lead}");
    assert_eq!(lead["first_name"], Value::Null);
    assert_eq!(lead["email"], Value::Null);

    // Audited (one entry per batch), and the trail still verifies.
    let audited: Vec<(Option<Uuid>, Value)> = sqlx::query_as(
        "SELECT actor_id, after FROM app.audit_log WHERE org_id = $1 AND action = 'retention.anonymised' ORDER BY seq",
    )
    .bind(org)
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(
        audited
            .iter()
            .all(|(actor, after)| actor.is_none() && after["leads"] == 1)
    );
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");

    // Run again: nothing left to do.
    let (code, out, err) = run_leadgen(&["retention", "run", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ours(&out)["anonymised"], 0, "{out}");
    assert_eq!(ours(&out)["purged"], 0, "{out}");

    // Past the grace period (30 days), the anonymised leads are purged; the rest stay.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(31))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, out, err) = run_leadgen(&["retention", "run", "--json", "--as-of", &later], &env);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["import_uploads_removed"], 1, "{report}");
    assert!(!upload.exists(), "the ended import's file is removed");
    let purged = ours(&out);
    assert_eq!(
        (purged["anonymised"].clone(), purged["purged"].clone()),
        (json!(0), json!(2)),
        "{purged}"
    );
    let left: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM app.leads WHERE org_id = $1 ORDER BY id")
            .bind(org)
            .fetch_all(&su)
            .await
            .unwrap();
    let mut kept = ids[2..].to_vec();
    kept.push(imported);
    kept.sort();
    assert_eq!(left, kept);
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");

    // A bad time is named.
    let (code, _, err) = run_leadgen(&["retention", "run", "--as-of", "yesterday"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RFC 3339"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn audit_rows_and_sign_ins_older_than_the_audit_period_go_and_the_chain_still_verifies() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = Api::new(&app);
    let (org, t, _) = org_with_every_role(&app, &api, "auditage").await;
    let su = app.db().superuser_pool().await;
    for name in ["Ada", "Grace", "Edsger"] {
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/leads",
                &t[0],
                Some(json!({ "first_name": name })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let count = || async {
        sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT count(*), max(seq) FROM app.audit_log WHERE org_id = $1",
        )
        .bind(org)
        .fetch_one(&su)
        .await
        .unwrap()
    };
    let (rows, last) = count().await;
    assert!(rows > 5, "{rows}");
    let env = server_env(Some(app.db()), app.data_dir.path());
    let ours = |out: &str| -> Value {
        let report: Value = serde_json::from_str(out.trim()).unwrap();
        let org_report = report["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["org_id"] == org.to_string())
            .cloned()
            .unwrap();
        json!({ "run": report, "org": org_report })
    };
    // Twenty-five months on, everything written today is older than the 24 months kept.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(25 * 31))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, out, err) = run_leadgen(
        &["retention", "run", "--json", "--dry-run", "--as-of", &later],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let dry = ours(&out);
    assert_eq!(dry["org"]["audit_rows_purged"], rows, "{dry}");
    assert!(
        dry["run"]["sessions_purged"].as_u64().unwrap() >= 4,
        "{dry}"
    );
    assert_eq!(count().await, (rows, last), "a dry run changes nothing");

    let (code, out, err) = run_leadgen(&["retention", "run", "--json", "--as-of", &later], &env);
    assert_eq!(code, 0, "{out}{err}");
    let done = ours(&out);
    assert_eq!(done["org"]["audit_rows_purged"], rows, "{done}");
    // What is left is this run's own record: the leads it anonymised and the removal, which
    // names the anchor the chain now starts from.
    let left: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT seq, action, after FROM app.audit_log WHERE org_id = $1 ORDER BY seq",
    )
    .bind(org)
    .fetch_all(&su)
    .await
    .unwrap();
    assert!(left.iter().all(|(seq, ..)| Some(*seq) > last), "{left:?}");
    let purged = left
        .iter()
        .find(|(_, action, _)| action == "audit.purged")
        .unwrap();
    assert_eq!(purged.2["up_to_seq"], json!(last), "{left:?}");
    let anchor: (i64, i64) =
        sqlx::query_as("SELECT seq, purged_rows FROM app.audit_anchors WHERE org_id = $1")
            .bind(org)
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(anchor, (last.unwrap(), rows));
    let (sessions,): (i64,) = sqlx::query_as("SELECT count(*) FROM app.sessions")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "every sign-in ended before the audit period");
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");

    // An anchor the chain does not declare is refused: rows cannot be dropped by moving it.
    sqlx::query("UPDATE app.audit_anchors SET seq = seq + 1 WHERE org_id = $1")
        .bind(org)
        .execute(&su)
        .await
        .unwrap();
    let (code, out, _) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("no row of it declares"), "{out}");
    app.stop().await;
}
