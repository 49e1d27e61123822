//! The browser test: Chromium (driven by playwright-core) loads LeadGen's pages over HTTPS.

use crate::helpers::{TestApp, workspace_root};

#[tokio::test]
async fn landing_page_in_chromium() {
    let app = TestApp::spawn().await;
    let root = workspace_root();
    let screenshots = root.join("target/e2e-screenshots");
    let out = tokio::process::Command::new("node")
        .args(["--test", "e2e/landing.test.mjs"])
        .current_dir(&root)
        .env(
            "LEADGEN_BASE_URL",
            format!("https://127.0.0.1:{}", app.bound.https.port()),
        )
        .env("LEADGEN_SCREENSHOT_DIR", &screenshots)
        .output()
        .await
        .expect("node is needed for the browser test (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "{stdout}"
    );
    assert!(screenshots.join("landing.png").exists(), "screenshot saved");
    app.stop().await;
}

/// The official `@supabase/auth-js` client signs up, confirms, signs in, refreshes and signs out.
#[tokio::test]
async fn supabase_auth_js_client() {
    let app = TestApp::spawn().await;
    let root = workspace_root();
    let out = tokio::process::Command::new("node")
        .args(["--test", "e2e/supabase-auth-js.test.mjs"])
        .current_dir(&root)
        .env(
            "LEADGEN_BASE_URL",
            format!("https://localhost:{}", app.bound.https.port()),
        )
        .env("LEADGEN_MAILBOX_DIR", app.data_dir.path().join("mailbox"))
        .env("NODE_EXTRA_CA_CERTS", app.cert_path())
        .output()
        .await
        .expect("node is needed for the client test (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "auth-js test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# pass 3") && stdout.contains("# fail 0"),
        "{stdout}"
    );
    app.stop().await;
}

/// The account pages in Chromium, from sign-up to signing in with a second factor.
#[tokio::test]
async fn account_pages_in_chromium() {
    let app = TestApp::spawn().await;
    let root = workspace_root();
    let out = tokio::process::Command::new("node")
        .args(["--test", "e2e/account.test.mjs"])
        .current_dir(&root)
        .env(
            "LEADGEN_BASE_URL",
            format!("https://localhost:{}", app.bound.https.port()),
        )
        .env("LEADGEN_MAILBOX_DIR", app.data_dir.path().join("mailbox"))
        .env(
            "LEADGEN_SCREENSHOT_DIR",
            root.join("target/e2e-screenshots"),
        )
        .output()
        .await
        .expect("node is needed for the browser test (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# pass 1") && stdout.contains("# fail 0"),
        "{stdout}"
    );
    app.stop().await;
}
