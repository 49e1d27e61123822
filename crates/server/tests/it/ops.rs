//! Operations: the secret scan of the tracked tree.

use std::path::Path;
use std::process::Command;

use crate::helpers::workspace_root;

fn scan(tree: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/scan-secrets.sh"))
        .arg(tree)
        .output()
        .expect("run the secret scan");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// Credentials of every shape the scan knows, assembled at run time so that this file itself
/// holds none of them. Each is (rule, line).
fn planted() -> Vec<(&'static str, String)> {
    let b62 = "Zq81Lw0XbC4vRt7YpM2nKd5sGh9JeA3u";
    let jwt_head = ["ey", "JhbGciOiJIUzI1NiJ9"].concat();
    let jwt_body = ["ey", "JzdWIiOiJhZG1pbkBhY21lLmlvIn0"].concat();
    let pem = ["-----BEGIN ", "RSA PRIVATE KEY-----"].concat();
    vec![
        (
            "leadgen-api-key",
            format!(
                "key = \"{}\"",
                leadgen_crypto::apikey::generate().replace("lg_live_", &["lg_", "live_"].concat())
            ),
        ),
        (
            "leadgen-secret-assignment",
            format!(
                "{}=0123456789abcdef0123456789abcdef",
                ["LEADGEN_SECRETS", "__APP_KEY"].concat()
            ),
        ),
        (
            "leadgen-secret-in-config",
            format!(
                "{} = \"7f3a9c0d1e2b4f5a6c7d8e9f0a1b2c3d\"",
                ["master", "_key"].concat()
            ),
        ),
        (
            "jwt",
            format!("token: {jwt_head}.{jwt_body}.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        ),
        ("private-key", pem.clone()),
        (
            "aws-access-key-id",
            format!("id = {}", ["AKIA", "IOSFODNN7QWERTY1"].concat()),
        ),
        (
            "aws-secret-access-key",
            format!(
                "{} = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
                ["aws_secret", "_access_key"].concat()
            ),
        ),
        (
            "google-api-key",
            format!("{}{b62}abc", ["AI", "za"].concat()),
        ),
        (
            "github-token",
            format!("{}{b62}abcd", ["gh", "p_"].concat()),
        ),
        (
            "slack-token",
            format!("{}-1234567890-abcdefghij", ["xo", "xb"].concat()),
        ),
        (
            "slack-webhook",
            format!(
                "https://{}/services/T0123ABCD/B0123ABCD/{b62}",
                ["hooks", ".slack.com"].concat()
            ),
        ),
        ("stripe-key", format!("{}{b62}", ["sk_", "live_"].concat())),
        (
            "url-with-password",
            format!(
                "postgres://leadgen:{}@db.internal/leadgen",
                "Tr0ub4dor-and-3"
            ),
        ),
    ]
}

#[test]
fn the_secret_scan_finds_each_credential_shape_and_names_where_not_what() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    let cases = planted();
    let mut text = String::from("fn main() {}\n");
    for (_, line) in &cases {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(repo.join("leaky.txt"), &text).unwrap();
    // Untracked files are not scanned: nothing is committed yet.
    assert!(scan(repo).0, "an untracked file is not part of the tree");
    git(repo, &["add", "leaky.txt"]);
    let (ok, report) = scan(repo);
    assert!(!ok, "the scan must fail on planted credentials: {report}");
    for (i, (rule, line)) in cases.iter().enumerate() {
        let at = format!("leaky.txt:{}: {rule}", i + 2);
        assert!(report.contains(&at), "expected `{at}` in:\n{report}");
        let shown = line.split_whitespace().last().unwrap();
        assert!(
            !report.contains(shown),
            "the report must not repeat the secret `{rule}`:\n{report}"
        );
    }
    assert!(
        report.contains(&format!("{} possible secret(s)", cases.len())),
        "{report}"
    );

    // A line can be let through with a reason; a listed file is skipped; everything else stays.
    let mut marked = text.clone();
    marked = marked.replacen(
        &cases[0].1,
        &format!("{} # secret-scan: allow (test)", cases[0].1),
        1,
    );
    std::fs::write(repo.join("leaky.txt"), &marked).unwrap();
    std::fs::write(repo.join("corpus.txt"), format!("{}\n", cases[1].1)).unwrap();
    std::fs::write(repo.join(".secret-scan-allow"), "# samples\ncorpus.txt\n").unwrap();
    git(repo, &["add", "."]);
    let (ok, report) = scan(repo);
    assert!(!ok);
    assert!(!report.contains("leaky.txt:2:"), "{report}");
    assert!(!report.contains("corpus.txt"), "{report}");
    assert!(
        report.contains(&format!("{} possible secret(s)", cases.len() - 1)),
        "{report}"
    );
}

#[test]
fn the_secret_scan_lets_ordinary_code_through_and_passes_on_leadgen_itself() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    // Things that look close but are not credentials: a variable or a file path for a secret,
    // a PEM header named in code, a URL without a password, an obviously short value.
    std::fs::write(
        repo.join("fine.sh"),
        [
            "LEADGEN_SECRETS__APP_KEY=\"$APP_KEY\"",
            "LEADGEN_SECRETS__MASTER_KEY_FILE=/run/secrets/leadgen-master-key",
            "let pem = String::from(\"-----BEGIN PRIVATE KEY-----\\n\");",
            "url = postgres://leadgen@127.0.0.1:5432/leadgen",
            "app_key = \"\"",
        ]
        .join("\n"),
    )
    .unwrap();
    git(repo, &["add", "."]);
    let (ok, report) = scan(repo);
    assert!(ok, "{report}");

    let (ok, report) = scan(&workspace_root());
    assert!(ok, "LeadGen's own tracked tree must be clean:\n{report}");
}

// ---------------------------------------------------------------------------------------------
// Backups with pgBackRest, restore proofs, point-in-time restores.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Proc, client_for, run_leadgen, server_env};
use crate::orgs::Api;

/// A data folder the unprivileged `postgres` OS user can reach when tests run as root.
fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn leadgen_json(args: &[&str], env: &[(String, String)]) -> (i32, Value, String) {
    let (code, out, err) = run_leadgen(args, env);
    let value = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, value, format!("{out}\n{err}"))
}

/// The lead ids in a cluster, read as its superuser through its socket.
async fn lead_ids(url: &str) -> BTreeSet<String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id::text FROM app.leads")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    ids.into_iter().collect()
}

/// Files of one backup in the repository, largest first.
fn backup_files(repo: &Path, label: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![repo.join("backup/leadgen").join(label).join("pg_data")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    files
}

#[tokio::test]
async fn backups_restore_to_a_point_in_time_and_prove_themselves_until_damaged() {
    let dir = open_tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (hook, alerts) = crate::perimeter::receiver().await;
    let waf = crate::perimeter::shipped_rules_alerting(dir.path(), &hook);
    let mut env = server_env(None, &data);
    for (k, v) in [
        ("LEADGEN_BACKUP__ENABLED", "true"),
        ("LEADGEN_BACKUP__ARCHIVE_TIMEOUT_SECS", "10"),
        ("LEADGEN_BACKUP__CHECK_SECS", "1"),
        ("LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION", "false"),
        ("LEADGEN_PERIMETER__WAF_RULES_PATH", waf.to_str().unwrap()),
    ] {
        env.push((k.into(), v.into()));
    }
    let alerted = |needle: &'static str| {
        let alerts = alerts.clone();
        async move {
            for _ in 0..100 {
                if alerts
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|(_, body)| body.to_string().contains(needle))
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    let mut server = Proc::spawn(&["serve"], &env);
    let (https, _) = server.wait_serving(Duration::from_secs(120));
    let api = Api::with_client(
        client_for(&data.join("tls/dev-cert.pem"), https),
        format!("https://localhost:{}", https.port()),
    );
    let (token, _) = api.sign_up("backup-owner@example.com").await;
    let org = api.create_org(&token, "Backed Up Ltd").await;
    let token = api.switch(&token, org).await;
    let add = |n: u32| {
        let api = &api;
        let token = token.clone();
        async move {
            let (s, v) = api
                .call(
                    Method::POST,
                    "/api/v1/leads",
                    &token,
                    Some(json!({ "email": format!("lead{n}@example.com"), "first_name": format!("Lead {n}") })),
                )
                .await;
            assert_eq!(s, 201, "{v}");
        }
    };
    let live = format!(
        "postgres://postgres@localhost/leadgen?host={}",
        data.join("run").display()
    );

    // An uploaded import file: the data folder's files go into backups too.
    let upload = client_for(&data.join("tls/dev-cert.pem"), https)
        .post(format!(
            "https://localhost:{}/api/v1/imports?name=people.csv",
            https.port()
        ))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .header("accept", "application/json")
        .body("email,first_name\nann@example.com,Ann\n")
        .send()
        .await
        .unwrap();
    assert!(
        upload.status().is_success(),
        "{}",
        upload.text().await.unwrap()
    );
    let uploaded: Vec<_> = std::fs::read_dir(data.join("imports"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    // A new installation with backups on has none yet: the operators hear of it.
    assert!(
        alerted("no full backup has been taken yet").await,
        "{:?}",
        alerts.lock().unwrap()
    );
    for n in 0..3 {
        add(n).await;
    }
    // A full backup while the server runs.
    // The shipped schedule: a full backup daily, an incremental hourly, a restore proof monthly.
    let timers = crate::helpers::workspace_root().join("config/systemd");
    for (unit, schedule) in [
        ("leadgen-backup-full", "OnCalendar=*-*-* "),
        ("leadgen-backup-incr", "OnCalendar=hourly"),
        ("leadgen-restore-proof", "OnCalendar=*-*-01 "),
    ] {
        let timer = std::fs::read_to_string(timers.join(format!("{unit}.timer"))).unwrap();
        assert!(timer.contains(schedule), "{unit}: {timer}");
    }
    // Taken by the shipped units' own commands.
    let (code, full, out) = leadgen_json(&unit_args("leadgen-backup-full"), &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(full["set"]["kind"], "full", "{out}");
    assert_eq!(full["files"]["files"], 1, "{out}");
    assert_eq!(full["files"]["new_objects"], 1, "{out}");
    assert!(full["tables"].as_u64().unwrap() > 40, "{out}");
    for n in 3..6 {
        add(n).await;
    }
    // The moment between the backups: exactly these leads.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = time::OffsetDateTime::now_utc();
    let at_between = lead_ids(&live).await;
    assert_eq!(at_between.len(), 6);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for n in 6..9 {
        add(n).await;
    }
    let (code, incr, out) = leadgen_json(&unit_args("leadgen-backup-incr"), &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(incr["set"]["kind"], "incr", "{out}");
    assert_eq!(
        incr["files"]["new_objects"], 0,
        "a file already stored is not stored again: {out}"
    );
    assert!(
        incr["set"]["repo_delta"].as_u64().unwrap() < full["set"]["repo_delta"].as_u64().unwrap(),
        "an incremental stores only what changed: {full} {incr}"
    );
    add(9).await;

    // Point-in-time restore into a new folder: exactly the leads of that moment.
    let into = dir.path().join("restored");
    let to = between
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, restored, out) = leadgen_json(
        &[
            "restore",
            "--to",
            &to,
            "--into",
            into.to_str().unwrap(),
            "--json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(restored["label"], full["set"]["label"], "{out}");
    assert_eq!(restored["files"], 1, "{out}");
    let rel = uploaded[0].strip_prefix(&data).unwrap();
    assert_eq!(
        std::fs::read(into.join(rel)).unwrap(),
        std::fs::read(&uploaded[0]).unwrap(),
        "the upload comes back with the database"
    );
    let pg = leadgen::db::embedded::EmbeddedPostgres::new(&into, Path::new(""))
        .unwrap()
        .with_port(free_port());
    pg.start_existing().await.unwrap();
    let url = pg.url("postgres", "leadgen");
    let mut restored_ids = BTreeSet::new();
    for _ in 0..300 {
        if let Ok(pool) = sqlx::PgPool::connect(&url).await {
            let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            if !recovering {
                restored_ids = lead_ids(&url).await;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pg.stop().await.unwrap();
    assert_eq!(
        restored_ids, at_between,
        "the restore holds the leads of {to}, no more, no less"
    );

    // The repository lists both backups with their manifests.
    let (code, list, out) = leadgen_json(&["backup", "list", "--json"], &env);
    assert_eq!(code, 0, "{out}");
    let sets = list["backups"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{out}");
    assert!(sets.iter().all(|s| s["manifest_xid"].is_u64()), "{out}");

    // A restore proof passes every check, on another port when the preferred one is taken.
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let mut proof_env = env.clone();
    proof_env.push(("LEADGEN_BACKUP__VERIFY_PORT".into(), taken_port.to_string()));
    let (code, proof, out) = leadgen_json(&unit_args("leadgen-restore-proof"), &proof_env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(proof["ok"], true, "{out}");
    assert_eq!(proof["label"], incr["set"]["label"], "{out}");
    assert_ne!(proof["port"], taken_port, "{out}");
    let names: Vec<&str> = proof["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "repository checksums",
        "data folder files",
        "restore",
        "migrations current",
        "row counts",
        "audit chains",
        "encrypted fields",
        "readiness",
    ] {
        assert!(names.contains(&want), "{want} missing from {out}");
    }
    let decrypted = proof["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "encrypted fields")
        .unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(decrypted.starts_with("9 sampled"), "{decrypted}");
    // The scratch cluster is gone.
    let leftovers: Vec<_> = std::fs::read_dir(data.join("backups"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("restore-proof-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(taken);

    // Damage one file of the newest backup: both checks fail and name it.
    let label = incr["set"]["label"].as_str().unwrap();
    let victim = backup_files(&data.join("backups/repo"), label)
        .into_iter()
        .next()
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let name = victim
        .strip_prefix(data.join("backups/repo/backup/leadgen"))
        .unwrap()
        .display()
        .to_string();
    // And one stored file.
    let objects = data.join("backups/repo/leadgen-files/objects");
    let object = std::fs::read_dir(&objects)
        .unwrap()
        .filter_map(Result::ok)
        .next()
        .unwrap()
        .path();
    let mut sealed = std::fs::read(&object).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    std::fs::write(&object, sealed).unwrap();
    let object_name = format!(
        "leadgen-files/objects/{}",
        object.file_name().unwrap().to_string_lossy()
    );
    let (code, _, out) = leadgen_json(&["backup", "verify"], &env);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&name), "backup verify must name {name}: {out}");
    assert!(
        out.contains(&object_name),
        "backup verify must name {object_name}: {out}"
    );
    let (code, proof, out) = leadgen_json(&["restore", "--verify", "--json"], &env);
    assert_eq!(code, 1, "{out}");
    assert_eq!(proof["ok"], false, "{out}");
    let error = proof["error"].as_str().unwrap();
    assert!(error.starts_with("repository checksums"), "{out}");
    assert!(
        error.contains(&name),
        "restore --verify must name {name}: {out}"
    );

    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).success());
}

/// The command line a shipped systemd unit runs (after the program), checking its timer exists.
fn unit_args(unit: &str) -> Vec<&'static str> {
    let dir = crate::helpers::workspace_root().join("config/systemd");
    let service = std::fs::read_to_string(dir.join(format!("{unit}.service"))).unwrap();
    let timer = std::fs::read_to_string(dir.join(format!("{unit}.timer"))).unwrap();
    assert!(
        timer.contains("\nOnCalendar="),
        "{unit}.timer has a schedule"
    );
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    exec.leak().split_whitespace().skip(1).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
