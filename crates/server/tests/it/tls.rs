//! TLS: 1.2 and 1.3 only, AEAD suites only, minimum configurable to 1.3.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, tls_connect, tls_connect_with};

/// A minimal ClientHello record: `version` as the legacy version, the given cipher suites, and
/// the extensions a TLS 1.2 ECDHE handshake needs. No supported_versions extension, so the
/// server must judge the offer by `version` alone.
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut push_ext = |id: u16, body: &[u8]| {
        ext.extend_from_slice(&id.to_be_bytes());
        ext.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        ext.extend_from_slice(body);
    };
    // server_name: localhost
    let host = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&u16::try_from(host.len() + 3).unwrap().to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&u16::try_from(host.len()).unwrap().to_be_bytes());
    sni.extend_from_slice(host);
    push_ext(0x0000, &sni);
    push_ext(0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]); // groups: x25519, secp256r1
    push_ext(0x000b, &[0x01, 0x00]); // ec_point_formats: uncompressed
    push_ext(0x000d, &[0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature algorithms
    push_ext(0xff01, &[0x00]); // renegotiation_info

    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&u16::try_from(suites.len() * 2).unwrap().to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);

    let mut hs = vec![1u8]; // ClientHello
    hs.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Sends a ClientHello and returns the first record header the server answers with.
async fn first_record(app: &TestApp, hello: &[u8]) -> [u8; 5] {
    let mut s = TcpStream::connect(app.bound.https).await.unwrap();
    s.write_all(hello).await.unwrap();
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await.unwrap();
    if header[0] == 0x15 {
        let mut alert = [0u8; 2];
        s.read_exact(&mut alert).await.unwrap();
        // Return level and description in the last two bytes for the caller to check.
        header[3] = alert[0];
        header[4] = alert[1];
    }
    header
}

const ECDHE_ECDSA_AES128_GCM: u16 = 0xc02b;
const ECDHE_ECDSA_AES128_CBC_SHA: u16 = 0xc009;
const ECDHE_RSA_AES128_CBC_SHA: u16 = 0xc013;
const RSA_AES128_CBC_SHA: u16 = 0x002f;
const RSA_3DES_EDE_CBC_SHA: u16 = 0x000a;

#[tokio::test]
async fn tls_1_1_client_hello_is_refused() {
    let app = TestApp::spawn().await;
    // The same hello at TLS 1.2 gets a ServerHello, so the refusal below is about the version.
    let ok = first_record(&app, &client_hello(0x0303, &[ECDHE_ECDSA_AES128_GCM])).await;
    assert_eq!(
        ok[0], 0x16,
        "a valid TLS 1.2 hello should get a handshake record"
    );
    for version in [0x0302u16, 0x0301] {
        let r = first_record(
            &app,
            &client_hello(
                version,
                &[ECDHE_ECDSA_AES128_GCM, ECDHE_ECDSA_AES128_CBC_SHA],
            ),
        )
        .await;
        assert_eq!(
            r[0], 0x15,
            "TLS version {version:#06x} must be answered with an alert, got {r:?}"
        );
        assert_eq!(r[3], 2, "the alert must be fatal");
        assert_eq!(
            r[4], 70,
            "protocol_version alert expected for {version:#06x}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn cbc_only_client_hello_is_refused() {
    let app = TestApp::spawn().await;
    let r = first_record(
        &app,
        &client_hello(
            0x0303,
            &[
                ECDHE_ECDSA_AES128_CBC_SHA,
                ECDHE_RSA_AES128_CBC_SHA,
                RSA_AES128_CBC_SHA,
                RSA_3DES_EDE_CBC_SHA,
            ],
        ),
    )
    .await;
    assert_eq!(
        r[0], 0x15,
        "a client offering only non-AEAD suites must get an alert, got {r:?}"
    );
    assert_eq!(r[4], 40, "handshake_failure expected");
    app.stop().await;
}

async fn handshake(
    app: &TestApp,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<(rustls::ProtocolVersion, rustls::SupportedCipherSuite), std::io::Error> {
    let mut tls = tls_connect(&app.cert_path(), app.bound.https, versions).await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "healthz over TLS: {text}");
    let (_, conn) = tls.get_ref();
    Ok((
        conn.protocol_version().unwrap(),
        conn.negotiated_cipher_suite().unwrap(),
    ))
}

#[tokio::test]
async fn tls_1_2_and_1_3_handshakes_succeed() {
    let app = TestApp::spawn().await;
    let (v, suite) = handshake(&app, &[&rustls::version::TLS12]).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_2);
    let name = format!("{:?}", suite.suite());
    assert!(
        name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
        "non-AEAD suite {name}"
    );
    let (v, _) = handshake(&app, &[&rustls::version::TLS13]).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    // Offered both, the server prefers 1.3.
    let (v, _) = handshake(&app, &[&rustls::version::TLS12, &rustls::version::TLS13])
        .await
        .unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    app.stop().await;
}

#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2() {
    let app = TestApp::spawn_with(&[("LEADGEN_TLS__MIN_VERSION", "1.3")]).await;
    let err = handshake(&app, &[&rustls::version::TLS12])
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("protocol") || err.to_string().contains("alert"),
        "{err}"
    );
    let (v, _) = handshake(&app, &[&rustls::version::TLS13]).await.unwrap();
    assert_eq!(v, rustls::ProtocolVersion::TLSv1_3);
    app.stop().await;
}

/// The leaf certificate the server presents, trusting any of `trusted`.
async fn served_leaf(app: &TestApp, trusted: &[&rcgen::CertifiedKey<rcgen::KeyPair>]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.cert.der().clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tls_connect_with(Arc::new(config), app.bound.https)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn configured_certificate_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write = |c: &rcgen::CertifiedKey<rcgen::KeyPair>| {
        std::fs::write(&key_path, c.signing_key.serialize_pem()).unwrap();
        std::fs::write(&cert_path, c.cert.pem()).unwrap();
    };
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    write(&a);
    let (cp, kp) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let app = TestApp::spawn_with(&[
        ("LEADGEN_TLS__CERT_PATH", cp.as_str()),
        ("LEADGEN_TLS__KEY_PATH", kp.as_str()),
        ("LEADGEN_TLS__RELOAD_INTERVAL_SECS", "1"),
    ])
    .await;
    assert_eq!(served_leaf(&app, &[&a, &b]).await, a.cert.der().to_vec());

    // A broken file is not taken: the old certificate keeps serving.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        served_leaf(&app, &[&a, &b]).await,
        a.cert.der().to_vec(),
        "a broken pair must not replace a good one"
    );

    // A new valid pair is picked up without a restart.
    write(&b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if served_leaf(&app, &[&a, &b]).await == b.cert.der().to_vec() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
}
