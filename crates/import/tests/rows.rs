//! Reading behaviour through the public API: framing, line numbers, encodings, limits and
//! row-level validation.

use std::io::{self, Read};

use leadgen_import::{
    Dialect, EmployeeRange, Field, ImportError, Issue, LeadRecord, Limits, MappingError, Reader,
    RowOutcome, Seniority, Severity, preview,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn read_all(input: &[u8]) -> Result<Vec<RowOutcome>, ImportError> {
    read_all_with(input, Limits::default())
}

fn read_all_with(input: &[u8], limits: Limits) -> Result<Vec<RowOutcome>, ImportError> {
    let (reader, _) = Reader::new(input, limits)?;
    reader.collect()
}

fn record(outcome: &RowOutcome) -> Result<&LeadRecord, String> {
    outcome
        .record
        .as_ref()
        .ok_or_else(|| format!("line {} was rejected: {:?}", outcome.line, outcome.issues))
}

fn only_issue(outcome: &RowOutcome) -> Result<&Issue, String> {
    match outcome.issues.as_slice() {
        [issue] => Ok(issue),
        other => Err(format!(
            "line {}: expected one issue, got {other:?}",
            outcome.line
        )),
    }
}

#[test]
fn quoted_fields_with_commas_quotes_and_newlines_keep_the_starting_line() -> TestResult {
    let csv = "Email,Company,Notes\n\
               a@acme.example,\"Globex, Inc.\",plain\n\
               b@acme.example,\"Umbrella \"\"Bio\"\" Labs\",\"first line\nsecond line\n\nfourth, with comma\"\n\
               c@acme.example,Initech,after\n";
    let rows = read_all(csv.as_bytes())?;
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 7]
    );
    assert_eq!(
        record(&rows[0])?.company_name.as_deref(),
        Some("Globex, Inc.")
    );
    let second = record(&rows[1])?;
    assert_eq!(
        second.company_name.as_deref(),
        Some("Umbrella \"Bio\" Labs")
    );
    assert_eq!(
        second.notes.as_deref(),
        Some("first line\nsecond line\n\nfourth, with comma")
    );
    assert_eq!(record(&rows[2])?.email.as_deref(), Some("c@acme.example"));
    assert!(rows.iter().all(|r| r.issues.is_empty()));
    Ok(())
}

#[test]
fn line_numbers_count_blank_lines_and_multi_line_records() -> TestResult {
    let csv = "Email,Notes\n\na@x.example,\"1\n2\"\n\n\nbad,\n";
    let rows = read_all(csv.as_bytes())?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].line, 3);
    assert_eq!(rows[1].line, 7);
    assert_eq!(only_issue(&rows[1])?.line, 7);
    Ok(())
}

#[test]
fn bom_is_stripped_from_the_first_header() -> TestResult {
    let csv = b"\xEF\xBB\xBFEmail,First Name\na@x.example,Ana\n";
    let (mut reader, mapping) = Reader::new(&csv[..], Limits::default())?;
    assert_eq!(mapping.headers[0], "Email");
    assert_eq!(mapping.columns[0], Some(Field::Email));
    let row = reader.next_row().transpose()?.ok_or("no row")?;
    assert_eq!(row.line, 2);
    assert_eq!(record(&row)?.first_name.as_deref(), Some("Ana"));
    assert_eq!(reader.bytes_read(), csv.len() as u64);
    Ok(())
}

#[test]
fn crlf_line_ends_do_not_leak_into_values_or_line_numbers() -> TestResult {
    let csv =
        "Email,Last Name\r\na@x.example,Lee\r\n\"b@x.example\",\"Ng\r\nJr\"\r\nc@x.example,Ng\r\n";
    let rows = read_all(csv.as_bytes())?;
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![2, 3, 5]
    );
    assert_eq!(record(&rows[0])?.last_name.as_deref(), Some("Lee"));
    assert_eq!(record(&rows[2])?.last_name.as_deref(), Some("Ng"));
    // A line break inside a name is a control character: the name is dropped with a warning.
    assert_eq!(record(&rows[1])?.last_name, None);
    assert_eq!(only_issue(&rows[1])?.severity, Severity::Warn);
    Ok(())
}

#[test]
fn last_record_without_line_end_is_read() -> TestResult {
    let rows = read_all(b"Email\na@x.example\nb@x.example")?;
    assert_eq!(rows.len(), 2);
    assert_eq!(record(&rows[1])?.email.as_deref(), Some("b@x.example"));
    Ok(())
}

#[test]
fn too_many_or_too_few_fields_reject_the_row_and_say_how_many() -> TestResult {
    let csv = "Email,First Name,Last Name\n\
               a@x.example,Ana,Lee,extra\n\
               b@x.example,Bo\n\
               c@x.example,Cy,Ng\n";
    let rows = read_all(csv.as_bytes())?;
    assert_eq!(rows.len(), 3);
    for (row, found) in rows[..2].iter().zip([4, 2]) {
        assert!(row.is_rejected());
        let issue = only_issue(row)?;
        assert_eq!(issue.severity, Severity::Reject);
        assert_eq!(issue.column, "");
        assert_eq!(
            issue.reason,
            format!("expected 3 fields as in the header, found {found}")
        );
    }
    assert!(!rows[2].is_rejected());
    Ok(())
}

#[test]
fn non_utf8_bytes_reject_only_that_row() -> TestResult {
    let mut csv = b"Email,Last Name,Unused\na@x.example,Lee,x\nb@x.example,M".to_vec();
    csv.extend_from_slice(b"\xFCller,x\nc@x.example,Ng,\xFF\n");
    let rows = read_all(&csv)?;
    assert_eq!(rows.len(), 3);
    assert!(!rows[0].is_rejected());
    let issue = only_issue(&rows[1])?;
    assert!(rows[1].is_rejected());
    assert_eq!(issue.line, 3);
    assert_eq!(issue.column, "Last Name");
    assert!(issue.reason.contains("not valid UTF-8"), "{}", issue.reason);
    assert!(issue.reason.contains("0xFC"), "{}", issue.reason);
    // Bad bytes in a column that is not imported do not matter.
    assert!(!rows[2].is_rejected());
    Ok(())
}

#[test]
fn non_utf8_header_stops_the_file() {
    let err = Reader::new(&b"Email,Pr\xE9nom\na@x.example,x\n"[..], Limits::default()).err();
    assert!(
        matches!(
            err,
            Some(ImportError::HeaderEncoding { line: 1, column: 2 })
        ),
        "{err:?}"
    );
}

#[test]
fn header_with_duplicate_or_empty_names() -> TestResult {
    let csv = "Email,,First Name,email, \na@x.example,junk,Ana,b@x.example,z\n";
    let (mut reader, mapping) = Reader::new(csv.as_bytes(), Limits::default())?;
    assert_eq!(
        mapping.columns,
        vec![Some(Field::Email), None, Some(Field::FirstName), None, None]
    );
    assert_eq!(mapping.validate(), Ok(()));
    let issues = reader.header_issues().to_vec();
    assert_eq!(issues.len(), 3, "{issues:?}");
    assert_eq!(issues[0].column, "column 2");
    assert!(issues[0].reason.contains("no name"));
    assert_eq!(issues[1].column, "email");
    assert!(issues[1].reason.contains("column 1"));
    assert_eq!(issues[2].column, "column 5");
    assert!(
        issues
            .iter()
            .all(|i| i.line == 1 && i.severity == Severity::Warn)
    );
    let row = reader.next_row().transpose()?.ok_or("no row")?;
    assert_eq!(record(&row)?.email.as_deref(), Some("a@x.example"));
    Ok(())
}

#[test]
fn empty_inputs() {
    assert!(matches!(
        Reader::new(&b""[..], Limits::default()).err(),
        Some(ImportError::Empty)
    ));
    assert!(matches!(
        Reader::new(&b"\xEF\xBB\xBF\r\n\r\n"[..], Limits::default()).err(),
        Some(ImportError::Empty)
    ));
    assert!(matches!(
        Reader::new(&b" , ,\n"[..], Limits::default()).err(),
        Some(ImportError::EmptyHeader { line: 1 })
    ));
}

#[test]
fn header_only_file_has_no_rows() -> TestResult {
    assert!(read_all(b"Email,Name\n")?.is_empty());
    Ok(())
}

#[test]
fn delimiter_is_detected_from_the_header() -> TestResult {
    for (delimiter, csv) in [
        (b';', "Email;Company\na@x.example;\"Globex, Inc.\"\n"),
        (b'\t', "Email\tCompany\na@x.example\tGlobex, Inc.\n"),
        (b',', "Email,\"Company; Name\"\na@x.example,Globex\n"),
        (b',', "Email\na@x.example\n"),
    ] {
        let (mut reader, _) = Reader::new(csv.as_bytes(), Limits::default())?;
        assert_eq!(reader.delimiter(), delimiter, "{csv}");
        let row = reader.next_row().transpose()?.ok_or("no row")?;
        assert_eq!(record(&row)?.email.as_deref(), Some("a@x.example"));
    }
    Ok(())
}

#[test]
fn blank_rows_are_skipped() -> TestResult {
    let csv = "Email,Name\na@x.example,Ana\n,\n  ,  \nb@x.example,Bo\n,,,\n";
    let (mut reader, _) = Reader::new(csv.as_bytes(), Limits::default())?;
    let rows: Vec<RowOutcome> = reader.by_ref().collect::<Result<_, _>>()?;
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 5]);
    assert_eq!(reader.blank_rows(), 3);
    Ok(())
}

#[test]
fn record_longer_than_the_limit_stops_the_file_at_its_line() -> TestResult {
    let limits = Limits {
        max_record_bytes: 1024,
        ..Limits::default()
    };
    // An unclosed quote would otherwise swallow the rest of the file.
    let mut csv = String::from("Email,Notes\na@x.example,ok\nb@x.example,\"unclosed\n");
    for _ in 0..200 {
        csv.push_str("c@x.example,more text here\n");
    }
    let (mut reader, _) = Reader::new(csv.as_bytes(), limits)?;
    assert!(matches!(reader.next_row(), Some(Ok(_))));
    let err = reader
        .next_row()
        .ok_or("no result")?
        .err()
        .ok_or("no error")?;
    assert!(
        matches!(
            err,
            ImportError::RecordTooLong {
                line: 3,
                limit: 1024
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("line 3: "), "{err}");
    assert!(reader.next_row().is_none());
    Ok(())
}

#[test]
fn field_longer_than_the_limit_stops_the_file() -> TestResult {
    let limits = Limits {
        max_field_bytes: 12,
        ..Limits::default()
    };
    let csv = "Email,Notes\na@x.example,short\nb@x.example,this is far too long\n";
    let (mut reader, _) = Reader::new(csv.as_bytes(), limits)?;
    assert!(matches!(reader.next_row(), Some(Ok(_))));
    let err = reader
        .next_row()
        .ok_or("no result")?
        .err()
        .ok_or("no error")?;
    assert!(
        matches!(&err, ImportError::FieldTooLong { line: 3, column, limit: 12 } if column == "Notes"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn too_many_columns_stops_the_file() -> TestResult {
    let limits = Limits {
        max_columns: 3,
        ..Limits::default()
    };
    let err = Reader::new(&b"a,b,c,d\n1,2,3,4\n"[..], limits).err();
    assert!(
        matches!(err, Some(ImportError::TooManyColumns { line: 1, limit: 3 })),
        "{err:?}"
    );
    let (mut reader, _) = Reader::new(&b"Email,b,c\nx@y.example,2,3,4\n"[..], limits)?;
    let err = reader.next_row().ok_or("no result")?.err();
    assert!(
        matches!(err, Some(ImportError::TooManyColumns { line: 2, limit: 3 })),
        "{err:?}"
    );
    Ok(())
}

/// Hands out a few bytes per call, then fails.
struct Flaky<'a> {
    data: &'a [u8],
}

impl Read for Flaky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.data.len()).min(7);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn small_reads_work_and_io_errors_stop_the_file() -> TestResult {
    let csv = "Email,Company\na@x.example,\"Globex, Inc.\"\nb@x.example,Initech\n";
    let (mut reader, _) = Reader::new(
        Flaky {
            data: csv.as_bytes(),
        },
        Limits::default(),
    )?;
    let mut lines = Vec::new();
    let mut error = None;
    for result in reader.by_ref() {
        match result {
            Ok(row) => lines.push((row.line, record(&row)?.company_name.clone())),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(
        lines,
        vec![
            (2, Some("Globex, Inc.".to_owned())),
            (3, Some("Initech".to_owned()))
        ]
    );
    assert!(
        matches!(&error, Some(ImportError::Io { line: 4, .. })),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn bad_email_rejects_with_column_and_reason() -> TestResult {
    let csv = "First Name,E-mail\nZoë,zoe.al-ha20 at stark.example\nAna,ana@x\n";
    let rows = read_all(csv.as_bytes())?;
    let issue = only_issue(&rows[0])?;
    assert!(rows[0].is_rejected());
    assert_eq!(issue.column, "E-mail");
    assert_eq!(
        issue.reason,
        "not an email address: missing '@' (\"zoe.al-ha20 at stark.example\")"
    );
    assert!(only_issue(&rows[1])?.reason.contains("has no dot"));
    Ok(())
}

#[test]
fn neither_email_nor_name_rejects_the_whole_row() -> TestResult {
    let csv = "Email,First Name,Last Name,Company\n,,,Initech\n,Ana,,Initech\n,,Lee,\n";
    let rows = read_all(csv.as_bytes())?;
    let issue = only_issue(&rows[0])?;
    assert_eq!(issue.column, "");
    assert_eq!(issue.reason, "neither an email address nor a name");
    assert!(!rows[1].is_rejected());
    assert!(!rows[2].is_rejected());
    Ok(())
}

#[test]
fn full_name_is_split_when_first_and_last_are_empty() -> TestResult {
    let csv = "Name,First Name,Last Name\nPriya van der Berg,,\nIgnored Full,Ana,\n";
    let rows = read_all(csv.as_bytes())?;
    let a = record(&rows[0])?;
    assert_eq!(
        (a.first_name.as_deref(), a.last_name.as_deref()),
        (Some("Priya"), Some("van der Berg"))
    );
    let b = record(&rows[1])?;
    assert_eq!(
        (b.first_name.as_deref(), b.last_name.as_deref()),
        (Some("Ana"), None)
    );
    Ok(())
}

#[test]
fn warnings_drop_only_the_bad_value() -> TestResult {
    let csv = "Email,Website,# Employees,Phone,Person Linkedin Url,Seniority,Title,Country\n\
               a@x.example,htp//bad,lots,12345,https://example.com/in/x,Grand Poobah,VP Sales,Germany\n";
    let rows = read_all(csv.as_bytes())?;
    let row = &rows[0];
    let lead = record(row)?;
    assert_eq!(lead.email.as_deref(), Some("a@x.example"));
    assert_eq!(lead.company_domain, None);
    assert_eq!(lead.employee_range, None);
    assert_eq!(lead.phone, None);
    assert_eq!(lead.linkedin_url, None);
    // An unknown seniority label falls back to the title.
    assert_eq!(lead.seniority, Some(Seniority::Vp));
    assert_eq!(lead.country.as_deref(), Some("DE"));
    let columns: Vec<&str> = row.issues.iter().map(|i| i.column.as_str()).collect();
    assert_eq!(
        columns,
        vec![
            "Seniority",
            "Phone",
            "Website",
            "Person Linkedin Url",
            "# Employees"
        ]
    );
    assert!(
        row.issues
            .iter()
            .all(|i| i.severity == Severity::Warn && i.line == 2)
    );
    let reasons: Vec<&str> = row.issues.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "seniority: not a known seniority level (\"Grand Poobah\")",
            "phone: cannot be read as an international number (\"12345\")",
            "company_domain: not a web address or domain (\"htp//bad\")",
            "linkedin_url: not a linkedin.com address (\"https://example.com/in/x\")",
            "employee_range: not a number of employees or a range such as 51-200 (\"lots\")",
        ]
    );
    Ok(())
}

#[test]
fn control_characters_drop_the_field_with_a_warning() -> TestResult {
    let csv = "Email,Title,Notes\na@x.example,CEO\u{7},\"line one\nline two\"\n";
    let rows = read_all(csv.as_bytes())?;
    let lead = record(&rows[0])?;
    assert_eq!(lead.title, None);
    assert_eq!(lead.seniority, None);
    assert_eq!(lead.notes.as_deref(), Some("line one\nline two"));
    let issue = only_issue(&rows[0])?;
    assert_eq!(
        (issue.column.as_str(), issue.severity),
        ("Title", Severity::Warn)
    );
    assert!(issue.reason.contains("control characters"));
    Ok(())
}

#[test]
fn full_record_from_our_template() -> TestResult {
    let header = leadgen_import::Mapping::template_header();
    let csv = format!(
        "{header}\n\
         Ana,Núñez,Head of Sales,,Sales, Ana@Acme.example ,(415) 555-1000,linkedin.com/in/ana,\"Acme, Inc.\",\
         https://www.Acme.example/about,Software,\"1,200\",San Francisco,CA,U.S.,Web,New,crm-1,no,\"vip; event\",hello\n"
    );
    let (mut reader, mapping) = Reader::new(csv.as_bytes(), Limits::default())?;
    assert_eq!(mapping.dialect, Dialect::LeadGen);
    let row = reader.next_row().transpose()?.ok_or("no row")?;
    assert!(row.issues.is_empty(), "{:?}", row.issues);
    let lead = record(&row)?;
    let want = LeadRecord {
        first_name: Some("Ana".into()),
        last_name: Some("Núñez".into()),
        title: Some("Head of Sales".into()),
        seniority: Some(Seniority::Head),
        department: Some("Sales".into()),
        email: Some("Ana@Acme.example".into()),
        phone: Some("+14155551000".into()),
        linkedin_url: Some("https://linkedin.com/in/ana".into()),
        company_name: Some("Acme, Inc.".into()),
        company_domain: Some("acme.example".into()),
        industry: Some("Software".into()),
        employee_range: Some(EmployeeRange::Size1001To5000),
        city: Some("San Francisco".into()),
        region: Some("CA".into()),
        country: Some("US".into()),
        source: Some("Web".into()),
        status: Some("New".into()),
        external_id: Some("crm-1".into()),
        do_not_contact: false,
        tags: vec!["vip".into(), "event".into()],
        notes: Some("hello".into()),
    };
    assert_eq!(lead, &want);
    assert_eq!(lead.email_key().as_deref(), Some("ana@acme.example"));
    Ok(())
}

#[test]
fn opt_out_columns_combine_and_unreadable_values_opt_out() -> TestResult {
    let csv = "Email,Email Opt Out,Unsubscribed from all email,Email Status\n\
               a@x.example,false,false,Verified\n\
               b@x.example,false,true,Verified\n\
               c@x.example,no,no,Bounced\n\
               d@x.example,perhaps,no,Verified\n";
    let rows = read_all(csv.as_bytes())?;
    let flags: Vec<bool> = rows
        .iter()
        .map(|r| record(r).map(|l| l.do_not_contact))
        .collect::<Result<_, _>>()?;
    assert_eq!(flags, vec![false, true, true, true]);
    let issue = only_issue(&rows[3])?;
    assert_eq!(issue.column, "Email Opt Out");
    assert!(rows[..3].iter().all(|r| r.issues.is_empty()));
    Ok(())
}

#[test]
fn tags_and_notes_concatenate_across_columns() -> TestResult {
    let csv = "Email,Tags,Labels,Notes,Description\na@x.example,\"a, b\",B;c,one,two\n";
    let rows = read_all(csv.as_bytes())?;
    let lead = record(&rows[0])?;
    assert_eq!(lead.tags, vec!["a", "b", "c"]);
    assert_eq!(lead.notes.as_deref(), Some("one\ntwo"));
    Ok(())
}

#[test]
fn corrected_mapping_is_applied_and_checked_against_the_header() -> TestResult {
    let csv = "Contact Mail,Nom\nana@x.example,Ana Lee\n";
    let (reader, mut mapping) = Reader::new(csv.as_bytes(), Limits::default())?;
    assert_eq!(mapping.validate(), Err(MappingError::NoEmailOrName));
    mapping.set(0, Some(Field::Email));
    mapping.set(1, Some(Field::FullName));
    let mut reader = reader.with_mapping(mapping.clone())?;
    let row = reader.next_row().transpose()?.ok_or("no row")?;
    let lead = record(&row)?;
    assert_eq!(lead.email.as_deref(), Some("ana@x.example"));
    assert_eq!(lead.last_name.as_deref(), Some("Lee"));

    let (other, _) = Reader::new(&b"Email,Name\n"[..], Limits::default())?;
    let err = other.with_mapping(mapping.clone()).err();
    assert!(
        matches!(&err, Some(MappingError::HeaderMismatch { column: 1, .. })),
        "{err:?}"
    );
    let (other, _) = Reader::new(&b"Contact Mail,Nom,Extra\n"[..], Limits::default())?;
    assert!(matches!(
        other.with_mapping(mapping).err(),
        Some(MappingError::ColumnCount {
            mapping: 2,
            file: 3
        })
    ));
    Ok(())
}

#[test]
fn mapping_survives_a_json_round_trip() -> TestResult {
    let (_, mapping) = Reader::new(&b"Email,Phone,Whatever\n"[..], Limits::default())?;
    let json = serde_json::to_string(&mapping)?;
    assert!(json.contains("\"email\""), "{json}");
    assert_eq!(
        serde_json::from_str::<leadgen_import::Mapping>(&json)?,
        mapping
    );
    Ok(())
}

#[test]
fn preview_returns_the_mapping_and_first_rows() -> TestResult {
    let csv = "Email,Name\na@x.example,A\nbad,B\nc@x.example,C\n";
    let p = preview(csv.as_bytes(), 2)?;
    assert_eq!(
        p.mapping.columns,
        vec![Some(Field::Email), Some(Field::FullName)]
    );
    assert_eq!(p.rows.len(), 2);
    assert!(p.rows[1].is_rejected());
    assert_eq!(p.delimiter, b',');
    assert!(p.header_issues.is_empty());
    assert_eq!(preview(csv.as_bytes(), 10)?.rows.len(), 3);
    Ok(())
}
