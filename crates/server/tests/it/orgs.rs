//! Organizations and access control through the front door: the permission matrix cell by cell,
//! `aal2` for admin actions (extractor and database), tenant isolation on every id-taking route,
//! the last-admin guard, and the audit trail with `leadgen audit verify`.

use leadgen::orgs::permissions::{MATRIX, Permission};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, run_leadgen, server_env};

pub(crate) const PASSWORD: &str = "violet tractor hums at dawn";

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

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    /// The refresh token of the last session raised to aal2.
    last_refresh: std::sync::Mutex<String>,
}

impl Api {
    /// For a server in a child process: its client and base URL.
    pub(crate) fn with_client(http: reqwest::Client, base: String) -> Self {
        Self {
            http,
            base,
            last_refresh: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            http: app.client(),
            base: app.https_url(""),
            last_refresh: std::sync::Mutex::default(),
        }
    }

    pub(crate) async fn call(
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
    pub(crate) async fn sign_up(&self, email: &str) -> (String, Uuid) {
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
    pub(crate) async fn raise_to_aal2(&self, token: &str) -> String {
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
        *self.last_refresh.lock().unwrap() = v["refresh_token"].as_str().unwrap().to_string();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// A fresh access token for the session of `refresh` (same organization and aal).
    pub(crate) async fn refresh(&self, refresh: &str) -> (String, String) {
        let res = self
            .http
            .post(format!(
                "{}/auth/v1/token?grant_type=refresh_token",
                self.base
            ))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        (
            v["access_token"].as_str().unwrap().to_string(),
            v["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    /// A new API key of the admin's organization (`body`: name, scopes, lifetime); its secret.
    pub(crate) async fn create_key(&self, admin: &str, body: Value) -> String {
        let (s, v) = self
            .call(Method::POST, "/api/v1/api-keys", admin, Some(body))
            .await;
        assert_eq!(s, 201, "{v}");
        v["key"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn create_org(&self, token: &str, name: &str) -> Uuid {
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
    pub(crate) async fn switch(&self, token: &str, org: Uuid) -> String {
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

/// The invitation token mailed to `email` (the newest).
fn invitation_token(app: &TestApp, email: &str) -> String {
    let mail = app
        .mailbox()
        .into_iter()
        .rev()
        .find(|m| m["to"] == email && m["subject"].as_str().unwrap().contains("invited"))
        .expect("an invitation mail");
    mail["text"]
        .as_str()
        .unwrap()
        .split("invitation_token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The admin invites `email` as `role`; the invitee (signed in as `invitee`) accepts.
pub(crate) async fn invite_and_accept(
    app: &TestApp,
    api: &Api,
    admin: &str,
    email: &str,
    role: &str,
    invitee: &str,
) {
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/org/invitations",
            admin,
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = invitation_token(app, email);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            invitee,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["role"], role);
}

pub(crate) async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await
}

/// An organization with one aal2 member per role; returns (org, tokens in ROLES order, user ids).
pub(crate) async fn org_with_every_role(
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
        let email = format!("{role}@{tag}.test");
        let (t, id) = api.sign_up(&email).await;
        invite_and_accept(app, api, &tokens[0], &email, role, &t).await;
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
        (
            Permission::ApiKeyGeneration,
            Method::POST,
            "/api/v1/api-keys",
            json!({ "name": "matrix" }),
        ),
        (
            Permission::LeadSearchAndManagement,
            Method::POST,
            "/api/v1/leads",
            json!({ "first_name": "Matrix" }),
        ),
        (
            Permission::DataExport,
            Method::GET,
            "/api/v1/leads/export",
            Value::Null,
        ),
        (
            Permission::CampaignCreation,
            Method::GET,
            "/api/v1/campaigns",
            Value::Null,
        ),
    ];
    let pending = [Permission::AnalyticsDashboard];
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
                .call(
                    method.clone(),
                    path,
                    &tokens[i],
                    (!body.is_null()).then(|| body.clone()),
                )
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

    // The API column with real API keys: a key holds what its scopes name, within the column.
    for (p, method, path, body) in &endpoints {
        let row = spec.iter().find(|(l, _)| l == p.label()).unwrap().1;
        if !row[3] {
            let (s, v) = api
                .call(
                    Method::POST,
                    "/api/v1/api-keys",
                    &tokens[0],
                    Some(json!({ "name": "beyond", "scopes": [p.scope()] })),
                )
                .await;
            assert_eq!(s, 400, "a key with {} was made: {v}", p.scope());
            continue;
        }
        let with = api
            .create_key(
                &tokens[0],
                json!({ "name": format!("with {}", p.scope()), "scopes": [p.scope()] }),
            )
            .await;
        let other = if *p == Permission::LeadSearchAndManagement {
            Permission::CampaignCreation
        } else {
            Permission::LeadSearchAndManagement
        };
        let without = api
            .create_key(
                &tokens[0],
                json!({ "name": format!("without {}", p.scope()), "scopes": [other.scope()] }),
            )
            .await;
        let body = (!body.is_null()).then(|| body.clone());
        let (s, v) = api.call(method.clone(), path, &with, body.clone()).await;
        assert!((200..300).contains(&s), "API key × {}: {s} {v}", p.label());
        let (s, v) = api.call(method.clone(), path, &without, body).await;
        assert_eq!(s, 403, "API key without the scope × {}: {v}", p.label());
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
    let (t, _) = api.sign_up("member@mfa.test").await;
    invite_and_accept(&app, &api, &admin, "member@mfa.test", "user", &t).await;
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

/// A server whose clock the test moves, checking for due API-key notices every second.
pub(crate) async fn spawn_clocked() -> (TestApp, std::sync::Arc<leadgen::clock::OffsetClock>) {
    let clock = std::sync::Arc::new(leadgen::clock::OffsetClock::default());
    let app = TestApp::spawn_on(
        crate::helpers::TestDb::new().await,
        &[
            ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
            ("LEADGEN_API_KEYS__NOTICE_CHECK_SECS", "1"),
            // Sessions outlive the months this test's clock skips.
            ("LEADGEN_AUTH__SESSION_LIFETIME_SECS", "31536000"),
        ],
        clock.clone(),
    )
    .await;
    (app, clock)
}

/// An admin at aal2 working in a new organization; returns (token, org, admin email, refresh).
pub(crate) async fn admin_of_new_org(api: &Api, tag: &str) -> (String, Uuid, String, String) {
    let email = format!("admin@{tag}.test");
    let (t, _) = api.sign_up(&email).await;
    let org = api.create_org(&t, &format!("Org {tag}")).await;
    let t = api.raise_to_aal2(&t).await;
    let refresh = api.last_refresh.lock().unwrap().clone();
    (api.switch(&t, org).await, org, email, refresh)
}

async fn with_key(api: &Api, key: &str, path: &str) -> (u16, Value) {
    let res = api
        .http
        .get(format!("{}{path}", api.base))
        .header("accept", "application/json")
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{}/metrics", app.bound.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn api_keys_are_shown_once_checked_offline_rotated_revoked_and_expire() {
    let (app, clock) = spawn_clocked().await;
    let api = Api::new(&app);
    let (admin, org, _, refresh) = admin_of_new_org(&api, "keys").await;
    let (_, _, _, other_refresh) = admin_of_new_org(&api, "keys-other").await;

    let (s, created) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "CRM sync" })),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    leadgen_crypto::apikey::check(&key).unwrap();
    assert_eq!(
        created["scopes"],
        json!(["lead_search_and_management", "campaign_creation"])
    );
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!(
        (89 * 24..=90 * 24).contains(&days),
        "90 days by default: {days} h"
    );
    // Only the API role's permissions can be scopes, and the lifetime is capped.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "x", "scopes": ["data_export"] })),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data_export"),
        "{v}"
    );
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "x", "expires_in_days": 365 })),
        )
        .await;
    assert_eq!(s, 400);

    // The key works, as the API role of its organization, in either header.
    let (s, v) = with_key(&api, &key, "/api/v1/org").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["role"].as_str()),
        (Some(org.to_string().as_str()), Some("api"))
    );
    let (s, _) = api.call(Method::GET, "/api/v1/org", &key, None).await;
    assert_eq!(s, 200, "Authorization: Bearer works too");
    let (s, v) = with_key(&api, &key, "/api/v1/api-keys").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "keys cannot make keys"
    );

    // A mistyped key is refused from its checksum alone: no lookup happens.
    let lookups = metric(&app, "api_key_lookups_total").await;
    let mut typo: Vec<char> = key.chars().collect();
    typo[12] = if typo[12] == 'x' { 'y' } else { 'x' };
    let typo: String = typo.into_iter().collect();
    let (s, v) = with_key(&api, &typo, "/api/v1/org").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("api_key_invalid")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("checksum"));
    assert_eq!(
        metric(&app, "api_key_lookups_total").await,
        lookups,
        "no database lookup"
    );
    // A well-formed key that was never issued costs one lookup and is invalid.
    let (s, v) = with_key(&api, &leadgen_crypto::apikey::generate(), "/api/v1/org").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("api_key_invalid"))
    );

    // The list shows how to recognise a key and its last use, never the key.
    let (_, list) = api
        .call(Method::GET, "/api/v1/api-keys", &admin, None)
        .await;
    let k = &list[0];
    assert_eq!(k["status"], "active");
    assert_eq!(k["prefix"], key[..14]);
    assert_eq!(k["last_used_ip"], "127.0.0.1");
    assert!(k["last_used_at"].is_string());
    assert!(
        !list.to_string().contains(&key[14..]),
        "the secret part is never shown again"
    );
    let su = app.db().superuser_pool().await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM app.api_keys")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(
        stored,
        leadgen_crypto::apikey::hash(&key),
        "stored as SHA-256"
    );
    su.close().await;

    // Rotation: a successor now, the old key for the 7-day overlap, then only the successor.
    let id = created["id"].as_str().unwrap();
    let (s, rotated) = api
        .call(
            Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 201, "{rotated}");
    let successor = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(with_key(&api, &key, "/api/v1/org").await.0, 200, "overlap");
    assert_eq!(with_key(&api, &successor, "/api/v1/org").await.0, 200);
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 409, "a key is rotated once");
    clock.advance(7 * 86_400 + 1);
    // (A week later the admin's access token has long expired; the session refreshes it.)
    let (admin, _) = api.refresh(&refresh).await;
    let (s, v) = with_key(&api, &key, "/api/v1/org").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("api_key_expired"))
    );
    assert_eq!(with_key(&api, &successor, "/api/v1/org").await.0, 200);

    // Revocation stops a key at once, with its own code.
    let new_id = rotated["id"].as_str().unwrap();
    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{new_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = with_key(&api, &successor, "/api/v1/org").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("api_key_revoked"))
    );

    // Another organization's admin cannot see, rotate or revoke these keys.
    let (other, _) = api.refresh(&other_refresh).await;
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            &other,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api.call(
            Method::POST,
            &format!("/api/v1/api-keys/{id}/rotate"),
            &other,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api.call(Method::GET, "/api/v1/api-keys", &other, None)
            .await
            .1,
        json!([])
    );

    // Every step is in the trail.
    let (_, trail) = api
        .call(Method::GET, "/api/v1/org/audit", &admin, None)
        .await;
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["api_key.create", "api_key.rotate", "api_key.revoke"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    app.stop().await;
}

async fn wait_for_mails(app: &TestApp, to: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let mails: Vec<Value> = app
            .mailbox()
            .into_iter()
            .filter(|m| m["to"] == to && m["subject"].as_str().unwrap().contains("API key"))
            .collect();
        if mails.len() >= n {
            return mails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("expected {n} API key notices to {to}");
}

#[tokio::test]
async fn admins_are_told_14_7_and_1_days_before_a_key_expires() {
    let (app, clock) = spawn_clocked().await;
    let api = Api::new(&app);
    let (admin, _, email, refresh) = admin_of_new_org(&api, "notice").await;
    let (s, created) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "Warehouse" })),
        )
        .await;
    assert_eq!(s, 201);
    let id = created["id"].as_str().unwrap().to_string();

    // 75 days on: 15 days left, nothing yet. 76: 14 days left, the first notice.
    clock.advance(75 * 86_400);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        app.mailbox()
            .iter()
            .all(|m| !m["subject"].as_str().unwrap().contains("API key"))
    );
    clock.advance(86_400);
    let mails = wait_for_mails(&app, &email, 1).await;
    assert!(
        mails[0]["subject"].as_str().unwrap().contains("in 14 days"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0]["text"].as_str().unwrap().contains(&id),
        "the notice names the key"
    );
    clock.advance(7 * 86_400);
    let mails = wait_for_mails(&app, &email, 2).await;
    assert!(mails[1]["subject"].as_str().unwrap().contains("in 7 days"));
    clock.advance(6 * 86_400);
    let mails = wait_for_mails(&app, &email, 3).await;
    assert!(
        mails[2]["subject"]
            .as_str()
            .unwrap()
            .contains("within a day")
    );
    // Nothing is sent twice.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(wait_for_mails(&app, &email, 3).await.len(), 3);

    // The same notices in the app.
    let (admin, _) = api.refresh(&refresh).await;
    let (s, notes) = api
        .call(Method::GET, "/api/v1/notifications", &admin, None)
        .await;
    assert_eq!(s, 200);
    let kinds: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["api_key_expiry"; 3]);
    app.stop().await;
}

#[tokio::test]
async fn invitations_are_single_use_addressed_to_one_person_and_expire() {
    let (app, clock) = spawn_clocked().await;
    let api = Api::new(&app);
    let (admin, org, _, refresh) = admin_of_new_org(&api, "invite").await;
    let (dana, _) = api.sign_up("dana@invite.test").await;
    let (eve, _) = api.sign_up("eve@invite.test").await;

    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/org/invitations",
            &admin,
            Some(json!({ "email": "Dana@Invite.test", "role": "manager" })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = invitation_token(&app, "dana@invite.test");
    // Someone else who got hold of the mail cannot use it.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            &eve,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("invitation_for_another_address")),
        "{v}"
    );
    // Dana can, once.
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            &dana,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(
        (s, v["org_id"].as_str()),
        (200, Some(org.to_string().as_str())),
        "{v}"
    );
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            &dana,
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(s, 400, "used");
    let dana_in_org = api.switch(&dana, org).await;
    let (_, me) = api
        .call(Method::GET, "/api/v1/org", &dana_in_org, None)
        .await;
    assert_eq!(me["role"], "manager");

    // Revoked and expired invitations do nothing.
    api.call(
        Method::POST,
        "/api/v1/org/invitations",
        &admin,
        Some(json!({ "email": "eve@invite.test", "role": "user" })),
    )
    .await;
    let revoked = invitation_token(&app, "eve@invite.test");
    let (_, list) = api
        .call(Method::GET, "/api/v1/org/invitations", &admin, None)
        .await;
    let id = list[0]["id"].as_str().unwrap();
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/api/v1/org/invitations/{id}"),
            &admin,
            None
        )
        .await
        .0,
        204
    );
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            &eve,
            Some(json!({ "token": revoked })),
        )
        .await;
    assert_eq!(s, 400, "revoked");
    api.call(
        Method::POST,
        "/api/v1/org/invitations",
        &admin,
        Some(json!({ "email": "eve@invite.test", "role": "user" })),
    )
    .await;
    let late = invitation_token(&app, "eve@invite.test");
    clock.advance(7 * 86_400 + 1);
    let (eve, _) = {
        let res = api
            .http
            .post(format!("{}/auth/v1/token?grant_type=password", api.base))
            .json(&json!({ "email": "eve@invite.test", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        (v["access_token"].as_str().unwrap().to_string(), ())
    };
    let (s, _) = api
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            &eve,
            Some(json!({ "token": late })),
        )
        .await;
    assert_eq!(s, 400, "expired");
    // Bad input is named; another organization cannot revoke these.
    let (admin, _) = api.refresh(&refresh).await;
    let (s, v) = api
        .call(
            Method::POST,
            "/api/v1/org/invitations",
            &admin,
            Some(json!({ "email": "not an address", "role": "user" })),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().starts_with("email"),
        "{v}"
    );
    let (_, trail) = api
        .call(Method::GET, "/api/v1/org/audit", &admin, None)
        .await;
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "invitation.create",
        "invitation.accept",
        "invitation.revoke",
    ] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_api_key_gets_five_times_a_users_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rate-limits.json");
    std::fs::write(
        &rules,
        r#"{"rules": [
            {"name": "org-read", "path": "/api/v1/org", "methods": ["GET"], "key": "principal",
             "algorithm": "token_bucket", "limit": 2, "period_secs": 3600},
            {"name": "recover", "path": "/auth/v1/recover", "methods": ["POST"], "key": "ip",
             "algorithm": "sliding_window", "limit": 3, "period_secs": 3600}
        ], "role_multipliers": {"api": 5}}"#,
    )
    .unwrap();
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        (
            "LEADGEN_PERIMETER__RATE_LIMITS_PATH",
            rules.to_str().unwrap(),
        ),
    ])
    .await;
    let api = Api::new(&app);
    let (t, _) = api.sign_up("limits@rl.test").await;
    let org = api.create_org(&t, "Limits Ltd").await;
    let admin = api.switch(&api.raise_to_aal2(&t).await, org).await;
    let (s, created) = api
        .call(
            Method::POST,
            "/api/v1/api-keys",
            &admin,
            Some(json!({ "name": "etl" })),
        )
        .await;
    assert_eq!(s, 201);
    let key = created["key"].as_str().unwrap().to_string();

    // A user: 2 reads, then 429 with Retry-After and the RateLimit headers.
    let get = |token: String| {
        let http = api.http.clone();
        let url = format!("{}/api/v1/org", api.base);
        async move {
            http.get(url)
                .header("accept", "application/json")
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let res = get(admin.clone()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["ratelimit-limit"], "2");
    }
    let res = get(admin.clone()).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["request_id"].is_string());

    // The API key, five times as many.
    let mut allowed = 0;
    for _ in 0..12 {
        if get(key.clone()).await.status() == 200 {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10, "5 x the user's 2");

    // A per-IP sliding window on password recovery: the 4th request within the hour is refused.
    for i in 0..4 {
        let res = api
            .http
            .post(format!("{}/auth/v1/recover", api.base))
            .json(&json!({ "email": "limits@rl.test" }))
            .send()
            .await
            .unwrap();
        if i < 3 {
            assert_eq!(res.status(), 200, "request {i}");
        } else {
            assert_eq!(res.status(), 429);
            assert!(res.headers().contains_key("retry-after"));
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_broken_rate_limit_file_stops_the_server_with_its_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rate-limits.json");
    std::fs::write(
        &rules,
        r#"{"rules": [{"name": "x", "path": "/a", "key": "ip", "algorithm": "token_bucket", "limit": 1, "period_secs": 0}]}"#,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut env = server_env(None, data.path());
    env.push((
        "LEADGEN_PERIMETER__RATE_LIMITS_PATH".into(),
        rules.display().to_string(),
    ));
    env.push((
        "DATABASE_URL".into(),
        "postgres://nobody@127.0.0.1:1/none".into(),
    ));
    let (code, _, err) = run_leadgen(&["serve"], &env);
    assert_ne!(code, 0);
    assert!(
        err.contains("rules[0].limit") && err.contains("rate-limits.json"),
        "{err}"
    );
}

/// Security Policy: MFA is mandatory for data exports and scoring changes, whatever the role. A
/// Manager at aal1 is refused (`insufficient_aal`) on every export and on a model change, in the
/// extractor and in the database; the same Manager at aal2 goes through.
#[tokio::test]
async fn exports_and_scoring_changes_need_aal2_for_every_role() {
    let app = spawn().await;
    let api = Api::new(&app);
    let (t, _) = api.sign_up("admin@critical.test").await;
    let org = api.create_org(&t, "Critical Inc").await;
    let admin = api.switch(&api.raise_to_aal2(&t).await, org).await;
    let (m, manager) = api.sign_up("manager@critical.test").await;
    invite_and_accept(&app, &api, &admin, "manager@critical.test", "manager", &m).await;
    let m1 = api.switch(&m, org).await;
    let model = json!({ "rules": [{ "name": "VPs", "field": "seniority", "values": ["vp"], "points": 20 }] });
    let calls: [(Method, &str, Option<Value>); 4] = [
        (Method::GET, "/api/v1/leads/export", None),
        (Method::GET, "/api/v1/leads/export?format=json", None),
        (Method::POST, "/api/v1/exports?format=csv", None),
        (Method::PUT, "/api/v1/scoring", Some(model.clone())),
    ];
    for (method, path, body) in calls.clone() {
        let (s, v) = api.call(method, path, &m1, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("insufficient_aal")),
            "{path}: {v}"
        );
    }

    // The database refuses the same at aal1 to a connection that skips the extractors.
    let pool = sqlx::PgPool::connect(&app.db().app_url()).await.unwrap();
    let as_manager = |aal: &'static str| {
        let pool = pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true), set_config('app.role', 'manager', true), set_config('app.aal', $3, true)")
                .bind(org.to_string())
                .bind(manager.to_string())
                .bind(aal)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx
        }
    };
    let mut tx = as_manager("aal1").await;
    let job = sqlx::query("INSERT INTO app.export_jobs (id, org_id, created_by, format, filter, status, token_sha256, expires_at, created_at, lease_until) VALUES ($1, $2, $3, 'csv', '{}', 'running', $4, now() + interval '1 hour', now(), now())")
        .bind(Uuid::now_v7())
        .bind(org)
        .bind(manager)
        .bind(vec![0u8; 32])
        .execute(&mut *tx)
        .await;
    assert!(
        job.unwrap_err().to_string().contains("row-level security"),
        "an aal1 export job"
    );
    drop(tx);
    let mut tx = as_manager("aal1").await;
    let scoring = sqlx::query("INSERT INTO app.scoring_models (org_id, model, version, updated_by, updated_at) VALUES ($1, $2, 1, $3, now())")
        .bind(org)
        .bind(&model)
        .bind(manager)
        .execute(&mut *tx)
        .await;
    assert!(
        scoring.unwrap_err().to_string().contains("aal2"),
        "an aal1 model change"
    );
    drop(tx);
    pool.close().await;

    // With a second factor every call goes through.
    let m2 = api.switch(&api.raise_to_aal2(&m).await, org).await;
    for (method, path, body) in calls {
        let (s, v) = api.call(method, path, &m2, body).await;
        assert!(matches!(s, 200 | 202), "{path}: {s} {v}");
    }
    app.stop().await;
}

/// Changes to one organization at the same moment (its name, its settings, the scoring model,
/// new leads) each succeed: none is lost to a deadlock between the organization's row and the
/// audit trail's lock, as `FOR UPDATE` on the organization once caused.
#[tokio::test]
async fn simultaneous_changes_to_one_organization_all_succeed() {
    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = std::sync::Arc::new(Api::new(&app));
    let (_, t, _) = org_with_every_role(&app, &api, "simultaneous").await;
    let admin = t[0].clone();
    let mut tasks = Vec::new();
    // 40 requests: inside the API rate limit's burst.
    for i in 0..40 {
        let api = api.clone();
        let tok = admin.clone();
        tasks.push(tokio::spawn(async move {
            let (method, path, body) = match i % 4 {
                0 => (Method::PUT, "/api/v1/org/settings", json!({})),
                1 => (Method::PATCH, "/api/v1/org", json!({ "name": format!("Org {i}") })),
                2 => (
                    Method::POST,
                    "/api/v1/leads",
                    json!({ "email": format!("c{i}@simultaneous.example"), "title": "CTO" }),
                ),
                _ => (
                    Method::PUT,
                    "/api/v1/scoring",
                    json!({ "rules": [{ "name": "vp", "field": "seniority", "values": ["vp"], "points": i }] }),
                ),
            };
            let (s, v) = api.call(method.clone(), path, &tok, Some(body)).await;
            (method, path, s, v)
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        let (method, path, s, v) = task.await.unwrap();
        if !(200..300).contains(&s) {
            failed.push(format!("{method} {path} → {s} {v}"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // Every change is in the audit trail, once.
    let (s, log) = api
        .call(
            Method::GET,
            "/api/v1/org/audit?action=scoring.update&limit=100",
            &admin,
            None,
        )
        .await;
    assert_eq!(s, 200, "{log}");
    assert_eq!(log.as_array().unwrap().len(), 10, "{log}");
    app.stop().await;
}
