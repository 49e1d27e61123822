//! Authentication primitives: bcrypt at the configurable costs, access-token signing and
//! verification, and the log redactor on a typical access-log line.
//!
//! `cargo bench -p leadgen-bench --bench auth`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use leadgen_crypto::jwt::{self, Key, KeyRing, Validation};
use leadgen_crypto::{password, redact};

fn bcrypt(c: &mut Criterion) {
    let mut g = c.benchmark_group("bcrypt");
    g.sample_size(10);
    for cost in [10u32, 12] {
        g.bench_function(format!("hash cost {cost}"), |b| {
            b.iter(|| password::hash(black_box("amber walrus sings quietly 42"), cost).unwrap());
        });
    }
    let h = password::hash("amber walrus sings quietly 42", 12).unwrap();
    g.bench_function("verify cost 12", |b| {
        b.iter(|| password::verify(black_box("amber walrus sings quietly 42"), &h))
    });
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let ring = KeyRing::new(vec![Key::new(&[7u8; 32]).unwrap()]).unwrap();
    let v = Validation {
        algorithms: vec![jwt::HS256.into()],
        issuer: "https://localhost:8443/auth/v1".into(),
        audience: "authenticated".into(),
        max_lifetime_secs: 3600,
        leeway_secs: 5,
    };
    let now = 1_800_000_000;
    let claims = serde_json::json!({
        "iss": v.issuer, "aud": "authenticated", "sub": "0193a1b2-0000-7000-8000-000000000001",
        "exp": now + 900, "iat": now, "email": "jane.doe@acme.io", "role": "authenticated",
        "aal": "aal1", "amr": [{"method": "password", "timestamp": now}],
        "session_id": "0193a1b2-0000-7000-8000-000000000002", "org_id": null, "is_anonymous": false,
    });
    let token = jwt::sign(&ring, &claims).unwrap();
    c.bench_function("jwt sign HS256", |b| {
        b.iter(|| jwt::sign(&ring, black_box(&claims)).unwrap())
    });
    c.bench_function("jwt verify HS256", |b| {
        b.iter(|| jwt::verify::<serde_json::Value>(&ring, black_box(&token), &v, now).unwrap());
    });
}

fn redaction(c: &mut Criterion) {
    let line = r#"{"timestamp":"2026-11-25T16:13:06.372221Z","level":"INFO","message":"request","method":"GET","route":"/healthz","status":200,"latency_ms":0.17,"request_id":"01a21355-8e29-7474-af4e-33335fb4c7a1","principal":"","target":"leadgen::access"}"#;
    c.bench_function("redact clean access line", |b| {
        b.iter(|| redact::redact(black_box(line)).len())
    });
}

criterion_group!(benches, bcrypt, tokens, redaction);
criterion_main!(benches);
