//! Target fields, CRM dialects and the column → field mapping.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A lead attribute a CSV column can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    FirstName,
    LastName,
    /// Split into first and last name on rows where both of those are empty.
    FullName,
    Title,
    Seniority,
    Department,
    Email,
    Phone,
    LinkedinUrl,
    CompanyName,
    /// Filled from website or domain columns.
    CompanyDomain,
    Industry,
    EmployeeRange,
    City,
    /// State or province.
    Region,
    Country,
    Source,
    Status,
    ExternalId,
    /// A yes/no opt-out column.
    DoNotContact,
    /// An email verification status (Apollo); some values mean "do not email".
    EmailStatus,
    Tags,
    Notes,
    /// Explicitly not imported.
    Ignore,
}

pub(crate) const FIELD_COUNT: usize = 24;

impl Field {
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::FirstName,
        Field::LastName,
        Field::FullName,
        Field::Title,
        Field::Seniority,
        Field::Department,
        Field::Email,
        Field::Phone,
        Field::LinkedinUrl,
        Field::CompanyName,
        Field::CompanyDomain,
        Field::Industry,
        Field::EmployeeRange,
        Field::City,
        Field::Region,
        Field::Country,
        Field::Source,
        Field::Status,
        Field::ExternalId,
        Field::DoNotContact,
        Field::EmailStatus,
        Field::Tags,
        Field::Notes,
        Field::Ignore,
    ];

    /// Stable snake_case name, used in our CSV template, in stored mappings and in issue reasons.
    pub fn key(&self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::FullName => "full_name",
            Field::Title => "title",
            Field::Seniority => "seniority",
            Field::Department => "department",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::LinkedinUrl => "linkedin_url",
            Field::CompanyName => "company_name",
            Field::CompanyDomain => "company_domain",
            Field::Industry => "industry",
            Field::EmployeeRange => "employee_range",
            Field::City => "city",
            Field::Region => "region",
            Field::Country => "country",
            Field::Source => "source",
            Field::Status => "status",
            Field::ExternalId => "external_id",
            Field::DoNotContact => "do_not_contact",
            Field::EmailStatus => "email_status",
            Field::Tags => "tags",
            Field::Notes => "notes",
            Field::Ignore => "ignore",
        }
    }

    /// Human label for the mapping wizard.
    pub fn label(&self) -> &'static str {
        match self {
            Field::FirstName => "First name",
            Field::LastName => "Last name",
            Field::FullName => "Full name",
            Field::Title => "Job title",
            Field::Seniority => "Seniority",
            Field::Department => "Department",
            Field::Email => "Email",
            Field::Phone => "Phone",
            Field::LinkedinUrl => "LinkedIn URL",
            Field::CompanyName => "Company name",
            Field::CompanyDomain => "Company website / domain",
            Field::Industry => "Industry",
            Field::EmployeeRange => "Number of employees",
            Field::City => "City",
            Field::Region => "State / region",
            Field::Country => "Country",
            Field::Source => "Source",
            Field::Status => "Status",
            Field::ExternalId => "External ID",
            Field::DoNotContact => "Do not contact",
            Field::EmailStatus => "Email status",
            Field::Tags => "Tags",
            Field::Notes => "Notes",
            Field::Ignore => "(ignore)",
        }
    }

    /// Parses a field key as typed by a user overriding the mapping: `first_name`, `First Name` and
    /// `FIRSTNAME` all name [`Field::FirstName`].
    pub fn parse(s: &str) -> Option<Field> {
        let wanted = normalise_header(s);
        if wanted.is_empty() {
            return None;
        }
        Field::ALL
            .into_iter()
            .find(|f| normalise_header(f.key()) == wanted)
    }

    /// Fields whose columns are combined instead of conflicting when mapped more than once: tags and
    /// notes concatenate, opt-outs combine with "any says yes" so that no opt-out is ever lost.
    pub fn allows_many(&self) -> bool {
        matches!(
            self,
            Field::Tags | Field::Notes | Field::DoNotContact | Field::Ignore
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The export format a header looks like. Informational: the mapping already accounts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    HubSpot,
    Apollo,
    Salesforce,
    /// Our own template (headers are exactly [`Field`] keys).
    LeadGen,
    Unknown,
}

/// Which field each CSV column feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub dialect: Dialect,
    /// One entry per CSV column; `None` means the column is not imported.
    pub columns: Vec<Option<Field>>,
    /// The header names as in the file (trimmed).
    pub headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("the mapping covers {mapping} columns but the file has {file}")]
    ColumnCount { mapping: usize, file: usize },
    #[error(
        "the mapping was made for another header: column {column} is '{expected}' in the mapping but '{found}' in the file"
    )]
    HeaderMismatch {
        column: usize,
        expected: String,
        found: String,
    },
    #[error("{field} is mapped to more than one column ('{first}' and '{second}')")]
    DuplicateField {
        field: Field,
        first: String,
        second: String,
    },
    #[error("no column is mapped to email or to a name (first_name, last_name or full_name)")]
    NoEmailOrName,
}

impl Mapping {
    /// Maps headers by name, insensitive to case, spaces and punctuation.
    ///
    /// When several columns could feed the same single-valued field, the most specific name wins
    /// (e.g. "Work Direct Phone" over "Corporate Phone"), then the leftmost; the others stay
    /// unmapped so that the result always passes [`Mapping::validate`]'s duplicate check.
    pub fn auto(headers: &[String]) -> Mapping {
        let headers: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
        let dialect = detect_dialect(&headers);
        let mut columns = vec![None; headers.len()];
        let mut best: [Option<(u8, usize)>; FIELD_COUNT] = [None; FIELD_COUNT];
        for (i, header) in headers.iter().enumerate() {
            let Some((field, rank)) = lookup_alias(&normalise_header(header)) else {
                continue;
            };
            if field.allows_many() {
                columns[i] = Some(field);
                continue;
            }
            let slot = &mut best[field.index()];
            match slot {
                Some((r, _)) if *r <= rank => {}
                _ => *slot = Some((rank, i)),
            }
        }
        for (field, slot) in Field::ALL.into_iter().zip(best) {
            if let Some((_, column)) = slot {
                columns[column] = Some(field);
            }
        }
        Mapping {
            dialect,
            columns,
            headers,
        }
    }

    /// Maps `column` (0-based) to `field`, or unmaps it. Out-of-range columns are ignored.
    pub fn set(&mut self, column: usize, field: Option<Field>) {
        if let Some(slot) = self.columns.get_mut(column) {
            *slot = field;
        }
    }

    pub fn validate(&self) -> Result<(), MappingError> {
        if self.columns.len() != self.headers.len() {
            return Err(MappingError::ColumnCount {
                mapping: self.columns.len(),
                file: self.headers.len(),
            });
        }
        let mut first_column: [Option<usize>; FIELD_COUNT] = [None; FIELD_COUNT];
        for (i, field) in self.columns.iter().enumerate() {
            let Some(field) = field else { continue };
            if field.allows_many() {
                continue;
            }
            match first_column[field.index()] {
                Some(first) => {
                    return Err(MappingError::DuplicateField {
                        field: *field,
                        first: self.column_name(first),
                        second: self.column_name(i),
                    });
                }
                None => first_column[field.index()] = Some(i),
            }
        }
        let identifies = self.columns.iter().flatten().any(|f| {
            matches!(
                f,
                Field::Email | Field::FirstName | Field::LastName | Field::FullName
            )
        });
        if !identifies {
            return Err(MappingError::NoEmailOrName);
        }
        Ok(())
    }

    /// The column's name for reports: its header, or "column N" (1-based) when the header is empty.
    pub fn column_name(&self, column: usize) -> String {
        column_label(self.headers.get(column).map(String::as_str), column)
    }

    /// The header line of our CSV template (no line end).
    ///
    /// `full_name` and `email_status` are left out: the template has separate name columns and a
    /// plain opt-out column, though both keys are still understood when present.
    pub fn template_header() -> String {
        let keys: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| !matches!(f, Field::FullName | Field::EmailStatus | Field::Ignore))
            .map(Field::key)
            .collect();
        keys.join(",")
    }
}

pub(crate) fn column_label(header: Option<&str>, column: usize) -> String {
    match header {
        Some(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => format!("column {}", column + 1),
    }
}

/// Lowercase letters and digits only, so "State/Region", "state_region" and "StateRegion" compare
/// equal.
pub(crate) fn normalise_header(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Normalised header → field, with a rank (lower wins) for when several columns name one field.
const ALIASES: &[(&str, Field, u8)] = &[
    // Names
    ("firstname", Field::FirstName, 0),
    ("givenname", Field::FirstName, 1),
    ("forename", Field::FirstName, 1),
    ("first", Field::FirstName, 2),
    ("lastname", Field::LastName, 0),
    ("surname", Field::LastName, 1),
    ("familyname", Field::LastName, 1),
    ("last", Field::LastName, 2),
    ("fullname", Field::FullName, 0),
    ("name", Field::FullName, 1),
    ("contactname", Field::FullName, 1),
    ("personname", Field::FullName, 1),
    ("contact", Field::FullName, 2),
    // Role
    ("title", Field::Title, 0),
    ("jobtitle", Field::Title, 0),
    ("persontitle", Field::Title, 1),
    ("position", Field::Title, 2),
    ("seniority", Field::Seniority, 0),
    ("senioritylevel", Field::Seniority, 1),
    ("department", Field::Department, 0),
    ("departments", Field::Department, 1),
    ("jobfunction", Field::Department, 2),
    // Contact
    ("email", Field::Email, 0),
    ("emailaddress", Field::Email, 0),
    ("workemail", Field::Email, 1),
    ("businessemail", Field::Email, 1),
    ("primaryemail", Field::Email, 1),
    ("phone", Field::Phone, 0),
    ("phonenumber", Field::Phone, 0),
    ("workdirectphone", Field::Phone, 0),
    ("directphone", Field::Phone, 0),
    ("workphone", Field::Phone, 1),
    ("businessphone", Field::Phone, 1),
    ("telephone", Field::Phone, 1),
    ("mobile", Field::Phone, 2),
    ("mobilephone", Field::Phone, 2),
    ("mobilephonenumber", Field::Phone, 2),
    ("cellphone", Field::Phone, 2),
    ("corporatephone", Field::Phone, 3),
    ("companyphone", Field::Phone, 3),
    ("linkedinurl", Field::LinkedinUrl, 0),
    ("personlinkedinurl", Field::LinkedinUrl, 0),
    ("linkedinprofile", Field::LinkedinUrl, 1),
    ("linkedinprofileurl", Field::LinkedinUrl, 1),
    ("linkedin", Field::LinkedinUrl, 2),
    // Company
    ("company", Field::CompanyName, 0),
    ("companyname", Field::CompanyName, 0),
    ("accountname", Field::CompanyName, 1),
    ("organization", Field::CompanyName, 1),
    ("organisation", Field::CompanyName, 1),
    ("organizationname", Field::CompanyName, 1),
    ("companynameforemails", Field::CompanyName, 2),
    ("website", Field::CompanyDomain, 0),
    ("websiteurl", Field::CompanyDomain, 0),
    ("companywebsite", Field::CompanyDomain, 0),
    ("companydomain", Field::CompanyDomain, 1),
    ("companydomainname", Field::CompanyDomain, 1),
    ("domain", Field::CompanyDomain, 1),
    ("url", Field::CompanyDomain, 2),
    ("industry", Field::Industry, 0),
    ("employeerange", Field::EmployeeRange, 0),
    ("employees", Field::EmployeeRange, 0),
    ("numberofemployees", Field::EmployeeRange, 0),
    ("numemployees", Field::EmployeeRange, 0),
    ("noofemployees", Field::EmployeeRange, 0),
    ("employeecount", Field::EmployeeRange, 1),
    ("companysize", Field::EmployeeRange, 1),
    ("headcount", Field::EmployeeRange, 1),
    ("companyheadcount", Field::EmployeeRange, 1),
    // Location (the person's; Apollo's "Company City" etc. stay unmapped)
    ("city", Field::City, 0),
    ("mailingcity", Field::City, 1),
    ("region", Field::Region, 0),
    ("state", Field::Region, 0),
    ("stateregion", Field::Region, 0),
    ("stateprovince", Field::Region, 0),
    ("province", Field::Region, 1),
    ("mailingstate", Field::Region, 1),
    ("mailingstateprovince", Field::Region, 1),
    ("country", Field::Country, 0),
    ("countryregion", Field::Country, 0),
    ("mailingcountry", Field::Country, 1),
    // Pipeline
    ("source", Field::Source, 0),
    ("leadsource", Field::Source, 0),
    ("originalsource", Field::Source, 1),
    ("hsanalyticssource", Field::Source, 1),
    ("status", Field::Status, 0),
    ("leadstatus", Field::Status, 0),
    ("hsleadstatus", Field::Status, 0),
    ("lifecyclestage", Field::Status, 1),
    ("externalid", Field::ExternalId, 0),
    ("id", Field::ExternalId, 0),
    ("recordid", Field::ExternalId, 0),
    ("contactid", Field::ExternalId, 0),
    ("leadid", Field::ExternalId, 0),
    ("apollocontactid", Field::ExternalId, 0),
    ("hsobjectid", Field::ExternalId, 0),
    // Consent
    ("donotcontact", Field::DoNotContact, 0),
    ("hasoptedoutofemail", Field::DoNotContact, 0),
    ("emailoptout", Field::DoNotContact, 0),
    ("unsubscribedfromallemail", Field::DoNotContact, 0),
    ("hsemailoptout", Field::DoNotContact, 0),
    ("donotemail", Field::DoNotContact, 0),
    ("optedout", Field::DoNotContact, 0),
    ("optout", Field::DoNotContact, 0),
    ("unsubscribed", Field::DoNotContact, 0),
    ("emailstatus", Field::EmailStatus, 0),
    // Free-form
    ("tags", Field::Tags, 0),
    ("tag", Field::Tags, 0),
    ("labels", Field::Tags, 0),
    ("notes", Field::Notes, 0),
    ("note", Field::Notes, 0),
    ("description", Field::Notes, 0),
    ("comments", Field::Notes, 0),
];

fn lookup_alias(normalised: &str) -> Option<(Field, u8)> {
    ALIASES
        .iter()
        .find(|(alias, _, _)| *alias == normalised)
        .map(|&(_, field, rank)| (field, rank))
}

/// Headers only one dialect uses, compared after [`normalise_header`].
const HUBSPOT_LABELS: &[&str] = &[
    "recordid",
    "stateregion",
    "countryregion",
    "websiteurl",
    "phonenumber",
    "lifecyclestage",
    "contactowner",
    "unsubscribedfromallemail",
    "numberofemployees",
    "createdate",
    "associatedcompany",
    "lastactivitydate",
    "hsobjectid",
    "hsleadstatus",
    "hsemailoptout",
];
/// HubSpot internal property names: all lowercase, compared exactly.
const HUBSPOT_INTERNAL: &[&str] = &[
    "firstname",
    "lastname",
    "jobtitle",
    "numemployees",
    "lifecyclestage",
    "hubspot_owner_id",
    "mobilephone",
];
const APOLLO_LABELS: &[&str] = &[
    "apollocontactid",
    "apolloaccountid",
    "emailstatus",
    "personlinkedinurl",
    "employees",
    "workdirectphone",
    "corporatephone",
    "companynameforemails",
    "seniority",
    "departments",
    "companylinkedinurl",
];
/// Salesforce API names: CamelCase, compared exactly.
const SALESFORCE_API: &[&str] = &[
    "Id",
    "FirstName",
    "LastName",
    "LeadSource",
    "NumberOfEmployees",
    "HasOptedOutOfEmail",
    "MobilePhone",
    "OwnerId",
    "AccountId",
    "MailingCity",
    "MailingState",
    "MailingCountry",
    "PostalCode",
    "DoNotCall",
    "CreatedDate",
];
const SALESFORCE_LABELS: &[&str] = &[
    "emailoptout",
    "leadsource",
    "mailingstateprovince",
    "mailingcity",
    "mailingcountry",
    "noofemployees",
    "leadid",
    "contactid",
    "accountname",
    "leadowner",
    "contactowneralias",
];

fn detect_dialect(headers: &[String]) -> Dialect {
    let own = headers
        .iter()
        .filter(|h| !h.is_empty())
        .all(|h| Field::ALL.iter().any(|f| f.key() == h));
    if own && headers.iter().any(|h| !h.is_empty()) {
        return Dialect::LeadGen;
    }
    let (mut hubspot, mut apollo, mut salesforce) = (0usize, 0usize, 0usize);
    for header in headers {
        let n = normalise_header(header);
        hubspot += usize::from(HUBSPOT_LABELS.contains(&n.as_str()))
            + usize::from(HUBSPOT_INTERNAL.contains(&header.as_str()));
        apollo += usize::from(APOLLO_LABELS.contains(&n.as_str()));
        salesforce += usize::from(SALESFORCE_API.contains(&header.as_str()))
            + usize::from(SALESFORCE_LABELS.contains(&n.as_str()));
    }
    let top = hubspot.max(apollo).max(salesforce);
    if top == 0 {
        return Dialect::Unknown;
    }
    match (hubspot == top, apollo == top, salesforce == top) {
        (true, false, false) => Dialect::HubSpot,
        (false, true, false) => Dialect::Apollo,
        (false, false, true) => Dialect::Salesforce,
        _ => Dialect::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn field_of(m: &Mapping, header: &str) -> Option<Field> {
        let i = m.headers.iter().position(|h| h == header)?;
        m.columns[i]
    }

    #[test]
    fn keys_round_trip_through_parse() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.key()), Some(f));
            assert_eq!(Field::parse(&f.key().to_uppercase()), Some(f));
        }
        assert_eq!(Field::parse("Linkedin URL"), Some(Field::LinkedinUrl));
        assert_eq!(Field::parse("nope"), None);
        assert_eq!(Field::parse(""), None);
    }

    #[test]
    fn serde_uses_keys() -> Result<(), serde_json::Error> {
        for f in Field::ALL {
            assert_eq!(serde_json::to_string(&f)?, format!("\"{}\"", f.key()));
        }
        Ok(())
    }

    #[test]
    fn hubspot_labels_and_internal_names() {
        let m = Mapping::auto(&headers(&[
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Phone Number",
            "Job Title",
            "Company Name",
            "Website URL",
            "City",
            "State/Region",
            "Country/Region",
            "Number of Employees",
            "Lead Status",
            "Unsubscribed from all email",
        ]));
        assert_eq!(m.dialect, Dialect::HubSpot);
        assert_eq!(
            m.columns,
            vec![
                Some(Field::ExternalId),
                Some(Field::FirstName),
                Some(Field::LastName),
                Some(Field::Email),
                Some(Field::Phone),
                Some(Field::Title),
                Some(Field::CompanyName),
                Some(Field::CompanyDomain),
                Some(Field::City),
                Some(Field::Region),
                Some(Field::Country),
                Some(Field::EmployeeRange),
                Some(Field::Status),
                Some(Field::DoNotContact),
            ]
        );
        let internal = Mapping::auto(&headers(&[
            "firstname",
            "lastname",
            "email",
            "phone",
            "jobtitle",
            "company",
            "website",
            "city",
            "state",
            "country",
            "numemployees",
            "hs_lead_status",
            "industry",
            "lifecyclestage",
        ]));
        assert_eq!(internal.dialect, Dialect::HubSpot);
        assert_eq!(field_of(&internal, "hs_lead_status"), Some(Field::Status));
        // Lead status outranks lifecycle stage, so the latter stays unmapped.
        assert_eq!(field_of(&internal, "lifecyclestage"), None);
        assert_eq!(
            field_of(&internal, "numemployees"),
            Some(Field::EmployeeRange)
        );
        assert_eq!(field_of(&internal, "jobtitle"), Some(Field::Title));
        assert_eq!(internal.validate(), Ok(()));
    }

    #[test]
    fn apollo_labels() {
        let m = Mapping::auto(&headers(&[
            "First Name",
            "Last Name",
            "Title",
            "Company",
            "Company Name for Emails",
            "Email",
            "Email Status",
            "Seniority",
            "Departments",
            "Work Direct Phone",
            "Mobile Phone",
            "Corporate Phone",
            "# Employees",
            "Industry",
            "Person Linkedin Url",
            "Website",
            "Company Linkedin Url",
            "City",
            "State",
            "Country",
            "Company City",
            "Apollo Contact Id",
            "Apollo Account Id",
        ]));
        assert_eq!(m.dialect, Dialect::Apollo);
        assert_eq!(field_of(&m, "Company"), Some(Field::CompanyName));
        assert_eq!(field_of(&m, "Company Name for Emails"), None);
        assert_eq!(field_of(&m, "Email Status"), Some(Field::EmailStatus));
        assert_eq!(field_of(&m, "Work Direct Phone"), Some(Field::Phone));
        assert_eq!(field_of(&m, "Mobile Phone"), None);
        assert_eq!(field_of(&m, "# Employees"), Some(Field::EmployeeRange));
        assert_eq!(
            field_of(&m, "Person Linkedin Url"),
            Some(Field::LinkedinUrl)
        );
        assert_eq!(field_of(&m, "Company Linkedin Url"), None);
        assert_eq!(field_of(&m, "Company City"), None);
        assert_eq!(field_of(&m, "Apollo Contact Id"), Some(Field::ExternalId));
        assert_eq!(field_of(&m, "Apollo Account Id"), None);
        assert_eq!(field_of(&m, "Departments"), Some(Field::Department));
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn salesforce_api_names_and_report_labels() {
        let api = Mapping::auto(&headers(&[
            "Id",
            "FirstName",
            "LastName",
            "Title",
            "Company",
            "Email",
            "Phone",
            "MobilePhone",
            "City",
            "State",
            "Country",
            "Website",
            "LeadSource",
            "Status",
            "NumberOfEmployees",
            "HasOptedOutOfEmail",
            "Industry",
        ]));
        assert_eq!(api.dialect, Dialect::Salesforce);
        assert_eq!(field_of(&api, "Phone"), Some(Field::Phone));
        assert_eq!(field_of(&api, "MobilePhone"), None);
        assert_eq!(
            field_of(&api, "HasOptedOutOfEmail"),
            Some(Field::DoNotContact)
        );
        assert_eq!(field_of(&api, "LeadSource"), Some(Field::Source));
        assert_eq!(field_of(&api, "Id"), Some(Field::ExternalId));

        let report = Mapping::auto(&headers(&[
            "First Name",
            "Last Name",
            "Email",
            "Lead Source",
            "Email Opt Out",
            "Lead Status",
            "Mailing State/Province",
            "No. of Employees",
            "Account Name",
        ]));
        assert_eq!(report.dialect, Dialect::Salesforce);
        assert_eq!(
            field_of(&report, "Email Opt Out"),
            Some(Field::DoNotContact)
        );
        assert_eq!(field_of(&report, "Lead Status"), Some(Field::Status));
        assert_eq!(
            field_of(&report, "Mailing State/Province"),
            Some(Field::Region)
        );
        assert_eq!(
            field_of(&report, "No. of Employees"),
            Some(Field::EmployeeRange)
        );
        assert_eq!(field_of(&report, "Account Name"), Some(Field::CompanyName));
    }

    #[test]
    fn own_template_maps_every_column() {
        let header = Mapping::template_header();
        let names: Vec<String> = header.split(',').map(str::to_owned).collect();
        let m = Mapping::auto(&names);
        assert_eq!(m.dialect, Dialect::LeadGen);
        for (name, field) in names.iter().zip(&m.columns) {
            assert_eq!(field.map(|f| f.key()), Some(name.as_str()));
        }
        assert_eq!(m.validate(), Ok(()));
        assert!(header.starts_with("first_name,last_name,title,"));
    }

    #[test]
    fn unknown_headers_stay_unmapped() {
        let m = Mapping::auto(&headers(&["Favourite colour", "", "E-Mail"]));
        assert_eq!(m.dialect, Dialect::Unknown);
        assert_eq!(m.columns, vec![None, None, Some(Field::Email)]);
        assert_eq!(m.column_name(1), "column 2");
    }

    #[test]
    fn duplicate_headers_map_only_the_first() {
        let m = Mapping::auto(&headers(&["Email", "Name", "email", "Tags", "TAGS"]));
        assert_eq!(
            m.columns,
            vec![
                Some(Field::Email),
                Some(Field::FullName),
                None,
                Some(Field::Tags),
                Some(Field::Tags)
            ]
        );
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_fields_mapped_twice_but_not_tags_notes_or_opt_outs() {
        let mut m = Mapping::auto(&headers(&["Email", "Phone", "Mobile", "A", "B", "C", "D"]));
        m.set(3, Some(Field::Tags));
        m.set(4, Some(Field::Tags));
        m.set(5, Some(Field::Notes));
        m.set(6, Some(Field::Notes));
        assert_eq!(m.validate(), Ok(()));
        m.set(2, Some(Field::Phone));
        assert_eq!(
            m.validate(),
            Err(MappingError::DuplicateField {
                field: Field::Phone,
                first: "Phone".into(),
                second: "Mobile".into()
            })
        );
        let message = m
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "phone is mapped to more than one column ('Phone' and 'Mobile')"
        );
        m.set(2, Some(Field::Ignore));
        m.set(1, Some(Field::Ignore));
        assert_eq!(m.validate(), Ok(()));
        m.set(99, Some(Field::Email));
        assert_eq!(m.columns.len(), 7);
    }

    #[test]
    fn validate_requires_email_or_a_name() {
        let mut m = Mapping::auto(&headers(&["Company", "Phone"]));
        assert_eq!(m.validate(), Err(MappingError::NoEmailOrName));
        m.set(1, Some(Field::FullName));
        assert_eq!(m.validate(), Ok(()));
        m.columns.pop();
        assert_eq!(
            m.validate(),
            Err(MappingError::ColumnCount {
                mapping: 1,
                file: 2
            })
        );
    }
}
