//! WAF request inspection: the per-request cost the edge pays before any handler runs, on a
//! typical benign JSON lead create, a benign search query string, a SQL injection attempt, and
//! every request of the benign LeadGen traffic corpus (`../shared/data/waf/benign-b2b.jsonl`)
//! with the shipped `config/waf-rules.json`.
//!
//! `cargo bench -p leadgen-bench --bench waf`
//!
//! Before criterion runs, the corpus distribution is printed twice, for the requests as the
//! corpus defines them and with a browser's User-Agent, Referer and Cookie added: each request is
//! inspected 200 times and its mean is one sample; the median and p99 are over the 2,000 requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use std::path::Path;
use std::time::Instant;

use leadgen_waf::eval::{Corpus, attack_protection_of};
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

fn shipped_engine() -> Engine {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rules = std::fs::read_to_string(root.join("config/waf-rules.json")).unwrap();
    let ap = AttackProtection::from_json(&attack_protection_of(&rules).unwrap()).unwrap();
    Engine::new(ap).unwrap()
}

fn benign_corpus(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/waf");
    let corpus = Corpus::load(&dir).expect("the evaluation corpus (../shared/data/waf)");
    let engine = shipped_engine();
    let requests: Vec<_> = corpus.b2b.iter().map(|c| &c.request).collect();
    for r in &requests {
        assert_eq!(r.inspect(&engine).action, Action::Allow, "{r:?}");
    }

    // Per-request distribution (criterion reports means, not percentiles across inputs): first
    // each request as the corpus defines it (method, URI, content type, body), then with the
    // User-Agent, Referer and Cookie a browser adds, which the evaluation harness attaches to
    // check that headers raise no false positives either.
    let bare: Vec<_> = requests
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            r.headers.clear();
            r
        })
        .collect();
    distribution("as defined", bare.iter(), &engine);
    distribution("with browser headers", requests.iter().copied(), &engine);

    let mut g = c.benchmark_group("waf benign-b2b corpus");
    g.throughput(criterion::Throughput::Elements(requests.len() as u64));
    g.bench_function("all 2,000 requests", |b| {
        b.iter(|| {
            for r in &requests {
                black_box(r.inspect(black_box(&engine)).action);
            }
        })
    });
    g.finish();
}

/// Inspects each request `ROUNDS` times and prints the median, p90, p99 and max of the per-request
/// means.
fn distribution<'a>(
    label: &str,
    requests: impl Iterator<Item = &'a leadgen_waf::eval::OwnedRequest>,
    engine: &Engine,
) {
    const ROUNDS: u32 = 200;
    let mut per_request: Vec<f64> = requests
        .map(|r| {
            let t = Instant::now();
            for _ in 0..ROUNDS {
                black_box(r.inspect(black_box(engine)).action);
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
        })
        .collect();
    per_request.sort_by(f64::total_cmp);
    let at = |p: f64| per_request[((p / 100.0) * (per_request.len() - 1) as f64).round() as usize];
    println!(
        "benign-b2b {label} ({} requests, shipped rules): per request median {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.2} µs",
        per_request.len(),
        at(50.0),
        at(90.0),
        at(99.0),
        at(100.0)
    );
}

criterion_group!(benches, inspect, benign_corpus);
criterion_main!(benches);
