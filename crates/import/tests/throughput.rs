//! Parsing speed on generated rows; run with
//! `cargo test --release -p leadgen-import --test throughput -- --ignored --nocapture`.

use std::time::Instant;

use leadgen_import::{Limits, Reader};

const ROWS: usize = 200_000;

fn generate() -> Vec<u8> {
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

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn throughput() -> Result<(), Box<dyn std::error::Error>> {
    let input = generate();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let (reader, mapping) = Reader::new(input.as_slice(), Limits::default())?;
        mapping.validate()?;
        let mut imported = 0usize;
        for outcome in reader {
            let outcome = outcome?;
            assert!(outcome.issues.is_empty(), "{:?}", outcome.issues);
            imported += usize::from(outcome.record.is_some());
        }
        assert_eq!(imported, ROWS);
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "throughput: {ROWS} rows ({} MB) in {best:.3} s = {:.0} rows/s",
        input.len() / 1_000_000,
        ROWS as f64 / best
    );
    Ok(())
}
