//! WAF request inspection: the per-request cost the edge pays before any handler runs, on a
//! typical benign JSON lead create, a benign search query string, and a SQL injection attempt.
//!
//! `cargo bench -p leadgen-bench --bench waf`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use leadgen_waf::{Action, AttackProtection, Engine, Request};

const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn inspect(c: &mut Criterion) {
    let engine = Engine::new(AttackProtection::default()).unwrap();
    let headers = [
        ("Host", "leadgen.example"),
        ("User-Agent", UA),
        ("Accept", "application/json"),
        ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"),
        ("Referer", "https://app.leadgen.example/leads?view=all"),
        ("Cookie", "lg_session=0193a1b2c3d4; theme=dark"),
    ];
    let lead = br#"{"first_name": "Fatima", "last_name": "O'Brien", "company": "AT&T", "title": "Head of R&D", "email": "fatima.obrien+2@example.co.uk", "website": "https://att.example.com/?utm_source=linkedin&utm_medium=cpc", "notes": "Met at SaaStr; follow up re: pricing -- wants 10% off?", "tags": ["q4", "inbound"]}"#;
    let create = Request {
        method: "POST",
        path: "/api/v1/leads",
        query: None,
        headers: &headers,
        content_type: Some("application/json"),
        body: lead,
    };
    assert_eq!(engine.inspect(&create).action, Action::Allow);
    let search = Request {
        method: "GET",
        path: "/api/v1/leads",
        query: Some(
            "q=company%3AAT%26T&title=VP%2C+Sales+%26+Marketing&limit=50&after=7eed8d14f06d3fef",
        ),
        headers: &headers,
        content_type: None,
        body: b"",
    };
    assert_eq!(engine.inspect(&search).action, Action::Allow);
    let attack = Request {
        query: Some(
            "q=-1%27%20union%20select%201%2Cconcat(user()%2C0x3a%2Cversion())%2C3--%20&limit=50",
        ),
        ..search
    };
    assert_eq!(engine.inspect(&attack).action, Action::Block);

    let mut g = c.benchmark_group("waf inspect");
    g.bench_function("benign JSON lead create", |b| {
        b.iter(|| engine.inspect(black_box(&create)).action)
    });
    g.bench_function("benign search query", |b| {
        b.iter(|| engine.inspect(black_box(&search)).action)
    });
    g.bench_function("SQL injection query", |b| {
        b.iter(|| engine.inspect(black_box(&attack)).action)
    });
    g.finish();
}

criterion_group!(benches, inspect);
criterion_main!(benches);
