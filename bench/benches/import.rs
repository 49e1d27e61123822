//! Lead import, the CPU side: parsing and normalising Apollo-style CSV rows, and sealing a lead's
//! contact fields (AES-256-GCM for email and phone, HMAC blind index of the email).
//!
//! `cargo bench -p leadgen-bench --bench import`

#![allow(clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadgen_crypto::field::{BlindIndexKey, DataKey, KeyRing, Place};
use leadgen_import::{Limits, Reader};

const ROWS: usize = 20_000;

fn apollo_rows() -> Vec<u8> {
    let mut csv = String::from(
        "First Name,Last Name,Title,Company,Email,Email Status,Seniority,Work Direct Phone,# Employees,Industry,Person Linkedin Url,Website,City,State,Country,Apollo Contact Id\n",
    );
    let companies = [
        "\"Globex, Inc.\"",
        "\"Umbrella \"\"Bio\"\" Labs\"",
        "Initech",
        "Acme Corp",
    ];
    let titles = [
        "VP Sales",
        "\"Director, IT\"",
        "Head of R&D",
        "Marketing Manager",
        "CTO",
    ];
    for i in 0..ROWS {
        let email = if i % 7 == 0 {
            format!(" JOS.Kowal{i}@Stark.example ")
        } else {
            format!("chl.nunez{i}@initech.example")
        };
        csv.push_str(&format!(
            "Chloé,Núñez,{},{},{email},Verified,VP,+1 415 555 {:04},51-200,Computer Software,https://www.linkedin.com/in/p{i},https://www.initech.example,San Francisco,CA,United States,ap{i:06}\n",
            titles[i % titles.len()],
            companies[i % companies.len()],
            i % 10_000,
        ));
    }
    csv.into_bytes()
}

/// Reads every row of `input`, checking each of the `ROWS` leads came out.
fn parse_all<R: std::io::Read>(input: R) -> usize {
    let (reader, _) = Reader::new(input, Limits::default()).unwrap();
    let mut n = 0usize;
    for o in reader {
        n += usize::from(o.unwrap().record.is_some());
    }
    assert_eq!(n, ROWS);
    n
}

fn parse(c: &mut Criterion) {
    let input = apollo_rows();
    let mut g = c.benchmark_group("import");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("parse_and_normalise_apollo_rows", |b| {
        b.iter(|| black_box(parse_all(input.as_slice())));
    });
    g.finish();
}

/// The same rows as a spreadsheet saves them on Windows: Windows-1252 (every character of the
/// rows is below U+0100, where Windows-1252 and Latin-1 agree with Unicode, except 0x80–0x9F).
fn windows_1252(utf8: &[u8]) -> Vec<u8> {
    std::str::from_utf8(utf8)
        .unwrap()
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

fn encodings(c: &mut Criterion) {
    use leadgen_import::{Decoded, detect_encoding};
    use std::io::Cursor;
    let utf8 = apollo_rows();
    let legacy = windows_1252(&utf8);
    let mut g = c.benchmark_group("import_encoding");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("detect_utf8_apollo_rows", |b| {
        b.iter(|| {
            let e = detect_encoding(&mut Cursor::new(utf8.as_slice())).unwrap();
            assert_eq!(e.name(), "UTF-8");
            black_box(e)
        });
    });
    g.bench_function("detect_windows_1252_rows", |b| {
        b.iter(|| {
            let e = detect_encoding(&mut Cursor::new(legacy.as_slice())).unwrap();
            assert_eq!(e.name(), "windows-1252");
            black_box(e)
        });
    });
    g.bench_function("detect_decode_and_parse_windows_1252_rows", |b| {
        b.iter(|| {
            let e = detect_encoding(&mut Cursor::new(legacy.as_slice())).unwrap();
            assert_eq!(e.name(), "windows-1252");
            black_box(parse_all(Decoded::new(legacy.as_slice(), e)))
        });
    });
    g.finish();
}

fn seal(c: &mut Criterion) {
    let ring = KeyRing::new(DataKey::generate(1), Vec::new());
    let blind = BlindIndexKey::generate();
    let org = [7u8; 16];
    let mut g = c.benchmark_group("field_encryption");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal_lead_contact_fields", |b| {
        let mut row = 0u128;
        b.iter(|| {
            row += 1;
            let place = |column| Place {
                table: "leads",
                column,
                org,
                row: row.to_be_bytes(),
            };
            let email = "chl.nunez4711@initech.example";
            black_box((
                ring.encrypt(email.as_bytes(), &place("email")),
                ring.encrypt(b"+14155550100", &place("phone")),
                blind.email(org, email),
            ))
        });
    });
    g.finish();
}

criterion_group!(benches, parse, encodings, seal);
criterion_main!(benches);
