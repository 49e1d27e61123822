//! Leads through the front door: ACLs enforced on every path and rolled back exactly, encrypted
//! contact fields, blind-index lookups, key rotation, search syntax and keyset pages, exports.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, run_leadgen, server_env};
use crate::orgs::{Api, org_with_every_role, spawn};

const MASTER_KEY: &str = "8f3c1e0a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e";

async fn create(api: &Api, token: &str, lead: Value) -> Uuid {
    let (s, v) = api
        .call(Method::POST, "/api/v1/leads", token, Some(lead))
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().parse().unwrap()
}

async fn ids(api: &Api, token: &str, query: &str) -> Vec<String> {
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/leads?{query}"), token, None)
        .await;
    assert_eq!(s, 200, "{query}: {v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

async fn count(api: &Api, token: &str, query: &str) -> i64 {
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/count?{query}"),
            token,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["count"].as_i64().unwrap()
}

/// (status, body text) of an export.
async fn export(app: &TestApp, token: &str, query: &str) -> (u16, String) {
    let res = app
        .client()
        .get(app.https_url(&format!("/api/v1/leads/export?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A transaction straight on the database as the application role, with the session settings the
/// server would set for this member: what a connection that skips the server would see.
async fn db_session(
    app: &TestApp,
    api: &Api,
    token: &str,
    user_id: Uuid,
    role: &str,
    aal: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let pool = sqlx::PgPool::connect(&app.db().app_url()).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let (_, org) = api.call(Method::GET, "/api/v1/org", token, None).await;
    sqlx::query(
        "SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true),
                set_config('app.role', $3, true), set_config('app.aal', $4, true)",
    )
    .bind(org["id"].as_str().unwrap())
    .bind(user_id.to_string())
    .bind(role)
    .bind(aal)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

async fn audit_actions(api: &Api, admin: &str) -> Vec<Value> {
    let (s, v) = api
        .call(Method::GET, "/api/v1/org/audit?limit=200", admin, None)
        .await;
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .cloned()
        .or_else(|| v["items"].as_array().cloned())
        .unwrap()
}

#[tokio::test]
async fn a_lead_outside_your_groups_is_invisible_on_every_path_and_rollback_restores_its_acl() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (acl_org, t, ids_) = org_with_every_role(&app, &api, "acl").await;
    let (admin, manager, user, api_role) = (&t[0], &t[1], &t[2], &t[3]);

    // A group with the User in it.
    let (s, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            admin,
            Some(json!({ "name": "Enterprise desk" })),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let group = g["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/v1/org/groups/{group}/members/{}", ids_[2]),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    // Only admins shape groups.
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            manager,
            Some(json!({ "name": "Shadow" })),
        )
        .await;
    assert_eq!(s, 403);

    let secret = create(
        &api,
        user,
        json!({ "first_name": "Ada", "last_name": "Secretson", "email": "ada@hidden.example",
                "company_name": "Hidden Corp", "title": "CFO" }),
    )
    .await;
    let open = create(
        &api,
        user,
        json!({ "first_name": "Bob", "last_name": "Open", "company_name": "Open Corp" }),
    )
    .await;

    // Non-admins cannot set an ACL, through the API or straight in the database.
    let acl =
        json!({ "read_groups": [group], "write_groups": [group], "sensitivity": "restricted" });
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{secret}/acl"),
            manager,
            Some(acl.clone()),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    {
        let mut tx = db_session(&app, &api, manager, ids_[1], "manager", "aal2").await;
        let err = sqlx::query("UPDATE app.leads SET sensitivity = 'public' WHERE id = $1")
            .bind(secret)
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ACL changes need an admin"),
            "{err}"
        );
    }
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{secret}/acl"),
            admin,
            Some(acl.clone()),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 1);

    // The Manager is outside the group: the lead does not exist for them on any path.
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}"),
            manager,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{secret}"),
            manager,
            Some(json!({ "title": "x" })),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/leads/{secret}"),
            manager,
            None,
        )
        .await;
    assert_eq!(s, 404);
    let listed = ids(&api, manager, "").await;
    assert!(listed.contains(&open.to_string()));
    assert!(!listed.contains(&secret.to_string()));
    assert!(ids(&api, manager, "q=Secretson").await.is_empty());
    assert!(ids(&api, manager, "q=hidden").await.is_empty());
    assert!(
        ids(&api, manager, "email=ada@hidden.example")
            .await
            .is_empty()
    );
    assert!(ids(&api, manager, "title=CFO").await.is_empty());
    assert_eq!(count(&api, manager, "").await, 1);
    assert_eq!(count(&api, manager, "q=Secretson").await, 0);
    let (s, csv) = export(&app, manager, "").await;
    assert_eq!(s, 200);
    assert!(csv.contains(&open.to_string()), "{csv}");
    assert!(!csv.contains(&secret.to_string()), "{csv}");
    assert!(!csv.contains("Secretson"));
    let (_, json_export) = export(&app, manager, "format=json").await;
    assert!(!json_export.contains("Secretson"));
    // An API-role principal never reads a restricted lead.
    assert!(!ids(&api, api_role, "").await.contains(&secret.to_string()));

    // The User is in the group: every path shows it, its contact details only with a reason
    // (recorded: `it::privacy::a_restricted_leads_contact_details_need_a_reason_and_every_read_is_on_record`).
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{secret}"), user, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["email"].clone(), v["contact_details_hidden"].clone()),
        (Value::Null, json!(true))
    );
    let res = app
        .client()
        .get(app.https_url(&format!("/api/v1/leads/{secret}")))
        .bearer_auth(user)
        .header(
            "x-leadgen-justification",
            "Checking the CFO's contact before the audit",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["email"], "ada@hidden.example");
    assert_eq!(ids(&api, user, "q=Secretson").await, [secret.to_string()]);
    assert_eq!(
        ids(&api, user, "email=ADA@Hidden.example").await,
        [secret.to_string()]
    );
    assert_eq!(count(&api, user, "").await, 2);
    // The admin sees everything, and exports it (a restricted lead without its contact details).
    let (_, csv) = export(&app, admin, "").await;
    assert!(
        csv.contains(&secret.to_string()) && csv.contains("Hidden Corp"),
        "{csv}"
    );
    assert!(!csv.contains("Secretson"), "{csv}");

    // Widening access takes two admins: a second one joins.
    let (t2, _) = api.sign_up("admin2@acl.test").await;
    crate::orgs::invite_and_accept(&app, &api, admin, "admin2@acl.test", "admin", &t2).await;
    let t2 = api.raise_to_aal2(&t2).await;
    let admin2 = &api.switch(&t2, acl_org).await;

    // Readable but not writable: 403 with its own code. (Internal is wider than confidential:
    // the change waits for the second admin.)
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{open}/acl"),
            admin,
            Some(json!({ "read_groups": [], "write_groups": [group], "sensitivity": "internal" })),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "awaiting_approval");
    let approve = |lead: String, token: String| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                &format!("/api/v1/leads/{lead}/acl/pending/approve"),
                &token,
                None,
            )
            .await
        }
    };
    let (s, v) = approve(open.to_string(), admin.clone()).await;
    assert_eq!(s, 409, "the admin who asked cannot approve: {v}");
    let (s, v) = approve(open.to_string(), admin2.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sensitivity"], "internal");
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{open}"),
            manager,
            Some(json!({ "title": "Changed" })),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "acl_denied");
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{open}"),
            user,
            Some(json!({ "title": "Changed" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["title"], "Changed");

    // Open it up (revision 2, once a second admin approves; the pending change is visible,
    // and nothing changes before), then roll back to revision 1: exactly the old ACL again.
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{secret}/acl"),
            admin,
            Some(json!({ "read_groups": [], "write_groups": [], "sensitivity": "internal" })),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(count(&api, manager, "").await, 1, "not before the approval");
    let (_, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}/acl"),
            admin2,
            None,
        )
        .await;
    assert_eq!(v["pending"]["sensitivity"], "internal", "{v}");
    assert_eq!(v["pending"]["requested_by_email"], "admin@acl.test", "{v}");
    let (s, v) = approve(secret.to_string(), admin2.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["revision"], 2);
    assert_eq!(count(&api, manager, "").await, 2);
    // A rejected request changes nothing.
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{secret}/acl"),
            admin,
            Some(json!({ "read_groups": [], "write_groups": [], "sensitivity": "public" })),
        )
        .await;
    assert_eq!(s, 202);
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{secret}/acl/pending/reject"),
            admin2,
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}/acl"),
            admin,
            None,
        )
        .await;
    assert_eq!(v["pending"], Value::Null, "{v}");
    assert_eq!(v["current"]["sensitivity"], "internal", "{v}");
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{secret}/acl/rollback"),
            admin,
            Some(json!({ "revision": 1 })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["read_groups"], json!([group]));
    assert_eq!(v["write_groups"], json!([group]));
    assert_eq!(v["sensitivity"], "restricted");
    assert_eq!(v["revision"], 3);
    assert_eq!(count(&api, manager, "").await, 1);
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}/acl"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let revs = v["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 4, "{v}");
    assert_eq!(revs[3]["rollback_of"], 1);
    assert_eq!(revs[3]["read_groups"], revs[1]["read_groups"]);
    assert_eq!(revs[3]["sensitivity"], revs[1]["sensitivity"]);
    // A rollback to a revision that does not exist changes nothing.
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/leads/{secret}/acl/rollback"),
            admin,
            Some(json!({ "revision": 9 })),
        )
        .await;
    assert_eq!(s, 400);
    // ACL history is admin business.
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{secret}/acl"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 403);
    // A group in use cannot be deleted.
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/org/groups/{group}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 409);

    // Every change and the rollback are in the audit trail, with before and after.
    let trail = audit_actions(&api, admin).await;
    let rollback = trail
        .iter()
        .find(|e| e["action"] == "lead.acl.rollback")
        .expect("rollback audited");
    assert_eq!(rollback["before"]["sensitivity"], "internal");
    assert_eq!(rollback["after"]["acl"]["sensitivity"], "restricted");
    assert_eq!(rollback["after"]["rollback_to"], 1);
    // A lead's creation names the fields set, never their values (no personal data in the trail).
    let created = trail
        .iter()
        .find(|e| e["action"] == "lead.create" && e["target"] == format!("lead:{secret}"))
        .expect("creation audited");
    let fields = created["after"]["fields"].as_array().unwrap();
    assert!(fields.contains(&json!("email")), "{created}");
    assert!(
        !created.to_string().contains("ada@hidden.example"),
        "{created}"
    );
    assert!(
        trail
            .iter()
            .filter(|e| e["action"] == "lead.acl.change")
            .count()
            >= 3
    );
    app.stop().await;
}

#[tokio::test]
async fn another_organizations_leads_are_not_found_and_never_listed() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, ta, _) = org_with_every_role(&app, &api, "ta").await;
    let (_, tb, _) = org_with_every_role(&app, &api, "tb").await;
    let theirs = create(
        &api,
        &tb[2],
        json!({ "first_name": "Bea", "last_name": "Otherorg", "email": "bea@b.example" }),
    )
    .await;
    let mine = create(
        &api,
        &ta[2],
        json!({ "first_name": "Al", "last_name": "Mine" }),
    )
    .await;
    for token in &ta {
        for (m, path, body) in [
            (Method::GET, format!("/api/v1/leads/{theirs}"), None),
            (
                Method::PATCH,
                format!("/api/v1/leads/{theirs}"),
                Some(json!({ "title": "x" })),
            ),
            (Method::DELETE, format!("/api/v1/leads/{theirs}"), None),
        ] {
            let (s, _) = api.call(m, &path, token, body).await;
            assert_eq!(s, 404, "{path}");
        }
    }
    for (m, path, body) in [
        (Method::GET, format!("/api/v1/leads/{theirs}/acl"), None),
        (
            Method::PUT,
            format!("/api/v1/leads/{theirs}/acl"),
            Some(json!({ "read_groups": [], "write_groups": [], "sensitivity": "public" })),
        ),
        (
            Method::POST,
            format!("/api/v1/leads/{theirs}/acl/rollback"),
            Some(json!({ "revision": 0 })),
        ),
    ] {
        let (s, _) = api.call(m, &path, &ta[0], body).await;
        assert_eq!(s, 404, "{path}");
    }
    // Groups too: B's group ids are not found for A's admin.
    let (s, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            &tb[0],
            Some(json!({ "name": "B team" })),
        )
        .await;
    assert_eq!(s, 201);
    let bg = g["id"].as_str().unwrap();
    let (_, me) = api
        .call(Method::GET, "/api/v1/org/members", &ta[0], None)
        .await;
    let a_user = me[0]["user_id"].as_str().unwrap();
    for (m, path) in [
        (Method::DELETE, format!("/api/v1/org/groups/{bg}")),
        (
            Method::PUT,
            format!("/api/v1/org/groups/{bg}/members/{a_user}"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/org/groups/{bg}/members/{a_user}"),
        ),
    ] {
        let (s, _) = api.call(m, &path, &ta[0], None).await;
        assert_eq!(s, 404, "{path}");
    }
    let (_, groups) = api
        .call(Method::GET, "/api/v1/org/groups", &ta[0], None)
        .await;
    assert_eq!(groups, json!([]));
    // Nor can an ACL in A name B's group.
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{mine}/acl"),
            &ta[0],
            Some(json!({ "read_groups": [bg], "write_groups": [], "sensitivity": "internal" })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(ids(&api, &ta[0], "").await, [mine.to_string()]);
    assert!(ids(&api, &ta[0], "q=Otherorg").await.is_empty());
    assert!(ids(&api, &ta[0], "email=bea@b.example").await.is_empty());
    assert_eq!(count(&api, &ta[0], "").await, 1);
    let (_, csv) = export(&app, &ta[0], "").await;
    assert!(!csv.contains("Otherorg"));
    // The same address is a new lead in another organization, not a duplicate.
    create(&api, &ta[2], json!({ "email": "bea@b.example" })).await;
    app.stop().await;
}

#[tokio::test]
async fn contact_fields_are_encrypted_bound_to_their_row_looked_up_blind_and_rotated() {
    let env_key = [("LEADGEN_SECRETS__MASTER_KEY", MASTER_KEY)];
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        env_key[0],
    ])
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "enc").await;
    let a = create(
        &api,
        &t[2],
        json!({ "first_name": "Ann", "email": "Ann.Lee@Example.COM", "phone": "+1 (415) 555-0100" }),
    )
    .await;
    let b = create(
        &api,
        &t[2],
        json!({ "first_name": "Ben", "email": "ben@example.com", "phone": "+44 20 7946 0958" }),
    )
    .await;

    // Stored form: no plaintext email or phone anywhere in the rows, read with every privilege.
    let su = app.db().superuser_pool().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT l::text FROM app.leads l")
        .fetch_all(&su)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        for plain in ["ann.lee", "example.com", "ben@", "4155550100", "2079460958"] {
            assert!(!r.to_lowercase().contains(plain), "{plain} in {r}");
        }
    }
    // Case and spaces do not make a second lead; the blind index finds the first.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            &t[1],
            Some(json!({ "email": "  ANN.LEE@example.com " })),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        ids(&api, &t[1], "email=ann.lee@EXAMPLE.com").await,
        [a.to_string()]
    );
    assert!(
        ids(&api, &t[1], "email=nobody@example.com")
            .await
            .is_empty()
    );
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{a}"), &t[1], None)
        .await;
    assert_eq!(v["email"], "ann.lee@example.com");
    assert_eq!(v["phone"], "+14155550100");

    // Each organization's fields are under a key of its own, kept outside the database.
    let su_org_keys = |org_only: bool| {
        let su = su.clone();
        async move {
            let ids: Vec<i32> = sqlx::query_scalar(if org_only {
                "SELECT max(k.id) FROM app.org_keys k JOIN app.leads l ON l.org_id = k.org_id
                 WHERE k.retired_at IS NULL GROUP BY k.org_id"
            } else {
                "SELECT id FROM app.org_keys ORDER BY id"
            })
            .fetch_all(&su)
            .await
            .unwrap();
            ids
        }
    };
    let key_of = |ct: &[u8]| u32::from_be_bytes(ct[1..5].try_into().unwrap());
    let stored_keys = || {
        let su = su.clone();
        async move {
            let cts: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT c FROM app.leads, LATERAL (VALUES (email_ct), (phone_ct)) v(c)",
            )
            .fetch_all(&su)
            .await
            .unwrap();
            cts.iter().map(|c| key_of(c)).collect::<Vec<u32>>()
        }
    };
    let first_org_key = su_org_keys(true).await;
    assert_eq!(first_org_key.len(), 1);
    let first_org_key = u32::try_from(first_org_key[0]).unwrap();
    assert!(first_org_key >= 2_000_000);
    assert_eq!(stored_keys().await, [first_org_key; 4]);
    assert!(
        app.db()
            .key_dir()
            .join(format!("{first_org_key}.key"))
            .exists()
    );

    // An installation from before organizations had keys of their own: Ben's email encrypted
    // under the installation-wide key. It still reads.
    let (wrapped, org): (Vec<u8>, Uuid) = sqlx::query_as(
        "SELECT wrapped, (SELECT org_id FROM app.leads WHERE id = $1) FROM app.data_keys WHERE id = 1",
    )
    .bind(b)
    .fetch_one(&su)
    .await
    .unwrap();
    {
        use leadgen_crypto::field::{DataKey, KeyRing, MasterKey, Place};
        let master = MasterKey::parse(MASTER_KEY).unwrap();
        let shared = KeyRing::new(
            DataKey::unwrap(&master, 1, "field", &wrapped).unwrap(),
            vec![],
        );
        let place = Place {
            table: "leads",
            column: "email",
            org: *org.as_bytes(),
            row: *b.as_bytes(),
        };
        sqlx::query("UPDATE app.leads SET email_ct = $2 WHERE id = $1")
            .bind(b)
            .bind(shared.encrypt(b"ben@example.com", &place))
            .execute(&su)
            .await
            .unwrap();
    }
    let (_, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{b}"), &t[1], None)
        .await;
    assert_eq!(v["email"], "ben@example.com");

    // Rotation first finishes that migration: the old value moves to the organization's key.
    let env = {
        let mut e = server_env(Some(app.db()), app.data_dir.path());
        e.push(("LEADGEN_SECRETS__MASTER_KEY".into(), MASTER_KEY.into()));
        e
    };
    let rotate = || {
        let (code, out, err) = run_leadgen(&["keys", "rotate-data", "--json"], &env);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<Value>(out.trim()).unwrap()
    };
    let report = rotate();
    assert_eq!(report["new_key"], false, "{report}");
    assert_eq!(report["key_id"], 1, "{report}");
    assert_eq!(report["reencrypted"], 1, "{report}");
    assert_eq!(stored_keys().await, [first_org_key; 4]);

    // Then a rotation proper: every organization gets a new key and every row moves to it.
    let report = rotate();
    assert_eq!(report["new_key"], true, "{report}");
    assert_eq!(report["key_id"], 2, "{report}");
    assert_eq!(report["reencrypted"], 2, "{report}");
    let new_key = u32::try_from(su_org_keys(true).await[0]).unwrap();
    assert!(new_key > first_org_key);
    assert_eq!(stored_keys().await, [new_key; 4]);
    // Running it again has nothing left to do under the same key (a resumed run would finish).
    let again = rotate();
    assert_eq!(
        again["new_key"], true,
        "no row was behind, so a fresh rotation starts"
    );
    let newest = again["key_id"].as_u64().unwrap();
    let (code, _, err) = run_leadgen(&["keys", "retire-data", "--key", &newest.to_string()], &env);
    assert_ne!(code, 0, "the active key cannot be retired");
    assert!(err.contains("active"), "{err}");
    let org_newest = su_org_keys(true).await[0].to_string();
    let (code, _, err) = run_leadgen(&["keys", "retire-data", "--key", &org_newest], &env);
    assert_ne!(code, 0, "an organization's active key cannot be retired");
    assert!(err.contains("active"), "{err}");
    // An organization's old key, unused now, is retired and its file removed.
    let (code, out, err) = run_leadgen(
        &["keys", "retire-data", "--key", &first_org_key.to_string()],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !app.db()
            .key_dir()
            .join(format!("{first_org_key}.key"))
            .exists()
    );
    let (code, out, err) = run_leadgen(&["keys", "retire-data", "--key", "1"], &env);
    assert_eq!(code, 0, "{out}{err}");
    // The running server decrypts under the new keys; a fresh one never loads the retired key.
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{b}"), &t[1], None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["email"], "ben@example.com");
    let retired: Option<bool> =
        sqlx::query_scalar("SELECT retired_at IS NOT NULL FROM app.data_keys WHERE id = 1")
            .fetch_optional(&su)
            .await
            .unwrap();
    assert_eq!(retired, Some(true));

    // A ciphertext copied onto another row does not open there.
    sqlx::query(
        "UPDATE app.leads SET email_ct = (SELECT email_ct FROM app.leads WHERE id = $1) WHERE id = $2",
    )
    .bind(a)
    .bind(b)
    .execute(&su)
    .await
    .unwrap();
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/leads/{b}"), &t[1], None)
        .await;
    assert_eq!(s, 500);
    assert!(!v.to_string().contains("ann.lee"), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn search_filters_syntax_and_keyset_pages_hold_under_concurrent_inserts() {
    // This test sends a few hundred requests as one user: the shipped rules with a larger API
    // allowance (the limiter has its own tests).
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
    let (_, t, ids_) = org_with_every_role(&app, &api, "search").await;
    let user = &t[2];
    let people = [
        (
            "Zoë",
            "O'Brien",
            "VP Sales",
            "vp",
            "Acme Corp",
            "51-200",
            "US",
            "CA",
            "qualified",
            80,
            true,
            vec!["hot"],
        ),
        (
            "Ana",
            "Silva",
            "Head of Sales",
            "head",
            "Globex",
            "11-50",
            "BR",
            "SP",
            "new",
            40,
            true,
            vec!["cold"],
        ),
        (
            "Bo",
            "Chen",
            "Chief Technology Officer",
            "c_level",
            "Acme Corp",
            "1001-5000",
            "US",
            "NY",
            "new",
            95,
            false,
            vec!["hot", "tech"],
        ),
        (
            "Cy",
            "Dubois",
            "Sales Intern",
            "intern",
            "Initech",
            "1-10",
            "FR",
            "IDF",
            "lost",
            5,
            true,
            vec![],
        ),
        (
            "Di",
            "Evans",
            "VP Marketing",
            "vp",
            "Big Co",
            "201-500",
            "GB",
            "LND",
            "contacted",
            60,
            false,
            vec!["tech"],
        ),
    ];
    let mut lead = std::collections::HashMap::new();
    for (i, (f, l, title, sen, co, emp, country, region, status, score, email, tags)) in
        people.iter().enumerate()
    {
        let mut body = json!({
            "first_name": f, "last_name": l, "title": title, "seniority": sen, "company_name": co,
            "employee_range": emp, "country": country, "region": region, "status": status,
            "tags": tags, "owner_id": ids_[i % 2 + 1],
        });
        if *email {
            body["email"] = json!(format!(
                "{}@{}.example",
                f.to_lowercase().replace('ë', "e"),
                i
            ));
        }
        let id = create(&api, user, body).await;
        // Scores are the scoring model's to set; here they go in directly.
        sqlx::query("UPDATE app.leads SET score = $1 WHERE id = $2")
            .bind(*score as i16)
            .bind(id)
            .execute(&app.db().superuser_pool().await)
            .await
            .unwrap();
        lead.insert(*l, id.to_string());
    }
    let set = |names: &[&str]| {
        let mut v: Vec<String> = names.iter().map(|n| lead[n].clone()).collect();
        v.sort();
        v
    };
    let found = |q: String| {
        let api = &api;
        async move {
            let mut v = ids(api, user, &q).await;
            v.sort();
            v
        }
    };
    // Full-text: words, prefixes, quoted phrases, OR, exclusions, apostrophes; answered the
    // same without statistics (the planner's plan), with them (common words: the newest leads
    // first), and for a word written after them (rare: the full-text index first, then sorted).
    let su = app.db().superuser_pool().await;
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("ANALYZE app.leads").execute(&su).await.unwrap();
            // As the server reads them: as the application role, under RLS.
            let app_pool = sqlx::PgPool::connect(&app.db().app_url()).await.unwrap();
            leadgen::leads::search::refresh_lexicon(&app_pool)
                .await
                .unwrap();
            assert!(
                leadgen::leads::search::common_words() > 0,
                "the statistics reach the server"
            );
        }
        assert_eq!(found("q=acme".into()).await, set(&["O'Brien", "Chen"]));
        assert_eq!(found("q=acme%20-chen".into()).await, set(&["O'Brien"]));
        assert_eq!(found("q=glob".into()).await, set(&["Silva"]), "prefix");
        assert_eq!(count(&api, user, "q=acme").await, 2);
    }
    let rare = create(
        &api,
        user,
        json!({ "first_name": "Zed", "title": "Zanzibar liaison", "company_name": "Acme" }),
    )
    .await
    .to_string();
    assert_eq!(
        ids(&api, user, "q=zanzibar").await,
        std::slice::from_ref(&rare)
    );
    assert_eq!(
        ids(&api, user, "q=acme%20zanz").await,
        std::slice::from_ref(&rare)
    );
    assert_eq!(count(&api, user, "q=zanzibar").await, 1);
    let (s, _) = api
        .call(Method::DELETE, &format!("/api/v1/leads/{rare}"), user, None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(found("q=acme".into()).await, set(&["O'Brien", "Chen"]));
    assert_eq!(found("q=acme%20-chen".into()).await, set(&["O'Brien"]));
    assert_eq!(
        found("q=%22head%20of%20sales%22".into()).await,
        set(&["Silva"])
    );
    assert_eq!(found("q=%22sales%20head%22".into()).await, set(&[]));
    assert_eq!(
        found("q=intern%20OR%20marketing".into()).await,
        set(&["Dubois", "Evans"])
    );
    assert_eq!(found("q=O'Brien".into()).await, set(&["O'Brien"]));
    assert_eq!(found("q=glob".into()).await, set(&["Silva"]), "prefix");
    assert_eq!(found("q=vp%20sales".into()).await, set(&["O'Brien"]));
    // Filters.
    assert_eq!(
        found("seniority=vp".into()).await,
        set(&["O'Brien", "Evans"])
    );
    assert_eq!(
        found("seniority=vp,c_level".into()).await,
        set(&["O'Brien", "Evans", "Chen"])
    );
    assert_eq!(
        found("title=sales".into()).await,
        set(&["O'Brien", "Silva", "Dubois"])
    );
    assert_eq!(
        found("employee_range=1-10,11-50".into()).await,
        set(&["Silva", "Dubois"])
    );
    assert_eq!(found("country=US".into()).await, set(&["O'Brien", "Chen"]));
    assert_eq!(found("country=US&region=NY".into()).await, set(&["Chen"]));
    assert_eq!(found("tags=tech".into()).await, set(&["Chen", "Evans"]));
    assert_eq!(found("status=new".into()).await, set(&["Silva", "Chen"]));
    assert_eq!(
        found(format!("owner={}", ids_[1])).await,
        set(&["O'Brien", "Chen", "Evans"])
    );
    assert_eq!(
        found("score_min=60&score_max=90".into()).await,
        set(&["O'Brien", "Evans"])
    );
    assert_eq!(
        found("has_email=false".into()).await,
        set(&["Chen", "Evans"])
    );
    assert_eq!(
        found("has_email=true&seniority=vp".into()).await,
        set(&["O'Brien"])
    );
    assert_eq!(
        found("created_after=2000-01-01T00:00:00Z".into())
            .await
            .len(),
        5
    );
    assert_eq!(
        found("created_before=2000-01-01T00:00:00Z".into())
            .await
            .len(),
        0
    );
    assert_eq!(count(&api, user, "q=acme&seniority=vp").await, 1);
    // Under the cap a count is exact, and says so; `exact=true` always counts every match.
    for q in ["", "exact=true"] {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/leads/count?{q}"), user, None)
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v, json!({ "count": 5, "exact": true }));
    }
    // Sorted by score.
    let by_score = ids(&api, user, "sort=-score").await;
    assert_eq!(by_score[0], lead["Chen"]);
    assert_eq!(by_score[4], lead["Dubois"]);
    // Bad parameters are named.
    for (q, field) in [
        ("seniority=boss", "seniority"),
        ("score_min=90&score_max=10", "score_min"),
        ("sort=name", "sort"),
        ("limit=1000", "limit"),
        ("cursor=garbage", "cursor"),
        ("colour=red", "colour"),
    ] {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/leads?{q}"), user, None)
            .await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(v.to_string().contains(field), "{q}: {v}");
    }

    // Keyset pages while others insert: no gaps, no repeats, in both directions and by score.
    for extra in 0..25 {
        create(&api, user, json!({ "first_name": format!("Bulk{extra}") })).await;
    }
    for sort in ["-created", "created", "-score"] {
        let before: Vec<String> = {
            let (s, v) = api
                .call(
                    Method::GET,
                    &format!("/api/v1/leads?sort={sort}&limit=200"),
                    user,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string())
                .collect()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut n = 0;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/v1/leads?limit=7&cursor={c}"),
                None => format!("/api/v1/leads?limit=7&sort={sort}"),
            };
            let (s, v) = api.call(Method::GET, &q, user, None).await;
            assert_eq!(s, 200, "{v}");
            seen.extend(
                v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["id"].as_str().unwrap().to_string()),
            );
            // Someone adds a lead between every two pages.
            create(
                &api,
                &t[1],
                json!({ "first_name": format!("Late{sort}{n}") }),
            )
            .await;
            n += 1;
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: a row came twice");
        for id in &before {
            assert!(seen.contains(id), "{sort}: {id} was skipped");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn exports_are_for_admins_and_managers_streamed_safe_for_spreadsheets_and_audited() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "exp").await;
    create(
        &api,
        &t[2],
        json!({ "first_name": "=HYPERLINK(\"http://evil.example\")", "last_name": "Formula",
                "email": "f@exp.example", "company_name": "Quote, \"Comma\" Ltd" }),
    )
    .await;
    create(
        &api,
        &t[2],
        json!({ "first_name": "Dee", "last_name": "Noc", "email": "dnc@exp.example", "do_not_contact": true }),
    )
    .await;
    for i in 0..3 {
        create(&api, &t[2], json!({ "first_name": format!("Row{i}") })).await;
    }
    for token in [&t[2], &t[3]] {
        let (s, _) = export(&app, token, "").await;
        assert_eq!(s, 403, "User and API have no Data Export");
    }
    let (s, csv) = export(&app, &t[1], "").await;
    assert_eq!(s, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[6], "email");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len(),
        4,
        "do-not-contact leads are left out by default"
    );
    let formula = rows.iter().find(|r| &r[2] == "Formula").unwrap();
    assert!(
        formula[1].starts_with("'="),
        "formula neutralised: {:?}",
        &formula[1]
    );
    assert_eq!(&formula[9], "Quote, \"Comma\" Ltd");
    assert_eq!(&formula[6], "f@exp.example");
    let (_, csv) = export(&app, &t[1], "include_do_not_contact=true").await;
    let dnc = csv.lines().find(|l| l.contains("dnc@exp.example")).unwrap();
    assert!(dnc.contains(",true,"), "{dnc}");
    let (s, json_body) = export(&app, &t[0], "format=json&q=row").await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&json_body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (s, _) = export(&app, &t[1], "format=xml").await;
    assert_eq!(s, 400);

    // Audited: who, which filter, how many rows, complete.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let trail = audit_actions(&api, &t[0]).await;
    let started: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "leads.export")
        .collect();
    let finished: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "leads.export.finished")
        .collect();
    assert_eq!(started.len(), 3, "{trail:?}");
    assert_eq!(finished.len(), 3);
    assert!(
        finished
            .iter()
            .any(|e| e["after"]["rows"] == 5 && e["after"]["complete"] == true)
    );
    assert!(started.iter().any(|e| e["after"]["filter"]["q"] == "row"));
    app.stop().await;
}

#[tokio::test]
async fn repeated_searches_and_exports_past_the_baseline_are_throttled_per_address_and_principal() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::helpers::workspace_root().join("config/waf-rules.json"))
            .unwrap(),
    )
    .unwrap();
    rules["monitoring"]["anomalies"] = json!({
        "searches": { "paths": ["/api/v1/leads*"], "baseline": 3, "window_secs": 60, "throttle_secs": 30 },
        "exports": { "paths": ["/api/v1/leads/export"], "baseline": 1, "window_secs": 60, "throttle_secs": 60 },
    });
    let path = dir.path().join("waf-rules.json");
    std::fs::write(&path, rules.to_string()).unwrap();
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", path.to_str().unwrap()),
    ])
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "anomaly").await;
    let get = |ip: [u8; 4], token: &str, path: &str| {
        let client = app.client_from(std::net::IpAddr::from(ip));
        let (url, token) = (app.https_url(path), token.to_string());
        async move {
            let res = client
                .get(url)
                .bearer_auth(token)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    };
    let (user, manager) = (&t[2], &t[1]);
    // The org_with_every_role set-up ran from 127.0.0.1; searches here come from .2 and .3.
    for _ in 0..3 {
        assert_eq!(get([127, 0, 0, 2], user, "/api/v1/leads").await.0, 200);
    }
    let (s, retry, body) = get([127, 0, 0, 2], user, "/api/v1/leads/count").await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["error"]["code"], "anomaly_throttled");
    assert_eq!(retry.as_deref(), Some("30"));
    // The same user from another address, and another user from the same address: throttled.
    assert_eq!(get([127, 0, 0, 3], user, "/api/v1/leads").await.0, 429);
    assert_eq!(get([127, 0, 0, 2], manager, "/api/v1/leads").await.0, 429);
    // Another user from another address works on.
    assert_eq!(get([127, 0, 0, 4], manager, "/api/v1/leads").await.0, 200);
    // Exports have their own, lower baseline.
    assert_eq!(
        get([127, 0, 0, 5], &t[0], "/api/v1/leads/export").await.0,
        200
    );
    let (s, retry, body) = get([127, 0, 0, 5], &t[0], "/api/v1/leads/export").await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("60"));
    app.stop().await;
}

#[tokio::test]
async fn segments_save_a_search_private_or_shared_and_run_it_under_the_runners_acl() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, t, ids_) = org_with_every_role(&app, &api, "seg").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    for (first, title) in [
        ("Vi", "VP Sales"),
        ("Di", "Director"),
        ("Va", "VP Marketing"),
    ] {
        create(&api, user, json!({ "first_name": first, "title": title, "seniority": if title.starts_with("VP") { "vp" } else { "director" } })).await;
    }
    let (s, seg) = api
        .call(
            Method::POST,
            "/api/v1/segments",
            user,
            Some(json!({ "name": "VPs", "query": "seniority=vp&sort=-created", "shared": true })),
        )
        .await;
    assert_eq!(s, 201, "{seg}");
    let id = seg["id"].as_str().unwrap().to_string();
    let (s, private) = api
        .call(
            Method::POST,
            "/api/v1/segments",
            user,
            Some(json!({ "name": "Mine", "query": "q=vi" })),
        )
        .await;
    assert_eq!(s, 201, "{private}");
    // Bad queries are refused with the parameter named; paging belongs to runs.
    for (query, field) in [
        ("seniority=boss", "seniority"),
        ("colour=red", "colour"),
        ("limit=5", "limit"),
        ("cursor=abc", "cursor"),
    ] {
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/segments",
                user,
                Some(json!({ "name": format!("bad {query}"), "query": query })),
            )
            .await;
        assert_eq!(s, 400, "{query}: {v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    // Running it is the search, page by page.
    let (s, run) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads?limit=1"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["items"].as_array().unwrap().len(), 1);
    let cursor = run["next_cursor"].as_str().unwrap();
    let (_, run2) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads?limit=5&cursor={cursor}"),
            user,
            None,
        )
        .await;
    assert_eq!(run2["items"].as_array().unwrap().len(), 1);
    assert_eq!(run2["next_cursor"], Value::Null);
    // Shared: others see and run it; private: only its owner.
    let (_, listed) = api
        .call(Method::GET, "/api/v1/segments", manager, None)
        .await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VPs"]);
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{}", private["id"].as_str().unwrap()),
            manager,
            None,
        )
        .await;
    assert_eq!(s, 404);
    // The runner's ACL applies: a VP lead restricted to a group the manager is not in is not in
    // the manager's run of the shared segment.
    let (_, g) = api
        .call(
            Method::POST,
            "/api/v1/org/groups",
            admin,
            Some(json!({ "name": "Execs" })),
        )
        .await;
    let group = g["id"].as_str().unwrap();
    api.call(
        Method::PUT,
        &format!("/api/v1/org/groups/{group}/members/{}", ids_[2]),
        admin,
        None,
    )
    .await;
    let (_, all) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads"),
            user,
            None,
        )
        .await;
    let hidden = all["items"][0]["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{hidden}/acl"),
            admin,
            Some(
                json!({ "read_groups": [group], "write_groups": [], "sensitivity": "restricted" }),
            ),
        )
        .await;
    assert_eq!(s, 200);
    let (_, as_manager) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads"),
            manager,
            None,
        )
        .await;
    assert_eq!(as_manager["items"].as_array().unwrap().len(), 1);
    assert_ne!(as_manager["items"][0]["id"], hidden);
    let (_, as_user) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads"),
            user,
            None,
        )
        .await;
    assert_eq!(as_user["items"].as_array().unwrap().len(), 2);
    // Only the owner (or an admin, for a shared one) deletes; another organization sees nothing.
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/segments/{id}"),
            manager,
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (_, tb, _) = org_with_every_role(&app, &api, "seg-b").await;
    let (s, _) = api
        .call(
            Method::GET,
            &format!("/api/v1/segments/{id}/leads"),
            &tb[0],
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/segments/{id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    app.stop().await;
}

#[tokio::test]
async fn notes_activities_and_merges_follow_the_lead_acl_keep_opt_outs_and_are_audited() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, t, ids_) = org_with_every_role(&app, &api, "merge").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    let keep = create(
        &api,
        user,
        json!({ "first_name": "Ana", "last_name": "Silva", "company_domain": "acme.example",
                "company_name": "Acme", "tags": ["webinar"] }),
    )
    .await;
    let dup = create(
        &api,
        user,
        json!({ "first_name": "ana", "last_name": "SILVA", "company_domain": "acme.example",
                "email": "Ana.Silva@acme.example", "title": "CTO", "do_not_contact": true,
                "tags": ["import"] }),
    )
    .await;
    let other = create(
        &api,
        user,
        json!({ "first_name": "Bo", "last_name": "Silva", "company_domain": "acme.example" }),
    )
    .await;
    let hidden = create(
        &api,
        admin,
        json!({ "first_name": "Ana", "last_name": "Silva", "company_domain": "acme.example" }),
    )
    .await;
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{hidden}/acl"),
            admin,
            Some(json!({ "read_groups": [], "write_groups": [], "sensitivity": "restricted" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Notes and activities: bad input named, then written on the duplicate.
    let notes = |id: Uuid| format!("/api/v1/leads/{id}/notes");
    let activities = |id: Uuid| format!("/api/v1/leads/{id}/activities");
    for (body, status, field) in [
        (json!({ "body": "   " }), 400, "body"),
        (json!({ "body": "x", "pinned": true }), 422, "pinned"),
    ] {
        let (s, v) = api.call(Method::POST, &notes(dup), user, Some(body)).await;
        assert_eq!(s, status, "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    let (s, note) = api
        .call(
            Method::POST,
            &notes(dup),
            user,
            Some(json!({ "body": "Asked for a demo in Q3" })),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    let note_id = note["id"].as_str().unwrap().to_string();
    for (body, field) in [
        (json!({ "kind": "merge", "summary": "x" }), "kind"),
        (
            json!({ "kind": "call", "summary": "x", "occurred_at": "2999-01-01T00:00:00Z" }),
            "occurred_at",
        ),
    ] {
        let (s, v) = api
            .call(Method::POST, &activities(dup), user, Some(body))
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    let (s, v) = api
        .call(
            Method::POST,
            &activities(dup),
            user,
            Some(json!({ "kind": "call", "summary": "Intro call, 20 minutes" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // A lead the user cannot read has no notes for it either, to read or to write.
    let (s, _) = api
        .call(
            Method::POST,
            &notes(hidden),
            admin,
            Some(json!({ "body": "Board member, handle with care" })),
        )
        .await;
    assert_eq!(s, 201);
    for method in [Method::GET, Method::POST] {
        let body = (method == Method::POST).then(|| json!({ "body": "peek" }));
        let (s, v) = api.call(method, &notes(hidden), user, body).await;
        assert_eq!(s, 404, "{v}");
    }
    // Full text covers notes, under the same rules: the user finds its lead by a word of its
    // note, never the hidden lead by a word of the admin's note (nor its count).
    assert_eq!(ids(&api, user, "q=demo").await, [dup.to_string()]);
    assert_eq!(
        ids(&api, user, "q=%22handle%20with%20care%22").await,
        Vec::<String>::new()
    );
    assert_eq!(count(&api, user, "q=board").await, 0);
    assert_eq!(
        ids(&api, admin, "q=board%20-demo").await,
        [hidden.to_string()]
    );
    {
        // Straight in the database as the user: the policies hide the note as well.
        let mut tx = db_session(&app, &api, user, ids_[2], "user", "aal1").await;
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM app.lead_notes")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, 1, "only the note on the lead the user can read");
    }

    // Candidates: the same name at the same domain, whatever the case; not another Silva, and
    // not a lead the user cannot read.
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/api/v1/leads/{keep}/duplicates"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let found: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["lead"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [dup.to_string()], "{v}");
    assert_eq!(
        v["items"][0]["reasons"],
        json!(["same_name_and_company_domain"])
    );
    let _ = other;

    // Merging refuses bad requests and different ACLs.
    let merge = format!("/api/v1/leads/{keep}/merge");
    for (body, status, needle) in [
        (json!({ "duplicate": keep }), 400, "itself"),
        (
            json!({ "duplicate": dup, "take": ["title", "score"] }),
            400,
            "take[1]",
        ),
        (json!({ "duplicate": hidden }), 404, ""),
    ] {
        let (s, v) = api.call(Method::POST, &merge, user, Some(body)).await;
        assert_eq!(s, status, "{v}");
        assert!(v.to_string().contains(needle), "{v}");
    }
    let (s, v) = api
        .call(
            Method::POST,
            &merge,
            admin,
            Some(json!({ "duplicate": hidden })),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("ACL"), "{v}");

    // The merge: the survivor keeps its values, takes the first name, fills its blanks, unites
    // tags, keeps the opt-out, and gets the duplicate's note and activity.
    let (s, v) = api
        .call(
            Method::POST,
            &merge,
            user,
            Some(json!({ "duplicate": dup, "take": ["first_name"] })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let lead = &v["lead"];
    assert_eq!(lead["first_name"], "ana");
    assert_eq!(lead["last_name"], "Silva");
    assert_eq!(lead["title"], "CTO");
    assert_eq!(lead["email"], "ana.silva@acme.example");
    assert_eq!(lead["do_not_contact"], true);
    assert_eq!(lead["tags"], json!(["webinar", "import"]));
    assert_eq!(
        (v["notes_moved"].as_u64(), v["activities_moved"].as_u64()),
        (Some(1), Some(1))
    );
    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/leads/{dup}"), user, None)
        .await;
    assert_eq!(s, 404);
    let (_, v) = api.call(Method::GET, &notes(keep), user, None).await;
    assert_eq!(v["items"][0]["body"], "Asked for a demo in Q3");
    assert_eq!(
        ids(&api, user, "q=demo").await,
        [keep.to_string()],
        "moved with the note"
    );
    // The email now belongs to the survivor: a new lead with it is a duplicate.
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/leads",
            user,
            Some(json!({ "email": "ANA.SILVA@acme.example" })),
        )
        .await;
    assert_eq!(s, 409);

    // A status change is an activity too; the timeline reads newest first.
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/leads/{keep}"),
            user,
            Some(json!({ "status": "contacted" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, v) = api.call(Method::GET, &activities(keep), user, None).await;
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["status_change", "merge", "call"], "{v}");
    assert!(
        v["items"][0]["summary"]
            .as_str()
            .unwrap()
            .contains("new to contacted")
    );

    // Only its author or an admin deletes a note.
    let note_url = format!("/api/v1/leads/{keep}/notes/{note_id}");
    let (s, v) = api.call(Method::DELETE, &note_url, manager, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "not_author", "{v}");
    let (s, _) = api.call(Method::DELETE, &note_url, user, None).await;
    assert_eq!(s, 204);
    let (s, _) = api.call(Method::DELETE, &note_url, user, None).await;
    assert_eq!(s, 404);
    assert_eq!(
        ids(&api, user, "q=demo").await,
        Vec::<String>::new(),
        "gone with the note"
    );

    let actions: Vec<String> = audit_actions(&api, admin)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for action in ["lead.note.add", "lead.merge", "lead.note.delete"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    let entries = audit_actions(&api, admin).await;
    let merge_entry = entries
        .iter()
        .find(|e| e["action"] == "lead.merge")
        .unwrap();
    assert_eq!(
        merge_entry["after"]["fields_from_duplicate"],
        json!(["first_name"]),
        "{merge_entry}"
    );
}

/// The pages' scripts call the API with the session cookie: reads work, a change from the page's
/// own origin works, and a change from another origin (or hiding its origin) is refused at the edge.
#[tokio::test]
async fn the_api_takes_the_session_cookie_only_from_its_own_origin() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "cookie").await;
    let cookie = format!("__Host-lg-access={}", t[2]);
    let own = app.https_url("");
    let own = own.trim_end_matches('/');
    let post = |origin: Option<&str>| {
        let mut r = app
            .client()
            .post(app.https_url("/api/v1/leads"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(json!({ "first_name": "Cookie", "last_name": "Monster" }).to_string());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let res = app
        .client()
        .get(app.https_url("/api/v1/leads"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(post(Some(own)).await.unwrap().status(), 201);
    for origin in [Some("https://evil.example"), Some("null"), None] {
        let res = post(origin).await.unwrap();
        assert_eq!(res.status(), 403, "{origin:?}");
    }
    assert_eq!(ids(&api, &t[2], "q=monster").await.len(), 1);
    // Without a cookie or a token there is no principal at all.
    let res = app
        .client()
        .get(app.https_url("/api/v1/leads"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Large exports as jobs: a link with a token, for its creator only, audited, and dead after its
/// lifetime (the clock moved past it).
#[tokio::test]
async fn export_jobs_give_their_creator_an_expiring_link_and_nobody_else_anything() {
    let clock = std::sync::Arc::new(leadgen::clock::OffsetClock::default());
    let app = TestApp::spawn_on(
        crate::helpers::TestDb::new().await,
        &[
            ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
            ("LEADGEN_IMPORTS__EXPORT_LINK_SECS", "600"),
        ],
        clock.clone(),
    )
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "expjob").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    for i in 0..30 {
        create(
            &api,
            user,
            json!({ "first_name": format!("Row{i}"), "email": format!("row{i}@jobs.example"), "country": "PT" }),
        )
        .await;
    }
    let (s, v) = api
        .call(Method::POST, "/api/v1/exports?country=PT", user, None)
        .await;
    assert_eq!(s, 403, "users do not export: {v}");
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/exports?country=PT&limit=5",
            manager,
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, job) = api
        .call(Method::POST, "/api/v1/exports?country=PT", manager, None)
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let link = job["download_url"].as_str().unwrap().to_string();
    assert!(link.contains("token="), "{link}");
    let mut status = Value::Null;
    for _ in 0..100 {
        let (s, v) = api
            .call(Method::GET, &format!("/api/v1/exports/{id}"), manager, None)
            .await;
        assert_eq!(s, 200, "{v}");
        status = v;
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["rows"], 30);

    let get = |url: String, token: String| {
        let app = &app;
        async move {
            let res = app
                .client()
                .get(app.https_url(&url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (s, body) = get(link.clone(), manager.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body.lines().count(), 31, "a header and 30 leads");
    assert!(body.contains("row7@jobs.example"));
    // The job is its creator's: an admin of the same organization, or a wrong token, finds nothing.
    let (s, _) = get(link.clone(), admin.clone()).await;
    assert_eq!(s, 404);
    let forged = format!("{}x", link);
    let (s, _) = get(forged, manager.clone()).await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/exports/{id}"), admin, None)
        .await;
    assert_eq!(s, 404);
    let actions: Vec<String> = audit_actions(&api, admin)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for action in [
        "leads.export",
        "leads.export.finished",
        "leads.export.download",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }

    // Past its lifetime the link is gone, and so is the file.
    clock.advance(601);
    let (s, body) = get(link, manager.clone()).await;
    assert_eq!(s, 410, "{body}");
    let file = app.data_dir.path().join(format!("exports/{id}.csv"));
    assert!(!file.exists(), "{}", file.display());

    // A job whose server stopped while writing it (running, its lease run out, a partial file)
    // reads as failed with the reason, its partial file removed, and is audited as incomplete.
    let (s, job) = api
        .call(
            Method::POST,
            "/api/v1/exports?country=PT&format=json",
            manager,
            None,
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    for _ in 0..100 {
        let (_, v) = api
            .call(Method::GET, &format!("/api/v1/exports/{id}"), manager, None)
            .await;
        if v["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let su = app.db().superuser_pool().await;
    sqlx::query(
        "UPDATE app.export_jobs SET status = 'running', finished_at = NULL,
             lease_until = now() - interval '1 minute' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&su)
    .await
    .unwrap();
    let part = app.data_dir.path().join(format!("exports/{id}.json.part"));
    std::fs::write(&part, "[{\"first_name\": \"Row1\"").unwrap();
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/exports/{id}"), manager, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("interrupted"), "{v}");
    assert!(!part.exists(), "the partial file is removed");
    let (s, v) = api
        .call(Method::GET, &format!("/api/v1/exports/{id}"), manager, None)
        .await;
    assert_eq!(
        (s, &v["status"]),
        (200, &json!("failed")),
        "and stays so: {v}"
    );
    let interrupted = audit_actions(&api, admin)
        .await
        .into_iter()
        .filter(|e| e["action"] == "leads.export.finished" && e["after"]["interrupted"] == true)
        .count();
    assert_eq!(interrupted, 1);
}

/// Lists gather leads by hand, private or shared; an entry follows its lead's ACL, adding a lead
/// one cannot read reads as skipped, and only the owner (or an admin, for a shared list) deletes.
#[tokio::test]
async fn lists_keep_leads_by_hand_private_or_shared_and_entries_follow_the_lead_acl() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "lists").await;
    let (admin, manager, user) = (&t[0], &t[1], &t[2]);
    let a = create(&api, user, json!({ "first_name": "Ann", "title": "CTO" })).await;
    let b = create(
        &api,
        user,
        json!({ "first_name": "Ben", "title": "VP Sales" }),
    )
    .await;
    let hidden = create(&api, admin, json!({ "first_name": "Hal" })).await;
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("/api/v1/leads/{hidden}/acl"),
            admin,
            Some(json!({ "read_groups": [], "write_groups": [], "sensitivity": "restricted" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    for (body, status, field) in [
        (json!({ "name": "  " }), 400, "name"),
        (json!({ "name": "x", "color": "red" }), 422, "color"),
    ] {
        let (s, v) = api
            .call(Method::POST, "/api/v1/lists", user, Some(body))
            .await;
        assert_eq!(s, status, "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    let (s, mine) = api
        .call(
            Method::POST,
            "/api/v1/lists",
            user,
            Some(json!({ "name": "Q3 targets" })),
        )
        .await;
    assert_eq!(s, 201, "{mine}");
    let mine = mine["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/lists",
            user,
            Some(json!({ "name": "Q3 targets" })),
        )
        .await;
    assert_eq!(s, 409);
    let entries = |list: &str| format!("/api/v1/lists/{list}/leads");
    let (s, v) = api
        .call(
            Method::POST,
            &entries(&mine),
            user,
            Some(json!({ "leads": [] })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = api
        .call(
            Method::POST,
            &entries(&mine),
            user,
            Some(json!({ "leads": [a, b, hidden, Uuid::now_v7()] })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["added"].as_i64(), v["skipped"].as_i64()),
        (Some(2), Some(2))
    );
    let mut found = ids(&api, user, &format!("list={mine}")).await;
    found.sort();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(
        ids(&api, user, &format!("list={mine}&q=sales")).await,
        [b.to_string()]
    );
    // A private list is its owner's: another member neither sees it nor searches it.
    let (_, v) = api.call(Method::GET, "/api/v1/lists", manager, None).await;
    assert_eq!(v["items"], json!([]), "{v}");
    assert!(ids(&api, manager, &format!("list={mine}")).await.is_empty());
    let (s, _) = api
        .call(
            Method::POST,
            &entries(&mine),
            manager,
            Some(json!({ "leads": [a] })),
        )
        .await;
    assert_eq!(s, 404);

    // A shared list shows each member only the leads they can read.
    let (s, shared) = api
        .call(
            Method::POST,
            "/api/v1/lists",
            admin,
            Some(json!({ "name": "Board", "shared": true })),
        )
        .await;
    assert_eq!(s, 201, "{shared}");
    let shared = shared["id"].as_str().unwrap().to_string();
    let (_, v) = api
        .call(
            Method::POST,
            &entries(&shared),
            admin,
            Some(json!({ "leads": [a, hidden] })),
        )
        .await;
    assert_eq!(v["added"], 2, "{v}");
    assert_eq!(
        ids(&api, user, &format!("list={shared}")).await,
        [a.to_string()]
    );
    assert_eq!(ids(&api, admin, &format!("list={shared}")).await.len(), 2);
    let (_, v) = api.call(Method::GET, "/api/v1/lists", user, None).await;
    let board = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Board")
        .unwrap()
        .clone();
    assert_eq!(board["leads"], 1, "the restricted lead is not counted: {v}");

    // Removing, deleting: the owner; an admin for a shared list; the leads stay.
    let (s, v) = api
        .call(
            Method::DELETE,
            &entries(&mine),
            user,
            Some(json!({ "leads": [a] })),
        )
        .await;
    assert_eq!((s, v["removed"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/lists/{shared}"),
            user,
            None,
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "not_owner");
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/lists/{shared}"),
            admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = api
        .call(Method::GET, &format!("/api/v1/leads/{a}"), user, None)
        .await;
    assert_eq!(s, 200);
    let actions: Vec<String> = audit_actions(&api, admin)
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for action in ["list.create", "list.add", "list.remove", "list.delete"] {
        assert!(actions.iter().any(|x| x == action), "{action}: {actions:?}");
    }
}
