//! Process lifecycle: graceful shutdown on SIGTERM, the embedded PostgreSQL cluster, and the
//! data folder lock.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Proc, TestDb, client_for, server_env, tls_connect};

#[tokio::test]
async fn sigterm_lets_in_flight_request_finish() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut proc = Proc::spawn(&["serve"], &server_env(Some(&db), dir.path()));
    let (https, _) = proc.wait_serving(Duration::from_secs(30));
    let cert = dir.path().join("tls/dev-cert.pem");

    // Start a request whose body is still on its way.
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let mut tls = tls_connect(&cert, https, tls13).await.unwrap();
    let body = br#"{"csp-report":{"document-uri":"https://localhost/","violated-directive":"script-src","blocked-uri":"inline"}}"#;
    let head = format!(
        "POST /csp-report HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/csp-report\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..20]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A keep-alive connection that has finished one exchange and sits idle.
    let mut idle = tls_connect(&cert, https, tls13).await.unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
    idle.write_all(get).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = idle.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));

    proc.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No new connections once shutdown began…
    assert!(
        tokio::net::TcpStream::connect(https).await.is_err(),
        "listener must close on SIGTERM"
    );
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "the server must wait for the in-flight request"
    );

    // The idle keep-alive client's next request is still answered, and told to close, so no
    // request already on the wire is cut off.
    idle.write_all(get).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf))
        .await
        .unwrap()
        .ok();
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 200") && text.contains("connection: close"),
        "draining response: {text}"
    );

    // …but the request in flight completes.
    tls.write_all(&body[20..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf))
        .await
        .unwrap()
        .ok();
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 204"),
        "in-flight request must complete, got: {text}"
    );

    let status = proc.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    assert!(
        proc.stdout().contains("\"message\":\"stopped\""),
        "{}",
        proc.stdout()
    );
}

/// A data folder the unprivileged `postgres` OS user can reach when tests run as root.
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn postgres_running_in(dir: &std::path::Path) -> bool {
    let needle = dir.join("postgres").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&needle)
                })
                .unwrap_or(false)
        })
}

#[tokio::test]
async fn embedded_postgres_stops_cleanly_and_restarts() {
    let dir = open_tempdir();
    let env = server_env(None, dir.path());
    for round in 0..2 {
        let mut proc = Proc::spawn(&["serve", "--demo"], &env);
        let (https, _) = proc.wait_serving(Duration::from_secs(90));
        let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
        let res = client
            .get(format!("https://localhost:{}/readyz", https.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "round {round}: {}",
            res.text().await.unwrap()
        );
        assert!(postgres_running_in(dir.path()));
        assert!(dir.path().join("postgres/postmaster.pid").exists());
        // Unix socket only: the cluster was started with no TCP listener.
        let log = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default();
        assert!(
            !log.contains("listening on IPv4") && !log.contains("listening on IPv6"),
            "{log}"
        );
        // The terminal names the port actually served (here one the OS chose).
        let serving = format!("LeadGen is serving https://localhost:{}/", https.port());
        assert!(proc.stdout().contains(&serving), "{}", proc.stdout());
        if round == 0 {
            let open = format!("open:  https://localhost:{}/login", https.port());
            assert!(proc.stdout().contains(&open), "{}", proc.stdout());
            assert!(
                proc.stdout().contains("demo organization created"),
                "{}",
                proc.stdout()
            );
            // The demo admin can sign in with the password shown once on the terminal.
            let out = proc.stdout();
            let password = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("password: "))
                .and_then(|p| p.split_whitespace().next())
                .unwrap_or_else(|| panic!("no password in {out}"))
                .to_string();
            let res = client
                .post(format!(
                    "https://localhost:{}/auth/v1/token?grant_type=password",
                    https.port()
                ))
                .json(&serde_json::json!({
                    "email": leadgen::demo::DEMO_ADMIN_EMAIL, "password": password
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        } else {
            assert!(
                proc.stdout().contains("demo organization present"),
                "{}",
                proc.stdout()
            );
        }

        proc.signal(Signal::SIGTERM);
        let status = proc.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "round {round}: exit {status}");
        assert!(
            !dir.path().join("postgres/postmaster.pid").exists(),
            "round {round}: cluster not stopped cleanly"
        );
        assert!(
            !postgres_running_in(dir.path()),
            "round {round}: postgres still running"
        );
    }
}

#[tokio::test]
async fn second_serve_on_same_data_dir_fails() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let env = server_env(Some(&db), dir.path());
    let mut first = Proc::spawn(&["serve"], &env);
    first.wait_serving(Duration::from_secs(30));
    let mut second = Proc::spawn(&["serve"], &env);
    let status = second.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let err = second.stderr.lock().unwrap().clone();
    assert!(
        err.contains("is in use by another LeadGen server")
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    // The first one is unaffected.
    first.signal(Signal::SIGTERM);
    let status = first.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status:?}: {}",
        first.stderr.lock().unwrap()
    );
    // And once it stopped, the folder is free again.
    let mut third = Proc::spawn(&["serve"], &env);
    third.wait_serving(Duration::from_secs(30));
    third.signal(Signal::SIGTERM);
    let status = third.wait_exit(Duration::from_secs(15));
    assert!(
        status.success(),
        "{status:?}: {}",
        third.stderr.lock().unwrap()
    );
}

#[test]
fn missing_postgres_programs_name_the_debian_package() {
    let dir = open_tempdir();
    let mut env = server_env(None, dir.path());
    env.push((
        "LEADGEN_DATABASE__POSTGRES_BIN_DIR".into(),
        "/nonexistent/postgresql/bin".into(),
    ));
    let (code, _, err) = crate::helpers::run_leadgen(&["serve"], &env);
    assert_ne!(code, 0);
    assert!(
        err.contains("apt-get install postgresql") && err.contains("/nonexistent/postgresql/bin"),
        "{err}"
    );
    // The lock was released: nothing stays behind that blocks the next start.
    let lock = std::fs::read_to_string(dir.path().join("leadgen.lock")).unwrap_or_default();
    assert!(lock.trim().is_empty(), "stale lock content: {lock}");
}

/// A stop sent while the server is still starting (embedded PostgreSQL, migrations) is a graceful
/// shutdown once it is up, not a kill that leaves the database cluster running.
#[tokio::test]
async fn sigterm_during_start_shuts_down_cleanly() {
    let dir = open_tempdir();
    let env = server_env(None, dir.path());
    let mut proc = Proc::spawn(&["serve"], &env);
    std::thread::sleep(Duration::from_millis(300));
    proc.signal(Signal::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(90));
    assert!(
        status.success(),
        "{status:?}: {}",
        proc.stderr.lock().unwrap()
    );
    assert!(!postgres_running_in(dir.path()), "the cluster was stopped");
    // And the folder serves again at once.
    let mut again = Proc::spawn(&["serve"], &env);
    again.wait_serving(Duration::from_secs(90));
    again.signal(Signal::SIGTERM);
    let status = again.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "{status:?}: {}",
        again.stderr.lock().unwrap()
    );
}

/// The embedded cluster's postmaster, from its pid file.
fn postmaster(dir: &std::path::Path) -> nix::unistd::Pid {
    let text = std::fs::read_to_string(dir.join("postgres/postmaster.pid")).unwrap();
    nix::unistd::Pid::from_raw(text.lines().next().unwrap().trim().parse().unwrap())
}

#[tokio::test]
async fn a_killed_embedded_cluster_is_restarted_and_requests_meanwhile_get_503() {
    let dir = open_tempdir();
    let mut env = server_env(None, dir.path());
    let limits = crate::helpers::generous_rate_limits(dir.path());
    env.push((
        "LEADGEN_PERIMETER__RATE_LIMITS_PATH".into(),
        limits.display().to_string(),
    ));
    env.push((
        "LEADGEN_AUTH__REQUIRE_EMAIL_CONFIRMATION".into(),
        "false".into(),
    ));
    let mut proc = Proc::spawn(&["serve"], &env);
    let (https, _) = proc.wait_serving(Duration::from_secs(90));
    let client = client_for(&dir.path().join("tls/dev-cert.pem"), https);
    let url = |p: &str| format!("https://localhost:{}{p}", https.port());
    let res = client
        .post(url("/auth/v1/signup"))
        .json(&serde_json::json!({ "email": "ops@outage.test", "password": crate::orgs::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Reading the account needs the database.
    let me = || client.get(url("/auth/v1/user")).bearer_auth(&token).send();
    assert_eq!(me().await.unwrap().status(), 200);

    // The cluster dies, and for a few seconds it cannot start again (its folder is unusable),
    // so the outage outlasts the pool's wait for a connection.
    let cluster = dir.path().join("postgres");
    std::fs::set_permissions(&cluster, std::fs::Permissions::from_mode(0o000)).unwrap();
    nix::sys::signal::kill(postmaster(dir.path()), Signal::SIGKILL).unwrap();
    // Until the cluster is back the server answers 503 with Retry-After, never 500; then it
    // serves again by itself, with nothing started by hand.
    let mut seen = Vec::new();
    let broken_until = std::time::Instant::now() + Duration::from_secs(8);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if std::time::Instant::now() > broken_until {
            std::fs::set_permissions(&cluster, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let res = me().await.unwrap();
        let status = res.status().as_u16();
        if status == 503 {
            assert_eq!(res.headers()["retry-after"], "5");
            if !seen.contains(&503) {
                // Readiness says so too, from the probe's verdict.
                let ready = client.get(url("/readyz")).send().await.unwrap();
                assert_eq!(ready.status(), 503);
                let body: serde_json::Value = ready.json().await.unwrap();
                assert_eq!(body["checks"]["database"], false, "{body}");
            }
        }
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        if status == 200 && seen.contains(&503) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!seen.contains(&500), "{seen:?}");
    let ready = client.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let out = proc.stdout();
    assert!(
        out.contains("restarting the embedded PostgreSQL cluster failed")
            && out.contains("the embedded PostgreSQL cluster is running again"),
        "{out}"
    );

    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(30)).success());
    assert!(!postgres_running_in(dir.path()));
}

#[tokio::test]
async fn a_cluster_that_cannot_be_restarted_stops_the_server_with_an_error() {
    let dir = open_tempdir();
    let env = server_env(None, dir.path());
    let mut proc = Proc::spawn(&["serve"], &env);
    proc.wait_serving(Duration::from_secs(90));
    // The cluster's folder becomes unusable, then the cluster dies.
    let cluster = dir.path().join("postgres");
    std::fs::set_permissions(&cluster, std::fs::Permissions::from_mode(0o000)).unwrap();
    nix::sys::signal::kill(postmaster(dir.path()), Signal::SIGKILL).unwrap();
    let status = proc.wait_exit(Duration::from_secs(90));
    std::fs::set_permissions(&cluster, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!status.success(), "a supervisor must see the failure");
    let said = format!("{}{}", proc.stdout(), proc.stderr.lock().unwrap());
    assert!(said.contains("could not be restarted"), "{said}");
}
