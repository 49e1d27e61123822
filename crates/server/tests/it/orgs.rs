//! Organizations and access control through the front door: the permission matrix cell by cell,
//! `aal2` for admin actions (extractor and database), tenant isolation on every id-taking route,
//! the last-admin guard, and the audit trail with `leadgen audit verify`.

use leadgen::orgs::permissions::{MATRIX, Permission};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, run_leadgen, server_env};

const PASSWORD: &str = "violet tractor hums at dawn";

/// The permission matrix as the Security Policy writes it (Authorization Framework §2). The code's
/// table must say the same, and the server must behave as it says.
const POLICY: &str = "
| Manage Organization        |  Yes  |   No    |  No  | No   |
| Lead Search & Management   |  Yes  |   Yes   | Yes  | Yes  |
| Campaign Creation          |  Yes  |   Yes   | Yes  | Yes  |
| System Settings            |  Yes  |   No    |  No  | No   |
| Data Export                |  Yes  |   Yes   |  No  | No   |
| Analytics Dashboard        |  Yes  |   Yes   | Yes  | No   |
| API Key Generation         |  Yes  |   No    |  No  | No   |
";

const ROLES: [&str; 4] = ["admin", "manager", "user", "api"];

fn policy() -> Vec<(String, [bool; 4])> {
    POLICY
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let yes = |i: usize| cells[i] == "Yes";
            (cells[0].to_string(), [yes(1), yes(2), yes(3), yes(4)])
        })
        .collect()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(app: &TestApp) -> Self {
        Self {
            http: app.client(),
            base: app.https_url(""),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json")
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Signs up (no confirmation in these tests); returns (access token, user id).
    async fn sign_up(&self, email: &str) -> (String, Uuid) {
        let res = self
            .http
            .post(format!("{}/auth/v1/signup", self.base))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let s: Value = res.json().await.unwrap();
        (
            s["access_token"].as_str().unwrap().to_string(),
            s["user"]["id"].as_str().unwrap().parse().unwrap(),
        )
    }

    /// Enrols a TOTP factor and verifies it: the session moves to aal2; returns its new token.
    async fn raise_to_aal2(&self, token: &str) -> String {
        use leadgen_crypto::totp;
        let (s, f) = self
            .call(
                Method::POST,
                "/auth/v1/factors",
                token,
                Some(json!({ "factor_type": "totp" })),
            )
            .await;
        assert_eq!(s, 200, "{f}");
        let id = f["id"].as_str().unwrap();
        let secret = totp::parse_base32(f["totp"]["secret"].as_str().unwrap()).unwrap();
        let (_, ch) = self
            .call(
                Method::POST,
                &format!("/auth/v1/factors/{id}/challenge"),
                token,
                Some(json!({})),
            )
            .await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let code = totp::code_at_step(&secret, totp::step_at(now));
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/auth/v1/factors/{id}/verify"),
                token,
                Some(json!({ "challenge_id": ch["id"], "code": code })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }

    async fn create_org(&self, token: &str, name: &str) -> Uuid {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/orgs",
                token,
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// Moves the session to `org` and returns the token that carries it.
    async fn switch(&self, token: &str, org: Uuid) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/v1/session/org",
                token,
                Some(json!({ "org_id": org })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["access_token"].as_str().unwrap().to_string()
    }
}

/// Test fixture: makes `user` a member of `org` directly in the database (invitations are how
/// members arrive through the product; this test is about what roles may do once there).
async fn add_member(app: &TestApp, org: Uuid, user: Uuid, role: &str) {
    let su = app.db().superuser_pool().await;
    sqlx::query("INSERT INTO app.memberships (org_id, user_id, role) VALUES ($1, $2, $3)")
        .bind(org)
        .bind(user)
        .bind(role)
        .execute(&su)
        .await
        .unwrap();
    su.close().await;
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await
}

/// An organization with one aal2 member per role; returns (org, tokens in ROLES order, user ids).
async fn org_with_every_role(
    app: &TestApp,
    api: &Api,
    tag: &str,
) -> (Uuid, Vec<String>, Vec<Uuid>) {
    let (t, admin_id) = api.sign_up(&format!("admin@{tag}.test")).await;
    let org = api.create_org(&t, &format!("Org {tag}")).await;
    let t = api.raise_to_aal2(&t).await;
    let mut tokens = vec![api.switch(&t, org).await];
    let mut ids = vec![admin_id];
    for role in &ROLES[1..] {
        let (t, id) = api.sign_up(&format!("{role}@{tag}.test")).await;
        add_member(app, org, id, role).await;
        let t = api.raise_to_aal2(&t).await;
        tokens.push(api.switch(&t, org).await);
        ids.push(id);
    }
    (org, tokens, ids)
}

#[tokio::test]
async fn every_cell_of_the_permission_matrix_is_enforced() {
    // The code's table is the policy's table.
    let spec = policy();
    assert_eq!(spec.len(), MATRIX.len());
    for (p, row) in MATRIX {
        let want = spec
            .iter()
            .find(|(label, _)| label == p.label())
            .unwrap_or_else(|| panic!("{p:?} is not in the policy"));
        assert_eq!(row, want.1, "{}: code and policy disagree", p.label());
    }

    let app = spawn().await;
    let api = Api::new(&app);
    let (_, tokens, _) = org_with_every_role(&app, &api, "matrix").await;

    // A representative endpoint per permission; features add theirs as they land.
    let endpoints: Vec<(Permission, Method, &str, Value)> = vec![
        (
            Permission::ManageOrganization,
            Method::PATCH,
            "/api/v1/org",
            json!({ "name": "Renamed" }),
        ),
        (
            Permission::SystemSettings,
            Method::PUT,
            "/api/v1/org/settings",
            json!({ "require_mfa": false }),
        ),
    ];
    let pending = [
        Permission::LeadSearchAndManagement,
        Permission::CampaignCreation,
        Permission::DataExport,
        Permission::AnalyticsDashboard,
        Permission::ApiKeyGeneration,
    ];
    for (p, _) in MATRIX {
        assert!(
            endpoints.iter().any(|e| e.0 == p) || pending.contains(&p),
            "{p:?} has no endpoint in this test"
        );
    }
    for (p, method, path, body) in &endpoints {
        let row = spec.iter().find(|(l, _)| l == p.label()).unwrap().1;
        for (i, role) in ROLES.iter().enumerate() {
            let (status, v) = api
                .call(method.clone(), path, &tokens[i], Some(body.clone()))
                .await;
            if row[i] {
                assert!(
                    (200..300).contains(&status),
                    "{role} × {}: {status} {v}",
                    p.label()
                );
            } else {
                assert_eq!(status, 403, "{role} × {}: {v}", p.label());
                assert_eq!(v["error"]["code"], "forbidden", "{v}");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn admin_actions_need_aal2_in_the_extractor_and_in_the_database() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (t, admin) = api.sign_up("boss@aal.test").await;
    let org = api.create_org(&t, "Aal Inc").await;
    let t1 = api.switch(&t, org).await;

    // Reading is fine at aal1; an admin action is not, with a code the client can act on.
    assert_eq!(api.call(Method::GET, "/api/v1/org", &t1, None).await.0, 200);
    let (s, v) = api
        .call(
            Method::PATCH,
            "/api/v1/org",
            &t1,
            Some(json!({ "name": "Hijacked" })),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("insufficient_aal")),
        "{v}"
    );

    // The database refuses the same change at aal1 even to a connection that skips the extractor.
    let pool = sqlx::PgPool::connect(&app.db().app_url()).await.unwrap();
    let as_admin = |aal: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true), set_config('app.role', 'admin', true), set_config('app.aal', $3, true)")
                .bind(org.to_string())
                .bind(admin.to_string())
                .bind(aal)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx
        }
    };
    let mut tx = as_admin("aal1").await;
    let renamed = sqlx::query("UPDATE app.organizations SET name = 'Hijacked' WHERE id = $1")
        .bind(org)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(
        renamed, 0,
        "restrictive policy hides the row from an aal1 update"
    );
    let demoted = sqlx::query("UPDATE app.memberships SET role = 'user' WHERE org_id = $1")
        .bind(org)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(demoted, 0);
    let inserted =
        sqlx::query("INSERT INTO app.memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')")
            .bind(org)
            .bind(Uuid::now_v7())
            .execute(&mut *tx)
            .await;
    assert!(
        inserted
            .unwrap_err()
            .to_string()
            .contains("row-level security"),
        "an aal1 admin cannot add members"
    );
    drop(tx);
    let mut tx = as_admin("aal2").await;
    let renamed = sqlx::query("UPDATE app.organizations SET name = 'Renamed' WHERE id = $1")
        .bind(org)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(renamed, 1, "the same update at aal2 is allowed");
    tx.rollback().await.unwrap();
    pool.close().await;

    // With a second factor the admin action goes through.
    let t2 = api.raise_to_aal2(&t1).await;
    let (s, v) = api
        .call(
            Method::PATCH,
            "/api/v1/org",
            &t2,
            Some(json!({ "name": "Aal Corp" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // An admin without MFA who signs in in a browser is led to set it up.
    let (t, _) = api.sign_up("nomfa@aal.test").await;
    let org2 = api.create_org(&t, "No MFA Ltd").await;
    let http = app.client();
    let origin = app.https_url("");
    let origin = origin.trim_end_matches('/');
    let page = http.get(app.https_url("/login")).send().await.unwrap();
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("__Host-csrf="))
        .unwrap();
    let html = page.text().await.unwrap();
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let res = http
        .post(app.https_url("/login"))
        .header("origin", origin)
        .header("cookie", &csrf_cookie)
        .form(&[
            ("csrf_token", token),
            ("email", "nomfa@aal.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/account/mfa?required=admin",
        "org {org2}"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_organization_never_sees_or_touches_another() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org_a, ta, ids_a) = org_with_every_role(&app, &api, "a").await;
    let (org_b, tb, ids_b) = org_with_every_role(&app, &api, "b").await;
    let admin_a = &ta[0];

    // Every route that takes an id answers 404 for B's ids, as for ids that do not exist.
    for target in [ids_b[1], ids_b[0], Uuid::now_v7()] {
        let (s, _) = api
            .call(
                Method::PATCH,
                &format!("/api/v1/org/members/{target}"),
                admin_a,
                Some(json!({ "role": "user" })),
            )
            .await;
        assert_eq!(s, 404);
        let (s, _) = api
            .call(
                Method::DELETE,
                &format!("/api/v1/org/members/{target}"),
                admin_a,
                None,
            )
            .await;
        assert_eq!(s, 404);
    }
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/session/org",
            admin_a,
            Some(json!({ "org_id": org_b })),
        )
        .await;
    assert_eq!(s, 404, "not a member of B: B is not found");

    // Lists show A's rows only.
    let (_, members) = api
        .call(Method::GET, "/api/v1/org/members", &ta[2], None)
        .await;
    let listed: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 4);
    for id in &ids_b {
        assert!(!listed.contains(&id.to_string().as_str()));
    }
    let (_, orgs) = api.call(Method::GET, "/api/v1/orgs", &ta[1], None).await;
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["id"], org_a.to_string());
    // B's admin acts; A's trail does not show it.
    let (s, _) = api
        .call(
            Method::PATCH,
            "/api/v1/org",
            &tb[0],
            Some(json!({ "name": "B renamed" })),
        )
        .await;
    assert_eq!(s, 200);
    let (_, trail) = api
        .call(Method::GET, "/api/v1/org/audit", admin_a, None)
        .await;
    for e in trail.as_array().unwrap() {
        assert_ne!(e["action"], "org.rename", "{e}");
    }
    let (_, org) = api.call(Method::GET, "/api/v1/org", admin_a, None).await;
    assert_eq!(org["name"], "Org a");
    assert_eq!(ids_a.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn role_changes_are_guarded_audited_and_the_trail_is_tamper_evident() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (org, tokens, ids) = org_with_every_role(&app, &api, "audit").await;
    let admin = &tokens[0];

    // The last admin can neither be demoted nor removed.
    for (method, body) in [
        (Method::PATCH, Some(json!({ "role": "manager" }))),
        (Method::DELETE, None),
    ] {
        let (s, v) = api
            .call(
                method,
                &format!("/api/v1/org/members/{}", ids[0]),
                admin,
                body,
            )
            .await;
        assert_eq!(s, 409, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("last admin")
        );
    }
    // Bad input is named.
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/org/members/{}", ids[2]),
            admin,
            Some(json!({ "role": "owner" })),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("role"),
        "{v}"
    );
    let (s, v) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/org/members/{}", ids[2]),
            admin,
            Some(json!({ "role": "manager", "extra": 1 })),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("extra"),
        "{v}"
    );

    // Promote the user; the change takes effect on their very next request.
    let (s, _) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/org/members/{}", ids[2]),
            admin,
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = api
        .call(
            Method::PATCH,
            "/api/v1/org",
            &tokens[2],
            Some(json!({ "name": "By new admin" })),
        )
        .await;
    assert_eq!(s, 200, "the promoted user is admin at once");
    // Now the first admin may step down.
    let (s, _) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/org/members/{}", ids[0]),
            &tokens[2],
            Some(json!({ "role": "user" })),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = api
        .call(Method::GET, "/api/v1/org/audit", admin, None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "no longer admin"
    );

    // The trail: who, what, before and after, from where.
    let (s, trail) = api
        .call(
            Method::GET,
            "/api/v1/org/audit?action=member.role",
            &tokens[2],
            None,
        )
        .await;
    assert_eq!(s, 200, "{trail}");
    let first = trail.as_array().unwrap().last().unwrap();
    assert_eq!(first["before"], json!({ "role": "user" }));
    assert_eq!(first["after"], json!({ "role": "admin" }));
    assert_eq!(first["actor_id"], ids[0].to_string());
    assert_eq!(first["ip"], "127.0.0.1");
    assert!(first["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    // The application's role can append and read, never change or delete.
    let app_pool = sqlx::PgPool::connect(&app.db().app_url()).await.unwrap();
    for sql in [
        "UPDATE app.audit_log SET action = 'x'",
        "DELETE FROM app.audit_log",
    ] {
        let e = sqlx::query(sql).execute(&app_pool).await.unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }
    app_pool.close().await;

    let dir = tempfile::tempdir().unwrap();
    let env = server_env(Some(app.db()), dir.path());
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert!(report["rows"].as_u64().unwrap() >= 4, "{report}");

    // Someone with the owner's powers quietly edits one row: verify names it.
    let su = app.db().superuser_pool().await;
    let (id, seq): (i64, i64) = sqlx::query_as(
        "UPDATE app.audit_log SET after = '{\"role\": \"manager\"}' WHERE org_id = $1 AND action = 'member.role'
         AND after->>'role' = 'admin' RETURNING id, seq",
    )
    .bind(org)
    .fetch_one(&su)
    .await
    .unwrap();
    su.close().await;
    let (code, out, _) = run_leadgen(
        &["audit", "verify", "--json", "--org", &org.to_string()],
        &env,
    );
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken"]["id"], id);
    assert_eq!(report["broken"]["seq"], seq);
    assert_eq!(report["broken"]["org_id"], org.to_string());
    assert!(
        report["broken"]["reason"]
            .as_str()
            .unwrap()
            .contains("altered")
    );
    let (code, _, err) = run_leadgen(&["audit", "verify"], &env);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("seq {seq}")), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn an_organization_can_require_a_second_factor_from_every_member() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (t, _) = api.sign_up("chief@mfa.test").await;
    let org = api.create_org(&t, "Strict Co").await;
    let admin = api.switch(&api.raise_to_aal2(&t).await, org).await;
    let (t, member) = api.sign_up("member@mfa.test").await;
    add_member(&app, org, member, "user").await;
    let member_aal1 = api.switch(&t, org).await;
    assert_eq!(
        api.call(Method::GET, "/api/v1/org", &member_aal1, None)
            .await
            .0,
        200
    );

    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/org/settings",
            &admin,
            Some(json!({ "require_mfa": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api
        .call(
            Method::PUT,
            "/api/v1/org/settings",
            &admin,
            Some(json!({ "require_mfa": true, "colour": "red" })),
        )
        .await;
    assert_eq!(s, 422, "unknown settings are refused: {v}");
    let (s, v) = api
        .call(Method::GET, "/api/v1/org", &member_aal1, None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("insufficient_aal"))
    );
    let member_aal2 = api.raise_to_aal2(&member_aal1).await;
    assert_eq!(
        api.call(Method::GET, "/api/v1/org", &member_aal2, None)
            .await
            .0,
        200
    );
    let (_, settings) = api
        .call(Method::GET, "/api/v1/org/settings", &admin, None)
        .await;
    assert_eq!(settings, json!({ "require_mfa": true }));
    app.stop().await;
}
