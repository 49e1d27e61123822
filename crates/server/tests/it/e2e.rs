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
