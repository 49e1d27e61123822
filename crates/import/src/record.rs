//! Turning one parsed CSV record into a validated lead.

use serde::{Deserialize, Serialize};

use crate::mapping::{FIELD_COUNT, Field};
use crate::normalise::{self, EmployeeRange, Seniority};

/// A lead as read from one CSV row: every text trimmed, empty cells as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadRecord {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub seniority: Option<Seniority>,
    pub department: Option<String>,
    /// Trimmed, case as typed (see [`LeadRecord::email_key`]).
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// `https://…linkedin.com/…`, without query or fragment.
    pub linkedin_url: Option<String>,
    pub company_name: Option<String>,
    /// Lowercase host without scheme, `www.`, port or path.
    pub company_domain: Option<String>,
    pub industry: Option<String>,
    pub employee_range: Option<EmployeeRange>,
    pub city: Option<String>,
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 where recognised, else the text as given.
    pub country: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    pub external_id: Option<String>,
    pub do_not_contact: bool,
    pub tags: Vec<String>,
    pub notes: Option<String>,
}

impl LeadRecord {
    /// The address as compared for duplicates: trimmed and lowercased.
    pub fn email_key(&self) -> Option<String> {
        self.email.as_deref().map(normalise::email_key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The row was not imported.
    Reject,
    /// The row was imported without the value in `column`.
    Warn,
}

/// A problem found in the file, for the import's error report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The physical line the record starts on; the header is line 1.
    pub line: u64,
    /// The column's header as in the file ("column N" when it has none); empty for whole-row issues.
    pub column: String,
    pub reason: String,
    pub severity: Severity,
}

/// What became of one CSV record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowOutcome {
    /// The physical line the record starts on.
    pub line: u64,
    /// `None` when the row was rejected.
    pub record: Option<LeadRecord>,
    pub issues: Vec<Issue>,
}

impl RowOutcome {
    pub fn is_rejected(&self) -> bool {
        self.record.is_none()
    }
}

/// A mapping compiled for per-row use.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Mapped columns in file order, `Ignore` left out.
    mapped: Vec<(usize, Field)>,
    /// The column feeding each single-valued field.
    single: [Option<usize>; FIELD_COUNT],
    columns: usize,
}

impl Plan {
    pub(crate) fn new(columns: &[Option<Field>]) -> Plan {
        let mut single = [None; FIELD_COUNT];
        let mut mapped = Vec::new();
        for (i, field) in columns.iter().enumerate() {
            let Some(field) = *field else { continue };
            if field == Field::Ignore {
                continue;
            }
            if !field.allows_many() {
                // An unvalidated mapping may name a field twice; the leftmost column wins.
                if single[field.index()].is_some() {
                    continue;
                }
                single[field.index()] = Some(i);
            }
            mapped.push((i, field));
        }
        Plan {
            mapped,
            single,
            columns: columns.len(),
        }
    }
}

/// The record as csv-core leaves it: concatenated field bytes and each field's end offset.
pub(crate) struct RawFields<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) ends: &'a [usize],
}

impl<'a> RawFields<'a> {
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_blank(&self) -> bool {
        let end = self.ends.last().copied().unwrap_or(0);
        self.data[..end].iter().all(u8::is_ascii_whitespace)
    }
}

const ECHO_LIMIT: usize = 100;

/// A value quoted for a reason, cut to 100 characters: the report goes to the file's owner, but a
/// runaway cell should not make it unreadable.
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("\"{}…\"", &value[..cut]),
        None => format!("\"{value}\""),
    }
}

struct Row<'a> {
    line: u64,
    labels: &'a [String],
    single: &'a [Option<usize>; FIELD_COUNT],
    values: [Option<&'a str>; FIELD_COUNT],
    issues: Vec<Issue>,
    rejected: bool,
}

impl<'a> Row<'a> {
    fn column(&self, column: Option<usize>) -> String {
        column
            .and_then(|c| self.labels.get(c))
            .cloned()
            .unwrap_or_default()
    }

    fn warn(&mut self, column: Option<usize>, reason: String) {
        let column = self.column(column);
        self.issues.push(Issue {
            line: self.line,
            column,
            reason,
            severity: Severity::Warn,
        });
    }

    fn reject(&mut self, column: Option<usize>, reason: String) {
        let column = self.column(column);
        self.rejected = true;
        self.issues.push(Issue {
            line: self.line,
            column,
            reason,
            severity: Severity::Reject,
        });
    }

    /// The trimmed, non-empty value of a single-valued field; control characters drop it with a
    /// warning because they break every screen and export the value would reach.
    fn clean(&mut self, field: Field) -> Option<&'a str> {
        let value = self.values[field.index()]?.trim();
        if value.is_empty() {
            return None;
        }
        if normalise::has_control(value, false) {
            let column = self.single[field.index()];
            self.warn(
                column,
                format!("{}: contains control characters; left empty", field.key()),
            );
            return None;
        }
        Some(value)
    }

    /// A free-text field's value. Typed fields (email, website, phone, counts) are parsed into
    /// their own form instead, which no script survives.
    fn text(&mut self, field: Field) -> Option<String> {
        self.free(field).map(str::to_owned)
    }

    /// [`Self::clean`] for free text, which also drops script a browser would run.
    fn free(&mut self, field: Field) -> Option<&'a str> {
        let value = self.clean(field)?;
        if let Some(rule) = leadgen_waf::markup(value) {
            let column = self.single[field.index()];
            self.warn(column, script_warning(field.key(), rule));
            return None;
        }
        Some(value)
    }

    /// Runs `parse` on the field's value; on failure warns with `problem` and drops the value.
    fn parsed<T>(
        &mut self,
        field: Field,
        parse: impl FnOnce(&str) -> Option<T>,
        problem: &str,
    ) -> Option<T> {
        let raw = self.clean(field)?;
        let parsed = parse(raw);
        if parsed.is_none() {
            let column = self.single[field.index()];
            self.warn(
                column,
                format!("{}: {problem} ({})", field.key(), echo(raw)),
            );
        }
        parsed
    }
}

/// Builds the outcome for one record, or `None` for a row with nothing but blanks (spreadsheets
/// leave those at the end of exports; reporting each would only bury real problems).
pub(crate) fn build(
    line: u64,
    fields: &RawFields<'_>,
    plan: &Plan,
    labels: &[String],
) -> Option<RowOutcome> {
    if fields.is_blank() {
        return None;
    }
    let mut row = Row {
        line,
        labels,
        single: &plan.single,
        values: [None; FIELD_COUNT],
        issues: Vec::new(),
        rejected: false,
    };
    if fields.len() != plan.columns {
        row.reject(
            None,
            format!(
                "expected {} fields as in the header, found {}",
                plan.columns,
                fields.len()
            ),
        );
        return Some(row.finish(None));
    }

    let mut multi: Vec<(usize, Field, &str)> = Vec::new();
    for &(column, field) in &plan.mapped {
        let bytes = fields.get(column);
        let value = match std::str::from_utf8(bytes) {
            Ok(v) => v,
            Err(e) => {
                let at = e.valid_up_to();
                let byte = bytes.get(at).copied().unwrap_or_default();
                row.reject(
                    Some(column),
                    format!(
                        "not valid UTF-8 text (byte 0x{byte:02X} at position {}); choose the file's encoding (the wizard offers them, the API takes `encoding`) or save it as \"CSV UTF-8\"",
                        at + 1
                    ),
                );
                return Some(row.finish(None));
            }
        };
        if field.allows_many() {
            multi.push((column, field, value));
        } else {
            row.values[field.index()] = Some(value);
        }
    }

    let email = match row.values[Field::Email.index()]
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(raw) => match normalise::email(raw) {
            Ok(email) => Some(email.to_owned()),
            Err(why) => {
                let column = row.single[Field::Email.index()];
                row.reject(
                    column,
                    format!("not an email address: {why} ({})", echo(raw)),
                );
                None
            }
        },
    };

    let mut first_name = row.text(Field::FirstName);
    let mut last_name = row.text(Field::LastName);
    if first_name.is_none()
        && last_name.is_none()
        && let Some(full) = row.free(Field::FullName)
    {
        let (first, last) = normalise::split_full_name(full);
        first_name = first.map(str::to_owned);
        last_name = last.map(str::to_owned);
    }
    if email.is_none() && first_name.is_none() && last_name.is_none() && !row.rejected {
        row.reject(None, "neither an email address nor a name".to_owned());
    }

    let title = row.free(Field::Title);
    let seniority = row
        .parsed(
            Field::Seniority,
            Seniority::parse,
            "not a known seniority level",
        )
        .or_else(|| title.and_then(Seniority::from_title));

    let country = row.free(Field::Country).map(normalise::country);
    let phone = row.parsed(
        Field::Phone,
        |raw| normalise::phone(raw, country.as_deref()),
        "cannot be read as an international number",
    );
    let company_domain = row.parsed(
        Field::CompanyDomain,
        normalise::domain,
        "not a web address or domain",
    );
    let linkedin_url = row.parsed(
        Field::LinkedinUrl,
        normalise::linkedin_url,
        "not a linkedin.com address",
    );
    let employee_range = row.parsed(
        Field::EmployeeRange,
        EmployeeRange::parse,
        "not a number of employees or a range such as 51-200",
    );

    let mut do_not_contact = row
        .clean(Field::EmailStatus)
        .is_some_and(normalise::email_status_blocks);
    let mut tags = Vec::new();
    let mut notes: Option<String> = None;
    for (column, field, value) in multi {
        let value = value.trim();
        match field {
            Field::DoNotContact => match normalise::opt_out(value) {
                Some(yes) => do_not_contact |= yes,
                None => {
                    // An unreadable opt-out must not become permission to email.
                    do_not_contact = true;
                    row.warn(
                        Some(column),
                        format!(
                            "do_not_contact: not a yes/no value ({}); the lead is marked do-not-contact to be safe",
                            echo(value)
                        ),
                    );
                }
            },
            Field::Tags if normalise::has_control(value, false) => row.warn(
                Some(column),
                "tags: contains control characters; left empty".to_owned(),
            ),
            Field::Tags if let Some(rule) = leadgen_waf::markup(value) => {
                row.warn(Some(column), script_warning("tags", rule));
            }
            Field::Tags => normalise::tags(value, &mut tags),
            Field::Notes if value.is_empty() => {}
            Field::Notes if normalise::has_control(value, true) => row.warn(
                Some(column),
                "notes: contains control characters; left empty".to_owned(),
            ),
            Field::Notes if let Some(rule) = leadgen_waf::markup(value) => {
                row.warn(Some(column), script_warning("notes", rule));
            }
            Field::Notes => match &mut notes {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => notes = Some(value.to_owned()),
            },
            _ => {}
        }
    }

    let record = LeadRecord {
        first_name,
        last_name,
        title: title.map(str::to_owned),
        seniority,
        department: row.text(Field::Department),
        email,
        phone,
        linkedin_url,
        company_name: row.text(Field::CompanyName),
        company_domain,
        industry: row.text(Field::Industry),
        employee_range,
        city: row.text(Field::City),
        region: row.text(Field::Region),
        country,
        source: row.text(Field::Source),
        status: row.text(Field::Status),
        external_id: row.text(Field::ExternalId),
        do_not_contact,
        tags,
        notes,
    };
    let record = (!row.rejected).then_some(record);
    Some(row.finish(record))
}

impl Row<'_> {
    fn finish(self, record: Option<LeadRecord>) -> RowOutcome {
        RowOutcome {
            line: self.line,
            record,
            issues: self.issues,
        }
    }
}

/// The warning for a cell whose markup a browser would run. Formatting markup (`<p>`, `<b>`, a link
/// to an `https:` page) is kept: CRM exports write rich-text notes that way. Script is never a
/// lead's data, and a value left out is better than one that runs in a mail client or a
/// spreadsheet's HTML preview that does not escape it.
fn script_warning(field: &str, rule: &str) -> String {
    format!("{field}: contains markup that runs script ({rule}); left empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates_long_values_on_a_char_boundary() {
        assert_eq!(echo("abc"), "\"abc\"");
        let long = "é".repeat(150);
        let out = echo(&long);
        assert_eq!(out.chars().count(), 100 + 3);
        assert!(out.ends_with("…\""));
    }

    #[test]
    fn email_key_lowercases_and_trims() {
        let r = LeadRecord {
            email: Some(" Ana@Example.COM".into()),
            ..LeadRecord::default()
        };
        assert_eq!(r.email_key().as_deref(), Some("ana@example.com"));
        assert_eq!(LeadRecord::default().email_key(), None);
    }
}
