//! Configuration errors name the key and the reason, and production refuses unsafe settings.

use crate::helpers::run_leadgen;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn unknown_key_is_rejected_with_its_path() {
    let (code, _, err) = run_leadgen(
        &["configtest"],
        &env(&[("LEADGEN_SERVER__HTTPS_PROT", "9443")]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("server.https_prot")
            && err.contains("unknown key")
            && err.contains("LEADGEN_SERVER__HTTPS_PROT"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leadgen.toml");
    std::fs::write(&file, "[tls]\nmin_versoin = \"1.3\"\n").unwrap();
    let (code, _, err) = run_leadgen(&["configtest", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tls.min_versoin") && err.contains("unknown key"),
        "{err}"
    );

    let envfile = dir.path().join("leadgen.env");
    std::fs::write(
        &envfile,
        "# comment\nLEADGEN_TELEMETRY__LOG_FILTER=debug\nLEADGEN_DATABSE__URL=x\n",
    )
    .unwrap();
    let (code, _, err) = run_leadgen(
        &["configtest", "--env-file", envfile.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("databse.url") && err.contains("leadgen.env"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_rejected_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leadgen.toml");
    std::fs::write(&file, "[server]\nhttps_port = \"high\"\n").unwrap();
    let (code, out, err) = run_leadgen(
        &["configtest", "--json", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 2, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["key"], "server.https_port");
    assert!(v["error"].as_str().unwrap().contains("invalid type"), "{v}");

    let (code, _, err) = run_leadgen(
        &["configtest"],
        &env(&[("LEADGEN_SERVER__MAX_BODY_BYTES", "lots")]),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("server.max_body_bytes") && err.contains("expected an integer"),
        "{err}"
    );

    let (code, _, err) = run_leadgen(
        &["configtest"],
        &env(&[("LEADGEN_TLS__MIN_VERSION", "1.1")]),
    );
    assert_eq!(code, 2);
    assert!(err.contains("tls.min_version"), "{err}");
}

#[test]
fn production_refuses_missing_secret() {
    let (code, _, err) = run_leadgen(&["configtest"], &env(&[("LEADGEN_PROFILE", "production")]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("secrets.app_key") && err.contains("required in production"),
        "{err}"
    );

    // A development key is refused too, and the key itself never appears in the message.
    let dev_key = format!("dev-{}", "ab".repeat(32));
    let (code, out, err) = run_leadgen(
        &["configtest"],
        &env(&[
            ("LEADGEN_PROFILE", "production"),
            ("LEADGEN_SECRETS__APP_KEY", &dev_key),
        ]),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("secrets.app_key") && err.contains("development key"),
        "{err}"
    );
    assert!(
        !err.contains(&dev_key) && !out.contains(&dev_key),
        "the secret leaked into output"
    );

    // The master key that wraps the lead-field keys is required too, and must be 32 bytes; its
    // value never appears in the message.
    let key = "k".repeat(48);
    let (code, _, err) = run_leadgen(
        &["configtest"],
        &env(&[
            ("LEADGEN_PROFILE", "production"),
            ("LEADGEN_SECRETS__APP_KEY", &key),
        ]),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("secrets.master_key") && err.contains("required in production"),
        "{err}"
    );
    let short = "cd".repeat(31);
    let (code, out, err) = run_leadgen(
        &["configtest"],
        &env(&[("LEADGEN_SECRETS__MASTER_KEY", &short)]),
    );
    assert_eq!(code, 2);
    assert!(err.contains("secrets.master_key"), "{err}");
    assert!(
        !err.contains(&short) && !out.contains(&short),
        "the secret leaked into output"
    );

    // `serve` refuses before touching anything.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_leadgen(
        &["serve", "--data-dir", dir.path().to_str().unwrap()],
        &env(&[("LEADGEN_PROFILE", "production")]),
    );
    assert_ne!(code, 0);
    assert!(err.contains("secrets.app_key"), "{err}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing may be written before the configuration is valid"
    );
}

#[test]
fn production_refuses_plain_http_and_self_signed() {
    let key = "k".repeat(48);
    let master = "ab".repeat(32);
    let base = [
        ("LEADGEN_PROFILE", "production"),
        ("LEADGEN_SECRETS__APP_KEY", key.as_str()),
        ("LEADGEN_SECRETS__MASTER_KEY", master.as_str()),
    ];
    let (code, _, err) = run_leadgen(&["configtest"], &env(&base));
    assert_eq!(code, 2);
    assert!(
        err.contains("tls.cert_path") && err.contains("required in production"),
        "{err}"
    );

    // A self-signed certificate (the development one) is refused.
    let dir = tempfile::tempdir().unwrap();
    let dev = leadgen::tls::dev_certificate(dir.path()).unwrap();
    let mut with_cert = base.to_vec();
    let cert = dev.cert.display().to_string();
    let keyp = dev.key.display().to_string();
    with_cert.push(("LEADGEN_TLS__CERT_PATH", &cert));
    with_cert.push(("LEADGEN_TLS__KEY_PATH", &keyp));
    let (code, _, err) = run_leadgen(&["configtest"], &env(&with_cert));
    assert_eq!(code, 2);
    assert!(err.contains("self-signed"), "{err}");

    let mut serve_plain = with_cert.clone();
    serve_plain.push(("LEADGEN_SERVER__PLAIN_HTTP", "serve"));
    let (code, _, err) = run_leadgen(&["configtest"], &env(&serve_plain));
    assert_eq!(code, 2);
    assert!(err.contains("server.plain_http"), "{err}");

    // The same settings are fine in development.
    let (code, out, err) = run_leadgen(
        &["configtest"],
        &env(&[("LEADGEN_SERVER__PLAIN_HTTP", "serve")]),
    );
    assert_eq!(code, 0, "{out}{err}");
}
