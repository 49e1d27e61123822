//! DKIM signatures checked by an independent verifier, Python's `dkimpy`, for RSA-2048 and
//! Ed25519 keys: a signer that only agrees with its own verifier proves nothing.
//!
//! Needs `python3` with `dkimpy` and `pynacl` (`pip install dkimpy pynacl`; the test suite's
//! script installs them); `LEADGEN_DKIM_PYTHON` may name another interpreter. Missing tools fail
//! the test rather than skipping it, so a green run always means the signatures verified.

// A failing test should panic loudly; the helpers here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use leadgen_mail::dkim::{Algorithm, DkimKey, Signer, generate_ed25519};
use leadgen_mail::message::{ListUnsubscribe, Outgoing, build};

const DOMAIN: &str = "mail.example.com";
const SELECTOR: &str = "lg2024";

const VERIFY: &str = r#"
import base64, sys, dkim
msg = base64.b64decode(sys.argv[1])
record = base64.b64decode(sys.argv[2])
expected = sys.argv[3].encode()
def dnsfunc(name, timeout=5):
    if name.rstrip(b".").lower() == expected:
        return record
    return None
print("pass" if dkim.verify(msg, dnsfunc=dnsfunc) else "fail")
"#;

fn python() -> String {
    std::env::var("LEADGEN_DKIM_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether dkimpy accepts `message` with `record` published for our selector.
fn dkimpy_verifies(message: &[u8], record: &str) -> bool {
    let python = python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(VERIFY)
        .arg(B64.encode(message))
        .arg(B64.encode(record))
        .arg(format!("{SELECTOR}._domainkey.{DOMAIN}"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): install Python 3, then `pip install dkimpy pynacl`")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dkimpy failed to run; install it with `pip install dkimpy pynacl`.\n{stderr}"
    );
    match String::from_utf8_lossy(&out.stdout).trim() {
        "pass" => true,
        "fail" => false,
        other => panic!("unexpected verifier output {other:?}\n{stderr}"),
    }
}

/// An RSA-2048 key made the way the server makes them.
fn rsa_key_pem() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "leadgen-dkim-test-{}-{}.pem",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}); it is needed to make the RSA test key")
        });
    assert!(status.status.success(), "openssl genpkey failed");
    let pem = std::fs::read_to_string(&path).expect("read the generated key");
    let _ = std::fs::remove_file(&path);
    pem
}

fn messages() -> Vec<Vec<u8>> {
    let mut list: Vec<Vec<u8>> = vec![
        // Folded headers, odd spacing and case, and trailing blank lines in the body.
        b"From:  \"Ada Lovelace\"\r\n  <ada@mail.example.com>\r\nTO: bob@example.org\r\n\
          Subject: A rather long subject line that was folded\r\n\tacross two lines   \r\n\
          Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <abc.123@mail.example.com>\r\n\
          X-Unsigned: whatever\r\n\r\nHello  Bob,\t \r\n\r\n  indented line\r\n\r\n\r\n\r\n"
            .to_vec(),
        // A non-ASCII subject as encoded words, and a body without a final line break.
        b"From: =?UTF-8?B?w4lsb8Ovc2U=?= <eloise@mail.example.com>\r\nTo: <bob@example.org>\r\n\
          Subject: =?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=\r\n =?UTF-8?B?4pyTIGRvbmU=?=\r\n\
          Reply-To: sales@mail.example.com\r\n\r\nNo final newline"
            .to_vec(),
        // An empty body.
        b"From: a@mail.example.com\r\nSubject: empty\r\n\r\n".to_vec(),
    ];
    let html = "<p>Hi Bob,</p>\n<p>Caf\u{e9} &amp; cr\u{e8}me for <b>Acme</b>.</p>\n".repeat(40);
    let text = "Hi Bob,\n\nCaf\u{e9} & cr\u{e8}me for Acme.   \n\n\n".repeat(40);
    let built = build(&Outgoing {
        from_name: Some("\u{c9}lo\u{ef}se from Acme"),
        from_address: "eloise@mail.example.com",
        to: "bob@example.org",
        reply_to: Some("sales@mail.example.com"),
        subject: "Caf\u{e9} cr\u{e8}me \u{2014} a quick question about your very long pipeline of leads",
        message_id: "0190a1b2-c3d4.e5f6@mail.example.com",
        date: 1_700_000_000,
        text: &text,
        html: Some(&html),
        list_unsubscribe: Some(ListUnsubscribe {
            https: "https://mail.example.com/u/abc",
            mailto: "unsubscribe+abc@mail.example.com",
        }),
        extra_headers: &[("X-Campaign", "42")],
    })
    .expect("build a campaign message");
    list.push(built);
    list
}

fn check(key_pem: &str, algorithm: Algorithm) {
    let key = DkimKey::from_pkcs8_pem(key_pem).expect("load key");
    assert_eq!(key.algorithm(), algorithm);
    let record = key.dns_record();
    let signer = Signer::new(DOMAIN, SELECTOR, key).expect("signer");
    for message in messages() {
        let header = signer.sign(&message, 1_700_000_000).expect("sign");
        let mut signed = header.into_bytes();
        signed.extend_from_slice(&message);
        let shown = String::from_utf8_lossy(&signed).into_owned();
        assert!(
            dkimpy_verifies(&signed, &record),
            "dkimpy rejected:\n{shown}"
        );

        // Relaxed canonicalization tolerates whitespace changes...
        let respaced = shown.replacen("Subject: ", "Subject:    ", 1);
        assert!(
            dkimpy_verifies(respaced.as_bytes(), &record),
            "respaced: {respaced}"
        );
        // ...but not a changed word in a signed header or in the body.
        let tampered = shown.replacen("From: ", "From: x", 1);
        assert!(
            !dkimpy_verifies(tampered.as_bytes(), &record),
            "tampered header passed"
        );
        let mut tampered = signed.clone();
        tampered.extend_from_slice(b"P.S. added by someone else\r\n");
        assert!(!dkimpy_verifies(&tampered, &record), "tampered body passed");
    }
}

#[test]
fn rsa_2048_signatures_verify_with_dkimpy() {
    check(&rsa_key_pem(), Algorithm::RsaSha256);
}

#[test]
fn ed25519_signatures_verify_with_dkimpy() {
    check(
        &generate_ed25519().expect("generate"),
        Algorithm::Ed25519Sha256,
    );
}

#[test]
fn pkcs1_rsa_keys_load() {
    let pkcs8 = rsa_key_pem();
    let out = Command::new("openssl")
        .args(["pkey", "-traditional"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(pkcs8.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run openssl pkey");
    let pkcs1 = String::from_utf8(out.stdout).expect("PEM");
    assert!(
        pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{pkcs1}"
    );
    let a = DkimKey::from_pkcs8_pem(&pkcs8).expect("PKCS#8");
    let b = DkimKey::from_pkcs8_pem(&pkcs1).expect("PKCS#1");
    assert_eq!(a.dns_record(), b.dns_record());

    // The published key is the SubjectPublicKeyInfo openssl derives from the same key.
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(pkcs8.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run openssl pkey -pubout");
    assert_eq!(
        a.dns_record(),
        format!("v=DKIM1; k=rsa; p={}", B64.encode(&out.stdout))
    );
}

#[test]
fn small_rsa_keys_are_refused() {
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ])
        .output()
        .expect("run openssl");
    let pem = String::from_utf8(out.stdout).expect("PEM");
    assert!(DkimKey::from_pkcs8_pem(&pem).is_err());
}
