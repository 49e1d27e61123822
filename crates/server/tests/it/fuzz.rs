//! The JSON API against a fuzzer nobody here wrote: schemathesis reads `/api/openapi.json`,
//! generates requests for every operation (valid and invalid ones) and checks that the server
//! never answers 5xx, answers only documented statuses and content types, and that every body
//! matches its documented schema. It runs three times, as an admin at `aal2`, as a User and as an
//! API key, against a server with the shipped WAF and IP reputation on; the fuzzer's address is
//! allow-listed in the rules file, as an operator would list a scanner.

use std::path::PathBuf;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, workspace_root};
use crate::orgs::{Api, org_with_every_role};

/// Pinned with `scripts/test.sh`, which installs it.
const SCHEMATHESIS: &str = "4.32.5";

/// The fuzzer `scripts/test.sh` installed. A missing fuzzer is a failure, never a skip.
fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("LEADGEN_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/tools/schemathesis/bin/schemathesis"));
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "schemathesis is not installed at {} ({e}); run scripts/test.sh",
                bin.display()
            )
        });
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.contains(SCHEMATHESIS),
        "schemathesis {SCHEMATHESIS} expected, found {version}"
    );
    bin
}

/// The shipped rules with the fuzzer's address (loopback) allow-listed.
fn rules_with_scanner_allowed(dir: &std::path::Path) -> PathBuf {
    let mut rules: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/waf-rules.json")).unwrap(),
    )
    .unwrap();
    let allow = rules["ip_rules"]["allow"].as_array_mut().unwrap();
    allow.push(json!("127.0.0.1/32"));
    allow.push(json!("::1/128"));
    // Like the rate limits below: the scraping detector stays on, with room for a fuzzer's pace.
    for anomaly in rules["monitoring"]["anomalies"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        let baseline = anomaly["baseline"].as_u64().unwrap();
        anomaly["baseline"] = json!(baseline * 1000);
    }
    let path = dir.join("waf-rules.json");
    std::fs::write(&path, rules.to_string()).unwrap();
    path
}

/// The part of a run's output that says what failed: from the failures (or errors) heading to
/// the end, clipped, so a truncated CI log still shows it.
fn failure_summary(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            let t = l.trim();
            t.contains("FAILURES") || t.contains("ERRORS")
        })
        .unwrap_or(lines.len().saturating_sub(40));
    let tail = &lines[start..];
    let shown = &tail[..tail.len().min(60)];
    shown.join("\n")
}

// Returns its verdict instead of panicking: a backtrace would push the failure summary out of
// a clipped log.
#[tokio::test]
async fn schemathesis_finds_no_failure_as_an_admin_a_user_and_an_api_key() -> Result<(), String> {
    let bin = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let waf = rules_with_scanner_allowed(dir.path());
    // The rate limits stay on with room for a fuzzer's thousands of requests a minute, so the
    // logic behind each operation is what gets tested (429 is documented and checked anyway).
    let mut limits: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/rate-limits.json")).unwrap(),
    )
    .unwrap();
    for rule in limits["rules"].as_array_mut().unwrap() {
        for field in ["limit", "burst"] {
            if let Some(n) = rule[field].as_u64() {
                rule[field] = json!(n * 1000);
            }
        }
    }
    let limits_path = dir.path().join("rate-limits.json");
    std::fs::write(&limits_path, limits.to_string()).unwrap();
    let limits = limits_path;
    let app = TestApp::spawn_with(&[
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", waf.to_str().unwrap()),
        (
            "LEADGEN_PERIMETER__RATE_LIMITS_PATH",
            limits.to_str().unwrap(),
        ),
    ])
    .await;
    let api = Api::new(&app);
    let (_, t, _) = org_with_every_role(&app, &api, "fuzz").await;
    // Something to find: leads, a list, a saved search.
    for i in 0..5 {
        let (s, v) = api
            .call(
                Method::POST,
                "/api/v1/leads",
                &t[0],
                Some(json!({ "email": format!("lead{i}@fuzz.example"), "first_name": "Ann", "title": "CTO" })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let key = api.create_key(&t[0], json!({ "name": "fuzzer" })).await;

    // Deterministic and bounded in the test command; `LEADGEN_FUZZ_SEED` and
    // `LEADGEN_FUZZ_EXAMPLES` run a deeper, random search by hand.
    let examples = std::env::var("LEADGEN_FUZZ_EXAMPLES").unwrap_or_else(|_| "12".into());
    let generation: Vec<String> = match std::env::var("LEADGEN_FUZZ_SEED") {
        Ok(seed) => vec!["--seed".into(), seed],
        Err(_) => vec!["--generation-deterministic".into()],
    };
    let base = app.https_url("");
    let cert = app.cert_path();
    let mut failed = Vec::new();
    for (who, token) in [
        ("admin", t[0].as_str()),
        ("user", t[2].as_str()),
        ("api key", key.as_str()),
    ] {
        let out = tokio::process::Command::new(&bin)
            .args(["run", &format!("{base}/api/openapi.json"), "--url", &base])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
            // One worker: two threads of hypothesis compiling strategies at once trip a CPython AST race
            // ("recursion depth mismatch") that fails the run with no request at fault.
            .args(["--max-examples", &examples, "--workers", "1", "--no-color"])
            .args(["--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all"])
            // A kept-alive connection the server closed after its idle deadline, just as the next
            // request left, is the network's doing, not the API's: such a request is sent again.
            .args(["--request-retries", "2"])
            .args(&generation)
            // Ending its own session or credential would leave the rest of the run unauthenticated.
            .args(["--exclude-path", "/auth/v1/logout"])
            .args(["--exclude-path-regex", "^/api/v1/api-keys/\\{[^}]+\\}(/rotate)?$"])
            .args(["--exclude-path", "/api/v1/org/members/{user_id}"])
            .arg("--tls-verify")
            .arg(&cert)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            // Its example cache stays with this run, out of the work tree.
            .current_dir(dir.path())
            // The server runs on this test's runtime: wait without blocking it.
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!(
            "==== {who}\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            failed.push((who, failure_summary(&text)));
        }
    }
    app.stop().await;
    if failed.is_empty() {
        return Ok(());
    }
    for (who, summary) in &failed {
        println!("==== what failed as {who}\n{summary}");
    }
    let who: Vec<&str> = failed.iter().map(|(who, _)| *who).collect();
    Err(format!("schemathesis failed for {who:?} (summaries above)"))
}
