//! Browser and client tests in Node: Chromium (driven by playwright-core) on LeadGen's pages, and
//! the official `@supabase/auth-js` client against `/auth/v1`. Each starts a server on a free port
//! and runs one script from `e2e/` with `node --test`.

use crate::helpers::{TestApp, workspace_root};

/// Runs `e2e/<script>` against `app` and checks that exactly `passes` tests passed.
async fn run_node(app: &TestApp, script: &str, passes: usize) {
    run_node_with(app, script, passes, &[]).await;
}

async fn run_node_with(app: &TestApp, script: &str, passes: usize, env: &[(&str, &str)]) {
    let root = workspace_root();
    let screenshots = root.join("target/e2e-screenshots");
    let out = tokio::process::Command::new("node")
        .args(["--test", &format!("e2e/{script}")])
        .current_dir(&root)
        .env(
            "LEADGEN_BASE_URL",
            format!("https://localhost:{}", app.bound.https.port()),
        )
        .env("LEADGEN_MAILBOX_DIR", app.data_dir.path().join("mailbox"))
        .env("LEADGEN_SCREENSHOT_DIR", &screenshots)
        // Node verifies the server's certificate against the development CA: TLS is checked.
        .env("NODE_EXTRA_CA_CERTS", app.cert_path())
        .envs(env.iter().copied())
        .output()
        .await
        .expect("node is needed for the browser and client tests (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("# pass {passes}")) && stdout.contains("# fail 0"),
        "{stdout}"
    );
}

#[tokio::test]
async fn landing_page_in_chromium() {
    let app = TestApp::spawn().await;
    run_node(&app, "landing.test.mjs", 3).await;
    assert!(
        workspace_root()
            .join("target/e2e-screenshots/landing.png")
            .exists(),
        "screenshot saved"
    );
    app.stop().await;
}

/// A vulnerability report through the disclosure form in Chromium: payloads and an attachment,
/// the tracking id, the acknowledgement mail, the status page showing the report as text.
#[tokio::test]
async fn vulnerability_report_in_chromium() {
    let app = TestApp::spawn().await;
    run_node(&app, "vdp-report.test.mjs", 1).await;
    app.stop().await;
}

/// The official `@supabase/auth-js` client, method by method (the list and the methods that do
/// not apply are in `docs/supabase-compatibility.md`), with a real OpenID provider playing Google.
#[tokio::test]
async fn supabase_auth_js_client() {
    const SECRET: &str = "auth-js-google-client-secret-5e21";
    let google = crate::sso::OidcProvider::start().await;
    let env = crate::sso::sso_env("google", &google.issuer, SECRET);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn_with(&pairs).await;
    let port = app.bound.https.port();
    google
        .register(
            &[(
                "leadgen-google",
                SECRET,
                crate::sso::redirect_uri(port, "google"),
            )],
            false,
        )
        .await;
    run_node_with(
        &app,
        "supabase-auth-js.test.mjs",
        7,
        &[("LEADGEN_OIDC_ISSUER", google.issuer.as_str())],
    )
    .await;
    app.stop().await;
}

/// The OpenAPI document, validated by swagger-parser and checked against the routes served.
#[tokio::test]
async fn openapi_document_is_valid_and_every_operation_is_served() {
    let app = TestApp::spawn().await;
    run_node(&app, "openapi.test.mjs", 1).await;
    app.stop().await;
}

/// The account pages in Chromium, from sign-up to signing in with a second factor.
#[tokio::test]
async fn account_pages_in_chromium() {
    let app = TestApp::spawn().await;
    run_node(&app, "account.test.mjs", 1).await;
    app.stop().await;
}

/// Deleting one's account in Chromium, then the deletion job after the grace period: the
/// audit trail still verifies and no column of any table holds the person's address, browser
/// or id.
#[tokio::test]
async fn account_deletion_in_chromium() {
    use crate::helpers::{run_leadgen, server_env};
    let app = TestApp::spawn().await;
    let email = "leaving.browser@deletion.test";
    let ua = "DeletionE2E/1.0 (Chromium; LeadGen test)";
    run_node_with(
        &app,
        "account-deletion.test.mjs",
        1,
        &[("LEADGEN_DELETE_EMAIL", email), ("LEADGEN_DELETE_UA", ua)],
    )
    .await;
    let su = app.db().superuser_pool().await;
    let (id,): (uuid::Uuid,) = sqlx::query_as("SELECT id FROM app.users WHERE email = $1")
        .bind(email)
        .fetch_one(&su)
        .await
        .unwrap();
    let env = server_env(Some(app.db()), app.data_dir.path());
    let in_days = |days: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (code, out, err) = run_leadgen(
        &["accounts", "purge", "--json", "--as-of", &in_days(6)],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("\"deleted\":[]"),
        "not before the grace period ends: {out}"
    );
    let (code, out, err) = run_leadgen(
        &["accounts", "purge", "--json", "--as-of", &in_days(8)],
        &env,
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"].as_array().unwrap().len(), 1, "{out}");
    let (code, out, err) = run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    let left = crate::privacy::where_found(&su, &[email, ua], id).await;
    assert!(left.is_empty(), "personal data left in {left:?}");
    assert!(
        app.mailbox()
            .iter()
            .any(|m| m["to"] == email && m["subject"] == "Your LeadGen account is deleted")
    );
    app.stop().await;
}

/// The app shell in Chromium: every signed-in page reached through the navigation, the current
/// one marked, no raw timestamps, nothing from another origin, a 1280x800 screenshot of each.
#[tokio::test]
async fn app_shell_in_chromium() {
    let app = TestApp::spawn().await;
    run_node(&app, "shell.test.mjs", 1).await;
    for page in [
        "account",
        "organization",
        "lists",
        "leads",
        "lead",
        "company",
        "companies",
        "import",
        "scoring",
        "campaigns",
        "campaign-templates",
        "account-mfa",
    ] {
        let shot = workspace_root().join(format!("target/e2e-screenshots/shell-{page}.png"));
        let png = std::fs::read(&shot).unwrap_or_default();
        // The PNG header's width and height: the viewport the test set.
        assert!(png.len() > 24, "{} saved", shot.display());
        let size = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
        assert_eq!((size(16), size(20)), (1280, 800), "{page}");
    }
    app.stop().await;
}

/// The acceptance for capture forms: Chromium embeds a form on a page of a second local
/// origin and submits it (with the script and without), the lead appears in the organization with
/// its consent record; a bot filling the honeypot gets the same success page and nothing is
/// stored; a page of an origin not on the list is refused.
#[tokio::test]
async fn capture_form_in_chromium() {
    use reqwest::Method;
    use serde_json::json;

    let app = TestApp::spawn_with(&[("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false")]).await;
    let api = crate::orgs::Api::new(&app);
    let (t, _) = api.sign_up("owner@capture.test").await;
    let org = api.create_org(&t, "Capture Works").await;
    let t = api.switch(&t, org).await;
    // The organization's site: a free port on loopback, which the Node script serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, form) = api
        .call(
            Method::POST,
            "/api/v1/forms",
            &t,
            Some(json!({
                "name": "Demo request",
                "fields": [
                    {"name": "email", "label": "Work email"},
                    {"name": "first_name", "label": "First name", "required": true},
                    {"name": "company_name", "label": "Company"}
                ],
                "consent_text": "Capture Works may contact me about a demo.",
                "consent_version": "v3",
                "ccpa_notice": "We collect your name, address and company to arrange the demo.",
                "allowed_origins": [format!("http://127.0.0.1:{port}")],
            })),
        )
        .await;
    assert_eq!(status, 201, "{form}");
    let key = form["public_key"].as_str().unwrap();
    run_node_with(
        &app,
        "capture-form.test.mjs",
        5,
        &[
            ("LEADGEN_SITE_PORT", &port.to_string()),
            ("LEADGEN_FORM_KEY", key),
            ("LEADGEN_FORM_EMBED", form["embed"].as_str().unwrap()),
            ("LEADGEN_FORM_ID", form["id"].as_str().unwrap()),
            ("LEADGEN_ACCESS_TOKEN", &t),
        ],
    )
    .await;

    // The people's leads are in the organization, from the form, each with its consent.
    let pool = app.db().superuser_pool().await;
    for email in ["ada@shop-visitor.example", "bob@shop-visitor.example"] {
        let (status, v) = api
            .call(
                Method::GET,
                &format!("/api/v1/leads?email={email}"),
                &t,
                None,
            )
            .await;
        assert_eq!(status, 200);
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{email}: {v}");
        assert_eq!(items[0]["source"], "form:Demo request");
        assert_eq!(items[0]["company_name"], "Analytical Engines");
        let lead: uuid::Uuid = items[0]["id"].as_str().unwrap().parse().unwrap();
        let (version, ua): (String, String) = sqlx::query_as(
            "SELECT consent_version, user_agent FROM app.consent_records WHERE lead_id = $1",
        )
        .bind(lead)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(version, "v3");
        assert!(ua.contains("Chrome"), "{ua}");
    }
    // The bot's and the foreign page's posts stored nothing.
    for email in ["bot@shop-visitor.example", "eve@shop-visitor.example"] {
        let (_, v) = api
            .call(
                Method::GET,
                &format!("/api/v1/leads?email={email}"),
                &t,
                None,
            )
            .await;
        assert!(v["items"].as_array().unwrap().is_empty(), "{email}: {v}");
    }
    let id = form["id"].as_str().unwrap();
    let (_, stats) = api
        .call(Method::GET, &format!("/api/v1/forms/{id}/stats"), &t, None)
        .await;
    assert_eq!(
        stats,
        json!({"views": 1, "submissions": 2, "spam": 1, "conversions": 2})
    );
    app.stop().await;
}

/// Runs `leadgen operator add` with the password on standard input.
pub(crate) fn add_operator(
    env: &[(String, String)],
    email: &str,
    password: &str,
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leadgen"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADGEN_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["operator", "add", email, "--json"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// The operator console in Chromium: sign-in with password and TOTP, a block and an unblock,
/// each with a new code, seen from the blocked address within a second.
#[tokio::test]
async fn operator_console_in_chromium() {
    use crate::helpers::server_env;
    let app = TestApp::spawn().await;
    let env = server_env(Some(app.db()), app.data_dir.path());
    let email = "oncall@ops.example";
    // A weak password is refused, and so is a short one.
    let (code, _, out) = add_operator(&env, email, "password123", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at least 14 characters"), "{out}");
    let (code, _, out) = add_operator(&env, email, "passwordpassword", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("weak password"), "{out}");
    let password = "quartz lantern orbits seven herons";
    let (code, added, out) = add_operator(&env, email, password, &[]);
    assert_eq!(code, 0, "{out}");
    let secret = added["secret_base32"].as_str().unwrap().to_string();
    assert!(
        added["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/"),
        "{out}"
    );
    let (code, _, out) = add_operator(&env, email, password, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("exists already"), "{out}");
    run_node_with(
        &app,
        "operator-console.test.mjs",
        1,
        &[
            ("LEADGEN_OPERATOR_EMAIL", email),
            ("LEADGEN_OPERATOR_PASSWORD", password),
            ("LEADGEN_OPERATOR_SECRET", &secret),
        ],
    )
    .await;
    // The sign-in, the block and the unblock are in the platform's audit chain.
    let su = app.db().superuser_pool().await;
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM app.platform_audit ORDER BY seq")
            .fetch_all(&su)
            .await
            .unwrap();
    for want in [
        "operator.add",
        "operator.sign_in",
        "incident.block",
        "incident.unblock",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    let (code, out, err) = crate::helpers::run_leadgen(&["audit", "verify", "--json"], &env);
    assert_eq!(code, 0, "{out}{err}");
    app.stop().await;
}
