//! From an imported record to lead values, and how a row meets a lead that already has its email
//! address. Pure, so every rule is unit tested.

use leadgen_import::{Field, Issue, LeadRecord, Mapping, Severity};
use serde_json::{Value, json};

use super::Mode;
use crate::leads::model::LeadValues;

/// A CRM's lead status in our six.
fn status(raw: &str) -> &'static str {
    let s = raw.to_ascii_lowercase();
    let has = |w: &str| s.contains(w);
    if has("not contacted") {
        "new"
    } else if has("unqualified")
        || has("disqualified")
        || has("not converted")
        || has("junk")
        || has("bad")
    {
        "unqualified"
    } else if has("lost") {
        "lost"
    } else if has("customer") || has("won") || has("converted") {
        "customer"
    } else if has("qualified") || has("sql") || has("mql") || has("opportunity") {
        "qualified"
    } else if has("contacted")
        || has("working")
        || has("attempt")
        || has("progress")
        || has("connected")
    {
        "contacted"
    } else {
        "new"
    }
}

/// The header of the column that feeds `field`, for issues.
fn column(mapping: &Mapping, field: Field) -> String {
    mapping
        .columns
        .iter()
        .position(|c| *c == Some(field))
        .and_then(|i| mapping.headers.get(i).cloned())
        .unwrap_or_else(|| field.key().to_string())
}

/// Lead values from a record; values our columns cannot hold are dropped with a warning.
pub fn values(
    rec: LeadRecord,
    line: u64,
    mapping: &Mapping,
    issues: &mut Vec<Issue>,
) -> LeadValues {
    let mut warn = |field: Field, reason: String| {
        issues.push(Issue {
            line,
            column: column(mapping, field),
            reason,
            severity: Severity::Warn,
        });
    };
    let mut fit = |field: Field, v: Option<String>, max: usize| -> Option<String> {
        match v {
            Some(s) if s.chars().count() > max => {
                warn(
                    field,
                    format!("{}: longer than {max} characters; left out", field.key()),
                );
                None
            }
            other => other,
        }
    };
    let first_name = fit(Field::FirstName, rec.first_name, 200);
    let last_name = fit(Field::LastName, rec.last_name, 200);
    let title = fit(Field::Title, rec.title, 300);
    let department = fit(Field::Department, rec.department, 200);
    let linkedin_url = fit(Field::LinkedinUrl, rec.linkedin_url, 500);
    let company_name = fit(Field::CompanyName, rec.company_name, 300);
    let company_domain = fit(Field::CompanyDomain, rec.company_domain, 253);
    let industry = fit(Field::Industry, rec.industry, 200);
    let city = fit(Field::City, rec.city, 200);
    let region = fit(Field::Region, rec.region, 200);
    let country = fit(Field::Country, rec.country, 100);
    let source = fit(Field::Source, rec.source, 200);
    let mut custom = serde_json::Map::new();
    if let Some(s) = &rec.status {
        custom.insert("crm_status".into(), json!(s));
    }
    if let Some(id) = fit(Field::ExternalId, rec.external_id, 200) {
        custom.insert("external_id".into(), json!(id));
    }
    if let Some(n) = fit(Field::Notes, rec.notes, 8000) {
        custom.insert("notes".into(), json!(n));
    }
    let mut tags: Vec<String> = Vec::new();
    for t in rec.tags {
        if t.chars().count() <= 50 && !tags.contains(&t) {
            tags.push(t);
        }
    }
    if tags.len() > 50 {
        tags.truncate(50);
        warn(Field::Tags, "tags: more than 50; the first 50 kept".into());
    }
    let mut v = LeadValues {
        first_name,
        last_name,
        title,
        seniority: rec.seniority.map(|s| s.as_str().to_string()),
        department,
        email: rec
            .email
            .as_deref()
            .and_then(leadgen_crypto::field::normalize_email),
        phone: rec.phone,
        linkedin_url,
        company_name,
        company_domain,
        industry,
        employee_range: rec.employee_range.map(|e| e.as_str().to_string()),
        city,
        region,
        country,
        source,
        status: rec.status.as_deref().map_or("new", status).to_string(),
        owner_id: None,
        tags,
        custom,
        do_not_contact: rec.do_not_contact,
        masked_fields: Vec::new(),
    };
    // Card numbers never reach the table: masked, and the report says where.
    if v.mask_cards() > 0 {
        for field in &v.masked_fields {
            issues.push(Issue {
                line,
                column: (*field).to_string(),
                reason: format!(
                    "{field}: a card number was masked (first six and last four digits kept)"
                ),
                severity: Severity::Warn,
            });
        }
    }
    v
}

/// `existing` met by `row` under `mode`: the merged values, or `None` when nothing changes.
/// An opt-out is never undone by an import, and one the row carries always applies, whatever the
/// mode (create-only included): a person who asked not to be emailed is not emailed. The email is the same address by
/// construction (same blind index).
#[must_use]
pub fn merge(existing: &LeadValues, row: &LeadValues, mode: Mode) -> Option<LeadValues> {
    let mut out = existing.clone();
    match mode {
        Mode::CreateOnly => {
            if row.do_not_contact && !existing.do_not_contact {
                out.do_not_contact = true;
                return Some(out);
            }
            return None;
        }
        Mode::UpdateExisting => {
            macro_rules! take {
                ($($f:ident),*) => { $( if row.$f.is_some() { out.$f = row.$f.clone(); } )* };
            }
            take!(
                first_name,
                last_name,
                title,
                seniority,
                department,
                phone,
                linkedin_url,
                company_name,
                company_domain,
                industry,
                employee_range,
                city,
                region,
                country,
                source
            );
            if row.custom.contains_key("crm_status") {
                out.status = row.status.clone();
            }
            for (k, v) in &row.custom {
                out.custom.insert(k.clone(), v.clone());
            }
        }
        Mode::FillEmpty => {
            macro_rules! fill {
                ($($f:ident),*) => { $( if out.$f.is_none() { out.$f = row.$f.clone(); } )* };
            }
            fill!(
                first_name,
                last_name,
                title,
                seniority,
                department,
                phone,
                linkedin_url,
                company_name,
                company_domain,
                industry,
                employee_range,
                city,
                region,
                country,
                source
            );
            for (k, v) in &row.custom {
                out.custom.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    for t in &row.tags {
        if out.tags.len() < 50 && !out.tags.contains(t) {
            out.tags.push(t.clone());
        }
    }
    out.do_not_contact = existing.do_not_contact || row.do_not_contact;
    if serde_json::to_vec(&Value::Object(out.custom.clone())).map_or(0, |v| v.len()) > 16_384 {
        out.custom = existing.custom.clone();
    }
    (out != *existing).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(first: Option<&str>, title: Option<&str>, dnc: bool) -> LeadValues {
        LeadValues {
            first_name: first.map(String::from),
            title: title.map(String::from),
            status: "new".into(),
            do_not_contact: dnc,
            ..LeadValues::default()
        }
    }

    #[test]
    fn the_three_modes_and_opt_outs() {
        let existing = lead(Some("Ann"), None, false);
        let row = lead(Some("Anne"), Some("CTO"), false);
        assert_eq!(merge(&existing, &row, Mode::CreateOnly), None);
        let opt_out = merge(&existing, &lead(None, None, true), Mode::CreateOnly).unwrap();
        assert!(
            opt_out.do_not_contact,
            "an opt-out applies even in create-only"
        );
        assert_eq!(opt_out.first_name.as_deref(), Some("Ann"));
        let up = merge(&existing, &row, Mode::UpdateExisting).unwrap();
        assert_eq!(up.first_name.as_deref(), Some("Anne"));
        assert_eq!(up.title.as_deref(), Some("CTO"));
        let fill = merge(&existing, &row, Mode::FillEmpty).unwrap();
        assert_eq!(fill.first_name.as_deref(), Some("Ann"), "never overwrites");
        assert_eq!(fill.title.as_deref(), Some("CTO"));
        // Same values: nothing to write.
        assert_eq!(merge(&up, &row, Mode::UpdateExisting), None);
        // An opt-out sticks, in both directions of the merge.
        let opted = lead(Some("Ann"), None, true);
        let m = merge(
            &opted,
            &lead(Some("Ann"), Some("CTO"), false),
            Mode::UpdateExisting,
        )
        .unwrap();
        assert!(m.do_not_contact);
        let m = merge(&existing, &lead(None, None, true), Mode::FillEmpty).unwrap();
        assert!(m.do_not_contact);
    }

    #[test]
    fn crm_statuses_land_in_ours() {
        assert_eq!(status("Open - Not Contacted"), "new");
        assert_eq!(status("Working - Contacted"), "contacted");
        assert_eq!(status("Closed - Converted"), "customer");
        assert_eq!(status("Closed - Not Converted"), "unqualified");
        assert_eq!(status("UNQUALIFIED"), "unqualified");
        assert_eq!(status("NEW"), "new");
        assert_eq!(status("IN_PROGRESS"), "contacted");
    }
}
