//! The three CRM exports in shared/data/import against their expected.json.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use leadgen_import::{Dialect, Field, Limits, Mapping, Reader, RowOutcome, Severity};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/import")
}

fn expected(file: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let all: Value = serde_json::from_reader(File::open(data_dir().join("expected.json"))?)?;
    all.get(file)
        .cloned()
        .ok_or_else(|| format!("{file} missing from expected.json").into())
}

fn header_of(mapping: &Mapping, field: Field) -> Result<String, String> {
    mapping
        .columns
        .iter()
        .position(|f| *f == Some(field))
        .map(|i| mapping.headers[i].clone())
        .ok_or_else(|| format!("no column mapped to {field}"))
}

fn line_list(value: &Value, key: &str) -> Result<Vec<(u64, Value)>, String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("expected.json has no {key}"))?
        .iter()
        .map(|entry| {
            let line = entry
                .get("line")
                .and_then(Value::as_u64)
                .or_else(|| entry.as_u64())
                .ok_or_else(|| format!("{key}: entry without line: {entry}"))?;
            Ok((line, entry.clone()))
        })
        .collect()
}

fn check(file: &str, dialect: Dialect) -> TestResult {
    let expected = expected(file)?;
    let (reader, mapping) = Reader::new(File::open(data_dir().join(file))?, Limits::default())?;
    assert_eq!(mapping.dialect, dialect, "{file}");
    mapping.validate()?;
    assert!(reader.header_issues().is_empty(), "{file}");

    let mut rows: BTreeMap<u64, RowOutcome> = BTreeMap::new();
    for outcome in reader {
        let outcome = outcome?;
        assert!(
            rows.insert(outcome.line, outcome.clone()).is_none(),
            "{file}: line {} twice",
            outcome.line
        );
    }
    let count = expected
        .get("rows")
        .and_then(Value::as_u64)
        .ok_or("no row count")?;
    assert_eq!(rows.len() as u64, count, "{file}");
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (2..2 + count).collect::<Vec<_>>()
    );

    let email_column = header_of(&mapping, Field::Email)?;
    let website_column = header_of(&mapping, Field::CompanyDomain)?;
    let employees_column = header_of(&mapping, Field::EmployeeRange)?;

    let faulty = line_list(&expected, "faulty_rows")?;
    for (line, entry) in &faulty {
        let row = rows
            .get(line)
            .ok_or(format!("{file}: no row at line {line}"))?;
        let fault = entry
            .get("fault")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let severity = entry
            .get("severity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let [issue] = row.issues.as_slice() else {
            return Err(format!("{file}:{line}: expected one issue, got {:?}", row.issues).into());
        };
        assert_eq!(issue.line, *line, "{file}");
        assert!(!issue.reason.is_empty(), "{file}:{line}");
        let want_column = match fault {
            "bad_email" => email_column.as_str(),
            "missing_email_and_name" => "",
            "bad_url" => website_column.as_str(),
            "bad_employees" => employees_column.as_str(),
            other => return Err(format!("{file}:{line}: unknown fault {other}").into()),
        };
        assert_eq!(issue.column, want_column, "{file}:{line}: {issue:?}");
        match severity {
            "reject" => {
                assert_eq!(issue.severity, Severity::Reject, "{file}:{line}");
                assert!(row.record.is_none(), "{file}:{line} was imported");
            }
            "warn" => {
                assert_eq!(issue.severity, Severity::Warn, "{file}:{line}");
                let record = row
                    .record
                    .as_ref()
                    .ok_or(format!("{file}:{line} was rejected"))?;
                match fault {
                    "bad_url" => assert_eq!(record.company_domain, None, "{file}:{line}"),
                    "bad_employees" => assert_eq!(record.employee_range, None, "{file}:{line}"),
                    _ => {}
                }
            }
            other => return Err(format!("{file}:{line}: unknown severity {other}").into()),
        }
    }
    for (line, row) in &rows {
        if faulty.iter().any(|(l, _)| l == line) {
            continue;
        }
        assert!(row.issues.is_empty(), "{file}:{line}: {:?}", row.issues);
        let record = row
            .record
            .as_ref()
            .ok_or(format!("{file}:{line} rejected"))?;
        // Every clean row in these files has an address, a company site and a headcount.
        assert!(record.email.is_some(), "{file}:{line}");
        assert!(record.company_domain.is_some(), "{file}:{line}");
        assert!(record.employee_range.is_some(), "{file}:{line}");
        assert_eq!(record.country.as_deref(), Some("US"), "{file}:{line}");
        assert!(
            record
                .phone
                .as_deref()
                .is_some_and(|p| p.starts_with("+1415555")),
            "{file}:{line}: {:?}",
            record.phone
        );
    }

    let opted_out: Vec<u64> = line_list(&expected, "opted_out_rows")?
        .into_iter()
        .map(|(line, _)| line)
        .collect();
    for (line, row) in &rows {
        let Some(record) = &row.record else { continue };
        assert_eq!(
            record.do_not_contact,
            opted_out.contains(line),
            "{file}:{line}: do_not_contact"
        );
    }

    for (line, entry) in line_list(&expected, "duplicate_rows")? {
        let same_as = entry
            .get("same_person_as_email")
            .and_then(Value::as_str)
            .ok_or("duplicate without email")?;
        let record = rows
            .get(&line)
            .and_then(|r| r.record.as_ref())
            .ok_or(format!("{file}:{line}: duplicate row not imported"))?;
        assert_eq!(
            record.email_key().as_deref(),
            Some(same_as),
            "{file}:{line}"
        );
        let original = rows.iter().find(|(other, r)| {
            **other != line
                && r.record.as_ref().and_then(|l| l.email_key()).as_deref() == Some(same_as)
        });
        assert!(original.is_some(), "{file}:{line}: no row with {same_as}");
    }
    Ok(())
}

#[test]
fn hubspot_export() -> TestResult {
    check("hubspot-contacts.csv", Dialect::HubSpot)
}

#[test]
fn apollo_export() -> TestResult {
    check("apollo-contacts.csv", Dialect::Apollo)
}

#[test]
fn salesforce_export() -> TestResult {
    check("salesforce-contacts.csv", Dialect::Salesforce)
}

#[test]
fn fixture_names_and_companies_survive_intact() -> TestResult {
    let (reader, _) = Reader::new(
        File::open(data_dir().join("hubspot-contacts.csv"))?,
        Limits::default(),
    )?;
    let rows: Vec<RowOutcome> = reader.collect::<Result<_, _>>()?;
    let first = rows[0].record.as_ref().ok_or("line 2 rejected")?;
    assert_eq!(first.first_name.as_deref(), Some("Björn"));
    assert_eq!(first.last_name.as_deref(), Some("Müller"));
    assert_eq!(first.company_name.as_deref(), Some("Umbrella \"Bio\" Labs"));
    assert_eq!(first.company_domain.as_deref(), Some("umbrella.example"));
    assert_eq!(first.external_id.as_deref(), Some("900000"));
    assert_eq!(first.status.as_deref(), Some("NEW"));
    assert_eq!(first.seniority, Some(leadgen_import::Seniority::Manager));
    Ok(())
}
